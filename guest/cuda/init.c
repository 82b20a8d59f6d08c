/* SPDX-License-Identifier: MIT */
/*
 * cuInit, the versions, device queries, error names and strings, and
 * cuGetProcAddress over the generated entry-point table.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

#include <cudaProfiler.h>

pthread_mutex_t cu_lock = PTHREAD_MUTEX_INITIALIZER;
struct cu_state cu_g;

/* ---- said once per name: not supported, or ignored ---- */

#define CU_UNSUPPORTED_MAX 256
static const char *unsupported_seen[CU_UNSUPPORTED_MAX];
static unsigned unsupported_n;
static pthread_mutex_t unsupported_lock = PTHREAD_MUTEX_INITIALIZER;

/* 1 the first time name (compared by text) is said; 0 after. */
static int first_time(const char *name)
{
    unsigned i;
    int seen = 0;

    pthread_mutex_lock(&unsupported_lock);
    for (i = 0; i < unsupported_n; i++) {
        if (unsupported_seen[i] == name || strcmp(unsupported_seen[i], name) == 0) {
            seen = 1;
            break;
        }
    }
    if (!seen && unsupported_n < CU_UNSUPPORTED_MAX) {
        unsupported_seen[unsupported_n++] = name;
    }
    pthread_mutex_unlock(&unsupported_lock);
    return !seen;
}

CUresult vgpu_cu_unsupported(const char *name)
{
    if (first_time(name)) {
        fprintf(stderr, "libcuda(vgpu): %s is not supported\n", name);
    }
    return CUDA_ERROR_NOT_SUPPORTED;
}

void cu_ignored_once(const char *what)
{
    if (first_time(what)) {
        fprintf(stderr, "libcuda(vgpu): %s is ignored (a performance hint)\n", what);
    }
}

int cu_trace(void)
{
    static int level = -1;
    int t = __atomic_load_n(&level, __ATOMIC_RELAXED);

    if (t < 0) {
        const char *e = getenv("VGPU_CUDA_TRACE");
        char *end;
        long v;

        t = 0;
        if (e && *e) {
            v = strtol(e, &end, 10);
            t = *end || v < 0 ? 1 : v > 3 ? 3 : (int)v;
        }
        __atomic_store_n(&level, t, __ATOMIC_RELAXED);
    }
    return t;
}

/* Appends to line[0..*len), never past its end. */
static void __attribute__((format(printf, 4, 5)))
line_put(char *line, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(line + *len, size - *len, fmt, ap);
    va_end(ap);
    if (k > 0) {
        *len = *len + (size_t)k < size ? *len + (size_t)k : size - 1;
    }
}

/* Formatted whole, then written in one go: lines of several threads do not
 * interleave. An argument wider than 8 bytes (a structure passed by value)
 * is printed as its 8-byte words. */
void cu_trace_call(const char *name, const struct cu_trace_arg *args, unsigned n, CUresult r)
{
    char line[1024];
    const char *ename = NULL;
    size_t len = 0;
    unsigned i;

    line_put(line, sizeof(line), &len, "libcuda(vgpu): %s(", name);
    for (i = 0; i < n; i++) {
        const unsigned char *b = args[i].p;
        size_t off = 0;

        line_put(line, sizeof(line), &len, "%s%s", i ? ", " : "", args[i].size > 8 ? "{" : "");
        do {
            uint64_t v = 0;
            size_t w = args[i].size - off < 8 ? args[i].size - off : 8;

            memcpy(&v, b + off, w);   /* little-endian: the value, zero-extended */
            line_put(line, sizeof(line), &len, "%s0x%llx", off ? ", " : "",
                     (unsigned long long)v);
            off += w;
        } while (off < args[i].size);
        line_put(line, sizeof(line), &len, "%s", args[i].size > 8 ? "}" : "");
    }
    if (cuGetErrorName(r, &ename) != CUDA_SUCCESS) {
        ename = "?";
    }
    line_put(line, sizeof(line), &len, ") -> %s (%d)\n", ename, (int)r);
    line[len - 1] = '\n';   /* cut short: still one line */
    fputs(line, stderr);
}

/* ---- results ---- */

static int is_sticky(CUresult r)
{
    switch (r) {
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_TIMEOUT:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_LAUNCH_FAILED:
    case CUDA_ERROR_ASSERT:
    case CUDA_ERROR_CONTEXT_IS_DESTROYED:
        return 1;
    default:
        return 0;
    }
}

CUresult cu_result(int r)
{
    CUresult c;

    if (r == 0) {
        return CUDA_SUCCESS;
    }
    if (r < 0) {
        switch (r) {
        case -EINVAL:
        case -EMSGSIZE:
            return CUDA_ERROR_INVALID_VALUE;
        case -ENOMEM:
            return CUDA_ERROR_OUT_OF_MEMORY;
        case -ENOLINK:
        case -ENODEV:
            c = CUDA_ERROR_DEVICE_UNAVAILABLE;
            break;
        default:
            c = CUDA_ERROR_UNKNOWN;
            break;
        }
        return c;
    }
    switch (r) {
    case VGPU_S_CUDA_ERROR:
        c = (CUresult)vgpu_cu_last_result(cu_rm());
        if (c == CUDA_SUCCESS) {
            c = CUDA_ERROR_UNKNOWN;
        }
        break;
    case VGPU_S_BAD_RANGE:
    case VGPU_S_BAD_ALIGN:
    case VGPU_S_TOO_LARGE:
    case VGPU_S_OVERLAP:
    case VGPU_S_BAD_ARGS:
        c = CUDA_ERROR_INVALID_VALUE;
        break;
    case VGPU_S_QUOTA:
    case VGPU_S_NO_MEMORY:
        c = CUDA_ERROR_OUT_OF_MEMORY;
        break;
    case VGPU_S_TIMEOUT:
        c = CUDA_ERROR_LAUNCH_TIMEOUT;
        break;
    case VGPU_S_GPU_FAULT:
        /* The host sends the fault's own CUresult (an assert is 710, not
         * 700); anything else from it reads as an illegal address. */
        c = (CUresult)vgpu_cu_last_result(cu_rm());
        if (!((c >= 700 && c < 800) || c == CUDA_ERROR_ECC_UNCORRECTABLE ||
              c == CUDA_ERROR_UNKNOWN)) {
            c = CUDA_ERROR_ILLEGAL_ADDRESS;
        }
        break;
    case VGPU_S_NOT_SUPPORTED:
    case VGPU_S_UNKNOWN_OP:
        c = CUDA_ERROR_NOT_SUPPORTED;
        break;
    case VGPU_S_CONTEXT_LOST:
        c = CUDA_ERROR_CONTEXT_IS_DESTROYED;
        break;
    default:
        c = CUDA_ERROR_UNKNOWN;
        break;
    }
    if (is_sticky(c) && cu_g.sticky == CUDA_SUCCESS) {
        cu_g.sticky = c;
    }
    return c;
}

CUresult cu_ready(void)
{
    if (!cu_g.inited) {
        return CUDA_ERROR_NOT_INITIALIZED;
    }
    if (cu_g.init_result != CUDA_SUCCESS) {
        return cu_g.init_result;
    }
    return cu_g.sticky;
}

int cu_attr(CUdevice_attribute a)
{
    switch (a) {
    /* what this library does not offer, whatever the GPU can */
    case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY:
    case CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS:
    case CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS:
    case CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES:
    case CU_DEVICE_ATTRIBUTE_DIRECT_MANAGED_MEM_ACCESS_FROM_HOST:
    case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY:
    case CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM:
    case CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_IPC_EVENT_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_HOST_NATIVE_ATOMIC_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_COOPERATIVE_MULTI_DEVICE_LAUNCH:
    case CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_WAIT_VALUE_NOR:
    case CU_DEVICE_ATTRIBUTE_CAN_USE_64_BIT_STREAM_MEM_OPS:
    case CU_DEVICE_ATTRIBUTE_INTEGRATED:
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_WIN32_HANDLE_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_WIN32_KMT_HANDLE_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_WITH_CUDA_VMM_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_SPARSE_CUDA_ARRAY_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_TIMELINE_SEMAPHORE_INTEROP_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_MEMPOOL_SUPPORTED_HANDLE_TYPES:
    case CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_MULTICAST_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_UNIFIED_FUNCTION_POINTERS:
    case CU_DEVICE_ATTRIBUTE_D3D12_CIG_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_MEMORY_POOLS_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_HOST_NUMA_MULTINODE_IPC_SUPPORTED:
    case CU_DEVICE_ATTRIBUTE_HOST_ALLOC_DMA_BUF_SUPPORTED:
        return 0;
    /* cooperative and cluster launches (CU_LAUNCH_ATTRS) and tensor maps
     * (CU_TENSOR_MAP) are the host's: as the GPU says */
    default:
        break;
    }
    if ((unsigned)a < cu_g.dev.attr_count && (unsigned)a < VGPU_CU_ATTRS) {
        return cu_g.dev.attrs[a];
    }
    return 0;
}

/* ---- init ---- */

/*
 * fork: the child shares the parent's queue and shared memory but must not
 * use them (its requests would land in the parent's rings). As natively, a
 * child of an initialised process gets a clean error from every call; the
 * lock is held across fork so that the child's copy is never held by a
 * thread that does not exist there.
 */
static void fork_prepare(void)
{
    pthread_mutex_lock(&cu_lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&cu_lock);
}

static void fork_child(void)
{
    pthread_mutex_unlock(&cu_lock);
    if (cu_g.inited && cu_g.init_result == CUDA_SUCCESS) {
        cu_g.init_result = CUDA_ERROR_NOT_INITIALIZED;
        cu_g.device_count = 0;
        memset(&cu_g.remote, 0, sizeof(cu_g.remote));
    }
}

VGPU_CU_EXPORT CUresult CUDAAPI cuInit(unsigned int Flags)
{
    const char *detail = "";
    int r;

    if (Flags != 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    pthread_mutex_lock(&cu_lock);
    if (cu_g.inited) {
        CUresult rv = cu_g.init_result;
        pthread_mutex_unlock(&cu_lock);
        return rv;
    }
    cu_g.inited = 1;
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
    r = cu_remote_open(&cu_g.remote, &detail);
    if (r < 0) {
        fprintf(stderr, "libcuda(vgpu): no vgpu device: %s%s%s\n", strerror(-r),
                detail && *detail ? ": " : "", detail ? detail : "");
        cu_g.init_result = CUDA_ERROR_NO_DEVICE;
        goto out;
    }
    r = vgpu_cu_device_info(cu_rm(), &cu_g.dev);
    if (r != 0) {
        fprintf(stderr, "libcuda(vgpu): the host offers no CUDA device (%s)\n",
                r > 0 ? vgpu_status_name(r) : strerror(-r));
        cu_g.init_result = CUDA_ERROR_NO_DEVICE;
        goto out;
    }
    cu_g.dev.name[sizeof(cu_g.dev.name) - 1] = '\0';
    if (cu_g.dev.attr_count > VGPU_CU_ATTRS) {
        cu_g.dev.attr_count = VGPU_CU_ATTRS;
    }
    cu_g.device_count = 1;
    cu_g.primary.magic = CU_MAGIC_CTX;
    cu_g.primary.primary = 1;
    cu_g.primary.dev = 0;
    cu_g.init_result = CUDA_SUCCESS;
out:
    pthread_mutex_unlock(&cu_lock);
    return cu_g.init_result;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDriverGetVersion(int *driverVersion)
{
    if (!driverVersion) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *driverVersion = VGPU_CU_DRIVER_VERSION;
    return CUDA_SUCCESS;
}

/* ---- devices ---- */

static CUresult dev_check(CUdevice dev)
{
    CUresult rv = cu_g.inited ? cu_g.init_result : CUDA_ERROR_NOT_INITIALIZED;

    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    return dev >= 0 && dev < cu_g.device_count ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceGetCount(int *count)
{
    CUresult rv = cu_g.inited ? cu_g.init_result : CUDA_ERROR_NOT_INITIALIZED;

    if (!count) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    *count = cu_g.device_count;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceGet(CUdevice *device, int ordinal)
{
    CUresult rv;

    if (!device) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    rv = dev_check(ordinal);
    if (rv == CUDA_SUCCESS) {
        *device = ordinal;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceGetName(char *name, int len, CUdevice dev)
{
    CUresult rv = dev_check(dev);

    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (!name || len <= 0) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    snprintf(name, (size_t)len, "%s", cu_g.dev.name);
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
    CUresult rv = dev_check(dev);

    if (rv == CUDA_SUCCESS && !bytes) {
        rv = CUDA_ERROR_INVALID_VALUE;
    }
    if (rv == CUDA_SUCCESS) {
        *bytes = (size_t)cu_g.dev.total_mem;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib,
                                                     CUdevice dev)
{
    CUresult rv = dev_check(dev);

    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (!pi || attrib <= 0 || attrib >= CU_DEVICE_ATTRIBUTE_MAX) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *pi = cu_attr(attrib);
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
    CUresult rv = dev_check(dev);

    if (rv == CUDA_SUCCESS && !uuid) {
        rv = CUDA_ERROR_INVALID_VALUE;
    }
    if (rv == CUDA_SUCCESS) {
        memcpy(uuid->bytes, cu_g.dev.uuid, sizeof(uuid->bytes));
    }
    return rv;
}

#undef cuDeviceGetUuid
CUresult CUDAAPI cuDeviceGetUuid(CUuuid *uuid, CUdevice dev);
VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
    return cuDeviceGetUuid_v2(uuid, dev);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceComputeCapability(int *major, int *minor, CUdevice dev)
{
    CUresult rv = dev_check(dev);

    if (rv == CUDA_SUCCESS && (!major || !minor)) {
        rv = CUDA_ERROR_INVALID_VALUE;
    }
    if (rv == CUDA_SUCCESS) {
        *major = cu_attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        *minor = cu_attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceGetProperties(CUdevprop *prop, CUdevice dev)
{
    CUresult rv = dev_check(dev);

    if (rv == CUDA_SUCCESS && !prop) {
        rv = CUDA_ERROR_INVALID_VALUE;
    }
    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    memset(prop, 0, sizeof(*prop));
    prop->maxThreadsPerBlock = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
    prop->maxThreadsDim[0] = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X);
    prop->maxThreadsDim[1] = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y);
    prop->maxThreadsDim[2] = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z);
    prop->maxGridSize[0] = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X);
    prop->maxGridSize[1] = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y);
    prop->maxGridSize[2] = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z);
    prop->sharedMemPerBlock = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK);
    prop->totalConstantMemory = cu_attr(CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY);
    prop->SIMDWidth = cu_attr(CU_DEVICE_ATTRIBUTE_WARP_SIZE);
    prop->memPitch = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_PITCH);
    prop->regsPerBlock = cu_attr(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK);
    prop->clockRate = cu_attr(CU_DEVICE_ATTRIBUTE_CLOCK_RATE);
    prop->textureAlign = cu_attr(CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT);
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev)
{
    CUresult rv = dev_check(dev);

    if (rv == CUDA_SUCCESS && (!pciBusId || len <= 0)) {
        rv = CUDA_ERROR_INVALID_VALUE;
    }
    if (rv == CUDA_SUCCESS) {
        snprintf(pciBusId, (size_t)len, "%08x:%02x:%02x.0",
                 (unsigned)cu_attr(CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID),
                 (unsigned)cu_attr(CU_DEVICE_ATTRIBUTE_PCI_BUS_ID) & 0xff,
                 (unsigned)cu_attr(CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID) & 0xff);
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceGetByPCIBusId(CUdevice *dev, const char *pciBusId)
{
    char mine[32];
    CUresult rv = dev_check(0);

    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    if (!dev || !pciBusId) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    cuDeviceGetPCIBusId(mine, sizeof(mine), 0);
    /* accept with or without the domain, any case */
    if (strcasecmp(pciBusId, mine) == 0 || strcasecmp(pciBusId, mine + 4) == 0 ||
        strcasecmp(pciBusId, mine + 9) == 0) {
        *dev = 0;
        return CUDA_SUCCESS;
    }
    return CUDA_ERROR_INVALID_VALUE;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceCanAccessPeer(int *canAccessPeer, CUdevice dev,
                                                      CUdevice peerDev)
{
    CUresult rv = dev_check(dev);

    if (rv == CUDA_SUCCESS) {
        rv = dev_check(peerDev);
    }
    if (rv == CUDA_SUCCESS && !canAccessPeer) {
        rv = CUDA_ERROR_INVALID_VALUE;
    }
    if (rv == CUDA_SUCCESS) {
        *canAccessPeer = 0;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuDeviceGetExecAffinitySupport(int *pi, CUexecAffinityType type,
                                                               CUdevice dev)
{
    CUresult rv = dev_check(dev);

    (void)type;
    if (rv == CUDA_SUCCESS && !pi) {
        rv = CUDA_ERROR_INVALID_VALUE;
    }
    if (rv == CUDA_SUCCESS) {
        *pi = 0;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuModuleGetLoadingMode(CUmoduleLoadingMode *mode)
{
    if (!mode) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    /* modules are loaded when asked for, on the host: as LAZY as it gets */
    *mode = CU_MODULE_LAZY_LOADING;
    return CUDA_SUCCESS;
}

/* Profiling is the host's business: starting and stopping it here is a no-op. */
VGPU_CU_EXPORT CUresult CUDAAPI cuProfilerStart(void)
{
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuProfilerStop(void)
{
    return CUDA_SUCCESS;
}

/* ---- errors ---- */

VGPU_CU_EXPORT CUresult CUDAAPI cuGetErrorName(CUresult error, const char **pStr)
{
    unsigned i;

    if (!pStr) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    for (i = 0; i < cu_error_names_count; i++) {
        if (cu_error_names[i].value == (int)error) {
            *pStr = cu_error_names[i].name;
            return CUDA_SUCCESS;
        }
    }
    *pStr = NULL;
    return CUDA_ERROR_INVALID_VALUE;
}

/*
 * The text of an error: its name in words ("CUDA_ERROR_OUT_OF_MEMORY" ->
 * "out of memory"), made once per value and kept.
 */
VGPU_CU_EXPORT CUresult CUDAAPI cuGetErrorString(CUresult error, const char **pStr)
{
    static char *texts[1024];
    static pthread_mutex_t texts_lock = PTHREAD_MUTEX_INITIALIZER;
    const char *name;
    unsigned i;

    if (!pStr) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (cuGetErrorName(error, &name) != CUDA_SUCCESS) {
        *pStr = NULL;
        return CUDA_ERROR_INVALID_VALUE;
    }
    for (i = 0; i < cu_error_names_count; i++) {
        if (cu_error_names[i].value == (int)error) {
            break;
        }
    }
    if (error == CUDA_SUCCESS) {
        *pStr = "no error";
        return CUDA_SUCCESS;
    }
    pthread_mutex_lock(&texts_lock);
    if (i < 1024 && !texts[i]) {
        const char *w = strncmp(name, "CUDA_ERROR_", 11) == 0 ? name + 11 : name;
        char *t = strdup(w);

        if (t) {
            for (char *p = t; *p; p++) {
                *p = *p == '_' ? ' ' : (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
            }
        }
        texts[i] = t;
    }
    *pStr = i < 1024 && texts[i] ? texts[i] : name;
    pthread_mutex_unlock(&texts_lock);
    return CUDA_SUCCESS;
}

/* ---- cuGetProcAddress ---- */

VGPU_CU_EXPORT CUresult CUDAAPI cuGetProcAddress_v2(const char *symbol, void **pfn,
                                                    int cudaVersion, cuuint64_t flags,
                                                    CUdriverProcAddressQueryResult *symbolStatus)
{
    const struct cu_proc *best = NULL, *best_ptds = NULL;
    int known = 0, want_ptds;
    unsigned i;

    if (!symbol || !pfn) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    want_ptds = (flags & CU_GET_PROC_ADDRESS_PER_THREAD_DEFAULT_STREAM) != 0;
    /* the table is sorted by name: the first entry of this name, then its run */
    {
        unsigned lo = 0, hi = cu_procs_count;

        while (lo < hi) {
            unsigned mid = lo + (hi - lo) / 2;

            if (strcmp(cu_procs[mid].name, symbol) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        i = lo;
    }
    for (; i < cu_procs_count && strcmp(cu_procs[i].name, symbol) == 0; i++) {
        const struct cu_proc *p = &cu_procs[i];

        known = 1;
        if (p->min_version > cudaVersion) {
            continue;
        }
        if (p->ptds) {
            if (!best_ptds || p->min_version > best_ptds->min_version) {
                best_ptds = p;
            }
        } else if (!best || p->min_version > best->min_version) {
            best = p;
        }
    }
    if (want_ptds && best_ptds) {
        best = best_ptds;
    }
    if (cu_trace()) {
        fprintf(stderr, "libcuda(vgpu): cuGetProcAddress %s@%d%s: %s\n", symbol, cudaVersion,
                want_ptds ? " ptds" : "", best ? "found" : known ? "version" : "not found");
    }
    if (!best) {
        *pfn = NULL;
        if (symbolStatus) {
            *symbolStatus = known ? CU_GET_PROC_ADDRESS_VERSION_NOT_SUFFICIENT
                                  : CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
        }
        return CUDA_ERROR_NOT_FOUND;
    }
    /* decided here, not per call: the default path is the function itself */
    *pfn = cu_trace() >= 2 ? best->traced : best->fn;
    if (symbolStatus) {
        *symbolStatus = CU_GET_PROC_ADDRESS_SUCCESS;
    }
    return CUDA_SUCCESS;
}

#undef cuGetProcAddress
CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                  cuuint64_t flags);
VGPU_CU_EXPORT CUresult CUDAAPI cuGetProcAddress(const char *symbol, void **pfn, int cudaVersion,
                                                 cuuint64_t flags)
{
    return cuGetProcAddress_v2(symbol, pfn, cudaVersion, flags, NULL);
}
