/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Unit tests of libvgpu's ivshmem transport against a fake sysfs tree
 * (VGPU_PCI_SYSFS): an ivshmem device (1af4:1110) whose BAR files are plain
 * files, BAR0 starting inside a page (as a 256-byte BAR may), BAR2 holding
 * the mediator's shared-memory header. A thread plays QEMU and the
 * mediator: it completes requests from the rings. Covers discovery, memory
 * that is not vgpu's, every header check (ABI major, geometry, a size larger
 * than the BAR), the link-down timeout, names with control bytes, the
 * doorbell value landing in ivshmem's DOORBELL register, one handle per
 * device, and a polled round trip.
 */
#include <endian.h>
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

#define SHM_SIZE  (2u << 20)
#define ADDR      "0000:00:10.0"
#define BAR0_PAGE_OFF 0x100u   /* BAR0 at 0xfe800100: inside its page */
#define DOORBELL  0x00050000u  /* peer 5, vector 0 */

struct fake {
    char root[64];
    uint8_t *bar0_page;         /* the page of resource0 (what sysfs maps) */
    uint8_t *shm;
    struct vgpu_shm_header *hdr;
    pthread_t thread;
    int stop;
};

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
            vgpu_store_release(&ctrl->cq_tail, ctrl->cq_tail + 1);
            vgpu_store_release(&ctrl->sq_head, head + 1);
            continue;
        }
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void header_init(struct vgpu_shm_header *h)
{
    memset(h, 0, sizeof(*h));
    h->magic = htole32(VGPU_SHM_HEADER_MAGIC);
    h->abi_version = htole32(VGPU_ABI_VERSION);
    h->header_size = htole32(sizeof(*h));
    h->link_status = htole32(VGPU_LINK_UP);
    h->vm_id = htole32(11);
    h->priority = htole32(1);
    h->weight = htole32(2);
    h->session_id = htole32(4);
    h->backend = htole32(VGPU_BACKEND_CPU);
    h->max_inflight = htole32(32);
    h->sq_entries = htole32(VGPU_SQ_ENTRIES);
    h->cq_entries = htole32(VGPU_CQ_ENTRIES);
    h->shm_size = htole64(SHM_SIZE);
    h->data_offset = htole64(VGPU_SHM_DATA_OFFSET);
    h->data_end = htole64(SHM_SIZE);
    h->queues = htole32(1);
    h->doorbell = htole32(DOORBELL);
    strcpy(h->vm_name, "ivs1");
    strcpy(h->gpu_name, "cpu: fake");
}

static int setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    char dir[128];

    assert_non_null(f);
    snprintf(f->root, sizeof(f->root), "/tmp/vgpu-fake-ivshmem.XXXXXX");
    assert_non_null(mkdtemp(f->root));
    /* A vgpu-stub would be the pci transport's; this one is ivshmem. */
    snprintf(dir, sizeof(dir), "%s/%s", f->root, ADDR);
    assert_int_equal(mkdir(dir, 0700), 0);
    write_file(dir, "vendor", "0x1af4\n");
    write_file(dir, "device", "0x1110\n");
    write_file(dir, "class", "0x050000\n");
    write_file(dir, "enable", "0\n");
    write_file(dir, "resource",
               "0x00000000fe800100 0x00000000fe8001ff 0x0000000000040200\n"
               "0x00000000fe801000 0x00000000fe801fff 0x0000000000040200\n"
               "0x0000000800000000 0x00000008001fffff 0x000000000014220c\n");
    /* sysfs maps BAR0 from the page holding its start */
    f->bar0_page = map_file(dir, "resource0", 4096);
    f->shm = map_file(dir, "resource2", SHM_SIZE);
    f->hdr = (struct vgpu_shm_header *)(f->shm + VGPU_SHM_HEADER_OFFSET);
    header_init(f->hdr);
    *(uint32_t *)(f->bar0_page + BAR0_PAGE_OFF + VGPU_IVSHMEM_REG_IV_POSITION) = 1;
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
    munmap(f->bar0_page, 4096);
    munmap(f->shm, SHM_SIZE);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
    assert_int_equal(system(cmd), 0);
    unsetenv("VGPU_PCI_SYSFS");
    free(f);
    return 0;
}

static int open_iv(const char *transport, int link_timeout_ms, struct vgpu_dev **dev)
{
    struct vgpu_open_opts o;

    memset(&o, 0, sizeof(o));
    o.transport = transport;
    o.link_timeout_ms = link_timeout_ms;
    return vgpu_open(&o, dev);
}

static void test_identity_and_round_trip(void **state)
{
    struct fake *f = *state;
    struct vgpu_dev_info info;
    struct vgpu_dev *dev, *dev2;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = 3, .user_data = 9 };
    struct vgpu_cqe cqe;

    assert_int_equal(open_iv("ivshmem", 100, &dev), 0);
    assert_int_equal(vgpu_get_info(dev, &info), 0);
    assert_string_equal(info.transport, "ivshmem");
    assert_string_equal(info.location, ADDR " ivshmem peer 1");
    assert_int_equal(info.vm_id, 11);
    assert_int_equal(info.priority, 1);
    assert_int_equal(info.weight, 2);
    assert_int_equal(info.session_id, 4);
    assert_int_equal(info.max_inflight, 32);
    assert_int_equal(info.shm_size, SHM_SIZE);
    assert_int_equal(info.queues, 1);
    assert_string_equal(info.vm_name, "ivs1");
    assert_string_equal(info.gpu_name, "cpu: fake");
    assert_true(info.link_status & VGPU_LINK_UP);

    /* One handle per device. */
    assert_int_equal(open_iv("ivshmem", 100, &dev2), -EBUSY);

    assert_int_equal(pthread_create(&f->thread, NULL, device_main, f), 0);
    assert_int_equal(vgpu_call(dev, &sqe, &cqe, 2000), 0);
    assert_int_equal(cqe.status, VGPU_S_OK);
    assert_int_equal(cqe.tag, 3);
    /* The doorbell: the header's value, in the register inside the page. */
    assert_int_equal(*(volatile uint32_t *)(f->bar0_page + BAR0_PAGE_OFF +
                                            VGPU_IVSHMEM_REG_DOORBELL), DOORBELL);
    assert_int_equal(*(volatile uint32_t *)(f->bar0_page + VGPU_IVSHMEM_REG_DOORBELL), 0);
    vgpu_close(dev);

    /* Auto selection finds it when there is no vgpu-stub and no /dev/vgpuN. */
    if (access("/dev/vgpu0", F_OK) != 0) {
        assert_int_equal(open_iv(NULL, 100, &dev), 0);
        assert_int_equal(vgpu_get_info(dev, &info), 0);
        assert_string_equal(info.transport, "ivshmem");
        vgpu_close(dev);
    }
}

static void test_not_ours(void **state)
{
    struct fake *f = *state;
    struct vgpu_dev *dev = (void *)1;

    /* Someone else's ivshmem: no header. */
    f->hdr->magic = 0;
    assert_int_equal(open_iv("ivshmem", 100, &dev), -ENODEV);
    assert_null(dev);
    assert_non_null(strstr(vgpu_open_detail(), "without a vgpu header"));
    setenv("VGPU_PCI_SYSFS", "/nonexistent", 1);
    assert_int_equal(open_iv("ivshmem", 100, &dev), -ENODEV);
}

static void test_bad_header(void **state)
{
    struct fake *f = *state;
    struct vgpu_dev *dev;

    f->hdr->abi_version = htole32(2u << 16);
    assert_int_equal(open_iv("ivshmem", 100, &dev), -EPROTONOSUPPORT);
    assert_string_equal(vgpu_open_detail(), "ABI version 2.0, library speaks 1.2");
    header_init(f->hdr);

    /* A newer minor is fine. */
    f->hdr->abi_version = htole32(VGPU_ABI_VERSION + 7);
    assert_int_equal(open_iv("ivshmem", 100, &dev), 0);
    vgpu_close(dev);
    header_init(f->hdr);

    f->hdr->shm_size = htole64(2ull * SHM_SIZE);      /* larger than BAR2 */
    assert_int_equal(open_iv("ivshmem", 100, &dev), -EPROTONOSUPPORT);
    f->hdr->shm_size = htole64(4096);                  /* below the ABI's minimum */
    assert_int_equal(open_iv("ivshmem", 100, &dev), -EPROTONOSUPPORT);
    header_init(f->hdr);
    f->hdr->sq_entries = htole32(512);
    assert_int_equal(open_iv("ivshmem", 100, &dev), -EPROTONOSUPPORT);
    header_init(f->hdr);
    f->hdr->queues = htole32(4);
    assert_int_equal(open_iv("ivshmem", 100, &dev), -EPROTONOSUPPORT);
    header_init(f->hdr);
    f->hdr->header_size = htole32(16);
    assert_int_equal(open_iv("ivshmem", 100, &dev), -EPROTONOSUPPORT);
    header_init(f->hdr);
    f->hdr->data_offset = htole64(0);
    assert_int_equal(open_iv("ivshmem", 100, &dev), -EPROTONOSUPPORT);
    header_init(f->hdr);

    /* Names the guest scribbled on: printable, terminated. */
    memset(f->hdr->vm_name, '\x01', sizeof(f->hdr->vm_name));
    {
        struct vgpu_dev_info info;

        assert_int_equal(open_iv("ivshmem", 100, &dev), 0);
        assert_int_equal(vgpu_get_info(dev, &info), 0);
        assert_int_equal(strlen(info.vm_name), sizeof(info.vm_name) - 1);
        assert_null(strchr(info.vm_name, '\x01'));
        vgpu_close(dev);
    }
    /* A queue other than 0 does not exist here. */
    {
        struct vgpu_open_opts o = { .transport = "ivshmem", .queue = 1, .link_timeout_ms = 100 };

        assert_int_equal(vgpu_open(&o, &dev), -EINVAL);
    }
}

static void test_link_down(void **state)
{
    struct fake *f = *state;
    struct vgpu_dev *dev;
    struct timespec a, b;
    long ms;

    f->hdr->link_status = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(open_iv("ivshmem", 150, &dev), -ENOLINK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    assert_true(ms >= 140 && ms < 2000);
    assert_string_equal(vgpu_open_detail(), "after 150 ms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_identity_and_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_link_down, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
