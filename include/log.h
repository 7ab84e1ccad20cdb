/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * log: where proxreap's messages go. To journald with structured fields
 * (PROXREAP_VMID, PROXREAP_NODE, PROXREAP_OP, PROXREAP_STATE) when running as
 * a service, to stderr in the foreground and in the CLI.
 *
 * Library code does not log the errors it returns; callers decide.
 * Messages: lowercase, no full stop, user-supplied names quoted '%s'.
 * Secrets never reach a log line.
 */
#ifndef PROXREAP_LOG_H
#define PROXREAP_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

enum log_target {
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
};

/* ident prefixes stderr lines ("proxreapd: ..."). max_prio: LOG_DEBUG shows
 * everything, LOG_INFO (the default) hides debug. */
void log_setup(const char *ident, enum log_target target, int max_prio);

void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line that is inert already (escaped by its maker, like the
 * configuration loader's messages): logged as it is, not escaped again. */
void log_inert(int prio, const char *line);

/* A message about one guest. node, op and state may be NULL. */
struct log_guest_ctx {
        uint32_t vmid;
        const char *node;
        const char *op;
        const char *state;
};
void log_guest(int prio, const struct log_guest_ctx *ctx, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERR, __VA_ARGS__)

#endif
