/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * A CPU stand-in for the parts of the CUDA runtime, the vgpu kernels and
 * cuBLAS that the engine (mediator/cuda/engine.c, ops/) uses, so that
 * test_cuda.c can run the engine's host logic (pools, quota, staging,
 * deadlines, poisoning) on a machine without a GPU. It proves nothing about
 * the GPU itself; bench/gpu-run.sh runs the same test on real hardware.
 *
 * What it models, deliberately strictly:
 *   - "device" memory is malloc'ed; cudaFree keeps freed blocks and hands
 *     them out again uncleared (as a driver may), so a missing scrub shows;
 *   - copies and kernels run synchronously at enqueue time (the driver
 *     operations' "fault" and "spin" kernels are mock_cudadrv.c's);
 *   - cudaDeviceReset invalidates every allocation, registration, stream and
 *     cuBLAS handle; any later use of one counts as a misuse
 *     (vgpu_mock_misuses()), as does a double registration or a copy from a
 *     host range that is neither registered nor pinned into device memory
 *     that was never allocated.
 */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "cublas_loader.h"
#include "kernels.h"
#include "mock_cudart.h"

#define MAX_ALLOCS 4096
#define MAX_REGS   256

struct alloc {
    uint8_t *p;
    size_t   size;
    bool     live;
    bool     host;        /* cudaMallocHost */
};

struct mock_stream {
    uint64_t gen;
    uint64_t busy_until_ns;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct alloc allocs[MAX_ALLOCS];
static struct { uint8_t *p; size_t size; } regs[MAX_REGS];
static uint64_t gen = 1;
static cudaError_t sticky = cudaSuccess;
static __thread cudaError_t last_error = cudaSuccess;
static unsigned misuses;
static unsigned resets;
static char misuse_what[160];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void misuse(const char *what)
{
    misuses++;
    snprintf(misuse_what, sizeof(misuse_what), "%s", what);
}

unsigned vgpu_mock_misuses(const char **last)
{
    unsigned n;

    pthread_mutex_lock(&mu);
    n = misuses;
    if (last) {
        *last = misuse_what;
    }
    pthread_mutex_unlock(&mu);
    return n;
}

unsigned vgpu_mock_resets(void)
{
    return __atomic_load_n(&resets, __ATOMIC_RELAXED);
}

static cudaError_t ret(cudaError_t e)
{
    if (e != cudaSuccess) {
        last_error = e;
    }
    return e;
}

/* Called with mu held. The allocation containing [p, p+len), or NULL. */
static struct alloc *find_alloc(const void *p, size_t len)
{
    const uint8_t *q = p;

    for (unsigned i = 0; i < MAX_ALLOCS; i++) {
        struct alloc *a = &allocs[i];
        if (a->live && q >= a->p && len <= a->size && (size_t)(q - a->p) <= a->size - len) {
            return a;
        }
    }
    return NULL;
}

static bool host_ok(const void *p, size_t len)
{
    const uint8_t *q = p;
    struct alloc *a = find_alloc(p, len);

    if (a && a->host) {
        return true;
    }
    for (unsigned i = 0; i < MAX_REGS; i++) {
        if (regs[i].p && q >= regs[i].p && (size_t)(q - regs[i].p) <= regs[i].size &&
            len <= regs[i].size - (size_t)(q - regs[i].p)) {
            return true;
        }
    }
    return false;
}

static bool stream_ok(cudaStream_t st)
{
    struct mock_stream *s = (struct mock_stream *)st;
    return st == NULL || s->gen == gen;
}

static cudaError_t do_alloc(void **p, size_t size, bool host)
{
    unsigned free_slot = MAX_ALLOCS;

    pthread_mutex_lock(&mu);
    if (sticky) {
        pthread_mutex_unlock(&mu);
        return ret(sticky);
    }
    if (size > (8ull << 30)) {
        pthread_mutex_unlock(&mu);
        return ret(cudaErrorMemoryAllocation);
    }
    /* Recycle a freed block of the same size, uncleared. */
    for (unsigned i = 0; i < MAX_ALLOCS; i++) {
        if (!allocs[i].live && allocs[i].p && allocs[i].size == size && allocs[i].host == host) {
            allocs[i].live = true;
            *p = allocs[i].p;
            pthread_mutex_unlock(&mu);
            return cudaSuccess;
        }
        if (!allocs[i].p && free_slot == MAX_ALLOCS) {
            free_slot = i;
        }
    }
    if (free_slot == MAX_ALLOCS) {
        /* Table full: drop the oldest freed block for good. */
        for (unsigned i = 0; i < MAX_ALLOCS; i++) {
            if (!allocs[i].live) {
                free(allocs[i].p);
                allocs[i].p = NULL;
                free_slot = i;
                break;
            }
        }
    }
    if (free_slot == MAX_ALLOCS || !(allocs[free_slot].p = malloc(size ? size : 1))) {
        pthread_mutex_unlock(&mu);
        return ret(cudaErrorMemoryAllocation);
    }
    allocs[free_slot].size = size;
    allocs[free_slot].live = true;
    allocs[free_slot].host = host;
    *p = allocs[free_slot].p;
    pthread_mutex_unlock(&mu);
    return cudaSuccess;
}

static cudaError_t do_free(void *p, bool host)
{
    pthread_mutex_lock(&mu);
    if (sticky) {
        pthread_mutex_unlock(&mu);
        return ret(sticky);
    }
    if (p) {
        struct alloc *a = find_alloc(p, 0);
        if (!a || a->p != p || a->host != host) {
            misuse(host ? "cudaFreeHost of unknown pointer" : "cudaFree of unknown pointer");
            pthread_mutex_unlock(&mu);
            return ret(cudaErrorInvalidValue);
        }
        a->live = false;
    }
    pthread_mutex_unlock(&mu);
    return cudaSuccess;
}

/* ---- device management ---- */

cudaError_t cudaGetDeviceCount(int *count)
{
    const char *e = getenv("VGPU_MOCK_GPUS");     /* several GPUs, for placement tests */

    *count = e && atoi(e) > 0 ? atoi(e) : 1;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device)
{
    (void)device;
    memset(prop, 0, sizeof(*prop));
    snprintf(prop->name, sizeof(prop->name), "mock GPU (CPU stand-in)");
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 4;
    prop->totalGlobalMem = 16ull << 30;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device)
{
    (void)attr;
    (void)device;
    *value = 1000000;
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v)
{
    *v = 13000;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *v)
{
    *v = 13000;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    (void)device;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;

    last_error = cudaSuccess;
    pthread_mutex_lock(&mu);
    if (sticky) {
        e = sticky;
    }
    pthread_mutex_unlock(&mu);
    return e;
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered (mock)";
    case cudaErrorMemoryAllocation: return "out of memory (mock)";
    case cudaErrorNotReady: return "device not ready (mock)";
    case cudaErrorHostMemoryAlreadyRegistered: return "already registered (mock)";
    default: return "mock error";
    }
}

cudaError_t cudaDeviceReset(void)
{
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < MAX_ALLOCS; i++) {
        /* Freed for good: a stale pointer must not find a live block. */
        free(allocs[i].p);
        memset(&allocs[i], 0, sizeof(allocs[i]));
    }
    memset(regs, 0, sizeof(regs));
    gen++;
    sticky = cudaSuccess;
    resets++;
    pthread_mutex_unlock(&mu);
    last_error = cudaSuccess;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    pthread_mutex_lock(&mu);
    cudaError_t e = sticky;
    pthread_mutex_unlock(&mu);
    return ret(e);
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total)
{
    *free_b = 12ull << 30;
    *total = 16ull << 30;
    return cudaSuccess;
}

/* ---- memory ---- */

cudaError_t cudaMalloc(void **p, size_t size)
{
    return do_alloc(p, size, false);
}

cudaError_t cudaMallocHost(void **p, size_t size)
{
    return do_alloc(p, size, true);
}

cudaError_t cudaFree(void *p)
{
    return do_free(p, false);
}

cudaError_t cudaFreeHost(void *p)
{
    return do_free(p, true);
}

cudaError_t cudaHostRegister(void *p, size_t size, unsigned int flags)
{
    uint8_t *q = p;

    (void)flags;
    pthread_mutex_lock(&mu);
    if (sticky) {
        pthread_mutex_unlock(&mu);
        return ret(sticky);
    }
    for (unsigned i = 0; i < MAX_REGS; i++) {
        if (regs[i].p && q < regs[i].p + regs[i].size && regs[i].p < q + size) {
            pthread_mutex_unlock(&mu);
            return ret(cudaErrorHostMemoryAlreadyRegistered);
        }
    }
    for (unsigned i = 0; i < MAX_REGS; i++) {
        if (!regs[i].p) {
            regs[i].p = q;
            regs[i].size = size;
            pthread_mutex_unlock(&mu);
            return cudaSuccess;
        }
    }
    pthread_mutex_unlock(&mu);
    return ret(cudaErrorMemoryAllocation);
}

cudaError_t cudaHostUnregister(void *p)
{
    pthread_mutex_lock(&mu);
    for (unsigned i = 0; i < MAX_REGS; i++) {
        if (regs[i].p == p) {
            regs[i].p = NULL;
            pthread_mutex_unlock(&mu);
            return cudaSuccess;
        }
    }
    misuse("cudaHostUnregister of a range not registered");
    pthread_mutex_unlock(&mu);
    return ret(cudaErrorHostMemoryNotRegistered);
}

/* ---- streams ---- */

/* Handles come from static pools and are never freed: a stale handle the
 * backend forgets after a reset must stay readable for the misuse check. */
#define MAX_HANDLES 4096
static struct mock_stream stream_pool[MAX_HANDLES];
static unsigned stream_next;

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *st, unsigned int flags)
{
    struct mock_stream *s;

    (void)flags;
    pthread_mutex_lock(&mu);
    if (stream_next == MAX_HANDLES) {
        pthread_mutex_unlock(&mu);
        return ret(cudaErrorMemoryAllocation);
    }
    s = &stream_pool[stream_next++];
    s->gen = gen;
    pthread_mutex_unlock(&mu);
    *st = (cudaStream_t)s;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t st)
{
    pthread_mutex_lock(&mu);
    if (!stream_ok(st)) {
        misuse("cudaStreamDestroy of a stale or destroyed stream");
    } else if (st) {
        ((struct mock_stream *)st)->gen = 0;    /* destroyed */
    }
    pthread_mutex_unlock(&mu);
    return cudaSuccess;
}

static cudaError_t stream_state(cudaStream_t st)
{
    struct mock_stream *s = (struct mock_stream *)st;
    cudaError_t e;

    pthread_mutex_lock(&mu);
    if (!stream_ok(st)) {
        misuse("use of a stale stream");
        e = cudaErrorInvalidResourceHandle;
    } else if (sticky) {
        e = sticky;
    } else if (s && s->busy_until_ns > now_ns()) {
        e = cudaErrorNotReady;
    } else {
        e = cudaSuccess;
    }
    pthread_mutex_unlock(&mu);
    return e;
}

cudaError_t cudaStreamQuery(cudaStream_t st)
{
    cudaError_t e = stream_state(st);
    return e == cudaErrorNotReady ? e : ret(e);
}

cudaError_t cudaStreamSynchronize(cudaStream_t st)
{
    cudaError_t e;

    while ((e = stream_state(st)) == cudaErrorNotReady) {
        struct timespec ts = { 0, 100000 };
        nanosleep(&ts, NULL);
    }
    return ret(e);
}

/* ---- copies ---- */

/* Checks an enqueue on st touching device [d, d+len) and host [h, h+len). */
static cudaError_t check_enqueue(cudaStream_t st, const void *d, const void *h, size_t len,
                                 bool pageable_ok)
{
    cudaError_t e = cudaSuccess;

    pthread_mutex_lock(&mu);
    if (!stream_ok(st)) {
        misuse("enqueue on a stale stream");
        e = cudaErrorInvalidResourceHandle;
    } else if (sticky) {
        e = sticky;
    } else if (d && !find_alloc(d, len)) {
        misuse("device range not allocated (stale or out of bounds)");
        e = cudaErrorInvalidValue;
    } else if (h && !pageable_ok && !host_ok(h, len)) {
        misuse("async copy with unpinned, unregistered host memory");
        e = cudaErrorInvalidValue;
    }
    pthread_mutex_unlock(&mu);
    return e;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t len, enum cudaMemcpyKind kind,
                            cudaStream_t st)
{
    cudaError_t e;

    if (kind == cudaMemcpyHostToDevice) {
        e = check_enqueue(st, dst, src, len, false);
    } else if (kind == cudaMemcpyDeviceToHost) {
        /* test_cuda's peek hook copies into malloc'ed memory: allowed. */
        e = check_enqueue(st, src, dst, len, true);
    } else {
        e = cudaErrorInvalidValue;
    }
    if (e != cudaSuccess) {
        return ret(e);
    }
    memcpy(dst, src, len);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t len, cudaStream_t st)
{
    cudaError_t e = check_enqueue(st, p, NULL, len, true);

    if (e != cudaSuccess) {
        return ret(e);
    }
    memset(p, v, len);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int v, size_t len)
{
    return cudaMemsetAsync(p, v, len, NULL);
}

/* ---- the kernels ---- */

cudaError_t vgpu_k_vector_add(const float *a, const float *b, float *out, uint64_t n,
                              int sms, cudaStream_t st)
{
    cudaError_t e;

    (void)sms;
    if ((e = check_enqueue(st, a, NULL, n * 4, true)) ||
        (e = check_enqueue(st, b, NULL, n * 4, true)) ||
        (e = check_enqueue(st, out, NULL, n * 4, true))) {
        return ret(e);
    }
    for (uint64_t i = 0; i < n; i++) {
        out[i] = a[i] + b[i];
    }
    return cudaSuccess;
}

cudaError_t vgpu_k_saxpy(float alpha, const float *x, float *y, uint64_t n, int sms,
                         cudaStream_t st)
{
    cudaError_t e;

    (void)sms;
    if ((e = check_enqueue(st, x, NULL, n * 4, true)) ||
        (e = check_enqueue(st, y, NULL, n * 4, true))) {
        return ret(e);
    }
    for (uint64_t i = 0; i < n; i++) {
        y[i] = fmaf(alpha, x[i], y[i]);     /* as the GPU contracts it */
    }
    return cudaSuccess;
}

cudaError_t vgpu_k_scale(float beta, float *y, uint64_t n, int sms, cudaStream_t st)
{
    cudaError_t e = check_enqueue(st, y, NULL, n * 4, true);

    (void)sms;
    if (e) {
        return ret(e);
    }
    for (uint64_t i = 0; i < n; i++) {
        y[i] *= beta;
    }
    return cudaSuccess;
}

cudaError_t vgpu_k_reduce_sum(const float *in, uint64_t n, double *partials, double *out,
                              int sms, cudaStream_t st)
{
    const unsigned blocks = 64;
    cudaError_t e;
    double total = 0;

    (void)sms;
    if ((e = check_enqueue(st, in, NULL, n * 4, true)) ||
        (e = check_enqueue(st, partials, NULL, blocks * sizeof(double), true)) ||
        (e = check_enqueue(st, out, NULL, sizeof(double), true))) {
        return ret(e);
    }
    /* Grid-stride partial sums in double, like the kernel. */
    for (unsigned bl = 0; bl < blocks; bl++) {
        double acc = 0;
        for (uint64_t i = bl; i < n; i += blocks) {
            acc += in[i];
        }
        partials[bl] = acc;
    }
    for (unsigned bl = 0; bl < blocks; bl++) {
        total += partials[bl];
    }
    *out = total;
    return cudaSuccess;
}

/* ---- cuBLAS ---- */

struct mock_blas {
    uint64_t gen;
    cudaStream_t st;
};

static struct mock_blas blas_pool[MAX_HANDLES];
static unsigned blas_next;

static cublasStatus_t blas_create(cublasHandle_t *h)
{
    struct mock_blas *b;

    pthread_mutex_lock(&mu);
    if (blas_next == MAX_HANDLES) {
        pthread_mutex_unlock(&mu);
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    b = &blas_pool[blas_next++];
    b->gen = gen;
    pthread_mutex_unlock(&mu);
    *h = (cublasHandle_t)b;
    return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t blas_destroy(cublasHandle_t h)
{
    struct mock_blas *b = (struct mock_blas *)h;

    pthread_mutex_lock(&mu);
    if (b->gen != gen) {
        misuse("cublasDestroy of a stale or destroyed handle");
    }
    b->gen = 0;
    pthread_mutex_unlock(&mu);
    return CUBLAS_STATUS_SUCCESS;
}

static cublasStatus_t blas_set_stream(cublasHandle_t h, cudaStream_t st)
{
    ((struct mock_blas *)h)->st = st;
    return CUBLAS_STATUS_SUCCESS;
}

/* Column-major C(m x n) = alpha A(m x k) B(k x n) + beta C, no transposes. */
static cublasStatus_t blas_sgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                                 int m, int n, int k, const float *alpha, const float *A,
                                 int lda, const float *B, int ldb, const float *beta, float *C,
                                 int ldc)
{
    struct mock_blas *b = (struct mock_blas *)h;
    bool stale;

    pthread_mutex_lock(&mu);
    stale = b->gen != gen;
    if (stale) {
        misuse("cublasSgemm on a stale handle");
    }
    pthread_mutex_unlock(&mu);
    if (stale || ta != CUBLAS_OP_N || tb != CUBLAS_OP_N || lda < m || ldb < k || ldc < m) {
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (check_enqueue(b->st, A, NULL, (size_t)lda * k * 4, true) ||
        check_enqueue(b->st, B, NULL, (size_t)ldb * n * 4, true) ||
        check_enqueue(b->st, C, NULL, (size_t)ldc * n * 4, true)) {
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    for (int j = 0; j < n; j++) {
        float *c = C + (size_t)j * ldc;
        if (*beta == 0.0f) {
            memset(c, 0, (size_t)m * sizeof(float));
        } else {
            for (int i = 0; i < m; i++) {
                c[i] *= *beta;
            }
        }
        for (int p = 0; p < k; p++) {
            const float s = *alpha * B[(size_t)j * ldb + p];
            const float *a = A + (size_t)p * lda;
            for (int i = 0; i < m; i++) {
                c[i] += s * a[i];
            }
        }
    }
    return CUBLAS_STATUS_SUCCESS;
}

int vgpu_cublas_load(struct vgpu_cublas *cb)
{
    memset(cb, 0, sizeof(*cb));
    cb->dl = cb;    /* "loaded" */
    snprintf(cb->path, sizeof(cb->path), "mock cuBLAS");
    cb->create = blas_create;
    cb->destroy = blas_destroy;
    cb->set_stream = blas_set_stream;
    cb->sgemm = blas_sgemm;
    return 0;
}

void vgpu_cublas_unload(struct vgpu_cublas *cb)
{
    cb->dl = NULL;
}

/* A process built on the mock (a test mediator, say) reports misuse at exit. */
__attribute__((destructor)) static void report_misuse(void)
{
    if (misuses) {
        fprintf(stderr, "mock_cudart: %u misuses, last: %s\n", misuses, misuse_what);
    }
}
