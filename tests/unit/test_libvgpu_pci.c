/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Unit tests of libvgpu's pci transport against a fake sysfs tree
 * (VGPU_PCI_SYSFS): BAR resource files are plain files, which mmap like the
 * real ones. A thread plays the device and the mediator: it watches the
 * rings in "BAR2" and completes requests. Covers discovery (ids, class, the
 * refused NVIDIA vendor), the magic/version checks and their messages, the
 * link-down timeout, the doorbell register and a polled round trip.
 * Interrupts (/dev/uioN) need a real device: see tests/e2e.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_sysfs.h"

#include "vgpu/libvgpu.h"
#include "vgpu/ring.h"

#define SHM_SIZE (2u << 20)
#define ADDR     "0000:00:04.0"

struct fake {
    char root[64];
    volatile uint32_t *regs;
    uint8_t *shm;
    pthread_t thread;
    int stop;
};

static void add_device(struct fake *f, const char *addr, const char *vendor,
                       const char *device, const char *class)
{
    char dir[128];

    snprintf(dir, sizeof(dir), "%s/%s", f->root, addr);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_file(dir, "vendor", vendor);
    write_file(dir, "device", device);
    write_file(dir, "class", class);
    write_file(dir, "enable", "0\n");
}

static void reg_name(volatile uint32_t *regs, uint32_t off, const char *name)
{
    char buf[VGPU_REG_NAME_LEN] = { 0 };
    uint32_t i, v;

    strncpy(buf, name, sizeof(buf) - 1);
    for (i = 0; i < VGPU_REG_NAME_LEN; i += 4) {
        memcpy(&v, buf + i, 4);
        regs[(off + i) / 4] = v;
    }
}

/* The device + mediator: completes every request with status OK. */
static void *device_main(void *arg)
{
    struct fake *f = arg;
    struct vgpu_shm_ctrl *ctrl = vgpu_shm_ctrl(f->shm);
    struct timespec ts = { 0, 20000 };

    while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
        uint32_t head = ctrl->sq_head;

        if (vgpu_load_acquire(&ctrl->sq_tail) != head) {
            const struct vgpu_sqe *s = &vgpu_shm_sq(f->shm)[vgpu_ring_slot(head, VGPU_SQ_ENTRIES)];
            struct vgpu_cqe *c = &vgpu_shm_cq(f->shm)[vgpu_ring_slot(ctrl->cq_tail,
                                                                     VGPU_CQ_ENTRIES)];

            memset(c, 0, sizeof(*c));
            c->user_data = s->user_data;
            c->tag = s->tag;
            c->status = s->opcode == VGPU_OP_NOP ? VGPU_S_OK : VGPU_S_UNKNOWN_OP;
            c->result = 42;
            vgpu_store_release(&ctrl->cq_tail, ctrl->cq_tail + 1);
            vgpu_store_release(&ctrl->sq_head, head + 1);
            continue;
        }
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static int setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    char dir[128];

    assert_non_null(f);
    snprintf(f->root, sizeof(f->root), "/tmp/vgpu-fake-sysfs.XXXXXX");
    assert_non_null(mkdtemp(f->root));
    /* NVIDIA devices: one VGA, one pretending to be class ff. Never taken. */
    add_device(f, "0000:00:02.0", "0x10de\n", "0x2330\n", "0x030200\n");
    add_device(f, "0000:00:03.0", "0x10de\n", "0x10f0\n", "0xff0000\n");
    add_device(f, ADDR, "0x1b36\n", "0x10f0\n", "0xff0000\n");
    snprintf(dir, sizeof(dir), "%s/%s", f->root, ADDR);
    f->regs = map_file(dir, "resource0", VGPU_REGS_SIZE);
    f->shm = map_file(dir, "resource2", SHM_SIZE);
    f->regs[VGPU_REG_MAGIC / 4] = VGPU_MAGIC;
    f->regs[VGPU_REG_VERSION / 4] = VGPU_ABI_VERSION;
    f->regs[VGPU_REG_LINK_STATUS / 4] = VGPU_LINK_UP;
    f->regs[VGPU_REG_VM_ID / 4] = 7;
    f->regs[VGPU_REG_PRIORITY / 4] = 1;
    f->regs[VGPU_REG_WEIGHT / 4] = 3;
    f->regs[VGPU_REG_SESSION_ID / 4] = 99;
    f->regs[VGPU_REG_SHM_SIZE_LO / 4] = SHM_SIZE;
    f->regs[VGPU_REG_SQ_ENTRIES / 4] = VGPU_SQ_ENTRIES;
    f->regs[VGPU_REG_CQ_ENTRIES / 4] = VGPU_CQ_ENTRIES;
    f->regs[VGPU_REG_DATA_OFFSET / 4] = VGPU_SHM_DATA_OFFSET;
    f->regs[VGPU_REG_MAX_INFLIGHT / 4] = 32;
    f->regs[VGPU_REG_BACKEND / 4] = VGPU_BACKEND_CPU;
    reg_name(f->regs, VGPU_REG_VM_NAME, "guest-seven");
    reg_name(f->regs, VGPU_REG_GPU_NAME, "cpu: fake");
    setenv("VGPU_PCI_SYSFS", f->root, 1);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fake *f = *state;
    char cmd[128];

    if (f->thread) {
        __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
        pthread_join(f->thread, NULL);
    }
    munmap((void *)f->regs, VGPU_REGS_SIZE);
    munmap(f->shm, SHM_SIZE);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    assert_int_equal(system(cmd), 0);
    unsetenv("VGPU_PCI_SYSFS");
    free(f);
    return 0;
}

static int open_pci(const char *addr, int link_timeout_ms, struct vgpu_dev **dev)
{
    struct vgpu_open_opts o;

    memset(&o, 0, sizeof(o));
    o.transport = "pci";
    o.pci_addr = addr;
    o.link_timeout_ms = link_timeout_ms;
    return vgpu_open(&o, dev);
}

static void test_discovery_and_identity(void **state)
{
    struct fake *f = *state;
    struct vgpu_dev_info info;
    struct vgpu_dev *dev, *dev2;
    char path[128], buf[8] = { 0 };
    FILE *fp;

    assert_int_equal(open_pci(NULL, 100, &dev), 0);
    assert_int_equal(vgpu_get_info(dev, &info), 0);
    assert_string_equal(info.transport, "pci");
    assert_string_equal(info.location, ADDR);
    assert_int_equal(info.vm_id, 7);
    assert_int_equal(info.priority, 1);
    assert_int_equal(info.weight, 3);
    assert_int_equal(info.session_id, 99);
    assert_int_equal(info.max_inflight, 32);
    assert_int_equal(info.backend, VGPU_BACKEND_CPU);
    assert_int_equal(info.shm_size, SHM_SIZE);
    assert_string_equal(info.vm_name, "guest-seven");
    assert_string_equal(info.gpu_name, "cpu: fake");
    assert_true(info.link_status & VGPU_LINK_UP);
    /* Polling mode masks the device's interrupts. */
    assert_int_equal(f->regs[VGPU_REG_IRQ_MASK / 4], VGPU_IRQ_COMPLETION | VGPU_IRQ_LINK);
    vgpu_close(dev);

    snprintf(path, sizeof(path), "%s/%s/enable", f->root, ADDR);
    fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(buf, sizeof(buf), fp));
    fclose(fp);
    assert_int_equal(buf[0], '1');

    /* One handle per device: its ring indexes have one owner. */
    assert_int_equal(open_pci(NULL, 100, &dev), 0);
    assert_int_equal(open_pci(NULL, 100, &dev2), -EBUSY);
    assert_non_null(strstr(vgpu_open_detail(), "in use"));
    vgpu_close(dev);
    assert_int_equal(open_pci(NULL, 100, &dev2), 0);
    vgpu_close(dev2);

    /* Named explicitly: fine for ours, refused for NVIDIA's, even class ff. */
    assert_int_equal(open_pci(ADDR, 100, &dev), 0);
    vgpu_close(dev);
    assert_int_equal(open_pci("0000:00:03.0", 100, &dev), -ENODEV);
    assert_non_null(strstr(vgpu_open_detail(), "10de"));
    assert_int_equal(open_pci("0000:00:09.0", 100, &dev), -ENODEV);
}

static void test_no_device(void **state)
{
    struct vgpu_dev *dev;

    (void)state;
    setenv("VGPU_PCI_SYSFS", "/nonexistent", 1);
    assert_int_equal(open_pci(NULL, 100, &dev), -ENODEV);
    assert_null(dev);
}

static void test_bad_magic_and_version(void **state)
{
    struct fake *f = *state;
    struct vgpu_dev *dev;

    f->regs[VGPU_REG_MAGIC / 4] = 0xffffffff;
    assert_int_equal(open_pci(NULL, 100, &dev), -ENXIO);
    assert_non_null(strstr(vgpu_open_detail(), "magic"));
    f->regs[VGPU_REG_MAGIC / 4] = VGPU_MAGIC;

    f->regs[VGPU_REG_VERSION / 4] = (2u << 16) | 3;
    assert_int_equal(open_pci(NULL, 100, &dev), -EPROTONOSUPPORT);
    assert_string_equal(vgpu_open_detail(), "ABI version 2.3, library speaks 1.2");
    /* A newer minor is compatible. */
    f->regs[VGPU_REG_VERSION / 4] = (1u << 16) | 4;
    assert_int_equal(open_pci(NULL, 100, &dev), 0);
    vgpu_close(dev);
}

static void test_link_down(void **state)
{
    struct fake *f = *state;
    struct vgpu_dev *dev;
    struct timespec a, b;
    long ms;

    f->regs[VGPU_REG_LINK_STATUS / 4] = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(open_pci(NULL, 80, &dev), -ENOLINK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_true(ms >= 80 && ms < 2000);
}

static void test_round_trip_polled(void **state)
{
    struct fake *f = *state;
    struct vgpu_dev *dev;
    struct vgpu_sqe s;
    struct vgpu_cqe c;
    int i;

    assert_int_equal(open_pci(NULL, 100, &dev), 0);
    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_NOP;
    s.tag = 5;
    s.user_data = 0xabcdef;
    /* No device behind it yet: the doorbell still lands, the wait times out. */
    assert_int_equal(vgpu_call(dev, &s, &c, 20), -ETIMEDOUT);
    assert_int_equal(f->regs[VGPU_REG_DOORBELL / 4], 1);

    assert_int_equal(pthread_create(&f->thread, NULL, device_main, f), 0);
    assert_int_equal(vgpu_wait(dev, &c, 2000), 0);
    assert_int_equal(c.tag, 5);
    for (i = 0; i < 100; i++) {
        s.tag = 6 + (uint32_t)i;
        assert_int_equal(vgpu_call(dev, &s, &c, 2000), 0);
        assert_int_equal(c.status, VGPU_S_OK);
        assert_int_equal(c.result, 42);
        assert_int_equal(f->regs[VGPU_REG_DOORBELL / 4], (uint32_t)i + 2);
    }
    /* Link lost while a request waits: -ENOLINK after the link timeout
     * (the fake device still answers, so stop it first). */
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
    pthread_join(f->thread, NULL);
    f->thread = 0;
    f->regs[VGPU_REG_LINK_STATUS / 4] = 0;
    assert_int_equal(vgpu_submit(dev, &s), 0);
    assert_int_equal(vgpu_kick(dev), 0);
    assert_int_equal(vgpu_wait(dev, &c, 5000), -ENOLINK);
    vgpu_close(dev);
}

static void test_leftovers_adopted(void **state)
{
    struct fake *f = *state;
    struct vgpu_shm_ctrl *ctrl = vgpu_shm_ctrl(f->shm);
    struct vgpu_dev *dev;
    struct vgpu_sqe s;
    struct vgpu_cqe c;

    /* A previous process left 3 requests in flight; the device holds the
     * ring, so a new handle must continue from its indexes, not zero them. */
    ctrl->sq_tail = 1003;
    ctrl->sq_head = ctrl->cq_tail = ctrl->cq_head = 1000;
    assert_int_equal(open_pci(NULL, 100, &dev), 0);
    assert_int_equal(ctrl->sq_tail, 1003);
    assert_int_equal(pthread_create(&f->thread, NULL, device_main, f), 0);
    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_NOP;
    s.tag = 77;
    assert_int_equal(vgpu_call(dev, &s, &c, 2000), 0);
    assert_int_equal(c.tag, 77);
    assert_int_equal(ctrl->cq_head, 1004);
    vgpu_close(dev);

    /* Corrupt leftovers are refused with a reason. */
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
    pthread_join(f->thread, NULL);
    f->thread = 0;
    ctrl->sq_tail = 5000;
    assert_int_equal(open_pci(NULL, 100, &dev), -EIO);
    assert_non_null(strstr(vgpu_open_detail(), "corrupt"));
}

static int open_queue(uint32_t queue, struct vgpu_dev **dev)
{
    struct vgpu_open_opts o;

    memset(&o, 0, sizeof(o));
    o.transport = "pci";
    o.link_timeout_ms = 100;
    o.queue = queue;
    return vgpu_open(&o, dev);
}

/* ABI 1.2: a process per queue, each locked on its own, rings at the end. */
static void test_queues(void **state)
{
    struct fake *f = *state;
    const uint64_t end = VGPU_SHM_DATA_END(SHM_SIZE, 3);
    struct vgpu_queue_desc *qt = (struct vgpu_queue_desc *)(f->shm + VGPU_SHM_QTABLE_OFFSET);
    struct vgpu_shm_ctrl *c2 = vgpu_shm_ctrl(f->shm + VGPU_SHM_QUEUE_OFFSET(SHM_SIZE, 2));
    struct vgpu_dev *d0, *d2, *again;
    struct vgpu_dev_info info;
    struct vgpu_sqe s;
    uint64_t off;

    /* A 1.1 device (QUEUES reads 0) has only queue 0. */
    assert_int_equal(open_queue(1, &d2), -EINVAL);

    f->regs[VGPU_REG_QUEUES / 4] = 3;
    f->regs[VGPU_REG_DATA_END_LO / 4] = (uint32_t)end;
    f->regs[VGPU_REG_IRQ_MASK / 4] = 0;
    qt[2].win_off = VGPU_SHM_DATA_OFFSET + 0x10000;
    qt[2].win_len = 0x10000;
    assert_int_equal(open_queue(2, &d2), 0);
    /* queue > 0 leaves the device's interrupt mask alone */
    assert_int_equal(f->regs[VGPU_REG_IRQ_MASK / 4], 0);
    assert_int_equal(open_queue(2, &again), -EBUSY);
    assert_non_null(strstr(vgpu_open_detail(), "queue 2"));
    assert_int_equal(open_queue(0, &d0), 0);       /* other queues are free */
    assert_int_equal(open_queue(3, &again), -EINVAL);

    assert_int_equal(vgpu_get_info(d2, &info), 0);
    assert_int_equal(info.queue, 2);
    assert_int_equal(info.queues, 3);
    assert_true(info.data_end == end);
    assert_true(info.data_offset == VGPU_SHM_DATA_OFFSET + 0x10000 && info.data_size == 0x10000);
    assert_int_equal(vgpu_alloc(d2, 0x10000, 64, &off), 0);
    assert_true(off == VGPU_SHM_DATA_OFFSET + 0x10000);
    assert_int_equal(vgpu_alloc(d2, 1, 64, &off), -ENOMEM);     /* the window is full */
    assert_int_equal(vgpu_get_info(d0, &info), 0);
    assert_true(info.data_offset == VGPU_SHM_DATA_OFFSET &&
                info.data_size == end - VGPU_SHM_DATA_OFFSET);

    /* Queue 2's SQE and sq_tail land in queue 2's region. */
    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_NOP;
    s.tag = 55;
    assert_int_equal(vgpu_submit(d2, &s), 0);
    assert_int_equal(c2->sq_tail, 1);
    assert_int_equal(vgpu_shm_sq(f->shm + VGPU_SHM_QUEUE_OFFSET(SHM_SIZE, 2))[0].tag, 55);
    assert_int_equal(vgpu_shm_ctrl(f->shm)->sq_tail, 0);
    vgpu_close(d2);
    assert_int_equal(open_queue(2, &d2), 0);       /* the lock went with the handle */
    vgpu_close(d2);
    vgpu_close(d0);

    /* A DATA_END that does not match the queues is refused. */
    f->regs[VGPU_REG_DATA_END_LO / 4] = SHM_SIZE;
    assert_int_equal(open_queue(1, &d2), -ENXIO);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_discovery_and_identity),
        T(test_no_device),
        T(test_bad_magic_and_version),
        T(test_link_down),
        T(test_round_trip_polled),
        T(test_leftovers_adopted),
        T(test_queues),
    };
#undef T
    return cmocka_run_group_tests_name("libvgpu-pci", tests, NULL, NULL);
}
