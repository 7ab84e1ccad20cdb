/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * history.c - the idle rules over Proxmox VE's RRD (see history.h).
 */
#include "history.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pve_api.h"
#include "util.h"

/* The guest RRD's timeframes, finest first, with the longest span each
 * holds on Proxmox VE 8 or 9 (pve2-vm: 70 rows of 60 s, 30 min, 3 h,
 * 12 h, 7 d; pve-vm-9.0: 60 x 60 s, 1440 x 60 s, 336 x 30 min, 1440 x
 * 30 min, 1440 x 6 h). */
static const struct frame {
        const char *name;
        uint64_t span_s;
} frames[] = {
        { "hour", 4200 }, { "day", 126000 }, { "week", 756000 },
        { "month", 3024000 }, { "year", 42336000 },
};

const char *history_timeframe(uint64_t h)
{
        for (size_t i = 0; i < ELEMENTSOF(frames) - 1; i++)
                if (h <= frames[i].span_s)
                        return frames[i].name;
        return frames[ELEMENTSOF(frames) - 1].name;
}

void history_statistic_name(int statistic, char *buf, size_t size)
{
        if (statistic == HISTORY_MAX || statistic == HISTORY_MEAN)
                snprintf(buf, size, "%s", statistic == HISTORY_MAX ? "max" : "mean");
        else
                snprintf(buf, size, "p%d", statistic);
}

static double row_num(json_t *row, const char *key)
{
        json_t *v = json_object_get(row, key);

        return json_is_number(v) ? json_number_value(v) : -1.0;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return (x > y) - (x < y);
}

double history_statistic(double *v, size_t n, int statistic)
{
        double sum = 0.0;
        size_t rank;

        if (n == 0)
                return 0.0;
        if (statistic == HISTORY_MEAN) {
                for (size_t i = 0; i < n; i++)
                        sum += v[i];
                return sum / (double)n;
        }
        qsort(v, n, sizeof(*v), cmp_double);
        if (statistic == HISTORY_MAX)
                return v[n - 1];
        /* nearest rank: the smallest value with statistic % at or below it */
        rank = (size_t)ceil((double)statistic / 100.0 * (double)n);
        return v[rank > 0 ? rank - 1 : 0];
}

/* Does data reach back to since? Its oldest row's interval must begin
 * at or before it (rows are at the end of their interval). */
static bool reaches(json_t *data, int64_t since)
{
        size_t n = json_array_size(data);
        double t0, t1;

        if (n < 2)
                return false;
        t0 = row_num(json_array_get(data, 0), "time");
        t1 = row_num(json_array_get(data, 1), "time");
        return t0 >= 0 && t1 > t0 && t0 - (t1 - t0) <= (double)since;
}

/* Each signal of the horizon's rows with data, then its statistic. A row
 * counts as data when it carries every signal a configured rule needs (a
 * rate Proxmox could not derive, 'U', is no rate at all, not 0). */
static int summarize(json_t *data, int64_t since, const struct config *c, struct history_peaks *p)
{
        size_t n = json_array_size(data), i;
        double *v = calloc(4 * (n ? n : 1), sizeof(double));
        double *cpu, *mem, *net, *disk;
        json_t *it;

        if (!v)
                return -ENOMEM;
        cpu = v;
        mem = v + n;
        net = v + 2 * n;
        disk = v + 3 * n;
        json_array_foreach(data, i, it) {
                double cp = row_num(it, "cpu"), m = row_num(it, "mem");
                /* bytes per second; a missing one counts -1 (never above a limit) */
                double nt = row_num(it, "netin") + row_num(it, "netout");
                double d = row_num(it, "diskread") + row_num(it, "diskwrite");
                unsigned k = p->with_data;

                if (row_num(it, "time") <= (double)since)
                        continue;
                p->rows++; /* a row of the horizon: running or not */
                if (cp < 0 || m < 0)
                        continue; /* stopped, or not there yet */
                if ((c->net_kbps > 0 && (row_num(it, "netin") < 0 || row_num(it, "netout") < 0)) ||
                    (c->disk_kbps > 0 &&
                     (row_num(it, "diskread") < 0 || row_num(it, "diskwrite") < 0)))
                        continue;
                cpu[k] = cp * 100.0;
                mem[k] = m / 1048576.0;
                net[k] = nt * 8 / 1000;
                disk[k] = d * 8 / 1000;
                p->with_data++;
        }
        p->cpu = history_statistic(cpu, p->with_data, c->history_statistic);
        p->mem = history_statistic(mem, p->with_data, c->history_statistic);
        p->net = history_statistic(net, p->with_data, c->history_statistic);
        p->disk = history_statistic(disk, p->with_data, c->history_statistic);
        free(v);
        return 0;
}

/* The resolution of a timeframe's answer: between its first two rows. */
static double resolution(json_t *data)
{
        double t0 = row_num(json_array_get(data, 0), "time");
        double t1 = row_num(json_array_get(data, 1), "time");

        return json_array_size(data) >= 2 && t0 >= 0 && t1 > t0 ? t1 - t0 : 0;
}

static double newest(json_t *data)
{
        double n = -1;
        json_t *it;
        size_t i;

        json_array_foreach(data, i, it)
                if (row_num(it, "time") > n)
                        n = row_num(it, "time");
        return n;
}

/* The RRD's newest row is the interval that ended at floor(now / its
 * resolution) * its resolution: the last half hour (Proxmox VE 9's month)
 * or three hours (8's week) of a guest's use are in no row of the
 * timeframe that holds the horizon. The finer timeframes cover them,
 * finest first (hour: 60-second rows of the last hour; then day, ...):
 * their rows after the main one's newest go into all (a coarse row that
 * straddles a finer one's start too: counted twice rather than missed).
 * *gap_s: what of it no row covers (the window covers the last
 * HISTORY_SLACK_S seconds). */
#define HISTORY_SLACK_S 120

static int tail(struct pve *p, enum guest_type t, const char *node, uint32_t vmid, size_t main_f,
                int64_t now_s, json_t *all, int64_t *gap_s)
{
        double from = newest(all), to = (double)(now_s - HISTORY_SLACK_S);

        for (size_t f = 0; f < main_f && to > from; f++) {
                json_t *data = NULL, *it;
                double reso, oldest = to;
                size_t i;
                int e = pve_rrddata(p, t, node, vmid, frames[f].name, &data);

                if (e < 0)
                        return e;
                reso = resolution(data);
                json_array_foreach(data, i, it) {
                        double tm = row_num(it, "time");

                        if (reso <= 0 || tm <= from || tm - reso >= to)
                                continue;
                        if (json_array_append(all, it) < 0) {
                                json_decref(data);
                                return -ENOMEM;
                        }
                        if (tm - reso < oldest)
                                oldest = tm - reso;
                }
                json_decref(data);
                /* covered from its oldest row on, if it reached the top */
                if (oldest < to)
                        to = oldest;
        }
        *gap_s = to > from ? (int64_t)(to - from) : 0;
        return 0;
}

int history_read(struct pve *p, const struct config *c, enum guest_type t, const char *node,
                 uint32_t vmid, uint64_t horizon_s, int64_t now_s, struct history_peaks *ret)
{
        int64_t since = now_s - (int64_t)horizon_s;
        const char *tf = history_timeframe(horizon_s);
        json_t *data = NULL;
        size_t f = 0;
        int e;

        *ret = (struct history_peaks){ .timeframe = tf };
        format_duration(horizon_s * USEC_PER_SEC, ret->horizon, sizeof(ret->horizon));
        history_statistic_name(c->history_statistic, ret->statistic, sizeof(ret->statistic));
        while (strcmp(frames[f].name, tf) != 0)
                f++;
        /* The finest timeframe whose rows reach back over the horizon
         * (Proxmox VE 9's week holds 7 days, 8's 8.75). */
        for (;; f++) {
                ret->timeframe = frames[f].name;
                e = pve_rrddata(p, t, node, vmid, ret->timeframe, &data);
                if (e < 0)
                        return e;
                if (f == ELEMENTSOF(frames) - 1 || reaches(data, since))
                        break;
                json_decref(data);
                data = NULL;
        }
        e = tail(p, t, node, vmid, f, now_s, data, &ret->gap_s);
        if (e >= 0)
                e = summarize(data, since, c, ret);
        json_decref(data);
        return e;
}

/* One rule's line: "cpu average up to 1.00% < 5%", "mem p95 800 MiB <
 * 1024 MiB". A failing one goes before the rules that hold (after a line
 * on too little history). */
static void rule(struct history_verdict *v, unsigned *lead, const struct history_peaks *k,
                 const char *what, double value, int decimals, double limit, const char *unit)
{
        bool fails = value >= limit;
        char line[160];

        if (v->n_reasons >= HISTORY_MAX_REASONS)
                return;
        if (strcmp(k->statistic, "max") == 0)
                snprintf(line, sizeof(line), "%s %s %.*f%s %s %g%s", what,
                         strcmp(what, "cpu") == 0 ? "average up to" : "up to", decimals, value,
                         unit, fails ? ">=" : "<", limit, unit);
        else
                snprintf(line, sizeof(line), "%s %s %.*f%s %s %g%s", what, k->statistic, decimals,
                         value, unit, fails ? ">=" : "<", limit, unit);
        if (fails) {
                if (v->kind == VERDICT_IDLE)
                        v->kind = VERDICT_ACTIVE;
                for (unsigned i = v->n_reasons; i > *lead; i--)
                        memcpy(v->reasons[i], v->reasons[i - 1], sizeof(v->reasons[i]));
                memcpy(v->reasons[*lead], line, sizeof(line));
                (*lead)++;
        } else
                memcpy(v->reasons[v->n_reasons], line, sizeof(line));
        v->n_reasons++;
}

void history_decide(const struct config *c, const struct history_peaks *k,
                    struct history_verdict *v)
{
        unsigned lead = 0;

        *v = (struct history_verdict){ .kind = VERDICT_IDLE };
        if (k->with_data == 0) {
                v->kind = VERDICT_INSUFFICIENT;
                snprintf(v->reasons[v->n_reasons++], sizeof(v->reasons[0]),
                         "it has no history for the last %s", k->horizon);
                return;
        }
        if (k->gap_s > 0) {
                v->kind = VERDICT_INSUFFICIENT;
                snprintf(v->reasons[v->n_reasons++], sizeof(v->reasons[0]),
                         "its history does not reach its last %lld minutes (no finer timeframe covers them)",
                         (long long)(k->gap_s + HISTORY_SLACK_S) / 60);
                lead = 1;
        } else if ((double)k->with_data < c->min_coverage * (double)k->rows) {
                v->kind = VERDICT_INSUFFICIENT;
                snprintf(v->reasons[v->n_reasons++], sizeof(v->reasons[0]),
                         "its history covers too little of the last %s (%u of %u rows, %.0f%% < %g%%)",
                         k->horizon, k->with_data, k->rows, 100.0 * k->with_data / k->rows,
                         100.0 * c->min_coverage);
                lead = 1;
        }
        rule(v, &lead, k, "cpu", k->cpu, 2, c->cpu_percent, "%");
        rule(v, &lead, k, "mem", k->mem, 0, c->mem_mb, " MiB");
        if (c->net_kbps > 0)
                rule(v, &lead, k, "network", k->net, 1, c->net_kbps, " kbit/s");
        if (c->disk_kbps > 0)
                rule(v, &lead, k, "disk", k->disk, 1, c->disk_kbps, " kbit/s");
}

uint64_t history_horizon_usec(const struct config *c)
{
        if (!c->history_usec)
                return 0;
        return c->mode == REAP_MODE_REAP && c->grace_usec > c->history_usec ? c->grace_usec
                                                                            : c->history_usec;
}

int history_veto(struct pve *p, const struct config *c, enum guest_type t, const char *node,
                 uint32_t vmid, int64_t now_s, enum verdict_kind *kind, char *why, size_t size)
{
        struct history_peaks k;
        struct history_verdict v;
        int e = history_read(p, c, t, node, vmid, history_horizon_usec(c) / USEC_PER_SEC, now_s,
                             &k);

        if (e < 0)
                return e;
        history_decide(c, &k, &v);
        if (kind)
                *kind = v.kind;
        if (v.kind == VERDICT_IDLE)
                return 0;
        if (v.kind == VERDICT_ACTIVE)
                snprintf(why, size, "busy in the last %s by its history (%s)", k.horizon,
                         v.reasons[0]);
        else
                snprintf(why, size, "%s", v.reasons[0]);
        return 1;
}
