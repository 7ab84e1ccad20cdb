/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * proxreap: the operator's tool. check-config, plan (observe one window in
 * the foreground and print every verdict), status (render the daemon's
 * status file).
 *
 * Exit status: 0 success, 1 failure (API unreachable, token rejected, no
 * status file), 2 usage or configuration error.
 */
#include <errno.h>
#include <signal.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "history.h"
#include "log.h"
#include "observe.h"
#include "preflight.h"
#include "proxreap_ops.h"
#include "statedir.h"
#include "status.h"
#include "util.h"

#define EXIT_USAGE 2

static const char *config_path = CONFIG_DEFAULT_PATH;

struct command {
        const char *name;
        const char *usage; /* after "proxreap [-c FILE] " */
        const char *about; /* one line, in the list of commands */
        const char *help; /* what it does and its options */
        int (*fn)(int argc, char **argv);
};

static const struct command *find_command(const char *name);

static void usage(FILE *f);

static void command_help(FILE *f, const struct command *cmd)
{
        fprintf(f, "usage: proxreap [-c FILE] %s\n\n%s\n%s", cmd->usage, cmd->about, cmd->help);
        fprintf(f, "\n  -c, --config FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
                   "  -h, --help         show this help\n");
}

/* Options every command takes, wherever they stand: -c FILE (also
 * --config FILE, --config=FILE, -cFILE) and -h/--help. Taken out of argv
 * (argv[0] is the command); "--" ends them. */
static int take_common_options(int *argc, char **argv, bool *help)
{
        int in = 1, out = 1;

        while (in < *argc) {
                const char *a = argv[in];

                if (strcmp(a, "--") == 0)
                        break;
                if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                        *help = true;
                        in++;
                } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
                        if (in + 1 >= *argc) {
                                fprintf(stderr, "proxreap %s: option '%s' needs a file\n", argv[0], a);
                                return -EINVAL;
                        }
                        config_path = argv[in + 1];
                        in += 2;
                } else if (strncmp(a, "--config=", 9) == 0 || (strncmp(a, "-c", 2) == 0 && a[2])) {
                        config_path = a[1] == '-' ? a + 9 : a + 2;
                        in++;
                } else
                        argv[out++] = argv[in++];
        }
        while (in < *argc)
                argv[out++] = argv[in++];
        argv[out] = NULL;
        *argc = out;
        return 0;
}

static int load_config_flags(unsigned flags, struct config **ret)
{
        char *errors = NULL;
        int r = config_load_flags(config_path, flags, ret, &errors);

        if (r < 0) {
                if (errors)
                        fputs(errors, stderr);
                else
                        fprintf(stderr, "proxreap: cannot load '%s': %s\n", config_path,
                                strerror(-r));
                free(errors);
        }
        return r;
}

static int load_config(struct config **ret)
{
        return load_config_flags(0, ret);
}

static void print_check(void *userdata, const struct preflight_item *it)
{
        (void)userdata;
        printf("%-11s %-8s %s\n", it->check, preflight_result_to_string(it->result),
               text_shown(it->text));
        if (it->fix[0] && it->result != PREFLIGHT_OK)
                printf("%-11s %-8s fix: %s\n", "", "", text_shown(it->fix));
}

/* check-config --online: what proxreapd checks before it uses a
 * configuration, printed with the fixes. */
static int check_online(const struct config *c)
{
        struct preflight_summary sum;
        struct pve *p = NULL;
        int r = pve_new(c, &p);

        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", strerror(-r));
                return 1;
        }
        preflight_run(c, p, NULL, print_check, NULL, &sum);
        pve_free(p);
        if (sum.failed) {
                printf("%u check%s failed\n", sum.failed, sum.failed == 1 ? "" : "s");
                return 1;
        }
        printf("online checks passed\n");
        return 0;
}

/* Parses the only option a command takes: a flag (--json, --online). */
static int parse_flag(int argc, char **argv, const char *flag, bool *set)
{
        const struct option opts[] = {
                { flag, no_argument, NULL, 'f' },
                {},
        };
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0) {
                if (c != 'f') {
                        fprintf(stderr, "proxreap %s: unrecognized option '%s'\n", argv[0],
                                argv[optind - 1]);
                        command_help(stderr, find_command(argv[0]));
                        return -EINVAL;
                }
                *set = true;
        }
        if (optind < argc) {
                fprintf(stderr, "proxreap %s: unexpected argument '%s'\n", argv[0], argv[optind]);
                command_help(stderr, find_command(argv[0]));
                return -EINVAL;
        }
        return 1;
}

static int parse_json_flag(int argc, char **argv, bool *json)
{
        return parse_flag(argc, argv, "json", json);
}

static int cmd_check_config(int argc, char **argv)
{
        struct config *c;
        bool online = false;
        int r = parse_flag(argc, argv, "online", &online);

        if (r <= 0)
                return EXIT_USAGE;
        if (load_config(&c) < 0)
                return EXIT_USAGE;
        printf("configuration OK\n");
        fflush(stdout);
        /* What it allows is said once, before anything is sent. */
        config_warn_transport(c);
        r = online ? check_online(c) : 0;
        config_free(c);
        return r;
}

/* --- plan --- */

static void sleep_until(uint64_t target_usec)
{
        struct timespec ts = { .tv_sec = (time_t)(target_usec / USEC_PER_SEC),
                               .tv_nsec = (long)(target_usec % USEC_PER_SEC) * 1000 };

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

static void show_progress(unsigned done, unsigned total, uint64_t left_usec)
{
        char left[32];

        format_duration(left_usec / USEC_PER_SEC * USEC_PER_SEC, left, sizeof(left));
        fprintf(stderr, "\rproxreap: observing, sample %u of %u, %s left   ", done, total,
                left_usec >= USEC_PER_SEC ? left : "0s");
        fflush(stderr);
}

static int plan_probe(struct observer *o)
{
        struct pve_version v;
        int r = observer_probe(o, &v);

        if (r < 0) {
                fprintf(stderr, "proxreap: cannot use the Proxmox API: %s\n",
                        text_shown(observer_error(o)));
                return r;
        }
        if (isatty(STDERR_FILENO))
                fprintf(stderr, "proxreap: connected to Proxmox VE %s\n", text_shown(v.version));
        return 0;
}

/* Polls once per interval until one full window is covered. */
static int plan_observe(struct observer *o, const struct config *c, uint64_t *ret_end)
{
        unsigned total = config_window_samples(c);
        bool tty = isatty(STDERR_FILENO);
        uint64_t start = now_monotonic_usec(), t = start;

        for (unsigned i = 0; i < total; i++) {
                t = start + i * c->interval_usec;
                sleep_until(t);
                if (observer_poll(o, t) == -EACCES) {
                        if (tty)
                                fputc('\n', stderr);
                        fprintf(stderr, "proxreap: the Proxmox API refused the credentials: %s\n",
                                text_shown(observer_error(o)));
                        return -EACCES;
                }
                if (tty)
                        show_progress(i + 1, total, (total - i - 1) * c->interval_usec);
        }
        if (tty)
                fputc('\n', stderr);
        *ret_end = t;
        return 0;
}

/* What the configuration of every idle guest says: an idle guest an
 * archive would not hold whole is excluded, with the reason, and one whose
 * configuration cannot be read is not idle (the daemon judges them the
 * same way in every mode). */
static int plan_read_confs(struct observer *o, uint64_t now)
{
        const struct guest_table *t = observer_table(o);
        struct window_stats s;
        struct verdict v;

        for (size_t i = 0; i < guest_table_count(t); i++) {
                observer_judge_at(o, i, now, &v, &s);
                if (v.kind == VERDICT_IDLE)
                        (void)observer_read_conf(o, i, now, &v); /* a failure is its reason */
        }
        return 0;
}

/* In mark and reap mode, what the reaper would say of an idle guest: its
 * history too (reap.history). The guest's verdict and first reason are
 * the history's when it refuses. */
static unsigned plan_apply_history(struct observer *o, json_t *guests)
{
        const struct config *c = observer_config(o);
        int64_t now_s = now_epoch();
        unsigned held = 0;
        json_t *g;
        size_t i;

        if (!c->history_usec)
                return 0;
        json_array_foreach(guests, i, g) {
                const struct guest *t =
                        guest_table_find(observer_table(o),
                                         (uint32_t)json_integer_value(json_object_get(g, "vmid")));
                const char *verdict = json_string_value(json_object_get(g, "verdict"));
                enum verdict_kind kind = VERDICT_INSUFFICIENT;
                char why[300];
                int e;

                if (!t || !verdict || strcmp(verdict, "idle") != 0)
                        continue;
                e = history_veto(observer_pve(o), c, (enum guest_type)t->type, t->node, t->vmid,
                                 now_s, &kind, why, sizeof(why));
                if (e == 0)
                        continue;
                if (e < 0)
                        snprintf(why, sizeof(why), "its history cannot be read (%s)",
                                 observer_error(o));
                json_object_set_new(g, "verdict", json_string(verdict_to_string(kind)));
                json_array_insert_new(json_object_get(g, "reasons"), 0, json_string(why));
                held++;
        }
        return held;
}

static int plan_print(struct observer *o, uint64_t now, bool json)
{
        json_t *guests = status_guests_json(o, now);
        char line[256], h[32];
        unsigned held;

        if (!guests) {
                fprintf(stderr, "proxreap: out of memory\n");
                return 1;
        }
        held = plan_apply_history(o, guests);
        if (json) {
                json_dumpf(guests, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
                fputc('\n', stdout);
        } else {
                status_print_guests(stdout, guests);
                status_line(observer_summary(o), line, sizeof(line));
                printf("\n%s\n", line);
                if (held) {
                        format_duration(history_horizon_usec(observer_config(o)), h, sizeof(h));
                        printf("%u of the idle guests not idle by their history over the last %s (reap.history)\n",
                               held, h);
                }
        }
        json_decref(guests);
        return 0;
}

/* --- plan --history: every guest judged now, by its RRD --- */

static const char *jstr(json_t *o, const char *key);
static int64_t jint(json_t *o, const char *key);

/* A guest's history verdict, as JSON: what each rule says over it. */
static json_t *history_guest_json(const struct guest *g, const char *verdict,
                                  const struct history_peaks *k, json_t *reasons)
{
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:o}", "vmid", (json_int_t)g->vmid,
                              "node", g->node ? g->node : "", "type",
                              guest_type_to_string((enum guest_type)g->type), "name",
                              g->name ? g->name : "", "verdict", verdict, "reasons", reasons);

        if (o && k)
                json_object_set_new(o, "history",
                                    json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:I, s:I}",
                                              "timeframe", k->timeframe, "statistic",
                                              k->statistic, "cpu_percent", k->cpu, "mem_mb",
                                              k->mem, "net_kbps", k->net, "disk_kbps", k->disk,
                                              "rows",
                                              (json_int_t)k->rows, "rows_with_data",
                                              (json_int_t)k->with_data));
        return o;
}

static json_t *reasons_json(const struct verdict *v)
{
        json_t *a = json_array();
        char line[512];

        for (unsigned k = 0; k < v->n_reasons; k++) {
                reason_format(&v->reasons[k], line, sizeof(line));
                json_array_append_new(a, json_string(line));
        }
        return a;
}

/* The rules the history veto judges by: reap mode's, also when the file
 * is in observe mode (its network and disk rules, where unset). */
static struct config history_rules_of(const struct config *c)
{
        struct config h = *c; /* a shallow copy: only its numbers are read */

        config_reap_rules(&h);
        return h;
}

/* One guest: excluded by a rule (as the window says), else judged by its
 * history, and an idle one by its configuration too. */
static json_t *plan_history_guest(struct observer *o, size_t i, uint64_t horizon_s,
                                  uint64_t now)
{
        const struct config rules = history_rules_of(observer_config(o));
        const struct guest *g = guest_table_at(observer_table(o), i);
        struct history_peaks k;
        struct history_verdict hv;
        struct window_stats s;
        struct verdict v;
        json_t *reasons;

        observer_judge_at(o, i, now, &v, &s);
        if (v.kind == VERDICT_EXCLUDED)
                return history_guest_json(g, "excluded", NULL, reasons_json(&v));
        if (history_read(observer_pve(o), &rules, (enum guest_type)g->type, g->node,
                         g->vmid, horizon_s, now_epoch(), &k) < 0)
                return history_guest_json(g, "insufficient-data", NULL,
                                          json_pack("[s]", observer_error(o)));
        history_decide(&rules, &k, &hv);
        /* What its configuration says (the window of one poll aside). */
        if (hv.kind == VERDICT_IDLE && observer_read_conf(o, i, now, &v) < 0)
                return history_guest_json(g, "insufficient-data", &k,
                                          json_pack("[s+s]", "its configuration cannot be read: ",
                                                    observer_error(o)));
        if (hv.kind == VERDICT_IDLE && v.kind == VERDICT_EXCLUDED)
                return history_guest_json(g, "excluded", &k, reasons_json(&v));
        reasons = json_array();
        for (unsigned n = 0; n < hv.n_reasons; n++)
                json_array_append_new(reasons, json_string(hv.reasons[n]));
        return history_guest_json(g, verdict_to_string(hv.kind), &k, reasons);
}

/* The idle rules as plan --history shows them: key, history field,
 * column, and the limit (< 0: the rule is off). */
struct history_rule {
        const char *key, *field, *column;
        double limit;
};

static void history_rules(const struct config *c, struct history_rule r[4])
{
        r[0] = (struct history_rule){ "idle.cpu_percent", "cpu_percent", "CPU%", c->cpu_percent };
        r[1] = (struct history_rule){ "idle.mem_mb", "mem_mb", "MEM-MB", c->mem_mb };
        r[2] = (struct history_rule){ "idle.net_kbps", "net_kbps", "NET-KBPS", c->net_kbps };
        r[3] = (struct history_rule){ "idle.disk_kbps", "disk_kbps", "DISK-KBPS", c->disk_kbps };
}

/* What one threshold changes: each guest its history holds back by one
 * rule alone, and the limit above which it would be idle. */
static void plan_history_flips(json_t *guests, const struct config *c)
{
        struct history_rule r[4];
        json_t *g;
        size_t i;
        bool any = false;

        history_rules(c, r);
        json_array_foreach(guests, i, g) {
                json_t *k = json_object_get(g, "history");
                unsigned failing = 0, which = 0;

                if (!k || strcmp(jstr(g, "verdict"), "active") != 0)
                        continue;
                for (unsigned n = 0; n < 4; n++)
                        if (r[n].limit > 0 &&
                            json_real_value(json_object_get(k, r[n].field)) >= r[n].limit) {
                                failing++;
                                which = n;
                        }
                if (failing != 1)
                        continue;
                if (!any)
                        printf("\nwhat one threshold changes (guests held back by one rule alone):\n");
                any = true;
                printf("  %s above %.2f would make %lld ('%s') idle by its history\n", r[which].key,
                       json_real_value(json_object_get(k, r[which].field)),
                       (long long)jint(g, "vmid"), jstr(g, "name"));
        }
}

static void plan_history_print(json_t *guests, uint64_t horizon_s, const struct config *c)
{
        struct history_rule r[4];
        char h[32], stat[8];
        json_t *g, *it, *k;
        size_t i, n;

        history_rules(c, r);
        format_duration(horizon_s * USEC_PER_SEC, h, sizeof(h));
        history_statistic_name(c->history_statistic, stat, sizeof(stat));
        printf("judged by the RRD over the last %s (%s of each rule's row averages)\n\n", h,
               strcmp(stat, "max") == 0 ? "the highest" : strcmp(stat, "mean") == 0 ? "the mean" : stat);
        printf("%-9s %-12s %-4s %-20s %-17s %7s %9s %9s %9s %9s  %s\n", "VMID", "NODE", "TYPE",
               "NAME", "VERDICT", r[0].column, r[1].column, r[2].column, r[3].column, "ROWS",
               "REASONS");
        json_array_foreach(guests, i, g) {
                char rows[24] = "-";

                k = json_object_get(g, "history");
                if (k)
                        snprintf(rows, sizeof(rows), "%lld/%lld",
                                 (long long)json_integer_value(json_object_get(k, "rows_with_data")),
                                 (long long)json_integer_value(json_object_get(k, "rows")));
                printf("%-9lld %-12.12s %-4s %-20.20s %-17s ", (long long)jint(g, "vmid"),
                       jstr(g, "node"), jstr(g, "type"), jstr(g, "name"), jstr(g, "verdict"));
                if (k)
                        printf("%7.2f %9.0f %9.1f %9.1f %9s  ",
                               json_real_value(json_object_get(k, r[0].field)),
                               json_real_value(json_object_get(k, r[1].field)),
                               json_real_value(json_object_get(k, r[2].field)),
                               json_real_value(json_object_get(k, r[3].field)), rows);
                else
                        printf("%7s %9s %9s %9s %9s  ", "-", "-", "-", "-", rows);
                json_array_foreach(json_object_get(g, "reasons"), n, it)
                        printf("%s%s", n ? ", " : "", text_shown(json_string_value(it)));
                putchar('\n');
        }
        plan_history_flips(guests, c);
}

/* One poll for the guests, then each judged by its RRD over horizon_s:
 * the answer the history veto gives, now, without a window's wait. */
static int plan_history(struct observer *o, uint64_t horizon_s, bool json)
{
        uint64_t now = now_monotonic_usec();
        json_t *guests = json_array();
        int r = observer_poll(o, now);

        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(observer_error(o)));
                json_decref(guests);
                return r;
        }
        for (size_t i = 0; i < guest_table_count(observer_table(o)); i++)
                json_array_append_new(guests, plan_history_guest(o, i, horizon_s, now));
        if (json) {
                json_dumpf(guests, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
                fputc('\n', stdout);
        } else {
                const struct config rules = history_rules_of(observer_config(o));

                plan_history_print(guests, horizon_s, &rules);
        }
        json_decref(guests);
        return 0;
}

static int parse_plan(int argc, char **argv, bool *json, uint64_t *history_usec)
{
        const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "history", required_argument, NULL, 'H' },
                {},
        };
        int c;

        optind = 1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0) {
                if (c == 'j')
                        *json = true;
                else if (c == 'H' && (parse_duration(optarg, history_usec) < 0 ||
                                      *history_usec < USEC_PER_HOUR ||
                                      *history_usec > 365 * USEC_PER_DAY)) {
                        fprintf(stderr, "proxreap plan: --history '%s' is not a duration from 1h to 365d (like \"7d\")\n",
                                text_shown(optarg));
                        return -EINVAL;
                } else if (c != 'H') {
                        fprintf(stderr, "proxreap plan: unrecognized option '%s'\n", argv[optind - 1]);
                        command_help(stderr, find_command("plan"));
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "proxreap plan: unexpected argument '%s'\n", argv[optind]);
                command_help(stderr, find_command("plan"));
                return -EINVAL;
        }
        return 1;
}

static int cmd_plan(int argc, char **argv)
{
        struct observer *o = NULL;
        struct config *c = NULL;
        bool json = false;
        uint64_t end = 0, history = 0;
        int r;

        r = parse_plan(argc, argv, &json, &history);
        if (r <= 0)
                return EXIT_USAGE;
        if (load_config(&c) < 0)
                return EXIT_USAGE;
        config_warn_transport(c);
        r = observer_new(c, false, &o);
        if (r < 0)
                fprintf(stderr, "proxreap: cannot start: %s\n", strerror(-r));
        else if ((r = plan_probe(o)) >= 0 && history)
                r = plan_history(o, history / USEC_PER_SEC, json);
        else if (r >= 0 && (r = plan_observe(o, c, &end)) >= 0 &&
                 (r = plan_read_confs(o, end)) >= 0)
                r = plan_print(o, end, json);
        observer_free(o);
        config_free(c);
        return r == 0 ? 0 : 1;
}

/* --- status --- */

/* A string of the status file, for the terminal: the file is the daemon
 * user's to write, so every byte of it is shown inert. */
static const char *jstr(json_t *o, const char *key)
{
        return text_shown(json_string_value(json_object_get(o, key)));
}

static int64_t jint(json_t *o, const char *key)
{
        return (int64_t)json_integer_value(json_object_get(o, key));
}

static void when(int64_t t, char *buf, size_t size)
{
        if (t > 0)
                format_utc(t, buf, size);
        else
                snprintf(buf, size, "-");
}

/* pid is a proxreapd (its pid may have gone to another process since);
 * when /proc does not say (hidepid), that it exists. */
static bool pid_is_proxreapd(pid_t pid)
{
        char path[64], comm[32] = "";
        FILE *f;

        if (pid <= 0)
                return false;
        snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
        f = fopen(path, "re");
        if (!f)
                return kill(pid, 0) == 0 || errno == EPERM;
        if (!fgets(comm, sizeof(comm), f))
                comm[0] = '\0';
        fclose(f);
        comm[strcspn(comm, "\n")] = '\0';
        return strcmp(comm, "proxreapd") == 0;
}

/* Is the daemon that wrote doc still running, and writing? 0: yes; 1: its
 * pid is gone (or another program's now); 2: it lives but its status is
 * stale. */
static int daemon_state(json_t *doc, int64_t *age)
{
        pid_t pid = (pid_t)jint(doc, "pid");
        double interval = json_number_value(json_object_get(doc, "interval_seconds"));

        *age = jint(doc, "updated_epoch") ? now_epoch() - jint(doc, "updated_epoch") : 0;
        if (!pid_is_proxreapd(pid))
                return 1;
        return *age > (int64_t)(3 * interval) + 60 ? 2 : 0;
}

static void print_status_header(json_t *doc, int state, int64_t age)
{
        json_t *api = json_object_get(doc, "api"), *sum = json_object_get(doc, "summary");

        if (state == 1)
                printf("proxreapd is NOT RUNNING: pid %lld is gone; below is its last status, of %s (%llds ago)\n",
                       (long long)jint(doc, "pid"), jstr(doc, "updated"), (long long)age);
        else
                printf("proxreapd %s (pid %lld), mode %s, status of %s (%llds ago)%s\n",
                       jstr(doc, "version"), (long long)jint(doc, "pid"), jstr(doc, "mode"),
                       jstr(doc, "updated"), (long long)age,
                       state == 2 ? ": STALE, the daemon has stopped writing it" : "");
        if (state == 1)
                printf("API: not polled (the daemon is not running)\n");
        else if (json_is_true(json_object_get(api, "ok")))
                printf("API: ok, last successful poll %s\n", jstr(api, "last_success"));
        else
                printf("API: %s for %lld poll(s): %s (last success %s)\n",
                       strcmp(jstr(api, "state"), "auth-failed") == 0 ? "AUTHENTICATION FAILED"
                                                                      : "FAILING",
                       (long long)jint(api, "consecutive_failures"), jstr(api, "error"),
                       jstr(api, "last_success"));
        printf("tracking %lld guests, %lld idle, %lld active, %lld insufficient-data, %lld excluded\n",
               (long long)jint(sum, "tracked"), (long long)jint(sum, "idle"),
               (long long)jint(sum, "active"), (long long)jint(sum, "insufficient-data"),
               (long long)jint(sum, "excluded"));
}

static void print_ops_and_holds(json_t *rp)
{
        json_t *it;
        size_t i;
        char t[32], t2[32];

        json_array_foreach(json_object_get(rp, "in_flight"), i, it) {
                when(jint(it, "since"), t, sizeof(t));
                printf("  reaping  guest %lld ('%s') on '%s': %s, at %s since %s\n",
                       (long long)jint(it, "vmid"), jstr(it, "name"), jstr(it, "node"), jstr(it, "id"),
                       jstr(it, "state"), t);
        }
        json_array_foreach(json_object_get(rp, "marks"), i, it) {
                when(jint(it, "since"), t, sizeof(t));
                when(jint(it, "grace_ends"), t2, sizeof(t2));
                if (json_is_true(json_object_get(it, "cancelled")))
                        printf("  marked   guest %lld since %s: tag removed by someone, not reaped\n",
                               (long long)jint(it, "vmid"), t);
                else
                        printf("  marked   guest %lld since %s%s%s\n", (long long)jint(it, "vmid"), t,
                               jint(it, "grace_ends") ? ", grace ends " : "",
                               jint(it, "grace_ends") ? t2 : "");
        }
        json_array_foreach(json_object_get(rp, "holds"), i, it) {
                when(jint(it, "until"), t, sizeof(t));
                printf("  held     guest %lld: %s%s%s (%s)\n", (long long)jint(it, "vmid"),
                       jstr(it, "hold"), jint(it, "until") ? " until " : "",
                       jint(it, "until") ? t : "", jstr(it, "op"));
        }
}

/* What the reaper will do next, and why not more. */
static void print_reaper(json_t *doc)
{
        json_t *rp = json_object_get(doc, "reaper"), *b, *j, *l;

        if (!json_is_object(rp))
                return;
        b = json_object_get(rp, "breaker");
        j = json_object_get(rp, "journal");
        l = json_object_get(rp, "limits");
        if (json_is_true(json_object_get(b, "open"))) {
                const char *why = jstr(b, "why"), *said = "circuit breaker open: ";

                printf("reaper: BREAKER OPEN: %s\n",
                       strncmp(why, said, strlen(said)) == 0 ? why + strlen(said) : why);
        } else
                printf("reaper: breaker closed; %lld of %lld reaps in the last hour, at most %lld per poll\n",
                       (long long)jint(l, "reaps_last_hour"), (long long)jint(l, "max_per_hour"),
                       (long long)jint(l, "max_per_cycle"));
        if (json_string_value(json_object_get(j, "error")))
                printf("journal: CANNOT BE WRITTEN (%s): destructive work stopped\n", jstr(j, "error"));
        if (jint(j, "damaged_lines"))
                printf("journal: DAMAGED (%lld line(s)): reaping stopped; stop proxreapd and run 'proxreap journal repair'\n",
                       (long long)jint(j, "damaged_lines"));
        if (json_string_value(json_object_get(json_object_get(rp, "kept"), "error")))
                printf("kept guests: UNKNOWN (%s): no guest is marked or selected; fix or remove the file, then reload\n",
                       jstr(json_object_get(rp, "kept"), "error"));
        print_ops_and_holds(rp);
}

/* The table's verdict says what the reaper does with the guest. */
static void annotate_guests(json_t *doc)
{
        json_t *rp = json_object_get(doc, "reaper"), *g, *it;
        size_t i, k;

        json_array_foreach(json_object_get(doc, "guests"), i, g) {
                json_int_t vmid = json_integer_value(json_object_get(g, "vmid"));
                char v[64];

                json_array_foreach(json_object_get(rp, "in_flight"), k, it)
                        if (json_integer_value(json_object_get(it, "vmid")) == vmid) {
                                snprintf(v, sizeof(v), "reaping (%s)",
                                         json_string_value(json_object_get(it, "state")));
                                json_object_set_new(g, "verdict", json_string(v));
                        }
                json_array_foreach(json_object_get(rp, "holds"), k, it)
                        if (json_integer_value(json_object_get(it, "vmid")) == vmid) {
                                snprintf(v, sizeof(v), "%s (held)",
                                         json_string_value(json_object_get(g, "verdict")));
                                json_object_set_new(g, "verdict", json_string(v));
                        }
        }
}

static int cmd_status(int argc, char **argv)
{
        struct config *c = NULL;
        json_error_t err;
        bool json = false;
        int64_t age = 0;
        json_t *doc;
        int r, state;

        r = parse_json_flag(argc, argv, &json);
        if (r <= 0)
                return EXIT_USAGE;
        if (load_config_flags(CONFIG_OFFLINE, &c) < 0)
                return EXIT_USAGE;
        doc = status_read_file(c->status_file, &err);
        if (!doc || !json_is_object(doc)) {
                if (err.line == -2)
                        fprintf(stderr, "proxreap: no status file '%s': is proxreapd running?\n",
                                c->status_file);
                else if (err.line == -1)
                        fprintf(stderr, "proxreap: %s\n", err.text);
                else
                        fprintf(stderr, "proxreap: cannot read status file '%s': %s (line %d)\n",
                                c->status_file, err.text, err.line);
                json_decref(doc);
                config_free(c);
                return 1;
        }
        state = daemon_state(doc, &age);
        if (json) {
                json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
                fputc('\n', stdout);
        } else {
                print_status_header(doc, state, age);
                print_reaper(doc);
                putchar('\n');
                annotate_guests(doc);
                status_print_guests(stdout, json_object_get(doc, "guests"));
        }
        json_decref(doc);
        config_free(c);
        /* A daemon that is gone, or that stopped writing: not a status. */
        return state ? 1 : 0;
}

static int cmd_journal_main(int argc, char **argv)
{
        struct config *c = NULL;
        int r;

        if (load_config_flags(CONFIG_OFFLINE, &c) < 0)
                return EXIT_USAGE;
        r = cmd_journal(c, argc, argv);
        config_free(c);
        return r;
}

/* A command that talks to Proxmox VE: the configuration with its
 * credentials, and a client. */
static int with_api(int argc, char **argv,
                    int (*cmd)(const struct config *c, struct pve *p, int argc, char **argv))
{
        struct config *c = NULL;
        struct pve *p = NULL;
        int r;

        if (load_config(&c) < 0)
                return EXIT_USAGE;
        config_warn_transport(c);
        r = pve_new(c, &p);
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", strerror(-r));
                config_free(c);
                return 1;
        }
        r = cmd(c, p, argc, argv);
        pve_free(p);
        config_free(c);
        return r;
}

static int cmd_restore_main(int argc, char **argv)
{
        return with_api(argc, argv, cmd_restore);
}

static int cmd_abort_main(int argc, char **argv)
{
        return with_api(argc, argv, cmd_abort);
}

static int cmd_archives_main(int argc, char **argv)
{
        return with_api(argc, argv, cmd_archives);
}

static int cmd_help(int argc, char **argv);

static const struct command commands[] = {
        { "check-config", "check-config [--online]",
          "Validate the configuration; print 'configuration OK', or every problem as FILE:LINE: message (exit 2).",
          "\n  --online   then also test it against Proxmox VE: the URL, TLS, the token,\n"
          "             the node name, the archive storage and the privileges the mode\n"
          "             needs; each failure comes with its fix (exit 1 on a failure)\n",
          cmd_check_config },
        { "plan", "plan [--history DUR] [--json]",
          "Observe one full window now and print every guest's verdict, with its numbers and reasons.",
          "\n  --history DUR\n"
          "             judge every guest at once by its Proxmox VE RRD over DUR (1h to\n"
          "             365d, like \"8d\"): each idle rule by reap.history_statistic\n"
          "             over the RRD's rows, as the history veto (reap.history) sees\n"
          "             it, and which one threshold would change a verdict; no wait\n"
          "  --json     print the guests as JSON\n",
          cmd_plan },
        { "status", "status [--json]", "Show what the running proxreapd sees.",
          "\n  --json     print the status document as JSON\n", cmd_status },
        { "journal", "journal list [--vmid N] [--name NAME] [--json] | show ID [--json] | verify | repair",
          "Read the restore journal.",
          "\n  list       every op: id, guest, state, archive, size, when, why\n"
          "  --vmid N   (list) only the ops of the guest that had vmid N\n"
          "  --name NAME\n"
          "             (list) only the ops of the guest named NAME (in any case)\n"
          "  show ID    every record of one op, with the evidence\n"
          "  verify     check every record; exit 1 on damage\n"
          "  repair     write a clean journal of every intact record, keeping the\n"
          "             original beside it (stop proxreapd first)\n"
          "  --json     (list, show) print JSON\n",
          cmd_journal_main },
        { "restore", "restore ID|VMID|NAME [--vmid N] [--node NODE] [--storage S] [--pool P] [--start] [--yes]",
          "Bring a reaped guest back from its archive (named by its op id, or the vmid or name it had).",
          "\n  --vmid N        restore under vmid N instead of the original one\n"
          "  --node NODE     restore on NODE instead of the node its archive is on\n"
          "  --storage S     put its disks on storage S\n"
          "  --pool P        put it into pool P instead of its own ('' for none)\n"
          "  --start         start it once it is restored\n"
          "  --yes           do not ask (needed when stdin is not a terminal)\n",
          cmd_restore_main },
        { "archives", "archives [--json]",
          "List every reaped guest the archives on the archive storage tell of, from any node.",
          "\nFound by the notes and protection proxreap gives each archive: a guest reaped on a\n"
          "node that is gone, or whose journal was lost, is listed too, and 'proxreap restore'\n"
          "brings it back from here.\n\n"
          "  --json     print the archives as JSON\n",
          cmd_archives_main },
        { "abort", "abort ID|VMID|NAME",
          "Call off a reap under way before its destroy, and put the guest back as it was.",
          "\nThe guest is started again if proxreap stopped it, and its tags are removed: by the\n"
          "running proxreapd, or by this command when none runs. After the destroy was sent,\n"
          "bring the guest back with 'proxreap restore' instead.\n",
          cmd_abort_main },
        { "help", "help [COMMAND]", "Show the help of proxreap or of one command.", "",
          cmd_help },
};

static const struct command *find_command(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(name, commands[i].name) == 0)
                        return &commands[i];
        return NULL;
}

static void usage(FILE *f)
{
        fprintf(f, "usage: proxreap [-c FILE] COMMAND [OPTIONS]\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %s\n      %s\n", commands[i].usage, commands[i].about);
        fprintf(f, "\nOptions (before or after the command):\n"
                   "  -c, --config FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
                   "  -h, --help         show this help, or with a command its help\n"
                   "  -V, --version      show the version\n"
                   "\n'proxreap help COMMAND' or 'proxreap COMMAND --help' shows a command's help.\n");
}

static int cmd_help(int argc, char **argv)
{
        const struct command *cmd = argc > 1 ? find_command(argv[1]) : NULL;

        if (argc > 2 || (argc == 2 && !cmd)) {
                fprintf(stderr, "proxreap help: no command '%s'\n", text_shown(argv[argc - 1]));
                usage(stderr);
                return EXIT_USAGE;
        }
        if (cmd)
                command_help(stdout, cmd);
        else
                usage(stdout);
        return 0;
}

static int parse_global(int argc, char **argv)
{
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        int c;

        /* '+': stop at the command; its options are its own. */
        while ((c = getopt_long(argc, argv, "+c:hV", opts, NULL)) >= 0)
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("proxreap " PROXREAP_VERSION "\n");
                        return 0;
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        return 1;
}

int main(int argc, char **argv)
{
        const struct command *cmd;
        bool help = false;
        int r;

        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* it may hold the API credential */
        log_setup("proxreap", LOG_TARGET_STDERR, LOG_INFO);
        r = parse_global(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : 0;
        if (optind >= argc) {
                fprintf(stderr, "proxreap: missing command\n");
                usage(stderr);
                return EXIT_USAGE;
        }
        cmd = find_command(argv[optind]);
        if (!cmd) {
                fprintf(stderr, "proxreap: unknown command '%s'\n", text_shown(argv[optind]));
                usage(stderr);
                return EXIT_USAGE;
        }
        argc -= optind;
        argv += optind;
        if (take_common_options(&argc, argv, &help) < 0)
                return EXIT_USAGE;
        if (help) {
                command_help(stdout, cmd);
                return 0;
        }
        return cmd->fn(argc, argv);
}
