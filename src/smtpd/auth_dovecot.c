/*
 * auth_dovecot.c - the client of Dovecot's authentication socket (see
 * auth_dovecot.h; the line syntax is auth_dovecot_proto.c's).
 *
 * States of the one connection: DOWN (none; a request or the retry timer
 * starts one), CONNECTING (conn_connect*, bounded by the timeout),
 * HANDSHAKE (our VERSION and CPID sent; collecting Dovecot's VERSION,
 * MECH ... DONE within the timeout), READY (requests are sent as they
 * come). A request is QUEUED until READY, SENT while Dovecot owes an
 * answer (its deadline running), WAITING while the SMTP client owes one
 * (no deadline here: the session's command timeout bounds that), DONE
 * when its result waits to be delivered from the timer (so that no
 * callback runs inside dvauth_begin or dvauth_continue).
 * One uv timer serves every deadline and the reconnect back-off. The
 * requests are a table in the order they began (a handful at a time).
 * Guarantees: see auth_dovecot.h. The order of requests on the wire is
 * the order they began; replies are matched by id, a reply for an id no
 * longer known (aborted, timed out) is ignored.
 * Must not: block, log a response or challenge, or deliver a callback for
 * an aborted request.
 */
#include "smtpd/auth_dovecot.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/conn.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "smtpd/auth_dovecot_proto.h"

#define DVAUTH_MAX_MECHS 32
#define RETRY_MIN_MS 1000u
#define RETRY_MAX_MS 30000u

/* the mechanisms tern relays: the client's lines pass through as they are */
static const char *const relayed[] = {"PLAIN", "LOGIN"};

enum cstate { DV_DOWN, DV_CONNECTING, DV_HANDSHAKE, DV_READY };
enum rstate { RQ_QUEUED, RQ_SENT, RQ_WAITING, RQ_DONE };

struct mech {
	char name[DVPROTO_MAX_MECH + 1];
	unsigned flags;
};

struct dvauth_req {
	dvauth_t *c;
	unsigned long id;
	enum rstate st;
	bool lost;          /* WAITING when the connection went: TEMP at the next answer */
	uint64_t deadline;  /* loop ms: QUEUED, SENT; DONE: 0 (due now) */
	buf_t line;         /* QUEUED: the AUTH line to send (it may hold a password) */
	enum dvauth_result res; /* DONE */
	char *text;
	dvauth_cb cb;
	void *arg;
};

struct dvauth {
	uv_loop_t *loop;
	char *addr;
	unsigned timeout_ms;
	enum cstate st;
	conn_t *conn;       /* the current connection (CONNECTING and after) */
	unsigned nclosing;  /* earlier connections whose CLOSED is still to come */
	bool have_version;
	struct mech pend[DVAUTH_MAX_MECHS]; /* collected during the handshake */
	size_t npend;
	struct mech mechs[DVAUTH_MAX_MECHS]; /* from the last complete handshake */
	size_t nmechs;
	bool known;         /* mechs is from Dovecot (else never reached yet) */
	unsigned long next_id;
	dvauth_req_t **reqs; /* every request, in the order they began */
	size_t nreqs, capreqs;
	uv_timer_t timer;
	bool timer_closed;
	uint64_t retry_at;  /* DOWN: the background reconnect (0: none) */
	unsigned backoff_ms;
	bool down_logged;   /* a failure was logged since the last success */
	bool closed;        /* dvauth_close() */
	bool freed;         /* dvauth_free(): free once the handles are closed */
};

static void on_conn(conn_t *conn, enum conn_event ev, int err, void *arg);
static void arm(dvauth_t *c);

/* ---- addresses ---- */

struct target {
	bool unix_path;
	const char *path;
	struct sockaddr_storage sa;
};

static const char *
parse_addr(const char *addr, struct target *t)
{
	memset(t, 0, sizeof *t);
	const char *a = addr;
	if (strncmp(a, "unix:", 5) == 0)
		a += 5;
	if (a[0] == '/') {
		if (strlen(a) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return "socket path too long";
		t->unix_path = true;
		t->path = a;
		return NULL;
	}
	if (strncmp(addr, "inet:", 5) != 0)
		return "expected an absolute socket path or inet:HOST:PORT";
	a = addr + 5;
	char host[64];
	const char *port;
	if (a[0] == '[') {
		const char *e = strchr(a, ']');
		if (!e || (size_t)(e - a - 1) >= sizeof host || e[1] != ':')
			return "expected inet:[IPV6]:PORT";
		memcpy(host, a + 1, (size_t)(e - a - 1));
		host[e - a - 1] = '\0';
		port = e + 2;
	} else {
		const char *e = strrchr(a, ':');
		if (!e || (size_t)(e - a) >= sizeof host)
			return "expected inet:HOST:PORT";
		memcpy(host, a, (size_t)(e - a));
		host[e - a] = '\0';
		port = e + 1;
	}
	char *end;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 1 || p > 65535)
		return "port must be a number from 1 to 65535";
	struct sockaddr_in *s4 = (struct sockaddr_in *)&t->sa;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t->sa;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
	} else {
		return "HOST must be a numeric IP address (no DNS lookup on the AUTH path)";
	}
	return NULL;
}

/* ---- requests ---- */

static void
req_add(dvauth_t *c, dvauth_req_t *r)
{
	if (c->nreqs == c->capreqs) {
		c->capreqs = c->capreqs ? c->capreqs * 2 : 16;
		// NOLINTNEXTLINE(bugprone-sizeof-expression): the table holds pointers
		c->reqs = xrealloc(c->reqs, c->capreqs * sizeof *c->reqs);
	}
	c->reqs[c->nreqs++] = r;
}

/* take the request at index i out of the table */
static dvauth_req_t *
req_take(dvauth_t *c, size_t i)
{
	dvauth_req_t *r = c->reqs[i];
	// NOLINTNEXTLINE(bugprone-sizeof-expression): the table holds pointers
	memmove(&c->reqs[i], &c->reqs[i + 1], (c->nreqs - i - 1) * sizeof *c->reqs);
	c->nreqs--;
	return r;
}

/* the index of r in the table, or SIZE_MAX */
static size_t
req_index(const dvauth_t *c, const dvauth_req_t *r)
{
	for (size_t i = 0; i < c->nreqs; i++)
		if (c->reqs[i] == r)
			return i;
	return SIZE_MAX;
}

static void
req_free(dvauth_req_t *r)
{
	if (r->line.data)
		explicit_bzero(r->line.data, r->line.cap);
	buf_free(&r->line);
	xfree(r->text);
	xfree(r);
}

/* Finish the request at index i now, from the loop (not from a caller's
 * call): out of the table before the callback, so that the callback may
 * begin, abort or close anything. */
static void
req_deliver(dvauth_t *c, size_t i, enum dvauth_result res, const char *text)
{
	dvauth_req_t *r = res == DVAUTH_CONT ? c->reqs[i] : req_take(c, i);
	dvauth_cb cb = r->cb;
	void *arg = r->arg;
	if (res == DVAUTH_CONT) {
		r->st = RQ_WAITING;
		cb(arg, res, text);
		return;
	}
	char *t = text ? xstrdup(text) : NULL;
	req_free(r);
	cb(arg, res, t);
	xfree(t);
}

/* Finish r from the timer, soon: for results found inside a caller's call. */
static void
req_defer(dvauth_req_t *r, enum dvauth_result res, const char *text)
{
	r->st = RQ_DONE;
	r->res = res;
	xfree(r->text);
	r->text = text ? xstrdup(text) : NULL;
	r->deadline = 0;
	arm(r->c);
}

/* the index of the request with that id, or SIZE_MAX */
static size_t
req_find(const dvauth_t *c, unsigned long id)
{
	for (size_t i = 0; i < c->nreqs; i++)
		if (c->reqs[i]->id == id)
			return i;
	return SIZE_MAX;
}

/* ---- the connection ---- */

static void
send_line(dvauth_t *c, buf_t *b)
{
	conn_write(c->conn, b->data, b->len);
	conn_flush(c->conn);
}

/* Drop the connection: requests in flight fail (TEMP, now), requests
 * waiting for their SMTP client fail at its next answer. */
static void
conn_lost(dvauth_t *c, const char *why)
{
	if (c->conn) {
		conn_abort(c->conn, 0);
		c->conn = NULL;
		c->nclosing++;
	}
	bool was_ready = c->st == DV_READY;
	c->st = DV_DOWN;
	c->have_version = false;
	c->npend = 0;
	if (!c->closed && (!c->down_logged || was_ready)) {
		log_warn("dovecot auth: %s: %s; AUTH is answered 454 until it works again", c->addr, why);
		c->down_logged = true;
	}
	if (!c->closed) {
		c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : RETRY_MIN_MS;
		if (c->backoff_ms > RETRY_MAX_MS)
			c->backoff_ms = RETRY_MAX_MS;
		c->retry_at = uv_now(c->loop) + c->backoff_ms;
	}
	/* one at a time, from the start: a callback may change the table */
	for (;;) {
		size_t i = 0;
		while (i < c->nreqs && (c->reqs[i]->st == RQ_DONE || c->reqs[i]->st == RQ_WAITING))
			i++;
		if (i == c->nreqs)
			break;
		req_deliver(c, i, DVAUTH_TEMP, why);
	}
	for (size_t i = 0; i < c->nreqs; i++)
		if (c->reqs[i]->st == RQ_WAITING)
			c->reqs[i]->lost = true;
	arm(c);
}

static void
connect_now(dvauth_t *c)
{
	struct target t;
	if (c->st != DV_DOWN || c->closed)
		return;
	c->retry_at = 0;
	if (parse_addr(c->addr, &t) != NULL) {
		/* checked at load: cannot happen */
		conn_lost(c, "bad address");
		return;
	}
	size_t max = DVPROTO_MAX_LINE + 2;
	c->conn = t.unix_path ? conn_connect_unix(c->loop, t.path, c->timeout_ms, max, on_conn, c)
	                      : conn_connect(c->loop, (struct sockaddr *)&t.sa, NULL, c->timeout_ms, max,
	                            on_conn, c);
	c->st = DV_CONNECTING;
}

static void
became_ready(dvauth_t *c)
{
	c->st = DV_READY;
	memcpy(c->mechs, c->pend, sizeof c->mechs);
	c->nmechs = c->npend;
	c->known = true;
	c->backoff_ms = 0;
	conn_set_timeout(c->conn, 0); /* idle is fine: Dovecot keeps auth clients */
	buf_t names = BUF_INIT;
	for (size_t i = 0; i < c->nmechs; i++)
		buf_printf(&names, " %s", c->mechs[i].name);
	buf_t off = BUF_INIT;
	dvauth_mechs(c, true, &off);
	log_info("dovecot auth: connected to %s; it offers%s; tern announces%s", c->addr,
	    names.len ? buf_cstr(&names) : " nothing", off.len ? buf_cstr(&off) : " nothing");
	buf_free(&names);
	buf_free(&off);
	c->down_logged = false;
	uint64_t now = uv_now(c->loop);
	for (size_t i = 0; i < c->nreqs; i++) {
		dvauth_req_t *r = c->reqs[i];
		if (r->st != RQ_QUEUED)
			continue;
		send_line(c, &r->line);
		explicit_bzero(r->line.data, r->line.cap);
		buf_free(&r->line);
		r->st = RQ_SENT;
		r->deadline = now + c->timeout_ms;
	}
	arm(c);
}

/* one line from Dovecot; false when the connection was dropped */
static bool
handle_line(dvauth_t *c, const char *line, size_t n)
{
	dvproto_reply_t rp;
	buf_t err = BUF_INIT;
	bool ok = true;
	if (dvproto_parse(line, n, &rp, &err) < 0) {
		buf_t why = BUF_INIT;
		buf_printf(&why, "protocol error (%s)", buf_cstr(&err));
		conn_lost(c, buf_cstr(&why));
		buf_free(&why);
		ok = false;
		goto out;
	}
	switch (rp.kind) {
	case DVP_VERSION:
		if (rp.major != DVPROTO_MAJOR) {
			conn_lost(c, "protocol error (a major version other than 1)");
			ok = false;
			break;
		}
		c->have_version = true;
		break;
	case DVP_MECH:
		if (c->st == DV_HANDSHAKE && c->npend < DVAUTH_MAX_MECHS) {
			snprintf(c->pend[c->npend].name, sizeof c->pend[c->npend].name, "%s", rp.mech);
			c->pend[c->npend++].flags = rp.mech_flags;
		}
		break;
	case DVP_DONE:
		if (c->st != DV_HANDSHAKE)
			break;
		if (!c->have_version) {
			conn_lost(c, "protocol error (DONE before VERSION)");
			ok = false;
			break;
		}
		became_ready(c);
		break;
	case DVP_OK:
	case DVP_CONT:
	case DVP_FAIL: {
		if (c->st != DV_READY) {
			conn_lost(c, "protocol error (a reply before the handshake ended)");
			ok = false;
			break;
		}
		size_t i = req_find(c, rp.id);
		if (i == SIZE_MAX || c->reqs[i]->st != RQ_SENT)
			break; /* aborted or timed out meanwhile */
		if (rp.kind == DVP_CONT)
			req_deliver(c, i, DVAUTH_CONT, rp.data);
		else if (rp.kind == DVP_OK && !rp.user)
			req_deliver(c, i, DVAUTH_TEMP, "OK without user=");
		else if (rp.kind == DVP_OK)
			req_deliver(c, i, DVAUTH_OK, rp.user);
		else if (rp.temp)
			req_deliver(c, i, DVAUTH_TEMP, rp.reason ? rp.reason : "temporary failure");
		else
			req_deliver(c, i, DVAUTH_FAIL, rp.reason);
		break;
	}
	default:
		break;
	}
out:
	dvproto_reply_free(&rp);
	buf_free(&err);
	return ok;
}

static void
on_conn(conn_t *conn, enum conn_event ev, int err, void *arg)
{
	dvauth_t *c = arg;
	if (conn != c->conn) {
		/* an earlier connection, already given up */
		if (ev == CONN_EV_CLOSED) {
			c->nclosing--;
			if (c->freed && c->nclosing == 0 && c->timer_closed && !c->conn)
				xfree(c);
		}
		return;
	}
	switch (ev) {
	case CONN_EV_CONNECTED: {
		c->st = DV_HANDSHAKE;
		conn_set_deadline(conn, c->timeout_ms);
		buf_t b = BUF_INIT;
		dvproto_format_hello(&b, (unsigned long)getpid());
		send_line(c, &b);
		buf_free(&b);
		break;
	}
	case CONN_EV_DATA: {
		buf_t *in = conn_input(conn);
		while (c->conn == conn && in->len > 0) {
			char *lf = memchr(in->data, '\n', in->len);
			if (!lf) {
				if (in->len > DVPROTO_MAX_LINE)
					conn_lost(c, "protocol error (line too long)");
				break;
			}
			size_t n = (size_t)(lf - in->data);
			/* copied: a callback may begin requests that write on conn */
			char *line = xstrndup(in->data, n);
			conn_consume(conn, n + 1);
			bool more = handle_line(c, line, n);
			explicit_bzero(line, n);
			xfree(line);
			if (!more)
				break;
		}
		break;
	}
	case CONN_EV_TIMEOUT:
		conn_lost(c, c->st == DV_HANDSHAKE ? "no complete handshake in time" : "timed out");
		break;
	case CONN_EV_CLOSED: {
		c->conn = NULL; /* freed when this returns */
		char why[128];
		if (c->st == DV_CONNECTING)
			snprintf(why, sizeof why, "connect failed: %s", err ? uv_strerror(err) : "closed");
		else
			snprintf(why, sizeof why, "connection lost%s%s", err ? ": " : "",
			    err ? uv_strerror(err) : "");
		conn_lost(c, why);
		if (c->freed && c->nclosing == 0 && c->timer_closed)
			xfree(c);
		break;
	}
	default:
		break;
	}
}

/* ---- the timer: deadlines, deferred results, reconnects ---- */

static void
on_timer(uv_timer_t *t)
{
	dvauth_t *c = t->data;
	uint64_t now = uv_now(c->loop);
	/* one at a time, from the start: a callback may change the table */
	for (;;) {
		size_t i = 0;
		while (i < c->nreqs && !(c->reqs[i]->st == RQ_DONE ||
		    ((c->reqs[i]->st == RQ_QUEUED || c->reqs[i]->st == RQ_SENT) &&
		    c->reqs[i]->deadline <= now)))
			i++;
		if (i == c->nreqs)
			break;
		dvauth_req_t *r = c->reqs[i];
		if (r->st == RQ_DONE) {
			enum dvauth_result res = r->res;
			char *text = r->text;
			r->text = NULL;
			req_deliver(c, i, res, text);
			xfree(text);
			continue;
		}
		/* The connection stays: Dovecot answers late when it is busy or
		 * delays on purpose (its auth penalty, up to 15 s); that late
		 * answer is then ignored. Dropping the connection instead would
		 * make Dovecot fail every request on it as "temp_fail", which its
		 * anvil counts against each client's address: more delay, more
		 * timeouts. */
		req_deliver(c, i, DVAUTH_TEMP, "no answer in time");
	}
	if (c->st == DV_DOWN && c->retry_at && c->retry_at <= now)
		connect_now(c);
	arm(c);
}

static void
arm(dvauth_t *c)
{
	if (c->timer_closed || c->closed)
		return;
	uint64_t next = UINT64_MAX;
	for (size_t i = 0; i < c->nreqs; i++) {
		const dvauth_req_t *r = c->reqs[i];
		if ((r->st == RQ_QUEUED || r->st == RQ_SENT || r->st == RQ_DONE) && r->deadline < next)
			next = r->deadline;
	}
	if (c->st == DV_DOWN && c->retry_at && c->retry_at < next)
		next = c->retry_at;
	if (next == UINT64_MAX) {
		uv_timer_stop(&c->timer);
		return;
	}
	uint64_t now = uv_now(c->loop);
	uv_timer_start(&c->timer, on_timer, next > now ? next - now : 0, 0);
}

/* ---- the API ---- */

dvauth_t *
dvauth_new(uv_loop_t *loop, const char *addr, unsigned timeout_ms)
{
	dvauth_t *c = xcalloc(1, sizeof *c);
	c->loop = loop;
	c->addr = xstrdup(addr);
	c->timeout_ms = timeout_ms;
	c->next_id = 1;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	/* the retry timer alone must not keep a stopping loop alive */
	uv_unref((uv_handle_t *)&c->timer);
	connect_now(c);
	return c;
}

void
dvauth_configure(dvauth_t *c, const char *addr, unsigned timeout_ms)
{
	c->timeout_ms = timeout_ms;
	if (strcmp(addr, c->addr) == 0)
		return;
	xfree(c->addr);
	c->addr = xstrdup(addr);
	c->known = false;
	c->nmechs = 0;
	c->backoff_ms = 0;
	if (c->st != DV_DOWN)
		conn_lost(c, "dovecot_auth_socket changed");
	connect_now(c);
}

static void
timer_closed(uv_handle_t *h)
{
	dvauth_t *c = h->data;
	c->timer_closed = true;
	if (c->freed && c->nclosing == 0 && !c->conn)
		xfree(c);
}

void
dvauth_close(dvauth_t *c)
{
	if (c->closed)
		return;
	c->closed = true;
	c->retry_at = 0;
	/* everything still known fails now: nobody will answer it */
	conn_lost(c, "tern is stopping");
	while (c->nreqs > 0)
		req_deliver(c, 0, DVAUTH_TEMP, "tern is stopping");
	uv_close((uv_handle_t *)&c->timer, timer_closed);
}

void
dvauth_free(dvauth_t *c)
{
	if (!c)
		return;
	dvauth_close(c);
	xfree(c->addr);
	c->addr = NULL;
	xfree(c->reqs);
	c->reqs = NULL;
	c->capreqs = 0;
	c->freed = true;
	if (c->timer_closed && c->nclosing == 0 && !c->conn)
		xfree(c);
}

/* may a mechanism Dovecot announced with flags be offered? */
static bool
offerable(unsigned flags, bool tls)
{
	if (flags & DVP_MECH_PRIVATE)
		return false;
	/* Dovecot's "plaintext": the password goes in clear, so only under TLS
	 * (tern offers AUTH only under TLS anyway: RFC 4954 §4) */
	if ((flags & DVP_MECH_PLAINTEXT) && !tls)
		return false;
	return true;
}

size_t
dvauth_mechs(const dvauth_t *c, bool tls, buf_t *out)
{
	size_t n = 0;
	for (size_t k = 0; k < sizeof relayed / sizeof relayed[0]; k++) {
		bool ok = !c->known;
		for (size_t i = 0; c->known && i < c->nmechs && !ok; i++)
			ok = strcmp(c->mechs[i].name, relayed[k]) == 0 && offerable(c->mechs[i].flags, tls);
		/* never reached yet: both are plaintext mechanisms */
		if (!c->known && !tls)
			ok = false;
		if (ok) {
			buf_printf(out, " %s", relayed[k]);
			n++;
		}
	}
	return n;
}

bool
dvauth_mech_ok(const dvauth_t *c, const char *mech, size_t n, bool tls, const char **canon)
{
	for (size_t k = 0; k < sizeof relayed / sizeof relayed[0]; k++) {
		if (strlen(relayed[k]) != n || strncasecmp(mech, relayed[k], n) != 0)
			continue;
		if (!c->known) {
			if (!tls)
				return false;
			*canon = relayed[k];
			return true;
		}
		for (size_t i = 0; i < c->nmechs; i++) {
			if (strcmp(c->mechs[i].name, relayed[k]) == 0 && offerable(c->mechs[i].flags, tls)) {
				*canon = relayed[k];
				return true;
			}
		}
		return false;
	}
	return false;
}

dvauth_req_t *
dvauth_begin(dvauth_t *c, const dvauth_params_t *p, dvauth_cb cb, void *arg)
{
	dvauth_req_t *r = xcalloc(1, sizeof *r);
	r->c = c;
	r->cb = cb;
	r->arg = arg;
	r->id = c->next_id++;
	if (c->next_id > 0xffffffffUL)
		c->next_id = 1;
	dvproto_auth_t a = {
		.mech = p->mech, .service = "smtp", .session = p->session, .secured = p->tls,
		.lip = p->lip, .rip = p->rip, .lport = p->lport, .rport = p->rport,
		.resp = p->resp, .resp_len = p->resp_len,
	};
	if (dvproto_format_auth(&r->line, r->id, &a) < 0) {
		req_free(r);
		return NULL;
	}
	req_add(c, r);
	uint64_t now = uv_now(c->loop);
	r->deadline = now + c->timeout_ms;
	if (c->closed) {
		req_defer(r, DVAUTH_TEMP, "tern is stopping");
		return r;
	}
	if (c->st == DV_READY) {
		send_line(c, &r->line);
		explicit_bzero(r->line.data, r->line.cap);
		buf_free(&r->line);
		r->st = RQ_SENT;
	} else {
		r->st = RQ_QUEUED;
		connect_now(c); /* DOWN: now, not at the next retry */
	}
	arm(c);
	return r;
}

int
dvauth_continue(dvauth_req_t *r, const char *resp, size_t n)
{
	dvauth_t *c = r->c;
	if (r->st != RQ_WAITING)
		return -1;
	buf_t b = BUF_INIT;
	if (dvproto_format_cont(&b, r->id, resp, n) < 0) {
		buf_free(&b);
		return -1;
	}
	if (r->lost || c->st != DV_READY) {
		req_defer(r, DVAUTH_TEMP, "connection lost during the exchange");
	} else {
		send_line(c, &b);
		r->st = RQ_SENT;
		r->deadline = uv_now(c->loop) + c->timeout_ms;
		arm(c);
	}
	explicit_bzero(b.data, b.cap);
	buf_free(&b);
	return 0;
}

void
dvauth_abort(dvauth_req_t *r)
{
	if (!r)
		return;
	dvauth_t *c = r->c;
	size_t i = req_index(c, r);
	if (i != SIZE_MAX)
		req_take(c, i);
	req_free(r);
	arm(c);
}
