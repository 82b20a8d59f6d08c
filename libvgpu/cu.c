/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * libvgpu: the CUDA driver operations (ABI 1.2, VGPU_OP_CU_*), the layer a
 * guest libcuda.so.1 is written on. Declared and documented in libvgpu.h.
 *
 * Request tracking. Every request gets a sequence number, sent as its
 * user_data (and its low 32 bits as the tag), counted from 1. done_below is
 * the first sequence number not yet completed; a completion is accepted only
 * for a number in [done_below, next_seq) not completed yet, anything else is
 * -EPROTO. At most VGPU_CQ_ENTRIES numbers are ever in that window, so a
 * slot per number modulo VGPU_CQ_ENTRIES holds its state. Completions may
 * come in any order (one queue completes in order today; nothing here
 * relies on it).
 *
 * Asynchronous requests are submitted and the doorbell rung, nothing more.
 * Their completions are reaped whenever the library looks at the CQ: before
 * every call (without waiting) and while it waits for anything. The first
 * failed one is kept (struct vgpu_cu_error) until a synchronising call
 * returns it.
 *
 * Data-area space. Two parts, both from vgpu_alloc(): a scratch area for the
 * inputs and outputs of synchronous calls (a symbol name, device or function
 * info), used by one call at a time; and the staging ring for data copied in
 * from pointers. A staging reservation names the request whose completion
 * frees it ("release sequence"); reservations are freed in order, so space
 * comes back when every older reservation's request has completed too.
 * Staged copies of the synchronous memcpy pin their space until the stream
 * sync that ends them has completed: an HtoD may still be reading its
 * source, a DtoH still writing, until the stream has drained.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vgpu/libvgpu.h"
#include "vgpu/ring.h"
#include "transport.h"

#define CU_SLOTS            VGPU_CQ_ENTRIES
#define STAGE_DEFAULT       (4ull << 20)
#define STAGE_MIN           (64ull << 10)
#define STAGE_ALIGN         8ull
/* Reservations outstanding at once: each belongs to a request in flight
 * (at most CU_SLOTS), plus the one being made. */
#define STAGE_RES_MAX       (2 * CU_SLOTS)
/* Released only once the copy loop that pinned it has synchronised. */
#define SEQ_PINNED          UINT64_MAX

/* Scratch: a symbol name, then the largest output a synchronous call reads. */
#define SCRATCH_NAME        0ull
#define SCRATCH_OUT         VGPU_CU_MAX_NAME
#define FUNC_INFO_MAX       (sizeof(struct vgpu_cu_func_info) + \
                             VGPU_CU_MAX_PARAMS * sizeof(struct vgpu_cu_param))
#define SCRATCH_SIZE        (SCRATCH_OUT + FUNC_INFO_MAX)
#define SCRATCH_ALLOC       ((SCRATCH_SIZE + 63) & ~63ull)

_Static_assert(SCRATCH_OUT % 8 == 0, "scratch output 8-aligned");
_Static_assert(FUNC_INFO_MAX >= sizeof(struct vgpu_cu_device_info), "scratch holds device info");

enum slot_kind {
    SLOT_ASYNC = 1,       /* its error is kept */
    SLOT_SYNC  = 2,       /* its completion goes to the caller waiting for it */
};

struct stage_res {
    uint64_t end;         /* free-running position after the reservation */
    uint64_t release;     /* the sequence number that frees it; SEQ_PINNED */
};

struct vgpu_cu {
    struct vgpu_dev *dev;
    int      timeout_ms;              /* < 0: no limit */

    uint64_t next_seq;
    uint64_t done_below;
    uint8_t  kind[CU_SLOTS];
    uint8_t  done[CU_SLOTS];
    uint16_t opcode[CU_SLOTS];

    /* The synchronous request being waited for, and its completion. */
    uint64_t want_seq;
    bool     want_done;
    struct vgpu_cqe want_cqe;

    struct vgpu_cu_error kept;
    uint64_t last_result;

    uint64_t scratch_off;
    uint64_t scratch_seq;             /* last request that used the scratch area */

    uint64_t stage_off, stage_size;
    uint64_t stage_head, stage_tail;  /* free-running byte positions */
    struct stage_res res[STAGE_RES_MAX];
    uint32_t res_first, res_count;
};

static inline uint32_t slot_of(uint64_t seq)
{
    return (uint32_t)(seq % CU_SLOTS);
}

static inline bool seq_done(const struct vgpu_cu *cu, uint64_t seq)
{
    return seq < cu->done_below || (seq < cu->next_seq && cu->done[slot_of(seq)]);
}

/* ---------------------------------------------------------------------- */
/* Completions                                                            */

static void stage_reclaim(struct vgpu_cu *cu)
{
    while (cu->res_count) {
        const struct stage_res *r = &cu->res[cu->res_first];

        if (r->release == SEQ_PINNED || r->release >= cu->done_below) {
            return;
        }
        cu->stage_tail = r->end;
        cu->res_first = (cu->res_first + 1) % STAGE_RES_MAX;
        cu->res_count--;
    }
    cu->stage_tail = cu->stage_head;
}

/* One completion taken from the CQ. 0 or -EPROTO. */
static int complete(struct vgpu_cu *cu, const struct vgpu_cqe *cqe)
{
    uint64_t seq = cqe->user_data;
    uint32_t slot;

    if (seq < cu->done_below || seq >= cu->next_seq || cqe->tag != (uint32_t)seq ||
        cu->done[slot_of(seq)]) {
        return -EPROTO;
    }
    slot = slot_of(seq);
    cu->done[slot] = 1;
    if (cu->kind[slot] == SLOT_ASYNC && cqe->status != VGPU_S_OK &&
        cu->kept.status == VGPU_S_OK) {
        cu->kept.status = cqe->status;
        cu->kept.opcode = cu->opcode[slot];
        cu->kept.result = cqe->result;
    }
    if (cu->kind[slot] == SLOT_SYNC && seq == cu->want_seq) {
        cu->want_cqe = *cqe;
        cu->want_done = true;
    }
    while (cu->done_below < cu->next_seq && cu->done[slot_of(cu->done_below)]) {
        cu->done[slot_of(cu->done_below)] = 0;
        cu->done_below++;
    }
    stage_reclaim(cu);
    return 0;
}

/* Takes every completion already posted, without waiting. 0 or -errno. */
static int reap_ready(struct vgpu_cu *cu)
{
    struct vgpu_cqe cqe;
    int r;

    /* Only a non-empty CQ is worth vgpu_wait(): an empty one would cost a
     * link-status read (a register: a VM exit on pci) per call. */
    while (vgpu_load_acquire(&cu->dev->ctrl->cq_tail) != cu->dev->cq_head) {
        r = vgpu_wait(cu->dev, &cqe, 0);
        if (r == -ETIMEDOUT || r == -ENOENT) {
            return 0;
        }
        if (r < 0) {
            return r;
        }
        r = complete(cu, &cqe);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

/* Waits for one completion of ours. 0 or -errno. */
static int reap_one(struct vgpu_cu *cu)
{
    struct vgpu_cqe cqe;
    int r;

    if (cu->done_below == cu->next_seq) {
        return -ENOENT;
    }
    r = vgpu_wait(cu->dev, &cqe, cu->timeout_ms);
    return r < 0 ? r : complete(cu, &cqe);
}

static int wait_done(struct vgpu_cu *cu, uint64_t seq)
{
    while (!seq_done(cu, seq)) {
        int r = reap_one(cu);

        if (r < 0) {
            return r;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Submission                                                             */

/* Queues one request and rings the doorbell. *seq_out (may be NULL) gets
 * its sequence number. Waits only while the rings are full. */
static int submit(struct vgpu_cu *cu, const struct vgpu_sqe *sqe, enum slot_kind kind,
                  uint64_t *seq_out)
{
    struct vgpu_sqe s = *sqe;
    uint64_t seq = cu->next_seq;
    int r;

    s.user_data = seq;
    s.tag = (uint32_t)seq;
    for (;;) {
        if (seq - cu->done_below < CU_SLOTS) {
            r = vgpu_submit(cu->dev, &s);
            if (r != -EAGAIN) {
                break;
            }
        }
        /* Full: of our own requests, or (another handle's leftovers) not. */
        r = reap_one(cu);
        if (r == -ENOENT) {
            return -EAGAIN;
        }
        if (r < 0) {
            return r;
        }
    }
    if (r < 0) {
        return r;
    }
    cu->kind[slot_of(seq)] = (uint8_t)kind;
    cu->done[slot_of(seq)] = 0;
    cu->opcode[slot_of(seq)] = sqe->opcode;
    cu->next_seq++;
    if (seq_out) {
        *seq_out = seq;
    }
    return vgpu_kick(cu->dev);
}

static bool synchronising(uint16_t opcode)
{
    switch (opcode) {
    case VGPU_OP_CU_CTX_SYNC:
    case VGPU_OP_CU_CTX_RESET:
    case VGPU_OP_CU_STREAM_SYNC:
    case VGPU_OP_CU_STREAM_QUERY:
    case VGPU_OP_CU_EVENT_SYNC:
    case VGPU_OP_CU_EVENT_QUERY:
        return true;
    default:
        return false;
    }
}

/* The kept error as a return value, cleared; 0 when none. */
static int take_kept(struct vgpu_cu *cu)
{
    int st = cu->kept.status;

    if (st != VGPU_S_OK) {
        cu->last_result = cu->kept.result;
        memset(&cu->kept, 0, sizeof(cu->kept));
    }
    return st;
}

/*
 * A synchronous request: submit, kick, wait for its completion. sync: it is
 * a synchronising one (returns the kept error first). *result (may be NULL)
 * gets cqe.result.
 */
static int call(struct vgpu_cu *cu, const struct vgpu_sqe *sqe, bool sync, uint64_t *result)
{
    uint64_t seq;
    int r;

    r = reap_ready(cu);
    if (r < 0) {
        return r;
    }
    seq = cu->next_seq;
    cu->want_seq = seq;
    cu->want_done = false;
    r = submit(cu, sqe, SLOT_SYNC, NULL);
    if (r < 0) {
        /* Not submitted, or submitted and the doorbell failed: then its
         * completion, if it ever comes, is reaped and dropped later. */
        cu->want_seq = 0;
        return r;
    }
    while (!cu->want_done) {
        r = reap_one(cu);
        if (r < 0) {
            return r == -ENOENT ? -EPROTO : r;
        }
    }
    if (result) {
        *result = cu->want_cqe.result;
    }
    if (sync && cu->kept.status != VGPU_S_OK) {
        return take_kept(cu);
    }
    if (cu->want_cqe.status != VGPU_S_OK) {
        cu->last_result = cu->want_cqe.result;
        /* Out of range is the host's bug; never hand it out as a status. */
        return cu->want_cqe.status > 0 && cu->want_cqe.status < VGPU_S_STATUS_COUNT
               ? cu->want_cqe.status : VGPU_S_INTERNAL;
    }
    return 0;
}

static int async(struct vgpu_cu *cu, const struct vgpu_sqe *sqe)
{
    int r = reap_ready(cu);

    return r < 0 ? r : submit(cu, sqe, SLOT_ASYNC, NULL);
}

static struct vgpu_sqe sqe_of(uint16_t opcode)
{
    struct vgpu_sqe s;

    memset(&s, 0, sizeof(s));
    s.opcode = opcode;
    return s;
}

/* The scratch area is free once the last request that used it completed
 * (a call that gave up waiting, -ETIMEDOUT, leaves it in flight). */
static int scratch_take(struct vgpu_cu *cu)
{
    /* scratch_seq may name a request that was never submitted: nothing to wait for. */
    int r = cu->scratch_seq && cu->scratch_seq < cu->next_seq ? wait_done(cu, cu->scratch_seq)
                                                               : 0;

    cu->scratch_seq = cu->next_seq;
    return r;
}

static void *shm_at(struct vgpu_cu *cu, uint64_t off)
{
    return cu->dev->shm + off;
}

/* ---------------------------------------------------------------------- */
/* Staging ring                                                           */

/*
 * Reserves len bytes (8-aligned, contiguous) freed by the completion of
 * request release (SEQ_PINNED: by stage_unpin()). wait: reap completions
 * until there is room; else -ENOSPC when there is none now. -EMSGSIZE when
 * len can never fit.
 */
static int stage_reserve(struct vgpu_cu *cu, uint64_t len, uint64_t release, bool wait,
                         uint64_t *off)
{
    if (len == 0 || len > cu->stage_size) {
        return -EMSGSIZE;
    }
    for (;;) {
        uint64_t start = (cu->stage_head + STAGE_ALIGN - 1) & ~(STAGE_ALIGN - 1);
        int r;

        /* Never across the ring's end: skip to the next lap instead. */
        if (start % cu->stage_size + len > cu->stage_size) {
            start += cu->stage_size - start % cu->stage_size;
        }
        if (start + len - cu->stage_tail <= cu->stage_size && cu->res_count < STAGE_RES_MAX) {
            struct stage_res *res = &cu->res[(cu->res_first + cu->res_count) % STAGE_RES_MAX];

            res->end = start + len;
            res->release = release;
            cu->res_count++;
            cu->stage_head = start + len;
            *off = cu->stage_off + start % cu->stage_size;
            return 0;
        }
        if (!wait || (cu->res_count && cu->res[cu->res_first].release == SEQ_PINNED)) {
            return -ENOSPC;
        }
        r = reap_one(cu);
        if (r == -ENOENT) {
            /* Nothing in flight: no reservation is in use any more (one
             * whose request was never sent included). */
            cu->res_count = 0;
            cu->stage_tail = cu->stage_head;
        } else if (r < 0) {
            return r;
        }
    }
}

/* The pinned reservations are free once request seq has completed. */
static void stage_unpin(struct vgpu_cu *cu, uint64_t seq)
{
    for (uint32_t i = 0; i < cu->res_count; i++) {
        struct stage_res *res = &cu->res[(cu->res_first + i) % STAGE_RES_MAX];

        if (res->release == SEQ_PINNED) {
            res->release = seq;
        }
    }
    stage_reclaim(cu);
}

/* ---------------------------------------------------------------------- */
/* Handle                                                                 */

int vgpu_cu_open(struct vgpu_dev *dev, const struct vgpu_cu_opts *opts,
                 struct vgpu_cu **out)
{
    struct vgpu_dev_info info;
    struct vgpu_cu *cu;
    uint64_t stage;
    int r;

    if (!dev || !out) {
        return -EINVAL;
    }
    *out = NULL;
    if (opts && (opts->timeout_ms < 0 ||
                 (opts->staging_size && opts->staging_size < STAGE_MIN))) {
        return -EINVAL;
    }
    /* Completions of requests submitted before would not be ours. */
    if (dev->sq_tail - dev->cq_head - dev->abandoned != 0) {
        return -EBUSY;
    }
    r = vgpu_get_info(dev, &info);
    if (r < 0) {
        return r;
    }
    stage = opts && opts->staging_size ? opts->staging_size : STAGE_DEFAULT;
    if (!(opts && opts->staging_size) && stage > info.data_size / 8) {
        stage = info.data_size / 8 > STAGE_MIN ? info.data_size / 8 : STAGE_MIN;
    }
    stage &= ~(STAGE_ALIGN - 1);
    cu = calloc(1, sizeof(*cu));
    if (!cu) {
        return -ENOMEM;
    }
    cu->dev = dev;
    cu->timeout_ms = opts && opts->timeout_ms ? opts->timeout_ms : -1;
    cu->next_seq = cu->done_below = 1;
    /* One allocation, so that a failure takes nothing from the data area. */
    r = vgpu_alloc(dev, SCRATCH_ALLOC + stage, 64, &cu->scratch_off);
    if (r < 0) {
        free(cu);
        return r;
    }
    cu->stage_off = cu->scratch_off + SCRATCH_ALLOC;
    cu->stage_size = stage;
    *out = cu;
    return 0;
}

void vgpu_cu_close(struct vgpu_cu *cu)
{
    if (!cu) {
        return;
    }
    /* The host may still write into scratch or staging space: wait until it
     * is done with them (or the link or the timeout says it never will). */
    while (reap_one(cu) == 0) {
    }
    free(cu);
}

struct vgpu_dev *vgpu_cu_dev(struct vgpu_cu *cu)
{
    return cu ? cu->dev : NULL;
}

uint64_t vgpu_cu_last_result(const struct vgpu_cu *cu)
{
    return cu ? cu->last_result : 0;
}

uint32_t vgpu_cu_outstanding(const struct vgpu_cu *cu)
{
    uint32_t n = 0;

    if (!cu) {
        return 0;
    }
    for (uint64_t s = cu->done_below; s < cu->next_seq; s++) {
        n += !cu->done[slot_of(s)];
    }
    return n;
}

int vgpu_cu_call(struct vgpu_cu *cu, const struct vgpu_sqe *sqe, uint64_t *result)
{
    if (!cu || !sqe) {
        return -EINVAL;
    }
    return call(cu, sqe, synchronising(sqe->opcode), result);
}

int vgpu_cu_submit_async(struct vgpu_cu *cu, const struct vgpu_sqe *sqe)
{
    if (!cu || !sqe) {
        return -EINVAL;
    }
    return async(cu, sqe);
}

int vgpu_cu_drain(struct vgpu_cu *cu)
{
    int r;

    if (!cu) {
        return -EINVAL;
    }
    r = wait_done(cu, cu->next_seq - 1);
    return r < 0 ? r : take_kept(cu);
}

int vgpu_cu_async_error(struct vgpu_cu *cu, struct vgpu_cu_error *out, int clear)
{
    int r, st;

    if (!cu) {
        return -EINVAL;
    }
    r = reap_ready(cu);
    if (r < 0) {
        return r;
    }
    st = cu->kept.status;
    if (out) {
        *out = cu->kept;
    }
    if (clear) {
        take_kept(cu);
    }
    return st;
}

/* ---------------------------------------------------------------------- */
/* Device and memory                                                      */

int vgpu_cu_device_info(struct vgpu_cu *cu, struct vgpu_cu_device_info *out)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_DEVICE_INFO);
    int r;

    if (!cu || !out) {
        return -EINVAL;
    }
    r = scratch_take(cu);
    if (r < 0) {
        return r;
    }
    s.args.cu_out.out_off = cu->scratch_off + SCRATCH_OUT;
    s.args.cu_out.out_len = sizeof(*out);
    r = call(cu, &s, false, NULL);
    if (r != 0) {
        return r;
    }
    memcpy(out, shm_at(cu, s.args.cu_out.out_off), sizeof(*out));
    out->name[sizeof(out->name) - 1] = '\0';
    if (out->attr_count > VGPU_CU_ATTRS) {
        out->attr_count = VGPU_CU_ATTRS;
    }
    return 0;
}

int vgpu_cu_mem_get_info(struct vgpu_cu *cu, uint64_t *free_bytes)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MEM_GET_INFO);

    if (!cu || !free_bytes) {
        return -EINVAL;
    }
    return call(cu, &s, false, free_bytes);
}

int vgpu_cu_mem_alloc(struct vgpu_cu *cu, uint64_t bytes, uint64_t *dptr)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MEM_ALLOC);

    if (!cu || !dptr || bytes == 0) {
        return -EINVAL;
    }
    s.args.cu_mem.bytes = bytes;
    return call(cu, &s, false, dptr);
}

int vgpu_cu_mem_free(struct vgpu_cu *cu, uint64_t dptr)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MEM_FREE);

    if (!cu) {
        return -EINVAL;
    }
    s.args.cu_mem.dptr = dptr;
    return call(cu, &s, false, NULL);
}

int vgpu_cu_memset_async(struct vgpu_cu *cu, uint64_t dptr, uint32_t value,
                         uint32_t elem_size, uint64_t count, uint32_t stream)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MEMSET);

    if (!cu || (elem_size != 1 && elem_size != 2 && elem_size != 4)) {
        return -EINVAL;
    }
    s.args.cu_memset.dptr = dptr;
    s.args.cu_memset.count = count;
    s.args.cu_memset.value = value;
    s.args.cu_memset.elem_size = elem_size;
    s.args.cu_memset.stream = stream;
    return async(cu, &s);
}

static int copy_async(struct vgpu_cu *cu, uint16_t opcode, uint64_t dst, uint64_t src,
                      uint64_t len, uint32_t stream)
{
    struct vgpu_sqe s = sqe_of(opcode);

    if (!cu) {
        return -EINVAL;
    }
    s.args.cu_memcpy.dst = dst;
    s.args.cu_memcpy.src = src;
    s.args.cu_memcpy.len = len;
    s.args.cu_memcpy.stream = stream;
    return async(cu, &s);
}

int vgpu_cu_memcpy_htod_async(struct vgpu_cu *cu, uint64_t dst, uint64_t src_off,
                              uint64_t len, uint32_t stream)
{
    return copy_async(cu, VGPU_OP_CU_MEMCPY_HTOD, dst, src_off, len, stream);
}

int vgpu_cu_memcpy_dtoh_async(struct vgpu_cu *cu, uint64_t dst_off, uint64_t src,
                              uint64_t len, uint32_t stream)
{
    return copy_async(cu, VGPU_OP_CU_MEMCPY_DTOH, dst_off, src, len, stream);
}

int vgpu_cu_memcpy_dtod_async(struct vgpu_cu *cu, uint64_t dst, uint64_t src,
                              uint64_t len, uint32_t stream)
{
    return copy_async(cu, VGPU_OP_CU_MEMCPY_DTOD, dst, src, len, stream);
}

int vgpu_cu_memcpy_2d_async(struct vgpu_cu *cu, const struct vgpu_args_cu_memcpy2d *args)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MEMCPY_2D);

    if (!cu || !args) {
        return -EINVAL;
    }
    s.args.cu_memcpy2d = *args;
    return async(cu, &s);
}

/* A chunk of a staged copy between its submission and the stream sync. */
struct chunk {
    uint64_t off;
    uint8_t *host;
    uint64_t len;
};

/*
 * Ends the chunks staged so far: syncs stream, then (DtoH) copies them out
 * and frees their space. Returns the stream sync's status (the kept error
 * of the copies first).
 */
static int staged_barrier(struct vgpu_cu *cu, uint32_t stream, struct chunk *c, unsigned *n,
                          bool to_host)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_STREAM_SYNC);
    uint64_t seq = cu->next_seq;
    int r;

    s.args.cu_handle.handle = stream;
    r = call(cu, &s, true, NULL);
    if (r < 0) {
        stage_unpin(cu, cu->next_seq);  /* as in staged_copy()'s err */
        return r;
    }
    for (unsigned i = 0; r == 0 && to_host && i < *n; i++) {
        memcpy(c[i].host, shm_at(cu, c[i].off), c[i].len);
    }
    *n = 0;
    stage_unpin(cu, seq);
    return r;
}

static int staged_copy(struct vgpu_cu *cu, uint16_t opcode, uint64_t dptr, uint8_t *host,
                       uint64_t len, uint32_t stream)
{
    /* Two chunks fit the ring, so one is copied while the other moves. */
    uint64_t chunk_max = cu->stage_size / 2 & ~(STAGE_ALIGN - 1);
    bool to_host = opcode == VGPU_OP_CU_MEMCPY_DTOH;
    struct chunk c[4];
    unsigned n = 0;
    int r;

    r = reap_ready(cu);
    if (r < 0) {
        return r;
    }
    while (len) {
        uint64_t part = len < chunk_max ? len : chunk_max, off;
        struct vgpu_sqe s = sqe_of(opcode);

        r = n < sizeof(c) / sizeof(c[0]) ? stage_reserve(cu, part, SEQ_PINNED, true, &off)
                                         : -ENOSPC;
        if (r == -ENOSPC) {
            r = staged_barrier(cu, stream, c, &n, to_host);
            if (r != 0) {
                return r;
            }
            continue;
        }
        if (r < 0) {
            goto err;
        }
        if (!to_host) {
            memcpy(shm_at(cu, off), host, part);
        }
        s.args.cu_memcpy.dst = to_host ? off : dptr;
        s.args.cu_memcpy.src = to_host ? dptr : off;
        s.args.cu_memcpy.len = part;
        s.args.cu_memcpy.stream = stream;
        r = submit(cu, &s, SLOT_ASYNC, NULL);
        if (r < 0) {
            goto err;
        }
        c[n++] = (struct chunk) { off, host, part };
        dptr += part;
        host += part;
        len -= part;
    }
    return staged_barrier(cu, stream, c, &n, to_host);

err:
    /* The link failed under us: nothing tells when the copies are done any
     * more. Free their space with the next completion rather than never. */
    stage_unpin(cu, cu->next_seq);
    return r;
}

int vgpu_cu_memcpy_htod(struct vgpu_cu *cu, uint64_t dst, const void *src, uint64_t len,
                        uint32_t stream)
{
    if (!cu || (!src && len)) {
        return -EINVAL;
    }
    /* The source is only read: the cast lets one loop serve both directions. */
    return len ? staged_copy(cu, VGPU_OP_CU_MEMCPY_HTOD, dst, (uint8_t *)(uintptr_t)src, len,
                             stream) : 0;
}

int vgpu_cu_memcpy_dtoh(struct vgpu_cu *cu, void *dst, uint64_t src, uint64_t len,
                        uint32_t stream)
{
    if (!cu || (!dst && len)) {
        return -EINVAL;
    }
    return len ? staged_copy(cu, VGPU_OP_CU_MEMCPY_DTOH, src, dst, len, stream) : 0;
}

/* ---------------------------------------------------------------------- */
/* Modules                                                                */

int vgpu_cu_module_load(struct vgpu_cu *cu, uint64_t image_off, uint64_t image_len,
                        uint32_t *module)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MODULE_LOAD);
    uint64_t result = 0;
    int r;

    if (!cu || !module) {
        return -EINVAL;
    }
    s.args.cu_module_load.image_off = image_off;
    s.args.cu_module_load.image_len = image_len;
    r = call(cu, &s, false, &result);
    *module = (uint32_t)result;
    return r;
}

int vgpu_cu_module_load_data(struct vgpu_cu *cu, const void *image, uint64_t len,
                             uint32_t *module)
{
    uint64_t off;
    int r;

    if (!cu || !image || !module || len == 0) {
        return -EINVAL;
    }
    r = reap_ready(cu);
    if (r < 0) {
        return r;
    }
    r = stage_reserve(cu, len, cu->next_seq, true, &off);
    if (r < 0) {
        return r;
    }
    memcpy(shm_at(cu, off), image, len);
    return vgpu_cu_module_load(cu, off, len, module);
}

int vgpu_cu_module_unload(struct vgpu_cu *cu, uint32_t module)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_MODULE_UNLOAD);

    if (!cu) {
        return -EINVAL;
    }
    s.args.cu_handle.handle = module;
    return call(cu, &s, false, NULL);
}

/* GET_FUNCTION / GET_GLOBAL with the name in the scratch area; the output
 * lands at SCRATCH_OUT. */
static int symbol_call(struct vgpu_cu *cu, uint16_t opcode, uint32_t module, const char *name,
                       uint32_t out_len, uint64_t *result)
{
    struct vgpu_sqe s = sqe_of(opcode);
    size_t n;
    int r;

    if (!name) {
        return -EINVAL;
    }
    n = strnlen(name, VGPU_CU_MAX_NAME);
    if (n == 0 || n >= VGPU_CU_MAX_NAME) {
        return -EINVAL;
    }
    r = scratch_take(cu);
    if (r < 0) {
        return r;
    }
    memcpy(shm_at(cu, cu->scratch_off + SCRATCH_NAME), name, n + 1);
    s.args.cu_symbol.name_off = cu->scratch_off + SCRATCH_NAME;
    s.args.cu_symbol.name_len = (uint32_t)n + 1;
    s.args.cu_symbol.out_off = cu->scratch_off + SCRATCH_OUT;
    s.args.cu_symbol.out_len = out_len;
    s.args.cu_symbol.module = module;
    return call(cu, &s, false, result);
}

int vgpu_cu_module_get_function(struct vgpu_cu *cu, uint32_t module, const char *name,
                                uint32_t *func, struct vgpu_cu_func_info *info,
                                struct vgpu_cu_param *params, uint32_t max_params)
{
    struct vgpu_cu_func_info fi;
    uint64_t result = 0;
    int r;

    if (!cu || !func || (!params && max_params)) {
        return -EINVAL;
    }
    r = symbol_call(cu, VGPU_OP_CU_MODULE_GET_FUNCTION, module, name, FUNC_INFO_MAX, &result);
    if (r != 0) {
        return r;
    }
    *func = (uint32_t)result;
    memcpy(&fi, shm_at(cu, cu->scratch_off + SCRATCH_OUT), sizeof(fi));
    if (fi.param_count > VGPU_CU_MAX_PARAMS) {
        fi.param_count = VGPU_CU_MAX_PARAMS;    /* the host's bug; never read past */
    }
    if (info) {
        *info = fi;
    }
    if (params) {
        uint32_t n = fi.param_count < max_params ? fi.param_count : max_params;

        memcpy(params, shm_at(cu, cu->scratch_off + SCRATCH_OUT + sizeof(fi)),
               n * sizeof(*params));
    }
    return 0;
}

int vgpu_cu_module_get_global(struct vgpu_cu *cu, uint32_t module, const char *name,
                              uint64_t *dptr, uint64_t *bytes)
{
    struct vgpu_cu_global g;
    int r;

    if (!cu) {
        return -EINVAL;
    }
    r = symbol_call(cu, VGPU_OP_CU_MODULE_GET_GLOBAL, module, name, sizeof(g), NULL);
    if (r != 0) {
        return r;
    }
    memcpy(&g, shm_at(cu, cu->scratch_off + SCRATCH_OUT), sizeof(g));
    if (dptr) {
        *dptr = g.dptr;
    }
    if (bytes) {
        *bytes = g.bytes;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Launches                                                               */

int vgpu_cu_launch(struct vgpu_cu *cu, const struct vgpu_args_cu_launch *args)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_LAUNCH);

    if (!cu || !args) {
        return -EINVAL;
    }
    s.args.cu_launch = *args;
    return async(cu, &s);
}

int vgpu_cu_launch_params(struct vgpu_cu *cu, const struct vgpu_args_cu_launch *args,
                          const void *params)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_LAUNCH);
    int r;

    if (!cu || !args || (!params && args->params_len) ||
        args->params_len > VGPU_CU_MAX_PARAM_BYTES) {
        return -EINVAL;
    }
    r = reap_ready(cu);
    if (r < 0) {
        return r;
    }
    s.args.cu_launch = *args;
    s.args.cu_launch.params_off = 0;
    if (args->params_len) {
        /* Freed by this launch's completion: the host has copied the
         * parameters by then (cuLaunchKernel takes them by value). */
        r = stage_reserve(cu, args->params_len, cu->next_seq, true,
                          &s.args.cu_launch.params_off);
        if (r < 0) {
            return r;
        }
        memcpy(shm_at(cu, s.args.cu_launch.params_off), params, args->params_len);
    }
    return submit(cu, &s, SLOT_ASYNC, NULL);
}

/* ---------------------------------------------------------------------- */
/* Streams, events, context, functions                                    */

static int handle_call(struct vgpu_cu *cu, uint16_t opcode, uint32_t handle, uint64_t *result)
{
    struct vgpu_sqe s = sqe_of(opcode);

    if (!cu) {
        return -EINVAL;
    }
    s.args.cu_handle.handle = handle;
    return call(cu, &s, synchronising(opcode), result);
}

static int create_call(struct vgpu_cu *cu, uint16_t opcode, uint32_t flags, int32_t priority,
                       uint32_t *handle)
{
    struct vgpu_sqe s = sqe_of(opcode);
    uint64_t result = 0;
    int r;

    if (!cu || !handle) {
        return -EINVAL;
    }
    s.args.cu_create.flags = flags;
    s.args.cu_create.priority = priority;
    r = call(cu, &s, false, &result);
    *handle = (uint32_t)result;
    return r;
}

static int pair_call(struct vgpu_cu *cu, uint16_t opcode, uint32_t a, uint32_t b,
                     bool is_async, uint64_t *result)
{
    struct vgpu_sqe s = sqe_of(opcode);

    if (!cu) {
        return -EINVAL;
    }
    s.args.cu_pair.a = a;
    s.args.cu_pair.b = b;
    return is_async ? async(cu, &s) : call(cu, &s, false, result);
}

/* QUERY's result: 0 done, 1 still running. */
static int query_call(struct vgpu_cu *cu, uint16_t opcode, uint32_t handle, int *done)
{
    uint64_t result = 0;
    int r;

    if (!done) {
        return -EINVAL;
    }
    r = handle_call(cu, opcode, handle, &result);
    if (r == 0) {
        *done = result == 0;
    }
    return r;
}

int vgpu_cu_stream_create(struct vgpu_cu *cu, uint32_t flags, int32_t priority,
                          uint32_t *stream)
{
    return create_call(cu, VGPU_OP_CU_STREAM_CREATE, flags, priority, stream);
}

int vgpu_cu_stream_destroy(struct vgpu_cu *cu, uint32_t stream)
{
    return handle_call(cu, VGPU_OP_CU_STREAM_DESTROY, stream, NULL);
}

int vgpu_cu_stream_sync(struct vgpu_cu *cu, uint32_t stream)
{
    return handle_call(cu, VGPU_OP_CU_STREAM_SYNC, stream, NULL);
}

int vgpu_cu_stream_query(struct vgpu_cu *cu, uint32_t stream, int *done)
{
    return query_call(cu, VGPU_OP_CU_STREAM_QUERY, stream, done);
}

int vgpu_cu_stream_wait_event(struct vgpu_cu *cu, uint32_t stream, uint32_t event)
{
    return pair_call(cu, VGPU_OP_CU_STREAM_WAIT_EVENT, stream, event, true, NULL);
}

int vgpu_cu_event_create(struct vgpu_cu *cu, uint32_t flags, uint32_t *event)
{
    return create_call(cu, VGPU_OP_CU_EVENT_CREATE, flags, 0, event);
}

int vgpu_cu_event_destroy(struct vgpu_cu *cu, uint32_t event)
{
    return handle_call(cu, VGPU_OP_CU_EVENT_DESTROY, event, NULL);
}

int vgpu_cu_event_record(struct vgpu_cu *cu, uint32_t event, uint32_t stream)
{
    return pair_call(cu, VGPU_OP_CU_EVENT_RECORD, event, stream, true, NULL);
}

int vgpu_cu_event_sync(struct vgpu_cu *cu, uint32_t event)
{
    return handle_call(cu, VGPU_OP_CU_EVENT_SYNC, event, NULL);
}

int vgpu_cu_event_query(struct vgpu_cu *cu, uint32_t event, int *done)
{
    return query_call(cu, VGPU_OP_CU_EVENT_QUERY, event, done);
}

int vgpu_cu_event_elapsed(struct vgpu_cu *cu, uint32_t start, uint32_t end, float *ms)
{
    uint64_t result = 0;
    uint32_t bits;
    int r;

    if (!ms) {
        return -EINVAL;
    }
    r = pair_call(cu, VGPU_OP_CU_EVENT_ELAPSED, start, end, false, &result);
    if (r == 0) {
        bits = (uint32_t)result;
        memcpy(ms, &bits, sizeof(*ms));
    }
    return r;
}

int vgpu_cu_ctx_sync(struct vgpu_cu *cu)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_CTX_SYNC);

    return cu ? call(cu, &s, true, NULL) : -EINVAL;
}

int vgpu_cu_ctx_reset(struct vgpu_cu *cu)
{
    struct vgpu_sqe s = sqe_of(VGPU_OP_CU_CTX_RESET);

    return cu ? call(cu, &s, true, NULL) : -EINVAL;
}

static int func_call(struct vgpu_cu *cu, uint16_t opcode, uint32_t func, int32_t attr,
                     int32_t value, int32_t *out)
{
    struct vgpu_sqe s = sqe_of(opcode);
    uint64_t result = 0;
    int r;

    if (!cu) {
        return -EINVAL;
    }
    s.args.cu_func_attr.func = func;
    s.args.cu_func_attr.attr = attr;
    s.args.cu_func_attr.value = value;
    r = call(cu, &s, false, &result);
    if (r == 0 && out) {
        *out = (int32_t)(uint32_t)result;
    }
    return r;
}

int vgpu_cu_func_get_attr(struct vgpu_cu *cu, uint32_t func, int32_t attr, int32_t *value)
{
    return value ? func_call(cu, VGPU_OP_CU_FUNC_GET_ATTR, func, attr, 0, value) : -EINVAL;
}

int vgpu_cu_func_set_attr(struct vgpu_cu *cu, uint32_t func, int32_t attr, int32_t value)
{
    return func_call(cu, VGPU_OP_CU_FUNC_SET_ATTR, func, attr, value, NULL);
}

int vgpu_cu_occupancy(struct vgpu_cu *cu, uint32_t func, int32_t block_size,
                      int32_t dyn_shared, int32_t *blocks_per_sm)
{
    if (!blocks_per_sm) {
        return -EINVAL;
    }
    return func_call(cu, VGPU_OP_CU_OCCUPANCY, func, block_size, dyn_shared, blocks_per_sm);
}
