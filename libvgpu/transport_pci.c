/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/* libvgpu "pci" transport: work in progress, replaced by the sysfs/uio
 * implementation in the next commit. */
#include <errno.h>

#include "transport.h"

static int pci_open(struct vgpu_dev *dev, const struct vgpu_open_opts *o)
{
    (void)dev;
    (void)o;
    return -ENODEV;
}

static void pci_close(struct vgpu_dev *dev) { (void)dev; }
static int pci_kick(struct vgpu_dev *dev, uint32_t t) { (void)dev; (void)t; return -ENODEV; }
static int pci_wait_event(struct vgpu_dev *dev, int ms) { (void)dev; (void)ms; return -ENODEV; }
static uint32_t pci_link_status(struct vgpu_dev *dev) { (void)dev; return 0; }

const struct vgpu_transport_ops vgpu_transport_pci = {
    .name = "pci", .open = pci_open, .close = pci_close, .kick = pci_kick,
    .wait_event = pci_wait_event, .link_status = pci_link_status,
};
