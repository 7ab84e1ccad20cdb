/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * window: the guest table and each guest's sliding window of samples.
 *
 * Samples are aligned to polls: the table keeps one timestamp per poll in a
 * ring, and each guest keeps, per ring slot, a presence bit and compact
 * numbers (CPU in 1/100 %, memory in KiB, network and disk rates as 16-bit
 * floats). That keeps the default 60-sample window well under 1 KiB of state
 * per guest. Cumulative counters are turned into rates here; a counter that
 * goes backwards or an uptime that shrinks is a restart, and gives no rate
 * for that sample rather than a wild one.
 *
 * No I/O. Times are CLOCK_MONOTONIC microseconds.
 */
#ifndef PROXREAP_WINDOW_H
#define PROXREAP_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pve.h"

struct guest_table;

/* What the table remembers of a guest between polls. Strings are interned
 * and shared; they stay valid until the guest is updated or removed. */
struct guest {
        uint32_t vmid;
        uint8_t type; /* enum guest_type */
        uint8_t flags; /* GUEST_* */
        uint8_t verdict; /* caller's: enum verdict_kind last logged (VERDICT_NONE: none yet) */
        uint8_t reserved;
        uint32_t uptime_s; /* at the last poll */
        float maxcpu;
        uint64_t maxmem;
        uint64_t last_seq; /* last poll the guest appeared in */
        uint64_t counter_usec; /* when net/disk counters were last read */
        uint64_t advance_usec; /* when uptime or a counter last moved (0: never seen) */
        uint64_t net_total, disk_total;
        const char *node, *name, *status, *lock, *hastate, *pool, *tags;
};

enum {
        GUEST_TEMPLATE = 1u << 0,
        GUEST_HAS_DATA = 1u << 1, /* the last poll carried statistics */
        GUEST_HAS_COUNTERS = 1u << 2, /* net_total/disk_total are a valid baseline */
        GUEST_FROZEN = 1u << 3, /* running, but uptime and counters stopped moving */
};

struct window_stats {
        unsigned samples; /* samples inside the window */
        unsigned expected; /* samples a full window holds */
        double coverage; /* samples / expected, at most 1 */
        double cpu_mean_percent;
        double cpu_below_share; /* share of samples with CPU below the threshold */
        double mem_mean_mb;
        unsigned rate_samples; /* samples that carry net/disk rates */
        double net_mean_kbps; /* kilobits (1000 bit) per second, in + out */
        double disk_mean_kbps; /* kilobits per second, read + write */
        uint64_t newest_age_usec; /* age of the newest sample; UINT64_MAX if none */
};

/* expected_samples: how many samples one window holds (window / interval). */
int guest_table_new(unsigned expected_samples, uint64_t window_usec, struct guest_table **ret);
/* A running guest whose uptime and counters have not moved for longer
 * than stale_usec is served from a stale cache (its node stopped
 * updating): its samples count as missing (GUEST_FROZEN). 0: never. */
void guest_table_set_stale_after(struct guest_table *t, uint64_t stale_usec);
struct guest_table *guest_table_free(struct guest_table *t);

/* One poll: begin, update every guest of the answer, end. Only a poll that
 * was ended counts: the samples of a poll whose answer failed half-way are
 * never used. Guests absent from a completed poll have left the cluster:
 * end_poll removes them, calling removed() first (it may be NULL). */
void guest_table_begin_poll(struct guest_table *t, uint64_t now_usec);
int guest_table_update(struct guest_table *t, const struct pve_guest *g, struct guest **ret);
void guest_table_end_poll(struct guest_table *t,
                          void (*removed)(void *userdata, const struct guest *g), void *userdata);

size_t guest_table_count(const struct guest_table *t);
/* Index order is arbitrary but stable between polls that add or remove
 * nothing. */
struct guest *guest_table_at(const struct guest_table *t, size_t i);
struct guest *guest_table_find(const struct guest_table *t, uint32_t vmid);
uint64_t guest_table_polls(const struct guest_table *t);
/* Bytes of heap the table holds (guests, windows, index, strings). */
size_t guest_table_memory(const struct guest_table *t);

void window_stats(const struct guest_table *t, const struct guest *g, uint64_t now_usec,
                  double cpu_threshold_percent, struct window_stats *ret);

/* 16-bit float for rates (exposed for tests): about 0.05 % precision. */
uint16_t rate_encode(uint64_t v);
uint64_t rate_decode(uint16_t c);
#define RATE_UNKNOWN UINT16_MAX

#endif
