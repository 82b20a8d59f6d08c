// SPDX-License-Identifier: MIT
// NVIDIA's runtime (static or shared) on libcuda.so.1 and the fake host:
// start-up through the export tables, then a vector add the fake computes,
// launched as usual, in thread-block clusters (cudaLaunchKernelEx) and
// cooperatively; a device limit set and read back.
#include <cstdio>
#include <cuda_runtime.h>

__global__ void vadd(const float *a, const float *b, float *c, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}

int main()
{
    const int n = 1000;
    float a[n], b[n], c[n];
    float *da, *db, *dc;
    int count = -1;

    printf("reached main\n");
    cudaError_t e = cudaGetDeviceCount(&count);
    printf("cudaGetDeviceCount: %d (%s), count %d\n", (int)e, cudaGetErrorName(e), count);
    if (e != cudaSuccess) {
        // without a device: a clean "no device", never a start-up failure
        return e == cudaErrorNoDevice ? 2 : 1;
    }
    for (int i = 0; i < n; i++) { a[i] = i; b[i] = 2 * i; }
    if ((e = cudaMalloc(&da, sizeof a)) || (e = cudaMalloc(&db, sizeof b)) ||
        (e = cudaMalloc(&dc, sizeof c))) {
        printf("cudaMalloc: %d (%s)\n", (int)e, cudaGetErrorName(e));
        return 1;
    }
    cudaMemcpy(da, a, sizeof a, cudaMemcpyHostToDevice);
    cudaMemcpy(db, b, sizeof b, cudaMemcpyHostToDevice);
    vadd<<<(n + 255) / 256, 256>>>(da, db, dc, n);
    e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaMemcpy(c, dc, sizeof c, cudaMemcpyDeviceToHost);
    printf("launch and copy back: %d (%s)\n", (int)e, cudaGetErrorName(e));
    if (e != cudaSuccess) return 1;
    for (int i = 0; i < n; i++) {
        if (c[i] != 3.0f * i) { printf("FAIL at %d: %f\n", i, c[i]); return 1; }
    }

    int clusters = 0;
    cudaDeviceGetAttribute(&clusters, cudaDevAttrClusterLaunch, 0);
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = 2;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(4);
    cfg.blockDim = dim3(256);
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    cudaMemset(dc, 0, sizeof c);
    e = cudaLaunchKernelEx(&cfg, vadd, (const float *)da, (const float *)db, dc, n);
    if (e == cudaSuccess) e = cudaMemcpy(c, dc, sizeof c, cudaMemcpyDeviceToHost);
    printf("clusters (%d): %d (%s)\n", clusters, (int)e, cudaGetErrorName(e));
    if (e != cudaSuccess || c[n - 1] != 3.0f * (n - 1)) return 1;

    int nn = n;
    void *args[] = { &da, &db, &dc, &nn };
    cudaMemset(dc, 0, sizeof c);
    e = cudaLaunchCooperativeKernel((const void *)vadd, dim3(4), dim3(256), args, 0, 0);
    if (e == cudaSuccess) e = cudaMemcpy(c, dc, sizeof c, cudaMemcpyDeviceToHost);
    printf("cooperative: %d (%s)\n", (int)e, cudaGetErrorName(e));
    if (e != cudaSuccess || c[n - 1] != 3.0f * (n - 1)) return 1;

    size_t heap = 0;
    e = cudaDeviceSetLimit(cudaLimitMallocHeapSize, 32u << 20);
    if (e == cudaSuccess) e = cudaDeviceGetLimit(&heap, cudaLimitMallocHeapSize);
    printf("malloc heap limit: %zu: %d (%s)\n", heap, (int)e, cudaGetErrorName(e));
    if (e != cudaSuccess || heap != 32u << 20) return 1;
    cudaFree(da); cudaFree(db); cudaFree(dc);
    printf("PASS\n");
    return 0;
}
