/* SPDX-License-Identifier: MIT */
/*
 * libcuda.so.1 on the fake host: the entry-point table and cuGetProcAddress's
 * versions, error names, the export tables and the integrity hash's MD2,
 * image sizes, parameter marshalling of mixed-size parameters,
 * asynchronous errors surfacing at the next synchronising call, launch
 * attributes (clusters, cooperative), tensor maps and context limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>

#include <cmocka.h>
#include <cuda.h>

#include "../cuda_internal.h"
#include "../export_tables.h"
#include "../module.h"
#include "fake_remote.h"

/* The symbols themselves, whatever cuda.h's macros call them. */
extern char s_cuCtxCreate_v2[] __asm__("cuCtxCreate_v2");
extern char s_cuCtxCreate_v3[] __asm__("cuCtxCreate_v3");
extern char s_cuCtxCreate_v4[] __asm__("cuCtxCreate_v4");
extern char s_cuCtxSynchronize[] __asm__("cuCtxSynchronize");
extern char s_cuCtxSynchronize_v2[] __asm__("cuCtxSynchronize_v2");
extern char s_cuGetProcAddress[] __asm__("cuGetProcAddress");
extern char s_cuGetProcAddress_v2[] __asm__("cuGetProcAddress_v2");
extern char s_cuGraphCreate[] __asm__("cuGraphCreate");
extern char s_cuInit[] __asm__("cuInit");
extern char s_cuLaunchKernel_ptsz[] __asm__("cuLaunchKernel_ptsz");
extern char s_cuMemAlloc[] __asm__("cuMemAlloc");
extern char s_cuMemAlloc_v2[] __asm__("cuMemAlloc_v2");
extern char s_cuMemcpyHtoD_v2[] __asm__("cuMemcpyHtoD_v2");
extern char s_cuMemcpyHtoD_v2_ptds[] __asm__("cuMemcpyHtoD_v2_ptds");

static void *proc(const char *name, int version, cuuint64_t flags,
                  CUdriverProcAddressQueryResult *st, CUresult *rv)
{
    void *fn = (void *)1;

    *rv = cuGetProcAddress_v2(name, &fn, version, flags, st);
    return fn;
}

static void test_proc_address(void **state)
{
    CUdriverProcAddressQueryResult st;
    CUresult rv;
    void *fn;

    (void)state;
    fn = proc("cuMemAlloc", 3020, 0, &st, &rv);
    assert_int_equal(rv, CUDA_SUCCESS);
    assert_int_equal(st, CU_GET_PROC_ADDRESS_SUCCESS);
    assert_ptr_equal(fn, (void *)s_cuMemAlloc_v2);
    assert_ptr_equal(fn, (void *)cuMemAlloc);          /* the header's own choice */
    fn = proc("cuMemAlloc", 2000, 0, &st, &rv);        /* the 32-bit one */
    assert_ptr_equal(fn, (void *)s_cuMemAlloc);
    assert_ptr_not_equal(fn, (void *)s_cuMemAlloc_v2);

    assert_ptr_equal(proc("cuCtxCreate", 13000, 0, &st, &rv), (void *)s_cuCtxCreate_v4);
    assert_ptr_equal(proc("cuCtxCreate", 11040, 0, &st, &rv), (void *)s_cuCtxCreate_v3);
    assert_ptr_equal(proc("cuCtxCreate", 3020, 0, &st, &rv), (void *)s_cuCtxCreate_v2);
    assert_ptr_equal(proc("cuCtxSynchronize", 2000, 0, &st, &rv), (void *)s_cuCtxSynchronize);
    assert_ptr_equal(proc("cuCtxSynchronize", 13000, 0, &st, &rv), (void *)s_cuCtxSynchronize_v2);
    assert_ptr_equal(proc("cuGetProcAddress", 12000, 0, &st, &rv), (void *)s_cuGetProcAddress_v2);
    assert_ptr_equal(proc("cuGetProcAddress", 11030, 0, &st, &rv), (void *)s_cuGetProcAddress);

    /* the per-thread default stream twin, and its absence */
    assert_ptr_equal(proc("cuMemcpyHtoD", 7000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
                          &st, &rv), (void *)s_cuMemcpyHtoD_v2_ptds);
    assert_ptr_equal(proc("cuMemcpyHtoD", 7000, 0, &st, &rv), (void *)s_cuMemcpyHtoD_v2);
    assert_ptr_equal(proc("cuLaunchKernel", 7000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
                          &st, &rv), (void *)s_cuLaunchKernel_ptsz);
    assert_ptr_equal(proc("cuInit", 2000, CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM,
                          &st, &rv), (void *)s_cuInit);

    fn = proc("cuNoSuchThing", 13000, 0, &st, &rv);
    assert_int_equal(rv, CUDA_ERROR_NOT_FOUND);
    assert_int_equal(st, CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND);
    assert_null(fn);
    fn = proc("", 13000, 0, &st, &rv);
    assert_int_equal(rv, CUDA_ERROR_NOT_FOUND);
    fn = proc("cuCtxSynchronize", 1000, 0, &st, &rv);
    assert_int_equal(rv, CUDA_ERROR_NOT_FOUND);
    assert_int_equal(st, CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT);
    assert_int_equal(cuGetProcAddress_v2(NULL, &fn, 13000, 0, &st), CUDA_ERROR_INVALID_VALUE);

    /* searched by halves: sorted as strcmp sorts, every name found */
    assert_true(cu_procs_count > 600);
    for (unsigned i = 1; i < cu_procs_count; i++) {
        assert_true(strcmp(cu_procs[i - 1].name, cu_procs[i].name) <= 0);
    }
    for (unsigned i = 0; i < cu_procs_count; i++) {
        assert_int_equal(cuGetProcAddress_v2(cu_procs[i].name, &fn, 13000, 0, &st), CUDA_SUCCESS);
    }
}

static void test_unsupported(void **state)
{
    CUgraph g;

    (void)state;
    /* an entry point this library does not implement: a clean refusal */
    assert_non_null((void *)s_cuGraphCreate);
    assert_int_equal(cuGraphCreate(&g, 0), CUDA_ERROR_NOT_SUPPORTED);
    assert_int_equal(cuGraphCreate(&g, 0), CUDA_ERROR_NOT_SUPPORTED);
}

static void test_error_names(void **state)
{
    const char *s;

    (void)state;
    assert_int_equal(cuGetErrorName(CUDA_ERROR_OUT_OF_MEMORY, &s), CUDA_SUCCESS);
    assert_string_equal(s, "CUDA_ERROR_OUT_OF_MEMORY");
    assert_int_equal(cuGetErrorString(CUDA_ERROR_OUT_OF_MEMORY, &s), CUDA_SUCCESS);
    assert_string_equal(s, "out of memory");
    assert_int_equal(cuGetErrorName(CUDA_ERROR_UNKNOWN, &s), CUDA_SUCCESS);
    assert_string_equal(s, "CUDA_ERROR_UNKNOWN");
    assert_int_equal(cuGetErrorName((CUresult)12345, &s), CUDA_ERROR_INVALID_VALUE);
    /* every value cuda.h names */
    for (int v = 0; v < 1000; v++) {
        if (cuGetErrorName((CUresult)v, &s) == CUDA_SUCCESS) {
            assert_int_equal(cuGetErrorString((CUresult)v, &s), CUDA_SUCCESS);
            assert_non_null(s);
        }
    }
}

static void md2_hex(const char *msg, const char *want)
{
    struct md2 m;
    uint8_t out[16];
    char hex[33];

    cu_md2_init(&m);
    cu_md2_update(&m, msg, strlen(msg));
    cu_md2_final(&m, out);
    for (int i = 0; i < 16; i++) {
        snprintf(hex + 2 * i, 3, "%02x", out[i]);
    }
    assert_string_equal(hex, want);
}

static void test_md2_and_tables(void **state)
{
    static const uint8_t integrity_id[16] = {
        0xd4, 0x08, 0x20, 0x55, 0xbd, 0xe6, 0x70, 0x4b,
        0x8d, 0x34, 0xba, 0x12, 0x3c, 0x66, 0xe1, 0xf2,
    };
    CUuuid id;
    const void *t;
    CUresult (*check)(uint32_t, uint64_t, uint64_t *);
    uint64_t h1[2], h2[2];

    (void)state;
    /* RFC 1319's test suite */
    md2_hex("", "8350e5a3e24c153df2275c9f80692773");
    md2_hex("abc", "da853b0d3f88d99b30283a69e6ded6bb");
    md2_hex("message digest", "ab4f496bfb2a530b219ff33031fe06b0");
    md2_hex("12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "d5976f79d83d3a0dc9806c3c66f3efd8");

    memcpy(id.bytes, integrity_id, 16);
    assert_int_equal(cuGetExportTable(&t, &id), CUDA_SUCCESS);
    assert_int_equal(((const uintptr_t *)t)[0], 3 * sizeof(void *));
    check = ((void *const *)t)[1];
    assert_int_equal(check(13000, 1, h1), CUDA_SUCCESS);
    assert_true(h1[0] == 0x3341181C03CB675CULL && h1[1] == 0x8ED383AA1F4CD1E8ULL);
    /* computed: the same inputs, the same answer; another time, another one */
    assert_int_equal(check(13002, 1000, h1), CUDA_SUCCESS);
    assert_int_equal(check(13002, 1000, h2), CUDA_SUCCESS);
    assert_memory_equal(h1, h2, 16);
    assert_int_equal(check(13002, 1001, h2), CUDA_SUCCESS);
    assert_memory_not_equal(h1, h2, 16);

    memset(id.bytes, 0x5a, 16);
    assert_int_equal(cuGetExportTable(&t, &id), CUDA_ERROR_INVALID_VALUE);
}

static void test_image_size(void **state)
{
    uint8_t fatbin[64] = { 0x50, 0xed, 0x55, 0xba, 1, 0, 16, 0, 48, 0, 0, 0, 0, 0, 0, 0 };
    struct { uint32_t magic, version; const void *data, *unused; } wrapper = {
        0x466243b1, 1, fatbin, NULL,
    };

    (void)state;
    assert_int_equal(cu_image_size(fatbin), 64);
    assert_int_equal(cu_image_size(&wrapper), 64);
    assert_int_equal(cu_image_size(".version 8.0\n.target sm_90\n"), 28);
    assert_int_equal(cu_image_size("\x01\x02garbage"), 0);
}

static CUcontext ctx;

static int setup(void **state)
{
    (void)state;
    if (cuInit(0) != CUDA_SUCCESS || cuDevicePrimaryCtxRetain(&ctx, 0) != CUDA_SUCCESS ||
        cuCtxSetCurrent(ctx) != CUDA_SUCCESS) {
        return -1;
    }
    return 0;
}

static void test_device(void **state)
{
    char name[64];
    int n = 0, v = -1;
    size_t total = 0;
    CUuuid u;

    (void)state;
    assert_int_equal(cuDeviceGetCount(&n), CUDA_SUCCESS);
    assert_int_equal(n, 1);
    assert_int_equal(cuDeviceGetName(name, sizeof(name), 0), CUDA_SUCCESS);
    assert_string_equal(name, "vgpu fake GPU");
    assert_int_equal(cuDeviceTotalMem(&total, 0), CUDA_SUCCESS);
    assert_int_equal(total, 1ull << 30);
    assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0),
                     CUDA_SUCCESS);
    assert_int_equal(v, 132);
    /* what this library does not offer reads 0, whatever the GPU says */
    assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY, 0), CUDA_SUCCESS);
    assert_int_equal(v, 0);
    assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_IPC_EVENT_SUPPORTED, 0),
                     CUDA_SUCCESS);
    assert_int_equal(v, 0);
    assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_COOPERATIVE_MULTI_DEVICE_LAUNCH,
                                          0), CUDA_SUCCESS);
    assert_int_equal(v, 0);
    /* what the host does for us reads as the GPU says */
    assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH, 0), CUDA_SUCCESS);
    assert_int_equal(v, 1);
    assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH, 0),
                     CUDA_SUCCESS);
    assert_int_equal(v, 1);
    assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_TENSOR_MAP_ACCESS_SUPPORTED, 0),
                     CUDA_SUCCESS);
    assert_int_equal(v, 1);
    assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_ECC_ENABLED, 0), CUDA_SUCCESS);
    assert_int_equal(v, 1);
    assert_int_equal(cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 1),
                     CUDA_ERROR_INVALID_DEVICE);
    assert_int_equal(cuDeviceGetUuid(&u, 0), CUDA_SUCCESS);
    assert_memory_equal(u.bytes, "fake-gpu-uuid-01", 16);
}

/* A kernel (char, double, int, short *, short, float) as nvcc lays it out. */
static void test_param_marshalling(void **state)
{
    static const char ptx[] = ".version 8.0\n.target sm_90\n";
    CUmodule mod;
    CUfunction f;
    char c = 'x';
    double d = 2.5;
    int i = -7;
    short *p = (short *)(uintptr_t)0x123456789abcull;
    short s = 0x1234;
    float fl = 1.5f;
    void *args[] = { &c, &d, &i, &p, &s, &fl };
    uint8_t got[64], want[44];
    size_t off, size;

    (void)state;
    assert_int_equal(cuModuleLoadData(&mod, ptx), CUDA_SUCCESS);
    assert_int_equal(cuModuleGetFunction(&f, mod, "_Z5mixedcdiPssf"), CUDA_SUCCESS);
    assert_int_equal(cuFuncGetParamInfo(f, 1, &off, &size), CUDA_SUCCESS);
    assert_int_equal(off, 8);
    assert_int_equal(size, 8);
    assert_int_equal(cuLaunchKernel(f, 1, 1, 1, 32, 1, 1, 0, NULL, args, NULL), CUDA_SUCCESS);
    memset(want, 0, sizeof(want));
    memcpy(want + 0, &c, 1);
    memcpy(want + 8, &d, 8);
    memcpy(want + 16, &i, 4);
    memcpy(want + 24, &p, 8);
    memcpy(want + 32, &s, 2);
    memcpy(want + 36, &fl, 4);
    assert_int_equal(fake_last_launch(got, sizeof(got)), 40);
    assert_memory_equal(got, want, 40);

    /* the same through CU_LAUNCH_PARAM_BUFFER_POINTER */
    {
        size_t n = 40;
        void *extra[] = { CU_LAUNCH_PARAM_BUFFER_POINTER, want, CU_LAUNCH_PARAM_BUFFER_SIZE, &n,
                          CU_LAUNCH_PARAM_END };
        want[0] = 'y';
        assert_int_equal(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, extra), CUDA_SUCCESS);
        fake_last_launch(got, sizeof(got));
        assert_int_equal(got[0], 'y');
    }
    /* no parameters for a function that has some; zero blocks */
    assert_int_equal(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(cuLaunchKernel(f, 0, 1, 1, 1, 1, 1, 0, NULL, args, NULL),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(cuModuleGetFunction(&f, mod, "missing"), CUDA_ERROR_NOT_FOUND);
    assert_int_equal(cuModuleUnload(mod), CUDA_SUCCESS);
}

static void test_async_error(void **state)
{
    static const char ptx[] = ".version 8.0\n.target sm_90\n";
    CUmodule mod;
    CUfunction f;
    CUdeviceptr d;
    CUstream st;

    (void)state;
    assert_int_equal(cuModuleLoadData(&mod, ptx), CUDA_SUCCESS);
    assert_int_equal(cuModuleGetFunction(&f, mod, "_Z5faultv"), CUDA_SUCCESS);
    assert_int_equal(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
    /* the launch itself is fine; its failure shows at the next sync */
    assert_int_equal(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, st, NULL, NULL), CUDA_SUCCESS);
    assert_int_equal(cuStreamSynchronize(st), CUDA_ERROR_ILLEGAL_ADDRESS);
    /* sticky, as natively, until the context is reset */
    assert_int_equal(cuMemAlloc(&d, 16), CUDA_ERROR_ILLEGAL_ADDRESS);
    assert_int_equal(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
    assert_int_equal(cuDevicePrimaryCtxReset(0), CUDA_SUCCESS);
    assert_int_equal(cuMemAlloc(&d, 16), CUDA_SUCCESS);
    assert_int_equal(cuMemFree(d), CUDA_SUCCESS);
}

static void test_memory(void **state)
{
    CUdeviceptr d;
    float *pinned, host[256], back[256];
    unsigned type = 0;
    size_t fr, tot;

    (void)state;
    for (int i = 0; i < 256; i++) {
        host[i] = (float)i;
    }
    assert_int_equal(cuMemAlloc(&d, sizeof(host)), CUDA_SUCCESS);
    assert_int_equal(cuMemcpyHtoD(d, host, sizeof(host)), CUDA_SUCCESS);
    assert_int_equal(cuMemAllocHost((void **)&pinned, sizeof(host)), CUDA_SUCCESS);
    assert_int_equal(cuMemcpyDtoHAsync(pinned, d, sizeof(host), NULL), CUDA_SUCCESS);
    assert_int_equal(cuStreamSynchronize(NULL), CUDA_SUCCESS);
    assert_memory_equal(pinned, host, sizeof(host));
    assert_int_equal(cuMemsetD32(d, 0x3f800000u, 256), CUDA_SUCCESS);
    assert_int_equal(cuMemcpy((CUdeviceptr)(uintptr_t)back, d, sizeof(back)), CUDA_SUCCESS);
    assert_true(back[0] == 1.0f && back[255] == 1.0f);
    assert_int_equal(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, d),
                     CUDA_SUCCESS);
    assert_int_equal(type, CU_MEMORYTYPE_DEVICE);
    assert_int_equal(cuPointerGetAttribute(&type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                           (CUdeviceptr)(uintptr_t)pinned), CUDA_SUCCESS);
    assert_int_equal(type, CU_MEMORYTYPE_HOST);
    assert_int_equal(cuMemGetInfo(&fr, &tot), CUDA_SUCCESS);
    assert_int_equal(tot, 1ull << 30);
    assert_int_equal(cuMemFreeHost(pinned), CUDA_SUCCESS);
    assert_int_equal(cuMemFreeHost(pinned), CUDA_ERROR_INVALID_VALUE);
    /* more than the shared memory holds: ordinary memory, staged copies */
    {
        uint8_t *big;
        unsigned fl = 1;

        assert_int_equal(cuMemHostAlloc((void **)&big, 64u << 20, 0), CUDA_SUCCESS);
        assert_int_equal(cuMemHostGetFlags(&fl, big), CUDA_SUCCESS);
        assert_int_equal(fl, 0);
        memcpy(big + (32u << 20), host, sizeof(host));
        assert_int_equal(cuMemcpyHtoDAsync(d, big + (32u << 20), sizeof(host), NULL),
                         CUDA_SUCCESS);
        memset(big, 0, sizeof(host));
        assert_int_equal(cuMemcpyDtoH(big, d, sizeof(host)), CUDA_SUCCESS);
        assert_memory_equal(big, host, sizeof(host));
        assert_int_equal(cuMemFreeHost(big), CUDA_SUCCESS);
    }
    assert_int_equal(cuMemFree(d), CUDA_SUCCESS);
    assert_int_equal(cuMemFree(d), CUDA_ERROR_INVALID_VALUE);
}

static CUresult launch_ex(CUfunction f, unsigned grid, unsigned block,
                          const CUlaunchAttribute *attrs, unsigned n)
{
    CUlaunchConfig cfg;

    memset(&cfg, 0, sizeof(cfg));
    cfg.gridDimX = grid;
    cfg.gridDimY = 1;
    cfg.gridDimZ = 1;
    cfg.blockDimX = block;
    cfg.blockDimY = 1;
    cfg.blockDimZ = 1;
    cfg.attrs = (CUlaunchAttribute *)attrs;
    cfg.numAttrs = n;
    return cuLaunchKernelEx(&cfg, f, NULL, NULL);
}

static void expect_attrs(uint32_t x, uint32_t y, uint32_t z, uint32_t flags, uint32_t policy)
{
    uint32_t cl[3], fl, po;

    assert_int_equal(fake_last_attrs(cl, &fl, &po), 0);    /* nothing left for the next */
    assert_int_equal(cl[0], x);
    assert_int_equal(cl[1], y);
    assert_int_equal(cl[2], z);
    assert_int_equal(fl, flags);
    assert_int_equal(po, policy);
}

/* cuLaunchKernelEx's attributes: clusters, their scheduling policy and the
 * cooperative flag reach the host with exactly their launch; hints are
 * ignored; what cannot be honoured is refused. */
static void test_launch_attrs(void **state)
{
    static const char ptx[] = ".version 8.0\n.target sm_90\n";
    CUlaunchAttribute at[3];
    CUlaunchConfig cfg;
    CUmodule mod;
    CUfunction f;
    uint32_t n;
    int v = -1;

    (void)state;
    memset(at, 0, sizeof(at));
    assert_int_equal(cuModuleLoadData(&mod, ptx), CUDA_SUCCESS);
    assert_int_equal(cuModuleGetFunction(&f, mod, "_Z4nopsv"), CUDA_SUCCESS);

    at[0].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    at[0].value.clusterDim.x = 2;
    at[0].value.clusterDim.y = 1;
    at[0].value.clusterDim.z = 1;
    assert_int_equal(launch_ex(f, 4, 128, at, 1), CUDA_SUCCESS);
    expect_attrs(2, 1, 1, 0, 0);
    at[1].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE;
    at[1].value.clusterSchedulingPolicyPreference = CU_CLUSTER_SCHEDULING_POLICY_SPREAD;
    at[2].id = CU_LAUNCH_ATTRIBUTE_PRIORITY;              /* a hint: ignored */
    at[2].value.priority = -1;
    assert_int_equal(launch_ex(f, 8, 128, at, 3), CUDA_SUCCESS);
    expect_attrs(2, 1, 1, 0, CU_CLUSTER_SCHEDULING_POLICY_SPREAD);
    assert_int_equal(cuCtxSynchronize(), CUDA_SUCCESS);

    /* a grid of partial clusters: the host's error, at the next sync, once */
    assert_int_equal(launch_ex(f, 3, 128, at, 1), CUDA_SUCCESS);
    assert_int_equal(cuStreamSynchronize(NULL), CUDA_ERROR_INVALID_CLUSTER_SIZE);
    assert_int_equal(cuStreamSynchronize(NULL), CUDA_SUCCESS);

    /* a plain launch after: no attributes */
    assert_int_equal(cuLaunchKernel(f, 3, 1, 1, 128, 1, 1, 0, NULL, NULL, NULL), CUDA_SUCCESS);
    expect_attrs(0, 0, 0, 0, 0);
    assert_int_equal(launch_ex(f, 3, 128, at + 2, 1), CUDA_SUCCESS);  /* hints only */
    expect_attrs(0, 0, 0, 0, 0);

    /* a launch that never left: its attributes do not reach the next one */
    {
        CUfunction refused;

        assert_int_equal(cuModuleGetFunction(&refused, mod, "_Z7refusedv"), CUDA_SUCCESS);
        assert_int_equal(launch_ex(refused, 4, 128, at, 1), CUDA_ERROR_UNKNOWN);
        assert_int_equal(cuLaunchKernel(f, 3, 1, 1, 128, 1, 1, 0, NULL, NULL, NULL),
                         CUDA_SUCCESS);
        expect_attrs(0, 0, 0, 0, 0);
    }

    /* cooperative: both ways */
    assert_int_equal(cuLaunchCooperativeKernel(f, 4, 1, 1, 64, 1, 1, 0, NULL, NULL),
                     CUDA_SUCCESS);
    expect_attrs(0, 0, 0, VGPU_CU_LAUNCH_COOPERATIVE, 0);
    at[1].id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
    at[1].value.cooperative = 1;
    assert_int_equal(launch_ex(f, 4, 64, at, 2), CUDA_SUCCESS);
    expect_attrs(2, 1, 1, VGPU_CU_LAUNCH_COOPERATIVE, 0);
    assert_int_equal(cuCtxSynchronize(), CUDA_SUCCESS);

    /* refused at the call, nothing sent */
    n = fake_launches();
    at[0].value.clusterDim.y = 0;
    assert_int_equal(launch_ex(f, 4, 64, at, 1), CUDA_ERROR_INVALID_VALUE);
    at[0].value.clusterDim.x = 4;
    at[0].value.clusterDim.y = 4;
    at[0].value.clusterDim.z = 2;                          /* 32 blocks */
    assert_int_equal(launch_ex(f, 8, 64, at, 1), CUDA_ERROR_INVALID_CLUSTER_SIZE);
    at[0].value.clusterDim.x = 2;
    at[1].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_EVENT;   /* changes what runs when */
    assert_int_equal(launch_ex(f, 8, 64, at + 1, 1), CUDA_ERROR_NOT_SUPPORTED);
    assert_int_equal(launch_ex(f, 8, 2048, NULL, 0), CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(cuLaunchKernel(f, 1, 70000, 1, 1, 1, 1, 0, NULL, NULL, NULL),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(fake_launches(), n);
    expect_attrs(2, 1, 1, VGPU_CU_LAUNCH_COOPERATIVE, 0);

    /* occupancy of clusters: 8 blocks of 256 per SM (the fake), 132 SMs */
    at[0].value.clusterDim.y = 1;
    at[0].value.clusterDim.z = 1;
    memset(&cfg, 0, sizeof(cfg));
    cfg.gridDimX = cfg.gridDimY = cfg.gridDimZ = 1;
    cfg.blockDimX = 256;
    cfg.blockDimY = cfg.blockDimZ = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    assert_int_equal(cuOccupancyMaxActiveClusters(&v, f, &cfg), CUDA_SUCCESS);
    assert_int_equal(v, 8 * 132 / 2);
    assert_int_equal(cuOccupancyMaxPotentialClusterSize(&v, f, &cfg), CUDA_SUCCESS);
    assert_int_equal(v, 8);
    assert_int_equal(cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH, f),
                     CUDA_SUCCESS);
    assert_int_equal(v, 0);
    assert_int_equal(cuModuleUnload(mod), CUDA_SUCCESS);
}

/* Tensor maps: encoded by the host, its bytes in the caller's map; the
 * address replaced by encoding the kept request again. */
static void test_tensor_map(void **state)
{
    const cuuint64_t dim[5] = { 64, 32, 4, 4, 4 };
    const cuuint64_t strides[4] = { 256, 8192, 32768, 131072 };
    const cuuint32_t box[5] = { 16, 8, 1, 1, 1 }, es[5] = { 1, 1, 1, 1, 1 };
    const int lo[3] = { 0, 0, 0 }, hi[3] = { 1, 1, 1 };
    CUtensorMap m, m2, other;
    CUdeviceptr d;
    uint32_t n;

    (void)state;
    assert_int_equal(cuMemAlloc(&d, 1u << 20), CUDA_SUCCESS);
    memset(&m, 0xee, sizeof(m));
    assert_int_equal(cuTensorMapEncodeTiled(&m, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, (void *)d, dim,
                                            strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                            CU_TENSOR_MAP_SWIZZLE_128B,
                                            CU_TENSOR_MAP_L2_PROMOTION_NONE,
                                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE), CUDA_SUCCESS);
    assert_true(m.opaque[0] == d);
    assert_int_equal(m.opaque[1], 2);
    assert_int_equal(m.opaque[2], 64);
    assert_int_equal(m.opaque[3], 16);
    assert_true(m.opaque[15] == 0x766770752d746d61ull);

    /* refused here: a rank the request cannot hold, missing arrays */
    n = fake_tensor_maps();
    assert_int_equal(cuTensorMapEncodeTiled(&m2, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 9, (void *)d,
                                            dim, strides, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                            CU_TENSOR_MAP_SWIZZLE_NONE,
                                            CU_TENSOR_MAP_L2_PROMOTION_NONE,
                                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(cuTensorMapEncodeTiled(&m2, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 2, (void *)d,
                                            dim, NULL, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE,
                                            CU_TENSOR_MAP_SWIZZLE_NONE,
                                            CU_TENSOR_MAP_L2_PROMOTION_NONE,
                                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(cuTensorMapEncodeIm2col(&m2, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, (void *)d,
                                             dim, strides, lo, hi, 8, 16, es,
                                             CU_TENSOR_MAP_INTERLEAVE_NONE,
                                             CU_TENSOR_MAP_SWIZZLE_NONE,
                                             CU_TENSOR_MAP_L2_PROMOTION_NONE,
                                             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE),
                     CUDA_ERROR_INVALID_VALUE);
    assert_int_equal(fake_tensor_maps(), n);

    assert_int_equal(cuTensorMapEncodeIm2col(&m2, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4, (void *)d,
                                             dim, strides, lo, hi, 8, 16, es,
                                             CU_TENSOR_MAP_INTERLEAVE_NONE,
                                             CU_TENSOR_MAP_SWIZZLE_NONE,
                                             CU_TENSOR_MAP_L2_PROMOTION_NONE,
                                             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE), CUDA_SUCCESS);
    assert_int_equal(m2.opaque[1], 4 | VGPU_CU_TENSOR_MAP_IM2COL << 8);
    assert_true(m2.opaque[3] >> 32 == 16);

    /* another address: the same map otherwise, and again from the new one */
    assert_int_equal(cuTensorMapReplaceAddress(&m, (void *)(d + 4096)), CUDA_SUCCESS);
    assert_true(m.opaque[0] == d + 4096);
    assert_int_equal(m.opaque[2], 64);
    assert_int_equal(cuTensorMapReplaceAddress(&m, (void *)(d + 8192)), CUDA_SUCCESS);
    assert_true(m.opaque[0] == d + 8192);
    assert_int_equal(cuTensorMapReplaceAddress(&m2, (void *)(d + 4096)), CUDA_SUCCESS);
    assert_int_equal(m2.opaque[1], 4 | VGPU_CU_TENSOR_MAP_IM2COL << 8);
    memset(&other, 0x5a, sizeof(other));                 /* not ours */
    assert_int_equal(cuTensorMapReplaceAddress(&other, (void *)d), CUDA_ERROR_NOT_SUPPORTED);
    assert_int_equal(cuMemFree(d), CUDA_SUCCESS);
}

static void test_ctx_limits(void **state)
{
    size_t v = 0;

    (void)state;
    assert_int_equal(cuCtxGetLimit(&v, CU_LIMIT_STACK_SIZE), CUDA_SUCCESS);
    assert_int_equal(v, 1024);
    assert_int_equal(cuCtxSetLimit(CU_LIMIT_STACK_SIZE, 1000), CUDA_SUCCESS);
    assert_int_equal(cuCtxGetLimit(&v, CU_LIMIT_STACK_SIZE), CUDA_SUCCESS);
    assert_int_equal(v, 1008);                           /* as the host rounded it */
    assert_int_equal(cuCtxSetLimit(CU_LIMIT_MALLOC_HEAP_SIZE, 64u << 20), CUDA_SUCCESS);
    assert_int_equal(cuCtxGetLimit(&v, CU_LIMIT_MALLOC_HEAP_SIZE), CUDA_SUCCESS);
    assert_int_equal(v, 64u << 20);
    assert_int_equal(cuCtxGetLimit(&v, CU_LIMIT_MAX), CUDA_ERROR_UNSUPPORTED_LIMIT);
    assert_int_equal(cuCtxSetLimit((CUlimit)99, 1), CUDA_ERROR_UNSUPPORTED_LIMIT);
    assert_int_equal(cuCtxGetLimit(NULL, CU_LIMIT_STACK_SIZE), CUDA_ERROR_INVALID_VALUE);
}

static void host_fn(void *p)
{
    (*(int *)p)++;
}

struct slow_fn {
    pthread_t caller;
    int on_other_thread;
    volatile int done;
};

static void slow_host_fn(void *p)
{
    struct slow_fn *s = p;

    s->on_other_thread = !pthread_equal(pthread_self(), s->caller);
    usleep(100 * 1000);
    s->done = 1;
}

/* A host function runs on a thread of the library once the stream reaches
 * it; the stream's later work waits for it, other streams' does not. */
static void test_host_fn_order(void **state)
{
    static const char ptx[] = ".version 8.0\n.target sm_90\n";
    struct slow_fn s = { pthread_self(), 0, 0 };
    CUstream st, other;
    CUmodule mod;
    CUfunction f;
    char c = 0;
    double d = 0;
    int i = 0;
    short *p = NULL, sh = 0;
    float fl = 0;
    void *args[] = { &c, &d, &i, &p, &sh, &fl };

    (void)state;
    assert_int_equal(cuModuleLoadData(&mod, ptx), CUDA_SUCCESS);
    assert_int_equal(cuModuleGetFunction(&f, mod, "_Z5mixedcdiPssf"), CUDA_SUCCESS);
    assert_int_equal(cuStreamCreate(&st, 0), CUDA_SUCCESS);
    assert_int_equal(cuStreamCreate(&other, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
    assert_int_equal(cuLaunchHostFunc(st, slow_host_fn, &s), CUDA_SUCCESS);
    assert_int_equal(s.done, 0);                       /* asynchronous */
    assert_int_equal(cuStreamQuery(st), CUDA_ERROR_NOT_READY);
    assert_int_equal(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, other, args, NULL), CUDA_SUCCESS);
    assert_int_equal(s.done, 0);                       /* not gated */
    assert_int_equal(cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, st, args, NULL), CUDA_SUCCESS);
    assert_int_equal(s.done, 1);                       /* after the function */
    assert_true(s.on_other_thread);
    assert_int_equal(cuStreamQuery(st), CUDA_SUCCESS);
    s.done = 0;
    assert_int_equal(cuLaunchHostFunc(st, slow_host_fn, &s), CUDA_SUCCESS);
    assert_int_equal(cuCtxSynchronize(), CUDA_SUCCESS);
    assert_int_equal(s.done, 1);
    assert_int_equal(cuStreamDestroy(st), CUDA_SUCCESS);
    assert_int_equal(cuStreamDestroy(other), CUDA_SUCCESS);
    assert_int_equal(cuModuleUnload(mod), CUDA_SUCCESS);
}

static void test_contexts_and_host_fn(void **state)
{
    CUcontext c2, cur;
    int ran = 0;
    CUevent e1, e2;
    float ms = -1;

    (void)state;
    assert_int_equal(cuCtxCreate(&c2, NULL, 0, 0), CUDA_SUCCESS);
    assert_int_equal(cuCtxGetCurrent(&cur), CUDA_SUCCESS);
    assert_ptr_equal(cur, c2);
    assert_int_equal(cuCtxPopCurrent(&cur), CUDA_SUCCESS);
    assert_ptr_equal(cur, c2);
    assert_int_equal(cuCtxGetCurrent(&cur), CUDA_SUCCESS);
    assert_ptr_equal(cur, ctx);
    assert_int_equal(cuCtxDestroy(c2), CUDA_SUCCESS);

    assert_int_equal(cuLaunchHostFunc(NULL, host_fn, &ran), CUDA_SUCCESS);
    assert_int_equal(cuStreamSynchronize(NULL), CUDA_SUCCESS);
    assert_int_equal(ran, 1);
    assert_int_equal(cuEventCreate(&e1, 0), CUDA_SUCCESS);
    assert_int_equal(cuEventCreate(&e2, 0), CUDA_SUCCESS);
    assert_int_equal(cuEventRecord(e1, NULL), CUDA_SUCCESS);
    assert_int_equal(cuEventRecord(e2, CU_STREAM_PER_THREAD), CUDA_SUCCESS);
    assert_int_equal(cuEventSynchronize(e2), CUDA_SUCCESS);
    assert_int_equal(cuEventElapsedTime(&ms, e1, e2), CUDA_SUCCESS);
    assert_true(ms == 0.5f);
    assert_int_equal(cuEventDestroy(e1), CUDA_SUCCESS);
    assert_int_equal(cuEventDestroy(e2), CUDA_SUCCESS);
}

/* Images larger than libvgpu's staging ring go through pinned memory; one
 * larger than the shared memory is a clean out-of-memory. */
static void test_big_image(void **state)
{
    size_t n = 6u << 20;
    char *img = malloc(32u << 20);
    CUmodule mod;

    (void)state;
    assert_non_null(img);
    memset(img, ' ', n);
    memcpy(img, ".version 8.0", 12);
    img[n] = '\0';
    assert_int_equal(cuModuleLoadData(&mod, img), CUDA_SUCCESS);
    assert_int_equal(cuModuleUnload(mod), CUDA_SUCCESS);
    memset(img, ' ', 32u << 20);
    memcpy(img, ".version 8.0", 12);
    img[(32u << 20) - 1] = '\0';
    assert_int_equal(cuModuleLoadData(&mod, img), CUDA_ERROR_OUT_OF_MEMORY);
    free(img);
}

/* The per-thread default stream: a host stream per thread, also what the
 * NULL stream means in the _ptsz entry points; the legacy stream is 0. */
static CUfunction ptds_f;
static uint32_t ptds_other;

static void *ptds_thread(void *arg)
{
    (void)arg;
    cuCtxSetCurrent(ctx);
    if (cuLaunchKernel(ptds_f, 1, 1, 1, 1, 1, 1, 0, CU_STREAM_PER_THREAD, NULL, NULL)) {
        return (void *)1;
    }
    ptds_other = fake_last_stream();
    return NULL;
}

extern CUresult s_ptsz_launch(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void **, void **)
    __asm__("cuLaunchKernel_ptsz");

static void test_per_thread_stream(void **state)
{
    static const char ptx[] = ".version 8.0\n.target sm_90\n";
    CUmodule mod;
    uint32_t mine;
    pthread_t t;
    void *r;

    (void)state;
    assert_int_equal(cuModuleLoadData(&mod, ptx), CUDA_SUCCESS);
    assert_int_equal(cuModuleGetFunction(&ptds_f, mod, "_Z4nopsv"), CUDA_SUCCESS);
    assert_int_equal(cuLaunchKernel(ptds_f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL), CUDA_SUCCESS);
    assert_int_equal(fake_last_stream(), 0);
    assert_int_equal(cuLaunchKernel(ptds_f, 1, 1, 1, 1, 1, 1, 0, CU_STREAM_PER_THREAD, NULL, NULL),
                     CUDA_SUCCESS);
    mine = fake_last_stream();
    assert_int_not_equal(mine, 0);
    assert_int_equal(s_ptsz_launch(ptds_f, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL), CUDA_SUCCESS);
    assert_int_equal(fake_last_stream(), mine);
    assert_int_equal(cuLaunchKernel(ptds_f, 1, 1, 1, 1, 1, 1, 0, CU_STREAM_LEGACY, NULL, NULL),
                     CUDA_SUCCESS);
    assert_int_equal(fake_last_stream(), 0);
    assert_int_equal(pthread_create(&t, NULL, ptds_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &r), 0);
    assert_null(r);
    assert_int_not_equal(ptds_other, 0);
    assert_int_not_equal(ptds_other, mine);
    assert_int_equal(cuStreamSynchronize(CU_STREAM_PER_THREAD), CUDA_SUCCESS);
    assert_int_equal(cuModuleUnload(mod), CUDA_SUCCESS);
}

/* A forked child of an initialised process gets clean errors, never the
 * parent's rings. */
static void test_fork(void **state)
{
    int status = -1;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        CUdeviceptr d;
        int n = -1;

        _exit(cuMemAlloc(&d, 16) == CUDA_ERROR_NOT_INITIALIZED &&
              cuDeviceGetCount(&n) == CUDA_ERROR_NOT_INITIALIZED ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Several threads, each its own buffers and stream, through the one lock. */
static void *thread_body(void *arg)
{
    static const char ptx[] = ".version 8.0\n.target sm_90\n";
    enum { N = 512 };
    float a[N], b[N], c[N];
    CUdeviceptr da, db, dc;
    CUmodule mod;
    CUfunction f;
    CUstream st;
    int n = N, seed = (int)(intptr_t)arg, bad = 0;

    if (cuCtxSetCurrent(ctx) || cuModuleLoadData(&mod, ptx) ||
        cuModuleGetFunction(&f, mod, "_Z4vaddPKfS0_Pfi") || cuStreamCreate(&st, 0) ||
        cuMemAlloc(&da, sizeof(a)) || cuMemAlloc(&db, sizeof(b)) || cuMemAlloc(&dc, sizeof(c))) {
        return (void *)1;
    }
    for (int it = 0; it < 200 && !bad; it++) {
        void *args[] = { &da, &db, &dc, &n };

        for (int i = 0; i < N; i++) {
            a[i] = (float)(i + seed);
            b[i] = (float)it;
        }
        if (cuMemcpyHtoDAsync(da, a, sizeof(a), st) || cuMemcpyHtoDAsync(db, b, sizeof(b), st) ||
            cuLaunchKernel(f, N / 128, 1, 1, 128, 1, 1, 0, st, args, NULL) ||
            cuMemcpyDtoHAsync(c, dc, sizeof(c), st) || cuStreamSynchronize(st)) {
            bad = 1;
        }
        for (int i = 0; i < N && !bad; i++) {
            bad = c[i] != (float)(i + seed + it);
        }
    }
    cuMemFree(da);
    cuMemFree(db);
    cuMemFree(dc);
    cuStreamDestroy(st);
    cuModuleUnload(mod);
    return (void *)(intptr_t)bad;
}

static void test_threads(void **state)
{
    pthread_t t[4];
    void *r;

    (void)state;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, thread_body, (void *)(intptr_t)(i * 1000)), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], &r), 0);
        assert_null(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proc_address),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_md2_and_tables),
        cmocka_unit_test(test_image_size),
        cmocka_unit_test(test_device),
        cmocka_unit_test(test_param_marshalling),
        cmocka_unit_test(test_async_error),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_launch_attrs),
        cmocka_unit_test(test_tensor_map),
        cmocka_unit_test(test_ctx_limits),
        cmocka_unit_test(test_contexts_and_host_fn),
        cmocka_unit_test(test_host_fn_order),
        cmocka_unit_test(test_per_thread_stream),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_fork),
        cmocka_unit_test(test_big_image),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
