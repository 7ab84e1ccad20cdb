/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * policy: is this guest idle? A pure function of the guest's facts, its
 * window statistics and the configuration. No I/O, no clock, no globals:
 * the same input always gives the same verdict, so every decision can be
 * explained and tested.
 *
 * Order: exclusions first (a template is excluded even without data), then
 * whether the data suffices, then the idle rules. Missing, stale or partial
 * data is never idle.
 */
#ifndef PROXREAP_POLICY_H
#define PROXREAP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "pve.h"
#include "window.h"

enum verdict_kind {
        VERDICT_NONE, /* not judged yet */
        VERDICT_INSUFFICIENT, /* "insufficient-data" */
        VERDICT_EXCLUDED,
        VERDICT_ACTIVE,
        VERDICT_IDLE,
        _VERDICT_MAX,
};

enum reason_code {
        /* excluded */
        REASON_NOT_RUNNING,
        REASON_TEMPLATE,
        REASON_LOCKED,
        REASON_HA,
        REASON_TAG,
        REASON_NOT_INCLUDED,
        REASON_POOL,
        REASON_VMID_RANGE,
        REASON_NODE_SCOPE,
        REASON_TYPE_SCOPE,
        /* excluded by what the guest's configuration says */
        REASON_PROTECTED,
        REASON_UNKEPT,
        REASON_SNAPSHOTS,
        REASON_PENDING,
        /* insufficient data */
        REASON_NO_DATA,
        REASON_STALE,
        REASON_FROZEN,
        REASON_CONF_UNREAD,
        REASON_UPTIME,
        REASON_COVERAGE,
        REASON_NO_RATES,
        /* the idle rules: value against limit */
        REASON_CPU,
        REASON_MEM,
        REASON_CPU_SHARE,
        REASON_NET,
        REASON_DISK,
        /* the thresholds on the numbers of the moment (re-checks) */
        REASON_CPU_NOW,
        REASON_MEM_NOW,
};

struct reason {
        enum reason_code code;
        bool pass; /* idle rules: the rule holds (value below limit) */
        double value, limit;
        const char *text; /* borrowed from the facts or config: a tag, pool, lock, node, status */
        uint32_t a, b; /* vmid range, sample counts */
};

#define VERDICT_MAX_REASONS 12

struct verdict {
        enum verdict_kind kind;
        unsigned n_reasons;
        struct reason reasons[VERDICT_MAX_REASONS];
};

/* What a guest's own configuration says about reaping it (guestconf.h
 * reads it: GET .../config; the poll does not show it). */
struct conf_facts {
        bool protection;
        bool pending; /* pending changes, which an archive leaves out */
        unsigned snapshots; /* its own (proxreap's snapshots not counted) */
        char snapshot_names[128]; /* ", "-joined, cut with "..." */
        /* What a reap would not keep, and why: the first volume no archive
         * holds, or what a restore would lose; "" if nothing. */
        char unkept[256];
        /* It could not be read (the server's words); "" if it was. */
        char unread[200];
};

/* What policy needs to know about a guest right now. */
struct guest_facts {
        uint32_t vmid;
        enum guest_type type;
        const char *node;
        const char *status;
        const char *lock; /* "" or NULL: not locked */
        const char *hastate; /* "" or NULL: not HA-managed */
        const char *pool;
        const char *tags;
        bool template;
        bool has_data; /* the last poll carried statistics for it */
        bool frozen; /* ... copies of an old one (GUEST_FROZEN) */
        uint64_t uptime_s;
        const struct conf_facts *conf; /* NULL: its configuration was not read */
};

void policy_decide(const struct config *c, const struct guest_facts *f,
                   const struct window_stats *s, struct verdict *ret);

/* The guest's numbers right now (GET .../status/current). */
struct live_numbers {
        double cpu_percent;
        double mem_mb;
};

/* The re-check of a selected guest before each step that cannot be
 * undone by starting it again: the same exclusion rules as
 * policy_decide() on facts read live (f->status NULL: the guest is
 * stopped by now, and whether it runs is the saga's business), plus, when
 * live is given, the idle thresholds on its numbers right now. The kind is
 * VERDICT_IDLE when nothing stands in the way, else EXCLUDED or ACTIVE
 * with the reasons. */
void policy_recheck(const struct config *c, const struct guest_facts *f,
                    const struct live_numbers *live, struct verdict *ret);

/* Facts of a table entry. */
void guest_facts_from(const struct guest *g, struct guest_facts *ret);

const char *verdict_to_string(enum verdict_kind k);
/* Short machine-friendly name of a reason ("cpu", "tag", "coverage"). */
const char *reason_code_to_string(enum reason_code c);
/* One line a human reads: "mean cpu 1.20% < 5%", "tag 'proxreap-keep'". */
void reason_format(const struct reason *r, char *buf, size_t size);
/* All reasons of a verdict joined with ", ". */
void verdict_format(const struct verdict *v, char *buf, size_t size);

#endif
