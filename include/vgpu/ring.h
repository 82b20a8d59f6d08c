/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Ring index arithmetic and shared-memory accessors, shared by the mediator
 * (host) and libvgpu (guest or simulated device).
 *
 * Indexes are free-running uint32 counters; "tail - head" (mod 2^32) is the
 * number of filled entries. A producer publishes an entry by writing the
 * entry and then storing the tail with release order; a consumer loads the
 * tail with acquire order before reading entries. The peer is untrusted: a
 * count larger than the ring means the peer scribbled on its index, and
 * vgpu_ring_count() reports it as VGPU_RING_CORRUPT.
 */
#ifndef VGPU_RING_H
#define VGPU_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "abi.h"

#define VGPU_RING_CORRUPT UINT32_MAX

/* Filled entries between head and tail, or VGPU_RING_CORRUPT if > entries. */
static inline uint32_t vgpu_ring_count(uint32_t head, uint32_t tail, uint32_t entries)
{
    uint32_t n = tail - head;
    return n > entries ? VGPU_RING_CORRUPT : n;
}

static inline bool vgpu_ring_empty(uint32_t head, uint32_t tail)
{
    return head == tail;
}

static inline bool vgpu_ring_full(uint32_t head, uint32_t tail, uint32_t entries)
{
    return tail - head >= entries;
}

/* Slot of a free-running index; entries is a power of two. */
static inline uint32_t vgpu_ring_slot(uint32_t index, uint32_t entries)
{
    return index & (entries - 1);
}

static inline uint32_t vgpu_load_acquire(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void vgpu_store_release(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline struct vgpu_shm_ctrl *vgpu_shm_ctrl(void *shm)
{
    return (struct vgpu_shm_ctrl *)((uint8_t *)shm + VGPU_SHM_CTRL_OFFSET);
}

static inline struct vgpu_sqe *vgpu_shm_sq(void *shm)
{
    return (struct vgpu_sqe *)((uint8_t *)shm + VGPU_SHM_SQ_OFFSET);
}

static inline struct vgpu_cqe *vgpu_shm_cq(void *shm)
{
    return (struct vgpu_cqe *)((uint8_t *)shm + VGPU_SHM_CQ_OFFSET);
}

#endif /* VGPU_RING_H */
