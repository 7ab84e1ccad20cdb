/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The streaming decoder of GET /cluster/resources: yajl callbacks fill one
 * scratch struct pve_guest per entry and hand it to the caller when the
 * entry's object closes. Memory use is constant in the size of the fleet.
 *
 * Robustness rules (the input is a network answer):
 *  - numbers are accepted as integer or real ("cpu": 0 is an integer);
 *  - template is 0/1 (or a JSON boolean); absent fields are tolerated;
 *  - an entry whose identity (type, vmid, node) is invalid is dropped and
 *    counted as rejected, with the reason kept for the log;
 *  - an entry with any other bad field (wrong type, duplicate key, a string
 *    that does not fit) is delivered without statistics, so it can never
 *    look idle, and also counted;
 *  - anything that is not {"data": [ ... ]} fails the whole answer.
 */
#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "pve.h"
#include "util.h"

enum res_field {
        RF_NONE = -1,
        RF_ID,
        RF_TYPE,
        RF_VMID,
        RF_NODE,
        RF_NAME,
        RF_STATUS,
        RF_LOCK,
        RF_HASTATE,
        RF_POOL,
        RF_TAGS,
        RF_TEMPLATE,
        RF_CPU,
        RF_MAXCPU,
        RF_MEM,
        RF_MAXMEM,
        RF_DISK,
        RF_MAXDISK,
        RF_NETIN,
        RF_NETOUT,
        RF_DISKREAD,
        RF_DISKWRITE,
        RF_UPTIME,
        RF_COUNT,
};

static const char *const field_names[RF_COUNT] = {
        [RF_ID] = "id",           [RF_TYPE] = "type",         [RF_VMID] = "vmid",
        [RF_NODE] = "node",       [RF_NAME] = "name",         [RF_STATUS] = "status",
        [RF_LOCK] = "lock",       [RF_HASTATE] = "hastate",   [RF_POOL] = "pool",
        [RF_TAGS] = "tags",       [RF_TEMPLATE] = "template", [RF_CPU] = "cpu",
        [RF_MAXCPU] = "maxcpu",   [RF_MEM] = "mem",           [RF_MAXMEM] = "maxmem",
        [RF_DISK] = "disk",       [RF_MAXDISK] = "maxdisk",   [RF_NETIN] = "netin",
        [RF_NETOUT] = "netout",   [RF_DISKREAD] = "diskread", [RF_DISKWRITE] = "diskwrite",
        [RF_UPTIME] = "uptime",
};

enum entry_type {
        ENTRY_UNKNOWN_TYPE,
        ENTRY_QEMU,
        ENTRY_LXC,
        ENTRY_OTHER,
};

struct pve_decoder {
        yajl_handle yajl;
        pve_guest_fn fn;
        void *userdata;
        unsigned depth;
        bool saw_data_key; /* the next value is the data array */
        bool in_data;
        bool data_done;
        enum res_field field; /* key being filled at entry level */
        /* current entry */
        struct pve_guest g;
        enum entry_type etype;
        uint32_t seen; /* bit per field: duplicate detection */
        char id[64];
        char damage[160]; /* first non-identity problem */
        char invalid[160]; /* first identity problem */
        bool have_vmid, have_node;
        struct pve_decode_stats stats;
        int cb_error;
        char error[256];
};

const char *guest_type_to_string(enum guest_type t)
{
        return t == GUEST_LXC ? "lxc" : "qemu";
}

static void entry_begin(struct pve_decoder *d)
{
        memset(&d->g, 0, sizeof(d->g));
        d->etype = ENTRY_UNKNOWN_TYPE;
        d->seen = 0;
        d->id[0] = d->damage[0] = d->invalid[0] = '\0';
        d->have_vmid = d->have_node = false;
        d->field = RF_NONE;
}

static bool is_identity(enum res_field f)
{
        return f == RF_TYPE || f == RF_VMID || f == RF_NODE;
}

static void entry_problem(struct pve_decoder *d, enum res_field f, const char *what)
{
        char *dst = is_identity(f) ? d->invalid : d->damage;

        if (dst[0] == '\0')
                snprintf(dst, sizeof(d->invalid), "field '%s' %s",
                         f == RF_NONE ? "?" : field_names[f], what);
}

static const char *entry_name(const struct pve_decoder *d, char *buf, size_t size)
{
        if (d->id[0])
                snprintf(buf, size, "'%s'", d->id);
        else if (d->have_vmid)
                snprintf(buf, size, "vmid %u", (unsigned)d->g.vmid);
        else
                snprintf(buf, size, "#%u", d->stats.guests + d->stats.rejected + d->stats.skipped);
        return buf;
}

static void count_reject(struct pve_decoder *d, const char *why)
{
        char name[96];

        if (d->stats.rejected++ == 0)
                snprintf(d->stats.first_reject, sizeof(d->stats.first_reject), "entry %s: %s",
                         entry_name(d, name, sizeof(name)), why);
}

static int entry_end(struct pve_decoder *d)
{
        if (d->etype == ENTRY_OTHER) {
                d->stats.skipped++;
                return 0;
        }
        if (d->etype == ENTRY_UNKNOWN_TYPE && !d->invalid[0])
                snprintf(d->invalid, sizeof(d->invalid), "missing or unknown 'type'");
        if (!d->invalid[0] && !d->have_vmid)
                snprintf(d->invalid, sizeof(d->invalid), "missing 'vmid'");
        if (!d->invalid[0] && !d->have_node)
                snprintf(d->invalid, sizeof(d->invalid), "missing 'node'");
        if (d->invalid[0]) {
                count_reject(d, d->invalid);
                return 0;
        }
        d->g.type = d->etype == ENTRY_LXC ? GUEST_LXC : GUEST_QEMU;
        if (d->g.status[0] == '\0')
                snprintf(d->g.status, sizeof(d->g.status), "unknown");
        if (d->damage[0]) {
                /* Deliver the guest so it is not mistaken for one that left
                 * the cluster, but with no numbers: it cannot look idle. */
                count_reject(d, d->damage);
                d->g.present = 0;
        }
        d->stats.guests++;
        return d->fn(d->userdata, &d->g);
}

static int set_string_field(struct pve_decoder *d, const char *s, size_t n)
{
        char *dst = NULL;
        size_t cap = 0;
        bool truncate_ok = false;

        switch (d->field) {
        case RF_ID:
                dst = d->id, cap = sizeof(d->id), truncate_ok = true;
                break;
        case RF_TYPE:
                d->etype = n == 4 && memcmp(s, "qemu", 4) == 0  ? ENTRY_QEMU
                           : n == 3 && memcmp(s, "lxc", 3) == 0 ? ENTRY_LXC
                                                                 : ENTRY_OTHER;
                return 0;
        case RF_NODE:
                dst = d->g.node, cap = sizeof(d->g.node);
                break;
        case RF_NAME:
                dst = d->g.name, cap = sizeof(d->g.name), truncate_ok = true;
                break;
        case RF_STATUS:
                dst = d->g.status, cap = sizeof(d->g.status);
                break;
        case RF_LOCK:
                dst = d->g.lock, cap = sizeof(d->g.lock);
                break;
        case RF_HASTATE:
                dst = d->g.hastate, cap = sizeof(d->g.hastate);
                break;
        case RF_POOL:
                dst = d->g.pool, cap = sizeof(d->g.pool);
                break;
        case RF_TAGS:
                /* Never truncated: a cut list could lose an opt-out tag. */
                dst = d->g.tags, cap = sizeof(d->g.tags);
                break;
        default:
                entry_problem(d, d->field, "is a string, not a number");
                return 0;
        }
        if (memchr(s, '\0', n)) {
                entry_problem(d, d->field, "holds a NUL character");
                return 0;
        }
        if (n >= cap) {
                if (!truncate_ok) {
                        entry_problem(d, d->field, "is too long");
                        return 0;
                }
                n = cap - 1;
        }
        memcpy(dst, s, n);
        dst[n] = '\0';
        if (d->field == RF_NODE) {
                d->have_node = true;
                if (!node_name_valid(d->g.node))
                        entry_problem(d, RF_NODE, "is not a valid node name");
        }
        return 0;
}

/* Parses a JSON number text as a non-negative value. */
static int number_value(const char *s, size_t n, double *ret_d, uint64_t *ret_u, bool *ret_int)
{
        char buf[64], *end;
        uint64_t u = 0;
        size_t i;

        /* Most numbers of a poll are counters: up to 19 digits cannot
         * overflow, and need neither a copy nor strtoull(). */
        for (i = 0; i < n && i < 19 && s[i] >= '0' && s[i] <= '9'; i++)
                u = u * 10 + (uint64_t)(s[i] - '0');
        if (i == n && n > 0) {
                *ret_int = true;
                *ret_u = u;
                *ret_d = (double)u;
                return 0;
        }
        if (n == 0 || n >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, s, n);
        buf[n] = '\0';
        *ret_int = strpbrk(buf, ".eE") == NULL;
        if (buf[0] == '-')
                return -ERANGE;
        if (*ret_int) {
                errno = 0;
                *ret_u = strtoull(buf, &end, 10);
                if (errno == ERANGE || *end)
                        return -ERANGE;
                *ret_d = (double)*ret_u;
                return 0;
        }
        *ret_d = strtod(buf, &end);
        if (*end || !isfinite(*ret_d) || *ret_d < 0 || *ret_d >= 18446744073709551616.0)
                return -ERANGE;
        *ret_u = (uint64_t)*ret_d;
        return 0;
}

static uint64_t *counter_field(struct pve_guest *g, enum res_field f, unsigned *ret_bit)
{
        switch (f) {
        case RF_MEM:
                *ret_bit = PVE_HAS_MEM;
                return &g->mem;
        case RF_MAXMEM:
                *ret_bit = PVE_HAS_MAXMEM;
                return &g->maxmem;
        case RF_DISK:
                *ret_bit = 0;
                return &g->disk;
        case RF_MAXDISK:
                *ret_bit = 0;
                return &g->maxdisk;
        case RF_NETIN:
                *ret_bit = PVE_HAS_NET;
                return &g->netin;
        case RF_NETOUT:
                *ret_bit = PVE_HAS_NET;
                return &g->netout;
        case RF_DISKREAD:
                *ret_bit = PVE_HAS_DISKIO;
                return &g->diskread;
        case RF_DISKWRITE:
                *ret_bit = PVE_HAS_DISKIO;
                return &g->diskwrite;
        case RF_UPTIME:
                *ret_bit = PVE_HAS_UPTIME;
                return &g->uptime;
        default:
                return NULL;
        }
}

static void set_number_field(struct pve_decoder *d, const char *s, size_t n)
{
        uint64_t u, *dst;
        unsigned bit = 0;
        bool integral;
        double v;

        if (d->field == RF_NONE)
                return;
        if (number_value(s, n, &v, &u, &integral) < 0) {
                entry_problem(d, d->field, "is not a non-negative number");
                return;
        }
        switch (d->field) {
        case RF_VMID:
                if (!integral || !vmid_valid(u)) {
                        entry_problem(d, RF_VMID, "is not a valid vmid (100-999999999)");
                        return;
                }
                d->g.vmid = (uint32_t)u;
                d->have_vmid = true;
                return;
        case RF_TEMPLATE:
                if (u > 1 || !integral)
                        entry_problem(d, RF_TEMPLATE, "is not 0 or 1");
                d->g.template = u == 1;
                return;
        case RF_CPU:
                d->g.cpu = v;
                d->g.present |= PVE_HAS_CPU;
                return;
        case RF_MAXCPU:
                d->g.maxcpu = v;
                return;
        default:
                break;
        }
        dst = counter_field(&d->g, d->field, &bit);
        if (!dst) {
                entry_problem(d, d->field, "is a number, not a string");
                return;
        }
        *dst = u;
        d->g.present |= bit;
}

/* Called for every key of every guest: lengths are computed once, and most
 * keys are rejected on their length alone. */
/* The fields of each name length, so that a key is compared with the
 * few names as long as it (a key of every entry of every poll). */
#define FIELD_NAME_MAX 9
#define FIELDS_PER_LENGTH 10

static enum res_field lookup_field(const unsigned char *key, size_t n)
{
        static int8_t by_len[FIELD_NAME_MAX + 1][FIELDS_PER_LENGTH];
        static bool ready;

        if (!ready) {
                memset(by_len, -1, sizeof(by_len));
                for (int f = 0; f < RF_COUNT; f++) {
                        size_t len = strlen(field_names[f]), k = 0;

                        assert(len <= FIELD_NAME_MAX);
                        while (by_len[len][k] >= 0)
                                k++;
                        assert(k < FIELDS_PER_LENGTH - 1);
                        by_len[len][k] = (int8_t)f;
                }
                ready = true;
        }
        if (n > FIELD_NAME_MAX)
                return RF_NONE;
        for (const int8_t *f = by_len[n]; *f >= 0; f++)
                if ((unsigned char)field_names[*f][0] == key[0] && memcmp(field_names[*f], key, n) == 0)
                        return (enum res_field)*f;
        return RF_NONE;
}

/* --- yajl callbacks: return 1 to go on, 0 to stop the parse --- */

static bool at_entry_level(const struct pve_decoder *d)
{
        return d->in_data && d->depth == 3;
}

/* A scalar or container as an element of the data array (not an object). */
static int data_element_not_object(struct pve_decoder *d)
{
        if (d->in_data && d->depth == 2) {
                entry_begin(d);
                count_reject(d, "not a JSON object");
        }
        return 1;
}

static int top_level_check(struct pve_decoder *d)
{
        if (d->depth == 0) {
                snprintf(d->error, sizeof(d->error), "answer is not a JSON object");
                return 0;
        }
        if (d->depth == 1 && d->saw_data_key) {
                snprintf(d->error, sizeof(d->error), "'data' is not an array");
                return 0;
        }
        return 1;
}

static int cb_null(void *ctx)
{
        struct pve_decoder *d = ctx;

        if (!top_level_check(d))
                return 0;
        if (at_entry_level(d))
                d->field = RF_NONE; /* null: treated as absent */
        return data_element_not_object(d);
}

static int cb_boolean(void *ctx, int v)
{
        struct pve_decoder *d = ctx;

        if (!top_level_check(d))
                return 0;
        if (!at_entry_level(d))
                return data_element_not_object(d);
        if (d->field == RF_TEMPLATE)
                d->g.template = v != 0;
        else if (d->field != RF_NONE)
                entry_problem(d, d->field, "is a boolean");
        return 1;
}

static int cb_number(void *ctx, const char *s, size_t n)
{
        struct pve_decoder *d = ctx;

        if (!top_level_check(d))
                return 0;
        if (!at_entry_level(d))
                return data_element_not_object(d);
        set_number_field(d, s, n);
        return 1;
}

static int cb_string(void *ctx, const unsigned char *s, size_t n)
{
        struct pve_decoder *d = ctx;

        if (!top_level_check(d))
                return 0;
        if (!at_entry_level(d))
                return data_element_not_object(d);
        if (d->field != RF_NONE)
                set_string_field(d, (const char *)s, n);
        return 1;
}

static int cb_map_key(void *ctx, const unsigned char *key, size_t n)
{
        struct pve_decoder *d = ctx;
        enum res_field f;

        if (d->depth == 1) {
                d->saw_data_key = n == 4 && memcmp(key, "data", 4) == 0;
                return 1;
        }
        if (!at_entry_level(d))
                return 1;
        f = lookup_field(key, n);
        d->field = f;
        if (f == RF_NONE)
                return 1;
        if (d->seen & (1u << f)) {
                /* Two values for one key: which is true is unknowable. */
                entry_problem(d, f, "appears twice (duplicate key)");
                d->field = RF_NONE;
                return 1;
        }
        d->seen |= 1u << f;
        return 1;
}

static int cb_start_map(void *ctx)
{
        struct pve_decoder *d = ctx;

        if (d->depth == 1 && d->saw_data_key) {
                snprintf(d->error, sizeof(d->error), "'data' is not an array");
                return 0;
        }
        if (d->in_data && d->depth == 2)
                entry_begin(d);
        else if (at_entry_level(d) && d->field != RF_NONE)
                entry_problem(d, d->field, "is an object");
        d->depth++;
        return 1;
}

static int cb_end_map(void *ctx)
{
        struct pve_decoder *d = ctx;
        int r;

        d->depth--;
        if (d->in_data && d->depth == 2) {
                r = entry_end(d);
                if (r < 0) {
                        d->cb_error = r;
                        return 0;
                }
        }
        return 1;
}

static int cb_start_array(void *ctx)
{
        struct pve_decoder *d = ctx;

        if (d->depth == 0) {
                snprintf(d->error, sizeof(d->error), "answer is not a JSON object");
                return 0;
        }
        if (d->depth == 1 && d->saw_data_key) {
                if (d->data_done) {
                        snprintf(d->error, sizeof(d->error), "duplicate 'data' key");
                        return 0;
                }
                d->in_data = true;
        } else if (at_entry_level(d) && d->field != RF_NONE)
                entry_problem(d, d->field, "is an array");
        else
                data_element_not_object(d);
        d->depth++;
        return 1;
}

static int cb_end_array(void *ctx)
{
        struct pve_decoder *d = ctx;

        d->depth--;
        if (d->in_data && d->depth == 1) {
                d->in_data = false;
                d->data_done = true;
                d->saw_data_key = false;
        }
        return 1;
}

static const yajl_callbacks callbacks = {
        .yajl_null = cb_null,
        .yajl_boolean = cb_boolean,
        .yajl_number = cb_number,
        .yajl_string = cb_string,
        .yajl_start_map = cb_start_map,
        .yajl_map_key = cb_map_key,
        .yajl_end_map = cb_end_map,
        .yajl_start_array = cb_start_array,
        .yajl_end_array = cb_end_array,
};

int pve_decoder_reset(struct pve_decoder *d)
{
        if (d->yajl)
                yajl_free(d->yajl);
        d->yajl = yajl_alloc(&callbacks, NULL, d);
        if (!d->yajl)
                return -ENOMEM;
        d->depth = 0;
        d->saw_data_key = d->in_data = d->data_done = false;
        d->field = RF_NONE;
        d->cb_error = 0;
        d->error[0] = '\0';
        memset(&d->stats, 0, sizeof(d->stats));
        return 0;
}

int pve_decoder_new(pve_guest_fn fn, void *userdata, struct pve_decoder **ret)
{
        struct pve_decoder *d = calloc(1, sizeof(*d));

        if (!d)
                return -ENOMEM;
        d->fn = fn;
        d->userdata = userdata;
        if (pve_decoder_reset(d) < 0) {
                free(d);
                return -ENOMEM;
        }
        *ret = d;
        return 0;
}

struct pve_decoder *pve_decoder_free(struct pve_decoder *d)
{
        if (!d)
                return NULL;
        if (d->yajl)
                yajl_free(d->yajl);
        free(d);
        return NULL;
}

static int parse_failed(struct pve_decoder *d, yajl_status st, const char *buf, size_t len)
{
        unsigned char *msg;

        if (d->cb_error)
                return d->cb_error;
        if (st == yajl_status_error && !d->error[0]) {
                msg = yajl_get_error(d->yajl, 0, (const unsigned char *)buf, len);
                snprintf(d->error, sizeof(d->error), "invalid JSON: %s",
                         msg ? (const char *)msg : "parse error");
                if (msg)
                        yajl_free_error(d->yajl, msg);
                d->error[strcspn(d->error, "\n")] = '\0';
        }
        return -EBADMSG;
}

int pve_decoder_feed(struct pve_decoder *d, const char *buf, size_t len)
{
        yajl_status st = yajl_parse(d->yajl, (const unsigned char *)buf, len);

        return st == yajl_status_ok ? 0 : parse_failed(d, st, buf, len);
}

int pve_decoder_finish(struct pve_decoder *d, struct pve_decode_stats *ret_stats)
{
        yajl_status st = yajl_complete_parse(d->yajl);

        if (st != yajl_status_ok)
                return parse_failed(d, st, NULL, 0);
        if (!d->data_done) {
                snprintf(d->error, sizeof(d->error), "answer has no 'data' array");
                return -EBADMSG;
        }
        if (ret_stats)
                *ret_stats = d->stats;
        return 0;
}

const char *pve_decoder_error(const struct pve_decoder *d)
{
        return d->error;
}
