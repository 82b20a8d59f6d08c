/* SPDX-License-Identifier: MIT */
/*
 * The product libcuda.so.1 end to end, with no GPU: through libvgpu's sim
 * transport to a vgpu-mediator whose worker runs the mock driver
 * (tests/gpu/mock_cudadrv.c; VGPU_SOCKET names its socket). A driver-API
 * program: a module, kernels with mixed-size parameters, copies through
 * pageable and pinned memory, and a fault reported at the next sync.
 * Prints PASS; exits nonzero at the first difference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#define CHECK(call, want) \
    do { \
        CUresult r_ = (call); \
        if (r_ != (want)) { \
            const char *n_ = "?"; \
            cuGetErrorName(r_, &n_); \
            fprintf(stderr, "%s:%d: %s = %s (%d), want %d\n", __FILE__, __LINE__, #call, n_, \
                    (int)r_, (int)(want)); \
            exit(1); \
        } \
    } while (0)

static void host_fn(void *p)
{
    *(volatile int *)p = 1;
}

static const char image[] =
    "VGPU-MOCK-MODULE\n"
    "func vadd 8,8,8,4\n"
    "func mixed 1,8,2,4,8\n"
    "func fault -\n";

int main(void)
{
    enum { N = 4096 };
    static float a[N], b[N], c[N];
    CUcontext ctx;
    CUmodule mod;
    CUfunction vadd, mixed, fault;
    CUdeviceptr da, db, dc, dout;
    float *pinned, out[4];
    char name[256];
    int n = N, count = 0;
    char ch = 7;
    double d = 2.5;
    short sh = -3;
    int i32 = 1 << 20;

    CHECK(cuInit(0), CUDA_SUCCESS);
    CHECK(cuDeviceGetCount(&count), CUDA_SUCCESS);
    CHECK(cuDeviceGetName(name, sizeof(name), 0), CUDA_SUCCESS);
    printf("device: %s (%d)\n", name, count);
    CHECK(cuDevicePrimaryCtxRetain(&ctx, 0), CUDA_SUCCESS);
    CHECK(cuCtxSetCurrent(ctx), CUDA_SUCCESS);
    CHECK(cuModuleLoadData(&mod, image), CUDA_SUCCESS);
    CHECK(cuModuleGetFunction(&vadd, mod, "vadd"), CUDA_SUCCESS);
    CHECK(cuModuleGetFunction(&mixed, mod, "mixed"), CUDA_SUCCESS);
    CHECK(cuModuleGetFunction(&fault, mod, "fault"), CUDA_SUCCESS);
    CHECK(cuModuleGetFunction(&fault, mod, "nonesuch"), CUDA_ERROR_NOT_FOUND);

    for (int i = 0; i < N; i++) {
        a[i] = (float)i;
        b[i] = (float)(2 * i);
    }
    CHECK(cuMemAlloc(&da, sizeof(a)), CUDA_SUCCESS);
    CHECK(cuMemAlloc(&db, sizeof(b)), CUDA_SUCCESS);
    CHECK(cuMemAlloc(&dc, sizeof(c)), CUDA_SUCCESS);
    CHECK(cuMemAlloc(&dout, sizeof(out)), CUDA_SUCCESS);
    CHECK(cuMemcpyHtoD(da, a, sizeof(a)), CUDA_SUCCESS);            /* pageable: staged */
    CHECK(cuMemAllocHost((void **)&pinned, sizeof(b)), CUDA_SUCCESS);
    memcpy(pinned, b, sizeof(b));
    CHECK(cuMemcpyHtoDAsync(db, pinned, sizeof(b), NULL), CUDA_SUCCESS); /* pinned: DMA */
    {
        void *args[] = { &da, &db, &dc, &n };

        CHECK(cuLaunchKernel(vadd, N / 256, 1, 1, 256, 1, 1, 0, NULL, args, NULL), CUDA_SUCCESS);
    }
    {
        void *args[] = { &ch, &d, &sh, &i32, &dout };

        /* on this thread's per-thread default stream: a host stream of its own */
        CHECK(cuLaunchKernel(mixed, 1, 1, 1, 1, 1, 1, 0, CU_STREAM_PER_THREAD, args, NULL),
              CUDA_SUCCESS);
        CHECK(cuStreamSynchronize(CU_STREAM_PER_THREAD), CUDA_SUCCESS);
    }
    {
        static volatile int ran;

        CHECK(cuLaunchHostFunc(NULL, host_fn, (void *)&ran), CUDA_SUCCESS);
        CHECK(cuCtxSynchronize(), CUDA_SUCCESS);
        if (!ran) {
            fprintf(stderr, "host function did not run by cuCtxSynchronize\n");
            return 1;
        }
    }
    CHECK(cuMemcpyDtoH(c, dc, sizeof(c)), CUDA_SUCCESS);
    for (int i = 0; i < N; i++) {
        if (c[i] != 3.0f * i) {
            fprintf(stderr, "vadd: c[%d] = %f\n", i, c[i]);
            return 1;
        }
    }
    CHECK(cuMemcpyDtoHAsync(pinned, dout, sizeof(out), NULL), CUDA_SUCCESS);
    CHECK(cuStreamSynchronize(NULL), CUDA_SUCCESS);
    memcpy(out, pinned, sizeof(out));
    if (out[0] != 7.0f || out[1] != 2.5f || out[2] != -3.0f || out[3] != (float)(1 << 20)) {
        fprintf(stderr, "mixed: %f %f %f %f\n", out[0], out[1], out[2], out[3]);
        return 1;
    }

    /* a fault: the launch returns, the next synchronising call reports it */
    CHECK(cuLaunchKernel(fault, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL), CUDA_SUCCESS);
    CHECK(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
    CHECK(cuMemAlloc(&da, 16), CUDA_ERROR_ILLEGAL_ADDRESS);   /* sticky */
    CHECK(cuDevicePrimaryCtxReset(0), CUDA_SUCCESS);
    CHECK(cuMemAlloc(&da, 16), CUDA_SUCCESS);                 /* the next context works */
    CHECK(cuMemFree(da), CUDA_SUCCESS);
    printf("PASS\n");
    return 0;
}
