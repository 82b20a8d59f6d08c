/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
#include "sched.h"

#include <stddef.h>

#include "vgpu/protocol.h"

static void rr_unlink(struct vgpu_sched_entity *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = e;
}

static void rr_append(struct vgpu_sched *s, struct vgpu_sched_entity *e)
{
    e->prev = s->rr.prev;
    e->next = &s->rr;
    s->rr.prev->next = e;
    s->rr.prev = e;
}

void vgpu_sched_init(struct vgpu_sched *s, uint64_t quantum_ns, uint64_t aging_ns)
{
    s->quantum_ns = quantum_ns ? quantum_ns : VGPU_SCHED_DEFAULT_QUANTUM_NS;
    s->aging_ns = aging_ns;
    s->rr.prev = s->rr.next = &s->rr;
    s->queued = 0;
    s->running = 0;
}

void vgpu_sched_entity_init(struct vgpu_sched_entity *e, uint32_t prio, uint32_t weight)
{
    *e = (struct vgpu_sched_entity) {
        .prio = prio < VGPU_PRIO_CLASSES ? prio : VGPU_PRIO_CLASSES - 1,
        .weight = weight ? weight : 1,
    };
    e->prev = e->next = e;
}

static void activate(struct vgpu_sched *s, struct vgpu_sched_entity *e)
{
    if (!e->active && !e->removed) {
        e->active = true;
        rr_append(s, e);
    }
}

/*
 * An idle entity leaves the round; it keeps a debt but not a credit, so it
 * cannot bank service by staying idle, nor shed a charge by going idle.
 */
static void deactivate_if_idle(struct vgpu_sched_entity *e)
{
    if (e->active && e->queued == 0 && !e->running) {
        rr_unlink(e);
        e->active = false;
        if (e->deficit_ns > 0) {
            e->deficit_ns = 0;
        }
    }
}

void vgpu_sched_enqueue(struct vgpu_sched *s, struct vgpu_sched_entity *e,
                        struct vgpu_sched_req *r, uint64_t now_ns)
{
    r->next = NULL;
    r->ent = e;
    r->enqueue_ns = now_ns;
    if (e->tail) {
        e->tail->next = r;
    } else {
        e->head = r;
    }
    e->tail = r;
    e->queued++;
    s->queued++;
    activate(s, e);
}

uint32_t vgpu_sched_effective_class(const struct vgpu_sched *s,
                                    const struct vgpu_sched_entity *e, uint64_t now_ns)
{
    uint64_t periods;

    if (!e->head || s->aging_ns == 0 || now_ns <= e->head->enqueue_ns) {
        return e->prio;
    }
    periods = (now_ns - e->head->enqueue_ns) / s->aging_ns;
    return periods >= e->prio ? 0 : e->prio - (uint32_t)periods;
}

/* Since when the entity's head request waits for other entities only: not
 * while its own earlier request ran. */
static uint64_t ready_ns(const struct vgpu_sched_entity *e)
{
    return e->head->enqueue_ns > e->done_ns ? e->head->enqueue_ns : e->done_ns;
}

/* min_wait_ns > 0: only an entity whose head request has waited that long
 * for others. */
static bool eligible(const struct vgpu_sched *s, const struct vgpu_sched_entity *e,
                     uint64_t now_ns, uint64_t min_wait_ns)
{
    if (e->queued == 0 || e->running) {
        return false;
    }
    if (e->head->wait_only) {
        /* Waits go to the executors that take waited requests, at once. */
        return min_wait_ns || !s->wait_fair_ns || now_ns >= ready_ns(e) + s->wait_fair_ns;
    }
    return !min_wait_ns || now_ns >= ready_ns(e) + min_wait_ns;
}

/*
 * The entities that compete in this pick: every eligible entity of the best
 * base class, plus lower-class entities whose head request has aged up to
 * that class. Aging only lets a starved class join a higher one; it never
 * reorders entities of the same base class, whose shares stay by weight.
 */
static bool candidate(const struct vgpu_sched *s, const struct vgpu_sched_entity *e,
                      uint32_t best, uint64_t now_ns, uint64_t min_wait_ns)
{
    return eligible(s, e, now_ns, min_wait_ns) &&
           (e->prio == best || vgpu_sched_effective_class(s, e, now_ns) <= best);
}

static int64_t credit(const struct vgpu_sched *s, const struct vgpu_sched_entity *e)
{
    return (int64_t)(s->quantum_ns * e->weight);
}

static struct vgpu_sched_req *serve(struct vgpu_sched *s, struct vgpu_sched_entity *e,
                                    uint64_t now_ns)
{
    struct vgpu_sched_req *r = e->head;

    e->head = r->next;
    if (!e->head) {
        e->tail = NULL;
    }
    r->next = NULL;
    e->queued--;
    s->queued--;
    e->running = true;
    s->running++;
    e->picks++;
    e->deficit_ns -= (int64_t)r->cost_ns;
    r->pick_ns = now_ns;
    return r;
}

struct vgpu_sched_req *vgpu_sched_pick_waited(struct vgpu_sched *s, uint64_t now_ns,
                                              uint64_t min_wait_ns)
{
    struct vgpu_sched_entity *e, *next;
    uint32_t best = VGPU_PRIO_CLASSES, ncand = 0, visits;
    int64_t rounds = INT64_MAX;

    if (s->queued == 0) {
        return NULL;
    }
    for (e = s->rr.next; e != &s->rr; e = e->next) {
        if (eligible(s, e, now_ns, min_wait_ns)) {
            if (e->prio < best) {
                best = e->prio;
            }
        }
    }
    if (best == VGPU_PRIO_CLASSES) {
        return NULL; /* everything queued belongs to running entities */
    }
    for (e = s->rr.next; e != &s->rr; e = e->next) {
        if (candidate(s, e, best, now_ns, min_wait_ns)) {
            ncand++;
        }
    }

    /*
     * Deficit round robin: visit candidates from the front; serve the first
     * with credit left, otherwise credit it and move it to the back. Two
     * passes at most: if the first pass served nobody, the rounds that would
     * only add credit are added in one step.
     */
    for (int pass = 0; pass < 2; pass++) {
        visits = 0;
        for (e = s->rr.next; e != &s->rr && visits < ncand; e = next) {
            next = e->next;
            if (!candidate(s, e, best, now_ns, min_wait_ns)) {
                continue;
            }
            if (e->deficit_ns > 0) {
                return serve(s, e, now_ns);
            }
            e->deficit_ns += credit(s, e);
            visits++;
            rr_unlink(e);
            rr_append(s, e);
            if (next == &s->rr) {
                break;
            }
        }
        if (pass == 1) {
            break;
        }
        /* Now e.g. k_i more visits make candidate i positive; skip min(k)-1 rounds. */
        for (e = s->rr.next; e != &s->rr; e = e->next) {
            if (candidate(s, e, best, now_ns, min_wait_ns)) {
                int64_t need = e->deficit_ns > 0 ? 0 : (1 - e->deficit_ns + credit(s, e) - 1) / credit(s, e);
                if (need < rounds) {
                    rounds = need;
                }
            }
        }
        if (rounds > 1) {
            for (e = s->rr.next; e != &s->rr; e = e->next) {
                if (candidate(s, e, best, now_ns, min_wait_ns)) {
                    e->deficit_ns += (rounds - 1) * credit(s, e);
                }
            }
        }
    }
    /* Unreachable by the arithmetic above; never leave work stranded. */
    for (e = s->rr.next; e != &s->rr; e = e->next) {
        if (candidate(s, e, best, now_ns, min_wait_ns)) {
            return serve(s, e, now_ns);
        }
    }
    return NULL;
}

/* The estimate charged at pick time is corrected to the measured cost. */
static struct vgpu_sched_entity *charge(struct vgpu_sched *s, struct vgpu_sched_req *r,
                                        uint64_t actual_ns)
{
    struct vgpu_sched_entity *e = r->ent;

    e->running = false;
    s->running--;
    e->deficit_ns += (int64_t)r->cost_ns - (int64_t)actual_ns;
    e->charged_ns += actual_ns;
    e->done_ns = r->pick_ns + actual_ns;
    return e;
}

struct vgpu_sched_req *vgpu_sched_pick(struct vgpu_sched *s, uint64_t now_ns)
{
    return vgpu_sched_pick_waited(s, now_ns, 0);
}

uint64_t vgpu_sched_next_waited_ns(const struct vgpu_sched *s, uint64_t now_ns,
                                   uint64_t min_wait_ns)
{
    const struct vgpu_sched_entity *e;
    uint64_t best = UINT64_MAX;

    for (e = s->rr.next; e != &s->rr; e = e->next) {
        if (e->queued > 0 && !e->running) {
            uint64_t at = ready_ns(e) + (e->head->wait_only ? 0 : min_wait_ns);

            if (at <= now_ns) {
                return 0;
            }
            if (at - now_ns < best) {
                best = at - now_ns;
            }
        }
    }
    return best;
}

void vgpu_sched_complete(struct vgpu_sched *s, struct vgpu_sched_req *r, uint64_t actual_ns)
{
    deactivate_if_idle(charge(s, r, actual_ns));
}

void vgpu_sched_requeue(struct vgpu_sched *s, struct vgpu_sched_req *r, uint64_t actual_ns,
                        uint64_t cost_ns, uint64_t now_ns)
{
    struct vgpu_sched_entity *e = charge(s, r, actual_ns);

    if (e->removed) {
        return;
    }
    r->cost_ns = cost_ns;
    r->enqueue_ns = now_ns;     /* a part does not age while its request runs */
    r->next = e->head;
    e->head = r;
    if (!e->tail) {
        e->tail = r;
    }
    e->queued++;
    s->queued++;
    activate(s, e);
}

uint32_t vgpu_sched_remove(struct vgpu_sched *s, struct vgpu_sched_entity *e)
{
    uint32_t n = e->queued;

    s->queued -= e->queued;
    e->queued = 0;
    e->head = e->tail = NULL;
    if (e->active) {
        rr_unlink(e);
        e->active = false;
    }
    e->removed = true;
    return n;
}
