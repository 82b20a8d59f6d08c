// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// driver_api: the CUDA driver API alone (no runtime call): cuInit, a context,
// cuModuleLoadData of driver_api_kernels.fatbin (next to this program, or
// $CUDA_PROGRAMS_FATBIN), a __device__ global through cuModuleGetGlobal,
// cuLaunchKernel with kernelParams and with a CU_LAUNCH_PARAM_BUFFER_POINTER
// buffer, a stream, events, async copies from cuMemAllocHost memory.
#include <cuda.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *prog_name = "driver_api";

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
    va_list ap;

    printf("FAIL %s: ", prog_name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    exit(1);
}

#define CU(call)                                                                          \
    do {                                                                                  \
        CUresult cu_r_ = (call);                                                          \
        if (cu_r_ != CUDA_SUCCESS) {                                                      \
            const char *n_ = "?";                                                         \
            cuGetErrorName(cu_r_, &n_);                                                   \
            fail("%s:%d: %s: %s (%d)", __FILE__, __LINE__, #call, n_, (int)cu_r_);        \
        }                                                                                 \
    } while (0)

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    void *buf;
    long n;

    if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) {
        fail("cannot read %s", path);
    }
    buf = malloc(n);
    if (!buf || fread(buf, 1, n, f) != (size_t)n) {
        fail("cannot read %s", path);
    }
    fclose(f);
    *len = n;
    return buf;
}

int main(void)
{
    char exe[4096], path[4200];
    const char *env = getenv("CUDA_PROGRAMS_FATBIN");
    size_t len;
    void *image;
    CUdevice dev;
    CUcontext ctx;
    CUmodule mod;
    CUfunction saxpy, mixed;
    CUdeviceptr dx, dy, dout, g;
    CUstream st;
    CUevent e0, e1;
    char name[128];
    int major = 0, minor = 0, ver = 0;

    if (env) {
        snprintf(path, sizeof(path), "%s", env);
    } else {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0) {
            fail("readlink /proc/self/exe");
        }
        exe[n] = 0;
        snprintf(path, sizeof(path), "%s/driver_api_kernels.fatbin", dirname(exe));
    }
    image = read_file(path, &len);

    CU(cuInit(0));
    CU(cuDriverGetVersion(&ver));
    CU(cuDeviceGet(&dev, 0));
    CU(cuDeviceGetName(name, sizeof(name), dev));
    CU(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
    CU(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev));
    printf("  device %s, cc %d.%d, driver %d; image %s (%zu bytes)\n", name, major, minor, ver,
           path, len);
    CU(cuDevicePrimaryCtxRetain(&ctx, dev));
    CU(cuCtxSetCurrent(ctx));
    CU(cuModuleLoadData(&mod, image));
    CU(cuModuleGetFunction(&saxpy, mod, "saxpy_scaled"));
    CU(cuModuleGetFunction(&mixed, mod, "mixed"));
    size_t gsize = 0;
    CU(cuModuleGetGlobal(&g, &gsize, mod, "g_scale"));
    if (gsize != sizeof(int)) {
        fail("g_scale has %zu bytes, want %zu", gsize, sizeof(int));
    }
    int scale = 0;
    CU(cuMemcpyDtoH(&scale, g, sizeof(int)));
    if (scale != 3) {
        fail("g_scale reads %d, want 3", scale);
    }
    scale = 5;
    CU(cuMemcpyHtoD(g, &scale, sizeof(int)));

    const int n = 100003;
    float *hx, *hy;
    CU(cuMemAllocHost((void **)&hx, n * sizeof(float)));
    CU(cuMemAllocHost((void **)&hy, n * sizeof(float)));
    for (int i = 0; i < n; i++) {
        hx[i] = (float)(i % 1000);
        hy[i] = 1.0f;
    }
    CU(cuMemAlloc(&dx, n * sizeof(float)));
    CU(cuMemAlloc(&dy, n * sizeof(float)));
    CU(cuStreamCreate(&st, CU_STREAM_NON_BLOCKING));
    CU(cuEventCreate(&e0, CU_EVENT_DEFAULT));
    CU(cuEventCreate(&e1, CU_EVENT_DEFAULT));
    CU(cuMemcpyHtoDAsync(dx, hx, n * sizeof(float), st));
    CU(cuMemcpyHtoDAsync(dy, hy, n * sizeof(float), st));
    float a = 0.5f;
    int nn = n;
    void *params[] = {&nn, &a, &dx, &dy};
    CU(cuEventRecord(e0, st));
    CU(cuLaunchKernel(saxpy, (n + 255) / 256, 1, 1, 256, 1, 1, 0, st, params, NULL));
    CU(cuEventRecord(e1, st));
    CU(cuMemcpyDtoHAsync(hy, dy, n * sizeof(float), st));
    CU(cuStreamSynchronize(st));
    for (int i = 0; i < n; i++) {
        float want = 0.5f * (float)(i % 1000) * 5 + 1.0f;
        if (hy[i] != want) {
            fail("y[%d] = %g, want %g", i, hy[i], want);
        }
    }
    float ms = -1;
    CU(cuEventElapsedTime(&ms, e0, e1));
    if (!(ms >= 0 && ms < 10000)) {
        fail("event elapsed time %g ms", ms);
    }

    // The same kind of launch with the parameters in one buffer, laid out as
    // the compiler does (natural alignment).
    struct {
        char c;
        double d;
        short s;
        long long l;
        float f;
        CUdeviceptr out;
    } buf = {-7, 12345.0, -300, (5ll << 32) | 77, 99.0f, 0};
    CU(cuMemAlloc(&dout, 6 * sizeof(int)));
    buf.out = dout;
    size_t bsize = sizeof(buf);
    void *extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, &buf, CU_LAUNCH_PARAM_BUFFER_SIZE, &bsize,
                     CU_LAUNCH_PARAM_END};
    CU(cuLaunchKernel(mixed, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, extra));
    CU(cuCtxSynchronize());
    int out[6];
    CU(cuMemcpyDtoH(out, dout, sizeof(out)));
    if (out[0] != -7 || out[1] != 12345 || out[2] != -300 || out[3] != 5 || out[4] != 77 ||
        out[5] != 99) {
        fail("mixed: %d %d %d %d %d %d, want -7 12345 -300 5 77 99", out[0], out[1], out[2],
             out[3], out[4], out[5]);
    }
    // And through kernelParams, each pointing at its own variable.
    char c = 1;
    double d = 2.0;
    short s = 3;
    long long l = (4ll << 32) | 5;
    float f = 6.0f;
    void *p2[] = {&c, &d, &s, &l, &f, &dout};
    CU(cuLaunchKernel(mixed, 1, 1, 1, 1, 1, 1, 0, st, p2, NULL));
    CU(cuStreamSynchronize(st));
    CU(cuMemcpyDtoH(out, dout, sizeof(out)));
    if (out[0] != 1 || out[1] != 2 || out[2] != 3 || out[3] != 4 || out[4] != 5 || out[5] != 6) {
        fail("mixed (kernelParams): %d %d %d %d %d %d, want 1 2 3 4 5 6", out[0], out[1],
             out[2], out[3], out[4], out[5]);
    }
    CU(cuEventDestroy(e0));
    CU(cuEventDestroy(e1));
    CU(cuStreamDestroy(st));
    CU(cuMemFree(dx));
    CU(cuMemFree(dy));
    CU(cuMemFree(dout));
    CU(cuMemFreeHost(hx));
    CU(cuMemFreeHost(hy));
    CU(cuModuleUnload(mod));
    CU(cuDevicePrimaryCtxRelease(dev));
    printf("PASS %s (fatbin by cuModuleLoadData, global, params and buffer launches)\n", prog_name);
    return 0;
}
