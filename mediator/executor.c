/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Executor threads, and the inline fast path of the I/O thread.
 *
 * Why inline: a NOP's round trip is dominated by wake-ups. Handing a request
 * from the I/O thread to an executor costs a futex wake and a context switch
 * on each side (tens of microseconds on a loaded 2-core host), more than the
 * whole raw socket ping-pong the target is measured against. So when the
 * scheduler holds nothing but this session's requests and the session has
 * nothing executing, requests whose estimated cost is below --inline-us run
 * right on the I/O thread. That cannot reorder anything the scheduler would
 * have decided differently (there is no competitor), and it is bounded in
 * count and time so other connections wait at most ~200 us.
 *
 * Why batched NOTIFY: an executor that completes several cheap requests of
 * one session back to back sends one NOTIFY for the batch, before it turns
 * to another session, to an expensive request, or to sleep.
 *
 * Why spin before sleeping: with one GPU request after another from a VM,
 * the executor idles only for the client's round trip; a condvar sleep adds
 * a futex wake and a context switch to every request. The spin is adaptive
 * and capped (struct vgpu_spin, --spin-us; off on <= 2 CPUs by default).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mediator.h"
#include "util.h"

#define INLINE_MAX_REQS    64
#define INLINE_MAX_NS      (200ull * 1000)
#define NOTIFY_BATCH_MAX   16
#define NOTIFY_BATCH_NS    (50ull * 1000)

/* Runs the request's next part (or all of it) with the lock dropped. */
static int32_t run_part(struct vgpu_mediator *m, struct vgpu_req *req, uint64_t *result,
                        uint64_t *exec_ns)
{
    struct vgpu_session *s = req->sess;
    const struct vgpu_sqe *sqe = &req->sqe;
    struct vgpu_sqe part;
    uint64_t t0;
    int st;

    *result = 0;
    *exec_ns = 0;
    if (req->status >= 0) {
        return req->status; /* failed validation: completes with its status */
    }
    t0 = vgpu_now_ns();
    if (req->part == 0) {
        vgpu_session_begin(s, req);
    }
    if (req->nparts > 1) {
        req->op->part(&req->sqe, req->part, req->nparts, &part);
        sqe = &part;
    }
    st = m->bops->execute(m->backend, s->bsess,
                          req->queue | (req->op && req->op->waits && !req->tried
                                        ? VGPU_EXEC_TRY : 0),
                          req->op, sqe, &s->shm, result);
    *exec_ns = vgpu_now_ns() - t0;
    if (st < 0 || st >= VGPU_S_STATUS_COUNT) {
        log_error("backend %s returned status %d for %s (bug)", m->bops->name, st,
                  vgpu_op_name(req->sqe.opcode));
        st = VGPU_S_INTERNAL;
    }
    if (st == VGPU_S_INTERNAL || st == VGPU_S_GPU_FAULT) {
        log_warn("session %u (vm %u): %s failed: %s", s->id, s->vm_id,
                 vgpu_op_name(req->sqe.opcode), vgpu_status_name(st));
    }
    return st;
}

enum part_next {
    PART_DONE,      /* the request completed (or was dropped with its session) */
    PART_AGAIN,     /* run its next part now: nobody else waits */
    PART_REQUEUED,  /* its next part went back to the scheduler */
};

/* Lock held: learns how long this opcode takes against its estimate. */
static void calibrate(struct vgpu_mediator *m, const struct vgpu_req *req, uint64_t exec_ns)
{
    uint32_t *ratio = &m->cost_ratio[req->sqe.opcode];
    uint64_t est = req->sr.cost_ns, sample;

    if (est < 100000) {
        return;     /* small requests measure overheads, not throughput */
    }
    sample = exec_ns * 1024 / est;
    sample = sample < 16 ? 16 : sample > 1024 * 1024 ? 1024 * 1024 : sample;
    *ratio = (uint32_t)((3 * (uint64_t)*ratio + sample) / 4);
}

/*
 * Lock held. Accounts one part that ran with status st, then: completes the
 * request (its last part, a failure, its session gone, or past --timeout-ms
 * counted from its first part), or says where its next part runs. Parts of a
 * request that is not idempotent stay marked unsafe until its completion.
 */
static enum part_next finish_part(struct vgpu_mediator *m, struct vgpu_req *req, int32_t st,
                                  uint64_t result, uint64_t exec_ns, uint64_t now)
{
    struct vgpu_session *s = req->sess;

    if (!req->first_pick_ns) {
        req->first_pick_ns = req->sr.pick_ns;
        req->queue_ns = req->sr.pick_ns - req->sr.enqueue_ns;
    }
    req->exec_ns += exec_ns;
    req->pick_exec_ns += exec_ns;
    if (st == VGPU_S_BUSY && req->op && req->op->waits && !req->tried) {
        /* Its short try gave up: from now on it is a wait that may block,
         * which the waiters take at once (vgpu_sched_req.wait_only). */
        req->tried = true;
        req->sr.wait_only = true;
        m->wait_queued = true;
        vgpu_sched_requeue(&m->sched, &req->sr, req->pick_exec_ns, req->sr.cost_ns, now);
        req->pick_exec_ns = 0;
        return PART_REQUEUED;
    }
    if (req->status < 0) {
        calibrate(m, req, exec_ns);
    }
    if (st == VGPU_S_OK) {
        if (req->op && req->op->combine) {
            req->op->combine(&req->result, result);
        } else {
            req->result += result;
        }
    } else {
        /* A failure's result is its detail (cuda-error: the CUresult). */
        req->result = result;
    }
    if (st == VGPU_S_OK && ++req->part < req->nparts && s->state == VGPU_CONN_ACTIVE) {
        if (m->cfg.timeout_ms && now - req->first_pick_ns > m->cfg.timeout_ms * 1000000ull) {
            st = VGPU_S_TIMEOUT;
            req->result = 0;
        } else if (m->stopping || m->sched.queued == 0) {
            return PART_AGAIN;
        } else {
            vgpu_sched_requeue(&m->sched, &req->sr, req->pick_exec_ns, req->sr.cost_ns, now);
            req->pick_exec_ns = 0;
            return PART_REQUEUED;
        }
    }
    vgpu_session_complete(s, req, st, req->result, req->exec_ns, now);
    return PART_DONE;
}

/* Lock held on entry and exit: runs the picked request's parts until it
 * completes or goes back to the scheduler. */
static enum part_next run_request(struct vgpu_mediator *m, struct vgpu_req *req)
{
    enum part_next next;

    do {
        uint64_t result, exec_ns;
        int32_t st;

        pthread_mutex_unlock(&m->lock);
        st = run_part(m, req, &result, &exec_ns);
        pthread_mutex_lock(&m->lock);
        next = finish_part(m, req, st, result, exec_ns, vgpu_now_ns());
    } while (next == PART_AGAIN);
    return next;
}

/* Executors beyond n_fair wait for requests that waited --max-wait-us: arm
 * their timers once every fair executor is busy and work is queued. */
static void wake_waiters(struct vgpu_mediator *m)
{
    if (m->n_fair < m->n_exec && m->sched.queued > 0 &&
        (m->sched.running >= m->n_fair || m->wait_queued)) {
        m->wait_queued = false;
        pthread_cond_broadcast(&m->waited_cond);
    }
}

/*
 * Lock held. A wait (struct vgpu_op.waits) taken while its session's previous
 * request ran was not eligible then, and the waiters that take waits slept
 * without a timer (vgpu_sched_next_waited_ns() skips running entities). Now
 * that the session is idle again the wait is eligible at once: wake them,
 * or it stays queued until some other request happens to wake an executor
 * (a guest blocked in a stream sync right after its copies never sends one).
 */
static void wake_for_wait(struct vgpu_mediator *m, const struct vgpu_session *s)
{
    if (s->ent.queued && !s->ent.running && s->ent.head->wait_only) {
        m->wait_queued = true;
        wake_waiters(m);
    }
}

static void wake_executors(struct vgpu_mediator *m)
{
    if (m->sched.queued > 1) {
        pthread_cond_broadcast(&m->work_cond);
    } else if (m->sched.queued == 1) {
        pthread_cond_signal(&m->work_cond);
    }
    wake_waiters(m);
}

/* Lock held: an executor past n_fair sleeps until a queued request will
 * have waited --max-wait-us (or until woken). */
static void waiter_sleep(struct vgpu_mediator *m, uint64_t now)
{
    uint64_t in = m->sched.queued ? vgpu_sched_next_waited_ns(&m->sched, now, m->max_wait_ns)
                                  : UINT64_MAX;
    struct timespec ts;
    uint64_t at;

    if (in == UINT64_MAX) {
        pthread_cond_wait(&m->waited_cond, &m->lock);
        return;
    }
    at = now + (in < 100000 ? 100000 : in);     /* never a busy loop */
    ts.tv_sec = (time_t)(at / 1000000000ull);
    ts.tv_nsec = (long)(at % 1000000000ull);
    pthread_cond_timedwait(&m->waited_cond, &m->lock, &ts);
}

unsigned vgpu_exec_dispatch(struct vgpu_mediator *m, struct vgpu_session *s)
{
    uint64_t t0 = vgpu_now_ns(), now = t0;
    unsigned n = 0;

    while (m->inline_max_ns > 0 && n < INLINE_MAX_REQS && now - t0 < INLINE_MAX_NS &&
           !m->stopping && s->state == VGPU_CONN_ACTIVE && vgpu_sched_only(&m->sched, &s->ent) &&
           s->ent.head->cost_ns <= m->inline_max_ns &&
           !s->ent.head->wait_only) {
        struct vgpu_sched_req *sr = vgpu_sched_pick(&m->sched, now);

        if (!sr) {
            break;
        }
        m->inline_runs++;
        if (run_request(m, (struct vgpu_req *)sr) == PART_DONE) {
            n++;
        }
        vgpu_session_take(s);
        now = vgpu_now_ns();    /* after take: a pick never precedes its enqueue */
    }
    wake_for_wait(m, s);
    wake_executors(m);
    return n;
}

/* Lock held on entry and exit; dropped to free s when this was its last
 * reference. */
static void put_session(struct vgpu_mediator *m, struct vgpu_session *s)
{
    if (vgpu_session_put(s)) {
        pthread_mutex_unlock(&m->lock);
        vgpu_session_destroy(s);
        pthread_mutex_lock(&m->lock);
    }
}

/* Lock held on entry and exit; dropped while sending. */
static void flush_notify(struct vgpu_mediator *m, struct vgpu_session **pending, unsigned *batch)
{
    struct vgpu_session *s = *pending;
    bool active;

    if (!s) {
        return;
    }
    *pending = NULL;
    *batch = 0;
    active = s->state == VGPU_CONN_ACTIVE;
    pthread_mutex_unlock(&m->lock);
    if (active) {
        vgpu_session_notify(s); /* our reference keeps s->fd open */
    }
    pthread_mutex_lock(&m->lock);
    put_session(m, s);
}

/*
 * Lock held on entry and exit; dropped while spinning. Returns true when work
 * may be there (or we stop) within the spin budget; the caller picks again.
 * Reads sched.queued and stopping without the lock only as hints.
 */
static bool idle_spin(struct vgpu_mediator *m, struct vgpu_spin *sp, uint64_t start)
{
    uint64_t end = start + sp->budget_ns, now;
    bool hit = false;

    pthread_mutex_unlock(&m->lock);
    do {
        vgpu_cpu_relax();
        if (__atomic_load_n(&m->sched.queued, __ATOMIC_RELAXED) ||
            __atomic_load_n(&m->stopping, __ATOMIC_RELAXED)) {
            hit = true;
            break;
        }
        now = vgpu_now_ns();
    } while (now < end);
    pthread_mutex_lock(&m->lock);
    return hit;
}

static void *executor_main(void *arg)
{
    struct vgpu_mediator *m = arg;
    struct vgpu_session *pending = NULL; /* completed, NOTIFY not yet sent */
    struct vgpu_spin spin;
    uint64_t batch_start = 0, idle_since = 0;
    unsigned batch = 0;
    bool spun = false, spin_hit = false, waiter;

    vgpu_spin_init(&spin, m->spin_cap_ns);

    pthread_mutex_lock(&m->lock);
    waiter = m->exec_next_index++ >= m->n_fair;
    while (!m->stopping) {
        uint64_t now = vgpu_now_ns();
        struct vgpu_sched_req *sr = waiter ? vgpu_sched_pick_waited(&m->sched, now, m->max_wait_ns)
                                           : vgpu_sched_pick(&m->sched, now);
        struct vgpu_req *req = (struct vgpu_req *)sr;
        struct vgpu_session *s;

        if (!sr) {
            if (pending) {
                flush_notify(m, &pending, &batch);
                continue;
            }
            if (waiter) {
                waiter_sleep(m, now);
                continue;
            }
            if (!idle_since) {
                idle_since = vgpu_now_ns();
            }
            /* One spin per idle period: work that is queued but not ours to
             * pick (its session is running elsewhere) must not keep us busy. */
            if (!spun && spin.budget_ns) {
                spun = true;
                spin_hit = idle_spin(m, &spin, idle_since);
                continue;
            }
            spin_hit = false;
            if (m->sched.queued && m->sched.wait_fair_ns) {
                /* Queued work we may not take yet (a wait, ours after
                 * wait_fair_ns if no waiter took it): look again then. */
                uint64_t at = vgpu_now_ns() + m->sched.wait_fair_ns;
                struct timespec ts = { .tv_sec = (time_t)(at / 1000000000ull),
                                       .tv_nsec = (long)(at % 1000000000ull) };

                pthread_cond_timedwait(&m->work_cond, &m->lock, &ts);
            } else {
                pthread_cond_wait(&m->work_cond, &m->lock);
            }
            continue;
        }
        if (idle_since) {
            vgpu_spin_update(&spin, now - idle_since, spin_hit);
            idle_since = 0;
        }
        spun = false;
        spin_hit = false;
        s = req->sess;
        vgpu_session_get(s);
        if (pending && (pending != s || sr->cost_ns > m->inline_max_ns || sr->wait_only ||
                        batch >= NOTIFY_BATCH_MAX || now - batch_start > NOTIFY_BATCH_NS)) {
            /* The picked request stays ours (its session is marked running). */
            flush_notify(m, &pending, &batch);
        }
        m->exec_runs++;
        if (run_request(m, req) == PART_REQUEUED) {
            /* No completion to tell; the part waits for any executor. */
            pthread_cond_signal(&m->work_cond);
            wake_waiters(m);
            put_session(m, s);
            continue;
        }
        now = vgpu_now_ns();
        if (vgpu_session_take(s) > 0 && m->sched.queued > 1) {
            pthread_cond_signal(&m->work_cond);
        }
        /* Also for the one request taken: if it is a wait, only the waiters
         * take it soon (this executor may be a fair one). */
        wake_waiters(m);
        wake_for_wait(m, s);
        if (pending == s) {
            vgpu_session_put(s); /* pending holds one already; never the last */
        } else {
            pending = s;
            batch_start = now;
        }
        batch++;
    }
    flush_notify(m, &pending, &batch);
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int vgpu_exec_start(struct vgpu_mediator *m, unsigned n)
{
    pthread_condattr_t ca;
    int r;

    /* Timed waits against vgpu_now_ns(), which is CLOCK_MONOTONIC. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->waited_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (m->n_fair == 0 || m->n_fair > n) {
        m->n_fair = n;
    }
    /* Where executors beyond the fair ones exist, they take the waits
     * (struct vgpu_op.waits) and the fair ones keep serving GPU work. */
    m->sched.wait_fair_ns = m->n_fair < n ? m->max_wait_ns : 0;

    m->exec_threads = calloc(n, sizeof(*m->exec_threads));
    if (!m->exec_threads) {
        return -ENOMEM;
    }
    m->n_exec = n;
    for (unsigned i = 0; i < n; i++) {
        r = pthread_create(&m->exec_threads[i], NULL, executor_main, m);
        if (r) {
            log_error("cannot start executor %u: %s", i, strerror(r));
            vgpu_exec_stop(m);
            return -r;
        }
        m->n_exec_started++;
    }
    return 0;
}

void vgpu_exec_stop(struct vgpu_mediator *m)
{
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    pthread_cond_broadcast(&m->work_cond);
    pthread_cond_broadcast(&m->waited_cond);
    pthread_mutex_unlock(&m->lock);
    for (unsigned i = 0; i < m->n_exec_started; i++) {
        pthread_join(m->exec_threads[i], NULL);
    }
    m->n_exec_started = 0;
    free(m->exec_threads);
    m->exec_threads = NULL;
    pthread_cond_destroy(&m->waited_cond);
}
