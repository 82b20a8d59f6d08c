/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * systemd's notification protocol as the unit (Type=notify, WatchdogSec=)
 * relies on it: the test is the service manager, with its own NOTIFY_SOCKET
 * (a SOCK_DGRAM Unix socket). READY=1 comes only once the VM socket accepts
 * connections, with a STATUS= line; WATCHDOG=1 comes every half
 * WATCHDOG_USEC and not at all without it; STATUS= follows a VM attaching;
 * STOPPING=1 comes at SIGTERM. And the log under journald: with
 * JOURNAL_STREAM naming its stderr, "<P>message" lines, no timestamp of its own.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fhelp.h"

#define SHM (4ull << 20)
#define WATCHDOG_USEC 600000    /* pings every 300 ms */

static int notify_listen(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -errno;
    }
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* One datagram (NUL-terminated) within timeout_ms: its length, or -ETIMEDOUT. */
static int notify_recv(int fd, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    ssize_t n;

    if (poll(&pfd, 1, timeout_ms) <= 0) {
        return -ETIMEDOUT;
    }
    n = recv(fd, buf, cap - 1, 0);
    if (n < 0) {
        return -errno;
    }
    buf[n] = '\0';
    return (int)n;
}

/* Whether the message has the line (a whole line, or a prefix of one when
 * the line ends in '='). */
static bool has_line(const char *msg, const char *line)
{
    size_t len = strlen(line);
    bool prefix = len && line[len - 1] == '=';

    for (const char *p = msg; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, line, len) == 0 && (prefix || p[len] == '\n' || p[len] == '\0')) {
            return true;
        }
    }
    return false;
}

/* Waits up to timeout_ms for a message with line; copies it to out. */
static bool wait_for(int fd, const char *line, char *out, size_t cap, int timeout_ms)
{
    uint64_t deadline = fh_now_ms() + (uint64_t)timeout_ms;

    while (fh_now_ms() < deadline) {
        int n = notify_recv(fd, out, cap, (int)(deadline - fh_now_ms()) + 1);
        if (n >= 0 && has_line(out, line)) {
            return true;
        }
    }
    return false;
}

static void drain(int fd)
{
    char buf[512];

    while (notify_recv(fd, buf, sizeof(buf), 0) >= 0) {
    }
}

int main(void)
{
    struct fh_mediator m = { 0 };
    char npath[100], msg[512];
    int nfd, status;

    setvbuf(stdout, NULL, _IONBF, 0);
    snprintf(m.dir, sizeof(m.dir), "/tmp/vgpu-ft-XXXXXX");
    if (!mkdtemp(m.dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(npath, sizeof(npath), "%s/notify.sock", m.dir);
    nfd = notify_listen(npath);
    if (nfd < 0) {
        fprintf(stderr, "notify socket %s: %s\n", npath, strerror(-nfd));
        return 1;
    }
    setenv("NOTIFY_SOCKET", npath, 1);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "600000", 1);

    /* ---- READY=1 only once the socket accepts connections ---- */
    if (fh_mediator_spawn(&m, m.dir, NULL) < 0) {
        return 1;
    }
    {
        bool ready = wait_for(nfd, "READY=1", msg, sizeof(msg), 10000);
        int s = ready ? fh_connect(m.sock) : -1;

        CHECK(ready, "READY=1 within 10 s of the start");
        CHECK(s >= 0, "the VM socket accepts a connection as soon as READY=1 has come (%s)",
              s >= 0 ? "yes" : strerror(-s));
        CHECK(has_line(msg, "STATUS="), "READY=1 comes with a STATUS= line");
        CHECK(strstr(msg, "STATUS=0 VMs, backend ") != NULL, "the first STATUS= says 0 VMs and the "
              "backend: '%s'", strchr(msg, '\n') ? strchr(msg, '\n') + 1 : msg);
        if (s >= 0) {
            close(s);
        }
    }

    /* ---- a VM attaching changes STATUS=; WATCHDOG=1 every half WATCHDOG_USEC ---- */
    {
        struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP };
        struct vgpu_cqe cqe;
        struct fh_dev d;
        uint64_t end, last, max_gap = 0;
        int pings = 0, nops = 0, r = fh_dev_open(&d, m.sock, 7, SHM);

        CHECK(r == 0, "a device attaches (%s)", r ? strerror(-r) : "ok");
        CHECK(wait_for(nfd, "STATUS=", msg, sizeof(msg), 3000) &&
              strstr(msg, "STATUS=1 VM, backend ") != NULL,
              "STATUS= says 1 VM within 3 s of an attach: '%s'", msg);

        /* A NOP wakes the I/O loop just before each ping is due, then all
         * is quiet: the next ping must still come half WATCHDOG_USEC after
         * the last, not a whole interval after that wake-up. */
        last = fh_now_ms();
        if (wait_for(nfd, "WATCHDOG=1", msg, sizeof(msg), WATCHDOG_USEC / 1000)) {
            last = fh_now_ms();
            pings++;
        }
        end = fh_now_ms() + 2400;
        while (fh_now_ms() < end) {
            uint64_t nop_at = last + WATCHDOG_USEC / 2000 * 5 / 6, stop = last + 1000;
            bool sent = false;

            while (fh_now_ms() < stop) {
                uint64_t until = sent ? stop : nop_at;
                int n = notify_recv(nfd, msg, sizeof(msg),
                                    until > fh_now_ms() ? (int)(until - fh_now_ms()) : 0);

                if (n >= 0 && has_line(msg, "WATCHDOG=1")) {
                    uint64_t now = fh_now_ms();
                    max_gap = now - last > max_gap ? now - last : max_gap;
                    last = now;
                    pings++;
                    break;
                }
                if (!sent && fh_now_ms() >= nop_at && r == 0) {
                    fh_dev_queue(&d, &sqe);
                    fh_dev_kick(&d);
                    nops += fh_dev_wait(&d, &cqe, 1000) == 0;
                    sent = true;
                }
            }
            if (fh_now_ms() >= stop) {
                max_gap = stop - last;
                break;
            }
        }
        /* 9 expected; systemd would kill it after a gap of WATCHDOG_USEC. */
        CHECK(pings >= 6, "WATCHDOG=1 every ~%d ms with WATCHDOG_USEC=%d: %d in 2.7 s (%d NOPs)",
              WATCHDOG_USEC / 2000, WATCHDOG_USEC, pings, nops);
        CHECK(max_gap < WATCHDOG_USEC * 3 / 4000, "no gap between pings longer than 3/4 of "
              "WATCHDOG_USEC: longest %llu ms", (unsigned long long)max_gap);

        if (r == 0) {
            fh_dev_close(&d);
        }
        CHECK(wait_for(nfd, "STATUS=", msg, sizeof(msg), 3000) &&
              strstr(msg, "STATUS=0 VMs") != NULL,
              "STATUS= says 0 VMs again after it left: '%s'", msg);
    }

    /* ---- STOPPING=1 at SIGTERM ---- */
    drain(nfd);
    kill(m.pid, SIGTERM);
    CHECK(wait_for(nfd, "STOPPING=1", msg, sizeof(msg), 5000), "STOPPING=1 within 5 s of SIGTERM");
    status = fh_mediator_stop(&m, false);
    CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the mediator exits 0 after SIGTERM (status 0x%x)", status);

    /* ---- no WATCHDOG_USEC: no pings ---- */
    unsetenv("WATCHDOG_USEC");
    drain(nfd);
    if (fh_mediator_spawn(&m, m.dir, NULL) == 0) {
        int pings = 0;
        uint64_t end;

        CHECK(wait_for(nfd, "READY=1", msg, sizeof(msg), 10000), "READY=1 again (no watchdog)");
        end = fh_now_ms() + 1500;
        while (fh_now_ms() < end) {
            if (notify_recv(nfd, msg, sizeof(msg), 100) >= 0 && has_line(msg, "WATCHDOG=1")) {
                pings++;
            }
        }
        CHECK(pings == 0, "no WATCHDOG=1 without WATCHDOG_USEC (%d in 1.5 s)", pings);
        status = fh_mediator_stop(&m, false);
        CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "and it exits 0 (status 0x%x)", status);
    }

    /* ---- stderr is the journal: priority prefixes, nothing journald adds ---- */
    {
        struct stat st;
        char js[64], *buf = NULL;
        long off = 0;
        FILE *f;

        f = fopen(m.log, "r");
        if (f && fstat(fileno(f), &st) == 0) {
            fseek(f, 0, SEEK_END);
            off = ftell(f);
            snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
                     (unsigned long long)st.st_ino);
            setenv("JOURNAL_STREAM", js, 1);
        }
        drain(nfd);
        CHECK(f && fh_mediator_spawn(&m, m.dir, NULL) == 0 &&
              wait_for(nfd, "READY=1", msg, sizeof(msg), 10000),
              "a mediator whose stderr is JOURNAL_STREAM starts");
        status = fh_mediator_stop(&m, false);
        unsetenv("JOURNAL_STREAM");
        if (f) {
            buf = calloc(1, 65536);
            fseek(f, off, SEEK_SET);
            if (buf) {
                buf[fread(buf, 1, 65535, f)] = '\0';
            }
            fclose(f);
        }
        CHECK(buf && (strncmp(buf, "<6>", 3) == 0 || strncmp(buf, "<4>", 3) == 0),
              "the first line has a syslog priority prefix: '%.60s'", buf ? buf : "");
        CHECK(buf && strstr(buf, "<6>vgpu-mediator ") != NULL &&
              strstr(strstr(buf, "<6>vgpu-mediator "), " ready: backend ") != NULL,
              "the ready line is '<6>vgpu-mediator VERSION ready: ...' (syslog's info)");
        CHECK(buf && strstr(buf, "\n<6>vgpu-mediator stopped\n") != NULL,
              "the last line is '<6>vgpu-mediator stopped'");
        CHECK(buf && strstr(buf, "Z vgpu-mediator[") == NULL && strstr(buf, " info  ") == NULL,
              "no line carries a timestamp, name and pid of our own");
        CHECK(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "it exits 0 (status 0x%x)", status);
        free(buf);
    }

    if (fh_failed) {
        fh_mediator_dump_log(&m, 30);
    }
    close(nfd);
    unlink(npath);
    fh_mediator_cleanup(&m);
    return fh_summary();
}
