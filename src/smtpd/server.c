/*
 * server.c - ACCEPT: listeners and session limits (see server.h).
 *
 * Limits are checked at accept time: a connection over the total limit or
 * over its IP's limit gets "421 4.7.0" and is closed at once, without a
 * session. Sessions per IP are counted in a small open-hashing table keyed
 * by the textual IP.
 */
#include "smtpd/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/conn.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "smtpd/session.h"

#define IPTAB_SIZE 1024

typedef struct ipcount {
	struct ipcount *next;
	unsigned count;
	char ip[64];
} ipcount_t;

typedef struct listener {
	uv_tcp_t tcp;
	struct server *srv;
	enum listen_mode mode;
} listener_t;

typedef struct slist {
	struct slist *next, *prev;
	session_t *s;
} slist_t;

struct server {
	tern_t *t;
	listener_t *ls;
	size_t nls;
	size_t nclosed;
	unsigned nsessions;
	ipcount_t *iptab[IPTAB_SIZE];
	slist_t head; /* every live session, for shutdown */
	bool stopping;
	void (*stop_done)(void *);
	void *stop_arg;
};

static const char *
mode_name(enum listen_mode m)
{
	switch (m) {
	case LISTEN_SUBMISSION: return "submission";
	case LISTEN_SMTPS: return "smtps";
	default: return "smtp";
	}
}

static unsigned
ip_hash(const char *ip)
{
	unsigned h = 5381;
	for (; *ip; ip++)
		h = h * 33 + (unsigned char)*ip;
	return h % IPTAB_SIZE;
}

static ipcount_t *
ip_find(server_t *s, const char *ip, bool create)
{
	unsigned h = ip_hash(ip);
	for (ipcount_t *e = s->iptab[h]; e; e = e->next)
		if (strcmp(e->ip, ip) == 0)
			return e;
	if (!create)
		return NULL;
	ipcount_t *e = xcalloc(1, sizeof *e);
	snprintf(e->ip, sizeof e->ip, "%s", ip);
	e->next = s->iptab[h];
	s->iptab[h] = e;
	return e;
}

static void
ip_release(server_t *s, const char *ip)
{
	unsigned h = ip_hash(ip);
	for (ipcount_t **pp = &s->iptab[h]; *pp; pp = &(*pp)->next) {
		ipcount_t *e = *pp;
		if (strcmp(e->ip, ip) != 0)
			continue;
		if (e->count > 0)
			e->count--;
		if (e->count == 0) {
			*pp = e->next;
			xfree(e);
		}
		return;
	}
}

tern_t *
server_tern(struct server *srv)
{
	return srv->t;
}

/* A refused connection: say why, then close. */
static void
refuse_event(conn_t *c, enum conn_event ev, int err, void *arg)
{
	(void)c;
	(void)ev;
	(void)err;
	(void)arg;
}

static void
stop_check(server_t *s)
{
	if (s->stopping && s->nsessions == 0 && s->nclosed == s->nls && s->stop_done) {
		void (*cb)(void *) = s->stop_done;
		s->stop_done = NULL;
		cb(s->stop_arg);
	}
}

void
server_session_gone(struct server *srv, session_t *sess, const char *ip)
{
	for (slist_t *e = srv->head.next; e != &srv->head; e = e->next) {
		if (e->s == sess) {
			e->prev->next = e->next;
			e->next->prev = e->prev;
			xfree(e);
			break;
		}
	}
	ip_release(srv, ip);
	srv->nsessions--;
	stop_check(srv);
}

static void
on_connection(uv_stream_t *server, int status)
{
	listener_t *l = server->data;
	server_t *s = l->srv;
	const config_t *c = s->t->cfg;
	if (status < 0) {
		log_warn("accept error: %s", uv_strerror(status));
		return;
	}
	conn_t *conn = conn_accept(s->t->loop, server, 64 * 1024, refuse_event, NULL);
	if (!conn)
		return;
	const char *ip = conn_peer_ip(conn);
	if (s->stopping) {
		conn_printf(conn, "421 4.3.2 %s Service shutting down\r\n", c->hostname);
		conn_close(conn);
		return;
	}
	if (s->nsessions >= c->max_sessions) {
		log_warn("refused client=%s reason=\"too many sessions (%u)\"", ip, s->nsessions);
		conn_printf(conn, "421 4.7.0 %s Error: too many connections; try again later\r\n", c->hostname);
		conn_close(conn);
		return;
	}
	ipcount_t *e = ip_find(s, ip, true);
	if (e->count >= c->max_sessions_per_ip) {
		log_warn("refused client=%s reason=\"too many sessions from this address (%u)\"", ip, e->count);
		conn_printf(conn, "421 4.7.0 %s Error: too many connections from %s\r\n", c->hostname, ip);
		conn_close(conn);
		return;
	}
	e->count++;
	s->nsessions++;
	slist_t *n = xcalloc(1, sizeof *n);
	n->next = s->head.next;
	n->prev = &s->head;
	s->head.next->prev = n;
	s->head.next = n;
	n->s = session_new(s, conn, l->mode);
}

server_t *
server_new(tern_t *t, buf_t *err)
{
	const config_t *c = t->cfg;
	server_t *s = xcalloc(1, sizeof *s);
	s->t = t;
	s->head.next = s->head.prev = &s->head;
	s->ls = xcalloc(c->nlisten ? c->nlisten : 1, sizeof *s->ls);
	for (size_t i = 0; i < c->nlisten; i++) {
		const listen_spec_t *ls = &c->listen[i];
		listener_t *l = &s->ls[i];
		struct sockaddr_storage ss;
		int r;
		if (strchr(ls->addr, ':'))
			r = uv_ip6_addr(ls->addr, ls->port, (struct sockaddr_in6 *)&ss);
		else
			r = uv_ip4_addr(ls->addr, ls->port, (struct sockaddr_in *)&ss);
		if (r < 0) {
			buf_printf(err, "listen %s:%d: bad address", ls->addr, ls->port);
			goto fail;
		}
		uv_tcp_init(t->loop, &l->tcp);
		l->tcp.data = l;
		l->srv = s;
		l->mode = ls->mode;
		s->nls++;
		r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, strchr(ls->addr, ':') ? UV_TCP_IPV6ONLY : 0);
		if (r == 0)
			r = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
		if (r < 0) {
			buf_printf(err, "listen %s:%d: %s", ls->addr, ls->port, uv_strerror(r));
			goto fail;
		}
		struct sockaddr_storage bound;
		int len = sizeof bound;
		uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&bound, &len);
		int port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
		                                       : ntohs(((struct sockaddr_in *)&bound)->sin_port);
		if (strchr(ls->addr, ':'))
			log_info("listening on [%s]:%d mode=%s", ls->addr, port, mode_name(ls->mode));
		else
			log_info("listening on %s:%d mode=%s", ls->addr, port, mode_name(ls->mode));
	}
	return s;
fail:
	/* handles are closed by server_free via the loop */
	server_free(s);
	return NULL;
}

int
server_start(server_t *s)
{
	(void)s;
	return 0;
}

static void
listener_closed(uv_handle_t *h)
{
	listener_t *l = h->data;
	server_t *s = l->srv;
	s->nclosed++;
	stop_check(s);
}

void
server_stop(server_t *s, void (*done)(void *arg), void *arg)
{
	s->stopping = true;
	s->stop_done = done;
	s->stop_arg = arg;
	for (size_t i = 0; i < s->nls; i++)
		uv_close((uv_handle_t *)&s->ls[i].tcp, listener_closed);
	/* session_shutdown may free a session (and its list node) later, never now */
	for (slist_t *e = s->head.next; e != &s->head; e = e->next)
		session_shutdown(e->s);
	stop_check(s);
}

void
server_free(server_t *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < IPTAB_SIZE; i++) {
		ipcount_t *e = s->iptab[i];
		while (e) {
			ipcount_t *n = e->next;
			xfree(e);
			e = n;
		}
	}
	/* listeners must already be closed (server_stop) or never opened */
	if (!s->stopping) {
		for (size_t i = 0; i < s->nls; i++)
			uv_close((uv_handle_t *)&s->ls[i].tcp, NULL);
		uv_run(s->t->loop, UV_RUN_NOWAIT);
	}
	xfree(s->ls);
	xfree(s);
}
