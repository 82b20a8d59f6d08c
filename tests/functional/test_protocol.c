/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Malformed socket traffic against a real mediator: every bad connection is
 * answered with the right ERROR code (or just closed when the peer is gone),
 * the mediator keeps serving, and it leaks no file descriptor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fhelp.h"

#define SHM (4u << 20)

static struct fh_mediator med;

static int hello_with(const struct vgpu_msg_hello *h, const int *fds, int nfds)
{
    int s = fh_connect(med.sock), r;

    if (s < 0) {
        return -100;
    }
    r = fh_send(s, h, sizeof(*h), fds, nfds);
    r = r < 0 ? -101 : fh_expect_error_close(s, 5000);
    close(s);
    return r;
}

static int raw_bytes(const void *buf, size_t len, bool wait_error)
{
    int s = fh_connect(med.sock), r = 0;

    if (s < 0) {
        return -100;
    }
    if (fh_send(s, buf, len, NULL, 0) < 0) {
        close(s);
        return -101;
    }
    if (wait_error) {
        r = fh_expect_error_close(s, 5000);
    }
    close(s);
    return r;
}

/* A healthy device still gets its NOP done. */
static bool still_serving(uint32_t vm_id)
{
    struct fh_dev d;
    struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = 7, .user_data = 0x1234 };
    struct vgpu_cqe cqe;
    bool ok;

    if (fh_dev_open(&d, med.sock, vm_id, SHM) < 0) {
        fh_dev_close(&d);
        return false;
    }
    fh_dev_queue(&d, &sqe);
    ok = fh_dev_kick(&d) == 0 && fh_dev_wait(&d, &cqe, 5000) == 0 && cqe.status == VGPU_S_OK &&
         cqe.tag == 7 && cqe.user_data == 0x1234;
    fh_dev_close(&d);
    return ok;
}

int main(void)
{
    const char *args[] = { "--log-level", "debug", "--hello-timeout-ms", "300", NULL };
    struct vgpu_msg_hello h;
    struct vgpu_msg_hdr hdr;
    int fds_before, fds_after = -1, memfd, memfd2, unsealed, small, r;
    uint64_t deadline;

    if (fh_mediator_start(&med, NULL, args) < 0) {
        printf("not ok - mediator start\n");
        fh_failed++;
        return fh_summary();
    }
    memfd = fh_memfd(SHM, true);
    memfd2 = fh_memfd(SHM, true);
    unsealed = fh_memfd(SHM, false);
    small = fh_memfd(512 << 10, true);

    CHECK(still_serving(1), "a device works before the abuse");
    /* let the mediator settle after that session's close */
    usleep(100 * 1000);
    fds_before = fh_count_fds(med.pid);
    CHECK(fds_before > 0, "mediator has %d fds", fds_before);

    /* 1. short header: size field below 16 */
    hdr = (struct vgpu_msg_hdr) { .type = VGPU_MSG_HELLO, .size = 8, .seq = 1 };
    r = raw_bytes(&hdr, sizeof(hdr), true);
    CHECK(r == VGPU_PERR_MALFORMED, "header size 8 -> ERROR MALFORMED (got %d)", r);

    /* 2. oversized length */
    hdr = (struct vgpu_msg_hdr) { .type = VGPU_MSG_KICK, .size = VGPU_MSG_MAX_SIZE + 1, .seq = 1 };
    r = raw_bytes(&hdr, sizeof(hdr), true);
    CHECK(r == VGPU_PERR_MALFORMED, "size 65537 -> ERROR MALFORMED (got %d)", r);
    hdr.size = 0xffffffffu;
    r = raw_bytes(&hdr, sizeof(hdr), true);
    CHECK(r == VGPU_PERR_MALFORMED, "size 4 GiB -> ERROR MALFORMED (got %d)", r);

    /* 3. unknown type */
    hdr = (struct vgpu_msg_hdr) { .type = 99, .size = sizeof(hdr), .seq = 1 };
    r = raw_bytes(&hdr, sizeof(hdr), true);
    CHECK(r == VGPU_PERR_TYPE, "type 99 -> ERROR TYPE (got %d)", r);
    hdr.type = 0;
    r = raw_bytes(&hdr, sizeof(hdr), true);
    CHECK(r == VGPU_PERR_TYPE, "type 0 -> ERROR TYPE (got %d)", r);

    /* 4. wrong size for a known type */
    {
        uint8_t kick[32] = { 0 };
        struct vgpu_msg_hdr *k = (struct vgpu_msg_hdr *)kick;
        *k = (struct vgpu_msg_hdr) { .type = VGPU_MSG_KICK, .size = sizeof(kick), .seq = 1 };
        r = raw_bytes(kick, sizeof(kick), true);
        CHECK(r == VGPU_PERR_MALFORMED, "KICK of 32 bytes -> ERROR MALFORMED (got %d)", r);
    }

    /* 5. a message the mediator only sends, and KICK before HELLO */
    {
        struct vgpu_msg_notify n = { .hdr = { .type = VGPU_MSG_NOTIFY, .size = sizeof(n) } };
        struct vgpu_msg_kick k = { .hdr = { .type = VGPU_MSG_KICK, .size = sizeof(k) } };
        r = raw_bytes(&n, sizeof(n), true);
        CHECK(r == VGPU_PERR_TYPE, "NOTIFY to the mediator -> ERROR TYPE (got %d)", r);
        r = raw_bytes(&k, sizeof(k), true);
        CHECK(r == VGPU_PERR_TYPE, "KICK before HELLO -> ERROR TYPE (got %d)", r);
    }

    /* 6. wrong protocol / ABI version */
    fh_hello_init(&h, 50, SHM);
    h.version_major = 2;
    r = hello_with(&h, &memfd, 1);
    CHECK(r == VGPU_PERR_VERSION, "HELLO version 2.0 -> ERROR VERSION (got %d)", r);
    fh_hello_init(&h, 50, SHM);
    h.abi_version = (2u << 16);
    r = hello_with(&h, &memfd, 1);
    CHECK(r == VGPU_PERR_VERSION, "HELLO ABI 2.0 -> ERROR VERSION (got %d)", r);

    /* 7. fds: none, two, many, and one on a KICK */
    fh_hello_init(&h, 51, SHM);
    r = hello_with(&h, NULL, 0);
    CHECK(r == VGPU_PERR_FD, "HELLO without fd -> ERROR FD (got %d)", r);
    {
        int two[2] = { memfd, memfd2 };
        r = hello_with(&h, two, 2);
        CHECK(r == VGPU_PERR_FD, "HELLO with two fds -> ERROR FD (got %d)", r);
    }
    {
        int many[12];
        for (int i = 0; i < 12; i++) {
            many[i] = memfd;
        }
        r = hello_with(&h, many, 12);
        CHECK(r == VGPU_PERR_FD, "HELLO with twelve fds -> ERROR FD (got %d)", r);
    }
    {
        struct fh_dev d;
        struct vgpu_msg_kick k = { .hdr = { .type = VGPU_MSG_KICK, .size = sizeof(k), .seq = 9 } };
        r = fh_dev_open(&d, med.sock, 52, SHM);
        CHECK(r == 0, "device 52 attaches");
        r = fh_send(d.sock, &k, sizeof(k), &memfd, 1);
        r = r < 0 ? r : fh_expect_error_close(d.sock, 5000);
        CHECK(r == VGPU_PERR_FD, "fd on a KICK -> ERROR FD (got %d)", r);
        fh_dev_close(&d);
    }

    /* 7b. the doorbell eventfd (protocol 1.1): feature and fds must agree,
     * the second fd must be an eventfd, and one that is works */
    {
        int pipefd[2], efd = eventfd(0, EFD_CLOEXEC);
        int with_pipe[2] = { memfd, -1 }, with_efd[2] = { memfd, efd };

        CHECK(efd >= 0 && pipe(pipefd) == 0, "eventfd and pipe");
        with_pipe[1] = pipefd[0];
        fh_hello_init(&h, 54, SHM);
        h.features = VGPU_FEAT_DOORBELL_FD;
        r = hello_with(&h, &memfd, 1);
        CHECK(r == VGPU_PERR_FD, "HELLO asking for a doorbell fd but sending one fd -> ERROR FD "
              "(got %d)", r);
        r = hello_with(&h, with_pipe, 2);
        CHECK(r == VGPU_PERR_FD, "doorbell fd that is a pipe -> ERROR FD (got %d)", r);
        h.features = 0;
        r = hello_with(&h, with_efd, 2);
        CHECK(r == VGPU_PERR_FD, "two fds without VGPU_FEAT_DOORBELL_FD -> ERROR FD (got %d)", r);
        close(pipefd[0]);
        close(pipefd[1]);
        close(efd);
    }
    {
        struct fh_dev d;
        struct vgpu_sqe sqe = { .opcode = VGPU_OP_NOP, .tag = 11, .user_data = 0xd00b };
        struct vgpu_cqe cqe = { 0 };
        bool ok = true;

        r = fh_dev_open_ex(&d, med.sock, 55, SHM, true);
        CHECK(r == 0 && (d.welcome.features & VGPU_FEAT_DOORBELL_FD),
              "HELLO with a doorbell eventfd: WELCOME takes it up (features 0x%x)",
              d.welcome.features);
        /* 100 NOPs, each rung only through the eventfd: no KICK is sent */
        for (int i = 0; i < 100 && ok; i++) {
            fh_dev_queue(&d, &sqe);
            ok = fh_dev_kick(&d) == 0 && fh_dev_wait(&d, &cqe, 5000) == 0 &&
                 cqe.status == VGPU_S_OK && cqe.tag == 11 && cqe.user_data == 0xd00b;
        }
        CHECK(ok, "100 NOPs rung through the doorbell eventfd all complete");
        /* KICK messages stay valid beside the eventfd */
        fh_dev_queue(&d, &sqe);
        {
            struct vgpu_msg_kick k = { .hdr = { .type = VGPU_MSG_KICK, .size = sizeof(k) } };
            ok = fh_send(d.sock, &k, sizeof(k), NULL, 0) == 0 && fh_dev_wait(&d, &cqe, 5000) == 0 &&
                 cqe.status == VGPU_S_OK;
        }
        CHECK(ok, "a KICK message beside the eventfd still works");
        fh_dev_close(&d);
    }

    /* 8. shared memory: unsealed, smaller than claimed, absurd size */
    fh_hello_init(&h, 53, SHM);
    r = hello_with(&h, &unsealed, 1);
    CHECK(r == VGPU_PERR_SHM, "unsealed memfd -> ERROR SHM (got %d)", r);
    r = hello_with(&h, &small, 1);
    CHECK(r == VGPU_PERR_SHM, "memfd smaller than shm_size -> ERROR SHM (got %d)", r);
    h.shm_size = 4096;
    r = hello_with(&h, &small, 1);
    CHECK(r == VGPU_PERR_SHM, "shm_size below 1 MiB -> ERROR SHM (got %d)", r);
    {
        int sock = -1;
        int dfd = socket(AF_UNIX, SOCK_STREAM, 0);
        fh_hello_init(&h, 53, SHM);
        r = hello_with(&h, &dfd, 1);
        CHECK(r == VGPU_PERR_SHM, "a socket instead of a memfd -> ERROR SHM (got %d)", r);
        close(dfd);
        (void)sock;
    }

    /* 9. identity */
    fh_hello_init(&h, 54, SHM);
    h.priority = VGPU_PRIO_CLASSES;
    r = hello_with(&h, &memfd, 1);
    CHECK(r == VGPU_PERR_IDENTITY, "priority 4 -> ERROR IDENTITY (got %d)", r);
    fh_hello_init(&h, 54, SHM);
    h.weight = 0;
    r = hello_with(&h, &memfd, 1);
    CHECK(r == VGPU_PERR_IDENTITY, "weight 0 -> ERROR IDENTITY (got %d)", r);
    h.weight = VGPU_WEIGHT_MAX + 1;
    r = hello_with(&h, &memfd, 1);
    CHECK(r == VGPU_PERR_IDENTITY, "weight 1001 -> ERROR IDENTITY (got %d)", r);
    {
        struct fh_dev d;
        r = fh_dev_open(&d, med.sock, 55, SHM);
        CHECK(r == 0, "device 55 attaches");
        fh_hello_init(&h, 55, SHM);
        r = hello_with(&h, &memfd, 1);
        CHECK(r == VGPU_PERR_IDENTITY, "second device with vm id 55 -> ERROR IDENTITY (got %d)", r);
        /* HELLO twice on one connection */
        r = fh_send(d.sock, &h, sizeof(h), &memfd, 1);
        r = r < 0 ? r : fh_expect_error_close(d.sock, 5000);
        CHECK(r == VGPU_PERR_TYPE, "HELLO twice -> ERROR TYPE (got %d)", r);
        fh_dev_close(&d);
    }

    /* 10. truncated messages, then close: no ERROR to read, just no harm */
    fh_hello_init(&h, 56, SHM);
    {
        int s = fh_connect(med.sock);
        r = fh_send(s, &h, 50, &memfd, 1); /* the fd rides on a partial HELLO */
        close(s);
        CHECK(r == 0, "truncated HELLO with its fd, then close");
        s = fh_connect(med.sock);
        r = fh_send(s, &h, 7, NULL, 0);     /* partial header */
        close(s);
        CHECK(r == 0, "truncated header, then close");
        s = fh_connect(med.sock);
        close(s);
        CHECK(s >= 0, "connect and close without a byte");
    }

    /* 11. garbage bytes */
    {
        uint8_t junk[512];
        for (unsigned i = 0; i < sizeof(junk); i++) {
            junk[i] = (uint8_t)(i * 131 + 7);
        }
        r = raw_bytes(junk, sizeof(junk), true);
        CHECK(r > 0, "512 bytes of garbage -> ERROR (got %d)", r);
    }

    /* 12. a connection that never says anything is dropped after --hello-timeout-ms */
    {
        int s = fh_connect(med.sock);
        uint64_t t0 = fh_now_ms();
        r = s < 0 ? -100 : fh_expect_error_close(s, 5000);
        CHECK(r == VGPU_PERR_TYPE && fh_now_ms() - t0 >= 250,
              "silent connection dropped with ERROR TYPE after ~300 ms (got %d after %llu ms)", r,
              (unsigned long long)(fh_now_ms() - t0));
        if (s >= 0) {
            close(s);
        }
    }

    /* 12b. an admin connection is closed once idle for --hello-timeout-ms;
     * each STATS_REQ restarts the clock */
    {
        static uint8_t buf[VGPU_MSG_MAX_SIZE];
        struct vgpu_msg_hdr req = { .type = VGPU_MSG_STATS_REQ, .size = sizeof(req), .seq = 1 };
        int s = fh_connect(med.sock);
        bool replies = s >= 0;
        uint64_t t0;

        for (int i = 0; i < 3 && replies; i++) {
            usleep(200 * 1000); /* 3 x 200 ms apart: more than 300 ms in all */
            replies = fh_send(s, &req, sizeof(req), NULL, 0) == 0 &&
                      fh_recv_msg(s, buf, sizeof(buf), 5000) > 0 &&
                      ((struct vgpu_msg_hdr *)buf)->type == VGPU_MSG_STATS_REPLY;
        }
        CHECK(replies, "an admin connection asking every 200 ms keeps getting STATS_REPLY");
        t0 = fh_now_ms();
        r = replies ? fh_recv_msg(s, buf, sizeof(buf), 5000) : -100;
        CHECK(r == 0 && fh_now_ms() - t0 >= 250,
              "idle admin connection closed after ~300 ms (got %d after %llu ms)", r,
              (unsigned long long)(fh_now_ms() - t0));
        if (s >= 0) {
            close(s);
        }
    }

    /* 13. random traffic: headers of every type and many sizes, bodies of
     * random bytes, 0..3 fds, sometimes after a valid HELLO */
    {
        unsigned seed = 4242, conns = 0;
        for (int c = 0; c < 400; c++) {
            struct fh_dev d;
            int sock;
            bool device = (c % 5) == 0;

            if (device) {
                if (fh_dev_open(&d, med.sock, 600 + (uint32_t)c, SHM) < 0) {
                    fh_dev_close(&d);
                    continue;
                }
                sock = d.sock;
            } else {
                sock = fh_connect(med.sock);
                if (sock < 0) {
                    continue;
                }
            }
            conns++;
            for (int k = 0; k < 4; k++) {
                static const uint32_t sizes[] = { 16, 24, 112, 144, 15, 17, 200, 65536 };
                uint8_t msg[256];
                struct vgpu_msg_hdr *mh = (struct vgpu_msg_hdr *)msg;
                int fds[3] = { memfd, memfd2, unsealed };
                size_t len;

                for (size_t i = 0; i < sizeof(msg); i++) {
                    seed = seed * 1103515245u + 12345u;
                    msg[i] = (uint8_t)(seed >> 16);
                }
                seed = seed * 1103515245u + 12345u;
                mh->type = (uint16_t)((seed >> 8) % 10);
                mh->size = sizes[(seed >> 12) % 8];
                if (mh->type == VGPU_MSG_KICK) {
                    mh->size = 24; /* mostly well-formed KICKs with garbage around */
                }
                len = mh->size < sizeof(msg) ? mh->size : sizeof(msg);
                if (len < 16) {
                    len = 16;
                }
                if (fh_send(sock, msg, len, fds, (int)((seed >> 20) % 4)) < 0) {
                    break;
                }
            }
            close(sock);
            if (device) {
                d.sock = -1;
                fh_dev_close(&d);
            }
        }
        CHECK(conns >= 390, "%u connections of random traffic sent", conns);
    }

    CHECK(still_serving(2), "a device still works after the abuse");

    /* every fd the mediator got must be closed again (deadline: 3 s) */
    deadline = fh_now_ms() + 3000;
    while (fh_now_ms() < deadline) {
        fds_after = fh_count_fds(med.pid);
        if (fds_after == fds_before) {
            break;
        }
        usleep(20 * 1000);
    }
    CHECK(fds_after == fds_before, "no fd leak: %d fds before, %d after", fds_before, fds_after);
    if (fds_after != fds_before) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd >&2", (int)med.pid);
        if (system(cmd)) {
        }
    }

    r = fh_mediator_stop(&med, false);
    CHECK(r == 0, "mediator exits 0 on SIGTERM (status 0x%x)", r);
    CHECK(access(med.sock, F_OK) != 0, "socket file removed at exit");
    if (fh_failed) {
        fh_mediator_dump_log(&med, 60);
    }
    close(memfd);
    close(memfd2);
    close(unsealed);
    close(small);
    fh_mediator_cleanup(&med);
    return fh_summary();
}
