/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * libvgpu "dev" transport: the vgpu device through the guest driver vgpu.ko
 * (/dev/vgpuN, include/vgpu/driver.h). Any member of the device node's group
 * may use it, several processes at once: each open() of /dev/vgpuN is one
 * queue pair and one data window that the driver chose.
 *
 * The driver lets us map only our queue's ring region and our window, each
 * at the mmap offset equal to its BAR2 offset. We reserve an inaccessible
 * address range as large as BAR2 and map both ranges into it at their BAR2
 * offsets, so dev->shm + off is the address of BAR2 offset off for the ring
 * core, vgpu_ptr() and every caller, as with the other transports; the
 * rest of BAR2 (other processes' queues and windows, the queue table)
 * faults.
 *
 * The doorbell is an ioctl; waiting is poll() on the fd (the driver wakes it
 * when the queue's CQ has entries or the link changed).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vgpu/driver.h"
#include "vgpu/libvgpu.h"
#include "vgpu/ring.h"
#include "transport.h"

#define LINK_POLL_MS 100

struct devt {
    int      fd;
    uint8_t *base;              /* reservation of shm_size bytes */
    uint64_t resv_size;
    char     path[32];
    struct vgpu_drv_info di;
};

/* Opens /dev/vgpuN: the one whose PCI address is want, else the first with a
 * free queue. -ENODEV when there is none; else the first error seen. */
static int open_node(const char *want, struct devt *d)
{
    int n, err = -ENODEV;

    for (n = 0; n < VGPU_DRV_MAX_DEVICES; n++) {
        char link[PATH_MAX], sys[64];
        ssize_t len;
        int fd;

        if (want) {
            snprintf(sys, sizeof(sys), "/sys/class/%s/%s%d/device", VGPU_DRV_NAME,
                     VGPU_DRV_NAME, n);
            len = readlink(sys, link, sizeof(link) - 1);
            if (len < 0) {
                continue;
            }
            link[len] = '\0';
            if (strcmp(strrchr(link, '/') ? strrchr(link, '/') + 1 : link, want) != 0) {
                continue;
            }
        }
        snprintf(d->path, sizeof(d->path), "/dev/%s%d", VGPU_DRV_NAME, n);
        fd = open(d->path, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
            d->fd = fd;
            return 0;
        }
        if (errno == ENOENT || errno == ENXIO || errno == ENODEV) {
            continue;
        }
        if (err == -ENODEV) {
            err = -errno;
            vgpu_set_detail("%s: %s", d->path, errno == EBUSY ?
                            "every queue pair is in use" : strerror(errno));
        }
    }
    return err;
}

/* The driver's layout, checked before it is used to map anything. */
static int check_layout(const struct vgpu_drv_info *di)
{
    uint64_t size = di->shm_size;

    if (size < VGPU_SHM_MIN_SIZE || size > VGPU_SHM_MAX_SIZE ||
        di->queues == 0 || di->queues > VGPU_MAX_QUEUES || di->queue >= di->queues ||
        di->queue_len != VGPU_SHM_QUEUE_SIZE || di->queue_off > size - di->queue_len ||
        di->data_end > size || di->win_len == 0 || di->win_off < VGPU_SHM_DATA_OFFSET ||
        di->win_off > di->data_end || di->win_len > di->data_end - di->win_off) {
        return -ENXIO;
    }
    return 0;
}

static void fill_identity(struct devt *d, struct vgpu_dev_info *info)
{
    const struct vgpu_drv_info *di = &d->di;

    info->abi_version = di->abi_version;
    info->link_status = di->link_status;
    info->vm_id = di->vm_id;
    info->priority = di->priority;
    info->weight = di->weight;
    info->session_id = di->session_id;
    info->backend = di->backend;
    info->max_inflight = di->max_inflight;
    snprintf(info->vm_name, sizeof(info->vm_name), "%.63s", di->vm_name);
    snprintf(info->gpu_name, sizeof(info->gpu_name), "%.63s", di->gpu_name);
    snprintf(info->location, sizeof(info->location), "%.16s queue %u, %.31s", d->path,
             di->queue, di->pci_addr);
}

static int get_info(struct devt *d)
{
    if (ioctl(d->fd, VGPU_IOCTL_INFO, &d->di) < 0) {
        return -errno;
    }
    d->di.vm_name[sizeof(d->di.vm_name) - 1] = '\0';
    d->di.gpu_name[sizeof(d->di.gpu_name) - 1] = '\0';
    d->di.pci_addr[sizeof(d->di.pci_addr) - 1] = '\0';
    return 0;
}

static int map_at(struct devt *d, uint64_t off, uint64_t len)
{
    void *p = mmap(d->base + off, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                   d->fd, (off_t)off);

    return p == MAP_FAILED ? -errno : 0;
}

static int dev_open(struct vgpu_dev *dev, const struct vgpu_open_opts *o)
{
    uint64_t deadline;
    struct devt *d;
    uint8_t *qb;
    int r;

    d = calloc(1, sizeof(*d));
    if (!d) {
        return -ENOMEM;
    }
    d->fd = -1;
    r = open_node(o->pci_addr, d);
    if (r < 0) {
        goto err_free;
    }
    r = get_info(d);
    if (r < 0) {
        vgpu_set_detail("%s: VGPU_IOCTL_INFO: %s", d->path, strerror(-r));
        goto err_close;
    }
    if ((d->di.abi_version >> 16) != VGPU_ABI_VERSION_MAJOR) {
        vgpu_set_detail("ABI version %u.%u, library speaks %u.%u", d->di.abi_version >> 16,
                        d->di.abi_version & 0xffff, VGPU_ABI_VERSION_MAJOR,
                        VGPU_ABI_VERSION_MINOR);
        r = -EPROTONOSUPPORT;
        goto err_close;
    }
    r = check_layout(&d->di);
    if (r < 0) {
        vgpu_set_detail("%s: the driver's queue layout is inconsistent", d->path);
        goto err_close;
    }

    d->resv_size = d->di.shm_size;
    d->base = mmap(NULL, d->resv_size, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (d->base == MAP_FAILED) {
        r = -errno;
        goto err_close;
    }
    r = map_at(d, d->di.queue_off, d->di.queue_len);
    if (r == 0) {
        r = map_at(d, d->di.win_off, d->di.win_len);
    }
    if (r < 0) {
        vgpu_set_detail("%s: cannot map queue %u: %s", d->path, d->di.queue, strerror(-r));
        goto err_unmap;
    }

    /* As the pci transport: wait for the mediator within the link timeout. */
    deadline = vgpu_now_ns() + (uint64_t)dev->link_timeout_ms * 1000000ull;
    for (;;) {
        struct pollfd p = { .fd = d->fd, .events = POLLPRI };
        uint32_t link;

        r = ioctl(d->fd, VGPU_IOCTL_LINK);
        if (r < 0) {
            r = -errno;
            goto err_unmap;
        }
        if (r & VGPU_LINK_UP) {
            break;
        }
        if (vgpu_now_ns() >= deadline) {
            vgpu_set_detail("after %d ms", dev->link_timeout_ms);
            r = -ENOLINK;
            goto err_unmap;
        }
        if (poll(&p, 1, LINK_POLL_MS) > 0 && (p.revents & POLLPRI)) {
            (void)!read(d->fd, &link, sizeof(link));
        }
    }
    get_info(d);

    dev->priv = d;
    vgpu_dev_attach_shm(dev, d->base, d->di.shm_size);
    /* Our queue and window, as the driver handed them out. */
    qb = d->base + d->di.queue_off;
    dev->ctrl = vgpu_shm_ctrl(qb);
    dev->sq = vgpu_shm_sq(qb);
    dev->cq = vgpu_shm_cq(qb);
    dev->queue = d->di.queue;
    dev->queues = d->di.queues;
    dev->data_end = d->di.data_end;
    dev->alloc_start = dev->alloc_next = d->di.win_off;
    dev->alloc_end = d->di.win_off + d->di.win_len;
    fill_identity(d, &dev->info);
    return 0;

err_unmap:
    if (d->base != MAP_FAILED) {
        munmap(d->base, d->resv_size);
    }
err_close:
    close(d->fd);
err_free:
    free(d);
    return r;
}

static void dev_close(struct vgpu_dev *dev)
{
    struct devt *d = dev->priv;

    if (!d) {
        return;
    }
    munmap(d->base, d->resv_size);
    dev->shm = NULL;
    /* The driver keeps the queue until the mediator has finished with it. */
    close(d->fd);
    free(d);
    dev->priv = NULL;
}

static int dev_kick(struct vgpu_dev *dev, uint32_t sq_tail)
{
    struct devt *d = dev->priv;

    (void)sq_tail;
    return ioctl(d->fd, VGPU_IOCTL_KICK) < 0 ? -errno : 0;
}

static int dev_wait_event(struct vgpu_dev *dev, int timeout_ms)
{
    struct devt *d = dev->priv;
    struct pollfd p = { .fd = d->fd, .events = POLLIN | POLLPRI };
    uint32_t link;
    int r;

    r = poll(&p, 1, timeout_ms);
    if (r < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    if (r == 0) {
        return -ETIMEDOUT;
    }
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
        return -ENODEV;     /* the device was removed */
    }
    if (p.revents & POLLPRI) {
        (void)!read(d->fd, &link, sizeof(link));   /* consumes the link change */
    }
    return 0;
}

static uint32_t dev_link_status(struct vgpu_dev *dev)
{
    struct devt *d = dev->priv;
    int r = ioctl(d->fd, VGPU_IOCTL_LINK);

    return r < 0 ? 0 : (uint32_t)r;
}

static void dev_info(struct vgpu_dev *dev, struct vgpu_dev_info *out)
{
    struct devt *d = dev->priv;

    if (get_info(d) == 0) {
        fill_identity(d, out);
    }
}

const struct vgpu_transport_ops vgpu_transport_dev = {
    .name        = "dev",
    .open        = dev_open,
    .close       = dev_close,
    .kick        = dev_kick,
    .wait_event  = dev_wait_event,
    .link_status = dev_link_status,
    .info        = dev_info,
    .own_queue   = true,
};
