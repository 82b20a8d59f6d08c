/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Unit tests for include/vgpu/ring.h: index arithmetic of free-running
 * uint32 counters, including across the 2^32 wrap, and the corruption report
 * for counts a peer could only produce by scribbling on its index.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vgpu/ring.h"

static void test_empty(void **state)
{
    (void)state;
    assert_true(vgpu_ring_empty(0, 0));
    assert_true(vgpu_ring_empty(12345, 12345));
    assert_true(vgpu_ring_empty(UINT32_MAX, UINT32_MAX));
    assert_false(vgpu_ring_empty(0, 1));
    assert_int_equal(vgpu_ring_count(7, 7, VGPU_SQ_ENTRIES), 0);
    assert_false(vgpu_ring_full(7, 7, VGPU_SQ_ENTRIES));
}

static void test_full(void **state)
{
    (void)state;
    assert_true(vgpu_ring_full(0, VGPU_SQ_ENTRIES, VGPU_SQ_ENTRIES));
    assert_false(vgpu_ring_full(0, VGPU_SQ_ENTRIES - 1, VGPU_SQ_ENTRIES));
    assert_int_equal(vgpu_ring_count(0, VGPU_SQ_ENTRIES, VGPU_SQ_ENTRIES), VGPU_SQ_ENTRIES);
    assert_int_equal(vgpu_ring_count(100, 100 + VGPU_CQ_ENTRIES - 1, VGPU_CQ_ENTRIES),
                     VGPU_CQ_ENTRIES - 1);
    /* Beyond full is what a corrupt tail looks like: full() must still say so. */
    assert_true(vgpu_ring_full(0, VGPU_SQ_ENTRIES + 1, VGPU_SQ_ENTRIES));
}

static void test_wrap(void **state)
{
    uint32_t head = UINT32_MAX - 2;     /* tail has wrapped past 2^32 */
    uint32_t tail = head + 5;

    (void)state;
    assert_int_equal(tail, 2);
    assert_int_equal(vgpu_ring_count(head, tail, VGPU_SQ_ENTRIES), 5);
    assert_false(vgpu_ring_empty(head, tail));
    assert_false(vgpu_ring_full(head, tail, VGPU_SQ_ENTRIES));

    tail = head + VGPU_SQ_ENTRIES;
    assert_int_equal(vgpu_ring_count(head, tail, VGPU_SQ_ENTRIES), VGPU_SQ_ENTRIES);
    assert_true(vgpu_ring_full(head, tail, VGPU_SQ_ENTRIES));

    /* Consecutive indexes map to consecutive slots across the wrap. */
    assert_int_equal(vgpu_ring_slot(UINT32_MAX, VGPU_SQ_ENTRIES), VGPU_SQ_ENTRIES - 1);
    assert_int_equal(vgpu_ring_slot(UINT32_MAX + 1u, VGPU_SQ_ENTRIES), 0);
    assert_int_equal(vgpu_ring_slot(0x12345678u, VGPU_SQ_ENTRIES), 0x78);
    assert_int_equal(vgpu_ring_slot(257, VGPU_CQ_ENTRIES), 1);

    /* Walk a producer and a consumer through the wrap, one entry at a time. */
    head = tail = UINT32_MAX - 600;
    for (unsigned i = 0; i < 3000; i++) {
        uint32_t n = vgpu_ring_count(head, tail, VGPU_SQ_ENTRIES);

        assert_true(n <= VGPU_SQ_ENTRIES);
        if (!vgpu_ring_full(head, tail, VGPU_SQ_ENTRIES) && (i % 3) != 2) {
            tail++;
        } else if (!vgpu_ring_empty(head, tail)) {
            head++;
        }
        assert_int_equal(vgpu_ring_count(head, tail, VGPU_SQ_ENTRIES), tail - head);
    }
    assert_true((uint32_t)(head - (UINT32_MAX - 600)) > 600);  /* crossed 2^32 */
}

static void test_corrupt(void **state)
{
    (void)state;
    /* tail behind head, or ahead by more than the ring: a scribbled index. */
    assert_int_equal(vgpu_ring_count(10, 9, VGPU_SQ_ENTRIES), VGPU_RING_CORRUPT);
    assert_int_equal(vgpu_ring_count(0, VGPU_SQ_ENTRIES + 1, VGPU_SQ_ENTRIES),
                     VGPU_RING_CORRUPT);
    assert_int_equal(vgpu_ring_count(0, UINT32_MAX, VGPU_SQ_ENTRIES), VGPU_RING_CORRUPT);
    assert_int_equal(vgpu_ring_count(UINT32_MAX, UINT32_MAX - 1, VGPU_CQ_ENTRIES),
                     VGPU_RING_CORRUPT);
    assert_int_equal(vgpu_ring_count(5, 0x80000005u, VGPU_CQ_ENTRIES), VGPU_RING_CORRUPT);
    /* Exactly full across the wrap is not corrupt. */
    assert_int_equal(vgpu_ring_count(UINT32_MAX - 9, VGPU_CQ_ENTRIES - 10, VGPU_CQ_ENTRIES),
                     VGPU_CQ_ENTRIES);
}

static void test_shm_accessors(void **state)
{
    uint8_t *shm;

    (void)state;
    shm = calloc(1, VGPU_SHM_DATA_OFFSET);
    assert_non_null(shm);
    assert_ptr_equal((uint8_t *)vgpu_shm_ctrl(shm), shm + VGPU_SHM_CTRL_OFFSET);
    assert_ptr_equal((uint8_t *)vgpu_shm_sq(shm), shm + VGPU_SHM_SQ_OFFSET);
    assert_ptr_equal((uint8_t *)vgpu_shm_cq(shm), shm + VGPU_SHM_CQ_OFFSET);
    assert_ptr_equal((uint8_t *)&vgpu_shm_sq(shm)[VGPU_SQ_ENTRIES - 1] + sizeof(struct vgpu_sqe),
                     shm + VGPU_SHM_SQ_OFFSET + VGPU_SQ_ENTRIES * sizeof(struct vgpu_sqe));

    /* Each index on its own cache line: the two sides never share one. */
    assert_int_equal(offsetof(struct vgpu_shm_ctrl, sq_tail) / 64, 0);
    assert_int_equal(offsetof(struct vgpu_shm_ctrl, sq_head) / 64, 1);
    assert_int_equal(offsetof(struct vgpu_shm_ctrl, cq_tail) / 64, 2);
    assert_int_equal(offsetof(struct vgpu_shm_ctrl, cq_head) / 64, 3);

    vgpu_store_release(&vgpu_shm_ctrl(shm)->sq_tail, 0xdeadbeef);
    assert_int_equal(vgpu_load_acquire(&vgpu_shm_ctrl(shm)->sq_tail), 0xdeadbeef);
    assert_int_equal(*(uint32_t *)shm, 0xdeadbeef);
    free(shm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_shm_accessors),
    };

    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
