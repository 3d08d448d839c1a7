/*
 * daemon.h - the running daemon's shared state.
 *
 * One tern_t exists per process; every module running on the event loop
 * reaches the current configuration and tables through it (never caching
 * them across a callback), so a SIGHUP can swap both between two events.
 * Worker threads never touch it: they get copies of what they need.
 */
#ifndef TERN_DAEMON_H
#define TERN_DAEMON_H

#include <stdbool.h>
#include <uv.h>

#include "common/config.h"
#include "common/tables.h"
#include "queue/queue.h"

struct sched;
struct server;

typedef struct tern {
	uv_loop_t *loop;
	config_t *cfg;
	tables_t *tables;
	queue_t *queue;
	struct sched *sched;
	struct server *server;
	bool stopping;
} tern_t;

#endif
