/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Execution backends as a table of operations (cpu: mediator/backend_cpu.c,
 * cuda: mediator/cuda/). The mediator says loudly which one it uses.
 *
 * Threading: init/fini run on the main thread. session_open/session_close
 * and execute may run on any executor thread, but calls for one session are
 * serialised by the scheduler (a session has at most one request executing at
 * a time on a backend), so a backend needs no per-session locking.
 */
#ifndef VGPU_MEDIATOR_BACKEND_H
#define VGPU_MEDIATOR_BACKEND_H

#include <stdint.h>

#include "op.h"

struct vgpu_backend;          /* backend-private */
struct vgpu_backend_session;  /* backend-private, one per VM */

struct vgpu_backend_config {
    int      gpu_index;            /* CUDA device ordinal (the only one unless all_gpus) */
    uint32_t all_gpus;             /* 1: place VMs on every visible GPU */
    uint32_t pad;
    uint64_t gpu_unused;           /* bit N: place no VM on GPU N (config [gpu N] use = no) */
    uint64_t vm_mem_quota;         /* device bytes a VM may hold; 0 = no limit */
    uint32_t request_timeout_ms;   /* per-request limit; 0 = none */
};

/*
 * Or'ed into execute()'s queue for the first run of a wait (op->waits): the
 * backend may give up after a short wait with VGPU_S_BUSY, and the request
 * runs again without the flag on an executor that may block. A wait for
 * work that is nearly done so completes where it was taken (inline), with
 * no hand-over to another thread.
 */
#define VGPU_EXEC_TRY           (1u << 31)

struct vgpu_backend_ops {
    const char *name;              /* "cpu", "cuda" */
    uint32_t    kind;              /* VGPU_BACKEND_* */
    /* Returns 0 or -errno (-ENODEV: no usable device). Logs nothing itself;
     * *why gets a static or backend-owned human-readable reason on failure. */
    int  (*init)(const struct vgpu_backend_config *cfg, struct vgpu_backend **out,
                 const char **why);
    void (*fini)(struct vgpu_backend *b);                       /* accepts NULL */
    /* Called once per VM when its shared memory is mapped (cuda: places the
     * VM on a GPU and starts its worker, which registers the memory). gpu:
     * the device ordinal the VM is pinned to, or -1 (the backend places it;
     * backends with one device ignore it). 0 or -errno. */
    int  (*session_open)(struct vgpu_backend *b, uint32_t vm_id, int gpu,
                         const struct vgpu_shm_view *shm,
                         struct vgpu_backend_session **out);
    /* Frees everything the VM holds on the device. Accepts NULL. */
    void (*session_close)(struct vgpu_backend *b, struct vgpu_backend_session *s);
    /* Runs one validated request taken from the VM's queue pair `queue`
     * (each queue is its own GPU context for the VGPU_OP_CU_* operations).
     * Returns an enum vgpu_status. */
    int  (*execute)(struct vgpu_backend *b, struct vgpu_backend_session *s, uint32_t queue,
                    const struct vgpu_op *op, const struct vgpu_sqe *sqe,
                    const struct vgpu_shm_view *shm, uint64_t *result);
    /* Fills what GPU_INFO returns. */
    void (*gpu_info)(struct vgpu_backend *b, struct vgpu_gpu_info *out);
    /* Optional (may be NULL): the GPU (device ordinal) a VM was placed on. */
    int  (*session_gpu)(struct vgpu_backend *b, struct vgpu_backend_session *s);
    /* Optional (may be NULL): the pid of the process running the VM's GPU
     * work, 0 if none; a hint read without waiting for the VM's request. */
    int  (*session_pid)(struct vgpu_backend *b, struct vgpu_backend_session *s);
    /* Optional (may be NULL): one line of health for the status table. */
    void (*health)(struct vgpu_backend *b, char *buf, unsigned len);
    /* Opcodes (bit 1 << op) whose long requests the executor may run in
     * parts (op->parts) on this backend: where a part costs no more than its
     * share of the whole. */
    uint64_t split_ops;
    /* Executors that run requests as the scheduler orders them (0: all).
     * The others only run a request that has waited --max-wait-us: for a
     * device where two VMs' requests running at once would share it by its
     * own rules (a GPU time-slices contexts equally), not by the VMs'
     * weights, so concurrency is kept for bounding waits. */
    unsigned fair_executors;
};

extern const struct vgpu_backend_ops vgpu_backend_cpu;
/* Defined only when the mediator is built with CUDA (HAVE_CUDA). */
extern const struct vgpu_backend_ops vgpu_backend_cuda;

#endif /* VGPU_MEDIATOR_BACKEND_H */
