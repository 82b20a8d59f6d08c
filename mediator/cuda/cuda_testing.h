/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Test hooks of the CUDA backend, for tests/gpu only. They exist only in the
 * test executables' own build of the proxy and the engine (compiled with
 * -DVGPU_CUDA_TESTING by tests/gpu/meson.build), never in vgpu-mediator,
 * whose binary a unit test checks for them (tests/unit/test-no-test-hooks.sh).
 *
 * Faults, runaway kernels and dying workers need no hook: a test launches a
 * kernel of its own that faults or spins (tests/gpu/cuops_kernels.cu, or
 * the mock driver's "fault" and "spin"), and signals the worker process,
 * whose pid vgpu_cuda_proxy_stats() gives.
 */
#ifndef VGPU_CUDA_TESTING_H
#define VGPU_CUDA_TESTING_H

#ifndef VGPU_CUDA_TESTING
#error "cuda_testing.h is for the test build of the CUDA backend (-DVGPU_CUDA_TESTING)"
#endif

#include <stdint.h>

#include "mediator/backend.h"

/* ---- the engine (engine.c), run in process by test_cuda ---------------- */

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

/* Makes device buffer `slot` of s at least `bytes` long exactly as an
 * operation would (growing it if needed), then copies its first `bytes`
 * bytes to out without writing the buffer first. A request's status. */
int vgpu_cuda_test_peek(struct vgpu_backend *b, struct vgpu_backend_session *s,
                        unsigned slot, uint64_t bytes, void *out);

/* s may be NULL. */
void vgpu_cuda_test_stats(struct vgpu_backend *b, struct vgpu_backend_session *s,
                          struct vgpu_cuda_test_stats *out);

/* ---- the proxy (proxy.c) ------------------------------------------------ */

struct vgpu_cuda_proxy_stats {
    int      pid;           /* s's worker, 0 if none (or s NULL) */
    int      gpu;           /* the GPU s was placed on (-1: s NULL) */
    uint64_t restarts;      /* of s's worker */
    uint64_t restarts_all;  /* of every VM's worker */
    unsigned sessions;
};
/* s may be NULL. */
void vgpu_cuda_proxy_stats(struct vgpu_backend *b, struct vgpu_backend_session *s,
                           struct vgpu_cuda_proxy_stats *out);
/* The binary the proxy exec's as the worker (default /proc/self/exe). */
void vgpu_cuda_proxy_set_exe(const char *path);

#endif /* VGPU_CUDA_TESTING_H */
