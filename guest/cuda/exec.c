/* SPDX-License-Identifier: MIT */
/*
 * Execution: launches (parameters packed by the layout the host gave at
 * function lookup), streams, events, host functions, occupancy and function
 * attributes.
 *
 * Streams: the NULL stream and CU_STREAM_LEGACY are the host queue's
 * default (legacy) stream, handle 0; CU_STREAM_PER_THREAD, and the NULL
 * stream in the _ptds/_ptsz entry points, are a blocking host stream of
 * the calling thread's own.
 *
 * Host functions run in the guest, on a thread of this library, once the
 * host reports the stream reached them (see "host functions" below).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_internal.h"
#include "module.h"

/*
 * The per-thread default stream: CU_STREAM_PER_THREAD, and the NULL stream
 * inside a _ptds/_ptsz entry point (cu_ptds_enter/leave, called by the
 * generated wrappers). Each thread gets its own blocking host stream, made
 * at its first use and destroyed when the thread ends; a context reset
 * (a new generation) makes it anew.
 */
struct ptds_stream {
    uint32_t handle;
    unsigned gen;
};

static __thread int ptds_depth;
static __thread struct ptds_stream *ptds_mine;
static pthread_key_t ptds_key;
static pthread_once_t ptds_once = PTHREAD_ONCE_INIT;

void cu_ptds_enter(void)
{
    ptds_depth++;
}

void cu_ptds_leave(void)
{
    ptds_depth--;
}

static void ptds_gone(void *p)
{
    struct ptds_stream *ps = p;

    pthread_mutex_lock(&cu_lock);
    if (ps->handle && ps->gen == cu_g.generation && cu_ready() == CUDA_SUCCESS) {
        (void)vgpu_cu_stream_destroy(cu_rm(), ps->handle);
    }
    pthread_mutex_unlock(&cu_lock);
    free(ps);
}

static void ptds_key_make(void)
{
    (void)pthread_key_create(&ptds_key, ptds_gone);
}

static int is_per_thread(CUstream s)
{
    return s == CU_STREAM_PER_THREAD || (s == NULL && ptds_depth > 0);
}

/* Work on it also orders with the legacy stream, as a blocking stream's. */
static int stream_blocking(CUstream s, uint32_t h)
{
    if (h == 0 || s == NULL || s == CU_STREAM_LEGACY || s == CU_STREAM_PER_THREAD) {
        return 1;
    }
    return !(s->flags & CU_STREAM_NON_BLOCKING);
}

/* The calling thread's per-thread stream; cu_lock held. Without one (the
 * host refused) the legacy stream serves: stricter ordering, same results. */
static uint32_t ptds_handle(void)
{
    struct ptds_stream *ps = ptds_mine;
    uint32_t h = 0;

    if (ps && ps->handle && ps->gen == cu_g.generation) {
        return ps->handle;
    }
    pthread_once(&ptds_once, ptds_key_make);
    if (!ps) {
        ps = calloc(1, sizeof(*ps));
        if (!ps) {
            return 0;
        }
        ptds_mine = ps;
        (void)pthread_setspecific(ptds_key, ps);
    }
    if (vgpu_cu_stream_create(cu_rm(), 0, 0, &h) != 0) {
        h = 0;
    }
    ps->handle = h;
    ps->gen = cu_g.generation;
    return h;
}

CUresult cu_stream_resolve(CUstream s, uint32_t *h)
{
    if (is_per_thread(s)) {
        *h = ptds_mine && ptds_mine->gen == cu_g.generation ? ptds_mine->handle : 0;
        return CUDA_SUCCESS;
    }
    if (s == NULL || s == CU_STREAM_LEGACY) {
        *h = 0;
        return CUDA_SUCCESS;
    }
    if (s->magic != CU_MAGIC_STREAM) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    *h = s->handle;
    return CUDA_SUCCESS;
}

/* cu_stream_resolve, making the per-thread stream if it is the one named. */
static CUresult stream_get(CUstream s, uint32_t *h)
{
    if (is_per_thread(s)) {
        *h = ptds_handle();
        return CUDA_SUCCESS;
    }
    return cu_stream_resolve(s, h);
}

/* ---- host functions ----
 *
 * cuLaunchHostFunc records an event on the stream and hands {event,
 * function} to one guest thread, which polls the event (never holding the
 * lock while the GPU works) and calls the function once the host reports
 * the stream reached it. Until then the stream is "gated": work submitted
 * later on it - or on the legacy stream, for a host function in a blocking
 * stream, and on any blocking stream, for one in the legacy stream - waits
 * in cu_stream_handle(), so it runs after the function, as stream order
 * wants. Synchronising the stream or the context waits for them too.
 */
struct hostfn {
    uint32_t stream;         /* host handle */
    int      blocking;       /* syncs with the legacy stream */
    uint32_t event;
    CUhostFn fn;             /* either */
    CUstreamCallback cb;     /* or */
    CUstream cb_stream;
    void    *data;
    struct hostfn *next;
};

static struct hostfn *hostfn_head, **hostfn_tail = &hostfn_head;
static unsigned hostfn_pending;          /* queued or running */
static pthread_cond_t hostfn_done_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t hostfn_work_cv = PTHREAD_COND_INITIALIZER;
static int hostfn_thread_up;

/* 1 if work on stream h (blocking or not) must wait for a host function. */
static int hostfn_gates(uint32_t h, int blocking)
{
    const struct hostfn *j;

    for (j = hostfn_head; j; j = j->next) {
        if (j->stream == h || (h == 0 && j->blocking) || (j->stream == 0 && blocking)) {
            return 1;
        }
    }
    return 0;
}

CUresult cu_stream_handle(CUstream s, uint32_t *h)
{
    CUresult rv = stream_get(s, h);
    int blocking;

    if (rv != CUDA_SUCCESS || hostfn_pending == 0) {
        return rv;
    }
    blocking = stream_blocking(s, *h);
    while (hostfn_gates(*h, blocking)) {
        pthread_cond_wait(&hostfn_done_cv, &cu_lock);
    }
    return CUDA_SUCCESS;
}

CUresult cu_take_deferred(CUresult rv)
{
    CUresult d = cu_g.deferred;

    if (d != CUDA_SUCCESS) {
        cu_g.deferred = CUDA_SUCCESS;
        if (rv == CUDA_SUCCESS) {
            return d;
        }
    }
    return rv;
}

void cu_hostfn_wait_all(void)
{
    while (hostfn_pending) {
        pthread_cond_wait(&hostfn_done_cv, &cu_lock);
    }
}

static void *hostfn_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cu_lock);
    for (;;) {
        struct hostfn *j;
        CUresult st;
        unsigned wait_us = 20;
        int done = 0, r;

        while (!hostfn_head) {
            pthread_cond_wait(&hostfn_work_cv, &cu_lock);
        }
        j = hostfn_head;
        /* the head is ready once its event is: poll, the lock let go between */
        for (;;) {
            r = vgpu_cu_event_query(cu_rm(), j->event, &done);
            if (r != 0 || done) {
                break;
            }
            pthread_mutex_unlock(&cu_lock);
            usleep(wait_us);
            if (wait_us < 1000) {
                wait_us *= 2;
            }
            pthread_mutex_lock(&cu_lock);
        }
        st = cu_result(r);
        if (st != CUDA_SUCCESS && cu_g.sticky == CUDA_SUCCESS && cu_g.deferred == CUDA_SUCCESS) {
            /* the query returned libvgpu's kept error: keep it for the user */
            cu_g.deferred = st;
        }
        pthread_mutex_unlock(&cu_lock);
        if (j->fn) {
            j->fn(j->data);
        } else {
            j->cb(j->cb_stream, st, j->data);
        }
        pthread_mutex_lock(&cu_lock);
        (void)vgpu_cu_event_destroy(cu_rm(), j->event);
        hostfn_head = j->next;
        if (!hostfn_head) {
            hostfn_tail = &hostfn_head;
        }
        hostfn_pending--;
        free(j);
        pthread_cond_broadcast(&hostfn_done_cv);
    }
    return NULL;
}

static CUresult hostfn_launch(CUstream stream, CUhostFn fn, CUstreamCallback cb, void *data)
{
    struct hostfn *j;
    uint32_t h, ev = 0;
    pthread_t t;
    CUresult rv;

    j = calloc(1, sizeof(*j));
    if (!j) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_stream_handle(stream, &h);
    }
    if (rv == CUDA_SUCCESS && !hostfn_thread_up) {
        if (pthread_create(&t, NULL, hostfn_thread, NULL) != 0) {
            rv = CUDA_ERROR_OUT_OF_MEMORY;
        } else {
            pthread_detach(t);
            hostfn_thread_up = 1;
        }
    }
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_event_create(cu_rm(), CU_EVENT_DISABLE_TIMING, &ev));
    }
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_event_record(cu_rm(), ev, h));
        if (rv != CUDA_SUCCESS) {
            (void)vgpu_cu_event_destroy(cu_rm(), ev);
        }
    }
    if (rv == CUDA_SUCCESS) {
        j->stream = h;
        j->blocking = stream_blocking(stream, h);
        j->event = ev;
        j->fn = fn;
        j->cb = cb;
        j->cb_stream = stream;
        j->data = data;
        *hostfn_tail = j;
        hostfn_tail = &j->next;
        hostfn_pending++;
        pthread_cond_signal(&hostfn_work_cv);
        j = NULL;
    }
    CU_LEAVE();
    free(j);
    return rv;
}

/* ---- launches ---- */

/* The mediator's limits (mediator/ops/cu_launch*.c): dynamic shared memory
 * and blocks per thread-block cluster (Hopper: 8 portable, 16 opted in). */
#define LAUNCH_MAX_SHARED   (256u << 10)
#define LAUNCH_MAX_CLUSTER  16u

/*
 * Packs the parameters into buf (f->info.param_bytes long): each from
 * params[i], or the whole buffer from extra's CU_LAUNCH_PARAM_BUFFER_POINTER.
 */
CUresult cu_pack_params(const struct CUfunc_st *f, void **params, void **extra, uint8_t *buf)
{
    uint32_t i;

    memset(buf, 0, f->info.param_bytes);
    if (params) {
        for (i = 0; i < f->info.param_count; i++) {
            if (!params[i]) {
                return CUDA_ERROR_INVALID_VALUE;
            }
            memcpy(buf + f->params[i].offset, params[i], f->params[i].size);
        }
        return CUDA_SUCCESS;
    }
    if (extra) {
        const void *p = NULL;
        size_t n = 0;

        for (i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
            if (i >= 64) {
                return CUDA_ERROR_INVALID_VALUE;
            }
            if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) {
                p = extra[i + 1];
            } else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE) {
                n = extra[i + 1] ? *(size_t *)extra[i + 1] : 0;
            } else {
                return CUDA_ERROR_INVALID_VALUE;
            }
        }
        if (!p || n < f->info.param_bytes) {
            return f->info.param_bytes == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
        }
        memcpy(buf, p, f->info.param_bytes);
        return CUDA_SUCCESS;
    }
    return f->info.param_count == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

/*
 * The launch's shape as the mediator and the worker check it (docs/
 * cuda-remoting.md, "What the mediator checks"), refused here first, as the
 * driver refuses it natively: at the call. A launch that the host refused
 * after its CU_LAUNCH_ATTRS was taken would leave those attributes to the
 * queue's next launch.
 */
static CUresult launch_check(const struct CUfunc_st *f, const unsigned grid[3],
                             const unsigned block[3], unsigned shared)
{
    static const unsigned grid_max[3] = { 0x7fffffffu, 65535, 65535 };
    static const unsigned block_max[3] = { 1024, 1024, 64 };
    uint64_t threads = (uint64_t)block[0] * block[1] * block[2];
    int i;

    for (i = 0; i < 3; i++) {
        if (grid[i] == 0 || block[i] == 0 || grid[i] > grid_max[i] || block[i] > block_max[i]) {
            return CUDA_ERROR_INVALID_VALUE;
        }
    }
    if (threads > 1024 || (f->info.max_threads > 0 && threads > (uint64_t)f->info.max_threads) ||
        shared > LAUNCH_MAX_SHARED) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return CUDA_SUCCESS;
}

static int launch_attrs_submit(const struct vgpu_args_cu_launch_attrs *at)
{
    struct vgpu_sqe sqe;

    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = VGPU_OP_CU_LAUNCH_ATTRS;
    sqe.args.cu_launch_attrs = *at;
    return vgpu_cu_submit_async(cu_rm(), &sqe);
}

/*
 * attrs (may be NULL): what cuLaunchKernelEx's attributes ask beyond a plain
 * launch, sent as CU_LAUNCH_ATTRS right before the CU_LAUNCH. Both are
 * asynchronous and on the same queue, submitted under one holding of
 * cu_lock: the host applies the attributes to exactly this launch.
 */
static CUresult launch(CUfunction fn, const unsigned grid[3], const unsigned block[3],
                       unsigned shared, CUstream stream, void **params, void **extra,
                       const struct vgpu_args_cu_launch_attrs *attrs)
{
    struct CUfunc_st *f = cu_func(fn);
    struct vgpu_args_cu_launch a;
    uint8_t small[512], *buf = small;
    uint32_t h;
    CUresult rv;

    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    rv = launch_check(f, grid, block, shared);
    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (f->info.param_bytes > sizeof(small)) {
        buf = malloc(f->info.param_bytes);
        if (!buf) {
            return CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    rv = cu_pack_params(f, params, extra, buf);
    if (rv == CUDA_SUCCESS) {
        memset(&a, 0, sizeof(a));
        a.func = f->handle;
        memcpy(a.grid, grid, sizeof(a.grid));
        memcpy(a.block, block, sizeof(a.block));
        a.shared_bytes = shared;
        a.params_len = f->info.param_bytes;
        CU_ENTER(rv);
        if (rv == CUDA_SUCCESS) {
            rv = cu_stream_handle(stream, &h);
        }
        if (rv == CUDA_SUCCESS && attrs) {
            rv = cu_result(launch_attrs_submit(attrs));
        }
        if (rv == CUDA_SUCCESS) {
            a.stream = h;
            rv = cu_result(vgpu_cu_launch_params(cu_rm(), &a, buf));
            if (rv != CUDA_SUCCESS && attrs) {
                /* never let them reach a later launch: none is a plain one */
                static const struct vgpu_args_cu_launch_attrs none;

                (void)launch_attrs_submit(&none);
            }
        }
        CU_LEAVE();
    }
    if (buf != small) {
        free(buf);
    }
    if (rv != CUDA_SUCCESS && cu_trace()) {
        fprintf(stderr, "libcuda(vgpu): launch failed: %d (grid %u,%u,%u block %u,%u,%u, "
                "shared %u, %u parameter bytes, max threads %d)\n", (int)rv, grid[0], grid[1],
                grid[2], block[0], block[1], block[2], shared, f->info.param_bytes,
                f->info.max_threads);
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuLaunchKernel(CUfunction f, unsigned int gridDimX,
                                               unsigned int gridDimY, unsigned int gridDimZ,
                                               unsigned int blockDimX, unsigned int blockDimY,
                                               unsigned int blockDimZ, unsigned int sharedMemBytes,
                                               CUstream hStream, void **kernelParams, void **extra)
{
    const unsigned grid[3] = { gridDimX, gridDimY, gridDimZ };
    const unsigned block[3] = { blockDimX, blockDimY, blockDimZ };

    return launch(f, grid, block, sharedMemBytes, hStream, kernelParams, extra, NULL);
}

/* cuLaunchKernelEx's cluster dimension: none (0,0,0), or 1 .. the host's
 * largest cluster in each and in all. */
static CUresult cluster_dims(const CUlaunchAttribute *at, uint32_t out[3])
{
    out[0] = at->value.clusterDim.x;
    out[1] = at->value.clusterDim.y;
    out[2] = at->value.clusterDim.z;
    if ((out[0] | out[1] | out[2]) == 0) {
        return CUDA_SUCCESS;
    }
    if (out[0] == 0 || out[1] == 0 || out[2] == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (out[0] > LAUNCH_MAX_CLUSTER || out[1] > LAUNCH_MAX_CLUSTER ||
        out[2] > LAUNCH_MAX_CLUSTER || out[0] * out[1] * out[2] > LAUNCH_MAX_CLUSTER) {
        return CUDA_ERROR_INVALID_CLUSTER_SIZE;
    }
    return CUDA_SUCCESS;
}

/*
 * The attributes of a cuLaunchKernelEx as CU_LAUNCH_ATTRS (*any: one that
 * the host must be told of). Those that only tune performance are ignored
 * (the launch is correct without them); those that change what the launch
 * means and that the host cannot honour are not supported.
 */
static CUresult launch_attrs_of(const CUlaunchConfig *config,
                                struct vgpu_args_cu_launch_attrs *out, int *any)
{
    unsigned i;
    CUresult rv;

    memset(out, 0, sizeof(*out));
    *any = 0;
    if (config->numAttrs && !config->attrs) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    for (i = 0; i < config->numAttrs; i++) {
        const CUlaunchAttribute *at = &config->attrs[i];

        switch (at->id) {
        case CU_LAUNCH_ATTRIBUTE_IGNORE:
            break;
        case CU_LAUNCH_ATTRIBUTE_COOPERATIVE:
            if (at->value.cooperative) {
                out->flags |= VGPU_CU_LAUNCH_COOPERATIVE;
            } else {
                out->flags &= ~VGPU_CU_LAUNCH_COOPERATIVE;
            }
            break;
        case CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION:
            rv = cluster_dims(at, out->cluster);
            if (rv != CUDA_SUCCESS) {
                return rv;
            }
            break;
        case CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE:
            if ((unsigned)at->value.clusterSchedulingPolicyPreference >
                CU_CLUSTER_SCHEDULING_POLICY_LOAD_BALANCING) {
                return CUDA_ERROR_INVALID_VALUE;
            }
            out->cluster_policy = (uint32_t)at->value.clusterSchedulingPolicyPreference;
            break;
        /* hints: the launch means the same without them */
        case CU_LAUNCH_ATTRIBUTE_ACCESS_POLICY_WINDOW:
            cu_ignored_once("cuLaunchKernelEx: the access policy window");
            break;
        case CU_LAUNCH_ATTRIBUTE_SYNCHRONIZATION_POLICY:
            cu_ignored_once("cuLaunchKernelEx: the synchronization policy");
            break;
        case CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION:
            /* a permission to overlap: not taking it is always correct */
            cu_ignored_once("cuLaunchKernelEx: programmatic stream serialization");
            break;
        case CU_LAUNCH_ATTRIBUTE_PRIORITY:
            cu_ignored_once("cuLaunchKernelEx: the launch priority");
            break;
        case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN_MAP:
        case CU_LAUNCH_ATTRIBUTE_MEM_SYNC_DOMAIN:
            /* one domain for all: fences only order more */
            cu_ignored_once("cuLaunchKernelEx: the memory synchronization domain");
            break;
        case CU_LAUNCH_ATTRIBUTE_PREFERRED_CLUSTER_DIMENSION:
            /* the kernel must run with the (minimum) cluster dimension too */
            cu_ignored_once("cuLaunchKernelEx: the preferred cluster dimension");
            break;
        case CU_LAUNCH_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT:
            cu_ignored_once("cuLaunchKernelEx: the shared memory carveout");
            break;
        case CU_LAUNCH_ATTRIBUTE_NVLINK_UTIL_CENTRIC_SCHEDULING:
            cu_ignored_once("cuLaunchKernelEx: NVLink-centric scheduling");
            break;
        /* programmatic and launch-completion events, graph nodes, and any
         * attribute this library does not know */
        default:
            return vgpu_cu_unsupported("cuLaunchKernelEx (this launch attribute)");
        }
    }
    *any = out->flags || out->cluster[0] || out->cluster_policy;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuLaunchKernelEx(const CUlaunchConfig *config, CUfunction f,
                                                 void **kernelParams, void **extra)
{
    struct vgpu_args_cu_launch_attrs attrs;
    unsigned grid[3], block[3];
    CUresult rv;
    int any;

    if (!config) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    rv = launch_attrs_of(config, &attrs, &any);
    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    grid[0] = config->gridDimX;
    grid[1] = config->gridDimY;
    grid[2] = config->gridDimZ;
    block[0] = config->blockDimX;
    block[1] = config->blockDimY;
    block[2] = config->blockDimZ;
    return launch(f, grid, block, config->sharedMemBytes, config->hStream, kernelParams, extra,
                  any ? &attrs : NULL);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX,
                                                          unsigned int gridDimY,
                                                          unsigned int gridDimZ,
                                                          unsigned int blockDimX,
                                                          unsigned int blockDimY,
                                                          unsigned int blockDimZ,
                                                          unsigned int sharedMemBytes,
                                                          CUstream hStream, void **kernelParams)
{
    static const struct vgpu_args_cu_launch_attrs coop = { .flags = VGPU_CU_LAUNCH_COOPERATIVE };
    const unsigned grid[3] = { gridDimX, gridDimY, gridDimZ };
    const unsigned block[3] = { blockDimX, blockDimY, blockDimZ };

    return launch(f, grid, block, sharedMemBytes, hStream, kernelParams, NULL, &coop);
}

/* ---- streams ---- */

static CUresult stream_new(CUstream *ph, unsigned flags, int priority)
{
    struct CUstream_st *s;
    uint32_t h = 0;
    CUresult rv;

    if (!ph || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_stream_create(cu_rm(), flags, priority, &h));
    }
    CU_LEAVE();
    if (rv != CUDA_SUCCESS) {
        free(s);
        return rv;
    }
    s->magic = CU_MAGIC_STREAM;
    s->handle = h;
    s->flags = flags;
    s->priority = priority;
    s->ctx = cu_current_ctx();
    *ph = s;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamCreate(CUstream *phStream, unsigned int Flags)
{
    return stream_new(phStream, Flags, 0);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamCreateWithPriority(CUstream *phStream, unsigned int flags,
                                                           int priority)
{
    if (priority > 0) {
        priority = 0;
    }
    if (priority < -5) {
        priority = -5;
    }
    return stream_new(phStream, flags, priority);
}

static int user_stream(CUstream s)
{
    return s && s != CU_STREAM_LEGACY && s != CU_STREAM_PER_THREAD && s->magic == CU_MAGIC_STREAM;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamDestroy_v2(CUstream hStream)
{
    CUresult rv;

    if (!user_stream(hStream)) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_stream_destroy(cu_rm(), hStream->handle));
    }
    CU_LEAVE();
    hStream->magic = 0;
    free(hStream);
    return rv == CUDA_ERROR_CONTEXT_IS_DESTROYED ? CUDA_SUCCESS : rv;
}

#undef cuStreamDestroy
CUresult CUDAAPI cuStreamDestroy(CUstream hStream);
VGPU_CU_EXPORT CUresult CUDAAPI cuStreamDestroy(CUstream hStream)
{
    return cuStreamDestroy_v2(hStream);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamSynchronize(CUstream hStream)
{
    uint32_t h;
    CUresult rv;

    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_stream_handle(hStream, &h);
    }
    if (rv == CUDA_SUCCESS) {
        rv = cu_take_deferred(cu_result(vgpu_cu_stream_sync(cu_rm(), h)));
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamQuery(CUstream hStream)
{
    uint32_t h;
    int done = 0;
    CUresult rv;

    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = stream_get(hStream, &h);
    }
    if (rv == CUDA_SUCCESS && hostfn_pending && hostfn_gates(h, stream_blocking(hStream, h))) {
        CU_LEAVE();
        return CUDA_ERROR_NOT_READY;     /* a host function of it has not run */
    }
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_stream_query(cu_rm(), h, &done));
    }
    CU_LEAVE();
    if (rv == CUDA_SUCCESS && !done) {
        rv = CUDA_ERROR_NOT_READY;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamWaitEvent(CUstream hStream, CUevent hEvent,
                                                  unsigned int Flags)
{
    uint32_t h;
    CUresult rv;

    if (!hEvent || hEvent->magic != CU_MAGIC_EVENT) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (Flags != 0) {
        return vgpu_cu_unsupported("cuStreamWaitEvent (flags)");
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_stream_handle(hStream, &h);
    }
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_stream_wait_event(cu_rm(), h, hEvent->handle));
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamGetFlags(CUstream hStream, unsigned int *flags)
{
    if (!flags) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (user_stream(hStream)) {
        *flags = hStream->flags;
        return CUDA_SUCCESS;
    }
    if (hStream && hStream != CU_STREAM_LEGACY && hStream != CU_STREAM_PER_THREAD) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    *flags = 0;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamGetPriority(CUstream hStream, int *priority)
{
    if (!priority) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (user_stream(hStream)) {
        *priority = hStream->priority;
        return CUDA_SUCCESS;
    }
    if (hStream && hStream != CU_STREAM_LEGACY && hStream != CU_STREAM_PER_THREAD) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    *priority = 0;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamGetId(CUstream hStream, unsigned long long *streamId)
{
    if (!streamId) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (user_stream(hStream)) {
        *streamId = hStream->handle;
        return CUDA_SUCCESS;
    }
    if (hStream && hStream != CU_STREAM_LEGACY && hStream != CU_STREAM_PER_THREAD) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    *streamId = 0;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamGetCtx(CUstream hStream, CUcontext *pctx)
{
    if (!pctx) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (user_stream(hStream) && hStream->ctx) {
        *pctx = hStream->ctx;
        return CUDA_SUCCESS;
    }
    *pctx = cu_current_ctx() ? cu_current_ctx() : &cu_g.primary;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamGetCtx_v2(CUstream hStream, CUcontext *pCtx,
                                                  CUgreenCtx *pGreenCtx)
{
    if (pGreenCtx) {
        *pGreenCtx = NULL;
    }
    return cuStreamGetCtx(hStream, pCtx);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamGetDevice(CUstream hStream, CUdevice *device)
{
    if (!device) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    (void)hStream;
    *device = 0;
    return CUDA_SUCCESS;
}

/* Stream capture (graphs) is not offered: nothing is ever being captured. */
VGPU_CU_EXPORT CUresult CUDAAPI cuStreamIsCapturing(CUstream hStream,
                                                    CUstreamCaptureStatus *captureStatus)
{
    (void)hStream;
    if (!captureStatus) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *captureStatus = CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamGetCaptureInfo_v3(CUstream hStream,
                                                          CUstreamCaptureStatus *captureStatus_out,
                                                          cuuint64_t *id_out, CUgraph *graph_out,
                                                          const CUgraphNode **dependencies_out,
                                                          const CUgraphEdgeData **edgeData_out,
                                                          size_t *numDependencies_out)
{
    (void)hStream; (void)id_out; (void)graph_out; (void)dependencies_out; (void)edgeData_out;
    (void)numDependencies_out;
    if (!captureStatus_out) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *captureStatus_out = CU_STREAM_CAPTURE_STATUS_NONE;
    return CUDA_SUCCESS;
}

/* The CUDA 12 form cuBLAS 13 still asks for (cuda.h declares it only for the
 * driver's own build). */
CUresult CUDAAPI cuStreamGetCaptureInfo_v2(CUstream hStream,
                                           CUstreamCaptureStatus *captureStatus_out,
                                           cuuint64_t *id_out, CUgraph *graph_out,
                                           const CUgraphNode **dependencies_out,
                                           size_t *numDependencies_out);

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamGetCaptureInfo_v2(CUstream hStream,
                                                          CUstreamCaptureStatus *captureStatus_out,
                                                          cuuint64_t *id_out, CUgraph *graph_out,
                                                          const CUgraphNode **dependencies_out,
                                                          size_t *numDependencies_out)
{
    return cuStreamGetCaptureInfo_v3(hStream, captureStatus_out, id_out, graph_out,
                                     dependencies_out, NULL, numDependencies_out);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuThreadExchangeStreamCaptureMode(CUstreamCaptureMode *mode)
{
    static __thread CUstreamCaptureMode cur = CU_STREAM_CAPTURE_MODE_GLOBAL;
    CUstreamCaptureMode old = cur;

    if (!mode) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    cur = *mode;
    *mode = old;
    return CUDA_SUCCESS;
}

/* ---- host functions: entry points ---- */

VGPU_CU_EXPORT CUresult CUDAAPI cuLaunchHostFunc(CUstream hStream, CUhostFn fn, void *userData)
{
    if (!fn) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return hostfn_launch(hStream, fn, NULL, userData);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuStreamAddCallback(CUstream hStream, CUstreamCallback callback,
                                                    void *userData, unsigned int flags)
{
    if (!callback || flags != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return hostfn_launch(hStream, NULL, callback, userData);
}

/* ---- events ---- */

VGPU_CU_EXPORT CUresult CUDAAPI cuEventCreate(CUevent *phEvent, unsigned int Flags)
{
    struct CUevent_st *e;
    uint32_t h = 0;
    CUresult rv;

    if (!phEvent || (Flags & ~(unsigned)(CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING |
                                         CU_EVENT_INTERPROCESS))) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (Flags & CU_EVENT_INTERPROCESS) {
        return vgpu_cu_unsupported("cuEventCreate (interprocess)");
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_event_create(cu_rm(), Flags, &h));
    }
    CU_LEAVE();
    if (rv != CUDA_SUCCESS) {
        free(e);
        return rv;
    }
    e->magic = CU_MAGIC_EVENT;
    e->handle = h;
    e->flags = Flags;
    *phEvent = e;
    return CUDA_SUCCESS;
}

static int event_ok(CUevent e)
{
    return e && e->magic == CU_MAGIC_EVENT;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuEventDestroy_v2(CUevent hEvent)
{
    CUresult rv;

    if (!event_ok(hEvent)) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_event_destroy(cu_rm(), hEvent->handle));
    }
    CU_LEAVE();
    hEvent->magic = 0;
    free(hEvent);
    return rv == CUDA_ERROR_CONTEXT_IS_DESTROYED ? CUDA_SUCCESS : rv;
}

#undef cuEventDestroy
CUresult CUDAAPI cuEventDestroy(CUevent hEvent);
VGPU_CU_EXPORT CUresult CUDAAPI cuEventDestroy(CUevent hEvent)
{
    return cuEventDestroy_v2(hEvent);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuEventRecord(CUevent hEvent, CUstream hStream)
{
    uint32_t h;
    CUresult rv;

    if (!event_ok(hEvent)) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_stream_handle(hStream, &h);
    }
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_event_record(cu_rm(), hEvent->handle, h));
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuEventRecordWithFlags(CUevent hEvent, CUstream hStream,
                                                       unsigned int flags)
{
    if (flags != CU_EVENT_RECORD_DEFAULT) {
        return vgpu_cu_unsupported("cuEventRecordWithFlags (external)");
    }
    return cuEventRecord(hEvent, hStream);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuEventSynchronize(CUevent hEvent)
{
    CUresult rv;

    if (!event_ok(hEvent)) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_event_sync(cu_rm(), hEvent->handle));
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuEventQuery(CUevent hEvent)
{
    int done = 0;
    CUresult rv;

    if (!event_ok(hEvent)) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_event_query(cu_rm(), hEvent->handle, &done));
    }
    CU_LEAVE();
    if (rv == CUDA_SUCCESS && !done) {
        rv = CUDA_ERROR_NOT_READY;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuEventElapsedTime_v2(float *pMilliseconds, CUevent hStart,
                                                      CUevent hEnd)
{
    CUresult rv;

    if (!pMilliseconds) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (!event_ok(hStart) || !event_ok(hEnd)) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_event_elapsed(cu_rm(), hStart->handle, hEnd->handle,
                                             pMilliseconds));
    }
    CU_LEAVE();
    return rv;
}

#undef cuEventElapsedTime
CUresult CUDAAPI cuEventElapsedTime(float *pMilliseconds, CUevent hStart, CUevent hEnd);
VGPU_CU_EXPORT CUresult CUDAAPI cuEventElapsedTime(float *pMilliseconds, CUevent hStart,
                                                   CUevent hEnd)
{
    return cuEventElapsedTime_v2(pMilliseconds, hStart, hEnd);
}

/* ---- function attributes and occupancy ---- */

VGPU_CU_EXPORT CUresult CUDAAPI cuFuncGetAttribute(int *pi, CUfunction_attribute attrib,
                                                   CUfunction hfunc)
{
    struct CUfunc_st *f = cu_func(hfunc);
    int32_t v = 0;
    CUresult rv;

    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!pi) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_func_get_attr(cu_rm(), f->handle, attrib, &v));
    }
    CU_LEAVE();
    if (rv == CUDA_SUCCESS) {
        *pi = v;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib,
                                                   int value)
{
    struct CUfunc_st *f = cu_func(hfunc);
    CUresult rv;

    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_func_set_attr(cu_rm(), f->handle, attrib, value));
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuKernelGetAttribute(int *pi, CUfunction_attribute attrib,
                                                     CUkernel kernel, CUdevice dev)
{
    if (dev != 0) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    return cuFuncGetAttribute(pi, attrib, (CUfunction)(void *)kernel);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuKernelSetAttribute(CUfunction_attribute attrib, int val,
                                                     CUkernel kernel, CUdevice dev)
{
    if (dev != 0) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    return cuFuncSetAttribute((CUfunction)(void *)kernel, attrib, val);
}

/* Cache and bank preferences: hints the driver may ignore natively too. */
VGPU_CU_EXPORT CUresult CUDAAPI cuFuncSetCacheConfig(CUfunction hfunc, CUfunc_cache config)
{
    (void)config;
    return cu_func(hfunc) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuKernelSetCacheConfig(CUkernel kernel, CUfunc_cache config,
                                                       CUdevice dev)
{
    (void)dev;
    return cuFuncSetCacheConfig((CUfunction)(void *)kernel, config);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuFuncSetSharedMemConfig(CUfunction hfunc,
                                                         CUsharedconfig config)
{
    (void)config;
    return cu_func(hfunc) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

static CUresult occupancy(struct CUfunc_st *f, int block, size_t dyn, int *blocks)
{
    int32_t n = 0;
    CUresult rv;

    if (dyn > INT32_MAX) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_occupancy(cu_rm(), f->handle, block, (int32_t)dyn, &n));
    }
    CU_LEAVE();
    if (rv == CUDA_SUCCESS) {
        *blocks = n;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuOccupancyMaxActiveBlocksPerMultiprocessor(int *numBlocks,
                                                                            CUfunction func,
                                                                            int blockSize,
                                                                            size_t dynamicSMemSize)
{
    struct CUfunc_st *f = cu_func(func);

    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!numBlocks || blockSize <= 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return occupancy(f, blockSize, dynamicSMemSize, numBlocks);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
    int *numBlocks, CUfunction func, int blockSize, size_t dynamicSMemSize, unsigned int flags)
{
    (void)flags;
    return cuOccupancyMaxActiveBlocksPerMultiprocessor(numBlocks, func, blockSize,
                                                       dynamicSMemSize);
}

/* The block size with the most resident threads per SM, asked of the host
 * for each multiple of the warp size (as the runtime's own helper does). */
VGPU_CU_EXPORT CUresult CUDAAPI cuOccupancyMaxPotentialBlockSizeWithFlags(
    int *minGridSize, int *blockSize, CUfunction func, CUoccupancyB2DSize blockSizeToDynamicSMemSize,
    size_t dynamicSMemSize, int blockSizeLimit, unsigned int flags)
{
    struct CUfunc_st *f = cu_func(func);
    int warp = cu_attr(CU_DEVICE_ATTRIBUTE_WARP_SIZE);
    int sms = cu_attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    int limit, b, best_b = 0, best_blocks = 0, best_threads = 0;
    CUresult rv;

    (void)flags;
    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!minGridSize || !blockSize) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (warp <= 0) {
        warp = 32;
    }
    limit = f->info.max_threads > 0 ? f->info.max_threads : 1024;
    if (blockSizeLimit > 0 && blockSizeLimit < limit) {
        limit = blockSizeLimit;
    }
    for (b = (limit / warp) * warp; b > 0; b -= warp) {
        size_t dyn = blockSizeToDynamicSMemSize ? blockSizeToDynamicSMemSize(b) : dynamicSMemSize;
        int n = 0;

        rv = occupancy(f, b, dyn, &n);
        if (rv != CUDA_SUCCESS) {
            return rv;
        }
        if (n * b > best_threads) {
            best_threads = n * b;
            best_b = b;
            best_blocks = n;
        }
    }
    if (best_b == 0) {
        best_b = limit < warp ? limit : warp;
        best_blocks = 1;
    }
    *blockSize = best_b;
    *minGridSize = best_blocks * (sms > 0 ? sms : 1);
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuOccupancyMaxPotentialBlockSize(
    int *minGridSize, int *blockSize, CUfunction func, CUoccupancyB2DSize blockSizeToDynamicSMemSize,
    size_t dynamicSMemSize, int blockSizeLimit)
{
    return cuOccupancyMaxPotentialBlockSizeWithFlags(minGridSize, blockSize, func,
                                                     blockSizeToDynamicSMemSize,
                                                     dynamicSMemSize, blockSizeLimit, 0);
}

/* What is left of an SM's shared memory for one of numBlocks blocks, from
 * the device's attributes and the function's static use. */
VGPU_CU_EXPORT CUresult CUDAAPI cuOccupancyAvailableDynamicSMemPerBlock(size_t *dynamicSmemSize,
                                                                        CUfunction func,
                                                                        int numBlocks,
                                                                        int blockSize)
{
    struct CUfunc_st *f = cu_func(func);
    long sm = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR);
    long optin = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
    long reserved = cu_attr(CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK);
    long per;

    (void)blockSize;
    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!dynamicSmemSize || numBlocks <= 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    per = sm / numBlocks - reserved - f->info.shared_bytes;
    if (per > optin - f->info.shared_bytes) {
        per = optin - f->info.shared_bytes;
    }
    *dynamicSmemSize = per > 0 ? (size_t)per : 0;
    return CUDA_SUCCESS;
}

/*
 * Clusters. The host has no occupancy query for them (the driver's
 * cuOccupancyMaxActiveClusters would need the whole launch configuration in
 * a request), so the answers come from what the host does answer: a
 * function's block occupancy and its compile-time cluster dimension. They
 * count every resident block of every SM as usable by some cluster (an
 * upper bound: the GPU places a cluster's blocks within one GPC), and take
 * Hopper's cluster sizes: 8 blocks portable, 16 where the function allows
 * non-portable sizes.
 */

/* The cluster size a launch of f with config asks for: its attribute,
 * else the function's own (__cluster_dims__), else 1. */
static CUresult cluster_size_of(struct CUfunc_st *f, const CUlaunchConfig *config, unsigned *size)
{
    static const CUfunction_attribute req[3] = { CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH,
                                                 CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT,
                                                 CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH };
    uint32_t dims[3] = { 0, 0, 0 };
    unsigned i;
    CUresult rv;

    for (i = 0; i < config->numAttrs && config->attrs; i++) {
        if (config->attrs[i].id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION) {
            rv = cluster_dims(&config->attrs[i], dims);
            if (rv != CUDA_SUCCESS) {
                return rv;
            }
        }
    }
    if (dims[0] == 0) {
        for (i = 0; i < 3; i++) {
            int v = 0;

            rv = cuFuncGetAttribute(&v, req[i], f);
            if (rv != CUDA_SUCCESS) {
                return rv;
            }
            dims[i] = v > 0 ? (uint32_t)v : 1;
        }
    }
    *size = dims[0] * dims[1] * dims[2];
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuOccupancyMaxActiveClusters(int *numClusters, CUfunction func,
                                                             const CUlaunchConfig *config)
{
    struct CUfunc_st *f = cu_func(func);
    unsigned size = 1;
    int blocks = 0, sms = cu_attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
    CUresult rv;

    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!numClusters || !config) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    rv = cluster_size_of(f, config, &size);
    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (size > 1 && !cu_attr(CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH)) {
        *numClusters = 0;
        return CUDA_SUCCESS;
    }
    rv = occupancy(f, (int)(config->blockDimX * config->blockDimY * config->blockDimZ),
                   config->sharedMemBytes, &blocks);
    if (rv == CUDA_SUCCESS) {
        *numClusters = (int)((long)blocks * (sms > 0 ? sms : 1) / size);
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuOccupancyMaxPotentialClusterSize(int *clusterSize, CUfunction func,
                                                                   const CUlaunchConfig *config)
{
    struct CUfunc_st *f = cu_func(func);
    unsigned size = 1;
    int blocks = 0, nonportable = 0;
    CUresult rv;

    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!clusterSize || !config) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (!cu_attr(CU_DEVICE_ATTRIBUTE_CLUSTER_LAUNCH)) {
        *clusterSize = 1;
        return CUDA_SUCCESS;
    }
    rv = occupancy(f, (int)(config->blockDimX * config->blockDimY * config->blockDimZ),
                   config->sharedMemBytes, &blocks);
    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (blocks == 0) {
        *clusterSize = 0;
        return CUDA_SUCCESS;
    }
    /* a compile-time cluster dimension is the only size it runs with */
    rv = cluster_size_of(f, &(CUlaunchConfig){ .numAttrs = 0 }, &size);
    if (rv == CUDA_SUCCESS && size == 1) {
        rv = cuFuncGetAttribute(&nonportable, CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED,
                                func);
        size = nonportable ? LAUNCH_MAX_CLUSTER : 8;
    }
    if (rv == CUDA_SUCCESS) {
        *clusterSize = (int)size;
    }
    return rv;
}
