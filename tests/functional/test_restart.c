/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Mediator restarts with requests left in the ring. The device keeps its
 * memory, reconnects and says HELLO again with the same memfd, as QEMU's
 * reconnecting chardev does; the new mediator must complete what was left,
 * none lost, none completed twice.
 *
 *  A. SIGTERM with 100 requests queued but not taken: they complete after
 *     the restart without any KICK; accumulating requests (out += b) prove
 *     each ran exactly once.
 *  B. A mediator "died" between publishing cq_tail and sq_head (simulated by
 *     moving sq_head back): the completed request is not run again.
 *  C. SIGKILL while large requests execute: every request completes exactly
 *     once, in order, with correct results.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vgpu/ring.h"
#include "fhelp.h"

#define SHM      (64u << 20)
#define A_N      65536u                      /* floats per phase A/B request */
#define A_SLICE  (A_N * 4u)
#define C_N      (1u << 18)
#define C_SLICE  (C_N * 4u)
#define C_REQS   40

static struct fh_mediator med;
static const char *const args[] = { "--executors", "1", "--max-inflight", "4",
                                    "--inline-us", "0", "--log-level", "debug", NULL };

static uint64_t a_b(void)        { return VGPU_SHM_DATA_OFFSET; }
static uint64_t a_out(unsigned k) { return VGPU_SHM_DATA_OFFSET + (uint64_t)(k + 1) * A_SLICE; }
static uint64_t c_a(void)        { return VGPU_SHM_DATA_OFFSET; }
static uint64_t c_b(void)        { return VGPU_SHM_DATA_OFFSET + C_SLICE; }
static uint64_t c_out(unsigned k) { return VGPU_SHM_DATA_OFFSET + (uint64_t)(k + 2) * C_SLICE; }

static void queue_accumulate(struct fh_dev *d, unsigned k)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_VECTOR_ADD, .tag = k, .user_data = 0xa000 + k };
    float *out = fh_ptr(d, a_out(k));

    for (unsigned i = 0; i < A_N; i++) {
        out[i] = (float)(k + i % 100);
    }
    /* out = out + b: running it twice would leave out + 2b */
    sqe.args.vector_add = (struct vgpu_args_vector_add) { a_out(k), a_b(), a_out(k), A_N };
    fh_dev_queue(d, &sqe);
}

static bool accumulate_ok(struct fh_dev *d, unsigned k)
{
    const float *out = fh_ptr(d, a_out(k)), *b = fh_ptr(d, a_b());

    for (unsigned i = 0; i < A_N; i++) {
        if (out[i] != (float)(k + i % 100) + b[i]) {
            return false;
        }
    }
    return true;
}

/* Waits for count completions, expecting tags first..first+count-1 in order. */
static unsigned collect(struct fh_dev *d, unsigned first, unsigned count, int timeout_ms,
                        unsigned *bad)
{
    unsigned got = 0;

    *bad = 0;
    while (got < count) {
        struct vgpu_cqe cqe;
        if (fh_dev_wait(d, &cqe, timeout_ms) < 0) {
            break;
        }
        if (cqe.tag != first + got || cqe.status != VGPU_S_OK) {
            if (*bad == 0) {
                printf("# unexpected completion: tag %u (want %u), status %s\n", cqe.tag,
                       first + got, vgpu_status_name(cqe.status));
            }
            (*bad)++;
        }
        got++;
    }
    return got;
}

static int restart(bool kill9)
{
    char dir[64];
    int r;

    r = fh_mediator_stop(&med, kill9);
    snprintf(dir, sizeof(dir), "%s", med.dir);
    if (r < 0) {
        return r;
    }
    return fh_mediator_start(&med, dir, args);
}

int main(void)
{
    struct fh_dev d;
    unsigned got, bad;
    int r;

    if (fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        return fh_summary();
    }
    r = fh_dev_open(&d, med.sock, 7, SHM);
    CHECK(r == 0, "device attaches");
    if (r) {
        goto out;
    }
    for (unsigned i = 0; i < A_N; i++) {
        ((float *)fh_ptr(&d, a_b()))[i] = (float)(1000 + i % 7);
    }

    /* ---- A ---- */
    for (unsigned k = 0; k < 50; k++) {
        queue_accumulate(&d, k);
    }
    fh_dev_kick(&d);
    got = collect(&d, 0, 50, 10000, &bad);
    CHECK(got == 50 && bad == 0, "A: first 50 requests complete in order (%u, %u bad)", got, bad);
    /* 100 more, no KICK: nobody takes them */
    for (unsigned k = 50; k < 150; k++) {
        queue_accumulate(&d, k);
    }
    usleep(50 * 1000);
    CHECK(vgpu_load_acquire(&d.ctrl->sq_head) == 50, "A: 100 requests wait in the ring");
    r = restart(false);
    CHECK(r == 0, "A: mediator stopped with SIGTERM and started again");
    CHECK(vgpu_load_acquire(&d.ctrl->cq_tail) == 50, "A: nothing completed while it was down");
    r = fh_dev_reconnect(&d, med.sock, 7);
    CHECK(r == 0, "A: device reconnects with the same memory");
    got = collect(&d, 50, 100, 10000, &bad);
    CHECK(got == 100 && bad == 0, "A: the 100 left in the ring complete after the restart, in order"
          " (%u, %u bad)", got, bad);
    {
        unsigned wrong = 0;
        for (unsigned k = 0; k < 150; k++) {
            wrong += !accumulate_ok(&d, k);
        }
        CHECK(wrong == 0, "A: each of 150 requests ran exactly once (%u wrong)", wrong);
    }

    /* ---- B ---- */
    r = fh_mediator_stop(&med, true);
    CHECK(r >= 0, "B: mediator killed");
    /* the last completion's sq_head store "never happened" */
    vgpu_store_release(&d.ctrl->sq_head, vgpu_load_acquire(&d.ctrl->sq_head) - 1);
    for (unsigned k = 150; k < 160; k++) {
        queue_accumulate(&d, k);
    }
    r = fh_mediator_start(&med, med.dir, args);
    CHECK(r == 0, "B: mediator started again");
    r = fh_dev_reconnect(&d, med.sock, 7);
    CHECK(r == 0, "B: device reconnects");
    got = collect(&d, 150, 10, 10000, &bad);
    CHECK(got == 10 && bad == 0, "B: the 10 new requests complete (%u, %u bad)", got, bad);
    {
        struct vgpu_cqe extra;
        r = fh_dev_wait(&d, &extra, 200);
        CHECK(r == -ETIMEDOUT, "B: no completion beyond them (request 149 not redone)");
        CHECK(accumulate_ok(&d, 149), "B: request 149 ran once");
        unsigned wrong = 0;
        for (unsigned k = 150; k < 160; k++) {
            wrong += !accumulate_ok(&d, k);
        }
        CHECK(wrong == 0, "B: requests 150..159 ran once each");
    }

    /* ---- C ---- */
    {
        float *a = fh_ptr(&d, c_a()), *b = fh_ptr(&d, c_b());
        unsigned before, done = 0, wrong = 0;
        uint64_t deadline;

        for (unsigned i = 0; i < C_N; i++) {
            a[i] = (float)(i % 1000);
            b[i] = (float)(i % 3);
        }
        for (unsigned k = 0; k < C_REQS; k++) {
            struct vgpu_sqe sqe = { .opcode = VGPU_OP_VECTOR_ADD, .tag = 1000 + k };
            memset(fh_ptr(&d, c_out(k)), 0xff, C_SLICE);
            sqe.args.vector_add = (struct vgpu_args_vector_add) { c_a(), c_b(), c_out(k), C_N };
            fh_dev_queue(&d, &sqe);
        }
        before = d.cq_head;
        fh_dev_kick(&d);
        /* kill as soon as a few completed: others are executing or queued */
        deadline = fh_now_ms() + 10000;
        while (vgpu_load_acquire(&d.ctrl->cq_tail) - before < 3 && fh_now_ms() < deadline) {
            usleep(200);
        }
        r = fh_mediator_stop(&med, true);
        CHECK(r >= 0, "C: mediator SIGKILLed mid-stream");
        done = vgpu_load_acquire(&d.ctrl->cq_tail) - before;
        CHECK(done >= 3 && done < C_REQS, "C: %u of %u completed before the kill", done, C_REQS);
        r = fh_mediator_start(&med, med.dir, args);
        CHECK(r == 0, "C: mediator started again");
        r = fh_dev_reconnect(&d, med.sock, 7);
        CHECK(r == 0, "C: device reconnects");
        got = collect(&d, 1000, C_REQS, 20000, &bad);
        CHECK(got == C_REQS && bad == 0, "C: all %u complete exactly once, in order (%u, %u bad)",
              C_REQS, got, bad);
        struct vgpu_cqe extra;
        r = fh_dev_wait(&d, &extra, 200);
        CHECK(r == -ETIMEDOUT, "C: no duplicate completion");
        for (unsigned k = 0; k < C_REQS; k++) {
            const float *o = fh_ptr(&d, c_out(k));
            for (unsigned i = 0; i < C_N; i += 97) {
                if (o[i] != a[i] + b[i]) {
                    wrong++;
                    break;
                }
            }
        }
        CHECK(wrong == 0, "C: every result correct (%u wrong)", wrong);
    }

out:
    fh_dev_close(&d);
    r = fh_mediator_stop(&med, false);
    CHECK(r == 0, "mediator exits 0 (status 0x%x)", r);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 80);
    }
    fh_mediator_cleanup(&med);
    return fh_summary();
}
