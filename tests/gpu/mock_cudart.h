/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/* The CPU stand-in for the CUDA runtime (mock_cudart.c): its own checks. */
#ifndef VGPU_TESTS_MOCK_CUDART_H
#define VGPU_TESTS_MOCK_CUDART_H

/* Uses of stale or unknown handles, pointers, registrations so far; *last
 * (optional) describes the latest. */
unsigned vgpu_mock_misuses(const char **last);
/* Misuses of the mock driver API (mock_cudadrv.c): objects used in another
 * context, device ranges outside every allocation. */
unsigned vgpu_mock_drv_misuses(void);
/* cudaDeviceReset calls so far. */
unsigned vgpu_mock_resets(void);

#endif /* VGPU_TESTS_MOCK_CUDART_H */
