/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static int log_level = VGPU_LOG_INFO;

static const char *const level_names[] = { "error", "warn", "info", "debug" };
/* syslog's LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
static const int level_prio[] = { 3, 4, 6, 7 };

/* 0: not looked yet, 1: plain lines, 2: the journal. Racing first lines
 * compute the same answer, so a relaxed store is enough. */
static int log_dest;

void vgpu_log_init(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    int n = 0;
    bool journal = js && sscanf(js, "%llu:%llu%n", &dev, &ino, &n) == 2 && js[n] == '\0' &&
                   fstat(STDERR_FILENO, &st) == 0 &&
                   (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;

    __atomic_store_n(&log_dest, journal ? 2 : 1, __ATOMIC_RELAXED);
}

bool vgpu_log_to_journal(void)
{
    if (__atomic_load_n(&log_dest, __ATOMIC_RELAXED) == 0) {
        vgpu_log_init();
    }
    return __atomic_load_n(&log_dest, __ATOMIC_RELAXED) == 2;
}

void vgpu_log_set_level(int level)
{
    if (level < VGPU_LOG_ERROR) {
        level = VGPU_LOG_ERROR;
    }
    if (level > VGPU_LOG_DEBUG) {
        level = VGPU_LOG_DEBUG;
    }
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

int vgpu_log_get_level(void)
{
    return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

int vgpu_log_parse_level(const char *s)
{
    for (int i = 0; i <= VGPU_LOG_DEBUG; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        return VGPU_LOG_WARN;
    }
    if (s[0] >= '0' && s[0] <= '3' && s[1] == '\0') {
        return s[0] - '0';
    }
    return -EINVAL;
}

static void write_all(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return; /* nowhere left to complain */
        }
        buf += n;
        len -= (size_t)n;
    }
}

void vgpu_log(int level, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n, m;

    if (level > vgpu_log_get_level()) {
        return;
    }
    if (level < VGPU_LOG_ERROR) {
        level = VGPU_LOG_ERROR;
    }
    if (level > VGPU_LOG_DEBUG) {
        level = VGPU_LOG_DEBUG;
    }
    if (vgpu_log_to_journal()) {
        n = snprintf(line, sizeof(line), "<%d>", level_prio[level]);
    } else {
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ vgpu-mediator[%d] %-5s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000, (int)getpid(), level_names[level]);
    }
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) {
        m = 0;
    }
    n += m;
    if ((size_t)n > sizeof(line) - 2) {
        n = sizeof(line) - 2; /* truncated */
    }
    line[n++] = '\n';
    write_all(line, (size_t)n);
}

void vgpu_log_raw(const char *text, unsigned long len)
{
    write_all(text, len);
}

bool vgpu_ratelimit_ok(struct vgpu_ratelimit *rl, uint64_t *suppressed)
{
    uint64_t now = vgpu_now_ns();

    *suppressed = 0;
    if (rl->begin_ns == 0 || now - rl->begin_ns >= rl->interval_ns) {
        *suppressed = rl->suppressed;
        rl->begin_ns = now;
        rl->count = 0;
        rl->suppressed = 0;
    }
    if (rl->count < rl->burst) {
        rl->count++;
        return true;
    }
    rl->suppressed++;
    return false;
}
