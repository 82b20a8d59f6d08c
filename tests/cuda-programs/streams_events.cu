// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// streams_events: four non-blocking streams, each copying its part in
// (pinned, async), running a kernel that also spins 20 ms, and copying it
// out; cudaStreamWaitEvent orders work across streams; event timing must be
// sane (a 20 ms kernel measures 20 ms .. 10 s). Whether the streams' kernels
// overlapped is measured with events and reported (not required: a GPU
// shared with other tenants may serialise them).
#include "check.h"

#define NSTREAMS 4
#define SPIN_NS 20000000ull

__device__ unsigned long long globaltimer(void)
{
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// out[i] = in[i] * 2 + s; thread 0 of block 0 spins first, so the kernel
// lasts at least SPIN_NS.
__global__ void work(const int *in, int *out, int n, int s, unsigned long long spin_ns)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        unsigned long long t0 = globaltimer();
        while (globaltimer() - t0 < spin_ns) {
        }
    }
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        out[i] = in[i] * 2 + s;
    }
}

__global__ void set_after_spin(int *flag, unsigned long long spin_ns)
{
    unsigned long long t0 = globaltimer();
    while (globaltimer() - t0 < spin_ns) {
    }
    *(volatile int *)flag = 41;
}

__global__ void read_flag(const int *flag, int *res)
{
    *res = *(volatile const int *)flag + 1;
}

int main(void)
{
    const int n = 1 << 20, part = n / NSTREAMS;
    cudaStream_t st[NSTREAMS];
    cudaEvent_t begin[NSTREAMS], end[NSTREAMS], all0, all1, ev;
    int *h_in, *h_out, *d_in, *d_out;

    prog_name = "streams_events";
    CK(cudaMallocHost(&h_in, n * sizeof(int)));
    CK(cudaMallocHost(&h_out, n * sizeof(int)));
    CK(cudaMalloc(&d_in, n * sizeof(int)));
    CK(cudaMalloc(&d_out, n * sizeof(int)));
    for (int i = 0; i < n; i++) {
        h_in[i] = i;
        h_out[i] = -1;
    }
    CK(cudaEventCreate(&all0));
    CK(cudaEventCreate(&all1));
    for (int s = 0; s < NSTREAMS; s++) {
        CK(cudaStreamCreateWithFlags(&st[s], cudaStreamNonBlocking));
        CK(cudaEventCreate(&begin[s]));
        CK(cudaEventCreate(&end[s]));
    }
    // Warm up (module load, first launch) outside the timed part.
    work<<<1, 32>>>(d_in, d_out, 0, 0, 0);
    CK_LAUNCH();
    CK(cudaDeviceSynchronize());

    CK(cudaEventRecord(all0, st[0]));
    for (int s = 1; s < NSTREAMS; s++) {
        CK(cudaStreamWaitEvent(st[s], all0, 0));
    }
    for (int s = 0; s < NSTREAMS; s++) {
        size_t off = (size_t)s * part;
        CK(cudaMemcpyAsync(d_in + off, h_in + off, part * sizeof(int), cudaMemcpyHostToDevice, st[s]));
        CK(cudaEventRecord(begin[s], st[s]));
        work<<<64, 256, 0, st[s]>>>(d_in + off, d_out + off, part, s, SPIN_NS);
        CK_LAUNCH();
        CK(cudaEventRecord(end[s], st[s]));
        CK(cudaMemcpyAsync(h_out + off, d_out + off, part * sizeof(int), cudaMemcpyDeviceToHost, st[s]));
    }
    for (int s = 1; s < NSTREAMS; s++) {
        CK(cudaStreamWaitEvent(st[0], end[s], 0));
    }
    CK(cudaEventRecord(all1, st[0]));
    CK(cudaEventSynchronize(all1));
    for (int s = 0; s < NSTREAMS; s++) {
        CK(cudaStreamSynchronize(st[s]));
    }
    for (int i = 0; i < n; i++) {
        int want = i * 2 + i / part;
        if (h_out[i] != want) {
            fail("out[%d] = %d, want %d", i, h_out[i], want);
        }
    }
    float sum = 0, total = 0, k;
    for (int s = 0; s < NSTREAMS; s++) {
        CK(cudaEventElapsedTime(&k, begin[s], end[s]));
        if (!(k >= SPIN_NS / 1e6 * 0.95 && k < 10000)) {
            fail("stream %d: its 20 ms kernel measured %.3f ms", s, k);
        }
        sum += k;
    }
    CK(cudaEventElapsedTime(&total, all0, all1));
    if (!(total >= SPIN_NS / 1e6 * 0.95 && total < 40000)) {
        fail("the whole run measured %.3f ms", total);
    }
    printf("  kernels: %.2f ms together, %.2f ms summed over %d streams: %s\n", total, sum,
           NSTREAMS, total < 0.75 * sum ? "overlapped" : "serialised");

    // Cross-stream order: st[1] waits for an event recorded after a 10 ms
    // kernel on st[0]; its reader must see the flag that kernel wrote.
    int *d_flag, *d_res, res = 0;
    CK(cudaMalloc(&d_flag, sizeof(int)));
    CK(cudaMalloc(&d_res, sizeof(int)));
    CK(cudaMemset(d_flag, 0, sizeof(int)));
    CK(cudaDeviceSynchronize());
    CK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    set_after_spin<<<1, 1, 0, st[0]>>>(d_flag, 10000000ull);
    CK_LAUNCH();
    CK(cudaEventRecord(ev, st[0]));
    CK(cudaStreamWaitEvent(st[1], ev, 0));
    read_flag<<<1, 1, 0, st[1]>>>(d_flag, d_res);
    CK_LAUNCH();
    CK(cudaMemcpyAsync(&res, d_res, sizeof(int), cudaMemcpyDeviceToHost, st[1]));
    CK(cudaStreamSynchronize(st[1]));
    if (res != 42) {
        fail("the reader after cudaStreamWaitEvent saw %d, want 42", res);
    }
    if (cudaEventQuery(ev) != cudaSuccess) {
        fail("cudaEventQuery of a waited-for event is not cudaSuccess");
    }
    char d[96];
    snprintf(d, sizeof(d), "%d streams, %.1f ms for %.1f ms of kernels, %s", NSTREAMS, total, sum,
             total < 0.75 * sum ? "overlapped" : "not overlapped");
    for (int s = 0; s < NSTREAMS; s++) {
        CK(cudaStreamDestroy(st[s]));
        CK(cudaEventDestroy(begin[s]));
        CK(cudaEventDestroy(end[s]));
    }
    CK(cudaEventDestroy(ev));
    CK(cudaEventDestroy(all0));
    CK(cudaEventDestroy(all1));
    pass(d);
}
