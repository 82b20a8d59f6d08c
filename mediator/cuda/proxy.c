/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The exported CUDA backend: a proxy that never calls CUDA itself. The engine
 * (backend_cuda.c) runs in a worker process (worker.c), the mediator's own
 * binary exec'ed with VGPU_WORKER_ARG. After a sticky GPU error, a request
 * past its deadline whose kernel may still run, a broken channel or a worker
 * that does not answer within the request timeout plus a grace period, the
 * proxy kills the worker, spawns a new one and re-opens every live session
 * from the memfd it keeps. NVIDIA documents that a process which hit
 * cudaErrorIllegalAddress and similar must be terminated and relaunched; an
 * in-process cudaDeviceReset was measured on an H100 not to bring it back.
 *
 * Concurrency: one channel, b->lock held for each round trip, so requests of
 * different VMs are serialised through the worker (the mediator runs one
 * executor for cuda by default, and the engine serialises on one device
 * anyway). A restart happens under the same lock, so no other VM's request is
 * in flight when it does: they wait and then run on the new worker.
 *
 * exec is mandatory: the mediator is multithreaded when a restart happens,
 * and a forked copy of it may only call async-signal-safe functions.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mediator/backend.h"
#include "mediator/log.h"
#include "mediator/mediator.h"
#include "vgpu/abi.h"

#include "cuda_worker.h"

extern char **environ;

#define WORKER_FD            3         /* the channel's number in the worker */
#define WORKER_INIT_MS       120000u   /* CUDA context, kernels, cuBLAS */
#define WORKER_CTL_MS        30000u    /* OPEN/CLOSE (cudaHostRegister of GiBs) */
#define WORKER_HEALTH_MS     1000u
#define WORKER_GRACE_MS      5000u     /* past request_timeout_ms before SIGKILL */
#define WORKER_BYE_MS        2000u
#define RESTART_BACKOFF_MIN_MS 100u
#define RESTART_BACKOFF_MAX_MS 10000u

static const char *worker_exe = "/proc/self/exe";
static uint64_t spin_cap_ns;

struct vgpu_backend_session {
    struct vgpu_backend_session *next;  /* b->sessions */
    uint32_t key;
    uint32_t vm_id;
    uint64_t size;
    int      fd;                        /* our dup of the VM's memfd */
    uint8_t *base;                      /* the mediator's mapping (sanity check) */
    bool     open;                      /* open in the current worker */
};

struct vgpu_backend {
    struct vgpu_backend_config cfg;

    pthread_mutex_t lock;               /* the channel and everything below */
    int      fd;                        /* -1: no worker */
    pid_t    pid;
    uint64_t restarts;
    unsigned failed_spawns;             /* in a row */
    uint64_t next_spawn_ns;             /* back-off after failed spawns */
    struct vgpu_backend_session *sessions;
    unsigned nsessions;
    uint32_t next_key;
    struct vgpu_spin spin;              /* waiting for EXEC replies */
    struct vgpu_gpu_info info;          /* from READY / HEALTH */
    char     health[VGPU_WORKER_TEXT];
    char     why[VGPU_WORKER_TEXT];     /* why the last spawn failed */

    /* What gpu_info/health return while a request holds b->lock: the status
     * table must not wait for a GPU request. Written with both locks. */
    pthread_mutex_t cache_lock;
    struct vgpu_gpu_info cache_info;
    char     cache_line[2 * VGPU_WORKER_TEXT];
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Called with b->lock. */
static void publish(struct vgpu_backend *b)
{
    pthread_mutex_lock(&b->cache_lock);
    b->cache_info = b->info;
    if (b->fd < 0) {
        snprintf(b->cache_line, sizeof(b->cache_line),
                 "cuda (no worker, restarts %llu): last start failed: %s",
                 (unsigned long long)b->restarts, b->why);
    } else {
        snprintf(b->cache_line, sizeof(b->cache_line), "cuda (worker pid %d, restarts %llu): %s",
                 (int)b->pid, (unsigned long long)b->restarts, b->health);
    }
    pthread_mutex_unlock(&b->cache_lock);
}

void vgpu_cuda_proxy_set_exe(const char *path)
{
    worker_exe = path;
}

void vgpu_cuda_proxy_set_spin_ns(uint64_t ns)
{
    spin_cap_ns = ns;
}

/* ------------------------------------------------------------------------
 * Channel
 * ------------------------------------------------------------------------ */

static int chan_send(int fd, const struct vgpu_worker_req *q, int pass_fd)
{
    struct iovec iov = { .iov_base = (void *)q, .iov_len = sizeof(*q) };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (pass_fd >= 0) {
        struct cmsghdr *cm;

        memset(&cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = sizeof(cbuf.buf);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    do {
        n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -errno;
    }
    return n == (ssize_t)sizeof(*q) ? 0 : -EPIPE;
}

/*
 * Waits up to timeout_ms (0: forever) for one reply of exactly len bytes.
 * -ETIMEDOUT, -EPIPE (EOF or a malformed reply) or -errno. sp (may be NULL):
 * first poll the socket without sleeping for up to sp's budget; a reply
 * caught so saves the wake-up of a sleeping thread (tens of microseconds).
 */
static int chan_recv(int fd, void *buf, size_t len, uint32_t timeout_ms, struct vgpu_spin *sp)
{
    uint64_t start = now_ns();
    uint64_t deadline = timeout_ms ? start + (uint64_t)timeout_ms * 1000000ull : 0;
    ssize_t n;

    if (sp && sp->budget_ns) {
        uint64_t end = start + sp->budget_ns, now;

        do {
            n = recv(fd, buf, len, MSG_TRUNC | MSG_DONTWAIT);
            now = now_ns();
            if (n >= 0 || (errno != EAGAIN && errno != EINTR)) {
                vgpu_spin_update(sp, now - start, true);
                goto got;
            }
            vgpu_cpu_relax();
        } while (now < end);
    }
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int wait_ms = -1, r;

        if (deadline) {
            uint64_t now = now_ns();
            if (now >= deadline) {
                return -ETIMEDOUT;
            }
            wait_ms = (int)((deadline - now + 999999) / 1000000);
        }
        r = poll(&pfd, 1, wait_ms);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return -errno;
        }
        if (r > 0) {
            break;
        }
    }
    do {
        n = recv(fd, buf, len, MSG_TRUNC);
    } while (n < 0 && errno == EINTR);
    if (sp) {
        vgpu_spin_update(sp, now_ns() - start, false);
    }
got:
    if (n < 0) {
        return -errno;
    }
    return n == (ssize_t)len ? 0 : -EPIPE;
}

/* One round trip. reply must start with a struct vgpu_worker_reply. */
static int chan_call(struct vgpu_backend *b, const struct vgpu_worker_req *q, int pass_fd,
                     void *reply, size_t len, uint32_t timeout_ms)
{
    int r;

    if (b->fd < 0) {
        return -EPIPE;
    }
    r = chan_send(b->fd, q, pass_fd);
    if (r < 0) {
        return r == -ECONNRESET ? -EPIPE : r;
    }
    return chan_recv(b->fd, reply, len, timeout_ms, NULL);
}

/* ------------------------------------------------------------------------
 * Worker lifetime
 * ------------------------------------------------------------------------ */

/* Ends the worker and reaps it. graceful: ask first (BYE), else SIGKILL at
 * once (its CUDA state is useless, or it does not answer). */
static void worker_stop(struct vgpu_backend *b, bool graceful)
{
    uint64_t deadline;
    int status;

    if (b->fd >= 0 && graceful) {
        struct vgpu_worker_req q = { .type = VGPU_WMSG_BYE };
        (void)chan_send(b->fd, &q, -1);
    }
    if (b->fd >= 0) {
        close(b->fd);   /* EOF also ends a worker that missed the BYE */
        b->fd = -1;
    }
    if (b->pid <= 0) {
        return;
    }
    deadline = now_ns() + (graceful ? WORKER_BYE_MS * 1000000ull : 0);
    while (now_ns() < deadline) {
        struct timespec ts = { .tv_nsec = 2000000 };
        pid_t r = waitpid(b->pid, &status, WNOHANG);

        if (r == b->pid || (r < 0 && errno != EINTR)) {
            b->pid = 0;
            return;
        }
        nanosleep(&ts, NULL);
    }
    kill(b->pid, SIGKILL);
    while (waitpid(b->pid, &status, 0) < 0 && errno == EINTR) {
    }
    b->pid = 0;
}

/* Starts a worker and waits for READY. 0, or -errno with b->why set. */
static int worker_spawn(struct vgpu_backend *b)
{
    struct vgpu_worker_req q = { .type = VGPU_WMSG_INIT, .size = b->spin.cap_ns };
    struct vgpu_worker_info_reply rep;
    posix_spawn_file_actions_t fa;
    char arg[32];
    char *argv[3];
    int sv[2], r;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        r = -errno;
        snprintf(b->why, sizeof(b->why), "socketpair: %s", strerror(-r));
        return r;
    }
    /* dup2 onto the same number would leave FD_CLOEXEC set. */
    if (sv[1] == WORKER_FD) {
        int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, WORKER_FD + 1);
        if (moved < 0) {
            r = -errno;
            goto fail_pair;
        }
        close(sv[1]);
        sv[1] = moved;
    }
    snprintf(arg, sizeof(arg), VGPU_WORKER_ARG "%d", WORKER_FD);
    argv[0] = (char *)"vgpu-mediator";
    argv[1] = arg;
    argv[2] = NULL;

    posix_spawn_file_actions_init(&fa);
    r = posix_spawn_file_actions_adddup2(&fa, sv[1], WORKER_FD);
    if (r == 0) {
        /* Client sockets and memfds the mediator forgot to mark stay ours. */
        r = posix_spawn_file_actions_addclosefrom_np(&fa, WORKER_FD + 1);
    }
    if (r == 0) {
        r = posix_spawn(&b->pid, worker_exe, &fa, NULL, argv, environ);
    }
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (r != 0) {
        b->pid = 0;
        close(sv[0]);
        snprintf(b->why, sizeof(b->why), "spawning %s: %s", worker_exe, strerror(r));
        return -r;
    }
    b->fd = sv[0];

    q.u.cfg = b->cfg;
    memset(&rep, 0, sizeof(rep));
    r = chan_call(b, &q, -1, &rep, sizeof(rep), WORKER_INIT_MS);
    if (r < 0) {
        snprintf(b->why, sizeof(b->why), "GPU worker (pid %d) %s", (int)b->pid,
                 r == -ETIMEDOUT ? "did not start in time" : "died while starting");
        worker_stop(b, false);
        return -ENODEV;
    }
    if (rep.r.status < 0) {
        rep.text[sizeof(rep.text) - 1] = '\0';
        snprintf(b->why, sizeof(b->why), "%s", rep.text);
        worker_stop(b, true);
        return rep.r.status;
    }
    rep.text[sizeof(rep.text) - 1] = '\0';
    b->info = rep.info;
    snprintf(b->health, sizeof(b->health), "%s", rep.text);
    return 0;

fail_pair:
    close(sv[0]);
    close(sv[1]);
    snprintf(b->why, sizeof(b->why), "socketpair: %s", strerror(-r));
    return r;
}

/* Opens s in the current worker. 0 or -errno (-EPIPE: the worker is gone). */
static int session_push(struct vgpu_backend *b, struct vgpu_backend_session *s)
{
    struct vgpu_worker_req q = { .type = VGPU_WMSG_OPEN, .key = s->key,
                                 .vm_id = s->vm_id, .size = s->size };
    struct vgpu_worker_reply rep;
    int r;

    r = chan_call(b, &q, s->fd, &rep, sizeof(rep), WORKER_CTL_MS);
    if (r < 0) {
        return r == -ETIMEDOUT ? -EPIPE : r;
    }
    s->open = rep.status == 0;
    return rep.status;
}

/*
 * Replaces the worker (kills the old one if any) and re-opens every session.
 * After failed spawns, waits RESTART_BACKOFF_* between attempts instead of
 * spinning: a request arriving meanwhile fails at once. Called with b->lock.
 */
static int worker_restart(struct vgpu_backend *b, const char *reason)
{
    struct vgpu_backend_session *s;
    uint64_t now = now_ns();
    int r;

    if (b->pid > 0 || b->fd >= 0) {
        log_warn("cuda: restarting the GPU worker (pid %d): %s", (int)b->pid, reason);
        worker_stop(b, false);
        b->restarts++;
    }
    for (s = b->sessions; s; s = s->next) {
        s->open = false;
    }
    if (now < b->next_spawn_ns) {
        publish(b);
        return -EAGAIN;
    }
    r = worker_spawn(b);
    if (r < 0) {
        unsigned ms = RESTART_BACKOFF_MIN_MS << (b->failed_spawns < 7 ? b->failed_spawns : 7);

        if (ms > RESTART_BACKOFF_MAX_MS) {
            ms = RESTART_BACKOFF_MAX_MS;
        }
        b->failed_spawns++;
        b->next_spawn_ns = now_ns() + (uint64_t)ms * 1000000ull;
        log_error("cuda: GPU worker restart failed (%u in a row, next try in %u ms): %s",
                  b->failed_spawns, ms, b->why);
        publish(b);
        return r;
    }
    b->failed_spawns = 0;
    b->next_spawn_ns = 0;
    log_info("cuda: GPU worker pid %d ready (restarts %llu)", (int)b->pid,
             (unsigned long long)b->restarts);
    publish(b);
    for (s = b->sessions; s; s = s->next) {
        r = session_push(b, s);
        if (r == -EPIPE) {
            return r;   /* the next request restarts again */
        }
        if (r < 0) {
            log_warn("cuda: vm %u: re-open in the new worker failed: %s", s->vm_id,
                     strerror(-r));
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Backend table
 * ------------------------------------------------------------------------ */

static char proxy_init_why[VGPU_WORKER_TEXT];

static int proxy_init(const struct vgpu_backend_config *cfg, struct vgpu_backend **out,
                      const char **why)
{
    struct vgpu_backend *b;
    int r;

    b = calloc(1, sizeof(*b));
    if (!b) {
        *why = "out of memory";
        return -ENOMEM;
    }
    b->cfg = *cfg;
    b->fd = -1;
    b->next_key = 1;
    vgpu_spin_init(&b->spin, spin_cap_ns);
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->cache_lock, NULL);

    r = worker_spawn(b);
    if (r < 0) {
        snprintf(proxy_init_why, sizeof(proxy_init_why), "%s", b->why);
        *why = proxy_init_why;
        pthread_mutex_destroy(&b->cache_lock);
        pthread_mutex_destroy(&b->lock);
        free(b);
        return r == -ENOMEM ? r : -ENODEV;
    }
    publish(b);
    *out = b;
    return 0;
}

static void proxy_session_close(struct vgpu_backend *b, struct vgpu_backend_session *s);

static void proxy_fini(struct vgpu_backend *b)
{
    if (!b) {
        return;
    }
    while (b->sessions) {
        proxy_session_close(b, b->sessions);
    }
    pthread_mutex_lock(&b->lock);
    worker_stop(b, true);
    pthread_mutex_unlock(&b->lock);
    pthread_mutex_destroy(&b->cache_lock);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static int proxy_session_open(struct vgpu_backend *b, uint32_t vm_id,
                              const struct vgpu_shm_view *shm,
                              struct vgpu_backend_session **out)
{
    struct vgpu_backend_session *s;
    int r;

    if (shm->fd < 0) {
        return -EBADF;      /* the worker maps the memory from the fd */
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->fd = fcntl(shm->fd, F_DUPFD_CLOEXEC, 0);
    if (s->fd < 0) {
        r = -errno;
        free(s);
        return r;
    }
    s->vm_id = vm_id;
    s->size = shm->size;
    s->base = shm->base;

    pthread_mutex_lock(&b->lock);
    s->key = b->next_key++;
    if (b->fd < 0) {
        (void)worker_restart(b, "no worker");
    }
    r = b->fd < 0 ? -ENODEV : session_push(b, s);
    if (r == -EPIPE) {
        /* Linked anyway: the restart re-opens it. */
        s->next = b->sessions;
        b->sessions = s;
        b->nsessions++;
        r = worker_restart(b, "channel broken while opening a session");
        if (r == 0 && !s->open) {
            r = -EIO;
        }
        if (r < 0) {
            b->sessions = s->next;
            b->nsessions--;
        }
    } else if (r == 0) {
        s->next = b->sessions;
        b->sessions = s;
        b->nsessions++;
    }
    pthread_mutex_unlock(&b->lock);

    if (r < 0) {
        close(s->fd);
        free(s);
        return r == -EAGAIN ? -ENODEV : r;
    }
    *out = s;
    return 0;
}

static void proxy_session_close(struct vgpu_backend *b, struct vgpu_backend_session *s)
{
    struct vgpu_backend_session **pp;

    if (!s) {
        return;
    }
    pthread_mutex_lock(&b->lock);
    if (s->open) {
        struct vgpu_worker_req q = { .type = VGPU_WMSG_CLOSE, .key = s->key };
        struct vgpu_worker_reply rep;
        int r = chan_call(b, &q, -1, &rep, sizeof(rep), WORKER_CTL_MS);

        if (r < 0) {
            /* Whatever it held of this VM dies with it. */
            (void)worker_restart(b, "no answer to CLOSE");
        } else if (rep.flags & VGPU_WREPLY_RESTART) {
            (void)worker_restart(b, "CUDA state lost while closing a session");
        }
    }
    for (pp = &b->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            b->nsessions--;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    close(s->fd);
    free(s);
}

/*
 * One request in the worker. The restart after it (if any) happens before
 * the lock is dropped, so the next request of any VM finds a fresh worker.
 */
static int proxy_call(struct vgpu_backend *b, struct vgpu_backend_session *s,
                      struct vgpu_worker_req *q, uint64_t *result)
{
    struct vgpu_worker_reply rep;
    uint32_t timeout_ms = 0;
    int r, st;

    q->key = s->key;
    pthread_mutex_lock(&b->lock);
    if (b->fd < 0 && worker_restart(b, "no worker") < 0) {
        pthread_mutex_unlock(&b->lock);
        return VGPU_S_INTERNAL;
    }
    if (!s->open) {
        r = session_push(b, s);
        if (r < 0) {
            if (r == -EPIPE) {
                (void)worker_restart(b, "channel broken");
            }
            pthread_mutex_unlock(&b->lock);
            return r == -ENOMEM ? VGPU_S_NO_MEMORY : VGPU_S_INTERNAL;
        }
    }
    if (b->cfg.request_timeout_ms) {
        timeout_ms = b->cfg.request_timeout_ms + WORKER_GRACE_MS;
    }
    r = chan_send(b->fd, q, -1);
    if (r < 0) {
        /* Not delivered: the worker died between requests (killed, driver
         * crash). Nothing of this request ran, so it runs on a new one. */
        if (worker_restart(b, "the worker is gone") < 0) {
            pthread_mutex_unlock(&b->lock);
            return VGPU_S_INTERNAL;
        }
        r = s->open ? chan_send(b->fd, q, -1) : -EIO;
    }
    if (r == 0) {
        r = chan_recv(b->fd, &rep, sizeof(rep), timeout_ms, &b->spin);
    }
    if (r == -ETIMEDOUT) {
        /* Its kernel may still be writing into the VM's memory: only the
         * end of the process stops it. */
        worker_restart(b, "no answer within the request timeout");
        st = VGPU_S_TIMEOUT;
    } else if (r == -EIO) {
        st = VGPU_S_INTERNAL;   /* the new worker refused the session; logged */
    } else if (r < 0) {
        worker_restart(b, "the worker died");
        st = VGPU_S_GPU_FAULT;
    } else {
        st = rep.status;
        *result = rep.result;
        if (rep.flags & VGPU_WREPLY_RESTART) {
            worker_restart(b, st == VGPU_S_TIMEOUT ? "request past its deadline"
                                                   : "sticky CUDA error");
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (st < 0 || st >= VGPU_S_STATUS_COUNT) {
        st = VGPU_S_INTERNAL;
    }
    return st;
}

static int proxy_execute(struct vgpu_backend *b, struct vgpu_backend_session *s,
                         const struct vgpu_op *op, const struct vgpu_sqe *sqe,
                         const struct vgpu_shm_view *shm, uint64_t *result)
{
    struct vgpu_worker_req q;

    (void)op;
    if (shm->base != s->base || shm->size != s->size) {
        return VGPU_S_INTERNAL;
    }
    *result = 0;
    if (sqe->opcode == VGPU_OP_NOP) {
        return VGPU_S_OK;   /* as in the engine: the pathway check stays off the GPU */
    }
    memset(&q, 0, sizeof(q));
    q.type = VGPU_WMSG_EXEC;
    q.vm_id = s->vm_id;
    q.u.sqe = *sqe;
    return proxy_call(b, s, &q, result);
}

/* Refreshes the cached info and health, unless a request holds the channel:
 * then the cache of the last refresh, restart or start is returned. */
static void refresh(struct vgpu_backend *b)
{
    struct vgpu_worker_req q = { .type = VGPU_WMSG_HEALTH };
    struct vgpu_worker_info_reply rep;

    if (pthread_mutex_trylock(&b->lock) != 0) {
        return;
    }
    /* A failure is left to the next request, which notices and restarts. */
    if (b->fd >= 0 && chan_call(b, &q, -1, &rep, sizeof(rep), WORKER_HEALTH_MS) == 0) {
        rep.text[sizeof(rep.text) - 1] = '\0';
        b->info = rep.info;
        snprintf(b->health, sizeof(b->health), "%s", rep.text);
        publish(b);
    }
    pthread_mutex_unlock(&b->lock);
}

static void proxy_gpu_info(struct vgpu_backend *b, struct vgpu_gpu_info *out)
{
    refresh(b);
    pthread_mutex_lock(&b->cache_lock);
    *out = b->cache_info;
    pthread_mutex_unlock(&b->cache_lock);
}

static void proxy_health(struct vgpu_backend *b, char *buf, unsigned len)
{
    refresh(b);
    pthread_mutex_lock(&b->cache_lock);
    snprintf(buf, len, "%s", b->cache_line);
    pthread_mutex_unlock(&b->cache_lock);
}

const struct vgpu_backend_ops vgpu_backend_cuda = {
    .name = "cuda",
    .kind = VGPU_BACKEND_CUDA,
    .init = proxy_init,
    .fini = proxy_fini,
    .session_open = proxy_session_open,
    .session_close = proxy_session_close,
    .execute = proxy_execute,
    .gpu_info = proxy_gpu_info,
    .health = proxy_health,
    /* Not SGEMM: every part would copy all of B to the device again. */
    .split_ops = ((1u << VGPU_OP_COUNT) - 1) & ~(1u << VGPU_OP_SGEMM),
};

/* ------------------------------------------------------------------------
 * Tests and statistics
 * ------------------------------------------------------------------------ */

void vgpu_cuda_proxy_stats(struct vgpu_backend *b, struct vgpu_cuda_proxy_stats *out)
{
    pthread_mutex_lock(&b->lock);
    out->pid = b->fd >= 0 ? (int)b->pid : 0;
    out->restarts = b->restarts;
    out->sessions = b->nsessions;
    pthread_mutex_unlock(&b->lock);
}

int vgpu_cuda_proxy_test(struct vgpu_backend *b, struct vgpu_backend_session *s,
                         uint32_t kind, uint32_t arg)
{
    struct vgpu_worker_req q;
    uint64_t result = 0;

    memset(&q, 0, sizeof(q));
    q.type = VGPU_WMSG_TEST;
    q.vm_id = s->vm_id;
    q.arg = kind;
    q.size = arg;
    return proxy_call(b, s, &q, &result);
}
