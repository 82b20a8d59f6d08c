/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The ivshmem server mode: a VM on QEMU's stock ivshmem-doorbell device
 * (no patched QEMU), through the ivshmem server protocol (QEMU's
 * docs/specs/ivshmem-spec.txt).
 *
 * One listening socket per [vm] section with ivshmem-socket; the socket is
 * the VM's identity (vm id, name, priority, weight from that section): the
 * guest says nothing, and QEMU never sends a byte on this socket. On each
 * connection the mediator creates the VM's memory itself (a sealed memfd of
 * the section's shm-size), lays out queue 0's rings and the shared-memory
 * header (struct vgpu_shm_header: what vgpu-stub's BAR0 would say), and
 * sends, each as one 8-byte little-endian number in its own sendmsg():
 *
 *   0                      protocol version
 *   GUEST_PEER             the client's (QEMU's) own peer id
 *   -1      + memfd        the shared memory, BAR2
 *   MEDIATOR_PEER + efd    peer MEDIATOR_PEER's vector 0: the guest's doorbell
 *                          write of (MEDIATOR_PEER << 16 | 0) signals it
 *   GUEST_PEER + efd       the guest's own vector 0: the mediator signals it,
 *                          QEMU raises the guest's MSI-X vector 0
 *
 * From then on the connection is an ordinary session (session.c), made as a
 * HELLO would make it, whose doorbell eventfd is the first eventfd and
 * whose NOTIFY is a write to the second. Nothing is ever read from the
 * peer: EOF ends the session, any byte (or descriptor) from it is garbage
 * and drops it. A second connection while one is live is refused
 * (REFUSED_VERSION). All
 * sockets are non-blocking; the five messages (40 bytes) fit any fresh
 * socket's buffer, and a peer that does not take them is dropped.
 *
 * A new connection (QEMU restarted) gets new memory: nothing of the last
 * guest's memory reaches the next one, and a request of the old session
 * still executing writes only the old memory.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mediator.h"
#include "util.h"

#define MEDIATOR_PEER 0
#define GUEST_PEER    1
/*
 * A refused connection gets this "protocol version" and EOF: QEMU's
 * ivshmem-doorbell then fails to realize with "server sent version 99,
 * expecting 0" and exits. Plain EOF would not do: QEMU 7.2 reads the setup
 * in a loop that retries a read returning 0 and would spin for ever.
 */
#define REFUSED_VERSION 99

struct vgpu_ivshmem {
    struct vgpu_mediator *m;
    char     path[108];
    char     name[64];
    uint32_t vm_id;
    uint64_t shm_size;
    int      listen_fd;
    bool     bound;
    dev_t    dev;
    ino_t    ino;
    struct vgpu_session *live;  /* the connection being served, or NULL */
};

/* ---------------------------------------------------------------- sockets */

int vgpu_ivshmem_open(struct vgpu_mediator *m)
{
    const struct vgpu_config *cfg = &m->cfg;
    unsigned n = 0;
    int r = 0;

    for (unsigned i = 0; i < cfg->n_overrides; i++) {
        n += cfg->overrides[i].ivshmem_socket[0] != '\0';
    }
    if (!n) {
        return 0;
    }
    m->ivshmem = calloc(n, sizeof(*m->ivshmem));
    if (!m->ivshmem) {
        return -ENOMEM;
    }
    for (unsigned i = 0; i < cfg->n_overrides; i++) {
        const struct vgpu_vm_override *o = &cfg->overrides[i];
        struct epoll_event ev = { .events = EPOLLIN };
        struct vgpu_ivshmem *iv;

        if (!o->ivshmem_socket[0]) {
            continue;
        }
        /* Two sections on one socket or one vm id would make identity ambiguous. */
        for (unsigned j = 0; j < m->n_ivshmem; j++) {
            if (strcmp(m->ivshmem[j].path, o->ivshmem_socket) == 0 ||
                m->ivshmem[j].vm_id == o->vm_id) {
                log_error("config: ivshmem VMs '%s' and vm %u share a socket or a vm id; not "
                          "starting", m->ivshmem[j].name, o->vm_id);
                r = -EINVAL;
                goto err;
            }
        }
        iv = &m->ivshmem[m->n_ivshmem];
        *iv = (struct vgpu_ivshmem) { .m = m, .vm_id = o->vm_id, .shm_size = o->shm_size,
                                      .listen_fd = -1 };
        snprintf(iv->path, sizeof(iv->path), "%s", o->ivshmem_socket);
        if (o->by_id) {
            snprintf(iv->name, sizeof(iv->name), "vm%u", o->vm_id);
        } else {
            snprintf(iv->name, sizeof(iv->name), "%s", o->name);
        }
        r = vgpu_server_listen_unix(iv->path, 0660, false, &iv->listen_fd, &iv->bound, &iv->dev,
                                    &iv->ino);
        if (r < 0) {
            goto err;
        }
        m->n_ivshmem++;
        ev.data.ptr = iv;
        if (epoll_ctl(m->epoll_fd, EPOLL_CTL_ADD, iv->listen_fd, &ev) < 0) {
            r = -errno;
            goto err;
        }
        log_info("ivshmem: vm %u '%s': serving QEMU's ivshmem-doorbell on %s (shm %llu MiB)",
                 iv->vm_id, iv->name, iv->path, (unsigned long long)(iv->shm_size >> 20));
    }
    return 0;

err:
    vgpu_ivshmem_close(m);
    return r;
}

void vgpu_ivshmem_close(struct vgpu_mediator *m)
{
    for (unsigned i = 0; i < m->n_ivshmem; i++) {
        struct vgpu_ivshmem *iv = &m->ivshmem[i];

        if (iv->live) {
            vgpu_server_conn_close(m, iv->live, "mediator shutting down");
        }
        vgpu_server_unlink_own(iv->path, &iv->bound, iv->dev, iv->ino);
        if (iv->listen_fd >= 0) {
            close(iv->listen_fd);
        }
    }
    free(m->ivshmem);
    m->ivshmem = NULL;
    m->n_ivshmem = 0;
}

struct vgpu_ivshmem *vgpu_ivshmem_listener(struct vgpu_mediator *m, void *p)
{
    if (m->n_ivshmem && (struct vgpu_ivshmem *)p >= m->ivshmem &&
        (struct vgpu_ivshmem *)p < m->ivshmem + m->n_ivshmem) {
        return p;
    }
    return NULL;
}

/* ---------------------------------------------------------------- protocol */

/* One message: an 8-byte little-endian number, with fd when >= 0. 0 or -errno. */
static int send_msg(int sock, int64_t value, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    uint64_t le = htole64((uint64_t)value);
    struct iovec iov = { .iov_base = &le, .iov_len = sizeof(le) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (fd >= 0) {
        struct cmsghdr *c;

        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = sizeof(ctl.buf);
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    do {
        n = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -errno;
    }
    return n == (ssize_t)sizeof(le) ? 0 : -EAGAIN;   /* a part: the peer is not reading */
}

/* The VM's memory: a memfd of size bytes that nobody can shrink or grow. */
static int create_memory(const struct vgpu_ivshmem *iv)
{
    char name[80];
    int fd;

    snprintf(name, sizeof(name), "vgpu-ivshmem-%s", iv->name);
    fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        return -errno;
    }
    if (ftruncate(fd, (off_t)iv->shm_size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int r = -errno;

        close(fd);
        return r;
    }
    return fd;
}

static void set_link(struct vgpu_session *s, uint32_t link)
{
    __atomic_store_n((uint32_t *)(s->shm.base + VGPU_SHM_HEADER_OFFSET +
                                  offsetof(struct vgpu_shm_header, link_status)),
                     htole32(link), __ATOMIC_RELEASE);
}

/* Before QEMU has the memory; the link goes up once the session is live. */
static void write_header(struct vgpu_session *s)
{
    struct vgpu_mediator *m = s->m;
    struct vgpu_shm_header h = { 0 };

    h.magic = htole32(VGPU_SHM_HEADER_MAGIC);
    h.abi_version = htole32(VGPU_ABI_VERSION);
    h.header_size = htole32(sizeof(h));
    h.vm_id = htole32(s->vm_id);
    h.priority = htole32(s->prio);
    h.weight = htole32(s->weight);
    h.session_id = htole32(s->id);
    h.backend = htole32(m->bops->kind);
    h.max_inflight = htole32(s->max_inflight);
    h.sq_entries = htole32(VGPU_SQ_ENTRIES);
    h.cq_entries = htole32(VGPU_CQ_ENTRIES);
    h.shm_size = htole64(s->shm.size);
    h.data_offset = htole64(VGPU_SHM_DATA_OFFSET);
    h.data_end = htole64(s->data_end);
    h.queues = htole32(1);
    h.doorbell = htole32((uint32_t)MEDIATOR_PEER << 16 | 0);
    h.gpu_mem_mib = htole32((uint32_t)VGPU_MIN(m->gpu.total_mem >> 20, (uint64_t)UINT32_MAX));
    h.gpu_sms = htole32(m->gpu.sm_count);
    h.gpu_cc = htole32(m->gpu.cc_major << 8 | m->gpu.cc_minor);
    memcpy(h.vm_name, s->vm_name, sizeof(h.vm_name));
    h.vm_name[sizeof(h.vm_name) - 1] = '\0';
    memcpy(h.gpu_name, m->gpu.name, sizeof(h.gpu_name));
    h.gpu_name[sizeof(h.gpu_name) - 1] = '\0';
    memcpy(s->shm.base + VGPU_SHM_HEADER_OFFSET, &h, sizeof(h));
}

void vgpu_ivshmem_closed(struct vgpu_session *s)
{
    struct vgpu_ivshmem *iv = s->ivshmem;

    if (s->shm.base) {
        set_link(s, 0);
    }
    if (iv && iv->live == s) {
        iv->live = NULL;
    }
}

/* Anyone who can connect can make these lines: rate-limited. */
__attribute__((format(printf, 2, 3)))
static void refuse_log(struct vgpu_mediator *m, const char *fmt, ...)
{
    uint64_t suppressed;
    char text[256];
    va_list ap;

    pthread_mutex_lock(&m->lock);
    m->conns_rejected++;
    pthread_mutex_unlock(&m->lock);
    if (!vgpu_ratelimit_ok(&m->conn_rl, &suppressed)) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_warn("%s%s", text, suppressed ? " (similar messages suppressed)" : "");
}

static uint32_t peer_pid(int fd)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);

    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 ? (uint32_t)cr.pid : 0;
}

/*
 * The part of a HELLO after its checks, for a VM whose identity is the
 * socket's: memory, backend session, the five messages, then the session
 * goes live. On failure s is closed (or, before it is adopted, destroyed).
 */
static void serve(struct vgpu_mediator *m, struct vgpu_ivshmem *iv, struct vgpu_session *s)
{
    const char *why = NULL;
    uint32_t prio = 1, weight = 1;      /* vgpu-stub's defaults, then the section's */
    unsigned done;
    int memfd, irq_fd, r;

    snprintf(s->vm_name, sizeof(s->vm_name), "%s", iv->name);
    s->vm_id = iv->vm_id;
    memfd = create_memory(iv);
    if (memfd < 0) {
        refuse_log(m, "ivshmem: vm %u '%s': cannot create %llu bytes of shared memory: %s",
                   iv->vm_id, iv->name, (unsigned long long)iv->shm_size, strerror(-memfd));
        vgpu_server_conn_close(m, s, "no memory");
        return;
    }
    r = vgpu_session_map(s, memfd, iv->shm_size, 1, &why);
    if (r < 0) {
        close(memfd);
        refuse_log(m, "ivshmem: vm %u '%s': %s", iv->vm_id, iv->name, why);
        vgpu_server_conn_close(m, s, why);
        return;
    }
    /* The mediator's vector (the guest's doorbell) and the guest's vector 0. */
    s->doorbell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->doorbell_fd < 0 || irq_fd < 0) {
        if (irq_fd >= 0) {
            close(irq_fd);
        }
        refuse_log(m, "ivshmem: vm %u '%s': eventfd: %s", iv->vm_id, iv->name, strerror(errno));
        vgpu_server_conn_close(m, s, "no eventfd");
        return;
    }
    s->notify_fd = irq_fd;

    vgpu_config_apply(&m->cfg, iv->vm_id, iv->name, &prio, &weight);
    r = m->bops->session_open(m->backend, iv->vm_id,
                              vgpu_config_gpu(&m->cfg, iv->vm_id, iv->name), &s->shm, &s->bsess);
    if (r < 0) {
        refuse_log(m, "ivshmem: vm %u '%s': backend %s cannot use the memory: %s", iv->vm_id,
                   iv->name, m->bops->name, strerror(-r));
        vgpu_server_conn_close(m, s, "backend refused the memory");
        return;
    }
    s->gpu = m->bops->session_gpu ? m->bops->session_gpu(m->backend, s->bsess) : m->cfg.gpu_index;
    s->prio = prio;
    s->weight = weight;
    s->max_inflight = m->cfg.max_inflight;
    write_header(s);

    r = send_msg(s->fd, 0, -1);                         /* protocol version */
    if (r == 0) {
        r = send_msg(s->fd, GUEST_PEER, -1);            /* its peer id */
    }
    if (r == 0) {
        r = send_msg(s->fd, -1, s->shm.fd);             /* the memory */
    }
    if (r == 0) {
        r = send_msg(s->fd, MEDIATOR_PEER, s->doorbell_fd);
    }
    if (r == 0) {
        r = send_msg(s->fd, GUEST_PEER, irq_fd);
    }
    if (r < 0) {
        refuse_log(m, "ivshmem: vm %u '%s': cannot send the setup to the peer (%s); dropping it",
                   iv->vm_id, iv->name, strerror(-r));
        vgpu_server_conn_close(m, s, "setup not sent");
        return;
    }
    r = vgpu_server_watch_doorbell(m, s);
    if (r < 0) {
        log_error("ivshmem: vm %u '%s': cannot watch the doorbell: %s", iv->vm_id, iv->name,
                  strerror(-r));
        vgpu_server_conn_close(m, s, "cannot watch the doorbell");
        return;
    }

    pthread_mutex_lock(&m->lock);
    s->hello_prio = 1;
    s->hello_weight = 1;
    vgpu_sched_entity_init(&s->ent, prio, weight);
    s->state = VGPU_CONN_ACTIVE;
    m->nsessions++;
    m->sessions_opened++;
    set_link(s, VGPU_LINK_UP | (m->bops->kind == VGPU_BACKEND_CUDA ? VGPU_LINK_GPU : 0));
    log_info("session %u: vm %u '%s' attached through ivshmem (%s, pid %u): priority %u "
             "weight %u, shm %llu MiB, doorbell eventfd, interrupts by the guest's vector 0",
             s->id, s->vm_id, s->vm_name, iv->path, peer_pid(s->fd), prio, weight,
             (unsigned long long)(s->shm.size >> 20));
    vgpu_session_resume(s);
    done = vgpu_exec_dispatch(m, s);
    pthread_mutex_unlock(&m->lock);
    if (done) {
        vgpu_session_notify(s);
    }
}

void vgpu_ivshmem_accept(struct vgpu_mediator *m, struct vgpu_ivshmem *iv)
{
    for (int i = 0; i < 4; i++) {
        struct vgpu_session *s;
        bool taken = false;
        int fd = accept4(iv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                refuse_log(m, "ivshmem: accept on %s: %s", iv->path, strerror(errno));
            }
            return;
        }
        if (iv->live) {
            refuse_log(m, "ivshmem: vm %u '%s': refusing a second connection on %s (pid %u) "
                       "while session %u is live", iv->vm_id, iv->name, iv->path, peer_pid(fd),
                       iv->live->id);
            (void)send_msg(fd, REFUSED_VERSION, -1);
            close(fd);
            continue;
        }
        pthread_mutex_lock(&m->lock);
        for (struct vgpu_session *o = m->conns; o; o = o->next) {
            taken |= o->state == VGPU_CONN_ACTIVE && o->vm_id == iv->vm_id;
        }
        pthread_mutex_unlock(&m->lock);
        if (taken || m->nsessions >= m->cfg.max_sessions) {
            refuse_log(m, "ivshmem: vm %u '%s': refusing a connection on %s: %s", iv->vm_id,
                       iv->name, iv->path, taken ? "the vm id is connected on another socket"
                                                 : "too many sessions");
            (void)send_msg(fd, REFUSED_VERSION, -1);
            close(fd);
            continue;
        }
        s = vgpu_session_new(m, fd);
        if (!s) {
            log_error("out of memory for a new connection");
            close(fd);
            continue;
        }
        s->ivshmem = iv;
        if (vgpu_server_adopt(m, s) < 0) {
            log_error("ivshmem: epoll_ctl: %s", strerror(errno));
            vgpu_session_destroy(s);
            continue;
        }
        iv->live = s;
        serve(m, iv, s);
    }
}

void vgpu_ivshmem_readable(struct vgpu_mediator *m, struct vgpu_session *s)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 8)];
        struct cmsghdr align;
    } ctl;
    uint8_t buf[64];
    struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    unsigned nfds = 0;
    ssize_t n;

    do {
        n = recvmsg(s->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) {
        return;
    }
    for (struct cmsghdr *c = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            for (size_t i = 0; i < k && i < 8; i++) {
                int fd;

                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                close(fd);
                nfds++;
            }
        }
    }
    if (n == 0) {
        vgpu_server_conn_close(m, s, "QEMU closed the ivshmem connection");
        return;
    }
    if (n < 0) {
        char why[80];

        snprintf(why, sizeof(why), "recv: %s", strerror(errno));
        vgpu_server_conn_close(m, s, why);
        return;
    }
    refuse_log(m, "ivshmem: vm %u '%s': the peer on %s sent %zd byte(s)%s; QEMU never does: "
               "dropping it", s->vm_id, s->vm_name, s->ivshmem->path, n,
               nfds ? " and descriptors" : "");
    vgpu_server_conn_close(m, s, "garbage from the ivshmem peer");
}
