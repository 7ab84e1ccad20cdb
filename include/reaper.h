/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * reaper: modes mark and reap. After each poll it selects idle guests
 * (limits, circuit breaker, cooldown, retry delay, grace with marks), and
 * drives each selected guest through the saga
 *
 *     selected -> shutdown -> snapshot -> archive -> verify -> destroy -> reaped
 *
 * one step at a time: every step is journaled (fdatasync) before the call
 * it announces, tasks are followed by UPID with backoff, and the event loop
 * never waits for a task. What to do next always comes from the journal
 * (ops.h), so crash recovery is simply resuming: an answer that never
 * arrived is looked up on the server before anything is sent again, and a
 * destroy is never sent twice nor without a verified archive on record.
 *
 * A journal that cannot be written stops all destructive work at once.
 */
#ifndef PROXREAP_REAPER_H
#define PROXREAP_REAPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "notify.h"
#include "observe.h"
#include "ops.h"

struct reaper;

/* Opens the journal for writing and folds it. -EBADMSG: damaged journal
 * (err says where and what to do). */
int reaper_new(const struct config *c, struct reaper **ret, char *err, size_t errsz);
struct reaper *reaper_free(struct reaper *r);
void reaper_set_config(struct reaper *r, const struct config *c);
/* Where mark, reap and abort events go (NULL: nowhere). Not owned. */
void reaper_set_notifier(struct reaper *r, struct notifier *n);

/* How many reaps the journal holds under way (read-only; 0 when it cannot
 * be read): a daemon started in observe or mark mode finishes them. */
unsigned reaper_unfinished(const char *journal_file);

/* After a poll: pick up records others appended (a CLI restore), then
 * mark, unmark and select. Does nothing in observe mode. */
void reaper_cycle(struct reaper *r, struct observer *o, uint64_t now_usec);

/* Runs the due step of every op in flight. Returns when the next step is
 * due (monotonic), UINT64_MAX when nothing is in flight. */
uint64_t reaper_step(struct reaper *r, struct pve *p, uint64_t now_usec);

/* What an earlier run carries over: from its status document
 * (reaper_status_json()), the circuit breaker's idle shares of the last
 * hour ("breaker"."shares"), so that a jump across a restart is one
 * (what does not fit is ignored); and from kept.json beside the journal,
 * the guests an operator kept by removing our tag, so they stay kept
 * across restarts in any mode and reboots. now: monotonic. */
void reaper_resume(struct reaper *r, json_t *status, uint64_t now_usec);

/* What it is doing and why not more, for the status file: the breaker,
 * the journal, reaps under way, marked guests and their grace, holds and
 * their ends, the limits. now: monotonic. */
json_t *reaper_status_json(const struct reaper *r, uint64_t now_usec);

/* One line for STATUS= and the log. */
void reaper_describe(const struct reaper *r, char *buf, size_t size);
/* 0, or the journal's failure: destructive work has stopped. */
int reaper_journal_failed(const struct reaper *r);
const struct ops *reaper_ops(const struct reaper *r);

#endif
