/* SPDX-License-Identifier: MIT */
/*
 * Memory: device allocations (real device addresses of the host context,
 * remembered here for cuMemcpy's direction and the pointer queries),
 * pinned host memory carved from the shared memory (copies from it are DMA
 * of the host, truly asynchronous), and copies and memsets.
 *
 * Pageable host memory (anything outside the shared memory, registered with
 * cuMemHostRegister or not) is staged by libvgpu through its staging ring;
 * such copies return once the data has arrived, async or not: that is
 * allowed natively for pageable memory and never gives a wrong result.
 */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* ---- ranges: sorted arrays of [start, start + len) ---- */

struct range {
    uint64_t start;
    uint64_t len;
    unsigned flags;
};

struct ranges {
    struct range *v;
    size_t n, cap;
};

static struct ranges dev_allocs;   /* device memory */
static struct ranges host_allocs;  /* pinned: offsets in the heap */
static struct ranges host_regs;    /* cuMemHostRegister'ed pageable memory */
/* "Pinned" allocations the shared-memory heap had no room for: ordinary
 * memory, whose copies are staged (synchronous, correct, slower). */
static struct ranges host_spill;

static size_t ranges_find(const struct ranges *r, uint64_t p)
{
    size_t lo = 0, hi = r->n;

    /* the last range starting at or before p, or r->n */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (r->v[mid].start <= p) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0) {
        return r->n;
    }
    lo--;
    return p - r->v[lo].start < r->v[lo].len ? lo : r->n;
}

static int ranges_add(struct ranges *r, uint64_t start, uint64_t len, unsigned flags)
{
    size_t i;

    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct range *v = realloc(r->v, cap * sizeof(*v));

        if (!v) {
            return -1;
        }
        r->v = v;
        r->cap = cap;
    }
    for (i = r->n; i > 0 && r->v[i - 1].start > start; i--) {
        r->v[i] = r->v[i - 1];
    }
    r->v[i].start = start;
    r->v[i].len = len;
    r->v[i].flags = flags;
    r->n++;
    return 0;
}

static void ranges_del(struct ranges *r, size_t i)
{
    memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof(r->v[0]));
    r->n--;
}

void cu_memory_forget_device(void)
{
    dev_allocs.n = 0;
}

int cu_is_device_ptr(CUdeviceptr p)
{
    return ranges_find(&dev_allocs, p) < dev_allocs.n;
}

/* ---- the pinned heap: first fit over host_allocs ---- */

#define HEAP_ALIGN 4096ull

static int heap_alloc(uint64_t len, unsigned flags, void **pp)
{
    struct cu_remote *rm = &cu_g.remote;
    uint64_t at = 0, need = (len + HEAP_ALIGN - 1) & ~(HEAP_ALIGN - 1);
    size_t i;

    if (!rm->heap || need == 0 || need > rm->heap_len) {
        return -1;
    }
    for (i = 0; i <= host_allocs.n; i++) {
        uint64_t end = i < host_allocs.n ? host_allocs.v[i].start : rm->heap_len;

        if (end >= at && end - at >= need) {
            if (ranges_add(&host_allocs, at, need, flags) < 0) {
                return -1;
            }
            *pp = rm->heap + at;
            return 0;
        }
        if (i < host_allocs.n) {
            at = host_allocs.v[i].start + host_allocs.v[i].len;
        }
    }
    return -1;
}

static size_t heap_find(const void *p)
{
    struct cu_remote *rm = &cu_g.remote;
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)rm->heap;

    if (!rm->heap || a < b || a - b >= rm->heap_len) {
        return host_allocs.n;
    }
    return ranges_find(&host_allocs, a - b);
}

int cu_host_pinned(const void *p, size_t len, uint64_t *off)
{
    struct cu_remote *rm = &cu_g.remote;
    size_t i = heap_find(p);
    uint64_t rel;

    if (i == host_allocs.n) {
        return 0;
    }
    rel = (uint64_t)((const uint8_t *)p - rm->heap);
    if (len > host_allocs.v[i].start + host_allocs.v[i].len - rel) {
        return 0;   /* runs past its allocation: stage it */
    }
    *off = rm->heap_off + rel;
    return 1;
}

/* ---- device memory ---- */

static CUresult dev_alloc(CUdeviceptr *dptr, size_t bytes)
{
    uint64_t d = 0;
    CUresult rv;

    if (!dptr || bytes == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_mem_alloc(cu_rm(), bytes, &d));
    }
    if (rv == CUDA_SUCCESS) {
        if (ranges_add(&dev_allocs, d, bytes, 0) < 0) {
            (void)vgpu_cu_mem_free(cu_rm(), d);
            rv = CUDA_ERROR_OUT_OF_MEMORY;
        } else {
            *dptr = d;
        }
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize)
{
    return dev_alloc(dptr, bytesize);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pPitch,
                                                   size_t WidthInBytes, size_t Height,
                                                   unsigned int ElementSizeBytes)
{
    size_t pitch;
    CUresult rv;

    if (!pPitch || WidthInBytes == 0 || Height == 0 ||
        (ElementSizeBytes != 4 && ElementSizeBytes != 8 && ElementSizeBytes != 16)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    pitch = (WidthInBytes + 511) & ~(size_t)511;
    if (pitch < WidthInBytes || Height > SIZE_MAX / pitch) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    rv = dev_alloc(dptr, pitch * Height);
    if (rv == CUDA_SUCCESS) {
        *pPitch = pitch;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemFree_v2(CUdeviceptr dptr)
{
    CUresult rv;
    size_t i;

    if (dptr == 0) {
        return CUDA_SUCCESS;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        i = ranges_find(&dev_allocs, dptr);
        if (i == dev_allocs.n || dev_allocs.v[i].start != dptr) {
            rv = CUDA_ERROR_INVALID_VALUE;
        } else {
            rv = cu_result(vgpu_cu_mem_free(cu_rm(), dptr));
            if (rv == CUDA_SUCCESS || rv == CUDA_ERROR_CONTEXT_IS_DESTROYED) {
                ranges_del(&dev_allocs, i);
            }
        }
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize,
                                                CUstream hStream)
{
    uint32_t h;

    if (cu_stream_resolve(hStream, &h) != CUDA_SUCCESS) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    return dev_alloc(dptr, bytesize);
}

/* The host's free waits for the work using the memory, so stream order holds. */
VGPU_CU_EXPORT CUresult CUDAAPI cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream)
{
    uint32_t h;

    if (cu_stream_resolve(hStream, &h) != CUDA_SUCCESS) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    return cuMemFree_v2(dptr);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemGetInfo_v2(size_t *free, size_t *total)
{
    uint64_t f = 0;
    CUresult rv;

    if (!free || !total) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_mem_get_info(cu_rm(), &f));
    }
    if (rv == CUDA_SUCCESS) {
        *free = (size_t)f;
        *total = (size_t)cu_g.dev.total_mem;
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize,
                                                        CUdeviceptr dptr)
{
    CUresult rv;
    size_t i;

    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        i = ranges_find(&dev_allocs, dptr);
        if (i == dev_allocs.n) {
            rv = CUDA_ERROR_NOT_FOUND;
        } else {
            if (pbase) {
                *pbase = dev_allocs.v[i].start;
            }
            if (psize) {
                *psize = dev_allocs.v[i].len;
            }
        }
    }
    CU_LEAVE();
    return rv;
}

/* ---- pinned host memory ---- */

VGPU_CU_EXPORT CUresult CUDAAPI cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags)
{
    CUresult rv;

    if (!pp || bytesize == 0 ||
        (Flags & ~(unsigned)(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP |
                             CU_MEMHOSTALLOC_WRITECOMBINED))) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS && heap_alloc(bytesize, Flags, pp) < 0) {
        void *p = NULL;

        if (bytesize <= SIZE_MAX - 4095) {
            p = aligned_alloc(4096, (bytesize + 4095) & ~(size_t)4095);
        }
        if (!p || ranges_add(&host_spill, (uintptr_t)p, bytesize, Flags) < 0) {
            free(p);
            rv = CUDA_ERROR_OUT_OF_MEMORY;
        } else {
            *pp = p;
        }
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemAllocHost_v2(void **pp, size_t bytesize)
{
    return cuMemHostAlloc(pp, bytesize, 0);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemFreeHost(void *p)
{
    CUresult rv = CUDA_SUCCESS;
    size_t i;

    pthread_mutex_lock(&cu_lock);
    i = heap_find(p);
    if (i < host_allocs.n &&
        (uint8_t *)p - cu_g.remote.heap == (ptrdiff_t)host_allocs.v[i].start) {
        ranges_del(&host_allocs, i);
    } else if ((i = ranges_find(&host_spill, (uintptr_t)p)) < host_spill.n &&
               host_spill.v[i].start == (uintptr_t)p) {
        ranges_del(&host_spill, i);
        free(p);
    } else {
        rv = CUDA_ERROR_INVALID_VALUE;
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemHostGetFlags(unsigned int *pFlags, void *p)
{
    CUresult rv = CUDA_SUCCESS;
    size_t i;

    if (!pFlags) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_lock(&cu_lock);
    i = heap_find(p);
    if (i < host_allocs.n) {
        *pFlags = host_allocs.v[i].flags;
    } else if ((i = ranges_find(&host_regs, (uintptr_t)p)) < host_regs.n) {
        *pFlags = host_regs.v[i].flags;
    } else if ((i = ranges_find(&host_spill, (uintptr_t)p)) < host_spill.n) {
        *pFlags = host_spill.v[i].flags;
    } else {
        rv = CUDA_ERROR_INVALID_VALUE;
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int Flags)
{
    CUresult rv;

    if (!p || bytesize == 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (Flags & (CU_MEMHOSTREGISTER_DEVICEMAP | CU_MEMHOSTREGISTER_IOMEMORY |
                 CU_MEMHOSTREGISTER_READ_ONLY)) {
        return vgpu_cu_unsupported("cuMemHostRegister (mapped, I/O or read-only)");
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        if (ranges_find(&host_regs, (uintptr_t)p) < host_regs.n ||
            ranges_find(&host_regs, (uintptr_t)p + bytesize - 1) < host_regs.n) {
            rv = CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
        } else if (ranges_add(&host_regs, (uintptr_t)p, bytesize, Flags) < 0) {
            rv = CUDA_ERROR_OUT_OF_MEMORY;
        }
    }
    CU_LEAVE();
    return rv;
}

#undef cuMemHostRegister
CUresult CUDAAPI cuMemHostRegister(void *p, size_t bytesize, unsigned int Flags);
VGPU_CU_EXPORT CUresult CUDAAPI cuMemHostRegister(void *p, size_t bytesize, unsigned int Flags)
{
    return cuMemHostRegister_v2(p, bytesize, Flags);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemHostUnregister(void *p)
{
    CUresult rv = CUDA_SUCCESS;
    size_t i;

    pthread_mutex_lock(&cu_lock);
    i = ranges_find(&host_regs, (uintptr_t)p);
    if (i == host_regs.n || host_regs.v[i].start != (uintptr_t)p) {
        rv = CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
    } else {
        ranges_del(&host_regs, i);
    }
    CU_LEAVE();
    return rv;
}

/* ---- pointer queries ---- */

static CUresult pointer_attr(void *data, CUpointer_attribute a, CUdeviceptr ptr, int lenient)
{
    size_t di = ranges_find(&dev_allocs, ptr);
    size_t hi = heap_find((void *)(uintptr_t)ptr);
    int is_dev = di < dev_allocs.n, is_host = hi < host_allocs.n;

    if (!is_dev && !is_host) {
        if (!lenient) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        switch (a) {
        case CU_POINTER_ATTRIBUTE_CONTEXT:
        case CU_POINTER_ATTRIBUTE_HOST_POINTER:
            *(void **)data = NULL;
            break;
        case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
        case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
            *(CUdeviceptr *)data = 0;
            break;
        case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
            *(int *)data = -2;
            break;
        case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
            *(size_t *)data = 0;
            break;
        case CU_POINTER_ATTRIBUTE_BUFFER_ID:
            *(unsigned long long *)data = 0;
            break;
        default:
            *(unsigned int *)data = 0;
            break;
        }
        return CUDA_SUCCESS;
    }
    switch (a) {
    case CU_POINTER_ATTRIBUTE_CONTEXT:
        *(CUcontext *)data = &cu_g.primary;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
        *(unsigned int *)data = is_dev ? CU_MEMORYTYPE_DEVICE : CU_MEMORYTYPE_HOST;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
        if (!is_dev) {
            return CUDA_ERROR_INVALID_VALUE;   /* not mapped to the device */
        }
        *(CUdeviceptr *)data = ptr;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER:
        if (!is_host) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        *(void **)data = (void *)(uintptr_t)ptr;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_SYNC_MEMOPS:
    case CU_POINTER_ATTRIBUTE_MAPPED:
        *(unsigned int *)data = 1;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED:
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE:
    case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE:
        *(unsigned int *)data = 0;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
        *(int *)data = 0;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_BUFFER_ID:
        *(unsigned long long *)data = is_dev ? dev_allocs.v[di].start
                                             : host_allocs.v[hi].start + 1;
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
        *(CUdeviceptr *)data = is_dev ? dev_allocs.v[di].start
                                      : (CUdeviceptr)(uintptr_t)(cu_g.remote.heap +
                                                                 host_allocs.v[hi].start);
        return CUDA_SUCCESS;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
        *(size_t *)data = is_dev ? dev_allocs.v[di].len : host_allocs.v[hi].len;
        return CUDA_SUCCESS;
    default:
        return CUDA_ERROR_INVALID_VALUE;
    }
}

VGPU_CU_EXPORT CUresult CUDAAPI cuPointerGetAttribute(void *data, CUpointer_attribute attribute,
                                                      CUdeviceptr ptr)
{
    CUresult rv;

    if (!data) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = pointer_attr(data, attribute, ptr, 0);
    }
    CU_LEAVE();
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuPointerGetAttributes(unsigned int numAttributes,
                                                       CUpointer_attribute *attributes,
                                                       void **data, CUdeviceptr ptr)
{
    CUresult rv;
    unsigned i;

    if (!attributes || !data) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    CU_ENTER(rv);
    for (i = 0; rv == CUDA_SUCCESS && i < numAttributes; i++) {
        if (data[i] && pointer_attr(data[i], attributes[i], ptr, 1) != CUDA_SUCCESS) {
            /* an attribute the pointer lacks reads as zero here */
            memset(data[i], 0, sizeof(unsigned int));
        }
    }
    CU_LEAVE();
    return rv;
}

/* ---- copies ---- */

/* A host-to-device copy; the caller holds cu_lock. */
static CUresult copy_htod(CUdeviceptr dst, const void *src, size_t n, uint32_t stream, int async)
{
    uint64_t off;
    int r;

    if (n == 0) {
        return CUDA_SUCCESS;
    }
    if (!src || !dst) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (cu_host_pinned(src, n, &off)) {
        r = vgpu_cu_memcpy_htod_async(cu_rm(), dst, off, n, stream);
        if (r == 0 && !async) {
            r = vgpu_cu_stream_sync(cu_rm(), stream);
        }
        return cu_result(r);
    }
    return cu_result(vgpu_cu_memcpy_htod(cu_rm(), dst, src, n, stream));
}

static CUresult copy_dtoh(void *dst, CUdeviceptr src, size_t n, uint32_t stream, int async)
{
    uint64_t off;
    int r;

    if (n == 0) {
        return CUDA_SUCCESS;
    }
    if (!src || !dst) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (cu_host_pinned(dst, n, &off)) {
        r = vgpu_cu_memcpy_dtoh_async(cu_rm(), off, src, n, stream);
        if (r == 0 && !async) {
            r = vgpu_cu_stream_sync(cu_rm(), stream);
        }
        return cu_result(r);
    }
    return cu_result(vgpu_cu_memcpy_dtoh(cu_rm(), dst, src, n, stream));
}

static CUresult copy_dtod(CUdeviceptr dst, CUdeviceptr src, size_t n, uint32_t stream)
{
    if (n == 0) {
        return CUDA_SUCCESS;
    }
    if (!src || !dst) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    return cu_result(vgpu_cu_memcpy_dtod_async(cu_rm(), dst, src, n, stream));
}

/* cuMemcpy*: the stream argument, the lock, the sticky error. */
#define COPY_BEGIN(stream_arg, h) \
    CUresult rv; \
    uint32_t h = 0; \
    CU_ENTER(rv); \
    if (rv == CUDA_SUCCESS) { \
        rv = cu_stream_handle(stream_arg, &h); \
    } \
    if (rv == CUDA_SUCCESS)
#define COPY_END() \
    CU_LEAVE(); \
    return rv

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost,
                                                size_t ByteCount)
{
    COPY_BEGIN(NULL, h) rv = copy_htod(dstDevice, srcHost, ByteCount, h, 0);
    COPY_END();
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost,
                                                     size_t ByteCount, CUstream hStream)
{
    COPY_BEGIN(hStream, h) rv = copy_htod(dstDevice, srcHost, ByteCount, h, 1);
    COPY_END();
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice,
                                                size_t ByteCount)
{
    COPY_BEGIN(NULL, h) rv = copy_dtoh(dstHost, srcDevice, ByteCount, h, 0);
    COPY_END();
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice,
                                                     size_t ByteCount, CUstream hStream)
{
    COPY_BEGIN(hStream, h) rv = copy_dtoh(dstHost, srcDevice, ByteCount, h, 1);
    COPY_END();
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpyDtoD_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                                size_t ByteCount)
{
    COPY_BEGIN(NULL, h) rv = copy_dtod(dstDevice, srcDevice, ByteCount, h);
    COPY_END();
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpyDtoDAsync_v2(CUdeviceptr dstDevice, CUdeviceptr srcDevice,
                                                     size_t ByteCount, CUstream hStream)
{
    COPY_BEGIN(hStream, h) rv = copy_dtod(dstDevice, srcDevice, ByteCount, h);
    COPY_END();
}

/* Unified addressing: the direction from what each pointer is. */
static CUresult copy_any(CUdeviceptr dst, CUdeviceptr src, size_t n, uint32_t h, int async)
{
    int dd = cu_is_device_ptr(dst), sd = cu_is_device_ptr(src);

    if (dd && sd) {
        return copy_dtod(dst, src, n, h);
    }
    if (dd) {
        return copy_htod(dst, (const void *)(uintptr_t)src, n, h, async);
    }
    if (sd) {
        return copy_dtoh((void *)(uintptr_t)dst, src, n, h, async);
    }
    if (n) {
        /* host to host, in stream order */
        CUresult rv = cu_result(vgpu_cu_stream_sync(cu_rm(), h));

        if (rv != CUDA_SUCCESS) {
            return rv;
        }
        if (!dst || !src) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, n);
    }
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount)
{
    COPY_BEGIN(NULL, h) rv = copy_any(dst, src, ByteCount, h, 0);
    COPY_END();
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount,
                                              CUstream hStream)
{
    COPY_BEGIN(hStream, h) rv = copy_any(dst, src, ByteCount, h, 1);
    COPY_END();
}

/* ---- 2D copies ---- */

struct side2d {
    int kind;          /* 0 pageable host, 1 pinned (off), 2 device */
    uint64_t addr;     /* host pointer, BAR2 offset or device address */
    size_t pitch;
};

static CUresult side2d(struct side2d *s, CUmemorytype t, const void *host, CUdeviceptr dev,
                       CUarray arr, size_t x, size_t y, size_t pitch, size_t width,
                       size_t height)
{
    uint64_t base, off;
    size_t span;

    if (t == CU_MEMORYTYPE_ARRAY || arr) {
        return vgpu_cu_unsupported("cuMemcpy2D (CUDA arrays)");
    }
    if (t == CU_MEMORYTYPE_UNIFIED) {
        t = cu_is_device_ptr(dev) ? CU_MEMORYTYPE_DEVICE : CU_MEMORYTYPE_HOST;
        host = (const void *)(uintptr_t)dev;
    }
    if (pitch < width || (height > 0 && pitch > SIZE_MAX / height)) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    span = pitch * (height - 1) + width;
    s->pitch = pitch;
    if (t == CU_MEMORYTYPE_DEVICE) {
        if (!dev) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        s->kind = 2;
        s->addr = dev + y * pitch + x;
        return CUDA_SUCCESS;
    }
    if (t != CU_MEMORYTYPE_HOST || !host) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    base = (uintptr_t)host + y * pitch + x;
    if (cu_host_pinned((const void *)(uintptr_t)base, span, &off)) {
        s->kind = 1;
        s->addr = off;
    } else {
        s->kind = 0;
        s->addr = base;
    }
    return CUDA_SUCCESS;
}

static CUresult copy_2d(const CUDA_MEMCPY2D *c, uint32_t h, int async)
{
    struct side2d s, d;
    struct vgpu_args_cu_memcpy2d a;
    size_t w, ht, row;
    CUresult rv;
    int r = 0;

    if (!c) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    w = c->WidthInBytes;
    ht = c->Height;
    if (w == 0 || ht == 0) {
        return CUDA_SUCCESS;
    }
    rv = side2d(&s, c->srcMemoryType, c->srcHost, c->srcDevice, c->srcArray, c->srcXInBytes,
                c->srcY, c->srcPitch ? c->srcPitch : w, w, ht);
    if (rv == CUDA_SUCCESS) {
        rv = side2d(&d, c->dstMemoryType, c->dstHost, c->dstDevice, c->dstArray, c->dstXInBytes,
                    c->dstY, c->dstPitch ? c->dstPitch : w, w, ht);
    }
    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (s.kind == 0 && d.kind == 0) {
        rv = cu_result(vgpu_cu_stream_sync(cu_rm(), h));
        for (row = 0; rv == CUDA_SUCCESS && row < ht; row++) {
            memmove((void *)(uintptr_t)(d.addr + row * d.pitch),
                    (const void *)(uintptr_t)(s.addr + row * s.pitch), w);
        }
        return rv;
    }
    if (s.kind == 0 || d.kind == 0) {
        /* one side pageable: row by row through the staging copies */
        for (row = 0; r == 0 && row < ht; row++) {
            if (s.kind == 0 && d.kind == 2) {
                r = vgpu_cu_memcpy_htod(cu_rm(), d.addr + row * d.pitch,
                                        (const void *)(uintptr_t)(s.addr + row * s.pitch), w, h);
            } else if (s.kind == 2 && d.kind == 0) {
                r = vgpu_cu_memcpy_dtoh(cu_rm(), (void *)(uintptr_t)(d.addr + row * d.pitch),
                                        s.addr + row * s.pitch, w, h);
            } else {
                /* pageable <-> pinned: both are guest memory */
                r = vgpu_cu_stream_sync(cu_rm(), h);
                if (r == 0) {
                    uint64_t o = s.kind == 1 ? s.addr : d.addr;
                    uint8_t *pin = cu_g.remote.heap + (o - cu_g.remote.heap_off);

                    for (; row < ht; row++) {
                        if (s.kind == 1) {
                            memmove((void *)(uintptr_t)(d.addr + row * d.pitch),
                                    pin + row * s.pitch, w);
                        } else {
                            memmove(pin + row * d.pitch,
                                    (const void *)(uintptr_t)(s.addr + row * s.pitch), w);
                        }
                    }
                    break;
                }
            }
        }
        return cu_result(r);
    }
    if (w > UINT32_MAX || ht > UINT32_MAX || s.pitch > UINT32_MAX || d.pitch > UINT32_MAX) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    memset(&a, 0, sizeof(a));
    a.dst = d.addr;
    a.src = s.addr;
    a.dst_pitch = (uint32_t)d.pitch;
    a.src_pitch = (uint32_t)s.pitch;
    a.width = (uint32_t)w;
    a.height = (uint32_t)ht;
    a.stream = h;
    a.dst_kind = d.kind == 2 ? VGPU_CU_MEM_DEVICE : VGPU_CU_MEM_SHM;
    a.src_kind = s.kind == 2 ? VGPU_CU_MEM_DEVICE : VGPU_CU_MEM_SHM;
    r = vgpu_cu_memcpy_2d_async(cu_rm(), &a);
    /* natively synchronous unless device to device */
    if (r == 0 && !async && (s.kind != 2 || d.kind != 2)) {
        r = vgpu_cu_stream_sync(cu_rm(), h);
    }
    return cu_result(r);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpy2D_v2(const CUDA_MEMCPY2D *pCopy)
{
    COPY_BEGIN(NULL, h) rv = copy_2d(pCopy, h, 0);
    COPY_END();
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpy2DUnaligned_v2(const CUDA_MEMCPY2D *pCopy)
{
    COPY_BEGIN(NULL, h) rv = copy_2d(pCopy, h, 0);
    COPY_END();
}

VGPU_CU_EXPORT CUresult CUDAAPI cuMemcpy2DAsync_v2(const CUDA_MEMCPY2D *pCopy, CUstream hStream)
{
    COPY_BEGIN(hStream, h) rv = copy_2d(pCopy, h, 1);
    COPY_END();
}

/* ---- memset ---- */

static CUresult memset_2d(CUdeviceptr d, size_t pitch, uint32_t v, uint32_t elem, size_t width,
                          size_t height, uint32_t h)
{
    size_t row;
    int r = 0;

    if (!d || width == 0 || height == 0) {
        return d ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
    }
    if (pitch == width * elem) {
        if (height > SIZE_MAX / width) {
            return CUDA_ERROR_INVALID_VALUE;
        }
        return cu_result(vgpu_cu_memset_async(cu_rm(), d, v, elem, width * height, h));
    }
    if (pitch < width * elem) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    for (row = 0; r == 0 && row < height; row++) {
        r = vgpu_cu_memset_async(cu_rm(), d + row * pitch, v, elem, width, h);
    }
    return cu_result(r);
}

#define MEMSET(name, type, elem, stream_param, stream_arg) \
    VGPU_CU_EXPORT CUresult CUDAAPI name(CUdeviceptr dstDevice, type v, size_t N stream_param) \
    { \
        COPY_BEGIN(stream_arg, h) rv = memset_2d(dstDevice, N * (elem), v, elem, N, 1, h); \
        COPY_END(); \
    }
#define MEMSET2D(name, type, elem, stream_param, stream_arg) \
    VGPU_CU_EXPORT CUresult CUDAAPI name(CUdeviceptr dstDevice, size_t dstPitch, type v, \
                                         size_t Width, size_t Height stream_param) \
    { \
        COPY_BEGIN(stream_arg, h) rv = memset_2d(dstDevice, dstPitch, v, elem, Width, Height, h); \
        COPY_END(); \
    }
#define NO_STREAM
#define WITH_STREAM , CUstream hStream

MEMSET(cuMemsetD8_v2, unsigned char, 1, NO_STREAM, NULL)
MEMSET(cuMemsetD16_v2, unsigned short, 2, NO_STREAM, NULL)
MEMSET(cuMemsetD32_v2, unsigned int, 4, NO_STREAM, NULL)
MEMSET(cuMemsetD8Async, unsigned char, 1, WITH_STREAM, hStream)
MEMSET(cuMemsetD16Async, unsigned short, 2, WITH_STREAM, hStream)
MEMSET(cuMemsetD32Async, unsigned int, 4, WITH_STREAM, hStream)
MEMSET2D(cuMemsetD2D8_v2, unsigned char, 1, NO_STREAM, NULL)
MEMSET2D(cuMemsetD2D16_v2, unsigned short, 2, NO_STREAM, NULL)
MEMSET2D(cuMemsetD2D32_v2, unsigned int, 4, NO_STREAM, NULL)
MEMSET2D(cuMemsetD2D8Async, unsigned char, 1, WITH_STREAM, hStream)
MEMSET2D(cuMemsetD2D16Async, unsigned short, 2, WITH_STREAM, hStream)
MEMSET2D(cuMemsetD2D32Async, unsigned int, 4, WITH_STREAM, hStream)

void cu_ctx_reset_all(void)
{
    cu_memory_forget_device();
}
