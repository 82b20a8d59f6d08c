/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/* vgpu-client internals shared by its command files. */
#ifndef VGPU_CLIENT_H
#define VGPU_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "vgpu/abi.h"
#include "vgpu/libvgpu.h"

enum {
    EXIT_OK       = 0,
    EXIT_FAILED   = 1,  /* a check failed: wrong result, error status */
    EXIT_USAGE    = 2,
    EXIT_NODEV    = 3,
    EXIT_VERSION  = 4,
    EXIT_LINK     = 5,  /* mediator not connected / not running */
    EXIT_TIMEOUT  = 6,
    EXIT_ERROR    = 7,  /* any other error */
    EXIT_INTERRUPTED = 8, /* a request completed "interrupted": the mediator stopped
                           * while it ran in place; outputs may be partly written */
};

struct ctx {
    struct vgpu_open_opts opts;
    int      timeout_ms;
    struct vgpu_dev *dev;
    struct vgpu_dev_info info;
    uint32_t next_tag;
};

/* Input patterns, exact in float32: multiples of 1/4 below 2^10. */
static inline float pat_a(uint64_t i) { return (float)(i % 1021) * 0.25f; }
static inline float pat_b(uint64_t i) { return (float)((i * 7 + 3) % 509) * 0.5f - 64.0f; }

struct vadd_buf {
    uint64_t a, b, out, n;
};

double now_us(void);
int exit_code_for(int err);
/* Prints why a library call failed; returns the exit code. */
int report_err(struct ctx *c, const char *what, int err);
const char *backend_name(uint32_t backend);
/* Zeroes *s, sets opcode and a fresh tag/user_data. */
void sqe_init(struct ctx *c, struct vgpu_sqe *s, uint16_t op);
/* Restarts the allocator and fills a, b (patterns) and out (NaN) for n. */
int vadd_prepare(struct ctx *c, uint64_t n, struct vadd_buf *v);
void vadd_sqe(struct ctx *c, const struct vadd_buf *v, struct vgpu_sqe *s);
/* Number of wrong output elements. */
uint64_t vadd_check(struct ctx *c, const struct vadd_buf *v, bool quiet);
/* One checked vector_add; an exit code. */
int run_vector_add(struct ctx *c, uint64_t n, bool verbose);

int cmd_hostile(struct ctx *c, int argc, char **argv);
/* client/cu.c: the CUDA driver operations (ABI 1.2). */
int cmd_cu_info(struct ctx *c, int argc, char **argv);
int cmd_run_ptx(struct ctx *c, int argc, char **argv);

#endif /* VGPU_CLIENT_H */
