/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t clock_usec(clockid_t id)
{
        struct timespec ts;

        /* Both clocks always exist on Linux; failure would be a kernel bug. */
        if (clock_gettime(id, &ts) < 0)
                return 0;
        return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t now_monotonic_usec(void)
{
        return clock_usec(CLOCK_MONOTONIC);
}

uint64_t now_realtime_usec(void)
{
        return clock_usec(CLOCK_REALTIME);
}

void format_utc(int64_t t, char *buf, size_t size)
{
        time_t tt = (time_t)t;
        struct tm tm;

        if (!gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "invalid");
}

static const struct {
        const char *suffix;
        uint64_t usec;
} duration_units[] = {
        /* "ms" before "m" so the longest suffix wins. */
        { "ms", USEC_PER_MSEC }, { "s", USEC_PER_SEC }, { "m", USEC_PER_MINUTE },
        { "h", USEC_PER_HOUR },  { "d", USEC_PER_DAY },
};

static int duration_unit(const char **p, uint64_t *ret_usec)
{
        for (size_t i = 0; i < ELEMENTSOF(duration_units); i++) {
                size_t n = strlen(duration_units[i].suffix);

                if (strncmp(*p, duration_units[i].suffix, n) == 0) {
                        *p += n;
                        *ret_usec = duration_units[i].usec;
                        return 0;
                }
        }
        return -EINVAL;
}

int parse_duration(const char *s, uint64_t *ret_usec)
{
        uint64_t total = 0;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        if (strcmp(s, "0") == 0) {
                *ret_usec = 0;
                return 0;
        }
        while (*p) {
                uint64_t n = 0, unit;

                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                while (isdigit((unsigned char)*p)) {
                        if (n > (UINT64_MAX - 9) / 10)
                                return -ERANGE;
                        n = n * 10 + (uint64_t)(*p++ - '0');
                }
                if (duration_unit(&p, &unit) < 0)
                        return -EINVAL;
                if (n > (UINT64_MAX - total) / unit)
                        return -ERANGE;
                total += n * unit;
        }
        *ret_usec = total;
        return 0;
}

void format_duration(uint64_t usec, char *buf, size_t size)
{
        size_t off = 0;

        if (size == 0)
                return;
        buf[0] = '\0';
        if (usec == 0) {
                snprintf(buf, size, "0");
                return;
        }
        for (size_t i = ELEMENTSOF(duration_units); i-- > 0;) {
                uint64_t unit = duration_units[i].usec, n = usec / unit;
                int w;

                if (n == 0)
                        continue;
                usec -= n * unit;
                w = snprintf(buf + off, size - off, "%llu%s", (unsigned long long)n,
                             duration_units[i].suffix);
                if (w < 0 || (size_t)w >= size - off)
                        return;
                off += (size_t)w;
        }
        if (usec > 0 && off < size) /* below a millisecond: show it rather than lie */
                snprintf(buf + off, size - off, "%lluus", (unsigned long long)usec);
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
        unsigned long long v;
        char *end;

        if (!s || !isdigit((unsigned char)*s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end != '\0')
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

bool vmid_valid(uint64_t vmid)
{
        return vmid >= 100 && vmid <= 999999999;
}

bool node_name_valid(const char *s)
{
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '-')
                        return false;
        return true;
}

int url_escape(const char *s, char *buf, size_t size)
{
        static const char hex[] = "0123456789ABCDEF";
        size_t o = 0;

        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                bool plain = isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~';

                if (o + (plain ? 1 : 3) >= size)
                        return -ENOBUFS;
                if (plain) {
                        buf[o++] = (char)*p;
                } else {
                        buf[o++] = '%';
                        buf[o++] = hex[*p >> 4];
                        buf[o++] = hex[*p & 0xf];
                }
        }
        if (o >= size)
                return -ENOBUFS;
        buf[o] = '\0';
        return 0;
}

void secure_zero(void *p, size_t n)
{
        if (p && n > 0)
                explicit_bzero(p, n);
}

char *strdup_or_null(const char *s)
{
        return s ? strdup(s) : NULL;
}

static bool tag_separator(char c)
{
        return c == ';' || c == ',' || isspace((unsigned char)c);
}

int tags_foreach(const char *tags, int (*fn)(const char *tag, size_t len, void *userdata),
                 void *userdata)
{
        const char *p = tags;

        if (!tags)
                return 0;
        while (*p) {
                size_t len = 0;
                int r;

                while (*p && tag_separator(*p))
                        p++;
                while (p[len] && !tag_separator(p[len]))
                        len++;
                if (len == 0)
                        break;
                r = fn(p, len, userdata);
                if (r != 0)
                        return r;
                p += len;
        }
        return 0;
}

struct tag_want {
        const char *tag;
        size_t len;
};

static int tag_equals(const char *tag, size_t len, void *userdata)
{
        const struct tag_want *want = userdata;

        return want->len == len && strncmp(tag, want->tag, len) == 0;
}

bool tags_contain(const char *tags, const char *tag)
{
        struct tag_want want = { tag, strlen(tag) };

        return tags_foreach(tags, tag_equals, &want) == 1;
}

void crash_point(const char *name)
{
#ifdef PROXREAP_TEST_HOOKS
        static unsigned hits;
        const char *want = getenv("PROXREAP_CRASH_AT"), *hash;
        size_t n;
        uint64_t nth = 1;

        if (!want || !*want)
                return;
        hash = strchr(want, '#');
        n = hash ? (size_t)(hash - want) : strlen(want);
        if (strlen(name) != n || strncmp(name, want, n) != 0)
                return;
        if (hash && parse_u64(hash + 1, 1, UINT32_MAX, &nth) < 0)
                return;
        if (++hits == nth)
                (void)raise(SIGKILL);
#else
        (void)name;
#endif
}

int64_t now_epoch(void)
{
        return (int64_t)(now_realtime_usec() / USEC_PER_SEC);
}
