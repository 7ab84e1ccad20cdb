/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "log.h"

#include <stdio.h>
#include <string.h>

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

static const char *log_ident = "proxreap";
static enum log_target log_to = LOG_TARGET_STDERR;
static int log_level = LOG_INFO;

void log_setup(const char *ident, enum log_target target, int max_prio)
{
        log_ident = ident;
        log_to = target;
        log_level = max_prio;
}

static const char *prio_name(int prio)
{
        static const char *const names[] = {
                "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
        };

        return prio >= 0 && prio <= LOG_DEBUG ? names[prio] : "log";
}

static void log_stderr(int prio, const struct log_guest_ctx *ctx, const char *msg)
{
        /* The webhook thread logs too: one line is never split. */
        flockfile(stderr);
        /* Notices and infos are the normal output of a foreground run: no
         * level prefix for them, so a human reads plain sentences. */
        if (prio <= LOG_WARNING || prio == LOG_DEBUG)
                fprintf(stderr, "%s: %s: ", log_ident, prio_name(prio));
        else
                fprintf(stderr, "%s: ", log_ident);
        if (ctx && ctx->op)
                fprintf(stderr, "%s: ", ctx->op);
        fprintf(stderr, "%s\n", msg);
        funlockfile(stderr);
}

static void log_journal(int prio, const struct log_guest_ctx *ctx, const char *msg)
{
        char vmid[32];

        if (!ctx) {
                sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio,
                                "SYSLOG_IDENTIFIER=%s", log_ident, NULL);
                return;
        }
        snprintf(vmid, sizeof(vmid), "%u", (unsigned)ctx->vmid);
        sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", prio, "SYSLOG_IDENTIFIER=%s",
                        log_ident, "PROXREAP_VMID=%s", vmid, "PROXREAP_NODE=%s",
                        ctx->node ? ctx->node : "", "PROXREAP_OP=%s", ctx->op ? ctx->op : "",
                        "PROXREAP_STATE=%s", ctx->state ? ctx->state : "", NULL);
}

static void log_emit(int prio, const struct log_guest_ctx *ctx, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
static void log_emit(int prio, const struct log_guest_ctx *ctx, const char *fmt, va_list ap)
{
        char msg[2048];

        /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): started by the callers */
        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (log_to == LOG_TARGET_JOURNAL)
                log_journal(prio, ctx, msg);
        else
                log_stderr(prio, ctx, msg);
}

void log_msg(int prio, const char *fmt, ...)
{
        va_list ap;

        if (prio > log_level)
                return;
        va_start(ap, fmt);
        log_emit(prio, NULL, fmt, ap);
        va_end(ap);
}

void log_guest(int prio, const struct log_guest_ctx *ctx, const char *fmt, ...)
{
        va_list ap;

        if (prio > log_level)
                return;
        va_start(ap, fmt);
        log_emit(prio, ctx, fmt, ap);
        va_end(ap);
}
