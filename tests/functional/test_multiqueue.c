/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Several queue pairs of one device (ABI 1.2) against the real mediator:
 *  - four queues of one sim device driven from four threads at once, every
 *    vector_add checked, every completion on the CQ of its own queue;
 *  - a request naming memory outside its queue's window completes bad-range
 *    and touches nothing; a window outside the data area makes the queue's
 *    requests bad-range; ranges in the queue regions are refused;
 *  - corrupt indexes in queue 2 do not disturb queue 1;
 *  - a mediator killed (SIGKILL) with requests in flight on three queues:
 *    after the restart each queue completes each request exactly once, in
 *    order;
 *  - HELLO: the 112-byte HELLO is one queue, the 1.4 HELLO with a count is
 *    taken, bad counts and too small memory are refused.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vgpu/libvgpu.h"
#include "vgpu/ring.h"
#include "fhelp.h"

#define NQ        4u
#define SHM       (16u << 20)
#define ROUNDS    150u
#define BATCH     8u

static struct vgpu_queue_desc *qtable(struct vgpu_dev *dev)
{
    return (struct vgpu_queue_desc *)((uint8_t *)vgpu_shm_base(dev, NULL) +
                                      VGPU_SHM_QTABLE_OFFSET);
}

/* Splits the data area into NQ equal windows, as a guest driver would. */
static uint64_t set_windows(struct vgpu_dev *dev, uint32_t nq)
{
    struct vgpu_dev_info info;
    uint64_t w;

    vgpu_get_info(dev, &info);
    w = ((info.data_end - VGPU_SHM_DATA_OFFSET) / nq) & ~4095ull;
    for (uint32_t q = 0; q < nq; q++) {
        qtable(dev)[q].win_off = VGPU_SHM_DATA_OFFSET + q * w;
        qtable(dev)[q].win_len = w;
    }
    return w;
}

struct worker {
    struct vgpu_dev *dev;
    uint32_t q;
    unsigned ok, wrong, foreign, errors;
};

static void fill_add(struct vgpu_sqe *sqe, uint64_t a, uint64_t b, uint64_t out, uint64_t n,
                     uint32_t tag, uint64_t user)
{
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = VGPU_OP_VECTOR_ADD;
    sqe->tag = tag;
    sqe->user_data = user;
    sqe->args.vector_add = (struct vgpu_args_vector_add){ .a_off = a, .b_off = b,
                                                          .out_off = out, .n = n };
}

/* BATCH vector_adds in flight at a time on the worker's own queue. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const uint64_t n = 1000 + w->q;

    for (unsigned round = 0; round < ROUNDS; round++) {
        uint64_t a[BATCH], b[BATCH], o[BATCH];

        vgpu_free_all(w->dev);
        for (unsigned k = 0; k < BATCH; k++) {
            struct vgpu_sqe sqe;
            float *pa, *pb;

            if (vgpu_alloc(w->dev, n * 4, 64, &a[k]) || vgpu_alloc(w->dev, n * 4, 64, &b[k]) ||
                vgpu_alloc(w->dev, n * 4, 64, &o[k])) {
                w->errors++;
                return NULL;
            }
            pa = vgpu_ptr(w->dev, a[k]);
            pb = vgpu_ptr(w->dev, b[k]);
            for (uint64_t i = 0; i < n; i++) {
                pa[i] = (float)(i + round);
                pb[i] = (float)(w->q * 1000 + k);
            }
            fill_add(&sqe, a[k], b[k], o[k], n, round * BATCH + k, (uint64_t)w->q << 32 | k);
            if (vgpu_submit(w->dev, &sqe) < 0) {
                w->errors++;
                return NULL;
            }
        }
        vgpu_kick(w->dev);
        for (unsigned k = 0; k < BATCH; k++) {
            struct vgpu_cqe cqe;
            const float *po;
            bool good = true;

            if (vgpu_wait(w->dev, &cqe, 10000) < 0) {
                w->errors++;
                return NULL;
            }
            if (cqe.user_data >> 32 != w->q || cqe.tag != round * BATCH + k) {
                w->foreign++;
                continue;
            }
            po = vgpu_ptr(w->dev, o[k]);
            for (uint64_t i = 0; i < n && good; i++) {
                good = po[i] == (float)(i + round) + (float)(w->q * 1000 + k);
            }
            if (cqe.status == VGPU_S_OK && cqe.result == n && good) {
                w->ok++;
            } else {
                w->wrong++;
            }
        }
    }
    return NULL;
}

static void test_concurrent(const char *sock)
{
    struct vgpu_open_opts o = { .transport = "sim", .socket_path = sock, .shm_size = SHM,
                                .vm_id = 10, .queues = NQ, .vm_name = "mq" };
    struct vgpu_dev *dev[NQ] = { 0 }, *again;
    struct worker w[NQ];
    pthread_t th[NQ];
    struct vgpu_dev_info info;
    uint64_t win;
    int r;

    r = vgpu_open(&o, &dev[0]);
    CHECK(r == 0, "sim device with %u queue pairs opens (%d %s)", NQ, r, vgpu_open_detail());
    if (r) {
        return;
    }
    vgpu_get_info(dev[0], &info);
    CHECK(info.queues == NQ && info.data_end == VGPU_SHM_DATA_END(SHM, NQ),
          "info: %u queues, data end %#llx", info.queues, (unsigned long long)info.data_end);
    win = set_windows(dev[0], NQ);
    vgpu_free_all(dev[0]);     /* queue 0's allocator now uses its window */
    for (uint32_t q = 1; q < NQ; q++) {
        r = vgpu_queue_open(dev[0], q, &dev[q]);
        CHECK(r == 0, "queue %u opens (%d)", q, r);
        if (r) {
            goto out;
        }
    }
    CHECK(vgpu_queue_open(dev[0], 2, &again) == -EBUSY, "a queue opens once");
    CHECK(vgpu_queue_open(dev[0], NQ, &again) == -EINVAL, "queue %u does not exist", NQ);
    vgpu_get_info(dev[3], &info);
    CHECK(info.queue == 3 && info.data_offset == VGPU_SHM_DATA_OFFSET + 3 * win &&
          info.data_size == win, "queue 3 allocates from its window");

    for (uint32_t q = 0; q < NQ; q++) {
        w[q] = (struct worker){ .dev = dev[q], .q = q };
        pthread_create(&th[q], NULL, worker_main, &w[q]);
    }
    for (uint32_t q = 0; q < NQ; q++) {
        pthread_join(th[q], NULL);
        CHECK(w[q].ok == ROUNDS * BATCH && !w[q].wrong && !w[q].foreign && !w[q].errors,
              "queue %u: %u of %u vector_adds correct on its own CQ (wrong %u, foreign %u, "
              "errors %u)", q, w[q].ok, ROUNDS * BATCH, w[q].wrong, w[q].foreign, w[q].errors);
    }
out:
    /* Any order: the link lives until the last handle. */
    for (uint32_t q = 0; q < NQ; q++) {
        vgpu_close(dev[q]);
    }
}

static int call(struct vgpu_dev *dev, struct vgpu_sqe *sqe, int32_t *status)
{
    struct vgpu_cqe cqe;
    int r = vgpu_call(dev, sqe, &cqe, 5000);

    *status = r == 0 ? cqe.status : -1;
    return r;
}

static uint64_t checksum(const uint8_t *p, uint64_t len)
{
    uint64_t h = 1469598103934665603ull;

    for (uint64_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

static void test_windows_and_corruption(const char *sock)
{
    struct vgpu_open_opts o = { .transport = "sim", .socket_path = sock, .shm_size = SHM,
                                .vm_id = 11, .queues = NQ };
    struct vgpu_dev *d0 = NULL, *d1 = NULL, *d2 = NULL;
    struct vgpu_sqe sqe;
    struct vgpu_shm_ctrl *c2;
    uint8_t *base;
    uint64_t win, a, b, out, sum1, sum2;
    uint32_t saved;
    int32_t st;
    int r;

    r = vgpu_open(&o, &d0);
    CHECK(r == 0, "second sim device opens (%d)", r);
    if (r) {
        return;
    }
    base = vgpu_shm_base(d0, NULL);
    win = set_windows(d0, NQ);
    if (vgpu_queue_open(d0, 1, &d1) || vgpu_queue_open(d0, 2, &d2)) {
        CHECK(false, "queues 1 and 2 open");
        goto out;
    }
    /* Queue 2 reads its own window and writes into queue 1's. */
    vgpu_alloc(d2, 4096, 64, &a);
    vgpu_alloc(d2, 4096, 64, &b);
    out = VGPU_SHM_DATA_OFFSET + win + 8192;
    memset(base + VGPU_SHM_DATA_OFFSET + win, 0x5a, win);
    sum1 = checksum(base + VGPU_SHM_DATA_OFFSET + win, win);
    fill_add(&sqe, a, b, out, 1024, 1, 0);
    r = call(d2, &sqe, &st);
    CHECK(r == 0 && st == VGPU_S_BAD_RANGE, "queue 2 writing queue 1's window: bad-range (%s)",
          vgpu_status_name(st));
    /* Reading another window is refused the same way. */
    fill_add(&sqe, out, b, a, 1024, 2, 0);
    r = call(d2, &sqe, &st);
    CHECK(r == 0 && st == VGPU_S_BAD_RANGE, "queue 2 reading queue 1's window: bad-range (%s)",
          vgpu_status_name(st));
    CHECK(checksum(base + VGPU_SHM_DATA_OFFSET + win, win) == sum1,
          "queue 1's window is untouched");
    /* The queue regions at the end of BAR2 are not data. */
    fill_add(&sqe, a, b, VGPU_SHM_DATA_END(SHM, NQ), 16, 3, 0);
    r = call(d2, &sqe, &st);
    CHECK(r == 0 && st == VGPU_S_BAD_RANGE, "a range in the queue regions: bad-range (%s)",
          vgpu_status_name(st));
    fill_add(&sqe, a, b, a, 1024, 4, 0);
    r = call(d2, &sqe, &st);
    CHECK(r == 0 && st == VGPU_S_OK, "inside its window queue 2 works (%s)",
          vgpu_status_name(st));

    /* A window that leaves the data area: every request of the queue. */
    qtable(d0)[2].win_off = SHM - 4096;
    qtable(d0)[2].win_len = 1u << 20;
    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = VGPU_OP_NOP;
    r = call(d2, &sqe, &st);
    CHECK(r == 0 && st == VGPU_S_BAD_RANGE, "a window outside the data area: bad-range (%s)",
          vgpu_status_name(st));
    qtable(d0)[2].win_off = UINT64_MAX - 10;
    qtable(d0)[2].win_len = 100;
    r = call(d2, &sqe, &st);
    CHECK(r == 0 && st == VGPU_S_BAD_RANGE, "a window that wraps: bad-range (%s)",
          vgpu_status_name(st));
    r = call(d1, &sqe, &st);
    CHECK(r == 0 && st == VGPU_S_OK, "queue 1 is not affected (%s)", vgpu_status_name(st));
    set_windows(d0, NQ);

    /* Queue 2's guest scribbles on its sq_tail: queue 1 carries on. */
    c2 = (struct vgpu_shm_ctrl *)(base + VGPU_SHM_QUEUE_OFFSET(SHM, 2));
    saved = c2->sq_tail;
    vgpu_store_release(&c2->sq_tail, saved + 5000);
    vgpu_kick(d2);
    sum2 = checksum(base + VGPU_SHM_DATA_OFFSET + 2 * win, win);
    for (int i = 0; i < 20; i++) {
        uint64_t x, y, z;

        vgpu_free_all(d1);
        vgpu_alloc(d1, 4096, 64, &x);
        vgpu_alloc(d1, 4096, 64, &y);
        vgpu_alloc(d1, 4096, 64, &z);
        for (int k = 0; k < 1024; k++) {
            ((float *)vgpu_ptr(d1, x))[k] = (float)k;
            ((float *)vgpu_ptr(d1, y))[k] = (float)i;
        }
        fill_add(&sqe, x, y, z, 1024, 10 + (uint32_t)i, 0);
        r = call(d1, &sqe, &st);
        if (r || st != VGPU_S_OK || ((float *)vgpu_ptr(d1, z))[1023] != 1023.0f + (float)i) {
            break;
        }
        if (i == 19) {
            CHECK(true, "queue 1 runs 20 requests while queue 2's indexes are corrupt");
        }
    }
    CHECK(r == 0 && st == VGPU_S_OK, "queue 1's last request ok (%d %s)", r,
          vgpu_status_name(st));
    CHECK(checksum(base + VGPU_SHM_DATA_OFFSET + 2 * win, win) == sum2,
          "nothing of queue 2 ran");
    /* Repaired, queue 2 works again. */
    vgpu_store_release(&c2->sq_tail, saved);
    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = VGPU_OP_NOP;
    sqe.tag = 77;
    r = call(d2, &sqe, &st);
    CHECK(r == 0 && st == VGPU_S_OK, "queue 2 works once its indexes are sane (%d %s)", r,
          vgpu_status_name(st));
out:
    vgpu_close(d2);
    vgpu_close(d1);
    vgpu_close(d0);
}

/* Requests in flight on three queues while the mediator is SIGKILLed. */
static void test_restart(struct fh_mediator *med)
{
    enum { RQ = 3, PER_Q = 24, N = 1 << 17 };
    static const char *const args[] = { "--slice-us", "0", "--inline-us", "0", NULL };
    struct vgpu_open_opts o = { .transport = "sim", .socket_path = med->sock,
                                .shm_size = 64u << 20, .vm_id = 12, .queues = RQ,
                                .reconnect_ms = 20, .link_timeout_ms = 10000 };
    struct vgpu_dev *d[RQ] = { 0 };
    unsigned got[RQ] = { 0 }, bad = 0, order = 0;
    uint64_t src[RQ], dst[RQ][PER_Q];
    int r;

    r = vgpu_open(&o, &d[0]);
    CHECK(r == 0, "restart: device with %d queues opens (%d)", RQ, r);
    if (r) {
        return;
    }
    set_windows(d[0], RQ);
    vgpu_free_all(d[0]);
    for (uint32_t q = 1; q < RQ; q++) {
        if (vgpu_queue_open(d[0], q, &d[q]) < 0) {
            CHECK(false, "restart: queue %u opens", q);
            goto out;
        }
    }
    /* Out-of-place vector_adds: idempotent, so a resumed one runs again
     * and still completes ok; each dst is written by exactly one request. */
    for (uint32_t q = 0; q < RQ; q++) {
        float *p;

        vgpu_alloc(d[q], N * 4, 64, &src[q]);
        p = vgpu_ptr(d[q], src[q]);
        for (int i = 0; i < N; i++) {
            p[i] = (float)i;
        }
        for (int k = 0; k < PER_Q; k++) {
            struct vgpu_sqe sqe;

            if (vgpu_alloc(d[q], N * 4, 64, &dst[q][k]) < 0) {
                CHECK(false, "restart: allocation");
                goto out;
            }
            memset(vgpu_ptr(d[q], dst[q][k]), 0, N * 4);
            fill_add(&sqe, src[q], src[q], dst[q][k], N, (uint32_t)k, (uint64_t)q << 32 | k);
            vgpu_submit(d[q], &sqe);
        }
    }
    for (uint32_t q = 0; q < RQ; q++) {
        vgpu_kick(d[q]);
    }
    usleep(3000);
    fh_mediator_stop(med, true);
    r = fh_mediator_start(med, med->dir, args);
    CHECK(r == 0, "restart: the mediator comes back");
    for (uint32_t q = 0; q < RQ; q++) {
        for (int k = 0; k < PER_Q; k++) {
            struct vgpu_cqe cqe;
            const float *p;

            r = vgpu_wait(d[q], &cqe, 20000);
            if (r < 0) {
                break;
            }
            got[q]++;
            order += cqe.tag != (uint32_t)k || cqe.user_data >> 32 != q;
            p = vgpu_ptr(d[q], dst[q][k]);
            bad += cqe.status != VGPU_S_OK || p[N - 1] != 2.0f * (N - 1) || p[7] != 14.0f;
        }
        CHECK(got[q] == PER_Q, "restart: queue %u completes all %d requests (%u)", q, PER_Q,
              got[q]);
        /* No duplicate: nothing more arrives. */
        {
            struct vgpu_cqe extra;

            CHECK(vgpu_wait(d[q], &extra, 200) == -ENOENT, "restart: queue %u: no duplicate", q);
        }
    }
    CHECK(order == 0 && bad == 0, "restart: in order on their own CQs (%u out of order), all "
          "correct (%u wrong)", order, bad);
out:
    for (uint32_t q = 0; q < RQ; q++) {
        vgpu_close(d[q]);
    }
}

/*
 * In-place SAXPYs on three queues while the mediator is SIGKILLed twice:
 * the restart mark is per queue, so the one request that was running (one
 * per VM runs at a time) completes interrupted on its own queue, every other
 * one completes ok with y = x + y applied exactly once.
 */
static void test_restart_in_place(struct fh_mediator *med)
{
    enum { RQ = 3, PER_Q = 4, N = 1 << 20 };
    static const char *const args[] = { "--slice-us", "0", "--inline-us", "0", NULL };
    struct vgpu_open_opts o = { .transport = "sim", .socket_path = med->sock,
                                .shm_size = 128u << 20, .vm_id = 13, .queues = RQ,
                                .reconnect_ms = 20, .link_timeout_ms = 10000 };
    struct vgpu_dev *d[RQ] = { 0 };
    uint64_t x[RQ], y[RQ][PER_Q];
    unsigned done = 0, ok = 0, interrupted = 0, wrong = 0, order = 0;
    int r;

    r = vgpu_open(&o, &d[0]);
    CHECK(r == 0, "in place: device opens (%d)", r);
    if (r) {
        return;
    }
    set_windows(d[0], RQ);
    vgpu_free_all(d[0]);
    for (uint32_t q = 1; q < RQ; q++) {
        if (vgpu_queue_open(d[0], q, &d[q]) < 0) {
            CHECK(false, "in place: queue %u opens", q);
            goto out;
        }
    }
    for (uint32_t q = 0; q < RQ; q++) {
        if (vgpu_alloc(d[q], N * 4, 64, &x[q]) < 0) {
            CHECK(false, "in place: allocation");
            goto out;
        }
        for (int i = 0; i < N; i++) {
            ((float *)vgpu_ptr(d[q], x[q]))[i] = 1.0f;
        }
        for (int k = 0; k < PER_Q; k++) {
            struct vgpu_sqe sqe = { .opcode = VGPU_OP_SAXPY, .tag = (uint32_t)k };

            if (vgpu_alloc(d[q], N * 4, 64, &y[q][k]) < 0) {
                CHECK(false, "in place: allocation");
                goto out;
            }
            for (int i = 0; i < N; i++) {
                ((float *)vgpu_ptr(d[q], y[q][k]))[i] = 2.0f;
            }
            sqe.args.saxpy = (struct vgpu_args_saxpy){ .x_off = x[q], .y_off = y[q][k], .n = N,
                                                       .alpha = 1.0f };
            vgpu_submit(d[q], &sqe);
        }
    }
    for (uint32_t q = 0; q < RQ; q++) {
        vgpu_kick(d[q]);
    }
    for (int kill = 0; kill < 2; kill++) {
        usleep(4000);
        fh_mediator_stop(med, true);
        r = fh_mediator_start(med, med->dir, args);
        CHECK(r == 0, "in place: the mediator comes back (%d)", kill);
    }
    for (uint32_t q = 0; q < RQ; q++) {
        for (int k = 0; k < PER_Q; k++) {
            struct vgpu_cqe cqe;
            const float *p = vgpu_ptr(d[q], y[q][k]);

            if (vgpu_wait(d[q], &cqe, 20000) < 0) {
                break;
            }
            done++;
            order += cqe.tag != (uint32_t)k;
            if (cqe.status == VGPU_S_INTERRUPTED) {
                interrupted++;
            } else if (cqe.status == VGPU_S_OK && p[0] == 3.0f && p[N - 1] == 3.0f &&
                       p[N / 2] == 3.0f) {
                ok++;
            } else {
                wrong++;
            }
        }
    }
    CHECK(done == RQ * PER_Q && order == 0, "in place: %u of %u complete, in order on their "
          "queues (%u out of order)", done, RQ * PER_Q, order);
    CHECK(wrong == 0 && interrupted <= 2, "in place: %u ok exactly once, %u interrupted (at "
          "most one per kill), %u wrong", ok, interrupted, wrong);
out:
    for (uint32_t q = 0; q < RQ; q++) {
        vgpu_close(d[q]);
    }
}

static int raw_hello(const char *sock, uint32_t vm_id, uint64_t shm_size, uint32_t size,
                     uint32_t queues, struct fh_dev *d)
{
    struct vgpu_msg_hello_mq hm;
    uint8_t buf[256];
    int r;

    memset(d, 0, sizeof(*d));
    d->doorbell_fd = -1;
    d->shm_size = shm_size;
    d->memfd = fh_memfd(shm_size, true);
    d->sock = fh_connect(sock);
    if (d->memfd < 0 || d->sock < 0) {
        return -EIO;
    }
    memset(&hm, 0, sizeof(hm));
    fh_hello_init(&hm.hello, vm_id, shm_size);
    hm.hello.hdr.size = size;
    hm.queues = queues;
    r = fh_send(d->sock, &hm, size, &d->memfd, 1);
    if (r < 0) {
        return r;
    }
    r = fh_recv_msg(d->sock, buf, sizeof(buf), 5000);
    if (r > 0 && ((struct vgpu_msg_hdr *)buf)->type == VGPU_MSG_WELCOME) {
        return 0;
    }
    if (r > 0 && ((struct vgpu_msg_hdr *)buf)->type == VGPU_MSG_ERROR) {
        return (int)((struct vgpu_msg_error *)buf)->code;
    }
    return -EPROTO;
}

static void raw_close(struct fh_dev *d)
{
    if (d->sock >= 0) {
        close(d->sock);
    }
    if (d->memfd >= 0) {
        close(d->memfd);
    }
}

static void test_hello(const char *sock)
{
    const uint32_t old = sizeof(struct vgpu_msg_hello), mq = sizeof(struct vgpu_msg_hello_mq);
    struct fh_dev d;

    CHECK(raw_hello(sock, 20, 1u << 20, old, 0, &d) == 0, "the 112-byte HELLO is accepted");
    raw_close(&d);
    CHECK(raw_hello(sock, 21, 1u << 20, mq, 2, &d) == 0, "a HELLO with 2 queue pairs");
    raw_close(&d);
    CHECK(raw_hello(sock, 22, 8u << 20, mq, VGPU_MAX_QUEUES, &d) == 0,
          "%u queue pairs in 8 MiB", VGPU_MAX_QUEUES);
    raw_close(&d);
    CHECK(raw_hello(sock, 27, 4u << 20, mq, VGPU_MAX_QUEUES, &d) == VGPU_PERR_SHM,
          "%u queue pairs do not fit in 4 MiB: refused", VGPU_MAX_QUEUES);
    raw_close(&d);
    CHECK(raw_hello(sock, 23, 1u << 20, mq, 0, &d) == VGPU_PERR_MALFORMED,
          "0 queue pairs: malformed");
    raw_close(&d);
    CHECK(raw_hello(sock, 24, 1u << 20, mq, VGPU_MAX_QUEUES + 1, &d) == VGPU_PERR_MALFORMED,
          "%u queue pairs: malformed", VGPU_MAX_QUEUES + 1);
    raw_close(&d);
    CHECK(raw_hello(sock, 25, 1u << 20, mq, VGPU_MAX_QUEUES, &d) == VGPU_PERR_SHM,
          "%u queue pairs leave no data area in 1 MiB: refused", VGPU_MAX_QUEUES);
    raw_close(&d);
    CHECK(raw_hello(sock, 26, 1u << 20, old + 4, 2, &d) == VGPU_PERR_MALFORMED,
          "a HELLO of any other size: malformed");
    raw_close(&d);
}

int main(void)
{
    struct fh_mediator med;

    if (fh_mediator_start(&med, NULL, NULL) < 0) {
        CHECK(false, "mediator starts");
        return fh_summary();
    }
    test_hello(med.sock);
    test_concurrent(med.sock);
    test_windows_and_corruption(med.sock);
    test_restart(&med);
    test_restart_in_place(&med);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 40);
    }
    fh_mediator_stop(&med, false);
    fh_mediator_cleanup(&med);
    return fh_summary();
}
