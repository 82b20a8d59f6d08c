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
 */
#include <string.h>

#include "vgpu/ring.h"
#include "mediator/mediator.h"
#include "mediator/util.h"
#include "fuzz.h"

enum action {
    ACT_SUBMIT,         /* [n][opcode]: honest submit of 1 + n % 64 SQEs */
    ACT_KICK,           /* vgpu_session_take() */
    ACT_EXEC,           /* [n]: pick and complete up to 1 + n % 64 requests */
    ACT_CONSUME,        /* [n]: honest guest consumes up to n CQEs */
    ACT_RESTART,        /* mediator restart: a new session resumes the rings */
    ACT_SQ_TAIL,        /* [u32]: hostile sq_tail */
    ACT_CQ_HEAD,        /* [u32]: hostile cq_head */
    ACT_SQE,            /* [slot][64 bytes]: hostile rewrite of any SQ slot */
    ACT_HOST_IDX,       /* [u32 u32]: guest scribbles on sq_head / cq_tail */
    ACT_COUNT
};

static uint8_t *shm;

struct world {
    struct vgpu_mediator m;
    struct vgpu_session *s;
    uint32_t max_inflight;
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
    FUZZ_CHECK(vgpu_session_queues(s, 1) == 0);
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
    struct world w;
    struct vgpu_shm_ctrl *c;
    struct vgpu_sqe *sq;
    struct vgpu_cqe *cq;
    uint32_t submitted = 0, consumed = 0;
    bool honest;

    if (!shm) {
        shm = malloc(VGPU_SHM_MIN_SIZE);
        FUZZ_CHECK(shm != NULL);
        vgpu_log_set_level(VGPU_LOG_ERROR); /* warnings are what it provokes */
    }
    memset(shm, 0, VGPU_SHM_DATA_OFFSET);
    c = vgpu_shm_ctrl(shm);
    sq = vgpu_shm_sq(shm);
    cq = vgpu_shm_cq(shm);
    w.max_inflight = 1 + fuzz_u8(&in) % 64;
    /* Where a previous life of the rings left them: honest only if empty. */
    c->sq_tail = c->sq_head = c->cq_tail = c->cq_head = fuzz_u32(&in);
    honest = (fuzz_u8(&in) & 1) == 0;
    if (!honest) {
        c->sq_head = fuzz_u32(&in);
        c->cq_tail = fuzz_u32(&in);
        c->cq_head = fuzz_u32(&in);
    }
    submitted = consumed = c->sq_tail;
    attach(&w);

    for (unsigned steps = 0; in.left && steps < 2048; steps++) {
        struct vgpu_session *s = w.s;

        switch (fuzz_u8(&in) % ACT_COUNT) {
        case ACT_SUBMIT: {
            unsigned n = 1 + fuzz_u8(&in) % 64;
            uint8_t op = fuzz_u8(&in);

            /* Arguments stay zero: the ops target covers their validation;
             * here an opcode picks accept (nop) or reject paths. */
            while (n-- && honest && submitted - consumed < VGPU_CQ_ENTRIES &&
                   submitted - vgpu_load_acquire(&c->sq_head) < VGPU_SQ_ENTRIES) {
                struct vgpu_sqe e = { .opcode = op % (VGPU_OP_COUNT + 1), .tag = submitted };

                sq[vgpu_ring_slot(submitted, VGPU_SQ_ENTRIES)] = e;
                submitted++;
                vgpu_store_release(&c->sq_tail, submitted);
            }
            break;
        }
        case ACT_KICK: {
            uint32_t used;

            if (vgpu_session_take(s) == 0) {
                break;
            }
            /* Whatever the guest claims, what was taken fits in the CQ as
             * the guest's cq_head describes it. */
            used = vgpu_ring_count(vgpu_load_acquire(&c->cq_head), s->q[0].cq_tail,
                                   VGPU_CQ_ENTRIES);
            FUZZ_CHECK(used != VGPU_RING_CORRUPT && s->taken + used <= VGPU_CQ_ENTRIES);
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
                FUZZ_CHECK(r->sess == s && r->index == s->q[0].sq_head);
                if (honest) {
                    /* The slot this CQE goes to was consumed by the guest. */
                    FUZZ_CHECK(s->q[0].cq_tail - c->cq_head < VGPU_CQ_ENTRIES);
                }
                vgpu_session_complete(s, r, r->status > 0 ? r->status : VGPU_S_OK, 0, 1000,
                                      vgpu_now_ns());
            }
            break;
        }
        case ACT_CONSUME: {
            unsigned n = fuzz_u8(&in);

            if (!honest) {
                break;
            }
            while (n-- && consumed != vgpu_load_acquire(&c->cq_tail)) {
                const struct vgpu_cqe *e = &cq[vgpu_ring_slot(consumed, VGPU_CQ_ENTRIES)];

                /* Exactly once and in order, restarts included. */
                FUZZ_CHECK(e->tag == consumed);
                consumed++;
                vgpu_store_release(&c->cq_head, consumed);
            }
            break;
        }
        case ACT_RESTART:
            detach(&w);
            attach(&w);
            break;
        case ACT_SQ_TAIL:
            honest = false;
            vgpu_store_release(&c->sq_tail, fuzz_u32(&in));
            break;
        case ACT_CQ_HEAD:
            honest = false;
            vgpu_store_release(&c->cq_head, fuzz_u32(&in));
            break;
        case ACT_SQE: {
            uint8_t slot = fuzz_u8(&in);

            honest = false;
            fuzz_bytes(&in, &sq[slot % VGPU_SQ_ENTRIES], sizeof(struct vgpu_sqe));
            break;
        }
        case ACT_HOST_IDX:
            honest = false;
            vgpu_store_release(&c->sq_head, fuzz_u32(&in));
            vgpu_store_release(&c->cq_tail, fuzz_u32(&in));
            break;
        }
        s = w.s;
        FUZZ_CHECK(s->taken == s->q[0].sq_next - s->q[0].sq_head);
        FUZZ_CHECK(s->taken <= s->max_inflight && s->taken <= VGPU_CQ_ENTRIES);
        FUZZ_CHECK(w.m.sched.queued + w.m.sched.running == s->taken);
        if (honest) {
            FUZZ_CHECK(s->q[0].sq_head == s->q[0].cq_tail);
            FUZZ_CHECK(submitted - s->q[0].sq_head <= VGPU_SQ_ENTRIES);
        }
    }
    detach(&w);
    return 0;
}
