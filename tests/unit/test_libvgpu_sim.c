/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Unit tests of libvgpu's sim transport against a scripted fake mediator (a
 * thread on a temporary socket): what HELLO carries (the sealed memfd, the
 * identity), each way the handshake can be refused, KICKs, NOTIFYs split
 * across reads, messages the library must skip, and the end of the link by
 * BYE, by ERROR and by close.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vgpu/libvgpu.h"
#include "vgpu/protocol.h"
#include "vgpu/ring.h"

enum script {
    S_WELCOME_THEN_SERVE,   /* WELCOME, then complete requests (see serve()) */
    S_ERROR_IDENTITY,
    S_WELCOME_V2,
    S_WRONG_TYPE,
    S_ERROR_UNKNOWN_CODE,
    S_SILENT,
};

struct fake {
    char dir[64], path[96];
    int lsock;
    enum script script;
    pthread_t thread;
    /* Filled by the fake from what the client sent. */
    struct vgpu_msg_hello hello;
    int  got_fd;
    uint64_t fd_size;
    int  fd_seals;
    uint32_t kicks;
    /* serve(): how to end. 0: BYE, 1: ERROR(MALFORMED), 2: close */
    int ending;
    int served;
};

static void send_all(int fd, const void *buf, size_t len)
{
    assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static int recv_all(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, (uint8_t *)buf + got, len - got, 0);

        if (n <= 0) {
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static int recv_hello(struct fake *f, int c)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { .iov_base = &f->hello, .iov_len = sizeof(f->hello) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
    struct cmsghdr *cm;
    struct stat st;

    if (recvmsg(c, &mh, MSG_WAITALL) != (ssize_t)sizeof(f->hello)) {
        return -1;
    }
    cm = CMSG_FIRSTHDR(&mh);
    if (!cm || cm->cmsg_type != SCM_RIGHTS) {
        return -1;
    }
    memcpy(&f->got_fd, CMSG_DATA(cm), sizeof(int));
    fstat(f->got_fd, &st);
    f->fd_size = (uint64_t)st.st_size;
    f->fd_seals = fcntl(f->got_fd, F_GET_SEALS);
    return 0;
}

static void send_welcome(int c, uint16_t major)
{
    struct vgpu_msg_welcome w;

    memset(&w, 0, sizeof(w));
    w.hdr.type = VGPU_MSG_WELCOME;
    w.hdr.size = sizeof(w);
    w.version_major = major;
    w.session_id = 42;
    w.backend = VGPU_BACKEND_CPU;
    w.max_inflight = 8;
    strcpy(w.gpu_name, "fake gpu");
    send_all(c, &w, sizeof(w));
}

static void send_error(int c, uint32_t code, const char *text)
{
    struct vgpu_msg_error e;

    memset(&e, 0, sizeof(e));
    e.hdr.type = VGPU_MSG_ERROR;
    e.hdr.size = sizeof(e);
    e.code = code;
    snprintf(e.text, sizeof(e.text), "%s", text);
    send_all(c, &e, sizeof(e));
}

/*
 * Completes two NOPs. Before the first NOTIFY comes a 10000-byte message of
 * an unknown type (the library must skip it), and the NOTIFY itself is
 * written in two pieces. Then ends the link as f->ending says.
 */
static void serve(struct fake *f, int c)
{
    uint8_t *shm = mmap(NULL, f->fd_size, PROT_READ | PROT_WRITE, MAP_SHARED, f->got_fd, 0);
    struct vgpu_shm_ctrl *ctrl = vgpu_shm_ctrl(shm);
    struct vgpu_msg_notify nt;
    uint8_t *big;

    assert_true(shm != MAP_FAILED);
    big = calloc(1, 10000);
    assert_non_null(big);
    ((struct vgpu_msg_hdr *)big)->type = 99;
    ((struct vgpu_msg_hdr *)big)->size = 10000;
    memset(&nt, 0, sizeof(nt));
    nt.hdr.type = VGPU_MSG_NOTIFY;
    nt.hdr.size = sizeof(nt);

    while (f->served < 2) {
        struct vgpu_msg_kick k;
        uint32_t head;

        if (recv_all(c, &k, sizeof(k)) < 0) {
            break;
        }
        assert_int_equal(k.hdr.type, VGPU_MSG_KICK);
        assert_int_equal(k.hdr.size, sizeof(k));
        f->kicks++;
        head = ctrl->sq_head;
        while (head != vgpu_load_acquire(&ctrl->sq_tail)) {
            const struct vgpu_sqe *s = &vgpu_shm_sq(shm)[vgpu_ring_slot(head, VGPU_SQ_ENTRIES)];
            struct vgpu_cqe *q = &vgpu_shm_cq(shm)[vgpu_ring_slot(ctrl->cq_tail,
                                                                  VGPU_CQ_ENTRIES)];

            memset(q, 0, sizeof(*q));
            q->tag = s->tag;
            q->user_data = s->user_data;
            q->result = 1000 + s->tag;
            vgpu_store_release(&ctrl->cq_tail, ctrl->cq_tail + 1);
            vgpu_store_release(&ctrl->sq_head, ++head);
            f->served++;
        }
        if (f->served == 1) {
            send_all(c, big, 10000);
        }
        send_all(c, &nt, 10);
        usleep(2000);
        send_all(c, (uint8_t *)&nt + 10, sizeof(nt) - 10);
    }
    if (f->ending == 0) {
        struct vgpu_msg_bye bye = { .hdr = { .type = VGPU_MSG_BYE, .size = sizeof(bye) } };

        send_all(c, &bye, sizeof(bye));
    } else if (f->ending == 1) {
        send_error(c, VGPU_PERR_MALFORMED, "you sent garbage");
    }
    free(big);
    munmap(shm, f->fd_size);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    int c = accept(f->lsock, NULL, NULL);

    if (c < 0) {
        return NULL;
    }
    if (recv_hello(f, c) == 0) {
        switch (f->script) {
        case S_WELCOME_THEN_SERVE:
            send_welcome(c, VGPU_PROTO_VERSION_MAJOR);
            serve(f, c);
            break;
        case S_ERROR_IDENTITY:
            send_error(c, VGPU_PERR_IDENTITY, "vm id 5 is already connected");
            break;
        case S_WELCOME_V2:
            send_welcome(c, 2);
            break;
        case S_WRONG_TYPE: {
            struct vgpu_msg_notify nt = { .hdr = { .type = VGPU_MSG_NOTIFY,
                                                   .size = sizeof(nt) } };

            send_all(c, &nt, sizeof(nt));
            break;
        }
        case S_ERROR_UNKNOWN_CODE:
            send_error(c, 999, "?");
            break;
        case S_SILENT:
            usleep(300000);
            break;
        }
    }
    close(c);
    return NULL;
}

static int setup(void **state)
{
    struct fake *f = calloc(1, sizeof(*f));
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    assert_non_null(f);
    f->got_fd = -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/vgpu-sim-test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/m.sock", f->dir);
    f->lsock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lsock >= 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
    assert_int_equal(bind(f->lsock, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lsock, 4), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fake *f = *state;

    if (f->thread) {
        shutdown(f->lsock, SHUT_RDWR);
        pthread_join(f->thread, NULL);
    }
    close(f->lsock);
    if (f->got_fd >= 0) {
        close(f->got_fd);
    }
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int open_sim(struct fake *f, enum script script, int timeout_ms, struct vgpu_dev **dev)
{
    struct vgpu_open_opts o;

    f->script = script;
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    memset(&o, 0, sizeof(o));
    o.transport = "sim";
    o.socket_path = f->path;
    o.vm_id = 5;
    o.priority = 2;
    o.weight = 7;
    o.vm_name = "unit";
    o.shm_size = 4u << 20;
    o.link_timeout_ms = timeout_ms;
    return vgpu_open(&o, dev);
}

static void nop(struct vgpu_sqe *s, uint32_t tag)
{
    memset(s, 0, sizeof(*s));
    s->opcode = VGPU_OP_NOP;
    s->tag = tag;
    s->user_data = tag * 3ull;
}

static void test_hello_and_round_trips(void **state, int ending, int want_err)
{
    struct fake *f = *state;
    struct vgpu_dev_info info;
    struct vgpu_dev *dev;
    struct vgpu_sqe s;
    struct vgpu_cqe c;

    f->ending = ending;
    assert_int_equal(open_sim(f, S_WELCOME_THEN_SERVE, 2000, &dev), 0);
    /* What HELLO carried. */
    assert_int_equal(f->hello.hdr.type, VGPU_MSG_HELLO);
    assert_int_equal(f->hello.hdr.size, sizeof(f->hello));
    assert_int_equal(f->hello.version_major, VGPU_PROTO_VERSION_MAJOR);
    assert_int_equal(f->hello.abi_version, VGPU_ABI_VERSION);
    assert_int_equal(f->hello.vm_id, 5);
    assert_int_equal(f->hello.priority, 2);
    assert_int_equal(f->hello.weight, 7);
    assert_int_equal(f->hello.shm_size, 4u << 20);
    assert_string_equal(f->hello.vm_name, "unit");
    assert_int_equal(f->fd_size, 4u << 20);
    assert_int_equal(f->fd_seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    /* What WELCOME said. */
    assert_int_equal(vgpu_get_info(dev, &info), 0);
    assert_string_equal(info.transport, "sim");
    assert_int_equal(info.session_id, 42);
    assert_int_equal(info.max_inflight, 8);
    assert_int_equal(info.backend, VGPU_BACKEND_CPU);
    assert_string_equal(info.gpu_name, "fake gpu");
    assert_string_equal(info.location, f->path);
    assert_true(info.link_status & VGPU_LINK_UP);

    /* Two round trips through skipped and split messages. */
    nop(&s, 1);
    assert_int_equal(vgpu_call(dev, &s, &c, 2000), 0);
    assert_int_equal(c.result, 1001);
    nop(&s, 2);
    assert_int_equal(vgpu_call(dev, &s, &c, 2000), 0);
    assert_int_equal(c.result, 1002);
    assert_int_equal(f->kicks, 2);

    /* The fake ends the link: the next wait says how. */
    nop(&s, 3);
    assert_int_equal(vgpu_submit(dev, &s), 0);
    (void)vgpu_kick(dev);   /* may already see the end */
    assert_int_equal(vgpu_wait(dev, &c, 2000), want_err);
    assert_int_equal(vgpu_get_info(dev, &info), 0);
    assert_false(info.link_status & VGPU_LINK_UP);
    assert_int_equal(vgpu_kick(dev), want_err);
    vgpu_close(dev);
}

static void test_ends_with_bye(void **state)
{
    test_hello_and_round_trips(state, 0, -ENOLINK);
}

static void test_ends_with_error(void **state)
{
    test_hello_and_round_trips(state, 1, -EPROTO);
}

static void test_ends_with_close(void **state)
{
    test_hello_and_round_trips(state, 2, -ENOLINK);
}

static void test_refused_identity(void **state)
{
    struct vgpu_dev *dev;

    assert_int_equal(open_sim(*state, S_ERROR_IDENTITY, 2000, &dev), -EADDRINUSE);
    assert_non_null(strstr(vgpu_open_detail(), "vm id 5 is already connected"));
    assert_null(dev);
}

static void test_refused_version(void **state)
{
    struct vgpu_dev *dev;

    assert_int_equal(open_sim(*state, S_WELCOME_V2, 2000, &dev), -EPROTONOSUPPORT);
    assert_non_null(strstr(vgpu_open_detail(), "protocol 2.0"));
}

static void test_wrong_reply(void **state)
{
    struct vgpu_dev *dev;

    assert_int_equal(open_sim(*state, S_WRONG_TYPE, 2000, &dev), -EPROTO);
    assert_non_null(strstr(vgpu_open_detail(), "type 4"));
}

static void test_unknown_error_code(void **state)
{
    struct vgpu_dev *dev;

    /* An ERROR with a code we do not know is still a refusal. */
    assert_int_equal(open_sim(*state, S_ERROR_UNKNOWN_CODE, 2000, &dev), -EPROTO);
}

static void test_no_welcome(void **state)
{
    struct vgpu_dev *dev;

    assert_int_equal(open_sim(*state, S_SILENT, 100, &dev), -ETIMEDOUT);
    assert_non_null(strstr(vgpu_open_detail(), "no WELCOME"));
}

/* ABI 1.2: queue counts the device could not hold are refused before connecting. */
static void test_bad_queues(void **state)
{
    struct fake *f = *state;
    struct vgpu_open_opts o;
    struct vgpu_dev *dev;

    memset(&o, 0, sizeof(o));
    o.transport = "sim";
    o.socket_path = f->path;
    o.shm_size = 4u << 20;
    o.queues = VGPU_MAX_QUEUES + 1;
    assert_int_equal(vgpu_open(&o, &dev), -EINVAL);
    assert_non_null(strstr(vgpu_open_detail(), "queue pairs"));
    o.queues = VGPU_MAX_QUEUES;     /* 63 x 64 KiB + 128 KiB > 4 MiB */
    assert_int_equal(vgpu_open(&o, &dev), -EINVAL);
    o.queues = 0;
    setenv("VGPU_QUEUES", "two", 1);
    assert_int_equal(vgpu_open(&o, &dev), -EINVAL);
    unsetenv("VGPU_QUEUES");
    /* a sim handle's own queue must be one the device has */
    o.queues = 2;
    o.queue = 2;
    assert_int_equal(vgpu_open(&o, &dev), -EINVAL);
    assert_non_null(strstr(vgpu_open_detail(), "queue 2"));
}

/* A program that names no vm id (libcuda.so.1 on a host) takes $VGPU_VM_ID. */
static void test_vm_id_from_env(void **state)
{
    struct fake *f = *state;
    struct vgpu_open_opts o;
    struct vgpu_dev *dev;

    memset(&o, 0, sizeof(o));
    o.transport = "sim";
    o.socket_path = f->path;
    o.shm_size = 4u << 20;
    o.link_timeout_ms = 2000;
    setenv("VGPU_VM_ID", "7x", 1);
    assert_int_equal(vgpu_open(&o, &dev), -EINVAL);
    assert_non_null(strstr(vgpu_open_detail(), "VGPU_VM_ID"));
    setenv("VGPU_VM_ID", "9", 1);
    f->script = S_ERROR_IDENTITY;
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
    assert_int_equal(vgpu_open(&o, &dev), -EADDRINUSE);
    unsetenv("VGPU_VM_ID");
    assert_int_equal(f->hello.vm_id, 9);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ends_with_bye),
        T(test_ends_with_error),
        T(test_ends_with_close),
        T(test_refused_identity),
        T(test_refused_version),
        T(test_wrong_reply),
        T(test_unknown_error_code),
        T(test_no_welcome),
        T(test_bad_queues),
        T(test_vm_id_from_env),
    };
#undef T
    return cmocka_run_group_tests_name("libvgpu-sim", tests, NULL, NULL);
}
