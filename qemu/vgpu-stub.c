/*
 * vgpu-stub: a PCI device that forwards GPU work requests of a guest to the
 * host's vgpu-mediator.
 *
 * BAR0 is a 4 KiB register window (identity, link status, doorbell,
 * interrupts); BAR2 is the guest's share of a memfd (the "memdev" host memory
 * backend) holding the submission/completion rings and the data. The device
 * never touches the rings itself: it hands the memfd to the mediator over a
 * Unix socket chardev (HELLO), turns NOTIFY messages into a completion
 * interrupt, and passes doorbells on: by default as an ioeventfd on the
 * doorbell register whose eventfd travels with HELLO (under KVM a doorbell
 * then never leaves the kernel), or as KICK messages (ioeventfd=off, a
 * mediator that does not take the eventfd up, or before WELCOME). With
 * queues=N (ABI 1.2) BAR2 holds N queue pairs, queue 0 at its start and the
 * others at its end; the device only announces them (VGPU_REG_QUEUES, the
 * 1.4 HELLO) and still has one doorbell: any write means "some SQ tail
 * moved", and the mediator looks at every queue. The register map and the
 * shared-memory layout are defined in include/vgpu/abi.h, the socket
 * protocol in include/vgpu/protocol.h; docs/register-map.md describes the
 * behaviour.
 *
 * Copyright (c) 2026 The vgpu authors
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/log.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/error-report.h"
#include "qemu/event_notifier.h"
#include "qemu/cutils.h"
#include "qapi/error.h"
#include "qom/object.h"
#include "hw/pci/pci.h"
#include "hw/pci/msi.h"
#include "hw/qdev-properties.h"
#include "hw/qdev-properties-system.h"
#include "chardev/char-fe.h"
#include "migration/blocker.h"

/*
 * The device builds against QEMU 7.2 (Debian 12) and 10.0 (Debian 13,
 * bookworm-backports), no other. Where their APIs differ, the difference is
 * here and nowhere else, written to 10.0's API with 7.2's shims;
 * QEMU_VERSION_MAJOR comes from config-host.h (qemu/osdep.h). The release
 * that made each change:
 *  - include/sysemu/ became include/system/ (10.0).
 *  - Property arrays are const and have no terminator: device_class_set_props()
 *    takes the array's size itself (9.2).
 *  - The reset hold phase is given the reset type (9.0).
 *  - migrate_add_blocker() takes the reason by reference and frees it on
 *    failure; migrate_del_blocker() frees it (8.2).
 */
#if QEMU_VERSION_MAJOR >= 10
#include "system/hostmem.h"
#define VGPU_PROPERTIES            static const Property
#define VGPU_PROP_END
#define VGPU_RESET_HOLD(fn)        static void fn(Object *obj, ResetType type)
#define vgpu_add_blocker           migrate_add_blocker
#define vgpu_del_blocker           migrate_del_blocker
#else
#include "sysemu/hostmem.h"
#define VGPU_PROPERTIES            static Property
#define VGPU_PROP_END              DEFINE_PROP_END_OF_LIST(),
#define VGPU_RESET_HOLD(fn)        static void fn(Object *obj)

/* The 8.2 migrate_add_blocker()/migrate_del_blocker(): they own the reason. */
static int vgpu_add_blocker(Error **reasonp, Error **errp)
{
    int ret = migrate_add_blocker(*reasonp, errp);

    if (ret < 0) {
        error_free(*reasonp);
        *reasonp = NULL;
    }
    return ret;
}

static void vgpu_del_blocker(Error **reasonp)
{
    migrate_del_blocker(*reasonp);
    error_free(*reasonp);
    *reasonp = NULL;
}
#endif

#include "vgpu/abi.h"
#include "vgpu/protocol.h"

#define TYPE_VGPU_STUB "vgpu-stub"
OBJECT_DECLARE_SIMPLE_TYPE(VgpuStubState, VGPU_STUB)

#define VGPU_IRQ_ALL (VGPU_IRQ_COMPLETION | VGPU_IRQ_LINK)

struct VgpuStubState {
    PCIDevice parent_obj;

    /* Properties, fixed after realize. */
    CharBackend chr;
    HostMemoryBackend *hostmem;
    uint32_t vm_id;
    uint32_t priority;
    uint32_t weight;
    char *vm_name;
    uint16_t vendor_id;
    uint16_t device_id;
    bool ioeventfd;             /* offer the doorbell as an eventfd */
    uint32_t queues;            /* queue pairs in BAR2, 1 .. VGPU_MAX_QUEUES */

    MemoryRegion regs;
    MemoryRegion *shm;          /* the backend's region, mapped as BAR2 */
    uint64_t shm_size;
    uint64_t data_end;          /* VGPU_SHM_DATA_END(shm_size, queues) */
    Error *migration_blocker;
    QEMUBH *kick_bh;
    EventNotifier doorbell;     /* valid when ioeventfd */
    bool doorbell_mapped;       /* the ioeventfd is on VGPU_REG_DOORBELL */
    uint32_t features;
    char vm_name_reg[VGPU_REG_NAME_LEN];

    /* Link state, driven by the chardev and the mediator's messages. */
    bool connected;             /* chardev open, HELLO sent */
    uint32_t link_status;
    uint32_t session_id;
    uint32_t max_inflight;
    uint32_t backend;
    uint32_t gpu_mem_mib;
    uint32_t gpu_sms;
    uint32_t gpu_cc;
    char gpu_name[VGPU_REG_NAME_LEN];
    uint32_t tx_seq;
    bool kick_pending;          /* doorbell rung, KICK not yet sent */
    guint tx_watch;             /* socket full: waiting to send the KICK */

    /* Guest-visible interrupt state. */
    uint32_t irq_status;
    uint32_t irq_mask;
    uint32_t kicks;
    uint32_t notifies;

    /*
     * Incremental parser: bytes of the message being received. A message
     * never exceeds VGPU_MSG_MAX_SIZE, so a full buffer always holds at
     * least one complete message.
     */
    uint32_t rx_len;
    uint8_t rx_buf[VGPU_MSG_MAX_SIZE];
};

/* ------------------------------------------------------------------------
 * Interrupts
 * ------------------------------------------------------------------------ */

static uint32_t vgpu_pending(VgpuStubState *s)
{
    return s->irq_status & ~s->irq_mask;
}

/*
 * INTx is level-triggered: the line follows (status & ~mask). MSI is an
 * edge: one message each time a cause becomes pending (set while unmasked,
 * or unmasked while set). @prev is the pending set before the change.
 */
static void vgpu_update_irq(VgpuStubState *s, uint32_t prev)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    uint32_t pending = vgpu_pending(s);

    if (msi_enabled(pdev)) {
        pci_set_irq(pdev, 0);
        if (pending & ~prev) {
            msi_notify(pdev, 0);
        }
    } else {
        pci_set_irq(pdev, pending != 0);
    }
}

static void vgpu_raise(VgpuStubState *s, uint32_t causes)
{
    uint32_t prev = vgpu_pending(s);

    s->irq_status |= causes;
    vgpu_update_irq(s, prev);
}

/* ------------------------------------------------------------------------
 * Socket protocol
 * ------------------------------------------------------------------------ */

static void vgpu_fill_hdr(VgpuStubState *s, struct vgpu_msg_hdr *hdr,
                          uint16_t type, uint32_t size)
{
    hdr->type = cpu_to_le16(type);
    hdr->flags = 0;
    hdr->size = cpu_to_le32(size);
    hdr->seq = cpu_to_le32(++s->tx_seq);
    hdr->reserved = 0;
}

/*
 * Never blocks: qemu_chr_fe_write_all() retries EAGAIN forever, so a
 * mediator that stops reading (hung, stopped) would freeze the main loop and
 * with it the whole VM. Our messages are a few hundred bytes at most, which
 * a Unix stream socket takes whole or not at all.
 * Returns 0, -EAGAIN when the socket is full and nothing was written, or
 * -EIO when the message could not be written completely.
 */
static int vgpu_send(VgpuStubState *s, const void *msg, uint32_t size)
{
    int ret = qemu_chr_fe_write(&s->chr, msg, size);

    if (ret == (int)size) {
        return 0;
    }
    if (ret < 0 && errno == EAGAIN) {
        return -EAGAIN;
    }
    warn_report("vgpu-stub: short write to the mediator socket (%d of %u)",
                ret, size);
    return -EIO;
}

static void vgpu_tx_watch_remove(VgpuStubState *s)
{
    if (s->tx_watch) {
        g_source_remove(s->tx_watch);
        s->tx_watch = 0;
    }
}

static gboolean vgpu_chr_writable(void *do_not_use, GIOCondition cond,
                                  void *opaque)
{
    VgpuStubState *s = opaque;

    s->tx_watch = 0;
    if (s->kick_pending) {
        qemu_bh_schedule(s->kick_bh);
    }
    return G_SOURCE_REMOVE;
}

/*
 * The doorbell register as an ioeventfd: writes of 4 bytes signal the
 * eventfd the mediator watches instead of reaching vgpu_regs_write(). Only
 * while a mediator that took the eventfd up is connected; otherwise the
 * write handler notes the doorbell and a KICK follows WELCOME.
 */
static void vgpu_doorbell_map(VgpuStubState *s, bool on)
{
    if (on == s->doorbell_mapped) {
        return;
    }
    if (on) {
        memory_region_add_eventfd(&s->regs, VGPU_REG_DOORBELL, 4, false, 0,
                                  &s->doorbell);
    } else {
        memory_region_del_eventfd(&s->regs, VGPU_REG_DOORBELL, 4, false, 0,
                                  &s->doorbell);
    }
    s->doorbell_mapped = on;
}

static void vgpu_link_down(VgpuStubState *s)
{
    bool was_up = s->link_status & VGPU_LINK_UP;

    vgpu_doorbell_map(s, false);
    s->link_status = 0;
    s->session_id = 0;
    if (was_up) {
        vgpu_raise(s, VGPU_IRQ_LINK);
    }
}

/*
 * Drop the connection; the socket chardev reconnects on its own (reconnect=N)
 * and CHR_EVENT_OPENED sends a fresh HELLO.
 */
static void vgpu_disconnect(VgpuStubState *s)
{
    vgpu_tx_watch_remove(s);
    vgpu_link_down(s);
    s->connected = false;
    s->rx_len = 0;
    qemu_chr_fe_disconnect(&s->chr);
}

/* Tell the mediator what it did wrong, then hang up. */
static void vgpu_protocol_error(VgpuStubState *s, uint32_t code,
                                uint32_t ref_seq, const char *why)
{
    struct vgpu_msg_error err = { 0 };

    warn_report("vgpu-stub: mediator protocol error: %s; disconnecting", why);
    vgpu_fill_hdr(s, &err.hdr, VGPU_MSG_ERROR, sizeof(err));
    err.code = cpu_to_le32(code);
    err.ref_seq = cpu_to_le32(ref_seq);
    pstrcpy(err.text, sizeof(err.text), why);
    vgpu_send(s, &err, sizeof(err));
    vgpu_disconnect(s);
}

/*
 * One queue pair: the 112-byte HELLO every mediator accepts. More: the
 * protocol 1.4 HELLO that carries their count (an older mediator refuses it,
 * which beats one that would ignore the other queues).
 */
static void vgpu_send_hello(VgpuStubState *s)
{
    struct vgpu_msg_hello_mq hm = { 0 };
    struct vgpu_msg_hello *hello = &hm.hello;
    uint32_t size = s->queues > 1 ? sizeof(hm) : sizeof(hm.hello);
    int fds[2] = { memory_region_get_fd(s->shm), -1 };
    int nfds = 1;

    if (s->ioeventfd) {
        fds[nfds++] = event_notifier_get_fd(&s->doorbell);
    }

    vgpu_fill_hdr(s, &hello->hdr, VGPU_MSG_HELLO, size);
    hello->version_major = cpu_to_le16(VGPU_PROTO_VERSION_MAJOR);
    hello->version_minor = cpu_to_le16(VGPU_PROTO_VERSION_MINOR);
    hello->abi_version = cpu_to_le32(VGPU_ABI_VERSION);
    hello->vm_id = cpu_to_le32(s->vm_id);
    hello->priority = cpu_to_le32(s->priority);
    hello->weight = cpu_to_le32(s->weight);
    hello->features = cpu_to_le32(s->features);
    hello->shm_size = cpu_to_le64(s->shm_size);
    memcpy(hello->vm_name, s->vm_name_reg, sizeof(hello->vm_name));
    hm.queues = cpu_to_le32(s->queues);

    /* The fds travel with the first byte of the HELLO (SCM_RIGHTS). */
    if (qemu_chr_fe_set_msgfds(&s->chr, fds, nfds) < 0) {
        warn_report("vgpu-stub: chardev cannot pass file descriptors");
        vgpu_disconnect(s);
        return;
    }
    if (vgpu_send(s, &hm, size) < 0) {
        vgpu_disconnect(s);
        return;
    }
    s->connected = true;
}

static void vgpu_kick_bh(void *opaque)
{
    VgpuStubState *s = opaque;
    struct vgpu_msg_kick kick = { 0 };
    uint32_t *sq_tail;
    int ret;

    if (!s->kick_pending || !(s->link_status & VGPU_LINK_UP) || s->tx_watch) {
        return;
    }
    s->kick_pending = false;

    /* A hint only: the mediator reads the ring itself. */
    sq_tail = (uint32_t *)((uint8_t *)memory_region_get_ram_ptr(s->shm) +
                           VGPU_SHM_CTRL_OFFSET +
                           offsetof(struct vgpu_shm_ctrl, sq_tail));
    vgpu_fill_hdr(s, &kick.hdr, VGPU_MSG_KICK, sizeof(kick));
    kick.sq_tail = cpu_to_le32(qatomic_load_acquire(sq_tail));
    ret = vgpu_send(s, &kick, sizeof(kick));
    if (ret == -EAGAIN) {
        /*
         * The mediator is behind on reading: keep the doorbell and send one
         * KICK when the socket drains. Further doorbells coalesce into it.
         */
        s->kick_pending = true;
        s->tx_watch = qemu_chr_fe_add_watch(&s->chr, G_IO_OUT | G_IO_HUP,
                                            vgpu_chr_writable, s);
        return;
    }
    if (ret < 0) {
        /* The ring keeps the request; HELLO after reconnect resumes it. */
        s->kick_pending = true;
        vgpu_disconnect(s);
        return;
    }
    s->kicks++;
}

/* Text from the mediator is shown to the guest and to logs: printable only. */
static void vgpu_sanitize(char *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len && buf[i]; i++) {
        if (buf[i] < 0x20 || buf[i] >= 0x7f) {
            buf[i] = '?';
        }
    }
}

static void vgpu_handle_welcome(VgpuStubState *s, const uint8_t *buf,
                                uint32_t size, uint32_t seq)
{
    struct vgpu_msg_welcome w;

    if (size != sizeof(w)) {
        vgpu_protocol_error(s, VGPU_PERR_MALFORMED, seq, "bad WELCOME size");
        return;
    }
    if (s->link_status & VGPU_LINK_UP) {
        vgpu_protocol_error(s, VGPU_PERR_TYPE, seq, "WELCOME on a live link");
        return;
    }
    memcpy(&w, buf, sizeof(w));
    if (le16_to_cpu(w.version_major) != VGPU_PROTO_VERSION_MAJOR) {
        vgpu_protocol_error(s, VGPU_PERR_VERSION, seq,
                            "unsupported protocol major version");
        return;
    }

    s->session_id = le32_to_cpu(w.session_id);
    s->backend = le32_to_cpu(w.backend);
    s->max_inflight = le32_to_cpu(w.max_inflight);
    s->gpu_mem_mib = le32_to_cpu(w.gpu_mem_mib);
    s->gpu_sms = le32_to_cpu(w.gpu_sms);
    s->gpu_cc = le32_to_cpu(w.gpu_cc);
    /* NUL-padded, NUL-terminated: the guest reads it as-is. */
    memset(s->gpu_name, 0, sizeof(s->gpu_name));
    pstrcpy(s->gpu_name, MIN(sizeof(s->gpu_name), sizeof(w.gpu_name)),
            w.gpu_name);
    vgpu_sanitize(s->gpu_name, sizeof(s->gpu_name));

    s->link_status = VGPU_LINK_UP;
    if (s->backend == VGPU_BACKEND_CUDA) {
        s->link_status |= VGPU_LINK_GPU;
    }
    /* From here on the mediator watches the eventfd (if it said so). */
    vgpu_doorbell_map(s, s->ioeventfd &&
                         (le32_to_cpu(w.features) & VGPU_FEAT_DOORBELL_FD));
    vgpu_raise(s, VGPU_IRQ_LINK);
    /* A doorbell rung before WELCOME went to the handler: KICK it now. */
    if (s->kick_pending) {
        qemu_bh_schedule(s->kick_bh);
    }
}

static void vgpu_handle_error(VgpuStubState *s, const uint8_t *buf,
                              uint32_t size)
{
    struct vgpu_msg_error e;
    char text[sizeof(e.text)];

    if (size != sizeof(e)) {
        warn_report("vgpu-stub: mediator sent a malformed ERROR; disconnecting");
    } else {
        memcpy(&e, buf, sizeof(e));
        memcpy(text, e.text, sizeof(text));
        text[sizeof(text) - 1] = '\0';
        vgpu_sanitize(text, sizeof(text));
        warn_report("vgpu-stub: mediator refused the link: error %u (ref seq %u): %s",
                    le32_to_cpu(e.code), le32_to_cpu(e.ref_seq), text);
    }
    vgpu_disconnect(s);
}

/* Returns false when the connection was dropped and parsing must stop. */
static bool vgpu_dispatch(VgpuStubState *s, const uint8_t *buf, uint32_t size)
{
    struct vgpu_msg_hdr hdr;

    memcpy(&hdr, buf, sizeof(hdr));
    switch (le16_to_cpu(hdr.type)) {
    case VGPU_MSG_WELCOME:
        vgpu_handle_welcome(s, buf, size, le32_to_cpu(hdr.seq));
        break;
    case VGPU_MSG_NOTIFY:
        if (size != sizeof(struct vgpu_msg_notify)) {
            vgpu_protocol_error(s, VGPU_PERR_MALFORMED, le32_to_cpu(hdr.seq),
                                "bad NOTIFY size");
            break;
        }
        if (!(s->link_status & VGPU_LINK_UP)) {
            vgpu_protocol_error(s, VGPU_PERR_TYPE, le32_to_cpu(hdr.seq),
                                "NOTIFY before WELCOME");
            break;
        }
        s->notifies++;
        vgpu_raise(s, VGPU_IRQ_COMPLETION);
        break;
    case VGPU_MSG_ERROR:
        vgpu_handle_error(s, buf, size);
        break;
    case VGPU_MSG_BYE:
        warn_report("vgpu-stub: mediator closed the link (BYE)");
        vgpu_disconnect(s);
        break;
    default:
        vgpu_protocol_error(s, VGPU_PERR_TYPE, le32_to_cpu(hdr.seq),
                            "unexpected message type");
        break;
    }
    return s->connected;
}

static int vgpu_chr_can_read(void *opaque)
{
    VgpuStubState *s = opaque;

    return s->connected ? sizeof(s->rx_buf) - s->rx_len : 0;
}

static void vgpu_chr_read(void *opaque, const uint8_t *buf, int size)
{
    VgpuStubState *s = opaque;
    uint32_t off = 0;
    int fds[4];
    int i, n;

    /* The mediator never sends descriptors: close any, they would leak. */
    n = qemu_chr_fe_get_msgfds(&s->chr, fds, ARRAY_SIZE(fds));
    for (i = 0; i < n; i++) {
        close(fds[i]);
    }
    if (n > 0) {
        vgpu_protocol_error(s, VGPU_PERR_FD, 0, "unexpected file descriptor");
        return;
    }
    if (!s->connected || size <= 0) {
        return;
    }
    if ((uint32_t)size > sizeof(s->rx_buf) - s->rx_len) {
        /* can_read bounds size; anything more is a chardev bug. */
        vgpu_protocol_error(s, VGPU_PERR_MALFORMED, 0, "receive overrun");
        return;
    }
    memcpy(s->rx_buf + s->rx_len, buf, size);
    s->rx_len += size;

    while (s->rx_len - off >= sizeof(struct vgpu_msg_hdr)) {
        struct vgpu_msg_hdr hdr;
        uint32_t msize;

        memcpy(&hdr, s->rx_buf + off, sizeof(hdr));
        msize = le32_to_cpu(hdr.size);
        if (msize < sizeof(hdr) || msize > VGPU_MSG_MAX_SIZE) {
            vgpu_protocol_error(s, VGPU_PERR_MALFORMED, le32_to_cpu(hdr.seq),
                                "bad message size");
            return;
        }
        if (s->rx_len - off < msize) {
            break;
        }
        if (!vgpu_dispatch(s, s->rx_buf + off, msize)) {
            return;
        }
        off += msize;
    }
    if (off) {
        memmove(s->rx_buf, s->rx_buf + off, s->rx_len - off);
        s->rx_len -= off;
    }
}

static void vgpu_chr_event(void *opaque, QEMUChrEvent event)
{
    VgpuStubState *s = opaque;

    switch (event) {
    case CHR_EVENT_OPENED:
        s->rx_len = 0;
        vgpu_send_hello(s);
        break;
    case CHR_EVENT_CLOSED:
        /* Requests stay in the guest's ring; they resume after reconnect. */
        vgpu_tx_watch_remove(s);
        s->connected = false;
        s->rx_len = 0;
        vgpu_link_down(s);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------
 * BAR0 registers
 * ------------------------------------------------------------------------ */

static bool vgpu_access_ok(hwaddr addr, unsigned size, const char *what)
{
    if (size != 4 || (addr & 3)) {
        qemu_log_mask(LOG_GUEST_ERROR,
                      "vgpu-stub: %s of %u bytes at 0x%" HWADDR_PRIx
                      " ignored: registers take aligned 32-bit accesses\n",
                      what, size, addr);
        return false;
    }
    return true;
}

static uint64_t vgpu_regs_read(void *opaque, hwaddr addr, unsigned size)
{
    VgpuStubState *s = opaque;

    if (!vgpu_access_ok(addr, size, "read")) {
        return 0;
    }
    if (addr >= VGPU_REG_VM_NAME && addr < VGPU_REG_VM_NAME + VGPU_REG_NAME_LEN) {
        return (uint32_t)ldl_le_p(s->vm_name_reg + (addr - VGPU_REG_VM_NAME));
    }
    if (addr >= VGPU_REG_GPU_NAME && addr < VGPU_REG_GPU_NAME + VGPU_REG_NAME_LEN) {
        return (uint32_t)ldl_le_p(s->gpu_name + (addr - VGPU_REG_GPU_NAME));
    }

    switch (addr) {
    case VGPU_REG_MAGIC:
        return VGPU_MAGIC;
    case VGPU_REG_VERSION:
        return VGPU_ABI_VERSION;
    case VGPU_REG_FEATURES:
        return s->features;
    case VGPU_REG_LINK_STATUS:
        return s->link_status;
    case VGPU_REG_VM_ID:
        return s->vm_id;
    case VGPU_REG_PRIORITY:
        return s->priority;
    case VGPU_REG_WEIGHT:
        return s->weight;
    case VGPU_REG_SESSION_ID:
        return s->session_id;
    case VGPU_REG_DOORBELL:
    case VGPU_REG_IRQ_ACK:
        return 0;               /* write-only */
    case VGPU_REG_IRQ_STATUS:
        return s->irq_status;
    case VGPU_REG_IRQ_MASK:
        return s->irq_mask;
    case VGPU_REG_SHM_SIZE_LO:
        return (uint32_t)s->shm_size;
    case VGPU_REG_SHM_SIZE_HI:
        return (uint32_t)(s->shm_size >> 32);
    case VGPU_REG_SQ_ENTRIES:
        return VGPU_SQ_ENTRIES;
    case VGPU_REG_CQ_ENTRIES:
        return VGPU_CQ_ENTRIES;
    case VGPU_REG_DATA_OFFSET:
        return VGPU_SHM_DATA_OFFSET;
    case VGPU_REG_MAX_INFLIGHT:
        return s->max_inflight;
    case VGPU_REG_KICKS:
        return s->kicks;
    case VGPU_REG_NOTIFIES:
        return s->notifies;
    case VGPU_REG_BACKEND:
        return s->backend;
    case VGPU_REG_GPU_MEM_MIB:
        return s->gpu_mem_mib;
    case VGPU_REG_GPU_SMS:
        return s->gpu_sms;
    case VGPU_REG_GPU_CC:
        return s->gpu_cc;
    case VGPU_REG_QUEUES:
        return s->queues;
    case VGPU_REG_DATA_END_LO:
        return (uint32_t)s->data_end;
    case VGPU_REG_DATA_END_HI:
        return (uint32_t)(s->data_end >> 32);
    default:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "vgpu-stub: read of unknown register 0x%" HWADDR_PRIx "\n",
                      addr);
        return 0;
    }
}

static void vgpu_regs_write(void *opaque, hwaddr addr, uint64_t val,
                            unsigned size)
{
    VgpuStubState *s = opaque;
    uint32_t prev;

    if (!vgpu_access_ok(addr, size, "write")) {
        return;
    }

    switch (addr) {
    case VGPU_REG_DOORBELL:
        /*
         * Only while the ioeventfd is not mapped (see vgpu_doorbell_map()),
         * or for a write the ioeventfd does not match (not 4 bytes).
         * Doorbells are coalesced into one KICK per main-loop iteration:
         * the mediator reads the ring, not the message, so nothing is lost,
         * and a doorbell storm cannot flood the socket.
         */
        s->kick_pending = true;
        if (s->link_status & VGPU_LINK_UP) {
            qemu_bh_schedule(s->kick_bh);
        }
        break;
    case VGPU_REG_IRQ_ACK:
        prev = vgpu_pending(s);
        s->irq_status &= ~(uint32_t)val;
        vgpu_update_irq(s, prev);
        break;
    case VGPU_REG_IRQ_MASK:
        prev = vgpu_pending(s);
        s->irq_mask = (uint32_t)val & VGPU_IRQ_ALL;
        vgpu_update_irq(s, prev);
        break;
    case VGPU_REG_MAGIC:
    case VGPU_REG_VERSION:
    case VGPU_REG_FEATURES:
    case VGPU_REG_LINK_STATUS:
    case VGPU_REG_VM_ID:
    case VGPU_REG_PRIORITY:
    case VGPU_REG_WEIGHT:
    case VGPU_REG_SESSION_ID:
    case VGPU_REG_IRQ_STATUS:
    case VGPU_REG_SHM_SIZE_LO:
    case VGPU_REG_SHM_SIZE_HI:
    case VGPU_REG_SQ_ENTRIES:
    case VGPU_REG_CQ_ENTRIES:
    case VGPU_REG_DATA_OFFSET:
    case VGPU_REG_MAX_INFLIGHT:
    case VGPU_REG_KICKS:
    case VGPU_REG_NOTIFIES:
    case VGPU_REG_BACKEND:
    case VGPU_REG_GPU_MEM_MIB:
    case VGPU_REG_GPU_SMS:
    case VGPU_REG_GPU_CC:
    case VGPU_REG_QUEUES:
    case VGPU_REG_DATA_END_LO:
    case VGPU_REG_DATA_END_HI:
        qemu_log_mask(LOG_GUEST_ERROR,
                      "vgpu-stub: write 0x%" PRIx64 " to read-only register 0x%"
                      HWADDR_PRIx " ignored\n", val, addr);
        break;
    default:
        if (addr >= VGPU_REG_VM_NAME &&
            addr < VGPU_REG_GPU_NAME + VGPU_REG_NAME_LEN) {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "vgpu-stub: write to read-only name register 0x%"
                          HWADDR_PRIx " ignored\n", addr);
        } else {
            qemu_log_mask(LOG_GUEST_ERROR,
                          "vgpu-stub: write 0x%" PRIx64 " to unknown register 0x%"
                          HWADDR_PRIx " ignored\n", val, addr);
        }
        break;
    }
}

/*
 * Every size and alignment reaches the handlers so that a bad access is
 * logged and ignored by this device, not turned into a bus error.
 */
static const MemoryRegionOps vgpu_regs_ops = {
    .read = vgpu_regs_read,
    .write = vgpu_regs_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = true,
    },
    .impl = {
        .min_access_size = 1,
        .max_access_size = 8,
        .unaligned = true,
    },
};

/* ------------------------------------------------------------------------
 * Device lifecycle
 * ------------------------------------------------------------------------ */

static void vgpu_write_config(PCIDevice *pdev, uint32_t addr, uint32_t val,
                              int len)
{
    VgpuStubState *s = VGPU_STUB(pdev);
    bool was_msi = msi_enabled(pdev);

    pci_default_write_config(pdev, addr, val, len);
    /* Switching between INTx and MSI moves a pending interrupt along. */
    if (msi_enabled(pdev) != was_msi) {
        vgpu_update_irq(s, was_msi ? vgpu_pending(s) : 0);
    }
}

static bool vgpu_check_props(VgpuStubState *s, Error **errp)
{
    size_t i, len;

    if (s->vendor_id == VGPU_PCI_FORBIDDEN_VENDOR) {
        error_setg(errp, "vgpu-stub: vendor-id 0x%04x is NVIDIA's; this device "
                   "never impersonates an NVIDIA GPU", s->vendor_id);
        return false;
    }
    if (s->vendor_id == 0x0000 || s->vendor_id == 0xffff) {
        error_setg(errp, "vgpu-stub: vendor-id 0x%04x is not a valid PCI vendor",
                   s->vendor_id);
        return false;
    }
    if (s->priority >= VGPU_PRIO_CLASSES) {
        error_setg(errp, "vgpu-stub: priority must be 0..%u (0 = highest)",
                   VGPU_PRIO_CLASSES - 1);
        return false;
    }
    if (s->weight < 1 || s->weight > VGPU_WEIGHT_MAX) {
        error_setg(errp, "vgpu-stub: weight must be 1..%u", VGPU_WEIGHT_MAX);
        return false;
    }
    if (s->queues < 1 || s->queues > VGPU_MAX_QUEUES) {
        error_setg(errp, "vgpu-stub: queues must be 1..%u", VGPU_MAX_QUEUES);
        return false;
    }
    len = s->vm_name ? strlen(s->vm_name) : 0;
    if (len >= VGPU_REG_NAME_LEN) {
        error_setg(errp, "vgpu-stub: vm-name is longer than %u characters",
                   VGPU_REG_NAME_LEN - 1);
        return false;
    }
    for (i = 0; i < len; i++) {
        if (s->vm_name[i] < 0x20 || s->vm_name[i] >= 0x7f) {
            error_setg(errp, "vgpu-stub: vm-name must be printable ASCII");
            return false;
        }
    }
    memset(s->vm_name_reg, 0, sizeof(s->vm_name_reg));
    if (len) {
        memcpy(s->vm_name_reg, s->vm_name, len);
    }
    return true;
}

static bool vgpu_setup_shm(VgpuStubState *s, Error **errp)
{
    Object *mem;
    Error *err = NULL;
    bool share;

    if (!s->hostmem) {
        error_setg(errp, "vgpu-stub: the 'memdev' property is required "
                   "(a memory-backend-memfd with share=on)");
        return false;
    }
    mem = OBJECT(s->hostmem);
    if (host_memory_backend_is_mapped(s->hostmem)) {
        error_setg(errp, "vgpu-stub: memdev '%s' is already in use",
                   object_get_canonical_path_component(mem));
        return false;
    }
    s->shm = host_memory_backend_get_memory(s->hostmem);
    if (memory_region_get_fd(s->shm) < 0) {
        error_setg(errp, "vgpu-stub: memdev '%s' has no file descriptor to share; "
                   "use memory-backend-memfd",
                   object_get_canonical_path_component(mem));
        return false;
    }
    /* A private mapping would hide the guest's writes from the mediator. */
    share = object_property_get_bool(mem, "share", &err);
    if (err) {
        error_propagate(errp, err);
        return false;
    }
    if (!share) {
        error_setg(errp, "vgpu-stub: memdev '%s' needs share=on",
                   object_get_canonical_path_component(mem));
        return false;
    }
    s->shm_size = memory_region_size(s->shm);
    if (s->shm_size < VGPU_SHM_MIN_SIZE || s->shm_size > VGPU_SHM_MAX_SIZE ||
        !is_power_of_2(s->shm_size)) {
        error_setg(errp, "vgpu-stub: memdev size %" PRIu64 " must be a power of "
                   "two between %llu and %llu bytes", s->shm_size,
                   (unsigned long long)VGPU_SHM_MIN_SIZE,
                   (unsigned long long)VGPU_SHM_MAX_SIZE);
        return false;
    }
    /*
     * Queues 1..N-1 sit at the end of BAR2; the data area keeps the rest.
     * queues <= VGPU_MAX_QUEUES (checked before), so the left side cannot
     * overflow.
     */
    if ((uint64_t)(s->queues - 1) * VGPU_SHM_QUEUE_SIZE + VGPU_SHM_DATA_OFFSET +
        VGPU_SHM_MIN_DATA > s->shm_size) {
        error_setg(errp, "vgpu-stub: memdev of %" PRIu64 " bytes is too "
                   "small for %u queue pairs: they take %u KiB each beside "
                   "queue 0 and %u KiB of data area must remain", s->shm_size,
                   s->queues, VGPU_SHM_QUEUE_SIZE / 1024,
                   VGPU_SHM_MIN_DATA / 1024);
        return false;
    }
    s->data_end = VGPU_SHM_DATA_END(s->shm_size, s->queues);
    return true;
}

static void vgpu_realize(PCIDevice *pdev, Error **errp)
{
    VgpuStubState *s = VGPU_STUB(pdev);
    Chardev *chr = qemu_chr_fe_get_driver(&s->chr);
    uint8_t *conf = pdev->config;
    Error *err = NULL;
    int ret;

    if (!vgpu_check_props(s, errp)) {
        return;
    }
    if (!chr) {
        error_setg(errp, "vgpu-stub: the 'chardev' property is required "
                   "(a Unix socket to vgpu-mediator)");
        return;
    }
    if (!qemu_chr_has_feature(chr, QEMU_CHAR_FEATURE_FD_PASS)) {
        error_setg(errp, "vgpu-stub: chardev '%s' cannot pass file descriptors; "
                   "use a Unix socket", chr->label);
        return;
    }
    if (!vgpu_setup_shm(s, errp)) {
        return;
    }

    pci_config_set_vendor_id(conf, s->vendor_id);
    pci_config_set_device_id(conf, s->device_id);
    pci_config_set_interrupt_pin(conf, 1);

    /* MULTIQUEUE: VGPU_REG_QUEUES and DATA_END exist (also when queues=1). */
    s->features = VGPU_FEAT_INTX | VGPU_FEAT_RECONNECT | VGPU_FEAT_MULTIQUEUE;
    if (s->ioeventfd) {
        ret = event_notifier_init(&s->doorbell, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "vgpu-stub: cannot create the doorbell eventfd");
            return;
        }
        s->features |= VGPU_FEAT_DOORBELL_FD;
    }
    ret = msi_init(pdev, 0, 1, true, false, &err);
    if (ret == 0) {
        s->features |= VGPU_FEAT_MSI;
    } else if (ret == -ENOTSUP) {
        /* The machine has no working MSI: INTx only, FEATURES says so. */
        error_free(err);
        err = NULL;
    } else {
        error_propagate(errp, err);
        goto err_doorbell;
    }

    error_setg(&s->migration_blocker,
               "vgpu-stub: the mediator's session is not migratable");
    if (vgpu_add_blocker(&s->migration_blocker, errp) < 0) {
        goto err_msi;
    }

    memory_region_init_io(&s->regs, OBJECT(s), &vgpu_regs_ops, s,
                          "vgpu-stub-regs", VGPU_REGS_SIZE);
    pci_register_bar(pdev, VGPU_BAR_REGS, PCI_BASE_ADDRESS_SPACE_MEMORY,
                     &s->regs);
    pci_register_bar(pdev, VGPU_BAR_SHM,
                     PCI_BASE_ADDRESS_SPACE_MEMORY |
                     PCI_BASE_ADDRESS_MEM_PREFETCH |
                     PCI_BASE_ADDRESS_MEM_TYPE_64, s->shm);
    host_memory_backend_set_mapped(s->hostmem, true);

    s->kick_bh = qemu_bh_new(vgpu_kick_bh, s);

    /* Last: if the socket is already up, this sends HELLO right away. */
    qemu_chr_fe_set_handlers(&s->chr, vgpu_chr_can_read, vgpu_chr_read,
                             vgpu_chr_event, NULL, s, NULL, true);
    return;

err_msi:
    msi_uninit(pdev);
err_doorbell:
    if (s->ioeventfd) {
        event_notifier_cleanup(&s->doorbell);
    }
}

static void vgpu_unrealize(PCIDevice *pdev)
{
    VgpuStubState *s = VGPU_STUB(pdev);

    /* Going away: no link interrupt from the CLOSED event this causes. */
    s->link_status = 0;
    if (s->connected) {
        struct vgpu_msg_bye bye = { 0 };

        vgpu_fill_hdr(s, &bye.hdr, VGPU_MSG_BYE, sizeof(bye));
        bye.reason = cpu_to_le32(VGPU_BYE_SHUTDOWN);
        vgpu_send(s, &bye, sizeof(bye));
        s->connected = false;
        qemu_chr_fe_disconnect(&s->chr);
    }
    vgpu_tx_watch_remove(s);
    qemu_chr_fe_deinit(&s->chr, false);
    vgpu_doorbell_map(s, false);
    if (s->ioeventfd) {
        event_notifier_cleanup(&s->doorbell);
    }
    qemu_bh_delete(s->kick_bh);
    s->kick_bh = NULL;
    host_memory_backend_set_mapped(s->hostmem, false);
    vgpu_del_blocker(&s->migration_blocker);
    msi_uninit(pdev);
}

/*
 * Reset is guest-visible state only. The link, the session and the identity
 * survive: the mediator's view of the ring is the guest driver's business.
 */
VGPU_RESET_HOLD(vgpu_reset_hold)
{
    VgpuStubState *s = VGPU_STUB(obj);

    s->irq_status = 0;
    s->irq_mask = 0;
    s->kicks = 0;
    s->notifies = 0;
    s->kick_pending = false;
    pci_set_irq(PCI_DEVICE(s), 0);
}

VGPU_PROPERTIES vgpu_properties[] = {
    DEFINE_PROP_CHR("chardev", VgpuStubState, chr),
    DEFINE_PROP_LINK("memdev", VgpuStubState, hostmem, TYPE_MEMORY_BACKEND,
                     HostMemoryBackend *),
    DEFINE_PROP_UINT32("vm-id", VgpuStubState, vm_id, 0),
    DEFINE_PROP_STRING("vm-name", VgpuStubState, vm_name),
    DEFINE_PROP_UINT32("priority", VgpuStubState, priority, 1),
    DEFINE_PROP_UINT32("weight", VgpuStubState, weight, 1),
    DEFINE_PROP_UINT16("vendor-id", VgpuStubState, vendor_id, VGPU_PCI_VENDOR_ID),
    DEFINE_PROP_UINT16("device-id", VgpuStubState, device_id, VGPU_PCI_DEVICE_ID),
    DEFINE_PROP_BOOL("ioeventfd", VgpuStubState, ioeventfd, true),
    DEFINE_PROP_UINT32("queues", VgpuStubState, queues, 1),
    VGPU_PROP_END
};

static void vgpu_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    ResettableClass *rc = RESETTABLE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = vgpu_realize;
    k->exit = vgpu_unrealize;
    k->config_write = vgpu_write_config;
    k->vendor_id = VGPU_PCI_VENDOR_ID;
    k->device_id = VGPU_PCI_DEVICE_ID;
    k->revision = VGPU_PCI_REVISION;
    k->class_id = VGPU_PCI_CLASS_CODE << 8;
    dc->desc = "vGPU request forwarder to vgpu-mediator";
    rc->phases.hold = vgpu_reset_hold;
    device_class_set_props(dc, vgpu_properties);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo vgpu_info = {
    .name          = TYPE_VGPU_STUB,
    .parent        = TYPE_PCI_DEVICE,
    .instance_size = sizeof(VgpuStubState),
    .class_init    = vgpu_class_init,
    .interfaces    = (InterfaceInfo[]) {
        { INTERFACE_CONVENTIONAL_PCI_DEVICE },
        { },
    },
};

static void vgpu_register_types(void)
{
    type_register_static(&vgpu_info);
}

type_init(vgpu_register_types)
