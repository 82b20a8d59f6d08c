/* SPDX-License-Identifier: MIT */
/*
 * An in-process fake of the host for libcuda.so.1's unit tests: the
 * vgpu_cu_* calls libcuda uses, answered on the CPU. Device memory is
 * malloc'ed (a device address is the host pointer); a function's parameter
 * layout comes from its Itanium-mangled name (natural alignment); launching
 * "_Z4vaddPKfS0_Pfi" adds two float vectors, "_Z5faultv" fails as a fault
 * does (reported at the next synchronising call), "_Z7refusedv" is never
 * submitted (a transport error), any other launch records
 * its packed parameters for fake_last_launch(). CU_LAUNCH_ATTRS apply to
 * the next launch (fake_last_attrs()), whose grid must be whole clusters;
 * CU_TENSOR_MAP writes a map of the request's address, rank and first
 * dimension; CU_CTX_LIMIT keeps the limits set.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cuda.h>

#include "../remote.h"
#include "fake_remote.h"

#define FAKE_EXPORT __attribute__((visibility("default")))
#define HEAP_SIZE (16u << 20)

struct vgpu_cu {
    int       kept;          /* the first async error, as the real API keeps it */
    uint64_t  kept_result;
    uint64_t  last_result;
    uint32_t  next_handle;
    uint8_t   last_params[VGPU_CU_MAX_PARAM_BYTES];
    uint32_t  last_params_len;
    uint32_t  launches;
    uint32_t  last_stream;
    int       has_attrs;     /* CU_LAUNCH_ATTRS for the next launch */
    struct vgpu_args_cu_launch_attrs attrs, last_attrs;
    uint64_t  limits[CU_LIMIT_MAX];
    uint32_t  tensor_maps;
};

static struct vgpu_cu fake;
static uint8_t *heap;

/* ---- the layout of a mangled name's parameters ---- */

static const char *param_size(const char *p, uint32_t *size)
{
    if (*p == 'P') {
        p++;
        while (*p == 'K' || *p == 'V') {
            p++;
        }
        if (*p == 'S') {            /* a substitution: S_ or S<n>_ */
            while (*p && *p != '_') {
                p++;
            }
            p++;
        } else {
            p = param_size(p, size);
        }
        *size = 8;
        return p;
    }
    if (*p == 'S') {                /* substitutions here are pointers */
        while (*p && *p != '_') {
            p++;
        }
        *size = 8;
        return *p ? p + 1 : p;
    }
    switch (*p) {
    case 'c': case 'a': case 'h': case 'b': *size = 1; break;
    case 's': case 't': *size = 2; break;
    case 'i': case 'j': case 'f': *size = 4; break;
    case 'd': case 'l': case 'm': case 'x': case 'y': *size = 8; break;
    case 'v': *size = 0; break;
    default: *size = 8; break;
    }
    return *p ? p + 1 : p;
}

static int layout(const char *name, struct vgpu_cu_func_info *info, struct vgpu_cu_param *params,
                  uint32_t max)
{
    const char *p = name;
    uint32_t off = 0, n = 0, size;
    char *end;
    long len;

    memset(info, 0, sizeof(*info));
    info->max_threads = 1024;
    info->num_regs = 16;
    if (strncmp(p, "_Z", 2) != 0) {
        return 0;                   /* extern "C": no parameters known */
    }
    len = strtol(p + 2, &end, 10);
    if (len <= 0) {
        return 0;                   /* nested names and the like: none known */
    }
    p = end + len;
    while (*p) {
        p = param_size(p, &size);
        if (size == 0) {
            continue;
        }
        off = (off + size - 1) & ~(size - 1);
        if (n < max) {
            params[n].offset = off;
            params[n].size = size;
        }
        n++;
        off += size;
    }
    info->param_count = n;
    info->param_bytes = off;
    return 0;
}

/* ---- the API ---- */

static int fail_async(struct vgpu_cu *cu, int status, uint64_t result)
{
    if (!cu->kept) {
        cu->kept = status;
        cu->kept_result = result;
    }
    return 0;
}

static int sync_point(struct vgpu_cu *cu)
{
    int k = cu->kept;

    if (k) {
        cu->last_result = cu->kept_result;
        cu->kept = 0;
    }
    return k;
}

int cu_remote_open(struct cu_remote *r, const char **detail)
{
    (void)detail;
    if (getenv("FAKE_NO_DEVICE")) {
        return -ENODEV;
    }
    heap = aligned_alloc(4096, HEAP_SIZE + CU_REMOTE_SCRATCH);
    if (!heap) {
        return -ENOMEM;
    }
    memset(&fake, 0, sizeof(fake));
    r->dev = NULL;
    r->cu = &fake;
    r->heap = heap;
    r->heap_off = 0x100000;
    r->heap_len = HEAP_SIZE;
    r->scratch = heap + HEAP_SIZE;          /* right after the heap */
    r->scratch_off = 0x100000 + HEAP_SIZE;
    return 0;
}

void cu_remote_close(struct cu_remote *r)
{
    (void)r;
}

static void *shm(uint64_t off)
{
    return heap + (off - 0x100000);
}

uint64_t vgpu_cu_last_result(const struct vgpu_cu *cu)
{
    return cu->last_result;
}

int vgpu_cu_device_info(struct vgpu_cu *cu, struct vgpu_cu_device_info *out)
{
    (void)cu;
    memset(out, 0, sizeof(*out));
    strcpy(out->name, "vgpu fake GPU");
    memcpy(out->uuid, "fake-gpu-uuid-01", 16);
    out->total_mem = 1ull << 30;
    out->driver_version = 13000;
    out->attr_count = VGPU_CU_ATTRS;
    for (int a = 1; a < (int)VGPU_CU_ATTRS; a++) {
        out->attrs[a] = 1;      /* a capable GPU; the important ones below */
    }
    out->attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_MODE] = CU_COMPUTEMODE_DEFAULT;
    out->attrs[CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID] = 0;
    out->attrs[CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID] = 0;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_MULTIPROCESSOR] = 65536;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_BLOCKS_PER_MULTIPROCESSOR] = 32;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_PITCH] = 2147483647;
    out->attrs[CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT] = 512;
    out->attrs[CU_DEVICE_ATTRIBUTE_TEXTURE_PITCH_ALIGNMENT] = 32;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE] = 32 << 20;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_ACCESS_POLICY_WINDOW_SIZE] = 128 << 20;
    out->attrs[CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED] = 1;
    out->attrs[CU_DEVICE_ATTRIBUTE_MULTI_GPU_BOARD] = 0;
    out->attrs[CU_DEVICE_ATTRIBUTE_TCC_DRIVER] = 0;
    out->attrs[CU_DEVICE_ATTRIBUTE_KERNEL_EXEC_TIMEOUT] = 0;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK] = 1024;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X] = 1024;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y] = 1024;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z] = 64;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X] = 2147483647;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y] = 65535;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z] = 65535;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK] = 49152;
    out->attrs[CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY] = 65536;
    out->attrs[CU_DEVICE_ATTRIBUTE_WARP_SIZE] = 32;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK] = 65536;
    out->attrs[CU_DEVICE_ATTRIBUTE_CLOCK_RATE] = 1980000;
    out->attrs[CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT] = 132;
    out->attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR] = 9;
    out->attrs[CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR] = 0;
    out->attrs[CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING] = 1;
    out->attrs[CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY] = 1;   /* libcuda must hide it */
    out->attrs[CU_DEVICE_ATTRIBUTE_PCI_BUS_ID] = 0x1b;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR] = 2048;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR] = 233472;
    out->attrs[CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN] = 232448;
    out->attrs[CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK] = 1024;
    out->attrs[CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS] = 1;
    out->attrs[CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT] = 2;
    out->attrs[CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE] = 50 << 20;
    out->attrs[CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH] = 5120;
    out->attrs[CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE] = 2619000;
    return 0;
}

int vgpu_cu_mem_get_info(struct vgpu_cu *cu, uint64_t *free_bytes)
{
    (void)cu;
    *free_bytes = 1ull << 29;
    return 0;
}

int vgpu_cu_mem_alloc(struct vgpu_cu *cu, uint64_t bytes, uint64_t *dptr)
{
    void *p = calloc(1, bytes);

    (void)cu;
    if (!p) {
        return VGPU_S_NO_MEMORY;
    }
    *dptr = (uintptr_t)p;
    return 0;
}

int vgpu_cu_mem_free(struct vgpu_cu *cu, uint64_t dptr)
{
    (void)cu;
    free((void *)(uintptr_t)dptr);
    return 0;
}

int vgpu_cu_memset_async(struct vgpu_cu *cu, uint64_t dptr, uint32_t value, uint32_t elem_size,
                         uint64_t count, uint32_t stream)
{
    uint64_t i;

    (void)cu; (void)stream;
    for (i = 0; i < count; i++) {
        memcpy((uint8_t *)(uintptr_t)dptr + i * elem_size, &value, elem_size);
    }
    return 0;
}

int vgpu_cu_memcpy_htod_async(struct vgpu_cu *cu, uint64_t dst, uint64_t src_off, uint64_t len,
                              uint32_t stream)
{
    (void)cu; (void)stream;
    memcpy((void *)(uintptr_t)dst, shm(src_off), len);
    return 0;
}

int vgpu_cu_memcpy_dtoh_async(struct vgpu_cu *cu, uint64_t dst_off, uint64_t src, uint64_t len,
                              uint32_t stream)
{
    (void)cu; (void)stream;
    memcpy(shm(dst_off), (void *)(uintptr_t)src, len);
    return 0;
}

int vgpu_cu_memcpy_dtod_async(struct vgpu_cu *cu, uint64_t dst, uint64_t src, uint64_t len,
                              uint32_t stream)
{
    (void)cu; (void)stream;
    memmove((void *)(uintptr_t)dst, (void *)(uintptr_t)src, len);
    return 0;
}

int vgpu_cu_memcpy_2d_async(struct vgpu_cu *cu, const struct vgpu_args_cu_memcpy2d *a)
{
    uint8_t *d = a->dst_kind == VGPU_CU_MEM_SHM ? shm(a->dst) : (uint8_t *)(uintptr_t)a->dst;
    const uint8_t *s = a->src_kind == VGPU_CU_MEM_SHM ? shm(a->src) : (uint8_t *)(uintptr_t)a->src;
    uint32_t r;

    (void)cu;
    for (r = 0; r < a->height; r++) {
        memmove(d + (uint64_t)r * a->dst_pitch, s + (uint64_t)r * a->src_pitch, a->width);
    }
    return 0;
}

int vgpu_cu_memcpy_htod(struct vgpu_cu *cu, uint64_t dst, const void *src, uint64_t len,
                        uint32_t stream)
{
    (void)stream;
    memcpy((void *)(uintptr_t)dst, src, len);
    return sync_point(cu);
}

int vgpu_cu_memcpy_dtoh(struct vgpu_cu *cu, void *dst, uint64_t src, uint64_t len, uint32_t stream)
{
    (void)stream;
    memcpy(dst, (void *)(uintptr_t)src, len);
    return sync_point(cu);
}

int vgpu_cu_module_load(struct vgpu_cu *cu, uint64_t image_off, uint64_t image_len,
                        uint32_t *module)
{
    (void)image_off; (void)image_len;
    *module = ++cu->next_handle;
    return 0;
}

int vgpu_cu_module_load_data(struct vgpu_cu *cu, const void *image, uint64_t len, uint32_t *module)
{
    (void)image;
    if (len > (4u << 20)) {
        return -EMSGSIZE;
    }
    *module = ++cu->next_handle;
    return 0;
}

int vgpu_cu_module_unload(struct vgpu_cu *cu, uint32_t module)
{
    (void)cu; (void)module;
    return 0;
}

#define FAKE_FUNCS 256
static char *func_names[FAKE_FUNCS];

int vgpu_cu_module_get_function(struct vgpu_cu *cu, uint32_t module, const char *name,
                                uint32_t *func, struct vgpu_cu_func_info *info,
                                struct vgpu_cu_param *params, uint32_t max_params)
{
    (void)module;
    if (strcmp(name, "missing") == 0) {
        cu->last_result = CUDA_ERROR_NOT_FOUND;
        return VGPU_S_CUDA_ERROR;
    }
    if (layout(name, info, params, max_params) < 0 || cu->next_handle + 1 >= FAKE_FUNCS) {
        return VGPU_S_BAD_ARGS;
    }
    *func = ++cu->next_handle;
    func_names[*func] = strdup(name);
    return 0;
}

int vgpu_cu_module_get_global(struct vgpu_cu *cu, uint32_t module, const char *name,
                              uint64_t *dptr, uint64_t *bytes)
{
    static uint64_t global[16];

    (void)cu; (void)module; (void)name;
    *dptr = (uintptr_t)global;
    *bytes = sizeof(global);
    return 0;
}

int vgpu_cu_launch_params(struct vgpu_cu *cu, const struct vgpu_args_cu_launch *a,
                          const void *params)
{
    const char *name = a->func < FAKE_FUNCS ? func_names[a->func] : NULL;

    if (!name) {
        return VGPU_S_BAD_ARGS;
    }
    if (strcmp(name, "_Z7refusedv") == 0) {
        return -EIO;                /* the transport failed: not submitted */
    }
    cu->launches++;
    cu->last_stream = a->stream;
    memcpy(cu->last_params, params, a->params_len);
    cu->last_params_len = a->params_len;
    memset(&cu->last_attrs, 0, sizeof(cu->last_attrs));
    if (cu->has_attrs) {
        const uint32_t *cl = cu->attrs.cluster;

        cu->has_attrs = 0;
        cu->last_attrs = cu->attrs;
        if (cl[0] && (a->grid[0] % cl[0] || a->grid[1] % cl[1] || a->grid[2] % cl[2])) {
            return fail_async(cu, VGPU_S_CUDA_ERROR, CUDA_ERROR_INVALID_CLUSTER_SIZE);
        }
    }
    if (strcmp(name, "_Z5faultv") == 0) {
        return fail_async(cu, VGPU_S_GPU_FAULT, 0);
    }
    if (strcmp(name, "_Z4vaddPKfS0_Pfi") == 0 && a->params_len == 28) {
        const float *x, *y;
        float *z;
        int32_t n, i;

        memcpy(&x, (const uint8_t *)params + 0, 8);
        memcpy(&y, (const uint8_t *)params + 8, 8);
        memcpy(&z, (const uint8_t *)params + 16, 8);
        memcpy(&n, (const uint8_t *)params + 24, 4);
        for (i = 0; i < n && i < (int32_t)(a->grid[0] * a->block[0]); i++) {
            z[i] = x[i] + y[i];
        }
    }
    return 0;
}

int vgpu_cu_stream_create(struct vgpu_cu *cu, uint32_t flags, int32_t priority, uint32_t *stream)
{
    (void)flags; (void)priority;
    *stream = ++cu->next_handle;
    return 0;
}

int vgpu_cu_stream_destroy(struct vgpu_cu *cu, uint32_t stream)
{
    (void)cu; (void)stream;
    return 0;
}

int vgpu_cu_stream_sync(struct vgpu_cu *cu, uint32_t stream)
{
    (void)stream;
    return sync_point(cu);
}

int vgpu_cu_stream_query(struct vgpu_cu *cu, uint32_t stream, int *done)
{
    (void)stream;
    *done = 1;
    return sync_point(cu);
}

int vgpu_cu_stream_wait_event(struct vgpu_cu *cu, uint32_t stream, uint32_t event)
{
    (void)cu; (void)stream; (void)event;
    return 0;
}

int vgpu_cu_event_create(struct vgpu_cu *cu, uint32_t flags, uint32_t *event)
{
    (void)flags;
    *event = ++cu->next_handle;
    return 0;
}

int vgpu_cu_event_destroy(struct vgpu_cu *cu, uint32_t event)
{
    (void)cu; (void)event;
    return 0;
}

int vgpu_cu_event_record(struct vgpu_cu *cu, uint32_t event, uint32_t stream)
{
    (void)cu; (void)event; (void)stream;
    return 0;
}

int vgpu_cu_event_sync(struct vgpu_cu *cu, uint32_t event)
{
    (void)event;
    return sync_point(cu);
}

int vgpu_cu_event_query(struct vgpu_cu *cu, uint32_t event, int *done)
{
    (void)event;
    *done = 1;
    return sync_point(cu);
}

int vgpu_cu_event_elapsed(struct vgpu_cu *cu, uint32_t start, uint32_t end, float *ms)
{
    (void)cu; (void)start; (void)end;
    *ms = 0.5f;
    return 0;
}

int vgpu_cu_ctx_sync(struct vgpu_cu *cu)
{
    return sync_point(cu);
}

int vgpu_cu_ctx_reset(struct vgpu_cu *cu)
{
    int k = sync_point(cu);

    (void)k;
    return 0;
}

int vgpu_cu_func_get_attr(struct vgpu_cu *cu, uint32_t func, int32_t attr, int32_t *value)
{
    (void)cu; (void)func;
    *value = attr == CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK ? 1024 : 0;
    return 0;
}

int vgpu_cu_func_set_attr(struct vgpu_cu *cu, uint32_t func, int32_t attr, int32_t value)
{
    (void)cu; (void)func; (void)attr; (void)value;
    return 0;
}

int vgpu_cu_occupancy(struct vgpu_cu *cu, uint32_t func, int32_t block_size, int32_t dyn_shared,
                      int32_t *blocks_per_sm)
{
    (void)cu; (void)func; (void)dyn_shared;
    *blocks_per_sm = block_size > 0 ? 2048 / block_size : 0;
    if (*blocks_per_sm > 32) {
        *blocks_per_sm = 32;
    }
    return 0;
}

/* ---- the generic calls ---- */

static int fake_tensor_map(struct vgpu_cu *cu, const struct vgpu_args_cu_tensor_map *a)
{
    const struct vgpu_cu_tensor_map_req *q = shm(a->in_off);
    uint64_t map[VGPU_CU_TENSOR_MAP_BYTES / 8];

    if (a->in_off % 8 || a->out_off % 64 || a->kind > VGPU_CU_TENSOR_MAP_IM2COL) {
        return VGPU_S_BAD_ARGS;
    }
    if (q->rank < 1 || q->rank > 5 || (a->kind == VGPU_CU_TENSOR_MAP_IM2COL && q->rank < 3)) {
        cu->last_result = CUDA_ERROR_INVALID_VALUE;
        return VGPU_S_CUDA_ERROR;
    }
    memset(map, 0, sizeof(map));
    map[0] = q->global_address;
    map[1] = q->rank | (uint64_t)a->kind << 8;
    map[2] = q->global_dim[0];
    map[3] = q->box_dim[0] | (uint64_t)q->pixels_per_column << 32;
    map[15] = 0x766770752d746d61ull;
    memcpy(shm(a->out_off), map, sizeof(map));
    cu->tensor_maps++;
    return 0;
}

int vgpu_cu_call(struct vgpu_cu *cu, const struct vgpu_sqe *sqe, uint64_t *result)
{
    const struct vgpu_args_cu_limit *l = &sqe->args.cu_limit;
    uint64_t v;

    switch (sqe->opcode) {
    case VGPU_OP_CU_TENSOR_MAP:
        return fake_tensor_map(cu, &sqe->args.cu_tensor_map);
    case VGPU_OP_CU_CTX_LIMIT:
        if (l->limit >= CU_LIMIT_MAX || l->set > 1) {
            return VGPU_S_BAD_ARGS;
        }
        if (l->set) {
            /* as the driver does with the stack: rounded up */
            cu->limits[l->limit] = l->limit == CU_LIMIT_STACK_SIZE ? (l->value + 15) & ~15ull
                                                                   : l->value;
        }
        v = cu->limits[l->limit] ? cu->limits[l->limit] : 1024;
        if (result) {
            *result = v;
        }
        return 0;
    default:
        return VGPU_S_UNKNOWN_OP;
    }
}

int vgpu_cu_submit_async(struct vgpu_cu *cu, const struct vgpu_sqe *sqe)
{
    if (sqe->opcode != VGPU_OP_CU_LAUNCH_ATTRS) {
        return fail_async(cu, VGPU_S_UNKNOWN_OP, 0);
    }
    cu->attrs = sqe->args.cu_launch_attrs;
    cu->has_attrs = 1;
    return 0;
}

/* ---- for the tests ---- */

FAKE_EXPORT int fake_last_attrs(uint32_t cluster[3], uint32_t *flags, uint32_t *policy)
{
    memcpy(cluster, fake.last_attrs.cluster, sizeof(fake.last_attrs.cluster));
    *flags = fake.last_attrs.flags;
    *policy = fake.last_attrs.cluster_policy;
    return fake.has_attrs;
}

FAKE_EXPORT uint32_t fake_tensor_maps(void)
{
    return fake.tensor_maps;
}

FAKE_EXPORT uint32_t fake_last_launch(void *params, uint32_t max)
{
    uint32_t n = fake.last_params_len < max ? fake.last_params_len : max;

    memcpy(params, fake.last_params, n);
    return fake.last_params_len;
}

FAKE_EXPORT uint32_t fake_launches(void)
{
    return fake.launches;
}

FAKE_EXPORT uint32_t fake_last_stream(void)
{
    return fake.last_stream;
}
