/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * --config per-VM overrides (by id and by name) reach the scheduler and the
 * status table; a broken config file stops the mediator at start-up;
 * SIGUSR1 dumps the table to stderr; the socket is created 0660 in a new
 * directory; a second mediator refuses a socket that is in use, and a stale
 * socket file is replaced; --timeout-ms reaches the backend; an INI
 * settings file: [mediator] options (a flag wins), [vm] sections, errors with
 * their line, --check-config, and a reload that says which [mediator]
 * settings wait for a restart.
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

static int run_mediator_sync(const char *sock, const char *cfg, int timeout_s)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd),
             "timeout %d '%s' --socket-path '%s' --backend cpu %s%s >/dev/null 2>&1",
             timeout_s, getenv("VGPU_MEDIATOR"), sock, cfg ? "--config " : "", cfg ? cfg : "");
    return system(cmd);
}

/* Runs `vgpu-mediator --check-config path`; its exit status, output in out. */
static int check_config(const char *path, char *out, size_t cap)
{
    char cmd[512];
    FILE *p;
    size_t n;

    snprintf(cmd, sizeof(cmd), "'%s' --check-config '%s' 2>&1", getenv("VGPU_MEDIATOR"), path);
    p = popen(cmd, "r");
    if (!p) {
        return -1;
    }
    n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    return pclose(p);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    fputs(text, f);
    fclose(f);
}

static bool log_contains(const char *what)
{
    return fh_file_contains(med.log, what);
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
        CHECK(fh_status_row_has(status, "ft-vm11", 0, 50), "vm 11 by id: priority 0 weight 50");
        CHECK(fh_status_row_has(status, "ft-vm12", 1, 7), "vm ft-vm12 by name: priority 1 (kept) weight 7");
        CHECK(fh_status_row_has(status, "ft-vm13", 3, 1), "vm 13: priority 3 weight 1 (kept)");
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

    /* The INI settings file. */
    r = fh_mediator_stop(&med, false);
    {
        char ini[96], out[2048];
        const char *iargs[] = { "--config", ini, NULL };
        const char *oargs[] = { "--config", ini, "--max-inflight", "9", NULL };

        snprintf(ini, sizeof(ini), "/tmp/vgpu-ft-config-%d.ini", (int)getpid());
        write_file(ini, "; settings of one mediator\n"
                        "[mediator]\n"
                        "max-inflight = 7\n"
                        "inline-us = 0\n"
                        "\n"
                        "[vm 11]\n"
                        "priority = 0\n"
                        "weight = 50\n"
                        "[vm ft-vm12]\n"
                        "weight = 7\n"
                        "gpu = 0\n");
        r = check_config(ini, out, sizeof(out));
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 0 && strstr(out, "2 [mediator] setting(s), 2 [vm]"),
              "--check-config: a good INI file is ok (%s)", out);
        r = fh_mediator_start(&med, med.dir, iargs);
        CHECK(r == 0, "mediator starts with the INI file");
        r = fh_dev_open(&d1, med.sock, 11, SHM);
        r |= fh_dev_open(&d2, med.sock, 12, SHM);
        CHECK(r == 0 && d1.welcome.max_inflight == 7, "[mediator] max-inflight = 7 applies (%u)",
              d1.welcome.max_inflight);
        status = fh_mediator_status(&med);
        CHECK(status && fh_status_row_has(status, "ft-vm11", 0, 50) && fh_status_row_has(status, "ft-vm12", 1, 7),
              "[vm 11] and [vm ft-vm12] apply");
        free(status);
        /* A reload: [vm] live, [mediator] at the next restart (said so). */
        write_file(ini, "[mediator]\nmax-inflight = 5\ninline-us = 0\n[vm 11]\nweight = 2\n");
        kill(med.pid, SIGHUP);
        {
            uint64_t deadline = fh_now_ms() + 3000;
            while (fh_now_ms() < deadline && !log_contains("now says max-inflight=5")) {
                usleep(20 * 1000);
            }
        }
        CHECK(log_contains("now says max-inflight=5: takes effect at the next restart"),
              "reload: the changed [mediator] setting is named as waiting for a restart");
        status = fh_mediator_status(&med);
        CHECK(status && fh_status_row_has(status, "ft-vm11", 1, 2), "reload: [vm 11] weight 2 applies live");
        free(status);
        fh_dev_close(&d1);
        fh_dev_close(&d2);
        r = fh_mediator_stop(&med, false);

        /* A flag wins over the file. */
        r = fh_mediator_start(&med, med.dir, oargs);
        r |= fh_dev_open(&d1, med.sock, 11, SHM);
        CHECK(r == 0 && d1.welcome.max_inflight == 9, "--max-inflight 9 wins over the file (%u)",
              d1.welcome.max_inflight);
        fh_dev_close(&d1);
        r = fh_mediator_stop(&med, false);

        /* Bad files: refused, saying where. */
        write_file(ini, "[mediator]\nmax-inflight = 7\nexecutors = lots\n");
        r = check_config(ini, out, sizeof(out));
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 1 && strstr(out, ".ini:3") &&
              strstr(out, "executors"), "--check-config: a bad value is refused with its line");
        r = run_mediator_sync(med.sock, ini, 5);
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 2, "and the mediator does not start (0x%x)", r);
        write_file(ini, "[mediator]\nno-such-option = 1\n");
        r = check_config(ini, out, sizeof(out));
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 1 && strstr(out, ".ini:2"),
              "--check-config: an unknown key is refused");
        write_file(ini, "[vm 3]\nweight = 2\n[gpus]\nx = 1\n");
        r = check_config(ini, out, sizeof(out));
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 1 && strstr(out, "unknown section [gpus]"),
              "--check-config: an unknown section is refused");
        write_file(ini, "[gpu 1]\nuse = no\n[vm 3]\ngpu = 0\n");
        r = check_config(ini, out, sizeof(out));
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 0 && strstr(out, "GPUs set aside"),
              "--check-config: [gpu 1] use = no is taken");
        write_file(ini, "[gpu 1]\nuse = maybe\n");
        r = check_config(ini, out, sizeof(out));
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 1 && strstr(out, "yes or no"),
              "--check-config: [gpu] use takes yes or no");
        write_file(ini, "[mediator]\nconfig = /etc/other.conf\n");
        r = check_config(ini, out, sizeof(out));
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 1 && strstr(out, "command line only"),
              "--check-config: config inside the file is refused");
        unlink(ini);
        r = fh_mediator_start(&med, med.dir, NULL);
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
