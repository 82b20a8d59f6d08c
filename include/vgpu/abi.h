/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu guest ABI: the BAR0 register map, the BAR2 shared-memory layout, the
 * submission/completion ring entries, the operations with their argument
 * structs, and the status codes.
 *
 * This is the one definition shared by the QEMU device (qemu/vgpu-stub.c),
 * the host mediator (mediator/) and the guest library (libvgpu/). Everything
 * here is fixed-width and little-endian; every struct has explicit padding and
 * a compile-time size check. Documented in docs/register-map.md.
 *
 * Versioning: VGPU_ABI_VERSION_MAJOR changes when a layout or meaning changes
 * incompatibly; VGPU_ABI_VERSION_MINOR when something is only added (a new
 * opcode, a new register in reserved space, a new feature bit).
 */
#ifndef VGPU_ABI_H
#define VGPU_ABI_H

#include <stdint.h>

#define VGPU_ABI_VERSION_MAJOR 1
#define VGPU_ABI_VERSION_MINOR 2   /* 1.1: status interrupted, ctrl.exec_index;
                                    * 1.2: several queue pairs, the CUDA driver
                                    * operations (VGPU_OP_CU_*), statuses 15, 16 */
#define VGPU_ABI_VERSION ((VGPU_ABI_VERSION_MAJOR << 16) | VGPU_ABI_VERSION_MINOR)

/* ------------------------------------------------------------------------
 * PCI identity. The device never uses NVIDIA's vendor id (0x10de).
 * 0x1b36 is the vendor id Red Hat donated to QEMU for its own virtual
 * devices; 0x10f0 is outside the range QEMU assigns (0x0001..0x0011,
 * 0x0100). Both are overridable by device properties.
 * ------------------------------------------------------------------------ */
#define VGPU_PCI_VENDOR_ID        0x1b36
#define VGPU_PCI_DEVICE_ID        0x10f0
#define VGPU_PCI_REVISION         0x01
#define VGPU_PCI_CLASS_CODE       0xff    /* unclassified device */
#define VGPU_PCI_FORBIDDEN_VENDOR 0x10de  /* NVIDIA: never impersonated */

#define VGPU_BAR_REGS 0   /* 4 KiB of registers */
#define VGPU_BAR_SHM  2   /* shared memory, 64-bit prefetchable */

/* ------------------------------------------------------------------------
 * BAR0 registers. All registers are 32 bits wide and must be accessed with
 * aligned 32-bit loads/stores. Unknown offsets read 0; writes to read-only
 * registers are ignored. (RO) read-only, (WO) write-only (reads 0),
 * (RW) read-write, (W1C) write 1 to clear.
 * ------------------------------------------------------------------------ */
#define VGPU_REGS_SIZE          0x1000

#define VGPU_REG_MAGIC          0x000 /* RO  VGPU_MAGIC */
#define VGPU_REG_VERSION        0x004 /* RO  VGPU_ABI_VERSION */
#define VGPU_REG_FEATURES       0x008 /* RO  VGPU_FEAT_* */
#define VGPU_REG_LINK_STATUS    0x00c /* RO  VGPU_LINK_* */
#define VGPU_REG_VM_ID          0x010 /* RO  set by the operator */
#define VGPU_REG_PRIORITY       0x014 /* RO  set by the operator */
#define VGPU_REG_WEIGHT         0x018 /* RO  set by the operator */
#define VGPU_REG_SESSION_ID     0x01c /* RO  mediator's id for this link */
#define VGPU_REG_DOORBELL       0x020 /* WO  any value: "the SQ tail moved" */
#define VGPU_REG_IRQ_STATUS     0x024 /* RO  VGPU_IRQ_* pending causes */
#define VGPU_REG_IRQ_ACK        0x028 /* W1C clears VGPU_IRQ_* bits */
#define VGPU_REG_IRQ_MASK       0x02c /* RW  VGPU_IRQ_* bits set = masked */
#define VGPU_REG_SHM_SIZE_LO    0x030 /* RO  BAR2 size, low 32 bits */
#define VGPU_REG_SHM_SIZE_HI    0x034 /* RO  BAR2 size, high 32 bits */
#define VGPU_REG_SQ_ENTRIES     0x038 /* RO  VGPU_SQ_ENTRIES */
#define VGPU_REG_CQ_ENTRIES     0x03c /* RO  VGPU_CQ_ENTRIES */
#define VGPU_REG_DATA_OFFSET    0x040 /* RO  VGPU_SHM_DATA_OFFSET */
#define VGPU_REG_MAX_INFLIGHT   0x044 /* RO  per-VM in-flight cap (WELCOME) */
#define VGPU_REG_KICKS          0x048 /* RO  doorbells forwarded (debug) */
#define VGPU_REG_NOTIFIES       0x04c /* RO  completion notices received */
#define VGPU_REG_QUEUES         0x050 /* RO  1.2: queue pairs N (1 .. VGPU_MAX_QUEUES);
                                       * reads 0 on a 1.0/1.1 device: one queue */
#define VGPU_REG_DATA_END_LO    0x054 /* RO  1.2: end of the data area (BAR2 offset) */
#define VGPU_REG_DATA_END_HI    0x058 /* RO  1.2: high 32 bits */
#define VGPU_REG_BACKEND        0x080 /* RO  VGPU_BACKEND_* of the mediator */
#define VGPU_REG_GPU_MEM_MIB    0x084 /* RO  GPU memory, MiB */
#define VGPU_REG_GPU_SMS        0x088 /* RO  streaming multiprocessors */
#define VGPU_REG_GPU_CC         0x08c /* RO  compute capability major<<8|minor */
#define VGPU_REG_VM_NAME        0x100 /* RO  64 bytes, NUL-padded ASCII */
#define VGPU_REG_GPU_NAME       0x140 /* RO  64 bytes, NUL-padded ASCII */
#define VGPU_REG_NAME_LEN       64

#define VGPU_MAGIC              0x55504756u /* "VGPU" as little-endian bytes */

/* VGPU_REG_FEATURES */
#define VGPU_FEAT_INTX          (1u << 0) /* legacy interrupt on completion */
#define VGPU_FEAT_MSI           (1u << 1) /* MSI on completion */
#define VGPU_FEAT_RECONNECT     (1u << 2) /* requests survive a mediator restart */
#define VGPU_FEAT_DOORBELL_FD   (1u << 3) /* the doorbell signals an eventfd the
                                           * mediator watches (protocol 1.1) */
#define VGPU_FEAT_MULTIQUEUE    (1u << 4) /* 1.2: VGPU_REG_QUEUES queue pairs */

/* VGPU_REG_LINK_STATUS */
#define VGPU_LINK_UP            (1u << 0) /* mediator connected and welcomed us */
#define VGPU_LINK_GPU           (1u << 1) /* mediator executes on a real GPU */

/* VGPU_REG_IRQ_STATUS / _ACK / _MASK */
#define VGPU_IRQ_COMPLETION     (1u << 0) /* new entries in the completion ring */
#define VGPU_IRQ_LINK           (1u << 1) /* link status changed */

/* VGPU_REG_BACKEND */
#define VGPU_BACKEND_NONE       0
#define VGPU_BACKEND_CPU        1
#define VGPU_BACKEND_CUDA       2

/* ------------------------------------------------------------------------
 * BAR2 shared memory layout (offsets from the start of BAR2). The layout is
 * fixed: nothing in shared memory is trusted to describe it. Ring indexes are
 * free-running uint32 counters; a slot is index % entries. Each index sits on
 * its own cache line, written by one side only.
 *
 *   0x0000  struct vgpu_shm_ctrl     ring indexes
 *   0x1000  SQ: VGPU_SQ_ENTRIES x struct vgpu_sqe (64 B)   written by guest
 *   0x5000  CQ: VGPU_CQ_ENTRIES x struct vgpu_cqe (32 B)   written by host
 *   0x10000 data area, up to the end of BAR2: operation inputs/outputs
 * ------------------------------------------------------------------------ */
#define VGPU_SQ_ENTRIES         256u
#define VGPU_CQ_ENTRIES         256u
#define VGPU_SHM_CTRL_OFFSET    0x0000u
#define VGPU_SHM_SQ_OFFSET      0x1000u
#define VGPU_SHM_CQ_OFFSET      0x5000u
#define VGPU_SHM_DATA_OFFSET    0x10000u
#define VGPU_SHM_MIN_SIZE       (1ull << 20)  /* 1 MiB */
#define VGPU_SHM_MAX_SIZE       (64ull << 30) /* 64 GiB */

struct vgpu_shm_ctrl {
    uint32_t sq_tail;        /* guest writes: next SQ slot it will fill */
    uint32_t pad0[15];
    uint32_t sq_head;        /* host writes: SQ entries consumed so far */
    uint32_t pad1[15];
    uint32_t cq_tail;        /* host writes: next CQ slot it will fill */
    uint32_t pad2[15];
    uint32_t cq_head;        /* guest writes: CQ entries consumed so far */
    uint32_t pad3[15];
    uint32_t host_flags;     /* host writes: VGPU_HOST_* */
    uint32_t exec_index;     /* host writes (1.1): see VGPU_HOST_EXEC_UNSAFE */
    uint32_t pad4[14];
};
_Static_assert(sizeof(struct vgpu_shm_ctrl) == 320, "vgpu_shm_ctrl size");

/* host_flags: informational; the guest must not depend on them for safety. */
#define VGPU_HOST_ATTACHED      (1u << 0) /* a mediator session has this memory */
/*
 * 1.1: the request at SQ index exec_index has started executing and writes
 * memory it also reads (in place: SAXPY, VECTOR_ADD with out == a or b, SGEMM
 * with beta != 0), so running it again would not give the result of one
 * execution. Set before its first write, cleared after its completion is
 * published. A mediator that attaches to memory where it is set and
 * exec_index == sq_head completes that request with VGPU_S_INTERRUPTED
 * instead of running it again. Only the mediator reads it; a guest that
 * writes it can only spoil its own results.
 */
#define VGPU_HOST_EXEC_UNSAFE   (1u << 1)

/* ------------------------------------------------------------------------
 * 1.2: several queue pairs. Queue 0 is the ring above (ctrl at 0x0, SQ at
 * 0x1000, CQ at 0x5000), so a one-queue guest is unchanged. Queue q in
 * 1 .. N-1 (N = VGPU_REG_QUEUES) is a region of VGPU_SHM_QUEUE_SIZE bytes
 * at the END of BAR2, laid out like queue 0 (ctrl at +0, SQ at +0x1000, CQ
 * at +0x5000):
 *
 *   VGPU_SHM_QUEUE_OFFSET(shm_size, q) = shm_size - q * VGPU_SHM_QUEUE_SIZE
 *
 * and the data area shrinks to [VGPU_SHM_DATA_OFFSET, VGPU_SHM_DATA_END(shm_size,
 * N)). Each queue is its own GPU context on the host (VGPU_OP_CU_*): streams,
 * modules, events and device memory of one queue are not visible to another.
 *
 * Data windows: the queue table (struct vgpu_queue_desc[VGPU_MAX_QUEUES] at
 * VGPU_SHM_QTABLE_OFFSET, inside queue 0's control page) gives each queue the
 * part of the data area its requests may name. It is written by whoever
 * hands out queues (the guest kernel driver) and never mapped to the
 * processes using queues >= 1; the mediator reads it when it takes a request
 * and refuses (VGPU_S_BAD_RANGE) any range outside the queue's window. A
 * window with len == 0 is the whole data area (a one-queue guest).
 * ------------------------------------------------------------------------ */
#define VGPU_MAX_QUEUES         64u
#define VGPU_SHM_QUEUE_SIZE     0x10000u
#define VGPU_SHM_QTABLE_OFFSET  0x0400u
#define VGPU_SHM_QUEUE_OFFSET(shm_size, q) \
    ((uint64_t)(shm_size) - (uint64_t)(q) * VGPU_SHM_QUEUE_SIZE)
#define VGPU_SHM_DATA_END(shm_size, nq) \
    ((uint64_t)(shm_size) - (uint64_t)((nq) ? (nq) - 1 : 0) * VGPU_SHM_QUEUE_SIZE)

struct vgpu_queue_desc {
    uint64_t win_off;        /* BAR2 offset of the queue's data window */
    uint64_t win_len;        /* bytes; 0: the whole data area */
};
_Static_assert(sizeof(struct vgpu_queue_desc) == 16, "vgpu_queue_desc size");
_Static_assert(VGPU_SHM_QTABLE_OFFSET >= sizeof(struct vgpu_shm_ctrl), "qtable after ctrl");
_Static_assert(VGPU_SHM_QTABLE_OFFSET + VGPU_MAX_QUEUES * sizeof(struct vgpu_queue_desc)
               <= VGPU_SHM_SQ_OFFSET, "qtable fits in the control page");

/* ------------------------------------------------------------------------
 * Addition (ABI 1.2): the shared-memory header of a device with no vgpu
 * registers. On QEMU's stock ivshmem-doorbell device (PCI 1af4:1110,
 * served by vgpu-mediator over the ivshmem server protocol) BAR0 has only
 * ivshmem's own registers (below), so what a guest reads from vgpu-stub's
 * BAR0 lives in struct vgpu_shm_header at VGPU_SHM_HEADER_OFFSET of BAR2,
 * in queue 0's control page after the queue table. The mediator writes it
 * (it created the memory); a guest only reads it, and the mediator never
 * reads it back. The rings, the data area and the operations are those of
 * vgpu-stub; such a device has one queue pair. vgpu-stub leaves the header
 * zero (magic 0). docs/register-map.md, "ivshmem".
 * ------------------------------------------------------------------------ */
#define VGPU_SHM_HEADER_OFFSET  0x0800u
#define VGPU_SHM_HEADER_MAGIC   0x48504756u /* "VGPH" as little-endian bytes */

struct vgpu_shm_header {
    uint32_t magic;          /* VGPU_SHM_HEADER_MAGIC once the mediator laid it out */
    uint32_t abi_version;    /* VGPU_ABI_VERSION */
    uint32_t header_size;    /* sizeof(struct vgpu_shm_header) */
    uint32_t link_status;    /* VGPU_LINK_*: UP while the mediator serves it */
    uint32_t vm_id;          /* from the mediator's config, never the guest's */
    uint32_t priority;
    uint32_t weight;
    uint32_t session_id;
    uint32_t backend;        /* VGPU_BACKEND_* */
    uint32_t max_inflight;
    uint32_t sq_entries;     /* VGPU_SQ_ENTRIES */
    uint32_t cq_entries;     /* VGPU_CQ_ENTRIES */
    uint64_t shm_size;       /* bytes, = BAR2 */
    uint64_t data_offset;    /* VGPU_SHM_DATA_OFFSET */
    uint64_t data_end;       /* end of the data area */
    uint32_t queues;         /* 1 */
    uint32_t doorbell;       /* the value to write to ivshmem's DOORBELL register:
                              * (mediator's peer id << 16) | vector 0 */
    uint32_t gpu_mem_mib;
    uint32_t gpu_sms;
    uint32_t gpu_cc;         /* major << 8 | minor */
    uint32_t pad;
    char     vm_name[VGPU_REG_NAME_LEN];   /* NUL-padded ASCII */
    char     gpu_name[VGPU_REG_NAME_LEN];
    uint8_t  reserved[32];   /* 0 */
};
_Static_assert(sizeof(struct vgpu_shm_header) == 256, "vgpu_shm_header size");
_Static_assert(VGPU_SHM_HEADER_OFFSET >= VGPU_SHM_QTABLE_OFFSET +
               VGPU_MAX_QUEUES * sizeof(struct vgpu_queue_desc), "header after the qtable");
_Static_assert(VGPU_SHM_HEADER_OFFSET + sizeof(struct vgpu_shm_header) <= VGPU_SHM_SQ_OFFSET,
               "header fits in the control page");

/* ivshmem's BAR0 (QEMU docs/specs/ivshmem-spec): 32-bit registers. */
#define VGPU_IVSHMEM_VENDOR_ID      0x1af4
#define VGPU_IVSHMEM_DEVICE_ID      0x1110
#define VGPU_IVSHMEM_REG_INTR_MASK  0x00
#define VGPU_IVSHMEM_REG_INTR_STATUS 0x04
#define VGPU_IVSHMEM_REG_IV_POSITION 0x08 /* RO the guest's own peer id */
#define VGPU_IVSHMEM_REG_DOORBELL   0x0c  /* WO (peer << 16) | vector */
#define VGPU_IVSHMEM_REGS_SIZE      0x100

/* ------------------------------------------------------------------------
 * Operations. The argument structs are laid over sqe.args; every offset is a
 * BAR2 offset that must lie inside the data area, every length is in bytes
 * unless named "n" (elements).
 * ------------------------------------------------------------------------ */
enum vgpu_opcode {
    VGPU_OP_NOP        = 0, /* no arguments; result 0 */
    VGPU_OP_GPU_INFO   = 1, /* writes struct vgpu_gpu_info at out_off */
    VGPU_OP_VECTOR_ADD = 2, /* out[i] = a[i] + b[i], float32 */
    VGPU_OP_SAXPY      = 3, /* y[i] = alpha * x[i] + y[i], float32 */
    VGPU_OP_REDUCE_SUM = 4, /* result = sum(in[i]) as IEEE double bits */
    VGPU_OP_SGEMM      = 5, /* C = alpha * A(mxk) * B(kxn) + beta * C, row-major */
    VGPU_OP_MEMCPY     = 6, /* copy len bytes src -> (device) -> dst */
    /*
     * 1.2: the CUDA driver operations, run in the queue's own GPU context
     * (docs/cuda-remoting.md). "async" ones are queued on a stream in ring
     * order and complete as soon as they are queued. LAUNCH, MEMSET,
     * EVENT_RECORD and STREAM_WAIT_EVENT may complete ok before the host has
     * even checked them: their failure (a bad handle, a parameter buffer that
     * does not match, a driver error) is reported, once, by the queue's next
     * STREAM_SYNC, STREAM_QUERY, EVENT_SYNC, EVENT_QUERY or CTX_SYNC that
     * would otherwise succeed, as the CUDA driver reports errors of
     * asynchronous work; a launch's parameter buffer may be reused as soon as
     * its request completes. (Also LAUNCH_ATTRS.) Errors of the GPU work itself surface the same
     * way. Handles are
     * the VGPU_CU_H_* values returned in cqe.result; 0 names the queue's
     * default (NULL) stream where a stream is taken. On the cpu backend each
     * completes with VGPU_S_NOT_SUPPORTED.
     */
    VGPU_OP_CU_DEVICE_INFO   = 16, /* writes struct vgpu_cu_device_info */
    VGPU_OP_CU_MEM_GET_INFO  = 17, /* result: free bytes of the VM's quota */
    VGPU_OP_CU_MEM_ALLOC     = 18, /* result: device address */
    VGPU_OP_CU_MEM_FREE      = 19,
    VGPU_OP_CU_MEMSET        = 20, /* async */
    VGPU_OP_CU_MEMCPY_HTOD   = 21, /* async; the host side is in the data area */
    VGPU_OP_CU_MEMCPY_DTOH   = 22, /* async */
    VGPU_OP_CU_MEMCPY_DTOD   = 23, /* async */
    VGPU_OP_CU_MEMCPY_2D     = 24, /* async; pitched, any direction */
    VGPU_OP_CU_MODULE_LOAD   = 25, /* fatbin, cubin or PTX; result: module handle */
    VGPU_OP_CU_MODULE_UNLOAD = 26,
    VGPU_OP_CU_MODULE_GET_FUNCTION = 27, /* result: function handle; writes its
                                          * struct vgpu_cu_func_info */
    VGPU_OP_CU_MODULE_GET_GLOBAL   = 28, /* writes struct vgpu_cu_global */
    VGPU_OP_CU_LAUNCH        = 29, /* async */
    VGPU_OP_CU_STREAM_CREATE = 30, /* result: stream handle */
    VGPU_OP_CU_STREAM_DESTROY = 31,
    VGPU_OP_CU_STREAM_SYNC   = 32, /* waits for the stream's work */
    VGPU_OP_CU_STREAM_QUERY  = 33, /* result: 0 done, 1 still running */
    VGPU_OP_CU_STREAM_WAIT_EVENT = 34, /* async */
    VGPU_OP_CU_EVENT_CREATE  = 35, /* result: event handle */
    VGPU_OP_CU_EVENT_DESTROY = 36,
    VGPU_OP_CU_EVENT_RECORD  = 37, /* async */
    VGPU_OP_CU_EVENT_SYNC    = 38,
    VGPU_OP_CU_EVENT_QUERY   = 39, /* result: 0 done, 1 not yet */
    VGPU_OP_CU_EVENT_ELAPSED = 40, /* result: milliseconds as IEEE float bits */
    VGPU_OP_CU_CTX_SYNC      = 41, /* waits for every stream of the queue */
    VGPU_OP_CU_FUNC_GET_ATTR = 42, /* result: the attribute's value (int32) */
    VGPU_OP_CU_FUNC_SET_ATTR = 43,
    VGPU_OP_CU_OCCUPANCY     = 44, /* result: active blocks per SM */
    VGPU_OP_CU_CTX_RESET     = 45, /* frees everything of the queue's context */
    VGPU_OP_CU_LAUNCH_ATTRS  = 46, /* async: attributes of the queue's next CU_LAUNCH
                                    * (thread-block clusters, cooperative) */
    VGPU_OP_CU_TENSOR_MAP    = 47, /* encodes a TMA descriptor (cuTensorMapEncode*) */
    VGPU_OP_CU_CTX_LIMIT     = 48, /* result: a CUlimit of the context (set: then set) */
    VGPU_OP_COUNT
};

#define VGPU_OP_CU_FIRST        VGPU_OP_CU_DEVICE_INFO

/* Elements an operation may touch in one request (2^28 floats = 1 GiB). */
#define VGPU_MAX_ELEMS          (1ull << 28)
#define VGPU_MAX_GEMM_DIM       16384u
#define VGPU_MAX_COPY_BYTES     (4ull << 30)

struct vgpu_args_gpu_info {
    uint64_t out_off;   /* sizeof(struct vgpu_gpu_info) bytes, 8-aligned */
    uint64_t out_len;   /* >= sizeof(struct vgpu_gpu_info) */
};
_Static_assert(sizeof(struct vgpu_args_gpu_info) == 16, "args_gpu_info size");

struct vgpu_args_vector_add {
    uint64_t a_off;     /* n float32, 4-aligned */
    uint64_t b_off;     /* n float32, 4-aligned */
    uint64_t out_off;   /* n float32, 4-aligned; may alias a or b exactly */
    uint64_t n;         /* 1 .. VGPU_MAX_ELEMS */
};
_Static_assert(sizeof(struct vgpu_args_vector_add) == 32, "args_vector_add size");

struct vgpu_args_saxpy {
    uint64_t x_off;     /* n float32, 4-aligned, must not overlap y */
    uint64_t y_off;     /* n float32, 4-aligned, read and written */
    uint64_t n;         /* 1 .. VGPU_MAX_ELEMS */
    float    alpha;
    uint32_t pad;       /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_saxpy) == 32, "args_saxpy size");

struct vgpu_args_reduce_sum {
    uint64_t in_off;    /* n float32, 4-aligned */
    uint64_t n;         /* 1 .. VGPU_MAX_ELEMS */
};
_Static_assert(sizeof(struct vgpu_args_reduce_sum) == 16, "args_reduce_sum size");

struct vgpu_args_sgemm {
    uint64_t a_off;     /* m*k float32, row-major, 4-aligned */
    uint64_t b_off;     /* k*n float32, row-major, 4-aligned */
    uint64_t c_off;     /* m*n float32, row-major, 4-aligned; no overlap with A, B */
    uint32_t m, n, k;   /* each 1 .. VGPU_MAX_GEMM_DIM */
    float    alpha;
    float    beta;
    uint32_t pad;       /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_sgemm) == 48, "args_sgemm size");

enum vgpu_memcpy_mode {
    VGPU_MEMCPY_ROUNDTRIP = 0, /* src -> device -> dst (dst must not overlap src) */
    VGPU_MEMCPY_H2D       = 1, /* src -> device only (dst ignored); result: bytes */
    VGPU_MEMCPY_D2H       = 2, /* device -> dst only (src ignored); dst zero-filled */
};

struct vgpu_args_memcpy {
    uint64_t src_off;
    uint64_t dst_off;
    uint64_t len;       /* 1 .. VGPU_MAX_COPY_BYTES */
    uint32_t mode;      /* enum vgpu_memcpy_mode */
    uint32_t pad;       /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_memcpy) == 32, "args_memcpy size");

/* ---- 1.2: the CUDA driver operations' arguments ---- */

/*
 * Handles: nonzero uint32, opaque to the guest, meaningful only in the queue
 * (GPU context) that created them. The host checks every handle against the
 * queue's own tables: an unknown, freed or foreign handle is VGPU_S_BAD_ARGS;
 * one from before the VM's GPU context was lost (a fault or a timeout ended
 * its worker) is VGPU_S_CONTEXT_LOST.
 */
#define VGPU_CU_MAX_IMAGE       (1ull << 30)  /* module image bytes */
#define VGPU_CU_MAX_NAME        1024u         /* symbol name bytes, incl. NUL */
#define VGPU_CU_MAX_PARAMS      1024u         /* kernel parameters */
#define VGPU_CU_MAX_PARAM_BYTES 32764u        /* packed parameter buffer */
#define VGPU_CU_ATTRS           192u          /* CUdevice_attribute slots */

struct vgpu_args_cu_out {           /* DEVICE_INFO */
    uint64_t out_off;               /* 8-aligned */
    uint64_t out_len;               /* >= the struct written */
};
_Static_assert(sizeof(struct vgpu_args_cu_out) == 16, "args_cu_out size");

struct vgpu_args_cu_mem {           /* MEM_ALLOC, MEM_FREE */
    uint64_t bytes;                 /* ALLOC: 1 .. the VM's quota */
    uint64_t dptr;                  /* FREE: an address ALLOC returned */
};
_Static_assert(sizeof(struct vgpu_args_cu_mem) == 16, "args_cu_mem size");

struct vgpu_args_cu_memset {
    uint64_t dptr;                  /* inside one allocation of the queue */
    uint64_t count;                 /* elements */
    uint32_t value;                 /* the low elem_size bytes are stored */
    uint32_t elem_size;             /* 1, 2 or 4; dptr aligned to it */
    uint32_t stream;
    uint32_t pad;                   /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_cu_memset) == 32, "args_cu_memset size");

struct vgpu_args_cu_memcpy {        /* HTOD, DTOH, DTOD */
    uint64_t dst;                   /* device address, or BAR2 offset (DTOH) */
    uint64_t src;                   /* device address, or BAR2 offset (HTOD) */
    uint64_t len;                   /* 1 .. VGPU_MAX_COPY_BYTES */
    uint32_t stream;
    uint32_t pad;                   /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_cu_memcpy) == 32, "args_cu_memcpy size");

#define VGPU_CU_MEM_DEVICE      0u  /* a device address of the queue */
#define VGPU_CU_MEM_SHM         1u  /* a BAR2 offset in the queue's window */

struct vgpu_args_cu_memcpy2d {
    uint64_t dst;
    uint64_t src;
    uint32_t dst_pitch;
    uint32_t src_pitch;
    uint32_t width;                 /* bytes per row, <= both pitches */
    uint32_t height;                /* rows */
    uint32_t stream;
    uint8_t  dst_kind;              /* VGPU_CU_MEM_* */
    uint8_t  src_kind;
    uint16_t pad;                   /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_cu_memcpy2d) == 40, "args_cu_memcpy2d size");

/*
 * The host keeps each VM's recent images by content (XXH3-128 of the image
 * bytes; up to a per-VM budget): a guest that names an image by its hash
 * alone (image_off = image_len = 0) has it loaded without placing it in
 * the data area again; if the host does not hold it, the request completes
 * cuda-error with result CUDA_ERROR_NOT_FOUND (500) and the guest sends it.
 * With the image given, a nonzero hash must match it (the host hashes
 * every image itself), or the request is bad-args.
 */
struct vgpu_args_cu_module_load {
    uint64_t image_off;             /* the image in the data area */
    uint64_t image_len;             /* 1 .. VGPU_CU_MAX_IMAGE; 0: by hash */
    uint64_t hash[2];               /* XXH3-128 (low, high); 0, 0: none */
};
_Static_assert(sizeof(struct vgpu_args_cu_module_load) == 32, "args_cu_module_load size");

struct vgpu_args_cu_symbol {        /* MODULE_GET_FUNCTION, MODULE_GET_GLOBAL */
    uint64_t name_off;              /* NUL-terminated within name_len */
    uint64_t out_off;               /* 8-aligned */
    uint32_t name_len;              /* 2 .. VGPU_CU_MAX_NAME */
    uint32_t out_len;
    uint32_t module;
    uint32_t pad;                   /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_cu_symbol) == 32, "args_cu_symbol size");

struct vgpu_args_cu_handle {        /* *_DESTROY, *_SYNC, *_QUERY, MODULE_UNLOAD */
    uint32_t handle;
    uint32_t pad;                   /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_cu_handle) == 8, "args_cu_handle size");

struct vgpu_args_cu_launch {
    uint32_t func;
    uint32_t stream;
    uint32_t grid[3];               /* each >= 1, within the GPU's limits */
    uint32_t block[3];              /* each >= 1, product <= the function's max */
    uint32_t shared_bytes;          /* dynamic shared memory */
    uint32_t params_len;            /* must equal the function's packed size */
    uint64_t params_off;            /* packed as struct vgpu_cu_func_info says */
};
_Static_assert(sizeof(struct vgpu_args_cu_launch) == 48, "args_cu_launch size");

struct vgpu_args_cu_create {        /* STREAM_CREATE, EVENT_CREATE */
    uint32_t flags;                 /* CU_STREAM_* / CU_EVENT_* flags */
    int32_t  priority;              /* stream priority */
};
_Static_assert(sizeof(struct vgpu_args_cu_create) == 8, "args_cu_create size");

struct vgpu_args_cu_pair {          /* STREAM_WAIT_EVENT, EVENT_RECORD, EVENT_ELAPSED */
    uint32_t a;                     /* stream / event / start event */
    uint32_t b;                     /* event / stream / end event */
    uint32_t flags;                 /* must be 0 */
    uint32_t pad;                   /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_cu_pair) == 16, "args_cu_pair size");

struct vgpu_args_cu_func_attr {     /* FUNC_GET_ATTR, FUNC_SET_ATTR, OCCUPANCY */
    uint32_t func;
    int32_t  attr;                  /* CUfunction_attribute; OCCUPANCY: block size */
    int32_t  value;                 /* SET_ATTR; OCCUPANCY: dynamic shared bytes */
    uint32_t pad;                   /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_cu_func_attr) == 16, "args_cu_func_attr size");

/* CU_LAUNCH_ATTRS: the next CU_LAUNCH of the queue runs with these (then
 * they are forgotten), as cuLaunchKernelEx's CUlaunchAttribute list. */
#define VGPU_CU_LAUNCH_COOPERATIVE  (1u << 0)
struct vgpu_args_cu_launch_attrs {
    uint32_t cluster[3];            /* thread-block cluster dims; 0,0,0: none */
    uint32_t flags;                 /* VGPU_CU_LAUNCH_* */
    uint32_t cluster_policy;        /* CUclusterSchedulingPolicy; 0: default */
    uint32_t pad[7];                /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_cu_launch_attrs) == 48, "args_cu_launch_attrs size");

/* CU_TENSOR_MAP: in_off holds a struct vgpu_cu_tensor_map_req, the encoded
 * 128-byte CUtensorMap is written at out_off (64-aligned). */
#define VGPU_CU_TENSOR_MAP_TILED    0u
#define VGPU_CU_TENSOR_MAP_IM2COL   1u
#define VGPU_CU_TENSOR_MAP_BYTES    128u
struct vgpu_args_cu_tensor_map {
    uint64_t in_off;                /* 8-aligned */
    uint64_t out_off;               /* 64-aligned, VGPU_CU_TENSOR_MAP_BYTES */
    uint32_t kind;                  /* VGPU_CU_TENSOR_MAP_* */
    uint32_t pad;                   /* must be 0 */
};
_Static_assert(sizeof(struct vgpu_args_cu_tensor_map) == 24, "args_cu_tensor_map size");
struct vgpu_cu_tensor_map_req {
    uint32_t data_type;             /* CUtensorMapDataType */
    uint32_t rank;                  /* 1 .. 5 (im2col: 3 .. 5) */
    uint64_t global_address;        /* a device address of the queue */
    uint64_t global_dim[5];
    uint64_t global_strides[4];     /* rank - 1 entries, bytes */
    uint32_t box_dim[5];            /* tiled */
    uint32_t element_strides[5];
    uint32_t interleave, swizzle, l2_promotion, oob_fill;
    int32_t  lower_corner[3];       /* im2col: rank - 2 entries */
    int32_t  upper_corner[3];
    uint32_t channels_per_pixel;    /* im2col */
    uint32_t pixels_per_column;     /* im2col */
};
_Static_assert(sizeof(struct vgpu_cu_tensor_map_req) == 176, "cu_tensor_map_req size");

/* CU_CTX_LIMIT */
struct vgpu_args_cu_limit {
    uint32_t limit;                 /* CUlimit */
    uint32_t set;                   /* 1: set value first */
    uint64_t value;
};
_Static_assert(sizeof(struct vgpu_args_cu_limit) == 16, "args_cu_limit size");

/* What CU_DEVICE_INFO writes: the real GPU, memory as the VM's quota. */
struct vgpu_cu_device_info {
    char     name[256];             /* NUL-terminated */
    uint8_t  uuid[16];
    uint64_t total_mem;             /* the VM's quota (or the GPU's memory) */
    uint32_t driver_version;        /* the host driver's, e.g. 13000 */
    uint32_t attr_count;            /* valid entries of attrs */
    int32_t  attrs[VGPU_CU_ATTRS];  /* attrs[a] = cuDeviceGetAttribute(a) */
};
_Static_assert(sizeof(struct vgpu_cu_device_info) == 1056, "cu_device_info size");

/* What MODULE_GET_FUNCTION writes: header, then param_count entries. */
struct vgpu_cu_param {
    uint32_t offset;                /* in the packed buffer */
    uint32_t size;
};
struct vgpu_cu_func_info {
    uint32_t param_count;
    uint32_t param_bytes;           /* packed size: params_len of a launch */
    int32_t  max_threads;           /* per block */
    int32_t  shared_bytes;          /* static shared memory */
    int32_t  num_regs;
    int32_t  pad;
    /* struct vgpu_cu_param params[param_count]; */
};
_Static_assert(sizeof(struct vgpu_cu_func_info) == 24, "cu_func_info size");

/* What MODULE_GET_GLOBAL writes. */
struct vgpu_cu_global {
    uint64_t dptr;
    uint64_t bytes;
};
_Static_assert(sizeof(struct vgpu_cu_global) == 16, "cu_global size");

/* What GPU_INFO writes into the data area. */
struct vgpu_gpu_info {
    char     name[64];          /* NUL-terminated */
    uint32_t backend;           /* VGPU_BACKEND_* */
    uint32_t sm_count;
    uint32_t cc_major;
    uint32_t cc_minor;
    uint64_t total_mem;         /* bytes */
    uint64_t free_mem;          /* bytes */
    uint32_t driver_version;    /* e.g. 13000 for 13.0; 0 on cpu */
    uint32_t runtime_version;
    uint32_t multiprocessor_clock_khz;
    uint32_t pad;
};
_Static_assert(sizeof(struct vgpu_gpu_info) == 112, "vgpu_gpu_info size");

/* ------------------------------------------------------------------------
 * Ring entries.
 * ------------------------------------------------------------------------ */
#define VGPU_SQE_ARGS_SIZE 48

struct vgpu_sqe {
    uint16_t opcode;        /* enum vgpu_opcode */
    uint16_t flags;         /* must be 0 in ABI 1.0 */
    uint32_t tag;           /* echoed in the completion */
    uint64_t user_data;     /* echoed in the completion */
    union {
        uint8_t                     raw[VGPU_SQE_ARGS_SIZE];
        struct vgpu_args_gpu_info   gpu_info;
        struct vgpu_args_vector_add vector_add;
        struct vgpu_args_saxpy      saxpy;
        struct vgpu_args_reduce_sum reduce_sum;
        struct vgpu_args_sgemm      sgemm;
        struct vgpu_args_memcpy     memcpy;
        struct vgpu_args_cu_out     cu_out;
        struct vgpu_args_cu_mem     cu_mem;
        struct vgpu_args_cu_memset  cu_memset;
        struct vgpu_args_cu_memcpy  cu_memcpy;
        struct vgpu_args_cu_memcpy2d cu_memcpy2d;
        struct vgpu_args_cu_module_load cu_module_load;
        struct vgpu_args_cu_symbol  cu_symbol;
        struct vgpu_args_cu_handle  cu_handle;
        struct vgpu_args_cu_launch  cu_launch;
        struct vgpu_args_cu_create  cu_create;
        struct vgpu_args_cu_pair    cu_pair;
        struct vgpu_args_cu_func_attr cu_func_attr;
        struct vgpu_args_cu_launch_attrs cu_launch_attrs;
        struct vgpu_args_cu_tensor_map cu_tensor_map;
        struct vgpu_args_cu_limit   cu_limit;
    } args;
};
_Static_assert(sizeof(struct vgpu_sqe) == 64, "vgpu_sqe size");

struct vgpu_cqe {
    uint64_t user_data;     /* from the request */
    uint32_t tag;           /* from the request */
    int32_t  status;        /* enum vgpu_status */
    uint64_t result;        /* operation-specific (see enum vgpu_opcode) */
    uint32_t exec_us;       /* time the backend spent, microseconds */
    uint32_t queue_us;      /* time the request waited to be scheduled */
};
_Static_assert(sizeof(struct vgpu_cqe) == 32, "vgpu_cqe size");

_Static_assert(VGPU_SHM_SQ_OFFSET >= sizeof(struct vgpu_shm_ctrl), "ctrl fits");
_Static_assert(VGPU_SHM_SQ_OFFSET + VGPU_SQ_ENTRIES * sizeof(struct vgpu_sqe)
               <= VGPU_SHM_CQ_OFFSET, "SQ fits");
_Static_assert(VGPU_SHM_CQ_OFFSET + VGPU_CQ_ENTRIES * sizeof(struct vgpu_cqe)
               <= VGPU_SHM_DATA_OFFSET, "CQ fits");
_Static_assert((VGPU_SQ_ENTRIES & (VGPU_SQ_ENTRIES - 1)) == 0, "SQ power of 2");
_Static_assert((VGPU_CQ_ENTRIES & (VGPU_CQ_ENTRIES - 1)) == 0, "CQ power of 2");

/* ------------------------------------------------------------------------
 * Completion status codes (vgpu_cqe.status). Positive, stable numbers.
 * ------------------------------------------------------------------------ */
enum vgpu_status {
    VGPU_S_OK            = 0,
    VGPU_S_UNKNOWN_OP    = 1,  /* opcode not in the registry */
    VGPU_S_BAD_RANGE     = 2,  /* an offset/length falls outside the data area */
    VGPU_S_BAD_ALIGN     = 3,  /* an offset is not aligned for its element type */
    VGPU_S_TOO_LARGE     = 4,  /* a count or size exceeds the operation's maximum */
    VGPU_S_OVERLAP       = 5,  /* input and output overlap where forbidden */
    VGPU_S_BAD_ARGS      = 6,  /* zero count, bad mode, nonzero pad/flags */
    VGPU_S_QUOTA         = 7,  /* the VM's memory or time quota is exhausted */
    VGPU_S_BUSY          = 8,  /* back-pressure: retry later */
    VGPU_S_TIMEOUT       = 9,  /* exceeded the per-request time limit */
    VGPU_S_GPU_FAULT     = 10, /* the GPU faulted running this request */
    VGPU_S_NO_MEMORY     = 11, /* the backend could not allocate memory */
    VGPU_S_NOT_SUPPORTED = 12, /* the active backend lacks this operation */
    VGPU_S_INTERNAL      = 13, /* mediator bug; logged */
    VGPU_S_INTERRUPTED   = 14, /* 1.1: the mediator stopped while this in-place request
                                * ran; its outputs may be partly written, it was not
                                * run again (see VGPU_HOST_EXEC_UNSAFE) */
    VGPU_S_CONTEXT_LOST  = 15, /* 1.2: the handle belongs to a GPU context that a
                                * fault or timeout ended; create new objects */
    VGPU_S_CUDA_ERROR    = 16, /* 1.2: the driver refused the operation; result
                                * is its CUresult (invalid image, symbol not
                                * found, launch out of resources, ...) */
    VGPU_S_STATUS_COUNT
};

static inline const char *vgpu_status_name(int32_t s)
{
    static const char *const names[VGPU_S_STATUS_COUNT] = {
        "ok", "unknown-op", "bad-range", "bad-align", "too-large", "overlap",
        "bad-args", "quota", "busy", "timeout", "gpu-fault", "no-memory",
        "not-supported", "internal", "interrupted", "context-lost", "cuda-error",
    };
    return (s >= 0 && s < VGPU_S_STATUS_COUNT) ? names[s] : "invalid-status";
}

static inline const char *vgpu_op_name(uint32_t op)
{
    static const char *const names[VGPU_OP_COUNT] = {
        "nop", "gpu_info", "vector_add", "saxpy", "reduce_sum", "sgemm", "memcpy",
        [VGPU_OP_CU_DEVICE_INFO] = "cu_device_info",
        [VGPU_OP_CU_MEM_GET_INFO] = "cu_mem_get_info",
        [VGPU_OP_CU_MEM_ALLOC] = "cu_mem_alloc",
        [VGPU_OP_CU_MEM_FREE] = "cu_mem_free",
        [VGPU_OP_CU_MEMSET] = "cu_memset",
        [VGPU_OP_CU_MEMCPY_HTOD] = "cu_memcpy_htod",
        [VGPU_OP_CU_MEMCPY_DTOH] = "cu_memcpy_dtoh",
        [VGPU_OP_CU_MEMCPY_DTOD] = "cu_memcpy_dtod",
        [VGPU_OP_CU_MEMCPY_2D] = "cu_memcpy_2d",
        [VGPU_OP_CU_MODULE_LOAD] = "cu_module_load",
        [VGPU_OP_CU_MODULE_UNLOAD] = "cu_module_unload",
        [VGPU_OP_CU_MODULE_GET_FUNCTION] = "cu_module_get_function",
        [VGPU_OP_CU_MODULE_GET_GLOBAL] = "cu_module_get_global",
        [VGPU_OP_CU_LAUNCH] = "cu_launch",
        [VGPU_OP_CU_STREAM_CREATE] = "cu_stream_create",
        [VGPU_OP_CU_STREAM_DESTROY] = "cu_stream_destroy",
        [VGPU_OP_CU_STREAM_SYNC] = "cu_stream_sync",
        [VGPU_OP_CU_STREAM_QUERY] = "cu_stream_query",
        [VGPU_OP_CU_STREAM_WAIT_EVENT] = "cu_stream_wait_event",
        [VGPU_OP_CU_EVENT_CREATE] = "cu_event_create",
        [VGPU_OP_CU_EVENT_DESTROY] = "cu_event_destroy",
        [VGPU_OP_CU_EVENT_RECORD] = "cu_event_record",
        [VGPU_OP_CU_EVENT_SYNC] = "cu_event_sync",
        [VGPU_OP_CU_EVENT_QUERY] = "cu_event_query",
        [VGPU_OP_CU_EVENT_ELAPSED] = "cu_event_elapsed",
        [VGPU_OP_CU_CTX_SYNC] = "cu_ctx_sync",
        [VGPU_OP_CU_FUNC_GET_ATTR] = "cu_func_get_attr",
        [VGPU_OP_CU_FUNC_SET_ATTR] = "cu_func_set_attr",
        [VGPU_OP_CU_OCCUPANCY] = "cu_occupancy",
        [VGPU_OP_CU_CTX_RESET] = "cu_ctx_reset",
        [VGPU_OP_CU_LAUNCH_ATTRS] = "cu_launch_attrs",
        [VGPU_OP_CU_TENSOR_MAP] = "cu_tensor_map",
        [VGPU_OP_CU_CTX_LIMIT] = "cu_ctx_limit",
    };
    return op < VGPU_OP_COUNT && names[op] ? names[op] : "unknown";
}

#endif /* VGPU_ABI_H */
