/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * libvgpu internals: the transport interface and the device handle shared by
 * the ring core (vgpu.c) and the transports (transport_sim.c, transport_pci.c,
 * transport_dev.c).
 * Not installed; tests include it to drive the ring core over plain memory.
 */
#ifndef VGPU_LIBVGPU_TRANSPORT_H
#define VGPU_LIBVGPU_TRANSPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vgpu/abi.h"
#include "vgpu/libvgpu.h"

struct vgpu_dev;

/*
 * One transport = one const table. The ring core owns the rings; a transport
 * only provides the shared memory, the doorbell and a way to sleep until the
 * peer might have posted completions.
 */
struct vgpu_transport_ops {
    const char *name;
    /* Sets dev->shm/shm_size and the identity fields of dev->info. 0 or -errno.
     * On failure everything it acquired is released (close is not called). */
    int  (*open)(struct vgpu_dev *dev, const struct vgpu_open_opts *opts);
    void (*close)(struct vgpu_dev *dev);
    /* "The SQ tail moved to sq_tail." 0 or -errno (-ENOLINK: peer gone). */
    int  (*kick)(struct vgpu_dev *dev, uint32_t sq_tail);
    /*
     * Sleeps until the peer may have posted completions or the link changed,
     * at most timeout_ms (>= 0). Spurious returns are fine: the core
     * re-checks the CQ. Returns 0, -ETIMEDOUT, or -ENOLINK when the link is
     * down and cannot come back (sim); -errno on other failures.
     */
    int  (*wait_event)(struct vgpu_dev *dev, int timeout_ms);
    /* Current VGPU_LINK_* bits. */
    uint32_t (*link_status)(struct vgpu_dev *dev);
    /* Refreshes transport-specific fields of *out (registers, session). */
    void (*info)(struct vgpu_dev *dev, struct vgpu_dev_info *out);
    /* Addition: open chose the handle's queue pair and window itself and set
     * dev->queue/queues, ctrl/sq/cq, data_end and alloc_* (dev: the driver
     * hands them out). The core then ignores opts->queue, and
     * vgpu_queue_open() gives -EOPNOTSUPP: open the device again instead. */
    bool own_queue;
};

extern const struct vgpu_transport_ops vgpu_transport_sim;
extern const struct vgpu_transport_ops vgpu_transport_pci;
extern const struct vgpu_transport_ops vgpu_transport_mem;
extern const struct vgpu_transport_ops vgpu_transport_dev;
extern const struct vgpu_transport_ops vgpu_transport_ivshmem;

struct vgpu_dev {
    const struct vgpu_transport_ops *ops;
    void    *priv;              /* transport state */

    uint8_t *shm;               /* BAR2 / memfd mapping */
    uint64_t shm_size;
    struct vgpu_shm_ctrl *ctrl;
    struct vgpu_sqe      *sq;
    struct vgpu_cqe      *cq;

    /* Guest-owned indexes, mirrored locally so the peer cannot change them. */
    uint32_t sq_tail;
    uint32_t cq_head;
    uint32_t abandoned;         /* completions still due to a previous process */

    uint64_t alloc_next;        /* bump allocator cursor (BAR2 offset) */
    int      link_timeout_ms;
    uint32_t spin_ns;           /* adaptive spin budget before sleeping */
    uint32_t spin_cap_ns;       /* its ceiling; 0: never spin */
    uint64_t spin_ewma_ns;      /* moving average of wait times */

    struct vgpu_dev_info info;  /* identity filled by the transport */

    /* ABI 1.2: queue pairs. The transport's open sets queues (0 reads as 1). */
    uint32_t queue;             /* this handle's queue pair */
    uint32_t queues;            /* the device's queue pairs */
    uint64_t data_end;          /* end of the device's data area */
    uint64_t alloc_start, alloc_end;    /* the range vgpu_alloc() hands out */

    /* Handles sharing one transport (vgpu_queue_open()): root is the handle
     * vgpu_open() returned, NULL on the root itself. The rest is the root's:
     * the transport is called under link_lock while shared (refs > 1). */
    struct vgpu_dev *root;
    pthread_mutex_t link_lock;
    uint32_t refs;              /* handles open, the root included */
    uint64_t queues_open;       /* bit q: a handle on queue q is open */
};

/* Points dev->ctrl/sq/cq into dev->shm (queue 0); called by transports after mapping. */
void vgpu_dev_attach_shm(struct vgpu_dev *dev, void *shm, uint64_t size);

/*
 * For unit tests: a device over caller-owned memory with no peer (kick does
 * nothing, wait_event only sleeps). The test plays the mediator by writing
 * the CQ and ctrl->sq_head/cq_tail itself. The memory must stay valid until
 * vgpu_close(); ctrl is zeroed like a fresh open.
 */
int vgpu_open_mem(void *shm, uint64_t size, struct vgpu_dev **out);

/* Records why vgpu_open() failed, for vgpu_open_detail(). printf-like. */
void vgpu_set_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic clock in nanoseconds. */
uint64_t vgpu_now_ns(void);
void vgpu_sleep_ns(uint64_t ns);

/* The PCI devices directory of sysfs ($VGPU_PCI_SYSFS: a fake tree, tests),
 * and one hex or decimal number read from an attribute file of a device
 * directory there (0 or -errno), for the pci and ivshmem transports. */
const char *vgpu_sysfs_root(void);
int vgpu_sysfs_num(const char *dir, const char *attr, unsigned long *val);

#endif /* VGPU_LIBVGPU_TRANSPORT_H */
