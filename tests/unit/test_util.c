/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Unit tests of util: durations, numbers, identifiers, URL escaping, tags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testutil.h"
#include "util.h"

/* --- parse_duration --- */

static void check_duration(const char *s, uint64_t want)
{
        uint64_t v = 12345;
        int r = parse_duration(s, &v);

        if (r != 0)
                fail_msg("parse_duration(\"%s\") = %d, expected 0", s, r);
        if (v != want)
                fail_msg("parse_duration(\"%s\") gave %llu usec, expected %llu", s,
                         (unsigned long long)v, (unsigned long long)want);
}

static void check_duration_fails(const char *s, int want)
{
        uint64_t v = 12345;
        int r = parse_duration(s, &v);

        if (r != want)
                fail_msg("parse_duration(\"%s\") = %d, expected %d", s, r, want);
        /* ret_ out-parameters are written only on success. */
        assert_int_equal(v, 12345);
}

static void test_parse_duration_units(void **state)
{
        (void)state;
        check_duration("250ms", 250 * USEC_PER_MSEC);
        check_duration("1ms", 1000);
        check_duration("10s", 10 * USEC_PER_SEC);
        check_duration("10m", 600 * USEC_PER_SEC);
        check_duration("1h", 3600 * USEC_PER_SEC);
        check_duration("7d", 7 * 86400 * USEC_PER_SEC);
        check_duration("0s", 0);
        check_duration("0", 0);
        check_duration("100ms", 100000);
        /* "m" is minutes, "ms" milliseconds: the longest suffix wins. */
        check_duration("1m", 60000000);
        check_duration("1ms", 1000);
}

static void test_parse_duration_combinations(void **state)
{
        (void)state;
        check_duration("1h30m", 5400 * USEC_PER_SEC);
        check_duration("1d2h3m4s5ms",
                       USEC_PER_DAY + 2 * USEC_PER_HOUR + 3 * USEC_PER_MINUTE + 4 * USEC_PER_SEC +
                               5 * USEC_PER_MSEC);
        check_duration("1m30s", 90 * USEC_PER_SEC);
        check_duration("1s500ms", 1500 * USEC_PER_MSEC);
        check_duration("90m", 90 * USEC_PER_MINUTE);
        check_duration("0010s", 10 * USEC_PER_SEC);
}

static void test_parse_duration_rejects(void **state)
{
        (void)state;
        /* A bare number: the unit is not guessable. */
        check_duration_fails("10", -EINVAL);
        check_duration_fails("1", -EINVAL);
        check_duration_fails("00", -EINVAL);
        check_duration_fails("1h30", -EINVAL);
        check_duration_fails("1h 30", -EINVAL);
        check_duration_fails("", -EINVAL);
        check_duration_fails("  ", -EINVAL);
        check_duration_fails(NULL, -EINVAL);
        check_duration_fails("s", -EINVAL);
        check_duration_fails("ms", -EINVAL);
        check_duration_fails("-1s", -EINVAL);
        check_duration_fails("+1s", -EINVAL);
        check_duration_fails("1..5h", -EINVAL);
        check_duration_fails(".h", -EINVAL);
        check_duration_fails("10S", -EINVAL);
        check_duration_fails("10sx", -EINVAL);
        check_duration_fails("10mins", -EINVAL);
        check_duration_fails("abc", -EINVAL);
        check_duration_fails("1h,30m", -EINVAL);
}

/* systemd's time spans (systemd.time(7)): its unit names, blanks between
 * the parts, fractions. */
static void test_parse_duration_systemd_spans(void **state)
{
        (void)state;
        check_duration("30min", 30 * USEC_PER_MINUTE);
        check_duration("1h 30m", 90 * USEC_PER_MINUTE);
        check_duration("1 h 30 min", 90 * USEC_PER_MINUTE);
        check_duration(" 10s ", 10 * USEC_PER_SEC);
        check_duration("10 s", 10 * USEC_PER_SEC);
        check_duration("2w", 14 * USEC_PER_DAY);
        check_duration("2weeks", 14 * USEC_PER_DAY);
        check_duration("1week 1day", 8 * USEC_PER_DAY);
        check_duration("3 days", 3 * USEC_PER_DAY);
        check_duration("2hr", 2 * USEC_PER_HOUR);
        check_duration("5hours", 5 * USEC_PER_HOUR);
        check_duration("10sec", 10 * USEC_PER_SEC);
        check_duration("1second", USEC_PER_SEC);
        check_duration("2seconds", 2 * USEC_PER_SEC);
        check_duration("1minute", USEC_PER_MINUTE);
        check_duration("3minutes", 3 * USEC_PER_MINUTE);
        check_duration("10us", 10);
        check_duration("10usec", 10);
        check_duration("10\xc2\xb5s", 10);
        check_duration("5msec", 5 * USEC_PER_MSEC);
        check_duration("1.5h", 90 * USEC_PER_MINUTE);
        check_duration("0.25s", 250 * USEC_PER_MSEC);
        check_duration(".5m", 30 * USEC_PER_SEC);
        check_duration("1M", 2629800 * USEC_PER_SEC);
        check_duration("1month", 2629800 * USEC_PER_SEC);
        check_duration("2months", 2 * 2629800 * USEC_PER_SEC);
        check_duration("1y", 31557600 * USEC_PER_SEC);
        check_duration("1year 2years", 3 * 31557600 * USEC_PER_SEC);
        check_duration("1h30m", 90 * USEC_PER_MINUTE);
}

static void test_parse_duration_overflow(void **state)
{
        (void)state;
        /* UINT64_MAX usec is about 213503982 days. */
        check_duration("213503982d", UINT64_C(213503982) * USEC_PER_DAY);
        check_duration_fails("213503983d", -ERANGE);
        check_duration_fails("99999999999999999999s", -ERANGE);
        check_duration_fails("99999999999999999999999999ms", -ERANGE);
        check_duration_fails("18446744073709551615s", -ERANGE);
        /* Each part fits, the sum does not. */
        check_duration_fails("213503982d213503982d", -ERANGE);
        check_duration_fails("200000000d20000000d", -ERANGE);
        /* The largest exact ms value that fits. */
        check_duration("18446744073709551ms", UINT64_C(18446744073709551) * 1000);
        check_duration_fails("18446744073709552ms", -ERANGE);
}

/* --- format_duration --- */

static void check_format(uint64_t usec, const char *want)
{
        char buf[64];

        memset(buf, 'x', sizeof(buf));
        format_duration(usec, buf, sizeof(buf));
        if (strcmp(buf, want) != 0)
                fail_msg("format_duration(%llu) = \"%s\", expected \"%s\"",
                         (unsigned long long)usec, buf, want);
}

static void test_format_duration(void **state)
{
        (void)state;
        check_format(0, "0");
        check_format(10 * USEC_PER_MINUTE, "10m");
        check_format(5400 * USEC_PER_SEC, "1h30m");
        check_format(250 * USEC_PER_MSEC, "250ms");
        check_format(10 * USEC_PER_SEC, "10s");
        check_format(7 * USEC_PER_DAY, "7d");
        check_format(USEC_PER_DAY + USEC_PER_HOUR + USEC_PER_MINUTE + USEC_PER_SEC +
                             USEC_PER_MSEC,
                     "1d1h1m1s1ms");
        check_format(90 * USEC_PER_SEC, "1m30s");
        check_format(100 * USEC_PER_MSEC, "100ms");
        check_format(30 * USEC_PER_DAY, "30d");
        /* Below a millisecond it shows microseconds rather than lie. */
        check_format(1500, "1ms500us");
        check_format(7, "7us");
}

static void test_format_duration_round_trip(void **state)
{
        static const uint64_t values[] = {
                1000,
                100 * USEC_PER_MSEC,
                999 * USEC_PER_MSEC,
                USEC_PER_SEC,
                61 * USEC_PER_SEC,
                3599 * USEC_PER_SEC,
                USEC_PER_HOUR + 1000,
                25 * USEC_PER_HOUR,
                30 * USEC_PER_DAY,
                UINT64_C(213503982) * USEC_PER_DAY,
                UINT64_MAX / 1000 * 1000,
        };
        char buf[64];

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                uint64_t back = 0;

                format_duration(values[i], buf, sizeof(buf));
                if (parse_duration(buf, &back) != 0 || back != values[i])
                        fail_msg("%llu -> \"%s\" -> %llu", (unsigned long long)values[i], buf,
                                 (unsigned long long)back);
        }
        /* Every millisecond multiple in a range that crosses all units. */
        for (uint64_t v = 0; v < 3 * USEC_PER_DAY; v += 7919 * USEC_PER_MSEC + 1000) {
                uint64_t back = 1;

                format_duration(v, buf, sizeof(buf));
                assert_int_equal(parse_duration(buf, &back), 0);
                assert_int_equal(back, v);
        }
}

static void test_format_duration_small_buffer(void **state)
{
        char buf[8];

        (void)state;
        /* Never overruns and always terminates. */
        memset(buf, 'x', sizeof(buf));
        format_duration(5400 * USEC_PER_SEC, buf, 3);
        assert_int_equal(buf[3], 'x');
        assert_true(strlen(buf) < 3);
        assert_string_equal(buf, "1h");
        format_duration(5400 * USEC_PER_SEC, buf, 1);
        assert_string_equal(buf, "");
        buf[0] = 'y';
        format_duration(5400 * USEC_PER_SEC, buf, 0);
        assert_int_equal(buf[0], 'y');
}

/* --- parse_u64 --- */

static void test_parse_u64(void **state)
{
        uint64_t v = 7;

        (void)state;
        assert_int_equal(parse_u64("0", 0, 10, &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(parse_u64("10", 0, 10, &v), 0);
        assert_int_equal(v, 10);
        assert_int_equal(parse_u64("100", 100, 999999999, &v), 0);
        assert_int_equal(v, 100);
        assert_int_equal(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
        assert_true(v == UINT64_MAX);

        v = 7;
        assert_int_equal(parse_u64("11", 0, 10, &v), -ERANGE);
        assert_int_equal(parse_u64("99", 100, 200, &v), -ERANGE);
        assert_int_equal(parse_u64("201", 100, 200, &v), -ERANGE);
        assert_int_equal(parse_u64("18446744073709551616", 0, UINT64_MAX, &v), -ERANGE);
        assert_int_equal(parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
        assert_int_equal(parse_u64("", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_u64(NULL, 0, 10, &v), -EINVAL);
        assert_int_equal(parse_u64("-1", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_u64("+1", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_u64(" 1", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_u64("1 ", 0, 10, &v), -EINVAL);
        assert_int_equal(parse_u64("0x10", 0, 100, &v), -EINVAL);
        assert_int_equal(parse_u64("12a", 0, 100, &v), -EINVAL);
        assert_int_equal(parse_u64("1.0", 0, 100, &v), -EINVAL);
        assert_int_equal(v, 7);
}

/* --- identifiers --- */

static void test_vmid_valid(void **state)
{
        (void)state;
        assert_false(vmid_valid(0));
        assert_false(vmid_valid(99));
        assert_true(vmid_valid(100));
        assert_true(vmid_valid(12345));
        assert_true(vmid_valid(999999999));
        assert_false(vmid_valid(1000000000));
        assert_false(vmid_valid(UINT64_C(4294967296) + 100)); /* not truncated to 32 bits */
        assert_false(vmid_valid(UINT64_MAX));
}

static void test_node_name_valid(void **state)
{
        char name[80];

        (void)state;
        assert_true(node_name_valid("pve1"));
        assert_true(node_name_valid("a"));
        assert_true(node_name_valid("1"));
        assert_true(node_name_valid("a-b"));
        assert_true(node_name_valid("PVE-Node-01"));
        assert_false(node_name_valid("-a"));
        assert_false(node_name_valid("a-"));
        assert_false(node_name_valid("-"));
        assert_false(node_name_valid(""));
        assert_false(node_name_valid(NULL));
        assert_false(node_name_valid("a.b"));
        assert_false(node_name_valid("pve1.example.com"));
        assert_false(node_name_valid("a_b"));
        assert_false(node_name_valid("a b"));
        assert_false(node_name_valid("a/b"));
        assert_false(node_name_valid("n\xc3\xa9"));

        memset(name, 'a', sizeof(name));
        name[63] = '\0';
        assert_true(node_name_valid(name));
        name[63] = 'a';
        name[64] = '\0';
        assert_false(node_name_valid(name));
        name[62] = '-'; /* 63 chars ending in '-' */
        name[63] = '\0';
        assert_false(node_name_valid(name));
}

/* --- url_escape --- */

static void check_escape(const char *s, const char *want)
{
        char buf[256];

        assert_int_equal(url_escape(s, buf, sizeof(buf)), 0);
        assert_string_equal(buf, want);
}

static void test_url_escape(void **state)
{
        (void)state;
        check_escape("UPID:pve1:0000377E:19E15146:5F3C0469:vzshutdown:100:root@pam:",
                     "UPID%3Apve1%3A0000377E%3A19E15146%3A5F3C0469%3Avzshutdown%3A100%3Aroot%40pam%3A");
        check_escape("proxreap@pve!reaper", "proxreap%40pve%21reaper");
        check_escape("AZaz09-._~", "AZaz09-._~");
        check_escape("a b/c?d=e&f#g%h+i", "a%20b%2Fc%3Fd%3De%26f%23g%25h%2Bi");
        check_escape("\xc3\xa9\x7f\x01", "%C3%A9%7F%01");
        check_escape("", "");
}

static void test_url_escape_buffer(void **state)
{
        static const char upid[] = "UPID:pve1:0000377E:19E15146:5F3C0469:vzshutdown:100:root@pam:";
        static const char want[] =
                "UPID%3Apve1%3A0000377E%3A19E15146%3A5F3C0469%3Avzshutdown%3A100%3Aroot%40pam%3A";
        char buf[sizeof(want) + 8];

        (void)state;
        /* Exactly enough room (the escape plus its NUL). */
        assert_int_equal(url_escape(upid, buf, sizeof(want)), 0);
        assert_string_equal(buf, want);
        /* One byte short, also when the last item is a 3-byte escape. */
        memset(buf, 'x', sizeof(buf));
        assert_int_equal(url_escape(upid, buf, sizeof(want) - 1), -ENOBUFS);
        assert_int_equal(buf[sizeof(want) - 1], 'x'); /* nothing written past size */
        assert_int_equal(url_escape(upid, buf, sizeof(want) - 2), -ENOBUFS);
        assert_int_equal(url_escape(upid, buf, 4), -ENOBUFS);
        assert_int_equal(url_escape("abc", buf, 4), 0);
        assert_string_equal(buf, "abc");
        assert_int_equal(url_escape("abc", buf, 3), -ENOBUFS);
        assert_int_equal(url_escape("@", buf, 3), -ENOBUFS);
        assert_int_equal(url_escape("@", buf, 4), 0);
        assert_string_equal(buf, "%40");
        assert_int_equal(url_escape("", buf, 1), 0);
        assert_string_equal(buf, "");
        buf[0] = 'x';
        assert_int_equal(url_escape("", buf, 0), -ENOBUFS);
        assert_int_equal(buf[0], 'x');
}

/* --- tags --- */

struct tag_list {
        char tags[16][32];
        unsigned n;
        unsigned stop_at; /* 1-based index of the tag to stop at, 0: never */
};

static int collect_tag(const char *tag, size_t len, void *userdata)
{
        struct tag_list *l = userdata;

        assert_true(len > 0 && len < sizeof(l->tags[0]));
        assert_true(l->n < ELEMENTSOF(l->tags));
        memcpy(l->tags[l->n], tag, len);
        l->tags[l->n][len] = '\0';
        l->n++;
        return l->n == l->stop_at ? 42 : 0;
}

static void check_tags(const char *tags, unsigned n, const char *const *want)
{
        struct tag_list l = { .n = 0 };

        assert_int_equal(tags_foreach(tags, collect_tag, &l), 0);
        if (l.n != n)
                fail_msg("\"%s\": %u tags, expected %u", tags ? tags : "(null)", l.n, n);
        for (unsigned i = 0; i < n; i++)
                assert_string_equal(l.tags[i], want[i]);
}

static void test_tags_foreach(void **state)
{
        static const char *const abcd[] = { "a", "b", "c", "d" };
        static const char *const one[] = { "proxreap-keep" };
        static const char *const three[] = { "prod", "db", "proxreap-keep" };
        struct tag_list l = { .stop_at = 2 };

        (void)state;
        check_tags("a;b c,d", 4, abcd);
        check_tags("a;;b,, c  ;d;", 4, abcd);
        check_tags(";,; a\tb\nc d ", 4, abcd);
        check_tags("proxreap-keep", 1, one);
        check_tags("prod;db;proxreap-keep", 3, three);
        check_tags("prod,db proxreap-keep", 3, three);
        check_tags("", 0, NULL);
        check_tags(";; ,", 0, NULL);
        check_tags(NULL, 0, NULL);

        /* fn's non-zero value stops the walk and is returned. */
        assert_int_equal(tags_foreach("a;b;c", collect_tag, &l), 42);
        assert_int_equal(l.n, 2);
        assert_string_equal(l.tags[1], "b");
}

static void test_tags_contain(void **state)
{
        (void)state;
        assert_true(tags_contain("a;proxreap-keep;b", "proxreap-keep"));
        assert_true(tags_contain("proxreap-keep", "proxreap-keep"));
        assert_true(tags_contain("a,proxreap-keep", "proxreap-keep"));
        assert_true(tags_contain("a proxreap-keep", "proxreap-keep"));
        assert_true(tags_contain(" proxreap-keep ;", "proxreap-keep"));
        assert_false(tags_contain("a;proxreap-keeper;b", "proxreap-keep"));
        assert_false(tags_contain("a;proxreap;b", "proxreap-keep"));
        assert_false(tags_contain("xproxreap-keep", "proxreap-keep"));
        assert_false(tags_contain("proxreap-kee", "proxreap-keep"));
        assert_false(tags_contain("", "proxreap-keep"));
        assert_false(tags_contain(";;;", "proxreap-keep"));
        assert_false(tags_contain(NULL, "proxreap-keep"));
        assert_true(tags_contain("a;b", "b"));
        assert_false(tags_contain("ab", "b"));
}

/* --- the rest --- */

static void test_misc(void **state)
{
        char secret[16] = "hunter2hunter2!";
        char *copy;
        uint64_t a, b;

        (void)state;
        secure_zero(secret, sizeof(secret));
        for (size_t i = 0; i < sizeof(secret); i++)
                assert_int_equal(secret[i], 0);
        secure_zero(NULL, 10); /* tolerated */

        assert_null(strdup_or_null(NULL));
        copy = strdup_or_null("x");
        assert_string_equal(copy, "x");
        free(copy);

        a = now_monotonic_usec();
        b = now_monotonic_usec();
        assert_true(a > 0 && b >= a);
        /* The realtime clock is far past 2020-01-01. */
        assert_true(now_realtime_usec() > UINT64_C(1577836800) * USEC_PER_SEC);
}

/* What reaches a terminal or a log line from outside is inert. */
static void test_text_escape(void **state)
{
        static const struct {
                const char *in, *out;
        } cases[] = {
                { "web-01", "web-01" },
                { "a\nproxreapd: forged line", "a\\x0aproxreapd: forged line" },
                { "\x1b]0;owned\x07title", "\\x1b]0;owned\\x07title" },
                { "tab\there\r", "tab\\x09here\\x0d" },
                { "del\x7f", "del\\x7f" },
                { "csi\xc2\x9b" "31m", "csi\\xc2\\x9b31m" }, /* U+009B as UTF-8 */
                { "nbsp\xc2\xa0ok", "nbsp\xc2\xa0ok" }, /* U+00A0: printable */
                { "unicode-\xd1\x81\xd0\xb5-\xe6\x97\xa5-\xf0\x9f\x98\x80", "unicode-\xd1\x81\xd0\xb5-\xe6\x97\xa5-\xf0\x9f\x98\x80" },
                { "bad\xff\xc0\xaf", "bad\\xff\\xc0\\xaf" },
                { "cut\xe6\x97", "cut\\xe6\\x97" },
                { "surrogate\xed\xa0\x80", "surrogate\\xed\\xa0\\x80" },
                { "back\\slash", "back\\\\slash" },
                /* bidi override, line separator, zero width space, BOM, ALM */
                { "gnp.\xe2\x80\xae" "exe", "gnp.\\xe2\\x80\\xaeexe" },
                { "a\xe2\x80\xa8" "b", "a\\xe2\\x80\\xa8b" },
                { "z\xe2\x80\x8bw", "z\\xe2\\x80\\x8bw" },
                { "\xef\xbb\xbf" "bom", "\\xef\\xbb\\xbfbom" },
                { "alm\xd8\x9c", "alm\\xd8\\x9c" },
                { "dash\xe2\x80\x94ok", "dash\xe2\x80\x94ok" }, /* U+2014: printable */
                { "", "" },
        };
        char buf[256];

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++)
                assert_string_equal(text_escape(cases[i].in, buf, sizeof(buf)), cases[i].out);
        assert_string_equal(text_escape(NULL, buf, sizeof(buf)), "");
        /* Cut like snprintf, never inside an escape or a character. */
        for (size_t size = 1; size <= 12; size++) {
                memset(buf, 'x', sizeof(buf));
                text_escape("ab\n\xe6\x97\xa5" "c", buf, size);
                assert_true(strlen(buf) < size);
                assert_true(strncmp("ab\\x0a\xe6\x97\xa5" "c", buf, strlen(buf)) == 0);
                assert_true(strlen(buf) == 0 || strlen(buf) == 1 || strlen(buf) == 2 ||
                            strlen(buf) == 6 || strlen(buf) == 9 || strlen(buf) == 10);
        }
        /* The rotating buffers hold several at once. */
        {
                const char *a = text_shown("a\n"), *b = text_shown("b\x1b");

                assert_string_equal(a, "a\\x0a");
                assert_string_equal(b, "b\\x1b");
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_duration_units),
                cmocka_unit_test(test_parse_duration_combinations),
                cmocka_unit_test(test_parse_duration_rejects),
                cmocka_unit_test(test_parse_duration_systemd_spans),
                cmocka_unit_test(test_parse_duration_overflow),
                cmocka_unit_test(test_format_duration),
                cmocka_unit_test(test_format_duration_round_trip),
                cmocka_unit_test(test_format_duration_small_buffer),
                cmocka_unit_test(test_parse_u64),
                cmocka_unit_test(test_vmid_valid),
                cmocka_unit_test(test_node_name_valid),
                cmocka_unit_test(test_url_escape),
                cmocka_unit_test(test_url_escape_buffer),
                cmocka_unit_test(test_tags_foreach),
                cmocka_unit_test(test_tags_contain),
                cmocka_unit_test(test_misc),
                cmocka_unit_test(test_text_escape),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
