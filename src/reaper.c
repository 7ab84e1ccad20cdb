/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "reaper.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guestconf.h"
#include "journal.h"
#include "log.h"
#include "pve_api.h"
#include "util.h"
#include "vmidmap.h"

#define TAG_IDLE "proxreap-idle"
#define TAG_FAILED "proxreap-failed"

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
 * (a backup job's lock may hold it for minutes): about 15 minutes in all. */
#define START_TRIES 6
#define START_RETRY_USEC (30 * USEC_PER_SEC)
/* How long what an idle guest's configuration said is trusted for the
 * verdicts of status and mark mode; selection and every step read it
 * again anyway. */
#define CONF_TTL_USEC USEC_PER_HOUR

/* A guest mark mode or the grace period has tagged. */
struct mark {
        uint32_t vmid;
        uint64_t since_usec; /* first seen idle and marked */
        bool cancelled; /* an operator removed our tag: leave it alone */
};

struct reaper {
        const struct config *c;
        struct journal *j;
        struct ops ops;
        int journal_error;
        struct vmid_map marks; /* struct mark */
        /* The observer of the last cycle: where the latest poll says a
         * guest is (its pool) for the re-checks. */
        const struct observer *observer;
        bool breaker_open;
        char breaker[256];
        char last_refresh_error[512];
        struct notifier *notifier;
};

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

/* --- journal --- */

/* Ends of a reap go to the webhook, once: when their record is written. */
static void announce(struct reaper *r, json_t *rec)
{
        const char *ev = json_string_value(json_object_get(rec, "ev"));
        const struct op *op = ops_find(&r->ops, json_string_value(json_object_get(rec, "op")));
        enum notify_event e;

        if (!r->notifier || !ev || !op)
                return;
        if (strcmp(ev, "reaped") == 0)
                e = NOTIFY_REAP;
        else if (strcmp(ev, "aborted") == 0 && !op->vetoed)
                e = NOTIFY_ABORT;
        else
                return;
        notifier_send(r->notifier, e, op_event_fields(op, e));
}

static int append(struct reaper *r, json_t *rec, const char *crash_name)
{
        char err[512] = "";
        uint64_t seq;
        int e;

        if (r->journal_error)
                goto failed;
        if (!rec) {
                r->journal_error = -ENOMEM;
                goto failed;
        }
        e = journal_append(r->j, rec, ops_apply, &r->ops, &seq, err, sizeof(err));
        if (e < 0) {
                r->journal_error = e;
                log_error("journal '%s' cannot be written: %s; all destructive work has stopped "
                          "(fix the disk, then restart proxreapd)",
                          journal_path(r->j), err[0] ? err : strerror(-e));
                json_decref(rec);
                return e;
        }
        (void)ops_apply(&r->ops, seq, 0, rec);
        announce(r, rec);
        json_decref(rec);
        crash_point(crash_name);
        return 0;
failed:
        json_decref(rec);
        return r->journal_error;
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

/* ops may move (realloc) when a record of a new op is folded: ops are
 * always looked up again by id after an append. */
static struct op *again(struct reaper *r, const char *id)
{
        return ops_find(&r->ops, id);
}

static int record_step(struct reaper *r, const char *id, const char *ev, enum op_step step,
                       json_t *extra)
{
        json_t *rec = op_record_step(id, ev, step, now_epoch());
        char crash[64];

        if (rec && extra)
                json_object_update(rec, extra);
        json_decref(extra);
        snprintf(crash, sizeof(crash), "%s-%s", op_step_to_string(step), ev);
        return append(r, rec, crash);
}

/* Failure before destroy: compensation starts. */
static int fail(struct reaper *r, const char *id, const char *reason)
{
        struct op *op = again(r, id);
        json_t *rec;

        log_op(LOG_WARNING, op, "reap %s of guest %u ('%s') failed at %s: %s", op->id,
               (unsigned)op->vmid, op->name, op_step_to_string(op->step), reason);
        rec = op_record_step(id, "failing", op->step, now_epoch());
        set_str(rec, "reason", reason);
        return append(r, rec, "failing");
}

/* Nothing was changed: close the op without compensation or retry delay. */
static int veto(struct reaper *r, const char *id, const char *reason)
{
        struct op *op = again(r, id);
        json_t *rec = op_record(id, "aborted", now_epoch());

        log_op(LOG_NOTICE, op, "reap %s of guest %u ('%s') called off: %s", op->id,
               (unsigned)op->vmid, op->name, reason);
        set_str(rec, "reason", reason);
        if (rec)
                json_object_set_new(rec, "vetoed", json_true());
        return append(r, rec, "aborted");
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

/* --- the steps --- */

static bool api_refused(int e)
{
        /* The server answered with an error status: it did not act. An
         * answer we cannot read (-EBADMSG) is not a refusal: the server may
         * have acted, so it is resolved like a lost answer. */
        return e == -EACCES || e == -EREMOTEIO || e == -ENOMSG || e == -EINVAL || e == -ENOENT;
}

/* Sends one step's call: intent first (durable), then the call, then the
 * answer. A call without an answer stays an intent and is resolved later. */
static int send_step(struct reaper *r, struct pve *p, const char *id, enum op_step step,
                     json_t *intent_extra, const char *method, const char *suffix,
                     const struct pve_form *form, uint64_t now)
{
        char upid[PVE_UPID_MAX], crash[64];
        struct op *op;
        int e;

        e = record_step(r, id, "intent", step, intent_extra);
        if (e < 0)
                return e;
        op = again(r, id);
        op->run.intent_usec = now;
        if (step == STEP_ARCHIVE)
                e = pve_vzdump(p, op->node, form, upid);
        else
                e = pve_guest_task(p, method, op->type, op->node, op->vmid, suffix, form, upid);
        snprintf(crash, sizeof(crash), "%s-sent", op_step_to_string(step));
        crash_point(crash);
        op = again(r, id);
        /* No connection could be made (a write always opens a new one):
         * the call provably never reached the server. */
        op->run.unsent = e == -ECONNREFUSED || e == -EHOSTUNREACH;
        if (e < 0 && !api_refused(e)) {
                /* No answer: did the server act? Find out before anything
                 * is sent again. */
                log_op(LOG_WARNING, op, "%s of guest %u: no answer (%s), checking the server",
                       op_step_to_string(step), (unsigned)op->vmid, pve_error(p));
                due_later(op, now);
                return 0;
        }
        if (e < 0)
                return e;
        e = record_step(r, id, "task", step, json_pack("{s:s}", "upid", upid));
        if (e >= 0)
                due_later(again(r, id), now);
        return e;
}

static int close_aborted(struct reaper *r, const struct op *op, const char *note, bool guest_kept);

static int abort_or_retry(struct reaper *r, struct pve *p, const char *id, int e, uint64_t now)
{
        struct op *op = again(r, id);
        char why[600];

        if (e >= 0)
                return e;
        if (r->journal_error)
                return e;
        if (api_refused(e))
                return fail(r, id, pve_error(p));
        if (op->run.tries + 1 >= STEP_TRIES) {
                /* Nothing changed yet: a veto; else the guest is put back;
                 * putting it back itself failing ends with what to do. */
                snprintf(why, sizeof(why), "%s (gave up after %u tries)", pve_error(p),
                         op->run.tries + 1);
                if (op->state == OP_ABORTING) {
                        snprintf(why, sizeof(why),
                                 "; proxreap could not put the guest back (%.300s, %u tries): check it by hand",
                                 pve_error(p), op->run.tries + 1);
                        return close_aborted(r, op, why, true);
                }
                return op->state == OP_SELECTED ? veto(r, id, why) : fail(r, id, why);
        }
        log_op(LOG_WARNING, op, "reap %s: %s, retrying", op->id, pve_error(p));
        due_later(op, now);
        return 0;
}

/* --- the one predicate, on what Proxmox says right now --- */

/* Where a re-check happens: what it may expect of the guest. */
enum check_point {
        AT_SELECT, /* running; its window decided it is idle */
        AT_SHUTDOWN, /* running and idle by its numbers of this moment */
        AT_STOPPED, /* verify and destroy: stopped by proxreap (the saga checks that) */
};

struct live {
        struct guest_reading read; /* its configuration */
        struct pve_guest_status st;
        struct verdict v; /* policy_recheck() of both */
};

/* The pool the latest poll shows the guest in, else the one it had. */
static const char *current_pool(const struct reaper *r, uint32_t vmid, const char *pinned)
{
        const struct guest *g = r->observer ? guest_table_find(observer_table(r->observer), vmid)
                                            : NULL;

        return g ? g->pool : pinned;
}

/* A poll of this process completed after since (monotonic). */
static bool poll_since(const struct reaper *r, uint64_t since)
{
        uint64_t last = r->observer ? observer_summary(r->observer)->last_ok_usec : 0;

        return last > 0 && last > since;
}

/* Reads the guest and judges it with policy_recheck(): every exclusion
 * rule of the poll's verdict, on its configuration and status of now. */
static int judge_live(struct reaper *r, struct pve *p, enum guest_type t, const char *node,
                      uint32_t vmid, const char *pool, enum check_point at, struct live *ret)
{
        struct live_numbers n;
        struct guest_facts f;
        int e;

        e = guestconf_read(p, t, node, vmid, &ret->read);
        if (e < 0)
                return e;
        e = pve_guest_status(p, t, node, vmid, &ret->st);
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
        policy_recheck(r->c, &f, at == AT_SHUTDOWN ? &n : NULL, &ret->v);
        return 0;
}

static void live_done(struct live *l)
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
static int recheck(struct reaper *r, struct pve *p, const struct op *op, enum check_point at,
                   char *why, size_t size)
{
        struct live l;
        char reasons[600];
        int e = judge_live(r, p, op->type, op->node, op->vmid,
                           current_pool(r, op->vmid, op->pool), at, &l);

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
        live_done(&l);
        return e;
}

/* Safe to send: the guest was re-checked right before (recheck()) or the
 * earlier call provably never reached the server (act_resolve()). */
static int send_shutdown(struct reaper *r, struct pve *p, const char *id, uint64_t now)
{
        const struct config *c = r->c;
        uint64_t timeout_s = c->shutdown_timeout_usec / USEC_PER_SEC;
        struct pve_form f = { 0 };
        int e;

        pve_form_addf(&f, "timeout", "%" PRIu64, timeout_s);
        pve_form_add(&f, "forceStop", c->force_stop ? "1" : "0");
        e = send_step(r, p, id, STEP_SHUTDOWN,
                      json_pack("{s:I, s:b}", "timeout", (json_int_t)timeout_s, "force_stop",
                                c->force_stop),
                      "POST", "/status/shutdown", &f, now);
        pve_form_clear(&f);
        return abort_or_retry(r, p, id, e, now);
}

static int act_shutdown(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        char why[700], id[16];
        int e;

        snprintf(id, sizeof(id), "%s", op->id);
        e = recheck(r, p, op, AT_SHUTDOWN, why, sizeof(why));
        if (e == -ENOENT)
                snprintf(why, sizeof(why), "the guest is no longer on '%s'", op->node);
        if (e > 0 || e == -ENOENT)
                return veto(r, id, why);
        if (e < 0)
                return abort_or_retry(r, p, id, e, now);
        log_op(LOG_NOTICE, op, "reap %s: shutting down guest %u ('%s') on '%s'", op->id,
               (unsigned)op->vmid, op->name, op->node);
        return send_shutdown(r, p, id, now);
}

static void snapshot_name(char *buf, size_t size)
{
        time_t t = (time_t)now_epoch();
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(buf, size, GUESTCONF_SNAPSHOT_PREFIX "%Y%m%dT%H%M%SZ", &tm);
}

static bool snapshot_unsupported(const char *msg)
{
        return strstr(msg, "snapshot feature is not available") != NULL;
}

static int snapshot_skipped(struct reaper *r, const char *id, const char *msg)
{
        struct op *op = again(r, id);

        log_op(LOG_NOTICE, op, "reap %s: guest %u cannot be snapshotted (%s), going on without",
               op->id, (unsigned)op->vmid, msg);
        return record_step(r, id, "done", STEP_SNAPSHOT, json_pack("{s:s}", "skipped", msg));
}

static int act_snapshot(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        struct pve_form f = { 0 };
        char name[48], desc[128], id[16];
        int e;

        snprintf(id, sizeof(id), "%s", op->id);
        snapshot_name(name, sizeof(name));
        snprintf(desc, sizeof(desc), GUESTCONF_SNAPSHOT_DESCRIPTION "%s", id);
        pve_form_add(&f, "snapname", name);
        pve_form_add(&f, "description", desc);
        e = send_step(r, p, id, STEP_SNAPSHOT, json_pack("{s:s}", "snapname", name), "POST",
                      "/snapshot", &f, now);
        pve_form_clear(&f);
        if (e < 0 && api_refused(e) && snapshot_unsupported(pve_error(p)))
                return snapshot_skipped(r, id, pve_error(p));
        return abort_or_retry(r, p, id, e, now);
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

static void notes_template(const struct op *op, char *buf, size_t size)
{
        char text[1024];

        /* The first line is what storage content lists show: it carries
         * the op id verify looks for. {{...}} are vzdump's variables. */
        snprintf(text, sizeof(text),
                 "proxreap %s: idle guest {{guestname}} ({{vmid}}) archived before removal\n"
                 "restore: proxreap restore %s\n"
                 "evidence: %.600s",
                 op->id, op->id, op->evidence ? op->evidence : "");
        notes_escape(text, buf, size);
}

static int act_archive(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        const struct config *c = r->c;
        struct pve_form f = { 0 };
        char notes[1024], id[16];
        int e;

        snprintf(id, sizeof(id), "%s", op->id);
        notes_template(op, notes, sizeof(notes));
        log_op(LOG_NOTICE, op, "reap %s: archiving guest %u to '%s'", op->id, (unsigned)op->vmid,
               c->archive_storage);
        pve_form_addf(&f, "vmid", "%" PRIu32, op->vmid);
        pve_form_add(&f, "storage", c->archive_storage);
        pve_form_add(&f, "mode", "stop");
        pve_form_add(&f, "compress", c->compress);
        /* Protected: retention can never prune the only copy. remove=0:
         * existing backups of the guest are never pruned. */
        pve_form_add(&f, "protected", "1");
        pve_form_add(&f, "remove", "0");
        pve_form_add(&f, "notes-template", notes);
        e = send_step(r, p, id, STEP_ARCHIVE,
                      json_pack("{s:s, s:s}", "storage", c->archive_storage, "compress",
                                c->compress),
                      "POST", NULL, &f, now);
        pve_form_clear(&f);
        return abort_or_retry(r, p, id, e, now);
}

/* The archive found for op is this guest's: named for its vmid and type
 * on the archive storage, protected, not empty. 0, or 1 with why. */
static int archive_is_ours(const struct reaper *r, const struct op *op,
                           const struct pve_backup *b, char *why, size_t size)
{
        if (!pve_volid_is_backup_of(b->volid, r->c->archive_storage, op->type, op->vmid))
                snprintf(why, size,
                         "the archive listing names '%s', which is not an archive of %s %u on '%s'",
                         b->volid, guest_type_to_string(op->type), (unsigned)op->vmid,
                         r->c->archive_storage);
        else if (b->size == 0 || !b->protected)
                snprintf(why, size, "archive '%s' is %s", b->volid,
                         b->size == 0 ? "empty" : "not protected");
        else
                return 0;
        return 1;
}

/* What the archive holds is the pinned guest (extractconfig, compared
 * field by field, every pinned volume inside). 0, 1 with why, or < 0. */
static int archive_holds_guest(struct pve *p, const struct op *op, const char *volid,
                               char **ret_text, char *why, size_t size)
{
        struct guest_conf pin, arch;
        char err[256];
        int e = pve_extract_config(p, op->node, volid, ret_text);

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

static int act_verify(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        const struct config *c = r->c;
        struct pve_backup_query q;
        struct pve_backup b;
        char *config = NULL, id[16], why[700], name[256];
        int e;

        snprintf(id, sizeof(id), "%s", op->id);
        /* The very archive proxreap's vzdump task created (its log names
         * it): a copy with the same notes put there by anyone else is not
         * taken for it. */
        e = pve_task_archive_name(p, op->upid, name, sizeof(name));
        if (e >= 0) {
                q = (struct pve_backup_query){ .vmid = op->vmid, .marker = op->id, .name = name,
                                               .min_ctime = (int64_t)op->archive_start };
                e = pve_find_backup(p, op->node, c->archive_storage, &q, &b);
        }
        if (e == -ENOENT)
                snprintf(why, sizeof(why), "%s", pve_error(p));
        if (e == -ENOENT || (e >= 0 && archive_is_ours(r, op, &b, why, sizeof(why)))) {
                /* A listing may lag behind the task's end, or come back
                 * garbled once: asked again a few times, then given up. */
                if (op->run.tries + 1 >= VERIFY_TRIES)
                        return fail(r, id, why);
                due_later(op, now);
                return 0;
        }
        if (e >= 0)
                e = archive_holds_guest(p, op, b.volid, &config, why, sizeof(why));
        /* And the guest is still the one archived: a change after vzdump
         * (or a new guest under its vmid) is not in the archive. */
        if (e == 0)
                e = recheck(r, p, op, AT_STOPPED, why, sizeof(why));
        if (e != 0)
                free(config);
        if (e > 0)
                return fail(r, id, why);
        if (e < 0)
                return abort_or_retry(r, p, id, e, now);
        log_op(LOG_NOTICE, op, "reap %s: archive '%s' verified (%" PRIu64 " bytes)", op->id,
               b.volid, b.size);
        e = record_step(r, id, "done", STEP_VERIFY,
                        json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}", "volid", b.volid, "size",
                                  (json_int_t)b.size, "ctime", (json_int_t)b.ctime, "config",
                                  config, "digest", op->digest, "node", op->node));
        free(config);
        if (e >= 0) {
                op = again(r, id);
                op->run.verified_usec = now_monotonic_usec();
                due_now(op, now);
        }
        return e;
}

static int act_destroy(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        struct pve_form f = { 0 };
        char id[16], why[700];
        /* A destroy call of this process that provably never left (no
         * connection) may be sent again, checked like the first. */
        bool resend = op->step == STEP_DESTROY && op->phase == PHASE_INTENT && op->run.unsent;
        int e;

        snprintf(id, sizeof(id), "%s", op->id);
        /* Never destroy without a verified archive on record. */
        if (!op->volid[0] || (!resend && (op->step != STEP_VERIFY || op->phase != PHASE_DONE)))
                return fail(r, id, "no verified archive on record");
        /* What only the poll shows (the guest's pool) must be newer than
         * the archive: wait for a poll completed after it. */
        if (!poll_since(r, op->run.verified_usec)) {
                due_later(op, now);
                return 0;
        }
        e = recheck(r, p, op, AT_STOPPED, why, sizeof(why));
        if (e > 0) {
                snprintf(why + strlen(why), sizeof(why) - strlen(why), ": not destroying it");
                return fail(r, id, why);
        }
        if (e < 0)
                return abort_or_retry(r, p, id, e, now);
        /* Safe to send: a verified protected archive holds this guest
         * (verify compared its configuration and every volume with the
         * ones pinned at selection, and an archive holds every volume the
         * guest has), the guest is the pinned one (same digest), stopped,
         * and no exclusion rule applies right now; no earlier destroy of
         * this op reached the server (act_resolve resends only one that
         * never left). Without destroy-unreferenced-disks: a disk with
         * the guest's vmid that its configuration does not name is in no
         * archive, so it stays. */
        log_op(LOG_NOTICE, op, "reap %s: destroying guest %u ('%s'); archive '%s'", op->id,
               (unsigned)op->vmid, op->name, op->volid);
        pve_form_add(&f, "purge", "1");
        e = send_step(r, p, id, STEP_DESTROY, NULL, "DELETE", "", &f, now);
        pve_form_clear(&f);
        return abort_or_retry(r, p, id, e, now);
}

static int act_finish(struct reaper *r, struct op *op)
{
        json_t *rec = op_record(op->id, "reaped", now_epoch());
        char id[16];
        int e;

        snprintf(id, sizeof(id), "%s", op->id);
        set_int(rec, "freed_mem", (int64_t)op->maxmem);
        set_int(rec, "freed_disk", (int64_t)op->maxdisk);
        if (rec)
                json_object_set_new(rec, "freed_cpu", json_real(op->maxcpu));
        e = append(r, rec, "reaped");
        if (e < 0)
                return e;
        /* Logged once it is on record, so its PROXREAP_STATE says reaped. */
        op = again(r, id);
        log_op(LOG_NOTICE, op,
               "reap %s: guest %u ('%s') reaped; freed %" PRIu64 " MiB memory, %" PRIu64
               " GiB disk; restore with 'proxreap restore %s'",
               op->id, (unsigned)op->vmid, op->name, op->maxmem >> 20, op->maxdisk >> 30, op->id);
        return 0;
}

/* Seconds since the current step's intent. By CLOCK_MONOTONIC from when
 * this process wrote it, so a step of the wall clock moves no limit; a step
 * resumed after a restart starts from the journal's timestamp. */
static int64_t step_elapsed_s(struct op *op, uint64_t now)
{
        if (!op->run.intent_usec) {
                int64_t age = now_epoch() - op->intent_ts;
                uint64_t a = age > 0 ? (uint64_t)age * USEC_PER_SEC : 0;

                op->run.intent_usec = now > a ? now - a : 1;
        }
        return now > op->run.intent_usec ? (int64_t)((now - op->run.intent_usec) / USEC_PER_SEC)
                                         : 0;
}

/* proxreap's own snapshot changed the guest's digest. Nothing else may
 * have changed: the configuration is still the pinned one, field by field
 * (parent, the snapshot's name, is not compared). 0 with the new digest,
 * 1 with why not, < 0: the server could not be asked. */
static int snapshot_changed_nothing(struct pve *p, const struct op *op, char *digest,
                                    size_t dsize, char *why, size_t size)
{
        struct guest_reading now;
        struct guest_conf pin;
        char diff[400];
        int e = guestconf_read(p, op->type, op->node, op->vmid, &now);

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
static int locate(struct reaper *r, struct op *op, uint64_t now)
{
        const struct guest *g;
        char id[16];
        json_t *rec;
        int e;

        if (!op->run.missing_usec)
                op->run.missing_usec = now_monotonic_usec();
        if (!poll_since(r, op->run.missing_usec))
                return -EAGAIN;
        g = guest_table_find(observer_table(r->observer), op->vmid);
        op->run.missing_usec = 0;
        if (!g || g->type != (uint8_t)op->type)
                return 0;
        if (strcmp(g->node, op->node) == 0)
                return -EAGAIN; /* back where it was: look again */
        snprintf(id, sizeof(id), "%s", op->id);
        log_op(LOG_NOTICE, op, "reap %s: guest %u moved to '%s' meanwhile", id,
               (unsigned)op->vmid, g->node);
        rec = op_record(id, "moved", now_epoch());
        set_str(rec, "node", g->node);
        e = append(r, rec, "moved");
        if (e >= 0)
                due_now(again(r, id), now);
        return e < 0 ? e : 1;
}

/* The compensating start failed (its task, or Proxmox refused it): on
 * record, and tried again a little later, START_TRIES times in all. */
static int start_failed(struct reaper *r, const char *id, const char *exitstatus, uint64_t now)
{
        struct op *op = again(r, id);
        int e;

        log_op(LOG_ERR, op, "reap %s: could not start guest %u again: %s", id, (unsigned)op->vmid,
               exitstatus);
        e = record_step(r, id, "done", STEP_START,
                        json_pack("{s:s, s:b}", "exitstatus", exitstatus, "failed", 1));
        if (e >= 0) {
                op = again(r, id);
                op->run.next_usec = now + (START_RETRY_USEC << (op->start_failures > 5
                                                                        ? 4
                                                                        : op->start_failures - 1));
        }
        return e;
}

/* The shutdown ended, but the guest is not on its node: migrated (stopped,
 * by an admin or HA) or removed. Either way the reap cannot go on there:
 * compensation follows it (locate() journals where it went). */
static int shutdown_guest_missing(struct reaper *r, struct op *op, uint64_t now)
{
        char id[16];
        int e = locate(r, op, now);

        snprintf(id, sizeof(id), "%s", op->id);
        if (e == -EAGAIN) {
                due_later(op, now);
                return 0;
        }
        if (e < 0)
                return e;
        return fail(r, id, e > 0 ? "the guest moved to another node during its shutdown"
                                 : "the guest was removed during its shutdown");
}

/* The destroy task ended OK, but a guest answers under the vmid. A guest
 * other than the pinned one (its digest changed: one created at once
 * under the free vmid) means the destroy is done; the pinned one still
 * there is waited for, up to reap.task_timeout. */
static int destroy_not_yet_gone(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        struct guest_reading g;
        char id[16];
        bool other;
        int e = guestconf_read(p, op->type, op->node, op->vmid, &g);

        snprintf(id, sizeof(id), "%s", op->id);
        if (e == -ENOENT)
                other = true; /* gone after all */
        else if (e >= 0) {
                other = strcmp(g.digest, op->digest) != 0;
                guest_reading_done(&g);
        } else
                other = false;
        if (other) {
                log_op(LOG_NOTICE, op, "reap %s: guest %u destroyed; vmid %u %s", id,
                       (unsigned)op->vmid, (unsigned)op->vmid,
                       e == -ENOENT ? "is free" : "already holds a new guest");
                return record_step(r, id, "done", STEP_DESTROY,
                                   json_pack("{s:s}", "exitstatus", "OK"));
        }
        if (step_elapsed_s(op, now) > (int64_t)(r->c->task_timeout_usec / USEC_PER_SEC))
                return fail(r, id, "the destroy task ended OK, but the guest is still there");
        due_later(op, now);
        return 0;
}

/* A step ended: its own completion checks. */
static int task_finished(struct reaper *r, struct pve *p, struct op *op,
                         const struct pve_task_status *t, uint64_t now)
{
        char id[16], digest[64] = "", why[600];
        struct pve_upid u = { 0 };
        json_t *rec;
        int e;

        snprintf(id, sizeof(id), "%s", op->id);
        if (!pve_task_succeeded(t->exitstatus)) {
                if (op->step == STEP_SNAPSHOT && snapshot_unsupported(t->exitstatus))
                        return snapshot_skipped(r, id, t->exitstatus);
                if (op->step == STEP_START)
                        return start_failed(r, id, t->exitstatus, now);
                return fail(r, id, t->exitstatus);
        }
        if (op->step == STEP_SHUTDOWN || op->step == STEP_DESTROY) {
                /* An HA stop only queued a request; a destroy must really
                 * be gone. The guest's state is what counts. */
                struct pve_guest_status st;

                e = pve_guest_status(p, op->type, op->node, op->vmid, &st);
                if (op->step == STEP_DESTROY && e != -ENOENT)
                        return destroy_not_yet_gone(r, p, op, now);
                if (op->step == STEP_SHUTDOWN && e == -ENOENT)
                        return shutdown_guest_missing(r, op, now);
                if (op->step == STEP_SHUTDOWN) {
                        if (e < 0 || strcmp(st.status, "stopped") != 0) {
                                int64_t limit = (int64_t)(r->c->shutdown_timeout_usec /
                                                          USEC_PER_SEC) +
                                                HA_STOP_SLACK_S;

                                if (step_elapsed_s(op, now) > limit)
                                        return fail(r, id, e < 0 ? pve_error(p)
                                                                 : "the guest did not stop");
                                due_later(op, now);
                                return 0;
                        }
                }
        }
        if (op->step == STEP_SNAPSHOT) {
                e = snapshot_changed_nothing(p, op, digest, sizeof(digest), why, sizeof(why));
                if (e > 0)
                        return fail(r, id, why);
                if (e < 0)
                        return abort_or_retry(r, p, id, e, now);
        }
        (void)pve_upid_parse(op->upid, &u);
        rec = json_pack("{s:s, s:s, s:I}", "exitstatus", t->exitstatus, "upid", op->upid,
                        "task_start", (json_int_t)u.starttime);
        if (rec && digest[0])
                json_object_set_new(rec, "digest", json_string(digest));
        e = record_step(r, id, "done", op->step, rec);
        if (e >= 0)
                due_now(again(r, id), now);
        return e;
}

static int act_follow(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        const struct config *c = r->c;
        struct pve_task_status t;
        char id[16];
        int64_t limit;
        int e;

        snprintf(id, sizeof(id), "%s", op->id);
        e = pve_task_status(p, op->upid, &t);
        if (e < 0) {
                /* Unreachable or the node lost the task: keep asking; the
                 * guest's state is checked when the task is found again. */
                if (op->run.tries == 0)
                        log_op(LOG_WARNING, op, "reap %s: cannot read task status: %s", id,
                               pve_error(p));
                due_later(op, now);
                return 0;
        }
        if (!t.running)
                return task_finished(r, p, op, &t, now);
        limit = op->step == STEP_SHUTDOWN
                        ? (int64_t)(c->shutdown_timeout_usec / USEC_PER_SEC) + HA_STOP_SLACK_S
                        : (int64_t)(c->task_timeout_usec / USEC_PER_SEC);
        /* A destroy is never interrupted half-way: it is followed until it
         * ends. */
        if (op->step != STEP_DESTROY && step_elapsed_s(op, now) > limit) {
                (void)pve_task_abort(p, op->upid);
                return fail(r, id, "the task ran longer than allowed (reap.task_timeout) and was stopped");
        }
        due_later(op, now);
        return 0;
}

struct task_owner {
        const struct reaper *r;
        const struct op *op;
};

/* A task the journal already gives to another op (the destroy of an
 * earlier reap of the same vmid, minutes ago): never this op's. */
static bool task_of_another_op(void *userdata, const char *upid)
{
        const struct task_owner *t = userdata;

        for (size_t i = 0; i < t->r->ops.n; i++)
                if (&t->r->ops.v[i] != t->op && strcmp(t->r->ops.v[i].upid, upid) == 0)
                        return true;
        return false;
}

/* The answer to a call never arrived (lost reply, crash). Ask the server
 * whether it acted; never send a destroy again. */
static int act_resolve(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        char upid[PVE_UPID_MAX], id[16];
        uint64_t since = op->intent_ts > TASK_SEARCH_SLACK_S
                                 ? (uint64_t)(op->intent_ts - TASK_SEARCH_SLACK_S)
                                 : 0;
        struct pve_guest_status st;
        int e;

        snprintf(id, sizeof(id), "%s", op->id);
        e = pve_find_task(p, op->node, op->vmid, op_step_task_types(op->step, op->type), since,
                          task_of_another_op, &(struct task_owner){ r, op }, upid);
        if (e >= 0) {
                log_op(LOG_NOTICE, op, "reap %s: found the %s task the server started: %s", id,
                       op_step_to_string(op->step), upid);
                e = record_step(r, id, "task", op->step, json_pack("{s:s}", "upid", upid));
                if (e >= 0)
                        due_now(again(r, id), now);
                return e;
        }
        if (e != -ENOENT)
                /* Cannot ask the server now: ask again later, never guess. */
                return abort_or_retry(r, p, id, -EIO, now);
        switch (op->step) {
        case STEP_DESTROY:
                e = pve_guest_status(p, op->type, op->node, op->vmid, &st);
                if (e == -ENOENT && (e = locate(r, op, now)) == 0)
                        return record_step(r, id, "done", STEP_DESTROY,
                                           json_pack("{s:s}", "exitstatus", "guest gone"));
                if (e == -EAGAIN) {
                        due_later(op, now);
                        return 0;
                }
                if (e > 0)
                        return fail(r, id, "the guest moved to another node before the destroy "
                                           "reached it; not sending it again");
                if (e < 0)
                        return abort_or_retry(r, p, id, -EIO, now);
                if (op->run.unsent) {
                        log_op(LOG_NOTICE, op,
                               "reap %s: the destroy call never reached the server (no connection), "
                               "sending it again", id);
                        return act_destroy(r, p, op, now);
                }
                return fail(r, id, "the destroy call got no answer and no destroy task exists; "
                                   "not sending it again");
        case STEP_START:
                e = pve_guest_status(p, op->type, op->node, op->vmid, &st);
                if (e >= 0 && strcmp(st.status, "running") == 0)
                        return record_step(r, id, "done", STEP_START,
                                           json_pack("{s:s}", "exitstatus", "running"));
                break;
        default:
                break;
        }
        /* The call never reached the server: send it again, announced by a
         * new intent. */
        log_op(LOG_NOTICE, op, "reap %s: the %s call never reached the server, sending it again",
               id, op_step_to_string(op->step));
        switch (op->step) {
        case STEP_SHUTDOWN:
                return send_shutdown(r, p, id, now);
        case STEP_SNAPSHOT:
                return act_snapshot(r, p, op, now);
        case STEP_ARCHIVE:
                return act_archive(r, p, op, now);
        case STEP_START:
                e = send_step(r, p, id, STEP_START, NULL, "POST", "/status/start", NULL, now);
                if (e < 0 && api_refused(e))
                        return start_failed(r, id, pve_error(p), now);
                return abort_or_retry(r, p, id, e, now);
        default:
                return fail(r, id, "unexpected step without answer");
        }
}

static int tag_failed(struct pve *p, const struct op *op)
{
        struct pve_guest_config cfg;
        char tags[2200], tmp[2200];
        int e;

        e = pve_guest_config(p, op->type, op->node, op->vmid, &cfg);
        if (e < 0)
                return e;
        if (tags_without(cfg.tags, TAG_IDLE, tmp, sizeof(tmp)) < 0 ||
            tags_with(tmp, TAG_FAILED, tags, sizeof(tags)) < 0)
                return -ENOBUFS;
        if (strcmp(tags, cfg.tags) == 0)
                return 0;
        return pve_set_tags(p, op->type, op->node, op->vmid, tags, cfg.digest);
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
static int identify(struct pve *p, const struct op *op, enum occupant *ret)
{
        struct guest_reading now;
        struct guest_conf pin;
        int e = guestconf_read(p, op->type, op->node, op->vmid, &now);

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

/* guest_kept: the guest proxreap stopped is still there, and with it the
 * snapshot proxreap took. */
static int close_aborted(struct reaper *r, const struct op *op, const char *note, bool guest_kept)
{
        char reason[900];
        json_t *rec;

        snprintf(reason, sizeof(reason), "%s%s%s", op->reason,
                 guest_kept && op->snapname[0] ? " (its snapshot is kept)" : "", note);
        log_op(LOG_WARNING, op, "reap %s of guest %u aborted: %s", op->id, (unsigned)op->vmid,
               reason);
        rec = op_record(op->id, "aborted", now_epoch());
        set_str(rec, "reason", reason);
        return append(r, rec, "aborted");
}

/* The guest proxreap stopped is gone: archived and verified means reaped;
 * else there is nothing to put back. */
static int compensate_gone(struct reaper *r, struct op *op, const char *note)
{
        if (op->volid[0]) {
                log_op(LOG_WARNING, op, "reap %s: guest %u is gone%s; archive '%s' holds it",
                       op->id, (unsigned)op->vmid, note, op->volid);
                return act_finish(r, op);
        }
        return close_aborted(r, op, note[0] ? note : "; the guest was removed outside proxreap",
                             false);
}

/* No guest under the vmid on its node: where did it go? Gone, or moved
 * (then compensation goes on there at its next turn). */
static int compensate_missing(struct reaper *r, struct op *op, uint64_t now)
{
        int e = locate(r, op, now);

        if (e == 0)
                return compensate_gone(r, op, "");
        if (e == -EAGAIN)
                due_later(op, now);
        return e == -EAGAIN ? 0 : e;
}

/* The guest is the one proxreap stopped: start it again, tag it, close. */
static int compensate_ours(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        struct pve_guest_status st;
        char id[16], note[400] = "";
        int e;

        snprintf(id, sizeof(id), "%s", op->id);
        e = pve_guest_status(p, op->type, op->node, op->vmid, &st);
        if (e == -ENOENT)
                return compensate_missing(r, op, now);
        if (e < 0)
                return abort_or_retry(r, p, id, -EIO, now);
        if (op->stopped_by_us && !op->started_again && strcmp(st.status, "stopped") == 0) {
                if (op->start_failures < START_TRIES) {
                        log_op(LOG_NOTICE, op, "reap %s: starting guest %u again", id,
                               (unsigned)op->vmid);
                        e = send_step(r, p, id, STEP_START, NULL, "POST", "/status/start", NULL,
                                      now);
                        if (e < 0 && api_refused(e))
                                return start_failed(r, id, pve_error(p), now);
                        return e;
                }
                snprintf(note, sizeof(note),
                         "; proxreap could not start it again (%.200s), so it is stopped: start it by hand",
                         op->exitstatus);
        }
        e = tag_failed(p, op);
        if (e < 0 && !api_refused(e)) {
                due_later(op, now);
                return 0;
        }
        if (e < 0)
                log_op(LOG_WARNING, op, "reap %s: cannot tag guest %u '%s': %s", id,
                       (unsigned)op->vmid, TAG_FAILED, pve_error(p));
        return close_aborted(r, op, note, true);
}

static int act_compensate(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        enum occupant who = OCCUPANT_UNSURE;
        char note[400];
        int e = identify(p, op, &who);

        if (e < 0)
                return abort_or_retry(r, p, op->id, -EIO, now);
        switch (who) {
        case OCCUPANT_OURS:
                return compensate_ours(r, p, op, now);
        case OCCUPANT_NONE:
                return compensate_missing(r, op, now);
        case OCCUPANT_DESTROYED:
                return compensate_gone(r, op, " (a destroy freed its disks and left only a config locked 'destroyed')");
        case OCCUPANT_OTHER:
                return compensate_gone(r, op,
                                       "; the vmid now holds another guest, which proxreap left alone");
        case OCCUPANT_UNSURE:
                break;
        }
        snprintf(note, sizeof(note),
                 "; its configuration changed and proxreap cannot tell whether it is still the guest it stopped, so it left it as it is (start it with '%s start %u' if it is)",
                 op->type == GUEST_LXC ? "pct" : "qm", (unsigned)op->vmid);
        return close_aborted(r, op, note, true);
}

static int act_abandon(struct reaper *r, struct op *op)
{
        return veto(r, op->id, "proxreapd restarted before the first change; the guest was not touched");
}

static void run_op(struct reaper *r, struct pve *p, struct op *op, uint64_t now)
{
        enum op_action a = op_next_action(op, r->c->snapshot, op->run.resumed);

        switch (a) {
        case ACT_NONE:
                return;
        case ACT_ABANDON:
                (void)act_abandon(r, op);
                return;
        case ACT_START_SHUTDOWN:
                (void)act_shutdown(r, p, op, now);
                return;
        case ACT_START_SNAPSHOT:
                (void)act_snapshot(r, p, op, now);
                return;
        case ACT_START_ARCHIVE:
                (void)act_archive(r, p, op, now);
                return;
        case ACT_VERIFY:
                (void)act_verify(r, p, op, now);
                return;
        case ACT_START_DESTROY:
                (void)act_destroy(r, p, op, now);
                return;
        case ACT_FINISH_REAP:
                (void)act_finish(r, op);
                return;
        case ACT_RESOLVE:
                (void)act_resolve(r, p, op, now);
                return;
        case ACT_FOLLOW_TASK:
                (void)act_follow(r, p, op, now);
                return;
        case ACT_COMPENSATE:
                (void)act_compensate(r, p, op, now);
                return;
        }
}

uint64_t reaper_step(struct reaper *r, struct pve *p, uint64_t now)
{
        uint64_t next = UINT64_MAX;

        /* In every mode: a reap under way when reap mode was turned off
         * finishes (the guest is stopped already); none starts. */
        if (r->journal_error)
                return UINT64_MAX;
        /* One step per op per call; ops[] may grow while stepping, so walk
         * by index and look each op up again. */
        for (size_t i = 0; i < r->ops.n && !r->journal_error; i++) {
                struct op *op = &r->ops.v[i];

                if (!op_needs_daemon(op))
                        continue;
                if (op->run.next_usec <= now)
                        run_op(r, p, op, now);
                op = &r->ops.v[i];
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
        return r->journal_error ? UINT64_MAX : next;
}

/* --- selection --- */

static struct mark *mark_find(struct reaper *r, uint32_t vmid)
{
        return vmid_map_find(&r->marks, vmid);
}

static struct mark *mark_add(struct reaper *r, uint32_t vmid, uint64_t now)
{
        struct mark *m = vmid_map_add(&r->marks, vmid);

        if (m)
                m->since_usec = now;
        return m;
}

static void mark_drop(struct reaper *r, uint32_t vmid)
{
        vmid_map_drop(&r->marks, vmid);
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

static void log_tag_change(const struct guest *g, const char *what, int e, struct pve *p)
{
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };

        if (e < 0)
                log_guest(LOG_WARNING, &ctx, "cannot %s guest %u: %s", what, (unsigned)g->vmid,
                          pve_error(p));
        else
                log_guest(LOG_NOTICE, &ctx, "%s guest %u ('%s')", what, (unsigned)g->vmid,
                          g->name ? g->name : "");
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
};

static enum hold hold_of(const struct reaper *r, uint32_t vmid, const char *node, int64_t now_s)
{
        const struct config *c = r->c;

        for (size_t i = 0; i < r->ops.n; i++) {
                const struct op *op = &r->ops.v[i];

                if (op_needs_daemon(op) && strcmp(op->node, node) == 0)
                        return op->vmid == vmid ? HOLD_IN_FLIGHT : HOLD_NODE_BUSY;
                if (op->state == OP_RESTORING && (op->restore_vmid == vmid || op->vmid == vmid))
                        return HOLD_RESTORING;
                if (op->state == OP_RESTORED && op->restore_vmid == vmid &&
                    now_s - op->restored_ts < (int64_t)(c->cooldown_usec / USEC_PER_SEC))
                        return HOLD_COOLDOWN;
                if (op->state == OP_ABORTED && !op->vetoed && op->vmid == vmid &&
                    now_s - op->updated < (int64_t)(c->retry_after_usec / USEC_PER_SEC))
                        return HOLD_RETRY;
        }
        return HOLD_NONE;
}

static unsigned reaps_last_hour(const struct reaper *r, int64_t now_s)
{
        unsigned n = 0;

        for (size_t i = 0; i < r->ops.n; i++)
                if (now_s - r->ops.v[i].began < 3600)
                        n++;
        return n;
}

/* rrddata veto: was the guest busy during reap.history by the idle rules? */
static int history_busy(struct reaper *r, struct pve *p, const struct guest *g, char *why,
                        size_t size)
{
        const struct config *c = r->c;
        uint64_t h = c->history_usec / USEC_PER_SEC;
        uint64_t day = USEC_PER_DAY / USEC_PER_SEC;
        const char *tf = h <= 3600 ? "hour" : h <= day ? "day" : h <= 7 * day ? "week"
                                                      : h <= 31 * day ? "month" : "year";
        int64_t since = now_epoch() - (int64_t)h;
        double cpu = 0, mem = 0;
        unsigned rows = 0;
        json_t *data = NULL, *it;
        size_t i;
        int e;

        e = pve_rrddata(p, (enum guest_type)g->type, g->node, g->vmid, tf, &data);
        if (e < 0)
                return e;
        json_array_foreach(data, i, it) {
                json_t *t = json_object_get(it, "time"), *cv = json_object_get(it, "cpu"),
                       *mv = json_object_get(it, "mem");

                if (!json_is_number(t) || json_number_value(t) < (double)since ||
                    !json_is_number(cv) || !json_is_number(mv))
                        continue;
                rows++;
                if (json_number_value(cv) * 100.0 > cpu)
                        cpu = json_number_value(cv) * 100.0;
                if (json_number_value(mv) / 1048576.0 > mem)
                        mem = json_number_value(mv) / 1048576.0;
        }
        json_decref(data);
        if (cpu >= c->cpu_percent)
                snprintf(why, size, "busy in the last %s by its history (cpu average up to %.2f%% >= %g%%)",
                         tf, cpu, c->cpu_percent);
        else if (mem >= c->mem_mb)
                snprintf(why, size, "busy in the last %s by its history (mem up to %.0f MiB >= %g MiB)",
                         tf, mem, c->mem_mb);
        else if (rows == 0)
                snprintf(why, size, "it has no history for the last %s", tf);
        else
                return 0;
        return 1;
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
static json_t *selected_record(const char *id, const struct guest *g, const struct live *l,
                               const char *ev)
{
        json_t *rec = op_record(id, "selected", now_epoch());

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

/* Whether the guest can be selected now: the one predicate on what Proxmox
 * says of it, its history, and room for its archive. 0: select it (l is
 * filled); 1: not now (logged); < 0: the server could not be asked. */
static int selectable(struct reaper *r, struct observer *o, size_t i, uint64_t now,
                      struct live *l)
{
        const struct guest *g = guest_table_at(observer_table(o), i);
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };
        struct pve *p = observer_pve(o);
        struct verdict v;
        char why[700] = "";
        int e;

        e = judge_live(r, p, (enum guest_type)g->type, g->node, g->vmid, g->pool, AT_SELECT, l);
        if (e < 0)
                return e;
        /* What the configuration says shows in status and the log too. */
        if (observer_set_conf(o, g->vmid, (enum guest_type)g->type, &l->read.facts, now) >= 0)
                observer_rejudge(o, i, now, &v);
        if (l->v.kind != VERDICT_IDLE)
                verdict_format(&l->v, why, sizeof(why));
        else if (r->c->history_usec && history_busy(r, p, g, why, sizeof(why)) < 0)
                snprintf(why, sizeof(why), "its history cannot be read (%s)", pve_error(p));
        if (!why[0] && archive_room(r, p, g, &l->st, why, sizeof(why)) < 0)
                snprintf(why, sizeof(why), "%s", pve_error(p));
        if (!why[0])
                return 0;
        log_guest(LOG_INFO, &ctx, "idle guest %u ('%s') not reaped: %s", (unsigned)g->vmid,
                  g->name ? g->name : "", why);
        live_done(l);
        return 1;
}

static int select_guest(struct reaper *r, struct observer *o, size_t i, uint64_t now)
{
        const struct guest *g = guest_table_at(observer_table(o), i);
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };
        char ev[900], id[16];
        struct live l;
        json_t *rec;
        int e;

        e = selectable(r, o, i, now, &l);
        if (e < 0)
                log_guest(LOG_WARNING, &ctx, "guest %u not selected: %s", (unsigned)g->vmid,
                          pve_error(observer_pve(o)));
        if (e != 0)
                return 0;
        g = guest_table_at(observer_table(o), i);
        evidence(o, g, now, ev, sizeof(ev));
        ops_next_id(&r->ops, id, sizeof(id));
        rec = selected_record(id, g, &l, ev);
        live_done(&l);
        e = append(r, rec, "selected");
        if (e < 0)
                return e;
        ctx.op = id;
        ctx.state = "selected";
        log_guest(LOG_NOTICE, &ctx, "reap %s: selected idle guest %u ('%s'): %s", id,
                  (unsigned)g->vmid, g->name ? g->name : "", ev);
        due_now(again(r, id), now);
        return 1;
}

/* Work with the API beyond the poll (tag changes, two calls each, and
 * configuration reads, two or three): a poll spends at most half the
 * interval on it, and always does one piece: the rest waits for the next
 * poll, so a large fleet never holds up polls or the watchdog, and the
 * work still finishes. */
struct api_budget {
        uint64_t deadline;
        unsigned done, deferred;
};

static bool budget_take(struct api_budget *b)
{
        if (b->done > 0 && now_monotonic_usec() >= b->deadline) {
                b->deferred++;
                return false;
        }
        b->done++;
        return true;
}

/* Restores made by the CLI: cooldown applies at once. */
static void refresh_journal(struct reaper *r)
{
        char err[512] = "";

        if (journal_refresh(r->j, ops_apply, &r->ops, err, sizeof(err)) < 0 &&
            strcmp(err, r->last_refresh_error) != 0) {
                log_error("journal: %s", err);
                snprintf(r->last_refresh_error, sizeof(r->last_refresh_error), "%s", err);
        }
}

static enum verdict_kind verdict_of(const struct guest *g)
{
        /* g->verdict is the observer's: kind + 1, 0 before the first. */
        return g->verdict ? (enum verdict_kind)(g->verdict - 1) : VERDICT_INSUFFICIENT;
}

/* When too many eligible guests look idle at once, the numbers are more
 * likely broken than the fleet idle: act on none. */
static void judge_breaker(struct reaper *r, const struct guest_table *t)
{
        const struct config *c = r->c;
        size_t n = guest_table_count(t), eligible = 0, idle = 0;
        char msg[256];

        for (size_t i = 0; i < n; i++) {
                enum verdict_kind k = verdict_of(guest_table_at(t, i));

                eligible += k == VERDICT_IDLE || k == VERDICT_ACTIVE;
                idle += k == VERDICT_IDLE;
        }
        r->breaker_open = eligible > 0 &&
                          (double)idle * 100.0 > c->breaker_percent * (double)eligible;
        if (!r->breaker_open) {
                if (r->breaker[0])
                        log_notice("circuit breaker closed: %zu of %zu eligible guests idle", idle,
                                   eligible);
                r->breaker[0] = '\0';
                return;
        }
        snprintf(msg, sizeof(msg),
                 "circuit breaker open: %zu of %zu eligible guests look idle (%.0f%% > %g%%), acting on none",
                 idle, eligible, 100.0 * (double)idle / (double)eligible, c->breaker_percent);
        if (strcmp(msg, r->breaker) != 0)
                log_warning("%s", msg);
        snprintf(r->breaker, sizeof(r->breaker), "%s", msg);
}

/* What the configuration of the guest at i says, read again when it was
 * never read (it looks idle) or is older than CONF_TTL_USEC: status and
 * mark mode then show why an idle guest cannot be reaped. Returns the
 * guest's verdict kind, judged with it. */
static enum verdict_kind judge_conf(struct observer *o, size_t i, struct api_budget *b,
                                    uint64_t now)
{
        const struct guest *g = guest_table_at(observer_table(o), i);
        enum verdict_kind k = verdict_of(g);
        uint64_t read_usec = 0;
        bool known = observer_conf(o, g->vmid, (enum guest_type)g->type, &read_usec) != NULL;
        struct verdict v;
        bool due;

        if (k == VERDICT_ACTIVE && known) {
                observer_forget_conf(o, g->vmid); /* read again when it is idle again */
                return k;
        }
        if (known)
                due = now - read_usec >= CONF_TTL_USEC && k != VERDICT_INSUFFICIENT;
        else
                due = k == VERDICT_IDLE;
        if (!due || !budget_take(b))
                return k;
        /* On failure the poll's verdict stands; selection reads again. */
        return observer_read_conf(o, i, now, &v) < 0 ? k : v.kind;
}

/* Reasons that come from the guest's configuration. */
static bool excluded_by_conf(const struct observer *o, size_t i, uint64_t now)
{
        struct window_stats s;
        struct verdict v;

        observer_judge_at(o, i, now, &v, &s);
        for (unsigned k = 0; v.kind == VERDICT_EXCLUDED && k < v.n_reasons; k++)
                if (v.reasons[k].code >= REASON_PROTECTED && v.reasons[k].code <= REASON_PENDING)
                        return true;
        return false;
}

struct cycle {
        struct api_budget budget;
        unsigned started, hour;
        int64_t now_s;
        uint64_t now;
};

/* A guest that is not idle: a mark of ours goes when it is active again or
 * its configuration rules it out (mark only what would be reaped). Never
 * while a reap of it runs: a tag change there would change its digest. */
static void unmark(struct reaper *r, struct observer *o, size_t i, enum verdict_kind k,
                   struct cycle *cy)
{
        const struct guest *g = guest_table_at(observer_table(o), i);
        bool tagged = g->tags && tags_contain(g->tags, TAG_IDLE);
        bool conf = k == VERDICT_EXCLUDED && tagged && excluded_by_conf(o, i, cy->now);

        if ((k != VERDICT_ACTIVE && !conf) ||
            hold_of(r, g->vmid, g->node, cy->now_s) == HOLD_IN_FLIGHT)
                return;
        if (tagged && budget_take(&cy->budget))
                log_tag_change(g, k == VERDICT_ACTIVE ? "unmarked (active again)"
                                                      : "unmarked (its configuration rules it out)",
                               set_tag(observer_pve(o), g, TAG_IDLE, false), observer_pve(o));
        mark_drop(r, g->vmid);
}

/* Mark mode and the grace period: true when the guest may be selected
 * now (reap mode, marked for the whole grace period). */
static bool marked_long_enough(struct reaper *r, struct observer *o, const struct guest *g,
                               struct cycle *cy)
{
        const struct config *c = r->c;
        struct mark *m = mark_find(r, g->vmid);
        struct log_guest_ctx ctx = { .vmid = g->vmid, .node = g->node };
        int e;

        if (m && m->cancelled)
                return false;
        if (g->tags && tags_contain(g->tags, TAG_IDLE)) {
                /* Marked before (maybe by an earlier run): the grace
                 * period counts from when this run saw it. */
                if (!m && !(m = mark_add(r, g->vmid, cy->now)))
                        return false;
                return c->mode == REAP_MODE_REAP && cy->now - m->since_usec >= c->grace_usec;
        }
        if (m) {
                /* We marked it; the tag is gone: an operator cancelled the reap. */
                log_guest(LOG_NOTICE, &ctx, "guest %u: tag '%s' removed by someone, not reaping it",
                          (unsigned)g->vmid, TAG_IDLE);
                m->cancelled = true;
                return false;
        }
        if (!budget_take(&cy->budget))
                return false;
        e = set_tag(observer_pve(o), g, TAG_IDLE, true);
        log_tag_change(g, "marked idle", e, observer_pve(o));
        if (e >= 0 && mark_add(r, g->vmid, cy->now))
                announce_mark(r, g);
        return false;
}

static void cycle_guest(struct reaper *r, struct observer *o, size_t i, struct cycle *cy)
{
        const struct config *c = r->c;
        const struct guest *g = guest_table_at(observer_table(o), i);
        enum verdict_kind k = judge_conf(o, i, &cy->budget, cy->now);
        enum hold h;

        if (k != VERDICT_IDLE) {
                unmark(r, o, i, k, cy);
                return;
        }
        h = hold_of(r, g->vmid, g->node, cy->now_s);
        if (r->breaker_open || (h != HOLD_NONE && h != HOLD_NODE_BUSY))
                return;
        if ((c->mode == REAP_MODE_MARK || c->grace_usec > 0) && !marked_long_enough(r, o, g, cy))
                return;
        if (c->mode != REAP_MODE_REAP || h != HOLD_NONE || cy->started >= c->max_per_cycle ||
            cy->hour >= c->max_per_hour)
                return;
        if (select_guest(r, o, i, cy->now) > 0) {
                cy->started++;
                cy->hour++;
                mark_drop(r, g->vmid);
        }
}

void reaper_cycle(struct reaper *r, struct observer *o, uint64_t now)
{
        const struct config *c = r->c;
        struct cycle cy = { .budget = { .deadline = now_monotonic_usec() + c->interval_usec / 2 },
                            .now_s = now_epoch(),
                            .now = now };

        if (r->journal_error)
                return;
        /* The sagas under way need the polls in every mode (a poll after
         * a step proves what the cluster shows); selection only in mark
         * and reap mode. */
        r->observer = o;
        refresh_journal(r);
        if (c->mode == REAP_MODE_OBSERVE)
                return;
        judge_breaker(r, observer_table(o));
        cy.hour = reaps_last_hour(r, cy.now_s);
        for (size_t i = 0; i < guest_table_count(observer_table(o)) && !r->journal_error; i++)
                cycle_guest(r, o, i, &cy);
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
        if (journal_open(journal_file, JOURNAL_READ, ops_apply, &ops, &j, NULL, err, sizeof(err)) >= 0)
                for (size_t i = 0; i < ops.n; i++)
                        n += op_needs_daemon(&ops.v[i]);
        journal_close(j);
        ops_clear(&ops);
        return n;
}

int reaper_new(const struct config *c, struct reaper **ret, char *err, size_t errsz)
{
        struct reaper *r = calloc(1, sizeof(*r));
        struct journal_scan scan;
        int e;

        if (!r)
                return -ENOMEM;
        r->c = c;
        r->marks = (struct vmid_map)VMID_MAP_INIT(struct mark);
        ops_init(&r->ops);
        e = journal_open(c->journal_file, JOURNAL_WRITE, ops_apply, &r->ops, &r->j, &scan, err,
                         errsz);
        if (e < 0) {
                reaper_free(r);
                return e;
        }
        if (r->ops.bad_records)
                log_warning("journal '%s': %u record(s) not understood and ignored, first: %s",
                            c->journal_file, r->ops.bad_records, r->ops.first_bad);
        for (size_t i = 0; i < r->ops.n; i++) {
                struct op *op = &r->ops.v[i];

                op->run.resumed = true;
                if (op_needs_daemon(op))
                        log_op(LOG_NOTICE, op,
                               "reap %s of guest %u was interrupted at %s: resuming (%s)", op->id,
                               (unsigned)op->vmid, op_state_to_string(op->state),
                               op_action_to_string(op_next_action(op, c->snapshot, true)));
        }
        *ret = r;
        return 0;
}

struct reaper *reaper_free(struct reaper *r)
{
        if (!r)
                return NULL;
        journal_close(r->j);
        ops_clear(&r->ops);
        vmid_map_free(&r->marks);
        free(r);
        return NULL;
}

void reaper_set_config(struct reaper *r, const struct config *c)
{
        r->c = c;
}

void reaper_set_notifier(struct reaper *r, struct notifier *n)
{
        r->notifier = n;
}

void reaper_describe(const struct reaper *r, char *buf, size_t size)
{
        size_t running = 0;
        const struct op *last = NULL;

        if (r->journal_error) {
                snprintf(buf, size, "journal cannot be written (%s): destructive work stopped",
                         strerror(-r->journal_error));
                return;
        }
        if (r->breaker[0]) {
                snprintf(buf, size, "%s", r->breaker);
                return;
        }
        for (size_t i = 0; i < r->ops.n; i++)
                if (op_needs_daemon(&r->ops.v[i])) {
                        running++;
                        last = &r->ops.v[i];
                }
        if (last)
                snprintf(buf, size, "%zu reap(s) running, %s guest %u at %s", running, last->id,
                         (unsigned)last->vmid, op_state_to_string(last->state));
        else
                snprintf(buf, size, "%s mode", reap_mode_to_string(r->c->mode));
}

int reaper_journal_failed(const struct reaper *r)
{
        return r->journal_error;
}

const struct ops *reaper_ops(const struct reaper *r)
{
        return &r->ops;
}
