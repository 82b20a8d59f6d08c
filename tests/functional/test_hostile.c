/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * A hostile guest: one thread keeps rewriting the submitted descriptor
 * (offsets, count and opcode flipping between valid and invalid values)
 * while requests are processed. Every completion must be either correct or a
 * precise error, and the mediator must survive. Then corrupt ring indexes
 * and a doorbell storm; a second, honest device is served throughout.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vgpu/ring.h"
#include "fhelp.h"

#define SHM       (4u << 20)
#define N         4096u
#define MIN_ROUNDS 2000
#define MAX_ROUNDS 50000

static struct fh_mediator med;
static volatile int stop_flipping;

struct layout {
    uint64_t a, b, out;
};

static const struct layout L = {
    .a = VGPU_SHM_DATA_OFFSET,
    .b = VGPU_SHM_DATA_OFFSET + N * 4,
    .out = VGPU_SHM_DATA_OFFSET + 2 * N * 4,
};

/* Shared with the flipper: the slot the main thread submitted last. */
static uint32_t current_index;
static unsigned long flips;

static void *flipper(void *arg)
{
    struct fh_dev *d = arg;
    struct vgpu_sqe *sq = vgpu_shm_sq(d->shm);
    unsigned k = 0;

    while (!__atomic_load_n(&stop_flipping, __ATOMIC_RELAXED)) {
        uint32_t idx = __atomic_load_n(&current_index, __ATOMIC_ACQUIRE);
        volatile struct vgpu_sqe *s = &sq[vgpu_ring_slot(idx, VGPU_SQ_ENTRIES)];

        /* each field flips between its valid value and a bad one, and stays a while */
        k++;
        __atomic_store_n(&flips, k, __ATOMIC_RELAXED);
        s->args.vector_add.a_off = (k & 1) ? L.a : d->shm_size - 8;          /* bad-range */
        s->args.vector_add.out_off = (k & 2) ? L.out : L.out + 2;            /* bad-align */
        s->args.vector_add.n = (k & 4) ? N : VGPU_MAX_ELEMS + 1;             /* too-large */
        s->opcode = (k & 8) ? VGPU_OP_VECTOR_ADD : 200;                      /* unknown-op */
        for (volatile int spin = 0; spin < 200; spin++) {
        }
        if ((k & 15) == 15) {
            sched_yield();
        }
    }
    return NULL;
}

static bool honest_nop(struct fh_dev *d, uint32_t tag)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = tag };
    struct vgpu_cqe cqe;

    fh_dev_queue(d, &sqe);
    return fh_dev_kick(d) == 0 && fh_dev_wait(d, &cqe, 5000) == 0 && cqe.tag == tag &&
           cqe.status == VGPU_S_OK;
}

int main(void)
{
    const char *args[] = { "--executors", "2", NULL };
    struct fh_dev evil, good;
    pthread_t th;
    unsigned ok = 0, precise = 0, wrong = 0, bad_status = 0, lost = 0, honest_ok = 0, honest_tries = 0;
    unsigned by_status[VGPU_S_STATUS_COUNT] = { 0 };
    float *a, *b, *out;
    int r;

    if (fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        return fh_summary();
    }
    r = fh_dev_open(&evil, med.sock, 1, SHM);
    CHECK(r == 0, "hostile device attaches");
    r = r == 0 ? fh_dev_open(&good, med.sock, 2, SHM) : r;
    CHECK(r == 0, "honest device attaches");
    if (r) {
        goto out;
    }
    a = fh_ptr(&evil, L.a);
    b = fh_ptr(&evil, L.b);
    out = fh_ptr(&evil, L.out);

    pthread_create(&th, NULL, flipper, &evil);
    /* at least MIN_ROUNDS, and on until the race has produced both outcomes
     * (on a loaded 2-core host the flipper may get little CPU at first) */
    uint64_t deadline = fh_now_ms() + 20000;
    int it;
    for (it = 0; it < MAX_ROUNDS && fh_now_ms() < deadline &&
                 (it < MIN_ROUNDS || ok < 50 || precise < 50); it++) {
        struct vgpu_sqe sqe = { .opcode = VGPU_OP_VECTOR_ADD, .tag = (uint32_t)it };
        struct vgpu_cqe cqe;

        for (unsigned i = 0; i < N; i++) {
            a[i] = (float)(it + (int)i);
            b[i] = (float)(3 * it);
            out[i] = -1.0f;
        }
        sqe.args.vector_add = (struct vgpu_args_vector_add) { L.a, L.b, L.out, N };
        /* Every 8th round the guest itself rewrites one field after
         * publishing, so both outcomes occur even when the flipper thread
         * gets no CPU at the right moment on a loaded host. */
        if (it % 8 == 7) {
            switch ((it / 8) % 4) {
            case 0: sqe.args.vector_add.a_off = evil.shm_size - 8; break;
            case 1: sqe.args.vector_add.out_off = L.out + 2; break;
            case 2: sqe.args.vector_add.n = VGPU_MAX_ELEMS + 1; break;
            default: sqe.opcode = 200; break;
            }
        }
        __atomic_store_n(&current_index, evil.sq_tail, __ATOMIC_RELEASE);
        fh_dev_queue(&evil, &sqe);
        if (fh_dev_kick(&evil) < 0 || fh_dev_wait(&evil, &cqe, 5000) < 0 ||
            cqe.tag != (uint32_t)it) {
            lost++;
            break;
        }
        if (cqe.status >= 0 && cqe.status < VGPU_S_STATUS_COUNT) {
            by_status[cqe.status]++;
        }
        if (cqe.status == VGPU_S_OK) {
            bool right = true;
            for (unsigned i = 0; i < N; i++) {
                if (out[i] != (float)(it + (int)i) + (float)(3 * it)) {
                    right = false;
                    break;
                }
            }
            right ? ok++ : wrong++;
        } else if (cqe.status == VGPU_S_BAD_RANGE || cqe.status == VGPU_S_BAD_ALIGN ||
                   cqe.status == VGPU_S_TOO_LARGE || cqe.status == VGPU_S_UNKNOWN_OP) {
            precise++;
        } else {
            bad_status++;
        }
        if (it % 100 == 0) {
            honest_ok += honest_nop(&good, (uint32_t)it);
            honest_tries++;
        }
    }
    __atomic_store_n(&stop_flipping, 1, __ATOMIC_RELAXED);
    pthread_join(th, NULL);
    printf("# flipper: %lu rewrites\n", flips);
    printf("# %u rounds: %u correct, %u precise errors (bad-range %u, bad-align %u, too-large %u,"
           " unknown-op %u), %u wrong results, %u other statuses, %u lost\n", it, ok, precise,
           by_status[VGPU_S_BAD_RANGE], by_status[VGPU_S_BAD_ALIGN], by_status[VGPU_S_TOO_LARGE],
           by_status[VGPU_S_UNKNOWN_OP], wrong, bad_status, lost);
    CHECK(lost == 0, "every request of the rewritten ring completed");
    CHECK(wrong == 0, "no successful completion with a wrong result");
    CHECK(bad_status == 0, "every failure has a precise status");
    CHECK(ok + precise == (unsigned)it, "correct + precise errors = %u of %d", ok + precise, it);
    CHECK(ok > 0 && precise > 0, "the race produced both outcomes (%u ok, %u errors)", ok, precise);
    CHECK(honest_ok == honest_tries, "the honest device was served throughout (%u/%u)", honest_ok,
          honest_tries);

    /* corrupt ring indexes: the kick is ignored, the session survives */
    {
        struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = 77777 };
        struct vgpu_cqe cqe;
        uint32_t saved = evil.sq_tail;

        /* KICKs are asynchronous: give the mediator time to see each state */
        vgpu_store_release(&evil.ctrl->sq_tail, saved + 1000);
        fh_dev_kick(&evil);
        usleep(50 * 1000);
        vgpu_store_release(&evil.ctrl->sq_tail, saved - 5);  /* behind sq_head */
        fh_dev_kick(&evil);
        usleep(50 * 1000);
        vgpu_store_release(&evil.ctrl->sq_tail, saved);
        r = fh_dev_wait(&evil, &cqe, 200);
        CHECK(r == -ETIMEDOUT, "corrupt sq_tail: nothing executed (%d)", r);
        vgpu_store_release(&evil.ctrl->cq_head, evil.cq_head + 5000);
        fh_dev_queue(&evil, &sqe);
        fh_dev_kick(&evil);
        usleep(50 * 1000);
        CHECK(vgpu_load_acquire(&evil.ctrl->cq_tail) == evil.cq_head,
              "corrupt cq_head: nothing taken");
        vgpu_store_release(&evil.ctrl->cq_head, evil.cq_head);
        fh_dev_kick(&evil);
        r = fh_dev_wait(&evil, &cqe, 5000);
        CHECK(r == 0 && cqe.tag == 77777 && cqe.status == VGPU_S_OK,
              "indexes repaired: the pending request completes");
        /* the host's own indexes are scribbled on: the mediator keeps its copies */
        evil.ctrl->cq_tail = 12345;
        evil.ctrl->sq_head = 54321;
        sqe.tag = 77778;
        fh_dev_queue(&evil, &sqe);
        fh_dev_kick(&evil);
        {
            uint64_t deadline = fh_now_ms() + 5000;
            while (fh_now_ms() < deadline &&
                   vgpu_load_acquire(&evil.ctrl->cq_tail) != evil.cq_head + 1) {
                usleep(1000);
            }
        }
        CHECK(vgpu_load_acquire(&evil.ctrl->cq_tail) == evil.cq_head + 1 &&
              vgpu_load_acquire(&evil.ctrl->sq_head) == evil.sq_tail,
              "scribbled sq_head/cq_tail: the mediator keeps its own copies and rewrites them");
        r = fh_dev_wait(&evil, &cqe, 2000);
        CHECK(r == 0 && cqe.tag == 77778 && cqe.status == VGPU_S_OK, "and the request completes");
    }

    /* doorbell storm: thousands of KICKs with nothing new */
    {
        struct vgpu_msg_kick k = { .hdr = { .type = VGPU_MSG_KICK, .size = sizeof(k) } };
        int sent = 0;
        for (int i = 0; i < 20000; i++) {
            if (fh_send(evil.sock, &k, sizeof(k), NULL, 0) == 0) {
                sent++;
            }
        }
        CHECK(sent == 20000, "20000 empty KICKs accepted");
        CHECK(honest_nop(&good, 424242), "honest device served during the storm");
        CHECK(honest_nop(&evil, 434343), "the stormy device is still served");
    }

    /* unknown opcodes and bad flags straight from the ring */
    {
        struct vgpu_sqe sqe = { .opcode = 0xffff, .tag = 1 };
        struct vgpu_cqe cqe;
        fh_dev_queue(&evil, &sqe);
        sqe.opcode = VGPU_OP_NOP;
        sqe.flags = 1;
        sqe.tag = 2;
        fh_dev_queue(&evil, &sqe);
        fh_dev_kick(&evil);
        r = fh_dev_wait(&evil, &cqe, 5000);
        CHECK(r == 0 && cqe.tag == 1 && cqe.status == VGPU_S_UNKNOWN_OP, "opcode 0xffff -> unknown-op");
        r = fh_dev_wait(&evil, &cqe, 5000);
        CHECK(r == 0 && cqe.tag == 2 && cqe.status == VGPU_S_BAD_ARGS, "flags 1 -> bad-args");
    }

out:
    fh_dev_close(&evil);
    fh_dev_close(&good);
    r = fh_mediator_stop(&med, false);
    CHECK(r == 0, "mediator survived and exits 0 (status 0x%x)", r);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 60);
    }
    fh_mediator_cleanup(&med);
    return fh_summary();
}
