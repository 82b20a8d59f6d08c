// SPDX-License-Identifier: GPL-2.0-or-later OR MIT
// device_printf: kernels call printf (integers, floats, strings, pointers,
// 2 blocks x 4 threads); the program must complete, with the kernel's result
// right. Where the text goes is reported, not required: natively the driver
// writes it to this process's stdout at the next synchronising call; through
// vgpu it is printed by the host's GPU worker (the mediator's log), since the
// driver that formats it runs there.
#include <string.h>
#include <unistd.h>

#include "check.h"

__global__ void hello(int *out, float f)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    printf("vgpu-device-printf block %d thread %d: int %d float %.2f str %s hex %#x\n",
           blockIdx.x, threadIdx.x, t * 10, f + t, "ok", 0xbeef + t);
    out[t] = t * 10;
}

int main(void)
{
    int *d, h[8];
    char path[] = "/tmp/device_printf.XXXXXX";
    int fd, saved, lines = 0;

    prog_name = "device_printf";
    CK(cudaMalloc(&d, sizeof(h)));
    CK(cudaDeviceSynchronize());

    // Capture fd 1 in a file for the kernel's output (the driver writes it
    // there), then restore it.
    fflush(stdout);
    fd = mkstemp(path);
    saved = dup(1);
    if (fd < 0 || saved < 0 || dup2(fd, 1) < 0) {
        fail("cannot redirect stdout to %s", path);
    }
    hello<<<2, 4>>>(d, 1.5f);
    cudaError_t e = cudaGetLastError();
    cudaError_t s = cudaDeviceSynchronize();
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    CK(e);
    CK(s);
    CK(cudaMemcpy(h, d, sizeof(h), cudaMemcpyDeviceToHost));
    for (int i = 0; i < 8; i++) {
        if (h[i] != i * 10) {
            fail("out[%d] = %d, want %d", i, h[i], i * 10);
        }
    }
    FILE *f = fdopen(fd, "r");
    char line[256];
    rewind(f);
    while (f && fgets(line, sizeof(line), f)) {
        if (strstr(line, "vgpu-device-printf block")) {
            lines++;
            if (lines <= 2) {
                printf("  device: %s", line);
            }
        }
    }
    if (f) {
        fclose(f);
    }
    unlink(path);
    if (lines != 0 && lines != 8) {
        fail("%d of 8 device printf lines arrived in this process", lines);
    }
    pass(lines == 8 ? "8 device printf lines in this process's stdout"
                    : "completed; device printf output not in this process "
                      "(through vgpu it goes to the host worker's stdout)");
}
