/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * A peer that asks for statistics and never reads the replies. With many
 * sessions a STATS_REPLY is tens of KiB, more than one socket buffer chunk:
 * once the peer's backlog fills the socket, a reply goes out only in part,
 * and finishing it would block the I/O thread, and with it every VM's
 * doorbells. The mediator must instead drop such a peer at once, and keep
 * serving the devices.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fhelp.h"

#define SHM       (1u << 20)
#define NDEV      300          /* ~150 bytes a row: a reply over 40 KiB */
#define NREQ      64

static struct fh_mediator med;

static uint64_t nop_ms(struct fh_dev *d, uint32_t tag, bool *ok)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = tag };
    struct vgpu_cqe cqe;
    uint64_t t0 = fh_now_ms();

    fh_dev_queue(d, &sqe);
    *ok = fh_dev_kick(d) == 0 && fh_dev_wait(d, &cqe, 5000) == 0 && cqe.tag == tag &&
          cqe.status == VGPU_S_OK;
    return fh_now_ms() - t0;
}

int main(void)
{
    const char *args[] = { "--executors", "1", "--max-sessions", "400", NULL };
    static struct fh_dev devs[NDEV];
    struct vgpu_msg_hdr reqs[NREQ];
    uint64_t worst = 0, t_end;
    unsigned opened = 0, nops = 0, nops_ok = 0;
    int s = -1, r, i;

    if (fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        return fh_summary();
    }
    for (i = 0; i < NDEV; i++) {
        if (fh_dev_open(&devs[i], med.sock, (uint32_t)i + 1, SHM) == 0) {
            opened++;
        }
    }
    CHECK(opened == NDEV, "%u of %u devices attached", opened, NDEV);

    s = fh_connect(med.sock);
    for (i = 0; i < NREQ; i++) {
        reqs[i] = (struct vgpu_msg_hdr) { .type = VGPU_MSG_STATS_REQ, .size = sizeof(reqs[i]),
                                          .seq = (uint32_t)i + 1 };
    }
    r = s >= 0 ? fh_send(s, reqs, sizeof(reqs), NULL, 0) : -1;
    CHECK(r == 0, "%d STATS_REQ sent in one go, none read", NREQ);

    /* Doorbells of a device are answered promptly meanwhile. */
    t_end = fh_now_ms() + 2500;
    while (fh_now_ms() < t_end) {
        bool ok;
        uint64_t ms = nop_ms(&devs[0], 1000 + nops, &ok);

        nops++;
        nops_ok += ok;
        if (ms > worst) {
            worst = ms;
        }
        usleep(20 * 1000);
    }
    printf("# %u NOPs during the flood, worst round trip %llu ms\n", nops,
           (unsigned long long)worst);
    CHECK(nops_ok == nops, "every NOP completed (%u/%u)", nops_ok, nops);
    CHECK(worst < 500, "no NOP waited for the stuck statistics reply (worst %llu ms)",
          (unsigned long long)worst);
    if (s >= 0) {
        close(s);
    }
    /* A client that reads each reply before asking again is served. */
    s = fh_connect(med.sock);
    {
        static uint8_t buf[VGPU_MSG_MAX_SIZE];
        int got = 0;

        for (i = 0; s >= 0 && i < 3; i++) {
            if (fh_send(s, &reqs[0], sizeof(reqs[0]), NULL, 0) == 0 &&
                fh_recv_msg(s, buf, sizeof(buf), 5000) > 40 * 1024) {
                got++;
            }
        }
        CHECK(got == 3, "request/read/request: 3 replies over 40 KiB (%d)", got);
    }
    if (s >= 0) {
        close(s);
    }
    for (i = 0; i < NDEV; i++) {
        fh_dev_close(&devs[i]);
    }
    r = fh_mediator_stop(&med, false);
    CHECK(r == 0, "mediator exits 0 (status 0x%x)", r);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 40);
    }
    fh_mediator_cleanup(&med);
    return fh_summary();
}
