/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * ops: what the journal says about every reap and restore. Folds journal
 * records into one struct op per op id, and decides from that state alone
 * what must happen next. No I/O: the daemon, the CLI and crash recovery all
 * use the same fold and the same decision, so a restarted daemon continues
 * exactly where the records say the last one stopped.
 *
 * Records (the journal payloads), all with "op", "ev", "ts" (UNIX s) and
 * "time" (UTC, for humans):
 *   selected  vmid type node name digest config volumes evidence maxmem
 *             maxdisk maxcpu [pool]   (config and volumes pin the guest's
 *             identity: what every later step compares it with)
 *   intent    step [snapname | target vmid node storage pool pid boot]
 *   failing   step reason [called_off]
 *   adopted   vmid type node name volid archive_node size ctime archive_config
 *             (a reap no journal here holds, found by its archive's notes)
 *   resume    pid pid_start boot (a restore taken over from a process that is gone)
 *             (before the call; a restore's intent names its target, and
 *             the process and boot that sent it)
 *   task      step upid                                  (the call's answer)
 *   done      step [exitstatus] [failed] [skipped] [digest] [volid size ctime
 *             config node]   (start: failed = the compensating start did not
 *             work; it is tried again)
 *             (snapshot: digest is the guest's after proxreap's own
 *             snapshot, which changes it and nothing else)
 *   moved     node             (the guest was found on another node)
 *   failing   step reason      (compensation starts)
 *   aborted   reason           (terminal)
 *   reaped    freed_disk freed_mem freed_cpu (terminal)
 *   failed    step reason      (a restore attempt failed; can be retried)
 */
#ifndef PROXREAP_OPS_H
#define PROXREAP_OPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pve.h"
#include "pve_api.h"

enum op_state {
        OP_SELECTED,
        OP_SHUTDOWN,
        OP_SNAPSHOT,
        OP_ARCHIVE,
        OP_VERIFY,
        OP_DESTROY,
        OP_REAPED, /* terminal for the reap */
        OP_ABORTING,
        OP_ABORTED, /* terminal */
        OP_RESTORING,
        OP_RESTORED, /* terminal */
        _OP_STATE_MAX,
};

enum op_step {
        STEP_NONE,
        STEP_SHUTDOWN,
        STEP_SNAPSHOT,
        STEP_ARCHIVE,
        STEP_VERIFY,
        STEP_DESTROY,
        STEP_START, /* compensation */
        STEP_RESTORE,
        _STEP_MAX,
};

enum op_phase {
        PHASE_INTENT, /* journaled, answer not (yet) journaled: outcome unknown */
        PHASE_TASK, /* the task runs: upid known */
        PHASE_DONE,
};

/* "R-<node>-NNNNNN": the node whose proxreapd reaped it, so that nodes
 * sharing a backup storage never name two reaps alike ("R-NNNNNN" in a
 * journal from before). */
#define OP_ID_MAX 80

struct op {
        char id[OP_ID_MAX]; /* R-pve1-000017 */
        uint32_t vmid;
        enum guest_type type;
        char node[64];
        char name[128];
        char pool[64]; /* "" when in none: restore puts the guest back in it */
        /* The guest's config digest as it must be now: pinned at
         * selection, moved only by proxreap's own snapshot. */
        char digest[64];
        /* The configuration pinned at selection (fields as strings, see
         * guestconf.h); NULL in an op journaled before pinning existed. */
        json_t *pinned;
        json_t *upids; /* every task on record for it, of every step and attempt */
        char *evidence;
        uint64_t maxmem, maxdisk;
        double maxcpu;
        int64_t began, updated; /* UNIX s */

        enum op_state state;
        enum op_step step;
        enum op_phase phase;
        char upid[PVE_UPID_MAX];
        int64_t intent_ts;
        bool stopped_by_us; /* a shutdown was sent: compensation starts it again */
        bool called_off; /* failing because an operator called it off (proxreap abort) */
        bool adopted; /* reaped elsewhere, found by its archive's notes */
        bool started_again;
        unsigned start_failures; /* compensating starts that did not work */
        char snapname[48];
        bool snapshot_taken; /* its snapshot step ended with a snapshot */
        char exitstatus[512];

        /* the verified archive */
        char volid[256];
        char archive_node[64]; /* where it was verified: a node that can read it */
        uint64_t archive_size;
        int64_t archive_ctime;
        uint64_t archive_start; /* the vzdump task's start (server clock) */
        char *archive_config;

        char reason[512]; /* why it was aborted, or why a restore failed */

        /* restore */
        uint32_t restore_vmid;
        char restore_node[64];
        char restore_storage[64];
        char restore_pool[64];
        bool restore_pool_set; /* restore_pool says where ("" none), else the op's */
        int64_t restore_pid; /* the process that journaled the restore intent */
        int64_t restore_start; /* when it started (/proc/PID/stat), -1 unknown */
        char restore_boot[40]; /* and the boot it ran in (/proc/sys/kernel/random/boot_id) */
        int64_t restored_ts;

        bool vetoed; /* aborted by a re-check, not a failure: no retry delay */
        uint64_t first_seq, last_seq;

        /* Not from the journal: this process's bookkeeping. */
        struct {
                bool resumed; /* found at start, not begun here */
                uint64_t next_usec; /* monotonic: when the next step is due */
                uint64_t backoff_usec;
                unsigned tries; /* of the current wait */
                /* monotonic: when this process journaled the current
                 * intent (0: not yet known, e.g. resumed); step limits
                 * count from here, so a wall clock step changes none */
                uint64_t intent_usec;
                bool unsent; /* the last call provably never left: no connection */
                /* monotonic: when this process journaled the verified
                 * archive (0: before it started); the destroy waits for a
                 * poll completed after it, so the re-check sees the
                 * guest's pool and scope as they are now */
                uint64_t verified_usec;
                /* monotonic: when the guest was found missing on its node
                 * (0: it was not); a poll completed after it tells where
                 * it went */
                uint64_t missing_usec;
        } run;
};

struct ops {
        /* Each op is its own allocation: a struct op * stays valid while
         * records are folded in (only ops_clear() frees them). */
        struct op **v;
        size_t n, allocated;
        unsigned max_number; /* highest R-number seen */
        unsigned bad_records; /* records that did not fit (reported, skipped) */
        char first_bad[256];
};

void ops_init(struct ops *o);
void ops_clear(struct ops *o);

/* The journal_record_fn that folds one record into the table. */
int ops_apply(void *userdata, uint64_t seq, unsigned line, json_t *payload);

struct op *ops_find(const struct ops *o, const char *id);
/* What an operator names an op by: its id (in any case), the vmid its
 * guest had, or its guest's name (in any case). Fills at most max ops,
 * oldest first, and returns how many match (maybe more than max). An id
 * matches alone. */
size_t ops_lookup(const struct ops *o, const char *what, const struct op **ret, size_t max);
/* The op of vmid that is not terminal, if any. */
struct op *ops_active_for(const struct ops *o, uint32_t vmid);
/* A new op id of node, one past the highest number seen. */
void ops_next_id(const struct ops *o, const char *node, char *buf, size_t size);
/* The node an op id names ("" for an id of the old form "R-NNNNNN"), or
 * -EINVAL: not an op id. */
int op_id_node(const char *id, char *node, size_t size);
/* Ids from now on go past id's number (one named outside the journal). */
void ops_reserve_id(struct ops *o, const char *id);

/* What the first line of an archive's notes says of the reap that made it:
 * "proxreap ID: idle guest NAME (VMID[, TYPE[, storage S]]) archived
 * before removal[ by the proxreapd of node NODE]". -EINVAL: not one. */
struct archive_note {
        char id[OP_ID_MAX];
        char name[128];
        uint32_t vmid;
        bool typed; /* the type was given (older notes: by the volid) */
        enum guest_type type;
        char storage[64]; /* "" when not given */
        char node[64]; /* "" when not given */
};
int archive_note_parse(const char *notes, struct archive_note *ret);

/* An op of vmid whose records of its archive were lost (reaped, no volid):
 * an "adopted" record of that op id and vmid fills them in. */
bool op_adoptable(const struct op *op, uint32_t vmid);

const char *op_state_to_string(enum op_state s);
const char *op_step_to_string(enum op_step s);
bool op_state_terminal(enum op_state s);
/* Non-terminal reap states the daemon drives (RESTORING belongs to the CLI). */
bool op_needs_daemon(const struct op *op);

/* --- decisions (pure) --- */

enum op_action {
        ACT_NONE, /* terminal, or someone else's */
        ACT_ABANDON, /* selected before a restart: nothing was changed, close it */
        ACT_START_SHUTDOWN, /* re-check, then shut down */
        ACT_START_SNAPSHOT,
        ACT_START_ARCHIVE,
        ACT_VERIFY,
        ACT_START_DESTROY, /* re-check, then destroy */
        ACT_FINISH_REAP, /* destroy confirmed: write reaped */
        ACT_RESOLVE, /* an intent without answer: find the task or decide */
        ACT_FOLLOW_TASK, /* poll the task */
        ACT_COMPENSATE, /* aborting: start the guest again if we stopped it, tag, close */
};

/* What to do next for op. resumed: the op was found in the journal at
 * start, not begun by this process (a SELECTED op is then abandoned). A
 * restore (RESTORING) is resolved and followed like any step, by the one
 * process that drives it. */
enum op_action op_next_action(const struct op *op, bool snapshot_enabled, bool resumed);
const char *op_action_to_string(enum op_action a);

/* Task types a step may have started (for finding a lost answer). */
const char *const *op_step_task_types(enum op_step s, enum guest_type t);

/* --- summaries --- */

/* Over the whole journal: each count only grows while records are added. */
struct ops_totals {
        uint64_t reaps; /* reached "reaped" (restored later or not) */
        uint64_t aborts; /* failed and compensated */
        uint64_t vetoes; /* called off by a re-check before any change */
        uint64_t restores; /* restored */
        uint64_t in_progress; /* reaps the daemon still drives */
        uint64_t freed_mem, freed_disk; /* bytes: maxmem and maxdisk of every reap */
};
void ops_totals(const struct ops *o, struct ops_totals *ret);

/* The webhook fields of an op's reap, abort or restore event (see notify.h),
 * with a one-line "text". NULL on allocation failure. */
json_t *op_event_fields(const struct op *op, enum notify_event e);

/* --- records --- */

/* A new record {"op", "ev", "ts", "time", ...}. The caller adds fields. */
json_t *op_record(const char *id, const char *ev, int64_t ts);
json_t *op_record_step(const char *id, const char *ev, enum op_step step, int64_t ts);

#endif
