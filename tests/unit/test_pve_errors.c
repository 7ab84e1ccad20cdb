/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of the error paths of the API client that need no network:
 * the message made from an HTTP error answer, and the retry backoff.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "http.h"
#include "pve.h"
#include "testutil.h"
#include "util.h"

/* --- pve_format_http_error --- */

static void check_http_error(long status, const char *reason, const char *body, const char *want)
{
        char buf[768];

        memset(buf, 'x', sizeof(buf));
        pve_format_http_error(status, reason, body, buf, sizeof(buf));
        assert_string_equal(buf, want);
}

static void test_400_with_errors_map(void **state)
{
        (void)state;
        /* pve-http-server >= 5.2: data null, the errors map, the message. */
        check_http_error(400, "Parameter verification failed.",
                         "{\"data\":null,\"errors\":{\"vmid\":\"value must be at least 100\"},"
                         "\"message\":\"Parameter verification failed.\\n\"}",
                         "HTTP 400 Parameter verification failed. (vmid: value must be at least 100)");
        /* Several parameters, in the order sent; only the first line of each. */
        check_http_error(400, "Parameter verification failed.",
                         "{\"data\":null,\"errors\":{\"vmid\":\"value must be at least 100\","
                         "\"node\":\"invalid format - value does not look like a valid node name\\n\","
                         "\"force\":\"type check ('boolean') failed - got 'yes'\\nsecond line\"}}",
                         "HTTP 400 Parameter verification failed. (vmid: value must be at least 100; "
                         "node: invalid format - value does not look like a valid node name; "
                         "force: type check ('boolean') failed - got 'yes')");
        /* Older servers: no "message". A value that is not a string. */
        check_http_error(400, "Parameter verification failed.",
                         "{\"data\":null,\"errors\":{\"timeout\":5}}",
                         "HTTP 400 Parameter verification failed. (timeout: ?)");
        /* An empty map adds nothing. */
        check_http_error(400, "Parameter verification failed.", "{\"data\":null,\"errors\":{}}",
                         "HTTP 400 Parameter verification failed.");
        /* "errors" that is not a map is ignored. */
        check_http_error(400, "Bad Request", "{\"data\":null,\"errors\":\"vmid\"}",
                         "HTTP 400 Bad Request");
}

static void test_401_and_others(void **state)
{
        (void)state;
        /* 401: the reason phrase only, the body is empty. */
        check_http_error(401, "Authentication failed!", "", "HTTP 401 Authentication failed!");
        check_http_error(401, "No ticket", NULL, "HTTP 401 No ticket");
        check_http_error(401, "", "", "HTTP 401 (no message)");
        check_http_error(401, NULL, NULL, "HTTP 401 (no message)");
        check_http_error(403, "Permission check failed (/vms/100, VM.PowerMgmt)", "{\"data\":null}",
                         "HTTP 403 Permission check failed (/vms/100, VM.PowerMgmt)");
        check_http_error(501, "Method 'GET /x' not implemented", "{\"data\":null}",
                         "HTTP 501 Method 'GET /x' not implemented");
        check_http_error(500, "VM 100 is running - destroy failed",
                         "{\"data\":null,\"message\":\"VM 100 is running - destroy failed\\n\"}",
                         "HTTP 500 VM 100 is running - destroy failed");
        /* A proxy's HTML page or garbage is not JSON: the status line only. */
        check_http_error(502, "Bad Gateway", "<html><body>502 Bad Gateway</body></html>",
                         "HTTP 502 Bad Gateway");
        check_http_error(596, "Connection timed out", "{\"errors\":", "HTTP 596 Connection timed out");
        check_http_error(500, "Internal Server Error", "[1,2]", "HTTP 500 Internal Server Error");
}

static void test_501_sample(void **state)
{
        char *path = tu_strdupf("%s/pve-api/samples/error-501-not-implemented.txt", tu_testdata());
        char *text = tu_read_file(path, NULL), *reason, *want;
        char *suffix;

        (void)state;
        assert_non_null(text);
        /* The web UI shows the reason phrase with " (501)" appended. */
        text[strcspn(text, "\n")] = '\0';
        suffix = strstr(text, " (501)");
        assert_non_null(suffix);
        reason = tu_strdupf("%.*s", (int)(suffix - text), text);
        assert_string_equal(reason, "Method 'GET /nodes/node3/vzdump/defaults' not implemented");
        want = tu_strdupf("HTTP 501 %s", reason);
        check_http_error(501, reason, "{\"data\":null}", want);
        free(want);
        free(reason);
        free(text);
        free(path);
}

static void test_http_error_small_buffer(void **state)
{
        static const char body[] = "{\"data\":null,\"errors\":{\"vmid\":\"value must be at least 100\"}}";
        static const char full[] =
                "HTTP 400 Parameter verification failed. (vmid: value must be at least 100)";
        char buf[128];

        (void)state;
        /* Always terminated, never past size. */
        for (size_t size = 1; size <= sizeof(full) + 1; size++) {
                memset(buf, 'x', sizeof(buf));
                pve_format_http_error(400, "Parameter verification failed.", body, buf, size);
                assert_int_equal(buf[size], 'x');
                assert_true(strlen(buf) < size);
                assert_memory_equal(buf, full, strlen(buf));
        }
        pve_format_http_error(400, "Parameter verification failed.", body, buf, sizeof(full));
        assert_string_equal(buf, full);
}

/* --- http_backoff_usec --- */

static const struct http_options pve_opts = {
        /* what pve_new() uses */
        .backoff_base_usec = 250 * USEC_PER_MSEC,
        .backoff_max_usec = 4 * USEC_PER_SEC,
};

static uint32_t xorshift(uint32_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 17;
        *s ^= *s << 5;
        return *s;
}

static void test_backoff_grows_exponentially(void **state)
{
        static const uint64_t full[] = { 250000, 500000, 1000000, 2000000, 4000000, 4000000,
                                         4000000 };

        (void)state;
        for (unsigned a = 1; a <= ELEMENTSOF(full); a++) {
                uint64_t d = full[a - 1];

                /* random 0: the guaranteed half; random d/2: the whole pause */
                assert_int_equal(http_backoff_usec(&pve_opts, a, 0), d / 2);
                assert_int_equal(http_backoff_usec(&pve_opts, a, (uint32_t)(d / 2)), d);
                assert_int_equal(http_backoff_usec(&pve_opts, a, (uint32_t)(d / 2 + 1)), d / 2);
        }
}

static void test_backoff_jitter_range(void **state)
{
        uint32_t seed = 0x12345678;

        (void)state;
        for (unsigned a = 1; a <= 12; a++) {
                uint64_t d = pve_opts.backoff_base_usec << (a - 1);
                uint64_t lo = UINT64_MAX, hi = 0;

                if (d > pve_opts.backoff_max_usec)
                        d = pve_opts.backoff_max_usec;
                for (unsigned i = 0; i < 2000; i++) {
                        uint64_t p = http_backoff_usec(&pve_opts, a, xorshift(&seed));

                        if (p < d / 2 || p > d)
                                fail_msg("attempt %u: %llu outside [%llu, %llu]", a,
                                         (unsigned long long)p, (unsigned long long)(d / 2),
                                         (unsigned long long)d);
                        lo = p < lo ? p : lo;
                        hi = p > hi ? p : hi;
                }
                /* The jitter actually spreads the pauses over the range. */
                assert_true(lo < d / 2 + d / 8);
                assert_true(hi > d - d / 8);
        }
        assert_true(http_backoff_usec(&pve_opts, 1000, UINT32_MAX) <= pve_opts.backoff_max_usec);
        assert_true(http_backoff_usec(&pve_opts, UINT32_MAX, UINT32_MAX) <=
                    pve_opts.backoff_max_usec);
}

static void test_backoff_edges(void **state)
{
        struct http_options o = { .backoff_base_usec = 10 * USEC_PER_SEC,
                                  .backoff_max_usec = 4 * USEC_PER_SEC };

        (void)state;
        /* A base above the cap is capped. */
        assert_int_equal(http_backoff_usec(&o, 1, 0), 2 * USEC_PER_SEC);
        assert_true(http_backoff_usec(&o, 1, UINT32_MAX) <= 4 * USEC_PER_SEC);
        /* No pause configured: none, whatever the attempt or random. */
        o.backoff_base_usec = 0;
        assert_int_equal(http_backoff_usec(&o, 1, UINT32_MAX), 0);
        assert_int_equal(http_backoff_usec(&o, 50, 12345), 0);
        /* 1 usec: nothing to halve, no jitter. */
        o.backoff_base_usec = 1;
        o.backoff_max_usec = 1;
        assert_int_equal(http_backoff_usec(&o, 3, UINT32_MAX), 0);
}

static void test_backoff_large_cap(void **state)
{
        struct http_options o = { .backoff_base_usec = USEC_PER_SEC, .backoff_max_usec = UINT64_MAX };
        uint64_t prev = 0;

        (void)state;
        /* Regression: with a cap that doubling can overflow (here "no cap"),
         * d *= 2 wraps around past 2^64 and the pause becomes garbage
         * (much smaller than the one before, even 0). src/http.c:109-110:
         * stop doubling when d > backoff_max_usec / 2 (then cap). Not
         * reachable with pve.c's 250 ms / 4 s, but the option struct
         * allows it. */
        for (unsigned a = 1; a <= 100; a++) {
                uint64_t p = http_backoff_usec(&o, a, 0);

                if (p < prev)
                        fail_msg("attempt %u: pause %llu shorter than attempt %u's %llu", a,
                                 (unsigned long long)p, a - 1, (unsigned long long)prev);
                prev = p;
        }
        assert_true(prev >= UINT64_MAX / 4);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_400_with_errors_map),
                cmocka_unit_test(test_401_and_others),
                cmocka_unit_test(test_501_sample),
                cmocka_unit_test(test_http_error_small_buffer),
                cmocka_unit_test(test_backoff_grows_exponentially),
                cmocka_unit_test(test_backoff_jitter_range),
                cmocka_unit_test(test_backoff_edges),
                cmocka_unit_test(test_backoff_large_cap),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
