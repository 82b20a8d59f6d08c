/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * --metrics-listen ADDR:PORT: Prometheus metrics at /metrics, served by
 * libmicrohttpd on its own thread (never the I/O thread, so a slow or
 * greedy scraper cannot delay a doorbell). A scrape copies what it needs
 * under m->lock (counters, and cumulative histogram buckets per VM) and
 * formats the text after dropping it. Connections are capped and time out.
 * Built only with libmicrohttpd (HAVE_MICROHTTPD, see main.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mediator.h"
#include "metrics.h"
#include "util.h"

#ifndef VGPU_VERSION
#define VGPU_VERSION "unknown"
#endif

#include <microhttpd.h>

#define METRICS_MAX_CONNS    16
#define METRICS_CONN_TIMEOUT 5     /* s: a client that stops reading is dropped */
/* A page is rendered at most this often, however often it is scraped: each
 * rendering takes the mediator's lock to copy every VM's statistics, which a
 * scrape storm would otherwise turn into contention on the VMs' path
 * (3200 scrapes/s on 2 cores raised a VM's NOP p99 from 70 to 920 us). */
#define METRICS_MIN_AGE_NS   (250ull * 1000 * 1000)

/* Histogram bounds, seconds and ns: 1 us .. 10 s. */
#define NLE 10
static const uint64_t le_ns[NLE] = {
    1000, 10000, 50000, 100000, 500000, 1000000, 10000000, 100000000, 1000000000,
    10000000000ull,
};
static const char *const le_s[NLE] = {
    "1e-06", "1e-05", "5e-05", "0.0001", "0.0005", "0.001", "0.01", "0.1", "1", "10",
};

struct hist_snap {
    uint64_t le[NLE], count, sum_ns;
};

struct vm_snap {
    uint32_t vm_id, prio, weight, inflight;
    char name[64];
    uint64_t requests, completions[VGPU_S_STATUS_COUNT], bytes_in, bytes_out, charged_ns;
    uint64_t kicks;
    struct hist_snap queue, exec;
};

static void hist_snap(struct hist_snap *o, const struct vgpu_hist *h)
{
    for (int i = 0; i < NLE; i++) {
        o->le[i] = vgpu_hist_count_le(h, le_ns[i]);
    }
    o->count = h->count;
    o->sum_ns = h->sum;
}

/* Label values: \, " and newline escaped (the names are printable already). */
static void label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            fputc('\\', f);
            fputc(*s, f);
        } else if (*s == '\n') {
            fputs("\\n", f);
        } else {
            fputc(*s, f);
        }
    }
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void vm_labels(FILE *f, const struct vm_snap *v)
{
    fprintf(f, "vm_id=\"%u\",vm_name=\"", v->vm_id);
    label(f, v->name);
    fputc('"', f);
}

static void hist_out(FILE *f, const char *name, const struct vm_snap *v,
                     const struct hist_snap *h)
{
    for (int i = 0; i < NLE; i++) {
        fprintf(f, "%s_bucket{", name);
        vm_labels(f, v);
        fprintf(f, ",le=\"%s\"} %llu\n", le_s[i], (unsigned long long)h->le[i]);
    }
    fprintf(f, "%s_bucket{", name);
    vm_labels(f, v);
    fprintf(f, ",le=\"+Inf\"} %llu\n", (unsigned long long)h->count);
    fprintf(f, "%s_sum{", name);
    vm_labels(f, v);
    fprintf(f, "} %.9f\n", (double)h->sum_ns / 1e9);
    fprintf(f, "%s_count{", name);
    vm_labels(f, v);
    fprintf(f, "} %llu\n", (unsigned long long)h->count);
}

#define PER_VM(name, type, help, fmt, expr)                                  \
    do {                                                                     \
        head(f, name, type, help);                                           \
        for (unsigned i = 0; i < n; i++) {                                   \
            const struct vm_snap *v = &vms[i];                               \
            fprintf(f, "%s{", name);                                         \
            vm_labels(f, v);                                                 \
            fprintf(f, "} " fmt "\n", expr);                                 \
        }                                                                    \
    } while (0)

/* The exposition text (malloc'ed, *len bytes), or NULL. Lock not held. */
static char *metrics_text(struct vgpu_mediator *m, size_t *len)
{
    struct vgpu_gpu_info gi = m->gpu;
    struct vm_snap *vms;
    unsigned n = 0, nsessions, max_sessions, queued, running;
    uint64_t up, opened, closed, rejected, charged_all;
    char *buf = NULL;
    FILE *f;

    /* At most once a second: the CUDA backend asks its worker, and scrapes
     * may come far more often. Only this (one) server thread gets here. */
    static struct vgpu_gpu_info cached;
    static uint64_t cached_ns;
    uint64_t now = vgpu_now_ns();

    if (m->bops && m->backend && (!cached_ns || now - cached_ns >= 1000000000ull)) {
        m->bops->gpu_info(m->backend, &cached);
        cached.name[sizeof(cached.name) - 1] = '\0';
        cached_ns = now;
    }
    if (cached_ns) {
        gi = cached;
    }
    pthread_mutex_lock(&m->lock);
    vms = calloc(m->nsessions + 1, sizeof(*vms));
    if (!vms) {
        pthread_mutex_unlock(&m->lock);
        return NULL;
    }
    charged_all = m->closed_charged_ns;
    for (struct vgpu_session *s = m->conns; s; s = s->next) {
        struct vm_snap *v;

        if (s->state != VGPU_CONN_ACTIVE || n >= m->nsessions) {
            continue;
        }
        v = &vms[n++];
        v->vm_id = s->vm_id;
        v->prio = s->prio;
        v->weight = s->weight;
        v->inflight = s->taken;
        memcpy(v->name, s->vm_name, sizeof(v->name));
        v->name[sizeof(v->name) - 1] = '\0';
        v->requests = s->st.requests;
        memcpy(v->completions, s->st.completions, sizeof(v->completions));
        v->bytes_in = s->st.bytes_in;
        v->bytes_out = s->st.bytes_out;
        v->charged_ns = s->ent.charged_ns;
        v->kicks = s->st.kicks;
        hist_snap(&v->queue, &s->st.queue_ns);
        hist_snap(&v->exec, &s->st.exec_ns);
        charged_all += s->ent.charged_ns;
    }
    nsessions = m->nsessions;
    max_sessions = m->cfg.max_sessions;
    queued = m->sched.queued;
    running = m->sched.running;
    up = vgpu_now_ns() - m->start_ns;
    opened = m->sessions_opened;
    closed = m->sessions_closed;
    rejected = m->conns_rejected;
    pthread_mutex_unlock(&m->lock);

    f = open_memstream(&buf, len);
    if (!f) {
        free(vms);
        return NULL;
    }
    head(f, "vgpu_mediator_info", "gauge", "The mediator's version and backend.");
    fprintf(f, "vgpu_mediator_info{version=\"%s\",backend=\"%s\"} 1\n", VGPU_VERSION,
            m->bops ? m->bops->name : "none");
    head(f, "vgpu_mediator_uptime_seconds", "gauge", "Time since the mediator started.");
    fprintf(f, "vgpu_mediator_uptime_seconds %.3f\n", (double)up / 1e9);
    head(f, "vgpu_sessions", "gauge", "VMs attached.");
    fprintf(f, "vgpu_sessions %u\n", nsessions);
    head(f, "vgpu_sessions_max", "gauge", "VMs allowed (--max-sessions).");
    fprintf(f, "vgpu_sessions_max %u\n", max_sessions);
    head(f, "vgpu_sessions_opened_total", "counter", "Sessions attached since start.");
    fprintf(f, "vgpu_sessions_opened_total %llu\n", (unsigned long long)opened);
    head(f, "vgpu_sessions_closed_total", "counter", "Sessions closed since start.");
    fprintf(f, "vgpu_sessions_closed_total %llu\n", (unsigned long long)closed);
    head(f, "vgpu_connections_rejected_total", "counter", "Connections refused or failed.");
    fprintf(f, "vgpu_connections_rejected_total %llu\n", (unsigned long long)rejected);
    head(f, "vgpu_requests_queued", "gauge", "Requests waiting in the scheduler.");
    fprintf(f, "vgpu_requests_queued %u\n", queued);
    head(f, "vgpu_requests_running", "gauge", "Requests executing.");
    fprintf(f, "vgpu_requests_running %u\n", running);

    head(f, "vgpu_gpu_info", "gauge", "The GPU the mediator runs requests on.");
    fprintf(f, "vgpu_gpu_info{gpu=\"%d\",name=\"", m->cfg.gpu_index);
    label(f, gi.name);
    fprintf(f, "\"} 1\n");
    head(f, "vgpu_gpu_memory_total_bytes", "gauge", "Device memory.");
    fprintf(f, "vgpu_gpu_memory_total_bytes{gpu=\"%d\"} %llu\n", m->cfg.gpu_index,
            (unsigned long long)gi.total_mem);
    head(f, "vgpu_gpu_memory_free_bytes", "gauge", "Device memory free, as last reported.");
    fprintf(f, "vgpu_gpu_memory_free_bytes{gpu=\"%d\"} %llu\n", m->cfg.gpu_index,
            (unsigned long long)gi.free_mem);
    head(f, "vgpu_gpu_busy_seconds_total", "counter",
         "GPU time charged to every session, closed ones included.");
    fprintf(f, "vgpu_gpu_busy_seconds_total{gpu=\"%d\"} %.9f\n", m->cfg.gpu_index,
            (double)charged_all / 1e9);

    PER_VM("vgpu_vm_priority", "gauge", "Priority class in effect (0 highest).", "%u", v->prio);
    PER_VM("vgpu_vm_weight", "gauge", "Share within the priority class.", "%u", v->weight);
    PER_VM("vgpu_vm_inflight_requests", "gauge", "Requests taken, not completed.", "%u",
           v->inflight);
    PER_VM("vgpu_vm_requests_total", "counter", "Requests taken from the VM's ring.", "%llu",
           (unsigned long long)v->requests);
    PER_VM("vgpu_vm_doorbells_total", "counter", "Doorbells the VM rang.", "%llu",
           (unsigned long long)v->kicks);
    PER_VM("vgpu_vm_input_bytes_total", "counter", "Input bytes of successful requests.", "%llu",
           (unsigned long long)v->bytes_in);
    PER_VM("vgpu_vm_output_bytes_total", "counter", "Output bytes of successful requests.",
           "%llu", (unsigned long long)v->bytes_out);
    PER_VM("vgpu_vm_gpu_seconds_total", "counter", "GPU time charged by the scheduler.", "%.9f",
           (double)v->charged_ns / 1e9);
    head(f, "vgpu_vm_completions_total", "counter", "Requests completed, by status.");
    for (unsigned i = 0; i < n; i++) {
        for (int st = 0; st < VGPU_S_STATUS_COUNT; st++) {
            fprintf(f, "vgpu_vm_completions_total{");
            vm_labels(f, &vms[i]);
            fprintf(f, ",status=\"%s\"} %llu\n", vgpu_status_name(st),
                    (unsigned long long)vms[i].completions[st]);
        }
    }
    head(f, "vgpu_vm_queue_wait_seconds", "histogram", "Wait from the ring to execution.");
    for (unsigned i = 0; i < n; i++) {
        hist_out(f, "vgpu_vm_queue_wait_seconds", &vms[i], &vms[i].queue);
    }
    head(f, "vgpu_vm_execution_seconds", "histogram", "Execution time of requests.");
    for (unsigned i = 0; i < n; i++) {
        hist_out(f, "vgpu_vm_execution_seconds", &vms[i], &vms[i].exec);
    }
    free(vms);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static char *page;          /* the last rendering */
static size_t page_len;
static uint64_t page_ns;

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req_cls)
{
    static const char not_found[] = "not found: try /metrics\n";
    static const char bad_method[] = "GET or HEAD only\n";
    struct vgpu_mediator *m = cls;
    struct MHD_Response *r;
    enum MHD_Result ret;
    unsigned code = MHD_HTTP_OK;
    size_t len = 0;
    char *text;

    (void)version;
    (void)upload;
    (void)req_cls;
    if (*upload_size) {
        *upload_size = 0;   /* a body is ignored, never buffered */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        code = MHD_HTTP_METHOD_NOT_ALLOWED;
        r = MHD_create_response_from_buffer(sizeof(bad_method) - 1, (void *)bad_method,
                                            MHD_RESPMEM_PERSISTENT);
    } else if (strcmp(url, "/metrics") != 0) {
        code = MHD_HTTP_NOT_FOUND;
        r = MHD_create_response_from_buffer(sizeof(not_found) - 1, (void *)not_found,
                                            MHD_RESPMEM_PERSISTENT);
    } else {
        /* One MHD thread serves every connection: the cache needs no lock. */
        uint64_t now = vgpu_now_ns();

        if (!page || now - page_ns >= METRICS_MIN_AGE_NS) {
            text = metrics_text(m, &len);
            if (!text) {
                return MHD_NO;      /* out of memory: drop the connection */
            }
            free(page);
            page = text;
            page_len = len;
            page_ns = now;
        }
        r = MHD_create_response_from_buffer(page_len, page, MHD_RESPMEM_MUST_COPY);
    }
    if (!r) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", code == MHD_HTTP_OK
                            ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain");
    ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static struct MHD_Daemon *daemon_handle;

int vgpu_metrics_start(struct vgpu_mediator *m)
{
    struct sockaddr_storage ss;
    socklen_t sl;

    if (!m->cfg.metrics_listen) {
        return 0;
    }
    if (vgpu_config_parse_listen(m->cfg.metrics_listen, &ss, &sl) < 0) {
        log_error("--metrics-listen %s: not ADDR:PORT", m->cfg.metrics_listen);
        return -EINVAL;
    }
    daemon_handle = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
            (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
        0, NULL, NULL, answer, m,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_CONN_TIMEOUT,
        MHD_OPTION_END);
    if (!daemon_handle) {
        log_error("--metrics-listen %s: cannot listen (address in use or not local?)",
                  m->cfg.metrics_listen);
        return -EADDRNOTAVAIL;
    }
    log_info("metrics: http://%s/metrics", m->cfg.metrics_listen);
    return 0;
}

void vgpu_metrics_stop(struct vgpu_mediator *m)
{
    (void)m;
    if (daemon_handle) {
        MHD_stop_daemon(daemon_handle);
        daemon_handle = NULL;
    }
    free(page);
    page = NULL;
}
