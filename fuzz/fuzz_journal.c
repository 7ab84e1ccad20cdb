/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The journal reader (src/journal.c) and the fold every reader of the
 * journal runs on its records (ops_apply() of src/ops.c, then the decisions
 * and summaries taken from the fold).
 *
 * Each input is read twice:
 *  - as it is, by the pure scanner journal_scan_buffer();
 *  - with the CRC of every line that looks like a record rewritten to match
 *    its payload (a fuzzer cannot guess CRCs, and without this no mutated
 *    record would ever get past the check), through journal_open() on a
 *    regular file of a private directory, the way proxreap reads a journal
 *    file (a link such as /proc/self/fd/N it refuses).
 * Both reads of an image must agree with each other where they overlap and
 * with the journal's contract (journal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "journal.h"
#include "notify.h"
#include "ops.h"

static int img_fd = -1;
static char img_dir[64], img_path[96];

static void remove_image(void)
{
        (void)unlink(img_path);
        (void)rmdir(img_dir);
}

/* The image is a regular file of a private directory (in memory when
 * /dev/shm is there): the journal refuses links, /proc/self/fd/N too. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        snprintf(img_dir, sizeof(img_dir), "%s/fuzz-journal-XXXXXX",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(img_dir)) {
                perror("mkdtemp");
                abort();
        }
        snprintf(img_path, sizeof(img_path), "%s/journal", img_dir);
        img_fd = open(img_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (img_fd < 0) {
                perror(img_path);
                abort();
        }
        atexit(remove_image);
        return 0;
}

/* Everything proxreap derives from the fold, so it all runs on odd states. */
static void use_ops(const struct ops *o)
{
        static const enum notify_event events[] = { NOTIFY_MARK, NOTIFY_REAP, NOTIFY_ABORT,
                                                    NOTIFY_RESTORE };
        struct ops_totals t;
        char next[OP_ID_MAX];

        fuzz_check(o->bad_records == 0 || o->first_bad[0], "bad records without a reason");
        fuzz_check_cstr(o->first_bad);
        for (size_t i = 0; i < o->n; i++) {
                const struct op *op = o->v[i];

                fuzz_check(ops_find(o, op->id) == op, "op '%s' twice in the table", op->id);
                fuzz_check(op->first_seq <= op->last_seq, "op '%s' seqs", op->id);
                fuzz_check_cstr(op->id);
                fuzz_check_cstr(op->node);
                fuzz_check_cstr(op->name);
                fuzz_check_cstr(op->upid);
                fuzz_check_cstr(op->volid);
                fuzz_check_cstr(op->reason);
                for (int snap = 0; snap < 2; snap++)
                        for (int resumed = 0; resumed < 2; resumed++)
                                (void)op_action_to_string(op_next_action(op, snap, resumed));
                for (const char *const *ty = op_step_task_types(op->step, op->type); *ty; ty++)
                        fuzz_check(**ty, "an empty task type");
                (void)op_state_to_string(op->state);
                (void)op_step_to_string(op->step);
                (void)ops_active_for(o, op->vmid);
                for (size_t e = 0; e < sizeof(events) / sizeof(events[0]); e++)
                        json_decref(op_event_fields(op, events[e]));
        }
        ops_totals(o, &t);
        fuzz_check(t.reaps + t.aborts + t.vetoes + t.in_progress <= o->n, "totals");
        ops_next_id(o, "pve1", next, sizeof(next));
        fuzz_check(!ops_find(o, next), "next id '%s' is taken", next);
}

/* Rewrites the crc32c field of every line shaped like a record to the CRC
 * of its payload (the bytes between ,"rec": and the final }). */
static void fix_crcs(char *buf, size_t len)
{
        static const char crc_key[] = ",\"crc32c\":\"", rec_key[] = "\",\"rec\":";
        char *p = buf, *end = buf + len;

        while (p < end) {
                char *nl = memchr(p, '\n', (size_t)(end - p)), *crc, *payload;
                char hex[9];

                if (!nl)
                        break;
                crc = memmem(p, (size_t)(nl - p), crc_key, sizeof(crc_key) - 1);
                if (crc) {
                        crc += sizeof(crc_key) - 1;
                        payload = crc + 8 + sizeof(rec_key) - 1;
                        if (payload < nl && memcmp(crc + 8, rec_key, sizeof(rec_key) - 1) == 0 &&
                            nl[-1] == '}') {
                                snprintf(hex, sizeof(hex), "%08x",
                                         crc32c(0, payload, (size_t)(nl - 1 - payload)));
                                memcpy(crc, hex, 8);
                        }
                }
                p = nl + 1;
        }
}

static void check_scan(int r, const struct journal_scan *s, size_t len, const char *err,
                       const char *name)
{
        fuzz_check(r == 0 || r == -EBADMSG, "result %d (%s)", r, err);
        if (r < 0) {
                fuzz_check(strncmp(err, name, strlen(name)) == 0 && err[strlen(name)] == ':',
                           "damage not located: '%s'", err);
                return;
        }
        fuzz_check(s->valid_bytes <= s->total_bytes && s->total_bytes == len, "sizes");
        fuzz_check(s->torn == (s->valid_bytes < len), "torn %d with %llu of %zu bytes valid",
                   s->torn, (unsigned long long)s->valid_bytes, len);
        fuzz_check(s->last_seq == s->records, "%llu records, last seq %llu",
                   (unsigned long long)s->records, (unsigned long long)s->last_seq);
}

static void read_raw(const char *buf, size_t len)
{
        struct journal_scan s = { 0 };
        char err[1024] = "";
        struct ops o;
        int r;

        ops_init(&o);
        r = journal_scan_buffer(buf, len, 1, 1, "fuzz", ops_apply, &o, &s, err, sizeof(err));
        check_scan(r, &s, len, err, "fuzz");
        if (r == 0)
                fuzz_check(s.torn || len == 0 || buf[len - 1] == '\n', "untorn image ends without newline");
        use_ops(&o);
        ops_clear(&o);
}

static void read_file(const char *buf, size_t len)
{
        struct journal_scan s = { 0 }, pure = { 0 };
        struct journal *j = NULL;
        char err[1024] = "";
        struct ops o;
        int r, rp;

        if (ftruncate(img_fd, 0) < 0 || pwrite(img_fd, buf, len, 0) != (ssize_t)len)
                abort();
        ops_init(&o);
        r = journal_open(img_path, JOURNAL_READ, ops_apply, &o, &j, &s, err, sizeof(err));
        if (r == 0) {
                s.total_bytes = len; /* journal_open leaves it 0 for an empty file */
                fuzz_check(journal_last_seq(j) == s.last_seq, "last seq");
                fuzz_check(journal_refresh(j, ops_apply, &o, err, sizeof(err)) == 0,
                           "refresh of an unchanged file: %s", err);
                journal_close(j);
        }
        check_scan(r, &s, len, err, img_path);
        /* The file reader and the pure scanner read one image alike. */
        rp = journal_scan_buffer(buf, len, 1, 1, "fuzz", NULL, NULL, &pure, NULL, 0);
        fuzz_check(r == rp, "journal_open %d, journal_scan_buffer %d", r, rp);
        if (r == 0)
                fuzz_check(pure.records == s.records && pure.valid_bytes == s.valid_bytes &&
                                   pure.torn == s.torn && pure.torn_line == s.torn_line,
                           "file and buffer scans differ");
        use_ops(&o);
        ops_clear(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *copy;

        read_raw((const char *)data, size);
        copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        fix_crcs(copy, size);
        read_file(copy, size);
        free(copy);
        return 0;
}
