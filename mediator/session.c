/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * A device session's shared-memory rings. The guest owns sq_tail and
 * cq_head, the mediator sq_head and cq_tail; the mediator keeps its own
 * copies of its indexes and never reads them back after attach, so a guest
 * scribbling on them can only confuse itself.
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

int vgpu_session_map(struct vgpu_session *s, int fd, uint64_t shm_size, const char **why)
{
    struct stat st;
    int seals;
    void *p;

    if (shm_size < VGPU_SHM_MIN_SIZE || shm_size > VGPU_SHM_MAX_SIZE) {
        *why = "shm_size outside 1 MiB .. 64 GiB";
        return -VGPU_PERR_SHM;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        *why = "the fd is not a regular file (memfd)";
        return -VGPU_PERR_SHM;
    }
    if ((uint64_t)st.st_size < shm_size) {
        *why = "the memfd is smaller than shm_size";
        return -VGPU_PERR_SHM;
    }
    /* Without F_SEAL_SHRINK the peer could truncate the file and make any
     * access to the mapping SIGBUS the whole mediator. */
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        *why = "the memfd is not sealed against shrinking (F_SEAL_SHRINK)";
        return -VGPU_PERR_SHM;
    }
    p = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *why = errno == ENOMEM ? "mmap: out of address space" : "mmap of the memfd failed";
        return -VGPU_PERR_SHM;
    }
    s->shm.base = p;
    s->shm.size = shm_size;
    s->shm.fd = fd;
    s->shm_dev = (uint64_t)st.st_dev;
    s->shm_ino = (uint64_t)st.st_ino;
    s->ctrl = vgpu_shm_ctrl(p);
    return 0;
}

static void ring_corrupt(struct vgpu_session *s, const char *what, uint32_t a, uint32_t b)
{
    uint64_t suppressed;

    s->st.ring_corrupt++;
    if (vgpu_ratelimit_ok(&s->corrupt_rl, &suppressed)) {
        log_warn("session %u (vm %u): ring indexes corrupt (%s: %u vs %u); kick ignored%s",
                 s->id, s->vm_id, what, a, b, suppressed ? " (more suppressed)" : "");
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
static void resume_unsafe(struct vgpu_session *s, uint32_t sq_head, uint32_t sq_tail)
{
    struct vgpu_shm_ctrl *c = s->ctrl;
    uint32_t flags = vgpu_load_acquire(&c->host_flags);

    s->interrupted_pending = false;
    if (!(flags & VGPU_HOST_EXEC_UNSAFE)) {
        return;
    }
    if (vgpu_load_acquire(&c->exec_index) == sq_head && sq_head != sq_tail) {
        s->interrupted_pending = true;
        s->interrupted_index = sq_head;
        log_warn("session %u (vm %u): request %u was running in place when the mediator stopped;"
                 " it completes as interrupted", s->id, s->vm_id, sq_head);
        return;
    }
    __atomic_fetch_and(&c->host_flags, ~VGPU_HOST_EXEC_UNSAFE, __ATOMIC_RELEASE);
}

void vgpu_session_resume(struct vgpu_session *s)
{
    struct vgpu_shm_ctrl *c = s->ctrl;
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
        log_info("session %u (vm %u): completion published without sq_head; sq_head %u -> %u",
                 s->id, s->vm_id, sq_head, cq_tail);
        sq_head = cq_tail;
    }
    if (vgpu_ring_count(sq_head, sq_tail, VGPU_SQ_ENTRIES) == VGPU_RING_CORRUPT ||
        vgpu_ring_count(cq_head, cq_tail, VGPU_CQ_ENTRIES) == VGPU_RING_CORRUPT ||
        cq_tail != sq_head) {
        /* Unusable history: start empty at the guest's tail. The guest sees
         * sq_head jump and knows those entries are gone. */
        log_warn("session %u (vm %u): inconsistent ring indexes at attach (sq %u..%u, cq %u..%u);"
                 " dropping pending requests", s->id, s->vm_id, sq_head, sq_tail, cq_head, cq_tail);
        sq_head = sq_tail;
        cq_tail = sq_tail;
        s->st.ring_corrupt++;
    }
    s->sq_head = s->sq_next = sq_head;
    s->cq_tail = cq_tail;
    s->taken = 0;
    resume_unsafe(s, sq_head, sq_tail);
    s->shm_busy_wait = memory_busy(s) != NULL;
    if (s->shm_busy_wait) {
        log_info("session %u (vm %u): waits for session %u's request on the same memory to end",
                 s->id, s->vm_id, memory_busy(s)->id);
    }
    vgpu_store_release(&c->cq_tail, cq_tail);
    vgpu_store_release(&c->sq_head, sq_head);
    __atomic_fetch_or(&c->host_flags, VGPU_HOST_ATTACHED, __ATOMIC_RELEASE);
    if (sq_tail != sq_head) {
        log_info("session %u (vm %u): resuming %u request(s) left in the ring",
                 s->id, s->vm_id, sq_tail - sq_head);
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

unsigned vgpu_session_take(struct vgpu_session *s)
{
    struct vgpu_mediator *m = s->m;
    struct vgpu_shm_ctrl *c = s->ctrl;
    const struct vgpu_sqe *sq = vgpu_shm_sq(s->shm.base);
    uint64_t now = vgpu_now_ns();
    uint32_t sq_tail, cq_head, filled, cq_used;
    unsigned n = 0;

    if (s->state != VGPU_CONN_ACTIVE || s->shm_busy_wait) {
        return 0;
    }
    sq_tail = vgpu_load_acquire(&c->sq_tail);
    filled = vgpu_ring_count(s->sq_head, sq_tail, VGPU_SQ_ENTRIES);
    if (filled == VGPU_RING_CORRUPT) {
        ring_corrupt(s, "sq_tail - sq_head", sq_tail, s->sq_head);
        return 0;
    }
    if (s->sq_next - s->sq_head > filled) {
        /* The guest moved sq_tail back over requests we already took. */
        ring_corrupt(s, "sq_tail behind taken requests", sq_tail, s->sq_next);
        return 0;
    }
    cq_head = vgpu_load_acquire(&c->cq_head);
    cq_used = vgpu_ring_count(cq_head, s->cq_tail, VGPU_CQ_ENTRIES);
    if (cq_used == VGPU_RING_CORRUPT) {
        ring_corrupt(s, "cq_tail - cq_head", s->cq_tail, cq_head);
        return 0;
    }

    /* Every taken request will need a CQ slot: never take more than fit. */
    while (s->sq_next != sq_tail && s->taken + cq_used < VGPU_CQ_ENTRIES &&
           s->taken < s->max_inflight) {
        uint32_t idx = s->sq_next;
        struct vgpu_req *r = &s->reqs[vgpu_ring_slot(idx, VGPU_SQ_ENTRIES)];

        /* Copy first: the guest may rewrite the slot while we look at it. */
        memcpy(&r->sqe, &sq[vgpu_ring_slot(idx, VGPU_SQ_ENTRIES)], sizeof(r->sqe));
        r->sess = s;
        r->index = idx;
        r->bytes_in = r->bytes_out = 0;
        r->op = vgpu_op_lookup(r->sqe.opcode);
        r->status = -1;
        r->sr.cost_ns = 0;
        r->part = 0;
        r->nparts = 1;
        r->result = 0;
        r->exec_ns = r->pick_exec_ns = 0;
        r->first_pick_ns = 0;
        if (s->interrupted_pending && idx == s->interrupted_index) {
            s->interrupted_pending = false;
            r->status = VGPU_S_INTERRUPTED;
        } else if (!r->op) {
            r->status = VGPU_S_UNKNOWN_OP;
        } else if (r->sqe.flags != 0) {
            r->status = VGPU_S_BAD_ARGS;
        } else {
            int v = r->op->validate(&r->sqe, s->shm.size);
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
            log_debug("session %u (vm %u): request %u (%s, tag %u) rejected: %s", s->id,
                      s->vm_id, idx, vgpu_op_name(r->sqe.opcode), r->sqe.tag,
                      vgpu_status_name(r->status));
        }
        s->sq_next++;
        s->taken++;
        s->st.requests++;
        vgpu_sched_enqueue(&m->sched, &s->ent, &r->sr, now);
        n++;
    }
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
    struct vgpu_cqe *cqe;

    /* A request run in parts was charged part by part up to its last pick. */
    vgpu_sched_complete(&m->sched, &req->sr, req->first_pick_ns ? req->pick_exec_ns : exec_ns);
    if (s->state != VGPU_CONN_ACTIVE) {
        /* The device is gone: nobody to tell, the result is dropped. A new
         * session on the same memory may start now. */
        busy_end(s);
        return;
    }
    if (req->index != s->sq_head) {
        /* Cannot happen: one request per session executes, in FIFO order. */
        log_error("session %u: completing request %u but sq_head is %u (bug)", s->id,
                  req->index, s->sq_head);
        status = VGPU_S_INTERNAL;
    }
    (void)now_ns;
    cqe = &vgpu_shm_cq(s->shm.base)[vgpu_ring_slot(s->cq_tail, VGPU_CQ_ENTRIES)];
    cqe->user_data = req->sqe.user_data;
    cqe->tag = req->sqe.tag;
    cqe->status = status;
    cqe->result = result;
    cqe->exec_us = sat_us(exec_ns);
    cqe->queue_us = sat_us(queue_ns);
    /* Order matters for restart: CQE, then cq_tail, then sq_head, then the
     * unsafe mark (a crash in between leaves a stale mark resume ignores). */
    /* relaxed store: vgpu_session_notify() reads it as a hint without the lock */
    __atomic_store_n(&s->cq_tail, s->cq_tail + 1, __ATOMIC_RELAXED);
    vgpu_store_release(&s->ctrl->cq_tail, s->cq_tail);
    s->sq_head++;
    vgpu_store_release(&s->ctrl->sq_head, s->sq_head);
    if ((vgpu_load_acquire(&s->ctrl->host_flags) & VGPU_HOST_EXEC_UNSAFE) &&
        vgpu_load_acquire(&s->ctrl->exec_index) == req->index) {
        __atomic_fetch_and(&s->ctrl->host_flags, ~VGPU_HOST_EXEC_UNSAFE, __ATOMIC_RELEASE);
    }
    s->taken--;
    vgpu_vm_stats_complete(&s->st, status, queue_ns, exec_ns, req->bytes_in, req->bytes_out);
}

void vgpu_session_begin(struct vgpu_session *s, struct vgpu_req *req)
{
    if (req->op->idempotent && req->op->idempotent(&req->sqe)) {
        return;
    }
    /* The index first: the flag must never name a stale index. Both land in
     * the shared memory before the backend writes any output. */
    vgpu_store_release(&s->ctrl->exec_index, req->index);
    __atomic_fetch_or(&s->ctrl->host_flags, VGPU_HOST_EXEC_UNSAFE, __ATOMIC_SEQ_CST);
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
    for (unsigned i = 0; i < s->n_rx_fds; i++) {
        close(s->rx_fds[i]);
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    pthread_mutex_destroy(&s->tx_lock);
    free(s);
}
