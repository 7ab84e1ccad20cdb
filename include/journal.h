/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * journal: the crash-safe, append-only record log behind every reap and
 * restore. It knows nothing about reaps: a record is a JSON object (the
 * payload); the journal gives it a sequence number and a CRC32C, makes it
 * durable, and reads it back.
 *
 * On disk, one record per line, byte for byte:
 *
 *     {"seq":17,"crc32c":"1a2b3c4d","rec":PAYLOAD}\n
 *
 * PAYLOAD is the compact JSON of the record (jansson, JSON_COMPACT |
 * JSON_PRESERVE_ORDER, so it never contains a newline). crc32c is the
 * Castagnoli CRC of exactly the PAYLOAD bytes, 8 lowercase hex digits. seq
 * starts at 1 and grows by one per record; a gap or repeat is damage.
 *
 * Damage rules:
 *   - a torn last record (the bytes after the last valid record contain no
 *     newline: a write cut short by a crash, or NUL padding left by the file
 *     system) is cut off by a writer, after the torn bytes were saved to
 *     "<path>.torn-<UTC yyyymmddThhmmssZ>" and a warning was logged;
 *     readers report it and leave the file alone;
 *   - anything else invalid (bad CRC, bad JSON, a seq out of order, a
 *     complete invalid line at the end, an over-long line) is damage that
 *     needs an operator: the open fails with -EBADMSG and an error naming
 *     the file, the line, the byte offset and the problem, and what to do.
 *     Nothing is ever truncated there.
 *
 * Concurrency: every read and append takes flock() on the file (shared to
 * read, exclusive to append), so the daemon and the CLI never interleave.
 * Before appending, a writer first reads (and hands to its callback) the
 * records others appended since it last looked, so seq stays contiguous.
 *
 * Durability: journal_append() returns only after write() and fdatasync()
 * of the record succeeded. Any failure there (ENOSPC, EIO, a short write)
 * makes the journal "failed" for good: every later append returns the same
 * error without touching the file (a failed fsync is never retried as if it
 * had succeeded), and the owner must stop destructive work at once.
 *
 * Errors: negative errno; the message (file, line, problem) is written to
 * the caller's err buffer when one is given.
 */
#ifndef PROXREAP_JOURNAL_H
#define PROXREAP_JOURNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

/* Longest line accepted, newline included. Longer lines are damage. */
#define JOURNAL_MAX_LINE (256u * 1024u)

struct journal;

/* Called for each valid record, in order. payload is borrowed (valid only
 * during the call; json_incref() to keep it). line is 1-based. A negative
 * return stops the scan and is returned by the caller. */
typedef int (*journal_record_fn)(void *userdata, uint64_t seq, unsigned line, json_t *payload);

struct journal_scan {
        uint64_t records; /* valid records seen */
        uint64_t last_seq; /* 0 when empty */
        uint64_t valid_bytes; /* length of the valid prefix */
        uint64_t total_bytes; /* length of what was scanned */
        bool torn; /* a torn tail follows the valid prefix */
        unsigned torn_line; /* its line number */
        bool missing; /* a reader found no journal (none is written yet) */
        unsigned damaged; /* JOURNAL_SKIP_DAMAGE: damaged lines skipped */
};

/* What a JOURNAL_SKIP_DAMAGE handle skipped. */
#define JOURNAL_DAMAGE_MAX 16
struct journal_damage {
        unsigned count; /* damaged lines */
        unsigned lines[JOURNAL_DAMAGE_MAX]; /* the first ones' line numbers */
        char first[512]; /* the first one: FILE:LINE (byte N): problem */
};

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* Pure scan of a journal image (also used by tests and the fuzzer):
 * validates and delivers every record. first_seq is the seq the first
 * record must carry (1 for a whole file), first_line its line number.
 * Returns 0 (a torn tail is not an error here: see ret->torn), -EBADMSG on
 * damage (err says where and what), or fn's negative return. */
int journal_scan_buffer(const char *buf, size_t len, uint64_t first_seq, unsigned first_line,
                        const char *name, journal_record_fn fn, void *userdata,
                        struct journal_scan *ret, char *err, size_t errsz);

enum journal_mode {
        JOURNAL_READ, /* O_RDONLY, never modifies the file; a missing file is empty */
        JOURNAL_WRITE, /* O_RDWR|O_CREAT (0640); cuts a torn tail; run by root, gives
                        * the file the owner of its directory (the daemon's user) */
};

/* Or'ed to a mode: a damaged line (bad CRC or JSON, seq going back, too
 * long) is noted (journal_damage()) and skipped instead of failing the
 * open, so damage never blocks what is intact; seq may then have gaps (the
 * damaged lines' records), and appends follow the highest seq. Torn ends
 * are as without it. */
#define JOURNAL_SKIP_DAMAGE 0x100u

/* Opens and scans the whole journal under the lock, delivering every record
 * to fn. ret_scan (optional) tells what was found. mode: enum journal_mode,
 * maybe with JOURNAL_SKIP_DAMAGE. */
int journal_open(const char *path, unsigned mode, journal_record_fn fn, void *userdata,
                 struct journal **ret, struct journal_scan *ret_scan, char *err, size_t errsz);
const struct journal_damage *journal_damage(const struct journal *j);
/* "3, 17, 18": the damaged lines (", ..." past JOURNAL_DAMAGE_MAX). */
void journal_damage_lines(const struct journal_damage *d, char *buf, size_t size);

/* Writes a clean journal of every intact record (renumbered from 1, a torn
 * end left out) in place of a damaged one, after keeping a copy of the
 * original beside it ("<path>.damaged-<UTC stamp>"). Refused while a
 * daemon holds the journal (-EBUSY); nothing is written when there is no
 * damage and keep() (NULL: every record) leaves every record in
 * (ret->copy stays ""). */
struct journal_repair {
        size_t kept; /* intact records */
        unsigned damaged; /* damaged lines left out */
        unsigned dropped; /* intact records keep() left out */
        bool torn; /* and a torn end */
        char copy[PATH_MAX]; /* the original's copy */
};
/* Whether an intact record goes into the clean journal, in order (a
 * record whose op lost its first record to damage makes no sense alone). */
typedef bool (*journal_keep_fn)(void *userdata, json_t *payload);
int journal_repair(const char *path, journal_keep_fn keep, void *userdata,
                   struct journal_repair *ret, char *err, size_t errsz);
struct journal *journal_close(struct journal *j);

/* Delivers records appended by others since this handle last read (cheap
 * when nothing changed: one fstat). */
int journal_refresh(struct journal *j, journal_record_fn fn, void *userdata, char *err,
                    size_t errsz);

/* Appends payload (an object) durably. Records others appended first are
 * delivered to fn (may be NULL only if the caller does not care). ret_seq
 * gets the new record's seq. -EROFS on a JOURNAL_READ handle; after a
 * write/sync failure the saved negative errno forever. */
int journal_append(struct journal *j, json_t *payload, journal_record_fn fn, void *userdata,
                   uint64_t *ret_seq, char *err, size_t errsz);

/* Takes the journal's exclusive lock and keeps it until journal_release(),
 * after delivering what others appended: a decision made under it is made
 * on the journal as it is, and no other writer appends until it is
 * released (appends and refreshes of this handle go on meanwhile). For a
 * decision that must not be made twice (a restore's create). Holds nest:
 * the lock goes with the last release. */
int journal_hold(struct journal *j, journal_record_fn fn, void *userdata, char *err,
                 size_t errsz);
void journal_release(struct journal *j);

/* One daemon per journal: a lock on the journal itself (created when
 * missing) for as long as *ret_fd stays open, and this pid written into
 * "<path>.lock" for the message of a second one. -EBUSY when another
 * process holds it (err names its pid). */
int journal_claim(const char *path, int *ret_fd, char *err, size_t errsz);

/* 0 while healthy, else the negative errno that failed it. */
int journal_failed(const struct journal *j);
uint64_t journal_last_seq(const struct journal *j);
const char *journal_path(const struct journal *j);

#endif
