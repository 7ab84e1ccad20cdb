/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "pve_api.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* --- decoding helpers --- */

static void copy_str(json_t *o, const char *key, char *buf, size_t size)
{
        const char *v = json_string_value(json_object_get(o, key));

        snprintf(buf, size, "%s", v ? v : "");
}

/* Perl numbers arrive as integers, reals or (from some plugins) strings.
 * A string must be a decimal number and nothing else: no blank, no hex, no
 * "inf" or "nan" (strtod() would take them all). */
static bool get_number(json_t *o, const char *key, double *ret)
{
        json_t *v = json_object_get(o, key);
        const char *s;
        char *end;
        double d;

        if (json_is_number(v)) {
                *ret = json_number_value(v);
                return true;
        }
        if (!json_is_string(v))
                return false;
        s = json_string_value(v);
        if (!(*s == '-' || *s == '.' || (*s >= '0' && *s <= '9')) || strpbrk(s, "xXpP"))
                return false;
        d = strtod(s, &end);
        if (end == s || *end != '\0' || !isfinite(d))
                return false;
        *ret = d;
        return true;
}

/* A size or count: 0 when absent, negative or beyond uint64_t (converting
 * such a double is undefined behaviour). */
static uint64_t get_u64(json_t *o, const char *key)
{
        double d = 0;

        return get_number(o, key, &d) && d > 0 && d < 18446744073709551616.0 ? (uint64_t)d : 0;
}

static bool get_bool(json_t *o, const char *key)
{
        double d = 0;
        json_t *v = json_object_get(o, key);

        return json_is_true(v) || (get_number(o, key, &d) && d != 0);
}

int pve_upid_parse(const char *s, struct pve_upid *ret)
{
        /* UPID:node:pid(8 hex):pstart(8-9 hex):starttime(8 hex):type:id:user: */
        char buf[PVE_UPID_MAX], *f[8], *tok;
        size_t n = 0, len;
        struct pve_upid u = { 0 };

        if (!s || strlen(s) >= sizeof(buf) || strncmp(s, "UPID:", 5) != 0)
                return -EINVAL;
        len = strlen(s);
        if (s[len - 1] != ':' || strpbrk(s, " \t\r\n\v\f/"))
                return -EINVAL;
        memcpy(buf, s, len + 1);
        /* strtok would merge the empty id field: split by hand. */
        for (tok = buf; n < ELEMENTSOF(f); n++) {
                char *c = strchr(tok, ':');

                if (!c)
                        break;
                *c = '\0';
                f[n] = tok;
                tok = c + 1;
        }
        if (n != 8 || *tok != '\0')
                return -EINVAL;
        if (!node_name_valid(f[1]) || strlen(f[2]) != 8 || strlen(f[3]) < 8 ||
            strlen(f[3]) > 9 || strlen(f[4]) != 8 || !*f[5] || !*f[7])
                return -EINVAL;
        for (size_t i = 2; i <= 4; i++)
                if (strspn(f[i], "0123456789abcdefABCDEF") != strlen(f[i]))
                        return -EINVAL;
        snprintf(u.node, sizeof(u.node), "%s", f[1]);
        if (strlen(f[5]) >= sizeof(u.type) || strlen(f[6]) >= sizeof(u.id) ||
            strlen(f[7]) >= sizeof(u.user))
                return -EINVAL;
        snprintf(u.user, sizeof(u.user), "%s", f[7]);
        snprintf(u.type, sizeof(u.type), "%s", f[5]);
        snprintf(u.id, sizeof(u.id), "%s", f[6]);
        u.starttime = strtoull(f[4], NULL, 16);
        *ret = u;
        return 0;
}

int pve_decode_task_status(json_t *data, struct pve_task_status *ret)
{
        const char *status = json_string_value(json_object_get(data, "status"));
        struct pve_task_status t = { 0 };

        if (!status)
                return -EBADMSG;
        if (strcmp(status, "running") == 0)
                t.running = true;
        else if (strcmp(status, "stopped") == 0) {
                copy_str(data, "exitstatus", t.exitstatus, sizeof(t.exitstatus));
                if (!t.exitstatus[0])
                        snprintf(t.exitstatus, sizeof(t.exitstatus), "no exit status");
        } else
                return -EBADMSG;
        *ret = t;
        return 0;
}

bool pve_task_succeeded(const char *exitstatus)
{
        uint64_t n;

        if (strcmp(exitstatus, "OK") == 0)
                return true;
        return strncmp(exitstatus, "WARNINGS: ", 10) == 0 &&
               parse_u64(exitstatus + 10, 0, UINT32_MAX, &n) >= 0;
}

void pve_volume_storage(const char *spec, char *buf, size_t size)
{
        size_t n = spec ? strcspn(spec, ":,") : 0;

        if (!spec || spec[n] != ':')
                n = 0;
        snprintf(buf, size, "%.*s", (int)n, spec ? spec : "");
}

int pve_decode_guest_config(json_t *data, struct pve_guest_config *ret)
{
        struct pve_guest_config c = { 0 };

        if (!json_is_object(data))
                return -EBADMSG;
        copy_str(data, "digest", c.digest, sizeof(c.digest));
        if (!c.digest[0])
                return -EBADMSG;
        copy_str(data, "lock", c.lock, sizeof(c.lock));
        /* A cut tag list written back would lose tags: refuse instead. */
        if (strlen(json_string_value(json_object_get(data, "tags")) ?: "") >= sizeof(c.tags))
                return -E2BIG;
        copy_str(data, "tags", c.tags, sizeof(c.tags));
        copy_str(data, "name", c.name, sizeof(c.name));
        if (!c.name[0])
                copy_str(data, "hostname", c.name, sizeof(c.name));
        pve_volume_storage(json_string_value(json_object_get(data, "rootfs")), c.rootfs_storage,
                           sizeof(c.rootfs_storage));
        c.protection = get_bool(data, "protection");
        c.template = get_bool(data, "template");
        *ret = c;
        return 0;
}

int pve_decode_guest_status(json_t *data, struct pve_guest_status *ret)
{
        struct pve_guest_status s = { 0 };
        json_t *ha;

        if (!json_is_object(data))
                return -EBADMSG;
        copy_str(data, "status", s.status, sizeof(s.status));
        if (!s.status[0])
                return -EBADMSG;
        copy_str(data, "qmpstatus", s.qmpstatus, sizeof(s.qmpstatus));
        copy_str(data, "lock", s.lock, sizeof(s.lock));
        ha = json_object_get(data, "ha");
        s.ha_managed = json_is_object(ha) && get_bool(ha, "managed");
        if (s.ha_managed)
                copy_str(ha, "state", s.hastate, sizeof(s.hastate));
        if (s.ha_managed && !s.hastate[0])
                snprintf(s.hastate, sizeof(s.hastate), "managed");
        (void)get_number(data, "cpu", &s.cpu);
        (void)get_number(data, "cpus", &s.cpus);
        s.mem = get_u64(data, "mem");
        s.maxmem = get_u64(data, "maxmem");
        s.maxdisk = get_u64(data, "maxdisk");
        s.disk = get_u64(data, "disk");
        s.uptime = get_u64(data, "uptime");
        *ret = s;
        return 0;
}

int pve_decode_storage_status(json_t *data, struct pve_storage_status *ret)
{
        struct pve_storage_status s = { 0 };

        if (!json_is_object(data) || !json_object_get(data, "avail"))
                return -EBADMSG;
        copy_str(data, "type", s.type, sizeof(s.type));
        copy_str(data, "content", s.content, sizeof(s.content));
        s.active = get_bool(data, "active");
        s.enabled = !json_object_get(data, "enabled") || get_bool(data, "enabled");
        s.total = get_u64(data, "total");
        s.used = get_u64(data, "used");
        s.avail = get_u64(data, "avail");
        *ret = s;
        return 0;
}

/* The volid is STORAGE:backup/NAME. */
static bool backup_named(const char *volid, const char *name)
{
        const char *b = strstr(volid, ":backup/");

        return b && strcmp(b + strlen(":backup/"), name) == 0;
}

int pve_decode_backup_list(json_t *data, const struct pve_backup_query *q, struct pve_backup *ret)
{
        struct pve_backup best = { .ctime = INT64_MIN };
        size_t i;
        json_t *it;

        if (!json_is_array(data))
                return -EBADMSG;
        json_array_foreach(data, i, it) {
                const char *volid = json_string_value(json_object_get(it, "volid"));
                const char *notes = json_string_value(json_object_get(it, "notes"));
                double ctime = -1, size = 0;

                if (!volid || get_u64(it, "vmid") != q->vmid || strlen(volid) >= sizeof(best.volid))
                        continue;
                if (q->marker && (!notes || !strstr(notes, q->marker)))
                        continue;
                if (q->name && !backup_named(volid, q->name))
                        continue;
                /* A ctime int64_t cannot hold is no archive time. */
                if (!get_number(it, "ctime", &ctime) || ctime < (double)q->min_ctime ||
                    ctime < -9223372036854775808.0 || ctime >= 9223372036854775808.0)
                        continue;
                /* pve-storage 9.1.5 may send approximate-size instead. */
                if (!get_number(it, "size", &size))
                        (void)get_number(it, "approximate-size", &size);
                if ((int64_t)ctime < best.ctime)
                        continue;
                snprintf(best.volid, sizeof(best.volid), "%s", volid);
                best.ctime = (int64_t)ctime;
                best.size = size > 0 && size < 18446744073709551616.0 ? (uint64_t)size : 0;
                best.protected = get_bool(it, "protected");
        }
        if (!best.volid[0])
                return -ENOENT;
        *ret = best;
        return 0;
}

bool pve_volid_is_backup_of(const char *volid, const char *storage, enum guest_type t,
                            uint32_t vmid)
{
        char file[64], pbs[64];
        size_t n = strlen(storage);

        if (strncmp(volid, storage, n) != 0 || strncmp(volid + n, ":backup/", 8) != 0)
                return false;
        volid += n + 8;
        /* vzdump-<type>-<vmid>-YYYY_MM_DD-... on file storages (the PVE
         * 2.x openvz name aside); <vm|ct>/<vmid>/<time> on PBS. */
        snprintf(file, sizeof(file), "vzdump-%s-%" PRIu32 "-", guest_type_to_string(t), vmid);
        snprintf(pbs, sizeof(pbs), "%s/%" PRIu32 "/", t == GUEST_LXC ? "ct" : "vm", vmid);
        return strncmp(volid, file, strlen(file)) == 0 || strncmp(volid, pbs, strlen(pbs)) == 0;
}

/* --- paths --- */

static int node_segment(struct pve *p, const char *node, char *buf, size_t size)
{
        if (!node_name_valid(node)) {
                pve_set_error(p, "invalid node name '%s'", node);
                return -EINVAL;
        }
        return url_escape(node, buf, size);
}

static int guest_path(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                      const char *suffix, char *buf, size_t size)
{
        char n[192];
        int r;

        if (!vmid_valid(vmid)) {
                pve_set_error(p, "invalid vmid %" PRIu32, vmid);
                return -EINVAL;
        }
        r = node_segment(p, node, n, sizeof(n));
        if (r < 0)
                return r;
        r = snprintf(buf, size, "/nodes/%s/%s/%" PRIu32 "%s", n, guest_type_to_string(t), vmid,
                     suffix);
        return r < 0 || (size_t)r >= size ? -ENOBUFS : 0;
}

/* Proxmox answers 500 "Configuration file '...' does not exist" for a
 * guest that is not (or no longer) on that node. */
static int not_found_is_enoent(struct pve *p, int r)
{
        if (r == -EREMOTEIO && pve_last_status(p) == 500 &&
            (strstr(pve_error(p), "does not exist") || strstr(pve_error(p), "no such"))) {
                pve_answer_expected(p); /* an answer, not an API error */
                return -ENOENT;
        }
        return r;
}

static int call_decode(struct pve *p, const char *method, const char *path,
                       const struct pve_form *form, json_t **ret)
{
        int r = pve_call(p, method, path, form, ret);

        /* Only a read asks whether something exists: a write refused with
         * "... does not exist" (a pool, a storage) is a refusal with
         * Proxmox's message, not a guest that is gone. */
        return strcmp(method, "GET") == 0 ? not_found_is_enoent(p, r) : r;
}

int pve_guest_config(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                     struct pve_guest_config *ret)
{
        char path[512];
        json_t *data = NULL;
        int r;

        r = guest_path(p, t, node, vmid, "/config", path, sizeof(path));
        if (r >= 0)
                r = call_decode(p, "GET", path, NULL, &data);
        if (r >= 0 && (r = pve_decode_guest_config(data, ret)) < 0)
                pve_set_error(p, "GET %s: %s", path,
                              r == -E2BIG ? "tag list too long to edit safely"
                                          : "answer has no config digest");
        json_decref(data);
        return r;
}

/* GET of a guest's sub-path whose answer must be an object or a list. */
static int guest_get(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                     const char *suffix, bool want_list, json_t **ret)
{
        char path[512];
        json_t *data = NULL;
        int r;

        r = guest_path(p, t, node, vmid, suffix, path, sizeof(path));
        if (r >= 0)
                r = call_decode(p, "GET", path, NULL, &data);
        if (r >= 0 && (want_list ? !json_is_array(data) : !json_is_object(data))) {
                pve_set_error(p, "GET %s: answer is not %s", path, want_list ? "a list" : "an object");
                r = -EBADMSG;
        }
        if (r < 0) {
                json_decref(data);
                return r;
        }
        *ret = data;
        return 0;
}

int pve_guest_config_json(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                          bool current, json_t **ret)
{
        return guest_get(p, t, node, vmid, current ? "/config?current=1" : "/config", false, ret);
}

int pve_snapshot_list(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                      json_t **ret)
{
        return guest_get(p, t, node, vmid, "/snapshot", true, ret);
}

int pve_guest_status(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                     struct pve_guest_status *ret)
{
        char path[512];
        json_t *data = NULL;
        int r;

        r = guest_path(p, t, node, vmid, "/status/current", path, sizeof(path));
        if (r >= 0)
                r = call_decode(p, "GET", path, NULL, &data);
        if (r >= 0 && (r = pve_decode_guest_status(data, ret)) < 0)
                pve_set_error(p, "GET %s: answer has no status", path);
        json_decref(data);
        return r;
}

static int take_upid(struct pve *p, const char *what, json_t *data, char *ret)
{
        const char *s = json_string_value(data);
        struct pve_upid u;

        if (s && pve_upid_parse(s, &u) >= 0) {
                snprintf(ret, PVE_UPID_MAX, "%s", s);
                return 0;
        }
        if (s && strcmp(s, "OK") == 0) {
                /* vzdump answers "OK" when the guest is not on that node. */
                pve_set_error(p, "%s: answered \"OK\" without starting a task (the guest is not on that node)",
                              what);
                return -ENOMSG;
        }
        pve_set_error(p, "%s: answer is not a task id (UPID)", what);
        return -EBADMSG;
}

static int start_task(struct pve *p, const char *method, const char *path,
                      const struct pve_form *form, char *ret)
{
        char what[600];
        json_t *data = NULL;
        int r;

        r = call_decode(p, method, path, form, &data);
        if (r >= 0) {
                snprintf(what, sizeof(what), "%s %s", method, path);
                r = take_upid(p, what, data, ret);
        }
        json_decref(data);
        return r;
}

int pve_guest_task(struct pve *p, const char *method, enum guest_type t, const char *node,
                   uint32_t vmid, const char *suffix, const struct pve_form *form, char *ret)
{
        char path[512];
        int r = guest_path(p, t, node, vmid, suffix, path, sizeof(path));

        return r < 0 ? r : start_task(p, method, path, form, ret);
}

int pve_vzdump(struct pve *p, const char *node, const struct pve_form *form, char *ret)
{
        char n[192], path[512];
        int r = node_segment(p, node, n, sizeof(n));

        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "/nodes/%s/vzdump", n);
        return start_task(p, "POST", path, form, ret);
}

int pve_create_guest(struct pve *p, enum guest_type t, const char *node,
                     const struct pve_form *form, char *ret)
{
        char n[192], path[512];
        int r = node_segment(p, node, n, sizeof(n));

        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "/nodes/%s/%s", n, guest_type_to_string(t));
        return start_task(p, "POST", path, form, ret);
}

static int task_path(struct pve *p, const char *upid, const char *suffix, char *buf,
                     size_t size)
{
        char n[192], u[3 * PVE_UPID_MAX];
        struct pve_upid parsed;
        int r;

        if (pve_upid_parse(upid, &parsed) < 0) {
                pve_set_error(p, "invalid task id '%s'", upid);
                return -EINVAL;
        }
        /* Only the node that runs a task knows its state: ask that one. */
        r = node_segment(p, parsed.node, n, sizeof(n));
        if (r >= 0)
                r = url_escape(upid, u, sizeof(u));
        if (r < 0)
                return r;
        r = snprintf(buf, size, "/nodes/%s/tasks/%s%s", n, u, suffix);
        return r < 0 || (size_t)r >= size ? -ENOBUFS : 0;
}

int pve_task_status(struct pve *p, const char *upid, struct pve_task_status *ret)
{
        char path[1024];
        json_t *data = NULL;
        int r;

        r = task_path(p, upid, "/status", path, sizeof(path));
        if (r >= 0)
                r = call_decode(p, "GET", path, NULL, &data);
        if (r >= 0 && (r = pve_decode_task_status(data, ret)) < 0)
                pve_set_error(p, "GET task status: answer has no valid status");
        json_decref(data);
        return r;
}

int pve_task_abort(struct pve *p, const char *upid)
{
        char path[1024];
        int r = task_path(p, upid, "", path, sizeof(path));

        return r < 0 ? r : pve_call(p, "DELETE", path, NULL, NULL);
}

/* "INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-...zst'" or
 * "INFO: creating Proxmox Backup Server archive 'vm/104/2026-...Z'" (pve-
 * manager VZDump.pm exec_backup_task, debugmsg): the name after
 * STORAGE:backup/ in its volid. Only a line that is that message from its
 * start: a guest's mount point path, logged on another line, may hold
 * the same words. The target runs to the quote that ends the line (a
 * storage path may hold quotes). */
static bool archive_line(const char *t, char *buf, size_t size)
{
        static const char *const kinds[] = { "INFO: creating vzdump archive '",
                                             "INFO: creating Proxmox Backup Server archive '" };
        const char *a = NULL, *q, *slash;
        size_t n;

        for (size_t i = 0; !a && i < ELEMENTSOF(kinds); i++)
                if (strncmp(t, kinds[i], strlen(kinds[i])) == 0)
                        a = t + strlen(kinds[i]);
        if (!a)
                return false;
        n = strlen(a);
        while (n > 0 && (a[n - 1] == ' ' || a[n - 1] == '\r'))
                n--;
        if (n < 2 || a[n - 1] != '\'')
                return false;
        q = a + n - 1;
        n = (size_t)(q - a);
        /* A file's path: its name; a PBS snapshot: as it is. */
        slash = memrchr(a, '/', n);
        if (*a == '/' && slash) {
                n -= (size_t)(slash + 1 - a);
                a = slash + 1;
        }
        return n > 0 && (size_t)snprintf(buf, size, "%.*s", (int)n, a) < size;
}

int pve_decode_archive_name(json_t *log, char *buf, size_t size)
{
        size_t i;
        json_t *it;

        if (!json_is_array(log))
                return -EBADMSG;
        json_array_foreach(log, i, it) {
                const char *t = json_string_value(json_object_get(it, "t"));

                if (t && archive_line(t, buf, size))
                        return 0;
        }
        return -ENOENT;
}

int pve_task_archive_name(struct pve *p, const char *upid, char *buf, size_t size)
{
        char path[1200];
        json_t *data = NULL;
        int r;

        /* The line comes early; 5000 lines cover any vzdump log. */
        r = task_path(p, upid, "/log?start=0&limit=5000", path, sizeof(path));
        if (r >= 0)
                r = pve_call(p, "GET", path, NULL, &data);
        if (r >= 0) {
                r = pve_decode_archive_name(data, buf, size);
                if (r == -EBADMSG)
                        pve_set_error(p, "GET task log: answer is not a list");
                else if (r == -ENOENT)
                        pve_set_error(p, "the log of task %s names no archive it created", upid);
        }
        json_decref(data);
        return r;
}

static bool type_in(const char *type, const char *const *types)
{
        for (; *types; types++)
                if (strcmp(type, *types) == 0)
                        return true;
        return false;
}

int pve_find_task(struct pve *p, const char *node, uint32_t vmid, const char *const *types,
                  uint64_t since, bool (*known)(void *userdata, const char *upid), void *userdata,
                  char *ret)
{
        char n[192], path[512];
        uint64_t best_start = 0;
        json_t *data = NULL, *it;
        bool found = false;
        size_t i;
        int r;

        r = node_segment(p, node, n, sizeof(n));
        if (r < 0)
                return r;
        snprintf(path, sizeof(path),
                 "/nodes/%s/tasks?vmid=%" PRIu32 "&source=all&since=%" PRIu64 "&limit=500", n,
                 vmid, since);
        r = pve_call(p, "GET", path, NULL, &data);
        if (r < 0)
                return r;
        if (!json_is_array(data)) {
                json_decref(data);
                pve_set_error(p, "GET %s: answer is not a list", path);
                return -EBADMSG;
        }
        json_array_foreach(data, i, it) {
                const char *upid = json_string_value(json_object_get(it, "upid"));
                const char *self = pve_task_user(p);
                struct pve_upid u;

                /* Only a task of ours: an admin's own restore into the
                 * same vmid, or their shutdown, is not the call we sent. */
                if (!upid || pve_upid_parse(upid, &u) < 0 || !type_in(u.type, types) ||
                    (self && strcmp(u.user, self) != 0) ||
                    u.starttime < since || (found && u.starttime < best_start) ||
                    (known && known(userdata, upid)))
                        continue;
                snprintf(ret, PVE_UPID_MAX, "%s", upid);
                best_start = u.starttime;
                found = true;
        }
        json_decref(data);
        return found ? 0 : -ENOENT;
}

static int storage_path(struct pve *p, const char *node, const char *storage,
                        const char *suffix, char *buf, size_t size)
{
        char n[192], s[192];
        int r = node_segment(p, node, n, sizeof(n));

        if (r >= 0)
                r = url_escape(storage, s, sizeof(s));
        if (r < 0)
                return r;
        r = snprintf(buf, size, "/nodes/%s/storage/%s%s", n, s, suffix);
        return r < 0 || (size_t)r >= size ? -ENOBUFS : 0;
}

int pve_storage_status(struct pve *p, const char *node, const char *storage,
                       struct pve_storage_status *ret)
{
        char path[512];
        json_t *data = NULL;
        int r;

        r = storage_path(p, node, storage, "/status", path, sizeof(path));
        if (r >= 0)
                r = call_decode(p, "GET", path, NULL, &data);
        if (r >= 0 && (r = pve_decode_storage_status(data, ret)) < 0)
                pve_set_error(p, "GET %s: answer has no free space", path);
        json_decref(data);
        return r;
}

int pve_find_backup(struct pve *p, const char *node, const char *storage,
                    const struct pve_backup_query *q, struct pve_backup *ret)
{
        char path[512], suffix[64];
        json_t *data = NULL;
        int r;

        snprintf(suffix, sizeof(suffix), "/content?content=backup&vmid=%" PRIu32, q->vmid);
        r = storage_path(p, node, storage, suffix, path, sizeof(path));
        if (r >= 0)
                r = pve_call(p, "GET", path, NULL, &data);
        if (r >= 0) {
                r = pve_decode_backup_list(data, q, ret);
                if (r == -EBADMSG)
                        pve_set_error(p, "GET %s: answer is not a list", path);
                else if (r == -ENOENT)
                        pve_set_error(p, "no backup %s%s%sof %" PRIu32 " made by %s in '%s'",
                                      q->name ? "'" : "", q->name ? q->name : "",
                                      q->name ? "' " : "", q->vmid,
                                      q->marker ? q->marker : "anyone", storage);
        }
        json_decref(data);
        return r;
}

/* GET path, whose answer must be a list (*ret, caller decrefs). */
static int get_list(struct pve *p, const char *path, json_t **ret)
{
        json_t *data = NULL;
        int r = pve_call(p, "GET", path, NULL, &data);

        if (r >= 0 && !json_is_array(data)) {
                pve_set_error(p, "GET %s: answer is not a list", path);
                r = -EBADMSG;
        }
        if (r < 0) {
                json_decref(data);
                return r;
        }
        *ret = data;
        return 0;
}

int pve_list_backups(struct pve *p, const char *node, const char *storage, json_t **ret)
{
        char path[512];
        int r = storage_path(p, node, storage, "/content?content=backup", path, sizeof(path));

        return r < 0 ? r : get_list(p, path, ret);
}

int pve_list_storages(struct pve *p, json_t **ret)
{
        return get_list(p, "/cluster/resources?type=storage", ret);
}

int pve_extract_config(struct pve *p, const char *node, const char *volid, char **ret)
{
        char n[192], path[1024], v[768];
        json_t *data = NULL;
        const char *text;
        int r;

        r = node_segment(p, node, n, sizeof(n));
        if (r >= 0)
                r = url_escape(volid, v, sizeof(v));
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "/nodes/%s/vzdump/extractconfig?volume=%s", n, v);
        r = pve_call(p, "GET", path, NULL, &data);
        if (r < 0)
                return r;
        text = json_string_value(data);
        if (!text || !*text) {
                pve_set_error(p, "GET extractconfig '%s': no configuration in the archive", volid);
                r = -EBADMSG;
        } else if (!(*ret = strdup(text)))
                r = -ENOMEM;
        json_decref(data);
        return r;
}

int pve_set_tags(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                 const char *tags, const char *digest)
{
        struct pve_form f = { 0 };
        char path[512];
        int r;

        r = guest_path(p, t, node, vmid, "/config", path, sizeof(path));
        if (r < 0)
                return r;
        if (*tags)
                pve_form_add(&f, "tags", tags);
        else
                pve_form_add(&f, "delete", "tags");
        if (digest && *digest)
                pve_form_add(&f, "digest", digest);
        r = call_decode(p, "PUT", path, &f, NULL);
        pve_form_clear(&f);
        return r;
}

int pve_cluster_nodes(struct pve *p, json_t **ret)
{
        static const char path[] = "/cluster/resources?type=node";
        json_t *data = NULL, *names = json_array(), *it;
        size_t i;
        int r;

        if (!names)
                return -ENOMEM;
        r = pve_call(p, "GET", path, NULL, &data);
        if (r >= 0 && !json_is_array(data)) {
                pve_set_error(p, "GET %s: answer is not a list", path);
                r = -EBADMSG;
        }
        json_array_foreach(r >= 0 ? data : NULL, i, it) {
                const char *node = json_string_value(json_object_get(it, "node"));

                if (node && node_name_valid(node))
                        json_array_append_new(names, json_string(node));
        }
        json_decref(data);
        if (r < 0) {
                json_decref(names);
                return r;
        }
        *ret = names;
        return 0;
}

int pve_next_id(struct pve *p, uint32_t want, uint32_t *ret)
{
        char path[128];
        json_t *data = NULL;
        double v = 0;
        int r;

        if (want)
                snprintf(path, sizeof(path), "/cluster/nextid?vmid=%" PRIu32, want);
        else
                snprintf(path, sizeof(path), "/cluster/nextid");
        r = pve_call(p, "GET", path, NULL, &data);
        if (r == -EREMOTEIO && want && pve_last_status(p) == 400)
                return -EEXIST;
        if (r < 0)
                return r;
        /* Integer per the schema; some servers send a string. */
        if (json_is_number(data))
                v = json_number_value(data);
        else if (json_is_string(data))
                v = strtod(json_string_value(data), NULL);
        json_decref(data);
        /* Range first: converting a negative or huge double is undefined. */
        if (!(v >= 0 && v <= UINT32_MAX) || v != (double)(uint32_t)v || !vmid_valid((uint64_t)v)) {
                pve_set_error(p, "GET %s: answer is not a vmid", path);
                return -EBADMSG;
        }
        *ret = (uint32_t)v;
        return 0;
}

int pve_rrddata(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                const char *timeframe, json_t **ret)
{
        char suffix[64];

        snprintf(suffix, sizeof(suffix), "/rrddata?timeframe=%s&cf=AVERAGE", timeframe);
        return guest_get(p, t, node, vmid, suffix, true, ret);
}

/* --- tags --- */

struct tags_join {
        char *buf;
        size_t size, len;
        const char *skip;
        int error;
};

static int tags_join_one(const char *tag, size_t len, void *userdata)
{
        struct tags_join *j = userdata;
        int n;

        if (j->skip && strlen(j->skip) == len && strncasecmp(tag, j->skip, len) == 0)
                return 0;
        n = snprintf(j->buf + j->len, j->size - j->len, "%s%.*s", j->len ? ";" : "", (int)len,
                     tag);
        if (n < 0 || (size_t)n >= j->size - j->len) {
                j->error = -ENOBUFS;
                return 1;
        }
        j->len += (size_t)n;
        return 0;
}

int tags_with(const char *tags, const char *tag, char *buf, size_t size)
{
        int n;

        if (tags_contain(tags, tag)) {
                n = snprintf(buf, size, "%s", tags);
                return n < 0 || (size_t)n >= size ? -ENOBUFS : 0;
        }
        /* The existing list is kept byte for byte; the tag is appended. */
        n = snprintf(buf, size, "%s%s%s", tags, *tags ? ";" : "", tag);
        return n < 0 || (size_t)n >= size ? -ENOBUFS : 0;
}

int tags_without(const char *tags, const char *tag, char *buf, size_t size)
{
        struct tags_join j = { .buf = buf, .size = size, .skip = tag };

        if (size == 0)
                return -ENOBUFS;
        buf[0] = '\0';
        (void)tags_foreach(tags, tags_join_one, &j);
        return j.error;
}
