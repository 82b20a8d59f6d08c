// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// The kernels of driver_api.cu, built by meson into driver_api_kernels.fatbin
// (sm_90 SASS + compute_90 PTX) next to the program, which loads it with
// cuModuleLoadData.
__device__ int g_scale = 3;

extern "C" __global__ void saxpy_scaled(int n, float a, const float *x, float *y)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        y[i] = a * x[i] * g_scale + y[i];
    }
}

// Mixed-size parameters: the packed layout has padding.
extern "C" __global__ void mixed(char c, double d, short s, long long l, float f, int *out)
{
    out[0] = c;
    out[1] = (int)d;
    out[2] = s;
    out[3] = (int)(l >> 32);
    out[4] = (int)l;
    out[5] = (int)f;
}
