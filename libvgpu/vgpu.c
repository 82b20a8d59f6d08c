/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * libvgpu ring core: submission/completion rings, the data-area allocator and
 * waiting, shared by the pci and sim transports (transport.h).
 *
 * The guest owns sq_tail and cq_head. Both are kept in the handle and only
 * stored to shared memory, never read back from it, so nothing the peer (or a
 * hostile test scribbling on shared memory) writes there can make us
 * overwrite a slot the host still owns. Indexes the host writes (sq_head,
 * cq_tail) are checked before use: a count larger than the ring, or more
 * completions than requests, is reported as -EIO.
 *
 * A handle is not thread-safe; use one per thread. Handles on several queues
 * of one device (vgpu_queue_open()) share the root handle's transport: while
 * more than one is open, every call into the transport holds the root's
 * link_lock and waits poll the CQ (see shared_wait()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <endian.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "vgpu/libvgpu.h"
#include "vgpu/ring.h"
#include "transport.h"

/*
 * Adaptive spin before sleeping in the transport. A completion that arrives
 * within the spin costs no wake-up (a few microseconds: most of a NOP's
 * round trip; tens of microseconds of a GPU request's). But a spin that
 * misses is pure loss, and on a host with fewer free cores than busy threads
 * it is worse: the spinner holds the core the mediator needs, so the
 * completion arrives only after the spin gives up.
 * Hence: the budget is 1.5x the moving average of recent waits, capped; a
 * miss halves it, a miss the full budget would have caught doubles it back.
 * The cap (opts.spin_us, $VGPU_SPIN_US) defaults to 20 us below 8 CPUs (NOP
 * streams still spin, starved mediators quickly stop it) and to 1000 us on
 * larger hosts, where a spare core is cheaper than a wake-up per GPU request.
 */
#define SPIN_NS_MIN      500u
#define SPIN_US_SMALL    20
#define SPIN_US_LARGE    1000
#define SPIN_US_LIMIT    100000
#define SPIN_REARM_CAP_NS 100000u

#define DEFAULT_LINK_TIMEOUT_MS 5000
#define SHARED_POLL_NS   100000u   /* a shared handle's sleep between CQ checks */
#define DEFAULT_ALIGN    64u
#define MAX_ALIGN        (1ull << 30)

/* Per thread, so concurrent opens in different threads do not mix. */
static __thread char open_detail[160];

void vgpu_set_detail(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(open_detail, sizeof(open_detail), fmt, ap);
    va_end(ap);
}

const char *vgpu_open_detail(void)
{
    return open_detail;
}

uint64_t vgpu_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vgpu_sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

    nanosleep(&ts, NULL);
}

const char *vgpu_sysfs_root(void)
{
    const char *r = secure_getenv("VGPU_PCI_SYSFS");

    return r && *r ? r : "/sys/bus/pci/devices";
}

int vgpu_sysfs_num(const char *dir, const char *attr, unsigned long *val)
{
    char path[512], buf[64];
    ssize_t n;
    char *end;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, attr);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return n < 0 ? -errno : -EINVAL;
    }
    buf[n] = '\0';
    errno = 0;
    *val = strtoul(buf, &end, 0);
    return errno || end == buf ? -EINVAL : 0;
}

void vgpu_dev_attach_shm(struct vgpu_dev *dev, void *shm, uint64_t size)
{
    dev->shm = shm;
    dev->shm_size = size;
    dev->ctrl = vgpu_shm_ctrl(shm);
    dev->sq = vgpu_shm_sq(shm);
    dev->cq = vgpu_shm_cq(shm);
    dev->queue = 0;
    dev->data_end = size;
    dev->alloc_start = dev->alloc_next = VGPU_SHM_DATA_OFFSET;
    dev->alloc_end = size;
}

/*
 * Points the allocator at the handle's queue's window in the queue table, or
 * at the whole data area when the window is unset or does not lie inside it
 * (the mediator refuses such a queue's requests), and starts it over.
 */
static void set_window(struct vgpu_dev *dev)
{
    struct vgpu_queue_desc d;
    uint64_t off, len;

    if (dev->ops && dev->ops->own_queue) {
        /* The transport set the window; the queue table is not mapped. */
        dev->alloc_next = dev->alloc_start;
        return;
    }
    dev->alloc_start = VGPU_SHM_DATA_OFFSET;
    dev->alloc_end = dev->data_end;
    memcpy(&d, dev->shm + VGPU_SHM_QTABLE_OFFSET + (uint64_t)dev->queue * sizeof(d), sizeof(d));
    off = le64toh(d.win_off);
    len = le64toh(d.win_len);
    if (len && off >= VGPU_SHM_DATA_OFFSET && off <= dev->data_end &&
        len <= dev->data_end - off) {
        dev->alloc_start = off;
        dev->alloc_end = off + len;
    }
    dev->alloc_next = dev->alloc_start;
}

/* Points the handle's rings at queue pair q (ABI 1.2: queue 0 at the start
 * of BAR2, the others at its end) and its allocator at q's window. */
static int select_queue(struct vgpu_dev *dev, uint32_t q)
{
    uint64_t end;
    uint8_t *base;

    if (dev->queues == 0) {
        dev->queues = 1;
    }
    if (q >= dev->queues) {
        vgpu_set_detail("queue %u: the device has %u queue pair(s)", q, dev->queues);
        return -EINVAL;
    }
    end = VGPU_SHM_DATA_END(dev->shm_size, dev->queues);
    if (dev->queues > VGPU_MAX_QUEUES || end <= VGPU_SHM_DATA_OFFSET ||
        end > dev->shm_size) {
        vgpu_set_detail("%u queue pairs do not fit in %llu bytes of shared memory",
                        dev->queues, (unsigned long long)dev->shm_size);
        return -ENXIO;
    }
    base = q ? dev->shm + VGPU_SHM_QUEUE_OFFSET(dev->shm_size, q) : dev->shm;
    dev->ctrl = vgpu_shm_ctrl(base);
    dev->sq = vgpu_shm_sq(base);
    dev->cq = vgpu_shm_cq(base);
    dev->queue = q;
    dev->data_end = end;
    set_window(dev);
    return 0;
}

/*
 * Takes the guest's indexes from shared memory. The sim transport starts from
 * zeroed memory; a pci device keeps its BAR2 across client processes, and its
 * rings must not be rewound under a mediator that has already taken entries
 * from them. Whatever a previous process left in flight is "abandoned": its
 * completions are consumed and dropped as they arrive.
 */
static int adopt_indexes(struct vgpu_dev *dev)
{
    uint32_t n;

    dev->sq_tail = vgpu_load_acquire(&dev->ctrl->sq_tail);
    dev->cq_head = vgpu_load_acquire(&dev->ctrl->cq_head);
    n = vgpu_ring_count(dev->cq_head, dev->sq_tail, VGPU_CQ_ENTRIES);
    if (n == VGPU_RING_CORRUPT) {
        vgpu_set_detail("ring indexes corrupt (sq_tail %u, cq_head %u): reset the device",
                        dev->sq_tail, dev->cq_head);
        return -EIO;
    }
    dev->abandoned = n;
    return 0;
}

/* spin_us as in struct vgpu_open_opts. */
static void spin_setup(struct vgpu_dev *dev, int spin_us)
{
    const char *env = getenv("VGPU_SPIN_US");
    long us = spin_us;

    if (us == 0 && env && *env) {
        char *end;

        errno = 0;
        us = strtol(env, &end, 10);
        if (errno || *end || us < 0) {
            us = 0;     /* unparsable: the default, as if unset */
        } else if (us == 0) {
            us = -1;
        }
    }
    if (us == 0) {
        us = sysconf(_SC_NPROCESSORS_ONLN) >= 8 ? SPIN_US_LARGE : SPIN_US_SMALL;
    }
    if (us > SPIN_US_LIMIT) {
        us = SPIN_US_LIMIT;
    }
    dev->spin_cap_ns = us > 0 ? (uint32_t)us * 1000u : 0;
    dev->spin_ns = dev->spin_cap_ns < 4000u ? dev->spin_cap_ns : 4000u;
    dev->spin_ewma_ns = 0;
}

static struct vgpu_dev *dev_new(void)
{
    struct vgpu_dev *dev = calloc(1, sizeof(*dev));

    if (!dev) {
        return NULL;
    }
    dev->link_timeout_ms = DEFAULT_LINK_TIMEOUT_MS;
    spin_setup(dev, 0);
    return dev;
}

static int open_with(const struct vgpu_transport_ops *ops,
                     const struct vgpu_open_opts *opts, struct vgpu_dev **out)
{
    struct vgpu_dev *dev = dev_new();
    int r;

    if (!dev) {
        return -ENOMEM;
    }
    dev->ops = ops;
    if (opts->link_timeout_ms > 0) {
        dev->link_timeout_ms = opts->link_timeout_ms;
    }
    spin_setup(dev, opts->spin_us);
    r = ops->open(dev, opts);
    if (r < 0) {
        free(dev);
        return r;
    }
    r = ops->own_queue ? 0 : select_queue(dev, opts->queue);
    if (r == 0) {
        r = adopt_indexes(dev);
    }
    if (r < 0) {
        ops->close(dev);
        free(dev);
        return r;
    }
    snprintf(dev->info.transport, sizeof(dev->info.transport), "%s", ops->name);
    pthread_mutex_init(&dev->link_lock, NULL);
    dev->refs = 1;
    dev->queues_open = 1ull << dev->queue;
    *out = dev;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* The transport, alone or shared by the handles of several queues        */

static inline struct vgpu_dev *root_of(struct vgpu_dev *dev)
{
    return dev->root ? dev->root : dev;
}

/* More than one handle uses the root's transport. Queue handles are opened
 * while no other handle of the device is in use (libvgpu.h), so a handle
 * alone never races with one being added. */
static inline bool shared(struct vgpu_dev *root)
{
    return __atomic_load_n(&root->refs, __ATOMIC_ACQUIRE) > 1;
}

static int t_kick(struct vgpu_dev *dev, uint32_t sq_tail)
{
    struct vgpu_dev *root = root_of(dev);
    int r;

    if (!shared(root)) {
        return root->ops->kick(root, sq_tail);
    }
    pthread_mutex_lock(&root->link_lock);
    r = root->ops->kick(root, sq_tail);
    pthread_mutex_unlock(&root->link_lock);
    return r;
}

static uint32_t t_link_status(struct vgpu_dev *dev)
{
    struct vgpu_dev *root = root_of(dev);
    uint32_t v;

    if (!shared(root)) {
        return root->ops->link_status(root);
    }
    pthread_mutex_lock(&root->link_lock);
    v = root->ops->link_status(root);
    pthread_mutex_unlock(&root->link_lock);
    return v;
}

/*
 * A shared transport cannot sleep on the link for one handle: whoever reads
 * a NOTIFY would hide it from the others, and a sleep holding the lock would
 * hold up their doorbells. So the transport only drains what has arrived
 * (and notices a lost link or reconnects), and the handle sleeps briefly;
 * the ring core re-checks its CQ after each return.
 */
static int shared_wait(struct vgpu_dev *root, int timeout_ms)
{
    struct timespec ts = { 0, SHARED_POLL_NS };
    int r;

    pthread_mutex_lock(&root->link_lock);
    r = root->ops->wait_event(root, 0);
    pthread_mutex_unlock(&root->link_lock);
    if (r < 0 && r != -ETIMEDOUT) {
        return r;
    }
    if (timeout_ms <= 0) {
        return -ETIMEDOUT;
    }
    nanosleep(&ts, NULL);
    return 0;
}

static int t_wait_event(struct vgpu_dev *dev, int timeout_ms)
{
    struct vgpu_dev *root = root_of(dev);

    if (!shared(root)) {
        return root->ops->wait_event(root, timeout_ms);
    }
    return shared_wait(root, timeout_ms);
}

int vgpu_queue_open(struct vgpu_dev *dev, uint32_t queue, struct vgpu_dev **out)
{
    struct vgpu_dev *root, *q;
    uint64_t bit;
    int r;

    if (!dev || !out) {
        return -EINVAL;
    }
    *out = NULL;
    root = root_of(dev);
    if (root->ops->own_queue) {
        return -EOPNOTSUPP;     /* dev: each open of the device is a queue */
    }
    if (queue >= root->queues) {
        return -EINVAL;
    }
    bit = 1ull << queue;
    if (__atomic_fetch_or(&root->queues_open, bit, __ATOMIC_ACQ_REL) & bit) {
        return -EBUSY;
    }
    q = dev_new();
    if (!q) {
        r = -ENOMEM;
        goto err_bit;
    }
    q->ops = root->ops;
    q->priv = root->priv;
    q->root = root;
    q->shm = root->shm;
    q->shm_size = root->shm_size;
    q->queues = root->queues;
    q->link_timeout_ms = root->link_timeout_ms;
    q->spin_cap_ns = root->spin_cap_ns;
    q->spin_ns = root->spin_ns;
    q->info = root->info;
    r = select_queue(q, queue);
    if (r == 0) {
        r = adopt_indexes(q);
    }
    if (r < 0) {
        free(q);
        goto err_bit;
    }
    __atomic_add_fetch(&root->refs, 1, __ATOMIC_ACQ_REL);
    *out = q;
    return 0;

err_bit:
    __atomic_fetch_and(&root->queues_open, ~bit, __ATOMIC_ACQ_REL);
    return r;
}

int vgpu_open(const struct vgpu_open_opts *opts, struct vgpu_dev **out)
{
    static const struct vgpu_open_opts defaults;
    int r;

    if (!out) {
        return -EINVAL;
    }
    *out = NULL;
    open_detail[0] = '\0';
    if (!opts) {
        opts = &defaults;
    }
    if (opts->link_timeout_ms < 0) {
        return -EINVAL;
    }
    if (opts->transport && strcmp(opts->transport, "sim") == 0) {
        return open_with(&vgpu_transport_sim, opts, out);
    }
    if (opts->transport && strcmp(opts->transport, "pci") == 0) {
        return open_with(&vgpu_transport_pci, opts, out);
    }
    if (opts->transport && strcmp(opts->transport, "dev") == 0) {
        return open_with(&vgpu_transport_dev, opts, out);
    }
    if (opts->transport && strcmp(opts->transport, "ivshmem") == 0) {
        return open_with(&vgpu_transport_ivshmem, opts, out);
    }
    if (opts->transport) {
        return -EINVAL;
    }
    /* Auto: a guest has the device, through vgpu.ko (/dev/vgpuN) or bare
     * (uio); a host process names or has a socket. */
    r = open_with(&vgpu_transport_dev, opts, out);
    if (r != -ENODEV) {
        return r;
    }
    r = open_with(&vgpu_transport_pci, opts, out);
    if (r != -ENODEV) {
        return r;
    }
    /* Stock QEMU: ivshmem-doorbell memory laid out by vgpu-mediator. */
    r = open_with(&vgpu_transport_ivshmem, opts, out);
    if (r != -ENODEV) {
        return r;
    }
    if (opts->socket_path || getenv("VGPU_SOCKET") ||
        access(VGPU_DEFAULT_SOCKET, F_OK) == 0) {
        return open_with(&vgpu_transport_sim, opts, out);
    }
    return -ENODEV;
}

void vgpu_close(struct vgpu_dev *dev)
{
    struct vgpu_dev *root;

    if (!dev) {
        return;
    }
    /* The root's memory and transport live until its last handle closes. */
    root = root_of(dev);
    __atomic_fetch_and(&root->queues_open, ~(1ull << dev->queue), __ATOMIC_ACQ_REL);
    if (dev != root) {
        free(dev);
    }
    if (__atomic_sub_fetch(&root->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        if (root->ops && root->ops->close) {
            root->ops->close(root);
        }
        pthread_mutex_destroy(&root->link_lock);
        free(root);
    }
}

int vgpu_get_info(struct vgpu_dev *dev, struct vgpu_dev_info *out)
{
    if (!dev || !out) {
        return -EINVAL;
    }
    *out = root_of(dev)->info;
    out->shm_size = dev->shm_size;
    out->link_status = t_link_status(dev);
    if (dev->ops->info) {
        struct vgpu_dev *root = root_of(dev);

        if (shared(root)) {
            pthread_mutex_lock(&root->link_lock);
        }
        root->ops->info(root, out);
        if (shared(root)) {
            pthread_mutex_unlock(&root->link_lock);
        }
    }
    out->data_offset = dev->alloc_start;
    out->data_size = dev->alloc_end - dev->alloc_start;
    out->queue = dev->queue;
    out->queues = dev->queues ? dev->queues : 1;
    out->data_end = dev->data_end;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Data area                                                              */

int vgpu_alloc(struct vgpu_dev *dev, uint64_t size, uint64_t align, uint64_t *off)
{
    uint64_t start;

    if (!dev || !off || size == 0) {
        return -EINVAL;
    }
    if (align == 0) {
        align = DEFAULT_ALIGN;
    }
    if ((align & (align - 1)) != 0 || align > MAX_ALIGN) {
        return -EINVAL;
    }
    /* alloc_next <= alloc_end <= shm_size <= 64 GiB, so this cannot wrap. */
    start = (dev->alloc_next + align - 1) & ~(align - 1);
    if (start > dev->alloc_end || size > dev->alloc_end - start) {
        return -ENOMEM;
    }
    dev->alloc_next = start + size;
    *off = start;
    return 0;
}

void vgpu_free_all(struct vgpu_dev *dev)
{
    if (dev) {
        set_window(dev);
    }
}

void *vgpu_ptr(struct vgpu_dev *dev, uint64_t off)
{
    if (!dev || off >= dev->shm_size) {
        return NULL;
    }
    return dev->shm + off;
}

void *vgpu_shm_base(struct vgpu_dev *dev, uint64_t *size)
{
    if (!dev) {
        return NULL;
    }
    if (size) {
        *size = dev->shm_size;
    }
    return dev->shm;
}

/* ---------------------------------------------------------------------- */
/* Rings                                                                  */

int vgpu_submit(struct vgpu_dev *dev, const struct vgpu_sqe *sqe)
{
    uint32_t sq_head, used;

    if (!dev || !sqe) {
        return -EINVAL;
    }
    sq_head = vgpu_load_acquire(&dev->ctrl->sq_head);
    used = vgpu_ring_count(sq_head, dev->sq_tail, VGPU_SQ_ENTRIES);
    if (used == VGPU_RING_CORRUPT) {
        return -EIO;
    }
    /* Every SQE yields one CQE: never have more outstanding than the CQ holds. */
    if (used >= VGPU_SQ_ENTRIES ||
        dev->sq_tail - dev->cq_head >= VGPU_CQ_ENTRIES) {
        return -EAGAIN;
    }
    memcpy(&dev->sq[vgpu_ring_slot(dev->sq_tail, VGPU_SQ_ENTRIES)], sqe, sizeof(*sqe));
    dev->sq_tail++;
    vgpu_store_release(&dev->ctrl->sq_tail, dev->sq_tail);
    return 0;
}

int vgpu_kick(struct vgpu_dev *dev)
{
    if (!dev) {
        return -EINVAL;
    }
    return t_kick(dev, dev->sq_tail);
}

/* Requests of this handle submitted and not yet consumed from the CQ. */
static inline uint32_t outstanding(const struct vgpu_dev *dev)
{
    return dev->sq_tail - dev->cq_head - dev->abandoned;
}

/* 0 with *out filled, -EAGAIN when the CQ is empty, -EIO on a corrupt index. */
static int cq_pop(struct vgpu_dev *dev, struct vgpu_cqe *out)
{
    for (;;) {
        uint32_t tail = vgpu_load_acquire(&dev->ctrl->cq_tail);
        uint32_t n = vgpu_ring_count(dev->cq_head, tail, VGPU_CQ_ENTRIES);

        if (n == VGPU_RING_CORRUPT || n > dev->sq_tail - dev->cq_head) {
            return -EIO;
        }
        if (n == 0) {
            return -EAGAIN;
        }
        memcpy(out, &dev->cq[vgpu_ring_slot(dev->cq_head, VGPU_CQ_ENTRIES)],
               sizeof(*out));
        dev->cq_head++;
        vgpu_store_release(&dev->ctrl->cq_head, dev->cq_head);
        if (!dev->abandoned) {
            return 0;
        }
        dev->abandoned--;
    }
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* After a wait of ns that ended within the spin (hit) or after sleeping. */
static void spin_update(struct vgpu_dev *dev, uint64_t ns, bool hit)
{
    uint64_t cap = dev->spin_cap_ns, target;

    if (!cap) {
        return;
    }
    if (ns > 2 * cap) {
        ns = 2 * cap;   /* one long wait must not dominate the average */
    }
    dev->spin_ewma_ns = dev->spin_ewma_ns ? (3 * dev->spin_ewma_ns + ns) / 4 : ns;
    target = dev->spin_ewma_ns + dev->spin_ewma_ns / 2;
    target = target < cap ? (target > SPIN_NS_MIN ? target : SPIN_NS_MIN) : cap;
    if (hit) {
        dev->spin_ns = (uint32_t)target;
    } else if (ns <= target && cap >= SPIN_REARM_CAP_NS) {
        /* A miss the full budget would have caught: the budget was shrunk
         * by an outlier. Only with long caps (GPU requests, big hosts) is it
         * worth re-arming without a hit; short caps keep the AIMD that was
         * measured on contended 2-core hosts (p99 14 us instead of 60). */
        dev->spin_ns = (uint32_t)(2ull * dev->spin_ns < target ? 2ull * dev->spin_ns : target);
    } else {
        dev->spin_ns = dev->spin_ns / 2 > SPIN_NS_MIN ? dev->spin_ns / 2 : SPIN_NS_MIN;
    }
}

int vgpu_wait(struct vgpu_dev *dev, struct vgpu_cqe *out, int timeout_ms)
{
    uint64_t start, deadline, spin_end, now, down_since = 0;
    int r;

    if (!dev || !out) {
        return -EINVAL;
    }
    r = cq_pop(dev, out);
    if (r != -EAGAIN) {
        return r;
    }
    if (outstanding(dev) == 0) {
        /* Nothing outstanding: no completion of ours can ever come. */
        return -ENOENT;
    }
    start = vgpu_now_ns();
    deadline = timeout_ms < 0 ? UINT64_MAX : start + (uint64_t)timeout_ms * 1000000ull;

    spin_end = start + dev->spin_ns;
    if (spin_end > deadline) {
        spin_end = deadline;
    }
    while (vgpu_now_ns() < spin_end) {
        cpu_relax();
        r = cq_pop(dev, out);
        if (r != -EAGAIN) {
            if (r == 0) {
                spin_update(dev, vgpu_now_ns() - start, true);
            }
            return r;
        }
    }

    for (;;) {
        uint64_t left_ms;

        now = vgpu_now_ns();
        if (!(t_link_status(dev) & VGPU_LINK_UP)) {
            if (!down_since) {
                down_since = now;
            }
            if (now - down_since >= (uint64_t)dev->link_timeout_ms * 1000000ull) {
                return -ENOLINK;
            }
        } else {
            down_since = 0;
        }
        if (now >= deadline) {
            return down_since ? -ENOLINK : -ETIMEDOUT;
        }
        left_ms = deadline == UINT64_MAX ? 1000 : (deadline - now + 999999) / 1000000;
        if (left_ms > 1000) {
            left_ms = 1000; /* re-check the link at least once a second */
        }
        if (down_since) {
            uint64_t link_left = (uint64_t)dev->link_timeout_ms -
                                 (now - down_since) / 1000000;

            if (left_ms > link_left + 1) {
                left_ms = link_left + 1;
            }
        }
        r = t_wait_event(dev, (int)left_ms);
        if (r < 0 && r != -ETIMEDOUT) {
            /* Completions posted before the link died are still valid. */
            int c = cq_pop(dev, out);
            return c == -EAGAIN ? r : c;
        }
        r = cq_pop(dev, out);
        if (r != -EAGAIN) {
            if (r == 0) {
                spin_update(dev, vgpu_now_ns() - start, false);
            }
            return r;
        }
    }
}

int vgpu_call(struct vgpu_dev *dev, const struct vgpu_sqe *sqe, struct vgpu_cqe *out,
              int timeout_ms)
{
    int r;

    if (!dev || !sqe || !out) {
        return -EINVAL;
    }
    /* The next completion must be ours: refuse while others are in flight. */
    if (outstanding(dev) != 0) {
        return -EBUSY;
    }
    r = vgpu_submit(dev, sqe);
    if (r < 0) {
        return r;
    }
    r = vgpu_kick(dev);
    if (r < 0) {
        return r;
    }
    r = vgpu_wait(dev, out, timeout_ms);
    if (r < 0) {
        return r;
    }
    if (out->user_data != sqe->user_data || out->tag != sqe->tag) {
        return -EPROTO;
    }
    return 0;
}

const char *vgpu_strerror(int err)
{
    if (err > 0) {
        err = -err;
    }
    switch (err) {
    case -ENODEV:
        return VGPU_ENODEV_TEXT;
    case -ENOLINK:
        return "mediator not connected (link down)";
    case -ETIMEDOUT:
        return "timed out waiting for a completion";
    case -EPROTONOSUPPORT:
        return "version mismatch between library and device or mediator";
    case -EPROTO:
        return "protocol error (unexpected or malformed message)";
    case -EBADFD:
        return "mediator did not get a usable shared-memory fd";
    case -EMEDIUMTYPE:
        return "mediator rejected the shared memory (size or seals)";
    case -EUSERS:
        return "mediator has too many sessions";
    case -EADDRINUSE:
        return "mediator rejected the identity (vm id in use, or bad priority/weight)";
    case -ECONNREFUSED:
        return "mediator not running (connection refused)";
    case -EIO:
        return "shared-memory ring indexes corrupt";
    case -EBUSY:
        return "busy (device used by another process, or requests in flight)";
    case -EAGAIN:
        return "ring full";
    default:
        return strerror(-err);
    }
}

/* ---------------------------------------------------------------------- */
/* "mem" transport: caller-owned memory and no peer, for unit tests.      */

static int mem_open(struct vgpu_dev *dev, const struct vgpu_open_opts *opts)
{
    (void)dev;
    (void)opts;
    return 0;
}

static void mem_close(struct vgpu_dev *dev)
{
    (void)dev;
}

static int mem_kick(struct vgpu_dev *dev, uint32_t sq_tail)
{
    (void)dev;
    (void)sq_tail;
    return 0;
}

static int mem_wait_event(struct vgpu_dev *dev, int timeout_ms)
{
    struct timespec ts = { 0, 1000000 };

    (void)dev;
    if (timeout_ms <= 0) {
        return -ETIMEDOUT;
    }
    nanosleep(&ts, NULL);
    return 0;
}

static uint32_t mem_link_status(struct vgpu_dev *dev)
{
    (void)dev;
    return VGPU_LINK_UP;
}

const struct vgpu_transport_ops vgpu_transport_mem = {
    .name        = "mem",
    .open        = mem_open,
    .close       = mem_close,
    .kick        = mem_kick,
    .wait_event  = mem_wait_event,
    .link_status = mem_link_status,
};

int vgpu_open_mem(void *shm, uint64_t size, struct vgpu_dev **out)
{
    struct vgpu_dev *dev;

    if (!shm || !out || size < VGPU_SHM_MIN_SIZE || size > VGPU_SHM_MAX_SIZE) {
        return -EINVAL;
    }
    dev = dev_new();
    if (!dev) {
        return -ENOMEM;
    }
    dev->ops = &vgpu_transport_mem;
    memset(shm, 0, sizeof(struct vgpu_shm_ctrl));
    vgpu_dev_attach_shm(dev, shm, size);
    snprintf(dev->info.transport, sizeof(dev->info.transport), "mem");
    dev->queues = 1;
    pthread_mutex_init(&dev->link_lock, NULL);
    dev->refs = 1;
    dev->queues_open = 1;
    *out = dev;
    return 0;
}
