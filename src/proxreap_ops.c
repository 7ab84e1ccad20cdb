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
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "archives.h"
#include "guestconf.h"
#include "journal.h"
#include "notify.h"
#include "ops.h"
#include "pve_api.h"
#include "saga.h"
#include "util.h"

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

/* Damage never blocks what is intact: it is skipped, and said. */
static void warn_damage(const struct journal *j)
{
        const struct journal_damage *d = journal_damage(j);
        char lines[160];

        if (d->count == 0)
                return;
        journal_damage_lines(d, lines, sizeof(lines));
        fprintf(stderr,
                "proxreap: warning: journal '%s': %u damaged line(s) skipped (line %s; first: %s); "
                "every other record is read: 'proxreap journal repair' writes a clean journal\n",
                journal_path(j), d->count, lines, text_shown(d->first));
}

static int open_journal(const struct config *c, enum journal_mode mode, struct ops *ops,
                        struct journal **ret)
{
        char err[1024] = "";
        int r;

        ops_init(ops);
        r = journal_open(c->journal_file, mode | JOURNAL_SKIP_DAMAGE, ops_apply, ops, ret, NULL,
                         err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(err[0] ? err : strerror(-r)));
                ops_clear(ops); /* what was read before the failure */
        } else
                warn_damage(*ret);
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

/* journal list --vmid N --name NAME: the ops of one guest. */
struct list_filter {
        uint32_t vmid; /* 0: any */
        const char *name; /* NULL: any; compared in any case */
};

static bool listed(const struct list_filter *f, const struct op *op)
{
        return (!f->vmid || op->vmid == f->vmid) && (!f->name || strcasecmp(op->name, f->name) == 0);
}

/* Why the op is where it is: the evidence it was reaped on, or why it
 * ended otherwise. */
static const char *op_why(const struct op *op)
{
        if (op->state == OP_ABORTED || (op->reason[0] && op->state == OP_REAPED))
                return op->reason;
        return op->evidence ? op->evidence : "";
}

static int journal_list(const struct config *c, bool json, const struct list_filter *f)
{
        struct journal *j = NULL;
        struct ops ops;
        size_t shown = 0;
        int r = open_journal(c, JOURNAL_READ, &ops, &j);

        if (r < 0)
                return 1;
        if (json) {
                json_t *a = json_array();

                for (size_t i = 0; i < ops.n; i++)
                        if (listed(f, ops.v[i]))
                                json_array_append_new(a, op_json(ops.v[i]));
                json_dumpf(a, stdout, JSON_INDENT(2));
                putchar('\n');
                json_decref(a);
        } else {
                int w = 9; /* R-000001; ids that name their node are longer */

                for (size_t i = 0; i < ops.n; i++)
                        if ((int)strlen(ops.v[i]->id) > w)
                                w = (int)strlen(ops.v[i]->id);
                printf("%-*s %-9s %-16s %-10s %-4s %-9s %-52s %10s %8s %8s  %-20s  %s\n", w, "ID",
                       "VMID", "NAME", "NODE", "TYPE", "STATE", "VOLID", "SIZE", "MEM", "DISK",
                       "WHEN (UTC)", "WHY");
                for (size_t i = 0; i < ops.n; i++) {
                        const struct op *op = ops.v[i];
                        char when[32];

                        if (!listed(f, op))
                                continue;
                        shown++;
                        format_time(op->began, when, sizeof(when));
                        printf("%-*s %-9u %-16.16s %-10.10s %-4s %-9s %-52s %9.1fM %7" PRIu64
                               "M %7" PRIu64 "G  %-20s  %s\n",
                               w, op->id, (unsigned)op->vmid, op->name[0] ? text_shown(op->name) : "-",
                               op->node, op->type == GUEST_LXC ? "lxc" : "qemu",
                               op_state_to_string(op->state),
                               op->volid[0] ? text_shown(op->volid) : "-",
                               (double)op->archive_size / 1048576.0, op->maxmem >> 20,
                               op->maxdisk >> 30, when, text_shown(op_why(op)));
                }
                if (ops.n == 0)
                        printf("(no reaps yet)\n");
                else if (shown == 0)
                        printf("(no op of that guest)\n");
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
        if (!op || strcasecmp(op, s->id) != 0)
                return 0;
        copy = json_deep_copy(payload);
        json_object_set_new(copy, "seq", json_integer((json_int_t)seq));
        return json_array_append_new(s->records, copy) < 0 ? -ENOMEM : 0;
}

static const char *rec_str(const json_t *rec, const char *key)
{
        const char *v = json_string_value(json_object_get(rec, key));

        return v ? v : "";
}

/* What one record says, in words (its times aside). */
static void describe_record(const json_t *rec, int64_t *intent_ts, char *buf, size_t size)
{
        const char *ev = rec_str(rec, "ev"), *step = rec_str(rec, "step");
        int64_t ts = (int64_t)json_integer_value(json_object_get(rec, "ts"));

        buf[0] = '\0';
        if (strcmp(ev, "intent") == 0) {
                *intent_ts = ts;
                if (strcmp(step, "restore") == 0)
                        snprintf(buf, size, "as vmid %" JSON_INTEGER_FORMAT " on '%s'%s%s",
                                 json_integer_value(json_object_get(rec, "vmid")),
                                 rec_str(rec, "node"), *rec_str(rec, "storage") ? ", storage " : "",
                                 rec_str(rec, "storage"));
                else if (*rec_str(rec, "snapname"))
                        snprintf(buf, size, "snapshot '%s'", rec_str(rec, "snapname"));
                else if (*rec_str(rec, "storage"))
                        snprintf(buf, size, "to storage '%s'", rec_str(rec, "storage"));
        } else if (strcmp(ev, "task") == 0) {
                snprintf(buf, size, "task %s", rec_str(rec, "upid"));
        } else if (strcmp(ev, "done") == 0) {
                if (strcmp(step, "verify") == 0)
                        snprintf(buf, size, "archive '%s' (%.1f MiB) holds the guest",
                                 rec_str(rec, "volid"),
                                 (double)json_integer_value(json_object_get(rec, "size")) / 1048576.0);
                else if (strcmp(step, "restore") == 0)
                        snprintf(buf, size, "restored as guest %" JSON_INTEGER_FORMAT " on '%s'",
                                 json_integer_value(json_object_get(rec, "vmid")),
                                 rec_str(rec, "node"));
                else
                        snprintf(buf, size, "%s%s after %llds",
                                 *rec_str(rec, "skipped") ? "skipped: " : "",
                                 *rec_str(rec, "skipped") ? rec_str(rec, "skipped")
                                                          : rec_str(rec, "exitstatus"),
                                 (long long)(*intent_ts && ts >= *intent_ts ? ts - *intent_ts : 0));
        } else if (strcmp(ev, "reaped") == 0) {
                snprintf(buf, size, "freed %" JSON_INTEGER_FORMAT " MiB memory, %" JSON_INTEGER_FORMAT
                                    " GiB disk",
                         json_integer_value(json_object_get(rec, "freed_mem")) >> 20,
                         json_integer_value(json_object_get(rec, "freed_disk")) >> 30);
        } else if (strcmp(ev, "moved") == 0) {
                snprintf(buf, size, "the guest moved to '%s'", rec_str(rec, "node"));
        } else if (strcmp(ev, "resume") == 0) {
                snprintf(buf, size, "taken over by pid %" JSON_INTEGER_FORMAT,
                         json_integer_value(json_object_get(rec, "pid")));
        } else {
                snprintf(buf, size, "%s", rec_str(rec, "reason"));
        }
}

/* What to run next, for what the op is now. */
static void print_next(const struct op *op)
{
        if (op->state == OP_REAPED)
                printf("undo:      proxreap restore %s\n", op->id);
        else if (op->state == OP_RESTORED)
                printf("restored:  guest %u on '%s'\n", (unsigned)op->restore_vmid,
                       op->restore_node);
        else if (op_needs_daemon(op) && op->state != OP_DESTROY && op->state != OP_ABORTING)
                printf("call off:  proxreap abort %s\n", op->id);
        else if (op->state == OP_RESTORING)
                printf("follow:    proxreap restore %s\n", op->id);
}

/* journal show: the op's timeline, readable. */
static void print_timeline(json_t *records)
{
        int64_t intent_ts = 0;
        const struct op *op;
        struct ops ops;
        size_t i;
        json_t *rec;

        ops_init(&ops);
        json_array_foreach(records, i, rec)
                (void)ops_apply(&ops, (uint64_t)json_integer_value(json_object_get(rec, "seq")), 0,
                                rec);
        op = ops.n ? ops.v[0] : NULL;
        if (op)
                printf("%s: guest %u ('%s', %s on '%s'): %s\n", op->id, (unsigned)op->vmid,
                       text_shown(op->name), guest_type_to_string(op->type), op->node,
                       op_state_to_string(op->state));
        if (op && op->evidence)
                printf("evidence:  %s\n", text_shown(op->evidence));
        json_array_foreach(records, i, rec) {
                char when[32], what[900];

                format_time((int64_t)json_integer_value(json_object_get(rec, "ts")), when,
                            sizeof(when));
                describe_record(rec, &intent_ts, what, sizeof(what));
                printf("  %s  %-8s %-9s %s\n", when, rec_str(rec, "step"), rec_str(rec, "ev"),
                       text_shown(what));
        }
        if (op && op->volid[0])
                printf("archive:   %s\n", text_shown(op->volid));
        if (op)
                print_next(op);
        ops_clear(&ops);
}

static int journal_show(const struct config *c, const char *id, bool json)
{
        struct show_ctx s = { .id = id, .records = json_array() };
        struct journal *j = NULL;
        char err[1024] = "";
        int r;

        r = journal_open(c->journal_file, JOURNAL_READ | JOURNAL_SKIP_DAMAGE, collect, &s, &j,
                         NULL, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(err[0] ? err : strerror(-r)));
                json_decref(s.records);
                return 1;
        }
        warn_damage(j);
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
                print_timeline(s.records);
        json_decref(s.records);
        return 0;
}

/* Every damaged line verify found: 1 when there was one. */
static int report_damage(const struct journal *j, const struct journal_scan *scan)
{
        const struct journal_damage *d = journal_damage(j);
        char lines[160];

        if (d->count == 0)
                return 0;
        journal_damage_lines(d, lines, sizeof(lines));
        fprintf(stderr,
                "proxreap: %s\nproxreap: journal '%s': %u damaged line(s): line %s; the other %" PRIu64
                " records are intact and read by every command: 'proxreap journal repair' "
                "writes a clean journal of them, keeping the original\n",
                text_shown(d->first), journal_path(j), d->count, lines, scan->records);
        return 1;
}

static int journal_verify(const struct config *c)
{
        struct journal_scan scan = { 0 };
        struct journal *j = NULL;
        char err[1024] = "";
        struct ops ops;
        int r;

        ops_init(&ops);
        r = journal_open(c->journal_file, JOURNAL_READ | JOURNAL_SKIP_DAMAGE, ops_apply, &ops, &j,
                         &scan, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(err[0] ? err : strerror(-r)));
                ops_clear(&ops);
                return 1;
        }
        r = report_damage(j, &scan);
        journal_close(j);
        if (r) {
                ops_clear(&ops);
                return 1;
        }
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

/* A record the fold cannot place (its op's first record was damaged, or
 * a record before it is missing) is left out with the damage. */
static bool fold_keeps(void *userdata, json_t *payload)
{
        struct ops *ops = userdata;
        unsigned before = ops->bad_records;

        (void)ops_apply(ops, 0, 0, payload);
        return ops->bad_records == before;
}

static int journal_repair_cmd(const struct config *c)
{
        struct journal_repair rep;
        char err[1024] = "";
        struct ops ops;
        int r;

        ops_init(&ops);
        r = journal_repair(c->journal_file, fold_keeps, &ops, &rep, err, sizeof(err));
        ops_clear(&ops);

        if (r == -EBUSY) {
                fprintf(stderr, "proxreap: %s\nproxreap: stop proxreapd first ('systemctl stop proxreapd'), then repair\n",
                        text_shown(err));
                return 1;
        }
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(err[0] ? err : strerror(-r)));
                return 1;
        }
        if (!rep.copy[0]) {
                printf("journal '%s' has no damage: nothing to repair (%zu records)\n",
                       c->journal_file, rep.kept);
                return 0;
        }
        printf("journal '%s' repaired: %zu intact record(s) kept, %u damaged line(s)%s left out",
               c->journal_file, rep.kept, rep.damaged, rep.torn ? " and a torn end" : "");
        if (rep.dropped)
                printf(", and %u record(s) of ops whose earlier records were lost", rep.dropped);
        printf("; the original is kept as '%s'\n", rep.copy);
        return 0;
}

int cmd_journal(const struct config *c, int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                { "vmid", required_argument, NULL, 'v' },
                { "name", required_argument, NULL, 'n' },
                {},
        };
        struct list_filter f = { 0 };
        bool json = false, filtered = false;
        const char *sub;
        uint64_t v;
        int o;

        if (argc < 2) {
                fprintf(stderr, "proxreap: journal needs list, show ID, verify or repair\n");
                return 2;
        }
        sub = argv[1];
        argc--;
        argv++;
        optind = 0; /* a full restart of getopt (it permutes) */
        while ((o = getopt_long(argc, argv, "j", opts, NULL)) >= 0) {
                if (o == 'j')
                        json = true;
                else if (o == 'v' && parse_u64(optarg, 100, 999999999, &v) == 0)
                        f.vmid = (uint32_t)v;
                else if (o == 'n')
                        f.name = optarg;
                else {
                        if (o == 'v')
                                fprintf(stderr, "proxreap: --vmid '%s' is not a vmid (100-999999999)\n",
                                        text_shown(optarg));
                        return 2;
                }
                filtered = filtered || o != 'j';
        }
        if (strcmp(sub, "list") == 0 && optind == argc)
                return journal_list(c, json, &f);
        if (filtered)
                sub = "";
        if (strcmp(sub, "show") == 0 && optind == argc - 1)
                return journal_show(c, argv[optind], json);
        if (strcmp(sub, "verify") == 0 && optind == argc && !json)
                return journal_verify(c);
        if (strcmp(sub, "repair") == 0 && optind == argc && !json)
                return journal_repair_cmd(c);
        fprintf(stderr, "proxreap: usage: proxreap journal list [--vmid N] [--name NAME] [--json] | show ID [--json] | verify | repair\n");
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
};

static bool confirm(const struct op *op, const struct restore_target *t)
{
        char answer[16];

        fprintf(stderr,
                "Restore %s: guest %u ('%s', %s) from '%s' as vmid %u on '%s'%s%s? [y/N] ", op->id,
                (unsigned)op->vmid, text_shown(op->name), op->type == GUEST_LXC ? "lxc" : "qemu",
                text_shown(op->volid), (unsigned)t->vmid, t->node,
                t->storage ? " to storage " : "", t->storage ? text_shown(t->storage) : "");
        if (!fgets(answer, sizeof(answer), stdin))
                return false;
        return answer[0] == 'y' || answer[0] == 'Y';
}

/* userdata: what is being waited for ("restoring"). */
static bool progress(void *userdata, uint64_t elapsed_usec)
{
        if (isatty(STDERR_FILENO))
                fprintf(stderr, "\r%s: %" PRIu64 "s", (const char *)userdata,
                        elapsed_usec / USEC_PER_SEC);
        return true;
}

/* What restores op where: the pick of a free vmid, and a container's
 * storage. */
struct restore_plan {
        struct restore_target t;
        char node[64], lxc_storage[64];
};

/* Another reaped guest's own vmid: kept for its restore. */
static bool held_for_another(const struct ops *ops, const struct op *op, uint32_t vmid)
{
        for (size_t i = 0; i < ops->n; i++)
                if (ops->v[i] != op && ops->v[i]->vmid == vmid &&
                    (ops->v[i]->state == OP_REAPED || ops->v[i]->state == OP_RESTORING))
                        return true;
        return false;
}

/* A free vmid to propose: the cluster's next free one, past the ones
 * other reaped guests would want back. 0: none found. */
static uint32_t vmid_to_propose(const struct cluster *api, const struct ops *ops,
                                const struct op *op)
{
        uint32_t v = 0, got;

        if (api->ops->next_id(api->impl, 0, &v) < 0)
                return 0;
        for (unsigned tries = 0; tries < 1000 && v < 999999999; tries++, v++)
                if (!held_for_another(ops, op, v) && api->ops->next_id(api->impl, v, &got) == 0)
                        return v;
        return 0;
}

static int pick_vmid(const struct cluster *api, const struct ops *ops, const struct op *op,
                     const struct restore_args *a, uint32_t *ret)
{
        uint32_t want = a->vmid ? a->vmid : op->vmid, next = 0;
        int r = api->ops->next_id(api->impl, want, ret);

        if (r != -EEXIST) {
                if (r < 0)
                        fprintf(stderr, "proxreap: %s\n", text_shown(api_error(api)));
                return r;
        }
        if (a->vmid) {
                fprintf(stderr, "proxreap: vmid %u is taken; pick another --vmid\n",
                        (unsigned)want);
                return r;
        }
        next = vmid_to_propose(api, ops, op);
        if (next)
                fprintf(stderr,
                        "proxreap: the original vmid %u is taken now; restore with --vmid N (%u is free, and no other reaped guest had it)\n",
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

/* The archive is still there, under its marker. */
static int archive_present(const struct cluster *api, const struct op *op, const char *node,
                           bool node_given)
{
        const char *name = strstr(op->volid, ":backup/");
        char storage[64];
        struct pve_backup b;
        int r;

        /* That very volume: a newer backup of the vmid whose notes name
         * the op too is another archive. */
        snprintf(storage, sizeof(storage), "%.*s", (int)strcspn(op->volid, ":"), op->volid);
        r = api->ops->find_backup(api->impl, node, storage,
                                  &(struct pve_backup_query){
                                          .vmid = op->vmid,
                                          .name = name ? name + strlen(":backup/") : op->volid,
                                  },
                                  &b);
        if (r == -ENOENT && node_given && strcmp(node, op->archive_node[0] ? op->archive_node : op->node) != 0) {
                fprintf(stderr,
                        "proxreap: storage '%s' as node '%s' sees it holds no '%s' (a storage of one node only?): restore on '%s', where it was written, or leave out --node\n",
                        text_shown(storage), node, text_shown(op->volid),
                        op->archive_node[0] ? op->archive_node : op->node);
                return -ENOENT;
        }
        if (r == -ENOENT || (r >= 0 && strcmp(b.volid, op->volid) != 0)) {
                fprintf(stderr, "proxreap: the archive '%s' of %s is gone from storage '%s'; cannot restore\n",
                        text_shown(op->volid), op->id, text_shown(storage));
                return -ENOENT;
        }
        if (r < 0)
                fprintf(stderr, "proxreap: %s\n", text_shown(api_error(api)));
        return r < 0 ? r : 0;
}

/* Where, as what and with which storage op comes back; asks unless
 * --yes. 0, or the exit status. */
static int plan_restore(const struct cluster *api, const struct ops *ops, const struct op *op,
                        const struct restore_args *a, struct restore_plan *ret)
{
        /* Where the archive was verified, unless told: a node that reads
         * it (the guest's own node may have changed since, see 'moved'). */
        snprintf(ret->node, sizeof(ret->node), "%s",
                 a->node ? a->node : op->archive_node[0] ? op->archive_node : op->node);
        ret->t = (struct restore_target){ .node = ret->node, .storage = a->storage, .pool = a->pool };
        if (archive_present(api, op, ret->node, a->node != NULL) < 0 ||
            pick_vmid(api, ops, op, a, &ret->t.vmid) < 0)
                return 1;
        if (op->type == GUEST_LXC && !a->storage) {
                /* Without a storage Proxmox restores a container to
                 * 'local': take the one its root fs was on. */
                rootfs_storage(op, ret->lxc_storage, sizeof(ret->lxc_storage));
                if (!ret->lxc_storage[0]) {
                        fprintf(stderr, "proxreap: %s is a container: give --storage S for its root file system\n",
                                op->id);
                        return 1;
                }
                ret->t.storage = ret->lxc_storage;
        }
        if (a->yes)
                return 0;
        if (!isatty(STDIN_FILENO)) {
                fprintf(stderr, "proxreap: not asking on a non-terminal: add --yes to restore\n");
                return 2;
        }
        if (!confirm(op, &ret->t)) {
                fprintf(stderr, "proxreap: not restored\n");
                return 1;
        }
        return 0;
}

static void print_restored(const struct op *op)
{
        char when[32];

        format_time(op->restored_ts, when, sizeof(when));
        printf("%s was already restored as guest %u on '%s' at %s; nothing to do\n", op->id,
               (unsigned)op->restore_vmid, op->restore_node, when);
}

/* What saga_begin_restore() decided, told: -1 to drive it on, else the
 * exit status. */
static int restore_begun(const struct saga *s, const char *id, enum restore_outcome o,
                         bool planned, const char *why)
{
        const struct op *op = ops_find(saga_ops(s), id);

        switch (o) {
        case RESTORE_STARTED:
                if (op->phase == PHASE_TASK)
                        printf("%s: restoring guest %u from '%s' as %u on '%s' (task %s)\n", id,
                               (unsigned)op->vmid, text_shown(op->volid),
                               (unsigned)op->restore_vmid, op->restore_node, text_shown(op->upid));
                return -1;
        case RESTORE_RESUME:
                printf("%s: continuing the restore that was interrupted (guest %u on '%s')%s\n", id,
                       (unsigned)op->restore_vmid, op->restore_node,
                       planned ? "; the vmid, node, storage and pool given now are not used" : "");
                return -1;
        case RESTORE_DONE_ALREADY:
                print_restored(op);
                return 0;
        case RESTORE_REFUSED:
                fprintf(stderr, "proxreap: restore of %s failed: %s\n", id, text_shown(why));
                return 1;
        case RESTORE_BUSY:
        case RESTORE_NOT_REAPED:
                break;
        }
        fprintf(stderr, "proxreap: %s\n", text_shown(why));
        return 1;
}

/* The restored guest, started: one task, no journal. */
static int start_restored(struct saga *s, const struct cluster *api, const struct op *op)
{
        struct task_request q = { .kind = TASK_START, .type = op->type,
                                  .node = op->restore_node, .vmid = op->restore_vmid };
        char why[600];

        if (saga_run_task(s, api, &q, why, sizeof(why)) != 0) {
                fprintf(stderr, "proxreap: restored, but starting guest %u failed: %s\n",
                        (unsigned)op->restore_vmid, text_shown(why));
                return 1;
        }
        printf("guest %u started\n", (unsigned)op->restore_vmid);
        return 0;
}

/* The decision, under the journal's lock, then the saga to its end. */
static int run_restore(struct saga *s, const struct cluster *api, const struct restore_args *a,
                       const struct restore_target *t)
{
        enum restore_outcome o = RESTORE_NOT_REAPED;
        char why[1024] = "";
        const struct op *op;
        int r;

        r = saga_begin_restore(s, api, a->id, t, &o, why, sizeof(why));
        if (r < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(why));
                return 1;
        }
        r = restore_begun(s, a->id, o, t && (a->vmid || a->node || a->storage || a->pool), why);
        if (r >= 0)
                return r;
        r = saga_drive(s, api, a->id, progress, (void *)"restoring", why, sizeof(why));
        if (isatty(STDERR_FILENO))
                fprintf(stderr, "\n");
        if (r != 0) {
                fprintf(stderr, "proxreap: restore of %s failed: %s\n", a->id, text_shown(why));
                return 1;
        }
        op = ops_find(saga_ops(s), a->id);
        printf("%s restored as guest %u on '%s'\n", a->id, (unsigned)op->restore_vmid,
               op->restore_node);
        return a->start ? start_restored(s, api, op) : 0;
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
                fprintf(stderr, "proxreap: usage: proxreap restore ID|VMID|NAME [--vmid N] [--node NODE] [--storage S] [--pool P] [--start] [--yes]\n");
                return -EINVAL;
        }
        a->id = argv[optind];
        return 0;
}

/* An id this journal does not hold: say where it comes from when it names
 * another node. */
static void unknown_op(const struct config *c, const char *what)
{
        const char *storage = c->archive_storage ? c->archive_storage : "(none)";
        char node[64];

        if (op_id_node(what, node, sizeof(node)) == 0 && node[0] &&
            strcasecmp(node, c->node_name) != 0)
                fprintf(stderr,
                        "proxreap: %s was reaped by the proxreapd on '%s', and neither this node's journal nor an archive on '%s' as '%s' sees it holds it: run 'proxreap restore %s' on '%s'\n",
                        text_shown(what), text_shown(node), storage, c->node_name, text_shown(what),
                        text_shown(node));
        else
                fprintf(stderr,
                        "proxreap: no op, vmid or guest name '%s' in the journal, nor an archive of it on '%s' (see 'proxreap journal list' and 'proxreap archives')\n",
                        text_shown(what), storage);
}

static bool restorable(const struct op *op)
{
        return (op->state == OP_REAPED && op->volid[0]) || op->state == OP_RESTORING;
}

static void print_candidate(const struct op *op)
{
        char when[32];

        format_time(op->began, when, sizeof(when));
        fprintf(stderr, "  %s  guest %u ('%s', %s on '%s'), %s, reaped %s\n", op->id,
                (unsigned)op->vmid, text_shown(op->name), guest_type_to_string(op->type),
                op->node, op_state_to_string(op->state), when);
}

#define MAX_CANDIDATES 64

/* The one op what names: an id, or the vmid or name of exactly one guest
 * that is reaped (or being restored). NULL when there is none, or several
 * (they are listed: nothing is guessed). */
static const struct op *resolve_op(const struct config *c, const struct ops *ops,
                                   const char *what)
{
        const struct op *found[MAX_CANDIDATES], *pick = NULL;
        size_t n = ops_lookup(ops, what, found, MAX_CANDIDATES), live = 0;

        if (n == 1 && strcasecmp(found[0]->id, what) == 0)
                return found[0];
        for (size_t i = 0; i < n && i < MAX_CANDIDATES; i++)
                if (restorable(found[i])) {
                        live++;
                        pick = found[i];
                }
        (void)c;
        if (live == 1 || n == 0)
                return pick; /* none: the archives are asked next */
        if (live > 1) {
                fprintf(stderr, "proxreap: '%s' names %zu reaped guests; restore one by its id:\n",
                        text_shown(what), live);
                for (size_t i = 0; i < n && i < MAX_CANDIDATES; i++)
                        if (restorable(found[i]))
                                print_candidate(found[i]);
                return NULL;
        }
        /* Only ops that ended otherwise: the newest says what became of it. */
        return found[(n < MAX_CANDIDATES ? n : MAX_CANDIDATES) - 1];
}

/* --- archives: the reaps their archives' notes tell of --- */

static bool archive_names(const struct found_archive *a, const char *what)
{
        bool digits = what[0] && strspn(what, "0123456789") == strlen(what) && strlen(what) <= 9;

        if (strcasecmp(a->note.id, what) == 0)
                return true;
        return digits ? a->note.vmid == (uint32_t)strtoul(what, NULL, 10)
                      : strcasecmp(a->note.name, what) == 0;
}

static void print_archive(FILE *f, const struct found_archive *a, const char *state)
{
        char when[32];

        format_time(a->ctime, when, sizeof(when));
        fprintf(f, "%-16s %-9u %-16.16s %-4s %-10.10s %-9s %9.1fM  %s  %s\n", a->note.id,
                (unsigned)a->note.vmid, text_shown(a->note.name), guest_type_to_string(a->note.type),
                a->note.node[0] ? a->note.node : "-", state, (double)a->size / 1048576.0, when,
                text_shown(a->volid));
}

/* The archive holds the guest its notes name: a protected vzdump of that
 * vmid and type whose configuration has that name (notes are text anyone
 * with Datastore rights may edit). Its configuration into *config. */
static int archive_trusted(const struct cluster *api, const struct found_archive *a, char **config,
                           char *why, size_t size)
{
        struct guest_conf g;
        const char *name;
        char err[256], unnamed[32];
        bool lxc = strstr(a->volid, "/vzdump-lxc-") != NULL;
        int r;

        *config = NULL;
        if (!a->protected) {
                snprintf(why, size, "archive '%s' is not protected, as every archive of proxreap is",
                         a->volid);
                return -EPERM;
        }
        if (lxc != (a->note.type == GUEST_LXC)) {
                snprintf(why, size, "archive '%s' is not a %s archive, as its notes say", a->volid,
                         guest_type_to_string(a->note.type));
                return -EPERM;
        }
        r = api->ops->extract_config(api->impl, a->node, a->volid, config);
        if (r < 0) {
                snprintf(why, size, "the configuration in archive '%s' cannot be read: %s", a->volid,
                         api_error(api));
                return r;
        }
        if (guestconf_from_text(a->note.type, *config, &g, err, sizeof(err)) < 0) {
                snprintf(why, size, "the configuration in archive '%s' cannot be read: %s", a->volid,
                         err);
                return -EBADMSG;
        }
        name = guestconf_field(&g, a->note.type == GUEST_LXC ? "hostname" : "name");
        if (!name) {
                /* Unnamed: Proxmox VE shows "VM 104" or "CT104". */
                snprintf(unnamed, sizeof(unnamed), a->note.type == GUEST_LXC ? "CT%u" : "VM %u",
                         (unsigned)a->note.vmid);
                name = a->note.name[0] ? unnamed : "";
        }
        r = strcmp(name, a->note.name) == 0 ? 0 : -EPERM;
        if (r < 0)
                snprintf(why, size, "archive '%s' holds guest '%s', not '%s' as its notes say",
                         a->volid, name, a->note.name);
        guestconf_done(&g);
        return r;
}

static json_t *adopted_record(const struct config *c, const struct found_archive *a,
                              const char *config)
{
        char evidence[600];
        json_t *rec;

        snprintf(evidence, sizeof(evidence),
                 "found by the notes of archive '%s' on '%s' (reaped by the proxreapd of node %s; no journal here held it)",
                 a->volid, c->archive_storage, a->note.node[0] ? a->note.node : "?");
        rec = op_record(a->note.id, "adopted", now_epoch());
        if (rec)
                json_object_update_new(rec, json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s}",
                                                      "vmid", (json_int_t)a->note.vmid, "type",
                                                      guest_type_to_string(a->note.type), "node",
                                                      a->note.node[0] ? a->note.node : c->node_name,
                                                      "name", a->note.name, "volid", a->volid,
                                                      "archive_node", a->node, "size",
                                                      (json_int_t)a->size, "ctime",
                                                      (json_int_t)a->ctime, "archive_config",
                                                      config, "evidence", evidence));
        return rec;
}

/* Where a guest of that vmid, type and name lives now ("" if none). */
struct alive {
        uint32_t vmid;
        enum guest_type type;
        const char *name;
        char node[64];
};

static int find_alive(void *userdata, const struct pve_guest *g)
{
        struct alive *a = userdata;

        if (g->vmid == a->vmid && g->type == a->type && strcmp(g->name, a->name) == 0)
                snprintf(a->node, sizeof(a->node), "%s", g->node);
        return 0;
}

/* The one archive what names, checked and journaled here: 0 (its id in
 * id), 1 none (local_why said, or that nothing names it), 2 otherwise
 * (said). */
static int adopt_from_archive(const struct config *c, struct pve *p, const char *what,
                              const char *local_why, char *id, size_t size)
{
        struct cluster api = cluster_of_pve(p);
        struct found_archive *v = NULL;
        const struct found_archive *pick = NULL;
        char err[1024] = "", *config = NULL;
        ssize_t n = c->archive_storage ? archives_list(c, &api, &v, err, sizeof(err)) : 0;
        size_t hits = 0;
        struct saga *s = NULL;
        struct alive alive = { 0 };
        int r;

        if (n < 0)
                fprintf(stderr, "proxreap: %s\n", text_shown(err));
        for (ssize_t i = 0; i < n; i++)
                if (archive_names(&v[i], what)) {
                        hits++;
                        pick = &v[i];
                }
        if (n >= 0 && hits == 0) {
                if (local_why)
                        fprintf(stderr, "proxreap: %s\n", local_why);
                else
                        unknown_op(c, what);
        }
        if (hits > 1) {
                fprintf(stderr, "proxreap: '%s' names %zu archives of reaped guests; restore one by its id:\n",
                        text_shown(what), hits);
                for (ssize_t i = 0; i < n; i++)
                        if (archive_names(&v[i], what))
                                print_archive(stderr, &v[i], "archived");
        }
        if (n < 0 || hits != 1) {
                free(v);
                return n >= 0 && hits == 0 ? 1 : 2;
        }
        alive = (struct alive){ .vmid = pick->note.vmid, .type = pick->note.type,
                                .name = pick->note.name };
        r = archive_trusted(&api, pick, &config, err, sizeof(err));
        if (r >= 0 && pve_get_resources(p, find_alive, &alive, NULL) < 0) {
                snprintf(err, sizeof(err), "%s", pve_error(p));
                r = -EIO;
        }
        if (r >= 0 && alive.node[0]) {
                /* A reap called off after its archive was made, or a guest
                 * restored already: it is there. */
                snprintf(err, sizeof(err),
                         "guest %u ('%s') is on '%s': %s never destroyed it, or it was restored already; its archive '%s' stays on '%s', protected",
                         (unsigned)pick->note.vmid, pick->note.name, alive.node, pick->note.id,
                         pick->volid, c->archive_storage);
                r = -EEXIST;
        }
        if (r >= 0) {
                printf("%s is in no journal here; its archive '%s' on '%s' tells of it (reaped by the proxreapd of node %s)\n",
                       pick->note.id, text_shown(pick->volid), c->archive_storage,
                       pick->note.node[0] ? pick->note.node : "?");
                r = saga_open(c, SAGA_CLI, &s, err, sizeof(err));
        }
        if (r >= 0)
                r = saga_adopt(s, adopted_record(c, pick, config), err, sizeof(err));
        if (r < 0)
                fprintf(stderr, "proxreap: cannot restore %s from its archive: %s\n", pick->note.id,
                        text_shown(err));
        saga_free(s);
        snprintf(id, size, "%s", pick->note.id);
        free(config);
        free(v);
        return r < 0 ? 2 : 0;
}

static int archives_cmd(const struct config *c, const struct cluster *api, bool json)
{
        struct found_archive *v = NULL;
        char why[1024] = "";
        ssize_t n = archives_list(c, api, &v, why, sizeof(why));
        struct journal *j = NULL;
        struct ops ops;
        json_t *a = json ? json_array() : NULL;

        if (n < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(why));
                json_decref(a);
                return 1;
        }
        if (open_journal(c, JOURNAL_READ, &ops, &j) < 0) {
                free(v);
                json_decref(a);
                return 1;
        }
        journal_close(j);
        if (!json)
                printf("%-16s %-9s %-16s %-4s %-10s %-9s %10s  %-20s  %s\n", "ID", "VMID", "NAME",
                       "TYPE", "REAPED ON", "HERE", "SIZE", "ARCHIVED (UTC)", "VOLID");
        for (ssize_t i = 0; i < n; i++) {
                const struct op *op = ops_find(&ops, v[i].note.id);
                const char *state = op ? op_state_to_string(op->state) : "-";

                if (json)
                        json_array_append_new(
                                a, json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:s}",
                                             "id", v[i].note.id, "vmid", (json_int_t)v[i].note.vmid,
                                             "name", v[i].note.name, "type",
                                             guest_type_to_string(v[i].note.type), "node",
                                             v[i].note.node, "storage", v[i].note.storage, "volid",
                                             v[i].volid, "size", (json_int_t)v[i].size, "ctime",
                                             (json_int_t)v[i].ctime, "protected", v[i].protected,
                                             "journal_state", state));
                else
                        print_archive(stdout, &v[i], state);
        }
        if (json) {
                json_dumpf(a, stdout, JSON_INDENT(2));
                putchar('\n');
        } else if (n == 0)
                printf("(no archive of a reaped guest on '%s' as node '%s' sees it)\n",
                       c->archive_storage, c->node_name);
        json_decref(a);
        ops_clear(&ops);
        free(v);
        return 0;
}

int cmd_archives(const struct config *c, struct pve *p, int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", no_argument, NULL, 'j' },
                {},
        };
        struct cluster api = cluster_of_pve(p);
        bool json = false;
        int o;

        optind = 0;
        while ((o = getopt_long(argc, argv, "j", opts, NULL)) >= 0)
                if (o == 'j')
                        json = true;
                else
                        return 2;
        if (optind != argc) {
                fprintf(stderr, "proxreap: usage: proxreap archives [--json]\n");
                return 2;
        }
        return archives_cmd(c, &api, json);
}

#define NOT_IN_JOURNAL 100

/* The op as the journal holds it now, read-only (a restore of an op that
 * does not exist writes, and creates, nothing). 0: plan a restore; 1: a
 * restore under way, resume it; NOT_IN_JOURNAL; else the exit status + 2.
 * The op's id goes to id. */
/* The plan failed (its vmid taken, say): another proxreap may have begun
 * restoring the op since the journal was read. Then that is the answer
 * (1: under way, say so; 2: restored already), else r. */
static int planned_meanwhile(const struct config *c, const char *id, int r)
{
        struct journal *j = NULL;
        struct ops ops;
        const struct op *op;

        if (open_journal(c, JOURNAL_READ, &ops, &j) < 0)
                return r;
        journal_close(j);
        op = ops_find(&ops, id);
        if (op && op->state == OP_RESTORING) {
                fprintf(stderr, "proxreap: %s was taken up by another restore meanwhile\n", id);
                r = 1;
        } else if (op && op->state == OP_RESTORED) {
                print_restored(op);
                r = 2 + 0;
        }
        ops_clear(&ops);
        return r;
}

static int read_op(const struct config *c, const struct cluster *api, const struct restore_args *a,
                   char *id, size_t size, struct restore_plan *plan, char *why, size_t whysize)
{
        struct journal *j = NULL;
        struct ops ops;
        const struct op *op;
        int r;

        if (open_journal(c, JOURNAL_READ, &ops, &j) < 0)
                return 2 + 1;
        journal_close(j);
        op = resolve_op(c, &ops, a->id);
        if (op)
                snprintf(id, size, "%s", op->id);
        if (!op) {
                r = ops_lookup(&ops, a->id, NULL, 0) == 0 ? NOT_IN_JOURNAL : 2 + 1;
        } else if (op->state == OP_RESTORED) {
                print_restored(op);
                r = 2 + 0;
        } else if (op->state == OP_RESTORING) {
                r = 1;
        } else if (op->state != OP_REAPED || !op->volid[0]) {
                /* Said only if no archive tells of a reap of it either (a
                 * reap of another node, or records lost with damage). */
                if (op->state == OP_REAPED)
                        snprintf(why, whysize,
                                 "%s is reaped, but the journal lost the records of its archive, and no archive on '%s' names it",
                                 op->id, c->archive_storage ? c->archive_storage : "(none)");
                else if (!op_state_terminal(op->state))
                        snprintf(why, whysize,
                                 "%s is a reap under way, at '%s': proxreapd finishes it (if the journal is damaged, stop proxreapd, run 'proxreap journal repair' and start it), then restore it",
                                 op->id, op_state_to_string(op->state));
                else
                        snprintf(why, whysize, "%s is '%s', not reaped: there is nothing to restore%s",
                                 op->id, op_state_to_string(op->state),
                                 op->state == OP_ABORTED ? " (the guest was never destroyed)" : "");
                r = NOT_IN_JOURNAL;
        } else {
                r = plan_restore(api, &ops, op, a, plan);
                r = r ? planned_meanwhile(c, op->id, 2 + r) : 0;
        }
        ops_clear(&ops);
        return r;
}

int cmd_restore(const struct config *c, struct pve *p, int argc, char **argv)
{
        struct restore_args a = { 0 };
        struct cluster api = cluster_of_pve(p);
        struct notifier *notifier = NULL;
        struct restore_plan plan = { 0 };
        struct saga *s = NULL;
        char err[1024] = "", id[OP_ID_MAX], why[1024] = "";
        int r;

        if (parse_restore(argc, argv, &a) < 0)
                return 2;
        r = read_op(c, &api, &a, id, sizeof(id), &plan, why, sizeof(why));
        if (r == NOT_IN_JOURNAL) {
                /* No journal here holds a reap of it: its archive's notes may. */
                r = adopt_from_archive(c, p, a.id, why[0] ? why : NULL, id, sizeof(id));
                why[0] = '\0';
                if (r == 0) {
                        a.id = id;
                        r = read_op(c, &api, &a, id, sizeof(id), &plan, why, sizeof(why));
                        if (r == NOT_IN_JOURNAL) {
                                fprintf(stderr, "proxreap: %s\n", text_shown(why));
                                r = 2 + 1;
                        }
                } else
                        r = 2 + 1;
        }
        if (r >= 2)
                return r - 2;
        a.id = id;
        if (saga_open(c, SAGA_CLI, &s, err, sizeof(err)) < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(err));
                return 1;
        }
        if (notifier_new(c, &notifier) < 0)
                fprintf(stderr, "proxreap: warning: cannot start the webhook sender, no event will be sent\n");
        saga_set_notifier(s, notifier);
        r = run_restore(s, &api, &a, r == 0 ? &plan.t : NULL);
        saga_free(s);
        /* One attempt's time at most: the restore itself is done. */
        notifier_free(notifier, c->notify_timeout_usec);
        return r;
}

/* --- abort --- */

/* Where the cluster shows a guest now: the CLI has no polls, so each look
 * is a fresh one. */
struct live_view {
        struct pve *p;
        uint32_t vmid;
        enum guest_type type;
        char node[64];
};

static int find_guest(void *userdata, const struct pve_guest *g)
{
        struct live_view *v = userdata;

        if (g->vmid == v->vmid && g->type == v->type)
                snprintf(v->node, sizeof(v->node), "%s", g->node);
        return 0;
}

static bool view_now(void *userdata, uint64_t since)
{
        (void)userdata;
        (void)since;
        return true; /* every look below is a poll of its own */
}

static const char *view_node_of(void *userdata, uint32_t vmid, enum guest_type t)
{
        struct live_view *v = userdata;

        v->vmid = vmid;
        v->type = t;
        v->node[0] = '\0';
        if (pve_get_resources(v->p, find_guest, v, NULL) < 0)
                return NULL; /* asked again: the saga retries a look that failed */
        return v->node[0] ? v->node : NULL;
}

static bool in_flight(const struct op *op)
{
        return op_needs_daemon(op);
}

/* The reap under way that what names (an id, or the vmid or name of
 * exactly one guest being reaped). */
static const struct op *resolve_reap(const struct ops *ops, const char *what)
{
        const struct op *found[MAX_CANDIDATES], *pick = NULL;
        size_t n = ops_lookup(ops, what, found, MAX_CANDIDATES), live = 0;

        if (n == 1 && strcasecmp(found[0]->id, what) == 0)
                return found[0];
        for (size_t i = 0; i < n && i < MAX_CANDIDATES; i++)
                if (in_flight(found[i])) {
                        live++;
                        pick = found[i];
                }
        if (live == 1)
                return pick;
        if (live > 1) {
                fprintf(stderr, "proxreap: '%s' names %zu reaps under way; abort one by its id:\n",
                        text_shown(what), live);
                for (size_t i = 0; i < n && i < MAX_CANDIDATES; i++)
                        if (in_flight(found[i]))
                                print_candidate(found[i]);
                return NULL;
        }
        if (n > 0)
                return found[(n < MAX_CANDIDATES ? n : MAX_CANDIDATES) - 1];
        fprintf(stderr, "proxreap: no op, vmid or guest name '%s' in the journal (see 'proxreap journal list')\n",
                text_shown(what));
        return NULL;
}

/* The running daemon puts the guest back: followed in the journal. */
static int wait_for_daemon(struct saga *s, const char *id)
{
        const struct op *op = ops_find(saga_ops(s), id);
        uint64_t start = now_monotonic_usec();

        printf("%s: the running proxreapd puts guest %u back\n", id, (unsigned)op->vmid);
        while (op->state == OP_ABORTING) {
                if (now_monotonic_usec() - start > 30 * USEC_PER_MINUTE) {
                        fprintf(stderr, "proxreap: %s is still being put back by proxreapd; follow it with 'proxreap journal show %s'\n",
                                id, id);
                        return 1;
                }
                (void)progress((void *)"putting it back", now_monotonic_usec() - start);
                (void)usleep(500 * 1000);
                saga_refresh(s);
        }
        return 0;
}

static int abort_reap(const struct config *c, struct pve *p, const char *id)
{
        struct cluster api = cluster_of_pve(p);
        struct live_view live = { .p = p };
        const struct saga_view view = { view_now, view_node_of, NULL, &live };
        enum abort_outcome o = ABORT_NOT_A_REAP;
        char err[1024] = "", why[1024] = "";
        struct saga *s = NULL;
        const struct op *op;
        int claim = -1, r;

        /* No daemon holds the journal: this process puts the guest back
         * itself, holding the journal as a daemon would meanwhile. */
        r = journal_claim(c->journal_file, &claim, err, sizeof(err));
        if (r < 0 && r != -EBUSY) {
                fprintf(stderr, "proxreap: %s\n", text_shown(err));
                return 1;
        }
        if (saga_open(c, SAGA_CLI, &s, err, sizeof(err)) < 0) {
                fprintf(stderr, "proxreap: %s\n", text_shown(err));
                if (claim >= 0)
                        close(claim);
                return 1;
        }
        saga_set_view(s, &view);
        r = saga_abort(s, &api, id, &o, why, sizeof(why));
        if (r < 0 || o == ABORT_TOO_LATE || o == ABORT_NOT_A_REAP)
                fprintf(stderr, "proxreap: %s\n", text_shown(why));
        r = r < 0 || o == ABORT_TOO_LATE || o == ABORT_NOT_A_REAP;
        if (!r && o == ABORT_STARTED && claim >= 0)
                r = saga_drive(s, &api, id, progress, (void *)"putting it back", why, sizeof(why));
        else if (!r && o == ABORT_STARTED)
                r = wait_for_daemon(s, id);
        if (isatty(STDERR_FILENO) && o == ABORT_STARTED)
                fprintf(stderr, "\n");
        op = ops_find(saga_ops(s), id);
        if (!r && op)
                printf("%s aborted: %s\n", id, text_shown(op->reason));
        else if (o == ABORT_STARTED && r)
                fprintf(stderr, "proxreap: abort of %s: %s\n", id, text_shown(why));
        saga_free(s);
        if (claim >= 0)
                close(claim);
        return r ? 1 : 0;
}

int cmd_abort(const struct config *c, struct pve *p, int argc, char **argv)
{
        struct journal *j = NULL;
        char id[OP_ID_MAX] = "";
        const struct op *op;
        struct ops ops;

        optind = 0;
        if (getopt_long(argc, argv, "", (const struct option[]){ {} }, NULL) != -1 ||
            optind != argc - 1) {
                fprintf(stderr, "proxreap: usage: proxreap abort ID|VMID|NAME\n");
                return 2;
        }
        if (open_journal(c, JOURNAL_READ, &ops, &j) < 0)
                return 1;
        journal_close(j);
        op = resolve_reap(&ops, argv[optind]);
        if (op)
                snprintf(id, sizeof(id), "%s", op->id);
        ops_clear(&ops);
        return id[0] ? abort_reap(c, p, id) : 1;
}
