/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The channel between the proxy (proxy.c, in the mediator) and a VM's worker
 * process (worker.c, which runs the engine, engine.h). The exported
 * vgpu_backend_cuda spawns and restarts the workers: after a sticky GPU
 * error (illegal address, launch failure, ...) a CUDA process cannot be
 * repaired, only terminated and relaunched.
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

#include <stdint.h>

#include "mediator/backend.h"
#include "vgpu/abi.h"

#define VGPU_WORKER_ARG     "--gpu-worker="
#define VGPU_WORKER_TEXT    192u

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
    uint64_t size;          /* INIT: spin cap (ns); OPEN: shm size; EXEC_ASYNC:
                             * payload bytes */
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
