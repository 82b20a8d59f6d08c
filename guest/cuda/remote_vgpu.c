/* SPDX-License-Identifier: MIT */
/*
 * The host through libvgpu: the device (pci in a guest, sim on a host when
 * VGPU_TRANSPORT=sim or VGPU_SOCKET is set), one vgpu_cu on it, a small
 * scratch area, and a part of the data area for pinned host memory:
 * VGPU_CUDA_PINNED_MB, or half of what libvgpu leaves.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

int cu_remote_open(struct cu_remote *r, const char **detail)
{
    struct vgpu_open_opts o;
    struct vgpu_dev_info info;
    const char *env;
    uint64_t want, off;
    int rc;

    memset(r, 0, sizeof(*r));
    memset(&o, 0, sizeof(o));
    o.transport = getenv("VGPU_TRANSPORT");
    o.vm_name = "libcuda";
    rc = vgpu_open(&o, &r->dev);
    if (rc < 0) {
        *detail = vgpu_open_detail();
        return rc;
    }
    rc = vgpu_get_info(r->dev, &info);
    if (rc < 0) {
        goto err_dev;
    }
    {
        /* Module images are staged whole: the toolkit's libraries have
         * fatbins of several MiB (cuBLASLt: up to 6 MiB), more than the
         * 4 MiB default. A quarter of the data area, 4 .. 64 MiB. */
        struct vgpu_cu_opts co = { .staging_size = info.data_size / 4 };

        co.staging_size = co.staging_size < (4ull << 20) ? 0
                          : co.staging_size > (64ull << 20) ? (64ull << 20)
                                                             : co.staging_size & ~0xfffull;
        rc = vgpu_cu_open(r->dev, &co, &r->cu);
    }
    if (rc < 0) {
        *detail = "the data area has no room for the CUDA rings";
        goto err_dev;
    }
    /* before the heap, which may take all there is; none: the calls that
     * need it fail cleanly */
    if (vgpu_alloc(r->dev, CU_REMOTE_SCRATCH, 64, &off) == 0) {
        r->scratch = vgpu_ptr(r->dev, off);
        r->scratch_off = off;
    }
    env = getenv("VGPU_CUDA_PINNED_MB");
    want = env ? strtoull(env, NULL, 0) << 20 : info.data_size / 2;
    for (want &= ~0xfffull; want >= (1u << 20); want = (want / 2) & ~0xfffull) {
        if (vgpu_alloc(r->dev, want, 4096, &off) == 0) {
            r->heap = vgpu_ptr(r->dev, off);
            r->heap_off = off;
            r->heap_len = want;
            break;
        }
    }
    /* no pinned heap is no error: pinned allocations then fail cleanly */
    return 0;

err_dev:
    vgpu_close(r->dev);
    memset(r, 0, sizeof(*r));
    return rc;
}

void cu_remote_close(struct cu_remote *r)
{
    vgpu_cu_close(r->cu);
    vgpu_close(r->dev);
    memset(r, 0, sizeof(*r));
}
