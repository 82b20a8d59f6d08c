/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-client hostile: a misbehaving guest, for tests of the device and the
 * mediator. It sends requests the ABI forbids, rewrites descriptors after
 * submitting them, scribbles on its own ring indexes and storms the
 * doorbell. It checks that:
 *   - every request it made invalid completes with an error status;
 *   - every request that completes OK computed the right result;
 *   - every request completes exactly once, in order, before a deadline;
 *   - after all that, a plain vector_add still works.
 * Exit 0 only if all of these hold.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vgpu/abi.h"
#include "vgpu/libvgpu.h"
#include "vgpu/ring.h"
#include "client.h"

struct hstate {
    struct ctx *c;
    uint64_t requests;
    uint64_t by_status[VGPU_S_STATUS_COUNT + 1];  /* last: out-of-range values */
    uint64_t violations;
    int      fatal;         /* exit code that ends the run, 0 while going on */
};

static void count_status(struct hstate *h, int32_t st)
{
    h->requests++;
    h->by_status[st >= 0 && st < VGPU_S_STATUS_COUNT ? st : VGPU_S_STATUS_COUNT]++;
}

static void violation(struct hstate *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void violation(struct hstate *h, const char *fmt, ...)
{
    va_list ap;

    if (h->violations++ < 20) {
        fprintf(stderr, "hostile: VIOLATION: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n");
    }
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Waits for one completion; a missing one means the device stopped answering. */
static int h_wait(struct hstate *h, struct vgpu_cqe *cqe)
{
    int r = vgpu_wait(h->c->dev, cqe, h->c->timeout_ms);

    if (r < 0) {
        fprintf(stderr, "hostile: device unresponsive: ");
        h->fatal = report_err(h->c, "wait", r);
        return r;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Phase 1: requests the ABI forbids, interleaved with valid ones.        */

struct bad_req {
    const char *what;
    struct vgpu_sqe sqe;
};

/* Appends an entry (the last one is reused if the table is full). */
/* This handle's queue region: queue 0 at the start of BAR2, queue q >= 1 at
 * its end (ABI 1.2), e.g. the queue vgpu.ko handed to a dev-transport handle. */
static uint8_t *queue_base(struct ctx *c)
{
    uint64_t size;
    uint8_t *base = vgpu_shm_base(c->dev, &size);

    return c->info.queue ? base + VGPU_SHM_QUEUE_OFFSET(size, c->info.queue) : base;
}

static struct vgpu_sqe *bad_add(struct ctx *c, struct bad_req *b, size_t *n, size_t max,
                                const char *what, uint16_t op)
{
    struct bad_req *e = &b[*n < max ? (*n)++ : max - 1];

    e->what = what;
    sqe_init(c, &e->sqe, op);
    return &e->sqe;
}

/* Appends a valid vector_add, for the caller to spoil one field of. */
static struct vgpu_args_vector_add *bad_vadd(struct ctx *c, const struct vadd_buf *v,
                                             struct bad_req *b, size_t *n, size_t max,
                                             const char *what)
{
    struct vgpu_sqe *s = bad_add(c, b, n, max, what, VGPU_OP_VECTOR_ADD);

    s->args.vector_add.a_off = v->a;
    s->args.vector_add.b_off = v->b;
    s->args.vector_add.out_off = v->out;
    s->args.vector_add.n = v->n;
    return &s->args.vector_add;
}

static size_t build_bad(struct ctx *c, const struct vadd_buf *v, uint64_t spare,
                        struct bad_req *b, size_t max)
{
    uint64_t S = c->info.shm_size;
    size_t n = 0;

#define BAD(desc, op)   bad_add(c, b, &n, max, (desc), (op))
#define VADD(desc)      bad_vadd(c, v, b, &n, max, (desc))

    VADD("vector_add a in the ring control block")->a_off = 0;
    VADD("vector_add a in the SQ")->a_off = VGPU_SHM_SQ_OFFSET;
    VADD("vector_add out over the CQ")->out_off = VGPU_SHM_CQ_OFFSET;
    VADD("vector_add a runs past the end")->a_off = S - 8;
    VADD("vector_add a at the end")->a_off = S;
    VADD("vector_add out wraps around 2^64")->out_off = UINT64_MAX - 15;
    VADD("vector_add n = 0")->n = 0;
    VADD("vector_add n > VGPU_MAX_ELEMS")->n = VGPU_MAX_ELEMS + 1;
    VADD("vector_add n*4 wraps to 0")->n = 1ull << 62;
    VADD("vector_add a misaligned")->a_off = v->a + 2;
    VADD("vector_add flags != 0");
    b[n - 1].sqe.flags = 1;
    BAD("unknown opcode VGPU_OP_COUNT", VGPU_OP_COUNT);
    BAD("unknown opcode 0x7fff", 0x7fff);
    BAD("unknown opcode 0xffff", 0xffff);
    BAD("nop flags != 0", VGPU_OP_NOP)->flags = 0x8000;
    {
        struct vgpu_sqe *s = BAD("saxpy pad != 0", VGPU_OP_SAXPY);

        s->args.saxpy.x_off = v->a;
        s->args.saxpy.y_off = spare;
        s->args.saxpy.n = v->n;
        s->args.saxpy.alpha = 1.0f;
        s->args.saxpy.pad = 1;
        s = BAD("saxpy x overlaps y", VGPU_OP_SAXPY);
        s->args.saxpy.x_off = spare;
        s->args.saxpy.y_off = spare + 4;
        s->args.saxpy.n = v->n;
        s = BAD("sgemm pad != 0", VGPU_OP_SGEMM);
        s->args.sgemm.a_off = v->a;
        s->args.sgemm.b_off = v->b;
        s->args.sgemm.c_off = spare;
        s->args.sgemm.m = s->args.sgemm.n = s->args.sgemm.k = 8;
        s->args.sgemm.pad = 7;
        s = BAD("sgemm m = 0", VGPU_OP_SGEMM);
        s->args.sgemm.a_off = v->a;
        s->args.sgemm.b_off = v->b;
        s->args.sgemm.c_off = spare;
        s->args.sgemm.n = s->args.sgemm.k = 8;
        s = BAD("sgemm m > VGPU_MAX_GEMM_DIM", VGPU_OP_SGEMM);
        s->args.sgemm.a_off = v->a;
        s->args.sgemm.b_off = v->b;
        s->args.sgemm.c_off = spare;
        s->args.sgemm.m = VGPU_MAX_GEMM_DIM + 1;
        s->args.sgemm.n = s->args.sgemm.k = 1;
        s = BAD("sgemm m*k*4 exceeds memory", VGPU_OP_SGEMM);
        s->args.sgemm.a_off = v->a;
        s->args.sgemm.b_off = v->b;
        s->args.sgemm.c_off = spare;
        s->args.sgemm.m = s->args.sgemm.n = s->args.sgemm.k = VGPU_MAX_GEMM_DIM;
        s = BAD("sgemm C overlaps A", VGPU_OP_SGEMM);
        s->args.sgemm.a_off = spare;
        s->args.sgemm.b_off = v->b;
        s->args.sgemm.c_off = spare;
        s->args.sgemm.m = s->args.sgemm.n = s->args.sgemm.k = 8;
        s = BAD("memcpy pad != 0", VGPU_OP_MEMCPY);
        s->args.memcpy.src_off = v->a;
        s->args.memcpy.dst_off = spare;
        s->args.memcpy.len = 64;
        s->args.memcpy.pad = 1;
        s = BAD("memcpy bad mode", VGPU_OP_MEMCPY);
        s->args.memcpy.src_off = v->a;
        s->args.memcpy.dst_off = spare;
        s->args.memcpy.len = 64;
        s->args.memcpy.mode = 9;
        s = BAD("memcpy len = 0", VGPU_OP_MEMCPY);
        s->args.memcpy.src_off = v->a;
        s->args.memcpy.dst_off = spare;
        s = BAD("memcpy len > VGPU_MAX_COPY_BYTES", VGPU_OP_MEMCPY);
        s->args.memcpy.src_off = v->a;
        s->args.memcpy.dst_off = spare;
        s->args.memcpy.len = VGPU_MAX_COPY_BYTES + 1;
        s = BAD("memcpy roundtrip src overlaps dst", VGPU_OP_MEMCPY);
        s->args.memcpy.src_off = spare;
        s->args.memcpy.dst_off = spare + 8;
        s->args.memcpy.len = 64;
        s = BAD("memcpy dst past the end", VGPU_OP_MEMCPY);
        s->args.memcpy.src_off = v->a;
        s->args.memcpy.dst_off = S - 32;
        s->args.memcpy.len = 64;
        s = BAD("gpu_info out_len too small", VGPU_OP_GPU_INFO);
        s->args.gpu_info.out_off = spare;
        s->args.gpu_info.out_len = 8;
        s = BAD("gpu_info out past the end", VGPU_OP_GPU_INFO);
        s->args.gpu_info.out_off = S - 16;
        s->args.gpu_info.out_len = sizeof(struct vgpu_gpu_info);
        s = BAD("reduce_sum n = 0", VGPU_OP_REDUCE_SUM);
        s->args.reduce_sum.in_off = v->a;
        s = BAD("reduce_sum in misaligned", VGPU_OP_REDUCE_SUM);
        s->args.reduce_sum.in_off = v->a + 1;
        s->args.reduce_sum.n = 16;
    }
#undef VADD
#undef BAD
    return n;
}

static void phase_bad(struct hstate *h)
{
    struct ctx *c = h->c;
    struct bad_req bad[48];
    struct vadd_buf v;
    uint64_t spare;
    size_t nb, i;

    if (vadd_prepare(c, 4096, &v) != EXIT_OK ||
        vgpu_alloc(c->dev, 1 << 16, 64, &spare) < 0) {
        h->fatal = EXIT_ERROR;
        return;
    }
    nb = build_bad(c, &v, spare, bad, sizeof(bad) / sizeof(bad[0]));
    /* Each bad request is followed by a valid one: one must not spoil the other. */
    for (i = 0; i < nb && !h->fatal; i++) {
        struct vgpu_sqe good;
        struct vgpu_cqe cqe;
        int r;

        vadd_sqe(c, &v, &good);
        memset(vgpu_ptr(c->dev, v.out), 0xff, v.n * 4);
        if ((r = vgpu_submit(c->dev, &bad[i].sqe)) < 0 ||
            (r = vgpu_submit(c->dev, &good)) < 0 || (r = vgpu_kick(c->dev)) < 0) {
            h->fatal = report_err(c, "submit", r);
            return;
        }
        if (h_wait(h, &cqe) < 0) {
            return;
        }
        count_status(h, cqe.status);
        if (cqe.tag != bad[i].sqe.tag) {
            violation(h, "%s: completion out of order (tag %u, expected %u)", bad[i].what,
                      cqe.tag, bad[i].sqe.tag);
        } else if (cqe.status == VGPU_S_OK) {
            violation(h, "%s: accepted (status ok)", bad[i].what);
        }
        if (h_wait(h, &cqe) < 0) {
            return;
        }
        count_status(h, cqe.status);
        if (cqe.tag != good.tag || cqe.status != VGPU_S_OK || vadd_check(c, &v, true)) {
            violation(h, "valid vector_add after \"%s\": status %s, %s", bad[i].what,
                      vgpu_status_name(cqe.status),
                      cqe.tag != good.tag ? "wrong tag" : "checked");
        }
    }
}

/* ---------------------------------------------------------------------- */
/* Phase 2: fill the whole ring with one doorbell; all must come back.    */

static void phase_full_ring(struct hstate *h)
{
    struct ctx *c = h->c;
    uint32_t first = 0, n = 0, i;
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    int r;

    for (;;) {
        sqe_init(c, &s, VGPU_OP_NOP);
        r = vgpu_submit(c->dev, &s);
        if (r == -EAGAIN) {
            break;
        }
        if (r < 0) {
            h->fatal = report_err(c, "submit", r);
            return;
        }
        if (!n++) {
            first = s.tag;
        }
    }
    if (n != VGPU_SQ_ENTRIES) {
        violation(h, "ring took %u requests before -EAGAIN, expected %u", n, VGPU_SQ_ENTRIES);
    }
    if ((r = vgpu_kick(c->dev)) < 0) {
        h->fatal = report_err(c, "kick", r);
        return;
    }
    for (i = 0; i < n; i++) {
        if (h_wait(h, &cqe) < 0) {
            return;
        }
        count_status(h, cqe.status);
        if (cqe.tag != first + i || cqe.status != VGPU_S_OK) {
            violation(h, "full ring: completion %u has tag %u status %s", i, cqe.tag,
                      vgpu_status_name(cqe.status));
        }
    }
}

/* ---------------------------------------------------------------------- */
/* Phase 3: a thread rewrites every SQ slot after submission.              */

struct rewriter {
    struct vgpu_sqe *sq;
    struct vgpu_sqe variant[4];     /* [0] valid, the others invalid */
    int      stop;
    uint64_t rewrites;
};

static void *rewriter_main(void *arg)
{
    struct rewriter *rw = arg;
    uint32_t i = 0;

    while (!__atomic_load_n(&rw->stop, __ATOMIC_RELAXED)) {
        struct vgpu_sqe *slot = &rw->sq[i % VGPU_SQ_ENTRIES];
        const struct vgpu_sqe *v = &rw->variant[(i / VGPU_SQ_ENTRIES + i) % 4];

        /* Opcode and arguments only: user_data and tag stay the submitter's. */
        __atomic_store_n(&slot->opcode, v->opcode, __ATOMIC_RELAXED);
        memcpy(slot->args.raw, v->args.raw, sizeof(slot->args.raw));
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        i++;
        rw->rewrites++;
        if ((i & 1023) == 0) {
            sched_yield();
        }
    }
    return NULL;
}

static void phase_rewrite(struct hstate *h, double seconds)
{
    struct ctx *c = h->c;
    struct rewriter rw;
    struct vadd_buf v;
    pthread_t th;
    uint32_t next_tag = 0, inflight = 0, oks = 0;
    double end = now_us() + seconds * 1e6;

    if (vadd_prepare(c, 4096, &v) != EXIT_OK) {
        h->fatal = EXIT_ERROR;
        return;
    }
    memset(&rw, 0, sizeof(rw));
    rw.sq = vgpu_shm_sq(queue_base(c));
    vadd_sqe(c, &v, &rw.variant[0]);
    rw.variant[1] = rw.variant[0];
    rw.variant[1].args.vector_add.n = VGPU_MAX_ELEMS * 2;
    rw.variant[2] = rw.variant[0];
    rw.variant[2].args.vector_add.out_off = c->info.shm_size;
    rw.variant[3] = rw.variant[0];
    rw.variant[3].opcode = 0xffff;
    if (pthread_create(&th, NULL, rewriter_main, &rw) != 0) {
        h->fatal = EXIT_ERROR;
        return;
    }
    while (!h->fatal && (now_us() < end || inflight)) {
        struct vgpu_sqe s;
        struct vgpu_cqe cqe;
        int r, k = 0;

        while (now_us() < end && inflight < 8) {
            vadd_sqe(c, &v, &s);
            if (!next_tag) {
                next_tag = s.tag;
            }
            if ((r = vgpu_submit(c->dev, &s)) < 0) {
                h->fatal = report_err(c, "submit", r);
                break;
            }
            inflight++;
            k++;
        }
        if (k && (r = vgpu_kick(c->dev)) < 0) {
            h->fatal = report_err(c, "kick", r);
        }
        if (h->fatal || h_wait(h, &cqe) < 0) {
            break;
        }
        inflight--;
        count_status(h, cqe.status);
        if (cqe.tag != next_tag) {
            violation(h, "rewrite: completion tag %u, expected %u", cqe.tag, next_tag);
        }
        next_tag = cqe.tag + 1;
        oks += cqe.status == VGPU_S_OK;
    }
    __atomic_store_n(&rw.stop, 1, __ATOMIC_RELAXED);
    pthread_join(th, NULL);
    /* Whatever copy the mediator validated, an OK one must have added a + b. */
    if (!h->fatal && oks && vadd_check(c, &v, true)) {
        violation(h, "rewrite: %u requests completed ok but the output is wrong", oks);
    }
    /* Leave no garbage in the slots for whoever uses the ring next. */
    memset(rw.sq, 0, VGPU_SQ_ENTRIES * sizeof(struct vgpu_sqe));
}

/* ---------------------------------------------------------------------- */
/* Phase 4: corrupt ring indexes, then put them back.                      */

static void phase_indexes(struct hstate *h)
{
    struct ctx *c = h->c;
    struct vgpu_shm_ctrl *ctrl = vgpu_shm_ctrl(queue_base(c));
    uint32_t tail = vgpu_load_acquire(&ctrl->sq_tail);
    uint32_t head = vgpu_load_acquire(&ctrl->cq_head);
    uint32_t cq_tail = vgpu_load_acquire(&ctrl->cq_tail);
    static const int32_t tail_delta[] = { 100000, -1, (int32_t)VGPU_SQ_ENTRIES + 1,
                                          INT32_MIN };
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    size_t i;
    int r;

    /* A tail too far ahead (or behind) of the head: the mediator must take
     * nothing. Our own ring is idle, so any completion is a violation. */
    for (i = 0; i < sizeof(tail_delta) / sizeof(tail_delta[0]); i++) {
        vgpu_store_release(&ctrl->sq_tail, tail + (uint32_t)tail_delta[i]);
        vgpu_kick(c->dev);
        sleep_ms(20);
        if (vgpu_load_acquire(&ctrl->cq_tail) != cq_tail) {
            violation(h, "sq_tail %+d: mediator completed requests from a corrupt ring",
                      tail_delta[i]);
            h->fatal = EXIT_FAILED;     /* our indexes no longer agree: stop */
            return;
        }
    }
    vgpu_store_release(&ctrl->sq_tail, tail);

    /* cq_head beyond cq_tail: the CQ would look overfull. Submit meanwhile;
     * the request must complete once the index is sane again. */
    vgpu_store_release(&ctrl->cq_head, head + 5000);
    sqe_init(c, &s, VGPU_OP_NOP);
    if ((r = vgpu_submit(c->dev, &s)) < 0) {
        h->fatal = report_err(c, "submit", r);
        return;
    }
    vgpu_kick(c->dev);
    sleep_ms(20);
    vgpu_store_release(&ctrl->cq_head, head);
    vgpu_kick(c->dev);
    if (h_wait(h, &cqe) < 0) {
        return;
    }
    count_status(h, cqe.status);
    if (cqe.tag != s.tag || cqe.status != VGPU_S_OK) {
        violation(h, "nop after restoring cq_head: tag %u status %s", cqe.tag,
                  vgpu_status_name(cqe.status));
    }
}

/* ---------------------------------------------------------------------- */
/* Phase 5: doorbell storm; exactly one completion per request.           */

static void phase_storm(struct hstate *h)
{
    struct ctx *c = h->c;
    struct vgpu_shm_ctrl *ctrl = vgpu_shm_ctrl(queue_base(c));
    double end = now_us() + 200000;
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    uint64_t kicks = 0;
    int r;

    while (now_us() < end) {
        vgpu_kick(c->dev);
        kicks++;
    }
    sqe_init(c, &s, VGPU_OP_NOP);
    if ((r = vgpu_submit(c->dev, &s)) < 0) {
        h->fatal = report_err(c, "submit", r);
        return;
    }
    for (int i = 0; i < 10000; i++) {
        vgpu_kick(c->dev);
    }
    if (h_wait(h, &cqe) < 0) {
        return;
    }
    count_status(h, cqe.status);
    sleep_ms(20);
    if (vgpu_load_acquire(&ctrl->cq_tail) != vgpu_load_acquire(&ctrl->sq_tail)) {
        violation(h, "doorbell storm: cq_tail %u != sq_tail %u (duplicate completions?)",
                  ctrl->cq_tail, ctrl->sq_tail);
        h->fatal = EXIT_FAILED;
    }
    (void)kicks;
}

int cmd_hostile(struct ctx *c, int argc, char **argv)
{
    static const struct option lo[] = { { "seconds", required_argument, NULL, 's' }, { 0 } };
    struct hstate h = { .c = c };
    double seconds = 3, end;
    int opt, rounds = 0, r, i;

    while ((opt = getopt_long(argc, argv, "s:", lo, NULL)) != -1) {
        if (opt != 's' || !((seconds = strtod(optarg, NULL)) > 0) || seconds > 3600) {
            fprintf(stderr, "vgpu-client: hostile [--seconds S], 0 < S <= 3600\n");
            return EXIT_USAGE;
        }
    }
    end = now_us() + seconds * 1e6;
    do {
        phase_bad(&h);
        if (!h.fatal) {
            phase_full_ring(&h);
        }
        if (!h.fatal) {
            phase_rewrite(&h, seconds / 4 < 1 ? seconds / 4 : 1);
        }
        if (!h.fatal) {
            phase_indexes(&h);
        }
        if (!h.fatal) {
            phase_storm(&h);
        }
        rounds++;
    } while (!h.fatal && now_us() < end);

    printf("hostile: %" PRIu64 " requests in %d rounds, errors by status:", h.requests, rounds);
    for (i = 1; i <= VGPU_S_STATUS_COUNT; i++) {
        if (h.by_status[i]) {
            printf(" %s=%" PRIu64, vgpu_status_name(i), h.by_status[i]);
        }
    }
    printf(" (ok=%" PRIu64 "), %" PRIu64 " violations\n", h.by_status[VGPU_S_OK],
           h.violations);
    if (h.fatal) {
        printf("hostile: FAILED: device/mediator stopped answering correctly\n");
        return h.fatal;
    }
    r = run_vector_add(c, 1u << 16, false);
    printf("hostile: final vector_add %s\n", r ? "FAILED" : "passed");
    if (r) {
        return r;
    }
    return h.violations ? EXIT_FAILED : EXIT_OK;
}
