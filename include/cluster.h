/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * cluster: what the reap and restore sagas ask of Proxmox VE, behind one
 * interface. The sagas (saga.h) say what they want in their own words (a
 * shutdown of this guest with that timeout, the archive that task wrote)
 * and never see a URL or a form; cluster_of_pve() answers through the
 * real API client, and the unit tests answer from an in-memory cluster
 * (tests/unit/fake_cluster.c) whose every call can be made to fail the way
 * a real one can.
 *
 * Every call returns >= 0, or a negative errno with the server's words in
 * error():
 *   -ENOENT                  the guest, task or archive is not there
 *   -EACCES, -EREMOTEIO, -ENOMSG, -EINVAL
 *                            the server answered with an error: it did not act
 *   -ECONNREFUSED, -EHOSTUNREACH
 *                            no connection: a write provably never left
 *   anything else            no readable answer (timeout, reset, garbage, or a
 *                            proxy's 502-504 or 595-599 instead of Proxmox's
 *                            own, -EPROTO): a write may or may not have been done
 */
#ifndef PROXREAP_CLUSTER_H
#define PROXREAP_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guestconf.h"
#include "pve.h"
#include "pve_api.h"

enum task_kind {
        TASK_SHUTDOWN,
        TASK_SNAPSHOT,
        TASK_ARCHIVE, /* vzdump */
        TASK_DESTROY, /* with purge; never destroy-unreferenced-disks */
        TASK_START,
        TASK_RESTORE, /* create a guest from an archive */
};

/* One write that starts a worker task. Fields a kind does not use are
 * ignored. */
struct task_request {
        enum task_kind kind;
        enum guest_type type;
        const char *node;
        uint32_t vmid; /* the guest; TASK_RESTORE: the vmid to create */
        uint64_t timeout_s; /* shutdown */
        bool force_stop; /* shutdown */
        const char *snapname, *description; /* snapshot */
        const char *storage; /* archive: where to; restore: where the disks go (NULL: theirs) */
        const char *compress, *notes; /* archive */
        const char *archive; /* restore: the volid */
        const char *pool; /* restore: NULL none */
};

typedef bool (*cluster_task_known_fn)(void *userdata, const char *upid);

struct cluster_ops {
        int (*start_task)(void *impl, const struct task_request *req, char upid[PVE_UPID_MAX]);
        int (*task_status)(void *impl, const char *upid, struct pve_task_status *ret);
        int (*task_abort)(void *impl, const char *upid);
        /* The archive a vzdump task's log says it created (its name). */
        int (*task_archive_name)(void *impl, const char *upid, char *buf, size_t size);
        /* The newest task of one of types for vmid on node started at or
         * after since (server clock) that known() does not claim. */
        int (*find_task)(void *impl, const char *node, uint32_t vmid, const char *const *types,
                         uint64_t since, cluster_task_known_fn known, void *userdata,
                         char upid[PVE_UPID_MAX]);
        int (*guest_status)(void *impl, enum guest_type t, const char *node, uint32_t vmid,
                            struct pve_guest_status *ret);
        /* Its configuration, pending view and snapshots (guestconf_read()). */
        int (*guest_read)(void *impl, enum guest_type t, const char *node, uint32_t vmid,
                          struct guest_reading *ret);
        int (*set_tags)(void *impl, enum guest_type t, const char *node, uint32_t vmid,
                        const char *tags, const char *digest);
        int (*find_backup)(void *impl, const char *node, const char *storage,
                           const struct pve_backup_query *q, struct pve_backup *ret);
        /* The configuration an archive holds (caller frees). */
        int (*extract_config)(void *impl, const char *node, const char *volid, char **ret);
        /* Every backup on a storage (pve_list_backups(); caller decrefs). */
        int (*list_backups)(void *impl, const char *node, const char *storage, json_t **ret);
        /* Every storage of every node (pve_list_storages(); caller decrefs). */
        int (*list_storages)(void *impl, json_t **ret);
        /* want if it is free (-EEXIST if not); 0: the next free one. */
        int (*next_id)(void *impl, uint32_t want, uint32_t *ret);
        /* The last failure, in the server's words where it gave some. */
        const char *(*error)(void *impl);
};

struct cluster {
        const struct cluster_ops *ops;
        void *impl;
};

/* The real cluster, through p (not owned). */
struct cluster cluster_of_pve(struct pve *p);

/* The server answered with an error status: it did not act. An answer
 * that could not be read is no refusal: the server may have acted. */
bool cluster_refused(int e);

/* The last failure, in the server's words where it gave some. */
static inline const char *api_error(const struct cluster *api)
{
        return api->ops->error(api->impl);
}
/* No connection could be made: the call never left. */
bool cluster_unsent(int e);

#endif
