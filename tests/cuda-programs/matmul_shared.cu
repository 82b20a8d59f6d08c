// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// matmul_shared: C = A x B (float, 512 x 384 by 384 x 640, sizes not
// multiples of the tile) with 16 x 16 tiles in shared memory, checked
// against a double-precision CPU reference.
#include "check.h"

#define TILE 16

__global__ void matmul(const float *A, const float *B, float *C, int M, int K, int N)
{
    __shared__ float As[TILE][TILE];
    __shared__ float Bs[TILE][TILE + 1];   // padded: no bank conflicts on the column reads
    int row = blockIdx.y * TILE + threadIdx.y;
    int col = blockIdx.x * TILE + threadIdx.x;
    float acc = 0.0f;

    for (int t = 0; t < (K + TILE - 1) / TILE; t++) {
        int ka = t * TILE + threadIdx.x, kb = t * TILE + threadIdx.y;
        As[threadIdx.y][threadIdx.x] = row < M && ka < K ? A[row * K + ka] : 0.0f;
        Bs[threadIdx.y][threadIdx.x] = kb < K && col < N ? B[kb * N + col] : 0.0f;
        __syncthreads();
        for (int k = 0; k < TILE; k++) {
            acc += As[threadIdx.y][k] * Bs[k][threadIdx.x];
        }
        __syncthreads();
    }
    if (row < M && col < N) {
        C[row * N + col] = acc;
    }
}

int main(void)
{
    const int M = 509, K = 383, N = 641;
    float *A, *B, *C, *dA, *dB, *dC;
    unsigned seed = 7;
    double maxerr = 0;

    prog_name = "matmul_shared";
    A = (float *)malloc(sizeof(float) * M * K);
    B = (float *)malloc(sizeof(float) * K * N);
    C = (float *)malloc(sizeof(float) * M * N);
    if (!A || !B || !C) {
        fail("out of host memory");
    }
    for (int i = 0; i < M * K; i++) {
        A[i] = lcg_float(&seed);
    }
    for (int i = 0; i < K * N; i++) {
        B[i] = lcg_float(&seed);
    }
    CK(cudaMalloc(&dA, sizeof(float) * M * K));
    CK(cudaMalloc(&dB, sizeof(float) * K * N));
    CK(cudaMalloc(&dC, sizeof(float) * M * N));
    CK(cudaMemcpy(dA, A, sizeof(float) * M * K, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dB, B, sizeof(float) * K * N, cudaMemcpyHostToDevice));
    CK(cudaMemset(dC, 0xff, sizeof(float) * M * N));   // NaNs: every element must be written
    dim3 block(TILE, TILE), grid((N + TILE - 1) / TILE, (M + TILE - 1) / TILE);
    matmul<<<grid, block>>>(dA, dB, dC, M, K, N);
    CK_LAUNCH();
    CK(cudaMemcpy(C, dC, sizeof(float) * M * N, cudaMemcpyDeviceToHost));
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double ref = 0;
            for (int k = 0; k < K; k++) {
                ref += (double)A[i * K + k] * B[k * N + j];
            }
            double err = fabs(C[i * N + j] - ref);
            if (!(err <= 1e-3 + 1e-4 * fabs(ref))) {
                fail("C[%d][%d] = %g, want %g", i, j, C[i * N + j], ref);
            }
            if (err > maxerr) {
                maxerr = err;
            }
        }
    }
    char d[64];
    snprintf(d, sizeof(d), "%dx%dx%d, max abs error %.2g", M, K, N, maxerr);
    pass(d);
}
