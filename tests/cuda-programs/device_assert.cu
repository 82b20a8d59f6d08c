// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// device_assert: a kernel whose assert fails in one thread. As natively, the
// launch itself succeeds and the next synchronising call reports
// cudaErrorAssert (710); the error is sticky (later calls report it too).
// The program passes when it sees exactly that.
#undef NDEBUG
#include <assert.h>

#include "check.h"

__global__ void check_positive(const int *v, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        assert(v[i] > 0);
    }
}

int main(void)
{
    const int n = 1024;
    int h[n], *d;

    prog_name = "device_assert";
    for (int i = 0; i < n; i++) {
        h[i] = i == 777 ? -5 : i + 1;
    }
    CK(cudaMalloc(&d, sizeof(h)));
    CK(cudaMemcpy(d, h, sizeof(h), cudaMemcpyHostToDevice));
    // A passing launch first: asserts that hold cost nothing.
    check_positive<<<4, 256>>>(d, 777);
    CK_LAUNCH();
    CK(cudaDeviceSynchronize());

    check_positive<<<4, 256>>>(d, n);
    cudaError_t launch = cudaGetLastError();
    if (launch != cudaSuccess) {
        fail("the launch itself returned %s; the assert must surface at the sync",
             cudaGetErrorName(launch));
    }
    cudaError_t e = cudaDeviceSynchronize();
    if (e != cudaErrorAssert) {
        fail("cudaDeviceSynchronize returned %s (%d), want cudaErrorAssert (710)",
             cudaGetErrorName(e), (int)e);
    }
    cudaError_t again = cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost);
    if (again != cudaErrorAssert) {
        fail("the next call returned %s (%d), want the sticky cudaErrorAssert",
             cudaGetErrorName(again), (int)again);
    }
    pass("cudaErrorAssert at the sync, sticky afterwards");
}
