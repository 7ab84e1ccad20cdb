/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of ops: journal records folded into op state, and the pure
 * decision op_next_action() for every state of the reap saga, of
 * compensation and of restore. Records are built the way src/reaper.c and
 * src/proxreap_ops.c write them (op_record()/op_record_step() plus their
 * fields) and fed through ops_apply(), as the journal reader does.
 *
 * Two property tests close the file: every prefix of several full journal
 * sequences, and thousands of random walks through the saga (the records a
 * daemon could write, with crashes/restarts), checked against the safety
 * invariants at the decision level: no destroy without a verified archive
 * on record, never a second destroy, a live op is never stuck.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>

#include "ops.h"
#include "testutil.h"
#include "util.h"

#define NOSTEP (-1)
#define T0 1700000000 /* 2023-11-14T22:13:20Z */
#define DIGEST "8a1b7c0d2e3f405162738495a6b7c8d9e0f1a2b3"

static const bool bools[] = { false, true };

/* --- building and folding records --- */

/* A record as the daemon writes it: op_record[_step]() plus the fields of
 * extra (a json_pack format, NULL: none). step NOSTEP: no "step" field. */
static json_t *rec(const char *id, const char *ev, int step, int64_t ts, const char *extra, ...)
{
        json_t *r = step == NOSTEP ? op_record(id, ev, ts)
                                   : op_record_step(id, ev, (enum op_step)step, ts);

        assert_non_null(r);
        if (extra) {
                json_error_t err;
                va_list ap;
                json_t *x;

                va_start(ap, extra);
                x = json_vpack_ex(&err, 0, extra, ap);
                va_end(ap);
                if (!x)
                        fail_msg("json_vpack_ex(%s): %s", extra, err.text);
                assert_int_equal(json_object_update(r, x), 0);
                json_decref(x);
        }
        return r;
}

static json_t *selected_rec(const char *id, uint32_t vmid, const char *type, int64_t ts)
{
        return rec(id, "selected", NOSTEP, ts, "{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:f}",
                   "vmid", (json_int_t)vmid, "type", type, "node", "pve1", "name", "web-01",
                   "digest", DIGEST, "evidence", "cpu p95 0.4% < 2% for 7d; net 120 B/s", "maxmem",
                   (json_int_t)4294967296LL, "maxdisk", (json_int_t)34359738368LL, "maxcpu", 2.0);
}

static uint64_t seq_counter;

/* Folds r (and drops it); a record must never make ops_apply() fail. */
static void apply(struct ops *o, json_t *r)
{
        uint64_t seq = ++seq_counter;

        assert_non_null(r);
        assert_int_equal(ops_apply(o, seq, (unsigned)seq, r), 0);
        json_decref(r);
}

/* Folds r and expects it to be counted as a bad record. */
static void apply_bad(struct ops *o, json_t *r)
{
        unsigned before = o->bad_records;

        apply(o, r);
        if (o->bad_records != before + 1)
                fail_msg("record was not counted as bad (bad_records %u, before %u)",
                         o->bad_records, before);
}

static char upid_buf[8][PVE_UPID_MAX];
static unsigned upid_next;

/* A real-format UPID for a task of step (rotating static buffers). */
static const char *upid_for(enum op_step step, enum guest_type t, uint32_t vmid, int64_t start)
{
        const char *type = op_step_task_types(step, t)[0];
        char *buf = upid_buf[upid_next++ % ELEMENTSOF(upid_buf)];

        snprintf(buf, PVE_UPID_MAX, "UPID:pve1:%08X:%08X:%08X:%s:%u:root@pam!proxreap:",
                 0x1000u + (unsigned)(start % 4096), 0x2000000u, (unsigned)start,
                 type ? type : "unknown", (unsigned)vmid);
        return buf;
}

/* op_next_action() for every snapshot setting and resumed flag. */
static void assert_action_all(const struct op *op, enum op_action want)
{
        for (size_t s = 0; s < 2; s++)
                for (size_t r = 0; r < 2; r++) {
                        enum op_action a = op_next_action(op, bools[s], bools[r]);

                        if (a != want)
                                fail_msg("%s (state %s, step %s, phase %d) snapshot=%d resumed=%d: "
                                         "action %s, expected %s",
                                         op->id, op_state_to_string(op->state),
                                         op_step_to_string(op->step), (int)op->phase, (int)s,
                                         (int)r, op_action_to_string(a), op_action_to_string(want));
                }
}

/* op_next_action() for both resumed flags with a fixed snapshot setting. */
static void assert_action_snap(const struct op *op, bool snapshot, enum op_action want)
{
        for (size_t r = 0; r < 2; r++) {
                enum op_action a = op_next_action(op, snapshot, bools[r]);

                if (a != want)
                        fail_msg("%s (state %s, step %s) snapshot=%d resumed=%d: action %s, "
                                 "expected %s",
                                 op->id, op_state_to_string(op->state), op_step_to_string(op->step),
                                 (int)snapshot, (int)r, op_action_to_string(a),
                                 op_action_to_string(want));
        }
}

static void assert_where(const struct op *op, enum op_state state, enum op_step step,
                         enum op_phase phase)
{
        if (op->state != state || op->step != step || op->phase != phase)
                fail_msg("%s: state %s step %s phase %d, expected state %s step %s phase %d",
                         op->id, op_state_to_string(op->state), op_step_to_string(op->step),
                         (int)op->phase, op_state_to_string(state), op_step_to_string(step),
                         (int)phase);
}

/* The op with id (must exist). */
static struct op *get(const struct ops *o, const char *id)
{
        struct op *op = ops_find(o, id);

        if (!op)
                fail_msg("op %s not found", id);
        return op;
}

/* --- the full reap, step by step --- */

static void test_selected(void **state)
{
        struct ops o;
        struct op *op;

        (void)state;
        ops_init(&o);
        apply(&o, selected_rec("R-000001", 101, "qemu", T0));
        assert_int_equal(o.n, 1);
        assert_int_equal(o.bad_records, 0);
        op = get(&o, "R-000001");
        assert_string_equal(op->id, "R-000001");
        assert_int_equal(op->vmid, 101);
        assert_int_equal(op->type, GUEST_QEMU);
        assert_string_equal(op->node, "pve1");
        assert_string_equal(op->name, "web-01");
        assert_string_equal(op->digest, DIGEST);
        assert_non_null(op->evidence);
        assert_string_equal(op->evidence, "cpu p95 0.4% < 2% for 7d; net 120 B/s");
        assert_true(op->maxmem == 4294967296ULL);
        assert_true(op->maxdisk == 34359738368ULL);
        assert_double_exact(op->maxcpu, 2.0);
        assert_int_equal(op->began, T0);
        assert_int_equal(op->updated, T0);
        assert_true(op->first_seq == seq_counter && op->last_seq == seq_counter);
        assert_where(op, OP_SELECTED, STEP_NONE, PHASE_INTENT);
        assert_false(op->stopped_by_us);
        assert_false(op->started_again);
        assert_string_equal(op->upid, "");
        assert_string_equal(op->volid, "");
        assert_null(op->archive_config);
        assert_false(op->run.resumed);
        assert_true(op->run.next_usec == 0 && op->run.tries == 0);

        /* Found at start: nothing was changed yet, close it. Begun here: go. */
        for (size_t s = 0; s < 2; s++) {
                assert_int_equal(op_next_action(op, bools[s], true), ACT_ABANDON);
                assert_int_equal(op_next_action(op, bools[s], false), ACT_START_SHUTDOWN);
        }
        assert_true(op_needs_daemon(op));
        assert_false(op_state_terminal(op->state));
        assert_ptr_equal(ops_active_for(&o, 101), op);
        assert_null(ops_active_for(&o, 102));
        assert_null(ops_find(&o, "R-000002"));

        /* An lxc guest, and numbers as JSON reals. */
        apply(&o, rec("R-000002", "selected", NOSTEP, T0 + 1,
                      "{s:I, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:I}", "vmid", (json_int_t)200,
                      "type", "lxc", "node", "pve2", "name", "ct", "digest", DIGEST, "evidence", "",
                      "maxmem", 536870912.0, "maxdisk", 8589934592.0, "maxcpu", (json_int_t)4));
        op = get(&o, "R-000002");
        assert_int_equal(op->type, GUEST_LXC);
        assert_string_equal(op->node, "pve2");
        assert_null(op->evidence); /* "" is kept as no evidence */
        assert_true(op->maxmem == 536870912ULL);
        assert_true(op->maxdisk == 8589934592ULL);
        assert_double_exact(op->maxcpu, 4.0);
        assert_ptr_equal(ops_active_for(&o, 200), op);
        ops_clear(&o);
        assert_int_equal(o.n, 0);
        assert_null(o.v);
}

/* One record of the saga and what must hold after it. */
struct expect {
        json_t *rec;
        enum op_state state;
        enum op_step step;
        enum op_phase phase;
        enum op_action with_snapshot, without_snapshot; /* resumed or not */
};

static void test_reap_saga_with_snapshot(void **state)
{
        const char *id = "R-000003";
        const char *up_shut = upid_for(STEP_SHUTDOWN, GUEST_QEMU, 101, T0 + 10);
        const char *up_snap = upid_for(STEP_SNAPSHOT, GUEST_QEMU, 101, T0 + 30);
        const char *up_dump = upid_for(STEP_ARCHIVE, GUEST_QEMU, 101, T0 + 40);
        const char *up_dest = upid_for(STEP_DESTROY, GUEST_QEMU, 101, T0 + 60);
        const char *volid = "backup:backup/vzdump-qemu-101-2023_11_14-22_14_00.vma.zst";
        struct expect steps[] = {
                { selected_rec(id, 101, "qemu", T0), OP_SELECTED, STEP_NONE, PHASE_INTENT, 0, 0 },
                { rec(id, "intent", STEP_SHUTDOWN, T0 + 10, "{s:I, s:b}", "timeout",
                      (json_int_t)180, "force_stop", 1),
                  OP_SHUTDOWN, STEP_SHUTDOWN, PHASE_INTENT, ACT_RESOLVE, ACT_RESOLVE },
                { rec(id, "task", STEP_SHUTDOWN, T0 + 11, "{s:s}", "upid", up_shut), OP_SHUTDOWN,
                  STEP_SHUTDOWN, PHASE_TASK, ACT_FOLLOW_TASK, ACT_FOLLOW_TASK },
                { rec(id, "done", STEP_SHUTDOWN, T0 + 20, "{s:s, s:s, s:I}", "exitstatus", "OK",
                      "upid", up_shut, "task_start", (json_int_t)(T0 + 10)),
                  OP_SHUTDOWN, STEP_SHUTDOWN, PHASE_DONE, ACT_START_SNAPSHOT, ACT_START_ARCHIVE },
                { rec(id, "intent", STEP_SNAPSHOT, T0 + 30, "{s:s}", "snapname",
                      "proxreap-20231114T221350Z"),
                  OP_SNAPSHOT, STEP_SNAPSHOT, PHASE_INTENT, ACT_RESOLVE, ACT_RESOLVE },
                { rec(id, "task", STEP_SNAPSHOT, T0 + 31, "{s:s}", "upid", up_snap), OP_SNAPSHOT,
                  STEP_SNAPSHOT, PHASE_TASK, ACT_FOLLOW_TASK, ACT_FOLLOW_TASK },
                { rec(id, "done", STEP_SNAPSHOT, T0 + 35, "{s:s, s:s, s:I}", "exitstatus",
                      "WARNINGS: 1", "upid", up_snap, "task_start", (json_int_t)(T0 + 30)),
                  OP_SNAPSHOT, STEP_SNAPSHOT, PHASE_DONE, ACT_START_ARCHIVE, ACT_START_ARCHIVE },
                { rec(id, "intent", STEP_ARCHIVE, T0 + 40, "{s:s, s:s}", "storage", "backup",
                      "compress", "zstd"),
                  OP_ARCHIVE, STEP_ARCHIVE, PHASE_INTENT, ACT_RESOLVE, ACT_RESOLVE },
                { rec(id, "task", STEP_ARCHIVE, T0 + 41, "{s:s}", "upid", up_dump), OP_ARCHIVE,
                  STEP_ARCHIVE, PHASE_TASK, ACT_FOLLOW_TASK, ACT_FOLLOW_TASK },
                { rec(id, "done", STEP_ARCHIVE, T0 + 50, "{s:s, s:s, s:I}", "exitstatus", "OK",
                      "upid", up_dump, "task_start", (json_int_t)(T0 + 40)),
                  OP_ARCHIVE, STEP_ARCHIVE, PHASE_DONE, ACT_VERIFY, ACT_VERIFY },
                { rec(id, "done", STEP_VERIFY, T0 + 55, "{s:s, s:I, s:I, s:s}", "volid", volid,
                      "size", (json_int_t)5368709120LL, "ctime", (json_int_t)(T0 + 40), "config",
                      "boot: order=scsi0\nmemory: 4096\n"),
                  OP_VERIFY, STEP_VERIFY, PHASE_DONE, ACT_START_DESTROY, ACT_START_DESTROY },
                { rec(id, "intent", STEP_DESTROY, T0 + 60, NULL), OP_DESTROY, STEP_DESTROY,
                  PHASE_INTENT, ACT_RESOLVE, ACT_RESOLVE },
                { rec(id, "task", STEP_DESTROY, T0 + 61, "{s:s}", "upid", up_dest), OP_DESTROY,
                  STEP_DESTROY, PHASE_TASK, ACT_FOLLOW_TASK, ACT_FOLLOW_TASK },
                { rec(id, "done", STEP_DESTROY, T0 + 70, "{s:s, s:s, s:I}", "exitstatus", "OK",
                      "upid", up_dest, "task_start", (json_int_t)(T0 + 60)),
                  OP_DESTROY, STEP_DESTROY, PHASE_DONE, ACT_FINISH_REAP, ACT_FINISH_REAP },
                { rec(id, "reaped", NOSTEP, T0 + 71, "{s:I, s:I, s:f}", "freed_mem",
                      (json_int_t)4294967296LL, "freed_disk", (json_int_t)34359738368LL,
                      "freed_cpu", 2.0),
                  OP_REAPED, STEP_NONE, PHASE_DONE, ACT_NONE, ACT_NONE },
        };
        struct ops o;
        struct op *op;

        (void)state;
        ops_init(&o);
        for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                int64_t ts = json_integer_value(json_object_get(steps[i].rec, "ts"));

                apply(&o, steps[i].rec);
                op = get(&o, id);
                assert_where(op, steps[i].state, steps[i].step, steps[i].phase);
                assert_int_equal(op->updated, ts);
                assert_true(op->last_seq == seq_counter);
                if (i == 0) {
                        assert_int_equal(op_next_action(op, true, true), ACT_ABANDON);
                        assert_int_equal(op_next_action(op, true, false), ACT_START_SHUTDOWN);
                        continue;
                }
                assert_action_snap(op, true, steps[i].with_snapshot);
                assert_action_snap(op, false, steps[i].without_snapshot);

                /* The fields each record sets. */
                assert_int_equal(op->stopped_by_us, true); /* from the shutdown intent on */
                switch (i) {
                case 1:
                        assert_int_equal(op->intent_ts, T0 + 10);
                        assert_string_equal(op->upid, "");
                        break;
                case 2:
                        assert_string_equal(op->upid, up_shut);
                        break;
                case 3:
                        assert_string_equal(op->exitstatus, "OK");
                        break;
                case 4:
                        assert_string_equal(op->snapname, "proxreap-20231114T221350Z");
                        assert_string_equal(op->upid, ""); /* a new intent: no task yet */
                        assert_int_equal(op->intent_ts, T0 + 30);
                        break;
                case 6:
                        assert_string_equal(op->exitstatus, "WARNINGS: 1");
                        break;
                case 9:
                        assert_true(op->archive_start == T0 + 40);
                        assert_string_equal(op->volid, "");
                        break;
                case 10:
                        assert_string_equal(op->volid, volid);
                        assert_true(op->archive_size == 5368709120ULL);
                        assert_int_equal(op->archive_ctime, T0 + 40);
                        assert_non_null(op->archive_config);
                        assert_string_equal(op->archive_config,
                                            "boot: order=scsi0\nmemory: 4096\n");
                        assert_true(op->archive_start == T0 + 40); /* kept */
                        break;
                default:
                        break;
                }
                if (i < ELEMENTSOF(steps) - 1)
                        assert_ptr_equal(ops_active_for(&o, 101), op);
        }
        op = get(&o, id);
        assert_true(op_state_terminal(op->state));
        assert_false(op_needs_daemon(op));
        assert_null(ops_active_for(&o, 101));
        /* The archive and identity stay on record for restore and listing. */
        assert_string_equal(op->volid, volid);
        assert_string_equal(op->snapname, "proxreap-20231114T221350Z");
        assert_int_equal(op->began, T0);
        assert_int_equal(o.bad_records, 0);
        ops_clear(&o);
}

static void test_shutdown_done_next_step(void **state)
{
        struct ops o;
        struct op *op;

        (void)state;
        ops_init(&o);
        apply(&o, selected_rec("R-000001", 101, "qemu", T0));
        apply(&o, rec("R-000001", "intent", STEP_SHUTDOWN, T0 + 1, NULL));
        apply(&o, rec("R-000001", "task", STEP_SHUTDOWN, T0 + 2, "{s:s}", "upid",
                      upid_for(STEP_SHUTDOWN, GUEST_QEMU, 101, T0 + 1)));
        apply(&o, rec("R-000001", "done", STEP_SHUTDOWN, T0 + 3, "{s:s}", "exitstatus", "OK"));
        op = get(&o, "R-000001");
        assert_action_snap(op, false, ACT_START_ARCHIVE);
        assert_action_snap(op, true, ACT_START_SNAPSHOT);

        /* A storage without snapshots: the snapshot step is recorded as
         * skipped, and the archive comes next either way. */
        apply(&o, rec("R-000001", "done", STEP_SNAPSHOT, T0 + 4, "{s:s}", "skipped",
                      "snapshot feature is not available"));
        op = get(&o, "R-000001");
        assert_where(op, OP_SNAPSHOT, STEP_SNAPSHOT, PHASE_DONE);
        assert_string_equal(op->snapname, "");
        assert_action_all(op, ACT_START_ARCHIVE);
        ops_clear(&o);
}

/* Every step that runs a task: a trailing intent means "outcome unknown"
 * (resolve), a known task is followed. */
static void test_intent_and_task_of_each_step(void **state)
{
        static const struct {
                enum op_step step;
                enum op_state state;
        } steps[] = {
                { STEP_SHUTDOWN, OP_SHUTDOWN },
                { STEP_SNAPSHOT, OP_SNAPSHOT },
                { STEP_ARCHIVE, OP_ARCHIVE },
                { STEP_DESTROY, OP_DESTROY },
        };

        (void)state;
        for (size_t t = 0; t < 2; t++)
                for (size_t i = 0; i < ELEMENTSOF(steps); i++) {
                        enum guest_type gt = t ? GUEST_LXC : GUEST_QEMU;
                        const char *up = upid_for(steps[i].step, gt, 150, T0 + 5);
                        struct ops o;
                        struct op *op;

                        ops_init(&o);
                        apply(&o, selected_rec("R-000010", 150, t ? "lxc" : "qemu", T0));
                        apply(&o, rec("R-000010", "intent", (int)steps[i].step, T0 + 5, NULL));
                        op = get(&o, "R-000010");
                        assert_where(op, steps[i].state, steps[i].step, PHASE_INTENT);
                        assert_int_equal(op->intent_ts, T0 + 5);
                        assert_action_all(op, ACT_RESOLVE);
                        assert_int_equal(op->stopped_by_us, steps[i].step == STEP_SHUTDOWN);

                        apply(&o, rec("R-000010", "task", (int)steps[i].step, T0 + 6, "{s:s}",
                                      "upid", up));
                        op = get(&o, "R-000010");
                        assert_where(op, steps[i].state, steps[i].step, PHASE_TASK);
                        assert_string_equal(op->upid, up);
                        assert_action_all(op, ACT_FOLLOW_TASK);

                        /* The answer was lost once more after a restart: a
                         * new intent, the old task id is forgotten. */
                        apply(&o, rec("R-000010", "intent", (int)steps[i].step, T0 + 9, NULL));
                        op = get(&o, "R-000010");
                        assert_where(op, steps[i].state, steps[i].step, PHASE_INTENT);
                        assert_string_equal(op->upid, "");
                        assert_int_equal(op->intent_ts, T0 + 9);
                        assert_action_all(op, ACT_RESOLVE);
                        assert_int_equal(o.bad_records, 0);
                        ops_clear(&o);
                }
}

/* Failure before destroy: compensation (start again, then aborted). */
static void test_failing_and_compensation(void **state)
{
        const char *id = "R-000004";
        const char *up_start = upid_for(STEP_START, GUEST_QEMU, 101, T0 + 30);
        struct ops o;
        struct op *op;

        (void)state;
        ops_init(&o);
        apply(&o, selected_rec(id, 101, "qemu", T0));
        apply(&o, rec(id, "intent", STEP_SHUTDOWN, T0 + 1, NULL));
        apply(&o, rec(id, "task", STEP_SHUTDOWN, T0 + 2, "{s:s}", "upid",
                      upid_for(STEP_SHUTDOWN, GUEST_QEMU, 101, T0 + 1)));
        apply(&o, rec(id, "done", STEP_SHUTDOWN, T0 + 3, "{s:s}", "exitstatus", "OK"));
        apply(&o, rec(id, "intent", STEP_ARCHIVE, T0 + 4, NULL));
        apply(&o, rec(id, "task", STEP_ARCHIVE, T0 + 5, "{s:s}", "upid",
                      upid_for(STEP_ARCHIVE, GUEST_QEMU, 101, T0 + 4)));
        apply(&o, rec(id, "failing", STEP_ARCHIVE, T0 + 20, "{s:s}", "reason", "job errors"));
        op = get(&o, id);
        assert_where(op, OP_ABORTING, STEP_NONE, PHASE_DONE);
        assert_string_equal(op->reason, "job errors");
        assert_true(op->stopped_by_us);
        assert_false(op->started_again);
        assert_int_equal(op->updated, T0 + 20);
        assert_action_all(op, ACT_COMPENSATE);
        assert_true(op_needs_daemon(op));
        assert_ptr_equal(ops_active_for(&o, 101), op);

        /* The compensating start runs like any step, in state aborting. */
        apply(&o, rec(id, "intent", STEP_START, T0 + 30, NULL));
        op = get(&o, id);
        assert_where(op, OP_ABORTING, STEP_START, PHASE_INTENT);
        assert_action_all(op, ACT_RESOLVE);
        apply(&o, rec(id, "task", STEP_START, T0 + 31, "{s:s}", "upid", up_start));
        op = get(&o, id);
        assert_where(op, OP_ABORTING, STEP_START, PHASE_TASK);
        assert_string_equal(op->upid, up_start);
        assert_action_all(op, ACT_FOLLOW_TASK);
        /* A start that did not work is counted; compensation tries again. */
        apply(&o, rec(id, "done", STEP_START, T0 + 32, "{s:s, s:b}", "exitstatus",
                      "VM is locked (backup)", "failed", 1));
        op = get(&o, id);
        assert_int_equal(op->start_failures, 1);
        assert_false(op->started_again);
        assert_string_equal(op->exitstatus, "VM is locked (backup)");
        assert_action_all(op, ACT_COMPENSATE);
        /* The guest was found on another node meanwhile. */
        apply(&o, rec(id, "moved", NOSTEP, T0 + 33, "{s:s}", "node", "pve2"));
        op = get(&o, id);
        assert_string_equal(op->node, "pve2");
        assert_where(op, OP_ABORTING, STEP_START, PHASE_DONE);
        apply(&o, rec(id, "moved", NOSTEP, T0 + 33, "{s:s}", "node", "-bad"));
        assert_int_equal(o.bad_records, 1);
        o.bad_records = 0;
        assert_string_equal(get(&o, id)->node, "pve2");
        apply(&o, rec(id, "intent", STEP_START, T0 + 34, NULL));
        apply(&o, rec(id, "done", STEP_START, T0 + 35, "{s:s}", "exitstatus", "OK"));
        op = get(&o, id);
        assert_where(op, OP_ABORTING, STEP_START, PHASE_DONE);
        assert_true(op->started_again);
        assert_action_all(op, ACT_COMPENSATE); /* then tag and close */

        /* aborted without a reason keeps the one from failing. */
        apply(&o, rec(id, "aborted", NOSTEP, T0 + 40, NULL));
        op = get(&o, id);
        assert_int_equal(op->state, OP_ABORTED);
        assert_string_equal(op->reason, "job errors");
        assert_false(op->vetoed);
        assert_action_all(op, ACT_NONE);
        assert_false(op_needs_daemon(op));
        assert_null(ops_active_for(&o, 101));

        /* A second op of the same guest, compensated with a reason of its own. */
        apply(&o, selected_rec("R-000005", 101, "qemu", T0 + 100));
        assert_ptr_equal(ops_active_for(&o, 101), get(&o, "R-000005"));
        apply(&o, rec("R-000005", "intent", STEP_SHUTDOWN, T0 + 101, NULL));
        apply(&o, rec("R-000005", "failing", STEP_SHUTDOWN, T0 + 102, "{s:s}", "reason",
                      "permission denied"));
        apply(&o, rec("R-000005", "aborted", NOSTEP, T0 + 103, "{s:s}", "reason",
                      "permission denied (its snapshot is kept)"));
        op = get(&o, "R-000005");
        assert_int_equal(op->state, OP_ABORTED);
        assert_string_equal(op->reason, "permission denied (its snapshot is kept)");
        assert_null(ops_active_for(&o, 101));
        assert_int_equal(o.bad_records, 0);
        ops_clear(&o);
}

/* A re-check that calls it off, and a restart before the first change. */
static void test_vetoed_and_abandoned(void **state)
{
        struct ops o;
        struct op *op;

        (void)state;
        ops_init(&o);
        apply(&o, selected_rec("R-000001", 101, "qemu", T0));
        apply(&o, rec("R-000001", "aborted", NOSTEP, T0 + 1, "{s:s, s:b}", "reason",
                      "its configuration changed since it was selected", "vetoed", 1));
        op = get(&o, "R-000001");
        assert_int_equal(op->state, OP_ABORTED);
        assert_true(op->vetoed);
        assert_false(op->stopped_by_us);
        assert_string_equal(op->reason, "its configuration changed since it was selected");
        assert_action_all(op, ACT_NONE);

        apply(&o, selected_rec("R-000002", 101, "qemu", T0 + 10));
        op = get(&o, "R-000002");
        assert_int_equal(op_next_action(op, false, true), ACT_ABANDON);
        apply(&o, rec("R-000002", "aborted", NOSTEP, T0 + 11, "{s:s, s:b}", "reason",
                      "proxreapd restarted before the first change; the guest was not touched",
                      "vetoed", 1));
        op = get(&o, "R-000002");
        assert_int_equal(op->state, OP_ABORTED);
        assert_true(op->vetoed);
        assert_action_all(op, ACT_NONE);

        /* "vetoed": false is not a veto. */
        apply(&o, selected_rec("R-000003", 101, "qemu", T0 + 20));
        apply(&o, rec("R-000003", "aborted", NOSTEP, T0 + 21, "{s:s, s:b}", "reason", "x", "vetoed",
                      0));
        assert_false(get(&o, "R-000003")->vetoed);
        ops_clear(&o);
}

/* Failure after the verified archive (the destroy re-check): compensation
 * keeps the volid; a guest that vanished meanwhile is reaped. */
static void test_failing_at_destroy(void **state)
{
        const char *volid = "backup:backup/vzdump-lxc-120-2023_11_14-22_14_00.tar.zst";
        struct ops o;
        struct op *op;

        (void)state;
        ops_init(&o);
        apply(&o, selected_rec("R-000001", 120, "lxc", T0));
        apply(&o, rec("R-000001", "intent", STEP_SHUTDOWN, T0 + 1, NULL));
        apply(&o, rec("R-000001", "done", STEP_SHUTDOWN, T0 + 2, "{s:s}", "exitstatus", "OK"));
        apply(&o, rec("R-000001", "intent", STEP_ARCHIVE, T0 + 3, NULL));
        apply(&o, rec("R-000001", "done", STEP_ARCHIVE, T0 + 4, "{s:s, s:I}", "exitstatus", "OK",
                      "task_start", (json_int_t)(T0 + 3)));
        apply(&o, rec("R-000001", "done", STEP_VERIFY, T0 + 5, "{s:s, s:I, s:I, s:s}", "volid",
                      volid, "size", (json_int_t)1000, "ctime", (json_int_t)(T0 + 3), "config",
                      "rootfs: local-lvm:vm-120-disk-0,size=8G\n"));
        op = get(&o, "R-000001");
        assert_action_all(op, ACT_START_DESTROY);
        apply(&o, rec("R-000001", "failing", STEP_VERIFY, T0 + 6, "{s:s}", "reason",
                      "the guest is running again (started after it was archived): not "
                      "destroying it"));
        op = get(&o, "R-000001");
        assert_where(op, OP_ABORTING, STEP_NONE, PHASE_DONE);
        assert_string_equal(op->volid, volid);
        assert_action_all(op, ACT_COMPENSATE);
        apply(&o, rec("R-000001", "reaped", NOSTEP, T0 + 7, NULL));
        op = get(&o, "R-000001");
        assert_where(op, OP_REAPED, STEP_NONE, PHASE_DONE);
        assert_action_all(op, ACT_NONE);
        assert_int_equal(o.bad_records, 0);
        ops_clear(&o);
}

/*
 * A verify record without a volid is never written (act_verify() always has
 * one), but a journal could hold one. op_next_action() decides from step and
 * phase alone and answers ACT_START_DESTROY for it; what keeps the guest is
 * act_destroy()'s own check of op->volid ("no verified archive on record").
 * This pins the fact that check relies on: no volid in the record, none on
 * the op, and no earlier archive leaks into it.
 */
static void test_verify_done_without_volid(void **state)
{
        struct ops o;
        struct op *op;

        (void)state;
        ops_init(&o);
        apply(&o, selected_rec("R-000001", 101, "qemu", T0));
        apply(&o, rec("R-000001", "intent", STEP_SHUTDOWN, T0 + 1, NULL));
        apply(&o, rec("R-000001", "done", STEP_SHUTDOWN, T0 + 2, "{s:s}", "exitstatus", "OK"));
        apply(&o, rec("R-000001", "intent", STEP_ARCHIVE, T0 + 3, NULL));
        apply(&o, rec("R-000001", "done", STEP_ARCHIVE, T0 + 4, "{s:s}", "exitstatus", "OK"));
        apply(&o, rec("R-000001", "done", STEP_VERIFY, T0 + 5, "{s:I}", "size", (json_int_t)1));
        op = get(&o, "R-000001");
        assert_where(op, OP_VERIFY, STEP_VERIFY, PHASE_DONE);
        assert_string_equal(op->volid, "");
        assert_null(op->archive_config);

        /* A second verify with a volid, then one with an empty volid: the
         * last record is what counts. */
        apply(&o, rec("R-000001", "done", STEP_VERIFY, T0 + 6, "{s:s, s:I}", "volid", "s:v", "size",
                      (json_int_t)1));
        assert_string_equal(get(&o, "R-000001")->volid, "s:v");
        apply(&o, rec("R-000001", "done", STEP_VERIFY, T0 + 7, "{s:s}", "volid", ""));
        assert_string_equal(get(&o, "R-000001")->volid, "");
        assert_int_equal(o.bad_records, 0);
        ops_clear(&o);
}

/* The digest every later step compares: pinned at selection, moved by
 * proxreap's own snapshot (its done record carries the new one) and by
 * nothing else; the pinned configuration is kept. A journal written
 * before pinning existed has no configuration. */
static void test_snapshot_moves_the_expected_digest(void **state)
{
        const char *after = "4c3bb1e8c2a8e6b7a13d9e1b5f9b0a3a2d1c0f9e";
        json_t *sel = selected_rec("R-000001", 101, "qemu", T0);
        struct ops o;

        (void)state;
        ops_init(&o);
        json_object_set_new(sel, "config", json_pack("{s:s, s:s}", "name", "web", "memory", "2048"));
        apply(&o, sel);
        assert_non_null(get(&o, "R-000001")->pinned);
        assert_string_equal(json_string_value(json_object_get(get(&o, "R-000001")->pinned, "memory")),
                            "2048");
        assert_string_equal(get(&o, "R-000001")->digest, DIGEST);
        apply(&o, rec("R-000001", "done", STEP_SHUTDOWN, T0 + 1, "{s:s}", "exitstatus", "OK"));
        assert_string_equal(get(&o, "R-000001")->digest, DIGEST);
        /* A snapshot skipped as unsupported moves nothing. */
        apply(&o, rec("R-000001", "done", STEP_SNAPSHOT, T0 + 2, "{s:s}", "skipped", "no"));
        assert_string_equal(get(&o, "R-000001")->digest, DIGEST);
        apply(&o, rec("R-000001", "done", STEP_SNAPSHOT, T0 + 3, "{s:s, s:s}", "exitstatus", "OK",
                      "digest", after));
        assert_string_equal(get(&o, "R-000001")->digest, after);
        /* verify's digest is a record for humans, not a new expectation. */
        apply(&o, rec("R-000001", "done", STEP_VERIFY, T0 + 5, "{s:s, s:I, s:s}", "volid", "s:v",
                      "size", (json_int_t)1, "digest", "other"));
        assert_string_equal(get(&o, "R-000001")->digest, after);
        apply(&o, selected_rec("R-000002", 102, "qemu", T0));
        assert_null(get(&o, "R-000002")->pinned);
        assert_int_equal(o.bad_records, 0);
        ops_clear(&o);
}

/* Terminal states and restoring: nothing for the daemon to do. */
static void test_terminal_do_nothing(void **state)
{
        (void)state;
        for (int s = 0; s < _OP_STATE_MAX; s++) {
                for (int st = 0; st < _STEP_MAX; st++)
                        for (int ph = PHASE_INTENT; ph <= PHASE_DONE; ph++) {
                                struct op op = { .state = (enum op_state)s,
                                                 .step = (enum op_step)st,
                                                 .phase = (enum op_phase)ph };

                                snprintf(op.id, sizeof(op.id), "R-000001");
                                if (op_state_terminal(op.state)) {
                                        assert_false(op_needs_daemon(&op));
                                        assert_action_all(&op, ACT_NONE);
                                } else if (s == OP_RESTORING) {
                                        /* The CLI's saga, not the daemon's. */
                                        assert_false(op_needs_daemon(&op));
                                        assert_action_all(&op, ph == PHASE_INTENT ? ACT_RESOLVE
                                                               : ph == PHASE_TASK ? ACT_FOLLOW_TASK
                                                                                  : ACT_NONE);
                                } else
                                        assert_true(op_needs_daemon(&op));
                        }
                assert_int_equal(op_state_terminal((enum op_state)s),
                                 s == OP_REAPED || s == OP_ABORTED || s == OP_RESTORED);
        }
}

/* A full reap, then a restore that fails, then one that succeeds. */
static void test_reap_restore_failed_restore(void **state)
{
        const char *id = "R-000042";
        const char *volid = "backup:backup/vzdump-qemu-101-2023_11_14-22_14_00.vma.zst";
        const char *up1 = upid_for(STEP_RESTORE, GUEST_QEMU, 150, T0 + 1000);
        const char *up2 = upid_for(STEP_RESTORE, GUEST_QEMU, 101, T0 + 2000);
        struct ops o;
        struct op *op;

        (void)state;
        ops_init(&o);
        apply(&o, selected_rec(id, 101, "qemu", T0));
        apply(&o, rec(id, "intent", STEP_SHUTDOWN, T0 + 1, NULL));
        apply(&o, rec(id, "task", STEP_SHUTDOWN, T0 + 2, "{s:s}", "upid",
                      upid_for(STEP_SHUTDOWN, GUEST_QEMU, 101, T0 + 1)));
        apply(&o, rec(id, "done", STEP_SHUTDOWN, T0 + 3, "{s:s}", "exitstatus", "OK"));
        apply(&o, rec(id, "intent", STEP_ARCHIVE, T0 + 4, NULL));
        apply(&o, rec(id, "task", STEP_ARCHIVE, T0 + 5, "{s:s}", "upid",
                      upid_for(STEP_ARCHIVE, GUEST_QEMU, 101, T0 + 4)));
        apply(&o, rec(id, "done", STEP_ARCHIVE, T0 + 6, "{s:s, s:I}", "exitstatus", "OK",
                      "task_start", (json_int_t)(T0 + 4)));
        apply(&o,
              rec(id, "done", STEP_VERIFY, T0 + 7, "{s:s, s:I, s:I, s:s}", "volid", volid, "size",
                  (json_int_t)123456, "ctime", (json_int_t)(T0 + 4), "config", "memory: 4096\n"));
        apply(&o, rec(id, "intent", STEP_DESTROY, T0 + 8, NULL));
        apply(&o, rec(id, "task", STEP_DESTROY, T0 + 9, "{s:s}", "upid",
                      upid_for(STEP_DESTROY, GUEST_QEMU, 101, T0 + 8)));
        apply(&o, rec(id, "done", STEP_DESTROY, T0 + 10, "{s:s}", "exitstatus", "OK"));
        apply(&o, rec(id, "reaped", NOSTEP, T0 + 11, NULL));
        op = get(&o, id);
        assert_int_equal(op->state, OP_REAPED);
        assert_null(ops_active_for(&o, 101));

        /* First restore: to vmid 150 on pve2, then the task fails. */
        apply(&o, rec(id, "intent", STEP_RESTORE, T0 + 1000, "{s:I, s:s, s:s}", "vmid",
                      (json_int_t)150, "node", "pve2", "storage", "local-lvm"));
        op = get(&o, id);
        assert_where(op, OP_RESTORING, STEP_RESTORE, PHASE_INTENT);
        assert_int_equal(op->restore_vmid, 150);
        assert_string_equal(op->restore_node, "pve2");
        assert_string_equal(op->restore_storage, "local-lvm");
        assert_int_equal(op->intent_ts, T0 + 1000);
        assert_false(op_state_terminal(op->state));
        assert_false(op_needs_daemon(op)); /* the CLI's */
        assert_action_all(op, ACT_RESOLVE);
        /* A restore in progress holds the original vmid. */
        assert_ptr_equal(ops_active_for(&o, 101), op);
        apply(&o, rec(id, "task", STEP_RESTORE, T0 + 1001, "{s:s}", "upid", up1));
        op = get(&o, id);
        assert_where(op, OP_RESTORING, STEP_RESTORE, PHASE_TASK);
        assert_string_equal(op->upid, up1);
        assert_action_all(op, ACT_FOLLOW_TASK);
        apply(&o, rec(id, "failed", STEP_RESTORE, T0 + 1010, "{s:s}", "reason",
                      "unable to restore VM 150 - storage 'local-lvm' is full"));
        op = get(&o, id);
        /* Back to reaped: the archive is still there, restore can be retried. */
        assert_where(op, OP_REAPED, STEP_NONE, PHASE_DONE);
        assert_string_equal(op->reason, "unable to restore VM 150 - storage 'local-lvm' is full");
        assert_string_equal(op->volid, volid);
        assert_action_all(op, ACT_NONE);
        assert_null(ops_active_for(&o, 101));

        /* Second restore: the original vmid, default storage. */
        apply(&o, rec(id, "intent", STEP_RESTORE, T0 + 2000, "{s:I, s:s, s:s}", "vmid",
                      (json_int_t)101, "node", "pve1", "storage", ""));
        op = get(&o, id);
        assert_where(op, OP_RESTORING, STEP_RESTORE, PHASE_INTENT);
        assert_int_equal(op->restore_vmid, 101);
        assert_string_equal(op->restore_node, "pve1");
        assert_string_equal(op->restore_storage, "");
        apply(&o, rec(id, "task", STEP_RESTORE, T0 + 2001, "{s:s}", "upid", up2));
        apply(&o, rec(id, "done", STEP_RESTORE, T0 + 2050, "{s:I, s:s}", "vmid", (json_int_t)101,
                      "node", "pve1"));
        op = get(&o, id);
        assert_int_equal(op->state, OP_RESTORED);
        assert_int_equal(op->step, STEP_RESTORE);
        assert_int_equal(op->phase, PHASE_DONE);
        assert_int_equal(op->restore_vmid, 101);
        assert_string_equal(op->restore_node, "pve1");
        assert_int_equal(op->restored_ts, T0 + 2050);
        assert_int_equal(op->updated, T0 + 2050);
        assert_true(op_state_terminal(op->state));
        assert_action_all(op, ACT_NONE);
        assert_null(ops_active_for(&o, 101));
        assert_string_equal(op->volid, volid);
        assert_int_equal(o.bad_records, 0);
        ops_clear(&o);
}

/* --- the table --- */

static void test_next_id(void **state)
{
        static const char *const ids[] = { "R-000001", "R-pve1-000007", "R-000003" };
        char buf[OP_ID_MAX];
        struct ops o;

        (void)state;
        ops_init(&o);
        ops_next_id(&o, "pve1", buf, sizeof(buf));
        assert_string_equal(buf, "R-pve1-000001");
        apply(&o, selected_rec("R-000001", 101, "qemu", T0));
        ops_next_id(&o, "pve1", buf, sizeof(buf));
        assert_string_equal(buf, "R-pve1-000002");
        ops_clear(&o);

        /* One past the highest, whatever the order and gaps, terminal or not. */
        ops_init(&o);
        for (size_t i = 0; i < ELEMENTSOF(ids); i++)
                apply(&o, selected_rec(ids[i], (uint32_t)(101 + i), "qemu", T0));
        apply(&o, rec("R-pve1-000007", "aborted", NOSTEP, T0 + 1, "{s:s}", "reason", "x"));
        ops_next_id(&o, "pve1", buf, sizeof(buf));
        assert_string_equal(buf, "R-pve1-000008");
        assert_int_equal(o.max_number, 7);

        /* Past six digits the id just grows. */
        apply(&o, selected_rec("R-999999", 200, "lxc", T0));
        ops_next_id(&o, "pve1", buf, sizeof(buf));
        assert_string_equal(buf, "R-pve1-1000000");
        ops_clear(&o);
}

/* Ids name their node, so two nodes sharing a storage never both write
 * "R-000001" into their archives' notes; old ids still read. */
static void test_op_id_node(void **state)
{
        struct ops o;
        char node[OP_ID_MAX];

        (void)state;
        assert_int_equal(op_id_node("R-pve1-000001", node, sizeof(node)), 0);
        assert_string_equal(node, "pve1");
        assert_int_equal(op_id_node("R-pve-node-2-000017", node, sizeof(node)), 0);
        assert_string_equal(node, "pve-node-2");
        assert_int_equal(op_id_node("R-000001", node, sizeof(node)), 0);
        assert_string_equal(node, "");
        assert_int_equal(op_id_node("R--000001", node, sizeof(node)), -EINVAL);
        assert_int_equal(op_id_node("R-pve1-", node, sizeof(node)), -EINVAL);
        assert_int_equal(op_id_node("R-pve_1-000001", node, sizeof(node)), -EINVAL);
        assert_int_equal(op_id_node("X-pve1-000001", node, sizeof(node)), -EINVAL);
        assert_int_equal(op_id_node("R-pve1-0000000001", node, sizeof(node)), -EINVAL);
        assert_int_equal(op_id_node("R-averyveryverylongnodename-000001", node, 8), -EINVAL);
        /* A host name that is no node name gives ids without one. */
        ops_init(&o);
        ops_next_id(&o, "not_a_node", node, sizeof(node));
        assert_string_equal(node, "R-000001");
        ops_clear(&o);
}

/* The first line of an archive's notes tells of its reap: today's, and
 * the forms earlier versions wrote. */
static void test_archive_note_parse(void **state)
{
        struct archive_note n;

        (void)state;
        assert_int_equal(archive_note_parse("proxreap R-pve1-000017: idle guest thesis-2023 (104, "
                                            "lxc, storage local-zfs) archived before removal by "
                                            "the proxreapd of node pve1", &n), 0);
        assert_string_equal(n.id, "R-pve1-000017");
        assert_string_equal(n.name, "thesis-2023");
        assert_int_equal(n.vmid, 104);
        assert_true(n.typed);
        assert_int_equal(n.type, GUEST_LXC);
        assert_string_equal(n.storage, "local-zfs");
        assert_string_equal(n.node, "pve1");
        assert_int_equal(archive_note_parse("proxreap R-pve2-000003: idle guest a (b) (205) archived "
                                            "before removal by the proxreapd of node pve2", &n), 0);
        assert_string_equal(n.name, "a (b)");
        assert_int_equal(n.vmid, 205);
        assert_false(n.typed);
        assert_string_equal(n.storage, "");
        /* The oldest form: no node in the text, the id's is taken. */
        assert_int_equal(archive_note_parse("proxreap R-000001: idle guest web (101) archived before removal", &n), 0);
        assert_string_equal(n.node, "");
        assert_int_equal(archive_note_parse("proxreap R-pve1-000001: idle guest web (12) archived before removal", &n), -EINVAL);
        assert_int_equal(archive_note_parse("daily backup of web", &n), -EINVAL);
        assert_int_equal(archive_note_parse("proxreap X-1: idle guest web (101) archived before removal", &n), -EINVAL);
        assert_int_equal(archive_note_parse("proxreap R-pve1-000001: idle guest web (101) archived "
                                            "before removal by the proxreapd of node bad_node", &n),
                         -EINVAL);
        assert_int_equal(archive_note_parse(NULL, &n), -EINVAL);
}

static void test_bad_records(void **state)
{
        struct ops o;
        struct op *op;
        json_t *r;

        (void)state;
        ops_init(&o);
        apply(&o, selected_rec("R-000001", 101, "qemu", T0));

        /* A record of an op never selected. */
        apply_bad(&o, rec("R-000009", "intent", STEP_SHUTDOWN, T0, NULL));
        assert_int_equal(o.bad_records, 1);
        assert_contains(o.first_bad, "R-000009");
        assert_contains(o.first_bad, "record on line ");
        assert_null(ops_find(&o, "R-000009"));

        /* An unknown event; the op is not touched. */
        apply_bad(&o, rec("R-000001", "exploded", NOSTEP, T0 + 50, NULL));
        op = get(&o, "R-000001");
        assert_int_equal(op->state, OP_SELECTED);
        assert_int_equal(op->updated, T0);

        /* Selected twice: the first one stands. */
        apply_bad(&o, selected_rec("R-000001", 555, "lxc", T0 + 60));
        op = get(&o, "R-000001");
        assert_int_equal(op->vmid, 101);
        assert_int_equal(op->type, GUEST_QEMU);
        assert_int_equal(op->began, T0);
        assert_int_equal(o.n, 1);

        /* Bad vmids and types: no op is made. */
        apply_bad(&o, selected_rec("R-000002", 99, "qemu", T0));
        apply_bad(&o, selected_rec("R-000003", 0, "qemu", T0));
        apply_bad(&o, selected_rec("R-000004", 1000000000, "qemu", T0));
        apply_bad(&o, selected_rec("R-000005", 101, "openvz", T0));
        apply_bad(&o, rec("R-000006", "selected", NOSTEP, T0, "{s:s}", "type", "qemu"));
        apply_bad(&o, rec("R-000007", "selected", NOSTEP, T0, "{s:s, s:s}", "vmid", "101", "type",
                          "qemu"));
        apply_bad(&o, rec("R-000008", "selected", NOSTEP, T0, "{s:I}", "vmid", (json_int_t)101));
        assert_int_equal(o.n, 1);
        for (unsigned i = 2; i <= 8; i++) {
                char id[16];

                snprintf(id, sizeof(id), "R-%06u", i);
                assert_null(ops_find(&o, id));
        }

        /* Bad op ids. */
        apply_bad(&o, selected_rec("X-000001", 101, "qemu", T0));
        apply_bad(&o, selected_rec("R-", 101, "qemu", T0));
        apply_bad(&o, selected_rec("R-0000000000000001", 101, "qemu", T0));
        apply_bad(&o, selected_rec("", 101, "qemu", T0));
        assert_int_equal(o.n, 1);

        /* An unknown step; a task without its intent. */
        apply_bad(&o, rec("R-000001", "intent", NOSTEP, T0 + 70, "{s:s}", "step", "reboot"));
        apply_bad(&o, rec("R-000001", "intent", NOSTEP, T0 + 70, "{s:i}", "step", 3));
        op = get(&o, "R-000001");
        assert_int_equal(op->state, OP_SELECTED);
        apply_bad(&o, rec("R-000001", "task", STEP_SHUTDOWN, T0 + 71, "{s:s}", "upid",
                          upid_for(STEP_SHUTDOWN, GUEST_QEMU, 101, T0)));
        op = get(&o, "R-000001");
        assert_string_equal(op->upid, "");
        apply(&o, rec("R-000001", "intent", STEP_SHUTDOWN, T0 + 72, NULL));
        apply_bad(&o, rec("R-000001", "task", STEP_ARCHIVE, T0 + 73, "{s:s}", "upid",
                          upid_for(STEP_ARCHIVE, GUEST_QEMU, 101, T0)));
        op = get(&o, "R-000001");
        assert_where(op, OP_SHUTDOWN, STEP_SHUTDOWN, PHASE_INTENT);

        /* Not even an op or an event. */
        r = json_object();
        apply_bad(&o, r);
        apply_bad(&o, json_pack("{s:i}", "op", 1));
        r = json_array();
        apply_bad(&o, r);
        apply_bad(&o, json_string("selected"));

        /* Only the first is described; all are counted. */
        assert_int_equal(o.bad_records, 22);
        assert_contains(o.first_bad, "R-000009");
        assert_int_equal(o.n, 1);

        /* Bad records do not move the next id (nothing was made of them). */
        {
                char buf[OP_ID_MAX];

                ops_next_id(&o, "pve1", buf, sizeof(buf));
                assert_string_equal(buf, "R-pve1-000002");
        }
        ops_clear(&o);
}

static void test_first_bad_messages(void **state)
{
        static const struct {
                const char *what;
                const char *needle;
        } cases[] = {
                { "unknown-op", "unknown op 'R-000777'" },
                { "unknown-ev", "unknown event 'frobnicated'" },
                { "twice", "selected twice" },
                { "vmid", "valid vmid" },
                { "step", "unknown step 'teleport'" },
                { "task", "task record without its intent" },
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct ops o;
                const char *w = cases[i].what;

                ops_init(&o);
                apply(&o, selected_rec("R-000001", 101, "qemu", T0));
                if (strcmp(w, "unknown-op") == 0)
                        apply_bad(&o, rec("R-000777", "done", STEP_SHUTDOWN, T0, NULL));
                else if (strcmp(w, "unknown-ev") == 0)
                        apply_bad(&o, rec("R-000001", "frobnicated", NOSTEP, T0, NULL));
                else if (strcmp(w, "twice") == 0)
                        apply_bad(&o, selected_rec("R-000001", 101, "qemu", T0));
                else if (strcmp(w, "vmid") == 0)
                        apply_bad(&o, selected_rec("R-000002", 42, "qemu", T0));
                else if (strcmp(w, "step") == 0)
                        apply_bad(&o,
                                  rec("R-000001", "done", NOSTEP, T0, "{s:s}", "step", "teleport"));
                else
                        apply_bad(&o, rec("R-000001", "task", STEP_ARCHIVE, T0, "{s:s}", "upid",
                                          "UPID:x"));
                /* line == seq in apply() */
                assert_contains(o.first_bad, "record on line ");
                assert_contains(o.first_bad, cases[i].needle);
                ops_clear(&o);
        }
}

static void test_active_for_and_find(void **state)
{
        struct ops o;
        char id[OP_ID_MAX];

        (void)state;
        ops_init(&o);
        assert_null(ops_active_for(&o, 101));
        assert_null(ops_find(&o, "R-000001"));
        /* Enough ops that the table grows (and moves) several times. */
        for (unsigned i = 1; i <= 100; i++) {
                snprintf(id, sizeof(id), "R-%06u", i);
                apply(&o, selected_rec(id, 1000 + i, i % 2 ? "qemu" : "lxc", T0 + i));
                if (i % 3 == 0)
                        apply(&o, rec(id, "aborted", NOSTEP, T0 + i, "{s:s}", "reason", "r"));
        }
        assert_int_equal(o.n, 100);
        for (unsigned i = 1; i <= 100; i++) {
                struct op *op;

                snprintf(id, sizeof(id), "R-%06u", i);
                op = get(&o, id);
                assert_int_equal(op->vmid, 1000 + i);
                assert_int_equal(op->type, i % 2 ? GUEST_QEMU : GUEST_LXC);
                if (i % 3 == 0)
                        assert_null(ops_active_for(&o, 1000 + i));
                else
                        assert_ptr_equal(ops_active_for(&o, 1000 + i), op);
        }
        /* A terminal op and a new active op of the same guest. */
        apply(&o, selected_rec("R-000101", 1003, "qemu", T0 + 500));
        assert_ptr_equal(ops_active_for(&o, 1003), get(&o, "R-000101"));
        ops_next_id(&o, "pve1", id, sizeof(id));
        assert_string_equal(id, "R-pve1-000102");
        ops_clear(&o);
}

static void test_step_task_types(void **state)
{
        static const struct {
                enum op_step step;
                const char *qemu[3], *lxc[3];
        } cases[] = {
                { STEP_SHUTDOWN,
                  { "qmshutdown", "hastop", NULL },
                  { "vzshutdown", "hastop", NULL } },
                { STEP_SNAPSHOT, { "qmsnapshot", NULL }, { "vzsnapshot", NULL } },
                { STEP_ARCHIVE, { "vzdump", NULL }, { "vzdump", NULL } },
                { STEP_VERIFY, { NULL }, { NULL } },
                { STEP_DESTROY, { "qmdestroy", NULL }, { "vzdestroy", NULL } },
                { STEP_START, { "qmstart", "hastart", NULL }, { "vzstart", "hastart", NULL } },
                { STEP_RESTORE, { "qmrestore", NULL }, { "vzrestore", NULL } },
                { STEP_NONE, { NULL }, { NULL } },
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                for (size_t t = 0; t < 2; t++) {
                        const char *const *want = t ? cases[i].lxc : cases[i].qemu;
                        const char *const *got =
                                op_step_task_types(cases[i].step, t ? GUEST_LXC : GUEST_QEMU);
                        size_t k = 0;

                        assert_non_null(got);
                        for (; want[k]; k++) {
                                if (!got[k])
                                        fail_msg("%s/%s: missing '%s'",
                                                 op_step_to_string(cases[i].step),
                                                 t ? "lxc" : "qemu", want[k]);
                                assert_string_equal(got[k], want[k]);
                        }
                        assert_null(got[k]);
                }
}

static void test_names(void **state)
{
        static const char *const states[] = { "selected", "shutdown",  "snapshot", "archive",
                                              "verify",   "destroy",   "reaped",   "aborting",
                                              "aborted",  "restoring", "restored" };
        static const char *const steps[] = { "none",   "shutdown", "snapshot", "archive",
                                             "verify", "destroy",  "start",    "restore" };
        static const char *const actions[] = { "none",    "abandon",     "shutdown",  "snapshot",
                                               "archive", "verify",      "destroy",   "finish",
                                               "resolve", "follow-task", "compensate" };

        (void)state;
        assert_int_equal(ELEMENTSOF(states), _OP_STATE_MAX);
        assert_int_equal(ELEMENTSOF(steps), _STEP_MAX);
        for (size_t i = 0; i < ELEMENTSOF(states); i++)
                assert_string_equal(op_state_to_string((enum op_state)i), states[i]);
        for (size_t i = 0; i < ELEMENTSOF(steps); i++)
                assert_string_equal(op_step_to_string((enum op_step)i), steps[i]);
        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                assert_string_equal(op_action_to_string((enum op_action)i), actions[i]);
        assert_string_equal(op_state_to_string(_OP_STATE_MAX), "unknown");
        assert_string_equal(op_step_to_string(_STEP_MAX), "unknown");
        assert_string_equal(op_action_to_string((enum op_action)ELEMENTSOF(actions)), "unknown");
}

static void test_op_record(void **state)
{
        json_t *r;

        (void)state;
        r = op_record("R-000001", "selected", T0);
        assert_non_null(r);
        assert_int_equal(json_object_size(r), 4);
        assert_string_equal(json_string_value(json_object_get(r, "op")), "R-000001");
        assert_string_equal(json_string_value(json_object_get(r, "ev")), "selected");
        assert_true(json_is_integer(json_object_get(r, "ts")));
        assert_int_equal(json_integer_value(json_object_get(r, "ts")), T0);
        assert_string_equal(json_string_value(json_object_get(r, "time")), "2023-11-14T22:13:20Z");
        json_decref(r);

        r = op_record("R-000001", "reaped", 0);
        assert_string_equal(json_string_value(json_object_get(r, "time")), "1970-01-01T00:00:00Z");
        json_decref(r);

        /* Every step name survives the round trip through a record. */
        for (int s = STEP_SHUTDOWN; s < _STEP_MAX; s++) {
                struct ops o;
                struct op *op;

                r = op_record_step("R-000001", "intent", (enum op_step)s, T0 + 1);
                assert_non_null(r);
                assert_int_equal(json_object_size(r), 5);
                assert_string_equal(json_string_value(json_object_get(r, "step")),
                                    op_step_to_string((enum op_step)s));
                ops_init(&o);
                apply(&o, selected_rec("R-000001", 101, "qemu", T0));
                apply(&o, r);
                op = get(&o, "R-000001");
                assert_int_equal(op->step, s);
                assert_int_equal(op->phase, PHASE_INTENT);
                assert_int_equal(o.bad_records, 0);
                ops_clear(&o);
        }
}

/* The journal stores records as text: folding the re-parsed text gives
 * the same op (reals, large integers, escapes). */
static void test_fold_after_text_round_trip(void **state)
{
        const char *config = "description: \"quoted\" and \\ backslash\nmemory: 4096\n";
        json_t *recs[6];
        struct ops a, b;
        struct op *x, *y;

        (void)state;
        recs[0] = selected_rec("R-000001", 999999999, "qemu", T0);
        recs[1] = rec("R-000001", "intent", STEP_SHUTDOWN, T0 + 1, NULL);
        recs[2] = rec("R-000001", "done", STEP_SHUTDOWN, T0 + 2, "{s:s}", "exitstatus", "OK");
        recs[3] = rec("R-000001", "intent", STEP_ARCHIVE, T0 + 3, NULL);
        recs[4] = rec("R-000001", "done", STEP_ARCHIVE, T0 + 4, "{s:s, s:I}", "exitstatus",
                      "WARNINGS: 2", "task_start", (json_int_t)0x6419CAF8);
        recs[5] = rec("R-000001", "done", STEP_VERIFY, T0 + 5, "{s:s, s:I, s:I, s:s}", "volid",
                      "backup:backup/vzdump-qemu-999999999-2023_11_14-22_14_00.vma.zst", "size",
                      (json_int_t)INT64_C(1099511627776), "ctime", (json_int_t)(T0 + 3), "config",
                      config);
        ops_init(&a);
        ops_init(&b);
        for (size_t i = 0; i < ELEMENTSOF(recs); i++) {
                char *text = json_dumps(recs[i], JSON_COMPACT);
                json_error_t err;
                json_t *again;

                assert_non_null(text);
                again = json_loads(text, 0, &err);
                assert_non_null(again);
                free(text);
                apply(&a, recs[i]);
                apply(&b, again);
        }
        x = get(&a, "R-000001");
        y = get(&b, "R-000001");
        assert_int_equal(x->vmid, 999999999);
        assert_int_equal(y->vmid, x->vmid);
        assert_where(y, x->state, x->step, x->phase);
        assert_true(y->maxmem == x->maxmem && y->maxdisk == x->maxdisk);
        assert_double_exact(y->maxcpu, x->maxcpu);
        assert_true(y->archive_start == 0x6419CAF8 && x->archive_start == 0x6419CAF8);
        assert_true(y->archive_size == 1099511627776ULL && x->archive_size == y->archive_size);
        assert_string_equal(y->volid, x->volid);
        assert_string_equal(y->archive_config, config);
        assert_string_equal(x->archive_config, config);
        assert_string_equal(y->exitstatus, x->exitstatus);
        ops_clear(&a);
        ops_clear(&b);
}

/* --- properties --- */

struct seq {
        json_t *v[64];
        size_t n;
};

static void push(struct seq *s, json_t *r)
{
        assert_true(s->n < ELEMENTSOF(s->v));
        s->v[s->n++] = r;
}

static void seq_free(struct seq *s)
{
        for (size_t i = 0; i < s->n; i++)
                json_decref(s->v[i]);
        s->n = 0;
}

static bool is_verified_archive(json_t *r)
{
        const char *volid = json_string_value(json_object_get(r, "volid"));

        return strcmp(json_string_value(json_object_get(r, "ev")), "done") == 0 &&
               json_string_value(json_object_get(r, "step")) &&
               strcmp(json_string_value(json_object_get(r, "step")), "verify") == 0 && volid &&
               *volid;
}

static bool is_destroy_intent(json_t *r)
{
        const char *step = json_string_value(json_object_get(r, "step"));

        return strcmp(json_string_value(json_object_get(r, "ev")), "intent") == 0 && step &&
               strcmp(step, "destroy") == 0;
}

/* Journal sequences of one op, as the daemon and the CLI write them. */
static void build_sequence(unsigned which, struct seq *s)
{
        const char *id = "R-000001";
        const char *volid = "backup:backup/vzdump-qemu-101-2023_11_14-22_14_00.vma.zst";
        int64_t t = T0;

        s->n = 0;
        push(s, selected_rec(id, 101, "qemu", t++));
        if (which == 5) { /* vetoed by the re-check */
                push(s, rec(id, "aborted", NOSTEP, t++, "{s:s, s:b}", "reason", "it is busy now",
                            "vetoed", 1));
                return;
        }
        push(s, rec(id, "intent", STEP_SHUTDOWN, t++, NULL));
        if (which == 3) /* lost answer, resolved by sending it again */
                push(s, rec(id, "intent", STEP_SHUTDOWN, t++, NULL));
        push(s, rec(id, "task", STEP_SHUTDOWN, t++, "{s:s}", "upid",
                    upid_for(STEP_SHUTDOWN, GUEST_QEMU, 101, T0)));
        push(s, rec(id, "done", STEP_SHUTDOWN, t++, "{s:s}", "exitstatus", "OK"));
        if (which == 0 || which == 3) {
                push(s, rec(id, "intent", STEP_SNAPSHOT, t++, "{s:s}", "snapname",
                            "proxreap-20231114T221400Z"));
                push(s, rec(id, "task", STEP_SNAPSHOT, t++, "{s:s}", "upid",
                            upid_for(STEP_SNAPSHOT, GUEST_QEMU, 101, T0)));
                push(s, rec(id, "done", STEP_SNAPSHOT, t++, "{s:s}", "exitstatus", "OK"));
        } else if (which == 1)
                push(s, rec(id, "done", STEP_SNAPSHOT, t++, "{s:s}", "skipped",
                            "snapshot feature is not available"));
        push(s, rec(id, "intent", STEP_ARCHIVE, t++, NULL));
        push(s, rec(id, "task", STEP_ARCHIVE, t++, "{s:s}", "upid",
                    upid_for(STEP_ARCHIVE, GUEST_QEMU, 101, T0)));
        if (which == 4) { /* vzdump failed: compensate */
                push(s, rec(id, "failing", STEP_ARCHIVE, t++, "{s:s}", "reason", "job errors"));
                push(s, rec(id, "intent", STEP_START, t++, NULL));
                push(s, rec(id, "task", STEP_START, t++, "{s:s}", "upid",
                            upid_for(STEP_START, GUEST_QEMU, 101, T0)));
                push(s, rec(id, "done", STEP_START, t++, "{s:s}", "exitstatus", "OK"));
                push(s, rec(id, "aborted", NOSTEP, t++, "{s:s}", "reason", "job errors"));
                return;
        }
        push(s, rec(id, "done", STEP_ARCHIVE, t++, "{s:s, s:I}", "exitstatus", "OK", "task_start",
                    (json_int_t)T0));
        push(s, rec(id, "done", STEP_VERIFY, t++, "{s:s, s:I, s:I, s:s}", "volid", volid, "size",
                    (json_int_t)4096, "ctime", (json_int_t)T0, "config", "memory: 512\n"));
        if (which == 6) { /* the destroy re-check found it running */
                push(s, rec(id, "failing", STEP_VERIFY, t++, "{s:s}", "reason", "running again"));
                push(s, rec(id, "aborted", NOSTEP, t++, "{s:s}", "reason", "running again"));
                return;
        }
        push(s, rec(id, "intent", STEP_DESTROY, t++, NULL));
        if (which != 2) /* 2: lost answer, the server's task list shows it */
                push(s, rec(id, "task", STEP_DESTROY, t++, "{s:s}", "upid",
                            upid_for(STEP_DESTROY, GUEST_QEMU, 101, T0)));
        push(s, rec(id, "done", STEP_DESTROY, t++, "{s:s}", "exitstatus", "guest gone"));
        push(s, rec(id, "reaped", NOSTEP, t++, NULL));
        push(s, rec(id, "intent", STEP_RESTORE, t++, "{s:I, s:s, s:s}", "vmid", (json_int_t)101,
                    "node", "pve1", "storage", ""));
        push(s, rec(id, "task", STEP_RESTORE, t++, "{s:s}", "upid",
                    upid_for(STEP_RESTORE, GUEST_QEMU, 101, T0)));
        push(s, rec(id, "failed", STEP_RESTORE, t++, "{s:s}", "reason", "no space"));
        push(s, rec(id, "intent", STEP_RESTORE, t++, "{s:I, s:s, s:s}", "vmid", (json_int_t)101,
                    "node", "pve1", "storage", ""));
        push(s, rec(id, "task", STEP_RESTORE, t++, "{s:s}", "upid",
                    upid_for(STEP_RESTORE, GUEST_QEMU, 101, T0)));
        push(s, rec(id, "done", STEP_RESTORE, t++, "{s:I, s:s}", "vmid", (json_int_t)101, "node",
                    "pve1"));
}

/* For every prefix of a full journal: no destroy is decided without a
 * verified archive (a verify done with a volid) in that prefix, and none
 * once a destroy was announced. */
static void test_no_destroy_without_verified_archive(void **state)
{
        (void)state;
        for (unsigned which = 0; which <= 6; which++) {
                struct seq s;
                unsigned destroys = 0;

                build_sequence(which, &s);
                for (size_t k = 1; k <= s.n; k++) {
                        bool verified = false, destroy_sent = false;
                        struct ops o;
                        struct op *op;

                        ops_init(&o);
                        for (size_t i = 0; i < k; i++) {
                                verified |= is_verified_archive(s.v[i]);
                                destroy_sent |= is_destroy_intent(s.v[i]);
                                assert_int_equal(ops_apply(&o, i + 1, (unsigned)(i + 1), s.v[i]),
                                                 0);
                        }
                        assert_int_equal(o.bad_records, 0);
                        op = get(&o, "R-000001");
                        for (size_t sn = 0; sn < 2; sn++)
                                for (size_t rs = 0; rs < 2; rs++) {
                                        enum op_action a = op_next_action(op, bools[sn], bools[rs]);

                                        if (a == ACT_START_DESTROY && (!verified || destroy_sent))
                                                fail_msg("sequence %u, prefix %zu (state %s): "
                                                         "destroy decided %s",
                                                         which, k, op_state_to_string(op->state),
                                                         verified ? "a second time"
                                                                  : "without a verified archive");
                                        destroys += a == ACT_START_DESTROY;
                                        if (a == ACT_START_DESTROY)
                                                assert_string_not_equal(op->volid, "");
                                }
                        ops_clear(&o);
                }
                /* The sequences that get there do decide the destroy. */
                if (which == 5 || which == 4)
                        assert_int_equal(destroys, 0);
                else
                        assert_int_equal(destroys, 4);
                seq_free(&s);
        }
}

/* --- random walks through the saga --- */

static uint64_t rng_state;

static unsigned rnd(unsigned n)
{
        /* xorshift64*: deterministic, the seed is printed on failure */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (unsigned)((rng_state * 0x2545F4914F6CDD1DULL) >> 33) % n;
}

struct walk {
        struct ops o;
        const char *id;
        uint32_t vmid;
        enum guest_type type;
        bool snapshot, resumed;
        int64_t t;
        unsigned restores;
        /* what the records so far hold */
        bool verified, destroy_sent, destroy_done, shutdown_sent, ended;
        unsigned n;
        char trace[4096];
};

static void walk_apply(struct walk *w, json_t *r)
{
        const char *ev = json_string_value(json_object_get(r, "ev"));
        const char *step = json_string_value(json_object_get(r, "step"));
        size_t len = strlen(w->trace);

        snprintf(w->trace + len, sizeof(w->trace) - len, "%s%s%s%s", len ? " " : "", ev,
                 step ? "/" : "", step ? step : "");
        w->verified |= is_verified_archive(r);
        w->destroy_sent |= is_destroy_intent(r);
        w->destroy_done |= strcmp(ev, "done") == 0 && step && strcmp(step, "destroy") == 0;
        w->shutdown_sent |= strcmp(ev, "intent") == 0 && step && strcmp(step, "shutdown") == 0;
        w->n++;
        apply(&w->o, r);
}

static void walk_step_rec(struct walk *w, const char *ev, enum op_step step, const char *fmt,
                          const char *a, const char *b)
{
        json_t *r;

        if (fmt)
                r = rec(w->id, ev, (int)step, w->t++, fmt, a, b);
        else
                r = rec(w->id, ev, (int)step, w->t++, NULL);
        walk_apply(w, r);
}

static void walk_task(struct walk *w, enum op_step step)
{
        walk_step_rec(w, "task", step, "{s:s}", "upid", upid_for(step, w->type, w->vmid, w->t));
}

static void walk_failing(struct walk *w, enum op_step step)
{
        walk_step_rec(w, "failing", step, "{s:s}", "reason", "something failed");
}

static void walk_done(struct walk *w, enum op_step step)
{
        walk_step_rec(w, "done", step, "{s:s}", "exitstatus", rnd(3) ? "OK" : "WARNINGS: 1");
}

/* Writes the record(s) the daemon could write for action a. */
static void walk_act(struct walk *w, struct op *op, enum op_action a)
{
        enum op_step step = op->step;

        switch (a) {
        case ACT_ABANDON:
                walk_apply(w, rec(w->id, "aborted", NOSTEP, w->t++, "{s:s, s:b}", "reason",
                                  "restarted", "vetoed", 1));
                return;
        case ACT_START_SHUTDOWN:
                if (rnd(10) == 0)
                        walk_apply(w, rec(w->id, "aborted", NOSTEP, w->t++, "{s:s, s:b}", "reason",
                                          "it is busy now", "vetoed", 1));
                else
                        walk_step_rec(w, "intent", STEP_SHUTDOWN, NULL, NULL, NULL);
                return;
        case ACT_START_SNAPSHOT:
                if (rnd(5) == 0)
                        walk_step_rec(w, "done", STEP_SNAPSHOT, "{s:s}", "skipped",
                                      "snapshot feature is not available");
                else if (rnd(10) == 0)
                        walk_failing(w, op->step);
                else
                        walk_step_rec(w, "intent", STEP_SNAPSHOT, "{s:s}", "snapname",
                                      "proxreap-20231114T221400Z");
                return;
        case ACT_START_ARCHIVE:
                if (rnd(10) == 0)
                        walk_failing(w, op->step);
                else
                        walk_step_rec(w, "intent", STEP_ARCHIVE, NULL, NULL, NULL);
                return;
        case ACT_VERIFY:
                if (rnd(10) == 0)
                        walk_failing(w, STEP_ARCHIVE);
                else
                        walk_apply(w,
                                   rec(w->id, "done", STEP_VERIFY, w->t++, "{s:s, s:I, s:I, s:s}",
                                       "volid",
                                       "backup:backup/vzdump-qemu-101-2023_11_14-22_14_00.vma.zst",
                                       "size", (json_int_t)(1 + rnd(1000)), "ctime", (json_int_t)T0,
                                       "config", "memory: 512\n"));
                return;
        case ACT_START_DESTROY:
                if (rnd(10) == 0)
                        walk_failing(w, STEP_VERIFY);
                else
                        walk_step_rec(w, "intent", STEP_DESTROY, NULL, NULL, NULL);
                return;
        case ACT_FINISH_REAP:
                walk_apply(w, rec(w->id, "reaped", NOSTEP, w->t++, NULL));
                return;
        case ACT_RESOLVE:
                switch (rnd(8)) {
                case 0:
                case 1:
                case 2:
                case 3: /* found the task */
                        walk_task(w, step);
                        return;
                case 4:
                case 5: /* no task: destroy checks the guest, start checks it runs */
                        if (step == STEP_DESTROY || step == STEP_START)
                                walk_done(w, step);
                        else
                                walk_step_rec(w, "intent", step, NULL, NULL, NULL);
                        return;
                case 6:
                        if (step == STEP_DESTROY)
                                walk_failing(w, step);
                        else
                                walk_step_rec(w, "intent", step, NULL, NULL, NULL);
                        return;
                default:
                        if (step == STEP_START)
                                walk_done(w, step);
                        else
                                walk_failing(w, step);
                        return;
                }
        case ACT_FOLLOW_TASK:
                if (step == STEP_START || rnd(10))
                        walk_done(w, step);
                else if (step == STEP_SNAPSHOT && rnd(2))
                        walk_step_rec(w, "done", STEP_SNAPSHOT, "{s:s}", "skipped",
                                      "snapshot feature is not available");
                else
                        walk_failing(w, step);
                return;
        case ACT_COMPENSATE:
                if (op->stopped_by_us && !op->started_again && rnd(3))
                        walk_step_rec(w, "intent", STEP_START, NULL, NULL, NULL);
                else if (op->volid[0] && rnd(4) == 0)
                        walk_apply(w, rec(w->id, "reaped", NOSTEP, w->t++, NULL));
                else
                        walk_apply(w, rec(w->id, "aborted", NOSTEP, w->t++, NULL));
                return;
        case ACT_NONE:
                if (op->state == OP_RESTORING) {
                        if (op->phase == PHASE_INTENT && rnd(3))
                                walk_task(w, STEP_RESTORE);
                        else if (op->phase == PHASE_TASK && rnd(3))
                                walk_apply(w, rec(w->id, "done", STEP_RESTORE, w->t++, "{s:I, s:s}",
                                                  "vmid", (json_int_t)w->vmid, "node", "pve1"));
                        else
                                walk_step_rec(w, "failed", STEP_RESTORE, "{s:s}", "reason",
                                              "no space");
                        return;
                }
                if (op->state == OP_REAPED && op->volid[0] && w->restores < 3 && rnd(2)) {
                        w->restores++;
                        walk_apply(w,
                                   rec(w->id, "intent", STEP_RESTORE, w->t++, "{s:I, s:s, s:s}",
                                       "vmid", (json_int_t)w->vmid, "node", "pve1", "storage", ""));
                        return;
                }
                w->ended = true;
                return;
        }
        fail_msg("unknown action %d", (int)a);
}

/* The safety properties every journal prefix must keep. */
static void walk_check(struct walk *w, struct op *op)
{
        for (size_t sn = 0; sn < 2; sn++)
                for (size_t rs = 0; rs < 2; rs++) {
                        enum op_action a = op_next_action(op, bools[sn], bools[rs]);
                        const char *bad = NULL;

                        if (a == ACT_START_DESTROY && !w->verified)
                                bad = "destroy without a verified archive";
                        else if (a == ACT_START_DESTROY && w->destroy_sent)
                                bad = "a second destroy";
                        else if (a == ACT_START_DESTROY && !op->volid[0])
                                bad = "destroy without a volid on the op";
                        else if (a == ACT_FINISH_REAP && !w->destroy_done)
                                bad = "reaped without a destroy";
                        else if (a == ACT_COMPENSATE && op->state != OP_ABORTING)
                                bad = "compensation outside aborting";
                        else if (a == ACT_START_SHUTDOWN && (bools[rs] || op->state != OP_SELECTED))
                                bad = "shutdown of a resumed or already started op";
                        else if (a == ACT_ABANDON && (!bools[rs] || op->state != OP_SELECTED))
                                bad = "abandon of an op that changed something";
                        else if ((a == ACT_NONE) != op_state_terminal(op->state))
                                bad = "a live op with nothing to do, or a finished one with work";
                        if (bad)
                                fail_msg("seed %llu, record %u, snapshot=%d resumed=%d: %s: "
                                         "state %s step %s phase %d action %s\ntrace: %s",
                                         (unsigned long long)rng_state, w->n, (int)sn, (int)rs, bad,
                                         op_state_to_string(op->state), op_step_to_string(op->step),
                                         (int)op->phase, op_action_to_string(a), w->trace);
                }
        if ((ops_active_for(&w->o, w->vmid) == op) == op_state_terminal(op->state))
                fail_msg("ops_active_for disagrees with state %s; trace: %s",
                         op_state_to_string(op->state), w->trace);
        if (op->stopped_by_us != w->shutdown_sent)
                fail_msg("stopped_by_us %d after: %s", (int)op->stopped_by_us, w->trace);
        if (op->state == OP_RESTORED && !op->volid[0])
                fail_msg("restored without an archive: %s", w->trace);
        assert_int_equal(w->o.bad_records, 0);
}

static void test_random_walks(void **state)
{
        unsigned long long seeds = 0, records = 0, reaped = 0, restored = 0, aborted = 0;

        (void)state;
        for (uint64_t seed = 1; seed <= 3000; seed++) {
                struct walk *w = calloc(1, sizeof(*w));
                struct op *op;

                assert_non_null(w);
                rng_state = seed * 0x9E3779B97F4A7C15ULL;
                ops_init(&w->o);
                w->id = "R-000001";
                w->vmid = 100 + (uint32_t)rnd(1000);
                w->type = rnd(2) ? GUEST_LXC : GUEST_QEMU;
                w->snapshot = rnd(2);
                w->t = T0;
                walk_apply(w, selected_rec(w->id, w->vmid, w->type == GUEST_LXC ? "lxc" : "qemu",
                                           w->t++));
                while (!w->ended && w->n < 120) {
                        op = get(&w->o, w->id);
                        walk_check(w, op);
                        /* A crash and restart: every op found is "resumed". */
                        if (rnd(8) == 0)
                                w->resumed = true;
                        walk_act(w, op, op_next_action(op, w->snapshot, w->resumed));
                }
                op = get(&w->o, w->id);
                walk_check(w, op);
                seeds++;
                records += w->n;
                reaped += op->state == OP_REAPED;
                restored += op->state == OP_RESTORED;
                aborted += op->state == OP_ABORTED;
                ops_clear(&w->o);
                free(w);
        }
        print_message("%llu walks, %llu records: %llu reaped, %llu restored, %llu aborted\n", seeds,
                      records, reaped, restored, aborted);
        /* The walks do reach every end. */
        assert_true(reaped > 50 && restored > 50 && aborted > 50);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_selected),
                cmocka_unit_test(test_reap_saga_with_snapshot),
                cmocka_unit_test(test_shutdown_done_next_step),
                cmocka_unit_test(test_intent_and_task_of_each_step),
                cmocka_unit_test(test_failing_and_compensation),
                cmocka_unit_test(test_vetoed_and_abandoned),
                cmocka_unit_test(test_failing_at_destroy),
                cmocka_unit_test(test_verify_done_without_volid),
                cmocka_unit_test(test_snapshot_moves_the_expected_digest),
                cmocka_unit_test(test_terminal_do_nothing),
                cmocka_unit_test(test_reap_restore_failed_restore),
                cmocka_unit_test(test_next_id),
                cmocka_unit_test(test_op_id_node),
                cmocka_unit_test(test_archive_note_parse),
                cmocka_unit_test(test_bad_records),
                cmocka_unit_test(test_first_bad_messages),
                cmocka_unit_test(test_active_for_and_find),
                cmocka_unit_test(test_step_task_types),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_op_record),
                cmocka_unit_test(test_fold_after_text_round_trip),
                cmocka_unit_test(test_no_destroy_without_verified_archive),
                cmocka_unit_test(test_random_walks),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
