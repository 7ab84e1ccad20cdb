/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "observe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guestconf.h"
#include "log.h"
#include "util.h"
#include "vmidmap.h"

/* What the configuration of a guest said when it was read. */
struct conf_entry {
        uint32_t vmid;
        uint8_t type; /* enum guest_type: a vmid taken by a guest of another type is not it */
        uint64_t read_usec;
        struct conf_facts facts;
};

struct observer {
        const struct config *config;
        struct pve *pve;
        struct guest_table *table;
        bool log_changes;
        uint64_t now_usec; /* of the poll in progress */
        unsigned last_rejected;
        char last_reject[256];
        struct observe_summary sum;
        /* The window statistics of the guest at each position of the
         * table, computed by the last evaluation at stats_usec (0: none
         * valid). */
        struct window_stats *stats;
        size_t stats_cap;
        uint64_t stats_usec;
        /* struct conf_entry of the guests whose configuration was read */
        struct vmid_map confs;
};

static int observer_make_table(struct observer *o, const struct config *c)
{
        struct guest_table *t;
        int r = guest_table_new(config_window_samples(c), c->window_usec, &t);

        if (r < 0)
                return r;
        guest_table_set_stale_after(t, c->stale_after_usec);
        guest_table_free(o->table);
        o->table = t;
        o->stats_usec = 0;
        return 0;
}

int observer_new(const struct config *c, bool log_changes, struct observer **ret)
{
        struct observer *o = calloc(1, sizeof(*o));
        int r;

        if (!o)
                return -ENOMEM;
        o->config = c;
        o->log_changes = log_changes;
        o->confs = (struct vmid_map)VMID_MAP_INIT(struct conf_entry);
        r = pve_new(c, &o->pve);
        if (r >= 0)
                r = observer_make_table(o, c);
        if (r < 0) {
                observer_free(o);
                return r;
        }
        *ret = o;
        return 0;
}

struct observer *observer_free(struct observer *o)
{
        if (!o)
                return NULL;
        pve_free(o->pve);
        guest_table_free(o->table);
        free(o->stats);
        vmid_map_free(&o->confs);
        free(o);
        return NULL;
}

int observer_set_config(struct observer *o, const struct config *c, struct pve *p)
{
        struct pve *made = NULL;
        int r;

        if (!p && (r = pve_new(c, &made)) < 0)
                return r;
        if (c->interval_usec != o->config->interval_usec || c->window_usec != o->config->window_usec) {
                r = observer_make_table(o, c);
                if (r < 0) {
                        pve_free(made); /* a p given stays the caller's */
                        return r;
                }
                log_notice("interval or window changed: observation starts over");
        }
        if (made)
                p = made;
        guest_table_set_stale_after(o->table, c->stale_after_usec);
        pve_free(o->pve);
        o->pve = p;
        o->config = c;
        /* The CPU threshold is part of the statistics. */
        o->stats_usec = 0;
        return 0;
}

int observer_probe(struct observer *o, struct pve_version *ret)
{
        return pve_get_version(o->pve, ret);
}

const struct observe_summary *observer_summary(const struct observer *o)
{
        return &o->sum;
}

const char *observer_error(const struct observer *o)
{
        return pve_error(o->pve);
}

const struct guest_table *observer_table(const struct observer *o)
{
        return o->table;
}

const struct config *observer_config(const struct observer *o)
{
        return o->config;
}

const struct conf_facts *observer_conf(const struct observer *o, uint32_t vmid,
                                      enum guest_type t, uint64_t *ret_read_usec)
{
        const struct conf_entry *e = vmid_map_find(&o->confs, vmid);

        if (!e || e->type != (uint8_t)t)
                return NULL;
        if (ret_read_usec)
                *ret_read_usec = e->read_usec;
        return &e->facts;
}

int observer_set_conf(struct observer *o, uint32_t vmid, enum guest_type t,
                      const struct conf_facts *f, uint64_t read_usec)
{
        struct conf_entry *e = vmid_map_find(&o->confs, vmid);

        if (!e && !(e = vmid_map_add(&o->confs, vmid)))
                return -ENOMEM;
        e->type = (uint8_t)t;
        e->read_usec = read_usec;
        e->facts = *f;
        return 0;
}

void observer_forget_conf(struct observer *o, uint32_t vmid)
{
        vmid_map_drop(&o->confs, vmid);
}

static void facts_of(const struct observer *o, const struct guest *g, struct guest_facts *ret)
{
        guest_facts_from(g, ret);
        ret->conf = observer_conf(o, g->vmid, (enum guest_type)g->type, NULL);
}

void observer_judge(const struct observer *o, const struct guest *g, uint64_t now_usec,
                    struct verdict *ret_verdict, struct window_stats *ret_stats)
{
        struct guest_facts f;

        facts_of(o, g, &f);
        window_stats(o->table, g, now_usec, o->config->cpu_percent, ret_stats);
        policy_decide(o->config, &f, ret_stats, ret_verdict);
}

void observer_judge_at(const struct observer *o, size_t i, uint64_t now_usec,
                       struct verdict *ret_verdict, struct window_stats *ret_stats)
{
        const struct guest *g = guest_table_at(o->table, i);
        struct guest_facts f;

        if (o->stats_usec == 0 || o->stats_usec != now_usec ||
            i >= guest_table_count(o->table)) {
                observer_judge(o, g, now_usec, ret_verdict, ret_stats);
                return;
        }
        facts_of(o, g, &f);
        *ret_stats = o->stats[i];
        policy_decide(o->config, &f, ret_stats, ret_verdict);
}

size_t observer_state_bytes(const struct observer *o)
{
        return guest_table_memory(o->table) + o->stats_cap * sizeof(*o->stats) +
               o->confs.size * o->confs.elem;
}

/* --- one poll --- */

static int on_guest(void *userdata, const struct pve_guest *g)
{
        struct observer *o = userdata;

        return guest_table_update(o->table, g, NULL);
}

static void on_removed(void *userdata, const struct guest *g)
{
        struct observer *o = userdata;
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };

        observer_forget_conf(o, g->vmid);
        if (o->log_changes)
                log_guest(LOG_INFO, &ctx, "guest %u ('%s') left the cluster, forgetting it",
                          (unsigned)g->vmid, g->name ? g->name : "");
}

static void log_verdict_change(const struct guest *g, const struct verdict *v)
{
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node,
                                     .state = verdict_to_string(v->kind) };
        char reasons[1024];

        verdict_format(v, reasons, sizeof(reasons));
        log_guest(LOG_NOTICE, &ctx, "guest %u ('%s', %s on '%s') is now %s: %s",
                  (unsigned)g->vmid, g->name ? g->name : "",
                  guest_type_to_string((enum guest_type)g->type), g->node ? g->node : "",
                  verdict_to_string(v->kind), reasons);
}

/* The verdict of g (at table position i) changed to v: count and log it. */
static void note_verdict(struct observer *o, struct guest *g, const struct verdict *v)
{
        if (g->verdict == (uint8_t)v->kind)
                return;
        if (o->log_changes)
                log_verdict_change(g, v);
        g->verdict = (uint8_t)v->kind;
}

void observer_rejudge(struct observer *o, size_t i, uint64_t now_usec, struct verdict *ret)
{
        struct guest *g = guest_table_at(o->table, i);
        struct window_stats s;

        observer_judge_at(o, i, now_usec, ret, &s);
        if (o->sum.count[g->verdict] > 0)
                o->sum.count[g->verdict]--;
        o->sum.count[ret->kind]++;
        note_verdict(o, g, ret);
}

int observer_read_conf(struct observer *o, size_t i, uint64_t now_usec, struct verdict *ret)
{
        const struct guest *g = guest_table_at(o->table, i);
        struct guest_reading rd;
        struct conf_facts unread = { 0 };
        int r = guestconf_read(o->pve, (enum guest_type)g->type, g->node, g->vmid, &rd), e = r;

        /* Unread, it is not idle: what it says could rule it out. */
        if (r < 0)
                snprintf(unread.unread, sizeof(unread.unread), "%s",
                         pve_error(o->pve)[0] ? pve_error(o->pve) : strerror(-r));
        r = observer_set_conf(o, g->vmid, (enum guest_type)g->type, e < 0 ? &unread : &rd.facts,
                              now_usec);
        if (e >= 0)
                guest_reading_done(&rd);
        if (r >= 0)
                observer_rejudge(o, i, now_usec, ret);
        return e < 0 ? e : r;
}

#define CONF_TTL_USEC USEC_PER_HOUR
#define CONF_RETRY_USEC USEC_PER_MINUTE

bool api_budget_take(struct api_budget *b)
{
        if (b->done > 0 && now_monotonic_usec() >= b->deadline) {
                b->deferred++;
                return false;
        }
        b->done++;
        return true;
}

enum verdict_kind observer_judge_conf(struct observer *o, size_t i, struct api_budget *b,
                                      uint64_t now)
{
        const struct guest *g = guest_table_at(o->table, i);
        /* The observer's: VERDICT_NONE before the first. */
        enum verdict_kind k = (enum verdict_kind)g->verdict;
        uint64_t read_usec = 0;
        const struct conf_facts *f = observer_conf(o, g->vmid, (enum guest_type)g->type, &read_usec);
        struct window_stats s;
        struct verdict v;
        bool due;

        if (k == VERDICT_ACTIVE && f) {
                observer_forget_conf(o, g->vmid); /* read again when it is idle again */
                return k;
        }
        if (f && f->unread[0]) {
                /* Judged without it: read again only if that is idle. */
                if (now - read_usec < CONF_RETRY_USEC)
                        return k;
                observer_forget_conf(o, g->vmid);
                observer_judge_at(o, i, now, &v, &s);
                if (v.kind != VERDICT_IDLE) {
                        observer_rejudge(o, i, now, &v);
                        return v.kind;
                }
                due = true;
        } else if (f)
                due = now - read_usec >= CONF_TTL_USEC && k != VERDICT_INSUFFICIENT;
        else
                due = k == VERDICT_IDLE;
        if (!due)
                return k;
        /* No room in this poll: an idle guest whose configuration was
         * never read is not idle yet (mark mode must not tag it). */
        if (!api_budget_take(b))
                return !f && k == VERDICT_IDLE ? VERDICT_INSUFFICIENT : k;
        v.kind = k; /* judged again only if the facts (read, or unread) are kept */
        (void)observer_read_conf(o, i, now, &v);
        return v.kind;
}

static void evaluate(struct observer *o, uint64_t now_usec)
{
        size_t n = guest_table_count(o->table);
        bool keep = true;

        o->stats_usec = 0;
        if (n > o->stats_cap) {
                /* Room for some growth; without it, nothing is kept. */
                size_t cap = n + n / 8 + 16;
                struct window_stats *a = realloc(o->stats, cap * sizeof(*a));

                if (a) {
                        o->stats = a;
                        o->stats_cap = cap;
                } else
                        keep = false;
        }
        memset(o->sum.count, 0, sizeof(o->sum.count));
        o->sum.tracked = n;
        for (size_t i = 0; i < n; i++) {
                struct guest *g = guest_table_at(o->table, i);
                struct window_stats s;
                struct verdict v;

                observer_judge(o, g, now_usec, &v, &s);
                if (keep)
                        o->stats[i] = s;
                o->sum.count[v.kind]++;
                note_verdict(o, g, &v);
        }
        if (keep)
                o->stats_usec = now_usec;
}

/* Messages equal but for their numbers: curl puts elapsed milliseconds in
 * a timeout's text, which must not count as a new kind of failure. */
static bool same_failure(const char *a, const char *b)
{
        while (*a || *b) {
                bool da = *a >= '0' && *a <= '9', db = *b >= '0' && *b <= '9';

                if (da != db)
                        return false;
                if (da) {
                        while (*a >= '0' && *a <= '9')
                                a++;
                        while (*b >= '0' && *b <= '9')
                                b++;
                        continue;
                }
                if (*a++ != *b++)
                        return false;
        }
        return true;
}

static enum api_state api_state_of(struct observer *o, int r)
{
        long status = pve_last_status(o->pve);

        if (r == -EACCES && status == 401)
                return API_AUTH_FAILED;
        return status == 0 ? API_UNREACHABLE : API_ERROR;
}

static void note_failure(struct observer *o, int r)
{
        const char *msg = pve_error(o->pve);

        o->sum.api_state = api_state_of(o, r);
        o->sum.polls_failed++;
        o->sum.consecutive_failures++;
        /* Logged when the state changes (first failure, or a different
         * error), not at every poll of an outage. */
        if (o->sum.api_ok || o->sum.polls_ok + o->sum.polls_failed == 1 ||
            !same_failure(o->sum.api_error, msg[0] ? msg : strerror(-r)))
                log_error("cannot poll the Proxmox API: %s", msg[0] ? msg : strerror(-r));
        snprintf(o->sum.api_error, sizeof(o->sum.api_error), "%s", msg[0] ? msg : strerror(-r));
        o->sum.api_ok = false;
}

static void note_success(struct observer *o, const struct pve_decode_stats *st)
{
        if (!o->sum.api_ok && o->sum.polls_failed > 0)
                log_notice("Proxmox API reachable again after %u failed poll%s",
                           o->sum.consecutive_failures, o->sum.consecutive_failures == 1 ? "" : "s");
        if (st->rejected != o->last_rejected || strcmp(st->first_reject, o->last_reject) != 0) {
                if (st->rejected > 0)
                        log_warning("%u guest entr%s of /cluster/resources ignored as invalid (%s)",
                                    st->rejected, st->rejected == 1 ? "y" : "ies",
                                    st->first_reject);
                o->last_rejected = st->rejected;
                snprintf(o->last_reject, sizeof(o->last_reject), "%s", st->first_reject);
        }
        o->sum.polls_ok++;
        o->sum.consecutive_failures = 0;
        o->sum.api_ok = true;
        o->sum.api_state = API_OK;
        o->sum.api_error[0] = '\0';
        o->sum.rejected_entries = st->rejected;
        o->sum.last_ok_realtime_usec = now_realtime_usec();
        o->sum.last_ok_usec = now_monotonic_usec();
}

int observer_poll(struct observer *o, uint64_t now_usec)
{
        struct pve_decode_stats st = { 0 };
        uint64_t start = now_monotonic_usec();
        int r;

        o->stats_usec = 0; /* the table changes from here */
        guest_table_begin_poll(o->table, now_usec);
        r = pve_get_resources(o->pve, on_guest, o, &st);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                note_failure(o, r);
        else {
                /* Only a complete answer tells who left the cluster. */
                guest_table_end_poll(o->table, on_removed, o);
                note_success(o, &st);
        }
        evaluate(o, now_usec);
        o->sum.last_poll_duration_usec = now_monotonic_usec() - start;
        return r;
}

bool observer_note_cycle(struct observer *o, uint64_t cycle_usec, uint64_t interval_usec)
{
        bool overrun = cycle_usec >= interval_usec;

        o->sum.last_cycle_usec = cycle_usec;
        if (cycle_usec > o->sum.max_cycle_usec)
                o->sum.max_cycle_usec = cycle_usec;
        if (overrun)
                o->sum.poll_overruns++;
        return overrun;
}

struct pve *observer_pve(const struct observer *o)
{
        return o->pve;
}

const char *api_state_to_string(enum api_state s)
{
        static const char *const names[] = {
                [API_OK] = "ok",
                [API_UNREACHABLE] = "unreachable",
                [API_AUTH_FAILED] = "auth-failed",
                [API_ERROR] = "error",
        };

        return (size_t)s < ELEMENTSOF(names) ? names[s] : "unknown";
}
