/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The read-only admin socket and vgpu-smi against a real mediator: the admin
 * socket answers statistics and refuses a device (HELLO, KICK); 1000 attached
 * VMs come out of vgpu-smi --query-vm as 1000 whole rows, paged; the CSV
 * options; usage errors exit 2; no mediator exits 1 naming the path; the
 * text table of --status says what it leaves out instead of cutting.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fhelp.h"

#define NDEV 1000
#define SHM  (1u << 20)

static struct fh_mediator med;
static struct fh_dev devs[NDEV];
static char admin[160];

/* Runs vgpu-smi with args (shell words); *out gets stdout (malloc), *err
 * stderr. Returns the exit status, or -1. */
static int smi(const char *args, char **out, char **err)
{
    const char *exe = getenv("VGPU_SMI");
    char cmd[1024], errfile[200];
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    FILE *p;
    int st;

    *out = NULL;
    if (err) {
        *err = NULL;
    }
    if (!exe || !buf) {
        free(buf);
        return -1;
    }
    snprintf(errfile, sizeof(errfile), "%s/smi.err", med.dir);
    snprintf(cmd, sizeof(cmd), "timeout 20 '%s' %s 2>'%s'", exe, args, errfile);
    p = popen(cmd, "r");
    if (!p) {
        free(buf);
        return -1;
    }
    for (;;) {
        size_t n;
        if (len + 4096 > cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                break;
            }
            buf = b;
            cap *= 2;
        }
        n = fread(buf + len, 1, cap - len - 1, p);
        if (n == 0) {
            break;
        }
        len += n;
    }
    buf[len] = '\0';
    st = pclose(p);
    *out = buf;
    if (err) {
        FILE *f = fopen(errfile, "re");
        *err = calloc(1, 4096);
        if (f && *err) {
            size_t n = fread(*err, 1, 4095, f);
            (*err)[n] = '\0';
        }
        if (f) {
            fclose(f);
        }
    }
    unlink(errfile);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++) {
        n += *s == '\n';
    }
    return n;
}

/* The admin socket refuses a device: HELLO with a memfd, and KICK. */
static void refuses_devices(void)
{
    struct vgpu_msg_hello h;
    struct vgpu_msg_kick k = { .hdr = { .type = VGPU_MSG_KICK, .size = sizeof(k), .seq = 2 } };
    int s, fd, r;

    s = fh_connect(admin);
    fd = fh_memfd(SHM, true);
    fh_hello_init(&h, 4242, SHM);
    r = s >= 0 && fd >= 0 ? fh_send(s, &h, sizeof(h), &fd, 1) : -1;
    CHECK(r == 0, "HELLO with a memfd sent to the admin socket");
    r = fh_expect_error_close(s, 3000);
    CHECK(r == VGPU_PERR_TYPE, "the admin socket answers HELLO with ERROR TYPE and closes (%d)", r);
    if (s >= 0) {
        close(s);
    }
    if (fd >= 0) {
        close(fd);
    }

    s = fh_connect(admin);
    r = s >= 0 ? fh_send(s, &k, sizeof(k), NULL, 0) : -1;
    r = r == 0 ? fh_expect_error_close(s, 3000) : -1;
    CHECK(r == VGPU_PERR_TYPE, "and KICK the same (%d)", r);
    if (s >= 0) {
        close(s);
    }
}

/* Statistics messages on the admin socket: STATS_REQ (text) and a bad STATS_QUERY. */
static void answers_stats(void)
{
    struct vgpu_msg_hdr req = { .type = VGPU_MSG_STATS_REQ, .size = sizeof(req), .seq = 7 };
    struct vgpu_msg_stats_query q = {
        .hdr = { .type = VGPU_MSG_STATS_QUERY, .size = sizeof(q), .seq = 8 }, .max_records = 1,
    };
    static uint8_t buf[VGPU_MSG_MAX_SIZE];
    const struct vgpu_msg_stats_data *d = (const void *)buf;
    int s, r;

    s = fh_connect(admin);
    r = s >= 0 ? fh_send(s, &req, sizeof(req), NULL, 0) : -1;
    r = r == 0 ? fh_recv_msg(s, buf, sizeof(buf), 3000) : -1;
    CHECK(r > 16 && ((struct vgpu_msg_hdr *)buf)->type == VGPU_MSG_STATS_REPLY &&
          ((struct vgpu_msg_hdr *)buf)->seq == 7, "STATS_REQ on the admin socket: STATS_REPLY");
    r = fh_send(s, &q, sizeof(q), NULL, 0);
    r = r == 0 ? fh_recv_msg(s, buf, sizeof(buf), 3000) : -1;
    CHECK(r >= (int)sizeof(*d) && d->hdr.type == VGPU_MSG_STATS_DATA && d->hdr.seq == 8 &&
          (uint32_t)r == d->hdr.size &&
          d->hdr.size == sizeof(*d) + d->mediator_size + d->count * d->vm_size &&
          d->mediator_size == sizeof(struct vgpu_stats_mediator) &&
          d->vm_size == sizeof(struct vgpu_stats_vm),
          "STATS_QUERY on the same connection: a consistent STATS_DATA");
    if (s >= 0) {
        close(s);
    }

    /* a STATS_QUERY of the wrong size */
    s = fh_connect(admin);
    q.hdr.size = 24;
    r = s >= 0 ? fh_send(s, &q, 24, NULL, 0) : -1;
    r = r == 0 ? fh_expect_error_close(s, 3000) : -1;
    CHECK(r == VGPU_PERR_MALFORMED, "a 24-byte STATS_QUERY: ERROR MALFORMED (%d)", r);
    if (s >= 0) {
        close(s);
    }
}

/* Paging by hand: max_records 7 over every session, each exactly once. */
static void pages_by_hand(unsigned want)
{
    static uint8_t buf[VGPU_MSG_MAX_SIZE];
    static unsigned char seen[NDEV + 1];
    const struct vgpu_msg_stats_data *d = (const void *)buf;
    struct vgpu_msg_stats_query q = {
        .hdr = { .type = VGPU_MSG_STATS_QUERY, .size = sizeof(q) }, .max_records = 7,
    };
    unsigned pages = 0, rows = 0, dup = 0, bad = 0;
    int s = fh_connect(admin);
    bool more = true;

    memset(seen, 0, sizeof(seen));
    while (s >= 0 && more && pages < 1000) {
        q.hdr.seq = ++pages;
        if (fh_send(s, &q, sizeof(q), NULL, 0) < 0 ||
            fh_recv_msg(s, buf, sizeof(buf), 3000) < (int)sizeof(*d) ||
            d->hdr.type != VGPU_MSG_STATS_DATA || d->count > 7) {
            bad++;
            break;
        }
        for (unsigned i = 0; i < d->count; i++) {
            struct vgpu_stats_vm v;
            memcpy(&v, buf + sizeof(*d) + d->mediator_size + i * d->vm_size, sizeof(v));
            if (v.vm_id < 1 || v.vm_id > NDEV || v.state != VGPU_STATS_VM_ACTIVE) {
                bad++;
            } else if (seen[v.vm_id]++) {
                dup++;
            }
            rows++;
        }
        more = d->flags & VGPU_STATS_MORE;
        q.start = d->next;
    }
    CHECK(!bad && !dup && rows == want && pages == (want + 6) / 7,
          "STATS_QUERY max_records 7: %u rows in %u pages, %u twice, %u bad", rows, pages, dup,
          bad);
    if (s >= 0) {
        close(s);
    }
}

int main(void)
{
    const char *args[] = { "--max-sessions", "1100", "--executors", "1", NULL };
    struct rlimit rl;
    struct stat st;
    char cmd[512];
    char *out, *err;
    unsigned opened = 0;
    int r;

    /* two descriptors per VM here and in the mediator, which inherits this */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4 * NDEV) {
        rl.rlim_cur = rl.rlim_max < 8192 ? rl.rlim_max : 8192;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < 3 * NDEV) {
        printf("ok - skipped: RLIMIT_NOFILE %llu is below %u\n",
               (unsigned long long)rl.rlim_cur, 3 * NDEV);
        fh_passed++;
        return fh_summary();
    }
    if (!getenv("VGPU_SMI") || fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start (VGPU_SMI and VGPU_MEDIATOR set?)\n");
        fh_failed++;
        return fh_summary();
    }
    snprintf(admin, sizeof(admin), "%s/run/mediator-ro.sock", med.dir);
    r = lstat(admin, &st);
    CHECK(r == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0666,
          "the admin socket %s exists, mode 0666 (0%o)", admin, (unsigned)(st.st_mode & 0777));
    r = lstat(med.sock, &st);
    CHECK(r == 0 && (st.st_mode & 0777) == 0660, "the VM socket stays 0660 (0%o)",
          (unsigned)(st.st_mode & 0777));

    refuses_devices();
    answers_stats();

    /* no VM yet */
    snprintf(cmd, sizeof(cmd), "--socket '%s' --query-vm=vm_id --format=csv,noheader", admin);
    r = smi(cmd, &out, NULL);
    CHECK(r == 0 && out && out[0] == '\0', "no VM: no rows (%d)", r);
    free(out);

    for (unsigned i = 0; i < NDEV; i++) {
        if (fh_dev_open(&devs[i], med.sock, i + 1, SHM) == 0) {
            opened++;
        }
    }
    CHECK(opened == NDEV, "%u of %u devices attached on the VM socket", opened, NDEV);
    for (unsigned i = 0; i < NDEV; i += 97) {
        struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = i };
        struct vgpu_cqe cqe;
        fh_dev_queue(&devs[i], &sqe);
        r = fh_dev_kick(&devs[i]) == 0 ? fh_dev_wait(&devs[i], &cqe, 5000) : -1;
        CHECK(r == 0 && cqe.status == VGPU_S_OK, "a NOP of VM %u completes", i + 1);
    }

    pages_by_hand(NDEV);

    /* every VM, whole, in one vgpu-smi run */
    snprintf(cmd, sizeof(cmd), "--socket '%s' --query-vm=vm_id,name,state,requests,queue.p50 "
             "--format=csv,noheader", admin);
    r = smi(cmd, &out, &err);
    CHECK(r == 0, "vgpu-smi --query-vm exits 0 (%d: %s)", r, err ? err : "");
    if (out) {
        static unsigned char seen[NDEV + 1];
        unsigned rows = 0, good = 0, reqs = 0;
        char *save = NULL;

        rows = count_lines(out);
        for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            unsigned id, req;
            char name[64], state[16];
            double q;
            char unit[8];

            if (sscanf(line, "%u, %63[^,], %15[^,], %u, %lf %7s", &id, name, state, &req, &q,
                       unit) == 6 && id >= 1 && id <= NDEV && !seen[id]) {
                char want[64];
                snprintf(want, sizeof(want), "ft-vm%u", id);
                seen[id] = 1;
                good += strcmp(name, want) == 0 && strcmp(state, "active") == 0 &&
                        strcmp(unit, "us") == 0;
                reqs += req;
            }
        }
        CHECK(rows == NDEV && good == NDEV, "%u rows, %u whole and distinct (want %u)", rows, good,
              NDEV);
        CHECK(reqs == (NDEV + 96) / 97, "the requests column adds up to the NOPs run (%u)", reqs);
    }
    free(out);
    free(err);

    /* header and units */
    snprintf(cmd, sizeof(cmd), "--socket '%s' --query-vm=vm_id,exec.p99,gpu_time.share "
             "--format=csv", admin);
    r = smi(cmd, &out, NULL);
    CHECK(r == 0 && out && strncmp(out, "vm_id, exec.p99 [us], gpu_time.share [%]\n", 41) == 0 &&
          count_lines(out) == NDEV + 1, "--format=csv: a header naming the units, then %u rows",
          NDEV);
    CHECK(out && strstr(out, " us, ") && strstr(out, " %\n"), "values carry their units");
    free(out);
    snprintf(cmd, sizeof(cmd), "--socket '%s' --query-vm=vm_id,exec.p99 --format=csv,nounits",
             admin);
    r = smi(cmd, &out, NULL);
    CHECK(r == 0 && out && strstr(out, "vm_id, exec.p99 [us]\n") && !strstr(out, " us\n") &&
          count_lines(out) == NDEV + 1, "--format=csv,nounits: units only in the header");
    free(out);
    snprintf(cmd, sizeof(cmd), "--socket '%s' --query-gpu=sessions,sessions.max,backend "
             "--format=csv,noheader,nounits", admin);
    r = smi(cmd, &out, NULL);
    CHECK(r == 0 && out && strcmp(out, "1000, 1100, cpu\n") == 0, "--query-gpu: '%s'",
          out ? out : "");
    free(out);

    /* the default table and JSON hold every VM too */
    snprintf(cmd, sizeof(cmd), "--socket '%s'", admin);
    r = smi(cmd, &out, NULL);
    CHECK(r == 0 && out && strstr(out, "VMs (1000)") && strstr(out, "ft-vm1000") &&
          strstr(out, "queue.p99 [us]"), "the default table lists 1000 VMs");
    free(out);
    snprintf(cmd, sizeof(cmd), "--socket '%s' --json", admin);
    r = smi(cmd, &out, NULL);
    {
        unsigned n = 0;
        for (const char *p = out; p && (p = strstr(p, "\"session_id\"")); p++) {
            n++;
        }
        CHECK(r == 0 && out && strncmp(out, "{\"mediator\": {", 14) == 0 && n == NDEV,
              "--json: %u VM objects", n);
    }
    free(out);

    /* usage errors: exit 2, saying what is wrong */
    snprintf(cmd, sizeof(cmd), "--socket '%s' --query-vm=vm_id,bogus --format=csv", admin);
    r = smi(cmd, &out, &err);
    CHECK(r == 2 && out && !out[0] && err && strstr(err, "'bogus'"),
          "an unknown field: exit 2 naming it (%d)", r);
    free(out);
    free(err);
    snprintf(cmd, sizeof(cmd), "--socket '%s' --query-vm=vm_id --format=xml", admin);
    r = smi(cmd, &out, NULL);
    CHECK(r == 2, "--format=xml: exit 2 (%d)", r);
    free(out);
    r = smi("--no-such-option", &out, NULL);
    CHECK(r == 2, "an unknown option: exit 2 (%d)", r);
    free(out);
    r = smi("-l 0", &out, NULL);
    CHECK(r == 2, "-l 0: exit 2 (%d)", r);
    free(out);

    /* no mediator there */
    snprintf(cmd, sizeof(cmd), "--socket '%s/run/nobody.sock'", med.dir);
    r = smi(cmd, &out, &err);
    CHECK(r == 1 && err && strstr(err, "nobody.sock"), "no mediator: exit 1 naming the path (%d)",
          r);
    free(out);
    free(err);

    /* the text table of --status is cut at 64 KiB, and says so */
    out = fh_mediator_status(&med);
    CHECK(out && strstr(out, "more rows not shown"), "--status with 1000 VMs ends saying how many "
          "rows it left out");
    free(out);

    for (unsigned i = 0; i < NDEV; i++) {
        if (devs[i].sock >= 0) {
            fh_dev_close(&devs[i]);
        }
    }
    r = fh_mediator_stop(&med, false);
    CHECK(WIFEXITED(r) && WEXITSTATUS(r) == 0, "mediator exits 0 (0x%x)", r);
    CHECK(lstat(admin, &st) < 0 && errno == ENOENT, "and removes its admin socket");
    if (fh_failed) {
        fh_mediator_dump_log(&med, 40);
    }
    fh_mediator_cleanup(&med);
    return fh_summary();
}
