/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "window.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* --- interned strings: node names, tags, pools... are shared by many
 * guests, so each distinct value is stored once with a reference count. --- */

struct istr {
        uint32_t refs;
        uint32_t hash;
        char s[];
};

struct intern {
        struct istr **slots;
        size_t cap; /* power of two */
        size_t n;
        size_t bytes;
};

static uint32_t hash_bytes(const char *s)
{
        uint32_t h = 2166136261u; /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * 16777619u;
        return h;
}

static struct istr *istr_of(const char *s)
{
        return (struct istr *)(void *)(s - offsetof(struct istr, s));
}

static int intern_grow(struct intern *in)
{
        size_t cap = in->cap ? in->cap * 2 : 64;
        struct istr **slots = calloc(cap, sizeof(*slots));

        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < in->cap; i++) {
                struct istr *e = in->slots[i];
                size_t j;

                if (!e)
                        continue;
                for (j = e->hash & (cap - 1); slots[j]; j = (j + 1) & (cap - 1))
                        ;
                slots[j] = e;
        }
        free(in->slots);
        in->slots = slots;
        in->cap = cap;
        return 0;
}

static const char *intern_get(struct intern *in, const char *s)
{
        uint32_t h = hash_bytes(s);
        size_t j, len;
        struct istr *e;

        if ((in->n + 1) * 10 > in->cap * 7 && intern_grow(in) < 0)
                return NULL;
        for (j = h & (in->cap - 1); in->slots[j]; j = (j + 1) & (in->cap - 1))
                if (in->slots[j]->hash == h && strcmp(in->slots[j]->s, s) == 0) {
                        in->slots[j]->refs++;
                        return in->slots[j]->s;
                }
        len = strlen(s);
        e = malloc(sizeof(*e) + len + 1);
        if (!e)
                return NULL;
        e->refs = 1;
        e->hash = h;
        memcpy(e->s, s, len + 1);
        in->slots[j] = e;
        in->n++;
        in->bytes += sizeof(*e) + len + 1;
        return e->s;
}

/* Linear probing deletion without tombstones: shift later members of the
 * probe run back into the hole. */
static void intern_remove_slot(struct intern *in, size_t hole)
{
        size_t mask = in->cap - 1;

        in->slots[hole] = NULL;
        for (size_t j = (hole + 1) & mask; in->slots[j]; j = (j + 1) & mask) {
                size_t home = in->slots[j]->hash & mask;

                /* Move j into the hole unless its home lies cyclically in (hole, j]. */
                if ((j > hole && (home <= hole || home > j)) ||
                    (j < hole && (home <= hole && home > j))) {
                        in->slots[hole] = in->slots[j];
                        in->slots[j] = NULL;
                        hole = j;
                }
        }
}

static void intern_put(struct intern *in, const char *s)
{
        struct istr *e;
        size_t j;

        if (!s)
                return;
        e = istr_of(s);
        if (--e->refs > 0)
                return;
        for (j = e->hash & (in->cap - 1); in->slots[j] != e; j = (j + 1) & (in->cap - 1))
                ;
        intern_remove_slot(in, j);
        in->n--;
        in->bytes -= sizeof(*e) + strlen(e->s) + 1;
        free(e);
}

/* Replaces *field with an interned copy of s unless it already holds it. */
static int intern_set(struct intern *in, const char **field, const char *s)
{
        const char *n;

        if (*field && strcmp(*field, s) == 0)
                return 0;
        n = intern_get(in, s);
        if (!n)
                return -ENOMEM;
        intern_put(in, *field);
        *field = n;
        return 0;
}

/* --- the table --- */

struct guest_table {
        unsigned expected; /* samples per full window */
        unsigned cap; /* ring slots: expected + 1, so a late poll never evicts a sample still inside */
        uint64_t window_usec;
        uint64_t stale_usec; /* see guest_table_set_stale_after() */
        uint64_t seq; /* polls begun; slot = seq % cap */
        uint64_t *poll_usec; /* time of each poll, by slot */
        uint64_t *poll_seq; /* which poll each slot holds now */
        uint8_t *poll_done; /* the slot's poll completed: its samples count */
        uint64_t generation; /* bumped whenever a slot's poll begins or completes */
        struct usable_slots *usable; /* window_stats()'s cache, see there */
        struct guest **guests; /* dense */
        size_t n, alloc;
        uint32_t *index; /* open addressing: 1 + position in guests, 0 = empty */
        size_t index_cap;
        size_t guest_bytes; /* bytes of one guest block */
        struct intern strings;
};

/* The ring slots whose samples window_stats() may count at one time: the
 * same for every guest, so it is worked out once per poll rather than once
 * per guest (with 10,000 guests that loop was 12% of a poll). Reached
 * through a pointer so that the const table can keep it. */
struct usable_slots {
        uint64_t generation, now_usec; /* the key; generation 0 = never computed */
        double cpu_threshold_percent;
        unsigned cpu_below; /* CPU values (1/100 %) below this are below the threshold */
        uint64_t words[];
};

/* Layout of a guest block: struct guest, presence bitmap, mem (u32 KiB),
 * then cpu (u16, 1/100 %), net and disk (u16 rate floats). */
static size_t bitmap_words(unsigned cap)
{
        return (cap + 63) / 64;
}

static uint64_t *g_bits(const struct guest *g)
{
        /* The arrays follow the struct in the same allocation. */
        return (uint64_t *)(void *)(g + 1);
}

static uint32_t *g_mem(const struct guest_table *t, const struct guest *g)
{
        return (uint32_t *)(void *)(g_bits(g) + bitmap_words(t->cap));
}

static uint16_t *g_cpu(const struct guest_table *t, const struct guest *g)
{
        return (uint16_t *)(void *)(g_mem(t, g) + t->cap);
}

static uint16_t *g_net(const struct guest_table *t, const struct guest *g)
{
        return g_cpu(t, g) + t->cap;
}

static uint16_t *g_disk(const struct guest_table *t, const struct guest *g)
{
        return g_net(t, g) + t->cap;
}

int guest_table_new(unsigned expected_samples, uint64_t window_usec, struct guest_table **ret)
{
        struct guest_table *t = calloc(1, sizeof(*t));

        if (!t)
                return -ENOMEM;
        t->expected = expected_samples ? expected_samples : 1;
        t->cap = t->expected + 1;
        t->window_usec = window_usec;
        t->poll_usec = calloc(t->cap, sizeof(uint64_t));
        t->poll_seq = calloc(t->cap, sizeof(uint64_t));
        t->poll_done = calloc(t->cap, sizeof(uint8_t));
        t->usable = calloc(1, sizeof(*t->usable) + bitmap_words(t->cap) * sizeof(uint64_t));
        t->generation = 1;
        t->guest_bytes = sizeof(struct guest) + bitmap_words(t->cap) * sizeof(uint64_t) +
                         t->cap * (sizeof(uint32_t) + 3 * sizeof(uint16_t));
        if (!t->poll_usec || !t->poll_seq || !t->poll_done || !t->usable) {
                free(t->poll_usec);
                free(t->poll_seq);
                free(t->poll_done);
                free(t->usable);
                free(t);
                return -ENOMEM;
        }
        *ret = t;
        return 0;
}

void guest_table_set_stale_after(struct guest_table *t, uint64_t stale_usec)
{
        t->stale_usec = stale_usec;
}

static void guest_release(struct guest_table *t, struct guest *g)
{
        const char **fields[] = { &g->node, &g->name,    &g->status, &g->lock,
                                  &g->hastate, &g->pool, &g->tags };

        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                intern_put(&t->strings, *fields[i]);
        free(g);
}

struct guest_table *guest_table_free(struct guest_table *t)
{
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n; i++)
                guest_release(t, t->guests[i]);
        for (size_t i = 0; i < t->strings.cap; i++)
                free(t->strings.slots[i]);
        free(t->strings.slots);
        free(t->guests);
        free(t->index);
        free(t->poll_usec);
        free(t->poll_seq);
        free(t->poll_done);
        free(t->usable);
        free(t);
        return NULL;
}

static size_t vmid_home(const struct guest_table *t, uint32_t vmid)
{
        return ((size_t)vmid * 2654435761u) & (t->index_cap - 1);
}

static size_t index_slot(const struct guest_table *t, uint32_t vmid)
{
        size_t j = vmid_home(t, vmid);

        while (t->index[j] && t->guests[t->index[j] - 1]->vmid != vmid)
                j = (j + 1) & (t->index_cap - 1);
        return j;
}

static int index_grow(struct guest_table *t)
{
        size_t cap = t->index_cap ? t->index_cap * 2 : 256;
        uint32_t *old = t->index;

        t->index = calloc(cap, sizeof(uint32_t));
        if (!t->index) {
                t->index = old;
                return -ENOMEM;
        }
        t->index_cap = cap;
        for (size_t i = 0; i < t->n; i++)
                t->index[index_slot(t, t->guests[i]->vmid)] = (uint32_t)i + 1;
        free(old);
        return 0;
}

struct guest *guest_table_find(const struct guest_table *t, uint32_t vmid)
{
        size_t j;

        if (t->index_cap == 0)
                return NULL;
        j = index_slot(t, vmid);
        return t->index[j] ? t->guests[t->index[j] - 1] : NULL;
}

static void index_remove(struct guest_table *t, uint32_t vmid)
{
        size_t mask = t->index_cap - 1, hole = index_slot(t, vmid);

        t->index[hole] = 0;
        for (size_t j = (hole + 1) & mask; t->index[j]; j = (j + 1) & mask) {
                size_t home = vmid_home(t, t->guests[t->index[j] - 1]->vmid);

                if ((j > hole && (home <= hole || home > j)) ||
                    (j < hole && (home <= hole && home > j))) {
                        t->index[hole] = t->index[j];
                        t->index[j] = 0;
                        hole = j;
                }
        }
}

static int guest_add(struct guest_table *t, uint32_t vmid, struct guest **ret)
{
        struct guest *g;

        if ((t->n + 1) * 10 > t->index_cap * 7 && index_grow(t) < 0)
                return -ENOMEM;
        if (t->n == t->alloc) {
                size_t alloc = t->alloc ? t->alloc * 2 : 64;
                struct guest **p = realloc(t->guests, alloc * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                t->guests = p;
                t->alloc = alloc;
        }
        g = calloc(1, t->guest_bytes);
        if (!g)
                return -ENOMEM;
        g->vmid = vmid;
        t->guests[t->n++] = g;
        t->index[index_slot(t, vmid)] = (uint32_t)t->n;
        *ret = g;
        return 0;
}

static void guest_remove_at(struct guest_table *t, size_t i)
{
        struct guest *g = t->guests[i];

        index_remove(t, g->vmid);
        t->guests[i] = t->guests[--t->n];
        if (i < t->n)
                t->index[index_slot(t, t->guests[i]->vmid)] = (uint32_t)i + 1;
        guest_release(t, g);
}

size_t guest_table_count(const struct guest_table *t)
{
        return t->n;
}

struct guest *guest_table_at(const struct guest_table *t, size_t i)
{
        return i < t->n ? t->guests[i] : NULL;
}

uint64_t guest_table_polls(const struct guest_table *t)
{
        return t->seq;
}

size_t guest_table_memory(const struct guest_table *t)
{
        return sizeof(*t) + (size_t)t->cap * (2 * sizeof(uint64_t) + 1) +
               sizeof(*t->usable) + bitmap_words(t->cap) * sizeof(uint64_t) + t->alloc * sizeof(struct guest *) +
               t->index_cap * sizeof(uint32_t) + t->n * t->guest_bytes + t->strings.bytes +
               t->strings.cap * sizeof(struct istr *);
}

/* --- samples --- */

uint16_t rate_encode(uint64_t v)
{
        unsigned e = 0;

        /* 5-bit exponent, 11-bit mantissa with an implicit leading one;
         * exponent 0 holds 0..2047 exactly. Rounds to nearest. */
        if (v < 2048)
                return (uint16_t)v;
        while ((v >> e) >= 4096)
                e++;
        if (e > 0) {
                uint64_t half = UINT64_C(1) << (e - 1);

                v = v > UINT64_MAX - half ? UINT64_MAX : v + half;
                while ((v >> e) >= 4096)
                        e++;
        }
        if (e + 1 > 30) /* saturate just below RATE_UNKNOWN */
                return (uint16_t)((30u << 11) | 0x7ff);
        return (uint16_t)(((e + 1) << 11) | ((v >> e) & 0x7ff));
}

uint64_t rate_decode(uint16_t c)
{
        unsigned e = c >> 11;

        if (e == 0)
                return c;
        return (UINT64_C(2048) + (c & 0x7ff)) << (e - 1);
}

static void clear_window(const struct guest_table *t, struct guest *g)
{
        memset(g_bits(g), 0, bitmap_words(t->cap) * sizeof(uint64_t));
        g->flags &= (uint8_t)~GUEST_HAS_COUNTERS;
}

void guest_table_begin_poll(struct guest_table *t, uint64_t now_usec)
{
        t->seq++;
        t->poll_usec[t->seq % t->cap] = now_usec;
        t->poll_seq[t->seq % t->cap] = t->seq;
        t->poll_done[t->seq % t->cap] = 0;
        t->generation++;
}

static int update_strings(struct guest_table *t, struct guest *g, const struct pve_guest *p)
{
        struct intern *in = &t->strings;

        if (intern_set(in, &g->node, p->node) < 0 || intern_set(in, &g->name, p->name) < 0 ||
            intern_set(in, &g->status, p->status) < 0 || intern_set(in, &g->lock, p->lock) < 0 ||
            intern_set(in, &g->hastate, p->hastate) < 0 ||
            intern_set(in, &g->pool, p->pool) < 0 || intern_set(in, &g->tags, p->tags) < 0)
                return -ENOMEM;
        return 0;
}

static uint16_t counter_rate(uint64_t now_total, uint64_t old_total, uint64_t dt_usec)
{
        if (now_total < old_total || dt_usec == 0)
                return RATE_UNKNOWN; /* reset (restart) or no time passed */
        return rate_encode((uint64_t)((double)(now_total - old_total) * 1e6 / (double)dt_usec));
}

static void record_rates(const struct guest_table *t, struct guest *g, const struct pve_guest *p,
                         size_t slot, bool restarted)
{
        uint64_t now = t->poll_usec[slot], net = p->netin + p->netout;
        uint64_t disk = p->diskread + p->diskwrite;
        bool have = (p->present & (PVE_HAS_NET | PVE_HAS_DISKIO)) == (PVE_HAS_NET | PVE_HAS_DISKIO);

        g_net(t, g)[slot] = g_disk(t, g)[slot] = RATE_UNKNOWN;
        if (have && !restarted && (g->flags & GUEST_HAS_COUNTERS)) {
                g_net(t, g)[slot] = counter_rate(net, g->net_total, now - g->counter_usec);
                g_disk(t, g)[slot] = counter_rate(disk, g->disk_total, now - g->counter_usec);
        }
        if (have) {
                g->net_total = net;
                g->disk_total = disk;
                g->counter_usec = now;
                g->flags |= GUEST_HAS_COUNTERS;
        } else
                g->flags &= (uint8_t)~GUEST_HAS_COUNTERS;
}

/* The entry moved since the last poll: a running guest's uptime advances
 * with every update of pvestatd (about every 10 s), its counters with any
 * traffic. Proxmox keeps serving the last entry of a node that stopped
 * updating (for up to 5 minutes), uptime and counters included: such
 * samples are copies of one old one, and count as missing. */
static bool frozen(const struct guest_table *t, struct guest *g, const struct pve_guest *p,
                   uint64_t now, bool restarted)
{
        bool counters = (p->present & (PVE_HAS_NET | PVE_HAS_DISKIO)) ==
                        (PVE_HAS_NET | PVE_HAS_DISKIO);
        bool moved = g->advance_usec == 0 || restarted || p->uptime != g->uptime_s ||
                     (counters && (g->flags & GUEST_HAS_COUNTERS) &&
                      (p->netin + p->netout != g->net_total ||
                       p->diskread + p->diskwrite != g->disk_total));

        if (moved || p->uptime == 0) {
                /* Thawed: its window held copies of one sample; a whole
                 * window of live ones is needed again. */
                if (g->flags & GUEST_FROZEN)
                        clear_window(t, g);
                g->advance_usec = now;
                g->flags &= (uint8_t)~GUEST_FROZEN;
                return false;
        }
        if (t->stale_usec && now - g->advance_usec > t->stale_usec) {
                /* The copies taken since it last moved count as missing. */
                uint64_t *bits = g_bits(g);

                for (size_t s = 0; !(g->flags & GUEST_FROZEN) && s < t->cap; s++)
                        if (t->poll_usec[s] > g->advance_usec)
                                bits[s / 64] &= ~(UINT64_C(1) << (s % 64));
                g->flags |= GUEST_FROZEN;
        } else
                g->flags &= (uint8_t)~GUEST_FROZEN; /* stale_after raised by a reload */
        return g->flags & GUEST_FROZEN;
}

static void record_sample(struct guest_table *t, struct guest *g, const struct pve_guest *p)
{
        size_t slot = t->seq % t->cap;
        uint64_t *bits = g_bits(g);
        /* Delivered again in the same poll (a GET retried after part of the
         * answer had arrived): the first delivery's rates stand; measuring
         * against its counters would span no time at all. */
        bool again = g->last_seq == t->seq && (bits[slot / 64] & (UINT64_C(1) << (slot % 64)));
        bool stats = (p->present & (PVE_HAS_CPU | PVE_HAS_MEM | PVE_HAS_UPTIME)) ==
                     (PVE_HAS_CPU | PVE_HAS_MEM | PVE_HAS_UPTIME) &&
                     strcmp(p->status, "unknown") != 0;
        bool restarted = (p->present & PVE_HAS_UPTIME) && p->uptime < g->uptime_s;
        double cpu = p->cpu * 10000.0;

        bits[slot / 64] &= ~(UINT64_C(1) << (slot % 64));
        if (!stats) {
                g->flags &= (uint8_t)~(GUEST_HAS_DATA | GUEST_FROZEN);
                g->advance_usec = 0;
                return;
        }
        if (!again && frozen(t, g, p, t->poll_usec[slot], restarted))
                return;
        g_cpu(t, g)[slot] = cpu >= 65535.0 ? 65535 : (uint16_t)lround(cpu);
        g_mem(t, g)[slot] = p->mem / 1024 >= UINT32_MAX ? UINT32_MAX : (uint32_t)(p->mem / 1024);
        if (!again)
                record_rates(t, g, p, slot, restarted);
        bits[slot / 64] |= UINT64_C(1) << (slot % 64);
        g->uptime_s = p->uptime > UINT32_MAX ? UINT32_MAX : (uint32_t)p->uptime;
        g->flags |= GUEST_HAS_DATA;
}

/* Polls the guest missed leave their slots marked absent. */
static void clear_missed_slots(const struct guest_table *t, struct guest *g)
{
        uint64_t *bits = g_bits(g);

        if (g->last_seq == 0 || t->seq - g->last_seq > t->cap) {
                clear_window(t, g);
                return;
        }
        for (uint64_t s = g->last_seq + 1; s < t->seq; s++)
                bits[(s % t->cap) / 64] &= ~(UINT64_C(1) << ((s % t->cap) % 64));
}

int guest_table_update(struct guest_table *t, const struct pve_guest *p, struct guest **ret)
{
        struct guest *g = guest_table_find(t, p->vmid);
        int r;

        if (!g) {
                r = guest_add(t, p->vmid, &g);
                if (r < 0)
                        return r;
                g->type = (uint8_t)p->type;
        }
        clear_missed_slots(t, g);
        /* A guest that moved node or changed type (vmid reused) starts a
         * fresh window: numbers from before do not describe it any more. */
        if (g->type != (uint8_t)p->type || (g->node && strcmp(g->node, p->node) != 0)) {
                clear_window(t, g);
                g->type = (uint8_t)p->type;
                g->uptime_s = 0;
        }
        r = update_strings(t, g, p);
        if (r < 0)
                return r;
        g->flags = (uint8_t)((g->flags & ~GUEST_TEMPLATE) | (p->template ? GUEST_TEMPLATE : 0));
        g->maxcpu = (float)p->maxcpu;
        g->maxmem = p->maxmem;
        record_sample(t, g, p);
        if (!(p->present & PVE_HAS_UPTIME))
                g->uptime_s = 0;
        g->last_seq = t->seq;
        if (ret)
                *ret = g;
        return 0;
}

void guest_table_end_poll(struct guest_table *t,
                          void (*removed)(void *userdata, const struct guest *g), void *userdata)
{
        t->poll_done[t->seq % t->cap] = 1;
        t->generation++;
        for (size_t i = t->n; i-- > 0;) {
                struct guest *g = t->guests[i];

                if (g->last_seq == t->seq)
                        continue;
                if (removed)
                        removed(userdata, g);
                guest_remove_at(t, i);
        }
}

/* The smallest CPU value c (1/100 %) with c / 100.0 not below the
 * threshold: comparing integers gives exactly what comparing the percents
 * would. */
static unsigned cpu_below_limit(double threshold_percent)
{
        unsigned c;

        if (!(threshold_percent > 0.0))
                return 0;
        if (threshold_percent * 100.0 > 65536.0)
                return 65536;
        c = (unsigned)(threshold_percent * 100.0);
        while (c > 0 && !((c - 1) / 100.0 < threshold_percent))
                c--;
        while (c <= 65535 && c / 100.0 < threshold_percent)
                c++;
        return c;
}

static const struct usable_slots *usable_slots(const struct guest_table *t, uint64_t now_usec,
                                               double cpu_threshold_percent)
{
        struct usable_slots *u = t->usable;

        if (u->generation == t->generation && u->now_usec == now_usec &&
            u->cpu_threshold_percent == cpu_threshold_percent)
                return u;
        memset(u->words, 0, bitmap_words(t->cap) * sizeof(uint64_t));
        /* Only completed polls count: guests delivered before an answer
         * turned out bad (cut off, malformed) are not samples. */
        for (unsigned slot = 0; slot < t->cap; slot++) {
                uint64_t when = t->poll_usec[slot];

                if (t->poll_done[slot] && when <= now_usec && now_usec - when < t->window_usec)
                        u->words[slot / 64] |= UINT64_C(1) << (slot % 64);
        }
        u->cpu_below = cpu_below_limit(cpu_threshold_percent);
        u->cpu_threshold_percent = cpu_threshold_percent;
        u->now_usec = now_usec;
        u->generation = t->generation;
        return u;
}

void window_stats(const struct guest_table *t, const struct guest *cg, uint64_t now_usec,
                  double cpu_threshold_percent, struct window_stats *ret)
{
        const struct guest *g = cg;
        const uint64_t *bits = g_bits(g);
        const uint32_t *mem_kib = g_mem(t, g);
        const uint16_t *cpu_c = g_cpu(t, g), *net_c = g_net(t, g), *disk_c = g_disk(t, g);
        const struct usable_slots *u = usable_slots(t, now_usec, cpu_threshold_percent);
        /* Integer sums (exact), turned into means once: this runs for every
         * guest after every poll. */
        uint64_t cpu = 0, mem = 0, net = 0, disk = 0, newest = 0;
        unsigned n = 0, below = 0, rates = 0;

        memset(ret, 0, sizeof(*ret));
        for (size_t w = 0; w < bitmap_words(t->cap); w++)
                for (uint64_t m = bits[w] & u->words[w]; m; m &= m - 1) {
                        unsigned slot = (unsigned)(w * 64 + (unsigned)__builtin_ctzll(m));
                        uint64_t when = t->poll_usec[slot];
                        uint16_t c;

                        /* A slot reused by a poll after the guest's last
                         * update still carries the bit of the poll it held
                         * before: that sample is older than the slot's
                         * time says. */
                        if (t->poll_seq[slot] > g->last_seq)
                                continue;
                        n++;
                        newest = when > newest ? when : newest;
                        c = cpu_c[slot];
                        cpu += c;
                        below += c < u->cpu_below;
                        mem += mem_kib[slot];
                        if (net_c[slot] != RATE_UNKNOWN && disk_c[slot] != RATE_UNKNOWN) {
                                rates++;
                                net += rate_decode(net_c[slot]);
                                disk += rate_decode(disk_c[slot]);
                        }
                }
        ret->expected = t->expected;
        ret->samples = n;
        ret->coverage = n >= t->expected ? 1.0 : (double)n / t->expected;
        ret->newest_age_usec = n ? now_usec - newest : UINT64_MAX;
        if (n) {
                ret->cpu_mean_percent = (double)cpu / 100.0 / n;
                ret->mem_mean_mb = (double)mem / 1024.0 / n;
                ret->cpu_below_share = (double)below / n;
        }
        ret->rate_samples = rates;
        if (rates) {
                ret->net_mean_kbps = (double)net * 8.0 / 1000.0 / rates;
                ret->disk_mean_kbps = (double)disk * 8.0 / 1000.0 / rates;
        }
}
