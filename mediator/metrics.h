/* SPDX-License-Identifier: GPL-2.0-or-later OR MIT */
/*
 * Prometheus metrics over HTTP (--metrics-listen), built only with
 * libmicrohttpd (HAVE_MICROHTTPD); main.c refuses the option without it.
 */
#ifndef VGPU_MEDIATOR_METRICS_H
#define VGPU_MEDIATOR_METRICS_H

struct vgpu_mediator;

/* Starts serving when cfg.metrics_listen is set (main thread, after the
 * signal mask). 0 or -errno (logged). */
int vgpu_metrics_start(struct vgpu_mediator *m);
void vgpu_metrics_stop(struct vgpu_mediator *m);   /* before the sessions go */

#endif /* VGPU_MEDIATOR_METRICS_H */
