/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA backend runs in a worker process (mediator/cuda/worker.c) that the
 * exported vgpu_backend_cuda (mediator/cuda/proxy.c) spawns and restarts:
 * after a sticky GPU error (illegal address, launch failure, ...) a CUDA
 * process cannot be repaired, only terminated and relaunched.
 *
 * The worker is the mediator's own binary, exec'ed with a hidden first
 * argument VGPU_WORKER_ARG<fd>; main() hands such an invocation to
 * vgpu_cuda_worker_main() before any other parsing. Channel: one
 * SOCK_SEQPACKET socket, one message per request and per reply, the
 * sessions' memfds passed with SCM_RIGHTS. The wire structs below are
 * private to the two ends (same binary), so they need no versioning.
 */
#ifndef VGPU_CUDA_WORKER_H
#define VGPU_CUDA_WORKER_H

#include <stdbool.h>
#include <stdint.h>

#include "mediator/backend.h"
#include "vgpu/abi.h"

#define VGPU_WORKER_ARG     "--gpu-worker="
#define VGPU_WORKER_TEXT    192u

/* The engine: what the worker runs. */
extern const struct vgpu_backend_ops vgpu_backend_cuda_engine;

/*
 * Engine hooks for the worker, defined next to the engine (backend_cuda.c;
 * a test defines its own engine). A sticky error or a request that may still
 * run on the GPU is not repaired in process; the engine only remembers it,
 * and poisoned() reports it so the worker can ask to be replaced.
 */
/* The generation of s's GPU context: bits 0-3 the proxy's count of its
 * worker's restarts from a random start, bits 4-7 how many generations the
 * VM had before (at most 15). Handles of the driver operations carry the
 * generation, so one from before a restart is context-lost, not another
 * object. */
void vgpu_cuda_engine_set_epoch(struct vgpu_backend_session *s, uint32_t epoch);
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

enum vgpu_worker_msg_type {
    VGPU_WMSG_INIT = 1,     /* cfg, size = spin cap in ns -> READY (status 0, info,
                             * text = health) or error text */
    VGPU_WMSG_OPEN,         /* key, vm_id, size + fd -> status (-errno) */
    VGPU_WMSG_CLOSE,        /* key -> status */
    VGPU_WMSG_EXEC,         /* key, sqe -> status, result */
    VGPU_WMSG_HEALTH,       /* -> info, text */
    VGPU_WMSG_BYE,          /* no reply; the worker exits */
    VGPU_WMSG_EXEC_ASYNC,   /* key, arg = queue, sqe, size = payload bytes, then the
                             * payload (a launch's parameters) -> no reply: an
                             * error is kept for the queue's next sync or query */
};

/* Largest payload after a struct vgpu_worker_req. */
#define VGPU_WORKER_PAYLOAD_MAX VGPU_CU_MAX_PARAM_BYTES

/* Reply flags. */
#define VGPU_WREPLY_RESTART  0x1u   /* the worker's CUDA state is lost: replace it */

struct vgpu_worker_req {
    uint32_t type;
    uint32_t key;           /* the proxy's session key */
    uint32_t vm_id;
    uint32_t arg;           /* EXEC: the VM's queue; OPEN: the epoch */
    uint64_t size;          /* OPEN: shm size; EXEC_ASYNC: payload bytes */
    union {
        struct vgpu_backend_config cfg;     /* INIT */
        struct vgpu_sqe sqe;                /* EXEC */
    } u;
};

struct vgpu_worker_reply {
    int32_t  status;        /* enum vgpu_status (EXEC) or 0/-errno */
    uint32_t flags;         /* VGPU_WREPLY_* */
    uint64_t result;
};

/* READY / HEALTH reply: the header above, then these. */
struct vgpu_worker_info_reply {
    struct vgpu_worker_reply r;
    struct vgpu_gpu_info info;
    uint32_t device_count;  /* GPUs the worker's runtime sees */
    uint32_t pad;
    char text[VGPU_WORKER_TEXT];
};

/* The worker's main loop; returns the process exit status. */
int vgpu_cuda_worker_main(const char *arg);

/* Cap of the adaptive spins of the proxy (waiting for a reply) and of the
 * worker (waiting for the next request); 0 (default): never spin. Takes
 * effect for backends initialised (workers started) afterwards. */
void vgpu_cuda_proxy_set_spin_ns(uint64_t ns);

#endif /* VGPU_CUDA_WORKER_H */
