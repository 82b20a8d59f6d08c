/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Unit tests for the operation registry (mediator/ops/) and the CPU backend:
 * the range checks, every validator at its boundaries, and every exec_cpu
 * against a straightforward reference on random inputs, with a check that
 * nothing outside the operation's output range changed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mediator/backend.h"
#include "mediator/op.h"

#define D        ((uint64_t)VGPU_SHM_DATA_OFFSET)
#define SHM_1M   VGPU_SHM_MIN_SIZE
#define SHM_BIG  VGPU_SHM_MAX_SIZE          /* for count limits: validate never touches memory */
#define EXEC_SHM_SIZE (32ull << 20)

/* Compare by name so a failure says "overlap != ok", not "5 != 0". */
#define assert_status(got, want) \
    assert_string_equal(vgpu_status_name(got), vgpu_status_name(want))

static struct vgpu_sqe sqe_of(uint16_t opcode)
{
    struct vgpu_sqe s;

    memset(&s, 0, sizeof(s));
    s.opcode = opcode;
    return s;
}

static int validate(const struct vgpu_sqe *s, uint64_t shm_size)
{
    const struct vgpu_op *op = vgpu_op_lookup(s->opcode);

    assert_non_null(op);
    return op->validate(s, shm_size);
}

/* Deterministic xorshift64*, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_u64(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Uniform in [-1, 1). */
static float rng_float(void)
{
    return (float)((double)(rng_u64() >> 40) / (double)(1ull << 23) - 1.0);
}

/* ------------------------------------------------------------------------
 * Shared memory for exec tests: an anonymous mapping standing in for BAR2,
 * and a snapshot to prove that only the output range changed.
 * ------------------------------------------------------------------------ */
struct exec_fixture {
    struct vgpu_shm_view shm;
    uint8_t *snapshot;
};

static int exec_setup(void **state)
{
    struct exec_fixture *f = calloc(1, sizeof(*f));
    void *p;

    if (!f) {
        return -1;
    }
    p = mmap(NULL, EXEC_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    f->snapshot = malloc(EXEC_SHM_SIZE);
    if (p == MAP_FAILED || !f->snapshot) {
        free(f->snapshot);
        free(f);
        return -1;
    }
    f->shm.base = p;
    f->shm.size = EXEC_SHM_SIZE;
    /* Random bytes everywhere (rings included): outputs must not depend on them. */
    for (uint64_t i = 0; i < EXEC_SHM_SIZE; i += 8) {
        uint64_t r = rng_u64();
        memcpy(f->shm.base + i, &r, 8);
    }
    *state = f;
    return 0;
}

static int exec_teardown(void **state)
{
    struct exec_fixture *f = *state;

    munmap(f->shm.base, f->shm.size);
    free(f->snapshot);
    free(f);
    return 0;
}

static float *shm_floats(struct exec_fixture *f, uint64_t off)
{
    return (float *)(f->shm.base + off);
}

static void fill_floats(struct exec_fixture *f, uint64_t off, uint64_t n)
{
    float *p = shm_floats(f, off);

    for (uint64_t i = 0; i < n; i++) {
        p[i] = rng_float();
    }
}

static void snap(struct exec_fixture *f)
{
    memcpy(f->snapshot, f->shm.base, f->shm.size);
}

static void assert_same(struct exec_fixture *f, uint64_t from, uint64_t to)
{
    /* memcmp first: cmocka's byte-wise compare is slow on 32 MiB. */
    if (to > from && memcmp(f->shm.base + from, f->snapshot + from, to - from) != 0) {
        for (uint64_t i = from; i < to; i++) {
            if (f->shm.base[i] != f->snapshot[i]) {
                fail_msg("shm byte 0x%llx changed outside the output range",
                         (unsigned long long)i);
            }
        }
    }
}

/* Everything outside [off, off + len) is as snap() saw it. */
static void assert_only_changed(struct exec_fixture *f, uint64_t off, uint64_t len)
{
    assert_true(off + len <= f->shm.size);
    assert_same(f, 0, off);
    assert_same(f, off + len, f->shm.size);
}

static int run_op(struct exec_fixture *f, const struct vgpu_sqe *s, uint64_t *result)
{
    const struct vgpu_op *op = vgpu_op_lookup(s->opcode);

    assert_non_null(op);
    assert_status(op->validate(s, f->shm.size), VGPU_S_OK);
    return op->exec_cpu(s, &f->shm, result);
}

/* ------------------------------------------------------------------------
 * Range checks.
 * ------------------------------------------------------------------------ */
static void test_check_range(void **state)
{
    (void)state;
    assert_status(vgpu_check_range(D, 8, 4, SHM_1M), VGPU_S_OK);
    assert_status(vgpu_check_range(D, SHM_1M - D, 1, SHM_1M), VGPU_S_OK);  /* whole area */
    /* Ends exactly at the end of shm: ok; one byte more: bad. */
    assert_status(vgpu_check_range(SHM_1M - 8, 8, 8, SHM_1M), VGPU_S_OK);
    assert_status(vgpu_check_range(SHM_1M - 8, 9, 8, SHM_1M), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(SHM_1M - 7, 8, 1, SHM_1M), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(SHM_1M, 1, 1, SHM_1M), VGPU_S_BAD_RANGE);
    /* The ring area and the control page are never a data range. */
    assert_status(vgpu_check_range(0, 4, 4, SHM_1M), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(VGPU_SHM_SQ_OFFSET, 64, 4, SHM_1M), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(VGPU_SHM_CQ_OFFSET + 32, 32, 4, SHM_1M), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(D - 4, 8, 4, SHM_1M), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(D - 1, 1, 1, SHM_1M), VGPU_S_BAD_RANGE);
    /* Wrap-around: off + len would overflow to a small number. */
    assert_status(vgpu_check_range(UINT64_MAX - 3, 8, 4, SHM_1M), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(UINT64_MAX - 3, 8, 4, UINT64_MAX), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(D, UINT64_MAX, 1, SHM_1M), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(D + 4, UINT64_MAX - 3, 4, SHM_1M), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(UINT64_MAX, 0, 1, SHM_1M), VGPU_S_BAD_RANGE);
    /* Zero length: accepted only at a position inside the area or at its end. */
    assert_status(vgpu_check_range(D, 0, 4, SHM_1M), VGPU_S_OK);
    assert_status(vgpu_check_range(SHM_1M, 0, 4, SHM_1M), VGPU_S_OK);
    assert_status(vgpu_check_range(SHM_1M + 4, 0, 4, SHM_1M), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(0, 0, 4, SHM_1M), VGPU_S_BAD_RANGE);
    /* Alignment, checked after the range. */
    assert_status(vgpu_check_range(D + 2, 4, 4, SHM_1M), VGPU_S_BAD_ALIGN);
    assert_status(vgpu_check_range(D + 4, 8, 8, SHM_1M), VGPU_S_BAD_ALIGN);
    assert_status(vgpu_check_range(D + 1, 3, 1, SHM_1M), VGPU_S_OK);
    assert_status(vgpu_check_range(D + 1, 3, 0, SHM_1M), VGPU_S_OK);
    assert_status(vgpu_check_range(SHM_1M - 2, 4, 4, SHM_1M), VGPU_S_BAD_RANGE);
    /* A mapping too small to have a data area has no valid range. */
    assert_status(vgpu_check_range(D, 0, 1, D - 1), VGPU_S_BAD_RANGE);
    assert_status(vgpu_check_range(D, 0, 1, D), VGPU_S_OK);
    assert_status(vgpu_check_range(D, 1, 1, D), VGPU_S_BAD_RANGE);
}

static void test_ranges_overlap(void **state)
{
    (void)state;
    assert_int_equal(vgpu_ranges_overlap(100, 10, 110, 10), 0);     /* adjacent */
    assert_int_equal(vgpu_ranges_overlap(110, 10, 100, 10), 0);
    assert_int_equal(vgpu_ranges_overlap(100, 11, 110, 10), 1);     /* one byte */
    assert_int_equal(vgpu_ranges_overlap(110, 10, 100, 11), 1);
    assert_int_equal(vgpu_ranges_overlap(100, 10, 100, 10), 1);     /* identical */
    assert_int_equal(vgpu_ranges_overlap(100, 100, 150, 1), 1);     /* contained */
    assert_int_equal(vgpu_ranges_overlap(150, 1, 100, 100), 1);
    assert_int_equal(vgpu_ranges_overlap(100, 0, 100, 10), 0);      /* empty */
    assert_int_equal(vgpu_ranges_overlap(105, 10, 100, 0), 0);
    /* Near 2^64 nothing wraps. */
    assert_int_equal(vgpu_ranges_overlap(UINT64_MAX - 10, 10, 0, 10), 0);
    assert_int_equal(vgpu_ranges_overlap(0, 10, UINT64_MAX - 10, 10), 0);
    assert_int_equal(vgpu_ranges_overlap(UINT64_MAX - 10, 10, UINT64_MAX - 1, 1), 1);
}

/* ------------------------------------------------------------------------
 * Registry.
 * ------------------------------------------------------------------------ */
static void test_registry(void **state)
{
    (void)state;
    for (uint32_t i = 0; i < VGPU_OP_COUNT; i++) {
        const struct vgpu_op *op = vgpu_op_lookup(i);

        assert_non_null(op);
        assert_int_equal(op->opcode, i);
        assert_string_equal(op->name, vgpu_op_name(i));
        assert_non_null(op->validate);
        assert_non_null(op->cost_ns);
        assert_non_null(op->bytes);
        assert_non_null(op->exec_cpu);
    }
    assert_null(vgpu_op_lookup(VGPU_OP_COUNT));
    assert_null(vgpu_op_lookup(0xffff));
    assert_null(vgpu_op_lookup(UINT32_MAX));
}

/* ------------------------------------------------------------------------
 * Validators.
 * ------------------------------------------------------------------------ */
static void test_validate_nop(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_NOP);

    (void)state;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.flags = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.flags = 0x8000;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

static void test_validate_gpu_info(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_GPU_INFO);
    const uint64_t sz = sizeof(struct vgpu_gpu_info);

    (void)state;
    s.args.gpu_info.out_off = D;
    s.args.gpu_info.out_len = sz;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.gpu_info.out_len = sz - 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.gpu_info.out_len = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.gpu_info.out_len = 4096;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.gpu_info.out_off = D + 4;
    s.args.gpu_info.out_len = sz;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    s.args.gpu_info.out_off = SHM_1M - sz;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.gpu_info.out_off = SHM_1M - sz + 8;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.gpu_info.out_off = VGPU_SHM_CQ_OFFSET;        /* would overwrite completions */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.gpu_info.out_off = UINT64_MAX - 7;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.gpu_info.out_off = D;
    s.args.gpu_info.out_len = UINT64_MAX;               /* declared buffer past the end */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.gpu_info.out_len = sz;
    s.flags = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

static void test_validate_vector_add(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_VECTOR_ADD);
    struct vgpu_args_vector_add *a = &s.args.vector_add;

    (void)state;
    a->n = 1024;
    a->a_off = D;
    a->b_off = D + 4096;
    a->out_off = D + 8192;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);

    /* Counts: 0, max, max + 1 (max needs 3 GiB of data area). */
    a->n = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    a->n = VGPU_MAX_ELEMS;
    a->a_off = D;
    a->b_off = D + VGPU_MAX_ELEMS * 4;
    a->out_off = D + 2 * VGPU_MAX_ELEMS * 4;
    assert_status(validate(&s, SHM_BIG), VGPU_S_OK);
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->n = VGPU_MAX_ELEMS + 1;
    assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);
    a->n = UINT64_MAX;                                  /* n * 4 would wrap */
    assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);
    a->n = 1ull << 62;
    assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);

    /* Each range at the end of shm, one past, in the rings, wrapping. */
    a->n = 16;
    a->a_off = D;
    a->b_off = D + 64;
    a->out_off = SHM_1M - 64;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    a->out_off = SHM_1M - 60;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->out_off = D + 128;
    a->b_off = VGPU_SHM_SQ_OFFSET;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->b_off = UINT64_MAX - 3;
    a->n = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->b_off = D + 64;
    a->a_off = UINT64_MAX - 63;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->a_off = D;

    /* Alignment of each pointer. */
    a->a_off = D + 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    a->a_off = D;
    a->b_off = D + 65;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    a->b_off = D + 64;
    a->out_off = D + 131;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);

    /* Overlap: exact aliasing of out with a or b is allowed, partial is not. */
    a->n = 16;
    a->a_off = D;
    a->b_off = D + 64;
    a->out_off = D;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    a->out_off = D + 64;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    a->a_off = a->b_off = a->out_off = D;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    a->b_off = D + 64;
    a->out_off = D + 4;
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    a->out_off = D + 60;                                /* last of a, first of b */
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    a->out_off = D + 124;                               /* last element of b */
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    a->out_off = D + 128;                               /* adjacent: fine */
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    a->b_off = D + 4;                                   /* inputs may overlap */
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);

    s.flags = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

static void test_validate_saxpy(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_SAXPY);
    struct vgpu_args_saxpy *a = &s.args.saxpy;

    (void)state;
    a->x_off = D;
    a->y_off = D + 4096;
    a->n = 1024;
    a->alpha = 2.0f;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);

    a->n = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    a->n = VGPU_MAX_ELEMS;
    a->y_off = D + VGPU_MAX_ELEMS * 4;
    assert_status(validate(&s, SHM_BIG), VGPU_S_OK);
    a->n = VGPU_MAX_ELEMS + 1;
    assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);

    a->n = 1024;
    a->y_off = SHM_1M - 4096;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    a->y_off = SHM_1M - 4092;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->y_off = UINT64_MAX - 3;
    a->n = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->y_off = D + 4096;
    a->x_off = VGPU_SHM_SQ_OFFSET + 64;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->x_off = D + 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    a->x_off = D;
    a->y_off = D + 4098;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);

    /* x and y must not overlap at all, not even exactly. */
    a->n = 16;
    a->x_off = D;
    a->y_off = D;
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    a->y_off = D + 60;
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    a->y_off = D + 64;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);

    a->pad = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    a->pad = 0;
    s.flags = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    /* flags/pad come first: a bad pad beats a bad range. */
    a->pad = 1;
    s.flags = 0;
    a->x_off = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

static void test_validate_reduce_sum(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_REDUCE_SUM);
    struct vgpu_args_reduce_sum *a = &s.args.reduce_sum;

    (void)state;
    a->in_off = D;
    a->n = (SHM_1M - D) / 4;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    a->n++;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->n = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    a->n = VGPU_MAX_ELEMS;
    assert_status(validate(&s, SHM_BIG), VGPU_S_OK);
    a->n = VGPU_MAX_ELEMS + 1;
    assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);
    a->n = 2;
    a->in_off = UINT64_MAX - 3;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->in_off = VGPU_SHM_CQ_OFFSET;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    a->in_off = D + 6;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    a->in_off = SHM_1M - 8;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.flags = 4;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

static void sgemm_args(struct vgpu_sqe *s, uint32_t m, uint32_t n, uint32_t k,
                       uint64_t a_off, uint64_t b_off, uint64_t c_off)
{
    *s = sqe_of(VGPU_OP_SGEMM);
    s->args.sgemm.m = m;
    s->args.sgemm.n = n;
    s->args.sgemm.k = k;
    s->args.sgemm.a_off = a_off;
    s->args.sgemm.b_off = b_off;
    s->args.sgemm.c_off = c_off;
    s->args.sgemm.alpha = 1.0f;
}

static void test_validate_sgemm(void **state)
{
    const uint64_t max = VGPU_MAX_GEMM_DIM;
    const uint64_t big = max * max * 4;                 /* 1 GiB per matrix */
    struct vgpu_sqe s;

    (void)state;
    sgemm_args(&s, 16, 32, 8, D, D + 16 * 8 * 4, D + 65536);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);

    /* Each dimension: 0, max, max + 1. */
    for (int dim = 0; dim < 3; dim++) {
        uint32_t *p = dim == 0 ? &s.args.sgemm.m : dim == 1 ? &s.args.sgemm.n : &s.args.sgemm.k;

        sgemm_args(&s, (uint32_t)max, (uint32_t)max, (uint32_t)max, D, D + big, D + 2 * big);
        assert_status(validate(&s, SHM_BIG), VGPU_S_OK);
        *p = 0;
        assert_status(validate(&s, SHM_BIG), VGPU_S_BAD_ARGS);
        *p = (uint32_t)max + 1;
        assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);
        *p = UINT32_MAX;
        assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);
    }

    /* Ranges, computed per matrix: C ends exactly at shm end, then one past. */
    sgemm_args(&s, 16, 32, 8, D, D + 512, SHM_1M - 16 * 32 * 4);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.sgemm.c_off += 4;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.sgemm.c_off = D + 65536;
    s.args.sgemm.b_off = UINT64_MAX - 3;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.sgemm.b_off = VGPU_SHM_SQ_OFFSET;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.sgemm.b_off = D + 512;
    s.args.sgemm.a_off = D + 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    s.args.sgemm.a_off = D;
    s.args.sgemm.c_off = D + 65538;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);

    /* A is 16x8 = 512 bytes at D, B 8x32 = 1024 bytes at D + 512. */
    s.args.sgemm.c_off = D + 1536;                      /* adjacent to B */
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.sgemm.c_off = D + 1532;                      /* last float of B */
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    s.args.sgemm.c_off = D;                             /* C on A */
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    s.args.sgemm.c_off = D + 512;                       /* C on B exactly */
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    s.args.sgemm.c_off = D + 65536;
    s.args.sgemm.b_off = D;                             /* A and B may share */
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);

    s.args.sgemm.pad = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.sgemm.pad = 0;
    s.flags = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

static void memcpy_args(struct vgpu_sqe *s, uint32_t mode, uint64_t src, uint64_t dst,
                        uint64_t len)
{
    *s = sqe_of(VGPU_OP_MEMCPY);
    s->args.memcpy.mode = mode;
    s->args.memcpy.src_off = src;
    s->args.memcpy.dst_off = dst;
    s->args.memcpy.len = len;
}

static void test_validate_memcpy(void **state)
{
    const uint64_t max = VGPU_MAX_COPY_BYTES;
    struct vgpu_sqe s;

    (void)state;
    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, D, D + 4096, 4096);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.memcpy.len = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, D, D + max, max);
    assert_status(validate(&s, SHM_BIG), VGPU_S_OK);
    s.args.memcpy.len = max + 1;
    assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);
    s.args.memcpy.len = UINT64_MAX;
    assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);

    /* Byte granular: no alignment; ranges end exactly at shm end or fail. */
    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, D + 1, SHM_1M - 3, 3);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.memcpy.len = 4;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, UINT64_MAX - 3, D, 8);
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, D, VGPU_SHM_CQ_OFFSET, 32);
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);

    /* Roundtrip: src and dst must not overlap, not even exactly. */
    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, D, D, 16);
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, D, D + 15, 16);
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, D + 15, D, 16);
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, D, D + 16, 16);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);

    /* H2D ignores dst, D2H ignores src: garbage there is fine. */
    memcpy_args(&s, VGPU_MEMCPY_H2D, D, UINT64_MAX, 4096);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    memcpy_args(&s, VGPU_MEMCPY_H2D, D, D, 4096);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    memcpy_args(&s, VGPU_MEMCPY_H2D, 0, D, 4096);
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    memcpy_args(&s, VGPU_MEMCPY_D2H, UINT64_MAX, D, 4096);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    memcpy_args(&s, VGPU_MEMCPY_D2H, D, 0, 4096);
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);

    memcpy_args(&s, 3, D, D + 4096, 16);                /* unknown mode */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    memcpy_args(&s, UINT32_MAX, D, D + 4096, 16);
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, D, D + 4096, 16);
    s.args.memcpy.pad = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.memcpy.pad = 0;
    s.flags = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

/* ------------------------------------------------------------------------
 * Cost and byte accounting: monotone, and no overflow on unvalidated input.
 * ------------------------------------------------------------------------ */
static void test_cost_and_bytes(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_VECTOR_ADD);
    const struct vgpu_op *op = vgpu_op_lookup(VGPU_OP_VECTOR_ADD);
    uint64_t in, out, small, large;

    (void)state;
    s.args.vector_add.n = 1000;
    op->bytes(&s, &in, &out);
    assert_int_equal(in, 8000);
    assert_int_equal(out, 4000);
    small = op->cost_ns(&s);
    s.args.vector_add.n = 1000000;
    large = op->cost_ns(&s);
    assert_true(small > 0 && large > small);
    s.args.vector_add.n = UINT64_MAX;
    assert_true(op->cost_ns(&s) >= large);

    sgemm_args(&s, 64, 64, 64, D, D, D);
    op = vgpu_op_lookup(VGPU_OP_SGEMM);
    small = op->cost_ns(&s);
    sgemm_args(&s, 1024, 1024, 1024, D, D, D);
    large = op->cost_ns(&s);
    assert_true(large > small * 1000);                  /* flops dominate */
    op->bytes(&s, &in, &out);
    assert_int_equal(in, 2 * 1024 * 1024 * 4);          /* beta == 0: C not read */
    assert_int_equal(out, 1024 * 1024 * 4);
    s.args.sgemm.beta = 1.0f;
    op->bytes(&s, &in, &out);
    assert_int_equal(in, 3 * 1024 * 1024 * 4);
    sgemm_args(&s, UINT32_MAX, UINT32_MAX, UINT32_MAX, D, D, D);
    assert_true(op->cost_ns(&s) >= large);              /* clamped, not wrapped */

    memcpy_args(&s, VGPU_MEMCPY_H2D, D, D, 4096);
    op = vgpu_op_lookup(VGPU_OP_MEMCPY);
    op->bytes(&s, &in, &out);
    assert_int_equal(in, 4096);
    assert_int_equal(out, 0);
    s.args.memcpy.mode = VGPU_MEMCPY_D2H;
    op->bytes(&s, &in, &out);
    assert_int_equal(in, 0);
    assert_int_equal(out, 4096);
    s.args.memcpy.mode = VGPU_MEMCPY_ROUNDTRIP;
    op->bytes(&s, &in, &out);
    assert_int_equal(in, 4096);
    assert_int_equal(out, 4096);

    for (uint32_t i = 0; i < VGPU_OP_COUNT; i++) {
        struct vgpu_sqe z = sqe_of((uint16_t)i);

        op = vgpu_op_lookup(i);
        assert_true(op->cost_ns(&z) > 0);
    }
}

/* ------------------------------------------------------------------------
 * exec_cpu against references.
 * ------------------------------------------------------------------------ */
static void test_exec_nop(void **state)
{
    struct exec_fixture *f = *state;
    struct vgpu_sqe s = sqe_of(VGPU_OP_NOP);
    uint64_t result = 99;

    snap(f);
    assert_status(run_op(f, &s, &result), VGPU_S_OK);
    assert_int_equal(result, 0);
    assert_only_changed(f, D, 0);
}

static void test_exec_gpu_info(void **state)
{
    struct exec_fixture *f = *state;
    struct vgpu_sqe s = sqe_of(VGPU_OP_GPU_INFO);
    struct vgpu_gpu_info info;
    uint64_t result = 0;

    s.args.gpu_info.out_off = D + 4096;
    s.args.gpu_info.out_len = 4096;                     /* only sizeof(info) is written */
    snap(f);
    assert_status(run_op(f, &s, &result), VGPU_S_OK);
    assert_int_equal(result, sizeof(info));
    assert_only_changed(f, D + 4096, sizeof(info));

    memcpy(&info, f->shm.base + D + 4096, sizeof(info));
    assert_non_null(memchr(info.name, '\0', sizeof(info.name)));
    assert_memory_equal(info.name, "cpu: ", 5);
    assert_true(strlen(info.name) > 5);
    assert_int_equal(info.backend, VGPU_BACKEND_CPU);
    assert_true(info.sm_count >= 1);
    assert_true(info.total_mem > 0);
    assert_true(info.free_mem <= info.total_mem);
    assert_int_equal(info.cc_major, 0);
    assert_int_equal(info.driver_version, 0);
    assert_int_equal(info.pad, 0);
}

static void test_exec_vector_add(void **state)
{
    struct exec_fixture *f = *state;
    const uint64_t sizes[] = { 1, 3, 17, 1000, 65536 + 5 };
    struct vgpu_sqe s = sqe_of(VGPU_OP_VECTOR_ADD);
    struct vgpu_args_vector_add *a = &s.args.vector_add;
    const uint64_t a_off = D, b_off = D + (1 << 20), out_off = D + (2 << 20);
    uint64_t result;

    for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
        uint64_t n = sizes[t];
        const float *x = shm_floats(f, a_off), *y = shm_floats(f, b_off);
        const float *out = shm_floats(f, out_off);

        fill_floats(f, a_off, n);
        fill_floats(f, b_off, n);
        a->a_off = a_off;
        a->b_off = b_off;
        a->out_off = out_off;
        a->n = n;
        snap(f);
        assert_status(run_op(f, &s, &result), VGPU_S_OK);
        assert_int_equal(result, n);
        assert_only_changed(f, out_off, n * 4);
        for (uint64_t i = 0; i < n; i++) {
            assert_true(out[i] == x[i] + y[i]);     /* one IEEE add: exact */
        }
    }

    /* In place: out aliases b exactly. */
    {
        const uint64_t n = 4099;
        float *ref = malloc(n * sizeof(float));

        assert_non_null(ref);
        fill_floats(f, a_off, n);
        fill_floats(f, b_off, n);
        for (uint64_t i = 0; i < n; i++) {
            ref[i] = shm_floats(f, a_off)[i] + shm_floats(f, b_off)[i];
        }
        a->out_off = b_off;
        a->n = n;
        snap(f);
        assert_status(run_op(f, &s, &result), VGPU_S_OK);
        assert_only_changed(f, b_off, n * 4);
        assert_memory_equal(shm_floats(f, b_off), ref, n * sizeof(float));
        free(ref);
    }
}

static void test_exec_saxpy(void **state)
{
    struct exec_fixture *f = *state;
    const uint64_t n = 100003;
    const uint64_t x_off = D + 4, y_off = D + (1 << 20);
    struct vgpu_sqe s = sqe_of(VGPU_OP_SAXPY);
    float *y0 = malloc(n * sizeof(float));
    const float alpha = -1.75f;
    uint64_t result;

    assert_non_null(y0);
    fill_floats(f, x_off, n);
    fill_floats(f, y_off, n);
    memcpy(y0, shm_floats(f, y_off), n * sizeof(float));
    s.args.saxpy.x_off = x_off;
    s.args.saxpy.y_off = y_off;
    s.args.saxpy.n = n;
    s.args.saxpy.alpha = alpha;
    snap(f);
    assert_status(run_op(f, &s, &result), VGPU_S_OK);
    assert_int_equal(result, n);
    assert_only_changed(f, y_off, n * 4);
    for (uint64_t i = 0; i < n; i++) {
        float x = shm_floats(f, x_off)[i];
        double ref = (double)alpha * x + y0[i];
        double tol = 2.0 * FLT_EPSILON * (fabs((double)alpha * x) + fabs(y0[i]));

        assert_true(fabs(shm_floats(f, y_off)[i] - ref) <= tol);
    }
    free(y0);
}

static double reduce_result(uint64_t bits)
{
    double d;

    memcpy(&d, &bits, sizeof(d));
    return d;
}

/* Reference: Neumaier-compensated sum in long double. */
static long double ref_sum(const float *x, uint64_t n, long double *abs_sum)
{
    long double sum = 0, c = 0, as = 0;

    for (uint64_t i = 0; i < n; i++) {
        long double v = x[i], t = sum + v;

        c += fabsl(sum) >= fabsl(v) ? (sum - t) + v : (v - t) + sum;
        sum = t;
        as += fabsl(v);
    }
    *abs_sum = as;
    return sum + c;
}

static void test_exec_reduce_sum(void **state)
{
    struct exec_fixture *f = *state;
    const uint64_t sizes[] = { 1, 7, 8, 1023, 1025, 3001, 1u << 20 };
    struct vgpu_sqe s = sqe_of(VGPU_OP_REDUCE_SUM);
    uint64_t result;

    for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
        const uint64_t n = sizes[t];
        float *x = shm_floats(f, D + 4096);
        long double ref, abs_sum;
        double got;

        fill_floats(f, D + 4096, n);
        /* A few large values of both signs that cancel, to stress the order. */
        for (uint64_t i = 0; i + 1 < n; i += 4096) {
            x[i] = 1.0e7f;
            x[i + 1] = -1.0e7f;
        }
        s.args.reduce_sum.in_off = D + 4096;
        s.args.reduce_sum.n = n;
        snap(f);
        assert_status(run_op(f, &s, &result), VGPU_S_OK);
        assert_only_changed(f, D, 0);
        got = reduce_result(result);
        ref = ref_sum(x, n, &abs_sum);
        /* The documented bound of reduce_sum.c: (128 + log2 n) ulps of sum|x|. */
        assert_true(fabsl((long double)got - ref) <= 2e-14L * abs_sum);
        if (n <= 8) {
            assert_true((long double)got == ref);       /* few terms: exact */
        }
    }

    /* Naive float accumulation would be far off here; double pairwise is not. */
    {
        const uint64_t n = 1u << 20;
        float *x = shm_floats(f, D + 4096);
        double got;

        for (uint64_t i = 0; i < n; i++) {
            x[i] = 0.1f;
        }
        s.args.reduce_sum.n = n;
        assert_status(run_op(f, &s, &result), VGPU_S_OK);
        got = reduce_result(result);
        assert_true(fabs(got - (double)0.1f * n) <= 1e-12 * (double)n);
    }
}

static void check_sgemm(struct exec_fixture *f, uint32_t m, uint32_t n, uint32_t k,
                        float alpha, float beta, int nan_c)
{
    const uint64_t a_off = D, b_off = D + (4 << 20), c_off = D + (8 << 20);
    const float *A = shm_floats(f, a_off), *B = shm_floats(f, b_off);
    float *C = shm_floats(f, c_off);
    float *c0 = malloc((size_t)m * n * sizeof(float));
    struct vgpu_sqe s;
    uint64_t result = 0;

    assert_non_null(c0);
    assert_true((uint64_t)m * k * 4 <= (4 << 20) && (uint64_t)k * n * 4 <= (4 << 20));
    fill_floats(f, a_off, (uint64_t)m * k);
    fill_floats(f, b_off, (uint64_t)k * n);
    fill_floats(f, c_off, (uint64_t)m * n);
    if (nan_c) {
        for (size_t i = 0; i < (size_t)m * n; i += 3) {
            C[i] = NAN;
        }
    }
    memcpy(c0, C, (size_t)m * n * sizeof(float));

    sgemm_args(&s, m, n, k, a_off, b_off, c_off);
    s.args.sgemm.alpha = alpha;
    s.args.sgemm.beta = beta;
    snap(f);
    assert_status(run_op(f, &s, &result), VGPU_S_OK);
    assert_int_equal(result, (uint64_t)m * n);
    assert_only_changed(f, c_off, (uint64_t)m * n * 4);

    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++) {
            double dot = 0, mag = 0, cterm, ref, tol;

            for (size_t p = 0; p < k; p++) {
                dot += (double)A[i * k + p] * B[p * n + j];
                mag += fabs((double)A[i * k + p] * B[p * n + j]);
            }
            /* BLAS: beta == 0 does not read C, alpha == 0 does not read A, B. */
            cterm = beta != 0.0f ? beta * (double)c0[i * n + j] : 0.0;
            ref = (alpha != 0.0f ? alpha * dot : 0.0) + cterm;
            tol = 2.0 * (k + 2) * FLT_EPSILON * (fabs(alpha) * mag + fabs(cterm) + 1e-30);
            if (!(fabs(C[i * n + j] - ref) <= tol)) {
                fail_msg("sgemm %ux%ux%u alpha %g beta %g: C[%zu][%zu] = %.9g, want %.9g",
                         m, n, k, alpha, beta, i, j, C[i * n + j], ref);
            }
        }
    }
    free(c0);
}

static void test_exec_sgemm(void **state)
{
    struct exec_fixture *f = *state;

    check_sgemm(f, 1, 1, 1, 1.0f, 0.0f, 0);
    check_sgemm(f, 37, 53, 71, 1.0f, 0.0f, 0);
    check_sgemm(f, 37, 53, 71, 0.5f, -2.0f, 0);
    /* Crosses every tile boundary (64 x 256 x 128) with ragged edges. */
    check_sgemm(f, 130, 300, 260, -1.25f, 0.75f, 0);
    check_sgemm(f, 65, 257, 129, 2.0f, 1.0f, 0);
    /* beta == 0 must not propagate NaNs from C; alpha == 0 only scales C. */
    check_sgemm(f, 33, 40, 17, 1.0f, 0.0f, 1);
    check_sgemm(f, 33, 40, 17, 0.0f, 3.0f, 0);
}

static void test_exec_memcpy(void **state)
{
    struct exec_fixture *f = *state;
    const uint64_t len = (3u << 20) + 13;               /* several bounce chunks */
    const uint64_t src = D + 3, dst = D + (8 << 20) + 1;
    struct vgpu_sqe s;
    uint64_t result;

    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, src, dst, len);
    snap(f);
    assert_status(run_op(f, &s, &result), VGPU_S_OK);
    assert_int_equal(result, len);
    assert_only_changed(f, dst, len);
    assert_memory_equal(f->shm.base + dst, f->snapshot + src, len);

    memcpy_args(&s, VGPU_MEMCPY_H2D, src, UINT64_MAX, len);
    snap(f);
    assert_status(run_op(f, &s, &result), VGPU_S_OK);
    assert_int_equal(result, len);
    assert_only_changed(f, D, 0);

    memcpy_args(&s, VGPU_MEMCPY_D2H, UINT64_MAX, dst, len);
    snap(f);
    assert_status(run_op(f, &s, &result), VGPU_S_OK);
    assert_int_equal(result, len);
    assert_only_changed(f, dst, len);
    for (uint64_t i = 0; i < len; i++) {
        if (f->shm.base[dst + i] != 0) {
            fail_msg("d2h: byte %llu not zeroed", (unsigned long long)i);
        }
    }

    memcpy_args(&s, VGPU_MEMCPY_ROUNDTRIP, D + 7, D + 100, 1);
    snap(f);
    assert_status(run_op(f, &s, &result), VGPU_S_OK);
    assert_int_equal(result, 1);
    assert_only_changed(f, D + 100, 1);
    assert_int_equal(f->shm.base[D + 100], f->snapshot[D + 7]);
}

/* ------------------------------------------------------------------------
 * Randomised: whatever a guest writes into an SQE, a request that validates
 * executes inside its ranges. The view is 1 MiB between PROT_NONE guard
 * pages, so any access beyond the view faults; the ring area must stay
 * untouched.
 * ------------------------------------------------------------------------ */
static uint64_t fuzz_off(uint64_t size)
{
    uint64_t r = rng_u64(), off;

    switch (r % 8) {
    case 0: off = rng_u64() % size; break;                      /* may hit the rings */
    case 1: off = size - rng_u64() % 4096; break;               /* near the end */
    case 2: off = UINT64_MAX - rng_u64() % 4096; break;         /* wraps */
    case 3: off = rng_u64(); break;
    case 4: off = D - rng_u64() % 256; break;                   /* just below data */
    default: off = D + rng_u64() % (size - D); break;
    }
    return (r >> 8) % 4 ? off & ~3ull : off;
}

static uint64_t fuzz_count(uint64_t max, uint64_t typical)
{
    uint64_t r = rng_u64();

    switch (r % 8) {
    case 0: return 0;
    case 1: return max;
    case 2: return max + 1;
    case 3: return rng_u64();
    default: return 1 + rng_u64() % typical;
    }
}

/* ------------------------------------------------------------------------
 * Parts: running a request part by part (as the executor does with long
 * requests) gives exactly the outputs and result of running it whole.
 * ------------------------------------------------------------------------ */
static void check_parts(struct exec_fixture *f, const struct vgpu_sqe *s, bool exact_result)
{
    static const uint32_t wants[] = { 1, 2, 3, 7, 64, 1024 };
    const struct vgpu_op *op = vgpu_op_lookup(s->opcode);
    uint8_t *whole = malloc(f->shm.size), *input = malloc(f->shm.size);
    uint64_t want_result;

    assert_non_null(whole);
    assert_non_null(input);
    assert_non_null(op->parts);
    memcpy(input, f->shm.base, f->shm.size);
    assert_status(run_op(f, s, &want_result), VGPU_S_OK);
    memcpy(whole, f->shm.base, f->shm.size);

    for (unsigned w = 0; w < sizeof(wants) / sizeof(wants[0]); w++) {
        uint32_t n = op->parts(s, wants[w]);
        uint64_t acc = 0;

        assert_true(n >= 1 && n <= wants[w]);
        memcpy(f->shm.base, input, f->shm.size);
        for (uint32_t i = 0; i < n; i++) {
            struct vgpu_sqe part;
            uint64_t r;

            op->part(s, i, n, &part);
            assert_status(op->validate(&part, f->shm.size), VGPU_S_OK);
            assert_status(op->exec_cpu(&part, &f->shm, &r), VGPU_S_OK);
            if (op->combine) {
                op->combine(&acc, r);
            } else {
                acc += r;
            }
        }
        if (memcmp(f->shm.base, whole, f->shm.size) != 0) {
            fail_msg("%s in %u parts: outputs differ from one execution", op->name, n);
        }
        if (exact_result) {
            assert_int_equal(acc, want_result);
        } else {
            double a, b;

            memcpy(&a, &acc, sizeof(a));
            memcpy(&b, &want_result, sizeof(b));
            assert_true(fabs(a - b) <= 1e-12 * fabs(b) + 1e-9);
        }
    }
    free(whole);
    free(input);
}

static void test_parts(void **state)
{
    struct exec_fixture *f = *state;
    const uint64_t n = 100003;                 /* not a multiple of any grain */
    const uint64_t a = D, b = D + (1 << 20), c = D + (2 << 20);
    struct vgpu_sqe s;

    fill_floats(f, a, n);
    fill_floats(f, b, n);
    fill_floats(f, c, n);

    s = sqe_of(VGPU_OP_VECTOR_ADD);
    s.args.vector_add = (struct vgpu_args_vector_add) { a, b, c, n };
    check_parts(f, &s, true);
    s.args.vector_add = (struct vgpu_args_vector_add) { a, b, a, n };   /* in place */
    check_parts(f, &s, true);

    s = sqe_of(VGPU_OP_SAXPY);
    s.args.saxpy = (struct vgpu_args_saxpy) { .x_off = a, .y_off = c, .n = n, .alpha = 1.5f };
    check_parts(f, &s, true);

    s = sqe_of(VGPU_OP_REDUCE_SUM);
    s.args.reduce_sum = (struct vgpu_args_reduce_sum) { a, n };
    check_parts(f, &s, false);

    s = sqe_of(VGPU_OP_MEMCPY);
    s.args.memcpy = (struct vgpu_args_memcpy) { .src_off = a + 4, .dst_off = c + 12,
                                                .len = (3 << 20) / 2 + 5,
                                                .mode = VGPU_MEMCPY_ROUNDTRIP };
    s.args.memcpy.dst_off = D + (4 << 20);
    check_parts(f, &s, true);

    s = sqe_of(VGPU_OP_SGEMM);
    s.args.sgemm = (struct vgpu_args_sgemm) { .a_off = a, .b_off = b, .c_off = c, .m = 133,
                                              .n = 70, .k = 301, .alpha = 0.5f, .beta = 2.0f };
    check_parts(f, &s, true);
    s.args.sgemm.beta = 0.0f;
    check_parts(f, &s, true);
}

static void test_idempotent(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_VECTOR_ADD);
    const struct vgpu_op *op = vgpu_op_lookup(VGPU_OP_VECTOR_ADD);
    (void)state;

    s.args.vector_add = (struct vgpu_args_vector_add) { D, D + 64, D + 128, 16 };
    assert_true(op->idempotent(&s));
    s.args.vector_add.out_off = D;
    assert_false(op->idempotent(&s));
    s.args.vector_add.out_off = D + 64;
    assert_false(op->idempotent(&s));

    assert_null(vgpu_op_lookup(VGPU_OP_SAXPY)->idempotent);   /* y is in and out */

    s = sqe_of(VGPU_OP_SGEMM);
    op = vgpu_op_lookup(VGPU_OP_SGEMM);
    s.args.sgemm.beta = 0.0f;
    assert_true(op->idempotent(&s));
    s.args.sgemm.beta = 1.0f;
    assert_false(op->idempotent(&s));

    for (uint16_t code = VGPU_OP_NOP; code < VGPU_OP_COUNT; code++) {
        if (code != VGPU_OP_SAXPY && code != VGPU_OP_VECTOR_ADD && code != VGPU_OP_SGEMM) {
            s = sqe_of(code);
            assert_true(vgpu_op_lookup(code)->idempotent(&s));
        }
    }
}

static void test_fuzz_validate_exec(void **state)
{
    const uint64_t size = SHM_1M, page = 4096;
    const unsigned iters = 20000;
    struct vgpu_shm_view view;
    uint8_t *map, *rings;
    unsigned executed[VGPU_OP_COUNT] = { 0 };

    (void)state;
    map = mmap(NULL, size + 2 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + page, size, PROT_READ | PROT_WRITE), 0);
    view.base = map + page;
    view.size = size;
    for (uint64_t i = 0; i < size; i += 4) {
        float v = rng_float();
        memcpy(view.base + i, &v, 4);
    }
    rings = malloc(D);
    assert_non_null(rings);
    memcpy(rings, view.base, D);

    for (unsigned it = 0; it < iters; it++) {
        struct vgpu_sqe s = sqe_of((uint16_t)(rng_u64() % (VGPU_OP_COUNT + 1)));
        const struct vgpu_op *op = vgpu_op_lookup(s.opcode);
        uint64_t result;
        int st;

        if (!op) {
            assert_int_equal(s.opcode, VGPU_OP_COUNT);
            continue;
        }
        /* Occasionally garbage in flags and the raw argument bytes. */
        if (rng_u64() % 16 == 0) {
            s.flags = (uint16_t)rng_u64();
        }
        switch (s.opcode) {
        case VGPU_OP_GPU_INFO:
            s.args.gpu_info.out_off = fuzz_off(size);
            s.args.gpu_info.out_len = fuzz_count(UINT64_MAX - 1, 256);
            break;
        case VGPU_OP_VECTOR_ADD:
            s.args.vector_add.a_off = fuzz_off(size);
            s.args.vector_add.b_off = rng_u64() % 4 ? fuzz_off(size) : s.args.vector_add.a_off;
            s.args.vector_add.out_off = rng_u64() % 4 ? fuzz_off(size) : s.args.vector_add.b_off;
            s.args.vector_add.n = fuzz_count(VGPU_MAX_ELEMS, 8192);
            break;
        case VGPU_OP_SAXPY:
            s.args.saxpy.x_off = fuzz_off(size);
            s.args.saxpy.y_off = fuzz_off(size);
            s.args.saxpy.n = fuzz_count(VGPU_MAX_ELEMS, 8192);
            s.args.saxpy.alpha = rng_float();
            s.args.saxpy.pad = rng_u64() % 16 == 0;
            break;
        case VGPU_OP_REDUCE_SUM:
            s.args.reduce_sum.in_off = fuzz_off(size);
            s.args.reduce_sum.n = fuzz_count(VGPU_MAX_ELEMS, 65536);
            break;
        case VGPU_OP_SGEMM:
            s.args.sgemm.a_off = fuzz_off(size);
            s.args.sgemm.b_off = fuzz_off(size);
            s.args.sgemm.c_off = fuzz_off(size);
            s.args.sgemm.m = (uint32_t)fuzz_count(VGPU_MAX_GEMM_DIM, 48);
            s.args.sgemm.n = (uint32_t)fuzz_count(VGPU_MAX_GEMM_DIM, 48);
            s.args.sgemm.k = (uint32_t)fuzz_count(VGPU_MAX_GEMM_DIM, 48);
            s.args.sgemm.alpha = rng_float();
            s.args.sgemm.beta = rng_u64() % 2 ? 0.0f : rng_float();
            s.args.sgemm.pad = rng_u64() % 16 == 0;
            break;
        case VGPU_OP_MEMCPY:
            s.args.memcpy.src_off = fuzz_off(size);
            s.args.memcpy.dst_off = fuzz_off(size);
            s.args.memcpy.len = fuzz_count(VGPU_MAX_COPY_BYTES, 65536);
            s.args.memcpy.mode = (uint32_t)(rng_u64() % 4);
            s.args.memcpy.pad = rng_u64() % 16 == 0;
            break;
        default:
            break;
        }
        st = op->validate(&s, size);
        assert_true(st >= VGPU_S_OK && st < VGPU_S_STATUS_COUNT);
        if (st != VGPU_S_OK) {
            continue;
        }
        assert_status(op->exec_cpu(&s, &view, &result), VGPU_S_OK);
        executed[s.opcode]++;
        if (memcmp(view.base, rings, D) != 0) {
            fail_msg("%s wrote into the ring area (iteration %u)", op->name, it);
        }
    }
    /* The generator must actually reach every operation's exec. */
    for (unsigned i = 0; i < VGPU_OP_COUNT; i++) {
        print_message("fuzz: %-10s executed %u times\n", vgpu_op_name(i), executed[i]);
        if (executed[i] == 0) {
            fail_msg("fuzz never executed %s", vgpu_op_name(i));
        }
    }
    free(rings);
    munmap(map, size + 2 * page);
}

/* ------------------------------------------------------------------------
 * The CPU backend table.
 * ------------------------------------------------------------------------ */
static void test_backend_cpu(void **state)
{
    struct exec_fixture *f = *state;
    const struct vgpu_backend_ops *be = &vgpu_backend_cpu;
    struct vgpu_backend_config cfg = { .request_timeout_ms = 0 };
    struct vgpu_backend *b = NULL;
    struct vgpu_backend_session *sess = NULL;
    struct vgpu_shm_view tiny = { .base = f->shm.base, .size = D - 1 };
    struct vgpu_gpu_info info;
    struct vgpu_sqe s = sqe_of(VGPU_OP_NOP);
    const char *why = NULL;
    uint64_t result = 1;
    char health[128];

    assert_string_equal(be->name, "cpu");
    assert_int_equal(be->kind, VGPU_BACKEND_CPU);
    assert_int_equal(be->init(&cfg, &b, &why), 0);
    assert_non_null(b);

    assert_int_equal(be->session_open(b, 1, -1, &tiny, &sess), -EINVAL);
    assert_int_equal(be->session_open(b, 1, -1, &f->shm, &sess), 0);
    assert_non_null(sess);

    assert_status(be->execute(b, sess, 0, vgpu_op_lookup(VGPU_OP_NOP), &s, &f->shm, &result),
                  VGPU_S_OK);
    assert_int_equal(result, 0);
    assert_status(be->execute(b, sess, 0, NULL, &s, &f->shm, &result), VGPU_S_NOT_SUPPORTED);

    be->gpu_info(b, &info);
    assert_memory_equal(info.name, "cpu: ", 5);
    assert_int_equal(info.backend, VGPU_BACKEND_CPU);
    assert_true(info.total_mem > 0);

    be->health(b, health, sizeof(health));
    assert_memory_equal(health, "cpu backend, ", 13);
    assert_non_null(strstr(health, "threads"));
    assert_non_null(strstr(health, ", 1 requests"));
    be->health(b, health, 8);                           /* truncates, terminates */
    assert_int_equal(strlen(health), 7);

    be->session_close(b, sess);
    be->session_close(b, NULL);
    be->fini(b);
    be->fini(NULL);

    /* init without a config works too. */
    assert_int_equal(be->init(NULL, &b, &why), 0);
    be->fini(b);
}

/* A per-request time limit stops a long SGEMM between tiles. */
static void test_backend_cpu_timeout(void **state)
{
    struct exec_fixture *f = *state;
    const struct vgpu_backend_ops *be = &vgpu_backend_cpu;
    struct vgpu_backend_config cfg = { .request_timeout_ms = 1 };
    const struct vgpu_op *op = vgpu_op_lookup(VGPU_OP_SGEMM);
    struct vgpu_backend *b = NULL;
    struct vgpu_backend_session *sess = NULL;
    const char *why = NULL;
    struct vgpu_sqe s;
    uint64_t result = 0;
    char health[128];

    /* 1024 x 1024 x 512: 1 Gflop in 32 C blocks; far more than 1 ms on any core. */
    sgemm_args(&s, 1024, 1024, 512, D, D + (2 << 20), D + (4 << 20));
    assert_status(op->validate(&s, f->shm.size), VGPU_S_OK);
    assert_int_equal(be->init(&cfg, &b, &why), 0);
    assert_int_equal(be->session_open(b, 7, -1, &f->shm, &sess), 0);
    assert_status(be->execute(b, sess, 0, op, &s, &f->shm, &result), VGPU_S_TIMEOUT);
    be->health(b, health, sizeof(health));
    assert_non_null(strstr(health, "1 timed out"));

    /* The deadline does not outlive the request. */
    sgemm_args(&s, 64, 64, 64, D, D + (1 << 20), D + (2 << 20));
    assert_status(op->exec_cpu(&s, &f->shm, &result), VGPU_S_OK);
    be->session_close(b, sess);
    be->fini(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_range),
        cmocka_unit_test(test_ranges_overlap),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_validate_nop),
        cmocka_unit_test(test_validate_gpu_info),
        cmocka_unit_test(test_validate_vector_add),
        cmocka_unit_test(test_validate_saxpy),
        cmocka_unit_test(test_validate_reduce_sum),
        cmocka_unit_test(test_validate_sgemm),
        cmocka_unit_test(test_validate_memcpy),
        cmocka_unit_test(test_cost_and_bytes),
        cmocka_unit_test_setup_teardown(test_exec_nop, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_gpu_info, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_vector_add, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_saxpy, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_reduce_sum, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_sgemm, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_exec_memcpy, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_parts, exec_setup, exec_teardown),
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_fuzz_validate_exec),
        cmocka_unit_test_setup_teardown(test_backend_cpu, exec_setup, exec_teardown),
        cmocka_unit_test_setup_teardown(test_backend_cpu_timeout, exec_setup, exec_teardown),
    };

    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
