/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The mediator's side of the rings (mediator/session.c): attach/resume and
 * take with the guest's sq_tail, cq_head and SQEs as the fuzzer writes them,
 * the real scheduler picking, and completions written back.
 *
 * The input is a script (enum action). An honest guest follows the ring
 * protocol (submit only at sq_tail within the limits, consume only posted
 * CQEs); hostile actions write any index or slot. What must hold always: the
 * session's books (taken == sq_next - sq_head <= max_inflight, requests
 * complete in SQ order) and every write lands inside the rings (the mapping
 * is malloc'ed to its exact size). While the guest is honest, also: no CQE
 * overwrites one the guest has not consumed, and every submitted request
 * completes exactly once, in order, across mediator restarts.
 *
 * ABI 1.2: the session has 1..4 queue pairs, each with its own guest, honest
 * or not; the honest queues' guarantees hold whatever the others' guests do,
 * and every request completes on the queue it came from.
 */
#include <string.h>

#include "vgpu/ring.h"
#include "mediator/mediator.h"
#include "mediator/util.h"
#include "fuzz.h"

enum action {
    ACT_SUBMIT,         /* [q][n][opcode]: honest submit of 1 + n % 64 SQEs */
    ACT_KICK,           /* vgpu_session_take() */
    ACT_EXEC,           /* [n]: pick and complete up to 1 + n % 64 requests */
    ACT_CONSUME,        /* [q][n]: honest guest consumes up to n CQEs */
    ACT_RESTART,        /* mediator restart: a new session resumes the rings */
    ACT_SQ_TAIL,        /* [q][u32]: hostile sq_tail */
    ACT_CQ_HEAD,        /* [q][u32]: hostile cq_head */
    ACT_SQE,            /* [q][slot][64 bytes]: hostile rewrite of any SQ slot */
    ACT_HOST_IDX,       /* [q][u32 u32]: guest scribbles on sq_head / cq_tail */
    ACT_WINDOW,         /* [q][u64 u64]: the queue table entry of q */
    ACT_COUNT
};

#define MAX_Q 4u

static uint8_t *shm;

struct world {
    struct vgpu_mediator m;
    struct vgpu_session *s;
    uint32_t max_inflight;
    uint32_t nq;
};

/* What the guest of one queue pair knows. */
struct guest {
    struct vgpu_shm_ctrl *c;
    struct vgpu_sqe *sq;
    struct vgpu_cqe *cq;
    uint32_t submitted, consumed;
    bool honest;
};

static void attach(struct world *w)
{
    struct vgpu_session *s;

    memset(&w->m, 0, sizeof(w->m));
    vgpu_sched_init(&w->m.sched, VGPU_SCHED_DEFAULT_QUANTUM_NS, VGPU_SCHED_DEFAULT_AGING_NS);
    s = vgpu_session_new(&w->m, -1);
    FUZZ_CHECK(s != NULL);
    s->shm.base = shm;
    s->shm.size = VGPU_SHM_MIN_SIZE;
    FUZZ_CHECK(vgpu_session_queues(s, w->nq) == 0);
    s->max_inflight = w->max_inflight;
    s->state = VGPU_CONN_ACTIVE;
    w->m.nsessions = 1;
    w->s = s;
    vgpu_session_resume(s);
}

static void detach(struct world *w)
{
    vgpu_session_detach(w->s);
    w->s->shm.base = NULL; /* ours, not an mmap */
    vgpu_session_destroy(w->s);
    w->s = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = { data, size };
    struct guest g[MAX_Q];
    struct world w;

    if (!shm) {
        shm = malloc(VGPU_SHM_MIN_SIZE);
        FUZZ_CHECK(shm != NULL);
        vgpu_log_set_level(VGPU_LOG_ERROR); /* warnings are what it provokes */
    }
    w.max_inflight = 1 + fuzz_u8(&in) % 64;
    w.nq = 1 + fuzz_u8(&in) % MAX_Q;
    memset(shm, 0, VGPU_SHM_DATA_OFFSET);
    for (uint32_t q = 0; q < w.nq; q++) {
        uint8_t *base = shm + (q ? VGPU_SHM_QUEUE_OFFSET(VGPU_SHM_MIN_SIZE, q) : 0);
        struct guest *gq = &g[q];
        struct vgpu_shm_ctrl *c;

        if (q) {
            memset(base, 0, VGPU_SHM_QUEUE_SIZE);
        }
        gq->c = c = vgpu_shm_ctrl(base);
        gq->sq = vgpu_shm_sq(base);
        gq->cq = vgpu_shm_cq(base);
        /* Where a previous life of the rings left them: honest only if empty. */
        c->sq_tail = c->sq_head = c->cq_tail = c->cq_head = fuzz_u32(&in);
        gq->honest = (fuzz_u8(&in) & 1) == 0;
        if (!gq->honest) {
            c->sq_head = fuzz_u32(&in);
            c->cq_tail = fuzz_u32(&in);
            c->cq_head = fuzz_u32(&in);
        }
        gq->submitted = gq->consumed = c->sq_tail;
    }
    attach(&w);

    for (unsigned steps = 0; in.left && steps < 2048; steps++) {
        struct vgpu_session *s = w.s;
        uint32_t taken = 0;

        switch (fuzz_u8(&in) % ACT_COUNT) {
        case ACT_SUBMIT: {
            struct guest *gq = &g[fuzz_u8(&in) % w.nq];
            unsigned n = 1 + fuzz_u8(&in) % 64;
            uint8_t op = fuzz_u8(&in);

            /* Arguments stay zero: the ops target covers their validation;
             * here an opcode picks accept (nop) or reject paths. */
            while (n-- && gq->honest && gq->submitted - gq->consumed < VGPU_CQ_ENTRIES &&
                   gq->submitted - vgpu_load_acquire(&gq->c->sq_head) < VGPU_SQ_ENTRIES) {
                struct vgpu_sqe e = { .opcode = op % (VGPU_OP_COUNT + 1),
                                      .tag = gq->submitted };

                gq->sq[vgpu_ring_slot(gq->submitted, VGPU_SQ_ENTRIES)] = e;
                gq->submitted++;
                vgpu_store_release(&gq->c->sq_tail, gq->submitted);
            }
            break;
        }
        case ACT_KICK: {
            uint32_t before[MAX_Q];

            for (uint32_t q = 0; q < w.nq; q++) {
                before[q] = s->q[q].taken;
            }
            if (vgpu_session_take(s) == 0) {
                break;
            }
            /* Whatever the guest claims, what was taken from a queue fits
             * in its CQ as the guest's cq_head describes it. */
            for (uint32_t q = 0; q < w.nq; q++) {
                uint32_t used = vgpu_ring_count(vgpu_load_acquire(&g[q].c->cq_head),
                                                s->q[q].cq_tail, VGPU_CQ_ENTRIES);

                FUZZ_CHECK(s->q[q].taken == before[q] ||
                           (used != VGPU_RING_CORRUPT && s->q[q].taken + used <= VGPU_CQ_ENTRIES));
            }
            break;
        }
        case ACT_EXEC: {
            unsigned n = 1 + fuzz_u8(&in) % 64;

            while (n--) {
                struct vgpu_sched_req *sr = vgpu_sched_pick(&w.m.sched, vgpu_now_ns());
                struct vgpu_req *r;

                if (!sr) {
                    FUZZ_CHECK(s->taken == 0);
                    break;
                }
                r = (struct vgpu_req *)sr;
                FUZZ_CHECK(r->sess == s && r->queue < w.nq &&
                           r->index == s->q[r->queue].sq_head);
                if (g[r->queue].honest) {
                    /* The slot this CQE goes to was consumed by the guest. */
                    FUZZ_CHECK(s->q[r->queue].cq_tail - g[r->queue].c->cq_head <
                               VGPU_CQ_ENTRIES);
                }
                vgpu_session_complete(s, r, r->status > 0 ? r->status : VGPU_S_OK, 0, 1000,
                                      vgpu_now_ns());
            }
            break;
        }
        case ACT_CONSUME: {
            struct guest *gq = &g[fuzz_u8(&in) % w.nq];
            unsigned n = fuzz_u8(&in);

            if (!gq->honest) {
                break;
            }
            while (n-- && gq->consumed != vgpu_load_acquire(&gq->c->cq_tail)) {
                const struct vgpu_cqe *e = &gq->cq[vgpu_ring_slot(gq->consumed, VGPU_CQ_ENTRIES)];

                /* Exactly once and in order, restarts included, on its own
                 * queue whatever the other queues' guests do. */
                FUZZ_CHECK(e->tag == gq->consumed);
                gq->consumed++;
                vgpu_store_release(&gq->c->cq_head, gq->consumed);
            }
            break;
        }
        case ACT_RESTART:
            detach(&w);
            attach(&w);
            break;
        case ACT_SQ_TAIL: {
            struct guest *gq = &g[fuzz_u8(&in) % w.nq];

            gq->honest = false;
            vgpu_store_release(&gq->c->sq_tail, fuzz_u32(&in));
            break;
        }
        case ACT_CQ_HEAD: {
            struct guest *gq = &g[fuzz_u8(&in) % w.nq];

            gq->honest = false;
            vgpu_store_release(&gq->c->cq_head, fuzz_u32(&in));
            break;
        }
        case ACT_SQE: {
            struct guest *gq = &g[fuzz_u8(&in) % w.nq];
            uint8_t slot = fuzz_u8(&in);

            gq->honest = false;
            fuzz_bytes(&in, &gq->sq[slot % VGPU_SQ_ENTRIES], sizeof(struct vgpu_sqe));
            break;
        }
        case ACT_HOST_IDX: {
            struct guest *gq = &g[fuzz_u8(&in) % w.nq];

            gq->honest = false;
            vgpu_store_release(&gq->c->sq_head, fuzz_u32(&in));
            vgpu_store_release(&gq->c->cq_tail, fuzz_u32(&in));
            break;
        }
        case ACT_WINDOW: {
            /* Only statuses change: a window never affects the ring protocol. */
            struct vgpu_queue_desc *d = (struct vgpu_queue_desc *)(shm + VGPU_SHM_QTABLE_OFFSET);
            uint32_t q = fuzz_u8(&in) % VGPU_MAX_QUEUES;

            d[q].win_off = fuzz_u64(&in);
            d[q].win_len = fuzz_u64(&in);
            break;
        }
        }
        s = w.s;
        for (uint32_t q = 0; q < w.nq; q++) {
            const struct vgpu_queue *sq = &s->q[q];

            FUZZ_CHECK(sq->taken == sq->sq_next - sq->sq_head);
            FUZZ_CHECK(sq->taken <= VGPU_CQ_ENTRIES);
            taken += sq->taken;
            if (g[q].honest) {
                FUZZ_CHECK(sq->sq_head == sq->cq_tail);
                FUZZ_CHECK(g[q].submitted - sq->sq_head <= VGPU_SQ_ENTRIES);
            }
        }
        FUZZ_CHECK(s->taken == taken && s->taken <= s->max_inflight);
        FUZZ_CHECK(w.m.sched.queued + w.m.sched.running == s->taken);
    }
    detach(&w);
    return 0;
}
