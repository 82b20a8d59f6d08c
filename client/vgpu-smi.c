/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-smi: what vgpu-mediator is doing, in the manner of nvidia-smi. Reads
 * the mediator's read-only admin socket with STATS_QUERY (paged, so every
 * VM arrives, however many) and prints a table, CSV of chosen fields, or
 * JSON. Exit codes: 0 ok, 1 no mediator or a bad reply, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vgpu/abi.h"
#include "vgpu/protocol.h"
#include "mediator/util.h"
#include "smi.h"

#define REPLY_TIMEOUT_MS 5000
#define MAX_PAGES        100000     /* 2^32 sessions at 173 a page would be more: a loop */

static void usage(FILE *f)
{
    fprintf(f,
"usage: vgpu-smi [OPTIONS]\n"
"\n"
"Shows the GPUs and VMs of a running vgpu-mediator, read from its read-only\n"
"admin socket.\n"
"\n"
"  --socket PATH             the admin socket (default $VGPU_ADMIN_SOCKET or\n"
"                            " VGPU_DEFAULT_ADMIN_SOCKET ")\n"
"  --query-vm=FIELD,...      one CSV row per VM with these fields\n"
"  --query-gpu=FIELD,...     one CSV row per GPU with these fields\n"
"  --format=csv[,noheader][,nounits]\n"
"                            output of --query-*: CSV, without the header line,\n"
"                            without units after the values (default csv)\n"
"  --json                    everything as JSON, in base units (ns, bytes)\n"
"  -l, --loop SECONDS        print again every SECONDS (1..86400); rates and\n"
"                            utilisation then cover the last interval\n"
"  --help-query-vm           list the fields of --query-vm\n"
"  --help-query-gpu          list the fields of --query-gpu\n"
"  -h, --help                this text\n"
"\n"
"Without --query-* or --json: a table of GPUs and one of VMs. Units are fixed\n"
"per column and named in its header.\n"
"Exit status: 0 ok; 1 no mediator answers at the socket, or its reply is\n"
"malformed; 2 bad options or field names.\n");
}

static void help_fields(enum smi_kind kind)
{
    printf("Fields of %s (unit in brackets; values without --format=...,nounits carry it):\n",
           kind == SMI_VM ? "--query-vm" : "--query-gpu");
    for (int id = 0; id < smi_field_count(kind); id++) {
        const char *unit = smi_field_unit(kind, id);
        char name[64];

        snprintf(name, sizeof(name), "%s%s%s%s", smi_field_name(kind, id), *unit ? " [" : "",
                 unit, *unit ? "]" : "");
        printf("  %-24s %s\n", name, smi_field_help(kind, id));
    }
}

/* ---------------------------------------------------------------- socket */

static int connect_admin(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "vgpu-smi: socket path too long: %s\n", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "vgpu-smi: socket: %s\n", strerror(errno));
        return -errno;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int err = errno;
        fprintf(stderr, "vgpu-smi: no mediator answers at %s: %s (is vgpu-mediator running? "
                "another socket: --socket PATH)\n", path, strerror(err));
        close(fd);
        return -err;
    }
    return fd;
}

/* All pages of one query into snap. 0 or -errno (printed). */
static int fetch(int fd, const char *path, uint32_t seq, struct smi_snapshot *snap)
{
    uint32_t start = 0;
    bool more = true;
    uint8_t *buf = malloc(VGPU_MSG_MAX_SIZE);
    int r = 0;

    if (!buf) {
        fprintf(stderr, "vgpu-smi: out of memory\n");
        return -ENOMEM;
    }
    memset(snap, 0, sizeof(*snap));
    while (more) {
        struct vgpu_msg_stats_query q = {
            .hdr = { .type = VGPU_MSG_STATS_QUERY, .size = sizeof(q), .seq = seq },
            .start = start,
        };
        struct vgpu_msg_hdr h;
        uint64_t deadline = vgpu_now_ns() + REPLY_TIMEOUT_MS * 1000000ull;

        if (snap->pages >= MAX_PAGES) {
            fprintf(stderr, "vgpu-smi: %s: more than %u pages; giving up\n", path, MAX_PAGES);
            r = -EPROTO;
            break;
        }
        if (send(fd, &q, sizeof(q), MSG_NOSIGNAL) != (ssize_t)sizeof(q)) {
            r = -errno;
            fprintf(stderr, "vgpu-smi: %s: send: %s\n", path, strerror(errno));
            break;
        }
        r = vgpu_read_full(fd, &h, sizeof(h), deadline);
        if (r < 0) {
            fprintf(stderr, "vgpu-smi: %s: no reply: %s\n", path, strerror(-r));
            break;
        }
        if (h.size < sizeof(h) || h.size > VGPU_MSG_MAX_SIZE || h.seq != seq ||
            (h.type != VGPU_MSG_STATS_DATA && h.type != VGPU_MSG_ERROR)) {
            fprintf(stderr, "vgpu-smi: %s: unexpected reply (type %u, size %u, seq %u)\n", path,
                    h.type, h.size, h.seq);
            r = -EPROTO;
            break;
        }
        memcpy(buf, &h, sizeof(h));
        r = vgpu_read_full(fd, buf + sizeof(h), h.size - sizeof(h), deadline);
        if (r < 0) {
            fprintf(stderr, "vgpu-smi: %s: short reply: %s\n", path, strerror(-r));
            break;
        }
        if (h.type == VGPU_MSG_ERROR) {
            struct vgpu_msg_error e = { 0 };
            if (h.size == sizeof(e)) {
                memcpy(&e, buf, sizeof(e));
                e.text[sizeof(e.text) - 1] = '\0';
            }
            fprintf(stderr, "vgpu-smi: %s: the mediator refused: %s (a mediator older than "
                    "protocol 1.2 does not know STATS_QUERY)\n", path, e.text);
            r = -EPROTO;
            break;
        }
        r = smi_decode_page(buf, h.size, snap, &more, &start);
        if (r < 0) {
            fprintf(stderr, "vgpu-smi: %s: malformed STATS_DATA (%s)\n", path, strerror(-r));
            break;
        }
    }
    free(buf);
    if (r < 0) {
        smi_snapshot_free(snap);
    }
    return r;
}

/* ---------------------------------------------------------------- output */

/* A grid of cells, printed with aligned columns. */
struct grid {
    unsigned cols, rows, cap;
    char **cells;       /* rows * cols, row 0 the header */
};

/* Room for one more row. */
static int grid_grow(struct grid *g)
{
    unsigned need = (g->rows + 1) * g->cols;

    if (need > g->cap) {
        unsigned cap = g->cap ? g->cap : 256;
        char **c;

        while (cap < need) {
            cap *= 2;
        }
        c = realloc(g->cells, cap * sizeof(*c));
        if (!c) {
            return -ENOMEM;
        }
        g->cells = c;
        g->cap = cap;
    }
    return 0;
}

static void grid_free(struct grid *g)
{
    for (unsigned i = 0; i < g->rows * g->cols; i++) {
        free(g->cells[i]);
    }
    free(g->cells);
}

/* Appends a row of ncols strings (copied). */
static int grid_row(struct grid *g, char **vals)
{
    if (grid_grow(g) < 0) {
        return -ENOMEM;
    }
    for (unsigned c = 0; c < g->cols; c++) {
        char *d = strdup(vals[c]);

        if (!d) {
            while (c-- > 0) {
                free(g->cells[g->rows * g->cols + c]);
            }
            return -ENOMEM;
        }
        g->cells[g->rows * g->cols + c] = d;
    }
    g->rows++;
    return 0;
}

static void grid_print(const struct grid *g, const char *indent)
{
    size_t w[SMI_MAX_FIELDS] = { 0 };

    for (unsigned r = 0; r < g->rows; r++) {
        for (unsigned c = 0; c < g->cols; c++) {
            size_t l = strlen(g->cells[r * g->cols + c]);
            w[c] = l > w[c] ? l : w[c];
        }
    }
    for (unsigned r = 0; r < g->rows; r++) {
        fputs(indent, stdout);
        for (unsigned c = 0; c < g->cols; c++) {
            const char *cell = g->cells[r * g->cols + c];
            if (c + 1 == g->cols) {
                printf("%s\n", cell);
            } else {
                printf("%-*s  ", (int)w[c], cell);
            }
        }
    }
}

#define CELL 160

/* Header cells "name [unit]" and value rows of the fields ids[n]. */
static int fill_grid(struct grid *g, enum smi_kind kind, const int *ids, int n,
                     const struct smi_ctx *ctx, bool header, bool units)
{
    char store[SMI_MAX_FIELDS][CELL];
    char *vals[SMI_MAX_FIELDS];
    unsigned nrows = kind == SMI_VM ? ctx->cur->n : 1;

    g->cols = (unsigned)n;
    for (int i = 0; i < n; i++) {
        vals[i] = store[i];
    }
    if (header) {
        for (int i = 0; i < n; i++) {
            const char *unit = smi_field_unit(kind, ids[i]);
            snprintf(store[i], CELL, "%s%s%s%s", smi_field_name(kind, ids[i]), *unit ? " [" : "",
                     unit, *unit ? "]" : "");
        }
        if (grid_row(g, vals) < 0) {
            return -ENOMEM;
        }
    }
    for (unsigned r = 0; r < nrows; r++) {
        for (int i = 0; i < n; i++) {
            smi_field_value(kind, ids[i], ctx, kind == SMI_VM ? &ctx->cur->vms[r] : NULL, units,
                            store[i], CELL);
        }
        if (grid_row(g, vals) < 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* nvidia-smi's ", " separator; a value with a comma or quote is quoted
 * (RFC 4180), so a VM name or a health line never shifts the columns. */
static void csv_cell(const char *v, bool sep)
{
    if (sep) {
        fputs(", ", stdout);
    }
    if (!strpbrk(v, ",\"")) {
        fputs(v, stdout);
        return;
    }
    putchar('"');
    for (; *v; v++) {
        if (*v == '"') {
            putchar('"');
        }
        putchar(*v);
    }
    putchar('"');
}

static int print_csv(enum smi_kind kind, const int *ids, int n, const struct smi_ctx *ctx,
                     const struct smi_format *f)
{
    struct grid g = { 0 };
    int r = fill_grid(&g, kind, ids, n, ctx, !f->noheader, !f->nounits);

    if (r == 0) {
        for (unsigned row = 0; row < g.rows; row++) {
            for (unsigned c = 0; c < g.cols; c++) {
                csv_cell(g.cells[row * g.cols + c], c > 0);
            }
            putchar('\n');
        }
    }
    grid_free(&g);
    return r;
}

static int lookup(enum smi_kind kind, const char *list, int *ids)
{
    char bad[80];
    int n = smi_parse_fields(kind, list, ids, bad, sizeof(bad));

    if (n < 0) {
        /* a bug in our own table: never a user's fault */
        fprintf(stderr, "vgpu-smi: internal field list: %s\n", bad);
        abort();
    }
    return n;
}

static int print_table(const struct smi_ctx *ctx)
{
    const struct vgpu_stats_mediator *md = &ctx->cur->med;
    int gids[SMI_MAX_FIELDS], vids[SMI_MAX_FIELDS];
    int ng = lookup(SMI_GPU, "index,name,backend,memory.used,memory.total,utilization.gpu,"
                    "sessions,sessions.max,requests.queued,requests.running", gids);
    int nv = lookup(SMI_VM, "session_id,vm_id,name,gpu,state,priority,weight,inflight,"
                    "requests.rate,requests,errors,gpu_time.share,memory.used,memory.quota,"
                    "queue.p50,queue.p99,exec.p50,exec.p99", vids);
    struct grid g = { 0 }, v = { 0 };
    time_t t = (time_t)(ctx->cur->realtime_ns / 1000000000ull);
    char when[64];
    int r;

    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
    printf("vgpu-smi  %s  vgpu-mediator %s (pid %u), up %.1f s, health: %s\n", when, md->version,
           md->pid, (double)md->uptime_ns / 1e9, md->health[0] ? md->health : "ok");
    r = fill_grid(&g, SMI_GPU, gids, ng, ctx, true, false);
    if (r == 0) {
        printf("\nGPUs\n");
        grid_print(&g, "  ");
        r = fill_grid(&v, SMI_VM, vids, nv, ctx, true, false);
    }
    if (r == 0) {
        printf("\nVMs (%u)\n", ctx->cur->n);
        if (ctx->cur->n) {
            grid_print(&v, "  ");
        } else {
            printf("  no VM attached\n");
        }
        if (md->sessions_closed) {
            printf("  closed sessions in all: %llu requests, %llu ok, %llu errors, "
                   "GPU time %.1f ms\n", (unsigned long long)md->closed_requests,
                   (unsigned long long)md->closed_ok, (unsigned long long)md->closed_errors,
                   (double)md->closed_gpu_time_ns / 1e6);
        }
    }
    grid_free(&g);
    grid_free(&v);
    return r;
}

static void json_str(const char *key, const char *s, bool comma)
{
    printf("\"%s\": \"", key);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20 || c >= 0x7f) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    printf("\"%s", comma ? ", " : "");
}

static void json_u(const char *key, uint64_t v, bool comma)
{
    printf("\"%s\": %llu%s", key, (unsigned long long)v, comma ? ", " : "");
}

static void print_json(const struct smi_snapshot *s)
{
    const struct vgpu_stats_mediator *md = &s->med;

    printf("{\"mediator\": {");
    json_str("version", md->version, true);
    json_u("pid", md->pid, true);
    json_u("uptime_ns", md->uptime_ns, true);
    json_str("backend", md->backend, true);
    json_str("health", md->health, true);
    json_u("sessions", md->sessions, true);
    json_u("max_sessions", md->max_sessions, true);
    json_u("connections", md->connections, true);
    json_u("queued", md->queued, true);
    json_u("running", md->running, true);
    json_u("executors", md->executors, true);
    json_u("max_inflight", md->max_inflight, true);
    json_u("sessions_opened", md->sessions_opened, true);
    json_u("sessions_closed", md->sessions_closed, true);
    json_u("connections_rejected", md->conns_rejected, true);
    json_u("inline_runs", md->inline_runs, true);
    json_u("exec_runs", md->exec_runs, true);
    json_u("gpu_time_ns", md->gpu_time_ns, true);
    printf("\"closed\": {");
    json_u("requests", md->closed_requests, true);
    json_u("ok", md->closed_ok, true);
    json_u("errors", md->closed_errors, true);
    json_u("bytes_in", md->closed_bytes_in, true);
    json_u("bytes_out", md->closed_bytes_out, true);
    json_u("gpu_time_ns", md->closed_gpu_time_ns, false);
    printf("}},\n \"gpus\": [{");
    json_u("index", md->gpu_index, true);
    json_str("name", md->gpu_name, true);
    json_u("backend_kind", md->backend_kind, true);
    json_u("sms", md->gpu_sms, true);
    json_u("compute_cap_major", md->gpu_cc >> 8, true);
    json_u("compute_cap_minor", md->gpu_cc & 0xff, true);
    json_u("memory_total_bytes", md->gpu_mem_total, true);
    json_u("memory_free_bytes", md->gpu_mem_free, false);
    printf("}],\n \"vms\": [");
    for (unsigned i = 0; i < s->n; i++) {
        const struct vgpu_stats_vm *v = &s->vms[i];

        printf("%s\n  {", i ? "," : "");
        json_u("session_id", v->session_id, true);
        json_u("vm_id", v->vm_id, true);
        json_str("name", v->vm_name, true);
        json_str("state", v->state == VGPU_STATS_VM_ACTIVE ? "active" : "closed", true);
        json_u("gpu", v->gpu, true);
        json_u("priority", v->priority, true);
        json_u("weight", v->weight, true);
        json_u("inflight", v->inflight, true);
        json_u("max_inflight", v->max_inflight, true);
        json_u("connected_ns", v->connected_ns, true);
        json_u("requests", v->requests, true);
        json_u("completed", v->completed, true);
        json_u("ok", v->ok, true);
        json_u("errors", v->errors, true);
        json_u("bytes_in", v->bytes_in, true);
        json_u("bytes_out", v->bytes_out, true);
        json_u("queue_p50_ns", v->queue_p50_ns, true);
        json_u("queue_p99_ns", v->queue_p99_ns, true);
        json_u("exec_p50_ns", v->exec_p50_ns, true);
        json_u("exec_p99_ns", v->exec_p99_ns, true);
        json_u("gpu_time_ns", v->gpu_time_ns, true);
        json_u("exec_time_ns", v->exec_time_ns, true);
        if (v->flags & VGPU_STATS_VM_MEM_USED) {
            json_u("memory_used_bytes", v->mem_used, true);
        } else {
            printf("\"memory_used_bytes\": null, ");
        }
        json_u("memory_quota_bytes", v->mem_quota, true);
        json_u("doorbells", v->kicks, true);
        json_u("ring_corrupt", v->ring_corrupt, true);
        printf("\"completions_by_status\": {");
        for (int st = 0; st < VGPU_S_STATUS_COUNT; st++) {
            json_u(vgpu_status_name(st), vgpu_stats_vm_status(v, st), st + 1 < VGPU_S_STATUS_COUNT);
        }
        printf("}}");
    }
    printf("%s]}\n", s->n ? "\n " : "");
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    enum { O_QVM = 256, O_QGPU, O_FORMAT, O_JSON, O_SOCKET, O_HELP_VM, O_HELP_GPU };
    static const struct option longopts[] = {
        { "query-vm",       required_argument, NULL, O_QVM },
        { "query-gpu",      required_argument, NULL, O_QGPU },
        { "format",         required_argument, NULL, O_FORMAT },
        { "json",           no_argument,       NULL, O_JSON },
        { "socket",         required_argument, NULL, O_SOCKET },
        { "loop",           required_argument, NULL, 'l' },
        { "help-query-vm",  no_argument,       NULL, O_HELP_VM },
        { "help-query-gpu", no_argument,       NULL, O_HELP_GPU },
        { "help",           no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *env = getenv("VGPU_ADMIN_SOCKET");
    const char *path = env && *env ? env : VGPU_DEFAULT_ADMIN_SOCKET;
    const char *query = NULL, *format = NULL;
    enum smi_kind kind = SMI_VM;
    struct smi_format fmt = { .csv = true };
    struct smi_snapshot cur = { 0 }, prev = { 0 };
    int ids[SMI_MAX_FIELDS], nids = 0;
    unsigned long loop_s = 0;
    bool json = false, have_prev = false;
    uint32_t seq = 1;
    int c, fd, ret = 0;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "hl:", longopts, NULL)) != -1) {
        switch (c) {
        case O_QVM:
        case O_QGPU:
            if (query) {
                fprintf(stderr, "vgpu-smi: one --query-vm or --query-gpu at a time\n");
                return 2;
            }
            query = optarg;
            kind = c == O_QVM ? SMI_VM : SMI_GPU;
            break;
        case O_FORMAT:
            format = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_SOCKET:
            path = optarg;
            break;
        case 'l': {
            char *end;
            errno = 0;
            loop_s = strtoul(optarg, &end, 10);
            if (errno || !*optarg || *end || *optarg == '-' || loop_s < 1 || loop_s > 86400) {
                fprintf(stderr, "vgpu-smi: -l: seconds in 1..86400, not '%s'\n", optarg);
                return 2;
            }
            break;
        }
        case O_HELP_VM:
            help_fields(SMI_VM);
            return 0;
        case O_HELP_GPU:
            help_fields(SMI_GPU);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            if (optopt && optopt < 256) {
                fprintf(stderr, "vgpu-smi: bad option -%c or missing value\n", optopt);
            } else {
                fprintf(stderr, "vgpu-smi: unknown option or missing value: %s\n",
                        argv[optind - 1]);
            }
            fprintf(stderr, "Try 'vgpu-smi --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vgpu-smi: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (json && (query || format)) {
        fprintf(stderr, "vgpu-smi: --json excludes --query-* and --format\n");
        return 2;
    }
    if (format && !query) {
        fprintf(stderr, "vgpu-smi: --format goes with --query-vm or --query-gpu\n");
        return 2;
    }
    if (format && smi_parse_format(format, &fmt) < 0) {
        fprintf(stderr, "vgpu-smi: --format: csv[,noheader][,nounits], not '%s'\n", format);
        return 2;
    }
    if (query) {
        char bad[80];

        nids = smi_parse_fields(kind, query, ids, bad, sizeof(bad));
        if (nids < 0) {
            fprintf(stderr, "vgpu-smi: %s: unknown field '%s' (see vgpu-smi --help-query-%s)\n",
                    kind == SMI_VM ? "--query-vm" : "--query-gpu", bad,
                    kind == SMI_VM ? "vm" : "gpu");
            return 2;
        }
    }

    fd = connect_admin(path);
    if (fd < 0) {
        return 1;
    }
    for (;;) {
        struct smi_ctx ctx;
        int r = fetch(fd, path, seq++, &cur);

        if (r < 0) {
            ret = 1;
            break;
        }
        smi_ctx_init(&ctx, &cur, have_prev ? &prev : NULL);
        if (json) {
            print_json(&cur);
        } else if (query) {
            r = print_csv(kind, ids, nids, &ctx, &fmt);
        } else {
            r = print_table(&ctx);
        }
        if (r < 0) {
            fprintf(stderr, "vgpu-smi: out of memory\n");
            ret = 1;
            break;
        }
        if (fflush(stdout) != 0 || ferror(stdout)) {
            ret = 1;
            break;
        }
        if (!loop_s) {
            break;
        }
        smi_snapshot_free(&prev);
        prev = cur;
        memset(&cur, 0, sizeof(cur));
        have_prev = true;
        /* The mediator closes admin connections idle for --hello-timeout-ms:
         * a fresh one each round, whatever the interval. */
        close(fd);
        sleep((unsigned)loop_s);
        if (!query && !json) {
            putchar('\n');
        }
        fd = connect_admin(path);
        if (fd < 0) {
            ret = 1;
            fd = -1;
            break;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    smi_snapshot_free(&cur);
    smi_snapshot_free(&prev);
    return ret;
}
