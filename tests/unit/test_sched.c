/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Unit tests of mediator/sched.c: strict classes, weighted deficit round
 * robin on measured cost, aging, per-entity FIFO and one-at-a-time, removal.
 * The scheduler has no clock or threads: the tests drive "now" themselves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mediator/sched.h"

#define US 1000ull
#define MS (1000ull * US)

struct treq {
    struct vgpu_sched_req sr;   /* first: the scheduler hands back &sr */
    int owner;
    int seq;
};

static struct treq *tr(struct vgpu_sched_req *r)
{
    return (struct treq *)r;
}

/* A pool of requests, enough for every test. */
static struct treq pool[4096];
static unsigned pool_used;

static struct treq *new_req(int owner, int seq, uint64_t cost)
{
    struct treq *r;

    assert_true(pool_used < sizeof(pool) / sizeof(pool[0]));
    r = &pool[pool_used++];
    memset(r, 0, sizeof(*r));
    r->owner = owner;
    r->seq = seq;
    r->sr.cost_ns = cost;
    return r;
}

static int setup(void **state)
{
    (void)state;
    pool_used = 0;
    return 0;
}

static void test_strict_classes(void **state)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity e[3];
    uint64_t now = 0;
    (void)state;

    vgpu_sched_init(&s, 1 * MS, 0 /* no aging */);
    vgpu_sched_entity_init(&e[0], 2, 1);
    vgpu_sched_entity_init(&e[1], 0, 1);
    vgpu_sched_entity_init(&e[2], 1, 100); /* weight does not cross classes */
    for (int i = 0; i < 10; i++) {
        for (int k = 0; k < 3; k++) {
            vgpu_sched_enqueue(&s, &e[k], &new_req(k, i, 10 * US)->sr, now);
        }
    }
    /* Class 0 (entity 1) drains first, then class 1 (2), then class 2 (0). */
    const int order[3] = { 1, 2, 0 };
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < 10; i++) {
            struct vgpu_sched_req *r = vgpu_sched_pick(&s, now);
            assert_non_null(r);
            assert_int_equal(tr(r)->owner, order[c]);
            assert_int_equal(tr(r)->seq, i);
            now += 10 * US;
            vgpu_sched_complete(&s, r, 10 * US);
        }
    }
    assert_null(vgpu_sched_pick(&s, now));
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.running, 0);
}

/* A higher class arriving later still goes first at the next pick. */
static void test_preemption_at_pick(void **state)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity lo, hi;
    struct vgpu_sched_req *r;
    (void)state;

    vgpu_sched_init(&s, 1 * MS, 0);
    vgpu_sched_entity_init(&lo, 3, 1);
    vgpu_sched_entity_init(&hi, 0, 1);
    for (int i = 0; i < 3; i++) {
        vgpu_sched_enqueue(&s, &lo, &new_req(0, i, US)->sr, 0);
    }
    r = vgpu_sched_pick(&s, 0);
    assert_int_equal(tr(r)->owner, 0);
    vgpu_sched_enqueue(&s, &hi, &new_req(1, 0, US)->sr, 1);
    vgpu_sched_complete(&s, r, US);
    r = vgpu_sched_pick(&s, 2);
    assert_int_equal(tr(r)->owner, 1);
    vgpu_sched_complete(&s, r, US);
}

/*
 * Two backlogged entities with weights 3:1 on one executor: measured cost
 * (not request count) splits 75/25. Costs differ per request and per
 * entity, and the estimates are deliberately wrong.
 */
static void run_shares(uint32_t wa, uint32_t wb, uint64_t quantum, uint64_t aging,
                       double want_a)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity e[2];
    uint64_t charged[2] = { 0, 0 }, now = 0;
    unsigned seed = 12345;
    int seq[2] = { 0, 0 };

    pool_used = 0;
    vgpu_sched_init(&s, quantum, aging);
    vgpu_sched_entity_init(&e[0], 1, wa);
    vgpu_sched_entity_init(&e[1], 1, wb);
    /* keep 8 queued per entity, recycling the pool slots of completed ones */
    struct treq *slots[2][8];
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 8; i++) {
            slots[k][i] = new_req(k, seq[k]++, 100 * US);
            vgpu_sched_enqueue(&s, &e[k], &slots[k][i]->sr, now);
        }
    }
    for (int n = 0; n < 20000; n++) {
        struct vgpu_sched_req *r = vgpu_sched_pick(&s, now);
        struct treq *t;
        uint64_t actual;

        assert_non_null(r);
        t = tr(r);
        /* entity 0: 50..250 us, entity 1: 20..60 us; estimate always 100 us */
        seed = seed * 1103515245u + 12345u;
        if (aging) { /* equal costs, so head waits differ by the weights */
            actual = 90 * US + (seed >> 8) % (20 * US);
        } else {
            actual = t->owner == 0 ? 50 * US + (seed >> 8) % (200 * US)
                                   : 20 * US + (seed >> 8) % (40 * US);
        }
        now += actual;
        charged[t->owner] += actual;
        vgpu_sched_complete(&s, r, actual);
        /* resubmit the same slot */
        int owner = t->owner;
        memset(&t->sr, 0, sizeof(t->sr));
        t->sr.cost_ns = 100 * US;
        t->seq = seq[owner]++;
        vgpu_sched_enqueue(&s, &e[owner], &t->sr, now);
    }
    double share = (double)charged[0] / (double)(charged[0] + charged[1]);
    print_message("weights %u:%u quantum %llu us: share of entity 0 = %.4f (want %.4f)\n",
                  wa, wb, (unsigned long long)(quantum / US), share, want_a);
    assert_true(share > want_a - 0.02 && share < want_a + 0.02);
    assert_int_equal(e[0].charged_ns, charged[0]);
    assert_int_equal(e[1].charged_ns, charged[1]);
}

static void test_weighted_shares(void **state)
{
    (void)state;
    run_shares(3, 1, 1 * MS, 0, 0.75);
    run_shares(1, 1, 1 * MS, 0, 0.50);
    run_shares(1, 4, 500 * US, 0, 0.20);
    /* a quantum far below the request cost still converges */
    run_shares(3, 1, 10 * US, 0, 0.75);
    /*
     * Both entities sit in class 1 and their requests wait far longer than
     * the aging period: aging must not reorder peers of one class (it once
     * promoted the lighter entity's older requests and flattened 3:1 to 1:1).
     */
    run_shares(3, 1, 1 * MS, 200 * US, 0.75);
    run_shares(1, 4, 500 * US, 100 * US, 0.20);
    /* the lighter entity's head waits ~3x longer than the heavier's: an
     * aging period between the two waits promotes only the lighter one */
    run_shares(3, 1, 1 * MS, 2 * MS, 0.75);
}

/* A request far more expensive than the quantum: pick stays bounded and fair. */
static void test_large_debt(void **state)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity a, b;
    struct vgpu_sched_req *r;
    int b_runs = 0;
    (void)state;

    vgpu_sched_init(&s, 1 * US, 0);
    vgpu_sched_entity_init(&a, 0, 1);
    vgpu_sched_entity_init(&b, 0, 1);
    vgpu_sched_enqueue(&s, &a, &new_req(0, 0, 1 * US)->sr, 0);
    r = vgpu_sched_pick(&s, 0);
    vgpu_sched_enqueue(&s, &a, &new_req(0, 1, 1 * US)->sr, 0);
    vgpu_sched_complete(&s, r, 10000 * MS); /* 10 s of debt, 10^7 quanta */
    for (int i = 0; i < 100; i++) {
        vgpu_sched_enqueue(&s, &b, &new_req(1, i, 1 * MS)->sr, 0);
    }
    /* b owes nothing: it runs its 100 x 1 ms before a's debt is repaid */
    for (int i = 0; i < 100; i++) {
        r = vgpu_sched_pick(&s, 0);
        assert_non_null(r);
        if (tr(r)->owner == 1) {
            b_runs++;
        }
        vgpu_sched_complete(&s, r, 1 * MS);
        if (tr(r)->owner == 0) {
            break;
        }
    }
    assert_int_equal(b_runs, 100);
    r = vgpu_sched_pick(&s, 0);
    assert_non_null(r);
    assert_int_equal(tr(r)->owner, 0);
    vgpu_sched_complete(&s, r, US);
}

/* Aging: a class-3 request under a saturating class-0 entity still runs. */
static void test_aging(void **state)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity hi, lo;
    uint64_t now = 0, lo_enq;
    int picked_at = -1;
    (void)state;

    vgpu_sched_init(&s, 1 * MS, 100 * MS);
    vgpu_sched_entity_init(&hi, 0, 1000);
    vgpu_sched_entity_init(&lo, 3, 1);
    assert_int_equal(vgpu_sched_effective_class(&s, &lo, 0), 3);
    vgpu_sched_enqueue(&s, &hi, &new_req(0, 0, MS)->sr, now);
    lo_enq = now;
    vgpu_sched_enqueue(&s, &lo, &new_req(1, 0, MS)->sr, now);
    for (int i = 0; i < 1000; i++) {
        struct vgpu_sched_req *r = vgpu_sched_pick(&s, now);
        assert_non_null(r);
        now += MS;
        vgpu_sched_complete(&s, r, MS);
        if (tr(r)->owner == 1) {
            picked_at = i;
            break;
        }
        vgpu_sched_enqueue(&s, &hi, &new_req(0, i + 1, MS)->sr, now);
    }
    /* three aging periods lift class 3 to class 0; then round robin */
    assert_true(picked_at >= 299 && picked_at <= 302);
    assert_true(now - lo_enq >= 300 * MS);
    assert_int_equal(vgpu_sched_effective_class(&s, &lo, now), 3); /* queue empty */

    /* the same without aging: the low class starves */
    pool_used = 0;
    vgpu_sched_init(&s, 1 * MS, 0);
    vgpu_sched_entity_init(&hi, 0, 1);
    vgpu_sched_entity_init(&lo, 3, 1);
    vgpu_sched_enqueue(&s, &lo, &new_req(1, 0, MS)->sr, 0);
    for (int i = 0; i < 1000; i++) {
        vgpu_sched_enqueue(&s, &hi, &new_req(0, i, MS)->sr, now);
        struct vgpu_sched_req *r = vgpu_sched_pick(&s, now);
        assert_int_equal(tr(r)->owner, 0);
        now += MS;
        vgpu_sched_complete(&s, r, MS);
    }
}

static void test_fifo_one_at_a_time(void **state)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity a, b;
    struct vgpu_sched_req *r1, *r2;
    (void)state;

    vgpu_sched_init(&s, 1 * MS, 100 * MS);
    vgpu_sched_entity_init(&a, 0, 1);
    vgpu_sched_entity_init(&b, 0, 1);
    for (int i = 0; i < 5; i++) {
        vgpu_sched_enqueue(&s, &a, &new_req(0, i, 10 * US)->sr, 0);
    }
    for (int i = 0; i < 5; i++) {
        r1 = vgpu_sched_pick(&s, 0);
        assert_non_null(r1);
        assert_int_equal(tr(r1)->seq, i);
        assert_true(a.running);
        /* a second executor finds nothing: a is busy and has the only work */
        assert_null(vgpu_sched_pick(&s, 0));
        assert_false(vgpu_sched_only(&s, &a));
        vgpu_sched_complete(&s, r1, 10 * US);
    }
    assert_false(a.active);

    /* two executors, two entities: each takes a different one */
    for (int i = 0; i < 3; i++) {
        vgpu_sched_enqueue(&s, &a, &new_req(0, i, 10 * US)->sr, 0);
        vgpu_sched_enqueue(&s, &b, &new_req(1, i, 10 * US)->sr, 0);
    }
    for (int i = 0; i < 3; i++) {
        r1 = vgpu_sched_pick(&s, 0);
        r2 = vgpu_sched_pick(&s, 0);
        assert_non_null(r1);
        assert_non_null(r2);
        assert_int_not_equal(tr(r1)->owner, tr(r2)->owner);
        assert_int_equal(tr(r1)->seq, i);
        assert_int_equal(tr(r2)->seq, i);
        assert_null(vgpu_sched_pick(&s, 0));
        vgpu_sched_complete(&s, r2, 10 * US);
        vgpu_sched_complete(&s, r1, 10 * US);
    }
    assert_int_equal(s.queued, 0);
}

/*
 * A long request of A runs in parts; B's requests, arriving while a part
 * runs, are served at the next part boundary, and A's own later request
 * still waits behind its long one (FIFO within an entity).
 */
static void test_requeue_parts(void **state)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity a, b;
    struct vgpu_sched_req *r, *r2;
    uint64_t now = 0;
    (void)state;

    vgpu_sched_init(&s, 1 * MS, 100 * MS);
    vgpu_sched_entity_init(&a, 0, 1);
    vgpu_sched_entity_init(&b, 0, 1);
    vgpu_sched_enqueue(&s, &a, &new_req(0, 0, 5 * MS)->sr, now);   /* one part's estimate */
    vgpu_sched_enqueue(&s, &a, &new_req(0, 1, 10 * US)->sr, now);
    r = vgpu_sched_pick(&s, now);
    assert_int_equal(tr(r)->seq, 0);
    vgpu_sched_enqueue(&s, &b, &new_req(1, 0, 10 * US)->sr, now + 1 * MS);
    vgpu_sched_enqueue(&s, &b, &new_req(1, 1, 10 * US)->sr, now + 1 * MS);

    for (int part = 1; part < 4; part++) {
        now += 5 * MS;
        vgpu_sched_requeue(&s, r, 5 * MS, 5 * MS, now);
        assert_false(a.running);
        assert_int_equal(a.queued, 2);
        assert_ptr_equal(a.head, r);            /* back at the head of A's queue */
        if (part == 1) {
            /* B has credit, A has spent its: B's two small requests go first. */
            for (int i = 0; i < 2; i++) {
                r2 = vgpu_sched_pick(&s, now);
                assert_non_null(r2);
                assert_int_equal(tr(r2)->owner, 1);
                vgpu_sched_complete(&s, r2, 10 * US);
            }
        }
        r2 = vgpu_sched_pick(&s, now);
        assert_ptr_equal(r2, r);                 /* A's long request, not its later one */
    }
    vgpu_sched_complete(&s, r, 5 * MS);
    r = vgpu_sched_pick(&s, now);
    assert_int_equal(tr(r)->owner, 0);
    assert_int_equal(tr(r)->seq, 1);
    vgpu_sched_complete(&s, r, 10 * US);
    assert_int_equal(a.charged_ns, 20 * MS + 10 * US);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.running, 0);

    /* A removed entity's part is not queued again. */
    vgpu_sched_enqueue(&s, &a, &new_req(0, 2, 5 * MS)->sr, now);
    r = vgpu_sched_pick(&s, now);
    vgpu_sched_remove(&s, &a);
    vgpu_sched_requeue(&s, r, 5 * MS, 5 * MS, now);
    assert_int_equal(s.queued, 0);
    assert_null(vgpu_sched_pick(&s, now));
}

/* What an executor that bounds waits picks: only a head that has waited
 * min_wait for other entities, not behind its own entity's running request. */
static void test_pick_waited(void **state)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity a, b;
    struct vgpu_sched_req *ra, *r;
    (void)state;

    vgpu_sched_init(&s, 1 * MS, 0);
    vgpu_sched_entity_init(&a, 0, 1);
    vgpu_sched_entity_init(&b, 0, 1);
    assert_int_equal(vgpu_sched_next_waited_ns(&s, 0, 10 * MS), UINT64_MAX);
    vgpu_sched_enqueue(&s, &a, &new_req(0, 0, 1 * MS)->sr, 0);
    vgpu_sched_enqueue(&s, &a, &new_req(0, 1, 1 * MS)->sr, 0);
    ra = vgpu_sched_pick(&s, 0);
    assert_int_equal(tr(ra)->owner, 0);
    vgpu_sched_enqueue(&s, &b, &new_req(1, 0, 1 * MS)->sr, 0);

    assert_null(vgpu_sched_pick_waited(&s, 5 * MS, 10 * MS));
    assert_int_equal(vgpu_sched_next_waited_ns(&s, 5 * MS, 10 * MS), 5 * MS);
    r = vgpu_sched_pick_waited(&s, 10 * MS, 10 * MS);
    assert_non_null(r);
    assert_int_equal(tr(r)->owner, 1);
    vgpu_sched_complete(&s, r, 1 * MS);

    /* A's second request was queued at 0 but waited behind A's own first
     * request until 12 ms: it has waited for others only from then on. */
    vgpu_sched_complete(&s, ra, 12 * MS);
    assert_null(vgpu_sched_pick_waited(&s, 15 * MS, 10 * MS));
    assert_int_equal(vgpu_sched_next_waited_ns(&s, 15 * MS, 10 * MS), 7 * MS);
    r = vgpu_sched_pick_waited(&s, 22 * MS, 10 * MS);
    assert_non_null(r);
    assert_int_equal(tr(r)->seq, 1);
    vgpu_sched_complete(&s, r, 1 * MS);
    assert_int_equal(s.queued, 0);
}

/* A wait (a stream sync) goes to the executors that take waited requests at
 * once, and to the fair one only after wait_fair_ns. */
static void test_wait_only(void **state)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity a, b;
    struct vgpu_sched_req *ra, *rw, *r;
    (void)state;

    vgpu_sched_init(&s, 1 * MS, 0);
    s.wait_fair_ns = 10 * MS;
    vgpu_sched_entity_init(&a, 0, 1);
    vgpu_sched_entity_init(&b, 0, 1);
    vgpu_sched_enqueue(&s, &a, &new_req(0, 0, 1 * MS)->sr, 0);
    ra = vgpu_sched_pick(&s, 0);
    rw = &new_req(1, 0, 1000)->sr;
    rw->wait_only = true;
    vgpu_sched_enqueue(&s, &b, rw, 1 * MS);
    assert_null(vgpu_sched_pick(&s, 2 * MS));                  /* not the fair one's yet */
    assert_int_equal(vgpu_sched_next_waited_ns(&s, 2 * MS, 10 * MS), 0);
    r = vgpu_sched_pick_waited(&s, 2 * MS, 10 * MS);          /* a waiter's, at once */
    assert_ptr_equal(r, rw);
    vgpu_sched_complete(&s, r, 100 * MS);                     /* charged as it lasted */
    vgpu_sched_complete(&s, ra, 1 * MS);

    rw = &new_req(1, 1, 1000)->sr;
    rw->wait_only = true;
    vgpu_sched_enqueue(&s, &b, rw, 200 * MS);
    assert_null(vgpu_sched_pick(&s, 205 * MS));
    assert_ptr_equal(vgpu_sched_pick(&s, 210 * MS), rw);      /* after wait_fair_ns */
    vgpu_sched_complete(&s, rw, 1 * MS);
    assert_int_equal(s.queued, 0);
}

static void test_only_and_remove(void **state)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity a, b;
    struct vgpu_sched_req *r;
    (void)state;

    vgpu_sched_init(&s, 1 * MS, 100 * MS);
    vgpu_sched_entity_init(&a, 0, 1);
    vgpu_sched_entity_init(&b, 1, 1);
    vgpu_sched_enqueue(&s, &a, &new_req(0, 0, US)->sr, 0);
    assert_true(vgpu_sched_only(&s, &a));
    vgpu_sched_enqueue(&s, &b, &new_req(1, 0, US)->sr, 0);
    assert_false(vgpu_sched_only(&s, &a));
    vgpu_sched_enqueue(&s, &a, &new_req(0, 1, US)->sr, 0);

    /* a disconnects while its first request executes */
    r = vgpu_sched_pick(&s, 0);
    assert_int_equal(tr(r)->owner, 0);
    assert_int_equal(vgpu_sched_remove(&s, &a), 1);
    assert_int_equal(s.queued, 1);
    vgpu_sched_complete(&s, r, US); /* the executor finishes; nothing relinks a */
    assert_false(a.active);
    r = vgpu_sched_pick(&s, 0);
    assert_non_null(r);
    assert_int_equal(tr(r)->owner, 1);
    vgpu_sched_complete(&s, r, US);
    assert_null(vgpu_sched_pick(&s, 0));
    assert_int_equal(s.running, 0);
    /* a removed entity never comes back */
    vgpu_sched_enqueue(&s, &a, &new_req(0, 2, US)->sr, 0);
    assert_false(a.active);
    assert_int_equal(vgpu_sched_remove(&s, &a), 1);
    assert_int_equal(s.queued, 0);
}

/*
 * A configuration reload changes live entities (vgpu_sched_entity_set): the
 * next picks follow the new weight and the new class, with requests queued.
 */
static unsigned run_backlogged(struct vgpu_sched *s, struct vgpu_sched_entity *e, int picks,
                               uint64_t *now, int first_owner_of_all)
{
    unsigned n0 = 0;

    for (int n = 0; n < picks; n++) {
        struct vgpu_sched_req *r = vgpu_sched_pick(s, *now);
        int owner;

        assert_non_null(r);
        owner = tr(r)->owner;
        if (first_owner_of_all >= 0) {
            assert_int_equal(owner, first_owner_of_all);
        }
        n0 += owner == 0;
        *now += 100 * US;
        vgpu_sched_complete(s, r, 100 * US);
        memset(r, 0, sizeof(*r));   /* resubmit the slot: the backlog stays */
        r->cost_ns = 100 * US;
        vgpu_sched_enqueue(s, &e[owner], r, *now);
    }
    return n0;
}

static void test_entity_set(void **state)
{
    struct vgpu_sched s;
    struct vgpu_sched_entity e[2];
    uint64_t now = 0;
    unsigned n0;
    (void)state;

    vgpu_sched_init(&s, 1 * MS, 0);
    vgpu_sched_entity_init(&e[0], 1, 1);
    vgpu_sched_entity_init(&e[1], 1, 1);
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 4; i++) {
            vgpu_sched_enqueue(&s, &e[k], &new_req(k, i, 100 * US)->sr, now);
        }
    }
    n0 = run_backlogged(&s, e, 2000, &now, -1);
    assert_true(n0 > 950 && n0 < 1050);

    vgpu_sched_entity_set(&s, &e[0], 1, 3);
    n0 = run_backlogged(&s, e, 4000, &now, -1);
    print_message("after weight 1 -> 3: entity 0 got %u of 4000 picks (want 3000)\n", n0);
    assert_true(n0 > 2950 && n0 < 3050);

    /* entity 1 to class 0: strict, entity 0 waits (no aging here) */
    vgpu_sched_entity_set(&s, &e[1], 0, 1);
    run_backlogged(&s, e, 100, &now, 1);
    /* out of range values are clamped as by vgpu_sched_entity_init() */
    vgpu_sched_entity_set(&s, &e[1], 99, 0);
    assert_int_equal(e[1].prio, VGPU_PRIO_CLASSES - 1);
    assert_int_equal(e[1].weight, 1);
    assert_int_equal(s.queued, 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_strict_classes, setup),
        cmocka_unit_test_setup(test_preemption_at_pick, setup),
        cmocka_unit_test_setup(test_weighted_shares, setup),
        cmocka_unit_test_setup(test_large_debt, setup),
        cmocka_unit_test_setup(test_aging, setup),
        cmocka_unit_test_setup(test_fifo_one_at_a_time, setup),
        cmocka_unit_test_setup(test_requeue_parts, setup),
        cmocka_unit_test_setup(test_pick_waited, setup),
        cmocka_unit_test_setup(test_wait_only, setup),
        cmocka_unit_test_setup(test_only_and_remove, setup),
        cmocka_unit_test_setup(test_entity_set, setup),
    };
    return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
