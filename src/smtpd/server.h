/*
 * server.h - ACCEPT: the SMTP listeners.
 *
 * Binds every "listen" of the configuration, accepts connections, enforces
 * the total and per-client-IP session limits (over a limit: 421 4.7.0 and
 * close), and runs one session (session.c) per connection, all on the one
 * event loop. server_stop() closes the listeners, says 421 to idle
 * sessions, lets commits in flight finish, and calls back when the last
 * session is gone.
 */
#ifndef TERN_SERVER_H
#define TERN_SERVER_H

#include <uv.h>

#include "common/config.h"
#include "common/tables.h"
#include "lib/buf.h"

typedef struct server server_t;

/*
 * What the SMTP side needs of the daemon, and nothing more. The daemon owns
 * it and keeps cfg and tables current (a SIGHUP swaps both between two
 * events): read them through the context at each event, never keep them.
 */
typedef struct smtpd_ctx {
	uv_loop_t *loop;
	const config_t *cfg;
	const tables_t *tables; /* RCPT: router_expand() */
	struct queue *queue;    /* where accepted mail is committed */
	struct sched *sched;    /* takes each committed message */
} smtpd_ctx_t;

/* Bind all listeners (before privileges are dropped). NULL on error, with
 * the reason in *err. ctx must outlive the server. Logs "listening on ADDR:PORT mode=MODE" for each. */
server_t *server_new(smtpd_ctx_t *ctx, buf_t *err);
/* Start accepting. */
int server_start(server_t *s);
void server_stop(server_t *s, void (*done)(void *arg), void *arg);
/* SIGHUP: load the TLS certificates and keys, the password file and the
 * sender_login table again from the current configuration (the context's),
 * each part on its own: a part that fails keeps its previous version while
 * the others apply; the log names each failure and what applied. 0, or -1
 * when some part failed. */
int server_reload(server_t *s);

/* What server_new() checks before it binds, without binding (for
 * check-config): the certificate and key, the password file and the
 * sender_login table load; smtps listeners have a certificate, submission
 * listeners a certificate and a password file; the local socket's
 * directory exists (or, as root, can be made). 0 or -1 with *err; lines
 * worth a warning (a certificate expired, a name two certificates of the
 * same key type serve) appended to *warn. */
int server_check(const config_t *c, buf_t *warn, buf_t *err);

/* The directory of local_socket: 0 when it exists. Missing: started as
 * root, tern makes it (when create, mode 0755, owned by "user") if its
 * parent exists; otherwise -1, "directory ... does not exist" in *err. */
int server_socket_dir(const config_t *c, bool create, buf_t *err);
void server_free(server_t *s);

#endif
