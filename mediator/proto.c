/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Message checks of the socket protocol (see proto.h). Extracted from
 * server.c unchanged in order and wording so the fuzz target exercises what
 * the daemon runs.
 */
#include <stdio.h>

#include "proto.h"

static const char *const msg_names[VGPU_MSG_TYPE_COUNT] = {
    "0?", "HELLO", "WELCOME", "KICK", "NOTIFY", "BYE", "ERROR", "STATS_REQ", "STATS_REPLY",
    "STATS_QUERY", "STATS_DATA",
};

const char *vgpu_msg_name(uint16_t type)
{
    return type < VGPU_MSG_TYPE_COUNT ? msg_names[type] : "unknown";
}

uint32_t vgpu_msg_expected_size(uint16_t type)
{
    switch (type) {
    case VGPU_MSG_HELLO:     return sizeof(struct vgpu_msg_hello);
    case VGPU_MSG_WELCOME:   return sizeof(struct vgpu_msg_welcome);
    case VGPU_MSG_KICK:      return sizeof(struct vgpu_msg_kick);
    case VGPU_MSG_NOTIFY:    return sizeof(struct vgpu_msg_notify);
    case VGPU_MSG_BYE:       return sizeof(struct vgpu_msg_bye);
    case VGPU_MSG_ERROR:     return sizeof(struct vgpu_msg_error);
    case VGPU_MSG_STATS_REQ: return sizeof(struct vgpu_msg_hdr);
    case VGPU_MSG_STATS_QUERY: return sizeof(struct vgpu_msg_stats_query);
    default:                 return 0; /* STATS_REPLY/DATA: variable, never sent to us */
    }
}

static bool allowed(enum vgpu_conn_state st, uint16_t type)
{
    switch (type) {
    case VGPU_MSG_HELLO:     return st == VGPU_CONN_NEW;
    case VGPU_MSG_KICK:      return st == VGPU_CONN_ACTIVE;
    case VGPU_MSG_BYE:
    case VGPU_MSG_ERROR:
    case VGPU_MSG_STATS_REQ:
    case VGPU_MSG_STATS_QUERY: return true;
    default:                 return false; /* mediator -> peer only */
    }
}

int vgpu_msg_check_header(const struct vgpu_msg_hdr *h, enum vgpu_conn_state st,
                          char *why, size_t why_len)
{
    uint32_t want;

    if (h->size < sizeof(*h) || h->size > VGPU_MSG_MAX_SIZE) {
        snprintf(why, why_len, "message size %u outside %zu..%u", h->size, sizeof(*h),
                 VGPU_MSG_MAX_SIZE);
        return VGPU_PERR_MALFORMED;
    }
    if (h->type == 0 || h->type >= VGPU_MSG_TYPE_COUNT) {
        snprintf(why, why_len, "unknown message type %u", h->type);
        return VGPU_PERR_TYPE;
    }
    want = vgpu_msg_expected_size(h->type);
    /* 1.4: a HELLO may be the longer one that carries the queue count. */
    if (h->type == VGPU_MSG_HELLO && h->size == sizeof(struct vgpu_msg_hello_mq)) {
        want = h->size;
    }
    if (want && h->size != want) {
        snprintf(why, why_len, "%s of %u bytes, expected %u", vgpu_msg_name(h->type), h->size,
                 want);
        return VGPU_PERR_MALFORMED;
    }
    /* Also what keeps the variable-size STATS_REPLY/DATA out of the rx buffer. */
    if (!allowed(st, h->type)) {
        snprintf(why, why_len, "unexpected %s %s", vgpu_msg_name(h->type),
                 st == VGPU_CONN_NEW ? "before HELLO" :
                 h->type == VGPU_MSG_HELLO ? "twice" : "in this state");
        return VGPU_PERR_TYPE;
    }
    return 0;
}

int vgpu_msg_check_fds(const struct vgpu_msg_hdr *h, unsigned nfds, bool fd_overflow,
                       char *why, size_t why_len)
{
    if (fd_overflow) {
        snprintf(why, why_len, "too many file descriptors with %s", vgpu_msg_name(h->type));
        return VGPU_PERR_FD;
    }
    if (h->type == VGPU_MSG_HELLO && nfds != 1 && nfds != 2) {
        snprintf(why, why_len, "HELLO with %u file descriptors, expected 1 or 2", nfds);
        return VGPU_PERR_FD;
    }
    if (h->type != VGPU_MSG_HELLO && nfds != 0) {
        snprintf(why, why_len, "file descriptor with %s", vgpu_msg_name(h->type));
        return VGPU_PERR_FD;
    }
    return 0;
}

int vgpu_msg_check_hello(const struct vgpu_msg_hello *h, unsigned nfds, char *why,
                         size_t why_len)
{
    unsigned want_fds = (h->features & VGPU_FEAT_DOORBELL_FD) ? 2 : 1;

    if (h->version_major != VGPU_PROTO_VERSION_MAJOR) {
        snprintf(why, why_len, "protocol version %u.%u, mediator speaks %u.%u",
                 h->version_major, h->version_minor, VGPU_PROTO_VERSION_MAJOR,
                 VGPU_PROTO_VERSION_MINOR);
        return VGPU_PERR_VERSION;
    }
    if ((h->abi_version >> 16) != VGPU_ABI_VERSION_MAJOR) {
        snprintf(why, why_len, "ABI version %u.%u, mediator has %u.%u", h->abi_version >> 16,
                 h->abi_version & 0xffff, VGPU_ABI_VERSION_MAJOR, VGPU_ABI_VERSION_MINOR);
        return VGPU_PERR_VERSION;
    }
    if (h->priority >= VGPU_PRIO_CLASSES || h->weight < 1 || h->weight > VGPU_WEIGHT_MAX) {
        snprintf(why, why_len, "priority %u (0..%u) or weight %u (1..%u) out of range",
                 h->priority, VGPU_PRIO_CLASSES - 1, h->weight, VGPU_WEIGHT_MAX);
        return VGPU_PERR_IDENTITY;
    }
    if (h->hdr.size == sizeof(struct vgpu_msg_hello_mq)) {
        const struct vgpu_msg_hello_mq *mq = (const struct vgpu_msg_hello_mq *)h;

        if (mq->queues < 1 || mq->queues > VGPU_MAX_QUEUES || mq->pad != 0) {
            snprintf(why, why_len, "HELLO with %u queue pairs (1..%u) or pad %u", mq->queues,
                     VGPU_MAX_QUEUES, mq->pad);
            return VGPU_PERR_MALFORMED;
        }
    }
    if (nfds != want_fds) {
        snprintf(why, why_len, "HELLO with %u file descriptors, features 0x%x ask for %u", nfds,
                 h->features, want_fds);
        return VGPU_PERR_FD;
    }
    return 0;
}

uint32_t vgpu_msg_hello_queues(const struct vgpu_msg_hello *h)
{
    if (h->hdr.size != sizeof(struct vgpu_msg_hello_mq)) {
        return 1;
    }
    return ((const struct vgpu_msg_hello_mq *)h)->queues;
}

void vgpu_sanitize_name(char *dst, const char *src, size_t n)
{
    size_t i;

    for (i = 0; i + 1 < n && src[i]; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[i] = '\0';
}
