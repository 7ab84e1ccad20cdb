/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "notify.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "util.h"

#define NOTIFY_MAX_BODY ((size_t)64 * 1024) /* of the webhook's answer: only its status matters */
#define NOTIFY_BACKOFF_FIRST_USEC USEC_PER_SEC
#define NOTIFY_BACKOFF_MAX_USEC (30 * USEC_PER_SEC)

struct item {
        char *body;
        char label[96]; /* "reap event of R-000001" */
};

struct notifier {
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond; /* queue or busy changed, stop asked */
        struct item queue[NOTIFY_QUEUE_MAX];
        size_t head, n; /* ring */
        bool busy; /* the thread holds an item */
        bool stopping;
        atomic_bool cancel;
        struct notify_counters counters;

        struct http *http; /* the thread's alone */
        struct http_options opt;
        char *url;
        unsigned events, retries;
        char host[64];
};

/* --- the thread --- */

static void monotonic_deadline(uint64_t usec_from_now, struct timespec *ret)
{
        uint64_t t = now_monotonic_usec() + usec_from_now;

        ret->tv_sec = (time_t)(t / USEC_PER_SEC);
        ret->tv_nsec = (long)(t % USEC_PER_SEC) * 1000;
}

/* Sleeps between attempts; false when cancelled meanwhile. */
static bool pause_unless_cancelled(struct notifier *n, uint64_t usec)
{
        struct timespec until;

        monotonic_deadline(usec, &until);
        pthread_mutex_lock(&n->lock);
        while (!atomic_load(&n->cancel) &&
               pthread_cond_timedwait(&n->cond, &n->lock, &until) != ETIMEDOUT)
                ;
        pthread_mutex_unlock(&n->lock);
        return !atomic_load(&n->cancel);
}

/* Worth another attempt: no answer, or the server asks for one. */
static bool retryable(int r, long status)
{
        if (r < 0)
                return r != -ECANCELED && r != -ENOMEM;
        return status == 408 || status == 429 || status >= 500;
}

static bool deliver(struct notifier *n, const struct item *it)
{
        static const char *const headers[] = { "Content-Type: application/json", NULL };
        const struct http_request req = { .method = "POST", .url = n->url, .headers = headers,
                                          .body = it->body };
        struct http_response resp = { 0 };
        char why[600] = "";
        unsigned attempt;
        bool ok;
        int r;

        for (attempt = 1;; attempt++) {
                r = http_request(n->http, &req, &resp);
                ok = r == 0 && resp.status >= 200 && resp.status < 300;
                if (ok)
                        break;
                if (r < 0)
                        snprintf(why, sizeof(why), "%s",
                                 http_last_error(n->http)[0] ? http_last_error(n->http)
                                                             : strerror(-r));
                else
                        snprintf(why, sizeof(why), "HTTP %ld %s", resp.status, resp.reason);
                if (attempt > n->retries || !retryable(r, resp.status) ||
                    !pause_unless_cancelled(n, http_backoff_usec(&n->opt, attempt,
                                                                 (uint32_t)now_monotonic_usec())))
                        break;
        }
        http_response_clear(&resp);
        if (!ok)
                log_warning("webhook: %s not delivered after %u attempt%s: %s, dropping it",
                            it->label, attempt, attempt == 1 ? "" : "s", why);
        return ok;
}

static void *run(void *userdata)
{
        struct notifier *n = userdata;

        pthread_mutex_lock(&n->lock);
        for (;;) {
                struct item it;
                bool ok;

                while (n->n == 0 && !n->stopping)
                        pthread_cond_wait(&n->cond, &n->lock);
                if (n->n == 0 || atomic_load(&n->cancel))
                        break;
                it = n->queue[n->head];
                n->head = (n->head + 1) % NOTIFY_QUEUE_MAX;
                n->n--;
                n->busy = true;
                pthread_mutex_unlock(&n->lock);

                ok = deliver(n, &it);
                free(it.body);

                pthread_mutex_lock(&n->lock);
                n->busy = false;
                if (ok)
                        n->counters.sent++;
                else
                        n->counters.failed++;
                pthread_cond_broadcast(&n->cond);
        }
        pthread_mutex_unlock(&n->lock);
        return NULL;
}

/* --- lifecycle --- */

static int notifier_alloc(const struct config *c, struct notifier **ret)
{
        struct notifier *n = calloc(1, sizeof(*n));

        if (!n)
                return -ENOMEM;
        atomic_init(&n->cancel, false);
        n->url = strdup(c->webhook_url);
        n->events = c->notify_events;
        n->retries = c->notify_retries;
        if (gethostname(n->host, sizeof(n->host) - 1) < 0)
                snprintf(n->host, sizeof(n->host), "unknown");
        n->opt = (struct http_options){
                .ca_file = c->notify_ca_file,
                .proxy = c->notify_proxy,
                .connect_timeout_usec = c->notify_timeout_usec,
                .timeout_usec = c->notify_timeout_usec,
                .max_body = NOTIFY_MAX_BODY,
                .backoff_base_usec = NOTIFY_BACKOFF_FIRST_USEC,
                .backoff_max_usec = NOTIFY_BACKOFF_MAX_USEC,
                .cancel = &n->cancel,
        };
        *ret = n;
        if (!n->url || http_new(&n->opt, &n->http) < 0)
                return -ENOMEM;
        /* http keeps its own copies; c may go away */
        n->opt.ca_file = n->opt.proxy = NULL;
        return 0;
}

static int start_thread(struct notifier *n)
{
        pthread_condattr_t ca;
        sigset_t all, old;
        int e;

        if ((e = pthread_mutex_init(&n->lock, NULL)) != 0)
                return -e;
        if ((e = pthread_condattr_init(&ca)) != 0)
                return -e;
        e = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        if (e == 0)
                e = pthread_cond_init(&n->cond, &ca);
        pthread_condattr_destroy(&ca);
        if (e != 0)
                return -e;
        /* Signals belong to the main thread's signalfd: the new thread
         * starts with all of them blocked, or a SIGTERM could land on it
         * and kill the process with the default action. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        e = pthread_create(&n->thread, NULL, run, n);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e != 0)
                return -e;
        n->thread_started = true;
        return 0;
}

int notifier_new(const struct config *c, struct notifier **ret)
{
        struct notifier *n = NULL;
        int r;

        *ret = NULL;
        if (!c->webhook_url)
                return 0;
        r = notifier_alloc(c, &n);
        if (r >= 0)
                r = start_thread(n);
        if (r < 0) {
                notifier_free(n, 0);
                return r;
        }
        *ret = n;
        return 0;
}

struct notifier *notifier_free(struct notifier *n, uint64_t flush_usec)
{
        struct timespec until;
        size_t left;

        if (!n)
                return NULL;
        if (n->thread_started) {
                monotonic_deadline(flush_usec, &until);
                pthread_mutex_lock(&n->lock);
                n->stopping = true;
                pthread_cond_broadcast(&n->cond);
                while ((n->n > 0 || n->busy) &&
                       pthread_cond_timedwait(&n->cond, &n->lock, &until) != ETIMEDOUT)
                        ;
                atomic_store(&n->cancel, true);
                pthread_cond_broadcast(&n->cond);
                pthread_mutex_unlock(&n->lock);
                pthread_join(n->thread, NULL);
                pthread_mutex_destroy(&n->lock);
                pthread_cond_destroy(&n->cond);
        }
        left = n->n;
        n->counters.dropped += left;
        for (; n->n > 0; n->n--, n->head = (n->head + 1) % NOTIFY_QUEUE_MAX)
                free(n->queue[n->head].body);
        if (left > 0)
                log_warning("webhook: %zu event%s not delivered before stopping", left,
                            left == 1 ? "" : "s");
        http_free(n->http);
        free(n->url);
        free(n);
        return NULL;
}

/* --- events --- */

static void label_of(enum notify_event e, json_t *fields, char *buf, size_t size)
{
        const char *op = json_string_value(json_object_get(fields, "op"));
        json_int_t vmid = json_integer_value(json_object_get(fields, "vmid"));

        if (op)
                snprintf(buf, size, "%s event of %s", notify_event_to_string(e), op);
        else
                snprintf(buf, size, "%s event of guest %lld", notify_event_to_string(e),
                         (long long)vmid);
}

static char *event_body(const struct notifier *n, enum notify_event e, json_t *fields)
{
        char when[32];

        format_utc(now_epoch(), when, sizeof(when));
        if (json_object_set_new(fields, "event", json_string(notify_event_to_string(e))) < 0 ||
            json_object_set_new(fields, "time", json_string(when)) < 0 ||
            json_object_set_new(fields, "host", json_string(n->host)) < 0)
                return NULL;
        return json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS);
}

static void enqueue(struct notifier *n, char *body, const char *label)
{
        struct item *slot;

        pthread_mutex_lock(&n->lock);
        if (n->n == NOTIFY_QUEUE_MAX) {
                /* The oldest goes: the newest says most about now. */
                log_warning("webhook: queue full, dropping %s", n->queue[n->head].label);
                free(n->queue[n->head].body);
                n->head = (n->head + 1) % NOTIFY_QUEUE_MAX;
                n->n--;
                n->counters.dropped++;
        }
        slot = &n->queue[(n->head + n->n) % NOTIFY_QUEUE_MAX];
        slot->body = body;
        snprintf(slot->label, sizeof(slot->label), "%s", label);
        n->n++;
        pthread_cond_broadcast(&n->cond);
        pthread_mutex_unlock(&n->lock);
}

void notifier_send(struct notifier *n, enum notify_event e, json_t *fields)
{
        char label[96], *body;

        if (!n || !(n->events & (unsigned)e)) {
                json_decref(fields);
                return;
        }
        if (!fields)
                fields = json_object();
        label_of(e, fields, label, sizeof(label));
        body = fields ? event_body(n, e, fields) : NULL;
        json_decref(fields);
        if (!body) {
                log_warning("webhook: out of memory, %s not sent", label);
                return;
        }
        enqueue(n, body, label);
}

void notifier_counters(const struct notifier *n, struct notify_counters *ret)
{
        struct notifier *m = (struct notifier *)n; /* the lock, not the data, changes */

        pthread_mutex_lock(&m->lock);
        *ret = n->counters;
        pthread_mutex_unlock(&m->lock);
}

static bool str_eq(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool notifier_same_config(const struct config *a, const struct config *b)
{
        return str_eq(a->webhook_url, b->webhook_url) && str_eq(a->notify_ca_file, b->notify_ca_file) &&
               str_eq(a->notify_proxy, b->notify_proxy) &&
               a->notify_events == b->notify_events && a->notify_retries == b->notify_retries &&
               a->notify_timeout_usec == b->notify_timeout_usec;
}
