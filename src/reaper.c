/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "reaper.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "guestconf.h"
#include "history.h"
#include "journal.h"
#include "log.h"
#include "pve_api.h"
#include "saga.h"
#include "status.h"
#include "util.h"
#include "vmidmap.h"

#define TAG_IDLE "proxreap-idle"
/* How long what an idle guest's configuration said is trusted for the
 * verdicts of status and mark mode; selection and every step read it
 * again anyway. */

/* A guest mark mode or the grace period has tagged. */
struct mark {
        uint32_t vmid;
        uint64_t since_usec; /* first seen idle and marked */
        unsigned gone_polls; /* complete answers in a row without it */
        int type; /* enum guest_type of the guest marked; -1: not known yet */
        bool cancelled; /* an operator removed our tag: leave it alone */
};

/* A mark of a guest missing from this many complete answers in a row (10
 * minutes at the default interval) is forgotten: a new guest on the vmid
 * is not the one marked or kept; one answer that left it out is not
 * that. */
#define GONE_FORGET_POLLS 60

/* What reap.history said of a guest for mark mode, until it is read again
 * or the guest stops looking idle. Selection always reads it afresh. */
struct history_seen {
        uint32_t vmid;
        uint64_t until_usec;
        uint64_t read_usec;
        int result; /* history_cached()'s */
        bool busy; /* refused because it was busy (not: too little history) */
        char why[300]; /* "": it passed */
};

/* A guest left alone for a while: its tag write failed, or its selection
 * was refused or failed (REST_POLLS polls, a minute or five at the
 * default 10 s). A steady refusal costs a line and a few calls per rest,
 * not per poll. */
struct rest {
        uint32_t vmid;
        uint64_t until_usec;
};

#define FAILED_REST_POLLS 6
#define REFUSED_REST_POLLS 30

#define HISTORY_TTL_USEC (30 * USEC_PER_MINUTE)
#define KEPT_FILE "kept.json"
#define BREAKER_SLOTS 61
#define BREAKER_MIN_GUESTS 3
#define HISTORY_RETRY_USEC USEC_PER_MINUTE /* after a failed read */

struct reaper {
        const struct config *c;
        struct saga *saga; /* the journal and every reap under way */
        struct vmid_map marks; /* struct mark */
        struct vmid_map history; /* struct history_seen */
        struct vmid_map tag_rest, select_rest; /* struct rest */
        char *kept_file; /* kept.json beside the journal: the cancelled marks */
        /* kept.json exists and cannot be read: who was kept is not known,
         * so nothing is marked or selected until it is fixed or removed (a
         * reload reads it again); why, for the log and status */
        char kept_damaged[400];
        /* The observer of the last cycle: what the saga asks of the polls
         * (where a guest is, its pool, whether a poll came after a step). */
        const struct observer *observer;
        bool breaker_open;
        char breaker[256];
        /* the idle share, at most once a minute over the last hour */
        struct share_seen {
                uint64_t at_usec;
                double share;
                unsigned idle;
        } shares[BREAKER_SLOTS];
        unsigned share_head, n_shares;
        struct notifier *notifier;
};

/* --- what the polls show the saga --- */

static bool view_poll_since(void *userdata, uint64_t since)
{
        const struct reaper *r = userdata;
        uint64_t last = r->observer ? observer_summary(r->observer)->last_ok_usec : 0;

        return last > 0 && last > since;
}

static const struct guest *view_guest(const struct reaper *r, uint32_t vmid)
{
        return r->observer ? guest_table_find(observer_table(r->observer), vmid) : NULL;
}

static const char *view_node_of(void *userdata, uint32_t vmid, enum guest_type t)
{
        const struct guest *g = view_guest(userdata, vmid);

        return g && g->type == t ? g->node : NULL;
}

static const char *view_pool_of(void *userdata, uint32_t vmid)
{
        const struct guest *g = view_guest(userdata, vmid);

        return g ? g->pool : NULL;
}

static int journal_error(const struct reaper *r)
{
        return saga_journal_error(r->saga);
}

uint64_t reaper_step(struct reaper *r, struct pve *p, uint64_t now)
{
        struct cluster api = cluster_of_pve(p);

        /* In every mode: a reap under way when reap mode was turned off
         * finishes (the guest is stopped already); none starts. */
        return saga_step(r->saga, &api, now);
}

/* --- selection --- */

static struct mark *mark_find(struct reaper *r, uint32_t vmid)
{
        return vmid_map_find(&r->marks, vmid);
}

/* type: the guest's enum guest_type, -1 not known. */
static struct mark *mark_add(struct reaper *r, uint32_t vmid, int type, uint64_t now)
{
        struct mark *m = vmid_map_add(&r->marks, vmid);

        if (m) {
                m->since_usec = now;
                m->type = type;
        }
        return m;
}

static void mark_drop(struct reaper *r, uint32_t vmid)
{
        vmid_map_drop(&r->marks, vmid);
}

/* The guests an operator kept by removing our tag, on disk (kept.json in
 * the state directory, written durably at each change, as {"kept":
 * [{"vmid": N, "type": "qemu"|"lxc"}, ...]}): a restart in any mode, or a
 * reboot, keeps them kept. A failed write is logged; they stay kept while
 * this run lasts. A damaged file is never overwritten. */
static void kept_save(struct reaper *r)
{
        json_t *doc = json_pack("{s:[]}", "kept"), *a = json_object_get(doc, "kept");
        const struct mark *m;
        size_t pos = 0;
        int e;

        if (r->kept_damaged[0]) {
                log_warning("'%s' is damaged and left as it is: the guests kept by removing tag '%s' since are kept in memory, and written once it is fixed and the configuration reloaded",
                            r->kept_file, TAG_IDLE);
                json_decref(doc);
                return;
        }
        while (a && (m = vmid_map_next(&r->marks, &pos)) != NULL)
                if (m->cancelled)
                        json_array_append_new(
                                a, m->type < 0 ? json_pack("{s:I}", "vmid", (json_int_t)m->vmid)
                                               : json_pack("{s:I, s:s}", "vmid",
                                                           (json_int_t)m->vmid, "type",
                                                           guest_type_to_string(
                                                                   (enum guest_type)m->type)));
        e = doc ? status_write_json(r->kept_file, doc) : -ENOMEM;
        if (e < 0)
                log_warning("cannot write '%s': %s: the guests kept by removing tag '%s' stay kept only until proxreapd stops",
                            r->kept_file, strerror(-e), TAG_IDLE);
        json_decref(doc);
}

/* One entry of kept.json: 0 (*vmid, *type: -1 when not given) or -1. */
static int kept_entry(json_t *it, uint32_t *vmid, int *type)
{
        json_t *v = json_object_get(it, "vmid"), *t = json_object_get(it, "type");
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;

        if (!json_is_object(it) || n < 100 || n > 999999999 || (t && !json_is_string(t)))
                return -1;
        *vmid = (uint32_t)n;
        *type = -1;
        for (int k = 0; t && k <= GUEST_LXC; k++)
                if (strcmp(json_string_value(t), guest_type_to_string((enum guest_type)k)) == 0)
                        *type = k;
        return t && *type < 0 ? -1 : 0;
}

/* kept.json of an earlier run, into cancelled marks. When it exists and
 * cannot be read, who was kept is not known: r->kept_damaged says why,
 * and nothing is marked or selected until it is fixed or removed and the
 * configuration reloaded. */
static void kept_load(struct reaper *r, uint64_t now)
{
        json_error_t err;
        json_t *doc = status_read_file(r->kept_file, &err), *a = json_object_get(doc, "kept"), *it;
        unsigned n = 0;
        size_t i;

        r->kept_damaged[0] = '\0';
        if (!doc && err.line == -2)
                return; /* none: nobody kept */
        if (!doc && err.line > 0)
                snprintf(r->kept_damaged, sizeof(r->kept_damaged), "'%s' line %d: %s",
                         r->kept_file, err.line, err.text);
        else if (!doc)
                snprintf(r->kept_damaged, sizeof(r->kept_damaged), "'%s': %s", r->kept_file,
                         err.text);
        else if (!json_is_array(a))
                snprintf(r->kept_damaged, sizeof(r->kept_damaged),
                         "'%s': no \"kept\" array (expected {\"kept\": [{\"vmid\": N, \"type\": \"qemu\"}, ...]})",
                         r->kept_file);
        json_array_foreach(a, i, it) {
                uint32_t vmid;
                struct mark *m;
                int type;

                if (kept_entry(it, &vmid, &type) < 0) {
                        snprintf(r->kept_damaged, sizeof(r->kept_damaged),
                                 "'%s': entry %zu is not {\"vmid\": 100..999999999, \"type\": \"qemu\"|\"lxc\"}",
                                 r->kept_file, i + 1);
                        continue;
                }
                if (!(m = mark_find(r, vmid)) && !(m = mark_add(r, vmid, type, now)))
                        break;
                if (!m->cancelled)
                        n++;
                m->cancelled = true;
                if (type >= 0 || m->type < 0)
                        m->type = type;
        }
        json_decref(doc);
        if (r->kept_damaged[0])
                log_error("%s: who an operator kept by removing tag '%s' is not known, so no guest is marked or selected for reaping; fix or remove the file, then reload (systemctl reload proxreapd)",
                          r->kept_damaged, TAG_IDLE);
        else if (n)
                log_info("%u guest(s) an operator kept by removing tag '%s' stay kept (from '%s')", n,
                         TAG_IDLE, r->kept_file);
}

static int set_tag(struct pve *p, const struct guest *g, const char *tag, bool on)
{
        struct pve_guest_config cfg;
        char tags[2200];
        int e;

        e = pve_guest_config(p, (enum guest_type)g->type, g->node, g->vmid, &cfg);
        if (e < 0)
                return e;
        if (tags_contain(cfg.tags, tag) == on)
                return 0;
        e = on ? tags_with(cfg.tags, tag, tags, sizeof(tags))
               : tags_without(cfg.tags, tag, tags, sizeof(tags));
        if (e < 0)
                return e;
        return pve_set_tags(p, (enum guest_type)g->type, g->node, g->vmid, tags, cfg.digest);
}

/* Whether vmid rests now (a rest map of the reaper's). */
static bool resting(const struct vmid_map *m, uint32_t vmid, uint64_t now)
{
        const struct rest *x = vmid_map_find(m, vmid);

        return x && now < x->until_usec;
}

/* Let vmid rest for polls polls from now (0: not at all). */
static void rest(struct vmid_map *m, uint32_t vmid, unsigned polls, uint64_t interval,
                 uint64_t now)
{
        struct rest *x = vmid_map_find(m, vmid);

        if (!polls) {
                if (x)
                        vmid_map_drop(m, vmid);
                return;
        }
        if (x || (x = vmid_map_add(m, vmid)))
                x->until_usec = now + polls * interval;
}

static void announce_mark(struct reaper *r, const struct guest *g)
{
        char text[512];

        snprintf(text, sizeof(text), "proxreap: guest %u ('%s') on %s marked idle (tag '%s')%s",
                 (unsigned)g->vmid, g->name ? g->name : "", g->node, TAG_IDLE,
                 r->c->mode == REAP_MODE_REAP ? "; remove the tag to keep it" : "");
        notifier_send(r->notifier, NOTIFY_MARK,
                      json_pack("{s:I s:s s:s s:s s:s}", "vmid", (json_int_t)g->vmid, "node",
                                g->node, "name", g->name ? g->name : "", "type",
                                guest_type_to_string((enum guest_type)g->type), "text", text));
}

/* What holds a guest back from selection, whatever its verdict. */
enum hold {
        HOLD_NONE,
        HOLD_NODE_BUSY, /* another reap runs on its node: it may be marked, not selected */
        HOLD_IN_FLIGHT, /* being reaped */
        HOLD_RESTORING,
        HOLD_COOLDOWN, /* restored lately (reap.cooldown) */
        HOLD_RETRY, /* a reap failed lately (reap.retry_after) */
        HOLD_REUSED, /* its vmid was reaped within the history horizon */
};

static enum hold hold_of(const struct reaper *r, uint32_t vmid, const char *node, int64_t now_s)
{
        const struct config *c = r->c;
        const struct ops *ops = saga_ops(r->saga);
        bool node_busy = false;

        /* Its own reap or restore first, whatever the order of the ops:
         * nothing may touch a guest either of them is changing. */
        for (size_t i = 0; i < ops->n; i++) {
                const struct op *op = ops->v[i];

                if (op_needs_daemon(op) && op->vmid == vmid)
                        return HOLD_IN_FLIGHT;
                if (op->state == OP_RESTORING && (op->restore_vmid == vmid || op->vmid == vmid))
                        return HOLD_RESTORING;
        }
        for (size_t i = 0; i < ops->n; i++) {
                const struct op *op = ops->v[i];

                if (op_needs_daemon(op)) {
                        node_busy |= strcmp(op->node, node) == 0;
                        continue;
                }
                if (op->state == OP_RESTORED && op->restore_vmid == vmid &&
                    now_s - op->restored_ts < (int64_t)(c->cooldown_usec / USEC_PER_SEC))
                        return HOLD_COOLDOWN;
                /* A reap that failed, or that an operator called off: not
                 * tried again for a while. */
                if (op->state == OP_ABORTED && (!op->vetoed || op->called_off) && op->vmid == vmid &&
                    now_s - op->updated < (int64_t)(c->retry_after_usec / USEC_PER_SEC))
                        return HOLD_RETRY;
                /* The RRD is per vmid and outlives the guest: a guest on a
                 * vmid we reaped within the horizon (a new one that took
                 * it, or the old one restored by hand) would be judged by
                 * its predecessor's idle history. */
                if ((op->state == OP_REAPED || op->state == OP_RESTORED) && op->vmid == vmid &&
                    now_s - op->updated < (int64_t)(history_horizon_usec(c) / USEC_PER_SEC))
                        return HOLD_REUSED;
        }
        return node_busy ? HOLD_NODE_BUSY : HOLD_NONE;
}

static unsigned reaps_last_hour(const struct reaper *r, int64_t now_s)
{
        const struct ops *ops = saga_ops(r->saga);
        unsigned n = 0;

        for (size_t i = 0; i < ops->n; i++)
                if (now_s - ops->v[i]->began < 3600)
                        n++;
        return n;
}

static void evidence(const struct observer *o, const struct guest *g, uint64_t now, char *buf,
                     size_t size)
{
        struct window_stats s;
        struct verdict v;
        char reasons[700];

        observer_judge(o, g, now, &v, &s);
        verdict_format(&v, reasons, sizeof(reasons));
        snprintf(buf, size, "%s over %u samples (coverage %.0f%%)", reasons, s.samples,
                 s.coverage * 100.0);
}

/* Room for the archive on the archive storage: it must be active, take
 * backups and have the guest's worst case free. 0, or 1 with why. */
static int archive_room(const struct reaper *r, struct pve *p, const struct guest *g,
                        const struct pve_guest_status *st, char *why, size_t size)
{
        const struct config *c = r->c;
        struct pve_storage_status ss;
        uint64_t need;

        if (pve_storage_status(p, g->node, c->archive_storage, &ss) < 0)
                return -EIO;
        if (!ss.active || !ss.enabled || !tags_contain(ss.content, "backup")) {
                snprintf(why, size, "archive storage '%s' is %s on '%s'", c->archive_storage,
                         !ss.enabled ? "disabled" : !ss.active ? "not active" : "not for backups",
                         g->node);
                return 1;
        }
        /* An archive can be as large as the data: never start what the
         * storage cannot hold (lxc reports its used space, qemu only its
         * disk size). */
        need = g->type == GUEST_LXC && st->disk > 0 ? st->disk : st->maxdisk;
        if (ss.avail >= need)
                return 0;
        snprintf(why, size,
                 "archive storage '%s' has %" PRIu64 " MiB free, the guest needs up to %" PRIu64
                 " MiB",
                 c->archive_storage, ss.avail >> 20, need >> 20);
        return 1;
}

/* The selected record: the guest's identity pinned (digest, configuration
 * and volumes as read just now), with the evidence. */
static json_t *selected_record(const char *id, const struct guest *g, const struct saga_live *l,
                               const char *ev, int64_t now_s)
{
        json_t *rec = op_record(id, "selected", now_s);

        if (rec && json_object_update_new(
                           rec, json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:I, s:I, s:f}",
                                          "vmid", (json_int_t)g->vmid, "type",
                                          guest_type_to_string((enum guest_type)g->type), "node",
                                          g->node, "name", g->name ? g->name : "", "digest",
                                          l->read.digest, "config",
                                          guestconf_fields_json(&l->read.conf), "volumes",
                                          guestconf_volumes_json(&l->read.conf), "evidence", ev,
                                          "maxmem", (json_int_t)g->maxmem, "maxdisk",
                                          (json_int_t)l->st.maxdisk, "maxcpu",
                                          (double)g->maxcpu)) < 0) {
                json_decref(rec);
                return NULL;
        }
        if (rec && g->pool && *g->pool)
                json_object_set_new(rec, "pool", json_string(g->pool));
        return rec;
}

/* Work with the API beyond the poll (tag changes, two calls each, and
 * configuration reads, two or three): a poll spends at most half the
 * interval on it, and always does one piece: the rest waits for the next
 * poll, so a large fleet never holds up polls or the watchdog, and the
 * work still finishes. */

struct cycle {
        struct api_budget budget;
        unsigned started, hour;
        int64_t now_s;
        uint64_t now;
};

/* What a read of a guest's history said (history_veto()'s result, verdict
 * and reason), kept for HISTORY_TTL_USEC (HISTORY_RETRY_USEC after a
 * failure). */
static void history_remember(struct reaper *r, uint32_t vmid, int e, enum verdict_kind kind,
                             const char *why, uint64_t now)
{
        struct history_seen *h = vmid_map_find(&r->history, vmid);

        if (!h && !(h = vmid_map_add(&r->history, vmid)))
                return;
        h->until_usec = now + (e < 0 ? HISTORY_RETRY_USEC : HISTORY_TTL_USEC);
        h->read_usec = now;
        h->result = e;
        h->busy = e == 1 && kind == VERDICT_ACTIVE;
        snprintf(h->why, sizeof(h->why), "%s", e != 0 ? why : "");
}

/* history_veto() before marking or selecting: read at most once per
 * HISTORY_TTL_USEC per guest while it looks idle or is marked
 * (HISTORY_RETRY_USEC after a failure, which refuses). 1: refused (why;
 * *busy when for use, not for too little history), 0: idle by it,
 * -EAGAIN: read in a later poll (no budget left), < 0: the read failed
 * (why); *fresh when it was read now (and took budget). */
static int history_cached(struct reaper *r, struct pve *p, const struct guest *g,
                          struct cycle *cy, char *why, size_t size, bool *busy, bool *fresh)
{
        struct history_seen *h = vmid_map_find(&r->history, g->vmid);
        enum verdict_kind kind = VERDICT_IDLE;
        int e;

        *fresh = false;
        if (h && cy->now < h->until_usec) {
                snprintf(why, size, "%s", h->why);
                *busy = h->busy;
                return h->result;
        }
        if (!api_budget_take(&cy->budget)) {
                snprintf(why, size, "its history is read in a later poll");
                *busy = false;
                return -EAGAIN;
        }
        *fresh = true;
        why[0] = '\0';
        e = history_veto(p, r->c, (enum guest_type)g->type, g->node, g->vmid, cy->now_s, &kind,
                         why, size);
        if (e < 0)
                snprintf(why, size, "its history cannot be read (%s)", pve_error(p));
        history_remember(r, g->vmid, e, kind, why, cy->now);
        *busy = e == 1 && kind == VERDICT_ACTIVE;
        return e;
}

/* Add (on) or remove our mark's tag, within the poll's budget and not
 * while a failed write of it rests; logged as "<done> guest N ('name')",
 * or "cannot mark guest N idle: <error>", "cannot unmark guest N (<why>):
 * <error>". 0 written, -EAGAIN not now, < 0 failed. */
static int write_mark_tag(struct reaper *r, struct pve *p, const struct guest *g, bool on,
                          const char *done, const char *why, struct cycle *cy)
{
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };
        int e;

        if (resting(&r->tag_rest, g->vmid, cy->now) || !api_budget_take(&cy->budget))
                return -EAGAIN;
        e = set_tag(p, g, TAG_IDLE, on);
        if (e < 0 && on)
                log_guest(LOG_WARNING, &ctx, "cannot mark guest %u idle: %s (tried again in %u polls)",
                          (unsigned)g->vmid, pve_error(p), FAILED_REST_POLLS);
        else if (e < 0)
                log_guest(LOG_WARNING, &ctx, "cannot unmark guest %u (%s): %s (tried again in %u polls)",
                          (unsigned)g->vmid, why, pve_error(p), FAILED_REST_POLLS);
        else
                log_guest(LOG_NOTICE, &ctx, "%s guest %u ('%s')", done, (unsigned)g->vmid,
                          g->name ? g->name : "");
        rest(&r->tag_rest, g->vmid, e < 0 ? FAILED_REST_POLLS : 0, r->c->interval_usec, cy->now);
        return e;
}

/* Whether the guest can be selected now: the one predicate on what Proxmox
 * says of it, room for its archive, and its history (read now, unless
 * history_allows() read it in this poll). 0: select it (l is filled); 1:
 * not now (logged); < 0: the server could not be asked. */
static int selectable(struct reaper *r, struct observer *o, size_t i, struct cycle *cy,
                      bool history_fresh, struct saga_live *l)
{
        const struct guest *g = guest_table_at(observer_table(o), i);
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };
        struct pve *p = observer_pve(o);
        struct cluster api = cluster_of_pve(p);
        struct verdict v;
        char why[700] = "";
        int e;

        e = saga_judge_live(r->saga, &api, (enum guest_type)g->type, g->node, g->vmid, g->pool,
                            AT_SELECT, l);
        if (e < 0)
                return e;
        /* What the configuration says shows in status and the log too. */
        if (observer_set_conf(o, g->vmid, (enum guest_type)g->type, &l->read.facts, cy->now) >= 0)
                observer_rejudge(o, i, cy->now, &v);
        if (l->v.kind != VERDICT_IDLE)
                verdict_format(&l->v, why, sizeof(why));
        else if (archive_room(r, p, g, &l->st, why, sizeof(why)) < 0)
                snprintf(why, sizeof(why), "%s", pve_error(p));
        else if (!why[0] && r->c->history_usec && !history_fresh) {
                /* Read now, whatever an earlier read said; what it says is
                 * remembered, so a refusal for use also takes the mark off. */
                enum verdict_kind kind = VERDICT_IDLE;

                e = history_veto(p, r->c, (enum guest_type)g->type, g->node, g->vmid,
                                 cy->now_s, &kind, why, sizeof(why));
                if (e < 0)
                        snprintf(why, sizeof(why), "its history cannot be read (%s)", pve_error(p));
                history_remember(r, g->vmid, e, kind, why, cy->now);
        }
        if (!why[0])
                return 0;
        log_guest(LOG_INFO, &ctx, "idle guest %u ('%s') not reaped: %s (tried again in %u polls)",
                  (unsigned)g->vmid, g->name ? g->name : "", why, REFUSED_REST_POLLS);
        saga_live_done(l);
        return 1;
}

/* Select the guest when selectable(); a refusal or a failure lets it rest
 * (REFUSED_REST_POLLS). 1 selected, 0 not, < 0 the journal failed. */
static int select_guest(struct reaper *r, struct observer *o, size_t i, struct cycle *cy,
                        bool history_fresh)
{
        const struct guest *g = guest_table_at(observer_table(o), i);
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };
        struct cluster api = cluster_of_pve(observer_pve(o));
        char ev[900], id[OP_ID_MAX];
        struct saga_live l;
        json_t *rec;
        int e;

        e = selectable(r, o, i, cy, history_fresh, &l);
        if (e < 0)
                log_guest(LOG_WARNING, &ctx, "guest %u not selected: %s (tried again in %u polls)",
                          (unsigned)g->vmid, pve_error(observer_pve(o)), FAILED_REST_POLLS);
        if (e != 0) {
                rest(&r->select_rest, ctx.vmid, e < 0 ? FAILED_REST_POLLS : REFUSED_REST_POLLS,
                     r->c->interval_usec, cy->now);
                return 0;
        }
        g = guest_table_at(observer_table(o), i);
        if (saga_next_id(r->saga, &api, id, sizeof(id), ev, sizeof(ev)) < 0) {
                log_guest(LOG_WARNING, &ctx, "guest %u not selected: the ids in the archives' notes cannot be read: %s (tried again in %u polls)",
                          (unsigned)g->vmid, ev, FAILED_REST_POLLS);
                saga_live_done(&l);
                rest(&r->select_rest, ctx.vmid, FAILED_REST_POLLS, r->c->interval_usec, cy->now);
                return 0;
        }
        evidence(o, g, cy->now, ev, sizeof(ev));
        rec = selected_record(id, g, &l, ev, cy->now_s);
        saga_live_done(&l);
        e = saga_begin_reap(r->saga, rec, cy->now);
        if (e < 0)
                return e;
        ctx.op = id;
        ctx.state = "selected";
        log_guest(LOG_NOTICE, &ctx, "reap %s: selected idle guest %u ('%s'): %s", id,
                  (unsigned)g->vmid, g->name ? g->name : "", ev);
        return 1;
}


static enum verdict_kind verdict_of(const struct guest *g)
{
        /* The observer's: VERDICT_NONE before the first. */
        return (enum verdict_kind)g->verdict;
}

/* The circuit breaker tells broken numbers from an idle fleet: most
 * guests idle is normal (the end of a semester, a holiday), and marking
 * and observing go on whatever it says. It stops selection on the signs
 * of broken data: the idle share jumping (by reap.breaker_jump points
 * above its lowest of the last hour), or many running guests whose data
 * froze or whose CPU reads exactly zero for a whole window
 * (reap.breaker_broken percent). Each needs BREAKER_MIN_GUESTS guests, so
 * that one guest of a small fleet never trips it. */
static void share_record(struct reaper *r, size_t idle, size_t eligible, uint64_t now)
{
        unsigned newest = (r->share_head + BREAKER_SLOTS - 1) % BREAKER_SLOTS;
        const struct share_seen *last = r->n_shares ? &r->shares[newest] : NULL;

        if (eligible == 0 || (last && now - last->at_usec < USEC_PER_MINUTE))
                return;
        r->shares[r->share_head] = (struct share_seen){ now, (double)idle / (double)eligible,
                                                       (unsigned)idle };
        r->share_head = (r->share_head + 1) % BREAKER_SLOTS;
        if (r->n_shares < BREAKER_SLOTS)
                r->n_shares++;
}

/* The lowest idle share of the last hour (and its idle count); false
 * when none was recorded. */
static bool share_low(const struct reaper *r, uint64_t now, struct share_seen *low)
{
        bool any = false;

        for (unsigned i = 0; i < r->n_shares; i++) {
                const struct share_seen *s = &r->shares[i];

                if (now - s->at_usec > USEC_PER_HOUR)
                        continue;
                if (!any || s->share < low->share)
                        *low = *s;
                any = true;
        }
        return any;
}

static void judge_breaker(struct reaper *r, const struct observer *o, uint64_t now)
{
        const struct config *c = r->c;
        const struct guest_table *t = observer_table(o);
        size_t n = guest_table_count(t), eligible = 0, idle = 0, running = 0, broken = 0;
        struct share_seen low = { 0 };
        char msg[256] = "";

        for (size_t i = 0; i < n; i++) {
                const struct guest *g = guest_table_at(t, i);
                enum verdict_kind k = verdict_of(g);

                eligible += k == VERDICT_IDLE || k == VERDICT_ACTIVE;
                idle += k == VERDICT_IDLE;
                if (!g->status || strcmp(g->status, "running") != 0)
                        continue;
                running++;
                if (g->flags & GUEST_FROZEN)
                        broken++;
                else if (k == VERDICT_IDLE) {
                        struct window_stats s;
                        struct verdict v;

                        observer_judge_at(o, i, now, &v, &s);
                        broken += s.samples > 0 && s.cpu_mean_percent == 0.0;
                }
        }
        if (broken >= BREAKER_MIN_GUESTS &&
            (double)broken * 100.0 > c->breaker_broken * (double)running)
                snprintf(msg, sizeof(msg),
                         "circuit breaker open: %zu of %zu running guests show frozen data or no CPU at all (more than %g%%), reaping none",
                         broken, running, c->breaker_broken);
        else if (eligible > 0 && share_low(r, now, &low) &&
                 idle >= low.idle + BREAKER_MIN_GUESTS &&
                 100.0 * ((double)idle / (double)eligible - low.share) > c->breaker_jump)
                snprintf(msg, sizeof(msg),
                         "circuit breaker open: the idle share jumped from %.0f%% to %.0f%% (%zu of %zu eligible guests) within the hour (more than %g points), reaping none",
                         100.0 * low.share, 100.0 * (double)idle / (double)eligible, idle, eligible,
                         c->breaker_jump);
        share_record(r, idle, eligible, now);
        r->breaker_open = msg[0] != '\0';
        if (!r->breaker_open) {
                if (r->breaker[0])
                        log_notice("circuit breaker closed: %zu of %zu eligible guests idle, %zu of %zu running guests with broken-looking data",
                                   idle, eligible, broken, running);
                r->breaker[0] = '\0';
                return;
        }
        if (strcmp(msg, r->breaker) != 0)
                log_warning("%s", msg);
        snprintf(r->breaker, sizeof(r->breaker), "%s", msg);
}

/* Whether the guest is excluded for good (why: the verdict's reasons):
 * its configuration, its tags, the configured scope, template, HA, not
 * running. Not a lock: locks come and go (a backup, a migration). */
static bool excluded_for_good(const struct observer *o, size_t i, uint64_t now, char *why,
                              size_t size)
{
        struct window_stats s;
        struct verdict v;

        observer_judge_at(o, i, now, &v, &s);
        for (unsigned k = 0; v.kind == VERDICT_EXCLUDED && k < v.n_reasons; k++)
                if (v.reasons[k].code <= REASON_PENDING && v.reasons[k].code != REASON_LOCKED) {
                        verdict_format(&v, why, size);
                        return true;
                }
        return false;
}

/* Take our mark off a guest (why, for the log), when it is tagged; the
 * mark is forgotten either way. */
static void drop_mark(struct reaper *r, struct observer *o, const struct guest *g,
                      const char *why, struct cycle *cy)
{
        char done[400];

        snprintf(done, sizeof(done), "unmarked (%s)", why);
        if (g->tags && tags_contain(g->tags, TAG_IDLE))
                write_mark_tag(r, observer_pve(o), g, false, done, why, cy);
        mark_drop(r, g->vmid);
}

/* A guest that is not idle: a mark of ours goes when it is excluded for
 * good (mark only what would be reaped), or when it is active again by
 * the evidence: one active window is not enough where its history
 * (reap.history) judges the grace period, only that history turning busy
 * is. Never while a reap or a restore of it runs: a tag change there
 * would change its digest. */
static void unmark(struct reaper *r, struct observer *o, size_t i, enum verdict_kind k,
                   enum hold h, struct cycle *cy)
{
        const struct guest *g = guest_table_at(observer_table(o), i);
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };
        bool tagged = g->tags && tags_contain(g->tags, TAG_IDLE);
        const struct mark *m = mark_find(r, g->vmid);
        char why[700] = "", act[sizeof("active again: ") + 700];
        bool busy, fresh;

        if (k != VERDICT_ACTIVE && (k != VERDICT_EXCLUDED || !tagged))
                return;
        if (h == HOLD_IN_FLIGHT || h == HOLD_RESTORING)
                return;
        if (k == VERDICT_EXCLUDED) {
                if (excluded_for_good(o, i, cy->now, why, sizeof(why))) {
                        snprintf(act, sizeof(act), "excluded: %s", why);
                        drop_mark(r, o, g, act, cy);
                }
                return;
        }
        if (!tagged && !m) {
                vmid_map_drop(&r->history, g->vmid); /* read again when idle again */
                return;
        }
        if (r->c->history_usec) {
                /* Marked (or kept by its operator) and active: its history
                 * is asked again every minute (or window) until it says
                 * busy or idle again. */
                struct history_seen *hs = vmid_map_find(&r->history, g->vmid);
                uint64_t again = r->c->window_usec < HISTORY_RETRY_USEC ? r->c->window_usec
                                                                        : HISTORY_RETRY_USEC;

                if (hs && cy->now - hs->read_usec >= again)
                        hs->until_usec = 0;
                if (history_cached(r, observer_pve(o), g, cy, why, sizeof(why), &busy, &fresh) != 1 ||
                    !busy)
                        return; /* its history still says idle (or too little), or it was not read */
        }
        if (m && m->cancelled) {
                /* In use again: what the operator kept it from is over. */
                log_guest(LOG_INFO, &ctx, "guest %u ('%s') is in use again (%s): kept no longer, it may be marked when idle",
                          (unsigned)g->vmid, g->name ? g->name : "", why[0] ? why : "active");
                mark_drop(r, g->vmid);
                kept_save(r);
                return;
        }
        snprintf(act, sizeof(act), "active again%s%s", why[0] ? ": " : "", why);
        drop_mark(r, o, g, act, cy);
}

/* Our tag on a marked guest, whatever its verdict: gone, an operator
 * kept it (cancelled, until its history shows use); back on a guest kept,
 * an operator wants it reaped after all (its grace period starts now).
 * Never while a reap or a restore of it runs (they change its tags). */
static void notice_tag(struct reaper *r, const struct guest *g, enum hold h, uint64_t now)
{
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };
        bool tagged = g->tags && tags_contain(g->tags, TAG_IDLE);
        struct mark *m = mark_find(r, g->vmid);

        if (!m || h == HOLD_IN_FLIGHT || h == HOLD_RESTORING)
                return;
        if (m->type >= 0 && m->type != g->type) {
                /* Another guest on the vmid: the mark or keep was not its. */
                bool kept = m->cancelled;

                log_guest(LOG_NOTICE, &ctx, "guest %u is a %s now, the one %s was a %s: forgotten",
                          (unsigned)g->vmid, guest_type_to_string((enum guest_type)g->type),
                          kept ? "an operator kept" : "marked",
                          guest_type_to_string((enum guest_type)m->type));
                mark_drop(r, g->vmid);
                if (kept)
                        kept_save(r);
                return;
        }
        if (m->type < 0) {
                m->type = g->type;
                if (m->cancelled)
                        kept_save(r);
        }
        if (m->cancelled == !tagged)
                return;
        if (!tagged)
                log_guest(LOG_NOTICE, &ctx, "guest %u: tag '%s' removed by someone, not reaping it (kept until it is in use again)",
                          (unsigned)g->vmid, TAG_IDLE);
        else
                log_guest(LOG_NOTICE, &ctx, "guest %u: tag '%s' put back by someone: marked again, its grace period starts now",
                          (unsigned)g->vmid, TAG_IDLE);
        m->cancelled = !tagged;
        m->since_usec = now;
        kept_save(r);
}

/* An idle guest, before it is marked or selected: what its history says
 * (reap.history; read again every HISTORY_TTL_USEC, and at selection).
 * Refused: logged once per read, and not marked or selected now; a mark
 * of ours goes when its history shows use, so what is marked is what the
 * reaper would take (too little history, or none readable, only holds it
 * back: a stalled RRD does not restart every grace period). true: it may
 * go on (*fresh: its history was read in this poll). */
static bool history_allows(struct reaper *r, struct observer *o, const struct guest *g,
                           struct cycle *cy, bool *fresh)
{
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };
        const struct config *c = r->c;
        bool tagged = g->tags && tags_contain(g->tags, TAG_IDLE);
        char why[300];
        bool busy;
        int e;

        *fresh = false;
        if (!c->history_usec)
                return true;
        e = history_cached(r, observer_pve(o), g, cy, why, sizeof(why), &busy, fresh);
        if (e == 0)
                return true;
        if (tagged && busy)
                drop_mark(r, o, g, why, cy);
        else if (*fresh)
                log_guest(LOG_INFO, &ctx, "idle guest %u ('%s') %s: %s", (unsigned)g->vmid,
                          g->name ? g->name : "",
                          tagged ? "stays marked, not reaped for now"
                          : c->mode == REAP_MODE_REAP && !c->grace_usec ? "not reaped"
                                                                         : "not marked",
                          why);
        return false;
}

/* Mark mode and the grace period: true when the guest may be selected
 * now (reap mode, marked for the whole grace period). */
static bool marked_long_enough(struct reaper *r, struct observer *o, const struct guest *g,
                               struct cycle *cy)
{
        const struct config *c = r->c;
        struct mark *m = mark_find(r, g->vmid);
        int e;

        if (g->tags && tags_contain(g->tags, TAG_IDLE)) {
                /* Marked before (maybe by an earlier run): the grace
                 * period counts from when this run saw it. */
                if (!m && !(m = mark_add(r, g->vmid, g->type, cy->now)))
                        return false;
                return c->mode == REAP_MODE_REAP && cy->now - m->since_usec >= c->grace_usec;
        }
        /* Kept by its operator (notice_tag()); or who is kept is not
         * known, and our tag on a guest kept would read as put back. */
        if (m || r->kept_damaged[0])
                return false;
        e = write_mark_tag(r, observer_pve(o), g, true, "marked idle", NULL, cy);
        if (e >= 0 && mark_add(r, g->vmid, g->type, cy->now))
                announce_mark(r, g);
        return false;
}

static void cycle_guest(struct reaper *r, struct observer *o, size_t i, struct cycle *cy)
{
        const struct config *c = r->c;
        const struct guest *g = guest_table_at(observer_table(o), i);
        enum verdict_kind k = observer_judge_conf(o, i, &cy->budget, cy->now);
        enum hold h = hold_of(r, g->vmid, g->node, cy->now_s);
        const struct mark *m;
        bool fresh;

        g = guest_table_at(observer_table(o), i);
        notice_tag(r, g, h, cy->now);
        if (k != VERDICT_IDLE) {
                unmark(r, o, i, k, h, cy);
                return;
        }
        /* Kept by its operator (our tag removed), in every mode and with
         * any grace period, until its history shows use. */
        m = mark_find(r, g->vmid);
        if (m && m->cancelled)
                return;
        if (h != HOLD_NONE && h != HOLD_NODE_BUSY)
                return;
        if (!history_allows(r, o, g, cy, &fresh))
                return;
        if ((c->mode == REAP_MODE_MARK || c->grace_usec > 0) && !marked_long_enough(r, o, g, cy))
                return;
        if (c->mode != REAP_MODE_REAP || r->breaker_open || r->kept_damaged[0] || h != HOLD_NONE ||
            cy->started >= c->max_per_cycle || cy->hour >= c->max_per_hour ||
            resting(&r->select_rest, g->vmid, cy->now))
                return;
        if (select_guest(r, o, i, cy, fresh) > 0) {
                cy->started++;
                cy->hour++;
                mark_drop(r, g->vmid);
        }
}

/* Marks of guests that left the cluster (the table loses a guest only on
 * a complete answer, the last poll's): a new guest on the vmid is not
 * the one an operator kept. */
static void forget_gone(struct reaper *r, const struct observer *o)
{
        const struct observe_summary *s = observer_summary(o);
        uint32_t *gone = NULL;
        size_t n = 0, cap = 0, pos = 0;
        bool kept = false;
        struct mark *m;

        /* Only a complete answer, every entry of it understood, says who
         * is not there. */
        if (!s->polls_ok || s->consecutive_failures || s->rejected_entries)
                return;
        while ((m = vmid_map_next(&r->marks, &pos)) != NULL) {
                if (guest_table_find(observer_table(o), m->vmid)) {
                        m->gone_polls = 0;
                        continue;
                }
                if (++m->gone_polls < GONE_FORGET_POLLS)
                        continue;
                if (n == cap) {
                        uint32_t *v = reallocarray(gone, cap ? cap * 2 : 16, sizeof(*gone));

                        if (!v)
                                break;
                        gone = v;
                        cap = cap ? cap * 2 : 16;
                }
                gone[n++] = m->vmid;
                kept |= m->cancelled;
        }
        /* Dropped after the walk: a drop moves the records. */
        for (size_t k = 0; k < n; k++)
                mark_drop(r, gone[k]);
        free(gone);
        if (kept)
                kept_save(r);
}

void reaper_cycle(struct reaper *r, struct observer *o, uint64_t now)
{
        const struct config *c = r->c;
        struct cycle cy = { .budget = { .deadline = now_monotonic_usec() + c->interval_usec / 2 },
                            .now_s = now_epoch(),
                            .now = now };

        if (journal_error(r))
                return;
        /* The sagas under way need the polls in every mode (a poll after
         * a step proves what the cluster shows); selection only in mark
         * and reap mode. Restores made by the CLI: cooldown at once. */
        r->observer = o;
        saga_refresh(r->saga);
        /* A damaged journal: observing only, until it is repaired. */
        if (c->mode == REAP_MODE_OBSERVE || saga_damaged(r->saga))
                return;
        judge_breaker(r, o, now);
        cy.hour = reaps_last_hour(r, cy.now_s);
        for (size_t i = 0; i < guest_table_count(observer_table(o)) && !journal_error(r); i++)
                cycle_guest(r, o, i, &cy);
        forget_gone(r, o);
        if (cy.budget.deferred)
                log_info("%u tag change(s) or configuration read(s) left for the next poll (%u done in this one)",
                         cy.budget.deferred, cy.budget.done);
}

/* --- lifecycle --- */

unsigned reaper_unfinished(const char *journal_file)
{
        struct journal *j = NULL;
        struct ops ops;
        unsigned n = 0;
        char err[512];

        ops_init(&ops);
        if (journal_open(journal_file, JOURNAL_READ | JOURNAL_SKIP_DAMAGE, ops_apply, &ops, &j,
                         NULL, err, sizeof(err)) >= 0)
                for (size_t i = 0; i < ops.n; i++)
                        n += op_needs_daemon(ops.v[i]);
        journal_close(j);
        ops_clear(&ops);
        return n;
}

int reaper_new(const struct config *c, struct reaper **ret, char *err, size_t errsz)
{
        struct reaper *r = calloc(1, sizeof(*r));
        struct saga_view view;
        int e;

        if (!r)
                return -ENOMEM;
        r->c = c;
        r->marks = (struct vmid_map)VMID_MAP_INIT(struct mark);
        r->history = (struct vmid_map)VMID_MAP_INIT(struct history_seen);
        r->tag_rest = (struct vmid_map)VMID_MAP_INIT(struct rest);
        r->select_rest = (struct vmid_map)VMID_MAP_INIT(struct rest);
        {
                const char *slash = strrchr(c->journal_file, '/');
                int dir = slash ? (int)(slash - c->journal_file) : 1;

                if (asprintf(&r->kept_file, "%.*s/" KEPT_FILE, dir,
                             slash ? c->journal_file : ".") < 0) {
                        r->kept_file = NULL;
                        reaper_free(r);
                        return -ENOMEM;
                }
        }
        e = saga_open(c, SAGA_DAEMON, &r->saga, err, errsz);
        if (e < 0) {
                reaper_free(r);
                return e;
        }
        view = (struct saga_view){ view_poll_since, view_node_of, view_pool_of, r };
        saga_set_view(r->saga, &view);
        *ret = r;
        return 0;
}

struct reaper *reaper_free(struct reaper *r)
{
        if (!r)
                return NULL;
        saga_free(r->saga);
        vmid_map_free(&r->marks);
        vmid_map_free(&r->history);
        vmid_map_free(&r->tag_rest);
        vmid_map_free(&r->select_rest);
        free(r->kept_file);
        free(r);
        return NULL;
}

void reaper_set_config(struct reaper *r, const struct config *c)
{
        /* Marks made in mark mode, or under another grace period, were
         * never a served grace period: it starts now, as after a restart. */
        if ((c->mode == REAP_MODE_REAP && r->c->mode != REAP_MODE_REAP) ||
            c->grace_usec != r->c->grace_usec) {
                uint64_t now = now_monotonic_usec();
                struct mark *m;
                size_t pos = 0;

                while ((m = vmid_map_next(&r->marks, &pos)) != NULL)
                        m->since_usec = now;
        }
        r->c = c;
        saga_set_config(r->saga, c);
        /* Answers judged by the old thresholds and horizon. */
        vmid_map_free(&r->history);
        /* A damaged kept.json fixed or removed by the admin: read again,
         * with the keeps made since (in memory) written back; every grace
         * period starts anew, as after a restart. */
        if (r->kept_damaged[0]) {
                uint64_t now = now_monotonic_usec();
                struct mark *m;
                size_t pos = 0;

                kept_load(r, now);
                if (!r->kept_damaged[0]) {
                        while ((m = vmid_map_next(&r->marks, &pos)) != NULL)
                                m->since_usec = now;
                        kept_save(r);
                }
        }
}

void reaper_set_notifier(struct reaper *r, struct notifier *n)
{
        r->notifier = n;
        saga_set_notifier(r->saga, n);
}

/* --- status --- */

static json_t *op_status_json(const struct op *op)
{
        return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:I}", "id", op->id, "vmid",
                         (json_int_t)op->vmid, "name", op->name, "node", op->node, "state",
                         op_state_to_string(op->state), "step", op_step_to_string(op->step),
                         "since", (json_int_t)op->updated);
}

static json_t *hold_json(uint32_t vmid, const char *hold, int64_t until, const struct op *op)
{
        return json_pack("{s:I, s:s, s:I, s:s, s:s}", "vmid", (json_int_t)vmid, "hold", hold,
                         "until", (json_int_t)until, "op", op->id, "why",
                         op->reason[0] ? op->reason : "");
}

/* Reaps under way, and what holds a guest back: a restore, cooldown after
 * one, reap.retry_after after a failed or called-off reap. */
static void ops_status(const struct reaper *r, int64_t now_s, json_t *flight, json_t *holds)
{
        const struct config *c = r->c;
        const struct ops *ops = saga_ops(r->saga);
        int64_t cool = (int64_t)(c->cooldown_usec / USEC_PER_SEC);
        int64_t retry = (int64_t)(c->retry_after_usec / USEC_PER_SEC);

        for (size_t i = 0; i < ops->n; i++) {
                const struct op *op = ops->v[i];

                if (op_needs_daemon(op))
                        json_array_append_new(flight, op_status_json(op));
                else if (op->state == OP_RESTORING)
                        json_array_append_new(holds, hold_json(op->vmid, "restoring", 0, op));
                else if (op->state == OP_RESTORED && now_s - op->restored_ts < cool)
                        json_array_append_new(holds, hold_json(op->restore_vmid, "cooldown",
                                                               op->restored_ts + cool, op));
                else if (op->state == OP_ABORTED && (!op->vetoed || op->called_off) &&
                         now_s - op->updated < retry)
                        json_array_append_new(holds, hold_json(op->vmid, "retry_after",
                                                               op->updated + retry, op));
        }
}

/* Marked guests: when the grace period ends (reap mode), or cancelled. */
static json_t *marks_status(const struct reaper *r, uint64_t now, int64_t now_s)
{
        json_t *marks = json_array();
        const struct mark *m;
        size_t pos = 0;

        while ((m = vmid_map_next(&r->marks, &pos)) != NULL) {
                int64_t since = now_s - (int64_t)((now - m->since_usec) / USEC_PER_SEC);

                json_array_append_new(
                        marks, json_pack("{s:I, s:I, s:I, s:b}", "vmid", (json_int_t)m->vmid, "since",
                                         (json_int_t)since, "grace_ends",
                                         (json_int_t)(r->c->mode == REAP_MODE_REAP
                                                              ? since + (int64_t)(r->c->grace_usec /
                                                                                  USEC_PER_SEC)
                                                              : 0),
                                         "cancelled", m->cancelled));
        }
        return marks;
}

/* The idle shares of the last hour, as [epoch, share, idle] (oldest
 * first): the breaker's memory, which the next run picks up from the
 * status file (reaper_resume()). */
static json_t *shares_json(const struct reaper *r, uint64_t now, int64_t now_s)
{
        json_t *a = json_array();

        for (unsigned k = 0; k < r->n_shares; k++) {
                unsigned i = (r->share_head + BREAKER_SLOTS - r->n_shares + k) % BREAKER_SLOTS;
                const struct share_seen *s = &r->shares[i];

                if (now - s->at_usec <= USEC_PER_HOUR)
                        json_array_append_new(
                                a, json_pack("[I, f, I]",
                                             (json_int_t)(now_s - (int64_t)((now - s->at_usec) /
                                                                            USEC_PER_SEC)),
                                             s->share, (json_int_t)s->idle));
        }
        return a;
}

void reaper_resume(struct reaper *r, json_t *status, uint64_t now)
{
        json_t *shares = json_object_get(json_object_get(json_object_get(status, "reaper"),
                                                         "breaker"),
                                         "shares");
        int64_t now_s = now_epoch();
        unsigned n = 0;
        json_t *it;
        size_t i;

        json_array_foreach(shares, i, it) {
                json_t *t = json_array_get(it, 0), *sh = json_array_get(it, 1),
                       *idle = json_array_get(it, 2);
                struct share_seen *slot = &r->shares[r->share_head];
                json_int_t ts;
                uint64_t age;

                if (!json_is_integer(t) || !json_is_number(sh) || !json_is_integer(idle))
                        continue;
                ts = json_integer_value(t);
                if (ts > now_s || ts < now_s - 3600 || json_number_value(sh) < 0 ||
                    json_number_value(sh) > 1 || json_integer_value(idle) < 0 ||
                    json_integer_value(idle) > UINT32_MAX)
                        continue; /* not ours, or too old to matter */
                age = (uint64_t)(now_s - ts) * USEC_PER_SEC;
                if (age > now)
                        continue;
                slot->at_usec = now - age;
                slot->share = json_number_value(sh);
                slot->idle = (unsigned)json_integer_value(idle);
                r->share_head = (r->share_head + 1) % BREAKER_SLOTS;
                if (r->n_shares < BREAKER_SLOTS)
                        r->n_shares++;
                n++;
        }
        if (n)
                log_info("circuit breaker: %u idle share(s) of the last hour carried over from the previous run",
                         n);
        kept_load(r, now);
}

json_t *reaper_status_json(const struct reaper *r, uint64_t now)
{
        const struct config *c = r->c;
        int64_t now_s = now_epoch();
        json_t *flight = json_array(), *holds = json_array();

        ops_status(r, now_s, flight, holds);
        return json_pack("{s:{s:b, s:s, s:o}, s:{s:s?, s:I}, s:{s:s?}, s:o, s:o, s:o, s:{s:I, s:I, s:I}}",
                         "breaker", "open", r->breaker_open, "why", r->breaker, "shares",
                         shares_json(r, now, now_s), "journal", "error",
                         journal_error(r) ? strerror(-journal_error(r)) : NULL, "damaged_lines",
                         (json_int_t)saga_damaged(r->saga), "kept", "error",
                         r->kept_damaged[0] ? r->kept_damaged : NULL, "in_flight", flight, "marks",
                         marks_status(r, now, now_s), "holds", holds, "limits", "reaps_last_hour",
                         (json_int_t)reaps_last_hour(r, now_s), "max_per_hour",
                         (json_int_t)c->max_per_hour, "max_per_cycle", (json_int_t)c->max_per_cycle);
}

void reaper_describe(const struct reaper *r, char *buf, size_t size)
{
        const struct ops *ops = saga_ops(r->saga);
        size_t running = 0;
        const struct op *last = NULL;

        if (journal_error(r)) {
                snprintf(buf, size, "journal cannot be written (%s): destructive work stopped",
                         strerror(-journal_error(r)));
                return;
        }
        if (saga_damaged(r->saga)) {
                snprintf(buf, size,
                         "journal damaged (%u line(s) skipped): reaping stopped; stop proxreapd and run 'proxreap journal repair'",
                         saga_damaged(r->saga));
                return;
        }
        if (r->kept_damaged[0]) {
                snprintf(buf, size, "%s: no guest is marked or selected; fix or remove it, then reload",
                         r->kept_damaged);
                return;
        }
        if (r->breaker[0]) {
                snprintf(buf, size, "%s", r->breaker);
                return;
        }
        for (size_t i = 0; i < ops->n; i++)
                if (op_needs_daemon(ops->v[i])) {
                        running++;
                        last = ops->v[i];
                }
        if (last)
                snprintf(buf, size, "%zu reap(s) running, %s guest %u at %s", running, last->id,
                         (unsigned)last->vmid, op_state_to_string(last->state));
        else
                snprintf(buf, size, "%s mode", reap_mode_to_string(r->c->mode));
}

int reaper_journal_failed(const struct reaper *r)
{
        return journal_error(r);
}

const struct ops *reaper_ops(const struct reaper *r)
{
        return saga_ops(r->saga);
}
