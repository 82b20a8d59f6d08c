/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * libvgpu: the client side of the vgpu rings. The same ring code runs over
 * three transports:
 *   "dev" - inside a guest with the driver vgpu.ko: one queue pair and data
 *           window of /dev/vgpuN per handle (include/vgpu/driver.h), for any
 *           member of the node's group, several processes at once; the
 *           default when a /dev/vgpuN exists. opts.pci_addr picks the device;
 *           opts.queue is ignored (the driver assigns the queue).
 *   "pci" - inside a guest: the vgpu-stub device's BAR0 (registers) and BAR2
 *           (shared memory) mapped from sysfs; waits by polling or through
 *           uio_pci_generic interrupts.
 *   "sim" - on the host: creates a memfd, connects to vgpu-mediator exactly as
 *           the QEMU device does (HELLO + fd, KICK, NOTIFY). Every test and
 *           benchmark of the mediator runs over it without QEMU.
 *
 * All functions return 0 (or a count) on success and -errno on failure; the
 * library never prints. vgpu_strerror() gives text for the library's own
 * errors where errno's text would mislead.
 */
#ifndef VGPU_LIBVGPU_H
#define VGPU_LIBVGPU_H

#include <stddef.h>
#include <stdint.h>

#include "abi.h"

#ifdef __cplusplus
extern "C" {
#endif

struct vgpu_dev;

struct vgpu_open_opts {
    const char *transport;    /* "dev", "pci", "sim", or NULL: dev if a /dev/vgpuN
                               * exists, else pci if a device exists, else sim */
    /* sim */
    const char *socket_path;  /* mediator socket; NULL: VGPU_SOCKET env or default */
    uint64_t    shm_size;     /* 0: 64 MiB */
    uint32_t    vm_id;        /* 0: $VGPU_VM_ID, else 0 (a mediator takes one
                               * session per vm id at a time) */
    uint32_t    priority;     /* 0 = highest class */
    uint32_t    weight;       /* 0: 1 */
    const char *vm_name;
    /* pci */
    const char *pci_addr;     /* "0000:00:04.0"; NULL: the first vgpu device */
    int         use_irq;      /* 1: wait via /dev/uioN when bound; 0: poll */
    /* both */
    int         link_timeout_ms; /* wait this long for the link; 0: 5000 */
    /* Addition: ceiling in us of the adaptive spin of vgpu_wait() before it
     * sleeps. 0: $VGPU_SPIN_US, else 1000 on >= 8 online CPUs, 20 below;
     * < 0: never spin. At most 100000. */
    int         spin_us;
    /* Addition (protocol 1.1), sim: how the doorbell reaches the mediator:
     * "eventfd" (an eventfd handed over with HELLO, as QEMU's ioeventfd) or
     * "socket" (a KICK message per doorbell). NULL: $VGPU_DOORBELL, else
     * eventfd; a mediator that does not take the eventfd up gets KICKs. */
    const char *doorbell;
    /* Addition (ABI 1.1 library), sim: after the mediator closes the link
     * (a restart; not an ERROR), connect again with the same memory every
     * reconnect_ms, as QEMU's chardev does with reconnect=N: requests left in
     * the ring complete after the new mediator resumes them. 0:
     * $VGPU_RECONNECT_MS, else never (the link stays down, waits give
     * -ENOLINK after link_timeout_ms). At most 60000. */
    int         reconnect_ms;
    /* Addition (ABI 1.2 library): the queue pair this handle uses, 0 ..
     * queues - 1 (VGPU_REG_QUEUES; docs/register-map.md). pci: queue > 0
     * locks only that queue (another process may hold queue 0 or another
     * queue), needs a device with more than queue queues, and always polls
     * (the interrupt is the device's, shared by every queue). Queue 0 behaves
     * exactly as before. The data area the handle allocates from is the
     * queue's window in the queue table when one is set, else the whole
     * data area (vgpu_get_info() tells which). */
    uint32_t    queue;
    /* Addition (ABI 1.2 library), sim: queue pairs the simulated device
     * announces to the mediator, 1 .. VGPU_MAX_QUEUES; the others are
     * reached with vgpu_queue_open(). 0: $VGPU_QUEUES, else 1. */
    uint32_t    queues;
};

#define VGPU_DEFAULT_SOCKET   "/run/vgpu/mediator.sock"
#define VGPU_DEFAULT_SHM_SIZE (64ull << 20)

/* Errors beyond errno's own meaning. */
#define VGPU_ENODEV_TEXT  "no vgpu device found"
/*
 * Opens the device. Returns 0 or -errno:
 *   -ENODEV           no vgpu device (pci), or no transport/socket to use
 *   -ENOLINK          pci: the mediator did not connect within link_timeout_ms
 *   -EPROTONOSUPPORT  ABI (pci) or protocol (sim) major version mismatch
 *   -ENXIO            pci: device found but its registers or BARs are unusable
 *   -EBUSY            pci: another handle (process) has the device open
 *   -ENOENT, -ECONNREFUSED  sim: no mediator listening within link_timeout_ms
 *   -ETIMEDOUT        sim: no WELCOME within link_timeout_ms
 *   -EPROTO, -EBADFD, -EMEDIUMTYPE, -EUSERS, -EADDRINUSE
 *                     sim: the mediator answered ERROR (see vgpu_strerror)
 *   -EIO              pci: the ring indexes left in shared memory are corrupt
 *   -EINVAL           bad options (shm_size, priority >= VGPU_PRIO_CLASSES, ...)
 */
int vgpu_open(const struct vgpu_open_opts *opts, struct vgpu_dev **out);
void vgpu_close(struct vgpu_dev *dev); /* accepts NULL */
/*
 * Addition (ABI 1.0 library): after a failed vgpu_open() in this thread, a
 * human-readable detail ("ABI version 2.0, library speaks 1.0", the
 * mediator's ERROR text, ...), or "" when there is none.
 */
const char *vgpu_open_detail(void);

struct vgpu_dev_info {
    char     transport[8];
    uint32_t abi_version;
    uint32_t link_status;     /* VGPU_LINK_* */
    uint32_t vm_id;
    uint32_t priority;
    uint32_t weight;
    uint32_t session_id;
    uint32_t backend;         /* VGPU_BACKEND_* */
    uint32_t max_inflight;
    uint64_t shm_size;
    uint64_t data_offset;
    uint64_t data_size;
    char     vm_name[64];
    char     gpu_name[64];
    char     location[64];    /* pci address, or socket path */
    /* Addition (ABI 1.2 library). data_offset/data_size above are the
     * range vgpu_alloc() hands out: the queue's window, or the data area. */
    uint32_t queue;           /* the queue pair of this handle */
    uint32_t queues;          /* queue pairs of the device (1 on a 1.0/1.1 device) */
    uint64_t data_end;        /* end of the device's data area (BAR2 offset) */
};
int vgpu_get_info(struct vgpu_dev *dev, struct vgpu_dev_info *out);

/*
 * Data area. Offsets are BAR2 offsets, as operations take them. The library
 * keeps a bump allocator over the data area: vgpu_alloc() hands out aligned
 * ranges, vgpu_free_all() starts over (ABI 1.2: within the handle's queue
 * window as the queue table has it then, else the whole data area).
 */
int   vgpu_alloc(struct vgpu_dev *dev, uint64_t size, uint64_t align, uint64_t *off);
void  vgpu_free_all(struct vgpu_dev *dev);
void *vgpu_ptr(struct vgpu_dev *dev, uint64_t off); /* NULL if out of range */

/*
 * Submission. vgpu_submit() queues one request (-EAGAIN: ring full) without
 * ringing the doorbell; vgpu_kick() rings it once for everything queued.
 * vgpu_wait() returns the next completion (-ETIMEDOUT after timeout_ms;
 * -ENOLINK if the link is down for longer than the timeout). timeout_ms < 0
 * waits forever.
 */
/*
 * vgpu_submit: -EAGAIN when the SQ is full or as many requests are
 * outstanding as the CQ holds; -EIO when the host's sq_head is corrupt.
 * vgpu_wait: -ENOENT when nothing is outstanding; -EIO when the host's
 * cq_tail is corrupt; sim: once the mediator has closed the link, -ENOLINK
 * (or, if it closed it with an ERROR, that error's errno, e.g. -EPROTO).
 * A handle is not thread-safe.
 */
int vgpu_submit(struct vgpu_dev *dev, const struct vgpu_sqe *sqe);
int vgpu_kick(struct vgpu_dev *dev);
int vgpu_wait(struct vgpu_dev *dev, struct vgpu_cqe *out, int timeout_ms);
/* submit + kick + wait for that request's completion. -EBUSY when other
 * requests are outstanding (their completions would come first); -EPROTO
 * when the completion does not echo the request's user_data and tag. */
int vgpu_call(struct vgpu_dev *dev, const struct vgpu_sqe *sqe, struct vgpu_cqe *out,
              int timeout_ms);

/*
 * Addition (ABI 1.2 library): a second handle on queue pair `queue` of the
 * device dev was opened on (any handle of it), sharing its mapping and its
 * link to the mediator: how one process drives several queues of ONE device,
 * e.g. one thread per queue (the sim transport creates its memory itself,
 * so two vgpu_open() calls never share a device). The handle allocates from
 * the queue's window in the queue table (VGPU_SHM_QTABLE_OFFSET) as it is
 * when this is called, else from the whole data area: whoever hands out
 * queues sets the windows first, or the handles' allocations overlap.
 * Threads: each handle is used by one thread at a time; different handles
 * of one device may be used concurrently, but call vgpu_queue_open() while
 * no other handle of the device is in use. While a device has more than one
 * handle open, its handles sleep in vgpu_wait() by polling the CQ (at least
 * every 100 us) instead of on the link. vgpu_close() of any handle is fine
 * at any time; the link closes with the last handle.
 * Returns 0 or -errno: -EINVAL (queue >= the device's queues), -EBUSY (a
 * handle on that queue is open), -ENOMEM, -EIO (the queue's ring indexes
 * are corrupt).
 */
int vgpu_queue_open(struct vgpu_dev *dev, uint32_t queue, struct vgpu_dev **out);

/* The raw shared memory, for tests that play a hostile guest. */
void *vgpu_shm_base(struct vgpu_dev *dev, uint64_t *size);

const char *vgpu_strerror(int err); /* err is -errno */

/* ------------------------------------------------------------------------
 * Addition (ABI 1.2 library): the CUDA driver operations (VGPU_OP_CU_*),
 * the host-side client API a guest libcuda.so.1 is written on.
 *
 * A struct vgpu_cu sits on one open handle (one queue: one GPU context on
 * the host) and from then on owns its rings: do not call vgpu_submit(),
 * vgpu_wait() or vgpu_call() on that handle until vgpu_cu_close(). It takes
 * two parts of the data area with vgpu_alloc(): a scratch area for the
 * outputs and names of synchronous calls, and a staging ring for data the
 * library copies in from ordinary pointers (launch parameters, module
 * images, pageable copies). Take what else you need with vgpu_alloc()
 * before or after; never call vgpu_free_all() while a vgpu_cu is open.
 *
 * Synchronous calls submit their request, ring the doorbell and wait for
 * its completion. Asynchronous calls (memset, the memcpy_*_async kinds,
 * launches, event record, stream wait event) submit and ring the doorbell
 * without waiting: their completions are reaped later (by any later call,
 * or when the ring is full) and the FIRST error among them is kept. The
 * "synchronising" calls - vgpu_cu_ctx_sync, vgpu_cu_ctx_reset,
 * vgpu_cu_stream_sync, vgpu_cu_stream_query, vgpu_cu_event_sync,
 * vgpu_cu_event_query, vgpu_cu_memcpy_htod, vgpu_cu_memcpy_dtoh and
 * vgpu_cu_drain - return that kept error (and clear it) in place of their
 * own status, as the CUDA driver reports errors of asynchronous work at the
 * next synchronising call. The other synchronous calls (allocations, module
 * loads, creates, ...) return their own status and leave the kept error in
 * place, so that no resource they created is lost to an older error.
 *
 * Return values of every vgpu_cu_* call that returns int, unless said:
 *   0      success
 *   > 0    the request completed with this enum vgpu_status (for
 *          VGPU_S_CUDA_ERROR the host driver's CUresult is then
 *          vgpu_cu_last_result()); out parameters are left unspecified
 *   < 0    -errno from the library or transport: -EINVAL (NULL or
 *          malformed argument, found before anything was submitted),
 *          -EMSGSIZE (data larger than the staging ring), -ENOMEM (the data
 *          area has no room for the scratch area and staging ring),
 *          -ETIMEDOUT, -ENOLINK, -EIO, -EPROTO as from vgpu_wait()
 *
 * Handles (modules, functions, streams, events) are the nonzero uint32
 * values the host returns; stream 0 is the queue's default stream.
 * Device addresses ("dptr") are those vgpu_cu_mem_alloc() returned; host
 * sides of the *_async copies are BAR2 offsets in the data area, which the
 * caller must leave untouched until the copy is known done (a later
 * synchronising call on that stream). A struct vgpu_cu is not thread-safe:
 * callers that share one lock around every call (the handle under it as
 * well).
 * ------------------------------------------------------------------------ */
struct vgpu_cu;

struct vgpu_cu_opts {
    /* Bytes of the data area for the staging ring. 0: 4 MiB, or an eighth
     * of the data area when that is smaller (at least 64 KiB). */
    uint64_t staging_size;
    /* Longest wait for one completion, ms. 0: no limit (a dead link still
     * ends the wait with -ENOLINK after the handle's link timeout). */
    int      timeout_ms;
};

/* The first error of asynchronous requests, kept until reported. */
struct vgpu_cu_error {
    int32_t  status;          /* enum vgpu_status; VGPU_S_OK: none */
    uint16_t opcode;          /* the request that failed */
    uint16_t pad;
    uint64_t result;          /* its cqe.result: the CUresult for VGPU_S_CUDA_ERROR */
};

/* 0 or -EINVAL, -ENOMEM (no room in the data area), -EBUSY (requests of the
 * handle's own are in flight: their completions would not be ours). opts may
 * be NULL. */
int vgpu_cu_open(struct vgpu_dev *dev, const struct vgpu_cu_opts *opts,
                 struct vgpu_cu **out);
/* Waits for everything outstanding (errors dropped), then frees. The data
 * area it took stays taken until vgpu_free_all(). Accepts NULL. */
void vgpu_cu_close(struct vgpu_cu *cu);
struct vgpu_dev *vgpu_cu_dev(struct vgpu_cu *cu);

/*
 * The cqe.result that came with the last positive status a call of this
 * struct returned (the kept asynchronous error's, when that was returned):
 * the CUresult after VGPU_S_CUDA_ERROR.
 */
uint64_t vgpu_cu_last_result(const struct vgpu_cu *cu);

/*
 * Generic calls, for operations without a wrapper below. The library sets
 * sqe->user_data and sqe->tag itself (others' values are ignored); the rest
 * is sent as given. vgpu_cu_call() is synchronous (synchronising if the
 * opcode is one of the synchronising operations above); *result (may be
 * NULL) gets cqe.result. vgpu_cu_submit_async() is asynchronous.
 */
int vgpu_cu_call(struct vgpu_cu *cu, const struct vgpu_sqe *sqe, uint64_t *result);
int vgpu_cu_submit_async(struct vgpu_cu *cu, const struct vgpu_sqe *sqe);
/* Waits for the completions of every request submitted so far (not for the
 * GPU work: that is vgpu_cu_ctx_sync()); returns the kept error, cleared. */
int vgpu_cu_drain(struct vgpu_cu *cu);
/*
 * Reaps the completions already posted, without waiting, and returns the
 * kept error's status (0: none; or -errno), its details in *out (may be
 * NULL). clear != 0 clears it, as cuCtxGetLastError-style readers want.
 */
int vgpu_cu_async_error(struct vgpu_cu *cu, struct vgpu_cu_error *out, int clear);
/* Requests submitted and not yet completed. */
uint32_t vgpu_cu_outstanding(const struct vgpu_cu *cu);

/* Device and memory. */
int vgpu_cu_device_info(struct vgpu_cu *cu, struct vgpu_cu_device_info *out);
int vgpu_cu_mem_get_info(struct vgpu_cu *cu, uint64_t *free_bytes);
int vgpu_cu_mem_alloc(struct vgpu_cu *cu, uint64_t bytes, uint64_t *dptr);
int vgpu_cu_mem_free(struct vgpu_cu *cu, uint64_t dptr);

/* Asynchronous on stream. elem_size 1, 2 or 4; count elements. */
int vgpu_cu_memset_async(struct vgpu_cu *cu, uint64_t dptr, uint32_t value,
                         uint32_t elem_size, uint64_t count, uint32_t stream);
/* Asynchronous; the host side is a BAR2 offset (src_off / dst_off). */
int vgpu_cu_memcpy_htod_async(struct vgpu_cu *cu, uint64_t dst, uint64_t src_off,
                              uint64_t len, uint32_t stream);
int vgpu_cu_memcpy_dtoh_async(struct vgpu_cu *cu, uint64_t dst_off, uint64_t src,
                              uint64_t len, uint32_t stream);
int vgpu_cu_memcpy_dtod_async(struct vgpu_cu *cu, uint64_t dst, uint64_t src,
                              uint64_t len, uint32_t stream);
/* Asynchronous; *args as the ABI defines it (VGPU_CU_MEM_* kinds, SHM sides
 * are BAR2 offsets). */
int vgpu_cu_memcpy_2d_async(struct vgpu_cu *cu, const struct vgpu_args_cu_memcpy2d *args);
/*
 * Synchronising copies from / to ordinary memory, staged through the
 * staging ring in chunks; they return once the data is on the device
 * (htod) or in *dst (dtoh), having synchronised stream. len 0 does nothing.
 */
int vgpu_cu_memcpy_htod(struct vgpu_cu *cu, uint64_t dst, const void *src, uint64_t len,
                        uint32_t stream);
int vgpu_cu_memcpy_dtoh(struct vgpu_cu *cu, void *dst, uint64_t src, uint64_t len,
                        uint32_t stream);

/* Modules. _load takes an image already in the data area; _load_data
 * stages one from memory (-EMSGSIZE when it is larger than the staging
 * ring: place it with vgpu_alloc() and use _load). */
int vgpu_cu_module_load(struct vgpu_cu *cu, uint64_t image_off, uint64_t image_len,
                        uint32_t *module);
int vgpu_cu_module_load_data(struct vgpu_cu *cu, const void *image, uint64_t len,
                             uint32_t *module);
int vgpu_cu_module_unload(struct vgpu_cu *cu, uint32_t module);
/*
 * The function's handle, its struct vgpu_cu_func_info (info may be NULL)
 * and the first max_params entries of its parameter layout (params may be
 * NULL; info->param_count says how many there are, up to
 * VGPU_CU_MAX_PARAMS). name: NUL-terminated, 1 .. VGPU_CU_MAX_NAME - 1
 * bytes (-EINVAL otherwise).
 */
int vgpu_cu_module_get_function(struct vgpu_cu *cu, uint32_t module, const char *name,
                                uint32_t *func, struct vgpu_cu_func_info *info,
                                struct vgpu_cu_param *params, uint32_t max_params);
int vgpu_cu_module_get_global(struct vgpu_cu *cu, uint32_t module, const char *name,
                              uint64_t *dptr, uint64_t *bytes);

/*
 * Launches, asynchronous. vgpu_cu_launch() sends *args as they are (the
 * packed parameters already at args->params_off). vgpu_cu_launch_params()
 * copies args->params_len bytes from params into the staging ring and sets
 * params_off itself (params may be NULL when params_len is 0); the space
 * is reused only after that launch's completion, and the call waits only
 * when the staging ring is full of launches still not completed.
 */
int vgpu_cu_launch(struct vgpu_cu *cu, const struct vgpu_args_cu_launch *args);
int vgpu_cu_launch_params(struct vgpu_cu *cu, const struct vgpu_args_cu_launch *args,
                          const void *params);

/* Streams. flags: CU_STREAM_* (0 default, 1 non-blocking). *done: 1 when
 * all the stream's work is finished, 0 when some still runs. */
int vgpu_cu_stream_create(struct vgpu_cu *cu, uint32_t flags, int32_t priority,
                          uint32_t *stream);
int vgpu_cu_stream_destroy(struct vgpu_cu *cu, uint32_t stream);
int vgpu_cu_stream_sync(struct vgpu_cu *cu, uint32_t stream);
int vgpu_cu_stream_query(struct vgpu_cu *cu, uint32_t stream, int *done);
int vgpu_cu_stream_wait_event(struct vgpu_cu *cu, uint32_t stream, uint32_t event); /* async */

/* Events. flags: CU_EVENT_* (1 blocking sync, 2 disable timing). */
int vgpu_cu_event_create(struct vgpu_cu *cu, uint32_t flags, uint32_t *event);
int vgpu_cu_event_destroy(struct vgpu_cu *cu, uint32_t event);
int vgpu_cu_event_record(struct vgpu_cu *cu, uint32_t event, uint32_t stream); /* async */
int vgpu_cu_event_sync(struct vgpu_cu *cu, uint32_t event);
int vgpu_cu_event_query(struct vgpu_cu *cu, uint32_t event, int *done);
int vgpu_cu_event_elapsed(struct vgpu_cu *cu, uint32_t start, uint32_t end, float *ms);

/* The context (the queue's). reset frees every object of the context. */
int vgpu_cu_ctx_sync(struct vgpu_cu *cu);
int vgpu_cu_ctx_reset(struct vgpu_cu *cu);

/* Functions. attr: CUfunction_attribute. Occupancy: active blocks per SM
 * for block_size threads and dyn_shared bytes of dynamic shared memory. */
int vgpu_cu_func_get_attr(struct vgpu_cu *cu, uint32_t func, int32_t attr, int32_t *value);
int vgpu_cu_func_set_attr(struct vgpu_cu *cu, uint32_t func, int32_t attr, int32_t value);
int vgpu_cu_occupancy(struct vgpu_cu *cu, uint32_t func, int32_t block_size,
                      int32_t dyn_shared, int32_t *blocks_per_sm);

#ifdef __cplusplus
}
#endif

#endif /* VGPU_LIBVGPU_H */
