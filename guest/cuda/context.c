/* SPDX-License-Identifier: MIT */
/*
 * Contexts, emulated in the guest. The process has one queue, which is one
 * GPU context on the host; every CUcontext here (the primary one and any
 * cuCtxCreate makes) is a view of it, so work and memory of one are visible
 * through the others, as if all were the primary context. Each thread has
 * its own stack of current contexts.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "export_tables.h"

#define CTX_STACK_MAX 32

static __thread struct CUctx_st *ctx_stack[CTX_STACK_MAX];
static __thread int ctx_depth;

struct CUctx_st *cu_current_ctx(void)
{
    return ctx_depth > 0 ? ctx_stack[ctx_depth - 1] : NULL;
}

static int ctx_valid(struct CUctx_st *c)
{
    return c && c->magic == CU_MAGIC_CTX;
}

/* Forgets every thread-independent trace of a host context that is gone. */
static CUresult host_reset(void)
{
    CUresult rv = cu_result(vgpu_cu_ctx_reset(cu_rm()));

    cu_ctx_reset_all();
    cu_g.sticky = CUDA_SUCCESS;
    cu_g.deferred = CUDA_SUCCESS;
    cu_g.generation++;
    return rv == CUDA_ERROR_CONTEXT_IS_DESTROYED ? CUDA_SUCCESS : rv;
}

/* ---- primary context ---- */

VGPU_CU_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
    CUresult rv = cu_g.inited ? cu_g.init_result : CUDA_ERROR_NOT_INITIALIZED;

    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (!pctx) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (dev < 0 || dev >= cu_g.device_count) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    pthread_mutex_lock(&cu_lock);
    cu_g.primary.refs++;
    *pctx = &cu_g.primary;
    pthread_mutex_unlock(&cu_lock);
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
    CUresult rv = cu_g.inited ? cu_g.init_result : CUDA_ERROR_NOT_INITIALIZED;
    int gone = 0;

    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (dev < 0 || dev >= cu_g.device_count) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    pthread_mutex_lock(&cu_lock);
    if (cu_g.primary.refs <= 0) {
        rv = CUDA_ERROR_INVALID_CONTEXT;
    } else if (--cu_g.primary.refs == 0) {
        /* natively the primary context is destroyed with its last user */
        rv = host_reset();
        gone = 1;
    }
    pthread_mutex_unlock(&cu_lock);
    if (gone) {
        cu_cls_context_gone(&cu_g.primary);
    }
    return rv;
}

#undef cuDevicePrimaryCtxRelease
CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice dev);
VGPU_CU_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxRelease(CUdevice dev)
{
    return cuDevicePrimaryCtxRelease_v2(dev);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxReset_v2(CUdevice dev)
{
    CUresult rv = cu_g.inited ? cu_g.init_result : CUDA_ERROR_NOT_INITIALIZED;

    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (dev < 0 || dev >= cu_g.device_count) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    cu_cls_context_gone(&cu_g.primary);
    pthread_mutex_lock(&cu_lock);
    rv = host_reset();
    cu_g.primary.flags = 0;
    pthread_mutex_unlock(&cu_lock);
    return rv;
}

#undef cuDevicePrimaryCtxReset
CUresult CUDAAPI cuDevicePrimaryCtxReset(CUdevice dev);
VGPU_CU_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxReset(CUdevice dev)
{
    return cuDevicePrimaryCtxReset_v2(dev);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int *flags,
                                                           int *active)
{
    CUresult rv = cu_g.inited ? cu_g.init_result : CUDA_ERROR_NOT_INITIALIZED;

    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (dev < 0 || dev >= cu_g.device_count) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    if (!flags || !active) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_lock(&cu_lock);
    *flags = cu_g.primary.flags;
    *active = cu_g.primary.refs > 0;
    pthread_mutex_unlock(&cu_lock);
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxSetFlags_v2(CUdevice dev, unsigned int flags)
{
    CUresult rv = cu_g.inited ? cu_g.init_result : CUDA_ERROR_NOT_INITIALIZED;

    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (dev < 0 || dev >= cu_g.device_count) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    /* the scheduling flags only change how a waiting thread waits */
    if (flags & ~(unsigned)(CU_CTX_SCHED_MASK | CU_CTX_MAP_HOST | CU_CTX_LMEM_RESIZE_TO_MAX)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_lock(&cu_lock);
    cu_g.primary.flags = flags;
    pthread_mutex_unlock(&cu_lock);
    return CUDA_SUCCESS;
}

#undef cuDevicePrimaryCtxSetFlags
CUresult CUDAAPI cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags);
VGPU_CU_EXPORT CUresult CUDAAPI cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags)
{
    return cuDevicePrimaryCtxSetFlags_v2(dev, flags);
}

/* ---- ordinary contexts ---- */

static CUresult ctx_new(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    CUresult rv = cu_g.inited ? cu_g.init_result : CUDA_ERROR_NOT_INITIALIZED;
    struct CUctx_st *c;

    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (!pctx) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (dev < 0 || dev >= cu_g.device_count) {
        return CUDA_ERROR_INVALID_DEVICE;
    }
    if (ctx_depth >= CTX_STACK_MAX) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    c->magic = CU_MAGIC_CTX;
    c->flags = flags;
    c->dev = dev;
    ctx_stack[ctx_depth++] = c;
    *pctx = c;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams,
                                               unsigned int flags, CUdevice dev)
{
    if (ctxCreateParams && (ctxCreateParams->execAffinityParams ||
                            ctxCreateParams->numExecAffinityParams ||
                            ctxCreateParams->cigParams)) {
        return vgpu_cu_unsupported("cuCtxCreate (affinity or CIG parameters)");
    }
    return ctx_new(pctx, flags, dev);
}

#undef cuCtxCreate_v2
CUresult CUDAAPI cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev);
VGPU_CU_EXPORT CUresult CUDAAPI cuCtxCreate_v2(CUcontext *pctx, unsigned int flags, CUdevice dev)
{
    return ctx_new(pctx, flags, dev);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxDestroy_v2(CUcontext ctx)
{
    int i, j;

    if (!ctx_valid(ctx)) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    if (ctx->primary) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    /* natively waits for the context's work: it is the queue's */
    pthread_mutex_lock(&cu_lock);
    if (cu_ready() == CUDA_SUCCESS) {
        (void)cu_result(vgpu_cu_ctx_sync(cu_rm()));
    }
    pthread_mutex_unlock(&cu_lock);
    cu_cls_context_gone(ctx);
    for (i = j = 0; i < ctx_depth; i++) {
        if (ctx_stack[i] != ctx) {
            ctx_stack[j++] = ctx_stack[i];
        }
    }
    ctx_depth = j;
    ctx->magic = 0;
    free(ctx);
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxPushCurrent_v2(CUcontext ctx)
{
    if (!ctx_valid(ctx)) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    if (ctx_depth >= CTX_STACK_MAX) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    ctx_stack[ctx_depth++] = ctx;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxPopCurrent_v2(CUcontext *pctx)
{
    if (ctx_depth == 0) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    ctx_depth--;
    if (pctx) {
        *pctx = ctx_stack[ctx_depth];
    }
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxGetCurrent(CUcontext *pctx)
{
    if (!pctx) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (!cu_g.inited) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    *pctx = cu_current_ctx();
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxSetCurrent(CUcontext ctx)
{
    if (!cu_g.inited) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if (!ctx) {
        if (ctx_depth > 0) {
            ctx_depth--;
        }
        return CUDA_SUCCESS;
    }
    if (!ctx_valid(ctx)) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    if (ctx_depth == 0) {
        ctx_depth = 1;
    }
    ctx_stack[ctx_depth - 1] = ctx;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxGetDevice(CUdevice *device)
{
    struct CUctx_st *c = cu_current_ctx();

    if (!device) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (!c) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    *device = c->dev;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxGetDevice_v2(CUdevice *device, CUcontext ctx)
{
    if (!ctx) {
        return cuCtxGetDevice(device);
    }
    if (!device) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (!ctx_valid(ctx)) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    *device = ctx->dev;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxSynchronize(void)
{
    CUresult rv;

    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        cu_hostfn_wait_all();
        rv = cu_take_deferred(cu_result(vgpu_cu_ctx_sync(cu_rm())));
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxSynchronize_v2(CUcontext ctx)
{
    if (ctx && !ctx_valid(ctx)) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    return cuCtxSynchronize();
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxGetFlags(unsigned int *flags)
{
    struct CUctx_st *c = cu_current_ctx();

    if (!flags) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (!c) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    *flags = c->flags;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxSetFlags(unsigned int flags)
{
    struct CUctx_st *c = cu_current_ctx();

    if (!c) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    c->flags = flags;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxGetApiVersion(CUcontext ctx, unsigned int *version)
{
    if (!version) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (ctx && !ctx_valid(ctx)) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    *version = 3020;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxGetId(CUcontext ctx, unsigned long long *ctxId)
{
    if (!ctx) {
        ctx = cu_current_ctx();
    }
    if (!ctxId) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (!ctx_valid(ctx)) {
        return CUDA_ERROR_INVALID_CONTEXT;
    }
    *ctxId = (unsigned long long)(uintptr_t)ctx;
    return CUDA_SUCCESS;
}

/* The host context's limits (CU_CTX_LIMIT): the value after setting it,
 * when set, as the host's driver has it (it may round what it was given).
 * Every context here is a view of the one host context: so are its limits. */
static CUresult ctx_limit(CUlimit limit, int set, size_t value, size_t *out)
{
    struct vgpu_sqe sqe;
    uint64_t v = 0;
    CUresult rv;

    if ((unsigned)limit >= CU_LIMIT_MAX) {
        return CUDA_ERROR_UNSUPPORTED_LIMIT;
    }
    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = VGPU_OP_CU_CTX_LIMIT;
    sqe.args.cu_limit.limit = (uint32_t)limit;
    sqe.args.cu_limit.set = set ? 1 : 0;
    sqe.args.cu_limit.value = value;
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_call(cu_rm(), &sqe, &v));
    }
    CU_LEAVE();
    if (rv == CUDA_SUCCESS && out) {
        *out = (size_t)v;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxGetLimit(size_t *pvalue, CUlimit limit)
{
    if (!pvalue) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return ctx_limit(limit, 0, 0, pvalue);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxSetLimit(CUlimit limit, size_t value)
{
    return ctx_limit(limit, 1, value, NULL);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxGetCacheConfig(CUfunc_cache *pconfig)
{
    if (!pconfig) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *pconfig = CU_FUNC_CACHE_PREFER_NONE;
    return CUDA_SUCCESS;
}

/* A preference the driver may ignore natively too. */
VGPU_CU_EXPORT CUresult CUDAAPI cuCtxSetCacheConfig(CUfunc_cache config)
{
    (void)config;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuCtxGetStreamPriorityRange(int *leastPriority,
                                                            int *greatestPriority)
{
    if (leastPriority) {
        *leastPriority = 0;
    }
    if (greatestPriority) {
        *greatestPriority = -5;
    }
    return CUDA_SUCCESS;
}
