/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Minimal qtest protocol client; see qtest-client.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qtest-client.h"

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(struct qt *qt, int err, const char *fmt, ...)
{
    va_list ap;

    if (!qt->failed) {
        fprintf(stderr, "qtest-client: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
    }
    qt->failed = true;
    return -err;
}

int qt_start(struct qt *qt, const char *qemu, const char *machine,
             const char *dir, const char *log_path, const char *const *extra)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char sockarg[sizeof(sa.sun_path) + 8];
    const char *argv[64];
    struct pollfd pfd;
    int lfd, argc = 0, r, i;

    memset(qt, 0, offsetof(struct qt, rx));
    qt->fd = -1;
    qt->pid = -1;
    qt->reply_timeout_ms = 10000;

    if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/qtest.sock", dir) >=
        sizeof(sa.sun_path)) {
        return fail(qt, ENAMETOOLONG, "socket path too long");
    }
    unlink(sa.sun_path);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        return fail(qt, errno, "socket: %s", strerror(errno));
    }
    if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
        r = errno;
        close(lfd);
        return fail(qt, r, "bind/listen %s: %s", sa.sun_path, strerror(r));
    }
    snprintf(sockarg, sizeof(sockarg), "unix:%s", sa.sun_path);

    argv[argc++] = qemu;
    argv[argc++] = "-machine";
    argv[argc++] = machine;
    argv[argc++] = "-accel";
    argv[argc++] = "qtest";
    argv[argc++] = "-qtest";
    argv[argc++] = sockarg;
    argv[argc++] = "-display";
    argv[argc++] = "none";
    argv[argc++] = "-nodefaults";
    argv[argc++] = "-m";
    argv[argc++] = "128M";
    for (i = 0; extra && extra[i]; i++) {
        if (argc >= (int)(sizeof(argv) / sizeof(argv[0])) - 1) {
            close(lfd);
            return fail(qt, E2BIG, "too many QEMU arguments");
        }
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;

    qt->pid = fork();
    if (qt->pid < 0) {
        r = errno;
        close(lfd);
        return fail(qt, r, "fork: %s", strerror(r));
    }
    if (qt->pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execv(qemu, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", qemu, strerror(errno));
        _exit(127);
    }

    pfd.fd = lfd;
    pfd.events = POLLIN;
    r = poll(&pfd, 1, 20000);
    if (r <= 0) {
        close(lfd);
        return fail(qt, ETIMEDOUT, "QEMU did not connect to %s within 20 s (see %s)",
                    sa.sun_path, log_path);
    }
    qt->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    r = errno;
    close(lfd);
    unlink(sa.sun_path);
    if (qt->fd < 0) {
        return fail(qt, r, "accept: %s", strerror(r));
    }
    return 0;
}

bool qt_alive(struct qt *qt)
{
    int st;

    if (qt->pid <= 0) {
        return false;
    }
    if (waitpid(qt->pid, &st, WNOHANG) == qt->pid) {
        fprintf(stderr, "qtest-client: QEMU exited (status 0x%x)\n", st);
        qt->pid = -1;
        return false;
    }
    return true;
}

int qt_stop(struct qt *qt)
{
    int64_t deadline = now_ms() + 5000;
    int st = -1;

    if (qt->fd >= 0) {
        close(qt->fd);
        qt->fd = -1;
    }
    if (qt->pid <= 0) {
        return -1;
    }
    kill(qt->pid, SIGTERM);
    while (now_ms() < deadline) {
        if (waitpid(qt->pid, &st, WNOHANG) == qt->pid) {
            qt->pid = -1;
            return st;
        }
        usleep(10000);
    }
    kill(qt->pid, SIGKILL);
    waitpid(qt->pid, &st, 0);
    qt->pid = -1;
    return st;
}

static void handle_async(struct qt *qt, const char *line)
{
    unsigned n;

    if (sscanf(line, "IRQ raise %u", &n) == 1 && n < QT_MAX_IRQ) {
        qt->irq_level[n] = 1;
        qt->irq_raises[n]++;
    } else if (sscanf(line, "IRQ lower %u", &n) == 1 && n < QT_MAX_IRQ) {
        qt->irq_level[n] = 0;
    }
}

/*
 * Read until one non-async line is complete or @deadline passes. Returns the
 * line (in qt->rx, NUL-terminated; consumed by the next call), NULL on
 * timeout/EOF. With @async_only, returns NULL after draining what arrived.
 */
static char *read_line(struct qt *qt, int64_t deadline, bool async_only)
{
    /* Drop the line handed out last time. */
    if (qt->consumed) {
        memmove(qt->rx, qt->rx + qt->consumed, qt->rx_len - qt->consumed);
        qt->rx_len -= qt->consumed;
        qt->consumed = 0;
    }
    for (;;) {
        char *nl;
        struct pollfd pfd = { .fd = qt->fd, .events = POLLIN };
        int64_t left;
        ssize_t n;

        while ((nl = memchr(qt->rx, '\n', qt->rx_len))) {
            size_t len = nl - qt->rx + 1;

            *nl = '\0';
            if (!strncmp(qt->rx, "IRQ ", 4)) {
                handle_async(qt, qt->rx);
                memmove(qt->rx, qt->rx + len, qt->rx_len - len);
                qt->rx_len -= len;
                continue;
            }
            if (async_only) {
                *nl = '\n';
                return NULL;
            }
            qt->consumed = len;
            return qt->rx;
        }
        left = deadline - now_ms();
        if (left <= 0 || qt->rx_len >= sizeof(qt->rx) - 1) {
            return NULL;
        }
        if (poll(&pfd, 1, (int)left) <= 0) {
            if (async_only) {
                return NULL;
            }
            continue;
        }
        n = read(qt->fd, qt->rx + qt->rx_len, sizeof(qt->rx) - 1 - qt->rx_len);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            return NULL;
        }
        qt->rx_len += n;
    }
}

void qt_poll_async(struct qt *qt, int ms)
{
    if (qt->fd >= 0) {
        read_line(qt, now_ms() + ms, true);
    }
}

static int send_all(struct qt *qt, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(qt->fd, buf, len);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(qt, errno, "write to QEMU: %s", strerror(errno));
        }
        buf += n;
        len -= n;
    }
    return 0;
}

static int wait_ok(struct qt *qt, const char *what)
{
    char *line = read_line(qt, now_ms() + qt->reply_timeout_ms, false);

    if (!line) {
        return fail(qt, ETIMEDOUT, "no reply to '%.60s' (QEMU %s)", what,
                    qt_alive(qt) ? "alive" : "dead");
    }
    if (strncmp(line, "OK", 2) != 0) {
        return fail(qt, EPROTO, "'%.60s' -> '%.200s'", what, line);
    }
    qt->line = line + 2;
    while (*qt->line == ' ') {
        qt->line++;
    }
    return 0;
}

int qt_cmd(struct qt *qt, const char *fmt, ...)
{
    char small[256], *buf = small;
    va_list ap;
    int n, r;

    if (qt->fd < 0) {
        return fail(qt, ENOTCONN, "not connected to QEMU");
    }
    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small) - 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return fail(qt, EINVAL, "bad command format");
    }
    if ((size_t)n >= sizeof(small) - 1) {
        buf = malloc(n + 2);
        if (!buf) {
            return fail(qt, ENOMEM, "out of memory");
        }
        va_start(ap, fmt);
        vsnprintf(buf, n + 1, fmt, ap);
        va_end(ap);
    }
    buf[n] = '\n';
    r = send_all(qt, buf, n + 1);
    buf[n] = '\0';
    if (r == 0) {
        r = wait_ok(qt, buf);
    }
    if (buf != small) {
        free(buf);
    }
    return r;
}

int qt_cmd_repeat(struct qt *qt, const char *cmd, unsigned n)
{
    size_t len = strlen(cmd);
    unsigned i, sent = 0, got = 0;
    char *batch;
    int r = 0;

    /* Batches keep both directions' socket buffers from filling up. */
    batch = malloc((len + 1) * 256);
    if (!batch) {
        return fail(qt, ENOMEM, "out of memory");
    }
    while (got < n && r == 0) {
        unsigned k = n - sent < 256 ? n - sent : 256;

        for (i = 0; i < k; i++) {
            memcpy(batch + i * (len + 1), cmd, len);
            batch[i * (len + 1) + len] = '\n';
        }
        r = send_all(qt, batch, (size_t)k * (len + 1));
        sent += k;
        while (r == 0 && got < sent) {
            r = wait_ok(qt, cmd);
            got++;
        }
    }
    free(batch);
    return r;
}

static uint64_t reply_value(struct qt *qt)
{
    return qt->line ? strtoull(qt->line, NULL, 0) : 0;
}

#define QT_READ(name, type, cmd)                                              \
type name(struct qt *qt, uint64_t addr)                                       \
{                                                                             \
    if (qt_cmd(qt, cmd " 0x%" PRIx64, addr) < 0) {                            \
        return (type)~0ull;                                                   \
    }                                                                         \
    return (type)reply_value(qt);                                             \
}
QT_READ(qt_readb, uint8_t, "readb")
QT_READ(qt_readw, uint16_t, "readw")
QT_READ(qt_readl, uint32_t, "readl")
QT_READ(qt_readq, uint64_t, "readq")

#define QT_WRITE(name, type, cmd)                                             \
void name(struct qt *qt, uint64_t addr, type v)                               \
{                                                                             \
    qt_cmd(qt, cmd " 0x%" PRIx64 " 0x%" PRIx64, addr, (uint64_t)v);           \
}
QT_WRITE(qt_writeb, uint8_t, "writeb")
QT_WRITE(qt_writew, uint16_t, "writew")
QT_WRITE(qt_writel, uint32_t, "writel")
QT_WRITE(qt_writeq, uint64_t, "writeq")

uint32_t qt_inl(struct qt *qt, uint16_t port)
{
    if (qt_cmd(qt, "inl 0x%x", port) < 0) {
        return ~0u;
    }
    return (uint32_t)reply_value(qt);
}

void qt_outl(struct qt *qt, uint16_t port, uint32_t v)
{
    qt_cmd(qt, "outl 0x%x 0x%x", port, v);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Chunks keep each command line well below the qtest input buffer sizes. */
#define QT_CHUNK 32768

int qt_memread(struct qt *qt, uint64_t addr, void *buf, size_t len)
{
    uint8_t *out = buf;

    while (len) {
        size_t n = len < QT_CHUNK ? len : QT_CHUNK, i;
        const char *p;
        int r = qt_cmd(qt, "read 0x%" PRIx64 " 0x%zx", addr, n);

        if (r < 0) {
            return r;
        }
        p = qt->line;
        if (strncmp(p, "0x", 2) != 0 || strlen(p) < 2 + 2 * n) {
            return fail(qt, EPROTO, "bad read reply");
        }
        p += 2;
        for (i = 0; i < n; i++) {
            int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);

            if (hi < 0 || lo < 0) {
                return fail(qt, EPROTO, "bad hex in read reply");
            }
            out[i] = (uint8_t)(hi << 4 | lo);
        }
        out += n;
        addr += n;
        len -= n;
    }
    return 0;
}

int qt_memwrite(struct qt *qt, uint64_t addr, const void *buf, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *in = buf;
    char *line = malloc(2 * QT_CHUNK + 3);

    if (!line) {
        return fail(qt, ENOMEM, "out of memory");
    }
    while (len) {
        size_t n = len < QT_CHUNK ? len : QT_CHUNK, i;
        int r;

        line[0] = '0';
        line[1] = 'x';
        for (i = 0; i < n; i++) {
            line[2 + 2 * i] = hex[in[i] >> 4];
            line[3 + 2 * i] = hex[in[i] & 15];
        }
        line[2 + 2 * n] = '\0';
        r = qt_cmd(qt, "write 0x%" PRIx64 " 0x%zx %s", addr, n, line);
        if (r < 0) {
            free(line);
            return r;
        }
        in += n;
        addr += n;
        len -= n;
    }
    free(line);
    return 0;
}

static uint32_t cfg_addr(unsigned devfn, unsigned off)
{
    return 0x80000000u | (devfn & 0xff) << 8 | (off & 0xfc);
}

uint32_t qt_pci_cfg_readl(struct qt *qt, unsigned devfn, unsigned off)
{
    qt_outl(qt, 0xcf8, cfg_addr(devfn, off));
    return qt_inl(qt, 0xcfc);
}

uint16_t qt_pci_cfg_readw(struct qt *qt, unsigned devfn, unsigned off)
{
    return (uint16_t)(qt_pci_cfg_readl(qt, devfn, off) >> ((off & 2) * 8));
}

uint8_t qt_pci_cfg_readb(struct qt *qt, unsigned devfn, unsigned off)
{
    return (uint8_t)(qt_pci_cfg_readl(qt, devfn, off) >> ((off & 3) * 8));
}

void qt_pci_cfg_writel(struct qt *qt, unsigned devfn, unsigned off, uint32_t v)
{
    qt_outl(qt, 0xcf8, cfg_addr(devfn, off));
    qt_outl(qt, 0xcfc, v);
}

void qt_pci_cfg_writew(struct qt *qt, unsigned devfn, unsigned off, uint16_t v)
{
    qt_outl(qt, 0xcf8, cfg_addr(devfn, off));
    qt_cmd(qt, "outw 0x%x 0x%x", 0xcfc + (off & 2), v);
}
