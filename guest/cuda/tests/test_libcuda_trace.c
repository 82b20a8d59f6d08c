/* SPDX-License-Identifier: MIT */
/*
 * The call tracer (VGPU_CUDA_TRACE), on the fake host. Run once per level
 * (the level is read once per process): 0, 2 (failures) and 3 (every call).
 * What the library writes to stderr goes to a file the tests read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cuda.h>

#include "../cuda_internal.h"

extern char s_cuMemAlloc_v2[] __asm__("cuMemAlloc_v2");

static int level;
static FILE *err;          /* stderr, as the library writes it */
static int saved_stderr;   /* cmocka's (it reports failures there) */

/* From here to captured(), what the library writes to stderr goes to err. */
static void capture(void)
{
    fflush(stderr);
    assert_int_equal(ftruncate(fileno(err), 0), 0);
    rewind(err);
    assert_true(dup2(fileno(err), STDERR_FILENO) >= 0);
}

/* What the library wrote to stderr since capture() (a static buffer). */
static const char *captured(void)
{
    static char buf[4096];
    size_t n;

    fflush(stderr);
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    rewind(err);
    n = fread(buf, 1, sizeof(buf) - 1, err);
    buf[n] = '\0';
    return buf;
}

static void *proc(const char *name)
{
    void *fn = NULL;

    assert_int_equal(cuGetProcAddress_v2(name, &fn, 13000, 0, NULL), CUDA_SUCCESS);
    assert_non_null(fn);
    return fn;
}

static void test_failure(void **state)
{
    CUresult (*mem_alloc)(CUdeviceptr *, size_t) = proc("cuMemAlloc");

    (void)state;
    capture();
    /* the twin at 2 and above, the function itself otherwise */
    if (level >= 2) {
        assert_ptr_not_equal((void *)mem_alloc, (void *)s_cuMemAlloc_v2);
    } else {
        assert_ptr_equal((void *)mem_alloc, (void *)s_cuMemAlloc_v2);
    }
    assert_int_equal(mem_alloc(NULL, 16), CUDA_ERROR_INVALID_VALUE);
    assert_string_equal(captured(), level >= 2
        ? "libcuda(vgpu): cuMemAlloc_v2(0x0, 0x10) -> CUDA_ERROR_INVALID_VALUE (1)\n" : "");
}

static void test_success(void **state)
{
    CUresult (*init)(unsigned) = proc("cuInit");
    CUresult (*get)(CUdevice *, int) = proc("cuDeviceGet");
    CUdevice dev;

    (void)state;
    capture();
    assert_int_equal(init(0), CUDA_SUCCESS);
    assert_int_equal(get(&dev, 0), CUDA_SUCCESS);
    assert_int_equal(get(&dev, -2), CUDA_ERROR_INVALID_DEVICE);
    if (level >= 3) {
        char want[512];

        snprintf(want, sizeof(want),
                 "libcuda(vgpu): cuInit(0x0) -> CUDA_SUCCESS (0)\n"
                 "libcuda(vgpu): cuDeviceGet(%#llx, 0x0) -> CUDA_SUCCESS (0)\n"
                 "libcuda(vgpu): cuDeviceGet(%#llx, 0xfffffffe)"
                 " -> CUDA_ERROR_INVALID_DEVICE (101)\n",
                 (unsigned long long)(uintptr_t)&dev, (unsigned long long)(uintptr_t)&dev);
        assert_string_equal(captured(), want);
    } else if (level == 2) {
        assert_non_null(strstr(captured(), "cuDeviceGet(0x"));
    } else {
        assert_string_equal(captured(), "");
    }
}

/* Not supported: logged once, and at 2 and above every call, with its
 * arguments. */
static void test_unsupported(void **state)
{
    CUresult (*graph_create)(CUgraph *, unsigned) = proc("cuGraphCreate");
    static const char line[] =
        "libcuda(vgpu): cuGraphCreate(0x1234, 0x5) -> CUDA_ERROR_NOT_SUPPORTED (801)\n";
    static const char once[] = "libcuda(vgpu): cuGraphCreate is not supported\n";
    char want[512];

    (void)state;
    capture();
    assert_int_equal(graph_create((CUgraph *)0x1234, 5), CUDA_ERROR_NOT_SUPPORTED);
    assert_int_equal(graph_create((CUgraph *)0x1234, 5), CUDA_ERROR_NOT_SUPPORTED);
    if (level >= 2) {
        snprintf(want, sizeof(want), "%s%s%s", line, once, line);
    } else {
        snprintf(want, sizeof(want), "%s", once);
    }
    assert_string_equal(captured(), want);
}

/* A slot of an export table: context-local storage's get, with no place
 * for the value. */
static void test_export_table(void **state)
{
    static const uint8_t cls_id[16] = {
        0xc6, 0x93, 0x33, 0x6e, 0x11, 0x21, 0xdf, 0x11,
        0xa8, 0xc3, 0x68, 0xf3, 0x55, 0xd8, 0x95, 0x93,
    };
    CUresult (*cls_get)(void **, CUcontext, void *);
    CUuuid id;
    const void *t;

    (void)state;
    memcpy(id.bytes, cls_id, 16);
    assert_int_equal(cuGetExportTable(&t, &id), CUDA_SUCCESS);
    cls_get = ((void *const *)t)[2];
    capture();
    assert_int_equal(cls_get(NULL, (CUcontext)0x10, (void *)0x20), CUDA_ERROR_INVALID_VALUE);
    assert_string_equal(captured(), level >= 2
        ? "libcuda(vgpu): exportTable.cls_get(0x0, 0x10, 0x20) -> CUDA_ERROR_INVALID_VALUE (1)\n"
        : "");
}

/* A slot of unknown meaning (the tool hooks' first): it succeeds, doing
 * nothing, and says so from 2 on. */
static void test_unknown_slot(void **state)
{
    static const uint8_t hooks_id[16] = {
        0xa0, 0x94, 0x79, 0x8c, 0x2e, 0x74, 0x2e, 0x74,
        0x93, 0xf2, 0x08, 0x00, 0x20, 0x0c, 0x0a, 0x66,
    };
    CUresult (*slot)(void *, void *, void *, void *);
    CUuuid id;
    const void *t;

    (void)state;
    memcpy(id.bytes, hooks_id, 16);
    assert_int_equal(cuGetExportTable(&t, &id), CUDA_SUCCESS);
    slot = ((void *const *)t)[1];
    capture();
    assert_int_equal(slot((void *)1, (void *)2, (void *)3, (void *)4), CUDA_SUCCESS);
    assert_string_equal(captured(), level >= 2
        ? "libcuda(vgpu): exportTable.hooks[1](0x1, 0x2, 0x3, 0x4) -> CUDA_SUCCESS (0)\n" : "");
}

/* A structure passed by value is printed as its 8-byte words. */
static void test_wide_argument(void **state)
{
    struct { uint64_t a, b; uint32_t c, d; } s = { 0x11, 0x22, 0x33, 0 };
    const struct cu_trace_arg a[] = { CU_TRACE_ARG(s) };

    (void)state;
    capture();
    cu_trace_call("wide", a, 1, CUDA_ERROR_INVALID_VALUE);
    assert_string_equal(captured(), "libcuda(vgpu): wide({0x11, 0x22, 0x33})"
                                    " -> CUDA_ERROR_INVALID_VALUE (1)\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failure),
        cmocka_unit_test(test_success),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_export_table),
        cmocka_unit_test(test_unknown_slot),
        cmocka_unit_test(test_wide_argument),
    };
    const char *e = getenv("VGPU_CUDA_TRACE");

    level = e ? atoi(e) : 0;
    err = tmpfile();
    saved_stderr = dup(STDERR_FILENO);
    if (!err || saved_stderr < 0) {
        perror("test_libcuda_trace");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
