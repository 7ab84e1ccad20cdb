/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * saga: the one engine that drives reaps and restores. It owns the
 * journal (appending and folding it, ops.h), classifies a refusal once
 * (cluster.h), sends a step (intent first, then the call, then its
 * answer), resolves a lost answer, follows tasks, and compensates. Reap
 * and restore are both sequences of steps that op_next_action() chooses;
 * the daemon steps the reaps from its timer (saga_step()), the CLI drives
 * one restore in a loop on the same clock (saga_drive()).
 *
 * The engine asks Proxmox only through a struct cluster and reads time
 * only through a struct saga_clock, so the unit tests run both sagas
 * against an in-memory cluster with a fake clock.
 *
 * One writer: the daemon holds its journal for its whole life (a second
 * daemon refuses to start and names the pid that holds it); the CLI takes
 * the journal's lock around each decision and re-reads the op under it,
 * so two concurrent restores create one guest.
 */
#ifndef PROXREAP_SAGA_H
#define PROXREAP_SAGA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "config.h"
#include "guestconf.h"
#include "notify.h"
#include "ops.h"
#include "policy.h"

struct saga;

struct saga_clock {
        uint64_t (*monotonic_usec)(void *userdata);
        int64_t (*epoch)(void *userdata); /* UNIX s */
        void (*sleep_usec)(void *userdata, uint64_t usec); /* the CLI's waits */
        void *userdata;
};

/* What only the daemon's polls know (the CLI has none: all NULL). */
struct saga_view {
        /* A poll completed after since (monotonic). */
        bool (*poll_since)(void *userdata, uint64_t since);
        /* Where the latest poll shows the guest (NULL: not in the cluster,
         * or not of that type). */
        const char *(*node_of)(void *userdata, uint32_t vmid, enum guest_type t);
        /* The pool the latest poll shows it in (NULL: not seen). */
        const char *(*pool_of)(void *userdata, uint32_t vmid);
        void *userdata;
};

enum saga_role {
        SAGA_DAEMON, /* claims the journal for its life; drives the reaps */
        SAGA_CLI, /* drives the one restore it began */
};

int saga_open(const struct config *c, enum saga_role role, struct saga **ret, char *err,
              size_t errsz);
struct saga *saga_free(struct saga *s);
void saga_set_config(struct saga *s, const struct config *c);
void saga_set_notifier(struct saga *s, struct notifier *n); /* not owned */
void saga_set_view(struct saga *s, const struct saga_view *v);
void saga_set_clock(struct saga *s, const struct saga_clock *c);

const struct ops *saga_ops(const struct saga *s);
/* The write that failed (< 0): from then on the engine does nothing. */
int saga_journal_error(const struct saga *s);
/* Picks up records another process appended (a restore). */
void saga_refresh(struct saga *s);
/* Damaged journal lines seen (skipped; logged once): the daemon then
 * reaps nothing and steps no reap until 'proxreap journal repair'. */
unsigned saga_damaged(const struct saga *s);

/* --- reaps (the daemon) --- */

/* Where a re-check happens: what it may expect of the guest. */
enum check_point {
        AT_SELECT, /* running; its window decided it is idle */
        AT_SHUTDOWN, /* running and idle by its numbers of this moment */
        AT_STOPPED, /* verify and destroy: stopped by proxreap (the saga checks that) */
};

/* A guest as Proxmox shows it right now, judged by policy_recheck(). */
struct saga_live {
        struct guest_reading read; /* its configuration */
        struct pve_guest_status st;
        struct verdict v;
};
int saga_judge_live(const struct saga *s, const struct cluster *api, enum guest_type t,
                    const char *node, uint32_t vmid, const char *pool, enum check_point at,
                    struct saga_live *ret);
void saga_live_done(struct saga_live *l);

/* The id of the next reap: past every id in the journal and, the first
 * time, in the notes of the archives on the archive storage. < 0 (why):
 * those cannot be listed now. */
int saga_next_id(struct saga *s, const struct cluster *api, char *buf, size_t size, char *why,
                 size_t whysize);
/* Journals a reap's "selected" record (taken); its first step is due now. */
int saga_begin_reap(struct saga *s, json_t *selected, uint64_t now);
/* Runs every reap step that is due: returns when the next one is
 * (UINT64_MAX: none). */
uint64_t saga_step(struct saga *s, const struct cluster *api, uint64_t now);

/* --- restores (the CLI) --- */

struct restore_target {
        uint32_t vmid;
        const char *node;
        const char *storage; /* NULL: where its disks were */
        const char *pool; /* NULL: its own pool; "": none */
};

enum restore_outcome {
        RESTORE_STARTED, /* journaled and sent: drive it */
        RESTORE_DONE_ALREADY, /* the op was restored before */
        RESTORE_BUSY, /* another live process restores it right now (pid in why) */
        RESTORE_RESUME, /* an earlier restore was interrupted: drive it on */
        RESTORE_NOT_REAPED, /* there is nothing to restore (why says why) */
        RESTORE_REFUSED, /* Proxmox refused the create call (its words in why); journaled */
};

/* Under the journal's lock, re-reads op id and, if it is reaped, journals
 * the restore's intent; then sends it. < 0: the journal failed. */
int saga_begin_restore(struct saga *s, const struct cluster *api, const char *id,
                       const struct restore_target *t, enum restore_outcome *ret, char *why,
                       size_t size);
/* Drives op id's restore (or abort) until it is restored or aborted (0),
 * or failed (1, why);
 * progress (may be NULL) is called while it waits, and returning false
 * stops waiting (1: the restore stays under way, to be resumed). A task
 * that runs is followed however long it runs; Proxmox not answering gives
 * up after a few minutes. */
int saga_drive(struct saga *s, const struct cluster *api, const char *id,
               bool (*progress)(void *userdata, uint64_t elapsed_usec), void *userdata,
               char *why, size_t size);
/* Journals a reap this journal does not hold, found by its archive's
 * notes ("adopted" record, taken): it is then reaped here, for restore.
 * Also fills in a reap of that id and vmid whose archive records were
 * lost with damage. 1: the journal holds it already, with that archive;
 * -EEXIST: the journal's op of that id is another guest or archive (said
 * in why): nothing is written. */
int saga_adopt(struct saga *s, json_t *adopted, char *why, size_t size);

/* --- abort (the CLI) --- */

enum abort_outcome {
        ABORT_DONE, /* nothing had been sent: closed */
        ABORT_STARTED, /* journaled: the guest is put back (drive it, or the daemon does) */
        ABORT_TOO_LATE, /* the destroy was sent, or it is reaped: restore instead (why) */
        ABORT_NOT_A_REAP, /* nothing to abort (why) */
};

/* Under the journal's lock, calls off reap id before its destroy: it is
 * then put back like a reap that failed (the guest started again if
 * proxreap stopped it, its tags removed); a task of it still running is
 * stopped. < 0: the journal failed. */
int saga_abort(struct saga *s, const struct cluster *api, const char *id,
               enum abort_outcome *ret, char *why, size_t size);

/* Runs one task that needs no journal (a start after a restore) to its
 * end: 0 when it succeeded, else 1 and why. */
int saga_run_task(struct saga *s, const struct cluster *api, const struct task_request *q,
                  char *why, size_t size);

#endif
