// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// templates: one kernel template instantiated for int, float, double and a
// struct, with a functor parameter and a non-type block-size parameter (the
// mangled names the runtime looks up differ per instantiation), plus a
// variadic template kernel.
#include "check.h"

struct vec3 {
    float x, y, z;
};

struct scale_add {
    template <typename T> __device__ T operator()(T a, T b) const { return a * (T)3 + b; }
    __device__ vec3 operator()(vec3 a, vec3 b) const
    {
        return vec3{a.x * 3 + b.x, a.y * 3 + b.y, a.z * 3 + b.z};
    }
};

template <typename T, typename F, int BLOCK>
__global__ void transform(const T *a, const T *b, T *out, int n, F f)
{
    int i = blockIdx.x * BLOCK + threadIdx.x;
    if (i < n) {
        out[i] = f(a[i], b[i]);
    }
}

__device__ int sum_args() { return 0; }
template <typename T, typename... R> __device__ int sum_args(T first, R... rest)
{
    return (int)first + sum_args(rest...);
}
template <typename... A> __global__ void variadic(int *out, A... args)
{
    *out = sum_args(args...);
}

template <typename T> static bool eq(T a, T b) { return a == b; }
static bool eq(vec3 a, vec3 b) { return a.x == b.x && a.y == b.y && a.z == b.z; }
template <typename T> static T make(int i) { return (T)i; }
template <> vec3 make<vec3>(int i) { return vec3{(float)i, (float)-i, (float)i / 2}; }

template <typename T, int BLOCK> static void run(const char *what)
{
    const int n = 10007;
    T *a = new T[n], *b = new T[n], *o = new T[n], *da, *db, *dout;
    scale_add f;

    for (int i = 0; i < n; i++) {
        a[i] = make<T>(i % 1000);
        b[i] = make<T>(7);
    }
    CK(cudaMalloc(&da, n * sizeof(T)));
    CK(cudaMalloc(&db, n * sizeof(T)));
    CK(cudaMalloc(&dout, n * sizeof(T)));
    CK(cudaMemcpy(da, a, n * sizeof(T), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, b, n * sizeof(T), cudaMemcpyHostToDevice));
    transform<T, scale_add, BLOCK><<<(n + BLOCK - 1) / BLOCK, BLOCK>>>(da, db, dout, n, f);
    CK_LAUNCH();
    CK(cudaMemcpy(o, dout, n * sizeof(T), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++) {
        T want;
        if constexpr (sizeof(T) == sizeof(vec3)) {
            want = vec3{a[i].x * 3 + b[i].x, a[i].y * 3 + b[i].y, a[i].z * 3 + b[i].z};
        } else {
            want = a[i] * (T)3 + b[i];
        }
        if (!eq(o[i], want)) {
            fail("transform<%s, %d>: element %d wrong", what, BLOCK, i);
        }
    }
    CK(cudaFree(da));
    CK(cudaFree(db));
    CK(cudaFree(dout));
    delete[] a;
    delete[] b;
    delete[] o;
}

int main(void)
{
    int *d, h = 0;

    prog_name = "templates";
    run<int, 128>("int");
    run<float, 256>("float");
    run<double, 512>("double");
    run<vec3, 64>("vec3");
    CK(cudaMalloc(&d, sizeof(int)));
    variadic<<<1, 1>>>(d, (char)1, (short)20, 300, 4000ll, 50000.0f);
    CK_LAUNCH();
    CK(cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost));
    if (h != 54321) {
        fail("variadic<char, short, int, long long, float>: %d, want 54321", h);
    }
    pass("int/float/double/struct instantiations, functor, variadic mixed-size parameters");
}
