/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/* Built only with libsystemd (mediator/meson.build); notify.h has the stubs. */
#include "notify.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "mediator.h"
#include "util.h"

static struct {
    bool     on;                /* NOTIFY_SOCKET was set */
    uint64_t wd_every_ns;       /* half of WATCHDOG_USEC; 0: no watchdog */
    uint64_t wd_last_ns;
    uint64_t status_last_ns;
    unsigned status_vms;        /* as the last STATUS= said */
} nt;

static void send_status(struct vgpu_mediator *m, const char *prefix, uint64_t now)
{
    /* nsessions changes on the I/O thread only, the thread calling here. */
    unsigned vms = m->nsessions;
    int r;

    r = sd_notifyf(0, "%sSTATUS=%u VM%s, backend %s, GPU %s", prefix, vms, vms == 1 ? "" : "s",
                   m->bops->name, m->gpu.name[0] ? m->gpu.name : "none");
    if (r < 0) {
        log_warn("sd_notify: %s", strerror(-r));
    }
    nt.status_vms = vms;
    nt.status_last_ns = now;
}

void vgpu_notify_ready(struct vgpu_mediator *m)
{
    uint64_t usec = 0;
    uint64_t now = vgpu_now_ns();
    int r;

    nt.on = getenv("NOTIFY_SOCKET") != NULL;
    if (!nt.on) {
        return;
    }
    /* > 0 only when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is us). */
    r = sd_watchdog_enabled(0, &usec);
    if (r > 0 && usec > 0) {
        /* sd_watchdog_enabled(3): ping at half the interval. */
        nt.wd_every_ns = usec * 1000 / 2;
        nt.wd_last_ns = now;
        log_info("systemd watchdog: WATCHDOG=1 every %llu ms",
                 (unsigned long long)(nt.wd_every_ns / 1000000));
    } else if (r < 0) {
        log_warn("WATCHDOG_USEC: %s; no watchdog pings", strerror(-r));
    }
    send_status(m, "READY=1\n", now);
}

int vgpu_notify_timeout_ms(int max_ms)
{
    uint64_t now, due, ms;

    if (!nt.wd_every_ns) {
        return max_ms;
    }
    /* Until the next ping is due, not a whole interval: a loop woken by
     * traffic just before it would otherwise wait nearly two. */
    now = vgpu_now_ns();
    due = nt.wd_last_ns + nt.wd_every_ns;
    ms = due > now ? (due - now + 999999) / 1000000 : 0;
    return ms < (uint64_t)max_ms ? (int)ms : max_ms;
}

void vgpu_notify_tick(struct vgpu_mediator *m)
{
    uint64_t now;

    if (!nt.on) {
        return;
    }
    now = vgpu_now_ns();
    if (nt.wd_every_ns && now - nt.wd_last_ns >= nt.wd_every_ns) {
        (void)sd_notify(0, "WATCHDOG=1");
        nt.wd_last_ns = now;
    }
    /* A VM attaching or leaving; a storm of them is said once a second. */
    if (m->nsessions != nt.status_vms && now - nt.status_last_ns >= 1000000000ull) {
        send_status(m, "", now);
    }
}

void vgpu_notify_stopping(void)
{
    if (nt.on) {
        (void)sd_notify(0, "STOPPING=1\nSTATUS=stopping");
    }
}
