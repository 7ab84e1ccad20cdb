/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The guests mark mode and the grace period have tagged, by vmid: an
 * open-addressing hash table (linear probing, at most 3/4 full), looked up
 * once per guest per poll, so tens of thousands of marked guests cost no
 * more per poll than a few. */
struct mark {
        uint32_t vmid; /* 0: a free slot (vmids start at 100) */
        uint64_t since_usec; /* first seen idle and marked */
        bool cancelled; /* an operator removed our tag: leave it alone */
};

struct mark_table {
        struct mark *slots;
        size_t size; /* a power of two, or 0 */
        size_t n;
};

struct mark *mark_table_find(const struct mark_table *t, uint32_t vmid);
/* A new mark for vmid (which must not be in the table); NULL when out of
 * memory. Pointers into the table are valid until the next add or drop. */
struct mark *mark_table_add(struct mark_table *t, uint32_t vmid, uint64_t since_usec);
void mark_table_drop(struct mark_table *t, uint32_t vmid);
void mark_table_free(struct mark_table *t);
