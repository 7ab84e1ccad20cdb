/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * pve: the Proxmox VE API calls proxreap makes, decoded into plain structs.
 *
 * GET /cluster/resources?type=vm is decoded while it streams in (yajl's
 * callback parser fed from the curl write callback), one guest at a time,
 * straight to the caller: no document tree of the fleet is ever built.
 * Everything else is small and decoded with jansson.
 *
 * Errors: negative errno; the human-readable reason (Proxmox's own message
 * where it sent one) is in pve_error(). The credential never appears there.
 */
#ifndef PROXREAP_PVE_H
#define PROXREAP_PVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

enum guest_type {
        GUEST_QEMU,
        GUEST_LXC,
};

/* Fields of a /cluster/resources entry that were present in the answer. */
enum {
        PVE_HAS_CPU = 1u << 0,
        PVE_HAS_MEM = 1u << 1,
        PVE_HAS_UPTIME = 1u << 2,
        PVE_HAS_NET = 1u << 3, /* netin and netout */
        PVE_HAS_DISKIO = 1u << 4, /* diskread and diskwrite */
        PVE_HAS_MAXMEM = 1u << 5,
};

/* One guest as /cluster/resources reports it. Strings are NUL-terminated
 * and truncated to their buffers (names and tags only: identifiers that do
 * not fit make the entry invalid). */
struct pve_guest {
        uint32_t vmid;
        enum guest_type type;
        char node[64];
        char name[128];
        char status[32]; /* running, stopped, paused, ..., unknown */
        char lock[32]; /* "" when not locked */
        char hastate[32]; /* "" when not HA-managed */
        char pool[64];
        char tags[512];
        bool template;
        unsigned present; /* PVE_HAS_* */
        double cpu; /* fraction of the guest's vCPUs */
        double maxcpu;
        uint64_t mem, maxmem, disk, maxdisk;
        uint64_t netin, netout, diskread, diskwrite; /* cumulative since start */
        uint64_t uptime; /* seconds */
};

const char *guest_type_to_string(enum guest_type t);

/* --- streaming decoder (exposed for tests and fuzzing) --- */

struct pve_decoder;
typedef int (*pve_guest_fn)(void *userdata, const struct pve_guest *g);

struct pve_decode_stats {
        unsigned guests; /* entries delivered */
        unsigned rejected; /* qemu/lxc entries dropped as invalid */
        unsigned skipped; /* other resource types */
        char first_reject[256]; /* why the first rejected entry was dropped */
};

int pve_decoder_new(pve_guest_fn fn, void *userdata, struct pve_decoder **ret);
struct pve_decoder *pve_decoder_free(struct pve_decoder *d);
/* Starts over (a retried request). */
int pve_decoder_reset(struct pve_decoder *d);
/* -EBADMSG: not JSON, or not {"data": [ ... ]}; fn's negative return aborts. */
int pve_decoder_feed(struct pve_decoder *d, const char *buf, size_t len);
int pve_decoder_finish(struct pve_decoder *d, struct pve_decode_stats *ret_stats);
const char *pve_decoder_error(const struct pve_decoder *d);

/* --- the client --- */

struct pve;

struct pve_version {
        char version[64];
        char release[32];
};

/* The client for c. It borrows c's credential (the one copy of it, in
 * memory kept out of core dumps): c must outlive it. */
int pve_new(const struct config *c, struct pve **ret);
struct pve *pve_free(struct pve *p);
const char *pve_error(const struct pve *p);

/* The user Proxmox names in the UPIDs of the tasks this client starts
 * (USER@REALM!TOKENID, or the ticket's USER@REALM); NULL if unknown. */
const char *pve_task_user(const struct pve *p);
void pve_set_error(struct pve *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* -EACCES: authentication or permission refused; -EBADMSG: malformed
 * answer; -EREMOTEIO: other HTTP error; transport errors from http. */
int pve_get_version(struct pve *p, struct pve_version *ret);
int pve_get_resources(struct pve *p, pve_guest_fn fn, void *userdata,
                      struct pve_decode_stats *ret_stats);

/* --- any call (small answers, decoded with jansson) --- */

/* A form-encoded request body. Errors are sticky: check once at the end. */
struct pve_form {
        char *body;
        size_t len;
        int error;
};
int pve_form_add(struct pve_form *f, const char *key, const char *value);
int pve_form_addf(struct pve_form *f, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void pve_form_clear(struct pve_form *f);

/* method path (already escaped, with a query for GETs) with an optional
 * form body. On 2xx, *ret_data (optional) gets a new reference to the
 * answer's "data" (json null included). Writes are never retried here
 * (only after a 401, which Proxmox sends before running anything). */
int pve_call(struct pve *p, const char *method, const char *path, const struct pve_form *form,
             json_t **ret_data);
/* HTTP status of the last pve_call() (0: no answer arrived). */
long pve_last_status(const struct pve *p);

/* Requests sent (a GET retried inside http counts once) and how many of
 * them failed: no answer, or a status other than 2xx. */
struct pve_counters {
        uint64_t requests;
        uint64_t errors;
};
const struct pve_counters *pve_counters(const struct pve *p);
/* The last request's failure status was the answer the caller looked for
 * (a guest that is gone): it does not count as an error. */
void pve_answer_expected(struct pve *p);
/* Extra attempts for reads from now on (api.retries at pve_new()). */
void pve_set_retries(struct pve *p, unsigned retries);

/* Form a message from an error response (exposed for tests): Proxmox's
 * reason phrase, plus the "errors" map of a 400. */
void pve_format_http_error(long status, const char *reason, const char *body, char *buf,
                           size_t size);

#endif
