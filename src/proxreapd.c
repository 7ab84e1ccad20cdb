/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * proxreapd: the daemon. An sd-event loop with one timer per
 * observe.interval; each tick polls the cluster, judges every guest, logs
 * what changed and rewrites the status file. SIGHUP re-reads the
 * configuration (a broken one is reported and the old one kept);
 * SIGTERM/SIGINT stop cleanly.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "log.h"
#include "notify.h"
#include "observe.h"
#include "preflight.h"
#include "reaper.h"
#include "status.h"
#include "util.h"

struct daemon {
        const char *config_path;
        struct config *config;
        struct observer *observer;
        struct reaper *reaper; /* modes mark and reap */
        struct notifier *notifier; /* notify.webhook_url */
        /* The preflight checks (preflight.h) have passed for the running
         * configuration; until then, the reaper waits. */
        bool checked;
        sd_event *event;
        sd_event_source *timer;
        sd_event_source *saga_timer; /* the next saga step */
        uint64_t next_usec; /* monotonic target of the next poll */
        bool ready; /* READY=1 sent */
        bool overrunning; /* the last poll did not finish within the interval */
        int status_error; /* last status file error, logged on change */
        int metrics_error; /* the same for the Prometheus textfile */
};

/* How long a stop waits for webhook events still queued. */
#define NOTIFY_FLUSH_ON_STOP_USEC (2 * USEC_PER_SEC)

static void usage(FILE *f)
{
        fprintf(f,
                "usage: proxreapd [-c FILE] [--foreground] [--debug]\n"
                "\n"
                "Watch a Proxmox VE cluster, decide which guests are idle and, as\n"
                "reap.mode says, report (observe), tag (mark) or reclaim them (reap).\n"
                "\n"
                "  -c, --config FILE  configuration file (default " CONFIG_DEFAULT_PATH ")\n"
                "  -f, --foreground   log to stderr instead of the journal\n"
                "  -d, --debug        also log debug messages\n"
                "  -h, --help         show this help\n"
                "  -V, --version      show the version\n");
}

static void print_config_errors(const char *errors)
{
        /* One journal entry per problem, each "FILE:LINE: message", which
         * the loader escaped already. */
        const char *p = errors;
        char line[2048];

        while (p && *p) {
                size_t n = strcspn(p, "\n");

                snprintf(line, sizeof(line), "%.*s", (int)n, p);
                log_inert(LOG_ERR, line);
                p += n + (p[n] == '\n');
        }
}

/* A file that cannot be written is logged when that starts and ends, not
 * at every poll. */
static void note_write(const char *what, const char *path, int r, int *last)
{
        if (r < 0 && r != *last)
                log_warning("cannot write %s '%s': %s, ignoring", what, path, strerror(-r));
        else if (r == 0 && *last != 0)
                log_info("%s '%s' written again", what, path);
        *last = r;
}

static void write_metrics(struct daemon *d)
{
        const struct pve_counters *pc = pve_counters(observer_pve(d->observer));
        struct notify_counters nc;
        struct ops_totals ot;
        struct status_metrics m = {
                .summary = observer_summary(d->observer),
                .mode = d->config->mode,
                .api_requests = pc->requests,
                .api_errors = pc->errors,
                .state_bytes = observer_state_bytes(d->observer),
        };

        if (d->reaper) {
                ops_totals(reaper_ops(d->reaper), &ot);
                m.ops = &ot;
                m.journal_ok = reaper_journal_failed(d->reaper) == 0;
        }
        if (d->notifier) {
                notifier_counters(d->notifier, &nc);
                m.notify = &nc;
        }
        note_write("Prometheus file", d->config->prometheus_file,
                   status_write_prometheus(d->config->prometheus_file, &m), &d->metrics_error);
}

static void write_status(struct daemon *d, uint64_t now)
{
        json_t *reaper = d->reaper ? reaper_status_json(d->reaper, now) : NULL;

        note_write("status file", d->config->status_file,
                   status_write_file(d->config->status_file, d->observer, reaper, now),
                   &d->status_error);
        json_decref(reaper);
        if (d->config->prometheus_file)
                write_metrics(d);
}

static void schedule_saga(struct daemon *d, uint64_t next)
{
        if (next == UINT64_MAX) {
                sd_event_source_set_enabled(d->saga_timer, SD_EVENT_OFF);
                return;
        }
        sd_event_source_set_time(d->saga_timer, next);
        sd_event_source_set_enabled(d->saga_timer, SD_EVENT_ONESHOT);
}

static int on_saga_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct daemon *d = userdata;

        (void)s;
        schedule_saga(d, reaper_step(d->reaper, observer_pve(d->observer), usec));
        return 0;
}

static void log_check(void *userdata, const struct preflight_item *it)
{
        (void)userdata;
        switch (it->result) {
        case PREFLIGHT_FAIL:
                log_error("check %s: %s%s%s", it->check, it->text, it->fix[0] ? "; fix: " : "",
                          it->fix);
                break;
        case PREFLIGHT_WARN:
                log_warning("check %s: %s%s%s", it->check, it->text, it->fix[0] ? "; fix: " : "",
                            it->fix);
                break;
        default:
                log_info("check %s: %s", it->check, it->text);
        }
}

/* The preflight checks of the running configuration, until they have all
 * run once. A lasting failure (no such node, no such storage) stops the
 * daemon with status 2, which the unit does not restart; one that may pass
 * (the API down) is tried again after the next poll. */
static int check_config(struct daemon *d)
{
        const struct observe_summary *s = observer_summary(d->observer);
        struct preflight_polled polled = { .guests = (unsigned)s->tracked };
        const struct guest_table *t = observer_table(d->observer);
        struct preflight_summary sum;

        if (d->checked)
                return 0;
        for (size_t i = 0; i < guest_table_count(t); i++)
                polled.in_scope += config_node_in_scope(d->config, guest_table_at(t, i)->node);
        preflight_run(d->config, observer_pve(d->observer), &polled, log_check, NULL, &sum);
        if (sum.lasting) {
                log_error("'%s' cannot work with this Proxmox VE (%s): fix it, then start proxreapd again",
                          d->config_path, sum.first_failure);
                return -EINVAL;
        }
        d->checked = sum.complete && sum.failed == 0;
        if (!d->checked)
                log_warning("the checks of the configuration did not pass yet; trying again after the next poll");
        return 0;
}

static void after_poll(struct daemon *d, int r, uint64_t now)
{
        const struct observe_summary *s = observer_summary(d->observer);
        char line[640], reap[300];
        size_t n;

        if (r >= 0 && check_config(d) < 0) {
                sd_notify(false, "STOPPING=1\nSTATUS=the configuration cannot work, stopping");
                sd_event_exit(d->event, 2);
                return;
        }
        if (r >= 0 && d->reaper && d->checked) {
                reaper_cycle(d->reaper, d->observer, now);
                schedule_saga(d, reaper_step(d->reaper, observer_pve(d->observer),
                                             now_monotonic_usec()));
        }
        status_line(s, line, sizeof(line));
        if (d->reaper) {
                reaper_describe(d->reaper, reap, sizeof(reap));
                n = strlen(line);
                snprintf(line + n, sizeof(line) - n, "; %s", reap);
        }
        if (r >= 0 && !d->ready) {
                d->ready = true;
                log_notice("first poll done, %s", line);
                sd_notifyf(false, "READY=1\nSTATUS=%s", line);
        } else
                sd_notifyf(false, "STATUS=%s", line);
        write_status(d, now);
}

static int schedule(struct daemon *d)
{
        uint64_t now = now_monotonic_usec(), interval = d->config->interval_usec;

        /* Fixed rate, so samples stay evenly spaced; a poll that overran
         * skips the ticks it missed instead of bunching them up. */
        d->next_usec += interval;
        if (d->next_usec <= now)
                d->next_usec = now + interval - (now - d->next_usec) % interval;
        return sd_event_source_set_time(d->timer, d->next_usec);
}

/* A poll is due every interval; one that is not done (files written)
 * before the next is due makes that one late. Counted for the status file
 * and the metrics (proxreap_poll_overruns_total is what to alert on);
 * logged at notice when that starts and ends, not at every poll. */
static void note_cycle(struct daemon *d, uint64_t due_usec)
{
        uint64_t took = now_monotonic_usec() - due_usec, interval = d->config->interval_usec;
        bool overrun = observer_note_cycle(d->observer, took, interval);

        if (overrun && !d->overrunning)
                log_notice("a poll took %.3fs, longer than the %.3gs interval: "
                           "the next poll starts late",
                           (double)took / 1e6, (double)interval / 1e6);
        else if (!overrun && d->overrunning)
                log_notice("polls finish within the %.3gs interval again", (double)interval / 1e6);
        d->overrunning = overrun;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct daemon *d = userdata;
        /* The sample is stamped with its tick, not the wake-up time: that
         * keeps samples exactly one interval apart, so a window holds
         * exactly window/interval of them. */
        uint64_t now = usec;
        int r;

        (void)s;
        r = observer_poll(d->observer, now);
        if (r == -ENOMEM) {
                log_error("out of memory while polling, stopping");
                return sd_event_exit(d->event, 1);
        }
        after_poll(d, r, now);
        note_cycle(d, usec);
        r = schedule(d);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

static int start_reaper(struct daemon *d, const struct config *c)
{
        char err[1024] = "";
        int r = reaper_new(c, &d->reaper, err, sizeof(err));

        if (r == -EBUSY)
                log_error("%s", err);
        else if (r < 0)
                log_error("cannot open journal '%s': %s", c->journal_file,
                          err[0] ? err : strerror(-r));
        if (r < 0)
                return r;
        reaper_set_notifier(d->reaper, d->notifier);
        /* The breaker's last hour, from the previous run's status file;
         * the guests an operator kept, from kept.json (reaper_resume()). */
        {
                json_error_t e;
                json_t *doc = status_read_file(c->status_file, &e);

                reaper_resume(d->reaper, doc, now_monotonic_usec());
                json_decref(doc);
        }
        return 0;
}

/* A reload with other webhook settings gets a new notifier; events still
 * queued for the old one get a moment to go out. */
static int swap_notifier(struct daemon *d, const struct config *c)
{
        struct notifier *n = NULL;
        int r;

        if (notifier_same_config(d->config, c))
                return 0;
        r = notifier_new(c, &n);
        if (r < 0)
                return r;
        d->notifier = notifier_free(d->notifier, USEC_PER_SEC / 2);
        d->notifier = n;
        if (d->reaper)
                reaper_set_notifier(d->reaper, n);
        return 0;
}

/* Runs the checks start-up runs on a new configuration, with its own API
 * client, each request tried once (a reload holds the event loop: it must
 * not outlast the watchdog). It is taken only when every check passed: a
 * reload never adopts a configuration that a later check could find wrong
 * for good (that would stop the daemon). Else why not in err. */
static int check_new_config(const struct config *c, struct pve *p, char *err, size_t errsz)
{
        struct preflight_summary sum;

        pve_set_retries(p, 0);
        preflight_run(c, p, NULL, log_check, NULL, &sum);
        pve_set_retries(p, c->retries);
        if (sum.failed == 0 && sum.complete)
                return 0;
        if (sum.failed > 1)
                snprintf(err, errsz, "%s (and %u more failed check%s)", sum.first_failure,
                         sum.failed - 1, sum.failed == 2 ? "" : "s");
        else
                snprintf(err, errsz, "%s", sum.first_failure);
        if (!sum.lasting)
                snprintf(err + strlen(err), errsz - strlen(err),
                         " (this may pass: run 'systemctl reload proxreapd' again)");
        return -EINVAL;
}

/* What a reload cannot change in a running daemon. */
static int reload_changes_what_it_cannot(const struct daemon *d, const struct config *c,
                                         char *err, size_t errsz)
{
        if (d->reaper && strcmp(c->journal_file, d->config->journal_file) != 0) {
                snprintf(err, errsz,
                         "'reap.journal' changed from '%s' to '%s': another journal takes a restart ('systemctl restart proxreapd'), so that no reap under way is left in the old one",
                         d->config->journal_file, c->journal_file);
                return -EINVAL;
        }
        return 0;
}

/* Switches the daemon to c, whose client p the observer takes; every
 * preflight check passed. */
static int switch_config(struct daemon *d, struct config *c, struct pve *p)
{
        bool new_interval = c->interval_usec != d->config->interval_usec;
        int r;

        if (c->mode != REAP_MODE_OBSERVE && !d->reaper && start_reaper(d, c) < 0)
                return -EIO;
        r = observer_set_config(d->observer, c, p);
        if (r < 0)
                return r;
        if (swap_notifier(d, c) < 0)
                log_error("reload: cannot start the webhook sender, keeping the old one");
        if (d->reaper)
                reaper_set_config(d->reaper, c);
        config_free(d->config);
        d->config = c;
        d->checked = true;
        config_warn_transport(c);
        if (new_interval) {
                d->next_usec = now_monotonic_usec();
                sd_event_source_set_time(d->timer, d->next_usec);
        }
        return 0;
}

/* SIGHUP: a new configuration is loaded and checked like at start before
 * the daemon switches to it. A reload that fails keeps the running
 * configuration and says why; it never stops the daemon. */
static int reload(struct daemon *d)
{
        struct config *c = NULL;
        struct pve *p = NULL;
        char *errors = NULL, err[1024] = "";
        int r;

        sd_notify(false, "RELOADING=1\nSTATUS=reloading configuration");
        r = config_load(d->config_path, &c, &errors);
        if (r < 0) {
                print_config_errors(errors);
                snprintf(err, sizeof(err), "'%s' is invalid", d->config_path);
                free(errors);
        } else if ((r = pve_new(c, &p)) < 0)
                snprintf(err, sizeof(err), "%s", strerror(-r));
        else if ((r = reload_changes_what_it_cannot(d, c, err, sizeof(err))) >= 0 &&
                 (r = check_new_config(c, p, err, sizeof(err))) >= 0 &&
                 (r = switch_config(d, c, p)) < 0)
                snprintf(err, sizeof(err), "%s", r == -EIO ? "the journal cannot be opened"
                                                            : strerror(-r));
        if (r < 0) {
                log_error("reload failed: %s, keeping the running configuration", err);
                /* switch_config() takes c and p only when it succeeds */
                pve_free(p);
                config_free(c);
        } else
                log_notice("configuration reloaded from '%s'", d->config_path);
        /* Ready again only if it ever was: a reload does not make an API
         * that never answered usable. */
        if (d->ready)
                sd_notify(false, "READY=1");
        else
                sd_notify(false, "STATUS=reloaded, waiting for the first successful poll");
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
        struct daemon *d = userdata;

        (void)s;
        if (si->ssi_signo == SIGHUP)
                return reload(d);
        log_notice("received %s, stopping", strsignal((int)si->ssi_signo));
        sd_notify(false, "STOPPING=1\nSTATUS=stopping");
        return sd_event_exit(d->event, 0);
}

static int setup_loop(struct daemon *d)
{
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        r = sd_event_default(&d->event);
        if (r < 0)
                return r;
        const int signals[] = { SIGHUP, SIGTERM, SIGINT };
        for (size_t i = 0; i < ELEMENTSOF(signals); i++) {
                sd_event_source *src = NULL;

                r = sd_event_add_signal(d->event, &src, signals[i], on_signal, d);
                if (r < 0)
                        return r;
                /* A signal that arrived during a blocking step is handled
                 * before any further step: a stop lands between two whole,
                 * journaled steps, never starts another. */
                r = sd_event_source_set_priority(src, SD_EVENT_PRIORITY_IMPORTANT);
                sd_event_source_set_floating(src, true);
                sd_event_source_unref(src);
                if (r < 0)
                        return r;
        }
        /* Pings WATCHDOG=1 by itself when WATCHDOG_USEC is set. */
        r = sd_event_set_watchdog(d->event, true);
        if (r < 0)
                return r;
        d->next_usec = now_monotonic_usec();
        r = sd_event_add_time(d->event, &d->timer, CLOCK_MONOTONIC, d->next_usec, 1, on_timer, d);
        if (r < 0)
                return r;
        r = sd_event_add_time(d->event, &d->saga_timer, CLOCK_MONOTONIC, UINT64_MAX, 1,
                              on_saga_timer, d);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(d->saga_timer, SD_EVENT_OFF);
        if (r < 0)
                return r;
        return sd_event_source_set_enabled(d->timer, SD_EVENT_ONESHOT);
}

static int parse_args(int argc, char **argv, struct daemon *d, bool *foreground, bool *debug)
{
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "foreground", no_argument, NULL, 'f' },
                { "debug", no_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:fdhV", opts, NULL)) >= 0)
                switch (c) {
                case 'c':
                        d->config_path = optarg;
                        break;
                case 'f':
                        *foreground = true;
                        break;
                case 'd':
                        *debug = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("proxreapd " PROXREAP_VERSION "\n");
                        return 0;
                default:
                        usage(stderr);
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "proxreapd: unexpected argument '%s'\n", argv[optind]);
                usage(stderr);
                return -EINVAL;
        }
        return 1;
}

static int run(struct daemon *d)
{
        char *errors = NULL;
        unsigned n;
        int r;

        r = config_load(d->config_path, &d->config, &errors);
        if (r < 0) {
                if (errors)
                        print_config_errors(errors);
                else
                        log_error("cannot load '%s': %s", d->config_path, strerror(-r));
                free(errors);
                return 2;
        }
        config_warn_transport(d->config);
        r = notifier_new(d->config, &d->notifier);
        if (r < 0) {
                log_error("cannot start the webhook sender: %s", strerror(-r));
                return 1;
        }
        /* A damaged journal stops the daemon before it touches anything.
         * Reaps left under way by an earlier run in reap mode are finished
         * in any mode: their guests are stopped. */
        n = d->config->mode == REAP_MODE_OBSERVE ? reaper_unfinished(d->config->journal_file) : 0;
        if (n)
                log_notice("journal '%s' holds %u reap%s under way: finishing %s (%s mode starts none)",
                           d->config->journal_file, n, n == 1 ? "" : "s", n == 1 ? "it" : "them",
                           reap_mode_to_string(d->config->mode));
        if (d->config->mode != REAP_MODE_OBSERVE || n) {
                r = start_reaper(d, d->config);
                /* Another daemon has the journal: starting again will not
                 * help while it runs (the unit's final exit status). */
                if (r < 0)
                        return r == -EBUSY ? 2 : 1;
        }
        r = observer_new(d->config, true, &d->observer);
        if (r >= 0)
                r = setup_loop(d);
        if (r < 0) {
                log_error("cannot start: %s", strerror(-r));
                return 1;
        }
        log_notice("proxreapd " PROXREAP_VERSION " started in %s mode, polling '%s' every %.3gs",
                   reap_mode_to_string(d->config->mode), d->config->api_url,
                   (double)d->config->interval_usec / 1e6);
        r = sd_event_loop(d->event);
        if (r < 0) {
                log_error("event loop failed: %s", strerror(-r));
                return 1;
        }
        return r;
}

int main(int argc, char **argv)
{
        struct daemon d = { .config_path = CONFIG_DEFAULT_PATH };
        bool foreground = false, debug = false;
        int r;

        /* The process holds the API credential: no core dumps, no ptrace
         * by other processes of the same user. */
        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        r = parse_args(argc, argv, &d, &foreground, &debug);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        log_setup("proxreapd", foreground ? LOG_TARGET_STDERR : LOG_TARGET_JOURNAL,
                  debug ? LOG_DEBUG : LOG_INFO);
        r = run(&d);
        sd_event_source_unref(d.timer);
        sd_event_source_unref(d.saga_timer);
        reaper_free(d.reaper);
        notifier_free(d.notifier, NOTIFY_FLUSH_ON_STOP_USEC);
        sd_event_unref(d.event);
        observer_free(d.observer);
        config_free(d.config);
        return r;
}
