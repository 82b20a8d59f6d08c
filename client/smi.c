/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
#include "smi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vgpu/abi.h"

void smi_snapshot_free(struct smi_snapshot *snap)
{
    free(snap->vms);
    memset(snap, 0, sizeof(*snap));
}

/* Peer strings go to terminals: terminated, printable ASCII only. */
static void clean_str(char *s, size_t n)
{
    s[n - 1] = '\0';
    for (size_t i = 0; i < n && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f) {
            s[i] = '?';
        }
    }
}

int smi_decode_page(const void *msg, size_t len, struct smi_snapshot *snap, bool *more,
                    uint32_t *next)
{
    const uint8_t *p = msg;
    struct vgpu_msg_stats_data d;
    uint64_t want;

    if (len < sizeof(d)) {
        return -EPROTO;
    }
    memcpy(&d, p, sizeof(d));
    if (d.hdr.type != VGPU_MSG_STATS_DATA || d.hdr.size != len ||
        d.mediator_size < sizeof(struct vgpu_stats_mediator) ||
        d.vm_size < VGPU_STATS_VM_SIZE_1_2) {
        return -EPROTO;
    }
    want = sizeof(d) + (uint64_t)d.mediator_size + (uint64_t)d.count * d.vm_size;
    if (want != len) {
        return -EPROTO;
    }
    if (snap->n + d.count > snap->cap) {
        unsigned cap = snap->cap ? snap->cap : 64;
        struct vgpu_stats_vm *v;

        while (cap < snap->n + d.count) {
            if (cap > (1u << 24)) {
                return -ENOMEM;
            }
            cap *= 2;
        }
        v = realloc(snap->vms, (size_t)cap * sizeof(*v));
        if (!v) {
            return -ENOMEM;
        }
        snap->vms = v;
        snap->cap = cap;
    }
    if (snap->pages == 0) {
        memcpy(&snap->med, p + sizeof(d), sizeof(snap->med));
        clean_str(snap->med.version, sizeof(snap->med.version));
        clean_str(snap->med.backend, sizeof(snap->med.backend));
        clean_str(snap->med.gpu_name, sizeof(snap->med.gpu_name));
        clean_str(snap->med.health, sizeof(snap->med.health));
        snap->realtime_ns = d.realtime_ns;
    }
    for (uint32_t i = 0; i < d.count; i++) {
        struct vgpu_stats_vm *v = &snap->vms[snap->n];
        uint32_t prev_id = snap->n ? snap->vms[snap->n - 1].session_id : 0;

        /* A 1.2 mediator's records are shorter: what they lack reads 0. */
        memset(v, 0, sizeof(*v));
        memcpy(v, p + sizeof(d) + d.mediator_size + (size_t)i * d.vm_size,
               d.vm_size < sizeof(*v) ? d.vm_size : sizeof(*v));
        if (snap->n && v->session_id <= prev_id) {
            return -EPROTO;     /* out of order: a record twice, or a page overlap */
        }
        clean_str(v->vm_name, sizeof(v->vm_name));
        snap->n++;
    }
    /* The cursor must move past every record received, or a faulty peer
     * would have us ask for the same page forever. */
    if ((d.flags & VGPU_STATS_MORE) &&
        (d.count == 0 || d.next <= snap->vms[snap->n - 1].session_id)) {
        return -EPROTO;
    }
    snap->pages++;
    *more = d.flags & VGPU_STATS_MORE;
    *next = d.next;
    return 0;
}

/* ---------------------------------------------------------------- fields */

struct field {
    const char *name;
    const char *unit;
    const char *help;
};

enum {
    V_SESSION, V_VM_ID, V_NAME, V_GPU, V_PID, V_STATE, V_PRIO, V_WEIGHT, V_INFLIGHT, V_INFLIGHT_MAX,
    V_REQUESTS, V_RATE, V_OK, V_ERRORS, V_BYTES_IN, V_BYTES_OUT, V_QUEUE_P50, V_QUEUE_P99,
    V_EXEC_P50, V_EXEC_P99, V_GPU_TIME, V_SHARE, V_MEM_USED, V_MEM_QUOTA, V_CONNECTED, V_KICKS,
    V_RING_CORRUPT,
    V_STATUS0,          /* status.<name>: V_STATUS0 + enum vgpu_status */
    V_COUNT = V_STATUS0 + VGPU_S_STATUS_COUNT,
};

static const struct field vm_fields[V_STATUS0] = {
    [V_SESSION]     = { "session_id", "", "the mediator's session number" },
    [V_VM_ID]       = { "vm_id", "", "the VM's id (from its device)" },
    [V_NAME]        = { "name", "", "the VM's name" },
    [V_GPU]         = { "gpu", "", "index of the GPU it runs on" },
    [V_PID]         = { "worker_pid", "", "its GPU worker process, as nvidia-smi lists it (0: none)" },
    [V_STATE]       = { "state", "", "active, or closed (recently)" },
    [V_PRIO]        = { "priority", "", "priority class in effect (0 highest)" },
    [V_WEIGHT]      = { "weight", "", "share within the class" },
    [V_INFLIGHT]    = { "inflight", "", "requests taken, not completed" },
    [V_INFLIGHT_MAX] = { "inflight.max", "", "the in-flight cap" },
    [V_REQUESTS]    = { "requests", "", "requests taken from the ring" },
    [V_RATE]        = { "requests.rate", "1/s", "requests per second (loop: since the last sample)" },
    [V_OK]          = { "ok", "", "requests completed ok" },
    [V_ERRORS]      = { "errors", "", "requests completed with an error" },
    [V_BYTES_IN]    = { "bytes_in", "MiB", "input of successful requests" },
    [V_BYTES_OUT]   = { "bytes_out", "MiB", "output of successful requests" },
    [V_QUEUE_P50]   = { "queue.p50", "us", "wait before execution, median" },
    [V_QUEUE_P99]   = { "queue.p99", "us", "wait before execution, 99th percentile" },
    [V_EXEC_P50]    = { "exec.p50", "us", "execution time, median" },
    [V_EXEC_P99]    = { "exec.p99", "us", "execution time, 99th percentile" },
    [V_GPU_TIME]    = { "gpu_time", "ms", "GPU time charged by the scheduler" },
    [V_SHARE]       = { "gpu_time.share", "%", "share of the GPU time of the VMs listed" },
    [V_MEM_USED]    = { "memory.used", "MiB", "device memory held" },
    [V_MEM_QUOTA]   = { "memory.quota", "MiB", "device memory allowed" },
    [V_CONNECTED]   = { "connected", "s", "time since it attached" },
    [V_KICKS]       = { "doorbells", "", "doorbells rung" },
    [V_RING_CORRUPT] = { "ring_corrupt", "", "ring entries found inconsistent" },
};

enum {
    G_INDEX, G_NAME, G_BACKEND, G_HEALTH, G_MEM_TOTAL, G_MEM_USED, G_MEM_FREE, G_UTIL,
    G_SESSIONS, G_SESSIONS_MAX, G_CONNECTIONS, G_QUEUED, G_RUNNING, G_EXECUTORS, G_OPENED,
    G_CLOSED, G_REJECTED, G_GPU_TIME, G_SMS, G_CC, G_VERSION, G_PID, G_UPTIME,
    G_COUNT,
};

static const struct field gpu_fields[G_COUNT] = {
    [G_INDEX]       = { "index", "", "GPU index" },
    [G_NAME]        = { "name", "", "GPU name" },
    [G_BACKEND]     = { "backend", "", "the mediator's backend (cuda, cpu)" },
    [G_HEALTH]      = { "health", "", "the backend's health line" },
    [G_MEM_TOTAL]   = { "memory.total", "MiB", "device memory" },
    [G_MEM_USED]    = { "memory.used", "MiB", "device memory in use (as last reported)" },
    [G_MEM_FREE]    = { "memory.free", "MiB", "device memory free (as last reported)" },
    [G_UTIL]        = { "utilization.gpu", "%", "GPU time charged per wall time (loop: since the "
                        "last sample; above 100 with concurrent execution)" },
    [G_SESSIONS]    = { "sessions", "", "VMs attached" },
    [G_SESSIONS_MAX] = { "sessions.max", "", "VMs allowed" },
    [G_CONNECTIONS] = { "connections", "", "connections, admin ones included" },
    [G_QUEUED]      = { "requests.queued", "", "requests waiting in the scheduler" },
    [G_RUNNING]     = { "requests.running", "", "requests executing" },
    [G_EXECUTORS]   = { "executors", "", "executor threads" },
    [G_OPENED]      = { "sessions.opened", "", "sessions ever attached" },
    [G_CLOSED]      = { "sessions.closed", "", "sessions ever closed" },
    [G_REJECTED]    = { "connections.rejected", "", "connections refused" },
    [G_GPU_TIME]    = { "gpu_time", "ms", "GPU time charged to every session ever" },
    [G_SMS]         = { "sms", "", "multiprocessors (cpu: cores)" },
    [G_CC]          = { "compute_cap", "", "compute capability" },
    [G_VERSION]     = { "mediator.version", "", "vgpu-mediator's version" },
    [G_PID]         = { "mediator.pid", "", "vgpu-mediator's process id" },
    [G_UPTIME]      = { "mediator.uptime", "s", "time since the mediator started" },
};

int smi_field_count(enum smi_kind kind)
{
    return kind == SMI_VM ? V_COUNT : G_COUNT;
}

const char *smi_field_name(enum smi_kind kind, int id)
{
    static char status_names[VGPU_S_STATUS_COUNT][32];

    if (kind == SMI_GPU) {
        return id >= 0 && id < G_COUNT ? gpu_fields[id].name : "?";
    }
    if (id >= V_STATUS0 && id < V_COUNT) {
        char *b = status_names[id - V_STATUS0];
        if (!b[0]) {
            snprintf(b, sizeof(status_names[0]), "status.%s", vgpu_status_name(id - V_STATUS0));
        }
        return b;
    }
    return id >= 0 && id < V_STATUS0 ? vm_fields[id].name : "?";
}

const char *smi_field_unit(enum smi_kind kind, int id)
{
    if (kind == SMI_GPU) {
        return id >= 0 && id < G_COUNT ? gpu_fields[id].unit : "";
    }
    return id >= 0 && id < V_STATUS0 ? vm_fields[id].unit : "";
}

const char *smi_field_help(enum smi_kind kind, int id)
{
    if (kind == SMI_GPU) {
        return id >= 0 && id < G_COUNT ? gpu_fields[id].help : "";
    }
    if (id >= V_STATUS0 && id < V_COUNT) {
        return "requests completed with this status";
    }
    return id >= 0 && id < V_STATUS0 ? vm_fields[id].help : "";
}

int smi_parse_fields(enum smi_kind kind, const char *list, int *ids, char *bad, size_t bad_len)
{
    const char *p = list;
    int n = 0;

    if (!list || !*list) {
        snprintf(bad, bad_len, "(empty list)");
        return -EINVAL;
    }
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int found = -1;

        /* nvidia-smi allows spaces after commas */
        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ') {
            len--;
        }
        for (int id = 0; id < smi_field_count(kind); id++) {
            const char *name = smi_field_name(kind, id);
            if (strlen(name) == len && strncmp(name, p, len) == 0) {
                found = id;
                break;
            }
        }
        if (found < 0) {
            snprintf(bad, bad_len, "%.*s", (int)(len > 64 ? 64 : len), p);
            if (!len) {
                snprintf(bad, bad_len, "(empty name)");
            }
            return -EINVAL;
        }
        if (n >= SMI_MAX_FIELDS) {
            snprintf(bad, bad_len, "(more than %d fields)", SMI_MAX_FIELDS);
            return -EINVAL;
        }
        ids[n++] = found;
        if (!end) {
            return n;
        }
        p = end + 1;
    }
}

void smi_ctx_init(struct smi_ctx *c, const struct smi_snapshot *cur,
                  const struct smi_snapshot *prev)
{
    c->cur = cur;
    c->prev = prev;
    c->gpu_time_sum_ns = 0;
    for (unsigned i = 0; i < cur->n; i++) {
        const struct vgpu_stats_vm *v = &cur->vms[i];
        const struct vgpu_stats_vm *o = NULL;

        if (prev) {
            /* both in session-id order: binary search */
            unsigned lo = 0, hi = prev->n;
            while (lo < hi) {
                unsigned mid = (lo + hi) / 2;
                if (prev->vms[mid].session_id < v->session_id) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            if (lo < prev->n && prev->vms[lo].session_id == v->session_id) {
                o = &prev->vms[lo];
            }
        }
        c->gpu_time_sum_ns += v->gpu_time_ns - (o && o->gpu_time_ns <= v->gpu_time_ns
                                                ? o->gpu_time_ns : 0);
    }
}

static const struct vgpu_stats_vm *prev_of(const struct smi_ctx *c, const struct vgpu_stats_vm *v)
{
    unsigned lo = 0, hi;

    if (!c->prev) {
        return NULL;
    }
    hi = c->prev->n;
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (c->prev->vms[mid].session_id < v->session_id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < c->prev->n && c->prev->vms[lo].session_id == v->session_id ? &c->prev->vms[lo]
                                                                           : NULL;
}

/* Seconds between the previous sample and this one, or 0. */
static double interval_s(const struct smi_ctx *c)
{
    if (!c->prev || c->cur->med.pid != c->prev->med.pid ||
        c->cur->med.uptime_ns <= c->prev->med.uptime_ns) {
        return 0;
    }
    return (double)(c->cur->med.uptime_ns - c->prev->med.uptime_ns) / 1e9;
}

static void put_u(char *buf, size_t len, uint64_t v, const char *unit, bool units)
{
    snprintf(buf, len, "%llu%s%s", (unsigned long long)v, units && *unit ? " " : "",
             units ? unit : "");
}

static void put_d(char *buf, size_t len, double v, int decimals, const char *unit, bool units)
{
    snprintf(buf, len, "%.*f%s%s", decimals, v, units && *unit ? " " : "", units ? unit : "");
}

#define MIB (1024.0 * 1024.0)

static void vm_value(int id, const struct smi_ctx *c, const struct vgpu_stats_vm *v, bool units,
                     char *buf, size_t len)
{
    const char *unit = smi_field_unit(SMI_VM, id);
    const struct vgpu_stats_vm *o;
    double dt;

    if (id >= V_STATUS0 && id < V_COUNT) {
        put_u(buf, len, vgpu_stats_vm_status(v, id - V_STATUS0), unit, units);
        return;
    }
    switch (id) {
    case V_SESSION:     put_u(buf, len, v->session_id, unit, units); break;
    case V_VM_ID:       put_u(buf, len, v->vm_id, unit, units); break;
    case V_NAME:        snprintf(buf, len, "%s", v->vm_name[0] ? v->vm_name : "[unnamed]"); break;
    case V_GPU:         put_u(buf, len, v->gpu, unit, units); break;
    case V_PID:         put_u(buf, len, v->worker_pid, unit, units); break;
    case V_STATE:
        snprintf(buf, len, "%s", v->state == VGPU_STATS_VM_ACTIVE ? "active" :
                                 v->state == VGPU_STATS_VM_CLOSED ? "closed" : "[Unknown]");
        break;
    case V_PRIO:        put_u(buf, len, v->priority, unit, units); break;
    case V_WEIGHT:      put_u(buf, len, v->weight, unit, units); break;
    case V_INFLIGHT:    put_u(buf, len, v->inflight, unit, units); break;
    case V_INFLIGHT_MAX: put_u(buf, len, v->max_inflight, unit, units); break;
    case V_REQUESTS:    put_u(buf, len, v->requests, unit, units); break;
    case V_RATE:
        o = prev_of(c, v);
        dt = interval_s(c);
        if (o && dt > 0 && o->requests <= v->requests) {
            put_d(buf, len, (double)(v->requests - o->requests) / dt, 1, unit, units);
        } else if (v->state == VGPU_STATS_VM_ACTIVE && v->connected_ns > 0) {
            put_d(buf, len, (double)v->requests / ((double)v->connected_ns / 1e9), 1, unit, units);
        } else {
            snprintf(buf, len, "[N/A]");
        }
        break;
    case V_OK:          put_u(buf, len, v->ok, unit, units); break;
    case V_ERRORS:      put_u(buf, len, v->errors, unit, units); break;
    case V_BYTES_IN:    put_d(buf, len, (double)v->bytes_in / MIB, 2, unit, units); break;
    case V_BYTES_OUT:   put_d(buf, len, (double)v->bytes_out / MIB, 2, unit, units); break;
    case V_QUEUE_P50:   put_d(buf, len, (double)v->queue_p50_ns / 1e3, 1, unit, units); break;
    case V_QUEUE_P99:   put_d(buf, len, (double)v->queue_p99_ns / 1e3, 1, unit, units); break;
    case V_EXEC_P50:    put_d(buf, len, (double)v->exec_p50_ns / 1e3, 1, unit, units); break;
    case V_EXEC_P99:    put_d(buf, len, (double)v->exec_p99_ns / 1e3, 1, unit, units); break;
    case V_GPU_TIME:    put_d(buf, len, (double)v->gpu_time_ns / 1e6, 1, unit, units); break;
    case V_SHARE: {
        uint64_t mine = v->gpu_time_ns;
        o = prev_of(c, v);
        if (o && o->gpu_time_ns <= mine) {
            mine -= o->gpu_time_ns;
        }
        put_d(buf, len, c->gpu_time_sum_ns ? 100.0 * (double)mine / (double)c->gpu_time_sum_ns
                                           : 0.0, 1, unit, units);
        break;
    }
    case V_MEM_USED:
        if (v->flags & VGPU_STATS_VM_MEM_USED) {
            put_d(buf, len, (double)v->mem_used / MIB, 0, unit, units);
        } else {
            snprintf(buf, len, "[N/A]");
        }
        break;
    case V_MEM_QUOTA:
        if (v->mem_quota) {
            put_d(buf, len, (double)v->mem_quota / MIB, 0, unit, units);
        } else {
            snprintf(buf, len, "[Unlimited]");
        }
        break;
    case V_CONNECTED:
        if (v->state == VGPU_STATS_VM_ACTIVE) {
            put_d(buf, len, (double)v->connected_ns / 1e9, 1, unit, units);
        } else {
            snprintf(buf, len, "[N/A]");
        }
        break;
    case V_KICKS:       put_u(buf, len, v->kicks, unit, units); break;
    case V_RING_CORRUPT: put_u(buf, len, v->ring_corrupt, unit, units); break;
    default:            snprintf(buf, len, "[Unknown]"); break;
    }
}

static void gpu_value(int id, const struct smi_ctx *c, bool units, char *buf, size_t len)
{
    const struct vgpu_stats_mediator *md = &c->cur->med;
    const char *unit = smi_field_unit(SMI_GPU, id);
    double dt;

    switch (id) {
    case G_INDEX:       put_u(buf, len, md->gpu_index, unit, units); break;
    case G_NAME:        snprintf(buf, len, "%s", md->gpu_name[0] ? md->gpu_name : "[Unknown]"); break;
    case G_BACKEND:     snprintf(buf, len, "%s", md->backend); break;
    case G_HEALTH:      snprintf(buf, len, "%s", md->health[0] ? md->health : "ok"); break;
    case G_MEM_TOTAL:   put_d(buf, len, (double)md->gpu_mem_total / MIB, 0, unit, units); break;
    case G_MEM_USED:
        put_d(buf, len, (double)(md->gpu_mem_total - (md->gpu_mem_free < md->gpu_mem_total
                                                      ? md->gpu_mem_free : md->gpu_mem_total)) / MIB,
              0, unit, units);
        break;
    case G_MEM_FREE:    put_d(buf, len, (double)md->gpu_mem_free / MIB, 0, unit, units); break;
    case G_UTIL:
        dt = interval_s(c);
        if (dt > 0 && c->prev->med.gpu_time_ns <= md->gpu_time_ns) {
            put_d(buf, len, 100.0 * (double)(md->gpu_time_ns - c->prev->med.gpu_time_ns) /
                  (dt * 1e9), 1, unit, units);
        } else {
            put_d(buf, len, md->uptime_ns ? 100.0 * (double)md->gpu_time_ns /
                  (double)md->uptime_ns : 0.0, 1, unit, units);
        }
        break;
    case G_SESSIONS:    put_u(buf, len, md->sessions, unit, units); break;
    case G_SESSIONS_MAX: put_u(buf, len, md->max_sessions, unit, units); break;
    case G_CONNECTIONS: put_u(buf, len, md->connections, unit, units); break;
    case G_QUEUED:      put_u(buf, len, md->queued, unit, units); break;
    case G_RUNNING:     put_u(buf, len, md->running, unit, units); break;
    case G_EXECUTORS:   put_u(buf, len, md->executors, unit, units); break;
    case G_OPENED:      put_u(buf, len, md->sessions_opened, unit, units); break;
    case G_CLOSED:      put_u(buf, len, md->sessions_closed, unit, units); break;
    case G_REJECTED:    put_u(buf, len, md->conns_rejected, unit, units); break;
    case G_GPU_TIME:    put_d(buf, len, (double)md->gpu_time_ns / 1e6, 1, unit, units); break;
    case G_SMS:         put_u(buf, len, md->gpu_sms, unit, units); break;
    case G_CC:
        if (md->gpu_cc) {
            snprintf(buf, len, "%u.%u", md->gpu_cc >> 8, md->gpu_cc & 0xff);
        } else {
            snprintf(buf, len, "[N/A]");
        }
        break;
    case G_VERSION:     snprintf(buf, len, "%s", md->version); break;
    case G_PID:         put_u(buf, len, md->pid, unit, units); break;
    case G_UPTIME:      put_d(buf, len, (double)md->uptime_ns / 1e9, 1, unit, units); break;
    default:            snprintf(buf, len, "[Unknown]"); break;
    }
}

void smi_field_value(enum smi_kind kind, int id, const struct smi_ctx *c,
                     const struct vgpu_stats_vm *rec, bool units, char *buf, size_t len)
{
    if (kind == SMI_VM) {
        vm_value(id, c, rec, units, buf, len);
    } else {
        gpu_value(id, c, units, buf, len);
    }
}

int smi_parse_format(const char *s, struct smi_format *f)
{
    const char *p = s;

    *f = (struct smi_format) { 0 };
    if (!s || strncmp(s, "csv", 3) != 0 || (s[3] != '\0' && s[3] != ',')) {
        return -EINVAL;
    }
    f->csv = true;
    p = s + 3;
    while (*p == ',') {
        const char *opt = p + 1;
        size_t len = strcspn(opt, ",");

        while (len && *opt == ' ') {
            opt++;
            len--;
        }
        if (len == 8 && strncmp(opt, "noheader", 8) == 0) {
            f->noheader = true;
        } else if (len == 7 && strncmp(opt, "nounits", 7) == 0) {
            f->nounits = true;
        } else {
            return -EINVAL;
        }
        p = opt + len;
    }
    return *p ? -EINVAL : 0;
}
