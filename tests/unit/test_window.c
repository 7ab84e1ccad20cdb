/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of window: the guest table, sliding windows, counter rates,
 * restarts, gaps, removal, migration, the 16-bit rate floats and memory.
 *
 * Most tests use a small window: 10 expected samples, window 1 s, a poll
 * every 100 ms.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testutil.h"
#include "util.h"
#include "window.h"

#define EXPECTED 10
#define WINDOW_USEC USEC_PER_SEC
#define STEP_USEC (100 * USEC_PER_MSEC)
#define T0 (1000 * USEC_PER_SEC)
#define MIB (UINT64_C(1) << 20)

/* Time of poll k (1-based). */
static uint64_t at(unsigned k)
{
        return T0 + (uint64_t)k * STEP_USEC;
}

/* Fixtures: the table is freed by teardown, also when a test fails. */
static int setup(void **state)
{
        struct guest_table *t = NULL;

        if (guest_table_new(EXPECTED, WINDOW_USEC, &t) < 0 || !t)
                return -1;
        *state = t;
        return 0;
}

/* The default window: 10 min at 10 s, 60 samples. */
static int setup_60(void **state)
{
        struct guest_table *t = NULL;

        if (guest_table_new(60, 10 * USEC_PER_MINUTE, &t) < 0 || !t)
                return -1;
        *state = t;
        return 0;
}

static int teardown(void **state)
{
        guest_table_free(*state);
        return 0;
}

/* A running qemu guest with CPU, memory and uptime. */
static struct pve_guest guest(uint32_t vmid, const char *node, double cpu, uint64_t mem)
{
        struct pve_guest g;

        memset(&g, 0, sizeof(g));
        g.vmid = vmid;
        g.type = GUEST_QEMU;
        snprintf(g.node, sizeof(g.node), "%s", node);
        snprintf(g.name, sizeof(g.name), "vm-%u", (unsigned)vmid);
        snprintf(g.status, sizeof(g.status), "running");
        g.present = PVE_HAS_CPU | PVE_HAS_MEM | PVE_HAS_UPTIME | PVE_HAS_MAXMEM;
        g.cpu = cpu;
        g.maxcpu = 2;
        g.mem = mem;
        g.maxmem = 4096 * MIB;
        g.uptime = 100000;
        return g;
}

static void with_counters(struct pve_guest *g, uint64_t netin, uint64_t netout, uint64_t rd,
                          uint64_t wr)
{
        g->present |= PVE_HAS_NET | PVE_HAS_DISKIO;
        g->netin = netin;
        g->netout = netout;
        g->diskread = rd;
        g->diskwrite = wr;
}

/* One complete poll at at(k) with the given guests. */
static void poll_complete(struct guest_table *t, unsigned k, const struct pve_guest *gs, size_t n)
{
        guest_table_begin_poll(t, at(k));
        for (size_t i = 0; i < n; i++)
                assert_int_equal(guest_table_update(t, &gs[i], NULL), 0);
        guest_table_end_poll(t, NULL, NULL);
}

static struct window_stats stats_at(const struct guest_table *t, uint32_t vmid, uint64_t now)
{
        struct window_stats s;
        const struct guest *g = guest_table_find(t, vmid);

        assert_non_null(g);
        window_stats(t, g, now, 5.0, &s);
        return s;
}

/* --- coverage and means --- */

static void test_coverage_grows_and_means(void **state)
{
        struct guest_table *t = *state;

        for (unsigned k = 1; k <= EXPECTED; k++) {
                /* cpu k % of the vCPUs, mem k MiB */
                struct pve_guest g = guest(100, "pve1", (double)k / 100.0, k * MIB);
                struct window_stats s;

                poll_complete(t, k, &g, 1);
                s = stats_at(t, 100, at(k));
                assert_int_equal(s.samples, k);
                assert_int_equal(s.expected, EXPECTED);
                assert_double_exact(s.coverage, (double)k / EXPECTED);
                assert_double_near(s.cpu_mean_percent, (k + 1) / 2.0, 1e-9);
                assert_double_near(s.mem_mean_mb, (k + 1) / 2.0, 1e-9);
                /* cpu 1..4 % are below 5 % */
                assert_double_near(s.cpu_below_share, (double)(k < 5 ? k : 4) / k, 1e-12);
                assert_int_equal(s.newest_age_usec, 0);
                assert_int_equal(s.rate_samples, 0); /* no counters given */
        }
        assert_int_equal(guest_table_polls(t), EXPECTED);
        assert_int_equal(guest_table_count(t), 1);
}

static void test_cpu_and_mem_units(void **state)
{
        struct guest_table *t = *state;
        struct pve_guest a = guest(100, "pve1", 0.0123, 1536 * 1024); /* 1.5 MiB */
        struct pve_guest b = guest(100, "pve1", 0.5, 2560 * 1024); /* 2.5 MiB */
        struct window_stats s;

        poll_complete(t, 1, &a, 1);
        s = stats_at(t, 100, at(1));
        /* cpu is a fraction of the vCPUs: 0.0123 = 1.23 % */
        assert_double_near(s.cpu_mean_percent, 1.23, 1e-9);
        assert_double_near(s.mem_mean_mb, 1.5, 1e-9);
        poll_complete(t, 2, &b, 1);
        s = stats_at(t, 100, at(2));
        assert_double_near(s.cpu_mean_percent, (1.23 + 50.0) / 2, 1e-9);
        assert_double_near(s.mem_mean_mb, 2.0, 1e-9);
        assert_double_exact(s.cpu_below_share, 0.5);
}

/* "Below the threshold" means cpu / 100.0 < threshold for the stored
 * 1/100 % values, also for thresholds that are not whole hundredths and at
 * the edges; a threshold that changes between calls is honoured. */
static void test_cpu_below_exact(void **state)
{
        struct guest_table *t = *state;
        /* stored as 7 (0.07 %) and 500 (5 %) */
        struct pve_guest a = guest(100, "pve1", 0.0007, MIB), b = guest(100, "pve1", 0.05, MIB);
        const struct guest *g;
        struct {
                double threshold, share;
        } cases[] = {
                { 0.07, 0.0 }, /* 7 / 100.0 == 0.07: not below; 7 < 0.07 * 100 would say it is */
                { 0.0700001, 0.5 }, { 5.0, 0.5 },      { 5.0000001, 1.0 }, { 0.0, 0.0 },
                { -1.0, 0.0 },      { 1e9, 1.0 },      { 655.36, 1.0 },    { NAN, 0.0 },
                { 0.07, 0.0 },
        };

        poll_complete(t, 1, &a, 1);
        poll_complete(t, 2, &b, 1);
        g = guest_table_find(t, 100);
        assert_non_null(g);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct window_stats s;

                window_stats(t, g, at(2), cases[i].threshold, &s);
                assert_int_equal(s.samples, 2);
                if (s.cpu_below_share != cases[i].share)
                        fail_msg("threshold %g: below share %g, expected %g", cases[i].threshold,
                                 s.cpu_below_share, cases[i].share);
        }
}

/* The slots that count are worked out once per poll and time: a poll that
 * begins or completes between two calls at the same time is seen. */
static void test_stats_follow_poll_progress(void **state)
{
        struct guest_table *t = *state;
        struct pve_guest g = guest(100, "pve1", 0.01, MIB);
        struct window_stats s;

        poll_complete(t, 1, &g, 1);
        s = stats_at(t, 100, at(2));
        assert_int_equal(s.samples, 1);
        guest_table_begin_poll(t, at(2));
        assert_int_equal(guest_table_update(t, &g, NULL), 0);
        s = stats_at(t, 100, at(2));
        assert_int_equal(s.samples, 1); /* poll 2 not complete yet */
        guest_table_end_poll(t, NULL, NULL);
        s = stats_at(t, 100, at(2));
        assert_int_equal(s.samples, 2);
        assert_int_equal(s.newest_age_usec, 0);
}

static void test_oldest_sample_slides_out(void **state)
{
        struct guest_table *t = *state;
        struct window_stats s;

        for (unsigned k = 1; k <= 15; k++) {
                struct pve_guest g = guest(100, "pve1", (double)k / 100.0, k * MIB);

                poll_complete(t, k, &g, 1);
                s = stats_at(t, 100, at(k));
                if (k >= EXPECTED) {
                        /* polls k-9..k: mean k-4.5 */
                        assert_int_equal(s.samples, EXPECTED);
                        assert_double_exact(s.coverage, 1.0);
                        assert_double_near(s.cpu_mean_percent, k - 4.5, 1e-9);
                        assert_double_near(s.mem_mean_mb, k - 4.5, 1e-9);
                }
        }
        /* No poll for 550 ms: only polls 11..15 are younger than 1 s. */
        s = stats_at(t, 100, at(15) + 550 * USEC_PER_MSEC);
        assert_int_equal(s.samples, 5);
        assert_double_exact(s.coverage, 0.5);
        assert_double_near(s.cpu_mean_percent, 13.0, 1e-9);
        assert_int_equal(s.newest_age_usec, 550 * USEC_PER_MSEC);
        /* Exactly one window after poll 15 nothing is inside any more. */
        s = stats_at(t, 100, at(15) + WINDOW_USEC);
        assert_int_equal(s.samples, 0);
        assert_double_exact(s.coverage, 0.0);
        assert_true(s.newest_age_usec == UINT64_MAX);
        assert_double_exact(s.cpu_mean_percent, 0.0);
}

/* --- counters to rates --- */

/* Rates are in kilobits (1000 bit) per second (window.h): bytes/s * 8 / 1000. */
#define KBIT_S(bytes_per_s) ((double)(bytes_per_s) * 8.0 / 1000.0)

/* Per 100 ms poll: net +50000 B (500000 B/s = 4000 kbit/s), disk +123456 B
 * (1234560 B/s = 9876.48 kbit/s). */
#define NET_STEP 50000
#define DISK_STEP 123456

static struct pve_guest counting(unsigned k, uint64_t uptime)
{
        struct pve_guest g = guest(100, "pve1", 0.01, 256 * MIB);

        with_counters(&g, UINT64_C(1) << 40 | (uint64_t)k * 40000, (uint64_t)k * 10000,
                      (uint64_t)k * 100000, (uint64_t)k * 23456);
        g.uptime = uptime;
        return g;
}

static void test_counter_rates(void **state)
{
        struct guest_table *t = *state;
        struct window_stats s;

        for (unsigned k = 1; k <= 12; k++) {
                struct pve_guest g = counting(k, 1000 + k);

                poll_complete(t, k, &g, 1);
                s = stats_at(t, 100, at(k));
                /* The first sample is only the baseline. */
                assert_int_equal(s.rate_samples, k <= EXPECTED ? k - 1 : EXPECTED);
                if (k == 1) {
                        assert_double_exact(s.net_mean_kbps, 0.0);
                        continue;
                }
                /* The 16-bit float is good to 0.05 %. */
                assert_double_rel(s.net_mean_kbps, KBIT_S(500000), 0.0005);
                assert_double_rel(s.disk_mean_kbps, KBIT_S(1234560), 0.0005);
                assert_double_rel(s.net_mean_kbps, 4000.0, 0.0005);
                assert_double_rel(s.disk_mean_kbps, 9876.48, 0.0005);
        }
}

static void test_counter_rate_irregular_interval(void **state)
{
        struct guest_table *t = *state;
        struct pve_guest g = guest(100, "pve1", 0.01, MIB);
        struct window_stats s;

        with_counters(&g, 0, 0, 0, 0);
        guest_table_begin_poll(t, T0);
        assert_int_equal(guest_table_update(t, &g, NULL), 0);
        guest_table_end_poll(t, NULL, NULL);
        /* 250 ms later: 1 MB in, 0.5 MB out -> 6 MB/s = 48000 kbit/s; disk 10 B
         * -> 40 B/s = 0.32 kbit/s */
        with_counters(&g, 1000000, 500000, 4, 6);
        guest_table_begin_poll(t, T0 + 250 * USEC_PER_MSEC);
        assert_int_equal(guest_table_update(t, &g, NULL), 0);
        guest_table_end_poll(t, NULL, NULL);
        window_stats(t, guest_table_find(t, 100), T0 + 250 * USEC_PER_MSEC, 5.0, &s);
        assert_int_equal(s.rate_samples, 1);
        assert_double_rel(s.net_mean_kbps, 48000.0, 0.0005);
        assert_double_exact(s.disk_mean_kbps, 0.32); /* small rates are exact */
}

static void test_restart_uptime_down(void **state)
{
        struct guest_table *t = *state;
        struct window_stats s;

        for (unsigned k = 1; k <= 5; k++) {
                struct pve_guest g = counting(k, 5000 + k);

                poll_complete(t, k, &g, 1);
        }
        s = stats_at(t, 100, at(5));
        assert_int_equal(s.rate_samples, 4);

        /* Restarted between poll 5 and 6: uptime 3 s, counters from zero. */
        {
                struct pve_guest g = guest(100, "pve1", 0.01, 256 * MIB);

                with_counters(&g, 4000, 1000, 10000, 2345);
                g.uptime = 3;
                poll_complete(t, 6, &g, 1);
                s = stats_at(t, 100, at(6));
                assert_int_equal(s.samples, 6); /* the sample counts... */
                assert_int_equal(s.rate_samples, 4); /* ...but carries no rate */
                /* nothing negative or huge */
                assert_double_rel(s.net_mean_kbps, KBIT_S(500000), 0.0005);
                assert_double_rel(s.disk_mean_kbps, KBIT_S(1234560), 0.0005);

                /* The next poll measures from the new baseline. */
                with_counters(&g, 4000 + 40000, 1000 + 10000, 10000 + 100000, 2345 + 23456);
                g.uptime = 3;
                poll_complete(t, 7, &g, 1);
                s = stats_at(t, 100, at(7));
                assert_int_equal(s.rate_samples, 5);
                assert_double_rel(s.net_mean_kbps, KBIT_S(500000), 0.0005);
                assert_double_rel(s.disk_mean_kbps, KBIT_S(1234560), 0.0005);
        }
}

static void test_counters_backwards(void **state)
{
        struct guest_table *t = *state;
        struct window_stats s;
        struct pve_guest g;

        for (unsigned k = 1; k <= 4; k++) {
                g = counting(k, 1000 + k);
                poll_complete(t, k, &g, 1);
        }
        /* Uptime still grows but the network counter went backwards (a
         * reset counter): no rate for this sample, rather than a wrapped
         * 2^64-sized one. */
        g = counting(5, 1005);
        g.netin = 0;
        poll_complete(t, 5, &g, 1);
        s = stats_at(t, 100, at(5));
        assert_int_equal(s.samples, 5);
        assert_int_equal(s.rate_samples, 3);
        assert_double_rel(s.net_mean_kbps, KBIT_S(500000), 0.0005);
        /* Disk counters going backwards alone drop the sample's rates too. */
        g = counting(6, 1006);
        g.netin = 40000; /* net total 100000 after poll 5's 50000: 500000 B/s */
        g.diskread = 0;
        poll_complete(t, 6, &g, 1);
        s = stats_at(t, 100, at(6));
        assert_int_equal(s.rate_samples, 3);
        assert_true(s.net_mean_kbps < 1e5 && s.disk_mean_kbps < 1e5);
}

static void test_rates_need_both_counters(void **state)
{
        struct guest_table *t = *state;
        struct window_stats s;

        for (unsigned k = 1; k <= 4; k++) {
                struct pve_guest g = counting(k, 1000 + k);

                if (k >= 3)
                        g.present &= ~(unsigned)PVE_HAS_DISKIO; /* disk stats vanish */
                poll_complete(t, k, &g, 1);
        }
        s = stats_at(t, 100, at(4));
        assert_int_equal(s.samples, 4);
        assert_int_equal(s.rate_samples, 1);
}

/* --- gaps, removal, migration, unknown status --- */

static void test_unknown_status_leaves_gaps(void **state)
{
        struct guest_table *t = *state;
        struct window_stats s;
        struct guest *gp;

        for (unsigned k = 1; k <= EXPECTED; k++) {
                struct pve_guest gs[2] = { guest(100, "pve1", 0.01, MIB),
                                           guest(101, "pve1", 0.02, 2 * MIB) };

                if (k == 4 || k == 5) {
                        /* pmxcfs has no fresh stats for it: "unknown", no numbers. */
                        snprintf(gs[1].status, sizeof(gs[1].status), "unknown");
                        gs[1].present = 0;
                }
                poll_complete(t, k, gs, 2);
                gp = guest_table_find(t, 101);
                assert_non_null(gp);
                assert_int_equal(!!(gp->flags & GUEST_HAS_DATA), !(k == 4 || k == 5));
                assert_string_equal(gp->status, k == 4 || k == 5 ? "unknown" : "running");
        }
        s = stats_at(t, 100, at(EXPECTED));
        assert_int_equal(s.samples, 10);
        s = stats_at(t, 101, at(EXPECTED));
        assert_int_equal(s.samples, 8);
        assert_double_exact(s.coverage, 0.8);
        assert_double_near(s.cpu_mean_percent, 2.0, 1e-9);
        assert_double_near(s.mem_mean_mb, 2.0, 1e-9);
}

static void test_unknown_status_records_nothing(void **state)
{
        struct guest_table *t = *state;
        struct pve_guest g = guest(100, "pve1", 0.5, 512 * MIB);
        struct window_stats s;
        struct guest *gp = NULL;

        poll_complete(t, 1, &g, 1);
        /* "unknown" with numbers anyway (they would be old): no sample. */
        snprintf(g.status, sizeof(g.status), "unknown");
        guest_table_begin_poll(t, at(2));
        assert_int_equal(guest_table_update(t, &g, &gp), 0);
        guest_table_end_poll(t, NULL, NULL);
        assert_ptr_equal(gp, guest_table_find(t, 100));
        assert_false(gp->flags & GUEST_HAS_DATA);
        s = stats_at(t, 100, at(2));
        assert_int_equal(s.samples, 1);
        assert_int_equal(s.newest_age_usec, STEP_USEC);
        /* Partial statistics (no uptime) record nothing either. */
        snprintf(g.status, sizeof(g.status), "running");
        g.present = PVE_HAS_CPU | PVE_HAS_MEM;
        poll_complete(t, 3, &g, 1);
        s = stats_at(t, 100, at(3));
        assert_int_equal(s.samples, 1);
        assert_false(guest_table_find(t, 100)->flags & GUEST_HAS_DATA);
        assert_int_equal(guest_table_find(t, 100)->uptime_s, 0);
}

static void test_missing_from_failed_polls(void **state)
{
        struct guest_table *t = *state;
        struct window_stats s;

        /* Polls 4-6 failed half-way: guest 100 was delivered, 101 was not;
         * no end_poll, so 101 stays in the table with a gap, and the samples
         * 100 got from the failed answers do not count either. */
        for (unsigned k = 1; k <= EXPECTED; k++) {
                struct pve_guest gs[2] = { guest(100, "pve1", 0.01, MIB),
                                           guest(101, "pve1", 0.02, MIB) };

                guest_table_begin_poll(t, at(k));
                assert_int_equal(guest_table_update(t, &gs[0], NULL), 0);
                if (k >= 4 && k <= 6)
                        continue;
                assert_int_equal(guest_table_update(t, &gs[1], NULL), 0);
                guest_table_end_poll(t, NULL, NULL);
        }
        assert_int_equal(guest_table_count(t), 2);
        s = stats_at(t, 100, at(EXPECTED));
        assert_int_equal(s.samples, 7);
        s = stats_at(t, 101, at(EXPECTED));
        assert_int_equal(s.samples, 7);
        assert_double_exact(s.coverage, 0.7);
}

static void test_outage_does_not_recycle_old_samples(void **state)
{
        struct guest_table *t = *state;
        struct window_stats s;

        for (unsigned k = 1; k <= 11; k++) {
                struct pve_guest g = guest(100, "pve1", 0.01, MIB);

                poll_complete(t, k, &g, 1);
        }
        /* Polls 12-14 fail (API down): begin, no answer, no end. */
        for (unsigned k = 12; k <= 14; k++)
                guest_table_begin_poll(t, at(k));
        /* Polls 12-14 reuse the ring slots of polls 1-3, whose presence bits
         * are still set; those old samples must not count at the new poll
         * times. Only polls 5-11 are inside the window, the newest 300 ms
         * old. (Regression: this counted 10 samples of age 0, so in an
         * outage a guest kept full coverage and its last verdict for ever;
         * fixed in b487044 with a poll number per slot.) */
        s = stats_at(t, 100, at(14));
        assert_int_equal(s.samples, 7);
        assert_int_equal(s.newest_age_usec, 300 * USEC_PER_MSEC);
        assert_double_exact(s.coverage, 0.7);

        /* A whole window of failed polls: nothing is left. */
        for (unsigned k = 15; k <= 30; k++)
                guest_table_begin_poll(t, at(k));
        s = stats_at(t, 100, at(30));
        assert_int_equal(s.samples, 0);
        assert_true(s.newest_age_usec == UINT64_MAX);
}

static void test_recovery_after_outage_counts_only_new_samples(void **state)
{
        struct guest_table *t = *state;
        struct pve_guest g = guest(100, "pve1", 0.01, MIB);
        struct window_stats s;

        for (unsigned k = 1; k <= 11; k++)
                poll_complete(t, k, &g, 1);
        for (unsigned k = 12; k <= 14; k++)
                guest_table_begin_poll(t, at(k));
        poll_complete(t, 15, &g, 1);
        /* Inside the 10-poll window (6-15): polls 6-11, the new 15; the
         * failed polls 12-14 are gaps, not samples. */
        s = stats_at(t, 100, at(15));
        assert_int_equal(s.samples, 7);
        assert_int_equal(s.newest_age_usec, 0);
}

struct removed_log {
        uint32_t vmids[8];
        char names[8][32];
        unsigned n;
};

static void on_removed(void *userdata, const struct guest *g)
{
        struct removed_log *log = userdata;

        assert_true(log->n < ELEMENTSOF(log->vmids));
        log->vmids[log->n] = g->vmid;
        /* The guest's strings are still valid in the callback. */
        snprintf(log->names[log->n], sizeof(log->names[0]), "%s", g->name);
        log->n++;
}

static void test_end_poll_removes_absent(void **state)
{
        struct guest_table *t = *state;
        struct pve_guest gs[4] = { guest(101, "pve1", 0.01, MIB), guest(102, "pve1", 0.01, MIB),
                                   guest(103, "pve2", 0.01, MIB), guest(104, "pve2", 0.01, MIB) };
        struct removed_log log = { .n = 0 };
        struct pve_guest left[2];
        uint32_t seen = 0;

        poll_complete(t, 1, gs, 4);
        assert_int_equal(guest_table_count(t), 4);

        left[0] = gs[0];
        left[1] = gs[2];
        guest_table_begin_poll(t, at(2));
        for (size_t i = 0; i < 2; i++)
                assert_int_equal(guest_table_update(t, &left[i], NULL), 0);
        guest_table_end_poll(t, on_removed, &log);

        assert_int_equal(log.n, 2);
        assert_true((log.vmids[0] == 102 && log.vmids[1] == 104) ||
                    (log.vmids[0] == 104 && log.vmids[1] == 102));
        assert_string_equal(log.names[0], log.vmids[0] == 102 ? "vm-102" : "vm-104");
        assert_int_equal(guest_table_count(t), 2);
        assert_null(guest_table_find(t, 102));
        assert_null(guest_table_find(t, 104));
        assert_non_null(guest_table_find(t, 101));
        assert_non_null(guest_table_find(t, 103));
        for (size_t i = 0; i < guest_table_count(t); i++)
                seen |= 1u << (guest_table_at(t, i)->vmid - 100);
        assert_int_equal(seen, (1u << 1) | (1u << 3));
        assert_null(guest_table_at(t, 2));
        /* A NULL callback is allowed. */
        guest_table_begin_poll(t, at(3));
        guest_table_end_poll(t, NULL, NULL);
        assert_int_equal(guest_table_count(t), 0);
}

static void test_migration_clears_window(void **state)
{
        struct guest_table *t = *state;
        struct window_stats s;
        struct pve_guest g;

        for (unsigned k = 1; k <= 5; k++) {
                g = counting(k, 1000 + k);
                poll_complete(t, k, &g, 1);
        }
        s = stats_at(t, 100, at(5));
        assert_int_equal(s.samples, 5);
        assert_int_equal(s.rate_samples, 4);

        g = counting(6, 1006);
        snprintf(g.node, sizeof(g.node), "pve2");
        poll_complete(t, 6, &g, 1);
        s = stats_at(t, 100, at(6));
        assert_int_equal(s.samples, 1);
        assert_int_equal(s.rate_samples, 0); /* the new node's counters are a new baseline */
        assert_string_equal(guest_table_find(t, 100)->node, "pve2");

        g = counting(7, 1007);
        snprintf(g.node, sizeof(g.node), "pve2");
        poll_complete(t, 7, &g, 1);
        s = stats_at(t, 100, at(7));
        assert_int_equal(s.samples, 2);
        assert_int_equal(s.rate_samples, 1);

        /* A vmid reused by a container: a different guest, a fresh window. */
        g = counting(8, 1008);
        snprintf(g.node, sizeof(g.node), "pve2");
        g.type = GUEST_LXC;
        poll_complete(t, 8, &g, 1);
        s = stats_at(t, 100, at(8));
        assert_int_equal(s.samples, 1);
        assert_int_equal(guest_table_find(t, 100)->type, GUEST_LXC);
}

static void test_guest_fields(void **state)
{
        struct guest_table *t = *state;
        struct pve_guest a = guest(100, "pve1", 0.01, MIB), b = guest(101, "pve1", 0.01, MIB);
        struct guest *ga = NULL, *gb = NULL;

        snprintf(a.tags, sizeof(a.tags), "prod;proxreap-keep");
        snprintf(a.pool, sizeof(a.pool), "infra");
        snprintf(a.lock, sizeof(a.lock), "backup");
        snprintf(a.hastate, sizeof(a.hastate), "started");
        a.template = true;
        a.maxcpu = 4;
        a.uptime = 4242;
        guest_table_begin_poll(t, at(1));
        assert_int_equal(guest_table_update(t, &a, &ga), 0);
        assert_int_equal(guest_table_update(t, &b, &gb), 0);
        guest_table_end_poll(t, NULL, NULL);

        assert_int_equal(ga->vmid, 100);
        assert_int_equal(ga->type, GUEST_QEMU);
        assert_string_equal(ga->name, "vm-100");
        assert_string_equal(ga->node, "pve1");
        assert_string_equal(ga->status, "running");
        assert_string_equal(ga->tags, "prod;proxreap-keep");
        assert_string_equal(ga->pool, "infra");
        assert_string_equal(ga->lock, "backup");
        assert_string_equal(ga->hastate, "started");
        assert_true(ga->flags & GUEST_TEMPLATE);
        assert_true(ga->flags & GUEST_HAS_DATA);
        assert_false(gb->flags & GUEST_TEMPLATE);
        assert_double_exact(ga->maxcpu, 4.0);
        assert_int_equal(ga->maxmem, 4096 * MIB);
        assert_int_equal(ga->uptime_s, 4242);
        assert_int_equal(ga->last_seq, 1);
        /* Interned: equal strings of different guests are one copy. */
        assert_ptr_equal(ga->node, gb->node);
        assert_ptr_equal(ga->status, gb->status);
        assert_string_equal(gb->lock, "");

        /* Changed fields follow the next poll. */
        a.template = false;
        snprintf(a.lock, sizeof(a.lock), "%s", "");
        snprintf(a.name, sizeof(a.name), "renamed");
        poll_complete(t, 2, &a, 1);
        ga = guest_table_find(t, 100);
        assert_false(ga->flags & GUEST_TEMPLATE);
        assert_string_equal(ga->lock, "");
        assert_string_equal(ga->name, "renamed");
        assert_null(guest_table_find(t, 101));
        assert_null(guest_table_find(t, 99));
}

static void test_update_twice_in_one_poll(void **state)
{
        struct guest_table *t = *state;
        struct window_stats s;
        struct pve_guest g;

        for (unsigned k = 1; k <= 3; k++) {
                g = counting(k, 1000 + k);
                poll_complete(t, k, &g, 1);
        }
        /* A GET retried after part of the body had streamed in delivers
         * the same guest twice in one poll (the decoder is reset by
         * http_sink.begin, the table is not). */
        g = counting(4, 1004);
        guest_table_begin_poll(t, at(4));
        assert_int_equal(guest_table_update(t, &g, NULL), 0);
        assert_int_equal(guest_table_update(t, &g, NULL), 0);
        guest_table_end_poll(t, NULL, NULL);
        s = stats_at(t, 100, at(4));
        assert_int_equal(s.samples, 4);
        /* Regression: the second update measures its counters against the first
         * one of the same poll (dt = 0) and stores RATE_UNKNOWN, so the
         * sample loses its rate: rate_samples is 2, not 3.
         * src/window.c:416-432 (counter_rate/record_rates): keep the previous
         * baseline when counter_usec == now. */
        assert_int_equal(s.rate_samples, 3);
}

/* --- churn: the open-addressing index and the string intern table
 * survive many additions and removals --- */

static void test_churn(void **state)
{
        enum { N = 600, ROUNDS = 60 };
        struct guest_table *t = *state;
        static bool present[N];
        static struct pve_guest gs[N];
        uint32_t rng = 12345;
        size_t n_present = 0;

        for (unsigned i = 0; i < N; i++) {
                gs[i] = guest(100 + i * 37, i % 3 ? "pve1" : "pve2", 0.01, MIB);
                snprintf(gs[i].name, sizeof(gs[i].name), "guest-%u", i);
                snprintf(gs[i].tags, sizeof(gs[i].tags), "t%u", i % 50);
                present[i] = false;
        }
        for (unsigned round = 1; round <= ROUNDS; round++) {
                guest_table_begin_poll(t, T0 + round * 10 * USEC_PER_SEC);
                n_present = 0;
                for (unsigned i = 0; i < N; i++) {
                        rng = rng * 1103515245u + 12345u;
                        present[i] = (rng >> 16) % 3 != 0;
                        if (!present[i])
                                continue;
                        n_present++;
                        assert_int_equal(guest_table_update(t, &gs[i], NULL), 0);
                }
                guest_table_end_poll(t, NULL, NULL);
                assert_int_equal(guest_table_count(t), n_present);
                for (unsigned i = 0; i < N; i++) {
                        const struct guest *g = guest_table_find(t, gs[i].vmid);

                        if (!present[i]) {
                                assert_null(g);
                                continue;
                        }
                        assert_non_null(g);
                        assert_int_equal(g->vmid, gs[i].vmid);
                        assert_string_equal(g->name, gs[i].name);
                        assert_string_equal(g->tags, gs[i].tags);
                        assert_string_equal(g->node, gs[i].node);
                }
        }
}

/* --- the 16-bit rate float --- */

static void test_rate_small_values_exact(void **state)
{
        (void)state;
        for (uint64_t v = 0; v < 4096; v++) {
                uint16_t c = rate_encode(v);

                if (rate_decode(c) != v)
                        fail_msg("rate %llu -> 0x%04x -> %llu", (unsigned long long)v, c,
                                 (unsigned long long)rate_decode(c));
        }
        assert_int_equal(rate_encode(0), 0);
        assert_int_equal(rate_decode(0), 0);
        assert_int_equal(rate_encode(2047), 2047);
        assert_int_equal(rate_decode(rate_encode(2048)), 2048);
}

static void check_rate(uint64_t v)
{
        uint16_t c = rate_encode(v);
        uint64_t back = rate_decode(c);
        double err = v ? fabs((double)back - (double)v) / (double)v : (double)back;

        if (c == RATE_UNKNOWN)
                fail_msg("rate_encode(%llu) gave RATE_UNKNOWN", (unsigned long long)v);
        if (err >= 0.0005)
                fail_msg("rate %llu -> 0x%04x -> %llu: error %.6f %%", (unsigned long long)v, c,
                         (unsigned long long)back, err * 100);
}

static void test_rate_round_trip(void **state)
{
        static const uint64_t values[] = {
                0,        1,          2047,          2048,           2049,
                4095,     4096,       4097,          8191,           8193,
                65535,    1000000,    1000001,       999999,         123456789,
                UINT64_C(1000000000), UINT64_C(1000000000000), UINT64_C(2000000000000),
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(values); i++)
                check_rate(values[i]);
        for (unsigned s = 11; s <= 40; s++) {
                check_rate((UINT64_C(1) << s) - 1);
                check_rate(UINT64_C(1) << s);
                check_rate((UINT64_C(1) << s) + 1);
        }
        /* Geometric sweep up to 1e12 B/s (1 TB/s). */
        for (double v = 1.0; v <= 1e12; v *= 1.0007)
                check_rate((uint64_t)v);
}

static void test_rate_monotonic_and_saturating(void **state)
{
        uint16_t prev = 0, max_code;
        uint64_t max_value;

        (void)state;
        for (double v = 1.0; v < 1e19; v *= 1.001) {
                uint16_t c = rate_encode((uint64_t)v);

                assert_true(c >= prev);
                assert_true(c != RATE_UNKNOWN);
                prev = c;
        }
        /* Every code below the saturation value decodes to a larger value
         * than the one before, and encodes back to itself. */
        max_code = rate_encode(UINT64_MAX);
        for (uint32_t c = 1; c <= max_code; c++) {
                assert_true(rate_decode((uint16_t)c) > rate_decode((uint16_t)(c - 1)));
                assert_int_equal(rate_encode(rate_decode((uint16_t)c)), c);
        }
        /* Saturation: huge values give the largest code, never RATE_UNKNOWN. */
        max_value = rate_decode(max_code);
        assert_true(max_code != RATE_UNKNOWN);
        assert_true(max_value >= UINT64_C(2000000000000));
        assert_int_equal(rate_encode(UINT64_MAX - 1), max_code);
        assert_int_equal(rate_encode(UINT64_C(1) << 63), max_code);
        assert_int_equal(rate_encode(max_value * 4), max_code);
        assert_int_equal(rate_encode(max_value), max_code);
        assert_true(rate_encode(max_value / 2) < max_code);
}

/* --- memory per guest --- */

/* A node that stopped updating: the same entry again and again, uptime
 * and counters included. Once nothing moved for longer than stale_after,
 * its samples are missing (the guest frozen), the copies taken since it
 * last moved too; once it moves again, its window starts over. Moving
 * uptime alone, or counters alone, is alive. */
static void test_frozen_entries_count_as_missing(void **state)
{
        struct guest_table *t = *state;
        struct pve_guest g = guest(100, "pve1", 0.01, 200 * MIB);
        const struct guest *gg;
        struct window_stats s;

        guest_table_set_stale_after(t, 250 * USEC_PER_MSEC);
        with_counters(&g, 1000, 1000, 5000, 5000);
        for (unsigned k = 1; k <= 8; k++)
                poll_complete(t, k, &g, 1); /* frozen from the start: copies */
        gg = guest_table_find(t, 100);
        assert_true(gg->flags & GUEST_FROZEN);
        /* Only poll 1 moved (it was the first); 2-8 were copies of it. */
        s = stats_at(t, 100, at(8));
        assert_int_equal(s.samples, 1);
        assert_true(s.newest_age_usec == 7 * STEP_USEC);
        /* Uptime moves (pvestatd is back): alive, its window starts over. */
        g.uptime += 10;
        poll_complete(t, 9, &g, 1);
        assert_false(guest_table_find(t, 100)->flags & GUEST_FROZEN);
        assert_int_equal(stats_at(t, 100, at(9)).samples, 1);
        /* Uptime stuck (a coarse clock) but counters move: alive. */
        for (unsigned k = 10; k <= 14; k++) {
                g.netin += 100;
                poll_complete(t, k, &g, 1);
        }
        assert_false(guest_table_find(t, 100)->flags & GUEST_FROZEN);
        assert_int_equal(stats_at(t, 100, at(14)).samples, 6); /* 9-14 */
        /* Frozen again; then stale_after raised (a reload): no longer. */
        for (unsigned k = 15; k <= 20; k++)
                poll_complete(t, k, &g, 1);
        assert_true(guest_table_find(t, 100)->flags & GUEST_FROZEN);
        guest_table_set_stale_after(t, 10 * USEC_PER_SEC);
        poll_complete(t, 21, &g, 1);
        assert_false(guest_table_find(t, 100)->flags & GUEST_FROZEN);
        /* stale_after 0: never frozen. */
        guest_table_set_stale_after(t, 0);
        for (unsigned k = 22; k <= 30; k++)
                poll_complete(t, k, &g, 1);
        assert_false(guest_table_find(t, 100)->flags & GUEST_FROZEN);
}

static void test_memory_per_guest(void **state)
{
        enum { N = 10000 };
        static const char *const nodes[] = { "pve1", "pve2", "pve3", "pve4", "pve5" };
        static const char *const tags[] = { "", "prod", "dev;web", "proxreap-keep" };
        struct guest_table *t = *state; /* the default window: 60 samples */
        size_t mem, empty;

        empty = guest_table_memory(t);
        assert_true(empty > 0);
        for (unsigned k = 1; k <= 3; k++) {
                guest_table_begin_poll(t, T0 + k * 10 * USEC_PER_SEC);
                for (unsigned i = 0; i < N; i++) {
                        struct pve_guest g = guest(10000 + i, nodes[i % ELEMENTSOF(nodes)], 0.01,
                                                   MIB);

                        snprintf(g.name, sizeof(g.name), "vm-%u", 10000 + i);
                        snprintf(g.tags, sizeof(g.tags), "%s", tags[i % ELEMENTSOF(tags)]);
                        with_counters(&g, k * 1000, k * 1000, k * 1000, k * 1000);
                        assert_int_equal(guest_table_update(t, &g, NULL), 0);
                }
                guest_table_end_poll(t, NULL, NULL);
        }
        assert_int_equal(guest_table_count(t), N);
        mem = guest_table_memory(t);
        print_message("guest table: %zu bytes for %d guests, %.1f bytes per guest\n", mem, N,
                      (double)mem / N);
        assert_true(mem > empty + (size_t)N * sizeof(struct guest));
        if (mem / N >= 1024)
                fail_msg("%zu bytes per guest, expected < 1024", mem / N);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
#define T60(f) cmocka_unit_test_setup_teardown(f, setup_60, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_coverage_grows_and_means),
                T(test_cpu_and_mem_units),
                T(test_cpu_below_exact),
                T(test_stats_follow_poll_progress),
                T(test_oldest_sample_slides_out),
                T(test_counter_rates),
                T(test_counter_rate_irregular_interval),
                T(test_restart_uptime_down),
                T(test_counters_backwards),
                T(test_rates_need_both_counters),
                T(test_unknown_status_leaves_gaps),
                T(test_unknown_status_records_nothing),
                T(test_missing_from_failed_polls),
                T(test_outage_does_not_recycle_old_samples),
                T(test_recovery_after_outage_counts_only_new_samples),
                T(test_end_poll_removes_absent),
                T(test_migration_clears_window),
                T(test_guest_fields),
                T(test_update_twice_in_one_poll),
                T60(test_churn),
                cmocka_unit_test(test_rate_small_values_exact),
                cmocka_unit_test(test_rate_round_trip),
                cmocka_unit_test(test_rate_monotonic_and_saturating),
                T(test_frozen_entries_count_as_missing),
                T60(test_memory_per_guest),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
