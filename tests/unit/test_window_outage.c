/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Regression: polls that fail (an API outage) reuse ring slots. A slot that
 * still carries a guest's presence bit from the poll it held before must not
 * be counted as a sample taken at the slot's new time; otherwise an outage
 * would keep an old window "covered" and could make a guest look idle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"
#include "window.h"

#define INTERVAL (100 * USEC_PER_MSEC)
#define EXPECTED 10

static struct pve_guest running_guest(uint64_t uptime)
{
        struct pve_guest g;

        memset(&g, 0, sizeof(g));
        g.vmid = 100;
        g.type = GUEST_QEMU;
        strcpy(g.node, "pve1");
        strcpy(g.name, "idle");
        strcpy(g.status, "running");
        g.cpu = 0.01;
        g.mem = 300u << 20;
        g.uptime = uptime;
        g.present = PVE_HAS_CPU | PVE_HAS_MEM | PVE_HAS_UPTIME | PVE_HAS_NET | PVE_HAS_DISKIO;
        return g;
}

/* Polls that all succeed: a full window. */
static uint64_t fill_window(struct guest_table *t, uint64_t now)
{
        for (unsigned i = 0; i < EXPECTED + 1; i++) {
                struct pve_guest g = running_guest(100000 + i);

                now += INTERVAL;
                guest_table_begin_poll(t, now);
                assert_int_equal(guest_table_update(t, &g, NULL), 0);
                guest_table_end_poll(t, NULL, NULL);
        }
        return now;
}

static void test_failed_polls_do_not_revive_old_samples(void **state)
{
        struct guest_table *t = NULL;
        struct window_stats s;
        uint64_t now = USEC_PER_SEC;
        struct guest *g;

        (void)state;
        assert_int_equal(guest_table_new(EXPECTED, EXPECTED * INTERVAL, &t), 0);
        now = fill_window(t, now);
        g = guest_table_find(t, 100);
        assert_non_null(g);
        window_stats(t, g, now, 5.0, &s);
        assert_int_equal(s.samples, EXPECTED);

        /* Five failed polls: begin without update or end. */
        for (unsigned i = 0; i < 5; i++) {
                now += INTERVAL;
                guest_table_begin_poll(t, now);
        }
        window_stats(t, g, now, 5.0, &s);
        /* Only the samples still inside the window, none reborn. */
        assert_int_equal(s.samples, EXPECTED - 5);
        assert_true(s.newest_age_usec >= 5 * INTERVAL);

        /* A whole window of failures: nothing left. */
        for (unsigned i = 0; i < EXPECTED; i++) {
                now += INTERVAL;
                guest_table_begin_poll(t, now);
        }
        window_stats(t, g, now, 5.0, &s);
        assert_int_equal(s.samples, 0);
        assert_true(s.coverage == 0.0);
        guest_table_free(t);
}

static void test_recovery_after_outage_counts_only_new_samples(void **state)
{
        struct guest_table *t = NULL;
        struct window_stats s;
        uint64_t now = USEC_PER_SEC;
        struct pve_guest p = running_guest(200000);

        (void)state;
        assert_int_equal(guest_table_new(EXPECTED, EXPECTED * INTERVAL, &t), 0);
        now = fill_window(t, now);
        for (unsigned i = 0; i < 3; i++) {
                now += INTERVAL;
                guest_table_begin_poll(t, now);
        }
        now += INTERVAL;
        guest_table_begin_poll(t, now);
        assert_int_equal(guest_table_update(t, &p, NULL), 0);
        guest_table_end_poll(t, NULL, NULL);
        window_stats(t, guest_table_find(t, 100), now, 5.0, &s);
        /* 10-slot window: 6 old samples still inside + the new one; the
         * three failed polls are gaps. */
        assert_int_equal(s.samples, EXPECTED - 4 + 1);
        guest_table_free(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_failed_polls_do_not_revive_old_samples),
                cmocka_unit_test(test_recovery_after_outage_counts_only_new_samples),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
