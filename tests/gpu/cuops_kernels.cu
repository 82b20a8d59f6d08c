// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// The guest's "own GPU code" of the driver-operation tests (test_cuops.c):
// built to PTX and to a fatbin by meson, loaded through VGPU_OP_CU_MODULE_LOAD
// on the GPU host. The CI mock driver knows the same kernels by name
// (tests/gpu/mock_cudadrv.c), with the same parameter layouts.
#include <stdint.h>

__device__ unsigned g_counter;

extern "C" __global__ void vadd(const float *a, const float *b, float *c, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        c[i] = a[i] + b[i];
    }
}

extern "C" __global__ void fill_u32(unsigned *p, unsigned v, unsigned long long n)
{
    unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
    for (; i < n; i += (unsigned long long)gridDim.x * blockDim.x) {
        p[i] = v;
    }
}

// Mixed-size parameters: the packed layout has padding the host must get right.
extern "C" __global__ void mixed(char c, double d, short s, int i, float *out)
{
    if (threadIdx.x == 0 && blockIdx.x == 0) {
        out[0] = (float)c;
        out[1] = (float)d;
        out[2] = (float)s;
        out[3] = (float)i;
    }
}

// Reads far outside anything allocated: an illegal address, a sticky error.
extern "C" __global__ void fault(int *p)
{
    volatile int *bad = (volatile int *)((uintptr_t)p + (1ull << 46));
    *bad = 1;
}

// Runs for ns nanoseconds of the GPU's global timer.
extern "C" __global__ void spin(unsigned long long ns)
{
    unsigned long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    } while (t - t0 < ns);
}

extern "C" __global__ void bump(unsigned add)
{
    atomicAdd(&g_counter, add);
}

extern "C" __global__ void empty(void)
{
}
