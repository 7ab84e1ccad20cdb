/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "vmidmap.h"

#include <stdlib.h>
#include <string.h>

static uint32_t vmid_at(const struct vmid_map *m, size_t i)
{
        uint32_t v;

        memcpy(&v, m->slots + i * m->elem, sizeof(v));
        return v;
}

static void *slot(const struct vmid_map *m, size_t i)
{
        return m->slots + i * m->elem;
}

static size_t slot_of(const struct vmid_map *m, uint32_t vmid)
{
        /* Fibonacci hashing: consecutive vmids spread over the table. */
        return (size_t)((vmid * UINT64_C(11400714819323198485)) >> 32) & (m->size - 1);
}

static size_t next_slot(const struct vmid_map *m, size_t i)
{
        return (i + 1) & (m->size - 1);
}

void *vmid_map_next(const struct vmid_map *m, size_t *pos)
{
        for (; *pos < m->size; (*pos)++)
                if (vmid_at(m, *pos) != 0)
                        return slot(m, (*pos)++);
        return NULL;
}

void *vmid_map_find(const struct vmid_map *m, uint32_t vmid)
{
        if (m->size == 0 || vmid == 0)
                return NULL;
        for (size_t i = slot_of(m, vmid);; i = next_slot(m, i)) {
                if (vmid_at(m, i) == vmid)
                        return slot(m, i);
                if (vmid_at(m, i) == 0)
                        return NULL;
        }
}

/* The free slot vmid goes to, counted as taken. */
static void *claim(struct vmid_map *m, uint32_t vmid)
{
        size_t i = slot_of(m, vmid);

        while (vmid_at(m, i) != 0)
                i = next_slot(m, i);
        m->n++;
        return slot(m, i);
}

static int grow(struct vmid_map *m)
{
        struct vmid_map grown = { .elem = m->elem, .size = m->size ? 2 * m->size : 64 };

        grown.slots = calloc(grown.size, m->elem);
        if (!grown.slots)
                return -1;
        for (size_t i = 0; i < m->size; i++)
                if (vmid_at(m, i) != 0)
                        memcpy(claim(&grown, vmid_at(m, i)), slot(m, i), m->elem);
        free(m->slots);
        m->slots = grown.slots;
        m->size = grown.size;
        m->n = grown.n;
        return 0;
}

void *vmid_map_add(struct vmid_map *m, uint32_t vmid)
{
        void *rec;

        if ((m->n + 1) * 4 > m->size * 3 && grow(m) < 0)
                return NULL;
        rec = claim(m, vmid);
        memset(rec, 0, m->elem);
        memcpy(rec, &vmid, sizeof(vmid));
        return rec;
}

void vmid_map_drop(struct vmid_map *m, uint32_t vmid)
{
        unsigned char *rec = vmid_map_find(m, vmid);
        size_t hole;

        if (!rec)
                return;
        /* Backward-shift deletion: every later entry of the probe run that
         * may sit in the hole moves up, so lookups need no tombstones. */
        hole = (size_t)(rec - m->slots) / m->elem;
        memset(slot(m, hole), 0, m->elem);
        m->n--;
        for (size_t i = next_slot(m, hole); vmid_at(m, i) != 0; i = next_slot(m, i)) {
                size_t home = slot_of(m, vmid_at(m, i));

                /* It stays when its home is in the cyclic range (hole, i]. */
                if (hole < i ? (home > hole && home <= i) : (home > hole || home <= i))
                        continue;
                memcpy(slot(m, hole), slot(m, i), m->elem);
                memset(slot(m, i), 0, m->elem);
                hole = i;
        }
}

void vmid_map_free(struct vmid_map *m)
{
        free(m->slots);
        *m = (struct vmid_map){ .elem = m->elem };
}
