/* SPDX-License-Identifier: MIT */
/* module.c's parts that exec.c and the unit tests use. */
#ifndef VGPU_CUDA_MODULE_H
#define VGPU_CUDA_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include <cuda.h>

/* Bytes of a fatbin wrapper's fatbin, a fatbin, a 64-bit cubin (ELF) or PTX
 * text; 0 when it is none of them. */
size_t cu_image_size(const void *image);

/* The function (or kernel cast to one) behind a handle, or NULL. */
struct CUfunc_st *cu_func(CUfunction f);

/* exec.c: packs a launch's parameters into buf (f->info.param_bytes). */
CUresult cu_pack_params(const struct CUfunc_st *f, void **params, void **extra, uint8_t *buf);

#endif /* VGPU_CUDA_MODULE_H */
