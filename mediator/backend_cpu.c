/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CPU backend: runs every operation's exec_cpu on the calling executor
 * thread, straight on the VM's mapped shared memory. Always available; the
 * mediator falls back to it when there is no GPU (development, CI).
 *
 * There is nothing per-VM to set up: session_open only records the view.
 * The per-request time limit is enforced cooperatively (ops-priv.h): long
 * operations poll a thread-local deadline between blocks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "mediator/backend.h"
#include "mediator/ops/ops-priv.h"

struct vgpu_backend {
    uint32_t request_timeout_ms;
    /* Updated by any executor thread: relaxed atomics, statistics only. */
    uint64_t requests;
    uint64_t failed;
    uint64_t timed_out;
};

struct vgpu_backend_session {
    uint32_t vm_id;
    struct vgpu_shm_view shm;
};

/* What /proc/cpuinfo says; read once, the CPU model does not change. */
static struct {
    char     name[sizeof(((struct vgpu_gpu_info *)0)->name)];
    uint32_t clock_khz;
} cpu_desc;
static pthread_once_t cpu_desc_once = PTHREAD_ONCE_INIT;

/* Truncating copy that always terminates (size > 0). */
static void copy_str(char *dst, size_t size, const char *src)
{
    size_t len = strnlen(src, size - 1);

    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* "key\t: value\n" -> value without the newline, or NULL. */
static const char *cpuinfo_value(const char *line, const char *key)
{
    size_t klen = strlen(key);
    const char *colon;

    if (strncmp(line, key, klen) != 0 || (line[klen] != ' ' && line[klen] != '\t' &&
                                          line[klen] != ':')) {
        return NULL;
    }
    colon = strchr(line + klen, ':');
    if (!colon) {
        return NULL;
    }
    colon++;
    while (*colon == ' ' || *colon == '\t') {
        colon++;
    }
    return colon;
}

static void cpu_desc_read(void)
{
    char model[sizeof(cpu_desc.name)] = "";
    char *line = NULL;
    size_t cap = 0;
    FILE *f;

    f = fopen("/proc/cpuinfo", "re");
    if (f) {
        while (getline(&line, &cap, f) > 0) {
            const char *v;

            line[strcspn(line, "\n")] = '\0';
            if (!model[0] && (v = cpuinfo_value(line, "model name"))) {
                copy_str(model, sizeof(model), v);
            } else if (!cpu_desc.clock_khz && (v = cpuinfo_value(line, "cpu MHz"))) {
                double mhz = strtod(v, NULL);

                /* Range-checked: the conversion to uint32 is undefined outside. */
                cpu_desc.clock_khz = mhz > 0 && mhz < 1e6 ? (uint32_t)(mhz * 1000.0) : 0;
            }
        }
        free(line);
        fclose(f);
    }
    if (!model[0]) {
        /* No "model name" (e.g. some arm64 kernels): name the architecture. */
        struct utsname u;

        copy_str(model, sizeof(model), uname(&u) == 0 ? u.machine : "unknown");
    }
    /* "cpu: " + model, cut to the field; the model is long only on odd CPUs. */
    memcpy(cpu_desc.name, "cpu: ", 5);
    copy_str(cpu_desc.name + 5, sizeof(cpu_desc.name) - 5, model);
}

static uint64_t sysconf_bytes(int pages_name)
{
    long pages = sysconf(pages_name);
    long page_size = sysconf(_SC_PAGESIZE);

    return pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size : 0;
}

static uint32_t cpus_online(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n > 0 ? (uint32_t)n : 1;
}

static int cpu_init(const struct vgpu_backend_config *cfg, struct vgpu_backend **out,
                    const char **why)
{
    struct vgpu_backend *b;

    b = calloc(1, sizeof(*b));
    if (!b) {
        *why = "out of memory";
        return -ENOMEM;
    }
    b->request_timeout_ms = cfg ? cfg->request_timeout_ms : 0;
    pthread_once(&cpu_desc_once, cpu_desc_read);
    *out = b;
    return 0;
}

static void cpu_fini(struct vgpu_backend *b)
{
    free(b);
}

static int cpu_session_open(struct vgpu_backend *b, uint32_t vm_id, int gpu,
                            const struct vgpu_shm_view *shm,
                            struct vgpu_backend_session **out)
{
    (void)gpu;     /* one device */
    struct vgpu_backend_session *s;

    (void)b;
    if (!shm || !shm->base || shm->size < VGPU_SHM_DATA_OFFSET) {
        return -EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        return -ENOMEM;
    }
    s->vm_id = vm_id;
    s->shm = *shm;
    *out = s;
    return 0;
}

static void cpu_session_close(struct vgpu_backend *b, struct vgpu_backend_session *s)
{
    (void)b;
    free(s);
}

static int cpu_execute(struct vgpu_backend *b, struct vgpu_backend_session *s,
                       uint32_t queue, const struct vgpu_op *op, const struct vgpu_sqe *sqe,
                       const struct vgpu_shm_view *shm, uint64_t *result)
{
    int status;

    (void)s;
    (void)queue;     /* the cpu backend has no GPU contexts, and never waits */
    if (!op || !op->exec_cpu) {
        return VGPU_S_NOT_SUPPORTED;
    }
    if (b && b->request_timeout_ms) {
        vgpu_ops_set_deadline(vgpu_ops_now_ns() + b->request_timeout_ms * 1000000ull);
    }
    status = op->exec_cpu(sqe, shm, result);
    vgpu_ops_set_deadline(0);

    if (b) {
        __atomic_fetch_add(&b->requests, 1, __ATOMIC_RELAXED);
        if (status == VGPU_S_TIMEOUT) {
            __atomic_fetch_add(&b->timed_out, 1, __ATOMIC_RELAXED);
        } else if (status != VGPU_S_OK) {
            __atomic_fetch_add(&b->failed, 1, __ATOMIC_RELAXED);
        }
    }
    return status;
}

/* b may be NULL: GPU_INFO's exec_cpu asks without a backend instance. */
static void cpu_gpu_info(struct vgpu_backend *b, struct vgpu_gpu_info *out)
{
    (void)b;
    pthread_once(&cpu_desc_once, cpu_desc_read);
    memset(out, 0, sizeof(*out));
    memcpy(out->name, cpu_desc.name, sizeof(out->name));
    out->backend = VGPU_BACKEND_CPU;
    out->sm_count = cpus_online();          /* the CPU's "multiprocessors" */
    out->total_mem = sysconf_bytes(_SC_PHYS_PAGES);
    out->free_mem = sysconf_bytes(_SC_AVPHYS_PAGES);
    out->multiprocessor_clock_khz = cpu_desc.clock_khz;
    /* cc_*, driver_version, runtime_version: 0, there is no CUDA. */
}

static void cpu_health(struct vgpu_backend *b, char *buf, unsigned len)
{
    if (!buf || len == 0) {
        return;
    }
    snprintf(buf, len, "cpu backend, %u threads (1 per request), %llu requests, "
             "%llu failed, %llu timed out", cpus_online(),
             b ? (unsigned long long)__atomic_load_n(&b->requests, __ATOMIC_RELAXED) : 0ull,
             b ? (unsigned long long)__atomic_load_n(&b->failed, __ATOMIC_RELAXED) : 0ull,
             b ? (unsigned long long)__atomic_load_n(&b->timed_out, __ATOMIC_RELAXED) : 0ull);
}

const struct vgpu_backend_ops vgpu_backend_cpu = {
    .name          = "cpu",
    .kind          = VGPU_BACKEND_CPU,
    .init          = cpu_init,
    .fini          = cpu_fini,
    .session_open  = cpu_session_open,
    .session_close = cpu_session_close,
    .execute       = cpu_execute,
    .gpu_info      = cpu_gpu_info,
    .health        = cpu_health,
    .split_ops     = (1ull << VGPU_OP_CU_FIRST) - 1,
};
