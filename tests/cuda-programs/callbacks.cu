// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// callbacks: host functions in stream order. cudaLaunchHostFunc and
// cudaStreamAddCallback each run once, after the work before them (a
// callback reads what a kernel wrote and a copy brought back) and before
// the work after them (a kernel after the callback sees the value the
// callback wrote into pinned memory... through a copy that follows it).
#include <atomic>
#include <pthread.h>

#include "check.h"

struct ctx {
    int *host;                 // pinned; the preceding copy wrote it
    int want;
    std::atomic<int> calls;
    std::atomic<int> order_ok;
    int seq;                   // which callback this is
    std::atomic<int> *order;   // callbacks run in stream order
};

static void CUDART_CB host_fn(void *p)
{
    struct ctx *c = (struct ctx *)p;

    c->calls++;
    if (*(volatile int *)c->host == c->want && c->order->fetch_add(1) == c->seq) {
        c->order_ok++;
    }
    // What the next copy on the stream sends to the GPU.
    c->host[1] = c->want + 1000;
}

static void CUDART_CB stream_cb(cudaStream_t, cudaError_t status, void *p)
{
    if (status != cudaSuccess) {
        return;
    }
    host_fn(p);
}

__global__ void fill(int *p, int v)
{
    p[0] = v;
}

__global__ void add_one(const int *in, int *out)
{
    *out = *in + 1;
}

int main(void)
{
    const int N = 16;
    cudaStream_t s;
    int *h, *d, *d2;
    struct ctx c[N];
    std::atomic<int> order(0);

    prog_name = "callbacks";
    CK(cudaStreamCreate(&s));
    CK(cudaMallocHost(&h, N * 2 * sizeof(int)));
    CK(cudaMalloc(&d, N * sizeof(int)));
    CK(cudaMalloc(&d2, N * sizeof(int)));
    for (int i = 0; i < N; i++) {
        int *hh = h + 2 * i;
        hh[0] = hh[1] = -1;
        c[i].host = hh;
        c[i].want = 100 + i;
        c[i].calls = 0;
        c[i].order_ok = 0;
        c[i].seq = i;
        c[i].order = &order;
        fill<<<1, 1, 0, s>>>(d + i, 100 + i);
        CK_LAUNCH();
        CK(cudaMemcpyAsync(hh, d + i, sizeof(int), cudaMemcpyDeviceToHost, s));
        if (i % 2) {
            CK(cudaStreamAddCallback(s, stream_cb, &c[i], 0));
        } else {
            CK(cudaLaunchHostFunc(s, host_fn, &c[i]));
        }
        // After the callback: its value goes back to the GPU and through a kernel.
        CK(cudaMemcpyAsync(d + i, hh + 1, sizeof(int), cudaMemcpyHostToDevice, s));
        add_one<<<1, 1, 0, s>>>(d + i, d2 + i);
        CK_LAUNCH();
    }
    CK(cudaStreamSynchronize(s));
    int out[N];
    CK(cudaMemcpy(out, d2, sizeof(out), cudaMemcpyDeviceToHost));
    for (int i = 0; i < N; i++) {
        if (c[i].calls != 1) {
            fail("callback %d ran %d times", i, c[i].calls.load());
        }
        if (c[i].order_ok != 1) {
            fail("callback %d ran before the copy it follows, or out of order", i);
        }
        if (out[i] != 100 + i + 1000 + 1) {
            fail("work after callback %d saw %d, want %d (it ran before the callback?)", i,
                 out[i] - 1, 100 + i + 1000);
        }
    }
    // A host function on the legacy default stream, then a synchronize.
    std::atomic<int> ran(0);
    CK(cudaLaunchHostFunc(0, [](void *p) { ((std::atomic<int> *)p)->store(1); }, &ran));
    CK(cudaDeviceSynchronize());
    if (ran != 1) {
        fail("a host function on the default stream did not run by cudaDeviceSynchronize");
    }
    CK(cudaStreamDestroy(s));
    pass("16 host functions in order (8 cudaLaunchHostFunc, 8 cudaStreamAddCallback), 1 on stream 0");
}
