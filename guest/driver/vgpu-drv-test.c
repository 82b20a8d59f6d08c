/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-drv-test: the guest driver's end-to-end checks, run inside a guest by
 * the e2e tests (tests/e2e/driver-*.sh through guest/run/drv-*). Linked
 * dynamically on purpose: it also proves that the image's loader and shared
 * C runtime work for an ordinary program.
 *
 *   loop COUNT N [SECONDS]
 *                     one queue (one open), COUNT vector_adds of N floats
 *                     (and more until SECONDS have passed), every element
 *                     checked, fresh inputs each time
 *   busy COUNT DIM [after-down]
 *                     submits COUNT SGEMMs DIM^3 (long on the cpu backend;
 *                     after-down: once the link is down), says "busy:
 *                     submitted", then sleeps: to be SIGKILLed with
 *                     requests in flight
 *   clean SECONDS     checks that the queue it got is clean (empty rings at
 *                     one index, zeroed SQ/CQ slots and window, a NOP whose
 *                     completion is its own), then holds it SECONDS
 *   open              opens /dev/vgpu0 and prints the errno name (EACCES ...)
 *   hostile           bad ioctls and reads are refused; then leaves its
 *                     queue's ring corrupt and exits (the driver reclaims it)
 *   mmap              mmap of anything but the queue region and the window
 *                     fails (beyond the window, another queue, the queue
 *                     table, MAP_PRIVATE, PROT_EXEC, huge offsets)
 *   nop COUNT         NOP round trips, p50/p99 in us (bench)
 *   nop-rate SECONDS  NOPs back to back, their count (bench)
 *   syscall-cost COUNT  what getppid() and the driver's ioctls cost (bench)
 *   kick-cost COUNT   what one vgpu_kick() costs on the transport in use
 *   rawnop COUNT      NOPs on the raw driver interface, spinning (bench)
 *
 * Each prints one summary line "drv-<cmd>: ... ok" or "... FAIL: why"
 * (exit status 0 or 1).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vgpu/abi.h"
#include "vgpu/driver.h"
#include "vgpu/libvgpu.h"
#include "vgpu/ring.h"

#define TIMEOUT_MS 60000

static const char *cmd = "?";

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;

    printf("drv-%s: pid %d FAIL: ", cmd, (int)getpid());
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return 1;
}

static struct vgpu_dev *open_dev(struct vgpu_dev_info *info)
{
    /* $VGPU_DRV_TEST_IRQ=1: the pci transport sleeps on /dev/uioN (bench). */
    const char *irq = getenv("VGPU_DRV_TEST_IRQ");
    struct vgpu_open_opts o = { .link_timeout_ms = TIMEOUT_MS, .use_irq = irq && *irq == '1' };
    struct vgpu_dev *dev;
    int r;

    r = vgpu_open(&o, &dev);
    if (r < 0) {
        fail("vgpu_open: %s (%s)", vgpu_strerror(r), vgpu_open_detail());
        return NULL;
    }
    if (vgpu_get_info(dev, info) < 0) {
        fail("vgpu_get_info");
        vgpu_close(dev);
        return NULL;
    }
    return dev;
}

/* COUNT iterations, and more until SECONDS have passed (0: just COUNT). */
static int cmd_loop(int count, uint64_t n, int seconds)
{
    time_t end = time(NULL) + seconds;
    struct vgpu_dev_info info;
    struct vgpu_dev *dev = open_dev(&info);
    uint64_t a, b, out;
    int i;

    if (!dev) {
        return 1;
    }
    if (vgpu_alloc(dev, n * 4, 64, &a) < 0 || vgpu_alloc(dev, n * 4, 64, &b) < 0 ||
        vgpu_alloc(dev, n * 4, 64, &out) < 0) {
        return fail("%" PRIu64 " floats x3 do not fit the window (%" PRIu64 " bytes)", n,
                    info.data_size);
    }
    for (i = 0; i < count || (seconds > 0 && time(NULL) < end); i++) {
        float *pa = vgpu_ptr(dev, a), *pb = vgpu_ptr(dev, b), *po = vgpu_ptr(dev, out);
        struct vgpu_sqe s = { .opcode = VGPU_OP_VECTOR_ADD, .tag = (uint32_t)i,
                              .user_data = ((uint64_t)getpid() << 32) | (uint32_t)i };
        struct vgpu_cqe c;
        uint64_t k;
        int r;

        for (k = 0; k < n; k++) {
            /* Exact in float32: small multiples of 1/4, different per pid. */
            pa[k] = (float)((k + (uint64_t)getpid()) % 1024) * 0.25f;
            pb[k] = (float)((k * 3 + (uint64_t)i) % 512) * 0.5f;
            po[k] = -1.0f;
        }
        s.args.vector_add.a_off = a;
        s.args.vector_add.b_off = b;
        s.args.vector_add.out_off = out;
        s.args.vector_add.n = n;
        r = vgpu_call(dev, &s, &c, TIMEOUT_MS);
        if (r < 0) {
            return fail("queue %u iteration %d: %s", info.queue, i, vgpu_strerror(r));
        }
        if (c.status != VGPU_S_OK) {
            return fail("queue %u iteration %d: status %s", info.queue, i,
                        vgpu_status_name(c.status));
        }
        for (k = 0; k < n; k++) {
            if (po[k] != pa[k] + pb[k]) {
                return fail("queue %u iteration %d: out[%" PRIu64 "] = %g, expected %g",
                            info.queue, i, k, po[k], pa[k] + pb[k]);
            }
        }
    }
    printf("drv-loop: pid %d queue %u (%s, window %" PRIu64 " KiB at %#" PRIx64 "): "
           "%d vector_adds of %" PRIu64 " floats checked ok\n", (int)getpid(), info.queue,
           info.transport, info.data_size >> 10, info.data_offset, i, n);
    vgpu_close(dev);
    return 0;
}

/* COUNT SGEMMs DIM^3, submitted at once (after the link went down if
 * after_down), then sleeps until killed. */
static int cmd_busy(int count, uint32_t dim, bool after_down)
{
    struct vgpu_dev_info info;
    struct vgpu_dev *dev = open_dev(&info);
    uint64_t bytes = (uint64_t)dim * dim * 4, a, b, c;
    int i, r;

    if (!dev) {
        return 1;
    }
    if (vgpu_alloc(dev, bytes, 64, &a) < 0 || vgpu_alloc(dev, bytes, 64, &b) < 0 ||
        vgpu_alloc(dev, bytes, 64, &c) < 0) {
        return fail("3 x %u^2 floats do not fit the window", dim);
    }
    memset(vgpu_ptr(dev, a), 0, bytes);
    memset(vgpu_ptr(dev, b), 0, bytes);
    if (after_down) {
        printf("drv-busy: pid %d queue %u: waiting for the link to go down\n", (int)getpid(),
               info.queue);
        while (vgpu_get_info(dev, &info) == 0 && (info.link_status & VGPU_LINK_UP)) {
            usleep(50000);
        }
    }
    for (i = 0; i < count; i++) {
        struct vgpu_sqe s = { .opcode = VGPU_OP_SGEMM, .tag = (uint32_t)i };

        s.args.sgemm.a_off = a;
        s.args.sgemm.b_off = b;
        s.args.sgemm.c_off = c;
        s.args.sgemm.m = s.args.sgemm.n = s.args.sgemm.k = dim;
        s.args.sgemm.alpha = 1.0f;
        s.args.sgemm.beta = 0.0f;
        r = vgpu_submit(dev, &s);
        if (r < 0) {
            return fail("submit %d: %s", i, vgpu_strerror(r));
        }
    }
    r = vgpu_kick(dev);
    if (r < 0) {
        return fail("kick: %s", vgpu_strerror(r));
    }
    printf("drv-busy: pid %d queue %u: submitted %d sgemm %u^3\n", (int)getpid(), info.queue,
           count, dim);
    fflush(stdout);
    for (;;) {
        pause();
    }
}

static bool all_zero(const uint8_t *p, uint64_t len)
{
    uint64_t i;

    for (i = 0; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

static int cmd_clean(int hold)
{
    struct vgpu_dev_info info;
    struct vgpu_dev *dev = open_dev(&info);
    struct vgpu_shm_ctrl *ctrl;
    struct vgpu_sqe s = { .opcode = VGPU_OP_NOP, .tag = 77 };
    struct vgpu_cqe c;
    uint64_t size, qoff;
    uint8_t *base;
    uint32_t st, sh, ct, ch;
    int r;

    if (!dev) {
        return 1;
    }
    base = vgpu_shm_base(dev, &size);
    qoff = VGPU_SHM_QUEUE_OFFSET(size, info.queue);
    if (info.queue == 0) {
        qoff = 0;
    }
    ctrl = vgpu_shm_ctrl(base + qoff);
    st = vgpu_load_acquire(&ctrl->sq_tail);
    sh = vgpu_load_acquire(&ctrl->sq_head);
    ct = vgpu_load_acquire(&ctrl->cq_tail);
    ch = vgpu_load_acquire(&ctrl->cq_head);
    if (st != sh || sh != ct || ct != ch) {
        return fail("queue %u: indexes sq_tail %u sq_head %u cq_tail %u cq_head %u", info.queue,
                    st, sh, ct, ch);
    }
    if (!all_zero(base + qoff + VGPU_SHM_SQ_OFFSET, VGPU_SHM_QUEUE_SIZE - VGPU_SHM_SQ_OFFSET)) {
        return fail("queue %u: SQ/CQ slots not cleared", info.queue);
    }
    if (!all_zero(base + info.data_offset, info.data_size)) {
        return fail("queue %u: window not cleared", info.queue);
    }
    s.user_data = ((uint64_t)getpid() << 32) | 0xc1ea;
    r = vgpu_call(dev, &s, &c, TIMEOUT_MS);
    if (r < 0 || c.status != VGPU_S_OK) {
        return fail("queue %u: NOP: %s / %s", info.queue, r < 0 ? vgpu_strerror(r) : "ok",
                    vgpu_status_name(c.status));
    }
    printf("drv-clean: pid %d queue %u: rings empty at index %u, slots and %" PRIu64
           " KiB window zero, own NOP completion ok\n", (int)getpid(), info.queue, st,
           info.data_size >> 10);
    fflush(stdout);
    sleep((unsigned)hold);
    vgpu_close(dev);
    return 0;
}

static int cmd_open(void)
{
    int fd = open("/dev/vgpu0", O_RDWR | O_CLOEXEC);

    if (fd >= 0) {
        printf("drv-open: pid %d uid %d: opened\n", (int)getpid(), (int)getuid());
        close(fd);
        return 0;
    }
    printf("drv-open: pid %d uid %d: %s (%s)\n", (int)getpid(), (int)getuid(),
           errno == EACCES ? "EACCES" : errno == EBUSY ? "EBUSY" : "other", strerror(errno));
    return 1;
}

/* One mmap attempt: want_ok says whether it must succeed. */
static int try_map(int fd, const char *what, uint64_t off, uint64_t len, int prot, int flags,
                   bool want_ok)
{
    void *p = mmap(NULL, len, prot, flags, fd, (off_t)off);
    int e = errno;

    if (p != MAP_FAILED) {
        munmap(p, len);
    }
    if ((p != MAP_FAILED) != want_ok) {
        printf("drv-mmap: %s (off %#" PRIx64 " len %#" PRIx64 "): %s, expected %s\n", what, off,
               len, p != MAP_FAILED ? "mapped" : strerror(e), want_ok ? "mapped" : "failure");
        return 1;
    }
    return 0;
}

static int cmd_mmap(void)
{
    int fd = open("/dev/vgpu0", O_RDWR | O_CLOEXEC);
    const int rw = PROT_READ | PROT_WRITE;
    uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
    struct vgpu_drv_info di;
    int bad = 0, n = 0;

    if (fd < 0) {
        return fail("open /dev/vgpu0: %s", strerror(errno));
    }
    if (ioctl(fd, VGPU_IOCTL_INFO, &di) < 0) {
        return fail("VGPU_IOCTL_INFO: %s", strerror(errno));
    }
#define T(what, off, len, prot, flags, ok) \
    (n++, bad += try_map(fd, what, off, len, prot, flags, ok))
    T("queue region", di.queue_off, di.queue_len, rw, MAP_SHARED, true);
    T("window", di.win_off, di.win_len, rw, MAP_SHARED, true);
    T("last window page", di.win_off + di.win_len - pg, pg, rw, MAP_SHARED, true);
    T("window + 1 page", di.win_off, di.win_len + pg, rw, MAP_SHARED, false);
    T("page after the window", di.win_off + di.win_len, pg, rw, MAP_SHARED, false);
    T("page before the window", di.win_off - pg, pg, rw, MAP_SHARED, false);
    T("queue region + 1 page", di.queue_off, di.queue_len + pg, rw, MAP_SHARED, false);
    T("queue 0 / queue table", 0, pg, rw, MAP_SHARED, false);
    T("the whole BAR2", 0, di.shm_size, rw, MAP_SHARED, false);
    if (di.queues > 1) {
        uint32_t other = di.queue == 1 ? 2 : 1;

        if (other < di.queues) {
            T("another queue's region", VGPU_SHM_QUEUE_OFFSET(di.shm_size, other),
              di.queue_len, rw, MAP_SHARED, false);
        }
    }
    T("MAP_PRIVATE window", di.win_off, pg, rw, MAP_PRIVATE, false);
    T("PROT_EXEC window", di.win_off, pg, rw | PROT_EXEC, MAP_SHARED, false);
    T("offset past BAR2", di.shm_size, pg, rw, MAP_SHARED, false);
    T("huge offset", ~(uint64_t)0 & ~(pg - 1), pg, rw, MAP_SHARED, false);
#undef T
    close(fd);
    if (bad) {
        return fail("%d of %d mmap checks wrong", bad, n);
    }
    printf("drv-mmap: queue %u window %#" PRIx64 "+%#" PRIx64 ": %d mmap checks ok "
           "(only the queue region and the window map)\n", di.queue, (uint64_t)di.win_off,
           (uint64_t)di.win_len, n);
    return 0;
}

/*
 * A buggy or hostile process: bad ioctls and reads (refused), then it
 * leaves its queue's ring corrupt (cq_head and sq_tail far off, garbage
 * entries) and exits without cleaning up. The driver must reclaim the queue
 * (tests/e2e/driver.sh checks it comes back clean).
 */
static int cmd_hostile(void)
{
    struct vgpu_dev_info info;
    struct vgpu_dev *dev;
    struct vgpu_shm_ctrl *ctrl;
    struct vgpu_drv_info di;
    uint64_t size, qoff;
    uint8_t *base;
    char small[2];
    int fd, bad = 0, i;

    fd = open("/dev/vgpu0", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return fail("open /dev/vgpu0: %s", strerror(errno));
    }
    bad += !(ioctl(fd, _IO(VGPU_IOC_MAGIC, 99)) < 0 && errno == ENOTTY);
    bad += !(ioctl(fd, 0x1234) < 0 && errno == ENOTTY);
    bad += !(ioctl(fd, VGPU_IOCTL_INFO, (void *)16) < 0 && errno == EFAULT);
    bad += !(ioctl(fd, VGPU_IOCTL_INFO, &di) == 0);
    bad += !(read(fd, small, sizeof(small)) < 0 && errno == EINVAL);
    bad += !(lseek(fd, 4096, SEEK_SET) < 0);
    close(fd);
    if (bad) {
        return fail("%d bad-argument checks wrong", bad);
    }

    dev = open_dev(&info);
    if (!dev) {
        return 1;
    }
    base = vgpu_shm_base(dev, &size);
    qoff = info.queue ? VGPU_SHM_QUEUE_OFFSET(size, info.queue) : 0;
    ctrl = vgpu_shm_ctrl(base + qoff);
    for (i = 0; i < 16; i++) {
        memset(vgpu_shm_sq(base + qoff) + i, 0xa5, sizeof(struct vgpu_sqe));
    }
    vgpu_store_release(&ctrl->cq_head, vgpu_load_acquire(&ctrl->cq_head) + 77777);
    vgpu_store_release(&ctrl->sq_tail, vgpu_load_acquire(&ctrl->sq_tail) + 100000);
    for (i = 0; i < 100; i++) {
        vgpu_kick(dev);
    }
    printf("drv-hostile: pid %d queue %u: 6 bad ioctl/read/lseek calls refused; ring left "
           "corrupt (sq_tail +100000, cq_head +77777, garbage entries); exiting\n",
           (int)getpid(), info.queue);
    _exit(0);  /* no vgpu_close(): the kernel closes the fd */
}

static int cmp_u64(const void *a, const void *b);

/*
 * NOP round trips on the raw driver interface, spinning on cq_tail with no
 * library in between: what the ioctl doorbell and the device path cost.
 */
static int cmd_rawnop(int count)
{
    int fd = open("/dev/vgpu0", O_RDWR | O_CLOEXEC);
    struct vgpu_drv_info di;
    struct vgpu_shm_ctrl *ctrl;
    struct vgpu_sqe *sq;
    uint64_t *ns;
    uint32_t tail, head;
    uint8_t *q;
    int i;

    const bool raw_pause = getenv("VGPU_RAW_PAUSE") != NULL;
    const bool raw_clock = getenv("VGPU_RAW_CLOCK") != NULL;

    if (fd < 0 || ioctl(fd, VGPU_IOCTL_INFO, &di) < 0) {
        return fail("open/info: %s", strerror(errno));
    }
    q = mmap(NULL, di.queue_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)di.queue_off);
    ns = calloc((size_t)count, sizeof(*ns));
    if (q == MAP_FAILED || !ns) {
        return fail("mmap: %s", strerror(errno));
    }
    ctrl = vgpu_shm_ctrl(q);
    sq = vgpu_shm_sq(q);
    tail = vgpu_load_acquire(&ctrl->sq_tail);
    head = vgpu_load_acquire(&ctrl->cq_head);
    for (i = 0; i < count; i++) {
        struct timespec t0, t1;
        uint64_t spins = 0;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        memset(&sq[vgpu_ring_slot(tail, VGPU_SQ_ENTRIES)], 0, sizeof(*sq));
        tail++;
        vgpu_store_release(&ctrl->sq_tail, tail);
        if (ioctl(fd, VGPU_IOCTL_KICK) < 0) {
            return fail("kick: %s", strerror(errno));
        }
        while (vgpu_load_acquire(&ctrl->cq_tail) == head) {
            if (++spins > 2000000000ull) {
                return fail("no completion");
            }
            if (raw_pause) {
                __builtin_ia32_pause();
            }
            if (raw_clock) {
                struct timespec tn;

                clock_gettime(CLOCK_MONOTONIC, &tn);
            }
        }
        head++;
        vgpu_store_release(&ctrl->cq_head, head);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ns[i] = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull +
                (uint64_t)(t1.tv_nsec - t0.tv_nsec);
    }
    qsort(ns, (size_t)count, sizeof(*ns), cmp_u64);
    printf("drv-rawnop: queue %u: %d NOPs, spinning, p50 %.1f us p99 %.1f us\n", di.queue, count,
           ns[count / 2] / 1e3, ns[(count * 99) / 100] / 1e3);
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int cmd_nop(int count)
{
    struct vgpu_dev_info info;
    struct vgpu_dev *dev = open_dev(&info);
    uint64_t *ns;
    int i;

    if (!dev) {
        return 1;
    }
    ns = calloc((size_t)count, sizeof(*ns));
    if (!ns) {
        return fail("out of memory");
    }
    for (i = 0; i < count; i++) {
        struct vgpu_sqe s = { .opcode = VGPU_OP_NOP, .tag = (uint32_t)i };
        struct vgpu_cqe c;
        struct timespec t0, t1;
        int r;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = vgpu_call(dev, &s, &c, TIMEOUT_MS);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (r < 0 || c.status != VGPU_S_OK) {
            return fail("nop %d: %s", i, r < 0 ? vgpu_strerror(r) : vgpu_status_name(c.status));
        }
        ns[i] = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull +
                (uint64_t)(t1.tv_nsec - t0.tv_nsec);
    }
    qsort(ns, (size_t)count, sizeof(*ns), cmp_u64);
    printf("drv-nop: %s queue %u: %d NOPs p50 %.1f us p99 %.1f us\n", info.transport,
           info.queue, count, ns[count / 2] / 1e3, ns[(count * 99) / 100] / 1e3);
    free(ns);
    vgpu_close(dev);
    return 0;
}

/* NOPs back to back for SECONDS; prints the count (aggregate rate bench). */
static int cmd_nop_rate(int seconds)
{
    struct vgpu_dev_info info;
    struct vgpu_dev *dev = open_dev(&info);
    struct timespec t0, t;
    uint64_t count = 0;
    double el;

    if (!dev) {
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        struct vgpu_sqe s = { .opcode = VGPU_OP_NOP, .tag = (uint32_t)count };
        struct vgpu_cqe c;
        int r = vgpu_call(dev, &s, &c, TIMEOUT_MS);

        if (r < 0 || c.status != VGPU_S_OK) {
            return fail("nop %" PRIu64 ": %s", count,
                        r < 0 ? vgpu_strerror(r) : vgpu_status_name(c.status));
        }
        count++;
        clock_gettime(CLOCK_MONOTONIC, &t);
        el = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
    } while (el < seconds);
    printf("drv-nop-rate: %s queue %u: %" PRIu64 " NOPs in %.2f s\n", info.transport, info.queue,
           count, el);
    vgpu_close(dev);
    return 0;
}

static double per_call_us(struct timespec t0, struct timespec t1, int count)
{
    return ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / 1e3 /
           count;
}

/* What a system call and the doorbell ioctl cost here (bench context). */
static int cmd_syscall_cost(int count)
{
    int fd = open("/dev/vgpu0", O_RDWR | O_CLOEXEC);
    struct timespec t0, t1;
    double sys_us, link_us, kick_us;
    int i;

    if (fd < 0) {
        return fail("open /dev/vgpu0: %s", strerror(errno));
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < count; i++) {
        (void)getppid();
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sys_us = per_call_us(t0, t1, count);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < count; i++) {
        (void)ioctl(fd, VGPU_IOCTL_LINK);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    link_us = per_call_us(t0, t1, count);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < count; i++) {
        (void)ioctl(fd, VGPU_IOCTL_KICK);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    kick_us = per_call_us(t0, t1, count);
    close(fd);
    printf("drv-syscall-cost: getppid %.2f us, VGPU_IOCTL_LINK %.2f us, VGPU_IOCTL_KICK %.2f us"
           " (%d each)\n", sys_us, link_us, kick_us, count);
    return 0;
}

/* What one doorbell costs through the transport in use (bench context). */
static int cmd_kick_cost(int count)
{
    struct vgpu_dev_info info;
    struct vgpu_dev *dev = open_dev(&info);
    struct timespec t0, t1;
    int i, r;

    if (!dev) {
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (i = 0; i < count; i++) {
        r = vgpu_kick(dev);
        if (r < 0) {
            return fail("kick: %s", vgpu_strerror(r));
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("drv-kick-cost: %s queue %u: %.2f us per doorbell (%d)\n", info.transport, info.queue,
           per_call_us(t0, t1, count), count);
    vgpu_close(dev);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: vgpu-drv-test loop COUNT N [SECONDS] | busy COUNT DIM [after-down] | clean SECONDS |"
                " open | mmap | hostile | nop COUNT | nop-rate SECONDS | syscall-cost COUNT |"
                " kick-cost COUNT | rawnop COUNT\n");
        return 2;
    }
    cmd = argv[1];
    if (!strcmp(cmd, "loop") && (argc == 4 || argc == 5)) {
        return cmd_loop(atoi(argv[2]), strtoull(argv[3], NULL, 0), argc == 5 ? atoi(argv[4]) : 0);
    }
    if (!strcmp(cmd, "busy") && (argc == 4 || (argc == 5 && !strcmp(argv[4], "after-down")))) {
        return cmd_busy(atoi(argv[2]), (uint32_t)atoi(argv[3]), argc == 5);
    }
    if (!strcmp(cmd, "clean") && argc == 3) {
        return cmd_clean(atoi(argv[2]));
    }
    if (!strcmp(cmd, "open") && argc == 2) {
        return cmd_open();
    }
    if (!strcmp(cmd, "hostile") && argc == 2) {
        return cmd_hostile();
    }
    if (!strcmp(cmd, "mmap") && argc == 2) {
        return cmd_mmap();
    }
    if (!strcmp(cmd, "nop") && argc == 3 && atoi(argv[2]) > 0) {
        return cmd_nop(atoi(argv[2]));
    }
    if (!strcmp(cmd, "rawnop") && argc == 3 && atoi(argv[2]) > 0) {
        return cmd_rawnop(atoi(argv[2]));
    }
    if (!strcmp(cmd, "kick-cost") && argc == 3 && atoi(argv[2]) > 0) {
        return cmd_kick_cost(atoi(argv[2]));
    }
    if (!strcmp(cmd, "syscall-cost") && argc == 3 && atoi(argv[2]) > 0) {
        return cmd_syscall_cost(atoi(argv[2]));
    }
    if (!strcmp(cmd, "nop-rate") && argc == 3 && atoi(argv[2]) > 0) {
        return cmd_nop_rate(atoi(argv[2]));
    }
    fprintf(stderr, "vgpu-drv-test: bad command\n");
    return 2;
}
