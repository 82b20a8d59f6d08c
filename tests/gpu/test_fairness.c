/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Fair share through the real mediator: starts vgpu-mediator (--backend
 * cuda by default), connects two simulated VMs over libvgpu with weights 3
 * and 1 in the same priority class, keeps both saturated with identical
 * requests, and measures each VM's share of GPU time as the sum of the
 * exec_us the mediator reports in their completions over a common window
 * (a warm-up second excluded). Target: 75/25 within +-5 points.
 *
 * Both VMs are in class 0, the highest: the scheduler's aging promotes a
 * request that waited longer than --aging-ms one class up, so in a lower
 * class the lighter VM's queued requests would overtake the heavier VM and
 * flatten the shares (measured on the cpu backend with one executor: 52/48
 * in class 1 against 75/25 with --aging-ms=0). In class 0 there is nothing
 * above to be promoted to, and the weights alone decide.
 *
 * usage: test_fairness MEDIATOR [--backend cuda|cpu] [--seconds S]
 *                               [--log FILE] [--op sgemm|vector_add|both]
 *                               [--mediator-arg ARG]...
 * Prints a table and a final "N passed, N failed" line.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vgpu/abi.h"
#include "vgpu/libvgpu.h"

#define DEPTH        8u       /* requests each VM keeps in flight */
#define WARMUP_S     1.0
#define TARGET       0.75
#define TOLERANCE    0.05
#define WAIT_MS      30000    /* one completion, at most */

struct vm {
    struct vgpu_dev *dev;
    uint32_t weight;
    struct vgpu_sqe sqe;
    /* results over the window */
    uint64_t done, exec_us, queue_us, errors;
    uint64_t total_done;
    int fail;                 /* -errno of a libvgpu call */
};

struct phase {
    const char *op;
    double start, win_start, win_end;   /* seconds, CLOCK_MONOTONIC */
    pthread_barrier_t go;
};

struct vm_thread {
    struct vm *vm;
    struct phase *ph;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int prepare(struct vm *v, const char *op)
{
    uint64_t a, b, c;
    int r;

    memset(&v->sqe, 0, sizeof(v->sqe));
    vgpu_free_all(v->dev);
    if (strcmp(op, "sgemm") == 0) {
        const uint32_t n = 1024;
        uint64_t bytes = (uint64_t)n * n * 4;

        if ((r = vgpu_alloc(v->dev, bytes, 256, &a)) < 0 ||
            (r = vgpu_alloc(v->dev, bytes, 256, &b)) < 0 ||
            (r = vgpu_alloc(v->dev, bytes, 256, &c)) < 0) {
            return r;
        }
        for (uint64_t i = 0; i < (uint64_t)n * n; i++) {
            ((float *)vgpu_ptr(v->dev, a))[i] = (float)(i % 7) * 0.25f;
            ((float *)vgpu_ptr(v->dev, b))[i] = (float)(i % 5) * 0.5f;
        }
        v->sqe.opcode = VGPU_OP_SGEMM;
        v->sqe.args.sgemm = (struct vgpu_args_sgemm){ .a_off = a, .b_off = b, .c_off = c,
                                                      .m = n, .n = n, .k = n,
                                                      .alpha = 1.0f, .beta = 0.0f };
    } else {
        const uint64_t n = 1ull << 22;

        if ((r = vgpu_alloc(v->dev, n * 4, 256, &a)) < 0 ||
            (r = vgpu_alloc(v->dev, n * 4, 256, &b)) < 0 ||
            (r = vgpu_alloc(v->dev, n * 4, 256, &c)) < 0) {
            return r;
        }
        for (uint64_t i = 0; i < n; i++) {
            ((float *)vgpu_ptr(v->dev, a))[i] = (float)i;
            ((float *)vgpu_ptr(v->dev, b))[i] = 1.0f;
        }
        v->sqe.opcode = VGPU_OP_VECTOR_ADD;
        v->sqe.args.vector_add = (struct vgpu_args_vector_add){ .a_off = a, .b_off = b,
                                                                .out_off = c, .n = n };
    }
    return 0;
}

static void *vm_loop(void *arg)
{
    struct vm_thread *t = arg;
    struct vm *v = t->vm;
    unsigned inflight = 0;
    struct vgpu_cqe cqe;
    int r;

    pthread_barrier_wait(&t->ph->go);
    for (;;) {
        double now = now_s();
        bool submitting = now < t->ph->win_end;

        while (submitting && inflight < DEPTH) {
            r = vgpu_submit(v->dev, &v->sqe);
            if (r == -EAGAIN) {
                break;
            }
            if (r < 0) {
                v->fail = r;
                return NULL;
            }
            inflight++;
            if ((r = vgpu_kick(v->dev)) < 0) {
                v->fail = r;
                return NULL;
            }
        }
        if (inflight == 0) {
            break;
        }
        r = vgpu_wait(v->dev, &cqe, WAIT_MS);
        if (r < 0) {
            v->fail = r;
            return NULL;
        }
        inflight--;
        now = now_s();
        v->total_done++;
        if (cqe.status != VGPU_S_OK) {
            v->errors++;
        }
        if (now >= t->ph->win_start && now < t->ph->win_end) {
            v->done++;
            v->exec_us += cqe.exec_us;
            v->queue_us += cqe.queue_us;
        }
    }
    return NULL;
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();

    if (pid == 0) {
        if (log) {
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, STDOUT_FILENO);
                dup2(fd, STDERR_FILENO);
                close(fd);
            }
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* SIGTERM, then SIGKILL after 5 s. */
static int reap(pid_t pid)
{
    int status = 0;

    kill(pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            return status;
        }
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

static void print_status(const char *mediator, const char *sock)
{
    char opt[160];
    char *argv[] = { (char *)mediator, "--status", opt, NULL };
    int st;
    pid_t pid;

    snprintf(opt, sizeof(opt), "--socket-path=%s", sock);
    pid = spawn(argv, NULL);
    if (pid > 0) {
        for (int i = 0; i < 500 && waitpid(pid, &st, WNOHANG) != pid; i++) {
            usleep(10000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, &st, WNOHANG);
    }
}

static int run_phase(struct vm vms[2], const char *op, double seconds, unsigned *passed,
                     unsigned *failed)
{
    struct phase ph = { .op = op };
    struct vm_thread t[2];
    pthread_t th[2];
    double share, total;
    int r;

    for (int i = 0; i < 2; i++) {
        r = prepare(&vms[i], op);
        if (r < 0) {
            printf("FAIL  %s: vgpu_alloc: %s\n", op, strerror(-r));
            (*failed)++;
            return r;
        }
        vms[i].done = vms[i].exec_us = vms[i].queue_us = vms[i].errors = 0;
        vms[i].total_done = 0;
        vms[i].fail = 0;
    }
    pthread_barrier_init(&ph.go, NULL, 3);
    ph.start = now_s();
    ph.win_start = ph.start + WARMUP_S;
    ph.win_end = ph.win_start + seconds;
    for (int i = 0; i < 2; i++) {
        t[i] = (struct vm_thread){ .vm = &vms[i], .ph = &ph };
        pthread_create(&th[i], NULL, vm_loop, &t[i]);
    }
    pthread_barrier_wait(&ph.go);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    pthread_barrier_destroy(&ph.go);

    total = (double)(vms[0].exec_us + vms[1].exec_us);
    share = total > 0 ? vms[0].exec_us / total : 0;
    printf("\n%-12s %-7s %9s %10s %12s %12s %11s %8s\n", op, "weight", "requests",
           "req share", "GPU ms", "GPU share", "mean queue", "errors");
    for (int i = 0; i < 2; i++) {
        uint64_t reqs = vms[0].done + vms[1].done;

        printf("%-12s %-7u %9llu %9.1f%% %12.1f %11.1f%% %9.0f us %8llu%s%s\n",
               i == 0 ? "VM 1" : "VM 2", vms[i].weight, (unsigned long long)vms[i].done,
               reqs ? 100.0 * vms[i].done / reqs : 0.0,
               vms[i].exec_us / 1e3, total > 0 ? 100.0 * vms[i].exec_us / total : 0.0,
               vms[i].done ? (double)vms[i].queue_us / vms[i].done : 0.0,
               (unsigned long long)vms[i].errors, vms[i].fail ? " libvgpu: " : "",
               vms[i].fail ? strerror(-vms[i].fail) : "");
    }
    printf("GPU busy %.1f%% of the %.1f s window (sum of exec_us / wall time)\n",
           100.0 * total / (seconds * 1e6), seconds);

    bool ok = !vms[0].fail && !vms[1].fail && !vms[0].errors && !vms[1].errors &&
              vms[0].done > 0 && vms[1].done > 0 &&
              share >= TARGET - TOLERANCE && share <= TARGET + TOLERANCE;
    printf("%-4s  fairness %s: weight-3 VM got %.1f%% of GPU time (target %.0f +- %.0f)\n",
           ok ? "PASS" : "FAIL", op, 100 * share, 100 * TARGET, 100 * TOLERANCE);
    if (ok) {
        (*passed)++;
    } else {
        (*failed)++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *mediator = NULL, *backend = "cuda", *log = NULL, *ops = "both";
    double seconds = 5.0;
    char *extra[8];
    int nextra = 0;
    char sock[108], opt_sock[160], opt_backend[32];
    struct vm vms[2] = { { .weight = 3 }, { .weight = 1 } };
    unsigned passed = 0, failed = 0;
    pid_t med;
    int r;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            backend = argv[++i];
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--log") == 0 && i + 1 < argc) {
            log = argv[++i];
        } else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) {
            ops = argv[++i];
        } else if (strcmp(argv[i], "--mediator-arg") == 0 && i + 1 < argc && nextra < 8) {
            extra[nextra++] = argv[++i];
        } else if (argv[i][0] != '-' && !mediator) {
            mediator = argv[i];
        } else {
            fprintf(stderr, "usage: %s MEDIATOR [--backend B] [--seconds S] [--log FILE] "
                    "[--op sgemm|vector_add|both] [--mediator-arg ARG]...\n", argv[0]);
            return 2;
        }
    }
    if (!mediator || seconds <= 0 || seconds > 120) {
        fprintf(stderr, "%s: need the mediator's path and 0 < seconds <= 120\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    snprintf(sock, sizeof(sock), "/tmp/vgpu-fair-%d.sock", (int)getpid());
    snprintf(opt_sock, sizeof(opt_sock), "--socket-path=%s", sock);
    snprintf(opt_backend, sizeof(opt_backend), "--backend=%s", backend);
    {
        char *margv[4 + 8] = { (char *)mediator, opt_sock, opt_backend };
        for (int i = 0; i < nextra; i++) {
            margv[3 + i] = extra[i];
        }
        margv[3 + nextra] = NULL;
        med = spawn(margv, log);
    }
    if (med < 0) {
        printf("fork: %s\n0 passed, 1 failed\n", strerror(errno));
        return 1;
    }
    /* CUDA initialisation takes seconds; a mediator that cannot use the
     * backend exits instead (with --backend cuda: no usable GPU here). */
    for (int i = 0; i < 3000; i++) {
        struct stat sb;
        int status;

        if (stat(sock, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
            break;
        }
        if (waitpid(med, &status, WNOHANG) == med) {
            printf("the mediator exited before listening (%s %d)%s%s\n",
                   WIFEXITED(status) ? "exit status" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                   log ? "; see " : "", log ? log : "");
            printf("0 passed, 0 failed (skipped: backend %s unusable)\n", backend);
            return 77;
        }
        usleep(10000);
    }

    for (int i = 0; i < 2; i++) {
        char name[32];
        struct vgpu_open_opts o = {
            .transport = "sim", .socket_path = sock, .shm_size = 64ull << 20,
            .vm_id = 101 + (uint32_t)i, .priority = 0, .weight = vms[i].weight,
            .vm_name = name,
            .link_timeout_ms = 20000,   /* CUDA initialisation takes seconds */
        };
        snprintf(name, sizeof(name), "fair-w%u", vms[i].weight);
        r = vgpu_open(&o, &vms[i].dev);
        if (r < 0) {
            printf("FAIL  connect VM %d to %s: %s\n", i + 1, sock, vgpu_strerror(r));
            failed++;
            goto out;
        }
    }
    {
        struct vgpu_dev_info info;
        if (vgpu_get_info(vms[0].dev, &info) == 0) {
            printf("mediator backend %s, GPU \"%s\", max in flight %u per VM; %u in flight "
                   "per VM here, window %.1f s after %.1f s warm-up\n",
                   info.backend == VGPU_BACKEND_CUDA ? "cuda" : "cpu", info.gpu_name,
                   info.max_inflight, DEPTH, seconds, WARMUP_S);
            if (strcmp(backend, "cuda") == 0 && info.backend != VGPU_BACKEND_CUDA) {
                printf("FAIL  the mediator did not start the cuda backend\n");
                failed++;
                goto out;
            }
        }
    }
    if (strcmp(ops, "both") == 0 || strcmp(ops, "sgemm") == 0) {
        run_phase(vms, "sgemm", seconds, &passed, &failed);
    }
    if (strcmp(ops, "both") == 0 || strcmp(ops, "vector_add") == 0) {
        run_phase(vms, "vector_add", seconds, &passed, &failed);
    }
    printf("\nmediator statistics:\n");
    print_status(mediator, sock);
out:
    for (int i = 0; i < 2; i++) {
        vgpu_close(vms[i].dev);
    }
    r = reap(med);
    if (WIFSIGNALED(r) && WTERMSIG(r) != SIGTERM) {
        printf("FAIL  mediator died of signal %d\n", WTERMSIG(r));
        failed++;
    }
    unlink(sock);
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
