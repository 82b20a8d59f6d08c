/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-smi's pure parts, built into the tool and into tests/unit/test_smi.c:
 * decoding STATS_DATA pages (peer input: every size checked), the field
 * tables of --query-vm and --query-gpu, and --format. Nothing here touches a
 * socket or prints.
 */
#ifndef VGPU_CLIENT_SMI_H
#define VGPU_CLIENT_SMI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vgpu/protocol.h"

/* Every page of one query, joined. */
struct smi_snapshot {
    struct vgpu_stats_mediator med;
    struct vgpu_stats_vm *vms;      /* in session-id order */
    unsigned n, cap;
    unsigned pages;
    uint64_t realtime_ns;           /* of the first page */
};

void smi_snapshot_free(struct smi_snapshot *snap);

/*
 * Decodes one whole STATS_DATA message of len bytes and appends its VM
 * records to snap (the mediator record of the first page is kept).
 * *more and *next: whether to query again, and from which session id.
 * 0, -EPROTO (malformed: wrong type, sizes inconsistent, records smaller than
 * protocol 1.2's, a cursor that does not advance) or -ENOMEM.
 */
int smi_decode_page(const void *msg, size_t len, struct smi_snapshot *snap, bool *more,
                    uint32_t *next);

/* ---- fields ---- */

enum smi_kind { SMI_VM, SMI_GPU };

#define SMI_MAX_FIELDS 64

/* What a field is computed from: this sample and, in a loop, the one before. */
struct smi_ctx {
    const struct smi_snapshot *cur;
    const struct smi_snapshot *prev;   /* NULL: rates are averages since attach/start */
    uint64_t gpu_time_sum_ns;          /* of the VMs listed (delta with prev) */
};

/* Computes smi_ctx.gpu_time_sum_ns. */
void smi_ctx_init(struct smi_ctx *c, const struct smi_snapshot *cur,
                  const struct smi_snapshot *prev);

/*
 * Parses a comma-separated list of field names of kind into ids[] (at most
 * SMI_MAX_FIELDS). Returns the count, or -EINVAL with the offending name
 * (or a reason) in bad[bad_len].
 */
int smi_parse_fields(enum smi_kind kind, const char *list, int *ids, char *bad, size_t bad_len);

/* The field's name and unit ("" when it has none), for headers and --help. */
const char *smi_field_name(enum smi_kind kind, int id);
const char *smi_field_unit(enum smi_kind kind, int id);
const char *smi_field_help(enum smi_kind kind, int id);
int smi_field_count(enum smi_kind kind);

/*
 * Writes the value of field id for record rec (a struct vgpu_stats_vm for
 * SMI_VM, ignored for SMI_GPU) into buf: a number in the field's unit, with
 * " unit" appended when units, or a bracketed "[N/A]"-style word.
 */
void smi_field_value(enum smi_kind kind, int id, const struct smi_ctx *c,
                     const struct vgpu_stats_vm *rec, bool units, char *buf, size_t len);

/* ---- --format ---- */

struct smi_format {
    bool csv;
    bool noheader;
    bool nounits;
};

/* "csv[,noheader][,nounits]" in any order after csv. 0 or -EINVAL. */
int smi_parse_format(const char *s, struct smi_format *f);

#endif /* VGPU_CLIENT_SMI_H */
