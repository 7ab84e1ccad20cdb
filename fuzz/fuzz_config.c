/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The configuration loader (src/config.c), as the offline commands run it
 * (CONFIG_OFFLINE: no secret or CA file is read, so an input is all there
 * is). The file is a memfd reached by its /proc/self/fd path, rewritten for
 * every input.
 *
 * A loaded configuration must satisfy what the loader promises its users;
 * a refused one must say where and why, one "FILE:LINE: message" per line.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static int conf_fd = -1;
static char conf_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        /* The loader looks there for credentials: the input alone counts. */
        unsetenv("CREDENTIALS_DIRECTORY");
        conf_fd = memfd_create("proxreap.conf", MFD_CLOEXEC);
        if (conf_fd < 0) {
                perror("memfd_create");
                abort();
        }
        snprintf(conf_path, sizeof(conf_path), "/proc/self/fd/%d", conf_fd);
        return 0;
}

static void check_errors(const char *errors)
{
        size_t plen = strlen(conf_path);

        fuzz_check(errors && *errors, "refused without a message");
        for (const char *line = errors; *line;) {
                const char *nl = strchr(line, '\n');

                fuzz_check(nl, "message not ended by a newline: '%s'", line);
                fuzz_check(strncmp(line, conf_path, plen) == 0 && line[plen] == ':',
                           "message without the file: '%.*s'", (int)(nl - line), line);
                line = nl + 1;
        }
}

static void check_config(const struct config *c)
{
        fuzz_check(c->path && strcmp(c->path, conf_path) == 0, "path");
        fuzz_check(c->api_url && *c->api_url, "no api.url");
        fuzz_check(!c->token_secret && !c->password, "a secret read offline");
        fuzz_check(c->interval_usec > 0 && c->window_usec >= c->interval_usec, "window");
        fuzz_check(config_window_samples(c) >= 1 &&
                           config_window_samples(c) <= CONFIG_MAX_WINDOW_SAMPLES + 1,
                   "%u samples", config_window_samples(c));
        fuzz_check(c->min_coverage > 0 && c->min_coverage <= 1, "min_coverage %g",
                   c->min_coverage);
        fuzz_check(isfinite(c->cpu_percent) && isfinite(c->mem_mb) && isfinite(c->net_kbps) &&
                           isfinite(c->disk_kbps) && isfinite(c->cpu_share) &&
                           isfinite(c->breaker_jump) && isfinite(c->breaker_broken),
                   "a threshold is not finite");
        fuzz_check(c->status_file && c->status_file[0] == '/', "status.file");
        fuzz_check(c->journal_file && c->journal_file[0] == '/', "reap.journal");
        fuzz_check(!c->prometheus_file || c->prometheus_file[0] == '/', "prometheus_file");
        fuzz_check(c->mode != REAP_MODE_REAP || c->archive_storage, "reap without storage");
        fuzz_check(c->node_scope != NODE_SCOPE_LIST || c->nodes.n > 0, "an empty node list");
        for (size_t i = 0; i < c->n_exclude_vmids; i++)
                fuzz_check(c->exclude_vmids[i].first <= c->exclude_vmids[i].last,
                           "vmid range %u-%u", (unsigned)c->exclude_vmids[i].first,
                           (unsigned)c->exclude_vmids[i].last);
        fuzz_check((c->notify_events & ~(unsigned)NOTIFY_ALL) == 0, "events %#x",
                   c->notify_events);
        (void)config_vmid_excluded(c, 100, NULL);
        (void)config_vmid_excluded(c, 999999999, NULL);
        (void)config_node_in_scope(c, "pve1");
        (void)reap_mode_to_string(c->mode);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct config *c = NULL;
        char *errors = NULL;
        int r;

        if (ftruncate(conf_fd, 0) < 0 || pwrite(conf_fd, data, size, 0) != (ssize_t)size)
                abort();
        r = config_load_flags(conf_path, CONFIG_OFFLINE, &c, &errors);
        fuzz_check(r == 0 || r == -EINVAL, "result %d", r);
        if (r == 0) {
                fuzz_check(!errors, "loaded, with errors '%s'", errors);
                check_config(c);
                config_free(c);
        } else {
                fuzz_check(!c, "a config returned on failure");
                check_errors(errors);
                free(errors);
        }
        return 0;
}
