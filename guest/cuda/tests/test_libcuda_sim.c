/* SPDX-License-Identifier: MIT */
/*
 * The product libcuda.so.1 end to end, with no GPU: through libvgpu's sim
 * transport to a vgpu-mediator whose worker runs the mock driver
 * (tests/gpu/mock_cudadrv.c; VGPU_SOCKET names its socket). A driver-API
 * program: a module, kernels with mixed-size parameters, copies through
 * pageable and pinned memory, thread-block clusters (whole and partial) and
 * a cooperative launch, a tensor map encoded by the host, context limits,
 * and a fault reported at the next sync.
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
    "func fault -\n"
    "func tma 128,8\n";

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

    /* clusters of 2 over the whole grid; then a grid of partial clusters,
     * whose error the next sync reports (once); a cooperative launch */
    {
        void *args[] = { &da, &db, &dc, &n };
        CUlaunchAttribute at[2];
        CUlaunchConfig cfg;

        memset(at, 0, sizeof(at));
        at[0].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
        at[0].value.clusterDim.x = 2;
        at[0].value.clusterDim.y = 1;
        at[0].value.clusterDim.z = 1;
        at[1].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE;
        at[1].value.clusterSchedulingPolicyPreference = CU_CLUSTER_SCHEDULING_POLICY_SPREAD;
        memset(&cfg, 0, sizeof(cfg));
        cfg.gridDimX = N / 256;
        cfg.gridDimY = cfg.gridDimZ = 1;
        cfg.blockDimX = 256;
        cfg.blockDimY = cfg.blockDimZ = 1;
        cfg.attrs = at;
        cfg.numAttrs = 2;
        CHECK(cuMemsetD32(dc, 0, N), CUDA_SUCCESS);
        CHECK(cuLaunchKernelEx(&cfg, vadd, args, NULL), CUDA_SUCCESS);
        CHECK(cuMemcpyDtoH(c, dc, sizeof(c)), CUDA_SUCCESS);
        for (int i = 0; i < N; i++) {
            if (c[i] != 3.0f * i) {
                fprintf(stderr, "vadd in clusters: c[%d] = %f\n", i, c[i]);
                return 1;
            }
        }
        cfg.gridDimX = 3;
        CHECK(cuLaunchKernelEx(&cfg, vadd, args, NULL), CUDA_SUCCESS);
        CHECK(cuCtxSynchronize(), CUDA_ERROR_INVALID_CLUSTER_SIZE);
        CHECK(cuCtxSynchronize(), CUDA_SUCCESS);
        CHECK(cuLaunchKernel(vadd, 3, 1, 1, 256, 1, 1, 0, NULL, args, NULL), CUDA_SUCCESS);
        CHECK(cuCtxSynchronize(), CUDA_SUCCESS);    /* the attributes went with their launch */
        CHECK(cuLaunchCooperativeKernel(vadd, N / 256, 1, 1, 256, 1, 1, 0, NULL, args),
              CUDA_SUCCESS);
        CHECK(cuCtxSynchronize(), CUDA_SUCCESS);
    }

    /* a tensor map: the host's bytes in ours (the mock's: address, rank,
     * first dimension); rank 9 refused; the address replaced */
    {
        const cuuint64_t dim[2] = { 64, 64 }, strides[1] = { 256 };
        const cuuint32_t box[2] = { 16, 16 }, es[2] = { 1, 1 };
        CUtensorMap map;

        memset(&map, 0xee, sizeof(map));
        CHECK(cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, (void *)da, dim,
                                     strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                     CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_NONE,
                                     CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE), CUDA_SUCCESS);
        if (map.opaque[0] != da || map.opaque[1] != 2 || map.opaque[2] != 64 ||
            map.opaque[3] != 0) {
            fprintf(stderr, "tensor map: %llx %llx %llx %llx\n",
                    (unsigned long long)map.opaque[0], (unsigned long long)map.opaque[1],
                    (unsigned long long)map.opaque[2], (unsigned long long)map.opaque[3]);
            return 1;
        }
        CHECK(cuTensorMapEncodeTiled(&map, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 9, (void *)da, dim,
                                     strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                     CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_NONE,
                                     CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
              CUDA_ERROR_INVALID_VALUE);
        CHECK(cuTensorMapReplaceAddress(&map, (void *)db), CUDA_SUCCESS);
        if (map.opaque[0] != db || map.opaque[2] != 64) {
            fprintf(stderr, "tensor map after replace: %llx\n", (unsigned long long)map.opaque[0]);
            return 1;
        }
        /* by value, as a __grid_constant__ parameter: its 128 bytes packed */
        {
            CUfunction tma;
            void *args[] = { &map, &dout };

            CHECK(cuModuleGetFunction(&tma, mod, "tma"), CUDA_SUCCESS);
            CHECK(cuLaunchKernel(tma, 1, 1, 1, 128, 1, 1, 0, NULL, args, NULL), CUDA_SUCCESS);
            CHECK(cuCtxSynchronize(), CUDA_SUCCESS);
        }
    }

    /* context limits, as the host's driver keeps them */
    {
        size_t v = 0;

        CHECK(cuCtxSetLimit(CU_LIMIT_PRINTF_FIFO_SIZE, 4u << 20), CUDA_SUCCESS);
        CHECK(cuCtxGetLimit(&v, CU_LIMIT_PRINTF_FIFO_SIZE), CUDA_SUCCESS);
        if (v != 4u << 20) {
            fprintf(stderr, "printf FIFO limit: %zu\n", v);
            return 1;
        }
        CHECK(cuCtxGetLimit(&v, CU_LIMIT_MAX), CUDA_ERROR_UNSUPPORTED_LIMIT);
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
