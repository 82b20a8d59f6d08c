/* SPDX-License-Identifier: MIT */
/* What the fake host (fake_remote.c) shows the tests. */
#ifndef VGPU_CUDA_FAKE_REMOTE_H
#define VGPU_CUDA_FAKE_REMOTE_H

#include <stdint.h>

/* The packed parameters of the last launch (up to max bytes); returns their
 * length. */
uint32_t fake_last_launch(void *params, uint32_t max);
uint32_t fake_launches(void);
/* The host stream of the last launch. */
uint32_t fake_last_stream(void);
/* The CU_LAUNCH_ATTRS the last launch ran with (all 0: none); returns 1
 * when some are pending for the next launch (none should be). */
int fake_last_attrs(uint32_t cluster[3], uint32_t *flags, uint32_t *policy);
/* CU_TENSOR_MAP requests the fake encoded. */
uint32_t fake_tensor_maps(void);

#endif
