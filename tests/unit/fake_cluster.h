/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * fake_cluster: an in-memory Proxmox VE behind the struct cluster seam
 * (cluster.h), with a fake clock, for the saga's unit tests. Header-only
 * (static): included by the one test that uses it.
 *
 * It keeps guests (configuration, status, snapshots, tags, a digest that
 * changes with every change of the configuration), worker tasks (each ends
 * after a number of status polls, with its effect applied then: a shutdown
 * stops the guest, vzdump writes a protected archive holding the guest's
 * configuration, a destroy removes the guest, a restore creates one from
 * the archive), and backups on storages.
 *
 * Every call can be made to misbehave the way a real cluster does, a
 * number of times (fc_fault()): refuse with a message (the server
 * answered with an error and did nothing), lose its answer after the
 * server acted, lose it before (a timeout, nothing done), or never leave
 * (connection refused). Each task kind can end OK, fail with a message, or
 * hang until it is aborted (fc_task_outcome()).
 */
#ifndef PROXREAP_FAKE_CLUSTER_H
#define PROXREAP_FAKE_CLUSTER_H

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "guestconf.h"
#include "saga.h"
#include "util.h"

#define FC_EPOCH0 1800000000LL /* the fake's wall clock at monotonic 0 */
#define FC_MAX_GUESTS 16
#define FC_MAX_TASKS 64
#define FC_MAX_BACKUPS 16

enum fc_call {
        FC_SHUTDOWN, /* start_task, by kind: the same order as enum task_kind */
        FC_SNAPSHOT,
        FC_ARCHIVE,
        FC_DESTROY,
        FC_START,
        FC_RESTORE,
        FC_TASK_STATUS,
        FC_TASK_ABORT,
        FC_ARCHIVE_NAME,
        FC_FIND_TASK,
        FC_GUEST_STATUS,
        FC_GUEST_READ,
        FC_SET_TAGS,
        FC_FIND_BACKUP,
        FC_EXTRACT,
        FC_NEXT_ID,
        _FC_MAX,
};

enum fc_fault_kind {
        FAULT_NONE,
        FAULT_REFUSE, /* an error status with a message: nothing done */
        FAULT_LOST_AFTER, /* done, but the answer never arrives (timeout) */
        FAULT_LOST_BEFORE, /* a timeout, and nothing was done */
        FAULT_UNSENT, /* no connection: the call never left */
};

enum fc_outcome {
        OUTCOME_OK,
        OUTCOME_FAIL, /* the task ends with an error exit status */
        OUTCOME_HANG, /* runs until aborted */
};

struct fc_guest {
        bool exists;
        uint32_t vmid;
        enum guest_type type;
        char node[32];
        char status[16];
        json_t *config; /* key -> string */
        json_t *snapshots; /* [{name, description}] */
        char tags[512];
        unsigned version; /* the digest */
};

struct fc_task {
        char upid[PVE_UPID_MAX];
        struct task_request q; /* strings not kept: see below */
        enum task_kind kind;
        uint32_t vmid;
        char node[32];
        int64_t start;
        unsigned polls_left;
        bool running, hang;
        char exitstatus[256];
        char archive[128]; /* vzdump: the name its log gives */
        /* What the effect needs, copied. */
        char snapname[64], notes[512], archive_volid[256], restore_storage[64];
};

struct fc_backup {
        char volid[256];
        uint32_t vmid;
        char notes[512];
        uint64_t size;
        int64_t ctime;
        bool protected;
        char *config; /* what extractconfig answers */
};

struct fc_fault {
        enum fc_fault_kind kind;
        unsigned times; /* how many calls in a row it hits */
        unsigned skip; /* calls it lets through first */
        char msg[256];
};

struct fake_cluster {
        struct fc_guest guests[FC_MAX_GUESTS];
        struct fc_task tasks[FC_MAX_TASKS];
        size_t n_tasks;
        struct fc_backup backups[FC_MAX_BACKUPS];
        size_t n_backups;
        struct fc_fault faults[_FC_MAX];
        enum fc_outcome outcome[_FC_MAX];
        char outcome_msg[_FC_MAX][256];
        unsigned task_polls; /* status polls a task runs for */
        unsigned calls[_FC_MAX]; /* every call, faulted or not */
        unsigned acted[_FC_MAX]; /* start_task calls that created a task */
        unsigned aborted; /* tasks aborted */
        uint64_t now; /* monotonic, usec */
        uint64_t hide_tasks_until; /* find_task sees none before (a task that shows up late) */
        char error[512];
};

static inline struct fake_cluster *fc_new(void)
{
        struct fake_cluster *f = calloc(1, sizeof(*f));

        if (f)
                f->task_polls = 1;
        return f;
}

static inline void fc_free(struct fake_cluster *f)
{
        for (size_t i = 0; i < FC_MAX_GUESTS; i++) {
                json_decref(f->guests[i].config);
                json_decref(f->guests[i].snapshots);
        }
        for (size_t i = 0; i < f->n_backups; i++)
                free(f->backups[i].config);
        free(f);
}

static inline int64_t fc_epoch(const struct fake_cluster *f)
{
        return FC_EPOCH0 + (int64_t)(f->now / USEC_PER_SEC);
}

static inline void fc_fault(struct fake_cluster *f, enum fc_call c, enum fc_fault_kind k,
                            unsigned skip, unsigned times, const char *msg)
{
        f->faults[c] = (struct fc_fault){ .kind = k, .times = times, .skip = skip };
        snprintf(f->faults[c].msg, sizeof(f->faults[c].msg), "%s", msg ? msg : "");
}

static inline void fc_task_outcome(struct fake_cluster *f, enum fc_call c, enum fc_outcome o,
                                   const char *msg)
{
        f->outcome[c] = o;
        snprintf(f->outcome_msg[c], sizeof(f->outcome_msg[c]), "%s", msg ? msg : "");
}

static inline struct fc_guest *fc_guest(struct fake_cluster *f, uint32_t vmid)
{
        for (size_t i = 0; i < FC_MAX_GUESTS; i++)
                if (f->guests[i].exists && f->guests[i].vmid == vmid)
                        return &f->guests[i];
        return NULL;
}

/* A guest from "key: value" lines. */
static inline struct fc_guest *fc_add_guest(struct fake_cluster *f, uint32_t vmid,
                                            enum guest_type t, const char *node,
                                            const char *status, const char *conf)
{
        struct fc_guest *g = NULL;
        char *copy = strdup(conf), *save = NULL;

        for (size_t i = 0; i < FC_MAX_GUESTS && !g; i++)
                if (!f->guests[i].exists)
                        g = &f->guests[i];
        if (!g || !copy) {
                free(copy);
                return NULL;
        }
        json_decref(g->config);
        json_decref(g->snapshots);
        *g = (struct fc_guest){ .exists = true, .vmid = vmid, .type = t, .version = 1 };
        snprintf(g->node, sizeof(g->node), "%s", node);
        snprintf(g->status, sizeof(g->status), "%s", status);
        g->config = json_object();
        g->snapshots = json_array();
        for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                char *colon = strstr(l, ": ");

                if (colon) {
                        *colon = '\0';
                        json_object_set_new(g->config, l, json_string(colon + 2));
                }
        }
        free(copy);
        return g;
}

/* The configuration as vzdump writes it into an archive: every line but
 * the ones it leaves out, and the disks it holds. */
static inline char *fc_archive_config(const struct fc_guest *g)
{
        struct guest_conf c;
        char err[256], *text = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&text, &len);
        const char *k;
        json_t *v;

        if (!out)
                return NULL;
        json_object_foreach(g->config, k, v) {
                if (strcmp(k, "parent") == 0 || strcmp(k, "lock") == 0 ||
                    strncmp(k, "unused", 6) == 0)
                        continue;
                fprintf(out, "%s: %s\n", k, json_string_value(v));
        }
        if (g->type == GUEST_QEMU && guestconf_from_json(g->type, g->config, &c, err, sizeof(err)) >= 0) {
                for (size_t i = 0; i < c.n_volumes; i++)
                        if (c.volumes[i].archived)
                                fprintf(out, "#qmdump#map:%s:drive-%s:local-lvm:raw:\n",
                                        c.volumes[i].key, c.volumes[i].key);
                guestconf_done(&c);
        }
        fclose(out);
        return text;
}

static inline int fc_fail(struct fake_cluster *f, int e, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static inline int fc_fail(struct fake_cluster *f, int e, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(f->error, sizeof(f->error), fmt, ap);
        va_end(ap);
        return e;
}

/* The fault of this call, if one hits: FAULT_NONE to go on. */
static inline enum fc_fault_kind fc_hit(struct fake_cluster *f, enum fc_call c)
{
        struct fc_fault *x = &f->faults[c];

        f->calls[c]++;
        if (x->kind == FAULT_NONE || x->times == 0)
                return FAULT_NONE;
        if (x->skip > 0) {
                x->skip--;
                return FAULT_NONE;
        }
        x->times--;
        return x->kind;
}

/* A faulted call's answer (after acting, for FAULT_LOST_AFTER). */
static inline int fc_faulted(struct fake_cluster *f, enum fc_call c, enum fc_fault_kind k)
{
        switch (k) {
        case FAULT_REFUSE:
                return fc_fail(f, -EREMOTEIO, "HTTP 500 %s", f->faults[c].msg);
        case FAULT_UNSENT:
                return fc_fail(f, -ECONNREFUSED, "Connection refused");
        case FAULT_LOST_AFTER:
        case FAULT_LOST_BEFORE:
                return fc_fail(f, -ETIMEDOUT, "Timeout was reached");
        case FAULT_NONE:
                break;
        }
        return 0;
}

static inline const char *fc_task_type(enum task_kind k, enum guest_type t)
{
        static const char *const names[][2] = {
                [TASK_SHUTDOWN] = { "qmshutdown", "vzshutdown" },
                [TASK_SNAPSHOT] = { "qmsnapshot", "vzsnapshot" },
                [TASK_ARCHIVE] = { "vzdump", "vzdump" },
                [TASK_DESTROY] = { "qmdestroy", "vzdestroy" },
                [TASK_START] = { "qmstart", "vzstart" },
                [TASK_RESTORE] = { "qmrestore", "vzrestore" },
        };

        return names[k][t == GUEST_LXC];
}

/* What a real server refuses outright. */
static inline int fc_validate(struct fake_cluster *f, const struct task_request *q)
{
        struct fc_guest *g = fc_guest(f, q->vmid);

        if (q->kind == TASK_RESTORE)
                return g ? fc_fail(f, -EREMOTEIO, "HTTP 500 unable to restore VM %u - VM %u already exists on node '%s'",
                                   (unsigned)q->vmid, (unsigned)q->vmid, g->node)
                         : 0;
        if (!g || strcmp(g->node, q->node) != 0)
                return fc_fail(f, -EREMOTEIO, "HTTP 500 Configuration file 'nodes/%s/qemu-server/%u.conf' does not exist",
                               q->node, (unsigned)q->vmid);
        if (q->kind == TASK_DESTROY && strcmp(g->status, "stopped") != 0)
                return fc_fail(f, -EREMOTEIO, "HTTP 500 VM %u is running - destroy failed",
                               (unsigned)q->vmid);
        return 0;
}

static inline int fc_start_task(void *impl, const struct task_request *q, char upid[PVE_UPID_MAX])
{
        struct fake_cluster *f = impl;
        enum fc_call c = (enum fc_call)q->kind;
        enum fc_fault_kind k = fc_hit(f, c);
        struct fc_task *t;
        int e;

        if (k != FAULT_NONE && k != FAULT_LOST_AFTER)
                return fc_faulted(f, c, k);
        e = fc_validate(f, q);
        if (e < 0 || f->n_tasks == FC_MAX_TASKS)
                return e < 0 ? e : fc_fail(f, -EREMOTEIO, "HTTP 500 too many tasks");
        t = &f->tasks[f->n_tasks++];
        *t = (struct fc_task){ .kind = q->kind, .vmid = q->vmid, .start = fc_epoch(f),
                               .polls_left = f->task_polls, .running = true,
                               .hang = f->outcome[c] == OUTCOME_HANG };
        snprintf(t->node, sizeof(t->node), "%s", q->node);
        snprintf(t->upid, sizeof(t->upid), "UPID:%s:%08X:%08X:%08X:%s:%u:root@pam!proxreap:",
                 q->node, 0x1000u + (unsigned)f->n_tasks, 0x2000000u, (unsigned)t->start,
                 fc_task_type(q->kind, q->type), (unsigned)q->vmid);
        snprintf(t->snapname, sizeof(t->snapname), "%s", q->snapname ? q->snapname : "");
        snprintf(t->notes, sizeof(t->notes), "%s", q->notes ? q->notes : "");
        snprintf(t->archive_volid, sizeof(t->archive_volid), "%s", q->archive ? q->archive : "");
        snprintf(t->restore_storage, sizeof(t->restore_storage), "%s",
                 q->storage ? q->storage : "");
        f->acted[c]++;
        if (k == FAULT_LOST_AFTER)
                return fc_faulted(f, c, k);
        snprintf(upid, PVE_UPID_MAX, "%s", t->upid);
        return 0;
}

static inline void fc_make_archive(struct fake_cluster *f, struct fc_task *t, struct fc_guest *g)
{
        struct fc_backup *b = &f->backups[f->n_backups++];
        char *nl;

        snprintf(t->archive, sizeof(t->archive), "vzdump-%s-%u-2027_01_15-08_00_%02u.vma.zst",
                 g->type == GUEST_LXC ? "lxc" : "qemu", (unsigned)g->vmid,
                 (unsigned)(f->n_backups % 60));
        *b = (struct fc_backup){ .vmid = g->vmid, .size = 123456789, .ctime = t->start,
                                 .protected = true, .config = fc_archive_config(g) };
        snprintf(b->volid, sizeof(b->volid), "local:backup/%s", t->archive);
        /* The notes as a listing shows them: vzdump's escapes undone, its
         * variables filled in (only the first line matters here). */
        snprintf(b->notes, sizeof(b->notes), "%s", t->notes);
        nl = strstr(b->notes, "\\n");
        if (nl)
                *nl = '\0';
}

static inline void fc_restore(struct fake_cluster *f, struct fc_task *t)
{
        for (size_t i = 0; i < f->n_backups; i++) {
                struct fc_backup *b = &f->backups[i];
                struct fc_guest *g;

                if (strcmp(b->volid, t->archive_volid) != 0)
                        continue;
                g = fc_add_guest(f, t->vmid, strstr(b->volid, "-lxc-") ? GUEST_LXC : GUEST_QEMU,
                                 t->node, "stopped", b->config);
                if (g)
                        g->version = 100 + (unsigned)f->n_tasks;
                return;
        }
}

/* A task's end: its effect on the cluster. */
static inline void fc_finish(struct fake_cluster *f, struct fc_task *t)
{
        struct fc_guest *g = fc_guest(f, t->vmid);
        enum fc_call c = (enum fc_call)t->kind;

        t->running = false;
        if (f->outcome[c] == OUTCOME_FAIL) {
                snprintf(t->exitstatus, sizeof(t->exitstatus), "%s", f->outcome_msg[c]);
                return;
        }
        snprintf(t->exitstatus, sizeof(t->exitstatus), "OK");
        switch (t->kind) {
        case TASK_SHUTDOWN:
                if (g)
                        snprintf(g->status, sizeof(g->status), "stopped");
                break;
        case TASK_START:
                if (g)
                        snprintf(g->status, sizeof(g->status), "running");
                break;
        case TASK_SNAPSHOT:
                if (g) {
                        json_array_append_new(g->snapshots,
                                              json_pack("{s:s, s:s}", "name", t->snapname,
                                                        "description",
                                                        GUESTCONF_SNAPSHOT_DESCRIPTION "x"));
                        json_object_set_new(g->config, "parent", json_string(t->snapname));
                        g->version++;
                }
                break;
        case TASK_ARCHIVE:
                if (g && f->n_backups < FC_MAX_BACKUPS)
                        fc_make_archive(f, t, g);
                break;
        case TASK_DESTROY:
                if (g)
                        g->exists = false;
                break;
        case TASK_RESTORE:
                fc_restore(f, t);
                break;
        }
}

static inline struct fc_task *fc_task(struct fake_cluster *f, const char *upid)
{
        for (size_t i = 0; i < f->n_tasks; i++)
                if (strcmp(f->tasks[i].upid, upid) == 0)
                        return &f->tasks[i];
        return NULL;
}

static inline int fc_task_status(void *impl, const char *upid, struct pve_task_status *ret)
{
        struct fake_cluster *f = impl;
        enum fc_fault_kind k = fc_hit(f, FC_TASK_STATUS);
        struct fc_task *t;

        if (k != FAULT_NONE)
                return fc_faulted(f, FC_TASK_STATUS, k);
        t = fc_task(f, upid);
        if (!t)
                return fc_fail(f, -ENOENT, "HTTP 500 no such task");
        if (t->running && !t->hang && t->polls_left-- == 0)
                fc_finish(f, t);
        *ret = (struct pve_task_status){ .running = t->running };
        snprintf(ret->exitstatus, sizeof(ret->exitstatus), "%s", t->exitstatus);
        return 0;
}

static inline int fc_task_abort(void *impl, const char *upid)
{
        struct fake_cluster *f = impl;
        enum fc_fault_kind k = fc_hit(f, FC_TASK_ABORT);
        struct fc_task *t;

        if (k != FAULT_NONE)
                return fc_faulted(f, FC_TASK_ABORT, k);
        t = fc_task(f, upid);
        if (!t)
                return fc_fail(f, -ENOENT, "HTTP 500 no such task");
        if (t->running) {
                t->running = false;
                snprintf(t->exitstatus, sizeof(t->exitstatus), "interrupted by signal");
                f->aborted++;
        }
        return 0;
}

static inline int fc_archive_name(void *impl, const char *upid, char *buf, size_t size)
{
        struct fake_cluster *f = impl;
        enum fc_fault_kind k = fc_hit(f, FC_ARCHIVE_NAME);
        struct fc_task *t;

        if (k != FAULT_NONE)
                return fc_faulted(f, FC_ARCHIVE_NAME, k);
        t = fc_task(f, upid);
        if (!t || !t->archive[0])
                return fc_fail(f, -ENOENT, "the log of task %s names no archive", upid);
        snprintf(buf, size, "%s", t->archive);
        return 0;
}

static inline int fc_find_task(void *impl, const char *node, uint32_t vmid,
                               const char *const *types, uint64_t since,
                               cluster_task_known_fn known, void *userdata,
                               char upid[PVE_UPID_MAX])
{
        struct fake_cluster *f = impl;
        enum fc_fault_kind k = fc_hit(f, FC_FIND_TASK);

        if (k != FAULT_NONE)
                return fc_faulted(f, FC_FIND_TASK, k);
        for (size_t i = f->now < f->hide_tasks_until ? 0 : f->n_tasks; i-- > 0;) {
                const struct fc_task *t = &f->tasks[i];
                bool type = false;

                for (size_t n = 0; types[n]; n++)
                        type = type || strstr(t->upid, types[n]) != NULL;
                if (!type || t->vmid != vmid || strcmp(t->node, node) != 0 ||
                    t->start < (int64_t)since || (known && known(userdata, t->upid)))
                        continue;
                snprintf(upid, PVE_UPID_MAX, "%s", t->upid);
                return 0;
        }
        return fc_fail(f, -ENOENT, "no task of %u", (unsigned)vmid);
}

static inline struct fc_guest *fc_guest_on(struct fake_cluster *f, enum guest_type t,
                                           const char *node, uint32_t vmid)
{
        struct fc_guest *g = fc_guest(f, vmid);

        if (!g || g->type != t || strcmp(g->node, node) != 0) {
                fc_fail(f, -ENOENT, "HTTP 500 Configuration file 'nodes/%s/%s/%u.conf' does not exist",
                        node, t == GUEST_LXC ? "lxc" : "qemu-server", (unsigned)vmid);
                return NULL;
        }
        return g;
}

static inline int fc_guest_status(void *impl, enum guest_type t, const char *node, uint32_t vmid,
                                  struct pve_guest_status *ret)
{
        struct fake_cluster *f = impl;
        enum fc_fault_kind k = fc_hit(f, FC_GUEST_STATUS);
        struct fc_guest *g;

        if (k != FAULT_NONE)
                return fc_faulted(f, FC_GUEST_STATUS, k);
        g = fc_guest_on(f, t, node, vmid);
        if (!g)
                return -ENOENT;
        *ret = (struct pve_guest_status){ .cpu = 0.001, .cpus = 2, .mem = 100 << 20,
                                          .maxmem = 2048u << 20, .maxdisk = 32ull << 30 };
        snprintf(ret->status, sizeof(ret->status), "%s", g->status);
        return 0;
}

static inline int fc_guest_read(void *impl, enum guest_type t, const char *node, uint32_t vmid,
                                struct guest_reading *ret)
{
        struct fake_cluster *f = impl;
        enum fc_fault_kind k = fc_hit(f, FC_GUEST_READ);
        struct guest_reading r = { 0 };
        struct guest_conf pending;
        struct fc_guest *g;
        char err[256];

        if (k != FAULT_NONE)
                return fc_faulted(f, FC_GUEST_READ, k);
        g = fc_guest_on(f, t, node, vmid);
        if (!g)
                return -ENOENT;
        if (guestconf_from_json(t, g->config, &r.conf, err, sizeof(err)) < 0)
                return fc_fail(f, -EINVAL, "%s", err);
        if (guestconf_from_json(t, g->config, &pending, err, sizeof(err)) < 0) {
                guestconf_done(&r.conf);
                return fc_fail(f, -EINVAL, "%s", err);
        }
        r.snapshots = json_deep_copy(g->snapshots);
        guestconf_facts(&r.conf, &pending, r.snapshots, &r.facts);
        guestconf_done(&pending);
        snprintf(r.digest, sizeof(r.digest), "digest-%u-%u", (unsigned)vmid, g->version);
        snprintf(r.tags, sizeof(r.tags), "%s", g->tags);
        *ret = r;
        return 0;
}

static inline int fc_set_tags(void *impl, enum guest_type t, const char *node, uint32_t vmid,
                              const char *tags, const char *digest)
{
        struct fake_cluster *f = impl;
        enum fc_fault_kind k = fc_hit(f, FC_SET_TAGS);
        struct fc_guest *g;
        char now[64];

        if (k != FAULT_NONE && k != FAULT_LOST_AFTER)
                return fc_faulted(f, FC_SET_TAGS, k);
        g = fc_guest_on(f, t, node, vmid);
        if (!g)
                return -ENOENT;
        snprintf(now, sizeof(now), "digest-%u-%u", (unsigned)vmid, g->version);
        if (digest && strcmp(digest, now) != 0)
                return fc_fail(f, -EREMOTEIO, "HTTP 500 detected modified configuration - file changed by another user? Try again.");
        snprintf(g->tags, sizeof(g->tags), "%s", tags);
        g->version++;
        return k == FAULT_LOST_AFTER ? fc_faulted(f, FC_SET_TAGS, k) : 0;
}

static inline int fc_find_backup(void *impl, const char *node, const char *storage,
                                 const struct pve_backup_query *q, struct pve_backup *ret)
{
        struct fake_cluster *f = impl;
        enum fc_fault_kind k = fc_hit(f, FC_FIND_BACKUP);
        size_t n = strlen(storage);

        (void)node;
        if (k != FAULT_NONE)
                return fc_faulted(f, FC_FIND_BACKUP, k);
        for (size_t i = f->n_backups; i-- > 0;) {
                const struct fc_backup *b = &f->backups[i];
                const char *name = strchr(b->volid, '/');

                if (strncmp(b->volid, storage, n) != 0 || b->volid[n] != ':' ||
                    b->vmid != q->vmid || (q->marker && !strstr(b->notes, q->marker)) ||
                    (q->name && (!name || strcmp(name + 1, q->name) != 0)) ||
                    b->ctime < q->min_ctime)
                        continue;
                *ret = (struct pve_backup){ .size = b->size, .ctime = b->ctime,
                                            .protected = b->protected };
                snprintf(ret->volid, sizeof(ret->volid), "%s", b->volid);
                return 0;
        }
        return fc_fail(f, -ENOENT, "no backup of %u made by %s in '%s'", (unsigned)q->vmid,
                       q->marker ? q->marker : "anyone", storage);
}

static inline int fc_extract_config(void *impl, const char *node, const char *volid, char **ret)
{
        struct fake_cluster *f = impl;
        enum fc_fault_kind k = fc_hit(f, FC_EXTRACT);

        (void)node;
        if (k != FAULT_NONE)
                return fc_faulted(f, FC_EXTRACT, k);
        for (size_t i = 0; i < f->n_backups; i++)
                if (strcmp(f->backups[i].volid, volid) == 0) {
                        *ret = strdup(f->backups[i].config ? f->backups[i].config : "");
                        return *ret ? 0 : -ENOMEM;
                }
        return fc_fail(f, -EREMOTEIO, "HTTP 500 volume '%s' does not exist", volid);
}

static inline int fc_list_backups(void *impl, const char *node, const char *storage, json_t **ret)
{
        struct fake_cluster *f = impl;
        size_t n = strlen(storage);

        (void)node;
        *ret = json_array();
        for (size_t i = 0; i < f->n_backups; i++)
                if (strncmp(f->backups[i].volid, storage, n) == 0 && f->backups[i].volid[n] == ':')
                        json_array_append_new(*ret,
                                              json_pack("{s:s, s:I, s:s, s:I, s:I, s:b}", "volid",
                                                        f->backups[i].volid, "vmid",
                                                        (json_int_t)f->backups[i].vmid, "notes",
                                                        f->backups[i].notes, "ctime",
                                                        (json_int_t)f->backups[i].ctime, "size",
                                                        (json_int_t)f->backups[i].size,
                                                        "protected", f->backups[i].protected));
        return 0;
}

/* One storage, shared by every node: the backups' storages. */
static inline int fc_list_storages(void *impl, json_t **ret)
{
        struct fake_cluster *f = impl;

        *ret = json_array();
        for (size_t i = 0; i < f->n_backups; i++)
                json_array_append_new(*ret, json_pack("{s:s, s:s%, s:i, s:s}", "node", "pve1", "storage",
                                                      f->backups[i].volid,
                                                      strcspn(f->backups[i].volid, ":"), "shared",
                                                      1, "status", "available"));
        return 0;
}

static inline int fc_next_id(void *impl, uint32_t want, uint32_t *ret)
{
        struct fake_cluster *f = impl;
        enum fc_fault_kind k = fc_hit(f, FC_NEXT_ID);

        if (k != FAULT_NONE)
                return fc_faulted(f, FC_NEXT_ID, k);
        if (want) {
                if (fc_guest(f, want))
                        return fc_fail(f, -EEXIST, "HTTP 400 VM %u already exists", (unsigned)want);
                *ret = want;
                return 0;
        }
        for (uint32_t v = 100;; v++)
                if (!fc_guest(f, v)) {
                        *ret = v;
                        return 0;
                }
}

static inline const char *fc_error(void *impl)
{
        return ((struct fake_cluster *)impl)->error;
}

static const struct cluster_ops fc_ops = {
        .start_task = fc_start_task,
        .task_status = fc_task_status,
        .task_abort = fc_task_abort,
        .task_archive_name = fc_archive_name,
        .find_task = fc_find_task,
        .guest_status = fc_guest_status,
        .guest_read = fc_guest_read,
        .set_tags = fc_set_tags,
        .find_backup = fc_find_backup,
        .extract_config = fc_extract_config,
        .list_backups = fc_list_backups,
        .list_storages = fc_list_storages,
        .next_id = fc_next_id,
        .error = fc_error,
};

static inline struct cluster fc_cluster(struct fake_cluster *f)
{
        return (struct cluster){ &fc_ops, f };
}

/* --- the clock and the polls --- */

static inline uint64_t fc_monotonic(void *userdata)
{
        return ((struct fake_cluster *)userdata)->now;
}

static inline int64_t fc_wall(void *userdata)
{
        return fc_epoch(userdata);
}

static inline void fc_sleep(void *userdata, uint64_t usec)
{
        ((struct fake_cluster *)userdata)->now += usec;
}

/* A poll completes continually: any moment before now is followed by one. */
static inline bool fc_poll_since(void *userdata, uint64_t since)
{
        return ((struct fake_cluster *)userdata)->now > since;
}

static inline const char *fc_node_of(void *userdata, uint32_t vmid, enum guest_type t)
{
        struct fc_guest *g = fc_guest(userdata, vmid);

        return g && g->type == t ? g->node : NULL;
}

static inline const char *fc_pool_of(void *userdata, uint32_t vmid)
{
        (void)userdata;
        (void)vmid;
        return NULL;
}

static inline void fc_attach(struct fake_cluster *f, struct saga *s)
{
        struct saga_clock c = { fc_monotonic, fc_wall, fc_sleep, f };
        struct saga_view v = { fc_poll_since, fc_node_of, fc_pool_of, f };

        saga_set_clock(s, &c);
        saga_set_view(s, &v);
}

#endif
