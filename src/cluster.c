/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "cluster.h"

#include <errno.h>
#include <inttypes.h>

#include "util.h"

bool cluster_refused(int e)
{
        return e == -EACCES || e == -EREMOTEIO || e == -ENOMSG || e == -EINVAL || e == -ENOENT;
}

bool cluster_unsent(int e)
{
        return e == -ECONNREFUSED || e == -EHOSTUNREACH;
}

/* The form of a request, as the API takes it (endpoints.json). */
static void task_form(const struct task_request *q, struct pve_form *f)
{
        switch (q->kind) {
        case TASK_SHUTDOWN:
                pve_form_addf(f, "timeout", "%" PRIu64, q->timeout_s);
                pve_form_add(f, "forceStop", q->force_stop ? "1" : "0");
                break;
        case TASK_SNAPSHOT:
                pve_form_add(f, "snapname", q->snapname);
                pve_form_add(f, "description", q->description);
                break;
        case TASK_ARCHIVE:
                pve_form_addf(f, "vmid", "%" PRIu32, q->vmid);
                pve_form_add(f, "storage", q->storage);
                pve_form_add(f, "mode", "stop");
                pve_form_add(f, "compress", q->compress);
                /* Protected: retention can never prune the only copy.
                 * remove=0: existing backups of the guest are never pruned. */
                pve_form_add(f, "protected", "1");
                pve_form_add(f, "remove", "0");
                pve_form_add(f, "notes-template", q->notes);
                break;
        case TASK_DESTROY:
                /* Without destroy-unreferenced-disks: a disk with the
                 * guest's vmid that its configuration does not name is in
                 * no archive, so it stays. */
                pve_form_add(f, "purge", "1");
                break;
        case TASK_START:
                break;
        case TASK_RESTORE:
                pve_form_addf(f, "vmid", "%" PRIu32, q->vmid);
                if (q->type == GUEST_LXC) {
                        pve_form_add(f, "ostemplate", q->archive);
                        pve_form_add(f, "restore", "1");
                } else
                        pve_form_add(f, "archive", q->archive);
                if (q->storage)
                        pve_form_add(f, "storage", q->storage);
                if (q->pool && q->pool[0])
                        pve_form_add(f, "pool", q->pool);
                break;
        }
}

static int pve_start_task(void *impl, const struct task_request *q, char upid[PVE_UPID_MAX])
{
        static const char *const suffix[] = {
                [TASK_SHUTDOWN] = "/status/shutdown", [TASK_SNAPSHOT] = "/snapshot",
                [TASK_DESTROY] = "", [TASK_START] = "/status/start",
        };
        struct pve *p = impl;
        struct pve_form f = { 0 };
        int r;

        task_form(q, &f);
        switch (q->kind) {
        case TASK_ARCHIVE:
                r = pve_vzdump(p, q->node, &f, upid);
                break;
        case TASK_RESTORE:
                r = pve_create_guest(p, q->type, q->node, &f, upid);
                break;
        default:
                r = pve_guest_task(p, q->kind == TASK_DESTROY ? "DELETE" : "POST", q->type,
                                   q->node, q->vmid, suffix[q->kind], &f, upid);
                break;
        }
        pve_form_clear(&f);
        return r;
}

static int pve_task_status_of(void *impl, const char *upid, struct pve_task_status *ret)
{
        return pve_task_status(impl, upid, ret);
}

static int pve_task_abort_of(void *impl, const char *upid)
{
        return pve_task_abort(impl, upid);
}

static int pve_task_archive_name_of(void *impl, const char *upid, char *buf, size_t size)
{
        return pve_task_archive_name(impl, upid, buf, size);
}

static int pve_find_task_of(void *impl, const char *node, uint32_t vmid, const char *const *types,
                            uint64_t since, cluster_task_known_fn known, void *userdata,
                            char upid[PVE_UPID_MAX])
{
        return pve_find_task(impl, node, vmid, types, since, known, userdata, upid);
}

static int pve_guest_status_of(void *impl, enum guest_type t, const char *node, uint32_t vmid,
                               struct pve_guest_status *ret)
{
        return pve_guest_status(impl, t, node, vmid, ret);
}

static int pve_guest_read_of(void *impl, enum guest_type t, const char *node, uint32_t vmid,
                             struct guest_reading *ret)
{
        return guestconf_read(impl, t, node, vmid, ret);
}

static int pve_set_tags_of(void *impl, enum guest_type t, const char *node, uint32_t vmid,
                           const char *tags, const char *digest)
{
        return pve_set_tags(impl, t, node, vmid, tags, digest);
}

static int pve_find_backup_of(void *impl, const char *node, const char *storage,
                              const struct pve_backup_query *q, struct pve_backup *ret)
{
        return pve_find_backup(impl, node, storage, q, ret);
}

static int pve_extract_config_of(void *impl, const char *node, const char *volid, char **ret)
{
        return pve_extract_config(impl, node, volid, ret);
}

static int pve_list_backups_of(void *impl, const char *node, const char *storage, json_t **ret)
{
        return pve_list_backups(impl, node, storage, ret);
}

static int pve_list_storages_of(void *impl, json_t **ret)
{
        return pve_list_storages(impl, ret);
}

static int pve_next_id_of(void *impl, uint32_t want, uint32_t *ret)
{
        return pve_next_id(impl, want, ret);
}

static const char *pve_error_of(void *impl)
{
        return pve_error(impl);
}

static const struct cluster_ops pve_cluster_ops = {
        .start_task = pve_start_task,
        .task_status = pve_task_status_of,
        .task_abort = pve_task_abort_of,
        .task_archive_name = pve_task_archive_name_of,
        .find_task = pve_find_task_of,
        .guest_status = pve_guest_status_of,
        .guest_read = pve_guest_read_of,
        .set_tags = pve_set_tags_of,
        .find_backup = pve_find_backup_of,
        .extract_config = pve_extract_config_of,
        .list_backups = pve_list_backups_of,
        .list_storages = pve_list_storages_of,
        .next_id = pve_next_id_of,
        .error = pve_error_of,
};

struct cluster cluster_of_pve(struct pve *p)
{
        return (struct cluster){ .ops = &pve_cluster_ops, .impl = p };
}
