/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-bench: host-side benchmarks of the mediator through libvgpu's sim
 * transport (memfd + Unix socket, exactly the QEMU device's path minus the
 * VM). Prints "metric<TAB>value<TAB>unit" lines for bench/run.sh.
 *
 *   vgpu-bench lat  --socket P [--rounds N]
 *       NOP round trip at queue depth 1: p50, p99, mean.
 *   vgpu-bench tput --socket P --clients N --depth D [--seconds S]
 *       NOP throughput of N client processes (one session each), each
 *       keeping D requests in flight.
 *   vgpu-bench vadd --socket P --log2 K [--seconds S]
 *       vector_add of 2^K floats through the mediator (depth 1, median of
 *       the round trips) against the same loop run in this process over the
 *       same shared-memory buffers (median), alternating the two, and the
 *       ratio of the medians.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vgpu/abi.h"
#include "vgpu/libvgpu.h"
#include "bench.h"

#define WAIT_MS 10000

struct opts {
    const char *socket;
    long rounds;
    int clients, depth, log2n;
    double seconds;
    const char *doorbell;   /* "eventfd" (default) or "socket" (KICK messages) */
    const char *key;        /* lat: the metrics' name prefix instead of nop/nop_kick */
};

/*
 * The vm id is the process id: unique among live clients, and a new process
 * never collides with a session the mediator is still tearing down.
 */
static int open_sim(const struct opts *o, uint64_t shm_size, struct vgpu_dev **dev)
{
    uint32_t vm_id = (uint32_t)getpid();
    struct vgpu_open_opts vo;
    char name[32];
    int r;

    memset(&vo, 0, sizeof(vo));
    snprintf(name, sizeof(name), "bench-%u", vm_id);
    vo.transport = "sim";
    vo.socket_path = o->socket;
    vo.vm_id = vm_id;
    vo.vm_name = name;
    vo.shm_size = shm_size;
    vo.link_timeout_ms = 5000;
    vo.doorbell = o->doorbell;
    r = vgpu_open(&vo, dev);
    if (r < 0) {
        fprintf(stderr, "vgpu-bench: open %s: %s %s\n", o->socket ? o->socket : "(default)",
                vgpu_strerror(r), vgpu_open_detail());
    }
    return r;
}

static void nop_sqe(struct vgpu_sqe *s, uint32_t tag)
{
    memset(s, 0, sizeof(*s));
    s->opcode = VGPU_OP_NOP;
    s->tag = tag;
    s->user_data = tag;
}

/* ---------------------------------------------------------------------- */

static int bench_lat(const struct opts *o)
{
    struct vgpu_dev *dev;
    uint64_t *t, sum = 0;
    long i;
    int r;

    t = calloc((size_t)o->rounds, sizeof(*t));
    if (!t) {
        return 1;
    }
    r = open_sim(o, 0, &dev);
    if (r < 0) {
        free(t);
        return 1;
    }
    for (i = -1000; i < o->rounds; i++) {   /* 1000 warm-up rounds */
        struct vgpu_sqe s;
        struct vgpu_cqe c;
        uint64_t t0 = bench_now_ns();

        nop_sqe(&s, (uint32_t)i);
        r = vgpu_call(dev, &s, &c, WAIT_MS);
        if (r < 0 || c.status != VGPU_S_OK) {
            fprintf(stderr, "vgpu-bench: nop: %s\n",
                    r < 0 ? vgpu_strerror(r) : vgpu_status_name(c.status));
            break;
        }
        if (i >= 0) {
            t[i] = bench_now_ns() - t0;
            sum += t[i];
        }
    }
    vgpu_close(dev);
    if (i < o->rounds) {
        free(t);
        return 1;
    }
    {
        /* nop_*: the default doorbell (eventfd); nop_kick_*: KICK messages */
        const char *p = o->key ? o->key
                               : o->doorbell && !strcmp(o->doorbell, "socket") ? "nop_kick" : "nop";
        char k[32];

        snprintf(k, sizeof(k), "%s_p50", p);
        bench_metric(k, (double)bench_quantile(t, (size_t)o->rounds, 0.5, 0) / 1e3, "us");
        snprintf(k, sizeof(k), "%s_p99", p);
        bench_metric(k, (double)bench_quantile(t, (size_t)o->rounds, 0.99, 1) / 1e3, "us");
        snprintf(k, sizeof(k), "%s_mean", p);
        bench_metric(k, (double)sum / (double)o->rounds / 1e3, "us");
    }
    free(t);
    return 0;
}

/* ---------------------------------------------------------------------- */

/* One client: depth NOPs in flight for `seconds` after `go` closes. */
static int tput_child(const struct opts *o, int id, int ready_fd, int go_fd, int res_fd)
{
    struct vgpu_dev *dev;
    uint64_t done = 0, t0, end;
    uint32_t inflight = 0, tag = 0;
    double rate;
    char b = 1;
    int r;

    if (open_sim(o, 0, &dev) < 0) {
        return 1;
    }
    if (write(ready_fd, &b, 1) != 1 || read(go_fd, &b, 1) != 0) {
        vgpu_close(dev);
        return 1;
    }
    t0 = bench_now_ns();
    end = t0 + (uint64_t)(o->seconds * 1e9);
    for (;;) {
        struct vgpu_sqe s;
        struct vgpu_cqe c;
        bool more = bench_now_ns() < end;
        int k = 0;

        while (more && inflight < (uint32_t)o->depth) {
            nop_sqe(&s, tag++);
            r = vgpu_submit(dev, &s);
            if (r == -EAGAIN) {
                break;
            }
            if (r < 0) {
                goto fail;
            }
            inflight++;
            k++;
        }
        if (k && (r = vgpu_kick(dev)) < 0) {
            goto fail;
        }
        if (!inflight) {
            break;
        }
        r = vgpu_wait(dev, &c, WAIT_MS);
        if (r < 0) {
            goto fail;
        }
        if (c.status != VGPU_S_OK) {
            fprintf(stderr, "vgpu-bench: client %d: status %s\n", id,
                    vgpu_status_name(c.status));
            vgpu_close(dev);
            return 1;
        }
        inflight--;
        done++;
    }
    rate = (double)done / ((double)(bench_now_ns() - t0) / 1e9);
    vgpu_close(dev);
    return write(res_fd, &rate, sizeof(rate)) == sizeof(rate) ? 0 : 1;
fail:
    fprintf(stderr, "vgpu-bench: client %d: %s\n", id, vgpu_strerror(r));
    vgpu_close(dev);
    return 1;
}

static int bench_tput(const struct opts *o)
{
    int ready[2], go[2], res[2], i, started = 0, failed = 0;
    pid_t pids[256];
    double total = 0, rate;
    char name[64];

    if (pipe(ready) < 0 || pipe(go) < 0 || pipe(res) < 0) {
        perror("pipe");
        return 1;
    }
    for (i = 0; i < o->clients; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("fork");
            break;
        }
        if (pids[i] == 0) {
            close(ready[0]);
            close(go[1]);
            close(res[0]);
            _exit(tput_child(o, i, ready[1], go[0], res[1]));
        }
        started++;
    }
    close(ready[1]);
    close(go[0]);
    close(res[1]);
    /* Everyone connected before the clock starts; bounded wait. */
    for (i = 0; i < started; i++) {
        struct pollfd p = { .fd = ready[0], .events = POLLIN };
        char b;

        if (poll(&p, 1, 10000) != 1 || read(ready[0], &b, 1) != 1) {
            fprintf(stderr, "vgpu-bench: clients did not connect\n");
            failed = 1;
            break;
        }
    }
    if (failed || started < o->clients) {
        for (i = 0; i < started; i++) {
            kill(pids[i], SIGKILL);
        }
        failed = 1;
    }
    close(go[1]);   /* go */
    for (i = 0; !failed && i < started; i++) {
        if (read(res[0], &rate, sizeof(rate)) != sizeof(rate)) {
            failed = 1;
            break;
        }
        total += rate;
    }
    for (i = 0; i < started; i++) {
        int st;

        waitpid(pids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            failed = 1;
        }
    }
    close(ready[0]);
    close(res[0]);
    if (failed) {
        return 1;
    }
    snprintf(name, sizeof(name), "nop_tput_c%d_d%d", o->clients, o->depth);
    bench_metric(name, total, "requests/s");
    return 0;
}

/* ---------------------------------------------------------------------- */

/* The in-process reference; noinline so it is timed as a real call. */
__attribute__((noinline)) static void vadd_local(const float *a, const float *b, float *out,
                                                 uint64_t n)
{
    uint64_t i;

    for (i = 0; i < n; i++) {
        out[i] = a[i] + b[i];
    }
}

static int bench_vadd(const struct opts *o)
{
    const uint64_t n = 1ull << o->log2n;
    uint64_t bytes = 3 * n * sizeof(float), shm = 64ull << 20, ao, bo, oo, i, reps_max;
    uint64_t *tm = NULL, *tl = NULL, *te = NULL, *tq = NULL, budget, t_start;
    struct vgpu_dev *dev;
    float *a, *b, *out;
    size_t nm = 0, nl = 0;
    char name[64];
    int r, rc = 1;

    while (shm < bytes + VGPU_SHM_DATA_OFFSET + (1u << 20)) {
        shm *= 2;
    }
    if (open_sim(o, shm, &dev) < 0) {
        return 1;
    }
    if (vgpu_alloc(dev, n * 4, 64, &ao) < 0 || vgpu_alloc(dev, n * 4, 64, &bo) < 0 ||
        vgpu_alloc(dev, n * 4, 64, &oo) < 0) {
        fprintf(stderr, "vgpu-bench: vadd: shared memory too small\n");
        goto out;
    }
    a = vgpu_ptr(dev, ao);
    b = vgpu_ptr(dev, bo);
    out = vgpu_ptr(dev, oo);
    for (i = 0; i < n; i++) {
        a[i] = (float)(i % 1021) * 0.25f;
        b[i] = (float)(i % 509) * 0.5f;
    }
    memset(out, 0, n * 4);
    reps_max = 100000;
    tm = calloc(reps_max, sizeof(*tm));
    tl = calloc(reps_max, sizeof(*tl));
    te = calloc(reps_max, sizeof(*te));
    tq = calloc(reps_max, sizeof(*tq));
    if (!tm || !tl || !te || !tq) {
        goto out;
    }
    /*
     * Alternate one request through the mediator with one in-process pass,
     * so both see the same machine load (the host is shared); at least 5
     * pairs, one warm-up pair, then until the time budget is spent.
     */
    budget = (uint64_t)(o->seconds * 1e9);
    t_start = bench_now_ns();
    for (i = 0; i < reps_max; i++) {
        struct vgpu_sqe s;
        struct vgpu_cqe c;
        uint64_t t0, t1, t2;

        memset(&s, 0, sizeof(s));
        s.opcode = VGPU_OP_VECTOR_ADD;
        s.tag = (uint32_t)i;
        s.args.vector_add.a_off = ao;
        s.args.vector_add.b_off = bo;
        s.args.vector_add.out_off = oo;
        s.args.vector_add.n = n;
        t0 = bench_now_ns();
        r = vgpu_call(dev, &s, &c, WAIT_MS);
        t1 = bench_now_ns();
        if (r < 0 || c.status != VGPU_S_OK) {
            fprintf(stderr, "vgpu-bench: vector_add: %s\n",
                    r < 0 ? vgpu_strerror(r) : vgpu_status_name(c.status));
            goto out;
        }
        if (i == 0) {
            uint64_t j;

            for (j = 0; j < n; j++) {
                if (out[j] != a[j] + b[j]) {
                    fprintf(stderr, "vgpu-bench: vector_add: out[%" PRIu64 "] wrong\n", j);
                    goto out;
                }
            }
        }
        if (i > 0) {
            te[nm] = (uint64_t)c.exec_us * 1000;
            tq[nm] = (uint64_t)c.queue_us * 1000;
            tm[nm++] = t1 - t0;
        }
        t1 = bench_now_ns();
        vadd_local(a, b, out, n);
        __asm__ __volatile__("" ::: "memory");
        t2 = bench_now_ns();
        if (i > 0) {
            tl[nl++] = t2 - t1;
        }
        if (nm >= 5 && t2 - t_start > 2 * budget) {
            break;
        }
    }
    {
        double med_m = (double)bench_quantile(tm, nm, 0.5, 0) / 1e3;
        double med_l = (double)bench_quantile(tl, nl, 0.5, 0) / 1e3;

        snprintf(name, sizeof(name), "vadd_2^%d_mediator", o->log2n);
        bench_metric(name, med_m, "us");
        snprintf(name, sizeof(name), "vadd_2^%d_inprocess", o->log2n);
        bench_metric(name, med_l, "us");
        snprintf(name, sizeof(name), "vadd_2^%d_ratio", o->log2n);
        bench_metric(name, med_l > 0 ? med_m / med_l : 0, "x");
        /* Where the mediator's time goes, as its completions report it. */
        snprintf(name, sizeof(name), "vadd_2^%d_exec", o->log2n);
        bench_metric(name, (double)bench_quantile(te, nm, 0.5, 0) / 1e3, "us");
        snprintf(name, sizeof(name), "vadd_2^%d_queue", o->log2n);
        bench_metric(name, (double)bench_quantile(tq, nm, 0.5, 0) / 1e3, "us");
    }
    rc = 0;
out:
    free(tm);
    free(tl);
    free(te);
    free(tq);
    vgpu_close(dev);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "socket", required_argument, NULL, 'S' },
        { "rounds", required_argument, NULL, 'r' },
        { "clients", required_argument, NULL, 'c' },
        { "depth", required_argument, NULL, 'd' },
        { "seconds", required_argument, NULL, 's' },
        { "log2", required_argument, NULL, 'l' },
        { "doorbell", required_argument, NULL, 'b' },
        { "key", required_argument, NULL, 'k' },
        { 0 },
    };
    struct opts o = { .rounds = 100000, .clients = 1, .depth = 1, .seconds = 1, .log2n = 20 };
    const char *cmd;
    int opt;

    if (argc < 2) {
        goto usage;
    }
    cmd = argv[1];
    optind = 2;
    while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (opt) {
        case 'S':
            o.socket = optarg;
            break;
        case 'r':
            o.rounds = strtol(optarg, NULL, 0);
            break;
        case 'c':
            o.clients = atoi(optarg);
            break;
        case 'd':
            o.depth = atoi(optarg);
            break;
        case 's':
            o.seconds = strtod(optarg, NULL);
            break;
        case 'l':
            o.log2n = atoi(optarg);
            break;
        case 'k':
            if (strlen(optarg) > 20) {
                goto usage;
            }
            o.key = optarg;
            break;
        case 'b':
            if (strcmp(optarg, "eventfd") && strcmp(optarg, "socket")) {
                goto usage;
            }
            o.doorbell = optarg;
            break;
        default:
            goto usage;
        }
    }
    if (o.rounds <= 0 || o.rounds > 10000000 || o.clients < 1 || o.clients > 256 ||
        o.depth < 1 || o.depth > (int)VGPU_SQ_ENTRIES || !(o.seconds > 0) ||
        o.seconds > 600 || o.log2n < 0 || o.log2n > 26) {
        goto usage;
    }
    if (strcmp(cmd, "lat") == 0) {
        return bench_lat(&o);
    }
    if (strcmp(cmd, "tput") == 0) {
        return bench_tput(&o);
    }
    if (strcmp(cmd, "vadd") == 0) {
        return bench_vadd(&o);
    }
usage:
    fprintf(stderr, "usage: vgpu-bench lat|tput|vadd --socket PATH [--rounds N] "
            "[--clients N] [--depth D] [--seconds S] [--log2 K] [--doorbell eventfd|socket] [--key PREFIX]\n");
    return 2;
}
