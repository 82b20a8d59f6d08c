/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
#include "fhelp.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vgpu/ring.h"

int fh_passed, fh_failed;

void fh_check(bool ok, const char *fmt, ...)
{
    va_list ap;

    printf("%s - ", ok ? "ok" : "not ok");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (ok) {
        fh_passed++;
    } else {
        fh_failed++;
    }
}

int fh_summary(void)
{
    printf("%d passed, %d failed\n", fh_passed, fh_failed);
    return fh_failed ? 1 : 0;
}

uint64_t fh_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ mediator */

int fh_mediator_spawn(struct fh_mediator *m, const char *dir, const char *const *extra)
{
    const char *exe = getenv("VGPU_MEDIATOR");
    const char *argv[48];
    int argc = 0;

    if (!exe) {
        fprintf(stderr, "VGPU_MEDIATOR is not set\n");
        return -ENOENT;
    }
    if (dir == m->dir) {
        /* restart in the same directory */
    } else if (dir) {
        snprintf(m->dir, sizeof(m->dir), "%s", dir);
    } else {
        snprintf(m->dir, sizeof(m->dir), "/tmp/vgpu-ft-XXXXXX");
        if (!mkdtemp(m->dir)) {
            return -errno;
        }
    }
    snprintf(m->sock, sizeof(m->sock), "%s/run/mediator.sock", m->dir);
    snprintf(m->log, sizeof(m->log), "%s/mediator.log", m->dir);

    argv[argc++] = exe;
    argv[argc++] = "--socket-path";
    argv[argc++] = m->sock;
    argv[argc++] = "--backend";
    /* The GPU host runs some of these tests against the cuda backend. */
    argv[argc++] = getenv("FH_BACKEND") && *getenv("FH_BACKEND") ? getenv("FH_BACKEND") : "cpu";
    for (int i = 0; extra && extra[i] && argc < 46; i++) {
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;

    m->pid = fork();
    if (m->pid < 0) {
        return -errno;
    }
    if (m->pid == 0) {
        int fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
        }
        /* a clean fd table, so fd counting sees only the mediator's own */
        for (int i = 3; i < 1024; i++) {
            close(i);
        }
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    return 0;
}

int fh_mediator_start(struct fh_mediator *m, const char *dir, const char *const *extra)
{
    uint64_t deadline;
    int r = fh_mediator_spawn(m, dir, extra);

    if (r < 0) {
        return r;
    }
    deadline = fh_now_ms() + 10000;
    while (fh_now_ms() < deadline) {
        int s = fh_connect(m->sock);
        int status;

        if (s >= 0) {
            close(s);
            return 0;
        }
        if (waitpid(m->pid, &status, WNOHANG) == m->pid) {
            fprintf(stderr, "mediator exited during start-up (status 0x%x)\n", status);
            fh_mediator_dump_log(m, 20);
            m->pid = 0;
            return -ECHILD;
        }
        sleep_ms(10);
    }
    fh_mediator_stop(m, true);
    return -ETIMEDOUT;
}

int fh_mediator_stop(struct fh_mediator *m, bool kill9)
{
    uint64_t deadline = fh_now_ms() + 10000;
    int status;

    if (m->pid <= 0) {
        return -ECHILD;
    }
    kill(m->pid, kill9 ? SIGKILL : SIGTERM);
    while (fh_now_ms() < deadline) {
        pid_t r = waitpid(m->pid, &status, WNOHANG);
        if (r == m->pid) {
            m->pid = 0;
            return status;
        }
        sleep_ms(5);
    }
    kill(m->pid, SIGKILL);
    waitpid(m->pid, &status, 0);
    m->pid = 0;
    return -ETIMEDOUT;
}

void fh_mediator_cleanup(struct fh_mediator *m)
{
    char p[192];

    if (m->pid > 0) {
        fh_mediator_stop(m, true);
    }
    if (!m->dir[0]) {
        return;
    }
    unlink(m->sock);
    snprintf(p, sizeof(p), "%s/run", m->dir);
    rmdir(p);
    if (getenv("VGPU_KEEP_LOGS") == NULL) {
        unlink(m->log);
    } else {
        fprintf(stderr, "mediator log kept: %s\n", m->log);
    }
    rmdir(m->dir);
}

void fh_mediator_dump_log(const struct fh_mediator *m, int tail_lines)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", tail_lines, m->log);
    if (system(cmd) != 0) {
        fprintf(stderr, "(no mediator log)\n");
    }
}

int fh_count_fds(pid_t pid)
{
    char p[64];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
    d = opendir(p);
    if (!d) {
        return -errno;
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n;
}

char *fh_mediator_status(const struct fh_mediator *m)
{
    const char *exe = getenv("VGPU_MEDIATOR");
    char cmd[512];
    size_t cap = 1 << 16, len = 0;
    char *buf;
    FILE *f;

    snprintf(cmd, sizeof(cmd), "timeout 10 '%s' --status --socket-path '%s'", exe, m->sock);
    f = popen(cmd, "r");
    if (!f) {
        return NULL;
    }
    buf = malloc(cap + 1);
    if (buf) {
        size_t n;
        while (len < cap && (n = fread(buf + len, 1, cap - len, f)) > 0) {
            len += n;
        }
        buf[len] = '\0';
    }
    if (pclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ------------------------------------------------------------ raw device */

int fh_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (s < 0) {
        return -errno;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = -errno;
        close(s);
        return e;
    }
    return s;
}

int fh_memfd(uint64_t size, bool seal)
{
    int fd = memfd_create("vgpu-ft", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    if (fd < 0) {
        return -errno;
    }
    if (ftruncate(fd, (off_t)size) < 0 ||
        (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int fh_send(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 16)];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (nfds > 16) {
        return -EINVAL;
    }
    if (nfds > 0) {
        struct cmsghdr *c;
        memset(&ctl, 0, sizeof(ctl));
        msg.msg_control = ctl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n < 0) {
        return -errno;
    }
    return (size_t)n == len ? 0 : -EIO;
}

static int recv_full(int sock, void *buf, size_t len, uint64_t deadline)
{
    uint8_t *p = buf;
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = { .fd = sock, .events = POLLIN };
        uint64_t now = fh_now_ms();
        ssize_t n;

        if (now >= deadline) {
            return -ETIMEDOUT;
        }
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0) {
            continue;
        }
        n = recv(sock, p + got, len - got, MSG_DONTWAIT);
        if (n == 0) {
            return got ? -EPIPE : 0;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            return errno == ECONNRESET ? 0 : -errno;
        }
        got += (size_t)n;
    }
    return 1;
}

int fh_recv_msg(int sock, void *buf, size_t cap, int timeout_ms)
{
    uint64_t deadline = fh_now_ms() + (uint64_t)timeout_ms;
    struct vgpu_msg_hdr h;
    int r = recv_full(sock, &h, sizeof(h), deadline);

    if (r <= 0) {
        return r;
    }
    if (h.size < sizeof(h) || h.size > cap) {
        return -EMSGSIZE;
    }
    memcpy(buf, &h, sizeof(h));
    r = recv_full(sock, (uint8_t *)buf + sizeof(h), h.size - sizeof(h), deadline);
    if (r < 0) {
        return r;
    }
    if (r == 0 && h.size > sizeof(h)) {
        return -EPIPE;
    }
    return (int)h.size;
}

int fh_expect_error_close(int sock, int timeout_ms)
{
    uint8_t buf[VGPU_MSG_MAX_SIZE];
    struct vgpu_msg_error *e = (struct vgpu_msg_error *)buf;
    int r, code;

    r = fh_recv_msg(sock, buf, sizeof(buf), timeout_ms);
    if (r != (int)sizeof(*e) || e->hdr.type != VGPU_MSG_ERROR) {
        return -1;
    }
    code = (int)e->code;
    /* then the mediator closes */
    r = fh_recv_msg(sock, buf, sizeof(buf), timeout_ms);
    return r == 0 ? code : -1;
}

void fh_hello_init(struct vgpu_msg_hello *h, uint32_t vm_id, uint64_t shm_size)
{
    memset(h, 0, sizeof(*h));
    h->hdr.type = VGPU_MSG_HELLO;
    h->hdr.size = sizeof(*h);
    h->hdr.seq = 1;
    h->version_major = VGPU_PROTO_VERSION_MAJOR;
    h->version_minor = VGPU_PROTO_VERSION_MINOR;
    h->abi_version = VGPU_ABI_VERSION;
    h->vm_id = vm_id;
    h->priority = 1;
    h->weight = 1;
    h->shm_size = shm_size;
    snprintf(h->vm_name, sizeof(h->vm_name), "ft-vm%u", vm_id);
}

static int dev_hello(struct fh_dev *d, const char *path, uint32_t vm_id)
{
    struct vgpu_msg_hello h;
    uint8_t buf[256];
    int r;

    d->sock = fh_connect(path);
    if (d->sock < 0) {
        return d->sock;
    }
    fh_hello_init(&h, vm_id, d->shm_size);
    if (d->doorbell_fd >= 0) {
        int fds[2] = { d->memfd, d->doorbell_fd };

        h.features |= VGPU_FEAT_DOORBELL_FD;
        r = fh_send(d->sock, &h, sizeof(h), fds, 2);
    } else {
        r = fh_send(d->sock, &h, sizeof(h), &d->memfd, 1);
    }
    if (r < 0) {
        return r;
    }
    r = fh_recv_msg(d->sock, buf, sizeof(buf), 5000);
    if (r == (int)sizeof(struct vgpu_msg_welcome) &&
        ((struct vgpu_msg_hdr *)buf)->type == VGPU_MSG_WELCOME) {
        memcpy(&d->welcome, buf, sizeof(d->welcome));
        return 0;
    }
    if (r > 0 && ((struct vgpu_msg_hdr *)buf)->type == VGPU_MSG_ERROR) {
        fprintf(stderr, "HELLO refused: %s\n", ((struct vgpu_msg_error *)buf)->text);
        return -EPROTO;
    }
    return r < 0 ? r : -EPROTO;
}

int fh_dev_open(struct fh_dev *d, const char *path, uint32_t vm_id, uint64_t shm_size)
{
    return fh_dev_open_ex(d, path, vm_id, shm_size, false);
}

int fh_dev_open_ex(struct fh_dev *d, const char *path, uint32_t vm_id, uint64_t shm_size,
                   bool eventfd_doorbell)
{
    int r;

    memset(d, 0, sizeof(*d));
    d->sock = -1;
    d->doorbell_fd = -1;
    d->shm_size = shm_size;
    if (eventfd_doorbell) {
        d->doorbell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (d->doorbell_fd < 0) {
            return -errno;
        }
    }
    d->memfd = fh_memfd(shm_size, true);
    if (d->memfd < 0) {
        return d->memfd;
    }
    d->shm = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, d->memfd, 0);
    if (d->shm == MAP_FAILED) {
        r = -errno;
        close(d->memfd);
        return r;
    }
    d->ctrl = vgpu_shm_ctrl(d->shm);
    memset(d->ctrl, 0, sizeof(*d->ctrl));
    return dev_hello(d, path, vm_id);
}

int fh_dev_reconnect(struct fh_dev *d, const char *path, uint32_t vm_id)
{
    if (d->sock >= 0) {
        close(d->sock);
    }
    return dev_hello(d, path, vm_id);
}

void fh_dev_close(struct fh_dev *d)
{
    if (d->sock >= 0) {
        close(d->sock);
        d->sock = -1;
    }
    if (d->shm && d->shm != MAP_FAILED) {
        munmap(d->shm, d->shm_size);
        d->shm = NULL;
    }
    if (d->memfd >= 0) {
        close(d->memfd);
        d->memfd = -1;
    }
    if (d->doorbell_fd >= 0) {
        close(d->doorbell_fd);
        d->doorbell_fd = -1;
    }
}

void fh_dev_queue(struct fh_dev *d, const struct vgpu_sqe *sqe)
{
    memcpy(&vgpu_shm_sq(d->shm)[vgpu_ring_slot(d->sq_tail, VGPU_SQ_ENTRIES)], sqe, sizeof(*sqe));
    d->sq_tail++;
    vgpu_store_release(&d->ctrl->sq_tail, d->sq_tail);
}

int fh_dev_kick(struct fh_dev *d)
{
    struct vgpu_msg_kick k = { .hdr = { .type = VGPU_MSG_KICK, .size = sizeof(k) } };

    if (d->doorbell_fd >= 0 && (d->welcome.features & VGPU_FEAT_DOORBELL_FD)) {
        uint64_t one = 1;
        return write(d->doorbell_fd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
    }
    k.hdr.seq = ++d->seq;
    k.sq_tail = d->sq_tail;
    return fh_send(d->sock, &k, sizeof(k), NULL, 0);
}

int fh_dev_wait(struct fh_dev *d, struct vgpu_cqe *out, int timeout_ms)
{
    uint64_t deadline = fh_now_ms() + (uint64_t)timeout_ms;

    for (;;) {
        uint32_t tail = vgpu_load_acquire(&d->ctrl->cq_tail);
        struct pollfd pfd = { .fd = d->sock, .events = POLLIN };
        uint64_t now;

        if (tail != d->cq_head) {
            memcpy(out, &vgpu_shm_cq(d->shm)[vgpu_ring_slot(d->cq_head, VGPU_CQ_ENTRIES)],
                   sizeof(*out));
            d->cq_head++;
            vgpu_store_release(&d->ctrl->cq_head, d->cq_head);
            return 0;
        }
        now = fh_now_ms();
        if (now >= deadline) {
            return -ETIMEDOUT;
        }
        if (d->sock < 0) {
            sleep_ms(1);
            continue;
        }
        if (poll(&pfd, 1, (int)(deadline - now > 100 ? 100 : deadline - now)) > 0) {
            uint8_t buf[256];
            int r = fh_recv_msg(d->sock, buf, sizeof(buf), 1000);
            if (r == 0) {
                close(d->sock);
                d->sock = -1;  /* link down; completions may still be in the CQ */
                if (vgpu_load_acquire(&d->ctrl->cq_tail) == d->cq_head) {
                    return -ENOLINK;
                }
            }
        }
    }
}

bool fh_status_row_has(const char *status, const char *name, unsigned prio, unsigned weight)
{
    const char *row = strstr(status, name);
    unsigned sess, vm, p, w;
    char nm[32];

    if (!row) {
        return false;
    }
    while (row > status && row[-1] != '\n') {
        row--;
    }
    return sscanf(row, "%u %u %31s %u %u", &sess, &vm, nm, &p, &w) == 5 && p == prio &&
           w == weight;
}

bool fh_file_contains(const char *path, const char *what)
{
    char line[1024];
    bool found = false;
    FILE *f = fopen(path, "re");

    if (!f) {
        return false;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        found = strstr(line, what) != NULL;
    }
    fclose(f);
    return found;
}
