/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The I/O thread: the listening socket, one epoll loop over it, the signal
 * fd and every connection; message framing and validation; HELLO.
 *
 * Every message is checked (proto.c) in a fixed order before anything acts on it:
 * complete header, size within [16, VGPU_MSG_MAX_SIZE], known type, exact
 * size for the type, allowed in this connection state, and only then (once
 * the body is in) file descriptors: the memfd on HELLO, plus the doorbell
 * eventfd when HELLO's features ask for it, none elsewhere.
 * Every reject path closes the descriptors received.
 *
 * epoll names a connection by its session pointer and a session's doorbell
 * eventfd by the same pointer with bit 0 set (sessions are malloc()ed, so
 * that bit is otherwise clear).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "vgpu/ring.h"
#include "mediator.h"
#include "notify.h"
#include "proto.h"
#include "util.h"

#ifndef VGPU_VERSION
#define VGPU_VERSION "unknown"
#endif

#define EPOLL_BATCH      64
#define MSGS_PER_WAKEUP  32   /* per connection, so one peer cannot hog the loop */
#define CONN_SLACK       16   /* connections allowed beyond max-sessions (admin, pending) */

static const char *perr_name(uint32_t code)
{
    static const char *const names[] = {
        "?", "VERSION", "MALFORMED", "TYPE", "FD", "SHM", "LIMIT", "IDENTITY",
    };
    return code < VGPU_ARRAY_SIZE(names) ? names[code] : "?";
}

/* ---------------------------------------------------------------- send */

int vgpu_session_send(struct vgpu_session *s, const void *msg, uint32_t len)
{
    const uint8_t *p = msg;
    uint32_t done = 0;
    int ret = 0;

    pthread_mutex_lock(&s->tx_lock);
    while (done < len) {
        ssize_t n = send(s->fd, p + done, len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0) {
            done += (uint32_t)n;
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN && done > 0) {
            /* Half a message is out: finish it or the stream is garbage. */
            struct pollfd pfd = { .fd = s->fd, .events = POLLOUT };
            if (poll(&pfd, 1, 1000) == 1) {
                continue;
            }
            ret = -ETIMEDOUT;
            break;
        }
        ret = -errno;
        break;
    }
    pthread_mutex_unlock(&s->tx_lock);
    return ret;
}

static void hdr_init(struct vgpu_msg_hdr *h, uint16_t type, uint32_t size, uint32_t seq)
{
    *h = (struct vgpu_msg_hdr) { .type = type, .size = size, .seq = seq };
}

void vgpu_session_notify(struct vgpu_session *s)
{
    struct vgpu_msg_notify n = { 0 };
    int r;

    if (s->notify_fd >= 0) {
        /* ivshmem: the guest's vector 0 eventfd; QEMU raises its MSI-X. A
         * full counter (EAGAIN) has an interrupt pending already. */
        uint64_t one = 1;

        pthread_mutex_lock(&s->tx_lock);
        (void)!write(s->notify_fd, &one, sizeof(one));
        pthread_mutex_unlock(&s->tx_lock);
        return;
    }
    hdr_init(&n.hdr, VGPU_MSG_NOTIFY, sizeof(n), 0);
    /* queue 0's: a hint, and the device reads every CQ anyway */
    n.cq_tail = s->q ? __atomic_load_n(&s->q[0].cq_tail, __ATOMIC_RELAXED) : 0;
    r = vgpu_session_send(s, &n, sizeof(n));
    /*
     * -EAGAIN: the device has not read what we sent before, so a NOTIFY is
     * already waiting for it; it reads the CQ up to cq_tail, not up to the
     * hint, so dropping this one loses nothing.
     */
    if (r < 0 && r != -EAGAIN) {
        log_debug("session %u: NOTIFY: %s", s->id, strerror(-r));
    }
}

static void send_error(struct vgpu_session *s, uint32_t code, uint32_t ref_seq, const char *text)
{
    struct vgpu_msg_error e = { 0 };

    hdr_init(&e.hdr, VGPU_MSG_ERROR, sizeof(e), 0);
    e.code = code;
    e.ref_seq = ref_seq;
    snprintf(e.text, sizeof(e.text), "%s", text);
    (void)vgpu_session_send(s, &e, sizeof(e));
}

/* ---------------------------------------------------------------- epoll tags */

#define DOORBELL_TAG ((uintptr_t)1)

static void *doorbell_tag(struct vgpu_session *s)
{
    return (void *)((uintptr_t)s | DOORBELL_TAG);
}

static struct vgpu_session *tagged_doorbell(void *p)
{
    return ((uintptr_t)p & DOORBELL_TAG) ? (void *)((uintptr_t)p & ~DOORBELL_TAG) : NULL;
}

/* ---------------------------------------------------------------- close */

static void close_rx_fds(struct vgpu_session *s)
{
    for (unsigned i = 0; i < s->n_rx_fds; i++) {
        close(s->rx_fds[i]);
        s->rx_fds[i] = -1;
    }
    s->n_rx_fds = 0;
}

/* I/O thread. The memory goes when the last executing request lets go. */
static void conn_close(struct vgpu_mediator *m, struct vgpu_session *s, const char *why)
{
    if (s->state == VGPU_CONN_CLOSED) {
        return;
    }
    epoll_ctl(m->epoll_fd, EPOLL_CTL_DEL, s->fd, NULL);
    if (s->doorbell_fd >= 0) {
        epoll_ctl(m->epoll_fd, EPOLL_CTL_DEL, s->doorbell_fd, NULL);
        close(s->doorbell_fd);
        s->doorbell_fd = -1;
    }
    /* The peer sees EOF now even if an executor still holds the session. */
    shutdown(s->fd, SHUT_RDWR);
    close_rx_fds(s);

    if (s->ivshmem) {
        vgpu_ivshmem_closed(s);
    }
    pthread_mutex_lock(&m->lock);
    if (s->state == VGPU_CONN_ACTIVE) {
        log_info("session %u (vm %u '%s') closed: %s; %llu requests, %llu completed", s->id,
                 s->vm_id, s->vm_name, why, (unsigned long long)s->st.requests,
                 (unsigned long long)s->st.completed);
    } else {
        log_debug("connection %u closed: %s", s->id, why);
    }
    vgpu_session_detach(s);
    if (s->prev) {
        s->prev->next = s->next;
    } else {
        m->conns = s->next;
    }
    if (s->next) {
        s->next->prev = s->prev;
    }
    s->prev = s->next = NULL;
    m->nconns--;
    if (s->read_only) {
        m->n_ro_conns--;
    }
    pthread_mutex_unlock(&m->lock);

    /* Events of this epoll batch may still name s: drop our reference later. */
    s->close_next = m->closing;
    m->closing = s;
}

void vgpu_server_conn_close(struct vgpu_mediator *m, struct vgpu_session *s, const char *why)
{
    conn_close(m, s, why);
}

static void flush_closing(struct vgpu_mediator *m)
{
    while (m->closing) {
        struct vgpu_session *s = m->closing;
        bool last;

        m->closing = s->close_next;
        pthread_mutex_lock(&m->lock);
        last = vgpu_session_put(s);
        pthread_mutex_unlock(&m->lock);
        if (last) {
            vgpu_session_destroy(s);
        }
    }
}

__attribute__((format(printf, 5, 6)))
static void conn_fail(struct vgpu_mediator *m, struct vgpu_session *s, uint32_t code,
                      uint32_t ref_seq, const char *fmt, ...)
{
    char text[120];
    uint64_t suppressed;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&m->lock);
    m->conns_rejected++;
    pthread_mutex_unlock(&m->lock);
    /* Anyone who can connect can trigger this line: rate-limit it. */
    if (vgpu_ratelimit_ok(&m->conn_rl, &suppressed)) {
        log_warn("connection %u%s: ERROR %s: %s; dropping it%s", s->id,
                 s->state == VGPU_CONN_ACTIVE ? " (device session)" : "", perr_name(code), text,
                 suppressed ? " (similar messages suppressed)" : "");
    }
    send_error(s, code, ref_seq, text);
    conn_close(m, s, text);
}

/* ---------------------------------------------------------------- stats */

static int row_cmp(const void *a, const void *b)
{
    const struct vgpu_stats_row *x = a, *y = b;
    return x->session_id < y->session_id ? -1 : x->session_id > y->session_id;
}

char *vgpu_mediator_stats_text(struct vgpu_mediator *m, size_t *len)
{
    const size_t cap = VGPU_MSG_MAX_SIZE - sizeof(struct vgpu_msg_hdr);
    struct vgpu_stats_row *rows;
    char head[1024], health[160] = "ok";
    char *buf = malloc(cap + 1);
    unsigned n = 0;
    uint64_t up;

    if (!buf) {
        return NULL;
    }
    pthread_mutex_lock(&m->lock);
    rows = calloc(m->nsessions + VGPU_RECENT_CLOSED + 1, sizeof(*rows));
    if (!rows) {
        pthread_mutex_unlock(&m->lock);
        free(buf);
        return NULL;
    }
    for (struct vgpu_session *s = m->conns; s; s = s->next) {
        if (s->state != VGPU_CONN_ACTIVE || n >= m->nsessions) {
            continue;
        }
        rows[n++] = (struct vgpu_stats_row) {
            .session_id = s->id, .vm_id = s->vm_id, .vm_name = s->vm_name,
            .prio = s->prio, .weight = s->weight, .inflight = s->taken,
            .charged_ns = s->ent.charged_ns, .st = &s->st,
        };
    }
    if (m->bops && m->bops->health && m->backend) {
        m->bops->health(m->backend, health, sizeof(health));
        health[sizeof(health) - 1] = '\0';
    }
    up = vgpu_now_ns() - m->start_ns;
    snprintf(head, sizeof(head),
             "vgpu-mediator %s  pid %d  up %.1fs  socket %s\n"
             "backend: %s  gpu: %s  health: %s\n"
             "sessions: %u live (max %u), %llu opened, %llu closed; connections %u, %llu rejected\n"
             "scheduler: %u queued, %u running; executors %u; runs inline %llu, on executors %llu\n",
             VGPU_VERSION, (int)getpid(), (double)up / 1e9, m->cfg.socket_path,
             m->bops ? m->bops->name : "none", m->gpu.name[0] ? m->gpu.name : "-", health,
             m->nsessions, m->cfg.max_sessions, (unsigned long long)m->sessions_opened,
             (unsigned long long)m->sessions_closed, m->nconns,
             (unsigned long long)m->conns_rejected, m->sched.queued, m->sched.running,
             m->n_exec, (unsigned long long)m->inline_runs, (unsigned long long)m->exec_runs);
    qsort(rows, n, sizeof(*rows), row_cmp);
    {
        unsigned total = m->recent_closed_next;
        unsigned keep = total < VGPU_RECENT_CLOSED ? total : VGPU_RECENT_CLOSED;

        for (unsigned i = total - keep; i < total; i++) { /* oldest first */
            const struct vgpu_closed_row *c = &m->recent_closed[i % VGPU_RECENT_CLOSED];

            rows[n++] = (struct vgpu_stats_row) {
                .session_id = c->session_id, .vm_id = c->vm_id, .vm_name = c->vm_name,
                .prio = c->prio, .weight = c->weight, .charged_ns = c->charged_ns,
                .st = &c->st, .closed = 1,
            };
        }
    }
    if (m->sessions_closed) {
        rows[n++] = (struct vgpu_stats_row) {
            .vm_name = "(closed)", .charged_ns = m->closed_charged_ns, .st = &m->closed_st,
        };
    }
    *len = vgpu_stats_format(buf, cap + 1, head, rows, n);
    pthread_mutex_unlock(&m->lock);
    free(rows);
    return buf;
}

/*
 * Whether a reply of len bytes can go out whole without waiting. A reply
 * larger than one socket buffer chunk (~36 KiB: many sessions) can otherwise
 * be sent in part to a peer that does not read, and vgpu_session_send() then
 * waits up to a second for the rest: on this thread, with every device's
 * doorbells behind it. An empty queue always takes a reply of at most
 * VGPU_MSG_MAX_SIZE; twice the length covers the kernel's per-buffer overhead.
 */
static bool reply_fits(struct vgpu_session *s, size_t len)
{
    int queued = 0, sndbuf = 0;
    socklen_t sl = sizeof(sndbuf);

    if (ioctl(s->fd, SIOCOUTQ, &queued) < 0 || queued <= 0) {
        return true;
    }
    if (getsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) < 0) {
        return false;
    }
    return (uint64_t)queued + 2 * (uint64_t)len <= (uint64_t)sndbuf;
}

static void handle_stats_req(struct vgpu_mediator *m, struct vgpu_session *s, uint32_t seq)
{
    struct vgpu_msg_hdr *h;
    size_t len = 0;
    char *text = vgpu_mediator_stats_text(m, &len);
    uint8_t *msg;

    s->connect_ns = vgpu_now_ns(); /* the idle limit counts from the last request */

    if (!text) {
        conn_fail(m, s, VGPU_PERR_LIMIT, seq, "out of memory building the statistics");
        return;
    }
    msg = malloc(sizeof(*h) + len);
    if (!msg) {
        free(text);
        conn_fail(m, s, VGPU_PERR_LIMIT, seq, "out of memory building the statistics");
        return;
    }
    if (!reply_fits(s, sizeof(*h) + len)) {
        free(msg);
        free(text);
        conn_fail(m, s, VGPU_PERR_LIMIT, seq, "STATS_REQ while earlier replies are unread");
        return;
    }
    h = (struct vgpu_msg_hdr *)msg;
    hdr_init(h, VGPU_MSG_STATS_REPLY, (uint32_t)(sizeof(*h) + len), seq);
    memcpy(msg + sizeof(*h), text, len);
    if (s->state == VGPU_CONN_NEW) {
        s->state = VGPU_CONN_ADMIN;
    }
    if (vgpu_session_send(s, msg, (uint32_t)(sizeof(*h) + len)) < 0) {
        conn_close(m, s, "cannot send STATS_REPLY");
    }
    free(msg);
    free(text);
}

/* A VM record's sort key and source, collected under the lock. */
struct query_row {
    uint32_t id;
    const struct vgpu_session *s;        /* live, or NULL: */
    const struct vgpu_closed_row *c;     /* recently closed */
};

static int query_row_cmp(const void *a, const void *b)
{
    const struct query_row *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void fill_vm_record(struct vgpu_stats_vm *v, const struct vgpu_vm_stats *st)
{
    v->requests = st->requests;
    v->completed = st->completed;
    v->ok = st->completions[VGPU_S_OK];
    v->errors = st->completed - st->completions[VGPU_S_OK];
    v->bytes_in = st->bytes_in;
    v->bytes_out = st->bytes_out;
    v->queue_p50_ns = vgpu_hist_quantile(&st->queue_ns, 0.50);
    v->queue_p99_ns = vgpu_hist_quantile(&st->queue_ns, 0.99);
    v->exec_p50_ns = vgpu_hist_quantile(&st->exec_ns, 0.50);
    v->exec_p99_ns = vgpu_hist_quantile(&st->exec_ns, 0.99);
    v->exec_time_ns = st->exec_ns_total;
    v->kicks = st->kicks;
    v->notifies = st->notifies;
    v->ring_corrupt = st->ring_corrupt;
    for (int i = 0; i < VGPU_S_STATUS_COUNT; i++) {
        if (i < VGPU_STATS_STATUS_SLOTS) {
            v->by_status[i] = st->completions[i];
        } else {
            v->by_status_hi[i - VGPU_STATS_STATUS_SLOTS] = st->completions[i];
        }
    }
}

_Static_assert(VGPU_S_STATUS_COUNT <= 2 * VGPU_STATS_STATUS_SLOTS, "by_status too small");

/*
 * Builds one STATS_DATA page (malloc'ed, *len bytes): the mediator record and
 * the VM records (live and recently closed sessions) with session id >= start,
 * in id order, at most max (0: as many as fit). Lock not held. NULL: no memory.
 */
static uint8_t *stats_page(struct vgpu_mediator *m, uint32_t seq, uint32_t start, uint32_t max,
                           uint32_t *len)
{
    const size_t fit = (VGPU_MSG_MAX_SIZE - sizeof(struct vgpu_msg_stats_data) -
                        sizeof(struct vgpu_stats_mediator)) / sizeof(struct vgpu_stats_vm);
    struct vgpu_msg_stats_data *d;
    struct vgpu_stats_mediator *md;
    struct vgpu_stats_vm *vms;
    struct vgpu_gpu_info gi = m->gpu;
    struct query_row *rows;
    struct timespec ts;
    unsigned n = 0, count, total_closed, keep;
    uint8_t *msg;
    char health[sizeof(md->health)] = "ok";

    if (max == 0 || max > fit) {
        max = (uint32_t)fit;
    }
    msg = calloc(1, sizeof(*d) + sizeof(*md) + (size_t)max * sizeof(*vms));
    if (!msg) {
        return NULL;
    }
    d = (struct vgpu_msg_stats_data *)msg;
    md = (struct vgpu_stats_mediator *)(d + 1);
    vms = (struct vgpu_stats_vm *)(md + 1);
    /* Outside the lock: the CUDA backend's answer may need its worker, so
     * only the first page asks; later ones carry what the mediator started
     * with (readers take the first page's mediator record). */
    if (m->bops && m->backend && start == 0) {
        m->bops->gpu_info(m->backend, &gi);
        gi.name[sizeof(gi.name) - 1] = '\0';
    }

    pthread_mutex_lock(&m->lock);
    rows = calloc(m->nsessions + VGPU_RECENT_CLOSED + 1, sizeof(*rows));
    if (!rows) {
        pthread_mutex_unlock(&m->lock);
        free(msg);
        return NULL;
    }
    for (struct vgpu_session *s = m->conns; s; s = s->next) {
        if (s->state == VGPU_CONN_ACTIVE && n < m->nsessions && s->id >= start) {
            rows[n++] = (struct query_row) { .id = s->id, .s = s };
        }
    }
    total_closed = m->recent_closed_next;
    keep = total_closed < VGPU_RECENT_CLOSED ? total_closed : VGPU_RECENT_CLOSED;
    for (unsigned i = total_closed - keep; i < total_closed; i++) {
        const struct vgpu_closed_row *c = &m->recent_closed[i % VGPU_RECENT_CLOSED];
        if (c->session_id >= start) {
            rows[n++] = (struct query_row) { .id = c->session_id, .c = c };
        }
    }
    qsort(rows, n, sizeof(*rows), query_row_cmp);
    count = n < max ? n : max;

    if (m->bops && m->bops->health && m->backend) {
        m->bops->health(m->backend, health, sizeof(health));
        health[sizeof(health) - 1] = '\0';
    }
    snprintf(md->version, sizeof(md->version), "%s", VGPU_VERSION);
    snprintf(md->backend, sizeof(md->backend), "%s", m->bops ? m->bops->name : "none");
    snprintf(md->gpu_name, sizeof(md->gpu_name), "%s", gi.name);
    memcpy(md->health, health, sizeof(md->health));
    md->pid = (uint32_t)getpid();
    md->backend_kind = m->bops ? m->bops->kind : 0;
    md->gpu_index = (uint32_t)m->cfg.gpu_index;
    md->gpu_sms = gi.sm_count;
    md->gpu_cc = gi.cc_major << 8 | gi.cc_minor;
    md->sessions = m->nsessions;
    md->max_sessions = m->cfg.max_sessions;
    md->connections = m->nconns;
    md->queued = m->sched.queued;
    md->running = m->sched.running;
    md->executors = m->n_exec;
    md->max_inflight = m->cfg.max_inflight;
    md->uptime_ns = vgpu_now_ns() - m->start_ns;
    md->gpu_mem_total = gi.total_mem;
    md->gpu_mem_free = gi.free_mem;
    md->sessions_opened = m->sessions_opened;
    md->sessions_closed = m->sessions_closed;
    md->conns_rejected = m->conns_rejected;
    md->inline_runs = m->inline_runs;
    md->exec_runs = m->exec_runs;
    md->closed_requests = m->closed_st.requests;
    md->closed_ok = m->closed_st.completions[VGPU_S_OK];
    md->closed_errors = m->closed_st.completed - m->closed_st.completions[VGPU_S_OK];
    md->closed_bytes_in = m->closed_st.bytes_in;
    md->closed_bytes_out = m->closed_st.bytes_out;
    md->closed_gpu_time_ns = m->closed_charged_ns;
    md->gpu_time_ns = m->closed_charged_ns;
    for (struct vgpu_session *s = m->conns; s; s = s->next) {
        if (s->state == VGPU_CONN_ACTIVE) {
            md->gpu_time_ns += s->ent.charged_ns;
        }
    }

    for (unsigned i = 0; i < count; i++) {
        struct vgpu_stats_vm *v = &vms[i];

        v->session_id = rows[i].id;
        v->gpu = (uint32_t)(rows[i].s ? rows[i].s->gpu : rows[i].c->gpu);
        v->mem_quota = m->cfg.mem_quota_mib << 20;
        if (rows[i].s) {
            const struct vgpu_session *s = rows[i].s;

            v->vm_id = s->vm_id;
            memcpy(v->vm_name, s->vm_name, sizeof(v->vm_name));
            v->state = VGPU_STATS_VM_ACTIVE;
            v->priority = s->prio;
            v->weight = s->weight;
            v->inflight = s->taken;
            v->max_inflight = s->max_inflight;
            if (m->bops->session_pid && s->bsess) {
                v->worker_pid = (uint32_t)m->bops->session_pid(m->backend, s->bsess);
            }
            v->connected_ns = vgpu_now_ns() - s->connect_ns;
            v->gpu_time_ns = s->ent.charged_ns;
            fill_vm_record(v, &s->st);
        } else {
            const struct vgpu_closed_row *c = rows[i].c;

            v->vm_id = c->vm_id;
            memcpy(v->vm_name, c->vm_name, sizeof(v->vm_name));
            v->state = VGPU_STATS_VM_CLOSED;
            v->priority = c->prio;
            v->weight = c->weight;
            v->gpu_time_ns = c->charged_ns;
            fill_vm_record(v, &c->st);
        }
        v->vm_name[sizeof(v->vm_name) - 1] = '\0';
    }
    hdr_init(&d->hdr, VGPU_MSG_STATS_DATA,
             (uint32_t)(sizeof(*d) + sizeof(*md) + count * sizeof(*vms)), seq);
    d->count = count;
    d->total = n;
    if (n > count) {
        d->flags = VGPU_STATS_MORE;
        d->next = rows[count - 1].id + 1;
    }
    pthread_mutex_unlock(&m->lock);
    free(rows);

    d->mediator_size = sizeof(*md);
    d->vm_size = sizeof(*vms);
    clock_gettime(CLOCK_REALTIME, &ts);
    d->realtime_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    *len = d->hdr.size;
    return msg;
}

static void handle_stats_query(struct vgpu_mediator *m, struct vgpu_session *s)
{
    struct vgpu_msg_stats_query q;
    uint32_t len;
    uint8_t *msg;

    memcpy(&q, s->rx, sizeof(q));
    s->connect_ns = vgpu_now_ns(); /* the idle limit counts from the last request */
    msg = stats_page(m, q.hdr.seq, q.start, q.max_records, &len);
    if (!msg) {
        conn_fail(m, s, VGPU_PERR_LIMIT, q.hdr.seq, "out of memory building the statistics");
        return;
    }
    if (!reply_fits(s, len)) {
        free(msg);
        conn_fail(m, s, VGPU_PERR_LIMIT, q.hdr.seq, "STATS_QUERY while earlier replies are unread");
        return;
    }
    if (s->state == VGPU_CONN_NEW) {
        s->state = VGPU_CONN_ADMIN;
    }
    if (vgpu_session_send(s, msg, len) < 0) {
        conn_close(m, s, "cannot send STATS_DATA");
    }
    free(msg);
}

/* ---------------------------------------------------------------- doorbell */

/*
 * The doorbell descriptor of a HELLO must be an eventfd: anything else (a
 * pipe, a socket, a file) is refused rather than guessed at. It is made
 * non-blocking (eventfds are created so by QEMU and libvgpu anyway). 0, or
 * -errno with *why (-EBADF: not an eventfd); the caller answers VGPU_PERR_FD.
 */
static int doorbell_check(int fd, const char **why)
{
    char path[32], target[64];
    ssize_t n;
    int fl;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0) {
        *why = "cannot inspect the doorbell descriptor";
        return -errno;
    }
    target[n] = '\0';
    if (strcmp(target, "anon_inode:[eventfd]") != 0) {
        *why = "the doorbell descriptor is not an eventfd";
        return -EBADF;
    }
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        *why = "cannot make the doorbell eventfd non-blocking";
        return -errno;
    }
    return 0;
}

/* The guest rang the doorbell (a KICK message or the eventfd): read the SQ. */
static void session_doorbell(struct vgpu_mediator *m, struct vgpu_session *s)
{
    unsigned done;

    pthread_mutex_lock(&m->lock);
    s->st.kicks++;
    vgpu_session_take(s);
    done = vgpu_exec_dispatch(m, s);
    pthread_mutex_unlock(&m->lock);
    if (done) {
        vgpu_session_notify(s);
    }
}

/* The eventfd counts doorbells; one read takes them all. */
static void doorbell_readable(struct vgpu_mediator *m, struct vgpu_session *s)
{
    uint64_t count;

    if (s->doorbell_fd >= 0 && read(s->doorbell_fd, &count, sizeof(count)) == sizeof(count)) {
        session_doorbell(m, s);
    }
    /* else EAGAIN: a spurious wakeup, or already consumed */
}

/* ---------------------------------------------------------------- HELLO */

static void handle_hello(struct vgpu_mediator *m, struct vgpu_session *s)
{
    struct vgpu_msg_hello_mq hm = { 0 };
    struct vgpu_msg_hello h;
    struct vgpu_msg_welcome w = { 0 };
    const char *why = NULL;
    char text[120];
    uint32_t prio, weight, nq;
    unsigned done;
    int fd, r;

    /* The header check let through only the 112- and the 120-byte HELLO. */
    memcpy(&hm, s->rx, VGPU_MIN(((const struct vgpu_msg_hdr *)s->rx)->size, sizeof(hm)));
    h = hm.hello;
    r = vgpu_msg_check_hello(&hm.hello, s->n_rx_fds, text, sizeof(text));
    if (r) {
        conn_fail(m, s, (uint32_t)r, h.hdr.seq, "%s", text);
        return;
    }
    if (s->n_rx_fds == 2) {
        r = doorbell_check(s->rx_fds[1], &why);
        if (r < 0) {
            conn_fail(m, s, VGPU_PERR_FD, h.hdr.seq, "%s", why);
            return;
        }
        s->doorbell_fd = s->rx_fds[1];
        s->rx_fds[1] = -1;
    }
    fd = s->rx_fds[0];
    s->rx_fds[0] = -1;
    s->n_rx_fds = 0;
    nq = vgpu_msg_hello_queues(&hm.hello);

    vgpu_sanitize_name(s->vm_name, h.vm_name, sizeof(s->vm_name));
    prio = h.priority;
    weight = h.weight;
    vgpu_config_apply(&m->cfg, h.vm_id, s->vm_name, &prio, &weight);

    /* Only this thread adds sessions, so the checks stay true until we do. */
    pthread_mutex_lock(&m->lock);
    r = 0;
    if (m->nsessions >= m->cfg.max_sessions) {
        r = VGPU_PERR_LIMIT;
    } else {
        for (struct vgpu_session *o = m->conns; o; o = o->next) {
            if (o != s && o->state == VGPU_CONN_ACTIVE && o->vm_id == h.vm_id) {
                r = VGPU_PERR_IDENTITY;
                break;
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (r == VGPU_PERR_LIMIT) {
        close(fd);
        conn_fail(m, s, r, h.hdr.seq, "too many sessions (max %u)", m->cfg.max_sessions);
        return;
    }
    if (r) {
        close(fd);
        conn_fail(m, s, r, h.hdr.seq, "vm id %u is already connected", h.vm_id);
        return;
    }

    /* On success the session keeps fd (s->shm.fd): a backend that runs in
     * another process (cuda) maps the same memory from it. */
    r = vgpu_session_map(s, fd, h.shm_size, nq, &why);
    if (r < 0) {
        close(fd);
        conn_fail(m, s, VGPU_PERR_SHM, h.hdr.seq, "%s", why);
        return;
    }
    r = m->bops->session_open(m->backend, h.vm_id, vgpu_config_gpu(&m->cfg, h.vm_id, s->vm_name),
                              &s->shm, &s->bsess);
    s->gpu = r == 0 && m->bops->session_gpu ? m->bops->session_gpu(m->backend, s->bsess)
                                            : m->cfg.gpu_index;
    if (r < 0) {
        conn_fail(m, s, VGPU_PERR_SHM, h.hdr.seq, "backend %s cannot use the memory: %s",
                  m->bops->name, strerror(-r));
        return;
    }

    hdr_init(&w.hdr, VGPU_MSG_WELCOME, sizeof(w), h.hdr.seq);
    w.version_major = VGPU_PROTO_VERSION_MAJOR;
    w.version_minor = VGPU_PROTO_VERSION_MINOR;
    w.session_id = s->id;
    w.backend = m->bops->kind;
    w.max_inflight = m->cfg.max_inflight;
    w.gpu_mem_mib = (uint32_t)VGPU_MIN(m->gpu.total_mem >> 20, (uint64_t)UINT32_MAX);
    w.gpu_sms = m->gpu.sm_count;
    w.gpu_cc = m->gpu.cc_major << 8 | m->gpu.cc_minor;
    if (s->doorbell_fd >= 0) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = doorbell_tag(s) };

        if (epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, s->doorbell_fd, &ev) < 0) {
            log_warn("session %u: cannot watch the doorbell eventfd (%s); using KICK messages",
                     s->id, strerror(errno));
            close(s->doorbell_fd);
            s->doorbell_fd = -1;
        } else {
            w.features = VGPU_FEAT_DOORBELL_FD;
        }
    }
    memcpy(w.gpu_name, m->gpu.name, sizeof(w.gpu_name));
    w.gpu_name[sizeof(w.gpu_name) - 1] = '\0';
    if (vgpu_session_send(s, &w, sizeof(w)) < 0) {
        conn_close(m, s, "cannot send WELCOME");
        return;
    }

    pthread_mutex_lock(&m->lock);
    s->vm_id = h.vm_id;
    s->prio = prio;
    s->weight = weight;
    s->hello_prio = h.priority;
    s->hello_weight = h.weight;
    s->max_inflight = m->cfg.max_inflight;
    vgpu_sched_entity_init(&s->ent, prio, weight);
    s->state = VGPU_CONN_ACTIVE;
    m->nsessions++;
    m->sessions_opened++;
    log_info("session %u: vm %u '%s' attached: priority %u weight %u%s, shm %llu MiB, %u queue "
             "pair(s), features 0x%x, doorbell %s", s->id, s->vm_id, s->vm_name, prio, weight,
             (prio != h.priority || weight != h.weight) ? " (from config)" : "",
             (unsigned long long)(h.shm_size >> 20), s->nq, h.features,
             s->doorbell_fd >= 0 ? "eventfd" : "KICK messages");
    vgpu_session_resume(s);
    done = vgpu_exec_dispatch(m, s);
    pthread_mutex_unlock(&m->lock);
    if (done) {
        vgpu_session_notify(s);
    }
}

/* ---------------------------------------------------------------- receive */

static int conn_recv(struct vgpu_session *s, void *buf, size_t want)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 8)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = buf, .iov_len = want };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
    };
    ssize_t n;

    do {
        n = recvmsg(s->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -errno;
    }
    if (msg.msg_flags & MSG_CTRUNC) {
        s->rx_fd_overflow = true;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int fds[8];

            memcpy(fds, CMSG_DATA(c), VGPU_MIN(nfd, (size_t)8) * sizeof(int));
            for (size_t i = 0; i < nfd && i < 8; i++) {
                if (s->n_rx_fds < VGPU_RX_MAX_FDS) {
                    s->rx_fds[s->n_rx_fds++] = fds[i];
                } else {
                    close(fds[i]);
                    s->rx_fd_overflow = true;
                }
            }
        }
    }
    return (int)n;
}

/* Checks a complete header; 0, or -EPROTO once conn_fail() has answered the
 * peer with the protocol's code (vgpu_msg_check_header()'s VGPU_PERR_*). */
static int check_header(struct vgpu_mediator *m, struct vgpu_session *s,
                        const struct vgpu_msg_hdr *h)
{
    char why[120];
    int r = vgpu_msg_check_header(h, s->state, why, sizeof(why));

    if (r) {
        conn_fail(m, s, (uint32_t)r, h->seq, "%s", why);
        return -EPROTO;
    }
    /* Whoever may read statistics may not attach: that needs the VM socket. */
    if (s->read_only && (h->type == VGPU_MSG_HELLO || h->type == VGPU_MSG_KICK)) {
        conn_fail(m, s, VGPU_PERR_TYPE, h->seq, "%s on the read-only admin socket",
                  vgpu_msg_name(h->type));
        return -EPROTO;
    }
    return 0;
}

static void handle_message(struct vgpu_mediator *m, struct vgpu_session *s)
{
    const struct vgpu_msg_hdr *h = (const struct vgpu_msg_hdr *)s->rx;
    char reason[120];
    int r;

    r = vgpu_msg_check_fds(h, s->n_rx_fds, s->rx_fd_overflow, reason, sizeof(reason));
    if (r) {
        conn_fail(m, s, (uint32_t)r, h->seq, "%s", reason);
        return;
    }

    switch (h->type) {
    case VGPU_MSG_HELLO:
        handle_hello(m, s);
        break;
    case VGPU_MSG_KICK:
        session_doorbell(m, s);
        break;
    case VGPU_MSG_BYE: {
        const struct vgpu_msg_bye *b = (const void *)s->rx;
        conn_close(m, s, b->reason == VGPU_BYE_RESET ? "device reset (BYE)" : "device said BYE");
        break;
    }
    case VGPU_MSG_ERROR: {
        const struct vgpu_msg_error *e = (const void *)s->rx;
        char text[sizeof(e->text) + 1];
        char why[200];
        vgpu_sanitize_name(text, e->text, sizeof(text));
        snprintf(why, sizeof(why), "peer reported error %u: %s", e->code, text);
        conn_close(m, s, why);
        break;
    }
    case VGPU_MSG_STATS_REQ:
        handle_stats_req(m, s, h->seq);
        break;
    case VGPU_MSG_STATS_QUERY:
        handle_stats_query(m, s);
        break;
    }
}

static void conn_readable(struct vgpu_mediator *m, struct vgpu_session *s)
{
    const struct vgpu_msg_hdr *h = (const struct vgpu_msg_hdr *)s->rx;

    for (int budget = MSGS_PER_WAKEUP; budget > 0 && s->state != VGPU_CONN_CLOSED; budget--) {
        size_t want = s->rx_len < sizeof(*h) ? sizeof(*h) - s->rx_len : h->size - s->rx_len;
        int n = conn_recv(s, s->rx + s->rx_len, want);

        if (n == -EAGAIN || n == -EWOULDBLOCK) {
            return;
        }
        if (n < 0) {
            char why[80];
            snprintf(why, sizeof(why), "recv: %s", strerror(-n));
            conn_close(m, s, why);
            return;
        }
        if (n == 0) {
            if (s->rx_len > 0 || s->n_rx_fds > 0) {
                uint64_t suppressed;
                if (vgpu_ratelimit_ok(&m->conn_rl, &suppressed)) {
                    log_warn("connection %u: truncated message (%u bytes) before EOF; dropping it",
                             s->id, s->rx_len);
                }
                conn_close(m, s, "truncated message");
            } else {
                conn_close(m, s, "peer closed the connection");
            }
            return;
        }
        if (s->rx_len < sizeof(*h)) {
            s->rx_len += (uint32_t)n;
            if (s->rx_len < sizeof(*h)) {
                continue;
            }
            if (check_header(m, s, h) < 0) {
                return;
            }
        } else {
            s->rx_len += (uint32_t)n;
        }
        if (s->rx_len < h->size) {
            continue;
        }
        handle_message(m, s);
        s->rx_len = 0;
        s->rx_fd_overflow = false;
        if (s->state != VGPU_CONN_CLOSED) {
            close_rx_fds(s); /* consumed by HELLO, or none */
        }
    }
}

/* ---------------------------------------------------------------- accept */

/* accept4() errors that persist while the connection waits in the backlog. */
static bool accept_paused(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void accept_rearm(struct vgpu_mediator *m)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &m->listen_fd };

    epoll_ctl(m->epoll_fd, EPOLL_CTL_MOD, m->listen_fd, &ev);
    if (m->admin_fd >= 0) {
        ev.data.ptr = &m->admin_fd;
        epoll_ctl(m->epoll_fd, EPOLL_CTL_MOD, m->admin_fd, &ev);
    }
}

/* Connections on the admin socket: its own cap, so that readers (anyone,
 * with the default mode) can never take the places of VMs. */
#define ADMIN_MAX_CONNS 32

/* ro: on the read-only admin socket. */
static void handle_accept(struct vgpu_mediator *m, bool ro)
{
    int lfd = ro ? m->admin_fd : m->listen_fd;

    for (int i = 0; i < 16; i++) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP };
        struct vgpu_session *s;
        uint64_t suppressed;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            int err = errno;

            if (err != EAGAIN && err != EINTR && err != ECONNABORTED &&
                vgpu_ratelimit_ok(&m->conn_rl, &suppressed)) {
                log_warn("accept: %s%s", strerror(err),
                         accept_paused(err) ? "; not accepting for a second" : "");
            }
            /*
             * Out of descriptors or memory, the connection stays in the
             * backlog and the listening socket stays readable: with a
             * level-triggered epoll that would spin this thread. Stop
             * watching it until the next tick re-arms it.
             */
            if (accept_paused(err)) {
                struct epoll_event off = { .events = 0,
                                           .data.ptr = ro ? &m->admin_fd : &m->listen_fd };
                epoll_ctl(m->epoll_fd, EPOLL_CTL_MOD, lfd, &off);
            }
            return;
        }
        if (ro && m->n_ro_conns >= ADMIN_MAX_CONNS) {
            if (vgpu_ratelimit_ok(&m->conn_rl, &suppressed)) {
                log_warn("refusing an admin connection: %u open (limit %u)", m->n_ro_conns,
                         ADMIN_MAX_CONNS);
            }
            m->conns_rejected++;
            close(fd);
            continue;
        }
        if (!ro && m->nconns - m->n_ro_conns >= m->cfg.max_sessions + CONN_SLACK) {
            if (vgpu_ratelimit_ok(&m->conn_rl, &suppressed)) {
                log_warn("refusing a connection: %u open (limit %u)", m->nconns - m->n_ro_conns,
                         m->cfg.max_sessions + CONN_SLACK);
            }
            m->conns_rejected++;
            close(fd);
            continue;
        }
        s = vgpu_session_new(m, fd);
        if (!s) {
            log_error("out of memory for a new connection");
            close(fd);
            continue;
        }
        s->read_only = ro;
        ev.data.ptr = s;
        if (epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            log_error("epoll_ctl: %s", strerror(errno));
            vgpu_session_destroy(s);
            continue;
        }
        pthread_mutex_lock(&m->lock);
        s->id = m->next_session_id++;
        if (m->next_session_id == 0) {
            m->next_session_id = 1;
        }
        s->next = m->conns;
        if (m->conns) {
            m->conns->prev = s;
        }
        m->conns = s;
        m->nconns++;
        m->n_ro_conns += ro;
        pthread_mutex_unlock(&m->lock);
        log_debug("connection %u accepted%s", s->id, ro ? " on the admin socket" : "");
    }
}

int vgpu_server_adopt(struct vgpu_mediator *m, struct vgpu_session *s)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = s };

    if (epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
        return -errno;
    }
    pthread_mutex_lock(&m->lock);
    s->id = m->next_session_id++;
    if (m->next_session_id == 0) {
        m->next_session_id = 1;
    }
    s->next = m->conns;
    if (m->conns) {
        m->conns->prev = s;
    }
    m->conns = s;
    m->nconns++;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int vgpu_server_watch_doorbell(struct vgpu_mediator *m, struct vgpu_session *s)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = doorbell_tag(s) };

    return epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, s->doorbell_fd, &ev) < 0 ? -errno : 0;
}

/* ---------------------------------------------------------------- socket */

static int mkdir_parents(const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *p;

    snprintf(dir, sizeof(dir), "%s", path);
    p = strrchr(dir, '/');
    if (!p || p == dir) {
        return 0;
    }
    *p = '\0';
    for (p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                return -errno;
            }
            *p = '/';
        }
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

/*
 * Removes path if it is a socket nobody answers on (left by a mediator that
 * was killed); refuses to go on when someone answers (unless replace_live) or
 * when it is not a socket. The probe does not block: a live mediator whose
 * backlog is full answers EAGAIN, which counts as live.
 */
static int remove_stale_socket(const struct sockaddr_un *sa, bool replace_live)
{
    struct stat st;
    int fd, r;

    if (lstat(sa->sun_path, &st) < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if (!S_ISSOCK(st.st_mode)) {
        log_error("%s exists and is not a socket; not touching it, not starting", sa->sun_path);
        return -EEXIST;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    if (r < 0) {
        r = -errno;
    }
    close(fd);
    if ((r == 0 || r == -EAGAIN) && replace_live) {
        log_warn("another mediator answers on %s; replacing it, since this one holds the VM "
                 "socket now", sa->sun_path);
        if (unlink(sa->sun_path) < 0 && errno != ENOENT) {
            return -errno;
        }
        return 0;
    }
    if (r == 0 || r == -EAGAIN) {
        log_error("another mediator is answering on %s; not starting (stop it first, or give "
                  "this one another --socket-path)", sa->sun_path);
        return -EADDRINUSE;
    }
    if (r == -ENOENT) {
        return 0;   /* removed since lstat() */
    }
    if (r != -ECONNREFUSED) {
        log_error("cannot probe %s: %s", sa->sun_path, strerror(-r));
        return r;
    }
    log_info("removing stale socket %s (nobody answers)", sa->sun_path);
    if (unlink(sa->sun_path) < 0 && errno != ENOENT) {
        return -errno;
    }
    return 0;
}

/*
 * Unlinks a socket path only while it still names the socket this process
 * bound. If ours was removed or renamed and another mediator bound the path
 * since, the file is that one's: removing it would leave every VM unable to
 * reconnect. Called before the listening socket is closed, so our inode is
 * still referenced and its number cannot have been reused.
 */
void vgpu_server_unlink_own(const char *path, bool *bound, dev_t dev, ino_t ino)
{
    struct stat st;

    if (!*bound) {
        return;
    }
    *bound = false;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT) {
            log_info("socket %s already removed", path);
        } else {
            log_warn("socket %s: %s; leaving it", path, strerror(errno));
        }
        return;
    }
    if (st.st_dev != dev || st.st_ino != ino) {
        log_warn("%s is no longer this mediator's socket (replaced, e.g. by another mediator); "
                 "leaving it", path);
        return;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        log_warn("cannot remove socket %s: %s", path, strerror(errno));
    }
}

static void unlink_own_socket(struct vgpu_mediator *m)
{
    vgpu_server_unlink_own(m->cfg.socket_path, &m->socket_bound, m->socket_dev, m->socket_ino);
}

static void unlink_own_admin(struct vgpu_mediator *m)
{
    if (m->cfg.admin_socket_path) {
        vgpu_server_unlink_own(m->cfg.admin_socket_path, &m->admin_bound, m->admin_dev,
                               m->admin_ino);
    }
}

/*
 * Binds and listens on a Unix socket at path, born with mode (no window with
 * a wider one). replace_live: take the path even from a live socket. On
 * success *fdp, *bound, *dev, *ino are set. 0 or -errno (logged); on failure
 * nothing is left behind.
 */
int vgpu_server_listen_unix(const char *path, mode_t mode, bool replace_live, int *fdp,
                            bool *bound, dev_t *dev, ino_t *ino)
{
    struct stat st;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    mode_t old;
    int fd, r;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        log_error("socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    r = mkdir_parents(sa.sun_path);
    if (r < 0) {
        log_error("cannot create the directory of %s: %s", sa.sun_path, strerror(-r));
        return r;
    }
    r = remove_stale_socket(&sa, replace_live);
    if (r < 0) {
        goto err;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        goto err;
    }
    old = umask(~mode & 0777);
    r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0) {
        r = -errno;
        log_error("bind %s: %s", sa.sun_path, strerror(errno));
        goto err_close;
    }
    /* Right after bind(): only a remover racing us in between could make
     * this name another file, and then we never unlink the path. */
    if (lstat(sa.sun_path, &st) < 0) {
        r = -errno;
        log_error("bind %s: the socket file is gone: %s", sa.sun_path, strerror(errno));
        goto err_close;
    }
    *bound = true;
    *dev = st.st_dev;
    *ino = st.st_ino;
    if (listen(fd, 128) < 0) {
        r = -errno;
        log_error("listen: %s", strerror(errno));
        goto err_unlink;
    }
    *fdp = fd;
    return 0;

err_unlink:
    vgpu_server_unlink_own(path, bound, *dev, *ino);
err_close:
    close(fd);
err:
    log_error("cannot listen on %s: %s", path, strerror(-r));
    return r;
}

int vgpu_server_open(struct vgpu_mediator *m)
{
    struct epoll_event ev = { .events = EPOLLIN };
    int r;

    m->listen_fd = m->epoll_fd = m->admin_fd = -1;
    r = vgpu_server_listen_unix(m->cfg.socket_path, 0660, false, &m->listen_fd, &m->socket_bound,
                                &m->socket_dev, &m->socket_ino);
    if (r < 0) {
        return r;
    }
    /*
     * The admin socket goes with the VM socket: a mediator started on a VM
     * socket path whose predecessor's file was removed takes over the
     * predecessor's admin socket too (that one's exit leaves it alone).
     */
    if (m->cfg.admin_socket_path) {
        r = vgpu_server_listen_unix(m->cfg.admin_socket_path, m->cfg.admin_socket_mode, true,
                                    &m->admin_fd, &m->admin_bound, &m->admin_dev, &m->admin_ino);
        if (r < 0) {
            goto err_listen;
        }
    }
    m->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (m->epoll_fd < 0) {
        r = -errno;
        goto err_admin;
    }
    ev.data.ptr = &m->listen_fd;
    if (epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, m->listen_fd, &ev) < 0) {
        r = -errno;
        goto err_epoll;
    }
    if (m->admin_fd >= 0) {
        ev.data.ptr = &m->admin_fd;
        if (epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, m->admin_fd, &ev) < 0) {
            r = -errno;
            goto err_epoll;
        }
    }
    ev.data.ptr = &m->signal_fd;
    if (epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, m->signal_fd, &ev) < 0) {
        r = -errno;
        goto err_epoll;
    }
    r = vgpu_ivshmem_open(m);
    if (r < 0) {
        goto err_epoll;
    }
    return 0;

err_epoll:
    close(m->epoll_fd);
    m->epoll_fd = -1;
err_admin:
    unlink_own_admin(m);
    if (m->admin_fd >= 0) {
        close(m->admin_fd);
        m->admin_fd = -1;
    }
err_listen:
    unlink_own_socket(m);
    close(m->listen_fd);
    m->listen_fd = -1;
    log_error("cannot serve on %s: %s", m->cfg.socket_path, strerror(-r));
    return r;
}

static void dump_stats(struct vgpu_mediator *m)
{
    size_t len;
    char *t = vgpu_mediator_stats_text(m, &len);

    if (t) {
        vgpu_log_raw(t, len);
        free(t);
    }
}

static void check_hello_deadlines(struct vgpu_mediator *m)
{
    uint64_t now = vgpu_now_ns();
    uint64_t limit = (uint64_t)m->cfg.hello_timeout_ms * 1000000ull;
    struct vgpu_session *s, *next;

    for (s = m->conns; s; s = next) {
        next = s->next;
        if (s->state == VGPU_CONN_NEW && now - s->connect_ns > limit) {
            conn_fail(m, s, VGPU_PERR_TYPE, 0, "no HELLO or STATS_REQ within %u ms",
                      m->cfg.hello_timeout_ms);
        } else if (s->state == VGPU_CONN_ADMIN && now - s->connect_ns > limit) {
            /* Admin connections share the connection cap with devices. */
            conn_close(m, s, "admin connection idle");
        }
    }
}

int vgpu_server_run(struct vgpu_mediator *m)
{
    struct epoll_event evs[EPOLL_BATCH];
    uint64_t last_tick = vgpu_now_ns();

    for (;;) {
        int n = epoll_wait(m->epoll_fd, evs, EPOLL_BATCH, vgpu_notify_timeout_ms(1000));

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_error("epoll_wait: %s", strerror(errno));
            return -errno;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;

            if (p == &m->listen_fd || p == &m->admin_fd) {
                handle_accept(m, p == &m->admin_fd);
            } else if (vgpu_ivshmem_listener(m, p)) {
                vgpu_ivshmem_accept(m, vgpu_ivshmem_listener(m, p));
            } else if (p == &m->signal_fd) {
                struct signalfd_siginfo si;
                while (read(m->signal_fd, &si, sizeof(si)) == sizeof(si)) {
                    if (si.ssi_signo == SIGUSR1) {
                        dump_stats(m);
                    } else if (si.ssi_signo == SIGHUP) {
                        /* Not a stop: systemd's Restart=on-failure would not
                         * bring back a daemon that exits 0 here. */
                        log_info("signal %d (%s): reloading the config file", (int)si.ssi_signo,
                                 strsignal((int)si.ssi_signo));
                        (void)vgpu_config_reload(m);
                    } else {
                        log_info("signal %d (%s): shutting down", (int)si.ssi_signo,
                                 strsignal((int)si.ssi_signo));
                        flush_closing(m);
                        return 0;
                    }
                }
            } else if (tagged_doorbell(p)) {
                struct vgpu_session *s = tagged_doorbell(p);
                if (s->state == VGPU_CONN_ACTIVE) {
                    doorbell_readable(m, s);
                }
            } else {
                struct vgpu_session *s = p;
                if (s->state == VGPU_CONN_CLOSED) {
                    continue;
                }
                if (s->ivshmem) {
                    vgpu_ivshmem_readable(m, s);
                } else if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)) {
                    conn_readable(m, s);
                }
            }
        }
        flush_closing(m);
        if (vgpu_now_ns() - last_tick >= 1000000000ull) {
            last_tick = vgpu_now_ns();
            check_hello_deadlines(m);
            flush_closing(m);
            accept_rearm(m); /* after a pause in handle_accept(); else a no-op */
        }
        /* Here, so that a stuck I/O loop stops the watchdog pings. */
        vgpu_notify_tick(m);
    }
}

void vgpu_server_close(struct vgpu_mediator *m)
{
    while (m->conns) {
        struct vgpu_session *s = m->conns;
        if (s->state == VGPU_CONN_ACTIVE && !s->ivshmem) {   /* QEMU's ivshmem: no BYE */
            struct vgpu_msg_bye b = { 0 };
            hdr_init(&b.hdr, VGPU_MSG_BYE, sizeof(b), 0);
            b.reason = VGPU_BYE_SHUTDOWN;
            (void)vgpu_session_send(s, &b, sizeof(b));
        }
        conn_close(m, s, "mediator shutting down");
    }
    flush_closing(m);
    vgpu_ivshmem_close(m);
    unlink_own_socket(m);   /* before close(): see vgpu_server_unlink_own() */
    unlink_own_admin(m);
    if (m->listen_fd >= 0) {
        close(m->listen_fd);
        m->listen_fd = -1;
    }
    if (m->admin_fd >= 0) {
        close(m->admin_fd);
        m->admin_fd = -1;
    }
    if (m->epoll_fd >= 0) {
        close(m->epoll_fd);
        m->epoll_fd = -1;
    }
}

void vgpu_server_dump_stats(struct vgpu_mediator *m)
{
    dump_stats(m);
}
