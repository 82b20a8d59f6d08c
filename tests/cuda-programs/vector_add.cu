// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// vector_add: c = a + b over 2^22 floats with pageable and pinned host
// memory, checked element by element.
#include "check.h"

__global__ void vadd(const float *a, const float *b, float *c, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        c[i] = a[i] + b[i];
    }
}

static void run(int n, bool pinned)
{
    size_t bytes = (size_t)n * sizeof(float);
    float *a, *b, *c, *da, *db, *dc;
    unsigned seed = 1;

    if (pinned) {
        CK(cudaMallocHost(&a, bytes));
        CK(cudaMallocHost(&b, bytes));
        CK(cudaMallocHost(&c, bytes));
    } else {
        a = (float *)malloc(bytes);
        b = (float *)malloc(bytes);
        c = (float *)malloc(bytes);
        if (!a || !b || !c) {
            fail("out of host memory");
        }
    }
    for (int i = 0; i < n; i++) {
        a[i] = lcg_float(&seed);
        b[i] = (float)i;
        c[i] = -1.0f;
    }
    CK(cudaMalloc(&da, bytes));
    CK(cudaMalloc(&db, bytes));
    CK(cudaMalloc(&dc, bytes));
    CK(cudaMemcpy(da, a, bytes, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, b, bytes, cudaMemcpyHostToDevice));
    vadd<<<(n + 255) / 256, 256>>>(da, db, dc, n);
    CK_LAUNCH();
    CK(cudaDeviceSynchronize());
    CK(cudaMemcpy(c, dc, bytes, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        if (c[i] != a[i] + b[i]) {
            fail("%s memory: c[%d] = %g, want %g", pinned ? "pinned" : "pageable", i, c[i],
                 a[i] + b[i]);
        }
    }
    CK(cudaFree(da));
    CK(cudaFree(db));
    CK(cudaFree(dc));
    if (pinned) {
        CK(cudaFreeHost(a));
        CK(cudaFreeHost(b));
        CK(cudaFreeHost(c));
    } else {
        free(a);
        free(b);
        free(c);
    }
}

int main(void)
{
    prog_name = "vector_add";
    print_device();
    run(1 << 22, false);
    run(1 << 20, true);
    run(1, false);   // one element: the tail of a block
    pass("2^22 pageable, 2^20 pinned, 1");
}
