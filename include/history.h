/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * history: a guest judged by the idle rules over a long horizon, from
 * Proxmox VE's own RRD (rrddata): the reaper's history veto, mark mode's
 * and `proxreap plan --history`'s one answer.
 */
#ifndef PROXREAP_HISTORY_H
#define PROXREAP_HISTORY_H

#include <stdint.h>

#include "config.h"
#include "policy.h"
#include "pve.h"

/* Each idle rule's signal over the horizon, by reap.history_statistic
 * over the RRD's row averages (the highest, their mean, or a percentile),
 * and how many of the horizon's rows carried them. */
struct history_peaks {
        double cpu, mem, net, disk; /* %, MiB, kbit/s (in + out), kbit/s (read + write) */
        unsigned rows, with_data;
        int64_t gap_s; /* the newest past no row covers (0: none) */
        const char *timeframe; /* the RRD's read: hour, day, week, month, year */
        char horizon[16]; /* "8d" */
        char statistic[8]; /* "max", "mean", "p95" */
};

#define HISTORY_MAX_REASONS 6

struct history_verdict {
        /* VERDICT_IDLE: every rule holds; VERDICT_ACTIVE: one does not;
         * VERDICT_INSUFFICIENT: no history, or too little of it. */
        enum verdict_kind kind;
        unsigned n_reasons;
        char reasons[HISTORY_MAX_REASONS][160]; /* the failing or thin ones first */
};

/* The finest RRD timeframe that may hold horizon_s seconds (on Proxmox VE
 * 8 or 9: history_read() goes on to a coarser one when it does not). */
const char *history_timeframe(uint64_t horizon_s);
/* reap.history_statistic as text: "max", "mean" or "p95". */
void history_statistic_name(int statistic, char *buf, size_t size);
/* Reads the guest's rrddata (AVERAGE) over the horizon ending at now_s,
 * its newest past from finer timeframes, and each rule's statistic
 * (c->history_statistic). Errors as pve_api. */
int history_read(struct pve *p, const struct config *c, enum guest_type t, const char *node,
                 uint32_t vmid, uint64_t horizon_s, int64_t now_s, struct history_peaks *ret);
/* The statistic (HISTORY_MAX, HISTORY_MEAN or a percentile 1..99) of n
 * values; sorts v. */
double history_statistic(double *v, size_t n, int statistic);
/* The horizon the reaper judges a guest over: reap.history, and in reap
 * mode at least reap.grace (the evidence over the grace period). 0: off. */
uint64_t history_horizon_usec(const struct config *c);
/* The history veto of a guest over history_horizon_usec(c), now: 0 idle
 * by it; 1 refused, *kind (when not NULL) its verdict and why the reason ("busy in the
 * last 8d by its history (...)", or too little history); < 0 the read
 * failed (errors as pve_api). The reaper's, mark mode's and plan's. */
int history_veto(struct pve *p, const struct config *c, enum guest_type t, const char *node,
                 uint32_t vmid, int64_t now_s, enum verdict_kind *kind, char *why, size_t size);
/* The verdict of the idle rules of c (cpu, mem; net and disk where set)
 * and of observe.min_coverage on the peaks. */
void history_decide(const struct config *c, const struct history_peaks *k,
                    struct history_verdict *ret);

#endif
