/*
 * privsep.h - privilege separation: a small root parent that opens secrets.
 *
 * The daemon drops root after binding its ports, but the files it reloads
 * on SIGHUP (the TLS certificate and key, the password file auth_users, the
 * relayhost credentials) are often root:root 0600 (openssl, certbot). So,
 * started as root, tern forks before anything else (privsep_start()):
 *  - the parent stays root and does only three things: it opens, read-only,
 *    the secret files that ITS OWN configuration names (parsed at start,
 *    again at every SIGHUP before the signal is passed on, and again before
 *    each request, so never older than the daemon's) and hands the
 *    open descriptor to the child over a socketpair (SCM_RIGHTS); it passes
 *    SIGHUP, SIGTERM, SIGINT and SIGUSR1 on to the child; and when the child
 *    ends it removes the local socket and the public queue socket beside it
 *    that the child may have left (in root's /run/tern), and exits
 *    with the child's status (a child killed by a signal: 128 + signal). It
 *    keeps no other descriptor, reads no network, and confines itself with
 *    the same seccomp filter and a Landlock rule set allowing no writes but
 *    removing files in the local socket's directory (unless sandbox = no).
 *  - the child is the daemon as before (privilege drop, sandbox); it asks
 *    the parent for each secret, at start and at each reload, through
 *    secret_read() (common/secret.h), which this module points at the
 *    parent.
 * What the parent grants: a request names a kind (tls_cert, tls_key,
 * auth_users, relayhost_auth_file, srs_secret_file, a tls_certificate
 * line's certificate or key) and a path; it is served only when the path is, byte for byte, one
 * the parent's configuration gives that kind (secret_config_names()), the
 * file opened is a regular file, and, for the secret kinds (all but the
 * certificates), secret_file_problem() finds nothing wrong with it. Anything
 * else (unknown kind, other path, malformed message, a descriptor sent to
 * it) gets a refusal with the reason in text; the channel stays usable.
 *
 * Not started as root there is no parent: secret_read() opens the file
 * itself, with the same checks (secret_file_problem()).
 * Must not: be used from worker threads (one request at a time, blocking);
 * the parent must never parse anything from the child but the fixed request.
 */
#ifndef TERN_PRIVSEP_H
#define TERN_PRIVSEP_H

#include <stdbool.h>

#include "common/secret.h"
#include "lib/buf.h"

struct config;

/*
 * Called as root with the configuration just loaded, before the event loop
 * or any thread exists: fork. Returns 0 in the child, which then owns the
 * channel and has made it secret_read()'s opener (common/secret.h); the
 * parent never returns (it serves, then exits with the child's status).
 * -1 with *err when the socketpair or fork fails.
 */
int privsep_start(const struct config *c, buf_t *err);

/* In the child, once privileges are dropped and its signal handlers are in
 * place: unblock the signals (blocked since the fork) and get SIGTERM if
 * the parent dies (a change of credentials clears that, so it is set here). */
void privsep_child_ready(void);

/* true in the child of privsep_start() */
bool privsep_active(void);

/* ---- the two ends of the protocol, exposed for the unit tests ---- */

/* The parent's side: read one request from sock and answer it by the
 * configuration c. 0 when a request was answered (granted or refused);
 * -1 when the channel is closed or broken. */
int privsep_serve_one(int sock, const struct config *c);

/* The child's side: ask for (k, path) on sock. The open descriptor, or -1
 * with the parent's reason in *err. */
int privsep_request(int sock, enum secret_kind k, const char *path, buf_t *err);

#endif
