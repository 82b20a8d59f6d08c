/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * 64 connected devices (the design's target) each with requests in flight
 * at once: every request completes, in order, with the right result; the
 * 65th device is refused with ERROR LIMIT; once one leaves, a new one fits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vgpu/ring.h"
#include "fhelp.h"

#define NDEV  64
#define NREQ  8
#define SHM   (1u << 20)
#define N     1024u

static struct fh_mediator med;
static struct fh_dev devs[NDEV];

static uint64_t off_a(void) { return VGPU_SHM_DATA_OFFSET; }
static uint64_t off_b(void) { return VGPU_SHM_DATA_OFFSET + N * 4; }
static uint64_t off_out(unsigned k) { return VGPU_SHM_DATA_OFFSET + (2 + (uint64_t)k) * N * 4; }

int main(void)
{
    const char *args[] = { "--max-sessions", "64", NULL };
    unsigned attached = 0, complete = 0, wrong = 0;
    int r;

    if (fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        return fh_summary();
    }
    for (unsigned i = 0; i < NDEV; i++) {
        if (fh_dev_open(&devs[i], med.sock, 1000 + i, SHM) == 0) {
            attached++;
        }
    }
    CHECK(attached == NDEV, "%u of %u devices attached", attached, NDEV);
    if (attached != NDEV) {
        goto out;
    }
    /* fill every ring first, then ring every doorbell: all in flight together */
    for (unsigned i = 0; i < NDEV; i++) {
        float *a = fh_ptr(&devs[i], off_a()), *b = fh_ptr(&devs[i], off_b());
        for (unsigned j = 0; j < N; j++) {
            a[j] = (float)(i * 3 + j % 50);
            b[j] = (float)(j % 9);
        }
        for (unsigned k = 0; k < NREQ; k++) {
            struct vgpu_sqe s = { .opcode = k == 0 ? VGPU_OP_NOP : VGPU_OP_VECTOR_ADD, .tag = k };
            s.args.vector_add = (struct vgpu_args_vector_add) { off_a(), off_b(), off_out(k), N };
            if (k == 0) {
                memset(&s.args, 0, sizeof(s.args));
            }
            fh_dev_queue(&devs[i], &s);
        }
    }
    for (unsigned i = 0; i < NDEV; i++) {
        fh_dev_kick(&devs[i]);
    }
    for (unsigned i = 0; i < NDEV; i++) {
        const float *a = fh_ptr(&devs[i], off_a()), *b = fh_ptr(&devs[i], off_b());
        for (unsigned k = 0; k < NREQ; k++) {
            struct vgpu_cqe c;
            if (fh_dev_wait(&devs[i], &c, 10000) < 0 || c.tag != k || c.status != VGPU_S_OK) {
                break;
            }
            complete++;
            if (k > 0) {
                const float *o = fh_ptr(&devs[i], off_out(k));
                for (unsigned j = 0; j < N; j++) {
                    if (o[j] != a[j] + b[j]) {
                        wrong++;
                        break;
                    }
                }
            }
        }
    }
    CHECK(complete == NDEV * NREQ, "%u of %u requests completed in order", complete, NDEV * NREQ);
    CHECK(wrong == 0, "every result correct (%u wrong)", wrong);

    {
        struct fh_dev extra;
        r = fh_dev_open(&extra, med.sock, 5000, SHM);
        fh_dev_close(&extra);
        CHECK(r == -EPROTO, "the 65th device is refused (%d)", r);
        fh_dev_close(&devs[0]);
        /* the mediator notices the close asynchronously */
        uint64_t deadline = fh_now_ms() + 3000;
        do {
            r = fh_dev_open(&extra, med.sock, 5000, SHM);
            if (r == 0) {
                break;
            }
            fh_dev_close(&extra);
            usleep(20 * 1000);
        } while (fh_now_ms() < deadline);
        CHECK(r == 0, "after one leaves, a new device fits");
        fh_dev_close(&extra);
    }
    {
        /* closes are noticed asynchronously: poll with a deadline */
        uint64_t deadline = fh_now_ms() + 3000;
        bool seen = false;
        while (!seen && fh_now_ms() < deadline) {
            char *st = fh_mediator_status(&med);
            seen = st && strstr(st, "sessions: 63 live (max 64), 65 opened, 2 closed");
            free(st);
            if (!seen) {
                usleep(20 * 1000);
            }
        }
        CHECK(seen, "--status counts 63 live, 65 opened, 2 closed");
    }
out:
    for (unsigned i = 0; i < NDEV; i++) {
        fh_dev_close(&devs[i]);
    }
    r = fh_mediator_stop(&med, false);
    CHECK(r == 0, "mediator exits 0 (status 0x%x)", r);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 30);
    }
    fh_mediator_cleanup(&med);
    return fh_summary();
}
