/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The saga engine (saga.c) against an in-memory Proxmox VE with a fake
 * clock (fake_cluster.h): every step of the reap and of the restore, each
 * against every outcome a real cluster can give: ok, refused with a
 * message, the answer lost after the server acted, lost before it did,
 * never sent, the task failed, the task hung. What must hold each time:
 * nothing is destroyed without a verified archive of that very guest, no
 * call that acted is sent twice, the guest ends reaped or back as it was,
 * and what the operator reads is Proxmox's own words.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "config.h"
#include "fake_cluster.h"
#include "journal.h"
#include "log.h"
#include "ops.h"
#include "saga.h"
#include "testutil.h"
#include "util.h"

#define VMID 101
#define GUEST_CONF                                                                                 \
        "name: web1\nmemory: 2048\ncores: 2\nostype: l26\nboot: order=scsi0\n"                    \
        "scsi0: local-lvm:vm-101-disk-0,size=32G\n"                                               \
        "net0: virtio=BC:24:11:00:00:01,bridge=vmbr0\n"

struct t {
        char dir[64];
        char *conf_path, *journal;
        struct config *c;
        struct fake_cluster *f;
        struct cluster api;
        struct saga *s;
};

static void open_saga(struct t *t, enum saga_role role)
{
        char err[512] = "";

        if (saga_open(t->c, role, &t->s, err, sizeof(err)) < 0)
                fail_msg("saga_open: %s", err);
        fc_attach(t->f, t->s);
}

static int setup(void **state)
{
        struct t *t = calloc(1, sizeof(*t));
        char *errors = NULL, *text;
        FILE *fh;

        assert_non_null(t);
        snprintf(t->dir, sizeof(t->dir), "/tmp/proxreap-saga-XXXXXX");
        assert_non_null(mkdtemp(t->dir));
        t->conf_path = tu_strdupf("%s/proxreap.conf", t->dir);
        t->journal = tu_strdupf("%s/journal", t->dir);
        text = tu_strdupf("api = { url = \"https://127.0.0.1:8006\"; token_id = \"proxreap@pve!reaper\"; token_secret_file = \"%s/token\"; };\n"
                          "observe = { node_name = \"pve1\"; nodes = \"all\"; };\n"
                          "reap = { mode = \"reap\"; archive_storage = \"local\"; snapshot = true; journal = \"%s\"; task_timeout = \"1h\"; shutdown_timeout = \"3min\"; };\n",
                          t->dir, t->journal);
        fh = fopen(t->conf_path, "w");
        assert_non_null(fh);
        fputs(text, fh);
        fclose(fh);
        free(text);
        if (config_load_flags(t->conf_path, CONFIG_OFFLINE, &t->c, &errors) < 0)
                fail_msg("config: %s", errors ? errors : "?");
        t->f = fc_new();
        assert_non_null(t->f);
        t->f->now = 1000 * USEC_PER_SEC;
        t->api = fc_cluster(t->f);
        assert_non_null(fc_add_guest(t->f, VMID, GUEST_QEMU, "pve1", "running", GUEST_CONF));
        open_saga(t, SAGA_DAEMON);
        *state = t;
        return 0;
}

static int teardown(void **state)
{
        struct t *t = *state;
        char *lock = tu_strdupf("%s.lock", t->journal);

        saga_free(t->s);
        fc_free(t->f);
        config_free(t->c);
        unlink(t->journal);
        unlink(lock);
        unlink(t->conf_path);
        rmdir(t->dir);
        free(lock);
        free(t->journal);
        free(t->conf_path);
        free(t);
        return 0;
}

/* --- driving --- */

/* Selects the guest as the reaper does: its identity pinned. */
static void begin_reap(struct t *t, char *id, size_t size)
{
        struct saga_live l;
        json_t *rec;

        assert_int_equal(saga_judge_live(t->s, &t->api, GUEST_QEMU, "pve1", VMID, NULL, AT_SELECT,
                                         &l),
                         0);
        assert_int_equal(l.v.kind, VERDICT_IDLE);
        assert_int_equal(saga_next_id(t->s, &t->api, id, size, NULL, 0), 0);
        rec = op_record(id, "selected", fc_epoch(t->f));
        json_object_update_new(rec, json_pack("{s:I, s:s, s:s, s:s, s:s, s:o, s:o, s:s, s:I, s:I, s:f}",
                                              "vmid", (json_int_t)VMID, "type", "qemu", "node",
                                              "pve1", "name", "web1", "digest", l.read.digest,
                                              "config", guestconf_fields_json(&l.read.conf),
                                              "volumes", guestconf_volumes_json(&l.read.conf),
                                              "evidence", "cpu 0.1% < 5%", "maxmem",
                                              (json_int_t)2048 << 20, "maxdisk",
                                              (json_int_t)32 << 30, "maxcpu", 2.0));
        saga_live_done(&l);
        assert_int_equal(saga_begin_reap(t->s, rec, t->f->now), 0);
}

static const struct op *op_of(const struct t *t, const char *id)
{
        const struct op *op = ops_find(saga_ops(t->s), id);

        assert_non_null(op);
        return op;
}

/* Steps until the op is terminal or limit (fake) seconds passed. */
static const struct op *run(struct t *t, const char *id, uint64_t limit_s)
{
        uint64_t end = t->f->now + limit_s * USEC_PER_SEC;

        while (t->f->now < end && !op_state_terminal(op_of(t, id)->state)) {
                uint64_t next = saga_step(t->s, &t->api, t->f->now);

                if (next == UINT64_MAX)
                        break;
                t->f->now = next > t->f->now ? next : t->f->now + USEC_PER_MSEC;
        }
        return op_of(t, id);
}

/* A reap begun and stepped until vzdump wrote its archive. */
static void reap_until_archived(struct t *t, char *id, size_t size)
{
        begin_reap(t, id, size);
        while (t->f->n_backups == 0 && !op_state_terminal(op_of(t, id)->state)) {
                uint64_t next = saga_step(t->s, &t->api, t->f->now);

                t->f->now = next > t->f->now ? next : t->f->now + USEC_PER_MSEC;
        }
        assert_int_equal(t->f->n_backups, 1);
}

static const struct op *reap(struct t *t, char *id, size_t size)
{
        begin_reap(t, id, size);
        return run(t, id, 6 * 3600);
}

/* The guest is back as it was: there, running, not destroyed. */
static void assert_guest_back(struct t *t)
{
        const struct fc_guest *g = fc_guest(t->f, VMID);

        assert_non_null(g);
        assert_string_equal(g->status, "running");
        assert_int_equal(t->f->acted[FC_DESTROY], 0);
}

static void assert_reaped(struct t *t, const struct op *op)
{
        assert_int_equal(op->state, OP_REAPED);
        assert_null(fc_guest(t->f, VMID));
        assert_int_equal(t->f->n_backups, 1);
        assert_string_equal(op->volid, t->f->backups[0].volid);
        assert_true(t->f->backups[0].protected);
        /* Every step acted once: nothing sent twice. */
        for (enum fc_call c = FC_SHUTDOWN; c <= FC_DESTROY; c++)
                assert_int_equal(t->f->acted[c], 1);
        assert_int_equal(t->f->acted[FC_START], 0);
}

/* The journal on disk says what the engine says. */
static void assert_journal_agrees(struct t *t, const char *id, enum op_state want)
{
        struct journal *j = NULL;
        struct ops ops;
        char err[512];

        ops_init(&ops);
        assert_int_equal(journal_open(t->journal, JOURNAL_READ, ops_apply, &ops, &j, NULL, err,
                                      sizeof(err)),
                         0);
        assert_non_null(ops_find(&ops, id));
        assert_int_equal(ops_find(&ops, id)->state, want);
        assert_int_equal(ops.bad_records, 0);
        journal_close(j);
        ops_clear(&ops);
}

/* --- the reap: ok --- */

static void test_reap_ok(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op = reap(t, id, sizeof(id));

        assert_string_equal(id, "R-pve1-000001");
        assert_reaped(t, op);
        /* The archive's notes name the op and the node whose journal has it. */
        assert_contains(t->f->backups[0].notes, "proxreap R-pve1-000001");
        assert_contains(t->f->backups[0].notes, "node pve1");
        assert_contains(t->f->tasks[2].notes, "proxreap restore R-pve1-000001");
        assert_journal_agrees(t, id, OP_REAPED);
}

/* --- the reap: refused with a message --- */

static void refused_at(void **state, enum fc_call c, const char *msg)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_fault(t->f, c, FAULT_REFUSE, 0, 1, msg);
        op = reap(t, id, sizeof(id));
        assert_int_equal(op->state, OP_ABORTED);
        assert_contains(op->reason, msg); /* Proxmox's words */
        assert_guest_back(t);
        assert_int_equal(t->f->acted[c], 0);
        assert_journal_agrees(t, id, OP_ABORTED);
}

static void test_shutdown_refused(void **state)
{
        refused_at(state, FC_SHUTDOWN, "VM 101 qmp command 'system_powerdown' failed - got timeout");
}

static void test_snapshot_refused(void **state)
{
        refused_at(state, FC_SNAPSHOT, "snapshot create failed: starting cleanup");
}

static void test_archive_refused(void **state)
{
        refused_at(state, FC_ARCHIVE, "storage 'local' is not online");
}

static void test_destroy_refused(void **state)
{
        refused_at(state, FC_DESTROY, "VM is locked (backup)");
}

/* A snapshot Proxmox cannot take (raw disk on a directory storage) is no
 * failure: the reap goes on without it. */
static void test_snapshot_unsupported(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_fault(t->f, FC_SNAPSHOT, FAULT_REFUSE, 0, 1, "snapshot feature is not available");
        op = reap(t, id, sizeof(id));
        assert_int_equal(op->state, OP_REAPED);
        assert_int_equal(t->f->acted[FC_SNAPSHOT], 0);
        assert_int_equal(t->f->acted[FC_DESTROY], 1);
}

/* --- the reap: an answer lost after the server acted --- */

static void lost_after_at(void **state, enum fc_call c)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_fault(t->f, c, FAULT_LOST_AFTER, 0, 1, NULL);
        op = reap(t, id, sizeof(id));
        /* The task it started is found and followed, never sent again. */
        assert_reaped(t, op);
}

static void test_shutdown_lost_after(void **state)
{
        lost_after_at(state, FC_SHUTDOWN);
}

static void test_snapshot_lost_after(void **state)
{
        lost_after_at(state, FC_SNAPSHOT);
}

static void test_archive_lost_after(void **state)
{
        lost_after_at(state, FC_ARCHIVE);
}

static void test_destroy_lost_after(void **state)
{
        lost_after_at(state, FC_DESTROY);
}

/* --- the reap: an answer lost before the server acted --- */

static void lost_before_at(void **state, enum fc_call c)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_fault(t->f, c, FAULT_LOST_BEFORE, 0, 1, NULL);
        op = reap(t, id, sizeof(id));
        /* No task: the call is sent again, announced by a new intent. */
        assert_reaped(t, op);
        assert_int_equal(t->f->calls[c], 2);
}

static void test_shutdown_lost_before(void **state)
{
        lost_before_at(state, FC_SHUTDOWN);
}

static void test_snapshot_lost_before(void **state)
{
        lost_before_at(state, FC_SNAPSHOT);
}

static void test_archive_lost_before(void **state)
{
        lost_before_at(state, FC_ARCHIVE);
}

/* A destroy without an answer and without a task is never sent again: it
 * may yet act. The guest is put back. */
static void test_destroy_lost_before(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_fault(t->f, FC_DESTROY, FAULT_LOST_BEFORE, 0, 1, NULL);
        op = reap(t, id, sizeof(id));
        assert_int_equal(op->state, OP_ABORTED);
        assert_contains(op->reason, "not sending it again");
        assert_int_equal(t->f->calls[FC_DESTROY], 1);
        assert_guest_back(t);
}

/* --- the reap: the call never left --- */

static void unsent_at(void **state, enum fc_call c)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_fault(t->f, c, FAULT_UNSENT, 0, 2, NULL);
        op = reap(t, id, sizeof(id));
        assert_reaped(t, op);
        assert_int_equal(t->f->calls[c], 3);
}

static void test_shutdown_unsent(void **state)
{
        unsent_at(state, FC_SHUTDOWN);
}

static void test_snapshot_unsent(void **state)
{
        unsent_at(state, FC_SNAPSHOT);
}

static void test_archive_unsent(void **state)
{
        unsent_at(state, FC_ARCHIVE);
}

static void test_destroy_unsent(void **state)
{
        unsent_at(state, FC_DESTROY);
}

/* --- the reap: the task failed --- */

static void task_failed_at(void **state, enum fc_call c, const char *msg)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_task_outcome(t->f, c, OUTCOME_FAIL, msg);
        op = reap(t, id, sizeof(id));
        assert_int_equal(op->state, OP_ABORTED);
        assert_contains(op->reason, msg);
        assert_non_null(fc_guest(t->f, VMID));
        assert_string_equal(fc_guest(t->f, VMID)->status, "running");
        assert_int_equal(t->f->acted[c], 1);
}

static void test_shutdown_task_failed(void **state)
{
        task_failed_at(state, FC_SHUTDOWN, "VM quit/powerdown failed - got timeout");
}

static void test_snapshot_task_failed(void **state)
{
        task_failed_at(state, FC_SNAPSHOT, "VM 101 qmp command 'savevm-start' failed");
}

static void test_archive_task_failed(void **state)
{
        task_failed_at(state, FC_ARCHIVE, "job errors");
}

static void test_destroy_task_failed(void **state)
{
        task_failed_at(state, FC_DESTROY, "can't remove VM 101 - protection mode enabled");
}

/* --- the reap: the task hung --- */

static void task_hung_at(void **state, enum fc_call c)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_task_outcome(t->f, c, OUTCOME_HANG, NULL);
        op = reap(t, id, sizeof(id));
        /* Stopped after reap.task_timeout (or the shutdown's), put back. */
        assert_int_equal(op->state, OP_ABORTED);
        assert_contains(op->reason, "longer than allowed");
        assert_int_equal(t->f->aborted, 1);
        assert_guest_back(t);
}

static void test_shutdown_task_hung(void **state)
{
        task_hung_at(state, FC_SHUTDOWN);
}

static void test_snapshot_task_hung(void **state)
{
        task_hung_at(state, FC_SNAPSHOT);
}

static void test_archive_task_hung(void **state)
{
        task_hung_at(state, FC_ARCHIVE);
}

/* A destroy is never interrupted half-way: it is followed, however long. */
static void test_destroy_task_hung(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_task_outcome(t->f, FC_DESTROY, OUTCOME_HANG, NULL);
        begin_reap(t, id, sizeof(id));
        op = run(t, id, 3 * 3600);
        assert_int_equal(op->state, OP_DESTROY);
        assert_int_equal(t->f->aborted, 0);
        assert_int_equal(t->f->calls[FC_DESTROY], 1);
}

/* --- the reap: verify --- */

/* An archive that holds another guest's configuration is never taken for
 * this guest's: nothing is destroyed. */
static void test_verify_other_config(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        /* Run to the archive's end, then change what it holds. */
        reap_until_archived(t, id, sizeof(id));
        free(t->f->backups[0].config);
        t->f->backups[0].config = strdup("name: another\nmemory: 2048\ncores: 2\n");
        op = run(t, id, 3600);
        assert_int_equal(op->state, OP_ABORTED);
        assert_contains(op->reason, "the archive holds another configuration");
        assert_guest_back(t);
}

/* The listing cannot be read: asked again, then the reap is called off. */
static void test_verify_listing_refused(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_fault(t->f, FC_FIND_BACKUP, FAULT_REFUSE, 0, 100, "storage 'local' is not online");
        op = reap(t, id, sizeof(id));
        assert_int_equal(op->state, OP_ABORTED);
        assert_contains(op->reason, "storage 'local' is not online");
        assert_guest_back(t);
}

/* The guest changed after its archive: the archive does not hold it. */
static void test_changed_after_archive(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        reap_until_archived(t, id, sizeof(id));
        json_object_set_new(fc_guest(t->f, VMID)->config, "memory", json_string("4096"));
        fc_guest(t->f, VMID)->version++;
        op = run(t, id, 3600);
        assert_int_equal(op->state, OP_ABORTED);
        assert_contains(op->reason, "'memory' is '2048' when selected and '4096' now");
        assert_int_equal(t->f->acted[FC_DESTROY], 0);
}

/* Proxmox does not answer for long: the reap gives up and puts it back. */
static void test_api_down_gives_up(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX];
        const struct op *op;

        fc_fault(t->f, FC_GUEST_READ, FAULT_LOST_BEFORE, 3, 1000, NULL);
        op = reap(t, id, sizeof(id));
        assert_true(op_state_terminal(op->state));
        assert_int_equal(t->f->acted[FC_DESTROY], 0);
}

/* --- restores --- */

static void reaped(struct t *t, char *id, size_t size)
{
        assert_reaped(t, reap(t, id, size));
}

/* The CLI's engine on the same journal, as proxreap restore opens it. */
static struct saga *cli(struct t *t)
{
        struct saga *s = NULL;
        char err[512] = "";

        if (saga_open(t->c, SAGA_CLI, &s, err, sizeof(err)) < 0)
                fail_msg("saga_open: %s", err);
        fc_attach(t->f, s);
        return s;
}

static int restore(struct t *t, struct saga *s, const char *id, enum restore_outcome *o, char *why,
                   size_t size)
{
        const struct restore_target target = { .vmid = VMID, .node = "pve1" };
        int r = saga_begin_restore(s, &t->api, id, &target, o, why, size);

        if (r < 0 || (*o != RESTORE_STARTED && *o != RESTORE_RESUME))
                return r < 0 ? r : 2;
        return saga_drive(s, &t->api, id, NULL, NULL, why, size);
}

static void test_restore_ok(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o;
        struct saga *s;

        reaped(t, id, sizeof(id));
        s = cli(t);
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 0);
        assert_int_equal(o, RESTORE_STARTED);
        assert_int_equal(op_of(&(struct t){ .s = s }, id)->state, OP_RESTORED);
        assert_non_null(fc_guest(t->f, VMID));
        assert_contains(fc_guest(t->f, VMID)->tags, "proxreap-restored");
        assert_int_equal(t->f->acted[FC_RESTORE], 1);
        /* Again: it says so, and creates nothing. */
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 2);
        assert_int_equal(o, RESTORE_DONE_ALREADY);
        assert_int_equal(t->f->calls[FC_RESTORE], 1);
        saga_free(s);
        /* The daemon sees it at its next look. */
        saga_refresh(t->s);
        assert_int_equal(op_of(t, id)->state, OP_RESTORED);
        assert_journal_agrees(t, id, OP_RESTORED);
}

/* Proxmox refuses the create: its words, journaled; the op is reaped still
 * and can be restored again. Never "it never reached the server". */
static void test_restore_refused(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o;
        struct saga *s;

        reaped(t, id, sizeof(id));
        s = cli(t);
        fc_fault(t->f, FC_RESTORE, FAULT_REFUSE, 0, 1, "storage 'nosuch' does not exist");
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 2);
        assert_int_equal(o, RESTORE_REFUSED);
        assert_contains(why, "storage 'nosuch' does not exist");
        assert_not_contains(why, "never reached");
        assert_int_equal(op_of(&(struct t){ .s = s }, id)->state, OP_REAPED);
        assert_contains(op_of(&(struct t){ .s = s }, id)->reason, "storage 'nosuch' does not exist");
        assert_null(fc_guest(t->f, VMID));
        /* And the next try works. */
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 0);
        assert_int_equal(t->f->acted[FC_RESTORE], 1);
        saga_free(s);
}

static void restore_fault(void **state, enum fc_fault_kind k)
{
        struct t *t = *state;
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o;
        struct saga *s;

        reaped(t, id, sizeof(id));
        s = cli(t);
        fc_fault(t->f, FC_RESTORE, k, 0, 1, NULL);
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 0);
        assert_int_equal(op_of(&(struct t){ .s = s }, id)->state, OP_RESTORED);
        /* One guest created, whatever was lost. */
        assert_int_equal(t->f->acted[FC_RESTORE], 1);
        assert_non_null(fc_guest(t->f, VMID));
        saga_free(s);
}

static void test_restore_lost_after(void **state)
{
        restore_fault(state, FAULT_LOST_AFTER);
}

/* No answer and nothing on the server: it may still be handled, so it is
 * looked for a while (2 x api.timeout + 5 s) before it is sent again; one
 * guest in the end. */
static void test_restore_lost_before(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o;
        uint64_t start;
        struct saga *s;

        reaped(t, id, sizeof(id));
        s = cli(t);
        fc_fault(t->f, FC_RESTORE, FAULT_LOST_BEFORE, 0, 1, NULL);
        start = t->f->now;
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 0);
        assert_true(t->f->now - start >= 2 * t->c->timeout_usec);
        assert_int_equal(t->f->calls[FC_RESTORE], 2);
        assert_int_equal(t->f->acted[FC_RESTORE], 1);
        assert_int_equal(op_of(&(struct t){ .s = s }, id)->state, OP_RESTORED);
        saga_free(s);
}

/* A create still being handled when its answer was lost: its task shows up
 * later, and is followed; nothing is sent twice. */
static void test_restore_task_appears_late(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o;
        struct saga *s;

        reaped(t, id, sizeof(id));
        s = cli(t);
        fc_fault(t->f, FC_RESTORE, FAULT_LOST_AFTER, 0, 1, NULL);
        /* The server lists the task only 20 s later. */
        t->f->hide_tasks_until = t->f->now + 20 * USEC_PER_SEC;
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 0);
        assert_int_equal(op_of(&(struct t){ .s = s }, id)->state, OP_RESTORED);
        assert_int_equal(t->f->calls[FC_RESTORE], 1);
        saga_free(s);
}

/* A retry whose answer is lost right after a failed attempt: the failed
 * attempt's task is on record and never taken for the new one. */
static void test_restore_retry_not_the_old_task(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o;
        struct saga *s;

        reaped(t, id, sizeof(id));
        s = cli(t);
        fc_task_outcome(t->f, FC_RESTORE, OUTCOME_FAIL, "unable to restore VM 101 - no space left");
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 1);
        fc_task_outcome(t->f, FC_RESTORE, OUTCOME_OK, NULL);
        fc_fault(t->f, FC_RESTORE, FAULT_LOST_AFTER, 0, 1, NULL);
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 0);
        assert_int_equal(op_of(&(struct t){ .s = s }, id)->state, OP_RESTORED);
        assert_int_equal(t->f->acted[FC_RESTORE], 2);
        saga_free(s);
}

/* A restore taken over from a process that is gone is on record: a third
 * one sees the second alive and is told so. */
static void test_restore_resume_is_claimed(void **state)
{
        struct t *t = *state;
        const struct restore_target target = { .vmid = VMID, .node = "pve1" };
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o = RESTORE_NOT_REAPED;
        int pipefd[2], status;
        struct saga *s;
        pid_t pid;
        char c;

        reaped(t, id, sizeof(id));
        fc_task_outcome(t->f, FC_RESTORE, OUTCOME_HANG, NULL);
        assert_int_equal(pipe(pipefd), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                s = cli(t);
                (void)saga_begin_restore(s, &t->api, id, &target, &o, why, sizeof(why));
                _exit(0); /* dies with its restore under way */
        }
        waitpid(pid, &status, 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                s = cli(t);
                (void)saga_begin_restore(s, &t->api, id, &target, &o, why, sizeof(why));
                (void)!write(pipefd[1], o == RESTORE_RESUME ? "r" : "x", 1);
                pause();
                _exit(0);
        }
        assert_int_equal(read(pipefd[0], &c, 1), 1);
        assert_int_equal(c, 'r');
        s = cli(t);
        assert_int_equal(saga_begin_restore(s, &t->api, id, &target, &o, why, sizeof(why)), 0);
        assert_int_equal(o, RESTORE_BUSY);
        assert_contains(why, "is being restored right now");
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        saga_free(s);
        close(pipefd[0]);
        close(pipefd[1]);
}

static void test_restore_unsent(void **state)
{
        restore_fault(state, FAULT_UNSENT);
}

static void test_restore_task_failed(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o;
        struct saga *s;

        reaped(t, id, sizeof(id));
        s = cli(t);
        fc_task_outcome(t->f, FC_RESTORE, OUTCOME_FAIL,
                        "unable to restore VM 101 - no space left on device");
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 1);
        assert_string_equal(why, "unable to restore VM 101 - no space left on device");
        assert_int_equal(op_of(&(struct t){ .s = s }, id)->state, OP_REAPED);
        saga_free(s);
}

static bool stop_after_an_hour(void *userdata, uint64_t elapsed_usec)
{
        (void)userdata;
        return elapsed_usec < USEC_PER_HOUR;
}

/* A restore task that runs for long is followed, not given up on; when
 * the operator stops waiting, it stays under way and is resumed, and
 * nothing is created twice. */
static void test_restore_task_hung(void **state)
{
        struct t *t = *state;
        const struct restore_target target = { .vmid = VMID, .node = "pve1" };
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o;
        struct saga *s;

        reaped(t, id, sizeof(id));
        s = cli(t);
        fc_task_outcome(t->f, FC_RESTORE, OUTCOME_HANG, NULL);
        assert_int_equal(saga_begin_restore(s, &t->api, id, &target, &o, why, sizeof(why)), 0);
        assert_int_equal(o, RESTORE_STARTED);
        assert_int_equal(saga_drive(s, &t->api, id, stop_after_an_hour, NULL, why, sizeof(why)), 1);
        assert_contains(why, "stays under way");
        assert_int_equal(op_of(&(struct t){ .s = s }, id)->state, OP_RESTORING);
        saga_free(s);
        /* The task ends; another run resumes it. */
        t->f->tasks[t->f->n_tasks - 1].hang = false;
        fc_task_outcome(t->f, FC_RESTORE, OUTCOME_OK, NULL);
        s = cli(t);
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 0);
        assert_int_equal(o, RESTORE_RESUME);
        assert_int_equal(t->f->acted[FC_RESTORE], 1);
        saga_free(s);
}

/* A second restore while the first one's process is alive: busy, no
 * second create. (This process's own intent counts as another live one
 * only from another process: here the intent is written by a child.) */
static void test_restore_busy(void **state)
{
        struct t *t = *state;
        const struct restore_target target = { .vmid = VMID, .node = "pve1" };
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o = RESTORE_NOT_REAPED;
        int pipefd[2], status;
        struct saga *s;
        pid_t pid;
        char c;

        reaped(t, id, sizeof(id));
        fc_task_outcome(t->f, FC_RESTORE, OUTCOME_HANG, NULL);
        assert_int_equal(pipe(pipefd), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                s = cli(t);
                (void)saga_begin_restore(s, &t->api, id, &target, &o, why, sizeof(why));
                (void)!write(pipefd[1], "x", 1);
                pause(); /* alive, "restoring" */
                _exit(0);
        }
        assert_int_equal(read(pipefd[0], &c, 1), 1);
        s = cli(t);
        assert_int_equal(saga_begin_restore(s, &t->api, id, &target, &o, why, sizeof(why)), 0);
        assert_int_equal(o, RESTORE_BUSY);
        assert_contains(why, "is being restored right now");
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        /* Its process is gone: the next one resumes, never sends twice. */
        assert_int_equal(saga_begin_restore(s, &t->api, id, &target, &o, why, sizeof(why)), 0);
        assert_int_equal(o, RESTORE_RESUME);
        saga_free(s);
        close(pipefd[0]);
        close(pipefd[1]);
}

static void test_restore_not_reaped(void **state)
{
        struct t *t = *state;
        char id[OP_ID_MAX], why[512] = "";
        enum restore_outcome o;
        const struct op *op;
        struct saga *s;

        fc_task_outcome(t->f, FC_ARCHIVE, OUTCOME_FAIL, "job errors");
        op = reap(t, id, sizeof(id));
        assert_int_equal(op->state, OP_ABORTED);
        s = cli(t);
        assert_int_equal(restore(t, s, id, &o, why, sizeof(why)), 2);
        assert_int_equal(o, RESTORE_NOT_REAPED);
        assert_contains(why, "the guest was never destroyed");
        assert_int_equal(restore(t, s, "R-pve1-000099", &o, why, sizeof(why)), 2);
        assert_contains(why, "no op 'R-pve1-000099'");
        saga_free(s);
}

/* --- one writer --- */

static void test_second_daemon_refused(void **state)
{
        struct t *t = *state;
        struct saga *s = NULL;
        char err[512] = "", pid[32];

        assert_int_equal(saga_open(t->c, SAGA_DAEMON, &s, err, sizeof(err)), -EBUSY);
        assert_null(s);
        snprintf(pid, sizeof(pid), "(pid %ld)", (long)getpid());
        assert_contains(err, "is used by another proxreapd");
        assert_contains(err, pid);
        /* The CLI is no daemon: it may open it. */
        s = cli(t);
        saga_free(s);
        /* Once the first is gone, a new one may start. */
        t->s = saga_free(t->s);
        open_saga(t, SAGA_DAEMON);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        const struct CMUnitTest tests[] = {
                T(test_reap_ok),
                T(test_shutdown_refused),
                T(test_snapshot_refused),
                T(test_archive_refused),
                T(test_destroy_refused),
                T(test_snapshot_unsupported),
                T(test_shutdown_lost_after),
                T(test_snapshot_lost_after),
                T(test_archive_lost_after),
                T(test_destroy_lost_after),
                T(test_shutdown_lost_before),
                T(test_snapshot_lost_before),
                T(test_archive_lost_before),
                T(test_destroy_lost_before),
                T(test_shutdown_unsent),
                T(test_snapshot_unsent),
                T(test_archive_unsent),
                T(test_destroy_unsent),
                T(test_shutdown_task_failed),
                T(test_snapshot_task_failed),
                T(test_archive_task_failed),
                T(test_destroy_task_failed),
                T(test_shutdown_task_hung),
                T(test_snapshot_task_hung),
                T(test_archive_task_hung),
                T(test_destroy_task_hung),
                T(test_verify_other_config),
                T(test_verify_listing_refused),
                T(test_changed_after_archive),
                T(test_api_down_gives_up),
                T(test_restore_ok),
                T(test_restore_refused),
                T(test_restore_lost_after),
                T(test_restore_lost_before),
                T(test_restore_task_appears_late),
                T(test_restore_resume_is_claimed),
                T(test_restore_retry_not_the_old_task),
                T(test_restore_unsent),
                T(test_restore_task_failed),
                T(test_restore_task_hung),
                T(test_restore_busy),
                T(test_restore_not_reaped),
                T(test_second_daemon_refused),
        };
#undef T

        log_setup("test_saga", LOG_TARGET_STDERR, LOG_WARNING);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
