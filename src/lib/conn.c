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
 */
#include "lib/conn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/xalloc.h"

#define READ_CHUNK 65536
#define KEEP_BUF 4096

struct conn {
	uv_tcp_t tcp;
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
};

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
	uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &len);
	len = sizeof c->local;
	uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&c->local, &len);
	c->peer_ip[0] = '\0';
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
		uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = false;
	uv_close((uv_handle_t *)&c->timer, handle_closed);
	uv_close((uv_handle_t *)&c->kick, handle_closed);
	uv_close((uv_handle_t *)&c->tcp, handle_closed);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);

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
	if (!c->close_now && !c->connecting && (c->writing || c->out.len > 0))
		return; /* the write callback comes back here */
	if (!c->close_now && !c->connecting) {
		c->shut_started = true;
		c->sreq.data = c;
		if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) == 0) {
			if (!c->reading && !c->peer_eof &&
			    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
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
	if (c->timeout_ms)
		uv_timer_start(&c->timer, on_timer, c->timeout_ms, 0);
	emit(c, CONN_EV_DATA, 0);
}

static void
conn_update_reading(conn_t *c)
{
	if (c->handles_closing || c->connecting)
		return;
	bool want = !c->closing && !c->paused && c->in.len < c->max_input;
	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
			c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
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
	if (c->out.len > 0) {
		conn_start_flush(c);
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
	if (c->writing || c->out.len == 0 || c->handles_closing || c->connecting)
		return;
	/* swap: out becomes inflight */
	buf_t t = c->inflight;
	c->inflight = c->out;
	c->out = t;
	buf_reset(&c->out);
	uv_buf_t ub = uv_buf_init(c->inflight.data, (unsigned)c->inflight.len);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
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
	if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &ub, 1, on_write) < 0) {
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
conn_alloc(uv_loop_t *loop, size_t max_input, conn_cb cb, void *arg)
{
	conn_t *c = xcalloc(1, sizeof *c);
	c->loop = loop;
	c->cb = cb;
	c->arg = arg;
	c->max_input = max_input;
	uv_tcp_init(loop, &c->tcp);
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->kick);
	c->tcp.data = c->timer.data = c->kick.data = c;
	c->handles = 3;
	return c;
}

conn_t *
conn_accept(uv_loop_t *loop, uv_stream_t *server, size_t max_input, conn_cb cb, void *arg)
{
	conn_t *c = conn_alloc(loop, max_input, cb, arg);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		/* nothing was delivered to the owner: close quietly, c is freed
		 * by handle_closed() once libuv has closed the handles */
		c->cb = conn_noop_cb;
		conn_fail(c, UV_ECONNABORTED);
		return NULL;
	}
	uv_tcp_nodelay(&c->tcp, 1);
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
	uv_tcp_nodelay(&c->tcp, 1);
	conn_fill_names(c);
	emit(c, CONN_EV_CONNECTED, 0);
}

conn_t *
conn_connect(uv_loop_t *loop, const struct sockaddr *dst, const struct sockaddr *src,
    unsigned timeout_ms, size_t max_input, conn_cb cb, void *arg)
{
	conn_t *c = conn_alloc(loop, max_input, cb, arg);
	c->connecting = true;
	int r = 0;
	if (src)
		r = uv_tcp_bind(&c->tcp, src, 0);
	c->creq.data = c;
	if (r == 0)
		r = uv_tcp_connect(&c->creq, &c->tcp, dst, on_connect);
	if (r < 0) {
		c->connecting = false;
		conn_fail(c, r);
		return c;
	}
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
	return c->out.len + (c->writing ? c->inflight.len : 0);
}

void
conn_set_timeout(conn_t *c, unsigned ms)
{
	c->timeout_ms = ms;
	if (c->handles_closing || c->connecting)
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
