/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA engine as the worker process (worker.c) sees it: a backend table
 * and a few hooks, defined in engine.c (test_cuda_proxy.c defines a fake
 * engine with the same names, so the proxy and the worker loop run anywhere).
 * The engine runs only in a VM's worker process, never in the mediator.
 */
#ifndef VGPU_CUDA_ENGINE_H
#define VGPU_CUDA_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "mediator/backend.h"
#include "vgpu/abi.h"

/* The engine's backend table. Its execute() and the hooks below return a
 * request's status (enum vgpu_status); init and session_open 0 or -errno. */
extern const struct vgpu_backend_ops vgpu_cuda_engine;

/* The generation of s's GPU context: bits 0-3 the proxy's count of its
 * worker's restarts from a random start, bits 4-7 how many generations the
 * VM had before (at most 15). Handles of the driver operations carry the
 * generation, so one from before a restart is context-lost, not another
 * object. */
void vgpu_cuda_engine_set_epoch(struct vgpu_backend_session *s, uint32_t epoch);
/* A sticky error or a request that may still run on the GPU is not repaired
 * in process; the engine only remembers it, and this reports it so that the
 * worker asks to be replaced (VGPU_WREPLY_RESTART). */
bool vgpu_cuda_engine_poisoned(struct vgpu_backend *b);
/* How many GPUs the engine's runtime sees (the proxy places VMs on them). */
unsigned vgpu_cuda_engine_device_count(struct vgpu_backend *b);
/*
 * A driver operation that completes once queued (VGPU_WMSG_EXEC_ASYNC): run
 * with the launch parameters the proxy copied (params, len; NULL for other
 * operations), its failure kept for the queue's next sync or query
 * (cu_ops.h) instead of returned.
 */
void vgpu_cuda_engine_exec_async(struct vgpu_backend *b, struct vgpu_backend_session *s,
                                 uint32_t queue, const struct vgpu_sqe *sqe,
                                 const struct vgpu_shm_view *shm, const void *params,
                                 uint32_t len);

#endif /* VGPU_CUDA_ENGINE_H */
