/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ini.h>

#include "vgpu/libvgpu.h"
#include "mediator.h"

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
"usage: %s [options]\n"
"  --socket-path PATH   listening socket (default: $VGPU_SOCKET or %s)\n"
"  --admin-socket PATH  read-only admin socket for statistics (vgpu-smi); 'none': off\n"
"                       (default: beside the socket, NAME.sock -> NAME-ro.sock)\n"
"  --admin-socket-mode MODE  its file mode, octal (default 0666: any local user may\n"
"                       read statistics; connecting needs write permission)\n"
"  --metrics-listen ADDR:PORT  serve Prometheus metrics at http://ADDR:PORT/metrics\n"
"                       (numeric address, e.g. 127.0.0.1:9400; default: off)\n"
"  --backend NAME       auto|cuda|cpu (default auto: cuda if usable, else cpu)\n"
"  --executors N        executor threads (default: 2 on cpu, 8 on cuda: 1 by weight,\n"
"                       the others for requests that waited --max-wait-us and for\n"
"                       stream/event/context syncs)\n"
"  --max-inflight N     requests in flight per VM, 1..%u (default 32)\n"
"  --max-sessions N     connected devices, 1..4096 (default 64)\n"
"  --aging-ms MS        wait after which a request competes one class higher (default 100, 0: off)\n"
"  --quantum-us US      fair-share quantum per unit of weight (default 1000)\n"
"  --inline-us US       run requests estimated below this on the I/O thread (default 20, 0: never)\n"
"  --spin-us US         cap of the adaptive spins before sleeping (executors, CUDA\n"
"                       proxy and worker; default: 1000 on >= 8 CPUs, else 0; 0: never)\n"
"  --mem-quota MIB      device memory per VM (default 0: no limit)\n"
"  --timeout-ms MS      per-request time limit (default 60000, 0: none)\n"
"  --max-wait-us US     cuda: a VM's request that waited this long runs beside the\n"
"                       running ones (another VM's context; default 10000)\n"
"  --slice-us US        run requests expected to take longer in parts of about this\n"
"                       long, other VMs' requests in between (default 5000, 0: never)\n"
"  --hello-timeout-ms MS  close connections silent for this long after connecting, and\n"
"                        admin (--status) connections idle this long (default 10000)\n"
"  --gpu N              use only GPU N (CUDA device ordinal; default: every visible\n"
"                       GPU, each VM placed on the one with the fewest VMs)\n"
"  --config FILE        settings file (INI: [mediator] with any option below as\n"
"                       key = value, flags win; [vm NAME|ID] with priority,\n"
"                       weight, gpu, and for QEMU's stock ivshmem-doorbell device\n"
"                       ivshmem-socket, vm-id, shm-size), or lines\n"
"                       \"vm <name|id> priority P weight W gpu N\"\n"
"                       (its VM settings are read again on SIGHUP)\n"
"  --check-config FILE  validate a settings file and exit (0: usable)\n"
"  --log-level LEVEL    error|warn|info|debug (default info)\n"
"  --status             print the statistics of the running daemon and exit\n"
"  --help               this text\n",
            prog, VGPU_DEFAULT_SOCKET, VGPU_SQ_ENTRIES);
}

unsigned vgpu_spin_auto_us(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n >= 8 ? 1000 : 0;
}

uint64_t vgpu_config_spin_ns(const struct vgpu_config *cfg)
{
    unsigned us = cfg->spin_us >= 0 ? (unsigned)cfg->spin_us : vgpu_spin_auto_us();

    return (uint64_t)us * 1000;
}

static int parse_uint(const char *opt, const char *s, unsigned long long min,
                      unsigned long long max, unsigned long long *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    if (!s || !*s || *s == '-') {
        goto bad;
    }
    v = strtoull(s, &end, 0);
    if (errno || *end || v < min || v > max) {
        goto bad;
    }
    *out = v;
    return 0;
bad:
    fprintf(stderr, "vgpu-mediator: %s: expected a number in %llu..%llu, got '%s'\n",
            opt, min, max, s ? s : "");
    return -EINVAL;
}

/* Set while one line of a settings file goes through parse_argv(). */
/*
 * A shared-memory size: bytes, or with a K, M or G suffix (binary). QEMU's
 * ivshmem puts it in a PCI BAR, which must be a power of two, and the ABI
 * wants 1 MiB .. 64 GiB.
 */
static int parse_size(const char *what, const char *s, uint64_t *out)
{
    unsigned long long v, mul = 1;
    char *end;

    errno = 0;
    v = s ? strtoull(s, &end, 10) : 0;
    if (!s || errno || end == s) {
        log_error("%s: '%s' is not a size (e.g. 64M)", what, s ? s : "");
        return -EINVAL;
    }
    switch (*end) {
    case 'K': case 'k': mul = 1ull << 10; end++; break;
    case 'M': case 'm': mul = 1ull << 20; end++; break;
    case 'G': case 'g': mul = 1ull << 30; end++; break;
    }
    if (*end || v > VGPU_SHM_MAX_SIZE / mul || v * mul < VGPU_SHM_MIN_SIZE ||
        ((v * mul) & (v * mul - 1))) {
        log_error("%s: '%s': a power of two from 1M to 64G", what, s);
        return -EINVAL;
    }
    *out = v * mul;
    return 0;
}

static bool checking_file;

static int parse_argv(struct vgpu_config *cfg, int argc, char **argv)
{
    enum {
        O_SOCKET = 256, O_BACKEND, O_EXECUTORS, O_MAX_INFLIGHT, O_MAX_SESSIONS, O_AGING,
        O_QUANTUM, O_INLINE, O_SPIN, O_MEM_QUOTA, O_TIMEOUT, O_GPU, O_CONFIG, O_LOG_LEVEL, O_STATUS,
        O_HELP, O_HELLO_TIMEOUT, O_SLICE, O_MAX_WAIT, O_ADMIN_SOCKET, O_ADMIN_MODE,
        O_METRICS, O_CHECK,
    };
    static const struct option longopts[] = {
        { "socket-path",  required_argument, NULL, O_SOCKET },
        { "admin-socket", required_argument, NULL, O_ADMIN_SOCKET },
        { "admin-socket-mode", required_argument, NULL, O_ADMIN_MODE },
        { "metrics-listen", required_argument, NULL, O_METRICS },
        { "backend",      required_argument, NULL, O_BACKEND },
        { "executors",    required_argument, NULL, O_EXECUTORS },
        { "max-inflight", required_argument, NULL, O_MAX_INFLIGHT },
        { "max-sessions", required_argument, NULL, O_MAX_SESSIONS },
        { "aging-ms",     required_argument, NULL, O_AGING },
        { "quantum-us",   required_argument, NULL, O_QUANTUM },
        { "inline-us",    required_argument, NULL, O_INLINE },
        { "spin-us",      required_argument, NULL, O_SPIN },
        { "mem-quota",    required_argument, NULL, O_MEM_QUOTA },
        { "timeout-ms",   required_argument, NULL, O_TIMEOUT },
        { "slice-us",     required_argument, NULL, O_SLICE },
        { "max-wait-us",  required_argument, NULL, O_MAX_WAIT },
        { "hello-timeout-ms", required_argument, NULL, O_HELLO_TIMEOUT },
        { "gpu",          required_argument, NULL, O_GPU },
        { "config",       required_argument, NULL, O_CONFIG },
        { "check-config", required_argument, NULL, O_CHECK },
        { "log-level",    required_argument, NULL, O_LOG_LEVEL },
        { "status",       no_argument,       NULL, O_STATUS },
        { "help",         no_argument,       NULL, O_HELP },
        { NULL, 0, NULL, 0 },
    };
    const char *env = getenv("VGPU_SOCKET");
    const char *admin = NULL;
    unsigned long long v;
    int c, lvl;

    *cfg = (struct vgpu_config) {
        .socket_path = env && *env ? env : VGPU_DEFAULT_SOCKET,
        .backend = "auto",
        .max_inflight = 32,
        .max_sessions = 64,
        .aging_ms = 100,
        .quantum_us = 1000,
        .inline_max_us = 20,
        .spin_us = -1,
        .hello_timeout_ms = 10000,
        .timeout_ms = 60000,
        .slice_us = 5000,
        .max_wait_us = 10000,
        .log_level = VGPU_LOG_INFO,
        .admin_socket_mode = 0666,
    };
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET:
            if (!*optarg || strlen(optarg) >= 108) {
                fprintf(stderr, "vgpu-mediator: --socket-path: empty or longer than 107 bytes\n");
                return -EINVAL;
            }
            cfg->socket_path = optarg;
            break;
        case O_ADMIN_SOCKET:
            if (!*optarg || strlen(optarg) >= 108) {
                fprintf(stderr, "vgpu-mediator: --admin-socket: empty or longer than 107 bytes\n");
                return -EINVAL;
            }
            admin = optarg;
            break;
        case O_ADMIN_MODE: {
            char *end;
            errno = 0;
            v = strtoull(optarg, &end, 8);
            if (errno || !*optarg || *end || v > 0777) {
                fprintf(stderr, "vgpu-mediator: --admin-socket-mode: an octal mode 0..0777, "
                        "not '%s'\n", optarg);
                return -EINVAL;
            }
            cfg->admin_socket_mode = (unsigned)v;
            break;
        }
        case O_METRICS: {
            struct sockaddr_storage ss;
            socklen_t sl;
            if (vgpu_config_parse_listen(optarg, &ss, &sl) < 0) {
                fprintf(stderr, "vgpu-mediator: --metrics-listen: a numeric ADDR:PORT (e.g. "
                        "127.0.0.1:9400, [::1]:9400, :9400), not '%s'\n", optarg);
                return -EINVAL;
            }
            cfg->metrics_listen = optarg;
            break;
        }
        case O_BACKEND:
            if (strcmp(optarg, "auto") && strcmp(optarg, "cuda") && strcmp(optarg, "cpu")) {
                fprintf(stderr, "vgpu-mediator: --backend: auto, cuda or cpu, not '%s'\n", optarg);
                return -EINVAL;
            }
            cfg->backend = optarg;
            break;
        case O_EXECUTORS:
            if (parse_uint("--executors", optarg, 1, 64, &v)) return -EINVAL;
            cfg->executors = (unsigned)v;
            break;
        case O_MAX_INFLIGHT:
            if (parse_uint("--max-inflight", optarg, 1, VGPU_SQ_ENTRIES, &v)) return -EINVAL;
            cfg->max_inflight = (unsigned)v;
            break;
        case O_MAX_SESSIONS:
            if (parse_uint("--max-sessions", optarg, 1, 4096, &v)) return -EINVAL;
            cfg->max_sessions = (unsigned)v;
            break;
        case O_AGING:
            if (parse_uint("--aging-ms", optarg, 0, 3600000, &v)) return -EINVAL;
            cfg->aging_ms = (unsigned)v;
            break;
        case O_QUANTUM:
            if (parse_uint("--quantum-us", optarg, 1, 10000000, &v)) return -EINVAL;
            cfg->quantum_us = (unsigned)v;
            break;
        case O_INLINE:
            if (parse_uint("--inline-us", optarg, 0, 100000, &v)) return -EINVAL;
            cfg->inline_max_us = (unsigned)v;
            break;
        case O_SPIN:
            if (parse_uint("--spin-us", optarg, 0, 100000, &v)) return -EINVAL;
            cfg->spin_us = (int)v;
            break;
        case O_MEM_QUOTA:
            if (parse_uint("--mem-quota", optarg, 0, 1ull << 30, &v)) return -EINVAL;
            cfg->mem_quota_mib = v;
            break;
        case O_TIMEOUT:
            if (parse_uint("--timeout-ms", optarg, 0, 3600000, &v)) return -EINVAL;
            cfg->timeout_ms = (unsigned)v;
            break;
        case O_MAX_WAIT:
            if (parse_uint("--max-wait-us", optarg, 100, 10000000, &v)) return -EINVAL;
            cfg->max_wait_us = (unsigned)v;
            break;
        case O_SLICE:
            if (parse_uint("--slice-us", optarg, 0, 10000000, &v)) return -EINVAL;
            cfg->slice_us = (unsigned)v;
            break;
        case O_HELLO_TIMEOUT:
            if (parse_uint("--hello-timeout-ms", optarg, 100, 3600000, &v)) return -EINVAL;
            cfg->hello_timeout_ms = (unsigned)v;
            break;
        case O_GPU:
            if (parse_uint("--gpu", optarg, 0, 255, &v)) return -EINVAL;
            cfg->gpu_index = (int)v;
            cfg->gpu_given = true;
            break;
        case O_CONFIG:
            cfg->config_file = optarg;
            break;
        case O_CHECK:
            cfg->check_config = optarg;
            break;
        case O_LOG_LEVEL:
            lvl = vgpu_log_parse_level(optarg);
            if (lvl < 0) {
                fprintf(stderr, "vgpu-mediator: --log-level: error, warn, info or debug, not '%s'\n",
                        optarg);
                return -EINVAL;
            }
            cfg->log_level = lvl;
            break;
        case O_STATUS:
            cfg->status = true;
            break;
        case O_HELP:
        case 'h':
            usage(stdout, argv[0]);
            return 1;
        default:
            if (!checking_file) {   /* getopt said what; a file's line number follows */
                usage(stderr, argv[0]);
            }
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vgpu-mediator: unexpected argument '%s'\n", argv[optind]);
        return -EINVAL;
    }
    if (admin) {
        cfg->admin_socket_path = strcmp(admin, "none") == 0 ? NULL : admin;
    } else if (vgpu_config_admin_default(cfg->socket_path, cfg->admin_socket_buf,
                                         sizeof(cfg->admin_socket_buf)) == 0) {
        cfg->admin_socket_path = cfg->admin_socket_buf;
    } else {
        fprintf(stderr, "vgpu-mediator: the admin socket's default path beside %s is longer "
                "than 107 bytes; give --admin-socket PATH or none\n", cfg->socket_path);
        return -EINVAL;
    }
    if (cfg->admin_socket_path && strcmp(cfg->admin_socket_path, cfg->socket_path) == 0) {
        fprintf(stderr, "vgpu-mediator: --admin-socket must differ from --socket-path\n");
        return -EINVAL;
    }
    return 0;
}

int vgpu_config_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
    };
    struct addrinfo *ai = NULL;
    char host[64];
    const char *colon = strrchr(s, ':');
    const char *port;
    char *end;
    unsigned long p;
    size_t hl;

    if (!colon) {
        return -EINVAL;
    }
    port = colon + 1;
    errno = 0;
    p = strtoul(port, &end, 10);
    if (!*port || *end || errno || p < 1 || p > 65535) {
        return -EINVAL;
    }
    hl = (size_t)(colon - s);
    if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {   /* [::1]:9400 */
        s++;
        hl -= 2;
    }
    if (hl >= sizeof(host)) {
        return -EINVAL;
    }
    memcpy(host, s, hl);
    host[hl] = '\0';
    if (getaddrinfo(hl ? host : NULL, port, &hints, &ai) != 0 || !ai) {
        return -EINVAL;
    }
    if (ai->ai_addrlen > sizeof(*ss)) {
        freeaddrinfo(ai);
        return -EINVAL;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int vgpu_config_admin_default(const char *socket_path, char *buf, size_t len)
{
    size_t n = strlen(socket_path);
    int w;

    if (n > 5 && strcmp(socket_path + n - 5, ".sock") == 0) {
        w = snprintf(buf, len, "%.*s-ro.sock", (int)(n - 5), socket_path);
    } else {
        w = snprintf(buf, len, "%s-ro", socket_path);
    }
    return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

static char *next_token(char **p)
{
    char *s = *p, *t;

    while (*s && isspace((unsigned char)*s)) {
        s++;
    }
    if (!*s) {
        *p = s;
        return NULL;
    }
    t = s;
    while (*s && !isspace((unsigned char)*s)) {
        s++;
    }
    if (*s) {
        *s++ = '\0';
    }
    *p = s;
    return t;
}

/* ------------------------------------------------------------------------
 * The INI format, parsed by inih (Debian's libinih):
 *
 *   [mediator]              every command-line option, without its "--"
 *   executors = 4
 *   timeout-ms = 60000
 *   [vm 12]                 a VM by id, or [vm web-1] by name
 *   priority = 0
 *   weight = 3
 *   gpu = 1
 *
 * [mediator] settings become "--key=value" arguments placed before the real
 * command line, so a flag given there wins and every value goes through the
 * one parser that checks options. A file whose first line that is not blank
 * or a comment starts with '[' is INI; any other is the older line format.
 * ------------------------------------------------------------------------ */

/* A VM named by id (digits) or name, as "vm WHO" lines and [vm WHO]
 * sections give it: fills o's identity. where: "config PATH[:LINE]". */
static int vm_who(const char *where, const char *who, struct vgpu_vm_override *o)
{
    unsigned long long v;
    char *end;

    *o = (struct vgpu_vm_override) { .priority = -1, .weight = -1, .gpu = -1 };
    if (!*who) {
        log_error("%s: 'vm' needs a name or an id", where);
        return -EINVAL;
    }
    if (isdigit((unsigned char)*who)) {
        errno = 0;
        v = strtoull(who, &end, 0);
        if (errno || *end || v > UINT32_MAX) {
            log_error("%s: bad vm id '%s'", where, who);
            return -EINVAL;
        }
        o->by_id = true;
        o->has_vm_id = true;
        o->vm_id = (uint32_t)v;
    } else if (strlen(who) >= sizeof(o->name)) {
        log_error("%s: vm name longer than 63 bytes", where);
        return -EINVAL;
    } else {
        strcpy(o->name, who);
    }
    return 0;
}

/* One VM setting: priority, weight or gpu. */
static int vm_key(const char *where, const char *key, const char *value,
                  struct vgpu_vm_override *o)
{
    unsigned long long v;
    char what[160];

    snprintf(what, sizeof(what), "%s: %s", where, key);
    if (strcmp(key, "priority") == 0) {
        if (parse_uint(what, value, 0, VGPU_PRIO_CLASSES - 1, &v)) return -EINVAL;
        o->priority = (int32_t)v;
    } else if (strcmp(key, "weight") == 0) {
        if (parse_uint(what, value, 1, VGPU_WEIGHT_MAX, &v)) return -EINVAL;
        o->weight = (int32_t)v;
    } else if (strcmp(key, "gpu") == 0) {
        if (parse_uint(what, value, 0, 255, &v)) return -EINVAL;
        o->gpu = (int32_t)v;
    } else if (strcmp(key, "ivshmem-socket") == 0) {
        if (!value || value[0] != '/' || strlen(value) >= sizeof(o->ivshmem_socket)) {
            log_error("%s: an absolute path of at most %zu bytes", what,
                      sizeof(o->ivshmem_socket) - 1);
            return -EINVAL;
        }
        strcpy(o->ivshmem_socket, value);
    } else if (strcmp(key, "vm-id") == 0) {
        if (o->by_id) {
            log_error("%s: the section names the vm by id already", what);
            return -EINVAL;
        }
        if (parse_uint(what, value, 0, UINT32_MAX, &v)) return -EINVAL;
        o->vm_id = (uint32_t)v;
        o->has_vm_id = true;
    } else if (strcmp(key, "shm-size") == 0) {
        if (parse_size(what, value, &o->shm_size)) return -EINVAL;
    } else {
        log_error("%s: unknown vm key '%s' (priority, weight, gpu, ivshmem-socket, vm-id, "
                  "shm-size)", where, key);
        return -EINVAL;
    }
    return 0;
}

/* The ivshmem keys of one [vm] are complete and consistent. 0 or -EINVAL. */
static int vm_check(const char *where, struct vgpu_vm_override *o)
{
    if (!o->ivshmem_socket[0]) {
        if (o->shm_size || (o->has_vm_id && !o->by_id)) {
            log_error("%s: vm %s: vm-id and shm-size go with ivshmem-socket", where,
                      o->by_id ? "(by id)" : o->name);
            return -EINVAL;
        }
        return 0;
    }
    if (!o->has_vm_id) {
        log_error("%s: vm %s: ivshmem-socket needs vm-id (the VM's identity comes from here)",
                  where, o->name);
        return -EINVAL;
    }
    if (!o->shm_size) {
        o->shm_size = VGPU_DEFAULT_SHM_SIZE;
    }
    return 0;
}

struct ini_ctx {
    const char *path;
    const char *argv0;
    struct vgpu_config *cfg;    /* [vm] sections go here; NULL: skip them */
    char      **args;           /* [mediator] as "--key=value" */
    unsigned    n_args;
    char       *text;           /* [mediator] as "key=value\n" */
    size_t      text_len;
    struct vgpu_vm_override vm; /* the [vm] section being read */
    char        vm_section[80];
    bool        in_vm;
};

static bool file_is_ini(const char *path)
{
    char line[512];
    bool ini = false;
    FILE *f = fopen(path, "re");

    if (!f) {
        return false;           /* the line parser says why */
    }
    while (fgets(line, sizeof(line), f)) {
        const char *p = line;

        while (isspace((unsigned char)*p)) {
            p++;
        }
        if (*p && *p != '#' && *p != ';') {
            ini = *p == '[';
            break;
        }
    }
    fclose(f);
    return ini;
}

static int push_override(struct vgpu_config *cfg, const struct vgpu_vm_override *o)
{
    if (cfg->n_overrides >= VGPU_MAX_VM_OVERRIDES) {
        return -E2BIG;
    }
    if (!cfg->overrides) {
        cfg->overrides = calloc(VGPU_MAX_VM_OVERRIDES, sizeof(*cfg->overrides));
        if (!cfg->overrides) {
            return -ENOMEM;
        }
    }
    cfg->overrides[cfg->n_overrides++] = *o;
    return 0;
}

/* Ends the [vm] section being read, if any. 0 or -errno. */
static int ini_vm_flush(struct ini_ctx *c)
{
    int r = 0;

    if (c->in_vm) {
        char where[160];

        snprintf(where, sizeof(where), "config %s", c->path);
        r = vm_check(where, &c->vm);
    }
    if (r == 0 && c->in_vm && c->cfg) {
        r = push_override(c->cfg, &c->vm);
        if (r < 0) {
            fprintf(stderr, "vgpu-mediator: config %s: more than %u [vm] sections\n", c->path,
                    VGPU_MAX_VM_OVERRIDES);
        }
    }
    c->in_vm = false;
    return r;
}

/* A [vm NAME|ID] header. */
static int ini_vm_begin(struct ini_ctx *c, const char *section)
{
    const char *who = section + 2;
    char where[160];

    while (isspace((unsigned char)*who)) {
        who++;
    }
    snprintf(where, sizeof(where), "config %s", c->path);
    if (vm_who(where, who, &c->vm) < 0) {
        return -EINVAL;
    }
    c->in_vm = true;
    return 0;
}

static int ini_vm_key(struct ini_ctx *c, const char *name, const char *value)
{
    char where[160];

    snprintf(where, sizeof(where), "config %s", c->path);
    return vm_key(where, name, value, &c->vm);
}

/* A [gpu N] key: use = yes|no (no: no VM is placed there). */
static int ini_gpu_key(struct ini_ctx *c, const char *which, const char *name, const char *value)
{
    unsigned long long n;
    char what[96];

    snprintf(what, sizeof(what), "config %s: [gpu]", c->path);
    while (*which == ' ' || *which == '\t') {
        which++;
    }
    if (parse_uint(what, which, 0, 63, &n)) {
        return -EINVAL;
    }
    if (strcmp(name, "use") != 0) {
        fprintf(stderr, "vgpu-mediator: config %s: unknown [gpu] key '%s' (use)\n", c->path,
                name);
        return -EINVAL;
    }
    if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0) {
        fprintf(stderr, "vgpu-mediator: config %s: [gpu %llu] use: yes or no, not '%s'\n",
                c->path, n, value);
        return -EINVAL;
    }
    if (c->cfg) {
        if (strcmp(value, "no") == 0) {
            c->cfg->gpu_unused |= 1ull << n;
        } else {
            c->cfg->gpu_unused &= ~(1ull << n);
        }
    }
    return 0;
}

/* A [mediator] key: checked alone by the option parser, then kept. */
static int ini_mediator_key(struct ini_ctx *c, const char *name, const char *value)
{
    struct vgpu_config scratch;
    char *arg, *one[3], **grown, *text;
    size_t len = strlen(name) + strlen(value) + 2;
    int r;

    if (strcmp(name, "config") == 0 || strcmp(name, "check-config") == 0 ||
        strcmp(name, "status") == 0 || strcmp(name, "help") == 0) {
        fprintf(stderr, "vgpu-mediator: config %s: '%s' belongs on the command line only\n",
                c->path, name);
        return -EINVAL;
    }
    arg = malloc(len + 2);
    if (!arg) {
        return -ENOMEM;
    }
    snprintf(arg, len + 2, "--%s=%s", name, value);
    one[0] = (char *)c->argv0;
    one[1] = arg;
    one[2] = NULL;
    memset(&scratch, 0, sizeof(scratch));
    checking_file = true;
    r = parse_argv(&scratch, 2, one);
    checking_file = false;
    if (r != 0) {
        free(arg);
        return -EINVAL;     /* the parser said why */
    }
    grown = realloc(c->args, (c->n_args + 1) * sizeof(*grown));
    text = realloc(c->text, c->text_len + len + 1);
    if (grown) {
        c->args = grown;
    }
    if (text) {
        c->text = text;
    }
    if (!grown || !text) {
        free(arg);
        return -ENOMEM;
    }
    c->args[c->n_args++] = arg;
    c->text_len += (size_t)snprintf(c->text + c->text_len, len + 1, "%s=%s\n", name, value);
    return 0;
}

/* inih's callback: nonzero to go on; 0 stops with this line as the error. */
static int ini_on_entry(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *c = user;

    if (!name) {
        return 1;       /* a section header alone (only with INI_CALL_HANDLER_ON_NEW_SECTION) */
    }
    if (strcmp(section, "mediator") == 0) {
        return ini_mediator_key(c, name, value) == 0;
    }
    if (strncmp(section, "gpu", 3) == 0 && (section[3] == ' ' || section[3] == '\t')) {
        return ini_gpu_key(c, section + 3, name, value) == 0;
    }
    if (strncmp(section, "vm", 2) == 0 && (section[2] == ' ' || section[2] == '\t')) {
        char key[80];

        /* inih has no "new section" event here: a header differs from the last. */
        snprintf(key, sizeof(key), "%s", section);
        if (!c->in_vm || strcmp(c->vm_section, key) != 0) {
            if (ini_vm_flush(c) < 0 || ini_vm_begin(c, section) < 0) {
                return 0;
            }
            snprintf(c->vm_section, sizeof(c->vm_section), "%s", key);
        }
        return ini_vm_key(c, name, value) == 0;
    }
    fprintf(stderr, "vgpu-mediator: config %s: unknown section [%s] ([mediator], [vm NAME|ID],"
            " [gpu N])\n", c->path, section);
    return 0;
}

/* Parses path into c; 0, or -EINVAL after saying where. */
static int ini_load(struct ini_ctx *c)
{
    int r = ini_parse(c->path, ini_on_entry, c);

    if (r == 0) {
        r = ini_vm_flush(c) < 0 ? -1 : 0;
    }
    if (r > 0) {
        fprintf(stderr, "vgpu-mediator: config %s:%d: not applied (see above)\n", c->path, r);
        log_error("config %s:%d: invalid", c->path, r);
    } else if (r < 0) {
        fprintf(stderr, "vgpu-mediator: config %s: %s\n", c->path,
                r == -1 ? strerror(errno) : "cannot be read");
        log_error("config %s: cannot be read", c->path);
    }
    return r == 0 ? 0 : -EINVAL;
}

static void ini_ctx_free(struct ini_ctx *c)
{
    for (unsigned i = 0; i < c->n_args; i++) {
        free(c->args[i]);
    }
    free(c->args);
    free(c->text);
}

/* The FILE of --config FILE / --config=FILE in argv, or NULL. */
static const char *config_arg(int argc, char **argv)
{
    const char *file = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        }
    }
    return file;
}

int vgpu_config_parse_args(struct vgpu_config *cfg, int argc, char **argv)
{
    const char *file = config_arg(argc, argv);
    struct ini_ctx c = { .path = file, .argv0 = argv[0] };
    char **all;
    int r, n = 0;

    if (!file || !file_is_ini(file)) {
        return parse_argv(cfg, argc, argv);
    }
    if (ini_load(&c) < 0) {
        ini_ctx_free(&c);
        return -EINVAL;
    }
    all = calloc(c.n_args + (unsigned)argc + 1, sizeof(*all));
    if (!all) {
        ini_ctx_free(&c);
        return -ENOMEM;
    }
    all[n++] = argv[0];
    for (unsigned i = 0; i < c.n_args; i++) {
        all[n++] = c.args[i];
    }
    for (int i = 1; i < argc; i++) {
        all[n++] = argv[i];
    }
    r = parse_argv(cfg, n, all);
    free(all);
    /* cfg's strings may point into the file's arguments: they live with cfg. */
    cfg->file_args = c.args;
    cfg->n_file_args = c.n_args;
    cfg->file_settings = c.text;
    return r;
}

int vgpu_config_check(const char *path, const char *argv0)
{
    struct vgpu_config cfg = { 0 };
    struct ini_ctx c = { .path = path, .argv0 = argv0, .cfg = &cfg };
    int r;

    if (file_is_ini(path)) {
        r = ini_load(&c);
        if (r == 0) {
            printf("config %s: ok: %u [mediator] setting(s), %u [vm] section(s)%s\n", path,
                   c.n_args, cfg.n_overrides, cfg.gpu_unused ? ", GPUs set aside" : "");
        }
        ini_ctx_free(&c);
    } else {
        r = vgpu_config_load_file(&cfg, path);
        if (r == 0) {
            printf("config %s: ok: %u vm line(s)\n", path, cfg.n_overrides);
        } else {
            fprintf(stderr, "vgpu-mediator: config %s: not usable (see the log above)\n", path);
        }
    }
    vgpu_config_free(&cfg);
    return r;
}

static int load_lines(struct vgpu_config *cfg, const char *path);

int vgpu_config_load_file(struct vgpu_config *cfg, const char *path)
{
    struct ini_ctx c = { .path = path, .argv0 = "vgpu-mediator", .cfg = cfg };
    int r;

    if (!file_is_ini(path)) {
        return load_lines(cfg, path);
    }
    /* [mediator] is checked again (a reload tells what changed in it). */
    r = ini_load(&c);
    if (r == 0) {
        free(cfg->file_settings_seen);
        cfg->file_settings_seen = c.text;
        c.text = NULL;
    }
    ini_ctx_free(&c);
    return r;
}

/* The older format: "vm <name|id> priority P weight W gpu N" lines. */
static int load_lines(struct vgpu_config *cfg, const char *path)
{
    char line[512];
    unsigned lineno = 0;
    int ret = 0;
    FILE *f = fopen(path, "re");

    if (!f) {
        ret = -errno;
        log_error("config %s: %s", path, strerror(errno));
        return ret;
    }
    while (fgets(line, sizeof(line), f)) {
        struct vgpu_vm_override o;
        char *p = line, *tok, *key, *hash, where[160];

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            log_error("config %s:%u: line longer than %zu bytes", path, lineno, sizeof(line) - 2);
            ret = -EINVAL;
            goto out;
        }
        hash = strchr(line, '#');
        if (hash) {
            *hash = '\0';
        }
        tok = next_token(&p);
        if (!tok) {
            continue;
        }
        if (strcmp(tok, "vm") != 0) {
            log_error("config %s:%u: expected 'vm', got '%s'", path, lineno, tok);
            ret = -EINVAL;
            goto out;
        }
        snprintf(where, sizeof(where), "config %s:%u", path, lineno);
        tok = next_token(&p);
        if (vm_who(where, tok ? tok : "", &o) < 0) {
            ret = -EINVAL;
            goto out;
        }
        while ((key = next_token(&p))) {
            if (vm_key(where, key, next_token(&p), &o) < 0) {
                ret = -EINVAL;
                goto out;
            }
        }
        ret = vm_check(where, &o);
        if (ret == 0) {
            ret = push_override(cfg, &o);
        }
        if (ret < 0) {
            if (ret == -E2BIG) {
                log_error("%s: more than %u vm lines", where, VGPU_MAX_VM_OVERRIDES);
            }
            goto out;
        }
    }
    if (ferror(f)) {
        ret = -EIO;
        log_error("config %s: read error", path);
    }
out:
    fclose(f);
    return ret;
}

void vgpu_config_free(struct vgpu_config *cfg)
{
    free(cfg->overrides);
    cfg->overrides = NULL;
    cfg->n_overrides = 0;
    for (unsigned i = 0; i < cfg->n_file_args; i++) {
        free(cfg->file_args[i]);
    }
    free(cfg->file_args);
    cfg->file_args = NULL;
    cfg->n_file_args = 0;
    free(cfg->file_settings);
    cfg->file_settings = NULL;
    free(cfg->file_settings_seen);
    cfg->file_settings_seen = NULL;
}

static const struct vgpu_vm_override *config_match(const struct vgpu_config *cfg,
                                                   uint32_t vm_id, const char *name)
{
    /* The last matching line wins, as in most config formats. */
    for (unsigned i = cfg->n_overrides; i-- > 0;) {
        const struct vgpu_vm_override *o = &cfg->overrides[i];
        if (o->by_id ? o->vm_id == vm_id : (name[0] && strcmp(o->name, name) == 0)) {
            return o;
        }
    }
    return NULL;
}

int vgpu_config_gpu(const struct vgpu_config *cfg, uint32_t vm_id, const char *name)
{
    const struct vgpu_vm_override *o = config_match(cfg, vm_id, name);

    return o ? o->gpu : -1;
}

void vgpu_config_apply(const struct vgpu_config *cfg, uint32_t vm_id, const char *name,
                       uint32_t *prio, uint32_t *weight)
{
    const struct vgpu_vm_override *o = config_match(cfg, vm_id, name);

    if (o && o->priority >= 0) {
        *prio = (uint32_t)o->priority;
    }
    if (o && o->weight >= 0) {
        *weight = (uint32_t)o->weight;
    }
}

/* Logs each [mediator] line that differs between two loads: those settings
 * take effect at the next start only. */
static void report_mediator_changes(const char *before, const char *after)
{
    const char *texts[2] = { after ? after : "", before ? before : "" };

    for (int side = 0; side < 2; side++) {
        const char *p = texts[side];

        while (*p) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            const char *q = texts[!side];
            bool found = false;

            while (*q && !found) {
                const char *qnl = strchr(q, '\n');
                size_t qlen = qnl ? (size_t)(qnl - q) : strlen(q);

                found = qlen == len && memcmp(p, q, len) == 0;
                q += qlen + (qnl ? 1 : 0);
            }
            if (!found) {
                log_warn("reload: [mediator] %s %.*s: takes effect at the next restart",
                         side == 0 ? "now says" : "no longer says", (int)len, p);
            }
            p += len + (nl ? 1 : 0);
        }
    }
}

int vgpu_config_reload(struct vgpu_mediator *m)
{
    struct vgpu_config fresh = { 0 };
    struct vgpu_vm_override *old;
    unsigned n_old, changed = 0, live = 0;
    int r;

    if (!m->cfg.config_file) {
        log_info("reload: no --config file; nothing to reload (every other setting needs a restart)");
        return 0;
    }
    /* Parsed aside: a file that does not parse whole changes nothing. */
    r = vgpu_config_load_file(&fresh, m->cfg.config_file);
    if (r < 0) {
        vgpu_config_free(&fresh);
        log_error("reload: config %s not applied (%s); the %u override(s) in use stay",
                  m->cfg.config_file, strerror(-r), m->cfg.n_overrides);
        return r;
    }

    report_mediator_changes(m->cfg.file_settings_seen, fresh.file_settings_seen);
    if (fresh.gpu_unused != m->cfg.gpu_unused) {
        log_warn("reload: the [gpu] sections changed: they take effect at the next restart");
    }
    free(m->cfg.file_settings_seen);
    m->cfg.file_settings_seen = fresh.file_settings_seen;
    fresh.file_settings_seen = NULL;

    pthread_mutex_lock(&m->lock);
    old = m->cfg.overrides;
    n_old = m->cfg.n_overrides;
    m->cfg.overrides = fresh.overrides;
    m->cfg.n_overrides = fresh.n_overrides;
    for (struct vgpu_session *s = m->conns; s; s = s->next) {
        uint32_t prio, weight;

        if (s->state != VGPU_CONN_ACTIVE) {
            continue;
        }
        live++;
        prio = s->hello_prio;
        weight = s->hello_weight;
        vgpu_config_apply(&m->cfg, s->vm_id, s->vm_name, &prio, &weight);
        if (prio == s->prio && weight == s->weight) {
            continue;
        }
        log_info("reload: session %u: vm %u '%s': priority %u -> %u, weight %u -> %u%s",
                 s->id, s->vm_id, s->vm_name, s->prio, prio, s->weight, weight,
                 (prio != s->hello_prio || weight != s->hello_weight) ? " (from config)"
                                                                      : " (the device's own)");
        s->prio = prio;
        s->weight = weight;
        vgpu_sched_entity_set(&m->sched, &s->ent, prio, weight);
        changed++;
    }
    pthread_mutex_unlock(&m->lock);
    log_info("reload: config %s: %u override(s), was %u; %u of %u connected VM(s) changed",
             m->cfg.config_file, fresh.n_overrides, n_old, changed, live);
    free(old);
    return 0;
}
