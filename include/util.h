/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * util: small, I/O-free helpers shared by every module: time, durations,
 * bounded number parsing, identifier validation and URL escaping.
 *
 * Error contract: functions returning int give >= 0 on success and a negative
 * errno on failure; ret_ out-parameters are written only on success.
 */
#ifndef PROXREAP_UTIL_H
#define PROXREAP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MINUTE (UINT64_C(60) * USEC_PER_SEC)
#define USEC_PER_HOUR (UINT64_C(60) * USEC_PER_MINUTE)
#define USEC_PER_DAY (UINT64_C(24) * USEC_PER_HOUR)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* CLOCK_MONOTONIC: for every timer and window computation (clock jumps must
 * not move them). */
uint64_t now_monotonic_usec(void);
/* CLOCK_REALTIME: only for what a human reads. */
uint64_t now_realtime_usec(void);
/* CLOCK_REALTIME in whole seconds (journal timestamps). */
int64_t now_epoch(void);

/* "2026-11-22T10:00:00Z" for UNIX seconds t ("invalid" out of range). */
void format_utc(int64_t t, char *buf, size_t size);

/* "10s", "250ms", "10m", "1h", "7d", "1h30m", or "0". A bare number is
 * rejected (the unit is not guessable). -EINVAL on syntax, -ERANGE on
 * overflow. */
int parse_duration(const char *s, uint64_t *ret_usec);
/* Formats the largest units that fit, e.g. "10m", "1h30m", "250ms". */
void format_duration(uint64_t usec, char *buf, size_t size);

/* Whole string must be a decimal number in [min, max]. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* Proxmox identifiers. vmid: 100..999999999 (pve-vmid). node: pve-node
 * (a DNS label: letters, digits, '-', not starting or ending with '-'). */
bool vmid_valid(uint64_t vmid);
bool node_name_valid(const char *s);

/* Percent-escapes everything outside RFC 3986 "unreserved" so the result is
 * safe as one path segment or query value. -ENOBUFS when it does not fit. */
int url_escape(const char *s, char *buf, size_t size);

/* Text from outside (a guest name, a Proxmox message) for a human: every
 * control character (C0, DEL, C1), every byte that is not valid UTF-8 and
 * the backslash are written as \xNN (\\), so such text cannot forge a log
 * line or send escape sequences to a terminal. Cut like snprintf; returns
 * out. */
char *text_escape(const char *in, char *out, size_t size);
/* The same into one of a few rotating buffers of this thread (at most
 * 8 alive at once, 2 KiB each): for printf() arguments of the CLI. */
const char *text_shown(const char *in);

/* Memory for a secret: its own pages, excluded from core dumps
 * (MADV_DONTDUMP); wiped before it is given back. NULL on failure. */
void *secret_alloc(size_t size);
void secret_free(void *p, size_t size);

/* Overwrites memory in a way the compiler may not elide (secrets). */
void secure_zero(void *p, size_t n);

/* strdup that tolerates NULL (returns NULL without error for NULL input). */
char *strdup_or_null(const char *s);

/* Splits a Proxmox tag list ("a;b c,d": ';' ',' and space all separate tags,
 * as pve-manager's PVE::Tools::split_list does) and calls fn for each tag.
 * Stops early and returns fn's value when it returns non-zero. */
int tags_foreach(const char *tags, int (*fn)(const char *tag, size_t len, void *userdata),
                 void *userdata);
/* Case-insensitive, as Proxmox compares tags by default. */
bool tags_contain(const char *tags, const char *tag);

/* --- crash points ---
 *
 * Test builds (-DPROXREAP_TEST_HOOKS) can be killed with SIGKILL at named
 * places, to test crash recovery; every other build compiles these to
 * nothing. The environment says where:
 *
 *   PROXREAP_CRASH_AT=NAME[#N][:ARG]  die at the Nth pass (default: the
 *                                     first) of the point NAME; ARG, a
 *                                     number, is handed to a point that
 *                                     leaves work half done (crash_armed)
 *   PROXREAP_CRASH_TRACE=FILE         append the name of every point passed,
 *                                     armed or not, to FILE (a line each)
 *
 * A malformed PROXREAP_CRASH_AT aborts the process with a message naming
 * it: a test meant to crash must not pass because of a typo. */
#ifdef PROXREAP_TEST_HOOKS
/* Dies here when this pass is the armed one. */
void crash_point(const char *name);
/* For a point whose crash leaves work half done (part of a record
 * written): true when this pass is the armed one, with ARG (0 when none
 * was given) in *ret_arg. The caller then does the part a crash would
 * leave done and calls crash_now(). */
bool crash_armed(const char *name, uint64_t *ret_arg);
_Noreturn void crash_now(void);
#else
static inline void crash_point(const char *name)
{
        (void)name;
}

static inline bool crash_armed(const char *name, uint64_t *ret_arg)
{
        (void)name;
        (void)ret_arg;
        return false;
}

static inline void crash_now(void)
{
}
#endif

#endif
