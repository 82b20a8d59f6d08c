// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// The program set's common checks (tests/cuda-programs/). Every program
// prints exactly one verdict line, "PASS <name>" or "FAIL <name>: why", and
// exits 0 only on PASS, so a runner needs nothing but the exit status and
// that line. Everything else a program prints starts with "  " (details).
#ifndef VGPU_CUDA_PROGRAMS_CHECK_H
#define VGPU_CUDA_PROGRAMS_CHECK_H

#include <cuda_runtime.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *prog_name = "?";

__attribute__((format(printf, 1, 2), noreturn))
static void fail(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    printf("FAIL %s: ", prog_name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(1);
}

static inline void pass(const char *detail)
{
    if (detail && *detail) {
        printf("PASS %s (%s)\n", prog_name, detail);
    } else {
        printf("PASS %s\n", prog_name);
    }
    fflush(stdout);
    exit(0);
}

// A runtime call that must succeed; the failure names the call and the error.
#define CK(call)                                                              \
    do {                                                                      \
        cudaError_t ck_e_ = (call);                                           \
        if (ck_e_ != cudaSuccess) {                                           \
            fail("%s:%d: %s: %s (%s, %d)", __FILE__, __LINE__, #call,         \
                 cudaGetErrorName(ck_e_), cudaGetErrorString(ck_e_),          \
                 (int)ck_e_);                                                 \
        }                                                                     \
    } while (0)

// The launch just made (configuration errors surface here, execution errors
// at the next synchronising call).
#define CK_LAUNCH() CK(cudaGetLastError())

static inline double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Deterministic inputs without rand(): the same on every run and machine.
static inline float lcg_float(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)((*state >> 8) & 0xffff) / 65536.0f - 0.5f;
}

// The device the program runs on, as a detail line (native: the GPU; through
// vgpu: the host GPU as the guest library reports it).
static inline void print_device(void)
{
    cudaDeviceProp p;
    int dev = 0, drv = 0, rt = 0;

    CK(cudaGetDevice(&dev));
    CK(cudaGetDeviceProperties(&p, dev));
    CK(cudaDriverGetVersion(&drv));
    CK(cudaRuntimeGetVersion(&rt));
    printf("  device %d: %s, cc %d.%d, %d SMs, %.0f MiB; driver %d, runtime %d\n", dev, p.name,
           p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem / 1048576.0, drv, rt);
}

#endif
