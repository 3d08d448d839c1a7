/*
 * conn.c - buffered non-blocking connection over a libuv TCP handle
 * (see conn.h for the event contract).
 *
 * Memory: an idle connection holds no input or output buffer. Reads land
 * in one 64 KiB buffer shared by the whole loop thread and only the bytes
 * received are copied into the connection's own input buffer, which is
 * released again once the owner has consumed everything; output buffers
 * are released when drained if they grew large. This keeps thousands of
 * idle sessions cheap.
 *
 * Events are delivered through emit(), which counts nesting so that
 * CONN_EV_CLOSED can never be delivered (and the conn freed) while the
 * owner's callback is still running; output is flushed when the outermost
 * callback returns.
 *
 * TLS: an SSL object with two memory BIOs. Bytes read from the socket are
 * written into the read BIO and SSL_read() turns them into plaintext in
 * `in`; plaintext the owner queued in `out` goes through SSL_write() when
 * it is flushed, and whatever OpenSSL put into the write BIO (records,
 * handshake messages, alerts) is moved to `wire`, which is what goes to
 * the socket. OpenSSL never sees a file descriptor, so it can never block;
 * SSL_ERROR_WANT_READ just means "wait for the next read callback".
 * SSL_MODE_RELEASE_BUFFERS lets an idle TLS session drop OpenSSL's record
 * buffers. A graceful close sends close_notify before the FIN.
 */
#include "lib/conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "lib/metrics.h"
#include "lib/xalloc.h"

#define READ_CHUNK 65536
#define KEEP_BUF 4096
#define TLS_READ 16384

struct conn {
	union {
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;              /* the stream; is_pipe says which */
	uv_timer_t timer; /* no-input timeout, or connect timeout */
	uv_timer_t kick;  /* deferred CONN_EV_DATA */
	uv_connect_t creq;
	uv_write_t wreq;
	uv_shutdown_t sreq;
	uv_loop_t *loop;

	conn_cb cb;
	void *arg;

	buf_t in;
	size_t max_input;
	buf_t out;      /* queued, not yet handed to libuv */
	buf_t inflight; /* handed to uv_write, waiting for its callback */
	size_t inflight_off;

	unsigned timeout_ms;
	bool deadline;     /* timeout_ms is not restarted by input (conn_set_deadline) */
	int in_cb;         /* nesting depth of owner callbacks */
	int handles;       /* open libuv handles; freed at 0 */
	int close_err;
	bool connecting;
	bool reading;
	bool paused;
	bool closing;      /* conn_close() called or fatal error: no more events but CLOSED */
	bool close_now;    /* do not wait for output to drain */
	bool handles_closing;
	bool drained_pending;
	bool writing;
	bool shut_started; /* FIN sent; reading only to drain until EOF */
	bool peer_eof;

	struct sockaddr_storage peer;
	struct sockaddr_storage local;
	char peer_ip[INET6_ADDRSTRLEN];
	int peer_port;
	bool is_pipe;
	bool have_cred;
	uid_t peer_uid;
	gid_t peer_gid;
	pid_t peer_pid;

	/* TLS (see the top of the file) */
	SSL *ssl;
	BIO *rbio, *wbio;   /* owned by ssl */
	buf_t wire;         /* bytes for the socket: records, and clear text queued before the handshake */
	bool tls_server;
	bool tls_handshaking;
	bool tls_ready;
	bool tls_notify_sent; /* our close_notify is queued */
	char tls_info[96];
	char tls_err[160];
};

#define STREAM(c) ((uv_stream_t *)&(c)->h)
#define HANDLE(c) ((uv_handle_t *)&(c)->h)

static char read_chunk[READ_CHUNK];

static void conn_update_reading(conn_t *c);
static void conn_start_flush(conn_t *c);
static void conn_finish_close(conn_t *c);

static void
conn_fill_names(conn_t *c)
{
	int len = sizeof c->peer;
	memset(&c->peer, 0, sizeof c->peer);
	memset(&c->local, 0, sizeof c->local);
	c->peer_ip[0] = '\0';
	if (c->is_pipe) {
		/* the peer of a unix-domain socket has no address, but the kernel
		 * tells who it is (socket(7) SO_PEERCRED: taken at connect time) */
		uv_os_fd_t fd;
		struct ucred cr;
		socklen_t cl = sizeof cr;
		c->peer.ss_family = AF_UNIX;
		c->local.ss_family = AF_UNIX;
		snprintf(c->peer_ip, sizeof c->peer_ip, "local");
		c->peer_port = 0;
		if (uv_fileno(HANDLE(c), &fd) == 0 &&
		    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cl == sizeof cr) {
			c->have_cred = true;
			c->peer_uid = cr.uid;
			c->peer_gid = cr.gid;
			c->peer_pid = cr.pid;
		}
		return;
	}
	uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&c->peer, &len);
	len = sizeof c->local;
	uv_tcp_getsockname(&c->h.tcp, (struct sockaddr *)&c->local, &len);
	if (c->peer.ss_family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&c->peer;
		inet_ntop(AF_INET, &s->sin_addr, c->peer_ip, sizeof c->peer_ip);
		c->peer_port = ntohs(s->sin_port);
	} else if (c->peer.ss_family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&c->peer;
		if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr))
			inet_ntop(AF_INET, &s->sin6_addr.s6_addr[12], c->peer_ip, sizeof c->peer_ip);
		else
			inet_ntop(AF_INET6, &s->sin6_addr, c->peer_ip, sizeof c->peer_ip);
		c->peer_port = ntohs(s->sin6_port);
	}
}

/* Deliver one event to the owner; flush and handle DRAINED afterwards. */
static void
emit(conn_t *c, enum conn_event ev, int err)
{
	if (c->closing && ev != CONN_EV_CLOSED)
		return;
	c->in_cb++;
	c->cb(c, ev, err, c->arg);
	c->in_cb--;
	if (c->in_cb > 0 || ev == CONN_EV_CLOSED)
		return;
	for (int rounds = 0; rounds < 64; rounds++) {
		conn_start_flush(c);
		if (c->closing || !c->drained_pending)
			break;
		c->drained_pending = false;
		c->in_cb++;
		c->cb(c, CONN_EV_DRAINED, 0, c->arg);
		c->in_cb--;
	}
	if (c->closing)
		conn_finish_close(c);
	else
		conn_update_reading(c);
}

static void
handle_closed(uv_handle_t *h)
{
	conn_t *c = h->data;
	if (--c->handles > 0)
		return;
	c->in_cb++;
	c->cb(c, CONN_EV_CLOSED, c->close_err, c->arg);
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->inflight);
	buf_free(&c->wire);
	if (c->ssl)
		SSL_free(c->ssl); /* frees both BIOs */
	xfree(c);
}

static void conn_close_handles(conn_t *c);

static void
on_linger(uv_timer_t *t)
{
	conn_t *c = t->data;
	conn_close_handles(c);
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
	conn_t *c = req->data;
	if (status < 0 || c->peer_eof)
		conn_close_handles(c);
}

static void
conn_close_handles(conn_t *c)
{
	if (c->handles_closing)
		return;
	c->handles_closing = true;
	if (c->reading)
		uv_read_stop(STREAM(c));
	c->reading = false;
	uv_close((uv_handle_t *)&c->timer, handle_closed);
	uv_close((uv_handle_t *)&c->kick, handle_closed);
	uv_close(HANDLE(c), handle_closed);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);

/* ---- TLS ---- */

/* Note why TLS failed: the first reason wins; OpenSSL's error queue is
 * emptied so that it never leaks into another connection's report. */
static void
tls_note_error(conn_t *c, const char *what)
{
	unsigned long e = ERR_get_error();
	if (c->tls_err[0] == '\0') {
		if (e) {
			char es[120];
			ERR_error_string_n(e, es, sizeof es);
			snprintf(c->tls_err, sizeof c->tls_err, "%s: %s", what, es);
		} else {
			snprintf(c->tls_err, sizeof c->tls_err, "%s", what);
		}
	}
	ERR_clear_error();
}

/* Move what OpenSSL wrote into the write BIO to `wire`. */
static void
tls_drain(conn_t *c)
{
	size_t pending;
	while ((pending = BIO_ctrl_pending(c->wbio)) > 0) {
		int want = pending > (1u << 20) ? (1 << 20) : (int)pending;
		buf_reserve(&c->wire, (size_t)want);
		int n = BIO_read(c->wbio, c->wire.data + c->wire.len, want);
		if (n <= 0)
			break;
		c->wire.len += (size_t)n;
		c->wire.data[c->wire.len] = '\0';
	}
}

/* Encrypt the queued plaintext (only once the handshake is done); -1 on
 * a TLS error. */
static int
tls_encrypt(conn_t *c)
{
	if (c->tls_ready && !c->tls_notify_sent && c->out.len > 0) {
		size_t off = 0;
		while (off < c->out.len) {
			size_t n = c->out.len - off;
			int k = n > (1u << 20) ? (1 << 20) : (int)n;
			/* a memory BIO takes everything: no WANT_WRITE, no partial write */
			int r = SSL_write(c->ssl, c->out.data + off, k);
			if (r <= 0) {
				tls_note_error(c, "TLS write failed");
				return -1;
			}
			off += (size_t)r;
		}
		if (c->out.cap > KEEP_BUF * 4)
			buf_free(&c->out);
		else
			buf_reset(&c->out);
	}
	tls_drain(c);
	return 0;
}

/*
 * Ciphertext arrived: feed it to OpenSSL, advance the handshake, decrypt
 * what can be decrypted into `in`. *ready is set when the handshake ends
 * in this call, *eof when the peer sent close_notify. -1 on a TLS error.
 */
METRIC_COUNTER(m_tls, "tern_tls_sessions_total",
    "TLS handshakes completed, by direction (inbound: STARTTLS or smtps; outbound) and protocol version",
    "direction", "version");
METRIC_COUNTER(m_tls_fail, "tern_tls_handshake_failures_total", "TLS handshakes that failed, by direction",
    "direction");

static int
tls_feed(conn_t *c, const char *p, size_t n, bool *ready, bool *eof)
{
	*ready = *eof = false;
	while (n > 0) {
		int k = n > (1u << 20) ? (1 << 20) : (int)n;
		int w = BIO_write(c->rbio, p, k);
		if (w <= 0) {
			tls_note_error(c, "TLS buffer");
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	if (c->tls_handshaking) {
		ERR_clear_error();
		int r = SSL_do_handshake(c->ssl);
		if (r == 1) {
			c->tls_handshaking = false;
			c->tls_ready = true;
			*ready = true;
			metric_inc(&m_tls, SSL_is_server(c->ssl) ? "inbound" : "outbound", SSL_get_version(c->ssl));
		} else {
			int e = SSL_get_error(c->ssl, r);
			if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
				metric_inc(&m_tls_fail, SSL_is_server(c->ssl) ? "inbound" : "outbound");
				tls_note_error(c, "TLS handshake failed");
				tls_drain(c); /* our alert, if any, still goes out */
				return -1;
			}
		}
	}
	if (c->tls_ready) {
		for (;;) {
			buf_reserve(&c->in, TLS_READ);
			ERR_clear_error();
			int r = SSL_read(c->ssl, c->in.data + c->in.len, TLS_READ);
			if (r > 0) {
				c->in.len += (size_t)r;
				c->in.data[c->in.len] = '\0';
				continue;
			}
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				break;
			if (e == SSL_ERROR_ZERO_RETURN) {
				*eof = true; /* close_notify */
				break;
			}
			tls_note_error(c, "TLS read failed");
			tls_drain(c);
			return -1;
		}
		if (c->in.len == 0 && c->in.cap > KEEP_BUF)
			buf_free(&c->in);
	}
	tls_drain(c);
	return 0;
}

/*
 * Close once nothing is left to write (or at once with close_now). A
 * graceful close sends FIN first and reads (and drops) whatever the peer
 * still sends until its EOF, for at most 2 s: closing a socket with unread
 * input makes the kernel send RST, which can destroy our last reply (a 221
 * or 421) before the client reads it.
 */
static void
conn_finish_close(conn_t *c)
{
	if (c->handles_closing || c->in_cb > 0)
		return;
	if (c->shut_started) {
		if (c->close_now)
			conn_close_handles(c);
		return;
	}
	if (c->ssl && !c->tls_ready && c->out.len > 0)
		buf_reset(&c->out); /* no TLS session to carry it: it cannot go */
	if (!c->close_now && !c->connecting &&
	    (c->writing || c->out.len > 0 || c->wire.len > 0))
		return; /* the write callback comes back here */
	if (!c->close_now && !c->connecting && c->tls_ready && !c->tls_notify_sent) {
		/* RFC 8446 §6.1 / RFC 5246 §7.2.1: close_notify before the FIN;
		 * we do not wait for the peer's */
		c->tls_notify_sent = true;
		ERR_clear_error();
		SSL_shutdown(c->ssl);
		ERR_clear_error();
		tls_drain(c);
		if (c->wire.len > 0) {
			conn_start_flush(c);
			if (c->writing)
				return;
			if (c->handles_closing || c->close_now) {
				conn_close_handles(c);
				return;
			}
		}
	}
	if (!c->close_now && !c->connecting) {
		c->shut_started = true;
		c->sreq.data = c;
		if (uv_shutdown(&c->sreq, STREAM(c), on_shutdown) == 0) {
			if (!c->reading && !c->peer_eof &&
			    uv_read_start(STREAM(c), on_alloc, on_read) == 0)
				c->reading = true;
			uv_timer_start(&c->timer, on_linger, 2000, 0);
			return;
		}
	}
	conn_close_handles(c);
}

static void
conn_fail(conn_t *c, int err)
{
	if (!c->close_err)
		c->close_err = err;
	c->closing = true;
	c->close_now = true;
	conn_finish_close(c);
}

static void
on_timer(uv_timer_t *t)
{
	conn_t *c = t->data;
	if (c->connecting) {
		conn_fail(c, UV_ETIMEDOUT);
		return;
	}
	if (c->tls_handshaking && !c->closing) {
		/* the owner's timeout bounds the handshake; nothing can be said
		 * to the peer in the middle of it */
		if (!c->tls_err[0])
			snprintf(c->tls_err, sizeof c->tls_err, "TLS handshake timed out");
		conn_fail(c, UV_ETIMEDOUT);
		return;
	}
	emit(c, CONN_EV_TIMEOUT, 0);
}

static void
on_kick(uv_timer_t *t)
{
	conn_t *c = t->data;
	if (c->in.len > 0)
		emit(c, CONN_EV_DATA, 0);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	(void)suggested;
	b->base = read_chunk;
	b->len = sizeof read_chunk;
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	conn_t *c = s->data;
	if (nread == 0)
		return;
	if (c->shut_started) {
		/* lingering close: drop input, stop at EOF */
		if (nread < 0) {
			c->peer_eof = true;
			conn_close_handles(c);
		}
		return;
	}
	if (nread > 0 && c->ssl) {
		bool ready, eof;
		if (c->timeout_ms && !c->deadline)
			uv_timer_start(&c->timer, on_timer, c->timeout_ms, 0);
		if (tls_feed(c, b->base, (size_t)nread, &ready, &eof) < 0) {
			/* the alert (if any) goes out; then close, without
			 * close_notify or plaintext on a failed session */
			c->closing = true;
			c->tls_notify_sent = true;
			c->tls_ready = false;
			buf_reset(&c->out);
			if (!c->close_err)
				c->close_err = UV_EPROTO;
			if (c->in_cb == 0) {
				conn_start_flush(c);
				conn_finish_close(c);
			}
			return;
		}
		if (ready)
			emit(c, CONN_EV_TLS_READY, 0);
		if (c->in.len > 0 && !c->closing)
			emit(c, CONN_EV_DATA, 0);
		else if (c->in_cb == 0 && !c->closing)
			conn_start_flush(c); /* handshake messages */
		if (eof && !c->closing) {
			/* close_notify: the peer sends no more; our replies still go */
			c->closing = true;
			conn_finish_close(c);
		}
		return;
	}
	if (nread < 0) {
		/* EOF or error: the peer is gone; what it sent before is processed */
		if (c->in.len > 0 && !c->closing)
			emit(c, CONN_EV_DATA, 0);
		if (nread == UV_EOF) {
			/* half-closed by the peer: still flush our replies */
			c->peer_eof = true;
			c->closing = true;
			conn_finish_close(c);
		} else {
			conn_fail(c, (int)nread);
		}
		return;
	}
	buf_append(&c->in, b->base, (size_t)nread);
	if (c->timeout_ms && !c->deadline)
		uv_timer_start(&c->timer, on_timer, c->timeout_ms, 0);
	emit(c, CONN_EV_DATA, 0);
}

static void
conn_update_reading(conn_t *c)
{
	if (c->handles_closing || c->connecting)
		return;
	bool want = !c->closing && !c->paused && c->in.len < c->max_input;
	/* a handshake in progress always reads: it is not the owner's input */
	if (c->tls_handshaking && !c->closing)
		want = true;
	if (want && !c->reading) {
		if (uv_read_start(STREAM(c), on_alloc, on_read) == 0)
			c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop(STREAM(c));
		c->reading = false;
	}
}

static void
on_write(uv_write_t *req, int status)
{
	conn_t *c = req->data;
	c->writing = false;
	if (c->inflight.cap > KEEP_BUF * 4)
		buf_free(&c->inflight);
	else
		buf_reset(&c->inflight);
	if (status < 0) {
		conn_fail(c, status);
		return;
	}
	if (c->out.len > 0 || c->wire.len > 0) {
		conn_start_flush(c);
		if (c->writing || c->handles_closing)
			return;
	}
	if (c->closing) {
		conn_finish_close(c);
		return;
	}
	emit(c, CONN_EV_DRAINED, 0);
}

static void
conn_start_flush(conn_t *c)
{
	if (c->writing || c->handles_closing || c->connecting)
		return;
	if (c->ssl && tls_encrypt(c) < 0) {
		conn_fail(c, UV_EPROTO);
		return;
	}
	buf_t *q = c->ssl ? &c->wire : &c->out;
	if (q->len == 0)
		return;
	/* swap: the queue becomes inflight */
	buf_t t = c->inflight;
	c->inflight = *q;
	*q = t;
	buf_reset(q);
	uv_buf_t ub = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
	int n = uv_try_write(STREAM(c), &ub, 1);
	if (n == (int)c->inflight.len) {
		if (c->inflight.cap > KEEP_BUF * 4)
			buf_free(&c->inflight);
		else
			buf_reset(&c->inflight);
		c->drained_pending = true;
		return;
	}
	if (n < 0 && n != UV_EAGAIN) {
		conn_fail(c, n);
		return;
	}
	size_t off = n > 0 ? (size_t)n : 0;
	ub = uv_buf_init(c->inflight.data + off, (unsigned)(c->inflight.len - off));
	c->wreq.data = c;
	if (uv_write(&c->wreq, STREAM(c), &ub, 1, on_write) < 0) {
		conn_fail(c, UV_EPIPE);
		return;
	}
	c->writing = true;
}

static void
conn_noop_cb(conn_t *c, enum conn_event ev, int err, void *arg)
{
	(void)c;
	(void)ev;
	(void)err;
	(void)arg;
}

static conn_t *
conn_alloc(uv_loop_t *loop, bool pipe, size_t max_input, conn_cb cb, void *arg)
{
	conn_t *c = xcalloc(1, sizeof *c);
	c->loop = loop;
	c->cb = cb;
	c->arg = arg;
	c->max_input = max_input;
	c->is_pipe = pipe;
	if (pipe)
		uv_pipe_init(loop, &c->h.pipe, 0);
	else
		uv_tcp_init(loop, &c->h.tcp);
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->kick);
	HANDLE(c)->data = c->timer.data = c->kick.data = c;
	c->handles = 3;
	return c;
}

conn_t *
conn_accept(uv_loop_t *loop, uv_stream_t *server, size_t max_input, conn_cb cb, void *arg)
{
	conn_t *c = conn_alloc(loop, server->type == UV_NAMED_PIPE, max_input, cb, arg);
	if (uv_accept(server, STREAM(c)) < 0) {
		/* nothing was delivered to the owner: close quietly, c is freed
		 * by handle_closed() once libuv has closed the handles */
		c->cb = conn_noop_cb;
		conn_fail(c, UV_ECONNABORTED);
		return NULL;
	}
	if (!c->is_pipe)
		uv_tcp_nodelay(&c->h.tcp, 1);
	conn_fill_names(c);
	conn_update_reading(c);
	return c;
}

static void
on_connect(uv_connect_t *req, int status)
{
	conn_t *c = req->data;
	c->connecting = false;
	uv_timer_stop(&c->timer);
	if (c->closing) {
		conn_fail(c, status < 0 ? status : UV_ECANCELED);
		return;
	}
	if (status < 0) {
		conn_fail(c, status);
		return;
	}
	if (!c->is_pipe)
		uv_tcp_nodelay(&c->h.tcp, 1);
	conn_fill_names(c);
	emit(c, CONN_EV_CONNECTED, 0);
}

conn_t *
conn_connect(uv_loop_t *loop, const struct sockaddr *dst, const struct sockaddr *src,
    unsigned timeout_ms, size_t max_input, conn_cb cb, void *arg)
{
	conn_t *c = conn_alloc(loop, false, max_input, cb, arg);
	c->connecting = true;
	int r = 0;
	if (src)
		r = uv_tcp_bind(&c->h.tcp, src, 0);
	c->creq.data = c;
	if (r == 0)
		r = uv_tcp_connect(&c->creq, &c->h.tcp, dst, on_connect);
	if (r < 0) {
		c->connecting = false;
		conn_fail(c, r);
		return c;
	}
	if (timeout_ms)
		uv_timer_start(&c->timer, on_timer, timeout_ms, 0);
	return c;
}

conn_t *
conn_connect_unix(uv_loop_t *loop, const char *path, unsigned timeout_ms, size_t max_input,
    conn_cb cb, void *arg)
{
	conn_t *c = conn_alloc(loop, true, max_input, cb, arg);
	c->connecting = true;
	c->creq.data = c;
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		c->connecting = false;
		conn_fail(c, UV_ENAMETOOLONG);
		return c;
	}
	/* errors come through on_connect */
	uv_pipe_connect(&c->creq, &c->h.pipe, path, on_connect);
	if (timeout_ms)
		uv_timer_start(&c->timer, on_timer, timeout_ms, 0);
	return c;
}

void
conn_set_cb(conn_t *c, conn_cb cb, void *arg)
{
	c->cb = cb;
	c->arg = arg;
}

buf_t *
conn_input(conn_t *c)
{
	return &c->in;
}

void
conn_consume(conn_t *c, size_t n)
{
	buf_consume(&c->in, n);
	if (c->in.len == 0 && c->in.cap > KEEP_BUF)
		buf_free(&c->in);
	if (c->in_cb == 0)
		conn_update_reading(c);
}

void
conn_read_pause(conn_t *c, bool paused)
{
	c->paused = paused;
	if (c->in_cb == 0)
		conn_update_reading(c);
}

void
conn_kick(conn_t *c)
{
	if (!c->handles_closing)
		uv_timer_start(&c->kick, on_kick, 0, 0);
}

void
conn_write(conn_t *c, const void *p, size_t n)
{
	if (c->closing && c->close_now)
		return;
	buf_append(&c->out, p, n);
}

void
conn_printf(conn_t *c, const char *fmt, ...)
{
	va_list ap;
	if (c->closing && c->close_now)
		return;
	va_start(ap, fmt);
	buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
}

void
conn_flush(conn_t *c)
{
	conn_start_flush(c);
	if (c->in_cb == 0 && c->drained_pending && !c->closing) {
		c->drained_pending = false;
		emit(c, CONN_EV_DRAINED, 0);
	}
}

size_t
conn_pending_output(const conn_t *c)
{
	return c->out.len + c->wire.len + (c->writing ? c->inflight.len : 0);
}

void
conn_set_deadline(conn_t *c, unsigned ms)
{
	conn_set_timeout(c, ms);
	c->deadline = ms != 0;
}

void
conn_set_timeout(conn_t *c, unsigned ms)
{
	c->timeout_ms = ms;
	c->deadline = false;
	/* once closing, the timer bounds the close (the lingering read):
	 * an owner that still sets timeouts must not cancel that */
	if (c->handles_closing || c->connecting || c->closing)
		return;
	if (ms)
		uv_timer_start(&c->timer, on_timer, ms, 0);
	else
		uv_timer_stop(&c->timer);
}

void
conn_close(conn_t *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->in_cb == 0) {
		conn_start_flush(c);
		conn_finish_close(c);
	}
	/* else: emit() finishes the close when the callback returns */
}

void
conn_abort(conn_t *c, int err)
{
	if (c->handles_closing)
		return;
	if (!c->close_err)
		c->close_err = err ? err : UV_ECANCELED;
	c->closing = true;
	c->close_now = true;
	buf_reset(&c->out);
	buf_reset(&c->wire);
	if (c->in_cb == 0)
		conn_close_handles(c);
	/* else: emit() closes when the callback returns */
}

bool
conn_closing(const conn_t *c)
{
	return c->closing;
}

const char *
conn_peer_ip(const conn_t *c)
{
	return c->peer_ip;
}

int
conn_peer_port(const conn_t *c)
{
	return c->peer_port;
}

const struct sockaddr *
conn_peer_addr(const conn_t *c)
{
	return (const struct sockaddr *)&c->peer;
}

const struct sockaddr *
conn_local_addr(const conn_t *c)
{
	return (const struct sockaddr *)&c->local;
}

int
conn_peer_cred(const conn_t *c, uid_t *uid, gid_t *gid, pid_t *pid)
{
	if (!c->is_pipe || !c->have_cred)
		return -1;
	if (uid)
		*uid = c->peer_uid;
	if (gid)
		*gid = c->peer_gid;
	if (pid)
		*pid = c->peer_pid;
	return 0;
}

bool
conn_is_local(const conn_t *c)
{
	return c->is_pipe;
}

/* ---- TLS ---- */

static int tls_start(conn_t *c, SSL_CTX *ctx, bool server, const char *sni,
    int (*prep)(SSL *, void *), void *arg);

int
conn_starttls(conn_t *c, SSL_CTX *ctx, bool server, const char *sni)
{
	return tls_start(c, ctx, server, sni, NULL, NULL);
}

int
conn_starttls_prep(conn_t *c, SSL_CTX *ctx, const char *sni, int (*prep)(SSL *, void *),
    void *arg)
{
	return tls_start(c, ctx, false, sni, prep, arg);
}

SSL *
conn_tls_ssl(conn_t *c)
{
	return c->ssl;
}

static int
tls_start(conn_t *c, SSL_CTX *ctx, bool server, const char *sni, int (*prep)(SSL *, void *),
    void *arg)
{
	if (c->ssl || c->closing || c->handles_closing || ctx == NULL)
		return -1;
	ERR_clear_error();
	SSL *ssl = SSL_new(ctx);
	if (!ssl) {
		tls_note_error(c, "SSL_new");
		return -1;
	}
	BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
	if (!r || !w) {
		BIO_free(r);
		BIO_free(w);
		SSL_free(ssl);
		tls_note_error(c, "BIO_new");
		return -1;
	}
	/* an empty memory BIO means "retry later", not end of file */
	BIO_set_mem_eof_return(r, -1);
	BIO_set_mem_eof_return(w, -1);
	SSL_set_bio(ssl, r, w);
	SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION);
	if (server) {
		SSL_set_accept_state(ssl);
	} else {
		SSL_set_connect_state(ssl);
		if (sni && sni[0]) {
			unsigned char ip[16];
			bool literal = inet_pton(AF_INET, sni, ip) == 1 || inet_pton(AF_INET6, sni, ip) == 1;
			if (literal) {
				/* RFC 6066 §3: no IP literals in SNI; the IP SANs are checked */
				X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni);
			} else {
				SSL_set_tlsext_host_name(ssl, sni);
				SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
				SSL_set1_host(ssl, sni);
			}
		}
		if (prep && prep(ssl, arg) < 0) {
			SSL_free(ssl); /* and the BIOs with it */
			tls_note_error(c, "TLS set-up failed");
			return -1;
		}
	}
	c->ssl = ssl;
	c->rbio = r;
	c->wbio = w;
	c->tls_server = server;
	c->tls_handshaking = true;
	/* what was queued so far (the 220 to STARTTLS) goes in clear, first */
	if (c->out.len > 0) {
		buf_append(&c->wire, c->out.data, c->out.len);
		buf_reset(&c->out);
	}
	/* RFC 3207 §4.2: nothing received before the handshake counts */
	buf_free(&c->in);
	if (!server) {
		ERR_clear_error();
		int rr = SSL_do_handshake(ssl); /* the ClientHello */
		int e = SSL_get_error(ssl, rr);
		if (rr != 1 && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			tls_note_error(c, "TLS handshake failed");
			conn_fail(c, UV_EPROTO);
			return 0; /* CLOSED follows */
		}
		tls_drain(c);
	}
	if (c->in_cb == 0) {
		conn_start_flush(c);
		conn_update_reading(c);
	}
	return 0;
}

const char *
conn_tls_info(conn_t *c)
{
	if (!c->ssl || !c->tls_ready)
		return NULL;
	if (!c->tls_info[0])
		snprintf(c->tls_info, sizeof c->tls_info, "%s %s", SSL_get_version(c->ssl),
		    SSL_get_cipher_name(c->ssl));
	return c->tls_info;
}

bool
conn_tls_active(const conn_t *c)
{
	return c->ssl != NULL && c->tls_ready;
}

bool
conn_tls_verify(conn_t *c, const char **why)
{
	*why = "no TLS session";
	if (!c->ssl || !c->tls_ready)
		return false;
	X509 *cert = SSL_get1_peer_certificate(c->ssl);
	if (!cert) {
		*why = "no certificate presented";
		return false;
	}
	X509_free(cert);
	long v = SSL_get_verify_result(c->ssl);
	if (v != X509_V_OK) {
		*why = X509_verify_cert_error_string(v);
		return false;
	}
	*why = "";
	return true;
}

const char *
conn_tls_error(const conn_t *c)
{
	return c->tls_err;
}
