/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

struct http {
        CURL *curl;
        struct http_options opt;
        char *ca_file;
        char *pinned_pubkey;
        char *proxy;
        char errbuf[CURL_ERROR_SIZE];
        char last_error[CURL_ERROR_SIZE + 64];
        uint32_t rng;
};

/* State of one attempt, shared by the header and write callbacks. */
struct transfer {
        struct http *h;
        const struct http_sink *sink;
        struct http_response *resp;
        size_t cap;
        size_t received;
        size_t alloc;
        int sink_error;
        bool too_big;
        bool status_known;
};

static int curl_ready;

static int global_init(void)
{
        if (curl_ready)
                return 0;
        /* libcurl would write the TLS session keys of the connection that
         * carries the credential to the file this names (and, run by root,
         * through any link there): nobody configured that here. */
        (void)unsetenv("SSLKEYLOGFILE");
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        curl_ready = 1;
        return 0;
}

void http_set_retries(struct http *h, unsigned retries)
{
        h->opt.retries = retries;
}

int http_new(const struct http_options *o, struct http **ret)
{
        struct http *h;

        if (global_init() < 0)
                return -EIO;
        h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->opt = *o;
        h->ca_file = strdup_or_null(o->ca_file);
        h->pinned_pubkey = strdup_or_null(o->pinned_pubkey);
        h->proxy = strdup_or_null(o->proxy);
        h->curl = curl_easy_init();
        if (!h->curl || (o->ca_file && !h->ca_file) || (o->pinned_pubkey && !h->pinned_pubkey) ||
            (o->proxy && !h->proxy)) {
                http_free(h);
                return -ENOMEM;
        }
        h->opt.ca_file = h->ca_file;
        h->opt.pinned_pubkey = h->pinned_pubkey;
        h->opt.proxy = h->proxy;
        h->rng = (uint32_t)(now_monotonic_usec() ^ ((uint64_t)getpid() << 16)) | 1;
        *ret = h;
        return 0;
}

struct http *http_free(struct http *h)
{
        if (!h)
                return NULL;
        if (h->curl)
                curl_easy_cleanup(h->curl);
        free(h->ca_file);
        free(h->proxy);
        free(h->pinned_pubkey);
        free(h);
        return NULL;
}

const char *http_last_error(const struct http *h)
{
        return h->last_error;
}

void http_response_clear(struct http_response *r)
{
        free(r->body);
        memset(r, 0, sizeof(*r));
}

static uint32_t xorshift32(uint32_t *s)
{
        uint32_t x = *s;

        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return *s = x;
}

uint64_t http_backoff_usec(const struct http_options *o, unsigned attempt, uint32_t random)
{
        uint64_t d = o->backoff_base_usec;

        for (unsigned i = 1; i < attempt && d > 0 && d < o->backoff_max_usec; i++)
                d = d > o->backoff_max_usec / 2 ? o->backoff_max_usec : d * 2;
        if (d > o->backoff_max_usec)
                d = o->backoff_max_usec;
        /* "Equal jitter": at least half the pause, so retries stay spaced,
         * plus a random half so many daemons do not retry in step. */
        return d / 2 + (d / 2 > 0 ? random % (d / 2 + 1) : 0);
}

/* Status line of every response: "HTTP/1.1 400 Parameter verification failed." */
static void parse_status_line(struct transfer *t, const char *line, size_t n)
{
        const char *p = memchr(line, ' ', n), *end = line + n;
        size_t len;

        if (!p)
                return;
        p++;
        while (p < end && *p >= '0' && *p <= '9')
                p++;
        if (p < end && *p == ' ')
                p++;
        while (end > p && (end[-1] == '\r' || end[-1] == '\n'))
                end--;
        len = (size_t)(end - p);
        if (len >= sizeof(t->resp->reason))
                len = sizeof(t->resp->reason) - 1;
        memcpy(t->resp->reason, p, len);
        t->resp->reason[len] = '\0';
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
        struct transfer *t = userdata;
        size_t n = size * nitems;

        if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0)
                parse_status_line(t, buf, n);
        return n;
}

static int buffer_append(struct transfer *t, const char *buf, size_t n)
{
        struct http_response *r = t->resp;

        if (r->body_len + n + 1 > t->alloc) {
                size_t want = t->alloc ? t->alloc : 4096;
                char *p;

                while (want < r->body_len + n + 1)
                        want *= 2;
                p = realloc(r->body, want);
                if (!p)
                        return -ENOMEM;
                r->body = p;
                t->alloc = want;
        }
        memcpy(r->body + r->body_len, buf, n);
        r->body_len += n;
        r->body[r->body_len] = '\0';
        return 0;
}

static size_t write_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
        struct transfer *t = userdata;
        size_t n = size * nitems;
        long status = 0;
        int r;

        /* The cap is checked before anything is kept, so an oversized or
         * endless body costs at most cap bytes. */
        if (n > t->cap - t->received) {
                t->too_big = true;
                return 0;
        }
        t->received += n;
        curl_easy_getinfo(t->h->curl, CURLINFO_RESPONSE_CODE, &status);
        if (t->sink && status >= 200 && status < 300)
                r = t->sink->data(t->sink->userdata, buf, n);
        else
                r = buffer_append(t, buf, n);
        if (r < 0) {
                t->sink_error = r;
                return 0;
        }
        return n;
}

static int progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
        const struct http *h = userdata;

        (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
        return atomic_load(h->opt.cancel) ? 1 : 0;
}

static int set_cancel(struct http *h)
{
        CURL *c = h->curl;

        if (!h->opt.cancel)
                return 0;
        if (curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_XFERINFODATA, h) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK)
                return -EIO;
        return 0;
}

static int set_tls(struct http *h)
{
        CURL *c = h->curl;
        long verify = h->opt.insecure ? 0L : 1L;

        if (curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, verify) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L) != CURLE_OK)
                return -EIO;
        /* A CA file is the whole trust: libcurl's built-in CA directory
         * (Debian's: /etc/ssl/certs) would add every public CA to it. */
        if (h->opt.ca_file && (curl_easy_setopt(c, CURLOPT_CAINFO, h->opt.ca_file) != CURLE_OK ||
                               curl_easy_setopt(c, CURLOPT_CAPATH, NULL) != CURLE_OK))
                return -EIO;
        if (h->opt.pinned_pubkey &&
            curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, h->opt.pinned_pubkey) != CURLE_OK)
                return -EIO;
        return 0;
}

static int set_method(CURL *c, const struct http_request *req)
{
        bool get = strcmp(req->method, "GET") == 0;
        CURLcode e;

        /* libcurl silently resends a request whose reused connection closed
         * before any answer: for a write that may already have been
         * executed, so writes always get a connection of their own. */
        if (curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, get ? 0L : 1L) != CURLE_OK)
                return -EIO;
        if (get || strcmp(req->method, "DELETE") == 0) {
                e = curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
                if (e == CURLE_OK)
                        e = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, get ? NULL : "DELETE");
        } else {
                const char *body = req->body ? req->body : "";

                /* The caller's body, not a copy on libcurl's heap: a login
                 * form holds the password. It outlives the request. */
                e = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
                if (e == CURLE_OK)
                        e = curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                if (e == CURLE_OK)
                        e = curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST,
                                             strcmp(req->method, "POST") == 0 ? NULL : req->method);
        }
        return e == CURLE_OK ? 0 : -EIO;
}

static int setup(struct http *h, const struct http_request *req, struct curl_slist *headers,
                 struct transfer *t)
{
        CURL *c = h->curl;
        CURLcode e = CURLE_OK;

#define SET(opt, val)                                         \
        do {                                                  \
                if (e == CURLE_OK)                            \
                        e = curl_easy_setopt(c, opt, val);    \
        } while (0)
        SET(CURLOPT_URL, req->url);
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_PROTOCOLS_STR, "http,https");
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        SET(CURLOPT_ERRORBUFFER, h->errbuf);
        SET(CURLOPT_CONNECTTIMEOUT_MS, (long)(h->opt.connect_timeout_usec / 1000));
        SET(CURLOPT_TIMEOUT_MS, (long)(h->opt.timeout_usec / 1000));
        SET(CURLOPT_TCP_KEEPALIVE, 1L);
        SET(CURLOPT_HTTPHEADER, headers);
        SET(CURLOPT_HEADERFUNCTION, header_cb);
        SET(CURLOPT_HEADERDATA, t);
        SET(CURLOPT_WRITEFUNCTION, write_cb);
        SET(CURLOPT_WRITEDATA, t);
        SET(CURLOPT_USERAGENT, "proxreap/" PROXREAP_VERSION);
        /* "" turns off the proxies libcurl would take from the environment,
         * and no host is exempt from a configured one ($no_proxy). */
        SET(CURLOPT_PROXY, h->opt.proxy ? h->opt.proxy : "");
        SET(CURLOPT_NOPROXY, "");
#undef SET
        if (e != CURLE_OK || set_tls(h) < 0 || set_cancel(h) < 0)
                return -EIO;
        return set_method(c, req);
}

static int map_curl_error(CURLcode e, const struct transfer *t)
{
        if (t->too_big)
                return -EFBIG;
        if (t->sink_error)
                return t->sink_error;
        switch (e) {
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_CERTPROBLEM:
                return -EPROTO;
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        default:
                return -EIO;
        }
}

/* libcurl's messages may quote a URL, the proxy's with its password:
 * every user and password before an "@" after "scheme:" + "//" becomes
 * three stars. */
static void redact_userinfo(const char *in, char *out, size_t size)
{
        size_t o = 0;

        while (*in && o + 1 < size) {
                const char *end = strncmp(in, "://", 3) == 0 ? in + 3 + strcspn(in + 3, "@/'\" \t")
                                                              : NULL;

                if (end && *end == '@' && end > in + 3) {
                        o += (size_t)snprintf(out + o, size - o, "://***");
                        in = end;
                } else
                        out[o++] = *in++;
        }
        out[o < size ? o : size - 1] = '\0';
}

static void note_error(struct http *h, CURLcode e, const struct transfer *t)
{
        if (t->too_big)
                snprintf(h->last_error, sizeof(h->last_error),
                         "response larger than the %zu byte limit", t->cap);
        else
                redact_userinfo(h->errbuf[0] ? h->errbuf : curl_easy_strerror(e), h->last_error,
                                sizeof(h->last_error));
}

static int attempt(struct http *h, const struct http_request *req, struct curl_slist *headers,
                   struct http_response *resp)
{
        struct transfer t = { .h = h, .sink = req->sink, .resp = resp, .cap = h->opt.max_body };
        CURLcode e;
        int r;

        free(resp->body);
        resp->body = NULL;
        resp->body_len = 0;
        resp->status = 0;
        resp->reason[0] = '\0';
        h->errbuf[0] = '\0';
        if (req->sink && req->sink->begin && (r = req->sink->begin(req->sink->userdata)) < 0)
                return r;
        r = setup(h, req, headers, &t);
        if (r < 0)
                return r;
        e = curl_easy_perform(h->curl);
        if (e != CURLE_OK) {
                note_error(h, e, &t);
                return map_curl_error(e, &t);
        }
        curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &resp->status);
        if (!resp->body && buffer_append(&t, "", 0) < 0)
                return -ENOMEM;
        h->last_error[0] = '\0';
        return 0;
}

static bool retryable(int r, const struct http_response *resp)
{
        if (r == -ECONNREFUSED || r == -ETIMEDOUT || r == -ECONNRESET || r == -EIO)
                return true;
        /* 501 is "not implemented": asking again cannot help. */
        return r == 0 && resp->status >= 500 && resp->status != 501;
}

/* The header list libcurl reads, pointing at the caller's lines: no copy
 * (curl_slist_append() would put one of the credential on the heap). The
 * nodes are ours, freed with free(), never with curl_slist_free_all(). */
static struct curl_slist *build_headers(const char *const *lines, int *ret_error)
{
        size_t n = 0;
        struct curl_slist *nodes;

        *ret_error = 0;
        while (lines && lines[n])
                n++;
        if (n == 0)
                return NULL;
        nodes = calloc(n, sizeof(*nodes));
        if (!nodes) {
                *ret_error = -ENOMEM;
                return NULL;
        }
        for (size_t i = 0; i < n; i++) {
                /* libcurl only reads them (CURLOPT_HTTPHEADER). */
                nodes[i].data = (char *)lines[i];
                nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
        }
        return nodes;
}

static void pause_usec(uint64_t usec)
{
        struct timespec ts = { .tv_sec = (time_t)(usec / USEC_PER_SEC),
                               .tv_nsec = (long)(usec % USEC_PER_SEC) * 1000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int http_request(struct http *h, const struct http_request *req, struct http_response *ret)
{
        bool idempotent = strcmp(req->method, "GET") == 0;
        unsigned tries = idempotent ? h->opt.retries + 1 : 1;
        struct curl_slist *headers;
        int r, hr;

        headers = build_headers(req->headers, &hr);
        if (hr < 0)
                return hr;
        ret->attempts = 0;
        for (unsigned i = 1;; i++) {
                ret->attempts = i;
                r = attempt(h, req, headers, ret);
                if (i >= tries || !retryable(r, ret))
                        break;
                pause_usec(http_backoff_usec(&h->opt, i, xorshift32(&h->rng)));
        }
        free(headers);
        return r;
}
