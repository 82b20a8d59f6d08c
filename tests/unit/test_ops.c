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

        if (i > VGPU_OP_MEMCPY && i < VGPU_OP_CU_FIRST) {
            assert_null(op);                /* 7 .. 15: not assigned */
            continue;
        }
        assert_non_null(op);
        assert_int_equal(op->opcode, i);
        assert_string_equal(op->name, vgpu_op_name(i));
        assert_non_null(op->validate);
        assert_non_null(op->cost_ns);
        assert_non_null(op->bytes);
        assert_non_null(op->exec_cpu);
        if (i >= VGPU_OP_CU_FIRST) {
            assert_non_null(op->idempotent);
            assert_null(op->parts);         /* a GPU call is never cut */
        }
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
/* ------------------------------------------------------------------------
 * The CUDA driver operations (ABI 1.2): their validators at the boundaries.
 * Handles and device addresses are only checked for 0 and wrap-around here;
 * the worker checks them against the queue's tables.
 * ------------------------------------------------------------------------ */
#define DPTR 0x7f0000000000ull

/* Every CU operation refuses flags and a nonzero byte past its struct. */
static void test_validate_cu_header(void **state)
{
    static const struct { uint16_t op; size_t used; } structs[] = {
        { VGPU_OP_CU_DEVICE_INFO, sizeof(struct vgpu_args_cu_out) },
        { VGPU_OP_CU_MEM_GET_INFO, 0 },
        { VGPU_OP_CU_MEM_ALLOC, sizeof(struct vgpu_args_cu_mem) },
        { VGPU_OP_CU_MEM_FREE, sizeof(struct vgpu_args_cu_mem) },
        { VGPU_OP_CU_MEMSET, sizeof(struct vgpu_args_cu_memset) },
        { VGPU_OP_CU_MEMCPY_HTOD, sizeof(struct vgpu_args_cu_memcpy) },
        { VGPU_OP_CU_MEMCPY_DTOH, sizeof(struct vgpu_args_cu_memcpy) },
        { VGPU_OP_CU_MEMCPY_DTOD, sizeof(struct vgpu_args_cu_memcpy) },
        { VGPU_OP_CU_MEMCPY_2D, sizeof(struct vgpu_args_cu_memcpy2d) },
        { VGPU_OP_CU_MODULE_LOAD, sizeof(struct vgpu_args_cu_module_load) },
        { VGPU_OP_CU_MODULE_UNLOAD, sizeof(struct vgpu_args_cu_handle) },
        { VGPU_OP_CU_MODULE_GET_FUNCTION, sizeof(struct vgpu_args_cu_symbol) },
        { VGPU_OP_CU_MODULE_GET_GLOBAL, sizeof(struct vgpu_args_cu_symbol) },
        { VGPU_OP_CU_LAUNCH, sizeof(struct vgpu_args_cu_launch) },
        { VGPU_OP_CU_STREAM_CREATE, sizeof(struct vgpu_args_cu_create) },
        { VGPU_OP_CU_STREAM_DESTROY, sizeof(struct vgpu_args_cu_handle) },
        { VGPU_OP_CU_STREAM_SYNC, sizeof(struct vgpu_args_cu_handle) },
        { VGPU_OP_CU_STREAM_QUERY, sizeof(struct vgpu_args_cu_handle) },
        { VGPU_OP_CU_STREAM_WAIT_EVENT, sizeof(struct vgpu_args_cu_pair) },
        { VGPU_OP_CU_EVENT_CREATE, sizeof(struct vgpu_args_cu_create) },
        { VGPU_OP_CU_EVENT_DESTROY, sizeof(struct vgpu_args_cu_handle) },
        { VGPU_OP_CU_EVENT_RECORD, sizeof(struct vgpu_args_cu_pair) },
        { VGPU_OP_CU_EVENT_SYNC, sizeof(struct vgpu_args_cu_handle) },
        { VGPU_OP_CU_EVENT_QUERY, sizeof(struct vgpu_args_cu_handle) },
        { VGPU_OP_CU_EVENT_ELAPSED, sizeof(struct vgpu_args_cu_pair) },
        { VGPU_OP_CU_CTX_SYNC, 0 },
        { VGPU_OP_CU_FUNC_GET_ATTR, sizeof(struct vgpu_args_cu_func_attr) },
        { VGPU_OP_CU_FUNC_SET_ATTR, sizeof(struct vgpu_args_cu_func_attr) },
        { VGPU_OP_CU_OCCUPANCY, sizeof(struct vgpu_args_cu_func_attr) },
        { VGPU_OP_CU_CTX_RESET, 0 },
        { VGPU_OP_CU_LAUNCH_ATTRS, sizeof(struct vgpu_args_cu_launch_attrs) },
        { VGPU_OP_CU_TENSOR_MAP, sizeof(struct vgpu_args_cu_tensor_map) },
        { VGPU_OP_CU_CTX_LIMIT, sizeof(struct vgpu_args_cu_limit) },
    };

    (void)state;
    assert_int_equal(sizeof(structs) / sizeof(structs[0]), VGPU_OP_COUNT - VGPU_OP_CU_FIRST);
    for (size_t i = 0; i < sizeof(structs) / sizeof(structs[0]); i++) {
        struct vgpu_sqe s = sqe_of(structs[i].op);

        s.flags = 1;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
        s.flags = 0;
        if (structs[i].used < VGPU_SQE_ARGS_SIZE) {
            s.args.raw[structs[i].used] = 1;
            assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
            s.args.raw[structs[i].used] = 0;
            s.args.raw[VGPU_SQE_ARGS_SIZE - 1] = 0x80;
            assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
        }
    }
    /* The argument-less ones: all zero is the one valid request. */
    for (uint16_t op = VGPU_OP_CU_MEM_GET_INFO; op <= VGPU_OP_CU_CTX_RESET;
         op = op == VGPU_OP_CU_MEM_GET_INFO ? VGPU_OP_CU_CTX_SYNC
            : op == VGPU_OP_CU_CTX_SYNC ? VGPU_OP_CU_CTX_RESET : VGPU_OP_COUNT) {
        struct vgpu_sqe s = sqe_of(op);

        assert_status(validate(&s, SHM_1M), VGPU_S_OK);
        s.args.raw[0] = 1;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    }
}

static void test_validate_cu_launch_ext(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_LAUNCH_ATTRS);
    const uint64_t req = sizeof(struct vgpu_cu_tensor_map_req);

    (void)state;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);         /* no attributes at all */
    s.args.cu_launch_attrs.cluster[0] = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);   /* y, z 0 beside x */
    s.args.cu_launch_attrs.cluster[1] = s.args.cu_launch_attrs.cluster[2] = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_launch_attrs.cluster[1] = 16;
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);  /* 32 blocks */
    s.args.cu_launch_attrs.cluster[1] = 1;
    s.args.cu_launch_attrs.flags = VGPU_CU_LAUNCH_COOPERATIVE;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_launch_attrs.flags = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_launch_attrs.flags = 0;
    s.args.cu_launch_attrs.pad[6] = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    s = sqe_of(VGPU_OP_CU_TENSOR_MAP);
    s.args.cu_tensor_map = (struct vgpu_args_cu_tensor_map) { D, D + 4096, 0, 0 };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_tensor_map.out_off = D + 4096 + 32;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    s.args.cu_tensor_map.out_off = D + 64;                 /* inside the request */
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    s.args.cu_tensor_map.out_off = SHM_1M - 64;
    s.args.cu_tensor_map.in_off = SHM_1M - req + 8;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_tensor_map.in_off = D;
    s.args.cu_tensor_map.kind = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    s = sqe_of(VGPU_OP_CU_CTX_LIMIT);
    s.args.cu_limit.limit = 1;
    s.args.cu_limit.set = 1;
    s.args.cu_limit.value = 1u << 20;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_limit.set = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_limit.set = 0;
    s.args.cu_limit.limit = 99;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

static void test_validate_cu_device_info(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_DEVICE_INFO);
    const uint64_t sz = sizeof(struct vgpu_cu_device_info);

    (void)state;
    s.args.cu_out = (struct vgpu_args_cu_out) { D, sz };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_out.out_len = sz - 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_out.out_len = sz;
    s.args.cu_out.out_off = D + 4;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    s.args.cu_out.out_off = SHM_1M - sz;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_out.out_off = SHM_1M - sz + 8;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_out.out_off = VGPU_SHM_SQ_OFFSET;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_out.out_off = D;
    s.args.cu_out.out_len = UINT64_MAX;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
}

static void test_validate_cu_memory(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MEM_ALLOC);

    (void)state;
    s.args.cu_mem.bytes = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_mem.bytes = 80ull << 30;                  /* the quota is the worker's */
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_mem.bytes = 1ull << 49;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_mem.bytes = (1ull << 49) + 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    s.args.cu_mem.bytes = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_mem.bytes = 4096;
    s.args.cu_mem.dptr = DPTR;                          /* unused: must be 0 */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    s = sqe_of(VGPU_OP_CU_MEM_FREE);
    s.args.cu_mem.dptr = DPTR;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_mem.dptr = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_mem.dptr = DPTR;
    s.args.cu_mem.bytes = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    s = sqe_of(VGPU_OP_CU_MEMSET);
    s.args.cu_memset = (struct vgpu_args_cu_memset) { DPTR, 1, 0xab, 1, 0, 0 };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memset.value = 0xffffffffu;               /* high bytes ignored */
    s.args.cu_memset.stream = 7;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    for (uint32_t e = 0; e <= 8; e++) {
        s.args.cu_memset.elem_size = e;
        assert_status(validate(&s, SHM_1M),
                      e == 1 || e == 2 || e == 4 ? VGPU_S_OK : VGPU_S_BAD_ARGS);
    }
    s.args.cu_memset.elem_size = 4;
    s.args.cu_memset.dptr = DPTR + 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    s.args.cu_memset.elem_size = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memset.dptr = DPTR + 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    s.args.cu_memset.dptr = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memset.dptr = DPTR;
    s.args.cu_memset.count = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memset.count = (1ull << 49) / 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memset.count = (1ull << 49) / 2 + 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    s.args.cu_memset.count = UINT64_MAX;                /* count * 2 would wrap */
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    s.args.cu_memset.count = 4096;
    s.args.cu_memset.dptr = UINT64_MAX - 4095;          /* dptr + 8192 wraps */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_memset.dptr = UINT64_MAX - 8191;          /* ends at 2^64: wraps to 0 */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_memset.dptr = UINT64_MAX - 8193;          /* ends at 2^64 - 2 */
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memset.pad = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

static void cu_copy(struct vgpu_sqe *s, uint16_t op, uint64_t dst, uint64_t src, uint64_t len)
{
    *s = sqe_of(op);
    s->args.cu_memcpy = (struct vgpu_args_cu_memcpy) { dst, src, len, 0, 0 };
}

static void test_validate_cu_copy(void **state)
{
    struct vgpu_sqe s;

    (void)state;
    /* HtoD: src in the data area, dst a device address. */
    cu_copy(&s, VGPU_OP_CU_MEMCPY_HTOD, DPTR, D, SHM_1M - D);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy.len = SHM_1M - D + 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_memcpy.len = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memcpy.len = VGPU_MAX_COPY_BYTES + 1;
    assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);
    s.args.cu_memcpy.len = VGPU_MAX_COPY_BYTES;
    assert_status(validate(&s, SHM_BIG), VGPU_S_OK);
    s.args.cu_memcpy.len = 1;
    s.args.cu_memcpy.src = D + 1;                       /* bytes: no alignment */
    s.args.cu_memcpy.dst = DPTR + 3;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy.src = D - 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_memcpy.src = D;
    s.args.cu_memcpy.dst = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memcpy.dst = UINT64_MAX;
    s.args.cu_memcpy.len = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_memcpy.dst = DPTR;
    s.args.cu_memcpy.pad = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    /* DtoH: the mirror image. */
    cu_copy(&s, VGPU_OP_CU_MEMCPY_DTOH, D, DPTR, 4096);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy.dst = VGPU_SHM_CQ_OFFSET;          /* would overwrite completions */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_memcpy.dst = SHM_1M - 4095;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_memcpy.dst = D;
    s.args.cu_memcpy.src = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memcpy.src = UINT64_MAX - 4094;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);

    /* DtoD: both device addresses, the data area is not involved. */
    cu_copy(&s, VGPU_OP_CU_MEMCPY_DTOD, DPTR, DPTR + 4096, 1ull << 30);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy.src = DPTR + 16;                   /* overlap: as natively */
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy.dst = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memcpy.dst = DPTR;
    s.args.cu_memcpy.src = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

static void cu_2d(struct vgpu_sqe *s, uint8_t dk, uint64_t dst, uint32_t dp, uint8_t sk,
                  uint64_t src, uint32_t sp, uint32_t w, uint32_t h)
{
    *s = sqe_of(VGPU_OP_CU_MEMCPY_2D);
    s->args.cu_memcpy2d = (struct vgpu_args_cu_memcpy2d) {
        .dst = dst, .src = src, .dst_pitch = dp, .src_pitch = sp, .width = w, .height = h,
        .dst_kind = dk, .src_kind = sk,
    };
}

static void test_validate_cu_memcpy_2d(void **state)
{
    struct vgpu_sqe s;

    (void)state;
    /* 16 rows of 100 bytes, 128 apart in the data area, into a device
     * array of pitch 512: the shm extent is 15 * 128 + 100 bytes. */
    cu_2d(&s, VGPU_CU_MEM_DEVICE, DPTR, 512, VGPU_CU_MEM_SHM, D, 128, 100, 16);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy2d.src = SHM_1M - (15 * 128 + 100);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy2d.src++;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_memcpy2d.src = D;
    s.args.cu_memcpy2d.width = 129;                     /* wider than a source row */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memcpy2d.width = 128;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy2d.dst_pitch = 127;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memcpy2d.dst_pitch = 512;
    s.args.cu_memcpy2d.width = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memcpy2d.width = 100;
    s.args.cu_memcpy2d.height = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memcpy2d.height = 16;
    s.args.cu_memcpy2d.src_kind = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memcpy2d.src_kind = VGPU_CU_MEM_SHM;
    s.args.cu_memcpy2d.dst_kind = 0xff;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_memcpy2d.dst_kind = VGPU_CU_MEM_DEVICE;
    s.args.cu_memcpy2d.pad = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    /* The largest pitch and height: the extent is near 2^64, computed
     * without overflow, and far outside any data area. */
    cu_2d(&s, VGPU_CU_MEM_DEVICE, DPTR, UINT32_MAX, VGPU_CU_MEM_SHM, D, UINT32_MAX, 1, 65536);
    assert_status(validate(&s, SHM_BIG), VGPU_S_BAD_RANGE);
    /* ... and on the device side it must not wrap. */
    cu_2d(&s, VGPU_CU_MEM_DEVICE, UINT64_MAX - (1ull << 40), UINT32_MAX, VGPU_CU_MEM_SHM, D, 1,
          1, 65536);
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_memcpy2d.dst = DPTR;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy2d.dst = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    /* width * height counts against VGPU_MAX_COPY_BYTES. */
    cu_2d(&s, VGPU_CU_MEM_DEVICE, DPTR, 1u << 20, VGPU_CU_MEM_DEVICE, DPTR << 1, 1u << 20,
          1u << 20, 4096);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy2d.height = 4097;
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);

    /* Data area to data area: allowed, not overlapping. */
    cu_2d(&s, VGPU_CU_MEM_SHM, D + 4096, 64, VGPU_CU_MEM_SHM, D, 64, 64, 64);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_memcpy2d.dst = D + 4095;
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
    /* Interleaved rows overlap as extents: refused, conservatively. */
    cu_2d(&s, VGPU_CU_MEM_SHM, D + 32, 64, VGPU_CU_MEM_SHM, D, 64, 32, 64);
    assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
}

static void cu_symbol(struct vgpu_sqe *s, uint16_t op, uint64_t name_off, uint32_t name_len,
                      uint64_t out_off, uint32_t out_len, uint32_t module)
{
    *s = sqe_of(op);
    s->args.cu_symbol = (struct vgpu_args_cu_symbol) { name_off, out_off, name_len, out_len,
                                                       module, 0 };
}

static void test_validate_cu_module(void **state)
{
    const uint32_t fi = sizeof(struct vgpu_cu_func_info);
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MODULE_LOAD);

    (void)state;
    s.args.cu_module_load = (struct vgpu_args_cu_module_load){
        .image_off = D + 1, .image_len = 1 };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_module_load.image_len = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_module_load = (struct vgpu_args_cu_module_load){
        .image_off = D, .image_len = VGPU_CU_MAX_IMAGE };
    assert_status(validate(&s, SHM_BIG), VGPU_S_OK);
    s.args.cu_module_load.image_len++;
    assert_status(validate(&s, SHM_BIG), VGPU_S_TOO_LARGE);
    s.args.cu_module_load = (struct vgpu_args_cu_module_load){
        .image_off = D, .image_len = SHM_1M - D + 1 };
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_module_load = (struct vgpu_args_cu_module_load){
        .image_off = UINT64_MAX, .image_len = 2 };
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    /* By hash: no image, a nonzero hash; no range for the window check. */
    s.args.cu_module_load = (struct vgpu_args_cu_module_load){ .hash = { 0, 7 } };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    assert_int_equal(vgpu_op_lookup(VGPU_OP_CU_MODULE_LOAD)->ranges(&s, (struct vgpu_range[4]){ 0 }),
                     0);
    s.args.cu_module_load.hash[1] = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_module_load = (struct vgpu_args_cu_module_load){ .image_off = D, .hash = { 1, 1 } };
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);   /* an offset but no length */

    s = sqe_of(VGPU_OP_CU_MODULE_UNLOAD);
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);   /* handle 0 */
    s.args.cu_handle.handle = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_handle.pad = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    for (uint16_t op = VGPU_OP_CU_MODULE_GET_FUNCTION; op <= VGPU_OP_CU_MODULE_GET_GLOBAL; op++) {
        uint32_t min = op == VGPU_OP_CU_MODULE_GET_FUNCTION ? fi : sizeof(struct vgpu_cu_global);

        cu_symbol(&s, op, D, 2, D + 1024, min, 1);
        assert_status(validate(&s, SHM_1M), VGPU_S_OK);
        s.args.cu_symbol.name_len = 1;                  /* only a NUL */
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
        s.args.cu_symbol.name_len = 0;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
        s.args.cu_symbol.name_len = VGPU_CU_MAX_NAME;
        assert_status(validate(&s, SHM_1M), VGPU_S_OK);
        s.args.cu_symbol.name_len = VGPU_CU_MAX_NAME + 1;
        assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
        s.args.cu_symbol.name_len = 16;
        s.args.cu_symbol.out_len = min - 1;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
        s.args.cu_symbol.out_len = min + 8 * VGPU_CU_MAX_PARAMS;
        assert_status(validate(&s, SHM_1M), VGPU_S_OK);
        s.args.cu_symbol.out_off = D + 1028;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
        s.args.cu_symbol.out_off = D + 8;               /* over the name */
        assert_status(validate(&s, SHM_1M), VGPU_S_OVERLAP);
        s.args.cu_symbol.out_off = D + 16;              /* right after it */
        assert_status(validate(&s, SHM_1M), VGPU_S_OK);
        s.args.cu_symbol.out_off = SHM_1M - 8;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
        s.args.cu_symbol.out_off = D + 1024;
        s.args.cu_symbol.name_off = SHM_1M - 15;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
        s.args.cu_symbol.name_off = D + 1;              /* names: any alignment */
        assert_status(validate(&s, SHM_1M), VGPU_S_OK);
        s.args.cu_symbol.module = 0;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
        s.args.cu_symbol.module = 1;
        s.args.cu_symbol.pad = 1;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    }
}

static void cu_launch(struct vgpu_sqe *s, uint32_t gx, uint32_t gy, uint32_t gz, uint32_t bx,
                      uint32_t by, uint32_t bz)
{
    *s = sqe_of(VGPU_OP_CU_LAUNCH);
    s->args.cu_launch = (struct vgpu_args_cu_launch) {
        .func = 1, .grid = { gx, gy, gz }, .block = { bx, by, bz },
        .params_len = 16, .params_off = D,
    };
}

static void test_validate_cu_launch(void **state)
{
    struct vgpu_sqe s;

    (void)state;
    cu_launch(&s, 1, 1, 1, 1, 1, 1);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    cu_launch(&s, 0x7fffffffu, 65535, 65535, 1024, 1, 1);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    cu_launch(&s, 0x80000000u, 1, 1, 1, 1, 1);
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    cu_launch(&s, 1, 65536, 1, 1, 1, 1);
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    cu_launch(&s, 1, 1, 65536, 1, 1, 1);
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    for (int i = 0; i < 6; i++) {
        uint32_t d[6] = { 2, 2, 2, 2, 2, 2 };

        d[i] = 0;
        cu_launch(&s, d[0], d[1], d[2], d[3], d[4], d[5]);
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    }
    cu_launch(&s, 1, 1, 1, 1, 1024, 1);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    cu_launch(&s, 1, 1, 1, 1, 1, 64);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    cu_launch(&s, 1, 1, 1, 1025, 1, 1);
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    cu_launch(&s, 1, 1, 1, 1, 1025, 1);
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    cu_launch(&s, 1, 1, 1, 1, 1, 65);
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    cu_launch(&s, 1, 1, 1, 32, 32, 1);                  /* 1024 threads */
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    cu_launch(&s, 1, 1, 1, 32, 32, 2);                  /* 2048: each within, product not */
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    cu_launch(&s, 1, 1, 1, 1024, 1024, 64);
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);

    cu_launch(&s, 1, 1, 1, 1, 1, 1);
    s.args.cu_launch.func = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_launch.func = 9;
    s.args.cu_launch.stream = 0;                        /* the default stream */
    s.args.cu_launch.shared_bytes = 256u << 10;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_launch.shared_bytes = (256u << 10) + 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    s.args.cu_launch.shared_bytes = 0;

    s.args.cu_launch.params_len = VGPU_CU_MAX_PARAM_BYTES;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_launch.params_len = VGPU_CU_MAX_PARAM_BYTES + 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    s.args.cu_launch.params_len = 8;
    s.args.cu_launch.params_off = D + 4;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ALIGN);
    s.args.cu_launch.params_off = SHM_1M - 8;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_launch.params_off = SHM_1M;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_launch.params_off = VGPU_SHM_SQ_OFFSET;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_RANGE);
    s.args.cu_launch.params_len = 0;                    /* no parameters: no offset */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_launch.params_off = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
}

static void test_validate_cu_func(void **state)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_FUNC_GET_ATTR);

    (void)state;
    s.args.cu_func_attr = (struct vgpu_args_cu_func_attr) { 1, 0, 0, 0 };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_func_attr.attr = 63;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_func_attr.attr = 64;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_func_attr.attr = -1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_func_attr.attr = 8;
    s.args.cu_func_attr.value = 1;                      /* GET takes no value */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_func_attr.value = 0;
    s.args.cu_func_attr.func = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    s = sqe_of(VGPU_OP_CU_FUNC_SET_ATTR);
    s.args.cu_func_attr = (struct vgpu_args_cu_func_attr) { 1, 8, 100000, 0 };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_func_attr.value = -5;                     /* the driver's to refuse */
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_func_attr.attr = 64;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_func_attr.attr = 8;
    s.args.cu_func_attr.pad = 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    s = sqe_of(VGPU_OP_CU_OCCUPANCY);
    s.args.cu_func_attr = (struct vgpu_args_cu_func_attr) { 1, 1, 0, 0 };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_func_attr.attr = 1024;
    s.args.cu_func_attr.value = 256 << 10;
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_func_attr.attr = 1025;
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    s.args.cu_func_attr.attr = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_func_attr.attr = -32;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_func_attr.attr = 256;
    s.args.cu_func_attr.value = (256 << 10) + 1;
    assert_status(validate(&s, SHM_1M), VGPU_S_TOO_LARGE);
    s.args.cu_func_attr.value = -1;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

static void test_validate_cu_stream_event(void **state)
{
    struct vgpu_sqe s;
    static const uint16_t need_object[] = {
        VGPU_OP_CU_STREAM_DESTROY, VGPU_OP_CU_EVENT_DESTROY, VGPU_OP_CU_EVENT_SYNC,
        VGPU_OP_CU_EVENT_QUERY, VGPU_OP_CU_MODULE_UNLOAD,
    };

    (void)state;
    /* Stream 0 is the default stream: it can be synced and queried, not destroyed. */
    for (uint16_t op = VGPU_OP_CU_STREAM_SYNC; op <= VGPU_OP_CU_STREAM_QUERY; op++) {
        s = sqe_of(op);
        assert_status(validate(&s, SHM_1M), VGPU_S_OK);
        s.args.cu_handle.handle = UINT32_MAX;
        assert_status(validate(&s, SHM_1M), VGPU_S_OK);
        s.args.cu_handle.pad = 1;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    }
    for (size_t i = 0; i < sizeof(need_object) / sizeof(need_object[0]); i++) {
        s = sqe_of(need_object[i]);
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
        s.args.cu_handle.handle = 3;
        assert_status(validate(&s, SHM_1M), VGPU_S_OK);
        s.args.cu_handle.pad = 0x100;
        assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    }

    s = sqe_of(VGPU_OP_CU_STREAM_CREATE);
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_create = (struct vgpu_args_cu_create) { 1, -5 };   /* non-blocking, priority */
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_create.flags = 2;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    s = sqe_of(VGPU_OP_CU_EVENT_CREATE);
    for (uint32_t f = 0; f < 16; f++) {
        s.args.cu_create.flags = f;
        assert_status(validate(&s, SHM_1M), f > 7 ? VGPU_S_BAD_ARGS
                                            : (f & 4) ? VGPU_S_NOT_SUPPORTED : VGPU_S_OK);
    }
    s.args.cu_create = (struct vgpu_args_cu_create) { 2, 1 };    /* events have no priority */
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);

    /* WAIT_EVENT: a = stream (0 ok), b = event; RECORD: a = event, b = stream. */
    s = sqe_of(VGPU_OP_CU_STREAM_WAIT_EVENT);
    s.args.cu_pair = (struct vgpu_args_cu_pair) { 0, 5, 0, 0 };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_pair.b = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_pair = (struct vgpu_args_cu_pair) { 1, 5, 1, 0 };
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s = sqe_of(VGPU_OP_CU_EVENT_RECORD);
    s.args.cu_pair = (struct vgpu_args_cu_pair) { 5, 0, 0, 0 };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_pair.a = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_pair = (struct vgpu_args_cu_pair) { 5, 2, 0, 1 };
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s = sqe_of(VGPU_OP_CU_EVENT_ELAPSED);
    s.args.cu_pair = (struct vgpu_args_cu_pair) { 5, 5, 0, 0 };
    assert_status(validate(&s, SHM_1M), VGPU_S_OK);
    s.args.cu_pair.b = 0;
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
    s.args.cu_pair = (struct vgpu_args_cu_pair) { 0, 5, 0, 0 };
    assert_status(validate(&s, SHM_1M), VGPU_S_BAD_ARGS);
}

/* ranges(): what the session checks against the queue's window. */
static void test_cu_ranges_bytes_cost(void **state)
{
    struct vgpu_range r[VGPU_OP_MAX_RANGES];
    const struct vgpu_op *op;
    struct vgpu_sqe s;
    uint64_t in, out;

    (void)state;
    cu_copy(&s, VGPU_OP_CU_MEMCPY_HTOD, DPTR, D + 64, 4096);
    op = vgpu_op_lookup(s.opcode);
    assert_int_equal(op->ranges(&s, r), 1);
    assert_int_equal(r[0].off, D + 64);
    assert_int_equal(r[0].len, 4096);
    op->bytes(&s, &in, &out);
    assert_int_equal(in, 4096);
    assert_int_equal(out, 0);
    cu_copy(&s, VGPU_OP_CU_MEMCPY_DTOH, D + 128, DPTR, 100);
    op = vgpu_op_lookup(s.opcode);
    assert_int_equal(op->ranges(&s, r), 1);
    assert_int_equal(r[0].off, D + 128);
    op->bytes(&s, &in, &out);
    assert_int_equal(out, 100);
    assert_null(vgpu_op_lookup(VGPU_OP_CU_MEMCPY_DTOD)->ranges);

    cu_2d(&s, VGPU_CU_MEM_SHM, D + 8192, 256, VGPU_CU_MEM_SHM, D, 128, 100, 16);
    op = vgpu_op_lookup(s.opcode);
    assert_int_equal(op->ranges(&s, r), 2);
    assert_int_equal(r[0].off, D);
    assert_int_equal(r[0].len, 15 * 128 + 100);
    assert_int_equal(r[1].off, D + 8192);
    assert_int_equal(r[1].len, 15 * 256 + 100);
    cu_2d(&s, VGPU_CU_MEM_DEVICE, DPTR, 256, VGPU_CU_MEM_DEVICE, DPTR, 128, 100, 16);
    assert_int_equal(op->ranges(&s, r), 0);

    cu_symbol(&s, VGPU_OP_CU_MODULE_GET_FUNCTION, D + 8, 10, D + 64, 4096, 1);
    op = vgpu_op_lookup(s.opcode);
    assert_int_equal(op->ranges(&s, r), 2);
    assert_int_equal(r[0].off, D + 8);
    assert_int_equal(r[0].len, 10);
    assert_int_equal(r[1].off, D + 64);
    assert_int_equal(r[1].len, 4096);

    cu_launch(&s, 1, 1, 1, 1, 1, 1);
    op = vgpu_op_lookup(s.opcode);
    assert_int_equal(op->ranges(&s, r), 1);
    assert_int_equal(r[0].len, 16);
    s.args.cu_launch.params_len = 0;
    s.args.cu_launch.params_off = 0;
    assert_int_equal(op->ranges(&s, r), 0);

    s = sqe_of(VGPU_OP_CU_MODULE_LOAD);
    s.args.cu_module_load = (struct vgpu_args_cu_module_load){
        .image_off = D, .image_len = 12345 };
    op = vgpu_op_lookup(s.opcode);
    assert_int_equal(op->ranges(&s, r), 1);
    assert_int_equal(r[0].len, 12345);

    s = sqe_of(VGPU_OP_CU_DEVICE_INFO);
    s.args.cu_out = (struct vgpu_args_cu_out) { D, 4096 };
    op = vgpu_op_lookup(s.opcode);
    assert_int_equal(op->ranges(&s, r), 1);
    assert_int_equal(r[0].len, 4096);

    /* Costs: copies by bytes, never wrapping on garbage. */
    op = vgpu_op_lookup(VGPU_OP_CU_MEMCPY_HTOD);
    cu_copy(&s, VGPU_OP_CU_MEMCPY_HTOD, DPTR, D, 4096);
    in = op->cost_ns(&s);
    s.args.cu_memcpy.len = 1ull << 30;
    assert_true(op->cost_ns(&s) > in);
    s.args.cu_memcpy.len = UINT64_MAX;
    assert_true(op->cost_ns(&s) >= in);
    op = vgpu_op_lookup(VGPU_OP_CU_MEMSET);
    s = sqe_of(VGPU_OP_CU_MEMSET);
    s.args.cu_memset.count = UINT64_MAX;
    s.args.cu_memset.elem_size = UINT32_MAX;
    assert_true(op->cost_ns(&s) > 0);
    op = vgpu_op_lookup(VGPU_OP_CU_MEMCPY_2D);
    cu_2d(&s, VGPU_CU_MEM_DEVICE, DPTR, UINT32_MAX, VGPU_CU_MEM_DEVICE, DPTR, UINT32_MAX,
          UINT32_MAX, UINT32_MAX);
    assert_true(op->cost_ns(&s) > 0);
    assert_true(vgpu_op_lookup(VGPU_OP_CU_LAUNCH)->cost_ns(&s) >
                vgpu_op_lookup(VGPU_OP_CU_EVENT_RECORD)->cost_ns(&s));
}

/* The cpu backend: every CU operation completes not-supported, after its
 * own validation, and never touches shared memory. */
static void test_exec_cu_cpu(void **state)
{
    struct exec_fixture *f = *state;
    const struct vgpu_backend_ops *be = &vgpu_backend_cpu;
    struct vgpu_backend *b = NULL;
    struct vgpu_backend_session *sess = NULL;
    const char *why = NULL;

    assert_int_equal(be->init(NULL, &b, &why), 0);
    assert_int_equal(be->session_open(b, 1, -1, &f->shm, &sess), 0);
    snap(f);
    for (uint16_t code = VGPU_OP_CU_FIRST; code < VGPU_OP_COUNT; code++) {
        const struct vgpu_op *op = vgpu_op_lookup(code);
        struct vgpu_sqe s = sqe_of(code);
        uint64_t result = 77;

        assert_non_null(op);
        assert_status(be->execute(b, sess, 0, op, &s, &f->shm, &result),
                      VGPU_S_NOT_SUPPORTED);
        assert_status(be->execute(b, sess, 3, op, &s, &f->shm, &result),
                      VGPU_S_NOT_SUPPORTED);
        assert_true(op->idempotent(&s));
    }
    assert_only_changed(f, 0, 0);
    be->session_close(b, sess);
    be->fini(b);
}

/* ABI 1.2: what each of the seven Phase 1 operations names, for the queue
 * window check: exactly the ranges validate() checked. */
static void test_ranges(void **state)
{
    struct vgpu_range r[VGPU_OP_MAX_RANGES];
    struct vgpu_sqe s;

    (void)state;
    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_NOP;
    assert_int_equal(vgpu_op_lookup(VGPU_OP_NOP)->ranges(&s, r), 0);

    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_GPU_INFO;
    s.args.gpu_info = (struct vgpu_args_gpu_info){ .out_off = D + 8, .out_len = 4096 };
    assert_status(vgpu_op_lookup(s.opcode)->validate(&s, SHM_1M), VGPU_S_OK);
    assert_int_equal(vgpu_op_lookup(s.opcode)->ranges(&s, r), 1);
    assert_true(r[0].off == D + 8 && r[0].len == 4096);   /* the whole declared buffer */

    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_VECTOR_ADD;
    s.args.vector_add = (struct vgpu_args_vector_add){ .a_off = D, .b_off = D + 4096,
                                                       .out_off = D + 8192, .n = 1000 };
    assert_status(vgpu_op_lookup(s.opcode)->validate(&s, SHM_1M), VGPU_S_OK);
    assert_int_equal(vgpu_op_lookup(s.opcode)->ranges(&s, r), 3);
    assert_true(r[0].off == D && r[1].off == D + 4096 && r[2].off == D + 8192);
    assert_true(r[0].len == 4000 && r[1].len == 4000 && r[2].len == 4000);

    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_SAXPY;
    s.args.saxpy = (struct vgpu_args_saxpy){ .x_off = D, .y_off = D + 4096, .n = 10 };
    assert_status(vgpu_op_lookup(s.opcode)->validate(&s, SHM_1M), VGPU_S_OK);
    assert_int_equal(vgpu_op_lookup(s.opcode)->ranges(&s, r), 2);
    assert_true(r[0].off == D && r[1].off == D + 4096 && r[0].len == 40 && r[1].len == 40);

    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_REDUCE_SUM;
    s.args.reduce_sum = (struct vgpu_args_reduce_sum){ .in_off = D + 64, .n = 16 };
    assert_status(vgpu_op_lookup(s.opcode)->validate(&s, SHM_1M), VGPU_S_OK);
    assert_int_equal(vgpu_op_lookup(s.opcode)->ranges(&s, r), 1);
    assert_true(r[0].off == D + 64 && r[0].len == 64);

    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_SGEMM;
    s.args.sgemm = (struct vgpu_args_sgemm){ .a_off = D, .b_off = D + 4096, .c_off = D + 8192,
                                             .m = 2, .n = 3, .k = 4, .alpha = 1.0f };
    assert_status(vgpu_op_lookup(s.opcode)->validate(&s, SHM_1M), VGPU_S_OK);
    assert_int_equal(vgpu_op_lookup(s.opcode)->ranges(&s, r), 3);
    assert_true(r[0].len == 2 * 4 * 4 && r[1].len == 4 * 3 * 4 && r[2].len == 2 * 3 * 4);
    assert_true(r[2].off == D + 8192);

    /* MEMCPY names only the sides its mode uses. */
    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_MEMCPY;
    s.args.memcpy = (struct vgpu_args_memcpy){ .src_off = D, .dst_off = D + 4096, .len = 100,
                                               .mode = VGPU_MEMCPY_ROUNDTRIP };
    assert_int_equal(vgpu_op_lookup(s.opcode)->ranges(&s, r), 2);
    assert_true(r[0].off == D && r[1].off == D + 4096 && r[1].len == 100);
    s.args.memcpy.mode = VGPU_MEMCPY_H2D;
    s.args.memcpy.dst_off = UINT64_MAX;
    assert_int_equal(vgpu_op_lookup(s.opcode)->ranges(&s, r), 1);
    assert_true(r[0].off == D);
    s.args.memcpy.mode = VGPU_MEMCPY_D2H;
    s.args.memcpy.dst_off = D + 4096;
    s.args.memcpy.src_off = UINT64_MAX;
    assert_int_equal(vgpu_op_lookup(s.opcode)->ranges(&s, r), 1);
    assert_true(r[0].off == D + 4096);
}

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
        if (op) {
            assert_true(op->cost_ns(&z) > 0);
        }
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

/* Handles: mostly small and valid, sometimes 0 or anything. */
static uint32_t fuzz_handle(void)
{
    uint64_t r = rng_u64();

    return r % 8 == 0 ? 0 : r % 8 == 1 ? (uint32_t)rng_u64() : 1 + (uint32_t)(r >> 8) % 64;
}

/* A device address: mostly plausible, sometimes NULL, unaligned or wrapping. */
static uint64_t fuzz_dptr(void)
{
    uint64_t r = rng_u64();

    switch (r % 8) {
    case 0: return 0;
    case 1: return UINT64_MAX - rng_u64() % 4096;
    case 2: return rng_u64();
    default:
        return (0x7f0000000000ull + rng_u64() % (1ull << 32)) & ~((r >> 8) % 2 ? 0ull : 3ull);
    }
}

/* Mostly in bounds [1, max]; sometimes 0 or past max. */
static uint32_t fuzz_dim(uint32_t max, uint32_t typical)
{
    uint64_t r = rng_u64();

    switch (r % 16) {
    case 0: return 0;
    case 1: return max + 1;
    case 2: return max;
    default: return 1 + (uint32_t)((r >> 8) % typical);
    }
}

/* The argument struct of a CU operation, as a guest might write it. */
static void fuzz_cu_args(struct vgpu_sqe *s, uint64_t size)
{
    bool junk = rng_u64() % 32 == 0;        /* a nonzero byte past the struct */

    switch (s->opcode) {
    case VGPU_OP_CU_DEVICE_INFO:
        s->args.cu_out.out_off = fuzz_off(size) & ~4ull;
        s->args.cu_out.out_len = fuzz_count(UINT64_MAX - 1, 4096);
        break;
    case VGPU_OP_CU_MEM_ALLOC:
    case VGPU_OP_CU_MEM_FREE:
        s->args.cu_mem.bytes = s->opcode == VGPU_OP_CU_MEM_ALLOC ? fuzz_count(1ull << 50, 1 << 30)
                               : rng_u64() % 16 == 0;
        s->args.cu_mem.dptr = s->opcode == VGPU_OP_CU_MEM_FREE ? fuzz_dptr() : rng_u64() % 16 == 0;
        break;
    case VGPU_OP_CU_MEMSET:
        s->args.cu_memset.dptr = fuzz_dptr();
        s->args.cu_memset.count = fuzz_count(1ull << 49, 1 << 20);
        s->args.cu_memset.value = (uint32_t)rng_u64();
        s->args.cu_memset.elem_size = rng_u64() % 8 ? 1u << (rng_u64() % 3)
                                                    : (uint32_t)rng_u64() % 9;
        s->args.cu_memset.stream = fuzz_handle();
        s->args.cu_memset.pad = rng_u64() % 16 == 0;
        break;
    case VGPU_OP_CU_MEMCPY_HTOD:
    case VGPU_OP_CU_MEMCPY_DTOH:
    case VGPU_OP_CU_MEMCPY_DTOD:
        s->args.cu_memcpy.dst = s->opcode == VGPU_OP_CU_MEMCPY_DTOH ? fuzz_off(size) : fuzz_dptr();
        s->args.cu_memcpy.src = s->opcode == VGPU_OP_CU_MEMCPY_HTOD ? fuzz_off(size) : fuzz_dptr();
        s->args.cu_memcpy.len = fuzz_count(VGPU_MAX_COPY_BYTES, 65536);
        s->args.cu_memcpy.stream = fuzz_handle();
        s->args.cu_memcpy.pad = rng_u64() % 16 == 0;
        break;
    case VGPU_OP_CU_MEMCPY_2D: {
        struct vgpu_args_cu_memcpy2d *a = &s->args.cu_memcpy2d;

        a->dst_kind = (uint8_t)(rng_u64() % 16 ? rng_u64() % 2 : rng_u64());
        a->src_kind = (uint8_t)(rng_u64() % 16 ? rng_u64() % 2 : rng_u64());
        a->dst = a->dst_kind == VGPU_CU_MEM_SHM ? fuzz_off(size) : fuzz_dptr();
        a->src = a->src_kind == VGPU_CU_MEM_SHM ? fuzz_off(size) : fuzz_dptr();
        a->width = fuzz_dim(UINT32_MAX - 1, 512);
        a->height = fuzz_dim(UINT32_MAX - 1, 64);
        a->dst_pitch = rng_u64() % 8 ? a->width + (uint32_t)(rng_u64() % 64) : (uint32_t)rng_u64();
        a->src_pitch = rng_u64() % 8 ? a->width + (uint32_t)(rng_u64() % 64) : (uint32_t)rng_u64();
        a->stream = fuzz_handle();
        a->pad = rng_u64() % 16 == 0;
        break;
    }
    case VGPU_OP_CU_MODULE_LOAD:
        s->args.cu_module_load.image_off = fuzz_off(size);
        s->args.cu_module_load.image_len = fuzz_count(VGPU_CU_MAX_IMAGE, 65536);
        break;
    case VGPU_OP_CU_MODULE_GET_FUNCTION:
    case VGPU_OP_CU_MODULE_GET_GLOBAL:
        s->args.cu_symbol.name_off = fuzz_off(size);
        s->args.cu_symbol.name_len = (uint32_t)fuzz_count(VGPU_CU_MAX_NAME, 64);
        s->args.cu_symbol.out_off = fuzz_off(size) & ~4ull;
        s->args.cu_symbol.out_len = (uint32_t)fuzz_count(UINT32_MAX - 1, 8192);
        s->args.cu_symbol.module = fuzz_handle();
        s->args.cu_symbol.pad = rng_u64() % 16 == 0;
        break;
    case VGPU_OP_CU_MODULE_UNLOAD:
    case VGPU_OP_CU_STREAM_DESTROY:
    case VGPU_OP_CU_STREAM_SYNC:
    case VGPU_OP_CU_STREAM_QUERY:
    case VGPU_OP_CU_EVENT_DESTROY:
    case VGPU_OP_CU_EVENT_SYNC:
    case VGPU_OP_CU_EVENT_QUERY:
        s->args.cu_handle.handle = fuzz_handle();
        s->args.cu_handle.pad = rng_u64() % 16 == 0;
        break;
    case VGPU_OP_CU_LAUNCH: {
        struct vgpu_args_cu_launch *a = &s->args.cu_launch;

        a->func = fuzz_handle();
        a->stream = fuzz_handle();
        a->grid[0] = fuzz_dim(0x7fffffffu, 4096);
        a->grid[1] = fuzz_dim(65535, 4);
        a->grid[2] = fuzz_dim(65535, 4);
        a->block[0] = fuzz_dim(1024, 256);
        a->block[1] = fuzz_dim(1024, 4);
        a->block[2] = fuzz_dim(64, 2);
        a->shared_bytes = rng_u64() % 8 ? (uint32_t)(rng_u64() % 65536) : (uint32_t)rng_u64();
        a->params_len = (uint32_t)(rng_u64() % 8 ? rng_u64() % 4096 : rng_u64() % 65536);
        a->params_off = a->params_len || rng_u64() % 16 == 0 ? fuzz_off(size) & ~4ull : 0;
        break;
    }
    case VGPU_OP_CU_STREAM_CREATE:
    case VGPU_OP_CU_EVENT_CREATE:
        s->args.cu_create.flags = (uint32_t)(rng_u64() % 8 ? rng_u64() % 8 : rng_u64());
        s->args.cu_create.priority = rng_u64() % 2 ? 0 : (int32_t)rng_u64();
        break;
    case VGPU_OP_CU_STREAM_WAIT_EVENT:
    case VGPU_OP_CU_EVENT_RECORD:
    case VGPU_OP_CU_EVENT_ELAPSED:
        s->args.cu_pair.a = fuzz_handle();
        s->args.cu_pair.b = fuzz_handle();
        s->args.cu_pair.flags = rng_u64() % 16 == 0;
        s->args.cu_pair.pad = rng_u64() % 16 == 0;
        break;
    case VGPU_OP_CU_FUNC_GET_ATTR:
    case VGPU_OP_CU_FUNC_SET_ATTR:
    case VGPU_OP_CU_OCCUPANCY:
        s->args.cu_func_attr.func = fuzz_handle();
        s->args.cu_func_attr.attr = rng_u64() % 8 ? (int32_t)(rng_u64() % 1100) - 10
                                                  : (int32_t)rng_u64();
        s->args.cu_func_attr.value = rng_u64() % 2 ? 0 : (int32_t)(rng_u64() % 300000) - 100;
        s->args.cu_func_attr.pad = rng_u64() % 16 == 0;
        break;
    case VGPU_OP_CU_LAUNCH_ATTRS: {
        struct vgpu_args_cu_launch_attrs *a = &s->args.cu_launch_attrs;

        for (unsigned i = 0; i < 3; i++) {
            a->cluster[i] = (uint32_t)(rng_u64() % 8 ? rng_u64() % 5 : rng_u64());
        }
        a->flags = (uint32_t)(rng_u64() % 8 ? rng_u64() % 2 : rng_u64());
        a->cluster_policy = (uint32_t)(rng_u64() % 8 ? rng_u64() % 3 : rng_u64());
        a->pad[rng_u64() % 7] = rng_u64() % 16 == 0;
        break;
    }
    case VGPU_OP_CU_TENSOR_MAP:
        s->args.cu_tensor_map.in_off = fuzz_off(size) & ~7ull;
        s->args.cu_tensor_map.out_off = rng_u64() % 8 ? fuzz_off(size) & ~63ull : fuzz_off(size);
        s->args.cu_tensor_map.kind = (uint32_t)(rng_u64() % 8 ? rng_u64() % 2 : rng_u64());
        s->args.cu_tensor_map.pad = rng_u64() % 16 == 0;
        break;
    case VGPU_OP_CU_CTX_LIMIT:
        s->args.cu_limit.limit = (uint32_t)(rng_u64() % 8 ? rng_u64() % 20 : rng_u64());
        s->args.cu_limit.set = (uint32_t)(rng_u64() % 8 ? rng_u64() % 2 : rng_u64());
        s->args.cu_limit.value = rng_u64();
        break;
    default:
        break;                              /* no arguments */
    }
    if (junk) {
        s->args.raw[VGPU_SQE_ARGS_SIZE - 1] = (uint8_t)(1 + rng_u64() % 255);
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
        if (vgpu_op_lookup(code) && code != VGPU_OP_SAXPY && code != VGPU_OP_VECTOR_ADD &&
            code != VGPU_OP_SGEMM) {
            s = sqe_of(code);
            assert_true(vgpu_op_lookup(code)->idempotent(&s));
        }
    }
}

static void test_fuzz_validate_exec(void **state)
{
    const uint64_t size = SHM_1M, page = 4096;
    const unsigned iters = 50000;
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
            assert_true(s.opcode == VGPU_OP_COUNT ||
                        (s.opcode > VGPU_OP_MEMCPY && s.opcode < VGPU_OP_CU_FIRST));
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
            fuzz_cu_args(&s, size);
            break;
        }
        st = op->validate(&s, size);
        assert_true(st >= VGPU_S_OK && st < VGPU_S_STATUS_COUNT);
        if (st != VGPU_S_OK) {
            continue;
        }
        /* Every range a valid request names lies in the data area. */
        if (op->ranges) {
            struct vgpu_range r[VGPU_OP_MAX_RANGES];
            unsigned nr = op->ranges(&s, r);

            assert_true(nr <= VGPU_OP_MAX_RANGES);
            for (unsigned i = 0; i < nr; i++) {
                assert_status(vgpu_check_range(r[i].off, r[i].len, 1, size), VGPU_S_OK);
            }
        }
        /* The cpu backend runs every Phase 1 operation and no CU one. */
        assert_status(op->exec_cpu(&s, &view, &result),
                      s.opcode >= VGPU_OP_CU_FIRST ? VGPU_S_NOT_SUPPORTED : VGPU_S_OK);
        executed[s.opcode]++;
        if (memcmp(view.base, rings, D) != 0) {
            fail_msg("%s wrote into the ring area (iteration %u)", op->name, it);
        }
    }
    /* The generator must actually reach every operation's exec. */
    for (unsigned i = 0; i < VGPU_OP_COUNT; i++) {
        if (!vgpu_op_lookup(i)) {
            continue;
        }
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
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_validate_nop),
        cmocka_unit_test(test_validate_gpu_info),
        cmocka_unit_test(test_validate_vector_add),
        cmocka_unit_test(test_validate_saxpy),
        cmocka_unit_test(test_validate_reduce_sum),
        cmocka_unit_test(test_validate_sgemm),
        cmocka_unit_test(test_validate_memcpy),
        cmocka_unit_test(test_validate_cu_header),
        cmocka_unit_test(test_validate_cu_device_info),
        cmocka_unit_test(test_validate_cu_launch_ext),
        cmocka_unit_test(test_validate_cu_memory),
        cmocka_unit_test(test_validate_cu_copy),
        cmocka_unit_test(test_validate_cu_memcpy_2d),
        cmocka_unit_test(test_validate_cu_module),
        cmocka_unit_test(test_validate_cu_launch),
        cmocka_unit_test(test_validate_cu_func),
        cmocka_unit_test(test_validate_cu_stream_event),
        cmocka_unit_test(test_cu_ranges_bytes_cost),
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
        cmocka_unit_test_setup_teardown(test_exec_cu_cpu, exec_setup, exec_teardown),
    };

    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
