/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of policy: the idle rules and their boundaries, every
 * exclusion, every kind of insufficient data, the optional rules and the
 * human-readable reasons.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "config.h"
#include "history.h"
#include "policy.h"
#include "testutil.h"
#include "util.h"
#include "window.h"

static char *token_path;

/* The api group of every test config. setup() adds: this node "pve1",
 * pool "infra" and vmids 900-999 and 250 excluded; the rest is default
 * (interval 10s, window 10m, min_coverage 0.9, cpu 5 %, mem 1024 MiB). */
#define BASE_CONFIG                                                                           \
        "api = {\n"                                                                           \
        "        url = \"http://127.0.0.1:8006\";\n"                                          \
        "        token_id = \"proxreap@pve!reaper\";\n"                                       \
        "        token_secret_file = \"%s\";\n"                                               \
        "};\n"

/* extra: more groups; observe_extra: more keys of the observe group. */
static struct config *load_config2(const char *observe_extra, const char *extra)
{
        char *text = tu_strdupf(BASE_CONFIG "observe = {\n"
                                            "        node_name = \"pve1\";\n"
                                            "%s"
                                            "};\n"
                                            "%s",
                                token_path, observe_extra, extra);
        char *path = tu_write_temp(text, 0644), *errors = NULL;
        struct config *c = NULL;
        int r = config_load(path, &c, &errors);

        tu_unlink_free(path);
        free(text);
        if (r < 0)
                fail_msg("config_load: %d\n%s", r, errors ? errors : "");
        return c;
}

static struct config *load_config(const char *extra)
{
        return load_config2("", extra);
}

static int group_setup(void **state)
{
        (void)state;
        token_path = tu_write_temp("secret\n", 0600);
        return 0;
}

static int group_teardown(void **state)
{
        (void)state;
        tu_unlink_free(token_path);
        return 0;
}

static int setup(void **state)
{
        *state = load_config("select = {\n"
                             "        exclude_pools = [\"infra\"];\n"
                             "        exclude_vmids = [\"900-999\", \"250\"];\n"
                             "};\n");
        return 0;
}

static int teardown(void **state)
{
        config_free(*state);
        return 0;
}

/* A running guest on this node, up for a day, with data. */
static struct guest_facts facts(void)
{
        return (struct guest_facts){
                .vmid = 100,
                .type = GUEST_QEMU,
                .node = "pve1",
                .status = "running",
                .lock = "",
                .hastate = "",
                .pool = "",
                .tags = "",
                .template = false,
                .has_data = true,
                .uptime_s = 86400,
        };
}

/* A fully covered, fresh window. */
static struct window_stats stats(double cpu, double mem)
{
        return (struct window_stats){
                .samples = 60,
                .expected = 60,
                .coverage = 1.0,
                .cpu_mean_percent = cpu,
                .cpu_below_share = 1.0,
                .mem_mean_mb = mem,
                .rate_samples = 60,
                .net_mean_kbps = 0,
                .disk_mean_kbps = 0,
                .newest_age_usec = 0,
        };
}

static struct verdict decide(const struct config *c, const struct guest_facts *f,
                             const struct window_stats *s)
{
        struct verdict v;

        memset(&v, 0xaa, sizeof(v)); /* policy_decide must set everything */
        policy_decide(c, f, s, &v);
        return v;
}

static void assert_kind(const struct verdict *v, enum verdict_kind want)
{
        char buf[1024];

        if (v->kind != want) {
                verdict_format(v, buf, sizeof(buf));
                fail_msg("verdict %s (%s), expected %s", verdict_to_string(v->kind), buf,
                         verdict_to_string(want));
        }
}

/* One rule's reason: which rule, whether it holds, its value and limit. */
static void assert_reason(const struct reason *r, enum reason_code code, bool pass, double value,
                          double limit)
{
        assert_int_equal(r->code, code);
        assert_int_equal(r->pass, pass);
        assert_double_exact(r->value, value);
        assert_double_exact(r->limit, limit);
}

static const struct reason *find_reason(const struct verdict *v, enum reason_code code)
{
        for (unsigned i = 0; i < v->n_reasons; i++)
                if (v->reasons[i].code == code)
                        return &v->reasons[i];
        return NULL;
}

static void assert_formatted(const struct verdict *v, const char *want)
{
        char buf[1024];

        verdict_format(v, buf, sizeof(buf));
        assert_string_equal(buf, want);
}

/* --- the idle rules --- */

static void test_idle(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(1.2, 512);
        struct verdict v = decide(c, &f, &s);

        assert_kind(&v, VERDICT_IDLE);
        assert_int_equal(v.n_reasons, 2);
        assert_reason(&v.reasons[0], REASON_CPU, true, 1.2, 5.0);
        assert_reason(&v.reasons[1], REASON_MEM, true, 512.0, 1024.0);
        assert_formatted(&v, "mean cpu 1.20% < 5%, mean mem 512.00 MiB < 1024 MiB");
}

static void test_active(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(50, 512);
        struct verdict v = decide(c, &f, &s);

        /* Only the failed rules are the reasons. */
        assert_kind(&v, VERDICT_ACTIVE);
        assert_int_equal(v.n_reasons, 1);
        assert_reason(&v.reasons[0], REASON_CPU, false, 50.0, 5.0);
        assert_formatted(&v, "mean cpu 50.00% >= 5%");

        s = stats(1.0, 2048.5);
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_ACTIVE);
        assert_int_equal(v.n_reasons, 1);
        assert_int_equal(v.reasons[0].code, REASON_MEM);
        assert_false(v.reasons[0].pass);
        assert_double_exact(v.reasons[0].value, 2048.5);
        assert_formatted(&v, "mean mem 2048.50 MiB >= 1024 MiB");

        s = stats(99.5, 4096);
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_ACTIVE);
        assert_int_equal(v.n_reasons, 2);
        assert_formatted(&v, "mean cpu 99.50% >= 5%, mean mem 4096.00 MiB >= 1024 MiB");
}

static void test_thresholds_are_strict(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s;
        struct verdict v;

        /* Exactly at the threshold is active, just below is idle. */
        s = stats(5.0, 512);
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_ACTIVE);
        assert_int_equal(v.reasons[0].code, REASON_CPU);
        s = stats(nextafter(5.0, 0), 512);
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        s = stats(4.99, 512);
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);

        s = stats(1.0, 1024.0);
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_ACTIVE);
        assert_int_equal(v.n_reasons, 1);
        assert_int_equal(v.reasons[0].code, REASON_MEM);
        s = stats(1.0, nextafter(1024.0, 0));
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        s = stats(1.0, 1023.99);
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);

        /* Zero use is idle. */
        s = stats(0, 0);
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
}

static void test_thresholds_follow_config(void **state)
{
        struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(3.0, 700);
        struct verdict v;

        c->cpu_percent = 2.5;
        c->mem_mb = 800;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_ACTIVE);
        assert_int_equal(v.n_reasons, 1);
        assert_double_exact(v.reasons[0].limit, 2.5);
        c->cpu_percent = 3.5;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        assert_double_exact(v.reasons[1].limit, 800.0);
}

/* --- exclusions --- */

static void expect_excluded(const struct config *c, const struct guest_facts *f,
                            enum reason_code code, const char *text)
{
        struct window_stats s = stats(0.5, 100); /* idle otherwise */
        struct verdict v = decide(c, f, &s);

        assert_kind(&v, VERDICT_EXCLUDED);
        if (v.n_reasons != 1)
                fail_msg("%u reasons, expected 1", v.n_reasons);
        if (v.reasons[0].code != code)
                fail_msg("reason '%s', expected '%s'", reason_code_to_string(v.reasons[0].code),
                         reason_code_to_string(code));
        if (text)
                assert_string_equal(v.reasons[0].text, text);

        /* Exclusions come first: with no data at all it is still excluded. */
        {
                struct guest_facts nf = *f;
                struct window_stats empty = { .expected = 60, .newest_age_usec = UINT64_MAX };

                nf.has_data = false;
                nf.uptime_s = 0;
                v = decide(c, &nf, &empty);
                assert_kind(&v, VERDICT_EXCLUDED);
                assert_int_equal(v.reasons[0].code, code);
        }
}

static void test_excluded_not_running(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();

        f.status = "stopped";
        expect_excluded(c, &f, REASON_NOT_RUNNING, "stopped");
        f.status = "paused";
        expect_excluded(c, &f, REASON_NOT_RUNNING, "paused");
        f.status = "prelaunch";
        expect_excluded(c, &f, REASON_NOT_RUNNING, "prelaunch");
}

static void test_excluded_template(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();

        /* A template is stopped, but "template" is the one reason. */
        f.template = true;
        f.status = "stopped";
        expect_excluded(c, &f, REASON_TEMPLATE, NULL);
}

static void test_excluded_lock(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();

        f.lock = "backup";
        expect_excluded(c, &f, REASON_LOCKED, "backup");
        f.lock = "migrate";
        expect_excluded(c, &f, REASON_LOCKED, "migrate");
}

static void test_excluded_ha(void **state)
{
        struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        f.hastate = "started";
        expect_excluded(c, &f, REASON_HA, "started");
        c->allow_ha = true;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        c->allow_ha = false;
        f.hastate = NULL;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
}

static void test_excluded_tag(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        f.tags = "a;proxreap-keep;b";
        expect_excluded(c, &f, REASON_TAG, "proxreap-keep");
        f.tags = "a proxreap-keep";
        expect_excluded(c, &f, REASON_TAG, "proxreap-keep");
        f.tags = "proxreap-keep,b";
        expect_excluded(c, &f, REASON_TAG, "proxreap-keep");
        /* Similar tags do not count. */
        f.tags = "a;proxreap-keeper;proxreap";
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        f.tags = NULL;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
}

/* Proxmox compares tags without regard to case; exclude_tags adds to
 * proxreap-keep, never replaces it. */
static void test_excluded_tag_any_case(void **state)
{
        struct config *c = load_config("select = {\n"
                                       "        exclude_tags = [\"KEEP\"];\n"
                                       "};\n");
        struct guest_facts f = facts();

        (void)state;
        f.tags = "web;Proxreap-Keep";
        expect_excluded(*state, &f, REASON_TAG, "proxreap-keep");
        f.tags = "PROXREAP-KEEP";
        expect_excluded(c, &f, REASON_TAG, "proxreap-keep");
        f.tags = "keep";
        expect_excluded(c, &f, REASON_TAG, "KEEP");
        f.tags = "a,Keep b";
        expect_excluded(c, &f, REASON_TAG, "KEEP");
        config_free(c);
}

/* What the guest's configuration says, when it was read. */
static void test_excluded_by_configuration(void **state)
{
        const struct config *c = *state;
        struct config *discard = load_config("reap = {\n  discard_snapshots = true;\n};\n");
        struct conf_facts cf = { 0 };
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        (void)state;
        f.conf = &cf;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        cf.protection = true;
        expect_excluded(c, &f, REASON_PROTECTED, NULL);
        cf = (struct conf_facts){ 0 };
        snprintf(cf.unkept, sizeof(cf.unkept), "disk scsi1 (local-lvm:vm-201-disk-1, 500G) is excluded from backup (backup=0)");
        expect_excluded(c, &f, REASON_UNKEPT, cf.unkept);
        v = decide(c, &f, &s);
        assert_formatted(&v, "disk scsi1 (local-lvm:vm-201-disk-1, 500G) is excluded from backup (backup=0)");
        cf = (struct conf_facts){ .snapshots = 2 };
        snprintf(cf.snapshot_names, sizeof(cf.snapshot_names), "before-upgrade, test");
        expect_excluded(c, &f, REASON_SNAPSHOTS, "before-upgrade, test");
        v = decide(c, &f, &s);
        assert_formatted(&v, "2 snapshots of its own (before-upgrade, test), which no archive keeps (reap.discard_snapshots)");
        /* An admin who accepts losing them. */
        v = decide(discard, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        cf = (struct conf_facts){ .pending = true };
        expect_excluded(c, &f, REASON_PENDING, NULL);
        config_free(discard);
}

/* The re-checks (selection, shutdown, verify, destroy) call the same
 * rules: each exclusion added to a guest after it was selected stops the
 * reap at every point, whether or not the point looks at its numbers. */
static void test_recheck_every_rule_at_every_point(void **state)
{
        struct config *c = load_config2("        types = [\"lxc\"];\n",
                                        "select = {\n"
                                        "        exclude_pools = [\"infra\"];\n"
                                        "        exclude_vmids = [\"900-999\"];\n"
                                        "        include_tags = [\"lab\"];\n"
                                        "};\n");
        const struct live_numbers quiet = { .cpu_percent = 0.5, .mem_mb = 100 };
        enum rule { R_TEMPLATE, R_LOCK, R_HA, R_TAG, R_NOT_INCLUDED, R_POOL, R_VMID, R_NODE,
                    R_TYPE, R_PROTECTED, R_UNKEPT, R_SNAPSHOTS, R_PENDING, R_MAX };
        static const enum reason_code want[R_MAX] = {
                REASON_TEMPLATE, REASON_LOCKED,   REASON_HA,         REASON_TAG,
                REASON_NOT_INCLUDED, REASON_POOL, REASON_VMID_RANGE, REASON_NODE_SCOPE,
                REASON_TYPE_SCOPE, REASON_PROTECTED, REASON_UNKEPT, REASON_SNAPSHOTS,
                REASON_PENDING,
        };

        /* Selection: running, its window decided; shutdown: running and
         * quiet right now; verify and destroy: stopped by proxreap, which
         * is the saga's business there (no status given). */
        static const struct {
                const char *status;
                bool numbers;
        } points[] = { { "running", false }, { "running", true }, { NULL, false } };

        (void)state;
        for (int rule = 0; rule < R_MAX; rule++)
                for (size_t at = 0; at < ELEMENTSOF(points); at++) {
                        const struct live_numbers *n = points[at].numbers ? &quiet : NULL;
                        struct conf_facts cf = { 0 };
                        struct guest_facts f = facts();
                        struct verdict v;

                        f.type = GUEST_LXC;
                        f.tags = "lab";
                        f.conf = &cf;
                        f.status = points[at].status;
                        policy_recheck(c, &f, n, &v);
                        assert_kind(&v, VERDICT_IDLE);
                        switch ((enum rule)rule) {
                        case R_TEMPLATE: f.template = true; break;
                        case R_LOCK: f.lock = "backup"; break;
                        case R_HA: f.hastate = "started"; break;
                        case R_TAG: f.tags = "lab;Proxreap-Keep"; break;
                        case R_NOT_INCLUDED: f.tags = "web"; break;
                        case R_POOL: f.pool = "infra"; break;
                        case R_VMID: f.vmid = 950; break;
                        case R_NODE: f.node = "pve2"; break;
                        case R_TYPE: f.type = GUEST_QEMU; break;
                        case R_PROTECTED: cf.protection = true; break;
                        case R_UNKEPT: strcpy(cf.unkept, "unused volume unused0 (x) is not in any archive"); break;
                        case R_SNAPSHOTS: cf.snapshots = 1; break;
                        case R_PENDING: cf.pending = true; break;
                        case R_MAX: break;
                        }
                        policy_recheck(c, &f, n, &v);
                        assert_kind(&v, VERDICT_EXCLUDED);
                        if (!find_reason(&v, want[rule]))
                                fail_msg("rule %d at point %zu: no reason '%s'", rule, at,
                                         reason_code_to_string(want[rule]));
                }
        config_free(c);
}

/* At the shutdown the numbers of the moment count too; a guest that is
 * no longer running is excluded there. */
static void test_recheck_numbers_now(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct live_numbers n = { .cpu_percent = 12, .mem_mb = 100 };
        struct verdict v;

        policy_recheck(c, &f, &n, &v);
        assert_kind(&v, VERDICT_ACTIVE);
        assert_formatted(&v, "cpu now 12.00% >= 5%");
        n = (struct live_numbers){ .cpu_percent = 1, .mem_mb = 2048 };
        policy_recheck(c, &f, &n, &v);
        assert_formatted(&v, "mem now 2048 MiB >= 1024 MiB");
        n.mem_mb = 1023.9;
        policy_recheck(c, &f, &n, &v);
        assert_kind(&v, VERDICT_IDLE);
        f.status = "stopped";
        policy_recheck(c, &f, &n, &v);
        assert_kind(&v, VERDICT_EXCLUDED);
        assert_formatted(&v, "not running (status 'stopped')");
}

static void test_excluded_not_included(void **state)
{
        struct config *c = load_config("select = {\n"
                                       "        include_tags = [\"reap-me\", \"lab\"];\n"
                                       "};\n");
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        (void)state;
        f.tags = "a;b";
        expect_excluded(c, &f, REASON_NOT_INCLUDED, NULL);
        f.tags = "";
        expect_excluded(c, &f, REASON_NOT_INCLUDED, NULL);
        f.tags = "x;lab";
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        f.tags = "reap-me";
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        /* The opt-out tag wins over the opt-in tag. */
        f.tags = "reap-me;proxreap-keep";
        expect_excluded(c, &f, REASON_TAG, "proxreap-keep");
        config_free(c);
}

static void test_excluded_pool(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        f.pool = "infra";
        expect_excluded(c, &f, REASON_POOL, "infra");
        f.pool = "infra2";
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        f.pool = NULL;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
}

static void test_excluded_vmid(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        f.vmid = 950;
        expect_excluded(c, &f, REASON_VMID_RANGE, NULL);
        v = decide(c, &f, &s);
        assert_int_equal(v.reasons[0].a, 900);
        assert_int_equal(v.reasons[0].b, 999);
        assert_formatted(&v, "vmid in excluded range 900-999");
        f.vmid = 250;
        expect_excluded(c, &f, REASON_VMID_RANGE, NULL);
        v = decide(c, &f, &s);
        assert_int_equal(v.reasons[0].a, 250);
        assert_int_equal(v.reasons[0].b, 250);
        assert_formatted(&v, "excluded vmid 250");
        f.vmid = 1000;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        f.vmid = 899;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
}

static void test_excluded_scope(void **state)
{
        struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        f.node = "pve2";
        expect_excluded(c, &f, REASON_NODE_SCOPE, "pve2");
        c->node_scope = NODE_SCOPE_ALL;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        c->node_scope = NODE_SCOPE_LOCAL;

        f = facts();
        f.type = GUEST_LXC;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        c->observe_lxc = false;
        expect_excluded(c, &f, REASON_TYPE_SCOPE, "lxc");
        f.type = GUEST_QEMU;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        c->observe_qemu = false;
        expect_excluded(c, &f, REASON_TYPE_SCOPE, "qemu");
}

static void test_excluded_several(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        f.status = "stopped";
        f.lock = "backup";
        f.tags = "proxreap-keep";
        f.node = "pve9";
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_EXCLUDED);
        assert_int_equal(v.n_reasons, 4);
        assert_int_equal(v.reasons[0].code, REASON_NOT_RUNNING);
        assert_int_equal(v.reasons[1].code, REASON_LOCKED);
        assert_int_equal(v.reasons[2].code, REASON_TAG);
        assert_int_equal(v.reasons[3].code, REASON_NODE_SCOPE);
        assert_formatted(&v, "not running (status 'stopped'), locked ('backup'), "
                             "opt-out tag 'proxreap-keep', not in scope (node 'pve9')");
}

/* --- insufficient data --- */

static void test_no_data(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = { .expected = 60, .newest_age_usec = UINT64_MAX };
        struct verdict v;

        /* "unknown" is a lack of data, not a stopped guest. */
        f.status = "unknown";
        f.has_data = false;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
        assert_null(find_reason(&v, REASON_NOT_RUNNING));
        assert_int_equal(v.reasons[0].code, REASON_NO_DATA);
        assert_string_equal(v.reasons[0].text, "unknown");
        assert_non_null(find_reason(&v, REASON_COVERAGE));
        assert_null(find_reason(&v, REASON_STALE)); /* no sample at all is not "stale" */

        /* No data in the last poll even with a full window. */
        s = stats(0.5, 100);
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
        assert_int_equal(v.n_reasons, 1);
        assert_int_equal(v.reasons[0].code, REASON_NO_DATA);
        assert_formatted(&v, "no data in the last poll (status 'unknown')");

        /* A running guest with data but zero samples: coverage. */
        f = facts();
        s = (struct window_stats){ .expected = 60, .newest_age_usec = UINT64_MAX };
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
        assert_int_equal(v.n_reasons, 1);
        assert_int_equal(v.reasons[0].code, REASON_COVERAGE);
}

static void test_stale(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        /* One missed poll is tolerated: judged at the poll after the
         * missed one, the newest sample is one interval (10 s) old. A second
         * missed poll (20 s) is an outage. */
        s.newest_age_usec = 10 * USEC_PER_SEC;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        s.newest_age_usec = 20 * USEC_PER_SEC - 1;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        s.newest_age_usec = 20 * USEC_PER_SEC;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
        assert_int_equal(v.n_reasons, 1);
        assert_int_equal(v.reasons[0].code, REASON_STALE);
        assert_double_exact(v.reasons[0].value, 20.0);
        s.newest_age_usec = 25 * USEC_PER_SEC;
        v = decide(c, &f, &s);
        assert_formatted(&v, "stale data: newest sample 25.0s old");
}

static void test_uptime(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        /* Up for less than the 10 min window: the window may hold samples
         * from before a restart. */
        f.uptime_s = 599;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
        assert_int_equal(v.n_reasons, 1);
        assert_int_equal(v.reasons[0].code, REASON_UPTIME);
        assert_double_exact(v.reasons[0].value, 599.0);
        assert_double_exact(v.reasons[0].limit, 600.0);
        assert_formatted(&v, "uptime 599s shorter than the 600s window");
        f.uptime_s = 600;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        f.uptime_s = 0;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
}

static void test_coverage(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(0.5, 100);
        struct verdict v;

        s.samples = 53;
        s.coverage = 53.0 / 60;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
        assert_int_equal(v.n_reasons, 1);
        assert_int_equal(v.reasons[0].code, REASON_COVERAGE);
        assert_int_equal(v.reasons[0].a, 53);
        assert_int_equal(v.reasons[0].b, 60);
        assert_double_near(v.reasons[0].value, 5300.0 / 60, 1e-9);
        assert_double_near(v.reasons[0].limit, 90.0, 1e-9);
        assert_formatted(&v, "window coverage 88% < 90% (53 of 60 samples)");

        /* Exactly min_coverage passes: 54 of 60 = 0.9. */
        s.samples = 54;
        s.coverage = 54.0 / 60;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        s.coverage = nextafter(0.9, 0);
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
}

static void test_insufficient_several(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(50, 5000); /* would be active */
        struct verdict v;

        f.uptime_s = 30;
        s.samples = 3;
        s.coverage = 0.05;
        s.newest_age_usec = 60 * USEC_PER_SEC;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
        assert_int_equal(v.n_reasons, 3);
        assert_int_equal(v.reasons[0].code, REASON_STALE);
        assert_int_equal(v.reasons[1].code, REASON_UPTIME);
        assert_int_equal(v.reasons[2].code, REASON_COVERAGE);
        assert_formatted(&v, "stale data: newest sample 60.0s old, "
                             "uptime 30s shorter than the 600s window, "
                             "window coverage 5% < 90% (3 of 60 samples)");
}

/* --- optional rules --- */

static void test_cpu_share(void **state)
{
        struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(1.0, 100);
        struct verdict v;

        c->cpu_share = 0.97;
        s.cpu_below_share = 0.98;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        assert_int_equal(v.n_reasons, 3);
        assert_int_equal(v.reasons[2].code, REASON_CPU_SHARE);
        assert_true(v.reasons[2].pass);
        s.cpu_below_share = 0.97; /* at least the share: idle */
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        /* Busy in bursts: the mean is low, the share is not. */
        s.cpu_below_share = 0.95;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_ACTIVE);
        assert_int_equal(v.n_reasons, 1);
        assert_reason(&v.reasons[0], REASON_CPU_SHARE, false, 0.95, 0.97);
        assert_formatted(&v, "cpu below threshold in 95.0% of samples < 97%");
}

static void test_net_and_disk(void **state)
{
        struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(1.0, 100);
        struct verdict v;

        c->net_kbps = 10;
        c->disk_kbps = 50;
        s.net_mean_kbps = 9.99;
        s.disk_mean_kbps = 49.5;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);
        assert_int_equal(v.n_reasons, 4);
        assert_int_equal(v.reasons[2].code, REASON_NET);
        assert_int_equal(v.reasons[3].code, REASON_DISK);
        assert_formatted(&v, "mean cpu 1.00% < 5%, mean mem 100.00 MiB < 1024 MiB, "
                             "mean net 9.99 kbit/s < 10 kbit/s, mean disk 49.50 kbit/s < 50 kbit/s");

        s.net_mean_kbps = 10.0;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_ACTIVE);
        assert_int_equal(v.n_reasons, 1);
        assert_int_equal(v.reasons[0].code, REASON_NET);
        assert_formatted(&v, "mean net 10.00 kbit/s >= 10 kbit/s");

        s.net_mean_kbps = 1;
        s.disk_mean_kbps = 120.25;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_ACTIVE);
        assert_int_equal(v.n_reasons, 1);
        assert_int_equal(v.reasons[0].code, REASON_DISK);
        assert_formatted(&v, "mean disk 120.25 kbit/s >= 50 kbit/s");
}

static void test_no_rates(void **state)
{
        struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(1.0, 100);
        struct verdict v;

        /* Without the rate rules, missing rates do not matter. */
        s.rate_samples = 0;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);

        c->net_kbps = 10;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
        assert_int_equal(v.n_reasons, 1);
        assert_int_equal(v.reasons[0].code, REASON_NO_RATES);
        assert_int_equal(v.reasons[0].a, 0);
        assert_int_equal(v.reasons[0].b, 60);
        assert_formatted(&v, "network/disk rates for only 0 of 60 samples");

        /* Rates for min_coverage of the samples suffice. */
        s.rate_samples = 53;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
        s.rate_samples = 54;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_IDLE);

        /* The disk rule alone needs rates too. */
        c->net_kbps = -1;
        c->disk_kbps = 50;
        s.rate_samples = 10;
        v = decide(c, &f, &s);
        assert_kind(&v, VERDICT_INSUFFICIENT);
        assert_int_equal(v.reasons[0].code, REASON_NO_RATES);
}

/* --- names and text --- */

static void check_reason_text(struct reason r, const char *want)
{
        char buf[256];

        memset(buf, 'x', sizeof(buf));
        reason_format(&r, buf, sizeof(buf));
        assert_string_equal(buf, want);
}

static void test_reason_format(void **state)
{
        (void)state;
        check_reason_text((struct reason){ .code = REASON_CPU, .pass = true, .value = 1.2, .limit = 5 },
                          "mean cpu 1.20% < 5%");
        check_reason_text((struct reason){ .code = REASON_CPU, .value = 7.126, .limit = 5 },
                          "mean cpu 7.13% >= 5%");
        check_reason_text((struct reason){ .code = REASON_MEM, .pass = true, .value = 512, .limit = 1024 },
                          "mean mem 512.00 MiB < 1024 MiB");
        check_reason_text((struct reason){ .code = REASON_NET, .value = 12.5, .limit = 10 },
                          "mean net 12.50 kbit/s >= 10 kbit/s");
        check_reason_text((struct reason){ .code = REASON_DISK, .pass = true, .value = 0.25, .limit = 50 },
                          "mean disk 0.25 kbit/s < 50 kbit/s");
        check_reason_text((struct reason){ .code = REASON_CPU_SHARE, .pass = true, .value = 0.985, .limit = 0.97 },
                          "cpu below threshold in 98.5% of samples >= 97%");
        check_reason_text((struct reason){ .code = REASON_NOT_RUNNING, .text = "stopped" },
                          "not running (status 'stopped')");
        check_reason_text((struct reason){ .code = REASON_TEMPLATE }, "template");
        check_reason_text((struct reason){ .code = REASON_LOCKED, .text = "backup" },
                          "locked ('backup')");
        check_reason_text((struct reason){ .code = REASON_LOCKED }, "locked ('')");
        check_reason_text((struct reason){ .code = REASON_HA, .text = "started" },
                          "HA-managed (state 'started'; set select.allow_ha to include)");
        check_reason_text((struct reason){ .code = REASON_TAG, .text = "proxreap-keep" },
                          "opt-out tag 'proxreap-keep'");
        check_reason_text((struct reason){ .code = REASON_NOT_INCLUDED },
                          "no tag of select.include_tags");
        check_reason_text((struct reason){ .code = REASON_POOL, .text = "infra" },
                          "excluded pool 'infra'");
        check_reason_text((struct reason){ .code = REASON_VMID_RANGE, .a = 900, .b = 999 },
                          "vmid in excluded range 900-999");
        check_reason_text((struct reason){ .code = REASON_VMID_RANGE, .a = 250, .b = 250 },
                          "excluded vmid 250");
        check_reason_text((struct reason){ .code = REASON_NODE_SCOPE, .text = "pve2" },
                          "not in scope (node 'pve2')");
        check_reason_text((struct reason){ .code = REASON_TYPE_SCOPE, .text = "lxc" },
                          "not in scope (type lxc)");
        check_reason_text((struct reason){ .code = REASON_NO_DATA, .text = "unknown" },
                          "no data in the last poll (status 'unknown')");
        check_reason_text((struct reason){ .code = REASON_STALE, .value = 25 },
                          "stale data: newest sample 25.0s old");
        check_reason_text((struct reason){ .code = REASON_UPTIME, .value = 599, .limit = 600 },
                          "uptime 599s shorter than the 600s window");
        check_reason_text((struct reason){ .code = REASON_COVERAGE, .value = 50, .limit = 90, .a = 30, .b = 60 },
                          "window coverage 50% < 90% (30 of 60 samples)");
        check_reason_text((struct reason){ .code = REASON_NO_RATES, .a = 0, .b = 60 },
                          "network/disk rates for only 0 of 60 samples");
}

/* The rule reasons are formatted without printf; they must read as
 * printf's "%.2f" and "%g" would, for values that are not exact binary
 * halves (where printf rounds to even). */
static void test_rule_reason_matches_printf(void **state)
{
        static const double limits[] = { 0,    5,   1024, 999999, 1000000,
                                         2.5,  0.1, 1e7,  -3,     123456.75 };
        uint64_t seed = 88172645463325252ull;

        (void)state;
        for (unsigned i = 0; i < 20000; i++) {
                double value, limit = limits[i % ELEMENTSOF(limits)];
                char want[256], got[256];

                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                /* 0 to 10^(0..14), with the odd negative, huge or NaN one */
                value = (double)(seed >> 11) / (double)(1ull << 53) *
                        pow(10.0, (double)(seed % 15));
                if (i % 97 == 0)
                        value = -value;
                if (i % 991 == 0)
                        value = 1e300;
                if (i % 1009 == 0)
                        value = NAN;
                snprintf(want, sizeof(want), "mean cpu %.2f%% < %g%%", value, limit);
                reason_format(&(struct reason){ .code = REASON_CPU, .pass = true, .value = value,
                                                .limit = limit },
                              got, sizeof(got));
                assert_string_equal(got, want);
        }
}

/* The reasons that quote a value are written without printf: the same
 * text, also when cut short by a small buffer, as the format they stand
 * for. */
static void test_quoted_reasons_match_printf(void **state)
{
        static const struct {
                enum reason_code code;
                const char *format;
        } cases[] = {
                { REASON_NOT_RUNNING, "not running (status '%s')" },
                { REASON_TEMPLATE, "template" },
                { REASON_LOCKED, "locked ('%s')" },
                { REASON_HA, "HA-managed (state '%s'; set select.allow_ha to include)" },
                { REASON_TAG, "opt-out tag '%s'" },
                { REASON_NOT_INCLUDED, "no tag of select.include_tags" },
                { REASON_POOL, "excluded pool '%s'" },
                { REASON_NODE_SCOPE, "not in scope (node '%s')" },
                { REASON_TYPE_SCOPE, "not in scope (type %s)" },
                { REASON_NO_DATA, "no data in the last poll (status '%s')" },
                { REASON_PROTECTED, "protected (protection=1)" },
                { REASON_UNKEPT, "%s" },
                { REASON_PENDING, "pending configuration changes, which no archive keeps" },
        };
        static const char *texts[] = { "stopped", "", "backup", "a-rather-long-value-0123456789" };

        (void)state;
        for (size_t c = 0; c < ELEMENTSOF(cases); c++)
                for (size_t t = 0; t < ELEMENTSOF(texts); t++)
                        for (size_t size = 1; size <= 80; size++) {
                                char want[80], got[80];

                                memset(got, 'x', sizeof(got));
                                /* The formats are the table's own literals. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                                snprintf(want, size, cases[c].format, texts[t]);
#pragma GCC diagnostic pop
                                reason_format(&(struct reason){ .code = cases[c].code,
                                                                .text = texts[t] },
                                              got, size);
                                if (strcmp(got, want) != 0)
                                        fail_msg("%s, '%s', size %zu: '%s', expected '%s'",
                                                 cases[c].format, texts[t], size, got, want);
                        }
}

static void test_names(void **state)
{
        (void)state;
        assert_string_equal(verdict_to_string(VERDICT_IDLE), "idle");
        assert_string_equal(verdict_to_string(VERDICT_ACTIVE), "active");
        assert_string_equal(verdict_to_string(VERDICT_INSUFFICIENT), "insufficient-data");
        assert_string_equal(verdict_to_string(VERDICT_EXCLUDED), "excluded");
        assert_string_equal(verdict_to_string(_VERDICT_MAX), "unknown");
        assert_string_equal(reason_code_to_string(REASON_CPU), "cpu");
        assert_string_equal(reason_code_to_string(REASON_TAG), "tag");
        assert_string_equal(reason_code_to_string(REASON_COVERAGE), "coverage");
        assert_string_equal(reason_code_to_string(REASON_NOT_RUNNING), "not-running");
        assert_string_equal(reason_code_to_string(REASON_HA), "ha-managed");
        assert_string_equal(reason_code_to_string(REASON_DISK), "disk");
        assert_string_equal(reason_code_to_string(REASON_UNKEPT), "unkept");
        assert_string_equal(reason_code_to_string(REASON_SNAPSHOTS), "snapshots");
        assert_string_equal(reason_code_to_string(REASON_MEM_NOW), "mem-now");
        assert_string_equal(reason_code_to_string((enum reason_code)99), "unknown");
}

static void test_verdict_format_small_buffer(void **state)
{
        const struct config *c = *state;
        struct guest_facts f = facts();
        struct window_stats s = stats(50, 4096);
        struct verdict v = decide(c, &f, &s);
        char buf[64];

        memset(buf, 'x', sizeof(buf));
        verdict_format(&v, buf, 20);
        assert_int_equal(strlen(buf), 19);
        assert_string_equal(buf, "mean cpu 50.00% >= ");
        assert_int_equal(buf[20], 'x');
        /* Cut right after the first reason (", " does not fit). */
        memset(buf, 'x', sizeof(buf));
        verdict_format(&v, buf, 23);
        assert_string_equal(buf, "mean cpu 50.00% >= 5%,");
        assert_int_equal(buf[23], 'x');
        buf[0] = 'y';
        verdict_format(&v, buf, 0);
        assert_int_equal(buf[0], 'y');
        v.n_reasons = 0;
        verdict_format(&v, buf, sizeof(buf));
        assert_string_equal(buf, "");
}

/* --- from the guest table --- */

static void test_from_table(void **state)
{
        struct config *c = load_config2("        interval = \"100ms\";\n"
                                        "        window = \"1s\";\n",
                                        "");
        struct guest_table *t = NULL;
        struct guest_facts f;
        struct window_stats s;
        struct verdict v;
        struct guest *g = NULL;
        uint64_t t0 = 50 * USEC_PER_SEC;

        (void)state;
        assert_int_equal(guest_table_new(config_window_samples(c), c->window_usec, &t), 0);
        for (unsigned k = 1; k <= 10; k++) {
                struct pve_guest p;

                memset(&p, 0, sizeof(p));
                p.vmid = 123;
                p.type = GUEST_LXC;
                snprintf(p.node, sizeof(p.node), "pve1");
                snprintf(p.name, sizeof(p.name), "ct-123");
                snprintf(p.status, sizeof(p.status), "running");
                snprintf(p.tags, sizeof(p.tags), "lab;web");
                snprintf(p.pool, sizeof(p.pool), "dev");
                p.present = PVE_HAS_CPU | PVE_HAS_MEM | PVE_HAS_UPTIME;
                p.cpu = 0.02;
                p.mem = 200 * 1024 * 1024;
                p.uptime = 3600;
                guest_table_begin_poll(t, t0 + k * c->interval_usec);
                assert_int_equal(guest_table_update(t, &p, &g), 0);
                guest_table_end_poll(t, NULL, NULL);
                guest_facts_from(g, &f);
                window_stats(t, g, t0 + k * c->interval_usec, c->cpu_percent, &s);
                policy_decide(c, &f, &s, &v);
                /* Not idle before the window is covered (9 of 10 is 0.9). */
                assert_kind(&v, k < 9 ? VERDICT_INSUFFICIENT : VERDICT_IDLE);
        }
        assert_int_equal(f.vmid, 123);
        assert_int_equal(f.type, GUEST_LXC);
        assert_string_equal(f.node, "pve1");
        assert_string_equal(f.status, "running");
        assert_string_equal(f.tags, "lab;web");
        assert_string_equal(f.pool, "dev");
        assert_string_equal(f.lock, "");
        assert_false(f.template);
        assert_true(f.has_data);
        assert_int_equal(f.uptime_s, 3600);
        assert_formatted(&v, "mean cpu 2.00% < 5%, mean mem 200.00 MiB < 1024 MiB");
        guest_table_free(t);
        config_free(c);
}

/* The history verdict: each rule's peak against its limit (strictly
 * below holds), net and disk only where set, too little history first. */
static void test_history_decide(void **state)
{
        struct config *c = load_config("idle = {\n        net_kbps = 100;\n};\n");
        struct history_peaks k = { .cpu = 4.99, .mem = 1023, .net = 99.9, .disk = 1e6, .rows = 60,
                                   .with_data = 60, .timeframe = "hour", .horizon = "1h",
                                   .statistic = "max" };
        double v5[] = { 3, 1, 5, 2, 4 }, v20[20];
        struct history_verdict v;

        (void)state;
        history_decide(c, &k, &v);
        assert_int_equal(v.kind, VERDICT_IDLE);
        assert_int_equal(v.n_reasons, 3); /* no disk rule: disk is not judged */
        assert_string_equal(v.reasons[0], "cpu average up to 4.99% < 5%");
        assert_string_equal(v.reasons[1], "mem up to 1023 MiB < 1024 MiB");
        assert_string_equal(v.reasons[2], "network up to 99.9 kbit/s < 100 kbit/s");
        k.net = 100;
        k.cpu = 5;
        history_decide(c, &k, &v);
        assert_int_equal(v.kind, VERDICT_ACTIVE);
        assert_string_equal(v.reasons[0], "cpu average up to 5.00% >= 5%");
        assert_string_equal(v.reasons[1], "network up to 100.0 kbit/s >= 100 kbit/s");
        assert_string_equal(v.reasons[2], "mem up to 1023 MiB < 1024 MiB");
        k.with_data = 53; /* 88 % < 90 % */
        history_decide(c, &k, &v);
        assert_int_equal(v.kind, VERDICT_INSUFFICIENT);
        assert_string_equal(v.reasons[0],
                            "its history covers too little of the last 1h (53 of 60 rows, 88% < 90%)");
        assert_string_equal(v.reasons[1], "cpu average up to 5.00% >= 5%");
        k.with_data = 0;
        history_decide(c, &k, &v);
        assert_int_equal(v.kind, VERDICT_INSUFFICIENT);
        assert_int_equal(v.n_reasons, 1);
        assert_string_equal(v.reasons[0], "it has no history for the last 1h");
        /* another statistic names itself */
        k = (struct history_peaks){ .cpu = 6, .mem = 10, .rows = 10, .with_data = 10,
                                    .horizon = "8d", .statistic = "p95" };
        history_decide(c, &k, &v);
        assert_string_equal(v.reasons[0], "cpu p95 6.00% >= 5%");
        assert_string_equal(v.reasons[1], "mem p95 10 MiB < 1024 MiB");
        /* the finest timeframe that may hold a horizon on PVE 8 or 9 */
        assert_string_equal(history_timeframe(3600), "hour");
        assert_string_equal(history_timeframe(4201), "day");
        assert_string_equal(history_timeframe(8 * 86400), "week");
        assert_string_equal(history_timeframe(9 * 86400), "month");
        assert_string_equal(history_timeframe(40 * 86400), "year");
        /* statistics: max, mean, nearest-rank percentiles */
        assert_true(history_statistic(v5, 5, HISTORY_MAX) == 5);
        assert_true(history_statistic(v5, 5, HISTORY_MEAN) == 3);
        assert_true(history_statistic(v5, 5, 50) == 3);
        assert_true(history_statistic(v5, 5, 1) == 1);
        for (int i = 0; i < 20; i++)
                v20[i] = 20 - i; /* 20 .. 1 */
        assert_true(history_statistic(v20, 20, 95) == 19); /* one row of 20 may exceed */
        assert_true(history_statistic(v20, 20, 90) == 18);
        assert_true(history_statistic(v20, 0, 90) == 0);
        config_free(c);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_idle),
                T(test_history_decide),
                T(test_active),
                T(test_thresholds_are_strict),
                T(test_thresholds_follow_config),
                T(test_excluded_not_running),
                T(test_excluded_template),
                T(test_excluded_lock),
                T(test_excluded_ha),
                T(test_excluded_tag),
                T(test_excluded_tag_any_case),
                T(test_excluded_by_configuration),
                T(test_recheck_every_rule_at_every_point),
                T(test_recheck_numbers_now),
                T(test_excluded_not_included),
                T(test_excluded_pool),
                T(test_excluded_vmid),
                T(test_excluded_scope),
                T(test_excluded_several),
                T(test_no_data),
                T(test_stale),
                T(test_uptime),
                T(test_coverage),
                T(test_insufficient_several),
                T(test_cpu_share),
                T(test_net_and_disk),
                T(test_no_rates),
                T(test_reason_format),
                T(test_rule_reason_matches_printf),
                T(test_quoted_reasons_match_printf),
                T(test_names),
                T(test_verdict_format_small_buffer),
                T(test_from_table),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
