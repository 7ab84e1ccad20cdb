/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "preflight.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pve_api.h"
#include "util.h"

struct run {
        const struct config *c;
        struct pve *p;
        preflight_fn fn;
        void *userdata;
        struct preflight_summary sum;
        char user[256]; /* the token's user, for pveum lines */
};

static void report(struct run *run, const char *check, enum preflight_result result,
                   bool lasting, const char *fix, const char *fmt, ...)
        __attribute__((format(printf, 6, 7)));

static void report(struct run *run, const char *check, enum preflight_result result,
                   bool lasting, const char *fix, const char *fmt, ...)
{
        struct preflight_item it = { .check = check, .result = result, .lasting = lasting };
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(it.text, sizeof(it.text), fmt, ap);
        va_end(ap);
        snprintf(it.fix, sizeof(it.fix), "%s", fix ? fix : "");
        if (result == PREFLIGHT_FAIL) {
                if (!run->sum.failed)
                        snprintf(run->sum.first_failure, sizeof(run->sum.first_failure),
                                 "%s: %s", check, it.text);
                run->sum.failed++;
                run->sum.lasting += lasting;
        }
        run->fn(run->userdata, &it);
}

/* The URL as an admin wrote it (api_url ends in /api2/json). */
static void base_url(const struct config *c, char *buf, size_t size)
{
        const char *tail = strstr(c->api_url, "/api2/json");

        snprintf(buf, size, "%.*s", (int)(tail ? (size_t)(tail - c->api_url) : strlen(c->api_url)),
                 c->api_url);
}

/* "--users U --tokens 'U!T'" for the pveum lines of a fix. */
static void acl_who(const struct run *run, char *buf, size_t size)
{
        if (run->c->token_id)
                snprintf(buf, size, "--users %s --tokens '%s'", run->user, run->c->token_id);
        else
                snprintf(buf, size, "--users %s", run->c->user ? run->c->user : "USER");
}

static void api_refused(struct run *run)
{
        const struct config *c = run->c;
        char fix[1200];

        if (c->token_id)
                snprintf(fix, sizeof(fix),
                         "check 'api.token_id' ('%s') and its secret file: 'pveum user token list %s' lists the user's tokens; 'pveum user token add %s NAME --privsep 1' makes a new one and prints its secret once",
                         c->token_id, run->user, run->user);
        else
                snprintf(fix, sizeof(fix), "check 'api.user' and 'api.password_file'");
        report(run, "api", PREFLIGHT_FAIL, false, fix,
               "authentication failed: Proxmox VE refused the credential (%s)",
               pve_error(run->p));
}

static bool check_api(struct run *run)
{
        struct pve_version v;
        char url[512];
        int r = pve_get_version(run->p, &v);

        base_url(run->c, url, sizeof(url));
        if (r >= 0) {
                report(run, "api", PREFLIGHT_OK, false, NULL, "Proxmox VE %s answers at %s%s",
                       v.version, url,
                       run->c->insecure ? " (TLS NOT verified: api.insecure)" : "");
                return true;
        }
        if (r == -EACCES && pve_last_status(run->p) == 401)
                api_refused(run);
        else if (r == -EPROTO)
                report(run, "api", PREFLIGHT_FAIL, false,
                       "on a node, keep 'api.ca_file' at its default '/etc/pve/pve-root-ca.pem' (the unit hands the cluster CA over) or set 'api.pinned_pubkey'; 'api.insecure = true' only to test",
                       "TLS: the certificate of %s is not trusted: %s", url, pve_error(run->p));
        else if (pve_last_status(run->p) == 0)
                report(run, "api", PREFLIGHT_FAIL, false,
                       run->c->proxy
                               ? "check 'api.proxy': the proxy must be reachable and reach the API (or remove it to connect directly)"
                               : "is pveproxy running there ('systemctl status pveproxy')? On a node, 'api.url' is usually 'https://127.0.0.1:8006'",
                       "cannot reach %s%s: %s", url, run->c->proxy ? " through 'api.proxy'" : "",
                       pve_error(run->p));
        else
                report(run, "api", PREFLIGHT_FAIL, false, NULL, "%s", pve_error(run->p));
        return false;
}

static bool in_list(json_t *names, const char *node)
{
        size_t i;
        json_t *it;

        json_array_foreach(names, i, it)
                if (strcmp(json_string_value(it), node) == 0)
                        return true;
        return false;
}

static void join_names(json_t *names, char *buf, size_t size)
{
        size_t i, off = 0;
        json_t *it;

        buf[0] = '\0';
        json_array_foreach(names, i, it)
                if (off + 1 < size)
                        off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? ", " : "",
                                                json_string_value(it));
}

static void check_listed_nodes(struct run *run, json_t *names)
{
        const struct config *c = run->c;

        for (size_t i = 0; c->node_scope == NODE_SCOPE_LIST && i < c->nodes.n; i++)
                if (!in_list(names, c->nodes.v[i]))
                        report(run, "node", PREFLIGHT_WARN, false,
                               "remove it from 'observe.nodes', or check its spelling",
                               "'observe.nodes' names '%s', which is not a node of the cluster",
                               c->nodes.v[i]);
}

/* false: this host's node name is not a node of the cluster. */
static bool check_node(struct run *run)
{
        const struct config *c = run->c;
        char who[600], fix[900], all[400];
        json_t *names = NULL;
        bool known = true;
        int r;

        if (c->node_scope != NODE_SCOPE_LOCAL && c->mode != REAP_MODE_REAP) {
                report(run, "node", PREFLIGHT_NOTE, false, NULL,
                       "this host's node name is not used ('observe.nodes' is not \"local\")");
                return true;
        }
        r = pve_cluster_nodes(run->p, &names);
        if (r < 0) {
                report(run, "node", PREFLIGHT_FAIL, false, NULL, "cannot list the nodes: %s",
                       pve_error(run->p));
                return true;
        }
        acl_who(run, who, sizeof(who));
        join_names(names, all, sizeof(all));
        if (json_array_size(names) == 0) {
                snprintf(fix, sizeof(fix), "pveum acl modify /nodes %s --roles ProxreapTasks", who);
                report(run, "node", PREFLIGHT_WARN, false, fix,
                       "the token sees no node (it needs Sys.Audit on /nodes): node name '%s' not checked",
                       c->node_name);
        } else if (in_list(names, c->node_name))
                report(run, "node", PREFLIGHT_OK, false, NULL, "'%s' is a node of the cluster",
                       c->node_name);
        else {
                snprintf(fix, sizeof(fix),
                         "set 'observe.node_name' to this node's name as Proxmox VE knows it (one of: %s)",
                         all);
                report(run, "node", PREFLIGHT_FAIL, true, fix,
                       "this host's node name '%s' is not a node of the cluster (its nodes: %s)",
                       c->node_name, all);
                known = false;
        }
        check_listed_nodes(run, names);
        json_decref(names);
        return known;
}

struct guest_count {
        const struct config *c;
        unsigned all, here;
};

static int count_guest(void *userdata, const struct pve_guest *g)
{
        struct guest_count *n = userdata;

        n->all++;
        n->here += config_node_in_scope(n->c, g->node);
        return 0;
}

static void check_guests(struct run *run, const struct preflight_polled *polled)
{
        struct guest_count n = { .c = run->c };
        struct pve_decode_stats st;
        char who[600], fix[900];
        int r = 0;

        if (polled) {
                n.all = polled->guests;
                n.here = polled->in_scope;
        } else
                r = pve_get_resources(run->p, count_guest, &n, &st);
        if (r < 0) {
                report(run, "guests", PREFLIGHT_FAIL, false, NULL, "cannot list the guests: %s",
                       pve_error(run->p));
                return;
        }
        acl_who(run, who, sizeof(who));
        snprintf(fix, sizeof(fix),
                 "grant VM.Audit: 'pveum acl modify /vms %s --roles ProxreapGuests' (or on '/pool/NAME')",
                 who);
        if (n.all == 0)
                report(run, "guests", PREFLIGHT_WARN, false, fix,
                       "the token sees no guest (it needs VM.Audit on them)");
        else
                report(run, "guests", PREFLIGHT_OK, false, NULL,
                       "the token sees %u guest%s, %u in scope", n.all, n.all == 1 ? "" : "s",
                       n.here);
}

/* Proxmox's words for a storage that is not there (pve-storage
 * storage_config, storage_check_node): only these are the
 * configuration's fault; any other 500 (a cfs lock timeout) may pass. */
static bool storage_missing(const char *error)
{
        return strstr(error, "does not exist") || strstr(error, "is not available on node") ||
               strstr(error, "No such storage");
}

/* Proxmox answers 500 "storage 'x' does not exist" (or "is not available
 * on node"), 400 for a malformed id, 403 without Datastore.Audit. */
static void storage_failed(struct run *run)
{
        const struct config *c = run->c;
        long status = pve_last_status(run->p);
        char who[600], fix[900];

        acl_who(run, who, sizeof(who));
        if (status == 403) {
                snprintf(fix, sizeof(fix), "pveum acl modify /storage/%s %s --roles ProxreapStorage",
                         c->archive_storage, who);
                report(run, "storage", PREFLIGHT_FAIL, true, fix,
                       "the token may not read archive storage '%s' (Datastore.Audit): %s",
                       c->archive_storage, pve_error(run->p));
        } else if (status == 400 || (status == 500 && storage_missing(pve_error(run->p))))
                report(run, "storage", PREFLIGHT_FAIL, true,
                       "pick a storage with 'backup' content ('pvesm status --content backup' lists them) and set 'reap.archive_storage'",
                       "archive storage '%s' on '%s': %s", c->archive_storage, c->node_name,
                       pve_error(run->p));
        else
                report(run, "storage", PREFLIGHT_FAIL, false, NULL, "archive storage '%s' on '%s': %s",
                       c->archive_storage, c->node_name, pve_error(run->p));
}

static void check_storage(struct run *run, bool node_known)
{
        const struct config *c = run->c;
        struct pve_storage_status ss;
        char fix[600];

        if (c->mode != REAP_MODE_REAP)
                return;
        if (!node_known) {
                report(run, "storage", PREFLIGHT_NOTE, false, NULL,
                       "archive storage '%s' not checked: it is looked up on this host's node",
                       c->archive_storage);
                return;
        }
        if (pve_storage_status(run->p, c->node_name, c->archive_storage, &ss) < 0) {
                storage_failed(run);
                return;
        }
        if (!tags_contain(ss.content, "backup")) {
                snprintf(fix, sizeof(fix),
                         "add 'backup' to its content ('pvesm set %s --content %s,backup') or pick another 'reap.archive_storage'",
                         c->archive_storage, ss.content);
                report(run, "storage", PREFLIGHT_FAIL, true, fix,
                       "archive storage '%s' does not take backups (content '%s')",
                       c->archive_storage, ss.content);
        } else if (!ss.enabled) {
                snprintf(fix, sizeof(fix), "pvesm set %s --disable 0", c->archive_storage);
                report(run, "storage", PREFLIGHT_FAIL, true, fix,
                       "archive storage '%s' is disabled", c->archive_storage);
        } else if (!ss.active)
                report(run, "storage", PREFLIGHT_WARN, false,
                       "check that it is mounted or reachable from the node ('pvesm status')",
                       "archive storage '%s' is not active on '%s'", c->archive_storage,
                       c->node_name);
        else
                report(run, "storage", PREFLIGHT_OK, false, NULL,
                       "archive storage '%s' on '%s' takes backups, %" PRIu64 " GiB free",
                       c->archive_storage, c->node_name, ss.avail >> 30);
}

static void check_privileges(struct run *run)
{
        const struct config *c = run->c;

        if (c->mode == REAP_MODE_OBSERVE)
                return;
        report(run, "privileges", PREFLIGHT_NOTE, false,
               "see 'A least-privilege API token' in the README for the pveum lines",
               c->mode == REAP_MODE_MARK
                       ? "mode mark also needs VM.Config.Options on the guests (tags), which only acting would test"
                       : "mode reap also needs VM.PowerMgmt, VM.Snapshot, VM.Backup, VM.Allocate and VM.Config.Options on the guests and Datastore.AllocateSpace on the storages, which only acting would test");
}

unsigned preflight_run(const struct config *c, struct pve *p, const struct preflight_polled *polled,
                       preflight_fn fn, void *userdata, struct preflight_summary *ret)
{
        struct run run = { .c = c, .p = p, .fn = fn, .userdata = userdata };
        const char *id = c->token_id ? c->token_id : "";

        snprintf(run.user, sizeof(run.user), "%.*s", (int)strcspn(id, "!"), id);
        if (polled)
                report(&run, "api", PREFLIGHT_OK, false, NULL,
                       "the API answered the last poll and accepts the credential");
        run.sum.api_ok = polled || check_api(&run);
        if (run.sum.api_ok) {
                bool node_known = check_node(&run);

                check_guests(&run, polled);
                check_storage(&run, node_known);
                check_privileges(&run);
                run.sum.complete = true;
                /* A check that could not ask leaves it incomplete. */
                if (run.sum.failed > run.sum.lasting)
                        run.sum.complete = false;
        }
        if (ret)
                *ret = run.sum;
        return run.sum.failed;
}

const char *preflight_result_to_string(enum preflight_result r)
{
        static const char *const names[] = {
                [PREFLIGHT_OK] = "ok",
                [PREFLIGHT_NOTE] = "note",
                [PREFLIGHT_WARN] = "warning",
                [PREFLIGHT_FAIL] = "FAILED",
        };

        return (size_t)r < ELEMENTSOF(names) ? names[r] : "unknown";
}
