/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * mediator/log.c's two formats: "<P>message" when stderr is the journal
 * (JOURNAL_STREAM equal to stderr's st_dev:st_ino), the timestamped line
 * otherwise (no JOURNAL_STREAM, another stream's, or a malformed one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <regex.h>

#include "mediator/log.h"

static int saved_stderr = -1;

/* stderr to a fresh temporary file; its st_dev:st_ino in js. */
static FILE *capture(char *js, size_t len)
{
    FILE *f = tmpfile();
    struct stat st;

    assert_non_null(f);
    assert_int_equal(fstat(fileno(f), &st), 0);
    snprintf(js, len, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    if (saved_stderr < 0) {
        saved_stderr = dup(STDERR_FILENO);
    }
    assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
    return f;
}

/* Restores stderr and returns what was written (malloc'ed). */
static char *captured(FILE *f)
{
    static char buf[8192];
    size_t n;

    dup2(saved_stderr, STDERR_FILENO);
    rewind(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

static void log_each_level(void)
{
    vgpu_log_set_level(VGPU_LOG_DEBUG);
    log_error("boom %d", 1);
    log_warn("careful %s", "there");
    log_info("ready");
    log_debug("detail");
}

static void test_journal_format(void **state)
{
    char js[64];
    FILE *f;
    char *out;

    (void)state;
    f = capture(js, sizeof(js));
    setenv("JOURNAL_STREAM", js, 1);
    vgpu_log_init();
    assert_true(vgpu_log_to_journal());
    log_each_level();
    out = captured(f);
    assert_string_equal(out, "<3>boom 1\n<4>careful there\n<6>ready\n<7>detail\n");
    free(out);
}

static void check_plain(const char *js_or_null)
{
    char js[64];
    regex_t re;
    FILE *f;
    char *out;

    f = capture(js, sizeof(js));
    if (js_or_null) {
        setenv("JOURNAL_STREAM", js_or_null, 1);
    } else {
        unsetenv("JOURNAL_STREAM");
    }
    vgpu_log_init();
    assert_false(vgpu_log_to_journal());
    log_each_level();
    out = captured(f);
    assert_int_equal(regcomp(&re,
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z vgpu-mediator\\[[0-9]+\\] "
        "error boom 1\n"
        "[^\n]+Z vgpu-mediator\\[[0-9]+\\] warn  careful there\n"
        "[^\n]+Z vgpu-mediator\\[[0-9]+\\] info  ready\n"
        "[^\n]+Z vgpu-mediator\\[[0-9]+\\] debug detail\n$", REG_EXTENDED), 0);
    if (regexec(&re, out, 0, NULL, 0) != 0) {
        fail_msg("not the plain format (JOURNAL_STREAM %s):\n%s", js_or_null ? js_or_null : "unset",
                 out);
    }
    assert_null(strchr(out, '<'));
    regfree(&re);
    free(out);
}

static void test_plain_without_journal_stream(void **state)
{
    (void)state;
    check_plain(NULL);
}

static void test_plain_when_another_stream(void **state)
{
    struct stat st;
    char other[64];

    (void)state;
    /* systemd's stream, but stderr was redirected since (a shell, a test) */
    assert_int_equal(stat("/", &st), 0);
    snprintf(other, sizeof(other), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    check_plain(other);
}

static void test_plain_when_malformed(void **state)
{
    (void)state;
    check_plain("");
    check_plain("12");
    check_plain("12:34:56");
    check_plain("x:y");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_format),
        cmocka_unit_test(test_plain_without_journal_stream),
        cmocka_unit_test(test_plain_when_another_stream),
        cmocka_unit_test(test_plain_when_malformed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
