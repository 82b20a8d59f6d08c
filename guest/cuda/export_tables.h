/* SPDX-License-Identifier: MIT */
/* export_tables.c's parts that context.c and the unit tests use. */
#ifndef VGPU_CUDA_EXPORT_TABLES_H
#define VGPU_CUDA_EXPORT_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include <cuda.h>

/* MD2 (RFC 1319). */
struct md2 {
    uint8_t x[48];
    uint8_t sum[16];
    uint8_t buf[16];
    uint8_t last;
    uint8_t n;
};
void cu_md2_init(struct md2 *m);
void cu_md2_update(struct md2 *m, const void *data, size_t len);
void cu_md2_final(struct md2 *m, uint8_t out[16]);

/* What the integrity check hashes, laid out as the runtime hashes it. */
struct cu_integrity_in {
    uint32_t driver_version;
    uint32_t version;
    uint32_t pid;
    uint32_t tid;
    const void *cudart_table;
    const void *integrity_table;
    const void *slot;
    uint64_t unix_seconds;
};
_Static_assert(sizeof(struct cu_integrity_in) == 48, "integrity input");

struct cu_integrity_dev {
    uint8_t uuid[16];
    int32_t pci_domain;
    int32_t pci_bus;
    int32_t pci_device;
};
_Static_assert(sizeof(struct cu_integrity_dev) == 28, "integrity device");

void cu_integrity_hash(const struct cu_integrity_in *in, const struct cu_integrity_dev *devs,
                       int ndev, uint64_t result[2]);

/* A context is destroyed or reset: its context-local storage goes, each
 * entry's destructor called. */
void cu_cls_context_gone(CUcontext ctx);

#endif /* VGPU_CUDA_EXPORT_TABLES_H */
