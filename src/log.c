/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

static const char *log_ident = "proxreap";
static enum log_target log_to = LOG_TARGET_STDERR;
static int log_level = LOG_INFO;
static bool log_echo_errors; /* errors to stderr too: it is not the journal */

/* systemd connects stderr to the journal and says so in JOURNAL_STREAM
 * ("device:inode" of that stream): then an error written there too would
 * show twice. */
static bool stderr_is_journal(void)
{
        const char *js = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
               (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_setup(const char *ident, enum log_target target, int max_prio)
{
        log_ident = ident;
        log_to = target;
        log_level = max_prio;
        /* Run by hand without --foreground: the fatal error must not
         * hide in the journal only. */
        log_echo_errors = target == LOG_TARGET_JOURNAL && !stderr_is_journal();
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

static void log_out(int prio, const struct log_guest_ctx *ctx, const char *msg)
{
        if (log_to == LOG_TARGET_JOURNAL)
                log_journal(prio, ctx, msg);
        if (log_to != LOG_TARGET_JOURNAL || (log_echo_errors && prio <= LOG_ERR))
                log_stderr(prio, ctx, msg);
}

void log_inert(int prio, const char *line)
{
        if (prio <= log_level)
                log_out(prio, NULL, line);
}

static void log_emit(int prio, const struct log_guest_ctx *ctx, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
static void log_emit(int prio, const struct log_guest_ctx *ctx, const char *fmt, va_list ap)
{
        char raw[2048], msg[4096];

        /* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): started by the callers */
        vsnprintf(raw, sizeof(raw), fmt, ap);
        /* Names and messages from outside may hold newlines and escape
         * sequences: one log line stays one line, and inert. */
        text_escape(raw, msg, sizeof(msg));
        log_out(prio, ctx, msg);
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
