/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Unit tests of the streaming /cluster/resources decoder. Every body is
 * decoded in one piece and in small chunks down to byte by byte, which
 * must give identical results.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "pve.h"
#include "testutil.h"
#include "util.h"

#define MAX_GUESTS 16

struct run {
        struct pve_guest guests[MAX_GUESTS];
        unsigned n;
        int fail_at; /* callback returns -ENOMEM for this guest (1-based), 0: never */
        int r;
        struct pve_decode_stats stats;
        char error[256];
};

static int collect(void *userdata, const struct pve_guest *g)
{
        struct run *run = userdata;

        assert_true(run->n < MAX_GUESTS);
        /* memcpy, not assignment: padding too, so runs compare with memcmp */
        memcpy(&run->guests[run->n++], g, sizeof(*g));
        if (run->fail_at && (int)run->n == run->fail_at)
                return -ENOMEM;
        return 0;
}

/* Decodes body in chunks of chunk bytes (0: all at once). */
static void decode_chunked(const char *body, size_t len, size_t chunk, struct run *run)
{
        struct pve_decoder *d = NULL;
        int fail_at = run->fail_at;
        size_t off = 0;
        int r = 0;

        memset(run, 0, sizeof(*run));
        run->fail_at = fail_at;
        memset(&run->stats, 0x55, sizeof(run->stats));
        assert_int_equal(pve_decoder_new(collect, run, &d), 0);
        if (chunk == 0)
                chunk = len ? len : 1;
        while (off < len && r == 0) {
                size_t n = len - off < chunk ? len - off : chunk;

                r = pve_decoder_feed(d, body + off, n);
                off += n;
        }
        if (r == 0)
                r = pve_decoder_finish(d, &run->stats);
        run->r = r;
        snprintf(run->error, sizeof(run->error), "%s", pve_decoder_error(d));
        if (r == 0)
                assert_string_equal(run->error, "");
        pve_decoder_free(d);
}

static void assert_same_run(const struct run *a, const struct run *b, size_t chunk)
{
        if (a->r != b->r)
                fail_msg("chunk %zu: r = %d, whole: %d", chunk, b->r, a->r);
        assert_int_equal(a->n, b->n);
        for (unsigned i = 0; i < a->n; i++)
                if (memcmp(&a->guests[i], &b->guests[i], sizeof(a->guests[i])) != 0)
                        fail_msg("chunk %zu: guest #%u (vmid %u) differs", chunk, i,
                                 (unsigned)b->guests[i].vmid);
        if (a->r == 0) {
                assert_int_equal(a->stats.guests, b->stats.guests);
                assert_int_equal(a->stats.rejected, b->stats.rejected);
                assert_int_equal(a->stats.skipped, b->stats.skipped);
                assert_string_equal(a->stats.first_reject, b->stats.first_reject);
        } else
                assert_string_equal(a->error, b->error);
}

/* Decodes in one piece, then in chunks of 1, 2, 3, 7 and 64 bytes, and
 * checks all runs agree. */
static void decode(const char *body, struct run *run)
{
        static const size_t chunks[] = { 1, 2, 3, 7, 64 };
        struct run *other = malloc(sizeof(*other));
        size_t len = strlen(body);

        assert_non_null(other);
        decode_chunked(body, len, 0, run);
        for (size_t i = 0; i < ELEMENTSOF(chunks); i++) {
                other->fail_at = run->fail_at;
                decode_chunked(body, len, chunks[i], other);
                assert_same_run(run, other, chunks[i]);
        }
        free(other);
}

static void decode_ok(const char *body, struct run *run)
{
        decode(body, run);
        if (run->r != 0)
                fail_msg("decode failed: %d (%s)", run->r, run->error);
        assert_int_equal(run->stats.guests, run->n);
}

static void decode_fails(const char *body, const char *error)
{
        struct run *run = calloc(1, sizeof(*run));

        assert_non_null(run);
        decode(body, run);
        if (run->r != -EBADMSG)
                fail_msg("'%s': r = %d, expected -EBADMSG", body, run->r);
        assert_contains(run->error, error);
        free(run);
}

/* --- a realistic answer --- */

/* Fields of GET /cluster/resources (tests/data/pve-api/endpoints.json):
 * a running VM with every stat, a stopped container, a stopped template
 * VM with a lock, plus a node, a storage and an sdn entry. Keys are in
 * Perl hash order (unsorted), as pveproxy sends them. */
static const char realistic[] =
        "{\"data\":["
        "{\"netout\":52813417,\"maxcpu\":4,\"diskread\":1178123776,\"id\":\"qemu/100\","
        "\"name\":\"web-1\",\"template\":0,\"vmid\":100,\"cpu\":0.0123413051716566,"
        "\"maxdisk\":34359738368,\"mem\":1127792640,\"memhost\":1523871744,\"netin\":81237221,"
        "\"node\":\"pve1\",\"disk\":0,\"uptime\":86417,\"diskwrite\":1515457024,"
        "\"maxmem\":4294967296,\"type\":\"qemu\",\"status\":\"running\",\"hastate\":\"started\","
        "\"pool\":\"web\",\"tags\":\"prod;web\"},"
        "{\"type\":\"lxc\",\"id\":\"lxc/101\",\"vmid\":101,\"node\":\"pve2\",\"name\":\"ct-dns\","
        "\"status\":\"stopped\",\"template\":0,\"cpu\":0,\"maxcpu\":1,\"mem\":0,"
        "\"maxmem\":536870912,\"disk\":0,\"maxdisk\":8589934592,\"netin\":0,\"netout\":0,"
        "\"diskread\":0,\"diskwrite\":0,\"uptime\":0,\"tags\":\"\"},"
        "{\"id\":\"qemu/9000\",\"type\":\"qemu\",\"vmid\":9000,\"node\":\"pve1\","
        "\"name\":\"debian-12-template\",\"status\":\"stopped\",\"template\":1,"
        "\"lock\":\"backup\",\"cpu\":0,\"maxcpu\":2,\"mem\":0,\"maxmem\":2147483648,\"disk\":0,"
        "\"maxdisk\":10737418240,\"netin\":0,\"netout\":0,\"diskread\":0,\"diskwrite\":0,"
        "\"uptime\":0},"
        "{\"id\":\"node/pve1\",\"type\":\"node\",\"node\":\"pve1\",\"status\":\"online\","
        "\"cpu\":0.0345,\"maxcpu\":16,\"mem\":12345678901,\"maxmem\":67108864000,"
        "\"uptime\":1234567,\"level\":\"\",\"cgroup-mode\":2},"
        "{\"id\":\"storage/pve1/local\",\"type\":\"storage\",\"storage\":\"local\","
        "\"node\":\"pve1\",\"status\":\"available\",\"shared\":0,\"plugintype\":\"dir\","
        "\"content\":\"iso,vztmpl,backup\",\"disk\":7954288640,\"maxdisk\":100861726720},"
        "{\"id\":\"sdn/pve1/localnetwork\",\"type\":\"sdn\",\"sdn\":\"localnetwork\","
        "\"node\":\"pve1\",\"status\":\"ok\"}"
        "]}";

static void test_realistic_body(void **state)
{
        struct run *run = calloc(1, sizeof(*run));
        const struct pve_guest *g;

        (void)state;
        decode_ok(realistic, run);
        assert_int_equal(run->n, 3);
        assert_int_equal(run->stats.guests, 3);
        assert_int_equal(run->stats.skipped, 3);
        assert_int_equal(run->stats.rejected, 0);
        assert_string_equal(run->stats.first_reject, "");

        g = &run->guests[0];
        assert_int_equal(g->vmid, 100);
        assert_int_equal(g->type, GUEST_QEMU);
        assert_string_equal(g->node, "pve1");
        assert_string_equal(g->name, "web-1");
        assert_string_equal(g->status, "running");
        assert_string_equal(g->lock, "");
        assert_string_equal(g->hastate, "started");
        assert_string_equal(g->pool, "web");
        assert_string_equal(g->tags, "prod;web");
        assert_false(g->template);
        assert_int_equal(g->present, PVE_HAS_CPU | PVE_HAS_MEM | PVE_HAS_UPTIME | PVE_HAS_NET |
                                             PVE_HAS_DISKIO | PVE_HAS_MAXMEM);
        assert_double_exact(g->cpu, 0.0123413051716566);
        assert_double_exact(g->maxcpu, 4.0);
        assert_int_equal(g->mem, 1127792640);
        assert_int_equal(g->maxmem, UINT64_C(4294967296));
        assert_int_equal(g->disk, 0);
        assert_int_equal(g->maxdisk, UINT64_C(34359738368));
        assert_int_equal(g->netin, 81237221);
        assert_int_equal(g->netout, 52813417);
        assert_int_equal(g->diskread, 1178123776);
        assert_int_equal(g->diskwrite, 1515457024);
        assert_int_equal(g->uptime, 86417);

        g = &run->guests[1];
        assert_int_equal(g->vmid, 101);
        assert_int_equal(g->type, GUEST_LXC);
        assert_string_equal(g->node, "pve2");
        assert_string_equal(g->name, "ct-dns");
        assert_string_equal(g->status, "stopped");
        assert_string_equal(g->tags, "");
        assert_string_equal(g->hastate, "");
        assert_string_equal(g->pool, "");
        assert_int_equal(g->uptime, 0);
        assert_true(g->present & PVE_HAS_CPU);

        g = &run->guests[2];
        assert_int_equal(g->vmid, 9000);
        assert_true(g->template);
        assert_string_equal(g->lock, "backup");
        assert_string_equal(g->name, "debian-12-template");
        assert_int_equal(g->maxdisk, UINT64_C(10737418240));
        assert_string_equal(guest_type_to_string(GUEST_QEMU), "qemu");
        assert_string_equal(guest_type_to_string(GUEST_LXC), "lxc");
        free(run);
}

/* --- field decoding --- */

#define ENTRY(fields) "{\"type\":\"qemu\",\"vmid\":100,\"node\":\"pve1\"," fields "}"
#define BODY1(fields) "{\"data\":[" ENTRY(fields) "]}"

static void decode_one(const char *body, struct run *run)
{
        decode_ok(body, run);
        assert_int_equal(run->n, 1);
}

static void test_numbers(void **state)
{
        struct run *run = calloc(1, sizeof(*run));

        (void)state;
        /* "cpu": 0 is an integer in real answers. */
        decode_one(BODY1("\"cpu\":0,\"mem\":0,\"uptime\":0"), run);
        assert_int_equal(run->guests[0].present, PVE_HAS_CPU | PVE_HAS_MEM | PVE_HAS_UPTIME);
        assert_double_exact(run->guests[0].cpu, 0.0);
        assert_int_equal(run->stats.rejected, 0);

        decode_one(BODY1("\"cpu\":1,\"maxcpu\":0.5"), run);
        assert_double_exact(run->guests[0].cpu, 1.0);
        assert_double_exact(run->guests[0].maxcpu, 0.5);

        decode_one(BODY1("\"cpu\":0.25,\"mem\":1.5e3,\"uptime\":42.0"), run);
        assert_double_exact(run->guests[0].cpu, 0.25);
        assert_int_equal(run->guests[0].mem, 1500);
        assert_int_equal(run->guests[0].uptime, 42);
        assert_int_equal(run->stats.rejected, 0);

        decode_one(BODY1("\"cpu\":1.5e-3,\"netin\":18446744073709551615,\"netout\":1"), run);
        assert_double_exact(run->guests[0].cpu, 0.0015);
        assert_true(run->guests[0].netin == UINT64_MAX);
        assert_int_equal(run->guests[0].present, PVE_HAS_CPU | PVE_HAS_NET);
        free(run);
}

static void test_template_forms(void **state)
{
        static const struct {
                const char *body;
                bool template;
        } cases[] = {
                { BODY1("\"template\":0"), false },
                { BODY1("\"template\":1"), true },
                { BODY1("\"template\":false"), false },
                { BODY1("\"template\":true"), true },
                { BODY1("\"name\":\"x\""), false }, /* absent */
                { BODY1("\"template\":null"), false },
        };
        struct run *run = calloc(1, sizeof(*run));

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                decode_one(cases[i].body, run);
                assert_int_equal(run->guests[0].template, cases[i].template);
                assert_int_equal(run->stats.rejected, 0);
        }
        /* Anything else is damage: delivered, without statistics. */
        decode_one(BODY1("\"template\":2,\"cpu\":0.5,\"mem\":1,\"uptime\":1"), run);
        assert_int_equal(run->guests[0].present, 0);
        assert_int_equal(run->stats.rejected, 1);
        assert_string_equal(run->stats.first_reject, "entry vmid 100: field 'template' is not 0 or 1");
        free(run);
}

static void test_absent_fields(void **state)
{
        struct run *run = calloc(1, sizeof(*run));
        const struct pve_guest *g;

        (void)state;
        /* Only the identity: delivered, no statistics, status unknown. */
        decode_one("{\"data\":[{\"type\":\"lxc\",\"vmid\":123,\"node\":\"pve3\"}]}", run);
        g = &run->guests[0];
        assert_int_equal(g->vmid, 123);
        assert_int_equal(g->type, GUEST_LXC);
        assert_string_equal(g->node, "pve3");
        assert_string_equal(g->status, "unknown");
        assert_string_equal(g->name, "");
        assert_int_equal(g->present, 0);
        assert_int_equal(run->stats.rejected, 0);

        /* Unknown keys of any shape are ignored. */
        decode_one(BODY1("\"memhost\":5,\"future\":{\"a\":[1,{\"cpu\":9}]},\"list\":[1,2],"
                         "\"flag\":true,\"nothing\":null,\"cpu\":0.5"),
                   run);
        assert_int_equal(run->guests[0].present, PVE_HAS_CPU);
        assert_double_exact(run->guests[0].cpu, 0.5);
        assert_int_equal(run->stats.rejected, 0);

        /* null is absent. */
        decode_one(BODY1("\"cpu\":null,\"mem\":null,\"uptime\":5"), run);
        assert_int_equal(run->guests[0].present, PVE_HAS_UPTIME);
        assert_int_equal(run->stats.rejected, 0);

        decode_ok("{\"data\":[]}", run);
        assert_int_equal(run->n, 0);
        assert_int_equal(run->stats.guests, 0);
        free(run);
}

static void test_status_unknown(void **state)
{
        struct run *run = calloc(1, sizeof(*run));

        (void)state;
        /* pmxcfs dropped the stats: status "unknown" and no numbers. */
        decode_ok("{\"data\":["
                  "{\"id\":\"qemu/105\",\"type\":\"qemu\",\"vmid\":105,\"node\":\"pve2\","
                  "\"name\":\"gone-quiet\",\"status\":\"unknown\",\"template\":0,\"maxcpu\":2,"
                  "\"maxmem\":2147483648},"
                  "{\"id\":\"qemu/106\",\"type\":\"qemu\",\"vmid\":106,\"node\":\"pve2\","
                  "\"status\":\"running\",\"cpu\":0.01,\"mem\":1,\"uptime\":9}"
                  "]}",
                  run);
        assert_int_equal(run->n, 2);
        assert_string_equal(run->guests[0].status, "unknown");
        assert_false(run->guests[0].present & (PVE_HAS_CPU | PVE_HAS_MEM));
        assert_int_equal(run->guests[0].present, PVE_HAS_MAXMEM);
        assert_int_equal(run->guests[1].present, PVE_HAS_CPU | PVE_HAS_MEM | PVE_HAS_UPTIME);
        assert_int_equal(run->stats.rejected, 0);
        free(run);
}

static void test_other_types_skipped(void **state)
{
        struct run *run = calloc(1, sizeof(*run));

        (void)state;
        decode_ok("{\"data\":["
                  "{\"id\":\"node/pve1\",\"type\":\"node\",\"node\":\"pve1\",\"cpu\":0.1},"
                  "{\"id\":\"storage/pve1/local\",\"type\":\"storage\",\"node\":\"pve1\"},"
                  "{\"id\":\"pool/web\",\"type\":\"pool\",\"pool\":\"web\"},"
                  "{\"id\":\"openvz/100\",\"type\":\"openvz\",\"vmid\":100,\"node\":\"pve1\"},"
                  ENTRY("\"cpu\":0.5")
                  "]}",
                  run);
        assert_int_equal(run->n, 1);
        assert_int_equal(run->stats.skipped, 4);
        assert_int_equal(run->stats.rejected, 0);
        assert_int_equal(run->guests[0].vmid, 100);
        free(run);
}

/* --- invalid identities: dropped, counted, the first reason kept --- */

static void expect_rejected(const char *entry, const char *first_reject)
{
        char *body = tu_strdupf("{\"data\":[%s," ENTRY("\"cpu\":0.5") "]}", entry);
        struct run *run = calloc(1, sizeof(*run));

        decode_ok(body, run);
        assert_int_equal(run->n, 1); /* only the valid one */
        assert_int_equal(run->guests[0].vmid, 100);
        assert_int_equal(run->guests[0].present, PVE_HAS_CPU);
        assert_int_equal(run->stats.guests, 1);
        assert_int_equal(run->stats.rejected, 1);
        assert_string_equal(run->stats.first_reject, first_reject);
        free(run);
        free(body);
}

static void test_invalid_vmid(void **state)
{
        (void)state;
        /* Entries without id or vmid are named by position, from 1. */
        expect_rejected("{\"id\":\"qemu/99\",\"type\":\"qemu\",\"vmid\":99,\"node\":\"pve1\"}",
                        "entry 'qemu/99': field 'vmid' is not a valid vmid (100-999999999)");
        expect_rejected("{\"type\":\"qemu\",\"vmid\":\"abc\",\"node\":\"pve1\"}",
                        "entry #1: field 'vmid' is a string, not a number");
        expect_rejected("{\"type\":\"qemu\",\"vmid\":1e12,\"node\":\"pve1\"}",
                        "entry #1: field 'vmid' is not a valid vmid (100-999999999)");
        expect_rejected("{\"type\":\"qemu\",\"vmid\":1000000000000,\"node\":\"pve1\"}",
                        "entry #1: field 'vmid' is not a valid vmid (100-999999999)");
        expect_rejected("{\"type\":\"qemu\",\"vmid\":1000000000,\"node\":\"pve1\"}",
                        "entry #1: field 'vmid' is not a valid vmid (100-999999999)");
        expect_rejected("{\"type\":\"qemu\",\"vmid\":100.5,\"node\":\"pve1\"}",
                        "entry #1: field 'vmid' is not a valid vmid (100-999999999)");
        expect_rejected("{\"type\":\"qemu\",\"vmid\":-100,\"node\":\"pve1\"}",
                        "entry #1: field 'vmid' is not a non-negative number");
        expect_rejected("{\"type\":\"lxc\",\"node\":\"pve1\"}", "entry #1: missing 'vmid'");
        expect_rejected("{\"type\":\"qemu\",\"vmid\":null,\"node\":\"pve1\"}",
                        "entry #1: missing 'vmid'");
}

static void test_invalid_node(void **state)
{
        struct run *run = calloc(1, sizeof(*run));
        char *entry;

        (void)state;
        expect_rejected("{\"id\":\"qemu/200\",\"type\":\"qemu\",\"vmid\":200,\"node\":\"-bad\"}",
                        "entry 'qemu/200': field 'node' is not a valid node name");
        entry = tu_strdupf("{\"type\":\"qemu\",\"vmid\":200,\"node\":\"%s\"}",
                           "n123456789012345678901234567890123456789012345678901234567890123456789");
        expect_rejected(entry, "entry vmid 200: field 'node' is too long");
        free(entry);
        /* 64 characters fit the buffer but are not a node name. */
        entry = tu_strdupf("{\"type\":\"qemu\",\"vmid\":200,\"node\":\"%s\"}",
                           "n123456789012345678901234567890123456789012345678901234567890123");
        expect_rejected(entry, "entry vmid 200: field 'node' is too long");
        free(entry);
        /* 63 characters are a valid node name. */
        entry = tu_strdupf("{\"data\":[{\"type\":\"qemu\",\"vmid\":200,\"node\":\"%s\"}]}",
                           "n12345678901234567890123456789012345678901234567890123456789012");
        decode_one(entry, run);
        assert_int_equal(strlen(run->guests[0].node), 63);
        assert_int_equal(run->stats.rejected, 0);
        free(entry);
        expect_rejected("{\"type\":\"qemu\",\"vmid\":200,\"node\":\"pve1.example.com\"}",
                        "entry vmid 200: field 'node' is not a valid node name");
        expect_rejected("{\"type\":\"qemu\",\"vmid\":200}", "entry vmid 200: missing 'node'");
        expect_rejected("{\"type\":\"qemu\",\"vmid\":200,\"node\":5}",
                        "entry vmid 200: field 'node' is a number, not a string");
        expect_rejected("{\"vmid\":200,\"node\":\"pve1\"}",
                        "entry vmid 200: missing or unknown 'type'");
        expect_rejected("{\"type\":\"qemu\",\"vmid\":200,\"vmid\":201,\"node\":\"pve1\"}",
                        "entry vmid 200: field 'vmid' appears twice (duplicate key)");
        expect_rejected("7", "entry #1: not a JSON object");
        free(run);
}

static void test_first_reject_kept(void **state)
{
        struct run *run = calloc(1, sizeof(*run));

        (void)state;
        decode_ok("{\"data\":["
                  "{\"id\":\"qemu/50\",\"type\":\"qemu\",\"vmid\":50,\"node\":\"pve1\"},"
                  ENTRY("\"cpu\":0.5") ","
                  "{\"id\":\"qemu/300\",\"type\":\"qemu\",\"vmid\":300,\"node\":\"-x\"},"
                  "\"stray\",[1],"
                  "{\"id\":\"qemu/301\",\"type\":\"qemu\",\"vmid\":301,\"node\":\"pve1\"}"
                  "]}",
                  run);
        assert_int_equal(run->n, 2);
        assert_int_equal(run->guests[1].vmid, 301);
        assert_int_equal(run->stats.rejected, 4);
        assert_string_equal(run->stats.first_reject,
                            "entry 'qemu/50': field 'vmid' is not a valid vmid (100-999999999)");

        /* The position counts every entry: guests, skipped and rejected. */
        decode_ok("{\"data\":["
                  ENTRY("\"cpu\":0.5") ","
                  "{\"type\":\"node\",\"node\":\"pve1\"},"
                  "{\"type\":\"lxc\",\"node\":\"pve1\"}"
                  "]}",
                  run);
        assert_int_equal(run->stats.rejected, 1);
        assert_string_equal(run->stats.first_reject, "entry #3: missing 'vmid'");
        free(run);
}

/* --- damaged entries: delivered, but without statistics --- */

static void expect_damaged(const char *fields, const char *first_reject)
{
        char *body = tu_strdupf("{\"data\":[{\"id\":\"qemu/100\",\"type\":\"qemu\",\"vmid\":100,"
                                "\"node\":\"pve1\",\"cpu\":0.01,\"mem\":1048576,\"uptime\":999,"
                                "\"netin\":1,\"netout\":1,\"diskread\":1,\"diskwrite\":1,%s}]}",
                                fields);
        struct run *run = calloc(1, sizeof(*run));

        decode_ok(body, run);
        assert_int_equal(run->n, 1);
        assert_int_equal(run->guests[0].vmid, 100);
        assert_string_equal(run->guests[0].node, "pve1");
        /* No statistics, so it can never look idle. */
        assert_int_equal(run->guests[0].present, 0);
        assert_int_equal(run->stats.guests, 1);
        assert_int_equal(run->stats.rejected, 1);
        assert_string_equal(run->stats.first_reject, first_reject);
        free(run);
        free(body);
}

static void test_duplicate_key(void **state)
{
        (void)state;
        expect_damaged("\"cpu\":0.9", "entry 'qemu/100': field 'cpu' appears twice (duplicate key)");
        expect_damaged("\"status\":\"running\",\"status\":\"stopped\"",
                       "entry 'qemu/100': field 'status' appears twice (duplicate key)");
        expect_damaged("\"tags\":\"a\",\"tags\":\"proxreap-keep\"",
                       "entry 'qemu/100': field 'tags' appears twice (duplicate key)");
}

static void test_wrong_types(void **state)
{
        (void)state;
        expect_damaged("\"maxcpu\":\"2\"", "entry 'qemu/100': field 'maxcpu' is a string, not a number");
        expect_damaged("\"maxmem\":true", "entry 'qemu/100': field 'maxmem' is a boolean");
        expect_damaged("\"name\":5", "entry 'qemu/100': field 'name' is a number, not a string");
        expect_damaged("\"tags\":[\"a\"]", "entry 'qemu/100': field 'tags' is an array");
        expect_damaged("\"lock\":{}", "entry 'qemu/100': field 'lock' is an object");
        expect_damaged("\"maxdisk\":-1", "entry 'qemu/100': field 'maxdisk' is not a non-negative number");
        expect_damaged("\"disk\":1e400", "entry 'qemu/100': field 'disk' is not a non-negative number");
        expect_damaged("\"maxmem\":18446744073709551616",
                       "entry 'qemu/100': field 'maxmem' is not a non-negative number");
}

static void test_string_cpu(void **state)
{
        struct run *run = calloc(1, sizeof(*run));

        (void)state;
        decode_one(BODY1("\"cpu\":\"0.01\",\"mem\":1,\"uptime\":1"), run);
        assert_int_equal(run->guests[0].present, 0);
        assert_double_exact(run->guests[0].cpu, 0.0);
        assert_int_equal(run->stats.rejected, 1);
        assert_string_equal(run->stats.first_reject,
                            "entry vmid 100: field 'cpu' is a string, not a number");
        free(run);
}

static void test_long_strings(void **state)
{
        char tags[600], name[300], *fields;
        struct run *run = calloc(1, sizeof(*run));

        (void)state;
        /* Tags longer than the buffer: never truncated (a cut list could
         * lose the opt-out tag); the entry carries no statistics. */
        memset(tags, 'a', sizeof(tags));
        memcpy(tags + 520, ";proxreap-keep", 14);
        tags[540] = '\0';
        fields = tu_strdupf("\"tags\":\"%s\"", tags);
        expect_damaged(fields, "entry 'qemu/100': field 'tags' is too long");
        free(fields);
        fields = tu_strdupf(BODY1("\"cpu\":0.5,\"mem\":1,\"uptime\":1,\"tags\":\"%s\""), tags);
        decode_one(fields, run);
        assert_string_equal(run->guests[0].tags, "");
        free(fields);

        /* 511 characters fit. */
        tags[511] = '\0';
        fields = tu_strdupf(BODY1("\"cpu\":0.5,\"mem\":1,\"uptime\":1,\"tags\":\"%s\""), tags);
        decode_one(fields, run);
        assert_string_equal(run->guests[0].tags, tags);
        assert_int_equal(run->guests[0].present, PVE_HAS_CPU | PVE_HAS_MEM | PVE_HAS_UPTIME);
        assert_int_equal(run->stats.rejected, 0);
        free(fields);

        /* A long name is only cosmetic: truncated, the entry is fine. */
        memset(name, 'n', sizeof(name));
        name[299] = '\0';
        fields = tu_strdupf(BODY1("\"cpu\":0.5,\"mem\":1,\"uptime\":1,\"name\":\"%s\""), name);
        decode_one(fields, run);
        assert_int_equal(strlen(run->guests[0].name), sizeof(run->guests[0].name) - 1);
        assert_int_equal(run->guests[0].present, PVE_HAS_CPU | PVE_HAS_MEM | PVE_HAS_UPTIME);
        assert_int_equal(run->stats.rejected, 0);
        free(fields);

        expect_damaged("\"status\":\"running-but-with-a-very-long-status\"",
                       "entry 'qemu/100': field 'status' is too long");
        expect_damaged("\"lock\":\"a-lock-name-that-is-much-too-long\"",
                       "entry 'qemu/100': field 'lock' is too long");
        /* An embedded NUL could hide the rest of the string. */
        expect_damaged("\"tags\":\"a\\u0000proxreap-keep\"",
                       "entry 'qemu/100': field 'tags' holds a NUL character");
        free(run);
}

/* --- answers that are not {"data": [...]} --- */

static void test_bad_answers(void **state)
{
        (void)state;
        decode_fails("not json", "invalid JSON: lexical error");
        decode_fails("", "invalid JSON: parse error: premature EOF");
        decode_fails("{\"data\":[" ENTRY("\"cpu\":0.5") ",{\"type\":\"qemu\",\"vm",
                     "invalid JSON: parse error: premature EOF");
        decode_fails("{\"data\":[]", "invalid JSON: parse error: premature EOF");
        decode_fails("{\"data\":null}", "'data' is not an array");
        decode_fails("{\"data\":{}}", "'data' is not an array");
        decode_fails("{\"data\":\"x\"}", "'data' is not an array");
        decode_fails("{\"data\":5}", "'data' is not an array");
        decode_fails("{\"data\":true}", "'data' is not an array");
        decode_fails("[" ENTRY("\"cpu\":0.5") "]", "answer is not a JSON object");
        decode_fails("42", "answer is not a JSON object");
        decode_fails("{}", "answer has no 'data' array");
        decode_fails("{\"errors\":{\"vmid\":\"bad\"},\"message\":\"x\"}",
                     "answer has no 'data' array");
        decode_fails("{\"other\":{\"data\":[" ENTRY("\"cpu\":0.5") "]}}",
                     "answer has no 'data' array");
        decode_fails("{\"data\":[],\"data\":[]}", "duplicate 'data' key");
        decode_fails("{\"data\":[]} {\"data\":[]}", "invalid JSON");
        decode_fails("{\"data\":[" ENTRY("\"cpu\":0.5") "]}}", "invalid JSON");
}

static void test_bad_answer_still_delivers_before(void **state)
{
        struct run *run = calloc(1, sizeof(*run));

        (void)state;
        /* Streaming: guests before the break were delivered; the caller
         * must treat the poll as failed (pve_get_resources returns < 0). */
        decode("{\"data\":[" ENTRY("\"cpu\":0.5") ",{\"type\":", run);
        assert_int_equal(run->r, -EBADMSG);
        assert_int_equal(run->n, 1);
        free(run);
}

static void test_callback_error_aborts(void **state)
{
        struct run *run = calloc(1, sizeof(*run));

        (void)state;
        run->fail_at = 2;
        decode("{\"data\":["
               "{\"type\":\"qemu\",\"vmid\":100,\"node\":\"pve1\"},"
               "{\"type\":\"qemu\",\"vmid\":101,\"node\":\"pve1\"},"
               "{\"type\":\"qemu\",\"vmid\":102,\"node\":\"pve1\"}"
               "]}",
               run);
        assert_int_equal(run->r, -ENOMEM);
        assert_int_equal(run->n, 2); /* nothing after the failing one */
        free(run);
}

static void test_reset_reuse(void **state)
{
        static const char good[] = "{\"data\":[" ENTRY("\"cpu\":0.5") ",{\"type\":\"node\"}]}";
        static const char bad[] = "{\"data\":[{\"type\":\"qemu\",\"vmid\":1,\"node\":\"x\"},";
        struct run *run = calloc(1, sizeof(*run));
        struct pve_decode_stats st;
        struct pve_decoder *d = NULL;

        (void)state;
        assert_int_equal(pve_decoder_new(collect, run, &d), 0);
        /* A broken attempt... */
        assert_int_equal(pve_decoder_feed(d, bad, strlen(bad)), 0);
        assert_int_equal(pve_decoder_feed(d, "garbage", 7), -EBADMSG);
        assert_contains(pve_decoder_error(d), "invalid JSON");
        /* ...then a retry from scratch on the same decoder. */
        assert_int_equal(pve_decoder_reset(d), 0);
        assert_string_equal(pve_decoder_error(d), "");
        run->n = 0;
        assert_int_equal(pve_decoder_feed(d, good, strlen(good)), 0);
        assert_int_equal(pve_decoder_finish(d, &st), 0);
        assert_int_equal(run->n, 1);
        assert_int_equal(st.guests, 1);
        assert_int_equal(st.rejected, 0); /* the broken attempt's reject is forgotten */
        assert_int_equal(st.skipped, 1);
        assert_string_equal(st.first_reject, "");
        /* And again, after a complete run. */
        assert_int_equal(pve_decoder_reset(d), 0);
        run->n = 0;
        assert_int_equal(pve_decoder_feed(d, good, strlen(good)), 0);
        assert_int_equal(pve_decoder_finish(d, NULL), 0);
        assert_int_equal(run->n, 1);
        pve_decoder_free(d);
        assert_null(pve_decoder_free(NULL));
        free(run);
}

/* --- captured samples --- */

static char *sample(const char *name)
{
        char *path = tu_strdupf("%s/pve-api/samples/%s", tu_testdata(), name);
        char *text = tu_read_file(path, NULL);

        if (!text)
                fail_msg("cannot read %s", path);
        free(path);
        return text;
}

static void test_sample_storage(void **state)
{
        char *data = sample("cluster-resources-type-storage.pvesh.json");
        /* pvesh prints only the payload: wrap it as the HTTP answer is. */
        char *body = tu_strdupf("{\"data\": %s}", data);
        struct run *run = calloc(1, sizeof(*run));

        (void)state;
        decode_ok(body, run);
        assert_int_equal(run->n, 0);
        assert_int_equal(run->stats.guests, 0);
        assert_int_equal(run->stats.skipped, 3);
        assert_int_equal(run->stats.rejected, 0);
        free(run);
        free(body);
        free(data);
}

static void test_sample_other_endpoints(void **state)
{
        char *status = sample("qemu-status-current-pve8.0.json");
        char *upid = sample("lxc-shutdown-post-returns-upid.pvesh.json");
        char *body = tu_strdupf("{\"data\": %s}", upid);

        (void)state;
        /* Answers of other endpoints are refused, not half-understood. */
        decode_fails(status, "'data' is not an array");
        decode_fails(body, "'data' is not an array");
        free(body);
        free(upid);
        free(status);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_realistic_body),
                cmocka_unit_test(test_numbers),
                cmocka_unit_test(test_template_forms),
                cmocka_unit_test(test_absent_fields),
                cmocka_unit_test(test_status_unknown),
                cmocka_unit_test(test_other_types_skipped),
                cmocka_unit_test(test_invalid_vmid),
                cmocka_unit_test(test_invalid_node),
                cmocka_unit_test(test_first_reject_kept),
                cmocka_unit_test(test_duplicate_key),
                cmocka_unit_test(test_wrong_types),
                cmocka_unit_test(test_string_cpu),
                cmocka_unit_test(test_long_strings),
                cmocka_unit_test(test_bad_answers),
                cmocka_unit_test(test_bad_answer_still_delivers_before),
                cmocka_unit_test(test_callback_error_aborts),
                cmocka_unit_test(test_reset_reuse),
                cmocka_unit_test(test_sample_storage),
                cmocka_unit_test(test_sample_other_endpoints),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
