/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * A device session's shared-memory rings. The guest owns sq_tail and
 * cq_head, the mediator sq_head and cq_tail; the mediator keeps its own
 * copies of its indexes and never reads them back after attach, so a guest
 * scribbling on them can only confuse itself.
 *
 * ABI 1.2: a session has nq queue pairs, each with its own rings, indexes,
 * restart mark and corruption handling; one queue's state never affects
 * another's. Requests of all queues go to the session's one scheduler
 * entity (fairness is between VMs), taken round-robin across the queues;
 * every completion goes to the CQ of the queue its request came from.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vgpu/ring.h"
#include "mediator.h"
#include "util.h"

struct vgpu_session *vgpu_session_new(struct vgpu_mediator *m, int fd)
{
    struct vgpu_session *s = calloc(1, sizeof(*s));

    if (!s) {
        return NULL;
    }
    s->m = m;
    s->fd = fd;
    s->shm.fd = -1;
    s->doorbell_fd = -1;
    s->notify_fd = -1;
    s->refs = 1;
    s->state = VGPU_CONN_NEW;
    s->connect_ns = vgpu_now_ns();
    s->prev = s->next = NULL;
    s->corrupt_rl = (struct vgpu_ratelimit)VGPU_RATELIMIT_INIT(5000, 3);
    pthread_mutex_init(&s->tx_lock, NULL);
    for (unsigned i = 0; i < VGPU_RX_MAX_FDS; i++) {
        s->rx_fds[i] = -1;
    }
    vgpu_sched_entity_init(&s->ent, 0, 1);
    return s;
}

int vgpu_session_queues(struct vgpu_session *s, uint32_t nq)
{
    uint64_t end;

    if (nq < 1 || nq > VGPU_MAX_QUEUES) {
        return -EINVAL;
    }
    /* nq <= 64: the left side cannot overflow; then end cannot wrap. */
    if ((uint64_t)(nq - 1) * VGPU_SHM_QUEUE_SIZE + VGPU_SHM_DATA_OFFSET + VGPU_SHM_MIN_DATA >
        s->shm.size) {
        return -EINVAL;
    }
    end = VGPU_SHM_DATA_END(s->shm.size, nq);
    /* ~52 KiB per queue pair (its request slots), 3.3 MiB at 64: calloc maps
     * that untouched, and only slots of taken requests (at most
     * --max-inflight per VM) are ever written. */
    s->q = calloc(nq, sizeof(*s->q));
    if (!s->q) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nq; i++) {
        uint8_t *base = s->shm.base + (i ? VGPU_SHM_QUEUE_OFFSET(s->shm.size, i) : 0);

        s->q[i].ctrl = vgpu_shm_ctrl(base);
        s->q[i].sq = vgpu_shm_sq(base);
        s->q[i].cq = vgpu_shm_cq(base);
    }
    s->nq = nq;
    s->data_end = end;
    return 0;
}

int vgpu_session_map(struct vgpu_session *s, int fd, uint64_t shm_size, uint32_t nq,
                     const char **why)
{
    struct stat st;
    int seals, r;
    void *p;

    if (shm_size < VGPU_SHM_MIN_SIZE || shm_size > VGPU_SHM_MAX_SIZE) {
        *why = "shm_size outside 1 MiB .. 64 GiB";
        return -EINVAL;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *why = "the fd is not a regular file (memfd)";
        return -EBADF;
    }
    if ((uint64_t)st.st_size < shm_size) {
        *why = "the memfd is smaller than shm_size";
        return -EINVAL;
    }
    /* Without F_SEAL_SHRINK the peer could truncate the file and make any
     * access to the mapping SIGBUS the whole mediator. */
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        *why = "the memfd is not sealed against shrinking (F_SEAL_SHRINK)";
        return -EPERM;
    }
    p = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        r = -errno;
        *why = r == -ENOMEM ? "mmap: out of address space" : "mmap of the memfd failed";
        return r;
    }
    s->shm.base = p;
    s->shm.size = shm_size;
    s->shm_dev = (uint64_t)st.st_dev;
    s->shm_ino = (uint64_t)st.st_ino;
    r = vgpu_session_queues(s, nq);
    if (r < 0) {
        *why = r == -ENOMEM ? "out of memory for the queue pairs"
                            : "the queue pairs leave less than 64 KiB of data area";
        goto err_unmap;
    }
    s->shm.fd = fd;
    return 0;

err_unmap:
    munmap(p, shm_size);
    s->shm.base = NULL;
    s->shm.size = 0;
    return r;
}

static void ring_corrupt(struct vgpu_session *s, uint32_t qi, const char *what, uint32_t a,
                         uint32_t b)
{
    uint64_t suppressed;

    s->st.ring_corrupt++;
    if (vgpu_ratelimit_ok(&s->corrupt_rl, &suppressed)) {
        log_warn("session %u (vm %u): queue %u: ring indexes corrupt (%s: %u vs %u); kick "
                 "ignored%s", s->id, s->vm_id, qi, what, a, b,
                 suppressed ? " (more suppressed)" : "");
    }
}

/* A detached session with a request still executing on s's memory (the same
 * memfd: device and inode), or NULL. Lock held. */
static struct vgpu_session *memory_busy(const struct vgpu_session *s)
{
    for (struct vgpu_session *o = s->m->busy; o; o = o->busy_next) {
        if (o->shm_dev == s->shm_dev && o->shm_ino == s->shm_ino) {
            return o;
        }
    }
    return NULL;
}

/*
 * A request marked VGPU_HOST_EXEC_UNSAFE at sq_head had started and may have
 * written part of its outputs over its inputs when the previous mediator
 * stopped: it completes as interrupted, the mark staying until that
 * completion is published (a crash before then finds it again). A mark on
 * any other index is stale (its completion was published, torn or not).
 */
static void resume_unsafe(struct vgpu_session *s, uint32_t qi, uint32_t sq_head,
                          uint32_t sq_tail)
{
    struct vgpu_queue *q = &s->q[qi];
    struct vgpu_shm_ctrl *c = q->ctrl;
    uint32_t flags = vgpu_load_acquire(&c->host_flags);

    q->interrupted_pending = false;
    if (!(flags & VGPU_HOST_EXEC_UNSAFE)) {
        return;
    }
    if (vgpu_load_acquire(&c->exec_index) == sq_head && sq_head != sq_tail) {
        q->interrupted_pending = true;
        q->interrupted_index = sq_head;
        log_warn("session %u (vm %u): queue %u: request %u was running in place when the "
                 "mediator stopped; it completes as interrupted", s->id, s->vm_id, qi, sq_head);
        return;
    }
    __atomic_fetch_and(&c->host_flags, ~VGPU_HOST_EXEC_UNSAFE, __ATOMIC_RELEASE);
}

/* Resumes one queue pair's rings; each is judged on its own indexes. */
static void resume_queue(struct vgpu_session *s, uint32_t qi)
{
    struct vgpu_queue *q = &s->q[qi];
    struct vgpu_shm_ctrl *c = q->ctrl;
    uint32_t sq_tail = vgpu_load_acquire(&c->sq_tail);
    uint32_t sq_head = vgpu_load_acquire(&c->sq_head);
    uint32_t cq_tail = vgpu_load_acquire(&c->cq_tail);
    uint32_t cq_head = vgpu_load_acquire(&c->cq_head);
    uint32_t torn = cq_tail - sq_head;

    /*
     * A mediator that died between publishing cq_tail and sq_head left a
     * completed request behind sq_head: skip it, or it would complete twice.
     */
    if (torn != 0 && torn <= VGPU_CQ_ENTRIES) {
        log_info("session %u (vm %u): queue %u: completion published without sq_head; "
                 "sq_head %u -> %u", s->id, s->vm_id, qi, sq_head, cq_tail);
        sq_head = cq_tail;
    }
    if (vgpu_ring_count(sq_head, sq_tail, VGPU_SQ_ENTRIES) == VGPU_RING_CORRUPT ||
        vgpu_ring_count(cq_head, cq_tail, VGPU_CQ_ENTRIES) == VGPU_RING_CORRUPT ||
        cq_tail != sq_head) {
        /* Unusable history: start empty at the guest's tail. The guest sees
         * sq_head jump and knows those entries are gone. */
        log_warn("session %u (vm %u): queue %u: inconsistent ring indexes at attach (sq %u..%u, "
                 "cq %u..%u); dropping pending requests", s->id, s->vm_id, qi, sq_head, sq_tail,
                 cq_head, cq_tail);
        sq_head = sq_tail;
        cq_tail = sq_tail;
        s->st.ring_corrupt++;
    }
    q->sq_head = q->sq_next = sq_head;
    q->cq_tail = cq_tail;
    q->taken = 0;
    resume_unsafe(s, qi, sq_head, sq_tail);
    vgpu_store_release(&c->cq_tail, cq_tail);
    vgpu_store_release(&c->sq_head, sq_head);
    __atomic_fetch_or(&c->host_flags, VGPU_HOST_ATTACHED, __ATOMIC_RELEASE);
    if (sq_tail != sq_head) {
        log_info("session %u (vm %u): queue %u: resuming %u request(s) left in the ring",
                 s->id, s->vm_id, qi, sq_tail - sq_head);
    }
}

void vgpu_session_resume(struct vgpu_session *s)
{
    for (uint32_t qi = 0; qi < s->nq; qi++) {
        resume_queue(s, qi);
    }
    s->taken = 0;
    s->rr_next = 0;
    s->shm_busy_wait = memory_busy(s) != NULL;
    if (s->shm_busy_wait) {
        log_info("session %u (vm %u): waits for session %u's request on the same memory to end",
                 s->id, s->vm_id, memory_busy(s)->id);
    }
    vgpu_session_take(s);
}

/*
 * Cuts a validated request expected to run longer than --slice-us into parts
 * of about that length, by the cost model corrected with what this opcode
 * really took here (m->cost_ratio). The scheduler then sees one part at a
 * time, each with its share of the estimate.
 */
static void split(struct vgpu_mediator *m, struct vgpu_req *r)
{
    const struct vgpu_op *op = r->op;
    uint64_t expect_ns, want;

    if (!m->slice_ns || !op->parts || !(m->bops->split_ops & (1ull << op->opcode))) {
        return;
    }
    expect_ns = r->sr.cost_ns / 1024 * m->cost_ratio[op->opcode];
    if (expect_ns <= m->slice_ns) {
        return;
    }
    want = expect_ns / m->slice_ns + 1;
    r->nparts = op->parts(&r->sqe, want > VGPU_MAX_PARTS ? VGPU_MAX_PARTS : (uint32_t)want);
    if (r->nparts < 1) {
        r->nparts = 1;
    }
    r->sr.cost_ns /= r->nparts;
}

/* What one take knows about a queue: read once, used for all its requests. */
struct take_queue {
    bool     open;          /* requests may be taken from it this round */
    bool     win_ok;        /* the queue table's window lies inside the data area */
    uint32_t sq_tail;
    uint32_t cq_used;
    uint64_t win_lo, win_hi;
};

/*
 * The queue's data window, copied once from the queue table (the guest may
 * rewrite it at any time; the copy is what every request of this take is
 * checked against). len 0 is the whole data area; a window that does not lie
 * inside the data area makes every request of the queue bad-range.
 */
static void take_window(const struct vgpu_session *s, uint32_t qi, struct take_queue *t)
{
    struct vgpu_queue_desc d;

    memcpy(&d, s->shm.base + VGPU_SHM_QTABLE_OFFSET + (uint64_t)qi * sizeof(d), sizeof(d));
    if (d.win_len == 0) {
        t->win_ok = true;
        t->win_lo = VGPU_SHM_DATA_OFFSET;
        t->win_hi = s->data_end;
        return;
    }
    t->win_ok = d.win_off >= VGPU_SHM_DATA_OFFSET && d.win_off <= s->data_end &&
                d.win_len <= s->data_end - d.win_off;
    t->win_lo = d.win_off;
    t->win_hi = t->win_ok ? d.win_off + d.win_len : 0;
}

/* Every range a validated request names lies inside the queue's window. */
static int check_window(const struct vgpu_req *r, const struct take_queue *t)
{
    struct vgpu_range rg[VGPU_OP_MAX_RANGES];
    unsigned n;

    if (!t->win_ok) {
        return VGPU_S_BAD_RANGE;
    }
    if (!r->op->ranges) {
        return VGPU_S_OK;
    }
    n = r->op->ranges(&r->sqe, rg);
    if (n > VGPU_OP_MAX_RANGES) {
        return VGPU_S_INTERNAL;
    }
    for (unsigned i = 0; i < n; i++) {
        if (rg[i].off < t->win_lo || rg[i].off > t->win_hi ||
            rg[i].len > t->win_hi - rg[i].off) {
            return VGPU_S_BAD_RANGE;
        }
    }
    return VGPU_S_OK;
}

/* Reads queue qi's indexes for a take: false when there is nothing to take
 * from it or its indexes are corrupt (it is left alone until they are not). */
static bool take_open(struct vgpu_session *s, uint32_t qi, struct take_queue *t)
{
    struct vgpu_queue *q = &s->q[qi];
    uint32_t filled, cq_head;

    t->open = false;
    t->sq_tail = vgpu_load_acquire(&q->ctrl->sq_tail);
    filled = vgpu_ring_count(q->sq_head, t->sq_tail, VGPU_SQ_ENTRIES);
    if (filled == VGPU_RING_CORRUPT) {
        ring_corrupt(s, qi, "sq_tail - sq_head", t->sq_tail, q->sq_head);
        return false;
    }
    if (q->sq_next - q->sq_head > filled) {
        /* The guest moved sq_tail back over requests we already took. */
        ring_corrupt(s, qi, "sq_tail behind taken requests", t->sq_tail, q->sq_next);
        return false;
    }
    cq_head = vgpu_load_acquire(&q->ctrl->cq_head);
    t->cq_used = vgpu_ring_count(cq_head, q->cq_tail, VGPU_CQ_ENTRIES);
    if (t->cq_used == VGPU_RING_CORRUPT) {
        ring_corrupt(s, qi, "cq_tail - cq_head", q->cq_tail, cq_head);
        return false;
    }
    take_window(s, qi, t);
    t->open = true;
    return true;
}

/* Takes the request at queue qi's sq_next into the scheduler. */
static void take_one(struct vgpu_session *s, uint32_t qi, const struct take_queue *t,
                     uint64_t now)
{
    struct vgpu_mediator *m = s->m;
    struct vgpu_queue *q = &s->q[qi];
    uint32_t idx = q->sq_next;
    struct vgpu_req *r = &q->reqs[vgpu_ring_slot(idx, VGPU_SQ_ENTRIES)];

    /* Copy first: the guest may rewrite the slot while we look at it. */
    memcpy(&r->sqe, &q->sq[vgpu_ring_slot(idx, VGPU_SQ_ENTRIES)], sizeof(r->sqe));
    r->sess = s;
    r->queue = qi;
    r->index = idx;
    r->bytes_in = r->bytes_out = 0;
    r->op = vgpu_op_lookup(r->sqe.opcode);
    r->status = -1;
    r->sr.cost_ns = 0;
    r->sr.wait_only = false;
    r->tried = false;
    r->part = 0;
    r->nparts = 1;
    r->result = 0;
    r->exec_ns = r->pick_exec_ns = 0;
    r->first_pick_ns = 0;
    if (q->interrupted_pending && idx == q->interrupted_index) {
        q->interrupted_pending = false;
        r->status = VGPU_S_INTERRUPTED;
    } else if (!r->op) {
        r->status = VGPU_S_UNKNOWN_OP;
    } else if (r->sqe.flags != 0) {
        r->status = VGPU_S_BAD_ARGS;
    } else {
        /* The data area ends where the queue regions begin. */
        int v = r->op->validate(&r->sqe, s->data_end);

        if (v == VGPU_S_OK) {
            v = check_window(r, t);
        }
        if (v != VGPU_S_OK) {
            r->status = (v > 0 && v < VGPU_S_STATUS_COUNT) ? v : VGPU_S_INTERNAL;
        } else {
            r->sr.cost_ns = r->op->cost_ns ? r->op->cost_ns(&r->sqe) : 0;
            split(m, r);
            if (r->op->bytes) {
                r->op->bytes(&r->sqe, &r->bytes_in, &r->bytes_out);
            }
        }
    }
    if (r->status > 0) {
        log_debug("session %u (vm %u): queue %u: request %u (%s, tag %u) rejected: %s", s->id,
                  s->vm_id, qi, idx, vgpu_op_name(r->sqe.opcode), r->sqe.tag,
                  vgpu_status_name(r->status));
    }
    q->sq_next++;
    q->taken++;
    s->taken++;
    s->st.requests++;
    vgpu_sched_enqueue(&m->sched, &s->ent, &r->sr, now);
}

unsigned vgpu_session_take(struct vgpu_session *s)
{
    struct take_queue t[VGPU_MAX_QUEUES];
    uint64_t now = vgpu_now_ns();
    uint32_t open = 0, next = s->rr_next;
    unsigned n = 0;

    if (s->state != VGPU_CONN_ACTIVE || s->shm_busy_wait) {
        return 0;
    }
    for (uint32_t qi = 0; qi < s->nq; qi++) {
        open += take_open(s, qi, &t[qi]);
    }
    /*
     * One request per queue in turn, starting after the queue the last take
     * ended with, so a queue with a deep backlog does not fill the VM's
     * in-flight cap ahead of the others. Every taken request will need a
     * slot in its queue's CQ: never take more than fit.
     */
    while (open > 0 && s->taken < s->max_inflight) {
        for (uint32_t k = 0; k < s->nq && s->taken < s->max_inflight; k++) {
            uint32_t qi = (s->rr_next + k) % s->nq;
            struct vgpu_queue *q = &s->q[qi];

            if (!t[qi].open) {
                continue;
            }
            if (q->sq_next == t[qi].sq_tail || q->taken + t[qi].cq_used >= VGPU_CQ_ENTRIES) {
                t[qi].open = false;
                open--;
                continue;
            }
            take_one(s, qi, &t[qi], now);
            next = (qi + 1) % s->nq;
            n++;
        }
    }
    s->rr_next = next;
    return n;
}

/* Lock held: s (detached) has no request executing any more. */
static void busy_end(struct vgpu_session *s)
{
    struct vgpu_mediator *m = s->m;
    struct vgpu_session **pp;
    bool found = false;

    for (pp = &m->busy; *pp; pp = &(*pp)->busy_next) {
        if (*pp == s) {
            *pp = s->busy_next;
            found = true;
            break;
        }
    }
    if (!found) {
        return;
    }
    for (struct vgpu_session *o = m->conns; o; o = o->next) {
        if (o->shm_busy_wait && !memory_busy(o)) {
            o->shm_busy_wait = false;
            if (vgpu_session_take(o) > 0) {
                pthread_cond_broadcast(&m->work_cond);
            }
        }
    }
}

static uint32_t sat_us(uint64_t ns)
{
    uint64_t us = ns / 1000;
    return us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void vgpu_session_complete(struct vgpu_session *s, struct vgpu_req *req, int32_t status,
                           uint64_t result, uint64_t exec_ns, uint64_t now_ns)
{
    struct vgpu_mediator *m = s->m;
    uint64_t queue_ns = req->first_pick_ns ? req->queue_ns : req->sr.pick_ns - req->sr.enqueue_ns;
    struct vgpu_queue *q = &s->q[req->queue];
    struct vgpu_cqe *cqe;

    /* A request run in parts was charged part by part up to its last pick. */
    vgpu_sched_complete(&m->sched, &req->sr, req->first_pick_ns ? req->pick_exec_ns : exec_ns);
    if (s->state != VGPU_CONN_ACTIVE) {
        /* The device is gone: nobody to tell, the result is dropped. A new
         * session on the same memory may start now. */
        busy_end(s);
        return;
    }
    if (req->index != q->sq_head) {
        /* Cannot happen: one request per session executes, in FIFO order,
         * and each queue's requests are taken in its SQ order. */
        log_error("session %u: queue %u: completing request %u but sq_head is %u (bug)", s->id,
                  req->queue, req->index, q->sq_head);
        status = VGPU_S_INTERNAL;
    }
    (void)now_ns;
    cqe = &q->cq[vgpu_ring_slot(q->cq_tail, VGPU_CQ_ENTRIES)];
    cqe->user_data = req->sqe.user_data;
    cqe->tag = req->sqe.tag;
    cqe->status = status;
    cqe->result = result;
    cqe->exec_us = sat_us(exec_ns);
    cqe->queue_us = sat_us(queue_ns);
    /* Order matters for restart: CQE, then cq_tail, then sq_head, then the
     * unsafe mark (a crash in between leaves a stale mark resume ignores). */
    /* relaxed store: vgpu_session_notify() reads it as a hint without the lock */
    __atomic_store_n(&q->cq_tail, q->cq_tail + 1, __ATOMIC_RELAXED);
    vgpu_store_release(&q->ctrl->cq_tail, q->cq_tail);
    q->sq_head++;
    vgpu_store_release(&q->ctrl->sq_head, q->sq_head);
    if ((vgpu_load_acquire(&q->ctrl->host_flags) & VGPU_HOST_EXEC_UNSAFE) &&
        vgpu_load_acquire(&q->ctrl->exec_index) == req->index) {
        __atomic_fetch_and(&q->ctrl->host_flags, ~VGPU_HOST_EXEC_UNSAFE, __ATOMIC_RELEASE);
    }
    q->taken--;
    s->taken--;
    vgpu_vm_stats_complete(&s->st, status, queue_ns, exec_ns, req->bytes_in, req->bytes_out);
}

void vgpu_session_begin(struct vgpu_session *s, struct vgpu_req *req)
{
    if (req->op->idempotent && req->op->idempotent(&req->sqe)) {
        return;
    }
    /* The index first: the flag must never name a stale index. Both land in
     * the shared memory (of the request's queue) before the backend writes
     * any output. */
    vgpu_store_release(&s->q[req->queue].ctrl->exec_index, req->index);
    __atomic_fetch_or(&s->q[req->queue].ctrl->host_flags, VGPU_HOST_EXEC_UNSAFE,
                      __ATOMIC_SEQ_CST);
}

void vgpu_session_detach(struct vgpu_session *s)
{
    struct vgpu_mediator *m = s->m;

    if (s->state == VGPU_CONN_ACTIVE) {
        uint32_t dropped = vgpu_sched_remove(&m->sched, &s->ent);
        m->nsessions--;
        m->sessions_closed++;
        vgpu_vm_stats_merge(&m->closed_st, &s->st);
        m->closed_charged_ns += s->ent.charged_ns;
        {
            struct vgpu_closed_row *c =
                &m->recent_closed[m->recent_closed_next++ % VGPU_RECENT_CLOSED];

            c->session_id = s->id;
            c->vm_id = s->vm_id;
            c->prio = s->prio;
            c->weight = s->weight;
            c->gpu = s->gpu;
            snprintf(c->vm_name, sizeof(c->vm_name), "%s", s->vm_name);
            c->charged_ns = s->ent.charged_ns;
            c->st = s->st;
        }
        if (s->ent.running) {
            s->busy_next = m->busy;
            m->busy = s;
        }
        if (dropped || s->ent.running) {
            log_info("session %u (vm %u): %u queued request(s) dropped%s", s->id, s->vm_id,
                     dropped, s->ent.running ? ", one still executing (result discarded)" : "");
        }
    }
    s->state = VGPU_CONN_CLOSED;
}

void vgpu_session_get(struct vgpu_session *s)
{
    s->refs++;
}

bool vgpu_session_put(struct vgpu_session *s)
{
    return --s->refs == 0;
}

void vgpu_session_destroy(struct vgpu_session *s)
{
    struct vgpu_mediator *m;

    if (!s) {
        return;
    }
    m = s->m;
    if (s->bsess) {
        m->bops->session_close(m->backend, s->bsess);
        s->bsess = NULL;
    }
    if (s->shm.base) {
        munmap(s->shm.base, s->shm.size);
    }
    if (s->shm.fd >= 0) {
        close(s->shm.fd);
    }
    if (s->doorbell_fd >= 0) {
        close(s->doorbell_fd);
    }
    if (s->notify_fd >= 0) {
        close(s->notify_fd);
    }
    for (unsigned i = 0; i < s->n_rx_fds; i++) {
        close(s->rx_fds[i]);
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    pthread_mutex_destroy(&s->tx_lock);
    free(s->q);
    free(s);
}
