/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * libvgpu "sim" transport: the host-side stand-in for the vgpu-stub device.
 * It does exactly what QEMU's device does on the socket (docs/protocol.md):
 * creates the shared memory as a sealed memfd, connects to vgpu-mediator,
 * sends HELLO with the fd (SCM_RIGHTS), waits for WELCOME, turns doorbells
 * into writes to a doorbell eventfd handed over with HELLO (as QEMU's
 * ioeventfd; or KICK messages, doorbell "socket") and sleeps on NOTIFY
 * messages.
 *
 * The socket stays blocking so that a wait is one recv() with SO_RCVTIMEO
 * (one syscall per round trip instead of poll() + recv()); sends use
 * MSG_DONTWAIT. A KICK that finds the socket buffer full is dropped: the
 * mediator has unread KICKs queued and re-reads the ring on each one, so
 * kicks coalesce without losing a request.
 *
 * Unless asked to reconnect (reconnect_ms), the sim transport does not: once
 * the mediator goes away the link stays down and waits return -ENOLINK.
 * Reconnecting, it does what QEMU's reconnecting chardev does: a new
 * connection, HELLO with the same memfd and doorbell eventfd, WELCOME; the
 * rings in the memory are the truth and the mediator resumes them.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vgpu/libvgpu.h"
#include "vgpu/protocol.h"
#include "vgpu/ring.h"
#include "transport.h"

#define SIM_RX_BUF        4096
/* SO_RCVTIMEO used for blocking waits; shorter waits use poll(). */
#define SIM_RCVTIMEO_MS   1000

struct sim {
    int      sock;
    int      memfd;
    int      doorbell_fd;       /* eventfd handed to the mediator, or -1 */
    bool     doorbell_live;     /* the mediator watches it (WELCOME said so) */
    bool     link_up;
    uint32_t seq;
    uint32_t backend;
    int      last_error;        /* why the link went down (-errno), once it has */

    /* Receive side: a byte stream cut into messages. */
    uint8_t  rx[SIM_RX_BUF];
    size_t   rx_len;
    uint64_t rx_skip;           /* body bytes of an oversized message to drop */

    /* A KICK the socket accepted only in part (rare): the rest goes first. */
    uint8_t  tx[sizeof(struct vgpu_msg_kick)];
    size_t   tx_off, tx_len;

    /* KICKs since we last read the socket: see sim_kick(). */
    uint32_t kicks_unread;

    char     path[sizeof(((struct sockaddr_un *)0)->sun_path)];

    /* What HELLO says again on a reconnect. */
    struct vgpu_open_opts hello;
    char     vm_name[64];
    uint64_t shm_size;
    uint32_t queues;            /* queue pairs announced (1: the 1.0 HELLO) */
    int      reconnect_ms;      /* 0: never */
    uint64_t next_try_ns;
    uint32_t reconnects;
};

static int perr_to_errno(uint32_t code)
{
    switch (code) {
    case VGPU_PERR_VERSION:
        return -EPROTONOSUPPORT;
    case VGPU_PERR_FD:
        return -EBADFD;
    case VGPU_PERR_SHM:
        return -EMEDIUMTYPE;
    case VGPU_PERR_LIMIT:
        return -EUSERS;
    case VGPU_PERR_IDENTITY:
        return -EADDRINUSE;
    case VGPU_PERR_MALFORMED:
    case VGPU_PERR_TYPE:
    default:
        return -EPROTO;
    }
}

static int remaining_ms(uint64_t deadline)
{
    uint64_t now = vgpu_now_ns();

    if (now >= deadline) {
        return 0;
    }
    return (int)((deadline - now + 999999) / 1000000);
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

static int create_shm(struct sim *s, uint64_t size, void **map)
{
    void *p;

    s->memfd = memfd_create("vgpu-sim", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (s->memfd < 0) {
        return -errno;
    }
    if (ftruncate(s->memfd, (off_t)size) < 0) {
        return -errno;
    }
    /* The mediator maps this too: it must not be able to shrink under it. */
    if (fcntl(s->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        return -errno;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0);
    if (p == MAP_FAILED) {
        return -errno;
    }
    memset(p, 0, sizeof(struct vgpu_shm_ctrl));
    *map = p;
    return 0;
}

/* Connects, retrying while the mediator is not (yet) listening. */
static int connect_socket(struct sim *s, uint64_t deadline)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    memcpy(sa.sun_path, s->path, sizeof(sa.sun_path));
    for (;;) {
        int r;

        /* Non-blocking: a mediator whose listen backlog is full makes a
         * blocking connect() wait with no deadline; this way it is EAGAIN,
         * retried until the deadline. The socket blocks again once connected. */
        s->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s->sock < 0) {
            return -errno;
        }
        if (connect(s->sock, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            int fl = fcntl(s->sock, F_GETFL);

            if (fl < 0 || fcntl(s->sock, F_SETFL, fl & ~O_NONBLOCK) < 0) {
                r = -errno;
                close(s->sock);
                s->sock = -1;
                return r;
            }
            return 0;
        }
        r = -errno;
        close(s->sock);
        s->sock = -1;
        if ((r != -ENOENT && r != -ECONNREFUSED && r != -EAGAIN) ||
            remaining_ms(deadline) == 0) {
            return r;
        }
        sleep_ms(10);
    }
}

/*
 * One queue pair: the 112-byte HELLO every mediator takes; more: the 1.4
 * HELLO with their count (docs/protocol.md), as QEMU's device does.
 */
static int send_hello(struct sim *s, const struct vgpu_open_opts *o, uint64_t shm_size)
{
    struct vgpu_msg_hello_mq hm;
    struct vgpu_msg_hello *hp = &hm.hello;
    size_t size = s->queues > 1 ? sizeof(hm) : sizeof(hm.hello);
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    int fds[2] = { s->memfd, s->doorbell_fd };
    unsigned nfds = s->doorbell_fd >= 0 ? 2 : 1;
    struct iovec iov = { .iov_base = &hm, .iov_len = size };
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = cbuf, .msg_controllen = CMSG_SPACE(nfds * sizeof(int)),
    };
    struct cmsghdr *cm;
    ssize_t n;

    memset(&hm, 0, sizeof(hm));
    memset(cbuf, 0, sizeof(cbuf));
    hp->hdr.type = htole16(VGPU_MSG_HELLO);
    hp->hdr.size = htole32((uint32_t)size);
    hp->hdr.seq = htole32(s->seq++);
    hp->version_major = htole16(VGPU_PROTO_VERSION_MAJOR);
    hp->version_minor = htole16(VGPU_PROTO_VERSION_MINOR);
    hp->abi_version = htole32(VGPU_ABI_VERSION);
    hp->vm_id = htole32(o->vm_id);
    hp->priority = htole32(o->priority);
    hp->weight = htole32(o->weight ? o->weight : 1);
    /* MULTIQUEUE as QEMU's 1.2 device: the queue count is in the HELLO. */
    hp->features = htole32((s->doorbell_fd >= 0 ? VGPU_FEAT_DOORBELL_FD : 0) |
                           VGPU_FEAT_MULTIQUEUE);
    hp->shm_size = htole64(shm_size);
    if (o->vm_name) {
        strncpy(hp->vm_name, o->vm_name, sizeof(hp->vm_name) - 1);
    }
    hm.queues = htole32(s->queues);

    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));

    do {
        n = sendmsg(s->sock, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return errno == EPIPE || errno == ECONNRESET ? -ENOLINK : -errno;
    }
    /* A fresh socket's buffer holds 120 bytes; a short send is a broken peer. */
    return n == (ssize_t)size ? 0 : -EPROTO;
}

/* Reads exactly len bytes before the deadline. */
static int recv_full(struct sim *s, void *buf, size_t len, uint64_t deadline)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = { .fd = s->sock, .events = POLLIN };
        ssize_t n;
        int r;

        r = poll(&pfd, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return -errno;
        }
        if (r == 0) {
            return -ETIMEDOUT;
        }
        n = recv(s->sock, (uint8_t *)buf + got, len - got, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (n < 0) {
            return errno == ECONNRESET ? -ENOLINK : -errno;
        }
        if (n == 0) {
            return -ENOLINK;
        }
        got += (size_t)n;
    }
    return 0;
}

static int recv_welcome(struct vgpu_dev *dev, struct sim *s, uint64_t deadline)
{
    union {
        struct vgpu_msg_hdr     hdr;
        struct vgpu_msg_welcome w;
        struct vgpu_msg_error   e;
    } m;
    uint32_t size;
    uint16_t type;
    int r;

    memset(&m, 0, sizeof(m));
    r = recv_full(s, &m.hdr, sizeof(m.hdr), deadline);
    if (r < 0) {
        return r;
    }
    type = le16toh(m.hdr.type);
    size = le32toh(m.hdr.size);
    if (size < sizeof(m.hdr) || size > VGPU_MSG_MAX_SIZE) {
        return -EPROTO;
    }
    if (type == VGPU_MSG_ERROR) {
        if (size != sizeof(m.e)) {
            return -EPROTO;
        }
        r = recv_full(s, (uint8_t *)&m + sizeof(m.hdr), size - sizeof(m.hdr), deadline);
        if (r < 0) {
            return r;
        }
        m.e.text[sizeof(m.e.text) - 1] = '\0';
        vgpu_set_detail("mediator: %s (error %u)", m.e.text, le32toh(m.e.code));
        return perr_to_errno(le32toh(m.e.code));
    }
    if (type != VGPU_MSG_WELCOME || size != sizeof(m.w)) {
        vgpu_set_detail("mediator answered HELLO with message type %u, size %u",
                        type, size);
        return -EPROTO;
    }
    r = recv_full(s, (uint8_t *)&m + sizeof(m.hdr), size - sizeof(m.hdr), deadline);
    if (r < 0) {
        return r;
    }
    if (le16toh(m.w.version_major) != VGPU_PROTO_VERSION_MAJOR) {
        vgpu_set_detail("mediator speaks protocol %u.%u, library %u.%u",
                        le16toh(m.w.version_major), le16toh(m.w.version_minor),
                        VGPU_PROTO_VERSION_MAJOR, VGPU_PROTO_VERSION_MINOR);
        return -EPROTONOSUPPORT;
    }
    dev->info.session_id = le32toh(m.w.session_id);
    dev->info.backend = le32toh(m.w.backend);
    dev->info.max_inflight = le32toh(m.w.max_inflight);
    s->backend = dev->info.backend;
    /* A 1.0 mediator never says so (and would have refused two fds). */
    s->doorbell_live = s->doorbell_fd >= 0 &&
                       (le32toh(m.w.features) & VGPU_FEAT_DOORBELL_FD);
    memcpy(dev->info.gpu_name, m.w.gpu_name, sizeof(dev->info.gpu_name));
    dev->info.gpu_name[sizeof(dev->info.gpu_name) - 1] = '\0';
    return 0;
}

static void sim_free(struct sim *s)
{
    if (s->sock >= 0) {
        close(s->sock);
    }
    if (s->memfd >= 0) {
        close(s->memfd);
    }
    if (s->doorbell_fd >= 0) {
        close(s->doorbell_fd);
    }
    free(s);
}

/* "eventfd" or "socket" from the options or $VGPU_DOORBELL; -EINVAL else. */
static int doorbell_wanted(const struct vgpu_open_opts *o, bool *eventfd)
{
    const char *d = o->doorbell ? o->doorbell : getenv("VGPU_DOORBELL");

    if (!d || !*d || strcmp(d, "eventfd") == 0) {
        *eventfd = true;
        return 0;
    }
    if (strcmp(d, "socket") == 0) {
        *eventfd = false;
        return 0;
    }
    vgpu_set_detail("doorbell '%s': use eventfd or socket", d);
    return -EINVAL;
}

static int set_rcvtimeo(struct sim *s)
{
    struct timeval tv = { SIM_RCVTIMEO_MS / 1000, (SIM_RCVTIMEO_MS % 1000) * 1000 };

    return setsockopt(s->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

static int sim_open(struct vgpu_dev *dev, const struct vgpu_open_opts *o)
{
    struct vgpu_open_opts with_id;
    uint64_t size = o->shm_size ? o->shm_size : VGPU_DEFAULT_SHM_SIZE;
    const char *path = o->socket_path;
    uint64_t deadline;
    struct sim *s;
    void *map = NULL;
    size_t len;
    uint32_t queues;
    bool use_eventfd;
    int r;

    r = doorbell_wanted(o, &use_eventfd);
    if (r < 0) {
        return r;
    }
    /* Programs that name no vm id (libcuda.so.1 on a host) get one from the
     * environment, so that several can be separate VMs of one mediator. */
    if (!o->vm_id && getenv("VGPU_VM_ID")) {
        char *end;
        unsigned long v = strtoul(getenv("VGPU_VM_ID"), &end, 10);

        if (*end || v > UINT32_MAX) {
            vgpu_set_detail("VGPU_VM_ID '%s': need a number 0..%u", getenv("VGPU_VM_ID"),
                            UINT32_MAX);
            return -EINVAL;
        }
        with_id = *o;
        with_id.vm_id = (uint32_t)v;
        o = &with_id;
    }
    if (size < VGPU_SHM_MIN_SIZE || size > VGPU_SHM_MAX_SIZE ||
        size % (uint64_t)sysconf(_SC_PAGESIZE) != 0) {
        vgpu_set_detail("shared memory size %llu: need whole pages, %llu..%llu bytes",
                        (unsigned long long)size, VGPU_SHM_MIN_SIZE, VGPU_SHM_MAX_SIZE);
        return -EINVAL;
    }
    queues = o->queues;
    if (!queues && getenv("VGPU_QUEUES")) {
        char *end;
        unsigned long v = strtoul(getenv("VGPU_QUEUES"), &end, 10);

        queues = *end || v > VGPU_MAX_QUEUES ? VGPU_MAX_QUEUES + 1 : (uint32_t)v;
    }
    if (!queues) {
        queues = 1;
    }
    /* queues <= 64: no overflow on the left. */
    if (queues > VGPU_MAX_QUEUES ||
        (uint64_t)(queues - 1) * VGPU_SHM_QUEUE_SIZE + VGPU_SHM_DATA_OFFSET +
        VGPU_SHM_MIN_DATA > size) {
        vgpu_set_detail("%u queue pairs: need 1..%u, and at least 64 KiB of data area beside "
                        "them in %llu bytes", queues, VGPU_MAX_QUEUES, (unsigned long long)size);
        return -EINVAL;
    }
    if (o->queue >= queues) {
        vgpu_set_detail("queue %u: the device has %u queue pair(s)", o->queue, queues);
        return -EINVAL;
    }
    if (o->priority >= VGPU_PRIO_CLASSES || o->weight > VGPU_WEIGHT_MAX) {
        vgpu_set_detail("priority %u / weight %u: need priority < %u, weight <= %u",
                        o->priority, o->weight, VGPU_PRIO_CLASSES, VGPU_WEIGHT_MAX);
        return -EINVAL;
    }
    if (!path) {
        path = getenv("VGPU_SOCKET");
    }
    if (!path || !*path) {
        path = VGPU_DEFAULT_SOCKET;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->sock = -1;
    s->memfd = -1;
    s->doorbell_fd = -1;
    if (use_eventfd) {
        s->doorbell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s->doorbell_fd < 0) {
            r = -errno;
            goto err_free;
        }
    }
    if (strlen(path) >= sizeof(s->path)) {
        r = -ENAMETOOLONG;
        goto err_free;
    }
    strcpy(s->path, path);
    s->hello = *o;
    s->hello.vm_name = NULL;
    if (o->vm_name) {
        snprintf(s->vm_name, sizeof(s->vm_name), "%s", o->vm_name);
        s->hello.vm_name = s->vm_name;
    }
    s->shm_size = size;
    s->queues = queues;
    s->reconnect_ms = o->reconnect_ms;
    if (!s->reconnect_ms && getenv("VGPU_RECONNECT_MS")) {
        s->reconnect_ms = atoi(getenv("VGPU_RECONNECT_MS"));
    }
    if (s->reconnect_ms < 0 || s->reconnect_ms > 60000) {
        vgpu_set_detail("reconnect_ms %d: need 0..60000", s->reconnect_ms);
        r = -EINVAL;
        goto err_free;
    }

    r = create_shm(s, size, &map);
    if (r < 0) {
        goto err_free;
    }
    deadline = vgpu_now_ns() + (uint64_t)dev->link_timeout_ms * 1000000ull;
    r = connect_socket(s, deadline);
    if (r < 0) {
        vgpu_set_detail("connect %s: %s", s->path, strerror(-r));
        goto err_unmap;
    }
    r = send_hello(s, o, size);
    if (r < 0) {
        goto err_unmap;
    }
    r = recv_welcome(dev, s, deadline);
    if (r == -ETIMEDOUT) {
        vgpu_set_detail("no WELCOME from %s within %d ms", s->path, dev->link_timeout_ms);
    }
    if (r < 0) {
        goto err_unmap;
    }
    r = set_rcvtimeo(s);
    if (r < 0) {
        goto err_unmap;
    }
    s->link_up = true;

    dev->priv = s;
    vgpu_dev_attach_shm(dev, map, size);
    dev->queues = queues;
    dev->info.abi_version = VGPU_ABI_VERSION;
    dev->info.vm_id = o->vm_id;
    dev->info.priority = o->priority;
    dev->info.weight = o->weight ? o->weight : 1;
    if (o->vm_name) {
        snprintf(dev->info.vm_name, sizeof(dev->info.vm_name), "%s", o->vm_name);
    }
    /* A long socket path is cut: location is informational. */
    len = strnlen(s->path, sizeof(dev->info.location) - 1);
    memcpy(dev->info.location, s->path, len);
    dev->info.location[len] = '\0';
    return 0;

err_unmap:
    munmap(map, size);
err_free:
    sim_free(s);
    return r;
}

static void sim_close(struct vgpu_dev *dev)
{
    struct sim *s = dev->priv;

    if (!s) {
        return;
    }
    if (s->link_up && s->tx_off == s->tx_len) {
        struct vgpu_msg_bye bye;

        memset(&bye, 0, sizeof(bye));
        bye.hdr.type = htole16(VGPU_MSG_BYE);
        bye.hdr.size = htole32(sizeof(bye));
        bye.hdr.seq = htole32(s->seq++);
        bye.reason = htole32(VGPU_BYE_SHUTDOWN);
        /* Best effort: the mediator also handles a plain close. */
        (void)!send(s->sock, &bye, sizeof(bye), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (dev->shm) {
        munmap(dev->shm, dev->shm_size);
        dev->shm = NULL;
    }
    sim_free(s);
    dev->priv = NULL;
}

static void link_lost(struct sim *s, int why)
{
    s->link_up = false;
    if (s->reconnect_ms && why == -ENOLINK) {
        /* A restart, as QEMU sees it: start over on a new connection. */
        close(s->sock);
        s->sock = -1;
        s->rx_len = 0;
        s->rx_skip = 0;
        s->tx_off = s->tx_len = 0;
        s->next_try_ns = vgpu_now_ns();
        return;
    }
    if (!s->last_error) {
        s->last_error = why;
    }
}

/*
 * One attempt to bring a lost link back, if it is time for one: connect,
 * HELLO with the same memory, WELCOME. 0 when the link is up again, -EAGAIN
 * when the mediator is not back yet, the errno of an ERROR (which ends the
 * link for good, as it does on the first connect).
 */
static int try_reconnect(struct vgpu_dev *dev, struct sim *s)
{
    uint64_t now = vgpu_now_ns();
    int r;

    if (s->link_up || s->last_error || !s->reconnect_ms) {
        return s->link_up ? 0 : s->last_error ? s->last_error : -ENOLINK;
    }
    if (now < s->next_try_ns) {
        return -EAGAIN;
    }
    s->next_try_ns = now + (uint64_t)s->reconnect_ms * 1000000ull;
    r = connect_socket(s, now);
    if (r < 0) {
        return -EAGAIN;
    }
    r = send_hello(s, &s->hello, s->shm_size);
    if (r == 0) {
        r = recv_welcome(dev, s, now + (uint64_t)dev->link_timeout_ms * 1000000ull);
    }
    if (r == 0) {
        r = set_rcvtimeo(s);
    }
    if (r < 0) {
        close(s->sock);
        s->sock = -1;
        if (r != -ENOLINK && r != -ETIMEDOUT && r != -ECONNRESET && r != -EPIPE) {
            s->last_error = r;  /* refused: trying again would be refused again */
            return r;
        }
        return -EAGAIN;
    }
    s->link_up = true;
    s->reconnects++;
    return 0;
}

/* Sends what is left of a partly sent KICK. 0 when done, -EAGAIN, -ENOLINK. */
static int tx_flush(struct sim *s)
{
    while (s->tx_off < s->tx_len) {
        ssize_t n = send(s->sock, s->tx + s->tx_off, s->tx_len - s->tx_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                return -EAGAIN;
            }
            link_lost(s, -ENOLINK);
            return -ENOLINK;
        }
        s->tx_off += (size_t)n;
    }
    return 0;
}

static int rx_once(struct sim *s, bool block);

static int sim_kick(struct vgpu_dev *dev, uint32_t sq_tail)
{
    struct sim *s = dev->priv;
    struct vgpu_msg_kick k;
    int r;

    if (!s->link_up && try_reconnect(dev, s) == -EAGAIN) {
        return 0;   /* the request is in the ring: the next mediator takes it */
    }
    if (!s->link_up) {
        return s->last_error;
    }
    /*
     * A client whose spin keeps catching completions never sleeps on the
     * socket, so NOTIFYs pile up in it until the mediator's sends fail.
     * Drain them now and then; this also notices a BYE or ERROR early.
     */
    if (++s->kicks_unread >= 32) {
        s->kicks_unread = 0;
        /* rx_once() gives 0 also once the link went down to reconnect. */
        while (s->link_up && (r = rx_once(s, false)) == 0) {
        }
        if (!s->link_up) {
            return s->last_error ? s->last_error : 0;
        }
    }
    if (s->doorbell_live) {
        uint64_t one = 1;

        /* Never blocks in practice: the counter would have to near 2^64. */
        if (write(s->doorbell_fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN) {
            return 0;
        }
        return -errno;
    }
    r = tx_flush(s);
    if (r == -EAGAIN) {
        return 0;   /* an unread KICK is still ahead of us: coalesced */
    }
    if (r < 0) {
        return r;
    }
    memset(&k, 0, sizeof(k));
    k.hdr.type = htole16(VGPU_MSG_KICK);
    k.hdr.size = htole32(sizeof(k));
    k.hdr.seq = htole32(s->seq++);
    k.sq_tail = htole32(sq_tail);
    memcpy(s->tx, &k, sizeof(k));
    s->tx_off = 0;
    s->tx_len = sizeof(k);
    r = tx_flush(s);
    if (r == -ENOLINK && !s->last_error) {
        return 0;   /* reconnecting: the next mediator reads the ring itself */
    }
    return r == -EAGAIN ? 0 : r;
}

/*
 * Consumes the complete messages in rx. NOTIFY only wakes us (the CQ is the
 * truth); BYE and ERROR end the link; other types are ignored so a newer
 * mediator may add messages.
 */
static void rx_parse(struct sim *s)
{
    size_t off = 0;

    while (s->rx_len - off >= sizeof(struct vgpu_msg_hdr)) {
        struct vgpu_msg_hdr h;
        uint32_t size;

        memcpy(&h, s->rx + off, sizeof(h));
        size = le32toh(h.size);
        if (size < sizeof(h) || size > VGPU_MSG_MAX_SIZE) {
            link_lost(s, -EPROTO);
            s->rx_len = 0;
            return;
        }
        if (size > sizeof(s->rx)) {
            /* Not a message we act on: drop it without buffering it. */
            s->rx_skip = size - (s->rx_len - off);
            s->rx_len = 0;
            return;
        }
        if (s->rx_len - off < size) {
            break;
        }
        switch (le16toh(h.type)) {
        case VGPU_MSG_BYE:
            link_lost(s, -ENOLINK);
            break;
        case VGPU_MSG_ERROR:
            if (size >= sizeof(struct vgpu_msg_error)) {
                struct vgpu_msg_error e;

                memcpy(&e, s->rx + off, sizeof(e));
                link_lost(s, perr_to_errno(le32toh(e.code)));
            } else {
                link_lost(s, -EPROTO);
            }
            break;
        default:
            break;
        }
        off += size;
    }
    memmove(s->rx, s->rx + off, s->rx_len - off);
    s->rx_len -= off;
}

/* One receive; blocking (up to SO_RCVTIMEO) or not. 0, -EAGAIN, -ENOLINK. */
static int rx_once(struct sim *s, bool block)
{
    ssize_t n;

    if (!s->link_up) {
        return s->last_error;   /* 0 while reconnecting: the caller re-checks the link */
    }
    do {
        n = recv(s->sock, s->rx + s->rx_len, sizeof(s->rx) - s->rx_len,
                 block ? 0 : MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && errno == EAGAIN) {
        return -EAGAIN;
    }
    if (n <= 0) {
        link_lost(s, -ENOLINK);
        return s->last_error;   /* 0 while reconnecting */
    }
    s->kicks_unread = 0;
    if (s->rx_skip) {
        size_t drop = (uint64_t)n < s->rx_skip ? (size_t)n : (size_t)s->rx_skip;

        s->rx_skip -= drop;
        memmove(s->rx, s->rx + drop, (size_t)n - drop);
        n -= (ssize_t)drop;
    }
    s->rx_len += (size_t)n;
    rx_parse(s);
    return s->link_up ? 0 : s->last_error;
}

/*
 * Returns 0, -ETIMEDOUT, or when the link is gone the reason it went: -ENOLINK
 * for a close or BYE, the errno of the mediator's ERROR code otherwise.
 */
static int sim_wait_event(struct vgpu_dev *dev, int timeout_ms)
{
    struct sim *s = dev->priv;
    int r;

    if (!s->link_up) {
        r = try_reconnect(dev, s);
        if (r == -EAGAIN) {
            uint64_t now = vgpu_now_ns();
            uint64_t left = s->next_try_ns > now ? s->next_try_ns - now : 0;
            int ms = (int)((left + 999999) / 1000000);

            sleep_ms(ms < timeout_ms ? ms : timeout_ms);
            return 0;   /* the core re-checks the CQ and the link */
        }
        if (r < 0) {
            return r;
        }
        return 0;
    }
    if (s->tx_off < s->tx_len) {
        /* Our KICK must reach the mediator before we sleep on its answer. */
        struct pollfd pfd = { .fd = s->sock, .events = POLLIN | POLLOUT };

        r = poll(&pfd, 1, timeout_ms);
        if (r < 0) {
            return errno == EINTR ? 0 : -errno;
        }
        if (r == 0) {
            return -ETIMEDOUT;
        }
        if (pfd.revents & POLLOUT) {
            r = tx_flush(s);
            if (r == -ENOLINK) {
                return r;
            }
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            r = rx_once(s, false);
            return r == -EAGAIN ? 0 : r;
        }
        return 0;
    }
    if (timeout_ms >= SIM_RCVTIMEO_MS) {
        r = rx_once(s, true);
        return r == -EAGAIN ? -ETIMEDOUT : r;
    }
    if (timeout_ms > 0) {
        struct pollfd pfd = { .fd = s->sock, .events = POLLIN };

        r = poll(&pfd, 1, timeout_ms);
        if (r < 0) {
            return errno == EINTR ? 0 : -errno;
        }
        if (r == 0) {
            return -ETIMEDOUT;
        }
    }
    r = rx_once(s, false);
    if (r == -EAGAIN) {
        return timeout_ms > 0 ? 0 : -ETIMEDOUT;
    }
    return r;
}

static uint32_t sim_link_status(struct vgpu_dev *dev)
{
    struct sim *s = dev->priv;

    if (!s->link_up) {
        return 0;
    }
    return VGPU_LINK_UP | (s->backend == VGPU_BACKEND_CUDA ? VGPU_LINK_GPU : 0);
}

const struct vgpu_transport_ops vgpu_transport_sim = {
    .name        = "sim",
    .open        = sim_open,
    .close       = sim_close,
    .kick        = sim_kick,
    .wait_event  = sim_wait_event,
    .link_status = sim_link_status,
    .info        = NULL,
};
