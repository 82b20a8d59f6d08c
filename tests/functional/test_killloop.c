/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The mediator SIGKILLed at random instants under load, restarted each time,
 * while two devices keep submitting checked requests, in place and out of
 * place, and reconnect with the same memory as QEMU's chardev does (libvgpu's
 * sim transport with reconnect_ms).
 *
 * Every completion is checked against its sequence number (in order, none
 * lost, none twice) and against a reference computed here: a completion
 * that says ok must carry exactly the outputs of one execution on the
 * request's original inputs. In-place requests that were running when the
 * mediator died must come back "interrupted" (their outputs may be partly
 * written; the client starts them over with fresh inputs), never ok with
 * the operation applied twice.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vgpu/libvgpu.h"
#include "fhelp.h"

#define KILLS     32
#define CLIENTS   2
#define DEPTH     4                     /* requests in flight per client */
#define MAX_N     (1u << 20)            /* floats per buffer */
#define GEMM_DIM  96u
#define SHM       (64ull << 20)

enum kind { K_SAXPY, K_VADD_INPLACE, K_VADD, K_GEMM_ACC, K_GEMM, K_REDUCE, K_COUNT };

struct slot {
    uint64_t a, b, c;                   /* BAR2 offsets of its three buffers */
    float   *want;                      /* expected output (MAX_N floats) */
    double   want_sum;
    uint64_t seq;
    enum kind kind;
    uint32_t n;
};

struct client {
    pthread_t thread;
    struct fh_mediator *med;
    uint32_t vm_id;
    unsigned seed;
    struct slot slots[DEPTH];
    /* results */
    unsigned long ok, interrupted, wrong_ok, lost, dup, other, errors;
    unsigned long by_kind_ok[K_COUNT];
    int last_err;
    const char *where;
    volatile int opened;
};

static volatile int stop_load;

static float val(uint64_t seq, uint64_t i, unsigned salt)
{
    return (float)((i * 7 + seq * 3 + salt) % 13);
}

/* Fills the slot's inputs for a new request and computes what one
 * execution must give. */
static void prepare(struct vgpu_dev *dev, struct slot *sl, uint64_t seq, struct vgpu_sqe *sqe,
                    unsigned *seed)
{
    float *a = vgpu_ptr(dev, sl->a), *b = vgpu_ptr(dev, sl->b), *c = vgpu_ptr(dev, sl->c);
    static const uint32_t sizes[] = { 1u << 14, 1u << 16, 1u << 18, MAX_N };
    uint32_t n = sizes[rand_r(seed) % 4];

    memset(sqe, 0, sizeof(*sqe));
    sl->seq = seq;
    sl->kind = (enum kind)(seq % K_COUNT);
    sqe->user_data = seq;
    sqe->tag = (uint32_t)seq;
    switch (sl->kind) {
    case K_SAXPY:
        for (uint32_t i = 0; i < n; i++) {
            a[i] = val(seq, i, 1);
            c[i] = val(seq, i, 2);
            sl->want[i] = 2.0f * a[i] + c[i];
        }
        sqe->opcode = VGPU_OP_SAXPY;
        sqe->args.saxpy = (struct vgpu_args_saxpy) { .x_off = sl->a, .y_off = sl->c, .n = n,
                                                     .alpha = 2.0f };
        break;
    case K_VADD_INPLACE:
    case K_VADD:
        for (uint32_t i = 0; i < n; i++) {
            a[i] = val(seq, i, 3);
            b[i] = val(seq, i, 4);
            sl->want[i] = a[i] + b[i];
        }
        sqe->opcode = VGPU_OP_VECTOR_ADD;
        sqe->args.vector_add = (struct vgpu_args_vector_add) {
            sl->a, sl->b, sl->kind == K_VADD_INPLACE ? sl->a : sl->c, n };
        break;
    case K_GEMM_ACC:
    case K_GEMM: {
        const uint32_t d = GEMM_DIM;

        n = d * d;
        for (uint32_t i = 0; i < n; i++) {
            a[i] = val(seq, i, 5) - 6.0f;
            b[i] = val(seq, i, 6);
            c[i] = val(seq, i, 7);
        }
        /* Small integers: every sum is exact in float, whatever the order. */
        for (uint32_t i = 0; i < d; i++) {
            for (uint32_t j = 0; j < d; j++) {
                float acc = sl->kind == K_GEMM_ACC ? c[i * d + j] : 0.0f;

                for (uint32_t k = 0; k < d; k++) {
                    acc += a[i * d + k] * b[k * d + j];
                }
                sl->want[i * d + j] = acc;
            }
        }
        sqe->opcode = VGPU_OP_SGEMM;
        sqe->args.sgemm = (struct vgpu_args_sgemm) {
            .a_off = sl->a, .b_off = sl->b, .c_off = sl->c, .m = d, .n = d, .k = d,
            .alpha = 1.0f, .beta = sl->kind == K_GEMM_ACC ? 1.0f : 0.0f };
        break;
    }
    case K_REDUCE:
        sl->want_sum = 0;
        for (uint32_t i = 0; i < n; i++) {
            a[i] = val(seq, i, 8);
            sl->want_sum += a[i];
        }
        sqe->opcode = VGPU_OP_REDUCE_SUM;
        sqe->args.reduce_sum = (struct vgpu_args_reduce_sum) { sl->a, n };
        break;
    default:
        break;
    }
    sl->n = n;
}

static bool outputs_right(struct vgpu_dev *dev, const struct slot *sl, const struct vgpu_cqe *c)
{
    const float *out;

    switch (sl->kind) {
    case K_SAXPY:
    case K_VADD:
    case K_GEMM_ACC:
    case K_GEMM:
        out = vgpu_ptr(dev, sl->c);
        break;
    case K_VADD_INPLACE:
        out = vgpu_ptr(dev, sl->a);
        break;
    case K_REDUCE: {
        double got;

        memcpy(&got, &c->result, sizeof(got));
        return got == sl->want_sum;     /* integers below 2^53: exact */
    }
    default:
        return false;
    }
    return memcmp(out, sl->want, sl->n * sizeof(float)) == 0;
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    struct vgpu_open_opts o = {
        .transport = "sim", .socket_path = cl->med->sock, .shm_size = SHM,
        .vm_id = cl->vm_id, .weight = 1, .link_timeout_ms = 20000, .reconnect_ms = 5,
        /* Spinning clients read the socket only every 32 kicks: that drain
         * must also survive the link going down (it once looped forever). */
        .spin_us = 200,
    };
    struct vgpu_dev *dev;
    uint64_t next_seq = 0, expect = 0;
    unsigned head = 0, inflight = 0;
    int r;

    r = vgpu_open(&o, &dev);
    cl->opened = 1;
    if (r < 0) {
        cl->last_err = r;
        cl->where = "open";
        cl->errors++;
        return NULL;
    }
    for (unsigned i = 0; i < DEPTH; i++) {
        struct slot *sl = &cl->slots[i];

        if (vgpu_alloc(dev, MAX_N * sizeof(float), 4096, &sl->a) < 0 ||
            vgpu_alloc(dev, MAX_N * sizeof(float), 4096, &sl->b) < 0 ||
            vgpu_alloc(dev, MAX_N * sizeof(float), 4096, &sl->c) < 0 ||
            !(sl->want = malloc(MAX_N * sizeof(float)))) {
            cl->errors++;
            goto out;
        }
    }
    while (!stop_load || inflight > 0) {
        struct vgpu_cqe c;
        struct slot *sl;

        while (!stop_load && inflight < DEPTH) {
            struct vgpu_sqe sqe;

            sl = &cl->slots[(head + inflight) % DEPTH];
            prepare(dev, sl, next_seq++, &sqe, &cl->seed);
            r = vgpu_submit(dev, &sqe);
            if (r < 0) {
                cl->where = "submit";
                cl->last_err = r;
                cl->errors++;
                goto out;
            }
            inflight++;
        }
        r = vgpu_kick(dev);
        if (r < 0) {
            cl->where = "kick";
            cl->last_err = r;
            cl->errors++;
            goto out;
        }
        r = vgpu_wait(dev, &c, 20000);
        if (r < 0) {
            cl->where = "wait";
            cl->last_err = r;
            cl->errors++;
            goto out;
        }
        sl = &cl->slots[head];
        if (c.user_data < expect) {
            cl->dup++;
            continue;   /* a completion of a request already completed */
        }
        if (c.user_data > expect) {
            cl->lost += c.user_data - expect;
        }
        expect = c.user_data + 1;
        if (c.user_data != sl->seq) {
            cl->other++;    /* out of order: counted, the slots are now unreliable */
        } else if (c.status == VGPU_S_OK) {
            if (outputs_right(dev, sl, &c)) {
                cl->ok++;
                cl->by_kind_ok[sl->kind]++;
            } else {
                if (cl->wrong_ok == 0) {
                    printf("# vm %u: request %llu (kind %d, n %u) ok with wrong outputs\n",
                           cl->vm_id, (unsigned long long)sl->seq, sl->kind, sl->n);
                }
                cl->wrong_ok++;
            }
        } else if (c.status == VGPU_S_INTERRUPTED) {
            cl->interrupted++;
        } else {
            if (cl->other == 0) {
                printf("# vm %u: request %llu: status %s\n", cl->vm_id,
                       (unsigned long long)sl->seq, vgpu_status_name(c.status));
            }
            cl->other++;
        }
        head = (head + 1) % DEPTH;
        inflight--;
    }
    if (expect != next_seq) {
        cl->lost += next_seq - expect;
    }
out:
    for (unsigned i = 0; i < DEPTH; i++) {
        free(cl->slots[i].want);
    }
    vgpu_close(dev);
    return NULL;
}

int main(void)
{
    static const char *const args[] = { "--executors", "2", "--log-level", "warn", NULL };
    static struct client cl[CLIENTS];
    struct fh_mediator med;
    unsigned seed = (unsigned)time(NULL);
    unsigned long ok = 0, interrupted = 0, wrong = 0, lost = 0, dup = 0, other = 0, err = 0;
    int kills = 0;
    char dir[64];

    printf("# seed %u\n", seed);
    if (fh_mediator_start(&med, NULL, args) < 0) {
        CHECK(false, "mediator starts");
        return fh_summary();
    }
    for (unsigned i = 0; i < CLIENTS; i++) {
        cl[i].med = &med;
        cl[i].vm_id = 100 + i;
        cl[i].seed = seed + i;
        pthread_create(&cl[i].thread, NULL, client_main, &cl[i]);
    }
    for (unsigned i = 0; i < CLIENTS; i++) {
        while (!cl[i].opened) {
            usleep(1000);
        }
    }
    for (int k = 0; k < KILLS; k++) {
        struct timespec ts = { 0, (long)(20 + rand_r(&seed) % 130) * 1000000L };

        nanosleep(&ts, NULL);
        snprintf(dir, sizeof(dir), "%s", med.dir);
        if (fh_mediator_stop(&med, true) < 0) {
            break;
        }
        kills++;
        if (fh_mediator_start(&med, dir, args) < 0) {
            CHECK(false, "mediator restarts after kill %d", kills);
            break;
        }
    }
    /* Let the load run on a live mediator for a moment, then drain. */
    usleep(200 * 1000);
    stop_load = 1;
    for (unsigned i = 0; i < CLIENTS; i++) {
        pthread_join(cl[i].thread, NULL);
        ok += cl[i].ok;
        interrupted += cl[i].interrupted;
        wrong += cl[i].wrong_ok;
        lost += cl[i].lost;
        dup += cl[i].dup;
        other += cl[i].other;
        err += cl[i].errors;
        if (cl[i].errors) {
            printf("# vm %u: %s: %s\n", cl[i].vm_id, cl[i].where, vgpu_strerror(cl[i].last_err));
        }
        printf("# vm %u: ok %lu (saxpy %lu, vadd in place %lu, vadd %lu, sgemm beta 1 %lu,"
               " sgemm %lu, reduce %lu), interrupted %lu\n", cl[i].vm_id, cl[i].ok,
               cl[i].by_kind_ok[K_SAXPY], cl[i].by_kind_ok[K_VADD_INPLACE],
               cl[i].by_kind_ok[K_VADD], cl[i].by_kind_ok[K_GEMM_ACC], cl[i].by_kind_ok[K_GEMM],
               cl[i].by_kind_ok[K_REDUCE], cl[i].interrupted);
    }
    printf("# %d kills: %lu ok, %lu interrupted, %lu wrong-ok, %lu lost, %lu duplicated,"
           " %lu other\n", kills, ok, interrupted, wrong, lost, dup, other);
    CHECK(kills >= 30, "mediator SIGKILLed %d times under load", kills);
    CHECK(err == 0, "both devices kept working across every restart");
    CHECK(wrong == 0, "no completion says ok with wrong outputs (%lu did)", wrong);
    CHECK(lost == 0, "no request lost (%lu were)", lost);
    CHECK(dup == 0, "no request completed twice (%lu were)", dup);
    CHECK(other == 0, "no other status, nothing out of order (%lu)", other);
    CHECK(ok >= (unsigned long)kills, "requests completed ok between kills (%lu)", ok);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 30);
    }
    fh_mediator_stop(&med, false);
    fh_mediator_cleanup(&med);
    return fh_summary();
}
