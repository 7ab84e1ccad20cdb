/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * guestconf: what a guest's configuration says about reaping it.
 *
 * A configuration arrives either as GET .../config answers it (a JSON
 * object) or as an archive holds it (the text vzdump/extractconfig reads
 * back). Both become the same thing: the fields, each as a string, and the
 * list of every volume the guest references, each classified by vzdump's
 * own rules as held by an archive or not, with the reason:
 *
 *   qemu (qemu-server PVE::QemuConfig::get_backup_volumes, VZDump/QemuServer
 *   assemble): ide, sata, scsi and virtio disks, efidisk0 and tpmstate0 are
 *   archived unless backup=0; an efidisk only with bios 'ovmf'; cd-roms are
 *   not the guest's data (cloud-init drives are generated again); unusedN
 *   and vmstate volumes are never archived; a host device path is archived
 *   but cannot be restored by proxreap;
 *   lxc (pve-container PVE::LXC::Config::mountpoint_backup_enabled): rootfs
 *   always; an mpN only when it is a volume with backup=1; bind and device
 *   mount points never; unusedN never.
 *
 * Destroying a guest frees every volume it owns, unused and pending ones
 * too (qemu-server destroy_vm, pve-container destroy_lxc_container), so a
 * guest is reapable only when an archive holds every volume it lists.
 *
 * A volume line proxreap cannot read is classified as not archived: it
 * cannot vouch for it.
 *
 * Nothing here does I/O but guestconf_read(), which fetches what the
 * decisions need (GET config twice, and the snapshot list).
 */
#ifndef PROXREAP_GUESTCONF_H
#define PROXREAP_GUESTCONF_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "policy.h"
#include "pve.h"

struct guest_volume {
        char key[16]; /* scsi1, efidisk0, rootfs, mp0, unused0 */
        char volid[256]; /* as the configuration names it: STORAGE:NAME or a path */
        char size_text[24]; /* the size= option as written ("500G"), "" when absent */
        uint64_t size; /* bytes, 0 when absent */
        bool archived; /* vzdump puts it into the archive */
        const char *why; /* !archived: why not (static text) */
};

struct guest_conf {
        enum guest_type type;
        json_t *fields; /* key -> string, as the configuration file writes it */
        struct guest_volume *volumes;
        size_t n_volumes;
        /* From an archive: the qemu devices its "#qmdump#map" lines name
         * (the disks it really holds); NULL for a live configuration. */
        json_t *map;
        bool raw_lxc; /* lxc.* keys: only root may restore them */
};

/* From a JSON object (GET .../config, or fields journaled by
 * guestconf_fields_json()). Scalars become strings: integers in decimal,
 * booleans 0/1, reals exactly (compared as numbers); "digest" and
 * non-scalar values (lxc raw keys) are left out. -EBADMSG: not an object
 * (err says so). */
int guestconf_from_json(enum guest_type t, json_t *config, struct guest_conf *ret, char *err,
                        size_t errsz);
/* From the text of an archive's configuration (qemu-server.conf or
 * pct.conf as extractconfig returns it). */
int guestconf_from_text(enum guest_type t, const char *text, struct guest_conf *ret, char *err,
                        size_t errsz);
void guestconf_done(struct guest_conf *c);

const char *guestconf_field(const struct guest_conf *c, const char *key);
/* The first volume an archive would not hold (NULL: every one). */
const struct guest_volume *guestconf_unarchived(const struct guest_conf *c);
/* "disk scsi1 (local-lvm:vm-201-disk-1, 500G) is excluded from backup (backup=0)" */
void guestconf_volume_reason(const struct guest_conf *c, const struct guest_volume *v, char *buf,
                             size_t size);

/* The fields as a JSON object of strings, and the volumes as
 * [{"key", "volid", "size"}]: what the journal pins at selection. */
json_t *guestconf_fields_json(const struct guest_conf *c);
json_t *guestconf_volumes_json(const struct guest_conf *c);

/* Field by field, both ways, skipping what is not part of the guest's
 * description (digest, lock, parent, snaptime, lxc raw keys, unusedN).
 * Returns 0 when equal, else 1 with why naming the first difference
 * (want_name and got_name say what each side is: "the archive", "now"). */
int guestconf_compare(const struct guest_conf *want, const char *want_name,
                      const struct guest_conf *got, const char *got_name, char *why, size_t size);

/* The archive holds the pinned guest: the same type and fields, the same
 * volumes and sizes, and each of them really inside the archive (qemu: a
 * "#qmdump#map" line; lxc: archived by the rules above). 0, or 1 with why. */
int guestconf_check_archive(const struct guest_conf *pinned, const struct guest_conf *archive,
                            char *why, size_t size);

/* Is got the guest pinned, under the same vmid, or another one (deleted
 * and created again)? The SMBIOS uuid, vmgenid, creation time (meta
 * ctime) and network MAC addresses are what a configuration edit keeps
 * and a new guest changes. OTHER: one of them differs. SAME: uuid,
 * vmgenid or ctime agree, or (MACs being copied by a restore without
 * unique) MACs and the name. UNSURE: nothing to tell by (an lxc without
 * network), or the MACs agree and the name does not. */
enum guest_identity {
        IDENTITY_SAME,
        IDENTITY_OTHER,
        IDENTITY_UNSURE,
};
enum guest_identity guestconf_identity(const struct guest_conf *pinned, const struct guest_conf *got);

/* What the configuration means for policy (conf_facts, policy.h). The
 * pending view is GET config without current=1 (pending changes applied);
 * snapshots is the snapshot list (NULL when the guest has none). */
void guestconf_facts(const struct guest_conf *current, const struct guest_conf *pending_view,
                     json_t *snapshots, struct conf_facts *ret);

/* A snapshot proxreap took itself (the one before an archive). */
bool guestconf_snapshot_is_ours(const char *name, const char *description);
#define GUESTCONF_SNAPSHOT_PREFIX "proxreap-"
#define GUESTCONF_SNAPSHOT_DESCRIPTION "taken by proxreap before reap "

/* Everything the decisions need from the live guest: the current
 * configuration, its digest, tags, lock and facts. Three calls: GET config
 * with current=1 and without, and the snapshot list. Errors as pve_api
 * (-ENOENT: the guest is not on node). */
struct guest_reading {
        struct guest_conf conf;
        char digest[64];
        char tags[2048];
        char lock[32];
        bool template;
        struct conf_facts facts;
        json_t *snapshots; /* its snapshot list, owned; NULL: none */
};
int guestconf_read(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                   struct guest_reading *ret);
void guest_reading_done(struct guest_reading *r);
/* Whether the guest holds proxreap's snapshot 'name': only the guest
 * proxreap snapshotted can (a new guest, even one restored from its
 * archive, starts without snapshots). */
bool guest_reading_has_our_snapshot(const struct guest_reading *r, const char *name);

#endif
