/*
 * test_httpd.c - the HTTP listener (src/lib/httpd.c) on a real loop and a
 * real loopback socket: the bearer token (missing, wrong scheme, wrong,
 * right, a public route without one, a token changed at run time), routing
 * (longest prefix, the rest of the path, query arguments, 404, 405 with
 * Allow, HEAD as GET), the body (passed to the handler; 413 by
 * Content-Length and when chunked), malformed requests (400), headers too
 * large (431), an answer that comes later (HTTPD_LATER + httpd_answer from
 * a timer), a slow client cut by the timeout, the connection cap (a
 * client beyond it waits until idle ones are cut), httpd_parse_listen's forms,
 * and a server stopped while a request waits (503, then the late answer
 * only frees).
 *
 * Each exchange: a client thread speaks raw bytes to the listener while
 * the test's loop runs; the thread wakes the loop (uv_async) when the
 * server closed the connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/httpd.h"

static uv_loop_t *loop;
static httpd_t *srv;
static int port;
static uv_async_t wake;

typedef struct client {
	const char *send1;  /* sent at once */
	const char *send2;  /* sent after pause_ms, if not NULL */
	int pause_ms;
	buf_t got;
	double secs;        /* until the server closed */
} client_t;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
send_all(int fd, const char *s)
{
	size_t n = strlen(s), off = 0;
	while (off < n) {
		ssize_t w = send(fd, s + off, n - off, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

static void *
client_main(void *arg)
{
	client_t *c = arg;
	double t0 = now_s();
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct timeval tv = {10, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
		send_all(fd, c->send1);
		if (c->send2) {
			usleep((useconds_t)c->pause_ms * 1000);
			send_all(fd, c->send2);
		}
		char b[4096];
		ssize_t r;
		while ((r = read(fd, b, sizeof b)) > 0)
			buf_append(&c->got, b, (size_t)r);
	}
	close(fd);
	c->secs = now_s() - t0;
	uv_async_send(&wake);
	return NULL;
}

static void
on_wake(uv_async_t *a)
{
	uv_stop(loop);
}

/* one exchange; the reply (headers and body) into c->got */
static void
exchange(client_t *c)
{
	pthread_t th;
	buf_init(&c->got);
	assert_int_equal(pthread_create(&th, NULL, client_main, c), 0);
	uv_run(loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
}

static char *
ask(const char *req)
{
	client_t c = {.send1 = req};
	exchange(&c);
	return buf_steal(&c.got);
}

static int
status_of(const char *resp)
{
	int st = 0;
	if (!resp || sscanf(resp, "HTTP/1.%*d %d", &st) != 1)
		return 0;
	return st;
}

static const char *
body_of(const char *resp)
{
	const char *b = resp ? strstr(resp, "\r\n\r\n") : NULL;
	return b ? b + 4 : "";
}

/* ---- handlers ---- */

static int
h_echo(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	const char *q = httpd_req_query(req, "q");
	const buf_t *in = httpd_req_body(req);
	buf_printf(body, "%s|%s|%s|%s|%zu|%s", (const char *)arg, httpd_req_method(req),
	    httpd_req_rest(req), q ? q : "-", in->len, in->len ? in->data : "");
	*ctype = "text/plain";
	return 200;
}

static uv_timer_t later_timer;
static httpd_req_t *later_req;

static void
on_later(uv_timer_t *t)
{
	buf_t b = BUF_INIT;
	buf_puts(&b, "{\"later\":true}");
	httpd_answer(later_req, 202, NULL, &b);
	assert_int_equal(b.len, 0); /* taken */
	buf_free(&b);
	later_req = NULL;
}

static int
h_later(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	later_req = req;
	uv_timer_start(&later_timer, on_later, 50, 0);
	return HTTPD_LATER;
}

static int
h_inside(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	buf_t b = BUF_INIT;
	buf_puts(&b, "inside");
	httpd_answer(req, 201, "text/plain", &b);
	buf_free(&b);
	return HTTPD_LATER;
}

static int
h_never(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	later_req = req; /* answered by the test after httpd_stop */
	return HTTPD_LATER;
}

#define AUTH "Authorization: Bearer s3cret-token\r\n"

static void
start_server(const httpd_limits_t *lim)
{
	buf_t err = BUF_INIT;
	int fd = httpd_bind("127.0.0.1:0", &err);
	assert_true(fd >= 0);
	buf_t name = BUF_INIT;
	httpd_sockname(fd, &name);
	const char *colon = strrchr(buf_cstr(&name), ':');
	assert_non_null(colon);
	port = atoi(colon + 1);
	assert_true(port > 0);
	buf_free(&name);
	srv = httpd_new(loop, fd, lim, &err);
	assert_non_null(srv);
	httpd_set_token(srv, "s3cret-token", strlen("s3cret-token"));
	assert_int_equal(httpd_route(srv, "GET", "/api/v1/queue", 0, h_echo, "queue"), 0);
	assert_int_equal(httpd_route(srv, "POST", "/api/v1/queue", 0, h_echo, "queue-post"), 0);
	assert_int_equal(httpd_route(srv, "GET", "/api/v1/queue/special", 0, h_echo, "special"), 0);
	assert_int_equal(httpd_route(srv, "GET", "/metrics", HTTPD_PUBLIC, h_echo, "metrics"), 0);
	assert_int_equal(httpd_route(srv, "GET", "/later", 0, h_later, NULL), 0);
	assert_int_equal(httpd_route(srv, "GET", "/inside", 0, h_inside, NULL), 0);
	assert_int_equal(httpd_route(srv, "GET", "/never", 0, h_never, NULL), 0);
	assert_int_equal(httpd_route(srv, "GET", "/tree/", 0, h_echo, "tree"), 0);
	buf_free(&err);
}

static uv_loop_t the_loop;

static int
setup(void **state)
{
	loop = &the_loop;
	uv_loop_init(loop);
	uv_async_init(loop, &wake, on_wake);
	uv_timer_init(loop, &later_timer);
	httpd_limits_t lim = {.max_conns = 8, .timeout_s = 1, .max_header = 4096, .max_body = 1000};
	start_server(&lim);
	return 0;
}

static int
teardown(void **state)
{
	if (srv)
		httpd_stop(srv);
	srv = NULL;
	uv_close((uv_handle_t *)&wake, NULL);
	uv_close((uv_handle_t *)&later_timer, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
	return 0;
}

/* ---- tests ---- */

static void
test_token(void **state)
{
	char *r = ask("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_int_equal(status_of(r), 401);
	assert_non_null(strstr(r, "WWW-Authenticate: Bearer realm=\"tern\"\r\n"));
	free(r);
	r = ask("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "Authorization: Bearer s3cret-tokeN\r\n\r\n");
	assert_int_equal(status_of(r), 401);
	assert_non_null(strstr(r, "error=\"invalid_token\""));
	free(r);
	r = ask("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "Authorization: Bearer s3cret-token-and-more\r\n\r\n");
	assert_int_equal(status_of(r), 401);
	free(r);
	r = ask("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "Authorization: Basic czNjcmV0LXRva2Vu\r\n\r\n");
	assert_int_equal(status_of(r), 401);
	free(r);
	/* unknown paths too: 401 before 404 says nothing of what exists */
	r = ask("GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_int_equal(status_of(r), 401);
	free(r);
	r = ask("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "Authorization: bearer s3cret-token\r\n\r\n");
	assert_int_equal(status_of(r), 200);
	assert_string_equal(body_of(r), "queue|GET||-|0|");
	assert_non_null(strstr(r, "Content-Type: text/plain\r\n"));
	free(r);
	/* public: no token needed */
	r = ask("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_int_equal(status_of(r), 200);
	assert_string_equal(body_of(r), "metrics|GET||-|0|");
	free(r);
	/* a new token (reload): the old one is refused */
	httpd_set_token(srv, "other", 5);
	r = ask("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
	assert_int_equal(status_of(r), 401);
	free(r);
	r = ask("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "Authorization: Bearer other\r\n\r\n");
	assert_int_equal(status_of(r), 200);
	free(r);
	/* none at all: everything but public routes is refused */
	httpd_set_token(srv, NULL, 0);
	r = ask("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "Authorization: Bearer \r\n\r\n");
	assert_int_equal(status_of(r), 401);
	free(r);
	httpd_set_token(srv, "s3cret-token", strlen("s3cret-token"));
}

static void
test_routing(void **state)
{
	char *r = ask("GET /api/v1/queue/ABC?q=a%20b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
	assert_int_equal(status_of(r), 200);
	assert_string_equal(body_of(r), "queue|GET|ABC|a b|0|");
	free(r);
	r = ask("GET /api/v1/queue/special/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
	assert_string_equal(body_of(r), "special|GET|x|-|0|");
	free(r);
	r = ask("GET /api/v1/queues HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
	assert_int_equal(status_of(r), 404);
	assert_non_null(strstr(r, "Content-Type: application/json"));
	free(r);
	r = ask("GET /tree/a/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
	assert_string_equal(body_of(r), "tree|GET|a/b|-|0|");
	free(r);
	r = ask("DELETE /api/v1/queue/ABC HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
	assert_int_equal(status_of(r), 405);
	assert_non_null(strstr(r, "Allow: GET, HEAD, POST\r\n"));
	free(r);
	r = ask("HEAD /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
	assert_int_equal(status_of(r), 200);
	assert_string_equal(body_of(r), "");
	free(r);
	r = ask("POST /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH
	    "Content-Length: 5\r\n\r\nhello");
	assert_int_equal(status_of(r), 200);
	assert_string_equal(body_of(r), "queue-post|POST||-|5|hello");
	free(r);
}

static void
test_limits(void **state)
{
	/* Content-Length over max_body: 413 before the body is read */
	char *r = ask("POST /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH
	    "Content-Length: 5000\r\n\r\n");
	assert_int_equal(status_of(r), 413);
	free(r);
	/* chunked, growing past max_body */
	buf_t big = BUF_INIT;
	buf_puts(&big, "POST /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH
	    "Transfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 3; i++) {
		buf_puts(&big, "1f4\r\n");
		for (int k = 0; k < 500; k++)
			buf_putc(&big, 'x');
		buf_puts(&big, "\r\n");
	}
	buf_puts(&big, "0\r\n\r\n");
	r = ask(buf_cstr(&big));
	assert_int_equal(status_of(r), 413);
	free(r);
	buf_free(&big);
	/* headers past the connection's memory */
	buf_puts(&big, "GET /api/v1/queue HTTP/1.1\r\nHost: x\r\n" AUTH "X-Big: ");
	for (int k = 0; k < 8000; k++)
		buf_putc(&big, 'y');
	buf_puts(&big, "\r\n\r\n");
	r = ask(buf_cstr(&big));
	int st = status_of(r);
	assert_true(st == 431 || st == 413);
	free(r);
	buf_free(&big);
	/* malformed */
	r = ask("THIS IS NOT HTTP\r\n\r\n");
	assert_int_equal(status_of(r), 400);
	free(r);
	r = ask("GET /api/v1/queue HTTP/1.1\r\nConnection: close\r\n" AUTH "\r\n"); /* no Host */
	assert_int_equal(status_of(r), 400);
	free(r);
	r = ask("GET /api/v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH
	    "Transfer-Encoding: chunked\r\n\r\nzz\r\n");
	st = status_of(r);
	assert_true(st == 400 || st == 0); /* a bad chunk size: 400 or the connection closed */
	free(r);
}

static void
test_slow_client(void **state)
{
	/* half a request, then silence: cut after timeout_s (1 s) */
	client_t c = {.send1 = "GET /api/v1/queue HTTP/1.1\r\nHost: x\r\n", .send2 = AUTH "\r\n",
	    .pause_ms = 3000};
	exchange(&c);
	assert_true(c.secs < 5.0);
	assert_int_equal(status_of(buf_cstr(&c.got)), 0); /* closed without an answer */
	buf_free(&c.got);
}

/* max_conns (8) idle connections: a ninth waits (in the backlog) until
 * the idle ones are cut by the timeout (1 s), then it is served */
static void
test_conn_cap(void **state)
{
	int idle[8];
	for (int i = 0; i < 8; i++) {
		idle[i] = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(connect(idle[i], (struct sockaddr *)&sa, sizeof sa), 0);
	}
	client_t c = {.send1 = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"};
	exchange(&c);
	assert_int_equal(status_of(buf_cstr(&c.got)), 200);
	assert_true(c.secs > 0.8 && c.secs < 5.0); /* once the idle ones were cut */
	buf_free(&c.got);
	for (int i = 0; i < 8; i++)
		close(idle[i]);
}

static void
test_later(void **state)
{
	char *r = ask("GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
	assert_int_equal(status_of(r), 202);
	assert_string_equal(body_of(r), "{\"later\":true}");
	free(r);
	r = ask("GET /inside HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
	assert_int_equal(status_of(r), 201);
	assert_string_equal(body_of(r), "inside");
	free(r);
	/* keep-alive: two requests on one connection, the first answered later */
	r = ask("GET /later HTTP/1.1\r\nHost: x\r\n" AUTH "\r\n"
	    "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	assert_int_equal(status_of(r), 202);
	assert_non_null(strstr(r, "metrics|GET||-|0|"));
	free(r);
}

static void
on_stop_timer(uv_timer_t *t)
{
	httpd_stop(srv);
	srv = NULL;
}

static void
test_stop_pending(void **state)
{
	/* the server stops while a request waits: 503, the late answer frees */
	static uv_timer_t t;
	uv_timer_init(loop, &t);
	uv_timer_start(&t, on_stop_timer, 300, 0);
	later_req = NULL;
	char *r = ask("GET /never HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" AUTH "\r\n");
	int st = status_of(r);
	assert_true(st == 503 || st == 0);
	free(r);
	assert_non_null(later_req);
	buf_t b = BUF_INIT;
	buf_puts(&b, "too late");
	httpd_answer(later_req, 200, NULL, &b);
	buf_free(&b);
	later_req = NULL;
	uv_close((uv_handle_t *)&t, NULL);
}

static void
test_parse_listen(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	buf_t err = BUF_INIT;
	assert_int_equal(httpd_parse_listen("8025", &ss, &len, &err), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
	assert_int_equal(ntohs(s4->sin_port), 8025);
	assert_int_equal(ntohl(s4->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(httpd_parse_listen("0.0.0.0:80", &ss, &len, &err), 0);
	assert_int_equal(httpd_parse_listen("[::1]:8025", &ss, &len, &err), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	const char *bad[] = {"", "localhost:80", "1.2.3.4:", "1.2.3.4:70000", "::1:80", "[::1]80",
	    "1.2.3.4:8x", "1.2.3.4.5:1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		buf_reset(&err);
		assert_int_equal(httpd_parse_listen(bad[i], &ss, &len, &err), -1);
		assert_true(err.len > 0);
	}
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_routing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_client, setup, teardown),
		cmocka_unit_test_setup_teardown(test_later, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conn_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_pending, setup, teardown),
		cmocka_unit_test(test_parse_listen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
