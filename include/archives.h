/* SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef PROXREAP_ARCHIVES_H
#define PROXREAP_ARCHIVES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cluster.h"
#include "config.h"
#include "ops.h"

/* An archive on the archive storage whose notes are proxreap's. */
struct found_archive {
        struct archive_note note;
        char volid[256];
        char node[64]; /* a node that reads it */
        uint64_t size;
        int64_t ctime;
        bool protected;
};

/* proxreap's archives on c->archive_storage: read once through this node
 * when the storage is shared, through every node that has it when not
 * (each node's reaps wrote to its own). A node that cannot be read is
 * warned about; < 0 (why) when none can, or no storage is configured.
 * *ret: caller frees. */
ssize_t archives_list(const struct config *c, const struct cluster *api,
                      struct found_archive **ret, char *why, size_t size);

#endif
