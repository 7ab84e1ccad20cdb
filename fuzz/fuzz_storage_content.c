/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * The storage decoders of src/pve_api.c: pve_decode_backup_list() on the
 * answer of GET /nodes/{node}/storage/{storage}/content (the archive the
 * verify step looks for), and pve_decode_storage_status() on .../status.
 *
 * The list is searched as the reaper does (the guest's vmid, the op id as
 * marker, a lower bound on ctime) and as restore does (no marker, no
 * bound), with vmids and bounds taken from the entries themselves so that
 * matches happen.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_answer.h"
#include "pve_api.h"

static void check_search(json_t *d, uint32_t vmid, const char *marker, int64_t min_ctime)
{
        struct pve_backup b;
        int r;

        memset(&b, 0xa5, sizeof(b));
        r = pve_decode_backup_list(
                d, &(struct pve_backup_query){ .vmid = vmid, .marker = marker, .min_ctime = min_ctime },
                &b);
        fuzz_check(r == 0 || r == -ENOENT || r == -EBADMSG, "result %d", r);
        fuzz_check(r != -EBADMSG || !json_is_array(d), "a list refused");
        if (r < 0)
                return;
        fuzz_check_cstr(b.volid);
        fuzz_check(b.volid[0] != '\0', "an empty volid found");
        fuzz_check(b.ctime >= min_ctime, "ctime %lld below %lld", (long long)b.ctime,
                   (long long)min_ctime);
}

static int64_t clamp_ctime(json_t *v)
{
        double c = json_number_value(v);

        if (!(c > -9e18 && c < 9e18))
                return 0;
        return (int64_t)c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_t *root = json_loadb((const char *)data, size, 0, NULL), *d, *it;
        struct pve_storage_status st;
        size_t i;
        int r;

        if (!root)
                return 0;
        d = fuzz_answer_data(root);
        check_search(d, 100, NULL, 0);
        json_array_foreach(d, i, it) {
                json_int_t v = json_integer_value(json_object_get(it, "vmid"));
                uint32_t vmid = v > 0 && v <= UINT32_MAX ? (uint32_t)v : 100;
                int64_t ctime = clamp_ctime(json_object_get(it, "ctime"));

                if (i >= 4)
                        break;
                check_search(d, vmid, NULL, 0);
                check_search(d, vmid, "R-000001", ctime);
                check_search(d, vmid, "", INT64_MIN);
        }
        memset(&st, 0xa5, sizeof(st));
        r = pve_decode_storage_status(d, &st);
        fuzz_check(r == 0 || r == -EBADMSG, "result %d", r);
        if (r == 0) {
                fuzz_check_cstr(st.type);
                fuzz_check_cstr(st.content);
        }
        json_decref(root);
        return 0;
}
