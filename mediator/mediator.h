/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-mediator internals: the daemon state, one session per connection, and
 * the functions the modules call on each other.
 *
 *   main.c      options, backend selection, signals, --status
 *   config.c    command line and the per-VM config file
 *   server.c    listening socket, epoll loop, message parsing, HELLO
 *   ivshmem.c   the ivshmem server mode: QEMU's stock ivshmem-doorbell device
 *   session.c   shared-memory rings: resume, take, complete, teardown
 *   executor.c  executor threads and the inline fast path
 *   sched.c     the scheduler (pure)
 *   stats.c     histograms and the status table
 *   metrics.c   Prometheus /metrics over HTTP (its own thread; takes m->lock)
 *
 * Locking: one mutex, m->lock, guards the scheduler, every session's ring
 * state, reference counts, statistics and the session list. Requests execute
 * with the lock dropped; a session is kept alive by a reference held for each
 * executing request, so a disconnect never frees memory under a backend.
 * Sockets: only the I/O thread reads; any thread may send, under s->tx_lock.
 */
#ifndef VGPU_MEDIATOR_H
#define VGPU_MEDIATOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "vgpu/abi.h"
#include "vgpu/protocol.h"
#include "backend.h"
#include "log.h"
#include "op.h"
#include "sched.h"
#include "stats.h"

/* ---- configuration ---- */

#define VGPU_MAX_VM_OVERRIDES 1024

struct vgpu_vm_override {
    bool     by_id;
    uint32_t vm_id;
    char     name[64];
    int32_t  priority;   /* -1: keep the device's */
    int32_t  weight;     /* -1: keep the device's */
    int32_t  gpu;        /* -1: the backend places the VM */
    /* [vm] ivshmem-socket: the VM comes through QEMU's stock ivshmem-doorbell
     * device on this socket (ivshmem.c), with this identity; "": none. */
    char     ivshmem_socket[108];
    uint64_t shm_size;   /* shm-size: its memory, a power of two (default 64 MiB) */
    bool     has_vm_id;  /* vm-id given (a section named by id has it) */
};

struct vgpu_config {
    const char *socket_path;
    const char *admin_socket_path;  /* read-only admin socket; NULL: none */
    char        admin_socket_buf[108];  /* the default, derived from socket_path */
    unsigned    admin_socket_mode;  /* default 0666 */
    const char *metrics_listen;     /* ADDR:PORT of /metrics; NULL: off */
    const char *backend;          /* "auto", "cuda", "cpu" */
    unsigned    executors;        /* 0: backend default */
    unsigned    max_inflight;     /* per VM */
    unsigned    max_sessions;
    unsigned    aging_ms;
    unsigned    quantum_us;
    unsigned    inline_max_us;    /* estimated cost below which requests run inline */
    int         spin_us;          /* cap of the adaptive spins; -1: auto (vgpu_spin_auto_us) */
    uint64_t    mem_quota_mib;    /* 0: no limit */
    unsigned    timeout_ms;       /* 0: no limit */
    unsigned    slice_us;         /* run longer requests in parts of about this long */
    unsigned    max_wait_us;      /* a request waiting this long may run beside others */
    unsigned    hello_timeout_ms; /* a connection must say HELLO/STATS_REQ by then, and an
                                   * admin connection its next STATS_REQ */
    int         gpu_index;
    bool        gpu_given;        /* --gpu: only that GPU; else every visible one */
    uint64_t    gpu_unused;       /* config [gpu N] use = no: bit N */
    const char *config_file;
    int         log_level;
    bool        status;           /* --status: query a running daemon */
    /* From config_file; replaced by a reload. I/O thread only, and m->lock
     * held while replaced. */
    struct vgpu_vm_override *overrides;
    unsigned    n_overrides;
    const char *check_config;     /* --check-config FILE: validate it and exit */
    /* An INI config file's [mediator] settings as "--key=value" arguments
     * (cfg's strings point into them) and as "key=value\n" text, to tell a
     * reload which of them changed. Owned; freed by vgpu_config_free(). */
    char      **file_args;
    unsigned    n_file_args;
    char       *file_settings;
    char       *file_settings_seen; /* the same, as the last (re)load found them */
};

struct vgpu_mediator;

/* Parses argv into cfg (defaults first). Returns 0, 1 for --help (printed),
 * or -EINVAL after printing the reason to stderr. */
int vgpu_config_parse_args(struct vgpu_config *cfg, int argc, char **argv);
/* The admin socket's default path beside the VM socket: NAME.sock ->
 * NAME-ro.sock, else PATH-ro. 0 or -ENAMETOOLONG (len bytes, NUL included). */
int vgpu_config_admin_default(const char *socket_path, char *buf, size_t len);
/* "ADDR:PORT", "[ADDR6]:PORT" or ":PORT" (every address), numeric only, as
 * --metrics-listen takes it. 0 or -EINVAL. */
int vgpu_config_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len);
/* Reads the VM settings of an INI file ([vm ...] sections; [mediator] is
 * checked and kept in file_settings_seen) or of "vm <name|id> priority P
 * weight W gpu N" lines. 0 or -errno (logged). */
int vgpu_config_load_file(struct vgpu_config *cfg, const char *path);
/*
 * SIGHUP (I/O thread, lock not held): reads cfg.config_file again and, when
 * the whole file parses, replaces the overrides and re-applies them to every
 * connected VM, logging each change. Otherwise the settings in use stay.
 * 0, or -errno of the failed read (logged).
 */
int vgpu_config_reload(struct vgpu_mediator *m);
void vgpu_config_free(struct vgpu_config *cfg);
/* --check-config: parses path as the daemon would; prints the verdict. 0 or -errno. */
int vgpu_config_check(const char *path, const char *argv0);
/* The GPU the matching override pins the VM to, or -1. */
int vgpu_config_gpu(const struct vgpu_config *cfg, uint32_t vm_id, const char *name);
/* Applies the matching override, if any, to *prio and *weight. */
void vgpu_config_apply(const struct vgpu_config *cfg, uint32_t vm_id, const char *name,
                       uint32_t *prio, uint32_t *weight);

/* ---- sessions ---- */

enum vgpu_conn_state {
    VGPU_CONN_NEW,      /* connected, nothing said yet */
    VGPU_CONN_ADMIN,    /* sent STATS_REQ or STATS_QUERY */
    VGPU_CONN_ACTIVE,   /* HELLO accepted: a device session */
    VGPU_CONN_CLOSED,   /* torn down; memory lives until the last reference */
};

#define VGPU_RX_MAX_FDS 4
#define VGPU_MAX_PARTS  1024   /* a request runs in at most this many parts */
#define VGPU_RX_BUF     256  /* the largest message we accept is 144 bytes */

struct vgpu_session;

struct vgpu_req {
    struct vgpu_sched_req sr;
    struct vgpu_session *sess;
    struct vgpu_sqe sqe;            /* private copy: the only thing validated and run */
    const struct vgpu_op *op;       /* NULL when the opcode is unknown */
    int32_t  status;                /* pre-set failure, or -1: execute */
    uint32_t queue;                 /* the queue pair it was taken from */
    uint32_t index;                 /* SQ index it was taken from */
    bool     tried;                 /* a wait whose short try (VGPU_EXEC_TRY) gave up */
    uint64_t bytes_in, bytes_out;
    /* A long request runs in nparts parts (op->part), one at a time. */
    uint32_t part, nparts;
    uint64_t result;                /* results of the parts run so far (op->combine) */
    uint64_t exec_ns;               /* their execution time */
    uint64_t pick_exec_ns;          /* of that, since the scheduler last picked it */
    uint64_t first_pick_ns;         /* 0 until the first part has run */
    uint64_t queue_ns;              /* enqueue to first pick */
};

/*
 * One queue pair of a session (ABI 1.2): its rings in shared memory and the
 * host's own copies of its indexes; shared memory is only written. Queue 0
 * is the Phase 1 ring at the start of BAR2, queue q >= 1 lies at
 * VGPU_SHM_QUEUE_OFFSET(shm_size, q).
 */
struct vgpu_queue {
    struct vgpu_shm_ctrl *ctrl;
    struct vgpu_sqe *sq;
    struct vgpu_cqe *cq;
    uint32_t sq_head;       /* next request to complete */
    uint32_t sq_next;       /* next request to take */
    uint32_t cq_tail;
    uint32_t taken;         /* taken, not completed */
    /* Resume found this request marked VGPU_HOST_EXEC_UNSAFE: it completes
     * as interrupted instead of running again. */
    bool     interrupted_pending;
    uint32_t interrupted_index;
    struct vgpu_req reqs[VGPU_SQ_ENTRIES];   /* indexed by SQ slot */
};

struct vgpu_session {
    struct vgpu_mediator *m;
    struct vgpu_session *prev, *next;   /* m->conns */
    struct vgpu_session *close_next;    /* closed during this epoll batch */
    int      fd;
    uint32_t id;
    enum vgpu_conn_state state;
    bool     read_only;     /* accepted on the admin socket: never a device */
    int      refs;
    uint64_t connect_ns;    /* and, for an admin connection, its last STATS_REQ */

    /* receive side (I/O thread only) */
    uint8_t  rx[VGPU_RX_BUF];
    uint32_t rx_len;
    int      rx_fds[VGPU_RX_MAX_FDS];
    unsigned n_rx_fds;
    bool     rx_fd_overflow;

    pthread_mutex_t tx_lock;
    uint32_t tx_seq;

    /* The device's doorbell eventfd (HELLO's second fd), or -1: KICKs only. */
    int      doorbell_fd;

    /* identity; prio/weight as in effect, hello_* as the device asked (a
     * reload applies the config file to these again) */
    uint32_t vm_id, prio, weight;
    int32_t  gpu;                       /* the device ordinal it was placed on */
    uint32_t hello_prio, hello_weight;
    char     vm_name[64];

    /* shared memory */
    struct vgpu_shm_view shm;
    uint64_t data_end;      /* VGPU_SHM_DATA_END(shm.size, nq) */
    struct vgpu_backend_session *bsess;

    /* queue pairs; fairness between VMs is per session, a session's queues
     * are taken from round-robin */
    struct vgpu_queue *q;
    uint32_t nq;
    uint32_t rr_next;       /* the queue the next take starts with */
    uint32_t taken;         /* of all queues: taken, not completed */
    uint32_t max_inflight;  /* per VM, all queues together */
    /* The memory (identified by the memfd's device and inode) of a device
     * that reconnected while its previous session still had a request
     * executing: nothing is taken until that request has ended, or it and a
     * new request (a retry of the same work) would write the same memory. */
    uint64_t shm_dev, shm_ino;
    bool     shm_busy_wait;
    struct vgpu_session *busy_next;     /* m->busy */
    struct vgpu_ratelimit corrupt_rl;

    /* A VM served through QEMU's ivshmem-doorbell (ivshmem.c), or NULL. Its
     * completions are signalled on notify_fd (the guest's vector 0 eventfd)
     * instead of NOTIFY messages; nothing of this protocol goes on fd. */
    struct vgpu_ivshmem *ivshmem;
    int      notify_fd;

    struct vgpu_sched_entity ent;
    struct vgpu_vm_stats st;
};

/* ---- the daemon ---- */

#define VGPU_RECENT_CLOSED 16

struct vgpu_mediator {
    struct vgpu_config cfg;
    const struct vgpu_backend_ops *bops;
    struct vgpu_backend *backend;
    struct vgpu_gpu_info gpu;

    int listen_fd;
    int epoll_fd;
    int signal_fd;
    bool socket_bound;
    dev_t socket_dev;                   /* of the socket file bound: unlinked only */
    ino_t socket_ino;                   /* while the path still names it */
    int admin_fd;                       /* the read-only admin socket, or -1 */
    bool admin_bound;
    dev_t admin_dev;
    ino_t admin_ino;

    pthread_mutex_t lock;
    pthread_cond_t  work_cond;
    struct vgpu_sched sched;
    struct vgpu_session *conns;         /* all connections, NULL-terminated */
    struct vgpu_session *closing;       /* I/O thread: references to drop */
    struct vgpu_session *busy;          /* detached, a request still executing */
    unsigned nconns, nsessions;
    unsigned n_ro_conns;                /* of nconns, on the admin socket */
    uint32_t next_session_id;
    bool     stopping;

    pthread_t *exec_threads;
    unsigned   n_exec;
    unsigned   n_fair;                  /* executors [0, n_fair) pick freely */
    unsigned   exec_next_index;
    uint64_t   max_wait_ns;
    pthread_cond_t waited_cond;         /* the other executors sleep on it */
    bool       wait_queued;     /* a wait_only request was queued since the waiters
                                 * were last woken (lock held) */
    unsigned   n_exec_started;
    uint64_t   inline_max_ns;
    uint64_t   slice_ns;                /* 0: never split requests */
    /* Per opcode: measured / estimated execution time, 1/1024ths (EWMA), so
     * a request is cut into parts by what it will really take here. */
    uint32_t   cost_ratio[VGPU_OP_COUNT];
    uint64_t   spin_cap_ns;             /* executors' idle spin; 0: never */

    uint64_t start_ns;
    uint64_t sessions_opened, sessions_closed, conns_rejected, inline_runs, exec_runs;
    struct vgpu_vm_stats closed_st;     /* totals of every closed session */
    uint64_t closed_charged_ns;
    /* The last VGPU_RECENT_CLOSED closed sessions keep their own rows in the
     * status table, so a VM's figures outlive its connection. */
    struct vgpu_closed_row {
        uint32_t session_id, vm_id, prio, weight;
        int32_t  gpu;
        char     vm_name[64];
        uint64_t charged_ns;
        struct vgpu_vm_stats st;
    } recent_closed[VGPU_RECENT_CLOSED];
    unsigned recent_closed_next;        /* total ever recorded; slot = next % N */
    struct vgpu_ratelimit conn_rl;

    struct vgpu_ivshmem *ivshmem;       /* one per configured ivshmem socket */
    unsigned n_ivshmem;
};

/*
 * Adaptive spin before a blocking wait (executors, CUDA proxy and worker; see
 * "Spinning" in docs/architecture.md). A wake-up from a futex or a socket
 * costs tens of microseconds on each hop; a spin costs a core. So spin only
 * for a wait expected to be short: up to 1.5x the moving average of recent
 * waits, never beyond cap_ns. A miss halves the budget (a wait longer than
 * expected), a miss the full budget would have caught doubles it back.
 * Not thread-safe: one per waiter.
 */
#define VGPU_SPIN_MIN_NS 1000ull

struct vgpu_spin {
    uint64_t cap_ns;      /* 0: never spin */
    uint64_t budget_ns;   /* the next wait spins this long */
    uint64_t ewma_ns;     /* of recent waits, hits and misses */
};

static inline void vgpu_spin_init(struct vgpu_spin *sp, uint64_t cap_ns)
{
    sp->cap_ns = cap_ns;
    sp->budget_ns = cap_ns;
    sp->ewma_ns = 0;
}

/* After a wait of waited_ns; hit: it ended within the spin. */
static inline void vgpu_spin_update(struct vgpu_spin *sp, uint64_t waited_ns, bool hit)
{
    uint64_t target;

    if (!sp->cap_ns) {
        return;
    }
    if (waited_ns > 2 * sp->cap_ns) {
        waited_ns = 2 * sp->cap_ns;   /* an idle second must not dominate the average */
    }
    sp->ewma_ns = sp->ewma_ns ? (3 * sp->ewma_ns + waited_ns) / 4 : waited_ns;
    target = sp->ewma_ns + sp->ewma_ns / 2;
    if (target > sp->cap_ns) {
        target = sp->cap_ns;
    }
    if (hit) {
        sp->budget_ns = target > VGPU_SPIN_MIN_NS ? target : VGPU_SPIN_MIN_NS;
    } else if (waited_ns <= target) {
        sp->budget_ns = 2 * sp->budget_ns < target ? 2 * sp->budget_ns : target;
        if (sp->budget_ns < VGPU_SPIN_MIN_NS) {
            sp->budget_ns = VGPU_SPIN_MIN_NS;
        }
    } else {
        sp->budget_ns /= 2;
    }
}

static inline void vgpu_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* config.c: the default spin cap: 1000 us on >= 8 online CPUs, else 0. With
 * the client, executor, proxy and worker all spinning, 4 cores are busy per
 * VM stream; on fewer cores a spinner holds the core the thread it waits for
 * needs (2 cores: vector_add 2^10 p50 16 -> 300 us). */
unsigned vgpu_spin_auto_us(void);
/* The effective cap of cfg in ns. */
uint64_t vgpu_config_spin_ns(const struct vgpu_config *cfg);

/* server.c */
int  vgpu_server_open(struct vgpu_mediator *m);
int  vgpu_server_run(struct vgpu_mediator *m);   /* until SIGTERM/SIGINT */
void vgpu_server_close(struct vgpu_mediator *m);
/* Sends a whole message without blocking; -EAGAIN when the socket is full. */
int  vgpu_session_send(struct vgpu_session *s, const void *msg, uint32_t len);
void vgpu_session_notify(struct vgpu_session *s);
/* The status table (lock not held). Returns a malloc'ed string or NULL. */
char *vgpu_mediator_stats_text(struct vgpu_mediator *m, size_t *len);
/* Writes the status table to stderr (SIGUSR1, exit). */
void vgpu_server_dump_stats(struct vgpu_mediator *m);
/* For ivshmem.c (I/O thread): */
/* Unix socket helpers: bind+listen born with mode; unlink only our own file. */
int  vgpu_server_listen_unix(const char *path, mode_t mode, bool replace_live, int *fdp,
                             bool *bound, dev_t *dev, ino_t *ino);
void vgpu_server_unlink_own(const char *path, bool *bound, dev_t dev, ino_t ino);
/* Takes s (a new connection on fd s->fd) into the list and the epoll set. 0 or -errno. */
int  vgpu_server_adopt(struct vgpu_mediator *m, struct vgpu_session *s);
/* Watches s->doorbell_fd in the epoll set. 0 or -errno. */
int  vgpu_server_watch_doorbell(struct vgpu_mediator *m, struct vgpu_session *s);
void vgpu_server_conn_close(struct vgpu_mediator *m, struct vgpu_session *s, const char *why);

/* ivshmem.c: the ivshmem server mode, one socket per [vm] with ivshmem-socket
 * (I/O thread). */
struct vgpu_ivshmem;
/* Listens on every configured socket (after the epoll set exists). 0 or -errno. */
int  vgpu_ivshmem_open(struct vgpu_mediator *m);
void vgpu_ivshmem_close(struct vgpu_mediator *m);
/* The listener that epoll data p names, or NULL. */
struct vgpu_ivshmem *vgpu_ivshmem_listener(struct vgpu_mediator *m, void *p);
void vgpu_ivshmem_accept(struct vgpu_mediator *m, struct vgpu_ivshmem *iv);
/* The connection of s is readable: QEMU never sends, so EOF or garbage. */
void vgpu_ivshmem_readable(struct vgpu_mediator *m, struct vgpu_session *s);
/* conn_close() of an ivshmem session: link down in its header, socket free. */
void vgpu_ivshmem_closed(struct vgpu_session *s);

/* session.c (all with m->lock held unless said otherwise) */
struct vgpu_session *vgpu_session_new(struct vgpu_mediator *m, int fd);  /* lock not held */
/* Checks the memfd and maps it with nq queue pairs (vgpu_session_queues());
 * lock not held. 0, or -errno with *why: -EINVAL (a size), -EBADF (not a
 * regular file), -EPERM (not sealed against shrinking), mmap's -errno, or
 * vgpu_session_queues()'s. The HELLO handler answers any of them with
 * VGPU_PERR_SHM. */
int  vgpu_session_map(struct vgpu_session *s, int fd, uint64_t shm_size, uint32_t nq,
                      const char **why);
/* Lays out nq queue pairs (1 .. VGPU_MAX_QUEUES) over the mapped s->shm.
 * 0, -EINVAL (they leave less than VGPU_SHM_MIN_DATA of data area) or -ENOMEM. */
int  vgpu_session_queues(struct vgpu_session *s, uint32_t nq);
/* Resumes the ring after HELLO: fixes a torn completion, then takes. */
void vgpu_session_resume(struct vgpu_session *s);
/* Takes new requests from the SQ into the scheduler; returns how many. */
unsigned vgpu_session_take(struct vgpu_session *s);
/* Lock not held, before req's first part runs: marks it in the ring when
 * running it again would not be safe (VGPU_HOST_EXEC_UNSAFE). */
void vgpu_session_begin(struct vgpu_session *s, struct vgpu_req *req);
/* Publishes the completion of req (the oldest of its queue) in its queue's CQ. */
void vgpu_session_complete(struct vgpu_session *s, struct vgpu_req *req, int32_t status,
                           uint64_t result, uint64_t exec_ns, uint64_t now_ns);
/* Ends scheduling for the session (queued requests dropped, stay in the ring). */
void vgpu_session_detach(struct vgpu_session *s);
void vgpu_session_get(struct vgpu_session *s);
/* Drops a reference; true when it was the last: call vgpu_session_destroy()
 * after releasing the lock. */
bool vgpu_session_put(struct vgpu_session *s);
void vgpu_session_destroy(struct vgpu_session *s);   /* lock not held */

/* executor.c */
int  vgpu_exec_start(struct vgpu_mediator *m, unsigned n);
void vgpu_exec_stop(struct vgpu_mediator *m);
/* I/O thread, lock held: runs the session's cheap requests inline when nothing
 * else is queued, wakes executors for the rest. Returns completions posted. */
unsigned vgpu_exec_dispatch(struct vgpu_mediator *m, struct vgpu_session *s);

#endif /* VGPU_MEDIATOR_H */
