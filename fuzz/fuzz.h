/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * What every fuzz target shares: the libFuzzer entry points (declared here
 * for -Wmissing-prototypes) and the check that turns a broken invariant
 * into a crash libFuzzer records like any other.
 */
#ifndef PROXREAP_FUZZ_H
#define PROXREAP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define fuzz_check(cond, ...)                                                            \
        do {                                                                             \
                if (!(cond)) {                                                           \
                        fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, \
                                #cond);                                                  \
                        fprintf(stderr, __VA_ARGS__);                                    \
                        fputc('\n', stderr);                                             \
                        abort();                                                         \
                }                                                                        \
        } while (0)

/* A string field of a fixed buffer is NUL-terminated inside it. */
#define fuzz_check_cstr(buf) fuzz_check(memchr((buf), '\0', sizeof(buf)) != NULL, "%s", #buf)

#endif
