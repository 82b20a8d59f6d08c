// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// launch-bench: an empty kernel's asynchronous launch rate (COUNT launches
// back to back, then one synchronize) and the latency of launch +
// cudaStreamSynchronize (SYNCS times, p50/p99), the same binary natively
// and through vgpu's libcuda.so.1.
//
// usage: launch-bench [COUNT [SYNCS]]     (default 100000 5000)
// prints: launch async: 100000 launches in 212.3 ms: 471031 launches/s
//         launch+sync: p50 7.1 us, p99 9.8 us, mean 7.4 us (5000)
#include <algorithm>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <vector>

#define CK(call)                                                                         \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) {                                                         \
            printf("launch-bench: %s: %s\n", #call, cudaGetErrorName(e_));               \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

__global__ void empty(void) {}

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 100000;
    int syncs = argc > 2 ? atoi(argv[2]) : 5000;
    cudaStream_t s;

    if (count < 1 || syncs < 1) {
        printf("usage: launch-bench [COUNT >= 1 [SYNCS >= 1]]\n");
        return 2;
    }
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    for (int i = 0; i < 100; i++) {   // warm-up: module load, first launches
        empty<<<1, 1, 0, s>>>();
    }
    CK(cudaStreamSynchronize(s));

    double t0 = now_us();
    for (long i = 0; i < count; i++) {
        empty<<<1, 1, 0, s>>>();
    }
    double t_sub = now_us();
    CK(cudaStreamSynchronize(s));
    double t1 = now_us();
    CK(cudaGetLastError());
    printf("launch async: %ld launches in %.1f ms: %.0f launches/s (submission alone %.0f/s)\n",
           count, (t1 - t0) / 1e3, count / ((t1 - t0) / 1e6), count / ((t_sub - t0) / 1e6));

    std::vector<double> lat(syncs);
    for (int i = 0; i < syncs; i++) {
        double a = now_us();
        empty<<<1, 1, 0, s>>>();
        CK(cudaStreamSynchronize(s));
        lat[i] = now_us() - a;
    }
    double sum = 0;
    for (double v : lat) {
        sum += v;
    }
    std::sort(lat.begin(), lat.end());
    printf("launch+sync: p50 %.1f us, p99 %.1f us, mean %.1f us (%d)\n", lat[syncs / 2],
           lat[std::min(syncs - 1, (int)(syncs * 0.99))], sum / syncs, syncs);
    CK(cudaStreamDestroy(s));
    return 0;
}
