// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// oob_kernel: a kernel writing far outside any allocation. As natively, the
// next synchronising call reports cudaErrorIllegalAddress (700), sticky until
// cudaDeviceReset, after which the device works again (a vector add is
// checked). The isolation runs start it beside another VM or process running
// the program set, which must not notice.
//
// usage: oob_kernel [SECONDS]   repeat fault + reset + check for SECONDS
//                               (default: once)
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
    CK(cudaDeviceReset());

    // The device works again.
    const int n = 4096;
    int h[n], *da, *db;
    for (int i = 0; i < n; i++) {
        h[i] = i;
    }
    CK(cudaMalloc(&da, sizeof(h)));
    CK(cudaMalloc(&db, sizeof(h)));
    CK(cudaMemcpy(da, h, sizeof(h), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, h, sizeof(h), cudaMemcpyHostToDevice));
    vadd<<<n / 256, 256>>>(da, db, n);
    CK_LAUNCH();
    CK(cudaMemcpy(h, db, sizeof(h), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        if (h[i] != 2 * i) {
            fail("round %d: after cudaDeviceReset b[%d] = %d, want %d", round, i, h[i], 2 * i);
        }
    }
    CK(cudaFree(da));
    CK(cudaFree(db));
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0, t0 = now_ms();
    int rounds = 0;

    prog_name = "oob_kernel";
    do {
        fault_once(++rounds);
    } while (now_ms() - t0 < secs * 1e3);
    char d[96];
    snprintf(d, sizeof(d), "%d round(s): cudaErrorIllegalAddress, sticky, reset, works again",
             rounds);
    pass(d);
}
