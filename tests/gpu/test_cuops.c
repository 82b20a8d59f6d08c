/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA driver operations (VGPU_OP_CU_*) through the whole mediator: two
 * sim VMs load their own GPU code, manage device memory, streams and events,
 * launch their own kernels and check the results; each VM's handles and
 * device memory are invisible to the other; a VM whose kernel faults or
 * runs past the deadline loses its context (its worker is replaced) while
 * the other VM's checked loop runs on with 0 failures.
 *
 * In CI the mediator is vgpu-mediator-cuda-mock (the mock driver of
 * tests/gpu/mock_cudadrv.c, which reads the text image below); on the GPU
 * host (bench/gpu-run.sh) it is the real mediator, and CUOPS_IMAGE names the
 * PTX or fatbin built from tests/gpu/cuops_kernels.cu.
 *
 * Environment: VGPU_MEDIATOR (the binary), FH_BACKEND=cuda, CUOPS_IMAGE.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "vgpu/libvgpu.h"
#include "../functional/fhelp.h"

#define SHM_SIZE   (64ull << 20)
#define N          (1u << 20)
#define QUOTA_MIB  256u
#define TIMEOUT_MS 2000u

/* CUresult values the tests expect (cuda.h's, which this test does not need). */
#define CU_INVALID_VALUE    1
#define CU_INVALID_IMAGE    200
#define CU_NOT_FOUND        500
#define CU_ILLEGAL_ADDRESS  700

static const char mock_image[] =
    "VGPU-MOCK-MODULE\n"
    "func vadd 8,8,8,4\n"
    "func fill_u32 8,4,8\n"
    "func mixed 1,8,2,4,8\n"
    "func fault 8\n"
    "func spin 8\n"
    "func bump 4\n"
    "func empty -\n"
    "global g_counter 4\n";

static uint8_t *image;
static size_t image_len;
static const char *sock;

struct vm {
    struct vgpu_dev *dev;
    uint32_t vm_id;
    uint64_t scratch;           /* 1 MiB of small things: names, params, outputs */
    uint64_t a, b, c;           /* N floats each */
    uint32_t module;
    uint32_t f_vadd, f_mixed, f_fault, f_spin, f_bump, f_fill;
    uint64_t d_a, d_b, d_c;
    uint64_t tag;
};

static struct vgpu_cqe call(struct vm *v, struct vgpu_sqe *s)
{
    struct vgpu_cqe c;
    int r;

    s->tag = (uint32_t)++v->tag;
    s->user_data = v->tag;
    r = vgpu_call(v->dev, s, &c, 30000);
    if (r < 0) {
        memset(&c, 0, sizeof(c));
        c.status = -1;
        fprintf(stderr, "vm %u: %s: vgpu_call: %s\n", v->vm_id, vgpu_op_name(s->opcode),
                vgpu_strerror(r));
    }
    return c;
}

static struct vgpu_sqe sqe_of(uint16_t op)
{
    struct vgpu_sqe s;

    memset(&s, 0, sizeof(s));
    s.opcode = op;
    return s;
}

static uint64_t scratch(struct vm *v, unsigned slot)
{
    return v->scratch + (uint64_t)slot * 4096;
}

static struct vgpu_cqe alloc(struct vm *v, uint64_t bytes, uint64_t *dptr)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MEM_ALLOC);
    struct vgpu_cqe c;

    s.args.cu_mem.bytes = bytes;
    c = call(v, &s);
    *dptr = c.status == VGPU_S_OK ? c.result : 0;
    return c;
}

static struct vgpu_cqe copy(struct vm *v, uint16_t op, uint64_t dst, uint64_t src, uint64_t len,
                            uint32_t stream)
{
    struct vgpu_sqe s = sqe_of(op);

    s.args.cu_memcpy.dst = dst;
    s.args.cu_memcpy.src = src;
    s.args.cu_memcpy.len = len;
    s.args.cu_memcpy.stream = stream;
    return call(v, &s);
}

static struct vgpu_cqe handle_op(struct vm *v, uint16_t op, uint32_t h)
{
    struct vgpu_sqe s = sqe_of(op);

    s.args.cu_handle.handle = h;
    return call(v, &s);
}

/* Function lookup: handle, and its layout in *info / params. */
static struct vgpu_cqe get_function(struct vm *v, const char *name, uint32_t *h,
                                    struct vgpu_cu_func_info *info, struct vgpu_cu_param *params)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MODULE_GET_FUNCTION);
    struct vgpu_cqe c;

    memcpy(vgpu_ptr(v->dev, scratch(v, 0)), name, strlen(name) + 1);
    s.args.cu_symbol.module = v->module;
    s.args.cu_symbol.name_off = scratch(v, 0);
    s.args.cu_symbol.name_len = (uint32_t)strlen(name) + 1;
    s.args.cu_symbol.out_off = scratch(v, 1);
    s.args.cu_symbol.out_len = 4096;
    c = call(v, &s);
    *h = c.status == VGPU_S_OK ? (uint32_t)c.result : 0;
    if (c.status == VGPU_S_OK && info) {
        memcpy(info, vgpu_ptr(v->dev, scratch(v, 1)), sizeof(*info));
        if (params) {
            memcpy(params, (uint8_t *)vgpu_ptr(v->dev, scratch(v, 1)) + sizeof(*info),
                   info->param_count * sizeof(*params));
        }
    }
    return c;
}

/* Launches f on 1-D grid with the packed params at scratch slot `slot`. */
static struct vgpu_cqe launch(struct vm *v, uint32_t f, uint32_t grid, uint32_t block,
                              const void *params, uint32_t len, uint32_t stream, unsigned slot)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_LAUNCH);

    memcpy(vgpu_ptr(v->dev, scratch(v, slot)), params, len);
    s.args.cu_launch.func = f;
    s.args.cu_launch.stream = stream;
    s.args.cu_launch.grid[0] = grid;
    s.args.cu_launch.grid[1] = s.args.cu_launch.grid[2] = 1;
    s.args.cu_launch.block[0] = block;
    s.args.cu_launch.block[1] = s.args.cu_launch.block[2] = 1;
    s.args.cu_launch.params_off = scratch(v, slot);
    s.args.cu_launch.params_len = len;
    return call(v, &s);
}

static struct vgpu_cqe launch_vadd(struct vm *v, uint32_t stream)
{
    uint8_t p[28];
    int n = (int)N;

    memcpy(p, &v->d_a, 8);
    memcpy(p + 8, &v->d_b, 8);
    memcpy(p + 16, &v->d_c, 8);
    memcpy(p + 24, &n, 4);
    /* (N + 255) / 256 = 4096 blocks: whole clusters of 2, not of 3. */
    return launch(v, v->f_vadd, (N + 255) / 256, 256, p, sizeof(p), stream, 2);
}

static int vm_open(struct vm *v, uint32_t vm_id)
{
    struct vgpu_open_opts o = { .transport = "sim", .socket_path = sock, .shm_size = SHM_SIZE,
                                .vm_id = vm_id, .weight = 1 };
    struct vgpu_sqe s;
    struct vgpu_cqe c;
    uint64_t img;
    int r;

    memset(v, 0, sizeof(*v));
    v->vm_id = vm_id;
    r = vgpu_open(&o, &v->dev);
    if (r < 0) {
        return r;
    }
    if (vgpu_alloc(v->dev, 1u << 20, 4096, &v->scratch) < 0 ||
        vgpu_alloc(v->dev, N * 4ull, 4096, &v->a) < 0 ||
        vgpu_alloc(v->dev, N * 4ull, 4096, &v->b) < 0 ||
        vgpu_alloc(v->dev, N * 4ull, 4096, &v->c) < 0 ||
        vgpu_alloc(v->dev, image_len, 4096, &img) < 0) {
        return -ENOMEM;
    }
    memcpy(vgpu_ptr(v->dev, img), image, image_len);
    s = sqe_of(VGPU_OP_CU_MODULE_LOAD);
    s.args.cu_module_load.image_off = img;
    s.args.cu_module_load.image_len = image_len;
    c = call(v, &s);
    if (c.status != VGPU_S_OK) {
        fprintf(stderr, "vm %u: module load: %s (%" PRIu64 ")\n", vm_id,
                vgpu_status_name(c.status), c.result);
        return -EIO;
    }
    v->module = (uint32_t)c.result;
    return 0;
}

/* Functions, buffers and inputs of a VM set up for checked vadds. */
static int vm_prepare(struct vm *v)
{
    float *a = vgpu_ptr(v->dev, v->a), *b = vgpu_ptr(v->dev, v->b);

    if (get_function(v, "vadd", &v->f_vadd, NULL, NULL).status != VGPU_S_OK ||
        get_function(v, "spin", &v->f_spin, NULL, NULL).status != VGPU_S_OK ||
        get_function(v, "fault", &v->f_fault, NULL, NULL).status != VGPU_S_OK ||
        alloc(v, N * 4ull, &v->d_a).status != VGPU_S_OK ||
        alloc(v, N * 4ull, &v->d_b).status != VGPU_S_OK ||
        alloc(v, N * 4ull, &v->d_c).status != VGPU_S_OK) {
        return -EIO;
    }
    for (uint32_t i = 0; i < N; i++) {
        a[i] = (float)(i % 1000) + (float)v->vm_id;
        b[i] = (float)(i % 7) * 0.5f;
    }
    return 0;
}

/* One checked vadd round trip: inputs up, kernel, result down, sync. */
static bool vadd_round(struct vm *v, unsigned seq)
{
    const float *a = vgpu_ptr(v->dev, v->a), *b = vgpu_ptr(v->dev, v->b);
    float *c = vgpu_ptr(v->dev, v->c);
    struct vgpu_cqe r[5];

    memset(c, 0, N * 4ull);
    ((float *)vgpu_ptr(v->dev, v->b))[seq % N] += 1.0f;    /* a new input each round */
    r[0] = copy(v, VGPU_OP_CU_MEMCPY_HTOD, v->d_a, v->a, N * 4ull, 0);
    r[1] = copy(v, VGPU_OP_CU_MEMCPY_HTOD, v->d_b, v->b, N * 4ull, 0);
    r[2] = launch_vadd(v, 0);
    r[3] = copy(v, VGPU_OP_CU_MEMCPY_DTOH, v->c, v->d_c, N * 4ull, 0);
    r[4] = handle_op(v, VGPU_OP_CU_STREAM_SYNC, 0);
    for (unsigned i = 0; i < 5; i++) {
        if (r[i].status != VGPU_S_OK) {
            fprintf(stderr, "vm %u round %u step %u: %s (%" PRIu64 ")\n", v->vm_id, seq, i,
                    vgpu_status_name(r[i].status), r[i].result);
            return false;
        }
    }
    for (uint32_t i = 0; i < N; i++) {
        if (c[i] != a[i] + b[i]) {
            fprintf(stderr, "vm %u round %u: c[%u] = %g, want %g\n", v->vm_id, seq, i, c[i],
                    a[i] + b[i]);
            return false;
        }
    }
    return true;
}

/* ---- the other VM's checked loop, running while one VM misbehaves ---- */

struct loop {
    struct vm *v;
    pthread_t thread;
    int stop;
    unsigned ok, failed;
    uint64_t worst_ms;
};

static void *loop_main(void *arg)
{
    struct loop *l = arg;

    for (unsigned seq = 0; !__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE); seq++) {
        uint64_t t0 = fh_now_ms(), dt;

        if (vadd_round(l->v, seq)) {
            l->ok++;
        } else {
            l->failed++;
        }
        dt = fh_now_ms() - t0;
        l->worst_ms = dt > l->worst_ms ? dt : l->worst_ms;
    }
    return NULL;
}

static void loop_start(struct loop *l, struct vm *v)
{
    memset(l, 0, sizeof(*l));
    l->v = v;
    pthread_create(&l->thread, NULL, loop_main, l);
}

static void loop_stop(struct loop *l)
{
    __atomic_store_n(&l->stop, 1, __ATOMIC_RELEASE);
    pthread_join(l->thread, NULL);
}

static int load_image(void)
{
    const char *path = getenv("CUOPS_IMAGE");
    FILE *f;
    long n;

    if (!path || !*path) {
        image = (uint8_t *)mock_image;
        image_len = sizeof(mock_image);     /* with its NUL, as PTX text needs */
        return 0;
    }
    f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) < 0) {
        fprintf(stderr, "cannot read CUOPS_IMAGE %s\n", path);
        return -1;
    }
    image = malloc((size_t)n + 1);
    if (!image || fread(image, 1, (size_t)n, f) != (size_t)n) {
        return -1;
    }
    image[n] = 0;
    image_len = (size_t)n + 1;
    fclose(f);
    printf("image: %s (%ld bytes)\n", path, n);
    return 0;
}

int main(void)
{
    static const char *const args[] = { "--mem-quota", "256", "--timeout-ms", "2000", NULL };
    struct fh_mediator med;
    struct vgpu_cu_func_info info;
    struct vgpu_cu_param params[8];
    struct vm A, B;
    struct vgpu_sqe s;
    struct vgpu_cqe c;
    struct loop l;
    uint32_t h, stream, ev0, ev1;
    uint64_t d;

    if (load_image() < 0) {
        return 1;
    }
    if (fh_mediator_start(&med, NULL, args) < 0) {
        fprintf(stderr, "mediator did not start\n");
        return 1;
    }
    sock = med.sock;
    CHECK(vm_open(&A, 1) == 0, "VM A attached and loaded its module");
    CHECK(vm_open(&B, 2) == 0, "VM B attached and loaded its module");
    if (!A.module || !B.module) {
        fh_mediator_dump_log(&med, 40);
        goto out;
    }

    /* Device identity, memory as the quota. */
    s = sqe_of(VGPU_OP_CU_DEVICE_INFO);
    s.args.cu_out.out_off = scratch(&A, 3);
    s.args.cu_out.out_len = sizeof(struct vgpu_cu_device_info);
    c = call(&A, &s);
    {
        const struct vgpu_cu_device_info *di = vgpu_ptr(A.dev, scratch(&A, 3));

        CHECK(c.status == VGPU_S_OK && di->name[0] && di->total_mem == (uint64_t)QUOTA_MIB << 20 &&
              di->attrs[75] >= 9 /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */,
              "device info: '%s', total %" PRIu64 " MiB (the quota), cc major %d", di->name,
              di->total_mem >> 20, di->attrs[75]);
    }

    /* Function lookup returns the parameter layout the host driver knows. */
    c = get_function(&A, "mixed", &A.f_mixed, &info, params);
    CHECK(c.status == VGPU_S_OK && info.param_count == 5 && info.param_bytes == 32 &&
          params[0].offset == 0 && params[0].size == 1 && params[1].offset == 8 &&
          params[2].offset == 16 && params[2].size == 2 && params[3].offset == 20 &&
          params[4].offset == 24 && params[4].size == 8,
          "mixed(char, double, short, int, float *): %u params, %u bytes", info.param_count,
          info.param_bytes);
    c = get_function(&A, "vadd", &A.f_vadd, &info, params);
    CHECK(c.status == VGPU_S_OK && info.param_count == 4 && info.param_bytes == 28,
          "vadd: %u params, %u bytes, max threads %d", info.param_count, info.param_bytes,
          info.max_threads);
    c = get_function(&A, "no_such_kernel", &h, NULL, NULL);
    CHECK(c.status == VGPU_S_CUDA_ERROR && c.result == CU_NOT_FOUND,
          "unknown symbol: cuda-error %" PRIu64, c.result);

    /* Handles are per VM: B has looked nothing up, A's function is nothing to B. */
    c = handle_op(&B, VGPU_OP_CU_STREAM_SYNC, A.f_vadd);
    CHECK(c.status == VGPU_S_BAD_ARGS, "a function handle named as a stream: %s",
          vgpu_status_name(c.status));
    {
        uint8_t p[28] = { 0 };
        /* A launch completes once queued; its failure comes with the sync. */
        launch(&B, A.f_vadd, 1, 1, p, sizeof(p), 0, 2);
        c = handle_op(&B, VGPU_OP_CU_STREAM_SYNC, 0);
        CHECK(c.status == VGPU_S_BAD_ARGS, "VM B launching VM A's function: %s at the sync",
              vgpu_status_name(c.status));
        c = handle_op(&B, VGPU_OP_CU_STREAM_SYNC, 0);
        CHECK(c.status == VGPU_S_OK, "the error is reported once: %s",
              vgpu_status_name(c.status));
    }

    /* Fresh device memory reads as zeros. */
    c = alloc(&A, 1u << 20, &d);
    CHECK(c.status == VGPU_S_OK && d, "alloc 1 MiB: %s", vgpu_status_name(c.status));
    memset(vgpu_ptr(A.dev, A.c), 0x5a, 1u << 20);
    copy(&A, VGPU_OP_CU_MEMCPY_DTOH, A.c, d, 1u << 20, 0);
    c = handle_op(&A, VGPU_OP_CU_STREAM_SYNC, 0);
    {
        const uint8_t *p = vgpu_ptr(A.dev, A.c);
        size_t i;

        for (i = 0; i < (1u << 20) && p[i] == 0; i++) {
        }
        CHECK(c.status == VGPU_S_OK && i == (1u << 20), "new device memory reads as zeros");
    }
    /* B cannot name A's memory. */
    c = copy(&B, VGPU_OP_CU_MEMCPY_DTOH, B.c, d, 4096, 0);
    CHECK(c.status == VGPU_S_BAD_RANGE, "VM B copying from VM A's allocation: %s",
          vgpu_status_name(c.status));
    c = copy(&A, VGPU_OP_CU_MEMCPY_DTOH, A.c, d + (1u << 20) - 8, 16, 0);
    CHECK(c.status == VGPU_S_BAD_RANGE, "a copy running past the allocation's end: %s",
          vgpu_status_name(c.status));
    s = sqe_of(VGPU_OP_CU_MEM_FREE);
    s.args.cu_mem.dptr = d;
    CHECK(call(&A, &s).status == VGPU_S_OK, "free");
    CHECK(call(&A, &s).status == VGPU_S_BAD_ARGS, "double free: bad-args");

    /* Quota. */
    c = alloc(&A, (uint64_t)(QUOTA_MIB + 1) << 20, &d);
    CHECK(c.status == VGPU_S_QUOTA, "alloc over the quota: %s", vgpu_status_name(c.status));
    s = sqe_of(VGPU_OP_CU_MEM_GET_INFO);
    c = call(&A, &s);
    CHECK(c.status == VGPU_S_OK && c.result <= (uint64_t)QUOTA_MIB << 20,
          "mem info: %" PRIu64 " MiB free of the quota", c.result >> 20);

    /* Checked kernels. */
    CHECK(vm_prepare(&A) == 0 && vm_prepare(&B) == 0, "both VMs set up vadd");
    CHECK(vadd_round(&A, 0), "VM A: vadd of 2^20 floats, checked");
    CHECK(vadd_round(&B, 0), "VM B: vadd of 2^20 floats, checked");
    {
        uint8_t p[32] = { 0 };
        char ch = 7;
        double dd = 2.5;
        short sh = -3;
        int ii = 123456;
        const float *out = vgpu_ptr(A.dev, A.c);

        memcpy(p, &ch, 1);
        memcpy(p + 8, &dd, 8);
        memcpy(p + 16, &sh, 2);
        memcpy(p + 20, &ii, 4);
        memcpy(p + 24, &A.d_c, 8);
        c = launch(&A, A.f_mixed, 1, 32, p, sizeof(p), 0, 4);
        copy(&A, VGPU_OP_CU_MEMCPY_DTOH, A.c, A.d_c, 16, 0);
        handle_op(&A, VGPU_OP_CU_STREAM_SYNC, 0);
        CHECK(c.status == VGPU_S_OK && out[0] == 7.0f && out[1] == 2.5f && out[2] == -3.0f &&
              out[3] == 123456.0f, "mixed-size parameters arrive intact: %g %g %g %g", out[0],
              out[1], out[2], out[3]);
        launch(&A, A.f_mixed, 1, 32, p, 24, 0, 4);
        c = handle_op(&A, VGPU_OP_CU_STREAM_SYNC, 0);
        CHECK(c.status == VGPU_S_BAD_ARGS,
              "a parameter buffer shorter than the layout: %s at the sync",
              vgpu_status_name(c.status));
        c = launch(&A, A.f_mixed, 1, 2048, p, sizeof(p), 0, 4);
        CHECK(c.status == VGPU_S_TOO_LARGE ||
              (c.status == VGPU_S_CUDA_ERROR && c.result == CU_INVALID_VALUE),
              "2048 threads per block: %s", vgpu_status_name(c.status));
    }

    /* Globals. */
    {
        struct vgpu_sqe g = sqe_of(VGPU_OP_CU_MODULE_GET_GLOBAL);
        const struct vgpu_cu_global *gl = vgpu_ptr(A.dev, scratch(&A, 6));
        uint32_t add = 5;
        uint32_t got;

        memcpy(vgpu_ptr(A.dev, scratch(&A, 5)), "g_counter", 10);
        g.args.cu_symbol.module = A.module;
        g.args.cu_symbol.name_off = scratch(&A, 5);
        g.args.cu_symbol.name_len = 10;
        g.args.cu_symbol.out_off = scratch(&A, 6);
        g.args.cu_symbol.out_len = sizeof(*gl);
        c = call(&A, &g);
        CHECK(c.status == VGPU_S_OK && gl->bytes == 4, "global g_counter: %" PRIu64 " bytes",
              gl->bytes);
        get_function(&A, "bump", &A.f_bump, NULL, NULL);
        launch(&A, A.f_bump, 1, 1, &add, 4, 0, 7);
        launch(&A, A.f_bump, 1, 1, &add, 4, 0, 8);
        copy(&A, VGPU_OP_CU_MEMCPY_DTOH, A.c, gl->dptr, 4, 0);
        c = handle_op(&A, VGPU_OP_CU_STREAM_SYNC, 0);
        memcpy(&got, vgpu_ptr(A.dev, A.c), 4);
        CHECK(c.status == VGPU_S_OK && got == 10, "two kernels added 5 to a global: %u", got);
    }

    /* What Hopper library kernels need: clusters, tensor maps, limits. */
    {
        struct vgpu_sqe la = sqe_of(VGPU_OP_CU_LAUNCH_ATTRS);
        struct vgpu_sqe tm = sqe_of(VGPU_OP_CU_TENSOR_MAP);
        struct vgpu_sqe lim = sqe_of(VGPU_OP_CU_CTX_LIMIT);
        struct vgpu_cu_tensor_map_req *q = vgpu_ptr(A.dev, scratch(&A, 12));
        const uint8_t *map = vgpu_ptr(A.dev, scratch(&A, 13));
        unsigned nonzero = 0;

        la.args.cu_launch_attrs.cluster[0] = 2;
        la.args.cu_launch_attrs.cluster[1] = la.args.cu_launch_attrs.cluster[2] = 1;
        CHECK(call(&A, &la).status == VGPU_S_OK, "launch attributes: a cluster of 2");
        CHECK(vadd_round(&A, 7), "vadd in clusters of 2 blocks, checked");
        la.args.cu_launch_attrs.cluster[0] = 3;     /* the grid is not whole clusters */
        call(&A, &la);
        launch_vadd(&A, 0);
        c = handle_op(&A, VGPU_OP_CU_STREAM_SYNC, 0);
        CHECK(c.status == VGPU_S_CUDA_ERROR, "a grid of partial clusters: cuda-error %" PRIu64
              " at the sync", c.result);
        CHECK(vadd_round(&A, 8), "the attributes were for that launch only");

        memset(q, 0, sizeof(*q));
        q->data_type = 7;           /* CU_TENSOR_MAP_DATA_TYPE_FLOAT32 */
        q->rank = 2;
        q->global_address = A.d_a;
        q->global_dim[0] = q->global_dim[1] = 64;
        q->global_strides[0] = 64 * 4;
        q->box_dim[0] = q->box_dim[1] = 32;
        q->element_strides[0] = q->element_strides[1] = 1;
        memset(vgpu_ptr(A.dev, scratch(&A, 13)), 0, 128);
        tm.args.cu_tensor_map.in_off = scratch(&A, 12);
        tm.args.cu_tensor_map.out_off = scratch(&A, 13);
        c = call(&A, &tm);
        for (unsigned i = 0; i < 128; i++) {
            nonzero += map[i] != 0;
        }
        CHECK(c.status == VGPU_S_OK && nonzero > 0, "a tiled tensor map encoded by the host: %s",
              vgpu_status_name(c.status));
        q->rank = 9;
        CHECK(call(&A, &tm).status == VGPU_S_CUDA_ERROR, "a tensor map of rank 9: cuda-error");

        lim.args.cu_limit.limit = 1;    /* CU_LIMIT_PRINTF_FIFO_SIZE */
        lim.args.cu_limit.set = 1;
        lim.args.cu_limit.value = 4u << 20;
        c = call(&A, &lim);
        CHECK(c.status == VGPU_S_OK && c.result >= (4u << 20),
              "printf FIFO limit set and read back: %" PRIu64, c.result);
    }

    /* Streams and events. */
    s = sqe_of(VGPU_OP_CU_STREAM_CREATE);
    s.args.cu_create.flags = 1;     /* CU_STREAM_NON_BLOCKING */
    c = call(&A, &s);
    stream = (uint32_t)c.result;
    s = sqe_of(VGPU_OP_CU_EVENT_CREATE);
    ev0 = (uint32_t)call(&A, &s).result;
    ev1 = (uint32_t)call(&A, &s).result;
    CHECK(stream && ev0 && ev1 && ev0 != ev1, "a stream and two events");
    {
        struct vgpu_sqe rec = sqe_of(VGPU_OP_CU_EVENT_RECORD);
        uint64_t ns = 50ull * 1000 * 1000, t0;
        struct vgpu_cqe lc;
        float ms;

        rec.args.cu_pair.a = ev0;
        rec.args.cu_pair.b = stream;
        call(&A, &rec);
        t0 = fh_now_ms();
        lc = launch(&A, A.f_spin, 1, 1, &ns, 8, stream, 9);
        CHECK(lc.status == VGPU_S_OK && fh_now_ms() - t0 < 40,
              "a launch completes without waiting for its kernel (%" PRIu64 " ms)",
              fh_now_ms() - t0);
        rec.args.cu_pair.a = ev1;
        call(&A, &rec);
        c = handle_op(&A, VGPU_OP_CU_EVENT_QUERY, ev1);
        CHECK(c.status == VGPU_S_OK && c.result == 1, "event query while the kernel runs: busy");
        c = handle_op(&A, VGPU_OP_CU_EVENT_SYNC, ev1);
        CHECK(c.status == VGPU_S_OK, "event sync");
        s = sqe_of(VGPU_OP_CU_EVENT_ELAPSED);
        s.args.cu_pair.a = ev0;
        s.args.cu_pair.b = ev1;
        c = call(&A, &s);
        memcpy(&ms, &c.result, sizeof(ms));
        CHECK(c.status == VGPU_S_OK && ms >= 45.0f && ms < 1000.0f,
              "elapsed between the events: %.1f ms (kernel of 50 ms)", ms);
        c = handle_op(&A, VGPU_OP_CU_STREAM_DESTROY, stream);
        CHECK(c.status == VGPU_S_OK, "stream destroyed");
        c = handle_op(&A, VGPU_OP_CU_STREAM_SYNC, stream);
        CHECK(c.status == VGPU_S_BAD_ARGS, "a destroyed stream's handle: bad-args");
    }

    /* Images by content hash: a VM's own recent images only. */
    {
        XXH128_hash_t hh = XXH3_128bits(image, image_len);
        struct vgpu_sqe m = sqe_of(VGPU_OP_CU_MODULE_LOAD);
        struct vgpu_cqe c2;
        uint64_t t0;

        m.args.cu_module_load.hash[0] = hh.low64;
        m.args.cu_module_load.hash[1] = hh.high64;
        t0 = fh_now_ms();
        c2 = call(&A, &m);
        CHECK(c2.status == VGPU_S_OK && c2.result && (uint32_t)c2.result != A.module,
              "module loaded again by its hash alone, no image sent (%" PRIu64 " ms)",
              fh_now_ms() - t0);
        c = handle_op(&A, VGPU_OP_CU_MODULE_UNLOAD, (uint32_t)c2.result);
        CHECK(c.status == VGPU_S_OK, "that second module unloaded, the first stays");
        m.args.cu_module_load.hash[0] ^= 1;
        c = call(&A, &m);
        CHECK(c.status == VGPU_S_CUDA_ERROR && c.result == 500,
              "an unknown hash: cuda-error %" PRIu64 " (not found: send the image)", c.result);
        m.args.cu_module_load.image_off = scratch(&A, 14);
        m.args.cu_module_load.image_len = 16;
        memcpy(vgpu_ptr(A.dev, scratch(&A, 14)), image, 16);
        c = call(&A, &m);
        CHECK(c.status == VGPU_S_BAD_ARGS, "an image with another image's hash: %s",
              vgpu_status_name(c.status));
    }

    /* Malformed image. */
    {
        struct vgpu_sqe m = sqe_of(VGPU_OP_CU_MODULE_LOAD);

        memset(vgpu_ptr(A.dev, scratch(&A, 10)), 0x7f, 4096);
        m.args.cu_module_load.image_off = scratch(&A, 10);
        m.args.cu_module_load.image_len = 4096;
        c = call(&A, &m);
        CHECK(c.status == VGPU_S_CUDA_ERROR, "a garbage image: cuda-error %" PRIu64, c.result);
        CHECK(vadd_round(&A, 1), "VM A works on after the bad image");
    }

    /* A faulting kernel ends VM A's context, not VM B's work. */
    loop_start(&l, &B);
    {
        uint64_t p = A.d_a;
        uint64_t t0;

        fh_check(true, "VM B runs checked vadds meanwhile");
        sleep(1);
        c = launch(&A, A.f_fault, 1, 1, &p, 8, 0, 11);
        CHECK(c.status == VGPU_S_OK, "the faulting launch itself is asynchronous: %s",
              vgpu_status_name(c.status));
        c = handle_op(&A, VGPU_OP_CU_STREAM_SYNC, 0);
        CHECK(c.status == VGPU_S_GPU_FAULT && c.result == CU_ILLEGAL_ADDRESS,
              "VM A's sync reports the fault: %s (%" PRIu64 ")", vgpu_status_name(c.status),
              c.result);
        t0 = fh_now_ms();
        c = handle_op(&A, VGPU_OP_CU_MODULE_UNLOAD, A.module);
        CHECK(c.status == VGPU_S_CONTEXT_LOST,
              "VM A's old module handle after the fault: %s (%" PRIu64 " ms)",
              vgpu_status_name(c.status), fh_now_ms() - t0);
        A.module = 0;
    }
    sleep(1);
    loop_stop(&l);
    CHECK(l.failed == 0 && l.ok > 0, "VM B: %u checked rounds, %u failed, worst %" PRIu64 " ms",
          l.ok, l.failed, l.worst_ms);

    /* A kernel past the deadline ends its VM's context too. */
    {
        struct vm A2;
        uint64_t ns = 30ull * 1000 * 1000 * 1000;   /* 30 s, deadline 2 s */

        CHECK(vm_open(&A2, 3) == 0 && vm_prepare(&A2) == 0, "VM C attached");
        loop_start(&l, &B);
        sleep(1);
        launch(&A2, A2.f_spin, 1, 1, &ns, 8, 0, 12);
        c = handle_op(&A2, VGPU_OP_CU_STREAM_SYNC, 0);
        CHECK(c.status == VGPU_S_TIMEOUT, "VM C's sync on a 30 s kernel: %s",
              vgpu_status_name(c.status));
        c = alloc(&A2, 4096, &d);
        CHECK(c.status == VGPU_S_OK, "VM C works again with a new context: %s",
              vgpu_status_name(c.status));
        sleep(1);
        loop_stop(&l);
        CHECK(l.failed == 0 && l.ok > 0,
              "VM B meanwhile: %u checked rounds, %u failed, worst %" PRIu64 " ms", l.ok,
              l.failed, l.worst_ms);
        vgpu_close(A2.dev);
    }

out:
    vgpu_close(A.dev);
    vgpu_close(B.dev);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 60);
    }
    fh_mediator_stop(&med, false);
    fh_mediator_cleanup(&med);
    return fh_summary();
}
