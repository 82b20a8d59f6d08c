/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-mediator: the host daemon that executes the requests of every vgpu
 * device on one backend. Does not daemonize; SIGTERM/SIGINT stop it cleanly,
 * SIGUSR1 prints the statistics, SIGHUP re-reads the --config file.
 * `--status` queries a running instance.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mediator.h"
#ifdef HAVE_MICROHTTPD
#include "metrics.h"
#endif
#include "notify.h"
#include "util.h"
#ifdef HAVE_CUDA
#include "cuda/worker.h"
#endif

/* ---------------------------------------------------------------- --status */

static int status_query(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct vgpu_msg_hdr h = { .type = VGPU_MSG_STATS_REQ, .size = sizeof(h), .seq = 1 };
    uint64_t deadline = vgpu_now_ns() + 5000000000ull;
    char *body = NULL;
    int fd, r;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "vgpu-mediator --status: socket path too long\n");
        return 1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("socket");
        return 1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "vgpu-mediator --status: no mediator at %s: %s\n", path, strerror(errno));
        goto err;
    }
    if (send(fd, &h, sizeof(h), MSG_NOSIGNAL) != (ssize_t)sizeof(h)) {
        fprintf(stderr, "vgpu-mediator --status: send: %s\n", strerror(errno));
        goto err;
    }
    r = vgpu_read_full(fd, &h, sizeof(h), deadline);
    if (r < 0) {
        fprintf(stderr, "vgpu-mediator --status: no reply: %s\n", strerror(-r));
        goto err;
    }
    if (h.size < sizeof(h) || h.size > VGPU_MSG_MAX_SIZE ||
        (h.type != VGPU_MSG_STATS_REPLY && h.type != VGPU_MSG_ERROR)) {
        fprintf(stderr, "vgpu-mediator --status: unexpected reply type %u size %u\n", h.type, h.size);
        goto err;
    }
    body = malloc(h.size - sizeof(h) + 1);
    if (!body) {
        goto err;
    }
    r = vgpu_read_full(fd, body, h.size - sizeof(h), deadline);
    if (r < 0) {
        fprintf(stderr, "vgpu-mediator --status: short reply: %s\n", strerror(-r));
        goto err;
    }
    if (h.type == VGPU_MSG_ERROR) {
        /* body: code (4), ref_seq (4), text (120) */
        fprintf(stderr, "vgpu-mediator --status: the mediator refused: %.120s\n",
                h.size == sizeof(struct vgpu_msg_error) ? body + 8 : "?");
        goto err;
    }
    fwrite(body, 1, h.size - sizeof(h), stdout);
    fflush(stdout);
    free(body);
    close(fd);
    return 0;
err:
    free(body);
    close(fd);
    return 1;
}

/* ---------------------------------------------------------------- backend */

static int select_backend(struct vgpu_mediator *m)
{
    const struct vgpu_backend_config bc = {
        .gpu_index = m->cfg.gpu_index,
        .all_gpus = !m->cfg.gpu_given,
        .gpu_unused = m->cfg.gpu_unused,
        .vm_mem_quota = m->cfg.mem_quota_mib << 20,
        .request_timeout_ms = m->cfg.timeout_ms,
    };
    const char *want = m->cfg.backend;
    const char *why = NULL;
    int r;

    if (strcmp(want, "cpu") != 0) {
#ifdef HAVE_CUDA
        /* CUDA runs in a restartable worker process per VM (proxy.c): the
         * only way back from a sticky GPU fault. */
        vgpu_cuda_proxy_set_spin_ns(vgpu_config_spin_ns(&m->cfg));
        r = vgpu_backend_cuda.init(&bc, &m->backend, &why);
        if (r == 0) {
            m->bops = &vgpu_backend_cuda;
            return 0;
        }
        if (strcmp(want, "cuda") == 0) {
            log_error("backend cuda: unusable: %s (%s)", why ? why : "no reason given",
                      strerror(-r));
            return r;
        }
        log_warn("**************************************************************");
        log_warn("backend auto: CUDA unusable (%s); FALLING BACK TO THE CPU BACKEND",
                 why ? why : strerror(-r));
        log_warn("**************************************************************");
#else
        if (strcmp(want, "cuda") == 0) {
            log_error("backend cuda: this vgpu-mediator was built without CUDA (no nvcc at build time)");
            return -ENODEV;
        }
        log_warn("**************************************************************");
        log_warn("backend auto: built without CUDA (no nvcc at build time); USING THE CPU BACKEND");
        log_warn("**************************************************************");
#endif
    }
    why = NULL;
    r = vgpu_backend_cpu.init(&bc, &m->backend, &why);
    if (r < 0) {
        log_error("backend cpu: init failed: %s (%s)", why ? why : "no reason given", strerror(-r));
        return r;
    }
    m->bops = &vgpu_backend_cpu;
    return 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    struct vgpu_mediator *m;
    sigset_t mask;
    unsigned n_exec;
    int r, ret = 1;

#ifdef HAVE_CUDA
    /* The CUDA backend's worker process: before anything else. */
    if (argc == 2 && strncmp(argv[1], VGPU_WORKER_ARG, strlen(VGPU_WORKER_ARG)) == 0) {
        return vgpu_cuda_worker_main(argv[1] + strlen(VGPU_WORKER_ARG));
    }
#endif

    m = calloc(1, sizeof(*m));
    if (!m) {
        fprintf(stderr, "vgpu-mediator: out of memory\n");
        return 1;
    }
    m->listen_fd = m->epoll_fd = m->signal_fd = m->admin_fd = -1;
    r = vgpu_config_parse_args(&m->cfg, argc, argv);
    if (r) {
        free(m);
        return r > 0 ? 0 : 2;
    }
    vgpu_log_set_level(m->cfg.log_level);
    if (m->cfg.check_config) {
        ret = vgpu_config_check(m->cfg.check_config, argv[0]) == 0 ? 0 : 1;
        vgpu_config_free(&m->cfg);
        free(m);
        return ret;
    }
    if (m->cfg.status) {
        ret = status_query(m->cfg.socket_path);
        free(m);
        return ret;
    }
    if (m->cfg.config_file && vgpu_config_load_file(&m->cfg, m->cfg.config_file) < 0) {
        vgpu_config_free(&m->cfg);
        free(m);
        return 2;
    }

    /* Signals go through the epoll loop; every thread inherits the mask. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    m->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (m->signal_fd < 0) {
        log_error("signalfd: %s", strerror(errno));
        goto out_cfg;
    }

    pthread_mutex_init(&m->lock, NULL);
    {
        /* Timed waits against vgpu_now_ns(), which is CLOCK_MONOTONIC. */
        pthread_condattr_t ca;

        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&m->work_cond, &ca);
        pthread_condattr_destroy(&ca);
    }
    vgpu_sched_init(&m->sched, (uint64_t)m->cfg.quantum_us * 1000,
                    (uint64_t)m->cfg.aging_ms * 1000000);
    m->inline_max_ns = (uint64_t)m->cfg.inline_max_us * 1000;
    m->slice_ns = (uint64_t)m->cfg.slice_us * 1000;
    for (unsigned i = 0; i < VGPU_OP_COUNT; i++) {
        m->cost_ratio[i] = 1024;    /* the cost model as it is, until measured */
    }
    m->spin_cap_ns = vgpu_config_spin_ns(&m->cfg);
    m->next_session_id = 1;
    m->start_ns = vgpu_now_ns();
    m->conn_rl = (struct vgpu_ratelimit)VGPU_RATELIMIT_INIT(5000, 20);

    if (select_backend(m) < 0) {
        goto out_sig;
    }
    m->bops->gpu_info(m->backend, &m->gpu);
    m->gpu.name[sizeof(m->gpu.name) - 1] = '\0';

    r = vgpu_server_open(m);
    if (r < 0) {
        goto out_backend;
    }
    /* cuda: one executor admits by priority and weight, three more run
     * requests that waited --max-wait-us beside it, each in its VM's own
     * worker (mostly asleep on it). */
    n_exec = m->cfg.executors ? m->cfg.executors : (m->bops->kind == VGPU_BACKEND_CUDA ? 8 : 2);
    m->n_fair = m->bops->fair_executors && m->bops->fair_executors < n_exec
                    ? m->bops->fair_executors : n_exec;
    m->max_wait_ns = (uint64_t)m->cfg.max_wait_us * 1000;
    r = vgpu_exec_start(m, n_exec);
    if (r < 0) {
        goto out_server;
    }
#ifdef HAVE_MICROHTTPD
    r = vgpu_metrics_start(m);
#else
    r = 0;
    if (m->cfg.metrics_listen) {
        log_error("--metrics-listen: this vgpu-mediator was built without libmicrohttpd "
                  "(libmicrohttpd-dev at build time)");
        r = -ENOTSUP;
    }
#endif
    if (r < 0) {
        goto out_exec;
    }
    log_info("vgpu-mediator %s ready: backend %s, GPU '%s' (%llu MiB, %u SMs), socket %s (0660),"
             " admin socket %s (%04o)", VGPU_VERSION, m->bops->name, m->gpu.name,
             (unsigned long long)(m->gpu.total_mem >> 20), m->gpu.sm_count, m->cfg.socket_path,
             m->cfg.admin_socket_path ? m->cfg.admin_socket_path : "none",
             m->cfg.admin_socket_path ? m->cfg.admin_socket_mode : 0);
    log_info("executors %u (%u by weight, the others after %u us of waiting),"
             " max-inflight %u/VM, max-sessions %u, quantum %u us, aging %u ms,"
             " inline below %u us, spin up to %llu us, mem-quota %llu MiB, timeout %u ms,"
             " slices of %u us, %u config override(s)",
             n_exec, m->n_fair, m->cfg.max_wait_us, m->cfg.max_inflight, m->cfg.max_sessions,
             m->cfg.quantum_us,
             m->cfg.aging_ms, m->cfg.inline_max_us, (unsigned long long)(m->spin_cap_ns / 1000),
             (unsigned long long)m->cfg.mem_quota_mib,
             m->cfg.timeout_ms, m->cfg.slice_us, m->cfg.n_overrides);
    vgpu_notify_ready(m);

    r = vgpu_server_run(m);
    ret = r < 0 ? 1 : 0;
    vgpu_notify_stopping();

#ifdef HAVE_MICROHTTPD
    vgpu_metrics_stop(m);   /* its thread reads the sessions: before they go */
#endif
    vgpu_server_dump_stats(m);
out_exec:
    vgpu_exec_stop(m);
out_server:
    vgpu_server_close(m);
out_backend:
    m->bops->fini(m->backend);
    log_info("vgpu-mediator stopped");
out_sig:
    close(m->signal_fd);
    pthread_cond_destroy(&m->work_cond);
    pthread_mutex_destroy(&m->lock);
out_cfg:
    vgpu_config_free(&m->cfg);
    free(m);
    return ret;
}
