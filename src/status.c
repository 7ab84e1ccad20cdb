/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "status.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* --- a small streaming JSON writer for guest objects ---
 *
 * The status file is rewritten after every poll with every guest in it, so
 * this is on the poll path: no tree, no printf for numbers. Names, tags and
 * reasons come from Proxmox (UTF-8, validated by the decoder) or from us. */

static void put_json_string(FILE *f, const char *s)
{
        static const char hex[] = "0123456789abcdef";
        const char *run = s;

        fputc('"', f);
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;

                if (c >= 0x20 && c != '"' && c != '\\')
                        continue;
                fwrite(run, 1, (size_t)(s - run), f);
                run = s + 1;
                if (c == '"' || c == '\\') {
                        fputc('\\', f);
                        fputc(c, f);
                } else {
                        char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf] };

                        fwrite(esc, 1, sizeof(esc), f);
                }
        }
        fwrite(run, 1, (size_t)(s - run), f);
        fputc('"', f);
}

static void put_uint(FILE *f, uint64_t v)
{
        char buf[24];
        size_t i = sizeof(buf);

        do {
                buf[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        fwrite(buf + i, 1, sizeof(buf) - i, f);
}

/* A non-negative value with a fixed number of decimals (at most 6). */
static void put_fixed(FILE *f, double v, unsigned decimals)
{
        static const uint64_t scale[] = { 1, 10, 100, 1000, 10000, 100000, 1000000 };
        uint64_t m = scale[decimals], x;

        if (!(v >= 0) || v >= 1e12) { /* NaN, negative or absurd: say so */
                fputs(v >= 1e12 ? "1e12" : "0", f);
                return;
        }
        x = (uint64_t)(v * (double)m + 0.5);
        put_uint(f, x / m);
        if (decimals == 0)
                return;
        fputc('.', f);
        for (uint64_t d = m / 10, frac = x % m; d > 0; d /= 10) {
                fputc((int)('0' + frac / d), f);
                frac %= d;
        }
}

static void put_reasons(FILE *f, const struct verdict *v)
{
        char buf[256];

        fputc('[', f);
        for (unsigned i = 0; i < v->n_reasons; i++) {
                if (i > 0)
                        fputc(',', f);
                reason_format(&v->reasons[i], buf, sizeof(buf));
                put_json_string(f, buf);
        }
        fputc(']', f);
}

static void put_guest(FILE *f, const struct guest *g, const struct verdict *v,
                      const struct window_stats *s)
{
        /* Keys are ours: written already quoted, with their commas. */
        fputs("{\"vmid\":", f);
        put_uint(f, g->vmid);
        fputs(",\"node\":", f);
        put_json_string(f, g->node ? g->node : "");
        fputs(",\"type\":", f);
        put_json_string(f, guest_type_to_string((enum guest_type)g->type));
        fputs(",\"name\":", f);
        put_json_string(f, g->name ? g->name : "");
        fputs(",\"verdict\":", f);
        put_json_string(f, verdict_to_string(v->kind));
        fputs(",\"reasons\":", f);
        put_reasons(f, v);
        fputs(",\"cpu_mean_percent\":", f);
        put_fixed(f, s->cpu_mean_percent, 4);
        fputs(",\"mem_mean_mb\":", f);
        put_fixed(f, s->mem_mean_mb, 3);
        fputs(",\"samples\":", f);
        put_uint(f, s->samples);
        fputs(",\"expected_samples\":", f);
        put_uint(f, s->expected);
        fputs(",\"coverage\":", f);
        put_fixed(f, s->coverage, 4);
        fputs(",\"uptime\":", f);
        put_uint(f, g->uptime_s);
        fputc('}', f);
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

/* The JSON array of guests sorted by vmid: the one serialisation of a
 * guest, streamed, since it runs after every poll. */
static int write_guests(FILE *f, const struct observer *o, uint64_t now_usec)
{
        size_t n = 0;
        struct guest **sorted = sorted_guests(o, &n);

        if (!sorted)
                return -ENOMEM;
        fputc('[', f);
        for (size_t i = 0; i < n; i++) {
                struct window_stats s;
                struct verdict v;

                if (i > 0)
                        fputc(',', f);
                observer_judge(o, sorted[i], now_usec, &v, &s);
                put_guest(f, sorted[i], &v, &s);
        }
        fputc(']', f);
        free(sorted);
        return ferror(f) ? -EIO : 0;
}

json_t *status_guests_json(const struct observer *o, uint64_t now_usec)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        json_t *a = NULL;
        int r;

        if (!f)
                return NULL;
        r = write_guests(f, o, now_usec);
        if (fclose(f) == 0 && r == 0)
                a = json_loadb(text, len, 0, NULL);
        free(text);
        return a;
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

        if (s->last_ok_realtime_usec == 0)
                snprintf(last_ok, sizeof(last_ok), "never");
        else
                format_utc((int64_t)(s->last_ok_realtime_usec / USEC_PER_SEC), last_ok,
                           sizeof(last_ok));
        return json_pack("{s:b s:s? s:s s:I s:I s:i s:f s:i s:I s:f s:f}", "ok", s->api_ok, "error",
                         s->api_error[0] ? s->api_error : NULL, "last_success", last_ok,
                         "polls_ok", (json_int_t)s->polls_ok, "polls_failed",
                         (json_int_t)s->polls_failed, "consecutive_failures",
                         (int)s->consecutive_failures, "last_poll_seconds",
                         (double)s->last_poll_duration_usec / 1e6, "rejected_entries",
                         (int)s->rejected_entries, "poll_overruns",
                         (json_int_t)s->poll_overruns, "max_poll_seconds",
                         (double)s->max_cycle_usec / 1e6, "previous_poll_seconds",
                         (double)s->last_cycle_usec / 1e6);
}

#define STATUS_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

static json_t *status_header(const struct observer *o)
{
        const struct observe_summary *s = observer_summary(o);
        const struct config *c = observer_config(o);
        char updated[32];

        format_utc(now_epoch(), updated, sizeof(updated));
        return json_pack("{s:s s:s s:i s:s s:f s:f s:o s:o}", "version", PROXREAP_VERSION,
                         "mode", reap_mode_to_string(c->mode), "pid", (int)getpid(), "updated",
                         updated, "interval_seconds", (double)c->interval_usec / 1e6,
                         "window_seconds", (double)c->window_usec / 1e6, "summary",
                         summary_json(s), "api", api_json(s));
}

/* Streams the document: the header object, then the guests, so memory
 * stays flat however large the fleet. */
static int write_document(FILE *f, const struct observer *o, uint64_t now_usec)
{
        json_t *header = status_header(o);
        char *text = header ? json_dumps(header, STATUS_JSON_FLAGS) : NULL;
        int r;

        json_decref(header);
        if (!text)
                return -ENOMEM;
        /* The header ends in '}': reopen it for the guests. */
        fprintf(f, "%.*s,\"guests\":", (int)strlen(text) - 1, text);
        free(text);
        r = write_guests(f, o, now_usec);
        fputs("}\n", f);
        return r;
}

/* Readers (the CLI, monitoring) only ever see a whole file: written to a
 * temporary name beside path, then renamed over it. */
static int write_atomic(const char *path, int (*write_fn)(FILE *f, const void *ctx),
                        const void *ctx)
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
        r = fchmod(fd, 0644) < 0 ? -errno : write_fn(f, ctx);
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

struct document {
        const struct observer *o;
        uint64_t now_usec;
};

static int write_document_fn(FILE *f, const void *ctx)
{
        const struct document *d = ctx;

        return write_document(f, d->o, d->now_usec);
}

int status_write_file(const char *path, const struct observer *o, uint64_t now_usec)
{
        const struct document d = { o, now_usec };

        return write_atomic(path, write_document_fn, &d);
}

/* --- Prometheus text exposition format 0.0.4 --- */

static void metric_head(FILE *f, const char *name, const char *type, const char *help)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u64(FILE *f, const char *name, const char *type, const char *help,
                       uint64_t v)
{
        metric_head(f, name, type, help);
        fprintf(f, "%s %" PRIu64 "\n", name, v);
}

static void metric_seconds(FILE *f, const char *name, const char *help, uint64_t usec)
{
        metric_head(f, name, "gauge", help);
        fprintf(f, "%s %" PRIu64 ".%06" PRIu64 "\n", name, usec / USEC_PER_SEC, usec % USEC_PER_SEC);
}

static void metrics_observe(FILE *f, const struct status_metrics *m)
{
        static const struct {
                const char *label;
                enum verdict_kind kind;
        } verdicts[] = { { "idle", VERDICT_IDLE },
                         { "active", VERDICT_ACTIVE },
                         { "insufficient-data", VERDICT_INSUFFICIENT },
                         { "excluded", VERDICT_EXCLUDED } };
        const struct observe_summary *s = m->summary;

        metric_head(f, "proxreap_info", "gauge", "The running proxreapd: version and reap mode.");
        fprintf(f, "proxreap_info{version=\"%s\",mode=\"%s\"} 1\n", PROXREAP_VERSION,
                reap_mode_to_string(m->mode));
        metric_head(f, "proxreap_guests", "gauge", "Guests tracked, by verdict at the last poll.");
        for (size_t i = 0; i < ELEMENTSOF(verdicts); i++)
                fprintf(f, "proxreap_guests{verdict=\"%s\"} %zu\n", verdicts[i].label,
                        s->count[verdicts[i].kind]);
        metric_head(f, "proxreap_polls_total", "counter", "Polls of /cluster/resources, by result.");
        fprintf(f, "proxreap_polls_total{result=\"ok\"} %" PRIu64 "\n", s->polls_ok);
        fprintf(f, "proxreap_polls_total{result=\"failed\"} %" PRIu64 "\n", s->polls_failed);
        metric_u64(f, "proxreap_api_requests_total", "counter",
                   "Proxmox API requests sent (a retried read counts once).", m->api_requests);
        metric_u64(f, "proxreap_api_errors_total", "counter",
                   "Proxmox API requests that failed: no answer, or a status other than 2xx.",
                   m->api_errors);
        metric_u64(f, "proxreap_api_up", "gauge", "1 if the last poll succeeded.", s->api_ok);
        metric_seconds(f, "proxreap_poll_duration_seconds",
                       "Duration of the last poll: fetch, decode, window update, verdicts.",
                       s->last_poll_duration_usec);
        metric_seconds(f, "proxreap_poll_duration_max_seconds",
                       "Longest whole poll since start, from its scheduled time until its "
                       "status and metrics files were written (polls finished before this write).",
                       s->max_cycle_usec);
        metric_u64(f, "proxreap_poll_overruns_total", "counter",
                   "Polls not finished within observe.interval, so that the next one started "
                   "late (polls finished before this write).",
                   s->poll_overruns);
        metric_seconds(f, "proxreap_last_successful_poll_timestamp_seconds",
                       "UNIX time of the last successful poll (0: none yet).",
                       s->last_ok_realtime_usec);
}

/* The process's own cost, as node_exporter's textfile collector cannot
 * see it: CPU time of every thread, resident and peak resident memory. */
static void metrics_process(FILE *f, size_t state_bytes)
{
        struct rusage ru;
        unsigned long pages, resident;
        FILE *statm;

        if (getrusage(RUSAGE_SELF, &ru) == 0) {
                uint64_t usec = (uint64_t)ru.ru_utime.tv_sec * USEC_PER_SEC +
                                (uint64_t)ru.ru_utime.tv_usec +
                                (uint64_t)ru.ru_stime.tv_sec * USEC_PER_SEC +
                                (uint64_t)ru.ru_stime.tv_usec;

                metric_head(f, "process_cpu_seconds_total", "counter",
                            "User and system CPU time of proxreapd.");
                fprintf(f, "process_cpu_seconds_total %" PRIu64 ".%06" PRIu64 "\n",
                        usec / USEC_PER_SEC, usec % USEC_PER_SEC);
                metric_u64(f, "proxreap_resident_memory_max_bytes", "gauge",
                           "Peak resident memory of proxreapd since start.",
                           (uint64_t)ru.ru_maxrss * 1024);
        }
        statm = fopen("/proc/self/statm", "re");
        if (statm) {
                if (fscanf(statm, "%lu %lu", &pages, &resident) == 2)
                        metric_u64(f, "process_resident_memory_bytes", "gauge",
                                   "Resident memory of proxreapd.",
                                   (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE));
                fclose(statm);
        }
        metric_u64(f, "proxreap_guest_state_bytes", "gauge",
                   "Memory of the tracked guests' sample windows and names.", state_bytes);
}

static void metrics_reap(FILE *f, const struct ops_totals *t, bool journal_ok)
{
        metric_u64(f, "proxreap_reaps_total", "counter",
                   "Guests reaped: archived, verified and destroyed.", t->reaps);
        metric_u64(f, "proxreap_aborts_total", "counter",
                   "Reaps that failed and were undone (guest started again, tagged proxreap-failed).",
                   t->aborts);
        metric_u64(f, "proxreap_vetoes_total", "counter",
                   "Reaps called off by the re-check before any change.", t->vetoes);
        metric_u64(f, "proxreap_restores_total", "counter", "Reaped guests restored.",
                   t->restores);
        metric_u64(f, "proxreap_reaps_in_progress", "gauge", "Reaps under way.", t->in_progress);
        metric_u64(f, "proxreap_reclaimed_memory_bytes_total", "counter",
                   "Configured memory of the guests reaped.", t->freed_mem);
        metric_u64(f, "proxreap_reclaimed_disk_bytes_total", "counter",
                   "Configured disk size of the guests reaped.", t->freed_disk);
        metric_u64(f, "proxreap_journal_writable", "gauge",
                   "0 when the journal failed: destructive work has stopped.", journal_ok);
}

static int write_metrics_fn(FILE *f, const void *ctx)
{
        const struct status_metrics *m = ctx;

        metrics_observe(f, m);
        metrics_process(f, m->state_bytes);
        if (m->ops)
                metrics_reap(f, m->ops, m->journal_ok);
        if (m->notify) {
                metric_head(f, "proxreap_webhook_events_total", "counter",
                            "Webhook events: delivered, failed after every attempt, or dropped.");
                fprintf(f, "proxreap_webhook_events_total{result=\"sent\"} %" PRIu64 "\n",
                        m->notify->sent);
                fprintf(f, "proxreap_webhook_events_total{result=\"failed\"} %" PRIu64 "\n",
                        m->notify->failed);
                fprintf(f, "proxreap_webhook_events_total{result=\"dropped\"} %" PRIu64 "\n",
                        m->notify->dropped);
        }
        return 0;
}

int status_write_prometheus(const char *path, const struct status_metrics *m)
{
        return write_atomic(path, write_metrics_fn, m);
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
