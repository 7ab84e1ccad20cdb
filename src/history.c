/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * history.c - the idle rules over Proxmox VE's RRD (see history.h).
 */
#include "history.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "pve_api.h"
#include "util.h"

const char *history_timeframe(uint64_t h)
{
        uint64_t day = USEC_PER_DAY / USEC_PER_SEC;

        return h <= 3600 ? "hour" : h <= day ? "day" : h <= 7 * day ? "week"
                                               : h <= 31 * day ? "month" : "year";
}

static double row_num(json_t *row, const char *key)
{
        json_t *v = json_object_get(row, key);

        return json_is_number(v) ? json_number_value(v) : -1.0;
}

static double peak(double was, double now)
{
        return now > was ? now : was;
}

static void peaks_of(json_t *data, int64_t since, struct history_peaks *p)
{
        json_t *it;
        size_t i;

        json_array_foreach(data, i, it) {
                double cpu = row_num(it, "cpu"), mem = row_num(it, "mem");
                /* bytes per second; a missing one counts -1 (never a peak) */
                double net = row_num(it, "netin") + row_num(it, "netout");
                double disk = row_num(it, "diskread") + row_num(it, "diskwrite");

                if (row_num(it, "time") < (double)since)
                        continue;
                p->rows++; /* a row of the horizon: running or not */
                if (cpu < 0 || mem < 0)
                        continue; /* stopped, or not there yet */
                p->with_data++;
                p->cpu = peak(p->cpu, cpu * 100.0);
                p->mem = peak(p->mem, mem / 1048576.0);
                p->net = peak(p->net, net * 8 / 1000);
                p->disk = peak(p->disk, disk * 8 / 1000);
        }
}

int history_read(struct pve *p, enum guest_type t, const char *node, uint32_t vmid,
                 uint64_t horizon_s, int64_t now_s, struct history_peaks *ret)
{
        json_t *data = NULL;
        int e;

        *ret = (struct history_peaks){ .timeframe = history_timeframe(horizon_s) };
        e = pve_rrddata(p, t, node, vmid, ret->timeframe, &data);
        if (e < 0)
                return e;
        peaks_of(data, now_s - (int64_t)horizon_s, ret);
        json_decref(data);
        return 0;
}

/* One rule's line: "cpu average up to 1.00% < 5%". A failing one goes
 * before the rules that hold (after a line on too little history). */
static void rule(struct history_verdict *v, unsigned *lead, const char *what, double value,
                 int decimals, double limit, const char *unit)
{
        bool fails = value >= limit;
        char line[160];

        if (v->n_reasons >= HISTORY_MAX_REASONS)
                return;
        snprintf(line, sizeof(line), "%s %.*f%s %s %g%s", what, decimals, value, unit,
                 fails ? ">=" : "<", limit, unit);
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
                         "it has no history for the last %s", k->timeframe);
                return;
        }
        if ((double)k->with_data < c->min_coverage * (double)k->rows) {
                v->kind = VERDICT_INSUFFICIENT;
                snprintf(v->reasons[v->n_reasons++], sizeof(v->reasons[0]),
                         "its history covers too little of the last %s (%u of %u rows, %.0f%% < %g%%)",
                         k->timeframe, k->with_data, k->rows, 100.0 * k->with_data / k->rows,
                         100.0 * c->min_coverage);
                lead = 1;
        }
        rule(v, &lead, "cpu average up to", k->cpu, 2, c->cpu_percent, "%");
        rule(v, &lead, "mem up to", k->mem, 0, c->mem_mb, " MiB");
        if (c->net_kbps > 0)
                rule(v, &lead, "network up to", k->net, 1, c->net_kbps, " kbit/s");
        if (c->disk_kbps > 0)
                rule(v, &lead, "disk up to", k->disk, 1, c->disk_kbps, " kbit/s");
}
