/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Socket messages a peer sends the mediator, through the checks the daemon
 * runs (mediator/proto.c), in the daemon's order and with its connection
 * state machine. Input: [state][nfds per message ...] then the byte stream.
 *
 * What must hold: a header that passes is no larger than the receive buffer;
 * reading a passed message as its type's struct stays inside the bytes the
 * header announced (the body is copied into a buffer of exactly h->size, so
 * AddressSanitizer sees any over-read); every reject comes with a reason; the
 * names copied into logs are printable and terminated.
 */
#include <string.h>

#include "mediator/proto.h"
#include "fuzz.h"

static void check_why(int r, const char *why, size_t len)
{
    FUZZ_CHECK(r >= VGPU_PERR_VERSION && r <= VGPU_PERR_IDENTITY);
    FUZZ_CHECK(memchr(why, '\0', len) != NULL && why[0] != '\0');
}

static void check_printable(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    FUZZ_CHECK(n < cap);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(s[i] >= 0x20 && s[i] < 0x7f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = { data, size };
    enum vgpu_conn_state st = (enum vgpu_conn_state)(fuzz_u8(&in) % 3); /* not CLOSED */
    uint8_t fds = fuzz_u8(&in);
    char why[120];

    /* The daemon reads at most this many messages per wakeup; the stream is
     * bounded by the input anyway. */
    for (unsigned msgs = 0; msgs < 64; msgs++) {
        struct vgpu_msg_hdr h;
        unsigned nfds = fds & 3;
        bool overflow = (fds & 4) != 0;
        uint8_t *msg;
        int r;

        fds >>= 3;
        if (in.left < sizeof(h)) {
            return 0; /* truncated before EOF: the connection is dropped */
        }
        memcpy(&h, in.p, sizeof(h));
        memset(why, 0x55, sizeof(why));
        r = vgpu_msg_check_header(&h, st, why, sizeof(why));
        if (r) {
            check_why(r, why, sizeof(why));
            return 0;
        }
        FUZZ_CHECK(h.size >= sizeof(h) && h.size <= VGPU_RX_BUF);
        FUZZ_CHECK(vgpu_msg_expected_size(h.type) == h.size ||
                   (h.type == VGPU_MSG_HELLO && h.size == sizeof(struct vgpu_msg_hello_mq)));
        if (in.left < h.size) {
            return 0;
        }
        msg = malloc(h.size);
        FUZZ_CHECK(msg != NULL);
        memcpy(msg, in.p, h.size);
        in.p += h.size;
        in.left -= h.size;

        memset(why, 0x55, sizeof(why));
        r = vgpu_msg_check_fds(&h, nfds, overflow, why, sizeof(why));
        if (r) {
            check_why(r, why, sizeof(why));
            FUZZ_CHECK(r == VGPU_PERR_FD);
            free(msg);
            return 0;
        }
        FUZZ_CHECK(!overflow && (h.type == VGPU_MSG_HELLO ? nfds == 1 || nfds == 2 : nfds == 0));

        switch (h.type) {
        case VGPU_MSG_HELLO: {
            const struct vgpu_msg_hello *hello = (const void *)msg;
            char name[64];

            FUZZ_CHECK(st == VGPU_CONN_NEW);
            memset(why, 0x55, sizeof(why));
            r = vgpu_msg_check_hello(hello, nfds, why, sizeof(why));
            if (r) {
                check_why(r, why, sizeof(why));
                free(msg);
                return 0;
            }
            FUZZ_CHECK(hello->priority < VGPU_PRIO_CLASSES);
            FUZZ_CHECK(hello->weight >= 1 && hello->weight <= VGPU_WEIGHT_MAX);
            FUZZ_CHECK(nfds == ((hello->features & VGPU_FEAT_DOORBELL_FD) ? 2u : 1u));
            FUZZ_CHECK(vgpu_msg_hello_queues(hello) >= 1 &&
                       vgpu_msg_hello_queues(hello) <= VGPU_MAX_QUEUES);
            vgpu_sanitize_name(name, hello->vm_name, sizeof(name));
            check_printable(name, sizeof(name));
            st = VGPU_CONN_ACTIVE;
            break;
        }
        case VGPU_MSG_KICK: {
            const struct vgpu_msg_kick *k = (const void *)msg;

            FUZZ_CHECK(st == VGPU_CONN_ACTIVE);
            (void)k->sq_tail; /* a hint the mediator never trusts */
            break;
        }
        case VGPU_MSG_STATS_REQ:
            if (st == VGPU_CONN_NEW) {
                st = VGPU_CONN_ADMIN;
            }
            break;
        case VGPU_MSG_ERROR: {
            const struct vgpu_msg_error *e = (const void *)msg;
            char text[sizeof(e->text) + 1];

            vgpu_sanitize_name(text, e->text, sizeof(text));
            check_printable(text, sizeof(text));
            free(msg);
            return 0; /* the connection closes */
        }
        case VGPU_MSG_BYE: {
            const struct vgpu_msg_bye *b = (const void *)msg;

            (void)b->reason;
            free(msg);
            return 0;
        }
        default:
            FUZZ_CHECK(!"a mediator -> peer type passed the header check");
        }
        free(msg);
    }
    return 0;
}
