/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A small client of QEMU's qtest text protocol (softmmu/qtest.c), enough to
 * drive a PCI device without booting a guest: port and memory accesses,
 * PCI configuration through 0xcf8/0xcfc, and interrupt interception.
 *
 * QEMU's own libqtest is QEMU-internal; this is our own, deliberately small.
 * Every function that talks to QEMU has a deadline; on a protocol failure
 * (QEMU died, FAIL reply, timeout) it reports and returns -errno, and the
 * qt_* accessors record the first failure in qt->failed so that a test can
 * check once at the end of a sequence.
 */
#ifndef VGPU_QTEST_CLIENT_H
#define VGPU_QTEST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define QT_MAX_IRQ 256

struct qt {
    pid_t pid;              /* QEMU */
    int fd;                 /* qtest connection */
    int reply_timeout_ms;
    bool failed;            /* a command failed since the last qt_clear_failed */
    int irq_level[QT_MAX_IRQ];
    unsigned irq_raises[QT_MAX_IRQ];
    size_t rx_len;
    size_t consumed;        /* bytes of the line handed out last */
    char rx[1 << 20];
    char *line;             /* last reply line ("OK ...") */
};

/*
 * Start QEMU: @qemu binary, -machine @machine, -accel qtest connected to a
 * socket in @dir, plus the NULL-terminated @extra arguments; QEMU's
 * stdout/stderr go to @log_path. Returns 0 or -errno.
 */
int qt_start(struct qt *qt, const char *qemu, const char *machine,
             const char *dir, const char *log_path, const char *const *extra);

/* SIGTERM, wait up to 5 s, then SIGKILL. Returns QEMU's wait status or -1. */
int qt_stop(struct qt *qt);

/* True while the QEMU process exists (not reaped). */
bool qt_alive(struct qt *qt);

/* Send one command line (no newline) and wait for its OK reply; the reply
 * text after "OK" is left in qt->line. Returns 0 or -errno. */
int qt_cmd(struct qt *qt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Pipelined: send @n copies of @cmd, then collect @n OK replies. */
int qt_cmd_repeat(struct qt *qt, const char *cmd, unsigned n);

/* Process asynchronous lines (IRQ raise/lower) for up to @ms. */
void qt_poll_async(struct qt *qt, int ms);

uint8_t  qt_readb(struct qt *qt, uint64_t addr);
uint16_t qt_readw(struct qt *qt, uint64_t addr);
uint32_t qt_readl(struct qt *qt, uint64_t addr);
uint64_t qt_readq(struct qt *qt, uint64_t addr);
void qt_writeb(struct qt *qt, uint64_t addr, uint8_t v);
void qt_writew(struct qt *qt, uint64_t addr, uint16_t v);
void qt_writel(struct qt *qt, uint64_t addr, uint32_t v);
void qt_writeq(struct qt *qt, uint64_t addr, uint64_t v);
uint32_t qt_inl(struct qt *qt, uint16_t port);
void qt_outl(struct qt *qt, uint16_t port, uint32_t v);
int qt_memread(struct qt *qt, uint64_t addr, void *buf, size_t len);
int qt_memwrite(struct qt *qt, uint64_t addr, const void *buf, size_t len);

/* PCI configuration space of bus 0 through the 0xcf8/0xcfc mechanism. */
uint32_t qt_pci_cfg_readl(struct qt *qt, unsigned devfn, unsigned off);
uint16_t qt_pci_cfg_readw(struct qt *qt, unsigned devfn, unsigned off);
uint8_t  qt_pci_cfg_readb(struct qt *qt, unsigned devfn, unsigned off);
void qt_pci_cfg_writel(struct qt *qt, unsigned devfn, unsigned off, uint32_t v);
void qt_pci_cfg_writew(struct qt *qt, unsigned devfn, unsigned off, uint16_t v);

#endif /* VGPU_QTEST_CLIENT_H */
