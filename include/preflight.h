/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * preflight: can proxreap work with this configuration against this
 * Proxmox VE? The checks proxreapd runs before it uses a configuration (at
 * start, and on every reload before it switches to the new one), and that
 * `proxreap check-config --online` prints:
 *
 *   api       the URL answers, TLS verifies, the credential is accepted
 *   node      this host's node name (observe.node_name) is a cluster node
 *   guests    the token sees guests (VM.Audit)
 *   storage   reap mode: the archive storage exists on the node, takes
 *             backups and may be read (Datastore.Audit)
 *   privileges what the mode needs that cannot be tested without acting
 *
 * Each check reports what it found and, when it fails, how to fix it (the
 * key to set, the pveum line to run). A failure is "lasting" when the
 * configuration itself is wrong (no such node, no such storage): retrying
 * cannot fix it. The API being down or refusing the credential is not.
 */
#ifndef PROXREAP_PREFLIGHT_H
#define PROXREAP_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "pve.h"

enum preflight_result {
        PREFLIGHT_OK,
        PREFLIGHT_NOTE, /* nothing to test, or not testable: information */
        PREFLIGHT_WARN,
        PREFLIGHT_FAIL,
};

struct preflight_item {
        const char *check; /* "api", "node", "guests", "storage", "privileges" */
        enum preflight_result result;
        bool lasting; /* a failure of the configuration itself */
        char text[600];
        char fix[1200]; /* "" when nothing is to be done */
};

typedef void (*preflight_fn)(void *userdata, const struct preflight_item *item);

struct preflight_summary {
        unsigned failed; /* FAIL results */
        unsigned lasting; /* of them, lasting */
        bool api_ok; /* the API answered and accepted the credential */
        bool complete; /* every check could run (the API answered) */
        char first_failure[640]; /* "check: text" of the first FAIL, "" if none */
};

/* What a poll that just succeeded already tells (the daemon's case): the
 * API answers and accepts the credential, and these guests are visible;
 * the checks then ask nothing more of it in observe mode. */
struct preflight_polled {
        unsigned guests, in_scope;
};

/* Runs the checks with p, the client of c, handing each result to fn.
 * polled: NULL, or what the last successful poll showed. Returns the
 * number of failures. */
unsigned preflight_run(const struct config *c, struct pve *p, const struct preflight_polled *polled,
                       preflight_fn fn, void *userdata, struct preflight_summary *ret);

const char *preflight_result_to_string(enum preflight_result r);

#endif
