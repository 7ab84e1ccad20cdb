/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of marks: the vmid hash table of mark mode and the grace
 * period, against a plain array as the reference, through growth, probe
 * runs that wrap around the end of the table, and backward-shift drops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "marks.h"

#define SPAN 3000 /* vmids 100..3099: dense, so probe runs are long */

/* xorshift64: the same sequence on every run. */
static uint64_t rnd(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

static void check_all(const struct mark_table *t, const uint64_t *since, size_t n)
{
        size_t found = 0;

        for (uint32_t k = 0; k < SPAN; k++) {
                const struct mark *m = mark_table_find(t, 100 + k);

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
        struct mark_table t = { 0 };
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
                                struct mark *m = mark_table_add(&t, 100 + k, step);

                                assert_non_null(m);
                                assert_int_equal(m->vmid, 100 + k);
                                since[k] = step;
                                n++;
                        }
                } else {
                        mark_table_drop(&t, 100 + k);
                        if (since[k] != 0)
                                n--;
                        since[k] = 0;
                }
                if (step % 5000 == 0)
                        check_all(&t, since, n);
        }
        check_all(&t, since, n);
        mark_table_free(&t);
        assert_null(t.slots);
        assert_int_equal(t.n, 0);
        free(since);
}

static void test_empty_and_absent(void **state)
{
        struct mark_table t = { 0 };

        (void)state;
        assert_null(mark_table_find(&t, 100));
        mark_table_drop(&t, 100); /* nothing to drop: no effect */
        assert_non_null(mark_table_add(&t, 100, 7));
        assert_null(mark_table_find(&t, 0)); /* 0 marks a free slot, never a guest */
        assert_null(mark_table_find(&t, 101));
        mark_table_drop(&t, 101);
        assert_int_equal(t.n, 1);
        mark_table_find(&t, 100)->cancelled = true;
        assert_true(mark_table_find(&t, 100)->cancelled);
        mark_table_drop(&t, 100);
        assert_null(mark_table_find(&t, 100));
        assert_int_equal(t.n, 0);
        mark_table_free(&t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_empty_and_absent),
                cmocka_unit_test(test_random_against_reference),
        };

        return cmocka_run_group_tests_name("marks", tests, NULL, NULL);
}
