/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The mediator out of file descriptors (RLIMIT_NOFILE reached, e.g. a large
 * --max-sessions under systemd's default soft limit of 1024): connections
 * wait in the listen backlog, the mediator does not spin on the readable
 * listening socket, and it accepts them again once descriptors are free.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fhelp.h"

#define SHM      (4u << 20)
#define HOLDERS  4
#define WAITERS  4

static struct fh_mediator med;

/* utime + stime of pid, clock ticks; -1 on error. */
static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut, st;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "re");
    if (!f) {
        return -1;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');      /* comm may contain spaces */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) {
        return -1;
    }
    return (long)(ut + st);
}

/* An administrative connection: STATS_REQ answered, then held open. */
static int admin_conn(void)
{
    struct vgpu_msg_hdr h = { .type = VGPU_MSG_STATS_REQ, .size = sizeof(h), .seq = 1 };
    static uint8_t buf[VGPU_MSG_MAX_SIZE];
    int s = fh_connect(med.sock);

    if (s < 0) {
        return s;
    }
    if (fh_send(s, &h, sizeof(h), NULL, 0) < 0 || fh_recv_msg(s, buf, sizeof(buf), 5000) <= 0) {
        close(s);
        return -EIO;
    }
    return s;
}

int main(void)
{
    const char *args[] = { "--executors", "1", NULL };
    int holders[HOLDERS], waiters[WAITERS];
    struct rlimit rl;
    struct fh_dev d;
    long hz = sysconf(_SC_CLK_TCK), t0, t1;
    int base, i, r;

    for (i = 0; i < HOLDERS; i++) {
        holders[i] = -1;
    }
    for (i = 0; i < WAITERS; i++) {
        waiters[i] = -1;
    }
    if (fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        return fh_summary();
    }
    /* Room for exactly HOLDERS more descriptors. */
    usleep(200 * 1000);
    base = fh_count_fds(med.pid);
    rl.rlim_cur = rl.rlim_max = (rlim_t)(base + HOLDERS);
    r = prlimit(med.pid, RLIMIT_NOFILE, &rl, NULL);
    CHECK(r == 0 && base > 0, "mediator limited to %d descriptors (%d in use)", base + HOLDERS, base);
    for (i = 0; i < HOLDERS; i++) {
        holders[i] = admin_conn();
    }
    CHECK(holders[HOLDERS - 1] >= 0, "%d administrative connections use up the descriptors",
          HOLDERS);
    /* These sit in the backlog: accept4() fails with EMFILE. */
    for (i = 0; i < WAITERS; i++) {
        waiters[i] = fh_connect(med.sock);
    }
    usleep(300 * 1000);

    t0 = cpu_ticks(med.pid);
    usleep(1500 * 1000);
    t1 = cpu_ticks(med.pid);
    printf("# mediator CPU while out of descriptors: %ld ticks in 1.5 s (%ld/s)\n", t1 - t0, hz);
    CHECK(t0 >= 0 && t1 >= 0 && (t1 - t0) * 5 < hz,
          "no busy loop on the readable listening socket (%ld ticks of %ld in 1.5 s)", t1 - t0,
          hz * 3 / 2);

    /* Descriptors free again: the waiting connections and a new device get in. */
    for (i = 0; i < HOLDERS; i++) {
        if (holders[i] >= 0) {
            close(holders[i]);
            holders[i] = -1;
        }
    }
    for (i = 0; i < WAITERS; i++) {
        if (waiters[i] >= 0) {
            close(waiters[i]);
            waiters[i] = -1;
        }
    }
    rl.rlim_cur = rl.rlim_max = (rlim_t)(base + 64);
    prlimit(med.pid, RLIMIT_NOFILE, &rl, NULL);
    r = fh_dev_open(&d, med.sock, 1, SHM);
    CHECK(r == 0, "a device attaches once descriptors are free (%d)", r);
    if (r == 0) {
        struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = 5 };
        struct vgpu_cqe cqe;

        fh_dev_queue(&d, &sqe);
        fh_dev_kick(&d);
        r = fh_dev_wait(&d, &cqe, 5000);
        CHECK(r == 0 && cqe.tag == 5 && cqe.status == VGPU_S_OK, "and its NOP completes");
    }
    fh_dev_close(&d);

    r = fh_mediator_stop(&med, false);
    CHECK(r == 0, "mediator exits 0 (status 0x%x)", r);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 40);
    }
    fh_mediator_cleanup(&med);
    return fh_summary();
}
