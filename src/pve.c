/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "pve.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"

/* Proxmox tickets live 2 h; renew well before. */
#define TICKET_RENEW_USEC (USEC_PER_HOUR)

struct resources_sink {
        struct pve *p;
        pve_guest_fn fn;
        void *userdata;
};

struct pve {
        struct http *http;
        char *base_url;
        /* "Authorization: PVEAPIToken=...": the config's, borrowed (the one
         * copy of the credential, out of core dumps) */
        const char *auth_header;
        char *user;
        const char *password; /* the config's, borrowed */
        char *self; /* whom Proxmox names as the user of our tasks */
        /* "Cookie: PVEAuthCookie=..." and the CSRF header, in memory out
         * of core dumps (secret_alloc, TICKET_MAX bytes each) */
        char *cookie_header;
        char *csrf_header;
        uint64_t ticket_usec; /* when the ticket was issued (monotonic) */
        struct pve_decoder *decoder; /* reused: one per client, not per poll */
        struct resources_sink sink; /* where the decoder delivers this poll's guests */
        long last_status; /* HTTP status of the last request, 0 if none arrived */
        struct pve_counters counters;
        char error[1024];
};

#define TICKET_MAX 4096

struct pve *pve_free(struct pve *p)
{
        if (!p)
                return NULL;
        http_free(p->http);
        free(p->base_url);
        free(p->user);
        free(p->self);
        secret_free(p->cookie_header, TICKET_MAX);
        secret_free(p->csrf_header, TICKET_MAX);
        pve_decoder_free(p->decoder);
        free(p);
        return NULL;
}

static int pve_init_auth(struct pve *p, const struct config *c)
{
        const char *self = c->token_id ? c->token_id : c->user;

        p->self = strdup_or_null(self);
        if (self && !p->self)
                return -ENOMEM;
        if (c->token_id) {
                /* PVEAPIToken=USER@REALM!TOKENID=SECRET; no CSRF with tokens. */
                p->auth_header = c->auth_header ? c->auth_header : "Authorization: PVEAPIToken=";
                return 0;
        }
        p->user = strdup_or_null(c->user);
        p->password = c->password;
        return c->user && !p->user ? -ENOMEM : 0;
}

int pve_new(const struct config *c, struct pve **ret)
{
        struct http_options o = {
                .ca_file = c->ca_file,
                .pinned_pubkey = c->pinned_pubkey,
                .proxy = c->proxy,
                .insecure = c->insecure,
                .connect_timeout_usec = c->connect_timeout_usec,
                .timeout_usec = c->timeout_usec,
                .max_body = c->max_response_bytes,
                .retries = c->retries,
                .backoff_base_usec = 250 * USEC_PER_MSEC,
                .backoff_max_usec = 4 * USEC_PER_SEC,
        };
        struct pve *p = calloc(1, sizeof(*p));
        int r;

        if (!p)
                return -ENOMEM;
        p->base_url = strdup(c->api_url);
        r = p->base_url ? http_new(&o, &p->http) : -ENOMEM;
        if (r >= 0)
                r = pve_init_auth(p, c);
        if (r < 0) {
                pve_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

const char *pve_error(const struct pve *p)
{
        return p->error;
}

void pve_set_error(struct pve *p, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(p->error, sizeof(p->error), fmt, ap);
        va_end(ap);
}

/* --- errors --- */

static void append_errors_map(json_t *errors, char *buf, size_t size)
{
        const char *param;
        json_t *msg;
        size_t off = strlen(buf);
        const char *sep = " (";

        json_object_foreach(errors, param, msg) {
                const char *text = json_is_string(msg) ? json_string_value(msg) : "?";
                int w = snprintf(buf + off, size - off, "%s%s: %.*s", sep, param,
                                 (int)strcspn(text, "\n"), text);

                if (w < 0 || (size_t)w >= size - off)
                        return;
                off += (size_t)w;
                sep = "; ";
        }
        if (off > 0 && strcmp(sep, "; ") == 0 && off + 1 < size)
                snprintf(buf + off, size - off, ")");
}

void pve_format_http_error(long status, const char *reason, const char *body, char *buf,
                           size_t size)
{
        json_t *root, *errors;

        snprintf(buf, size, "HTTP %ld %s", status, reason && *reason ? reason : "(no message)");
        if (!body || !*body)
                return;
        root = json_loads(body, JSON_DECODE_ANY, NULL);
        errors = json_is_object(root) ? json_object_get(root, "errors") : NULL;
        if (json_is_object(errors))
                append_errors_map(errors, buf, size);
        json_decref(root);
}

static int classify_status(struct pve *p, const char *what, const struct http_response *resp)
{
        char msg[768];

        pve_format_http_error(resp->status, resp->reason, resp->body, msg, sizeof(msg));
        if (resp->status == 401)
                snprintf(p->error, sizeof(p->error),
                         "%s: authentication failed (%s): check the API token id and secret", what,
                         msg);
        else if (resp->status == 403)
                snprintf(p->error, sizeof(p->error), "%s: permission denied (%s)", what, msg);
        else
                snprintf(p->error, sizeof(p->error), "%s: %s", what, msg);
        if (resp->status == 401 || resp->status == 403)
                return -EACCES;
        /* Not Proxmox VE's answer but a proxy's without one: pveproxy
         * forwarding to another node (AnyEvent's 595-599: the request may
         * have reached it), or api.proxy (502-504). The server may have
         * acted: no refusal. */
        if ((resp->status >= 502 && resp->status <= 504) ||
            (resp->status >= 595 && resp->status <= 599))
                return -EPROTO;
        return -EREMOTEIO;
}

static int transport_error(struct pve *p, const char *what, int r)
{
        snprintf(p->error, sizeof(p->error), "%s: %s", what,
                 http_last_error(p->http)[0] ? http_last_error(p->http) : strerror(-r));
        return r;
}

/* --- requests --- */

static int build_url(struct pve *p, const char *path, char *buf, size_t size)
{
        int n = snprintf(buf, size, "%s%s", p->base_url, path);

        return n < 0 || (size_t)n >= size ? -ENOBUFS : 0;
}

static int form_append(char **body, size_t *len, const char *key, const char *value)
{
        size_t esc_size = 3 * strlen(value) + 1, need;
        char *esc = malloc(esc_size), *b;

        if (!esc)
                return -ENOMEM;
        (void)url_escape(value, esc, esc_size); /* 3 bytes per byte always fit */
        need = *len + strlen(key) + strlen(esc) + 3;
        b = realloc(*body, need);
        if (!b) {
                free(esc);
                return -ENOMEM;
        }
        *len += (size_t)snprintf(b + *len, need - *len, "%s%s=%s", *len ? "&" : "", key, esc);
        *body = b;
        free(esc);
        return 0;
}

static int decode_ticket(struct pve *p, const char *body)
{
        json_t *root = json_loads(body, 0, NULL), *data;
        const char *ticket, *csrf;
        int r = -EBADMSG;

        data = json_is_object(root) ? json_object_get(root, "data") : NULL;
        ticket = json_string_value(json_object_get(data, "ticket"));
        csrf = json_string_value(json_object_get(data, "CSRFPreventionToken"));
        if (ticket && csrf && !strpbrk(ticket, "\r\n;") && !strpbrk(csrf, "\r\n") &&
            strlen(ticket) < TICKET_MAX - 32 && strlen(csrf) < TICKET_MAX - 32) {
                if (!p->cookie_header)
                        p->cookie_header = secret_alloc(TICKET_MAX);
                if (!p->csrf_header)
                        p->csrf_header = secret_alloc(TICKET_MAX);
                if (!p->cookie_header || !p->csrf_header)
                        r = -ENOMEM;
                else {
                        snprintf(p->cookie_header, TICKET_MAX, "Cookie: PVEAuthCookie=%s", ticket);
                        snprintf(p->csrf_header, TICKET_MAX, "CSRFPreventionToken: %s", csrf);
                        p->ticket_usec = now_monotonic_usec();
                        r = 0;
                }
        } else
                snprintf(p->error, sizeof(p->error), "POST /access/ticket: answer has no ticket");
        /* jansson's copies, wiped before they go back to the heap */
        if (ticket)
                secure_zero((char *)ticket, strlen(ticket));
        if (csrf)
                secure_zero((char *)csrf, strlen(csrf));
        json_decref(root);
        return r;
}

/* The login form "username=U&password=P", escaped, in secret memory. */
#define LOGIN_BODY_MAX (3 * TICKET_MAX + 64)

static int login_body(const char *user, const char *secret, char *body)
{
        size_t n;

        memcpy(body, "username=", 9);
        if (url_escape(user, body + 9, LOGIN_BODY_MAX - 9) < 0)
                return -ENOBUFS;
        n = strlen(body);
        if (n + 10 >= LOGIN_BODY_MAX)
                return -ENOBUFS;
        memcpy(body + n, "&password=", 10);
        return url_escape(secret, body + n + 10, LOGIN_BODY_MAX - n - 10);
}

/* Ticket auth: log in with the password, or renew by sending the ticket as
 * the password, as Proxmox allows. The form is built in secret memory and
 * the answer (it holds the new ticket) wiped after decoding. */
static int pve_login(struct pve *p, bool renew)
{
        struct http_response resp = { 0 };
        char url[1024], *body = secret_alloc(LOGIN_BODY_MAX);
        const char *secret = p->password ? p->password : "";
        int r;

        if (!body)
                return -ENOMEM;
        if (renew && p->cookie_header)
                secret = p->cookie_header + strlen("Cookie: PVEAuthCookie=");
        r = build_url(p, "/access/ticket", url, sizeof(url));
        if (r >= 0)
                r = login_body(p->user, secret, body);
        if (r >= 0) {
                struct http_request req = { .method = "POST", .url = url, .body = body };

                r = http_request(p->http, &req, &resp);
                if (r < 0)
                        r = transport_error(p, "POST /access/ticket", r);
                else if (resp.status != 200)
                        r = classify_status(p, "POST /access/ticket", &resp);
                else
                        r = decode_ticket(p, resp.body);
        }
        if (resp.body)
                secure_zero(resp.body, resp.body_len);
        secret_free(body, LOGIN_BODY_MAX);
        http_response_clear(&resp);
        return r;
}

static int ensure_auth(struct pve *p)
{
        if (p->auth_header)
                return 0;
        if (!p->cookie_header)
                return pve_login(p, false);
        if (now_monotonic_usec() - p->ticket_usec > TICKET_RENEW_USEC &&
            pve_login(p, true) < 0)
                return pve_login(p, false);
        return 0;
}

static int do_request_once(struct pve *p, const char *method, const char *path,
                           const char *body, const struct http_sink *sink,
                           struct http_response *resp)
{
        const char *headers[3] = { 0 };
        char url[2048], what[300];
        int r;

        snprintf(what, sizeof(what), "%s %s", method, path);
        r = build_url(p, path, url, sizeof(url));
        if (r < 0)
                return r;
        r = ensure_auth(p);
        if (r < 0)
                return r;
        headers[0] = p->auth_header ? p->auth_header : p->cookie_header;
        /* Tickets need the CSRF token on every write; API tokens do not. */
        if (!p->auth_header && strcmp(method, "GET") != 0)
                headers[1] = p->csrf_header;
        http_response_clear(resp);
        r = http_request(p->http,
                         &(struct http_request){ .method = method, .url = url, .headers = headers,
                                                 .body = body, .sink = sink },
                         resp);
        p->counters.requests++;
        if (r < 0) {
                p->counters.errors++;
                return transport_error(p, what, r);
        }
        if (resp->status < 200 || resp->status >= 300) {
                p->counters.errors++;
                return classify_status(p, what, resp);
        }
        return 0;
}

/* A 401 is answered before the handler runs, so even a write that got one
 * was not executed: logging in again and resending once is safe. */
static int do_request(struct pve *p, const char *method, const char *path, const char *body,
                      const struct http_sink *sink, struct http_response *resp)
{
        int r = do_request_once(p, method, path, body, sink, resp);

        if (r == -EACCES && resp->status == 401 && !p->auth_header) {
                /* A ticket can be invalidated early (auth key rotation). */
                secret_free(p->cookie_header, TICKET_MAX);
                p->cookie_header = NULL;
                r = do_request_once(p, method, path, body, sink, resp);
        }
        p->last_status = resp->status; /* every call, the streaming poll too */
        return r;
}

static int do_get(struct pve *p, const char *path, const struct http_sink *sink,
                  struct http_response *resp)
{
        return do_request(p, "GET", path, NULL, sink, resp);
}

int pve_call(struct pve *p, const char *method, const char *path, const struct pve_form *form,
             json_t **ret_data)
{
        struct http_response resp = { 0 };
        json_t *root = NULL, *data;
        json_error_t jerr;
        int r;

        char *with_query = NULL;
        bool in_query = form && form->body &&
                        (strcmp(method, "GET") == 0 || strcmp(method, "DELETE") == 0);

        if (form && form->error < 0)
                return form->error;
        /* Proxmox reads the parameters of GET and DELETE from the query
         * string only. */
        if (in_query && asprintf(&with_query, "%s%c%s", path, strchr(path, '?') ? '&' : '?',
                                 form->body) < 0)
                return -ENOMEM;
        r = do_request(p, method, in_query ? with_query : path, in_query ? NULL : (form ? form->body : NULL),
                       NULL, &resp);
        free(with_query);
        if (r >= 0) {
                /* A key given twice has no one meaning: such an answer
                 * is as unreadable as a malformed one. */
                root = json_loadb(resp.body ? resp.body : "", resp.body_len,
                                  JSON_REJECT_DUPLICATES, &jerr);
                data = json_is_object(root) ? json_object_get(root, "data") : NULL;
                if (!data) {
                        snprintf(p->error, sizeof(p->error),
                                 "%s %s: answer is not a JSON object with \"data\"%s%s", method,
                                 path, root ? "" : ": ", root ? "" : jerr.text);
                        r = -EBADMSG;
                } else if (ret_data)
                        *ret_data = json_incref(data);
        }
        json_decref(root);
        http_response_clear(&resp);
        return r;
}

long pve_last_status(const struct pve *p)
{
        return p->last_status;
}

void pve_set_retries(struct pve *p, unsigned retries)
{
        http_set_retries(p->http, retries);
}

void pve_answer_expected(struct pve *p)
{
        if (p->counters.errors > 0)
                p->counters.errors--;
}

const struct pve_counters *pve_counters(const struct pve *p)
{
        return &p->counters;
}

int pve_form_add(struct pve_form *f, const char *key, const char *value)
{
        if (f->error >= 0)
                f->error = form_append(&f->body, &f->len, key, value);
        return f->error;
}

int pve_form_addf(struct pve_form *f, const char *key, const char *fmt, ...)
{
        char *v = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&v, fmt, ap);
        va_end(ap);
        if (n < 0) {
                f->error = -ENOMEM;
                return f->error;
        }
        pve_form_add(f, key, v);
        free(v);
        return f->error;
}

void pve_form_clear(struct pve_form *f)
{
        free(f->body);
        *f = (struct pve_form){ 0 };
}

int pve_get_version(struct pve *p, struct pve_version *ret)
{
        struct http_response resp = { 0 };
        json_t *root = NULL, *data;
        const char *v, *rel;
        int r;

        r = do_get(p, "/version", NULL, &resp);
        if (r >= 0) {
                root = json_loads(resp.body, 0, NULL);
                data = json_is_object(root) ? json_object_get(root, "data") : NULL;
                v = json_string_value(json_object_get(data, "version"));
                rel = json_string_value(json_object_get(data, "release"));
                if (v && rel) {
                        snprintf(ret->version, sizeof(ret->version), "%s", v);
                        snprintf(ret->release, sizeof(ret->release), "%s", rel);
                } else {
                        snprintf(p->error, sizeof(p->error),
                                 "GET /version: answer has no version and release");
                        r = -EBADMSG;
                }
        }
        json_decref(root);
        http_response_clear(&resp);
        return r;
}

/* --- the streaming poll --- */

static int resources_begin(void *userdata)
{
        struct resources_sink *s = userdata;

        return pve_decoder_reset(s->p->decoder);
}

static int resources_data(void *userdata, const char *buf, size_t len)
{
        struct resources_sink *s = userdata;

        return pve_decoder_feed(s->p->decoder, buf, len);
}

static int pve_guest_forward(void *userdata, const struct pve_guest *g)
{
        struct resources_sink *s = userdata;

        return s->fn(s->userdata, g);
}

int pve_get_resources(struct pve *p, pve_guest_fn fn, void *userdata,
                      struct pve_decode_stats *ret_stats)
{
        static const char path[] = "/cluster/resources?type=vm";
        struct http_sink sink = { resources_begin, resources_data, &p->sink };
        struct http_response resp = { 0 };
        int r;

        if (!p->decoder && pve_decoder_new(pve_guest_forward, &p->sink, &p->decoder) < 0)
                return -ENOMEM;
        p->sink = (struct resources_sink){ .p = p, .fn = fn, .userdata = userdata };
        r = do_get(p, path, &sink, &resp);
        if (r == -EBADMSG)
                snprintf(p->error, sizeof(p->error), "GET %s: %s", path,
                         pve_decoder_error(p->decoder));
        else if (r >= 0) {
                r = pve_decoder_finish(p->decoder, ret_stats);
                if (r < 0)
                        snprintf(p->error, sizeof(p->error), "GET %s: %s", path,
                                 pve_decoder_error(p->decoder));
        }
        http_response_clear(&resp);
        return r;
}

const char *pve_task_user(const struct pve *p)
{
        return p->self;
}
