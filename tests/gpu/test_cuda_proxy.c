/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The CUDA backend's proxy and worker process (mediator/cuda/proxy.c,
 * worker.c) against a fake engine defined here, so the restart logic runs
 * on any machine: this binary is re-exec'ed as the worker, exactly as the
 * mediator is. Covers: init failure reported with the worker's reason; every
 * reason to replace a VM's worker (sticky error, deadline, no answer ->
 * SIGKILL, death during a request, death between requests), each VM with a
 * worker of its own that another VM's failure leaves alone; the VM's memory
 * re-opened in its new worker with correct results; back-off when respawning fails; no
 * zombie left behind.
 *
 * Faults and long kernels are ordinary requests to the fake engine (see its
 * execute); a hung or dying worker is this test signalling the worker
 * process (SIGSTOP, SIGKILL), whose pid vgpu_cuda_proxy_stats() gives.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mediator/backend.h"
#include "mediator/op.h"
#include "vgpu/abi.h"

#include "cuda_testing.h"
#include "engine.h"
#include "worker.h"

#define SHM_SIZE    (4ull << 20)
#define TIMEOUT_MS  300u
#define N           1000u
/* The fake engine's "kernels": a SAXPY with one of these alphas. */
#define FAULT_ALPHA (-1.0f)     /* faults (sticky) */
#define SPIN_ALPHA  (-2.0f)     /* runs n milliseconds */

/* ------------------------------------------------------------------------
 * The fake engine (runs in the worker)
 * ------------------------------------------------------------------------ */

struct vgpu_backend {
    struct vgpu_backend_config cfg;
    bool poisoned;
    unsigned sessions;
};

struct vgpu_backend_session {
    struct vgpu_shm_view shm;
    uint32_t vm_id;
};

static int fake_init(const struct vgpu_backend_config *cfg, struct vgpu_backend **out,
                     const char **why)
{
    struct vgpu_backend *b;

    if (getenv("VGPU_FAKE_ENGINE_FAIL")) {
        *why = "fake engine: no device (test)";
        return -ENODEV;
    }
    if (cfg->gpu_index < 0 || (unsigned)cfg->gpu_index >= vgpu_cuda_engine_device_count(NULL)) {
        *why = "fake engine: GPU index out of range";
        return -ENODEV;
    }
    b = calloc(1, sizeof(*b));
    if (!b) {
        *why = "out of memory";
        return -ENOMEM;
    }
    b->cfg = *cfg;
    *out = b;
    return 0;
}

static void fake_fini(struct vgpu_backend *b)
{
    free(b);
}

static int fake_session_open(struct vgpu_backend *b, uint32_t vm_id, int gpu,
                             const struct vgpu_shm_view *shm,
                             struct vgpu_backend_session **out)
{
    (void)gpu;     /* one device */
    struct vgpu_backend_session *s = calloc(1, sizeof(*s));

    if (!s) {
        return -ENOMEM;
    }
    s->shm = *shm;
    s->vm_id = vm_id;
    b->sessions++;
    *out = s;
    return 0;
}

static void fake_session_close(struct vgpu_backend *b, struct vgpu_backend_session *s)
{
    if (s) {
        b->sessions--;
        free(s);
    }
}

/*
 * Requests run on the CPU, except two SAXPYs that stand for a guest's own
 * kernels: alpha FAULT_ALPHA faults, SPIN_ALPHA runs n ms (past the request
 * timeout it ends with TIMEOUT, and the "kernel still runs").
 */
static int fake_execute(struct vgpu_backend *b, struct vgpu_backend_session *s,
                        uint32_t queue, const struct vgpu_op *op, const struct vgpu_sqe *sqe,
                        const struct vgpu_shm_view *shm, uint64_t *result)
{
    (void)queue;
    if (b->poisoned) {
        return VGPU_S_GPU_FAULT;    /* sticky, as CUDA's */
    }
    if (shm->base != s->shm.base) {
        return VGPU_S_INTERNAL;
    }
    if (sqe->opcode == VGPU_OP_SAXPY && sqe->args.saxpy.alpha == FAULT_ALPHA) {
        b->poisoned = true;
        return VGPU_S_GPU_FAULT;
    }
    if (sqe->opcode == VGPU_OP_SAXPY && sqe->args.saxpy.alpha == SPIN_ALPHA) {
        uint64_t ms = sqe->args.saxpy.n;

        if (b->cfg.request_timeout_ms && ms > b->cfg.request_timeout_ms) {
            usleep(b->cfg.request_timeout_ms * 1000u);
            b->poisoned = true;
            return VGPU_S_TIMEOUT;
        }
        usleep((useconds_t)ms * 1000u);
        *result = 0;
        return VGPU_S_OK;
    }
    return op->exec_cpu(sqe, shm, result);
}

static void fake_gpu_info(struct vgpu_backend *b, struct vgpu_gpu_info *out)
{
    (void)b;
    memset(out, 0, sizeof(*out));
    snprintf(out->name, sizeof(out->name), "fake GPU");
    out->backend = VGPU_BACKEND_CUDA;
    out->sm_count = 7;
}

static void fake_health(struct vgpu_backend *b, char *buf, unsigned len)
{
    snprintf(buf, len, "fake: %u sessions", b->sessions);
}

unsigned vgpu_cuda_engine_device_count(struct vgpu_backend *b)
{
    const char *e = getenv("VGPU_FAKE_GPUS");

    (void)b;
    return e && atoi(e) > 0 ? (unsigned)atoi(e) : 1;
}

const struct vgpu_backend_ops vgpu_cuda_engine = {
    .name = "cuda",
    .kind = VGPU_BACKEND_CUDA,
    .init = fake_init,
    .fini = fake_fini,
    .session_open = fake_session_open,
    .session_close = fake_session_close,
    .execute = fake_execute,
    .gpu_info = fake_gpu_info,
    .health = fake_health,
};

void vgpu_cuda_engine_exec_async(struct vgpu_backend *b, struct vgpu_backend_session *s,
                                 uint32_t queue, const struct vgpu_sqe *sqe,
                                 const struct vgpu_shm_view *shm, const void *params,
                                 uint32_t len)
{
    (void)b;
    (void)s;
    (void)queue;
    (void)sqe;
    (void)shm;
    (void)params;
    (void)len;      /* the fake engine runs no driver operations */
}

void vgpu_cuda_engine_set_epoch(struct vgpu_backend_session *s, uint32_t epoch)
{
    (void)s;
    (void)epoch;    /* the fake engine has no driver-operation handles */
}

bool vgpu_cuda_engine_poisoned(struct vgpu_backend *b)
{
    return b->poisoned;
}

/* ------------------------------------------------------------------------
 * Tests (the mediator side)
 * ------------------------------------------------------------------------ */

struct vm {
    struct vgpu_shm_view v;
    struct vgpu_backend_session *s;
};

struct fx {
    struct vgpu_backend *b;
    struct vm a, b2;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void vm_create(struct vm *vm)
{
    int fd = memfd_create("vgpu-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    void *p;

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)SHM_SIZE), 0);
    p = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(p != MAP_FAILED);
    vm->v = (struct vgpu_shm_view){ .base = p, .size = SHM_SIZE, .fd = fd };
}

static void vm_destroy(struct vm *vm)
{
    munmap(vm->v.base, vm->v.size);
    close(vm->v.fd);
}

/* vector_add of N floats through the proxy; 1 when the result is right. */
static int vadd(struct fx *f, struct vm *vm, float bias)
{
    const uint64_t a = VGPU_SHM_DATA_OFFSET, b = a + N * 4, o = b + N * 4;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_VECTOR_ADD };
    float *A = (float *)(vm->v.base + a), *B = (float *)(vm->v.base + b);
    float *O = (float *)(vm->v.base + o);
    uint64_t res = 0;
    int st;

    for (unsigned i = 0; i < N; i++) {
        A[i] = (float)i;
        B[i] = bias;
        O[i] = -1.0f;
    }
    sqe.args.vector_add = (struct vgpu_args_vector_add){ .a_off = a, .b_off = b,
                                                         .out_off = o, .n = N };
    st = vgpu_backend_cuda.execute(f->b, vm->s, 0, vgpu_op_lookup(sqe.opcode), &sqe, &vm->v,
                                   &res);
    if (st != VGPU_S_OK) {
        return -st;
    }
    for (unsigned i = 0; i < N; i++) {
        if (O[i] != (float)i + bias) {
            return 0;
        }
    }
    return res == N;
}

/* One of the fake engine's "kernels" (FAULT_ALPHA, SPIN_ALPHA for n ms):
 * the request's status. */
static int kernel(struct fx *f, struct vm *vm, float alpha, uint64_t n)
{
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_SAXPY };
    uint64_t res = 0;

    sqe.args.saxpy = (struct vgpu_args_saxpy){ .x_off = VGPU_SHM_DATA_OFFSET,
                                               .y_off = VGPU_SHM_DATA_OFFSET + (1u << 20),
                                               .n = n, .alpha = alpha };
    return vgpu_backend_cuda.execute(f->b, vm->s, 0, vgpu_op_lookup(sqe.opcode), &sqe, &vm->v,
                                     &res);
}

static struct vgpu_cuda_proxy_stats stats(struct fx *f, struct vm *vm)
{
    struct vgpu_cuda_proxy_stats ps;

    vgpu_cuda_proxy_stats(f->b, vm ? vm->s : NULL, &ps);
    return ps;
}

/* SIGKILLs pid after delay_ms, from a thread of its own. */
struct killer {
    pthread_t th;
    int pid;
    unsigned delay_ms;
};

static void *killer_main(void *arg)
{
    struct killer *k = arg;

    usleep(k->delay_ms * 1000u);
    if (k->pid > 0) {           /* never 0 or -1: a group, or everything */
        kill(k->pid, SIGKILL);
    }
    return NULL;
}

static void kill_later(struct killer *k, int pid, unsigned delay_ms)
{
    k->pid = pid;
    k->delay_ms = delay_ms;
    assert_int_equal(pthread_create(&k->th, NULL, killer_main, k), 0);
}

static void no_children(void)
{
    int status;

    assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static int setup(void **state)
{
    struct vgpu_backend_config cfg = { .request_timeout_ms = TIMEOUT_MS };
    struct fx *f = calloc(1, sizeof(*f));
    const char *why = NULL;

    assert_non_null(f);
    vgpu_cuda_proxy_set_exe("/proc/self/exe");
    assert_int_equal(vgpu_backend_cuda.init(&cfg, &f->b, &why), 0);
    vm_create(&f->a);
    vm_create(&f->b2);
    assert_int_equal(vgpu_backend_cuda.session_open(f->b, 1, -1, &f->a.v, &f->a.s), 0);
    assert_int_equal(vgpu_backend_cuda.session_open(f->b, 2, -1, &f->b2.v, &f->b2.s), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    vgpu_backend_cuda.session_close(f->b, f->a.s);
    vgpu_backend_cuda.session_close(f->b, f->b2.s);
    vgpu_backend_cuda.fini(f->b);
    vm_destroy(&f->a);
    vm_destroy(&f->b2);
    free(f);
    no_children();
    return 0;
}

static void test_init_failure(void **state)
{
    struct vgpu_backend_config cfg = { 0 };
    struct vgpu_backend *b = NULL;
    const char *why = NULL;

    (void)state;
    setenv("VGPU_FAKE_ENGINE_FAIL", "1", 1);
    assert_int_equal(vgpu_backend_cuda.init(&cfg, &b, &why), -ENODEV);
    unsetenv("VGPU_FAKE_ENGINE_FAIL");
    assert_non_null(why);
    assert_string_equal(why, "fake engine: no device (test)");
    no_children();

    /* A binary that cannot be exec'ed. */
    vgpu_cuda_proxy_set_exe("/nonexistent/vgpu-mediator");
    assert_int_equal(vgpu_backend_cuda.init(&cfg, &b, &why), -ENODEV);
    assert_non_null(strstr(why, "/nonexistent/vgpu-mediator"));
    vgpu_cuda_proxy_set_exe("/proc/self/exe");
    no_children();
}

static void test_basic(void **state)
{
    struct fx *f = *state;
    struct vgpu_gpu_info info;
    char health[256];

    assert_int_equal(vadd(f, &f->a, 1.0f), 1);
    assert_int_equal(vadd(f, &f->b2, 2.0f), 1);
    vgpu_backend_cuda.gpu_info(f->b, &info);
    assert_string_equal(info.name, "fake GPU");
    assert_int_equal(info.sm_count, 7);
    vgpu_backend_cuda.health(f->b, health, sizeof(health));
    /* One worker per VM, each with that VM's memory only. */
    assert_non_null(strstr(health, "(2 VM worker(s), restarts 0): fake: 1 sessions"));
    assert_int_equal(stats(f, NULL).sessions, 2);
    assert_true(stats(f, &f->a).pid > 0);
    assert_true(stats(f, &f->b2).pid > 0);
    assert_int_not_equal(stats(f, &f->a).pid, stats(f, &f->b2).pid);
}

static void test_sticky_fault(void **state)
{
    struct fx *f = *state;
    int pid_a, pid_b;

    assert_int_equal(vadd(f, &f->a, 1.0f), 1);
    assert_int_equal(vadd(f, &f->b2, 1.0f), 1);
    pid_a = stats(f, &f->a).pid;
    pid_b = stats(f, &f->b2).pid;
    assert_int_equal(kernel(f, &f->a, FAULT_ALPHA, 1), VGPU_S_GPU_FAULT);
    /* Only A's worker is replaced; B's never noticed. */
    assert_int_equal(stats(f, &f->a).restarts, 1);
    assert_true(stats(f, &f->a).pid != pid_a);
    assert_int_equal(stats(f, &f->b2).restarts, 0);
    assert_int_equal(stats(f, &f->b2).pid, pid_b);
    assert_int_equal(vadd(f, &f->a, 3.0f), 1);
    assert_int_equal(vadd(f, &f->b2, 4.0f), 1);
    assert_int_equal(stats(f, NULL).restarts_all, 1);
}

static void test_deadline(void **state)
{
    struct fx *f = *state;

    assert_int_equal(kernel(f, &f->a, SPIN_ALPHA, 10), VGPU_S_OK);
    assert_int_equal(stats(f, &f->a).restarts, 0);
    assert_int_equal(kernel(f, &f->a, SPIN_ALPHA, 5000), VGPU_S_TIMEOUT);
    assert_int_equal(stats(f, &f->a).restarts, 1);
    assert_int_equal(vadd(f, &f->b2, 1.0f), 1);
}

/* The worker stops answering (stopped here, as a driver call that never
 * returns would stop it): SIGKILL after the timeout plus the grace. */
static void test_hang(void **state)
{
    struct fx *f = *state;
    double t0, el;
    int pid;

    assert_int_equal(vadd(f, &f->a, 1.0f), 1);
    pid = stats(f, &f->a).pid;
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    t0 = now_ms();
    assert_int_equal(vadd(f, &f->a, 2.0f), -VGPU_S_TIMEOUT);
    el = now_ms() - t0;
    assert_true(el >= TIMEOUT_MS);
    assert_true(el < TIMEOUT_MS + 5000 + 3000);
    assert_int_equal(stats(f, &f->a).restarts, 1);
    assert_int_equal(vadd(f, &f->a, 1.0f), 1);
    assert_int_equal(vadd(f, &f->b2, 1.0f), 1);
}

/* The worker dies during a request (a driver crash would kill it). */
static void test_crash(void **state)
{
    struct fx *f = *state;
    struct killer k;
    int pid;

    assert_int_equal(vadd(f, &f->a, 1.0f), 1);
    pid = stats(f, &f->a).pid;
    assert_true(pid > 0);
    kill_later(&k, pid, 50);
    assert_int_equal(kernel(f, &f->a, SPIN_ALPHA, TIMEOUT_MS - 50), VGPU_S_GPU_FAULT);
    pthread_join(k.th, NULL);
    assert_int_equal(stats(f, &f->a).restarts, 1);
    assert_true(stats(f, &f->a).pid != pid);
    assert_int_equal(vadd(f, &f->a, 5.0f), 1);
}

/* Killed between requests: the next request is not lost, it runs on a new
 * worker. */
static void test_killed_idle(void **state)
{
    struct fx *f = *state;
    int pid;

    assert_int_equal(vadd(f, &f->b2, 5.0f), 1);
    pid = stats(f, &f->b2).pid;
    assert_true(pid > 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    usleep(50 * 1000);
    assert_int_equal(vadd(f, &f->b2, 6.0f), 1);
    assert_int_equal(stats(f, &f->b2).restarts, 1);
    assert_true(stats(f, &f->b2).pid != pid);
}

/* Respawning fails: requests fail at once during the back-off instead of
 * spinning, and service resumes once a worker starts again. */
static void test_respawn_backoff(void **state)
{
    struct fx *f = *state;
    double t0;
    char health[256];
    int r, pid_a, pid_b;

    /* Both workers up first: their starters spawn them in the background. */
    assert_int_equal(vadd(f, &f->a, 1.0f), 1);
    assert_int_equal(vadd(f, &f->b2, 1.0f), 1);
    pid_a = stats(f, &f->a).pid;
    pid_b = stats(f, &f->b2).pid;
    assert_true(pid_a > 0 && pid_b > 0);
    vgpu_cuda_proxy_set_exe("/nonexistent/vgpu-mediator");
    assert_int_equal(kill(pid_a, SIGKILL), 0);
    assert_int_equal(kill(pid_b, SIGKILL), 0);
    usleep(50 * 1000);
    assert_int_equal(vadd(f, &f->a, 1.0f), -VGPU_S_INTERNAL);
    assert_int_equal(vadd(f, &f->b2, 1.0f), -VGPU_S_INTERNAL);
    assert_int_equal(stats(f, &f->a).pid, 0);
    t0 = now_ms();
    for (int i = 0; i < 50; i++) {
        r = vadd(f, &f->a, 1.0f);
        assert_int_equal(r, -VGPU_S_INTERNAL);
    }
    assert_true(now_ms() - t0 < 1000.0);
    vgpu_backend_cuda.health(f->b, health, sizeof(health));
    assert_non_null(strstr(health, "no worker"));

    vgpu_cuda_proxy_set_exe("/proc/self/exe");
    t0 = now_ms();
    do {
        usleep(20 * 1000);
        r = vadd(f, &f->a, 2.0f);
    } while (r != 1 && now_ms() - t0 < 15000.0);
    assert_int_equal(r, 1);
    assert_int_equal(vadd(f, &f->b2, 3.0f), 1);
    assert_true(stats(f, &f->a).pid > 0);
}

/* Two GPUs: VMs go to the GPU with the fewest, each on a worker of its own;
 * with all_gpus off, every VM stays on cfg.gpu_index. */
static void test_placement(void **state)
{
    struct vgpu_backend_config cfg = { .request_timeout_ms = TIMEOUT_MS, .all_gpus = 1 };
    struct fx f = { 0 };
    struct vm c;
    const char *why = NULL;
    char health[256];

    (void)state;
    setenv("VGPU_FAKE_GPUS", "2", 1);
    assert_int_equal(vgpu_backend_cuda.init(&cfg, &f.b, &why), 0);
    vm_create(&f.a);
    vm_create(&f.b2);
    vm_create(&c);
    assert_int_equal(vgpu_backend_cuda.session_open(f.b, 1, -1, &f.a.v, &f.a.s), 0);
    assert_int_equal(vgpu_backend_cuda.session_open(f.b, 2, -1, &f.b2.v, &f.b2.s), 0);
    assert_int_equal(vgpu_backend_cuda.session_open(f.b, 3, -1, &c.v, &c.s), 0);
    assert_int_equal(stats(&f, &f.a).gpu, 0);
    assert_int_equal(stats(&f, &f.b2).gpu, 1);
    assert_int_equal(stats(&f, &c).gpu, 0);
    assert_int_equal(vgpu_backend_cuda.session_gpu(f.b, f.b2.s), 1);
    assert_int_equal(vadd(&f, &f.a, 1.0f), 1);
    assert_int_equal(vadd(&f, &f.b2, 2.0f), 1);
    assert_int_equal(vadd(&f, &c, 3.0f), 1);
    vgpu_backend_cuda.health(f.b, health, sizeof(health));
    assert_non_null(strstr(health, "VMs per GPU 0:2 1:1"));
    /* VMs that leave free their places: the next goes to GPU 0 again. */
    vgpu_backend_cuda.session_close(f.b, f.a.s);
    vgpu_backend_cuda.session_close(f.b, c.s);
    assert_int_equal(vgpu_backend_cuda.session_open(f.b, 4, -1, &c.v, &c.s), 0);
    assert_int_equal(stats(&f, &c).gpu, 0);
    vgpu_backend_cuda.session_close(f.b, c.s);
    /* Pinned (the config file's "vm ... gpu N"): there, whatever the load;
     * a pin to a GPU that is not there is placed by load. */
    assert_int_equal(vgpu_backend_cuda.session_open(f.b, 7, 1, &c.v, &c.s), 0);
    assert_int_equal(stats(&f, &c).gpu, 1);
    assert_int_equal(vadd(&f, &c, 5.0f), 1);
    vgpu_backend_cuda.session_close(f.b, c.s);
    assert_int_equal(vgpu_backend_cuda.session_open(f.b, 8, 5, &c.v, &c.s), 0);
    assert_int_equal(stats(&f, &c).gpu, 0);
    vgpu_backend_cuda.session_close(f.b, c.s);
    vgpu_backend_cuda.session_close(f.b, f.b2.s);
    vgpu_backend_cuda.fini(f.b);

    /* [gpu 0] use = no: every VM on GPU 1, a pin to 0 included. */
    cfg.gpu_unused = 1;
    assert_int_equal(vgpu_backend_cuda.init(&cfg, &f.b, &why), 0);
    assert_int_equal(vgpu_backend_cuda.session_open(f.b, 9, -1, &f.a.v, &f.a.s), 0);
    assert_int_equal(vgpu_backend_cuda.session_open(f.b, 10, 0, &f.b2.v, &f.b2.s), 0);
    assert_int_equal(stats(&f, &f.a).gpu, 1);
    assert_int_equal(stats(&f, &f.b2).gpu, 1);
    vgpu_backend_cuda.session_close(f.b, f.a.s);
    vgpu_backend_cuda.session_close(f.b, f.b2.s);
    vgpu_backend_cuda.fini(f.b);
    cfg.gpu_unused = 3;     /* both set aside: refused */
    assert_int_equal(vgpu_backend_cuda.init(&cfg, &f.b, &why), -ENODEV);
    assert_non_null(strstr(why, "set aside"));
    cfg.gpu_unused = 0;

    /* --gpu N: only N. */
    cfg.all_gpus = 0;
    cfg.gpu_index = 1;
    assert_int_equal(vgpu_backend_cuda.init(&cfg, &f.b, &why), 0);
    assert_int_equal(vgpu_backend_cuda.session_open(f.b, 5, -1, &f.a.v, &f.a.s), 0);
    assert_int_equal(vgpu_backend_cuda.session_open(f.b, 6, -1, &f.b2.v, &f.b2.s), 0);
    assert_int_equal(stats(&f, &f.a).gpu, 1);
    assert_int_equal(stats(&f, &f.b2).gpu, 1);
    assert_int_equal(vadd(&f, &f.b2, 4.0f), 1);
    vgpu_backend_cuda.session_close(f.b, f.a.s);
    vgpu_backend_cuda.session_close(f.b, f.b2.s);
    vgpu_backend_cuda.fini(f.b);
    unsetenv("VGPU_FAKE_GPUS");
    vm_destroy(&f.a);
    vm_destroy(&f.b2);
    vm_destroy(&c);
    no_children();
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_failure),
        cmocka_unit_test_setup_teardown(test_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sticky_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_respawn_backoff, setup, teardown),
        cmocka_unit_test(test_placement),
    };

    if (argc == 2 && strncmp(argv[1], VGPU_WORKER_ARG, strlen(VGPU_WORKER_ARG)) == 0) {
        return vgpu_cuda_worker_main(argv[1] + strlen(VGPU_WORKER_ARG));
    }
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
