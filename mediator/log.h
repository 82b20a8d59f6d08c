/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Mediator logging: one line per call on stderr, with a wall-clock timestamp
 * and a level. Lines are formatted into a local buffer and written with a
 * single write(2), so lines from several threads never interleave. When
 * stderr is the journal (systemd's JOURNAL_STREAM names it), a line is only
 * "<P>message" (sd-daemon(3)'s syslog priority prefix): journald adds the
 * time, name and pid itself, and `journalctl -p err` filters on P.
 */
#ifndef VGPU_MEDIATOR_LOG_H
#define VGPU_MEDIATOR_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum vgpu_log_level {
    VGPU_LOG_ERROR = 0,
    VGPU_LOG_WARN  = 1,
    VGPU_LOG_INFO  = 2,
    VGPU_LOG_DEBUG = 3,
};

/* Looks again whether stderr is the journal (JOURNAL_STREAM "DEV:INO" equal to
 * stderr's st_dev:st_ino); the first log line does it when nobody called it. */
void vgpu_log_init(void);
/* Whether lines go out in the journal's format. */
bool vgpu_log_to_journal(void);
void vgpu_log_set_level(int level);
int vgpu_log_get_level(void);
/* "error", "warn", "info", "debug" (or 0..3) -> level; -EINVAL otherwise. */
int vgpu_log_parse_level(const char *s);

void vgpu_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes text as-is (no prefix), for multi-line dumps such as the stats table. */
void vgpu_log_raw(const char *text, unsigned long len);

#define log_error(...) vgpu_log(VGPU_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  vgpu_log(VGPU_LOG_WARN, __VA_ARGS__)
#define log_info(...)  vgpu_log(VGPU_LOG_INFO, __VA_ARGS__)
#define log_debug(...) vgpu_log(VGPU_LOG_DEBUG, __VA_ARGS__)

/*
 * Rate limit for messages a peer can trigger at will (systemd's
 * RateLimit): at most burst messages per interval; the next allowed message
 * reports how many were suppressed. Not thread-safe: protect it with the lock
 * of the object that owns it.
 */
struct vgpu_ratelimit {
    uint64_t interval_ns;
    uint32_t burst;
    uint32_t count;
    uint64_t begin_ns;
    uint64_t suppressed;
};

#define VGPU_RATELIMIT_INIT(interval_ms, burst_) \
    { .interval_ns = (uint64_t)(interval_ms) * 1000000ull, .burst = (burst_) }

/* true when a message may be logged now; *suppressed gets the count dropped since. */
bool vgpu_ratelimit_ok(struct vgpu_ratelimit *rl, uint64_t *suppressed);

#endif /* VGPU_MEDIATOR_LOG_H */
