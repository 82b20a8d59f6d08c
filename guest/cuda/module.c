/* SPDX-License-Identifier: MIT */
/*
 * Modules and libraries. An image (fatbin wrapper, fatbin, cubin ELF or PTX
 * text) is measured here, sent to the host and loaded there; a library is a
 * module loaded at once (the host's loading is the lazy part). A CUkernel
 * is the same object as the CUfunction it names, so that a kernel handle
 * cast to CUfunction launches, as the driver allows since CUDA 12.0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "module.h"

#define FATBINC_MAGIC 0x466243b1u   /* __fatBinC_Wrapper_t */
#define FATBIN_MAGIC  0xba55ed50u   /* fatbin header */

/* Bytes of an image, or 0 if it is not one of the four kinds. */
size_t cu_image_size(const void *image)
{
    const uint8_t *p = image;
    uint32_t magic;

    if (!p) {
        return 0;
    }
    memcpy(&magic, p, 4);
    if (magic == FATBINC_MAGIC) {
        /* int magic, int version, const unsigned long long *data, ... */
        const void *data;

        memcpy(&data, p + 8, sizeof(data));
        return cu_image_size(data) ? cu_image_size(data) : 0;
    }
    if (magic == FATBIN_MAGIC) {
        /* u32 magic, u16 version, u16 header size, u64 size of what follows */
        uint16_t hdr;
        uint64_t body;

        memcpy(&hdr, p + 6, 2);
        memcpy(&body, p + 8, 8);
        if (hdr < 16 || body > (1ull << 40)) {
            return 0;
        }
        return (size_t)hdr + (size_t)body;
    }
    if (memcmp(p, "\x7f" "ELF", 4) == 0 && p[4] == 2 /* ELFCLASS64 */) {
        uint64_t shoff, phoff, end;
        uint16_t shentsize, shnum, phentsize, phnum;
        uint16_t i;

        memcpy(&phoff, p + 0x20, 8);
        memcpy(&shoff, p + 0x28, 8);
        memcpy(&phentsize, p + 0x36, 2);
        memcpy(&phnum, p + 0x38, 2);
        memcpy(&shentsize, p + 0x3a, 2);
        memcpy(&shnum, p + 0x3c, 2);
        if (shentsize < 0x40 || shoff > (1ull << 40)) {
            return 0;
        }
        end = shoff + (uint64_t)shentsize * shnum;
        if (phoff + (uint64_t)phentsize * phnum > end) {
            end = phoff + (uint64_t)phentsize * phnum;
        }
        for (i = 0; i < shnum; i++) {
            const uint8_t *sh = p + shoff + (uint64_t)i * shentsize;
            uint32_t type;
            uint64_t off, size;

            memcpy(&type, sh + 4, 4);
            memcpy(&off, sh + 0x18, 8);
            memcpy(&size, sh + 0x20, 8);
            if (type != 8 /* SHT_NOBITS */ && off + size > end) {
                end = off + size;
            }
        }
        return (size_t)end;
    }
    /* PTX (or any text image): NUL-terminated text */
    if ((p[0] >= 0x20 && p[0] < 0x7f) || p[0] == '\n' || p[0] == '\t' || p[0] == '\r') {
        return strlen((const char *)p) + 1;
    }
    return 0;
}

/* The start of the image the host wants: a wrapper's fatbin. */
static const void *image_data(const void *image)
{
    uint32_t magic;

    memcpy(&magic, image, 4);
    if (magic == FATBINC_MAGIC) {
        const void *data;

        memcpy(&data, (const uint8_t *)image + 8, sizeof(data));
        return data;
    }
    return image;
}

static CUresult module_load(struct CUmod_st **out, const void *image)
{
    struct CUmod_st *m;
    uint32_t h = 0;
    size_t len;
    CUresult rv;
    int r;

    if (!out || !image) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    len = cu_image_size(image);
    if (len == 0) {
        return CUDA_ERROR_INVALID_IMAGE;
    }
    image = image_data(image);
    if (len > VGPU_CU_MAX_IMAGE) {
        return CUDA_ERROR_INVALID_IMAGE;
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        r = vgpu_cu_module_load_data(cu_rm(), image, len, &h);
        if (r == -EMSGSIZE) {
            /* larger than the staging ring: through pinned memory */
            void *tmp;
            uint64_t off;

            CU_LEAVE();
            rv = cuMemAllocHost_v2(&tmp, len);
            pthread_mutex_lock(&cu_lock);
            if (rv == CUDA_SUCCESS && cu_host_pinned(tmp, len, &off)) {
                memcpy(tmp, image, len);
                r = vgpu_cu_module_load(cu_rm(), off, len, &h);
            } else {
                /* the image does not fit in the shared memory at all */
                fprintf(stderr, "libcuda(vgpu): a module image of %zu bytes does not fit in "
                        "the shared memory (see VGPU_CUDA_PINNED_MB)\n", len);
                r = -ENOMEM;
            }
            if (rv == CUDA_SUCCESS) {
                CU_LEAVE();
                cuMemFreeHost(tmp);
                pthread_mutex_lock(&cu_lock);
            }
        }
        rv = cu_result(r);
    }
    CU_LEAVE();
    if (rv != CUDA_SUCCESS) {
        free(m);
        return rv;
    }
    m->magic = CU_MAGIC_MOD;
    m->handle = h;
    *out = m;
    return CUDA_SUCCESS;
}

static void module_free(struct CUmod_st *m)
{
    struct CUfunc_st *f, *next;

    for (f = m->funcs; f; f = next) {
        next = f->next;
        f->magic = 0;
        free(f->name);
        free(f->params);
        free(f);
    }
    m->magic = 0;
    free(m);
}

static CUresult module_unload(struct CUmod_st *m)
{
    CUresult rv;

    if (!m || m->magic != CU_MAGIC_MOD) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_module_unload(cu_rm(), m->handle));
    }
    CU_LEAVE();
    /* a handle the host no longer knows (a reset) is gone all the same */
    module_free(m);
    return rv == CUDA_ERROR_INVALID_VALUE || rv == CUDA_ERROR_CONTEXT_IS_DESTROYED ?
           CUDA_SUCCESS : rv;
}

/* The function named, looked up once per module. */
static CUresult module_function(struct CUmod_st *m, const char *name, struct CUfunc_st **out)
{
    struct CUfunc_st *f;
    struct vgpu_cu_param *params = NULL;
    CUresult rv;
    int r;

    if (!m || m->magic != CU_MAGIC_MOD) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!name || !out) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (strlen(name) == 0 || strlen(name) >= VGPU_CU_MAX_NAME) {
        return CUDA_ERROR_NOT_FOUND;
    }
    CU_ENTER(rv);
    for (f = m->funcs; rv == CUDA_SUCCESS && f; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            *out = f;
            CU_LEAVE();
            return CUDA_SUCCESS;
        }
    }
    f = calloc(1, sizeof(*f));
    params = calloc(VGPU_CU_MAX_PARAMS, sizeof(*params));
    if (rv == CUDA_SUCCESS && (!f || !params || !(f->name = strdup(name)))) {
        rv = CUDA_ERROR_OUT_OF_MEMORY;
    }
    if (rv == CUDA_SUCCESS) {
        r = vgpu_cu_module_get_function(cu_rm(), m->handle, name, &f->handle, &f->info,
                                        params, VGPU_CU_MAX_PARAMS);
        rv = cu_result(r);
    }
    if (rv == CUDA_SUCCESS && (f->info.param_count > VGPU_CU_MAX_PARAMS ||
                               f->info.param_bytes > VGPU_CU_MAX_PARAM_BYTES)) {
        rv = CUDA_ERROR_INVALID_IMAGE;
    }
    if (rv == CUDA_SUCCESS) {
        uint32_t i;

        /* the host's layout is checked once, here, not at every launch */
        for (i = 0; i < f->info.param_count; i++) {
            if (params[i].offset > f->info.param_bytes ||
                params[i].size > f->info.param_bytes - params[i].offset) {
                rv = CUDA_ERROR_INVALID_IMAGE;
                break;
            }
        }
    }
    if (rv != CUDA_SUCCESS) {
        CU_LEAVE();
        if (f) {
            free(f->name);
        }
        free(f);
        free(params);
        return rv;
    }
    f->params = params;
    f->magic = CU_MAGIC_FUNC;
    f->mod = m;
    f->next = m->funcs;
    m->funcs = f;
    *out = f;
    CU_LEAVE();
    return CUDA_SUCCESS;
}

struct CUfunc_st *cu_func(CUfunction f)
{
    return f && f->magic == CU_MAGIC_FUNC ? f : NULL;
}

/* ---- modules ---- */

VGPU_CU_EXPORT CUresult CUDAAPI cuModuleLoadData(CUmodule *module, const void *image)
{
    return module_load(module, image);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuModuleLoadDataEx(CUmodule *module, const void *image,
                                                   unsigned int numOptions, CUjit_option *options,
                                                   void **optionValues)
{
    /* JIT options tune or log a compilation the host does its own way */
    (void)numOptions; (void)options; (void)optionValues;
    return module_load(module, image);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuModuleLoadFatBinary(CUmodule *module, const void *fatCubin)
{
    return module_load(module, fatCubin);
}

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    void *buf = NULL;
    long n;

    if (!f) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && (uint64_t)n <= VGPU_CU_MAX_IMAGE &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = calloc(1, (size_t)n + 1)) &&
        fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        *len = (size_t)n;
    }
    return buf;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuModuleLoad(CUmodule *module, const char *fname)
{
    size_t len;
    void *img;
    CUresult rv;

    if (!fname || !module) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    img = read_file(fname, &len);
    if (!img) {
        return CUDA_ERROR_FILE_NOT_FOUND;
    }
    rv = module_load(module, img);
    free(img);
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuModuleUnload(CUmodule hmod)
{
    return module_unload(hmod);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod,
                                                    const char *name)
{
    return module_function(hmod, name, hfunc);
}

static CUresult module_global(struct CUmod_st *m, const char *name, CUdeviceptr *dptr,
                              size_t *bytes)
{
    uint64_t d = 0, n = 0;
    CUresult rv;

    if (!m || m->magic != CU_MAGIC_MOD) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!name || strlen(name) == 0 || strlen(name) >= VGPU_CU_MAX_NAME) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    CU_ENTER(rv);
    if (rv == CUDA_SUCCESS) {
        rv = cu_result(vgpu_cu_module_get_global(cu_rm(), m->handle, name, &d, &n));
    }
    CU_LEAVE();
    if (rv == CUDA_SUCCESS) {
        if (dptr) {
            *dptr = d;
        }
        if (bytes) {
            *bytes = (size_t)n;
        }
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuModuleGetGlobal_v2(CUdeviceptr *dptr, size_t *bytes,
                                                     CUmodule hmod, const char *name)
{
    return module_global(hmod, name, dptr, bytes);
}

/* ---- libraries ---- */

static CUresult library_new(CUlibrary *library, const void *code)
{
    struct CUlib_st *l;
    struct CUmod_st *m;
    CUresult rv;

    if (!library || !code) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    l = calloc(1, sizeof(*l));
    if (!l) {
        return CUDA_ERROR_OUT_OF_MEMORY;
    }
    rv = module_load(&m, code);
    if (rv != CUDA_SUCCESS) {
        free(l);
        return rv;
    }
    l->magic = CU_MAGIC_LIB;
    l->mod = m;
    *library = l;
    return CUDA_SUCCESS;
}

static struct CUlib_st *lib_of(CUlibrary l)
{
    return l && l->magic == CU_MAGIC_LIB ? l : NULL;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuLibraryLoadData(CUlibrary *library, const void *code,
                                                  CUjit_option *jitOptions,
                                                  void **jitOptionsValues,
                                                  unsigned int numJitOptions,
                                                  CUlibraryOption *libraryOptions,
                                                  void **libraryOptionValues,
                                                  unsigned int numLibraryOptions)
{
    (void)jitOptions; (void)jitOptionsValues; (void)numJitOptions;
    (void)libraryOptions; (void)libraryOptionValues; (void)numLibraryOptions;
    return library_new(library, code);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuLibraryLoadFromFile(CUlibrary *library, const char *fileName,
                                                      CUjit_option *jitOptions,
                                                      void **jitOptionsValues,
                                                      unsigned int numJitOptions,
                                                      CUlibraryOption *libraryOptions,
                                                      void **libraryOptionValues,
                                                      unsigned int numLibraryOptions)
{
    size_t len;
    void *img;
    CUresult rv;

    (void)jitOptions; (void)jitOptionsValues; (void)numJitOptions;
    (void)libraryOptions; (void)libraryOptionValues; (void)numLibraryOptions;
    if (!fileName) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    img = read_file(fileName, &len);
    if (!img) {
        return CUDA_ERROR_FILE_NOT_FOUND;
    }
    rv = library_new(library, img);
    free(img);
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuLibraryUnload(CUlibrary library)
{
    struct CUlib_st *l = lib_of(library);
    CUresult rv;

    if (!l) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    rv = module_unload(l->mod);
    l->magic = 0;
    free(l);
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuLibraryGetModule(CUmodule *pMod, CUlibrary library)
{
    struct CUlib_st *l = lib_of(library);

    if (!l) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!pMod) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *pMod = l->mod;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuLibraryGetKernel(CUkernel *pKernel, CUlibrary library,
                                                   const char *name)
{
    struct CUlib_st *l = lib_of(library);
    struct CUfunc_st *f;
    CUresult rv;

    if (!l) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!pKernel) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    rv = module_function(l->mod, name, &f);
    if (rv == CUDA_SUCCESS) {
        *pKernel = (CUkernel)(void *)f;
    }
    return rv;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuLibraryGetGlobal(CUdeviceptr *dptr, size_t *bytes,
                                                   CUlibrary library, const char *name)
{
    struct CUlib_st *l = lib_of(library);

    if (!l) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    return module_global(l->mod, name, dptr, bytes);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuKernelGetFunction(CUfunction *pFunc, CUkernel kernel)
{
    struct CUfunc_st *f = cu_func((CUfunction)(void *)kernel);

    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!pFunc) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *pFunc = f;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuKernelGetName(const char **name, CUkernel hfunc)
{
    struct CUfunc_st *f = cu_func((CUfunction)(void *)hfunc);

    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!name) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *name = f->name;
    return CUDA_SUCCESS;
}

/* ---- what a function is ---- */

VGPU_CU_EXPORT CUresult CUDAAPI cuFuncGetParamInfo(CUfunction func, size_t paramIndex,
                                                   size_t *paramOffset, size_t *paramSize)
{
    struct CUfunc_st *f = cu_func(func);

    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (paramIndex >= f->info.param_count) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    if (paramOffset) {
        *paramOffset = f->params[paramIndex].offset;
    }
    if (paramSize) {
        *paramSize = f->params[paramIndex].size;
    }
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuKernelGetParamInfo(CUkernel kernel, size_t paramIndex,
                                                     size_t *paramOffset, size_t *paramSize)
{
    return cuFuncGetParamInfo((CUfunction)(void *)kernel, paramIndex, paramOffset, paramSize);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuFuncGetName(const char **name, CUfunction hfunc)
{
    return cuKernelGetName(name, (CUkernel)(void *)hfunc);
}

VGPU_CU_EXPORT CUresult CUDAAPI cuFuncGetModule(CUmodule *hmod, CUfunction hfunc)
{
    struct CUfunc_st *f = cu_func(hfunc);

    if (!f) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!hmod) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *hmod = f->mod;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuFuncIsLoaded(CUfunctionLoadingState *state, CUfunction function)
{
    if (!cu_func(function)) {
        return CUDA_ERROR_INVALID_HANDLE;
    }
    if (!state) {
        return CUDA_ERROR_INVALID_VALUE;
    }
    *state = CU_FUNCTION_LOADING_STATE_LOADED;
    return CUDA_SUCCESS;
}

VGPU_CU_EXPORT CUresult CUDAAPI cuFuncLoad(CUfunction function)
{
    return cu_func(function) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}
