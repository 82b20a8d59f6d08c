/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The fuzz targets: one libFuzzer entry point per parser of untrusted bytes.
 * Built with clang -fsanitize=fuzzer (make fuzz), or with replay.c as a plain
 * program that `make test` runs over the seed corpus plus mutations.
 */
#ifndef VGPU_TESTS_FUZZ_H
#define VGPU_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test does not hold: report and crash, so
 * both libFuzzer and the replay runner record the input. */
#define FUZZ_CHECK(cond)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                     \
            abort();                                                            \
        }                                                                       \
    } while (0)

/* Reads from the input as a byte stream; past the end it yields zeros. */
struct fuzz_in {
    const uint8_t *p;
    size_t left;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (!in->left) {
        return 0;
    }
    in->left--;
    return *in->p++;
}

static inline void fuzz_bytes(struct fuzz_in *in, void *dst, size_t n)
{
    uint8_t *d = dst;

    for (size_t i = 0; i < n; i++) {
        d[i] = fuzz_u8(in);
    }
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
    uint32_t v;

    fuzz_bytes(in, &v, sizeof(v));
    return v;
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
    uint64_t v;

    fuzz_bytes(in, &v, sizeof(v));
    return v;
}

#endif /* VGPU_TESTS_FUZZ_H */
