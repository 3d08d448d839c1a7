/*
 * session.h - one SMTP server session (RFC 5321 §4), internal to smtpd/.
 */
#ifndef TERN_SESSION_H
#define TERN_SESSION_H

#include <stdbool.h>

#include "common/config.h"
#include "common/passwd_db.h"
#include "common/table.h"
#include "lib/conn.h"
#include "smtpd/auth.h"

struct server;
typedef struct session session_t;

/* Called by server.c for an accepted connection; the session owns conn and
 * tells the server when it is gone (server_session_gone). */
session_t *session_new(struct server *srv, conn_t *conn, enum listen_mode mode);
/* Shutting down: 421 now if idle, else as soon as the transaction ends. */
void session_shutdown(session_t *s);

/* server.c side */
void server_session_gone(struct server *srv, session_t *s, const char *ip);
struct smtpd_ctx *server_ctx(struct server *srv);
/* shared by all sessions, renewed by server_reload(): do not keep across events */
SSL_CTX *server_tls_ctx(struct server *srv);      /* NULL: no TLS */
const passwd_db_t *server_auth_db(struct server *srv); /* NULL: no password file */
/* auth_backend = dovecot: the one client all sessions share, else NULL */
struct dvauth *server_auth_dovecot(struct server *srv);
const table_t *server_sender_login(struct server *srv);
/* header/body checks (NULL: none); a session takes a reference to keep them */
struct content_checks *server_content_checks(struct server *srv);

#endif
