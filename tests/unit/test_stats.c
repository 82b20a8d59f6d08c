/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/* Unit tests of mediator/stats.c: histogram quantiles, merging, the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mediator/stats.h"

static void test_hist_quantiles(void **state)
{
    static struct vgpu_hist h;
    (void)state;

    memset(&h, 0, sizeof(h));
    assert_int_equal(vgpu_hist_quantile(&h, 0.5), 0);
    /* 1..10000 ns uniformly: p50 ~ 5000, p99 ~ 9900, within a bucket (<= 25%) */
    for (uint64_t v = 1; v <= 10000; v++) {
        vgpu_hist_add(&h, v);
    }
    uint64_t p50 = vgpu_hist_quantile(&h, 0.50), p99 = vgpu_hist_quantile(&h, 0.99);
    assert_true(p50 >= 5000 && p50 <= 6250);
    assert_true(p99 >= 9900 && p99 <= 10000); /* capped by the maximum seen */
    assert_int_equal(h.count, 10000);
    assert_int_equal(h.max, 10000);
    assert_int_equal(vgpu_hist_quantile(&h, 1.0), 10000);

    /* small and huge values land in range */
    memset(&h, 0, sizeof(h));
    vgpu_hist_add(&h, 0);
    vgpu_hist_add(&h, 3);
    vgpu_hist_add(&h, UINT64_MAX);
    assert_int_equal(vgpu_hist_quantile(&h, 0.0), 0);
    assert_int_equal(vgpu_hist_quantile(&h, 0.5), 3);
    assert_int_equal(vgpu_hist_quantile(&h, 1.0), UINT64_MAX);
}

static void test_hist_bucket_bounds(void **state)
{
    static struct vgpu_hist h;
    (void)state;

    /* every single value is reported within +25% (4 sub-buckets per octave) */
    for (uint64_t v = 1; v < (1ull << 40); v = v * 3 + 1) {
        memset(&h, 0, sizeof(h));
        vgpu_hist_add(&h, v);
        vgpu_hist_add(&h, v + v / 2); /* the max caps the report; keep it above */
        uint64_t q = vgpu_hist_quantile(&h, 0.5);
        assert_true(q >= v);
        assert_true(q <= v + v / 4 + 1);
    }
}

static void test_complete_and_merge(void **state)
{
    static struct vgpu_vm_stats a, b;
    (void)state;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    vgpu_vm_stats_complete(&a, VGPU_S_OK, 100, 1000, 10, 20);
    vgpu_vm_stats_complete(&a, VGPU_S_BAD_RANGE, 100, 0, 10, 20); /* no bytes for failures */
    vgpu_vm_stats_complete(&b, VGPU_S_OK, 300, 3000, 1, 2);
    vgpu_vm_stats_complete(&b, 99, 0, 0, 1, 2);                    /* out-of-range status */
    assert_int_equal(a.completed, 2);
    assert_int_equal(a.completions[VGPU_S_OK], 1);
    assert_int_equal(a.completions[VGPU_S_BAD_RANGE], 1);
    assert_int_equal(a.bytes_in, 10);
    assert_int_equal(a.bytes_out, 20);
    vgpu_vm_stats_merge(&a, &b);
    assert_int_equal(a.completed, 4);
    assert_int_equal(a.completions[VGPU_S_OK], 2);
    assert_int_equal(a.bytes_in, 11);
    assert_int_equal(a.exec_ns.count, 4);
    assert_int_equal(a.exec_ns.max, 3000);
    assert_int_equal(a.exec_ns_total, 4000);
}

static void test_table(void **state)
{
    static struct vgpu_vm_stats st;
    static char buf[4096];
    struct vgpu_stats_row rows[2];
    size_t len;
    (void)state;

    memset(&st, 0, sizeof(st));
    st.requests = 3;
    vgpu_vm_stats_complete(&st, VGPU_S_OK, 2000, 50000, 4096, 4096);
    vgpu_vm_stats_complete(&st, VGPU_S_OK, 2000, 50000, 4096, 4096);
    vgpu_vm_stats_complete(&st, VGPU_S_TIMEOUT, 2000, 9000000, 0, 0);
    rows[0] = (struct vgpu_stats_row) { .session_id = 7, .vm_id = 42, .vm_name = "guest-a",
                                        .prio = 1, .weight = 3, .inflight = 0,
                                        .charged_ns = 9100000, .st = &st };
    rows[1] = (struct vgpu_stats_row) { .vm_name = "(closed)", .st = &st };
    len = vgpu_stats_format(buf, sizeof(buf), "head line\n", rows, 2);
    assert_int_equal(len, strlen(buf));
    assert_non_null(strstr(buf, "head line\nsess "));
    assert_non_null(strstr(buf, "guest-a"));
    assert_non_null(strstr(buf, "timeout=1"));
    assert_non_null(strstr(buf, " 8192B ")); /* 2 x 4096, successful only */
    unsigned sess, vm, prio, weight, infl;
    unsigned long long req, ok, err;
    char name[32];
    const char *row = strstr(buf, "\n7 ") + 1;
    assert_int_equal(sscanf(row, "%u %u %31s %u %u %u %llu %llu %llu", &sess, &vm, name, &prio,
                            &weight, &infl, &req, &ok, &err), 9);
    assert_int_equal(vm, 42);
    assert_int_equal(req, 3);
    assert_int_equal(ok, 2);
    assert_int_equal(err, 1);
    assert_non_null(strstr(buf, "\n-    -      (closed)"));

    /* truncation never overruns */
    len = vgpu_stats_format(buf, 40, "head line\n", rows, 2);
    assert_true(len < 40);
    assert_int_equal(strlen(buf), len);
}

/* A table that does not fit ends with a line saying how many rows are missing. */
static void test_table_cut_says_so(void **state)
{
    static struct vgpu_vm_stats st;
    static struct vgpu_stats_row rows[100];
    static char buf[4096];
    unsigned shown = 0, missing = 0;
    const char *p;
    size_t len;
    (void)state;

    memset(&st, 0, sizeof(st));
    for (unsigned i = 0; i < 100; i++) {
        rows[i] = (struct vgpu_stats_row) { .session_id = i + 1, .vm_id = i + 1,
                                            .vm_name = "vm", .weight = 1, .st = &st };
    }
    len = vgpu_stats_format(buf, sizeof(buf), "head\n", rows, 100);
    assert_true(len < sizeof(buf));
    assert_int_equal(strlen(buf), len);
    assert_int_equal(buf[len - 1], '\n');
    for (p = strchr(buf, '\n') + 1; (p = strchr(p, '\n')) && p[1]; p++) {
        shown++;
    }
    shown--;    /* the column titles */
    p = strstr(buf, "more rows not shown");
    assert_non_null(p);
    while (p > buf && p[-1] != '(') {
        p--;
    }
    assert_int_equal(sscanf(p, "%u", &missing), 1);
    assert_int_equal(shown + missing, 100);

    /* everything fits: no such line */
    len = vgpu_stats_format(buf, sizeof(buf), "head\n", rows, 3);
    assert_null(strstr(buf, "more rows"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_quantiles),
        cmocka_unit_test(test_hist_bucket_bounds),
        cmocka_unit_test(test_complete_and_merge),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_cut_says_so),
    };
    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
