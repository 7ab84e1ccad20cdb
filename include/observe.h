/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * observe: one poll cycle, shared by the daemon and `proxreap plan`.
 * Fetch /cluster/resources, feed the guest table, judge every guest with
 * policy, and log what changed: verdict changes at NOTICE with vmid and
 * numbers, API outages once per change of state (never per poll).
 */
#ifndef PROXREAP_OBSERVE_H
#define PROXREAP_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "policy.h"
#include "pve.h"
#include "window.h"

struct observer;

/* What the last poll said of the API. */
enum api_state {
        API_OK,
        API_UNREACHABLE, /* no answer: connection, TLS, timeout */
        API_AUTH_FAILED, /* 401: the credential was refused */
        API_ERROR, /* another error status, or an answer that cannot be read */
        _API_STATE_MAX,
};
const char *api_state_to_string(enum api_state s);

struct observe_summary {
        size_t tracked;
        size_t count[_VERDICT_MAX];
        uint64_t polls_ok, polls_failed;
        unsigned consecutive_failures;
        bool api_ok; /* the last poll succeeded */
        enum api_state api_state; /* what the last poll said (API_OK before the first) */
        uint64_t last_ok_realtime_usec; /* 0: never */
        uint64_t last_ok_usec; /* monotonic: when the last successful poll completed; 0: never */
        uint64_t last_poll_duration_usec; /* fetch, decode, window update, verdicts */
        /* Whole polls, from their scheduled time until the status and
         * metrics files were written (observer_note_cycle()), so only
         * polls finished before the last write count: */
        uint64_t poll_overruns; /* polls that ran into the next one's time */
        uint64_t max_cycle_usec; /* the longest poll since start */
        uint64_t last_cycle_usec; /* the last poll finished */
        unsigned rejected_entries; /* in the last successful poll */
        char api_error[512]; /* the last failure, "" when none */
};

/* log_changes: log verdict changes (the daemon does, plan does not). The
 * observer keeps its own copy of what it needs from c, except for policy
 * settings it reads from c on every poll: c must outlive it or be replaced
 * with observer_set_config(). */
int observer_new(const struct config *c, bool log_changes, struct observer **ret);
struct observer *observer_free(struct observer *o);

/* Applies a reloaded configuration, with p its API client (NULL: one is
 * made); on success the observer owns p, on failure the caller still does.
 * Observation restarts (the windows are cleared) only if interval or
 * window changed. */
int observer_set_config(struct observer *o, const struct config *c, struct pve *p);

/* Checks that the API answers and accepts the credentials. */
int observer_probe(struct observer *o, struct pve_version *ret);

/* One poll at now_usec (monotonic). Returns < 0 when the API call failed;
 * the verdicts are re-evaluated either way (stale data turns into
 * insufficient-data). */
int observer_poll(struct observer *o, uint64_t now_usec);

/* Records a finished poll that took cycle_usec from its scheduled time
 * until its files were written; returns true when that was not within
 * interval_usec (the next poll was due before it ended). */
bool observer_note_cycle(struct observer *o, uint64_t cycle_usec, uint64_t interval_usec);

const struct observe_summary *observer_summary(const struct observer *o);
const char *observer_error(const struct observer *o);
const struct guest_table *observer_table(const struct observer *o);
const struct config *observer_config(const struct observer *o);
/* The API client (shared with the reaper: one connection). */
struct pve *observer_pve(const struct observer *o);

/* Verdict of one guest at now_usec, with the window statistics. */
void observer_judge(const struct observer *o, const struct guest *g, uint64_t now_usec,
                    struct verdict *ret_verdict, struct window_stats *ret_stats);
/* The same for the guest at position i of the table; after a poll at
 * now_usec the window statistics are those the poll computed (the status
 * file judges every guest right after it: it need not count again). */
void observer_judge_at(const struct observer *o, size_t i, uint64_t now_usec,
                       struct verdict *ret_verdict, struct window_stats *ret_stats);
/* What the configuration of vmid (a guest of type t) said when it was read
 * at read_usec: the reaper and plan read configurations, the poll cannot
 * see them. Policy judges the guest with these facts until they are
 * replaced or forgotten (the guest leaves the cluster). NULL: not read. */
const struct conf_facts *observer_conf(const struct observer *o, uint32_t vmid,
                                      enum guest_type t, uint64_t *ret_read_usec);
int observer_set_conf(struct observer *o, uint32_t vmid, enum guest_type t,
                      const struct conf_facts *f, uint64_t read_usec);
void observer_forget_conf(struct observer *o, uint32_t vmid);
/* Judges the guest at position i again (its configuration was just read),
 * counting and logging a change like a poll does. */
void observer_rejudge(struct observer *o, size_t i, uint64_t now_usec, struct verdict *ret);
/* Reads the configuration of the guest at position i (guestconf_read():
 * two or three calls), keeps its facts and judges it again. Errors as
 * pve_api; the verdict is then left as it was. */
int observer_read_conf(struct observer *o, size_t i, uint64_t now_usec, struct verdict *ret);

/* The reads one poll may make beyond the poll itself: until deadline
 * (monotonic), at least one. */
struct api_budget {
        uint64_t deadline;
        unsigned done, deferred;
};
bool api_budget_take(struct api_budget *b);

/* What the configuration of the guest at i says, read when it looks idle
 * and was never read, or was read over an hour ago, or could not be read
 * (a minute ago): status and mark mode show why an idle guest cannot be
 * reaped. The guest's verdict kind, judged with it. */
enum verdict_kind observer_judge_conf(struct observer *o, size_t i, struct api_budget *b,
                                      uint64_t now);

/* Bytes kept per guest between polls: the table and the statistics. */
size_t observer_state_bytes(const struct observer *o);

#endif
