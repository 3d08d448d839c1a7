/*
 * control.h - the local control socket: how `tern queue ...` and `tern
 * mailq` talk to the running daemon.
 *
 * A unix stream socket at <spool_dir>/control.sock, mode 0600, owned by the
 * daemon's user (the spool directory itself is 0700); a client must also
 * be that user or root (checked with SO_PEERCRED).
 *
 * The public queue socket (control_public_path: tern-queue.sock beside the
 * local_socket), mode 0666, speaks the same protocol to anyone, and decides
 * per request with SO_PEERCRED: root and the daemon's user may do
 * everything; others may only `list` and `mailq`, when queue_list_users
 * lets them (anyone, none, user names, %groups; like Postfix's
 * authorized_mailq_users), and they get what mailq shows: the recipients
 * still to be delivered, without client, ENVID, ORCPT, original address
 * or relay. Never `show` (the message's header section) for them, and at
 * most 32 of their connections at once (then "error: busy: ...").
 *
 * One request per connection:
 *
 *   request  one line, at most 1024 octets, ending in LF:
 *            [json ] VERB [ARG]
 *            VERB: list [DOMAIN] | mailq [DOMAIN] | show QID |
 *                  flush [DOMAIN|QID] | hold QID | release QID |
 *                  delete QID | bounce QID | reload
 *            "json " asks for a JSON reply body.
 *   reply    "ok\n" or "error: TEXT\n", then the body (text, or one JSON
 *            object and a newline), then the daemon closes the connection.
 *
 * docs/queue-tools.md documents the bodies. What each verb does is
 * control/qops.h's (the HTTP API runs the same code); this file is the
 * socket, the peer checks and the protocol. Never blocks the loop.
 */
#ifndef TERN_CONTROL_H
#define TERN_CONTROL_H

#include <uv.h>

#include "common/config.h"
#include "lib/buf.h"

#define CONTROL_SOCKET_NAME "control.sock"
#define CONTROL_MAX_REQUEST 1024

typedef struct control control_t;

/* What the control socket needs of the daemon, and nothing more. */
typedef struct control_ctx {
	uv_loop_t *loop;
	config_t *const *cfg; /* the configuration in force: *cfg at each use (SIGHUP swaps it) */
	struct queue *queue;  /* the spool (control.sock lives there; show reads it) */
	struct sched *sched;  /* the queue's index: list, flush, hold, release, delete, bounce */
	/* the daemon's reload (what SIGHUP does): 0 or -1, what happened in
	 * *text (one line); NULL: no reload here */
	int (*reload)(void *arg, buf_t *text);
	void *reload_arg;
} control_ctx_t;

/*
 * Listen on <spool_dir>/control.sock. A stale socket file (nobody
 * answering) is replaced; if another daemon answers on it, this fails.
 * Blocking (start-up only). ctx is copied. NULL with a message in *err.
 */
control_t *control_start(const control_ctx_t *ctx, buf_t *err);
/* The public queue socket's path (allocated): "tern-queue.sock" in the
 * directory of local_socket, or beside spool_dir when local_socket is off. */
char *control_public_path(const config_t *c);
/* Bind and listen on the public queue socket (mode 0666), before the
 * privileges are dropped (its directory may be root's); control_start
 * serves it. A socket nobody answers on is replaced. -1 with *err: the
 * daemon runs on without it (only root and its user can list the queue). */
int control_bind_public(const config_t *c, buf_t *err);
/* Stop listening and close every connection (requests waiting for the
 * scheduler get no reply); c is freed once its handles are closed, while
 * the loop runs. Unlinks the socket file. */
void control_stop(control_t *c);

#endif
