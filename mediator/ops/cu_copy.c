/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Copies between the data area and device memory (ABI 1.2), all async (on
 * args.stream, 0 = the default stream):
 *   CU_MEMCPY_HTOD  data area [src, src+len) -> device dst
 *   CU_MEMCPY_DTOH  device src -> data area [dst, dst+len)
 *   CU_MEMCPY_DTOD  device src -> device dst (overlap is the guest's own
 *                   business, as natively: device addresses are not ours)
 *   CU_MEMCPY_2D    height rows of width bytes, each side device or data
 *                   area (VGPU_CU_MEM_*), rows pitch bytes apart
 * len 1 .. VGPU_MAX_COPY_BYTES (2D: width * height). Data-area sides are
 * range-checked here, device sides only for NULL and wrap-around (the worker
 * checks them against the queue's allocations).
 */
#include "mediator/ops/cu-priv.h"

/* The fields every 1D copy checks, before its two sides. */
static int copy_common(const struct vgpu_sqe *sqe)
{
    const struct vgpu_args_cu_memcpy *a = &sqe->args.cu_memcpy;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->pad != 0) {
        return VGPU_S_BAD_ARGS;
    }
    return vgpu_check_count(a->len, VGPU_MAX_COPY_BYTES);
}

static int htod_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_memcpy *a = &sqe->args.cu_memcpy;
    int s = copy_common(sqe);

    if (s == VGPU_S_OK) {
        s = vgpu_check_range(a->src, a->len, 1, shm_size);
    }
    if (s == VGPU_S_OK) {
        s = vgpu_cu_check_device(a->dst, a->len, 1);
    }
    return s;
}

static int dtoh_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_memcpy *a = &sqe->args.cu_memcpy;
    int s = copy_common(sqe);

    if (s == VGPU_S_OK) {
        s = vgpu_cu_check_device(a->src, a->len, 1);
    }
    if (s == VGPU_S_OK) {
        s = vgpu_check_range(a->dst, a->len, 1, shm_size);
    }
    return s;
}

static int dtod_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_memcpy *a = &sqe->args.cu_memcpy;
    int s = copy_common(sqe);

    (void)shm_size;
    if (s == VGPU_S_OK) {
        s = vgpu_cu_check_device(a->src, a->len, 1);
    }
    if (s == VGPU_S_OK) {
        s = vgpu_cu_check_device(a->dst, a->len, 1);
    }
    return s;
}

static void htod_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    *in = vgpu_clamp_u64(sqe->args.cu_memcpy.len, VGPU_MAX_COPY_BYTES);
    *out = 0;
}

static void dtoh_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    *in = 0;
    *out = vgpu_clamp_u64(sqe->args.cu_memcpy.len, VGPU_MAX_COPY_BYTES);
}

/* Between shared memory and the GPU: the copy runs at the CPU model's rate. */
static uint64_t host_copy_cost_ns(const struct vgpu_sqe *sqe)
{
    return vgpu_cost_model_ns(vgpu_clamp_u64(sqe->args.cu_memcpy.len, VGPU_MAX_COPY_BYTES), 0);
}

static uint64_t dtod_cost_ns(const struct vgpu_sqe *sqe)
{
    /* Read and written on the device. */
    return vgpu_cu_device_cost_ns(2 * vgpu_clamp_u64(sqe->args.cu_memcpy.len,
                                                     VGPU_MAX_COPY_BYTES));
}

static unsigned htod_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    out[0] = (struct vgpu_range) { sqe->args.cu_memcpy.src, sqe->args.cu_memcpy.len };
    return 1;
}

static unsigned dtoh_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    out[0] = (struct vgpu_range) { sqe->args.cu_memcpy.dst, sqe->args.cu_memcpy.len };
    return 1;
}

const struct vgpu_op vgpu_op_cu_memcpy_htod = {
    .opcode     = VGPU_OP_CU_MEMCPY_HTOD,
    .name       = "cu_memcpy_htod",
    .validate   = htod_validate,
    .cost_ns    = host_copy_cost_ns,
    .bytes      = htod_bytes,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .ranges     = htod_ranges,
};

const struct vgpu_op vgpu_op_cu_memcpy_dtoh = {
    .opcode     = VGPU_OP_CU_MEMCPY_DTOH,
    .name       = "cu_memcpy_dtoh",
    .validate   = dtoh_validate,
    .cost_ns    = host_copy_cost_ns,
    .bytes      = dtoh_bytes,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .ranges     = dtoh_ranges,
};

const struct vgpu_op vgpu_op_cu_memcpy_dtod = {
    .opcode     = VGPU_OP_CU_MEMCPY_DTOD,
    .name       = "cu_memcpy_dtod",
    .validate   = dtod_validate,
    .cost_ns    = dtod_cost_ns,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

/*
 * Bytes from the first row's start to the last row's end:
 * (height - 1) * pitch + width, with height >= 1 and width <= pitch. Both
 * factors are below 2^32, so the sum stays below 2^64.
 */
static uint64_t extent_2d(uint32_t pitch, uint32_t width, uint32_t height)
{
    return (uint64_t)(height - 1) * pitch + width;
}

static int side_2d(uint8_t kind, uint64_t addr, uint64_t extent, uint64_t shm_size)
{
    return kind == VGPU_CU_MEM_SHM ? vgpu_check_range(addr, extent, 1, shm_size)
                                   : vgpu_cu_check_device(addr, extent, 1);
}

static int memcpy_2d_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_memcpy2d *a = &sqe->args.cu_memcpy2d;
    uint64_t dst_ext, src_ext;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->pad != 0 || a->dst_kind > VGPU_CU_MEM_SHM || a->src_kind > VGPU_CU_MEM_SHM) {
        return VGPU_S_BAD_ARGS;
    }
    if (a->width == 0 || a->height == 0 || a->width > a->dst_pitch ||
        a->width > a->src_pitch) {
        return VGPU_S_BAD_ARGS;
    }
    if ((uint64_t)a->width * a->height > VGPU_MAX_COPY_BYTES) {
        return VGPU_S_TOO_LARGE;
    }
    dst_ext = extent_2d(a->dst_pitch, a->width, a->height);
    src_ext = extent_2d(a->src_pitch, a->width, a->height);
    s = side_2d(a->src_kind, a->src, src_ext, shm_size);
    if (s == VGPU_S_OK) {
        s = side_2d(a->dst_kind, a->dst, dst_ext, shm_size);
    }
    /* Within shared memory the copy must not read what it writes: that is
     * also what lets a restarted mediator run it again (cu_common.c). */
    if (s == VGPU_S_OK && a->src_kind == VGPU_CU_MEM_SHM && a->dst_kind == VGPU_CU_MEM_SHM &&
        vgpu_ranges_overlap(a->src, src_ext, a->dst, dst_ext)) {
        s = VGPU_S_OVERLAP;
    }
    return s;
}

static void memcpy_2d_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    const struct vgpu_args_cu_memcpy2d *a = &sqe->args.cu_memcpy2d;
    uint64_t n = vgpu_clamp_u64((uint64_t)a->width * a->height, VGPU_MAX_COPY_BYTES);

    *in = a->src_kind == VGPU_CU_MEM_SHM ? n : 0;
    *out = a->dst_kind == VGPU_CU_MEM_SHM ? n : 0;
}

static uint64_t memcpy_2d_cost_ns(const struct vgpu_sqe *sqe)
{
    const struct vgpu_args_cu_memcpy2d *a = &sqe->args.cu_memcpy2d;
    uint64_t in, out;

    memcpy_2d_bytes(sqe, &in, &out);
    if (in + out == 0) {
        return vgpu_cu_device_cost_ns(2 * vgpu_clamp_u64((uint64_t)a->width * a->height,
                                                         VGPU_MAX_COPY_BYTES));
    }
    return vgpu_cost_model_ns(in + out, 0);
}

static unsigned memcpy_2d_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    const struct vgpu_args_cu_memcpy2d *a = &sqe->args.cu_memcpy2d;
    unsigned n = 0;

    if (a->src_kind == VGPU_CU_MEM_SHM) {
        out[n++] = (struct vgpu_range) { a->src, extent_2d(a->src_pitch, a->width, a->height) };
    }
    if (a->dst_kind == VGPU_CU_MEM_SHM) {
        out[n++] = (struct vgpu_range) { a->dst, extent_2d(a->dst_pitch, a->width, a->height) };
    }
    return n;
}

const struct vgpu_op vgpu_op_cu_memcpy_2d = {
    .opcode     = VGPU_OP_CU_MEMCPY_2D,
    .name       = "cu_memcpy_2d",
    .validate   = memcpy_2d_validate,
    .cost_ns    = memcpy_2d_cost_ns,
    .bytes      = memcpy_2d_bytes,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .ranges     = memcpy_2d_ranges,
};
