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
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "observe.h"
#include "proxreap_ops.h"
#include "status.h"
#include "util.h"

#define EXIT_USAGE 2

static const char *config_path = CONFIG_DEFAULT_PATH;

static void usage(FILE *f)
{
        fprintf(f,
                "usage: proxreap [-c FILE] COMMAND [OPTIONS]\n"
                "\n"
                "Commands:\n"
                "  check-config     validate the configuration and print 'configuration OK'\n"
                "  plan [--json]    observe one full window now and print every guest's verdict\n"
                "  status [--json]  show what the running proxreapd sees\n"
                "  journal list [--json]     every reap: id, guest, state, archive, size, when\n"
                "  journal show ID [--json]  every record of one reap, with the evidence\n"
                "  journal verify            check the journal; exit 1 on damage\n"
                "  restore ID [--vmid N] [--node NODE] [--storage S] [--pool P] [--start] [--yes]\n"
                "                   bring a reaped guest back from its archive\n"
                "\n"
                "Options:\n"
                "  -c, --config FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
                "  -h, --help         show this help\n"
                "  -V, --version      show the version\n");
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

/* Parses the only option a subcommand takes: --json. */
static int parse_json_flag(int argc, char **argv, const char *cmd, bool *json)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "+jh", opts, NULL)) >= 0)
                switch (c) {
                case 'j':
                        *json = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "proxreap %s: unexpected argument '%s'\n", cmd, argv[optind]);
                usage(stderr);
                return -EINVAL;
        }
        return 1;
}

static int cmd_check_config(int argc, char **argv)
{
        struct config *c;

        if (argc > 1) {
                fprintf(stderr, "proxreap check-config: unexpected argument '%s'\n", argv[1]);
                usage(stderr);
                return EXIT_USAGE;
        }
        if (load_config(&c) < 0)
                return EXIT_USAGE;
        config_free(c);
        printf("configuration OK\n");
        return 0;
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
                fprintf(stderr, "proxreap: cannot use the Proxmox API: %s\n", observer_error(o));
                return r;
        }
        if (isatty(STDERR_FILENO))
                fprintf(stderr, "proxreap: connected to Proxmox VE %s\n", v.version);
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
                                observer_error(o));
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
 * archive would not hold whole is excluded, with the reason (the daemon
 * judges it the same way before it marks or reaps). */
static int plan_read_confs(struct observer *o, uint64_t now)
{
        const struct guest_table *t = observer_table(o);
        struct window_stats s;
        struct verdict v;

        for (size_t i = 0; i < guest_table_count(t); i++) {
                observer_judge_at(o, i, now, &v, &s);
                if (v.kind == VERDICT_IDLE && observer_read_conf(o, i, now, &v) < 0)
                        fprintf(stderr, "proxreap: warning: guest %u: %s\n",
                                (unsigned)guest_table_at(t, i)->vmid, observer_error(o));
        }
        return 0;
}

static int plan_print(struct observer *o, uint64_t now, bool json)
{
        json_t *guests = status_guests_json(o, now);
        char line[256];

        if (!guests) {
                fprintf(stderr, "proxreap: out of memory\n");
                return 1;
        }
        if (json) {
                json_dumpf(guests, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
                fputc('\n', stdout);
        } else {
                status_print_guests(stdout, guests);
                status_line(observer_summary(o), line, sizeof(line));
                printf("\n%s\n", line);
        }
        json_decref(guests);
        return 0;
}

static int cmd_plan(int argc, char **argv)
{
        struct observer *o = NULL;
        struct config *c = NULL;
        bool json = false;
        uint64_t end = 0;
        int r;

        r = parse_json_flag(argc, argv, "plan", &json);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : 0;
        if (load_config(&c) < 0)
                return EXIT_USAGE;
        r = observer_new(c, false, &o);
        if (r < 0)
                fprintf(stderr, "proxreap: cannot start: %s\n", strerror(-r));
        else if ((r = plan_probe(o)) >= 0 && (r = plan_observe(o, c, &end)) >= 0 &&
                 (r = plan_read_confs(o, end)) >= 0)
                r = plan_print(o, end, json);
        observer_free(o);
        config_free(c);
        return r == 0 ? 0 : 1;
}

/* --- status --- */

static const char *jstr(json_t *o, const char *key)
{
        const char *s = json_string_value(json_object_get(o, key));

        return s ? s : "";
}

static void print_status_header(json_t *doc)
{
        json_t *api = json_object_get(doc, "api"), *sum = json_object_get(doc, "summary");

        printf("proxreapd %s (pid %lld), mode %s, status of %s\n", jstr(doc, "version"),
               (long long)json_integer_value(json_object_get(doc, "pid")), jstr(doc, "mode"),
               jstr(doc, "updated"));
        if (json_is_true(json_object_get(api, "ok")))
                printf("API: ok, last successful poll %s\n", jstr(api, "last_success"));
        else
                printf("API: FAILING for %lld poll(s): %s (last success %s)\n",
                       (long long)json_integer_value(json_object_get(api, "consecutive_failures")),
                       jstr(api, "error"), jstr(api, "last_success"));
        printf("tracking %lld guests, %lld idle, %lld active, %lld insufficient-data, %lld excluded\n\n",
               (long long)json_integer_value(json_object_get(sum, "tracked")),
               (long long)json_integer_value(json_object_get(sum, "idle")),
               (long long)json_integer_value(json_object_get(sum, "active")),
               (long long)json_integer_value(json_object_get(sum, "insufficient-data")),
               (long long)json_integer_value(json_object_get(sum, "excluded")));
}

static int cmd_status(int argc, char **argv)
{
        struct config *c = NULL;
        json_error_t err;
        bool json = false;
        json_t *doc;
        int r;

        r = parse_json_flag(argc, argv, "status", &json);
        if (r <= 0)
                return r < 0 ? EXIT_USAGE : 0;
        if (load_config_flags(CONFIG_OFFLINE, &c) < 0)
                return EXIT_USAGE;
        doc = json_load_file(c->status_file, 0, &err);
        if (!doc || !json_is_object(doc)) {
                if (access(c->status_file, F_OK) < 0)
                        fprintf(stderr, "proxreap: no status file '%s': is proxreapd running?\n",
                                c->status_file);
                else
                        fprintf(stderr, "proxreap: cannot read status file '%s': %s (line %d)\n",
                                c->status_file, err.text, err.line);
                json_decref(doc);
                config_free(c);
                return 1;
        }
        if (json) {
                json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
                fputc('\n', stdout);
        } else {
                print_status_header(doc);
                status_print_guests(stdout, json_object_get(doc, "guests"));
        }
        json_decref(doc);
        config_free(c);
        return 0;
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

static int cmd_restore_main(int argc, char **argv)
{
        struct config *c = NULL;
        struct pve *p = NULL;
        int r;

        if (load_config(&c) < 0)
                return EXIT_USAGE;
        r = pve_new(c, &p);
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", strerror(-r));
                config_free(c);
                return 1;
        }
        r = cmd_restore(c, p, argc, argv);
        pve_free(p);
        config_free(c);
        return r;
}

static const struct {
        const char *name;
        int (*fn)(int argc, char **argv);
} commands[] = {
        { "check-config", cmd_check_config },
        { "plan", cmd_plan },
        { "status", cmd_status },
        { "journal", cmd_journal_main },
        { "restore", cmd_restore_main },
};

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
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(argv[optind], commands[i].name) == 0)
                        return commands[i].fn(argc - optind, argv + optind);
        fprintf(stderr, "proxreap: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
}
