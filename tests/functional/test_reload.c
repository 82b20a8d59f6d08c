/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * SIGHUP reloads, it does not stop: the mediator keeps serving, re-reads its
 * --config file and applies the new per-VM priority/weight to the VMs that
 * are connected (and to those that connect later); a file that does not
 * parse, or is missing, changes nothing; SIGTERM afterwards still exits 0.
 * Without --config a SIGHUP is harmless too.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fhelp.h"

#define SHM (2u << 20)

static struct fh_mediator med;

/* Polls --status until every (name, prio, weight) holds, up to 5 s. */
static bool status_shows(const char *const *names, const unsigned (*pw)[2], int n)
{
    uint64_t deadline = fh_now_ms() + 5000;

    do {
        char *st = fh_mediator_status(&med);
        bool all = st != NULL;

        for (int i = 0; all && i < n; i++) {
            all = fh_status_row_has(st, names[i], pw[i][0], pw[i][1]);
        }
        free(st);
        if (all) {
            return true;
        }
        usleep(20 * 1000);
    } while (fh_now_ms() < deadline);
    return false;
}

static int count_in_log(const char *what)
{
    char line[1024];
    int n = 0;
    FILE *f = fopen(med.log, "re");

    if (!f) {
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        n += strstr(line, what) != NULL;
    }
    fclose(f);
    return n;
}

/* Waits until the log has more than `before` lines with what, up to 5 s. */
static bool log_grows(const char *what, int before)
{
    uint64_t deadline = fh_now_ms() + 5000;

    while (fh_now_ms() < deadline) {
        if (count_in_log(what) > before) {
            return true;
        }
        usleep(20 * 1000);
    }
    return false;
}

/* Whether the mediator still runs; reaps it (and says how it ended) if not. */
static bool alive(void)
{
    int status;

    if (med.pid <= 0) {
        return false;
    }
    if (waitpid(med.pid, &status, WNOHANG) == 0) {
        return true;
    }
    printf("# the mediator ended (status 0x%x)\n", status);
    med.pid = 0;
    return false;
}

static bool nop_ok(struct fh_dev *d, uint64_t tag)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = tag };
    struct vgpu_cqe cqe;

    fh_dev_queue(d, &sqe);
    fh_dev_kick(d);
    return fh_dev_wait(d, &cqe, 5000) == 0 && cqe.tag == tag && cqe.status == VGPU_S_OK;
}

static void write_file(const char *path, const char *text)
{
    char tmp[128];
    FILE *f;

    /* written aside and renamed: the mediator never reads half a file */
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
        rename(tmp, path);
    }
}

int main(void)
{
    static const char *const names[] = { "ft-vm31", "ft-vm32", "ft-vm33" };
    char cfg[96];
    const char *args[] = { "--config", cfg, NULL };
    struct fh_dev d1, d2, d3;
    int r, before;

    snprintf(cfg, sizeof(cfg), "/tmp/vgpu-ft-reload-%d.conf", (int)getpid());
    write_file(cfg, "vm 31 priority 2 weight 3\n");

    if (fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        goto out_files;
    }
    r = fh_dev_open(&d1, med.sock, 31, SHM);
    r |= fh_dev_open(&d2, med.sock, 32, SHM);
    CHECK(r == 0, "two devices attach");
    {
        /* devices say priority 1 weight 1 (fh_hello_init) */
        const unsigned want[][2] = { { 2, 3 }, { 1, 1 } };
        CHECK(status_shows(names, want, 2), "before: vm 31 priority 2 weight 3, vm 32 1/1");
    }

    /* a new file: vm 31 loses its priority line, vm 32 (by name) and 33 gain one */
    write_file(cfg, "vm 31 weight 5            # priority back to the device's\n"
                    "vm ft-vm32 priority 0 weight 9\n"
                    "vm 33 priority 3 weight 4\n");
    before = count_in_log("reload: config");
    kill(med.pid, SIGHUP);
    CHECK(log_grows("reload: config", before), "SIGHUP: the reload is logged");
    CHECK(alive(), "SIGHUP does not stop the mediator");
    if (!med.pid) {
        goto out;
    }
    {
        const unsigned want[][2] = { { 1, 5 }, { 0, 9 } };
        CHECK(status_shows(names, want, 2),
              "after: vm 31 priority 1 (device's) weight 5, vm ft-vm32 priority 0 weight 9");
    }
    CHECK(count_in_log("reload: session") == 2 &&
          count_in_log("2 of 2 connected VM(s) changed") == 1,
          "one log line per VM that changed, and a summary");
    CHECK(nop_ok(&d1, 1) && nop_ok(&d2, 2), "connected devices keep running requests");
    r = fh_dev_open(&d3, med.sock, 33, SHM);
    {
        const unsigned want[][2] = { { 1, 5 }, { 0, 9 }, { 3, 4 } };
        CHECK(r == 0 && status_shows(names, want, 3),
              "a device attaching after the reload gets the new settings (vm 33 3/4)");
    }

    /* a file that does not parse: logged, nothing changes */
    write_file(cfg, "vm 31 weight 2\n"
                    "vm 32 priority 9 weight 1\n");
    before = count_in_log("not applied");
    kill(med.pid, SIGHUP);
    CHECK(log_grows("not applied", before), "a bad config file on SIGHUP is logged as an error");
    CHECK(alive(), "and the mediator keeps running");
    {
        const unsigned want[][2] = { { 1, 5 }, { 0, 9 }, { 3, 4 } };
        CHECK(status_shows(names, want, 3), "the settings in use stay (31: 1/5, 32: 0/9)");
    }

    /* a missing config file: the same */
    unlink(cfg);
    before = count_in_log("not applied");
    kill(med.pid, SIGHUP);
    CHECK(log_grows("not applied", before) && alive(), "a missing config file: logged, running");
    CHECK(nop_ok(&d1, 3) && nop_ok(&d3, 4), "requests still run");
    fh_dev_close(&d1);
    fh_dev_close(&d2);
    fh_dev_close(&d3);

    r = fh_mediator_stop(&med, false);
    CHECK(r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "SIGTERM after the SIGHUPs: exit 0 (0x%x)",
          r);

    /* without --config */
    r = fh_mediator_start(&med, med.dir, NULL);
    CHECK(r == 0, "a mediator without --config starts");
    before = count_in_log("nothing to reload");
    kill(med.pid, SIGHUP);
    CHECK(log_grows("nothing to reload", before) && alive(), "SIGHUP without --config: still running");
    r = fh_dev_open(&d1, med.sock, 31, SHM);
    CHECK(r == 0 && nop_ok(&d1, 5), "and serving");
    fh_dev_close(&d1);
    r = fh_mediator_stop(&med, false);
    CHECK(r >= 0 && WIFEXITED(r) && WEXITSTATUS(r) == 0, "then SIGTERM: exit 0 (0x%x)", r);

out:
    if (fh_failed) {
        fh_mediator_dump_log(&med, 60);
    }
    fh_mediator_cleanup(&med);
out_files:
    unlink(cfg);
    return fh_summary();
}
