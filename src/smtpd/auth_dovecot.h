/*
 * auth_dovecot.h - SMTP AUTH against Dovecot: a client of Dovecot's
 * authentication socket (auth_backend = dovecot; the protocol Postfix's
 * smtpd_sasl_type = dovecot speaks, lines in auth_dovecot_proto.h).
 *
 * One connection, shared by every session: each AUTH is a request with its
 * own id, so many are in flight at once. tern relays the SASL exchange
 * (the client's base64 responses to Dovecot, Dovecot's challenges back as
 * 334), so Dovecot checks the password with its own passdb and policy
 * (disable_plaintext_auth sees "secured", login_trusted_networks and
 * auth penalties see the client's address).
 *
 * Guarantees:
 *  - never blocks: connect, handshake, reads and writes run on the loop
 *    (lib/conn.h); every wait is bounded by the timeout (connect and
 *    handshake; each request from the moment it is sent or continued);
 *  - bounded: input lines DVPROTO_MAX_LINE, the mechanism list 32 entries;
 *  - a request not answered in time fails alone (DVAUTH_TEMP; a late
 *    answer is ignored); a lost or failed connection, or a handshake not
 *    done in time, fails everything in flight as DVAUTH_TEMP, and the next
 *    request (or a retry timer, 1 s doubling to 30 s) connects again;
 *  - the callback of a request runs from the loop, never from inside
 *    dvauth_begin() or dvauth_continue(), and never after dvauth_abort();
 *    after DVAUTH_OK, DVAUTH_FAIL or DVAUTH_TEMP the request is gone.
 * Must not: log credentials (a response is passed through, never logged).
 */
#ifndef TERN_AUTH_DOVECOT_H
#define TERN_AUTH_DOVECOT_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "lib/buf.h"

typedef struct dvauth dvauth_t;
typedef struct dvauth_req dvauth_req_t;

enum dvauth_result {
	DVAUTH_CONT, /* text: the challenge (base64, maybe ""): say "334 text", then dvauth_continue() */
	DVAUTH_OK,   /* text: the user name Dovecot authenticated */
	DVAUTH_FAIL, /* text: Dovecot's reason (for the log) or NULL */
	DVAUTH_TEMP, /* text: why (Dovecot down, slow, or FAIL temp), for the log */
};

typedef void (*dvauth_cb)(void *arg, enum dvauth_result r, const char *text);

/* A client for addr, a dovecot_auth_socket value (an absolute path, or
 * "unix:" and one, or "inet:HOST:PORT" with a numeric IPv4 HOST or a
 * bracketed IPv6 one; checked by the configuration); it connects at once. */
dvauth_t *dvauth_new(uv_loop_t *loop, const char *addr, unsigned timeout_ms);
/* A reload: a new address drops the connection (in flight: DVAUTH_TEMP)
 * and connects to the new one; the timeout applies to new waits. */
void dvauth_configure(dvauth_t *c, const char *addr, unsigned timeout_ms);
/* Stop: fail what is in flight (DVAUTH_TEMP), close the connection and
 * the timer; dvauth_free() afterwards (the loop must run in between for
 * the handles to close, or dvauth_free() leaves the rest to them). */
void dvauth_close(dvauth_t *c);
void dvauth_free(dvauth_t *c);

/* The mechanisms to announce in EHLO (" PLAIN LOGIN": each with a leading
 * space) for a session with or without TLS: those Dovecot announced that
 * tern relays (PLAIN, LOGIN), minus private ones and, without TLS,
 * plaintext ones; before Dovecot was ever reached, PLAIN and LOGIN (an
 * AUTH then gets 454 until it answers). Returns how many. */
size_t dvauth_mechs(const dvauth_t *c, bool tls, buf_t *out);
/* May a session use mech (as the client wrote it, any case)? On success
 * *canon is the name to pass to dvauth_begin (static). */
bool dvauth_mech_ok(const dvauth_t *c, const char *mech, size_t n, bool tls, const char **canon);

typedef struct dvauth_params {
	const char *mech;    /* from dvauth_mech_ok() */
	const char *session; /* tern's session id */
	bool tls;
	const char *lip, *rip;
	int lport, rport;
	const char *resp;    /* initial response, base64 ("" for "="), or NULL */
	size_t resp_len;
} dvauth_params_t;

/* Start one authentication; cb follows (from the loop). NULL only when
 * the parameters cannot be sent (resp not base64): nothing started. */
dvauth_req_t *dvauth_begin(dvauth_t *c, const dvauth_params_t *p, dvauth_cb cb, void *arg);
/* The client's answer to a DVAUTH_CONT (base64); -1 when it is not base64
 * (the request is then still waiting for an answer, or to be aborted). */
int dvauth_continue(dvauth_req_t *r, const char *resp, size_t n);
/* Forget r (the session ends or cancels): no callback after this. */
void dvauth_abort(dvauth_req_t *r);

#endif
