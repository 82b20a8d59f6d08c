/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * vgpu-smi's parsers: --query-vm/--query-gpu field lists, --format, and
 * STATS_DATA pages as a mediator (or anything else on the socket) sends them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "client/smi.h"

static void test_fields(void **state)
{
    int ids[SMI_MAX_FIELDS];
    char bad[80];
    char list[4096];
    (void)state;

    assert_int_equal(smi_parse_fields(SMI_VM, "vm_id,name,requests", ids, bad, sizeof(bad)), 3);
    assert_string_equal(smi_field_name(SMI_VM, ids[0]), "vm_id");
    assert_string_equal(smi_field_name(SMI_VM, ids[2]), "requests");
    /* spaces after commas, as nvidia-smi takes them; a field twice is fine */
    assert_int_equal(smi_parse_fields(SMI_VM, "name, name ,queue.p99", ids, bad, sizeof(bad)), 3);
    assert_string_equal(smi_field_unit(SMI_VM, ids[2]), "us");
    assert_int_equal(smi_parse_fields(SMI_VM, "status.timeout", ids, bad, sizeof(bad)), 1);
    assert_string_equal(smi_field_name(SMI_VM, ids[0]), "status.timeout");
    assert_int_equal(smi_parse_fields(SMI_GPU, "name,memory.total,utilization.gpu", ids, bad,
                                      sizeof(bad)), 3);
    assert_string_equal(smi_field_unit(SMI_GPU, ids[1]), "MiB");

    assert_int_equal(smi_parse_fields(SMI_VM, "name,bogus,vm_id", ids, bad, sizeof(bad)), -EINVAL);
    assert_string_equal(bad, "bogus");
    /* a GPU field is not a VM field */
    assert_int_equal(smi_parse_fields(SMI_VM, "utilization.gpu", ids, bad, sizeof(bad)), -EINVAL);
    assert_int_equal(smi_parse_fields(SMI_VM, "", ids, bad, sizeof(bad)), -EINVAL);
    assert_int_equal(smi_parse_fields(SMI_VM, "name,", ids, bad, sizeof(bad)), -EINVAL);
    assert_int_equal(smi_parse_fields(SMI_VM, ",name", ids, bad, sizeof(bad)), -EINVAL);
    assert_int_equal(smi_parse_fields(SMI_VM, "nam", ids, bad, sizeof(bad)), -EINVAL);
    assert_int_equal(smi_parse_fields(SMI_VM, "name2", ids, bad, sizeof(bad)), -EINVAL);
    /* never more fields than the array holds */
    list[0] = '\0';
    for (int i = 0; i <= SMI_MAX_FIELDS; i++) {
        strcat(list, i ? ",name" : "name");
    }
    assert_int_equal(smi_parse_fields(SMI_VM, list, ids, bad, sizeof(bad)), -EINVAL);
    /* every name in the tables parses back to itself */
    for (int k = 0; k < 2; k++) {
        enum smi_kind kind = k ? SMI_GPU : SMI_VM;
        for (int id = 0; id < smi_field_count(kind); id++) {
            assert_int_equal(smi_parse_fields(kind, smi_field_name(kind, id), ids, bad,
                                              sizeof(bad)), 1);
            assert_int_equal(ids[0], id);
        }
    }
}

static void test_format(void **state)
{
    struct smi_format f;
    (void)state;

    assert_int_equal(smi_parse_format("csv", &f), 0);
    assert_true(f.csv && !f.noheader && !f.nounits);
    assert_int_equal(smi_parse_format("csv,noheader", &f), 0);
    assert_true(f.noheader && !f.nounits);
    assert_int_equal(smi_parse_format("csv,nounits,noheader", &f), 0);
    assert_true(f.noheader && f.nounits);
    assert_int_equal(smi_parse_format("csv, nounits", &f), 0);
    assert_true(f.nounits);
    assert_int_equal(smi_parse_format("xml", &f), -EINVAL);
    assert_int_equal(smi_parse_format("csvx", &f), -EINVAL);
    assert_int_equal(smi_parse_format("csv,", &f), -EINVAL);
    assert_int_equal(smi_parse_format("csv,header", &f), -EINVAL);
    assert_int_equal(smi_parse_format("", &f), -EINVAL);
    assert_int_equal(smi_parse_format("noheader,csv", &f), -EINVAL);
}

/* A page as the mediator builds it: n VM records with ids first_id.. */
static uint8_t *page(uint32_t first_id, uint32_t n, bool more, uint32_t next, size_t *len,
                     uint16_t med_size, uint16_t vm_size)
{
    size_t sz = sizeof(struct vgpu_msg_stats_data) + med_size + (size_t)n * vm_size;
    uint8_t *b = calloc(1, sz);
    struct vgpu_msg_stats_data d = {
        .hdr = { .type = VGPU_MSG_STATS_DATA, .size = (uint32_t)sz, .seq = 1 },
        .flags = more ? VGPU_STATS_MORE : 0, .count = n, .next = next, .total = n,
        .mediator_size = med_size, .vm_size = vm_size,
    };
    struct vgpu_stats_mediator md = { .version = "9.9", .pid = 42, .sessions = n };

    assert_non_null(b);
    memcpy(b, &d, sizeof(d));
    memcpy(b + sizeof(d), &md, med_size < sizeof(md) ? med_size : sizeof(md));
    for (uint32_t i = 0; i < n; i++) {
        struct vgpu_stats_vm v = { .session_id = first_id + i, .vm_id = 100 + first_id + i,
                                   .state = VGPU_STATS_VM_ACTIVE, .requests = i };
        memset(v.vm_name, 'x', sizeof(v.vm_name));   /* unterminated */
        v.vm_name[0] = '\n';
        memcpy(b + sizeof(d) + med_size + (size_t)i * vm_size, &v,
               vm_size < sizeof(v) ? vm_size : sizeof(v));
    }
    *len = sz;
    return b;
}

static void test_decode(void **state)
{
    const uint16_t ms = sizeof(struct vgpu_stats_mediator), vs = sizeof(struct vgpu_stats_vm);
    struct smi_snapshot s = { 0 };
    uint32_t next = 0;
    bool more = false;
    uint8_t *b;
    size_t len;
    (void)state;

    /* two pages, then a last one */
    b = page(1, 3, true, 4, &len, ms, vs);
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), 0);
    assert_true(more);
    assert_int_equal(next, 4);
    free(b);
    b = page(7, 2, false, 0, &len, ms, vs);
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), 0);
    assert_false(more);
    free(b);
    assert_int_equal(s.n, 5);
    assert_int_equal(s.pages, 2);
    assert_int_equal(s.vms[3].session_id, 7);
    assert_int_equal(s.vms[4].vm_id, 108);
    assert_string_equal(s.med.version, "9.9");
    assert_int_equal(strlen(s.vms[0].vm_name), 63);   /* terminated */
    assert_int_equal(s.vms[0].vm_name[0], '?');       /* and printable */
    /* a page that repeats a record already received */
    b = page(8, 1, false, 0, &len, ms, vs);
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), -EPROTO);
    free(b);
    smi_snapshot_free(&s);

    /* a later version's larger records: the known part is taken */
    b = page(1, 2, false, 0, &len, ms + 8, vs + 24);
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.vms[1].session_id, 2);
    assert_int_equal(s.med.pid, 42);
    free(b);
    smi_snapshot_free(&s);

    /* a 1.2 mediator's records (no by_status_hi): taken, the rest reads 0 */
    b = page(1, 2, false, 0, &len, ms, VGPU_STATS_VM_SIZE_1_2);
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.vms[1].session_id, 2);
    assert_int_equal(s.vms[1].by_status_hi[0], 0);
    free(b);
    smi_snapshot_free(&s);

    /* records smaller than 1.2's */
    b = page(1, 2, false, 0, &len, ms, VGPU_STATS_VM_SIZE_1_2 - 8);
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), -EPROTO);
    free(b);
    b = page(1, 2, false, 0, &len, ms - 8, vs);
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), -EPROTO);
    free(b);

    /* sizes that disagree: a count beyond the message, a short buffer, hdr.size */
    b = page(1, 2, false, 0, &len, ms, vs);
    ((struct vgpu_msg_stats_data *)b)->count = 3;
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), -EPROTO);
    ((struct vgpu_msg_stats_data *)b)->count = 0xffffffffu;
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), -EPROTO);
    ((struct vgpu_msg_stats_data *)b)->count = 2;
    assert_int_equal(smi_decode_page(b, len - 1, &s, &more, &next), -EPROTO);
    assert_int_equal(smi_decode_page(b, 20, &s, &more, &next), -EPROTO);
    ((struct vgpu_msg_stats_data *)b)->hdr.type = VGPU_MSG_STATS_REPLY;
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), -EPROTO);
    free(b);
    assert_int_equal(s.n, 0);

    /* a cursor that does not move on: refused rather than asked forever */
    b = page(5, 2, true, 6, &len, ms, vs);
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), -EPROTO);
    free(b);
    smi_snapshot_free(&s);
    b = page(5, 0, true, 9, &len, ms, vs);
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), -EPROTO);
    free(b);
    smi_snapshot_free(&s);
}

static void test_values(void **state)
{
    const uint16_t ms = sizeof(struct vgpu_stats_mediator), vs = sizeof(struct vgpu_stats_vm);
    struct smi_snapshot s = { 0 };
    struct smi_ctx ctx;
    uint32_t next;
    bool more;
    char buf[64];
    int ids[4];
    char bad[80];
    uint8_t *b;
    size_t len;
    (void)state;

    b = page(1, 2, false, 0, &len, ms, vs);
    assert_int_equal(smi_decode_page(b, len, &s, &more, &next), 0);
    free(b);
    s.vms[0].queue_p99_ns = 123456;
    s.vms[0].gpu_time_ns = 3000000;
    s.vms[1].gpu_time_ns = 1000000;
    s.vms[0].mem_quota = 256ull << 20;
    smi_ctx_init(&ctx, &s, NULL);
    assert_int_equal(smi_parse_fields(SMI_VM, "queue.p99,gpu_time.share,memory.quota,memory.used",
                                      ids, bad, sizeof(bad)), 4);
    smi_field_value(SMI_VM, ids[0], &ctx, &s.vms[0], true, buf, sizeof(buf));
    assert_string_equal(buf, "123.5 us");
    smi_field_value(SMI_VM, ids[0], &ctx, &s.vms[0], false, buf, sizeof(buf));
    assert_string_equal(buf, "123.5");
    smi_field_value(SMI_VM, ids[1], &ctx, &s.vms[0], false, buf, sizeof(buf));
    assert_string_equal(buf, "75.0");
    smi_field_value(SMI_VM, ids[2], &ctx, &s.vms[0], true, buf, sizeof(buf));
    assert_string_equal(buf, "256 MiB");
    smi_field_value(SMI_VM, ids[2], &ctx, &s.vms[1], true, buf, sizeof(buf));
    assert_string_equal(buf, "[Unlimited]");
    smi_field_value(SMI_VM, ids[3], &ctx, &s.vms[0], true, buf, sizeof(buf));
    assert_string_equal(buf, "[N/A]");
    smi_snapshot_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests_name("smi", tests, NULL, NULL);
}
