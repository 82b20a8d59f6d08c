/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * libvgpu: the client side of the vgpu rings. The same ring code runs over
 * two transports:
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
    const char *transport;    /* "pci", "sim", or NULL: pci if a device exists */
    /* sim */
    const char *socket_path;  /* mediator socket; NULL: VGPU_SOCKET env or default */
    uint64_t    shm_size;     /* 0: 64 MiB */
    uint32_t    vm_id;
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
};
int vgpu_get_info(struct vgpu_dev *dev, struct vgpu_dev_info *out);

/*
 * Data area. Offsets are BAR2 offsets, as operations take them. The library
 * keeps a bump allocator over the data area: vgpu_alloc() hands out aligned
 * ranges, vgpu_free_all() starts over.
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

/* The raw shared memory, for tests that play a hostile guest. */
void *vgpu_shm_base(struct vgpu_dev *dev, uint64_t *size);

const char *vgpu_strerror(int err); /* err is -errno */

#ifdef __cplusplus
}
#endif

#endif /* VGPU_LIBVGPU_H */
