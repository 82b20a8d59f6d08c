/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Unit tests of libvgpu's pure parts over plain memory (the "mem" transport):
 * the data-area allocator, submission limits, completion order, index
 * wrap-around and the handling of corrupt host indexes. The test plays the
 * mediator by writing the CQ and the host's indexes itself.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "libvgpu/transport.h"
#include "vgpu/libvgpu.h"
#include "vgpu/protocol.h"
#include "vgpu/ring.h"

#define SHM_SIZE (2ull << 20)

struct fixture {
    void *shm;
    struct vgpu_dev *dev;
    struct vgpu_shm_ctrl *ctrl;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->shm = aligned_alloc(4096, SHM_SIZE);
    assert_non_null(f->shm);
    memset(f->shm, 0xa5, SHM_SIZE);  /* vgpu_open_mem must zero the ctrl block */
    assert_int_equal(vgpu_open_mem(f->shm, SHM_SIZE, &f->dev), 0);
    f->ctrl = vgpu_shm_ctrl(f->shm);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    vgpu_close(f->dev);
    free(f->shm);
    free(f);
    return 0;
}

/* The "mediator": takes the next n SQEs and completes them in order. */
static void host_complete(struct fixture *f, uint32_t n, int32_t status)
{
    struct vgpu_sqe *sq = vgpu_shm_sq(f->shm);
    struct vgpu_cqe *cq = vgpu_shm_cq(f->shm);

    while (n--) {
        uint32_t head = f->ctrl->sq_head, tail = f->ctrl->cq_tail;
        const struct vgpu_sqe *s = &sq[vgpu_ring_slot(head, VGPU_SQ_ENTRIES)];
        struct vgpu_cqe *c = &cq[vgpu_ring_slot(tail, VGPU_CQ_ENTRIES)];

        assert_true(head != f->ctrl->sq_tail);
        memset(c, 0, sizeof(*c));
        c->user_data = s->user_data;
        c->tag = s->tag;
        c->status = status;
        vgpu_store_release(&f->ctrl->cq_tail, tail + 1);
        vgpu_store_release(&f->ctrl->sq_head, head + 1);
    }
}

static void nop_sqe(struct vgpu_sqe *s, uint32_t tag)
{
    memset(s, 0, sizeof(*s));
    s->opcode = VGPU_OP_NOP;
    s->tag = tag;
    s->user_data = 0x1000000000ull + tag;
}

/* ---------------------------------------------------------------------- */

static void test_open_zeroes_ctrl(void **state)
{
    struct fixture *f = *state;
    struct vgpu_shm_ctrl zero;

    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(f->ctrl, &zero, sizeof(zero));
    assert_int_equal(vgpu_open_mem(f->shm, VGPU_SHM_MIN_SIZE - 1, &(struct vgpu_dev *){ 0 }),
                     -EINVAL);
}

static void test_alloc_alignment(void **state)
{
    struct fixture *f = *state;
    uint64_t a, b, c;

    assert_int_equal(vgpu_alloc(f->dev, 1, 0, &a), 0);
    assert_int_equal(a, VGPU_SHM_DATA_OFFSET);
    assert_int_equal(vgpu_alloc(f->dev, 1, 0, &b), 0);
    assert_int_equal(b, VGPU_SHM_DATA_OFFSET + 64);     /* default alignment 64 */
    assert_int_equal(vgpu_alloc(f->dev, 10, 4096, &c), 0);
    assert_int_equal(c % 4096, 0);
    assert_true(c > b);
    assert_int_equal(vgpu_alloc(f->dev, 3, 4, &a), 0);
    assert_int_equal(a, c + 12);                        /* 10 rounded up to 4 */

    /* Bad arguments change nothing. */
    assert_int_equal(vgpu_alloc(f->dev, 8, 3, &a), -EINVAL);
    assert_int_equal(vgpu_alloc(f->dev, 8, 1ull << 31, &a), -EINVAL);
    assert_int_equal(vgpu_alloc(f->dev, 0, 8, &a), -EINVAL);
    assert_int_equal(vgpu_alloc(f->dev, 8, 8, NULL), -EINVAL);
    assert_int_equal(vgpu_alloc(f->dev, 1, 1, &b), 0);
    assert_int_equal(b, c + 15);
}

static void test_alloc_bounds(void **state)
{
    struct fixture *f = *state;
    uint64_t data = SHM_SIZE - VGPU_SHM_DATA_OFFSET, off, off2;

    /* Sizes that would wrap the cursor or pass the end are refused. */
    assert_int_equal(vgpu_alloc(f->dev, UINT64_MAX, 1, &off), -ENOMEM);
    assert_int_equal(vgpu_alloc(f->dev, UINT64_MAX - VGPU_SHM_DATA_OFFSET + 1, 1, &off),
                     -ENOMEM);
    assert_int_equal(vgpu_alloc(f->dev, data + 1, 1, &off), -ENOMEM);
    /* The whole data area fits exactly, then nothing more. */
    assert_int_equal(vgpu_alloc(f->dev, data, 1, &off), 0);
    assert_int_equal(off, VGPU_SHM_DATA_OFFSET);
    assert_int_equal(vgpu_alloc(f->dev, 1, 1, &off2), -ENOMEM);
    /* Alignment alone can exhaust it. */
    vgpu_free_all(f->dev);
    assert_int_equal(vgpu_alloc(f->dev, data - 4, 1, &off), 0);
    assert_int_equal(vgpu_alloc(f->dev, 4, 1, &off2), 0);
    vgpu_free_all(f->dev);
    assert_int_equal(vgpu_alloc(f->dev, data - 4, 1, &off), 0);
    assert_int_equal(vgpu_alloc(f->dev, 4, 1u << 30, &off2), -ENOMEM);
    assert_int_equal(vgpu_alloc(f->dev, 8, 1, &off2), -ENOMEM);
    /* free_all starts over. */
    vgpu_free_all(f->dev);
    assert_int_equal(vgpu_alloc(f->dev, 8, 8, &off), 0);
    assert_int_equal(off, VGPU_SHM_DATA_OFFSET);
}

static void test_ptr_bounds(void **state)
{
    struct fixture *f = *state;
    uint64_t size = 0;

    assert_ptr_equal(vgpu_ptr(f->dev, 0), f->shm);
    assert_ptr_equal(vgpu_ptr(f->dev, SHM_SIZE - 1), (uint8_t *)f->shm + SHM_SIZE - 1);
    assert_null(vgpu_ptr(f->dev, SHM_SIZE));
    assert_null(vgpu_ptr(f->dev, UINT64_MAX));
    assert_null(vgpu_ptr(NULL, 0));
    assert_ptr_equal(vgpu_shm_base(f->dev, &size), f->shm);
    assert_int_equal(size, SHM_SIZE);
}

static void test_submit_refuses_when_full(void **state)
{
    struct fixture *f = *state;
    struct vgpu_sqe s;
    struct vgpu_cqe c;
    uint32_t i;

    for (i = 0; i < VGPU_SQ_ENTRIES; i++) {
        nop_sqe(&s, i);
        assert_int_equal(vgpu_submit(f->dev, &s), 0);
        assert_int_equal(f->ctrl->sq_tail, i + 1);      /* published */
    }
    nop_sqe(&s, 999);
    assert_int_equal(vgpu_submit(f->dev, &s), -EAGAIN);
    assert_int_equal(f->ctrl->sq_tail, VGPU_SQ_ENTRIES);

    /* The host taking entries frees SQ slots, but every request still owes
     * a CQE: with 256 outstanding the CQ would overflow, so still full. */
    vgpu_store_release(&f->ctrl->sq_head, 10);
    assert_int_equal(vgpu_submit(f->dev, &s), -EAGAIN);
    vgpu_store_release(&f->ctrl->sq_head, 0);

    /* One completion consumed: room for exactly one more. */
    host_complete(f, 1, VGPU_S_OK);
    assert_int_equal(vgpu_submit(f->dev, &s), -EAGAIN); /* not consumed yet */
    assert_int_equal(vgpu_wait(f->dev, &c, 0), 0);
    assert_int_equal(c.tag, 0);
    assert_int_equal(vgpu_submit(f->dev, &s), 0);
    assert_int_equal(vgpu_submit(f->dev, &s), -EAGAIN);

    /* A slot is only rewritten after its owner completed. */
    assert_int_equal(vgpu_shm_sq(f->shm)[0].tag, 999);
    assert_int_equal(vgpu_shm_sq(f->shm)[1].tag, 1);
}

static void test_submit_corrupt_sq_head(void **state)
{
    struct fixture *f = *state;
    struct vgpu_sqe s;

    nop_sqe(&s, 1);
    assert_int_equal(vgpu_submit(f->dev, &s), 0);
    /* A host index ahead of our tail is nonsense: refuse, write nothing. */
    vgpu_store_release(&f->ctrl->sq_head, 5);
    assert_int_equal(vgpu_submit(f->dev, &s), -EIO);
    assert_int_equal(f->ctrl->sq_tail, 1);
    vgpu_store_release(&f->ctrl->sq_head, 1u << 31);
    assert_int_equal(vgpu_submit(f->dev, &s), -EIO);
}

static void test_cq_consume_order(void **state)
{
    struct fixture *f = *state;
    struct vgpu_sqe s;
    struct vgpu_cqe c;
    uint32_t i;

    for (i = 0; i < 10; i++) {
        nop_sqe(&s, 100 + i);
        assert_int_equal(vgpu_submit(f->dev, &s), 0);
    }
    assert_int_equal(vgpu_kick(f->dev), 0);
    /* Nothing completed yet. */
    assert_int_equal(vgpu_wait(f->dev, &c, 0), -ETIMEDOUT);
    assert_int_equal(vgpu_wait(f->dev, &c, 5), -ETIMEDOUT);

    host_complete(f, 7, VGPU_S_OK);
    for (i = 0; i < 7; i++) {
        assert_int_equal(vgpu_wait(f->dev, &c, 0), 0);
        assert_int_equal(c.tag, 100 + i);
        assert_int_equal(c.user_data, 0x1000000000ull + 100 + i);
        assert_int_equal(f->ctrl->cq_head, i + 1);      /* published per entry */
    }
    assert_int_equal(vgpu_wait(f->dev, &c, 0), -ETIMEDOUT);
    host_complete(f, 3, VGPU_S_BAD_RANGE);
    for (i = 7; i < 10; i++) {
        assert_int_equal(vgpu_wait(f->dev, &c, 0), 0);
        assert_int_equal(c.tag, 100 + i);
        assert_int_equal(c.status, VGPU_S_BAD_RANGE);
    }
    /* Nothing outstanding: a wait can never succeed. */
    assert_int_equal(vgpu_wait(f->dev, &c, 1000), -ENOENT);
}

static void test_cq_corrupt_tail(void **state)
{
    struct fixture *f = *state;
    struct vgpu_sqe s;
    struct vgpu_cqe c;

    nop_sqe(&s, 1);
    assert_int_equal(vgpu_submit(f->dev, &s), 0);
    /* More completions than requests, then more than the ring holds. */
    vgpu_store_release(&f->ctrl->cq_tail, 2);
    assert_int_equal(vgpu_wait(f->dev, &c, 0), -EIO);
    vgpu_store_release(&f->ctrl->cq_tail, VGPU_CQ_ENTRIES + 1);
    assert_int_equal(vgpu_wait(f->dev, &c, 0), -EIO);
    assert_int_equal(f->ctrl->cq_head, 0);
    vgpu_store_release(&f->ctrl->cq_tail, 0);
    host_complete(f, 1, VGPU_S_OK);
    assert_int_equal(vgpu_wait(f->dev, &c, 0), 0);
}

static void test_index_wraparound(void **state)
{
    struct fixture *f = *state;
    const uint32_t start = UINT32_MAX - 5;
    struct vgpu_sqe s;
    struct vgpu_cqe c;
    uint32_t i;

    /* Free-running counters cross 2^32 without a hiccup. */
    f->dev->sq_tail = f->dev->cq_head = start;
    f->ctrl->sq_tail = f->ctrl->sq_head = f->ctrl->cq_tail = f->ctrl->cq_head = start;
    for (i = 0; i < 12; i++) {
        nop_sqe(&s, i);
        assert_int_equal(vgpu_submit(f->dev, &s), 0);
    }
    assert_int_equal(f->ctrl->sq_tail, start + 12);
    host_complete(f, 12, VGPU_S_OK);
    for (i = 0; i < 12; i++) {
        assert_int_equal(vgpu_wait(f->dev, &c, 0), 0);
        assert_int_equal(c.tag, i);
    }
    assert_int_equal(f->ctrl->cq_head, start + 12);
}

static void test_call_busy_and_mismatch(void **state)
{
    struct fixture *f = *state;
    struct vgpu_sqe s;
    struct vgpu_cqe c;

    nop_sqe(&s, 1);
    assert_int_equal(vgpu_submit(f->dev, &s), 0);
    /* The next completion would be someone else's. */
    assert_int_equal(vgpu_call(f->dev, &s, &c, 0), -EBUSY);
    host_complete(f, 1, VGPU_S_OK);
    assert_int_equal(vgpu_wait(f->dev, &c, 0), 0);
    /* No mediator: the call times out, leaving the request outstanding. */
    nop_sqe(&s, 2);
    assert_int_equal(vgpu_call(f->dev, &s, &c, 3), -ETIMEDOUT);
    assert_int_equal(vgpu_call(f->dev, &s, &c, 3), -EBUSY);
}

static void test_abandoned_completions(void **state)
{
    struct fixture *f = *state;
    struct vgpu_sqe s;
    struct vgpu_cqe c;

    /* What a pci open does when a previous process left 2 requests. */
    nop_sqe(&s, 1);
    assert_int_equal(vgpu_submit(f->dev, &s), 0);
    assert_int_equal(vgpu_submit(f->dev, &s), 0);
    f->dev->abandoned = 2;
    assert_int_equal(vgpu_wait(f->dev, &c, 0), -ENOENT);
    nop_sqe(&s, 3);
    assert_int_equal(vgpu_submit(f->dev, &s), 0);
    host_complete(f, 3, VGPU_S_OK);
    assert_int_equal(vgpu_wait(f->dev, &c, 0), 0);
    assert_int_equal(c.tag, 3);     /* the two leftovers were dropped */
    assert_int_equal(f->dev->abandoned, 0);
    assert_int_equal(f->ctrl->cq_head, 3);
}

static void test_strerror(void **state)
{
    (void)state;
    assert_string_equal(vgpu_strerror(-ENODEV), VGPU_ENODEV_TEXT);
    assert_non_null(strstr(vgpu_strerror(-ENOLINK), "link down"));
    assert_string_equal(vgpu_strerror(ENOLINK), vgpu_strerror(-ENOLINK));
    assert_non_null(vgpu_strerror(-ENOMEM));
}

static void test_get_info(void **state)
{
    struct fixture *f = *state;
    struct vgpu_dev_info info;

    assert_int_equal(vgpu_get_info(f->dev, &info), 0);
    assert_string_equal(info.transport, "mem");
    assert_int_equal(info.shm_size, SHM_SIZE);
    assert_int_equal(info.data_offset, VGPU_SHM_DATA_OFFSET);
    assert_int_equal(info.data_size, SHM_SIZE - VGPU_SHM_DATA_OFFSET);
    assert_true(info.link_status & VGPU_LINK_UP);
    assert_int_equal(vgpu_get_info(NULL, &info), -EINVAL);
}

static void test_open_bad_options(void **state)
{
    struct vgpu_open_opts o;
    struct vgpu_dev *dev = (struct vgpu_dev *)1;

    (void)state;
    memset(&o, 0, sizeof(o));
    o.transport = "carrier-pigeon";
    assert_int_equal(vgpu_open(&o, &dev), -EINVAL);
    assert_null(dev);
    o.transport = "sim";
    o.shm_size = VGPU_SHM_MIN_SIZE - 4096;
    assert_int_equal(vgpu_open(&o, &dev), -EINVAL);
    o.shm_size = 0;
    o.priority = VGPU_PRIO_CLASSES;
    assert_int_equal(vgpu_open(&o, &dev), -EINVAL);
    o.priority = 0;
    o.link_timeout_ms = -1;
    assert_int_equal(vgpu_open(&o, &dev), -EINVAL);
    o.link_timeout_ms = 50;
    o.socket_path = "/nonexistent/vgpu.sock";
    assert_int_equal(vgpu_open(&o, &dev), -ENOENT);
    assert_non_null(strstr(vgpu_open_detail(), "/nonexistent/vgpu.sock"));
    vgpu_close(NULL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_open_zeroes_ctrl),
        T(test_alloc_alignment),
        T(test_alloc_bounds),
        T(test_ptr_bounds),
        T(test_submit_refuses_when_full),
        T(test_submit_corrupt_sq_head),
        T(test_cq_consume_order),
        T(test_cq_corrupt_tail),
        T(test_index_wraparound),
        T(test_call_busy_and_mismatch),
        T(test_abandoned_completions),
        T(test_strerror),
        T(test_get_info),
        cmocka_unit_test(test_open_bad_options),
    };
#undef T
    return cmocka_run_group_tests_name("libvgpu", tests, NULL, NULL);
}
