/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA engine's insides, shared by engine.c (sessions, device buffers,
 * the deadline, dispatch) and the Phase 1 operations on the GPU, one file
 * each in mediator/cuda/ops/. Only the worker process runs any of it.
 *
 * Convention: everything here that runs part of a request returns the
 * request's status (enum vgpu_status); the engine's table entries that are
 * no request (init, session_open) return 0 or -errno.
 */
#ifndef VGPU_CUDA_ENGINE_PRIV_H
#define VGPU_CUDA_ENGINE_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "mediator/backend.h"
#include "vgpu/abi.h"

#include "cublas_loader.h"
#include "kernels.h"

#define CUDA_SLOTS          3u              /* device operands of one request, at most */
#define CUDA_PARTIALS_BYTES ((VGPU_K_REDUCE_MAX_PARTIALS + 1) * sizeof(double))

struct cuda_buf {
    void    *ptr;
    uint64_t cap;
};

struct vgpu_backend_session {
    struct vgpu_backend *b;
    struct vgpu_backend_session *next;  /* b->sessions, under b->lock */
    uint32_t vm_id;
    struct vgpu_shm_view shm;

    /* Context handles, valid while ready. */
    bool          ready;
    bool          registered;           /* shm is cudaHostRegister'ed */
    cudaStream_t  stream;
    uint8_t      *staging;              /* pinned; only when !registered */
    uint64_t      staging_size;
    double       *host_result;          /* pinned, one double */
    double       *dev_partials;         /* REDUCE_SUM partials + result */
    struct cuda_buf buf[CUDA_SLOTS];
    uint64_t      mem_used;             /* device bytes charged to the quota */
    cublasHandle_t blas;                /* created on the first SGEMM */
    struct vgpu_cu_vm *cu;              /* driver operations' objects */
    uint32_t      epoch;                /* generation (bits 0-3) and earlier generations
                                         * (bits 4-7) of the VM's context, for handles */

    /* The request being executed. */
    uint64_t deadline_ns;               /* CLOCK_MONOTONIC; 0: none */
    bool     lost;                      /* a sticky error or a missed deadline */
};

struct vgpu_backend {
    struct vgpu_backend_config cfg;
    int      device;
    unsigned device_count;      /* GPUs visible to this process */
    char     name[64];
    int      sms, cc_major, cc_minor, clock_khz;
    int      driver_version, runtime_version;
    uint64_t total_mem;
    struct vgpu_cublas cublas;
#ifdef VGPU_CUDA_TESTING
    bool     force_staging, no_scrub;   /* cuda_testing.h */
#endif
    bool     poisoned;                  /* CUDA state lost: replace the worker (atomic) */
    const char *cu_why;                 /* why the driver operations are off; NULL: on */

    pthread_mutex_t lock;               /* everything below */
    struct vgpu_backend_session *sessions;
    unsigned nsessions;
    unsigned nstaged;
    uint64_t mem_in_use;
    char     last_error[112];
};

/* A Phase 1 operation on the GPU (ops/<op>.c, listed in ops/registry.c). */
struct vgpu_cuda_op {
    uint16_t opcode;
    /* Runs the validated sqe as one request of s (engine.c's run_request:
     * deadline, poisoning, the stream drained after a failure). */
    int (*run)(struct vgpu_backend_session *s, const struct vgpu_sqe *sqe, uint64_t *result);
};

extern const struct vgpu_cuda_op vgpu_cuda_op_gpu_info;
extern const struct vgpu_cuda_op vgpu_cuda_op_vector_add;
extern const struct vgpu_cuda_op vgpu_cuda_op_saxpy;
extern const struct vgpu_cuda_op vgpu_cuda_op_reduce_sum;
extern const struct vgpu_cuda_op vgpu_cuda_op_sgemm;
extern const struct vgpu_cuda_op vgpu_cuda_op_memcpy;

/* NULL: not a Phase 1 operation the GPU runs (NOP, CU_*, unknown). */
const struct vgpu_cuda_op *vgpu_cuda_op_lookup(uint32_t opcode);

/* ---- engine.c: what an operation uses -------------------------------- */

/* The last error of the engine, for health(). */
void cuda_note_error(struct vgpu_backend *b, uint32_t vm_id, const char *what,
                     const char *detail);
/* A failed CUDA call of the current request -> its status; a sticky error
 * marks the engine poisoned (the worker is replaced). */
int cuda_fail(struct vgpu_backend_session *s, cudaError_t err, const char *what);

static inline int cuda_launch_status(struct vgpu_backend_session *s, cudaError_t err,
                                     const char *what)
{
    return err == cudaSuccess ? VGPU_S_OK : cuda_fail(s, err, what);
}

/* Waits for everything queued on s's stream, within the request deadline. */
int cuda_stream_wait(struct vgpu_backend_session *s);

/* Defence in depth: validators already checked the range against the size. */
static inline bool cuda_shm_range_ok(const struct vgpu_backend_session *s, uint64_t off,
                                     uint64_t len)
{
    return len <= s->shm.size && off <= s->shm.size - len;
}

/* Shared memory [off, off+len) -> device dst, and device src -> shared
 * memory, on s's stream (staged in chunks when s is not registered). */
int cuda_h2d(struct vgpu_backend_session *s, void *dst, uint64_t off, uint64_t len);
int cuda_d2h(struct vgpu_backend_session *s, uint64_t off, const void *src, uint64_t len);

/* Makes device buffer i of s at least need[i] bytes (0: unused), within the
 * VM's quota: VGPU_S_QUOTA when the request alone exceeds it. */
int cuda_bufs_reserve(struct vgpu_backend_session *s, const uint64_t need[CUDA_SLOTS]);

/* ops/gpu_info.c: the device's properties (also the engine's gpu_info). */
void cuda_fill_gpu_info(struct vgpu_backend *b, struct vgpu_gpu_info *out);

/* Returns from the calling function when expr is not VGPU_S_OK. */
#define TRY(expr)                   \
    do {                            \
        int st_ = (expr);           \
        if (st_ != VGPU_S_OK) {     \
            return st_;             \
        }                           \
    } while (0)

#endif /* VGPU_CUDA_ENGINE_PRIV_H */
