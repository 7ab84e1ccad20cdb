/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "ops.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

static const char *const state_names[_OP_STATE_MAX] = {
        [OP_SELECTED] = "selected", [OP_SHUTDOWN] = "shutdown", [OP_SNAPSHOT] = "snapshot",
        [OP_ARCHIVE] = "archive",   [OP_VERIFY] = "verify",     [OP_DESTROY] = "destroy",
        [OP_REAPED] = "reaped",     [OP_ABORTING] = "aborting", [OP_ABORTED] = "aborted",
        [OP_RESTORING] = "restoring", [OP_RESTORED] = "restored",
};

static const char *const step_names[_STEP_MAX] = {
        [STEP_NONE] = "none",         [STEP_SHUTDOWN] = "shutdown", [STEP_SNAPSHOT] = "snapshot",
        [STEP_ARCHIVE] = "archive",   [STEP_VERIFY] = "verify",     [STEP_DESTROY] = "destroy",
        [STEP_START] = "start",       [STEP_RESTORE] = "restore",
};

const char *op_state_to_string(enum op_state s)
{
        return s < _OP_STATE_MAX ? state_names[s] : "unknown";
}

const char *op_step_to_string(enum op_step s)
{
        return s < _STEP_MAX ? step_names[s] : "unknown";
}

static int step_from_string(const char *s, enum op_step *ret)
{
        for (size_t i = 0; s && i < _STEP_MAX; i++)
                if (strcmp(s, step_names[i]) == 0) {
                        *ret = (enum op_step)i;
                        return 0;
                }
        return -EINVAL;
}

bool op_state_terminal(enum op_state s)
{
        return s == OP_REAPED || s == OP_ABORTED || s == OP_RESTORED;
}

bool op_needs_daemon(const struct op *op)
{
        return !op_state_terminal(op->state) && op->state != OP_RESTORING;
}

void ops_init(struct ops *o)
{
        *o = (struct ops){ 0 };
}

static void op_free_fields(struct op *op)
{
        free(op->evidence);
        free(op->archive_config);
        json_decref(op->pinned);
        json_decref(op->upids);
}

void ops_clear(struct ops *o)
{
        for (size_t i = 0; i < o->n; i++) {
                op_free_fields(o->v[i]);
                free(o->v[i]);
        }
        free(o->v);
        ops_init(o);
}

struct op *ops_find(const struct ops *o, const char *id)
{
        for (size_t i = 0; i < o->n; i++)
                if (strcmp(o->v[i]->id, id) == 0)
                        return o->v[i];
        return NULL;
}

size_t ops_lookup(const struct ops *o, const char *what, const struct op **ret, size_t max)
{
        bool digits = what[0] && strspn(what, "0123456789") == strlen(what) && strlen(what) <= 9;
        uint32_t vmid = digits ? (uint32_t)strtoul(what, NULL, 10) : 0;
        size_t n = 0;

        for (size_t i = 0; i < o->n; i++)
                if (strcasecmp(o->v[i]->id, what) == 0) {
                        if (max > 0)
                                ret[0] = o->v[i];
                        return 1;
                }
        for (size_t i = 0; i < o->n; i++) {
                const struct op *op = o->v[i];

                if (digits ? op->vmid != vmid : strcasecmp(op->name, what) != 0)
                        continue;
                if (n < max)
                        ret[n] = op;
                n++;
        }
        return n;
}

struct op *ops_active_for(const struct ops *o, uint32_t vmid)
{
        for (size_t i = 0; i < o->n; i++)
                if (o->v[i]->vmid == vmid && !op_state_terminal(o->v[i]->state))
                        return o->v[i];
        return NULL;
}

void ops_next_id(const struct ops *o, const char *node, char *buf, size_t size)
{
        /* A Proxmox node's name always is one; a host name that is not
         * (no such node can reap) gets ids without it. */
        if (node && node_name_valid(node) && strlen(node) < OP_ID_MAX - 14)
                snprintf(buf, size, "R-%s-%06u", node, o->max_number + 1);
        else
                snprintf(buf, size, "R-%06u", o->max_number + 1);
}

/* --- folding records --- */

static const char *str(json_t *rec, const char *key)
{
        const char *s = json_string_value(json_object_get(rec, key));

        return s ? s : "";
}

static int64_t num(json_t *rec, const char *key)
{
        json_t *v = json_object_get(rec, key);
        double d;

        if (json_is_integer(v))
                return (int64_t)json_integer_value(v);
        d = json_is_real(v) ? json_real_value(v) : 0;
        /* Converting a real that int64_t cannot hold is undefined. */
        return d > -9223372036854775808.0 && d < 9223372036854775808.0 ? (int64_t)d : 0;
}

/* "R-", optionally a node name and "-", and 1 to 9 decimal digits: the
 * number and (node, "" for the old form). (sscanf's %u also took "R--1"
 * and "R-4294967295", after which ops_next_id() wrapped to a taken id.) */
static int op_id_parse(const char *id, unsigned *ret, char *node, size_t size)
{
        const char *digits = strrchr(id, '-');
        size_t n = digits ? strlen(digits + 1) : 0;
        unsigned v = 0;

        if (strncmp(id, "R-", 2) != 0 || !digits || n < 1 || n > 9 ||
            strspn(digits + 1, "0123456789") != n || strlen(id) >= OP_ID_MAX)
                return -EINVAL;
        if (digits > id + 1) {
                /* R-<node>-NNNNNN */
                size_t len = (size_t)(digits - (id + 2));

                if (len == 0 || len >= size)
                        return -EINVAL;
                memcpy(node, id + 2, len);
                node[len] = '\0';
                if (!node_name_valid(node))
                        return -EINVAL;
        } else
                node[0] = '\0';
        for (const char *p = digits + 1; *p; p++)
                v = v * 10 + (unsigned)(*p - '0');
        *ret = v;
        return 0;
}

void ops_reserve_id(struct ops *o, const char *id)
{
        unsigned number;
        char node[64];

        if (op_id_parse(id, &number, node, sizeof(node)) == 0 && number > o->max_number)
                o->max_number = number;
}

int op_id_node(const char *id, char *node, size_t size)
{
        unsigned number;

        return op_id_parse(id, &number, node, size);
}

int archive_note_parse(const char *notes, struct archive_note *ret)
{
        static const char by[] = " by the proxreapd of node ";
        static const char done[] = ") archived before removal";
        const char *id, *colon, *open, *close, *end;
        char inner[160], type[16] = "", storage[64] = "", node[64];
        unsigned number;
        unsigned long vmid;
        int n;

        *ret = (struct archive_note){ 0 };
        if (!notes || strncmp(notes, "proxreap ", 9) != 0)
                return -EINVAL;
        id = notes + 9;
        colon = strstr(id, ": idle guest ");
        close = strstr(id, done);
        if (!colon || !close || (size_t)(colon - id) >= sizeof(ret->id))
                return -EINVAL;
        snprintf(ret->id, sizeof(ret->id), "%.*s", (int)(colon - id), id);
        if (op_id_parse(ret->id, &number, node, sizeof(node)) < 0)
                return -EINVAL;
        /* The name is whatever lies before the last " (" ahead of ")". */
        open = NULL;
        for (const char *p = colon; p < close; p++)
                if (p[0] == ' ' && p[1] == '(')
                        open = p;
        if (!open || (size_t)(close - open - 2) >= sizeof(inner))
                return -EINVAL;
        snprintf(ret->name, sizeof(ret->name), "%.*s", (int)(open - (colon + 13)), colon + 13);
        snprintf(inner, sizeof(inner), "%.*s", (int)(close - open - 2), open + 2);
        n = sscanf(inner, "%lu, %15[a-z], storage %63[^,)]", &vmid, type, storage);
        if (n < 1 || !vmid_valid(vmid))
                return -EINVAL;
        ret->vmid = (uint32_t)vmid;
        ret->typed = n >= 2 && (strcmp(type, "qemu") == 0 || strcmp(type, "lxc") == 0);
        ret->type = strcmp(type, "lxc") == 0 ? GUEST_LXC : GUEST_QEMU;
        if (n >= 3)
                snprintf(ret->storage, sizeof(ret->storage), "%s", storage);
        end = close + strlen(done);
        if (strncmp(end, by, strlen(by)) == 0)
                snprintf(ret->node, sizeof(ret->node), "%.*s", (int)strcspn(end + strlen(by), " \n"),
                         end + strlen(by));
        else
                snprintf(ret->node, sizeof(ret->node), "%s", node);
        return ret->node[0] && !node_name_valid(ret->node) ? -EINVAL : 0;
}

static void set_text(char **field, const char *s)
{
        free(*field);
        *field = s && *s ? strdup(s) : NULL;
}

static int bad(struct ops *o, unsigned line, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* A record that does not fit the model is reported, never fatal: the
 * journal itself is intact (its CRC held). */
static int bad(struct ops *o, unsigned line, const char *fmt, ...)
{
        va_list ap;
        size_t n;

        if (o->bad_records++ > 0)
                return 0;
        snprintf(o->first_bad, sizeof(o->first_bad), "record on line %u: ", line);
        n = strlen(o->first_bad);
        va_start(ap, fmt);
        vsnprintf(o->first_bad + n, sizeof(o->first_bad) - n, fmt, ap);
        va_end(ap);
        return 0;
}

/* A new op in *ret, or *ret NULL and the record reported as bad;
 * < 0 only on an allocation failure. */
static int op_new(struct ops *o, const char *id, json_t *rec, unsigned line, struct op **ret)
{
        const char *type = str(rec, "type");
        char node[64];
        unsigned number;
        struct op *op;
        int64_t vmid = num(rec, "vmid");

        *ret = NULL;
        if (op_id_parse(id, &number, node, sizeof(node)) < 0)
                return bad(o, line, "op id '%s' is not R-NODE-NNNNNN", id);
        if (!vmid_valid((uint64_t)vmid) || (strcmp(type, "qemu") != 0 && strcmp(type, "lxc") != 0))
                return bad(o, line, "op '%s' has no valid vmid and type", id);
        if (!node_name_valid(str(rec, "node")))
                return bad(o, line, "op '%s' has no valid node", id);
        if (o->n == o->allocated) {
                size_t n = o->allocated ? 2 * o->allocated : 16;
                struct op **v = realloc(o->v, n * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                o->v = v;
                o->allocated = n;
        }
        op = calloc(1, sizeof(*op));
        if (!op)
                return -ENOMEM;
        o->v[o->n++] = op;
        snprintf(op->id, sizeof(op->id), "%s", id);
        op->vmid = (uint32_t)vmid;
        op->type = strcmp(type, "lxc") == 0 ? GUEST_LXC : GUEST_QEMU;
        snprintf(op->node, sizeof(op->node), "%s", str(rec, "node"));
        snprintf(op->name, sizeof(op->name), "%s", str(rec, "name"));
        snprintf(op->pool, sizeof(op->pool), "%s", str(rec, "pool"));
        snprintf(op->digest, sizeof(op->digest), "%s", str(rec, "digest"));
        if (json_is_object(json_object_get(rec, "config")))
                op->pinned = json_incref(json_object_get(rec, "config"));
        set_text(&op->evidence, str(rec, "evidence"));
        op->maxmem = (uint64_t)num(rec, "maxmem");
        op->maxdisk = (uint64_t)num(rec, "maxdisk");
        op->maxcpu = json_number_value(json_object_get(rec, "maxcpu"));
        op->began = num(rec, "ts");
        op->state = OP_SELECTED;
        op->step = STEP_NONE;
        if (number > o->max_number)
                o->max_number = number;
        *ret = op;
        return 0;
}

static enum op_state state_of_step(enum op_step s, enum op_state current)
{
        switch (s) {
        case STEP_SHUTDOWN:
                return OP_SHUTDOWN;
        case STEP_SNAPSHOT:
                return OP_SNAPSHOT;
        case STEP_ARCHIVE:
                return OP_ARCHIVE;
        case STEP_VERIFY:
                return OP_VERIFY;
        case STEP_DESTROY:
                return OP_DESTROY;
        case STEP_RESTORE:
                return OP_RESTORING;
        case STEP_START:
        case STEP_NONE:
        case _STEP_MAX:
                break;
        }
        return current;
}

/* Who runs a restore: its process in this boot. */
static void restorer_of(struct op *op, json_t *rec)
{
        op->restore_pid = num(rec, "pid");
        op->restore_start = json_object_get(rec, "pid_start") ? num(rec, "pid_start") : -1;
        snprintf(op->restore_boot, sizeof(op->restore_boot), "%s", str(rec, "boot"));
}

static void apply_done(struct op *op, json_t *rec)
{
        snprintf(op->exitstatus, sizeof(op->exitstatus), "%s", str(rec, "exitstatus"));
        switch (op->step) {
        case STEP_SNAPSHOT:
                /* proxreap's snapshot changed the digest, checked to have
                 * changed nothing else. */
                if (*str(rec, "digest"))
                        snprintf(op->digest, sizeof(op->digest), "%s", str(rec, "digest"));
                op->snapshot_taken = !*str(rec, "skipped");
                break;
        case STEP_ARCHIVE:
                op->archive_start = (uint64_t)num(rec, "task_start");
                break;
        case STEP_VERIFY:
                snprintf(op->volid, sizeof(op->volid), "%s", str(rec, "volid"));
                snprintf(op->archive_node, sizeof(op->archive_node), "%s",
                         *str(rec, "node") ? str(rec, "node") : op->node);
                op->archive_size = (uint64_t)num(rec, "size");
                op->archive_ctime = num(rec, "ctime");
                set_text(&op->archive_config, str(rec, "config"));
                break;
        case STEP_START:
                if (json_is_true(json_object_get(rec, "failed")))
                        op->start_failures++;
                else
                        op->started_again = true;
                break;
        case STEP_RESTORE:
                op->state = OP_RESTORED;
                op->restore_vmid = (uint32_t)num(rec, "vmid");
                snprintf(op->restore_node, sizeof(op->restore_node), "%s", str(rec, "node"));
                op->restored_ts = num(rec, "ts");
                break;
        default:
                break;
        }
}

static int apply_event(struct ops *o, struct op *op, const char *ev, json_t *rec, unsigned line)
{
        enum op_step step = STEP_NONE;
        bool has_step = json_object_get(rec, "step") != NULL;

        if (has_step && step_from_string(str(rec, "step"), &step) < 0)
                return bad(o, line, "unknown step '%s'", str(rec, "step"));
        /* Every node a record names ends up in an API path or on a
         * terminal: a node name or none. */
        if (*str(rec, "node") && !node_name_valid(str(rec, "node")))
                return bad(o, line, "%s record of %s names no valid node", ev, op->id);
        if (!has_step && (!strcmp(ev, "intent") || !strcmp(ev, "task") || !strcmp(ev, "done")))
                return bad(o, line, "%s record without a step (%s)", ev, op->id);
        if (strcmp(ev, "intent") == 0) {
                op->step = step;
                op->phase = PHASE_INTENT;
                op->upid[0] = '\0';
                op->intent_ts = num(rec, "ts");
                op->state = state_of_step(step, op->state);
                if (step == STEP_SHUTDOWN)
                        op->stopped_by_us = true;
                if (step == STEP_SNAPSHOT)
                        snprintf(op->snapname, sizeof(op->snapname), "%s", str(rec, "snapname"));
                if (step == STEP_RESTORE) {
                        op->restore_vmid = (uint32_t)num(rec, "vmid");
                        snprintf(op->restore_node, sizeof(op->restore_node), "%s",
                                 str(rec, "node"));
                        snprintf(op->restore_storage, sizeof(op->restore_storage), "%s",
                                 str(rec, "storage"));
                        op->restore_pool_set = json_is_string(json_object_get(rec, "pool"));
                        snprintf(op->restore_pool, sizeof(op->restore_pool), "%s",
                                 str(rec, "pool"));
                        restorer_of(op, rec);
                }
        } else if (strcmp(ev, "resume") == 0) {
                /* Another process took over a restore whose own was gone. */
                if (op->state != OP_RESTORING)
                        return bad(o, line, "resume of %s, which is not being restored", op->id);
                restorer_of(op, rec);
        } else if (strcmp(ev, "task") == 0) {
                if (step != op->step || op->phase != PHASE_INTENT)
                        return bad(o, line, "task record without its intent (%s)", op->id);
                op->phase = PHASE_TASK;
                snprintf(op->upid, sizeof(op->upid), "%s", str(rec, "upid"));
                if (!op->upids)
                        op->upids = json_array();
                json_array_append_new(op->upids, json_string(op->upid));
        } else if (strcmp(ev, "done") == 0) {
                op->step = step;
                op->phase = PHASE_DONE;
                op->state = state_of_step(step, op->state);
                apply_done(op, rec);
        } else if (strcmp(ev, "moved") == 0) {
                if (!node_name_valid(str(rec, "node")))
                        return bad(o, line, "op '%s' moved to no valid node", op->id);
                snprintf(op->node, sizeof(op->node), "%s", str(rec, "node"));
        } else if (strcmp(ev, "failing") == 0) {
                op->called_off = json_is_true(json_object_get(rec, "called_off"));
                op->state = OP_ABORTING;
                op->step = STEP_NONE;
                op->phase = PHASE_DONE;
                snprintf(op->reason, sizeof(op->reason), "%s", str(rec, "reason"));
        } else if (strcmp(ev, "aborted") == 0) {
                op->called_off = op->called_off ||
                                 json_is_true(json_object_get(rec, "called_off"));
                op->state = OP_ABORTED;
                op->vetoed = json_is_true(json_object_get(rec, "vetoed"));
                if (!op->reason[0] || json_object_get(rec, "reason"))
                        snprintf(op->reason, sizeof(op->reason), "%s", str(rec, "reason"));
        } else if (strcmp(ev, "reaped") == 0) {
                op->state = OP_REAPED;
                op->step = STEP_NONE;
                op->phase = PHASE_DONE;
        } else if (strcmp(ev, "failed") == 0) {
                /* A restore that failed: the archive is still there. */
                if (op->state != OP_RESTORING)
                        return bad(o, line, "restore failure of %s, which is not being restored",
                                   op->id);
                op->state = OP_REAPED;
                op->step = STEP_NONE;
                op->phase = PHASE_DONE;
                snprintf(op->reason, sizeof(op->reason), "%s", str(rec, "reason"));
        } else
                return bad(o, line, "unknown event '%s'", ev);
        op->updated = num(rec, "ts");
        return 0;
}

bool op_adoptable(const struct op *op, uint32_t vmid)
{
        return op->vmid == vmid && op->state == OP_REAPED && !op->volid[0];
}

/* A reap of another journal (lost, or another node's), found by its
 * archive's notes: reaped, with that archive, for restore. */
static void adopt(struct op *op, json_t *rec)
{
        op->state = OP_REAPED;
        op->step = STEP_VERIFY;
        op->phase = PHASE_DONE;
        op->adopted = true;
        snprintf(op->volid, sizeof(op->volid), "%s", str(rec, "volid"));
        snprintf(op->archive_node, sizeof(op->archive_node), "%s", str(rec, "archive_node"));
        op->archive_size = (uint64_t)num(rec, "size");
        op->archive_ctime = num(rec, "ctime");
        set_text(&op->archive_config, str(rec, "archive_config"));
        op->step = STEP_NONE;
}

int ops_apply(void *userdata, uint64_t seq, unsigned line, json_t *payload)
{
        struct ops *o = userdata;
        const char *id = str(payload, "op"), *ev = str(payload, "ev");
        struct op *op = ops_find(o, id);
        int r;

        if (op && strcmp(ev, "adopted") == 0 && op_adoptable(op, (uint32_t)num(payload, "vmid"))) {
                /* A reap whose records of its archive were lost with
                 * damage: the archive's notes fill them in. */
                adopt(op, payload);
                op->last_seq = seq;
                return 0;
        }
        if (strcmp(ev, "selected") == 0 || strcmp(ev, "adopted") == 0) {
                if (op)
                        return bad(o, line, "op '%s' %s twice", id, ev);
                r = op_new(o, id, payload, line, &op);
                if (r < 0 || !op)
                        return r;
                op->first_seq = op->last_seq = seq;
                op->updated = op->began;
                if (strcmp(ev, "adopted") == 0)
                        adopt(op, payload);
                return 0;
        }
        if (!op)
                return bad(o, line, "record of unknown op '%s'", id);
        r = apply_event(o, op, ev, payload, line);
        op->last_seq = seq;
        return r;
}

/* --- decisions --- */

static enum op_action after_step(enum op_step done, bool snapshot_enabled)
{
        switch (done) {
        case STEP_SHUTDOWN:
                return snapshot_enabled ? ACT_START_SNAPSHOT : ACT_START_ARCHIVE;
        case STEP_SNAPSHOT:
                return ACT_START_ARCHIVE;
        case STEP_ARCHIVE:
                return ACT_VERIFY;
        case STEP_VERIFY:
                return ACT_START_DESTROY;
        case STEP_DESTROY:
                return ACT_FINISH_REAP;
        default:
                return ACT_NONE;
        }
}

enum op_action op_next_action(const struct op *op, bool snapshot_enabled, bool resumed)
{
        if (op->state == OP_RESTORING)
                return op->phase == PHASE_INTENT ? ACT_RESOLVE
                       : op->phase == PHASE_TASK ? ACT_FOLLOW_TASK
                                                 : ACT_NONE;
        if (!op_needs_daemon(op))
                return ACT_NONE;
        if (op->state == OP_SELECTED)
                return resumed ? ACT_ABANDON : ACT_START_SHUTDOWN;
        if (op->state == OP_ABORTING) {
                /* The compensating start runs like any step. */
                if (op->step == STEP_START && op->phase == PHASE_INTENT)
                        return ACT_RESOLVE;
                if (op->step == STEP_START && op->phase == PHASE_TASK)
                        return ACT_FOLLOW_TASK;
                return ACT_COMPENSATE;
        }
        switch (op->phase) {
        case PHASE_INTENT:
                return ACT_RESOLVE;
        case PHASE_TASK:
                return ACT_FOLLOW_TASK;
        case PHASE_DONE:
                return after_step(op->step, snapshot_enabled);
        }
        return ACT_NONE;
}

const char *op_action_to_string(enum op_action a)
{
        static const char *const names[] = {
                [ACT_NONE] = "none",
                [ACT_ABANDON] = "abandon",
                [ACT_START_SHUTDOWN] = "shutdown",
                [ACT_START_SNAPSHOT] = "snapshot",
                [ACT_START_ARCHIVE] = "archive",
                [ACT_VERIFY] = "verify",
                [ACT_START_DESTROY] = "destroy",
                [ACT_FINISH_REAP] = "finish",
                [ACT_RESOLVE] = "resolve",
                [ACT_FOLLOW_TASK] = "follow-task",
                [ACT_COMPENSATE] = "compensate",
        };

        return a < ELEMENTSOF(names) ? names[a] : "unknown";
}

const char *const *op_step_task_types(enum op_step s, enum guest_type t)
{
        static const char *const shutdown[2][3] = { { "qmshutdown", "hastop", NULL },
                                                    { "vzshutdown", "hastop", NULL } };
        static const char *const snapshot[2][2] = { { "qmsnapshot", NULL },
                                                    { "vzsnapshot", NULL } };
        static const char *const archive[] = { "vzdump", NULL };
        static const char *const destroy[2][2] = { { "qmdestroy", NULL }, { "vzdestroy", NULL } };
        static const char *const start[2][3] = { { "qmstart", "hastart", NULL },
                                                 { "vzstart", "hastart", NULL } };
        static const char *const restore[2][2] = { { "qmrestore", NULL }, { "vzrestore", NULL } };
        static const char *const none[] = { NULL };
        unsigned i = t == GUEST_LXC;

        switch (s) {
        case STEP_SHUTDOWN:
                return shutdown[i];
        case STEP_SNAPSHOT:
                return snapshot[i];
        case STEP_ARCHIVE:
                return archive;
        case STEP_DESTROY:
                return destroy[i];
        case STEP_START:
                return start[i];
        case STEP_RESTORE:
                return restore[i];
        default:
                return none;
        }
}

/* --- summaries --- */

static bool op_was_reaped(const struct op *op)
{
        return op->state == OP_REAPED || op->state == OP_RESTORING || op->state == OP_RESTORED;
}

void ops_totals(const struct ops *o, struct ops_totals *ret)
{
        *ret = (struct ops_totals){ 0 };
        for (size_t i = 0; i < o->n; i++) {
                const struct op *op = o->v[i];

                if (op_was_reaped(op)) {
                        ret->reaps++;
                        ret->freed_mem += op->maxmem;
                        ret->freed_disk += op->maxdisk;
                }
                if (op->state == OP_ABORTED)
                        (*(op->vetoed ? &ret->vetoes : &ret->aborts))++;
                if (op->state == OP_RESTORED)
                        ret->restores++;
                if (op_needs_daemon(op))
                        ret->in_progress++;
        }
}

static void event_text(const struct op *op, enum notify_event e, char *buf, size_t size)
{
        switch (e) {
        case NOTIFY_REAP:
                snprintf(buf, size,
                         "proxreap: guest %u ('%s') on %s reaped (%s); archive %s; restore with 'proxreap restore %s'",
                         (unsigned)op->vmid, op->name, op->node, op->id, op->volid, op->id);
                return;
        case NOTIFY_ABORT:
                snprintf(buf, size, "proxreap: reap %s of guest %u ('%s') on %s aborted: %s",
                         op->id, (unsigned)op->vmid, op->name, op->node, op->reason);
                return;
        case NOTIFY_RESTORE:
                snprintf(buf, size, "proxreap: reap %s undone: guest %u ('%s') restored as %u on %s",
                         op->id, (unsigned)op->vmid, op->name, (unsigned)op->restore_vmid,
                         op->restore_node);
                return;
        default:
                snprintf(buf, size, "proxreap: %s, guest %u ('%s')", op->id, (unsigned)op->vmid,
                         op->name);
                return;
        }
}

json_t *op_event_fields(const struct op *op, enum notify_event e)
{
        char text[1024];
        json_t *f;

        event_text(op, e, text, sizeof(text));
        f = json_pack("{s:s s:I s:s s:s s:s s:s s:s s:I s:I}", "op", op->id, "vmid",
                      (json_int_t)op->vmid, "node", op->node, "name", op->name, "type",
                      guest_type_to_string(op->type), "state", op_state_to_string(op->state),
                      "text", text, "maxmem", (json_int_t)op->maxmem, "maxdisk",
                      (json_int_t)op->maxdisk);
        if (f && op->reason[0])
                json_object_set_new(f, "reason", json_string(op->reason));
        if (f && op->volid[0]) {
                json_object_set_new(f, "archive", json_string(op->volid));
                json_object_set_new(f, "archive_size", json_integer((json_int_t)op->archive_size));
        }
        if (f && op->restore_vmid) {
                json_object_set_new(f, "restore_vmid", json_integer((json_int_t)op->restore_vmid));
                json_object_set_new(f, "restore_node", json_string(op->restore_node));
        }
        return f;
}

/* --- records --- */

json_t *op_record(const char *id, const char *ev, int64_t ts)
{
        char when[32];

        format_utc(ts, when, sizeof(when));
        return json_pack("{s:s, s:s, s:I, s:s}", "op", id, "ev", ev, "ts", (json_int_t)ts, "time",
                         when);
}

json_t *op_record_step(const char *id, const char *ev, enum op_step step, int64_t ts)
{
        json_t *r = op_record(id, ev, ts);

        if (r && json_object_set_new(r, "step", json_string(op_step_to_string(step))) < 0) {
                json_decref(r);
                return NULL;
        }
        return r;
}
