/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * A device that reconnects (a new connection, the same memory, as QEMU's
 * chardev does) while the mediator is still executing one of its requests.
 * The old execution keeps writing the VM's memory until it ends, so the new
 * session must not run anything on that memory before then: the request
 * completes "interrupted" (it ran in place and its completion was lost), and
 * a retry with restored inputs must give exactly one execution's result,
 * not one raced by the old execution.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vgpu/ring.h"
#include "fhelp.h"

#define SHM  (160u << 20)
#define N    (1u << 24)                 /* floats per vector: 64 MiB */

int main(void)
{
    /* One request at a time, whole (no parts), and a second executor free
     * to run a retry at once if nothing held it back. */
    static const char *const args[] = { "--executors", "2", "--slice-us", "0", "--inline-us", "0",
                                        NULL };
    const uint64_t x_off = VGPU_SHM_DATA_OFFSET, y_off = x_off + (uint64_t)N * 4;
    struct fh_mediator med;
    struct fh_dev d;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_SAXPY };
    struct vgpu_cqe cqe;
    float *x, *y;
    unsigned wrong = 0;
    int r;

    if (fh_mediator_start(&med, NULL, args) < 0) {
        CHECK(false, "mediator starts");
        return fh_summary();
    }
    r = fh_dev_open(&d, med.sock, 5, SHM);
    CHECK(r == 0, "device attaches");
    if (r) {
        goto out;
    }
    x = fh_ptr(&d, x_off);
    y = fh_ptr(&d, y_off);
    for (unsigned i = 0; i < N; i++) {
        x[i] = 1.0f;
        y[i] = 2.0f;
    }
    sqe.args.saxpy = (struct vgpu_args_saxpy) { .x_off = x_off, .y_off = y_off, .n = N,
                                                .alpha = 1.0f };
    for (int round = 0; round < 3; round++) {
        sqe.tag = (uint32_t)round;
        sqe.user_data = (uint64_t)round;
        fh_dev_queue(&d, &sqe);
        fh_dev_kick(&d);
        usleep(5000);   /* it is executing now (tens of ms for 2^24 floats) */
        r = fh_dev_reconnect(&d, med.sock, 5);
        CHECK(r == 0, "round %d: the device reconnects with the same memory", round);
        r = fh_dev_wait(&d, &cqe, 20000);
        CHECK(r == 0 && cqe.tag == (uint32_t)round &&
              (cqe.status == VGPU_S_INTERRUPTED || cqe.status == VGPU_S_OK),
              "round %d: the request completes once, interrupted or ok (%s)", round,
              r == 0 ? vgpu_status_name(cqe.status) : "no completion");
        if (r == 0 && cqe.status == VGPU_S_OK) {
            for (unsigned i = 0; i < N; i++) {
                wrong += y[i] != 3.0f;
            }
        }
        /* The guest's answer to interrupted: restore the inputs, retry. */
        for (unsigned i = 0; i < N; i++) {
            y[i] = 2.0f;
        }
        sqe.tag = 100 + (uint32_t)round;
        fh_dev_queue(&d, &sqe);
        fh_dev_kick(&d);
        r = fh_dev_wait(&d, &cqe, 20000);
        CHECK(r == 0 && cqe.status == VGPU_S_OK, "round %d: the retry completes ok", round);
        for (unsigned i = 0; i < N; i++) {
            wrong += y[i] != 3.0f;
            y[i] = 2.0f;
        }
    }
    CHECK(wrong == 0, "every ok completion left y = alpha * x + y exactly once (%u wrong)", wrong);
    fh_dev_close(&d);
out:
    if (fh_failed) {
        fh_mediator_dump_log(&med, 30);
    }
    fh_mediator_stop(&med, false);
    fh_mediator_cleanup(&med);
    return fh_summary();
}
