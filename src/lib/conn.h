/*
 * conn.h - one buffered, non-blocking stream connection on the event loop.
 *
 * Below: a libuv TCP handle or a unix-domain socket (uv_pipe_t); TLS through
 * OpenSSL memory BIOs is layered here too, so the SMTP code above never sees
 * records, only bytes: libuv does all socket I/O, OpenSSL only turns bytes
 * into records and back (it never touches the socket, so a handshake never
 * blocks the loop).
 * Above: a handful of events delivered to one callback:
 *   CONN_EV_CONNECTED  an outbound connect finished
 *   CONN_EV_DATA       new input is in conn_input(); consume what you use
 *   CONN_EV_DRAINED    everything written so far has left our buffers
 *                      (the low-water mark: used for back-pressure)
 *   CONN_EV_TIMEOUT    no input for the configured time (the connection
 *                      stays open: the owner decides)
 *   CONN_EV_CLOSED     the connection is gone (peer closed, error, or after
 *                      conn_close()); err is 0 or a libuv error code.
 *                      Delivered exactly once; the conn is freed when the
 *                      callback returns.
 *   CONN_EV_TLS_READY  the handshake started by conn_starttls() finished;
 *                      from now on conn_input() holds plaintext and
 *                      conn_write() takes plaintext. A failed handshake
 *                      (or one that times out: the conn timeout bounds it)
 *                      ends in CONN_EV_CLOSED instead, with err UV_EPROTO
 *                      or UV_ETIMEDOUT and conn_tls_error() saying why.
 *
 * Output written with conn_write() is queued and flushed when the event
 * callback returns (so a burst of pipelined replies leaves in one write),
 * or at once with conn_flush(). Input is read into a bounded buffer: once
 * it holds max_input bytes, reading pauses until the owner consumes.
 * Reading can also be paused explicitly (while a commit is in flight).
 * Never blocks.
 */
#ifndef TERN_CONN_H
#define TERN_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>
#include <openssl/ssl.h>

#include "lib/buf.h"

typedef struct conn conn_t;

enum conn_event {
	CONN_EV_CONNECTED,
	CONN_EV_DATA,
	CONN_EV_DRAINED,
	CONN_EV_TIMEOUT,
	CONN_EV_CLOSED,
	CONN_EV_TLS_READY,
};

typedef void (*conn_cb)(conn_t *c, enum conn_event ev, int err, void *arg);

/* Accept a pending connection on server; NULL (and nothing to free) on failure. */
conn_t *conn_accept(uv_loop_t *loop, uv_stream_t *server, size_t max_input, conn_cb cb, void *arg);
/* Start an outbound connection; CONN_EV_CONNECTED or CONN_EV_CLOSED follows.
 * timeout_ms bounds the connect. src may be NULL. */
conn_t *conn_connect(uv_loop_t *loop, const struct sockaddr *dst, const struct sockaddr *src,
    unsigned timeout_ms, size_t max_input, conn_cb cb, void *arg);

/* The same over a unix-domain stream socket (LMTP "unix:/path"). */
conn_t *conn_connect_unix(uv_loop_t *loop, const char *path, unsigned timeout_ms, size_t max_input,
    conn_cb cb, void *arg);

void conn_set_cb(conn_t *c, conn_cb cb, void *arg);

/*
 * Start TLS on the connection (RFC 3207 STARTTLS, RFC 8314 implicit TLS).
 * Output already queued (the "220 Ready to start TLS") leaves in clear
 * before the first record; input already buffered is DISCARDED: anything
 * a client pipelined after STARTTLS came before the handshake and must not
 * be taken as sent under TLS (RFC 3207 §4.2, CVE-2011-0411).
 * server: accept; else connect, with sni (may be NULL) as the SNI name and
 * the name the certificate is checked against (a host name, or an IP
 * literal checked against the IP SANs; see conn_tls_verify()).
 * Renegotiation is refused. CONN_EV_TLS_READY or CONN_EV_CLOSED follows.
 * Returns 0, or -1 (TLS already on, closing, or OpenSSL failed).
 */
int conn_starttls(conn_t *c, SSL_CTX *ctx, bool server, const char *sni);
/* The same, client side, with prep(ssl, arg) called on the new session
 * after the SNI and reference name are set and before the ClientHello
 * (to turn DANE on: tls_dane_setup()); prep returning -1 fails the call
 * (-1, nothing started, conn_tls_error() says "TLS set-up failed"). */
int conn_starttls_prep(conn_t *c, SSL_CTX *ctx, const char *sni, int (*prep)(SSL *, void *),
    void *arg);
/* the TLS session once conn_starttls() has started one, else NULL */
SSL *conn_tls_ssl(conn_t *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" once the handshake is done, else NULL. */
const char *conn_tls_info(conn_t *c);
bool conn_tls_active(const conn_t *c);
/* Client side, after CONN_EV_TLS_READY: true when the peer's certificate
 * chains to a trusted CA and matches the name given to conn_starttls();
 * else false with *why set (static or owned by c). */
bool conn_tls_verify(conn_t *c, const char **why);
/* why the handshake or the TLS session failed; "" when it did not */
const char *conn_tls_error(const conn_t *c);

/* Input not yet consumed by the owner. */
buf_t *conn_input(conn_t *c);
void conn_consume(conn_t *c, size_t n);
/* Pause or resume reading from the socket (input already buffered stays). */
void conn_read_pause(conn_t *c, bool paused);
/* Re-deliver CONN_EV_DATA for buffered input on the next loop turn
 * (after a pause ends and there is unprocessed input). */
void conn_kick(conn_t *c);

void conn_write(conn_t *c, const void *p, size_t n);
void conn_printf(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void conn_flush(conn_t *c);
/* bytes queued or in flight, not yet handed to the kernel */
size_t conn_pending_output(const conn_t *c);

/* No-input timeout in ms (0 = none); restarted by every read. */
void conn_set_timeout(conn_t *c, unsigned ms);
/* Like conn_set_timeout, but input does not restart it: CONN_EV_TIMEOUT
 * comes ms after this call however the peer trickles bytes in (a deadline
 * for one whole command line, against one-byte-a-second clients). */
void conn_set_deadline(conn_t *c, unsigned ms);

/* Flush what is queued, then close. CONN_EV_CLOSED follows (later, never
 * from inside this call). Safe to call more than once. */
void conn_close(conn_t *c);
bool conn_closing(const conn_t *c);
/* Close at once, dropping unsent output (a peer that stopped reading, a
 * timeout). CONN_EV_CLOSED follows with err, later. */
void conn_abort(conn_t *c, int err);

/* Peer address: numeric host text ("127.0.0.1", "::1"; IPv4-mapped shown
 * as IPv4) and port. */
const char *conn_peer_ip(const conn_t *c);
int conn_peer_port(const conn_t *c);
const struct sockaddr *conn_peer_addr(const conn_t *c);
const struct sockaddr *conn_local_addr(const conn_t *c);
/* A unix-domain peer's credentials (SO_PEERCRED, taken at accept); -1 for
 * TCP connections. conn_peer_ip() says "local" for those. */
int conn_peer_cred(const conn_t *c, uid_t *uid, gid_t *gid, pid_t *pid);
bool conn_is_local(const conn_t *c);

#endif
