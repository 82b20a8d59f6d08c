/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * systemd's service notifications (sd_notify(3), Type=notify): READY=1 once
 * the sockets listen and the backend is up, STATUS= lines, WATCHDOG=1 from
 * the I/O thread's loop, STOPPING=1. No-ops when NOTIFY_SOCKET is unset (not
 * started by systemd) or when built without libsystemd. I/O thread only.
 */
#ifndef VGPU_MEDIATOR_NOTIFY_H
#define VGPU_MEDIATOR_NOTIFY_H

struct vgpu_mediator;

#ifdef HAVE_LIBSYSTEMD
/* READY=1 with a first STATUS=; reads WATCHDOG_USEC. */
void vgpu_notify_ready(struct vgpu_mediator *m);
/* The I/O loop's epoll timeout: at most max_ms, shorter when the next
 * watchdog ping is due sooner. */
int vgpu_notify_timeout_ms(int max_ms);
/* Each turn of the I/O loop: WATCHDOG=1 every half WATCHDOG_USEC, STATUS=
 * when the number of VMs changed (at most once a second). */
void vgpu_notify_tick(struct vgpu_mediator *m);
/* STOPPING=1: the daemon has begun to shut down. */
void vgpu_notify_stopping(void);

#else /* built without libsystemd (libsystemd-dev): notify.c is left out */
#include <stdlib.h>
#include "log.h"

static inline void vgpu_notify_ready(struct vgpu_mediator *m)
{
    (void)m;
    if (getenv("NOTIFY_SOCKET")) {
        log_warn("NOTIFY_SOCKET is set but this vgpu-mediator was built without libsystemd "
                 "(libsystemd-dev at build time): no READY=1, a Type=notify unit will time out");
    }
}

static inline int vgpu_notify_timeout_ms(int max_ms)
{
    return max_ms;
}

static inline void vgpu_notify_tick(struct vgpu_mediator *m)
{
    (void)m;
}

static inline void vgpu_notify_stopping(void)
{
}
#endif /* HAVE_LIBSYSTEMD */

#endif /* VGPU_MEDIATOR_NOTIFY_H */
