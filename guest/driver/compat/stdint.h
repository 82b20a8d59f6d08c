/* SPDX-License-Identifier: GPL-2.0 */
/*
 * include/vgpu/abi.h is shared with user space and includes <stdint.h>; in
 * the kernel the same fixed-width names come from <linux/types.h>.
 */
#ifndef VGPU_COMPAT_STDINT_H
#define VGPU_COMPAT_STDINT_H
#include <linux/types.h>
#endif
