/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * testutil: helpers shared by the unit tests (header-only: static inline).
 *
 * Include after <cmocka.h> (and its prerequisites). Temporary files live in
 * /tmp and are created with mkstemp()/mkdtemp(); the caller removes them.
 */
#ifndef PROXREAP_TESTUTIL_H
#define PROXREAP_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fails unless needle occurs in haystack, showing both. */
#define assert_contains(haystack, needle)                                                     \
        do {                                                                                  \
                const char *hay_ = (haystack), *ndl_ = (needle);                              \
                if (!hay_ || !strstr(hay_, ndl_))                                             \
                        fail_msg("\"%s\" does not contain \"%s\"", hay_ ? hay_ : "(null)", ndl_); \
        } while (0)

#define assert_not_contains(haystack, needle)                                                 \
        do {                                                                                  \
                const char *hay_ = (haystack), *ndl_ = (needle);                              \
                if (hay_ && strstr(hay_, ndl_))                                               \
                        fail_msg("\"%s\" contains \"%s\"", hay_, ndl_);                       \
        } while (0)

/* |a - b| <= eps, with both values in the failure message. */
#define assert_double_near(a, b, eps)                                                         \
        do {                                                                                  \
                double a_ = (a), b_ = (b), e_ = (eps);                                        \
                if (!(fabs(a_ - b_) <= e_))                                                   \
                        fail_msg("%s = %.17g, expected %.17g (+-%g)", #a, a_, b_, e_);        \
        } while (0)

/* Relative error |a - b| / b <= rel (b != 0). */
#define assert_double_rel(a, b, rel)                                                          \
        do {                                                                                  \
                double a_ = (a), b_ = (b), r_ = (rel);                                        \
                if (!(fabs(a_ - b_) <= r_ * fabs(b_)))                                        \
                        fail_msg("%s = %.17g, expected %.17g within %g relative", #a, a_, b_, \
                                 r_);                                                         \
        } while (0)

/* Exact double equality (values that are computed exactly). */
#define assert_double_exact(a, b)                                                             \
        do {                                                                                  \
                double a_ = (a), b_ = (b);                                                    \
                if (!(a_ == b_))                                                              \
                        fail_msg("%s = %.17g, expected exactly %.17g", #a, a_, b_);           \
        } while (0)

static inline char *tu_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *tu_strdupf(const char *fmt, ...)
{
        va_list ap;
        char *s = NULL;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                fail_msg("out of memory");
        return s;
}

/* Writes content to a new /tmp file with the given mode; returns its
 * malloc'd path. */
static inline char *tu_write_temp(const char *content, mode_t mode)
{
        char *path = tu_strdupf("/tmp/proxreap-test-XXXXXX");
        size_t len = strlen(content);
        int fd = mkstemp(path);

        if (fd < 0)
                fail_msg("mkstemp: %s", strerror(errno));
        if (write(fd, content, len) != (ssize_t)len)
                fail_msg("write %s: %s", path, strerror(errno));
        if (fchmod(fd, mode) < 0)
                fail_msg("fchmod %s: %s", path, strerror(errno));
        close(fd);
        return path;
}

/* A new empty directory in /tmp; returns its malloc'd path. */
static inline char *tu_mkdtemp(void)
{
        char *path = tu_strdupf("/tmp/proxreap-test-XXXXXX");

        if (!mkdtemp(path))
                fail_msg("mkdtemp: %s", strerror(errno));
        return path;
}

/* Writes dir/name with mode; returns the malloc'd path. */
static inline char *tu_write_in(const char *dir, const char *name, const char *content,
                                mode_t mode)
{
        char *path = tu_strdupf("%s/%s", dir, name);
        size_t len = strlen(content);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0)
                fail_msg("open %s: %s", path, strerror(errno));
        if (write(fd, content, len) != (ssize_t)len)
                fail_msg("write %s: %s", path, strerror(errno));
        if (fchmod(fd, mode) < 0)
                fail_msg("fchmod %s: %s", path, strerror(errno));
        close(fd);
        return path;
}

/* Removes a file made by the helpers above and frees its path. */
static inline void tu_unlink_free(char *path)
{
        if (path) {
                unlink(path);
                free(path);
        }
}

/* The whole file, NUL-terminated, malloc'd; NULL when it cannot be read. */
static inline char *tu_read_file(const char *path, size_t *ret_len)
{
        FILE *f = fopen(path, "rb");
        char *buf = NULL;
        size_t len = 0, cap = 0, n;

        if (!f)
                return NULL;
        do {
                if (cap - len < 4096) {
                        cap = cap ? cap * 2 : 8192;
                        buf = realloc(buf, cap);
                        if (!buf)
                                fail_msg("out of memory");
                }
                n = fread(buf + len, 1, cap - len - 1, f);
                len += n;
        } while (n > 0);
        fclose(f);
        buf[len] = '\0';
        if (ret_len)
                *ret_len = len;
        return buf;
}

/* Replaces the first occurrence of from (which must occur) with to. */
static inline char *tu_replace(const char *s, const char *from, const char *to)
{
        const char *p = strstr(s, from);

        if (!p)
                fail_msg("\"%s\" not found in the text", from);
        return tu_strdupf("%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
}

/* Lines of s (each ending in '\n'). */
static inline unsigned tu_count_lines(const char *s)
{
        unsigned n = 0;

        for (; s && *s; s++)
                n += *s == '\n';
        return n;
}

/* 1-based number of the first line of text containing needle (0: none). */
static inline unsigned tu_line_of(const char *text, const char *needle)
{
        const char *p = strstr(text, needle);
        unsigned line = 1;

        if (!p)
                return 0;
        for (const char *q = text; q < p; q++)
                line += *q == '\n';
        return line;
}

/* Directory of the test data (PROXREAP_TESTDATA, as `make check-unit` sets). */
static inline const char *tu_testdata(void)
{
        const char *d = getenv("PROXREAP_TESTDATA");

        return d && *d ? d : "tests/data";
}

#endif
