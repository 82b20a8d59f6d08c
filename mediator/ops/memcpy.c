/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * MEMCPY: the bandwidth probe. Per enum vgpu_memcpy_mode:
 *   ROUNDTRIP  src -> device -> dst; both ranges checked, must not overlap
 *   H2D        src -> device only; dst is ignored (not even range-checked)
 *   D2H        device -> dst only; src is ignored; dst is zero-filled
 * Result: len for every mode.
 *
 * On the CPU backend "device memory" is host memory: ROUNDTRIP is one copy,
 * H2D streams src through a private bounce buffer (so every byte is really
 * read), D2H zero-fills dst.
 */
#include <stdlib.h>
#include <string.h>

#include "mediator/ops/ops-priv.h"

#define BOUNCE_SIZE (1u << 20)

static int memcpy_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_memcpy *a = &sqe->args.memcpy;
    int s;

    if (sqe->flags != 0 || a->pad != 0 || a->mode > VGPU_MEMCPY_D2H) {
        return VGPU_S_BAD_ARGS;
    }
    s = vgpu_check_count(a->len, VGPU_MAX_COPY_BYTES);
    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->mode != VGPU_MEMCPY_D2H &&
        (s = vgpu_check_range(a->src_off, a->len, 1, shm_size)) != VGPU_S_OK) {
        return s;
    }
    if (a->mode != VGPU_MEMCPY_H2D &&
        (s = vgpu_check_range(a->dst_off, a->len, 1, shm_size)) != VGPU_S_OK) {
        return s;
    }
    if (a->mode == VGPU_MEMCPY_ROUNDTRIP &&
        vgpu_ranges_overlap(a->src_off, a->len, a->dst_off, a->len)) {
        return VGPU_S_OVERLAP;
    }
    return VGPU_S_OK;
}

static void memcpy_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    const struct vgpu_args_memcpy *a = &sqe->args.memcpy;
    uint64_t len = vgpu_clamp_u64(a->len, VGPU_MAX_COPY_BYTES);

    *in = a->mode != VGPU_MEMCPY_D2H ? len : 0;
    *out = a->mode != VGPU_MEMCPY_H2D ? len : 0;
}

static uint64_t memcpy_cost_ns(const struct vgpu_sqe *sqe)
{
    uint64_t in, out;

    memcpy_bytes(sqe, &in, &out);
    return vgpu_cost_model_ns(in + out, 0);
}

static int memcpy_exec_cpu(const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                           uint64_t *result)
{
    const struct vgpu_args_memcpy *a = &sqe->args.memcpy;
    uint8_t *bounce;

    switch (a->mode) {
    case VGPU_MEMCPY_ROUNDTRIP:
        memcpy(shm->base + a->dst_off, shm->base + a->src_off, a->len);
        break;
    case VGPU_MEMCPY_H2D:
        bounce = malloc(a->len < BOUNCE_SIZE ? a->len : BOUNCE_SIZE);
        if (!bounce) {
            return VGPU_S_NO_MEMORY;
        }
        for (uint64_t done = 0; done < a->len; done += BOUNCE_SIZE) {
            uint64_t chunk = a->len - done < BOUNCE_SIZE ? a->len - done : BOUNCE_SIZE;

            memcpy(bounce, shm->base + a->src_off + done, chunk);
            /* The bounce buffer is never read: keep the copy from being elided. */
            __asm__ volatile("" : : "r"(bounce) : "memory");
        }
        free(bounce);
        break;
    case VGPU_MEMCPY_D2H:
        memset(shm->base + a->dst_off, 0, a->len);
        break;
    default:
        return VGPU_S_BAD_ARGS;     /* unreachable after validate */
    }
    *result = a->len;
    return VGPU_S_OK;
}

/* Parts of whole MEMCPY_GRAIN bytes keep every part's offsets as aligned as
 * the request's. */
#define MEMCPY_GRAIN (1ull << 20)

static uint32_t memcpy_parts(const struct vgpu_sqe *sqe, uint32_t want)
{
    return vgpu_op_split_count(sqe->args.memcpy.len, MEMCPY_GRAIN, want);
}

static void memcpy_part(const struct vgpu_sqe *sqe, uint32_t i, uint32_t n, struct vgpu_sqe *out)
{
    struct vgpu_args_memcpy *a = &out->args.memcpy;
    uint64_t first, count;

    *out = *sqe;
    vgpu_op_split_range(sqe->args.memcpy.len, MEMCPY_GRAIN, i, n, &first, &count);
    if (a->mode != VGPU_MEMCPY_D2H) {
        a->src_off += first;
    }
    if (a->mode != VGPU_MEMCPY_H2D) {
        a->dst_off += first;
    }
    a->len = count;
}

/* Only the sides the mode uses (the other offset is ignored). */
static unsigned memcpy_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    const struct vgpu_args_memcpy *a = &sqe->args.memcpy;
    unsigned n = 0;

    if (a->mode != VGPU_MEMCPY_D2H) {
        out[n++] = (struct vgpu_range){ a->src_off, a->len };
    }
    if (a->mode != VGPU_MEMCPY_H2D) {
        out[n++] = (struct vgpu_range){ a->dst_off, a->len };
    }
    return n;
}

const struct vgpu_op vgpu_op_memcpy = {
    .opcode   = VGPU_OP_MEMCPY,
    .name     = "memcpy",
    .validate = memcpy_validate,
    .cost_ns  = memcpy_cost_ns,
    .bytes    = memcpy_bytes,
    .exec_cpu = memcpy_exec_cpu,
    .idempotent = vgpu_op_always_idempotent,
    .parts    = memcpy_parts,
    .part     = memcpy_part,
    .ranges   = memcpy_ranges,
};
