// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// warp_intrinsics: __shfl_sync (broadcast, up, down, xor), __ballot_sync,
// __any_sync/__all_sync, __popc, __activemask and a warp-shuffle reduction,
// each compared with what a CPU computes for the same lanes.
#include "check.h"

struct lane_out {
    int bcast, up, down, xr, sum;
    unsigned ballot, active;
    int any, all;
};

__global__ void warp_ops(const int *in, struct lane_out *out)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    int lane = threadIdx.x & 31;
    int v = in[t];
    struct lane_out o;

    o.bcast = __shfl_sync(0xffffffffu, v, 5);
    o.up = __shfl_up_sync(0xffffffffu, v, 3);
    o.down = __shfl_down_sync(0xffffffffu, v, 2);
    o.xr = __shfl_xor_sync(0xffffffffu, v, 1);
    o.ballot = __ballot_sync(0xffffffffu, v & 1);
    o.any = __any_sync(0xffffffffu, v == 12345);
    o.all = __all_sync(0xffffffffu, v >= 0);
    int s = v;
    for (int off = 16; off > 0; off /= 2) {
        s += __shfl_down_sync(0xffffffffu, s, off);
    }
    o.sum = __shfl_sync(0xffffffffu, s, 0);
    o.active = 0;
    if (lane % 3 == 0) {
        o.active = __activemask();   // a subset of lanes 0, 3, 6, ... with this one
    }
    out[t] = o;
}

int main(void)
{
    const int warps = 64, n = warps * 32;
    int in[n], *din;
    struct lane_out *out, *dout;
    unsigned seed = 11;

    prog_name = "warp_intrinsics";
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        in[i] = (int)(seed >> 12) & 0xffff;
    }
    in[7 * 32 + 9] = 12345;   // warp 7 only: __any_sync
    out = (struct lane_out *)malloc(n * sizeof(*out));
    CK(cudaMalloc(&din, sizeof(in)));
    CK(cudaMalloc(&dout, n * sizeof(*out)));
    CK(cudaMemcpy(din, in, sizeof(in), cudaMemcpyHostToDevice));
    warp_ops<<<warps / 4, 128>>>(din, dout);
    CK_LAUNCH();
    CK(cudaMemcpy(out, dout, n * sizeof(*out), cudaMemcpyDeviceToHost));
    for (int w = 0; w < warps; w++) {
        const int *v = in + w * 32;
        unsigned ballot = 0, mask3 = 0;
        int sum = 0, any = 0;
        for (int l = 0; l < 32; l++) {
            ballot |= (unsigned)(v[l] & 1) << l;
            sum += v[l];
            any |= v[l] == 12345;
            if (l % 3 == 0) {
                mask3 |= 1u << l;
            }
        }
        for (int l = 0; l < 32; l++) {
            const struct lane_out *o = out + w * 32 + l;
            if (o->bcast != v[5] || o->up != v[l >= 3 ? l - 3 : l] ||
                o->down != v[l + 2 < 32 ? l + 2 : l] || o->xr != v[l ^ 1] ||
                o->ballot != ballot || o->sum != sum || o->any != any || !o->all ||
                __builtin_popcount(o->ballot) != __builtin_popcount(ballot) ||
                (l % 3 == 0 && ((o->active & ~mask3) || !(o->active & (1u << l))))) {
                fail("warp %d lane %d: bcast %d up %d down %d xor %d ballot %08x sum %d any %d "
                     "all %d active %08x; want %d %d %d %d %08x %d %d 1 %08x", w, l, o->bcast,
                     o->up, o->down, o->xr, o->ballot, o->sum, o->any, o->all, o->active, v[5],
                     v[l >= 3 ? l - 3 : l], v[l + 2 < 32 ? l + 2 : l], v[l ^ 1], ballot, sum,
                     any, mask3);
            }
        }
    }
    pass("64 warps: shfl, shfl_up/down/xor, ballot, any/all, activemask, shuffle reduction");
}
