/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The guest library's view of what the host writes into shared memory:
 * cq_tail, sq_head and the completions, consumed by vgpu_submit() and
 * vgpu_wait() over libvgpu's "mem" transport (no socket, no peer).
 *
 * The input is a script: each byte picks an action (submit, an honest
 * completion, or a hostile write of an index or a CQE) with its operands
 * following. What must hold whatever the host writes: the library's own
 * indexes stay consistent (never more outstanding than the CQ holds, never a
 * completion consumed that was not submitted), the guest-owned ctrl fields it
 * publishes are its own mirrors, vgpu_wait() returns only its documented
 * codes without sleeping, and as long as the host only behaved honestly,
 * completions come back in order with their tags.
 */
#include <errno.h>
#include <string.h>

#include "libvgpu/transport.h"
#include "vgpu/ring.h"
#include "fuzz.h"

enum action {
    ACT_SUBMIT,         /* [n]: submit n % 8 NOPs */
    ACT_COMPLETE,       /* honest: complete the oldest taken request */
    ACT_WAIT,           /* vgpu_wait(timeout 0) */
    ACT_CQ_TAIL,        /* [u32]: hostile cq_tail */
    ACT_SQ_HEAD,        /* [u32]: hostile sq_head */
    ACT_CQE,            /* [slot][32 bytes]: hostile completion */
    ACT_GUEST_IDX,      /* [u32 u32]: host scribbles on the guest-owned indexes */
    ACT_COUNT
};

static uint8_t *shm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = { data, size };
    struct vgpu_dev *dev = NULL;
    struct vgpu_shm_ctrl *ctrl;
    uint32_t next_tag = 0, want_tag = 0, host_done = 0;
    bool honest = true;
    int r;

    if (!shm) {
        shm = malloc(VGPU_SHM_MIN_SIZE);
        FUZZ_CHECK(shm != NULL);
    }
    memset(shm, 0, VGPU_SHM_DATA_OFFSET);
    r = vgpu_open_mem(shm, VGPU_SHM_MIN_SIZE, &dev);
    FUZZ_CHECK(r == 0);
    ctrl = dev->ctrl;

    for (unsigned steps = 0; in.left && steps < 4096; steps++) {
        uint32_t head_before = dev->cq_head;

        switch (fuzz_u8(&in) % ACT_COUNT) {
        case ACT_SUBMIT: {
            unsigned n = fuzz_u8(&in) % 8;

            for (unsigned i = 0; i < n; i++) {
                struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = next_tag };

                r = vgpu_submit(dev, &sqe);
                FUZZ_CHECK(r == 0 || r == -EAGAIN || r == -EIO);
                if (r == 0) {
                    FUZZ_CHECK(dev->sq[vgpu_ring_slot(dev->sq_tail - 1, VGPU_SQ_ENTRIES)].tag
                               == next_tag);
                    next_tag++;
                } else if (honest) {
                    /* -EAGAIN only when the rings are really full. */
                    FUZZ_CHECK(r == -EAGAIN);
                    FUZZ_CHECK(dev->sq_tail - ctrl->sq_head >= VGPU_SQ_ENTRIES ||
                               dev->sq_tail - dev->cq_head >= VGPU_CQ_ENTRIES);
                }
            }
            break;
        }
        case ACT_COMPLETE: {
            /* The mediator's order: CQE, cq_tail, then sq_head. */
            uint32_t tail = ctrl->cq_tail;
            struct vgpu_cqe *c;

            if (!honest || host_done == dev->sq_tail || tail - dev->cq_head >= VGPU_CQ_ENTRIES) {
                break;
            }
            c = &dev->cq[vgpu_ring_slot(tail, VGPU_CQ_ENTRIES)];
            memset(c, 0, sizeof(*c));
            c->tag = dev->sq[vgpu_ring_slot(host_done, VGPU_SQ_ENTRIES)].tag;
            c->status = VGPU_S_OK;
            host_done++;
            vgpu_store_release(&ctrl->cq_tail, tail + 1);
            vgpu_store_release(&ctrl->sq_head, host_done);
            break;
        }
        case ACT_WAIT: {
            struct vgpu_cqe c;

            r = vgpu_wait(dev, &c, 0);
            FUZZ_CHECK(r == 0 || r == -ETIMEDOUT || r == -ENOENT || r == -EIO);
            if (r == 0) {
                FUZZ_CHECK(dev->cq_head != head_before);
                if (honest) {
                    FUZZ_CHECK(c.tag == want_tag);
                    want_tag++;
                }
            } else {
                FUZZ_CHECK(dev->cq_head == head_before);
            }
            if (honest) {
                FUZZ_CHECK(r != -EIO);
                FUZZ_CHECK(r != -ETIMEDOUT || dev->cq_head == ctrl->cq_tail);
            }
            break;
        }
        case ACT_CQ_TAIL:
            honest = false;
            vgpu_store_release(&ctrl->cq_tail, fuzz_u32(&in));
            break;
        case ACT_SQ_HEAD:
            honest = false;
            vgpu_store_release(&ctrl->sq_head, fuzz_u32(&in));
            break;
        case ACT_CQE: {
            uint8_t slot = fuzz_u8(&in);

            honest = false;
            fuzz_bytes(&in, &dev->cq[slot % VGPU_CQ_ENTRIES], sizeof(struct vgpu_cqe));
            break;
        }
        case ACT_GUEST_IDX:
            honest = false;
            vgpu_store_release(&ctrl->sq_tail, fuzz_u32(&in));
            vgpu_store_release(&ctrl->cq_head, fuzz_u32(&in));
            break;
        }
        /* Whatever the host did, the library's own books balance. */
        FUZZ_CHECK(dev->sq_tail - dev->cq_head <= VGPU_CQ_ENTRIES);
        FUZZ_CHECK(dev->cq_head - head_before <= VGPU_CQ_ENTRIES);
        FUZZ_CHECK(dev->sq_tail == next_tag);
    }
    vgpu_close(dev);
    return 0;
}
