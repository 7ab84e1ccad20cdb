/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The task decoders of src/pve_api.c: pve_decode_task_status() on the
 * answer of GET /nodes/{node}/tasks/{upid}/status, pve_task_succeeded() on
 * the exit status it keeps, and pve_upid_parse() on the task ids Proxmox
 * sends (in that answer and as the answer of every task-starting POST).
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_answer.h"
#include "pve_api.h"

static void check_upid(const char *s)
{
        struct pve_upid u;

        if (!s || pve_upid_parse(s, &u) < 0)
                return;
        fuzz_check_cstr(u.node);
        fuzz_check_cstr(u.type);
        fuzz_check_cstr(u.id);
        fuzz_check(strlen(s) < PVE_UPID_MAX, "a UPID of %zu bytes accepted", strlen(s));
        fuzz_check(strncmp(s, "UPID:", 5) == 0 && u.node[0] && u.type[0], "'%s'", s);
        /* The node is the field after "UPID:", where the status is asked. */
        fuzz_check(strncmp(s + 5, u.node, strlen(u.node)) == 0 && s[5 + strlen(u.node)] == ':',
                   "node '%s' of '%s'", u.node, s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_t *root = json_loadb((const char *)data, size, 0, NULL), *d;
        struct pve_task_status t;
        int r;

        if (!root)
                return 0;
        d = fuzz_answer_data(root);
        memset(&t, 0xa5, sizeof(t));
        r = pve_decode_task_status(d, &t);
        fuzz_check(r == 0 || r == -EBADMSG, "result %d", r);
        if (r == 0) {
                fuzz_check_cstr(t.exitstatus);
                if (t.running)
                        fuzz_check(t.exitstatus[0] == '\0', "a running task with an exit status");
                else
                        fuzz_check(t.exitstatus[0] != '\0', "a stopped task without exit status");
                if (!t.running && pve_task_succeeded(t.exitstatus))
                        fuzz_check(strcmp(t.exitstatus, "OK") == 0 ||
                                           strncmp(t.exitstatus, "WARNINGS: ", 10) == 0,
                                   "'%s' taken for success", t.exitstatus);
        }
        check_upid(json_string_value(json_object_get(d, "upid")));
        check_upid(json_string_value(d));
        if (json_is_string(json_object_get(d, "exitstatus")))
                (void)pve_task_succeeded(json_string_value(json_object_get(d, "exitstatus")));
        json_decref(root);
        return 0;
}
