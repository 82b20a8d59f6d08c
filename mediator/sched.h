/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The request scheduler: pure bookkeeping, no threads, no clock of its own
 * (callers pass "now"), so tests/unit/test_sched.c drives it directly.
 *
 * - Priority classes 0 (highest) .. VGPU_PRIO_CLASSES-1, strict between
 *   classes, with aging: an entity whose head request has waited n whole
 *   aging periods competes n classes higher (never above 0), so a low class
 *   never starves. Aging only lets an entity join the best class present;
 *   entities of the same base class are never reordered by it, so their
 *   shares stay by weight whatever their class.
 * - Within the best class present: deficit round robin on measured cost.
 *   Each visit without credit adds quantum x weight to the entity's deficit;
 *   an entity with a positive deficit is served. The estimate is charged at
 *   pick time and corrected to the measured cost at completion.
 * - Per entity (one VM session): FIFO order, at most one request executing.
 *
 * Not thread-safe: the mediator calls it under its lock.
 */
#ifndef VGPU_MEDIATOR_SCHED_H
#define VGPU_MEDIATOR_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "vgpu/protocol.h"

struct vgpu_sched_entity;

struct vgpu_sched_req {
    struct vgpu_sched_req *next;       /* FIFO link */
    struct vgpu_sched_entity *ent;
    uint64_t cost_ns;                  /* estimate, set by the caller */
    /* Set by the caller: a wait for GPU work already admitted (a stream or
     * event sync). It takes no GPU time of its own but may take long, so an
     * executor that serves only waited requests takes it at once, and the
     * fair ones only once it has waited wait_fair_ns (see struct vgpu_sched). */
    bool     wait_only;
    uint64_t enqueue_ns;
    uint64_t pick_ns;
};

struct vgpu_sched_entity {
    uint32_t prio;                     /* base class */
    uint32_t weight;                   /* >= 1 */
    int64_t  deficit_ns;
    struct vgpu_sched_req *head, *tail;
    uint32_t queued;
    bool     running;                  /* a request is picked, not completed */
    bool     active;                   /* linked in the round-robin list */
    bool     removed;
    struct vgpu_sched_entity *prev, *next; /* round-robin list */
    uint64_t done_ns;                  /* when its last request (or part) ended */
    /* accounting */
    uint64_t charged_ns;               /* measured cost of completed requests */
    uint64_t picks;
};

struct vgpu_sched {
    uint64_t quantum_ns;
    uint64_t aging_ns;                 /* 0: no aging */
    struct vgpu_sched_entity rr;       /* list sentinel */
    uint32_t queued;                   /* requests queued, all entities */
    uint32_t running;                  /* requests picked, not completed */
    uint64_t wait_fair_ns;             /* a wait_only request is the fair picks'
                                        * only after this long (0: at once); the
                                        * caller sets it where other executors
                                        * take waits */
};

#define VGPU_SCHED_DEFAULT_QUANTUM_NS (1000ull * 1000)        /* 1 ms */
#define VGPU_SCHED_DEFAULT_AGING_NS   (100ull * 1000 * 1000)  /* 100 ms */

void vgpu_sched_init(struct vgpu_sched *s, uint64_t quantum_ns, uint64_t aging_ns);
/* prio is clamped to the last class, weight 0 becomes 1. */
void vgpu_sched_entity_init(struct vgpu_sched_entity *e, uint32_t prio, uint32_t weight);

/*
 * Changes a live entity's class and weight (a configuration reload), clamped
 * as in vgpu_sched_entity_init(). Nothing is derived from them between picks,
 * so the next pick uses the new values; a credit banked at the old weight is
 * cut to one quantum of the new one, so a lowered weight takes effect at once.
 */
static inline void vgpu_sched_entity_set(const struct vgpu_sched *s, struct vgpu_sched_entity *e,
                                         uint32_t prio, uint32_t weight)
{
    int64_t credit;

    e->prio = prio < VGPU_PRIO_CLASSES ? prio : VGPU_PRIO_CLASSES - 1;
    e->weight = weight ? weight : 1;
    credit = (int64_t)(s->quantum_ns * e->weight);
    if (e->deficit_ns > credit) {
        e->deficit_ns = credit;
    }
}

void vgpu_sched_enqueue(struct vgpu_sched *s, struct vgpu_sched_entity *e,
                        struct vgpu_sched_req *r, uint64_t now_ns);

/* The next request to execute (its entity becomes running), or NULL. */
struct vgpu_sched_req *vgpu_sched_pick(struct vgpu_sched *s, uint64_t now_ns);

/*
 * The same, among only the entities whose head request has waited at least
 * min_wait_ns: what an executor that exists to bound waits picks (see
 * "Bounded waits" in docs/architecture.md).
 */
struct vgpu_sched_req *vgpu_sched_pick_waited(struct vgpu_sched *s, uint64_t now_ns,
                                              uint64_t min_wait_ns);
/* Nanoseconds until some runnable head request will have waited min_wait_ns
 * (0: one has), UINT64_MAX when none is queued. */
uint64_t vgpu_sched_next_waited_ns(const struct vgpu_sched *s, uint64_t now_ns,
                                   uint64_t min_wait_ns);

/* The request picked earlier finished after actual_ns of execution. */
void vgpu_sched_complete(struct vgpu_sched *s, struct vgpu_sched_req *r, uint64_t actual_ns);

/*
 * The request picked earlier ran one part in actual_ns and has more to run:
 * it is charged like a completion and goes back to the head of its entity's
 * queue (FIFO order is kept), competing afresh with cost_ns as its estimate.
 * Between the parts of a long request every other entity gets its turn.
 */
void vgpu_sched_requeue(struct vgpu_sched *s, struct vgpu_sched_req *r, uint64_t actual_ns,
                        uint64_t cost_ns, uint64_t now_ns);

/*
 * Takes the entity out of scheduling: its queued requests are dropped (they
 * are not freed, the caller owns them); a running request may still be
 * completed afterwards. Returns the number of dropped requests.
 */
uint32_t vgpu_sched_remove(struct vgpu_sched *s, struct vgpu_sched_entity *e);

/* The class the entity's head request competes in now. */
uint32_t vgpu_sched_effective_class(const struct vgpu_sched *s,
                                    const struct vgpu_sched_entity *e, uint64_t now_ns);

/* true when every queued request belongs to e and e is not running. */
static inline bool vgpu_sched_only(const struct vgpu_sched *s, const struct vgpu_sched_entity *e)
{
    return !e->running && e->queued > 0 && s->queued == e->queued;
}

#endif /* VGPU_MEDIATOR_SCHED_H */
