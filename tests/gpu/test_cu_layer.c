/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * libvgpu's CUDA layer (libvgpu/cu.c, the vgpu_cu_* API a guest libcuda is
 * written on) against the whole mediator with the CUDA backend: in CI the
 * mock driver (vgpu-mediator-cuda-mock, tests/gpu/mock_cudadrv.c, whose
 * module images are text and whose kernels run on the CPU).
 *
 *  - device and memory info; a module, its functions' parameter layouts
 *    and a global;
 *  - staged copies much larger than the staging ring, both ways, bit for
 *    bit; memset; a pitched 2D copy there and back;
 *  - a launch with staged parameters over 2^20 elements, checked;
 *  - streams and events: a kernel keeps a stream busy, queries say so,
 *    syncs wait, elapsed time is measured;
 *  - thousands of asynchronous launches through the 256-entry ring, each
 *    applied once (a global counter);
 *  - the first error of asynchronous work kept and returned once by the
 *    next synchronising call;
 *  - a faulting kernel: the context is lost, old handles say so, the VM
 *    starts over with new objects.
 *
 * Environment: VGPU_MEDIATOR (the binary), FH_BACKEND=cuda.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgpu/libvgpu.h"
#include "../functional/fhelp.h"

#define SHM_SIZE   (64ull << 20)
#define BIG        (10u << 20)          /* bytes copied through 1 MiB of staging */
#define N          (1u << 20)

static const char image[] =
    "VGPU-MOCK-MODULE\n"
    "func vadd 8,8,8,4\n"
    "func fill_u32 8,4,8\n"
    "func spin 8\n"
    "func bump 4\n"
    "func fault 8\n"
    "global g_counter 4\n";

struct t {
    struct vgpu_dev *dev;
    struct vgpu_cu *cu;
    uint32_t module, f_vadd, f_fill, f_spin, f_bump, f_fault;
    uint64_t g_counter;
};

static uint64_t rng_state = 0x1234567887654321ull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)rng_state;
}

static int load(struct t *t)
{
    struct vgpu_cu_func_info fi;
    struct vgpu_cu_param p[8];
    uint64_t bytes = 0;
    int r;

    r = vgpu_cu_module_load_data(t->cu, image, sizeof(image), &t->module);
    CHECK(r == 0 && t->module != 0, "module loaded: %d, handle %#x", r, t->module);
    r = vgpu_cu_module_get_function(t->cu, t->module, "vadd", &t->f_vadd, &fi, p, 8);
    CHECK(r == 0 && fi.param_count == 4 && fi.param_bytes == 28 && p[0].offset == 0 &&
          p[1].offset == 8 && p[2].offset == 16 && p[3].offset == 24 && p[3].size == 4,
          "vadd's layout: %d, %u params, %u bytes, last at %u (%u bytes)", r, fi.param_count,
          fi.param_bytes, p[3].offset, p[3].size);
    r = vgpu_cu_module_get_function(t->cu, t->module, "fill_u32", &t->f_fill, NULL, NULL, 0);
    r |= vgpu_cu_module_get_function(t->cu, t->module, "spin", &t->f_spin, NULL, NULL, 0);
    r |= vgpu_cu_module_get_function(t->cu, t->module, "bump", &t->f_bump, NULL, NULL, 0);
    r |= vgpu_cu_module_get_function(t->cu, t->module, "fault", &t->f_fault, NULL, NULL, 0);
    CHECK(r == 0, "the other functions found");
    r = vgpu_cu_module_get_global(t->cu, t->module, "g_counter", &t->g_counter, &bytes);
    CHECK(r == 0 && t->g_counter && bytes == 4, "global g_counter: %d, %" PRIu64 " bytes", r,
          bytes);
    r = vgpu_cu_module_get_function(t->cu, t->module, "absent", &p[0].size, NULL, NULL, 0);
    CHECK(r == VGPU_S_CUDA_ERROR && vgpu_cu_last_result(t->cu) == 500,
          "a missing function: %d, CUresult %" PRIu64, r, vgpu_cu_last_result(t->cu));
    return 0;
}

static void test_info(struct t *t)
{
    struct vgpu_cu_device_info di;
    uint64_t free_b = 0;
    int r;

    r = vgpu_cu_device_info(t->cu, &di);
    CHECK(r == 0 && strlen(di.name) > 0 && di.attr_count > 76 && di.total_mem > 0,
          "device info: %d, '%s', %u attributes", r, di.name, di.attr_count);
    r = vgpu_cu_mem_get_info(t->cu, &free_b);
    CHECK(r == 0 && free_b > 0 && free_b <= di.total_mem, "mem info: %d, %" PRIu64 " free", r,
          free_b);
}

static void test_copies(struct t *t)
{
    uint8_t *src = malloc(BIG), *back = malloc(BIG);
    uint64_t d = 0, d2 = 0, pitched = 0, s2d, b2d;
    uint32_t *u;
    int r, wrong = 0;

    if (!src || !back) {
        CHECK(false, "memory for the copies");
        free(src);
        free(back);
        return;
    }
    for (uint32_t i = 0; i < BIG / 4; i++) {
        uint32_t v = rng();

        memcpy(src + 4 * i, &v, 4);
    }
    r = vgpu_cu_mem_alloc(t->cu, BIG, &d);
    r |= vgpu_cu_mem_alloc(t->cu, BIG, &d2);
    CHECK(r == 0 && d && d2, "two buffers of 10 MiB");
    r = vgpu_cu_memcpy_htod(t->cu, d, src, BIG, 0);
    CHECK(r == 0, "10 MiB host to device through 1 MiB of staging: %d", r);
    r = vgpu_cu_memcpy_dtod_async(t->cu, d2, d, BIG, 0);
    CHECK(r == 0, "device to device queued: %d", r);
    memset(back, 0, BIG);
    r = vgpu_cu_memcpy_dtoh(t->cu, back, d2, BIG, 0);
    CHECK(r == 0 && memcmp(back, src, BIG) == 0, "and back, bit for bit: %d", r);

    /* memset of 32-bit elements in the middle. */
    r = vgpu_cu_memset_async(t->cu, d + 4096, 0xcafef00du, 4, 1000, 0);
    r |= vgpu_cu_memcpy_dtoh(t->cu, back, d, 8192, 0);
    u = (uint32_t *)back;
    for (int i = 0; i < 2048; i++) {
        wrong += u[i] != (i >= 1024 && i < 2024 ? 0xcafef00du : ((uint32_t *)src)[i]);
    }
    CHECK(r == 0 && wrong == 0, "memset_async D32: %d, %d wrong", r, wrong);

    /* 2D: 64 rows of 100 bytes from the data area (pitch 128) into device
     * memory (pitch 512), then back into rows of pitch 100. */
    r = vgpu_alloc(t->dev, 64 * 128, 64, &s2d);
    r |= vgpu_alloc(t->dev, 64 * 100, 64, &b2d);
    r |= vgpu_cu_mem_alloc(t->cu, 64 * 512, &pitched);
    CHECK(r == 0, "2D buffers");
    if (r == 0) {
        uint8_t *sp = vgpu_ptr(t->dev, s2d), *bp = vgpu_ptr(t->dev, b2d);
        struct vgpu_args_cu_memcpy2d in = {
            .dst = pitched, .src = s2d, .dst_pitch = 512, .src_pitch = 128, .width = 100,
            .height = 64, .dst_kind = VGPU_CU_MEM_DEVICE, .src_kind = VGPU_CU_MEM_SHM };
        struct vgpu_args_cu_memcpy2d out = {
            .dst = b2d, .src = pitched, .dst_pitch = 100, .src_pitch = 512, .width = 100,
            .height = 64, .dst_kind = VGPU_CU_MEM_SHM, .src_kind = VGPU_CU_MEM_DEVICE };

        for (int i = 0; i < 64 * 128; i++) {
            sp[i] = (uint8_t)(i * 7 + i / 128);
        }
        memset(bp, 0, 64 * 100);
        r = vgpu_cu_memcpy_2d_async(t->cu, &in);
        r |= vgpu_cu_memcpy_2d_async(t->cu, &out);
        r |= vgpu_cu_stream_sync(t->cu, 0);
        wrong = 0;
        for (int row = 0; row < 64; row++) {
            wrong += memcmp(bp + row * 100, sp + row * 128, 100) != 0;
        }
        CHECK(r == 0 && wrong == 0, "2D there and back: %d, %d wrong rows", r, wrong);
        r = vgpu_cu_mem_free(t->cu, pitched);
        CHECK(r == 0, "free: %d", r);
    }
    r = vgpu_cu_mem_free(t->cu, d);
    r |= vgpu_cu_mem_free(t->cu, d2);
    CHECK(r == 0, "frees: %d", r);
    r = vgpu_cu_mem_free(t->cu, d);
    CHECK(r == VGPU_S_BAD_ARGS, "a second free of the same address: %s", vgpu_status_name(r));
    free(src);
    free(back);
}

static void test_launch(struct t *t)
{
    float *a = malloc(N * 4), *b = malloc(N * 4), *c = malloc(N * 4);
    uint64_t da = 0, db = 0, dc = 0;
    struct vgpu_args_cu_launch la = { .func = t->f_vadd, .grid = { N / 256, 1, 1 },
                                      .block = { 256, 1, 1 }, .params_len = 28 };
    uint8_t params[28];
    int32_t v = 0, n = N, wrong = 0, r;

    if (!a || !b || !c) {
        CHECK(false, "memory for the launch");
        goto out;
    }
    for (uint32_t i = 0; i < N; i++) {
        a[i] = (float)(i % 1000) * 0.25f;
        b[i] = (float)(i % 77) - 3.0f;
    }
    r = vgpu_cu_mem_alloc(t->cu, N * 4, &da) | vgpu_cu_mem_alloc(t->cu, N * 4, &db) |
        vgpu_cu_mem_alloc(t->cu, N * 4, &dc);
    r |= vgpu_cu_memcpy_htod(t->cu, da, a, N * 4, 0) | vgpu_cu_memcpy_htod(t->cu, db, b, N * 4, 0);
    CHECK(r == 0, "vadd inputs on the device");
    memcpy(params, &da, 8);
    memcpy(params + 8, &db, 8);
    memcpy(params + 16, &dc, 8);
    memcpy(params + 24, &n, 4);
    r = vgpu_cu_launch_params(t->cu, &la, params);
    CHECK(r == 0, "vadd launched: %d", r);
    r = vgpu_cu_memcpy_dtoh(t->cu, c, dc, N * 4, 0);
    for (uint32_t i = 0; i < N; i++) {
        wrong += c[i] != a[i] + b[i];
    }
    CHECK(r == 0 && wrong == 0, "vadd of 2^20: %d, %d wrong", r, wrong);

    r = vgpu_cu_func_get_attr(t->cu, t->f_vadd, 0, &v);   /* max threads per block */
    CHECK(r == 0 && v > 0, "func attr max threads: %d, %d", r, v);
    r = vgpu_cu_occupancy(t->cu, t->f_vadd, 256, 0, &v);
    CHECK(r == 0 && v > 0, "occupancy: %d, %d blocks per SM", r, v);
    la.block[0] = 2048;
    r = vgpu_cu_launch_params(t->cu, &la, params);
    CHECK(r == 0, "an invalid launch is accepted asynchronously: %d", r);
    r = vgpu_cu_ctx_sync(t->cu);
    CHECK(r == VGPU_S_TOO_LARGE, "its error comes with the next sync: %s", vgpu_status_name(r));
    r = vgpu_cu_ctx_sync(t->cu);
    CHECK(r == 0, "once: %s", vgpu_status_name(r));
    r = vgpu_cu_mem_free(t->cu, da) | vgpu_cu_mem_free(t->cu, db) | vgpu_cu_mem_free(t->cu, dc);
    CHECK(r == 0, "vadd buffers freed");
out:
    free(a);
    free(b);
    free(c);
}

static void test_streams_events(struct t *t)
{
    struct vgpu_args_cu_launch la = { .func = t->f_spin, .grid = { 1, 1, 1 },
                                      .block = { 1, 1, 1 }, .params_len = 8 };
    uint64_t ns = 200000000;            /* 200 ms */
    uint32_t s = 0, e0 = 0, e1 = 0;
    int done = -1, r;
    float ms = -1;

    r = vgpu_cu_stream_create(t->cu, 1, 0, &s);
    r |= vgpu_cu_event_create(t->cu, 0, &e0);
    r |= vgpu_cu_event_create(t->cu, 0, &e1);
    CHECK(r == 0 && s && e0 && e1, "a stream and two events");
    la.stream = s;
    r = vgpu_cu_event_record(t->cu, e0, s);
    r |= vgpu_cu_launch_params(t->cu, &la, &ns);
    r |= vgpu_cu_event_record(t->cu, e1, s);
    CHECK(r == 0, "record, spin 200 ms, record: queued");
    r = vgpu_cu_stream_query(t->cu, s, &done);
    CHECK(r == 0 && done == 0, "the stream is busy: %d, done %d", r, done);
    r = vgpu_cu_stream_wait_event(t->cu, 0, e1);
    CHECK(r == 0, "the default stream waits for the end event: %d", r);
    r = vgpu_cu_event_sync(t->cu, e1);
    CHECK(r == 0, "event sync: %d", r);
    r = vgpu_cu_event_query(t->cu, e1, &done);
    CHECK(r == 0 && done == 1, "the event is done: %d, %d", r, done);
    r = vgpu_cu_stream_query(t->cu, s, &done);
    CHECK(r == 0 && done == 1, "so is the stream: %d, %d", r, done);
    r = vgpu_cu_event_elapsed(t->cu, e0, e1, &ms);
    CHECK(r == 0 && ms >= 0, "elapsed: %d, %.3f ms", r, (double)ms);
    r = vgpu_cu_stream_sync(t->cu, s);
    r |= vgpu_cu_event_destroy(t->cu, e0) | vgpu_cu_event_destroy(t->cu, e1);
    r |= vgpu_cu_stream_destroy(t->cu, s);
    CHECK(r == 0, "destroyed");
    r = vgpu_cu_stream_sync(t->cu, s);
    CHECK(r == VGPU_S_BAD_ARGS, "a destroyed stream: %s", vgpu_status_name(r));
    r = vgpu_cu_event_create(t->cu, 4, &e0);
    CHECK(r == VGPU_S_NOT_SUPPORTED, "interprocess events: %s", vgpu_status_name(r));
}

/* Many more launches than the ring holds, each applied exactly once. */
static void test_many_launches(struct t *t)
{
    struct vgpu_args_cu_launch la = { .func = t->f_bump, .grid = { 1, 1, 1 },
                                      .block = { 1, 1, 1 }, .params_len = 4 };
    const unsigned n = 3000;
    uint32_t one = 1, zero = 0, got = 0;
    int r = 0, bad = 0;

    r = vgpu_cu_memcpy_htod(t->cu, t->g_counter, &zero, 4, 0);
    for (unsigned i = 0; i < n && !bad; i++) {
        bad = vgpu_cu_launch_params(t->cu, &la, &one) != 0;
    }
    CHECK(r == 0 && !bad, "%u launches submitted", n);
    r = vgpu_cu_memcpy_dtoh(t->cu, &got, t->g_counter, 4, 0);
    CHECK(r == 0 && got == n, "the counter is %u (want %u): %d", got, n, r);
    CHECK(vgpu_cu_outstanding(t->cu) == 0, "nothing outstanding after a sync");
}

static void test_fault(struct t *t)
{
    struct vgpu_args_cu_launch la = { .func = t->f_fault, .grid = { 1, 1, 1 },
                                      .block = { 1, 1, 1 }, .params_len = 8 };
    uint64_t zero = 0, d = 0;
    uint32_t old_module = t->module;
    int r;

    r = vgpu_cu_launch_params(t->cu, &la, &zero);
    CHECK(r == 0, "a faulting kernel launched: %d", r);
    r = vgpu_cu_ctx_sync(t->cu);
    CHECK(r == VGPU_S_GPU_FAULT || r == VGPU_S_CONTEXT_LOST || r == VGPU_S_CUDA_ERROR,
          "the fault is reported: %s", vgpu_status_name(r));
    r = vgpu_cu_module_get_function(t->cu, old_module, "vadd", &t->f_vadd, NULL, NULL, 0);
    CHECK(r == VGPU_S_CONTEXT_LOST, "an old handle afterwards: %s", vgpu_status_name(r));
    r = vgpu_cu_ctx_sync(t->cu);
    CHECK(r == 0, "the new context syncs: %s", vgpu_status_name(r));
    load(t);
    CHECK(t->module != 0, "the VM starts over with a new module");
    r = vgpu_cu_mem_alloc(t->cu, 4096, &d);
    CHECK(r == 0 && d, "and new memory: %d", r);
    r = vgpu_cu_mem_free(t->cu, d);
    CHECK(r == 0, "freed: %d", r);
}

int main(void)
{
    static const char *const args[] = { "--mem-quota", "256", "--timeout-ms", "5000", NULL };
    struct vgpu_open_opts opts = { .transport = "sim", .shm_size = SHM_SIZE, .vm_id = 71,
                                   .vm_name = "cu-layer" };
    struct vgpu_cu_opts co = { .staging_size = 1u << 20, .timeout_ms = 20000 };
    struct fh_mediator med;
    struct t t;
    int r;

    memset(&t, 0, sizeof(t));
    if (fh_mediator_start(&med, NULL, args) < 0) {
        CHECK(false, "mediator starts");
        return fh_summary();
    }
    opts.socket_path = med.sock;
    r = vgpu_open(&opts, &t.dev);
    CHECK(r == 0, "vgpu_open: %s", r ? vgpu_strerror(r) : "ok");
    if (r == 0) {
        r = vgpu_cu_open(t.dev, &co, &t.cu);
        CHECK(r == 0, "vgpu_cu_open: %d", r);
    }
    if (r == 0) {
        test_info(&t);
        load(&t);
        test_copies(&t);
        test_launch(&t);
        test_streams_events(&t);
        test_many_launches(&t);
        test_fault(&t);
        r = vgpu_cu_module_unload(t.cu, t.module);
        CHECK(r == 0, "unload: %d", r);
        vgpu_cu_close(t.cu);
    }
    vgpu_close(t.dev);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 40);
    }
    fh_mediator_stop(&med, false);
    fh_mediator_cleanup(&med);
    return fh_summary();
}
