/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The exported CUDA backend: a proxy that never calls CUDA itself. The engine
 * (engine.c) runs in worker processes (worker.c), the mediator's own
 * binary exec'ed with VGPU_WORKER_ARG: one per VM, so every VM has its own
 * CUDA context (its own GPU address space: a guest's kernels cannot reach
 * another VM's memory), its faults end only its own worker, and the driver
 * time-slices the VMs' contexts, so one VM's long request does not hold up
 * another's. After a sticky GPU error, a request past its deadline whose
 * kernel may still run, a broken channel or a worker that does not answer
 * within the request timeout plus a grace period, the proxy kills that VM's
 * worker, spawns a new one and re-opens the VM's memory from the memfd it
 * keeps. NVIDIA documents that a process which hit cudaErrorIllegalAddress
 * and similar must be terminated and relaunched; an in-process
 * cudaDeviceReset was measured on an H100 not to bring it back.
 *
 * A VM's worker is started, and the VM's memory registered in it, by a
 * thread of its own right after the VM attaches: attaching (on the
 * mediator's I/O thread) never waits for a CUDA context, and the VM's first
 * request finds it ready (it waits on s->lock if not). One worker started at
 * init (it proves the GPU usable and reports its properties) is kept as a
 * spare and given to the first VM.
 *
 * Concurrency: per VM, s->lock is held for each round trip with its worker
 * (the scheduler runs at most one request per VM anyway); b->lock guards the
 * session list, the spare and the totals, and is never held across a round
 * trip.
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

#include "worker.h"
#ifdef VGPU_CUDA_TESTING
#include "cuda_testing.h"
#endif

extern char **environ;

#define WORKER_FD            3         /* the channel's number in the worker */
#define WORKER_INIT_MS       120000u   /* CUDA context, kernels, cuBLAS */
#define WORKER_CTL_MS        30000u    /* OPEN/CLOSE (cudaHostRegister of GiBs) */
#define WORKER_HEALTH_MS     1000u
#define WORKER_GRACE_MS      5000u     /* past request_timeout_ms before SIGKILL */
#define WORKER_BYE_MS        2000u
#define RESTART_BACKOFF_MIN_MS 100u
#define RESTART_BACKOFF_MAX_MS 10000u
#define MAX_GPUS             64u

#ifdef VGPU_CUDA_TESTING
static const char *worker_exe = "/proc/self/exe";
#else
static const char *const worker_exe = "/proc/self/exe";
#endif
static uint64_t spin_cap_ns;

/* One worker process and its channel. */
struct worker {
    int      fd;                        /* -1: no worker */
    pid_t    pid;
    unsigned failed_spawns;             /* in a row */
    uint64_t next_spawn_ns;             /* back-off after failed spawns */
    struct vgpu_spin spin;              /* waiting for EXEC replies */
    struct vgpu_gpu_info info;          /* from READY / HEALTH */
    char     health[VGPU_WORKER_TEXT];
    char     why[VGPU_WORKER_TEXT];     /* why the last spawn failed */
};

struct vgpu_backend_session {
    struct vgpu_backend *b;
    struct vgpu_backend_session *next;  /* b->sessions */
    bool     starter_live;              /* a thread started the worker, ends it */
    bool     closing;                   /* under lock: the VM is gone */
    pthread_cond_t closing_cond;
    pthread_mutex_t lock;               /* w and open */
    struct worker w;
    uint64_t restarts;
    uint32_t epoch0;                    /* first context epoch (random): a restarted
                                         * mediator's handles differ from the last one's */
    int      gpu;                       /* the device ordinal its worker uses */
    uint32_t key;
    uint32_t vm_id;
    uint64_t size;
    int      fd;                        /* our dup of the VM's memfd */
    uint8_t *base;                      /* the mediator's mapping (sanity check) */
    bool     open;                      /* open in the current worker */
};

struct vgpu_backend {
    struct vgpu_backend_config cfg;

    pthread_mutex_t lock;               /* everything below */
    struct worker spare;                /* started at init on cfg.gpu_index, for a VM there */
    unsigned ngpus;                     /* VMs are placed on GPUs [0, ngpus) */
    struct vgpu_backend_session *sessions;
    unsigned nsessions;
    uint32_t next_key;
    uint64_t restarts;                  /* of every VM's worker */
    unsigned starters;                  /* session_starter() threads alive */
    pthread_cond_t starters_cond;
    struct vgpu_gpu_info info;          /* the latest READY / HEALTH of any worker */
    char     health[VGPU_WORKER_TEXT];
    char     why[VGPU_WORKER_TEXT];     /* why the latest spawn failed */
};

/* The config file's [gpu N] use = no. */
static bool gpu_unused(const struct vgpu_backend *b, int gpu)
{
    return gpu >= 0 && gpu < 64 && (b->cfg.gpu_unused >> gpu) & 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vgpu_cuda_proxy_set_spin_ns(uint64_t ns)
{
    spin_cap_ns = ns;
}

/* ------------------------------------------------------------------------
 * Channel
 * ------------------------------------------------------------------------ */

/* q, then len bytes of payload (may be 0), as one message. */
static int chan_send_payload(int fd, const struct vgpu_worker_req *q, int pass_fd,
                             const void *payload, size_t len)
{
    struct iovec iov[2] = { { .iov_base = (void *)q, .iov_len = sizeof(*q) },
                            { .iov_base = (void *)payload, .iov_len = len } };
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
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
    return n == (ssize_t)(sizeof(*q) + len) ? 0 : -EPIPE;
}

static int chan_send(int fd, const struct vgpu_worker_req *q, int pass_fd)
{
    return chan_send_payload(fd, q, pass_fd, NULL, 0);
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
static int chan_call(struct worker *w, const struct vgpu_worker_req *q, int pass_fd,
                     void *reply, size_t len, uint32_t timeout_ms)
{
    int r;

    if (w->fd < 0) {
        return -EPIPE;
    }
    r = chan_send(w->fd, q, pass_fd);
    if (r < 0) {
        return r == -ECONNRESET ? -EPIPE : r;
    }
    return chan_recv(w->fd, reply, len, timeout_ms, NULL);
}

/* ------------------------------------------------------------------------
 * Worker lifetime
 * ------------------------------------------------------------------------ */

static void worker_init(struct worker *w)
{
    memset(w, 0, sizeof(*w));
    w->fd = -1;
    vgpu_spin_init(&w->spin, spin_cap_ns);
}

/* Ends the worker and reaps it. graceful: ask first (BYE), else SIGKILL at
 * once (its CUDA state is useless, or it does not answer). */
static void worker_stop(struct worker *w, bool graceful)
{
    uint64_t deadline;
    int status;

    if (w->fd >= 0 && graceful) {
        struct vgpu_worker_req q = { .type = VGPU_WMSG_BYE };
        (void)chan_send(w->fd, &q, -1);
    }
    if (w->fd >= 0) {
        close(w->fd);   /* EOF also ends a worker that missed the BYE */
        w->fd = -1;
    }
    if (w->pid <= 0) {
        return;
    }
    deadline = now_ns() + (graceful ? WORKER_BYE_MS * 1000000ull : 0);
    while (now_ns() < deadline) {
        struct timespec ts = { .tv_nsec = 2000000 };
        pid_t r = waitpid(w->pid, &status, WNOHANG);

        if (r == w->pid || (r < 0 && errno != EINTR)) {
            w->pid = 0;
            return;
        }
        nanosleep(&ts, NULL);
    }
    kill(w->pid, SIGKILL);
    while (waitpid(w->pid, &status, 0) < 0 && errno == EINTR) {
    }
    w->pid = 0;
}

/* Starts a worker on GPU gpu and waits for READY. 0, or -errno with w->why
 * set. *count (may be NULL): the GPUs its runtime sees. */
static int worker_spawn(const struct vgpu_backend_config *cfg, int gpu, struct worker *w,
                        unsigned *count)
{
    struct vgpu_worker_req q = { .type = VGPU_WMSG_INIT, .size = w->spin.cap_ns };
    struct vgpu_worker_info_reply rep;
    posix_spawn_file_actions_t fa;
    char arg[32];
    char *argv[3];
    int sv[2], r;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        r = -errno;
        snprintf(w->why, sizeof(w->why), "socketpair: %s", strerror(-r));
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
        r = posix_spawn(&w->pid, worker_exe, &fa, NULL, argv, environ);
    }
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    if (r != 0) {
        w->pid = 0;
        close(sv[0]);
        snprintf(w->why, sizeof(w->why), "spawning %s: %s", worker_exe, strerror(r));
        return -r;
    }
    w->fd = sv[0];

    q.u.cfg = *cfg;
    q.u.cfg.gpu_index = gpu;
    memset(&rep, 0, sizeof(rep));
    r = chan_call(w, &q, -1, &rep, sizeof(rep), WORKER_INIT_MS);
    if (r < 0) {
        snprintf(w->why, sizeof(w->why), "GPU worker (pid %d) %s", (int)w->pid,
                 r == -ETIMEDOUT ? "did not start in time" : "died while starting");
        worker_stop(w, false);
        return -ENODEV;
    }
    if (rep.r.status < 0) {
        rep.text[sizeof(rep.text) - 1] = '\0';
        snprintf(w->why, sizeof(w->why), "%s", rep.text);
        worker_stop(w, true);
        return rep.r.status;
    }
    rep.text[sizeof(rep.text) - 1] = '\0';
    w->info = rep.info;
    snprintf(w->health, sizeof(w->health), "%s", rep.text);
    if (count) {
        *count = rep.device_count;
    }
    return 0;

fail_pair:
    close(sv[0]);
    close(sv[1]);
    snprintf(w->why, sizeof(w->why), "socketpair: %s", strerror(-r));
    return r;
}

/* Records what a worker of s said last, for gpu_info and health. */
static void note_worker(struct vgpu_backend *b, const struct worker *w, bool failed)
{
    pthread_mutex_lock(&b->lock);
    if (failed) {
        snprintf(b->why, sizeof(b->why), "%s", w->why);
    } else {
        b->info = w->info;
        snprintf(b->health, sizeof(b->health), "%s", w->health);
    }
    pthread_mutex_unlock(&b->lock);
}

/* Opens s in its current worker. 0 or -errno (-EPIPE: the worker is gone).
 * With s->lock. */
static int session_push(struct vgpu_backend_session *s)
{
    struct vgpu_worker_req q = { .type = VGPU_WMSG_OPEN, .key = s->key,
                                 .vm_id = s->vm_id, .size = s->size,
                                 .arg = ((s->epoch0 + (uint32_t)s->restarts) & 0xfu) |
                                        (s->restarts < 15 ? (uint32_t)s->restarts : 15u) << 4 };
    struct vgpu_worker_reply rep;
    int r;

    r = chan_call(&s->w, &q, s->fd, &rep, sizeof(rep), WORKER_CTL_MS);
    if (r < 0) {
        return r == -ETIMEDOUT ? -EPIPE : r;
    }
    s->open = rep.status == 0;
    return rep.status;
}

/*
 * Gives s a worker with its memory open: the spare if there is one (the
 * first VM), else a new one; kills the old one first when reason is set.
 * After failed spawns, waits RESTART_BACKOFF_* between attempts instead of
 * spinning: a request arriving meanwhile fails at once. With s->lock.
 */
static int worker_restart(struct vgpu_backend *b, struct vgpu_backend_session *s,
                          const char *reason)
{
    struct worker *w = &s->w;
    uint64_t now = now_ns();
    int r;

    if (w->pid > 0 || w->fd >= 0) {
        log_warn("cuda: vm %u: restarting its GPU worker (pid %d): %s", s->vm_id, (int)w->pid,
                 reason);
        worker_stop(w, false);
        s->restarts++;
        pthread_mutex_lock(&b->lock);
        b->restarts++;
        pthread_mutex_unlock(&b->lock);
    }
    s->open = false;
    if (now < w->next_spawn_ns) {
        return -EAGAIN;
    }
    pthread_mutex_lock(&b->lock);
    if (b->spare.fd >= 0 && s->gpu == b->cfg.gpu_index) {
        *w = b->spare;              /* started fine: no back-off to keep */
        worker_init(&b->spare);
        r = 0;
    } else {
        r = 1;
    }
    pthread_mutex_unlock(&b->lock);
    if (r) {
        r = worker_spawn(&b->cfg, s->gpu, w, NULL);
    }
    if (r < 0) {
        unsigned ms = RESTART_BACKOFF_MIN_MS << (w->failed_spawns < 7 ? w->failed_spawns : 7);

        if (ms > RESTART_BACKOFF_MAX_MS) {
            ms = RESTART_BACKOFF_MAX_MS;
        }
        w->failed_spawns++;
        w->next_spawn_ns = now_ns() + (uint64_t)ms * 1000000ull;
        log_error("cuda: vm %u: GPU worker start failed (%u in a row, next try in %u ms): %s",
                  s->vm_id, w->failed_spawns, ms, w->why);
        note_worker(b, w, true);
        return r;
    }
    w->failed_spawns = 0;
    w->next_spawn_ns = 0;
    note_worker(b, w, false);
    r = session_push(s);
    if (r < 0) {
        log_warn("cuda: vm %u: opening its memory in worker pid %d failed: %s", s->vm_id,
                 (int)w->pid, strerror(-r));
        if (r == -EPIPE) {
            worker_stop(w, false);
        }
        return r;
    }
    log_info("cuda: vm %u: GPU worker pid %d ready on GPU %d (restarts %llu)", s->vm_id,
             (int)w->pid, s->gpu, (unsigned long long)s->restarts);
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
    b->next_key = 1;
    worker_init(&b->spare);
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->starters_cond, NULL);

    /* The spare proves the GPU usable now, not at the first VM's request,
     * and says how many there are. */
    r = worker_spawn(&b->cfg, b->cfg.gpu_index, &b->spare, &b->ngpus);
    if (r < 0) {
        snprintf(proxy_init_why, sizeof(proxy_init_why), "%s", b->spare.why);
        r = r == -ENOMEM ? r : -ENODEV;
        goto err;
    }
    b->info = b->spare.info;
    snprintf(b->health, sizeof(b->health), "%s", b->spare.health);
    if (!b->cfg.all_gpus || b->ngpus < 1) {
        b->ngpus = 1;       /* only cfg.gpu_index */
    } else if (b->ngpus > MAX_GPUS) {
        b->ngpus = MAX_GPUS;
    }
    if (b->ngpus > 1) {
        unsigned usable = 0;

        for (unsigned g = 0; g < b->ngpus; g++) {
            usable += !gpu_unused(b, (int)g);
        }
        if (!usable) {
            snprintf(proxy_init_why, sizeof(proxy_init_why),
                     "every GPU is set aside by the config file ([gpu N] use = no)");
            r = -ENODEV;
            goto err_spare;
        }
    }
    *out = b;
    return 0;

err_spare:
    worker_stop(&b->spare, true);
err:
    *why = proxy_init_why;
    pthread_cond_destroy(&b->starters_cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
    return r;
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
    worker_stop(&b->spare, true);
    /* Every VM's worker is gone when its starter thread is. */
    pthread_mutex_lock(&b->lock);
    while (b->starters) {
        pthread_cond_wait(&b->starters_cond, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    pthread_cond_destroy(&b->starters_cond);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* s is off every list and nothing uses it any more. */
static void session_free(struct vgpu_backend_session *s)
{
    worker_stop(&s->w, true);
    pthread_cond_destroy(&s->closing_cond);
    pthread_mutex_destroy(&s->lock);
    close(s->fd);
    free(s);
}

/*
 * Starts the VM's worker, waits for the VM to go, then ends the worker and
 * frees s. Two reasons it lives that long: the worker has PR_SET_PDEATHSIG,
 * which fires when the *thread* that spawned it ends (later restarts come
 * from executor threads, which live as long as the mediator); and ending a
 * worker waits for the driver to tear its context down (0.2-0.8 s for GiBs
 * registered, measured on an H200), which must not hold the I/O thread that
 * closes the session.
 */
static void *session_starter(void *arg)
{
    struct vgpu_backend_session *s = arg;
    struct vgpu_backend *b = s->b;

    pthread_mutex_lock(&s->lock);
    if (s->w.fd < 0 && !s->closing) {
        /* A failure is retried by the first request, after the back-off. */
        (void)worker_restart(b, s, NULL);
    }
    while (!s->closing) {
        pthread_cond_wait(&s->closing_cond, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    session_free(s);
    pthread_mutex_lock(&b->lock);
    b->starters--;
    pthread_cond_broadcast(&b->starters_cond);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

/*
 * The GPU for a new VM, with b->lock: the one it is pinned to (the config
 * file's "vm ... gpu N") if this mediator uses it, else the one with the
 * fewest VMs (the lowest ordinal on a tie), or cfg.gpu_index when VMs are
 * not spread.
 */
static int place(struct vgpu_backend *b, uint32_t vm_id, int pinned)
{
    unsigned count[MAX_GPUS] = { 0 }, best = 0;

    if (pinned >= 0) {
        if (((b->ngpus > 1 && (unsigned)pinned < b->ngpus) ||
             (b->ngpus <= 1 && pinned == b->cfg.gpu_index)) && !gpu_unused(b, pinned)) {
            return pinned;
        }
        log_warn("cuda: vm %u is pinned to GPU %d, which this mediator does not use (%s);"
                 " placing it by load", vm_id, pinned,
                 gpu_unused(b, pinned) ? "[gpu] use = no" :
                 b->ngpus > 1 ? "no such GPU" : "--gpu restricts it to one");
    }
    if (b->ngpus <= 1) {
        return b->cfg.gpu_index;
    }
    for (struct vgpu_backend_session *s = b->sessions; s; s = s->next) {
        if (s->gpu >= 0 && (unsigned)s->gpu < b->ngpus) {
            count[s->gpu]++;
        }
    }
    best = b->ngpus;
    for (unsigned g = 0; g < b->ngpus; g++) {
        if (!gpu_unused(b, (int)g) && (best == b->ngpus || count[g] < count[best])) {
            best = g;
        }
    }
    return best < b->ngpus ? (int)best : b->cfg.gpu_index;    /* all set aside: init refused */
}

/* Records the VM, places it on a GPU and starts its worker in the background. */
static int proxy_session_open(struct vgpu_backend *b, uint32_t vm_id, int gpu,
                              const struct vgpu_shm_view *shm,
                              struct vgpu_backend_session **out)
{
    struct vgpu_backend_session *s;

    if (shm->fd < 0) {
        return -EBADF;      /* the worker maps the memory from the fd */
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->fd = fcntl(shm->fd, F_DUPFD_CLOEXEC, 0);
    if (s->fd < 0) {
        int r = -errno;

        free(s);
        return r;
    }
    s->b = b;
    s->vm_id = vm_id;
    s->size = shm->size;
    s->base = shm->base;
    s->epoch0 = (uint32_t)(now_ns() >> 10);
    worker_init(&s->w);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->closing_cond, NULL);
    pthread_mutex_lock(&b->lock);
    s->gpu = place(b, vm_id, gpu);
    {
        /* Without the thread the first request starts the worker. */
        pthread_attr_t at;
        pthread_t th;

        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        s->starter_live = pthread_create(&th, &at, session_starter, s) == 0;
        pthread_attr_destroy(&at);
        b->starters += s->starter_live;
    }
    s->key = b->next_key++;
    s->next = b->sessions;
    b->sessions = s;
    b->nsessions++;
    pthread_mutex_unlock(&b->lock);
    *out = s;
    return 0;
}

/* Ends the VM's worker (in the background): everything it held on the GPU
 * goes with its context. */
static void proxy_session_close(struct vgpu_backend *b, struct vgpu_backend_session *s)
{
    struct vgpu_backend_session **pp;

    if (!s) {
        return;
    }
    pthread_mutex_lock(&b->lock);
    for (pp = &b->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            b->nsessions--;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (!s->starter_live) {
        session_free(s);
        return;
    }
    pthread_mutex_lock(&s->lock);
    s->closing = true;      /* its starter ends the worker and frees s */
    pthread_cond_signal(&s->closing_cond);
    pthread_mutex_unlock(&s->lock);
}

/* The status of a request that found no worker to run it: worker_restart()'s
 * -errno, mapped once here (the proxy's execute is where statuses are made). */
static int no_worker_status(int r)
{
    return r == -ENOMEM ? VGPU_S_NO_MEMORY : VGPU_S_INTERNAL;
}

/*
 * One request in the VM's worker. The restart after it (if any) happens
 * before the lock is dropped, so the VM's next request finds a fresh worker.
 * Returns the request's status.
 */
static int proxy_call(struct vgpu_backend *b, struct vgpu_backend_session *s,
                      struct vgpu_worker_req *q, uint64_t *result)
{
    struct vgpu_worker_reply rep;
    uint32_t timeout_ms = 0;
    int r, st;

    q->key = s->key;
    pthread_mutex_lock(&s->lock);
    if (s->w.fd < 0 || !s->open) {
        r = worker_restart(b, s, s->w.fd < 0 ? NULL : "its memory is not open in it");
        if (r < 0) {
            pthread_mutex_unlock(&s->lock);
            return no_worker_status(r);
        }
    }
    if (b->cfg.request_timeout_ms) {
        timeout_ms = b->cfg.request_timeout_ms + WORKER_GRACE_MS;
    }
    r = chan_send(s->w.fd, q, -1);
    if (r < 0) {
        /* Not delivered: the worker died between requests (killed, driver
         * crash). Nothing of this request ran, so it runs on a new one. */
        r = worker_restart(b, s, "the worker is gone");
        if (r < 0) {
            pthread_mutex_unlock(&s->lock);
            return no_worker_status(r);
        }
        r = chan_send(s->w.fd, q, -1);
    }
    if (r == 0) {
        r = chan_recv(s->w.fd, &rep, sizeof(rep), timeout_ms, &s->w.spin);
    }
    if (r == -ETIMEDOUT) {
        /* Its kernel may still be writing into the VM's memory: only the
         * end of the process stops it. */
        worker_restart(b, s, "no answer within the request timeout");
        st = VGPU_S_TIMEOUT;
    } else if (r < 0) {
        worker_restart(b, s, "the worker died");
        st = VGPU_S_GPU_FAULT;
    } else {
        st = rep.status;
        *result = rep.result;
        if (rep.flags & VGPU_WREPLY_RESTART) {
            worker_restart(b, s, st == VGPU_S_TIMEOUT ? "request past its deadline"
                                                      : "sticky CUDA error");
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (st < 0 || st >= VGPU_S_STATUS_COUNT) {
        st = VGPU_S_INTERNAL;
    }
    return st;
}

/*
 * Driver operations that complete as soon as the worker has them: they only
 * queue work on a stream, touch no shared memory once the proxy has copied a
 * launch's parameters, and CUDA itself reports their errors later. The
 * worker keeps a failure for the queue's next sync or query (cu_ops.h), so
 * a stream of launches costs one message each, one way.
 */
static bool completes_queued(uint16_t opcode)
{
    return opcode == VGPU_OP_CU_LAUNCH || opcode == VGPU_OP_CU_MEMSET ||
           opcode == VGPU_OP_CU_EVENT_RECORD || opcode == VGPU_OP_CU_STREAM_WAIT_EVENT ||
           opcode == VGPU_OP_CU_LAUNCH_ATTRS;
}

/* Sends q (and a launch's parameters) with no reply to wait for. The
 * worker reads requests in order, so a later sync sees everything before.
 * Returns the request's status. */
static int proxy_send_async(struct vgpu_backend *b, struct vgpu_backend_session *s,
                            struct vgpu_worker_req *q)
{
    const struct vgpu_args_cu_launch *a = &q->u.sqe.args.cu_launch;
    const void *params = NULL;
    int r;

    q->type = VGPU_WMSG_EXEC_ASYNC;
    q->key = s->key;
    if (q->u.sqe.opcode == VGPU_OP_CU_LAUNCH && a->params_len) {
        /* Validated against the data area; copied now, so the guest may reuse
         * the buffer as soon as this request completes. */
        if (a->params_len > VGPU_WORKER_PAYLOAD_MAX || a->params_off > s->size ||
            a->params_len > s->size - a->params_off) {
            return VGPU_S_INTERNAL;
        }
        params = s->base + a->params_off;
        q->size = a->params_len;
    }
    pthread_mutex_lock(&s->lock);
    if (s->w.fd < 0 || !s->open) {
        r = worker_restart(b, s, s->w.fd < 0 ? NULL : "its memory is not open in it");
        if (r < 0) {
            pthread_mutex_unlock(&s->lock);
            return no_worker_status(r);
        }
    }
    r = chan_send_payload(s->w.fd, q, -1, params, (size_t)q->size);
    if (r < 0) {
        /* The worker is gone with whatever it had queued: the VM's next
         * request starts a new one, and its handles are context-lost. */
        worker_restart(b, s, "the worker is gone");
        pthread_mutex_unlock(&s->lock);
        return VGPU_S_GPU_FAULT;
    }
    pthread_mutex_unlock(&s->lock);
    return VGPU_S_OK;
}

static int proxy_execute(struct vgpu_backend *b, struct vgpu_backend_session *s,
                         uint32_t queue, const struct vgpu_op *op, const struct vgpu_sqe *sqe,
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
    q.arg = queue;
    q.u.sqe = *sqe;
    if (completes_queued(sqe->opcode)) {
        return proxy_send_async(b, s, &q);
    }
    return proxy_call(b, s, &q, result);
}

/* Asks one idle worker (the spare, else a VM's whose lock is free) for fresh
 * properties and health; never waits for a GPU request. */
static void refresh(struct vgpu_backend *b)
{
    struct vgpu_worker_req q = { .type = VGPU_WMSG_HEALTH };
    struct vgpu_worker_info_reply rep;
    struct vgpu_backend_session *s, *locked = NULL;
    int r = -1;

    pthread_mutex_lock(&b->lock);
    if (b->spare.fd >= 0) {
        /* A failure is left to whoever takes the spare. */
        r = chan_call(&b->spare, &q, -1, &rep, sizeof(rep), WORKER_HEALTH_MS);
    } else {
        for (s = b->sessions; s; s = s->next) {
            if (pthread_mutex_trylock(&s->lock) == 0) {
                if (s->w.fd >= 0) {
                    locked = s;     /* closing it waits for its lock */
                    break;
                }
                pthread_mutex_unlock(&s->lock);
            }
        }
    }
    pthread_mutex_unlock(&b->lock);
    if (locked) {
        /* A failure is left to the VM's next request, which restarts. */
        r = chan_call(&locked->w, &q, -1, &rep, sizeof(rep), WORKER_HEALTH_MS);
        pthread_mutex_unlock(&locked->lock);
    }
    if (r == 0) {
        rep.text[sizeof(rep.text) - 1] = '\0';
        pthread_mutex_lock(&b->lock);
        b->info = rep.info;
        snprintf(b->health, sizeof(b->health), "%s", rep.text);
        pthread_mutex_unlock(&b->lock);
    }
}

static void proxy_gpu_info(struct vgpu_backend *b, struct vgpu_gpu_info *out)
{
    refresh(b);
    pthread_mutex_lock(&b->lock);
    *out = b->info;
    pthread_mutex_unlock(&b->lock);
}

static void proxy_health(struct vgpu_backend *b, char *buf, unsigned len)
{
    struct vgpu_backend_session *s;
    unsigned workers = 0;

    refresh(b);
    pthread_mutex_lock(&b->lock);
    for (s = b->sessions; s; s = s->next) {
        workers += s->w.fd >= 0;    /* a hint: read without s->lock */
    }
    if (workers == 0 && b->spare.fd < 0 && b->why[0]) {
        snprintf(buf, len, "cuda (no worker, restarts %llu): last start failed: %s",
                 (unsigned long long)b->restarts, b->why);
    } else if (b->ngpus > 1) {
        unsigned per[MAX_GPUS] = { 0 };
        char gpus[8 * MAX_GPUS] = "";
        size_t off = 0;

        for (s = b->sessions; s; s = s->next) {
            per[s->gpu >= 0 && (unsigned)s->gpu < b->ngpus ? s->gpu : 0]++;
        }
        for (unsigned g = 0; g < b->ngpus && off < sizeof(gpus); g++) {
            off += (size_t)snprintf(gpus + off, sizeof(gpus) - off, "%s%u:%u", g ? " " : "", g,
                                    per[g]);
        }
        snprintf(buf, len, "cuda (%u VM worker(s)%s, VMs per GPU %s, restarts %llu): %s",
                 workers, b->spare.fd >= 0 ? " + 1 spare" : "", gpus,
                 (unsigned long long)b->restarts, b->health);
    } else {
        snprintf(buf, len, "cuda (%u VM worker(s)%s, restarts %llu): %s", workers,
                 b->spare.fd >= 0 ? " + 1 spare" : "", (unsigned long long)b->restarts,
                 b->health);
    }
    pthread_mutex_unlock(&b->lock);
}

static int proxy_session_gpu(struct vgpu_backend *b, struct vgpu_backend_session *s)
{
    (void)b;
    return s->gpu;      /* set once at open */
}

static int proxy_session_pid(struct vgpu_backend *b, struct vgpu_backend_session *s)
{
    (void)b;
    /* Written under s->lock, read without: a request may hold it for long. */
    return __atomic_load_n(&s->w.pid, __ATOMIC_RELAXED);
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
    .session_gpu = proxy_session_gpu,
    .session_pid = proxy_session_pid,
    /* Not SGEMM: every part would copy all of B to the device again. */
    .split_ops = ((1ull << VGPU_OP_CU_FIRST) - 1) & ~(1ull << VGPU_OP_SGEMM),
    /* Each VM has its own worker and context: requests of several VMs can
     * run at once, time-sliced by the driver; only one is admitted by weight. */
    .fair_executors = 1,
};

/* ------------------------------------------------------------------------
 * Test hooks (cuda_testing.h): only in the test executables' build
 * ------------------------------------------------------------------------ */

#ifdef VGPU_CUDA_TESTING
void vgpu_cuda_proxy_set_exe(const char *path)
{
    worker_exe = path;
}

void vgpu_cuda_proxy_stats(struct vgpu_backend *b, struct vgpu_backend_session *s,
                           struct vgpu_cuda_proxy_stats *out)
{
    pthread_mutex_lock(&b->lock);
    out->restarts_all = b->restarts;
    out->sessions = b->nsessions;
    pthread_mutex_unlock(&b->lock);
    out->pid = 0;
    out->restarts = 0;
    out->gpu = s ? s->gpu : -1;
    if (s) {
        pthread_mutex_lock(&s->lock);
        out->pid = s->w.fd >= 0 ? (int)s->w.pid : 0;
        out->restarts = s->restarts;
        pthread_mutex_unlock(&s->lock);
    }
}
#endif /* VGPU_CUDA_TESTING */
