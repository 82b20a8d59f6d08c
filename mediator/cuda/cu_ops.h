/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA driver operations (VGPU_OP_CU_*, ABI 1.2) as the VM's GPU worker
 * executes them (cu_ops.c), with the real driver API. The engine
 * (engine.c) owns the session and the deadline; this module owns one
 * VM's driver objects: per queue pair a GPU context (queue 0: the device's
 * primary context, which the Phase 1 operations use too; queue q >= 1: a
 * context of its own, so guest processes on different queues share no
 * address space) and the tables that give the guest its handles.
 *
 * Every handle and device range a request names is checked against the
 * tables of the queue it came from; the guest never passes a pointer the
 * worker dereferences on the host other than BAR2 offsets the mediator has
 * range-checked.
 */
#ifndef VGPU_CUDA_CU_OPS_H
#define VGPU_CUDA_CU_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "mediator/op.h"
#include "vgpu/abi.h"

struct vgpu_cu_vm;

/* What one request runs with, and what it reports back. */
struct vgpu_cu_env {
    int      device;            /* CUDA device ordinal */
    uint32_t epoch;             /* the VM's context generation (worker restarts) */
    uint32_t lost_epochs;       /* how many generations before it the VM had (<= 15) */
    uint64_t mem_quota;         /* device bytes the VM may hold; 0: no limit */
    uint64_t mem_used;          /* device bytes the VM holds before the request */
    uint64_t deadline_ns;       /* CLOCK_MONOTONIC end of the request; 0: none */
    uint64_t try_ns;            /* a sync may give up after this long with
                                 * VGPU_S_BUSY (VGPU_EXEC_TRY); 0: waits */
    /* A request completed before it ran (VGPU_WMSG_EXEC_ASYNC): its failure
     * is kept and reported by the queue's next sync or query (as a CUDA
     * driver reports errors of asynchronous work); its launch parameters
     * are params (copied when it was queued), not shared memory. */
    bool     deferred;
    const void *params;
    uint32_t params_len;
    /* out */
    int64_t  mem_delta;         /* device bytes the request allocated (+) or freed (-) */
    bool     sticky;            /* the GPU context is lost: end the worker */
    bool     timed_out;         /* a wait ran past deadline_ns with work still queued */
};

/*
 * Resolves the driver entry points through the runtime (the runtime is
 * linked statically and has loaded the driver). 0, or -ENOSYS with *why set
 * when the driver lacks one (then every VGPU_OP_CU_* is not-supported).
 */
int  vgpu_cu_api_load(const char **why);

struct vgpu_cu_vm *vgpu_cu_vm_new(void);
/* Destroys the VM's contexts and everything in them; returns the device
 * bytes it held (for the quota). Accepts NULL. */
uint64_t vgpu_cu_vm_free(struct vgpu_cu_vm *vm);

/*
 * Runs one validated VGPU_OP_CU_* request from queue `queue`. Returns an
 * enum vgpu_status; *result gets the operation's result (for
 * VGPU_S_CUDA_ERROR and VGPU_S_GPU_FAULT: the CUresult). A sync or query
 * that succeeds returns instead the first failure kept of the queue's
 * deferred requests since the last one (and forgets it).
 */
int  vgpu_cu_execute(struct vgpu_cu_vm *vm, struct vgpu_cu_env *env, uint32_t queue,
                     const struct vgpu_sqe *sqe, const struct vgpu_shm_view *shm,
                     uint64_t *result);

/* Objects the VM holds (tests, health): contexts, modules, allocations. */
struct vgpu_cu_counts {
    unsigned contexts, modules, functions, streams, events, allocations;
    uint64_t image_cache_hits;
};
void vgpu_cu_vm_counts(const struct vgpu_cu_vm *vm, struct vgpu_cu_counts *out);

#endif /* VGPU_CUDA_CU_OPS_H */
