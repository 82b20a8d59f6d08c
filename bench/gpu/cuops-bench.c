/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The driver operations (VGPU_OP_CU_*) native vs mediated, side by side in
 * one run on one GPU: the same module (tests/gpu/cuops_kernels.cu as a
 * fatbin), the same work, once with the driver API in this process and once
 * through a running vgpu-mediator (sim transport, the VM's own worker).
 *
 *   launch_async_*_per_s   empty kernel, LAUNCHES launches on one stream, one sync
 *   launch_sync_*_us       launch + stream sync, p50 (and p99)
 *   h2d_*_gbs              256 MiB host -> device: native from cuMemHostAlloc
 *                          memory, mediated from the VM's shared memory
 *   isolation_*_p99_us     a VM's launch + sync p99 alone, then beside a VM
 *                          running 100 ms kernels back to back (failures counted)
 *
 * usage: cuops-bench --socket PATH --image FATBIN --json OUT [--gpu N] [--quick]
 *                    [--mediated-only]
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda.h>

#include "vgpu/libvgpu.h"

#define H2D_BYTES   (256ull << 20)
#define SHM_BYTES   (H2D_BYTES + (64ull << 20))

static unsigned launches = 100000, sync_iters = 2000;
static double iso_seconds = 4.0;
static const char *sock, *image_path;
static void *image;
static size_t image_len;
static int gpu;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double quantile(double *v, unsigned n, double q)
{
    qsort(v, n, sizeof(*v), cmp_d);
    return n ? v[(unsigned)((n - 1) * q)] : 0;
}

#define CK(x)                                                                    \
    do {                                                                         \
        CUresult r_ = (x);                                                       \
        if (r_ != CUDA_SUCCESS) {                                                \
            const char *s_ = NULL;                                               \
            cuGetErrorName(r_, &s_);                                             \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, s_);      \
            exit(1);                                                             \
        }                                                                        \
    } while (0)

/* ---- native ---- */

struct native {
    double async_per_s, sync_p50_us, sync_p99_us, h2d_gbs;
};

static void run_native(struct native *out)
{
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUfunction empty;
    CUdeviceptr d;
    void *h;
    double t0, *lat = calloc(sync_iters, sizeof(double)), best = 0;

    CK(cuInit(0));
    CK(cuDeviceGet(&dev, gpu));
    CK(cuDevicePrimaryCtxRetain(&ctx, dev));
    CK(cuCtxSetCurrent(ctx));
    CK(cuModuleLoadData(&mod, image));
    CK(cuModuleGetFunction(&empty, mod, "empty"));
    /* warm up */
    for (unsigned i = 0; i < 1000; i++) {
        CK(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
    }
    CK(cuStreamSynchronize(NULL));
    t0 = now_s();
    for (unsigned i = 0; i < launches; i++) {
        CK(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
    }
    CK(cuStreamSynchronize(NULL));
    out->async_per_s = launches / (now_s() - t0);
    for (unsigned i = 0; i < sync_iters; i++) {
        t0 = now_s();
        CK(cuLaunchKernel(empty, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL));
        CK(cuStreamSynchronize(NULL));
        lat[i] = (now_s() - t0) * 1e6;
    }
    out->sync_p50_us = quantile(lat, sync_iters, 0.50);
    out->sync_p99_us = quantile(lat, sync_iters, 0.99);
    CK(cuMemHostAlloc(&h, H2D_BYTES, 0));
    CK(cuMemAlloc(&d, H2D_BYTES));
    memset(h, 1, H2D_BYTES);
    for (unsigned rep = 0; rep < 5; rep++) {
        double gbs;

        t0 = now_s();
        CK(cuMemcpyHtoDAsync(d, h, H2D_BYTES, NULL));
        CK(cuStreamSynchronize(NULL));
        gbs = H2D_BYTES / (now_s() - t0) / 1e9;
        best = gbs > best ? gbs : best;
    }
    out->h2d_gbs = best;
    CK(cuMemFree(d));
    CK(cuMemFreeHost(h));
    CK(cuModuleUnload(mod));
    CK(cuDevicePrimaryCtxRelease(dev));
    free(lat);
}

/* ---- mediated (raw rings: the host-side ABI itself) ---- */

struct vm {
    struct vgpu_dev *dev;
    uint32_t module, empty, spin;
    uint64_t scratch, tag;
    unsigned inflight;
    unsigned failed;        /* completions not ok */
};

static void reap(struct vm *v, unsigned keep)
{
    struct vgpu_cqe c;

    /* A request's failure counts in v->failed (the sync's: a kept error). */

    while (v->inflight > keep) {
        if (vgpu_wait(v->dev, &c, 30000) < 0) {
            fprintf(stderr, "vgpu_wait failed\n");
            exit(1);
        }
        v->inflight--;
        if (c.status != VGPU_S_OK) {
            v->failed++;
        }
    }
}

static void submit(struct vm *v, struct vgpu_sqe *s)
{
    s->tag = (uint32_t)++v->tag;
    s->user_data = v->tag;
    while (vgpu_submit(v->dev, s) == -EAGAIN) {
        vgpu_kick(v->dev);
        reap(v, v->inflight ? v->inflight - 1 : 0);
    }
    v->inflight++;
}

/* Waits for everything in flight, then runs s synchronously. */
static struct vgpu_cqe call(struct vm *v, uint16_t op, const void *args, size_t len)
{
    struct vgpu_sqe s;
    struct vgpu_cqe c;

    memset(&s, 0, sizeof(s));
    s.opcode = op;
    memcpy(s.args.raw, args, len);
    vgpu_kick(v->dev);
    reap(v, 0);
    s.tag = (uint32_t)++v->tag;
    s.user_data = v->tag;
    if (vgpu_call(v->dev, &s, &c, 60000) < 0) {
        fprintf(stderr, "vgpu_call %s failed\n", vgpu_op_name(op));
        exit(1);
    }
    return c;
}

static uint32_t function(struct vm *v, const char *name)
{
    struct vgpu_args_cu_symbol a = { .module = v->module, .name_off = v->scratch,
                                     .name_len = (uint32_t)strlen(name) + 1,
                                     .out_off = v->scratch + 4096, .out_len = 4096 };
    struct vgpu_cqe c;

    memcpy(vgpu_ptr(v->dev, v->scratch), name, strlen(name) + 1);
    c = call(v, VGPU_OP_CU_MODULE_GET_FUNCTION, &a, sizeof(a));
    if (c.status != VGPU_S_OK) {
        fprintf(stderr, "get function %s: %s\n", name, vgpu_status_name(c.status));
        exit(1);
    }
    return (uint32_t)c.result;
}

static void vm_open(struct vm *v, uint32_t vm_id, uint64_t shm)
{
    struct vgpu_open_opts o = { .transport = "sim", .socket_path = sock, .shm_size = shm,
                                .vm_id = vm_id, .weight = 1 };
    struct vgpu_args_cu_module_load ml = { 0 };
    struct vgpu_cqe c;
    uint64_t img;
    int r;

    memset(v, 0, sizeof(*v));
    if ((r = vgpu_open(&o, &v->dev)) < 0) {
        fprintf(stderr, "vgpu_open: %s (%s)\n", vgpu_strerror(r), vgpu_open_detail());
        exit(1);
    }
    if (vgpu_alloc(v->dev, 1u << 20, 4096, &v->scratch) < 0 ||
        vgpu_alloc(v->dev, image_len, 4096, &img) < 0) {
        fprintf(stderr, "shared memory too small\n");
        exit(1);
    }
    memcpy(vgpu_ptr(v->dev, img), image, image_len);
    ml.image_off = img;
    ml.image_len = image_len;
    c = call(v, VGPU_OP_CU_MODULE_LOAD, &ml, sizeof(ml));
    if (c.status != VGPU_S_OK) {
        fprintf(stderr, "module load: %s (%" PRIu64 ")\n", vgpu_status_name(c.status), c.result);
        exit(1);
    }
    v->module = (uint32_t)c.result;
    v->empty = function(v, "empty");
    v->spin = function(v, "spin");
}

static void launch(struct vm *v, uint32_t f, const void *params, uint32_t len)
{
    struct vgpu_sqe s;

    memset(&s, 0, sizeof(s));
    s.opcode = VGPU_OP_CU_LAUNCH;
    s.args.cu_launch.func = f;
    s.args.cu_launch.grid[0] = s.args.cu_launch.grid[1] = s.args.cu_launch.grid[2] = 1;
    s.args.cu_launch.block[0] = s.args.cu_launch.block[1] = s.args.cu_launch.block[2] = 1;
    if (len) {
        /* Its own slot per launch in flight would be needed for varying
         * parameters; these are constant, one slot serves them all. */
        memcpy(vgpu_ptr(v->dev, v->scratch + 8192), params, len);
        s.args.cu_launch.params_off = v->scratch + 8192;
        s.args.cu_launch.params_len = len;
    }
    submit(v, &s);
}

static int stream_sync(struct vm *v)
{
    struct vgpu_args_cu_handle h = { 0 };

    return call(v, VGPU_OP_CU_STREAM_SYNC, &h, sizeof(h)).status;
}

/*
 * launch + sync for `seconds` (0: n times); latencies into lat (cap n). As a
 * driver-API program's cuLaunchKernel + cuStreamSynchronize go through the
 * guest library: both requests queued, one doorbell, then the sync waited for.
 */
static unsigned sync_loop(struct vm *v, double seconds, double *lat, unsigned n,
                          unsigned *failed)
{
    unsigned i = 0;
    double end = now_s() + seconds;

    while (i < n && (seconds == 0 || now_s() < end)) {
        double t0 = now_s();
        struct vgpu_sqe s;

        launch(v, v->empty, NULL, 0);
        memset(&s, 0, sizeof(s));
        s.opcode = VGPU_OP_CU_STREAM_SYNC;
        submit(v, &s);
        vgpu_kick(v->dev);
        reap(v, 0);
        lat[i++] = (now_s() - t0) * 1e6;
        if (seconds == 0 && i == n) {
            break;
        }
    }
    *failed += v->failed;
    v->failed = 0;
    return i;
}

struct neighbour {
    pthread_t thread;
    int stop;
    unsigned kernels, failed;
};

static void *neighbour_main(void *arg)
{
    struct neighbour *nb = arg;
    struct vm v;
    uint64_t ns = 100ull * 1000 * 1000;

    vm_open(&v, 902, 64ull << 20);
    while (!__atomic_load_n(&nb->stop, __ATOMIC_ACQUIRE)) {
        launch(&v, v.spin, &ns, sizeof(ns));
        vgpu_kick(v.dev);
        if (stream_sync(&v) != VGPU_S_OK) {
            nb->failed++;
        }
        nb->kernels++;
    }
    vgpu_close(v.dev);
    return NULL;
}

struct mediated {
    double async_per_s, sync_p50_us, sync_p99_us, h2d_gbs;
    double iso_alone_p99_us, iso_neigh_p99_us, iso_neigh_p50_us;
    unsigned iso_failed, neighbour_kernels, neighbour_failed, failed;
};

static void run_mediated(struct mediated *out)
{
    struct vm v;
    struct vgpu_args_cu_mem am = { .bytes = H2D_BYTES };
    struct vgpu_args_cu_memcpy cp;
    struct neighbour nb;
    uint64_t src, d;
    unsigned n, cap = 400000;
    double t0, *lat = calloc(cap, sizeof(double)), best = 0;
    struct vgpu_cqe c;

    vm_open(&v, 901, SHM_BYTES);
    for (unsigned i = 0; i < 1000; i++) {
        launch(&v, v.empty, NULL, 0);
    }
    vgpu_kick(v.dev);
    stream_sync(&v);
    t0 = now_s();
    for (unsigned i = 0; i < launches; i++) {
        launch(&v, v.empty, NULL, 0);
        if ((i & 31) == 31) {
            vgpu_kick(v.dev);
        }
    }
    vgpu_kick(v.dev);
    if (stream_sync(&v) != VGPU_S_OK) {
        out->failed++;
    }
    out->async_per_s = launches / (now_s() - t0);
    out->failed += v.failed;
    v.failed = 0;

    n = sync_loop(&v, 0, lat, sync_iters, &out->failed);
    out->sync_p50_us = quantile(lat, n, 0.50);
    out->sync_p99_us = quantile(lat, n, 0.99);

    c = call(&v, VGPU_OP_CU_MEM_ALLOC, &am, sizeof(am));
    d = c.result;
    if (c.status != VGPU_S_OK || vgpu_alloc(v.dev, H2D_BYTES, 1u << 21, &src) < 0) {
        fprintf(stderr, "h2d setup: %s\n", vgpu_status_name(c.status));
        exit(1);
    }
    memset(vgpu_ptr(v.dev, src), 1, H2D_BYTES);
    for (unsigned rep = 0; rep < 5; rep++) {
        double gbs;

        memset(&cp, 0, sizeof(cp));
        cp.dst = d;
        cp.src = src;
        cp.len = H2D_BYTES;
        t0 = now_s();
        c = call(&v, VGPU_OP_CU_MEMCPY_HTOD, &cp, sizeof(cp));
        if (c.status != VGPU_S_OK || stream_sync(&v) != VGPU_S_OK) {
            out->failed++;
        }
        gbs = H2D_BYTES / (now_s() - t0) / 1e9;
        best = gbs > best ? gbs : best;
    }
    out->h2d_gbs = best;

    n = sync_loop(&v, iso_seconds, lat, cap, &out->iso_failed);
    out->iso_alone_p99_us = quantile(lat, n, 0.99);
    memset(&nb, 0, sizeof(nb));
    pthread_create(&nb.thread, NULL, neighbour_main, &nb);
    {
        struct timespec ts = { .tv_nsec = 300000000 };     /* the neighbour is busy */
        nanosleep(&ts, NULL);
    }
    n = sync_loop(&v, iso_seconds, lat, cap, &out->iso_failed);
    out->iso_neigh_p99_us = quantile(lat, n, 0.99);
    out->iso_neigh_p50_us = quantile(lat, n, 0.50);
    __atomic_store_n(&nb.stop, 1, __ATOMIC_RELEASE);
    pthread_join(nb.thread, NULL);
    out->neighbour_kernels = nb.kernels;
    out->neighbour_failed = nb.failed;
    vgpu_close(v.dev);
    free(lat);
}

static int load_image(void)
{
    FILE *f = fopen(image_path, "rb");
    long n;

    if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) < 0) {
        return -1;
    }
    image = calloc(1, (size_t)n + 1);
    if (!image || fread(image, 1, (size_t)n, f) != (size_t)n) {
        return -1;
    }
    image_len = (size_t)n + 1;
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    const char *json = NULL;
    bool native = true;
    struct native nat = { 0 };
    struct mediated med = { 0 };
    FILE *j;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
            sock = argv[++i];
        } else if (!strcmp(argv[i], "--image") && i + 1 < argc) {
            image_path = argv[++i];
        } else if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json = argv[++i];
        } else if (!strcmp(argv[i], "--gpu") && i + 1 < argc) {
            gpu = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--mediated-only")) {
            native = false;     /* e.g. against the mock driver: no libcuda calls */
        } else if (!strcmp(argv[i], "--quick")) {
            launches = 10000;
            sync_iters = 200;
            iso_seconds = 1.0;
        } else {
            fprintf(stderr, "usage: %s --socket PATH --image FATBIN [--json OUT] [--gpu N] "
                            "[--quick]\n", argv[0]);
            return 2;
        }
    }
    if (!sock || !image_path || load_image() < 0) {
        fprintf(stderr, "need --socket and a readable --image\n");
        return 2;
    }
    if (native) {
        run_native(&nat);
    }
    run_mediated(&med);

    printf("%-34s %14s %14s %8s\n", "figure", "native", "mediated", "ratio");
    printf("%-34s %14.0f %14.0f %7.1f%%\n", "async launches per s", nat.async_per_s,
           med.async_per_s, 100.0 * med.async_per_s / nat.async_per_s);
    printf("%-34s %14.1f %14.1f %7.2fx\n", "launch+sync p50 us", nat.sync_p50_us,
           med.sync_p50_us, med.sync_p50_us / nat.sync_p50_us);
    printf("%-34s %14.1f %14.1f %7.2fx\n", "launch+sync p99 us", nat.sync_p99_us,
           med.sync_p99_us, med.sync_p99_us / nat.sync_p99_us);
    printf("%-34s %14.1f %14.1f %7.1f%%\n", "H2D 256 MiB GB/s", nat.h2d_gbs, med.h2d_gbs,
           100.0 * med.h2d_gbs / nat.h2d_gbs);
    printf("isolation: launch+sync p99 alone %.1f us, beside 100 ms kernels %.1f us (p50 %.1f), "
           "failures %u; neighbour ran %u kernels, %u failed; other failures %u\n",
           med.iso_alone_p99_us, med.iso_neigh_p99_us, med.iso_neigh_p50_us, med.iso_failed,
           med.neighbour_kernels, med.neighbour_failed, med.failed);
    if (json && (j = fopen(json, "w"))) {
        fprintf(j, "{\n  \"figures\": {\n");
        fprintf(j, "    \"launch_async_native_per_s\": {\"value\": %.0f, \"unit\": \"1/s\"},\n",
                nat.async_per_s);
        fprintf(j, "    \"launch_async_mediated_per_s\": {\"value\": %.0f, \"unit\": \"1/s\"},\n",
                med.async_per_s);
        fprintf(j, "    \"launch_sync_native_us\": {\"value\": %.2f, \"unit\": \"us\"},\n",
                nat.sync_p50_us);
        fprintf(j, "    \"launch_sync_mediated_us\": {\"value\": %.2f, \"unit\": \"us\"},\n",
                med.sync_p50_us);
        fprintf(j, "    \"launch_sync_native_p99_us\": {\"value\": %.2f, \"unit\": \"us\"},\n",
                nat.sync_p99_us);
        fprintf(j, "    \"launch_sync_mediated_p99_us\": {\"value\": %.2f, \"unit\": \"us\"},\n",
                med.sync_p99_us);
        fprintf(j, "    \"h2d_pinned_native_gbs\": {\"value\": %.2f, \"unit\": \"GB/s\"},\n",
                nat.h2d_gbs);
        fprintf(j, "    \"h2d_shm_mediated_gbs\": {\"value\": %.2f, \"unit\": \"GB/s\"},\n",
                med.h2d_gbs);
        fprintf(j, "    \"isolation_alone_p99_us\": {\"value\": %.1f, \"unit\": \"us\"},\n",
                med.iso_alone_p99_us);
        fprintf(j, "    \"isolation_neighbour_p99_us\": {\"value\": %.1f, \"unit\": \"us\"},\n",
                med.iso_neigh_p99_us);
        fprintf(j, "    \"isolation_neighbour_p50_us\": {\"value\": %.1f, \"unit\": \"us\"},\n",
                med.iso_neigh_p50_us);
        fprintf(j, "    \"isolation_failures\": {\"value\": %u, \"unit\": \"requests\"},\n",
                med.iso_failed + med.failed);
        fprintf(j, "    \"neighbour_kernels_100ms\": {\"value\": %u, \"unit\": \"kernels\"},\n",
                med.neighbour_kernels);
        fprintf(j, "    \"neighbour_failures\": {\"value\": %u, \"unit\": \"requests\"}\n",
                med.neighbour_failed);
        fprintf(j, "  },\n  \"launches\": %u,\n  \"gpu\": %d\n}\n", launches, gpu);
        fclose(j);
    }
    return med.failed || med.iso_failed || med.neighbour_failed ? 1 : 0;
}
