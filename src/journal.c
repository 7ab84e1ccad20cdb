/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "statedir.h"
#include "util.h"

#define MAX_LINE ((size_t)JOURNAL_MAX_LINE)

/* Bytes read per scanning step: several of the longest lines, so that a
 * step starting at a line boundary always holds a whole valid line. */
#define SCAN_CHUNK (4 * (uint64_t)MAX_LINE)

#define PAYLOAD_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

/* --- CRC32C (Castagnoli, reflected, as in iSCSI and ext4) --- */

static uint32_t crc32c_table[256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_init(void)
{
        for (uint32_t i = 0; i < 256; i++) {
                uint32_t c = i;

                for (int k = 0; k < 8; k++)
                        c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
                crc32c_table[i] = c;
        }
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
        const unsigned char *p = buf;

        pthread_once(&crc32c_once, crc32c_init);
        crc = ~crc;
        while (len-- > 0)
                crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

/* --- errors --- */

static void set_err(char *err, size_t errsz, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errsz, const char *fmt, ...)
{
        va_list ap;

        if (!err || errsz == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errsz, fmt, ap);
        va_end(ap);
}

/* --- reading: the pure line scanner --- */

/* Where a scan stands: just after the last valid record. */
struct cursor {
        uint64_t offset;
        uint64_t seq; /* its seq, or first seq - 1 */
        unsigned line; /* its line, or first line - 1 */
        uint64_t records; /* valid records passed so far */
        bool skipped; /* a damaged line was skipped since the last record */
};

struct scan_ctx {
        const char *name;
        journal_record_fn fn;
        void *userdata;
        char *err;
        size_t errsz;
        bool advice; /* tell the operator what to do (handles, not the pure scan) */
        struct journal_damage *skip; /* NULL: damage fails the scan; else noted here, skipped */
};

/* Damage is named by place (file:line, byte offset of the line) and problem. */
static int damage(const struct scan_ctx *ctx, const struct cursor *c, const char *problem)
{
        if (ctx->skip) {
                struct journal_damage *d = ctx->skip;

                if (d->count < JOURNAL_DAMAGE_MAX)
                        d->lines[d->count] = c->line + 1;
                if (d->count == 0)
                        snprintf(d->first, sizeof(d->first), "%s:%u (byte %llu): %s", ctx->name,
                                 c->line + 1, (unsigned long long)c->offset, problem);
                d->count++;
                return 0;
        }
        static const char advice[] =
                "; this is not a torn write a crash can leave, so proxreap will not repair it "
                "by itself: 'proxreap journal verify' lists the damage, and 'proxreap journal "
                "repair' writes a clean journal of every intact record, keeping the original";

        set_err(ctx->err, ctx->errsz, "%s:%u (byte %llu): %s%s", ctx->name, c->line + 1,
                (unsigned long long)c->offset, problem, ctx->advice ? advice : "");
        return -EBADMSG;
}

static bool skip_literal(const char **p, const char *end, const char *lit)
{
        size_t n = strlen(lit);

        if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
                return false;
        *p += n;
        return true;
}

/* Decimal, no sign, no leading zero, no overflow. */
static bool parse_seq(const char **p, const char *end, uint64_t *ret)
{
        const char *s = *p;
        uint64_t v = 0;

        if (s == end || *s < '1' || *s > '9')
                return false;
        for (; s < end && *s >= '0' && *s <= '9'; s++) {
                if (v > (UINT64_MAX - 9) / 10)
                        return false;
                v = v * 10 + (uint64_t)(*s - '0');
        }
        *p = s;
        *ret = v;
        return true;
}

/* Exactly 8 lowercase hex digits. */
static bool parse_crc(const char **p, const char *end, uint32_t *ret)
{
        uint32_t v = 0;

        if (end - *p < 8)
                return false;
        for (int i = 0; i < 8; i++) {
                char c = (*p)[i];

                if (c >= '0' && c <= '9')
                        v = v << 4 | (uint32_t)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        v = v << 4 | (uint32_t)(c - 'a' + 10);
                else
                        return false;
        }
        *p += 8;
        *ret = v;
        return true;
}

/* One line without its newline. On -EBADMSG, problem says what is wrong. */
static int parse_line(const char *line, size_t n, uint64_t want_seq, bool gaps,
                      json_t **ret_payload, uint64_t *ret_seq, char *problem, size_t psz)
{
        const char *p = line, *end = line + n;
        uint32_t stored, computed;
        json_error_t jerr;
        json_t *payload;
        uint64_t seq;

        if (!skip_literal(&p, end, "{\"seq\":") || !parse_seq(&p, end, &seq) ||
            !skip_literal(&p, end, ",\"crc32c\":\"") || !parse_crc(&p, end, &stored) ||
            !skip_literal(&p, end, "\",\"rec\":") || p == end || end[-1] != '}') {
                snprintf(problem, psz,
                         "not a record line (expected "
                         "{\"seq\":N,\"crc32c\":\"xxxxxxxx\",\"rec\":{...}})");
                return -EBADMSG;
        }
        end--; /* the payload lies between the prefix and the final '}' */
        /* Skipping damage, a gap is the damaged lines' records missing;
         * a seq going back is damage of its own. */
        if (gaps ? seq < want_seq : seq != want_seq) {
                snprintf(problem, psz, "seq %llu where %llu was expected", (unsigned long long)seq,
                         (unsigned long long)want_seq);
                return -EBADMSG;
        }
        computed = crc32c(0, p, (size_t)(end - p));
        if (computed != stored) {
                snprintf(problem, psz, "CRC mismatch (stored %08x, computed %08x)", stored,
                         computed);
                return -EBADMSG;
        }
        /* JSON_ALLOW_NUL: the writer's json_dumps() may emit \u0000. */
        payload = json_loadb(p, (size_t)(end - p), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (!payload && json_error_code(&jerr) == json_error_out_of_memory)
                return -ENOMEM;
        if (!json_is_object(payload)) {
                snprintf(problem, psz, "the record is not a JSON object%s%s", payload ? "" : ": ",
                         payload ? "" : jerr.text);
                json_decref(payload);
                return -EBADMSG;
        }
        *ret_payload = payload;
        *ret_seq = seq;
        return 0;
}

/* Validates and delivers the complete lines of buf, which starts at
 * c->offset; c moves past each record delivered. An incomplete last line
 * is left for the caller: torn, or continued in the next chunk. */
static int scan_lines(const char *buf, size_t len, const struct scan_ctx *ctx, struct cursor *c)
{
        const char *p = buf, *end = buf + len;

        while (p < end) {
                size_t avail = (size_t)(end - p) < MAX_LINE ? (size_t)(end - p) : MAX_LINE;
                const char *nl = memchr(p, '\n', avail);
                json_t *payload = NULL;
                char problem[256];
                uint64_t seq = 0;
                int r;

                if (!nl && avail < MAX_LINE)
                        return 0;
                if (!nl) {
                        snprintf(problem, sizeof(problem), "line longer than %zu bytes", MAX_LINE);
                        r = damage(ctx, c, problem);
                        /* Skipped to its end, if this buffer holds it. */
                        nl = r == 0 ? memchr(p + MAX_LINE, '\n', (size_t)(end - p) - MAX_LINE)
                                    : NULL;
                        if (r < 0 || !nl)
                                return r;
                        c->skipped = true;
                        c->line++;
                        c->offset += (uint64_t)(nl + 1 - p);
                        p = nl + 1;
                        continue;
                }
                r = parse_line(p, (size_t)(nl - p), c->seq + 1, ctx->skip != NULL, &payload, &seq,
                               problem, sizeof(problem));
                if (r == -EBADMSG) {
                        r = damage(ctx, c, problem);
                        c->skipped = true;
                } else if (r == 0) {
                        /* Lines gone (removed by hand): their records are missing
                         * (after a damaged line, its record is the one missing). */
                        if (seq > c->seq + 1 && !c->skipped) {
                                snprintf(problem, sizeof(problem),
                                         "seq %llu where %llu was expected: records are missing",
                                         (unsigned long long)seq,
                                         (unsigned long long)c->seq + 1);
                                (void)damage(ctx, c, problem);
                        }
                        r = ctx->fn ? ctx->fn(ctx->userdata, seq, c->line + 1, payload) : 0;
                        json_decref(payload);
                        if (r == 0) {
                                c->seq = seq;
                                c->records++;
                                c->skipped = false;
                        }
                }
                if (r < 0)
                        return r;
                c->line++;
                c->offset += (uint64_t)(nl + 1 - p);
                p = nl + 1;
        }
        return 0;
}

int journal_scan_buffer(const char *buf, size_t len, uint64_t first_seq, unsigned first_line,
                        const char *name, journal_record_fn fn, void *userdata,
                        struct journal_scan *ret, char *err, size_t errsz)
{
        const struct scan_ctx ctx = { name ? name : "journal", fn, userdata, err, errsz, false,
                                      NULL };
        struct cursor c = { 0, first_seq - 1, first_line - 1, 0, false };
        int r;

        if (first_seq == 0 || first_line == 0)
                return -EINVAL;
        r = scan_lines(buf, len, &ctx, &c);
        if (r < 0)
                return r;
        if (ret)
                *ret = (struct journal_scan){
                        .records = c.records,
                        .last_seq = c.records > 0 ? c.seq : 0,
                        .valid_bytes = c.offset,
                        .total_bytes = len,
                        .torn = c.offset < len,
                        .torn_line = c.offset < len ? c.line + 1 : 0,
                };
        return 0;
}

/* --- the file --- */

struct journal {
        char *path;
        struct statedir_file file; /* its fd is -1 while a reader's journal does not exist */
        int fd; /* file.fd */
        enum journal_mode mode;
        struct cursor pos; /* the records this handle has read */
        int failed; /* negative errno of the write or sync that failed */
        bool skip; /* JOURNAL_SKIP_DAMAGE */
        struct journal_damage damage; /* what was skipped */
        unsigned held; /* journal_hold() depth: LOCK_EX is ours until the last release */
};

/* Every holder keeps the lock for one scan or one append: a lock that
 * stays taken this long is held by a process that is stuck, or by one that
 * means to block us (the journal's owner is the daemon's user). */
#define LOCK_WAIT_USEC (30 * USEC_PER_SEC)
#define LOCK_POLL_USEC (20 * USEC_PER_MSEC)
#define LOCK_NOTICE_USEC (100 * LOCK_POLL_USEC) /* say so after 2 s */

static int lock_journal(const struct journal *j, int op, char *err, size_t errsz)
{
        const struct timespec pause = { 0, (long)(LOCK_POLL_USEC * 1000) };

        for (uint64_t waited = 0;; waited += LOCK_POLL_USEC) {
                int r;

                if (flock(j->fd, op | LOCK_NB) == 0)
                        return 0;
                r = -errno;
                if (r == -EWOULDBLOCK && waited >= LOCK_WAIT_USEC) {
                        set_err(err, errsz,
                                "journal '%s' stays locked by another process (%u s): is a proxreap or proxreapd stuck?",
                                j->path, (unsigned)(LOCK_WAIT_USEC / USEC_PER_SEC));
                        return -ETIMEDOUT;
                }
                if (r != -EWOULDBLOCK && r != -EINTR) {
                        set_err(err, errsz, "cannot lock journal '%s': %s", j->path, strerror(-r));
                        return r;
                }
                if (waited == LOCK_NOTICE_USEC)
                        log_warning("journal '%s' is locked by another process: waiting up to %u s",
                                    j->path, (unsigned)(LOCK_WAIT_USEC / USEC_PER_SEC));
                (void)nanosleep(&pause, NULL);
        }
}

static void unlock_fd(int fd)
{
        /* Closing the file would drop the lock anyway; this cannot fail on a valid fd. */
        (void)flock(fd, LOCK_UN);
}

/* Reads exactly n bytes at off. We hold the lock, so the bytes can only be
 * missing if someone cut the file without it. */
static int read_at(int fd, char *buf, size_t n, uint64_t off)
{
        while (n > 0) {
                ssize_t r = pread(fd, buf, n, (off_t)off);

                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r == 0)
                        return -ESTALE;
                buf += r;
                n -= (size_t)r;
                off += (uint64_t)r;
        }
        return 0;
}

/* Writes bytes durably to a new "<name>.torn-<UTC time>[-N]" beside the
 * journal and puts its path in copy. */
/* A copy of bytes beside the journal: "<name>.<what>-<UTC stamp>[-N]",
 * created exclusively in dirfd and synced; its path in copy. */
static int save_copy(int dirfd, const char *jname, const char *jpath, const char *what,
                     const char *bytes, size_t n, char *copy, size_t copysz)
{
        time_t t = (time_t)(now_realtime_usec() / USEC_PER_SEC);
        char stamp[32], name[NAME_MAX + 1];
        struct tm tm;
        ssize_t w;
        int fd = -1, r = 0;

        if (!gmtime_r(&t, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0)
                return -EINVAL;
        for (unsigned i = 0; fd < 0; i++) {
                char suffix[16] = "";

                if (i > 0)
                        snprintf(suffix, sizeof(suffix), "-%u", i);
                if (snprintf(name, sizeof(name), "%s.%s-%s%s", jname, what, stamp, suffix) >=
                            (int)sizeof(name) ||
                    snprintf(copy, copysz, "%s.%s-%s%s", jpath, what, stamp, suffix) >=
                            (int)copysz)
                        return -ENAMETOOLONG;
                fd = statedir_create(dirfd, name, 0640);
                if (fd < 0 && (fd != -EEXIST || i >= 1000))
                        return fd;
        }
        /* Test builds: a crash while the copy is written leaves it in part;
         * the journal is still whole, and the next open copies again. */
        if (crash_armed("journal-copy-partial", NULL)) {
                (void)!write(fd, bytes, n / 2);
                crash_now();
        }
        w = write(fd, bytes, n);
        if (w < 0 || fsync(fd) < 0)
                r = -errno;
        else if ((size_t)w != n)
                r = -EIO;
        close(fd);
        if (r == 0 && fsync(dirfd) < 0)
                r = -errno;
        if (r < 0)
                (void)unlinkat(dirfd, name, 0);
        return r;
}

static int save_torn(const struct journal *j, const char *bytes, size_t n, char *copy,
                     size_t copysz)
{
        return save_copy(j->file.dirfd, j->file.name, j->path, "torn", bytes, n, copy, copysz);
}

/* Cuts the torn end (tail, n bytes after the valid records) off the file,
 * after saving a copy. The caller holds LOCK_EX. */
static int cut_tail(struct journal *j, const char *tail, size_t n, char *err, size_t errsz)
{
        char copy[PATH_MAX];
        int r;

        /* Root's CLI on the daemon's journal: cutting is the owner's job. */
        if (!statedir_may_truncate(&j->file)) {
                set_err(err, errsz,
                        "journal '%s' ends in a torn record (line %u), which only its owner may cut: start proxreapd, which cuts it keeping a copy",
                        j->path, j->pos.line + 1);
                return -EPERM;
        }
        r = save_torn(j, tail, n, copy, sizeof(copy));
        if (r < 0) {
                set_err(err, errsz,
                        "cannot save the torn end of journal '%s' before cutting it: %s", j->path,
                        strerror(-r));
                return r;
        }
        crash_point("journal-copy-saved");
        /* Safe to cut: the bytes are saved, they hold no newline so no record
         * follows them, and LOCK_EX keeps every other writer out. */
        if (ftruncate(j->fd, (off_t)j->pos.offset) < 0 || fsync(j->fd) < 0) {
                r = -errno;
                set_err(err, errsz, "cannot cut the torn end of journal '%s': %s", j->path,
                        strerror(-r));
                j->failed = r;
                return r;
        }
        crash_point("journal-cut");
        log_warning("journal '%s': cut a torn last record of %zu bytes at line %u (byte %llu), "
                    "saved in '%s'",
                    j->path, n, j->pos.line + 1, (unsigned long long)j->pos.offset, copy);
        return 0;
}

/* Reads and delivers what lies between the last record this handle read
 * and size. A torn end is reported in scan and, when cut (the caller holds
 * LOCK_EX), cut off. */
static int catch_up(struct journal *j, uint64_t size, bool cut, const struct scan_ctx *ctx,
                    struct journal_scan *scan)
{
        uint64_t left = size - j->pos.offset;
        char *buf = malloc(left < SCAN_CHUNK ? left : SCAN_CHUNK);
        int r = 0;

        if (!buf)
                return -ENOMEM;
        while (r == 0 && j->pos.offset < size) {
                uint64_t start = j->pos.offset;
                size_t n = (size_t)(size - start < SCAN_CHUNK ? size - start : SCAN_CHUNK);

                r = read_at(j->fd, buf, n, start);
                if (r < 0)
                        set_err(ctx->err, ctx->errsz, "cannot read journal '%s': %s", j->path,
                                r == -ESTALE ? "it shrank while locked" : strerror(-r));
                else
                        r = scan_lines(buf, n, ctx, &j->pos);
                if (r == 0 && start + n == size && j->pos.offset < size) {
                        /* What follows the last newline: a torn end. */
                        scan->torn = true;
                        scan->torn_line = j->pos.line + 1;
                        if (cut)
                                r = cut_tail(j, buf + (j->pos.offset - start),
                                             (size_t)(size - j->pos.offset), ctx->err, ctx->errsz);
                        break;
                }
        }
        free(buf);
        return r;
}

static int file_size(const struct journal *j, struct stat *st, char *err, size_t errsz)
{
        if (fstat(j->fd, st) < 0) {
                int r = -errno;

                set_err(err, errsz, "cannot stat journal '%s': %s", j->path, strerror(-r));
                return r;
        }
        return 0;
}

/* With the lock held: reads what others appended (a shrunk file means
 * someone rewrote what we already read). */
static int follow(struct journal *j, const struct stat *st, bool cut, const struct scan_ctx *ctx,
                  struct journal_scan *scan)
{
        uint64_t size = (uint64_t)st->st_size;

        if (size < j->pos.offset) {
                set_err(ctx->err, ctx->errsz,
                        "journal '%s' shrank from %llu to %llu bytes since it was read", j->path,
                        (unsigned long long)j->pos.offset, (unsigned long long)size);
                return -ESTALE;
        }
        scan->total_bytes = size;
        return size > j->pos.offset ? catch_up(j, size, cut, ctx, scan) : 0;
}

/* Opens the file of a new handle (statedir.h: never through a link, a
 * regular file of the directory's owner). A reader's missing journal is
 * empty; a writer creates it, and root gives a journal it created the
 * owner of its directory (the daemon's user, who must open it later). */
static int open_file(struct journal *j, char *err, size_t errsz)
{
        bool writer = j->mode == JOURNAL_WRITE;
        int r;

        r = statedir_open(j->path, writer ? STATEDIR_APPEND : STATEDIR_READ, &j->file, err, errsz);
        j->fd = r < 0 ? -1 : j->file.fd;
        if (r < 0 || !writer || !j->file.created)
                return r;
        r = statedir_own_like_dir(&j->file);
        if (r < 0) {
                set_err(err, errsz, "cannot give journal '%s' the owner of its directory: %s",
                        j->path, strerror(-r));
                return r;
        }
        /* A journal we just created: make its name durable. */
        crash_point("journal-created");
        if (fsync(j->file.dirfd) < 0) {
                r = -errno;
                set_err(err, errsz, "cannot sync the directory of journal '%s': %s", j->path,
                        strerror(-r));
        }
        return r;
}

int journal_open(const char *path, unsigned mode, journal_record_fn fn, void *userdata,
                 struct journal **ret, struct journal_scan *ret_scan, char *err, size_t errsz)
{
        struct journal *j = calloc(1, sizeof(*j));
        struct journal_scan scan = { 0 };
        struct scan_ctx ctx = { path, fn, userdata, err, errsz, true, NULL };
        struct stat st;
        int r;

        if (!j)
                return -ENOMEM;
        j->fd = j->file.fd = j->file.dirfd = -1;
        j->mode = (enum journal_mode)(mode & ~(unsigned)JOURNAL_SKIP_DAMAGE);
        j->skip = (mode & JOURNAL_SKIP_DAMAGE) != 0;
        ctx.skip = j->skip ? &j->damage : NULL;
        j->path = strdup(path);
        r = j->path ? open_file(j, err, errsz) : -ENOMEM;
        if (r == 0 && j->fd >= 0) {
                /* A writer cuts a torn end: only with every other writer kept out. */
                r = lock_journal(j, j->mode == JOURNAL_WRITE ? LOCK_EX : LOCK_SH, err, errsz);
                if (r == 0) {
                        r = file_size(j, &st, err, errsz);
                        if (r == 0)
                                r = follow(j, &st, j->mode == JOURNAL_WRITE, &ctx, &scan);
                        unlock_fd(j->fd);
                }
        }
        if (r < 0) {
                journal_close(j);
                return r;
        }
        scan.missing = j->fd < 0;
        scan.damaged = j->damage.count;
        scan.records = j->pos.records;
        scan.last_seq = j->pos.seq;
        scan.valid_bytes = j->pos.offset;
        if (ret_scan)
                *ret_scan = scan;
        *ret = j;
        return 0;
}

struct journal *journal_close(struct journal *j)
{
        if (!j)
                return NULL;
        statedir_close(&j->file);
        free(j->path);
        free(j);
        return NULL;
}

int journal_refresh(struct journal *j, journal_record_fn fn, void *userdata, char *err,
                    size_t errsz)
{
        const struct scan_ctx ctx = { j->path, fn, userdata, err, errsz, true,
                                      j->skip ? &j->damage : NULL };
        struct journal_scan scan = { 0 };
        struct stat st;
        int r;

        if (j->fd < 0) {
                statedir_close(&j->file);
                r = open_file(j, err, errsz);
                if (r < 0 || j->fd < 0)
                        return r;
        }
        r = file_size(j, &st, err, errsz);
        if (r < 0 || (uint64_t)st.st_size == j->pos.offset)
                return r; /* nothing new: the common case, one fstat */
        r = j->held ? 0 : lock_journal(j, LOCK_SH, err, errsz);
        if (r < 0)
                return r;
        r = file_size(j, &st, err, errsz);
        /* Only an opening writer cuts: here a torn end is left where it is. */
        if (r == 0)
                r = follow(j, &st, false, &ctx, &scan);
        if (!j->held)
                unlock_fd(j->fd);
        return r;
}

/* The path must still name our file: appends to a journal that was replaced
 * or removed would go where nobody reads them. */
static int same_file(const struct journal *j, char *err, size_t errsz)
{
        if (!statedir_same(&j->file)) {
                set_err(err, errsz, "journal '%s' was replaced or removed since it was opened",
                        j->path);
                return -ESTALE;
        }
        return 0;
}

/* One write() of the whole line, then fdatasync(). Any failure fails the
 * journal for good: after a failed sync, the page cache no longer tells
 * what is on disk. Test builds crash here on demand: "journal-torn" in the
 * middle of the write() (ARG picks how much of the line reaches the file:
 * 1 + ARG mod (n - 1) bytes, never the newline), "journal-written" after
 * the write() and "journal-synced" after the fdatasync(). */
static int write_line(struct journal *j, const char *line, size_t n, char *err, size_t errsz)
{
        uint64_t arg = 0;
        ssize_t w;
        int r = 0;

        if (crash_armed("journal-torn", &arg)) {
                (void)!write(j->fd, line, 1 + (size_t)(arg % (n - 1)));
                crash_now();
        }
        w = write(j->fd, line, n);
        if (w >= 0 && (size_t)w < n) {
                /* The record is torn: take it back (if ours to cut), or
                 * the owner's next open cuts it. */
                bool back = statedir_may_truncate(&j->file) &&
                            ftruncate(j->fd, (off_t)j->pos.offset) == 0;

                set_err(err, errsz,
                        "cannot append to journal '%s': short write (%zd of %zu bytes)%s; the "
                        "journal has failed and takes no more records",
                        j->path, w, n, back ? "" : ", the torn record stays");
                r = -EIO;
        } else {
                if (w >= 0)
                        crash_point("journal-written");
                if (w < 0 || fdatasync(j->fd) < 0) {
                        r = -errno;
                        set_err(err, errsz,
                                "cannot append to journal '%s': %s%s; the journal has failed and "
                                "takes no more records",
                                j->path, w < 0 ? "" : "fdatasync: ", strerror(-r));
                }
        }
        if (r < 0)
                j->failed = r;
        else
                crash_point("journal-synced");
        return r;
}

/* The line of one record (malloc'd, newline included): its length, or
 * -ENOMEM. */
static int format_record(uint64_t seq, const json_t *payload, char **ret)
{
        char *text = json_dumps(payload, PAYLOAD_FLAGS);
        int n;

        if (!text)
                return -ENOMEM;
        n = asprintf(ret, "{\"seq\":%llu,\"crc32c\":\"%08x\",\"rec\":%s}\n",
                     (unsigned long long)seq, crc32c(0, text, strlen(text)), text);
        free(text);
        return n < 0 ? -ENOMEM : n;
}

static int append_record(struct journal *j, const json_t *payload, char *err, size_t errsz)
{
        char *line = NULL;
        int n = format_record(j->pos.seq + 1, payload, &line), r;

        if (n < 0)
                return n;
        if ((size_t)n > MAX_LINE) {
                set_err(err, errsz, "record for journal '%s' too long (%d bytes, at most %zu)",
                        j->path, n, MAX_LINE);
                r = -EMSGSIZE;
        } else {
                r = write_line(j, line, (size_t)n, err, errsz);
        }
        free(line);
        if (r < 0)
                return r;
        j->pos.offset += (uint64_t)n;
        j->pos.seq++;
        j->pos.line++;
        j->pos.records++;
        return 0;
}

/* With LOCK_EX held: the path still names our file, and the records
 * others appended are read first, so our seq follows theirs; a torn end
 * left by a writer that died is cut as on open. */
static int catch_up_locked(struct journal *j, journal_record_fn fn, void *userdata, char *err,
                           size_t errsz)
{
        const struct scan_ctx ctx = { j->path, fn, userdata, err, errsz, true,
                                      j->skip ? &j->damage : NULL };
        struct journal_scan scan = { 0 };
        struct stat st;
        int r = file_size(j, &st, err, errsz);

        if (r == 0)
                r = same_file(j, err, errsz);
        return r == 0 ? follow(j, &st, true, &ctx, &scan) : r;
}

int journal_append(struct journal *j, json_t *payload, journal_record_fn fn, void *userdata,
                   uint64_t *ret_seq, char *err, size_t errsz)
{
        int r;

        if (j->mode != JOURNAL_WRITE) {
                set_err(err, errsz, "journal '%s' is open read-only", j->path);
                return -EROFS;
        }
        if (j->failed < 0) {
                set_err(err, errsz, "journal '%s' failed earlier (%s) and takes no more records",
                        j->path, strerror(-j->failed));
                return j->failed;
        }
        if (!json_is_object(payload)) {
                set_err(err, errsz, "a journal record must be a JSON object");
                return -EINVAL;
        }
        r = j->held ? 0 : lock_journal(j, LOCK_EX, err, errsz);
        if (r < 0)
                return r;
        r = catch_up_locked(j, fn, userdata, err, errsz);
        if (r == 0)
                r = append_record(j, payload, err, errsz);
        if (!j->held)
                unlock_fd(j->fd);
        if (r == 0 && ret_seq)
                *ret_seq = j->pos.seq;
        return r;
}

int journal_hold(struct journal *j, journal_record_fn fn, void *userdata, char *err,
                 size_t errsz)
{
        int r;

        if (j->mode != JOURNAL_WRITE || j->fd < 0) {
                set_err(err, errsz, "journal '%s' cannot be held here", j->path);
                return -EINVAL;
        }
        r = j->held ? 0 : lock_journal(j, LOCK_EX, err, errsz);
        if (r < 0)
                return r;
        r = catch_up_locked(j, fn, userdata, err, errsz);
        if (r < 0 && !j->held)
                unlock_fd(j->fd);
        else if (r >= 0)
                j->held++;
        return r;
}

void journal_release(struct journal *j)
{
        if (j->held == 0 || --j->held > 0)
                return;
        unlock_fd(j->fd);
}

/* Where the daemon's claim lies: a byte of the journal far past any end
 * it will ever have, locked with an open-file-description lock (fcntl
 * F_OFD_SETLK: independent of the flock() every read and append takes,
 * tied to the daemon's fd, gone with it). On the journal itself, nothing
 * can be deleted to get around it. */
#define CLAIM_OFFSET ((off_t)1 << 62)

/* The pid the claim's pid file names (0: none readable). Only for the
 * message: the lock is the claim. */
static long claim_pid(const char *lockname)
{
        struct statedir_file f = { .fd = -1, .dirfd = -1 };
        char buf[32] = "", err[256], *end = NULL;
        ssize_t n = -1;
        long pid;

        if (statedir_open(lockname, STATEDIR_READ, &f, err, sizeof(err)) == 0 && f.fd >= 0)
                n = pread(f.fd, buf, sizeof(buf) - 1, 0);
        statedir_close(&f);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        errno = 0;
        pid = strtol(buf, &end, 10);
        return errno || end == buf || pid <= 0 ? 0 : pid;
}

/* This daemon's pid into "<journal>.lock", for a second one to name; only
 * in a file of its own (one left by an earlier run of it is: the same
 * user). A pid that cannot be written (a full disk) only makes a second
 * daemon's message vaguer. */
static void write_claim_pid(const char *lockname)
{
        struct statedir_file f = { .fd = -1, .dirfd = -1 };
        char line[32], err[256];
        int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());

        if (statedir_open(lockname, STATEDIR_APPEND, &f, err, sizeof(err)) < 0) {
                log_warning("cannot write this daemon's pid into '%s': %s", lockname, err);
                return;
        }
        if (f.created)
                (void)statedir_own_like_dir(&f);
        if (statedir_may_truncate(&f) &&
            (ftruncate(f.fd, 0) < 0 || write(f.fd, line, (size_t)n) != n)) {
                log_warning("cannot write this daemon's pid into '%s': %s", lockname,
                            strerror(errno ? errno : EIO));
                (void)!ftruncate(f.fd, 0);
        }
        statedir_close(&f);
}

static int claim_refused(const char *path, const char *lockname, int e, char *err, size_t errsz)
{
        long pid = claim_pid(lockname);

        if (e == EAGAIN || e == EACCES) {
                if (pid > 0)
                        set_err(err, errsz,
                                "journal '%s' is used by another proxreapd (pid %ld): one daemon per journal; stop that one first ('systemctl stop proxreapd'), or give this one its own 'reap.journal'",
                                path, pid);
                else
                        set_err(err, errsz,
                                "journal '%s' is used by another proxreapd: one daemon per journal; stop that one first ('systemctl stop proxreapd')",
                                path);
                return -EBUSY;
        }
        set_err(err, errsz, "cannot lock journal '%s': %s", path, strerror(e));
        return -e;
}

int journal_claim(const char *path, int *ret_fd, char *err, size_t errsz)
{
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = CLAIM_OFFSET,
                            .l_len = 1 };
        struct statedir_file f = { .fd = -1, .dirfd = -1 };
        char *lockname = NULL;
        int r;

        if (asprintf(&lockname, "%s.lock", path) < 0)
                return -ENOMEM;
        /* The journal itself, created (the daemon's) when missing. */
        r = statedir_open(path, STATEDIR_APPEND, &f, err, errsz);
        if (r < 0)
                f.fd = f.dirfd = -1;
        if (r == 0 && f.created) {
                r = statedir_own_like_dir(&f);
                if (r == 0)
                        crash_point("journal-created");
                if (r == 0 && fsync(f.dirfd) < 0)
                        r = -errno;
                if (r < 0)
                        set_err(err, errsz, "cannot create journal '%s': %s", path, strerror(-r));
        }
        if (r == 0 && fcntl(f.fd, F_OFD_SETLK, &fl) < 0)
                r = claim_refused(path, lockname, errno, err, errsz);
        if (r == 0)
                write_claim_pid(lockname);
        free(lockname);
        if (r < 0) {
                statedir_close(&f);
                return r;
        }
        /* The claim lasts as long as this fd: the daemon's life. */
        *ret_fd = f.fd;
        f.fd = -1;
        statedir_close(&f);
        return 0;
}

const struct journal_damage *journal_damage(const struct journal *j)
{
        return &j->damage;
}

void journal_damage_lines(const struct journal_damage *d, char *buf, size_t size)
{
        size_t o = 0;

        buf[0] = '\0';
        for (unsigned i = 0; i < d->count && i < JOURNAL_DAMAGE_MAX && o < size; i++)
                o += (size_t)snprintf(buf + o, size - o, "%s%u", i ? ", " : "", d->lines[i]);
        if (d->count > JOURNAL_DAMAGE_MAX && o < size)
                snprintf(buf + o, size - o, ", ...");
}

/* --- repair --- */

struct repair_ctx {
        json_t *records; /* what the clean journal gets */
        journal_keep_fn keep;
        void *userdata;
        unsigned dropped; /* intact records keep() refused */
};

static int keep_record(void *userdata, uint64_t seq, unsigned line, json_t *payload)
{
        struct repair_ctx *rc = userdata;

        (void)seq;
        (void)line;
        if (rc->keep && !rc->keep(rc->userdata, payload)) {
                rc->dropped++;
                return 0;
        }
        return json_array_append(rc->records, payload) < 0 ? -ENOMEM : 0;
}

/* The intact records, renumbered, into a new file beside the journal that
 * then takes its name (the directory's owner's, like the journal). */
static int write_clean(struct journal *j, json_t *records, char *err, size_t errsz)
{
        struct statedir_file t = { .dirfd = j->file.dirfd, .dir = j->file.dir, .created = true };
        char tmp[NAME_MAX + 1];
        size_t i;
        json_t *rec;
        int r = 0;

        t.fd = statedir_create_temp(j->file.dirfd, j->file.name, 0640, tmp, sizeof(tmp));
        if (t.fd < 0) {
                set_err(err, errsz, "cannot create a file beside journal '%s': %s", j->path,
                        strerror(-t.fd));
                return t.fd;
        }
        json_array_foreach(records, i, rec) {
                char *line = NULL;
                int n = format_record((uint64_t)i + 1, rec, &line);

                if (n < 0 || write(t.fd, line, (size_t)n) != n)
                        r = n < 0 ? n : -(errno ? errno : EIO);
                free(line);
                if (r < 0)
                        break;
        }
        if (r == 0 && fsync(t.fd) < 0)
                r = -errno;
        if (r == 0)
                r = statedir_own_like_dir(&t);
        if (r == 0 && renameat(j->file.dirfd, tmp, j->file.dirfd, j->file.name) < 0)
                r = -errno;
        if (r == 0 && fsync(j->file.dirfd) < 0)
                r = -errno;
        if (r < 0) {
                set_err(err, errsz, "cannot write the repaired journal '%s': %s", j->path,
                        strerror(-r));
                (void)unlinkat(j->file.dirfd, tmp, 0);
        }
        close(t.fd);
        return r;
}

/* Under LOCK_EX: the records appended since the open, then a copy of every
 * byte, then the clean journal. */
static int rewrite(struct journal *j, struct repair_ctx *rc, struct journal_repair *ret, char *err,
                   size_t errsz)
{
        const struct scan_ctx ctx = { j->path, keep_record, rc, err, errsz, true, &j->damage };
        struct journal_scan scan = { 0 };
        struct stat st;
        char *bytes = NULL;
        int r = file_size(j, &st, err, errsz);

        if (r == 0)
                r = same_file(j, err, errsz);
        if (r == 0)
                r = follow(j, &st, false, &ctx, &scan);
        ret->torn = ret->torn || scan.torn || j->pos.offset < (uint64_t)st.st_size;
        if (r < 0 || (j->damage.count == 0 && !ret->torn && rc->dropped == 0))
                return r;
        bytes = malloc((size_t)st.st_size + 1);
        r = bytes ? read_at(j->fd, bytes, (size_t)st.st_size, 0) : -ENOMEM;
        if (r == 0)
                r = save_copy(j->file.dirfd, j->file.name, j->path, "damaged", bytes,
                              (size_t)st.st_size, ret->copy, sizeof(ret->copy));
        free(bytes);
        if (r < 0) {
                set_err(err, errsz, "cannot keep a copy of journal '%s': %s", j->path,
                        strerror(-r));
                return r;
        }
        return write_clean(j, rc->records, err, errsz);
}

int journal_repair(const char *path, journal_keep_fn keep, void *userdata,
                   struct journal_repair *ret, char *err, size_t errsz)
{
        struct repair_ctx rc = { json_array(), keep, userdata, 0 };
        struct journal_scan scan = { 0 };
        struct journal *j = NULL;
        int claim = -1, r;

        *ret = (struct journal_repair){ 0 };
        if (!rc.records)
                return -ENOMEM;
        /* No daemon may hold it: its appends would go to the old file. */
        r = journal_claim(path, &claim, err, errsz);
        if (r >= 0)
                r = journal_open(path, JOURNAL_READ | JOURNAL_SKIP_DAMAGE, keep_record, &rc, &j,
                                 &scan, err, errsz);
        if (r >= 0 && scan.missing) {
                set_err(err, errsz, "no journal at '%s'", path);
                r = -ENOENT;
        }
        ret->torn = scan.torn;
        /* And no restore while it is rewritten. */
        if (r >= 0)
                r = lock_journal(j, LOCK_EX, err, errsz);
        if (r >= 0) {
                r = rewrite(j, &rc, ret, err, errsz);
                unlock_fd(j->fd);
                ret->kept = json_array_size(rc.records);
                ret->damaged = j->damage.count;
                ret->dropped = rc.dropped;
        }
        journal_close(j);
        json_decref(rc.records);
        if (claim >= 0)
                close(claim);
        return r;
}

int journal_failed(const struct journal *j)
{
        return j->failed;
}

uint64_t journal_last_seq(const struct journal *j)
{
        return j->pos.seq;
}

const char *journal_path(const struct journal *j)
{
        return j->path;
}
