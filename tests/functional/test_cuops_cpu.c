/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA driver operations (ABI 1.2, VGPU_OP_CU_*) against the real
 * mediator on the cpu backend, which has no GPU:
 *  - every CU opcode, well formed, completes not-supported; malformed, it
 *    completes with its validation status first (the mediator validates
 *    before it asks the backend); the holes 7..15 and past the table are
 *    unknown-op;
 *  - through libvgpu's vgpu_cu_* layer: synchronous calls return
 *    not-supported, asynchronous ones are accepted and their first error
 *    is reported once by the next synchronising call, also when far more
 *    are submitted than the ring holds;
 *  - the VM's Phase 1 operations run on unharmed afterwards;
 *  - on queue 1 of a device with two queue windows, what the layer stages
 *    lies in the queue's window (not-supported, never bad-range).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgpu/libvgpu.h"
#include "fhelp.h"

#define SHM   (16u << 20)
#define D     ((uint64_t)VGPU_SHM_DATA_OFFSET)
#define DPTR  0x7f0000000000ull

static struct vgpu_sqe sqe_of(uint16_t op)
{
    struct vgpu_sqe s;

    memset(&s, 0, sizeof(s));
    s.opcode = op;
    return s;
}

/* A well-formed request of each CU opcode, its ranges in the data area. */
static struct vgpu_sqe valid(uint16_t op)
{
    struct vgpu_sqe s = sqe_of(op);

    switch (op) {
    case VGPU_OP_CU_DEVICE_INFO:
        s.args.cu_out = (struct vgpu_args_cu_out){ D, sizeof(struct vgpu_cu_device_info) };
        break;
    case VGPU_OP_CU_MEM_ALLOC:
        s.args.cu_mem.bytes = 1 << 20;
        break;
    case VGPU_OP_CU_MEM_FREE:
        s.args.cu_mem.dptr = DPTR;
        break;
    case VGPU_OP_CU_MEMSET:
        s.args.cu_memset = (struct vgpu_args_cu_memset){ DPTR, 1024, 7, 4, 0, 0 };
        break;
    case VGPU_OP_CU_MEMCPY_HTOD:
        s.args.cu_memcpy = (struct vgpu_args_cu_memcpy){ DPTR, D, 4096, 0, 0 };
        break;
    case VGPU_OP_CU_MEMCPY_DTOH:
        s.args.cu_memcpy = (struct vgpu_args_cu_memcpy){ D, DPTR, 4096, 0, 0 };
        break;
    case VGPU_OP_CU_MEMCPY_DTOD:
        s.args.cu_memcpy = (struct vgpu_args_cu_memcpy){ DPTR, DPTR + 8192, 4096, 0, 0 };
        break;
    case VGPU_OP_CU_MEMCPY_2D:
        s.args.cu_memcpy2d = (struct vgpu_args_cu_memcpy2d){
            .dst = DPTR, .src = D, .dst_pitch = 512, .src_pitch = 128, .width = 100,
            .height = 16, .src_kind = VGPU_CU_MEM_SHM };
        break;
    case VGPU_OP_CU_MODULE_LOAD:
        s.args.cu_module_load = (struct vgpu_args_cu_module_load){
            .image_off = D, .image_len = 4096 };
        break;
    case VGPU_OP_CU_MODULE_GET_FUNCTION:
    case VGPU_OP_CU_MODULE_GET_GLOBAL:
        s.args.cu_symbol = (struct vgpu_args_cu_symbol){ D, D + 1024, 5, 24 + 8 * 1024, 1, 0 };
        break;
    case VGPU_OP_CU_LAUNCH:
        s.args.cu_launch = (struct vgpu_args_cu_launch){
            .func = 1, .grid = { 64, 1, 1 }, .block = { 256, 1, 1 }, .params_len = 16,
            .params_off = D };
        break;
    case VGPU_OP_CU_MODULE_UNLOAD:
    case VGPU_OP_CU_STREAM_DESTROY:
    case VGPU_OP_CU_EVENT_DESTROY:
    case VGPU_OP_CU_EVENT_SYNC:
    case VGPU_OP_CU_EVENT_QUERY:
        s.args.cu_handle.handle = 1;
        break;
    case VGPU_OP_CU_STREAM_WAIT_EVENT:
    case VGPU_OP_CU_EVENT_RECORD:
    case VGPU_OP_CU_EVENT_ELAPSED:
        s.args.cu_pair = (struct vgpu_args_cu_pair){ 1, 2, 0, 0 };
        break;
    case VGPU_OP_CU_FUNC_GET_ATTR:
        s.args.cu_func_attr = (struct vgpu_args_cu_func_attr){ 1, 0, 0, 0 };
        break;
    case VGPU_OP_CU_FUNC_SET_ATTR:
        s.args.cu_func_attr = (struct vgpu_args_cu_func_attr){ 1, 8, 65536, 0 };
        break;
    case VGPU_OP_CU_OCCUPANCY:
        s.args.cu_func_attr = (struct vgpu_args_cu_func_attr){ 1, 256, 0, 0 };
        break;
    case VGPU_OP_CU_TENSOR_MAP:
        s.args.cu_tensor_map = (struct vgpu_args_cu_tensor_map){
            .in_off = D, .out_off = D + 4096, .kind = VGPU_CU_TENSOR_MAP_TILED };
        break;
    default:
        break;      /* no arguments, all zero, or any stream (0) */
    }
    return s;
}

static int32_t status_of(struct vgpu_dev *dev, struct vgpu_sqe *s)
{
    static uint32_t tag;
    struct vgpu_cqe c;
    int r;

    s->tag = ++tag;
    s->user_data = 0xc0de000000000000ull | tag;
    r = vgpu_call(dev, s, &c, 5000);
    if (r < 0) {
        fprintf(stderr, "vgpu_call(%s): %s\n", vgpu_op_name(s->opcode), vgpu_strerror(r));
        return -1;
    }
    return c.status;
}

static void expect(struct vgpu_dev *dev, struct vgpu_sqe s, int32_t want, const char *what)
{
    int32_t got = status_of(dev, &s);

    CHECK(got == want, "%s %s: %s (want %s)", vgpu_op_name(s.opcode), what,
          got < 0 ? "no completion" : vgpu_status_name(got), vgpu_status_name(want));
}

static void test_raw(struct vgpu_dev *dev)
{
    unsigned ok = 0, total = 0;

    for (uint16_t op = VGPU_OP_CU_FIRST; op < VGPU_OP_COUNT; op++) {
        struct vgpu_sqe s = valid(op);
        int32_t st = status_of(dev, &s);

        total++;
        ok += st == VGPU_S_NOT_SUPPORTED;
        if (st != VGPU_S_NOT_SUPPORTED) {
            CHECK(false, "%s, well formed: %s (want not-supported)", vgpu_op_name(op),
                  st < 0 ? "no completion" : vgpu_status_name(st));
        }
        /* flags, and a nonzero byte past every struct: malformed. */
        s = valid(op);
        s.flags = 1;
        expect(dev, s, VGPU_S_BAD_ARGS, "with flags");
        if (op != VGPU_OP_CU_LAUNCH) {          /* its struct fills the 48 bytes */
            s = valid(op);
            s.args.raw[VGPU_SQE_ARGS_SIZE - 1] = 1;
            expect(dev, s, VGPU_S_BAD_ARGS, "with a byte past its struct");
        }
    }
    CHECK(ok == total, "%u of %u CU opcodes, well formed, complete not-supported", ok, total);

    for (uint16_t op = VGPU_OP_MEMCPY + 1; op < VGPU_OP_CU_FIRST; op++) {
        expect(dev, sqe_of(op), VGPU_S_UNKNOWN_OP, "(unassigned)");
    }
    expect(dev, sqe_of(VGPU_OP_COUNT), VGPU_S_UNKNOWN_OP, "(past the table)");

    /* Each validator's own statuses come before the backend's answer. */
    {
        struct vgpu_sqe s = valid(VGPU_OP_CU_DEVICE_INFO);

        s.args.cu_out.out_off = SHM - 512;
        expect(dev, s, VGPU_S_BAD_RANGE, "output past the end");
        s.args.cu_out.out_off = VGPU_SHM_CQ_OFFSET;
        expect(dev, s, VGPU_S_BAD_RANGE, "output over the CQ");
        s.args.cu_out.out_off = D + 4;
        expect(dev, s, VGPU_S_BAD_ALIGN, "output unaligned");

        s = valid(VGPU_OP_CU_MEMSET);
        s.args.cu_memset.elem_size = 3;
        expect(dev, s, VGPU_S_BAD_ARGS, "elem_size 3");
        s = valid(VGPU_OP_CU_MEMSET);
        s.args.cu_memset.dptr = DPTR + 2;
        expect(dev, s, VGPU_S_BAD_ALIGN, "dptr unaligned");
        s = valid(VGPU_OP_CU_MEMCPY_HTOD);
        s.args.cu_memcpy.len = VGPU_MAX_COPY_BYTES + 1;
        expect(dev, s, VGPU_S_TOO_LARGE, "len past the maximum");
        s = valid(VGPU_OP_CU_MEMCPY_DTOH);
        s.args.cu_memcpy.dst = SHM - 100;
        expect(dev, s, VGPU_S_BAD_RANGE, "destination past the end");
        s = valid(VGPU_OP_CU_MEMCPY_DTOD);
        s.args.cu_memcpy.src = UINT64_MAX - 100;
        expect(dev, s, VGPU_S_BAD_RANGE, "device range wrapping");
        s = valid(VGPU_OP_CU_MEMCPY_2D);
        s.args.cu_memcpy2d.dst_kind = VGPU_CU_MEM_SHM;
        s.args.cu_memcpy2d.dst = D + 64;
        expect(dev, s, VGPU_S_OVERLAP, "shared memory onto itself");
        s = valid(VGPU_OP_CU_MODULE_LOAD);
        s.args.cu_module_load.image_len = 0;
        expect(dev, s, VGPU_S_BAD_ARGS, "empty image");
        s = valid(VGPU_OP_CU_MODULE_GET_FUNCTION);
        s.args.cu_symbol.name_len = VGPU_CU_MAX_NAME + 1;
        expect(dev, s, VGPU_S_TOO_LARGE, "name too long");
        s = valid(VGPU_OP_CU_MODULE_GET_GLOBAL);
        s.args.cu_symbol.module = 0;
        expect(dev, s, VGPU_S_BAD_ARGS, "module 0");
        s = valid(VGPU_OP_CU_LAUNCH);
        s.args.cu_launch.block[1] = 8;
        expect(dev, s, VGPU_S_TOO_LARGE, "2048 threads per block");
        s = valid(VGPU_OP_CU_LAUNCH);
        s.args.cu_launch.grid[2] = 0;
        expect(dev, s, VGPU_S_BAD_ARGS, "grid z 0");
        s = valid(VGPU_OP_CU_LAUNCH);
        s.args.cu_launch.params_off = D + 4;
        expect(dev, s, VGPU_S_BAD_ALIGN, "parameters unaligned");
        s = valid(VGPU_OP_CU_EVENT_CREATE);
        s.args.cu_create.flags = 4;
        expect(dev, s, VGPU_S_NOT_SUPPORTED, "interprocess (refused by validation)");
        s.args.cu_create.flags = 8;
        expect(dev, s, VGPU_S_BAD_ARGS, "unknown flag");
        s = valid(VGPU_OP_CU_STREAM_DESTROY);
        s.args.cu_handle.handle = 0;
        expect(dev, s, VGPU_S_BAD_ARGS, "the default stream");
        s = valid(VGPU_OP_CU_OCCUPANCY);
        s.args.cu_func_attr.attr = 1025;
        expect(dev, s, VGPU_S_TOO_LARGE, "block of 1025");
    }
}

/* The client layer on a backend without a GPU. */
static void test_cu_layer(struct vgpu_dev *dev)
{
    struct vgpu_args_cu_launch la = { .func = 1, .grid = { 1, 1, 1 }, .block = { 32, 1, 1 },
                                      .params_len = 24 };
    struct vgpu_cu_device_info di;
    struct vgpu_cu_error e;
    struct vgpu_cu *cu = NULL;
    uint8_t params[24] = { 1, 2, 3 };
    uint64_t dptr = 0;
    uint32_t h = 0;
    int r, bad = 0;

    vgpu_free_all(dev);
    r = vgpu_cu_open(dev, &(struct vgpu_cu_opts){ .timeout_ms = 5000 }, &cu);
    CHECK(r == 0, "vgpu_cu_open: %d", r);
    if (r) {
        return;
    }
    r = vgpu_cu_device_info(cu, &di);
    CHECK(r == VGPU_S_NOT_SUPPORTED, "vgpu_cu_device_info: %d (not-supported)", r);
    r = vgpu_cu_mem_alloc(cu, 4096, &dptr);
    CHECK(r == VGPU_S_NOT_SUPPORTED, "vgpu_cu_mem_alloc: %d (not-supported)", r);
    r = vgpu_cu_module_load_data(cu, "VGPU-MOCK-MODULE\n", 18, &h);
    CHECK(r == VGPU_S_NOT_SUPPORTED, "vgpu_cu_module_load_data: %d (not-supported)", r);

    /* Asynchronous: accepted, the first error kept until a sync. */
    r = vgpu_cu_memset_async(cu, DPTR, 0, 1, 64, 0);
    CHECK(r == 0, "vgpu_cu_memset_async is accepted: %d", r);
    r = vgpu_cu_stream_create(cu, 0, 0, &h);
    CHECK(r == VGPU_S_NOT_SUPPORTED, "a non-synchronising call returns its own status: %d", r);
    r = vgpu_cu_async_error(cu, &e, 0);
    CHECK(r == VGPU_S_NOT_SUPPORTED && e.opcode == VGPU_OP_CU_MEMSET,
          "the memset's error is kept (%d, %s)", r, vgpu_op_name(e.opcode));
    r = vgpu_cu_ctx_sync(cu);
    CHECK(r == VGPU_S_NOT_SUPPORTED, "ctx_sync reports it: %d", r);
    r = vgpu_cu_async_error(cu, NULL, 0);
    CHECK(r == 0, "and it is gone: %d", r);

    /* Three rings' worth of launches with parameters: every one is taken. */
    for (unsigned i = 0; i < 3 * VGPU_SQ_ENTRIES && !bad; i++) {
        params[0] = (uint8_t)i;
        bad = vgpu_cu_launch_params(cu, &la, params) != 0;
    }
    CHECK(!bad, "%u asynchronous launches submitted", 3 * VGPU_SQ_ENTRIES);
    r = vgpu_cu_drain(cu);
    CHECK(r == VGPU_S_NOT_SUPPORTED, "drain reports their error once: %d", r);
    r = vgpu_cu_drain(cu);
    CHECK(r == 0 && vgpu_cu_outstanding(cu) == 0, "then nothing: %d, %u outstanding", r,
          vgpu_cu_outstanding(cu));
    {
        uint8_t buf[100000];

        memset(buf, 1, sizeof(buf));
        r = vgpu_cu_memcpy_htod(cu, DPTR, buf, sizeof(buf), 0);
        CHECK(r == VGPU_S_NOT_SUPPORTED, "a staged copy reports not-supported: %d", r);
    }
    vgpu_cu_close(cu);
}

/*
 * The layer on queue 1 of a two-queue device, the data area split into two
 * windows as a guest driver would: what it stages lies in the queue's own
 * window, so its requests pass the window check (and are then
 * not-supported, not bad-range); queue 0 works beside it.
 */
static void test_queue_windows(const char *sock)
{
    struct vgpu_open_opts opts = { .transport = "sim", .socket_path = sock, .shm_size = SHM,
                                   .vm_id = 62, .queues = 2 };
    struct vgpu_args_cu_launch la = { .func = 1, .grid = { 1, 1, 1 }, .block = { 1, 1, 1 },
                                      .params_len = 64 };
    struct vgpu_queue_desc *qt;
    struct vgpu_dev *d0 = NULL, *d1 = NULL;
    struct vgpu_cu *cu0 = NULL, *cu1 = NULL;
    struct vgpu_dev_info info;
    uint8_t params[64] = { 0 };
    uint32_t h = 0;
    uint64_t w;
    int r, bad = 0;

    r = vgpu_open(&opts, &d0);
    CHECK(r == 0, "a two-queue device: %s", r ? vgpu_strerror(r) : "ok");
    if (r) {
        return;
    }
    vgpu_get_info(d0, &info);
    w = ((info.data_end - D) / 2) & ~4095ull;
    qt = (struct vgpu_queue_desc *)((uint8_t *)vgpu_shm_base(d0, NULL) + VGPU_SHM_QTABLE_OFFSET);
    qt[0] = (struct vgpu_queue_desc){ D, w };
    qt[1] = (struct vgpu_queue_desc){ D + w, w };
    vgpu_free_all(d0);
    r = vgpu_queue_open(d0, 1, &d1);
    CHECK(r == 0, "queue 1 opened: %d", r);
    if (r == 0) {
        r = vgpu_cu_open(d0, NULL, &cu0) | vgpu_cu_open(d1, NULL, &cu1);
        CHECK(r == 0, "a CUDA layer on each queue: %d", r);
    }
    if (r == 0) {
        r = vgpu_cu_module_load_data(cu1, "image", 6, &h);
        CHECK(r == VGPU_S_NOT_SUPPORTED, "queue 1: a staged image is in its window: %s",
              vgpu_status_name(r));
        for (unsigned i = 0; i < 300 && !bad; i++) {
            bad = vgpu_cu_launch_params(cu1, &la, params) != 0 ||
                  vgpu_cu_launch_params(cu0, &la, params) != 0;
        }
        CHECK(!bad, "300 launches with staged parameters on each queue");
        r = vgpu_cu_drain(cu1);
        CHECK(r == VGPU_S_NOT_SUPPORTED, "queue 1's are not-supported (not bad-range): %s",
              vgpu_status_name(r));
        r = vgpu_cu_drain(cu0);
        CHECK(r == VGPU_S_NOT_SUPPORTED, "queue 0's too: %s", vgpu_status_name(r));
        /* The check is real: queue 1 naming queue 0's window is refused. */
        r = vgpu_cu_memcpy_htod_async(cu1, DPTR, D, 16, 0);
        r = r ? r : vgpu_cu_drain(cu1);
        CHECK(r == VGPU_S_BAD_RANGE, "queue 1 naming queue 0's window: %s", vgpu_status_name(r));
        r = vgpu_cu_device_info(cu1, &(struct vgpu_cu_device_info){ 0 });
        CHECK(r == VGPU_S_NOT_SUPPORTED, "queue 1: device info's output in its window: %s",
              vgpu_status_name(r));
    }
    vgpu_cu_close(cu1);
    vgpu_cu_close(cu0);
    vgpu_close(d1);
    vgpu_close(d0);
}

/* The VM's other operations are unharmed. */
static void test_phase1_after(struct vgpu_dev *dev)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_VECTOR_ADD);
    float *a, *b, *o;
    int wrong = 0;

    vgpu_free_all(dev);
    a = vgpu_ptr(dev, D);
    b = vgpu_ptr(dev, D + 4096);
    o = vgpu_ptr(dev, D + 8192);
    for (int i = 0; i < 1024; i++) {
        a[i] = (float)i;
        b[i] = 0.5f;
        o[i] = -1;
    }
    s.args.vector_add = (struct vgpu_args_vector_add){ D, D + 4096, D + 8192, 1024 };
    CHECK(status_of(dev, &s) == VGPU_S_OK, "vector_add after the CU operations");
    for (int i = 0; i < 1024; i++) {
        wrong += o[i] != (float)i + 0.5f;
    }
    CHECK(wrong == 0, "vector_add: %d wrong elements", wrong);
}

int main(void)
{
    struct vgpu_open_opts opts = { .transport = "sim", .shm_size = SHM, .vm_id = 61,
                                   .vm_name = "cuops-cpu" };
    struct fh_mediator med;
    struct vgpu_dev *dev = NULL;
    int r;

    if (fh_mediator_start(&med, NULL, NULL) < 0) {
        CHECK(false, "mediator starts");
        return fh_summary();
    }
    opts.socket_path = med.sock;
    r = vgpu_open(&opts, &dev);
    CHECK(r == 0, "vgpu_open: %s", r ? vgpu_strerror(r) : "ok");
    if (r == 0) {
        test_raw(dev);
        test_cu_layer(dev);
        test_phase1_after(dev);
        vgpu_close(dev);
    }
    test_queue_windows(med.sock);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 40);
    }
    fh_mediator_stop(&med, false);
    fh_mediator_cleanup(&med);
    return fh_summary();
}
