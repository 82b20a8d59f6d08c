/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The mediator's ivshmem server mode, with this test playing QEMU's stock
 * ivshmem-doorbell device: it connects to a VM's ivshmem socket, takes the
 * protocol version, its peer id, the shared memory and the eventfds as QEMU
 * does (docs/specs/ivshmem-spec), maps the memory, reads the identity from
 * the shared-memory header, and runs checked vector_adds through queue 0's
 * rings, ringing the doorbell by writing the mediator's vector eventfd and
 * waiting on its own vector 0 eventfd as QEMU would for the guest's MSI-X.
 * Bad input: a second connection while one is live, a peer that sends bytes
 * or descriptors, a vgpu-stub HELLO claiming the ivshmem VM's id, config
 * files with wrong sizes or no vm id; a VM whose QEMU went away comes back
 * on new memory.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fhelp.h"

static struct fh_mediator med;
static char sock_a[160], sock_b[160];

struct qemu {
    int sock;
    int64_t own_id;
    int memfd;
    int64_t med_peer;   /* the peer whose vector 0 is the mediator's doorbell */
    int med_fd;         /* its eventfd: our doorbell */
    int irq_fd;         /* our own vector 0 */
    uint8_t *shm;
    uint64_t size;
    struct vgpu_shm_header hdr;
    uint32_t sq_tail, cq_head;
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* One protocol message: 8 bytes, maybe a descriptor. 0, or -errno (0 bytes: -ECONNRESET). */
static int recv_msg(int sock, int64_t *val, int *fd, int timeout_ms)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * 4)];
        struct cmsghdr align;
    } ctl;
    uint64_t le;
    struct iovec iov = { .iov_base = &le, .iov_len = sizeof(le) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                          .msg_controllen = sizeof(ctl.buf) };
    struct pollfd pfd = { .fd = sock, .events = POLLIN };
    ssize_t n;

    *fd = -1;
    if (poll(&pfd, 1, timeout_ms) != 1) {
        return -ETIMEDOUT;
    }
    n = recvmsg(sock, &msg, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    if (n < 0) {
        return -errno;
    }
    if (n == 0) {
        return -ECONNRESET;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            memcpy(fd, CMSG_DATA(c), sizeof(int));
        }
    }
    if (n != sizeof(le)) {
        return -EPROTO;
    }
    *val = (int64_t)le64toh(le);
    return 0;
}

/* Connects and takes the setup as QEMU's ivshmem-doorbell (vectors=1) does. 0 or -errno. */
static int qemu_connect(struct qemu *q, const char *path)
{
    int64_t v;
    int fd, r;
    struct stat st;

    memset(q, 0, sizeof(*q));
    q->memfd = q->med_fd = q->irq_fd = -1;
    q->sock = fh_connect(path);
    if (q->sock < 0) {
        return q->sock;
    }
    r = recv_msg(q->sock, &v, &fd, 3000);
    if (r || v != 0 || fd >= 0) {
        return r ? r : -EPROTO;               /* version 0, no fd */
    }
    r = recv_msg(q->sock, &q->own_id, &fd, 3000);
    if (r || q->own_id < 0 || q->own_id > 65535 || fd >= 0) {
        return r ? r : -EPROTO;
    }
    r = recv_msg(q->sock, &v, &q->memfd, 3000);
    if (r || v != -1 || q->memfd < 0) {
        return r ? r : -EPROTO;
    }
    /* Peers' vectors, then our own: the mediator's first, ours last. */
    for (int i = 0; i < 2; i++) {
        r = recv_msg(q->sock, &v, &fd, 3000);
        if (r || fd < 0 || v < 0 || v > 65535) {
            return r ? r : -EPROTO;
        }
        if (v == q->own_id) {
            q->irq_fd = fd;
        } else {
            q->med_peer = v;
            q->med_fd = fd;
        }
    }
    if (q->med_fd < 0 || q->irq_fd < 0 || fstat(q->memfd, &st) < 0) {
        return -EPROTO;
    }
    q->size = (uint64_t)st.st_size;
    q->shm = mmap(NULL, q->size, PROT_READ | PROT_WRITE, MAP_SHARED, q->memfd, 0);
    if (q->shm == MAP_FAILED) {
        q->shm = NULL;
        return -errno;
    }
    /* The guest waits for the link as for vgpu-stub's LINK_STATUS. */
    for (uint64_t end = fh_now_ms() + 3000; fh_now_ms() < end; usleep(1000)) {
        memcpy(&q->hdr, q->shm + VGPU_SHM_HEADER_OFFSET, sizeof(q->hdr));
        if (le32toh(q->hdr.link_status) & VGPU_LINK_UP) {
            break;
        }
    }
    return 0;
}

static void qemu_close(struct qemu *q)
{
    if (q->shm) {
        munmap(q->shm, q->size);
    }
    if (q->sock >= 0) {
        close(q->sock);
    }
    if (q->memfd >= 0) {
        close(q->memfd);
    }
    if (q->med_fd >= 0) {
        close(q->med_fd);
    }
    if (q->irq_fd >= 0) {
        close(q->irq_fd);
    }
    memset(q, 0, sizeof(*q));
    q->sock = q->memfd = q->med_fd = q->irq_fd = -1;
}

/* A request through the rings: doorbell, interrupt, completion. 0 or -errno. */
static int qemu_call(struct qemu *q, const struct vgpu_sqe *sqe, struct vgpu_cqe *out)
{
    struct vgpu_shm_ctrl *ctrl = (struct vgpu_shm_ctrl *)q->shm;
    struct vgpu_sqe *sq = (struct vgpu_sqe *)(q->shm + VGPU_SHM_SQ_OFFSET);
    struct vgpu_cqe *cq = (struct vgpu_cqe *)(q->shm + VGPU_SHM_CQ_OFFSET);
    uint64_t one = 1, deadline = fh_now_ms() + 5000, cnt;

    sq[q->sq_tail % VGPU_SQ_ENTRIES] = *sqe;
    __atomic_store_n(&ctrl->sq_tail, ++q->sq_tail, __ATOMIC_RELEASE);
    if (write(q->med_fd, &one, sizeof(one)) != sizeof(one)) {
        return -errno;
    }
    while (__atomic_load_n(&ctrl->cq_tail, __ATOMIC_ACQUIRE) == q->cq_head) {
        struct pollfd pfd = { .fd = q->irq_fd, .events = POLLIN };
        uint64_t now = fh_now_ms();

        if (now >= deadline) {
            return -ETIMEDOUT;
        }
        if (poll(&pfd, 1, (int)(deadline - now)) == 1) {
            (void)!read(q->irq_fd, &cnt, sizeof(cnt));
        }
    }
    *out = cq[q->cq_head % VGPU_CQ_ENTRIES];
    __atomic_store_n(&ctrl->cq_head, ++q->cq_head, __ATOMIC_RELEASE);
    return 0;
}

/* n checked vector_adds of len elements; how many came back ok and right. */
static int vector_adds(struct qemu *q, int n, uint32_t len)
{
    uint64_t a = VGPU_SHM_DATA_OFFSET, b = a + len * 4ull, o = b + len * 4ull;
    float *fa = (float *)(q->shm + a), *fb = (float *)(q->shm + b), *fo = (float *)(q->shm + o);
    int good = 0;

    for (int k = 0; k < n; k++) {
        struct vgpu_sqe sqe = { .opcode = VGPU_OP_VECTOR_ADD, .tag = (uint32_t)k,
                                .user_data = 0x1000u + (unsigned)k };
        struct vgpu_cqe cqe;
        bool right = true;

        for (uint32_t i = 0; i < len; i++) {
            fa[i] = (float)((i + (uint32_t)k) % 97) * 0.25f;
            fb[i] = (float)(i % 13) * 0.5f;
            fo[i] = -1.0f;
        }
        sqe.args.vector_add = (struct vgpu_args_vector_add) { .a_off = a, .b_off = b,
                                                              .out_off = o, .n = len };
        if (qemu_call(q, &sqe, &cqe) || cqe.status != VGPU_S_OK || cqe.tag != (uint32_t)k ||
            cqe.user_data != sqe.user_data) {
            continue;
        }
        for (uint32_t i = 0; i < len; i++) {
            right &= fo[i] == fa[i] + fb[i];
        }
        good += right;
    }
    return good;
}

/* EOF (the mediator dropped us) within timeout_ms, with no byte before it. */
static bool dropped(int sock, int timeout_ms)
{
    struct pollfd pfd = { .fd = sock, .events = POLLIN };
    char c;

    return poll(&pfd, 1, timeout_ms) == 1 && recv(sock, &c, 1, MSG_DONTWAIT) == 0;
}

static int check_config_text(const char *dir, const char *name, const char *text)
{
    char path[256], cmd[512];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    write_file(path, text);
    snprintf(cmd, sizeof(cmd), "'%s' --check-config '%s' >/dev/null 2>&1", getenv("VGPU_MEDIATOR"),
             path);
    return system(cmd);
}

static void test_serve(void)
{
    struct qemu q, q2;
    struct vgpu_cqe cqe;
    struct vgpu_sqe nop = { .opcode = VGPU_OP_NOP, .tag = 77, .user_data = 78 };
    uint32_t seals;
    int r;

    r = qemu_connect(&q, sock_a);
    CHECK(r == 0, "ivshmem setup as QEMU takes it: version 0, id %lld, memory, 2 eventfds (%d)",
          (long long)q.own_id, r);
    if (r) {
        qemu_close(&q);
        return;
    }
    seals = (uint32_t)fcntl(q.memfd, F_GET_SEALS);
    CHECK(q.size == (2u << 20) && (seals & F_SEAL_SHRINK) && (seals & F_SEAL_GROW),
          "memory of the configured size (%llu), sealed against shrink and grow (0x%x)",
          (unsigned long long)q.size, seals);
    CHECK(le32toh(q.hdr.magic) == VGPU_SHM_HEADER_MAGIC &&
          le32toh(q.hdr.abi_version) == VGPU_ABI_VERSION &&
          le32toh(q.hdr.header_size) == sizeof(q.hdr), "shared-memory header laid out");
    CHECK(le32toh(q.hdr.vm_id) == 7 && strcmp(q.hdr.vm_name, "alpha") == 0 &&
          le32toh(q.hdr.priority) == 2 && le32toh(q.hdr.weight) == 3,
          "identity from the config section: vm %u '%.63s' prio %u weight %u",
          le32toh(q.hdr.vm_id), q.hdr.vm_name, le32toh(q.hdr.priority), le32toh(q.hdr.weight));
    CHECK((le32toh(q.hdr.link_status) & VGPU_LINK_UP) && le64toh(q.hdr.shm_size) == q.size &&
          le64toh(q.hdr.data_offset) == VGPU_SHM_DATA_OFFSET &&
          le64toh(q.hdr.data_end) == q.size && le32toh(q.hdr.queues) == 1 &&
          le32toh(q.hdr.sq_entries) == VGPU_SQ_ENTRIES,
          "link up, geometry of one queue pair");
    CHECK(le32toh(q.hdr.doorbell) == ((uint32_t)q.med_peer << 16),
          "doorbell value names the mediator's peer %lld, vector 0", (long long)q.med_peer);

    CHECK(qemu_call(&q, &nop, &cqe) == 0 && cqe.status == VGPU_S_OK && cqe.tag == 77 &&
          cqe.user_data == 78, "NOP through doorbell eventfd and vector 0 interrupt");
    r = vector_adds(&q, 40, 4096);
    CHECK(r == 40, "40 checked vector_adds of 4096 floats: %d right", r);

    /* A second connection on a live VM's socket: a version QEMU refuses
     * (it stops with an error), then EOF; no memory, no eventfd. */
    q2.sock = fh_connect(sock_a);
    {
        int64_t v = 0;
        int fd = -1;

        r = q2.sock >= 0 ? recv_msg(q2.sock, &v, &fd, 3000) : -1;
        CHECK(r == 0 && v == 99 && fd < 0 && dropped(q2.sock, 3000),
              "second connection while one is live: version 99 and EOF (%d, %lld)", r,
              (long long)v);
        if (fd >= 0) {
            close(fd);
        }
    }
    if (q2.sock >= 0) {
        close(q2.sock);
    }
    CHECK(fh_file_contains(med.log, "refusing a second connection"), "  ... with a log line");

    /* A vgpu-stub device claiming the ivshmem VM's id on the main socket. */
    {
        struct fh_dev d;

        r = fh_dev_open(&d, med.sock, 7, 2u << 20);
        CHECK(r == -EPROTO, "HELLO with the ivshmem VM's id refused (%d)", r);
        if (r == 0) {
            fh_dev_close(&d);
        }
    }
    {
        char *st = fh_mediator_status(&med);

        CHECK(st && fh_status_row_has(st, "alpha", 2, 3), "status row of 'alpha' prio 2 weight 3");
        free(st);
    }
    /* The first VM still works after all that. */
    r = vector_adds(&q, 5, 1024);
    CHECK(r == 5, "the live VM is unaffected: %d/5", r);

    /* QEMU goes away: the link goes down in its (our old) memory; a new
     * QEMU gets new memory, zeroed rings, and works. */
    {
        uint8_t *old = q.shm;
        struct stat st1, st2;
        uint64_t deadline = fh_now_ms() + 3000;

        q.shm = NULL;
        fstat(q.memfd, &st1);
        close(q.sock);
        q.sock = -1;
        while (fh_now_ms() < deadline &&
               (le32toh(__atomic_load_n((uint32_t *)(old + VGPU_SHM_HEADER_OFFSET + 12),
                                        __ATOMIC_ACQUIRE)) & VGPU_LINK_UP)) {
            usleep(10000);
        }
        CHECK(!(le32toh(((struct vgpu_shm_header *)(old + VGPU_SHM_HEADER_OFFSET))->link_status) &
                VGPU_LINK_UP), "QEMU gone: link down in the header");
        munmap(old, q.size);
        r = -1;
        for (int i = 0; i < 50 && r; i++) {   /* the old session must be gone first */
            r = qemu_connect(&q2, sock_a);
            if (r) {
                qemu_close(&q2);
                usleep(20000);
            }
        }
        CHECK(r == 0, "reconnect after QEMU left");
        if (r == 0) {
            fstat(q2.memfd, &st2);
            CHECK(st1.st_ino != st2.st_ino, "  ... on new memory");
            CHECK(vector_adds(&q2, 10, 1024) == 10, "  ... and vector_adds pass");
        }
        qemu_close(&q2);
        qemu_close(&q);
    }
}

static void test_bad_peers(void)
{
    struct qemu q;
    int r;

    /* Garbage: QEMU never sends on this socket. */
    r = qemu_connect(&q, sock_b);
    CHECK(r == 0 && q.hdr.vm_id == htole32(9) && strcmp(q.hdr.vm_name, "vm9") == 0,
          "VM by id: vm 9 'vm9' (%d)", r);
    if (r == 0) {
        CHECK(send(q.sock, "HELLO?", 6, MSG_NOSIGNAL) == 6 && dropped(q.sock, 3000),
              "a peer that sends bytes is dropped");
    }
    qemu_close(&q);
    CHECK(fh_file_contains(med.log, "QEMU never does"), "  ... with a log line");

    /* Descriptors sent to the mediator: dropped, the fd closed. */
    r = -1;
    for (int i = 0; i < 50 && r; i++) {
        r = qemu_connect(&q, sock_b);
        if (r) {
            qemu_close(&q);
            usleep(20000);
        }
    }
    if (r == 0) {
        int fds[1] = { q.memfd };
        uint64_t z = 0;

        CHECK(fh_send(q.sock, &z, sizeof(z), fds, 1) == 0 && dropped(q.sock, 3000),
              "a peer that sends descriptors is dropped");
    } else {
        CHECK(false, "reconnect for the descriptor case (%d)", r);
    }
    qemu_close(&q);

    /* A peer that connects and never reads: the mediator stays responsive. */
    {
        int s = fh_connect(sock_b);
        struct qemu q2;

        usleep(100000);
        r = qemu_connect(&q2, sock_a);
        CHECK(r == 0 && vector_adds(&q2, 3, 256) == 3,
              "a peer that never reads blocks nothing (other VM served)");
        qemu_close(&q2);
        if (s >= 0) {
            close(s);
        }
    }
}

static void test_configs(void)
{
    const char *d = med.dir;

    CHECK(check_config_text(d, "c1.ini", "[vm a]\nvm-id = 3\nivshmem-socket = /tmp/x.sock\n"
                            "shm-size = 3M\n") != 0, "shm-size not a power of two refused");
    CHECK(check_config_text(d, "c2.ini", "[vm a]\nvm-id = 3\nivshmem-socket = /tmp/x.sock\n"
                            "shm-size = 512K\n") != 0, "shm-size below 1 MiB refused");
    CHECK(check_config_text(d, "c3.ini", "[vm a]\nivshmem-socket = /tmp/x.sock\n") != 0,
          "an ivshmem VM by name without vm-id refused");
    CHECK(check_config_text(d, "c4.ini", "[vm a]\nvm-id = 3\nivshmem-socket = rel.sock\n") != 0,
          "a relative socket path refused");
    CHECK(check_config_text(d, "c5.ini", "[vm a]\nvm-id = 3\nivshmem-socket = /tmp/x.sock\n"
                            "shm-size = 64M\n") == 0, "a good ivshmem section passes");
}

int main(void)
{
    char cfg[256], text[1024], dir[64] = "/tmp/vgpu-ft-XXXXXX";
    const char *extra[] = { "--config", cfg, NULL };

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(sock_a, sizeof(sock_a), "%s/run/ivshmem-alpha.sock", dir);
    snprintf(sock_b, sizeof(sock_b), "%s/run/ivshmem-9.sock", dir);
    snprintf(cfg, sizeof(cfg), "%s/vgpu.ini", dir);
    snprintf(text, sizeof(text),
             "[vm alpha]\nvm-id = 7\npriority = 2\nweight = 3\nivshmem-socket = %s\n"
             "shm-size = 2M\n\n[vm 9]\nivshmem-socket = %s\n", sock_a, sock_b);
    write_file(cfg, text);

    if (fh_mediator_start(&med, dir, extra) < 0) {
        fprintf(stderr, "cannot start the mediator\n");
        return 1;
    }
    test_serve();
    test_bad_peers();
    test_configs();
    CHECK(kill(med.pid, 0) == 0, "mediator alive after the bad peers");
    if (fh_failed) {
        fh_mediator_dump_log(&med, 40);
    }
    fh_mediator_stop(&med, false);
    fh_mediator_cleanup(&med);
    return fh_summary();
}
