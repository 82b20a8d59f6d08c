/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Unit tests of libvgpu's CUDA operations layer (libvgpu/cu.c) over plain
 * memory (the "mem" transport). A thread plays the mediator and the GPU: it
 * takes requests from the SQ (as many as the test allows), runs a small
 * model of each CU operation on a private "device memory" buffer, and
 * completes them, recording every request it saw.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "libvgpu/transport.h"
#include "vgpu/libvgpu.h"
#include "vgpu/ring.h"

#define SHM_SIZE    (4ull << 20)
#define DEV_BASE    0x7f0000000000ull
#define DEV_SIZE    (1u << 20)
#define LOG_MAX     4096
#define STAGE_SMALL (64ull << 10)

struct seen {
    struct vgpu_sqe sqe;
    uint8_t params[64];         /* a launch's first parameter bytes, as taken */
};

struct host {
    void *shm;
    struct vgpu_shm_ctrl *ctrl;
    pthread_t thread;
    int stop;                   /* atomics: the test thread writes, the host reads */
    int budget;                 /* requests still to take; < 0: any number */
    /* Statuses to give, by the index of the request (0 = first taken). */
    int32_t fail_status[LOG_MAX];
    uint64_t fail_result[LOG_MAX];
    struct seen log[LOG_MAX];
    uint32_t nlog;              /* taken (published before the completion) */
    uint32_t ndone;             /* completed */
    uint8_t dev[DEV_SIZE];      /* the model's device memory at DEV_BASE */
    /* Staged HtoD sources since the last stream sync: must never be reused. */
    uint64_t pinned_off[64], pinned_len[64];
    unsigned npinned;
    int pinned_violation;
};

struct fixture {
    void *shm;
    struct vgpu_dev *dev;
    struct vgpu_cu *cu;
    struct host host;
};

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

    nanosleep(&ts, NULL);
}

static uint8_t *shm_at(struct host *h, uint64_t off)
{
    return (uint8_t *)h->shm + off;
}

/* The model's device memory for [dptr, dptr + len), or NULL. */
static uint8_t *dev_at(struct host *h, uint64_t dptr, uint64_t len)
{
    if (dptr < DEV_BASE || dptr - DEV_BASE > DEV_SIZE || len > DEV_SIZE - (dptr - DEV_BASE)) {
        return NULL;
    }
    return h->dev + (dptr - DEV_BASE);
}

static int32_t run(struct host *h, const struct vgpu_sqe *s, uint64_t *result)
{
    switch (s->opcode) {
    case VGPU_OP_CU_DEVICE_INFO: {
        struct vgpu_cu_device_info di;

        memset(&di, 0, sizeof(di));
        memset(di.name, 'x', sizeof(di.name));      /* unterminated: the library ends it */
        di.total_mem = 1ull << 30;
        di.driver_version = 13000;
        di.attr_count = 1000;                        /* more than there are */
        di.attrs[75] = 9;
        memcpy(shm_at(h, s->args.cu_out.out_off), &di, sizeof(di));
        return VGPU_S_OK;
    }
    case VGPU_OP_CU_MEM_GET_INFO:
        *result = 123456789;
        return VGPU_S_OK;
    case VGPU_OP_CU_MEM_ALLOC:
        *result = DEV_BASE + 4096;
        return VGPU_S_OK;
    case VGPU_OP_CU_MEMSET: {
        uint8_t *d = dev_at(h, s->args.cu_memset.dptr, s->args.cu_memset.count);

        if (!d || s->args.cu_memset.elem_size != 1) {
            return VGPU_S_BAD_ARGS;
        }
        memset(d, (int)(s->args.cu_memset.value & 0xff), s->args.cu_memset.count);
        return VGPU_S_OK;
    }
    case VGPU_OP_CU_MEMCPY_HTOD: {
        uint8_t *d = dev_at(h, s->args.cu_memcpy.dst, s->args.cu_memcpy.len);

        if (!d) {
            return VGPU_S_BAD_ARGS;
        }
        /* A real HtoD may read its source until the stream syncs. */
        for (unsigned i = 0; i < h->npinned; i++) {
            uint64_t a = s->args.cu_memcpy.src, b = h->pinned_off[i];

            if (a < b + h->pinned_len[i] && b < a + s->args.cu_memcpy.len) {
                h->pinned_violation = 1;
            }
        }
        if (h->npinned < 64) {
            h->pinned_off[h->npinned] = s->args.cu_memcpy.src;
            h->pinned_len[h->npinned++] = s->args.cu_memcpy.len;
        }
        memcpy(d, shm_at(h, s->args.cu_memcpy.src), s->args.cu_memcpy.len);
        return VGPU_S_OK;
    }
    case VGPU_OP_CU_MEMCPY_DTOH: {
        uint8_t *d = dev_at(h, s->args.cu_memcpy.src, s->args.cu_memcpy.len);

        if (!d) {
            return VGPU_S_BAD_ARGS;
        }
        memcpy(shm_at(h, s->args.cu_memcpy.dst), d, s->args.cu_memcpy.len);
        return VGPU_S_OK;
    }
    case VGPU_OP_CU_STREAM_SYNC:
    case VGPU_OP_CU_CTX_SYNC:
        h->npinned = 0;
        return VGPU_S_OK;
    case VGPU_OP_CU_MODULE_LOAD:
        /* The image's first byte, to prove it arrived. */
        *result = 0x100 + *shm_at(h, s->args.cu_module_load.image_off);
        return VGPU_S_OK;
    case VGPU_OP_CU_MODULE_GET_FUNCTION: {
        const char *name = (const char *)shm_at(h, s->args.cu_symbol.name_off);
        struct vgpu_cu_func_info fi = { .param_count = 3, .param_bytes = 20,
                                        .max_threads = 1024, .num_regs = 32 };
        struct vgpu_cu_param p[3] = { { 0, 8 }, { 8, 8 }, { 16, 4 } };
        uint8_t *out = shm_at(h, s->args.cu_symbol.out_off);

        if (name[s->args.cu_symbol.name_len - 1] != '\0' || strcmp(name, "vadd") != 0) {
            *result = 500;                           /* CUDA_ERROR_NOT_FOUND */
            return VGPU_S_CUDA_ERROR;
        }
        memcpy(out, &fi, sizeof(fi));
        memcpy(out + sizeof(fi), p, sizeof(p));
        *result = 42;
        return VGPU_S_OK;
    }
    case VGPU_OP_CU_MODULE_GET_GLOBAL: {
        struct vgpu_cu_global g = { DEV_BASE + 64, 256 };

        memcpy(shm_at(h, s->args.cu_symbol.out_off), &g, sizeof(g));
        return VGPU_S_OK;
    }
    case VGPU_OP_CU_STREAM_CREATE:
    case VGPU_OP_CU_EVENT_CREATE:
        *result = 7;
        return VGPU_S_OK;
    case VGPU_OP_CU_STREAM_QUERY:
    case VGPU_OP_CU_EVENT_QUERY:
        *result = s->args.cu_handle.handle == 9;     /* 9 is "still running" */
        return VGPU_S_OK;
    case VGPU_OP_CU_EVENT_ELAPSED: {
        float ms = 1.5f;
        uint32_t bits;

        memcpy(&bits, &ms, sizeof(bits));
        *result = bits;
        return VGPU_S_OK;
    }
    case VGPU_OP_CU_FUNC_GET_ATTR:
        *result = (uint32_t)-3;
        return VGPU_S_OK;
    case VGPU_OP_CU_OCCUPANCY:
        *result = 16;
        return VGPU_S_OK;
    default:
        return VGPU_S_OK;
    }
}

static void *host_main(void *arg)
{
    struct host *h = arg;
    struct vgpu_sqe *sq = vgpu_shm_sq(h->shm);
    struct vgpu_cqe *cq = vgpu_shm_cq(h->shm);

    while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
        uint32_t head = h->ctrl->sq_head, tail = vgpu_load_acquire(&h->ctrl->sq_tail);
        int budget = __atomic_load_n(&h->budget, __ATOMIC_ACQUIRE);
        struct vgpu_cqe c;
        struct seen *seen;
        uint32_t n;

        if (head == tail || budget == 0) {
            sleep_us(50);
            continue;
        }
        n = h->nlog;
        seen = &h->log[n < LOG_MAX ? n : LOG_MAX - 1];
        seen->sqe = sq[vgpu_ring_slot(head, VGPU_SQ_ENTRIES)];
        if (seen->sqe.opcode == VGPU_OP_CU_LAUNCH && seen->sqe.args.cu_launch.params_len) {
            memcpy(seen->params, shm_at(h, seen->sqe.args.cu_launch.params_off),
                   seen->sqe.args.cu_launch.params_len < sizeof(seen->params)
                   ? seen->sqe.args.cu_launch.params_len : sizeof(seen->params));
        }
        memset(&c, 0, sizeof(c));
        c.user_data = seen->sqe.user_data;
        c.tag = seen->sqe.tag;
        c.status = run(h, &seen->sqe, &c.result);
        if (n < LOG_MAX && h->fail_status[n]) {
            c.status = h->fail_status[n];
            c.result = h->fail_result[n];
        }
        cq[vgpu_ring_slot(h->ctrl->cq_tail, VGPU_CQ_ENTRIES)] = c;
        __atomic_store_n(&h->nlog, n + 1, __ATOMIC_RELEASE);
        if (budget > 0) {
            __atomic_store_n(&h->budget, budget - 1, __ATOMIC_RELEASE);
        }
        vgpu_store_release(&h->ctrl->cq_tail, h->ctrl->cq_tail + 1);
        vgpu_store_release(&h->ctrl->sq_head, head + 1);
        __atomic_store_n(&h->ndone, n + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void set_budget(struct fixture *f, int n)
{
    __atomic_store_n(&f->host.budget, n, __ATOMIC_RELEASE);
}

static uint32_t nlog(struct fixture *f)
{
    return __atomic_load_n(&f->host.nlog, __ATOMIC_ACQUIRE);
}

/* Waits until the host has completed n requests in all. */
static void wait_taken(struct fixture *f, uint32_t n)
{
    for (int i = 0; i < 20000 && __atomic_load_n(&f->host.ndone, __ATOMIC_ACQUIRE) < n; i++) {
        sleep_us(100);
    }
    assert_true(__atomic_load_n(&f->host.ndone, __ATOMIC_ACQUIRE) >= n);
}

static int setup_with(void **state, uint64_t staging, int timeout_ms)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct vgpu_cu_opts opts = { .staging_size = staging, .timeout_ms = timeout_ms };

    assert_non_null(f);
    f->shm = aligned_alloc(4096, SHM_SIZE);
    assert_non_null(f->shm);
    memset(f->shm, 0, SHM_SIZE);
    assert_int_equal(vgpu_open_mem(f->shm, SHM_SIZE, &f->dev), 0);
    f->host.shm = f->shm;
    f->host.ctrl = vgpu_shm_ctrl(f->shm);
    f->host.budget = -1;
    assert_int_equal(vgpu_cu_open(f->dev, &opts, &f->cu), 0);
    assert_int_equal(pthread_create(&f->host.thread, NULL, host_main, &f->host), 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 0, 0);
}

/* 64 KiB of staging, and waits that give up after 300 ms. */
static int setup_small(void **state)
{
    return setup_with(state, STAGE_SMALL, 300);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    set_budget(f, -1);
    vgpu_cu_close(f->cu);
    __atomic_store_n(&f->host.stop, 1, __ATOMIC_RELEASE);
    pthread_join(f->host.thread, NULL);
    vgpu_close(f->dev);
    free(f->shm);
    free(f);
    return 0;
}

/* The last request the host took, checked for the library's envelope. */
static const struct vgpu_sqe *last(struct fixture *f, uint16_t opcode)
{
    const struct vgpu_sqe *s;

    assert_true(nlog(f) > 0);
    s = &f->host.log[nlog(f) - 1].sqe;
    assert_int_equal(s->opcode, opcode);
    assert_int_equal(s->flags, 0);
    assert_int_equal(s->tag, (uint32_t)s->user_data);
    return s;
}

/* ---------------------------------------------------------------------- */

static void test_open(void **state)
{
    struct fixture *f = *state;
    struct vgpu_cu_opts bad = { .staging_size = 1024 };
    struct vgpu_cu *cu2 = NULL;
    struct vgpu_dev_info info;
    uint64_t off;

    /* The scratch area and the default staging ring (4 MiB > a data area
     * of 4 MiB / 8) came from the data area. */
    assert_int_equal(vgpu_alloc(f->dev, 1, 1, &off), 0);
    assert_int_equal(vgpu_get_info(f->dev, &info), 0);
    assert_true(off >= VGPU_SHM_DATA_OFFSET + info.data_size / 8);
    assert_true(off < VGPU_SHM_DATA_OFFSET + info.data_size / 8 + 16384);
    assert_ptr_equal(vgpu_cu_dev(f->cu), f->dev);
    assert_null(vgpu_cu_dev(NULL));

    assert_int_equal(vgpu_cu_open(f->dev, &bad, &cu2), -EINVAL);
    bad.staging_size = 0;
    bad.timeout_ms = -1;
    assert_int_equal(vgpu_cu_open(f->dev, &bad, &cu2), -EINVAL);
    assert_int_equal(vgpu_cu_open(NULL, NULL, &cu2), -EINVAL);
    assert_int_equal(vgpu_cu_open(f->dev, NULL, NULL), -EINVAL);
    bad.timeout_ms = 0;
    bad.staging_size = 8ull << 20;                      /* more than is left */
    assert_int_equal(vgpu_cu_open(f->dev, &bad, &cu2), -ENOMEM);
    /* A failed open took nothing from the data area. */
    assert_int_equal(vgpu_alloc(f->dev, 1, 1, &bad.staging_size), 0);
    assert_int_equal(bad.staging_size, off + 1);

    /* A request in flight on the handle: a second layer on it is refused. */
    set_budget(f, 0);
    assert_int_equal(vgpu_cu_memset_async(f->cu, DEV_BASE, 0, 1, 16, 0), 0);
    assert_int_equal(vgpu_cu_outstanding(f->cu), 1);
    assert_int_equal(vgpu_cu_open(f->dev, NULL, &cu2), -EBUSY);
    set_budget(f, -1);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    assert_int_equal(vgpu_cu_outstanding(f->cu), 0);
    vgpu_cu_close(NULL);
}

/* Every wrapper puts what the ABI says where the ABI says it. */
static void test_marshalling(void **state)
{
    struct fixture *f = *state;
    struct vgpu_cu_device_info di;
    struct vgpu_cu_func_info fi;
    struct vgpu_cu_param params[2];
    struct vgpu_args_cu_memcpy2d m2 = { .dst = DEV_BASE, .src = VGPU_SHM_DATA_OFFSET,
                                        .dst_pitch = 64, .src_pitch = 32, .width = 16,
                                        .height = 2, .stream = 3, .src_kind = VGPU_CU_MEM_SHM };
    struct vgpu_args_cu_launch la = { .func = 42, .stream = 2, .grid = { 4, 1, 1 },
                                      .block = { 128, 1, 1 }, .shared_bytes = 256,
                                      .params_len = 20 };
    const struct vgpu_sqe *s;
    uint64_t u = 0, g_dptr = 0, g_bytes = 0;
    uint32_t h = 0;
    int32_t v = 0;
    int done = -1;
    float ms = 0;
    uint8_t pbuf[20];

    assert_int_equal(vgpu_cu_device_info(f->cu, &di), 0);
    s = last(f, VGPU_OP_CU_DEVICE_INFO);
    assert_int_equal(s->args.cu_out.out_len, sizeof(di));
    assert_int_equal(s->args.cu_out.out_off % 8, 0);
    assert_int_equal(di.name[0], 'x');
    assert_int_equal(di.name[sizeof(di.name) - 1], '\0');   /* terminated by the library */
    assert_int_equal(di.driver_version, 13000);
    assert_int_equal(di.attr_count, VGPU_CU_ATTRS);
    assert_int_equal(di.attrs[75], 9);

    assert_int_equal(vgpu_cu_mem_get_info(f->cu, &u), 0);
    assert_int_equal(u, 123456789);
    last(f, VGPU_OP_CU_MEM_GET_INFO);

    assert_int_equal(vgpu_cu_mem_alloc(f->cu, 1000, &u), 0);
    assert_int_equal(u, DEV_BASE + 4096);
    s = last(f, VGPU_OP_CU_MEM_ALLOC);
    assert_int_equal(s->args.cu_mem.bytes, 1000);
    assert_int_equal(s->args.cu_mem.dptr, 0);
    assert_int_equal(vgpu_cu_mem_free(f->cu, DEV_BASE + 4096), 0);
    s = last(f, VGPU_OP_CU_MEM_FREE);
    assert_int_equal(s->args.cu_mem.dptr, DEV_BASE + 4096);
    assert_int_equal(s->args.cu_mem.bytes, 0);

    assert_int_equal(vgpu_cu_memset_async(f->cu, DEV_BASE, 0x1ab, 1, 100, 5), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    s = last(f, VGPU_OP_CU_MEMSET);
    assert_int_equal(s->args.cu_memset.dptr, DEV_BASE);
    assert_int_equal(s->args.cu_memset.count, 100);
    assert_int_equal(s->args.cu_memset.value, 0x1ab);
    assert_int_equal(s->args.cu_memset.elem_size, 1);
    assert_int_equal(s->args.cu_memset.stream, 5);
    assert_int_equal(vgpu_cu_memset_async(f->cu, DEV_BASE, 0, 3, 100, 5), -EINVAL);

    assert_int_equal(vgpu_cu_memcpy_htod_async(f->cu, DEV_BASE + 8, VGPU_SHM_DATA_OFFSET + 64,
                                               32, 1), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    s = last(f, VGPU_OP_CU_MEMCPY_HTOD);
    assert_int_equal(s->args.cu_memcpy.dst, DEV_BASE + 8);
    assert_int_equal(s->args.cu_memcpy.src, VGPU_SHM_DATA_OFFSET + 64);
    assert_int_equal(s->args.cu_memcpy.len, 32);
    assert_int_equal(s->args.cu_memcpy.stream, 1);
    assert_int_equal(vgpu_cu_memcpy_dtoh_async(f->cu, VGPU_SHM_DATA_OFFSET + 64, DEV_BASE + 8,
                                               32, 2), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    s = last(f, VGPU_OP_CU_MEMCPY_DTOH);
    assert_int_equal(s->args.cu_memcpy.dst, VGPU_SHM_DATA_OFFSET + 64);
    assert_int_equal(s->args.cu_memcpy.src, DEV_BASE + 8);
    assert_int_equal(s->args.cu_memcpy.stream, 2);
    assert_int_equal(vgpu_cu_memcpy_dtod_async(f->cu, DEV_BASE, DEV_BASE + 64, 64, 0), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    s = last(f, VGPU_OP_CU_MEMCPY_DTOD);
    assert_int_equal(s->args.cu_memcpy.dst, DEV_BASE);
    assert_int_equal(s->args.cu_memcpy.src, DEV_BASE + 64);
    assert_int_equal(vgpu_cu_memcpy_2d_async(f->cu, &m2), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    s = last(f, VGPU_OP_CU_MEMCPY_2D);
    assert_memory_equal(&s->args.cu_memcpy2d, &m2, sizeof(m2));

    {
        static const uint8_t image[] = { 0x7f, 'E', 'L', 'F', 1, 2, 3 };

        assert_int_equal(vgpu_cu_module_load_data(f->cu, image, sizeof(image), &h), 0);
        assert_int_equal(h, 0x17f);                      /* the host saw the image */
        s = last(f, VGPU_OP_CU_MODULE_LOAD);
        assert_int_equal(s->args.cu_module_load.image_len, sizeof(image));
        assert_memory_equal((uint8_t *)f->shm + s->args.cu_module_load.image_off, image,
                            sizeof(image));
    }
    assert_int_equal(vgpu_cu_module_unload(f->cu, 0x17f), 0);
    s = last(f, VGPU_OP_CU_MODULE_UNLOAD);
    assert_int_equal(s->args.cu_handle.handle, 0x17f);

    assert_int_equal(vgpu_cu_module_get_function(f->cu, 3, "vadd", &h, &fi, params, 2), 0);
    s = last(f, VGPU_OP_CU_MODULE_GET_FUNCTION);
    assert_int_equal(s->args.cu_symbol.module, 3);
    assert_int_equal(s->args.cu_symbol.name_len, 5);
    assert_int_equal(s->args.cu_symbol.out_off % 8, 0);
    assert_true(s->args.cu_symbol.out_len >= sizeof(fi) + VGPU_CU_MAX_PARAMS * 8);
    assert_int_equal(h, 42);
    assert_int_equal(fi.param_count, 3);
    assert_int_equal(fi.param_bytes, 20);
    assert_int_equal(params[1].offset, 8);               /* only 2 of 3 asked for */
    assert_int_equal(params[1].size, 8);
    assert_int_equal(vgpu_cu_module_get_function(f->cu, 3, "nope", &h, NULL, NULL, 0),
                     VGPU_S_CUDA_ERROR);
    assert_int_equal(vgpu_cu_last_result(f->cu), 500);
    assert_int_equal(vgpu_cu_module_get_global(f->cu, 3, "table", &g_dptr, &g_bytes), 0);
    s = last(f, VGPU_OP_CU_MODULE_GET_GLOBAL);
    assert_int_equal(s->args.cu_symbol.out_len, sizeof(struct vgpu_cu_global));
    assert_int_equal(g_dptr, DEV_BASE + 64);
    assert_int_equal(g_bytes, 256);

    for (unsigned i = 0; i < sizeof(pbuf); i++) {
        pbuf[i] = (uint8_t)(i * 7 + 1);
    }
    assert_int_equal(vgpu_cu_launch_params(f->cu, &la, pbuf), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    s = last(f, VGPU_OP_CU_LAUNCH);
    assert_int_equal(s->args.cu_launch.func, 42);
    assert_int_equal(s->args.cu_launch.stream, 2);
    assert_int_equal(s->args.cu_launch.grid[0], 4);
    assert_int_equal(s->args.cu_launch.block[0], 128);
    assert_int_equal(s->args.cu_launch.shared_bytes, 256);
    assert_int_equal(s->args.cu_launch.params_len, 20);
    assert_int_equal(s->args.cu_launch.params_off % 8, 0);
    assert_memory_equal(f->host.log[nlog(f) - 1].params, pbuf, sizeof(pbuf));
    la.params_len = 0;
    la.params_off = 0x12345;                             /* ignored: no parameters */
    assert_int_equal(vgpu_cu_launch_params(f->cu, &la, NULL), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    s = last(f, VGPU_OP_CU_LAUNCH);
    assert_int_equal(s->args.cu_launch.params_off, 0);
    la.params_len = 16;
    la.params_off = VGPU_SHM_DATA_OFFSET + 128;
    assert_int_equal(vgpu_cu_launch(f->cu, &la), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    s = last(f, VGPU_OP_CU_LAUNCH);
    assert_int_equal(s->args.cu_launch.params_off, VGPU_SHM_DATA_OFFSET + 128);
    la.params_len = VGPU_CU_MAX_PARAM_BYTES + 1;
    assert_int_equal(vgpu_cu_launch_params(f->cu, &la, pbuf), -EINVAL);

    assert_int_equal(vgpu_cu_stream_create(f->cu, 1, -2, &h), 0);
    s = last(f, VGPU_OP_CU_STREAM_CREATE);
    assert_int_equal(s->args.cu_create.flags, 1);
    assert_int_equal(s->args.cu_create.priority, -2);
    assert_int_equal(h, 7);
    assert_int_equal(vgpu_cu_stream_query(f->cu, 9, &done), 0);
    assert_int_equal(done, 0);
    assert_int_equal(vgpu_cu_stream_query(f->cu, 0, &done), 0);
    assert_int_equal(done, 1);
    s = last(f, VGPU_OP_CU_STREAM_QUERY);
    assert_int_equal(s->args.cu_handle.handle, 0);
    assert_int_equal(vgpu_cu_stream_sync(f->cu, 7), 0);
    assert_int_equal(last(f, VGPU_OP_CU_STREAM_SYNC)->args.cu_handle.handle, 7);
    assert_int_equal(vgpu_cu_stream_wait_event(f->cu, 7, 8), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    s = last(f, VGPU_OP_CU_STREAM_WAIT_EVENT);
    assert_int_equal(s->args.cu_pair.a, 7);
    assert_int_equal(s->args.cu_pair.b, 8);
    assert_int_equal(vgpu_cu_stream_destroy(f->cu, 7), 0);
    assert_int_equal(last(f, VGPU_OP_CU_STREAM_DESTROY)->args.cu_handle.handle, 7);

    assert_int_equal(vgpu_cu_event_create(f->cu, 2, &h), 0);
    s = last(f, VGPU_OP_CU_EVENT_CREATE);
    assert_int_equal(s->args.cu_create.flags, 2);
    assert_int_equal(s->args.cu_create.priority, 0);
    assert_int_equal(vgpu_cu_event_record(f->cu, 7, 3), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    s = last(f, VGPU_OP_CU_EVENT_RECORD);
    assert_int_equal(s->args.cu_pair.a, 7);              /* event */
    assert_int_equal(s->args.cu_pair.b, 3);              /* stream */
    assert_int_equal(vgpu_cu_event_sync(f->cu, 7), 0);
    last(f, VGPU_OP_CU_EVENT_SYNC);
    assert_int_equal(vgpu_cu_event_query(f->cu, 9, &done), 0);
    assert_int_equal(done, 0);
    last(f, VGPU_OP_CU_EVENT_QUERY);
    assert_int_equal(vgpu_cu_event_elapsed(f->cu, 7, 8, &ms), 0);
    assert_true(ms == 1.5f);
    s = last(f, VGPU_OP_CU_EVENT_ELAPSED);
    assert_int_equal(s->args.cu_pair.a, 7);
    assert_int_equal(s->args.cu_pair.b, 8);
    assert_int_equal(vgpu_cu_event_destroy(f->cu, 7), 0);
    last(f, VGPU_OP_CU_EVENT_DESTROY);

    assert_int_equal(vgpu_cu_ctx_sync(f->cu), 0);
    last(f, VGPU_OP_CU_CTX_SYNC);
    assert_int_equal(vgpu_cu_ctx_reset(f->cu), 0);
    last(f, VGPU_OP_CU_CTX_RESET);

    assert_int_equal(vgpu_cu_func_get_attr(f->cu, 42, 8, &v), 0);
    assert_int_equal(v, -3);
    s = last(f, VGPU_OP_CU_FUNC_GET_ATTR);
    assert_int_equal(s->args.cu_func_attr.func, 42);
    assert_int_equal(s->args.cu_func_attr.attr, 8);
    assert_int_equal(s->args.cu_func_attr.value, 0);
    assert_int_equal(vgpu_cu_func_set_attr(f->cu, 42, 8, 65536), 0);
    s = last(f, VGPU_OP_CU_FUNC_SET_ATTR);
    assert_int_equal(s->args.cu_func_attr.value, 65536);
    assert_int_equal(vgpu_cu_occupancy(f->cu, 42, 256, 1024, &v), 0);
    assert_int_equal(v, 16);
    s = last(f, VGPU_OP_CU_OCCUPANCY);
    assert_int_equal(s->args.cu_func_attr.attr, 256);
    assert_int_equal(s->args.cu_func_attr.value, 1024);

    /* The generic calls: the library's envelope, the caller's arguments. */
    {
        struct vgpu_sqe g;

        memset(&g, 0, sizeof(g));
        g.opcode = VGPU_OP_CU_MEM_GET_INFO;
        g.user_data = 1;                                 /* replaced */
        g.tag = 1;
        assert_int_equal(vgpu_cu_call(f->cu, &g, &u), 0);
        assert_int_equal(u, 123456789);
        s = last(f, VGPU_OP_CU_MEM_GET_INFO);
        assert_true(s->user_data != 1);
        g.opcode = VGPU_OP_CU_EVENT_RECORD;
        g.args.cu_pair.a = 11;
        assert_int_equal(vgpu_cu_submit_async(f->cu, &g), 0);
        assert_int_equal(vgpu_cu_drain(f->cu), 0);
        assert_int_equal(last(f, VGPU_OP_CU_EVENT_RECORD)->args.cu_pair.a, 11);
    }

    /* Sequence numbers: each request its own. */
    for (uint32_t i = 1; i < nlog(f); i++) {
        assert_true(f->host.log[i].sqe.user_data > f->host.log[i - 1].sqe.user_data);
    }

    /* Malformed arguments are refused before anything is sent. */
    u = nlog(f);
    assert_int_equal(vgpu_cu_module_get_function(f->cu, 3, "", &h, NULL, NULL, 0), -EINVAL);
    assert_int_equal(vgpu_cu_module_get_function(f->cu, 3, NULL, &h, NULL, NULL, 0), -EINVAL);
    assert_int_equal(vgpu_cu_module_get_function(f->cu, 3, "vadd", &h, NULL, NULL, 1), -EINVAL);
    assert_int_equal(vgpu_cu_mem_alloc(f->cu, 0, &g_dptr), -EINVAL);
    assert_int_equal(vgpu_cu_module_load_data(f->cu, pbuf, 0, &h), -EINVAL);
    assert_int_equal(vgpu_cu_stream_query(f->cu, 0, NULL), -EINVAL);
    assert_int_equal(vgpu_cu_event_elapsed(f->cu, 1, 2, NULL), -EINVAL);
    assert_int_equal(vgpu_cu_ctx_sync(NULL), -EINVAL);
    assert_int_equal(nlog(f), u);
}

/* Names up to VGPU_CU_MAX_NAME - 1 characters, staged with their NUL. */
static void test_symbol_names(void **state)
{
    struct fixture *f = *state;
    char name[VGPU_CU_MAX_NAME + 1];
    uint32_t h;

    memset(name, 'k', sizeof(name));
    name[VGPU_CU_MAX_NAME] = '\0';
    assert_int_equal(vgpu_cu_module_get_function(f->cu, 1, name, &h, NULL, NULL, 0), -EINVAL);
    name[VGPU_CU_MAX_NAME - 1] = '\0';
    assert_int_equal(vgpu_cu_module_get_function(f->cu, 1, name, &h, NULL, NULL, 0),
                     VGPU_S_CUDA_ERROR);                 /* sent, and not found */
    assert_int_equal(last(f, VGPU_OP_CU_MODULE_GET_FUNCTION)->args.cu_symbol.name_len,
                     VGPU_CU_MAX_NAME);
    assert_int_equal(vgpu_cu_module_get_function(f->cu, 1, "v", &h, NULL, NULL, 0),
                     VGPU_S_CUDA_ERROR);
    assert_int_equal(last(f, VGPU_OP_CU_MODULE_GET_FUNCTION)->args.cu_symbol.name_len, 2);
}

/*
 * The first error of asynchronous requests is kept, not returned by calls
 * that create something, returned once by the next synchronising call, then
 * gone.
 */
static void test_async_error_kept_once(void **state)
{
    struct fixture *f = *state;
    struct vgpu_cu_error e;
    uint64_t dptr = 0, base = nlog(f);
    uint32_t stream = 0;

    f->host.fail_status[base + 1] = VGPU_S_BAD_ARGS;
    f->host.fail_result[base + 1] = 0;
    f->host.fail_status[base + 2] = VGPU_S_CUDA_ERROR;
    f->host.fail_result[base + 2] = 700;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vgpu_cu_memset_async(f->cu, DEV_BASE, 1, 1, 8, 0), 0);
    }
    /* A non-synchronising call succeeds and hands out what it made. */
    assert_int_equal(vgpu_cu_mem_alloc(f->cu, 64, &dptr), 0);
    assert_int_equal(dptr, DEV_BASE + 4096);
    assert_int_equal(vgpu_cu_stream_create(f->cu, 0, 0, &stream), 0);
    /* Explicit read without clearing, twice: the same first error. */
    assert_int_equal(vgpu_cu_async_error(f->cu, &e, 0), VGPU_S_BAD_ARGS);
    assert_int_equal(e.opcode, VGPU_OP_CU_MEMSET);
    assert_int_equal(vgpu_cu_async_error(f->cu, NULL, 0), VGPU_S_BAD_ARGS);
    /* The synchronising call returns it, once. */
    assert_int_equal(vgpu_cu_ctx_sync(f->cu), VGPU_S_BAD_ARGS);
    assert_int_equal(vgpu_cu_ctx_sync(f->cu), 0);
    assert_int_equal(vgpu_cu_async_error(f->cu, &e, 1), 0);
    assert_int_equal(e.status, 0);

    /* The CUresult of a kept CUDA error, through a stream sync. */
    base = nlog(f);
    f->host.fail_status[base] = VGPU_S_CUDA_ERROR;
    f->host.fail_result[base] = 719;                     /* launch failed */
    {
        struct vgpu_args_cu_launch la = { .func = 1, .grid = { 1, 1, 1 },
                                          .block = { 1, 1, 1 } };

        assert_int_equal(vgpu_cu_launch(f->cu, &la), 0);
    }
    assert_int_equal(vgpu_cu_stream_sync(f->cu, 0), VGPU_S_CUDA_ERROR);
    assert_int_equal(vgpu_cu_last_result(f->cu), 719);
    assert_int_equal(vgpu_cu_stream_sync(f->cu, 0), 0);

    /* Explicit read with clear: the next sync has nothing to say. */
    base = nlog(f);
    f->host.fail_status[base] = VGPU_S_CONTEXT_LOST;
    assert_int_equal(vgpu_cu_event_record(f->cu, 3, 0), 0);
    wait_taken(f, (uint32_t)base + 1);
    assert_int_equal(vgpu_cu_async_error(f->cu, &e, 1), VGPU_S_CONTEXT_LOST);
    assert_int_equal(e.opcode, VGPU_OP_CU_EVENT_RECORD);
    assert_int_equal(vgpu_cu_event_sync(f->cu, 3), 0);

    /* A synchronous call's own failure is its own return, and not kept. */
    base = nlog(f);
    f->host.fail_status[base] = VGPU_S_QUOTA;
    assert_int_equal(vgpu_cu_mem_alloc(f->cu, 1ull << 40, &dptr), VGPU_S_QUOTA);
    assert_int_equal(vgpu_cu_ctx_sync(f->cu), 0);
    /* ... and drain reports the kept error too. */
    base = nlog(f);
    f->host.fail_status[base] = VGPU_S_BAD_RANGE;
    assert_int_equal(vgpu_cu_memcpy_dtod_async(f->cu, DEV_BASE, DEV_BASE + 8, 8, 0), 0);
    assert_int_equal(vgpu_cu_drain(f->cu), VGPU_S_BAD_RANGE);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
}

/*
 * Launch parameters live in the staging ring until their launch completes:
 * a launch that finds the ring full waits (here: gives up after the
 * timeout while the host takes nothing), and the space comes back, in
 * order, only after completion.
 */
static void test_staging_reuse_after_completion(void **state)
{
    struct fixture *f = *state;
    struct vgpu_args_cu_launch la = { .func = 1, .grid = { 1, 1, 1 }, .block = { 1, 1, 1 },
                                      .params_len = 16 << 10 };
    uint8_t *params = malloc(la.params_len);
    uint64_t first_off = 0, base = nlog(f);

    assert_non_null(params);
    set_budget(f, 0);
    /* 64 KiB of staging holds four launches of 16 KiB. */
    for (int i = 0; i < 4; i++) {
        memset(params, 0x10 + i, la.params_len);
        assert_int_equal(vgpu_cu_launch_params(f->cu, &la, params), 0);
    }
    assert_int_equal(vgpu_cu_outstanding(f->cu), 4);
    memset(params, 0x20, la.params_len);
    assert_int_equal(vgpu_cu_launch_params(f->cu, &la, params), -ETIMEDOUT);
    assert_int_equal(vgpu_cu_outstanding(f->cu), 4);     /* the fifth was not sent */

    /* The host takes one: its space, and only its, comes back. */
    set_budget(f, 1);
    wait_taken(f, (uint32_t)base + 1);
    first_off = f->host.log[base].sqe.args.cu_launch.params_off;
    assert_int_equal(vgpu_cu_launch_params(f->cu, &la, params), 0);
    set_budget(f, -1);
    assert_int_equal(vgpu_cu_drain(f->cu), 0);
    assert_int_equal(nlog(f), base + 5);
    assert_int_equal(f->host.log[base + 4].sqe.args.cu_launch.params_off, first_off);
    /* Every launch found its own parameters when the host took it. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f->host.log[base + i].params[0], i < 4 ? 0x10 + i : 0x20);
        assert_int_equal(f->host.log[base + i].params[63], i < 4 ? 0x10 + i : 0x20);
    }
    /* An image larger than the ring can never be staged. */
    {
        uint32_t m;

        assert_int_equal(vgpu_cu_module_load_data(f->cu, params, STAGE_SMALL + 1, &m),
                         -EMSGSIZE);
    }
    free(params);
}

/* A full ring: async submissions wait for completions, and go on. */
static void test_ring_full(void **state)
{
    struct fixture *f = *state;
    uint64_t base = nlog(f);

    set_budget(f, 0);
    for (unsigned i = 0; i < VGPU_SQ_ENTRIES; i++) {
        assert_int_equal(vgpu_cu_event_record(f->cu, 1, 0), 0);
    }
    assert_int_equal(vgpu_cu_outstanding(f->cu), VGPU_SQ_ENTRIES);
    /* Nobody takes anything: the wait gives up. */
    assert_int_equal(vgpu_cu_event_record(f->cu, 2, 0), -ETIMEDOUT);
    /* The host takes a few: the next one goes in. */
    set_budget(f, 3);
    assert_int_equal(vgpu_cu_event_record(f->cu, 2, 0), 0);
    assert_true(vgpu_cu_outstanding(f->cu) <= VGPU_SQ_ENTRIES);
    set_budget(f, -1);
    /* Hundreds more than the ring holds, without a wait of the caller's. */
    for (unsigned i = 0; i < 3 * VGPU_SQ_ENTRIES; i++) {
        assert_int_equal(vgpu_cu_event_record(f->cu, 3, 0), 0);
    }
    assert_int_equal(vgpu_cu_ctx_sync(f->cu), 0);
    assert_int_equal(vgpu_cu_outstanding(f->cu), 0);
    assert_int_equal(nlog(f), base + 4 * VGPU_SQ_ENTRIES + 2);
}

/* Staged copies through a 64 KiB ring: data intact both ways, and no
 * staging space reused before the stream sync that ends its copy. */
static void test_staged_copies(void **state)
{
    struct fixture *f = *state;
    const uint32_t len = 200000;                        /* several chunks, odd tail */
    uint8_t *src = malloc(len), *back = malloc(len);
    unsigned syncs = 0;
    uint64_t base = nlog(f);

    assert_non_null(src);
    assert_non_null(back);
    for (uint32_t i = 0; i < len; i++) {
        src[i] = (uint8_t)(i * 131 + (i >> 9));
    }
    assert_int_equal(vgpu_cu_memcpy_htod(f->cu, DEV_BASE + 100, src, len, 4), 0);
    assert_memory_equal(f->host.dev + 100, src, len);
    assert_int_equal(f->host.pinned_violation, 0);
    for (uint32_t i = (uint32_t)base; i < nlog(f); i++) {
        const struct vgpu_sqe *s = &f->host.log[i].sqe;

        if (s->opcode == VGPU_OP_CU_STREAM_SYNC) {
            assert_int_equal(s->args.cu_handle.handle, 4);
            syncs++;
        } else {
            assert_int_equal(s->opcode, VGPU_OP_CU_MEMCPY_HTOD);
            assert_true(s->args.cu_memcpy.len <= STAGE_SMALL / 2);
            assert_int_equal(s->args.cu_memcpy.stream, 4);
        }
    }
    assert_true(syncs >= 2);                            /* 7 chunks, 2 per lap */
    assert_int_equal(f->host.log[nlog(f) - 1].sqe.opcode, VGPU_OP_CU_STREAM_SYNC);

    memset(back, 0, len);
    assert_int_equal(vgpu_cu_memcpy_dtoh(f->cu, back, DEV_BASE + 100, len, 0), 0);
    assert_memory_equal(back, src, len);
    assert_int_equal(vgpu_cu_memcpy_htod(f->cu, DEV_BASE, src, 0, 0), 0);   /* nothing */
    assert_int_equal(vgpu_cu_memcpy_htod(f->cu, DEV_BASE, NULL, 1, 0), -EINVAL);

    /* A failed copy: the staged copy reports it, and nothing is written. */
    memset(back, 0x5a, len);
    assert_int_equal(vgpu_cu_memcpy_dtoh(f->cu, back, DEV_BASE + DEV_SIZE - 10, 100, 0),
                     VGPU_S_BAD_ARGS);
    assert_int_equal(back[0], 0x5a);
    assert_int_equal(vgpu_cu_ctx_sync(f->cu), 0);
    free(src);
    free(back);
}

/* A completion that is not ours is a protocol error. */
static void test_foreign_completion(void **state)
{
    struct fixture *f = *state;
    struct vgpu_shm_ctrl *ctrl = vgpu_shm_ctrl(f->shm);
    struct vgpu_cqe *cq = vgpu_shm_cq(f->shm);
    struct vgpu_cu *cu = f->cu;
    uint32_t tail;

    /* Stop the host thread; play it by hand. */
    set_budget(f, 0);
    assert_int_equal(vgpu_cu_event_record(cu, 1, 0), 0);
    tail = ctrl->cq_tail;
    memset(&cq[vgpu_ring_slot(tail, VGPU_CQ_ENTRIES)], 0, sizeof(struct vgpu_cqe));
    cq[vgpu_ring_slot(tail, VGPU_CQ_ENTRIES)].user_data = 0xdead;
    cq[vgpu_ring_slot(tail, VGPU_CQ_ENTRIES)].tag = 0xdead;
    vgpu_store_release(&ctrl->cq_tail, tail + 1);
    vgpu_store_release(&ctrl->sq_head, ctrl->sq_head + 1);
    assert_int_equal(vgpu_cu_async_error(cu, NULL, 0), -EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_marshalling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symbol_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_error_kept_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staging_reuse_after_completion, setup_small,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ring_full, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_staged_copies, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_completion, setup_small, teardown),
    };

    return cmocka_run_group_tests_name("libvgpu-cu", tests, NULL, NULL);
}
