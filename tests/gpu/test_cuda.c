/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA engine against the CPU backend, in process (no mediator): every
 * operation with random inputs of several sizes, plus isolation (a VM's
 * fresh device buffers never show another VM's data) and quota. Deadline and
 * recovery from a sticky GPU fault (while another VM keeps working) go
 * through the exported backend, the proxy, whose worker process is this
 * binary re-exec'ed: each fault must replace the worker exactly once. The
 * fault and the runaway kernel are the VM's own, loaded and launched with
 * the driver operations (the image of tests/gpu/cuops_kernels.cu:
 * $CUOPS_IMAGE, else cuops_kernels.ptx beside this binary); a worker that
 * dies is SIGKILLed by this test. Built with -DVGPU_CUDA_TESTING, for the
 * engine's test hooks (cuda_testing.h).
 *
 * Tolerances (GPU result vs CPU result, inputs uniform in [-1, 1]):
 *   VECTOR_ADD, MEMCPY, GPU zero-fill   bit-exact (one rounding, same on both)
 *   SAXPY        |g - c| <= 2^-22 * (|alpha x| + |y|): the GPU fuses
 *                alpha*x+y into one FMA, the CPU may round twice
 *   REDUCE_SUM   |g - c| <= 1e-12 * sum|x|: both sum in double, in different
 *                orders; each is within ~1e-14 of the exact sum
 *   SGEMM        |g - c| <= 2 (k + 2) 2^-24 (|alpha| |A||B| + |beta C|)
 *                elementwise: the classic bound of any float dot-product
 *                order, for both sides
 *
 * Needs a GPU of compute capability >= 9.0. Prints a table and a final
 * "N passed, N failed" line; exit 0 only when nothing failed, 77 (skip)
 * when there is no usable GPU at all. --quick leaves out the largest
 * sizes (2^24, SGEMM 1024^3).
 *
 * Built a second time as test_cuda_mock (suite unit) with VGPU_CUDA_MOCK,
 * against tests/gpu/mock_cudart.c and mock_cudadrv.c instead of the CUDA
 * runtime and driver: that runs the backend's host logic everywhere nvcc is
 * installed, and additionally checks that the engine never used a stale or
 * unknown handle.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mediator/backend.h"
#include "mediator/op.h"
#include "vgpu/abi.h"

#include "cuda_testing.h"
#include "engine.h"
#include "worker.h"
#ifdef VGPU_CUDA_MOCK
#include "mock_cudart.h"
#endif

#define MAIN_SHM_SIZE   (512ull << 20)
#define SMALL_SHM_SIZE  (64ull << 20)
#define QUOTA           (256ull << 20)
#define TIMEOUT_MS      2000u

struct shm {
    struct vgpu_shm_view v;
};

struct ctx {
    /* gops/gpu: the engine in process, or (recovery tests) the proxy with
     * its worker process */
    const struct vgpu_backend_ops *gops;
    struct vgpu_backend *gpu, *cpu;
    struct shm main_shm;
    struct vgpu_backend_session *gs, *cs;   /* main session on each backend */
    uint8_t *backup;
    unsigned passed, failed;
    uint64_t rng;
};

/* ------------------------------------------------------------------------ */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void result(struct ctx *c, bool ok, const char *name, const char *fmt, ...)
{
    char detail[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    printf("%-4s  %-34s %s\n", ok ? "PASS" : "FAIL", name, detail);
    fflush(stdout);
    if (ok) {
        c->passed++;
    } else {
        c->failed++;
    }
}

static uint64_t rnd(struct ctx *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 0x2545F4914F6CDD1Dull;
}

static void fill_floats(struct ctx *c, float *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        p[i] = (float)((double)(rnd(c) >> 11) * 0x1p-53 * 2.0 - 1.0);
    }
}

static void fill_bytes(struct ctx *c, uint8_t *p, uint64_t n)
{
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v = rnd(c);
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++) {
        p[i] = (uint8_t)rnd(c);
    }
}

static int shm_create(struct shm *s, uint64_t size, const char *name)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    void *p;

    if (fd < 0) {
        return -errno;
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int e = -errno;
        close(fd);
        return e;
    }
    s->v.base = p;
    s->v.size = size;
    s->v.fd = fd;   /* the proxy hands it to its worker */
    return 0;
}

static void shm_destroy(struct shm *s)
{
    if (s->v.base) {
        munmap(s->v.base, s->v.size);
        s->v.base = NULL;
        close(s->v.fd);
        s->v.fd = -1;
    }
}

static float *fptr(const struct shm *s, uint64_t off)
{
    return (float *)(s->v.base + off);
}

static int run_gpu(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s,
                   const struct vgpu_sqe *sqe, uint64_t *res, double *ms)
{
    const struct vgpu_op *op = vgpu_op_lookup(sqe->opcode);
    double t0 = now_ms();
    int st;

    if (!op) {
        return VGPU_S_UNKNOWN_OP;
    }
    st = op->validate(sqe, s->v.size);
    if (st != VGPU_S_OK) {
        return st;
    }
    st = c->gops->execute(c->gpu, gs, 0, op, sqe, &s->v, res);
    if (ms) {
        *ms = now_ms() - t0;
    }
    return st;
}

static int run_cpu(struct ctx *c, const struct shm *s, const struct vgpu_sqe *sqe,
                   uint64_t *res)
{
    const struct vgpu_op *op = vgpu_op_lookup(sqe->opcode);
    struct vgpu_backend_session *cs;
    int st;

    if (!op) {
        return VGPU_S_UNKNOWN_OP;
    }
    st = op->validate(sqe, s->v.size);
    if (st != VGPU_S_OK) {
        return st;
    }
    if (vgpu_backend_cpu.session_open(c->cpu, 1000, -1, &s->v, &cs) < 0) {
        return VGPU_S_INTERNAL;
    }
    st = vgpu_backend_cpu.execute(c->cpu, cs, 0, op, sqe, &s->v, res);
    vgpu_backend_cpu.session_close(c->cpu, cs);
    return st;
}

/*
 * Runs sqe on the GPU and then, on the same inputs, on the CPU. Afterwards
 * gpu_out holds what the GPU wrote at [out_off, out_off+out_len) and shared
 * memory holds the CPU's output. end: the data the request touches ends here.
 */
struct both {
    int gst, cst;
    uint64_t gres, cres;
    double gms;
};

static void run_both(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s,
                     const struct vgpu_sqe *sqe, uint64_t end, uint64_t out_off,
                     uint64_t out_len, void *gpu_out, struct both *r)
{
    uint64_t span = end - VGPU_SHM_DATA_OFFSET;

    memcpy(c->backup, s->v.base + VGPU_SHM_DATA_OFFSET, span);
    r->gst = run_gpu(c, gs, s, sqe, &r->gres, &r->gms);
    if (out_len) {
        memcpy(gpu_out, s->v.base + out_off, out_len);
    }
    memcpy(s->v.base + VGPU_SHM_DATA_OFFSET, c->backup, span);
    r->cst = run_cpu(c, s, sqe, &r->cres);
}

static bool statuses_ok(struct ctx *c, const char *name, const struct both *r)
{
    if (r->gst == VGPU_S_OK && r->cst == VGPU_S_OK && r->gres == r->cres) {
        return true;
    }
    result(c, false, name, "gpu %s result %llu, cpu %s result %llu",
           vgpu_status_name(r->gst), (unsigned long long)r->gres,
           vgpu_status_name(r->cst), (unsigned long long)r->cres);
    return false;
}

/* ------------------------------------------------------------------------
 * Operations, GPU vs CPU
 * ------------------------------------------------------------------------ */

#define ALIGN_UP(v, a) (((v) + (a) - 1) / (a) * (a))

static void test_vector_add(struct ctx *c, struct vgpu_backend_session *gs,
                            const struct shm *s, uint64_t n, bool in_place)
{
    char name[64];
    uint64_t bytes = n * 4, a = VGPU_SHM_DATA_OFFSET;
    uint64_t b = ALIGN_UP(a + bytes, 256), o = in_place ? a : ALIGN_UP(b + bytes, 256);
    uint64_t end = (in_place ? b : o) + bytes, bad = 0;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_VECTOR_ADD };
    float *gout = malloc(bytes);
    struct both r;

    snprintf(name, sizeof(name), "vector_add n=%llu%s", (unsigned long long)n,
             in_place ? " in-place" : "");
    fill_floats(c, fptr(s, a), n);
    fill_floats(c, fptr(s, b), n);
    sqe.args.vector_add = (struct vgpu_args_vector_add){ .a_off = a, .b_off = b,
                                                         .out_off = o, .n = n };
    run_both(c, gs, s, &sqe, end, o, bytes, gout, &r);
    if (statuses_ok(c, name, &r)) {
        bad = (uint64_t)(memcmp(gout, fptr(s, o), bytes) != 0);
        result(c, !bad, name, "bit-exact %s, gpu %.3f ms", bad ? "NO" : "yes", r.gms);
    }
    free(gout);
}

static void test_saxpy(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s,
                       uint64_t n)
{
    char name[64];
    uint64_t bytes = n * 4, x = VGPU_SHM_DATA_OFFSET, y = ALIGN_UP(x + bytes, 256);
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_SAXPY };
    float *gout = malloc(bytes), *y0 = malloc(bytes), alpha = 2.5f;
    double worst = 0;
    uint64_t bad = 0;
    struct both r;

    snprintf(name, sizeof(name), "saxpy n=%llu", (unsigned long long)n);
    fill_floats(c, fptr(s, x), n);
    fill_floats(c, fptr(s, y), n);
    memcpy(y0, fptr(s, y), bytes);
    sqe.args.saxpy = (struct vgpu_args_saxpy){ .x_off = x, .y_off = y, .n = n, .alpha = alpha };
    run_both(c, gs, s, &sqe, y + bytes, y, bytes, gout, &r);
    if (statuses_ok(c, name, &r)) {
        const float *cx = fptr(s, x), *cy = fptr(s, y);
        for (uint64_t i = 0; i < n; i++) {
            double tol = 0x1p-22 * (fabs((double)alpha * cx[i]) + fabs((double)y0[i]));
            double err = fabs((double)gout[i] - (double)cy[i]);
            if (err > tol) {
                bad++;
            }
            if (tol > 0 && err / tol > worst) {
                worst = err / tol;
            }
        }
        result(c, !bad, name, "%llu beyond tolerance, worst err/tol %.3f, gpu %.3f ms",
               (unsigned long long)bad, worst, r.gms);
    }
    free(y0);
    free(gout);
}

static void test_reduce(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s,
                        uint64_t n)
{
    char name[64];
    uint64_t in = VGPU_SHM_DATA_OFFSET;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_REDUCE_SUM };
    double g, cpu, abs_sum = 0, tol;
    struct both r;

    snprintf(name, sizeof(name), "reduce_sum n=%llu", (unsigned long long)n);
    fill_floats(c, fptr(s, in), n);
    for (uint64_t i = 0; i < n; i++) {
        abs_sum += fabs((double)fptr(s, in)[i]);
    }
    sqe.args.reduce_sum = (struct vgpu_args_reduce_sum){ .in_off = in, .n = n };
    run_both(c, gs, s, &sqe, in + n * 4, 0, 0, NULL, &r);
    memcpy(&g, &r.gres, 8);
    memcpy(&cpu, &r.cres, 8);
    tol = 1e-12 * abs_sum;
    if (r.gst != VGPU_S_OK || r.cst != VGPU_S_OK) {
        result(c, false, name, "gpu %s, cpu %s", vgpu_status_name(r.gst),
               vgpu_status_name(r.cst));
        return;
    }
    result(c, fabs(g - cpu) <= tol, name, "gpu %.17g cpu %.17g |diff| %.3g tol %.3g, gpu %.3f ms",
           g, cpu, fabs(g - cpu), tol, r.gms);
}

static void test_sgemm(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s,
                       uint32_t m, uint32_t n, uint32_t k, float alpha, float beta)
{
    char name[64];
    uint64_t ab = (uint64_t)m * k * 4, bb = (uint64_t)k * n * 4, cb = (uint64_t)m * n * 4;
    uint64_t ao = VGPU_SHM_DATA_OFFSET, bo = ALIGN_UP(ao + ab, 256), co = ALIGN_UP(bo + bb, 256);
    uint64_t end = co + cb, bad = 0;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_SGEMM };
    float *gout = malloc(cb), *mag = malloc(cb), *absin = malloc(end - ao);
    double worst = 0;
    struct both r;

    snprintf(name, sizeof(name), "sgemm %ux%ux%u a=%g b=%g", m, n, k, alpha, beta);
    fill_floats(c, fptr(s, ao), (end - ao) / 4);
    sqe.args.sgemm = (struct vgpu_args_sgemm){ .a_off = ao, .b_off = bo, .c_off = co,
                                               .m = m, .n = n, .k = k,
                                               .alpha = alpha, .beta = beta };
    /* The error bound needs |alpha| |A| |B| + |beta| |C|: the CPU computes
     * it from the absolute values first. */
    memcpy(absin, s->v.base + ao, end - ao);
    for (uint64_t i = 0; i < (end - ao) / 4; i++) {
        fptr(s, ao)[i] = fabsf(fptr(s, ao)[i]);
    }
    {
        struct vgpu_sqe abs_sqe = sqe;
        uint64_t res;

        abs_sqe.args.sgemm.alpha = fabsf(alpha);
        abs_sqe.args.sgemm.beta = fabsf(beta);
        if (run_cpu(c, s, &abs_sqe, &res) != VGPU_S_OK) {
            result(c, false, name, "cpu bound computation failed");
            goto out;
        }
        memcpy(mag, fptr(s, co), cb);
    }
    memcpy(s->v.base + ao, absin, end - ao);

    run_both(c, gs, s, &sqe, end, co, cb, gout, &r);
    if (statuses_ok(c, name, &r)) {
        const float *cc = fptr(s, co);
        for (uint64_t i = 0; i < (uint64_t)m * n; i++) {
            double tol = 2.0 * (k + 2) * 0x1p-24 * mag[i];
            double err = fabs((double)gout[i] - (double)cc[i]);
            if (err > tol) {
                bad++;
            }
            if (tol > 0 && err / tol > worst) {
                worst = err / tol;
            }
        }
        result(c, !bad, name, "%llu beyond tolerance, worst err/tol %.3f, gpu %.3f ms",
               (unsigned long long)bad, worst, r.gms);
    }
out:
    free(absin);
    free(mag);
    free(gout);
}

static void test_memcpy(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s,
                        uint64_t len, uint32_t mode)
{
    static const char *const modes[] = { "roundtrip", "h2d", "d2h" };
    char name[64];
    /* Odd offsets on purpose: MEMCPY takes any byte alignment. */
    uint64_t src = VGPU_SHM_DATA_OFFSET + 1, dst = ALIGN_UP(src + len, 4096) + 3;
    uint64_t end = dst + len, out_off, out_len;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_MEMCPY };
    uint8_t *gout;
    bool ok = true;
    struct both r;

    snprintf(name, sizeof(name), "memcpy %s len=%llu", modes[mode], (unsigned long long)len);
    fill_bytes(c, s->v.base + VGPU_SHM_DATA_OFFSET, end - VGPU_SHM_DATA_OFFSET);
    sqe.args.memcpy = (struct vgpu_args_memcpy){ .src_off = src, .dst_off = dst, .len = len,
                                                 .mode = mode };
    /* H2D writes nothing: compare the whole span, which must be untouched. */
    out_off = mode == VGPU_MEMCPY_H2D ? VGPU_SHM_DATA_OFFSET : dst;
    out_len = mode == VGPU_MEMCPY_H2D ? end - VGPU_SHM_DATA_OFFSET : len;
    gout = malloc(out_len);
    run_both(c, gs, s, &sqe, end, out_off, out_len, gout, &r);
    if (statuses_ok(c, name, &r)) {
        ok = memcmp(gout, s->v.base + out_off, out_len) == 0;
        result(c, ok, name, "bit-exact %s, gpu %.3f ms (%.2f GB/s)", ok ? "yes" : "NO", r.gms,
               (double)len / (r.gms * 1e6));
    }
    free(gout);
}

static void test_gpu_info(struct ctx *c)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_GPU_INFO };
    struct vgpu_gpu_info info;
    uint64_t off = VGPU_SHM_DATA_OFFSET, res = 0;
    int st;
    bool ok;

    sqe.args.gpu_info = (struct vgpu_args_gpu_info){ .out_off = off, .out_len = sizeof(info) };
    memset(c->main_shm.v.base + off, 0xff, sizeof(info));
    st = run_gpu(c, c->gs, &c->main_shm, &sqe, &res, NULL);
    memcpy(&info, c->main_shm.v.base + off, sizeof(info));
    ok = st == VGPU_S_OK && res == sizeof(info) && info.backend == VGPU_BACKEND_CUDA &&
         memchr(info.name, 0, sizeof(info.name)) && info.name[0] && info.sm_count > 0 &&
         info.cc_major >= 9 && info.total_mem > 0 && info.free_mem <= info.total_mem &&
         info.driver_version > 0 && info.runtime_version > 0 && info.pad == 0;
    result(c, ok, "gpu_info", "%s: %s, %u SMs, cc %u.%u, %llu/%llu MiB free, driver %u, "
           "runtime %u, %u MHz", vgpu_status_name(st),
           memchr(info.name, 0, sizeof(info.name)) ? info.name : "?", info.sm_count,
           info.cc_major, info.cc_minor, (unsigned long long)(info.free_mem >> 20),
           (unsigned long long)(info.total_mem >> 20), info.driver_version,
           info.runtime_version, info.multiprocessor_clock_khz / 1000);
}

static void test_nop(struct ctx *c)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP };
    struct both r;

    run_both(c, c->gs, &c->main_shm, &sqe, VGPU_SHM_DATA_OFFSET, 0, 0, NULL, &r);
    if (statuses_ok(c, "nop", &r)) {
        result(c, true, "nop", "ok, %.3f ms", r.gms);
    }
}

static void sweep(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s,
                  bool full)
{
    static const uint64_t sizes[] = { 1, 1000, 1000003, 1ull << 20, 1ull << 24 };
    unsigned nsizes = full ? 5 : 4;

    for (unsigned i = 0; i < nsizes; i++) {
        test_vector_add(c, gs, s, sizes[i], false);
        test_saxpy(c, gs, s, sizes[i]);
        test_reduce(c, gs, s, sizes[i]);
    }
    test_vector_add(c, gs, s, 1000003, true);
    test_sgemm(c, gs, s, 1, 1, 1, 1.0f, 0.0f);
    test_sgemm(c, gs, s, 17, 33, 65, 1.5f, 0.5f);
    test_sgemm(c, gs, s, 1000, 3, 7, 1.0f, 0.0f);
    test_sgemm(c, gs, s, 64, 64, 64, 0.0f, 2.0f);
    test_sgemm(c, gs, s, 256, 512, 128, -1.0f, 1.0f);
    if (full) {
        test_sgemm(c, gs, s, 1024, 1024, 1024, 1.0f, 1.0f);
    }
    for (uint32_t mode = 0; mode < 3; mode++) {
        test_memcpy(c, gs, s, 1, mode);
        test_memcpy(c, gs, s, 4097, mode);
        test_memcpy(c, gs, s, (1ull << 20) + 3, mode);
        test_memcpy(c, gs, s, full ? 64ull << 20 : 40ull << 20, mode);
    }
}

/* ------------------------------------------------------------------------
 * Isolation, quota, deadline, recovery
 * ------------------------------------------------------------------------ */

/* Leaves device buffers 0..2 of a new session on s full of non-zero data. */
static int fill_canary(struct ctx *c, const struct shm *s, uint64_t bytes)
{
    struct vgpu_backend_session *gs;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_VECTOR_ADD };
    uint64_t a = VGPU_SHM_DATA_OFFSET, res;
    int st;

    if (c->gops->session_open(c->gpu, 2, -1, &s->v, &gs) < 0) {
        return VGPU_S_INTERNAL;
    }
    memset(s->v.base + a, 0xa5, 2 * bytes);     /* a = b = the canary */
    sqe.args.vector_add = (struct vgpu_args_vector_add){ .a_off = a, .b_off = a + bytes,
                                                         .out_off = a + 2 * bytes,
                                                         .n = bytes / 4 };
    st = run_gpu(c, gs, s, &sqe, &res, NULL);
    c->gops->session_close(c->gpu, gs);
    return st;
}

/* Bytes that are not zero in device buffers 0..2 of a new session on s. */
static int64_t peek_fresh(struct ctx *c, const struct shm *s, uint64_t bytes)
{
    struct vgpu_backend_session *gs;
    uint8_t *buf = malloc(bytes);
    int64_t nonzero = 0;

    if (!buf || c->gops->session_open(c->gpu, 3, -1, &s->v, &gs) < 0) {
        free(buf);
        return -1;
    }
    for (unsigned slot = 0; slot < 3 && nonzero >= 0; slot++) {
        memset(buf, 0x5a, bytes);
        if (vgpu_cuda_test_peek(c->gpu, gs, slot, bytes, buf) != VGPU_S_OK) {
            nonzero = -1;
            break;
        }
        for (uint64_t i = 0; i < bytes; i++) {
            nonzero += buf[i] != 0;
        }
    }
    c->gops->session_close(c->gpu, gs);
    free(buf);
    return nonzero;
}

static void test_isolation(struct ctx *c)
{
    const uint64_t bytes = 16ull << 20;
    struct shm a = { 0 }, b = { 0 };
    int64_t leaked;
    int st;

    if (shm_create(&a, SMALL_SHM_SIZE, "vgpu-test-a") < 0 ||
        shm_create(&b, SMALL_SHM_SIZE, "vgpu-test-b") < 0) {
        result(c, false, "isolation", "memfd: %s", strerror(errno));
        goto out;
    }
    st = fill_canary(c, &a, bytes);
    leaked = peek_fresh(c, &b, bytes);
    result(c, st == VGPU_S_OK && leaked == 0, "isolation: fresh buffers zeroed",
           "VM A wrote 3 x 16 MiB canary (%s) and closed; VM B's new buffers: %lld "
           "non-zero bytes", vgpu_status_name(st), (long long)leaked);

    /* Control, not a verdict: does the driver recycle A's memory at all? If
     * it does, the test above would have caught a missing scrub. */
    vgpu_cuda_test_set_knobs(c->gpu, 0, 1);
    st = fill_canary(c, &a, bytes);
    leaked = peek_fresh(c, &b, bytes);
    vgpu_cuda_test_set_knobs(c->gpu, 0, 0);
    printf("INFO  %-34s with scrubbing disabled, VM B's new buffers show %lld non-zero "
           "bytes (%s)\n", "isolation control", (long long)leaked,
           leaked > 0 ? "the driver recycles memory: the scrub is what protects"
                      : "no recycling seen this time");
out:
    shm_destroy(&a);
    shm_destroy(&b);
}

static void test_staging(struct ctx *c)
{
    struct vgpu_backend_session *gs;
    struct vgpu_cuda_test_stats stats;
    char health[512];

    vgpu_cuda_test_set_knobs(c->gpu, 1, 0);
    if (c->gops->session_open(c->gpu, 4, -1, &c->main_shm.v, &gs) < 0) {
        result(c, false, "staging: session_open", "failed");
        vgpu_cuda_test_set_knobs(c->gpu, 0, 0);
        return;
    }
    vgpu_cuda_test_set_knobs(c->gpu, 0, 0);
    vgpu_cuda_test_stats(c->gpu, gs, &stats);
    c->gops->health(c->gpu, health, sizeof(health));
    result(c, !stats.registered && strstr(health, "staged"), "staging: session uses bounce",
           "health: %s", health);
    test_vector_add(c, gs, &c->main_shm, 1ull << 20, false);
    test_reduce(c, gs, &c->main_shm, 1000003);
    test_sgemm(c, gs, &c->main_shm, 256, 512, 128, 1.0f, 0.5f);
    /* Longer than the 32 MiB bounce buffer: several chunks each way. */
    test_memcpy(c, gs, &c->main_shm, (80ull << 20) + 5, VGPU_MEMCPY_ROUNDTRIP);
    test_memcpy(c, gs, &c->main_shm, (40ull << 20) + 5, VGPU_MEMCPY_D2H);
    c->gops->session_close(c->gpu, gs);
}

static void test_quota(struct ctx *c)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_VECTOR_ADD };
    struct vgpu_cuda_test_stats st1, st2, st3;
    uint64_t res, n = 1ull << 25, a = VGPU_SHM_DATA_OFFSET;
    int s1, s2, s3;

    /* 3 x 128 MiB > 256 MiB quota. */
    sqe.args.vector_add = (struct vgpu_args_vector_add){ .a_off = a, .b_off = a + n * 4,
                                                         .out_off = a + 2 * n * 4, .n = n };
    s1 = run_gpu(c, c->gs, &c->main_shm, &sqe, &res, NULL);
    vgpu_cuda_test_stats(c->gpu, c->gs, &st1);
    result(c, s1 == VGPU_S_QUOTA && st1.session_mem <= QUOTA, "quota: 384 MiB request",
           "%s (want quota), VM holds %llu MiB of %llu", vgpu_status_name(s1),
           (unsigned long long)(st1.session_mem >> 20), (unsigned long long)(QUOTA >> 20));

    /* Fits only if the pool gives back the buffers this request does not use. */
    test_vector_add(c, c->gs, &c->main_shm, 1ull << 24, false);
    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = VGPU_OP_MEMCPY;
    sqe.args.memcpy = (struct vgpu_args_memcpy){ .src_off = a, .len = 200ull << 20,
                                                 .mode = VGPU_MEMCPY_H2D };
    s2 = run_gpu(c, c->gs, &c->main_shm, &sqe, &res, NULL);
    vgpu_cuda_test_stats(c->gpu, c->gs, &st2);
    result(c, s2 == VGPU_S_OK && st2.session_mem <= QUOTA, "quota: pool shrinks to fit",
           "memcpy 200 MiB after 3 x 64 MiB: %s, VM holds %llu MiB", vgpu_status_name(s2),
           (unsigned long long)(st2.session_mem >> 20));
    test_vector_add(c, c->gs, &c->main_shm, 1ull << 24, false);
    vgpu_cuda_test_stats(c->gpu, c->gs, &st3);
    s3 = st3.session_mem <= QUOTA;
    result(c, s3, "quota: never exceeded", "VM holds %llu MiB",
           (unsigned long long)(st3.session_mem >> 20));
}

struct bg {
    struct ctx *c;
    struct vgpu_backend_session *gs;
    const struct shm *s;
    int stop;                        /* atomic */
    uint64_t fault_done_us;          /* atomic; 0 until the fault's recovery returned */
    unsigned ok, faulted, other, wrong, failed_after;
};

static void *bg_loop(void *arg)
{
    struct bg *g = arg;
    const uint64_t n = 1ull << 20, a = VGPU_SHM_DATA_OFFSET, b = a + n * 4, o = b + n * 4;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_VECTOR_ADD };
    float *A = fptr(g->s, a), *B = fptr(g->s, b), *O = fptr(g->s, o);

    for (uint64_t i = 0; i < n; i++) {
        A[i] = (float)(i & 1023);
        B[i] = 1.0f;
    }
    sqe.args.vector_add = (struct vgpu_args_vector_add){ .a_off = a, .b_off = b,
                                                         .out_off = o, .n = n };
    while (!__atomic_load_n(&g->stop, __ATOMIC_ACQUIRE)) {
        uint64_t started = (uint64_t)(now_ms() * 1e3), done;
        uint64_t res;
        int st;

        memset(O, 0, n * 4);
        st = run_gpu(g->c, g->gs, g->s, &sqe, &res, NULL);
        if (st == VGPU_S_OK) {
            bool right = true;
            for (uint64_t i = 0; i < n && right; i += 4099) {
                right = O[i] == (float)(i & 1023) + 1.0f;
            }
            g->ok++;
            g->wrong += !right;
        } else if (st == VGPU_S_GPU_FAULT || st == VGPU_S_TIMEOUT) {
            g->faulted++;
        } else {
            g->other++;
        }
        done = __atomic_load_n(&g->fault_done_us, __ATOMIC_ACQUIRE);
        if (st != VGPU_S_OK && done > 0 && started > done) {
            g->failed_after++;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------
 * The VM's own kernels: driver operations through the proxy
 * ------------------------------------------------------------------------ */

#ifdef VGPU_CUDA_MOCK
/* The mock driver's module image (tests/gpu/mock_cudadrv.c), with its NUL. */
static const char mock_image[] = "VGPU-MOCK-MODULE\nfunc fault 8\nfunc spin 8\n";
#endif

static uint8_t *image;
static uint64_t image_len;

/*
 * The image of tests/gpu/cuops_kernels.cu, whose fault(int *) stores to an
 * illegal address and spin(u64 ns) runs ns nanoseconds: $CUOPS_IMAGE, else
 * the PTX meson builds beside this binary. On the mock, its text image.
 */
static int load_image(void)
{
#ifdef VGPU_CUDA_MOCK
    image = (uint8_t *)mock_image;
    image_len = sizeof(mock_image);
    return 0;
#else
    const char *env = getenv("CUOPS_IMAGE");
    char path[4096];
    FILE *f;
    long n;

    if (env && *env) {
        snprintf(path, sizeof(path), "%s", env);
    } else {
        ssize_t len = readlink("/proc/self/exe", path, sizeof(path) - 32);
        char *slash;

        if (len <= 0) {
            return -errno;
        }
        path[len] = '\0';
        slash = strrchr(path, '/');
        snprintf(slash ? slash + 1 : path, 32, "cuops_kernels.ptx");
    }
    f = fopen(path, "rb");
    if (!f) {
        printf("INFO  cannot read the kernels' image %s: %s\n", path, strerror(errno));
        return -ENOENT;
    }
    if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) < 0 ||
        !(image = malloc((size_t)n + 1)) || fread(image, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        return -EIO;
    }
    fclose(f);
    image[n] = 0;               /* PTX is text */
    image_len = (uint64_t)n + 1;
    return 0;
#endif
}

/* The driver operations' scratch: the last MiB of the VM's memory (names,
 * function info, parameters, then the image). */
#define CU_SCRATCH(s)    ((s)->v.size - (1ull << 20))
#define CU_IMAGE_MAX     ((1ull << 20) - 16384)

struct kernels {
    uint32_t fault, spin;
};

/* Loads the image into the VM's current context and looks up its kernels. */
static int cu_kernels(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s,
                      struct kernels *k)
{
    static const char *const names[] = { "fault", "spin" };
    uint32_t *out[] = { &k->fault, &k->spin };
    uint64_t scr = CU_SCRATCH(s), res = 0;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_CU_MODULE_LOAD };
    uint32_t module;
    int st;

    if (!image || image_len > CU_IMAGE_MAX) {
        return VGPU_S_BAD_ARGS;
    }
    memcpy(s->v.base + scr + 16384, image, image_len);
    sqe.args.cu_module_load.image_off = scr + 16384;
    sqe.args.cu_module_load.image_len = image_len;
    st = run_gpu(c, gs, s, &sqe, &res, NULL);
    if (st != VGPU_S_OK) {
        return st;
    }
    module = (uint32_t)res;
    for (unsigned i = 0; i < 2; i++) {
        memset(&sqe, 0, sizeof(sqe));
        sqe.opcode = VGPU_OP_CU_MODULE_GET_FUNCTION;
        snprintf((char *)s->v.base + scr, 64, "%s", names[i]);
        sqe.args.cu_symbol = (struct vgpu_args_cu_symbol){
            .name_off = scr, .out_off = scr + 4096,
            .name_len = (uint32_t)strlen(names[i]) + 1, .out_len = 4096, .module = module };
        st = run_gpu(c, gs, s, &sqe, &res, NULL);
        if (st != VGPU_S_OK) {
            return st;
        }
        *out[i] = (uint32_t)res;
    }
    return VGPU_S_OK;
}

/* f(arg) on one thread of the VM's default stream: completes once queued. */
static int cu_launch(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s,
                     uint32_t f, uint64_t arg)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_CU_LAUNCH };
    uint64_t scr = CU_SCRATCH(s), res = 0;

    memcpy(s->v.base + scr + 8192, &arg, sizeof(arg));
    sqe.args.cu_launch = (struct vgpu_args_cu_launch){
        .func = f, .grid = { 1, 1, 1 }, .block = { 1, 1, 1 },
        .params_len = sizeof(arg), .params_off = scr + 8192 };
    return run_gpu(c, gs, s, &sqe, &res, NULL);
}

/* Waits for the VM's default stream: the status of what ran on it. */
static int cu_sync(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_CU_STREAM_SYNC };
    uint64_t res = 0;

    return run_gpu(c, gs, s, &sqe, &res, NULL);
}

/* VM gs runs kernel `which` (0: fault, 1: spin) with arg, then syncs. */
static int cu_run(struct ctx *c, struct vgpu_backend_session *gs, const struct shm *s,
                  unsigned which, uint64_t arg)
{
    struct kernels k;
    int st = cu_kernels(c, gs, s, &k);

    if (st == VGPU_S_OK) {
        st = cu_launch(c, gs, s, which ? k.spin : k.fault, arg);
    }
    return st == VGPU_S_OK ? cu_sync(c, gs, s) : st;
}

/* SIGKILLs a worker after a delay, from a thread of its own. */
struct killer {
    pthread_t th;
    int pid;
    unsigned delay_ms;
};

static void *killer_main(void *arg)
{
    struct killer *k = arg;

    usleep(k->delay_ms * 1000u);
    if (k->pid > 0) {           /* never 0 or -1: a group, or everything */
        kill(k->pid, SIGKILL);
    }
    return NULL;
}

static uint64_t proxy_restarts(struct ctx *c)
{
    struct vgpu_cuda_proxy_stats ps;

    vgpu_cuda_proxy_stats(c->gpu, NULL, &ps);
    return ps.restarts_all;
}

/*
 * Recovery goes through the exported backend, the proxy: the engine runs in
 * a worker process (this binary, re-exec'ed), and a sticky fault or a kernel
 * past its deadline replaces that process. The fault and the long kernel are
 * the VM's own (driver operations), the dying worker is SIGKILLed from here.
 */
static void test_recovery(struct ctx *c, const struct vgpu_backend_config *cfg)
{
    const struct vgpu_backend_ops *saved_ops = c->gops;
    struct vgpu_backend *saved = c->gpu, *px = NULL;
    struct vgpu_backend_session *sa = NULL, *sb = NULL;
    struct shm a = { .v.fd = -1 }, b = { .v.fd = -1 };
    struct bg g = { 0 };
    struct killer k;
    const char *why = NULL;
    char health[512];
    uint64_t r0, r1;
    pthread_t th;
    double t0, el;
    int st;

    if (vgpu_backend_cuda.init(cfg, &px, &why) < 0) {
        result(c, false, "recovery: worker start", "%s", why ? why : "failed");
        return;
    }
    c->gops = &vgpu_backend_cuda;
    c->gpu = px;
    if (shm_create(&a, SMALL_SHM_SIZE, "vgpu-test-a") < 0 ||
        shm_create(&b, SMALL_SHM_SIZE, "vgpu-test-b") < 0 ||
        c->gops->session_open(c->gpu, 10, -1, &a.v, &sa) < 0 ||
        c->gops->session_open(c->gpu, 11, -1, &b.v, &sb) < 0) {
        result(c, false, "recovery: setup", "failed");
        goto out;
    }
    test_vector_add(c, sa, &a, 1ull << 20, false);
    test_sgemm(c, sb, &b, 128, 128, 128, 1.0f, 0.0f);

    if (load_image() < 0) {
        result(c, false, "recovery: the kernels' image", "set CUOPS_IMAGE to cuops_kernels.ptx");
        goto out;
    }

    /* A sticky fault in VM A. */
    r0 = proxy_restarts(c);
    st = cu_run(c, sa, &a, 0, 0);
    r1 = proxy_restarts(c);
    result(c, st == VGPU_S_GPU_FAULT && r1 == r0 + 1,
           "recovery: illegal address in VM A", "%s (want gpu-fault), worker restarts %llu -> %llu",
           vgpu_status_name(st), (unsigned long long)r0, (unsigned long long)r1);
    test_vector_add(c, sa, &a, 1ull << 20, false);          /* A itself goes on */
    test_vector_add(c, sb, &b, 1000003, false);             /* B was re-opened */
    test_sgemm(c, sb, &b, 128, 128, 128, 1.0f, 0.5f);       /* cuBLAS in the new worker */
    test_reduce(c, sa, &a, 1ull << 20);

    /* A request past its deadline: the worker answers TIMEOUT at the
     * deadline and is replaced (its kernel may still run). The time
     * includes starting the new worker. */
    r0 = proxy_restarts(c);
    t0 = now_ms();
    st = cu_run(c, sa, &a, 1, 3ull * TIMEOUT_MS * 1000000ull);
    el = now_ms() - t0;
    r1 = proxy_restarts(c);
    result(c, st == VGPU_S_TIMEOUT && r1 == r0 + 1,
           "recovery: kernel past deadline", "%s (want timeout), worker restarts %llu -> %llu",
           vgpu_status_name(st), (unsigned long long)r0, (unsigned long long)r1);
    result(c, el < TIMEOUT_MS + 15000.0, "deadline: completion bounded",
           "completed after %.0f ms (restart included) for a %u ms limit and a %u ms kernel",
           el, TIMEOUT_MS, 3 * TIMEOUT_MS);
    test_vector_add(c, sb, &b, 1ull << 20, false);
    st = cu_run(c, sa, &a, 1, 20ull * 1000000ull);
    result(c, st == VGPU_S_OK, "deadline: short kernel", "20 ms kernel: %s", vgpu_status_name(st));

    /* A worker that dies during a request (as a driver crash would kill it):
     * SIGKILLed while VM A waits for a kernel of 1.5 s. */
    {
        struct kernels kk;
        struct vgpu_cuda_proxy_stats pa;

        st = cu_kernels(c, sa, &a, &kk);
        vgpu_cuda_proxy_stats(c->gpu, sa, &pa);
        r0 = proxy_restarts(c);
        if (st == VGPU_S_OK) {
            st = cu_launch(c, sa, &a, kk.spin, 1500ull * 1000000ull);
        }
        k.pid = pa.pid;
        k.delay_ms = 300;
        if (st == VGPU_S_OK && pa.pid > 0 && pthread_create(&k.th, NULL, killer_main, &k) == 0) {
            st = cu_sync(c, sa, &a);
            pthread_join(k.th, NULL);
        } else {
            st = VGPU_S_INTERNAL;
        }
    }
    r1 = proxy_restarts(c);
    result(c, st == VGPU_S_GPU_FAULT && r1 == r0 + 1, "recovery: worker died",
           "%s (want gpu-fault), worker restarts %llu -> %llu", vgpu_status_name(st),
           (unsigned long long)r0, (unsigned long long)r1);
    test_vector_add(c, sa, &a, 1000003, false);

    /* A fault while VM B is busy in another thread. */
    g.c = c;
    g.gs = sb;
    g.s = &b;
    if (pthread_create(&th, NULL, bg_loop, &g) != 0) {
        result(c, false, "recovery: concurrent", "pthread_create failed");
        goto out;
    }
    usleep(300 * 1000);
    st = cu_run(c, sa, &a, 0, 0);
    __atomic_store_n(&g.fault_done_us, (uint64_t)(now_ms() * 1e3), __ATOMIC_RELEASE);
    usleep(500 * 1000);
    __atomic_store_n(&g.stop, 1, __ATOMIC_RELEASE);
    pthread_join(th, NULL);
    {
        struct vgpu_cuda_proxy_stats pa, pb;

        vgpu_cuda_proxy_stats(c->gpu, sa, &pa);
        vgpu_cuda_proxy_stats(c->gpu, sb, &pb);
        result(c, pb.restarts == 0 && pa.restarts == 4 && pa.pid != pb.pid && pb.pid > 0,
               "isolation: VM B's own worker untouched",
               "VM A worker pid %d restarted %llu times, VM B worker pid %d %llu times", pa.pid,
               (unsigned long long)pa.restarts, pb.pid, (unsigned long long)pb.restarts);
    }
    /* Each VM has its own worker and context: A's fault costs B nothing. */
    result(c, st == VGPU_S_GPU_FAULT && g.other == 0 && g.wrong == 0 && g.failed_after == 0 &&
              g.faulted == 0 && g.ok > 0, "recovery: VM B busy meanwhile",
           "A: %s; B: %u ok, %u failed with the fault (allowed), %u failed after it, "
           "%u other errors, %u wrong results", vgpu_status_name(st), g.ok, g.faulted,
           g.failed_after, g.other, g.wrong);
    test_vector_add(c, sa, &a, 1ull << 20, false);
    c->gops->health(c->gpu, health, sizeof(health));
    r1 = proxy_restarts(c);
    result(c, r1 == 4 && strstr(health, "restarts 4") != NULL, "recovery: worker restarts",
           "%llu (want 4); health: %s", (unsigned long long)r1, health);
out:
    if (sa) {
        c->gops->session_close(c->gpu, sa);
    }
    if (sb) {
        c->gops->session_close(c->gpu, sb);
    }
    c->gops->fini(px);
    c->gops = saved_ops;
    c->gpu = saved;
    shm_destroy(&a);
    shm_destroy(&b);
}

/* A second backend instance whose cuBLAS is gone: SGEMM degrades, the rest
 * does not. (Instances share the device context; nothing here resets it.) */
static void test_no_cublas(struct ctx *c, const struct vgpu_backend_config *cfg)
{
    struct vgpu_backend *saved = c->gpu, *b2 = NULL;
    struct vgpu_backend_session *s2 = NULL;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_SGEMM };
    const uint64_t a = VGPU_SHM_DATA_OFFSET;
    const char *why = NULL;
    char health[512];
    uint64_t res;
    int st;

    if (c->gops->init(cfg, &b2, &why) < 0 || vgpu_cuda_test_drop_cublas(b2) < 0 ||
        c->gops->session_open(b2, 20, -1, &c->main_shm.v, &s2) < 0) {
        result(c, false, "no cuBLAS: setup", "%s", why ? why : "failed");
        goto out;
    }
    c->gpu = b2;
    sqe.args.sgemm = (struct vgpu_args_sgemm){ .a_off = a, .b_off = a + 4096,
                                               .c_off = a + 8192, .m = 8, .n = 8, .k = 8,
                                               .alpha = 1.0f };
    st = run_gpu(c, s2, &c->main_shm, &sqe, &res, NULL);
    c->gops->health(b2, health, sizeof(health));
    result(c, st == VGPU_S_NOT_SUPPORTED && strstr(health, "SGEMM not supported"),
           "no cuBLAS: sgemm not supported", "%s; health: %s", vgpu_status_name(st), health);
    test_sgemm(c, s2, &c->main_shm, 64, 64, 64, 0.0f, 0.5f);   /* no BLAS needed */
    test_vector_add(c, s2, &c->main_shm, 1000003, false);
out:
    c->gpu = saved;
    if (s2) {
        c->gops->session_close(b2, s2);
    }
    c->gops->fini(b2);
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    struct vgpu_backend_config cfg = { .gpu_index = 0, .vm_mem_quota = QUOTA,
                                       .request_timeout_ms = TIMEOUT_MS };
    struct vgpu_cuda_test_stats stats;
    struct ctx c = { .rng = 0x9e3779b97f4a7c15ull, .gops = &vgpu_cuda_engine };
    const char *why = NULL;
    char health[512];
    double t0 = now_ms();
    int r;

    /* The proxy of the recovery tests exec's this binary as its worker. */
    if (argc == 2 && strncmp(argv[1], VGPU_WORKER_ARG, strlen(VGPU_WORKER_ARG)) == 0) {
        return vgpu_cuda_worker_main(argv[1] + strlen(VGPU_WORKER_ARG));
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    r = c.gops->init(&cfg, &c.gpu, &why);
    if (r < 0) {
        printf("no usable GPU: %s (%s)\n", why ? why : "?", strerror(-r));
        printf("0 passed, 0 failed (skipped: no GPU)\n");
        return 77;
    }
    if (vgpu_backend_cpu.init(&cfg, &c.cpu, &why) < 0 ||
        shm_create(&c.main_shm, MAIN_SHM_SIZE, "vgpu-test-main") < 0 ||
        !(c.backup = malloc(MAIN_SHM_SIZE))) {
        printf("setup failed\n0 passed, 1 failed\n");
        return 1;
    }
    r = c.gops->session_open(c.gpu, 1, -1, &c.main_shm.v, &c.gs);
    if (r < 0) {
        printf("session_open: %s\n0 passed, 1 failed\n", strerror(-r));
        return 1;
    }
    vgpu_cuda_test_stats(c.gpu, c.gs, &stats);
    c.gops->health(c.gpu, health, sizeof(health));
    printf("backend: %s\nshared memory registered: %s; cuBLAS: %s\n\n", health,
           stats.registered ? "yes" : "NO (staging)", stats.cublas ? "yes" : "NO");
    printf("%-4s  %-34s %s\n", "", "test", "detail");

    test_nop(&c);
    test_gpu_info(&c);
    sweep(&c, c.gs, &c.main_shm, !quick);
    test_staging(&c);
    test_isolation(&c);
    test_quota(&c);
    test_recovery(&c, &cfg);
    sweep(&c, c.gs, &c.main_shm, false);   /* the in-process VM, after the worker's faults */

    c.gops->session_close(c.gpu, c.gs);
    test_no_cublas(&c, &cfg);   /* after c.gs let go of the shared memory */
    vgpu_cuda_test_stats(c.gpu, NULL, &stats);
    result(&c, stats.backend_mem == 0 && stats.sessions == 0, "teardown: nothing left",
           "%llu bytes of device memory charged, %u sessions",
           (unsigned long long)stats.backend_mem, stats.sessions);
    c.gops->health(c.gpu, health, sizeof(health));
    printf("\nbackend at exit: %s\n", health);
#ifdef VGPU_CUDA_MOCK
    {
        const char *what = "";
        unsigned n = vgpu_mock_misuses(&what), resets = vgpu_mock_resets();

        result(&c, n == 0, "mock: no stale or unknown handle",
               "%u misuses%s%s", n, n ? ", last: " : "", what);
        /* Recovery is the worker's replacement, never a reset in process. */
        result(&c, resets == 0, "mock: no device reset", "%u cudaDeviceReset calls", resets);
    }
#endif

    c.gops->fini(c.gpu);
    vgpu_backend_cpu.fini(c.cpu);
    shm_destroy(&c.main_shm);
    free(c.backup);
    printf("elapsed %.1f s\n%u passed, %u failed\n", (now_ms() - t0) / 1e3, c.passed, c.failed);
    return c.failed ? 1 : 0;
}
