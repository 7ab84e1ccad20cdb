/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * proxreap journal list|show|verify and proxreap restore: the operator's
 * view of the journal and the way back for every reaped guest.
 */
#include "proxreap_ops.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guestconf.h"
#include "journal.h"
#include "notify.h"
#include "ops.h"
#include "pve_api.h"
#include "util.h"

#define TAG_RESTORED "proxreap-restored"

static void format_time(int64_t ts, char *buf, size_t size)
{
        time_t t = (time_t)ts;
        struct tm tm;

        if (ts <= 0) {
                snprintf(buf, size, "-");
                return;
        }
        gmtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static int open_journal(const struct config *c, enum journal_mode mode, struct ops *ops,
                        struct journal **ret)
{
        char err[1024] = "";
        int r;

        ops_init(ops);
        r = journal_open(c->journal_file, mode, ops_apply, ops, ret, NULL, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(err[0] ? err : strerror(-r)));
                ops_clear(ops); /* what was read before the failure */
        }
        return r;
}

static json_t *op_json(const struct op *op)
{
        char when[32];

        format_time(op->began, when, sizeof(when));
        return json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:I, s:s}",
                         "id", op->id, "vmid", (json_int_t)op->vmid, "name", op->name, "node",
                         op->node, "type", guest_type_to_string(op->type), "state",
                         op_state_to_string(op->state), "volid", op->volid, "archive_size",
                         (json_int_t)op->archive_size, "freed_mem", (json_int_t)op->maxmem,
                         "freed_disk", (json_int_t)op->maxdisk, "when", when, "reason",
                         op->reason, "restored_vmid", (json_int_t)op->restore_vmid,
                         "restored_node", op->restore_node);
}

static int journal_list(const struct config *c, bool json)
{
        struct journal *j = NULL;
        struct ops ops;
        int r = open_journal(c, JOURNAL_READ, &ops, &j);

        if (r < 0)
                return 1;
        if (json) {
                json_t *a = json_array();

                for (size_t i = 0; i < ops.n; i++)
                        json_array_append_new(a, op_json(&ops.v[i]));
                json_dumpf(a, stdout, JSON_INDENT(2));
                putchar('\n');
                json_decref(a);
        } else {
                printf("%-9s %-9s %-16s %-10s %-4s %-9s %-52s %10s %8s %8s  %s\n", "ID", "VMID",
                       "NAME", "NODE", "TYPE", "STATE", "VOLID", "SIZE", "MEM", "DISK",
                       "WHEN (UTC)");
                for (size_t i = 0; i < ops.n; i++) {
                        const struct op *op = &ops.v[i];
                        char when[32];

                        format_time(op->began, when, sizeof(when));
                        printf("%-9s %-9u %-16.16s %-10.10s %-4s %-9s %-52s %9.1fM %7" PRIu64
                               "M %7" PRIu64 "G  %s\n",
                               op->id, (unsigned)op->vmid, op->name[0] ? text_shown(op->name) : "-",
                               op->node, op->type == GUEST_LXC ? "lxc" : "qemu",
                               op_state_to_string(op->state),
                               op->volid[0] ? text_shown(op->volid) : "-",
                               (double)op->archive_size / 1048576.0, op->maxmem >> 20,
                               op->maxdisk >> 30, when);
                }
                if (ops.n == 0)
                        printf("(no reaps yet)\n");
        }
        journal_close(j);
        ops_clear(&ops);
        return 0;
}

struct show_ctx {
        const char *id;
        json_t *records;
};

static int collect(void *userdata, uint64_t seq, unsigned line, json_t *payload)
{
        struct show_ctx *s = userdata;
        const char *op = json_string_value(json_object_get(payload, "op"));
        json_t *copy;

        (void)line;
        if (!op || strcmp(op, s->id) != 0)
                return 0;
        copy = json_deep_copy(payload);
        json_object_set_new(copy, "seq", json_integer((json_int_t)seq));
        return json_array_append_new(s->records, copy) < 0 ? -ENOMEM : 0;
}

static int journal_show(const struct config *c, const char *id, bool json)
{
        struct show_ctx s = { .id = id, .records = json_array() };
        struct journal *j = NULL;
        char err[1024] = "";
        size_t i;
        json_t *rec;
        int r;

        r = journal_open(c->journal_file, JOURNAL_READ, collect, &s, &j, NULL, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(err[0] ? err : strerror(-r)));
                json_decref(s.records);
                return 1;
        }
        journal_close(j);
        if (json_array_size(s.records) == 0) {
                fprintf(stderr, "proxreap: no op '%s' in the journal (see 'proxreap journal list')\n",
                        text_shown(id));
                json_decref(s.records);
                return 1;
        }
        if (json) {
                json_dumpf(s.records, stdout, JSON_INDENT(2));
                putchar('\n');
        } else
                json_array_foreach(s.records, i, rec) {
                        /* ASCII: every string from outside escaped. */
                        char *line = json_dumps(rec, JSON_COMPACT | JSON_ENSURE_ASCII);

                        printf("%s\n", line ? line : "?");
                        free(line);
                }
        json_decref(s.records);
        return 0;
}

static int journal_verify(const struct config *c)
{
        struct journal_scan scan = { 0 };
        struct journal *j = NULL;
        char err[1024] = "";
        struct ops ops;
        int r;

        ops_init(&ops);
        r = journal_open(c->journal_file, JOURNAL_READ, ops_apply, &ops, &j, &scan, err,
                         sizeof(err));
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(err[0] ? err : strerror(-r)));
                ops_clear(&ops);
                return 1;
        }
        journal_close(j);
        if (scan.missing) {
                printf("no journal at '%s': proxreapd has reaped nothing yet, or reap.journal names another file\n",
                       c->journal_file);
                ops_clear(&ops);
                return 0;
        }
        if (scan.torn) {
                fprintf(stderr,
                        "proxreap: %s:%u: the last record is torn (%" PRIu64
                        " bytes after the last valid record, a write cut short); proxreapd cuts it off at its next start, keeping a copy\n",
                        c->journal_file, scan.torn_line, scan.total_bytes - scan.valid_bytes);
                ops_clear(&ops);
                return 1;
        }
        if (ops.bad_records) {
                fprintf(stderr, "proxreap: %s: %u record(s) not understood, first: %s\n",
                        c->journal_file, ops.bad_records, text_shown(ops.first_bad));
                ops_clear(&ops);
                return 1;
        }
        printf("journal '%s' OK: %" PRIu64 " records, %zu ops\n", c->journal_file, scan.records,
               ops.n);
        ops_clear(&ops);
        return 0;
}

int cmd_journal(const struct config *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                {},
        };
        bool json = false;
        const char *sub;
        int o;

        if (argc < 2) {
                fprintf(stderr, "proxreap: journal needs list, show ID or verify\n");
                return 2;
        }
        sub = argv[1];
        argc--;
        argv++;
        optind = 0; /* a full restart of getopt (it permutes) */
        while ((o = getopt_long(argc, argv, "j", opts, NULL)) >= 0)
                if (o == 'j')
                        json = true;
                else
                        return 2;
        if (strcmp(sub, "list") == 0 && optind == argc)
                return journal_list(c, json);
        if (strcmp(sub, "show") == 0 && optind == argc - 1)
                return journal_show(c, argv[optind], json);
        if (strcmp(sub, "verify") == 0 && optind == argc && !json)
                return journal_verify(c);
        fprintf(stderr, "proxreap: usage: proxreap journal list [--json] | show ID [--json] | verify\n");
        return 2;
}

/* --- restore --- */

struct restore_args {
        const char *id;
        uint32_t vmid;
        const char *node;
        const char *storage;
        const char *pool; /* NULL: the pool it was reaped from; "": none */
        bool start, yes;
        struct notifier *notifier; /* notify.webhook_url, or NULL */
};

static int append_rec(struct journal *j, struct ops *ops, json_t *rec, const char *crash)
{
        char err[512] = "";
        uint64_t seq;
        int r;

        if (!rec)
                return -ENOMEM;
        r = journal_append(j, rec, ops_apply, ops, &seq, err, sizeof(err));
        if (r >= 0)
                (void)ops_apply(ops, seq, 0, rec);
        else
                fprintf(stderr, "proxreap: journal: %s\n", err[0] ? err : strerror(-r));
        json_decref(rec);
        if (r >= 0)
                crash_point(crash);
        return r;
}

static int record_restore_task(struct journal *j, struct ops *ops, const char *id,
                               const char *upid)
{
        json_t *rec = op_record_step(id, "task", STEP_RESTORE, now_epoch());

        if (rec)
                json_object_set_new(rec, "upid", json_string(upid));
        return append_rec(j, ops, rec, "restore-task");
}

/* Polls a task until it ends, showing progress on a terminal. */
static int wait_task(struct pve *p, const char *upid, struct pve_task_status *ret)
{
        bool tty = isatty(STDERR_FILENO);
        uint64_t start = now_monotonic_usec(), pause = 250 * USEC_PER_MSEC;
        int r, failures = 0;

        for (;;) {
                r = pve_task_status(p, upid, ret);
                if (r < 0 && ++failures > 10)
                        return r;
                if (r >= 0 && !ret->running)
                        break;
                if (tty)
                        fprintf(stderr, "\rrestoring: %" PRIu64 "s", (now_monotonic_usec() - start) / USEC_PER_SEC);
                usleep((useconds_t)pause);
                if (pause < 2 * USEC_PER_SEC)
                        pause *= 2;
        }
        if (tty)
                fprintf(stderr, "\n");
        return 0;
}

static bool confirm(const struct op *op, uint32_t vmid, const char *node, const char *storage)
{
        char answer[16];

        fprintf(stderr,
                "Restore %s: guest %u ('%s', %s) from '%s' as vmid %u on '%s'%s%s? [y/N] ", op->id,
                (unsigned)op->vmid, text_shown(op->name), op->type == GUEST_LXC ? "lxc" : "qemu",
                text_shown(op->volid), (unsigned)vmid, node, storage ? " to storage " : "",
                storage ? text_shown(storage) : "");
        if (!fgets(answer, sizeof(answer), stdin))
                return false;
        return answer[0] == 'y' || answer[0] == 'Y';
}

static int restore_fail(struct journal *j, struct ops *ops, const char *id, const char *why)
{
        json_t *rec = op_record_step(id, "failed", STEP_RESTORE, now_epoch());

        if (rec)
                json_object_set_new(rec, "reason", json_string(why));
        fprintf(stderr, "proxreap: restore of %s failed: %s\n", id, text_shown(why));
        (void)append_rec(j, ops, rec, "restore-failed");
        return 1;
}

static int restore_finish(struct pve *p, struct journal *j, struct ops *ops, const char *id,
                          const struct restore_args *a)
{
        struct op *op = ops_find(ops, id);
        struct pve_guest_config cfg;
        struct pve_task_status ts;
        char tags[2200], upid[PVE_UPID_MAX];
        uint32_t vmid = op->restore_vmid;
        char node[64];
        json_t *rec;
        int r;

        snprintf(node, sizeof(node), "%s", op->restore_node);
        /* Mark it so the daemon (and people) see where it came from. */
        r = pve_guest_config(p, op->type, node, vmid, &cfg);
        if (r >= 0 && tags_with(cfg.tags, TAG_RESTORED, tags, sizeof(tags)) >= 0) {
                char clean[2200], tmp[2200];

                if (tags_without(tags, "proxreap-idle", tmp, sizeof(tmp)) >= 0 &&
                    tags_without(tmp, "proxreap-failed", clean, sizeof(clean)) >= 0)
                        r = pve_set_tags(p, op->type, node, vmid, clean, cfg.digest);
        }
        if (r < 0)
                fprintf(stderr, "proxreap: warning: cannot tag guest %u '%s': %s\n",
                        (unsigned)vmid, TAG_RESTORED, text_shown(pve_error(p)));
        rec = op_record_step(id, "done", STEP_RESTORE, now_epoch());
        if (rec) {
                json_object_set_new(rec, "vmid", json_integer(vmid));
                json_object_set_new(rec, "node", json_string(node));
        }
        r = append_rec(j, ops, rec, "restore-done");
        if (r < 0)
                return 1;
        printf("%s restored as guest %u on '%s'\n", id, (unsigned)vmid, node);
        notifier_send(a->notifier, NOTIFY_RESTORE, op_event_fields(ops_find(ops, id), NOTIFY_RESTORE));
        if (a->start) {
                r = pve_guest_task(p, "POST", ops_find(ops, id)->type, node, vmid,
                                   "/status/start", NULL, upid);
                if (r >= 0)
                        r = wait_task(p, upid, &ts);
                if (r < 0 || !pve_task_succeeded(ts.exitstatus)) {
                        fprintf(stderr, "proxreap: restored, but starting guest %u failed: %s\n",
                                (unsigned)vmid, text_shown(r < 0 ? pve_error(p) : ts.exitstatus));
                        return 1;
                }
                printf("guest %u started\n", (unsigned)vmid);
        }
        return 0;
}

/* Follows a restore task to its end. */
static int restore_follow(struct pve *p, struct journal *j, struct ops *ops, const char *id,
                          const char *upid, const struct restore_args *a)
{
        struct pve_task_status ts;
        int r = wait_task(p, upid, &ts);

        if (r < 0)
                return restore_fail(j, ops, id, pve_error(p));
        if (!pve_task_succeeded(ts.exitstatus))
                return restore_fail(j, ops, id, ts.exitstatus);
        return restore_finish(p, j, ops, id, a);
}

/* A restore whose answer was never journaled (crash, lost reply): find its
 * task, never create a second guest. */
static int restore_resume(struct pve *p, struct journal *j, struct ops *ops, const char *id,
                          const struct restore_args *a)
{
        struct op *op = ops_find(ops, id);
        char upid[PVE_UPID_MAX];
        struct pve_guest_status st;
        uint64_t since = op->intent_ts > 300 ? (uint64_t)op->intent_ts - 300 : 0;
        int r;

        if (op->phase == PHASE_TASK)
                return restore_follow(p, j, ops, id, op->upid, a);
        r = pve_find_task(p, op->restore_node, op->restore_vmid,
                          op_step_task_types(STEP_RESTORE, op->type), since, NULL, NULL, upid);
        if (r >= 0) {
                printf("%s: continuing the restore task already started (%s)\n", id,
                       text_shown(upid));
                r = record_restore_task(j, ops, id, upid);
                return r < 0 ? 1 : restore_follow(p, j, ops, id, upid, a);
        }
        if (r != -ENOENT) {
                fprintf(stderr, "proxreap: %s\n", text_shown(pve_error(p)));
                return 1;
        }
        r = pve_guest_status(p, op->type, op->restore_node, op->restore_vmid, &st);
        if (r >= 0)
                return restore_fail(j, ops, id,
                                    "an earlier restore attempt has no task, but the target vmid exists now: check it by hand");
        return restore_fail(j, ops, id, "the earlier restore call never reached the server; nothing was created, run restore again");
}

static int pick_vmid(struct pve *p, const struct op *op, const struct restore_args *a,
                     uint32_t *ret)
{
        uint32_t want = a->vmid ? a->vmid : op->vmid, next = 0;
        int r = pve_next_id(p, want, ret);

        if (r != -EEXIST) {
                if (r < 0)
                        fprintf(stderr, "proxreap: %s\n", text_shown(pve_error(p)));
                return r;
        }
        if (a->vmid) {
                fprintf(stderr, "proxreap: vmid %u is taken; pick another --vmid\n",
                        (unsigned)want);
                return r;
        }
        if (pve_next_id(p, 0, &next) >= 0)
                fprintf(stderr,
                        "proxreap: the original vmid %u is taken now; restore with --vmid N (the next free one is %u)\n",
                        (unsigned)want, (unsigned)next);
        else
                fprintf(stderr, "proxreap: the original vmid %u is taken now; restore with --vmid N\n",
                        (unsigned)want);
        return r;
}

/* The storage of the rootfs in the archived configuration, "" if none. */
static void rootfs_storage(const struct op *op, char *buf, size_t size)
{
        struct guest_conf c;
        const char *rootfs;
        char err[256];

        buf[0] = '\0';
        if (!op->archive_config ||
            guestconf_from_text(GUEST_LXC, op->archive_config, &c, err, sizeof(err)) < 0)
                return;
        rootfs = guestconf_field(&c, "rootfs");
        pve_volume_storage(rootfs, buf, size);
        guestconf_done(&c);
}

static int restore_start(struct pve *p, struct journal *j, struct ops *ops, const char *id,
                         const struct restore_args *a)
{
        struct op *op = ops_find(ops, id);
        char storage_id[64], upid[PVE_UPID_MAX], node[64], lxc_storage[64] = "";
        const char *storage = a->storage;
        struct pve_backup b;
        struct pve_form f = { 0 };
        uint32_t vmid;
        json_t *rec;
        int r;

        /* Where the archive was verified, unless told: a node that reads
         * it (the guest's own node may have changed since, see 'moved'). */
        snprintf(node, sizeof(node), "%s",
                 a->node ? a->node : op->archive_node[0] ? op->archive_node : op->node);
        /* The archive must still be there. */
        snprintf(storage_id, sizeof(storage_id), "%.*s", (int)strcspn(op->volid, ":"), op->volid);
        r = pve_find_backup(p, node, storage_id,
                            &(struct pve_backup_query){ .vmid = op->vmid, .marker = id }, &b);
        if (r == -ENOENT || (r >= 0 && strcmp(b.volid, op->volid) != 0)) {
                fprintf(stderr, "proxreap: the archive '%s' of %s is gone from storage '%s'; cannot restore\n",
                        text_shown(op->volid), id, text_shown(storage_id));
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(pve_error(p)));
                return 1;
        }
        if (pick_vmid(p, op, a, &vmid) < 0)
                return 1;
        if (op->type == GUEST_LXC && !storage) {
                /* Without a storage Proxmox restores a container to
                 * 'local': take the one its root fs was on. */
                rootfs_storage(op, lxc_storage, sizeof(lxc_storage));
                if (!lxc_storage[0]) {
                        fprintf(stderr, "proxreap: %s is a container: give --storage S for its root file system\n",
                                id);
                        return 1;
                }
                storage = lxc_storage;
        }
        if (!a->yes) {
                if (!isatty(STDIN_FILENO)) {
                        fprintf(stderr, "proxreap: not asking on a non-terminal: add --yes to restore\n");
                        return 2;
                }
                if (!confirm(op, vmid, node, storage)) {
                        fprintf(stderr, "proxreap: not restored\n");
                        return 1;
                }
        }
        rec = op_record_step(id, "intent", STEP_RESTORE, now_epoch());
        if (rec) {
                json_object_set_new(rec, "vmid", json_integer(vmid));
                json_object_set_new(rec, "node", json_string(node));
                json_object_set_new(rec, "storage", json_string(storage ? storage : ""));
        }
        if (append_rec(j, ops, rec, "restore-intent") < 0)
                return 1;
        op = ops_find(ops, id);
        pve_form_addf(&f, "vmid", "%" PRIu32, vmid);
        if (op->type == GUEST_LXC) {
                pve_form_add(&f, "ostemplate", op->volid);
                pve_form_add(&f, "restore", "1");
        } else
                pve_form_add(&f, "archive", op->volid);
        if (storage)
                pve_form_add(&f, "storage", storage);
        /* Back into its pool: where it was, and what a token whose ACL is
         * on the pool needs (VM.Allocate is checked on the pool given). */
        if (a->pool ? a->pool[0] != '\0' : op->pool[0] != '\0')
                pve_form_add(&f, "pool", a->pool ? a->pool : op->pool);
        /* Safe to send: the journal holds this intent, the vmid was free a
         * moment ago (Proxmox refuses a taken one) and no earlier restore
         * of this op is on record. */
        r = pve_create_guest(p, op->type, node, &f, upid);
        pve_form_clear(&f);
        crash_point("restore-sent");
        if (r < 0 && (r == -EACCES || r == -EREMOTEIO || r == -ENOMSG))
                return restore_fail(j, ops, id, pve_error(p));
        if (r < 0)
                return restore_resume(p, j, ops, id, a);
        printf("%s: restoring guest %u from '%s' as %u on '%s' (task %s)\n", id,
               (unsigned)op->vmid, text_shown(op->volid), (unsigned)vmid, node, text_shown(upid));
        r = record_restore_task(j, ops, id, upid);
        return r < 0 ? 1 : restore_follow(p, j, ops, id, upid, a);
}

static int parse_restore(int argc, char **argv, struct restore_args *a)
{
        static const struct option opts[] = {
                { "vmid", required_argument, NULL, 'v' },
                { "node", required_argument, NULL, 'n' },
                { "storage", required_argument, NULL, 's' },
                { "pool", required_argument, NULL, 'p' },
                { "start", no_argument, NULL, 'S' },
                { "yes", no_argument, NULL, 'y' },
                {},
        };
        uint64_t v;
        int o;

        optind = 0; /* a full restart of getopt (it permutes) */
        while ((o = getopt_long(argc, argv, "v:n:s:p:Sy", opts, NULL)) >= 0)
                switch (o) {
                case 'v':
                        if (parse_u64(optarg, 100, 999999999, &v) < 0) {
                                fprintf(stderr, "proxreap: --vmid '%s' is not a vmid (100-999999999)\n",
                                        optarg);
                                return -EINVAL;
                        }
                        a->vmid = (uint32_t)v;
                        break;
                case 'n':
                        if (!node_name_valid(optarg)) {
                                fprintf(stderr, "proxreap: --node '%s' is not a node name\n", optarg);
                                return -EINVAL;
                        }
                        a->node = optarg;
                        break;
                case 's':
                        a->storage = optarg;
                        break;
                case 'p':
                        a->pool = optarg;
                        break;
                case 'S':
                        a->start = true;
                        break;
                case 'y':
                        a->yes = true;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind != argc - 1) {
                fprintf(stderr, "proxreap: usage: proxreap restore ID [--vmid N] [--node NODE] [--storage S] [--pool P] [--start] [--yes]\n");
                return -EINVAL;
        }
        a->id = argv[optind];
        return 0;
}

int cmd_restore(const struct config *c, struct pve *p, int argc, char **argv)
{
        struct restore_args a = { 0 };
        struct journal *j = NULL;
        struct ops ops;
        struct op *op;
        int r;

        if (parse_restore(argc, argv, &a) < 0)
                return 2;
        /* Read first: a restore of an op that does not exist writes (and
         * creates) nothing. */
        if (open_journal(c, JOURNAL_READ, &ops, &j) < 0)
                return 1;
        op = ops_find(&ops, a.id);
        journal_close(j);
        j = NULL;
        ops_clear(&ops);
        if (!op) {
                fprintf(stderr, "proxreap: no op '%s' in the journal (see 'proxreap journal list')\n",
                        text_shown(a.id));
                return 1;
        }
        if (open_journal(c, JOURNAL_WRITE, &ops, &j) < 0)
                return 1;
        if (notifier_new(c, &a.notifier) < 0)
                fprintf(stderr, "proxreap: warning: cannot start the webhook sender, no event will be sent\n");
        op = ops_find(&ops, a.id);
        if (!op) {
                fprintf(stderr, "proxreap: no op '%s' in the journal (see 'proxreap journal list')\n",
                        text_shown(a.id));
                r = 1;
        } else if (op->state == OP_RESTORED) {
                char when[32];

                format_time(op->restored_ts, when, sizeof(when));
                printf("%s was already restored as guest %u on '%s' at %s; nothing to do\n",
                       op->id, (unsigned)op->restore_vmid, op->restore_node, when);
                r = 0;
        } else if (op->state == OP_RESTORING)
                r = restore_resume(p, j, &ops, a.id, &a);
        else if (op->state != OP_REAPED || !op->volid[0]) {
                fprintf(stderr, "proxreap: %s is '%s', not reaped: there is nothing to restore%s\n",
                        op->id, op_state_to_string(op->state),
                        op->state == OP_ABORTED ? " (the guest was never destroyed)" : "");
                r = 1;
        } else
                r = restore_start(p, j, &ops, a.id, &a);
        journal_close(j);
        ops_clear(&ops);
        /* One attempt's time at most: the restore itself is done. */
        notifier_free(a.notifier, c->notify_timeout_usec);
        return r;
}
