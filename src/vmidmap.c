/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "marks.h"

#include <stdlib.h>

static size_t slot_of(const struct mark_table *t, uint32_t vmid)
{
        /* Fibonacci hashing: consecutive vmids spread over the table. */
        return (size_t)((vmid * UINT64_C(11400714819323198485)) >> 32) & (t->size - 1);
}

static size_t next_slot(const struct mark_table *t, size_t i)
{
        return (i + 1) & (t->size - 1);
}

struct mark *mark_table_find(const struct mark_table *t, uint32_t vmid)
{
        if (t->size == 0 || vmid == 0)
                return NULL;
        for (size_t i = slot_of(t, vmid);; i = next_slot(t, i)) {
                if (t->slots[i].vmid == vmid)
                        return &t->slots[i];
                if (t->slots[i].vmid == 0)
                        return NULL;
        }
}

static struct mark *insert(struct mark_table *t, const struct mark *m)
{
        size_t i = slot_of(t, m->vmid);

        while (t->slots[i].vmid != 0)
                i = next_slot(t, i);
        t->slots[i] = *m;
        t->n++;
        return &t->slots[i];
}

struct mark *mark_table_add(struct mark_table *t, uint32_t vmid, uint64_t since_usec)
{
        if ((t->n + 1) * 4 > t->size * 3) {
                struct mark_table grown = { .size = t->size ? 2 * t->size : 64 };

                grown.slots = calloc(grown.size, sizeof(*grown.slots));
                if (!grown.slots)
                        return NULL;
                for (size_t i = 0; i < t->size; i++)
                        if (t->slots[i].vmid != 0)
                                (void)insert(&grown, &t->slots[i]);
                free(t->slots);
                *t = grown;
        }
        return insert(t, &(struct mark){ .vmid = vmid, .since_usec = since_usec });
}

void mark_table_drop(struct mark_table *t, uint32_t vmid)
{
        struct mark *m = mark_table_find(t, vmid);
        size_t hole;

        if (!m)
                return;
        /* Backward-shift deletion: every later entry of the probe run that
         * may sit in the hole moves up, so lookups need no tombstones. */
        hole = (size_t)(m - t->slots);
        t->slots[hole].vmid = 0;
        t->n--;
        for (size_t i = next_slot(t, hole); t->slots[i].vmid != 0; i = next_slot(t, i)) {
                size_t home = slot_of(t, t->slots[i].vmid);

                /* It stays when its home is in the cyclic range (hole, i]. */
                if (hole < i ? (home > hole && home <= i) : (home > hole || home <= i))
                        continue;
                t->slots[hole] = t->slots[i];
                t->slots[i].vmid = 0;
                hole = i;
        }
}

void mark_table_free(struct mark_table *t)
{
        free(t->slots);
        *t = (struct mark_table){ 0 };
}
