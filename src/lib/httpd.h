/*
 * httpd.h - a small HTTP/1.1 server on tern's libuv loop (libmicrohttpd
 * underneath), for the metrics, the status page and the JSON API.
 *
 * Knows no mail: it takes routes (a method and a path prefix with a
 * handler), checks the bearer token, enforces the limits, and sends what
 * the handler answers. No thread of its own: MHD runs in its external
 * epoll mode, its epoll descriptor watched by a uv_poll_t and its timeout
 * kept on a uv_timer_t (httpd.c says why this mode).
 *
 * Every request, in order:
 *   - malformed (request line, headers, chunking): 400 from MHD itself;
 *     headers larger than the connection's memory (max_header): 431 (RFC
 *     6585; the request-line too long: 414), from MHD itself;
 *   - the route: the longest registered prefix that matches the path
 *     ("/api/v1/queue" matches "/api/v1/queue" and "/api/v1/queue/X",
 *     not "/api/v1/queues"; a prefix ending in '/' matches everything
 *     under it); HEAD is matched as GET (MHD sends no body);
 *   - the token: unless the route found for the path and method is
 *     HTTPD_PUBLIC, "Authorization: Bearer TOKEN" must carry the token
 *     (compared in constant time); else 401 with "WWW-Authenticate:
 *     Bearer realm="tern"" (RFC 6750 section 3), before the body is read
 *     and before a 404 or 405 could tell what exists;
 *   - no route for the path: 404; a route for the path but not for the
 *     method: 405 with Allow;
 *   - a body longer than max_body (Content-Length, or as it arrives when
 *     chunked): 413;
 *   - then the handler.
 * A connection idle for timeout_s is closed (a client sending slowly is
 * cut, the others are served meanwhile); at most max_conns connections
 * are open at once (more wait in the listening socket's backlog until one
 * closes).
 *
 * Handlers (httpd_handler_t) run on the loop and must not block. They
 * either answer at once (return the status; body and *ctype filled in) or
 * return HTTPD_LATER and call httpd_answer() once, later, from the loop
 * (e.g. from a uv_queue_work callback): the connection is suspended
 * meanwhile. If the server is stopped before that, httpd_answer() only
 * frees the request.
 */
#ifndef TERN_HTTPD_H
#define TERN_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#include "lib/buf.h"

typedef struct httpd httpd_t;
typedef struct httpd_req httpd_req_t;

/* route flags */
#define HTTPD_PUBLIC 1u /* no token needed (e.g. /metrics when so configured) */

/* a handler's return value: the answer comes later through httpd_answer() */
#define HTTPD_LATER 0

/*
 * A route's handler. Return an HTTP status (200...599) with the body
 * appended to *body (empty by default) and *ctype set (default
 * "application/json"; a static string), or HTTPD_LATER.
 */
typedef int (*httpd_handler_t)(httpd_req_t *req, void *arg, buf_t *body, const char **ctype);

typedef struct httpd_limits {
	unsigned max_conns;  /* connections open at once; 0: 64 */
	unsigned timeout_s;  /* a connection idle this long is closed; 0: 10 */
	size_t max_header;   /* memory per connection for the request line and headers; 0: 16 KiB */
	size_t max_body;     /* request body; 0: 64 KiB */
} httpd_limits_t;

/* "ADDR:PORT", "[V6ADDR]:PORT" or "PORT" (then 127.0.0.1), numeric only
 * (no DNS). 0 with the address in *ss, or -1 with the reason in err. */
int httpd_parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len, buf_t *err);

/* Bind and listen on spec (blocking; before privileges are dropped, as
 * the SMTP listeners). The descriptor, or -1 with the reason in err. */
int httpd_bind(const char *spec, buf_t *err);

/* "ADDR:PORT" of a bound socket (for the log and the tests), into out */
void httpd_sockname(int fd, buf_t *out);

/*
 * A server on loop, accepting on listen_fd (taken over: closed by
 * httpd_stop), or on no socket at all when listen_fd is -1 (connections
 * then come only through httpd_add_conn: tests, fuzzing). limits may be
 * NULL (the defaults). NULL with the reason in err.
 */
httpd_t *httpd_new(uv_loop_t *loop, int listen_fd, const httpd_limits_t *limits, buf_t *err);

/* The bearer token (copied; only its SHA-256 is kept). NULL or empty:
 * every route that is not public answers 401. May be called again at any
 * time (a reload). */
void httpd_set_token(httpd_t *h, const char *token, size_t len);

/* Add a route; method "GET", "POST", "PUT", "DELETE"... (exact, upper
 * case); prefix starts with '/'. Routes are added before requests come
 * (they are not removed). 0, or -1 when the table is full (64). */
int httpd_route(httpd_t *h, const char *method, const char *prefix, unsigned flags,
    httpd_handler_t fn, void *arg);

/* Serve an already connected socket (taken over). 0 or -1. */
int httpd_add_conn(httpd_t *h, int fd, const struct sockaddr *sa, socklen_t salen);

/* Close the listener and every connection (a request waiting for
 * httpd_answer gets 503); h is freed once its handles are closed. */
void httpd_stop(httpd_t *h);

/* ---- the request, inside a handler (and until httpd_answer) ---- */

const char *httpd_req_method(const httpd_req_t *r);
/* the path, without the query string, as sent (not %-decoded) */
const char *httpd_req_path(const httpd_req_t *r);
/* the part of the path after the route's prefix, without a leading '/'
 * ("" when the path is the prefix) */
const char *httpd_req_rest(const httpd_req_t *r);
/* a query argument (%-decoded by MHD), NULL when absent; "" for "?key" */
const char *httpd_req_query(httpd_req_t *r, const char *key);
/* a request header (case-insensitive name), NULL when absent */
const char *httpd_req_header(httpd_req_t *r, const char *name);
/* the request body as received (may be empty; NUL-guarded) */
const buf_t *httpd_req_body(const httpd_req_t *r);

/* Answer a request whose handler returned HTTPD_LATER: once, from the
 * loop. body's content is taken (body is left empty); ctype NULL means
 * "application/json". */
void httpd_answer(httpd_req_t *r, int status, const char *ctype, buf_t *body);

#endif
