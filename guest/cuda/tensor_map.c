/* SPDX-License-Identifier: MIT */
/*
 * Tensor maps (TMA descriptors): cuTensorMapEncodeTiled/Im2col and
 * cuTensorMapReplaceAddress.
 *
 * The 128-byte CUtensorMap is in the driver's own format, which only the
 * host's driver can write: the arguments go to the host as a struct
 * vgpu_cu_tensor_map_req in this library's scratch area (CU_TENSOR_MAP, a
 * synchronous call) and the encoded bytes come back into the caller's map.
 * From then on the map is plain data: a kernel takes it as a parameter by
 * value (its 128 bytes in the packed parameter buffer, as for any struct)
 * or from device memory the program copied it to.
 *
 * cuTensorMapReplaceAddress re-encodes: the library keeps the requests of
 * the last TMAP_CACHE maps it encoded, found again by the map's bytes.
 */
#include <string.h>

#include "cuda_internal.h"

#define TMAP_IN     0u      /* struct vgpu_cu_tensor_map_req, 8-aligned */
#define TMAP_OUT    256u    /* the encoded map, 64-aligned */
#define TMAP_CACHE  64u

_Static_assert(TMAP_IN + sizeof(struct vgpu_cu_tensor_map_req) <= TMAP_OUT, "scratch: in, out");
_Static_assert(TMAP_OUT + VGPU_CU_TENSOR_MAP_BYTES <= CU_REMOTE_SCRATCH, "scratch holds a map");
_Static_assert(sizeof(CUtensorMap) == VGPU_CU_TENSOR_MAP_BYTES, "CUtensorMap size");

struct tmap_entry {
    int      used;
    uint32_t kind;                              /* VGPU_CU_TENSOR_MAP_* */
    uint8_t  map[VGPU_CU_TENSOR_MAP_BYTES];
    struct vgpu_cu_tensor_map_req req;
};

/* Guarded by cu_lock; the oldest entry makes room. */
static struct tmap_entry tmap_cache[TMAP_CACHE];
static unsigned tmap_next;

static struct tmap_entry *tmap_find(const void *map)
{
    unsigned i;

    for (i = 0; i < TMAP_CACHE; i++) {
        if (tmap_cache[i].used && memcmp(tmap_cache[i].map, map, VGPU_CU_TENSOR_MAP_BYTES) == 0) {
            return &tmap_cache[i];
        }
    }
    return NULL;
}

/* reuse (may be NULL): the entry of the map this one replaces, so that a
 * map whose address is replaced over and over keeps one entry. */
static void tmap_keep(uint32_t kind, const struct vgpu_cu_tensor_map_req *q, const void *map,
                      struct tmap_entry *reuse)
{
    struct tmap_entry *e = tmap_find(map);

    if (!e) {
        e = reuse;
    }
    if (!e) {
        e = &tmap_cache[tmap_next];
        tmap_next = (tmap_next + 1) % TMAP_CACHE;
    }
    e->used = 1;
    e->kind = kind;
    e->req = *q;
    memcpy(e->map, map, VGPU_CU_TENSOR_MAP_BYTES);
}

/* CU_TENSOR_MAP of *q into *map, kept (in reuse, if not NULL); cu_lock held. */
static CUresult tmap_encode_locked(uint32_t kind, const struct vgpu_cu_tensor_map_req *q,
                                   CUtensorMap *map, struct tmap_entry *reuse)
{
    const struct cu_remote *r = &cu_g.remote;
    struct vgpu_sqe sqe;
    CUresult rv;

    if (!r->scratch) {
        return CUDA_ERROR_OUT_OF_MEMORY;    /* the data area had no room for it */
    }
    memcpy(r->scratch + TMAP_IN, q, sizeof(*q));
    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = VGPU_OP_CU_TENSOR_MAP;
    sqe.args.cu_tensor_map.in_off = r->scratch_off + TMAP_IN;
    sqe.args.cu_tensor_map.out_off = r->scratch_off + TMAP_OUT;
    sqe.args.cu_tensor_map.kind = kind;
    rv = cu_result(vgpu_cu_call(cu_rm(), &sqe, NULL));
    if (rv == CUDA_SUCCESS) {
        memcpy(map, r->scratch + TMAP_OUT, VGPU_CU_TENSOR_MAP_BYTES);
        tmap_keep(kind, q, map, reuse);
    }
    return rv;
}

static CUresult tmap_encode(uint32_t kind, const struct vgpu_cu_tensor_map_req *q,
                            CUtensorMap *map)
{
    CUresult rv;

    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = tmap_encode_locked(kind, q, map, NULL);
    }
    CU_LEAVE();
    return rv;
}

/* The parts Tiled and Im2col share; the rank is checked here, before it
 * sizes a copy: 1 .. 5 (im2col: 3 .. 5), as the driver takes it. */
static CUresult tmap_common(struct vgpu_cu_tensor_map_req *q, CUtensorMap *map,
                            CUtensorMapDataType type, cuuint32_t rank, cuuint32_t min_rank,
                            void *addr, const cuuint64_t *dim, const cuuint64_t *strides,
                            const cuuint32_t *estrides, CUtensorMapInterleave interleave,
                            CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2,
                            CUtensorMapFloatOOBfill oob)
{
    if (!map || !dim || !estrides || (rank > 1 && !strides) || rank < min_rank || rank > 5) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    memset(q, 0, sizeof(*q));
    q->data_type = (uint32_t)type;
    q->rank = rank;
    q->global_address = (uint64_t)(uintptr_t)addr;
    memcpy(q->global_dim, dim, rank * sizeof(q->global_dim[0]));
    if (rank > 1) {
        memcpy(q->global_strides, strides, (rank - 1) * sizeof(q->global_strides[0]));
    }
    memcpy(q->element_strides, estrides, rank * sizeof(q->element_strides[0]));
    q->interleave = (uint32_t)interleave;
    q->swizzle = (uint32_t)swizzle;
    q->l2_promotion = (uint32_t)l2;
    q->oob_fill = (uint32_t)oob;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuTensorMapEncodeTiled(
    CUtensorMap *tensorMap, CUtensorMapDataType tensorDataType, cuuint32_t tensorRank,
    void *globalAddress, const cuuint64_t *globalDim, const cuuint64_t *globalStrides,
    const cuuint32_t *boxDim, const cuuint32_t *elementStrides, CUtensorMapInterleave interleave,
    CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2Promotion,
    CUtensorMapFloatOOBfill oobFill)
{
    struct vgpu_cu_tensor_map_req q;
    CUresult rv;

    if (!boxDim) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    rv = tmap_common(&q, tensorMap, tensorDataType, tensorRank, 1, globalAddress, globalDim,
                     globalStrides, elementStrides, interleave, swizzle, l2Promotion, oobFill);
    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    memcpy(q.box_dim, boxDim, tensorRank * sizeof(q.box_dim[0]));
    return tmap_encode(VGPU_CU_TENSOR_MAP_TILED, &q, tensorMap);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuTensorMapEncodeIm2col(
    CUtensorMap *tensorMap, CUtensorMapDataType tensorDataType, cuuint32_t tensorRank,
    void *globalAddress, const cuuint64_t *globalDim, const cuuint64_t *globalStrides,
    const int *pixelBoxLowerCorner, const int *pixelBoxUpperCorner, cuuint32_t channelsPerPixel,
    cuuint32_t pixelsPerColumn, const cuuint32_t *elementStrides, CUtensorMapInterleave interleave,
    CUtensorMapSwizzle swizzle, CUtensorMapL2promotion l2Promotion,
    CUtensorMapFloatOOBfill oobFill)
{
    struct vgpu_cu_tensor_map_req q;
    CUresult rv;

    if (!pixelBoxLowerCorner || !pixelBoxUpperCorner) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    rv = tmap_common(&q, tensorMap, tensorDataType, tensorRank, 3, globalAddress, globalDim,
                     globalStrides, elementStrides, interleave, swizzle, l2Promotion, oobFill);
    if (rv != CUDA_SUCCESS) {
        return rv;
    }
    memcpy(q.lower_corner, pixelBoxLowerCorner, (tensorRank - 2) * sizeof(q.lower_corner[0]));
    memcpy(q.upper_corner, pixelBoxUpperCorner, (tensorRank - 2) * sizeof(q.upper_corner[0]));
    q.channels_per_pixel = channelsPerPixel;
    q.pixels_per_column = pixelsPerColumn;
    return tmap_encode(VGPU_CU_TENSOR_MAP_IM2COL, &q, tensorMap);
}

/* The same map over another address: its request again, re-encoded. A map
 * this library did not encode lately (or one changed since, or a copy of
 * a map whose address was replaced since) cannot be re-encoded here. */
VGPU_CU_EXPORT CUresult CUDAAPI cuTensorMapReplaceAddress(CUtensorMap *tensorMap,
                                                          void *globalAddress)
{
    struct vgpu_cu_tensor_map_req q;
    struct tmap_entry *e;
    uint32_t kind;
    CUresult rv;

    if (!tensorMap) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        e = tmap_find(tensorMap);
        if (!e) {
            CU_LEAVE();
            return vgpu_cu_unsupported("cuTensorMapReplaceAddress (a map not encoded lately)");
        }
        q = e->req;
        kind = e->kind;
        q.global_address = (uint64_t)(uintptr_t)globalAddress;
        rv = tmap_encode_locked(kind, &q, tensorMap, e);
    }
    CU_LEAVE();
    return rv;
}
