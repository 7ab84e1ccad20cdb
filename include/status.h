/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * status: what proxreap tells the outside world about its observations:
 * the status file (/run/proxreap/status.json, replaced atomically after
 * every poll), the sd_notify STATUS= line, and the guest table/JSON shared
 * by `proxreap plan` and `proxreap status`.
 */
#ifndef PROXREAP_STATUS_H
#define PROXREAP_STATUS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "notify.h"
#include "observe.h"
#include "ops.h"

/* Array of guest objects sorted by vmid: vmid node type name verdict
 * reasons cpu_mean_percent mem_mean_mb samples expected_samples coverage
 * uptime, as a jansson value (for the CLI); the caller owns it. It is made
 * by the same writer as the status file's guests. */
json_t *status_guests_json(const struct observer *o, uint64_t now_usec);

/* Writes the status document (summary, API state, every guest) to path
 * atomically (temporary file + rename, mode 0644), streaming it guest by
 * guest. */
/* reaper (borrowed, may be NULL): what the reaper is doing, for the
 * document's "reaper" member (reaper_status_json()). */
int status_write_file(const char *path, const struct observer *o, json_t *reaper,
                      uint64_t now_usec);

/* A small JSON document of the daemon's state (reaper.c's kept.json) to
 * path as status_write_file() does, and durably: on disk, rename
 * included, before it returns. 0 or -errno. */
int status_write_json(const char *path, const json_t *doc);

/* The daemon's status file, from the runtime directory it owns: never
 * through a planted link (statedir.h). NULL with err->line -2: there is
 * none; -1: it could not be opened (err->text says why); else jansson's. */
json_t *status_read_file(const char *path, json_error_t *err);

/* What the Prometheus textfile shows besides the observer's summary. */
struct status_metrics {
        const struct observe_summary *summary;
        enum reap_mode mode;
        uint64_t api_requests, api_errors;
        const struct ops_totals *ops; /* NULL: observe mode, no journal open */
        bool journal_ok;
        const struct notify_counters *notify; /* NULL: no webhook */
        size_t state_bytes; /* what the guests' windows and names take */
};

/* Writes the metrics in the Prometheus text format (for node_exporter's
 * textfile collector), replacing path atomically like the status file. */
int status_write_prometheus(const char *path, const struct status_metrics *m);

/* "tracking N guests, I idle, A active, X insufficient-data, E excluded". */
void status_line(const struct observe_summary *s, char *buf, size_t size);

/* Human-readable table of a guest array as made by status_guests_json(). */
void status_print_guests(FILE *f, json_t *guests);

#endif
