/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-client's CUDA commands (ABI 1.2, libvgpu's vgpu_cu_* layer):
 *
 *   cu-info [--attrs]    the GPU the VM's context runs on
 *   run-ptx FILE --kernel NAME [...]
 *                        load a PTX, cubin or fatbin file, allocate and
 *                        initialise device buffers, launch one kernel, and
 *                        print, check or save buffers afterwards
 *
 * run-ptx's argument language (docs/man/vgpu-client.1.scd):
 *
 *   --buf NAME:BYTES[:INIT]   a device buffer; BYTES takes k/m/g (KiB/MiB/GiB)
 *   --arg TYPE:VALUE          the next kernel parameter, a scalar
 *   --arg ptr:NAME[+OFF]      the next kernel parameter, a buffer's address
 *   --out NAME[:TYPE[:COUNT]] print the buffer afterwards (default u8, all)
 *   --expect NAME:INIT        compare the buffer afterwards with INIT
 *   --save NAME:PATH          write the buffer's bytes to PATH afterwards
 *
 *   INIT   zero | fill:TYPE:VALUE | iota:TYPE[:START[:STEP]] | file:PATH
 *   TYPE   i8 u8 i16 u16 i32 u32 i64 u64 f32 f64
 *
 * iota gives element i the value START + i * STEP (0 and 1 by default).
 * Floats compare exactly unless --tol gives a relative tolerance.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define MAX_BUFS    16
#define MAX_ARGS    64
#define MAX_OUTS    32
#define NAME_MAX_LEN 31

/* CUdevice_attribute numbers cu-info prints by name. */
static const struct {
    int attr;
    const char *name;
} shown_attrs[] = {
    { 16, "multiprocessors" },
    { 1, "max threads per block" },
    { 39, "max threads per SM" },
    { 10, "warp size" },
    { 8, "shared memory per block" },
    { 97, "shared memory per block (opt-in)" },
    { 12, "registers per block" },
    { 38, "L2 cache bytes" },
    { 13, "clock kHz" },
    { 36, "memory clock kHz" },
    { 37, "memory bus bits" },
    { 5, "max grid x" },
};

enum elem { E_I8, E_U8, E_I16, E_U16, E_I32, E_U32, E_I64, E_U64, E_F32, E_F64, E_PTR };

static const struct {
    const char *name;
    unsigned size;
    bool is_float, is_signed;
} elems[] = {
    [E_I8] = { "i8", 1, false, true },    [E_U8] = { "u8", 1, false, false },
    [E_I16] = { "i16", 2, false, true },  [E_U16] = { "u16", 2, false, false },
    [E_I32] = { "i32", 4, false, true },  [E_U32] = { "u32", 4, false, false },
    [E_I64] = { "i64", 8, false, true },  [E_U64] = { "u64", 8, false, false },
    [E_F32] = { "f32", 4, true, true },   [E_F64] = { "f64", 8, true, true },
    [E_PTR] = { "ptr", 8, false, false },
};

/* How a buffer is filled (or what it must contain afterwards). */
struct init {
    enum { I_ZERO, I_FILL, I_IOTA, I_FILE } kind;
    enum elem type;
    double start, step;           /* fill: start */
    int64_t istart, istep;        /* the same for integer types, exactly */
    const char *path;
};

struct buf {
    char name[NAME_MAX_LEN + 1];
    uint64_t bytes;
    struct init init;
    uint64_t dptr;
};

struct arg {
    enum elem type;
    uint8_t bytes[8];
    int buf;                      /* E_PTR: index into bufs */
    uint64_t off;                 /* E_PTR: + offset */
};

struct out {
    enum { O_PRINT, O_EXPECT, O_SAVE } kind;
    int buf;
    enum elem type;
    uint64_t count;               /* O_PRINT: 0 = all */
    struct init init;             /* O_EXPECT */
    const char *path;             /* O_SAVE */
};

struct run {
    struct ctx *c;
    struct vgpu_cu *cu;
    const char *file, *kernel;
    struct vgpu_args_cu_launch la;
    struct buf bufs[MAX_BUFS];
    unsigned nbufs;
    struct arg args[MAX_ARGS];
    unsigned nargs;
    struct out outs[MAX_OUTS];
    unsigned nouts;
    unsigned repeat;
    double tol;
};

static int usage_err(const char *fmt, const char *what)
{
    fprintf(stderr, "vgpu-client: run-ptx: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n(see vgpu-client --help, or man vgpu-client)\n");
    return EXIT_USAGE;
}

/* A request that completed with a failure status: say which, and how. */
static int cu_fail(struct ctx *c, struct vgpu_cu *cu, const char *what, int r)
{
    if (r < 0) {
        return report_err(c, what, r);
    }
    if (r == VGPU_S_CUDA_ERROR) {
        fprintf(stderr, "vgpu-client: %s: the driver refused it (CUresult %" PRIu64 ")\n",
                what, vgpu_cu_last_result(cu));
    } else if (r == VGPU_S_NOT_SUPPORTED) {
        fprintf(stderr, "vgpu-client: %s: not supported (the mediator's backend is %s; "
                "CUDA operations need the cuda backend)\n", what,
                backend_name(c->info.backend));
    } else if (r == VGPU_S_GPU_FAULT || r == VGPU_S_TIMEOUT) {
        fprintf(stderr, "vgpu-client: %s: status %s (the kernel %s; the VM's GPU context "
                "was replaced)\n", what, vgpu_status_name(r),
                r == VGPU_S_TIMEOUT ? "ran past the mediator's time limit" : "faulted");
    } else {
        fprintf(stderr, "vgpu-client: %s: status %s\n", what, vgpu_status_name(r));
    }
    return r == VGPU_S_TIMEOUT ? EXIT_TIMEOUT : EXIT_FAILED;
}

static int cu_open(struct ctx *c, struct vgpu_cu **cu, uint64_t staging)
{
    struct vgpu_cu_opts o = { .staging_size = staging, .timeout_ms = c->timeout_ms };
    int r;

    vgpu_free_all(c->dev);
    r = vgpu_cu_open(c->dev, &o, cu);
    if (r == -ENOMEM) {
        fprintf(stderr, "vgpu-client: the shared memory is too small for the CUDA "
                "layer's staging area (--shm-size)\n");
        return EXIT_ERROR;
    }
    return r < 0 ? report_err(c, "vgpu_cu_open", r) : EXIT_OK;
}

/* ---------------------------------------------------------------------- */
/* cu-info                                                                */

int cmd_cu_info(struct ctx *c, int argc, char **argv)
{
    static const struct option lo[] = { { "attrs", no_argument, NULL, 'a' }, { 0 } };
    struct vgpu_cu_device_info di;
    struct vgpu_cu *cu = NULL;
    uint64_t free_bytes = 0;
    bool all = false;
    int opt, r;

    while ((opt = getopt_long(argc, argv, "a", lo, NULL)) != -1) {
        if (opt != 'a') {
            fprintf(stderr, "vgpu-client: cu-info [--attrs]\n");
            return EXIT_USAGE;
        }
        all = true;
    }
    if (optind < argc) {
        fprintf(stderr, "vgpu-client: cu-info [--attrs]\n");
        return EXIT_USAGE;
    }
    r = cu_open(c, &cu, 0);
    if (r) {
        return r;
    }
    r = vgpu_cu_device_info(cu, &di);
    if (r) {
        r = cu_fail(c, cu, "cu_device_info", r);
        goto out;
    }
    r = vgpu_cu_mem_get_info(cu, &free_bytes);
    if (r) {
        r = cu_fail(c, cu, "cu_mem_get_info", r);
        goto out;
    }
    printf("device:       %s\n", di.name);
    printf("uuid:         ");
    for (unsigned i = 0; i < sizeof(di.uuid); i++) {
        printf("%02x%s", di.uuid[i], i == 3 || i == 5 || i == 7 || i == 9 ? "-" : "");
    }
    printf("\n");
    printf("driver:       %u.%u\n", di.driver_version / 1000, di.driver_version % 1000 / 10);
    printf("compute cap:  %d.%d\n", di.attr_count > 76 ? di.attrs[75] : 0,
           di.attr_count > 76 ? di.attrs[76] : 0);
    printf("memory:       %" PRIu64 " MiB (the VM's quota), %" PRIu64 " MiB free\n",
           di.total_mem >> 20, free_bytes >> 20);
    for (size_t i = 0; i < sizeof(shown_attrs) / sizeof(shown_attrs[0]); i++) {
        if ((uint32_t)shown_attrs[i].attr < di.attr_count) {
            printf("%-33s %d\n", shown_attrs[i].name, di.attrs[shown_attrs[i].attr]);
        }
    }
    for (uint32_t a = 1; all && a < di.attr_count; a++) {
        printf("attr[%u] = %d\n", a, di.attrs[a]);
    }
    r = EXIT_OK;
out:
    vgpu_cu_close(cu);
    return r;
}

/* ---------------------------------------------------------------------- */
/* run-ptx: parsing                                                       */

static int parse_elem(const char *s, size_t len, enum elem *out, bool ptr_ok)
{
    for (unsigned i = 0; i < sizeof(elems) / sizeof(elems[0]); i++) {
        if (strlen(elems[i].name) == len && strncmp(s, elems[i].name, len) == 0 &&
            (i != E_PTR || ptr_ok)) {
            *out = (enum elem)i;
            return 0;
        }
    }
    return -1;
}

/* A whole string as a number of the type: integers exactly, in range. */
static int parse_num(enum elem t, const char *s, double *d, int64_t *i)
{
    char *end;

    if (!*s) {
        return -1;
    }
    errno = 0;
    if (elems[t].is_float) {
        *d = strtod(s, &end);
        *i = 0;
        return errno || *end ? -1 : 0;
    }
    if (elems[t].is_signed) {
        long long v = strtoll(s, &end, 0);
        int64_t lim = elems[t].size == 8 ? INT64_MAX : (INT64_C(1) << (8 * elems[t].size - 1)) - 1;

        if (errno || *end || v > lim || v < -lim - 1) {
            return -1;
        }
        *i = v;
    } else {
        unsigned long long v = strtoull(s, &end, 0);
        uint64_t lim = elems[t].size == 8 ? UINT64_MAX : (UINT64_C(1) << (8 * elems[t].size)) - 1;

        if (errno || *end || *s == '-' || v > lim) {
            return -1;
        }
        *i = (int64_t)v;
    }
    *d = (double)*i;
    return 0;
}

/* BYTES with an optional k, m or g suffix (KiB, MiB, GiB). */
static int parse_bytes(const char *s, uint64_t *out)
{
    unsigned long long v;
    char *end;
    unsigned shift = 0;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s || *s == '-') {
        return -1;
    }
    if (*end == 'k' || *end == 'K') {
        shift = 10, end++;
    } else if (*end == 'm' || *end == 'M') {
        shift = 20, end++;
    } else if (*end == 'g' || *end == 'G') {
        shift = 30, end++;
    }
    if (*end || v == 0 || v > (UINT64_MAX >> shift)) {
        return -1;
    }
    *out = (uint64_t)v << shift;
    return 0;
}

/* INIT: zero | fill:TYPE:VALUE | iota:TYPE[:START[:STEP]] | file:PATH */
static int parse_init(char *s, struct init *in)
{
    char *f[4] = { 0 };
    unsigned n = 0;

    memset(in, 0, sizeof(*in));
    in->type = E_U8;
    if (strcmp(s, "zero") == 0) {
        in->kind = I_ZERO;
        return 0;
    }
    if (strncmp(s, "file:", 5) == 0 && s[5]) {
        in->kind = I_FILE;
        in->path = s + 5;
        return 0;
    }
    for (char *p = s; p && n < 4; n++) {
        f[n] = p;
        p = strchr(p, ':');
        if (p) {
            *p++ = '\0';
        }
    }
    if (n < 2 || parse_elem(f[1], strlen(f[1]), &in->type, false) < 0) {
        return -1;
    }
    if (strcmp(f[0], "fill") == 0 && n == 3) {
        in->kind = I_FILL;
        return parse_num(in->type, f[2], &in->start, &in->istart);
    }
    if (strcmp(f[0], "iota") == 0) {
        in->kind = I_IOTA;
        in->step = 1;
        in->istep = 1;
        if (n > 2 && parse_num(in->type, f[2], &in->start, &in->istart) < 0) {
            return -1;
        }
        if (n > 3 && parse_num(in->type, f[3], &in->step, &in->istep) < 0) {
            return -1;
        }
        return 0;
    }
    return -1;
}

static int find_buf(struct run *x, const char *name, size_t len)
{
    for (unsigned i = 0; i < x->nbufs; i++) {
        if (strlen(x->bufs[i].name) == len && strncmp(x->bufs[i].name, name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static int parse_buf(struct run *x, char *s)
{
    char *colon = strchr(s, ':'), *rest;
    struct buf *b;

    if (x->nbufs == MAX_BUFS) {
        return usage_err("at most 16 --buf (%s)", s);
    }
    b = &x->bufs[x->nbufs];
    if (!colon || colon == s || colon - s > NAME_MAX_LEN || find_buf(x, s, colon - s) >= 0) {
        return usage_err("--buf NAME:BYTES[:INIT], NAME new and 1..31 characters: '%s'", s);
    }
    memcpy(b->name, s, colon - s);
    b->name[colon - s] = '\0';
    rest = strchr(colon + 1, ':');
    if (rest) {
        *rest++ = '\0';
    }
    if (parse_bytes(colon + 1, &b->bytes) < 0) {
        return usage_err("--buf %s: BYTES is a positive number, k/m/g allowed", b->name);
    }
    if (rest && parse_init(rest, &b->init) < 0) {
        return usage_err("--buf %s: INIT is zero, fill:TYPE:VALUE, iota:TYPE[:START[:STEP]] "
                         "or file:PATH", b->name);
    }
    x->nbufs++;
    return EXIT_OK;
}

static int parse_arg(struct run *x, char *s)
{
    char *colon = strchr(s, ':');
    struct arg *a;
    double d;
    int64_t i;

    if (x->nargs == MAX_ARGS) {
        return usage_err("at most 64 --arg (%s)", s);
    }
    a = &x->args[x->nargs];
    if (!colon || parse_elem(s, colon - s, &a->type, true) < 0) {
        return usage_err("--arg TYPE:VALUE or ptr:NAME[+OFFSET]: '%s'", s);
    }
    if (a->type == E_PTR) {
        char *plus = strchr(colon + 1, '+'), *end;
        size_t len = plus ? (size_t)(plus - colon - 1) : strlen(colon + 1);

        a->buf = find_buf(x, colon + 1, len);
        if (a->buf < 0) {
            return usage_err("--arg ptr:%s: no such --buf (declare buffers first)", colon + 1);
        }
        a->off = 0;
        if (plus) {
            errno = 0;
            a->off = strtoull(plus + 1, &end, 0);
            if (errno || *end || plus[1] == '-' || a->off > x->bufs[a->buf].bytes) {
                return usage_err("--arg ptr:NAME+OFFSET: OFFSET within the buffer: '%s'", s);
            }
        }
    } else {
        if (parse_num(a->type, colon + 1, &d, &i) < 0) {
            return usage_err("--arg: '%s' is not a value of its type", s);
        }
        if (a->type == E_F32) {
            float f = (float)d;

            memcpy(a->bytes, &f, 4);
        } else if (a->type == E_F64) {
            memcpy(a->bytes, &d, 8);
        } else {
            /* Little-endian, as the GPU takes it. */
            for (unsigned k = 0; k < elems[a->type].size; k++) {
                a->bytes[k] = (uint8_t)((uint64_t)i >> (8 * k));
            }
        }
    }
    x->nargs++;
    return EXIT_OK;
}

/* --out NAME[:TYPE[:COUNT]] | --expect NAME:INIT | --save NAME:PATH */
static int parse_out(struct run *x, int kind, char *s)
{
    char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    struct out *o;

    if (x->nouts == MAX_OUTS) {
        return usage_err("at most 32 of --out, --expect, --save (%s)", s);
    }
    o = &x->outs[x->nouts];
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->type = E_U8;
    o->buf = find_buf(x, s, len);
    if (o->buf < 0) {
        return usage_err("'%s': no such --buf (declare buffers first)", s);
    }
    if (kind == O_SAVE) {
        if (!colon || !colon[1]) {
            return usage_err("--save NAME:PATH: '%s'", s);
        }
        o->path = colon + 1;
    } else if (kind == O_EXPECT) {
        if (!colon || parse_init(colon + 1, &o->init) < 0) {
            return usage_err("--expect NAME:INIT (zero, fill:..., iota:..., file:...): '%s'", s);
        }
        o->type = o->init.type;
    } else if (colon) {
        char *c2 = strchr(colon + 1, ':'), *end;

        if (parse_elem(colon + 1, c2 ? (size_t)(c2 - colon - 1) : strlen(colon + 1), &o->type,
                       false) < 0) {
            return usage_err("--out NAME[:TYPE[:COUNT]]: bad TYPE in '%s'", s);
        }
        if (c2) {
            errno = 0;
            o->count = strtoull(c2 + 1, &end, 0);
            if (errno || *end || o->count == 0 || c2[1] == '-') {
                return usage_err("--out NAME:TYPE:COUNT: bad COUNT in '%s'", s);
            }
        }
    }
    x->nouts++;
    return EXIT_OK;
}

static int parse_dims(const char *s, uint32_t d[3])
{
    char *end;

    d[0] = d[1] = d[2] = 1;
    for (int i = 0; i < 3; i++) {
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 0);
        if (errno || end == s || *s == '-' || v == 0 || v > UINT32_MAX) {
            return -1;
        }
        d[i] = (uint32_t)v;
        if (!*end) {
            return 0;
        }
        if (*end != ',' || i == 2) {
            return -1;
        }
        s = end + 1;
    }
    return -1;
}

/* ---------------------------------------------------------------------- */
/* run-ptx: buffers                                                       */

/* Element i of an INIT, stored in type at p. */
static void put_elem(uint8_t *p, const struct init *in, uint64_t i)
{
    enum elem t = in->type;

    if (elems[t].is_float) {
        double v = in->kind == I_FILL ? in->start : in->start + (double)i * in->step;

        if (t == E_F32) {
            float f = (float)v;

            memcpy(p, &f, 4);
        } else {
            memcpy(p, &v, 8);
        }
    } else {
        /* Wraps like the type does (two's complement). */
        uint64_t v = in->kind == I_FILL ? (uint64_t)in->istart
                     : (uint64_t)in->istart + i * (uint64_t)in->istep;

        for (unsigned k = 0; k < elems[t].size; k++) {
            p[k] = (uint8_t)(v >> (8 * k));
        }
    }
}

/* Fills len bytes at p as in says (a partial last element stays zero). */
static int make_contents(const struct init *in, uint8_t *p, uint64_t len)
{
    memset(p, 0, len);
    if (in->kind == I_ZERO) {
        return EXIT_OK;
    }
    if (in->kind == I_FILE) {
        FILE *f = fopen(in->path, "rb");
        size_t n;

        if (!f) {
            fprintf(stderr, "vgpu-client: run-ptx: %s: %s\n", in->path, strerror(errno));
            return EXIT_USAGE;
        }
        n = fread(p, 1, len, f);
        (void)n;                /* shorter files: the rest stays zero */
        fclose(f);
        return EXIT_OK;
    }
    for (uint64_t i = 0; (i + 1) * elems[in->type].size <= len; i++) {
        put_elem(p + i * elems[in->type].size, in, i);
    }
    return EXIT_OK;
}

static void print_elem(enum elem t, const uint8_t *p)
{
    uint64_t u = 0;

    if (t == E_F32) {
        float f;

        memcpy(&f, p, 4);
        printf(" %.9g", (double)f);
        return;
    }
    if (t == E_F64) {
        double d;

        memcpy(&d, p, 8);
        printf(" %.17g", d);
        return;
    }
    for (unsigned k = 0; k < elems[t].size; k++) {
        u |= (uint64_t)p[k] << (8 * k);
    }
    if (elems[t].is_signed && elems[t].size < 8 && (u >> (8 * elems[t].size - 1)) & 1) {
        u |= ~UINT64_C(0) << (8 * elems[t].size);     /* sign-extend */
    }
    if (elems[t].is_signed) {
        printf(" %" PRId64, (int64_t)u);
    } else {
        printf(" %" PRIu64, u);
    }
}

static bool elem_equal(enum elem t, const uint8_t *got, const uint8_t *want, double tol)
{
    double g, w;

    if (t == E_F32) {
        float gf, wf;

        memcpy(&gf, got, 4);
        memcpy(&wf, want, 4);
        g = gf;
        w = wf;
    } else if (t == E_F64) {
        memcpy(&g, got, 8);
        memcpy(&w, want, 8);
    } else {
        return memcmp(got, want, elems[t].size) == 0;
    }
    if (tol == 0) {
        return memcmp(got, want, elems[t].size) == 0;
    }
    return fabs(g - w) <= tol * fabs(w) || (isnan(g) && isnan(w));
}

static int do_out(struct run *x, const struct out *o, const uint8_t *data)
{
    const struct buf *b = &x->bufs[o->buf];
    unsigned es = elems[o->type].size;
    uint64_t n = b->bytes / es;

    if (o->kind == O_SAVE) {
        FILE *f = fopen(o->path, "wb");

        if (!f || fwrite(data, 1, b->bytes, f) != b->bytes || fclose(f) != 0) {
            fprintf(stderr, "vgpu-client: run-ptx: --save %s: %s\n", o->path, strerror(errno));
            return EXIT_ERROR;
        }
        return EXIT_OK;
    }
    if (o->kind == O_PRINT) {
        if (o->count && o->count < n) {
            n = o->count;
        }
        for (uint64_t i = 0; i < n; i += 8) {
            printf("%s[%" PRIu64 "]:", b->name, i);
            for (uint64_t k = i; k < n && k < i + 8; k++) {
                print_elem(o->type, data + k * es);
            }
            printf("\n");
        }
        return EXIT_OK;
    } else {
        uint8_t *want = malloc(b->bytes);
        uint64_t bad = 0, first = 0;
        int r;

        if (!want) {
            return EXIT_ERROR;
        }
        r = make_contents(&o->init, want, b->bytes);
        if (r) {
            free(want);
            return r;
        }
        /* zero and file: compared byte by byte (their type is u8). */
        for (uint64_t i = 0; i < n; i++) {
            if (!elem_equal(o->type, data + i * es, want + i * es, x->tol) && !bad++) {
                first = i;
            }
        }
        if (bad) {
            printf("%s: %" PRIu64 " of %" PRIu64 " elements wrong; first [%" PRIu64 "]:", b->name,
                   bad, n, first);
            print_elem(o->type, data + first * es);
            printf(", expected");
            print_elem(o->type, want + first * es);
            printf("\n");
        } else {
            printf("%s: %" PRIu64 " elements as expected\n", b->name, n);
        }
        free(want);
        return bad ? EXIT_FAILED : EXIT_OK;
    }
}

/* ---------------------------------------------------------------------- */
/* run-ptx                                                                */

static int read_file(const char *path, uint8_t **data, uint64_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *p = NULL;
    size_t cap = 0, n = 0;

    if (!f) {
        fprintf(stderr, "vgpu-client: run-ptx: %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    for (;;) {
        size_t got;

        if (n + 1 >= cap) {
            uint8_t *q;

            cap = cap ? 2 * cap : 65536;
            if (cap > VGPU_CU_MAX_IMAGE + 1 || !(q = realloc(p, cap))) {
                fprintf(stderr, "vgpu-client: run-ptx: %s: too large\n", path);
                free(p);
                fclose(f);
                return EXIT_USAGE;
            }
            p = q;
        }
        got = fread(p + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            break;
        }
    }
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "vgpu-client: run-ptx: %s: empty\n", path);
        free(p);
        return EXIT_USAGE;
    }
    /* PTX is text the driver reads up to its NUL; ELF (cubin) and fatbin
     * images carry their sizes, a NUL after them is harmless. */
    p[n] = '\0';
    *data = p;
    *len = n + 1;
    return EXIT_OK;
}

static int load_module(struct run *x, uint32_t *module)
{
    uint8_t *image;
    uint64_t len, off;
    int r;

    r = read_file(x->file, &image, &len);
    if (r) {
        return r;
    }
    r = vgpu_cu_module_load_data(x->cu, image, len, module);
    if (r == -EMSGSIZE) {
        /* Larger than the staging ring: a place of its own. */
        r = vgpu_alloc(x->c->dev, len, 64, &off);
        if (r == 0) {
            memcpy(vgpu_ptr(x->c->dev, off), image, len);
            r = vgpu_cu_module_load(x->cu, off, len, module);
        } else {
            fprintf(stderr, "vgpu-client: run-ptx: %s (%" PRIu64 " bytes) does not fit the "
                    "shared memory (--shm-size)\n", x->file, len);
            free(image);
            return EXIT_ERROR;
        }
    }
    free(image);
    return r ? cu_fail(x->c, x->cu, "cu_module_load", r) : EXIT_OK;
}

/* Packs the --arg values as the kernel's parameter layout says. */
static int pack_params(struct run *x, const struct vgpu_cu_func_info *fi,
                       const struct vgpu_cu_param *p, uint8_t *buf)
{
    if (fi->param_count != x->nargs || fi->param_bytes > VGPU_CU_MAX_PARAM_BYTES) {
        fprintf(stderr, "vgpu-client: run-ptx: %s takes %u parameter(s), %u --arg given\n",
                x->kernel, fi->param_count, x->nargs);
        return EXIT_USAGE;
    }
    memset(buf, 0, fi->param_bytes);
    for (unsigned i = 0; i < x->nargs; i++) {
        const struct arg *a = &x->args[i];
        unsigned size = elems[a->type].size;
        uint64_t v;

        if (p[i].size != size || p[i].offset > fi->param_bytes ||
            size > fi->param_bytes - p[i].offset) {
            fprintf(stderr, "vgpu-client: run-ptx: parameter %u of %s is %u bytes, "
                    "--arg %s is %u\n", i, x->kernel, p[i].size, elems[a->type].name, size);
            return EXIT_USAGE;
        }
        if (a->type == E_PTR) {
            v = x->bufs[a->buf].dptr + a->off;
            for (unsigned k = 0; k < 8; k++) {
                buf[p[i].offset + k] = (uint8_t)(v >> (8 * k));
            }
        } else {
            memcpy(buf + p[i].offset, a->bytes, size);
        }
    }
    return EXIT_OK;
}

static int run_kernel(struct run *x)
{
    static struct vgpu_cu_param params[VGPU_CU_MAX_PARAMS];
    static uint8_t packed[VGPU_CU_MAX_PARAM_BYTES];
    struct vgpu_cu_func_info fi;
    struct ctx *c = x->c;
    uint32_t module = 0, func = 0;
    double t0, t1;
    int r, r2;

    r = load_module(x, &module);
    if (r) {
        return r;
    }
    r = vgpu_cu_module_get_function(x->cu, module, x->kernel, &func, &fi, params,
                                    VGPU_CU_MAX_PARAMS);
    if (r) {
        r = cu_fail(c, x->cu, "cu_module_get_function", r);
        goto out_module;
    }
    /* Checked before any allocation: a mismatch is the user's, say so early. */
    r = pack_params(x, &fi, params, packed);
    if (r) {
        goto out_module;
    }
    for (unsigned i = 0; i < x->nbufs; i++) {
        struct buf *b = &x->bufs[i];
        uint8_t *host = malloc(b->bytes);

        if (!host) {
            fprintf(stderr, "vgpu-client: run-ptx: --buf %s: out of memory\n", b->name);
            r = EXIT_ERROR;
            goto out_bufs;
        }
        r = vgpu_cu_mem_alloc(x->cu, b->bytes, &b->dptr);
        if (r) {
            free(host);
            r = cu_fail(c, x->cu, "cu_mem_alloc", r);
            goto out_bufs;
        }
        r = make_contents(&b->init, host, b->bytes);
        if (r == 0) {
            r = vgpu_cu_memcpy_htod(x->cu, b->dptr, host, b->bytes, 0);
            r = r ? cu_fail(c, x->cu, "cu_memcpy_htod", r) : 0;
        }
        free(host);
        if (r) {
            goto out_bufs;
        }
    }
    pack_params(x, &fi, params, packed);    /* again, with the buffers' addresses */
    x->la.func = func;
    x->la.params_len = fi.param_bytes;
    t0 = now_us();
    for (unsigned i = 0; i < x->repeat; i++) {
        r = vgpu_cu_launch_params(x->cu, &x->la, packed);
        if (r) {
            r = cu_fail(c, x->cu, "cu_launch", r);
            goto out_bufs;
        }
    }
    r = vgpu_cu_ctx_sync(x->cu);
    t1 = now_us();
    if (r) {
        r = cu_fail(c, x->cu, "cu_launch (reported by cu_ctx_sync)", r);
        goto out_bufs;
    }
    printf("%s: grid %u,%u,%u block %u,%u,%u shared %u, %u parameter(s) (%u bytes): "
           "%u launch(es) + sync in %.1f us\n", x->kernel, x->la.grid[0], x->la.grid[1],
           x->la.grid[2], x->la.block[0], x->la.block[1], x->la.block[2], x->la.shared_bytes,
           fi.param_count, fi.param_bytes, x->repeat, t1 - t0);
    for (unsigned i = 0; i < x->nouts && r != EXIT_ERROR; i++) {
        const struct buf *b = &x->bufs[x->outs[i].buf];
        uint8_t *host = malloc(b->bytes);

        if (!host) {
            r = EXIT_ERROR;
            break;
        }
        r2 = vgpu_cu_memcpy_dtoh(x->cu, host, b->dptr, b->bytes, 0);
        r2 = r2 ? cu_fail(c, x->cu, "cu_memcpy_dtoh", r2) : do_out(x, &x->outs[i], host);
        free(host);
        if (r2 && (!r || r2 != EXIT_FAILED)) {
            r = r2;     /* the first failure's code; any other error wins over a check */
        }
    }

out_bufs:
    for (unsigned i = 0; i < x->nbufs; i++) {
        if (x->bufs[i].dptr) {
            r2 = vgpu_cu_mem_free(x->cu, x->bufs[i].dptr);
            if (r2 && !r) {
                r = cu_fail(c, x->cu, "cu_mem_free", r2);
            }
            x->bufs[i].dptr = 0;
        }
    }
out_module:
    r2 = vgpu_cu_module_unload(x->cu, module);
    if (r2 && !r) {
        r = cu_fail(c, x->cu, "cu_module_unload", r2);
    }
    return r;
}

int cmd_run_ptx(struct ctx *c, int argc, char **argv)
{
    static const struct option lo[] = {
        { "kernel", required_argument, NULL, 'k' },
        { "grid", required_argument, NULL, 'g' },
        { "block", required_argument, NULL, 'b' },
        { "shared", required_argument, NULL, 's' },
        { "buf", required_argument, NULL, 'B' },
        { "arg", required_argument, NULL, 'a' },
        { "out", required_argument, NULL, 'o' },
        { "expect", required_argument, NULL, 'e' },
        { "save", required_argument, NULL, 'S' },
        { "repeat", required_argument, NULL, 'r' },
        { "tol", required_argument, NULL, 't' },
        { 0 },
    };
    static struct run x;
    char *end;
    int opt, r = EXIT_OK;

    memset(&x, 0, sizeof(x));
    x.c = c;
    x.repeat = 1;
    x.la.grid[0] = x.la.grid[1] = x.la.grid[2] = 1;
    x.la.block[0] = x.la.block[1] = x.la.block[2] = 1;
    while (r == EXIT_OK && (opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        unsigned long v;

        switch (opt) {
        case 'k':
            x.kernel = optarg;
            break;
        case 'g':
            if (parse_dims(optarg, x.la.grid) < 0) {
                r = usage_err("--grid X[,Y[,Z]], each >= 1: '%s'", optarg);
            }
            break;
        case 'b':
            if (parse_dims(optarg, x.la.block) < 0) {
                r = usage_err("--block X[,Y[,Z]], each >= 1: '%s'", optarg);
            }
            break;
        case 's':
        case 'r':
            errno = 0;
            v = strtoul(optarg, &end, 0);
            if (errno || *end || *optarg == '-' || v > UINT32_MAX || (opt == 'r' && !v)) {
                r = usage_err(opt == 's' ? "--shared BYTES: '%s'" : "--repeat N >= 1: '%s'",
                              optarg);
            } else if (opt == 's') {
                x.la.shared_bytes = (uint32_t)v;
            } else {
                x.repeat = (unsigned)v;
            }
            break;
        case 'B':
            r = parse_buf(&x, optarg);
            break;
        case 'a':
            r = parse_arg(&x, optarg);
            break;
        case 'o':
            r = parse_out(&x, O_PRINT, optarg);
            break;
        case 'e':
            r = parse_out(&x, O_EXPECT, optarg);
            break;
        case 'S':
            r = parse_out(&x, O_SAVE, optarg);
            break;
        case 't':
            x.tol = strtod(optarg, &end);
            if (*end || !(x.tol >= 0) || x.tol >= 1) {
                r = usage_err("--tol is a relative tolerance in [0, 1): '%s'", optarg);
            }
            break;
        default:
            r = usage_err("%s", "unknown option");
            break;
        }
    }
    if (r) {
        return r;
    }
    if (optind != argc - 1 || !x.kernel) {
        return usage_err("%s", "run-ptx FILE --kernel NAME [--grid X,Y,Z] [--block X,Y,Z] "
                         "[--shared N] [--buf NAME:BYTES[:INIT]]... [--arg TYPE:VALUE]... "
                         "[--out|--expect|--save ...]...");
    }
    x.file = argv[optind];
    r = cu_open(c, &x.cu, 0);
    if (r) {
        return r;
    }
    r = run_kernel(&x);
    vgpu_cu_close(x.cu);
    return r;
}
