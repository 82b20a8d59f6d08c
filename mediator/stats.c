/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
#include "stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static unsigned hist_index(uint64_t v)
{
    unsigned msb, idx;

    if (v < (1u << VGPU_HIST_SUB_BITS)) {
        return (unsigned)v;
    }
    msb = 63u - (unsigned)__builtin_clzll(v);
    idx = ((msb - VGPU_HIST_SUB_BITS + 1) << VGPU_HIST_SUB_BITS) |
          (unsigned)((v >> (msb - VGPU_HIST_SUB_BITS)) & ((1u << VGPU_HIST_SUB_BITS) - 1));
    return idx < VGPU_HIST_BUCKETS ? idx : VGPU_HIST_BUCKETS - 1;
}

/* Largest value that falls in bucket idx. */
static uint64_t hist_upper(unsigned idx)
{
    unsigned exp, sub;

    if (idx < (1u << VGPU_HIST_SUB_BITS)) {
        return idx;
    }
    exp = (idx >> VGPU_HIST_SUB_BITS) + VGPU_HIST_SUB_BITS - 1;
    sub = idx & ((1u << VGPU_HIST_SUB_BITS) - 1);
    if (exp >= 63) {
        return UINT64_MAX;
    }
    return (((uint64_t)((1u << VGPU_HIST_SUB_BITS) | sub) + 1) << (exp - VGPU_HIST_SUB_BITS)) - 1;
}

void vgpu_hist_add(struct vgpu_hist *h, uint64_t v)
{
    h->bucket[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max) {
        h->max = v;
    }
}

uint64_t vgpu_hist_count_le(const struct vgpu_hist *h, uint64_t v)
{
    uint64_t n = 0;

    for (unsigned i = 0; i < VGPU_HIST_BUCKETS && hist_upper(i) <= v; i++) {
        n += h->bucket[i];
    }
    return n;
}

uint64_t vgpu_hist_quantile(const struct vgpu_hist *h, double q)
{
    uint64_t rank, seen = 0;

    if (h->count == 0) {
        return 0;
    }
    rank = (uint64_t)(q * (double)h->count + 0.5);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > h->count) {
        rank = h->count;
    }
    for (unsigned i = 0; i < VGPU_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t up = hist_upper(i);
            return up < h->max ? up : h->max;
        }
    }
    return h->max;
}

void vgpu_vm_stats_complete(struct vgpu_vm_stats *st, int32_t status, uint64_t queue_ns,
                            uint64_t exec_ns, uint64_t bytes_in, uint64_t bytes_out)
{
    if (status >= 0 && status < VGPU_S_STATUS_COUNT) {
        st->completions[status]++;
    }
    st->completed++;
    if (status == VGPU_S_OK) {
        st->bytes_in += bytes_in;
        st->bytes_out += bytes_out;
    }
    st->exec_ns_total += exec_ns;
    vgpu_hist_add(&st->queue_ns, queue_ns);
    vgpu_hist_add(&st->exec_ns, exec_ns);
}

void vgpu_vm_stats_merge(struct vgpu_vm_stats *dst, const struct vgpu_vm_stats *src)
{
    const struct vgpu_hist *hs[2] = { &src->queue_ns, &src->exec_ns };
    struct vgpu_hist *hd[2] = { &dst->queue_ns, &dst->exec_ns };

    dst->requests += src->requests;
    for (int i = 0; i < VGPU_S_STATUS_COUNT; i++) {
        dst->completions[i] += src->completions[i];
    }
    dst->completed += src->completed;
    dst->bytes_in += src->bytes_in;
    dst->bytes_out += src->bytes_out;
    dst->kicks += src->kicks;
    dst->notifies += src->notifies;
    dst->ring_corrupt += src->ring_corrupt;
    dst->exec_ns_total += src->exec_ns_total;
    for (int k = 0; k < 2; k++) {
        hd[k]->count += hs[k]->count;
        hd[k]->sum += hs[k]->sum;
        if (hs[k]->max > hd[k]->max) {
            hd[k]->max = hs[k]->max;
        }
        for (int i = 0; i < VGPU_HIST_BUCKETS; i++) {
            hd[k]->bucket[i] += hs[k]->bucket[i];
        }
    }
}

struct out {
    char *buf;
    size_t cap, len;
};

__attribute__((format(printf, 2, 3)))
static void out_printf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->len + 1 >= o->cap) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    o->len += (size_t)n;
    if (o->len >= o->cap) {
        o->len = o->cap - 1;
    }
}

/* Human-readable duration with a unit, into a small buffer. */
static const char *fmt_ns(char *b, size_t n, uint64_t ns)
{
    if (ns < 10000) {
        snprintf(b, n, "%lluns", (unsigned long long)ns);
    } else if (ns < 10000000) {
        snprintf(b, n, "%.1fus", (double)ns / 1e3);
    } else if (ns < 10000000000ull) {
        snprintf(b, n, "%.1fms", (double)ns / 1e6);
    } else {
        snprintf(b, n, "%.1fs", (double)ns / 1e9);
    }
    return b;
}

static const char *fmt_bytes(char *b, size_t n, uint64_t v)
{
    if (v < 10240) {
        snprintf(b, n, "%lluB", (unsigned long long)v);
    } else if (v < 10ull << 20) {
        snprintf(b, n, "%.1fKiB", (double)v / 1024);
    } else if (v < 10ull << 30) {
        snprintf(b, n, "%.1fMiB", (double)v / (1024 * 1024));
    } else {
        snprintf(b, n, "%.1fGiB", (double)v / (1024.0 * 1024 * 1024));
    }
    return b;
}

/* Room for the "(N more rows not shown ...)" line. */
#define TRUNC_RESERVE 128

size_t vgpu_stats_format(char *buf, size_t cap, const char *head,
                         const struct vgpu_stats_row *rows, unsigned nrows)
{
    struct out o = { .buf = buf, .cap = cap, .len = 0 };
    char a[16], b[16], c[16], d[16], e[16], f[16], g[16];

    if (cap == 0) {
        return 0;
    }
    buf[0] = '\0';
    if (head) {
        out_printf(&o, "%s", head);
    }
    out_printf(&o, "%-4s %-6s %-16s %4s %6s %5s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s  %s\n",
               "sess", "vm", "name", "prio", "weight", "infl", "requests", "ok", "errors",
               "bytes_in", "bytes_out", "queue_p50", "queue_p99", "exec_p50", "exec_p99",
               "exec_sum", "errors_by_status");
    for (unsigned i = 0; i < nrows; i++) {
        const struct vgpu_stats_row *r = &rows[i];
        const struct vgpu_vm_stats *st = r->st;
        uint64_t errors = st->completed - st->completions[VGPU_S_OK];
        char byst[160];
        size_t bl = 0;

        byst[0] = '\0';
        for (int s = 1; s < VGPU_S_STATUS_COUNT && bl < sizeof(byst); s++) {
            if (st->completions[s]) {
                int n = snprintf(byst + bl, sizeof(byst) - bl, "%s%s=%llu", bl ? "," : "",
                                 vgpu_status_name(s), (unsigned long long)st->completions[s]);
                if (n > 0) {
                    bl += (size_t)n;
                }
            }
        }
        if (bl == 0) {
            snprintf(byst, sizeof(byst), "-");
        }
        char sess[12], vm[12], prio[12], weight[12], infl[12];

        if (r->session_id == 0) {
            /* the closed-sessions total: identity columns do not apply */
            strcpy(sess, "-");
            strcpy(vm, "-");
            strcpy(prio, "-");
            strcpy(weight, "-");
            strcpy(infl, "-");
        } else {
            snprintf(sess, sizeof(sess), "%u", r->session_id);
            snprintf(vm, sizeof(vm), "%u", r->vm_id);
            snprintf(prio, sizeof(prio), "%u", r->prio);
            snprintf(weight, sizeof(weight), "%u", r->weight);
            if (r->closed) {
                strcpy(infl, "ended");
            } else {
                snprintf(infl, sizeof(infl), "%u", r->inflight);
            }
        }
        char line[512];
        int ll = snprintf(line, sizeof(line),
                   "%-4s %-6s %-16.16s %4s %6s %5s %9llu %9llu %9llu %9s %9s %9s %9s %9s %9s %9s  %s\n",
                   sess, vm, r->vm_name[0] ? r->vm_name : "-", prio, weight, infl, (unsigned long long)st->requests,
                   (unsigned long long)st->completions[VGPU_S_OK], (unsigned long long)errors,
                   fmt_bytes(a, sizeof(a), st->bytes_in), fmt_bytes(b, sizeof(b), st->bytes_out),
                   fmt_ns(c, sizeof(c), vgpu_hist_quantile(&st->queue_ns, 0.50)),
                   fmt_ns(d, sizeof(d), vgpu_hist_quantile(&st->queue_ns, 0.99)),
                   fmt_ns(e, sizeof(e), vgpu_hist_quantile(&st->exec_ns, 0.50)),
                   fmt_ns(f, sizeof(f), vgpu_hist_quantile(&st->exec_ns, 0.99)),
                   fmt_ns(g, sizeof(g), r->charged_ns), byst);

        /* Never cut silently: keep room for the line that says what is left out. */
        if (ll < 0 || o.len + (size_t)ll + (i + 1 < nrows ? TRUNC_RESERVE : 0) >= o.cap) {
            out_printf(&o, "(%u more rows not shown: the reply is limited to %zu bytes; "
                       "vgpu-smi shows every row)\n", nrows - i, o.cap - 1);
            return o.len;
        }
        out_printf(&o, "%s", line);
    }
    if (nrows == 0) {
        out_printf(&o, "(no sessions)\n");
    }
    return o.len;
}
