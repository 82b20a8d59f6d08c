/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Device tests of vgpu-stub: QEMU (q35, -accel qtest) with the device, driven
 * through the qtest protocol, against the real vgpu-mediator (cpu backend).
 * The test plays the guest driver: it programs the BARs, writes SQEs into
 * BAR2, rings the doorbell and reads completions and interrupts back.
 *
 * usage: vgpu-stub-test [CASE...]   (no argument: every case)
 * env:   VGPU_QEMU        QEMU binary with vgpu-stub (required to exist)
 *        VGPU_MEDIATOR    vgpu-mediator binary
 *        VGPU_QTEST_KEEP  keep each case's logs (printed directory)
 *
 * Every case has a deadline (SIGALRM kills its processes and fails it);
 * every wait inside a case has its own, shorter one.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vgpu/abi.h"
#include "vgpu/protocol.h"
#include "qtest-client.h"

#ifndef VGPU_QEMU_DEFAULT
#define VGPU_QEMU_DEFAULT "build/qemu/qemu-system-x86_64"
#endif
#ifndef VGPU_MEDIATOR_DEFAULT
#define VGPU_MEDIATOR_DEFAULT "build/mediator/vgpu-mediator"
#endif

#define CASE_DEADLINE_S 120

/* Guest-physical addresses the test assigns (firmware does not run). */
#define BAR0_ADDR   0xfebf0000ull               /* 32-bit PCI hole */
#define BAR2_Q35    0x800000000ull              /* q35's 64-bit PCI hole (32 GiB) */
#define BAR2_PC     0x100000000ull              /* i440fx's (2 GiB from 4 GiB) */
#define MSI_ADDR    0x00100000ull               /* guest RAM: the MSI lands here */
#define MSI_DATA    0x4321u

#define PCI_COMMAND         0x04
#define PCI_STATUS          0x06
#define PCI_CLASS_REVISION  0x08
#define PCI_BAR0            0x10
#define PCI_BAR2            0x18
#define PCI_BAR3            0x1c
#define PCI_CAP_PTR         0x34
#define PCI_INTERRUPT_PIN   0x3d
#define PCI_CMD_MEM         0x0002
#define PCI_CMD_MASTER      0x0004
#define PCI_CMD_INTX_DIS    0x0400
#define PCI_CAP_ID_MSI      0x05

struct env {
    char dir[64];
    char med_sock[96];
    char med_log[128];
    char qemu_log[128];
    char guest_log[128];
    const char *qemu;
    const char *mediator;
    pid_t med_pid;
    struct qt qt;
    const char *machine;        /* q35 unless a case needs another */
    uint64_t bar2;
    unsigned devfn;
    unsigned msi_cap;
    uint32_t sq_tail;           /* the test's own copy, like a guest driver */
    uint32_t cq_head;
    bool kick_msgs;             /* device started with ioeventfd=off */
    const char *dev_extra;      /* appended to the -device options, or NULL */
};

static struct env *cur;         /* for the SIGALRM handler */
static const char *case_name;

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

#define CHECK(cond, ...) do {                                                 \
        if (!(cond)) {                                                        \
            fprintf(stderr, "FAIL %s:%d [%s]: %s: ", __FILE__, __LINE__,      \
                    case_name, #cond);                                        \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
            goto out;                                                         \
        }                                                                     \
    } while (0)

/* No qtest command may have failed since the last check. */
#define CHECK_QT(e) CHECK(!(e)->qt.failed, "a qtest command failed")

static void on_alarm(int sig)
{
    static const char msg[] = "FAIL: case deadline exceeded\n";

    (void)sig;
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more we can do */
    }
    if (cur) {
        if (cur->qt.pid > 0) {
            kill(cur->qt.pid, SIGKILL);
        }
        if (cur->med_pid > 0) {
            kill(cur->med_pid, SIGKILL);
        }
    }
    _exit(1);
}

static void dump_file(const char *what, const char *path)
{
    char line[512];
    FILE *f = fopen(path, "r");
    long size;

    if (!f) {
        return;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    /* The tail is what explains a failure. */
    fseek(f, size > 6000 ? size - 6000 : 0, SEEK_SET);
    fprintf(stderr, "---- %s (%s) ----\n", what, path);
    while (fgets(line, sizeof(line), f)) {
        fputs(line, stderr);
    }
    fclose(f);
}

static int count_in_file(const char *path, const char *needle)
{
    char line[1024];
    FILE *f = fopen(path, "r");
    int n = 0;

    if (!f) {
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, needle)) {
            n++;
        }
    }
    fclose(f);
    return n;
}

/*
 * The doorbells went the way the case asked for: KICK messages (the device's
 * KICKS counter moves, the mediator logged "doorbell KICK messages"), or the
 * eventfd (no KICK message at all, the mediator logged "doorbell eventfd").
 */
#define CHECK_DOORBELL_PATH(e)                                                              \
    do {                                                                                    \
        uint32_t k_ = reg((e), VGPU_REG_KICKS);                                             \
        CHECK((e)->kick_msgs ? k_ > 0 : k_ == 0, "KICK messages: %u (ioeventfd %s)", k_,    \
              (e)->kick_msgs ? "off" : "on");                                               \
        CHECK(count_in_file((e)->med_log, (e)->kick_msgs ? "doorbell KICK messages"         \
                                                         : "doorbell eventfd") >= 1,       \
              "the mediator's log names the doorbell path");                                \
    } while (0)

static pid_t spawn(const char *const *argv, const char *log_path)
{
    pid_t pid = fork();

    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Wait up to @ms for @pid to exit; returns its status or -1 (still running). */
static int wait_exit(pid_t pid, int ms)
{
    int64_t deadline = now_ms() + ms;
    int st;

    do {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            return st;
        }
        sleep_ms(10);
    } while (now_ms() < deadline);
    return -1;
}

static bool mediator_alive(struct env *e)
{
    int st;

    if (e->med_pid <= 0) {
        return false;
    }
    if (waitpid(e->med_pid, &st, WNOHANG) == e->med_pid) {
        fprintf(stderr, "mediator exited (status 0x%x)\n", st);
        e->med_pid = -1;
        return false;
    }
    return true;
}

static int start_mediator(struct env *e)
{
    const char *argv[] = {
        e->mediator, "--socket-path", e->med_sock, "--backend", "cpu", NULL,
    };
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int64_t deadline = now_ms() + 10000;

    e->med_pid = spawn(argv, e->med_log);
    if (e->med_pid < 0) {
        return -errno;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->med_sock);
    /* Ready when it accepts connections (a bare connect, closed at once). */
    while (now_ms() < deadline) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));

        close(fd);
        if (r == 0) {
            return 0;
        }
        if (!mediator_alive(e)) {
            return -ECHILD;
        }
        sleep_ms(20);
    }
    return -ETIMEDOUT;
}

static void stop_mediator(struct env *e, int sig)
{
    if (e->med_pid <= 0) {
        return;
    }
    kill(e->med_pid, sig);
    if (wait_exit(e->med_pid, 5000) < 0) {
        kill(e->med_pid, SIGKILL);
        waitpid(e->med_pid, NULL, 0);
    }
    e->med_pid = -1;
}

static int env_init(struct env *e)
{
    memset(e, 0, sizeof(*e));
    e->med_pid = -1;
    e->machine = "q35";
    e->bar2 = BAR2_Q35;
    e->qt.pid = -1;
    e->qt.fd = -1;
    e->qemu = getenv("VGPU_QEMU") ? getenv("VGPU_QEMU") : VGPU_QEMU_DEFAULT;
    e->mediator = getenv("VGPU_MEDIATOR") ? getenv("VGPU_MEDIATOR") : VGPU_MEDIATOR_DEFAULT;
    if (access(e->qemu, X_OK) != 0) {
        fprintf(stderr, "FAIL: QEMU '%s' is not executable (set VGPU_QEMU; "
                "build it with scripts/build-qemu.sh build/qemu)\n", e->qemu);
        return -ENOENT;
    }
    if (access(e->mediator, X_OK) != 0) {
        fprintf(stderr, "FAIL: mediator '%s' is not executable (set VGPU_MEDIATOR)\n",
                e->mediator);
        return -ENOENT;
    }
    snprintf(e->dir, sizeof(e->dir), "/tmp/vgpu-qtest-XXXXXX");
    if (!mkdtemp(e->dir)) {
        return -errno;
    }
    snprintf(e->med_sock, sizeof(e->med_sock), "%s/med.sock", e->dir);
    snprintf(e->med_log, sizeof(e->med_log), "%s/mediator.log", e->dir);
    snprintf(e->qemu_log, sizeof(e->qemu_log), "%s/qemu.log", e->dir);
    snprintf(e->guest_log, sizeof(e->guest_log), "%s/guest-errors.log", e->dir);
    cur = e;
    return 0;
}

static void env_fini(struct env *e, bool failed)
{
    char path[192];
    static const char *const files[] = {
        "med.sock", "mediator.log", "qemu.log", "guest-errors.log", "qtest.sock",
        "qmp.sock", "qtest.log",
    };
    size_t i;

    qt_stop(&e->qt);
    stop_mediator(e, SIGTERM);
    if (failed) {
        dump_file("QEMU", e->qemu_log);
        dump_file("QEMU guest errors", e->guest_log);
        dump_file("mediator", e->med_log);
    }
    cur = NULL;
    if (getenv("VGPU_QTEST_KEEP")) {
        printf("# logs kept in %s\n", e->dir);
        return;
    }
    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", e->dir, files[i]);
        unlink(path);
    }
    rmdir(e->dir);
}

#define VGPU_DEVICE_ARGS "vgpu-stub,chardev=med,memdev=shm,vm-id=7,vm-name=qt,priority=1,weight=2"

/*
 * QEMU with the shared memory and the chardev; the device itself on the
 * command line, or (@hotplug) left for a QMP device_add on a monitor socket.
 */
static int start_qemu_opts(struct env *e, const char *shm_size, bool hotplug)
{
    char obj[128], chr[256], qlog[128], qmp[160], dev[160];
    const char *extra[] = {
        "-object", obj, "-chardev", chr,
        "-d", "guest_errors", "-D", e->guest_log, "-qtest-log", qlog,
        hotplug ? "-qmp" : "-device", hotplug ? qmp : dev, NULL,
    };

    snprintf(dev, sizeof(dev), "%s%s%s", VGPU_DEVICE_ARGS, e->kick_msgs ? ",ioeventfd=off" : "",
             e->dev_extra ? e->dev_extra : "");

    /* The qtest command trace is large (hex dumps); only kept on request. */
    if (getenv("VGPU_QTEST_KEEP")) {
        snprintf(qlog, sizeof(qlog), "%s/qtest.log", e->dir);
    } else {
        snprintf(qlog, sizeof(qlog), "none");
    }
    snprintf(obj, sizeof(obj), "memory-backend-memfd,id=shm,size=%s,share=on", shm_size);
    snprintf(chr, sizeof(chr), "socket,id=med,path=%s,reconnect=1", e->med_sock);
    snprintf(qmp, sizeof(qmp), "unix:%s/qmp.sock,server=on,wait=off", e->dir);
    return qt_start(&e->qt, e->qemu, e->machine, e->dir, e->qemu_log, extra);
}

static int start_qemu(struct env *e, const char *shm_size)
{
    return start_qemu_opts(e, shm_size, false);
}

static uint32_t reg(struct env *e, unsigned off)
{
    return qt_readl(&e->qt, BAR0_ADDR + off);
}

static void reg_write(struct env *e, unsigned off, uint32_t v)
{
    qt_writel(&e->qt, BAR0_ADDR + off, v);
}

static uint32_t ctrl_read(struct env *e, size_t off)
{
    return qt_readl(&e->qt, e->bar2 + VGPU_SHM_CTRL_OFFSET + off);
}

static void ctrl_write(struct env *e, size_t off, uint32_t v)
{
    qt_writel(&e->qt, e->bar2 + VGPU_SHM_CTRL_OFFSET + off, v);
}

/* Find the device on bus 0; returns 0 and sets e->devfn, or -ENODEV. */
static int find_device(struct env *e)
{
    unsigned slot;

    for (slot = 0; slot < 32; slot++) {
        uint32_t id = qt_pci_cfg_readl(&e->qt, slot << 3, 0);

        if (e->qt.failed) {
            return -EIO;
        }
        if ((id & 0xffff) == VGPU_PCI_VENDOR_ID && (id >> 16) == VGPU_PCI_DEVICE_ID) {
            e->devfn = slot << 3;
            return 0;
        }
    }
    return -ENODEV;
}

static unsigned find_cap(struct env *e, uint8_t id)
{
    unsigned ptr, hops = 0;

    if (!(qt_pci_cfg_readw(&e->qt, e->devfn, PCI_STATUS) & 0x10)) {
        return 0;
    }
    ptr = qt_pci_cfg_readb(&e->qt, e->devfn, PCI_CAP_PTR) & 0xfc;
    while (ptr && hops++ < 48) {
        uint32_t hdr = qt_pci_cfg_readl(&e->qt, e->devfn, ptr);

        if ((hdr & 0xff) == id) {
            return ptr;
        }
        ptr = (hdr >> 8) & 0xfc;
    }
    return 0;
}

/* What firmware would do: assign BARs, enable memory decoding and DMA. */
static int setup_device(struct env *e)
{
    int r = find_device(e);

    if (r < 0) {
        return r;
    }
    qt_pci_cfg_writel(&e->qt, e->devfn, PCI_BAR0, (uint32_t)BAR0_ADDR);
    qt_pci_cfg_writel(&e->qt, e->devfn, PCI_BAR2, (uint32_t)e->bar2);
    qt_pci_cfg_writel(&e->qt, e->devfn, PCI_BAR3, (uint32_t)(e->bar2 >> 32));
    qt_pci_cfg_writew(&e->qt, e->devfn, PCI_COMMAND, PCI_CMD_MEM | PCI_CMD_MASTER);
    e->msi_cap = find_cap(e, PCI_CAP_ID_MSI);
    if (e->qt.failed) {
        return -EIO;
    }
    if (reg(e, VGPU_REG_MAGIC) != VGPU_MAGIC) {
        fprintf(stderr, "BAR0 at 0x%llx does not show the magic\n", BAR0_ADDR);
        return -EIO;
    }
    return 0;
}

static int wait_link(struct env *e, bool up, int ms)
{
    int64_t deadline = now_ms() + ms;

    do {
        uint32_t link = reg(e, VGPU_REG_LINK_STATUS);

        if (e->qt.failed) {
            return -EIO;
        }
        if (!!(link & VGPU_LINK_UP) == up) {
            return 0;
        }
        qt_poll_async(&e->qt, 10);
    } while (now_ms() < deadline);
    return -ETIMEDOUT;
}

/*
 * The CQE is visible in shared memory before QEMU has read the mediator's
 * NOTIFY: wait for the interrupt cause. Once it shows, any INTx change it
 * caused was sent before the register's reply and has been processed.
 */
static bool wait_irq_status(struct env *e, uint32_t bits, int ms)
{
    int64_t deadline = now_ms() + ms;

    do {
        if ((reg(e, VGPU_REG_IRQ_STATUS) & bits) == bits) {
            return true;
        }
        if (e->qt.failed) {
            return false;
        }
        qt_poll_async(&e->qt, 5);
    } while (now_ms() < deadline);
    return false;
}

static void put_sqe(struct env *e, const struct vgpu_sqe *sqe)
{
    uint32_t slot = e->sq_tail % VGPU_SQ_ENTRIES;

    qt_memwrite(&e->qt, e->bar2 + VGPU_SHM_SQ_OFFSET + slot * sizeof(*sqe),
                sqe, sizeof(*sqe));
    e->sq_tail++;
}

/* Publish the tail and ring the doorbell. */
static void publish(struct env *e)
{
    ctrl_write(e, offsetof(struct vgpu_shm_ctrl, sq_tail), e->sq_tail);
    reg_write(e, VGPU_REG_DOORBELL, 1);
}

static void submit(struct env *e, const struct vgpu_sqe *sqe)
{
    put_sqe(e, sqe);
    publish(e);
}

/* Wait until at least @n unconsumed completions exist; returns how many. */
static uint32_t wait_cq(struct env *e, uint32_t n, int ms)
{
    int64_t deadline = now_ms() + ms;
    uint32_t avail;

    do {
        avail = ctrl_read(e, offsetof(struct vgpu_shm_ctrl, cq_tail)) - e->cq_head;
        if (e->qt.failed || avail >= n) {
            break;
        }
        qt_poll_async(&e->qt, 5);
    } while (now_ms() < deadline);
    return avail;
}

static void pop_cqe(struct env *e, struct vgpu_cqe *cqe)
{
    uint32_t slot = e->cq_head % VGPU_CQ_ENTRIES;

    qt_memread(&e->qt, e->bar2 + VGPU_SHM_CQ_OFFSET + slot * sizeof(*cqe),
               cqe, sizeof(*cqe));
    e->cq_head++;
    ctrl_write(e, offsetof(struct vgpu_shm_ctrl, cq_head), e->cq_head);
}

static struct vgpu_sqe nop(uint32_t tag)
{
    struct vgpu_sqe s = { .opcode = VGPU_OP_NOP, .tag = tag,
                          .user_data = 0xabcd0000ull + tag };
    return s;
}

/* The interrupt line the device drives: the ioapic input that is high. */
static int irq_high(struct env *e)
{
    int i;

    for (i = 0; i < QT_MAX_IRQ; i++) {
        if (e->qt.irq_level[i]) {
            return i;
        }
    }
    return -1;
}

static int start_all(struct env *e, const char *shm_size)
{
    int r;

    if ((r = start_mediator(e)) < 0) {
        fprintf(stderr, "mediator did not start: %s\n", strerror(-r));
        return r;
    }
    if ((r = start_qemu(e, shm_size)) < 0) {
        return r;
    }
    if ((r = setup_device(e)) < 0) {
        fprintf(stderr, "device setup failed: %s\n", strerror(-r));
        return r;
    }
    if ((r = wait_link(e, true, 10000)) < 0) {
        fprintf(stderr, "link did not come up: %s\n", strerror(-r));
        return r;
    }
    return 0;
}


/* ------------------------------------------------------------------------
 * A minimal QMP client (line-oriented JSON; enough for device_add/del).
 * ------------------------------------------------------------------------ */

struct qmp {
    int fd;
    size_t len;
    char buf[16384];
};

/* Next line within @ms into q->buf (NUL-terminated, consumed next call). */
static char *qmp_line(struct qmp *q, int ms, size_t *consumed)
{
    int64_t deadline = now_ms() + ms;

    if (*consumed) {
        memmove(q->buf, q->buf + *consumed, q->len - *consumed);
        q->len -= *consumed;
        *consumed = 0;
    }
    for (;;) {
        char *nl = memchr(q->buf, '\n', q->len);
        struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
        int64_t left = deadline - now_ms();
        ssize_t n;

        if (nl) {
            *nl = '\0';
            *consumed = nl - q->buf + 1;
            return q->buf;
        }
        if (left <= 0 || q->len >= sizeof(q->buf) - 1 || poll(&pfd, 1, (int)left) <= 0) {
            return NULL;
        }
        n = read(q->fd, q->buf + q->len, sizeof(q->buf) - 1 - q->len);
        if (n <= 0) {
            return NULL;
        }
        q->len += n;
    }
}

/*
 * Send @cmd and wait for the line containing @want (a "return", an "error"
 * or an event name); events seen on the way are skipped. Returns true when
 * @want was seen before "error" and within @ms.
 */
static bool qmp_expect(struct qmp *q, const char *cmd, const char *want, int ms)
{
    size_t consumed = 0;
    int64_t deadline = now_ms() + ms;
    char *line;

    if (cmd && write(q->fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) {
        return false;
    }
    while ((line = qmp_line(q, (int)(deadline - now_ms()), &consumed))) {
        if (strstr(line, want)) {
            break;
        }
        if (strstr(line, "\"error\"")) {
            fprintf(stderr, "QMP: %s\n", line);
            break;
        }
    }
    if (consumed) {
        memmove(q->buf, q->buf + consumed, q->len - consumed);
        q->len -= consumed;
    }
    return line && strstr(line, want);
}

static int qmp_open(struct env *e, struct qmp *q)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    q->len = 0;
    q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/qmp.sock", e->dir);
    if (q->fd < 0 || connect(q->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        return -errno;
    }
    if (!qmp_expect(q, NULL, "\"QMP\"", 5000) ||
        !qmp_expect(q, "{\"execute\":\"qmp_capabilities\"}\n", "\"return\"", 5000)) {
        return -EPROTO;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * A scripted mediator, for the device's side of the protocol: what it sends
 * and how it reacts to a misbehaving peer.
 * ------------------------------------------------------------------------ */

static int fake_listen(struct env *e)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->med_sock);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -errno;
    }
    return fd;
}

static int fake_accept(int lfd, int ms)
{
    struct pollfd pfd = { .fd = lfd, .events = POLLIN };

    if (poll(&pfd, 1, ms) <= 0) {
        return -ETIMEDOUT;
    }
    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* The second fd of the last HELLO the fake mediator read (the doorbell). */
static int fake_doorbell_fd = -1;

/*
 * Read exactly @len bytes within @ms, collecting one passed fd into *@rfd
 * (if not NULL) and a second one into fake_doorbell_fd (if that is free;
 * extra fds are closed). Returns @len, 0 on EOF, or -errno.
 */
static ssize_t fake_read(int fd, void *buf, size_t len, int *rfd, int ms)
{
    int64_t deadline = now_ms() + ms;
    size_t got = 0;

    while (got < len) {
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(4 * sizeof(int))];
        } cbuf;
        struct iovec iov = { (char *)buf + got, len - got };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = &cbuf, .msg_controllen = sizeof(cbuf) };
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        struct cmsghdr *c;
        int64_t left = deadline - now_ms();
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            return -ETIMEDOUT;
        }
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == ECONNRESET ? 0 : -errno;
        }
        for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                size_t i, nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int fds[4];

                memcpy(fds, CMSG_DATA(c), nfd * sizeof(int));
                for (i = 0; i < nfd; i++) {
                    if (rfd && *rfd < 0) {
                        *rfd = fds[i];
                    } else if (rfd && fake_doorbell_fd < 0) {
                        fake_doorbell_fd = fds[i];
                    } else {
                        close(fds[i]);
                    }
                }
            }
        }
        if (n == 0) {
            return 0;
        }
        got += n;
    }
    return (ssize_t)len;
}

/* One whole message into @buf (at most @cap bytes); returns its type or -errno/0. */
static int fake_recv(int fd, void *buf, size_t cap, int *rfd, int ms)
{
    struct vgpu_msg_hdr *h = buf;
    ssize_t n = fake_read(fd, buf, sizeof(*h), rfd, ms);

    if (n <= 0) {
        return (int)n;
    }
    if (h->size < sizeof(*h) || h->size > cap) {
        return -EPROTO;
    }
    if (h->size > sizeof(*h)) {
        n = fake_read(fd, (char *)buf + sizeof(*h), h->size - sizeof(*h), rfd, ms);
        if (n <= 0) {
            return n ? (int)n : -EPIPE;
        }
    }
    return h->type;
}

static int fake_send(int fd, const void *buf, size_t len, int pass_fd)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct iovec iov = { (void *)buf, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (pass_fd >= 0) {
        memset(&cbuf, 0, sizeof(cbuf));
        mh.msg_control = &cbuf;
        mh.msg_controllen = sizeof(cbuf);
        CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
        CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
        CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), &pass_fd, sizeof(int));
    }
    return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

static struct vgpu_msg_welcome fake_welcome(uint32_t seq)
{
    struct vgpu_msg_welcome w = {
        .hdr = { .type = VGPU_MSG_WELCOME, .size = sizeof(w), .seq = seq },
        .version_major = VGPU_PROTO_VERSION_MAJOR,
        .version_minor = VGPU_PROTO_VERSION_MINOR,
        .session_id = 77, .backend = VGPU_BACKEND_CUDA, .max_inflight = 16,
        .gpu_mem_mib = 81559, .gpu_sms = 132, .gpu_cc = 0x900,
        .gpu_name = "Fake H100",
    };
    return w;
}

/* A fake-mediator case's descriptors (any of them may be -1). */
static void fake_close(int lfd, int cfd, int shm_fd)
{
    const int fds[] = { shm_fd, cfd, lfd };

    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
}

/* Accept the device's (re)connection and check its HELLO; returns the fd. */
static int fake_expect_hello(struct env *e, int lfd, struct vgpu_msg_hello *hello,
                             int *shm_fd)
{
    int cfd = fake_accept(lfd, 5000);
    int type;

    if (cfd < 0) {
        fprintf(stderr, "the device did not (re)connect\n");
        return -ETIMEDOUT;
    }
    *shm_fd = -1;
    if (fake_doorbell_fd >= 0) {
        close(fake_doorbell_fd);
        fake_doorbell_fd = -1;
    }
    type = fake_recv(cfd, hello, sizeof(*hello), shm_fd, 5000);
    if (type != VGPU_MSG_HELLO || hello->hdr.size != sizeof(*hello) || *shm_fd < 0) {
        fprintf(stderr, "expected HELLO with an fd, got type %d size %u fd %d\n",
                type, hello->hdr.size, *shm_fd);
        close(cfd);
        return -EPROTO;
    }
    (void)e;
    return cfd;
}

/* After misbehaving, the device must answer ERROR @code (or nothing) and hang up. */
static bool fake_expect_hangup(int cfd, int code)
{
    union { struct vgpu_msg_hdr h; struct vgpu_msg_error e; char raw[512]; } m;
    int type;
    bool saw_error = code < 0;

    while ((type = fake_recv(cfd, &m, sizeof(m), NULL, 5000)) > 0) {
        if (type == VGPU_MSG_ERROR && (int)m.e.code == code) {
            saw_error = true;
        }
    }
    close(cfd);
    return type == 0 && saw_error;
}

/* ------------------------------------------------------------------------
 * Cases
 * ------------------------------------------------------------------------ */

/* Config space identity, BAR layout, identity registers, link up. */
static int case_identity(struct env *e)
{
    uint32_t v, lo, hi;
    char name[VGPU_REG_NAME_LEN + 1] = { 0 };
    unsigned i;
    int ok = 0;

    CHECK(start_mediator(e) == 0, "mediator start");
    CHECK(start_qemu(e, "16M") == 0, "QEMU start");
    CHECK(find_device(e) == 0, "vgpu-stub %04x:%04x not on bus 0",
          VGPU_PCI_VENDOR_ID, VGPU_PCI_DEVICE_ID);
    v = qt_pci_cfg_readl(&e->qt, e->devfn, 0);
    CHECK((v & 0xffff) != VGPU_PCI_FORBIDDEN_VENDOR, "NVIDIA vendor id");
    v = qt_pci_cfg_readl(&e->qt, e->devfn, PCI_CLASS_REVISION);
    CHECK((v >> 24) == VGPU_PCI_CLASS_CODE, "class 0x%x", v >> 24);
    CHECK((v & 0xff) == VGPU_PCI_REVISION, "revision 0x%x", v & 0xff);
    CHECK(qt_pci_cfg_readb(&e->qt, e->devfn, PCI_INTERRUPT_PIN) == 1, "INTA");

    /* BAR sizing, as firmware does it. */
    qt_pci_cfg_writel(&e->qt, e->devfn, PCI_BAR0, 0xffffffff);
    v = qt_pci_cfg_readl(&e->qt, e->devfn, PCI_BAR0);
    CHECK(v == (uint32_t)~(VGPU_REGS_SIZE - 1), "BAR0 mask 0x%08x: 4 KiB, 32-bit mem", v);
    qt_pci_cfg_writel(&e->qt, e->devfn, PCI_BAR2, 0xffffffff);
    qt_pci_cfg_writel(&e->qt, e->devfn, PCI_BAR3, 0xffffffff);
    lo = qt_pci_cfg_readl(&e->qt, e->devfn, PCI_BAR2);
    hi = qt_pci_cfg_readl(&e->qt, e->devfn, PCI_BAR3);
    CHECK((lo & 0xf) == 0xc, "BAR2 flags 0x%x: want 64-bit prefetchable", lo & 0xf);
    CHECK((lo & ~0xfu) == (uint32_t)~((16u << 20) - 1) && hi == 0xffffffff,
          "BAR2 mask %08x:%08x: want 16 MiB", hi, lo);

    CHECK(setup_device(e) == 0, "setup");
    CHECK(e->msi_cap != 0, "no MSI capability");

    /* uio_pci_generic needs a writable INTx-disable bit (PCI 2.3). */
    qt_pci_cfg_writew(&e->qt, e->devfn, PCI_COMMAND,
                      PCI_CMD_MEM | PCI_CMD_MASTER | PCI_CMD_INTX_DIS);
    v = qt_pci_cfg_readw(&e->qt, e->devfn, PCI_COMMAND);
    CHECK(v & PCI_CMD_INTX_DIS, "INTx disable bit not writable (cmd 0x%x)", v);
    qt_pci_cfg_writew(&e->qt, e->devfn, PCI_COMMAND, PCI_CMD_MEM | PCI_CMD_MASTER);

    CHECK(reg(e, VGPU_REG_VERSION) == VGPU_ABI_VERSION, "version");
    v = reg(e, VGPU_REG_FEATURES);
    CHECK(v == (VGPU_FEAT_INTX | VGPU_FEAT_MSI | VGPU_FEAT_RECONNECT | VGPU_FEAT_DOORBELL_FD |
                VGPU_FEAT_MULTIQUEUE), "features 0x%x", v);
    /* ABI 1.2 registers of a one-queue device: the data area is all of BAR2. */
    CHECK(reg(e, VGPU_REG_QUEUES) == 1, "queues %u", reg(e, VGPU_REG_QUEUES));
    CHECK(reg(e, VGPU_REG_DATA_END_LO) == 16u << 20 && reg(e, VGPU_REG_DATA_END_HI) == 0,
          "data end");
    CHECK(reg(e, VGPU_REG_VM_ID) == 7, "vm id");
    CHECK(reg(e, VGPU_REG_PRIORITY) == 1, "priority");
    CHECK(reg(e, VGPU_REG_WEIGHT) == 2, "weight");
    CHECK(reg(e, VGPU_REG_SHM_SIZE_LO) == 16u << 20, "shm size lo");
    CHECK(reg(e, VGPU_REG_SHM_SIZE_HI) == 0, "shm size hi");
    CHECK(reg(e, VGPU_REG_SQ_ENTRIES) == VGPU_SQ_ENTRIES, "sq entries");
    CHECK(reg(e, VGPU_REG_CQ_ENTRIES) == VGPU_CQ_ENTRIES, "cq entries");
    CHECK(reg(e, VGPU_REG_DATA_OFFSET) == VGPU_SHM_DATA_OFFSET, "data offset");
    CHECK(reg(e, VGPU_REG_DOORBELL) == 0, "doorbell reads 0");
    for (i = 0; i < VGPU_REG_NAME_LEN; i += 4) {
        v = reg(e, VGPU_REG_VM_NAME + i);
        memcpy(name + i, &v, 4);        /* little-endian host */
    }
    CHECK(strcmp(name, "qt") == 0, "vm name '%s'", name);

    /* The guest cannot change what the operator set. */
    reg_write(e, VGPU_REG_VM_ID, 99);
    reg_write(e, VGPU_REG_PRIORITY, 0);
    CHECK(reg(e, VGPU_REG_VM_ID) == 7 && reg(e, VGPU_REG_PRIORITY) == 1,
          "read-only identity changed");

    CHECK(wait_link(e, true, 10000) == 0, "link did not come up");
    v = reg(e, VGPU_REG_LINK_STATUS);
    CHECK(v == VGPU_LINK_UP, "link status 0x%x (cpu backend: no GPU bit)", v);
    CHECK(reg(e, VGPU_REG_BACKEND) == VGPU_BACKEND_CPU, "backend");
    CHECK(reg(e, VGPU_REG_MAX_INFLIGHT) >= 1, "max in-flight");
    CHECK(reg(e, VGPU_REG_IRQ_STATUS) & VGPU_IRQ_LINK, "no link interrupt");
    v = reg(e, VGPU_REG_GPU_NAME);
    CHECK(v != 0, "empty GPU name");
    reg_write(e, VGPU_REG_IRQ_ACK, VGPU_IRQ_LINK);
    CHECK(reg(e, VGPU_REG_IRQ_STATUS) == 0, "ack did not clear");
    CHECK_QT(e);
    printf("# session %u, max in-flight %u\n", reg(e, VGPU_REG_SESSION_ID),
           reg(e, VGPU_REG_MAX_INFLIGHT));
    ok = 1;
out:
    return ok;
}

/* Realize refuses what would not work or is forbidden, with a message. */
static int case_realize_errors(struct env *e)
{
    static const struct {
        const char *obj, *dev, *expect, *extra;
    } bad[] = {
        { "memory-backend-memfd,id=shm,size=16M,share=on",
          "vgpu-stub,chardev=med,memdev=shm,vendor-id=0x10de", "is NVIDIA's", NULL },
        /*
         * Private: no fd on any QEMU. (With share=on, 7.2 maps shared
         * anonymous memory without an fd, 10.0 takes a memfd: usable.)
         */
        { "memory-backend-ram,id=shm,size=16M",
          "vgpu-stub,chardev=med,memdev=shm", "has no file descriptor", NULL },
        { "memory-backend-memfd,id=shm,size=16M,share=off",
          "vgpu-stub,chardev=med,memdev=shm", "needs share=on", NULL },
        { "memory-backend-memfd,id=shm,size=3M,share=on",
          "vgpu-stub,chardev=med,memdev=shm", "power of two", NULL },
        { "memory-backend-memfd,id=shm,size=16M,share=on",
          "vgpu-stub,chardev=med,memdev=shm,priority=9", "priority must be 0..3", NULL },
        { "memory-backend-memfd,id=shm,size=16M,share=on",
          "vgpu-stub,chardev=med,memdev=shm,weight=0", "weight must be 1..1000", NULL },
        { "memory-backend-memfd,id=shm,size=16M,share=on",
          "vgpu-stub,chardev=med", "'memdev' property is required", NULL },
        { "memory-backend-memfd,id=shm,size=16M,share=on",
          "vgpu-stub,memdev=shm", "'chardev' property is required", NULL },
        { "memory-backend-memfd,id=shm,size=16M,share=on",
          "vgpu-stub,chardev=med,memdev=shm,queues=0", "queues must be 1..64", NULL },
        { "memory-backend-memfd,id=shm,size=16M,share=on",
          "vgpu-stub,chardev=med,memdev=shm,queues=65", "queues must be 1..64", NULL },
        /* 63 queue regions of 64 KiB + queue 0 + 64 KiB of data > 4 MiB */
        { "memory-backend-memfd,id=shm,size=4M,share=on",
          "vgpu-stub,chardev=med,memdev=shm,queues=64", "too small for 64 queue pairs", NULL },
        /* The migration blocker is there: refused where migration is a must. */
        { "memory-backend-memfd,id=shm,size=16M,share=on",
          "vgpu-stub,chardev=med,memdev=shm", "not migratable", "-only-migratable" },
    };
    char chr[256], log[192];
    size_t i;
    int ok = 0;

    snprintf(chr, sizeof(chr), "socket,id=med,path=%s,reconnect=1", e->med_sock);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *argv[] = {
            e->qemu, "-machine", "q35", "-accel", "qtest", "-display", "none",
            "-nodefaults", "-object", bad[i].obj, "-chardev", chr,
            "-device", bad[i].dev, bad[i].extra, NULL,
        };
        pid_t pid;
        int st;

        snprintf(log, sizeof(log), "%s/qemu.log", e->dir);
        unlink(log);
        pid = spawn(argv, log);
        CHECK(pid > 0, "spawn");
        st = wait_exit(pid, 15000);
        if (st < 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
              "QEMU accepted -device %s (status %d)", bad[i].dev, st);
        CHECK(count_in_file(log, bad[i].expect) > 0,
              "no '%s' in QEMU's error for -device %s", bad[i].expect, bad[i].dev);
    }
    ok = 1;
out:
    return ok;
}

/* NOP + vector_add through the ring; INTx, masking and MSI. */
static int case_vector_add(struct env *e)
{
    enum { N = 1024 };
    static float a[N], b[N], out[N];
    const uint64_t a_off = VGPU_SHM_DATA_OFFSET, b_off = a_off + sizeof(a),
                   o_off = b_off + sizeof(b);
    struct vgpu_sqe sqe;
    struct vgpu_cqe cqe;
    int line, i, ok = 0;
    unsigned raises;

    CHECK(start_all(e, "16M") == 0, "start");
    CHECK(qt_cmd(&e->qt, "irq_intercept_in ioapic") == 0, "irq intercept");
    reg_write(e, VGPU_REG_IRQ_ACK, VGPU_IRQ_LINK);
    reg_write(e, VGPU_REG_IRQ_MASK, 0);
    qt_poll_async(&e->qt, 20);
    CHECK(irq_high(e) < 0, "an interrupt is high before any request");

    sqe = nop(1);
    submit(e, &sqe);
    CHECK(wait_cq(e, 1, 10000) == 1, "NOP did not complete");
    pop_cqe(e, &cqe);
    CHECK(cqe.tag == 1 && cqe.user_data == 0xabcd0001ull, "NOP echo");
    CHECK(cqe.status == VGPU_S_OK && cqe.result == 0, "NOP status %d", cqe.status);
    CHECK(wait_irq_status(e, VGPU_IRQ_COMPLETION, 5000), "no completion irq bit");
    qt_poll_async(&e->qt, 20);
    line = irq_high(e);
    CHECK(line >= 16 && line < 24, "INTx not raised on a PIRQ GSI (got %d)", line);
    reg_write(e, VGPU_REG_IRQ_ACK, VGPU_IRQ_COMPLETION);
    qt_poll_async(&e->qt, 20);
    CHECK(reg(e, VGPU_REG_IRQ_STATUS) == 0, "ack");
    CHECK(!e->qt.irq_level[line], "INTx still high after ack");
    printf("# INTx: ioapic input %d\n", line);

    for (i = 0; i < N; i++) {
        a[i] = (float)i;
        b[i] = 2.0f * i + 0.5f;
    }
    qt_memwrite(&e->qt, e->bar2 + a_off, a, sizeof(a));
    qt_memwrite(&e->qt, e->bar2 + b_off, b, sizeof(b));
    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = VGPU_OP_VECTOR_ADD;
    sqe.tag = 2;
    sqe.args.vector_add.a_off = a_off;
    sqe.args.vector_add.b_off = b_off;
    sqe.args.vector_add.out_off = o_off;
    sqe.args.vector_add.n = N;
    submit(e, &sqe);
    CHECK(wait_cq(e, 1, 10000) == 1, "vector_add did not complete");
    pop_cqe(e, &cqe);
    CHECK(cqe.tag == 2 && cqe.status == VGPU_S_OK, "vector_add status %d (%s)",
          cqe.status, vgpu_status_name(cqe.status));
    CHECK(qt_memread(&e->qt, e->bar2 + o_off, out, sizeof(out)) == 0, "read out");
    for (i = 0; i < N; i++) {
        CHECK(out[i] == 3.0f * i + 0.5f, "out[%d] = %f", i, out[i]);
    }
    CHECK(wait_irq_status(e, VGPU_IRQ_COMPLETION, 5000), "no completion irq bit");
    CHECK(e->qt.irq_level[line], "INTx not raised for vector_add");
    reg_write(e, VGPU_REG_IRQ_ACK, VGPU_IRQ_COMPLETION);

    /* Masked: the status bit is set, the line stays low until unmasked. */
    reg_write(e, VGPU_REG_IRQ_MASK, VGPU_IRQ_COMPLETION);
    sqe = nop(3);
    submit(e, &sqe);
    CHECK(wait_cq(e, 1, 10000) == 1, "masked NOP did not complete");
    pop_cqe(e, &cqe);
    CHECK(wait_irq_status(e, VGPU_IRQ_COMPLETION, 5000), "status bit while masked");
    CHECK(!e->qt.irq_level[line], "INTx raised while masked");
    reg_write(e, VGPU_REG_IRQ_MASK, 0);
    qt_poll_async(&e->qt, 20);
    CHECK(e->qt.irq_level[line], "INTx not raised on unmask");
    reg_write(e, VGPU_REG_IRQ_ACK, VGPU_IRQ_COMPLETION);
    qt_poll_async(&e->qt, 20);
    CHECK(!e->qt.irq_level[line], "INTx high after ack");

    /* MSI: 64-bit capability, message lands in guest RAM; INTx stays quiet. */
    CHECK(e->msi_cap, "no MSI capability");
    CHECK(qt_pci_cfg_readw(&e->qt, e->devfn, e->msi_cap + 2) & 0x80, "MSI not 64-bit");
    qt_pci_cfg_writel(&e->qt, e->devfn, e->msi_cap + 4, (uint32_t)MSI_ADDR);
    qt_pci_cfg_writel(&e->qt, e->devfn, e->msi_cap + 8, 0);
    qt_pci_cfg_writew(&e->qt, e->devfn, e->msi_cap + 12, MSI_DATA);
    qt_pci_cfg_writew(&e->qt, e->devfn, e->msi_cap + 2, 0x0001);
    qt_writel(&e->qt, MSI_ADDR, 0);
    raises = e->qt.irq_raises[line];
    sqe = nop(4);
    submit(e, &sqe);
    CHECK(wait_cq(e, 1, 10000) == 1, "MSI NOP did not complete");
    pop_cqe(e, &cqe);
    CHECK(wait_irq_status(e, VGPU_IRQ_COMPLETION, 5000), "no completion irq bit");
    CHECK(qt_readl(&e->qt, MSI_ADDR) == MSI_DATA, "MSI message not written");
    CHECK(e->qt.irq_raises[line] == raises, "INTx raised while MSI is enabled");
    reg_write(e, VGPU_REG_IRQ_ACK, VGPU_IRQ_COMPLETION);

    CHECK(reg(e, VGPU_REG_NOTIFIES) >= 4, "notifies %u", reg(e, VGPU_REG_NOTIFIES));
    CHECK_DOORBELL_PATH(e);
    CHECK_QT(e);
    ok = 1;
out:
    return ok;
}

/* Mediator absent at start: link down, the request waits, then completes. */
static int case_late_mediator(struct env *e)
{
    struct vgpu_sqe sqe = nop(42);
    struct vgpu_cqe cqe;
    int64_t t0;
    int ok = 0;

    CHECK(start_qemu(e, "16M") == 0, "QEMU start");
    CHECK(setup_device(e) == 0, "setup");
    sleep_ms(300);
    CHECK(reg(e, VGPU_REG_LINK_STATUS) == 0, "link up without a mediator");
    CHECK(reg(e, VGPU_REG_BACKEND) == VGPU_BACKEND_NONE, "backend without mediator");
    submit(e, &sqe);
    sleep_ms(300);
    CHECK(wait_cq(e, 1, 0) == 0, "completion without a mediator");

    t0 = now_ms();
    CHECK(start_mediator(e) == 0, "mediator start");
    CHECK(wait_link(e, true, 10000) == 0, "link did not come up");
    CHECK(reg(e, VGPU_REG_IRQ_STATUS) & VGPU_IRQ_LINK, "no link interrupt");
    CHECK(wait_cq(e, 1, 10000) == 1, "request did not complete after the mediator came");
    printf("# link up + completion %lld ms after the mediator started\n",
           (long long)(now_ms() - t0));
    pop_cqe(e, &cqe);
    CHECK(cqe.tag == 42 && cqe.status == VGPU_S_OK, "tag %u status %d", cqe.tag, cqe.status);
    sleep_ms(300);
    CHECK(wait_cq(e, 1, 0) == 0, "request completed twice");
    CHECK(ctrl_read(e, offsetof(struct vgpu_shm_ctrl, sq_head)) == e->sq_tail, "sq_head");
    CHECK_QT(e);
    ok = 1;
out:
    return ok;
}

/*
 * SIGKILL the mediator while a queue of SGEMMs runs; a new mediator resumes
 * the ring: every request completes exactly once, in order, correctly.
 */
static int case_mediator_restart(struct env *e)
{
    enum { DIM = 1024, NREQ = 16 };
    const uint64_t a_off = VGPU_SHM_DATA_OFFSET,
                   b_off = a_off + (uint64_t)DIM * DIM * 4,
                   c_off = b_off + (uint64_t)DIM * DIM * 4;
    static float a[DIM * DIM], b[DIM * DIM];
    struct vgpu_cqe cqe;
    uint32_t done_at_kill, i, k;
    int64_t t0;
    int ok = 0;

    CHECK(start_all(e, "64M") == 0, "start");
    /* Small integers: every product sum is exact in float. */
    for (i = 0; i < DIM * DIM; i++) {
        a[i] = (float)((i * 7 + i / DIM) % 3);
        b[i] = (float)((i * 5 + i / DIM) % 2);
    }
    CHECK(qt_memwrite(&e->qt, e->bar2 + a_off, a, sizeof(a)) == 0, "write A");
    CHECK(qt_memwrite(&e->qt, e->bar2 + b_off, b, sizeof(b)) == 0, "write B");

    /* beta = 0: re-running a request after a crash gives the same C. */
    for (i = 0; i < NREQ; i++) {
        struct vgpu_sqe sqe = { .opcode = VGPU_OP_SGEMM, .tag = 100 + i,
                                .user_data = i };

        sqe.args.sgemm.a_off = a_off;
        sqe.args.sgemm.b_off = b_off;
        sqe.args.sgemm.c_off = c_off;
        sqe.args.sgemm.m = sqe.args.sgemm.n = sqe.args.sgemm.k = DIM;
        sqe.args.sgemm.alpha = 1.0f;
        sqe.args.sgemm.beta = 0.0f;
        put_sqe(e, &sqe);
    }
    t0 = now_ms();
    publish(e);
    CHECK(wait_cq(e, 1, 30000) >= 1, "first SGEMM did not complete");
    stop_mediator(e, SIGKILL);
    done_at_kill = ctrl_read(e, offsetof(struct vgpu_shm_ctrl, cq_tail));
    printf("# mediator killed after %u of %u completions (%lld ms)\n",
           done_at_kill, NREQ, (long long)(now_ms() - t0));
    CHECK(done_at_kill < NREQ, "all requests finished before the kill: "
          "the test did not exercise a restart");
    CHECK(wait_link(e, false, 5000) == 0, "link still up after the mediator died");
    CHECK(reg(e, VGPU_REG_IRQ_STATUS) & VGPU_IRQ_LINK, "no link-down interrupt");
    reg_write(e, VGPU_REG_IRQ_ACK, VGPU_IRQ_LINK | VGPU_IRQ_COMPLETION);

    CHECK(start_mediator(e) == 0, "mediator restart");
    CHECK(wait_link(e, true, 10000) == 0, "link did not come back");
    CHECK(wait_cq(e, NREQ, 60000) >= NREQ, "only %u of %u completed after restart",
          wait_cq(e, NREQ, 0), NREQ);
    sleep_ms(500);
    CHECK(wait_cq(e, NREQ, 0) == NREQ, "%u completions for %u requests",
          wait_cq(e, NREQ, 0), NREQ);
    for (i = 0; i < NREQ; i++) {
        pop_cqe(e, &cqe);
        CHECK(cqe.tag == 100 + i && cqe.user_data == i, "CQE %u has tag %u", i, cqe.tag);
        CHECK(cqe.status == VGPU_S_OK, "CQE %u status %s", i, vgpu_status_name(cqe.status));
    }
    CHECK(ctrl_read(e, offsetof(struct vgpu_shm_ctrl, sq_head)) == e->sq_tail,
          "sq_head did not reach sq_tail");
    /* Spot-check C = A * B. */
    for (i = 0; i < 32; i++) {
        uint32_t r = (i * 131) % DIM, c = (i * 977 + 5) % DIM;
        float want = 0, got;
        uint32_t bits;

        for (k = 0; k < DIM; k++) {
            want += a[r * DIM + k] * b[k * DIM + c];
        }
        bits = qt_readl(&e->qt, e->bar2 + c_off + ((uint64_t)r * DIM + c) * 4);
        memcpy(&got, &bits, 4);
        CHECK(got == want, "C[%u][%u] = %f, want %f", r, c, got, want);
    }
    CHECK_QT(e);
    ok = 1;
out:
    return ok;
}

/* Bad widths, unaligned and unknown offsets: logged, ignored, QEMU lives. */
static int case_bad_access(struct env *e)
{
    struct vgpu_sqe sqe = nop(9);
    struct vgpu_cqe cqe;
    uint32_t kicks;
    int logged, ok = 0;

    CHECK(start_all(e, "16M") == 0, "start");
    reg_write(e, VGPU_REG_IRQ_MASK, VGPU_IRQ_LINK);
    kicks = reg(e, VGPU_REG_KICKS);

    CHECK(qt_readb(&e->qt, BAR0_ADDR + VGPU_REG_MAGIC) == 0, "readb returned data");
    CHECK(qt_readw(&e->qt, BAR0_ADDR + VGPU_REG_MAGIC) == 0, "readw returned data");
    CHECK(qt_readq(&e->qt, BAR0_ADDR + VGPU_REG_MAGIC) == 0, "readq returned data");
    CHECK(qt_readl(&e->qt, BAR0_ADDR + VGPU_REG_MAGIC + 2) == 0, "unaligned readl");
    CHECK(reg(e, 0x200) == 0 && reg(e, 0xffc) == 0 && reg(e, 0x05c) == 0,
          "unknown offsets read non-zero");
    qt_writeb(&e->qt, BAR0_ADDR + VGPU_REG_DOORBELL, 1);
    qt_writew(&e->qt, BAR0_ADDR + VGPU_REG_IRQ_MASK, 0);
    qt_writeq(&e->qt, BAR0_ADDR + VGPU_REG_IRQ_MASK, 0);
    qt_writel(&e->qt, BAR0_ADDR + VGPU_REG_IRQ_MASK + 1, 0);
    reg_write(e, 0x200, 0xdeadbeef);
    reg_write(e, 0xffc, 0xdeadbeef);
    reg_write(e, VGPU_REG_MAGIC, 0);
    reg_write(e, VGPU_REG_LINK_STATUS, 0);
    reg_write(e, VGPU_REG_IRQ_STATUS, 0xffffffff);
    reg_write(e, VGPU_REG_VM_NAME, 0x41414141);
    CHECK_QT(e);
    CHECK(reg(e, VGPU_REG_IRQ_MASK) == VGPU_IRQ_LINK, "bad-width write changed the mask");
    CHECK(reg(e, VGPU_REG_MAGIC) == VGPU_MAGIC, "magic changed");
    CHECK(reg(e, VGPU_REG_LINK_STATUS) & VGPU_LINK_UP, "link status writable");
    CHECK(reg(e, 0x200) == 0, "unknown register kept a value");
    CHECK(reg(e, VGPU_REG_VM_NAME) == 'q' + ('t' << 8), "vm name writable");
    qt_poll_async(&e->qt, 50);
    CHECK(reg(e, VGPU_REG_KICKS) == kicks, "byte write rang the doorbell");

    logged = count_in_file(e->guest_log, "vgpu-stub:");
    CHECK(logged >= 14, "only %d guest errors logged", logged);
    printf("# %d guest errors logged\n", logged);

    /* Still fully working. */
    submit(e, &sqe);
    CHECK(wait_cq(e, 1, 10000) == 1, "NOP after bad accesses");
    pop_cqe(e, &cqe);
    CHECK(cqe.tag == 9 && cqe.status == VGPU_S_OK, "NOP status %d", cqe.status);
    CHECK(qt_alive(&e->qt), "QEMU died");
    CHECK_QT(e);
    ok = 1;
out:
    return ok;
}

/* 10k doorbells in a row: coalesced, nothing breaks, requests still flow. */
static int case_doorbell_storm(struct env *e)
{
    enum { STORM = 10000 };
    struct vgpu_sqe sqe = nop(1);
    struct vgpu_cqe cqe;
    char cmd[64];
    uint32_t kicks;
    int64_t t0;
    int ok = 0;

    CHECK(start_all(e, "16M") == 0, "start");
    put_sqe(e, &sqe);
    ctrl_write(e, offsetof(struct vgpu_shm_ctrl, sq_tail), e->sq_tail);
    snprintf(cmd, sizeof(cmd), "writel 0x%llx 0x1",
             (unsigned long long)(BAR0_ADDR + VGPU_REG_DOORBELL));
    t0 = now_ms();
    CHECK(qt_cmd_repeat(&e->qt, cmd, STORM) == 0, "doorbell storm");
    printf("# %d doorbells in %lld ms\n", STORM, (long long)(now_ms() - t0));
    CHECK(wait_cq(e, 1, 10000) == 1, "NOP during the storm");
    pop_cqe(e, &cqe);
    CHECK(cqe.tag == 1 && cqe.status == VGPU_S_OK, "NOP status %d", cqe.status);

    sqe = nop(2);
    submit(e, &sqe);
    CHECK(wait_cq(e, 1, 10000) == 1, "NOP after the storm");
    pop_cqe(e, &cqe);
    CHECK(cqe.tag == 2 && cqe.status == VGPU_S_OK, "NOP status %d", cqe.status);
    sleep_ms(200);
    CHECK(wait_cq(e, 1, 0) == 0, "spurious completions");
    kicks = reg(e, VGPU_REG_KICKS);
    printf("# KICK messages sent for %d doorbells: %u\n", STORM + 1, kicks);
    if (e->kick_msgs) {
        CHECK(kicks >= 2 && kicks <= STORM + 1, "kicks %u", kicks);
    }
    CHECK_DOORBELL_PATH(e);
    CHECK(mediator_alive(e), "mediator died");
    CHECK(qt_alive(&e->qt), "QEMU died");
    CHECK_QT(e);
    ok = 1;
out:
    return ok;
}

/* Random SQEs and corrupt ring indexes: error completions, everyone lives. */
static int case_garbage(struct env *e)
{
    enum { NGARBAGE = 200 };
    struct vgpu_sqe sqe;
    struct vgpu_cqe cqe;
    unsigned i, j, errors = 0;
    unsigned seed = 12345;
    int ok = 0;

    CHECK(start_all(e, "16M") == 0, "start");
    for (i = 0; i < NGARBAGE; i++) {
        uint8_t *p = (uint8_t *)&sqe;

        for (j = 0; j < sizeof(sqe); j++) {
            p[j] = (uint8_t)(rand_r(&seed) >> 7);
        }
        sqe.tag = i;
        put_sqe(e, &sqe);
    }
    publish(e);
    CHECK(wait_cq(e, NGARBAGE, 30000) == NGARBAGE, "%u of %u garbage requests completed",
          wait_cq(e, NGARBAGE, 0), NGARBAGE);
    for (i = 0; i < NGARBAGE; i++) {
        pop_cqe(e, &cqe);
        CHECK(cqe.tag == i, "CQE %u has tag %u", i, cqe.tag);
        CHECK(cqe.status >= 0 && cqe.status < VGPU_S_STATUS_COUNT, "status %d", cqe.status);
        errors += cqe.status != VGPU_S_OK;
    }
    printf("# %u of %u random SQEs rejected\n", errors, NGARBAGE);
    CHECK(errors >= NGARBAGE - 2, "only %u of %u random SQEs rejected", errors, NGARBAGE);

    /* A tail far beyond the ring: the mediator must ignore it, not run off. */
    ctrl_write(e, offsetof(struct vgpu_shm_ctrl, sq_tail), e->sq_tail + 5000);
    reg_write(e, VGPU_REG_DOORBELL, 1);
    sleep_ms(300);
    CHECK(wait_cq(e, 1, 0) == 0, "completions for a corrupt tail");
    CHECK(mediator_alive(e), "mediator died on a corrupt tail");

    sqe = nop(77);
    submit(e, &sqe);
    CHECK(wait_cq(e, 1, 10000) == 1, "NOP after garbage");
    pop_cqe(e, &cqe);
    CHECK(cqe.tag == 77 && cqe.status == VGPU_S_OK, "NOP status %d", cqe.status);
    CHECK(mediator_alive(e), "mediator died");
    CHECK(qt_alive(&e->qt), "QEMU died");
    CHECK_QT(e);
    ok = 1;
out:
    return ok;
}


/*
 * The device against a scripted mediator: HELLO contents and the memfd,
 * WELCOME split across reads, KICK, NOTIFY batches, and every way a
 * mediator can misbehave (malformed, oversized, unexpected, fds, ERROR, BYE):
 * each ends in ERROR + hang-up + link down, then a reconnect with HELLO.
 */
static int case_fake_mediator(struct env *e)
{
    struct vgpu_msg_hello hello;
    struct vgpu_msg_welcome w;
    struct vgpu_msg_notify nt = { .hdr = { .type = VGPU_MSG_NOTIFY, .size = sizeof(nt) } };
    union { struct vgpu_msg_hdr h; struct vgpu_msg_kick k; char raw[256]; } m;
    struct vgpu_shm_ctrl *ctrl;
    struct stat st;
    char batch[3 * sizeof(nt)];
    int lfd = -1, cfd = -1, shm_fd = -1, devnull = -1, seals, ok = 0;
    void *shm = MAP_FAILED;
    uint32_t v;
    size_t i;

    lfd = fake_listen(e);
    CHECK(lfd >= 0, "listen: %s", strerror(-lfd));
    CHECK(start_qemu(e, "16M") == 0, "QEMU start");
    CHECK(setup_device(e) == 0, "setup");

    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "first HELLO");
    CHECK(hello.version_major == VGPU_PROTO_VERSION_MAJOR &&
          hello.abi_version == VGPU_ABI_VERSION, "HELLO versions");
    CHECK(hello.vm_id == 7 && hello.priority == 1 && hello.weight == 2, "HELLO identity");
    CHECK(!strcmp(hello.vm_name, "qt"), "HELLO vm name '%.64s'", hello.vm_name);
    CHECK(hello.shm_size == 16u << 20, "HELLO shm size %" PRIu64, hello.shm_size);
    CHECK(hello.features & VGPU_FEAT_RECONNECT, "HELLO features 0x%x", hello.features);
    CHECK(fstat(shm_fd, &st) == 0 && st.st_size == 16 << 20, "memfd size");
    seals = fcntl(shm_fd, F_GET_SEALS);
    CHECK(seals >= 0 && (seals & F_SEAL_SHRINK), "memfd not sealed against shrinking (0x%x)",
          seals);

    /* The fd is BAR2: what the mediator writes, the guest reads. */
    shm = mmap(NULL, 16 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
    CHECK(shm != MAP_FAILED, "mmap: %s", strerror(errno));
    ctrl = shm;
    ctrl->host_flags = 0x5a5a;
    CHECK(ctrl_read(e, offsetof(struct vgpu_shm_ctrl, host_flags)) == 0x5a5a,
          "BAR2 is not the memfd");

    /* WELCOME in two pieces: the device's parser must reassemble it. */
    w = fake_welcome(hello.hdr.seq);
    CHECK(fake_send(cfd, &w, 10, -1) == 0, "send");
    sleep_ms(50);
    CHECK(reg(e, VGPU_REG_LINK_STATUS) == 0, "link up on half a WELCOME");
    CHECK(fake_send(cfd, (char *)&w + 10, sizeof(w) - 10, -1) == 0, "send");
    CHECK(wait_link(e, true, 5000) == 0, "no link after WELCOME");
    CHECK(reg(e, VGPU_REG_LINK_STATUS) == (VGPU_LINK_UP | VGPU_LINK_GPU), "cuda: GPU bit");
    CHECK(reg(e, VGPU_REG_SESSION_ID) == 77 && reg(e, VGPU_REG_MAX_INFLIGHT) == 16 &&
          reg(e, VGPU_REG_BACKEND) == VGPU_BACKEND_CUDA && reg(e, VGPU_REG_GPU_SMS) == 132 &&
          reg(e, VGPU_REG_GPU_MEM_MIB) == 81559 && reg(e, VGPU_REG_GPU_CC) == 0x900,
          "WELCOME registers");
    v = reg(e, VGPU_REG_GPU_NAME);
    CHECK(!memcmp(&v, "Fake", 4), "GPU name");

    /* Doorbell -> KICK carrying the tail as a hint. */
    ctrl->sq_tail = 3;
    reg_write(e, VGPU_REG_DOORBELL, 1);
    CHECK(fake_recv(cfd, &m, sizeof(m), NULL, 5000) == VGPU_MSG_KICK, "no KICK");
    CHECK(m.h.size == sizeof(m.k) && m.k.sq_tail == 3, "KICK size %u tail %u",
          m.h.size, m.k.sq_tail);
    CHECK(reg(e, VGPU_REG_KICKS) == 1, "KICKS");

    /* One NOTIFY, then three: two in one write and one byte by byte. */
    reg_write(e, VGPU_REG_IRQ_ACK, ~0u);
    CHECK(fake_send(cfd, &nt, sizeof(nt), -1) == 0, "send");
    CHECK(wait_irq_status(e, VGPU_IRQ_COMPLETION, 5000), "NOTIFY raised nothing");
    memcpy(batch, &nt, sizeof(nt));
    memcpy(batch + sizeof(nt), &nt, sizeof(nt));
    memcpy(batch + 2 * sizeof(nt), &nt, sizeof(nt));
    CHECK(fake_send(cfd, batch, 2 * sizeof(nt), -1) == 0, "send");
    for (i = 0; i < sizeof(nt); i++) {
        CHECK(fake_send(cfd, batch + 2 * sizeof(nt) + i, 1, -1) == 0, "send");
    }
    for (i = 0; i < 100 && reg(e, VGPU_REG_NOTIFIES) < 4; i++) {
        sleep_ms(10);
    }
    CHECK(reg(e, VGPU_REG_NOTIFIES) == 4, "NOTIFIES %u", reg(e, VGPU_REG_NOTIFIES));
    reg_write(e, VGPU_REG_IRQ_ACK, ~0u);

    /* A header whose size is below the header: ERROR MALFORMED, hang-up. */
    memset(&m, 0, sizeof(m));
    m.h.type = VGPU_MSG_NOTIFY;
    m.h.size = 8;
    CHECK(fake_send(cfd, &m, sizeof(m.h), -1) == 0, "send");
    CHECK(fake_expect_hangup(cfd, VGPU_PERR_MALFORMED), "no ERROR/hang-up on size 8");
    cfd = -1;
    CHECK(wait_link(e, false, 5000) == 0, "link up after a malformed message");
    CHECK(reg(e, VGPU_REG_IRQ_STATUS) & VGPU_IRQ_LINK, "no link-down interrupt");
    CHECK(reg(e, VGPU_REG_SESSION_ID) == 0, "session id kept while down");

    /* Reconnect. A doorbell while down is remembered and sent after WELCOME. */
    reg_write(e, VGPU_REG_DOORBELL, 1);
    close(shm_fd);
    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "HELLO after reconnect");
    w = fake_welcome(hello.hdr.seq);
    CHECK(fake_send(cfd, &w, sizeof(w), -1) == 0, "send");
    CHECK(fake_recv(cfd, &m, sizeof(m), NULL, 5000) == VGPU_MSG_KICK,
          "the doorbell rung while down was not forwarded");
    CHECK(wait_link(e, true, 5000) == 0, "link");

    /* The mediator refuses us with ERROR. */
    {
        struct vgpu_msg_error er = {
            .hdr = { .type = VGPU_MSG_ERROR, .size = sizeof(er) },
            .code = VGPU_PERR_IDENTITY, .text = "vm id \x01 in use",
        };
        CHECK(fake_send(cfd, &er, sizeof(er), -1) == 0, "send");
    }
    CHECK(fake_expect_hangup(cfd, -1), "no hang-up after ERROR");
    cfd = -1;
    CHECK(wait_link(e, false, 5000) == 0, "link up after ERROR");

    /* NOTIFY before WELCOME is out of order. */
    close(shm_fd);
    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "HELLO after ERROR");
    CHECK(fake_send(cfd, &nt, sizeof(nt), -1) == 0, "send");
    CHECK(fake_expect_hangup(cfd, VGPU_PERR_TYPE), "NOTIFY before WELCOME accepted");
    cfd = -1;

    /* A header announcing more than VGPU_MSG_MAX_SIZE. */
    close(shm_fd);
    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "HELLO after TYPE error");
    memset(&m, 0, sizeof(m));
    m.h.type = VGPU_MSG_WELCOME;
    m.h.size = VGPU_MSG_MAX_SIZE + 1;
    CHECK(fake_send(cfd, &m, sizeof(m.h), -1) == 0, "send");
    CHECK(fake_expect_hangup(cfd, VGPU_PERR_MALFORMED), "oversized message accepted");
    cfd = -1;

    /* An fd from the mediator is never accepted (and must not leak). */
    close(shm_fd);
    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "HELLO after oversize");
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    w = fake_welcome(hello.hdr.seq);
    CHECK(fake_send(cfd, &w, sizeof(w), devnull) == 0, "send");
    CHECK(fake_expect_hangup(cfd, VGPU_PERR_FD), "fd from the mediator accepted");
    cfd = -1;

    /* An unknown type, then finally an orderly BYE. */
    close(shm_fd);
    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "HELLO after fd");
    memset(&m, 0, sizeof(m));
    m.h.type = 0x7777;
    m.h.size = 40;
    CHECK(fake_send(cfd, &m, 40, -1) == 0, "send");
    CHECK(fake_expect_hangup(cfd, VGPU_PERR_TYPE), "unknown type accepted");
    cfd = -1;

    close(shm_fd);
    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "HELLO after unknown type");
    w = fake_welcome(hello.hdr.seq);
    CHECK(fake_send(cfd, &w, sizeof(w), -1) == 0, "send");
    CHECK(wait_link(e, true, 5000) == 0, "link");
    {
        struct vgpu_msg_bye bye = { .hdr = { .type = VGPU_MSG_BYE, .size = sizeof(bye) } };
        CHECK(fake_send(cfd, &bye, sizeof(bye), -1) == 0, "send");
    }
    CHECK(fake_expect_hangup(cfd, -1), "no hang-up after BYE");
    cfd = -1;
    CHECK(wait_link(e, false, 5000) == 0, "link up after BYE");

    close(shm_fd);
    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "HELLO after BYE");
    CHECK(qt_alive(&e->qt), "QEMU died");
    CHECK(count_in_file(e->qemu_log, "vgpu-stub:") >= 6, "protocol errors not reported");
    CHECK_QT(e);
    ok = 1;
out:
    if (shm != MAP_FAILED) {
        munmap(shm, 16 << 20);
    }
    if (devnull >= 0) {
        close(devnull);
    }
    fake_close(lfd, cfd, shm_fd);
    return ok;
}

/*
 * A mediator that stops reading its socket (hung, stopped, deadlocked) must
 * not freeze QEMU: once the socket buffer is full, KICKs wait in the device
 * (the doorbell is remembered) instead of the main loop spinning in a
 * blocking write. When the mediator reads again, the remembered doorbell
 * goes out as a KICK.
 */
static int case_stalled_mediator(struct env *e)
{
    enum { STORM = 4000 };
    union { struct vgpu_msg_hdr h; struct vgpu_msg_kick k; char raw[256]; } m;
    struct vgpu_msg_hello hello;
    struct vgpu_msg_welcome w;
    char cmd[64], drain[4096];
    int lfd = -1, cfd = -1, shm_fd = -1, ok = 0, type, i;
    uint32_t kicks, kicks_read = 0;
    int64_t t0;
    ssize_t n;
    size_t bytes = 0;

    lfd = fake_listen(e);
    CHECK(lfd >= 0, "listen: %s", strerror(-lfd));
    CHECK(start_qemu(e, "16M") == 0, "QEMU start");
    CHECK(setup_device(e) == 0, "setup");
    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "HELLO");
    w = fake_welcome(hello.hdr.seq);
    CHECK(fake_send(cfd, &w, sizeof(w), -1) == 0, "send WELCOME");
    CHECK(wait_link(e, true, 5000) == 0, "no link after WELCOME");

    /* The mediator reads nothing from now on. One doorbell per round trip,
     * so that the main loop runs the KICK bottom half for each. */
    snprintf(cmd, sizeof(cmd), "writel 0x%llx 0x1",
             (unsigned long long)(BAR0_ADDR + VGPU_REG_DOORBELL));
    t0 = now_ms();
    for (i = 0; i < STORM; i++) {
        CHECK(qt_cmd_repeat(&e->qt, cmd, 1) == 0,
              "QEMU stopped answering after %d doorbells while the mediator did not read", i);
    }
    printf("# %d doorbells in %lld ms with the mediator not reading\n", STORM,
           (long long)(now_ms() - t0));
    kicks = reg(e, VGPU_REG_KICKS);
    CHECK_QT(e);
    CHECK(qt_alive(&e->qt), "QEMU died");
    CHECK(reg(e, VGPU_REG_LINK_STATUS) & VGPU_LINK_UP, "link dropped");

    /*
     * The mediator wakes up: everything sent is whole KICKs, and the
     * doorbells that found the socket full are not lost: one more KICK
     * follows once there is room.
     */
    t0 = now_ms();
    while (now_ms() - t0 < 500) {
        while ((n = recv(cfd, drain, sizeof(drain), MSG_DONTWAIT)) > 0) {
            bytes += (size_t)n;
        }
        sleep_ms(20);
    }
    kicks_read = reg(e, VGPU_REG_KICKS);
    printf("# KICKs sent while stalled: %u, after draining: %u (%zu bytes)\n", kicks,
           kicks_read, bytes);
    CHECK(bytes == (size_t)kicks_read * sizeof(struct vgpu_msg_kick),
          "%zu bytes received for %u KICKs", bytes, kicks_read);
    CHECK(kicks_read == kicks + 1, "the remembered doorbell: %u KICKs, %u before draining",
          kicks_read, kicks);
    reg_write(e, VGPU_REG_DOORBELL, 1);
    type = fake_recv(cfd, &m, sizeof(m), NULL, 3000);
    CHECK(type == VGPU_MSG_KICK, "no KICK for a new doorbell (%d)", type);
    kicks_read++;
    CHECK(reg(e, VGPU_REG_KICKS) == kicks_read, "KICKS %u, read %u",
          reg(e, VGPU_REG_KICKS), kicks_read);
    CHECK_QT(e);
    ok = 1;
out:
    fake_close(lfd, cfd, shm_fd);
    return ok;
}

/*
 * A machine reset (ICH9 reset control, port 0xcf9) clears the guest-visible
 * interrupt state and counters; the link and the session survive.
 */
static int case_reset(struct env *e)
{
    struct vgpu_sqe sqe = nop(5);
    struct vgpu_cqe cqe;
    uint32_t session;
    int i, ok = 0;

    CHECK(start_all(e, "16M") == 0, "start");
    session = reg(e, VGPU_REG_SESSION_ID);
    reg_write(e, VGPU_REG_IRQ_MASK, VGPU_IRQ_COMPLETION);
    submit(e, &sqe);
    CHECK(wait_cq(e, 1, 10000) == 1, "NOP");
    pop_cqe(e, &cqe);
    for (i = 0; i < 100 && reg(e, VGPU_REG_NOTIFIES) == 0; i++) {
        sleep_ms(10);
    }
    CHECK(reg(e, VGPU_REG_IRQ_STATUS) != 0 && (reg(e, VGPU_REG_KICKS) != 0 || !e->kick_msgs) &&
          reg(e, VGPU_REG_NOTIFIES) != 0, "no state to reset");

    CHECK(qt_cmd(&e->qt, "outb 0xcf9 0x6") == 0, "reset request");
    /* Reset clears the command register: memory decoding goes off. */
    for (i = 0; i < 500; i++) {
        if (!(qt_pci_cfg_readw(&e->qt, e->devfn, PCI_COMMAND) & PCI_CMD_MEM)) {
            break;
        }
        sleep_ms(10);
    }
    CHECK(i < 500, "machine did not reset");
    CHECK(setup_device(e) == 0, "setup after reset");
    CHECK(reg(e, VGPU_REG_IRQ_STATUS) == 0, "irq status survived reset");
    CHECK(reg(e, VGPU_REG_IRQ_MASK) == 0, "irq mask survived reset");
    CHECK(reg(e, VGPU_REG_KICKS) == 0 && reg(e, VGPU_REG_NOTIFIES) == 0, "counters");
    CHECK(reg(e, VGPU_REG_LINK_STATUS) & VGPU_LINK_UP, "link lost on reset");
    CHECK(reg(e, VGPU_REG_SESSION_ID) == session, "session changed on reset");
    CHECK(reg(e, VGPU_REG_VM_ID) == 7, "identity lost on reset");

    /* The ring still works across the reset. */
    sqe = nop(6);
    submit(e, &sqe);
    CHECK(wait_cq(e, 1, 10000) == 1, "NOP after reset");
    pop_cqe(e, &cqe);
    CHECK(cqe.tag == 6 && cqe.status == VGPU_S_OK, "NOP status %d", cqe.status);
    CHECK_QT(e);
    ok = 1;
out:
    return ok;
}

/*
 * Hot-plug and hot-unplug (i440fx, ACPI PCI hotplug): the chardev is already
 * connected when the device appears, so HELLO goes out from realize; unplug
 * says BYE and releases the memory backend and the chardev, so that the same
 * device can be plugged again and resumes the ring.
 */
static int case_hotplug(struct env *e)
{
    static const char add[] =
        "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"vgpu-stub\","
        "\"id\":\"vg0\",\"addr\":\"0x6\",\"chardev\":\"med\",\"memdev\":\"shm\","
        "\"vm-id\":7,\"vm-name\":\"qt\",\"priority\":1,\"weight\":2}}\n";
    static const char del[] =
        "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"vg0\"}}\n";
    struct qmp q = { .fd = -1 };
    struct vgpu_sqe sqe;
    struct vgpu_cqe cqe;
    int round, i, ok = 0;

    e->machine = "pc";
    e->bar2 = BAR2_PC;
    CHECK(start_mediator(e) == 0, "mediator start");
    CHECK(start_qemu_opts(e, "16M", true) == 0, "QEMU start");
    CHECK(qmp_open(e, &q) == 0, "QMP");
    CHECK(find_device(e) == -ENODEV, "device present before device_add");

    for (round = 0; round < 2; round++) {
        CHECK(qmp_expect(&q, add, "\"return\"", 10000), "device_add (round %d)", round);
        CHECK(setup_device(e) == 0, "setup after device_add");
        CHECK(e->devfn == 6 << 3, "device at devfn 0x%x", e->devfn);
        CHECK(wait_link(e, true, 10000) == 0, "no link after hot-plug (round %d)", round);
        sqe = nop(10 + round);
        submit(e, &sqe);
        CHECK(wait_cq(e, 1, 10000) == 1, "NOP after hot-plug (round %d)", round);
        pop_cqe(e, &cqe);
        CHECK(cqe.tag == 10u + round && cqe.status == VGPU_S_OK, "NOP status %d",
              cqe.status);

        /* device_del asks the guest; the eject register is its answer. */
        CHECK(qmp_expect(&q, del, "\"return\"", 10000), "device_del");
        CHECK(qt_cmd(&e->qt, "outl 0x%x 0x%x", 0xae00 + 0x8, 1u << 6) == 0, "eject");
        CHECK(qmp_expect(&q, NULL, "DEVICE_DELETED", 10000), "no DEVICE_DELETED");
        for (i = 0; i < 100 && find_device(e) == 0; i++) {
            sleep_ms(10);
        }
        CHECK(find_device(e) == -ENODEV, "device still present after eject");
        CHECK(qt_alive(&e->qt) && mediator_alive(e), "a process died on unplug");
    }
    /* The mediator saw two orderly sessions, not crashes. */
    CHECK(count_in_file(e->med_log, "closed") >= 2, "mediator saw no session end");
    CHECK_QT(e);
    ok = 1;
out:
    if (q.fd >= 0) {
        close(q.fd);
    }
    return ok;
}

/* ------------------------------------------------------------------------ */

/* Reads the doorbell eventfd's count without blocking: 0 when unsignalled. */
static uint64_t doorbell_count(int efd)
{
    uint64_t v = 0;

    return read(efd, &v, sizeof(v)) == sizeof(v) ? v : 0;
}

/* True when a KICK message arrives within @ms (other messages: false). */
static bool fake_got_kick(int cfd, int ms)
{
    union { struct vgpu_msg_hdr h; char raw[256]; } m;

    return fake_recv(cfd, &m, sizeof(m), NULL, ms) == VGPU_MSG_KICK;
}

/*
 * The doorbell eventfd, against a scripted mediator: HELLO carries it as a
 * second fd with VGPU_FEAT_DOORBELL_FD; after a WELCOME that takes it up,
 * doorbells signal it and no KICK is sent; while the link is down they do
 * not, and the one rung then becomes a KICK after the next WELCOME; a
 * mediator whose WELCOME does not take it up (protocol 1.0) gets KICKs.
 */
static int case_fake_doorbell(struct env *e)
{
    struct vgpu_msg_hello hello;
    struct vgpu_msg_welcome w;
    char target[64] = "";
    int lfd = -1, cfd = -1, shm_fd = -1, ok = 0, i;
    char path[48];
    ssize_t n;

    lfd = fake_listen(e);
    CHECK(lfd >= 0, "listen: %s", strerror(-lfd));
    CHECK(start_qemu(e, "16M") == 0, "QEMU start");
    CHECK(setup_device(e) == 0, "setup");

    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "first HELLO");
    CHECK(hello.features & VGPU_FEAT_DOORBELL_FD, "HELLO features 0x%x", hello.features);
    CHECK(fake_doorbell_fd >= 0, "HELLO came without a second (doorbell) fd");
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fake_doorbell_fd);
    n = readlink(path, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    CHECK(!strcmp(target, "anon_inode:[eventfd]"), "doorbell fd is '%s'", target);
    CHECK(fcntl(fake_doorbell_fd, F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");

    w = fake_welcome(hello.hdr.seq);
    w.features = VGPU_FEAT_DOORBELL_FD;
    CHECK(fake_send(cfd, &w, sizeof(w), -1) == 0, "WELCOME");
    CHECK(wait_link(e, true, 5000) == 0, "link up");
    for (i = 0; i < 5; i++) {
        reg_write(e, VGPU_REG_DOORBELL, 1);
    }
    CHECK(doorbell_count(fake_doorbell_fd) == 5, "5 doorbells did not signal the eventfd 5 times");
    CHECK(!fake_got_kick(cfd, 200), "a KICK message beside the eventfd");
    CHECK(reg(e, VGPU_REG_KICKS) == 0, "KICKS %u", reg(e, VGPU_REG_KICKS));

    /* Mediator gone: the doorbell goes back to the register handler. */
    close(cfd);
    cfd = -1;
    CHECK(wait_link(e, false, 5000) == 0, "link down");
    reg_write(e, VGPU_REG_DOORBELL, 1);
    CHECK(doorbell_count(fake_doorbell_fd) == 0, "doorbell signalled the eventfd while link down");

    /* A 1.0 mediator: WELCOME without the feature. KICKs, the pending one first. */
    cfd = fake_expect_hello(e, lfd, &hello, &shm_fd);
    CHECK(cfd >= 0, "HELLO after reconnect");
    CHECK(fake_doorbell_fd >= 0, "reconnect HELLO without the doorbell fd");
    CHECK(fcntl(fake_doorbell_fd, F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
    w = fake_welcome(hello.hdr.seq);
    CHECK(fake_send(cfd, &w, sizeof(w), -1) == 0, "WELCOME 1.0");
    CHECK(fake_got_kick(cfd, 5000), "no KICK for the doorbell rung while the link was down");
    reg_write(e, VGPU_REG_DOORBELL, 1);
    CHECK(fake_got_kick(cfd, 5000), "no KICK from a mediator that did not take the eventfd up");
    CHECK(doorbell_count(fake_doorbell_fd) == 0, "eventfd signalled although not taken up");
    CHECK(reg(e, VGPU_REG_KICKS) == 2, "KICKS %u", reg(e, VGPU_REG_KICKS));
    CHECK_QT(e);
    ok = 1;
out:
    if (fake_doorbell_fd >= 0) {
        close(fake_doorbell_fd);
        fake_doorbell_fd = -1;
    }
    fake_close(lfd, cfd, shm_fd);
    return ok;
}

/*
 * ABI 1.2: queues=4. The registers announce them, the mediator is told in
 * HELLO, and a request in queue 2's ring (at the end of BAR2) completes in
 * queue 2's CQ after a doorbell (the one doorbell serves every queue), while
 * queue 0 keeps working as before.
 */
static int case_multiqueue(struct env *e)
{
    const uint64_t shm = 16u << 20, q2 = VGPU_SHM_QUEUE_OFFSET(shm, 2);
    const uint64_t end = VGPU_SHM_DATA_END(shm, 4);
    struct vgpu_sqe sqe = nop(42);
    struct vgpu_cqe cqe;
    uint32_t cq_tail;
    int ok = 0;

    e->dev_extra = ",queues=4";
    CHECK(start_all(e, "16M") == 0, "start");
    CHECK(reg(e, VGPU_REG_FEATURES) & VGPU_FEAT_MULTIQUEUE, "MULTIQUEUE feature");
    CHECK(reg(e, VGPU_REG_QUEUES) == 4, "queues %u", reg(e, VGPU_REG_QUEUES));
    CHECK(reg(e, VGPU_REG_DATA_END_LO) == (uint32_t)end &&
          reg(e, VGPU_REG_DATA_END_HI) == (uint32_t)(end >> 32), "data end 0x%x",
          reg(e, VGPU_REG_DATA_END_LO));
    reg_write(e, VGPU_REG_QUEUES, 9);
    CHECK(reg(e, VGPU_REG_QUEUES) == 4, "QUEUES is read-only");
    CHECK(count_in_file(e->med_log, "4 queue pair(s)") > 0, "the mediator was told 4 queues");

    /* A NOP in queue 2: SQE, sq_tail in queue 2's control page, doorbell. */
    qt_memwrite(&e->qt, e->bar2 + q2 + VGPU_SHM_SQ_OFFSET, &sqe, sizeof(sqe));
    qt_writel(&e->qt, e->bar2 + q2 + offsetof(struct vgpu_shm_ctrl, sq_tail), 1);
    reg_write(e, VGPU_REG_DOORBELL, 2);
    cq_tail = 0;
    for (int64_t deadline = now_ms() + 5000; now_ms() < deadline && cq_tail == 0;) {
        cq_tail = qt_readl(&e->qt, e->bar2 + q2 + offsetof(struct vgpu_shm_ctrl, cq_tail));
        qt_poll_async(&e->qt, 5);
    }
    CHECK(cq_tail == 1, "queue 2's cq_tail %u", cq_tail);
    qt_memread(&e->qt, e->bar2 + q2 + VGPU_SHM_CQ_OFFSET, &cqe, sizeof(cqe));
    CHECK(cqe.tag == 42 && cqe.user_data == sqe.user_data && cqe.status == VGPU_S_OK,
          "queue 2's completion: tag %u status %d", cqe.tag, cqe.status);
    CHECK(ctrl_read(e, offsetof(struct vgpu_shm_ctrl, cq_tail)) == 0,
          "nothing in queue 0's CQ");
    CHECK(wait_irq_status(e, VGPU_IRQ_COMPLETION, 5000), "completion interrupt cause");

    /* Queue 0 as ever. */
    sqe = nop(7);
    submit(e, &sqe);
    CHECK(wait_cq(e, 1, 5000) == 1, "queue 0 completion");
    pop_cqe(e, &cqe);
    CHECK(cqe.tag == 7 && cqe.status == VGPU_S_OK, "queue 0's completion");
    CHECK_QT(e);
    ok = 1;
out:
    return ok;
}

/*
 * Cases named "-kick" run the device with ioeventfd=off, so that doorbells
 * reach the register handler and travel as KICK messages; the others use
 * the default doorbell eventfd.
 */
static const struct {
    const char *name;
    int (*fn)(struct env *e);
    bool kick_msgs;
} cases[] = {
    { "identity", case_identity, false },
    { "realize-errors", case_realize_errors, false },
    { "vector-add-irq", case_vector_add, false },
    { "vector-add-irq-kick", case_vector_add, true },
    { "late-mediator", case_late_mediator, false },
    { "mediator-restart", case_mediator_restart, false },
    { "mediator-restart-kick", case_mediator_restart, true },
    { "bad-access", case_bad_access, false },
    { "doorbell-storm", case_doorbell_storm, false },
    { "doorbell-storm-kick", case_doorbell_storm, true },
    { "garbage", case_garbage, false },
    { "fake-mediator", case_fake_mediator, false },
    { "fake-doorbell", case_fake_doorbell, false },
    { "reset", case_reset, false },
    { "hotplug", case_hotplug, false },
    { "stalled-mediator", case_stalled_mediator, false },
    { "multiqueue", case_multiqueue, false },
};

static int run_case(unsigned idx)
{
    static struct env e;
    int64_t t0 = now_ms();
    int ok;

    case_name = cases[idx].name;
    if (env_init(&e) < 0) {
        printf("not ok - %s\n", case_name);
        return 0;
    }
    e.kick_msgs = cases[idx].kick_msgs;
    alarm(CASE_DEADLINE_S);
    ok = cases[idx].fn(&e);
    alarm(0);
    env_fini(&e, !ok);
    printf("%s - %s (%lld ms)\n", ok ? "ok" : "not ok", case_name,
           (long long)(now_ms() - t0));
    fflush(stdout);
    return ok;
}

int main(int argc, char **argv)
{
    unsigned i, ran = 0, passed = 0;
    int a;

    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    for (a = 1; a < argc; a++) {
        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            if (!strcmp(argv[a], cases[i].name)) {
                break;
            }
        }
        if (i == sizeof(cases) / sizeof(cases[0])) {
            fprintf(stderr, "unknown case '%s'\n", argv[a]);
            return 2;
        }
    }
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool want = argc == 1;

        for (a = 1; a < argc; a++) {
            want |= !strcmp(argv[a], cases[i].name);
        }
        if (want) {
            ran++;
            passed += run_case(i);
        }
    }
    printf("# %u of %u cases passed\n", passed, ran);
    return passed == ran ? 0 : 1;
}
