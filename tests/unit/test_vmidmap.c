/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of vmidmap: the vmid hash table behind mark mode, the grace
 * period and the configuration facts of idle guests, against a plain array
 * as the reference, through growth, probe runs that wrap around the end of
 * the table, and backward-shift drops; with records of two sizes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "vmidmap.h"

/* A record as the reaper keeps one: the vmid first. */
struct mark {
        uint32_t vmid;
        uint64_t since_usec;
        bool cancelled;
};

/* An odd size (7 bytes): records need not be aligned. */
struct __attribute__((packed)) small {
        uint32_t vmid;
        char tag[3];
};

#define SPAN 3000 /* vmids 100..3099: dense, so probe runs are long */

/* xorshift64: the same sequence on every run. */
static uint64_t rnd(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static void check_all(const struct vmid_map *t, const uint64_t *since, size_t n)
{
        size_t found = 0;

        for (uint32_t k = 0; k < SPAN; k++) {
                const struct mark *m = vmid_map_find(t, 100 + k);

                if (since[k] == 0) {
                        assert_null(m);
                        continue;
                }
                assert_non_null(m);
                assert_int_equal(m->vmid, 100 + k);
                assert_int_equal(m->since_usec, since[k]);
                found++;
        }
        assert_int_equal(found, n);
        assert_int_equal(t->n, n);
        assert_true(t->n * 4 <= t->size * 3);
}

static void test_random_against_reference(void **state)
{
        struct vmid_map t = VMID_MAP_INIT(struct mark);
        uint64_t *since = calloc(SPAN, sizeof(*since)), seed = 0x9e3779b97f4a7c15;
        size_t n = 0;

        (void)state;
        assert_non_null(since);
        for (unsigned step = 1; step <= 200000; step++) {
                uint32_t k = (uint32_t)(rnd(&seed) % SPAN);
                /* Phases: mostly adds, then mixed, then mostly drops. */
                unsigned add_pct = step < 60000 ? 80 : step < 140000 ? 50 : 20;

                if (rnd(&seed) % 100 < add_pct) {
                        if (since[k] == 0) {
                                struct mark *m = vmid_map_add(&t, 100 + k);

                                assert_non_null(m);
                                assert_int_equal(m->vmid, 100 + k);
                                assert_int_equal(m->since_usec, 0); /* zeroed */
                                m->since_usec = step;
                                since[k] = step;
                                n++;
                        }
                } else {
                        vmid_map_drop(&t, 100 + k);
                        if (since[k] != 0)
                                n--;
                        since[k] = 0;
                }
                if (step % 5000 == 0)
                        check_all(&t, since, n);
        }
        check_all(&t, since, n);
        vmid_map_free(&t);
        assert_null(t.slots);
        assert_int_equal(t.n, 0);
        free(since);
}

static void test_empty_and_absent(void **state)
{
        struct vmid_map t = VMID_MAP_INIT(struct mark);
        struct mark *m;

        (void)state;
        assert_null(vmid_map_find(&t, 100));
        vmid_map_drop(&t, 100); /* nothing to drop: no effect */
        assert_non_null(m = vmid_map_add(&t, 100));
        m->since_usec = 7;
        assert_null(vmid_map_find(&t, 0)); /* 0 marks a free slot, never a guest */
        assert_null(vmid_map_find(&t, 101));
        vmid_map_drop(&t, 101);
        assert_int_equal(t.n, 1);
        ((struct mark *)vmid_map_find(&t, 100))->cancelled = true;
        assert_true(((struct mark *)vmid_map_find(&t, 100))->cancelled);
        vmid_map_drop(&t, 100);
        assert_null(vmid_map_find(&t, 100));
        assert_int_equal(t.n, 0);
        vmid_map_free(&t);
        assert_int_equal(t.elem, sizeof(struct mark)); /* reusable after free */
}

/* Records of 7 bytes: every slot starts at an unaligned offset. */
static void test_odd_record_size(void **state)
{
        struct vmid_map t = VMID_MAP_INIT(struct small);

        (void)state;
        for (uint32_t v = 100; v < 1100; v++) {
                struct small *s = vmid_map_add(&t, v);

                assert_non_null(s);
                s->tag[0] = (char)(v % 128);
        }
        for (uint32_t v = 100; v < 1100; v += 2)
                vmid_map_drop(&t, v);
        for (uint32_t v = 100; v < 1100; v++) {
                struct small *s = vmid_map_find(&t, v);

                if (v % 2 == 0) {
                        assert_null(s);
                        continue;
                }
                assert_non_null(s);
                assert_int_equal(s->tag[0], (char)(v % 128));
        }
        assert_int_equal(t.n, 500);
        vmid_map_free(&t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty_and_absent),
                cmocka_unit_test(test_random_against_reference),
                cmocka_unit_test(test_odd_record_size),
        };

        return cmocka_run_group_tests_name("vmidmap", tests, NULL, NULL);
}
