/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Two saturating VMs of one priority class with weights 3:1 on one executor:
 * the execution time each gets must approach 75/25 (the design's target is
 * +-5 points; see the margin below), measured by the mediator's own
 * accounting (--status) and
 * reported next to the clients' completion counts. A third VM in a higher class, arriving
 * later, must see short queue waits while the two keep saturating.
 * Then the weights come from the settings file and change with a SIGHUP
 * while both saturate: the shares follow, 1:1 before, 3:1 after.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vgpu/libvgpu.h"
#include "fhelp.h"

#define N      (1u << 20)   /* ~0.5 ms each: the clients keep their queues full */
#define DEPTH  24

static struct fh_mediator med;
static volatile int stop;

struct vm {
    uint32_t id, prio, weight;
    char name[32];
    uint64_t done;
    int err;
};

static void *vm_main(void *arg)
{
    struct vm *v = arg;
    struct vgpu_open_opts o = { .transport = "sim", .shm_size = 16u << 20 };
    struct vgpu_dev *dev;
    uint64_t a, b, out;
    unsigned inflight = 0;

    o.socket_path = med.sock;
    o.vm_id = v->id;
    o.priority = v->prio;
    o.weight = v->weight;
    o.vm_name = v->name;
    if (vgpu_open(&o, &dev) < 0 || vgpu_alloc(dev, N * 4, 64, &a) ||
        vgpu_alloc(dev, N * 4, 64, &b) || vgpu_alloc(dev, N * 4, 64, &out)) {
        v->err = 1;
        return NULL;
    }
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        struct vgpu_sqe s = { .opcode = VGPU_OP_VECTOR_ADD };
        struct vgpu_cqe c;

        s.args.vector_add = (struct vgpu_args_vector_add) { a, b, out, N };
        while (inflight < DEPTH && vgpu_submit(dev, &s) == 0) {
            inflight++;
        }
        vgpu_kick(dev);
        if (vgpu_wait(dev, &c, 5000) < 0 || c.status != VGPU_S_OK) {
            v->err = 1;
            break;
        }
        inflight--;
        v->done++;
    }
    /* drain */
    while (inflight > 0) {
        struct vgpu_cqe c;
        if (vgpu_wait(dev, &c, 5000) < 0) {
            break;
        }
        inflight--;
    }
    vgpu_close(dev);
    return NULL;
}

/* "12.3ms" -> ns */
static double parse_dur(const char *s)
{
    char unit[8] = "";
    double v = 0;

    if (sscanf(s, "%lf%7s", &v, unit) < 1) {
        return -1;
    }
    if (!strcmp(unit, "ns")) return v;
    if (!strcmp(unit, "us")) return v * 1e3;
    if (!strcmp(unit, "ms")) return v * 1e6;
    if (!strcmp(unit, "s")) return v * 1e9;
    return -1;
}

/* exec_sum (16th column) of the row naming vm */
static double exec_sum(const char *status, const char *name)
{
    const char *row = strstr(status, name);
    char col[16][32];

    if (!row) {
        return -1;
    }
    while (row > status && row[-1] != '\n') {
        row--;
    }
    if (sscanf(row, "%31s %31s %31s %31s %31s %31s %31s %31s %31s %31s %31s %31s %31s %31s %31s %31s",
               col[0], col[1], col[2], col[3], col[4], col[5], col[6], col[7], col[8], col[9],
               col[10], col[11], col[12], col[13], col[14], col[15]) != 16) {
        return -1;
    }
    return parse_dur(col[15]);
}

/* Execution time of each VM between two --status snapshots: heavy's share. */
static double share_between(const char *s0, const char *s1)
{
    double h = exec_sum(s1, "ft-heavy") - exec_sum(s0, "ft-heavy");
    double l = exec_sum(s1, "ft-light") - exec_sum(s0, "ft-light");

    return h > 0 && l > 0 ? h / (h + l) : -1.0;
}

static void write_weights(const char *path, unsigned heavy)
{
    FILE *f = fopen(path, "w");

    fprintf(f, "[vm ft-heavy]\nweight = %u\n[vm ft-light]\nweight = 1\n", heavy);
    fclose(f);
}

/* Both VMs ask for weight 3 and 1; the file says 1:1, then 3:1 (SIGHUP). */
static void reload_phase(void)
{
    char cfg[96];
    const char *args[] = { "--executors", "1", "--quantum-us", "500", "--config", cfg, NULL };
    struct vm vms[2] = {
        { .id = 31, .prio = 2, .weight = 3, .name = "ft-heavy" },
        { .id = 32, .prio = 2, .weight = 1, .name = "ft-light" },
    };
    char *s[4];
    double before, after;
    pthread_t th[2];

    snprintf(cfg, sizeof(cfg), "/tmp/vgpu-ft-fair-%d.ini", (int)getpid());
    write_weights(cfg, 1);
    if (fh_mediator_start(&med, NULL, args) < 0) {
        CHECK(false, "reload: mediator starts with the settings file");
        unlink(cfg);
        return;
    }
    __atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++) {
        pthread_create(&th[i], NULL, vm_main, &vms[i]);
    }
    usleep(1000 * 1000);
    s[0] = fh_mediator_status(&med);
    usleep(2000 * 1000);
    s[1] = fh_mediator_status(&med);
    write_weights(cfg, 3);
    kill(med.pid, SIGHUP);
    usleep(500 * 1000);
    s[2] = fh_mediator_status(&med);
    usleep(2000 * 1000);
    s[3] = fh_mediator_status(&med);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    before = s[0] && s[1] ? share_between(s[0], s[1]) : -1;
    after = s[2] && s[3] ? share_between(s[2], s[3]) : -1;
    printf("# settings file 1:1 -> heavy %.1f%%; after SIGHUP to 3:1 -> heavy %.1f%%\n",
           100 * before, 100 * after);
    CHECK(vms[0].err == 0 && vms[1].err == 0, "reload: both VMs ran without error throughout");
    CHECK(before > 0.38 && before < 0.62, "reload: file 1:1 -> %.1f%% (target 50)", 100 * before);
    CHECK(after > 0.62 && after < 0.88, "reload: SIGHUP to 3:1 -> %.1f%% (target 75)", 100 * after);
    for (int i = 0; i < 4; i++) {
        free(s[i]);
    }
    CHECK(fh_mediator_stop(&med, false) == 0, "reload: the mediator is still there and exits 0");
    if (fh_failed) {
        fh_mediator_dump_log(&med, 30);
    }
    fh_mediator_cleanup(&med);
    unlink(cfg);
}

int main(void)
{
    const char *args[] = { "--executors", "1", "--quantum-us", "500", NULL };
    struct vm vms[2] = {
        { .id = 31, .prio = 2, .weight = 3, .name = "ft-heavy" },
        { .id = 32, .prio = 2, .weight = 1, .name = "ft-light" },
    };
    pthread_t th[2];
    char *status;

    if (fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        return fh_summary();
    }
    for (int i = 0; i < 2; i++) {
        pthread_create(&th[i], NULL, vm_main, &vms[i]);
    }
    sleep(2);

    /* a high-priority VM arrives while the two saturate */
    {
        struct vgpu_open_opts o = { .transport = "sim", .shm_size = 2u << 20, .vm_id = 33,
                                    .priority = 0, .weight = 1, .vm_name = "ft-urgent" };
        struct vgpu_dev *dev;
        uint64_t worst = 0;
        int ok = 0;
        o.socket_path = med.sock;
        if (vgpu_open(&o, &dev) == 0) {
            uint64_t a, b, out;
            if (vgpu_alloc(dev, 4096 * 4, 64, &a) == 0 && vgpu_alloc(dev, 4096 * 4, 64, &b) == 0 &&
                vgpu_alloc(dev, 4096 * 4, 64, &out) == 0) {
                for (int i = 0; i < 50; i++) {
                    struct vgpu_sqe s = { .opcode = VGPU_OP_VECTOR_ADD, .tag = (uint32_t)i };
                    struct vgpu_cqe c;
                    s.args.vector_add = (struct vgpu_args_vector_add) { a, b, out, 4096 };
                    if (vgpu_call(dev, &s, &c, 5000) == 0 && c.status == VGPU_S_OK) {
                        ok++;
                        if (c.queue_us > worst) {
                            worst = c.queue_us;
                        }
                    }
                }
            }
            vgpu_close(dev);
        }
        printf("# urgent VM: %d/50 ok, worst queue wait %llu us\n", ok, (unsigned long long)worst);
        CHECK(ok == 50, "class-0 VM served while two class-2 VMs saturate");
        /* one 2^20 request of the others may be executing when it arrives */
        CHECK(worst < 20000, "class-0 queue wait bounded (worst %llu us)", (unsigned long long)worst);
    }

    status = fh_mediator_status(&med);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK(vms[0].err == 0 && vms[1].err == 0, "both saturating VMs ran without error");
    CHECK(status != NULL, "--status answers");
    if (status) {
        double h = exec_sum(status, "ft-heavy"), l = exec_sum(status, "ft-light");
        double share = h / (h + l);
        double cshare = (double)vms[0].done / (double)(vms[0].done + vms[1].done);
        printf("%s", status);
        printf("# execution time: heavy %.1f ms, light %.1f ms -> %.1f%% / %.1f%%;"
               " completions %llu / %llu -> %.1f%%\n", h / 1e6, l / 1e6, 100 * share,
               100 * (1 - share), (unsigned long long)vms[0].done,
               (unsigned long long)vms[1].done, 100 * cshare);
        /*
         * DRR holds shares exactly only while both VMs stay backlogged; here
         * the clients share 2 cores with the executor and with whatever else
         * the host runs, and a starved client lets its queue drain (the
         * scheduler is work-conserving, so the other VM takes the slack).
         * tests/unit/test_sched.c checks the 75/25 +-2 of the algorithm; this
         * checks the end-to-end effect with a margin for a loaded host.
         */
        CHECK(h > 0 && l > 0 && share > 0.62 && share < 0.88,
              "weights 3:1 -> execution time %.1f%% / %.1f%% (target 75/25)", 100 * share,
              100 * (1 - share));
        /* completion counts are informational: per-request cost varies with
         * the host's load, and the scheduler shares time, not requests */
        free(status);
    }
    fh_mediator_stop(&med, false);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 40);
    }
    fh_mediator_cleanup(&med);
    reload_phase();
    return fh_summary();
}
