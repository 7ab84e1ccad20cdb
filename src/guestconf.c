/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "guestconf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pve_api.h"
#include "util.h"

/* --- property strings ("local-lvm:vm-1-disk-0,backup=0,size=8G") --- */

struct prop {
        char volume[256]; /* the first value without a key, or file=/volume= */
        char size_text[24];
        int backup; /* -1: not given */
        bool cdrom;
};

static int parse_bool_text(const char *s)
{
        static const char *const yes[] = { "1", "yes", "on", "true" };
        static const char *const no[] = { "0", "no", "off", "false" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0)
                        return 1;
                if (strcasecmp(s, no[i]) == 0)
                        return 0;
        }
        return -1;
}

/* One "key=value" or bare value of a property string, n bytes: only the
 * options that decide what happens to the volume are read. */
static int prop_part(struct prop *p, const char *s, size_t n)
{
        const char *eq = memchr(s, '=', n);
        size_t klen = eq ? (size_t)(eq - s) : 0;
        size_t vlen = eq ? n - klen - 1 : n;
        const char *val = eq ? eq + 1 : s;
        char word[8];

        if (!eq || (klen == 4 && strncmp(s, "file", 4) == 0) ||
            (klen == 6 && strncmp(s, "volume", 6) == 0)) {
                if (p->volume[0] || vlen == 0 || vlen >= sizeof(p->volume))
                        return -EBADMSG; /* two volumes, none, or too long to name */
                memcpy(p->volume, val, vlen);
                p->volume[vlen] = '\0';
        } else if (klen == 4 && strncmp(s, "size", 4) == 0) {
                if (vlen >= sizeof(p->size_text))
                        return -EBADMSG;
                memcpy(p->size_text, val, vlen);
                p->size_text[vlen] = '\0';
        } else if (klen == 6 && strncmp(s, "backup", 6) == 0) {
                if (vlen >= sizeof(word))
                        return -EBADMSG;
                memcpy(word, val, vlen);
                word[vlen] = '\0';
                p->backup = parse_bool_text(word);
                if (p->backup < 0)
                        return -EBADMSG;
        } else if (klen == 5 && strncmp(s, "media", 5) == 0)
                p->cdrom = vlen == 5 && strncmp(val, "cdrom", 5) == 0;
        return 0;
}

static int prop_parse(const char *s, struct prop *ret)
{
        struct prop p = { .backup = -1 };

        while (*s) {
                size_t n = strcspn(s, ",");
                int r = n ? prop_part(&p, s, n) : 0;

                if (r < 0)
                        return r;
                s += n + (s[n] == ',');
        }
        if (!p.volume[0])
                return -EBADMSG;
        *ret = p;
        return 0;
}

/* "500G" -> bytes (format disk-size: a number and an optional K, M, G or
 * T, binary). */
static int parse_size(const char *s, uint64_t *ret)
{
        static const char units[] = "KMGT";
        char *end;
        double v, mult = 1;

        if (!(*s >= '0' && *s <= '9'))
                return -EINVAL;
        v = strtod(s, &end);
        if (*end) {
                const char *u = strchr(units, *end);

                if (!u || end[1])
                        return -EINVAL;
                mult = pow(1024.0, (double)(u - units + 1));
        }
        v *= mult;
        if (!isfinite(v) || v < 0 || v >= 18446744073709551616.0)
                return -EINVAL;
        *ret = (uint64_t)v;
        return 0;
}

/* --- which keys are volumes --- */

/* "scsi12" with bus "scsi" and at most max: true. */
static bool numbered(const char *key, const char *bus, unsigned max)
{
        size_t n = strlen(bus);
        uint64_t i;

        return strncmp(key, bus, n) == 0 && key[n] && parse_u64(key + n, 0, max, &i) >= 0 &&
               (key[n] != '0' || !key[n + 1]);
}

enum key_kind {
        KEY_OTHER,
        KEY_DISK, /* qemu drive */
        KEY_EFI,
        KEY_TPM,
        KEY_UNUSED,
        KEY_VMSTATE,
        KEY_ROOTFS,
        KEY_MOUNT,
};

static enum key_kind key_kind(enum guest_type t, const char *key)
{
        if (numbered(key, "unused", 255))
                return KEY_UNUSED;
        if (t == GUEST_LXC)
                return strcmp(key, "rootfs") == 0  ? KEY_ROOTFS
                       : numbered(key, "mp", 255) ? KEY_MOUNT
                                                   : KEY_OTHER;
        if (numbered(key, "ide", 3) || numbered(key, "sata", 5) || numbered(key, "scsi", 30) ||
            numbered(key, "virtio", 15))
                return KEY_DISK;
        if (strcmp(key, "efidisk0") == 0)
                return KEY_EFI;
        if (strcmp(key, "tpmstate0") == 0)
                return KEY_TPM;
        if (strcmp(key, "vmstate") == 0)
                return KEY_VMSTATE;
        return KEY_OTHER;
}

/* vzdump's rule for one volume: NULL when an archive holds it, else why
 * not. *skip: not the guest's data at all (a cd-rom, an empty drive). */
static const char *archive_rule(const struct guest_conf *c, enum key_kind k, const struct prop *p,
                                bool *skip)
{
        const char *bios = guestconf_field(c, "bios");

        *skip = false;
        switch (k) {
        case KEY_DISK:
        case KEY_EFI:
        case KEY_TPM:
                if (p->cdrom || strcmp(p->volume, "none") == 0) {
                        /* A cd-rom image is not the guest's; a cloud-init
                         * drive is generated again from the config. */
                        *skip = true;
                        return NULL;
                }
                if (p->backup == 0)
                        return "is excluded from backup (backup=0)";
                if (k == KEY_EFI && (!bios || strcmp(bios, "ovmf") != 0))
                        return "is not backed up (an efidisk without bios 'ovmf')";
                if (p->volume[0] == '/')
                        return "is a host device: proxreap cannot restore it";
                return NULL;
        case KEY_ROOTFS:
                return NULL;
        case KEY_MOUNT:
                if (p->volume[0] == '/')
                        return strncmp(p->volume, "/dev/", 5) == 0
                                       ? "is a device mount point, which vzdump leaves out"
                                       : "is a bind mount, which vzdump leaves out";
                if (p->backup != 1)
                        return "is excluded from backup (backup=1 is not set)";
                return NULL;
        case KEY_UNUSED:
                return "is not in any archive: vzdump never archives unused volumes";
        case KEY_VMSTATE:
                return "is not in any archive: vzdump leaves out a hibernated guest's memory";
        case KEY_OTHER:
                break;
        }
        *skip = true;
        return NULL;
}

static int add_volume(struct guest_conf *c, const char *key, enum key_kind k, const char *value)
{
        struct guest_volume *v, *grown;
        struct prop p;
        bool skip = false, parsed;
        const char *why;

        parsed = prop_parse(value, &p) >= 0 &&
                 (!p.size_text[0] || parse_size(p.size_text, &(uint64_t){ 0 }) >= 0);
        /* A line proxreap cannot read is a volume it cannot vouch for. */
        why = parsed ? archive_rule(c, k, &p, &skip)
                     : "cannot be read by proxreap, so it cannot tell whether an archive holds it";
        if (skip)
                return 0;
        grown = realloc(c->volumes, (c->n_volumes + 1) * sizeof(*grown));
        if (!grown)
                return -ENOMEM;
        c->volumes = grown;
        v = &c->volumes[c->n_volumes++];
        *v = (struct guest_volume){ .archived = !why, .why = why };
        snprintf(v->key, sizeof(v->key), "%s", key);
        snprintf(v->volid, sizeof(v->volid), "%.*s", (int)strcspn(parsed ? p.volume : value, ","),
                 parsed ? p.volume : value);
        if (parsed) {
                snprintf(v->size_text, sizeof(v->size_text), "%s", p.size_text);
                if (p.size_text[0])
                        (void)parse_size(p.size_text, &v->size);
        }
        return 0;
}

/* Volumes in key order: json objects keep insertion order, which differs
 * between a file and an answer. */
static int cmp_keys(const void *a, const void *b)
{
        return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int classify(struct guest_conf *c)
{
        size_t n = json_object_size(c->fields), i = 0;
        const char **keys = calloc(n ? n : 1, sizeof(*keys));
        const char *key;
        json_t *v;
        int r = 0;

        if (!keys)
                return -ENOMEM;
        json_object_foreach(c->fields, key, v)
                keys[i++] = key;
        qsort(keys, n, sizeof(*keys), cmp_keys);
        for (i = 0; i < n && r >= 0; i++) {
                enum key_kind k = key_kind(c->type, keys[i]);

                if (k != KEY_OTHER)
                        r = add_volume(c, keys[i], k,
                                       json_string_value(json_object_get(c->fields, keys[i])));
        }
        free(keys);
        return r;
}

/* --- building --- */

static int set_field(struct guest_conf *c, const char *key, const char *value)
{
        return json_object_set_new(c->fields, key, json_string(value)) < 0 ? -ENOMEM : 0;
}

/* A JSON scalar as the configuration file writes it. */
static int scalar_text(json_t *v, char *buf, size_t size, const char **ret)
{
        if (json_is_string(v))
                *ret = json_string_value(v);
        else if (json_is_integer(v))
                snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (json_is_real(v))
                snprintf(buf, size, "%.17g", json_real_value(v));
        else if (json_is_boolean(v))
                snprintf(buf, size, "%d", json_is_true(v) ? 1 : 0);
        else
                return -EINVAL;
        if (!json_is_string(v))
                *ret = buf;
        return 0;
}

static void trim_right(char *s)
{
        size_t n = strlen(s);

        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' ||
                         s[n - 1] == '\r'))
                s[--n] = '\0';
}

static int start(enum guest_type t, struct guest_conf *c)
{
        *c = (struct guest_conf){ .type = t, .fields = json_object() };
        return c->fields ? 0 : -ENOMEM;
}

static int finish(struct guest_conf *c, struct guest_conf *ret, int r)
{
        if (r >= 0)
                r = classify(c);
        if (r < 0) {
                guestconf_done(c);
                return r;
        }
        *ret = *c;
        return 0;
}

int guestconf_from_json(enum guest_type t, json_t *config, struct guest_conf *ret, char *err,
                        size_t errsz)
{
        struct guest_conf c;
        const char *key;
        json_t *v;
        int r;

        if (!json_is_object(config)) {
                snprintf(err, errsz, "the configuration is not an object");
                return -EBADMSG;
        }
        r = start(t, &c);
        json_object_foreach(config, key, v) {
                char num[64], *desc;
                const char *s = NULL;

                if (strcmp(key, "lxc") == 0 && json_array_size(v) > 0)
                        c.raw_lxc = true;
                if (r < 0 || strcmp(key, "digest") == 0 || scalar_text(v, num, sizeof(num), &s) < 0)
                        continue;
                if (strcmp(key, "description") != 0) {
                        r = set_field(&c, key, s);
                        continue;
                }
                desc = strdup(s);
                if (!desc) {
                        r = -ENOMEM;
                        continue;
                }
                trim_right(desc);
                r = set_field(&c, key, desc);
                free(desc);
        }
        return finish(&c, ret, r);
}

static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* %XX escapes of a description comment line (PVE::Tools::decode_text). */
static void decode_text(const char *in, size_t n, char *out)
{
        size_t o = 0;

        for (size_t i = 0; i < n; i++) {
                int hi = i + 2 < n ? hex_digit(in[i + 1]) : -1;
                int lo = hi >= 0 ? hex_digit(in[i + 2]) : -1;

                if (in[i] == '%' && lo >= 0) {
                        out[o++] = (char)(hi << 4 | lo);
                        i += 2;
                } else
                        out[o++] = in[i];
        }
        out[o] = '\0';
}

static int text_map_line(struct guest_conf *c, const char *line)
{
        /* #qmdump#map:<dev>:drive-<dev>:<storage>:<format>: */
        const char *dev = line + strlen("#qmdump#map:");
        size_t n = strcspn(dev, ":");
        char key[16];

        if (!c->map && !(c->map = json_object()))
                return -ENOMEM;
        if (n == 0 || n >= sizeof(key))
                return -EBADMSG;
        memcpy(key, dev, n);
        key[n] = '\0';
        return json_object_set_new(c->map, key, json_true()) < 0 ? -ENOMEM : 0;
}

static int text_comment(char **desc, const char *line, size_t n)
{
        size_t old = *desc ? strlen(*desc) : 0, len;
        char *d = realloc(*desc, old + n + 2);

        if (!d)
                return -ENOMEM;
        decode_text(line + 1, n - 1, d + old);
        len = old + strlen(d + old);
        d[len] = '\n';
        d[len + 1] = '\0';
        *desc = d;
        return 0;
}

static int text_key_line(struct guest_conf *c, const char *line, size_t n)
{
        size_t k = strcspn(line, ":");
        char key[64], *value;
        const char *v;
        int r;

        if (k == 0 || k >= sizeof(key) || k >= n || strspn(line, "abcdefghijklmnopqrstuvwxyz"
                                                                  "0123456789_-.") != k)
                return -EBADMSG;
        memcpy(key, line, k);
        key[k] = '\0';
        if (strncmp(key, "lxc.", 4) == 0) {
                c->raw_lxc = true;
                return 0; /* raw LXC keys: not compared */
        }
        for (v = line + k + 1; v < line + n && (*v == ' ' || *v == '\t'); v++)
                ;
        value = strndup(v, (size_t)(line + n - v));
        if (!value)
                return -ENOMEM;
        trim_right(value);
        r = set_field(c, key, value);
        free(value);
        return r;
}

static int text_lines(struct guest_conf *c, const char *text, char **desc, unsigned *ret_line)
{
        unsigned no = 0;
        int r = 0;

        for (const char *l = text, *next; *l && r >= 0; l = next) {
                size_t n = strcspn(l, "\n");

                next = l + n + (l[n] == '\n');
                *ret_line = ++no;
                if (n == 0 || strspn(l, " \t\r") == n)
                        continue;
                if (l[0] == '[')
                        break; /* a snapshot or pending section: not the guest's config */
                if (strncmp(l, "#qmdump#map:", 12) == 0)
                        r = text_map_line(c, l);
                else if (strncmp(l, "#qmdump#", 8) == 0 || strncmp(l, "#vzdump#", 8) == 0)
                        continue;
                else if (l[0] == '#')
                        r = text_comment(desc, l, n);
                else
                        r = text_key_line(c, l, n);
        }
        return r;
}

int guestconf_from_text(enum guest_type t, const char *text, struct guest_conf *ret, char *err,
                        size_t errsz)
{
        struct guest_conf c;
        char *desc = NULL;
        unsigned line = 0;
        int r = start(t, &c);

        if (r >= 0)
                r = text_lines(&c, text, &desc, &line);
        if (r == -EBADMSG)
                snprintf(err, errsz, "line %u of the archived configuration cannot be parsed",
                         line);
        if (r >= 0 && desc) {
                trim_right(desc);
                r = set_field(&c, "description", desc);
        }
        free(desc);
        return finish(&c, ret, r);
}

void guestconf_done(struct guest_conf *c)
{
        json_decref(c->fields);
        json_decref(c->map);
        free(c->volumes);
        *c = (struct guest_conf){ 0 };
}

const char *guestconf_field(const struct guest_conf *c, const char *key)
{
        return json_string_value(json_object_get(c->fields, key));
}

const struct guest_volume *guestconf_unarchived(const struct guest_conf *c)
{
        for (size_t i = 0; i < c->n_volumes; i++)
                if (!c->volumes[i].archived)
                        return &c->volumes[i];
        return NULL;
}

void guestconf_volume_reason(const struct guest_conf *c, const struct guest_volume *v, char *buf,
                             size_t size)
{
        enum key_kind k = key_kind(c->type, v->key);
        const char *what = k == KEY_UNUSED    ? "unused volume"
                           : k == KEY_MOUNT   ? "mount point"
                           : k == KEY_VMSTATE ? "saved memory"
                           : k == KEY_ROOTFS  ? "root file system"
                                              : "disk";

        snprintf(buf, size, "%s %s (%s%s%s) %s", what, v->key, v->volid, v->size_text[0] ? ", " : "",
                 v->size_text, v->why ? v->why : "is archived");
}

json_t *guestconf_fields_json(const struct guest_conf *c)
{
        return json_deep_copy(c->fields);
}

json_t *guestconf_volumes_json(const struct guest_conf *c)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < c->n_volumes; i++)
                if (json_array_append_new(a, json_pack("{s:s, s:s, s:I}", "key", c->volumes[i].key,
                                                       "volid", c->volumes[i].volid, "size",
                                                       (json_int_t)c->volumes[i].size)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

/* --- comparing --- */

static bool compared(const char *key)
{
        static const char *const skip[] = { "digest", "lock", "parent", "snaptime", "lxc" };

        for (size_t i = 0; i < ELEMENTSOF(skip); i++)
                if (strcmp(key, skip[i]) == 0)
                        return false;
        return strncmp(key, "lxc.", 4) != 0 && !numbered(key, "unused", 255);
}

static bool number_text(const char *s, double *ret)
{
        char *end;

        if (!*s || strpbrk(s, "xXpPnNiI"))
                return false;
        *ret = strtod(s, &end);
        return *end == '\0' && isfinite(*ret);
}

/* Equal as the file writes them, or as numbers (an answer's 0.5 is the
 * file's "0.5", its 1.1 the file's "1.1"). */
static bool same_value(const char *a, const char *b)
{
        double x, y;

        if (strcmp(a, b) == 0)
                return true;
        return number_text(a, &x) && number_text(b, &y) && x == y;
}

static void shorten(const char *s, char *buf, size_t size)
{
        size_t n = strcspn(s, "\n");

        if (n > 60)
                n = 60;
        snprintf(buf, size, "%.*s%s", (int)n, s, s[n] ? "..." : "");
}

/* First key of a that b lacks or holds differently. */
static int compare_one_way(const struct guest_conf *a, const char *a_name,
                           const struct guest_conf *b, const char *b_name, char *why, size_t size)
{
        const char *key;
        json_t *v;

        json_object_foreach(a->fields, key, v) {
                const char *x = json_string_value(v), *y = guestconf_field(b, key);
                char sx[80], sy[80];

                if (!compared(key) || (y && same_value(x, y)))
                        continue;
                shorten(x, sx, sizeof(sx));
                if (!y)
                        snprintf(why, size, "'%s' is '%s' %s and not set %s", key, sx, a_name,
                                 b_name);
                else {
                        shorten(y, sy, sizeof(sy));
                        snprintf(why, size, "'%s' is '%s' %s and '%s' %s", key, sx, a_name, sy,
                                 b_name);
                }
                return 1;
        }
        return 0;
}

int guestconf_compare(const struct guest_conf *want, const char *want_name,
                      const struct guest_conf *got, const char *got_name, char *why, size_t size)
{
        if (want->type != got->type) {
                snprintf(why, size, "it is a %s %s and a %s %s", guest_type_to_string(want->type),
                         want_name, guest_type_to_string(got->type), got_name);
                return 1;
        }
        if (compare_one_way(want, want_name, got, got_name, why, size))
                return 1;
        return compare_one_way(got, got_name, want, want_name, why, size);
}

static const struct guest_volume *find_volume(const struct guest_conf *c, const char *key)
{
        for (size_t i = 0; i < c->n_volumes; i++)
                if (strcmp(c->volumes[i].key, key) == 0)
                        return &c->volumes[i];
        return NULL;
}

int guestconf_check_archive(const struct guest_conf *pinned, const struct guest_conf *archive,
                            char *why, size_t size)
{
        char cmp[400];

        if (guestconf_compare(pinned, "in the guest", archive, "in the archive", cmp, sizeof(cmp))) {
                snprintf(why, size, "the archive holds another configuration: %s", cmp);
                return 1;
        }
        for (size_t i = 0; i < pinned->n_volumes; i++) {
                const struct guest_volume *want = &pinned->volumes[i];
                const struct guest_volume *got = find_volume(archive, want->key);
                bool inside = pinned->type == GUEST_QEMU
                                      ? json_is_true(json_object_get(archive->map, want->key))
                                      : got && got->archived;

                if (!want->archived || !got || strcmp(got->volid, want->volid) != 0 ||
                    got->size != want->size || !inside) {
                        snprintf(why, size, "the archive does not hold %s %s (%s)",
                                 pinned->type == GUEST_QEMU ? "disk" : "volume", want->key,
                                 want->volid);
                        return 1;
                }
        }
        return 0;
}

/* --- identity --- */

/* The value of option opt in a property string (a MAC is "virtio=MAC" in
 * qemu: the first option whose value looks like one). */
static bool option_value(const char *s, const char *opt, char *buf, size_t size)
{
        size_t n = strlen(opt);

        for (const char *p = s; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
                size_t len = strcspn(p, ",");

                if (len > n && p[n] == '=' && strncmp(p, opt, n) == 0) {
                        snprintf(buf, size, "%.*s", (int)(len - n - 1), p + n + 1);
                        return true;
                }
        }
        return false;
}

static bool mac_of(const char *net, char *buf, size_t size)
{
        for (const char *p = net; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
                size_t len = strcspn(p, ","), eq = strcspn(p, "=");

                /* NN:NN:NN:NN:NN:NN after "model=" or "hwaddr=" */
                if (eq < len && len - eq - 1 == 17 && p[eq + 3] == ':' && p[eq + 18 - 3] == ':') {
                        snprintf(buf, size, "%.17s", p + eq + 1);
                        return true;
                }
        }
        return false;
}

/* The identity value of key in c ("" when none). */
static void identity(const struct guest_conf *c, const char *key, char *buf, size_t size)
{
        const char *v = guestconf_field(c, key);

        buf[0] = '\0';
        if (!v)
                return;
        if (strcmp(key, "smbios1") == 0)
                (void)option_value(v, "uuid", buf, size);
        else if (strcmp(key, "meta") == 0)
                (void)option_value(v, "ctime", buf, size);
        else if (strncmp(key, "net", 3) == 0)
                (void)mac_of(v, buf, size);
        else
                snprintf(buf, size, "%s", v);
}

/* The name a guest has: qemu's name, lxc's hostname. */
static const char *name_of(const struct guest_conf *c)
{
        return guestconf_field(c, c->type == GUEST_LXC ? "hostname" : "name");
}

enum guest_identity guestconf_identity(const struct guest_conf *pinned, const struct guest_conf *got)
{
        static const char *const keys[] = { "smbios1", "vmgenid", "meta" };
        const char *key, *a_name = name_of(pinned), *b_name = name_of(got);
        unsigned strong = 0, macs = 0;
        json_t *v;
        char a[128], b[128];

        if (pinned->type != got->type)
                return IDENTITY_OTHER;
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                identity(pinned, keys[i], a, sizeof(a));
                identity(got, keys[i], b, sizeof(b));
                if (a[0] && b[0] && strcmp(a, b) != 0)
                        return IDENTITY_OTHER;
                strong += a[0] && b[0];
        }
        json_object_foreach(pinned->fields, key, v) {
                if (!numbered(key, "net", 31))
                        continue;
                identity(pinned, key, a, sizeof(a));
                identity(got, key, b, sizeof(b));
                if (a[0] && b[0] && strcasecmp(a, b) != 0)
                        return IDENTITY_OTHER;
                macs += a[0] && b[0];
        }
        /* uuid, vmgenid and ctime are made anew for a new guest: agreeing,
         * it is the same one, renamed or not. A MAC alone can be copied (a
         * restore without unique): only with the same name. */
        if (strong)
                return IDENTITY_SAME;
        if (macs && ((!a_name && !b_name) || (a_name && b_name && strcmp(a_name, b_name) == 0)))
                return IDENTITY_SAME;
        return IDENTITY_UNSURE;
}

/* --- facts --- */

bool guestconf_snapshot_is_ours(const char *name, const char *description)
{
        return name && description &&
               strncmp(name, GUESTCONF_SNAPSHOT_PREFIX, strlen(GUESTCONF_SNAPSHOT_PREFIX)) == 0 &&
               strncmp(description, GUESTCONF_SNAPSHOT_DESCRIPTION,
                       strlen(GUESTCONF_SNAPSHOT_DESCRIPTION)) == 0;
}

static void count_snapshots(json_t *list, struct conf_facts *f)
{
        size_t i, off = 0;
        json_t *it;

        json_array_foreach(list, i, it) {
                const char *name = json_string_value(json_object_get(it, "name"));
                const char *desc = json_string_value(json_object_get(it, "description"));

                if (!name || strcmp(name, "current") == 0 || guestconf_snapshot_is_ours(name, desc))
                        continue;
                f->snapshots++;
                if (off + 1 < sizeof(f->snapshot_names))
                        off += (size_t)snprintf(f->snapshot_names + off,
                                                sizeof(f->snapshot_names) - off, "%s%s",
                                                off ? ", " : "", name);
        }
        if (off >= sizeof(f->snapshot_names))
                memcpy(f->snapshot_names + sizeof(f->snapshot_names) - 4, "...", 4);
}

void guestconf_facts(const struct guest_conf *current, const struct guest_conf *pending_view,
                     json_t *snapshots, struct conf_facts *ret)
{
        const struct guest_volume *v = guestconf_unarchived(current);
        const char *prot = guestconf_field(current, "protection");
        char why[2];

        *ret = (struct conf_facts){ .protection = prot && parse_bool_text(prot) == 1 };
        if (v)
                guestconf_volume_reason(current, v, ret->unkept, sizeof(ret->unkept));
        else if (current->raw_lxc)
                /* The archive holds them, but only root may set them: a
                 * restore by proxreap's token would drop them. */
                snprintf(ret->unkept, sizeof(ret->unkept),
                         "raw LXC keys (lxc.*) only root can restore: proxreap's restore would lose them");
        /* The pending view differs from the current one exactly when the
         * file has a [PENDING] section. */
        ret->pending = pending_view &&
                       guestconf_compare(current, "now", pending_view, "pending", why, sizeof(why));
        if (snapshots)
                count_snapshots(snapshots, ret);
}

/* --- reading --- */

static int read_view(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                     bool current, struct guest_conf *conf, struct pve_guest_config *basics)
{
        json_t *data = NULL;
        char err[256];
        int r;

        r = pve_guest_config_json(p, t, node, vmid, current, &data);
        if (r >= 0 && basics)
                r = pve_decode_guest_config(data, basics);
        if (r >= 0 && (r = guestconf_from_json(t, data, conf, err, sizeof(err))) < 0)
                pve_set_error(p, "configuration of guest %" PRIu32 ": %s", vmid, err);
        json_decref(data);
        return r;
}

int guestconf_read(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                   struct guest_reading *ret)
{
        struct guest_reading g = { 0 };
        struct guest_conf pending = { 0 };
        struct pve_guest_config basics;
        json_t *snaps = NULL;
        int r;

        r = read_view(p, t, node, vmid, true, &g.conf, &basics);
        if (r >= 0)
                r = read_view(p, t, node, vmid, false, &pending, NULL);
        /* Always: a snapshot outlives the config's parent line (a
         * rollback to an older one, then its deletion, leaves none). */
        if (r >= 0)
                r = pve_snapshot_list(p, t, node, vmid, &snaps);
        if (r >= 0) {
                guestconf_facts(&g.conf, &pending, snaps, &g.facts);
                snprintf(g.digest, sizeof(g.digest), "%s", basics.digest);
                snprintf(g.tags, sizeof(g.tags), "%s", basics.tags);
                snprintf(g.lock, sizeof(g.lock), "%s", basics.lock);
                g.template = basics.template;
                g.snapshots = snaps;
                snaps = NULL;
        }
        json_decref(snaps);
        guestconf_done(&pending);
        if (r < 0) {
                guestconf_done(&g.conf);
                return r;
        }
        *ret = g;
        return 0;
}

void guest_reading_done(struct guest_reading *r)
{
        guestconf_done(&r->conf);
        json_decref(r->snapshots);
        r->snapshots = NULL;
}

bool guest_reading_has_our_snapshot(const struct guest_reading *r, const char *name)
{
        size_t i;
        json_t *it;

        if (!name || !name[0])
                return false;
        json_array_foreach(r->snapshots, i, it) {
                const char *n = json_string_value(json_object_get(it, "name"));

                if (n && strcmp(n, name) == 0 &&
                    guestconf_snapshot_is_ours(n, json_string_value(json_object_get(it, "description"))))
                        return true;
        }
        return false;
}
