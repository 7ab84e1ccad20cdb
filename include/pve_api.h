/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * pve_api: the typed Proxmox calls of the reap saga and of restore, on top
 * of pve_call(). Answers are small and decoded with jansson; every decoder
 * is exposed (and fuzzed) separately from the request.
 *
 * Everything that goes into a URL is validated or escaped here. Errors are
 * negative errnos with the message in pve_error():
 *   -ENOENT     the guest (or task, or backup) does not exist
 *   -EEXIST     the vmid is taken (nextid)
 *   -ENOMSG     a call that must start a task answered without a UPID
 *   -EBADMSG    the answer does not have the documented shape
 *   -EACCES, -EREMOTEIO, transport errors: as pve_call()
 */
#ifndef PROXREAP_PVE_API_H
#define PROXREAP_PVE_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pve.h"

#define PVE_UPID_MAX 256

struct pve_upid {
        char node[64];
        char type[64]; /* qmshutdown, vzdump, hastop, ... */
        char id[64]; /* usually the vmid; may be empty */
        char user[PVE_UPID_MAX]; /* who started it: USER@REALM[!TOKENID] */
        uint64_t starttime; /* server clock, UNIX seconds */
};

/* Validates the UPID format of endpoints.json ("upid.regex"). */
int pve_upid_parse(const char *s, struct pve_upid *ret);

struct pve_task_status {
        bool running;
        char exitstatus[512]; /* when stopped: "OK", "WARNINGS: 2" or the error */
};

int pve_decode_task_status(json_t *data, struct pve_task_status *ret);
/* "OK" and "WARNINGS: N" are success. */
bool pve_task_succeeded(const char *exitstatus);

struct pve_guest_config {
        char digest[64];
        char lock[32];
        char tags[2048];
        char name[128];
        char rootfs_storage[64]; /* lxc: storage of rootfs, "" if unknown */
        bool protection;
        bool template;
};
int pve_decode_guest_config(json_t *data, struct pve_guest_config *ret);

struct pve_guest_status {
        char status[32]; /* running, stopped */
        char qmpstatus[32]; /* qemu only */
        char lock[32];
        bool ha_managed;
        char hastate[32]; /* ha.state when managed ("started", ...) */
        double cpu, cpus;
        uint64_t mem, maxmem, maxdisk, disk, uptime;
};
int pve_decode_guest_status(json_t *data, struct pve_guest_status *ret);

struct pve_storage_status {
        char type[32];
        char content[256];
        bool active, enabled;
        uint64_t total, used, avail;
};
int pve_decode_storage_status(json_t *data, struct pve_storage_status *ret);

struct pve_backup {
        char volid[256];
        uint64_t size;
        int64_t ctime;
        bool protected;
};
/* Which backup a storage content list is searched for. */
struct pve_backup_query {
        uint32_t vmid;
        const char *marker; /* its notes (first line) contain this; NULL: any */
        const char *name; /* its volid is STORAGE:backup/NAME; NULL: any */
        int64_t min_ctime;
};
/* The newest backup of the list that q describes. -ENOENT. */
int pve_decode_backup_list(json_t *data, const struct pve_backup_query *q,
                           struct pve_backup *ret);

/* The storage of a volume or volume spec: "local-lvm:vm-101-disk-0,size=8G"
 * -> "local-lvm"; "" for a path or a spec without one. */
void pve_volume_storage(const char *spec, char *buf, size_t size);

/* volid names an archive of this guest (type, vmid) on storage, by
 * vzdump's naming: STORAGE:backup/vzdump-qemu-104-2026_... on file
 * storages, STORAGE:backup/vm/104/2026-... on Proxmox Backup Server. */
bool pve_volid_is_backup_of(const char *volid, const char *storage, enum guest_type t,
                            uint32_t vmid);

/* --- calls --- */

int pve_guest_config(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                     struct pve_guest_config *ret);
int pve_guest_status(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                     struct pve_guest_status *ret);
/* The configuration object as answered (caller owns it): current=true
 * without pending changes applied (what vzdump archives), false with them. */
int pve_guest_config_json(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                          bool current, json_t **ret);
/* GET .../snapshot: the snapshots, ending with the pseudo entry "current". */
int pve_snapshot_list(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                      json_t **ret);

/* POST/DELETE that must answer with a UPID (ret, PVE_UPID_MAX bytes).
 * suffix: "/status/shutdown", "/snapshot", "" (the guest itself). */
int pve_guest_task(struct pve *p, const char *method, enum guest_type t, const char *node,
                   uint32_t vmid, const char *suffix, const struct pve_form *form, char *ret);
/* POST /nodes/{node}/vzdump. */
int pve_vzdump(struct pve *p, const char *node, const struct pve_form *form, char *ret);
/* POST /nodes/{node}/{qemu|lxc} (restore). */
int pve_create_guest(struct pve *p, enum guest_type t, const char *node,
                     const struct pve_form *form, char *ret);

/* Status of a task, asked of the node named in the UPID. */
int pve_task_status(struct pve *p, const char *upid, struct pve_task_status *ret);
/* The archive a vzdump task says it created ("creating vzdump archive
 * '...'"), as its volid names it after STORAGE:backup/. -ENOENT: none.
 * pve_decode_archive_name() reads it from a task log answer. */
int pve_task_archive_name(struct pve *p, const char *upid, char *buf, size_t size);
int pve_decode_archive_name(json_t *log, char *buf, size_t size);
/* Aborts a running task (a hung one). */
int pve_task_abort(struct pve *p, const char *upid);
/* The newest task for vmid on node of one of the types (NULL-terminated)
 * started at or after since (server clock) that known() (NULL: none) does
 * not claim for another op: finds a task whose POST answer was lost.
 * -ENOENT when there is none. */
int pve_find_task(struct pve *p, const char *node, uint32_t vmid, const char *const *types,
                  uint64_t since, bool (*known)(void *userdata, const char *upid), void *userdata,
                  char *ret);

int pve_storage_status(struct pve *p, const char *node, const char *storage,
                       struct pve_storage_status *ret);
int pve_find_backup(struct pve *p, const char *node, const char *storage,
                    const struct pve_backup_query *q, struct pve_backup *ret);
/* The guest configuration stored in an archive (caller frees). */
int pve_extract_config(struct pve *p, const char *node, const char *volid, char **ret);
/* Every backup on storage as node sees it: the content list, as it is
 * (volid, vmid, notes' first line, ctime, size, protected). */
int pve_list_backups(struct pve *p, const char *node, const char *storage, json_t **ret);

/* Every storage of every node, as /cluster/resources?type=storage lists
 * them (node, storage, shared, status, content). */
int pve_list_storages(struct pve *p, json_t **ret);

/* PUT config tags=..., refused by Proxmox when digest no longer matches. */
int pve_set_tags(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                 const char *tags, const char *digest);
/* The names of the cluster's nodes the token may see (Sys.Audit), as a
 * JSON array of strings (caller owns it). */
int pve_cluster_nodes(struct pve *p, json_t **ret);
/* want == 0: the next free vmid; else want if free, -EEXIST if taken. */
int pve_next_id(struct pve *p, uint32_t want, uint32_t *ret);
/* GET rrddata (cf=AVERAGE); timeframe hour|day|week|month|year. */
int pve_rrddata(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                const char *timeframe, json_t **ret);

/* Tag list helpers (';'-joined, order and every other tag kept). */
int tags_with(const char *tags, const char *tag, char *buf, size_t size);
int tags_without(const char *tags, const char *tag, char *buf, size_t size);

#endif
