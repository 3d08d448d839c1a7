/*
 * httpd.c - the HTTP listener on libmicrohttpd, driven by tern's loop
 * (see httpd.h for what a request meets, in order).
 *
 * Why this mode of MHD: MHD_USE_EPOLL without MHD_USE_INTERNAL_POLLING_THREAD
 * and with our own listening socket (MHD_OPTION_LISTEN_SOCKET). MHD keeps
 * its connections in one epoll descriptor; that descriptor is readable
 * whenever any of them (or the listener, or the suspend/resume event fd) is
 * ready, so one uv_poll_t on it tells the loop when to call MHD_run(), and
 * MHD_get_timeout() after each run sets one uv_timer_t (connection
 * timeouts, and connections MHD still has data for: edge-triggered epoll
 * inside, so it asks to be run again at once). MHD starts no thread and
 * accepts itself, so MHD's own limits (connection cap, per-connection
 * memory, timeout) apply as written. The other way (MHD_USE_NO_LISTEN_SOCKET
 * and MHD_add_connection from a uv listener) would still need MHD's epoll
 * descriptor for the connections' I/O and would add a second accept path;
 * it is kept only for httpd_add_conn (tests, the fuzz target). The socket
 * is bound by httpd_bind() before the daemon drops root, like the SMTP
 * listeners; the epoll descriptor and the event fd are made by
 * httpd_new() before the sandbox is applied.
 *
 * Asynchronous answers: MHD_ALLOW_SUSPEND_RESUME. A handler returning
 * HTTPD_LATER leaves its connection suspended; httpd_answer() stores the
 * response and resumes it, MHD calls the access handler again, which
 * queues the stored response. A request is shared by MHD (until its
 * completion callback) and, while pending, by the handler's job: it is
 * freed when both have let go (refs).
 *
 * The token: only its SHA-256 is kept; the offered token is hashed and the
 * two digests compared with CRYPTO_memcmp, so neither its content nor its
 * length leaks through timing.
 *
 * Must not: block, start threads, or know anything of mail.
 */
#include "lib/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"

#define MAX_ROUTES 64
#define DIGEST_LEN 32

typedef struct route {
	char *method;
	char *prefix;
	size_t plen;
	unsigned flags;
	httpd_handler_t fn;
	void *arg;
} route_t;

struct httpd {
	uv_loop_t *loop;
	struct MHD_Daemon *mhd;
	uv_poll_t poll;
	uv_timer_t timer;
	unsigned handles;     /* poll and timer not yet closed */
	bool stopping;
	bool running;         /* inside MHD_run: never re-enter */
	httpd_limits_t lim;
	route_t routes[MAX_ROUTES];
	size_t nroutes;
	bool have_token;
	unsigned char token[DIGEST_LEN];
	struct httpd_req *pending; /* requests waiting for httpd_answer */
};

enum req_state { R_NEW, R_BODY, R_LATER, R_READY, R_DONE };

struct httpd_req {
	httpd_t *h;                 /* NULL once the server is gone */
	struct MHD_Connection *conn; /* NULL once MHD completed it */
	const route_t *route;
	enum req_state state;
	char *method;
	char *path;
	buf_t body;
	size_t rest;                /* offset of the path after the route's prefix */
	bool too_big;
	bool in_handler;            /* the handler is running right now */
	bool orphan;                /* the server stopped while it was pending */
	int refs;                   /* MHD's, and the handler's while R_LATER */
	/* the stored answer (R_READY) */
	int status;
	const char *ctype;
	buf_t out;
	struct httpd_req *next, *prev; /* in h->pending while R_LATER */
};

static void httpd_run(httpd_t *h);
static void on_timer(uv_timer_t *t);

/* ---- addresses ---- */

int
httpd_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, buf_t *err)
{
	char host[128];
	const char *port;
	if (!spec || !*spec) {
		buf_puts(err, "empty address");
		return -1;
	}
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close[1] != ':' || (size_t)(close - spec - 1) >= sizeof host) {
			buf_printf(err, "\"%s\": expected [IPV6]:PORT", spec);
			return -1;
		}
		snprintf(host, sizeof host, "%.*s", (int)(close - spec - 1), spec + 1);
		port = close + 2;
	} else {
		const char *colon = strrchr(spec, ':');
		if (!colon) {
			snprintf(host, sizeof host, "127.0.0.1");
			port = spec;
		} else {
			if (strchr(spec, ':') != colon || (size_t)(colon - spec) >= sizeof host) {
				buf_printf(err, "\"%s\": an IPv6 address goes in brackets: [ADDR]:PORT", spec);
				return -1;
			}
			snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
			port = colon + 1;
		}
	}
	char *end;
	errno = 0;
	long p = strtol(port, &end, 10);
	if (!*port || *end || errno || p < 0 || p > 65535) {
		buf_printf(err, "\"%s\": the port must be a number from 0 to 65535", spec);
		return -1;
	}
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		*len = sizeof *s4;
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		*len = sizeof *s6;
	} else {
		buf_printf(err, "\"%s\": \"%s\" is not a numeric IP address", spec, host);
		return -1;
	}
	return 0;
}

int
httpd_bind(const char *spec, buf_t *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	if (httpd_parse_listen(spec, &ss, &len, err) < 0)
		return -1;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		buf_printf(err, "http listener %s: socket: %s", spec, strerror(errno));
		return -1;
	}
	int one = 1;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ss.ss_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		buf_printf(err, "http listener %s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void
httpd_sockname(int fd, buf_t *out)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	socklen_t len = sizeof ss;
	char a[INET6_ADDRSTRLEN] = "?";
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		buf_puts(out, "?");
		return;
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a);
		buf_printf(out, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a);
		buf_printf(out, "%s:%u", a, ntohs(s4->sin_port));
	}
}

/* ---- the token ---- */

static void
digest(const void *p, size_t n, unsigned char out[DIGEST_LEN])
{
	unsigned int olen = 0;
	if (EVP_Digest(p, n, out, &olen, EVP_sha256(), NULL) != 1 || olen != DIGEST_LEN)
		abort(); /* SHA-256 is always there */
}

void
httpd_set_token(httpd_t *h, const char *token, size_t len)
{
	h->have_token = token && len > 0;
	if (h->have_token)
		digest(token, len, h->token);
	else
		memset(h->token, 0, sizeof h->token);
}

/* "Bearer TOKEN" (RFC 6750 section 2.1; the scheme is case-insensitive) */
static bool
token_ok(const httpd_t *h, const char *auth)
{
	if (!h->have_token || !auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return false;
	const char *t = auth + 7;
	while (*t == ' ')
		t++;
	size_t n = strlen(t);
	while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	unsigned char d[DIGEST_LEN];
	digest(t, n, d);
	return CRYPTO_memcmp(d, h->token, DIGEST_LEN) == 0;
}

/* ---- routes ---- */

int
httpd_route(httpd_t *h, const char *method, const char *prefix, unsigned flags,
    httpd_handler_t fn, void *arg)
{
	if (h->nroutes >= MAX_ROUTES || !prefix || prefix[0] != '/')
		return -1;
	route_t *r = &h->routes[h->nroutes++];
	r->method = xstrdup(method);
	r->prefix = xstrdup(prefix);
	r->plen = strlen(prefix);
	r->flags = flags;
	r->fn = fn;
	r->arg = arg;
	return 0;
}

static bool
prefix_match(const route_t *r, const char *path)
{
	if (strncmp(path, r->prefix, r->plen) != 0)
		return false;
	return r->prefix[r->plen - 1] == '/' || path[r->plen] == '\0' || path[r->plen] == '/';
}

/* the longest matching prefix with this method (*path_known: some route
 * matches the path at all) */
static const route_t *
route_find(const httpd_t *h, const char *method, const char *path, bool *path_known)
{
	const route_t *best = NULL;
	*path_known = false;
	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (size_t i = 0; i < h->nroutes; i++) {
		const route_t *r = &h->routes[i];
		if (!prefix_match(r, path))
			continue;
		*path_known = true;
		if (strcmp(r->method, method) == 0 && (!best || r->plen > best->plen))
			best = r;
	}
	return best;
}

static void
allow_header(const httpd_t *h, const char *path, buf_t *out)
{
	for (size_t i = 0; i < h->nroutes; i++) {
		const route_t *r = &h->routes[i];
		if (!prefix_match(r, path))
			continue;
		/* once each */
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = prefix_match(&h->routes[j], path) && strcmp(h->routes[j].method, r->method) == 0;
		if (seen)
			continue;
		if (out->len)
			buf_puts(out, ", ");
		buf_puts(out, r->method);
		if (strcmp(r->method, "GET") == 0)
			buf_puts(out, ", HEAD");
	}
}

/* ---- responses ---- */

static enum MHD_Result
send_answer(struct MHD_Connection *c, int status, const char *ctype, buf_t *body,
    const char *hname, const char *hvalue)
{
	struct MHD_Response *resp;
	if (body && body->len) {
		size_t n = body->len;
		resp = MHD_create_response_from_buffer(n, buf_steal(body), MHD_RESPMEM_MUST_FREE);
	} else {
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	    ctype ? ctype : "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (hname)
		MHD_add_response_header(resp, hname, hvalue);
	enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return rc;
}

/* a short JSON error body: {"error": "TEXT"} (TEXT is ours: no escaping needed) */
static enum MHD_Result
send_error(struct MHD_Connection *c, int status, const char *text, const char *hname,
    const char *hvalue)
{
	buf_t b = BUF_INIT;
	buf_printf(&b, "{\"error\":\"%s\"}\n", text);
	enum MHD_Result rc = send_answer(c, status, "application/json", &b, hname, hvalue);
	buf_free(&b);
	return rc;
}

/* ---- requests ---- */

static void
req_unref(httpd_req_t *r)
{
	if (--r->refs > 0)
		return;
	xfree(r->method);
	xfree(r->path);
	buf_free(&r->body);
	buf_free(&r->out);
	xfree(r);
}

static void
pending_unlink(httpd_req_t *r)
{
	httpd_t *h = r->h;
	if (r->prev)
		r->prev->next = r->next;
	else if (h && h->pending == r)
		h->pending = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
}

/* call the handler; the answer now, or suspend */
static enum MHD_Result
req_dispatch(httpd_req_t *r)
{
	httpd_t *h = r->h;
	buf_t body = BUF_INIT;
	const char *ctype = "application/json";
	r->state = R_LATER;
	r->refs++; /* the handler's, until httpd_answer */
	r->next = h->pending;
	if (h->pending)
		h->pending->prev = r;
	h->pending = r;
	r->in_handler = true;
	int status = r->route->fn(r, r->route->arg, &body, &ctype);
	r->in_handler = false;
	if (status != HTTPD_LATER) {
		pending_unlink(r);
		r->refs--;
		r->state = R_DONE;
		if (status < 100 || status > 599)
			status = 500;
		enum MHD_Result rc = send_answer(r->conn, status, ctype, &body, NULL, NULL);
		buf_free(&body);
		return rc;
	}
	buf_free(&body);
	if (r->state == R_READY) { /* answered from inside the handler */
		r->state = R_DONE;
		return send_answer(r->conn, r->status, r->ctype, &r->out, NULL, NULL);
	}
	MHD_suspend_connection(r->conn);
	return MHD_YES;
}

void
httpd_answer(httpd_req_t *r, int status, const char *ctype, buf_t *body)
{
	if (r->orphan) { /* the server stopped meanwhile (it answered 503) */
		if (body)
			buf_reset(body);
		req_unref(r);
		return;
	}
	if (r->state != R_LATER) { /* twice: a bug in the caller */
		log_err("httpd: a request was answered twice");
		abort();
	}
	if (status < 100 || status > 599)
		status = 500;
	r->status = status;
	r->ctype = ctype ? ctype : "application/json";
	buf_reset(&r->out);
	if (body && body->len) {
		buf_append(&r->out, body->data, body->len);
		buf_reset(body);
	}
	r->state = R_READY;
	pending_unlink(r);
	/* from inside the handler, req_dispatch sends it on return; later,
	 * wake MHD (its event fd is in the epoll set the loop watches) and it
	 * calls on_request again, which sends it */
	if (!r->in_handler && r->conn) {
		MHD_resume_connection(r->conn);
		/* and run MHD on the next turn of the loop, whatever its epoll
		 * descriptor says */
		if (r->h && !r->h->stopping)
			uv_timer_start(&r->h->timer, on_timer, 0, 0);
	}
	req_unref(r); /* the handler's reference (MHD still holds its own) */
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	httpd_t *h = cls;
	httpd_req_t *r = *con_cls;
	if (!r) {
		r = xcalloc(1, sizeof *r);
		r->h = h;
		r->conn = c;
		r->refs = 1;
		r->method = xstrdup(method);
		r->path = xstrdup(url);
		*con_cls = r;
		bool path_known;
		r->route = route_find(h, method, url, &path_known);
		r->rest = r->route ? r->route->plen : 0;
		if (!r->route || !(r->route->flags & HTTPD_PUBLIC)) {
			const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
			    MHD_HTTP_HEADER_AUTHORIZATION);
			if (!token_ok(h, auth)) {
				r->state = R_DONE;
				return send_error(c, MHD_HTTP_UNAUTHORIZED,
				    auth ? "invalid token" : "a bearer token is needed",
				    MHD_HTTP_HEADER_WWW_AUTHENTICATE,
				    auth ? "Bearer realm=\"tern\", error=\"invalid_token\"" : "Bearer realm=\"tern\"");
			}
		}
		if (!r->route) {
			r->state = R_DONE;
			if (!path_known)
				return send_error(c, MHD_HTTP_NOT_FOUND, "no such resource", NULL, NULL);
			buf_t allow = BUF_INIT;
			allow_header(h, url, &allow);
			enum MHD_Result rc = send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
			    "method not allowed here", MHD_HTTP_HEADER_ALLOW, buf_cstr(&allow));
			buf_free(&allow);
			return rc;
		}
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > h->lim.max_body) {
			r->state = R_DONE;
			return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", NULL, NULL);
		}
		r->state = R_BODY;
		return MHD_YES;
	}
	switch (r->state) {
	case R_BODY:
		if (*upload_size > 0) {
			if (!r->too_big && r->body.len + *upload_size > h->lim.max_body)
				r->too_big = true;
			if (!r->too_big)
				buf_append(&r->body, upload, *upload_size);
			*upload_size = 0;
			return MHD_YES;
		}
		if (r->too_big) {
			r->state = R_DONE;
			return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body too large", NULL, NULL);
		}
		return req_dispatch(r);
	case R_READY:
		r->state = R_DONE;
		return send_answer(c, r->status, r->ctype, &r->out, NULL, NULL);
	case R_DONE:
		/* an answer was queued before the whole body came: drop the rest */
		*upload_size = 0;
		return MHD_YES;
	case R_NEW:
	case R_LATER:
		break;
	}
	*upload_size = 0;
	return MHD_YES;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	httpd_req_t *r = *con_cls;
	if (!r)
		return;
	*con_cls = NULL;
	r->conn = NULL;
	req_unref(r);
}

static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	buf_t b = BUF_INIT;
	buf_vprintf(&b, fmt, ap);
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' '))
		b.data[--b.len] = '\0';
	log_debug("httpd: %s", buf_cstr(&b));
	buf_free(&b);
}

/* ---- the loop ---- */

static void
on_timer(uv_timer_t *t)
{
	httpd_run(t->data);
}

static void
on_poll(uv_poll_t *p, int status, int events)
{
	httpd_run(p->data);
}

static unsigned
conn_count(httpd_t *h)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	return i ? i->num_connections : 0;
}

static void
httpd_run(httpd_t *h)
{
	if (h->stopping || h->running)
		return;
	h->running = true;
	unsigned before = conn_count(h);
	MHD_run(h->mhd);
	/* at the connection cap MHD takes its listening socket out of its
	 * epoll set and puts it back only at the start of a run: when this
	 * run closed connections, run again, or a client waiting in the
	 * backlog would wait for an event that never comes */
	if (conn_count(h) < before)
		MHD_run(h->mhd);
	h->running = false;
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(h->mhd, &ms) == MHD_YES)
		uv_timer_start(&h->timer, on_timer, ms > 3600000 ? 3600000 : (uint64_t)ms, 0);
	else
		uv_timer_stop(&h->timer);
}

httpd_t *
httpd_new(uv_loop_t *loop, int listen_fd, const httpd_limits_t *limits, buf_t *err)
{
	httpd_t *h = xcalloc(1, sizeof *h);
	h->loop = loop;
	if (limits)
		h->lim = *limits;
	if (!h->lim.max_conns)
		h->lim.max_conns = 64;
	if (!h->lim.timeout_s)
		h->lim.timeout_s = 10;
	if (!h->lim.max_header)
		h->lim.max_header = 16 * 1024;
	if (!h->lim.max_body)
		h->lim.max_body = 64 * 1024;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (listen_fd < 0)
		flags |= MHD_USE_NO_LISTEN_SOCKET;
	struct MHD_OptionItem opts[] = {
		{MHD_OPTION_CONNECTION_LIMIT, (intptr_t)h->lim.max_conns, NULL},
		{MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)h->lim.timeout_s, NULL},
		{MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)h->lim.max_header, NULL},
		{MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
		{MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, h},
		{MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, NULL},
		/* strict: HTTP/1.1 without Host, spaces before colons... are 400 */
		{MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL},
		{listen_fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_END, listen_fd, NULL},
		{MHD_OPTION_END, 0, NULL},
	};
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts,
	    MHD_OPTION_END);
	if (!h->mhd) {
		buf_puts(err, "libmicrohttpd could not start (see the debug log)");
		if (listen_fd >= 0)
			close(listen_fd);
		xfree(h);
		return NULL;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info || info->epoll_fd < 0) {
		buf_puts(err, "libmicrohttpd has no epoll descriptor");
		MHD_stop_daemon(h->mhd);
		xfree(h);
		return NULL;
	}
	uv_poll_init(loop, &h->poll, info->epoll_fd);
	uv_timer_init(loop, &h->timer);
	h->poll.data = h;
	h->timer.data = h;
	h->handles = 2;
	uv_poll_start(&h->poll, UV_READABLE, on_poll);
	httpd_run(h);
	return h;
}

int
httpd_add_conn(httpd_t *h, int fd, const struct sockaddr *sa, socklen_t salen)
{
	if (MHD_add_connection(h->mhd, fd, sa, salen) != MHD_YES)
		return -1;
	httpd_run(h);
	return 0;
}

/* ---- stop ---- */

static void
on_handle_closed(uv_handle_t *hd)
{
	httpd_t *h = hd->data;
	if (--h->handles > 0)
		return;
	for (size_t i = 0; i < h->nroutes; i++) {
		xfree(h->routes[i].method);
		xfree(h->routes[i].prefix);
	}
	xfree(h);
}

void
httpd_stop(httpd_t *h)
{
	if (!h || h->stopping)
		return;
	/* requests still waiting: 503 now, the handler's httpd_answer later
	 * only frees them */
	while (h->pending) {
		httpd_req_t *r = h->pending;
		pending_unlink(r);
		r->status = MHD_HTTP_SERVICE_UNAVAILABLE;
		r->ctype = "application/json";
		buf_reset(&r->out);
		buf_puts(&r->out, "{\"error\":\"the server is stopping\"}\n");
		r->state = R_READY;
		r->orphan = true; /* the handler's reference stays, for httpd_answer */
		r->h = NULL;
		if (r->conn)
			MHD_resume_connection(r->conn);
	}
	h->stopping = true;
	uv_poll_stop(&h->poll);
	uv_timer_stop(&h->timer);
	MHD_run(h->mhd); /* lets the resumed ones go out if they can */
	MHD_stop_daemon(h->mhd);
	h->mhd = NULL;
	uv_close((uv_handle_t *)&h->poll, on_handle_closed);
	uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}

const char *
httpd_req_method(const httpd_req_t *r)
{
	return r->method;
}

const char *
httpd_req_path(const httpd_req_t *r)
{
	return r->path;
}

const char *
httpd_req_rest(const httpd_req_t *r)
{
	const char *p = r->path + r->rest;
	while (*p == '/')
		p++;
	return p;
}

const char *
httpd_req_query(httpd_req_t *r, const char *key)
{
	return r->conn ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key) : NULL;
}

const char *
httpd_req_header(httpd_req_t *r, const char *name)
{
	return r->conn ? MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name) : NULL;
}

const buf_t *
httpd_req_body(const httpd_req_t *r)
{
	return &r->body;
}
