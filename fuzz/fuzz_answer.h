/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * An API answer as pve_call() (src/pve.c) hands it to the decoders: the
 * body parsed by jansson with the same flags, and its "data" member. A
 * document without "data" (a pvesh capture, as in the shared samples) is
 * given whole, so both kinds of seed reach the decoder.
 */
#ifndef PROXREAP_FUZZ_ANSWER_H
#define PROXREAP_FUZZ_ANSWER_H

#include <jansson.h>

static inline json_t *fuzz_answer_data(json_t *root)
{
        json_t *data = json_is_object(root) ? json_object_get(root, "data") : NULL;

        return data ? data : root;
}

#endif
