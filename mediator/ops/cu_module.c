/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Modules and their symbols (ABI 1.2):
 *   CU_MODULE_LOAD          a fatbin, cubin or PTX image of image_len bytes
 *                           (1 .. VGPU_CU_MAX_IMAGE) at image_off, or (both
 *                           0) the image of content hash `hash` the host
 *                           keeps (nonzero). Result: the module handle.
 *   CU_MODULE_UNLOAD        handle: a module, nonzero
 *   CU_MODULE_GET_FUNCTION  result: the function handle; writes struct
 *                           vgpu_cu_func_info and its params at out_off
 *                           (out_len >= the header; 8-aligned)
 *   CU_MODULE_GET_GLOBAL    writes struct vgpu_cu_global at out_off
 * A symbol name is name_len bytes (2 .. VGPU_CU_MAX_NAME: at least one
 * character and its NUL) at name_off, and must not overlap the output.
 * That the name is NUL-terminated within name_len, and what the image
 * contains, are checked by the worker on its own copy: validators never read
 * shared memory.
 */
#include "mediator/ops/cu-priv.h"

static int module_load_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    const struct vgpu_args_cu_module_load *a = &sqe->args.cu_module_load;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->image_len == 0 && a->image_off == 0) {
        /* By hash: the image is the host's copy. */
        return a->hash[0] || a->hash[1] ? VGPU_S_OK : VGPU_S_BAD_ARGS;
    }
    s = vgpu_check_count(a->image_len, VGPU_CU_MAX_IMAGE);
    if (s != VGPU_S_OK) {
        return s;
    }
    return vgpu_check_range(a->image_off, a->image_len, 1, shm_size);
}

static void module_load_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    *in = vgpu_clamp_u64(sqe->args.cu_module_load.image_len, VGPU_CU_MAX_IMAGE);
    *out = 0;
}

static uint64_t module_load_cost_ns(const struct vgpu_sqe *sqe)
{
    uint64_t in, out;

    module_load_bytes(sqe, &in, &out);
    return vgpu_cost_model_ns(in, 0) + VGPU_CU_COST_MODULE_NS;
}

static unsigned module_load_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    if (sqe->args.cu_module_load.image_len == 0) {
        return 0;   /* by hash */
    }
    out[0] = (struct vgpu_range) { sqe->args.cu_module_load.image_off,
                                   sqe->args.cu_module_load.image_len };
    return 1;
}

const struct vgpu_op vgpu_op_cu_module_load = {
    .opcode     = VGPU_OP_CU_MODULE_LOAD,
    .name       = "cu_module_load",
    .validate   = module_load_validate,
    .cost_ns    = module_load_cost_ns,
    .bytes      = module_load_bytes,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .ranges     = module_load_ranges,
};

static uint64_t module_unload_cost_ns(const struct vgpu_sqe *sqe)
{
    (void)sqe;
    return VGPU_COST_BASE_NS + VGPU_CU_COST_ALLOC_NS;
}

const struct vgpu_op vgpu_op_cu_module_unload = {
    .opcode     = VGPU_OP_CU_MODULE_UNLOAD,
    .name       = "cu_module_unload",
    .validate   = vgpu_cu_validate_object,
    .cost_ns    = module_unload_cost_ns,
    .bytes      = vgpu_cu_bytes_none,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
};

/* GET_FUNCTION and GET_GLOBAL: min_out is the struct each writes. */
static int symbol_validate(const struct vgpu_sqe *sqe, uint64_t shm_size, uint32_t min_out)
{
    const struct vgpu_args_cu_symbol *a = &sqe->args.cu_symbol;
    int s = vgpu_cu_check_header(sqe, sizeof(*a));

    if (s != VGPU_S_OK) {
        return s;
    }
    if (a->pad != 0 || a->name_len < 2 || a->out_len < min_out) {
        return VGPU_S_BAD_ARGS;
    }
    if ((s = vgpu_cu_check_handle(a->module)) != VGPU_S_OK) {
        return s;
    }
    if (a->name_len > VGPU_CU_MAX_NAME) {
        return VGPU_S_TOO_LARGE;
    }
    if ((s = vgpu_check_range(a->name_off, a->name_len, 1, shm_size)) != VGPU_S_OK ||
        (s = vgpu_check_range(a->out_off, a->out_len, 8, shm_size)) != VGPU_S_OK) {
        return s;
    }
    /* The output must not rewrite the name the worker reads. */
    return vgpu_ranges_overlap(a->name_off, a->name_len, a->out_off, a->out_len)
           ? VGPU_S_OVERLAP : VGPU_S_OK;
}

static int get_function_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    return symbol_validate(sqe, shm_size, sizeof(struct vgpu_cu_func_info));
}

static int get_global_validate(const struct vgpu_sqe *sqe, uint64_t shm_size)
{
    return symbol_validate(sqe, shm_size, sizeof(struct vgpu_cu_global));
}

static void symbol_bytes(const struct vgpu_sqe *sqe, uint64_t *in, uint64_t *out)
{
    *in = vgpu_clamp_u64(sqe->args.cu_symbol.name_len, VGPU_CU_MAX_NAME);
    *out = sqe->args.cu_symbol.out_len;
}

static uint64_t symbol_cost_ns(const struct vgpu_sqe *sqe)
{
    uint64_t in, out;

    symbol_bytes(sqe, &in, &out);
    return vgpu_cost_model_ns(in + out, 0);
}

static unsigned symbol_ranges(const struct vgpu_sqe *sqe, struct vgpu_range out[])
{
    const struct vgpu_args_cu_symbol *a = &sqe->args.cu_symbol;

    out[0] = (struct vgpu_range) { a->name_off, a->name_len };
    out[1] = (struct vgpu_range) { a->out_off, a->out_len };
    return 2;
}

const struct vgpu_op vgpu_op_cu_module_get_function = {
    .opcode     = VGPU_OP_CU_MODULE_GET_FUNCTION,
    .name       = "cu_module_get_function",
    .validate   = get_function_validate,
    .cost_ns    = symbol_cost_ns,
    .bytes      = symbol_bytes,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .ranges     = symbol_ranges,
};

const struct vgpu_op vgpu_op_cu_module_get_global = {
    .opcode     = VGPU_OP_CU_MODULE_GET_GLOBAL,
    .name       = "cu_module_get_global",
    .validate   = get_global_validate,
    .cost_ns    = symbol_cost_ns,
    .bytes      = symbol_bytes,
    .exec_cpu   = vgpu_cu_exec_cpu,
    .idempotent = vgpu_cu_idempotent,
    .ranges     = symbol_ranges,
};
