/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA worker process: runs the engine (engine.c) for the proxy
 * (proxy.c) over one SOCK_SEQPACKET channel, one request at a time. It owns
 * nothing the mediator needs to survive: when CUDA state becomes unusable it
 * says so (VGPU_WREPLY_RESTART) and the proxy replaces it. It exits when the
 * channel closes, so a dead mediator never leaves a worker on the GPU.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mediator/backend.h"
#include "mediator/mediator.h"
#include "mediator/op.h"
#include "vgpu/abi.h"

#include "engine.h"
#include "worker.h"

struct wsess {
    struct wsess *next;
    uint32_t key;
    struct vgpu_shm_view shm;
    struct vgpu_backend_session *bs;
};

struct worker {
    int fd;
    struct vgpu_backend *b;
    struct wsess *sessions;
    struct vgpu_spin spin;      /* waiting for the next request */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * recvmsg() of the next request. A VM streaming requests sends the next one
 * a client round trip after our reply: polling for it (up to w->spin's
 * budget) spares the proxy's send a wake-up of this process.
 */
static ssize_t next_request(struct worker *w, struct msghdr *mh)
{
    uint64_t start = mono_ns(), end = start + w->spin.budget_ns, now;
    ssize_t n;

    if (w->spin.budget_ns) {
        do {
            n = recvmsg(w->fd, mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
            now = mono_ns();
            if (n >= 0 || (errno != EAGAIN && errno != EINTR)) {
                vgpu_spin_update(&w->spin, now - start, true);
                return n;
            }
            vgpu_cpu_relax();
        } while (now < end);
    }
    do {
        n = recvmsg(w->fd, mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    vgpu_spin_update(&w->spin, mono_ns() - start, false);
    return n;
}

static struct wsess *wsess_find(struct worker *w, uint32_t key)
{
    for (struct wsess *s = w->sessions; s; s = s->next) {
        if (s->key == key) {
            return s;
        }
    }
    return NULL;
}

static void wsess_free(struct worker *w, struct wsess *s)
{
    struct wsess **pp;

    for (pp = &w->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    if (s->bs) {
        vgpu_cuda_engine.session_close(w->b, s->bs);
    }
    if (s->shm.base) {
        munmap(s->shm.base, s->shm.size);
    }
    if (s->shm.fd >= 0) {
        close(s->shm.fd);
    }
    free(s);
}

/*
 * Every reply below, and so every do_*(), returns 0 or -EPIPE (the channel
 * is gone, and with it the mediator). The status a reply carries is the
 * request's enum vgpu_status for EXEC, 0 or -errno for everything else.
 */
static int send_reply(struct worker *w, const void *buf, size_t len)
{
    ssize_t n;

    do {
        n = send(w->fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)len ? 0 : -EPIPE;
}

static int reply(struct worker *w, int32_t status, uint64_t result)
{
    struct vgpu_worker_reply r = { .status = status, .result = result };

    if (w->b && vgpu_cuda_engine_poisoned(w->b)) {
        r.flags |= VGPU_WREPLY_RESTART;
    }
    return send_reply(w, &r, sizeof(r));
}

static int reply_info(struct worker *w, int32_t status, const char *text)
{
    struct vgpu_worker_info_reply r;

    memset(&r, 0, sizeof(r));
    r.r.status = status;
    if (w->b) {
        vgpu_cuda_engine.gpu_info(w->b, &r.info);
        r.device_count = vgpu_cuda_engine_device_count(w->b);
        if (vgpu_cuda_engine.health) {
            vgpu_cuda_engine.health(w->b, r.text, sizeof(r.text));
        }
        if (vgpu_cuda_engine_poisoned(w->b)) {
            r.r.flags |= VGPU_WREPLY_RESTART;
        }
    }
    if (text) {
        snprintf(r.text, sizeof(r.text), "%s", text);
    }
    return send_reply(w, &r, sizeof(r));
}

static int do_init(struct worker *w, const struct vgpu_worker_req *q)
{
    const char *why = NULL;
    int r;

    if (w->b) {
        return reply_info(w, -EALREADY, "already initialised");
    }
    r = vgpu_cuda_engine.init(&q->u.cfg, &w->b, &why);
    if (r < 0) {
        w->b = NULL;
        return reply_info(w, r, why ? why : "engine init failed");
    }
    /* The proxy's cap (0 on small hosts), bounded in case of a bad INIT. */
    vgpu_spin_init(&w->spin, q->size < 100000000ull ? q->size : 100000000ull);
    return reply_info(w, 0, NULL);
}

/* Takes ownership of fd. */
static int do_open(struct worker *w, const struct vgpu_worker_req *q, int fd)
{
    struct wsess *s;
    void *p;
    int r;

    if (!w->b || fd < 0 || wsess_find(w, q->key)) {
        r = !w->b ? -ENODEV : fd < 0 ? -EBADF : -EEXIST;
        goto fail;
    }
    /* The mediator checked size against the (sealed) file already. */
    p = mmap(NULL, q->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        r = -errno;
        goto fail;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        munmap(p, q->size);
        r = -ENOMEM;
        goto fail;
    }
    s->key = q->key;
    s->shm.base = p;
    s->shm.size = q->size;
    s->shm.fd = fd;
    s->next = w->sessions;
    w->sessions = s;
    r = vgpu_cuda_engine.session_open(w->b, q->vm_id, -1, &s->shm, &s->bs);
    if (r < 0) {
        s->bs = NULL;
        wsess_free(w, s);
    } else {
        vgpu_cuda_engine_set_epoch(s->bs, q->arg);
        /* ps, top and nvidia-smi tell the VMs' workers apart by this name
         * (15 bytes; vgpu-smi --query-vm=vm_id,worker_pid maps them). */
        char comm[16];

        snprintf(comm, sizeof(comm), "vgpu-vm%u", q->vm_id);
        prctl(PR_SET_NAME, comm);
    }
    return reply(w, r, 0);

fail:
    if (fd >= 0) {
        close(fd);
    }
    return reply(w, r, 0);
}

static int do_exec(struct worker *w, const struct vgpu_worker_req *q)
{
    struct wsess *s = wsess_find(w, q->key);
    const struct vgpu_op *op;
    uint64_t result = 0;
    int st;

    if (!s) {
        return reply(w, VGPU_S_INTERNAL, 0);
    }
    op = vgpu_op_lookup(q->u.sqe.opcode);
    if (!op) {
        return reply(w, VGPU_S_UNKNOWN_OP, 0);
    }
    /* Defence in depth: the mediator validated this copy already. */
    st = op->validate(&q->u.sqe, s->shm.size);
    if (st == VGPU_S_OK) {
        st = vgpu_cuda_engine.execute(w->b, s->bs, q->arg, op, &q->u.sqe, &s->shm, &result);
    }
    return reply(w, st, result);
}

/* No reply: a failure is kept for the queue's next sync (cu_ops.h). */
static void do_exec_async(struct worker *w, const struct vgpu_worker_req *q, const void *payload)
{
    struct wsess *s = wsess_find(w, q->key);
    const struct vgpu_op *op = vgpu_op_lookup(q->u.sqe.opcode);

    if (!s || !op || op->validate(&q->u.sqe, s->shm.size) != VGPU_S_OK) {
        return;     /* the mediator validated it: cannot happen */
    }
    vgpu_cuda_engine_exec_async(w->b, s->bs, q->arg, &q->u.sqe, &s->shm,
                                q->size ? payload : NULL, (uint32_t)q->size);
}

static int parse_fd(const char *arg)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < 3 || v > 1 << 20) {
        return -EINVAL;
    }
    return (int)v;
}

int vgpu_cuda_worker_main(const char *arg)
{
    struct worker w = { .fd = parse_fd(arg) };
    struct vgpu_worker_req q;
    static uint8_t payload[VGPU_WORKER_PAYLOAD_MAX];
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } cbuf;
    sigset_t none;
    int status = 0;     /* the process's exit status */

    if (w.fd < 0) {
        fprintf(stderr, "vgpu-mediator: bad worker argument '%s'\n", arg);
        return 2;
    }
    /* The mediator ends us (BYE, EOF, SIGKILL); a terminal's ^C is its. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* The engine's short naps while a request runs (stream_wait) must not
     * oversleep by the default 50 us timer slack. */
    prctl(PR_SET_TIMERSLACK, 1000ul);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (getppid() == 1) {
        return 1;   /* the parent died before PDEATHSIG was armed */
    }

    for (;;) {
        struct iovec iov[2] = { { .iov_base = &q, .iov_len = sizeof(q) },
                                { .iov_base = payload, .iov_len = sizeof(payload) } };
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2,
                             .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf) };
        struct cmsghdr *cm;
        int fd = -1, r = 0;
        ssize_t n;

        n = next_request(&w, &mh);
        if (n <= 0) {
            break;      /* EOF: the mediator is gone */
        }
        for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
                cm->cmsg_len == CMSG_LEN(sizeof(int))) {
                memcpy(&fd, CMSG_DATA(cm), sizeof(int));
            }
        }
        if ((size_t)n < sizeof(q) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
            (size_t)n - sizeof(q) != (q.type == VGPU_WMSG_EXEC_ASYNC ? q.size : 0)) {
            fprintf(stderr, "vgpu-mediator[gpu-worker]: malformed request (%zd bytes)\n", n);
            status = 1;
            if (fd >= 0) {
                close(fd);
            }
            break;
        }
        if (q.type != VGPU_WMSG_OPEN && fd >= 0) {
            close(fd);
            fd = -1;
        }
        switch (q.type) {
        case VGPU_WMSG_INIT:
            r = do_init(&w, &q);
            break;
        case VGPU_WMSG_OPEN:
            r = do_open(&w, &q, fd);
            break;
        case VGPU_WMSG_CLOSE: {
            struct wsess *s = wsess_find(&w, q.key);
            if (s) {
                wsess_free(&w, s);
            }
            r = reply(&w, s ? 0 : -ENOENT, 0);
            break;
        }
        case VGPU_WMSG_EXEC:
            r = do_exec(&w, &q);
            break;
        case VGPU_WMSG_EXEC_ASYNC:
            do_exec_async(&w, &q, payload);
            break;
        case VGPU_WMSG_HEALTH:
            r = reply_info(&w, 0, NULL);
            break;
        case VGPU_WMSG_BYE:
            goto out;   /* no reply */
        default:
            r = reply(&w, -EINVAL, 0);
            break;
        }
        if (r < 0) {
            break;      /* a reply could not be sent: the mediator is gone */
        }
    }

out:
    while (w.sessions) {
        wsess_free(&w, w.sessions);
    }
    if (w.b) {
        vgpu_cuda_engine.fini(w.b);
    }
    close(w.fd);
    return status;
}
