/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The guest decoders of src/pve_api.c, pve_decode_guest_config() (GET
 * .../config: digest, lock, tags, protection; its tags are written back)
 * and pve_decode_guest_status() (GET .../status/current, the re-check
 * before every destructive step), and pve_format_http_error() (src/pve.c),
 * which reads the body of any error answer.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_answer.h"
#include "pve_api.h"

static void check_error_text(const uint8_t *data, size_t size)
{
        char *body = malloc(size + 1), buf[512];

        if (!body)
                return;
        memcpy(body, data, size);
        body[size] = '\0';
        memset(buf, 0xa5, sizeof(buf));
        pve_format_http_error(400, "Parameter verification failed", body, buf, sizeof(buf));
        fuzz_check_cstr(buf);
        fuzz_check(strncmp(buf, "HTTP 400 Parameter verification failed", 38) == 0, "'%s'", buf);
        /* A short buffer cuts the text, never overruns it. */
        pve_format_http_error(500, body, body, buf, 16);
        fuzz_check(memchr(buf, '\0', 16) != NULL, "unterminated");
        free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_t *root = json_loadb((const char *)data, size, 0, NULL), *d;
        struct pve_guest_config c;
        struct pve_guest_status s;
        int r;

        check_error_text(data, size);
        if (!root)
                return 0;
        d = fuzz_answer_data(root);
        memset(&c, 0xa5, sizeof(c));
        r = pve_decode_guest_config(d, &c);
        fuzz_check(r == 0 || r == -EBADMSG || r == -E2BIG, "result %d", r);
        if (r == 0) {
                fuzz_check_cstr(c.digest);
                fuzz_check_cstr(c.lock);
                fuzz_check_cstr(c.tags);
                fuzz_check_cstr(c.name);
                fuzz_check_cstr(c.rootfs_storage);
                fuzz_check(c.digest[0], "accepted without a digest");
                /* The tags are written back: they are never cut. */
                fuzz_check(strcmp(c.tags, json_string_value(json_object_get(d, "tags")) ?: "") == 0,
                           "tags cut");
        }
        memset(&s, 0xa5, sizeof(s));
        r = pve_decode_guest_status(d, &s);
        fuzz_check(r == 0 || r == -EBADMSG, "result %d", r);
        if (r == 0) {
                fuzz_check_cstr(s.status);
                fuzz_check_cstr(s.qmpstatus);
                fuzz_check_cstr(s.lock);
                fuzz_check(s.status[0], "accepted without a status");
        }
        json_decref(root);
        return 0;
}
