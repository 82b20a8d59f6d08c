/* SPDX-License-Identifier: MIT */
/*
 * The host, as libcuda.so.1 sees it: libvgpu's CUDA client API (vgpu_cu_*,
 * include/vgpu/libvgpu.h) on one queue, plus a part of the data area that
 * this library hands out as pinned host memory. remote_vgpu.c opens the
 * device (pci in a guest; sim when VGPU_SOCKET or VGPU_TRANSPORT=sim says
 * so); the unit tests link an in-process fake of the same functions instead.
 */
#ifndef VGPU_CUDA_REMOTE_H
#define VGPU_CUDA_REMOTE_H

#include <stdint.h>

#include "vgpu/libvgpu.h"

/* Bytes of the scratch area: the inputs and outputs of this library's
 * generic requests (vgpu_cu_call), one at a time under cu_lock. */
#define CU_REMOTE_SCRATCH 512u

struct cu_remote {
    struct vgpu_dev *dev;
    struct vgpu_cu  *cu;
    uint8_t  *heap;       /* mapped: the pinned host memory heap */
    uint64_t  heap_off;   /* its BAR2 offset */
    uint64_t  heap_len;
    uint8_t  *scratch;    /* mapped, CU_REMOTE_SCRATCH bytes, 64-aligned; */
    uint64_t  scratch_off;/* NULL/0 when the data area had no room */
};

/* 0 or -errno (as vgpu_open / vgpu_cu_open); *detail: text for a log line. */
int  cu_remote_open(struct cu_remote *r, const char **detail);
void cu_remote_close(struct cu_remote *r);

#endif /* VGPU_CUDA_REMOTE_H */
