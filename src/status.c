/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static json_t *reasons_json(const struct verdict *v)
{
        json_t *a = json_array();
        char buf[256];

        for (unsigned i = 0; a && i < v->n_reasons; i++) {
                reason_format(&v->reasons[i], buf, sizeof(buf));
                json_array_append_new(a, json_string(buf));
        }
        return a;
}

static json_t *guest_json(const struct guest *g, const struct verdict *v,
                          const struct window_stats *s)
{
        return json_pack("{s:I s:s s:s s:s s:s s:o s:f s:f s:i s:i s:f s:I}", "vmid",
                         (json_int_t)g->vmid, "node", g->node ? g->node : "", "type",
                         guest_type_to_string((enum guest_type)g->type), "name",
                         g->name ? g->name : "", "verdict", verdict_to_string(v->kind), "reasons",
                         reasons_json(v), "cpu_mean_percent", s->cpu_mean_percent, "mem_mean_mb",
                         s->mem_mean_mb, "samples", (int)s->samples, "expected_samples",
                         (int)s->expected, "coverage", s->coverage, "uptime",
                         (json_int_t)g->uptime_s);
}

static int by_vmid(const void *a, const void *b)
{
        uint32_t x = (*(struct guest *const *)a)->vmid, y = (*(struct guest *const *)b)->vmid;

        return (x > y) - (x < y);
}

/* The table's guests sorted by vmid; the caller frees the array. */
static struct guest **sorted_guests(const struct observer *o, size_t *ret_n)
{
        const struct guest_table *t = observer_table(o);
        size_t n = guest_table_count(t);
        struct guest **sorted = malloc((n ? n : 1) * sizeof(*sorted));

        if (!sorted)
                return NULL;
        for (size_t i = 0; i < n; i++)
                sorted[i] = guest_table_at(t, i);
        qsort(sorted, n, sizeof(*sorted), by_vmid);
        *ret_n = n;
        return sorted;
}

static json_t *judged_guest_json(const struct observer *o, const struct guest *g,
                                 uint64_t now_usec)
{
        struct window_stats s;
        struct verdict v;

        observer_judge(o, g, now_usec, &v, &s);
        return guest_json(g, &v, &s);
}

json_t *status_guests_json(const struct observer *o, uint64_t now_usec)
{
        size_t n = 0;
        struct guest **sorted = sorted_guests(o, &n);
        json_t *a = json_array();

        for (size_t i = 0; sorted && a && i < n; i++)
                if (json_array_append_new(a, judged_guest_json(o, sorted[i], now_usec)) < 0) {
                        json_decref(a);
                        a = NULL;
                }
        if (!sorted) {
                json_decref(a);
                a = NULL;
        }
        free(sorted);
        return a;
}

static void iso_time(uint64_t realtime_usec, char *buf, size_t size)
{
        time_t t = (time_t)(realtime_usec / USEC_PER_SEC);
        struct tm tm;

        if (realtime_usec == 0 || !gmtime_r(&t, &tm) ||
            strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "never");
}

static json_t *summary_json(const struct observe_summary *s)
{
        return json_pack("{s:I s:I s:I s:I s:I}", "tracked", (json_int_t)s->tracked, "idle",
                         (json_int_t)s->count[VERDICT_IDLE], "active",
                         (json_int_t)s->count[VERDICT_ACTIVE], "insufficient-data",
                         (json_int_t)s->count[VERDICT_INSUFFICIENT], "excluded",
                         (json_int_t)s->count[VERDICT_EXCLUDED]);
}

static json_t *api_json(const struct observe_summary *s)
{
        char last_ok[32];

        iso_time(s->last_ok_realtime_usec, last_ok, sizeof(last_ok));
        return json_pack("{s:b s:s? s:s s:I s:I s:i s:f s:i}", "ok", s->api_ok, "error",
                         s->api_error[0] ? s->api_error : NULL, "last_success", last_ok,
                         "polls_ok", (json_int_t)s->polls_ok, "polls_failed",
                         (json_int_t)s->polls_failed, "consecutive_failures",
                         (int)s->consecutive_failures, "last_poll_seconds",
                         (double)s->last_poll_duration_usec / 1e6, "rejected_entries",
                         (int)s->rejected_entries);
}

#define STATUS_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

static json_t *status_header(const struct observer *o)
{
        const struct observe_summary *s = observer_summary(o);
        const struct config *c = observer_config(o);
        char updated[32];

        iso_time(now_realtime_usec(), updated, sizeof(updated));
        return json_pack("{s:s s:s s:i s:s s:f s:f s:o s:o}", "version", PROXREAP_VERSION,
                         "mode", reap_mode_to_string(c->mode), "pid", (int)getpid(), "updated",
                         updated, "interval_seconds", (double)c->interval_usec / 1e6,
                         "window_seconds", (double)c->window_usec / 1e6, "summary",
                         summary_json(s), "api", api_json(s));
}

/* Streams the document: the header object, then one guest at a time, so
 * memory stays flat however large the fleet. */
static int write_document(FILE *f, const struct observer *o, uint64_t now_usec)
{
        json_t *header = status_header(o);
        char *text = header ? json_dumps(header, STATUS_JSON_FLAGS) : NULL;
        struct guest **sorted = NULL;
        size_t n = 0;
        int r = -ENOMEM;

        json_decref(header);
        if (!text || !(sorted = sorted_guests(o, &n)))
                goto out;
        /* The header ends in '}': reopen it for the guests. */
        fprintf(f, "%.*s,\"guests\":[", (int)strlen(text) - 1, text);
        for (size_t i = 0; i < n; i++) {
                json_t *g = judged_guest_json(o, sorted[i], now_usec);

                if (!g)
                        goto out;
                if (i > 0)
                        fputc(',', f);
                json_dumpf(g, f, STATUS_JSON_FLAGS);
                json_decref(g);
        }
        fputs("]}\n", f);
        r = 0;
out:
        free(sorted);
        free(text);
        return r;
}

int status_write_file(const char *path, const struct observer *o, uint64_t now_usec)
{
        char tmp[4096];
        FILE *f;
        int fd, r;

        if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        f = fdopen(fd, "w");
        if (!f) {
                r = -errno;
                close(fd);
                unlink(tmp);
                return r;
        }
        /* Readers (the CLI, monitoring) only ever see a whole file. */
        r = fchmod(fd, 0644) < 0 ? -errno : write_document(f, o, now_usec);
        if (ferror(f) && r == 0)
                r = -EIO;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

void status_line(const struct observe_summary *s, char *buf, size_t size)
{
        int n = snprintf(buf, size, "tracking %zu guests, %zu idle, %zu active, %zu insufficient-data, %zu excluded",
                         s->tracked, s->count[VERDICT_IDLE], s->count[VERDICT_ACTIVE],
                         s->count[VERDICT_INSUFFICIENT], s->count[VERDICT_EXCLUDED]);

        if (!s->api_ok && n > 0 && (size_t)n < size)
                snprintf(buf + n, size - (size_t)n, "; API unreachable for %u poll%s",
                         s->consecutive_failures, s->consecutive_failures == 1 ? "" : "s");
}

static void print_reasons(FILE *f, json_t *reasons)
{
        size_t i;
        json_t *r;

        json_array_foreach(reasons, i, r)
                fprintf(f, "%s%s", i ? ", " : "", json_string_value(r) ? json_string_value(r) : "");
}

void status_print_guests(FILE *f, json_t *guests)
{
        size_t i;
        json_t *g;

        fprintf(f, "%-9s %-12s %-4s %-20s %-17s %7s %9s %7s  %s\n", "VMID", "NODE", "TYPE",
                "NAME", "VERDICT", "CPU%", "MEM-MiB", "SAMPLES", "REASONS");
        json_array_foreach(guests, i, g) {
                fprintf(f, "%-9lld %-12.12s %-4s %-20.20s %-17s %7.2f %9.1f %3lld/%-3lld  ",
                        (long long)json_integer_value(json_object_get(g, "vmid")),
                        json_string_value(json_object_get(g, "node")),
                        json_string_value(json_object_get(g, "type")),
                        json_string_value(json_object_get(g, "name")),
                        json_string_value(json_object_get(g, "verdict")),
                        json_real_value(json_object_get(g, "cpu_mean_percent")),
                        json_real_value(json_object_get(g, "mem_mean_mb")),
                        (long long)json_integer_value(json_object_get(g, "samples")),
                        (long long)json_integer_value(json_object_get(g, "expected_samples")));
                print_reasons(f, json_object_get(g, "reasons"));
                fputc('\n', f);
        }
}
