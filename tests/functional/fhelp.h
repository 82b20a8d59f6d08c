/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Helpers for the functional tests: start/stop a real vgpu-mediator on a
 * temporary socket, play a raw device over the socket protocol (to send
 * exactly the bytes a test wants), count a process's fds, and report
 * "ok/not ok" lines with a final "N passed, N failed". Every wait has a
 * deadline.
 */
#ifndef VGPU_FHELP_H
#define VGPU_FHELP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vgpu/abi.h"
#include "vgpu/protocol.h"

/* ---- reporting ---- */
extern int fh_passed, fh_failed;
void fh_check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define CHECK(cond, ...) fh_check((cond), __VA_ARGS__)
int fh_summary(void);   /* prints "N passed, N failed"; returns the exit code */

uint64_t fh_now_ms(void);

/* ---- the mediator under test ---- */
struct fh_mediator {
    pid_t pid;
    char dir[64];
    char sock[128];
    char log[128];
};

/* Starts $VGPU_MEDIATOR --socket-path <tmp> --backend cpu ($FH_BACKEND) + extra args (NULL
 * terminated) and waits until it accepts connections. dir: reuse a tmp dir
 * (restart) or NULL for a new one. 0 or -errno. */
int fh_mediator_start(struct fh_mediator *m, const char *dir, const char *const *extra);
/* The same without the wait: forks and execs only (the child inherits the
 * environment, NOTIFY_SOCKET included). 0 or -errno. */
int fh_mediator_spawn(struct fh_mediator *m, const char *dir, const char *const *extra);
/* SIGTERM (or SIGKILL when kill9), waits up to 10 s. Returns the exit status
 * (as waitpid) or -errno. */
int fh_mediator_stop(struct fh_mediator *m, bool kill9);
void fh_mediator_cleanup(struct fh_mediator *m);  /* removes the tmp dir */
void fh_mediator_dump_log(const struct fh_mediator *m, int tail_lines);
int fh_count_fds(pid_t pid);
/* true when the --status text has the row of VM name with this priority
 * and weight. */
bool fh_status_row_has(const char *status, const char *name, unsigned prio, unsigned weight);
/* true when a line of the file at path contains what. */
bool fh_file_contains(const char *path, const char *what);
/* Runs `vgpu-mediator --status` and returns its stdout (malloc), or NULL. */
char *fh_mediator_status(const struct fh_mediator *m);

/* ---- raw device ---- */
struct fh_dev {
    int sock;
    int memfd;
    uint8_t *shm;
    uint64_t shm_size;
    struct vgpu_shm_ctrl *ctrl;
    uint32_t seq;
    uint32_t sq_tail, cq_head;
    struct vgpu_msg_welcome welcome;
    int doorbell_fd;            /* eventfd sent with HELLO, or -1: KICK messages */
};

int fh_connect(const char *path);   /* socket fd or -errno */
/* memfd of size bytes; sealed against shrink/grow when seal. fd or -errno. */
int fh_memfd(uint64_t size, bool seal);
/* Sends bytes with optional fds (SCM_RIGHTS). 0 or -errno. */
int fh_send(int sock, const void *buf, size_t len, const int *fds, int nfds);
/* Receives one whole message into buf (cap bytes) within timeout_ms.
 * Returns its size, 0 on EOF, -ETIMEDOUT, -EMSGSIZE or -errno. */
int fh_recv_msg(int sock, void *buf, size_t cap, int timeout_ms);
/* Waits for an ERROR and then EOF. Returns the error code, or -1 when
 * something else came. */
int fh_expect_error_close(int sock, int timeout_ms);

void fh_hello_init(struct vgpu_msg_hello *h, uint32_t vm_id, uint64_t shm_size);

/* A complete device: memfd + connect + HELLO + WELCOME. 0 or -errno
 * (-EPROTO when the mediator answered ERROR). */
int fh_dev_open(struct fh_dev *d, const char *path, uint32_t vm_id, uint64_t shm_size);
/* The same, handing over a doorbell eventfd with HELLO (protocol 1.1) when
 * eventfd_doorbell; fh_dev_kick() then writes it if WELCOME took it up. */
int fh_dev_open_ex(struct fh_dev *d, const char *path, uint32_t vm_id, uint64_t shm_size,
                   bool eventfd_doorbell);
/* Re-attaches the same memory over a new connection (after a restart). */
int fh_dev_reconnect(struct fh_dev *d, const char *path, uint32_t vm_id);
void fh_dev_close(struct fh_dev *d);
/* Puts sqe in the ring and publishes sq_tail (no KICK). */
void fh_dev_queue(struct fh_dev *d, const struct vgpu_sqe *sqe);
int fh_dev_kick(struct fh_dev *d);
/* Next completion within timeout_ms: 0, -ETIMEDOUT, -ENOLINK. Drains NOTIFYs. */
int fh_dev_wait(struct fh_dev *d, struct vgpu_cqe *out, int timeout_ms);
/* Data area helpers: pointer to BAR2 offset. */
static inline void *fh_ptr(struct fh_dev *d, uint64_t off)
{
    return d->shm + off;
}

#endif /* VGPU_FHELP_H */
