/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * vmidmap: a table of per-guest records keyed by vmid, looked up once per
 * guest per poll (the reaper's marks, what the configurations of idle
 * guests say), so tens of thousands of entries cost no more per poll than a
 * few. Open addressing with linear probing, at most 3/4 full.
 *
 * The records are the caller's: any struct whose first member is the
 * uint32_t vmid (0 marks a free slot; vmids start at 100). elem is its
 * size (sizeof). Pointers into the table are valid until the next add or
 * drop.
 */
#ifndef PROXREAP_VMIDMAP_H
#define PROXREAP_VMIDMAP_H

#include <stddef.h>
#include <stdint.h>

struct vmid_map {
        size_t elem; /* record size, set by the owner before first use */
        unsigned char *slots;
        size_t size; /* a power of two, or 0 */
        size_t n;
};

#define VMID_MAP_INIT(type) { .elem = sizeof(type) }

void *vmid_map_find(const struct vmid_map *m, uint32_t vmid);
/* A new zeroed record for vmid (which must not be in the table), its vmid
 * set; NULL when out of memory. */
void *vmid_map_add(struct vmid_map *m, uint32_t vmid);
void vmid_map_drop(struct vmid_map *m, uint32_t vmid);
void vmid_map_free(struct vmid_map *m);
/* Every record, in no order: start with *pos 0; NULL at the end. */
void *vmid_map_next(const struct vmid_map *m, size_t *pos);

#endif
