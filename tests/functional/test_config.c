/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * --config per-VM overrides (by id and by name) reach the scheduler and the
 * status table; a broken config file stops the mediator at start-up;
 * SIGUSR1 dumps the table to stderr; the socket is created 0660 in a new
 * directory; a second mediator refuses a socket that is in use, and a stale
 * socket file is replaced; --timeout-ms reaches the backend.
 */
#include <errno.h>
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

#define SHM (2u << 20)

static struct fh_mediator med;

static bool row_has(const char *status, const char *name, unsigned prio, unsigned weight)
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

static int run_mediator_sync(const char *sock, const char *cfg, int timeout_s)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd),
             "timeout %d '%s' --socket-path '%s' --backend cpu %s%s >/dev/null 2>&1",
             timeout_s, getenv("VGPU_MEDIATOR"), sock, cfg ? "--config " : "", cfg ? cfg : "");
    return system(cmd);
}

static bool log_contains(const char *what)
{
    char line[1024];
    bool found = false;
    FILE *f = fopen(med.log, "re");

    if (!f) {
        return false;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        found = strstr(line, what) != NULL;
    }
    fclose(f);
    return found;
}

int main(void)
{
    char cfg[96], bad[96];
    const char *args[] = { "--config", cfg, NULL };
    struct fh_dev d1, d2, d3;
    struct stat st;
    char *status;
    FILE *f;
    int r;

    snprintf(cfg, sizeof(cfg), "/tmp/vgpu-ft-config-%d.conf", (int)getpid());
    snprintf(bad, sizeof(bad), "/tmp/vgpu-ft-config-%d.bad", (int)getpid());
    f = fopen(cfg, "w");
    fprintf(f, "# per-VM overrides\n"
               "vm 11 priority 0 weight 50\n"
               "vm ft-vm12 weight 7        # name match, priority kept\n"
               "\n"
               "vm 13 priority 3 gpu 0    # pinned to GPU 0 (cpu: no GPU, ignored)\n");
    fclose(f);
    f = fopen(bad, "w");
    fprintf(f, "vm 11 priority 9 weight 1\n");
    fclose(f);

    if (fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        goto out_files;
    }
    r = stat(med.sock, &st);
    CHECK(r == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0660,
          "socket created in a new directory with mode 0660 (%o)", r == 0 ? st.st_mode & 0777 : 0);

    r = fh_dev_open(&d1, med.sock, 11, SHM);
    r |= fh_dev_open(&d2, med.sock, 12, SHM);
    r |= fh_dev_open(&d3, med.sock, 13, SHM);
    CHECK(r == 0, "three devices attach");
    status = fh_mediator_status(&med);
    CHECK(status != NULL, "--status answers");
    if (status) {
        /* devices say priority 1 weight 1 (fh_hello_init) */
        CHECK(row_has(status, "ft-vm11", 0, 50), "vm 11 by id: priority 0 weight 50");
        CHECK(row_has(status, "ft-vm12", 1, 7), "vm ft-vm12 by name: priority 1 (kept) weight 7");
        CHECK(row_has(status, "ft-vm13", 3, 1), "vm 13: priority 3 weight 1 (kept)");
        free(status);
    }

    /* SIGUSR1: the table on stderr */
    kill(med.pid, SIGUSR1);
    {
        uint64_t deadline = fh_now_ms() + 3000;
        /* the table header, not the "attached" lines, which name the VMs too */
        while (fh_now_ms() < deadline && !log_contains("exec_p99")) {
            usleep(20 * 1000);
        }
        CHECK(log_contains("ft-vm13") && log_contains("exec_p99"), "SIGUSR1 dumps the table");
    }

    /* a second mediator on the same socket refuses to start and leaves it alone */
    r = run_mediator_sync(med.sock, NULL, 5);
    CHECK(WIFEXITED(r) && WEXITSTATUS(r) != 0, "second mediator on a live socket exits non-zero");
    CHECK(stat(med.sock, &st) == 0, "the live socket is untouched");
    fh_dev_close(&d1);
    fh_dev_close(&d2);
    fh_dev_close(&d3);

    /* a broken config file stops the start-up */
    {
        char sock2[128];
        snprintf(sock2, sizeof(sock2), "%s/other.sock", med.dir);
        r = run_mediator_sync(sock2, bad, 5);
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 2, "priority 9 in the config: exit 2 (0x%x)", r);
        r = run_mediator_sync(sock2, "/nonexistent/vgpu.conf", 5);
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 2, "missing config file: exit 2 (0x%x)", r);
    }

    /* stale socket: after SIGKILL the file stays; the next start replaces it */
    r = fh_mediator_stop(&med, true);
    CHECK(r >= 0 && stat(med.sock, &st) == 0, "SIGKILL leaves a stale socket file");
    r = fh_mediator_start(&med, med.dir, args);
    CHECK(r == 0, "the next mediator replaces the stale socket");
    CHECK(log_contains("stale socket"), "and says so in its log");
    r = fh_dev_open(&d1, med.sock, 11, SHM);
    CHECK(r == 0, "devices attach to it");
    fh_dev_close(&d1);

    /* --timeout-ms reaches the backend: a long SGEMM ends with timeout */
    r = fh_mediator_stop(&med, false);
    {
        const char *targs[] = { "--timeout-ms", "50", NULL };
        const uint32_t dim = 1536;
        const uint64_t mat = (uint64_t)dim * dim * 4;
        struct vgpu_sqe sqe = { .opcode = VGPU_OP_SGEMM, .tag = 5 };
        struct vgpu_cqe cqe;

        r = fh_mediator_start(&med, med.dir, targs);
        CHECK(r == 0, "mediator with --timeout-ms 50 starts");
        r = fh_dev_open(&d1, med.sock, 11, 64u << 20);
        CHECK(r == 0, "device attaches");
        sqe.args.sgemm = (struct vgpu_args_sgemm) {
            .a_off = VGPU_SHM_DATA_OFFSET, .b_off = VGPU_SHM_DATA_OFFSET + mat,
            .c_off = VGPU_SHM_DATA_OFFSET + 2 * mat, .m = dim, .n = dim, .k = dim,
            .alpha = 1.0f, .beta = 0.0f,
        };
        fh_dev_queue(&d1, &sqe);
        fh_dev_kick(&d1);
        r = fh_dev_wait(&d1, &cqe, 20000);
        CHECK(r == 0 && cqe.status == VGPU_S_TIMEOUT,
              "SGEMM %ux%ux%u over a 50 ms limit -> timeout (got %s after %u us)", dim, dim, dim,
              r == 0 ? vgpu_status_name(cqe.status) : "nothing", r == 0 ? cqe.exec_us : 0);
        sqe = (struct vgpu_sqe) { .opcode = VGPU_OP_NOP, .tag = 6 };
        fh_dev_queue(&d1, &sqe);
        fh_dev_kick(&d1);
        r = fh_dev_wait(&d1, &cqe, 5000);
        CHECK(r == 0 && cqe.tag == 6 && cqe.status == VGPU_S_OK, "the next request runs normally");
        fh_dev_close(&d1);
    }

    r = fh_mediator_stop(&med, false);
    CHECK(r == 0, "mediator exits 0 (status 0x%x)", r);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 60);
    }
    fh_mediator_cleanup(&med);
out_files:
    unlink(cfg);
    unlink(bad);
    return fh_summary();
}
