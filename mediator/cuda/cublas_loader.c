/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cublas_loader.h"

#define CUBLAS_SONAME "libcublas.so.13"

static void *try_open(const char *dir, char *path, size_t len)
{
    if (dir) {
        snprintf(path, len, "%s/%s", dir, CUBLAS_SONAME);
    } else {
        snprintf(path, len, "%s", CUBLAS_SONAME);
    }
    /* RTLD_LOCAL: cuBLAS' own symbols must not interpose on anything of ours. */
    return dlopen(path, RTLD_NOW | RTLD_LOCAL);
}

int vgpu_cublas_load(struct vgpu_cublas *cb)
{
    char home_lib[200];
    const char *home = getenv("CUDA_HOME");
    const char *dirs[3];
    unsigned ndirs = 0;

    memset(cb, 0, sizeof(*cb));
    dirs[ndirs++] = NULL;
    if (home && *home && strlen(home) < sizeof(home_lib) - 8) {
        snprintf(home_lib, sizeof(home_lib), "%s/lib64", home);
        dirs[ndirs++] = home_lib;
    }
    dirs[ndirs++] = "/usr/local/cuda/lib64";

    for (unsigned i = 0; i < ndirs && !cb->dl; i++) {
        cb->dl = try_open(dirs[i], cb->path, sizeof(cb->path));
    }
    if (!cb->dl) {
        snprintf(cb->path, sizeof(cb->path), "%s not found", CUBLAS_SONAME);
        return -ENOENT;
    }

#define LOAD(field, sym)                                                    \
    do {                                                                    \
        *(void **)&cb->field = dlsym(cb->dl, sym);                          \
        if (!cb->field) {                                                   \
            snprintf(cb->path, sizeof(cb->path), "%s lacks %s",             \
                     CUBLAS_SONAME, sym);                                   \
            goto err_sym;                                                   \
        }                                                                   \
    } while (0)
    LOAD(create, "cublasCreate_v2");
    LOAD(destroy, "cublasDestroy_v2");
    LOAD(set_stream, "cublasSetStream_v2");
    LOAD(sgemm, "cublasSgemm_v2");
#undef LOAD
    return 0;

err_sym:
    dlclose(cb->dl);
    cb->dl = NULL;
    return -ENOSYS;
}

void vgpu_cublas_unload(struct vgpu_cublas *cb)
{
    if (cb && cb->dl) {
        dlclose(cb->dl);
        cb->dl = NULL;
    }
}
