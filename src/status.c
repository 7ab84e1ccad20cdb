/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "status.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "statedir.h"
#include "util.h"

/* --- a small streaming JSON writer for guest objects ---
 *
 * The status file is rewritten after every poll with every guest in it, so
 * this is on the poll path: no tree, no printf for numbers, and bytes go
 * into a buffer of the writer's own that reaches stdio in large blocks
 * (stdio's per-call checks were most of the status file's cost). Names,
 * tags and reasons come from Proxmox (UTF-8, validated by the decoder) or
 * from us. */

struct out {
        FILE *f;
        size_t n;
        char buf[32768];
};

/* Every FILE written here is the writer's own (FSETLOCKING_BYCALLER or a
 * memstream): no other thread uses it. */
static void out_flush(struct out *o)
{
        fwrite_unlocked(o->buf, 1, o->n, o->f);
        o->n = 0;
}

static void put_bytes(struct out *o, const char *p, size_t n)
{
        if (n > sizeof(o->buf) - o->n) {
                out_flush(o);
                if (n > sizeof(o->buf)) {
                        fwrite_unlocked(p, 1, n, o->f);
                        return;
                }
        }
        memcpy(o->buf + o->n, p, n);
        o->n += n;
}

static void put_char(struct out *o, char c)
{
        if (o->n == sizeof(o->buf))
                out_flush(o);
        o->buf[o->n++] = c;
}

static void put_str(struct out *o, const char *s)
{
        put_bytes(o, s, strlen(s));
}

/* The inside of a JSON string: len bytes, at most a buffer's worth once
 * escaped. Room for the worst case (every byte a \u00XX) is made first,
 * so the loop only stores. */
#define ESCAPED_MAX 6
static void put_escaped(struct out *o, const char *s, size_t len)
{
        static const char hex[] = "0123456789abcdef";
        char *p;

        if (sizeof(o->buf) - o->n < ESCAPED_MAX * len)
                out_flush(o);
        p = o->buf + o->n;
        for (const char *end = s + len; s < end; s++) {
                unsigned char c = (unsigned char)*s;

                if (c >= 0x20 && c != '"' && c != '\\') {
                        *p++ = (char)c;
                } else if (c == '"' || c == '\\') {
                        *p++ = '\\';
                        *p++ = (char)c;
                } else {
                        p[0] = '\\';
                        p[1] = 'u';
                        p[2] = p[3] = '0';
                        p[4] = hex[c >> 4];
                        p[5] = hex[c & 0xf];
                        p += ESCAPED_MAX;
                }
        }
        o->n = (size_t)(p - o->buf);
}

static void put_json_string(struct out *o, const char *s)
{
        size_t len = strlen(s), piece = sizeof(o->buf) / ESCAPED_MAX;

        put_char(o, '"');
        for (size_t off = 0; off < len; off += piece)
                put_escaped(o, s + off, len - off < piece ? len - off : piece);
        put_char(o, '"');
}

static void put_uint(struct out *o, uint64_t v)
{
        char buf[24];
        size_t i = sizeof(buf);

        do {
                buf[--i] = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        put_bytes(o, buf + i, sizeof(buf) - i);
}

/* A non-negative value with a fixed number of decimals (at most 6). */
static void put_fixed(struct out *o, double v, unsigned decimals)
{
        static const uint64_t scale[] = { 1, 10, 100, 1000, 10000, 100000, 1000000 };
        uint64_t m = scale[decimals], x;
        char frac[8];
        size_t k = 0;

        if (!(v >= 0) || v >= 1e12) { /* NaN, negative or absurd: say so */
                put_str(o, v >= 1e12 ? "1e12" : "0");
                return;
        }
        x = (uint64_t)(v * (double)m + 0.5);
        put_uint(o, x / m);
        if (decimals == 0)
                return;
        frac[k++] = '.';
        for (uint64_t d = m / 10, rest = x % m; d > 0; d /= 10) {
                frac[k++] = (char)('0' + rest / d);
                rest %= d;
        }
        put_bytes(o, frac, k);
}

static void put_reasons(struct out *o, const struct verdict *v)
{
        char buf[256];

        put_char(o, '[');
        for (unsigned i = 0; i < v->n_reasons; i++) {
                if (i > 0)
                        put_char(o, ',');
                reason_format(&v->reasons[i], buf, sizeof(buf));
                put_json_string(o, buf);
        }
        put_char(o, ']');
}

static void put_guest(struct out *o, const struct guest *g, const struct verdict *v,
                      const struct window_stats *s)
{
        /* Keys are ours: written already quoted, with their commas. */
        put_str(o, "{\"vmid\":");
        put_uint(o, g->vmid);
        put_str(o, ",\"node\":");
        put_json_string(o, g->node ? g->node : "");
        put_str(o, ",\"type\":");
        put_json_string(o, guest_type_to_string((enum guest_type)g->type));
        put_str(o, ",\"name\":");
        put_json_string(o, g->name ? g->name : "");
        put_str(o, ",\"verdict\":");
        put_json_string(o, verdict_to_string(v->kind));
        put_str(o, ",\"reasons\":");
        put_reasons(o, v);
        put_str(o, ",\"cpu_mean_percent\":");
        put_fixed(o, s->cpu_mean_percent, 4);
        put_str(o, ",\"mem_mean_mb\":");
        put_fixed(o, s->mem_mean_mb, 3);
        put_str(o, ",\"samples\":");
        put_uint(o, s->samples);
        put_str(o, ",\"expected_samples\":");
        put_uint(o, s->expected);
        put_str(o, ",\"coverage\":");
        put_fixed(o, s->coverage, 4);
        put_str(o, ",\"uptime\":");
        put_uint(o, g->uptime_s);
        put_char(o, '}');
}

/* The table's positions sorted by the guests' vmids; the caller frees the
 * array. This runs
 * after every poll: keys (vmid << 32 | position) are sorted with an LSD
 * radix sort of the vmid's 30 bits, three passes of 10 bits, in linear
 * time (qsort()'s comparisons were 5% of a poll at 10,000 guests). */
#define RADIX_BITS 10
static uint32_t *sorted_guests(const struct observer *o, size_t *ret_n)
{
        const struct guest_table *t = observer_table(o);
        size_t n = guest_table_count(t), count[1u << RADIX_BITS];
        uint64_t *keys = malloc((n ? n : 1) * 2 * sizeof(*keys));
        uint32_t *sorted = malloc((n ? n : 1) * sizeof(*sorted));

        if (!keys || !sorted) {
                free(keys);
                free(sorted);
                return NULL;
        }
        uint64_t *from = keys, *to = keys + n;

        for (size_t i = 0; i < n; i++)
                keys[i] = (uint64_t)guest_table_at(t, i)->vmid << 32 | i;
        for (unsigned shift = 32; shift < 32 + 30; shift += RADIX_BITS) {
                uint64_t *swap;
                size_t sum = 0;

                memset(count, 0, sizeof(count));
                for (size_t i = 0; i < n; i++)
                        count[(from[i] >> shift) & ((1u << RADIX_BITS) - 1)]++;
                for (size_t b = 0; b < ELEMENTSOF(count); b++) {
                        size_t c = count[b];

                        count[b] = sum;
                        sum += c;
                }
                for (size_t i = 0; i < n; i++)
                        to[count[(from[i] >> shift) & ((1u << RADIX_BITS) - 1)]++] = from[i];
                swap = from;
                from = to;
                to = swap;
        }
        for (size_t i = 0; i < n; i++)
                sorted[i] = (uint32_t)from[i];
        free(keys);
        *ret_n = n;
        return sorted;
}

/* The JSON array of guests sorted by vmid: the one serialisation of a
 * guest, streamed, since it runs after every poll. */
static int write_guests(FILE *f, const struct observer *o, uint64_t now_usec)
{
        size_t n = 0;
        uint32_t *sorted = sorted_guests(o, &n);
        struct out *out = malloc(sizeof(*out));

        if (!sorted || !out) {
                free(sorted);
                free(out);
                return -ENOMEM;
        }
        out->f = f;
        out->n = 0;
        put_char(out, '[');
        for (size_t i = 0; i < n; i++) {
                struct window_stats s;
                struct verdict v;

                if (i > 0)
                        put_char(out, ',');
                observer_judge_at(o, sorted[i], now_usec, &v, &s);
                put_guest(out, guest_table_at(observer_table(o), sorted[i]), &v, &s);
        }
        put_char(out, ']');
        out_flush(out);
        free(out);
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
        return json_pack("{s:b s:s s:s? s:s s:I s:I s:i s:f s:i s:I s:f s:f}", "ok", s->api_ok,
                         "state", api_state_to_string(s->api_state), "error",
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

static json_t *status_header(const struct observer *o, json_t *reaper)
{
        const struct observe_summary *s = observer_summary(o);
        const struct config *c = observer_config(o);
        char updated[32];

        format_utc(now_epoch(), updated, sizeof(updated));
        return json_pack("{s:s s:s s:i s:s s:I s:f s:f s:o s:o s:O?}", "version", PROXREAP_VERSION,
                         "mode", reap_mode_to_string(c->mode), "pid", (int)getpid(), "updated",
                         updated, "updated_epoch", (json_int_t)now_epoch(), "interval_seconds",
                         (double)c->interval_usec / 1e6, "window_seconds",
                         (double)c->window_usec / 1e6, "summary", summary_json(s), "api",
                         api_json(s), "reaper", reaper);
}

/* Streams the document: the header object, then the guests, so memory
 * stays flat however large the fleet. */
static int write_document(FILE *f, const struct observer *o, json_t *reaper, uint64_t now_usec)
{
        json_t *header = status_header(o, reaper);
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
 * temporary name beside path, then renamed over it; durable: on disk
 * before the rename, and the rename too, before it returns. */
static int write_atomic(const char *path, int (*write_fn)(FILE *f, const void *ctx),
                        const void *ctx, bool durable)
{
        char name[NAME_MAX + 1], tmp[NAME_MAX + 1];
        int dirfd, fd, r;
        FILE *f;

        /* Relative to its directory, exclusive, never through a link
         * (statedir.h); renamed over the name, which replaces a planted
         * link rather than writing through it. */
        dirfd = statedir_open_dir(path, name, sizeof(name));
        if (dirfd < 0)
                return dirfd;
        fd = statedir_create_temp(dirfd, name, 0644, tmp, sizeof(tmp));
        if (fd < 0) {
                close(dirfd);
                return fd;
        }
        f = fdopen(fd, "w");
        if (!f) {
                r = -errno;
                close(fd);
                (void)unlinkat(dirfd, tmp, 0);
                close(dirfd);
                return r;
        }
        /* Only this thread sees f: no lock per character written. */
        __fsetlocking(f, FSETLOCKING_BYCALLER);
        r = fchmod(fd, 0644) < 0 ? -errno : 0;
        /* State that root (a foreground run) writes stays the service
         * user's, whose daemon reads it back (statedir.h's owner rule). */
        if (durable && r == 0 && geteuid() == 0) {
                struct stat dir, st;

                if (fstat(dirfd, &dir) < 0 || fstat(fd, &st) < 0 ||
                    ((st.st_uid != dir.st_uid || st.st_gid != dir.st_gid) &&
                     fchown(fd, dir.st_uid, dir.st_gid) < 0))
                        r = -errno;
        }
        if (r == 0)
                r = write_fn(f, ctx);
        if (ferror(f) && r == 0)
                r = -EIO;
        if (durable && r == 0 && (fflush(f) != 0 || fsync(fd) < 0))
                r = -errno;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        if (r == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (durable && r == 0 && fsync(dirfd) < 0)
                r = -errno;
        if (r < 0)
                (void)unlinkat(dirfd, tmp, 0);
        close(dirfd);
        return r;
}

struct document {
        const struct observer *o;
        json_t *reaper;
        uint64_t now_usec;
};

static int write_document_fn(FILE *f, const void *ctx)
{
        const struct document *d = ctx;

        return write_document(f, d->o, d->reaper, d->now_usec);
}

int status_write_file(const char *path, const struct observer *o, json_t *reaper,
                      uint64_t now_usec)
{
        const struct document d = { o, reaper, now_usec };

        return write_atomic(path, write_document_fn, &d, false);
}

static int write_json_fn(FILE *f, const void *ctx)
{
        return json_dumpf((const json_t *)ctx, f, JSON_COMPACT) < 0 || fputc('\n', f) == EOF
                       ? -EIO
                       : 0;
}

int status_write_json(const char *path, const json_t *doc)
{
        return write_atomic(path, write_json_fn, doc, true);
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
        metric_head(f, "proxreap_api_state", "gauge",
                    "1 for what the last poll said of the API: ok, unreachable, auth-failed (401) or error.");
        for (int i = 0; i < _API_STATE_MAX; i++)
                fprintf(f, "proxreap_api_state{state=\"%s\"} %d\n",
                        api_state_to_string((enum api_state)i), s->api_state == (enum api_state)i);
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
 * see it: CPU time of every thread, resident and peak resident memory
 * (VmRSS, VmHWM: getrusage()'s ru_maxrss would count the parent's memory
 * at the exec that started proxreapd). */
static void metrics_process(FILE *f, size_t state_bytes)
{
        struct rusage ru;
        FILE *st;

        if (getrusage(RUSAGE_SELF, &ru) == 0) {
                uint64_t usec = (uint64_t)ru.ru_utime.tv_sec * USEC_PER_SEC +
                                (uint64_t)ru.ru_utime.tv_usec +
                                (uint64_t)ru.ru_stime.tv_sec * USEC_PER_SEC +
                                (uint64_t)ru.ru_stime.tv_usec;

                metric_head(f, "process_cpu_seconds_total", "counter",
                            "User and system CPU time of proxreapd.");
                fprintf(f, "process_cpu_seconds_total %" PRIu64 ".%06" PRIu64 "\n",
                        usec / USEC_PER_SEC, usec % USEC_PER_SEC);
        }
        st = fopen("/proc/self/status", "re");
        if (st) {
                char line[256];
                uint64_t kib;

                while (fgets(line, sizeof(line), st)) {
                        if (sscanf(line, "VmRSS: %" SCNu64 " kB", &kib) == 1)
                                metric_u64(f, "process_resident_memory_bytes", "gauge",
                                           "Resident memory of proxreapd.", kib * 1024);
                        else if (sscanf(line, "VmHWM: %" SCNu64 " kB", &kib) == 1)
                                metric_u64(f, "proxreap_resident_memory_max_bytes", "gauge",
                                           "Peak resident memory of proxreapd since start.",
                                           kib * 1024);
                }
                fclose(st);
        }
        metric_u64(f, "proxreap_guest_state_bytes", "gauge",
                   "Memory of the tracked guests' sample windows, names and statistics.",
                   state_bytes);
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
        return write_atomic(path, write_metrics_fn, m, false);
}

void status_line(const struct observe_summary *s, char *buf, size_t size)
{
        int n = snprintf(buf, size, "tracking %zu guests, %zu idle, %zu active, %zu insufficient-data, %zu excluded",
                         s->tracked, s->count[VERDICT_IDLE], s->count[VERDICT_ACTIVE],
                         s->count[VERDICT_INSUFFICIENT], s->count[VERDICT_EXCLUDED]);

        if (!s->api_ok && n > 0 && (size_t)n < size)
                snprintf(buf + n, size - (size_t)n, "; %s for %u poll%s",
                         s->api_state == API_AUTH_FAILED ? "API authentication failed (401)"
                         : s->api_state == API_ERROR     ? "API errors"
                                                         : "API unreachable",
                         s->consecutive_failures, s->consecutive_failures == 1 ? "" : "s");
}

static void print_reasons(FILE *f, json_t *reasons)
{
        size_t i;
        json_t *r;

        json_array_foreach(reasons, i, r)
                fprintf(f, "%s%s", i ? ", " : "", text_shown(json_string_value(r)));
}

void status_print_guests(FILE *f, json_t *guests)
{
        size_t i;
        int wide = 17; /* "insufficient-data"; status adds "(held)" and the like */
        json_t *g;

        json_array_foreach(guests, i, g) {
                size_t n = strlen(text_shown(json_string_value(json_object_get(g, "verdict"))));

                wide = n > (size_t)wide && n < 64 ? (int)n : wide;
        }
        fprintf(f, "%-9s %-12s %-4s %-20s %-*s %7s %9s %7s  %s\n", "VMID", "NODE", "TYPE",
                "NAME", wide, "VERDICT", "CPU%", "MEM-MiB", "SAMPLES", "REASONS");
        json_array_foreach(guests, i, g) {
                fprintf(f, "%-9lld %-12.12s %-4s %-20.20s %-*s %7.2f %9.1f %3lld/%-3lld  ",
                        (long long)json_integer_value(json_object_get(g, "vmid")),
                        text_shown(json_string_value(json_object_get(g, "node"))),
                        text_shown(json_string_value(json_object_get(g, "type"))),
                        text_shown(json_string_value(json_object_get(g, "name"))), wide,
                        text_shown(json_string_value(json_object_get(g, "verdict"))),
                        json_real_value(json_object_get(g, "cpu_mean_percent")),
                        json_real_value(json_object_get(g, "mem_mean_mb")),
                        (long long)json_integer_value(json_object_get(g, "samples")),
                        (long long)json_integer_value(json_object_get(g, "expected_samples")));
                print_reasons(f, json_object_get(g, "reasons"));
                fputc('\n', f);
        }
}

/* The daemon's status file, from the runtime directory it owns: never
 * through a planted link (statedir.h). err->line -2: there is none; -1:
 * it could not be opened (err->text says why). */
json_t *status_read_file(const char *path, json_error_t *err)
{
        struct statedir_file f;
        json_t *doc = NULL;
        FILE *in;
        int r = statedir_open(path, STATEDIR_READ, &f, err->text, sizeof(err->text));

        err->line = r < 0 ? -1 : -2;
        if (r < 0 || f.fd < 0) {
                if (r >= 0)
                        statedir_close(&f);
                return NULL;
        }
        in = fdopen(f.fd, "r");
        if (in) {
                f.fd = -1; /* the stream owns it now */
                doc = json_loadf(in, 0, err);
                fclose(in);
        }
        statedir_close(&f);
        return doc;
}
