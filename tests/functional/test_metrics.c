/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * --metrics-listen: /metrics of a real mediator with VMs attached, in the
 * Prometheus text format (checked by Prometheus's own `promtool check
 * metrics` when it is installed: Debian package prometheus), counters that
 * only grow between scrapes, a scrape beside a client that never sends
 * anything, and 404 elsewhere; then scrapes while 8 clients run (every VM's
 * counter monotonic) and, once they are idle, the same request counts as
 * vgpu-smi's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vgpu/libvgpu.h"
#include "fhelp.h"

#define NDEV 3
#define SHM  (1u << 20)

static struct fh_mediator med;
static struct fh_dev devs[NDEV];
static unsigned port;

/* A free TCP port on 127.0.0.1 (the kernel's pick; free again once closed). */
static unsigned free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned p = 0;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
        p = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return p;
}

static int tcp_connect(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* GET path; returns the whole response (malloc) or NULL. HTTP/1.0: the
 * server closes when done. */
static char *http_get(const char *path)
{
    char req[256];
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    uint64_t deadline = fh_now_ms() + 5000;
    int fd = tcp_connect();

    if (fd < 0 || !buf) {
        free(buf);
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
        goto fail;
    }
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (fh_now_ms() >= deadline || poll(&pfd, 1, 1000) < 0) {
            goto fail;
        }
        if (len + 4096 > cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                goto fail;
            }
            buf = b;
            cap *= 2;
        }
        n = recv(fd, buf + len, cap - len - 1, MSG_DONTWAIT);
        if (n == 0) {
            break;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            goto fail;
        }
        if (n > 0) {
            len += (size_t)n;
        }
    }
    buf[len] = '\0';
    close(fd);
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

/* The value of the sample line that starts with `series ` (name + labels). */
static double sample(const char *text, const char *series)
{
    char key[256];
    const char *p;

    snprintf(key, sizeof(key), "\n%s ", series);
    p = text ? strstr(text, key) : NULL;
    return p ? strtod(p + strlen(key), NULL) : -1;
}

static bool nops(unsigned k, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = i };
        struct vgpu_cqe cqe;

        fh_dev_queue(&devs[k], &sqe);
        if (fh_dev_kick(&devs[k]) < 0 || fh_dev_wait(&devs[k], &cqe, 5000) < 0 ||
            cqe.status != VGPU_S_OK) {
            return false;
        }
    }
    return true;
}

#define NBUSY 8

struct busy {
    pthread_t th;
    uint32_t vm_id;
    unsigned done;
    int err;
};

static volatile int busy_stop, busy_quit;

/* A VM that runs NOPs until told to stop, then stays attached, idle. */
static void *busy_main(void *arg)
{
    struct busy *b = arg;
    struct vgpu_open_opts o = { .transport = "sim", .socket_path = med.sock, .vm_id = b->vm_id,
                                .shm_size = 2u << 20 };
    struct vgpu_dev *dev;
    char name[32];

    snprintf(name, sizeof(name), "ft-busy%u", b->vm_id);
    o.vm_name = name;
    b->err = vgpu_open(&o, &dev);
    if (b->err < 0) {
        return NULL;
    }
    while (!__atomic_load_n(&busy_stop, __ATOMIC_ACQUIRE)) {
        struct vgpu_sqe s = { .opcode = VGPU_OP_NOP, .tag = b->done };
        struct vgpu_cqe c;

        if (vgpu_call(dev, &s, &c, 5000) < 0 || c.status != VGPU_S_OK) {
            b->err = -EIO;
            break;
        }
        b->done++;
    }
    while (!__atomic_load_n(&busy_quit, __ATOMIC_ACQUIRE)) {
        usleep(10 * 1000);
    }
    vgpu_close(dev);
    return NULL;
}

/* requests_total of vm_id in a /metrics response, -1 if absent. */
static double busy_requests(const char *resp, uint32_t vm_id)
{
    char series[96];
    const char *body = resp ? strstr(resp, "\r\n\r\n") : NULL;

    snprintf(series, sizeof(series), "vgpu_vm_requests_total{vm_id=\"%u\",vm_name=\"ft-busy%u\"}",
             vm_id, vm_id);
    return sample(body ? body + 4 : NULL, series);
}

static void busy_phase(void)
{
    struct busy bs[NBUSY];
    double last[NBUSY];
    unsigned scrapes = 0, back = 0, fails = 0, matched = 0;
    char cmd[512], line[128];
    FILE *p;

    memset(bs, 0, sizeof(bs));
    for (unsigned i = 0; i < NBUSY; i++) {
        bs[i].vm_id = 101 + i;
        last[i] = 0;
        pthread_create(&bs[i].th, NULL, busy_main, &bs[i]);
    }
    for (uint64_t end = fh_now_ms() + 1500; fh_now_ms() < end;) {
        char *resp = http_get("/metrics");

        if (!resp || !strstr(resp, " 200 ")) {
            fails++;
        }
        for (unsigned i = 0; resp && i < NBUSY; i++) {
            double v = busy_requests(resp, bs[i].vm_id);

            if (v >= 0 && v < last[i]) {
                back++;
            }
            if (v > last[i]) {
                last[i] = v;
            }
        }
        free(resp);
        scrapes++;
        usleep(50 * 1000);
    }
    __atomic_store_n(&busy_stop, 1, __ATOMIC_RELEASE);
    usleep(400 * 1000);     /* idle, and past the page's 250 ms */
    {
        char *resp = http_get("/metrics");

        snprintf(cmd, sizeof(cmd), "'%s' --socket '%s/run/mediator-ro.sock' "
                 "--query-vm=vm_id,requests --format=csv,noheader,nounits",
                 getenv("VGPU_SMI"), med.dir);
        p = getenv("VGPU_SMI") ? popen(cmd, "r") : NULL;
        while (p && fgets(line, sizeof(line), p)) {
            unsigned vm;
            double req;

            if (sscanf(line, "%u, %lf", &vm, &req) == 2 && vm >= 101 && vm < 101 + NBUSY &&
                busy_requests(resp, vm) == req && req == bs[vm - 101].done) {
                matched++;
            }
        }
        if (p) {
            pclose(p);
        }
        free(resp);
    }
    __atomic_store_n(&busy_quit, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < NBUSY; i++) {
        pthread_join(bs[i].th, NULL);
        CHECK(bs[i].err == 0 && bs[i].done > 0, "busy VM %u ran %u NOPs", bs[i].vm_id, bs[i].done);
    }
    printf("# %u scrapes while %d clients ran\n", scrapes, NBUSY);
    CHECK(fails == 0 && scrapes >= 10, "every scrape answered while %d clients ran (%u)", NBUSY,
          scrapes);
    CHECK(back == 0, "no counter went back between scrapes (%u did)", back);
    CHECK(matched == NBUSY, "idle: /metrics, vgpu-smi and the clients agree on every VM's"
          " requests (%u of %d)", matched, NBUSY);
}

int main(void)
{
    char listen[64], file[200], cmd[512];
    const char *args[] = { "--metrics-listen", listen, NULL };
    char *a, *b, *body;
    double r1, r2;
    int idle, r;

    port = free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    if (!port || fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start with --metrics-listen %s\n", listen);
        fh_failed++;
        return fh_summary();
    }
    for (unsigned i = 0; i < NDEV; i++) {
        r = fh_dev_open(&devs[i], med.sock, i + 1, SHM);
        CHECK(r == 0, "device %u attached", i + 1);
    }
    CHECK(nops(0, 5) && nops(1, 2), "NOPs complete");

    /* a client that connects and says nothing must not hold up a scrape */
    idle = tcp_connect();
    CHECK(idle >= 0, "an idle client connected to the metrics port");

    a = http_get("/metrics");
    CHECK(a && strncmp(a, "HTTP/1.", 7) == 0 && strstr(a, " 200 ") &&
          strstr(a, "text/plain; version=0.0.4"), "GET /metrics: 200, text format 0.0.4");
    body = a ? strstr(a, "\r\n\r\n") : NULL;
    CHECK(body != NULL, "with a body");
    body = body ? body + 4 : NULL;
    r1 = sample(body, "vgpu_vm_requests_total{vm_id=\"1\",vm_name=\"ft-vm1\"}");
    CHECK(r1 == 5, "vgpu_vm_requests_total of vm 1: %.0f (want 5)", r1);
    CHECK(sample(body, "vgpu_vm_completions_total{vm_id=\"2\",vm_name=\"ft-vm2\",status=\"ok\"}")
          == 2, "vgpu_vm_completions_total{status=\"ok\"} of vm 2: 2");
    CHECK(sample(body, "vgpu_vm_execution_seconds_count{vm_id=\"1\",vm_name=\"ft-vm1\"}") == 5 &&
          sample(body, "vgpu_vm_execution_seconds_bucket{vm_id=\"1\",vm_name=\"ft-vm1\","
                 "le=\"+Inf\"}") == 5, "an execution-time histogram per VM");
    CHECK(sample(body, "vgpu_sessions") == NDEV, "vgpu_sessions %u", NDEV);
    CHECK(body && strstr(body, "# TYPE vgpu_vm_queue_wait_seconds histogram"),
          "queue wait as a histogram");

    /* Prometheus's own checker, when installed */
    snprintf(file, sizeof(file), "%s/metrics.txt", med.dir);
    {
        FILE *f = fopen(file, "we");
        if (f && body) {
            fputs(body, f);
        }
        if (f) {
            fclose(f);
        }
    }
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", file);
        r = system(cmd);
        CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 0, "promtool check metrics accepts /metrics");
    } else {
        printf("ok - # SKIP promtool not installed (Debian package prometheus)\n");
    }
    unlink(file);

    /* counters only grow (a page is rendered at most every 250 ms) */
    CHECK(nops(0, 3), "3 more NOPs");
    usleep(300 * 1000);
    b = http_get("/metrics");
    body = b ? strstr(b, "\r\n\r\n") : NULL;
    r2 = sample(body ? body + 4 : NULL, "vgpu_vm_requests_total{vm_id=\"1\",vm_name=\"ft-vm1\"}");
    CHECK(r2 == r1 + 3, "the second scrape: %.0f requests (was %.0f)", r2, r1);
    free(a);
    free(b);

    a = http_get("/other");
    CHECK(a && strstr(a, " 404 "), "GET /other: 404");
    free(a);

    busy_phase();
    if (idle >= 0) {
        close(idle);
    }

    for (unsigned i = 0; i < NDEV; i++) {
        fh_dev_close(&devs[i]);
    }
    r = fh_mediator_stop(&med, false);
    CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 0, "mediator exits 0 (0x%x)", r);
    if (fh_failed) {
        fh_mediator_dump_log(&med, 40);
    }
    fh_mediator_cleanup(&med);
    return fh_summary();
}
