/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The device <-> mediator socket protocol (a Unix stream socket; the device is
 * the QEMU vgpu-stub device or libvgpu's "sim" transport, the mediator is
 * vgpu-mediator). Documented in docs/protocol.md.
 *
 * Every message is a struct vgpu_msg_hdr followed by a type-specific body;
 * hdr.size counts header + body. Little-endian, fixed-width. Replies echo the
 * request's seq. The first message on a connection is HELLO (device) or
 * STATS_REQ (an administrative client); the mediator answers HELLO with
 * WELCOME or ERROR. Data never crosses the socket: it lives in the shared
 * memory whose fd travels with HELLO (SCM_RIGHTS).
 */
#ifndef VGPU_PROTOCOL_H
#define VGPU_PROTOCOL_H

#include <stdint.h>

#define VGPU_PROTO_VERSION_MAJOR 1
#define VGPU_PROTO_VERSION_MINOR 1  /* 1.1: the doorbell eventfd (HELLO's second fd) */

#define VGPU_MSG_MAX_SIZE   65536u  /* header included; larger is a protocol error */

enum vgpu_msg_type {
    VGPU_MSG_HELLO      = 1, /* device -> mediator, carries the shm fd */
    VGPU_MSG_WELCOME    = 2, /* mediator -> device */
    VGPU_MSG_KICK       = 3, /* device -> mediator: the guest rang the doorbell */
    VGPU_MSG_NOTIFY     = 4, /* mediator -> device: completions are in the CQ */
    VGPU_MSG_BYE        = 5, /* either way: orderly close */
    VGPU_MSG_ERROR      = 6, /* either way: the peer did something wrong */
    VGPU_MSG_STATS_REQ  = 7, /* admin -> mediator: per-VM statistics please */
    VGPU_MSG_STATS_REPLY = 8,/* mediator -> admin: text table in the body */
    VGPU_MSG_TYPE_COUNT
};

struct vgpu_msg_hdr {
    uint16_t type;      /* enum vgpu_msg_type */
    uint16_t flags;     /* 0 in version 1.0 */
    uint32_t size;      /* header + body, bytes */
    uint32_t seq;       /* sender's sequence number; replies echo it */
    uint32_t reserved;  /* 0 */
};
_Static_assert(sizeof(struct vgpu_msg_hdr) == 16, "vgpu_msg_hdr size");

struct vgpu_msg_hello {
    struct vgpu_msg_hdr hdr;
    uint16_t version_major;     /* VGPU_PROTO_VERSION_MAJOR */
    uint16_t version_minor;
    uint32_t abi_version;       /* VGPU_ABI_VERSION the device implements */
    uint32_t vm_id;
    uint32_t priority;          /* 0 = highest class */
    uint32_t weight;            /* share within the class, >= 1 */
    uint32_t features;          /* VGPU_FEAT_* of the device */
    uint64_t shm_size;          /* bytes of the memfd passed with this message */
    /*
     * File descriptors (SCM_RIGHTS, in this order): the shared memory's
     * memfd; then, only when features has VGPU_FEAT_DOORBELL_FD, an eventfd
     * that the device signals on each doorbell (QEMU: an ioeventfd on
     * VGPU_REG_DOORBELL, so under KVM a doorbell never leaves the kernel).
     */
    char     vm_name[64];       /* NUL-padded */
};
_Static_assert(sizeof(struct vgpu_msg_hello) == 112, "vgpu_msg_hello size");

/* The lowest priority class number the mediator accepts is 0 (highest). */
#define VGPU_PRIO_CLASSES   4u
#define VGPU_WEIGHT_MAX     1000u

struct vgpu_msg_welcome {
    struct vgpu_msg_hdr hdr;
    uint16_t version_major;
    uint16_t version_minor;
    uint32_t session_id;
    uint32_t backend;           /* VGPU_BACKEND_* */
    uint32_t max_inflight;      /* per-VM in-flight cap */
    uint32_t gpu_mem_mib;
    uint32_t gpu_sms;
    uint32_t gpu_cc;            /* major << 8 | minor */
    uint32_t features;          /* VGPU_FEAT_* the mediator takes up: with
                                 * VGPU_FEAT_DOORBELL_FD it watches the doorbell
                                 * eventfd. 0 from a 1.0 mediator (was pad). */
    char     gpu_name[64];
};
_Static_assert(sizeof(struct vgpu_msg_welcome) == 112, "vgpu_msg_welcome size");

/* The doorbell as a message: always accepted, also beside a doorbell eventfd
 * (a device sends it for a doorbell rung before the eventfd was taken up). */
struct vgpu_msg_kick {
    struct vgpu_msg_hdr hdr;
    uint32_t sq_tail;           /* hint only: the mediator reads the ring */
    uint32_t pad;
};
_Static_assert(sizeof(struct vgpu_msg_kick) == 24, "vgpu_msg_kick size");

struct vgpu_msg_notify {
    struct vgpu_msg_hdr hdr;
    uint32_t cq_tail;           /* hint only */
    uint32_t pad;
};
_Static_assert(sizeof(struct vgpu_msg_notify) == 24, "vgpu_msg_notify size");

enum vgpu_bye_reason {
    VGPU_BYE_SHUTDOWN = 0,      /* the sender is stopping */
    VGPU_BYE_RESET    = 1,      /* the device was reset */
};

struct vgpu_msg_bye {
    struct vgpu_msg_hdr hdr;
    uint32_t reason;            /* enum vgpu_bye_reason */
    uint32_t pad;
};
_Static_assert(sizeof(struct vgpu_msg_bye) == 24, "vgpu_msg_bye size");

enum vgpu_proto_error {
    VGPU_PERR_VERSION   = 1,    /* unsupported protocol major version */
    VGPU_PERR_MALFORMED = 2,    /* short, oversized or inconsistent message */
    VGPU_PERR_TYPE      = 3,    /* unknown or unexpected message type */
    VGPU_PERR_FD        = 4,    /* missing or unexpected file descriptor */
    VGPU_PERR_SHM       = 5,    /* the shared memory is unusable */
    VGPU_PERR_LIMIT     = 6,    /* too many sessions */
    VGPU_PERR_IDENTITY  = 7,    /* bad priority/weight/vm id, or id in use */
};

struct vgpu_msg_error {
    struct vgpu_msg_hdr hdr;
    uint32_t code;              /* enum vgpu_proto_error */
    uint32_t ref_seq;           /* seq of the offending message */
    char     text[120];         /* NUL-terminated, for logs */
};
_Static_assert(sizeof(struct vgpu_msg_error) == 144, "vgpu_msg_error size");

/* STATS_REQ is a bare header. STATS_REPLY is a header followed by
 * hdr.size - sizeof(hdr) bytes of UTF-8 text (a table; not NUL-terminated). */

#endif /* VGPU_PROTOCOL_H */
