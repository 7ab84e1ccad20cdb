/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * guestconf (src/guestconf.c): what an archive's configuration says (the
 * text GET .../vzdump/extractconfig answers) and what a guest's says (the
 * object GET .../config answers). The first byte picks the guest type; the
 * rest is read as archive text and, when it is JSON, as a configuration
 * object. Promises checked:
 *   - every volume's strings are terminated, and only an archived volume
 *     has no reason;
 *   - a configuration compares equal to itself, and to itself journaled
 *     (fields -> JSON -> fields): what verify compares is what was pinned;
 *   - a configuration is never another guest than itself;
 *   - the facts' texts are terminated.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_answer.h"
#include "guestconf.h"

static void check_volumes(const struct guest_conf *c)
{
        char why[512];

        for (size_t i = 0; i < c->n_volumes; i++) {
                const struct guest_volume *v = &c->volumes[i];

                fuzz_check_cstr(v->key);
                fuzz_check_cstr(v->volid);
                fuzz_check_cstr(v->size_text);
                fuzz_check(v->archived == (v->why == NULL), "volume %s", v->key);
                guestconf_volume_reason(c, v, why, sizeof(why));
                fuzz_check(memchr(why, '\0', sizeof(why)) != NULL, "reason");
        }
}

static void check_conf(const struct guest_conf *c)
{
        struct guest_conf again;
        struct conf_facts f;
        json_t *fields;
        char why[512], err[256];
        int r;

        check_volumes(c);
        fuzz_check(guestconf_compare(c, "a", c, "b", why, sizeof(why)) == 0, "not equal to itself: %s",
                   why);
        fuzz_check(guestconf_identity(c, c) != IDENTITY_OTHER, "another guest than itself");
        guestconf_facts(c, c, NULL, &f);
        fuzz_check(!f.pending, "pending compared with itself");
        fuzz_check_cstr(f.unkept);
        fuzz_check_cstr(f.snapshot_names);
        fields = guestconf_fields_json(c);
        if (!fields)
                return;
        r = guestconf_from_json(c->type, fields, &again, err, sizeof(err));
        fuzz_check(r == 0 || r == -ENOMEM, "journaled fields do not load: %s", err);
        if (r == 0) {
                fuzz_check(guestconf_compare(c, "a", &again, "b", why, sizeof(why)) == 0,
                           "journaled fields differ: %s", why);
                fuzz_check(again.n_volumes == c->n_volumes, "volumes lost");
                guestconf_done(&again);
        }
        json_decref(fields);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        enum guest_type t;
        struct guest_conf c;
        char *text, err[256];
        json_t *root;
        int r;

        if (size < 1)
                return 0;
        t = data[0] & 1 ? GUEST_LXC : GUEST_QEMU;
        text = malloc(size);
        if (!text)
                return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        r = guestconf_from_text(t, text, &c, err, sizeof(err));
        fuzz_check(r == 0 || r == -EBADMSG || r == -ENOMEM, "result %d", r);
        fuzz_check(memchr(err, '\0', sizeof(err)) != NULL, "error text");
        if (r == 0) {
                check_conf(&c);
                guestconf_done(&c);
        }
        root = json_loadb(text, size - 1, JSON_REJECT_DUPLICATES, NULL);
        if (root) {
                r = guestconf_from_json(t, fuzz_answer_data(root), &c, err, sizeof(err));
                fuzz_check(r == 0 || r == -EBADMSG || r == -ENOMEM, "result %d", r);
                if (r == 0) {
                        check_conf(&c);
                        guestconf_done(&c);
                }
                json_decref(root);
        }
        free(text);
        return 0;
}
