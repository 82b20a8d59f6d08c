/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * The device <-> mediator socket protocol (a Unix stream socket; the device is
 * the QEMU vgpu-stub device or libvgpu's "sim" transport, the mediator is
 * vgpu-mediator). Documented in docs/protocol.md.
 *
 * Every message is a struct vgpu_msg_hdr followed by a type-specific body;
 * hdr.size counts header + body. Little-endian, fixed-width. Replies echo the
 * request's seq. The first message on a connection is HELLO (device) or
 * STATS_REQ/STATS_QUERY (an administrative client); the mediator answers HELLO with
 * WELCOME or ERROR. Data never crosses the socket: it lives in the shared
 * memory whose fd travels with HELLO (SCM_RIGHTS).
 */
#ifndef VGPU_PROTOCOL_H
#define VGPU_PROTOCOL_H

#include <stdint.h>

#define VGPU_PROTO_VERSION_MAJOR 1
#define VGPU_PROTO_VERSION_MINOR 4  /* 1.1: the doorbell eventfd (HELLO's second fd);
                                     * 1.2: STATS_QUERY/STATS_DATA, structured statistics;
                                     * 1.3: vgpu_stats_vm.by_status_hi (ABI 1.2 statuses);
                                     * 1.4: HELLO may carry the queue pairs
                                     * (struct vgpu_msg_hello_mq, ABI 1.2) */

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
    VGPU_MSG_STATS_QUERY = 9,/* 1.2: admin -> mediator: one page of structured statistics */
    VGPU_MSG_STATS_DATA = 10,/* 1.2: mediator -> admin: records (struct vgpu_msg_stats_data) */
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

/*
 * 1.4: the HELLO of a device with several queue pairs (ABI 1.2): the 1.0
 * HELLO followed by their count; hdr.size tells the two apart. A device with
 * one queue pair sends the 112-byte HELLO, which every mediator accepts and
 * a 1.4 mediator reads as one queue pair, so it works with older mediators;
 * an older mediator refuses this one (VGPU_PERR_MALFORMED) rather than
 * ignore the queues. The mediator checks that the queue regions leave at
 * least VGPU_SHM_MIN_DATA bytes of data area (else VGPU_PERR_SHM).
 */
struct vgpu_msg_hello_mq {
    struct vgpu_msg_hello hello;
    uint32_t queues;            /* 1 .. VGPU_MAX_QUEUES */
    uint32_t pad;               /* 0 */
};
_Static_assert(sizeof(struct vgpu_msg_hello_mq) == 120, "vgpu_msg_hello_mq size");

#define VGPU_SHM_MIN_DATA   0x10000u  /* data area a device must keep beside its queues */

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
 * hdr.size - sizeof(hdr) bytes of UTF-8 text (a table; not NUL-terminated),
 * at most VGPU_MSG_MAX_SIZE in all: when the table does not fit, its last
 * line says how many rows were left out. */

/*
 * Structured statistics (1.2). The mediator also listens on a read-only admin
 * socket (default below) that answers STATS_REQ and STATS_QUERY and refuses
 * HELLO and KICK, so reading statistics needs no right to attach as a VM.
 *
 * VM records come in session-id order, paged by a cursor: a query names the
 * first session id it wants (start); the reply carries up to max_records VM
 * records and, with VGPU_STATS_MORE, the start of the next query. A session
 * that exists from the first page to the last is in exactly one page.
 * Every STATS_DATA carries the mediator record too. Values are in base units
 * (ns, bytes) and cumulative since the session attached (VM) or the
 * mediator started; rates are the reader's to compute.
 */
#define VGPU_DEFAULT_ADMIN_SOCKET "/run/vgpu/mediator-ro.sock"

struct vgpu_msg_stats_query {
    struct vgpu_msg_hdr hdr;
    uint32_t start;             /* first session id wanted; 0: from the beginning */
    uint32_t max_records;       /* VM records per reply at most; 0: as many as fit */
    uint32_t flags;             /* 0; unknown flags are ignored */
    uint32_t pad;               /* 0 */
};
_Static_assert(sizeof(struct vgpu_msg_stats_query) == 32, "vgpu_msg_stats_query size");

struct vgpu_stats_mediator {
    char     version[32];       /* NUL-terminated, e.g. "0.1.0" */
    char     backend[16];       /* "cpu", "cuda" */
    char     gpu_name[64];
    char     health[128];       /* the backend's health line, e.g. worker restarts */
    uint32_t pid;
    uint32_t backend_kind;      /* VGPU_BACKEND_* */
    uint32_t gpu_index;
    uint32_t gpu_sms;
    uint32_t gpu_cc;            /* major << 8 | minor; 0 on cpu */
    uint32_t sessions;          /* live VM sessions */
    uint32_t max_sessions;
    uint32_t connections;       /* of both sockets, admin ones included */
    uint32_t queued;            /* requests waiting in the scheduler */
    uint32_t running;           /* requests executing */
    uint32_t executors;
    uint32_t max_inflight;      /* per VM */
    uint64_t uptime_ns;
    uint64_t gpu_mem_total;     /* bytes */
    uint64_t gpu_mem_free;      /* bytes, as the backend last reported */
    uint64_t sessions_opened;
    uint64_t sessions_closed;
    uint64_t conns_rejected;
    uint64_t inline_runs;       /* requests run on the I/O thread */
    uint64_t exec_runs;         /* requests (parts) run on executors */
    uint64_t gpu_time_ns;       /* charged to every session ever, closed ones included */
    uint64_t closed_requests;   /* totals of every closed session */
    uint64_t closed_ok;
    uint64_t closed_errors;
    uint64_t closed_bytes_in;
    uint64_t closed_bytes_out;
    uint64_t closed_gpu_time_ns;
};
_Static_assert(sizeof(struct vgpu_stats_mediator) == 408, "vgpu_stats_mediator size");

enum vgpu_stats_vm_state {
    VGPU_STATS_VM_ACTIVE = 1,   /* attached */
    VGPU_STATS_VM_CLOSED = 2,   /* one of the most recently closed sessions */
};

#define VGPU_STATS_VM_MEM_USED   (1u << 0)  /* mem_used is known */
#define VGPU_STATS_STATUS_SLOTS  16         /* by_status[]: enum vgpu_status, 0 = ok */

struct vgpu_stats_vm {
    uint32_t session_id;
    uint32_t vm_id;
    char     vm_name[64];       /* NUL-padded, printable ASCII */
    uint32_t state;             /* enum vgpu_stats_vm_state */
    uint32_t gpu;               /* index of the GPU it runs on */
    uint32_t priority;          /* in effect (config file applied) */
    uint32_t weight;
    uint32_t inflight;          /* taken from the ring, not completed */
    uint32_t max_inflight;
    uint32_t flags;             /* VGPU_STATS_VM_* */
    uint32_t worker_pid;        /* its GPU worker process (cuda), as nvidia-smi lists
                                 * it; 0: none (cpu, not started, closed) */
    uint64_t connected_ns;      /* since HELLO; 0 for a closed session */
    uint64_t requests;          /* taken from the ring */
    uint64_t completed;
    uint64_t ok;
    uint64_t errors;            /* completed - ok */
    uint64_t bytes_in;          /* of successful requests */
    uint64_t bytes_out;
    uint64_t queue_p50_ns;      /* enqueue to first execution */
    uint64_t queue_p99_ns;
    uint64_t exec_p50_ns;
    uint64_t exec_p99_ns;
    uint64_t gpu_time_ns;       /* charged by the fair-share scheduler */
    uint64_t exec_time_ns;      /* sum of execution times */
    uint64_t mem_used;          /* device bytes held; valid with VGPU_STATS_VM_MEM_USED */
    uint64_t mem_quota;         /* device bytes allowed; 0: no limit */
    uint64_t kicks;             /* doorbells (eventfd or KICK) */
    uint64_t notifies;
    uint64_t ring_corrupt;      /* ring entries found inconsistent */
    uint64_t by_status[VGPU_STATS_STATUS_SLOTS]; /* completions per status */
    /* 1.3: completions of statuses VGPU_STATS_STATUS_SLOTS .. 2 * that - 1 */
    uint64_t by_status_hi[VGPU_STATS_STATUS_SLOTS];
};
_Static_assert(sizeof(struct vgpu_stats_vm) == 504, "vgpu_stats_vm size");
#define VGPU_STATS_VM_SIZE_1_2   376u       /* a 1.2 record: no by_status_hi */

/* Completions of status st in a record (0 for statuses it cannot count). */
static inline uint64_t vgpu_stats_vm_status(const struct vgpu_stats_vm *v, int st)
{
    if (st >= 0 && st < VGPU_STATS_STATUS_SLOTS) {
        return v->by_status[st];
    }
    if (st >= VGPU_STATS_STATUS_SLOTS && st < 2 * VGPU_STATS_STATUS_SLOTS) {
        return v->by_status_hi[st - VGPU_STATS_STATUS_SLOTS];
    }
    return 0;
}

#define VGPU_STATS_MORE (1u << 0)   /* more VM records: query again from next */

/*
 * STATS_DATA: this header, then mediator_size bytes of struct
 * vgpu_stats_mediator, then count records of vm_size bytes each;
 * hdr.size == sizeof(struct vgpu_msg_stats_data) + mediator_size +
 * count * vm_size. A later minor version may append fields to a record
 * (larger sizes); a reader takes the fields it knows and skips the rest,
 * and refuses sizes smaller than those of 1.2.
 */
struct vgpu_msg_stats_data {
    struct vgpu_msg_hdr hdr;
    uint32_t flags;             /* VGPU_STATS_MORE */
    uint32_t count;             /* VM records in this message */
    uint32_t next;              /* with VGPU_STATS_MORE: start of the next query */
    uint32_t total;             /* VM records from start on when this page was built */
    uint16_t mediator_size;     /* sizeof(struct vgpu_stats_mediator) as sent */
    uint16_t vm_size;           /* sizeof(struct vgpu_stats_vm) as sent */
    uint32_t pad;
    uint64_t realtime_ns;       /* CLOCK_REALTIME when the page was built */
};
_Static_assert(sizeof(struct vgpu_msg_stats_data) == 48, "vgpu_msg_stats_data size");

#endif /* VGPU_PROTOCOL_H */
