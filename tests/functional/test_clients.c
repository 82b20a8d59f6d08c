/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Eight concurrent sim clients (libvgpu) with different priorities and
 * weights run vector_add / saxpy / reduce_sum / nop in pipelined batches and
 * check every result; meanwhile a ninth client process is killed while its
 * large requests execute. The mediator must free that session (seen through
 * --status and its memory maps) without disturbing the others.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vgpu/libvgpu.h"
#include "fhelp.h"

#define NCLIENTS   8
#define ITERATIONS 40
#define MAXN       65536u

static struct fh_mediator med;
static pthread_barrier_t done_barrier, release_barrier;

struct client {
    int idx;
    int errors;
    char why[160];
    uint64_t completed;
};

static void fail(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct client *c, const char *fmt, ...)
{
    va_list ap;

    if (c->errors++ == 0) {
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof(c->why), fmt, ap);
        va_end(ap);
    }
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    char name[32];
    struct vgpu_open_opts o = { 0 };
    struct vgpu_dev *dev = NULL;
    uint64_t a_off, b_off, out_off, x_off, y_off, in_off;
    unsigned seed = 1000u + (unsigned)c->idx;
    int r;

    snprintf(name, sizeof(name), "ft-client-%d", c->idx);
    o.transport = "sim";
    o.socket_path = med.sock;
    o.shm_size = 8u << 20;
    o.vm_id = 100 + (uint32_t)c->idx;
    o.priority = (uint32_t)c->idx % 4;
    o.weight = 1 + (uint32_t)c->idx;
    o.vm_name = name;
    o.link_timeout_ms = 5000;
    r = vgpu_open(&o, &dev);
    if (r < 0) {
        fail(c, "vgpu_open: %s", vgpu_strerror(r));
        goto out;
    }
    if (vgpu_alloc(dev, MAXN * 4, 64, &a_off) || vgpu_alloc(dev, MAXN * 4, 64, &b_off) ||
        vgpu_alloc(dev, MAXN * 4, 64, &out_off) || vgpu_alloc(dev, MAXN * 4, 64, &x_off) ||
        vgpu_alloc(dev, MAXN * 4, 64, &y_off) || vgpu_alloc(dev, MAXN * 4, 64, &in_off)) {
        fail(c, "vgpu_alloc failed");
        goto out;
    }
    float *a = vgpu_ptr(dev, a_off), *b = vgpu_ptr(dev, b_off), *out = vgpu_ptr(dev, out_off);
    float *x = vgpu_ptr(dev, x_off), *y = vgpu_ptr(dev, y_off), *in = vgpu_ptr(dev, in_off);

    for (int it = 0; it < ITERATIONS && !c->errors; it++) {
        uint32_t n1, n2, n3;
        struct vgpu_sqe sqe[4];
        double want_sum = 0;

        /* integer-valued floats: every result is exact whatever the order */
        seed = seed * 1103515245u + 12345u;
        n1 = 1 + (seed >> 8) % MAXN;
        seed = seed * 1103515245u + 12345u;
        n2 = 1 + (seed >> 8) % MAXN;
        seed = seed * 1103515245u + 12345u;
        n3 = 1 + (seed >> 8) % MAXN;
        for (uint32_t i = 0; i < n1; i++) {
            a[i] = (float)((i + (uint32_t)it) % 1000);
            b[i] = (float)(c->idx * 10 + (int)(i % 17));
            out[i] = -1.0f;
        }
        for (uint32_t i = 0; i < n2; i++) {
            x[i] = (float)(i % 100);
            y[i] = (float)(it + c->idx);
        }
        for (uint32_t i = 0; i < n3; i++) {
            in[i] = (float)((i * 7u + (uint32_t)it) % 13);
            want_sum += in[i];
        }
        memset(sqe, 0, sizeof(sqe));
        sqe[0].opcode = VGPU_OP_VECTOR_ADD;
        sqe[0].args.vector_add = (struct vgpu_args_vector_add) { a_off, b_off, out_off, n1 };
        sqe[1].opcode = VGPU_OP_SAXPY;
        sqe[1].args.saxpy = (struct vgpu_args_saxpy) { .x_off = x_off, .y_off = y_off, .n = n2,
                                                       .alpha = 2.0f };
        sqe[2].opcode = VGPU_OP_REDUCE_SUM;
        sqe[2].args.reduce_sum = (struct vgpu_args_reduce_sum) { in_off, n3 };
        sqe[3].opcode = VGPU_OP_NOP;
        for (int k = 0; k < 4; k++) {
            sqe[k].tag = (uint32_t)(it * 4 + k);
            sqe[k].user_data = ((uint64_t)c->idx << 32) | (uint32_t)(it * 4 + k);
            r = vgpu_submit(dev, &sqe[k]);
            if (r < 0) {
                fail(c, "vgpu_submit: %s", vgpu_strerror(r));
                goto out;
            }
        }
        r = vgpu_kick(dev);
        if (r < 0) {
            fail(c, "vgpu_kick: %s", vgpu_strerror(r));
            goto out;
        }
        for (int k = 0; k < 4; k++) {
            struct vgpu_cqe cqe;
            r = vgpu_wait(dev, &cqe, 20000);
            if (r < 0) {
                fail(c, "vgpu_wait: %s", vgpu_strerror(r));
                goto out;
            }
            if (cqe.tag != sqe[k].tag || cqe.user_data != sqe[k].user_data) {
                fail(c, "completion out of order: tag %u, expected %u", cqe.tag, sqe[k].tag);
                goto out;
            }
            if (cqe.status != VGPU_S_OK) {
                fail(c, "%s: status %s", vgpu_op_name(sqe[k].opcode), vgpu_status_name(cqe.status));
                goto out;
            }
            c->completed++;
            if (k == 2) {
                double got;
                memcpy(&got, &cqe.result, sizeof(got));
                if (got != want_sum) {
                    fail(c, "reduce_sum n=%u: got %f, want %f", n3, got, want_sum);
                }
            }
        }
        for (uint32_t i = 0; i < n1; i++) {
            if (out[i] != a[i] + b[i]) {
                fail(c, "vector_add n=%u: out[%u] = %f, want %f", n1, i, out[i], a[i] + b[i]);
                break;
            }
        }
        for (uint32_t i = 0; i < n2; i++) {
            float want = 2.0f * (float)(i % 100) + (float)(it + c->idx);
            if (y[i] != want) {
                fail(c, "saxpy n=%u: y[%u] = %f, want %f", n2, i, y[i], want);
                break;
            }
        }
    }
out:
    /* stay connected until main has looked at --status */
    pthread_barrier_wait(&done_barrier);
    pthread_barrier_wait(&release_barrier);
    vgpu_close(dev);
    return NULL;
}

/* A client that queues large requests and is then killed (like a QEMU crash). */
static pid_t spawn_victim(int *ready_fd)
{
    int p[2];
    pid_t pid;

    if (pipe(p) < 0) {
        return -1;
    }
    pid = fork();
    if (pid == 0) {
        struct vgpu_open_opts o = { .transport = "sim", .shm_size = 64u << 20, .vm_id = 999,
                                    .priority = 0, .weight = 1, .vm_name = "ft-victim" };
        struct vgpu_dev *dev;
        uint64_t a, b, out;
        const uint64_t n = 4u << 20;

        close(p[0]);
        o.socket_path = med.sock;
        if (vgpu_open(&o, &dev) < 0 || vgpu_alloc(dev, n * 4, 64, &a) ||
            vgpu_alloc(dev, n * 4, 64, &b) || vgpu_alloc(dev, n * 4, 64, &out)) {
            _exit(1);
        }
        for (int k = 0; k < 24; k++) {
            struct vgpu_sqe s = { .opcode = VGPU_OP_VECTOR_ADD, .tag = (uint32_t)k };
            s.args.vector_add = (struct vgpu_args_vector_add) { a, b, out, n };
            if (vgpu_submit(dev, &s) < 0) {
                _exit(1);
            }
        }
        vgpu_kick(dev);
        struct vgpu_cqe cqe;
        if (vgpu_wait(dev, &cqe, 10000) < 0) { /* the first one ran: the rest are in flight */
            _exit(1);
        }
        if (write(p[1], "R", 1) != 1) {
            _exit(1);
        }
        pause();
        _exit(0);
    }
    close(p[1]);
    *ready_fd = p[0];
    return pid;
}

static int count_memfd_maps(pid_t pid)
{
    char path[64], line[512];
    int n = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    f = fopen(path, "re");
    if (!f) {
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "/memfd:")) {
            n++;
        }
    }
    fclose(f);
    return n;
}

int main(void)
{
    const char *args[] = { "--executors", "2", "--aging-ms", "50", NULL };
    struct client cl[NCLIENTS];
    pthread_t th[NCLIENTS];
    char *status;
    int ready_fd = -1, wst, r;
    pid_t victim;
    char c;

    if (fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        return fh_summary();
    }
    pthread_barrier_init(&done_barrier, NULL, NCLIENTS + 1);
    pthread_barrier_init(&release_barrier, NULL, NCLIENTS + 1);

    victim = spawn_victim(&ready_fd);
    for (int i = 0; i < NCLIENTS; i++) {
        cl[i] = (struct client) { .idx = i };
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }

    /* kill the victim while its big requests are in flight */
    {
        r = (int)read(ready_fd, &c, 1); /* the child exits on any failure: EOF */
        CHECK(r == 1, "victim client has large requests in flight");
        kill(victim, SIGKILL);
        waitpid(victim, &wst, 0);
        close(ready_fd);
    }

    pthread_barrier_wait(&done_barrier);
    for (int i = 0; i < NCLIENTS; i++) {
        CHECK(cl[i].errors == 0 && cl[i].completed == ITERATIONS * 4,
              "client %d (priority %d, weight %d): %llu completions, every result correct%s%s", i,
              i % 4, i + 1, (unsigned long long)cl[i].completed, cl[i].errors ? ": " : "",
              cl[i].why);
    }

    /* the victim's session is gone, the eight are live with exact counts */
    {
        uint64_t deadline = fh_now_ms() + 5000;
        bool gone = false;
        char want[64];

        status = NULL;
        while (fh_now_ms() < deadline) {
            free(status);
            status = fh_mediator_status(&med);
            /* the victim may only appear as an ended session's row */
            const char *v = status ? strstr(status, "ft-victim") : NULL;
            const char *eol = v ? strchr(v, '\n') : NULL;
            bool ended = v && eol && memmem(v, (size_t)(eol - v), " ended ", 7) &&
                         !strstr(eol, "ft-victim");
            if (status && strstr(status, "sessions: 8 live") && (!v || ended)) {
                gone = true;
                break;
            }
            usleep(50 * 1000);
        }
        CHECK(status != NULL, "--status answers");
        CHECK(gone, "--status: 8 live sessions, the killed client's session freed");
        if (status) {
            printf("%s", status);
            CHECK(strstr(status, "9 opened, 1 closed") != NULL, "--status: 9 opened, 1 closed");
            CHECK(strstr(status, "backend: cpu") != NULL, "--status names the backend");
            CHECK(strstr(status, "queue_p99") && strstr(status, "exec_p50") &&
                  strstr(status, "bytes_in"), "--status has the table columns");
            for (int i = 0; i < NCLIENTS; i++) {
                char *row;
                unsigned long long req = 0, ok = 0, err = 99;
                unsigned sess, vm;
                char name[32];
                snprintf(want, sizeof(want), "ft-client-%d ", i);
                row = strstr(status, want);
                if (row) {
                    while (row > status && row[-1] != '\n') {
                        row--;
                    }
                    if (sscanf(row, "%u %u %31s %*u %*u %*u %llu %llu %llu", &sess, &vm, name,
                               &req, &ok, &err) != 6) {
                        row = NULL;
                    }
                }
                CHECK(row && vm == 100u + (unsigned)i && req == ITERATIONS * 4 &&
                      ok == ITERATIONS * 4 && err == 0,
                      "--status row of client %d: %llu requests, %llu ok, %llu errors", i, req, ok,
                      err);
            }
        }
        free(status);
    }
    pthread_barrier_wait(&release_barrier);
    for (int i = 0; i < NCLIENTS; i++) {
        pthread_join(th[i], NULL);
    }

    /* all closed: no session left, no shared memory still mapped */
    {
        uint64_t deadline = fh_now_ms() + 5000;
        int maps = -1;
        bool empty = false;
        while (fh_now_ms() < deadline) {
            status = fh_mediator_status(&med);
            empty = status && strstr(status, "sessions: 0 live");
            free(status);
            maps = count_memfd_maps(med.pid);
            if (empty && maps == 0) {
                break;
            }
            usleep(50 * 1000);
        }
        CHECK(empty, "--status: 0 live sessions after every client closed");
        CHECK(maps == 0, "no guest memory left mapped in the mediator (%d memfd maps)", maps);
    }

    r = fh_mediator_stop(&med, false);
    CHECK(r == 0, "mediator exits 0 on SIGTERM (status 0x%x)", r);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 80);
    }
    fh_mediator_cleanup(&med);
    return fh_summary();
}
