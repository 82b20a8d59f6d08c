/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Test hooks of the CUDA backend, for tests/gpu only: they exercise paths a
 * well-formed request cannot reach (a GPU fault, a hung kernel, the contents
 * of a fresh device buffer). The mediator never calls them. Each runs like a
 * request of session s: same deadline, same poisoning.
 */
#ifndef VGPU_CUDA_TESTING_H
#define VGPU_CUDA_TESTING_H

#include <stdint.h>

#include "mediator/backend.h"

struct vgpu_cuda_test_stats {
    uint64_t session_mem;     /* device bytes charged to s */
    uint64_t backend_mem;     /* device bytes of all sessions */
    int      registered;      /* s's shared memory is cudaHostRegister'ed */
    int      cublas;          /* cuBLAS was loaded */
    unsigned sessions;
};

/* force_staging: later sessions skip cudaHostRegister and use the pinned
 * staging buffer. no_scrub: fresh device buffers are NOT zeroed (only to
 * show that the isolation test detects a leak). */
void vgpu_cuda_test_set_knobs(struct vgpu_backend *b, int force_staging, int no_scrub);

/* Unloads cuBLAS as if it had never been found (SGEMM with alpha != 0 then
 * completes with VGPU_S_NOT_SUPPORTED). -EBUSY once a session has created a
 * cuBLAS handle. */
int vgpu_cuda_test_drop_cublas(struct vgpu_backend *b);

/* Launches a kernel that stores to an unmapped address on s's stream:
 * expect VGPU_S_GPU_FAULT and the engine poisoned. */
int vgpu_cuda_test_fault(struct vgpu_backend *b, struct vgpu_backend_session *s);

/* Runs a kernel that spins for ms milliseconds: VGPU_S_TIMEOUT and one
 * the engine poisoned when ms exceeds the backend's request_timeout_ms. */
int vgpu_cuda_test_spin(struct vgpu_backend *b, struct vgpu_backend_session *s,
                        uint32_t ms);

/* Makes device buffer `slot` of s at least `bytes` long exactly as an
 * operation would (growing it if needed), then copies its first `bytes`
 * bytes to out without writing the buffer first. */
int vgpu_cuda_test_peek(struct vgpu_backend *b, struct vgpu_backend_session *s,
                        unsigned slot, uint64_t bytes, void *out);

/* s may be NULL. */
void vgpu_cuda_test_stats(struct vgpu_backend *b, struct vgpu_backend_session *s,
                          struct vgpu_cuda_test_stats *out);

#endif /* VGPU_CUDA_TESTING_H */
