/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * archives.c - the reaps the archives on the archive storage tell of.
 *
 * Every archive of a reap carries proxreap's notes (op id, guest, node)
 * and is protected; listing them finds a reap whatever became of the
 * journal that recorded it. Read through every node that holds some.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archives.h"
#include "log.h"

#define ARCHIVE_NODES_MAX 64



/* The nodes whose view of the archive storage holds every archive: this
 * node for a shared storage (any one that has it, if this one does not);
 * each node that has it for a storage of one node only, where each
 * node's reaps wrote their archives. At least this node. */
static size_t archive_nodes(const struct config *c, const struct cluster *api,
                            char nodes[][64])
{
        json_t *all = NULL, *it;
        size_t i, n = 0;
        bool shared = false, here = false;

        if (api->ops->list_storages(api->impl, &all) < 0)
                all = NULL; /* this node's view, as before */
        json_array_foreach(all, i, it) {
                const char *node = json_string_value(json_object_get(it, "node"));
                const char *status = json_string_value(json_object_get(it, "status"));
                const char *storage = json_string_value(json_object_get(it, "storage"));

                bool one_node;

                if (!node || strlen(node) >= 64 || !storage || strcmp(storage, c->archive_storage) != 0)
                        continue;
                one_node = !json_is_true(json_object_get(it, "shared")) &&
                           json_integer_value(json_object_get(it, "shared")) != 1;
                if (status && strcmp(status, "available") != 0) {
                        /* An offline node shows its storages as "unknown". */
                        if (one_node)
                                log_warning("node '%s' shows storage '%s' as '%s' (offline?): the archives there are not listed",
                                            node, storage, status);
                        continue;
                }
                shared |= !one_node;
                here |= strcmp(node, c->node_name) == 0;
                if (n < ARCHIVE_NODES_MAX)
                        snprintf(nodes[n++], 64, "%s", node);
        }
        json_decref(all);
        if (n == 0 || (shared && here))
                n = (snprintf(nodes[0], 64, "%s", c->node_name), 1);
        return shared ? 1 : n;
}

/* Adds node's archives (those with proxreap's notes) to *v, *n of them. */
static int add_archives(const struct cluster *api, const char *node, const char *storage,
                        struct found_archive **v, size_t *n)
{
        json_t *all = NULL, *it;
        size_t i;
        int r = api->ops->list_backups(api->impl, node, storage, &all);
        struct found_archive *grown = r < 0 ? *v : realloc(*v, (*n + json_array_size(all) + 1) * sizeof(**v));

        if (!grown) {
                json_decref(all);
                return -ENOMEM;
        }
        *v = grown;
        json_array_foreach(all, i, it) {
                const char *volid = json_string_value(json_object_get(it, "volid"));
                struct found_archive *a = &grown[*n];
                bool dup = false;

                for (size_t k = 0; volid && k < *n; k++)
                        dup |= strcmp(grown[k].volid, volid) == 0;
                *a = (struct found_archive){ 0 };
                if (dup || !volid || strlen(volid) >= sizeof(a->volid) ||
                    archive_note_parse(json_string_value(json_object_get(it, "notes")),
                                       &a->note) < 0 ||
                    json_integer_value(json_object_get(it, "vmid")) != (json_int_t)a->note.vmid)
                        continue;
                snprintf(a->volid, sizeof(a->volid), "%s", volid);
                snprintf(a->node, sizeof(a->node), "%s", node);
                if (!a->note.typed)
                        a->note.type = strstr(volid, "/vzdump-lxc-") ? GUEST_LXC : GUEST_QEMU;
                a->size = (uint64_t)json_integer_value(json_object_get(it, "size"));
                a->ctime = (int64_t)json_integer_value(json_object_get(it, "ctime"));
                a->protected = json_is_true(json_object_get(it, "protected")) ||
                               json_integer_value(json_object_get(it, "protected")) == 1;
                (*n)++;
        }
        json_decref(all);
        return r;
}

/* proxreap's archives on the archive storage, found through every node
 * that holds some (archive_nodes()). < 0: no node could list it (said). */
ssize_t archives_list(const struct config *c, const struct cluster *api,
                      struct found_archive **ret, char *why, size_t size)
{
        char nodes[ARCHIVE_NODES_MAX][64];
        struct found_archive *v = NULL;
        size_t n = 0, listed = 0, k;
        int r = 0;

        *ret = NULL;
        if (!c->archive_storage) {
                snprintf(why, size, "no archive storage configured: set 'reap.archive_storage'");
                return -EINVAL;
        }
        k = archive_nodes(c, api, nodes);
        for (size_t i = 0; i < k && r != -ENOMEM; i++) {
                r = add_archives(api, nodes[i], c->archive_storage, &v, &n);
                if (r < 0 && r != -ENOMEM && k > 1)
                        log_warning("archives on node '%s' not listed: %s", nodes[i], api_error(api));
                if (r < 0)
                        snprintf(why, size, "%s", api_error(api));
                listed += r >= 0;
        }
        if (listed == 0 || r == -ENOMEM) {
                free(v);
                return r < 0 ? r : -EIO;
        }
        *ret = v ? v : calloc(1, sizeof(*v));
        return *ret ? (ssize_t)n : -ENOMEM;
}

