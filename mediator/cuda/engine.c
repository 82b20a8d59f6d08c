/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA engine: executes validated requests on one NVIDIA GPU. It runs
 * only in a VM's worker process (worker.c), behind the exported
 * vgpu_backend_cuda proxy (proxy.c). This file is the engine's frame: its
 * table (engine.h), sessions, device buffers, the deadline and the dispatch;
 * each Phase 1 operation is its own file in ops/ (engine-priv.h), the driver
 * operations (VGPU_OP_CU_*) are cu_ops.c.
 *
 * Data path. Each VM's whole shared memory is registered with
 * cudaHostRegister when its session opens, so operands are DMAed straight
 * between the guest's pages and device memory (no bounce copy). Where
 * registration fails, the session falls back to a pinned staging buffer and
 * health() says so. Each VM has its own non-blocking stream and its own
 * device buffers: a small grow-only pool (one buffer per operand slot)
 * charged to cfg->vm_mem_quota, so repeated requests do not cudaMalloc.
 * A buffer belongs to exactly one VM and is zeroed (cudaMemsetAsync on the
 * VM's stream, before any use) when it is allocated, so memory the driver
 * recycles from another VM never becomes visible; session_close frees it all.
 *
 * Deadline. A request ends by polling cudaStreamQuery: busy for a short
 * window (the round trip of small requests matters), then with sleeps of
 * 1/32 of the time waited so far, up to cfg->request_timeout_ms ->
 * VGPU_S_TIMEOUT.
 *
 * Recovery. There is none in process: a sticky error (illegal address,
 * launch failure, ...) or a request past its deadline (its kernel may still
 * write into the VM's memory) only marks the engine poisoned; the worker
 * says so in its reply and the proxy replaces the whole process. NVIDIA
 * documents that a process which hit such an error must be terminated, and
 * an in-process cudaDeviceReset after cudaErrorIllegalAddress was measured
 * (H100, driver 580) to leave the device "busy or unavailable" for good.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>

#include "mediator/backend.h"
#include "vgpu/abi.h"

#include "cu_ops.h"
#include "engine.h"
#include "engine-priv.h"
#ifdef VGPU_CUDA_TESTING
#include "cuda_testing.h"
#define TEST_KNOB(b, knob) ((b)->knob)
#else
#define TEST_KNOB(b, knob) false
#endif

#define CUDA_STAGING_SIZE   (32ull << 20)   /* bounce buffer when not registered */
#define CUDA_SPIN_NS        2000000ull      /* busy-poll window of a request */
#define CUDA_SLEEP_MIN_NS   20000ull
#define CUDA_SLEEP_MAX_NS   1000000ull
#define CUDA_SLEEP_DIV      32u             /* nap = time waited / this */
#define CUDA_TRY_NS         200000ull       /* a sync's first try (VGPU_EXEC_TRY) */
#define CUDA_SMALL_ALIGN    (64ull << 10)
#define CUDA_LARGE_ALIGN    (2ull << 20)    /* the driver's large-page granule */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
                           .tv_nsec = (long)(ns % 1000000000ull) };
    nanosleep(&ts, NULL);
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

void cuda_note_error(struct vgpu_backend *b, uint32_t vm_id, const char *what,
                     const char *detail)
{
    pthread_mutex_lock(&b->lock);
    snprintf(b->last_error, sizeof(b->last_error), "vm %u: %s: %s", vm_id, what, detail);
    pthread_mutex_unlock(&b->lock);
}

static void mem_account(struct vgpu_backend_session *s, int64_t delta)
{
    s->mem_used += (uint64_t)delta;
    __atomic_add_fetch(&s->b->mem_in_use, (uint64_t)delta, __ATOMIC_RELAXED);
}

/*
 * Errors after which the context is unusable: every later call in the
 * process returns the same error; only ending the process recovers.
 */
static bool cuda_error_is_sticky(cudaError_t err)
{
    switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorLaunchTimeout:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorECCUncorrectable:
    case cudaErrorContextIsDestroyed:
    case cudaErrorDevicesUnavailable:
    case cudaErrorUnknown:
        return true;
    default:
        return false;
    }
}

static int cuda_error_status(cudaError_t err)
{
    switch (err) {
    case cudaSuccess:
        return VGPU_S_OK;
    case cudaErrorMemoryAllocation:
        return VGPU_S_NO_MEMORY;
    case cudaErrorLaunchTimeout:
        return VGPU_S_TIMEOUT;
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorNotSupported:
        return VGPU_S_NOT_SUPPORTED;
    default:
        return cuda_error_is_sticky(err) ? VGPU_S_GPU_FAULT : VGPU_S_INTERNAL;
    }
}

/*
 * Records a failed CUDA call of the current request and maps it to a
 * status. A non-sticky error is cleared so that it is not reported again by
 * an unrelated later call; a sticky one poisons the engine.
 */
int cuda_fail(struct vgpu_backend_session *s, cudaError_t err, const char *what)
{
    cuda_note_error(s->b, s->vm_id, what, cudaGetErrorString(err));
    if (cuda_error_is_sticky(err)) {
        s->lost = true;
    } else {
        (void)cudaGetLastError();
    }
    return cuda_error_status(err);
}

int cuda_stream_wait(struct vgpu_backend_session *s)
{
    uint64_t start = now_ns(), nap;

    for (;;) {
        cudaError_t err = cudaStreamQuery(s->stream);
        uint64_t now;

        if (err == cudaSuccess) {
            return VGPU_S_OK;
        }
        if (err != cudaErrorNotReady) {
            return cuda_fail(s, err, "stream");
        }
        now = now_ns();
        if (s->deadline_ns && now >= s->deadline_ns) {
            /* The work is still on the GPU and may still write into this
             * VM's memory: only the end of the process stops it. */
            cuda_note_error(s->b, s->vm_id, "request", "deadline exceeded");
            s->lost = true;
            return VGPU_S_TIMEOUT;
        }
        if (now - start < CUDA_SPIN_NS) {
            continue;
        }
        /* Sleep a fixed fraction of the time waited so far: the completion
         * is seen at most ~3% late. Doubling naps (20 us .. 1 ms) saw a 5 ms
         * request up to 1 ms late, 37% slower than native end to end. */
        nap = (now - start) / CUDA_SLEEP_DIV;
        nap = nap < CUDA_SLEEP_MIN_NS ? CUDA_SLEEP_MIN_NS
                                      : (nap > CUDA_SLEEP_MAX_NS ? CUDA_SLEEP_MAX_NS : nap);
        if (s->deadline_ns && s->deadline_ns - now < nap) {
            sleep_ns(s->deadline_ns - now);
        } else {
            sleep_ns(nap);
        }
    }
}

int cuda_h2d(struct vgpu_backend_session *s, void *dst, uint64_t off, uint64_t len)
{
    cudaError_t err;
    int st;

    if (!cuda_shm_range_ok(s, off, len)) {
        return VGPU_S_BAD_RANGE;
    }
    if (s->registered) {
        err = cudaMemcpyAsync(dst, s->shm.base + off, len, cudaMemcpyHostToDevice, s->stream);
        return err == cudaSuccess ? VGPU_S_OK : cuda_fail(s, err, "cudaMemcpyAsync H2D");
    }
    for (uint64_t done = 0; done < len;) {
        uint64_t chunk = len - done < s->staging_size ? len - done : s->staging_size;

        memcpy(s->staging, s->shm.base + off + done, chunk);
        err = cudaMemcpyAsync((uint8_t *)dst + done, s->staging, chunk,
                              cudaMemcpyHostToDevice, s->stream);
        if (err != cudaSuccess) {
            return cuda_fail(s, err, "cudaMemcpyAsync H2D (staged)");
        }
        /* The staging buffer is reused by the next chunk. */
        st = cuda_stream_wait(s);
        if (st != VGPU_S_OK) {
            return st;
        }
        done += chunk;
    }
    return VGPU_S_OK;
}

int cuda_d2h(struct vgpu_backend_session *s, uint64_t off, const void *src, uint64_t len)
{
    cudaError_t err;
    int st;

    if (!cuda_shm_range_ok(s, off, len)) {
        return VGPU_S_BAD_RANGE;
    }
    if (s->registered) {
        err = cudaMemcpyAsync(s->shm.base + off, src, len, cudaMemcpyDeviceToHost, s->stream);
        return err == cudaSuccess ? VGPU_S_OK : cuda_fail(s, err, "cudaMemcpyAsync D2H");
    }
    for (uint64_t done = 0; done < len;) {
        uint64_t chunk = len - done < s->staging_size ? len - done : s->staging_size;

        err = cudaMemcpyAsync(s->staging, (const uint8_t *)src + done, chunk,
                              cudaMemcpyDeviceToHost, s->stream);
        if (err != cudaSuccess) {
            return cuda_fail(s, err, "cudaMemcpyAsync D2H (staged)");
        }
        st = cuda_stream_wait(s);
        if (st != VGPU_S_OK) {
            return st;
        }
        memcpy(s->shm.base + off + done, s->staging, chunk);
        done += chunk;
    }
    return VGPU_S_OK;
}

/* ------------------------------------------------------------------------
 * Per-VM device buffers
 * ------------------------------------------------------------------------ */

static uint64_t buf_round(uint64_t need)
{
    return align_up(need, need >= CUDA_LARGE_ALIGN ? CUDA_LARGE_ALIGN : CUDA_SMALL_ALIGN);
}

/* Callers guarantee the stream is idle: every request ends with its stream
 * drained (or the engine poisoned), so no queued work still uses the buffer. */
static int buf_free(struct vgpu_backend_session *s, unsigned i)
{
    struct cuda_buf *bf = &s->buf[i];
    cudaError_t err = cudaSuccess;

    if (bf->ptr) {
        err = cudaFree(bf->ptr);
        mem_account(s, -(int64_t)bf->cap);
        bf->ptr = NULL;
        bf->cap = 0;
    }
    return err == cudaSuccess ? VGPU_S_OK : cuda_fail(s, err, "cudaFree");
}

static int buf_alloc(struct vgpu_backend_session *s, unsigned i, uint64_t cap)
{
    struct cuda_buf *bf = &s->buf[i];
    cudaError_t err;
    void *p = NULL;

    err = cudaMalloc(&p, cap);
    if (err != cudaSuccess) {
        return cuda_fail(s, err, "cudaMalloc");
    }
    /* Isolation: the driver may hand back memory another VM just freed. */
    if (!TEST_KNOB(s->b, no_scrub)) {
        err = cudaMemsetAsync(p, 0, cap, s->stream);
        if (err != cudaSuccess) {
            int st = cuda_fail(s, err, "cudaMemsetAsync (scrub)");
            cudaFree(p);
            return st;
        }
    }
    bf->ptr = p;
    bf->cap = cap;
    mem_account(s, (int64_t)cap);
    return VGPU_S_OK;
}

/*
 * Makes buffer i at least need[i] bytes for every i (need 0: not used by
 * this request). Buffers only grow, rounded up so that slowly growing
 * requests do not reallocate each time; when the rounding or buffers this
 * request does not use would break the quota, the pool is emptied and
 * rebuilt with exact sizes. VGPU_S_QUOTA when the request alone exceeds it.
 */
int cuda_bufs_reserve(struct vgpu_backend_session *s, const uint64_t need[CUDA_SLOTS])
{
    uint64_t quota = s->b->cfg.vm_mem_quota;
    uint64_t fixed = s->mem_used, required = 0, after = 0;
    bool exact = false;
    int st;

    for (unsigned i = 0; i < CUDA_SLOTS; i++) {
        fixed -= s->buf[i].cap;
    }
    for (unsigned i = 0; i < CUDA_SLOTS; i++) {
        if (need[i] > UINT64_MAX / 4) {
            return VGPU_S_TOO_LARGE;
        }
        required += need[i];
        after += need[i] > s->buf[i].cap ? buf_round(need[i]) : s->buf[i].cap;
    }
    if (quota && (required > quota || fixed > quota - required)) {
        return VGPU_S_QUOTA;
    }
    if (quota && fixed + after > quota) {
        for (unsigned i = 0; i < CUDA_SLOTS; i++) {
            st = buf_free(s, i);
            if (st != VGPU_S_OK) {
                return st;
            }
        }
        exact = true;
    }
    for (unsigned i = 0; i < CUDA_SLOTS; i++) {
        uint64_t cap;

        if (need[i] <= s->buf[i].cap) {
            continue;
        }
        st = buf_free(s, i);
        if (st != VGPU_S_OK) {
            return st;
        }
        cap = exact ? need[i] : buf_round(need[i]);
        if (quota && s->mem_used + cap > quota) {
            cap = need[i];
        }
        st = buf_alloc(s, i, cap);
        if (st != VGPU_S_OK) {
            return st;
        }
    }
    return VGPU_S_OK;
}

/*
 * The engine's CUDA state is lost: the worker reports it in its reply and the
 * proxy replaces the process (see Recovery above).
 */
static void poison(struct vgpu_backend *b)
{
    __atomic_store_n(&b->poisoned, true, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------------
 * Session context handles
 * ------------------------------------------------------------------------ */

/*
 * Drops s's context handles. live: free them; otherwise (a sticky error
 * while creating them) they are only forgotten, as the context is unusable
 * anyway. Leaves s as session_setup() expects it.
 */
static void session_teardown(struct vgpu_backend_session *s, bool live)
{
    struct vgpu_backend *b = s->b;

    if (live) {
        if (s->stream) {
            (void)cudaStreamSynchronize(s->stream);
        }
        if (s->blas) {
            b->cublas.destroy(s->blas);
        }
        for (unsigned i = 0; i < CUDA_SLOTS; i++) {
            (void)buf_free(s, i);
        }
        if (s->dev_partials) {
            cudaFree(s->dev_partials);
        }
        if (s->host_result) {
            cudaFreeHost(s->host_result);
        }
        if (s->staging) {
            cudaFreeHost(s->staging);
        }
        if (s->registered) {
            cudaHostUnregister(s->shm.base);
        }
        if (s->stream) {
            cudaStreamDestroy(s->stream);
        }
        (void)cudaGetLastError();
    }
    __atomic_sub_fetch(&b->mem_in_use, s->mem_used, __ATOMIC_RELAXED);
    pthread_mutex_lock(&b->lock);
    if (s->ready && !s->registered) {
        b->nstaged--;
    }
    pthread_mutex_unlock(&b->lock);

    s->ready = false;
    s->registered = false;
    s->stream = NULL;
    s->staging = NULL;
    s->staging_size = 0;
    s->host_result = NULL;
    s->dev_partials = NULL;
    s->blas = NULL;
    s->mem_used = 0;
    memset(s->buf, 0, sizeof(s->buf));
}

/* Creates s's handles in the context, when its session opens. 0, -ENOMEM
 * or -EIO; a sticky error also poisons the engine. */
static int session_setup(struct vgpu_backend_session *s)
{
    struct vgpu_backend *b = s->b;
    cudaError_t err;
    const char *what;

    err = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
        what = "cudaStreamCreate";
        goto err;
    }
    if (!TEST_KNOB(b, force_staging)) {
        /* Portable: pinned for the queues' own contexts too (VGPU_OP_CU_*). */
        err = cudaHostRegister(s->shm.base, s->shm.size, cudaHostRegisterPortable);
        if (err == cudaSuccess) {
            s->registered = true;
        } else {
            cuda_note_error(b, s->vm_id, "cudaHostRegister (using staging)",
                            cudaGetErrorString(err));
            (void)cudaGetLastError();
        }
    }
    if (!s->registered) {
        s->staging_size = s->shm.size < CUDA_STAGING_SIZE ? s->shm.size : CUDA_STAGING_SIZE;
        err = cudaMallocHost((void **)&s->staging, s->staging_size);
        if (err != cudaSuccess) {
            what = "cudaMallocHost (staging)";
            goto err;
        }
    }
    err = cudaMallocHost((void **)&s->host_result, sizeof(double));
    if (err != cudaSuccess) {
        what = "cudaMallocHost";
        goto err;
    }
    err = cudaMalloc((void **)&s->dev_partials, CUDA_PARTIALS_BYTES);
    if (err != cudaSuccess) {
        what = "cudaMalloc (partials)";
        goto err;
    }
    mem_account(s, (int64_t)CUDA_PARTIALS_BYTES);
    err = cudaMemsetAsync(s->dev_partials, 0, CUDA_PARTIALS_BYTES, s->stream);
    if (err != cudaSuccess) {
        what = "cudaMemsetAsync";
        goto err;
    }

    s->ready = true;
    pthread_mutex_lock(&b->lock);
    if (!s->registered) {
        b->nstaged++;
    }
    pthread_mutex_unlock(&b->lock);
    return 0;

err:
    cuda_note_error(b, s->vm_id, what, cudaGetErrorString(err));
    session_teardown(s, !cuda_error_is_sticky(err));
    if (cuda_error_is_sticky(err)) {
        poison(b);
    }
    return err == cudaErrorMemoryAllocation ? -ENOMEM : -EIO;
}

typedef int (*ctx_fn)(struct vgpu_backend_session *s, const void *arg, uint64_t *result);

/*
 * Runs fn as one request of s, within the request deadline, and never
 * returning while work of the request may still touch the VM's memory
 * unless the engine is poisoned (drained, or the worker is to be replaced).
 */
static int run_request(struct vgpu_backend *b, struct vgpu_backend_session *s,
                       ctx_fn fn, const void *arg, uint64_t *result)
{
    cudaError_t err;
    int st;

    s->lost = false;
    s->deadline_ns = b->cfg.request_timeout_ms
                     ? now_ns() + (uint64_t)b->cfg.request_timeout_ms * 1000000ull : 0;

    /* The worker's thread is bound to our device once; this is cheap. */
    err = cudaSetDevice(b->device);
    if (err != cudaSuccess) {
        st = cuda_fail(s, err, "cudaSetDevice");
        goto out;
    }
    st = fn(s, arg, result);
    if (st != VGPU_S_OK && !s->lost) {
        /* A request that failed half-way may have queued copies into the
         * VM's memory; they must land before its completion is posted. */
        int drained = cuda_stream_wait(s);
        if (drained == VGPU_S_TIMEOUT) {
            st = drained;
        }
    }
out:
    if (s->lost) {
        poison(b);
    }
    return st;
}

/* ------------------------------------------------------------------------
 * Backend table
 * ------------------------------------------------------------------------ */

static char init_why[192];

static int init_fail(const char *what, cudaError_t err, const char **why)
{
    snprintf(init_why, sizeof(init_why), "%s: %s", what,
             err == cudaSuccess ? "failed" : cudaGetErrorString(err));
    *why = init_why;
    return -ENODEV;
}

/* Loads the kernels' module and touches each once, so that the first
 * request of a VM does not pay for lazy loading. */
static cudaError_t warm_up(const struct vgpu_backend *b)
{
    float *buf = NULL;
    double *partials = NULL;
    cudaError_t err;

    err = cudaMalloc((void **)&buf, 4 * sizeof(float));
    if (err == cudaSuccess) {
        err = cudaMalloc((void **)&partials, CUDA_PARTIALS_BYTES);
    }
    if (err == cudaSuccess) {
        err = cudaMemset(buf, 0, 4 * sizeof(float));
    }
    if (err == cudaSuccess) {
        err = vgpu_k_vector_add(buf, buf + 1, buf + 2, 1, b->sms, NULL);
    }
    if (err == cudaSuccess) {
        err = vgpu_k_saxpy(1.0f, buf, buf + 1, 1, b->sms, NULL);
    }
    if (err == cudaSuccess) {
        err = vgpu_k_reduce_sum(buf, 1, partials, partials + VGPU_K_REDUCE_MAX_PARTIALS,
                                b->sms, NULL);
    }
    if (err == cudaSuccess) {
        err = cudaDeviceSynchronize();
    }
    cudaFree(partials);
    cudaFree(buf);
    return err;
}

static void cuda_fini(struct vgpu_backend *b);

static int cuda_init(const struct vgpu_backend_config *cfg, struct vgpu_backend **out,
                     const char **why)
{
    struct vgpu_backend *b;
    struct cudaDeviceProp prop;
    cudaError_t err;
    int count = 0;

    err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        return init_fail("cudaGetDeviceCount", err, why);
    }
    if (count <= 0) {
        *why = "no CUDA device";
        return -ENODEV;
    }
    if (cfg->gpu_index < 0 || cfg->gpu_index >= count) {
        snprintf(init_why, sizeof(init_why), "GPU index %d out of range (%d devices)",
                 cfg->gpu_index, count);
        *why = init_why;
        return -ENODEV;
    }
    err = cudaGetDeviceProperties(&prop, cfg->gpu_index);
    if (err != cudaSuccess) {
        return init_fail("cudaGetDeviceProperties", err, why);
    }
    /* The kernels are built for sm_90 (with compute_90 PTX for newer GPUs). */
    if (prop.major < 9) {
        snprintf(init_why, sizeof(init_why),
                 "%.100s has compute capability %d.%d; the kernels need 9.0 or newer",
                 prop.name, prop.major, prop.minor);
        *why = init_why;
        return -ENODEV;
    }

    b = calloc(1, sizeof(*b));
    if (!b) {
        *why = "out of memory";
        return -ENOMEM;
    }
    b->cfg = *cfg;
    b->device = cfg->gpu_index;
    b->device_count = (unsigned)count;
    snprintf(b->name, sizeof(b->name), "%.63s", prop.name);
    b->sms = prop.multiProcessorCount;
    b->cc_major = prop.major;
    b->cc_minor = prop.minor;
    b->total_mem = prop.totalGlobalMem;
    snprintf(b->last_error, sizeof(b->last_error), "none");

    pthread_mutex_init(&b->lock, NULL);

    err = cudaSetDevice(b->device);
    if (err == cudaSuccess) {
        err = cudaFree(NULL); /* creates the context: fail here, not in a request */
    }
    if (err != cudaSuccess) {
        cuda_fini(b);
        return init_fail("creating the CUDA context", err, why);
    }
    if (cudaDeviceGetAttribute(&b->clock_khz, cudaDevAttrClockRate, b->device) != cudaSuccess) {
        b->clock_khz = 0;
    }
    if (cudaDriverGetVersion(&b->driver_version) != cudaSuccess) {
        b->driver_version = 0;
    }
    if (cudaRuntimeGetVersion(&b->runtime_version) != cudaSuccess) {
        b->runtime_version = 0;
    }
    err = warm_up(b);
    if (err != cudaSuccess) {
        cuda_fini(b);
        return init_fail("running the vgpu kernels", err, why);
    }
    /* Absent cuBLAS only costs SGEMM (VGPU_S_NOT_SUPPORTED); health says so. */
    (void)vgpu_cublas_load(&b->cublas);
    /* A driver without an entry point the driver operations need only costs
     * those (VGPU_S_NOT_SUPPORTED); health says so. */
    if (vgpu_cu_api_load(&b->cu_why) < 0 && !b->cu_why) {
        b->cu_why = "driver entry points missing";
    }

    *out = b;
    return 0;
}

static void cuda_session_close(struct vgpu_backend *b, struct vgpu_backend_session *s);

static void cuda_fini(struct vgpu_backend *b)
{
    if (!b) {
        return;
    }
    while (b->sessions) {
        cuda_session_close(b, b->sessions);
    }
    vgpu_cublas_unload(&b->cublas);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static int cuda_session_open(struct vgpu_backend *b, uint32_t vm_id, int gpu,
                             const struct vgpu_shm_view *shm,
                             struct vgpu_backend_session **out)
{
    (void)gpu;     /* one device */
    struct vgpu_backend_session *s;
    int r;

    s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->b = b;
    s->vm_id = vm_id;
    s->shm = *shm;

    if (cudaSetDevice(b->device) != cudaSuccess) {
        (void)cudaGetLastError();
    }
    r = session_setup(s);
    if (r < 0) {
        free(s);
        return r;
    }
    pthread_mutex_lock(&b->lock);
    s->next = b->sessions;
    b->sessions = s;
    b->nsessions++;
    pthread_mutex_unlock(&b->lock);
    *out = s;
    return 0;
}

static void cuda_session_close(struct vgpu_backend *b, struct vgpu_backend_session *s)
{
    struct vgpu_backend_session **pp;

    if (!s) {
        return;
    }
    if (cudaSetDevice(b->device) != cudaSuccess) {
        (void)cudaGetLastError();
    }
    if (s->cu) {
        /* Before the teardown, which forgets everything charged to s. */
        mem_account(s, -(int64_t)vgpu_cu_vm_free(s->cu));
        s->cu = NULL;
    }
    session_teardown(s, s->ready);
    pthread_mutex_lock(&b->lock);
    for (pp = &b->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            b->nsessions--;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    free(s);
}

/* A Phase 1 operation (ops/<op>.c) as run_request's fn; arg is the sqe. */
static int run_op(struct vgpu_backend_session *s, const void *arg, uint64_t *result)
{
    const struct vgpu_sqe *sqe = arg;

    return vgpu_cuda_op_lookup(sqe->opcode)->run(s, sqe, result);
}

static int cu_execute(struct vgpu_backend *b, struct vgpu_backend_session *s, uint32_t queue,
                      const struct vgpu_sqe *sqe, uint64_t *result,
                      const struct vgpu_cu_env *how);

static int cuda_execute(struct vgpu_backend *b, struct vgpu_backend_session *s,
                        uint32_t queue, const struct vgpu_op *op, const struct vgpu_sqe *sqe,
                        const struct vgpu_shm_view *shm, uint64_t *result)
{
    (void)op;
    /* The session's view is the one registered; a different one is a bug. */
    if (shm->base != s->shm.base || shm->size != s->shm.size) {
        return VGPU_S_INTERNAL;
    }
    *result = 0;
    if (sqe->opcode >= VGPU_OP_CU_FIRST) {
        return cu_execute(b, s, queue, sqe, result, NULL);
    }
    if (sqe->opcode == VGPU_OP_NOP) {
        return VGPU_S_OK;   /* the pathway check never touches the GPU */
    }
    if (!vgpu_cuda_op_lookup(sqe->opcode)) {
        return VGPU_S_UNKNOWN_OP;
    }
    return run_request(b, s, run_op, sqe, result);
}

/*
 * A driver operation (VGPU_OP_CU_*, cu_ops.c) of queue `queue`. The guest's
 * own kernels may fault the context: that poisons the engine like any sticky
 * error (see Recovery above).
 */
static int cu_execute(struct vgpu_backend *b, struct vgpu_backend_session *s, uint32_t queue,
                      const struct vgpu_sqe *sqe, uint64_t *result,
                      const struct vgpu_cu_env *how)
{
    struct vgpu_cu_env env = { .device = b->device, .epoch = s->epoch & 0xfu,
                               .lost_epochs = s->epoch >> 4,
                               .mem_quota = b->cfg.vm_mem_quota };

    if (queue & VGPU_EXEC_TRY) {
        env.try_ns = CUDA_TRY_NS;
        queue &= ~VGPU_EXEC_TRY;
    }
    if (how) {
        env.deferred = how->deferred;
        env.params = how->params;
        env.params_len = how->params_len;
    }
    int st;

    if (b->cu_why) {
        return VGPU_S_NOT_SUPPORTED;
    }
    if (__atomic_load_n(&b->poisoned, __ATOMIC_ACQUIRE)) {
        return VGPU_S_GPU_FAULT;    /* the proxy replaces this worker */
    }
    if (!s->cu && !(s->cu = vgpu_cu_vm_new())) {
        return VGPU_S_NO_MEMORY;
    }
    env.mem_used = s->mem_used;
    env.deadline_ns = b->cfg.request_timeout_ms
                      ? now_ns() + (uint64_t)b->cfg.request_timeout_ms * 1000000ull : 0;
    st = vgpu_cu_execute(s->cu, &env, queue, sqe, &s->shm, result);
    mem_account(s, env.mem_delta);
    if (env.sticky) {
        cuda_note_error(b, s->vm_id, vgpu_op_name(sqe->opcode),
                        env.timed_out ? "deadline exceeded" : "sticky driver error");
        poison(b);
    }
    return st;
}

static void cuda_gpu_info(struct vgpu_backend *b, struct vgpu_gpu_info *out)
{
    if (cudaSetDevice(b->device) != cudaSuccess) {
        (void)cudaGetLastError();
    }
    cuda_fill_gpu_info(b, out);
}

static void cuda_health(struct vgpu_backend *b, char *buf, unsigned len)
{
    uint64_t mem = __atomic_load_n(&b->mem_in_use, __ATOMIC_RELAXED);
    char staged[48] = "";

    pthread_mutex_lock(&b->lock);
    if (b->nstaged) {
        snprintf(staged, sizeof(staged), " (%u staged, not registered)", b->nstaged);
    }
    snprintf(buf, len,
             "cuda: %s, %u sessions%s, %llu MiB in use, last error %s; %s%s",
             b->name, b->nsessions, staged, (unsigned long long)(mem >> 20), b->last_error,
             b->cublas.dl ? "cublas " : "SGEMM not supported: ", b->cublas.path);
    pthread_mutex_unlock(&b->lock);
}

/* The engine; the exported vgpu_backend_cuda is the proxy (proxy.c). */
const struct vgpu_backend_ops vgpu_cuda_engine = {
    .name = "cuda",
    .kind = VGPU_BACKEND_CUDA,
    .init = cuda_init,
    .fini = cuda_fini,
    .session_open = cuda_session_open,
    .session_close = cuda_session_close,
    .execute = cuda_execute,
    .gpu_info = cuda_gpu_info,
    .health = cuda_health,
};

/* ------------------------------------------------------------------------
 * Worker hooks (engine.h)
 * ------------------------------------------------------------------------ */

void vgpu_cuda_engine_exec_async(struct vgpu_backend *b, struct vgpu_backend_session *s,
                                 uint32_t queue, const struct vgpu_sqe *sqe,
                                 const struct vgpu_shm_view *shm, const void *params,
                                 uint32_t len)
{
    struct vgpu_cu_env how = { .deferred = true, .params = params, .params_len = len };
    uint64_t result;

    if (shm->base != s->shm.base || sqe->opcode < VGPU_OP_CU_FIRST) {
        return;
    }
    (void)cu_execute(b, s, queue, sqe, &result, &how);
}

void vgpu_cuda_engine_set_epoch(struct vgpu_backend_session *s, uint32_t epoch)
{
    s->epoch = epoch;
}

unsigned vgpu_cuda_engine_device_count(struct vgpu_backend *b)
{
    return b->device_count;
}

bool vgpu_cuda_engine_poisoned(struct vgpu_backend *b)
{
    return __atomic_load_n(&b->poisoned, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------------------
 * Test hooks (cuda_testing.h): only in the test executables' build of the
 * engine (-DVGPU_CUDA_TESTING), never in vgpu-mediator.
 * ------------------------------------------------------------------------ */

#ifdef VGPU_CUDA_TESTING

void vgpu_cuda_test_set_knobs(struct vgpu_backend *b, int force_staging, int no_scrub)
{
    b->force_staging = force_staging != 0;
    b->no_scrub = no_scrub != 0;
}

int vgpu_cuda_test_drop_cublas(struct vgpu_backend *b)
{
    struct vgpu_backend_session *s;
    int r = 0;

    pthread_mutex_lock(&b->lock);
    for (s = b->sessions; s; s = s->next) {
        if (s->blas) {
            r = -EBUSY;
        }
    }
    if (r == 0 && b->cublas.dl) {
        vgpu_cublas_unload(&b->cublas);
        snprintf(b->cublas.path, sizeof(b->cublas.path), "unloaded by a test");
    }
    pthread_mutex_unlock(&b->lock);
    return r;
}

struct peek_arg {
    unsigned slot;
    uint64_t bytes;
    void    *out;
};

static int test_peek(struct vgpu_backend_session *s, const void *arg, uint64_t *result)
{
    const struct peek_arg *p = arg;
    uint64_t need[CUDA_SLOTS] = { 0, 0, 0 };

    (void)result;
    need[p->slot] = p->bytes;
    TRY(cuda_bufs_reserve(s, need));
    TRY(cuda_launch_status(s, cudaMemcpyAsync(p->out, s->buf[p->slot].ptr, p->bytes,
                                              cudaMemcpyDeviceToHost, s->stream),
                           "cudaMemcpyAsync D2H"));
    return cuda_stream_wait(s);
}

int vgpu_cuda_test_peek(struct vgpu_backend *b, struct vgpu_backend_session *s,
                        unsigned slot, uint64_t bytes, void *out)
{
    struct peek_arg p = { .slot = slot, .bytes = bytes, .out = out };
    uint64_t result = 0;

    if (slot >= CUDA_SLOTS || bytes == 0) {
        return VGPU_S_BAD_ARGS;
    }
    return run_request(b, s, test_peek, &p, &result);
}

void vgpu_cuda_test_stats(struct vgpu_backend *b, struct vgpu_backend_session *s,
                          struct vgpu_cuda_test_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s) {
        out->session_mem = s->mem_used;
        out->registered = s->registered;
    }
    pthread_mutex_lock(&b->lock);
    out->backend_mem = __atomic_load_n(&b->mem_in_use, __ATOMIC_RELAXED);
    out->sessions = b->nsessions;
    pthread_mutex_unlock(&b->lock);
    out->cublas = b->cublas.dl != NULL;
}
#endif /* VGPU_CUDA_TESTING */
