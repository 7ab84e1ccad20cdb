/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The streaming decoder of GET /cluster/resources (src/pve_decode.c).
 *
 * The answer arrives from libcurl in pieces of any size, so every input is
 * decoded twice: cut in pieces at places derived from the data, then (after
 * pve_decoder_reset(), as a retried request does) in one piece. Both must
 * deliver the same guests, the same statistics and the same result: where
 * the cuts fall must never change what proxreap sees.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "pve.h"

struct seen {
        unsigned guests;
        uint64_t hash; /* FNV-1a over every delivered guest */
        unsigned stop_at; /* the callback fails on this guest (0: never) */
};

static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
        const unsigned char *b = p;

        for (size_t i = 0; i < n; i++)
                *h = (*h ^ b[i]) * 0x100000001b3ull;
}

static int on_guest(void *userdata, const struct pve_guest *g)
{
        struct seen *s = userdata;

        fuzz_check_cstr(g->node);
        fuzz_check_cstr(g->name);
        fuzz_check_cstr(g->status);
        fuzz_check_cstr(g->lock);
        fuzz_check_cstr(g->hastate);
        fuzz_check_cstr(g->pool);
        fuzz_check_cstr(g->tags);
        fuzz_check(g->vmid >= 100 && g->vmid <= 999999999, "vmid %u", (unsigned)g->vmid);
        fuzz_check(g->node[0] && g->status[0], "identity of a delivered guest");
        fuzz_check(g->type == GUEST_QEMU || g->type == GUEST_LXC, "type %d", (int)g->type);
        hash_bytes(&s->hash, g, sizeof(*g));
        if (++s->guests == s->stop_at)
                return -ECANCELED; /* the caller's error must abort the parse */
        return 0;
}

struct outcome {
        int r;
        struct seen seen;
        struct pve_decode_stats stats;
};

static void decode(struct pve_decoder *d, const char *buf, size_t len, size_t first,
                   size_t step, struct outcome *o)
{
        size_t off = 0;
        int r = 0;

        while (r == 0 && off < len) {
                size_t n = off == 0 ? first : step;

                if (n > len - off)
                        n = len - off;
                r = pve_decoder_feed(d, buf + off, n);
                off += n;
        }
        if (r == 0)
                r = pve_decoder_finish(d, &o->stats);
        o->r = r;
        fuzz_check(r == 0 || r == -EBADMSG || r == -ECANCELED, "result %d", r);
        fuzz_check(strlen(pve_decoder_error(d)) < 256, "error text");
        fuzz_check(r != -EBADMSG || pve_decoder_error(d)[0], "-EBADMSG without a message");
        fuzz_check_cstr(o->stats.first_reject);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *buf = (const char *)data;
        struct outcome pieces = { 0 }, whole = { 0 };
        struct pve_decoder *d = NULL;
        size_t first, step;
        uint64_t h = 0xcbf29ce484222325ull;

        /* Cuts derived from the data, so that a saved input replays the same. */
        hash_bytes(&h, data, size);
        first = size ? (size_t)(h % (size + 1)) : 0;
        step = 1 + (size_t)((h >> 32) % 97);

        /* One input in eight has the caller fail on one of its first guests. */
        pieces.seen = (struct seen){ 0, 0xcbf29ce484222325ull,
                                     (h >> 56) < 32 ? 1 + (unsigned)(h >> 56) % 4 : 0 };
        whole.seen = pieces.seen;
        if (pve_decoder_new(on_guest, &pieces.seen, &d) < 0)
                return 0;
        decode(d, buf, size, first ? first : 1, step, &pieces);

        /* The same decoder, reset: a retry reuses it with new userdata. */
        pve_decoder_free(d);
        d = NULL;
        if (pve_decoder_new(on_guest, &whole.seen, &d) < 0)
                return 0;
        (void)pve_decoder_feed(d, "{\"data\":[{\"type\":\"qemu\"", 23);
        fuzz_check(pve_decoder_reset(d) == 0, "reset");
        decode(d, buf, size, size, size, &whole);
        pve_decoder_free(d);

        fuzz_check(pieces.r == whole.r, "cut in pieces: %d, whole: %d", pieces.r, whole.r);
        fuzz_check(pieces.seen.guests == whole.seen.guests && pieces.seen.hash == whole.seen.hash,
                   "guests differ: %u vs %u", pieces.seen.guests, whole.seen.guests);
        fuzz_check(memcmp(&pieces.stats, &whole.stats, sizeof(whole.stats)) == 0,
                   "statistics differ");
        if (whole.r == 0)
                fuzz_check(whole.stats.guests == whole.seen.guests, "%u guests counted, %u delivered",
                           whole.stats.guests, whole.seen.guests);
        return 0;
}
