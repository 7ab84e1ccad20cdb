/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of config: defaults, every kind of error with its exact
 * "FILE:LINE: message", secrets, and the shipped conf/proxreap.conf.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/utsname.h>

#include "config.h"
#include "testutil.h"
#include "util.h"

#define SECRET "0123abcd-4567-89ef-0123-456789abcdef"

/* The token file every valid test config points at (mode 0600). */
static char *token_path;

/* An [api] group that loads: http (no CA file needed) and a token file. */
#define API_OPEN                                                                              \
        "api = {\n"                                     /* 1 */                               \
        "        url = \"http://127.0.0.1:8006\";\n"     /* 2 */                               \
        "        token_id = \"proxreap@pve!reaper\";\n"  /* 3 */                               \
        "        token_secret_file = \"@TOKEN@\";\n"     /* 4 */
#define API API_OPEN "};\n" /* 5 */

/* The same without token_secret_file ($CREDENTIALS_DIRECTORY). */
#define API_NO_SECRET                                                                         \
        "api = {\n"                                                                           \
        "        url = \"http://127.0.0.1:8006\";\n"                                          \
        "        token_id = \"proxreap@pve!reaper\";\n"                                       \
        "};\n"

static int group_setup(void **state)
{
        (void)state;
        token_path = tu_write_temp(SECRET "\n", 0600);
        unsetenv("CREDENTIALS_DIRECTORY");
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        tu_unlink_free(token_path);
        token_path = NULL;
        return 0;
}

/* One config_load() of a text written to a temporary file. */
struct loaded {
        char *path;
        char *text; /* as written, @TOKEN@ replaced */
        struct config *c;
        char *errors;
        int r;
};

static struct config sentinel;

static void load_text(const char *text, struct loaded *l)
{
        memset(l, 0, sizeof(*l));
        l->text = strstr(text, "@TOKEN@") ? tu_replace(text, "@TOKEN@", token_path)
                                          : tu_strdupf("%s", text);
        l->path = tu_write_temp(l->text, 0644);
        l->c = &sentinel;
        l->r = config_load(l->path, &l->c, &l->errors);
        if (l->r == 0)
                assert_ptr_not_equal(l->c, &sentinel);
        else
                assert_ptr_equal(l->c, &sentinel); /* ret_ written only on success */
}

static void loaded_done(struct loaded *l)
{
        if (l->c != &sentinel)
                config_free(l->c);
        free(l->errors);
        free(l->text);
        tu_unlink_free(l->path);
        memset(l, 0, sizeof(*l));
}

/* Loads text, which must succeed. */
static void load_ok(const char *text, struct loaded *l)
{
        load_text(text, l);
        if (l->r != 0)
                fail_msg("config_load failed (%d):\n%s", l->r, l->errors ? l->errors : "");
        assert_null(l->errors);
}

/* text must fail with exactly one error, on the line holding needle. */
static void expect_error_at(const char *text, unsigned line, const char *msg)
{
        struct loaded l;
        char *want, *got;
        int r;

        load_text(text, &l);
        want = tu_strdupf("%s:%u: %s\n", l.path, line, msg);
        got = l.errors ? tu_strdupf("%s", l.errors) : NULL;
        r = l.r;
        loaded_done(&l); /* before asserting: a failure leaves no file behind */
        if (r != -EINVAL || !got || strcmp(got, want) != 0) {
                print_error("config_load: %d, errors:\n%s\nexpected -EINVAL and:\n%s\n", r,
                            got ? got : "(none)\n", want);
                free(want);
                free(got);
                fail();
        }
        free(want);
        free(got);
}

static void expect_error(const char *text, const char *needle, const char *msg)
{
        unsigned line = tu_line_of(text, needle);

        if (line == 0)
                fail_msg("test bug: '%s' not in the config text", needle);
        expect_error_at(text, line, msg);
}

static char *short_hostname(void)
{
        struct utsname u;

        assert_int_equal(uname(&u), 0);
        u.nodename[strcspn(u.nodename, ".")] = '\0';
        return tu_strdupf("%s", u.nodename);
}

/* --- a valid minimal config and its defaults --- */

static void test_minimal_defaults(void **state)
{
        struct loaded l;
        struct config *c;
        char *host = short_hostname();

        (void)state;
        load_ok(API, &l);
        c = l.c;
        assert_string_equal(c->path, l.path);
        assert_string_equal(c->api_url, "http://127.0.0.1:8006/api2/json");
        assert_string_equal(c->token_id, "proxreap@pve!reaper");
        assert_string_equal(c->token_secret, SECRET); /* the newline is not part of it */
        assert_null(c->user);
        assert_null(c->password);
        assert_string_equal(c->ca_file, "/etc/pve/pve-root-ca.pem");
        assert_null(c->pinned_pubkey);
        assert_false(c->insecure);
        assert_int_equal(c->timeout_usec, 15 * USEC_PER_SEC);
        assert_int_equal(c->connect_timeout_usec, 5 * USEC_PER_SEC);
        assert_int_equal(c->retries, 2);
        assert_int_equal(c->max_response_bytes, (size_t)64 << 20);

        assert_int_equal(c->interval_usec, 10 * USEC_PER_SEC);
        assert_int_equal(c->window_usec, 10 * USEC_PER_MINUTE);
        assert_double_exact(c->min_coverage, 0.9);
        assert_int_equal(c->node_scope, NODE_SCOPE_LOCAL);
        assert_int_equal(c->nodes.n, 0);
        assert_string_equal(c->node_name, host);
        assert_true(c->observe_qemu);
        assert_true(c->observe_lxc);

        assert_double_exact(c->cpu_percent, 5.0);
        assert_double_exact(c->mem_mb, 1024.0);
        assert_true(c->net_kbps < 0);
        assert_true(c->disk_kbps < 0);
        assert_true(c->cpu_share < 0);

        assert_int_equal(c->exclude_tags.n, 1);
        assert_string_equal(c->exclude_tags.v[0], "proxreap-keep");
        assert_int_equal(c->exclude_pools.n, 0);
        assert_int_equal(c->include_tags.n, 0);
        assert_int_equal(c->n_exclude_vmids, 0);
        assert_false(c->allow_ha);
        assert_false(c->discard_snapshots);
        assert_int_equal(c->mode, REAP_MODE_OBSERVE);
        assert_string_equal(reap_mode_to_string(c->mode), "observe");
        assert_string_equal(c->status_file, "/run/proxreap/status.json");
        assert_int_equal(config_window_samples(c), 60);

        loaded_done(&l);
        free(host);
}

static void test_every_key_set(void **state)
{
        static const char text[] =
                "api = {\n"
                "        url = \"https://pve.example.com:8006/\";\n"
                "        token_id = \"proxreap@pve!reaper\";\n"
                "        token_secret_file = \"@TOKEN@\";\n"
                "        ca_file = \"\";\n" /* "" = the system trust store */
                "        pinned_pubkey = \"sha256//AAAA\";\n"
                "        insecure = true;\n"
                "        timeout = \"30s\";\n"
                "        connect_timeout = \"250ms\";\n"
                "        retries = 0;\n"
                "        max_response_mb = 16;\n"
                "};\n"
                "observe = {\n"
                "        interval = \"5s\";\n"
                "        window = \"1h30m\";\n"
                "        min_coverage = 1;\n"
                "        nodes = [\"pve1\", \"pve-2\"];\n"
                "        node_name = \"pve1\";\n"
                "        types = [\"lxc\"];\n"
                "};\n"
                "idle = {\n"
                "        cpu_percent = 2.5;\n"
                "        mem_mb = 512;\n"
                "        net_kbps = 10.0;\n"
                "        disk_kbps = 50;\n"
                "        cpu_share = 0.97;\n"
                "};\n"
                "select = {\n"
                "        exclude_tags = [\"keep\", \"prod\"];\n"
                "        exclude_pools = [\"infra\"];\n"
                "        exclude_vmids = (\"100-199\", 250, \"300\");\n"
                "        include_tags = [\"reap-me\"];\n"
                "        allow_ha = true;\n"
                "};\n"
                "reap = {\n"
                "        mode = \"observe\";\n"
                "        discard_snapshots = true;\n"
                "};\n"
                "status = {\n"
                "        file = \"/tmp/proxreap-status.json\";\n"
                "};\n";
        struct loaded l;
        struct config *c;

        (void)state;
        load_ok(text, &l);
        c = l.c;
        assert_string_equal(c->api_url, "https://pve.example.com:8006/api2/json");
        assert_null(c->ca_file);
        assert_string_equal(c->pinned_pubkey, "sha256//AAAA");
        assert_true(c->insecure);
        assert_int_equal(c->timeout_usec, 30 * USEC_PER_SEC);
        assert_int_equal(c->connect_timeout_usec, 250 * USEC_PER_MSEC);
        assert_int_equal(c->retries, 0);
        assert_int_equal(c->max_response_bytes, (size_t)16 << 20);
        assert_int_equal(c->interval_usec, 5 * USEC_PER_SEC);
        assert_int_equal(c->window_usec, 90 * USEC_PER_MINUTE);
        assert_double_exact(c->min_coverage, 1.0);
        assert_int_equal(c->node_scope, NODE_SCOPE_LIST);
        assert_int_equal(c->nodes.n, 2);
        assert_string_equal(c->nodes.v[0], "pve1");
        assert_string_equal(c->nodes.v[1], "pve-2");
        assert_string_equal(c->node_name, "pve1");
        assert_false(c->observe_qemu);
        assert_true(c->observe_lxc);
        assert_double_exact(c->cpu_percent, 2.5);
        assert_double_exact(c->mem_mb, 512.0);
        assert_double_exact(c->net_kbps, 10.0);
        assert_double_exact(c->disk_kbps, 50.0);
        assert_double_exact(c->cpu_share, 0.97);
        /* proxreap-keep is always there: the list adds to it. */
        assert_int_equal(c->exclude_tags.n, 3);
        assert_string_equal(c->exclude_tags.v[0], "keep");
        assert_string_equal(c->exclude_tags.v[1], "prod");
        assert_string_equal(c->exclude_tags.v[2], "proxreap-keep");
        assert_null(c->exclude_tags.v[3]);
        assert_true(c->discard_snapshots);
        assert_int_equal(c->exclude_pools.n, 1);
        assert_string_equal(c->exclude_pools.v[0], "infra");
        assert_int_equal(c->include_tags.n, 1);
        assert_string_equal(c->include_tags.v[0], "reap-me");
        assert_int_equal(c->n_exclude_vmids, 3);
        assert_int_equal(c->exclude_vmids[0].first, 100);
        assert_int_equal(c->exclude_vmids[0].last, 199);
        assert_int_equal(c->exclude_vmids[1].first, 250);
        assert_int_equal(c->exclude_vmids[1].last, 250);
        assert_int_equal(c->exclude_vmids[2].first, 300);
        assert_int_equal(c->exclude_vmids[2].last, 300);
        assert_true(c->allow_ha);
        assert_string_equal(c->status_file, "/tmp/proxreap-status.json");
        assert_int_equal(config_window_samples(c), 1080);
        loaded_done(&l);
}

/* --- error kinds, each with its exact FILE:LINE prefix --- */

/* Tag lists: Proxmox's syntax, and proxreap-keep kept in any case. */
static void test_tags(void **state)
{
        static const char *const bad[] = { "-bad", "sp ace", ".dot", "+plus", "semi;colon", "é" };
        struct loaded l;

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                for (int include = 0; include < 2; include++) {
                        char *text = tu_strdupf(API "select = {\n"
                                                    "        %s = [\"ok_1.a+b-c\", \"%s\"];\n"
                                                    "};\n",
                                                include ? "include_tags" : "exclude_tags", bad[i]);
                        char *msg = tu_strdupf(
                                "'select.%s': '%s' is not a Proxmox tag (letters, digits, '_', '-', '+', '.'; not starting with '-', '+' or '.')",
                                include ? "include_tags" : "exclude_tags", bad[i]);

                        expect_error_at(text, 7, msg);
                        free(text);
                        free(msg);
                }
        /* Already in the list (any case): not added twice. */
        load_ok(API "select = {\n  exclude_tags = [\"Proxreap-Keep\", \"infra\"];\n};\n", &l);
        assert_int_equal(l.c->exclude_tags.n, 2);
        loaded_done(&l);
        load_ok(API "select = {\n  exclude_tags = [];\n  include_tags = [\"lab\"];\n};\n", &l);
        assert_int_equal(l.c->exclude_tags.n, 1);
        assert_string_equal(l.c->exclude_tags.v[0], "proxreap-keep");
        assert_int_equal(l.c->include_tags.n, 1);
        loaded_done(&l);
}

static void test_syntax_error(void **state)
{
        (void)state;
        expect_error_at(API "observe = {\n"
                            "        interval = ;\n"
                            "};\n",
                        7, "syntax error");
        expect_error_at(API "observe = {\n"
                            "        interval = \"10s\";\n"
                            "        interval = \"5s\";\n"
                            "};\n",
                        8, "syntax error: duplicate setting name");
        expect_error_at("api = {\n"
                        "        url = \"http://127.0.0.1:8006\"\n"
                        "        retries 2;\n"
                        "};\n",
                        3, "syntax error");
        expect_error_at(API "select = {\n"
                            "        exclude_vmids = [100, \"200\"];\n"
                            "};\n",
                        7, "syntax error: mismatched element type in array (the elements of one "
                           "[...] array share one type: write them all as strings, like "
                           "[\"100-199\", \"300\"])");
        /* An unclosed group: the error is at the end of the file. */
        expect_error_at(API "observe = {\n"
                            "        interval = \"10s\";\n",
                        8, "syntax error");
}

static void test_unknown_key_and_group(void **state)
{
        (void)state;
        expect_error(API "observe = {\n"
                         "        intervall = \"10s\";\n"
                         "};\n",
                     "intervall", "unknown key 'observe.intervall'");
        /* A key of another group is unknown in this one. */
        expect_error(API "idle = {\n"
                         "        interval = \"10s\";\n"
                         "};\n",
                     "interval", "unknown key 'idle.interval'");
        expect_error(API "foo = {\n"
                         "        a = 1;\n"
                         "};\n",
                     "foo", "unknown group 'foo'");
        expect_error(API "interval = \"10s\";\n", "interval", "unknown key 'interval'");
        expect_error(API "observe = 5;\n", "observe",
                     "'observe' must be a group: observe = { ... };");
}

struct error_case {
        const char *text; /* appended to API */
        const char *needle; /* on the line of the error */
        const char *msg;
};

static void run_cases(const struct error_case *cases, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                char *text = tu_strdupf(API "%s", cases[i].text);

                expect_error(text, cases[i].needle, cases[i].msg);
                free(text);
        }
}

static void test_wrong_type(void **state)
{
        static const struct error_case cases[] = {
                { "observe = {\n  interval = 10;\n};\n", "interval",
                  "'observe.interval' must be a duration string such as \"10s\", not an integer" },
                { "idle = {\n  cpu_percent = \"5\";\n};\n", "cpu_percent",
                  "'idle.cpu_percent' must be a number, not a string" },
                { "observe = {\n  min_coverage = true;\n};\n", "min_coverage",
                  "'observe.min_coverage' must be a number, not a boolean" },
                { "select = {\n  allow_ha = \"yes\";\n};\n", "allow_ha",
                  "'select.allow_ha' must be a boolean (true or false), not a string" },
                { "select = {\n  exclude_tags = \"keep\";\n};\n", "exclude_tags",
                  "'select.exclude_tags' must be a list of strings such as [\"a\", \"b\"], not a string" },
                { "select = {\n  exclude_pools = [1];\n};\n", "exclude_pools",
                  "'select.exclude_pools' must be a list of strings, not an integer" },
                { "status = {\n  file = 5;\n};\n", "file = 5", "'status.file' must be a string, not an integer" },
                { "reap = {\n  mode = 1.5;\n};\n", "mode", "'reap.mode' must be a string, not a number" },
                { "select = {\n  exclude_vmids = 100;\n};\n", "exclude_vmids",
                  "'select.exclude_vmids' must be a list such as [\"100-199\", \"250\"], not an integer" },
        };

        (void)state;
        run_cases(cases, ELEMENTSOF(cases));
}

static void test_number_out_of_range(void **state)
{
        static const struct error_case cases[] = {
                { "idle = {\n  cpu_percent = 0;\n};\n", "cpu_percent",
                  "'idle.cpu_percent' = 0 is out of range (more than 0 and at most 10000)" },
                { "idle = {\n  cpu_percent = 10000.5;\n};\n", "cpu_percent",
                  "'idle.cpu_percent' = 10000.5 is out of range (more than 0 and at most 10000)" },
                { "idle = {\n  mem_mb = -5;\n};\n", "mem_mb",
                  "'idle.mem_mb' = -5 is out of range (more than 0 and at most 1e+09)" },
                { "observe = {\n  min_coverage = 1.5;\n};\n", "min_coverage",
                  "'observe.min_coverage' = 1.5 is out of range (more than 0 and at most 1)" },
                { "observe = {\n  min_coverage = 0.0;\n};\n", "min_coverage",
                  "'observe.min_coverage' = 0 is out of range (more than 0 and at most 1)" },
                { "idle = {\n  cpu_share = 1.01;\n};\n", "cpu_share",
                  "'idle.cpu_share' = 1.01 is out of range (more than 0 and at most 1)" },
        };
        /* Keys of the api group: one line added to API's group. */
        static const struct error_case api_cases[] = {
                { "        retries = 11;\n", "retries",
                  "'api.retries' = 11 must be a whole number from 0 to 10" },
                { "        retries = 1.5;\n", "retries",
                  "'api.retries' = 1.5 must be a whole number from 0 to 10" },
                { "        retries = -1;\n", "retries",
                  "'api.retries' = -1 must be a whole number from 0 to 10" },
                { "        max_response_mb = 0;\n", "max_response_mb",
                  "'api.max_response_mb' = 0 must be a whole number of MiB from 1 to 4096" },
                { "        max_response_mb = 4097;\n", "max_response_mb",
                  "'api.max_response_mb' = 4097 must be a whole number of MiB from 1 to 4096" },
                { "        max_response_mb = 1.5;\n", "max_response_mb",
                  "'api.max_response_mb' = 1.5 must be a whole number of MiB from 1 to 4096" },
        };

        (void)state;
        run_cases(cases, ELEMENTSOF(cases));
        for (size_t i = 0; i < ELEMENTSOF(api_cases); i++) {
                char *text = tu_strdupf(API_OPEN "%s};\n", api_cases[i].text);

                expect_error(text, api_cases[i].needle, api_cases[i].msg);
                free(text);
        }
}

static void test_numbers_at_bounds_accepted(void **state)
{
        struct loaded l;

        (void)state;
        load_ok(API "observe = {\n  min_coverage = 1.0;\n};\n"
                    "idle = {\n  cpu_percent = 10000;\n  mem_mb = 0.001;\n  cpu_share = 1;\n};\n",
                &l);
        assert_double_exact(l.c->min_coverage, 1.0);
        assert_double_exact(l.c->cpu_percent, 10000.0);
        assert_double_exact(l.c->mem_mb, 0.001);
        assert_double_exact(l.c->cpu_share, 1.0);
        loaded_done(&l);
}

static void test_invalid_duration(void **state)
{
        static const struct error_case cases[] = {
                { "observe = {\n  interval = \"10\";\n};\n", "interval",
                  "'observe.interval': invalid duration '10' (use a number with ms, s, m, h or d, e.g. \"10s\")" },
                { "observe = {\n  window = \"ten minutes\";\n};\n", "window",
                  "'observe.window': invalid duration 'ten minutes' (use a number with ms, s, m, h or d, e.g. \"10s\")" },
                { "observe = {\n  window = \"99999999999999999999s\";\n};\n", "window",
                  "'observe.window': invalid duration '99999999999999999999s' (use a number with ms, s, m, h or d, e.g. \"10s\")" },
        };

        (void)state;
        run_cases(cases, ELEMENTSOF(cases));
}

static void test_duration_out_of_range(void **state)
{
        static const struct error_case cases[] = {
                { "observe = {\n  interval = \"2h\";\n};\n", "interval",
                  "'observe.interval' = '2h' is out of range (100ms to 1h)" },
                { "observe = {\n  interval = \"99ms\";\n};\n", "interval",
                  "'observe.interval' = '99ms' is out of range (100ms to 1h)" },
                { "observe = {\n  interval = \"0\";\n};\n", "interval",
                  "'observe.interval' = '0' is out of range (100ms to 1h)" },
                { "observe = {\n  window = \"31d\";\n};\n", "window",
                  "'observe.window' = '31d' is out of range (100ms to 30d)" },
        };

        (void)state;
        run_cases(cases, ELEMENTSOF(cases));
        expect_error("api = {\n"
                     "        url = \"http://127.0.0.1:8006\";\n"
                     "        token_id = \"proxreap@pve!reaper\";\n"
                     "        token_secret_file = \"@TOKEN@\";\n"
                     "        timeout = \"11m\";\n"
                     "};\n",
                     "timeout", "'api.timeout' = '11m' is out of range (100ms to 10m)");
}

static void test_duration_bounds_accepted(void **state)
{
        struct loaded l;

        (void)state;
        load_ok(API "observe = {\n  interval = \"100ms\";\n  window = \"1s\";\n};\n", &l);
        assert_int_equal(l.c->interval_usec, 100 * USEC_PER_MSEC);
        assert_int_equal(l.c->window_usec, USEC_PER_SEC);
        assert_int_equal(config_window_samples(l.c), 10);
        loaded_done(&l);

        load_ok(API "observe = {\n  interval = \"1h\";\n  window = \"30d\";\n};\n", &l);
        assert_int_equal(l.c->interval_usec, USEC_PER_HOUR);
        assert_int_equal(l.c->window_usec, 30 * USEC_PER_DAY);
        assert_int_equal(config_window_samples(l.c), 720);
        loaded_done(&l);
}

static void test_window_vs_interval(void **state)
{
        (void)state;
        expect_error(API "observe = {\n"
                         "        interval = \"1m\";\n"
                         "        window = \"30s\";\n"
                         "};\n",
                     "window", "'observe.window' must be at least 'observe.interval'");
        expect_error(API "observe = {\n"
                         "        interval = \"100ms\";\n"
                         "        window = \"1h\";\n"
                         "};\n",
                     "window",
                     "'observe.window' / 'observe.interval' gives 36000 samples per guest, more than 4096");
}

/* observe.stale_after: a minute, or three polls when they are longer;
 * given, at least two polls. */
static void test_stale_after(void **state)
{
        struct loaded l;

        (void)state;
        load_ok(API, &l);
        assert_true(l.c->stale_after_usec == USEC_PER_MINUTE);
        loaded_done(&l);
        load_ok(API "observe = {\n        interval = \"40s\";\n        window = \"20m\";\n};\n", &l);
        assert_true(l.c->stale_after_usec == 120 * USEC_PER_SEC);
        loaded_done(&l);
        expect_error(API "observe = {\n"
                         "        interval = \"10s\";\n"
                         "        stale_after = \"15s\";\n"
                         "};\n",
                     "stale_after", "'observe.stale_after' must be at least twice 'observe.interval'");
}

static void test_window_vs_interval_default_window(void **state)
{
        (void)state;
        /* Regression: when observe.window is not in the file, the error is reported
         * at line 1 (config_lookup("observe.window") is NULL, line_of(NULL)
         * gives 1), which points at "api = {" instead of the key the user
         * wrote: it should name the observe.interval line (7).
         * src/config.c:873 (check_cross). */
        expect_error(API "observe = {\n"
                         "        interval = \"1h\";\n"
                         "};\n",
                     "interval", "'observe.window' must be at least 'observe.interval'");
}

/* --- secrets --- */

static char *api_with_secret(const char *file)
{
        return tu_strdupf("api = {\n"
                          "        url = \"http://127.0.0.1:8006\";\n"
                          "        token_id = \"proxreap@pve!reaper\";\n"
                          "        token_secret_file = \"%s\";\n"
                          "};\n",
                          file);
}

static void expect_secret_error(const char *file, const char *msg)
{
        char *text = api_with_secret(file);

        expect_error_at(text, 4, msg);
        free(text);
}

static void test_token_file_missing(void **state)
{
        char *dir = tu_mkdtemp(), *file = tu_strdupf("%s/nonexistent", dir), *msg;

        (void)state;
        msg = tu_strdupf("cannot read secret file '%s': No such file or directory", file);
        expect_secret_error(file, msg);
        free(msg);
        free(file);
        rmdir(dir);
        free(dir);
}

static void test_token_file_readable_by_others(void **state)
{
        char *file = tu_write_temp(SECRET "\n", 0600), *msg, *text;
        struct loaded l;

        (void)state;
        assert_int_equal(chmod(file, 0644), 0);
        msg = tu_strdupf("secret file '%s' is accessible by others (mode 0644): run 'chmod o-rwx %s'",
                         file, file);
        expect_secret_error(file, msg);
        free(msg);

        assert_int_equal(chmod(file, 0602), 0); /* writable by others is as bad */
        msg = tu_strdupf("secret file '%s' is accessible by others (mode 0602): run 'chmod o-rwx %s'",
                         file, file);
        expect_secret_error(file, msg);
        free(msg);

        /* Group-readable is fine (root:proxreap 0640). */
        assert_int_equal(chmod(file, 0640), 0);
        text = api_with_secret(file);
        load_ok(text, &l);
        assert_string_equal(l.c->token_secret, SECRET);
        loaded_done(&l);
        free(text);
        tu_unlink_free(file);
}

static void test_token_file_bad_content(void **state)
{
        char *file, *msg, *dir;

        (void)state;
        file = tu_write_temp("", 0600);
        msg = tu_strdupf("secret file '%s' is empty", file);
        expect_secret_error(file, msg);
        free(msg);
        tu_unlink_free(file);

        file = tu_write_temp("\n \r\n", 0600); /* only trailing blanks: empty too */
        msg = tu_strdupf("secret file '%s' is empty", file);
        expect_secret_error(file, msg);
        free(msg);
        tu_unlink_free(file);

        file = tu_write_temp("abc\tdef\n", 0600);
        msg = tu_strdupf("secret file '%s' holds a control character", file);
        expect_secret_error(file, msg);
        free(msg);
        tu_unlink_free(file);

        dir = tu_mkdtemp();
        msg = tu_strdupf("secret file '%s' is not a regular file", dir);
        expect_secret_error(dir, msg);
        free(msg);
        rmdir(dir);
        free(dir);
}

static void test_credentials_directory(void **state)
{
        char *dir = tu_mkdtemp(), *tok, *msg;
        struct loaded l;

        (void)state;
        /* Neither token_secret_file nor $CREDENTIALS_DIRECTORY: the file
         * LoadCredential= copies from (only checkable where it is absent). */
        if (access(CONFIG_DEFAULT_TOKEN_PATH, F_OK) < 0 && errno == ENOENT) {
                static const char absent[] = "cannot read secret file '" CONFIG_DEFAULT_TOKEN_PATH
                                             "': No such file or directory";

                unsetenv("CREDENTIALS_DIRECTORY");
                expect_error_at(API_NO_SECRET, 3, absent);
                setenv("CREDENTIALS_DIRECTORY", "", 1);
                expect_error_at(API_NO_SECRET, 3, absent);
        }

        /* Set, but no 'token' in it. */
        setenv("CREDENTIALS_DIRECTORY", dir, 1);
        msg = tu_strdupf("cannot read secret file '%s/token': No such file or directory", dir);
        expect_error_at(API_NO_SECRET, 3, msg);
        free(msg);

        /* systemd's LoadCredential=token:... */
        tok = tu_write_in(dir, "token", "from-credentials\n", 0400);
        load_ok(API_NO_SECRET, &l);
        assert_string_equal(l.c->token_secret, "from-credentials");
        loaded_done(&l);

        /* An explicit token_secret_file wins over the directory. */
        load_ok(API, &l);
        assert_string_equal(l.c->token_secret, SECRET);
        loaded_done(&l);

        unsetenv("CREDENTIALS_DIRECTORY");
        tu_unlink_free(tok);
        rmdir(dir);
        free(dir);
}

static void test_credentials_choice(void **state)
{
        char *pw = tu_write_temp("s3cret\n", 0600), *text;
        struct loaded l;

        (void)state;
        expect_error("api = {\n"
                     "        url = \"http://127.0.0.1:8006\";\n"
                     "        token_id = \"proxreap@pve!reaper\";\n"
                     "        token_secret_file = \"@TOKEN@\";\n"
                     "        user = \"proxreap@pve\";\n"
                     "};\n",
                     "user =",
                     "set either 'api.token_id' (API token) or 'api.user' (ticket), not both");
        expect_error("api = {\n"
                     "        url = \"http://127.0.0.1:8006\";\n"
                     "        user = \"proxreap@pve\";\n"
                     "};\n",
                     "user =", "'api.user' needs 'api.password_file'");
        expect_error("api = {\n"
                     "        url = \"http://127.0.0.1:8006\";\n"
                     "};\n",
                     "api = {", "no credentials: set 'api.token_id' (recommended) or 'api.user'");

        text = tu_strdupf("api = {\n"
                          "        url = \"http://127.0.0.1:8006\";\n"
                          "        user = \"proxreap@pve\";\n"
                          "        password_file = \"%s\";\n"
                          "};\n",
                          pw);
        load_ok(text, &l);
        assert_null(l.c->token_id);
        assert_null(l.c->token_secret);
        assert_string_equal(l.c->user, "proxreap@pve");
        assert_string_equal(l.c->password, "s3cret");
        loaded_done(&l);
        free(text);
        tu_unlink_free(pw);
}

static void test_bad_token_id(void **state)
{
        static const char *const bad[] = {
                "proxreap@pve",   "proxreap!reaper", "@pve!reaper",     "proxreap@!reaper",
                "proxreap@pve!",  "a!b@c",           "proxreap@pve!re aper",
                "proxreap@pve!x=y", "proxreap@pve!x:y", "",
        };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *text = tu_strdupf("api = {\n"
                                        "        url = \"http://127.0.0.1:8006\";\n"
                                        "        token_id = \"%s\";\n"
                                        "        token_secret_file = \"@TOKEN@\";\n"
                                        "};\n",
                                        bad[i]);
                char *msg = tu_strdupf("'api.token_id' = '%s' must look like USER@REALM!TOKENID",
                                       bad[i]);

                /* One error: no "missing credentials" on top. */
                expect_error_at(text, 3, msg);
                free(msg);
                free(text);
        }
}

static void test_api_url(void **state)
{
        struct loaded l;
        char *text;

        (void)state;
        text = tu_replace(API, "http://127.0.0.1:8006", "http://pve1:8006///");
        load_ok(text, &l);
        assert_string_equal(l.c->api_url, "http://pve1:8006/api2/json");
        loaded_done(&l);
        free(text);

        text = tu_replace(API, "http://127.0.0.1:8006", "ftp://pve1");
        expect_error_at(text, 2, "'api.url' = 'ftp://pve1' must start with https:// (or http://)");
        free(text);
        text = tu_replace(API, "http://127.0.0.1:8006", "http://pve1:8006/api2/json");
        expect_error_at(text, 2,
                        "'api.url' = 'http://pve1:8006/api2/json' must be scheme://host[:port] without a path (/api2/json is appended)");
        free(text);
        text = tu_replace(API, "http://127.0.0.1:8006", "http://user@pve1");
        expect_error_at(text, 2,
                        "'api.url' = 'http://user@pve1' must be scheme://host[:port] without a path (/api2/json is appended)");
        free(text);
        text = tu_replace(API, "http://127.0.0.1:8006", "http://");
        expect_error_at(text, 2,
                        "'api.url' = 'http://' must be scheme://host[:port] without a path (/api2/json is appended)");
        free(text);

        expect_error_at("api = {\n"
                        "        token_id = \"proxreap@pve!reaper\";\n"
                        "        token_secret_file = \"@TOKEN@\";\n"
                        "};\n",
                        1, "'api.url' is required");
}

static void test_tls_checks(void **state)
{
        char *ca = tu_write_temp("-----BEGIN CERTIFICATE-----\n", 0644), *text, *msg;
        struct loaded l;

        (void)state;
        text = tu_strdupf("api = {\n"
                          "        url = \"https://127.0.0.1:8006\";\n"
                          "        token_id = \"proxreap@pve!reaper\";\n"
                          "        token_secret_file = \"@TOKEN@\";\n"
                          "        ca_file = \"%s\";\n"
                          "};\n",
                          ca);
        load_ok(text, &l);
        assert_string_equal(l.c->ca_file, ca);
        loaded_done(&l);
        free(text);

        text = tu_strdupf("api = {\n"
                          "        url = \"https://127.0.0.1:8006\";\n"
                          "        token_id = \"proxreap@pve!reaper\";\n"
                          "        token_secret_file = \"@TOKEN@\";\n"
                          "        ca_file = \"%s.missing\";\n"
                          "};\n",
                          ca);
        msg = tu_strdupf("cannot read CA file '%s.missing': No such file or directory (set 'api.ca_file')",
                         ca);
        expect_error_at(text, 5, msg);
        free(msg);
        free(text);

        text = tu_strdupf("api = {\n"
                          "        url = \"https://127.0.0.1:8006\";\n"
                          "        token_id = \"proxreap@pve!reaper\";\n"
                          "        token_secret_file = \"@TOKEN@\";\n"
                          "        ca_file = \"%s\";\n"
                          "        pinned_pubkey = \"AAAA\";\n"
                          "};\n",
                          ca);
        expect_error_at(text, 6,
                        "'pinned_pubkey' must look like \"sha256//BASE64\" (see README for how to compute it)");
        free(text);
        tu_unlink_free(ca);
}

/* --- select, nodes, types, mode, status --- */

static void test_exclude_vmids(void **state)
{
        static const char *const bad[] = { "200-100", "99", "abc", "100-", "-100", "100-1000000000",
                                           "1000000000", "100-abc", "12345678901234567890" };
        const struct vmid_range *range = NULL;
        struct loaded l;

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *text = tu_strdupf(API "select = {\n"
                                            "        exclude_vmids = [\"%s\"];\n"
                                            "};\n",
                                        bad[i]);
                char *msg = tu_strdupf("'select.exclude_vmids': '%s' is not a vmid (100-999999999) or a range \"FIRST-LAST\"",
                                       bad[i]);

                expect_error_at(text, 7, msg);
                free(msg);
                free(text);
        }
        expect_error_at(API "select = {\n"
                            "        exclude_vmids = [99];\n"
                            "};\n",
                        7,
                        "'select.exclude_vmids': '99' is not a vmid (100-999999999) or a range \"FIRST-LAST\"");

        load_ok(API "select = {\n"
                    "        exclude_vmids = (\"100-199\", 250, \"999999999\", \"300-300\");\n"
                    "};\n",
                &l);
        assert_int_equal(l.c->n_exclude_vmids, 4);
        assert_false(config_vmid_excluded(l.c, 99, &range));
        assert_null(range);
        assert_true(config_vmid_excluded(l.c, 100, &range));
        assert_int_equal(range->first, 100);
        assert_int_equal(range->last, 199);
        assert_true(config_vmid_excluded(l.c, 199, NULL));
        assert_false(config_vmid_excluded(l.c, 200, NULL));
        assert_false(config_vmid_excluded(l.c, 249, NULL));
        assert_true(config_vmid_excluded(l.c, 250, &range));
        assert_int_equal(range->first, 250);
        assert_int_equal(range->last, 250);
        assert_false(config_vmid_excluded(l.c, 251, NULL));
        assert_true(config_vmid_excluded(l.c, 300, &range));
        assert_int_equal(range->first, 300);
        assert_true(config_vmid_excluded(l.c, 999999999, NULL));
        assert_false(config_vmid_excluded(l.c, 999999998, NULL));
        loaded_done(&l);

        /* An array of integers (libconfig arrays are homogeneous). */
        load_ok(API "select = {\n"
                    "        exclude_vmids = [250, 300];\n"
                    "};\n",
                &l);
        assert_int_equal(l.c->n_exclude_vmids, 2);
        assert_true(config_vmid_excluded(l.c, 300, &range));
        assert_int_equal(range->first, 300);
        assert_int_equal(range->last, 300);
        assert_false(config_vmid_excluded(l.c, 299, NULL));
        loaded_done(&l);
}

static void test_node_scope(void **state)
{
        struct loaded l;

        (void)state;
        load_ok(API "observe = {\n  nodes = \"local\";\n  node_name = \"pve1\";\n};\n", &l);
        assert_int_equal(l.c->node_scope, NODE_SCOPE_LOCAL);
        assert_true(config_node_in_scope(l.c, "pve1"));
        assert_false(config_node_in_scope(l.c, "pve2"));
        assert_false(config_node_in_scope(l.c, "pve"));
        assert_false(config_node_in_scope(l.c, "pve10"));
        assert_false(config_node_in_scope(l.c, ""));
        loaded_done(&l);

        load_ok(API "observe = {\n  nodes = \"all\";\n};\n", &l);
        assert_int_equal(l.c->node_scope, NODE_SCOPE_ALL);
        assert_true(config_node_in_scope(l.c, "pve1"));
        assert_true(config_node_in_scope(l.c, "anything"));
        loaded_done(&l);

        load_ok(API "observe = {\n  nodes = [\"pve1\", \"pve3\"];\n};\n", &l);
        assert_int_equal(l.c->node_scope, NODE_SCOPE_LIST);
        assert_true(config_node_in_scope(l.c, "pve1"));
        assert_false(config_node_in_scope(l.c, "pve2"));
        assert_true(config_node_in_scope(l.c, "pve3"));
        assert_false(config_node_in_scope(l.c, "pve"));
        loaded_done(&l);

        expect_error(API "observe = {\n  nodes = \"some\";\n};\n", "nodes",
                     "'observe.nodes' = 'some' must be \"local\", \"all\" or a list of node names");
        expect_error(API "observe = {\n  nodes = [\"pve1\", \"-bad\"];\n};\n", "nodes",
                     "'observe.nodes': '-bad' is not a valid node name");
        expect_error(API "observe = {\n  nodes = [];\n};\n", "nodes",
                     "'observe.nodes' must not be an empty list");
        expect_error(API "observe = {\n  node_name = \"pve1.example.com\";\n};\n", "node_name",
                     "'observe.node_name' = 'pve1.example.com' is not a valid node name");
}

static void test_types(void **state)
{
        struct loaded l;

        (void)state;
        load_ok(API "observe = {\n  types = [\"qemu\"];\n};\n", &l);
        assert_true(l.c->observe_qemu);
        assert_false(l.c->observe_lxc);
        loaded_done(&l);
        expect_error(API "observe = {\n  types = [\"qemu\", \"vm\"];\n};\n", "types",
                     "'observe.types': 'vm' is not \"qemu\" or \"lxc\"");
        expect_error(API "observe = {\n  types = [];\n};\n", "types",
                     "'observe.types' must name at least one of \"qemu\", \"lxc\"");
        expect_error(API "select = {\n  exclude_tags = [\"a\", \"\"];\n};\n", "exclude_tags",
                     "'select.exclude_tags': empty string in list");
}

static void test_mode(void **state)
{
        struct loaded l;

        (void)state;
        load_ok(API "reap = {\n  mode = \"mark\";\n};\n", &l);
        assert_int_equal(l.c->mode, REAP_MODE_MARK);
        loaded_done(&l);
        expect_error(API "reap = {\n  mode = \"reap\";\n};\n", "mode",
                     "'reap.mode' = \"reap\" needs 'reap.archive_storage' (where the archives go)");
        expect_error(API "reap = {\n  mode = \"destroy\";\n};\n", "mode",
                     "'reap.mode' = 'destroy' must be \"observe\", \"mark\" or \"reap\"");
        assert_string_equal(reap_mode_to_string(REAP_MODE_MARK), "mark");
        assert_string_equal(reap_mode_to_string(REAP_MODE_REAP), "reap");
}

static void test_reap_keys(void **state)
{
        struct loaded l;

        (void)state;
        load_ok(API "reap = {\n  mode = \"reap\";\n  archive_storage = \"pbs-1\";\n"
                    "  grace = \"2h\";\n  max_per_cycle = 3;\n  max_per_hour = 20;\n"
                    "  breaker_jump = 25;\n  breaker_broken = 10;\n  cooldown = \"7d\";\n"
                    "  retry_after = \"1h\";\n  history = \"7d\";\n  history_statistic = \"p95\";\n"
                    "  compress = \"none\";\n  shutdown_timeout = \"60s\";\n"
                    "  force_stop = false;\n  snapshot = false;\n  task_timeout = \"2h\";\n"
                    "  journal = \"/tmp/j\";\n};\n",
                &l);
        assert_int_equal(l.c->mode, REAP_MODE_REAP);
        assert_string_equal(l.c->archive_storage, "pbs-1");
        assert_true(l.c->grace_usec == 2 * USEC_PER_HOUR);
        assert_int_equal(l.c->max_per_cycle, 3);
        assert_int_equal(l.c->max_per_hour, 20);
        assert_true(l.c->breaker_jump == 25.0 && l.c->breaker_broken == 10.0);
        assert_int_equal(l.c->history_statistic, 95);
        assert_true(l.c->cooldown_usec == 7 * USEC_PER_DAY);
        assert_true(l.c->retry_after_usec == USEC_PER_HOUR);
        assert_true(l.c->history_usec == 7 * USEC_PER_DAY);
        assert_string_equal(l.c->compress, "0");
        assert_true(l.c->shutdown_timeout_usec == 60 * USEC_PER_SEC);
        assert_false(l.c->force_stop);
        assert_false(l.c->snapshot);
        assert_true(l.c->task_timeout_usec == 2 * USEC_PER_HOUR);
        assert_string_equal(l.c->journal_file, "/tmp/j");
        loaded_done(&l);

        load_ok(API, &l);
        assert_int_equal(l.c->max_per_cycle, 1);
        assert_int_equal(l.c->max_per_hour, 10);
        assert_true(l.c->breaker_jump == 30.0 && l.c->breaker_broken == 20.0);
        assert_true(l.c->cooldown_usec == 24 * USEC_PER_HOUR);
        assert_true(l.c->retry_after_usec == 24 * USEC_PER_HOUR);
        /* observe mode: no history veto; mark and reap mode: 8 days */
        assert_true(l.c->grace_usec == 0 && l.c->history_usec == 0);
        assert_int_equal(l.c->history_statistic, HISTORY_MAX);
        assert_string_equal(l.c->compress, "zstd");
        assert_true(l.c->shutdown_timeout_usec == 180 * USEC_PER_SEC);
        assert_true(l.c->force_stop && l.c->snapshot);
        assert_string_equal(l.c->journal_file, "/var/lib/proxreap/journal");
        assert_null(l.c->archive_storage);
        loaded_done(&l);

        expect_error(API "reap = {\n  archive_storage = \"Local\";\n};\n", "archive_storage",
                     "'reap.archive_storage' = 'Local' is not a Proxmox storage id");
        expect_error(API "reap = {\n  max_per_cycle = 0;\n};\n", "max_per_cycle",
                     "'reap.max_per_cycle' = 0 must be a whole number from 1 to 1000");
        expect_error(API "reap = {\n  max_per_hour = 2.5;\n};\n", "max_per_hour",
                     "'reap.max_per_hour' = 2.5 must be a whole number from 1 to 100000");
        expect_error(API "reap = {\n  compress = \"xz\";\n};\n", "compress",
                     "'reap.compress' = 'xz' must be \"zstd\", \"gzip\", \"lzo\" or \"none\"");
        expect_error(API "reap = {\n  history = \"10m\";\n};\n", "history",
                     "'reap.history' must be \"0\" (off) or at least \"1h\" (Proxmox keeps minute averages for the last hour)");
        expect_error(API "reap = {\n  journal = \"journal\";\n};\n", "journal",
                     "'reap.journal' must be an absolute path");
        expect_error(API "reap = {\n  breaker_jump = 0;\n};\n", "breaker_jump",
                     "'reap.breaker_jump' = 0 is out of range (more than 0 and at most 100)");
        expect_error(API "reap = {\n  breaker_percent = 50;\n};\n", "breaker_percent",
                     "'reap.breaker_percent' is gone: the breaker opens on a jump of the idle share ('reap.breaker_jump') or on broken-looking data ('reap.breaker_broken'), not on many idle guests");
        expect_error(API "reap = {\n  history_statistic = \"p100\";\n};\n", "history_statistic",
                     "'reap.history_statistic' = 'p100' must be \"max\", \"mean\" or a percentile from \"p1\" to \"p99\"");
        expect_error(API "reap = {\n  history_statistic = \"median\";\n};\n", "history_statistic",
                     "'reap.history_statistic' = 'median' must be \"max\", \"mean\" or a percentile from \"p1\" to \"p99\"");
        load_ok(API "reap = {\n  mode = \"mark\";\n  history_statistic = \"mean\";\n};\n", &l);
        assert_true(l.c->history_usec == 8 * USEC_PER_DAY);
        assert_int_equal(l.c->history_statistic, HISTORY_MEAN);
        loaded_done(&l);
        load_ok(API "reap = {\n  mode = \"mark\";\n  history = \"0\";\n};\n", &l);
        assert_true(l.c->history_usec == 0);
        loaded_done(&l);
}

static void test_status_file(void **state)
{
        (void)state;
        expect_error(API "status = {\n  file = \"status.json\";\n};\n", "file = \"status",
                     "'status.file' must be an absolute path");
        /* "" would leave no status file at all (and a NULL path). */
        expect_error(API "status = {\n  file = \"\";\n};\n", "file = \"\"",
                     "'status.file' must be an absolute path");
}

/* The CLI's offline commands (status, journal) read neither secrets nor CA
 * files: a user in group proxreap can use them. */
static void test_offline(void **state)
{
        static const char text[] = "api = {\n"
                                   "  url = \"https://127.0.0.1:8006\";\n"
                                   "  token_id = \"proxreap@pve!reaper\";\n"
                                   "  token_secret_file = \"/nonexistent/token\";\n"
                                   "  ca_file = \"/nonexistent/ca.pem\";\n"
                                   "};\n"
                                   "notify = {\n"
                                   "  webhook_url = \"https://h/\";\n"
                                   "  ca_file = \"/nonexistent/ca2.pem\";\n"
                                   "};\n";
        char *path = tu_write_temp(text, 0644), *errors = NULL;
        struct config *c = NULL;

        (void)state;
        assert_int_equal(config_load(path, &c, &errors), -EINVAL);
        assert_non_null(strstr(errors, "cannot read secret file '/nonexistent/token'"));
        assert_non_null(strstr(errors, "cannot read CA file '/nonexistent/ca.pem'"));
        assert_non_null(strstr(errors, "cannot read CA file '/nonexistent/ca2.pem'"));
        free(errors);
        errors = NULL;
        assert_int_equal(config_load_flags(path, CONFIG_OFFLINE, &c, &errors), 0);
        assert_null(errors);
        assert_null(c->token_secret);
        assert_string_equal(c->token_id, "proxreap@pve!reaper");
        config_free(c);
        /* Everything else is still checked. */
        tu_unlink_free(path);
        path = tu_write_temp("api = {\n  url = \"ftp://x\";\n  token_id = \"a@b!c\";\n};\n", 0644);
        assert_int_equal(config_load_flags(path, CONFIG_OFFLINE, &c, &errors), -EINVAL);
        assert_non_null(strstr(errors, "must start with https://"));
        free(errors);
        tu_unlink_free(path);
}

/* A string value may hold a newline (found by fuzz_config): quoted in a
 * message, it made one problem two lines, the second one free text that
 * could pass for a problem of another file. Control characters are
 * escaped. */
static void test_control_characters_escaped(void **state)
{
        (void)state;
        expect_error(API "reap = {\n  mode = \"rea\n/etc/x.conf:1: forged\tx\x01\";\n};\n", "mode",
                     "'reap.mode' = 'rea\\n/etc/x.conf:1: forged\\tx\\x01' must be "
                     "\"observe\", \"mark\" or \"reap\"");
}

static void test_prometheus_file(void **state)
{
        struct loaded l;

        (void)state;
        load_ok(API, &l);
        assert_null(l.c->prometheus_file);
        loaded_done(&l);
        load_ok(API "status = {\n  prometheus_file = \"/var/lib/prometheus/p.prom\";\n};\n", &l);
        assert_string_equal(l.c->prometheus_file, "/var/lib/prometheus/p.prom");
        loaded_done(&l);
        expect_error(API "status = {\n  prometheus_file = \"p.prom\";\n};\n", "prometheus_file",
                     "'status.prometheus_file' must be an absolute path");
}

static void test_notify_keys(void **state)
{
        struct loaded l;
        char *ca, *text;

        (void)state;
        load_ok(API, &l);
        assert_null(l.c->webhook_url);
        assert_int_equal(l.c->notify_events, NOTIFY_ALL);
        assert_true(l.c->notify_timeout_usec == 10 * USEC_PER_SEC);
        assert_int_equal(l.c->notify_retries, 3);
        assert_null(l.c->notify_ca_file);
        loaded_done(&l);

        ca = tu_write_temp("not checked beyond being readable\n", 0644);
        text = tu_strdupf(API "notify = {\n  webhook_url = \"https://hooks.example.com/T0/B1?x=y\";\n"
                              "  events = [\"reap\", \"restore\"];\n  timeout = \"3s\";\n"
                              "  retries = 0;\n  ca_file = \"%s\";\n};\n",
                          ca);
        load_ok(text, &l);
        assert_string_equal(l.c->webhook_url, "https://hooks.example.com/T0/B1?x=y");
        assert_int_equal(l.c->notify_events, NOTIFY_REAP | NOTIFY_RESTORE);
        assert_true(l.c->notify_timeout_usec == 3 * USEC_PER_SEC);
        assert_int_equal(l.c->notify_retries, 0);
        assert_string_equal(l.c->notify_ca_file, ca);
        loaded_done(&l);
        free(text);
        tu_unlink_free(ca);

        /* An empty list turns every event off. */
        load_ok(API "notify = {\n  webhook_url = \"http://127.0.0.1:9/\";\n  events = [];\n};\n",
                &l);
        assert_int_equal(l.c->notify_events, 0);
        loaded_done(&l);

        /* The URL may hold a token: it is never echoed. */
        expect_error(API "notify = {\n  webhook_url = \"ftp://secret@example.com/\";\n};\n",
                     "webhook_url", "'notify.webhook_url' must be an http:// or https:// URL with a host");
        expect_error(API "notify = {\n  webhook_url = \"https:///path\";\n};\n", "webhook_url",
                     "'notify.webhook_url' must be an http:// or https:// URL with a host");
        expect_error(API "notify = {\n  events = [\"reap\", \"destroy\"];\n};\n", "events",
                     "'notify.events': unknown event 'destroy' (known: \"mark\", \"reap\", \"abort\", \"restore\")");
        expect_error(API "notify = {\n  retries = 11;\n};\n", "retries",
                     "'notify.retries' = 11 must be a whole number from 0 to 10");
        expect_error(API "notify = {\n  webhook_url = \"https://h/\";\n  ca_file = \"/nonexistent/ca.pem\";\n};\n",
                     "ca_file", "cannot read CA file '/nonexistent/ca.pem': No such file or directory");
        assert_string_equal(notify_event_to_string(NOTIFY_ABORT), "abort");
}

static void test_missing_file(void **state)
{
        char *dir = tu_mkdtemp(), *path = tu_strdupf("%s/proxreap.conf", dir), *want;
        struct config *c = &sentinel;
        char *errors = NULL;

        (void)state;
        assert_int_equal(config_load(path, &c, &errors), -EINVAL);
        assert_ptr_equal(c, &sentinel);
        want = tu_strdupf("%s:0: cannot read configuration: No such file or directory\n", path);
        assert_string_equal(errors, want);
        free(want);
        free(errors);
        /* ret_errors is optional. */
        assert_int_equal(config_load(path, &c, NULL), -EINVAL);
        assert_ptr_equal(c, &sentinel);
        free(path);
        rmdir(dir);
        free(dir);
        assert_null(config_free(NULL));
}

/* --- all errors of a file at once --- */

static void test_several_errors(void **state)
{
        static const char text[] = API           /* 1-5 */
                "observe = {\n"                  /* 6 */
                "        interval = \"10\";\n"   /* 7 */
                "        min_coverage = 2;\n"    /* 8 */
                "        colour = \"blue\";\n"   /* 9 */
                "};\n"                           /* 10 */
                "idle = {\n"                     /* 11 */
                "        cpu_percent = \"low\";\n" /* 12 */
                "};\n"                           /* 13 */
                "select = {\n"                   /* 14 */
                "        exclude_vmids = [\"200-100\", \"300\", \"x\"];\n" /* 15 */
                "};\n"                           /* 16 */
                "reap = {\n"                     /* 17 */
                "        mode = \"reap\";\n"     /* 18 */
                "};\n"                           /* 19 */
                "extra = {\n"                    /* 20 */
                "};\n";                          /* 21 */
        struct loaded l;
        char *want;

        (void)state;
        load_text(text, &l);
        assert_int_equal(l.r, -EINVAL);
        assert_int_equal(tu_count_lines(l.errors), 8);
        want = tu_strdupf(
                "%1$s:7: 'observe.interval': invalid duration '10' (use a number with ms, s, m, h or d, e.g. \"10s\")\n"
                "%1$s:8: 'observe.min_coverage' = 2 is out of range (more than 0 and at most 1)\n"
                "%1$s:9: unknown key 'observe.colour'\n"
                "%1$s:12: 'idle.cpu_percent' must be a number, not a string\n"
                "%1$s:15: 'select.exclude_vmids': '200-100' is not a vmid (100-999999999) or a range \"FIRST-LAST\"\n"
                "%1$s:15: 'select.exclude_vmids': 'x' is not a vmid (100-999999999) or a range \"FIRST-LAST\"\n"
                "%1$s:20: unknown group 'extra'\n"
                "%1$s:18: 'reap.mode' = \"reap\" needs 'reap.archive_storage' (where the archives go)\n",
                l.path);
        assert_string_equal(l.errors, want);
        free(want);
        loaded_done(&l);
}

/* --- the shipped conf/proxreap.conf --- */

static char *shipped_conf(void)
{
        char *path = tu_strdupf("%s/../../conf/proxreap.conf", tu_testdata());
        char *text = tu_read_file(path, NULL);

        if (!text)
                fail_msg("cannot read %s", path);
        free(path);
        return text;
}

static void check_shipped_values(const struct config *c)
{
        char *host = short_hostname();

        assert_string_equal(c->token_id, "proxreap@pve!reaper");
        assert_string_equal(c->token_secret, SECRET);
        assert_null(c->user);
        assert_int_equal(c->timeout_usec, 15 * USEC_PER_SEC);
        assert_int_equal(c->retries, 2);
        assert_int_equal(c->interval_usec, 10 * USEC_PER_SEC);
        assert_int_equal(c->window_usec, 10 * USEC_PER_MINUTE);
        assert_double_exact(c->min_coverage, 0.9);
        assert_int_equal(c->node_scope, NODE_SCOPE_LOCAL);
        assert_string_equal(c->node_name, host);
        assert_true(c->observe_qemu && c->observe_lxc);
        assert_double_exact(c->cpu_percent, 5.0);
        assert_double_exact(c->mem_mb, 1024.0);
        assert_true(c->net_kbps < 0 && c->disk_kbps < 0 && c->cpu_share < 0);
        assert_int_equal(c->exclude_tags.n, 1);
        assert_string_equal(c->exclude_tags.v[0], "proxreap-keep");
        assert_int_equal(c->exclude_pools.n, 0);
        assert_int_equal(c->n_exclude_vmids, 0);
        assert_int_equal(c->include_tags.n, 0);
        assert_false(c->allow_ha);
        assert_int_equal(c->mode, REAP_MODE_OBSERVE);
        assert_string_equal(c->status_file, "/run/proxreap/status.json");
        assert_int_equal(config_window_samples(c), 60);
        free(host);
}

static void test_shipped_conf(void **state)
{
        char *orig = shipped_conf(), *a, *b, *ca, *line, *msg;
        struct loaded l;

        (void)state;
        /* http: no CA file needed; the token from a file. */
        a = tu_replace(orig, "url = \"https://127.0.0.1:8006\";", "url = \"http://127.0.0.1:8006\";");
        b = tu_replace(a, "# token_secret_file = \"/etc/proxreap/token\";",
                       "token_secret_file = \"@TOKEN@\";");
        load_ok(b, &l);
        assert_string_equal(l.c->api_url, "http://127.0.0.1:8006/api2/json");
        check_shipped_values(l.c);
        loaded_done(&l);
        free(a);
        free(b);

        /* https with its CA made available. */
        ca = tu_write_temp("-----BEGIN CERTIFICATE-----\n", 0644);
        line = tu_strdupf("ca_file = \"%s\";", ca);
        a = tu_replace(orig, "# ca_file = \"/etc/pve/pve-root-ca.pem\";", line);
        b = tu_replace(a, "# token_secret_file = \"/etc/proxreap/token\";",
                       "token_secret_file = \"@TOKEN@\";");
        load_ok(b, &l);
        assert_string_equal(l.c->api_url, "https://127.0.0.1:8006/api2/json");
        assert_string_equal(l.c->ca_file, ca);
        check_shipped_values(l.c);
        loaded_done(&l);
        free(a);
        free(line);

        /* The default CA of a PVE node, when this host is not one. */
        if (access("/etc/pve/pve-root-ca.pem", R_OK) < 0) {
                a = tu_replace(orig, "# token_secret_file = \"/etc/proxreap/token\";",
                               "token_secret_file = \"@TOKEN@\";");
                msg = tu_strdupf("cannot read CA file '/etc/pve/pve-root-ca.pem': %s (set 'api.ca_file')",
                                 strerror(errno));
                expect_error(a, "url = \"https://", msg);
                free(msg);
                free(a);
        }
        free(b);
        tu_unlink_free(ca);
        free(orig);
}

static void test_shipped_conf_credentials_directory(void **state)
{
        char *orig = shipped_conf(), *a, *dir = tu_mkdtemp(), *tok;
        struct loaded l;

        (void)state;
        /* As installed: no token_secret_file, systemd's LoadCredential. */
        a = tu_replace(orig, "url = \"https://127.0.0.1:8006\";", "url = \"http://127.0.0.1:8006\";");
        tok = tu_write_in(dir, "token", SECRET "\n", 0600);
        setenv("CREDENTIALS_DIRECTORY", dir, 1);
        load_ok(a, &l);
        check_shipped_values(l.c);
        loaded_done(&l);
        unsetenv("CREDENTIALS_DIRECTORY");
        tu_unlink_free(tok);
        rmdir(dir);
        free(dir);
        free(a);
        free(orig);
}

/* As the unit runs it: https to the local pveproxy, the cluster CA handed
 * over as the credential pve-root-ca (the daemon's user cannot read
 * /etc/pve). */
static void test_shipped_conf_ca_credential(void **state)
{
        char *conf = shipped_conf(), *dir = tu_mkdtemp(), *tok, *ca, *want;
        const char *msg;
        struct loaded l;

        (void)state;
        tok = tu_write_in(dir, "token", SECRET "\n", 0600);
        ca = tu_write_in(dir, "pve-root-ca", "-----BEGIN CERTIFICATE-----\nMIIB\n", 0400);
        setenv("CREDENTIALS_DIRECTORY", dir, 1);
        load_ok(conf, &l);
        want = tu_strdupf("%s/pve-root-ca", dir);
        assert_string_equal(l.c->ca_file, want);
        loaded_done(&l);
        free(want);

        /* The unit's fallback where /etc/pve is missing: not a certificate,
         * so the default path stays and its absence is the error. */
        tu_unlink_free(ca);
        ca = tu_write_in(dir, "pve-root-ca", "none", 0400);
        if (access("/etc/pve/pve-root-ca.pem", F_OK) < 0) {
                msg = "cannot read CA file '/etc/pve/pve-root-ca.pem': No such file or directory (set 'api.ca_file')";
                expect_error(conf, "url = \"https", msg);
        }

        /* An explicit api.ca_file always wins. */
        tu_unlink_free(ca);
        ca = tu_write_in(dir, "pve-root-ca", "-----BEGIN CERTIFICATE-----\n", 0400);
        want = tu_replace(conf, "# ca_file = \"/etc/pve/pve-root-ca.pem\";", "ca_file = \"\";");
        load_ok(want, &l);
        assert_null(l.c->ca_file);
        loaded_done(&l);
        free(want);

        unsetenv("CREDENTIALS_DIRECTORY");
        tu_unlink_free(tok);
        tu_unlink_free(ca);
        rmdir(dir);
        free(dir);
        free(conf);
}

static void test_window_samples(void **state)
{
        struct config c = { .interval_usec = 10 * USEC_PER_SEC, .window_usec = 10 * USEC_PER_MINUTE };

        (void)state;
        assert_int_equal(config_window_samples(&c), 60);
        c.interval_usec = 100 * USEC_PER_MSEC;
        c.window_usec = USEC_PER_SEC;
        assert_int_equal(config_window_samples(&c), 10);
        c.interval_usec = 300 * USEC_PER_MSEC; /* rounds up: 3.33 -> 4 */
        assert_int_equal(config_window_samples(&c), 4);
        c.window_usec = c.interval_usec;
        assert_int_equal(config_window_samples(&c), 1);
        c.window_usec = 0;
        assert_int_equal(config_window_samples(&c), 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_minimal_defaults),
                cmocka_unit_test(test_every_key_set),
                cmocka_unit_test(test_tags),
                cmocka_unit_test(test_syntax_error),
                cmocka_unit_test(test_unknown_key_and_group),
                cmocka_unit_test(test_wrong_type),
                cmocka_unit_test(test_number_out_of_range),
                cmocka_unit_test(test_numbers_at_bounds_accepted),
                cmocka_unit_test(test_invalid_duration),
                cmocka_unit_test(test_duration_out_of_range),
                cmocka_unit_test(test_duration_bounds_accepted),
                cmocka_unit_test(test_window_vs_interval),
                cmocka_unit_test(test_stale_after),
                cmocka_unit_test(test_window_vs_interval_default_window),
                cmocka_unit_test(test_token_file_missing),
                cmocka_unit_test(test_token_file_readable_by_others),
                cmocka_unit_test(test_token_file_bad_content),
                cmocka_unit_test(test_credentials_directory),
                cmocka_unit_test(test_credentials_choice),
                cmocka_unit_test(test_bad_token_id),
                cmocka_unit_test(test_api_url),
                cmocka_unit_test(test_tls_checks),
                cmocka_unit_test(test_exclude_vmids),
                cmocka_unit_test(test_node_scope),
                cmocka_unit_test(test_types),
                cmocka_unit_test(test_mode),
                cmocka_unit_test(test_reap_keys),
                cmocka_unit_test(test_status_file),
                cmocka_unit_test(test_offline),
                cmocka_unit_test(test_prometheus_file),
                cmocka_unit_test(test_notify_keys),
                cmocka_unit_test(test_missing_file),
                cmocka_unit_test(test_several_errors),
                cmocka_unit_test(test_control_characters_escaped),
                cmocka_unit_test(test_shipped_conf),
                cmocka_unit_test(test_shipped_conf_credentials_directory),
                cmocka_unit_test(test_shipped_conf_ca_credential),
                cmocka_unit_test(test_window_samples),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
