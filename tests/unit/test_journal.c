/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of journal: CRC32C, the exact line format, torn tails cut at
 * every byte, damage anywhere refused with its place, readers that never
 * write, concurrent writers in separate processes, and a journal that
 * fails for good.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "journal.h"
#include "log.h"
#include "testutil.h"
#include "util.h"

static char *dir; /* a fresh directory per test */
static char *jpath; /* dir/journal */

static void remove_tree(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *e;

        if (!d)
                return;
        while ((e = readdir(d))) {
                char *p;

                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                p = tu_strdupf("%s/%s", path, e->d_name);
                unlink(p);
                free(p);
        }
        closedir(d);
        rmdir(path);
}

static int setup(void **state)
{
        (void)state;
        dir = tu_mkdtemp();
        jpath = tu_strdupf("%s/journal", dir);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        remove_tree(dir);
        free(dir);
        free(jpath);
        dir = jpath = NULL;
        return 0;
}

/* --- helpers --- */

#define MAX_SEEN 4096
#define MAX_LINE ((size_t)JOURNAL_MAX_LINE)

/* What a record callback saw. */
struct seen {
        size_t n;
        uint64_t seq[MAX_SEEN];
        unsigned line[MAX_SEEN];
        json_t *payloads; /* array */
        size_t stop_at; /* return -ECANCELED for record number stop_at (1-based); 0: never */
};

static struct seen *seen_new(void)
{
        struct seen *s = calloc(1, sizeof(*s));

        assert_non_null(s);
        s->payloads = json_array();
        return s;
}

static void seen_free(struct seen *s)
{
        json_decref(s->payloads);
        free(s);
}

static int collect(void *userdata, uint64_t seq, unsigned line, json_t *payload)
{
        struct seen *s = userdata;

        if (s->stop_at > 0 && s->n + 1 == s->stop_at)
                return -ECANCELED;
        assert_true(s->n < MAX_SEEN);
        s->seq[s->n] = seq;
        s->line[s->n] = line;
        json_array_append(s->payloads, payload); /* takes a reference: payload is borrowed */
        s->n++;
        return 0;
}

/* The payload of record i of a test journal: varied shapes and lengths,
 * keys deliberately out of alphabetical order. */
static json_t *payload(int i)
{
        char name[64];

        snprintf(name, sizeof(name), "vm-%d-\xc3\xa9t\xc3\xa9-%.*s", i, i % 23,
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        return json_pack("{s:i, s:s, s:{s:b, s:[i,f,n]}, s:s}", "vmid", 100 + i, "name", name,
                         "evidence", "idle", i % 2, "cpu", i, 0.25 * i, "a", "line\nbreak\"q\"");
}

static void write_file(const char *path, const void *buf, size_t len)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
        close(fd);
}

static void append_file(const char *path, const void *buf, size_t len)
{
        int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, buf, len), (ssize_t)len);
        close(fd);
}

static void assert_file_is(const char *path, const char *buf, size_t len)
{
        /* Set here too: assert_non_null() may return as far as the compiler
         * knows (cmocka's _assert_true is not noreturn), and GCC 14 then
         * sees got_len read uninitialized. */
        size_t got_len = 0;
        char *got = tu_read_file(path, &got_len);

        if (!got)
                fail_msg("cannot read '%s'", path);
        if (got_len != len || memcmp(got, buf, len) != 0)
                fail_msg("'%s' changed: %zu bytes, expected %zu", path, got_len, len);
        free(got);
}

/* Number of "journal.torn-*" files in dir; the first one's path in
 * *ret_path (malloc'd) when wanted. */
static unsigned torn_copies(char **ret_path)
{
        DIR *d = opendir(dir);
        struct dirent *e;
        unsigned n = 0;

        assert_non_null(d);
        if (ret_path)
                *ret_path = NULL;
        while ((e = readdir(d)))
                if (strncmp(e->d_name, "journal.torn-", 13) == 0) {
                        if (ret_path && !*ret_path)
                                *ret_path = tu_strdupf("%s/%s", dir, e->d_name);
                        n++;
                }
        closedir(d);
        return n;
}

static void remove_torn_copies(void)
{
        char *p;

        while (torn_copies(&p) > 0) {
                unlink(p);
                free(p);
        }
}

static struct journal *open_ok(enum journal_mode mode, struct seen *s, struct journal_scan *scan)
{
        struct journal *j = NULL;
        char err[1024] = "";
        int r = journal_open(jpath, mode, s ? collect : NULL, s, &j, scan, err, sizeof(err));

        if (r != 0)
                fail_msg("journal_open: %d: %s", r, err);
        assert_non_null(j);
        return j;
}

/* Opening must fail with want; returns the error text (malloc'd). */
static char *open_fails(enum journal_mode mode, int want)
{
        struct journal *j = (struct journal *)&j; /* a sentinel: must stay untouched */
        char err[2048] = "";
        int r = journal_open(jpath, mode, NULL, NULL, &j, NULL, err, sizeof(err));

        if (r != want)
                fail_msg("journal_open = %d, expected %d (%s)", r, want, err);
        assert_ptr_equal(j, (struct journal *)&j);
        return tu_strdupf("%s", err);
}

static uint64_t append_ok(struct journal *j, json_t *p)
{
        char err[1024] = "";
        uint64_t seq = 0;
        int r = journal_append(j, p, NULL, NULL, &seq, err, sizeof(err));

        if (r != 0)
                fail_msg("journal_append: %d: %s", r, err);
        json_decref(p);
        return seq;
}

/* A journal of n records of payload(0..n-1); its bytes (malloc'd) and the
 * end offset of each record. */
static char *make_journal(int n, size_t *ret_len, size_t *ends)
{
        struct journal *j = open_ok(JOURNAL_WRITE, NULL, NULL);
        size_t len = 0, k = 0;
        char *bytes;

        for (int i = 0; i < n; i++)
                assert_int_equal(append_ok(j, payload(i)), (uint64_t)i + 1);
        journal_close(j);
        bytes = tu_read_file(jpath, &len);
        assert_non_null(bytes);
        for (size_t i = 0; i < len; i++)
                if (bytes[i] == '\n')
                        ends[k++] = i + 1;
        assert_int_equal(k, (size_t)n);
        *ret_len = len;
        return bytes;
}

/* The records seen are payload(0..n-1), seq and line 1..n. */
static void assert_seen_first(const struct seen *s, size_t n)
{
        assert_int_equal(s->n, n);
        for (size_t i = 0; i < n; i++) {
                json_t *want = payload((int)i);

                assert_int_equal(s->seq[i], i + 1);
                assert_int_equal(s->line[i], i + 1);
                if (!json_equal(json_array_get(s->payloads, i), want))
                        fail_msg("record %zu differs", i + 1);
                json_decref(want);
        }
}

/* One record line, as the journal writes it, with any seq. */
static char *record_line(uint64_t seq, const char *payload_text)
{
        return tu_strdupf("{\"seq\":%llu,\"crc32c\":\"%08x\",\"rec\":%s}\n",
                          (unsigned long long)seq, crc32c(0, payload_text, strlen(payload_text)),
                          payload_text);
}

/* --- CRC32C --- */

static void test_crc32c_vectors(void **state)
{
        unsigned char buf[32];

        (void)state;
        assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283);
        assert_int_equal(crc32c(0, "", 0), 0);
        /* RFC 3720 B.4 */
        memset(buf, 0, sizeof(buf));
        assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x8A9136AA);
        memset(buf, 0xff, sizeof(buf));
        assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x62A8AB43);
        for (unsigned i = 0; i < sizeof(buf); i++)
                buf[i] = (unsigned char)i;
        assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x46DD794E);
        for (unsigned i = 0; i < sizeof(buf); i++)
                buf[i] = (unsigned char)(31 - i);
        assert_int_equal(crc32c(0, buf, sizeof(buf)), 0x113FDB5C);
}

static void test_crc32c_chains(void **state)
{
        const char *s = "The quick brown fox jumps over the lazy dog, 0123456789";
        size_t n = strlen(s);
        uint32_t whole = crc32c(0, s, n);

        (void)state;
        for (size_t i = 0; i <= n; i++)
                assert_int_equal(crc32c(crc32c(0, s, i), s + i, n - i), whole);
        assert_int_equal(crc32c(crc32c(crc32c(0, "123", 3), "456", 3), "789", 3), 0xE3069283);
}

/* --- the format --- */

static void test_missing_and_empty(void **state)
{
        struct journal_scan scan;
        struct journal *j;
        struct stat st;
        char err[256];

        (void)state;
        /* A reader of a missing journal sees an empty one and creates nothing. */
        memset(&scan, 0xaa, sizeof(scan));
        j = open_ok(JOURNAL_READ, NULL, &scan);
        assert_int_equal(scan.records, 0);
        assert_int_equal(scan.last_seq, 0);
        assert_int_equal(scan.total_bytes, 0);
        assert_false(scan.torn);
        assert_int_equal(journal_last_seq(j), 0);
        assert_string_equal(journal_path(j), jpath);
        assert_int_equal(journal_refresh(j, NULL, NULL, err, sizeof(err)), 0);
        assert_int_equal(access(jpath, F_OK), -1);
        journal_close(j);

        /* A writer creates it, 0640, empty. */
        j = open_ok(JOURNAL_WRITE, NULL, &scan);
        assert_int_equal(scan.records, 0);
        assert_int_equal(stat(jpath, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0640);
        assert_int_equal(st.st_size, 0);
        assert_int_equal(journal_failed(j), 0);
        journal_close(j);

        /* An empty file is a valid journal of no records. */
        j = open_ok(JOURNAL_READ, NULL, &scan);
        assert_int_equal(scan.records, 0);
        assert_int_equal(scan.valid_bytes, 0);
        assert_false(scan.torn);
        journal_close(j);
        assert_null(journal_close(NULL));
}

static void test_append_and_reopen(void **state)
{
        struct seen *s = seen_new();
        struct journal_scan scan;
        struct journal *j;
        size_t ends[40], len;
        char *bytes = make_journal(40, &len, ends), *text, *first;

        (void)state;
        /* Exact bytes of the first line: compact, order preserved. */
        {
                json_t *p0 = payload(0);

                text = json_dumps(p0, JSON_COMPACT | JSON_PRESERVE_ORDER);
                json_decref(p0);
        }
        assert_true(strncmp(text, "{\"vmid\":100,\"name\":", 19) == 0);
        first = record_line(1, text);
        assert_true(strncmp(bytes, first, strlen(first)) == 0);
        assert_int_equal(ends[0], strlen(first));
        free(first);
        free(text);

        for (int mode = JOURNAL_READ; mode <= JOURNAL_WRITE; mode++) {
                s->n = 0;
                json_array_clear(s->payloads);
                j = open_ok((enum journal_mode)mode, s, &scan);
                assert_seen_first(s, 40);
                assert_int_equal(scan.records, 40);
                assert_int_equal(scan.last_seq, 40);
                assert_int_equal(scan.valid_bytes, len);
                assert_int_equal(scan.total_bytes, len);
                assert_false(scan.torn);
                assert_int_equal(journal_last_seq(j), 40);
                if (mode == JOURNAL_WRITE)
                        assert_int_equal(append_ok(j, payload(40)), 41);
                journal_close(j);
        }
        s->n = 0;
        json_array_clear(s->payloads);
        journal_close(open_ok(JOURNAL_READ, s, NULL));
        assert_seen_first(s, 41);
        seen_free(s);
        free(bytes);
}

static void test_scan_buffer(void **state)
{
        char *l5 = record_line(5, "{\"a\":1}"), *l6 = record_line(6, "{\"b\":[]}");
        char *text = tu_strdupf("%s%s{\"seq\":7,\"cr", l5, l6);
        struct seen *s = seen_new();
        struct journal_scan scan;
        char err[512] = "";

        (void)state;
        /* A fragment of a journal: seq and line numbers go on from first_*. */
        assert_int_equal(journal_scan_buffer(text, strlen(text), 5, 10, "frag", collect, s, &scan,
                                             err, sizeof(err)),
                         0);
        assert_int_equal(s->n, 2);
        assert_int_equal(s->seq[0], 5);
        assert_int_equal(s->line[0], 10);
        assert_int_equal(s->seq[1], 6);
        assert_int_equal(s->line[1], 11);
        assert_int_equal(scan.records, 2);
        assert_int_equal(scan.last_seq, 6);
        assert_int_equal(scan.valid_bytes, strlen(l5) + strlen(l6));
        assert_int_equal(scan.total_bytes, strlen(text));
        assert_true(scan.torn);
        assert_int_equal(scan.torn_line, 12);

        /* Expecting another first seq is damage, named with the line. */
        assert_int_equal(journal_scan_buffer(text, strlen(text), 1, 1, "frag", NULL, NULL, &scan,
                                             err, sizeof(err)),
                         -EBADMSG);
        assert_string_equal(err, "frag:1 (byte 0): seq 5 where 1 was expected");

        /* The callback's error stops the scan and is returned. */
        s->n = 0;
        s->stop_at = 2;
        assert_int_equal(
                journal_scan_buffer(text, strlen(text), 5, 1, "frag", collect, s, NULL, NULL, 0),
                -ECANCELED);
        assert_int_equal(s->n, 1);

        assert_int_equal(journal_scan_buffer(text, 0, 1, 1, NULL, NULL, NULL, &scan, NULL, 0), 0);
        assert_int_equal(scan.records, 0);
        assert_false(scan.torn);
        assert_int_equal(journal_scan_buffer(text, 1, 0, 1, NULL, NULL, NULL, NULL, NULL, 0),
                         -EINVAL);
        free(l5);
        free(l6);
        free(text);
        seen_free(s);
}

/* --- torn tails --- */

/* Opening the first L bytes of a journal: a reader reports a torn end and
 * leaves the file alone; a writer keeps exactly the records that end
 * within L and saves the rest to a .torn copy, and its next record goes
 * where the valid ones end (the journal as it was before the cut). */
static void check_cut_at(const char *bytes, size_t len, const size_t *ends, int n)
{
        struct seen *s = seen_new();
        struct journal_scan scan;
        size_t keep = 0, cut;
        int k = 0;
        char *copy;

        while (k < n && ends[k] <= len)
                keep = ends[k++];
        cut = len - keep;
        write_file(jpath, bytes, len);

        journal_close(open_ok(JOURNAL_READ, s, &scan));
        assert_seen_first(s, (size_t)k);
        assert_int_equal(scan.torn, cut > 0);
        assert_int_equal(scan.torn_line, cut > 0 ? (unsigned)k + 1 : 0);
        assert_int_equal(scan.valid_bytes, keep);
        assert_int_equal(scan.total_bytes, len);
        assert_file_is(jpath, bytes, len);
        assert_int_equal(torn_copies(NULL), 0);

        s->n = 0;
        json_array_clear(s->payloads);
        journal_close(open_ok(JOURNAL_WRITE, s, &scan));
        assert_seen_first(s, (size_t)k);
        assert_int_equal(scan.records, (uint64_t)k);
        assert_int_equal(scan.last_seq, (uint64_t)k);
        assert_int_equal(scan.torn, cut > 0);
        assert_int_equal(scan.valid_bytes, keep);
        assert_int_equal(scan.total_bytes, len);
        assert_file_is(jpath, bytes, keep);
        assert_int_equal(torn_copies(&copy), cut > 0 ? 1 : 0);
        if (cut > 0) {
                struct stat st;

                assert_file_is(copy, bytes + keep, cut);
                assert_int_equal(stat(copy, &st), 0);
                assert_int_equal(st.st_mode & 07777, 0640);
                free(copy);
                remove_torn_copies();
        }
        if (k < n) {
                struct journal *j = open_ok(JOURNAL_WRITE, NULL, NULL);

                assert_int_equal(append_ok(j, payload(k)), (uint64_t)k + 1);
                journal_close(j);
                assert_file_is(jpath, bytes, ends[k]);
        }
        seen_free(s);
}

static void test_torn_at_every_length(void **state)
{
        size_t ends[3], len;
        char *bytes = make_journal(3, &len, ends);
        struct journal *j;

        (void)state;
        for (size_t l = 0; l <= len; l++)
                check_cut_at(bytes, l, ends, 3);

        /* After a cut the journal goes on where the valid records end. */
        write_file(jpath, bytes, ends[1] + 7);
        j = open_ok(JOURNAL_WRITE, NULL, NULL);
        remove_torn_copies();
        assert_int_equal(append_ok(j, payload(2)), 3);
        journal_close(j);
        assert_file_is(jpath, bytes, len);
        free(bytes);
}

static void test_nul_padding(void **state)
{
        size_t ends[2], len;
        char *bytes = make_journal(2, &len, ends), *padded = calloc(1, len + 4096), *copy;
        struct seen *s = seen_new();
        struct journal_scan scan;

        (void)state;
        assert_non_null(padded);
        /* Zeros after the last record: the file system grew the file, the
         * data never came. */
        memcpy(padded, bytes, len);
        write_file(jpath, padded, len + 4096);
        journal_close(open_ok(JOURNAL_WRITE, s, &scan));
        assert_seen_first(s, 2);
        assert_true(scan.torn);
        assert_int_equal(scan.torn_line, 3);
        assert_file_is(jpath, bytes, len);
        assert_int_equal(torn_copies(&copy), 1);
        assert_file_is(copy, padded + len, 4096);
        free(copy);
        remove_torn_copies();

        /* Part of a record, then zeros. */
        memcpy(padded + ends[0], bytes + ends[0], 20);
        memset(padded + ends[0] + 20, 0, len - ends[0] - 20);
        write_file(jpath, padded, ends[0] + 300);
        s->n = 0;
        json_array_clear(s->payloads);
        journal_close(open_ok(JOURNAL_WRITE, s, &scan));
        assert_seen_first(s, 1);
        assert_true(scan.torn);
        assert_file_is(jpath, bytes, ends[0]);
        assert_int_equal(torn_copies(&copy), 1);
        assert_file_is(copy, padded + ends[0], 300);
        free(copy);
        free(padded);
        free(bytes);
        seen_free(s);
}

/* Cuts in the same second get "-1", "-2": copies never overwrite. */
static void test_torn_copy_names(void **state)
{
        size_t ends[1], len;
        char *bytes = make_journal(1, &len, ends), *taken[3][2];
        time_t now = time(NULL);
        unsigned found = 0;

        (void)state;
        /* This second and the next two, in case the clock ticks meanwhile. */
        for (int i = 0; i < 3; i++) {
                time_t t = now + i;
                char stamp[32];
                struct tm tm;

                gmtime_r(&t, &tm);
                strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
                taken[i][0] = tu_strdupf("%s.torn-%s", jpath, stamp);
                taken[i][1] = tu_strdupf("%s.torn-%s-1", jpath, stamp);
                write_file(taken[i][0], "", 0);
                write_file(taken[i][1], "", 0);
        }
        append_file(jpath, "{\"seq\":2,", 9);
        journal_close(open_ok(JOURNAL_WRITE, NULL, NULL));
        assert_int_equal(torn_copies(NULL), 7);
        for (int i = 0; i < 3; i++) {
                char *want = tu_strdupf("%s-2", taken[i][0]);
                size_t n;
                char *got = tu_read_file(want, &n);

                if (got) {
                        assert_int_equal(n, 9);
                        assert_memory_equal(got, "{\"seq\":2,", 9);
                        found++;
                }
                free(got);
                free(want);
                for (int k = 0; k < 2; k++) {
                        assert_file_is(taken[i][k], "", 0);
                        free(taken[i][k]);
                }
        }
        assert_int_equal(found, 1);
        free(bytes);
}

/* The one line the journal logs itself: file, bytes and the copy. */
static void test_torn_warning_logged(void **state)
{
        char *logpath = tu_strdupf("%s/stderr", dir), *logged, *copy, *want;
        int saved = dup(STDERR_FILENO), fd;
        size_t ends[1], len;
        char *bytes = make_journal(1, &len, ends);

        (void)state;
        append_file(jpath, "{\"seq\":2,\"crc", 13);
        fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0 && saved >= 0);
        fflush(stderr);
        dup2(fd, STDERR_FILENO);
        log_setup("test_journal", LOG_TARGET_STDERR, LOG_INFO);
        journal_close(open_ok(JOURNAL_WRITE, NULL, NULL));
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        log_setup("test_journal", LOG_TARGET_STDERR, LOG_ERR);
        close(saved);
        close(fd);

        logged = tu_read_file(logpath, NULL);
        assert_int_equal(torn_copies(&copy), 1);
        want = tu_strdupf("journal '%s': cut a torn last record of 13 bytes at line 2 (byte %zu), "
                          "saved in '%s'",
                          jpath, len, copy);
        assert_contains(logged, "warning");
        assert_contains(logged, want);
        assert_int_equal(tu_count_lines(logged), 1);
        unlink(logpath);
        free(want);
        free(copy);
        free(logged);
        free(logpath);
        free(bytes);
}

/* Every byte of the last record garbled (each bit flipped, a newline, a
 * NUL): a complete line that is wrong is damage at line 3, refused by
 * readers and writers alike with its place, the file untouched; without
 * its newline it is a torn end, cut by a writer after saving it; and the
 * journal goes on after the cut. Never a crash. */
static void test_garbled_last_record(void **state)
{
        size_t ends[3], len;
        char *bytes = make_journal(3, &len, ends), *copy = malloc(len);
        char *place = tu_strdupf("%s:3 (byte %zu): ", jpath, ends[1]);
        unsigned damaged = 0, torn = 0;

        (void)state;
        assert_non_null(copy);
        for (size_t i = ends[1]; i < len; i++)
                for (int g = 0; g < 10; g++) {
                        char c = g < 8 ? (char)(bytes[i] ^ (1 << g)) : g == 8 ? '\n' : '\0';
                        bool has_nl = i < len - 1 || c == '\n';

                        if (c == bytes[i])
                                continue;
                        memcpy(copy, bytes, len);
                        copy[i] = c;
                        write_file(jpath, copy, len);
                        if (has_nl) {
                                /* A newline ends a complete line: damage. */
                                for (int mode = JOURNAL_READ; mode <= JOURNAL_WRITE; mode++) {
                                        char *err = open_fails((enum journal_mode)mode, -EBADMSG);

                                        if (strncmp(err, place, strlen(place)) != 0)
                                                fail_msg("byte %zu garble %d: \"%s\"", i, g, err);
                                        free(err);
                                }
                                assert_file_is(jpath, copy, len);
                                assert_int_equal(torn_copies(NULL), 0);
                                damaged++;
                        } else {
                                struct journal_scan scan;
                                struct journal *j;
                                char *saved;

                                journal_close(open_ok(JOURNAL_READ, NULL, &scan));
                                assert_true(scan.torn);
                                assert_file_is(jpath, copy, len);
                                j = open_ok(JOURNAL_WRITE, NULL, &scan);
                                assert_true(scan.torn);
                                assert_int_equal(scan.records, 2);
                                assert_file_is(jpath, bytes, ends[1]);
                                assert_int_equal(torn_copies(&saved), 1);
                                assert_file_is(saved, copy + ends[1], len - ends[1]);
                                free(saved);
                                remove_torn_copies();
                                assert_int_equal(append_ok(j, payload(2)), 3);
                                journal_close(j);
                                assert_file_is(jpath, bytes, len);
                                torn++;
                        }
                }
        /* Only the newline's garbles (all but '\n' itself) tear the record. */
        assert_int_equal(torn, 9);
        assert_int_equal(damaged, 10 * (len - ends[1] - 1));
        free(place);
        free(copy);
        free(bytes);
}

/* --- crash points (test builds) --- */

#ifdef PROXREAP_TEST_HOOKS
/* Runs fn in a child with PROXREAP_CRASH_AT=spec; it must die by SIGKILL. */
static void crash_child(const char *spec, void (*fn)(int), int arg)
{
        pid_t pid;
        int status;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                setenv("PROXREAP_CRASH_AT", spec, 1);
                fn(arg);
                _exit(3); /* the crash point was not reached */
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
                fail_msg("%s: the child ended with status %#x, not by SIGKILL", spec, status);
}

/* In the child: open, append payload(k): the crash comes in between. */
static void child_append(int k)
{
        struct journal *j;
        json_t *p = payload(k);

        if (journal_open(jpath, JOURNAL_WRITE, NULL, NULL, &j, NULL, NULL, 0) < 0 ||
            journal_append(j, p, NULL, NULL, NULL, NULL, 0) < 0)
                _exit(2);
        _exit(4);
}

/* In the child: three records in one process. */
static void child_append_three(int unused)
{
        struct journal *j;

        (void)unused;
        if (journal_open(jpath, JOURNAL_WRITE, NULL, NULL, &j, NULL, NULL, 0) < 0)
                _exit(2);
        for (int i = 0; i < 3; i++) {
                json_t *p = payload(i);

                if (journal_append(j, p, NULL, NULL, NULL, NULL, 0) < 0)
                        _exit(2);
                json_decref(p);
        }
        _exit(4);
}

static void child_open(int unused)
{
        struct journal *j;

        (void)unused;
        if (journal_open(jpath, JOURNAL_WRITE, NULL, NULL, &j, NULL, NULL, 0) < 0)
                _exit(2);
        _exit(4);
}

/* After a crash at the end of record k: the writer keeps whole records,
 * saves a torn one, and appends the records that follow. */
static void check_recovers(const char *bytes, const size_t *ends, int n, int k, size_t extra)
{
        size_t keep = k > 0 ? ends[k - 1] : 0;
        struct journal_scan scan;
        struct journal *j;
        char *copy;

        j = open_ok(JOURNAL_WRITE, NULL, &scan);
        assert_int_equal(scan.records, (uint64_t)k);
        assert_int_equal(scan.torn, extra > 0);
        assert_file_is(jpath, bytes, keep);
        assert_int_equal(torn_copies(&copy), extra > 0 ? 1 : 0);
        if (extra > 0) {
                assert_file_is(copy, bytes + keep, extra);
                free(copy);
                remove_torn_copies();
        }
        for (int i = k; i < n; i++)
                assert_int_equal(append_ok(j, payload(i)), (uint64_t)i + 1);
        journal_close(j);
        assert_file_is(jpath, bytes, ends[n - 1]);
}

/* A crash in the middle of the write() of a record, leaving a prefix of
 * it (of every length for the middle record; ARG wraps around), after the
 * write() and after the fdatasync(). */
static void test_crash_in_append(void **state)
{
        size_t ends[3], len;
        char *bytes = make_journal(3, &len, ends), spec[64];

        (void)state;
        for (int k = 0; k < 3; k++) {
                size_t start = k > 0 ? ends[k - 1] : 0, n = ends[k] - start;

                for (size_t arg = 0; arg < n + 3; arg += k == 1 ? 1 : n / 3) {
                        size_t torn = 1 + arg % (n - 1);

                        write_file(jpath, bytes, start);
                        snprintf(spec, sizeof(spec), "journal-torn#1:%zu", arg);
                        crash_child(spec, child_append, k);
                        assert_file_is(jpath, bytes, start + torn);
                        check_recovers(bytes, ends, 3, k, torn);
                }
                write_file(jpath, bytes, start);
                crash_child("journal-written", child_append, k);
                check_recovers(bytes, ends, 3, k + 1, 0);
                write_file(jpath, bytes, start);
                crash_child("journal-synced", child_append, k);
                check_recovers(bytes, ends, 3, k + 1, 0);
        }
        free(bytes);
}

/* Crashes while a torn end is saved and cut: the journal keeps its valid
 * records, the next open saves the whole torn end and cuts it. */
static void test_crash_in_repair(void **state)
{
        size_t ends[3], len, tail = 40;
        char *bytes = make_journal(3, &len, ends), *copy;

        (void)state;
        write_file(jpath, bytes, ends[1] + tail);
        crash_child("journal-copy-partial", child_open, 0);
        assert_file_is(jpath, bytes, ends[1] + tail);
        assert_int_equal(torn_copies(&copy), 1);
        assert_file_is(copy, bytes + ends[1], tail / 2);
        free(copy);
        remove_torn_copies();

        crash_child("journal-copy-saved", child_open, 0);
        assert_file_is(jpath, bytes, ends[1] + tail);
        assert_int_equal(torn_copies(&copy), 1);
        assert_file_is(copy, bytes + ends[1], tail);
        free(copy);
        remove_torn_copies();
        check_recovers(bytes, ends, 3, 2, tail);

        write_file(jpath, bytes, ends[1] + tail);
        crash_child("journal-cut", child_open, 0);
        assert_file_is(jpath, bytes, ends[1]);
        assert_int_equal(torn_copies(&copy), 1);
        assert_file_is(copy, bytes + ends[1], tail);
        free(copy);
        remove_torn_copies();
        check_recovers(bytes, ends, 3, 2, 0);

        /* A new journal: dead before its name was made durable. */
        unlink(jpath);
        crash_child("journal-created", child_open, 0);
        assert_file_is(jpath, "", 0);
        check_recovers(bytes, ends, 3, 0, 0);
        free(bytes);
}

/* "NAME#N": the Nth pass; other points and other hits pass by. */
static void test_crash_hit_number(void **state)
{
        size_t ends[3], len;
        char *bytes = make_journal(3, &len, ends);

        (void)state;
        unlink(jpath);
        crash_child("journal-synced#3", child_append_three, 0);
        assert_file_is(jpath, bytes, len);
        free(bytes);
}

/* A malformed PROXREAP_CRASH_AT stops the process with a message. */
static void test_crash_spec_invalid(void **state)
{
        static const char *const bad[] = {
                "#1", "journal-torn#0", "journal-torn#", "journal-torn#x", "journal-torn:",
                "journal-torn:1x", "journal-torn#1:2:3", "journal-torn#99999999999999999999",
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                int status;
                pid_t pid;

                fflush(NULL);
                pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

                        dup2(null, STDERR_FILENO);
                        setenv("PROXREAP_CRASH_AT", bad[i], 1);
                        crash_point("journal-torn");
                        _exit(0);
                }
                assert_int_equal(waitpid(pid, &status, 0), pid);
                if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
                        fail_msg("'%s': status %#x, expected SIGABRT", bad[i], status);
        }
}
#else
static void test_crash_in_append(void **state)
{
        (void)state;
        skip(); /* crash points exist in test builds (TEST_HOOKS=1) only */
}

static void test_crash_in_repair(void **state)
{
        (void)state;
        skip();
}

static void test_crash_hit_number(void **state)
{
        (void)state;
        skip();
}

static void test_crash_spec_invalid(void **state)
{
        (void)state;
        skip();
}
#endif

/* --- damage --- */

/* Every single-bit error in the middle record is refused, with its line
 * and byte, by readers and writers alike, and the file stays as it is. */
static void test_bit_flip_in_middle_record(void **state)
{
        size_t ends[3], len;
        char *bytes = make_journal(3, &len, ends), *copy = malloc(len);
        char *place = tu_strdupf("%s:2 (byte %zu): ", jpath, ends[0]);

        (void)state;
        assert_non_null(copy);
        for (size_t i = ends[0]; i < ends[1]; i++)
                for (int bit = 0; bit < 8; bit++) {
                        memcpy(copy, bytes, len);
                        copy[i] ^= (char)(1 << bit);
                        write_file(jpath, copy, len);
                        for (int mode = JOURNAL_READ; mode <= JOURNAL_WRITE; mode++) {
                                char *err = open_fails((enum journal_mode)mode, -EBADMSG);

                                if (strncmp(err, place, strlen(place)) != 0)
                                        fail_msg("byte %zu bit %d: \"%s\"", i, bit, err);
                                assert_contains(err, "proxreap journal verify");
                                free(err);
                                assert_file_is(jpath, copy, len);
                        }
                        assert_int_equal(torn_copies(NULL), 0);
                }
        free(place);
        free(copy);
        free(bytes);
}

static void test_bad_last_line(void **state)
{
        size_t ends[3], len;
        char *bytes = make_journal(3, &len, ends), *err, *want;
        char stored[9];

        (void)state;
        /* A complete line that fails its CRC is damage, not a torn write. */
        memcpy(stored, bytes + ends[1] + 19, 8);
        stored[8] = '\0';
        bytes[len - 5] ^= 0x01;
        write_file(jpath, bytes, len);
        err = open_fails(JOURNAL_WRITE, -EBADMSG);
        want = tu_strdupf("%s:3 (byte %zu): CRC mismatch (stored %s, computed ", jpath, ends[1],
                          stored);
        assert_true(strncmp(err, want, strlen(want)) == 0);
        assert_contains(err, "will not repair it by itself: 'proxreap journal verify' lists the "
                             "damage, and 'proxreap journal repair' writes a clean journal");
        assert_file_is(jpath, bytes, len);
        assert_int_equal(torn_copies(NULL), 0);
        free(want);
        free(err);

        /* Garbage with a newline at the end. */
        bytes[len - 5] ^= 0x01;
        write_file(jpath, bytes, len);
        append_file(jpath, "garbage\n", 8);
        err = open_fails(JOURNAL_WRITE, -EBADMSG);
        want = tu_strdupf("%s:4 (byte %zu): not a record line", jpath, len);
        assert_true(strncmp(err, want, strlen(want)) == 0);
        free(want);
        free(err);
        assert_int_equal(torn_copies(NULL), 0);
        free(bytes);
}

/* Lines as given, one must be damage at line with problem. */
static void expect_damage(const char *text, unsigned line, const char *problem)
{
        char err[1024] = "", *want;
        size_t off = 0;

        for (unsigned l = 1; l < line; l++)
                off = (size_t)(strchr(text + off, '\n') - text) + 1;
        want = tu_strdupf("journal:%u (byte %zu): %s", line, off, problem);
        if (journal_scan_buffer(text, strlen(text), 1, 1, "journal", NULL, NULL, NULL, err,
                                sizeof(err)) != -EBADMSG ||
            strncmp(err, want, strlen(want)) != 0)
                fail_msg("\"%s\" does not start with \"%s\"", err, want);
        free(want);

        /* The same through a writer's open: refused, untouched. */
        write_file(jpath, text, strlen(text));
        free(open_fails(JOURNAL_WRITE, -EBADMSG));
        assert_file_is(jpath, text, strlen(text));
}

static void test_seq_damage(void **state)
{
        char *l1 = record_line(1, "{}"), *l2 = record_line(2, "{\"x\":1}");
        char *l2b = record_line(2, "{\"x\":2}"), *l4 = record_line(4, "{}");
        char *text;

        (void)state;
        text = tu_strdupf("%s%s%s", l1, l2, l4);
        expect_damage(text, 3, "seq 4 where 3 was expected");
        free(text);
        text = tu_strdupf("%s%s%s", l1, l2, l2b);
        expect_damage(text, 3, "seq 2 where 3 was expected");
        free(text);
        text = tu_strdupf("%s%s", l2, l1);
        expect_damage(text, 1, "seq 2 where 1 was expected");
        free(text);
        text = tu_replace(l1, "\"seq\":1", "\"seq\":01");
        expect_damage(text, 1, "not a record line");
        free(text);
        text = tu_replace(l1, "\"seq\":1", "\"seq\":0");
        expect_damage(text, 1, "not a record line");
        free(text);
        text = tu_replace(l1, "\"seq\":1", "\"seq\":184467440737095516160");
        expect_damage(text, 1, "not a record line");
        free(text);
        free(l1);
        free(l2);
        free(l2b);
        free(l4);
}

static void test_strict_line_format(void **state)
{
        char *good = record_line(1, "{\"a\":1}"), *text;
        char crc[9];

        (void)state;
        snprintf(crc, sizeof(crc), "%08x", crc32c(0, "{\"a\":1}", 7));
        /* The same record, spelled differently: all refused. */
        text = tu_replace(good, "\"seq\":1", "\"seq\": 1");
        expect_damage(text, 1, "not a record line");
        free(text);
        text = tu_strdupf("{\"seq\":1,\"crc32c\":\"%X\",\"rec\":{\"a\":1}}\n",
                          crc32c(0, "{\"a\":1}", 7));
        if (strcmp(text, good) != 0) /* the CRC has a letter in it */
                expect_damage(text, 1, "not a record line");
        free(text);
        text = tu_replace(good, crc, crc + 1);
        expect_damage(text, 1, "not a record line");
        free(text);
        text = tu_replace(good, "\"rec\"", "\"REC\"");
        expect_damage(text, 1, "not a record line");
        free(text);
        text = tu_replace(good, "}}\n", "}}\r\n");
        expect_damage(text, 1, "not a record line");
        free(text);
        text = tu_replace(good, "}}\n", "}} \n");
        expect_damage(text, 1, "not a record line");
        free(text);
        text = tu_strdupf("%s\n%s", good, good);
        expect_damage(text, 2, "not a record line");
        free(text);
        /* A correct CRC does not make a payload valid. */
        free(good);
        good = record_line(1, "[1,2]");
        expect_damage(good, 1, "the record is not a JSON object");
        free(good);
        good = record_line(1, "{\"a\":}");
        expect_damage(good, 1, "the record is not a JSON object: ");
        free(good);
        good = record_line(1, "{\"a\":1,\"a\":2}");
        expect_damage(good, 1, "the record is not a JSON object: ");
        free(good);
        good = record_line(1, "{\"a\":1} {}");
        expect_damage(good, 1, "the record is not a JSON object: ");
        free(good);
        text = tu_strdupf("{\"seq\":1,\"crc32c\":\"00000000\",\"rec\":}\n");
        expect_damage(text, 1, "the record is not a JSON object: ");
        free(text);
}

/* A payload of n bytes in a record with seq 1: {"p":"xxx..."} */
static json_t *payload_of_line_length(size_t line_len)
{
        /* {"seq":1,"crc32c":"xxxxxxxx","rec":{"p":"..."}}\n */
        size_t overhead = strlen("{\"seq\":1,\"crc32c\":\"xxxxxxxx\",\"rec\":{\"p\":\"\"}}\n");
        char *s = malloc(line_len - overhead + 1);
        json_t *p;

        assert_non_null(s);
        memset(s, 'x', line_len - overhead);
        s[line_len - overhead] = '\0';
        p = json_pack("{s:s}", "p", s);
        free(s);
        return p;
}

static void test_long_lines(void **state)
{
        json_t *too_long = payload_of_line_length(MAX_LINE + 1);
        struct journal *j = open_ok(JOURNAL_WRITE, NULL, NULL);
        char err[256] = "", *text, *fill;
        uint64_t seq = 77;
        struct stat st;

        (void)state;
        /* The longest line is accepted, one more byte refused before any write. */
        assert_int_equal(journal_append(j, too_long, NULL, NULL, &seq, err, sizeof(err)),
                         -EMSGSIZE);
        assert_int_equal(seq, 77);
        assert_contains(err, "too long");
        assert_int_equal(journal_failed(j), 0);
        assert_int_equal(append_ok(j, payload_of_line_length(MAX_LINE)), 1);
        journal_close(j);
        assert_int_equal(stat(jpath, &st), 0);
        assert_int_equal(st.st_size, MAX_LINE);
        journal_close(open_ok(JOURNAL_READ, NULL, NULL));

        /* Written by someone else, a line one byte too long is damage. */
        text = json_dumps(too_long, JSON_COMPACT);
        fill = record_line(1, text);
        assert_int_equal(strlen(fill), MAX_LINE + 1);
        expect_damage(fill, 1, "line longer than 262144 bytes");
        /* So is an end without newline that long; one byte less is torn. */
        write_file(jpath, fill, MAX_LINE);
        free(open_fails(JOURNAL_WRITE, -EBADMSG));
        assert_int_equal(torn_copies(NULL), 0);
        write_file(jpath, fill, MAX_LINE - 1);
        journal_close(open_ok(JOURNAL_WRITE, NULL, NULL));
        assert_int_equal(torn_copies(NULL), 1);
        free(fill);
        free(text);
        json_decref(too_long);
}

/* Journals larger than one read step: records straddle step boundaries. */
static void test_large_journal(void **state)
{
        struct journal *j = open_ok(JOURNAL_WRITE, NULL, NULL);
        struct seen *s = seen_new();
        struct journal_scan scan;
        size_t len = 0, line_len = MAX_LINE - 1000, off;
        char *bytes, *err, *place;

        (void)state;
        for (int i = 0; i < 13; i++) /* about 3.3 MiB */
                assert_int_equal(append_ok(j, payload_of_line_length(line_len - (size_t)i)),
                                 (uint64_t)i + 1);
        journal_close(j);
        append_file(jpath, "{\"seq\":14", 9);
        journal_close(open_ok(JOURNAL_WRITE, s, &scan));
        assert_int_equal(s->n, 13);
        assert_int_equal(s->seq[12], 13);
        assert_true(scan.torn);
        assert_int_equal(scan.torn_line, 14);
        assert_int_equal(scan.total_bytes, scan.valid_bytes + 9);
        bytes = tu_read_file(jpath, &len);
        assert_int_equal(len, scan.valid_bytes);

        /* Damage in the record that crosses the first 1 MiB boundary. */
        off = 0;
        for (int i = 0; i < 4; i++)
                off += line_len - (size_t)i;
        bytes[off + 5000] ^= 0x04;
        write_file(jpath, bytes, len);
        err = open_fails(JOURNAL_READ, -EBADMSG);
        place = tu_strdupf("%s:5 (byte %zu): CRC mismatch", jpath, off);
        assert_true(strncmp(err, place, strlen(place)) == 0);
        free(place);
        free(err);
        free(bytes);
        seen_free(s);
}

/* --- readers --- */

static void test_reader_never_writes(void **state)
{
        size_t ends[3], len;
        char *bytes = make_journal(3, &len, ends), *err;
        struct journal_scan scan;
        struct stat before, after;
        json_t *empty = json_object();
        struct journal *j;
        char msg[256];

        (void)state;
        write_file(jpath, bytes, len - 4); /* torn */
        assert_int_equal(stat(jpath, &before), 0);
        j = open_ok(JOURNAL_READ, NULL, &scan);
        assert_true(scan.torn);
        assert_int_equal(scan.torn_line, 3);
        assert_int_equal(journal_append(j, empty, NULL, NULL, NULL, msg, sizeof(msg)), -EROFS);
        assert_contains(msg, "read-only");
        assert_int_equal(journal_refresh(j, NULL, NULL, msg, sizeof(msg)), 0);
        journal_close(j);
        assert_int_equal(stat(jpath, &after), 0);
        assert_file_is(jpath, bytes, len - 4);
        assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
        assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
        assert_int_equal(before.st_ino, after.st_ino);
        assert_int_equal(torn_copies(NULL), 0);

        /* A damaged journal too. */
        bytes[ends[0] + 30] ^= 0x20;
        write_file(jpath, bytes, len);
        assert_int_equal(stat(jpath, &before), 0);
        err = open_fails(JOURNAL_READ, -EBADMSG);
        free(err);
        assert_int_equal(stat(jpath, &after), 0);
        assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
        assert_file_is(jpath, bytes, len);
        json_decref(empty);
        free(bytes);
}

static void test_refresh(void **state)
{
        struct journal *r = open_ok(JOURNAL_READ, NULL, NULL); /* before the file exists */
        struct seen *s = seen_new(), *t = seen_new();
        struct journal *a = open_ok(JOURNAL_WRITE, NULL, NULL), *b;
        char err[512] = "";
        uint64_t seq = 0;
        json_t *p;

        (void)state;
        for (int i = 0; i < 3; i++)
                append_ok(a, payload(i));
        assert_int_equal(journal_refresh(r, collect, s, err, sizeof(err)), 0);
        assert_seen_first(s, 3);
        assert_int_equal(journal_last_seq(r), 3);
        assert_int_equal(journal_refresh(r, collect, s, err, sizeof(err)), 0);
        assert_int_equal(s->n, 3);

        /* Another writer first receives a's records, then continues the seq. */
        b = open_ok(JOURNAL_WRITE, t, NULL);
        assert_int_equal(t->n, 3);
        append_ok(a, payload(3));
        p = payload(4);
        assert_int_equal(journal_append(b, p, collect, t, &seq, err, sizeof(err)), 0);
        json_decref(p);
        assert_int_equal(seq, 5);
        assert_seen_first(t, 4); /* its own record is not handed back */
        assert_int_equal(journal_refresh(r, collect, s, err, sizeof(err)), 0);
        assert_seen_first(s, 5);
        /* a's next append hands b's record to a's callback. */
        t->n = 0;
        json_array_clear(t->payloads);
        p = payload(5);
        assert_int_equal(journal_append(a, p, collect, t, &seq, err, sizeof(err)), 0);
        json_decref(p);
        assert_int_equal(seq, 6);
        assert_int_equal(t->n, 1);
        assert_int_equal(t->seq[0], 5);

        /* A torn end seen by a refresh stays in the file, unread. */
        append_file(jpath, "{\"seq\":7,\"crc32c\"", 17);
        assert_int_equal(journal_refresh(r, collect, s, err, sizeof(err)), 0);
        assert_int_equal(s->n, 6);
        assert_int_equal(journal_last_seq(r), 6);
        assert_int_equal(torn_copies(NULL), 0);
        /* The next append (LOCK_EX) cuts it, as an open would. */
        append_ok(b, payload(6));
        assert_int_equal(torn_copies(NULL), 1);
        assert_int_equal(journal_refresh(r, collect, s, err, sizeof(err)), 0);
        assert_seen_first(s, 7);

        journal_close(r);
        journal_close(a);
        journal_close(b);
        seen_free(s);
        seen_free(t);
}

static void test_callback_error(void **state)
{
        struct seen *s = seen_new();
        struct journal *j = NULL;
        size_t ends[4], len;
        char *bytes = make_journal(4, &len, ends);
        char err[256] = "";

        (void)state;
        s->stop_at = 3;
        assert_int_equal(journal_open(jpath, JOURNAL_READ, collect, s, &j, NULL, err, sizeof(err)),
                         -ECANCELED);
        assert_null(j);
        assert_int_equal(s->n, 2);

        /* A refresh stopped by its callback resumes at the refused record. */
        write_file(jpath, bytes, ends[0]);
        j = open_ok(JOURNAL_READ, NULL, NULL);
        write_file(jpath, bytes, len);
        s->n = 0;
        s->stop_at = 2;
        json_array_clear(s->payloads);
        assert_int_equal(journal_refresh(j, collect, s, err, sizeof(err)), -ECANCELED);
        assert_int_equal(s->n, 1);
        assert_int_equal(s->seq[0], 2);
        s->stop_at = 0;
        assert_int_equal(journal_refresh(j, collect, s, err, sizeof(err)), 0);
        assert_int_equal(s->n, 3);
        assert_int_equal(s->seq[1], 3);
        assert_int_equal(s->seq[2], 4);
        journal_close(j);
        free(bytes);
        seen_free(s);
}

/* --- writers --- */

static void test_append_rejects(void **state)
{
        struct journal *j = open_ok(JOURNAL_WRITE, NULL, NULL);
        json_t *a = json_array(), *s = json_string("x");
        char err[256] = "", *line;

        (void)state;
        assert_int_equal(journal_append(j, a, NULL, NULL, NULL, err, sizeof(err)), -EINVAL);
        assert_int_equal(journal_append(j, s, NULL, NULL, NULL, err, sizeof(err)), -EINVAL);
        assert_int_equal(journal_append(j, NULL, NULL, NULL, NULL, err, sizeof(err)), -EINVAL);
        assert_contains(err, "JSON object");
        assert_int_equal(journal_failed(j), 0);
        assert_int_equal(append_ok(j, json_object()), 1);
        journal_close(j);
        line = record_line(1, "{}");
        assert_file_is(jpath, line, strlen(line));
        free(line);
        json_decref(a);
        json_decref(s);
}

static void test_file_changed_under_writer(void **state)
{
        struct journal *j = open_ok(JOURNAL_WRITE, NULL, NULL);
        char err[256] = "", *other;
        json_t *p = json_object();
        struct stat st;

        (void)state;
        append_ok(j, payload(0));
        /* Shrunk behind our back: nothing is appended. */
        assert_int_equal(truncate(jpath, 0), 0);
        assert_int_equal(journal_append(j, p, NULL, NULL, NULL, err, sizeof(err)), -ESTALE);
        assert_contains(err, "shrank");
        assert_int_equal(journal_refresh(j, NULL, NULL, err, sizeof(err)), -ESTALE);
        assert_int_equal(stat(jpath, &st), 0);
        assert_int_equal(st.st_size, 0);
        assert_int_equal(journal_failed(j), 0);
        journal_close(j);

        /* Replaced behind our back: nothing goes to the unlinked file. */
        j = open_ok(JOURNAL_WRITE, NULL, NULL);
        other = tu_write_in(dir, "other", "", 0640);
        assert_int_equal(rename(other, jpath), 0);
        assert_int_equal(journal_append(j, p, NULL, NULL, NULL, err, sizeof(err)), -ESTALE);
        assert_contains(err, "replaced or removed");
        unlink(jpath);
        assert_int_equal(journal_append(j, p, NULL, NULL, NULL, err, sizeof(err)), -ESTALE);
        journal_close(j);
        free(other);
        json_decref(p);
}

/* Appends to a file whose size limit hits mid-record: the record is taken
 * back, the journal fails for good, and later appends write nothing. */
static void check_fails_at(size_t room, int want)
{
        struct rlimit old, lim;
        void (*old_handler)(int);
        size_t ends[2], len;
        char *bytes = make_journal(2, &len, ends);
        struct journal *j = open_ok(JOURNAL_WRITE, NULL, NULL);
        json_t *p = payload(2);
        char err[512] = "";
        uint64_t seq = 99;

        assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
        lim = old;
        lim.rlim_cur = len + room;
        old_handler = signal(SIGXFSZ, SIG_IGN);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        assert_int_equal(journal_append(j, p, NULL, NULL, &seq, err, sizeof(err)), want);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        signal(SIGXFSZ, old_handler);
        assert_int_equal(seq, 99);
        assert_contains(err, "has failed");
        assert_int_equal(journal_failed(j), want);
        assert_file_is(jpath, bytes, len);

        /* Room again: still failed, nothing written. */
        assert_int_equal(journal_append(j, p, NULL, NULL, &seq, err, sizeof(err)), want);
        assert_contains(err, "failed earlier");
        assert_file_is(jpath, bytes, len);
        journal_close(j);

        /* The file itself is sound: a new handle goes on. */
        j = open_ok(JOURNAL_WRITE, NULL, NULL);
        assert_int_equal(append_ok(j, p), 3);
        journal_close(j);
        free(bytes);
}

static void test_failed_short_write(void **state)
{
        (void)state;
        check_fails_at(10, -EIO);
}

static void test_failed_write(void **state)
{
        (void)state;
        check_fails_at(0, -EFBIG);
}

/* A device at the journal's path (here /dev/full, whose writes would fail
 * with ENOSPC) is no journal: refused before anything is written. Full
 * disks are check_fails_at()'s. */
static void test_device_is_refused(void **state)
{
        struct journal *j = NULL;
        char err[512] = "";

        (void)state;
        assert_int_equal(journal_open("/dev/full", JOURNAL_WRITE, NULL, NULL, &j, NULL, err,
                                      sizeof(err)),
                         -EPERM);
        assert_null(j);
        assert_contains(err, "'/dev/full' is not a regular file: refusing to use it");
}

/* --- concurrency --- */

#define WRITERS 4
#define PER_WRITER 60

struct child_check {
        uint64_t next; /* the seq the next record must carry */
        bool ok;
};

static int child_sees(void *userdata, uint64_t seq, unsigned line, json_t *payload)
{
        struct child_check *c = userdata;

        if (seq != c->next || line != seq || !json_is_object(payload))
                c->ok = false;
        c->next = seq + 1;
        return 0;
}

/* In a child process: no cmocka, only an exit status. */
static int child_writer(int id, int go)
{
        struct child_check c = { 1, true };
        struct journal *j;
        char byte;

        if (journal_open(jpath, JOURNAL_WRITE, child_sees, &c, &j, NULL, NULL, 0) < 0)
                return 2;
        if (read(go, &byte, 1) < 0) /* all start together: EOF when the parent closes */
                return 3;
        for (int i = 0; i < PER_WRITER; i++) {
                json_t *p = json_pack("{s:i, s:i}", "writer", id, "i", i);
                uint64_t seq = 0;

                if (!p || journal_append(j, p, child_sees, &c, &seq, NULL, 0) < 0 || seq != c.next)
                        return 4;
                c.next = seq + 1;
                json_decref(p);
        }
        journal_close(j);
        return c.ok ? 0 : 5;
}

static void test_concurrent_writers(void **state)
{
        int next_i[WRITERS] = { 0 }, go[2];
        struct journal_scan scan;
        struct seen *s;
        pid_t pids[WRITERS];

        (void)state;
        assert_int_equal(pipe(go), 0);
        for (int w = 0; w < WRITERS; w++) {
                pids[w] = fork();
                assert_true(pids[w] >= 0);
                if (pids[w] == 0) {
                        close(go[1]);
                        _exit(child_writer(w, go[0]));
                }
        }
        close(go[0]);
        close(go[1]);
        for (int w = 0; w < WRITERS; w++) {
                int status;

                assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        fail_msg("writer %d: status %#x", w, status);
        }

        s = seen_new(); /* not before fork(): the children would leak it */
        journal_close(open_ok(JOURNAL_READ, s, &scan));
        assert_int_equal(scan.records, WRITERS * PER_WRITER);
        assert_false(scan.torn);
        for (size_t k = 0; k < s->n; k++) {
                json_t *p = json_array_get(s->payloads, k);
                int w = (int)json_integer_value(json_object_get(p, "writer"));

                assert_int_equal(s->seq[k], k + 1);
                assert_true(w >= 0 && w < WRITERS);
                /* each writer's records, in its order */
                assert_int_equal(json_integer_value(json_object_get(p, "i")), next_i[w]);
                next_i[w]++;
        }
        for (int w = 0; w < WRITERS; w++)
                assert_int_equal(next_i[w], PER_WRITER);
        seen_free(s);
}

/* root writing into the daemon's directory (proxreap restore before the
 * daemon ever ran) leaves a journal the daemon's user still owns. */
static void test_root_keeps_directory_owner(void **state)
{
        struct journal *j;
        struct stat st;

        (void)state;
        if (geteuid() != 0)
                skip(); /* only root can give files away */
        assert_int_equal(chown(dir, 65534, 65534), 0);
        j = open_ok(JOURNAL_WRITE, NULL, NULL);
        append_ok(j, json_pack("{s:s}", "op", "R-000001"));
        journal_close(j);
        assert_int_equal(stat(jpath, &st), 0);
        assert_int_equal(st.st_uid, 65534);
        assert_int_equal(st.st_gid, 65534);
        assert_int_equal(st.st_mode & 0777, 0640);
        /* A journal that exists is never given away: only one root just
         * created (statedir.h). A reader changes nothing either. */
        assert_int_equal(chown(jpath, 0, 0), 0);
        journal_close(open_ok(JOURNAL_WRITE, NULL, NULL));
        journal_close(open_ok(JOURNAL_READ, NULL, NULL));
        assert_int_equal(stat(jpath, &st), 0);
        assert_int_equal(st.st_uid, 0);
}

/* The state directory belongs to the service user: whatever runs as that
 * user can plant links there. Root's proxreap never follows them, never
 * writes through them, never gives their targets away or cuts them. */
static void test_planted_links_are_refused(void **state)
{
        char target[PATH_MAX], err[512] = "";
        struct journal *j = NULL;
        struct stat st;
        int fd;

        (void)state;
        snprintf(target, sizeof(target), "%s/shadow", dir);
        fd = open(target, O_WRONLY | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        /* Valid records, no trailing newline: once, cut_tail truncated it. */
        assert_int_equal(write(fd, "root:x:0:0\nsecret", 18), 18);
        close(fd);
        assert_int_equal(symlink(target, jpath), 0);
        for (int mode = 0; mode < 2; mode++) {
                int r = journal_open(jpath, mode ? JOURNAL_WRITE : JOURNAL_READ, NULL, NULL, &j,
                                     NULL, err, sizeof(err));

                assert_int_equal(r, -ELOOP);
                assert_contains(err, "symbolic link: refusing to follow it");
        }
        assert_int_equal(stat(target, &st), 0);
        assert_int_equal(st.st_size, 18);
        assert_int_equal(st.st_uid, 0);
        /* A hard link (a second name) is refused too. */
        assert_int_equal(unlink(jpath), 0);
        assert_int_equal(link(target, jpath), 0);
        assert_int_equal(journal_open(jpath, JOURNAL_WRITE, NULL, NULL, &j, NULL, err, sizeof(err)),
                         -EPERM);
        assert_contains(err, "has 2 names");
        assert_int_equal(unlink(jpath), 0);
        /* Neither is a directory, a FIFO, or a file of another user. */
        assert_int_equal(mkfifo(jpath, 0600), 0);
        assert_int_equal(journal_open(jpath, JOURNAL_READ, NULL, NULL, &j, NULL, err, sizeof(err)),
                         -EPERM);
        assert_contains(err, "is not a regular file");
        assert_int_equal(unlink(jpath), 0);
        if (geteuid() == 0) {
                fd = open(jpath, O_WRONLY | O_CREAT | O_EXCL, 0600);
                assert_true(fd >= 0);
                assert_int_equal(fchown(fd, 12345, 12345), 0);
                close(fd);
                assert_int_equal(journal_open(jpath, JOURNAL_READ, NULL, NULL, &j, NULL, err,
                                              sizeof(err)),
                                 -EPERM);
                assert_contains(err, "belongs to uid 12345");
                assert_int_equal(unlink(jpath), 0);
        }
        assert_int_equal(unlink(target), 0);
}

/* The way to the journal: a link another user made in a directory of
 * theirs is not followed (it could lead root anywhere); root's own links
 * are. */
static void test_links_on_the_way_are_followed_only_when_trusted(void **state)
{
        char user_dir[1024], root_dir[1024], via[1100], path[1200];
        char err[512] = "";
        struct journal *j = NULL;

        (void)state;
        if (geteuid() != 0)
                skip();
        snprintf(user_dir, sizeof(user_dir), "%s/state", dir);
        snprintf(root_dir, sizeof(root_dir), "%s/root-only", dir);
        snprintf(via, sizeof(via), "%s/sub", user_dir);
        snprintf(path, sizeof(path), "%s/journal", via);
        assert_int_equal(mkdir(user_dir, 0750), 0);
        assert_int_equal(mkdir(root_dir, 0700), 0);
        assert_int_equal(symlink(root_dir, via), 0);
        /* made by the user, in the user's directory: refused */
        assert_int_equal(lchown(via, 65534, 65534), 0);
        assert_int_equal(chown(user_dir, 65534, 65534), 0);
        assert_int_equal(journal_open(path, JOURNAL_WRITE, NULL, NULL, &j, NULL, err, sizeof(err)),
                         -EPERM);
        assert_contains(err, "passes a symbolic link in a directory of another user");
        assert_int_equal(journal_open(path, JOURNAL_READ, NULL, NULL, &j, NULL, err, sizeof(err)),
                         -EPERM);
        snprintf(path, sizeof(path), "%s/journal", root_dir);
        assert_int_equal(access(path, F_OK), -1);
        /* root's link in root's directory: followed */
        assert_int_equal(lchown(via, 0, 0), 0);
        assert_int_equal(chown(user_dir, 0, 0), 0);
        snprintf(path, sizeof(path), "%s/journal", via);
        assert_int_equal(journal_open(path, JOURNAL_WRITE, NULL, NULL, &j, NULL, err, sizeof(err)), 0);
        journal_close(j);
        snprintf(path, sizeof(path), "%s/journal", root_dir);
        assert_int_equal(access(path, F_OK), 0);
}

/* root's CLI never cuts the daemon's journal: a torn end is the owner's to
 * cut; reading and appending after it are refused with what to do. */
static void test_root_does_not_cut_the_daemons_journal(void **state)
{
        char err[512] = "";
        struct journal *j;

        (void)state;
        if (geteuid() != 0)
                skip();
        j = open_ok(JOURNAL_WRITE, NULL, NULL);
        append_ok(j, json_pack("{s:s}", "op", "R-000001"));
        journal_close(j);
        append_file(jpath, "{\"seq\":2,\"crc", 13);
        assert_int_equal(chown(jpath, 65534, 65534), 0);
        assert_int_equal(chown(dir, 65534, 65534), 0);
        assert_int_equal(journal_open(jpath, JOURNAL_WRITE, NULL, NULL, &j, NULL, err, sizeof(err)),
                         -EPERM);
        assert_contains(err, "ends in a torn record (line 2), which only its owner may cut");
        assert_int_equal(torn_copies(NULL), 0);
        /* A reader reads the intact records and leaves the file alone. */
        journal_close(open_ok(JOURNAL_READ, NULL, NULL));
}


/* --- damage never blocks what is intact --- */

/* A flipped byte in record 2 of 5: skipped and noted; the others read,
 * and an append follows the highest seq. A line removed by hand: a gap,
 * noted, every record still read. */
static void test_skip_damage(void **state)
{
        size_t len, ends[5], afterlen;
        char *bytes = make_journal(5, &len, ends), *after;
        struct journal_scan scan;
        struct seen *s = seen_new();
        struct journal *j;

        (void)state;
        bytes[ends[0] + 40] ^= 0x01;
        write_file(jpath, bytes, len);
        free(open_fails(JOURNAL_READ, -EBADMSG)); /* without the flag: as before */
        j = open_ok(JOURNAL_WRITE | JOURNAL_SKIP_DAMAGE, s, &scan);
        assert_int_equal(s->n, 4);
        assert_int_equal(s->seq[0], 1);
        assert_int_equal(s->seq[1], 3);
        assert_int_equal(s->line[1], 3);
        assert_int_equal(scan.damaged, 1);
        assert_int_equal(journal_damage(j)->lines[0], 2);
        assert_contains(journal_damage(j)->first, ":2 (byte ");
        assert_contains(journal_damage(j)->first, "CRC mismatch");
        assert_int_equal(append_ok(j, payload(9)), 6);
        journal_close(j);
        seen_free(s);
        /* The damaged line itself is never touched: the append went after it. */
        after = tu_read_file(jpath, &afterlen);
        assert_true(afterlen > len);
        assert_memory_equal(after, bytes, len);
        free(after);
        free(bytes);
}

static void test_skip_gap(void **state)
{
        size_t len, ends[4];
        char *bytes = make_journal(4, &len, ends), *cut;
        struct seen *s = seen_new();
        struct journal_scan scan;
        struct journal *j;
        char lines[64];

        (void)state;
        cut = malloc(len);
        assert_non_null(cut);
        memcpy(cut, bytes, ends[0]);
        memcpy(cut + ends[0], bytes + ends[1], len - ends[1]);
        write_file(jpath, cut, len - (ends[1] - ends[0]));
        free(open_fails(JOURNAL_READ, -EBADMSG));
        j = open_ok(JOURNAL_READ | JOURNAL_SKIP_DAMAGE, s, &scan);
        assert_int_equal(s->n, 3);
        assert_int_equal(scan.damaged, 1);
        assert_contains(journal_damage(j)->first, "seq 3 where 2 was expected: records are missing");
        journal_damage_lines(journal_damage(j), lines, sizeof(lines));
        assert_string_equal(lines, "2");
        journal_close(j);
        seen_free(s);
        free(cut);
        free(bytes);
}

/* repair: the intact records, renumbered, in place of the damaged
 * journal; the original kept byte for byte; nothing done without damage,
 * nor while a daemon holds the journal. */
static void test_repair(void **state)
{
        size_t len, ends[5], copylen, cleanlen;
        char *bytes = make_journal(5, &len, ends), *copy, *clean, err[512] = "";
        struct journal_repair rep;
        struct seen *s = seen_new();
        struct journal *j;
        int claim = -1;

        (void)state;
        assert_int_equal(journal_repair(jpath, NULL, NULL, &rep, err, sizeof(err)), 0);
        assert_string_equal(rep.copy, "");
        assert_int_equal(rep.kept, 5);
        bytes[ends[2] + 40] ^= 0x01; /* record 4 */
        write_file(jpath, bytes, len);
        assert_int_equal(journal_claim(jpath, &claim, err, sizeof(err)), 0);
        assert_int_equal(journal_repair(jpath, NULL, NULL, &rep, err, sizeof(err)), -EBUSY);
        close(claim);
        assert_int_equal(journal_repair(jpath, NULL, NULL, &rep, err, sizeof(err)), 0);
        assert_int_equal(rep.kept, 4);
        assert_int_equal(rep.damaged, 1);
        assert_false(rep.torn);
        assert_contains(rep.copy, "/journal.damaged-");
        copy = tu_read_file(rep.copy, &copylen);
        assert_int_equal(copylen, len);
        assert_memory_equal(copy, bytes, len);
        /* Strictly valid now: seq 1..4, the payloads of records 1, 2, 3, 5. */
        j = open_ok(JOURNAL_READ, s, NULL);
        assert_int_equal(s->n, 4);
        assert_int_equal(s->seq[3], 4);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(s->payloads, 3), "vmid")),
                         104);
        journal_close(j);
        clean = tu_read_file(jpath, &cleanlen);
        assert_int_equal(cleanlen, len - (ends[3] - ends[2]));
        unlink(rep.copy);
        free(clean);
        free(copy);
        free(bytes);
        seen_free(s);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_crc32c_vectors),
                cmocka_unit_test(test_crc32c_chains),
                T(test_missing_and_empty),
                T(test_append_and_reopen),
                cmocka_unit_test(test_scan_buffer),
                T(test_torn_at_every_length),
                T(test_nul_padding),
                T(test_torn_copy_names),
                T(test_torn_warning_logged),
                T(test_bit_flip_in_middle_record),
                T(test_bad_last_line),
                T(test_skip_damage),
                T(test_skip_gap),
                T(test_repair),
                T(test_garbled_last_record),
                T(test_crash_in_append),
                T(test_crash_in_repair),
                T(test_crash_hit_number),
                T(test_crash_spec_invalid),
                T(test_seq_damage),
                T(test_strict_line_format),
                T(test_long_lines),
                T(test_large_journal),
                T(test_reader_never_writes),
                T(test_refresh),
                T(test_callback_error),
                T(test_append_rejects),
                T(test_file_changed_under_writer),
                T(test_failed_short_write),
                T(test_failed_write),
                T(test_device_is_refused),
                T(test_concurrent_writers),
                T(test_root_keeps_directory_owner),
                T(test_planted_links_are_refused),
                T(test_root_does_not_cut_the_daemons_journal),
                T(test_links_on_the_way_are_followed_only_when_trusted),
        };

        umask(022);
        /* The torn-tail warnings would flood the output: one test checks them. */
        log_setup("test_journal", LOG_TARGET_STDERR, LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
