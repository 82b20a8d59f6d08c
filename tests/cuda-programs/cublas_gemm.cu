// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// cublas_gemm: cublasSgemm and cublasDgemm (512 x 512 x 512, and
// 384 x 256 x 320 with A transposed, alpha/beta != 1/0) from the toolkit's
// libcublas.so.13, compared with a double-precision CPU reference.
#include <cublas_v2.h>

#include "check.h"

#define CB(call)                                                                 \
    do {                                                                         \
        cublasStatus_t cb_s_ = (call);                                           \
        if (cb_s_ != CUBLAS_STATUS_SUCCESS) {                                    \
            fail("%s:%d: %s: %s (%d)", __FILE__, __LINE__, #call,                \
                 cublasGetStatusName(cb_s_), (int)cb_s_);                        \
        }                                                                        \
    } while (0)

// C (m x n) = alpha * op(A) * B + beta * C, column-major; op(A) is m x k.
template <typename T>
static double gemm_check(cublasHandle_t h, bool transa, int m, int n, int k, T alpha, T beta,
                         const char *what)
{
    int lda = transa ? k : m;
    size_t sa = (size_t)lda * (transa ? m : k), sb = (size_t)k * n, sc = (size_t)m * n;
    T *A = new T[sa], *B = new T[sb], *C = new T[sc], *R = new T[sc], *dA, *dB, *dC;
    unsigned seed = 17;
    double maxerr = 0;

    for (size_t i = 0; i < sa; i++) {
        A[i] = lcg_float(&seed);
    }
    for (size_t i = 0; i < sb; i++) {
        B[i] = lcg_float(&seed);
    }
    for (size_t i = 0; i < sc; i++) {
        C[i] = lcg_float(&seed);
    }
    CK(cudaMalloc(&dA, sa * sizeof(T)));
    CK(cudaMalloc(&dB, sb * sizeof(T)));
    CK(cudaMalloc(&dC, sc * sizeof(T)));
    CB(cublasSetMatrix(lda, transa ? m : k, sizeof(T), A, lda, dA, lda));
    CB(cublasSetMatrix(k, n, sizeof(T), B, k, dB, k));
    CB(cublasSetMatrix(m, n, sizeof(T), C, m, dC, m));
    cublasOperation_t op = transa ? CUBLAS_OP_T : CUBLAS_OP_N;
    if constexpr (sizeof(T) == 4) {
        CB(cublasSgemm(h, op, CUBLAS_OP_N, m, n, k, (const float *)&alpha, (const float *)dA, lda,
                       (const float *)dB, k, (const float *)&beta, (float *)dC, m));
    } else {
        CB(cublasDgemm(h, op, CUBLAS_OP_N, m, n, k, (const double *)&alpha, (const double *)dA,
                       lda, (const double *)dB, k, (const double *)&beta, (double *)dC, m));
    }
    CK(cudaDeviceSynchronize());
    CB(cublasGetMatrix(m, n, sizeof(T), dC, m, R, m));
    // Single precision: tensor-core paths (TF32 is off by default in cuBLAS,
    // but the accumulation order differs) -> a tolerance by k.
    double tol = sizeof(T) == 4 ? 1e-4 * k : 1e-12 * k;
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < m; i++) {
            double ref = 0;
            for (int l = 0; l < k; l++) {
                double a = transa ? A[(size_t)i * lda + l] : A[(size_t)l * lda + i];
                ref += a * B[(size_t)j * k + l];
            }
            ref = (double)alpha * ref + (double)beta * C[(size_t)j * m + i];
            double err = fabs(R[(size_t)j * m + i] - ref);
            if (!(err <= tol * (1 + fabs(ref)))) {
                fail("%s: C(%d,%d) = %.9g, want %.9g", what, i, j, (double)R[(size_t)j * m + i],
                     ref);
            }
            if (err > maxerr) {
                maxerr = err;
            }
        }
    }
    printf("  %s %dx%dx%d%s: max abs error %.3g\n", what, m, n, k, transa ? " (A^T)" : "",
           maxerr);
    CK(cudaFree(dA));
    CK(cudaFree(dB));
    CK(cudaFree(dC));
    delete[] A;
    delete[] B;
    delete[] C;
    delete[] R;
    return maxerr;
}

int main(void)
{
    cublasHandle_t h;
    cudaStream_t s;
    int ver = 0;

    prog_name = "cublas_gemm";
    print_device();
    CB(cublasCreate(&h));
    CB(cublasGetVersion(h, &ver));
    CK(cudaStreamCreate(&s));
    CB(cublasSetStream(h, s));
    printf("  cuBLAS %d\n", ver);
    gemm_check<float>(h, false, 512, 512, 512, 1.0f, 0.0f, "sgemm");
    gemm_check<double>(h, false, 512, 512, 512, 1.0, 0.0, "dgemm");
    gemm_check<float>(h, true, 384, 256, 320, 0.75f, -0.5f, "sgemm");
    gemm_check<double>(h, true, 384, 256, 320, 0.75, -0.5, "dgemm");
    CB(cublasDestroy(h));
    CK(cudaStreamDestroy(s));
    pass("sgemm and dgemm 512^3 and 384x256x320 (A^T, alpha 0.75, beta -0.5)");
}
