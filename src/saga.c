/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "saga.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archives.h"
#include "journal.h"
#include "log.h"
#include "util.h"

#define TAG_IDLE "proxreap-idle"
#define TAG_FAILED "proxreap-failed"
#define TAG_RESTORED "proxreap-restored"

/* Task polling: 0.5 s doubling to 10 s. */
#define BACKOFF_FIRST_USEC (500 * USEC_PER_MSEC)
#define BACKOFF_MAX_USEC (10 * USEC_PER_SEC)
/* How long an HA stop may take after its request was queued, past the
 * shutdown timeout, before proxreap gives up on it. */
#define HA_STOP_SLACK_S 120
/* A task started around an intent (clocks of daemon and node may differ). */
#define TASK_SEARCH_SLACK_S 300
#define VERIFY_TRIES 5
/* A step whose calls keep failing (an API that answers with errors, a
 * configuration proxreap cannot read) gives up after this many tries,
 * about five minutes with the backoff, and puts the guest back. */
#define STEP_TRIES 30
/* The compensating start: tried this often, 30 s apart at first, doubling
 * (a backup job's lock may hold it for minutes): about half an hour. */
#define START_TRIES 6
#define START_RETRY_USEC (30 * USEC_PER_SEC)

struct saga {
        const struct config *c;
        enum saga_role role;
        struct journal *j;
        struct ops ops;
        int journal_error;
        struct notifier *notifier;
        struct saga_view view;
        struct saga_clock clock;
        int claim; /* the daemon's lifetime claim on the journal (-1: none) */
        unsigned damaged; /* damaged lines seen (and skipped) in the journal */
        bool ids_reserved; /* the ids the archives' notes name are known */
        char last_refresh_error[512];
};

/* --- clocks and the server's words --- */

static uint64_t real_monotonic(void *userdata)
{
        (void)userdata;
        return now_monotonic_usec();
}

static int64_t real_epoch(void *userdata)
{
        (void)userdata;
        return now_epoch();
}

static void real_sleep(void *userdata, uint64_t usec)
{
        struct timespec ts = { .tv_sec = (time_t)(usec / USEC_PER_SEC),
                               .tv_nsec = (long)(usec % USEC_PER_SEC) * 1000 };

        (void)userdata;
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static uint64_t mono(const struct saga *s)
{
        return s->clock.monotonic_usec(s->clock.userdata);
}

static int64_t epoch(const struct saga *s)
{
        return s->clock.epoch(s->clock.userdata);
}

static void op_ctx(const struct op *op, struct log_guest_ctx *ctx)
{
        *ctx = (struct log_guest_ctx){ .vmid = op->vmid, .node = op->node, .op = op->id,
                                       .state = op_state_to_string(op->state) };
}

#define log_op(prio, op, ...)                                                                      \
        do {                                                                                       \
                struct log_guest_ctx _ctx;                                                         \
                op_ctx(op, &_ctx);                                                                 \
                log_guest(prio, &_ctx, __VA_ARGS__);                                               \
        } while (0)

/* --- the journal --- */

/* Ends of a reap go to the webhook, once: when their record is written. */
static void announce(struct saga *s, const struct op *op, json_t *rec)
{
        const char *ev = json_string_value(json_object_get(rec, "ev"));
        enum notify_event e;

        if (!s->notifier || !ev || !op)
                return;
        if (strcmp(ev, "reaped") == 0)
                e = NOTIFY_REAP;
        else if (strcmp(ev, "aborted") == 0 && !op->vetoed)
                e = NOTIFY_ABORT;
        else if (strcmp(ev, "done") == 0 && op->state == OP_RESTORED)
                e = NOTIFY_RESTORE;
        else
                return;
        notifier_send(s->notifier, e, op_event_fields(op, e));
}

/* Appends rec (taken) and folds it. Every struct op * stays valid. */
static int append(struct saga *s, json_t *rec, const char *crash_name)
{
        char err[512] = "";
        uint64_t seq;
        int e;

        if (s->journal_error || !rec) {
                if (!rec)
                        s->journal_error = -ENOMEM;
                json_decref(rec);
                return s->journal_error;
        }
        e = journal_append(s->j, rec, ops_apply, &s->ops, &seq, err, sizeof(err));
        if (e < 0) {
                s->journal_error = e;
                log_error("journal '%s' cannot be written: %s; all destructive work has stopped%s",
                          journal_path(s->j), err[0] ? err : strerror(-e),
                          s->role == SAGA_DAEMON ? " (fix the disk, then restart proxreapd)" : "");
                json_decref(rec);
                return e;
        }
        (void)ops_apply(&s->ops, seq, 0, rec);
        announce(s, ops_find(&s->ops, json_string_value(json_object_get(rec, "op"))), rec);
        json_decref(rec);
        crash_point(crash_name);
        return 0;
}

static void set_str(json_t *rec, const char *k, const char *v)
{
        if (rec)
                json_object_set_new(rec, k, json_string(v));
}

static void set_int(json_t *rec, const char *k, int64_t v)
{
        if (rec)
                json_object_set_new(rec, k, json_integer((json_int_t)v));
}

/* Appends rec (taken) of op only if the op is still in state as the
 * journal holds it right then: another process (proxreap abort) may have
 * changed it since this one decided. 1: it had; nothing written, the op
 * is due again. */
static int append_if(struct saga *s, struct op *op, enum op_state state, json_t *rec,
                     const char *crash_name)
{
        char err[512] = "";
        int e = journal_hold(s->j, ops_apply, &s->ops, err, sizeof(err));

        if (e < 0) {
                log_op(LOG_WARNING, op, "%s: journal '%s': %s", op->id, journal_path(s->j), err);
                json_decref(rec);
                return e;
        }
        if (op->state != state) {
                log_op(LOG_NOTICE, op, "%s: changed by another process meanwhile (now %s)",
                       op->id, op_state_to_string(op->state));
                journal_release(s->j);
                json_decref(rec);
                op->run.next_usec = 0; /* due now */
                return 1;
        }
        e = append(s, rec, crash_name);
        journal_release(s->j);
        return e;
}

static int record_step(struct saga *s, struct op *op, const char *ev, enum op_step step,
                       json_t *extra)
{
        json_t *rec = op_record_step(op->id, ev, step, epoch(s));
        char crash[64];

        if (rec && extra)
                json_object_update(rec, extra);
        json_decref(extra);
        snprintf(crash, sizeof(crash), "%s-%s", op_step_to_string(step), ev);
        return append_if(s, op, op->state, rec, crash);
}

/* A reap's failure before the destroy: compensation starts (unless it
 * was called off meanwhile: then it is under way already). */
static int fail(struct saga *s, struct op *op, const char *reason)
{
        json_t *rec;
        int e;

        rec = op_record_step(op->id, "failing", op->step, epoch(s));
        set_str(rec, "reason", reason);
        e = append_if(s, op, op->state, rec, "failing");
        if (e == 0)
                log_op(LOG_WARNING, op, "reap %s of guest %u ('%s') failed at %s: %s", op->id,
                       (unsigned)op->vmid, op->name, op_step_to_string(op->step), reason);
        return e < 0 ? e : 0;
}

/* A restore that did not work: the op is reaped again, and its archive
 * still there; Proxmox's words say why (the driver of the restore tells
 * its operator). */
static int restore_failed(struct saga *s, struct op *op, const char *reason)
{
        json_t *rec = op_record_step(op->id, "failed", STEP_RESTORE, epoch(s));

        set_str(rec, "reason", reason);
        return append(s, rec, "restore-failed");
}

/* Nothing was changed: close the op without compensation or retry delay. */
static int veto(struct saga *s, struct op *op, const char *reason)
{
        json_t *rec = op_record(op->id, "aborted", epoch(s));

        log_op(LOG_NOTICE, op, "reap %s of guest %u ('%s') called off: %s", op->id,
               (unsigned)op->vmid, op->name, reason);
        set_str(rec, "reason", reason);
        if (rec)
                json_object_set_new(rec, "vetoed", json_true());
        return append(s, rec, "aborted");
}

/* guest_kept: the guest proxreap stopped is still there, and with it the
 * snapshot proxreap took. */
static int close_aborted(struct saga *s, struct op *op, const char *note, bool guest_kept)
{
        char reason[900];
        json_t *rec;

        snprintf(reason, sizeof(reason), "%s%s%s", op->reason,
                 guest_kept && op->snapshot_taken ? " (its snapshot is kept)" : "", note);
        log_op(LOG_WARNING, op, "reap %s of guest %u aborted: %s", op->id, (unsigned)op->vmid,
               reason);
        rec = op_record(op->id, "aborted", epoch(s));
        set_str(rec, "reason", reason);
        return append(s, rec, "aborted");
}

/* --- scheduling --- */

static void due_now(struct op *op, uint64_t now)
{
        op->run.next_usec = now;
        op->run.backoff_usec = 0;
        op->run.tries = 0;
}

static void due_later(struct op *op, uint64_t now)
{
        op->run.backoff_usec = op->run.backoff_usec ? op->run.backoff_usec * 2
                                                    : BACKOFF_FIRST_USEC;
        if (op->run.backoff_usec > BACKOFF_MAX_USEC)
                op->run.backoff_usec = BACKOFF_MAX_USEC;
        op->run.next_usec = now + op->run.backoff_usec;
        op->run.tries++;
}

/* Seconds since the current step's intent. By the monotonic clock from
 * when this process wrote it, so a step of the wall clock moves no limit;
 * a step resumed after a restart starts from the journal's timestamp. */
static int64_t step_elapsed_s(const struct saga *s, struct op *op, uint64_t now)
{
        if (!op->run.intent_usec) {
                int64_t age = epoch(s) - op->intent_ts;
                uint64_t a = age > 0 ? (uint64_t)age * USEC_PER_SEC : 0;

                op->run.intent_usec = now > a ? now - a : 1;
        }
        return now > op->run.intent_usec ? (int64_t)((now - op->run.intent_usec) / USEC_PER_SEC)
                                         : 0;
}

/* --- what only the polls know --- */

static bool poll_since(const struct saga *s, uint64_t since)
{
        return s->view.poll_since && s->view.poll_since(s->view.userdata, since);
}

/* The pool the latest poll shows the guest in, else the one it had. */
static const char *current_pool(const struct saga *s, uint32_t vmid, const char *pinned)
{
        const char *pool = s->view.pool_of ? s->view.pool_of(s->view.userdata, vmid) : NULL;

        return pool ? pool : pinned;
}

/* --- sending a step --- */

/* The intent, durable before the call it announces, and written only on
 * the op as the journal holds it right then: another process (proxreap
 * abort) may have changed it since this one decided. 1: it had, nothing
 * written, the op is due again. */
static int record_intent(struct saga *s, struct op *op, enum op_step step, json_t *extra,
                         uint64_t now)
{
        int e = record_step(s, op, "intent", step, extra);

        if (e == 0)
                op->run.intent_usec = now;
        return e;
}

/* The call of the step op's intent announced, and its answer. A call
 * without an answer stays an intent and is resolved later (0). A refusal
 * is returned (< 0, the server's words in api_error()). */
static int send_call(struct saga *s, const struct cluster *api, struct op *op,
                     const struct task_request *q, uint64_t now)
{
        char upid[PVE_UPID_MAX], crash[64];
        int e = api->ops->start_task(api->impl, q, upid);

        snprintf(crash, sizeof(crash), "%s-sent", op_step_to_string(op->step));
        crash_point(crash);
        /* No connection could be made (a write always opens a new one):
         * the call provably never reached the server. */
        op->run.unsent = cluster_unsent(e);
        if (e < 0 && !cluster_refused(e)) {
                /* No answer: did the server act? Find out before anything
                 * is sent again. */
                log_op(LOG_WARNING, op, "%s of guest %u: no answer (%s), checking the server",
                       op_step_to_string(op->step), (unsigned)q->vmid, api_error(api));
                due_later(op, now);
                return 0;
        }
        if (e < 0)
                return e;
        e = record_step(s, op, "task", op->step, json_pack("{s:s}", "upid", upid));
        if (e == 1 && q->kind == TASK_ARCHIVE) {
                /* Called off while the call was on its way: the vzdump
                 * would hold the guest's lock (and make an archive) for
                 * nothing, and no record follows it. Stopped now. */
                log_op(LOG_NOTICE, op, "%s: called off while its archive task started: stopping %s",
                       op->id, upid);
                if (api->ops->task_abort(api->impl, upid) < 0)
                        log_op(LOG_WARNING, op, "%s: cannot stop task %s: %s", op->id, upid,
                               api_error(api));
        }
        if (e >= 0)
                due_later(op, now);
        return e;
}

static int send_step(struct saga *s, const struct cluster *api, struct op *op, enum op_step step,
                     json_t *intent_extra, const struct task_request *q, uint64_t now)
{
        int e = record_intent(s, op, step, intent_extra, now);

        if (e != 0)
                return e < 0 ? e : 0;
        return send_call(s, api, op, q, now);
}

/* After a call or a check that failed with e: a refusal ends the step
 * (the reap puts the guest back, a restore fails with Proxmox's words);
 * anything else is asked again, STEP_TRIES times in all. */
static int abort_or_retry(struct saga *s, const struct cluster *api, struct op *op, int e,
                          uint64_t now)
{
        char why[600];

        if (e >= 0 || s->journal_error)
                return e;
        if (cluster_refused(e))
                return op->state == OP_RESTORING ? restore_failed(s, op, api_error(api))
                                                 : fail(s, op, api_error(api));
        if (op->state != OP_RESTORING && op->run.tries + 1 >= STEP_TRIES) {
                /* Nothing changed yet: a veto; else the guest is put back;
                 * putting it back itself failing ends with what to do. */
                snprintf(why, sizeof(why), "%s (gave up after %u tries)", api_error(api),
                         op->run.tries + 1);
                if (op->state == OP_ABORTING) {
                        snprintf(why, sizeof(why),
                                 "; proxreap could not put the guest back (%.300s, %u tries): check it by hand",
                                 api_error(api), op->run.tries + 1);
                        return close_aborted(s, op, why, true);
                }
                return op->state == OP_SELECTED ? veto(s, op, why) : fail(s, op, why);
        }
        log_op(LOG_WARNING, op, "%s %s: %s, retrying", op->state == OP_RESTORING ? "restore" : "reap",
               op->id, api_error(api));
        due_later(op, now);
        return 0;
}

/* --- the one predicate, on what Proxmox says right now --- */

int saga_judge_live(const struct saga *s, const struct cluster *api, enum guest_type t,
                    const char *node, uint32_t vmid, const char *pool, enum check_point at,
                    struct saga_live *ret)
{
        struct live_numbers n;
        struct guest_facts f;
        int e;

        e = api->ops->guest_read(api->impl, t, node, vmid, &ret->read);
        if (e < 0)
                return e;
        e = api->ops->guest_status(api->impl, t, node, vmid, &ret->st);
        if (e < 0) {
                guest_reading_done(&ret->read);
                return e;
        }
        f = (struct guest_facts){
                .vmid = vmid,
                .type = t,
                .node = node,
                .status = at == AT_STOPPED ? NULL : ret->st.status,
                .lock = ret->read.lock,
                .hastate = ret->st.hastate,
                .pool = pool,
                .tags = ret->read.tags,
                .template = ret->read.template,
                .has_data = true,
                .conf = &ret->read.facts,
        };
        n = (struct live_numbers){ .cpu_percent = ret->st.cpu * 100.0,
                                   .mem_mb = (double)ret->st.mem / (1024.0 * 1024.0) };
        policy_recheck(s->c, &f, at == AT_SHUTDOWN ? &n : NULL, &ret->v);
        return 0;
}

void saga_live_done(struct saga_live *l)
{
        guest_reading_done(&l->read);
}

/* The op's pinned configuration. -ENODATA: journaled before pinning. */
static int pinned_conf(const struct op *op, struct guest_conf *ret)
{
        char err[256];

        if (!op->pinned)
                return -ENODATA;
        return guestconf_from_json(op->type, op->pinned, ret, err, sizeof(err));
}

/* Is the guest on the server still the one pinned at selection (its
 * digest as expected)? 0, or 1 with why not. */
static int same_as_pinned(const struct op *op, const struct guest_reading *now, char *why,
                          size_t size)
{
        struct guest_conf pin;
        char diff[400];

        if (pinned_conf(op, &pin) < 0) {
                snprintf(why, size, "no configuration was pinned when it was selected");
                return 1;
        }
        if (strcmp(now->digest, op->digest) == 0) {
                guestconf_done(&pin);
                return 0;
        }
        if (guestconf_identity(&pin, &now->conf) == IDENTITY_OTHER)
                snprintf(why, size,
                         "vmid %u now holds another guest (deleted and created again since it was selected)",
                         (unsigned)op->vmid);
        else if (guestconf_compare(&pin, "when selected", &now->conf, "now", diff, sizeof(diff)))
                snprintf(why, size, "its configuration changed since it was selected: %s", diff);
        else
                snprintf(why, size, "its configuration changed since it was selected (digest %.12s, was %.12s)",
                         now->digest, op->digest);
        guestconf_done(&pin);
        return 1;
}

/* The re-check before a step: the guest is the pinned one and nothing
 * rules it out. 0: go on; 1: why says what stands in the way; < 0: the
 * server could not be asked (-ENOENT: the guest is not on its node). */
static int recheck(const struct saga *s, const struct cluster *api, const struct op *op,
                   enum check_point at, char *why, size_t size)
{
        struct saga_live l;
        char reasons[600];
        int e = saga_judge_live(s, api, op->type, op->node, op->vmid,
                                current_pool(s, op->vmid, op->pool), at, &l);

        if (e < 0)
                return e;
        e = same_as_pinned(op, &l.read, why, size);
        if (e == 0 && at == AT_STOPPED && strcmp(l.st.status, "stopped") != 0) {
                snprintf(why, size, "the guest is %s again (started after proxreap stopped it)",
                         l.st.status);
                e = 1;
        }
        if (e == 0 && l.v.kind != VERDICT_IDLE) {
                verdict_format(&l.v, reasons, sizeof(reasons));
                snprintf(why, size, "%s: %s",
                         l.v.kind == VERDICT_ACTIVE ? "it is busy now" : "it is excluded now",
                         reasons);
                e = 1;
        }
        saga_live_done(&l);
        return e;
}

/* --- the reap's steps --- */

static struct task_request request(enum task_kind kind, const struct op *op)
{
        return (struct task_request){ .kind = kind, .type = op->type, .node = op->node,
                                      .vmid = op->vmid };
}

/* Safe to send: the guest was re-checked right before (recheck()) or the
 * earlier call provably never reached the server (act_resolve()). */
static int send_shutdown(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        struct task_request q = request(TASK_SHUTDOWN, op);
        int e;

        q.timeout_s = s->c->shutdown_timeout_usec / USEC_PER_SEC;
        q.force_stop = s->c->force_stop;
        e = send_step(s, api, op, STEP_SHUTDOWN,
                      json_pack("{s:I, s:b}", "timeout", (json_int_t)q.timeout_s, "force_stop",
                                q.force_stop),
                      &q, now);
        return abort_or_retry(s, api, op, e, now);
}

static int act_shutdown(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        char why[700];
        int e = recheck(s, api, op, AT_SHUTDOWN, why, sizeof(why));

        if (e == -ENOENT)
                snprintf(why, sizeof(why), "the guest is no longer on '%s'", op->node);
        if (e > 0 || e == -ENOENT)
                return veto(s, op, why);
        if (e < 0)
                return abort_or_retry(s, api, op, e, now);
        log_op(LOG_NOTICE, op, "reap %s: shutting down guest %u ('%s') on '%s'", op->id,
               (unsigned)op->vmid, op->name, op->node);
        return send_shutdown(s, api, op, now);
}

static void snapshot_name(const struct saga *s, char *buf, size_t size)
{
        time_t t = (time_t)epoch(s);
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, size, GUESTCONF_SNAPSHOT_PREFIX "%Y%m%dT%H%M%SZ", &tm);
}

static bool snapshot_unsupported(const char *msg)
{
        return strstr(msg, "snapshot feature is not available") != NULL;
}

static int snapshot_skipped(struct saga *s, struct op *op, const char *msg)
{
        log_op(LOG_NOTICE, op, "reap %s: guest %u cannot be snapshotted (%s), going on without",
               op->id, (unsigned)op->vmid, msg);
        return record_step(s, op, "done", STEP_SNAPSHOT, json_pack("{s:s}", "skipped", msg));
}

static int act_snapshot(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        struct task_request q = request(TASK_SNAPSHOT, op);
        char name[48], desc[128];
        int e;

        snapshot_name(s, name, sizeof(name));
        snprintf(desc, sizeof(desc), GUESTCONF_SNAPSHOT_DESCRIPTION "%s", op->id);
        q.snapname = name;
        q.description = desc;
        e = send_step(s, api, op, STEP_SNAPSHOT, json_pack("{s:s}", "snapname", name), &q, now);
        if (e < 0 && cluster_refused(e) && snapshot_unsupported(api_error(api)))
                return snapshot_skipped(s, op, api_error(api));
        return abort_or_retry(s, api, op, e, now);
}

/* vzdump's notes-template is one line: newlines and backslashes are
 * written as the two-character escapes "\\n" and "\\\\". */
static void notes_escape(const char *in, char *out, size_t size)
{
        size_t o = 0;

        for (; *in && o + 3 < size; in++) {
                if (*in == '\\' || *in == '\n') {
                        out[o++] = '\\';
                        out[o++] = *in == '\n' ? 'n' : '\\';
                } else if ((unsigned char)*in >= 0x20)
                        out[o++] = *in;
        }
        out[o] = '\0';
}

/* The storage of the guest's first archived volume (a container's root
 * file system), "" if none: where a restore puts it by default. */
static void home_storage(const struct op *op, char *buf, size_t size)
{
        struct guest_conf pin;

        buf[0] = '\0';
        if (pinned_conf(op, &pin) < 0)
                return;
        for (size_t i = 0; i < pin.n_volumes && !buf[0]; i++)
                if (pin.volumes[i].archived)
                        pve_volume_storage(pin.volumes[i].volid, buf, size);
        guestconf_done(&pin);
}

static void notes_template(const struct op *op, char *buf, size_t size)
{
        char node[64] = "", storage[64];
        char text[1200];

        (void)op_id_node(op->id, node, sizeof(node));
        home_storage(op, storage, sizeof(storage));
        /* The first line is what storage content lists show: it carries
         * the op id verify looks for, and all a restore needs when no
         * journal holds the op (archive_note_parse()). {{...}} are
         * vzdump's variables. */
        snprintf(text, sizeof(text),
                 "proxreap %s: idle guest {{guestname}} ({{vmid}}, %s%s%s) archived before removal by the proxreapd of node %s\n"
                 "restore on node %s: proxreap restore %s\n"
                 "evidence: %.600s",
                 op->id, guest_type_to_string(op->type), storage[0] ? ", storage " : "", storage,
                 node[0] ? node : op->node, node[0] ? node : op->node, op->id,
                 op->evidence ? op->evidence : "");
        notes_escape(text, buf, size);
}

static int act_archive(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        const struct config *c = s->c;
        struct task_request q = request(TASK_ARCHIVE, op);
        char notes[1400];
        int e;

        notes_template(op, notes, sizeof(notes));
        log_op(LOG_NOTICE, op, "reap %s: archiving guest %u to '%s'", op->id, (unsigned)op->vmid,
               c->archive_storage);
        q.storage = c->archive_storage;
        q.compress = c->compress;
        q.notes = notes;
        e = send_step(s, api, op, STEP_ARCHIVE,
                      json_pack("{s:s, s:s}", "storage", c->archive_storage, "compress",
                                c->compress),
                      &q, now);
        return abort_or_retry(s, api, op, e, now);
}

/* The archive found for op is this guest's: named for its vmid and type
 * on the archive storage, protected, not empty. 0, or 1 with why. */
static int archive_is_ours(const struct saga *s, const struct op *op,
                           const struct pve_backup *b, char *why, size_t size)
{
        if (!pve_volid_is_backup_of(b->volid, s->c->archive_storage, op->type, op->vmid))
                snprintf(why, size,
                         "the archive listing names '%s', which is not an archive of %s %u on '%s'",
                         b->volid, guest_type_to_string(op->type), (unsigned)op->vmid,
                         s->c->archive_storage);
        else if (b->size == 0 || !b->protected)
                snprintf(why, size, "archive '%s' is %s", b->volid,
                         b->size == 0 ? "empty" : "not protected");
        else
                return 0;
        return 1;
}

/* What the archive holds is the pinned guest (extractconfig, compared
 * field by field, every pinned volume inside). 0, 1 with why, or < 0. */
static int archive_holds_guest(const struct cluster *api, const struct op *op, const char *volid,
                               char **ret_text, char *why, size_t size)
{
        struct guest_conf pin, arch;
        char err[256];
        int e = api->ops->extract_config(api->impl, op->node, volid, ret_text);

        if (e < 0)
                return e;
        if (pinned_conf(op, &pin) < 0) {
                snprintf(why, size, "no configuration was pinned when it was selected");
                return 1;
        }
        if (guestconf_from_text(op->type, *ret_text, &arch, err, sizeof(err)) < 0) {
                snprintf(why, size, "the configuration in archive '%s' cannot be read: %s", volid,
                         err);
                e = 1;
        } else {
                e = guestconf_check_archive(&pin, &arch, why, size);
                guestconf_done(&arch);
        }
        guestconf_done(&pin);
        return e;
}

/* The very archive proxreap's vzdump task created (its log names it): a
 * copy with the same notes put there by anyone else is not taken for it. */
static int find_archive(const struct saga *s, const struct cluster *api, const struct op *op,
                        struct pve_backup *ret)
{
        struct pve_backup_query q;
        char name[256];
        int e = api->ops->task_archive_name(api->impl, op->upid, name, sizeof(name));

        if (e < 0)
                return e;
        q = (struct pve_backup_query){ .vmid = op->vmid, .marker = op->id, .name = name,
                                       .min_ctime = (int64_t)op->archive_start };
        return api->ops->find_backup(api->impl, op->node, s->c->archive_storage, &q, ret);
}

static int act_verify(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        struct pve_backup b;
        char *config = NULL, why[700];
        int e = find_archive(s, api, op, &b);

        if (e == -ENOENT)
                snprintf(why, sizeof(why), "%s", api_error(api));
        if (e == -ENOENT || (e >= 0 && archive_is_ours(s, op, &b, why, sizeof(why)))) {
                /* A listing may lag behind the task's end, or come back
                 * garbled once: asked again a few times, then given up. */
                if (op->run.tries + 1 >= VERIFY_TRIES)
                        return fail(s, op, why);
                due_later(op, now);
                return 0;
        }
        if (e >= 0)
                e = archive_holds_guest(api, op, b.volid, &config, why, sizeof(why));
        /* And the guest is still the one archived: a change after vzdump
         * (or a new guest under its vmid) is not in the archive. */
        if (e == 0)
                e = recheck(s, api, op, AT_STOPPED, why, sizeof(why));
        if (e != 0)
                free(config);
        if (e > 0)
                return fail(s, op, why);
        if (e < 0)
                return abort_or_retry(s, api, op, e, now);
        log_op(LOG_NOTICE, op, "reap %s: archive '%s' verified (%" PRIu64 " bytes)", op->id,
               b.volid, b.size);
        e = record_step(s, op, "done", STEP_VERIFY,
                        json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}", "volid", b.volid, "size",
                                  (json_int_t)b.size, "ctime", (json_int_t)b.ctime, "config",
                                  config, "digest", op->digest, "node", op->node));
        free(config);
        if (e >= 0) {
                op->run.verified_usec = mono(s);
                due_now(op, now);
        }
        return e;
}

static int act_destroy(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        struct task_request q = request(TASK_DESTROY, op);
        char why[700];
        /* A destroy call of this process that provably never left (no
         * connection) may be sent again, checked like the first. */
        bool resend = op->step == STEP_DESTROY && op->phase == PHASE_INTENT && op->run.unsent;
        int e;

        /* Never destroy without a verified archive on record. */
        if (!op->volid[0] || (!resend && (op->step != STEP_VERIFY || op->phase != PHASE_DONE)))
                return fail(s, op, "no verified archive on record");
        /* What only the poll shows (the guest's pool) must be newer than
         * the archive: wait for a poll completed after it. */
        if (!poll_since(s, op->run.verified_usec)) {
                due_later(op, now);
                return 0;
        }
        e = recheck(s, api, op, AT_STOPPED, why, sizeof(why));
        if (e > 0) {
                snprintf(why + strlen(why), sizeof(why) - strlen(why), ": not destroying it");
                return fail(s, op, why);
        }
        if (e < 0)
                return abort_or_retry(s, api, op, e, now);
        /* Safe to send: a verified protected archive holds this guest
         * (verify compared its configuration and every volume with the
         * ones pinned at selection, and an archive holds every volume the
         * guest has), the guest is the pinned one (same digest), stopped,
         * and no exclusion rule applies right now; no earlier destroy of
         * this op reached the server (act_resolve resends only one that
         * never left). TASK_DESTROY never destroys unreferenced disks. */
        log_op(LOG_NOTICE, op, "reap %s: destroying guest %u ('%s'); archive '%s'", op->id,
               (unsigned)op->vmid, op->name, op->volid);
        e = send_step(s, api, op, STEP_DESTROY, NULL, &q, now);
        return abort_or_retry(s, api, op, e, now);
}

static int act_finish(struct saga *s, struct op *op)
{
        json_t *rec = op_record(op->id, "reaped", epoch(s));
        int e;

        set_int(rec, "freed_mem", (int64_t)op->maxmem);
        set_int(rec, "freed_disk", (int64_t)op->maxdisk);
        if (rec)
                json_object_set_new(rec, "freed_cpu", json_real(op->maxcpu));
        e = append(s, rec, "reaped");
        if (e < 0)
                return e;
        /* Logged once it is on record, so its PROXREAP_STATE says reaped. */
        log_op(LOG_NOTICE, op,
               "reap %s: guest %u ('%s') reaped; freed %" PRIu64 " MiB memory, %" PRIu64
               " GiB disk; restore with 'proxreap restore %s'",
               op->id, (unsigned)op->vmid, op->name, op->maxmem >> 20, op->maxdisk >> 30, op->id);
        return 0;
}

/* proxreap's own snapshot changed the guest's digest. Nothing else may
 * have changed: the configuration is still the pinned one, field by field
 * (parent, the snapshot's name, is not compared). 0 with the new digest,
 * 1 with why not, < 0: the server could not be asked. */
static int snapshot_changed_nothing(const struct cluster *api, const struct op *op, char *digest,
                                    size_t dsize, char *why, size_t size)
{
        struct guest_reading now;
        struct guest_conf pin;
        char diff[400];
        int e = api->ops->guest_read(api->impl, op->type, op->node, op->vmid, &now);

        if (e < 0)
                return e;
        if (pinned_conf(op, &pin) < 0) {
                snprintf(why, size, "no configuration was pinned when it was selected");
                e = 1;
        } else {
                e = guestconf_compare(&pin, "when selected", &now.conf, "now", diff, sizeof(diff));
                if (e)
                        snprintf(why, size, "its configuration changed since it was selected: %s",
                                 diff);
                guestconf_done(&pin);
        }
        snprintf(digest, dsize, "%s", now.digest);
        guest_reading_done(&now);
        return e;
}

/* The guest is not on its node. Where is it, by a poll completed after
 * it was missed? On another node (migrated): journaled, and compensation
 * goes on there. Nowhere: gone. 1 moved, 0 gone, -EAGAIN ask again. */
static int locate(struct saga *s, struct op *op, uint64_t now)
{
        const char *node;
        json_t *rec;
        int e;

        if (!op->run.missing_usec)
                op->run.missing_usec = mono(s);
        if (!poll_since(s, op->run.missing_usec))
                return -EAGAIN;
        node = s->view.node_of ? s->view.node_of(s->view.userdata, op->vmid, op->type) : NULL;
        op->run.missing_usec = 0;
        if (!node)
                return 0;
        if (strcmp(node, op->node) == 0)
                return -EAGAIN; /* back where it was: look again */
        log_op(LOG_NOTICE, op, "reap %s: guest %u moved to '%s' meanwhile", op->id,
               (unsigned)op->vmid, node);
        rec = op_record(op->id, "moved", epoch(s));
        set_str(rec, "node", node);
        e = append(s, rec, "moved");
        if (e >= 0)
                due_now(op, now);
        return e < 0 ? e : 1;
}

/* The compensating start failed (its task, or Proxmox refused it): on
 * record, and tried again a little later, START_TRIES times in all. */
static int start_failed(struct saga *s, struct op *op, const char *exitstatus, uint64_t now)
{
        int e;

        log_op(LOG_ERR, op, "reap %s: could not start guest %u again: %s", op->id,
               (unsigned)op->vmid, exitstatus);
        e = record_step(s, op, "done", STEP_START,
                        json_pack("{s:s, s:b}", "exitstatus", exitstatus, "failed", 1));
        if (e >= 0)
                op->run.next_usec = now + (START_RETRY_USEC << (op->start_failures > 5   ? 4
                                                                : op->start_failures > 0 ? op->start_failures - 1
                                                                                         : 0));
        return e;
}

/* The shutdown ended, but the guest is not on its node: migrated (stopped,
 * by an admin or HA) or removed. Either way the reap cannot go on there:
 * compensation follows it (locate() journals where it went). */
static int shutdown_guest_missing(struct saga *s, struct op *op, uint64_t now)
{
        int e = locate(s, op, now);

        if (e == -EAGAIN) {
                due_later(op, now);
                return 0;
        }
        if (e < 0)
                return e;
        return fail(s, op, e > 0 ? "the guest moved to another node during its shutdown"
                                 : "the guest was removed during its shutdown");
}

/* The destroy task ended OK, but a guest answers under the vmid. A guest
 * other than the pinned one (its digest changed: one created at once
 * under the free vmid) means the destroy is done; the pinned one still
 * there is waited for, up to reap.task_timeout. */
static int destroy_not_yet_gone(struct saga *s, const struct cluster *api, struct op *op,
                                uint64_t now)
{
        struct guest_reading g;
        bool other;
        int e = api->ops->guest_read(api->impl, op->type, op->node, op->vmid, &g);

        if (e == -ENOENT)
                other = true; /* gone after all */
        else if (e >= 0) {
                other = strcmp(g.digest, op->digest) != 0;
                guest_reading_done(&g);
        } else
                other = false;
        if (other) {
                log_op(LOG_NOTICE, op, "reap %s: guest %u destroyed; vmid %u %s", op->id,
                       (unsigned)op->vmid, (unsigned)op->vmid,
                       e == -ENOENT ? "is free" : "already holds a new guest");
                return record_step(s, op, "done", STEP_DESTROY,
                                   json_pack("{s:s}", "exitstatus", "OK"));
        }
        if (step_elapsed_s(s, op, now) > (int64_t)(s->c->task_timeout_usec / USEC_PER_SEC))
                return fail(s, op, "the destroy task ended OK, but the guest is still there");
        due_later(op, now);
        return 0;
}

/* --- the restore's steps --- */

static void boot_id(char *buf, size_t size)
{
        FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

        buf[0] = '\0';
        if (f) {
                if (fgets(buf, (int)size, f))
                        buf[strcspn(buf, "\n")] = '\0';
                fclose(f);
        }
}

/* When the process pid started (clock ticks since boot, /proc/PID/stat
 * field 22), or -1. With the boot id it tells a live restorer from a pid
 * used again by another process. */
static long long process_start(long long pid)
{
        char path[64], line[1024], *p, state = '?';
        long long start = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        /* A zombie (killed, its parent not yet told) runs nothing. */
        if (fgets(line, sizeof(line), f) && (p = strrchr(line, ')')) != NULL &&
            (sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %lld",
                    &state, &start) != 2 ||
             state == 'Z' || state == 'X'))
                start = -1;
        fclose(f);
        return start;
}

static struct task_request restore_request(const struct op *op)
{
        return (struct task_request){
                .kind = TASK_RESTORE,
                .type = op->type,
                .node = op->restore_node,
                .vmid = op->restore_vmid,
                .storage = op->restore_storage[0] ? op->restore_storage : NULL,
                .archive = op->volid,
                .pool = op->restore_pool_set ? op->restore_pool : op->pool,
        };
}

/* This process in this boot, for a record of who runs a restore. */
static json_t *restorer(void)
{
        char boot[40];

        boot_id(boot, sizeof(boot));
        return json_pack("{s:I, s:I, s:s}", "pid", (json_int_t)getpid(), "pid_start",
                         (json_int_t)process_start(getpid()), "boot", boot);
}

/* The restore's intent: the target, and who sends it (this process in
 * this boot), so that a second restore can tell a live one from one that
 * was interrupted. */
static int record_restore_intent(struct saga *s, struct op *op, const struct restore_target *t,
                                 uint64_t now)
{
        json_t *extra = json_pack("{s:I, s:s, s:s, s:s?}", "vmid", (json_int_t)t->vmid, "node",
                                  t->node, "storage", t->storage ? t->storage : "", "pool",
                                  t->pool);

        if (extra)
                json_object_update_new(extra, restorer());
        return record_intent(s, op, STEP_RESTORE, extra, now);
}

/* Safe to send: the journal holds this intent, the vmid was free a moment
 * ago (Proxmox refuses a taken one) and no earlier restore of this op
 * reached the server (act_resolve() sends again only one that did not). */
static int send_restore(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        struct task_request q = restore_request(op);
        int e = send_call(s, api, op, &q, now);

        return abort_or_retry(s, api, op, e, now);
}

/* The restored guest says where it came from (best effort: the restore is
 * done either way), and the journal says it is restored. */
static int restore_finish(struct saga *s, const struct cluster *api, struct op *op)
{
        struct guest_reading g;
        char with[2200], tmp[2200], clean[2200];
        int e = api->ops->guest_read(api->impl, op->type, op->restore_node, op->restore_vmid, &g);

        if (e >= 0) {
                if (tags_with(g.tags, TAG_RESTORED, with, sizeof(with)) >= 0 &&
                    tags_without(with, TAG_IDLE, tmp, sizeof(tmp)) >= 0 &&
                    tags_without(tmp, TAG_FAILED, clean, sizeof(clean)) >= 0 &&
                    strcmp(clean, g.tags) != 0)
                        e = api->ops->set_tags(api->impl, op->type, op->restore_node,
                                               op->restore_vmid, clean, g.digest);
                guest_reading_done(&g);
        }
        if (e < 0)
                log_op(LOG_WARNING, op, "%s: cannot tag guest %u '%s': %s", op->id,
                       (unsigned)op->restore_vmid, TAG_RESTORED, api_error(api));
        return record_step(s, op, "done", STEP_RESTORE,
                           json_pack("{s:I, s:s}", "vmid", (json_int_t)op->restore_vmid, "node",
                                     op->restore_node));
}

/* How long a create without an answer is looked for: past any answer the
 * client still waited for, and a task's start on a busy node. */
static int64_t lost_create_wait_s(const struct saga *s)
{
        return (int64_t)(2 * s->c->timeout_usec / USEC_PER_SEC) + 5;
}

/* A restore task that failed may leave what it created: a qemu restore
 * leaves its (empty) configuration behind ("VM state is NOT cleaned up").
 * Such a guest is proxreap's own (its vmid was free, the create was ours,
 * nothing is in it) and is removed; anything else is left, and said. */
static int restore_left(struct saga *s, const struct cluster *api, struct op *op,
                        const char *exitstatus)
{
        struct task_request q = { .kind = TASK_DESTROY, .type = op->type,
                                  .node = op->restore_node, .vmid = op->restore_vmid };
        const char *tool = op->type == GUEST_LXC ? "pct" : "qm";
        char reason[900], why[600];
        struct guest_reading g;
        bool empty;
        int e = api->ops->guest_read(api->impl, op->type, op->restore_node, op->restore_vmid, &g);

        if (e < 0) /* nothing left (or it cannot be told: said below) */
                snprintf(reason, sizeof(reason), "%s%s", exitstatus,
                         e == -ENOENT ? "" : "; check whether it left a guest behind");
        else {
                /* Nothing but what an empty configuration may hold. */
                empty = g.conf.n_volumes == 0 && g.facts.snapshots == 0 &&
                        json_object_size(g.conf.fields) <= (guestconf_field(&g.conf, "lock") ? 1u : 0u);
                guest_reading_done(&g);
                if (!empty)
                        snprintf(reason, sizeof(reason),
                                 "%s; guest %u exists now and is not empty: check it ('%s config %u')",
                                 exitstatus, (unsigned)op->restore_vmid, tool,
                                 (unsigned)op->restore_vmid);
                else if (saga_run_task(s, api, &q, why, sizeof(why)) == 0)
                        snprintf(reason, sizeof(reason),
                                 "%s; the empty guest %u it left behind was removed", exitstatus,
                                 (unsigned)op->restore_vmid);
                else
                        snprintf(reason, sizeof(reason),
                                 "%s; it left guest %u behind, empty, and removing it failed (%.200s): remove it with '%s destroy %u'",
                                 exitstatus, (unsigned)op->restore_vmid, why, tool,
                                 (unsigned)op->restore_vmid);
        }
        return restore_failed(s, op, reason);
}

/* A restore's lost answer: its task, or proof that it never left. */
static int resolve_restore(struct saga *s, const struct cluster *api, struct op *op,
                           uint64_t now)
{
        struct pve_guest_status st;
        int e = api->ops->guest_status(api->impl, op->type, op->restore_node, op->restore_vmid,
                                       &st);

        if (e >= 0)
                return restore_failed(s, op,
                                      "an earlier restore attempt has no task, but the target vmid exists now: check it by hand");
        if (e != -ENOENT)
                return abort_or_retry(s, api, op, -EIO, now);
        /* No answer, but it may have left: a create still being handled
         * shows neither task nor guest yet. Sent again only when it
         * provably never left, or when nothing has shown up long after
         * any answer could have come (as an operator's next try would). */
        if (!op->run.unsent && step_elapsed_s(s, op, now) <= lost_create_wait_s(s)) {
                due_later(op, now);
                op->run.tries = 0;
                return 0;
        }
        log_op(LOG_NOTICE, op, "%s: the restore call never reached the server (%s), sending it again",
               op->id, op->run.unsent ? "no connection" : "no task and no guest long after it");
        e = record_restore_intent(s, op,
                                  &(struct restore_target){
                                          .vmid = op->restore_vmid,
                                          .node = op->restore_node,
                                          .storage = op->restore_storage[0] ? op->restore_storage
                                                                            : NULL,
                                          .pool = op->restore_pool_set ? op->restore_pool : NULL,
                                  },
                                  now);
        if (e != 0)
                return e < 0 ? e : 0;
        return send_restore(s, api, op, now);
}

/* --- following tasks, resolving lost answers --- */

/* A reap's shutdown or destroy ended OK: what counts is the guest's state
 * (an HA stop only queued a request; a destroy must really be gone). 0:
 * done; 1: handled here (failed, or asked again later). */
static int guest_state_after(struct saga *s, const struct cluster *api, struct op *op,
                             uint64_t now)
{
        struct pve_guest_status st;
        int64_t limit;
        int e = api->ops->guest_status(api->impl, op->type, op->node, op->vmid, &st);

        if (op->step == STEP_DESTROY)
                return e == -ENOENT ? 0 : (destroy_not_yet_gone(s, api, op, now) < 0 ? -1 : 1);
        if (e == -ENOENT)
                return shutdown_guest_missing(s, op, now) < 0 ? -1 : 1;
        if (e >= 0 && strcmp(st.status, "stopped") == 0)
                return 0;
        limit = (int64_t)(s->c->shutdown_timeout_usec / USEC_PER_SEC) + HA_STOP_SLACK_S;
        if (step_elapsed_s(s, op, now) > limit)
                return fail(s, op, e < 0 ? api_error(api) : "the guest did not stop") < 0 ? -1 : 1;
        due_later(op, now);
        return 1;
}

/* A step's task ended: its own completion checks, then its done record. */
static int task_finished(struct saga *s, const struct cluster *api, struct op *op,
                         const struct pve_task_status *t, uint64_t now)
{
        char digest[64] = "", why[600];
        struct pve_upid u = { 0 };
        json_t *rec;
        int e;

        if (op->step == STEP_RESTORE)
                return pve_task_succeeded(t->exitstatus) ? restore_finish(s, api, op)
                                                         : restore_left(s, api, op, t->exitstatus);
        if (!pve_task_succeeded(t->exitstatus)) {
                if (op->step == STEP_SNAPSHOT && snapshot_unsupported(t->exitstatus))
                        return snapshot_skipped(s, op, t->exitstatus);
                if (op->step == STEP_START)
                        return start_failed(s, op, t->exitstatus, now);
                return fail(s, op, t->exitstatus);
        }
        if (op->step == STEP_SHUTDOWN || op->step == STEP_DESTROY) {
                e = guest_state_after(s, api, op, now);
                if (e != 0)
                        return e < 0 ? s->journal_error : 0;
        }
        if (op->step == STEP_SNAPSHOT) {
                e = snapshot_changed_nothing(api, op, digest, sizeof(digest), why, sizeof(why));
                if (e > 0)
                        return fail(s, op, why);
                if (e < 0)
                        return abort_or_retry(s, api, op, e, now);
        }
        (void)pve_upid_parse(op->upid, &u);
        rec = json_pack("{s:s, s:s, s:I}", "exitstatus", t->exitstatus, "upid", op->upid,
                        "task_start", (json_int_t)u.starttime);
        if (rec && digest[0])
                json_object_set_new(rec, "digest", json_string(digest));
        e = record_step(s, op, "done", op->step, rec);
        if (e >= 0)
                due_now(op, now);
        return e;
}

static int act_follow(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        const struct config *c = s->c;
        struct pve_task_status t;
        int64_t limit;
        int e = api->ops->task_status(api->impl, op->upid, &t);

        if (e < 0) {
                /* Unreachable or the node lost the task: keep asking; the
                 * guest's state is checked when the task is found again. */
                if (op->run.tries == 0)
                        log_op(LOG_WARNING, op, "%s: cannot read task status: %s", op->id,
                               api_error(api));
                due_later(op, now);
                return 0;
        }
        if (!t.running)
                return task_finished(s, api, op, &t, now);
        /* Running is an answer: polled with the backoff, but no failed try. */
        op->run.tries = 0;
        limit = op->step == STEP_SHUTDOWN
                        ? (int64_t)(c->shutdown_timeout_usec / USEC_PER_SEC) + HA_STOP_SLACK_S
                        : (int64_t)(c->task_timeout_usec / USEC_PER_SEC);
        /* A destroy is never interrupted half-way, nor a restore (however
         * big its archive): they are followed until they end. */
        if (op->step != STEP_DESTROY && op->step != STEP_RESTORE &&
            step_elapsed_s(s, op, now) > limit) {
                (void)api->ops->task_abort(api->impl, op->upid);
                return fail(s, op, "the task ran longer than allowed (reap.task_timeout) and was stopped");
        }
        due_later(op, now);
        op->run.tries = 0;
        return 0;
}

struct task_owner {
        const struct saga *s;
        const struct op *op;
};

/* A task the journal already has (the destroy of an earlier reap of the
 * same vmid minutes ago, or this op's own earlier attempt that failed):
 * never the one a lost answer started. */
static bool task_on_record(void *userdata, const char *upid)
{
        const struct task_owner *t = userdata;

        for (size_t i = 0; i < t->s->ops.n; i++) {
                const json_t *all = t->s->ops.v[i]->upids;
                size_t k;
                json_t *u;

                json_array_foreach(all, k, u)
                        if (strcmp(json_string_value(u), upid) == 0)
                                return true;
        }
        return false;
}

/* No task for a destroy whose answer was lost: gone, moved, or provably
 * never sent; never sent again otherwise. */
static int resolve_destroy(struct saga *s, const struct cluster *api, struct op *op,
                           uint64_t now)
{
        struct pve_guest_status st;
        int e = api->ops->guest_status(api->impl, op->type, op->node, op->vmid, &st);

        if (e == -ENOENT && (e = locate(s, op, now)) == 0)
                return record_step(s, op, "done", STEP_DESTROY,
                                   json_pack("{s:s}", "exitstatus", "guest gone"));
        if (e == -EAGAIN) {
                due_later(op, now);
                return 0;
        }
        if (e > 0)
                return fail(s, op, "the guest moved to another node before the destroy reached it; not sending it again");
        if (e < 0)
                return abort_or_retry(s, api, op, -EIO, now);
        if (op->run.unsent) {
                log_op(LOG_NOTICE, op,
                       "reap %s: the destroy call never reached the server (no connection), sending it again",
                       op->id);
                return act_destroy(s, api, op, now);
        }
        return fail(s, op, "the destroy call got no answer and no destroy task exists; not sending it again");
}

static int send_start(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        struct task_request q = request(TASK_START, op);
        int e = send_step(s, api, op, STEP_START, NULL, &q, now);

        if (e < 0 && cluster_refused(e))
                return start_failed(s, op, api_error(api), now);
        return abort_or_retry(s, api, op, e, now);
}

/* The answer to a call never arrived (lost reply, crash). Ask the server
 * whether it acted; never send a destroy again. */
static int act_resolve(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        char upid[PVE_UPID_MAX];
        uint64_t since = op->intent_ts > TASK_SEARCH_SLACK_S
                                 ? (uint64_t)(op->intent_ts - TASK_SEARCH_SLACK_S)
                                 : 0;
        bool restore = op->step == STEP_RESTORE;
        struct pve_guest_status st;
        int e;

        e = api->ops->find_task(api->impl, restore ? op->restore_node : op->node,
                                restore ? op->restore_vmid : op->vmid,
                                op_step_task_types(op->step, op->type), since, task_on_record,
                                &(struct task_owner){ s, op }, upid);
        if (e >= 0) {
                log_op(LOG_NOTICE, op, "%s: found the %s task the server started: %s", op->id,
                       op_step_to_string(op->step), upid);
                e = record_step(s, op, "task", op->step, json_pack("{s:s}", "upid", upid));
                if (e >= 0)
                        due_now(op, now);
                return e;
        }
        if (e != -ENOENT)
                /* Cannot ask the server now: ask again later, never guess. */
                return abort_or_retry(s, api, op, -EIO, now);
        switch (op->step) {
        case STEP_DESTROY:
                return resolve_destroy(s, api, op, now);
        case STEP_RESTORE:
                return resolve_restore(s, api, op, now);
        case STEP_START:
                e = api->ops->guest_status(api->impl, op->type, op->node, op->vmid, &st);
                if (e >= 0 && strcmp(st.status, "running") == 0)
                        return record_step(s, op, "done", STEP_START,
                                           json_pack("{s:s}", "exitstatus", "running"));
                break;
        default:
                break;
        }
        /* The call never reached the server: send it again, announced by a
         * new intent. */
        log_op(LOG_NOTICE, op, "reap %s: the %s call never reached the server, sending it again",
               op->id, op_step_to_string(op->step));
        switch (op->step) {
        case STEP_SHUTDOWN:
                return send_shutdown(s, api, op, now);
        case STEP_SNAPSHOT:
                return act_snapshot(s, api, op, now);
        case STEP_ARCHIVE:
                return act_archive(s, api, op, now);
        case STEP_START:
                return send_start(s, api, op, now);
        default:
                return fail(s, op, "unexpected step without answer");
        }
}

/* --- compensation --- */

/* Put back: no 'proxreap-idle'; 'proxreap-failed' unless an operator
 * called the reap off (then nothing failed). */
static int tag_failed(const struct cluster *api, const struct op *op)
{
        struct guest_reading g;
        char tags[2200], tmp[2200];
        int e = api->ops->guest_read(api->impl, op->type, op->node, op->vmid, &g);

        if (e < 0)
                return e;
        if (tags_without(g.tags, TAG_IDLE, tmp, sizeof(tmp)) < 0 ||
            (op->called_off ? tags_without(tmp, TAG_FAILED, tags, sizeof(tags))
                            : tags_with(tmp, TAG_FAILED, tags, sizeof(tags))) < 0)
                e = -ENOBUFS;
        else if (strcmp(tags, g.tags) != 0)
                e = api->ops->set_tags(api->impl, op->type, op->node, op->vmid, tags, g.digest);
        guest_reading_done(&g);
        return e;
}

/* Who is under op's vmid now, for compensation. */
enum occupant {
        OCCUPANT_OURS, /* the guest proxreap stopped */
        OCCUPANT_OTHER, /* another guest: the one proxreap stopped is gone (vmids are unique) */
        OCCUPANT_UNSURE, /* changed so that proxreap cannot tell */
        OCCUPANT_NONE, /* no guest on op's node: moved or gone (locate()) */
        OCCUPANT_DESTROYED, /* a config left with lock 'destroyed': a destroy died after freeing the disks */
};

/* The guest proxreap stopped: its digest is the expected one, it holds
 * proxreap's snapshot, or its identity is the pinned one
 * (guestconf_identity()). */
static int identify(const struct cluster *api, const struct op *op, enum occupant *ret)
{
        struct guest_reading now;
        struct guest_conf pin;
        int e = api->ops->guest_read(api->impl, op->type, op->node, op->vmid, &now);

        if (e == -ENOENT) {
                *ret = OCCUPANT_NONE;
                return 0;
        }
        if (e < 0)
                return e;
        if (strcmp(now.lock, "destroyed") == 0)
                *ret = OCCUPANT_DESTROYED;
        else if (strcmp(now.digest, op->digest) == 0 || /* unchanged */
                 guest_reading_has_our_snapshot(&now, op->snapname) || /* edited, ours */
                 pinned_conf(op, &pin) < 0) /* journaled before pinning */
                *ret = OCCUPANT_OURS;
        else {
                switch (guestconf_identity(&pin, &now.conf)) {
                case IDENTITY_SAME:
                        *ret = OCCUPANT_OURS;
                        break;
                case IDENTITY_OTHER:
                        *ret = OCCUPANT_OTHER;
                        break;
                default:
                        *ret = OCCUPANT_UNSURE;
                        break;
                }
                guestconf_done(&pin);
        }
        /* A template cannot run: made one meanwhile, on purpose. */
        if (*ret == OCCUPANT_OURS && now.template)
                *ret = OCCUPANT_UNSURE;
        guest_reading_done(&now);
        return 0;
}

/* The guest proxreap stopped is gone: archived and verified means reaped;
 * else there is nothing to put back. */
static int compensate_gone(struct saga *s, struct op *op, const char *note)
{
        if (op->volid[0]) {
                log_op(LOG_WARNING, op, "reap %s: guest %u is gone%s; archive '%s' holds it",
                       op->id, (unsigned)op->vmid, note, op->volid);
                return act_finish(s, op);
        }
        return close_aborted(s, op, note[0] ? note : "; the guest was removed outside proxreap",
                             false);
}

/* No guest under the vmid on its node: where did it go? Gone, or moved
 * (then compensation goes on there at its next turn). */
static int compensate_missing(struct saga *s, struct op *op, uint64_t now)
{
        int e = locate(s, op, now);

        if (e == 0)
                return compensate_gone(s, op, "");
        if (e == -EAGAIN)
                due_later(op, now);
        return e == -EAGAIN ? 0 : e;
}

/* The guest is the one proxreap stopped: start it again, tag it, close. */
static int compensate_ours(struct saga *s, const struct cluster *api, struct op *op,
                           uint64_t now)
{
        struct pve_guest_status st;
        char note[400] = "";
        int e = api->ops->guest_status(api->impl, op->type, op->node, op->vmid, &st);

        if (e == -ENOENT)
                return compensate_missing(s, op, now);
        if (e < 0)
                return abort_or_retry(s, api, op, -EIO, now);
        if (op->stopped_by_us && !op->started_again && strcmp(st.status, "stopped") == 0) {
                if (op->start_failures < START_TRIES) {
                        log_op(LOG_NOTICE, op, "reap %s: starting guest %u again", op->id,
                               (unsigned)op->vmid);
                        return send_start(s, api, op, now);
                }
                snprintf(note, sizeof(note),
                         "; proxreap could not start it again (%.200s), so it is stopped: start it by hand",
                         op->exitstatus);
        }
        e = tag_failed(api, op);
        if (e < 0 && !cluster_refused(e)) {
                due_later(op, now);
                return 0;
        }
        if (e < 0)
                log_op(LOG_WARNING, op, "reap %s: cannot tag guest %u '%s': %s", op->id,
                       (unsigned)op->vmid, TAG_FAILED, api_error(api));
        return close_aborted(s, op, note, true);
}

static int act_compensate(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        enum occupant who = OCCUPANT_UNSURE;
        char note[400];
        int e = identify(api, op, &who);

        if (e < 0)
                return abort_or_retry(s, api, op, -EIO, now);
        switch (who) {
        case OCCUPANT_OURS:
                return compensate_ours(s, api, op, now);
        case OCCUPANT_NONE:
                return compensate_missing(s, op, now);
        case OCCUPANT_DESTROYED:
                return compensate_gone(s, op, " (a destroy freed its disks and left only a config locked 'destroyed')");
        case OCCUPANT_OTHER:
                /* The reason says so when a re-check found it. */
                return compensate_gone(s, op,
                                       strstr(op->reason, "holds another guest")
                                               ? "; proxreap left that guest alone"
                                               : "; the vmid now holds another guest, which proxreap left alone");
        case OCCUPANT_UNSURE:
                break;
        }
        snprintf(note, sizeof(note),
                 "; its configuration changed and proxreap cannot tell whether it is still the guest it stopped, so it left it as it is (start it with '%s start %u' if it is)",
                 op->type == GUEST_LXC ? "pct" : "qm", (unsigned)op->vmid);
        return close_aborted(s, op, note, true);
}

/* --- the engine --- */

static void run_op(struct saga *s, const struct cluster *api, struct op *op, uint64_t now)
{
        switch (op_next_action(op, s->c->snapshot, op->run.resumed)) {
        case ACT_NONE:
                return;
        case ACT_ABANDON:
                (void)veto(s, op, "proxreapd restarted before the first change; the guest was not touched");
                return;
        case ACT_START_SHUTDOWN:
                (void)act_shutdown(s, api, op, now);
                return;
        case ACT_START_SNAPSHOT:
                (void)act_snapshot(s, api, op, now);
                return;
        case ACT_START_ARCHIVE:
                (void)act_archive(s, api, op, now);
                return;
        case ACT_VERIFY:
                (void)act_verify(s, api, op, now);
                return;
        case ACT_START_DESTROY:
                (void)act_destroy(s, api, op, now);
                return;
        case ACT_FINISH_REAP:
                (void)act_finish(s, op);
                return;
        case ACT_RESOLVE:
                (void)act_resolve(s, api, op, now);
                return;
        case ACT_FOLLOW_TASK:
                (void)act_follow(s, api, op, now);
                return;
        case ACT_COMPENSATE:
                (void)act_compensate(s, api, op, now);
                return;
        }
}

uint64_t saga_step(struct saga *s, const struct cluster *api, uint64_t now)
{
        uint64_t next = UINT64_MAX;

        /* In every mode: a reap under way when reap mode was turned off
         * finishes (the guest is stopped already); none starts. Not on a
         * damaged journal: a step must not rest on missing records. */
        if (s->journal_error || s->damaged)
                return UINT64_MAX;
        /* One step per op per call; ops may be added while stepping (a
         * record of another process), so walk by index. */
        for (size_t i = 0; i < s->ops.n && !s->journal_error; i++) {
                struct op *op = s->ops.v[i];

                if (!op_needs_daemon(op))
                        continue;
                if (op->run.next_usec <= now)
                        run_op(s, api, op, now);
                if (op_needs_daemon(op) && op->run.next_usec < next)
                        next = op->run.next_usec;
        }
        /* A step due in the past (an op resumed after a restart is due
         * since 0, one that failed is due since it last ran) is due now:
         * the caller's timer hands the time back as the next now, and a
         * now far in the past made every backoff step already due, a
         * burst of task polls ending in the longest backoff. */
        if (next < now)
                next = now;
        return s->journal_error ? UINT64_MAX : next;
}

int saga_next_id(struct saga *s, const struct cluster *api, char *buf, size_t size, char *why,
                 size_t whysize)
{
        struct found_archive *v = NULL;
        ssize_t n = 0;

        /* A journal lost and begun anew would count from 1 again, and give
         * a new reap the id of one whose archive is still out there. */
        if (!s->ids_reserved && s->c->archive_storage) {
                n = archives_list(s->c, api, &v, why, whysize);
                if (n < 0)
                        return (int)n;
                for (ssize_t i = 0; i < n; i++)
                        ops_reserve_id(&s->ops, v[i].note.id);
                free(v);
        }
        s->ids_reserved = true;
        ops_next_id(&s->ops, s->c->node_name, buf, size);
        return 0;
}

int saga_begin_reap(struct saga *s, json_t *selected, uint64_t now)
{
        const char *id = json_string_value(json_object_get(selected, "op"));
        char copy[OP_ID_MAX];
        struct op *op;
        int e;

        snprintf(copy, sizeof(copy), "%s", id ? id : "");
        e = append(s, selected, "selected");
        if (e < 0)
                return e;
        op = ops_find(&s->ops, copy);
        if (!op)
                return -EINVAL; /* the fold refused it: a bug, never acted on */
        due_now(op, now);
        return 0;
}

/* --- restores --- */

/* The process that journaled op's restore intent is still running it. */
static bool restorer_alive(const struct op *op)
{
        char boot[40];

        boot_id(boot, sizeof(boot));
        if (op->restore_pid <= 0 || op->restore_pid == (int64_t)getpid() ||
            strcmp(op->restore_boot, boot) != 0)
                return false;
        /* Its start time unknown: a pid that lives counts (fail closed). */
        if (op->restore_start < 0)
                return kill((pid_t)op->restore_pid, 0) == 0 || errno == EPERM;
        return process_start(op->restore_pid) == op->restore_start;
}

static enum restore_outcome decide_restore(struct saga *s, struct op *op,
                                           const struct restore_target *t, char *why,
                                           size_t size)
{
        switch (op->state) {
        case OP_RESTORED:
                return RESTORE_DONE_ALREADY;
        case OP_RESTORING:
                /* Taken over on record: a third restore sees this one. */
                if (!restorer_alive(op)) {
                        json_t *rec = op_record(op->id, "resume", epoch(s));

                        if (rec)
                                json_object_update_new(rec, restorer());
                        return append(s, rec, "restore-resume") < 0 ? RESTORE_NOT_REAPED
                                                                    : RESTORE_RESUME;
                }
                snprintf(why, size,
                         "%s is being restored right now by proxreap (pid %lld), as guest %u on '%s'",
                         op->id, (long long)op->restore_pid, (unsigned)op->restore_vmid,
                         op->restore_node);
                return RESTORE_BUSY;
        case OP_REAPED:
                if (op->volid[0] && t)
                        return record_restore_intent(s, op, t, mono(s)) != 0 ? RESTORE_NOT_REAPED
                                                                           : RESTORE_STARTED;
                if (op->volid[0]) {
                        /* It was being restored when the caller looked. */
                        snprintf(why, size,
                                 "the restore of %s that was under way failed meanwhile (%s): run restore again",
                                 op->id, op->reason[0] ? op->reason : "no reason on record");
                        return RESTORE_NOT_REAPED;
                }
                break;
        default:
                break;
        }
        snprintf(why, size, "%s is '%s', not reaped: there is nothing to restore%s", op->id,
                 op_state_to_string(op->state),
                 op->state == OP_ABORTED ? " (the guest was never destroyed)" : "");
        return RESTORE_NOT_REAPED;
}

int saga_begin_restore(struct saga *s, const struct cluster *api, const char *id,
                       const struct restore_target *t, enum restore_outcome *ret, char *why,
                       size_t size)
{
        char err[512] = "";
        struct op *op;
        int e;

        /* The decision under the journal's lock, on what it holds now: of
         * two restores of one op, the second sees the first's intent. */
        e = journal_hold(s->j, ops_apply, &s->ops, err, sizeof(err));
        if (e < 0) {
                snprintf(why, size, "%s", err[0] ? err : strerror(-e));
                return e;
        }
        op = ops_find(&s->ops, id);
        if (op)
                *ret = decide_restore(s, op, t, why, size);
        else {
                *ret = RESTORE_NOT_REAPED;
                snprintf(why, size, "no op '%s' in the journal", id);
        }
        journal_release(s->j);
        if (s->journal_error) {
                snprintf(why, size, "journal '%s' cannot be written", journal_path(s->j));
                return s->journal_error;
        }
        if (*ret != RESTORE_STARTED)
                return 0;
        e = send_restore(s, api, op, mono(s));
        if (op->state == OP_REAPED) {
                *ret = RESTORE_REFUSED;
                snprintf(why, size, "%s", op->reason);
        }
        return e < 0 && s->journal_error ? e : 0;
}

int saga_drive(struct saga *s, const struct cluster *api, const char *id,
               bool (*progress)(void *userdata, uint64_t elapsed_usec), void *userdata,
               char *why, size_t size)
{
        struct op *op = ops_find(&s->ops, id);
        uint64_t start = mono(s);

        const char *what = op && op->state == OP_ABORTING ? "abort" : "restore";

        if (!op) {
                snprintf(why, size, "no op '%s' in the journal", id);
                return 1;
        }
        while ((op->state == OP_RESTORING || op->state == OP_ABORTING) && !s->journal_error) {
                uint64_t now = mono(s);

                if (op->run.next_usec > now) {
                        if (progress && !progress(userdata, now - start)) {
                                snprintf(why, size,
                                         "stopped waiting; the %s stays under way: run 'proxreap %s %s' again to follow it",
                                         what, what, id);
                                return 1;
                        }
                        s->clock.sleep_usec(s->clock.userdata,
                                            op->run.next_usec - now < USEC_PER_SEC
                                                    ? op->run.next_usec - now
                                                    : USEC_PER_SEC);
                        continue;
                }
                run_op(s, api, op, now);
                if (op->state == OP_RESTORING && op->run.tries >= STEP_TRIES) {
                        snprintf(why, size,
                                 "Proxmox VE gives no answer (%s): the restore stays under way; run 'proxreap restore %s' again",
                                 api_error(api), id);
                        return 1;
                }
        }
        if (s->journal_error) {
                snprintf(why, size, "journal '%s' cannot be written", journal_path(s->j));
                return 1;
        }
        if (op->state == OP_RESTORED || op->state == OP_ABORTED)
                return 0;
        snprintf(why, size, "%s", op->reason);
        return 1;
}

int saga_run_task(struct saga *s, const struct cluster *api, const struct task_request *q,
                  char *why, size_t size)
{
        char upid[PVE_UPID_MAX];
        struct pve_task_status t = { 0 };
        uint64_t pause = 250 * USEC_PER_MSEC;
        unsigned failures = 0;
        int e = api->ops->start_task(api->impl, q, upid);

        while (e >= 0) {
                e = api->ops->task_status(api->impl, upid, &t);
                if (e >= 0 && !t.running)
                        break;
                if (e < 0 && ++failures <= 10)
                        e = 0;
                if (e >= 0) {
                        s->clock.sleep_usec(s->clock.userdata, pause);
                        pause = pause < 2 * USEC_PER_SEC ? pause * 2 : pause;
                }
        }
        if (e < 0) {
                snprintf(why, size, "%s", api_error(api));
                return 1;
        }
        if (!pve_task_succeeded(t.exitstatus)) {
                snprintf(why, size, "%s", t.exitstatus);
                return 1;
        }
        return 0;
}

/* --- a reap found by its archive --- */

int saga_adopt(struct saga *s, json_t *adopted, char *why, size_t size)
{
        const char *id = json_string_value(json_object_get(adopted, "op"));
        const char *volid = json_string_value(json_object_get(adopted, "volid"));
        uint32_t vmid = (uint32_t)json_integer_value(json_object_get(adopted, "vmid"));
        char err[512] = "";
        int e = journal_hold(s->j, ops_apply, &s->ops, err, sizeof(err));
        const struct op *op;

        if (e < 0) {
                snprintf(why, size, "journal '%s': %s", journal_path(s->j), err);
                json_decref(adopted);
                return e;
        }
        op = id ? ops_find(&s->ops, id) : NULL;
        if (!id || !volid) {
                snprintf(why, size, "not an archive's record");
                json_decref(adopted);
                e = -EINVAL;
        } else if (op && op->vmid == vmid && strcmp(op->volid, volid) == 0) {
                json_decref(adopted);
                e = 1; /* another restore adopted it meanwhile */
        } else if (op && !op_adoptable(op, vmid)) {
                /* One id, two reaps: never the other one's guest. */
                snprintf(why, size,
                         "the journal's %s is guest %u ('%s') with archive '%s', not guest %u with archive '%s'",
                         op->id, (unsigned)op->vmid, op->name, op->volid[0] ? op->volid : "-",
                         (unsigned)vmid, volid);
                json_decref(adopted);
                e = -EEXIST;
        } else
                e = append(s, adopted, "adopted");
        journal_release(s->j);
        return e;
}

/* --- abort (the CLI) --- */

#define ABORT_REASON "called off by the operator (proxreap abort)"

static enum abort_outcome decide_abort(struct saga *s, struct op *op, char *why, size_t size)
{
        switch (op->state) {
        case OP_SELECTED: {
                /* Nothing was sent: closed as it is. */
                json_t *rec = op_record(op->id, "aborted", epoch(s));

                set_str(rec, "reason", ABORT_REASON);
                if (rec)
                        json_object_update_new(rec, json_pack("{s:b, s:b}", "vetoed", 1,
                                                              "called_off", 1));
                return append(s, rec, "aborted") < 0 ? ABORT_NOT_A_REAP : ABORT_DONE;
        }
        case OP_SHUTDOWN:
        case OP_SNAPSHOT:
        case OP_ARCHIVE:
        case OP_VERIFY: {
                /* Put back like any reap that failed before its destroy. */
                json_t *rec = op_record_step(op->id, "failing", op->step, epoch(s));

                set_str(rec, "reason", ABORT_REASON);
                if (rec)
                        json_object_set_new(rec, "called_off", json_true());
                return append(s, rec, "failing") < 0 ? ABORT_NOT_A_REAP : ABORT_STARTED;
        }
        case OP_ABORTING:
                return ABORT_STARTED; /* being put back already */
        case OP_DESTROY:
                snprintf(why, size,
                         "the destroy of guest %u was sent already and cannot be called back: once it has ended, bring the guest back with 'proxreap restore %s'",
                         (unsigned)op->vmid, op->id);
                return ABORT_TOO_LATE;
        case OP_REAPED:
                snprintf(why, size,
                         "%s is reaped already: bring the guest back with 'proxreap restore %s'",
                         op->id, op->id);
                return ABORT_TOO_LATE;
        default:
                break;
        }
        snprintf(why, size, "%s is '%s', not a reap under way: there is nothing to abort", op->id,
                 op_state_to_string(op->state));
        return ABORT_NOT_A_REAP;
}

int saga_abort(struct saga *s, const struct cluster *api, const char *id,
               enum abort_outcome *ret, char *why, size_t size)
{
        char err[512] = "", upid[PVE_UPID_MAX] = "";
        struct op *op;
        int e;

        /* Decided under the journal's lock: a daemon stepping this op
         * writes its next intent only on the op as it is then (record_intent). */
        e = journal_hold(s->j, ops_apply, &s->ops, err, sizeof(err));
        if (e < 0) {
                snprintf(why, size, "%s", err[0] ? err : strerror(-e));
                return e;
        }
        op = ops_find(&s->ops, id);
        if (op && op->phase == PHASE_TASK && op->state != OP_DESTROY && op->state != OP_ABORTING)
                snprintf(upid, sizeof(upid), "%s", op->upid);
        if (op)
                *ret = decide_abort(s, op, why, size);
        else {
                *ret = ABORT_NOT_A_REAP;
                snprintf(why, size, "no op '%s' in the journal", id);
        }
        journal_release(s->j);
        if (s->journal_error) {
                snprintf(why, size, "journal '%s' cannot be written", journal_path(s->j));
                return s->journal_error;
        }
        /* A task of the reap still running (a long vzdump) would hold the
         * guest's lock: stopped, best effort. */
        if (*ret == ABORT_STARTED && upid[0] && api->ops->task_abort(api->impl, upid) < 0)
                log_op(LOG_WARNING, op, "%s: cannot stop task %s: %s", id, upid, api_error(api));
        if (*ret == ABORT_STARTED)
                due_now(op, mono(s));
        return 0;
}

/* Damage in the journal: the records of some op are missing, so no
 * decision of the daemon can rest on it. It reaps nothing more and steps
 * no reap under way (their guests stay as they are: stopped is safe)
 * until the journal is repaired; it keeps observing. The CLI warns and
 * goes on with the intact ops. */
static void note_damage(struct saga *s)
{
        const struct journal_damage *d = journal_damage(s->j);
        char lines[160];

        if (d->count == s->damaged)
                return;
        s->damaged = d->count;
        if (s->role != SAGA_DAEMON)
                return; /* the CLI said so when it read the journal */
        journal_damage_lines(d, lines, sizeof(lines));
        log_error("journal '%s' is damaged: %u line(s) skipped (line %s; first: %s); reaping has "
                  "stopped, observing goes on: stop proxreapd and run 'proxreap journal repair'",
                  journal_path(s->j), d->count, lines, d->first);
}

unsigned saga_damaged(const struct saga *s)
{
        return s->damaged;
}

/* --- lifecycle --- */

int saga_open(const struct config *c, enum saga_role role, struct saga **ret, char *err,
              size_t errsz)
{
        struct saga *s = calloc(1, sizeof(*s));
        int e;

        if (!s)
                return -ENOMEM;
        s->c = c;
        s->role = role;
        s->claim = -1;
        s->clock = (struct saga_clock){ real_monotonic, real_epoch, real_sleep, NULL };
        ops_init(&s->ops);
        /* One daemon per journal, for its whole life: claimed before the
         * journal is even read (a second one would cut, resume, act). */
        e = role == SAGA_DAEMON ? journal_claim(c->journal_file, &s->claim, err, errsz) : 0;
        if (e >= 0)
                e = journal_open(c->journal_file, JOURNAL_WRITE | JOURNAL_SKIP_DAMAGE, ops_apply,
                                 &s->ops, &s->j, NULL, err, errsz);
        if (e < 0) {
                saga_free(s);
                return e;
        }
        note_damage(s);
        if (s->ops.bad_records)
                log_warning(saga_damaged(s)
                                    ? "journal '%s': %u more record(s) left aside, most likely of ops whose first records were in the damaged lines; first: %s"
                                    : "journal '%s': %u record(s) not understood and ignored, first: %s",
                            c->journal_file, s->ops.bad_records, s->ops.first_bad);
        for (size_t i = 0; i < s->ops.n; i++) {
                struct op *op = s->ops.v[i];

                op->run.resumed = true;
                if (role == SAGA_DAEMON && op_needs_daemon(op))
                        log_op(LOG_NOTICE, op,
                               "reap %s of guest %u was interrupted at %s: resuming (%s)", op->id,
                               (unsigned)op->vmid, op_state_to_string(op->state),
                               op_action_to_string(op_next_action(op, c->snapshot, true)));
        }
        *ret = s;
        return 0;
}

struct saga *saga_free(struct saga *s)
{
        if (!s)
                return NULL;
        journal_close(s->j);
        ops_clear(&s->ops);
        if (s->claim >= 0)
                close(s->claim);
        free(s);
        return NULL;
}

void saga_set_config(struct saga *s, const struct config *c)
{
        s->c = c;
}

void saga_set_notifier(struct saga *s, struct notifier *n)
{
        s->notifier = n;
}

void saga_set_view(struct saga *s, const struct saga_view *v)
{
        s->view = v ? *v : (struct saga_view){ 0 };
}

void saga_set_clock(struct saga *s, const struct saga_clock *c)
{
        s->clock = *c;
}

const struct ops *saga_ops(const struct saga *s)
{
        return &s->ops;
}

int saga_journal_error(const struct saga *s)
{
        return s->journal_error;
}

void saga_refresh(struct saga *s)
{
        char err[512] = "";

        if (journal_refresh(s->j, ops_apply, &s->ops, err, sizeof(err)) < 0 &&
            strcmp(err, s->last_refresh_error) != 0) {
                log_error("journal: %s", err);
                snprintf(s->last_refresh_error, sizeof(s->last_refresh_error), "%s", err);
        }
        note_damage(s);
}
