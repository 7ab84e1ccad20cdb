/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "policy.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* A sample is stale when the newest one is older than this many intervals:
 * one missed poll is tolerated, an outage is not. */
#define STALE_INTERVALS 2

static struct reason *add_reason(struct verdict *v, enum reason_code code)
{
        struct reason *r;

        if (v->n_reasons >= VERDICT_MAX_REASONS)
                return &v->reasons[VERDICT_MAX_REASONS - 1];
        r = &v->reasons[v->n_reasons++];
        memset(r, 0, sizeof(*r));
        r->code = code;
        return r;
}

static bool set(const char *s)
{
        return s && *s;
}

struct tag_match {
        const struct strv *list;
        const char *hit;
};

static int tag_in_list(const char *tag, size_t len, void *userdata)
{
        struct tag_match *m = userdata;

        /* Proxmox compares tags without regard to case (datacenter.cfg
         * tag-style case-sensitive=0, the default). */
        for (size_t i = 0; i < m->list->n; i++)
                if (strlen(m->list->v[i]) == len && strncasecmp(m->list->v[i], tag, len) == 0) {
                        m->hit = m->list->v[i];
                        return 1;
                }
        return 0;
}

/* The first tag of the guest that is in list, or NULL. Returns a string
 * owned by the config. */
static const char *tags_match(const char *tags, const struct strv *list)
{
        struct tag_match m = { .list = list };

        tags_foreach(tags, tag_in_list, &m);
        return m.hit;
}

static void exclude_scope(const struct config *c, const struct guest_facts *f, struct verdict *v)
{
        const struct vmid_range *range;

        if ((f->type == GUEST_QEMU && !c->observe_qemu) || (f->type == GUEST_LXC && !c->observe_lxc))
                add_reason(v, REASON_TYPE_SCOPE)->text = guest_type_to_string(f->type);
        if (!config_node_in_scope(c, f->node ? f->node : ""))
                add_reason(v, REASON_NODE_SCOPE)->text = f->node;
        if (config_vmid_excluded(c, f->vmid, &range)) {
                struct reason *r = add_reason(v, REASON_VMID_RANGE);

                r->a = range->first;
                r->b = range->last;
        }
}

/* What the configuration says: an archive would not hold all of it. */
static void exclude_conf(const struct config *c, const struct conf_facts *cf, struct verdict *v)
{
        struct reason *r;

        if (!cf)
                return;
        if (cf->protection)
                add_reason(v, REASON_PROTECTED);
        if (cf->unkept[0])
                add_reason(v, REASON_UNKEPT)->text = cf->unkept;
        if (cf->snapshots && !c->discard_snapshots) {
                r = add_reason(v, REASON_SNAPSHOTS);
                r->a = cf->snapshots;
                r->text = cf->snapshot_names;
        }
        if (cf->pending)
                add_reason(v, REASON_PENDING);
}

static void exclude_rules(const struct config *c, const struct guest_facts *f, struct verdict *v)
{
        const char *hit;

        /* "unknown" is a lack of data, not a stopped guest. */
        if (!f->template && set(f->status) && strcmp(f->status, "running") != 0 &&
            strcmp(f->status, "unknown") != 0)
                add_reason(v, REASON_NOT_RUNNING)->text = f->status;
        if (f->template)
                add_reason(v, REASON_TEMPLATE);
        if (set(f->lock))
                add_reason(v, REASON_LOCKED)->text = f->lock;
        if (set(f->hastate) && !c->allow_ha)
                add_reason(v, REASON_HA)->text = f->hastate;
        hit = tags_match(f->tags, &c->exclude_tags);
        if (hit)
                add_reason(v, REASON_TAG)->text = hit;
        if (c->include_tags.n > 0 && !tags_match(f->tags, &c->include_tags))
                add_reason(v, REASON_NOT_INCLUDED);
        for (size_t i = 0; set(f->pool) && i < c->exclude_pools.n; i++)
                if (strcmp(f->pool, c->exclude_pools.v[i]) == 0)
                        add_reason(v, REASON_POOL)->text = c->exclude_pools.v[i];
        exclude_scope(c, f, v);
        exclude_conf(c, f->conf, v);
}

static void check_data(const struct config *c, const struct guest_facts *f,
                       const struct window_stats *s, struct verdict *v)
{
        struct reason *r;

        if (f->frozen) {
                r = add_reason(v, REASON_FROZEN);
                r->limit = (double)c->stale_after_usec / 1e6;
                r->text = f->node;
        } else if (!f->has_data)
                add_reason(v, REASON_NO_DATA)->text = f->status;
        else if (s->newest_age_usec != UINT64_MAX &&
                 s->newest_age_usec >= STALE_INTERVALS * c->interval_usec) {
                r = add_reason(v, REASON_STALE);
                r->value = (double)s->newest_age_usec / 1e6;
        }
        if (f->conf && f->conf->unread[0])
                add_reason(v, REASON_CONF_UNREAD)->text = f->conf->unread;
        /* Compared in microseconds: a 1.5 s window needs 2 s of uptime. */
        if (f->uptime_s * USEC_PER_SEC < c->window_usec || f->uptime_s == 0) {
                r = add_reason(v, REASON_UPTIME);
                r->value = (double)f->uptime_s;
                r->limit = (double)c->window_usec / 1e6;
        }
        if (s->coverage < c->min_coverage) {
                r = add_reason(v, REASON_COVERAGE);
                r->value = s->coverage * 100.0;
                r->limit = c->min_coverage * 100.0;
                r->a = s->samples;
                r->b = s->expected;
        }
        if ((c->net_kbps >= 0 || c->disk_kbps >= 0) &&
            (double)s->rate_samples < c->min_coverage * (double)s->samples) {
                r = add_reason(v, REASON_NO_RATES);
                r->a = s->rate_samples;
                r->b = s->samples;
        }
}

static void rule(struct verdict *v, enum reason_code code, double value, double limit)
{
        struct reason *r = add_reason(v, code);

        r->value = value;
        r->limit = limit;
        /* Idle means strictly below the threshold. */
        r->pass = value < limit;
}

static void share_rule(struct verdict *v, double share, double limit)
{
        struct reason *r = add_reason(v, REASON_CPU_SHARE);

        r->value = share;
        r->limit = limit;
        r->pass = share >= limit;
}

static void idle_rules(const struct config *c, const struct window_stats *s, struct verdict *v)
{
        rule(v, REASON_CPU, s->cpu_mean_percent, c->cpu_percent);
        rule(v, REASON_MEM, s->mem_mean_mb, c->mem_mb);
        if (c->cpu_share >= 0)
                share_rule(v, s->cpu_below_share, c->cpu_share);
        if (c->net_kbps >= 0)
                rule(v, REASON_NET, s->net_mean_kbps, c->net_kbps);
        if (c->disk_kbps >= 0)
                rule(v, REASON_DISK, s->disk_mean_kbps, c->disk_kbps);
}

/* Idle when every rule holds; an active verdict keeps only the rules that
 * failed: those are the reasons. */
static void judge_rules(struct verdict *v)
{
        unsigned n = 0;

        for (unsigned i = 0; i < v->n_reasons; i++)
                if (!v->reasons[i].pass)
                        v->reasons[n++] = v->reasons[i];
        v->kind = n ? VERDICT_ACTIVE : VERDICT_IDLE;
        if (n)
                v->n_reasons = n;
}

/* The exclusion rules: true (and ret excluded) when one applies. */
static bool excluded(const struct config *c, const struct guest_facts *f, struct verdict *ret)
{
        memset(ret, 0, sizeof(*ret));
        exclude_rules(c, f, ret);
        if (ret->n_reasons == 0)
                return false;
        ret->kind = VERDICT_EXCLUDED;
        return true;
}

void policy_decide(const struct config *c, const struct guest_facts *f,
                   const struct window_stats *s, struct verdict *ret)
{
        if (excluded(c, f, ret))
                return;
        check_data(c, f, s, ret);
        if (ret->n_reasons > 0) {
                ret->kind = VERDICT_INSUFFICIENT;
                return;
        }
        idle_rules(c, s, ret);
        judge_rules(ret);
}

void policy_recheck(const struct config *c, const struct guest_facts *f,
                    const struct live_numbers *live, struct verdict *ret)
{
        if (excluded(c, f, ret))
                return;
        ret->kind = VERDICT_IDLE;
        if (!live)
                return;
        /* The window's thresholds on the numbers of this moment: a guest
         * busy right now is not reaped, whatever its window said. */
        rule(ret, REASON_CPU_NOW, live->cpu_percent, c->cpu_percent);
        rule(ret, REASON_MEM_NOW, live->mem_mb, c->mem_mb);
        judge_rules(ret);
}

void guest_facts_from(const struct guest *g, struct guest_facts *ret)
{
        *ret = (struct guest_facts){
                .vmid = g->vmid,
                .type = (enum guest_type)g->type,
                .node = g->node,
                .status = g->status,
                .lock = g->lock,
                .hastate = g->hastate,
                .pool = g->pool,
                .tags = g->tags,
                .template = g->flags & GUEST_TEMPLATE,
                .has_data = g->flags & GUEST_HAS_DATA,
                .frozen = g->flags & GUEST_FROZEN,
                .uptime_s = g->uptime_s,
        };
}

const char *verdict_to_string(enum verdict_kind k)
{
        static const char *const names[] = {
                [VERDICT_NONE] = "none",
                [VERDICT_INSUFFICIENT] = "insufficient-data",
                [VERDICT_EXCLUDED] = "excluded",
                [VERDICT_ACTIVE] = "active",
                [VERDICT_IDLE] = "idle",
        };

        return k < _VERDICT_MAX ? names[k] : "unknown";
}

const char *reason_code_to_string(enum reason_code c)
{
        static const char *const names[] = {
                [REASON_NOT_RUNNING] = "not-running", [REASON_TEMPLATE] = "template",
                [REASON_LOCKED] = "locked",           [REASON_HA] = "ha-managed",
                [REASON_TAG] = "tag",                 [REASON_NOT_INCLUDED] = "not-included",
                [REASON_POOL] = "pool",               [REASON_VMID_RANGE] = "vmid-range",
                [REASON_NODE_SCOPE] = "node-scope",   [REASON_TYPE_SCOPE] = "type-scope",
                [REASON_NO_DATA] = "no-data",         [REASON_STALE] = "stale", [REASON_FROZEN] = "frozen",
                [REASON_CONF_UNREAD] = "conf-unread",
                [REASON_UPTIME] = "uptime",           [REASON_COVERAGE] = "coverage",
                [REASON_NO_RATES] = "no-rates",       [REASON_CPU] = "cpu",
                [REASON_MEM] = "mem",                 [REASON_CPU_SHARE] = "cpu-share",
                [REASON_NET] = "net",                 [REASON_DISK] = "disk",
                [REASON_PROTECTED] = "protected",     [REASON_UNKEPT] = "unkept",
                [REASON_SNAPSHOTS] = "snapshots",     [REASON_PENDING] = "pending",
                [REASON_CPU_NOW] = "cpu-now",         [REASON_MEM_NOW] = "mem-now",
        };

        return (size_t)c < ELEMENTSOF(names) && names[c] ? names[c] : "unknown";
}

/* v as printf's "%.2f" (g false) or "%g" (g true) would write it, into
 * buf. The common cases go without printf, since rules are formatted for
 * every guest after every poll: a non-negative value below 10^9 (where
 * v * 100 is exact enough) and a whole limit below 10^6 (which "%g"
 * writes as an integer). Exact binary halves (x.125) may round up where
 * printf rounds to even. */
static size_t format_number(double v, bool g, char *buf, size_t size)
{
        char tmp[32];
        size_t i = sizeof(tmp);
        uint64_t x;
        int n;

        if (!(v >= 0 && v < 1e9) || (g && (v != floor(v) || v >= 1e6))) {
                n = snprintf(buf, size, g ? "%g" : "%.2f", v);
                return n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
        }
        x = g ? (uint64_t)v : (uint64_t)(v * 100.0 + 0.5);
        if (!g) {
                tmp[--i] = (char)('0' + x % 10);
                tmp[--i] = (char)('0' + x / 10 % 10);
                tmp[--i] = '.';
                x /= 100;
        }
        do {
                tmp[--i] = (char)('0' + x % 10);
                x /= 10;
        } while (x);
        n = (int)(sizeof(tmp) - i);
        if ((size_t)n >= size)
                n = size ? (int)size - 1 : 0;
        memcpy(buf, tmp + i, (size_t)n);
        if (size)
                buf[n] = '\0';
        return (size_t)n;
}

/* s after the off bytes of buf, cut to fit as snprintf() would cut it;
 * buf stays terminated. Returns the new length. */
static size_t append(char *buf, size_t size, size_t off, const char *s)
{
        size_t len = strlen(s);

        if (off + 1 >= size)
                return off;
        if (len > size - off - 1)
                len = size - off - 1;
        memcpy(buf + off, s, len);
        buf[off + len] = '\0';
        return off + len;
}

/* prefix, text, suffix: the reasons that quote a value, without printf
 * (they are formatted for every guest after every poll). */
static void format_quoted(const char *prefix, const char *text, const char *suffix, char *buf,
                          size_t size)
{
        if (size)
                buf[0] = '\0';
        append(buf, size, append(buf, size, append(buf, size, 0, prefix), text), suffix);
}

static void format_rule(const struct reason *r, const char *what, const char *unit, char *buf,
                        size_t size)
{
        const char *parts[] = { "mean ", what, " ", NULL, unit, r->pass ? " < " : " >= ", NULL,
                                unit };
        size_t off = 0;

        if (size)
                buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(parts) && off + 1 < size; i++) {
                if (parts[i])
                        off = append(buf, size, off, parts[i]);
                else
                        off += format_number(i == 3 ? r->value : r->limit, i != 3, buf + off,
                                             size - off);
        }
}

void reason_format(const struct reason *r, char *buf, size_t size)
{
        const char *t = r->text ? r->text : "";

        switch (r->code) {
        case REASON_NOT_RUNNING:
                format_quoted("not running (status '", t, "')", buf, size);
                break;
        case REASON_TEMPLATE:
                format_quoted("template", "", "", buf, size);
                break;
        case REASON_LOCKED:
                format_quoted("locked ('", t, "')", buf, size);
                break;
        case REASON_HA:
                format_quoted("HA-managed (state '", t, "'; set select.allow_ha to include)", buf,
                              size);
                break;
        case REASON_TAG:
                format_quoted("opt-out tag '", t, "'", buf, size);
                break;
        case REASON_NOT_INCLUDED:
                format_quoted("no tag of select.include_tags", "", "", buf, size);
                break;
        case REASON_POOL:
                format_quoted("excluded pool '", t, "'", buf, size);
                break;
        case REASON_VMID_RANGE:
                if (r->a == r->b)
                        snprintf(buf, size, "excluded vmid %u", (unsigned)r->a);
                else
                        snprintf(buf, size, "vmid in excluded range %u-%u", (unsigned)r->a,
                                 (unsigned)r->b);
                break;
        case REASON_NODE_SCOPE:
                format_quoted("not in scope (node '", t, "')", buf, size);
                break;
        case REASON_TYPE_SCOPE:
                format_quoted("not in scope (type ", t, ")", buf, size);
                break;
        case REASON_PROTECTED:
                format_quoted("protected (protection=1)", "", "", buf, size);
                break;
        case REASON_UNKEPT:
                format_quoted("", t, "", buf, size);
                break;
        case REASON_SNAPSHOTS:
                snprintf(buf, size,
                         "%u snapshot%s of its own (%s), which no archive keeps (reap.discard_snapshots)",
                         (unsigned)r->a, r->a == 1 ? "" : "s", t);
                break;
        case REASON_PENDING:
                format_quoted("pending configuration changes, which no archive keeps", "", "", buf,
                              size);
                break;
        case REASON_NO_DATA:
                format_quoted("no data in the last poll (status '", t, "')", buf, size);
                break;
        case REASON_STALE:
                snprintf(buf, size, "stale data: newest sample %.1fs old", r->value);
                break;
        case REASON_CONF_UNREAD:
                format_quoted("its configuration cannot be read (", t, ")", buf, size);
                break;
        case REASON_FROZEN: {
                char pre[160];

                snprintf(pre, sizeof(pre),
                         "frozen data: uptime and counters unchanged for over %gs (observe.stale_after): is pvestatd running on node '",
                         r->limit);
                format_quoted(pre, t, "'?", buf, size);
                break;
        }
        case REASON_UPTIME:
                snprintf(buf, size, "uptime %.0fs shorter than the %gs window", r->value, r->limit);
                break;
        case REASON_COVERAGE:
                snprintf(buf, size, "window coverage %.0f%% < %g%% (%u of %u samples)", r->value,
                         r->limit, (unsigned)r->a, (unsigned)r->b);
                break;
        case REASON_NO_RATES:
                snprintf(buf, size, "network/disk rates for only %u of %u samples",
                         (unsigned)r->a, (unsigned)r->b);
                break;
        case REASON_CPU:
                format_rule(r, "cpu", "%", buf, size);
                break;
        case REASON_MEM:
                format_rule(r, "mem", " MiB", buf, size);
                break;
        case REASON_NET:
                format_rule(r, "net", " kbit/s", buf, size);
                break;
        case REASON_DISK:
                format_rule(r, "disk", " kbit/s", buf, size);
                break;
        case REASON_CPU_NOW:
                snprintf(buf, size, "cpu now %.2f%% %s %g%%", r->value, r->pass ? "<" : ">=",
                         r->limit);
                break;
        case REASON_MEM_NOW:
                snprintf(buf, size, "mem now %.0f MiB %s %g MiB", r->value, r->pass ? "<" : ">=",
                         r->limit);
                break;
        case REASON_CPU_SHARE:
                snprintf(buf, size, "cpu below threshold in %.1f%% of samples %s %g%%",
                         r->value * 100.0, r->pass ? ">=" : "<", r->limit * 100.0);
                break;
        }
}

void verdict_format(const struct verdict *v, char *buf, size_t size)
{
        size_t off = 0;

        if (size == 0)
                return;
        buf[0] = '\0';
        for (unsigned i = 0; i < v->n_reasons && off + 1 < size; i++) {
                if (i > 0)
                        off += (size_t)snprintf(buf + off, size - off, ", ");
                if (off + 1 >= size)
                        break;
                reason_format(&v->reasons[i], buf + off, size - off);
                off += strlen(buf + off);
        }
}
