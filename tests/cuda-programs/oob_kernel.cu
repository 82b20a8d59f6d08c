// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// oob_kernel: a kernel writing far outside any allocation. As natively, the
// launch succeeds and the next synchronising call reports
// cudaErrorIllegalAddress (700), sticky (the next call reports it too).
// Then cudaDeviceReset and, where the driver gives this process a new
// context (it may answer cudaErrorDevicesUnavailable for a while, or for
// good: an H200 did), a vector add on it must be right; where it does not,
// the program execs itself and goes on in a fresh process. The isolation
// runs start it beside another VM or process running the program set, which
// must not notice.
//
// usage: oob_kernel [SECONDS]   repeat for SECONDS (default: once)
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

__global__ void scribble(int *p, long stride)
{
    // 1 TiB past the allocation, and more per thread: never mapped.
    p[(1l << 38) + threadIdx.x * stride] = 42;
}

__global__ void vadd(const int *a, int *b, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        b[i] += a[i];
    }
}

// Fault once: 700 at the sync, sticky; then reset.
static void fault_once(int round)
{
    int *d;
    cudaError_t e;

    CK(cudaMalloc(&d, 4096));
    scribble<<<1, 32>>>(d, 1l << 24);
    e = cudaGetLastError();
    if (e != cudaSuccess) {
        fail("round %d: the launch returned %s; the fault must surface at the sync", round,
             cudaGetErrorName(e));
    }
    e = cudaDeviceSynchronize();
    if (e != cudaErrorIllegalAddress) {
        fail("round %d: cudaDeviceSynchronize returned %s (%d), want cudaErrorIllegalAddress (700)",
             round, cudaGetErrorName(e), (int)e);
    }
    e = cudaMalloc(&d, 4096);
    if (e != cudaErrorIllegalAddress) {
        fail("round %d: the next call returned %s (%d), want the sticky cudaErrorIllegalAddress",
             round, cudaGetErrorName(e), (int)e);
    }
    e = cudaDeviceReset();
    if (e != cudaSuccess) {
        printf("  round %d: cudaDeviceReset: %s\n", round, cudaGetErrorName(e));
    }
}

// After the reset: a new context in this process, checked with a vector
// add. false (with the error printed) where the driver gives none; a wrong
// result is a failure.
static bool recovered(int round)
{
    const int n = 4096;
    int h[n], *da, *db;
    cudaError_t e;
    double t0 = now_ms();

#define TRY(call)                                                                            \
    do {                                                                                     \
        e = (call);                                                                          \
        if (e != cudaSuccess) {                                                              \
            printf("  round %d: after cudaDeviceReset, %s: %s (%d)\n", round, #call,          \
                   cudaGetErrorName(e), (int)e);                                             \
            return false;                                                                    \
        }                                                                                    \
    } while (0)
    while ((e = cudaFree(0)) == cudaErrorDevicesUnavailable && now_ms() - t0 < 5000) {
        usleep(100000);
    }
    TRY(e);
    for (int i = 0; i < n; i++) {
        h[i] = i;
    }
    TRY(cudaMalloc(&da, sizeof(h)));
    TRY(cudaMalloc(&db, sizeof(h)));
    TRY(cudaMemcpy(da, h, sizeof(h), cudaMemcpyHostToDevice));
    TRY(cudaMemcpy(db, h, sizeof(h), cudaMemcpyHostToDevice));
    vadd<<<n / 256, 256>>>(da, db, n);
    TRY(cudaGetLastError());
    TRY(cudaMemcpy(h, db, sizeof(h), cudaMemcpyDeviceToHost));
#undef TRY
    for (int i = 0; i < n; i++) {
        if (h[i] != 2 * i) {
            fail("round %d: after cudaDeviceReset b[%d] = %d, want %d", round, i, h[i], 2 * i);
        }
    }
    cudaFree(da);
    cudaFree(db);
    return true;
}

static int env_int(const char *name)
{
    const char *v = getenv(name);
    return v ? atoi(v) : 0;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0;
    // Carried across execs: the deadline (CLOCK_MONOTONIC survives exec)
    // and the counts.
    const char *dl = getenv("OOB_KERNEL_DEADLINE_MS");
    double deadline = dl ? atof(dl) : now_ms() + secs * 1e3;
    int rounds = env_int("OOB_KERNEL_ROUNDS"), rec = env_int("OOB_KERNEL_RECOVERED");
    int execs = env_int("OOB_KERNEL_EXECS");
    char buf[64];

    prog_name = "oob_kernel";
    for (;;) {
        fault_once(++rounds);
        bool ok = recovered(rounds);
        rec += ok;
        if (now_ms() >= deadline) {
            break;
        }
        if (!ok) {
            snprintf(buf, sizeof(buf), "%.3f", deadline);
            setenv("OOB_KERNEL_DEADLINE_MS", buf, 1);
            snprintf(buf, sizeof(buf), "%d", rounds);
            setenv("OOB_KERNEL_ROUNDS", buf, 1);
            snprintf(buf, sizeof(buf), "%d", rec);
            setenv("OOB_KERNEL_RECOVERED", buf, 1);
            snprintf(buf, sizeof(buf), "%d", execs + 1);
            setenv("OOB_KERNEL_EXECS", buf, 1);
            fflush(stdout);
            execv("/proc/self/exe", argv);
            fail("execv /proc/self/exe: %s", strerror(errno));
        }
    }
    char d[160];
    snprintf(d, sizeof(d), "%d round(s): cudaErrorIllegalAddress at the sync, sticky; "
             "%d recovered in the process after cudaDeviceReset, %d in a new process",
             rounds, rec, execs);
    pass(d);
}
