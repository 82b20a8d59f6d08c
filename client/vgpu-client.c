/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-client: the guest-side (or, with --transport sim, host-side) client
 * of a vgpu device. Commands: info, nop, vector-add, selftest, bench,
 * hostile, and (client/cu.c) cu-info, run-ptx. See usage() for options and
 * exit codes.
 *
 * Every result is checked against a reference computed here, from input
 * patterns chosen so that float32 arithmetic is exact (small multiples of
 * 1/4): the CPU and the GPU, fused multiply-add or not, must then agree bit
 * for bit.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "vgpu/abi.h"
#include "vgpu/libvgpu.h"
#include "vgpu/ring.h"
#include "client.h"

static void usage(FILE *f)
{
    fprintf(f,
"usage: vgpu-client [OPTIONS] COMMAND [COMMAND OPTIONS]\n"
"\n"
"Options:\n"
"  --transport dev|pci|ivshmem|sim\n"
"                        dev: a queue of /dev/vgpuN (guest with vgpu.ko, any\n"
"                        member of its group); pci: the vgpu PCI device\n"
"                        through sysfs (guest, root); ivshmem: QEMU's stock\n"
"                        ivshmem-doorbell device served by the mediator\n"
"                        (guest, root); sim: connect to the mediator socket\n"
"                        with a memfd (host). Default: dev if a /dev/vgpuN\n"
"                        exists, else pci if a device exists, else ivshmem if\n"
"                        one is served by the mediator, else sim\n"
"  --socket PATH         sim: mediator socket (default $VGPU_SOCKET or\n"
"                        " VGPU_DEFAULT_SOCKET ")\n"
"  --vm-id N --priority P --weight W --name S\n"
"                        sim: identity sent in HELLO (pci: set by the operator)\n"
"  --shm-size MIB        sim: shared memory size (default 64)\n"
"  --doorbell eventfd|socket\n"
"                        sim: ring the mediator through an eventfd handed over\n"
"                        with HELLO, or with KICK messages on the socket\n"
"                        (default $VGPU_DOORBELL, else eventfd)\n"
"  --reconnect-ms N      sim: after the mediator closes the link, connect again\n"
"                        with the same memory every N ms, as QEMU's chardev\n"
"                        reconnect does (default $VGPU_RECONNECT_MS, else never)\n"
"  --pci ADDR            pci, ivshmem: device address, e.g. 0000:00:04.0\n"
"  --irq                 pci: wait for interrupts via /dev/uioN (uio_pci_generic)\n"
"  --timeout-ms N        link and per-request timeout (default 5000)\n"
"  --spin-us N           cap of the adaptive spin before sleeping for a\n"
"                        completion (default $VGPU_SPIN_US, else 1000 on >= 8\n"
"                        CPUs, 20 below; 0: never spin; max 100000)\n"
"  -h, --help\n"
"\n"
"Commands:\n"
"  info                  device, link, identity, backend and GPU\n"
"  nop [-c COUNT]        NOP round trips, prints their times\n"
"  vector-add -n N       out = a + b on N floats, every element checked\n"
"  selftest              every operation, every element checked\n"
"  bench [--seconds S] [--depth D] [--json FILE]\n"
"                        NOP and vector_add 2^10/2^16/2^20 latency and rate\n"
"  hostile [--seconds S] misbehave (bad ranges, unknown ops, pads, rewrites\n"
"                        after submission, corrupt indexes, doorbell storm) and\n"
"                        check that the device stays correct and responsive\n"
"  cu-info [--attrs]     the GPU of the VM's CUDA context (cuda backend)\n"
"  run-ptx FILE --kernel NAME [--grid X[,Y,Z]] [--block X[,Y,Z]] [--shared N]\n"
"          [--buf NAME:BYTES[:INIT]]... [--arg TYPE:VALUE | --arg ptr:NAME[+OFF]]...\n"
"          [--out NAME[:TYPE[:COUNT]]]... [--expect NAME:INIT]... [--save NAME:PATH]...\n"
"          [--repeat N] [--tol REL]\n"
"                        load a PTX/cubin/fatbin file, make device buffers, launch\n"
"                        NAME once (N times), then print/check/save buffers.\n"
"                        INIT: zero | fill:TYPE:V | iota:TYPE[:START[:STEP]] |\n"
"                        file:PATH. TYPE: i8 u8 i16 u16 i32 u32 i64 u64 f32 f64.\n"
"                        --arg values are the kernel's parameters in order\n"
"\n"
"Exit codes: 0 success; 1 a check failed; 2 usage; 3 no vgpu device;\n"
"4 ABI/protocol version mismatch; 5 mediator not connected (link down or not\n"
"running); 6 timeout; 7 other error; 8 a request was interrupted by a mediator\n"
"restart while it ran in place (its outputs may be partly written).\n");
}

/* The exit code for a request that completed with a failure status. */
static int status_exit(int32_t status)
{
    switch (status) {
    case VGPU_S_INTERRUPTED:
        return EXIT_INTERRUPTED;
    case VGPU_S_TIMEOUT:
        return EXIT_TIMEOUT;
    default:
        return EXIT_FAILED;
    }
}

double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int exit_code_for(int err)
{
    switch (err) {
    case -ENODEV:
        return EXIT_NODEV;
    case -EPROTONOSUPPORT:
        return EXIT_VERSION;
    case -ENOLINK:
    case -ECONNREFUSED:
    case -ENOENT:
        return EXIT_LINK;
    case -ETIMEDOUT:
        return EXIT_TIMEOUT;
    default:
        return EXIT_ERROR;
    }
}

/* Prints why a request-level call failed; returns the exit code. */
int report_err(struct ctx *c, const char *what, int err)
{
    if (err == -ENOLINK) {
        fprintf(stderr, "vgpu-client: %s: mediator not connected (link down)\n", what);
    } else if (err == -ETIMEDOUT) {
        fprintf(stderr, "vgpu-client: %s: timeout: no completion within %d ms\n",
                what, c->timeout_ms);
    } else {
        fprintf(stderr, "vgpu-client: %s: %s\n", what, vgpu_strerror(err));
    }
    return exit_code_for(err);
}

static int open_dev(struct ctx *c)
{
    const char *detail;
    int r;

    c->opts.link_timeout_ms = c->timeout_ms;
    r = vgpu_open(&c->opts, &c->dev);
    if (r == 0) {
        return vgpu_get_info(c->dev, &c->info) < 0 ? EXIT_ERROR : EXIT_OK;
    }
    detail = vgpu_open_detail();
    switch (r) {
    case -ENODEV:
        fprintf(stderr, "vgpu-client: no vgpu device found (PCI %04x:%04x, class %02x)%s%s\n",
                VGPU_PCI_VENDOR_ID, VGPU_PCI_DEVICE_ID, VGPU_PCI_CLASS_CODE,
                *detail ? ": " : "", detail);
        break;
    case -EPROTONOSUPPORT:
        fprintf(stderr, "vgpu-client: wrong version: %s\n",
                *detail ? detail : vgpu_strerror(r));
        break;
    case -ENOLINK:
        fprintf(stderr, "vgpu-client: mediator not connected (link down) after %d ms\n",
                c->timeout_ms);
        break;
    case -ENOENT:
    case -ECONNREFUSED:
        fprintf(stderr, "vgpu-client: mediator not running (%s)\n",
                *detail ? detail : vgpu_strerror(r));
        break;
    case -EINVAL:
        fprintf(stderr, "vgpu-client: bad option: %s\n", *detail ? detail : vgpu_strerror(r));
        return EXIT_USAGE;
    default:
        fprintf(stderr, "vgpu-client: cannot open the vgpu device: %s%s%s\n",
                vgpu_strerror(r), *detail ? ": " : "", detail);
        break;
    }
    return exit_code_for(r);
}

/* ---------------------------------------------------------------------- */
/* Requests and reference data                                            */

void sqe_init(struct ctx *c, struct vgpu_sqe *s, uint16_t op)
{
    memset(s, 0, sizeof(*s));
    s->opcode = op;
    s->tag = ++c->next_tag;
    s->user_data = 0x5647505500000000ull | s->tag;
}

/* Exact in float32: multiples of 1/4 below 2^10. */

static int do_call(struct ctx *c, struct vgpu_sqe *s, struct vgpu_cqe *cqe)
{
    int r = vgpu_call(c->dev, s, cqe, c->timeout_ms);

    if (r < 0) {
        return report_err(c, vgpu_op_name(s->opcode), r);
    }
    return EXIT_OK;
}

int vadd_prepare(struct ctx *c, uint64_t n, struct vadd_buf *v)
{
    float *a, *b;
    uint64_t i;

    if (n == 0 || n > (c->info.data_size / 3) / sizeof(float)) {
        fprintf(stderr, "vgpu-client: vector-add: n=%" PRIu64 " does not fit the %" PRIu64
                " bytes of shared memory (at most %" PRIu64 ")\n",
                n, c->info.data_size, c->info.data_size / 3 / sizeof(float));
        return EXIT_USAGE;
    }
    vgpu_free_all(c->dev);
    if (vgpu_alloc(c->dev, n * 4, 64, &v->a) < 0 || vgpu_alloc(c->dev, n * 4, 64, &v->b) < 0 ||
        vgpu_alloc(c->dev, n * 4, 64, &v->out) < 0) {
        fprintf(stderr, "vgpu-client: vector-add: shared memory exhausted\n");
        return EXIT_ERROR;
    }
    v->n = n;
    a = vgpu_ptr(c->dev, v->a);
    b = vgpu_ptr(c->dev, v->b);
    for (i = 0; i < n; i++) {
        a[i] = pat_a(i);
        b[i] = pat_b(i);
    }
    memset(vgpu_ptr(c->dev, v->out), 0xff, n * 4); /* NaNs: a skipped write shows */
    return EXIT_OK;
}

void vadd_sqe(struct ctx *c, const struct vadd_buf *v, struct vgpu_sqe *s)
{
    sqe_init(c, s, VGPU_OP_VECTOR_ADD);
    s->args.vector_add.a_off = v->a;
    s->args.vector_add.b_off = v->b;
    s->args.vector_add.out_off = v->out;
    s->args.vector_add.n = v->n;
}

/* Number of wrong elements; the first is described on stderr. */
uint64_t vadd_check(struct ctx *c, const struct vadd_buf *v, bool quiet)
{
    const float *out = vgpu_ptr(c->dev, v->out);
    uint64_t i, bad = 0;

    for (i = 0; i < v->n; i++) {
        float ref = pat_a(i) + pat_b(i);

        if (memcmp(&out[i], &ref, sizeof(ref)) != 0) {
            if (!bad && !quiet) {
                fprintf(stderr, "vgpu-client: vector_add: out[%" PRIu64 "] = %g, expected %g\n",
                        i, (double)out[i], (double)ref);
            }
            bad++;
        }
    }
    return bad;
}

/* One vector_add of n elements, checked. */
int run_vector_add(struct ctx *c, uint64_t n, bool verbose)
{
    struct vadd_buf v;
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    uint64_t bad;
    double t0, t1;
    int r;

    r = vadd_prepare(c, n, &v);
    if (r) {
        return r;
    }
    vadd_sqe(c, &v, &s);
    t0 = now_us();
    r = do_call(c, &s, &cqe);
    t1 = now_us();
    if (r) {
        return r;
    }
    if (cqe.status != VGPU_S_OK) {
        fprintf(stderr, "vgpu-client: vector_add n=%" PRIu64 ": status %s\n", n,
                vgpu_status_name(cqe.status));
        return status_exit(cqe.status);
    }
    bad = vadd_check(c, &v, false);
    if (bad) {
        fprintf(stderr, "vgpu-client: vector_add n=%" PRIu64 ": %" PRIu64 " wrong elements\n",
                n, bad);
        return EXIT_FAILED;
    }
    if (verbose) {
        printf("vector_add n=%" PRIu64 ": ok, round trip %.1f us (exec %u us, queue %u us)\n",
               n, t1 - t0, cqe.exec_us, cqe.queue_us);
    }
    return EXIT_OK;
}

/* ---------------------------------------------------------------------- */
/* info, nop, vector-add                                                  */

const char *backend_name(uint32_t b)
{
    switch (b) {
    case VGPU_BACKEND_CPU:
        return "cpu";
    case VGPU_BACKEND_CUDA:
        return "cuda";
    default:
        return "none";
    }
}

static int gpu_info(struct ctx *c, struct vgpu_gpu_info *gi, struct vgpu_cqe *cqe)
{
    struct vgpu_sqe s;
    uint64_t off;
    int r;

    vgpu_free_all(c->dev);
    if (vgpu_alloc(c->dev, sizeof(*gi), 8, &off) < 0) {
        return EXIT_ERROR;
    }
    memset(vgpu_ptr(c->dev, off), 0, sizeof(*gi));
    sqe_init(c, &s, VGPU_OP_GPU_INFO);
    s.args.gpu_info.out_off = off;
    s.args.gpu_info.out_len = sizeof(*gi);
    r = do_call(c, &s, cqe);
    if (r) {
        return r;
    }
    memcpy(gi, vgpu_ptr(c->dev, off), sizeof(*gi));
    gi->name[sizeof(gi->name) - 1] = '\0';
    return EXIT_OK;
}

static int cmd_info(struct ctx *c, int argc, char **argv)
{
    struct vgpu_dev_info *i = &c->info;
    struct vgpu_gpu_info gi;
    struct vgpu_cqe cqe;
    int r;

    (void)argv;
    if (argc > 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    printf("transport:    %s (%s)\n", i->transport, i->location);
    printf("abi:          %u.%u (library %u.%u)\n", i->abi_version >> 16,
           i->abi_version & 0xffff, VGPU_ABI_VERSION_MAJOR, VGPU_ABI_VERSION_MINOR);
    printf("link:         %s%s\n", i->link_status & VGPU_LINK_UP ? "up" : "down",
           i->link_status & VGPU_LINK_GPU ? ", gpu" : "");
    printf("vm:           id %u, name \"%s\", priority %u, weight %u\n", i->vm_id,
           i->vm_name, i->priority, i->weight);
    printf("session:      %u, max in flight %u\n", i->session_id, i->max_inflight);
    printf("shared mem:   %" PRIu64 " MiB, data area %" PRIu64 " bytes at %#" PRIx64 "\n",
           i->shm_size >> 20, i->data_size, i->data_offset);
    printf("queues:       %u, this client on queue %u\n", i->queues, i->queue);
    printf("backend:      %s%s%s\n", backend_name(i->backend),
           i->gpu_name[0] ? ", " : "", i->gpu_name);
    r = gpu_info(c, &gi, &cqe);
    if (r) {
        return r;
    }
    if (cqe.status != VGPU_S_OK) {
        printf("gpu_info:     failed: %s\n", vgpu_status_name(cqe.status));
        return EXIT_FAILED;
    }
    printf("gpu:          %s (%s), %u SMs, cc %u.%u, memory %" PRIu64 " MiB (%" PRIu64
           " MiB free)\n", gi.name, backend_name(gi.backend), gi.sm_count, gi.cc_major,
           gi.cc_minor, gi.total_mem >> 20, gi.free_mem >> 20);
    if (gi.backend == VGPU_BACKEND_CUDA) {
        printf("cuda:         driver %u.%u, runtime %u.%u, clock %u MHz\n",
               gi.driver_version / 1000, gi.driver_version % 1000 / 10,
               gi.runtime_version / 1000, gi.runtime_version % 1000 / 10,
               gi.multiprocessor_clock_khz / 1000);
    }
    return EXIT_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double percentile(const double *sorted, size_t n, double p)
{
    size_t i;

    if (n == 0) {
        return 0;
    }
    i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static int cmd_nop(struct ctx *c, int argc, char **argv)
{
    static const struct option lo[] = { { "count", required_argument, NULL, 'c' }, { 0 } };
    long count = 1, i;
    double *t, sum = 0;
    int opt, r = EXIT_OK;

    while ((opt = getopt_long(argc, argv, "c:", lo, NULL)) != -1) {
        if (opt != 'c' || (count = strtol(optarg, NULL, 0)) <= 0 || count > 10000000) {
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    t = calloc((size_t)count, sizeof(*t));
    if (!t) {
        return EXIT_ERROR;
    }
    for (i = 0; i < count; i++) {
        struct vgpu_sqe s;
        struct vgpu_cqe cqe;
        double t0;

        sqe_init(c, &s, VGPU_OP_NOP);
        t0 = now_us();
        r = do_call(c, &s, &cqe);
        if (r) {
            goto out;
        }
        t[i] = now_us() - t0;
        sum += t[i];
        if (cqe.status != VGPU_S_OK) {
            fprintf(stderr, "vgpu-client: nop: status %s\n", vgpu_status_name(cqe.status));
            r = status_exit(cqe.status);
            goto out;
        }
        if (count <= 10) {
            printf("nop %ld: round trip %.1f us (exec %u us, queue %u us)\n", i + 1, t[i],
                   cqe.exec_us, cqe.queue_us);
        }
    }
    qsort(t, (size_t)count, sizeof(*t), cmp_double);
    printf("nop: %ld round trips, min %.1f us, p50 %.1f us, p99 %.1f us, mean %.1f us, "
           "max %.1f us\n", count, t[0], percentile(t, (size_t)count, 0.5),
           percentile(t, (size_t)count, 0.99), sum / (double)count, t[count - 1]);
out:
    free(t);
    return r;
}

static int cmd_vector_add(struct ctx *c, int argc, char **argv)
{
    long long n = -1;
    int opt;

    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt != 'n') {
            usage(stderr);
            return EXIT_USAGE;
        }
        n = strtoll(optarg, NULL, 0);
    }
    if (n <= 0 || (unsigned long long)n > VGPU_MAX_ELEMS) {
        fprintf(stderr, "vgpu-client: vector-add needs -n N with 1 <= N <= %llu\n",
                VGPU_MAX_ELEMS);
        return EXIT_USAGE;
    }
    return run_vector_add(c, (uint64_t)n, true);
}

/* ---------------------------------------------------------------------- */
/* selftest                                                               */

struct tally {
    int passed, failed;
};

static void result(struct tally *t, bool ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void result(struct tally *t, bool ok, const char *name, const char *fmt, ...)
{
    va_list ap;

    printf("%-28s %s", name, ok ? "PASS" : "FAIL");
    if (fmt) {
        printf("  ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
    }
    printf("\n");
    fflush(stdout);
    if (ok) {
        t->passed++;
    } else {
        t->failed++;
    }
}

/* Runs one request; false (with the reason in *why) if it did not complete. */
static bool st_call(struct ctx *c, struct vgpu_sqe *s, struct vgpu_cqe *cqe, char *why,
                    size_t len)
{
    int r = vgpu_call(c->dev, s, cqe, c->timeout_ms);

    if (r < 0) {
        struct vgpu_cqe late;

        snprintf(why, len, "%s", vgpu_strerror(r));
        /* Let a late completion arrive, so one failure does not leave the
         * next tests -EBUSY. */
        while (vgpu_wait(c->dev, &late, c->timeout_ms) == 0) {
        }
        return false;
    }
    if (cqe->status != VGPU_S_OK) {
        snprintf(why, len, "status %s", vgpu_status_name(cqe->status));
        return false;
    }
    return true;
}

static void st_nop(struct ctx *c, struct tally *t)
{
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    char why[128];
    double t0 = now_us();

    sqe_init(c, &s, VGPU_OP_NOP);
    if (!st_call(c, &s, &cqe, why, sizeof(why))) {
        result(t, false, "nop", "%s", why);
        return;
    }
    result(t, cqe.result == 0, "nop", "round trip %.1f us", now_us() - t0);
}

static void st_gpu_info(struct ctx *c, struct tally *t)
{
    struct vgpu_gpu_info gi;
    struct vgpu_cqe cqe;
    bool ok;

    if (gpu_info(c, &gi, &cqe) != EXIT_OK) {
        result(t, false, "gpu_info", "request failed");
        return;
    }
    ok = cqe.status == VGPU_S_OK && gi.name[0] &&
         (gi.backend == VGPU_BACKEND_CPU || gi.backend == VGPU_BACKEND_CUDA) &&
         (!c->info.backend || gi.backend == c->info.backend);
    result(t, ok, "gpu_info", "%s: %s (%s)", vgpu_status_name(cqe.status), gi.name,
           backend_name(gi.backend));
}

static bool st_vector_add(struct ctx *c, struct tally *t, uint64_t n)
{
    char name[64], why[128];
    struct vadd_buf v;
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    uint64_t bad;
    double t0;

    snprintf(name, sizeof(name), "vector_add n=%" PRIu64, n);
    if (vadd_prepare(c, n, &v) != EXIT_OK) {
        result(t, false, name, "does not fit");
        return false;
    }
    vadd_sqe(c, &v, &s);
    t0 = now_us();
    if (!st_call(c, &s, &cqe, why, sizeof(why))) {
        result(t, false, name, "%s", why);
        return false;
    }
    bad = vadd_check(c, &v, false);
    result(t, bad == 0, name, "%" PRIu64 " wrong, %.1f us", bad, now_us() - t0);
    return bad == 0;
}

static void st_saxpy(struct ctx *c, struct tally *t, uint64_t n)
{
    const float alpha = 2.5f;
    uint64_t xo, yo, i, bad = 0;
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    char why[128];
    float *x, *y;

    vgpu_free_all(c->dev);
    if (vgpu_alloc(c->dev, n * 4, 64, &xo) < 0 || vgpu_alloc(c->dev, n * 4, 64, &yo) < 0) {
        result(t, false, "saxpy", "does not fit");
        return;
    }
    x = vgpu_ptr(c->dev, xo);
    y = vgpu_ptr(c->dev, yo);
    for (i = 0; i < n; i++) {
        x[i] = pat_a(i);
        y[i] = pat_b(i);
    }
    sqe_init(c, &s, VGPU_OP_SAXPY);
    s.args.saxpy.x_off = xo;
    s.args.saxpy.y_off = yo;
    s.args.saxpy.n = n;
    s.args.saxpy.alpha = alpha;
    if (!st_call(c, &s, &cqe, why, sizeof(why))) {
        result(t, false, "saxpy", "%s", why);
        return;
    }
    for (i = 0; i < n; i++) {
        float ref = alpha * pat_a(i) + pat_b(i);

        if (memcmp(&y[i], &ref, 4) != 0) {
            bad++;
        }
    }
    result(t, bad == 0, "saxpy n=100000", "%" PRIu64 " wrong", bad);
}

static void st_reduce_sum(struct ctx *c, struct tally *t, uint64_t n)
{
    uint64_t off, i;
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    double ref = 0, got;
    char why[128];
    float *in;

    vgpu_free_all(c->dev);
    if (vgpu_alloc(c->dev, n * 4, 64, &off) < 0) {
        result(t, false, "reduce_sum", "does not fit");
        return;
    }
    in = vgpu_ptr(c->dev, off);
    for (i = 0; i < n; i++) {
        in[i] = pat_b(i);
        ref += (double)in[i];
    }
    sqe_init(c, &s, VGPU_OP_REDUCE_SUM);
    s.args.reduce_sum.in_off = off;
    s.args.reduce_sum.n = n;
    if (!st_call(c, &s, &cqe, why, sizeof(why))) {
        result(t, false, "reduce_sum", "%s", why);
        return;
    }
    memcpy(&got, &cqe.result, sizeof(got));
    /* Summation order differs between backends; the inputs keep partial sums
     * exact in double, float partials may round: allow 1e-6 relative. */
    result(t, fabs(got - ref) <= 1e-6 * fabs(ref) + 1e-3, "reduce_sum n=2^20",
           "got %.3f, expected %.3f", got, ref);
}

static void st_sgemm(struct ctx *c, struct tally *t, uint32_t dim)
{
    const float alpha = 1.0f, beta = 0.5f;
    uint64_t ao, bo, co, bad = 0;
    uint32_t i, j, k;
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    float *A, *B, *C, *ref;
    char why[128];

    vgpu_free_all(c->dev);
    if (vgpu_alloc(c->dev, (uint64_t)dim * dim * 4, 64, &ao) < 0 ||
        vgpu_alloc(c->dev, (uint64_t)dim * dim * 4, 64, &bo) < 0 ||
        vgpu_alloc(c->dev, (uint64_t)dim * dim * 4, 64, &co) < 0) {
        result(t, false, "sgemm", "does not fit");
        return;
    }
    ref = malloc((size_t)dim * dim * sizeof(float));
    if (!ref) {
        result(t, false, "sgemm", "out of memory");
        return;
    }
    A = vgpu_ptr(c->dev, ao);
    B = vgpu_ptr(c->dev, bo);
    C = vgpu_ptr(c->dev, co);
    /* Small integers: every product and sum is exact, in TF32 too. */
    for (i = 0; i < dim * dim; i++) {
        A[i] = (float)((int)(i * 5 % 9) - 4);
        B[i] = (float)((int)(i * 3 % 7) - 3);
        C[i] = (float)((int)(i % 11) - 5);
    }
    for (i = 0; i < dim; i++) {
        for (j = 0; j < dim; j++) {
            float acc = 0;

            for (k = 0; k < dim; k++) {
                acc += A[i * dim + k] * B[k * dim + j];
            }
            ref[i * dim + j] = alpha * acc + beta * C[i * dim + j];
        }
    }
    sqe_init(c, &s, VGPU_OP_SGEMM);
    s.args.sgemm.a_off = ao;
    s.args.sgemm.b_off = bo;
    s.args.sgemm.c_off = co;
    s.args.sgemm.m = s.args.sgemm.n = s.args.sgemm.k = dim;
    s.args.sgemm.alpha = alpha;
    s.args.sgemm.beta = beta;
    if (!st_call(c, &s, &cqe, why, sizeof(why))) {
        result(t, false, "sgemm 64x64", "%s", why);
        free(ref);
        return;
    }
    for (i = 0; i < dim * dim; i++) {
        if (fabsf(C[i] - ref[i]) > 1e-3f) {
            bad++;
        }
    }
    free(ref);
    result(t, bad == 0, "sgemm 64x64", "%" PRIu64 " wrong", bad);
}

static void st_memcpy(struct ctx *c, struct tally *t, uint64_t len)
{
    uint64_t so, dof, i;
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    uint8_t *src, *dst;
    char why[128];
    bool ok;

    vgpu_free_all(c->dev);
    if (vgpu_alloc(c->dev, len, 64, &so) < 0 || vgpu_alloc(c->dev, len, 64, &dof) < 0) {
        result(t, false, "memcpy", "does not fit");
        return;
    }
    src = vgpu_ptr(c->dev, so);
    dst = vgpu_ptr(c->dev, dof);
    for (i = 0; i < len; i++) {
        src[i] = (uint8_t)(i * 131 + (i >> 8));
    }
    memset(dst, 0, len);
    sqe_init(c, &s, VGPU_OP_MEMCPY);
    s.args.memcpy.src_off = so;
    s.args.memcpy.dst_off = dof;
    s.args.memcpy.len = len;
    s.args.memcpy.mode = VGPU_MEMCPY_ROUNDTRIP;
    if (!st_call(c, &s, &cqe, why, sizeof(why))) {
        result(t, false, "memcpy 1 MiB", "%s", why);
        return;
    }
    ok = memcmp(src, dst, len) == 0;
    result(t, ok, "memcpy 1 MiB roundtrip", "%s", ok ? "identical" : "differs");
}

/* A request outside the data area must fail with bad-range, not run. */
static void st_bad_range(struct ctx *c, struct tally *t)
{
    struct vgpu_sqe s;
    struct vgpu_cqe cqe;
    int r;

    sqe_init(c, &s, VGPU_OP_VECTOR_ADD);
    s.args.vector_add.a_off = 0;   /* the ring control block */
    s.args.vector_add.b_off = VGPU_SHM_DATA_OFFSET;
    s.args.vector_add.out_off = VGPU_SHM_DATA_OFFSET;
    s.args.vector_add.n = 16;
    r = vgpu_call(c->dev, &s, &cqe, c->timeout_ms);
    if (r < 0) {
        result(t, false, "reject out-of-range", "%s", vgpu_strerror(r));
        return;
    }
    result(t, cqe.status == VGPU_S_BAD_RANGE, "reject out-of-range", "status %s",
           vgpu_status_name(cqe.status));
}

static int cmd_selftest(struct ctx *c, int argc, char **argv)
{
    static const uint64_t sizes[] = { 1, 1000, 4097, 65536, 1u << 20 };
    struct tally t = { 0, 0 };
    bool vadd_ok = true;
    size_t i;

    (void)argv;
    if (argc > 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    printf("selftest: %s transport, %s backend%s%s\n", c->info.transport,
           backend_name(c->info.backend), c->info.gpu_name[0] ? ", " : "",
           c->info.gpu_name);
    st_nop(c, &t);
    st_gpu_info(c, &t);
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        vadd_ok &= st_vector_add(c, &t, sizes[i]);
    }
    if (vadd_ok) {
        printf("Test passed: vector addition successful\n");
    }
    st_saxpy(c, &t, 100000);
    st_reduce_sum(c, &t, 1u << 20);
    st_sgemm(c, &t, 64);
    st_memcpy(c, &t, 1u << 20);
    st_bad_range(c, &t);
    printf("selftest: %d passed, %d failed\n", t.passed, t.failed);
    return t.failed ? EXIT_FAILED : EXIT_OK;
}

/* ---------------------------------------------------------------------- */
/* bench                                                                  */

struct lat {
    double  *v;
    size_t   n, cap;
};

static int lat_add(struct lat *l, double us)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        double *v = realloc(l->v, cap * sizeof(*v));

        if (!v) {
            return -ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = us;
    return 0;
}

struct bench_res {
    const char *name;
    uint64_t n_elems;
    size_t   count;
    double   p50, p99, mean, rps;
};

/*
 * Keeps depth requests in flight for `seconds`; the latency of each is
 * submit -> completion seen. For vector_add all requests share the buffers
 * (they write the same values) and the output is checked at the end.
 */
static int bench_one(struct ctx *c, uint64_t n, int depth, double seconds,
                     struct bench_res *res)
{
    struct lat l = { 0 };
    struct vadd_buf v;
    double *sub_t, t0, end, sum = 0;
    uint32_t inflight = 0;
    int r = EXIT_OK, i;

    sub_t = calloc(VGPU_SQ_ENTRIES, sizeof(*sub_t));
    if (!sub_t) {
        return EXIT_ERROR;
    }
    if (n) {
        r = vadd_prepare(c, n, &v);
        if (r) {
            goto out;
        }
    }
    t0 = now_us();
    end = t0 + seconds * 1e6;
    for (;;) {
        struct vgpu_cqe cqe;
        double now = now_us();
        int e;

        /* Refill to depth while the time lasts. */
        for (i = 0; now < end && inflight < (uint32_t)depth; i++) {
            struct vgpu_sqe s;

            if (n) {
                vadd_sqe(c, &v, &s);
            } else {
                sqe_init(c, &s, VGPU_OP_NOP);
            }
            e = vgpu_submit(c->dev, &s);
            if (e == -EAGAIN) {
                break;
            }
            if (e < 0) {
                r = report_err(c, "bench submit", e);
                goto out;
            }
            sub_t[s.tag % VGPU_SQ_ENTRIES] = now;
            inflight++;
        }
        if (i) {
            e = vgpu_kick(c->dev);
            if (e < 0) {
                r = report_err(c, "bench kick", e);
                goto out;
            }
        }
        if (!inflight) {
            break;
        }
        e = vgpu_wait(c->dev, &cqe, c->timeout_ms);
        if (e < 0) {
            r = report_err(c, "bench wait", e);
            goto out;
        }
        now = now_us();
        inflight--;
        if (cqe.status != VGPU_S_OK) {
            fprintf(stderr, "vgpu-client: bench: status %s\n", vgpu_status_name(cqe.status));
            r = status_exit(cqe.status);
            goto out;
        }
        sum += now - sub_t[cqe.tag % VGPU_SQ_ENTRIES];
        if (lat_add(&l, now - sub_t[cqe.tag % VGPU_SQ_ENTRIES]) < 0) {
            r = EXIT_ERROR;
            goto out;
        }
    }
    if (n && vadd_check(c, &v, false)) {
        r = EXIT_FAILED;
        goto out;
    }
    qsort(l.v, l.n, sizeof(double), cmp_double);
    res->n_elems = n;
    res->count = l.n;
    res->p50 = percentile(l.v, l.n, 0.5);
    res->p99 = percentile(l.v, l.n, 0.99);
    res->mean = l.n ? sum / (double)l.n : 0;
    res->rps = (double)l.n / ((now_us() - t0) / 1e6);
out:
    free(l.v);
    free(sub_t);
    return r;
}

static int cmd_bench(struct ctx *c, int argc, char **argv)
{
    static const struct option lo[] = {
        { "seconds", required_argument, NULL, 's' },
        { "depth", required_argument, NULL, 'd' },
        { "json", required_argument, NULL, 'j' },
        { 0 },
    };
    static const uint64_t sizes[] = { 0, 1u << 10, 1u << 16, 1u << 20 };
    struct bench_res res[4];
    const char *json = NULL;
    double seconds = 2;
    int depth = 1, opt, r;
    size_t i;

    while ((opt = getopt_long(argc, argv, "s:d:j:", lo, NULL)) != -1) {
        switch (opt) {
        case 's':
            seconds = strtod(optarg, NULL);
            break;
        case 'd':
            depth = atoi(optarg);
            break;
        case 'j':
            json = optarg;
            break;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (!(seconds > 0 && seconds <= 3600) || depth < 1 || depth > (int)VGPU_SQ_ENTRIES) {
        fprintf(stderr, "vgpu-client: bench: need 0 < seconds <= 3600, 1 <= depth <= %u\n",
                VGPU_SQ_ENTRIES);
        return EXIT_USAGE;
    }
    printf("bench: %s transport, %s backend, depth %d, %.1f s per case\n",
           c->info.transport, backend_name(c->info.backend), depth, seconds);
    printf("%-22s %10s %10s %10s %10s %12s\n", "case", "requests", "p50 us", "p99 us",
           "mean us", "requests/s");
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char name[32];

        r = bench_one(c, sizes[i], depth, seconds, &res[i]);
        if (r) {
            return r;
        }
        if (sizes[i]) {
            snprintf(name, sizeof(name), "vector_add 2^%d", __builtin_ctzll(sizes[i]));
        } else {
            snprintf(name, sizeof(name), "nop");
        }
        res[i].name = sizes[i] ? "vector_add" : "nop";
        printf("%-22s %10zu %10.1f %10.1f %10.1f %12.0f\n", name, res[i].count, res[i].p50,
               res[i].p99, res[i].mean, res[i].rps);
    }
    if (json) {
        FILE *f = fopen(json, "w");

        if (!f) {
            fprintf(stderr, "vgpu-client: %s: %s\n", json, strerror(errno));
            return EXIT_ERROR;
        }
        fprintf(f, "{\n  \"transport\": \"%s\",\n  \"backend\": \"%s\",\n  \"depth\": %d,\n"
                "  \"seconds_per_case\": %.3f,\n  \"cases\": [\n", c->info.transport,
                backend_name(c->info.backend), depth, seconds);
        for (i = 0; i < 4; i++) {
            fprintf(f, "    {\"op\": \"%s\", \"n_floats\": %" PRIu64 ", \"requests\": %zu, "
                    "\"p50_us\": %.2f, \"p99_us\": %.2f, \"mean_us\": %.2f, "
                    "\"requests_per_s\": %.1f}%s\n", res[i].name, res[i].n_elems,
                    res[i].count, res[i].p50, res[i].p99, res[i].mean, res[i].rps,
                    i < 3 ? "," : "");
        }
        fprintf(f, "  ]\n}\n");
        if (fclose(f) != 0) {
            fprintf(stderr, "vgpu-client: %s: %s\n", json, strerror(errno));
            return EXIT_ERROR;
        }
    }
    return EXIT_OK;
}

/* ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        { "transport", required_argument, NULL, 't' },
        { "socket", required_argument, NULL, 'S' },
        { "vm-id", required_argument, NULL, 'v' },
        { "priority", required_argument, NULL, 'p' },
        { "weight", required_argument, NULL, 'w' },
        { "name", required_argument, NULL, 'N' },
        { "shm-size", required_argument, NULL, 'm' },
        { "pci", required_argument, NULL, 'P' },
        { "irq", no_argument, NULL, 'i' },
        { "timeout-ms", required_argument, NULL, 'T' },
        { "spin-us", required_argument, NULL, 'U' },
        { "doorbell", required_argument, NULL, 'D' },
        { "reconnect-ms", required_argument, NULL, 'R' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    static const struct {
        const char *name;
        int (*fn)(struct ctx *c, int argc, char **argv);
    } cmds[] = {
        { "info", cmd_info },
        { "nop", cmd_nop },
        { "vector-add", cmd_vector_add },
        { "selftest", cmd_selftest },
        { "bench", cmd_bench },
        { "hostile", cmd_hostile },
        { "cu-info", cmd_cu_info },
        { "run-ptx", cmd_run_ptx },
    };
    struct ctx c;
    char *end;
    size_t i;
    int opt, r;

    memset(&c, 0, sizeof(c));
    c.timeout_ms = 5000;
    /* '+': stop at the command; its options are parsed by the command. */
    while ((opt = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
        unsigned long v = 0;

        if (optarg && opt != 't' && opt != 'S' && opt != 'N' && opt != 'P' && opt != 'D') {
            errno = 0;
            v = strtoul(optarg, &end, 0);
            if (errno || *end || v > UINT32_MAX) {
                fprintf(stderr, "vgpu-client: bad number '%s'\n", optarg);
                return EXIT_USAGE;
            }
        }
        switch (opt) {
        case 't':
            if (strcmp(optarg, "pci") && strcmp(optarg, "sim") && strcmp(optarg, "dev") &&
                strcmp(optarg, "ivshmem")) {
                fprintf(stderr, "vgpu-client: --transport is dev, pci, ivshmem or sim\n");
                return EXIT_USAGE;
            }
            c.opts.transport = optarg;
            break;
        case 'S':
            c.opts.socket_path = optarg;
            break;
        case 'D':
            if (strcmp(optarg, "eventfd") && strcmp(optarg, "socket")) {
                fprintf(stderr, "vgpu-client: --doorbell is eventfd or socket\n");
                return EXIT_USAGE;
            }
            c.opts.doorbell = optarg;
            break;
        case 'v':
            c.opts.vm_id = (uint32_t)v;
            break;
        case 'p':
            c.opts.priority = (uint32_t)v;
            break;
        case 'w':
            c.opts.weight = (uint32_t)v;
            break;
        case 'N':
            c.opts.vm_name = optarg;
            break;
        case 'm':
            c.opts.shm_size = (uint64_t)v << 20;
            break;
        case 'P':
            c.opts.pci_addr = optarg;
            break;
        case 'i':
            c.opts.use_irq = 1;
            break;
        case 'T':
            if (v == 0 || v > INT32_MAX) {
                fprintf(stderr, "vgpu-client: --timeout-ms must be > 0\n");
                return EXIT_USAGE;
            }
            c.timeout_ms = (int)v;
            break;
        case 'R':
            if (v > 60000) {
                fprintf(stderr, "vgpu-client: --reconnect-ms is 0..60000\n");
                return EXIT_USAGE;
            }
            c.opts.reconnect_ms = (int)v;
            break;
        case 'U':
            if (v > 100000) {
                fprintf(stderr, "vgpu-client: --spin-us is 0..100000\n");
                return EXIT_USAGE;
            }
            c.opts.spin_us = v ? (int)v : -1;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[optind], cmds[i].name) == 0) {
            break;
        }
    }
    if (i == sizeof(cmds) / sizeof(cmds[0])) {
        fprintf(stderr, "vgpu-client: unknown command '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    /* Short polling sleeps (pci transport) should last what they ask for,
     * not the default 50 us timer slack. */
    (void)prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    r = open_dev(&c);
    if (r) {
        return r;
    }
    argc -= optind;
    argv += optind;
    optind = 0;     /* glibc: re-initialise getopt for the command's options */
    r = cmds[i].fn(&c, argc, argv);
    vgpu_close(c.dev);
    return r;
}
