/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * notify: the optional webhook (notify.webhook_url). Each event becomes one
 * JSON POST, delivered by a thread of its own with its own libcurl handle,
 * so a slow, failing or unreachable webhook never delays the caller: a reap
 * step only queues. An attempt is bounded by notify.timeout; a failure
 * (no answer, 408, 429 or 5xx) is retried notify.retries times with
 * backoff; then the event is dropped with a warning. The queue is bounded:
 * when it is full the oldest event is dropped.
 *
 * The URL is never logged (webhook URLs often carry their token); messages
 * name the event and the op.
 */
#ifndef PROXREAP_NOTIFY_H
#define PROXREAP_NOTIFY_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"

#define NOTIFY_QUEUE_MAX 64

struct notifier;

struct notify_counters {
        uint64_t sent; /* delivered: a 2xx answer */
        uint64_t failed; /* given up after every attempt */
        uint64_t dropped; /* pushed out of a full queue, or left at shutdown */
};

/* Starts the delivery thread. *ret is NULL (and 0 returned) when no
 * webhook is configured. */
int notifier_new(const struct config *c, struct notifier **ret);

/* Waits up to flush_usec for queued events to be delivered, cancels what
 * is left (a transfer in progress stops within about a second), joins the
 * thread. Accepts NULL. */
struct notifier *notifier_free(struct notifier *n, uint64_t flush_usec);

/* Queues one event unless n is NULL or the event is not in
 * notify.events. fields (owned by the call, may be NULL) are the event's
 * details: op, vmid, node, name, type, state, reason, archive, ...; "event",
 * "time", "host" and a one-line "text" (shown as is by chat webhooks) are
 * added here. Never blocks on the network. */
void notifier_send(struct notifier *n, enum notify_event e, json_t *fields);

/* Safe to call while the thread runs. */
void notifier_counters(const struct notifier *n, struct notify_counters *ret);

/* The same webhook settings: a reload keeps the running notifier. */
bool notifier_same_config(const struct config *a, const struct config *b);

#endif
