/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The mediator's adaptive spin policy (struct vgpu_spin, mediator.h): how
 * long executors, the CUDA proxy and its worker spin before sleeping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mediator/mediator.h"

#define US 1000ull

static void test_cap_zero_never_spins(void **state)
{
    struct vgpu_spin sp;

    (void)state;
    vgpu_spin_init(&sp, 0);
    assert_int_equal(sp.budget_ns, 0);
    for (int i = 0; i < 10; i++) {
        vgpu_spin_update(&sp, 50 * US, i & 1);
        assert_int_equal(sp.budget_ns, 0);
    }
}

/* Steady 300 us waits (a 2^20 vector_add on the H100): spin 1.5x that. */
static void test_steady_waits_are_covered(void **state)
{
    struct vgpu_spin sp;

    (void)state;
    vgpu_spin_init(&sp, 1000 * US);
    for (int i = 0; i < 20; i++) {
        vgpu_spin_update(&sp, 300 * US, true);
    }
    assert_int_equal(sp.budget_ns, 450 * US);
}

/* Waits far beyond the cap (a 5 ms copy): the spin dies away. */
static void test_long_waits_stop_spinning(void **state)
{
    struct vgpu_spin sp;

    (void)state;
    vgpu_spin_init(&sp, 1000 * US);
    for (int i = 0; i < 12; i++) {
        vgpu_spin_update(&sp, 5000 * US, false);
    }
    assert_true(sp.budget_ns < 1 * US);
    /* An idle second does not swamp the average: bounded by 2 x cap. */
    vgpu_spin_update(&sp, 1000000 * US, false);
    assert_true(sp.ewma_ns <= 2000 * US);
}

/* After an outlier, misses the full budget would have caught re-arm it. */
static void test_rearm_after_outlier(void **state)
{
    struct vgpu_spin sp;
    int n = 0;

    (void)state;
    vgpu_spin_init(&sp, 1000 * US);
    for (int i = 0; i < 8; i++) {
        vgpu_spin_update(&sp, 100 * US, true);
    }
    vgpu_spin_update(&sp, 800 * US, false);   /* outlier: halves */
    assert_true(sp.budget_ns < 150 * US);
    while (sp.budget_ns < 100 * US && n < 20) {
        vgpu_spin_update(&sp, 100 * US, sp.budget_ns >= 100 * US);
        n++;
    }
    assert_true(n < 20);
    assert_true(sp.budget_ns >= 100 * US && sp.budget_ns <= 1000 * US);
}

/* Never above the cap, whatever the waits. */
static void test_capped(void **state)
{
    struct vgpu_spin sp;

    (void)state;
    vgpu_spin_init(&sp, 50 * US);
    for (int i = 0; i < 20; i++) {
        vgpu_spin_update(&sp, 40 * US, true);
        assert_true(sp.budget_ns <= 50 * US);
    }
    assert_int_equal(sp.budget_ns, 50 * US);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_zero_never_spins),
        cmocka_unit_test(test_steady_waits_are_covered),
        cmocka_unit_test(test_long_waits_stop_spinning),
        cmocka_unit_test(test_rearm_after_outlier),
        cmocka_unit_test(test_capped),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
