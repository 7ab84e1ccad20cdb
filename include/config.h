/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * config: load and validate /etc/proxreap/proxreap.conf (libconfig syntax).
 *
 * Every problem is reported as "FILE:LINE: message"; all problems of a file
 * are collected before failing once. Unknown keys are errors. Secrets (API
 * token secret, password) are read here from their files, kept in memory
 * excluded from core dumps, and wiped by config_free().
 */
#ifndef PROXREAP_CONFIG_H
#define PROXREAP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH "/etc/proxreap/proxreap.conf"
/* The token secret when neither api.token_secret_file nor
 * $CREDENTIALS_DIRECTORY names one: the file LoadCredential= reads, so the
 * CLI run by root finds the same secret as the service. */
#define CONFIG_DEFAULT_TOKEN_PATH "/etc/proxreap/token"
#define CONFIG_MAX_WINDOW_SAMPLES 4096
/* The opt-out tag: always in select.exclude_tags, whatever the file says. */
#define CONFIG_KEEP_TAG "proxreap-keep"

/* reap.history_statistic: over the RRD's row averages. */
#define HISTORY_MAX 0
#define HISTORY_MEAN (-1)
/* reap.history when unset, in mark and reap mode */
#define CONFIG_HISTORY_DEFAULT (UINT64_C(8) * 86400 * 1000000)
/* idle.net_kbps and idle.disk_kbps when unset, in mark and reap mode */
#define CONFIG_REAP_NET_KBPS 20.0
#define CONFIG_REAP_DISK_KBPS 1000.0

enum reap_mode {
        REAP_MODE_OBSERVE,
        REAP_MODE_MARK,
        REAP_MODE_REAP,
};

/* notify.events */
enum notify_event {
        NOTIFY_MARK = 1u << 0,
        NOTIFY_REAP = 1u << 1,
        NOTIFY_ABORT = 1u << 2,
        NOTIFY_RESTORE = 1u << 3,
        NOTIFY_ALL = (1u << 4) - 1,
};

enum node_scope {
        NODE_SCOPE_LOCAL, /* this host's node only */
        NODE_SCOPE_ALL,
        NODE_SCOPE_LIST,
};

struct strv {
        char **v;
        size_t n;
};

struct vmid_range {
        uint32_t first, last;
};

struct config {
        char *path;

        /* api */
        char *api_url; /* base, with /api2/json appended */
        char *token_id; /* USER@REALM!TOKENID, or NULL for ticket auth */
        /* Token auth: "Authorization: PVEAPIToken=ID=SECRET", the one copy
         * of the secret, in memory kept out of core dumps; token_secret
         * points into it. Never logged. */
        char *auth_header;
        char *token_secret;
        char *user; /* ticket auth */
        char *password; /* never logged */
        char *ca_file; /* NULL: the system trust store */
        char *pinned_pubkey; /* "sha256//..." or NULL */
        char *proxy; /* NULL: no proxy (the environment's are ignored) */
        bool insecure;
        uint64_t timeout_usec;
        uint64_t connect_timeout_usec;
        unsigned retries;
        size_t max_response_bytes;

        /* observe */
        uint64_t interval_usec;
        uint64_t stale_after_usec; /* observe.stale_after: frozen data counts as missing */
        uint64_t window_usec;
        double min_coverage; /* 0 < x <= 1 */
        enum node_scope node_scope;
        struct strv nodes; /* NODE_SCOPE_LIST */
        char *node_name; /* this host's node (NODE_SCOPE_LOCAL) */
        bool observe_qemu, observe_lxc;

        /* idle; optional rules are disabled when < 0 */
        double cpu_percent;
        double mem_mb;
        double net_kbps;
        double disk_kbps;
        double cpu_share;

        /* select */
        struct strv exclude_tags;
        struct strv exclude_pools;
        struct strv include_tags; /* non-empty: opt-in mode */
        struct vmid_range *exclude_vmids;
        size_t n_exclude_vmids;
        bool allow_ha;

        /* reap */
        enum reap_mode mode;
        uint64_t grace_usec; /* 0: act on the first idle window */
        unsigned max_per_cycle;
        unsigned max_per_hour;
        double breaker_jump; /* points the idle share may rise within an hour */
        double breaker_broken; /* share of running guests with broken-looking data */
        uint64_t cooldown_usec; /* after a restore */
        uint64_t retry_after_usec; /* after a failed attempt */
        uint64_t history_usec; /* 0: no rrddata veto */
        int history_statistic; /* HISTORY_MAX, HISTORY_MEAN or a percentile (1..99) */
        char *archive_storage; /* required in reap mode */
        char *compress; /* vzdump compress: "zstd", "gzip", "lzo" or "0" */
        uint64_t shutdown_timeout_usec;
        bool force_stop;
        bool snapshot;
        bool discard_snapshots; /* reap guests with snapshots of their own (they are lost) */
        uint64_t task_timeout_usec; /* a snapshot, archive or start task running longer is stopped (a destroy never is) */
        char *journal_file;

        /* status */
        char *status_file;
        char *prometheus_file; /* NULL: no textfile */

        /* notify */
        char *webhook_url; /* NULL: no webhook; never logged (it may hold a token) */
        unsigned notify_events; /* enum notify_event bits */
        uint64_t notify_timeout_usec; /* per attempt */
        unsigned notify_retries;
        char *notify_ca_file; /* NULL: the system trust store */
        char *notify_proxy; /* NULL: no proxy */
};

/* Loads and validates path. On failure returns -EINVAL (or -ENOMEM) and, when
 * ret_errors is given, stores a malloc'd text with one "FILE:LINE: message"
 * line per problem; the caller owns and frees it. */
int config_load(const char *path, struct config **ret, char **ret_errors);

/* For a caller that will not talk to the API (proxreap status, journal):
 * secrets and CA files are neither read nor checked, and token_secret and
 * password stay NULL. */
#define CONFIG_OFFLINE (1u << 0)
int config_load_flags(const char *path, unsigned flags, struct config **ret, char **ret_errors);
struct config *config_free(struct config *c);

/* Samples one full window holds at the configured interval. */
unsigned config_window_samples(const struct config *c);
bool config_vmid_excluded(const struct config *c, uint32_t vmid, const struct vmid_range **ret_range);
bool config_node_in_scope(const struct config *c, const char *node);
const char *reap_mode_to_string(enum reap_mode m);
/* Warns (log_warning) of a plain http API or webhook and of api.insecure:
 * at every start of the daemon and every CLI command that talks to them. */
void config_warn_transport(const struct config *c);
const char *notify_event_to_string(enum notify_event e);

/* The idle rules of mark and reap mode: idle.net_kbps and idle.disk_kbps
 * at their defaults there where unset. The loader applies it in those
 * modes; `plan --history` to judge an observe-mode file as reap mode. */
void config_reap_rules(struct config *c);

#endif
