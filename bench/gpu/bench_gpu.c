/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-bench-gpu: the same GPU work done natively in this process and
 * through the mediator, case by case, in one run.
 *
 *   native    pinned host buffers (cudaMallocHost), device buffers allocated
 *             once per case, cudaMemcpyAsync + the very kernels the CUDA
 *             backend launches (mediator/cuda/kernels.cu) or cuBLAS, then
 *             cudaStreamSynchronize. Timed per repetition.
 *   mediated  libvgpu's sim transport -> vgpu-mediator (--backend cuda) ->
 *             GPU: one vgpu_call() per repetition at queue depth 1, timed
 *             around the call (the full round trip the guest sees). The
 *             operands live in the client's shared memory, which the
 *             backend has cudaHostRegister'ed.
 *
 * Each figure is the median of N repetitions after 3 warm-ups. Cases:
 * vector_add 2^10, 2^20, 2^24 floats; SGEMM 1024 and 4096 (square, beta 0);
 * MEMCPY host->device and round trip, 1 MiB .. 1 GiB. Prints a table and
 * writes JSON (--json FILE).
 *
 * usage: vgpu-bench-gpu --socket PATH [--json FILE] [--quick] [--gpu N] [--spin-us N]
 *   --quick          5 repetitions, no SGEMM 4096 (smoke run; not reportable)
 *   --mediated-only  skip the native side and accept any backend (to check
 *                    the harness against a cpu mediator on a GPU-less host)
 *   --spin-us N      the client's spin cap (vgpu_open_opts.spin_us; 0: off);
 *                    default libvgpu's. Printed in the table header and JSON.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "vgpu/abi.h"
#include "vgpu/libvgpu.h"

#include "cublas_loader.h"
#include "kernels.h"

#define WARMUP     3
#define MAX_REPS   400
#define WAIT_MS    60000
#define SHM_SIZE   ((2ull << 30) + (64ull << 20))  /* 1 GiB round trip + ctrl */

enum kind { K_VADD, K_SGEMM, K_H2D, K_ROUNDTRIP };

struct bcase {
    enum kind kind;
    const char *name;
    const char *size;
    uint64_t n;          /* elements, matrix order, or bytes */
    int reps;
    double target;       /* mediated/native limit, 0: none */
    /* results */
    double native_us, mediated_us, exec_us, ratio;
    double native_gbs, mediated_gbs;  /* copies only */
    const char *error;
};

struct bench {
    cudaStream_t st;
    struct vgpu_cublas cb;
    cublasHandle_t blas;
    int sms;
    struct vgpu_dev *dev;
    char gpu_name[64];
    int driver, runtime;
    int spin_us;         /* vgpu_open_opts.spin_us: 0 default, < 0 never */
    char spin_text[96];  /* the client's spin setting, for the report */
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void fill(float *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        p[i] = (float)(i % 1024) * (1.0f / 1024.0f);
    }
}

/* Bytes of shared memory / host and device buffers a case needs, per operand. */
static uint64_t operand_bytes(const struct bcase *c)
{
    switch (c->kind) {
    case K_VADD:
        return c->n * 4;
    case K_SGEMM:
        return c->n * c->n * 4;
    default:
        return c->n;
    }
}

/* ------------------------------------------------------------------------ */

#define CK(expr)                                                              \
    do {                                                                      \
        cudaError_t e_ = (expr);                                              \
        if (e_ != cudaSuccess) {                                              \
            c->error = cudaGetErrorString(e_);                                \
            goto out;                                                         \
        }                                                                     \
    } while (0)

static void run_native(struct bench *b, struct bcase *c)
{
    uint64_t bytes = operand_bytes(c);
    void *h[3] = { NULL, NULL, NULL }, *d[3] = { NULL, NULL, NULL };
    double t[MAX_REPS];
    unsigned nops = c->kind == K_H2D ? 1 : c->kind == K_ROUNDTRIP ? 2 : 3;

    for (unsigned i = 0; i < nops; i++) {
        CK(cudaMallocHost(&h[i], bytes));
        CK(cudaMalloc(&d[i], bytes));
        if (c->kind == K_VADD || c->kind == K_SGEMM) {
            fill(h[i], bytes / 4);
        } else {
            memset(h[i], 0x3c, bytes);
        }
    }
    for (int r = -WARMUP; r < c->reps; r++) {
        double t0 = now_us();

        switch (c->kind) {
        case K_VADD:
            CK(cudaMemcpyAsync(d[0], h[0], bytes, cudaMemcpyHostToDevice, b->st));
            CK(cudaMemcpyAsync(d[1], h[1], bytes, cudaMemcpyHostToDevice, b->st));
            CK(vgpu_k_vector_add(d[0], d[1], d[2], c->n, b->sms, b->st));
            CK(cudaMemcpyAsync(h[2], d[2], bytes, cudaMemcpyDeviceToHost, b->st));
            break;
        case K_SGEMM:
            if (!b->cb.dl) {
                c->error = "cuBLAS not available";
                goto out;
            }
            CK(cudaMemcpyAsync(d[0], h[0], bytes, cudaMemcpyHostToDevice, b->st));
            CK(cudaMemcpyAsync(d[1], h[1], bytes, cudaMemcpyHostToDevice, b->st));
            if (vgpu_cublas_sgemm_rowmajor(&b->cb, b->blas, (int)c->n, (int)c->n, (int)c->n,
                                           1.0f, d[0], d[1], 0.0f, d[2]) !=
                CUBLAS_STATUS_SUCCESS) {
                c->error = "cublasSgemm failed";
                goto out;
            }
            CK(cudaMemcpyAsync(h[2], d[2], bytes, cudaMemcpyDeviceToHost, b->st));
            break;
        case K_H2D:
            CK(cudaMemcpyAsync(d[0], h[0], bytes, cudaMemcpyHostToDevice, b->st));
            break;
        case K_ROUNDTRIP:
            CK(cudaMemcpyAsync(d[0], h[0], bytes, cudaMemcpyHostToDevice, b->st));
            CK(cudaMemcpyAsync(h[1], d[0], bytes, cudaMemcpyDeviceToHost, b->st));
            break;
        }
        CK(cudaStreamSynchronize(b->st));
        if (r >= 0) {
            t[r] = now_us() - t0;
        }
    }
    c->native_us = median(t, c->reps);
out:
    for (unsigned i = 0; i < 3; i++) {
        cudaFreeHost(h[i]);
        cudaFree(d[i]);
    }
    (void)cudaGetLastError();
}

static void run_mediated(struct bench *b, struct bcase *c)
{
    uint64_t bytes = operand_bytes(c), off[3];
    struct vgpu_sqe sqe = { 0 };
    struct vgpu_cqe cqe;
    double t[MAX_REPS], ex[MAX_REPS];
    unsigned nops = c->kind == K_H2D ? 1 : c->kind == K_ROUNDTRIP ? 2 : 3;
    int r;

    if (!b->dev) {
        c->error = c->error ? c->error : "no mediator";
        return;
    }
    vgpu_free_all(b->dev);
    for (unsigned i = 0; i < nops; i++) {
        r = vgpu_alloc(b->dev, bytes, 4096, &off[i]);
        if (r < 0) {
            c->error = "vgpu_alloc: shared memory too small";
            return;
        }
        if (c->kind == K_VADD || c->kind == K_SGEMM) {
            fill(vgpu_ptr(b->dev, off[i]), bytes / 4);
        } else {
            memset(vgpu_ptr(b->dev, off[i]), 0x3c, bytes);
        }
    }
    switch (c->kind) {
    case K_VADD:
        sqe.opcode = VGPU_OP_VECTOR_ADD;
        sqe.args.vector_add = (struct vgpu_args_vector_add){ .a_off = off[0], .b_off = off[1],
                                                             .out_off = off[2], .n = c->n };
        break;
    case K_SGEMM:
        sqe.opcode = VGPU_OP_SGEMM;
        sqe.args.sgemm = (struct vgpu_args_sgemm){ .a_off = off[0], .b_off = off[1],
                                                   .c_off = off[2], .m = (uint32_t)c->n,
                                                   .n = (uint32_t)c->n, .k = (uint32_t)c->n,
                                                   .alpha = 1.0f, .beta = 0.0f };
        break;
    case K_H2D:
        sqe.opcode = VGPU_OP_MEMCPY;
        sqe.args.memcpy = (struct vgpu_args_memcpy){ .src_off = off[0], .len = c->n,
                                                     .mode = VGPU_MEMCPY_H2D };
        break;
    case K_ROUNDTRIP:
        sqe.opcode = VGPU_OP_MEMCPY;
        sqe.args.memcpy = (struct vgpu_args_memcpy){ .src_off = off[0], .dst_off = off[1],
                                                     .len = c->n,
                                                     .mode = VGPU_MEMCPY_ROUNDTRIP };
        break;
    }
    for (int i = -WARMUP; i < c->reps; i++) {
        double t0 = now_us();

        r = vgpu_call(b->dev, &sqe, &cqe, WAIT_MS);
        if (r < 0) {
            c->error = "vgpu_call failed (link?)";
            return;
        }
        if (cqe.status != VGPU_S_OK) {
            c->error = vgpu_status_name(cqe.status);
            return;
        }
        if (i >= 0) {
            t[i] = now_us() - t0;
            ex[i] = cqe.exec_us;
        }
    }
    c->mediated_us = median(t, c->reps);
    c->exec_us = median(ex, c->reps);
}

static int open_mediator(struct bench *b, const char *sock, bool any_backend)
{
    struct vgpu_open_opts o = {
        .transport = "sim", .socket_path = sock, .shm_size = SHM_SIZE,
        .vm_id = (uint32_t)getpid(), .priority = 0, .weight = 1,
        .vm_name = "bench-gpu", .link_timeout_ms = 30000, .spin_us = b->spin_us,
    };
    struct vgpu_dev_info info;
    int r = vgpu_open(&o, &b->dev);

    if (r < 0) {
        fprintf(stderr, "vgpu-bench-gpu: connecting to %s: %s\n", sock, vgpu_strerror(r));
        b->dev = NULL;
        return r;
    }
    if (vgpu_get_info(b->dev, &info) == 0) {
        printf("mediator: backend %s, GPU \"%s\", session %u\n",
               info.backend == VGPU_BACKEND_CUDA ? "cuda" : "NOT CUDA", info.gpu_name,
               info.session_id);
        if (info.backend != VGPU_BACKEND_CUDA && !any_backend) {
            fprintf(stderr, "vgpu-bench-gpu: the mediator is not on the cuda backend\n");
            vgpu_close(b->dev);
            b->dev = NULL;
            return -ENODEV;
        }
    }
    return 0;
}

static void write_json(const char *path, const struct bench *b, const struct bcase *cs,
                       unsigned n)
{
    FILE *f = fopen(path, "w");
    char date[32];
    time_t now = time(NULL);

    if (!f) {
        fprintf(stderr, "vgpu-bench-gpu: %s: %s\n", path, strerror(errno));
        return;
    }
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f, "{\n  \"date\": \"%s\",\n  \"gpu\": \"%s\",\n  \"driver_version\": %d,\n"
            "  \"runtime_version\": %d,\n  \"method\": \"median of N repetitions after %d "
            "warm-ups; mediated = vgpu_call round trip through vgpu-mediator --backend cuda "
            "(sim transport, queue depth 1); native = same kernels/cuBLAS in process, pinned "
            "host memory\",\n  \"client_spin\": \"%s\",\n  \"cases\": [\n", date, b->gpu_name,
            b->driver, b->runtime, WARMUP, b->spin_text);
    for (unsigned i = 0; i < n; i++) {
        const struct bcase *c = &cs[i];
        fprintf(f, "    {\"op\": \"%s\", \"size\": \"%s\", \"n\": %llu, \"reps\": %d, "
                "\"native_us\": %.2f, \"mediated_us\": %.2f, \"mediated_exec_us\": %.1f, "
                "\"ratio\": %.4f, \"target_ratio\": %.2f, \"native_gbps\": %.3f, "
                "\"mediated_gbps\": %.3f, \"error\": %s%s%s}%s\n",
                c->name, c->size, (unsigned long long)c->n, c->reps, c->native_us,
                c->mediated_us, c->exec_us, c->ratio, c->target, c->native_gbs,
                c->mediated_gbs, c->error ? "\"" : "", c->error ? c->error : "null",
                c->error ? "\"" : "", i + 1 < n ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
    printf("wrote %s\n", path);
}

int main(int argc, char **argv)
{
#define CASE(k, nm, sz, num, r, tgt) \
    { .kind = (k), .name = (nm), .size = (sz), .n = (num), .reps = (r), .target = (tgt) }
    static struct bcase cases[] = {
        CASE(K_VADD, "vector_add", "2^10", 1u << 10, 300, 0),
        CASE(K_VADD, "vector_add", "2^20", 1u << 20, 200, 1.15),
        CASE(K_VADD, "vector_add", "2^24", 1u << 24, 40, 0),
        CASE(K_SGEMM, "sgemm", "1024", 1024, 50, 0),
        CASE(K_SGEMM, "sgemm", "4096", 4096, 10, 0),
        CASE(K_H2D, "memcpy_h2d", "1MiB", 1ull << 20, 200, 0),
        CASE(K_H2D, "memcpy_h2d", "4MiB", 4ull << 20, 100, 0),
        CASE(K_H2D, "memcpy_h2d", "16MiB", 16ull << 20, 50, 0),
        CASE(K_H2D, "memcpy_h2d", "64MiB", 64ull << 20, 20, 0),
        CASE(K_H2D, "memcpy_h2d", "256MiB", 256ull << 20, 10, 0),
        CASE(K_H2D, "memcpy_h2d", "1GiB", 1ull << 30, 6, 1 / 0.9),
        CASE(K_ROUNDTRIP, "memcpy_roundtrip", "1MiB", 1ull << 20, 200, 0),
        CASE(K_ROUNDTRIP, "memcpy_roundtrip", "16MiB", 16ull << 20, 50, 0),
        CASE(K_ROUNDTRIP, "memcpy_roundtrip", "256MiB", 256ull << 20, 10, 0),
        CASE(K_ROUNDTRIP, "memcpy_roundtrip", "1GiB", 1ull << 30, 6, 0),
    };
#undef CASE
    const unsigned ncases = sizeof(cases) / sizeof(cases[0]);
    const char *sock = NULL, *json = NULL;
    struct bench b = { 0 };
    struct cudaDeviceProp prop;
    bool quick = false, mediated_only = false;
    int gpu = 0, failed = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            sock = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            json = argv[++i];
        } else if (strcmp(argv[i], "--gpu") == 0 && i + 1 < argc) {
            gpu = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--mediated-only") == 0) {
            mediated_only = true;
        } else if (strcmp(argv[i], "--spin-us") == 0 && i + 1 < argc) {
            int v = atoi(argv[++i]);
            b.spin_us = v > 0 ? v : -1;
        } else {
            fprintf(stderr, "usage: %s --socket PATH [--json FILE] [--quick] [--gpu N]"
                    " [--spin-us N]\n", argv[0]);
            return 2;
        }
    }
    if (b.spin_us > 0) {
        snprintf(b.spin_text, sizeof(b.spin_text), "cap %d us (--spin-us)", b.spin_us);
    } else if (b.spin_us < 0) {
        snprintf(b.spin_text, sizeof(b.spin_text), "off (--spin-us 0)");
    } else {
        const char *env = getenv("VGPU_SPIN_US");
        snprintf(b.spin_text, sizeof(b.spin_text),
                 "libvgpu default (VGPU_SPIN_US=%.16s, %ld online CPUs)",
                 env ? env : "unset", sysconf(_SC_NPROCESSORS_ONLN));
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    if (mediated_only) {
        snprintf(b.gpu_name, sizeof(b.gpu_name), "none (mediated only)");
    } else if (cudaSetDevice(gpu) != cudaSuccess ||
               cudaGetDeviceProperties(&prop, gpu) != cudaSuccess ||
               cudaStreamCreateWithFlags(&b.st, cudaStreamNonBlocking) != cudaSuccess) {
        fprintf(stderr, "vgpu-bench-gpu: no usable GPU %d: %s\n", gpu,
                cudaGetErrorString(cudaGetLastError()));
        return 1;
    } else {
        snprintf(b.gpu_name, sizeof(b.gpu_name), "%.63s", prop.name);
        b.sms = prop.multiProcessorCount;
        cudaDriverGetVersion(&b.driver);
        cudaRuntimeGetVersion(&b.runtime);
        if (vgpu_cublas_load(&b.cb) == 0 &&
            (b.cb.create(&b.blas) != CUBLAS_STATUS_SUCCESS ||
             b.cb.set_stream(b.blas, b.st) != CUBLAS_STATUS_SUCCESS)) {
            snprintf(b.cb.path, sizeof(b.cb.path), "loaded, but cublasCreate failed");
            vgpu_cublas_unload(&b.cb);
        }
        printf("native: %s, %d SMs, driver %d, runtime %d, cuBLAS: %s\n", b.gpu_name, b.sms,
               b.driver, b.runtime, b.cb.path);
    }
    if (sock) {
        open_mediator(&b, sock, mediated_only);
    }

    printf("client spin: %s\n", b.spin_text);
    printf("\n%-17s %-7s %5s %12s %12s %10s %8s %10s %10s  %s\n", "op", "size", "reps",
           "native us", "mediated us", "exec us", "ratio", "nat GB/s", "med GB/s", "target");
    for (unsigned i = 0; i < ncases; i++) {
        struct bcase *c = &cases[i];
        char verdict[48] = "";
        double bytes = (double)c->n;

        if (quick && c->reps > 5) {
            c->reps = 5;
        }
        if (quick && c->kind == K_SGEMM && c->n > 1024) {
            c->error = "skipped (--quick)";
            continue;
        }
        if (mediated_only) {
            c->native_us = 1;   /* ratios below are meaningless */
        } else {
            run_native(&b, c);
        }
        if (!c->error) {
            run_mediated(&b, c);
        }
        if (c->error) {
            printf("%-17s %-7s error: %s\n", c->name, c->size, c->error);
            failed++;
            continue;
        }
        c->ratio = c->mediated_us / c->native_us;
        if (c->kind == K_H2D || c->kind == K_ROUNDTRIP) {
            c->native_gbs = bytes / (c->native_us * 1e3);
            c->mediated_gbs = bytes / (c->mediated_us * 1e3);
        }
        if (c->target > 0) {
            snprintf(verdict, sizeof(verdict), "%s (<= %.3fx)",
                     c->ratio <= c->target ? "MET" : "MISSED", c->target);
        }
        printf("%-17s %-7s %5d %12.1f %12.1f %10.1f %7.3fx %10.2f %10.2f  %s\n", c->name,
               c->size, c->reps, c->native_us, c->mediated_us, c->exec_us, c->ratio,
               c->native_gbs, c->mediated_gbs, verdict);
    }
    if (json) {
        write_json(json, &b, cases, ncases);
    }
    vgpu_close(b.dev);
    if (b.cb.dl) {
        b.cb.destroy(b.blas);
        vgpu_cublas_unload(&b.cb);
    }
    if (b.st) {
        cudaStreamDestroy(b.st);
    }
    return failed ? 1 : 0;
}
