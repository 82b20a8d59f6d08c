/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * What the CUDA driver operations (VGPU_OP_CU_*) share: the header and
 * device-range checks, the cpu backend's answer, and the restart rule.
 */
#include <string.h>

#include "mediator/ops/cu-priv.h"

int vgpu_cu_check_header(const struct vgpu_sqe *sqe, size_t used)
{
    if (sqe->flags != 0) {
        return VGPU_S_BAD_ARGS;
    }
    for (size_t i = used; i < sizeof(sqe->args.raw); i++) {
        if (sqe->args.raw[i] != 0) {
            return VGPU_S_BAD_ARGS;
        }
    }
    return VGPU_S_OK;
}

int vgpu_cu_check_device(uint64_t dptr, uint64_t len, uint64_t align)
{
    if (dptr == 0) {
        return VGPU_S_BAD_ARGS;
    }
    if (len > UINT64_MAX - dptr) {
        return VGPU_S_BAD_RANGE;
    }
    if (align > 1 && (dptr & (align - 1)) != 0) {
        return VGPU_S_BAD_ALIGN;
    }
    return VGPU_S_OK;
}

int vgpu_cu_validate_stream(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    int s = vgpu_cu_check_header(sqe, sizeof(sqe->args.cu_handle));

    (void)shm_size;
    if (s != VGPU_S_OK) {
        return s;
    }
    return sqe->args.cu_handle.pad != 0 ? VGPU_S_BAD_ARGS : VGPU_S_OK;
}

int vgpu_cu_validate_object(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    int s = vgpu_cu_validate_stream(sqe, shm_size);

    return s != VGPU_S_OK ? s : vgpu_cu_check_handle(sqe->args.cu_handle.handle);
}

int vgpu_cu_exec_cpu(const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                     uint64_t *result)
{
    (void)sqe;
    (void)shm;
    *result = 0;
    return VGPU_S_NOT_SUPPORTED;
}

/*
 * Every CU operation counts as idempotent, so none is ever marked
 * VGPU_HOST_EXEC_UNSAFE and a request the mediator died in is run again by
 * the next mediator. That is safe for a reason of its own: the state a CU
 * request acts on lives in the VM's GPU worker, which dies with the
 * mediator (PR_SET_PDEATHSIG), so the request runs again in a NEW context,
 * never twice in the same one:
 *  - a request naming a handle of the old context (free, memset, copies,
 *    launches, syncs, ...) must complete VGPU_S_CONTEXT_LOST in the new
 *    worker, which tells old handles by their epoch, and the guest recreates
 *    its objects;
 *  - a request naming none (device info, mem info, alloc, module load,
 *    stream/event create, ctx sync/reset) gives the result of one execution
 *    in the new context; what the first run created died with the old one,
 *    so nothing leaks and nothing is applied twice.
 * Device addresses carry no epoch: a new context may hand out the same
 * address again, so an old one is not recognisable by itself. The worker
 * must therefore refuse (VGPU_S_CONTEXT_LOST) device addresses in requests
 * resumed from before its context existed, not only unknown ones.
 * What a CU request writes into shared memory (device info, function info,
 * DtoH data) never overlaps what it reads there (2D shm-to-shm copies must
 * not overlap), so a rerun also rewrites the same bytes.
 */
bool vgpu_cu_idempotent(const struct vgpu_sqe *sqe)
{
    (void)sqe;
    return true;
}

uint64_t vgpu_cu_cost_small(const struct vgpu_sqe *sqe)
{
    (void)sqe;
    return VGPU_COST_BASE_NS;
}

void vgpu_cu_bytes_none(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    (void)sqe;
    *in = 0;
    *out = 0;
}
