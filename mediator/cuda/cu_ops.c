/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA driver operations in the VM's GPU worker: see cu_ops.h.
 *
 * Handles. A handle is (epoch:4 | kind:4 | generation:8 | index:16): the
 * index of a slot in the queue's table of that kind, the slot's generation
 * (bumped when the slot is freed, so a stale handle misses), the kind (a
 * stream handle is never taken for an event) and the low bits of the VM's
 * context epoch (a handle from one of the VM's contexts before a worker
 * restart is context-lost, not silently another object; one of an epoch the
 * VM never had is bad-args). Handles are per queue: the same number on
 * another queue or another VM names nothing there.
 *
 * Device memory. Each queue keeps its allocations and the globals of its
 * modules as sorted ranges; a copy or memset must lie inside one of them.
 * Kernels themselves address memory freely within their context: the GPU's
 * MMU confines them to it, and a context is never shared between VMs (nor
 * between queues). New allocations are zeroed before the guest sees them.
 *
 * Waiting. Synchronising operations poll for completion until the request's
 * deadline; work still running at the deadline can only be stopped by
 * ending the context, so env->sticky is set with VGPU_S_TIMEOUT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda.h>
#include <cuda_runtime_api.h>

/* xxHash (Debian's libxxhash-dev) header-only: nothing more to ship. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "cu_ops.h"

#define CU_INDEX_BITS   16u
#define CU_MAX_SLOTS    (1u << CU_INDEX_BITS)
#define CU_SPIN_NS      200000ull       /* busy-poll before napping in a wait */
#define CU_NAP_MIN_NS   20000ull        /* then naps of 1/32 of the time waited */
#define CU_NAP_MAX_NS   1000000ull
#define CU_IMAGE_CACHE_BYTES (512ull << 20) /* per VM; one image at most half */

enum cu_kind {
    CU_K_MODULE = 1,
    CU_K_FUNC   = 2,
    CU_K_STREAM = 3,
    CU_K_EVENT  = 4,
};

/* ---- the driver entry points, resolved through the runtime ---- */

/* Each field has the type of the prototype cuda.h maps the name to (e.g.
 * cuMemAlloc -> cuMemAlloc_v2), and is resolved by the plain name at this
 * toolkit's version, which yields that same variant. */
#define CU_API(X)                                                   \
    X(cuDeviceGet) X(cuDeviceGetAttribute) X(cuDeviceGetName)       \
    X(cuDeviceGetUuid) X(cuDeviceTotalMem) X(cuDriverGetVersion)    \
    X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease)        \
    X(cuCtxCreate) X(cuCtxDestroy) X(cuCtxSetCurrent)               \
    X(cuMemAlloc) X(cuMemFree) X(cuMemGetInfo)                      \
    X(cuMemsetD8Async) X(cuMemsetD16Async) X(cuMemsetD32Async)      \
    X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync) X(cuMemcpyDtoDAsync)  \
    X(cuMemcpy2DAsync)                                              \
    X(cuModuleLoadData) X(cuModuleUnload) X(cuModuleGetFunction)    \
    X(cuModuleGetGlobal) X(cuFuncGetParamInfo) X(cuFuncGetAttribute)\
    X(cuFuncSetAttribute) X(cuLaunchKernel) X(cuLaunchKernelEx)     \
    X(cuTensorMapEncodeTiled) X(cuTensorMapEncodeIm2col)            \
    X(cuCtxSetLimit) X(cuCtxGetLimit)                               \
    X(cuOccupancyMaxActiveBlocksPerMultiprocessor)                  \
    X(cuStreamCreateWithPriority) X(cuStreamDestroy)                \
    X(cuStreamQuery) X(cuStreamWaitEvent)                           \
    X(cuEventCreate) X(cuEventDestroy) X(cuEventRecord)             \
    X(cuEventQuery) X(cuEventElapsedTime)

#define CU_FIELD(name) __typeof__(name) *name;
static struct {
    CU_API(CU_FIELD)
    bool loaded;
    const char *why;
} api;

int vgpu_cu_api_load(const char **why)
{
    enum cudaDriverEntryPointQueryResult q;

    if (api.loaded) {
        return 0;
    }
    if (api.why) {
        *why = api.why;
        return -ENOSYS;
    }
#define CU_LOAD(name)                                                               \
    if (cudaGetDriverEntryPointByVersion(#name, (void **)&api.name, CUDA_VERSION,  \
                                         cudaEnableDefault, &q) != cudaSuccess ||   \
        q != cudaDriverEntryPointSuccess || !api.name) {                            \
        (void)cudaGetLastError();                                                   \
        api.why = "the driver lacks " #name;                                        \
        *why = api.why;                                                             \
        return -ENOSYS;                                                             \
    }
    CU_API(CU_LOAD)
#undef CU_LOAD
    api.loaded = true;
    return 0;
}

/* ---- tables ---- */

struct cu_slot {
    void    *obj;
    uint8_t  gen;
    bool     used;
};

struct cu_table {
    struct cu_slot *v;
    uint32_t n;             /* slots in use or used before (high-water mark) */
    uint32_t cap;
    uint32_t live;
};

struct cu_module {
    CUmodule mod;
};

struct cu_func {
    CUfunction f;
    uint32_t module;        /* the module's handle */
    uint32_t param_count;
    uint32_t param_bytes;
    int32_t  max_threads;
};

struct cu_range {
    uint64_t base;
    uint64_t size;
    uint32_t module;        /* 0: an allocation; else the module of a global */
};

struct cu_queue {
    CUcontext ctx;
    bool      primary;      /* the device's primary context (queue 0) */
    uint32_t  epoch;
    uint32_t  lost_epochs;  /* earlier generations of the VM (env.lost_epochs) */
    struct cu_table t[5];   /* by enum cu_kind */
    struct cu_range *ranges;    /* sorted by base, disjoint */
    uint32_t nranges, rcap;
    uint64_t alloc_bytes;
    bool     has_attrs;     /* CU_LAUNCH_ATTRS for the next launch */
    struct vgpu_args_cu_launch_attrs attrs;
    int      deferred_st;   /* first failure of a deferred request, VGPU_S_OK: none */
    uint64_t deferred_result;
};

/* An image the VM loaded, kept by content for loads by hash. */
struct cu_image {
    struct cu_image *next;
    XXH128_hash_t hash;
    uint8_t *bytes;         /* len bytes and a NUL */
    uint64_t len;
    uint64_t last_use;      /* vm->tick */
};

struct vgpu_cu_vm {
    struct cu_queue *q[VGPU_MAX_QUEUES];
    int      device;        /* of the contexts, from the first request */
    uint64_t image_loads;
    struct cu_image *images;
    uint64_t image_bytes, tick, image_hits;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint32_t handle_make(const struct cu_queue *cq, enum cu_kind k, uint32_t idx, uint8_t gen)
{
    return (cq->epoch & 0xfu) << 28 | (uint32_t)k << 24 | (uint32_t)gen << 16 | idx;
}

/* The slot a handle names, or NULL with *st set (bad-args / context-lost). */
static struct cu_slot *handle_slot(struct cu_queue *cq, enum cu_kind k, uint32_t h, int *st)
{
    struct cu_table *t = &cq->t[k];
    uint32_t idx = h & (CU_MAX_SLOTS - 1);
    struct cu_slot *sl;

    if (((h >> 24) & 0xfu) != (uint32_t)k) {
        *st = VGPU_S_BAD_ARGS;
        return NULL;
    }
    if ((h >> 28) != (cq->epoch & 0xfu)) {
        /* One of this VM's earlier contexts, or nobody's. */
        uint32_t age = (cq->epoch - (h >> 28)) & 0xfu;

        *st = age >= 1 && age <= cq->lost_epochs ? VGPU_S_CONTEXT_LOST : VGPU_S_BAD_ARGS;
        return NULL;
    }
    if (idx >= t->n) {
        *st = VGPU_S_BAD_ARGS;
        return NULL;
    }
    sl = &t->v[idx];
    if (!sl->used || sl->gen != (uint8_t)(h >> 16)) {
        *st = VGPU_S_BAD_ARGS;
        return NULL;
    }
    return sl;
}

/* A free slot of t for obj; its handle in *h. 0 or VGPU_S_QUOTA / NO_MEMORY. */
static int slot_new(struct cu_queue *cq, enum cu_kind k, void *obj, uint32_t *h)
{
    struct cu_table *t = &cq->t[k];
    uint32_t i;

    if (t->live < t->n) {
        for (i = 0; i < t->n && t->v[i].used; i++) {
        }
    } else {
        if (t->n == CU_MAX_SLOTS) {
            return VGPU_S_QUOTA;
        }
        if (t->n == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 64;
            struct cu_slot *v = realloc(t->v, cap * sizeof(*v));

            if (!v) {
                return VGPU_S_NO_MEMORY;
            }
            memset(v + t->cap, 0, (cap - t->cap) * sizeof(*v));
            t->v = v;
            t->cap = cap;
        }
        i = t->n++;
    }
    t->v[i].obj = obj;
    t->v[i].used = true;
    t->live++;
    *h = handle_make(cq, k, i, t->v[i].gen);
    return VGPU_S_OK;
}

static void slot_free(struct cu_queue *cq, enum cu_kind k, struct cu_slot *sl)
{
    sl->used = false;
    sl->obj = NULL;
    sl->gen++;
    cq->t[k].live--;
}

/* ---- device ranges ---- */

/* Index of the first range with base > addr. */
static uint32_t range_upper(const struct cu_queue *cq, uint64_t addr)
{
    uint32_t lo = 0, hi = cq->nranges;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;

        if (cq->ranges[mid].base <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* true when [addr, addr+len) lies inside one range of the queue. */
static bool range_owned(const struct cu_queue *cq, uint64_t addr, uint64_t len)
{
    uint32_t i = range_upper(cq, addr);
    const struct cu_range *r;

    if (i == 0 || len == 0) {
        return false;
    }
    r = &cq->ranges[i - 1];
    return addr - r->base <= r->size && len <= r->size - (addr - r->base);
}

static int range_add(struct cu_queue *cq, uint64_t base, uint64_t size, uint32_t module)
{
    uint32_t i = range_upper(cq, base);

    /* The driver never hands out overlapping memory; a global looked up
     * twice is already there. */
    if (i > 0 && cq->ranges[i - 1].base == base) {
        return VGPU_S_OK;
    }
    if (cq->nranges == cq->rcap) {
        uint32_t cap = cq->rcap ? cq->rcap * 2 : 64;
        struct cu_range *v = realloc(cq->ranges, cap * sizeof(*v));

        if (!v) {
            return VGPU_S_NO_MEMORY;
        }
        cq->ranges = v;
        cq->rcap = cap;
    }
    memmove(&cq->ranges[i + 1], &cq->ranges[i], (cq->nranges - i) * sizeof(*cq->ranges));
    cq->ranges[i] = (struct cu_range){ .base = base, .size = size, .module = module };
    cq->nranges++;
    return VGPU_S_OK;
}

static void range_del(struct cu_queue *cq, uint32_t i)
{
    memmove(&cq->ranges[i], &cq->ranges[i + 1], (cq->nranges - i - 1) * sizeof(*cq->ranges));
    cq->nranges--;
}

/* ---- errors ---- */

static bool cu_sticky(CUresult r)
{
    switch (r) {
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_TIMEOUT:
    case CUDA_ERROR_LAUNCH_FAILED:
    case CUDA_ERROR_ASSERT:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_ECC_UNCORRECTABLE:
    case CUDA_ERROR_CONTEXT_IS_DESTROYED:
    case CUDA_ERROR_DEVICE_UNAVAILABLE:
    case CUDA_ERROR_UNKNOWN:
        return true;
    default:
        return false;
    }
}

/* Maps a failed driver call to the request's status; the CUresult goes to
 * the guest in *result, which it turns back into the native error. */
static int cu_status(struct vgpu_cu_env *env, CUresult r, uint64_t *result)
{
    if (r == CUDA_SUCCESS) {
        return VGPU_S_OK;
    }
    *result = (uint64_t)r;
    if (cu_sticky(r)) {
        env->sticky = true;
        return VGPU_S_GPU_FAULT;
    }
    if (r == CUDA_ERROR_OUT_OF_MEMORY) {
        return VGPU_S_NO_MEMORY;
    }
    return VGPU_S_CUDA_ERROR;
}

/* ---- contexts ---- */

static void queue_free_objects(struct cu_queue *cq)
{
    for (uint32_t i = 0; i < cq->t[CU_K_FUNC].n; i++) {
        free(cq->t[CU_K_FUNC].v[i].obj);
    }
    for (uint32_t i = 0; i < cq->t[CU_K_MODULE].n; i++) {
        struct cu_module *m = cq->t[CU_K_MODULE].v[i].obj;

        if (m) {
            (void)api.cuModuleUnload(m->mod);
            free(m);
        }
    }
    for (uint32_t i = 0; i < cq->t[CU_K_STREAM].n; i++) {
        if (cq->t[CU_K_STREAM].v[i].used) {
            (void)api.cuStreamDestroy((CUstream)cq->t[CU_K_STREAM].v[i].obj);
        }
    }
    for (uint32_t i = 0; i < cq->t[CU_K_EVENT].n; i++) {
        if (cq->t[CU_K_EVENT].v[i].used) {
            (void)api.cuEventDestroy((CUevent)cq->t[CU_K_EVENT].v[i].obj);
        }
    }
    for (uint32_t i = 0; i < cq->nranges; i++) {
        if (cq->ranges[i].module == 0) {
            (void)api.cuMemFree(cq->ranges[i].base);
        }
    }
    for (unsigned k = 0; k < 5; k++) {
        free(cq->t[k].v);
    }
    free(cq->ranges);
    memset(cq->t, 0, sizeof(cq->t));
    cq->ranges = NULL;
    cq->nranges = cq->rcap = 0;
}

/* Frees a queue's objects and context; returns its allocated bytes. The
 * context must be current (primary) or is destroyed (own). */
static uint64_t queue_destroy(struct cu_queue *cq, int device)
{
    uint64_t bytes;
    CUdevice dev;

    if (!cq) {
        return 0;
    }
    bytes = cq->alloc_bytes;
    if (api.cuCtxSetCurrent(cq->ctx) == CUDA_SUCCESS) {
        queue_free_objects(cq);
    }
    if (cq->primary) {
        if (api.cuDeviceGet(&dev, device) == CUDA_SUCCESS) {
            (void)api.cuDevicePrimaryCtxRelease(dev);
        }
    } else {
        (void)api.cuCtxDestroy(cq->ctx);
    }
    free(cq);
    return bytes;
}

/* The queue's context, created on first use, made current. */
static int queue_get(struct vgpu_cu_vm *vm, struct vgpu_cu_env *env, uint32_t queue,
                     struct cu_queue **out, uint64_t *result)
{
    struct cu_queue *cq;
    CUdevice dev;
    CUresult r;

    if (queue >= VGPU_MAX_QUEUES) {
        return VGPU_S_BAD_ARGS;
    }
    cq = vm->q[queue];
    if (!cq) {
        cq = calloc(1, sizeof(*cq));
        if (!cq) {
            return VGPU_S_NO_MEMORY;
        }
        cq->epoch = env->epoch;
        cq->lost_epochs = env->lost_epochs;
        vm->device = env->device;
        r = api.cuDeviceGet(&dev, env->device);
        if (r == CUDA_SUCCESS) {
            if (queue == 0) {
                cq->primary = true;
                r = api.cuDevicePrimaryCtxRetain(&cq->ctx, dev);
            } else {
                r = api.cuCtxCreate(&cq->ctx, NULL, 0, dev);
            }
        }
        if (r != CUDA_SUCCESS) {
            free(cq);
            return cu_status(env, r, result);
        }
        vm->q[queue] = cq;
    }
    r = api.cuCtxSetCurrent(cq->ctx);
    if (r != CUDA_SUCCESS) {
        return cu_status(env, r, result);
    }
    *out = cq;
    return VGPU_S_OK;
}

struct vgpu_cu_vm *vgpu_cu_vm_new(void)
{
    return calloc(1, sizeof(struct vgpu_cu_vm));
}

uint64_t vgpu_cu_vm_free(struct vgpu_cu_vm *vm)
{
    uint64_t bytes = 0;

    if (!vm) {
        return 0;
    }
    while (vm->images) {
        struct cu_image *next = vm->images->next;

        free(vm->images->bytes);
        free(vm->images);
        vm->images = next;
    }
    if (api.loaded) {
        for (unsigned i = 0; i < VGPU_MAX_QUEUES; i++) {
            if (vm->q[i]) {
                bytes += queue_destroy(vm->q[i], vm->device);
            }
        }
        (void)cudaSetDevice(vm->device);
    }
    free(vm);
    return bytes;
}

void vgpu_cu_vm_counts(const struct vgpu_cu_vm *vm, struct vgpu_cu_counts *out)
{
    memset(out, 0, sizeof(*out));
    if (!vm) {
        return;
    }
    out->image_cache_hits = vm->image_hits;
    for (unsigned i = 0; i < VGPU_MAX_QUEUES; i++) {
        const struct cu_queue *cq = vm->q[i];

        if (!cq) {
            continue;
        }
        out->contexts++;
        out->modules += cq->t[CU_K_MODULE].live;
        out->functions += cq->t[CU_K_FUNC].live;
        out->streams += cq->t[CU_K_STREAM].live;
        out->events += cq->t[CU_K_EVENT].live;
        for (uint32_t r = 0; r < cq->nranges; r++) {
            out->allocations += cq->ranges[r].module == 0;
        }
    }
}

/* ---- helpers of the operations ---- */

struct cu_req {
    struct vgpu_cu_vm *vm;
    struct vgpu_cu_env *env;
    struct cu_queue *cq;
    const struct vgpu_sqe *sqe;
    const struct vgpu_shm_view *shm;
    uint64_t *result;
};

static int stream_of(struct cu_req *r, uint32_t h, CUstream *out)
{
    struct cu_slot *sl;
    int st;

    if (h == 0) {
        *out = NULL;    /* the context's default (legacy NULL) stream */
        return VGPU_S_OK;
    }
    sl = handle_slot(r->cq, CU_K_STREAM, h, &st);
    if (!sl) {
        return st;
    }
    *out = (CUstream)sl->obj;
    return VGPU_S_OK;
}

static int event_of(struct cu_req *r, uint32_t h, CUevent *out)
{
    struct cu_slot *sl;
    int st;

    sl = handle_slot(r->cq, CU_K_EVENT, h, &st);
    if (!sl) {
        return st;
    }
    *out = (CUevent)sl->obj;
    return VGPU_S_OK;
}

static int func_of(struct cu_req *r, uint32_t h, struct cu_func **out)
{
    struct cu_slot *sl;
    int st;

    sl = handle_slot(r->cq, CU_K_FUNC, h, &st);
    if (!sl) {
        return st;
    }
    *out = sl->obj;
    return VGPU_S_OK;
}

/* The host address of a BAR2 range the mediator validated; NULL if it is
 * not inside the mapping (defence in depth). */
static uint8_t *shm_at(const struct cu_req *r, uint64_t off, uint64_t len)
{
    if (len > r->shm->size || off > r->shm->size - len) {
        return NULL;
    }
    return r->shm->base + off;
}

typedef CUresult (*cu_query_fn)(void *obj);

/* Polls query(obj) until it is not CUDA_ERROR_NOT_READY or the deadline. */
static int wait_for(struct cu_req *r, cu_query_fn query, void *obj)
{
    uint64_t start = now_ns();

    for (;;) {
        CUresult q = query(obj);
        uint64_t now;

        if (q != CUDA_ERROR_NOT_READY) {
            return cu_status(r->env, q, r->result);
        }
        now = now_ns();
        if (r->env->try_ns && now - start >= r->env->try_ns) {
            return VGPU_S_BUSY;     /* run again without the try, free to block */
        }
        if (r->env->deadline_ns && now >= r->env->deadline_ns) {
            r->env->timed_out = true;
            r->env->sticky = true;  /* only ending the context stops the work */
            return VGPU_S_TIMEOUT;
        }
        if (now - start > CU_SPIN_NS) {
            /* Seen at most ~3% late, without 50000 wake-ups a second
             * through a long kernel. */
            uint64_t nap = (now - start) / 32;
            struct timespec ts;

            nap = nap < CU_NAP_MIN_NS ? CU_NAP_MIN_NS : nap > CU_NAP_MAX_NS ? CU_NAP_MAX_NS : nap;
            if (r->env->deadline_ns && r->env->deadline_ns - now < nap) {
                nap = r->env->deadline_ns - now;
            }
            ts.tv_sec = 0;
            ts.tv_nsec = (long)nap;
            nanosleep(&ts, NULL);
        }
    }
}

static CUresult query_stream(void *obj)
{
    return api.cuStreamQuery((CUstream)obj);
}

static CUresult query_event(void *obj)
{
    return api.cuEventQuery((CUevent)obj);
}

/* ---- the operations ---- */

static int op_device_info(struct cu_req *r)
{
    const struct vgpu_args_cu_out *a = &r->sqe->args.cu_out;
    struct vgpu_cu_device_info info;
    uint8_t *out = shm_at(r, a->out_off, sizeof(info));
    CUdevice dev;
    CUuuid uuid;
    size_t total;
    int drv = 0;
    CUresult e;

    if (!out || a->out_len < sizeof(info)) {
        return VGPU_S_BAD_RANGE;
    }
    memset(&info, 0, sizeof(info));
    e = api.cuDeviceGet(&dev, r->env->device);
    if (e == CUDA_SUCCESS) {
        e = api.cuDeviceGetName(info.name, sizeof(info.name) - 1, dev);
    }
    if (e == CUDA_SUCCESS) {
        e = api.cuDeviceGetUuid(&uuid, dev);
    }
    if (e == CUDA_SUCCESS) {
        e = api.cuDeviceTotalMem(&total, dev);
    }
    if (e == CUDA_SUCCESS) {
        e = api.cuDriverGetVersion(&drv);
    }
    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    memcpy(info.uuid, uuid.bytes, sizeof(info.uuid));
    info.total_mem = r->env->mem_quota && r->env->mem_quota < total ? r->env->mem_quota : total;
    info.driver_version = (uint32_t)drv;
    info.attr_count = CU_DEVICE_ATTRIBUTE_MAX < VGPU_CU_ATTRS ? CU_DEVICE_ATTRIBUTE_MAX
                                                              : VGPU_CU_ATTRS;
    for (uint32_t i = 1; i < info.attr_count; i++) {
        int v = 0;

        /* Attributes this driver does not know read 0, as for the guest. */
        if (api.cuDeviceGetAttribute(&v, (CUdevice_attribute)i, dev) == CUDA_SUCCESS) {
            info.attrs[i] = v;
        }
    }
    memcpy(out, &info, sizeof(info));
    return VGPU_S_OK;
}

static int op_mem_get_info(struct cu_req *r)
{
    size_t free_b = 0, total = 0;
    CUresult e = api.cuMemGetInfo(&free_b, &total);
    uint64_t quota = r->env->mem_quota;

    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    if (quota) {
        uint64_t left = r->env->mem_used < quota ? quota - r->env->mem_used : 0;

        free_b = left < free_b ? left : free_b;
    }
    *r->result = free_b;
    return VGPU_S_OK;
}

static int op_mem_alloc(struct cu_req *r)
{
    uint64_t bytes = r->sqe->args.cu_mem.bytes;
    CUdeviceptr p;
    CUresult e;
    int st;

    if (bytes == 0) {
        return VGPU_S_BAD_ARGS;
    }
    if (r->env->mem_quota &&
        (bytes > r->env->mem_quota || r->env->mem_used > r->env->mem_quota - bytes)) {
        return VGPU_S_QUOTA;
    }
    e = api.cuMemAlloc(&p, bytes);
    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    /* Memory the driver recycles must not show anyone's old data: zero it,
     * and finish before any stream of the guest can touch it. */
    e = api.cuMemsetD8Async(p, 0, bytes, NULL);
    if (e == CUDA_SUCCESS) {
        st = wait_for(r, query_stream, NULL);
        if (st != VGPU_S_OK) {
            (void)api.cuMemFree(p);
            return st;
        }
    }
    if (e != CUDA_SUCCESS) {
        (void)api.cuMemFree(p);
        return cu_status(r->env, e, r->result);
    }
    st = range_add(r->cq, p, bytes, 0);
    if (st != VGPU_S_OK) {
        (void)api.cuMemFree(p);
        return st;
    }
    r->cq->alloc_bytes += bytes;
    r->env->mem_delta += (int64_t)bytes;
    *r->result = p;
    return VGPU_S_OK;
}

static int op_mem_free(struct cu_req *r)
{
    uint64_t p = r->sqe->args.cu_mem.dptr;
    uint32_t i = range_upper(r->cq, p);
    struct cu_range *rg;
    CUresult e;

    if (i == 0 || (rg = &r->cq->ranges[i - 1])->base != p || rg->module != 0) {
        return VGPU_S_BAD_ARGS;     /* not the start of one of its allocations */
    }
    e = api.cuMemFree(p);
    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    r->cq->alloc_bytes -= rg->size;
    r->env->mem_delta -= (int64_t)rg->size;
    range_del(r->cq, i - 1);
    return VGPU_S_OK;
}

static int op_memset(struct cu_req *r)
{
    const struct vgpu_args_cu_memset *a = &r->sqe->args.cu_memset;
    CUstream s = NULL;
    CUresult e;
    int st;

    if ((a->elem_size != 1 && a->elem_size != 2 && a->elem_size != 4) || a->count == 0 ||
        a->count > UINT64_MAX / a->elem_size) {
        return VGPU_S_BAD_ARGS;
    }
    if (!range_owned(r->cq, a->dptr, a->count * a->elem_size)) {
        return VGPU_S_BAD_RANGE;
    }
    if ((st = stream_of(r, a->stream, &s)) != VGPU_S_OK) {
        return st;
    }
    switch (a->elem_size) {
    case 1:
        e = api.cuMemsetD8Async(a->dptr, (unsigned char)a->value, a->count, s);
        break;
    case 2:
        e = api.cuMemsetD16Async(a->dptr, (unsigned short)a->value, a->count, s);
        break;
    default:
        e = api.cuMemsetD32Async(a->dptr, a->value, a->count, s);
        break;
    }
    return cu_status(r->env, e, r->result);
}

static int op_memcpy(struct cu_req *r)
{
    const struct vgpu_args_cu_memcpy *a = &r->sqe->args.cu_memcpy;
    uint16_t opc = r->sqe->opcode;
    CUstream s = NULL;
    CUresult e;
    uint8_t *h;
    int st;

    if (a->len == 0) {
        return VGPU_S_BAD_ARGS;
    }
    if ((st = stream_of(r, a->stream, &s)) != VGPU_S_OK) {
        return st;
    }
    if (opc == VGPU_OP_CU_MEMCPY_HTOD) {
        if (!range_owned(r->cq, a->dst, a->len)) {
            return VGPU_S_BAD_RANGE;
        }
        if (!(h = shm_at(r, a->src, a->len))) {
            return VGPU_S_BAD_RANGE;
        }
        /* The shared memory is registered (pinned) for the whole session:
         * this is a DMA straight from the guest's pages. */
        e = api.cuMemcpyHtoDAsync(a->dst, h, a->len, s);
    } else if (opc == VGPU_OP_CU_MEMCPY_DTOH) {
        if (!range_owned(r->cq, a->src, a->len)) {
            return VGPU_S_BAD_RANGE;
        }
        if (!(h = shm_at(r, a->dst, a->len))) {
            return VGPU_S_BAD_RANGE;
        }
        e = api.cuMemcpyDtoHAsync(h, a->src, a->len, s);
    } else {
        if (!range_owned(r->cq, a->dst, a->len) || !range_owned(r->cq, a->src, a->len)) {
            return VGPU_S_BAD_RANGE;
        }
        e = api.cuMemcpyDtoDAsync(a->dst, a->src, a->len, s);
    }
    return cu_status(r->env, e, r->result);
}

/* One side of a 2D copy: checks it, fills the driver's description. */
static int side_2d(struct cu_req *r, uint8_t kind, uint64_t addr, uint32_t pitch,
                   uint64_t extent, CUmemorytype *type, const void **host, CUdeviceptr *dev)
{
    (void)pitch;
    if (kind == VGPU_CU_MEM_DEVICE) {
        if (!range_owned(r->cq, addr, extent)) {
            return VGPU_S_BAD_RANGE;
        }
        *type = CU_MEMORYTYPE_DEVICE;
        *dev = addr;
        return VGPU_S_OK;
    }
    if (kind != VGPU_CU_MEM_SHM || !(*host = shm_at(r, addr, extent))) {
        return kind != VGPU_CU_MEM_SHM ? VGPU_S_BAD_ARGS : VGPU_S_BAD_RANGE;
    }
    *type = CU_MEMORYTYPE_HOST;
    return VGPU_S_OK;
}

static int op_memcpy_2d(struct cu_req *r)
{
    const struct vgpu_args_cu_memcpy2d *a = &r->sqe->args.cu_memcpy2d;
    CUDA_MEMCPY2D c;
    uint64_t dext, sext;
    const void *sh = NULL, *dh = NULL;
    CUstream s = NULL;
    int st;

    if (a->height == 0 || a->width == 0 || a->width > a->dst_pitch || a->width > a->src_pitch) {
        return VGPU_S_BAD_ARGS;
    }
    /* Bytes from the first to the last byte touched: at most 2^32 * 2^32. */
    dext = (uint64_t)a->dst_pitch * (a->height - 1) + a->width;
    sext = (uint64_t)a->src_pitch * (a->height - 1) + a->width;
    memset(&c, 0, sizeof(c));
    st = side_2d(r, a->dst_kind, a->dst, a->dst_pitch, dext, &c.dstMemoryType, &dh, &c.dstDevice);
    if (st == VGPU_S_OK) {
        st = side_2d(r, a->src_kind, a->src, a->src_pitch, sext, &c.srcMemoryType, &sh,
                     &c.srcDevice);
    }
    if (st == VGPU_S_OK) {
        st = stream_of(r, a->stream, &s);
    }
    if (st != VGPU_S_OK) {
        return st;
    }
    c.dstHost = (void *)dh;
    c.srcHost = sh;
    c.dstPitch = a->dst_pitch;
    c.srcPitch = a->src_pitch;
    c.WidthInBytes = a->width;
    c.Height = a->height;
    return cu_status(r->env, api.cuMemcpy2DAsync(&c, s), r->result);
}

static struct cu_image *image_find(struct vgpu_cu_vm *vm, XXH128_hash_t h)
{
    for (struct cu_image *i = vm->images; i; i = i->next) {
        if (XXH128_isEqual(i->hash, h)) {
            i->last_use = ++vm->tick;
            return i;
        }
    }
    return NULL;
}

/* Keeps bytes (len + NUL, malloc'ed: taken over or freed) for loads by
 * hash, dropping the least recently used images beyond the budget. */
static void image_keep(struct vgpu_cu_vm *vm, XXH128_hash_t h, uint8_t *bytes, uint64_t len)
{
    struct cu_image *img;

    if (len > CU_IMAGE_CACHE_BYTES / 2 || image_find(vm, h) ||
        !(img = calloc(1, sizeof(*img)))) {
        free(bytes);
        return;
    }
    while (vm->image_bytes + len > CU_IMAGE_CACHE_BYTES) {
        struct cu_image **pp, **lru = &vm->images, *old;

        for (pp = &vm->images; *pp; pp = &(*pp)->next) {
            if ((*pp)->last_use < (*lru)->last_use) {
                lru = pp;
            }
        }
        old = *lru;
        *lru = old->next;
        vm->image_bytes -= old->len;
        free(old->bytes);
        free(old);
    }
    img->hash = h;
    img->bytes = bytes;
    img->len = len;
    img->last_use = ++vm->tick;
    img->next = vm->images;
    vm->images = img;
    vm->image_bytes += len;
}

static int op_module_load(struct cu_req *r)
{
    const struct vgpu_args_cu_module_load *a = &r->sqe->args.cu_module_load;
    XXH128_hash_t want = { .low64 = a->hash[0], .high64 = a->hash[1] }, got = { 0, 0 };
    const struct cu_image *cached = NULL;
    const uint8_t *img;
    struct cu_module *m = NULL;
    uint8_t *copy = NULL;
    uint32_t h;
    CUresult e;
    int st;

    if (a->image_len == 0) {
        /* By hash: the guest need not place the image again. */
        if (!(cached = image_find(r->vm, want))) {
            *r->result = CUDA_ERROR_NOT_FOUND;
            return VGPU_S_CUDA_ERROR;
        }
        r->vm->image_hits++;
    } else {
        img = shm_at(r, a->image_off, a->image_len);
        if (!img || a->image_len > VGPU_CU_MAX_IMAGE) {
            return VGPU_S_BAD_RANGE;
        }
        /*
         * The driver parses the image (fatbin, cubin or PTX text) here,
         * inside this VM's worker only. It is copied first: the guest can
         * rewrite its memory while the driver reads, and PTX must end in a
         * NUL inside the bytes the guest named, which the copy guarantees.
         */
        copy = malloc(a->image_len + 1);
        if (!copy) {
            return VGPU_S_NO_MEMORY;
        }
        memcpy(copy, img, a->image_len);
        copy[a->image_len] = 0;
        got = XXH3_128bits(copy, a->image_len);
        if ((want.low64 || want.high64) && !XXH128_isEqual(want, got)) {
            free(copy);
            return VGPU_S_BAD_ARGS;     /* the hash it named is not its image's */
        }
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        free(copy);
        return VGPU_S_NO_MEMORY;
    }
    e = api.cuModuleLoadData(&m->mod, cached ? cached->bytes : copy);
    if (copy) {
        if (e == CUDA_SUCCESS) {
            image_keep(r->vm, got, copy, a->image_len);
        } else {
            free(copy);
        }
    }
    if (e != CUDA_SUCCESS) {
        free(m);
        return cu_status(r->env, e, r->result);
    }
    st = slot_new(r->cq, CU_K_MODULE, m, &h);
    if (st != VGPU_S_OK) {
        (void)api.cuModuleUnload(m->mod);
        free(m);
        return st;
    }
    r->vm->image_loads++;
    *r->result = h;
    return VGPU_S_OK;
}

static int op_module_unload(struct cu_req *r)
{
    uint32_t h = r->sqe->args.cu_handle.handle;
    struct cu_table *ft = &r->cq->t[CU_K_FUNC];
    struct cu_slot *sl;
    struct cu_module *m = NULL;
    CUresult e;
    int st;

    if (!(sl = handle_slot(r->cq, CU_K_MODULE, h, &st))) {
        return st;
    }
    m = sl->obj;
    e = api.cuModuleUnload(m->mod);
    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    free(m);
    slot_free(r->cq, CU_K_MODULE, sl);
    /* Its functions and globals go with it. */
    for (uint32_t i = 0; i < ft->n; i++) {
        struct cu_func *f = ft->v[i].obj;

        if (ft->v[i].used && f->module == h) {
            free(f);
            slot_free(r->cq, CU_K_FUNC, &ft->v[i]);
        }
    }
    for (uint32_t i = r->cq->nranges; i-- > 0;) {
        if (r->cq->ranges[i].module == h) {
            range_del(r->cq, i);
        }
    }
    return VGPU_S_OK;
}

/* The NUL-terminated symbol name of a request, copied out of shared memory. */
static int symbol_name(struct cu_req *r, char name[VGPU_CU_MAX_NAME])
{
    const struct vgpu_args_cu_symbol *a = &r->sqe->args.cu_symbol;
    const uint8_t *p;

    if (a->name_len < 2 || a->name_len > VGPU_CU_MAX_NAME ||
        !(p = shm_at(r, a->name_off, a->name_len))) {
        return VGPU_S_BAD_RANGE;
    }
    memcpy(name, p, a->name_len);
    if (!memchr(name, 0, a->name_len) || name[0] == 0) {
        return VGPU_S_BAD_ARGS;
    }
    return VGPU_S_OK;
}

static int module_of(struct cu_req *r, uint32_t h, struct cu_module **out)
{
    struct cu_slot *sl;
    int st;

    if (!(sl = handle_slot(r->cq, CU_K_MODULE, h, &st))) {
        return st;
    }
    *out = sl->obj;
    return VGPU_S_OK;
}

static int op_get_function(struct cu_req *r)
{
    const struct vgpu_args_cu_symbol *a = &r->sqe->args.cu_symbol;
    struct vgpu_cu_param params[VGPU_CU_MAX_PARAMS];
    char name[VGPU_CU_MAX_NAME];
    struct vgpu_cu_func_info info;
    struct cu_module *m = NULL;
    struct cu_func *f = NULL;
    uint64_t need;
    uint8_t *out;
    CUfunction fn;
    uint32_t n, h;
    CUresult e;
    int st, v;

    if ((st = module_of(r, a->module, &m)) != VGPU_S_OK ||
        (st = symbol_name(r, name)) != VGPU_S_OK) {
        return st;
    }
    e = api.cuModuleGetFunction(&fn, m->mod, name);
    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    memset(&info, 0, sizeof(info));
    for (n = 0; n < VGPU_CU_MAX_PARAMS; n++) {
        size_t off, size;

        e = api.cuFuncGetParamInfo(fn, n, &off, &size);
        if (e != CUDA_SUCCESS) {
            break;
        }
        if (off > VGPU_CU_MAX_PARAM_BYTES || size > VGPU_CU_MAX_PARAM_BYTES - off) {
            return VGPU_S_TOO_LARGE;
        }
        params[n].offset = (uint32_t)off;
        params[n].size = (uint32_t)size;
        if (off + size > info.param_bytes) {
            info.param_bytes = (uint32_t)(off + size);
        }
    }
    if (n == VGPU_CU_MAX_PARAMS && e == CUDA_SUCCESS) {
        return VGPU_S_TOO_LARGE;
    }
    if (e != CUDA_SUCCESS && e != CUDA_ERROR_INVALID_VALUE) {
        return cu_status(r->env, e, r->result);
    }
    info.param_count = n;
    need = sizeof(info) + (uint64_t)n * sizeof(params[0]);
    if (a->out_len < need) {
        *r->result = need;
        return VGPU_S_TOO_LARGE;    /* the guest asks again with room for need */
    }
    if (!(out = shm_at(r, a->out_off, need))) {
        return VGPU_S_BAD_RANGE;
    }
    if (api.cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, fn) == CUDA_SUCCESS) {
        info.max_threads = v;
    }
    if (api.cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, fn) == CUDA_SUCCESS) {
        info.shared_bytes = v;
    }
    if (api.cuFuncGetAttribute(&v, CU_FUNC_ATTRIBUTE_NUM_REGS, fn) == CUDA_SUCCESS) {
        info.num_regs = v;
    }
    f = calloc(1, sizeof(*f));
    if (!f) {
        return VGPU_S_NO_MEMORY;
    }
    f->f = fn;
    f->module = a->module;
    f->param_count = n;
    f->param_bytes = info.param_bytes;
    f->max_threads = info.max_threads;
    st = slot_new(r->cq, CU_K_FUNC, f, &h);
    if (st != VGPU_S_OK) {
        free(f);
        return st;
    }
    memcpy(out, &info, sizeof(info));
    memcpy(out + sizeof(info), params, (size_t)n * sizeof(params[0]));
    *r->result = h;
    return VGPU_S_OK;
}

static int op_get_global(struct cu_req *r)
{
    const struct vgpu_args_cu_symbol *a = &r->sqe->args.cu_symbol;
    char name[VGPU_CU_MAX_NAME];
    struct vgpu_cu_global g;
    struct cu_module *m = NULL;
    CUdeviceptr p;
    size_t bytes;
    uint8_t *out;
    CUresult e;
    int st;

    if ((st = module_of(r, a->module, &m)) != VGPU_S_OK ||
        (st = symbol_name(r, name)) != VGPU_S_OK) {
        return st;
    }
    if (a->out_len < sizeof(g) || !(out = shm_at(r, a->out_off, sizeof(g)))) {
        return VGPU_S_BAD_RANGE;
    }
    e = api.cuModuleGetGlobal(&p, &bytes, m->mod, name);
    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    /* Copies to and from the global (cudaMemcpyToSymbol) are allowed from
     * now on, until its module is unloaded. */
    if (bytes && (st = range_add(r->cq, p, bytes, a->module)) != VGPU_S_OK) {
        return st;
    }
    g.dptr = p;
    g.bytes = bytes;
    memcpy(out, &g, sizeof(g));
    *r->result = p;
    return VGPU_S_OK;
}

/* A launch with the queue's pending CU_LAUNCH_ATTRS (then forgotten). */
static int launch_ex(struct cu_req *r, const struct vgpu_args_cu_launch *a,
                     const struct cu_func *f, CUstream s, void **extra)
{
    const struct vgpu_args_cu_launch_attrs *at = &r->cq->attrs;
    CUlaunchAttribute attr[3];
    CUlaunchConfig cfg;
    unsigned n = 0;

    memset(attr, 0, sizeof(attr));
    if (at->cluster[0]) {
        attr[n].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
        attr[n].value.clusterDim.x = at->cluster[0];
        attr[n].value.clusterDim.y = at->cluster[1];
        attr[n].value.clusterDim.z = at->cluster[2];
        n++;
    }
    if (at->cluster_policy) {
        attr[n].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE;
        attr[n].value.clusterSchedulingPolicyPreference =
            (CUclusterSchedulingPolicy)at->cluster_policy;
        n++;
    }
    if (at->flags & VGPU_CU_LAUNCH_COOPERATIVE) {
        attr[n].id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
        attr[n].value.cooperative = 1;
        n++;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.gridDimX = a->grid[0];
    cfg.gridDimY = a->grid[1];
    cfg.gridDimZ = a->grid[2];
    cfg.blockDimX = a->block[0];
    cfg.blockDimY = a->block[1];
    cfg.blockDimZ = a->block[2];
    cfg.sharedMemBytes = a->shared_bytes;
    cfg.hStream = s;
    cfg.attrs = n ? attr : NULL;
    cfg.numAttrs = n;
    return cu_status(r->env, api.cuLaunchKernelEx(&cfg, f->f, NULL, extra), r->result);
}

static int op_launch(struct cu_req *r)
{
    const struct vgpu_args_cu_launch *a = &r->sqe->args.cu_launch;
    uint8_t buf[VGPU_CU_MAX_PARAM_BYTES];
    size_t size = a->params_len;
    void *extra[] = { CU_LAUNCH_PARAM_BUFFER_POINTER, buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &size,
                      CU_LAUNCH_PARAM_END };
    const uint8_t *p = NULL;
    struct cu_func *f = NULL;
    CUstream s = NULL;
    bool attrs = r->cq->has_attrs;
    int st;

    /* Pending CU_LAUNCH_ATTRS are this launch's, whether it runs or not. */
    r->cq->has_attrs = false;
    if ((st = func_of(r, a->func, &f)) != VGPU_S_OK ||
        (st = stream_of(r, a->stream, &s)) != VGPU_S_OK) {
        return st;
    }
    if (a->params_len != f->param_bytes) {
        return VGPU_S_BAD_ARGS;     /* the buffer does not match the kernel */
    }
    if (r->env->params) {
        if (r->env->params_len != a->params_len) {
            return VGPU_S_INTERNAL;
        }
        p = r->env->params;     /* copied by the proxy when it was queued */
    } else if (a->params_len && !(p = shm_at(r, a->params_off, a->params_len))) {
        return VGPU_S_BAD_RANGE;
    }
    for (unsigned i = 0; i < 3; i++) {
        if (a->grid[i] == 0 || a->block[i] == 0) {
            return VGPU_S_BAD_ARGS;
        }
    }
    if (f->max_threads > 0 &&
        (uint64_t)a->block[0] * a->block[1] * a->block[2] > (uint64_t)f->max_threads) {
        *r->result = CUDA_ERROR_INVALID_VALUE;
        return VGPU_S_CUDA_ERROR;   /* natively: too many threads for this kernel */
    }
    /* Copied before the launch: the guest may reuse the buffer as soon as
     * this request completes, and must not change it while we read. */
    if (p) {
        memcpy(buf, p, a->params_len);
    }
    if (attrs) {
        return launch_ex(r, a, f, s, a->params_len ? extra : NULL);
    }
    return cu_status(r->env,
                     api.cuLaunchKernel(f->f, a->grid[0], a->grid[1], a->grid[2], a->block[0],
                                        a->block[1], a->block[2], a->shared_bytes, s, NULL,
                                        a->params_len ? extra : NULL),
                     r->result);
}

static int op_launch_attrs(struct cu_req *r)
{
    r->cq->attrs = r->sqe->args.cu_launch_attrs;
    r->cq->has_attrs = true;
    return VGPU_S_OK;
}

static int op_tensor_map(struct cu_req *r)
{
    const struct vgpu_args_cu_tensor_map *a = &r->sqe->args.cu_tensor_map;
    const uint8_t *in = shm_at(r, a->in_off, sizeof(struct vgpu_cu_tensor_map_req));
    uint8_t *out = shm_at(r, a->out_off, VGPU_CU_TENSOR_MAP_BYTES);
    struct vgpu_cu_tensor_map_req q;
    CUtensorMap map;
    CUresult e;

    _Static_assert(sizeof(CUtensorMap) == VGPU_CU_TENSOR_MAP_BYTES, "CUtensorMap size");
    if (!in || !out) {
        return VGPU_S_BAD_RANGE;
    }
    memcpy(&q, in, sizeof(q));  /* once: the guest may rewrite it meanwhile */
    if (q.rank < 1 || q.rank > 5 ||
        (a->kind == VGPU_CU_TENSOR_MAP_IM2COL && q.rank < 3)) {
        *r->result = CUDA_ERROR_INVALID_VALUE;
        return VGPU_S_CUDA_ERROR;
    }
    /* The GPU's MMU keeps whatever the descriptor names inside this
     * context; the driver checks the rest (alignment, box, strides). */
    memset(&map, 0, sizeof(map));
    if (a->kind == VGPU_CU_TENSOR_MAP_TILED) {
        e = api.cuTensorMapEncodeTiled(&map, (CUtensorMapDataType)q.data_type, q.rank,
                                       (void *)(uintptr_t)q.global_address, q.global_dim,
                                       q.global_strides, q.box_dim, q.element_strides,
                                       (CUtensorMapInterleave)q.interleave,
                                       (CUtensorMapSwizzle)q.swizzle,
                                       (CUtensorMapL2promotion)q.l2_promotion,
                                       (CUtensorMapFloatOOBfill)q.oob_fill);
    } else {
        e = api.cuTensorMapEncodeIm2col(&map, (CUtensorMapDataType)q.data_type, q.rank,
                                        (void *)(uintptr_t)q.global_address, q.global_dim,
                                        q.global_strides, q.lower_corner, q.upper_corner,
                                        q.channels_per_pixel, q.pixels_per_column,
                                        q.element_strides, (CUtensorMapInterleave)q.interleave,
                                        (CUtensorMapSwizzle)q.swizzle,
                                        (CUtensorMapL2promotion)q.l2_promotion,
                                        (CUtensorMapFloatOOBfill)q.oob_fill);
    }
    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    memcpy(out, &map, sizeof(map));
    return VGPU_S_OK;
}

static int op_ctx_limit(struct cu_req *r)
{
    const struct vgpu_args_cu_limit *a = &r->sqe->args.cu_limit;
    size_t v = 0;
    CUresult e = CUDA_SUCCESS;

    if (a->set) {
        e = api.cuCtxSetLimit((CUlimit)a->limit, (size_t)a->value);
    }
    if (e == CUDA_SUCCESS) {
        e = api.cuCtxGetLimit(&v, (CUlimit)a->limit);
    }
    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    *r->result = v;
    return VGPU_S_OK;
}

static int op_stream_create(struct cu_req *r)
{
    const struct vgpu_args_cu_create *a = &r->sqe->args.cu_create;
    CUstream s = NULL;
    uint32_t h;
    CUresult e;
    int st;

    if (a->flags & ~(uint32_t)CU_STREAM_NON_BLOCKING) {
        return VGPU_S_BAD_ARGS;
    }
    e = api.cuStreamCreateWithPriority(&s, a->flags, a->priority);
    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    if ((st = slot_new(r->cq, CU_K_STREAM, s, &h)) != VGPU_S_OK) {
        (void)api.cuStreamDestroy(s);
        return st;
    }
    *r->result = h;
    return VGPU_S_OK;
}

static int op_event_create(struct cu_req *r)
{
    const struct vgpu_args_cu_create *a = &r->sqe->args.cu_create;
    const uint32_t allowed = CU_EVENT_BLOCKING_SYNC | CU_EVENT_DISABLE_TIMING;
    CUevent ev = NULL;
    uint32_t h;
    CUresult e;
    int st;

    /* Interprocess events cannot cross the VM boundary. */
    if ((a->flags & ~allowed) || a->priority) {
        return VGPU_S_BAD_ARGS;
    }
    e = api.cuEventCreate(&ev, a->flags);
    if (e != CUDA_SUCCESS) {
        return cu_status(r->env, e, r->result);
    }
    if ((st = slot_new(r->cq, CU_K_EVENT, ev, &h)) != VGPU_S_OK) {
        (void)api.cuEventDestroy(ev);
        return st;
    }
    *r->result = h;
    return VGPU_S_OK;
}

static int op_destroy(struct cu_req *r, enum cu_kind k)
{
    struct cu_slot *sl;
    CUresult e;
    int st;

    if (!(sl = handle_slot(r->cq, k, r->sqe->args.cu_handle.handle, &st))) {
        return st;
    }
    e = k == CU_K_STREAM ? api.cuStreamDestroy((CUstream)sl->obj)
                         : api.cuEventDestroy((CUevent)sl->obj);
    slot_free(r->cq, k, sl);
    return cu_status(r->env, e, r->result);
}

static int op_stream_sync_query(struct cu_req *r, bool sync)
{
    CUstream s = NULL;
    CUresult e;
    int st;

    if ((st = stream_of(r, r->sqe->args.cu_handle.handle, &s)) != VGPU_S_OK) {
        return st;
    }
    if (sync) {
        return wait_for(r, query_stream, s);
    }
    e = api.cuStreamQuery(s);
    if (e == CUDA_ERROR_NOT_READY) {
        *r->result = 1;
        return VGPU_S_OK;
    }
    return cu_status(r->env, e, r->result);
}

static int op_event_sync_query(struct cu_req *r, bool sync)
{
    CUevent ev = NULL;
    CUresult e;
    int st;

    if ((st = event_of(r, r->sqe->args.cu_handle.handle, &ev)) != VGPU_S_OK) {
        return st;
    }
    if (sync) {
        return wait_for(r, query_event, ev);
    }
    e = api.cuEventQuery(ev);
    if (e == CUDA_ERROR_NOT_READY) {
        *r->result = 1;
        return VGPU_S_OK;
    }
    return cu_status(r->env, e, r->result);
}

static int op_pair(struct cu_req *r)
{
    const struct vgpu_args_cu_pair *a = &r->sqe->args.cu_pair;
    CUevent e1 = NULL, e2 = NULL;
    CUstream s = NULL;
    float ms;
    int st;

    if (a->flags || a->pad) {
        return VGPU_S_BAD_ARGS;
    }
    switch (r->sqe->opcode) {
    case VGPU_OP_CU_STREAM_WAIT_EVENT:
        if ((st = stream_of(r, a->a, &s)) != VGPU_S_OK || (st = event_of(r, a->b, &e1)) != 0) {
            return st;
        }
        return cu_status(r->env, api.cuStreamWaitEvent(s, e1, 0), r->result);
    case VGPU_OP_CU_EVENT_RECORD:
        if ((st = event_of(r, a->a, &e1)) != VGPU_S_OK || (st = stream_of(r, a->b, &s)) != 0) {
            return st;
        }
        return cu_status(r->env, api.cuEventRecord(e1, s), r->result);
    default: /* VGPU_OP_CU_EVENT_ELAPSED */
        if ((st = event_of(r, a->a, &e1)) != VGPU_S_OK || (st = event_of(r, a->b, &e2)) != 0) {
            return st;
        }
        st = cu_status(r->env, api.cuEventElapsedTime(&ms, e1, e2), r->result);
        if (st == VGPU_S_OK) {
            uint32_t bits;

            memcpy(&bits, &ms, sizeof(bits));
            *r->result = bits;
        }
        return st;
    }
}

/* Every stream of the queue, the default one included, drained. */
static int op_ctx_sync(struct cu_req *r)
{
    struct cu_table *t = &r->cq->t[CU_K_STREAM];
    int st = wait_for(r, query_stream, NULL);

    for (uint32_t i = 0; i < t->n && st == VGPU_S_OK; i++) {
        if (t->v[i].used) {
            st = wait_for(r, query_stream, t->v[i].obj);
        }
    }
    return st;
}

static int op_func_attr(struct cu_req *r)
{
    const struct vgpu_args_cu_func_attr *a = &r->sqe->args.cu_func_attr;
    struct cu_func *f = NULL;
    CUresult e;
    int st, v = 0;

    if (a->pad) {
        return VGPU_S_BAD_ARGS;
    }
    if ((st = func_of(r, a->func, &f)) != VGPU_S_OK) {
        return st;
    }
    switch (r->sqe->opcode) {
    case VGPU_OP_CU_FUNC_GET_ATTR:
        if (a->attr < 0 || a->attr >= CU_FUNC_ATTRIBUTE_MAX) {
            return VGPU_S_BAD_ARGS;
        }
        e = api.cuFuncGetAttribute(&v, (CUfunction_attribute)a->attr, f->f);
        break;
    case VGPU_OP_CU_FUNC_SET_ATTR:
        if (a->attr < 0 || a->attr >= CU_FUNC_ATTRIBUTE_MAX) {
            return VGPU_S_BAD_ARGS;
        }
        e = api.cuFuncSetAttribute(f->f, (CUfunction_attribute)a->attr, a->value);
        break;
    default: /* VGPU_OP_CU_OCCUPANCY */
        if (a->attr <= 0 || a->value < 0) {
            return VGPU_S_BAD_ARGS;
        }
        e = api.cuOccupancyMaxActiveBlocksPerMultiprocessor(&v, f->f, a->attr, (size_t)a->value);
        break;
    }
    st = cu_status(r->env, e, r->result);
    if (st == VGPU_S_OK) {
        *r->result = (uint64_t)(uint32_t)v;
    }
    return st;
}

/* Frees everything of the queue's context and starts it over (a new guest
 * process, or the guest's cuDevicePrimaryCtxReset). */
static int op_ctx_reset(struct cu_req *r, uint32_t queue)
{
    int st = op_ctx_sync(r);

    if (st != VGPU_S_OK) {
        return st;
    }
    r->env->mem_delta -= (int64_t)queue_destroy(r->cq, r->env->device);
    r->vm->q[queue] = NULL;
    r->cq = NULL;
    return VGPU_S_OK;
}

/* The operations that report what deferred requests kept: where CUDA
 * reports errors of asynchronous work. */
static bool reports_deferred(uint16_t opcode)
{
    switch (opcode) {
    case VGPU_OP_CU_STREAM_SYNC:
    case VGPU_OP_CU_STREAM_QUERY:
    case VGPU_OP_CU_EVENT_SYNC:
    case VGPU_OP_CU_EVENT_QUERY:
    case VGPU_OP_CU_CTX_SYNC:
        return true;
    default:
        return false;
    }
}

int vgpu_cu_execute(struct vgpu_cu_vm *vm, struct vgpu_cu_env *env, uint32_t queue,
                    const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                    uint64_t *result)
{
    struct cu_req r = { .vm = vm, .env = env, .sqe = sqe, .shm = shm, .result = result };
    int st;

    *result = 0;
    env->mem_delta = 0;
    env->sticky = env->timed_out = false;
    if (!api.loaded) {
        return VGPU_S_NOT_SUPPORTED;
    }
    if (sqe->opcode == VGPU_OP_CU_CTX_RESET && (queue >= VGPU_MAX_QUEUES || !vm->q[queue])) {
        return queue >= VGPU_MAX_QUEUES ? VGPU_S_BAD_ARGS : VGPU_S_OK;  /* nothing to free */
    }
    st = queue_get(vm, env, queue, &r.cq, result);
    if (st != VGPU_S_OK) {
        return st;
    }
    switch (sqe->opcode) {
    case VGPU_OP_CU_DEVICE_INFO:     st = op_device_info(&r); break;
    case VGPU_OP_CU_MEM_GET_INFO:    st = op_mem_get_info(&r); break;
    case VGPU_OP_CU_MEM_ALLOC:       st = op_mem_alloc(&r); break;
    case VGPU_OP_CU_MEM_FREE:        st = op_mem_free(&r); break;
    case VGPU_OP_CU_MEMSET:          st = op_memset(&r); break;
    case VGPU_OP_CU_MEMCPY_HTOD:
    case VGPU_OP_CU_MEMCPY_DTOH:
    case VGPU_OP_CU_MEMCPY_DTOD:     st = op_memcpy(&r); break;
    case VGPU_OP_CU_MEMCPY_2D:       st = op_memcpy_2d(&r); break;
    case VGPU_OP_CU_MODULE_LOAD:     st = op_module_load(&r); break;
    case VGPU_OP_CU_MODULE_UNLOAD:   st = op_module_unload(&r); break;
    case VGPU_OP_CU_MODULE_GET_FUNCTION: st = op_get_function(&r); break;
    case VGPU_OP_CU_MODULE_GET_GLOBAL:   st = op_get_global(&r); break;
    case VGPU_OP_CU_LAUNCH:          st = op_launch(&r); break;
    case VGPU_OP_CU_STREAM_CREATE:   st = op_stream_create(&r); break;
    case VGPU_OP_CU_STREAM_DESTROY:  st = op_destroy(&r, CU_K_STREAM); break;
    case VGPU_OP_CU_STREAM_SYNC:     st = op_stream_sync_query(&r, true); break;
    case VGPU_OP_CU_STREAM_QUERY:    st = op_stream_sync_query(&r, false); break;
    case VGPU_OP_CU_STREAM_WAIT_EVENT:
    case VGPU_OP_CU_EVENT_RECORD:
    case VGPU_OP_CU_EVENT_ELAPSED:   st = op_pair(&r); break;
    case VGPU_OP_CU_EVENT_CREATE:    st = op_event_create(&r); break;
    case VGPU_OP_CU_EVENT_DESTROY:   st = op_destroy(&r, CU_K_EVENT); break;
    case VGPU_OP_CU_EVENT_SYNC:      st = op_event_sync_query(&r, true); break;
    case VGPU_OP_CU_EVENT_QUERY:     st = op_event_sync_query(&r, false); break;
    case VGPU_OP_CU_CTX_SYNC:        st = op_ctx_sync(&r); break;
    case VGPU_OP_CU_FUNC_GET_ATTR:
    case VGPU_OP_CU_FUNC_SET_ATTR:
    case VGPU_OP_CU_OCCUPANCY:       st = op_func_attr(&r); break;
    case VGPU_OP_CU_CTX_RESET:       st = op_ctx_reset(&r, queue); break;
    case VGPU_OP_CU_LAUNCH_ATTRS:    st = op_launch_attrs(&r); break;
    case VGPU_OP_CU_TENSOR_MAP:      st = op_tensor_map(&r); break;
    case VGPU_OP_CU_CTX_LIMIT:       st = op_ctx_limit(&r); break;
    default:                         st = VGPU_S_UNKNOWN_OP; break;
    }
    if (r.cq && env->deferred && st != VGPU_S_OK && r.cq->deferred_st == VGPU_S_OK) {
        r.cq->deferred_st = st;
        r.cq->deferred_result = *result;
    } else if (r.cq && st == VGPU_S_OK && r.cq->deferred_st != VGPU_S_OK &&
               reports_deferred(sqe->opcode)) {
        st = r.cq->deferred_st;
        *result = r.cq->deferred_result;
        r.cq->deferred_st = VGPU_S_OK;
    }
    /* The Phase 1 operations run on the runtime's (primary) context. */
    if (queue != 0) {
        (void)cudaSetDevice(env->device);
    }
    return st;
}
