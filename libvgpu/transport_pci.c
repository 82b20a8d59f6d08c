/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * libvgpu "pci" transport: the vgpu-stub device seen from inside a guest.
 *
 * The device is found in sysfs by vendor/device id and class 0xff (vendor
 * 0x10de is refused even when named explicitly: the device never poses as
 * NVIDIA). BAR0 (registers) and BAR2 (shared memory) are mapped through the
 * sysfs resource files, so no kernel driver is needed. Registers are touched
 * only with aligned volatile 32-bit accesses, as the ABI requires.
 *
 * Waiting: by default we poll the CQ with a short sleep that backs off to
 * ~50 us. With use_irq, and the device bound to uio_pci_generic, we sleep in
 * poll() on /dev/uioN. uio_pci_generic's handler masks INTx through the
 * command register's INTx-disable bit and has no irqcontrol hook (writing to
 * /dev/uioN gives ENOSYS), so, as the kernel's UIO howto does, we clear that
 * bit again through the device's sysfs "config" file before each sleep
 * (drivers that do implement irqcontrol get the write of 1 instead); see
 * intx_enable() for why it must be a 16-bit write. The
 * cause is cleared in VGPU_REG_IRQ_ACK before the CQ is looked at, so a
 * completion that lands after the ack raises a fresh interrupt.
 *
 * A doorbell is accepted even while the link is down: the request stays in
 * the ring and the mediator takes it when the device reconnects.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vgpu/libvgpu.h"
#include "vgpu/protocol.h"
#include "vgpu/ring.h"
#include "transport.h"



#define POLL_SLEEP_MIN_NS   1000u
#define POLL_SLEEP_MAX_NS   50000u
#define IRQ_SLEEP_MAX_MS    50

struct pci {
    volatile uint32_t *regs;
    int      lock_fd;           /* resource0, flock()ed: one handle per device */
    int      uio_fd;            /* -1: poll the CQ */
    int      uio_num;
    int      config_fd;         /* PCI config space, to re-enable INTx */
    bool     irqcontrol;        /* the uio driver re-enables INTx on write(1) */
    uint64_t shm_map_size;      /* the whole BAR2 mapping */
    char     addr[32];
};

static inline uint32_t reg_read(const struct pci *p, uint32_t off)
{
    return p->regs[off / 4];
}

static inline void reg_write(struct pci *p, uint32_t off, uint32_t val)
{
    p->regs[off / 4] = val;
}


/*
 * 1 when the device at dir is a vgpu device: class 0xff, not NVIDIA, and
 * either our default ids or explicitly named by the caller (the operator may
 * override the ids with device properties).
 */
static int is_vgpu(const char *dir, bool named)
{
    unsigned long vendor, device, class;

    if (vgpu_sysfs_num(dir, "vendor", &vendor) < 0 ||
        vgpu_sysfs_num(dir, "device", &device) < 0 ||
        vgpu_sysfs_num(dir, "class", &class) < 0) {
        return 0;
    }
    if (vendor == VGPU_PCI_FORBIDDEN_VENDOR || (class >> 16) != VGPU_PCI_CLASS_CODE) {
        return 0;
    }
    if (named) {
        return 1;
    }
    return vendor == VGPU_PCI_VENDOR_ID && device == VGPU_PCI_DEVICE_ID;
}

static int find_device(const char *want, char *addr, size_t len)
{
    struct dirent **list;
    int n, i, r = -ENODEV;

    n = scandir(vgpu_sysfs_root(), &list, NULL, alphasort);
    if (n < 0) {
        return -ENODEV;   /* no sysfs PCI at all: no device */
    }
    for (i = 0; i < n; i++) {
        char dir[512];

        if (r == 0 || list[i]->d_name[0] == '.' ||
            (want && strcmp(want, list[i]->d_name) != 0)) {
            continue;
        }
        snprintf(dir, sizeof(dir), "%s/%s", vgpu_sysfs_root(), list[i]->d_name);
        if (is_vgpu(dir, want != NULL) && strlen(list[i]->d_name) < len) {
            strcpy(addr, list[i]->d_name);
            r = 0;
        }
    }
    for (i = 0; i < n; i++) {
        free(list[i]);
    }
    free(list);
    return r;
}

/* Maps a whole BAR resource file; *size is the file's (= the BAR's) size. */
static int map_resource(const char *addr, int bar, uint64_t *size, void **map)
{
    char path[512];
    struct stat st;
    void *p;
    int fd, r;

    snprintf(path, sizeof(path), "%s/%s/resource%d", vgpu_sysfs_root(), addr, bar);
    fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    if (st.st_size <= 0) {
        r = -ENXIO;
        goto out;
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        r = -errno;
        goto out;
    }
    *size = (uint64_t)st.st_size;
    *map = p;
    r = 0;
out:
    close(fd);  /* the mapping keeps the resource */
    return r;
}

/* Opens /dev/uioN when the device is bound to a uio driver; -ENOENT if not. */
static int open_uio(struct pci *p)
{
    char path[512];
    struct dirent *de;
    DIR *d;
    int num = -1;

    snprintf(path, sizeof(path), "%s/%s/uio", vgpu_sysfs_root(), p->addr);
    d = opendir(path);
    if (!d) {
        return -ENOENT;
    }
    while ((de = readdir(d))) {
        if (sscanf(de->d_name, "uio%d", &num) == 1) {
            break;
        }
        num = -1;
    }
    closedir(d);
    if (num < 0) {
        return -ENOENT;
    }
    snprintf(path, sizeof(path), "/dev/uio%d", num);
    p->uio_fd = open(path, O_RDWR | O_CLOEXEC);
    if (p->uio_fd < 0) {
        return -errno;
    }
    snprintf(path, sizeof(path), "%s/%s/config", vgpu_sysfs_root(), p->addr);
    p->config_fd = open(path, O_RDWR | O_CLOEXEC);
    if (p->config_fd < 0) {
        int r = -errno;

        close(p->uio_fd);
        p->uio_fd = -1;
        return r;
    }
    p->uio_num = num;
    p->irqcontrol = true;   /* until the driver says ENOSYS */
    return 0;
}

#define PCI_COMMAND_OFF         4
#define PCI_COMMAND_INTX_DIS    0x0400  /* bit 10: INTx disable */

/*
 * Unmasks INTx at the PCI level after uio_pci_generic masked it. The command
 * register is rewritten as a whole 16-bit word: QEMU re-evaluates the INTx
 * line only for config writes that cover byte 4, so the UIO howto's one-byte
 * write at offset 5 flips the bit without moving the line, leaves the
 * interrupt routing's level count wrong, and ends in an interrupt storm
 * ("irq N: nobody cared").
 */
static int intx_enable(struct pci *p)
{
    uint32_t one = 1;
    uint16_t cmd;

    if (p->irqcontrol) {
        if (write(p->uio_fd, &one, sizeof(one)) == sizeof(one)) {
            return 0;
        }
        if (errno != ENOSYS) {
            return -errno;
        }
        p->irqcontrol = false;
    }
    if (pread(p->config_fd, &cmd, sizeof(cmd), PCI_COMMAND_OFF) != sizeof(cmd)) {
        return -EIO;
    }
    cmd = le16toh(cmd);
    if (cmd & PCI_COMMAND_INTX_DIS) {
        cmd = htole16(cmd & (uint16_t)~PCI_COMMAND_INTX_DIS);
        if (pwrite(p->config_fd, &cmd, sizeof(cmd), PCI_COMMAND_OFF) != sizeof(cmd)) {
            return -EIO;
        }
    }
    return 0;
}

static void read_name(struct pci *p, uint32_t off, char *out, size_t len)
{
    char buf[VGPU_REG_NAME_LEN + 1];
    uint32_t i;

    for (i = 0; i < VGPU_REG_NAME_LEN; i += 4) {
        uint32_t v = reg_read(p, off + i);

        memcpy(buf + i, &v, 4);
    }
    buf[VGPU_REG_NAME_LEN] = '\0';
    snprintf(out, len, "%.*s", (int)(len - 1), buf);
}

static void read_identity(struct pci *p, struct vgpu_dev_info *info)
{
    info->abi_version = reg_read(p, VGPU_REG_VERSION);
    info->link_status = reg_read(p, VGPU_REG_LINK_STATUS);
    info->vm_id = reg_read(p, VGPU_REG_VM_ID);
    info->priority = reg_read(p, VGPU_REG_PRIORITY);
    info->weight = reg_read(p, VGPU_REG_WEIGHT);
    info->session_id = reg_read(p, VGPU_REG_SESSION_ID);
    info->backend = reg_read(p, VGPU_REG_BACKEND);
    info->max_inflight = reg_read(p, VGPU_REG_MAX_INFLIGHT);
    read_name(p, VGPU_REG_VM_NAME, info->vm_name, sizeof(info->vm_name));
    read_name(p, VGPU_REG_GPU_NAME, info->gpu_name, sizeof(info->gpu_name));
    if (p->uio_fd >= 0) {
        snprintf(info->location, sizeof(info->location), "%s uio%d", p->addr, p->uio_num);
    } else {
        snprintf(info->location, sizeof(info->location), "%s", p->addr);
    }
}


static int pci_open(struct vgpu_dev *dev, const struct vgpu_open_opts *o)
{
    void *regs = NULL, *shm = NULL;
    uint64_t regs_size = 0, shm_size = 0, reg_shm;
    uint64_t deadline;
    uint32_t version, queues;
    struct pci *p;
    char path[512];
    int fd, r;

    p = calloc(1, sizeof(*p));
    if (!p) {
        return -ENOMEM;
    }
    p->uio_fd = -1;
    p->config_fd = -1;
    p->lock_fd = -1;
    r = find_device(o->pci_addr, p->addr, sizeof(p->addr));
    if (r < 0) {
        if (o->pci_addr) {
            vgpu_set_detail("%s: no such PCI device, or not a vgpu device (class %02x, "
                            "vendor %04x refused)", o->pci_addr, VGPU_PCI_CLASS_CODE,
                            VGPU_PCI_FORBIDDEN_VENDOR);
        }
        goto err_free;
    }

    /*
     * Two handles on one queue would both own the guest's ring indexes and
     * overwrite each other's slots: the first one holds a lock until close.
     * Queue 0 locks the whole file as always; queue q > 0 (ABI 1.2) takes an
     * open-file-description lock on byte q, which a queue 0 flock() does not
     * conflict with, so processes on different queues share the device.
     */
    snprintf(path, sizeof(path), "%s/%s/resource%d", vgpu_sysfs_root(), p->addr, VGPU_BAR_REGS);
    p->lock_fd = open(path, (o->queue ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (p->lock_fd < 0) {
        r = -errno;
        vgpu_set_detail("cannot open %s: %s", path, strerror(-r));
        goto err_free;
    }
    if (o->queue) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
                            .l_start = (off_t)o->queue, .l_len = 1 };

        if (fcntl(p->lock_fd, F_OFD_SETLK, &fl) < 0) {
            r = errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
            vgpu_set_detail("queue %u of %s is in use by another process", o->queue, p->addr);
            goto err_unlock;
        }
    } else if (flock(p->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
        vgpu_set_detail("%s is in use by another process", p->addr);
        goto err_unlock;
    }

    /* Memory decoding must be on; the kernel does it through "enable". */
    snprintf(path, sizeof(path), "%s/%s/enable", vgpu_sysfs_root(), p->addr);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)!write(fd, "1", 1);
        close(fd);
    }

    r = map_resource(p->addr, VGPU_BAR_REGS, &regs_size, &regs);
    if (r < 0) {
        vgpu_set_detail("cannot map BAR%d of %s: %s", VGPU_BAR_REGS, p->addr, strerror(-r));
        goto err_unlock;
    }
    if (regs_size < VGPU_REGS_SIZE) {
        vgpu_set_detail("BAR%d of %s is %llu bytes, expected %u", VGPU_BAR_REGS,
                        p->addr, (unsigned long long)regs_size, VGPU_REGS_SIZE);
        r = -ENXIO;
        goto err_unmap_regs;
    }
    p->regs = regs;
    if (reg_read(p, VGPU_REG_MAGIC) != VGPU_MAGIC) {
        vgpu_set_detail("%s: bad magic %#x (registers not answering?)", p->addr,
                        reg_read(p, VGPU_REG_MAGIC));
        r = -ENXIO;
        goto err_unmap_regs;
    }
    version = reg_read(p, VGPU_REG_VERSION);
    if ((version >> 16) != VGPU_ABI_VERSION_MAJOR) {
        vgpu_set_detail("ABI version %u.%u, library speaks %u.%u", version >> 16,
                        version & 0xffff, VGPU_ABI_VERSION_MAJOR, VGPU_ABI_VERSION_MINOR);
        r = -EPROTONOSUPPORT;
        goto err_unmap_regs;
    }
    if (reg_read(p, VGPU_REG_SQ_ENTRIES) != VGPU_SQ_ENTRIES ||
        reg_read(p, VGPU_REG_CQ_ENTRIES) != VGPU_CQ_ENTRIES ||
        reg_read(p, VGPU_REG_DATA_OFFSET) != VGPU_SHM_DATA_OFFSET) {
        vgpu_set_detail("%s: ring geometry differs from ABI %u.%u", p->addr,
                        VGPU_ABI_VERSION_MAJOR, VGPU_ABI_VERSION_MINOR);
        r = -EPROTONOSUPPORT;
        goto err_unmap_regs;
    }

    r = map_resource(p->addr, VGPU_BAR_SHM, &shm_size, &shm);
    if (r < 0) {
        vgpu_set_detail("cannot map BAR%d of %s: %s", VGPU_BAR_SHM, p->addr, strerror(-r));
        goto err_unmap_regs;
    }
    p->shm_map_size = shm_size;
    /* Trust the smaller of the BAR and what the device says it backs. */
    reg_shm = (uint64_t)reg_read(p, VGPU_REG_SHM_SIZE_HI) << 32 |
              reg_read(p, VGPU_REG_SHM_SIZE_LO);
    if (reg_shm && reg_shm < shm_size) {
        shm_size = reg_shm;
    }
    if (shm_size < VGPU_SHM_MIN_SIZE || shm_size > VGPU_SHM_MAX_SIZE) {
        vgpu_set_detail("%s: shared memory of %llu bytes is outside the ABI's range",
                        p->addr, (unsigned long long)shm_size);
        r = -ENXIO;
        goto err_unmap_shm;
    }

    /* ABI 1.2: reads 0 on an older device, which has one queue pair. */
    queues = reg_read(p, VGPU_REG_QUEUES);
    if (queues == 0) {
        queues = 1;
    }
    if (o->queue >= queues) {
        vgpu_set_detail("%s has %u queue pair(s), queue %u asked for", p->addr, queues, o->queue);
        r = -EINVAL;
        goto err_unmap_shm;
    }
    if (queues > 1) {
        uint64_t end = (uint64_t)reg_read(p, VGPU_REG_DATA_END_HI) << 32 |
                       reg_read(p, VGPU_REG_DATA_END_LO);

        if (queues > VGPU_MAX_QUEUES ||
            (uint64_t)(queues - 1) * VGPU_SHM_QUEUE_SIZE + VGPU_SHM_DATA_OFFSET +
            VGPU_SHM_MIN_DATA > shm_size || end != VGPU_SHM_DATA_END(shm_size, queues)) {
            vgpu_set_detail("%s: %u queue pairs and data end %#llx do not fit its %llu bytes",
                            p->addr, queues, (unsigned long long)end,
                            (unsigned long long)shm_size);
            r = -ENXIO;
            goto err_unmap_shm;
        }
    }

    /* The interrupt is the device's: a queue > 0 handle polls, leaving it
     * (and its mask) to whoever has queue 0. */
    if (o->use_irq && o->queue == 0) {
        r = open_uio(p);
        if (r < 0 && r != -ENOENT) {
            vgpu_set_detail("cannot open /dev/uio for %s: %s", p->addr, strerror(-r));
            goto err_unmap_shm;
        }
    }
    /* Interrupts only when someone sleeps on them. */
    if (o->queue == 0) {
        reg_write(p, VGPU_REG_IRQ_MASK, p->uio_fd >= 0 ? 0 :
                  VGPU_IRQ_COMPLETION | VGPU_IRQ_LINK);
    }

    deadline = vgpu_now_ns() + (uint64_t)dev->link_timeout_ms * 1000000ull;
    while (!(reg_read(p, VGPU_REG_LINK_STATUS) & VGPU_LINK_UP)) {
        if (vgpu_now_ns() >= deadline) {
            vgpu_set_detail("after %d ms", dev->link_timeout_ms);
            r = -ENOLINK;
            goto err_close_uio;
        }
        vgpu_sleep_ns(1000000);
    }

    dev->priv = p;
    vgpu_dev_attach_shm(dev, shm, shm_size);
    dev->queues = queues;
    read_identity(p, &dev->info);
    return 0;

err_close_uio:
    if (p->uio_fd >= 0) {
        close(p->uio_fd);
        close(p->config_fd);
    }
err_unmap_shm:
    munmap(shm, p->shm_map_size);
err_unmap_regs:
    munmap(regs, regs_size);
err_unlock:
    close(p->lock_fd);  /* drops the lock */
err_free:
    free(p);
    return r;
}

static void pci_close(struct vgpu_dev *dev)
{
    struct pci *p = dev->priv;

    if (!p) {
        return;
    }
    if (p->uio_fd >= 0) {
        reg_write(p, VGPU_REG_IRQ_MASK, VGPU_IRQ_COMPLETION | VGPU_IRQ_LINK);
        close(p->uio_fd);
        close(p->config_fd);
    }
    if (dev->shm) {
        munmap(dev->shm, p->shm_map_size);
        dev->shm = NULL;
    }
    munmap((void *)p->regs, VGPU_REGS_SIZE);
    close(p->lock_fd);
    free(p);
    dev->priv = NULL;
}

static int pci_kick(struct vgpu_dev *dev, uint32_t sq_tail)
{
    struct pci *p = dev->priv;

    /* The SQE and sq_tail stores must be visible before the device acts. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    reg_write(p, VGPU_REG_DOORBELL, sq_tail);
    return 0;
}

static bool cq_nonempty(struct vgpu_dev *dev)
{
    return vgpu_load_acquire(&dev->ctrl->cq_tail) != dev->cq_head;
}

static int wait_irq(struct vgpu_dev *dev, struct pci *p, int timeout_ms)
{
    struct pollfd pfd = { .fd = p->uio_fd, .events = POLLIN };
    uint32_t count, status;
    int r;

    /* A cause already pending: no need to sleep for its interrupt. */
    status = reg_read(p, VGPU_REG_IRQ_STATUS);
    if (status) {
        reg_write(p, VGPU_REG_IRQ_ACK, status);
        return 0;
    }
    r = intx_enable(p);
    if (r < 0) {
        return r;
    }
    /* The completion may have landed between the caller's check and the
     * enable; its interrupt is then already latched, but skip the sleep. */
    if (cq_nonempty(dev)) {
        return 0;
    }
    /* Belt and braces: a lost interrupt costs at most IRQ_SLEEP_MAX_MS. */
    r = poll(&pfd, 1, timeout_ms < IRQ_SLEEP_MAX_MS ? timeout_ms : IRQ_SLEEP_MAX_MS);
    if (r < 0) {
        return errno == EINTR ? 0 : -errno;
    }
    if (r == 0) {
        return -ETIMEDOUT;
    }
    if (read(p->uio_fd, &count, sizeof(count)) != sizeof(count)) {
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    }
    /* Clear the causes before the caller looks at the CQ (acquire load). */
    status = reg_read(p, VGPU_REG_IRQ_STATUS);
    if (status) {
        reg_write(p, VGPU_REG_IRQ_ACK, status);
    }
    return 0;
}

/*
 * Polling: the CQ lives in guest RAM, so looking costs nothing; the link
 * register is an MMIO read (a VM exit), so it is read only between sleeps.
 * Sleeps back off from 1 us to 50 us; note that a thread's default timer
 * slack (50 us) stretches short sleeps, which is why vgpu-client lowers it.
 */
static int wait_poll(struct vgpu_dev *dev, struct pci *p, int timeout_ms)
{
    uint64_t deadline = vgpu_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    uint32_t link = reg_read(p, VGPU_REG_LINK_STATUS);
    uint64_t sleep = POLL_SLEEP_MIN_NS;

    for (;;) {
        uint64_t now;

        if (cq_nonempty(dev)) {
            return 0;
        }
        if (reg_read(p, VGPU_REG_LINK_STATUS) != link) {
            return 0;
        }
        now = vgpu_now_ns();
        if (now >= deadline) {
            return -ETIMEDOUT;
        }
        vgpu_sleep_ns(sleep < deadline - now ? sleep : deadline - now);
        if (sleep < POLL_SLEEP_MAX_NS) {
            sleep *= 2;
        }
    }
}

static int pci_wait_event(struct vgpu_dev *dev, int timeout_ms)
{
    struct pci *p = dev->priv;

    if (p->uio_fd >= 0) {
        return wait_irq(dev, p, timeout_ms);
    }
    return wait_poll(dev, p, timeout_ms);
}

static uint32_t pci_link_status(struct vgpu_dev *dev)
{
    struct pci *p = dev->priv;

    return reg_read(p, VGPU_REG_LINK_STATUS);
}

static void pci_info(struct vgpu_dev *dev, struct vgpu_dev_info *out)
{
    read_identity(dev->priv, out);
}

const struct vgpu_transport_ops vgpu_transport_pci = {
    .name        = "pci",
    .open        = pci_open,
    .close       = pci_close,
    .kick        = pci_kick,
    .wait_event  = pci_wait_event,
    .link_status = pci_link_status,
    .info        = pci_info,
};
