/* SPDX-License-Identifier: MIT */
/*
 * libcuda.so.1 for the guest: the CUDA driver API on the vgpu rings.
 *
 * Module map:
 *   init.c          cuInit, versions, device queries, error names/strings,
 *                   cuGetProcAddress (the table entry_points.c is generated,
 *                   with a tracing twin of each function: VGPU_CUDA_TRACE)
 *   export_tables.c cuGetExportTable: the private tables NVIDIA's runtime
 *                   needs, and the integrity check computed here (it cannot
 *                   be forwarded: its inputs are this process's)
 *   context.c       contexts: all contexts of a process are views of its one
 *                   queue, i.e. of one GPU context on the host
 *   memory.c        device memory, pinned host memory from the shared memory,
 *                   copies and memset
 *   module.c        modules, libraries, kernels, functions, globals
 *   exec.c          launches (thread-block clusters, cooperative), streams,
 *                   events, host functions, occupancy, function attributes
 *   tensor_map.c    tensor maps (TMA descriptors), encoded by the host
 *   remote.h        the host: vgpu_cu_* of libvgpu (remote_vgpu.c), or the
 *                   tests' in-process fake
 *
 * Locking: one mutex, cu_lock, guards every call into the remote (the
 * libvgpu handle is not thread-safe) and every table below. A host function
 * (cuLaunchHostFunc) runs without it. The per-thread context stack is
 * thread-local and needs no lock.
 */
#ifndef VGPU_CUDA_INTERNAL_H
#define VGPU_CUDA_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda.h>

#include "remote.h"

#define VGPU_CU_EXPORT __attribute__((visibility("default")))

/* The API level this library implements (what cuDriverGetVersion says). */
#define VGPU_CU_DRIVER_VERSION CUDA_VERSION

/* Generated (entry_points.c). */
struct cu_proc {
    const char *name;
    int         min_version;
    int         ptds;
    void       *fn;
    void       *traced;     /* fn, logging its failures (VGPU_CUDA_TRACE >= 2) */
};
extern const struct cu_proc cu_procs[];
extern const unsigned cu_procs_count;

struct cu_error_name {
    int         value;
    const char *name;
};
extern const struct cu_error_name cu_error_names[];
extern const unsigned cu_error_names_count;

/*
 * The VGPU_CUDA_TRACE level, read once: 0 (unset, empty or "0"), 1 (log
 * lookups and unknown export tables to stderr), 2 (also every call that does
 * not return CUDA_SUCCESS, through the tracing twins cuGetProcAddress then
 * hands out), 3 (every call). A value that is not a number means 1.
 */
int cu_trace(void);

/* One argument of a traced call: its bytes, printed raw (as hex). */
struct cu_trace_arg {
    const void *p;
    size_t      size;
};
#define CU_TRACE_ARG(x) { &(x), sizeof(x) }
/* Logs "libcuda(vgpu): NAME(ARG, ...) -> ERRNAME (CODE)". */
void cu_trace_call(const char *name, const struct cu_trace_arg *args, unsigned n, CUresult r);

/* Logs "libcuda(vgpu): NAME is not supported" once per name. */
CUresult vgpu_cu_unsupported(const char *name);
/* Logs "libcuda(vgpu): WHAT is ignored (a performance hint)" once per text. */
void cu_ignored_once(const char *what);

/* ---- objects ---- */
#define CU_MAGIC_CTX    0x56637478u
#define CU_MAGIC_STREAM 0x56737472u
#define CU_MAGIC_EVENT  0x56657674u
#define CU_MAGIC_MOD    0x566d6f64u
#define CU_MAGIC_FUNC   0x5666756eu
#define CU_MAGIC_LIB    0x566c6962u
#define CU_MAGIC_KERN   0x566b726eu

struct CUctx_st {
    uint32_t magic;
    int      primary;      /* the device's primary context */
    int      refs;         /* primary: retain count */
    unsigned flags;
    CUdevice dev;
};

struct CUstream_st {
    uint32_t magic;
    uint32_t handle;       /* the host's; 0 never (that is the NULL stream) */
    unsigned flags;
    int      priority;
    struct CUctx_st *ctx;
};

struct CUevent_st {
    uint32_t magic;
    uint32_t handle;
    unsigned flags;
};

struct CUfunc_st;
struct CUmod_st {
    uint32_t magic;
    uint32_t handle;
    struct CUfunc_st *funcs;  /* looked up so far, freed at unload */
};

struct CUfunc_st {
    uint32_t magic;
    uint32_t handle;
    struct CUmod_st *mod;
    struct CUfunc_st *next;
    char    *name;
    struct vgpu_cu_func_info info;
    struct vgpu_cu_param *params;  /* info.param_count entries */
};

struct CUkern_st {
    uint32_t magic;
    struct CUfunc_st *fn;
    struct CUkern_st *next;
};

struct CUlib_st {
    uint32_t magic;
    struct CUmod_st *mod;
    struct CUkern_st *kerns;
};

/* ---- process state ---- */
struct cu_state {
    int      inited;            /* cuInit ran (successfully or not) */
    CUresult init_result;
    int      device_count;      /* 0 or 1 */
    struct vgpu_cu_device_info dev;
    struct cu_remote remote;
    CUresult sticky;            /* a fault ended the GPU context: every call
                                 * says so until a reset */
    unsigned generation;        /* bumped at every host context reset */
    CUresult deferred;          /* an asynchronous error the host-function
                                 * thread's polling took; the next stream or
                                 * context synchronisation reports it */
    struct CUctx_st primary;
};

extern pthread_mutex_t cu_lock;
extern struct cu_state cu_g;

static inline struct vgpu_cu *cu_rm(void) { return cu_g.remote.cu; }

/* The result of a vgpu_cu_* call as a CUresult; records sticky errors. */
CUresult cu_result(int r);

/* Checks cuInit ran and the device works; the caller holds cu_lock. */
CUresult cu_ready(void);

/* Device attribute (cached at cuInit), 0 if unknown. */
int cu_attr(CUdevice_attribute a);

/* context.c */
struct CUctx_st *cu_current_ctx(void);
void cu_ctx_reset_all(void);   /* after a context reset: forget objects */

/* memory.c: where a host pointer lies. Pinned memory is inside the shared
 * memory: *off is its BAR2 offset. */
int cu_host_pinned(const void *p, size_t len, uint64_t *off);
/* 1 if [p, p+len) is inside a device allocation of ours. */
int cu_is_device_ptr(CUdeviceptr p);

/* exec.c: the host handle of a stream argument (NULL, legacy, per-thread
 * and ours), or CUDA_ERROR_INVALID_HANDLE. */
CUresult cu_stream_resolve(CUstream s, uint32_t *h);
/* The same, for work about to be submitted on the stream: first waits
 * (cu_lock held, released while waiting) until the host functions that
 * stream order puts before that work have run. */
CUresult cu_stream_handle(CUstream s, uint32_t *h);
/* Around a _ptds/_ptsz entry point: the NULL stream is the thread's own. */
void cu_ptds_enter(void);
void cu_ptds_leave(void);

/* The deferred asynchronous error, if any, in place of rv == success. */
CUresult cu_take_deferred(CUresult rv);
/* Waits until every host function launched so far has run (cu_lock held). */
void cu_hostfn_wait_all(void);

#define CU_ENTER(rv) \
    do { pthread_mutex_lock(&cu_lock); (rv) = cu_ready(); } while (0)
#define CU_LEAVE() pthread_mutex_unlock(&cu_lock)

#endif /* VGPU_CUDA_INTERNAL_H */
