/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * A CPU stand-in for the CUDA driver API entry points that the driver
 * operations (mediator/cuda/cu_ops.c) use, handed out by the runtime's
 * cudaGetDriverEntryPointByVersion as the real runtime does. With
 * mock_cudart.c it lets CI run the whole path of a guest's own kernels --
 * mediator, proxy, per-VM worker process, handle tables, range checks --
 * on a machine without a GPU. It proves nothing about the GPU itself;
 * bench/gpu-run.sh runs the same tests on real hardware with real PTX.
 *
 * What it models:
 *   - contexts: the primary one and created ones; every object remembers
 *     its context, and using it while another is current is a misuse
 *     (vgpu_mock_misuses()), as is a device range outside every allocation;
 *   - device memory is malloc'ed and filled with 0xa5, so a missing zeroing
 *     by the engine shows; addresses are the host addresses;
 *   - a module image is text: "VGPU-MOCK-MODULE\n", then lines
 *     "func NAME SIZE,SIZE,..." (parameter sizes; each aligned to its size)
 *     and "global NAME BYTES". Anything else is CUDA_ERROR_INVALID_IMAGE.
 *     Kernels run at launch, by name: vadd, fill_u32, mixed, fault, spin,
 *     bump (adds its argument to the global g_counter), anything else does
 *     nothing;
 *   - "fault" makes every later call fail with CUDA_ERROR_ILLEGAL_ADDRESS
 *     (sticky; the launch itself succeeds, as an asynchronous one does);
 *     "spin" keeps its stream (and the default one) busy for its argument
 *     in nanoseconds.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "mock_cudart.h"

#define MOCK_MAGIC      "VGPU-MOCK-MODULE\n"
#define MOCK_MAX_FUNCS  32
#define MOCK_MAX_PARAMS 16
#define MOCK_MAX_ALLOCS 4096

struct CUctx_st {
    bool primary;
    bool live;
};

struct CUmod_st;

struct mock_func {
    struct CUmod_st *mod;
    char     name[64];
    unsigned nparams;
    size_t   off[MOCK_MAX_PARAMS];
    size_t   size[MOCK_MAX_PARAMS];
    int      attr_max_dyn_shared;
};

struct mock_global {
    char     name[64];
    uint8_t *p;
    size_t   bytes;
};

struct CUmod_st {
    struct CUctx_st *ctx;
    unsigned nfuncs, nglobals;
    struct mock_func funcs[MOCK_MAX_FUNCS];
    struct mock_global globals[MOCK_MAX_FUNCS];
};

struct CUstream_st {
    struct CUctx_st *ctx;
    uint64_t busy_until_ns;
};

struct CUevent_st {
    struct CUctx_st *ctx;
    uint64_t at_ns;
    bool recorded;
};

struct mock_alloc {
    uint8_t *p;
    size_t   size;
    struct CUctx_st *ctx;
};

static pthread_mutex_t dmu = PTHREAD_MUTEX_INITIALIZER;
static struct CUctx_st primary_ctx = { .primary = true, .live = true };
static __thread struct CUctx_st *current;
static struct mock_alloc allocs[MOCK_MAX_ALLOCS];
static struct CUstream_st null_stream;     /* per process: enough for one VM's worker */
static CUresult sticky = CUDA_SUCCESS;
static unsigned drv_misuses;

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

unsigned vgpu_mock_drv_misuses(void)
{
    return __atomic_load_n(&drv_misuses, __ATOMIC_RELAXED);
}

static void drv_misuse(const char *what)
{
    __atomic_add_fetch(&drv_misuses, 1, __ATOMIC_RELAXED);
    fprintf(stderr, "mock driver: misuse: %s\n", what);
}

#define STICKY()                    \
    do {                            \
        if (sticky) {               \
            return sticky;          \
        }                           \
    } while (0)

static bool in_ctx(const struct CUctx_st *c, const char *what)
{
    if (c != current) {
        drv_misuse(what);
        return false;
    }
    return true;
}

/* true when [p, p+len) lies in one allocation of the current context, or a
 * global of a module (which the caller checks separately). */
static bool dev_ok(CUdeviceptr d, size_t len)
{
    bool ok = false;

    pthread_mutex_lock(&dmu);
    for (unsigned i = 0; i < MOCK_MAX_ALLOCS && !ok; i++) {
        const struct mock_alloc *a = &allocs[i];

        ok = a->p && a->ctx == current && d >= (uintptr_t)a->p &&
             len <= a->size && d - (uintptr_t)a->p <= a->size - len;
    }
    pthread_mutex_unlock(&dmu);
    return ok;
}

/* ---- device, contexts ---- */

CUresult CUDAAPI cuDeviceGet(CUdevice *device, int ordinal)
{
    if (ordinal != 0) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    *device = 0;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev)
{
    (void)dev;
    switch (attrib) {
    case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK:      *pi = 1024; break;
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:       *pi = 4; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR:   *pi = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR:   *pi = 0; break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE:                  *pi = 32; break;
    default:
        if (attrib <= 0 || attrib >= CU_DEVICE_ATTRIBUTE_MAX) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        *pi = 1;
        break;
    }
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetName(char *name, int len, CUdevice dev)
{
    (void)dev;
    snprintf(name, (size_t)len, "vgpu mock GPU");
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
    (void)dev;
    memset(uuid->bytes, 0x42, sizeof(uuid->bytes));
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDeviceTotalMem(size_t *bytes, CUdevice dev)
{
    (void)dev;
    *bytes = 16ull << 30;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDriverGetVersion(int *v)
{
    *v = CUDA_VERSION;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    (void)dev;
    STICKY();
    *pctx = &primary_ctx;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice dev)
{
    (void)dev;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxCreate(CUcontext *pctx, CUctxCreateParams *params, unsigned int flags,
                             CUdevice dev)
{
    struct CUctx_st *c;

    (void)params;
    (void)flags;
    (void)dev;
    STICKY();
    c = calloc(1, sizeof(*c));
    if (!c) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    c->live = true;
    current = c;
    *pctx = c;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxDestroy(CUcontext ctx)
{
    pthread_mutex_lock(&dmu);
    for (unsigned i = 0; i < MOCK_MAX_ALLOCS; i++) {
        if (allocs[i].p && allocs[i].ctx == ctx) {
            drv_misuse("context destroyed with memory left: the engine frees it first");
            free(allocs[i].p);
            allocs[i].p = NULL;
        }
    }
    pthread_mutex_unlock(&dmu);
    if (current == ctx) {
        current = NULL;
    }
    if (ctx && !ctx->primary) {
        ctx->live = false;
        free(ctx);
    }
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx)
{
    current = ctx;
    return CUDA_SUCCESS;
}

/* ---- memory ---- */

CUresult CUDAAPI cuMemAlloc(CUdeviceptr *dptr, size_t bytes)
{
    STICKY();
    pthread_mutex_lock(&dmu);
    for (unsigned i = 0; i < MOCK_MAX_ALLOCS; i++) {
        if (!allocs[i].p) {
            allocs[i].p = malloc(bytes);
            if (!allocs[i].p) {
                pthread_mutex_unlock(&dmu);
                return CUDA_ERROR_OUT_OF_MEMORY;
            }
            memset(allocs[i].p, 0xa5, bytes);   /* "someone's old data" */
            allocs[i].size = bytes;
            allocs[i].ctx = current;
            *dptr = (uintptr_t)allocs[i].p;
            pthread_mutex_unlock(&dmu);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&dmu);
    return CUDA_ERROR_OUT_OF_MEMORY;
}

CUresult CUDAAPI cuMemFree(CUdeviceptr d)
{
    pthread_mutex_lock(&dmu);
    for (unsigned i = 0; i < MOCK_MAX_ALLOCS; i++) {
        if (allocs[i].p && (uintptr_t)allocs[i].p == d) {
            if (allocs[i].ctx != current) {
                drv_misuse("cuMemFree in another context");
            }
            free(allocs[i].p);
            allocs[i].p = NULL;
            pthread_mutex_unlock(&dmu);
            return CUDA_SUCCESS;
        }
    }
    pthread_mutex_unlock(&dmu);
    drv_misuse("cuMemFree of an unknown pointer");
    return CUDA_ERROR_INVALID_VALUE;
}

CUresult CUDAAPI cuMemGetInfo(size_t *free_b, size_t *total)
{
    STICKY();
    *total = 16ull << 30;
    *free_b = 15ull << 30;
    return CUDA_SUCCESS;
}

/* A device range of an allocation or of a global of a live module. */
static bool dev_range(CUdeviceptr d, size_t len, const char *what)
{
    if (!dev_ok(d, len)) {
        /* Globals live in module memory; the engine tracks them, the mock
         * trusts it for those (they are malloc'ed with the module). */
        if (len == 0 || d < 4096) {
            drv_misuse(what);
            return false;
        }
    }
    return true;
}

static CUresult memset_n(CUdeviceptr d, unsigned v, size_t n, size_t es, CUstream s)
{
    STICKY();
    if (s && !in_ctx(s->ctx, "memset on a stream of another context")) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!dev_range(d, n * es, "memset outside device memory")) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy((uint8_t *)d + i * es, &v, es);
    }
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemsetD8Async(CUdeviceptr d, unsigned char uc, size_t n, CUstream s)
{
    return memset_n(d, uc, n, 1, s);
}

CUresult CUDAAPI cuMemsetD16Async(CUdeviceptr d, unsigned short us, size_t n, CUstream s)
{
    return memset_n(d, us, n, 2, s);
}

CUresult CUDAAPI cuMemsetD32Async(CUdeviceptr d, unsigned int ui, size_t n, CUstream s)
{
    return memset_n(d, ui, n, 4, s);
}

static CUresult copy(void *dst, const void *src, size_t len, CUstream s)
{
    STICKY();
    if (s && !in_ctx(s->ctx, "copy on a stream of another context")) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    memmove(dst, src, len);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuMemcpyHtoDAsync(CUdeviceptr dst, const void *src, size_t len, CUstream s)
{
    if (!dev_range(dst, len, "HtoD outside device memory")) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return copy((void *)dst, src, len, s);
}

CUresult CUDAAPI cuMemcpyDtoHAsync(void *dst, CUdeviceptr src, size_t len, CUstream s)
{
    if (!dev_range(src, len, "DtoH outside device memory")) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return copy(dst, (const void *)src, len, s);
}

CUresult CUDAAPI cuMemcpyDtoDAsync(CUdeviceptr dst, CUdeviceptr src, size_t len, CUstream s)
{
    if (!dev_range(dst, len, "DtoD dst outside device memory") ||
        !dev_range(src, len, "DtoD src outside device memory")) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return copy((void *)dst, (const void *)src, len, s);
}

CUresult CUDAAPI cuMemcpy2DAsync(const CUDA_MEMCPY2D *c, CUstream s)
{
    uint8_t *d = c->dstMemoryType == CU_MEMORYTYPE_DEVICE ? (uint8_t *)c->dstDevice
                                                         : (uint8_t *)c->dstHost;
    const uint8_t *src = c->srcMemoryType == CU_MEMORYTYPE_DEVICE ? (const uint8_t *)c->srcDevice
                                                                 : (const uint8_t *)c->srcHost;
    CUresult r = CUDA_SUCCESS;

    for (size_t row = 0; row < c->Height && r == CUDA_SUCCESS; row++) {
        r = copy(d + row * c->dstPitch, src + row * c->srcPitch, c->WidthInBytes, s);
    }
    return r;
}

/* ---- modules ---- */

CUresult CUDAAPI cuModuleLoadData(CUmodule *module, const void *image)
{
    const char *p = image;
    struct CUmod_st *m;

    STICKY();
    if (strncmp(p, MOCK_MAGIC, strlen(MOCK_MAGIC)) != 0) {
        return CUDA_ERROR_INVALID_IMAGE;
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    m->ctx = current;
    p += strlen(MOCK_MAGIC);
    while (*p) {
        char kind[16], name[64], spec[256];
        int used = 0;

        if (sscanf(p, "%15s %63s %255s%n", kind, name, spec, &used) != 3) {
            goto bad;
        }
        p += used;
        while (*p == '\n' || *p == ' ') {
            p++;
        }
        if (strcmp(kind, "func") == 0 && m->nfuncs < MOCK_MAX_FUNCS) {
            struct mock_func *f = &m->funcs[m->nfuncs++];
            size_t off = 0;
            char *tok, *save = NULL;

            f->mod = m;
            snprintf(f->name, sizeof(f->name), "%s", name);
            for (tok = strtok_r(spec, ",", &save); tok && strcmp(tok, "-") != 0;
                 tok = strtok_r(NULL, ",", &save)) {
                size_t sz = strtoul(tok, NULL, 10);

                if (sz == 0 || sz > 256 || f->nparams == MOCK_MAX_PARAMS) {
                    goto bad;
                }
                off = (off + (sz < 8 ? sz : 8) - 1) / (sz < 8 ? sz : 8) * (sz < 8 ? sz : 8);
                f->off[f->nparams] = off;
                f->size[f->nparams++] = sz;
                off += sz;
            }
        } else if (strcmp(kind, "global") == 0 && m->nglobals < MOCK_MAX_FUNCS) {
            struct mock_global *g = &m->globals[m->nglobals++];

            snprintf(g->name, sizeof(g->name), "%s", name);
            g->bytes = strtoul(spec, NULL, 10);
            g->p = calloc(1, g->bytes ? g->bytes : 1);
            if (!g->p) {
                goto bad;
            }
        } else {
            goto bad;
        }
    }
    *module = m;
    return CUDA_SUCCESS;
bad:
    for (unsigned i = 0; i < m->nglobals; i++) {
        free(m->globals[i].p);
    }
    free(m);
    return CUDA_ERROR_INVALID_IMAGE;
}

CUresult CUDAAPI cuModuleUnload(CUmodule m)
{
    if (!in_ctx(m->ctx, "module unloaded in another context")) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    for (unsigned i = 0; i < m->nglobals; i++) {
        free(m->globals[i].p);
    }
    free(m);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuModuleGetFunction(CUfunction *hfunc, CUmodule m, const char *name)
{
    STICKY();
    if (!in_ctx(m->ctx, "function looked up in another context")) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    for (unsigned i = 0; i < m->nfuncs; i++) {
        if (strcmp(m->funcs[i].name, name) == 0) {
            *hfunc = (CUfunction)&m->funcs[i];
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_NOT_FOUND;
}

CUresult CUDAAPI cuModuleGetGlobal(CUdeviceptr *dptr, size_t *bytes, CUmodule m, const char *name)
{
    STICKY();
    for (unsigned i = 0; i < m->nglobals; i++) {
        if (strcmp(m->globals[i].name, name) == 0) {
            *dptr = (uintptr_t)m->globals[i].p;
            *bytes = m->globals[i].bytes;
            return CUDA_SUCCESS;
        }
    }
    return CUDA_ERROR_NOT_FOUND;
}

CUresult CUDAAPI cuFuncGetParamInfo(CUfunction func, size_t i, size_t *off, size_t *size)
{
    const struct mock_func *f = (const void *)func;

    if (i >= f->nparams) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *off = f->off[i];
    *size = f->size[i];
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuFuncGetAttribute(int *pi, CUfunction_attribute attrib, CUfunction func)
{
    const struct mock_func *f = (const void *)func;

    switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK:       *pi = 1024; break;
    case CU_FUNC_ATTRIBUTE_NUM_REGS:                    *pi = 16; break;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *pi = f->attr_max_dyn_shared; break;
    default:                                            *pi = 0; break;
    }
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuFuncSetAttribute(CUfunction func, CUfunction_attribute attrib, int value)
{
    struct mock_func *f = (void *)func;

    if (attrib != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES || value < 0 ||
        value > 227 * 1024) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    f->attr_max_dyn_shared = value;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuOccupancyMaxActiveBlocksPerMultiprocessor(int *n, CUfunction f, int bs,
                                                            size_t dyn)
{
    (void)f;
    (void)dyn;
    *n = bs > 0 ? 2048 / bs : 0;
    return CUDA_SUCCESS;
}

/* ---- launches ---- */

static const void *param(const struct mock_func *f, const uint8_t *buf, unsigned i)
{
    return buf + f->off[i];
}

CUresult CUDAAPI cuLaunchKernel(CUfunction func, unsigned gx, unsigned gy, unsigned gz,
                                unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                                CUstream s, void **kernel_params, void **extra)
{
    const struct mock_func *f = (const void *)func;
    const uint8_t *buf = NULL;
    size_t len = 0;
    uint64_t threads = (uint64_t)gx * gy * gz * bx * by * bz;

    (void)shmem;
    STICKY();
    if (kernel_params) {
        drv_misuse("the engine passes parameters as one buffer");
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (s && !in_ctx(s->ctx, "launch on a stream of another context")) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    for (unsigned i = 0; extra && extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
        if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) {
            buf = extra[i + 1];
        } else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE) {
            len = *(size_t *)extra[i + 1];
        }
    }
    if (f->nparams && (!buf || len < f->off[f->nparams - 1] + f->size[f->nparams - 1])) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (strcmp(f->name, "vadd") == 0) {
        const float *a, *b;
        float *c;
        int n;

        memcpy(&a, param(f, buf, 0), 8);
        memcpy(&b, param(f, buf, 1), 8);
        memcpy(&c, param(f, buf, 2), 8);
        memcpy(&n, param(f, buf, 3), 4);
        if (n > 0 && (!dev_range((uintptr_t)a, (size_t)n * 4, "vadd a") ||
                      !dev_range((uintptr_t)b, (size_t)n * 4, "vadd b") ||
                      !dev_range((uintptr_t)c, (size_t)n * 4, "vadd c"))) {
            sticky = CUDA_ERROR_ILLEGAL_ADDRESS;
            return CUDA_SUCCESS;
        }
        for (int i = 0; i < n && (uint64_t)i < threads; i++) {
            c[i] = a[i] + b[i];
        }
    } else if (strcmp(f->name, "fill_u32") == 0) {
        uint32_t *p, v;
        uint64_t n;

        memcpy(&p, param(f, buf, 0), 8);
        memcpy(&v, param(f, buf, 1), 4);
        memcpy(&n, param(f, buf, 2), 8);
        if (!dev_range((uintptr_t)p, n * 4, "fill_u32")) {
            sticky = CUDA_ERROR_ILLEGAL_ADDRESS;
            return CUDA_SUCCESS;
        }
        for (uint64_t i = 0; i < n; i++) {
            p[i] = v;
        }
    } else if (strcmp(f->name, "mixed") == 0) {
        char c;
        double d;
        short sh;
        int i;
        float *out;

        memcpy(&c, param(f, buf, 0), 1);
        memcpy(&d, param(f, buf, 1), 8);
        memcpy(&sh, param(f, buf, 2), 2);
        memcpy(&i, param(f, buf, 3), 4);
        memcpy(&out, param(f, buf, 4), 8);
        if (!dev_range((uintptr_t)out, 16, "mixed out")) {
            sticky = CUDA_ERROR_ILLEGAL_ADDRESS;
            return CUDA_SUCCESS;
        }
        out[0] = (float)c;
        out[1] = (float)d;
        out[2] = (float)sh;
        out[3] = (float)i;
    } else if (strcmp(f->name, "fault") == 0) {
        sticky = CUDA_ERROR_ILLEGAL_ADDRESS;
    } else if (strcmp(f->name, "bump") == 0) {
        uint32_t add;

        memcpy(&add, param(f, buf, 0), 4);
        for (unsigned i = 0; i < f->mod->nglobals; i++) {
            if (strcmp(f->mod->globals[i].name, "g_counter") == 0) {
                uint32_t v;

                memcpy(&v, f->mod->globals[i].p, 4);
                v += add;
                memcpy(f->mod->globals[i].p, &v, 4);
            }
        }
    } else if (strcmp(f->name, "spin") == 0) {
        uint64_t ns;

        memcpy(&ns, param(f, buf, 0), 8);
        (s ? s : &null_stream)->busy_until_ns = mono_ns() + ns;
        null_stream.busy_until_ns = mono_ns() + ns;
    }
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuLaunchKernelEx(const CUlaunchConfig *c, CUfunction f, void **params,
                                  void **extra)
{
    for (unsigned i = 0; i < c->numAttrs; i++) {
        if (c->attrs[i].id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION &&
            (c->gridDimX % c->attrs[i].value.clusterDim.x ||
             c->gridDimY % c->attrs[i].value.clusterDim.y ||
             c->gridDimZ % c->attrs[i].value.clusterDim.z)) {
            return CUDA_ERROR_INVALID_CLUSTER_SIZE;  /* the grid must be whole clusters */
        }
    }
    return cuLaunchKernel(f, c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX, c->blockDimY,
                          c->blockDimZ, c->sharedMemBytes, c->hStream, params, extra);
}

/* The descriptor's format is the driver's; the mock's: the address, the
 * rank and the first dimension, to show what reached it. */
static CUresult mock_tensor_map(CUtensorMap *m, cuuint32_t rank, void *addr,
                                const cuuint64_t *dim)
{
    STICKY();
    if (!dev_range((uintptr_t)addr, 1, "tensor map over no device memory")) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    memset(m, 0, sizeof(*m));
    memcpy(m->opaque, &addr, sizeof(addr));
    m->opaque[1] = rank;
    m->opaque[2] = dim[0];
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuTensorMapEncodeTiled(CUtensorMap *m, CUtensorMapDataType t, cuuint32_t rank,
                                        void *addr, const cuuint64_t *dim,
                                        const cuuint64_t *strides, const cuuint32_t *box,
                                        const cuuint32_t *estrides, CUtensorMapInterleave il,
                                        CUtensorMapSwizzle sw, CUtensorMapL2promotion l2,
                                        CUtensorMapFloatOOBfill oob)
{
    (void)t, (void)strides, (void)box, (void)estrides, (void)il, (void)sw, (void)l2, (void)oob;
    return mock_tensor_map(m, rank, addr, dim);
}

CUresult CUDAAPI cuTensorMapEncodeIm2col(CUtensorMap *m, CUtensorMapDataType t, cuuint32_t rank,
                                         void *addr, const cuuint64_t *dim,
                                         const cuuint64_t *strides, const int *lo, const int *hi,
                                         cuuint32_t cpp, cuuint32_t ppc,
                                         const cuuint32_t *estrides, CUtensorMapInterleave il,
                                         CUtensorMapSwizzle sw, CUtensorMapL2promotion l2,
                                         CUtensorMapFloatOOBfill oob)
{
    (void)t, (void)strides, (void)lo, (void)hi, (void)cpp, (void)ppc, (void)estrides;
    (void)il, (void)sw, (void)l2, (void)oob;
    return mock_tensor_map(m, rank, addr, dim);
}

static size_t limits[16];

CUresult CUDAAPI cuCtxSetLimit(CUlimit limit, size_t value)
{
    if ((unsigned)limit >= 16) {
        return CUDA_ERROR_UNSUPPORTED_LIMIT;
    }
    limits[limit] = value;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuCtxGetLimit(size_t *value, CUlimit limit)
{
    if ((unsigned)limit >= 16) {
        return CUDA_ERROR_UNSUPPORTED_LIMIT;
    }
    *value = limits[limit] ? limits[limit] : 1024;
    return CUDA_SUCCESS;
}

/* ---- streams, events ---- */

CUresult CUDAAPI cuStreamCreateWithPriority(CUstream *ps, unsigned int flags, int prio)
{
    struct CUstream_st *s;

    (void)flags;
    (void)prio;
    STICKY();
    s = calloc(1, sizeof(*s));
    if (!s) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    s->ctx = current;
    *ps = s;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamDestroy(CUstream s)
{
    if (!s || !in_ctx(s->ctx, "stream destroyed in another context")) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    free(s);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamQuery(CUstream s)
{
    STICKY();
    if (s && !in_ctx(s->ctx, "stream queried in another context")) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    return mono_ns() < (s ? s : &null_stream)->busy_until_ns ? CUDA_ERROR_NOT_READY
                                                             : CUDA_SUCCESS;
}

CUresult CUDAAPI cuStreamWaitEvent(CUstream s, CUevent e, unsigned int flags)
{
    (void)flags;
    STICKY();
    if ((s && !in_ctx(s->ctx, "wait on a stream of another context")) ||
        !in_ctx(e->ctx, "wait for an event of another context")) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventCreate(CUevent *pe, unsigned int flags)
{
    struct CUevent_st *e;

    (void)flags;
    STICKY();
    e = calloc(1, sizeof(*e));
    if (!e) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    e->ctx = current;
    *pe = e;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventDestroy(CUevent e)
{
    if (!in_ctx(e->ctx, "event destroyed in another context")) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    free(e);
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventRecord(CUevent e, CUstream s)
{
    STICKY();
    if (!in_ctx(e->ctx, "event recorded in another context")) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    e->at_ns = s && s->busy_until_ns > mono_ns() ? s->busy_until_ns : mono_ns();
    e->recorded = true;
    return CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventQuery(CUevent e)
{
    STICKY();
    return mono_ns() < e->at_ns ? CUDA_ERROR_NOT_READY : CUDA_SUCCESS;
}

CUresult CUDAAPI cuEventElapsedTime(float *ms, CUevent a, CUevent b)
{
    STICKY();
    if (!a->recorded || !b->recorded) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    *ms = (float)((double)((int64_t)(b->at_ns - a->at_ns)) / 1e6);
    return CUDA_SUCCESS;
}

/* ---- the runtime's door to all of the above ---- */

#define MOCK_ENTRY(name) { #name, (void *)name },
static const struct {
    const char *name;
    void *fn;
} entries[] = {
    MOCK_ENTRY(cuDeviceGet) MOCK_ENTRY(cuDeviceGetAttribute) MOCK_ENTRY(cuDeviceGetName)
    MOCK_ENTRY(cuDeviceGetUuid) MOCK_ENTRY(cuDeviceTotalMem) MOCK_ENTRY(cuDriverGetVersion)
    MOCK_ENTRY(cuDevicePrimaryCtxRetain) MOCK_ENTRY(cuDevicePrimaryCtxRelease)
    MOCK_ENTRY(cuCtxCreate) MOCK_ENTRY(cuCtxDestroy) MOCK_ENTRY(cuCtxSetCurrent)
    MOCK_ENTRY(cuMemAlloc) MOCK_ENTRY(cuMemFree) MOCK_ENTRY(cuMemGetInfo)
    MOCK_ENTRY(cuMemsetD8Async) MOCK_ENTRY(cuMemsetD16Async) MOCK_ENTRY(cuMemsetD32Async)
    MOCK_ENTRY(cuMemcpyHtoDAsync) MOCK_ENTRY(cuMemcpyDtoHAsync) MOCK_ENTRY(cuMemcpyDtoDAsync)
    MOCK_ENTRY(cuMemcpy2DAsync)
    MOCK_ENTRY(cuModuleLoadData) MOCK_ENTRY(cuModuleUnload) MOCK_ENTRY(cuModuleGetFunction)
    MOCK_ENTRY(cuModuleGetGlobal) MOCK_ENTRY(cuFuncGetParamInfo) MOCK_ENTRY(cuFuncGetAttribute)
    MOCK_ENTRY(cuFuncSetAttribute) MOCK_ENTRY(cuLaunchKernel) MOCK_ENTRY(cuLaunchKernelEx)
    MOCK_ENTRY(cuTensorMapEncodeTiled) MOCK_ENTRY(cuTensorMapEncodeIm2col)
    MOCK_ENTRY(cuCtxSetLimit) MOCK_ENTRY(cuCtxGetLimit)
    MOCK_ENTRY(cuOccupancyMaxActiveBlocksPerMultiprocessor)
    MOCK_ENTRY(cuStreamCreateWithPriority) MOCK_ENTRY(cuStreamDestroy) MOCK_ENTRY(cuStreamQuery)
    MOCK_ENTRY(cuStreamWaitEvent) MOCK_ENTRY(cuEventCreate) MOCK_ENTRY(cuEventDestroy)
    MOCK_ENTRY(cuEventRecord) MOCK_ENTRY(cuEventQuery) MOCK_ENTRY(cuEventElapsedTime)
};

cudaError_t cudaGetDriverEntryPointByVersion(const char *symbol, void **fn, unsigned int version,
                                             unsigned long long flags,
                                             enum cudaDriverEntryPointQueryResult *status)
{
    (void)version;
    (void)flags;
    for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
        if (strcmp(entries[i].name, symbol) == 0) {
            *fn = entries[i].fn;
            if (status) {
                *status = cudaDriverEntryPointSuccess;
            }
            return cudaSuccess;
        }
    }
    *fn = NULL;
    if (status) {
        *status = cudaDriverEntryPointSymbolNotFound;
    }
    return cudaSuccess;
}
