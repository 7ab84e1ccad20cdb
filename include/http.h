/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * http: the only user of libcurl. One reused handle (keep-alive), connect
 * and total timeouts, TLS verified by default (CA file, optional pinned
 * public key), a response size cap enforced while the body streams in, and
 * retries with capped exponential backoff and jitter for GETs only (a write
 * is never sent twice by this layer: the caller decides).
 */
#ifndef PROXREAP_HTTP_H
#define PROXREAP_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http;

struct http_options {
        const char *ca_file; /* NULL: system trust store */
        const char *pinned_pubkey; /* NULL or "sha256//..." */
        /* NULL: no proxy at all: http_proxy, HTTPS_PROXY and ALL_PROXY in
         * the environment are ignored (they would see the credential of
         * an http:// API); else the proxy URL to use */
        const char *proxy;
        bool insecure; /* skip certificate verification */
        uint64_t connect_timeout_usec;
        uint64_t timeout_usec; /* whole request */
        size_t max_body; /* larger bodies fail with -EFBIG */
        unsigned retries; /* extra attempts for GETs */
        uint64_t backoff_base_usec; /* first pause; doubles, capped at backoff_max_usec */
        uint64_t backoff_max_usec;
        /* Set from another thread: the transfer in progress stops within
         * about a second with -ECANCELED. NULL: never. */
        const atomic_bool *cancel;
};

/* Receives a 2xx body as it streams in. begin() is called before each
 * attempt (so a retried GET starts from a clean state); data() may return a
 * negative errno to abort the transfer, which http_request() then returns. */
struct http_sink {
        int (*begin)(void *userdata);
        int (*data)(void *userdata, const char *buf, size_t len);
        void *userdata;
};

struct http_request {
        const char *method; /* "GET", "POST", "PUT", "DELETE" */
        const char *url;
        const char *const *headers; /* NULL-terminated "Name: value" lines, or NULL */
        const char *body; /* form-encoded, POST/PUT only */
        const struct http_sink *sink; /* NULL: 2xx bodies are buffered in body */
};

struct http_response {
        long status; /* HTTP status code */
        char reason[512]; /* reason phrase: Proxmox puts its error message here */
        char *body; /* NUL-terminated; non-2xx always, 2xx unless a sink was given */
        size_t body_len;
        unsigned attempts;
};

int http_new(const struct http_options *o, struct http **ret);
struct http *http_free(struct http *h);
/* Extra attempts for GETs from now on (o->retries at http_new()). */
void http_set_retries(struct http *h, unsigned retries);

/* Performs the request. Returns 0 when a response arrived (whatever its
 * status), a negative errno on transport failure: -ECONNREFUSED, -ETIMEDOUT,
 * -EFBIG (body over the cap), -EPROTO (TLS), -ECONNRESET (connection lost),
 * -ECANCELED (options.cancel was set),
 * -EIO (other). The curl message of the last failure is in
 * http_last_error(). The caller owns ret->body (http_response_clear()). */
int http_request(struct http *h, const struct http_request *req, struct http_response *ret);
void http_response_clear(struct http_response *r);
const char *http_last_error(const struct http *h);

/* Exposed for tests: the pause before retry number attempt (1-based). */
uint64_t http_backoff_usec(const struct http_options *o, unsigned attempt, uint32_t random);

#endif
