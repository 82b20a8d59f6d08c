/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * libvgpu "ivshmem" transport: a guest on QEMU's stock ivshmem-doorbell
 * device (PCI 1af4:1110) served by vgpu-mediator's ivshmem server mode, so
 * no patched QEMU is needed (docs/operations.md, "Stock QEMU + ivshmem").
 *
 * The device is found in sysfs by its ids, BAR2 (the shared memory the
 * mediator created) and BAR0 (ivshmem's four registers) are mapped through
 * the sysfs resource files. What vgpu-stub's BAR0 would say is in the
 * shared-memory header (struct vgpu_shm_header at VGPU_SHM_HEADER_OFFSET),
 * written by the mediator; an ivshmem device whose memory has no such
 * header is some other ivshmem user's and is not ours (-ENODEV). The rings
 * are vgpu-stub's queue 0. The doorbell is one 32-bit write of the header's
 * doorbell value ((mediator's peer id << 16) | vector 0) to ivshmem's
 * DOORBELL register: QEMU signals the mediator's eventfd (an ioeventfd under
 * KVM). Completions raise the device's MSI-X vector 0, which only a kernel
 * driver could take (uio_pci_generic does INTx only), so waits poll the CQ
 * with sleeps backing off from 1 to 50 us, as the pci transport does.
 *
 * The header lives in memory the guest can write: everything read from it
 * is checked like anything else the peer says, and a guest that scribbles
 * on it only confuses itself (the mediator never reads it back).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "vgpu/libvgpu.h"
#include "vgpu/ring.h"
#include "transport.h"

#define POLL_SLEEP_MIN_NS   1000u
#define POLL_SLEEP_MAX_NS   50000u

struct ivshmem {
    volatile uint32_t *regs;    /* ivshmem's BAR0 registers, inside regs_map */
    void    *regs_map;
    size_t   regs_map_size;
    int      lock_fd;           /* resource2, flock()ed: one handle per device */
    uint64_t shm_map_size;
    uint32_t doorbell;          /* the value to write, from the header at open */
    volatile struct vgpu_shm_header *hdr;
    char     addr[32];
};



static bool is_ivshmem(const char *dir)
{
    unsigned long vendor, device;

    return vgpu_sysfs_num(dir, "vendor", &vendor) == 0 &&
           vgpu_sysfs_num(dir, "device", &device) == 0 &&
           vendor == VGPU_IVSHMEM_VENDOR_ID && device == VGPU_IVSHMEM_DEVICE_ID;
}

/* The idx-th ivshmem device (in address order), or the one named. */
static int find_device(const char *want, unsigned idx, char *addr, size_t len)
{
    struct dirent **list;
    int n, r = -ENODEV;
    unsigned seen = 0;

    n = scandir(vgpu_sysfs_root(), &list, NULL, alphasort);
    if (n < 0) {
        return -ENODEV;
    }
    for (int i = 0; i < n; i++) {
        char dir[512];

        if (r == 0 || list[i]->d_name[0] == '.' ||
            (want && strcmp(want, list[i]->d_name) != 0)) {
            continue;
        }
        snprintf(dir, sizeof(dir), "%s/%s", vgpu_sysfs_root(), list[i]->d_name);
        if (is_ivshmem(dir) && strlen(list[i]->d_name) < len && seen++ == idx) {
            strcpy(addr, list[i]->d_name);
            r = 0;
        }
    }
    for (int i = 0; i < n; i++) {
        free(list[i]);
    }
    free(list);
    return r;
}

/*
 * Maps a BAR's resource file. A BAR smaller than a page (ivshmem's BAR0 is
 * 256 bytes) may start inside a page; sysfs maps from the page holding its
 * start, so *at points at the BAR within the mapping (the start from the
 * device's "resource" file).
 */
static int map_bar(const char *addr, int bar, uint64_t *size, void **map, size_t *map_size,
                   void **at)
{
    char path[512], line[128];
    unsigned long long start = 0, end = 0, flags = 0;
    long page = sysconf(_SC_PAGESIZE);
    struct stat st;
    size_t off = 0, len;
    FILE *f;
    void *p;
    int fd;

    snprintf(path, sizeof(path), "%s/%s/resource", vgpu_sysfs_root(), addr);
    f = fopen(path, "re");
    for (int i = 0; f && i <= bar && fgets(line, sizeof(line), f); i++) {
        if (i == bar && sscanf(line, "%llx %llx %llx", &start, &end, &flags) == 3) {
            off = (size_t)(start & (unsigned long long)(page - 1));
        }
    }
    if (f) {
        fclose(f);
    }
    snprintf(path, sizeof(path), "%s/%s/resource%d", vgpu_sysfs_root(), addr, bar);
    fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) < 0 || st.st_size <= 0) {
        close(fd);
        return -ENXIO;
    }
    len = ((size_t)st.st_size + off + (size_t)page - 1) & ~((size_t)page - 1);
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        return -errno;
    }
    *size = (uint64_t)st.st_size;
    *map = p;
    *map_size = len;
    *at = (uint8_t *)p + off;
    return 0;
}

static void header_string(volatile const char *src, char *out, size_t len)
{
    size_t i;

    for (i = 0; i + 1 < len && i < VGPU_REG_NAME_LEN && src[i]; i++) {
        out[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
    }
    out[i] = '\0';
}

static uint32_t hdr_link(const struct ivshmem *iv)
{
    return le32toh(__atomic_load_n(&iv->hdr->link_status, __ATOMIC_ACQUIRE));
}

static void read_identity(struct ivshmem *iv, struct vgpu_dev_info *info)
{
    info->abi_version = le32toh(iv->hdr->abi_version);
    info->link_status = hdr_link(iv);
    info->vm_id = le32toh(iv->hdr->vm_id);
    info->priority = le32toh(iv->hdr->priority);
    info->weight = le32toh(iv->hdr->weight);
    info->session_id = le32toh(iv->hdr->session_id);
    info->backend = le32toh(iv->hdr->backend);
    info->max_inflight = le32toh(iv->hdr->max_inflight);
    header_string(iv->hdr->vm_name, info->vm_name, sizeof(info->vm_name));
    header_string(iv->hdr->gpu_name, info->gpu_name, sizeof(info->gpu_name));
    snprintf(info->location, sizeof(info->location), "%s ivshmem peer %u", iv->addr,
             iv->regs[VGPU_IVSHMEM_REG_IV_POSITION / 4]);
}


static int ivshmem_open(struct vgpu_dev *dev, const struct vgpu_open_opts *o)
{
    void *regs_at = NULL, *shm = NULL, *shm_at;
    uint64_t regs_size = 0, shm_size = 0, hdr_size, deadline;
    size_t shm_len;
    struct ivshmem *iv;
    uint32_t version;
    char path[512];
    int fd, r;

    if (o->queue) {
        vgpu_set_detail("an ivshmem device has one queue pair");
        return -EINVAL;
    }
    iv = calloc(1, sizeof(*iv));
    if (!iv) {
        return -ENOMEM;
    }
    iv->lock_fd = -1;
    r = find_device(o->pci_addr, 0, iv->addr, sizeof(iv->addr));
    if (r < 0) {
        if (o->pci_addr) {
            vgpu_set_detail("%s: no such PCI device, or not ivshmem (%04x:%04x)", o->pci_addr,
                            VGPU_IVSHMEM_VENDOR_ID, VGPU_IVSHMEM_DEVICE_ID);
        }
        goto err_free;
    }
    /* Two handles would both own the guest's ring indexes. */
    snprintf(path, sizeof(path), "%s/%s/resource%d", vgpu_sysfs_root(), iv->addr, VGPU_BAR_SHM);
    iv->lock_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (iv->lock_fd < 0) {
        r = -errno;
        vgpu_set_detail("cannot open %s: %s", path, strerror(-r));
        goto err_free;
    }
    if (flock(iv->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        r = errno == EWOULDBLOCK ? -EBUSY : -errno;
        vgpu_set_detail("%s is in use by another process", iv->addr);
        goto err_unlock;
    }
    snprintf(path, sizeof(path), "%s/%s/enable", vgpu_sysfs_root(), iv->addr);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)!write(fd, "1", 1);
        close(fd);
    }

    r = map_bar(iv->addr, VGPU_BAR_SHM, &shm_size, &shm, &shm_len, &shm_at);
    if (r < 0) {
        vgpu_set_detail("cannot map BAR%d of %s: %s", VGPU_BAR_SHM, iv->addr, strerror(-r));
        goto err_unlock;
    }
    iv->shm_map_size = shm_len;
    if (shm_at != shm || shm_size < VGPU_SHM_MIN_SIZE) {
        vgpu_set_detail("%s: BAR2 of %llu bytes is not vgpu shared memory", iv->addr,
                        (unsigned long long)shm_size);
        r = -ENODEV;
        goto err_unmap_shm;
    }
    iv->hdr = (volatile struct vgpu_shm_header *)((uint8_t *)shm + VGPU_SHM_HEADER_OFFSET);
    if (le32toh(iv->hdr->magic) != VGPU_SHM_HEADER_MAGIC) {
        vgpu_set_detail("%s: ivshmem memory without a vgpu header (magic %#x): not served by "
                        "vgpu-mediator", iv->addr, le32toh(iv->hdr->magic));
        r = -ENODEV;
        goto err_unmap_shm;
    }
    version = le32toh(iv->hdr->abi_version);
    if ((version >> 16) != VGPU_ABI_VERSION_MAJOR) {
        vgpu_set_detail("ABI version %u.%u, library speaks %u.%u", version >> 16,
                        version & 0xffff, VGPU_ABI_VERSION_MAJOR, VGPU_ABI_VERSION_MINOR);
        r = -EPROTONOSUPPORT;
        goto err_unmap_shm;
    }
    hdr_size = le64toh(iv->hdr->shm_size);
    if (le32toh(iv->hdr->header_size) < sizeof(struct vgpu_shm_header) ||
        le32toh(iv->hdr->sq_entries) != VGPU_SQ_ENTRIES ||
        le32toh(iv->hdr->cq_entries) != VGPU_CQ_ENTRIES ||
        le64toh(iv->hdr->data_offset) != VGPU_SHM_DATA_OFFSET ||
        le32toh(iv->hdr->queues) != 1 || hdr_size < VGPU_SHM_MIN_SIZE ||
        hdr_size > shm_size || hdr_size > VGPU_SHM_MAX_SIZE) {
        vgpu_set_detail("%s: the shared-memory header's geometry differs from ABI %u.%u or "
                        "from BAR2 (%llu bytes)", iv->addr, VGPU_ABI_VERSION_MAJOR,
                        VGPU_ABI_VERSION_MINOR, (unsigned long long)shm_size);
        r = -EPROTONOSUPPORT;
        goto err_unmap_shm;
    }
    iv->doorbell = le32toh(iv->hdr->doorbell);

    r = map_bar(iv->addr, VGPU_BAR_REGS, &regs_size, &iv->regs_map, &iv->regs_map_size,
                &regs_at);
    if (r < 0) {
        vgpu_set_detail("cannot map BAR%d of %s: %s", VGPU_BAR_REGS, iv->addr, strerror(-r));
        goto err_unmap_shm;
    }
    if (regs_size < VGPU_IVSHMEM_REGS_SIZE) {
        vgpu_set_detail("BAR%d of %s is %llu bytes, expected %u", VGPU_BAR_REGS, iv->addr,
                        (unsigned long long)regs_size, VGPU_IVSHMEM_REGS_SIZE);
        r = -ENXIO;
        goto err_unmap_regs;
    }
    iv->regs = regs_at;
    iv->regs[VGPU_IVSHMEM_REG_INTR_MASK / 4] = 0;   /* we poll */

    deadline = vgpu_now_ns() + (uint64_t)dev->link_timeout_ms * 1000000ull;
    while (!(hdr_link(iv) & VGPU_LINK_UP)) {
        if (vgpu_now_ns() >= deadline) {
            vgpu_set_detail("after %d ms", dev->link_timeout_ms);
            r = -ENOLINK;
            goto err_unmap_regs;
        }
        vgpu_sleep_ns(1000000);
    }
    dev->priv = iv;
    vgpu_dev_attach_shm(dev, shm, hdr_size);
    dev->queues = 1;
    read_identity(iv, &dev->info);
    return 0;

err_unmap_regs:
    munmap(iv->regs_map, iv->regs_map_size);
err_unmap_shm:
    munmap(shm, iv->shm_map_size);
err_unlock:
    close(iv->lock_fd);
err_free:
    free(iv);
    return r;
}

static void ivshmem_close(struct vgpu_dev *dev)
{
    struct ivshmem *iv = dev->priv;

    if (!iv) {
        return;
    }
    if (dev->shm) {
        munmap(dev->shm, iv->shm_map_size);
        dev->shm = NULL;
    }
    munmap(iv->regs_map, iv->regs_map_size);
    close(iv->lock_fd);
    free(iv);
    dev->priv = NULL;
}

static int ivshmem_kick(struct vgpu_dev *dev, uint32_t sq_tail)
{
    struct ivshmem *iv = dev->priv;

    (void)sq_tail;
    /* The SQE and sq_tail stores must be visible before the mediator looks. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    iv->regs[VGPU_IVSHMEM_REG_DOORBELL / 4] = iv->doorbell;
    return 0;
}

static int ivshmem_wait_event(struct vgpu_dev *dev, int timeout_ms)
{
    struct ivshmem *iv = dev->priv;
    uint64_t deadline = vgpu_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    uint32_t link = hdr_link(iv);
    uint64_t sleep = POLL_SLEEP_MIN_NS;

    for (;;) {
        uint64_t now;

        if (vgpu_load_acquire(&dev->ctrl->cq_tail) != dev->cq_head || hdr_link(iv) != link) {
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

static uint32_t ivshmem_link_status(struct vgpu_dev *dev)
{
    return hdr_link(dev->priv);
}

static void ivshmem_info(struct vgpu_dev *dev, struct vgpu_dev_info *out)
{
    read_identity(dev->priv, out);
}

const struct vgpu_transport_ops vgpu_transport_ivshmem = {
    .name        = "ivshmem",
    .open        = ivshmem_open,
    .close       = ivshmem_close,
    .kick        = ivshmem_kick,
    .wait_event  = ivshmem_wait_event,
    .link_status = ivshmem_link_status,
    .info        = ivshmem_info,
};
