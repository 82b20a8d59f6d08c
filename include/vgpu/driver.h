/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The guest driver's character device interface: /dev/vgpuN of vgpu.ko
 * (guest/driver/), shared by the driver and libvgpu's "dev" transport.
 * Documented in docs/guest-driver.md.
 *
 * Each open() of /dev/vgpuN is one queue pair of the device (ABI 1.2) and one
 * window of the data area, both chosen by the driver. The mmap offset of a
 * range is its BAR2 offset: only [queue_off, queue_off + queue_len) (the
 * queue's ctrl page, SQ and CQ) and [win_off, win_off + win_len) (the data
 * window) can be mapped, MAP_SHARED, and each must lie wholly inside one of
 * them; anything else fails with EINVAL. The offsets a request names are
 * BAR2 offsets as everywhere in the ABI, so a client that maps both ranges
 * at the same distance from one base sees BAR2's layout.
 *
 * The fd also:
 *   poll()   POLLIN when the queue's CQ holds entries not consumed
 *            (cq_tail != cq_head), POLLPRI when the link status changed since
 *            the last read(), POLLERR | POLLHUP once the device is gone.
 *   read()   at least 4 bytes: waits (unless O_NONBLOCK: EAGAIN) until POLLIN
 *            or POLLPRI would be set, then returns the link status
 *            (VGPU_LINK_*, a __u32) and forgets the link change. ENODEV once
 *            the device is gone.
 *   ioctls   below. Every one gives ENODEV once the device is gone.
 *
 * Plain Linux UAPI types so that the kernel and user space include the same
 * file.
 */
#ifndef VGPU_DRIVER_H
#define VGPU_DRIVER_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define VGPU_DRV_NAME           "vgpu"      /* /dev/vgpuN, /sys/class/vgpu */
#define VGPU_DRV_MAX_DEVICES    64

struct vgpu_drv_info {
	__u32 abi_version;      /* VGPU_REG_VERSION */
	__u32 features;         /* VGPU_REG_FEATURES */
	__u32 link_status;      /* VGPU_LINK_* now */
	__u32 queue;            /* this fd's queue pair */
	__u32 queues;           /* queue pairs of the device (>= 1) */
	__u32 vm_id;
	__u32 priority;
	__u32 weight;
	__u32 session_id;
	__u32 backend;          /* VGPU_BACKEND_* */
	__u32 max_inflight;
	__u32 minor;            /* N of /dev/vgpuN */
	__u64 shm_size;         /* BAR2 bytes the device backs */
	__u64 data_end;         /* end of the data area (BAR2 offset) */
	__u64 queue_off;        /* BAR2 (= mmap) offset of the queue's region */
	__u64 queue_len;        /* VGPU_SHM_QUEUE_SIZE */
	__u64 win_off;          /* BAR2 (= mmap) offset of the data window */
	__u64 win_len;          /* its bytes, a multiple of the page size */
	char  vm_name[64];      /* NUL-terminated */
	char  gpu_name[64];     /* NUL-terminated */
	char  pci_addr[32];     /* "0000:00:04.0" */
};

#define VGPU_IOC_MAGIC          0xE4

/* Fills struct vgpu_drv_info; also forgets a pending link change. */
#define VGPU_IOCTL_INFO         _IOR(VGPU_IOC_MAGIC, 0, struct vgpu_drv_info)
/* "This queue's SQ tail moved": rings the device's doorbell. 0. */
#define VGPU_IOCTL_KICK         _IO(VGPU_IOC_MAGIC, 1)
/* Returns the link status (VGPU_LINK_*, >= 0) without copying anything. */
#define VGPU_IOCTL_LINK         _IO(VGPU_IOC_MAGIC, 2)

#endif /* VGPU_DRIVER_H */
