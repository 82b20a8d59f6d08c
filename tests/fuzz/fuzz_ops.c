/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Ring descriptors (struct vgpu_sqe) from a guest, through the operation
 * registry the mediator uses: lookup, validate, cost and byte estimates, and
 * for an accepted request the CPU implementation on real memory.
 *
 * Input: 64 bytes of SQE, one byte choosing the mapped size, 8 bytes of a
 * claimed shm size for a validate-only pass. What must hold: cost/bytes
 * callbacks accept any SQE (the scheduler calls them before validation);
 * validate never accepts a request whose execution touches memory outside
 * the data area: the mapping is malloc'ed to its exact size (AddressSanitizer
 * sees the end) and the ring area below VGPU_SHM_DATA_OFFSET is checked to be
 * left untouched; exec returns a defined status. The parts a long request
 * is cut into (op->parts/part) each validate on the same memory and, run one
 * after the other, stay inside it too. The ranges an accepted request names
 * (op->ranges) lie in the data area; the CUDA driver operations (ABI 1.2)
 * complete not-supported on the cpu backend.
 */
#include <string.h>

#include "mediator/op.h"
#include "mediator/ops/ops-priv.h"
#include "fuzz.h"

#define RING_FILL   0xa5
#define NSIZES      2
#define EXEC_BUDGET_NS 200000000ull /* as the daemon's per-request deadline */

/* Mapped sizes: the smallest allowed, and one whose end is not 64-aligned. */
static const uint64_t shm_sizes[NSIZES] = {
    VGPU_SHM_MIN_SIZE,
    VGPU_SHM_MIN_SIZE + 4096 + 4,
};
static uint8_t *shm_bufs[NSIZES];
static uint8_t ring_ref[VGPU_SHM_DATA_OFFSET];

static uint8_t *shm_get(unsigned i)
{
    if (!shm_bufs[i]) {
        shm_bufs[i] = malloc(shm_sizes[i]);
        FUZZ_CHECK(shm_bufs[i] != NULL);
        /* Small finite floats, so results stay deterministic-ish. */
        for (uint64_t o = 0; o + 4 <= shm_sizes[i]; o += 4) {
            float f = (float)(o % 251) / 16.0f;
            memcpy(shm_bufs[i] + o, &f, 4);
        }
        memset(ring_ref, RING_FILL, sizeof(ring_ref));
    }
    memset(shm_bufs[i], RING_FILL, VGPU_SHM_DATA_OFFSET);
    return shm_bufs[i];
}

/*
 * The ranges an accepted request names (what the session checks against its
 * queue's window) lie inside the data area the validator was given, so a
 * window check can never be looser than validation.
 */
static void check_ranges(const struct vgpu_op *op, const struct vgpu_sqe *sqe, uint64_t size)
{
    struct vgpu_range rg[VGPU_OP_MAX_RANGES];
    unsigned n;

    if (!op->ranges) {
        return;
    }
    n = op->ranges(sqe, rg);
    FUZZ_CHECK(n <= VGPU_OP_MAX_RANGES);
    for (unsigned i = 0; i < n; i++) {
        FUZZ_CHECK(vgpu_check_range(rg[i].off, rg[i].len, 1, size) == VGPU_S_OK);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = { data, size };
    const struct vgpu_op *op;
    struct vgpu_sqe sqe;
    struct vgpu_shm_view view;
    uint64_t claimed, in_b = 0, out_b = 0, result = 0;
    unsigned which;
    int r;

    fuzz_bytes(&in, &sqe, sizeof(sqe));
    which = fuzz_u8(&in) % NSIZES;
    claimed = fuzz_u64(&in);

    op = vgpu_op_lookup(sqe.opcode);
    if (!op) {
        /* Past the table, or its unassigned hole 7 .. 15. */
        FUZZ_CHECK(sqe.opcode >= VGPU_OP_COUNT ||
                   (sqe.opcode > VGPU_OP_MEMCPY && sqe.opcode < VGPU_OP_CU_FIRST));
        return 0;
    }
    FUZZ_CHECK(op->opcode == sqe.opcode);

    /* The scheduler prices requests it has not validated yet. */
    (void)op->cost_ns(&sqe);
    op->bytes(&sqe, &in_b, &out_b);

    /* Any claimed size: only range arithmetic runs, nothing is touched. */
    r = op->validate(&sqe, claimed);
    FUZZ_CHECK(r >= VGPU_S_OK && r < VGPU_S_STATUS_COUNT);
    if (r == VGPU_S_OK) {
        check_ranges(op, &sqe, claimed);
    }

    view.size = shm_sizes[which];
    view.fd = -1;
    r = op->validate(&sqe, view.size);
    FUZZ_CHECK(r >= VGPU_S_OK && r < VGPU_S_STATUS_COUNT);
    if (r != VGPU_S_OK) {
        return 0;
    }
    /* Accepted: the byte estimate must fit in what the VM has mapped. */
    FUZZ_CHECK(in_b <= view.size && out_b <= view.size);
    check_ranges(op, &sqe, view.size);
    view.base = shm_get(which);
    if (op->parts) {
        /* The executor runs parts of an accepted request as requests of
         * their own: each must be one the validator accepts. */
        uint32_t want = 1 + fuzz_u8(&in) % 64, n = op->parts(&sqe, want);

        FUZZ_CHECK(n >= 1 && n <= want);
        for (uint32_t i = 0; i < n; i++) {
            struct vgpu_sqe part;

            op->part(&sqe, i, n, &part);
            FUZZ_CHECK(op->validate(&part, view.size) == VGPU_S_OK);
            if (n > 1 && i == n - 1) {
                vgpu_ops_set_deadline(vgpu_ops_now_ns() + EXEC_BUDGET_NS);
                r = op->exec_cpu(&part, &view, &result);
                vgpu_ops_set_deadline(0);
                FUZZ_CHECK(r >= VGPU_S_OK && r < VGPU_S_STATUS_COUNT);
            }
        }
    }
    vgpu_ops_set_deadline(vgpu_ops_now_ns() + EXEC_BUDGET_NS);
    r = op->exec_cpu(&sqe, &view, &result);
    vgpu_ops_set_deadline(0);
    FUZZ_CHECK(r >= VGPU_S_OK && r < VGPU_S_STATUS_COUNT);
    /* The cpu backend has no GPU: a valid CU request is not-supported. */
    FUZZ_CHECK(sqe.opcode < VGPU_OP_CU_FIRST || r == VGPU_S_NOT_SUPPORTED);
    FUZZ_CHECK(memcmp(view.base, ring_ref, VGPU_SHM_DATA_OFFSET) == 0);
    return 0;
}
