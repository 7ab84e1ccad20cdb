/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

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

/* What format_duration() writes with, largest last. */
static const struct {
        const char *suffix;
        uint64_t usec;
} duration_units[] = {
        { "ms", USEC_PER_MSEC }, { "s", USEC_PER_SEC }, { "m", USEC_PER_MINUTE },
        { "h", USEC_PER_HOUR },  { "d", USEC_PER_DAY },
};

/* What parse_duration() reads: systemd's time span units (systemd.time(7)),
 * longest first so that "ms" is not "m" and "min" is not "m". "m" is a
 * minute, "M" a month. */
static const struct {
        const char *suffix;
        uint64_t usec;
} span_units[] = {
        { "seconds", USEC_PER_SEC },
        { "minutes", USEC_PER_MINUTE },
        { "months", 2629800 * USEC_PER_SEC },
        { "second", USEC_PER_SEC },
        { "minute", USEC_PER_MINUTE },
        { "month", 2629800 * USEC_PER_SEC },
        { "hours", USEC_PER_HOUR },
        { "weeks", 7 * USEC_PER_DAY },
        { "years", 31557600 * USEC_PER_SEC },
        { "hour", USEC_PER_HOUR },
        { "days", USEC_PER_DAY },
        { "week", 7 * USEC_PER_DAY },
        { "year", 31557600 * USEC_PER_SEC },
        { "usec", 1 },
        { "msec", USEC_PER_MSEC },
        { "\xc2\xb5s", 1 }, /* µs */
        { "sec", USEC_PER_SEC },
        { "min", USEC_PER_MINUTE },
        { "day", USEC_PER_DAY },
        { "us", 1 },
        { "ms", USEC_PER_MSEC },
        { "hr", USEC_PER_HOUR },
        { "s", USEC_PER_SEC },
        { "m", USEC_PER_MINUTE },
        { "h", USEC_PER_HOUR },
        { "d", USEC_PER_DAY },
        { "w", 7 * USEC_PER_DAY },
        { "M", 2629800 * USEC_PER_SEC },
        { "y", 31557600 * USEC_PER_SEC },
};

static int span_unit(const char **p, uint64_t *ret_usec)
{
        for (size_t i = 0; i < ELEMENTSOF(span_units); i++) {
                size_t n = strlen(span_units[i].suffix);

                /* A unit ends where the next number or a blank begins. */
                if (strncmp(*p, span_units[i].suffix, n) == 0 &&
                    ((*p)[n] == '\0' || isdigit((unsigned char)(*p)[n]) || (*p)[n] == ' ' ||
                     (*p)[n] == '\t')) {
                        *p += n;
                        *ret_usec = span_units[i].usec;
                        return 0;
                }
        }
        return -EINVAL;
}

/* "1.5" at *p: the whole part, and the fraction as num/den (den a power of
 * ten, at most 10^9). */
static int span_number(const char **p, uint64_t *whole, uint64_t *num, uint64_t *den)
{
        const char *s = *p;

        *whole = *num = 0;
        *den = 1;
        if (!isdigit((unsigned char)*s) && !(*s == '.' && isdigit((unsigned char)s[1])))
                return -EINVAL;
        for (; isdigit((unsigned char)*s); s++) {
                if (*whole > (UINT64_MAX - 9) / 10)
                        return -ERANGE;
                *whole = *whole * 10 + (uint64_t)(*s - '0');
        }
        if (*s == '.') {
                for (s++; isdigit((unsigned char)*s); s++)
                        if (*den < 1000000000) {
                                *num = *num * 10 + (uint64_t)(*s - '0');
                                *den *= 10;
                        }
        }
        *p = s;
        return 0;
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
        while (*p == ' ' || *p == '\t')
                p++;
        if (!*p)
                return -EINVAL;
        while (*p) {
                uint64_t whole, num, den, unit, v;
                int r = span_number(&p, &whole, &num, &den);

                if (r < 0)
                        return r;
                while (*p == ' ' || *p == '\t')
                        p++;
                /* A bare number has no unit to guess (systemd would take
                 * seconds): "10s", "10min". */
                if (span_unit(&p, &unit) < 0)
                        return -EINVAL;
                if (whole > UINT64_MAX / unit)
                        return -ERANGE;
                v = whole * unit + num * (unit / den) + num * (unit % den) / den;
                if (v > UINT64_MAX - total)
                        return -ERANGE;
                total += v;
                while (*p == ' ' || *p == '\t')
                        p++;
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

/* Format characters that reorder or hide text (bidi overrides and
 * isolates, zero-width marks, line and paragraph separators): a name can
 * make a terminal line read other than it is. */
static bool invisible_format(unsigned cp)
{
        return cp == 0x061c || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202e) ||
               (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff || (cp >= 0xfff9 && cp <= 0xfffb);
}

/* Length of the valid UTF-8 sequence at s (1 to 4) that is neither a C1
 * control nor an invisible format character, or 0. */
static size_t utf8_printable(const unsigned char *s)
{
        size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;

        if (s[0] >= 0xf5 || n == 0)
                return 0;
        for (size_t i = 1; i < n; i++)
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
        /* overlong, surrogate and out-of-range forms; C1 controls */
        if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
            (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90) ||
            (n == 2 && s[0] == 0xc2 && s[1] < 0xa0))
                return 0;
        if ((n == 2 && invisible_format((s[0] & 0x1fu) << 6 | (s[1] & 0x3fu))) ||
            (n == 3 && invisible_format((s[0] & 0x0fu) << 12 | (s[1] & 0x3fu) << 6 | (s[2] & 0x3fu))))
                return 0;
        return n;
}

char *text_escape(const char *in, char *out, size_t size)
{
        static const char hex[] = "0123456789abcdef";
        const unsigned char *s = (const unsigned char *)(in ? in : "");
        size_t o = 0;

        if (size == 0)
                return out;
        while (*s) {
                size_t n = *s >= 0x80 ? utf8_printable(s) : (*s >= 0x20 && *s != 0x7f);

                if (n > 0 && *s != '\\') {
                        if (o + n >= size)
                                break;
                        memcpy(out + o, s, n);
                        o += n;
                        s += n;
                        continue;
                }
                if (o + (*s == '\\' ? 2 : 4) >= size)
                        break;
                out[o++] = '\\';
                if (*s == '\\')
                        out[o++] = '\\';
                else {
                        out[o++] = 'x';
                        out[o++] = hex[*s >> 4];
                        out[o++] = hex[*s & 15];
                }
                s++;
        }
        out[o] = '\0';
        return out;
}

const char *text_shown(const char *in)
{
        static __thread char bufs[8][2048];
        static __thread unsigned next;

        return text_escape(in, bufs[next++ % 8], sizeof(bufs[0]));
}

void *secret_alloc(size_t size)
{
        /* cppcheck-suppress invalidFunctionArg ; fd -1 is right for MAP_ANONYMOUS */
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (p == MAP_FAILED)
                return NULL;
        (void)madvise(p, size, MADV_DONTDUMP);
        return p;
}

void secret_free(void *p, size_t size)
{
        if (!p)
                return;
        secure_zero(p, size);
        munmap(p, size);
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

        /* Proxmox compares tags without regard to case (tag-style
         * case-sensitive=0, the default). */
        return want->len == len && strncasecmp(tag, want->tag, len) == 0;
}

bool tags_contain(const char *tags, const char *tag)
{
        struct tag_want want = { tag, strlen(tag) };

        return tags_foreach(tags, tag_equals, &want) == 1;
}

#ifdef PROXREAP_TEST_HOOKS
/* The point $PROXREAP_CRASH_AT arms; parsed again (its hits counted
 * from 0) whenever the variable changed, so a test may arm a point in a
 * child process it forked. */
static struct {
        char spec[128]; /* the value parsed */
        char name[64]; /* "": none */
        uint64_t nth, arg, hits;
} armed;

static _Noreturn void crash_spec_invalid(const char *spec, const char *problem)
{
        fprintf(stderr, "PROXREAP_CRASH_AT='%s': %s (expected NAME[#N][:ARG])\n", spec, problem);
        abort();
}

/* The number of spec that starts at *p and ends before one of stop (or
 * at the end), moving *p past it. */
static uint64_t crash_spec_number(const char *spec, const char **p, const char *stop,
                                  uint64_t min, const char *what)
{
        size_t n = strcspn(*p, stop);
        char buf[32];
        uint64_t v;

        if (n == 0 || n >= sizeof(buf))
                crash_spec_invalid(spec, what);
        memcpy(buf, *p, n);
        buf[n] = '\0';
        if (parse_u64(buf, min, UINT64_MAX, &v) < 0)
                crash_spec_invalid(spec, what);
        *p += n;
        return v;
}

static void crash_parse(const char *spec)
{
        size_t len = strlen(spec), n;
        const char *p;

        if (len >= sizeof(armed.spec))
                crash_spec_invalid(spec, "too long");
        memset(&armed, 0, sizeof(armed));
        memcpy(armed.spec, spec, len + 1);
        if (!*spec)
                return;
        n = strcspn(spec, "#:");
        if (n == 0 || n >= sizeof(armed.name))
                crash_spec_invalid(spec, "no point name, or a name too long");
        memcpy(armed.name, spec, n);
        armed.name[n] = '\0';
        armed.nth = 1;
        p = spec + n;
        if (*p == '#') {
                p++;
                armed.nth = crash_spec_number(spec, &p, ":", 1, "N is not a number >= 1");
        }
        if (*p == ':') {
                p++;
                armed.arg = crash_spec_number(spec, &p, "", 0, "ARG is not a number");
        }
        if (*p)
                crash_spec_invalid(spec, "trailing characters");
}

static void crash_trace(const char *name)
{
        const char *path = getenv("PROXREAP_CRASH_TRACE");
        char line[128];
        int fd, n;

        if (!path || !*path)
                return;
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                return;
        n = snprintf(line, sizeof(line), "%s\n", name);
        /* One write(): lines of processes tracing to one file never mix. */
        if (n > 0 && (size_t)n < sizeof(line) && write(fd, line, (size_t)n) < 0)
                fprintf(stderr, "PROXREAP_CRASH_TRACE='%s': %s\n", path, strerror(errno));
        close(fd);
}

bool crash_armed(const char *name, uint64_t *ret_arg)
{
        const char *spec = getenv("PROXREAP_CRASH_AT");

        crash_trace(name);
        if (!spec)
                spec = "";
        if (strcmp(spec, armed.spec) != 0)
                crash_parse(spec);
        if (strcmp(name, armed.name) != 0 || ++armed.hits != armed.nth)
                return false;
        if (ret_arg)
                *ret_arg = armed.arg;
        return true;
}

void crash_now(void)
{
        (void)raise(SIGKILL);
        abort(); /* not reached: SIGKILL cannot be caught */
}

void crash_point(const char *name)
{
        if (crash_armed(name, NULL))
                crash_now();
}
#endif

int64_t now_epoch(void)
{
        return (int64_t)(now_realtime_usec() / USEC_PER_SEC);
}
