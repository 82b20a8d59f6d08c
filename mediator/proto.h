/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Checks of the messages a peer sends the mediator, as pure functions so the
 * daemon (server.c) and the fuzz target (tests/fuzz/fuzz_msg.c) run the same
 * code. Each check returns 0 or the enum vgpu_proto_error to answer with, and
 * then writes the reason for the log and the ERROR text into why[why_len].
 * No check touches a socket, a file descriptor or the mediator's state.
 */
#ifndef VGPU_MEDIATOR_PROTO_H
#define VGPU_MEDIATOR_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vgpu/protocol.h"
#include "mediator.h"

/* Name of a message type for logs; "unknown" when out of range. */
const char *vgpu_msg_name(uint16_t type);

/* The exact size of a message of this type, or 0 when variable/unknown. */
uint32_t vgpu_msg_expected_size(uint16_t type);

/*
 * A complete header, checked in this order: size within
 * [sizeof(hdr), VGPU_MSG_MAX_SIZE], known type, exact size for the type,
 * allowed in connection state st. On 0, h->size <= VGPU_RX_BUF.
 */
int vgpu_msg_check_header(const struct vgpu_msg_hdr *h, enum vgpu_conn_state st,
                          char *why, size_t why_len);

/*
 * The descriptors that came with a complete message whose header passed:
 * one or two on HELLO, none on anything else; fd_overflow means more than
 * the receive side could hold arrived (they were closed).
 */
int vgpu_msg_check_fds(const struct vgpu_msg_hdr *h, unsigned nfds, bool fd_overflow,
                       char *why, size_t why_len);

/*
 * The HELLO body: protocol and ABI major versions, priority and weight, the
 * queue count of a 1.4 HELLO (1 .. VGPU_MAX_QUEUES, pad 0; h must hold
 * h->hdr.size bytes), and
 * nfds (the descriptors that came with it) matching its features: the memfd,
 * plus the doorbell eventfd exactly when VGPU_FEAT_DOORBELL_FD is set.
 */
int vgpu_msg_check_hello(const struct vgpu_msg_hello *h, unsigned nfds, char *why,
                         size_t why_len);
/*
 * The queue pairs a HELLO that passed vgpu_msg_check_hello() announces: 1
 * for the 112-byte HELLO, else struct vgpu_msg_hello_mq's count (h must
 * then hold h->hdr.size bytes).
 */
uint32_t vgpu_msg_hello_queues(const struct vgpu_msg_hello *h);

/*
 * Copies at most n - 1 bytes of a peer-supplied, possibly unterminated string
 * up to its first NUL, replacing anything but printable ASCII by '?' (it goes
 * into logs). dst is always terminated; n must be >= 1.
 */
void vgpu_sanitize_name(char *dst, const char *src, size_t n);

#endif /* VGPU_MEDIATOR_PROTO_H */
