/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "config.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define SECRET_MAX 4096

/* One load in progress: the file, the config being filled, the errors. */
struct loader {
        const char *path;
        unsigned flags; /* CONFIG_OFFLINE */
        config_t cf;
        struct config *c;
        FILE *err;
        char *err_text;
        size_t err_len;
        unsigned n_errors;
        int oom;
        char key[64]; /* "group.name" of the key being parsed, for messages */
};

static void report(struct loader *l, int line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Messages quote values from the file, and a string value may hold any
 * byte but NUL (a newline included): control characters are escaped, so
 * that every problem stays one line and no value can pass for a line of
 * its own. */
static void put_escaped(FILE *f, const char *s)
{
        for (; *s; s++) {
                unsigned char ch = (unsigned char)*s;

                if (ch == '\n')
                        fputs("\\n", f);
                else if (ch == '\t')
                        fputs("\\t", f);
                else if (ch < 0x20 || ch == 0x7f)
                        fprintf(f, "\\x%02x", ch);
                else
                        fputc(ch, f);
        }
}

static void report(struct loader *l, int line, const char *fmt, ...)
{
        char *msg = NULL;
        va_list ap;
        int n;

        l->n_errors++;
        if (!l->err)
                return;
        va_start(ap, fmt);
        n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n < 0) {
                l->oom = 1;
                return;
        }
        put_escaped(l->err, l->path);
        fprintf(l->err, ":%d: ", line);
        put_escaped(l->err, msg);
        fputc('\n', l->err);
        free(msg);
}

static int line_of(const config_setting_t *s)
{
        int line = s ? (int)config_setting_source_line(s) : 0;

        return line > 0 ? line : 1;
}

/* --- typed readers: each reports its own error and returns < 0 --- */

static const char *type_name(int type)
{
        switch (type) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
                return "an integer";
        case CONFIG_TYPE_FLOAT:
                return "a number";
        case CONFIG_TYPE_STRING:
                return "a string";
        case CONFIG_TYPE_BOOL:
                return "a boolean";
        case CONFIG_TYPE_ARRAY:
                return "an array";
        case CONFIG_TYPE_LIST:
                return "a list";
        case CONFIG_TYPE_GROUP:
                return "a group";
        default:
                return "a value";
        }
}

static int wrong_type(struct loader *l, const config_setting_t *s, const char *key, const char *want)
{
        report(l, line_of(s), "'%s' must be %s, not %s", key, want,
               type_name(config_setting_type(s)));
        return -EINVAL;
}

static int get_string(struct loader *l, const config_setting_t *s, const char *key,
                      const char **ret)
{
        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return wrong_type(l, s, key, "a string");
        *ret = config_setting_get_string(s);
        return 0;
}

static int get_number(struct loader *l, const config_setting_t *s, const char *key, double *ret)
{
        switch (config_setting_type(s)) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_INT64:
                *ret = (double)config_setting_get_int64(s);
                return 0;
        case CONFIG_TYPE_FLOAT:
                *ret = config_setting_get_float(s);
                return 0;
        default:
                return wrong_type(l, s, key, "a number");
        }
}

static int set_string(struct loader *l, char **field, const char *value)
{
        char *copy = strdup(value);

        if (!copy) {
                l->oom = 1;
                return -ENOMEM;
        }
        free(*field);
        *field = copy;
        return 0;
}

/* --- key table --- */

enum key_kind {
        KEY_STRING,
        KEY_BOOL,
        KEY_DURATION,
        KEY_NUMBER,
        KEY_SPECIAL,
};

struct key;
typedef int (*key_parser)(struct loader *l, const config_setting_t *s, const struct key *k);

struct key {
        const char *group;
        const char *name;
        enum key_kind kind;
        size_t offset;
        double min, max; /* KEY_NUMBER: min exclusive when min_open; KEY_DURATION: usec */
        bool min_open;
        key_parser parse; /* KEY_SPECIAL */
};

#define FIELD(f) offsetof(struct config, f)

static void *field_ptr(struct loader *l, const struct key *k)
{
        return (char *)l->c + k->offset;
}

static int parse_string_key(struct loader *l, const config_setting_t *s, const struct key *k)
{
        const char *v = NULL;
        char **field = field_ptr(l, k);

        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        if (*v == '\0') { /* an empty string unsets an optional path */
                free(*field);
                *field = NULL;
                return 0;
        }
        return set_string(l, field, v);
}

static int parse_bool_key(struct loader *l, const config_setting_t *s, const struct key *k)
{
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
                return wrong_type(l, s, l->key, "a boolean (true or false)");
        *(bool *)field_ptr(l, k) = config_setting_get_bool(s);
        return 0;
}

static int parse_duration_key(struct loader *l, const config_setting_t *s, const struct key *k)
{
        const char *v = NULL;
        uint64_t usec;
        char lo[32], hi[32];

        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return wrong_type(l, s, l->key, "a duration string such as \"10s\"");
        v = config_setting_get_string(s);
        if (parse_duration(v, &usec) < 0) {
                report(l, line_of(s),
                       "'%s': invalid duration '%s' (use a number with ms, s, m, h or d, e.g. \"10s\")",
                       l->key, v);
                return -EINVAL;
        }
        if ((double)usec < k->min || (double)usec > k->max) {
                format_duration((uint64_t)k->min, lo, sizeof(lo));
                format_duration((uint64_t)k->max, hi, sizeof(hi));
                report(l, line_of(s), "'%s' = '%s' is out of range (%s to %s)", l->key, v, lo,
                       hi);
                return -ERANGE;
        }
        *(uint64_t *)field_ptr(l, k) = usec;
        return 0;
}

static int parse_number_key(struct loader *l, const config_setting_t *s, const struct key *k)
{
        double v = 0;

        if (get_number(l, s, l->key, &v) < 0)
                return -EINVAL;
        if ((k->min_open ? v <= k->min : v < k->min) || v > k->max) {
                report(l, line_of(s), "'%s' = %g is out of range (%s %g and at most %g)", l->key,
                       v, k->min_open ? "more than" : "at least", k->min, k->max);
                return -ERANGE;
        }
        *(double *)field_ptr(l, k) = v;
        return 0;
}

static int parse_strv_item(struct loader *l, const config_setting_t *item, const char *key,
                           struct strv *out)
{
        const char *v = NULL;
        char *copy;

        if (config_setting_type(item) != CONFIG_TYPE_STRING)
                return wrong_type(l, item, key, "a list of strings");
        v = config_setting_get_string(item);
        if (*v == '\0') {
                report(l, line_of(item), "'%s': empty string in list", key);
                return -EINVAL;
        }
        copy = strdup(v);
        if (!copy) {
                l->oom = 1;
                return -ENOMEM;
        }
        out->v[out->n++] = copy;
        return 0;
}

static void strv_free(struct strv *sv)
{
        for (size_t i = 0; i < sv->n; i++)
                free(sv->v[i]);
        free(sv->v);
        sv->v = NULL;
        sv->n = 0;
}

static int parse_strv(struct loader *l, const config_setting_t *s, const char *key,
                      struct strv *out)
{
        int n, type = config_setting_type(s), r = 0;
        struct strv sv = { 0 };

        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
                return wrong_type(l, s, key, "a list of strings such as [\"a\", \"b\"]");
        n = config_setting_length(s);
        sv.v = calloc((size_t)n + 1, sizeof(char *));
        if (!sv.v) {
                l->oom = 1;
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++)
                if (parse_strv_item(l, config_setting_get_elem(s, (unsigned)i), key, &sv) < 0)
                        r = -EINVAL;
        if (r < 0) {
                strv_free(&sv);
                return r;
        }
        strv_free(out);
        *out = sv;
        return 0;
}

static int parse_strv_key(struct loader *l, const config_setting_t *s, const struct key *k)
{
        return parse_strv(l, s, l->key, field_ptr(l, k));
}

/* --- special keys --- */

static int parse_api_url(struct loader *l, const config_setting_t *s, const struct key *k)
{
        const char *v = NULL, *host;
        size_t n;
        char *url;

        (void)k;
        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        if (strncmp(v, "https://", 8) == 0)
                host = v + 8;
        else if (strncmp(v, "http://", 7) == 0)
                host = v + 7;
        else {
                report(l, line_of(s), "'api.url' = '%s' must start with https:// (or http://)", v);
                return -EINVAL;
        }
        n = strlen(v);
        while (n > 0 && v[n - 1] == '/')
                n--;
        if (*host == '\0' || *host == '/' || strpbrk(host, "?#@ ") ||
            (strchr(host, '/') && (size_t)(strchr(host, '/') - v) < n)) {
                report(l, line_of(s),
                       "'api.url' = '%s' must be scheme://host[:port] without a path (/api2/json is appended)",
                       v);
                return -EINVAL;
        }
        if (asprintf(&url, "%.*s/api2/json", (int)n, v) < 0) {
                l->oom = 1;
                return -ENOMEM;
        }
        free(l->c->api_url);
        l->c->api_url = url;
        return 0;
}

static int parse_token_id(struct loader *l, const config_setting_t *s, const struct key *k)
{
        const char *v = NULL, *at, *bang;

        (void)k;
        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        at = strchr(v, '@');
        bang = strchr(v, '!');
        if (!at || !bang || bang < at || at == v || bang == at + 1 || bang[1] == '\0' ||
            strpbrk(v, " \t=:")) {
                report(l, line_of(s), "'api.token_id' = '%s' must look like USER@REALM!TOKENID", v);
                return -EINVAL;
        }
        return set_string(l, &l->c->token_id, v);
}

/* Secrets live in their own mapping, excluded from core dumps. */
static char *secret_new(void)
{
        return secret_alloc(SECRET_MAX);
}

static void secret_drop(char *s)
{
        secret_free(s, SECRET_MAX);
}

static int secret_check_file(struct loader *l, int line, const char *file, int fd)
{
        struct stat st;

        if (fstat(fd, &st) < 0) {
                int e = errno;

                report(l, line, "cannot stat secret file '%s': %s", file, strerror(e));
                return -e;
        }
        if (!S_ISREG(st.st_mode)) {
                report(l, line, "secret file '%s' is not a regular file", file);
                return -EINVAL;
        }
        if (st.st_mode & (S_IROTH | S_IWOTH)) {
                report(l, line,
                       "secret file '%s' is accessible by others (mode %04o): run 'chmod o-rwx %s'",
                       file, (unsigned)(st.st_mode & 07777), file);
                return -EPERM;
        }
        return 0;
}

static int secret_read(struct loader *l, int line, const char *file, char **ret)
{
        char *buf = NULL;
        ssize_t n;
        int fd, r = -EINVAL;

        /* Not needed, so not read: a user who may read the state but not
         * the credential can still use the offline commands. */
        if (l->flags & CONFIG_OFFLINE)
                return 0;
        fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int e = errno;

                report(l, line, "cannot read secret file '%s': %s", file, strerror(e));
                return -e;
        }
        if (secret_check_file(l, line, file, fd) < 0)
                goto out;
        buf = secret_new();
        if (!buf) {
                l->oom = 1;
                r = -ENOMEM;
                goto out;
        }
        n = read(fd, buf, SECRET_MAX - 1);
        if (n < 0) {
                report(l, line, "cannot read secret file '%s': %s", file, strerror(errno));
                goto out;
        }
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                n--;
        buf[n] = '\0';
        if (n == 0 || n >= SECRET_MAX - 2) {
                report(l, line, "secret file '%s' is %s", file, n == 0 ? "empty" : "too long");
                goto out;
        }
        for (ssize_t i = 0; i < n; i++)
                if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
                        report(l, line, "secret file '%s' holds a control character", file);
                        goto out;
                }
        *ret = buf;
        buf = NULL;
        r = 0;
out:
        secret_drop(buf);
        close(fd);
        return r;
}

static int parse_secret_file(struct loader *l, const config_setting_t *s, const struct key *k)
{
        const char *v = NULL;
        char **field = field_ptr(l, k);
        char *secret = NULL;

        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        if (secret_read(l, line_of(s), v, &secret) < 0)
                return -EINVAL;
        secret_drop(*field);
        *field = secret;
        return 0;
}

static int parse_max_response(struct loader *l, const config_setting_t *s, const struct key *k)
{
        double v = 0;

        (void)k;
        if (get_number(l, s, l->key, &v) < 0)
                return -EINVAL;
        if (v < 1 || v > 4096 || v != (double)(uint64_t)v) {
                report(l, line_of(s), "'%s' = %g must be a whole number of MiB from 1 to 4096",
                       l->key, v);
                return -ERANGE;
        }
        l->c->max_response_bytes = (size_t)v << 20;
        return 0;
}

static int parse_retries(struct loader *l, const config_setting_t *s, const struct key *k)
{
        double v = 0;

        (void)k;
        if (get_number(l, s, l->key, &v) < 0)
                return -EINVAL;
        if (v < 0 || v > 10 || v != (double)(unsigned)v) {
                report(l, line_of(s), "'%s' = %g must be a whole number from 0 to 10", l->key,
                       v);
                return -ERANGE;
        }
        l->c->retries = (unsigned)v;
        return 0;
}

static int parse_nodes(struct loader *l, const config_setting_t *s, const struct key *k)
{
        int r;

        (void)k;
        if (config_setting_type(s) == CONFIG_TYPE_STRING) {
                const char *v = config_setting_get_string(s);

                if (strcmp(v, "local") == 0)
                        l->c->node_scope = NODE_SCOPE_LOCAL;
                else if (strcmp(v, "all") == 0)
                        l->c->node_scope = NODE_SCOPE_ALL;
                else {
                        report(l, line_of(s),
                               "'observe.nodes' = '%s' must be \"local\", \"all\" or a list of node names",
                               v);
                        return -EINVAL;
                }
                return 0;
        }
        r = parse_strv(l, s, l->key, &l->c->nodes);
        if (r < 0)
                return r;
        for (size_t i = 0; i < l->c->nodes.n; i++)
                if (!node_name_valid(l->c->nodes.v[i])) {
                        report(l, line_of(s), "'observe.nodes': '%s' is not a valid node name",
                               l->c->nodes.v[i]);
                        r = -EINVAL;
                }
        if (r == 0 && l->c->nodes.n == 0) {
                report(l, line_of(s), "'observe.nodes' must not be an empty list");
                r = -EINVAL;
        }
        l->c->node_scope = NODE_SCOPE_LIST;
        return r;
}

static int parse_node_name(struct loader *l, const config_setting_t *s, const struct key *k)
{
        const char *v = NULL;

        (void)k;
        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        if (!node_name_valid(v)) {
                report(l, line_of(s), "'observe.node_name' = '%s' is not a valid node name", v);
                return -EINVAL;
        }
        return set_string(l, &l->c->node_name, v);
}

static int parse_types(struct loader *l, const config_setting_t *s, const struct key *k)
{
        struct strv sv = { 0 };
        int r = parse_strv(l, s, l->key, &sv);

        (void)k;
        if (r < 0)
                return r;
        l->c->observe_qemu = l->c->observe_lxc = false;
        for (size_t i = 0; i < sv.n; i++) {
                if (strcmp(sv.v[i], "qemu") == 0)
                        l->c->observe_qemu = true;
                else if (strcmp(sv.v[i], "lxc") == 0)
                        l->c->observe_lxc = true;
                else {
                        report(l, line_of(s), "'observe.types': '%s' is not \"qemu\" or \"lxc\"", sv.v[i]);
                        r = -EINVAL;
                }
        }
        if (r == 0 && sv.n == 0) {
                report(l, line_of(s), "'observe.types' must name at least one of \"qemu\", \"lxc\"");
                r = -EINVAL;
        }
        strv_free(&sv);
        return r;
}

static int parse_vmid_range(const char *v, struct vmid_range *ret)
{
        char first[16];
        const char *dash = strchr(v, '-');
        uint64_t a, b;
        size_t n = dash ? (size_t)(dash - v) : strlen(v);

        if (n == 0 || n >= sizeof(first))
                return -EINVAL;
        memcpy(first, v, n);
        first[n] = '\0';
        if (parse_u64(first, 100, 999999999, &a) < 0)
                return -EINVAL;
        b = a;
        if (dash && parse_u64(dash + 1, 100, 999999999, &b) < 0)
                return -EINVAL;
        if (b < a)
                return -ERANGE;
        ret->first = (uint32_t)a;
        ret->last = (uint32_t)b;
        return 0;
}

static int parse_vmid_item(struct loader *l, const config_setting_t *item, struct vmid_range *ret)
{
        char num[24];
        const char *v = NULL;

        if (config_setting_type(item) == CONFIG_TYPE_INT ||
            config_setting_type(item) == CONFIG_TYPE_INT64) {
                snprintf(num, sizeof(num), "%lld", config_setting_get_int64(item));
                v = num;
        } else if (config_setting_type(item) == CONFIG_TYPE_STRING) {
                v = config_setting_get_string(item);
        } else
                return wrong_type(l, item, l->key, "a list of vmids or \"FIRST-LAST\" ranges");
        if (parse_vmid_range(v, ret) < 0) {
                report(l, line_of(item),
                       "'select.exclude_vmids': '%s' is not a vmid (100-999999999) or a range \"FIRST-LAST\"",
                       v);
                return -EINVAL;
        }
        return 0;
}

static int parse_exclude_vmids(struct loader *l, const config_setting_t *s, const struct key *k)
{
        int n, type = config_setting_type(s), r = 0;
        struct vmid_range *ranges;

        (void)k;
        if (type != CONFIG_TYPE_ARRAY && type != CONFIG_TYPE_LIST)
                return wrong_type(l, s, l->key, "a list such as [\"100-199\", \"250\"]");
        n = config_setting_length(s);
        ranges = calloc((size_t)n + 1, sizeof(*ranges));
        if (!ranges) {
                l->oom = 1;
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++)
                if (parse_vmid_item(l, config_setting_get_elem(s, (unsigned)i), &ranges[i]) < 0)
                        r = -EINVAL;
        if (r < 0) {
                free(ranges);
                return r;
        }
        free(l->c->exclude_vmids);
        l->c->exclude_vmids = ranges;
        l->c->n_exclude_vmids = (size_t)n;
        return 0;
}

static int parse_mode(struct loader *l, const config_setting_t *s, const struct key *k)
{
        static const char *const names[] = { "observe", "mark", "reap" };
        const char *v = NULL;

        (void)k;
        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcmp(v, names[i]) == 0) {
                        l->c->mode = (enum reap_mode)i;
                        return 0;
                }
        report(l, line_of(s), "'reap.mode' = '%s' must be \"observe\", \"mark\" or \"reap\"", v);
        return -EINVAL;
}

/* A whole number in [k->min, k->max], stored as unsigned. */
static int parse_count_key(struct loader *l, const config_setting_t *s, const struct key *k)
{
        double v = 0;

        if (get_number(l, s, l->key, &v) < 0)
                return -EINVAL;
        if (v < k->min || v > k->max || v != (double)(unsigned)v) {
                report(l, line_of(s), "'%s' = %g must be a whole number from %g to %g", l->key, v,
                       k->min, k->max);
                return -ERANGE;
        }
        *(unsigned *)field_ptr(l, k) = (unsigned)v;
        return 0;
}

/* pve-storage-id: [a-z][a-z0-9._-]*[a-z0-9] */
static bool storage_id_valid(const char *s)
{
        size_t n = strlen(s);

        if (n < 2 || n > 64 || !islower((unsigned char)s[0]) ||
            !(islower((unsigned char)s[n - 1]) || isdigit((unsigned char)s[n - 1])))
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-_.") == n;
}

static int parse_storage(struct loader *l, const config_setting_t *s, const struct key *k)
{
        const char *v = NULL;

        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        if (!storage_id_valid(v)) {
                report(l, line_of(s), "'%s' = '%s' is not a Proxmox storage id", l->key, v);
                return -EINVAL;
        }
        return set_string(l, field_ptr(l, k), v);
}

static int parse_compress(struct loader *l, const config_setting_t *s, const struct key *k)
{
        static const char *const names[][2] = {
                { "zstd", "zstd" }, { "gzip", "gzip" }, { "lzo", "lzo" }, { "none", "0" }
        };
        const char *v = NULL;

        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strcmp(v, names[i][0]) == 0)
                        return set_string(l, field_ptr(l, k), names[i][1]);
        report(l, line_of(s), "'%s' = '%s' must be \"zstd\", \"gzip\", \"lzo\" or \"none\"",
               l->key, v);
        return -EINVAL;
}

void config_reap_rules(struct config *c)
{
        /* unset is < 0: a set one is more than 0 */
        if (c->net_kbps < 0)
                c->net_kbps = CONFIG_REAP_NET_KBPS;
        if (c->disk_kbps < 0)
                c->disk_kbps = CONFIG_REAP_DISK_KBPS;
}

/* reap.history_statistic: "max", "mean" or "p1".."p99". */
static int parse_statistic(struct loader *l, const config_setting_t *s, const struct key *k)
{
        const char *v = NULL;
        int *f = field_ptr(l, k);
        char *end;
        long n;

        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        if (strcmp(v, "max") == 0 || strcmp(v, "mean") == 0) {
                *f = v[1] == 'a' ? HISTORY_MAX : HISTORY_MEAN;
                return 0;
        }
        errno = 0;
        n = v[0] == 'p' && isdigit((unsigned char)v[1]) ? strtol(v + 1, &end, 10) : 0;
        if (errno == 0 && n >= 1 && n <= 99 && *end == '\0') {
                *f = (int)n;
                return 0;
        }
        report(l, line_of(s),
               "'%s' = '%s' must be \"max\", \"mean\" or a percentile from \"p1\" to \"p99\"",
               l->key, v);
        return -EINVAL;
}

static const char *const notify_event_names[] = { "mark", "reap", "abort", "restore" };

const char *notify_event_to_string(enum notify_event e)
{
        for (size_t i = 0; i < ELEMENTSOF(notify_event_names); i++)
                if ((unsigned)e == 1u << i)
                        return notify_event_names[i];
        return "unknown";
}

static int parse_events(struct loader *l, const config_setting_t *s, const struct key *k)
{
        struct strv sv = { 0 };
        unsigned bits = 0;
        int r = parse_strv(l, s, l->key, &sv);

        for (size_t i = 0; r >= 0 && i < sv.n; i++) {
                size_t e = 0;

                while (e < ELEMENTSOF(notify_event_names) &&
                       strcmp(sv.v[i], notify_event_names[e]) != 0)
                        e++;
                if (e == ELEMENTSOF(notify_event_names)) {
                        report(l, line_of(s),
                               "'%s': unknown event '%s' (known: \"mark\", \"reap\", \"abort\", \"restore\")",
                               l->key, sv.v[i]);
                        r = -EINVAL;
                } else
                        bits |= 1u << e;
        }
        strv_free(&sv);
        if (r >= 0)
                *(unsigned *)field_ptr(l, k) = bits;
        return r;
}

/* Any http(s) URL with a host; the value is never echoed, since webhook
 * URLs often carry their access token. */
static int parse_webhook_url(struct loader *l, const config_setting_t *s, const struct key *k)
{
        const char *v = NULL, *host;

        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        host = strncmp(v, "https://", 8) == 0 ? v + 8 : strncmp(v, "http://", 7) == 0 ? v + 7 : NULL;
        if (!host || strchr("/?#:", *host) || strpbrk(v, " \t\r\n")) {
                report(l, line_of(s), "'%s' must be an http:// or https:// URL with a host", l->key);
                return -EINVAL;
        }
        return set_string(l, field_ptr(l, k), v);
}

/* A proxy URL libcurl will take: a host, a valid port, no path. */
static bool proxy_url_ok(const char *v)
{
        CURLU *u = curl_url();
        char *host = NULL, *path = NULL;
        bool ok = u && curl_url_set(u, CURLUPART_URL, v, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
                  curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] &&
                  curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK &&
                  (!path[0] || strcmp(path, "/") == 0);

        curl_free(host);
        curl_free(path);
        curl_url_cleanup(u);
        return ok;
}

/* A proxy URL (http://, https://, socks4/5://), never echoed: it may
 * carry a password. */
static int parse_proxy(struct loader *l, const config_setting_t *s, const struct key *k)
{
        static const char *const schemes[] = { "http://", "https://", "socks4://", "socks4a://",
                                               "socks5://", "socks5h://" };
        const char *v = NULL;
        bool ok = false;

        if (get_string(l, s, l->key, &v) < 0)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(schemes); i++)
                ok = ok || (strncmp(v, schemes[i], strlen(schemes[i])) == 0 &&
                            v[strlen(schemes[i])] && !strchr("/?#:", v[strlen(schemes[i])]));
        if (!ok || strpbrk(v, " \t\r\n") || !proxy_url_ok(v)) {
                report(l, line_of(s),
                       "'%s' must be a proxy URL: http://, https://, socks4://, socks4a://, socks5:// or socks5h://, a host and an optional port from 1 to 65535, no path (the value is not shown: it may hold a password)",
                       l->key);
                return -EINVAL;
        }
        return set_string(l, field_ptr(l, k), v);
}

#define DUR(g, n, f, lo, hi) { g, n, KEY_DURATION, FIELD(f), (double)(lo), (double)(hi), false, NULL }
#define NUM(g, n, f, lo, open, hi) { g, n, KEY_NUMBER, FIELD(f), lo, hi, open, NULL }
#define STR(g, n, f) { g, n, KEY_STRING, FIELD(f), 0, 0, false, NULL }
#define BOOL(g, n, f) { g, n, KEY_BOOL, FIELD(f), 0, 0, false, NULL }
#define SPECIAL(g, n, f, fn) { g, n, KEY_SPECIAL, FIELD(f), 0, 0, false, fn }
#define COUNT(g, n, f, lo, hi) { g, n, KEY_SPECIAL, FIELD(f), lo, hi, false, parse_count_key }

static int parse_strv_special(struct loader *l, const config_setting_t *s, const struct key *k)
{
        return parse_strv_key(l, s, k);
}

/* Proxmox's tag syntax (pve-tag: [a-z0-9_][a-z0-9_+.-]*, any case). */
static bool tag_valid(const char *t)
{
        static const char first[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";

        return *t && strchr(first, *t) && strspn(t + 1, "abcdefghijklmnopqrstuvwxyz"
                                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-") ==
                                                  strlen(t + 1);
}

/* A tag list: every tag valid. select.exclude_tags always keeps
 * proxreap-keep: the README promises such guests are never touched. */
static int parse_tags(struct loader *l, const config_setting_t *s, const struct key *k)
{
        struct strv *tags = field_ptr(l, k);
        bool exclude = strcmp(k->name, "exclude_tags") == 0, keep = false;
        int r = parse_strv(l, s, l->key, tags);
        char **v;

        for (size_t i = 0; r >= 0 && i < tags->n; i++) {
                if (!tag_valid(tags->v[i])) {
                        report(l, line_of(s),
                               "'%s': '%s' is not a Proxmox tag (letters, digits, '_', '-', '+', '.'; not starting with '-', '+' or '.')",
                               l->key, tags->v[i]);
                        r = -EINVAL;
                }
                keep = keep || strcasecmp(tags->v[i], CONFIG_KEEP_TAG) == 0;
        }
        if (r < 0 || !exclude || keep)
                return r;
        v = realloc(tags->v, (tags->n + 2) * sizeof(*v));
        if (!v || !(v[tags->n] = strdup(CONFIG_KEEP_TAG))) {
                if (v)
                        tags->v = v;
                l->oom = 1;
                return -ENOMEM;
        }
        tags->v = v;
        tags->v[++tags->n] = NULL;
        return 0;
}

static const struct key keys[] = {
        SPECIAL("api", "url", api_url, parse_api_url),
        SPECIAL("api", "token_id", token_id, parse_token_id),
        SPECIAL("api", "token_secret_file", token_secret, parse_secret_file),
        STR("api", "user", user),
        SPECIAL("api", "password_file", password, parse_secret_file),
        STR("api", "ca_file", ca_file),
        STR("api", "pinned_pubkey", pinned_pubkey),
        SPECIAL("api", "proxy", proxy, parse_proxy),
        BOOL("api", "insecure", insecure),
        DUR("api", "timeout", timeout_usec, 100 * USEC_PER_MSEC, 10 * USEC_PER_MINUTE),
        DUR("api", "connect_timeout", connect_timeout_usec, 100 * USEC_PER_MSEC, USEC_PER_MINUTE),
        SPECIAL("api", "retries", retries, parse_retries),
        SPECIAL("api", "max_response_mb", max_response_bytes, parse_max_response),

        DUR("observe", "interval", interval_usec, 100 * USEC_PER_MSEC, USEC_PER_HOUR),
        DUR("observe", "window", window_usec, 100 * USEC_PER_MSEC, 30 * USEC_PER_DAY),
        DUR("observe", "stale_after", stale_after_usec, 200 * USEC_PER_MSEC, USEC_PER_DAY),
        NUM("observe", "min_coverage", min_coverage, 0.0, true, 1.0),
        SPECIAL("observe", "nodes", nodes, parse_nodes),
        SPECIAL("observe", "node_name", node_name, parse_node_name),
        SPECIAL("observe", "types", observe_qemu, parse_types),

        NUM("idle", "cpu_percent", cpu_percent, 0.0, true, 10000.0),
        NUM("idle", "mem_mb", mem_mb, 0.0, true, 1e9),
        NUM("idle", "net_kbps", net_kbps, 0.0, true, 1e9),
        NUM("idle", "disk_kbps", disk_kbps, 0.0, true, 1e9),
        NUM("idle", "cpu_share", cpu_share, 0.0, true, 1.0),

        SPECIAL("select", "exclude_tags", exclude_tags, parse_tags),
        SPECIAL("select", "exclude_pools", exclude_pools, parse_strv_special),
        SPECIAL("select", "exclude_vmids", exclude_vmids, parse_exclude_vmids),
        SPECIAL("select", "include_tags", include_tags, parse_tags),
        BOOL("select", "allow_ha", allow_ha),

        SPECIAL("reap", "mode", mode, parse_mode),
        DUR("reap", "grace", grace_usec, 0, 365 * USEC_PER_DAY),
        COUNT("reap", "max_per_cycle", max_per_cycle, 1, 1000),
        COUNT("reap", "max_per_hour", max_per_hour, 1, 100000),
        NUM("reap", "breaker_jump", breaker_jump, 0.0, true, 100.0),
        NUM("reap", "breaker_broken", breaker_broken, 0.0, true, 100.0),
        DUR("reap", "cooldown", cooldown_usec, 0, 365 * USEC_PER_DAY),
        DUR("reap", "retry_after", retry_after_usec, 0, 365 * USEC_PER_DAY),
        DUR("reap", "history", history_usec, 0, 365 * USEC_PER_DAY),
        SPECIAL("reap", "history_statistic", history_statistic, parse_statistic),
        SPECIAL("reap", "archive_storage", archive_storage, parse_storage),
        SPECIAL("reap", "compress", compress, parse_compress),
        DUR("reap", "shutdown_timeout", shutdown_timeout_usec, USEC_PER_SEC, USEC_PER_HOUR),
        BOOL("reap", "force_stop", force_stop),
        BOOL("reap", "snapshot", snapshot),
        BOOL("reap", "discard_snapshots", discard_snapshots),
        DUR("reap", "task_timeout", task_timeout_usec, USEC_PER_SEC, 7 * USEC_PER_DAY),
        STR("reap", "journal", journal_file),

        STR("status", "file", status_file),
        STR("status", "prometheus_file", prometheus_file),

        SPECIAL("notify", "webhook_url", webhook_url, parse_webhook_url),
        SPECIAL("notify", "events", notify_events, parse_events),
        DUR("notify", "timeout", notify_timeout_usec, USEC_PER_SEC, 5 * USEC_PER_MINUTE),
        COUNT("notify", "retries", notify_retries, 0, 10),
        STR("notify", "ca_file", notify_ca_file),
        SPECIAL("notify", "proxy", notify_proxy, parse_proxy),
};

static const char *const groups[] = { "api", "observe", "idle", "select", "reap", "status", "notify" };

static int parse_key(struct loader *l, const config_setting_t *s, const struct key *k)
{
        switch (k->kind) {
        case KEY_STRING:
                return parse_string_key(l, s, k);
        case KEY_BOOL:
                return parse_bool_key(l, s, k);
        case KEY_DURATION:
                return parse_duration_key(l, s, k);
        case KEY_NUMBER:
                return parse_number_key(l, s, k);
        case KEY_SPECIAL:
                return k->parse(l, s, k);
        }
        return -EINVAL;
}

static const struct key *find_key(const char *group, const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if (strcmp(keys[i].group, group) == 0 && strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

static bool group_known(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(groups); i++)
                if (strcmp(groups[i], name) == 0)
                        return true;
        return false;
}

static void parse_group(struct loader *l, const config_setting_t *g)
{
        const char *gname = config_setting_name(g);

        for (int i = 0; i < config_setting_length(g); i++) {
                const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
                const struct key *k = find_key(gname, config_setting_name(s));

                snprintf(l->key, sizeof(l->key), "%s.%s", gname, config_setting_name(s));
                if (!k && strcmp(l->key, "reap.breaker_percent") == 0) {
                        report(l, line_of(s),
                               "'reap.breaker_percent' is gone: the breaker opens on a jump of the idle share ('reap.breaker_jump') or on broken-looking data ('reap.breaker_broken'), not on many idle guests");
                        continue;
                }
                if (!k) {
                        report(l, line_of(s), "unknown key '%s.%s'", gname,
                               config_setting_name(s));
                        continue;
                }
                (void)parse_key(l, s, k);
        }
}

static void parse_root(struct loader *l)
{
        const config_setting_t *root = config_root_setting(&l->cf);

        for (int i = 0; i < config_setting_length(root); i++) {
                const config_setting_t *g = config_setting_get_elem(root, (unsigned)i);
                const char *name = config_setting_name(g);

                if (!group_known(name)) {
                        report(l, line_of(g), "unknown %s '%s'",
                               config_setting_is_group(g) ? "group" : "key", name);
                        continue;
                }
                if (!config_setting_is_group(g)) {
                        report(l, line_of(g), "'%s' must be a group: %s = { ... };", name, name);
                        continue;
                }
                parse_group(l, g);
        }
}

/* --- defaults and cross-checks --- */

static int set_defaults(struct config *c)
{
        struct utsname u;

        c->ca_file = strdup("/etc/pve/pve-root-ca.pem");
        c->timeout_usec = 15 * USEC_PER_SEC;
        c->connect_timeout_usec = 5 * USEC_PER_SEC;
        c->retries = 2;
        c->max_response_bytes = (size_t)64 << 20;
        c->interval_usec = 10 * USEC_PER_SEC;
        c->window_usec = 10 * USEC_PER_MINUTE;
        c->stale_after_usec = USEC_PER_MINUTE;
        c->min_coverage = 0.9;
        c->node_scope = NODE_SCOPE_LOCAL;
        c->observe_qemu = c->observe_lxc = true;
        c->cpu_percent = 5.0;
        c->mem_mb = 1024.0;
        c->net_kbps = c->disk_kbps = c->cpu_share = -1.0;
        c->exclude_tags.v = calloc(2, sizeof(char *));
        if (c->exclude_tags.v) {
                c->exclude_tags.v[0] = strdup(CONFIG_KEEP_TAG);
                c->exclude_tags.n = c->exclude_tags.v[0] ? 1 : 0;
        }
        c->mode = REAP_MODE_OBSERVE;
        c->max_per_cycle = 1;
        c->max_per_hour = 10;
        c->breaker_jump = 30.0;
        c->breaker_broken = 20.0;
        c->cooldown_usec = 24 * USEC_PER_HOUR;
        c->retry_after_usec = 24 * USEC_PER_HOUR;
        c->compress = strdup("zstd");
        c->shutdown_timeout_usec = 180 * USEC_PER_SEC;
        c->force_stop = true;
        c->snapshot = true;
        c->task_timeout_usec = 6 * USEC_PER_HOUR;
        c->journal_file = strdup("/var/lib/proxreap/journal");
        c->status_file = strdup("/run/proxreap/status.json");
        c->notify_events = NOTIFY_ALL;
        c->notify_timeout_usec = 10 * USEC_PER_SEC;
        c->notify_retries = 3;
        if (uname(&u) == 0) {
                /* A PVE node's name is its short host name. */
                u.nodename[strcspn(u.nodename, ".")] = '\0';
                c->node_name = strdup(u.nodename);
        }
        if (!c->ca_file || !c->exclude_tags.n || !c->status_file || !c->node_name || !c->compress ||
            !c->journal_file)
                return -ENOMEM;
        return 0;
}

static int setting_line(struct loader *l, const char *path)
{
        return line_of(config_lookup(&l->cf, path));
}

static void check_credentials(struct loader *l)
{
        struct config *c = l->c;
        const char *cred_dir;
        char *file = NULL;

        if (c->token_id && c->user) {
                report(l, setting_line(l, "api.user"),
                       "set either 'api.token_id' (API token) or 'api.user' (ticket), not both");
                return;
        }
        if (!c->token_id && !c->user) {
                if (config_lookup(&l->cf, "api.token_id") || config_lookup(&l->cf, "api.user"))
                        return;
                report(l, setting_line(l, "api"),
                       "no credentials: set 'api.token_id' (recommended) or 'api.user'");
                return;
        }
        if (c->user && !c->password && !config_lookup(&l->cf, "api.password_file"))
                report(l, setting_line(l, "api.user"), "'api.user' needs 'api.password_file'");
        if (!c->token_id || c->token_secret || config_lookup(&l->cf, "api.token_secret_file"))
                return;
        /* systemd's LoadCredential=token:... puts the secret in
         * $CREDENTIALS_DIRECTORY; outside the service (the CLI run by root)
         * the file it copies from is read directly. */
        cred_dir = getenv("CREDENTIALS_DIRECTORY");
        if (cred_dir && *cred_dir) {
                if (asprintf(&file, "%s/token", cred_dir) < 0) {
                        l->oom = 1;
                        return;
                }
        } else if (!(file = strdup(CONFIG_DEFAULT_TOKEN_PATH))) {
                l->oom = 1;
                return;
        }
        (void)secret_read(l, setting_line(l, "api.token_id"), file, &c->token_secret);
        free(file);
}

/* The service cannot read the cluster CA on pmxcfs (0640 root:www-data):
 * systemd hands it over as the credential pve-root-ca. Used only while
 * api.ca_file keeps its default, and only when it holds a certificate (the
 * unit's fallback where /etc/pve is missing is the word "none"). */
static int ca_from_credentials(struct loader *l)
{
        const char *cred_dir = getenv("CREDENTIALS_DIRECTORY");
        char *file = NULL, head[16] = "";
        FILE *f;

        if (!cred_dir || !*cred_dir || config_lookup(&l->cf, "api.ca_file"))
                return 0;
        if (asprintf(&file, "%s/pve-root-ca", cred_dir) < 0) {
                l->oom = 1;
                return -ENOMEM;
        }
        f = fopen(file, "re");
        if (f && fgets(head, sizeof(head), f) && strncmp(head, "-----BEGIN", 10) == 0) {
                free(l->c->ca_file);
                l->c->ca_file = file;
                file = NULL;
        }
        if (f)
                fclose(f);
        free(file);
        return 0;
}

static void check_tls(struct loader *l)
{
        struct config *c = l->c;
        bool https = c->api_url && strncmp(c->api_url, "https://", 8) == 0;

        if (!https || ca_from_credentials(l) < 0)
                return;
        if (c->pinned_pubkey && strncmp(c->pinned_pubkey, "sha256//", 8) != 0)
                report(l, setting_line(l, "api.pinned_pubkey"),
                       "'pinned_pubkey' must look like \"sha256//BASE64\" (see README for how to compute it)");
        if (c->ca_file && !c->insecure && !(l->flags & CONFIG_OFFLINE) && access(c->ca_file, R_OK) < 0)
                report(l, setting_line(l, c->ca_file && config_lookup(&l->cf, "api.ca_file")
                                                  ? "api.ca_file"
                                                  : "api.url"),
                       "cannot read CA file '%s': %s (set 'api.ca_file')", c->ca_file,
                       strerror(errno));
}

/* Where to point at for a window/interval mismatch: whichever of the two
 * keys the file sets, else the observe group. */
static int window_line(struct loader *l)
{
        static const char *const paths[] = { "observe.window", "observe.interval", "observe" };

        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                if (config_lookup(&l->cf, paths[i]))
                        return setting_line(l, paths[i]);
        return 1;
}

/* Token auth: the header line "Authorization: PVEAPIToken=ID=SECRET" is
 * the one copy of the secret (token_secret points into it), in memory kept
 * out of core dumps; the API client sends it as it is. */
static void make_auth_header(struct loader *l)
{
        struct config *c = l->c;
        char *h;
        int n;

        if (!c->token_id || !c->token_secret)
                return;
        h = secret_new();
        if (!h) {
                l->oom = 1;
                return;
        }
        n = snprintf(h, SECRET_MAX, "Authorization: PVEAPIToken=%s=", c->token_id);
        if (n < 0 || (size_t)n + strlen(c->token_secret) >= SECRET_MAX) {
                report(l, setting_line(l, "api.token_id"), "'api.token_id' and its secret are too long");
                secret_drop(h);
                return;
        }
        memcpy(h + n, c->token_secret, strlen(c->token_secret) + 1);
        secret_drop(c->token_secret);
        c->auth_header = h;
        c->token_secret = h + n;
}

static void check_cross(struct loader *l)
{
        struct config *c = l->c;

        /* A key given but invalid was reported already: no "missing" too. */
        if (!c->api_url && !config_lookup(&l->cf, "api.url"))
                report(l, setting_line(l, "api"), "'api.url' is required");
        check_credentials(l);
        make_auth_header(l);
        check_tls(l);
        if (c->window_usec < c->interval_usec)
                report(l, window_line(l), "'observe.window' must be at least 'observe.interval'");
        else if (c->window_usec / c->interval_usec > CONFIG_MAX_WINDOW_SAMPLES)
                report(l, window_line(l),
                       "'observe.window' / 'observe.interval' gives %llu samples per guest, more than %d",
                       (unsigned long long)(c->window_usec / c->interval_usec),
                       CONFIG_MAX_WINDOW_SAMPLES);
        /* Unset: a minute (six updates of pvestatd), or three polls. */
        if (!config_lookup(&l->cf, "observe.stale_after") && c->stale_after_usec < 3 * c->interval_usec)
                c->stale_after_usec = 3 * c->interval_usec;
        else if (c->stale_after_usec < 2 * c->interval_usec)
                report(l, setting_line(l, "observe.stale_after"),
                       "'observe.stale_after' must be at least twice 'observe.interval'");
        if (!c->status_file || c->status_file[0] != '/')
                report(l, setting_line(l, "status.file"), "'status.file' must be an absolute path");
        if (c->prometheus_file && c->prometheus_file[0] != '/')
                report(l, setting_line(l, "status.prometheus_file"),
                       "'status.prometheus_file' must be an absolute path");
        if (c->webhook_url && c->notify_ca_file && !(l->flags & CONFIG_OFFLINE) &&
            access(c->notify_ca_file, R_OK) < 0)
                report(l, setting_line(l, "notify.ca_file"), "cannot read CA file '%s': %s",
                       c->notify_ca_file, strerror(errno));
        if (!c->journal_file || c->journal_file[0] != '/')
                report(l, setting_line(l, "reap.journal"), "'reap.journal' must be an absolute path");
        if (c->mode == REAP_MODE_REAP && !c->archive_storage &&
            !config_lookup(&l->cf, "reap.archive_storage"))
                report(l, setting_line(l, "reap.mode"),
                       "'reap.mode' = \"reap\" needs 'reap.archive_storage' (where the archives go)");
        /* Unset, in mark and reap mode: the history over the last 8 days
         * (a weekly job shows in it, whatever the day of the week), and
         * network and disk rules: a service with traffic but little CPU
         * is in use (docs/design-decisions.md, the labelled fleet). */
        if (c->mode != REAP_MODE_OBSERVE) {
                if (!config_lookup(&l->cf, "reap.history"))
                        c->history_usec = CONFIG_HISTORY_DEFAULT;
                config_reap_rules(c);
        }
        if (c->history_usec > 0 && c->history_usec < USEC_PER_HOUR)
                report(l, setting_line(l, "reap.history"),
                       "'reap.history' must be \"0\" (off) or at least \"1h\" (Proxmox keeps minute averages for the last hour)");
}

static void loader_read(struct loader *l)
{
        config_init(&l->cf);
        config_set_options(&l->cf, 0);
        if (!config_read_file(&l->cf, l->path)) {
                if (config_error_type(&l->cf) == CONFIG_ERR_FILE_IO)
                        report(l, 0, "cannot read configuration: %s", strerror(errno));
                else if (strstr(config_error_text(&l->cf), "syntax error"))
                        report(l, config_error_line(&l->cf), "%s", config_error_text(&l->cf));
                else if (strstr(config_error_text(&l->cf), "mismatched element type"))
                        report(l, config_error_line(&l->cf),
                               "syntax error: %s (the elements of one [...] array share one type: write them all as strings, like [\"100-199\", \"300\"])",
                               config_error_text(&l->cf));
                else
                        report(l, config_error_line(&l->cf), "syntax error: %s",
                               config_error_text(&l->cf));
                return;
        }
        parse_root(l);
        check_cross(l);
}

int config_load(const char *path, struct config **ret, char **ret_errors)
{
        return config_load_flags(path, 0, ret, ret_errors);
}

int config_load_flags(const char *path, unsigned flags, struct config **ret, char **ret_errors)
{
        struct loader l = { .path = path, .flags = flags };
        int r = 0;

        l.err = open_memstream(&l.err_text, &l.err_len);
        l.c = calloc(1, sizeof(*l.c));
        if (!l.err || !l.c || set_defaults(l.c) < 0 || !(l.c->path = strdup(path)))
                l.oom = 1;
        else
                loader_read(&l);
        config_destroy(&l.cf);
        if (l.err)
                fclose(l.err);
        if (l.oom || l.n_errors > 0) {
                r = l.oom ? -ENOMEM : -EINVAL;
                config_free(l.c);
                if (ret_errors && !l.oom) {
                        *ret_errors = l.err_text;
                        l.err_text = NULL;
                }
                free(l.err_text);
                return r;
        }
        free(l.err_text);
        *ret = l.c;
        return 0;
}

struct config *config_free(struct config *c)
{
        if (!c)
                return NULL;
        free(c->path);
        free(c->api_url);
        free(c->token_id);
        /* The token secret lives inside the header line once it is built. */
        if (c->auth_header)
                secret_drop(c->auth_header);
        else
                secret_drop(c->token_secret);
        free(c->user);
        secret_drop(c->password);
        free(c->ca_file);
        free(c->pinned_pubkey);
        strv_free(&c->nodes);
        free(c->node_name);
        strv_free(&c->exclude_tags);
        strv_free(&c->exclude_pools);
        strv_free(&c->include_tags);
        free(c->exclude_vmids);
        free(c->archive_storage);
        free(c->compress);
        free(c->journal_file);
        free(c->status_file);
        free(c->prometheus_file);
        free(c->webhook_url);
        free(c->notify_ca_file);
        free(c->notify_proxy);
        free(c->proxy);
        free(c);
        return NULL;
}

unsigned config_window_samples(const struct config *c)
{
        uint64_t n = (c->window_usec + c->interval_usec - 1) / c->interval_usec;

        return n == 0 ? 1 : (unsigned)n;
}

bool config_vmid_excluded(const struct config *c, uint32_t vmid, const struct vmid_range **ret_range)
{
        for (size_t i = 0; i < c->n_exclude_vmids; i++)
                if (vmid >= c->exclude_vmids[i].first && vmid <= c->exclude_vmids[i].last) {
                        if (ret_range)
                                *ret_range = &c->exclude_vmids[i];
                        return true;
                }
        return false;
}

bool config_node_in_scope(const struct config *c, const char *node)
{
        switch (c->node_scope) {
        case NODE_SCOPE_ALL:
                return true;
        case NODE_SCOPE_LOCAL:
                return c->node_name && strcmp(node, c->node_name) == 0;
        case NODE_SCOPE_LIST:
                for (size_t i = 0; i < c->nodes.n; i++)
                        if (strcmp(node, c->nodes.v[i]) == 0)
                                return true;
                return false;
        }
        return false;
}

void config_warn_transport(const struct config *c)
{
        if (c->webhook_url && strncmp(c->webhook_url, "http://", 7) == 0)
                log_warning("notify.webhook_url is plain http: events travel unencrypted");
        if (strncmp(c->api_url, "http://", 7) == 0)
                log_warning("api.url '%s' is plain http: the API credential travels unencrypted",
                            c->api_url);
        else if (c->insecure)
                log_warning("api.insecure is set: the Proxmox server certificate is NOT verified");
}

const char *reap_mode_to_string(enum reap_mode m)
{
        switch (m) {
        case REAP_MODE_OBSERVE:
                return "observe";
        case REAP_MODE_MARK:
                return "mark";
        case REAP_MODE_REAP:
                return "reap";
        }
        return "unknown";
}
