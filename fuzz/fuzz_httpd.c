/*
 * fuzz_httpd.c - libFuzzer target for the HTTP listener's request path
 * (src/lib/httpd.c over libmicrohttpd): the input is the raw byte stream
 * of a client. One server (no listening socket) lives for the whole run
 * with the routes the daemon has in kind: protected GET and POST, a
 * public one, one answered later from a timer. Each input goes through a
 * socketpair handed to httpd_add_conn, then the write side is shut and
 * the loop runs until the server closes.
 *
 * Invariants: whatever comes back starts with "HTTP/1.x NNN" (or nothing);
 * a protected handler's body never appears unless the input carried the
 * token; every connection is closed once its input is done (the cap of
 * 16 is never reached).
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "fuzz_check.h"
#include "lib/buf.h"
#include "lib/httpd.h"
#include "lib/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "fuzz-token"
#define SECRET "protected-body"

static uv_loop_t *loop;
static httpd_t *srv;
static uv_timer_t later_timer;
static httpd_req_t *later_req;

static int
h_protected(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	const char *q = httpd_req_query(req, "q");
	const buf_t *in = httpd_req_body(req);
	buf_printf(body, "%s %s %s %zu", SECRET, httpd_req_rest(req), q ? q : "-", in->len);
	return 200;
}

static int
h_public(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	buf_puts(body, "public");
	*ctype = "text/plain";
	return 200;
}

static void
on_later(uv_timer_t *t)
{
	if (!later_req)
		return;
	buf_t b = BUF_INIT;
	buf_puts(&b, SECRET " later");
	httpd_answer(later_req, 200, NULL, &b);
	buf_free(&b);
	later_req = NULL;
}

static int
h_later(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	if (later_req) /* one at a time */
		return 503;
	later_req = req;
	uv_timer_start(&later_timer, on_later, 0, 0);
	return HTTPD_LATER;
}

static void
init(void)
{
	log_init("fuzz_httpd", 0, 0);
	loop = uv_default_loop();
	uv_timer_init(loop, &later_timer);
	buf_t err = BUF_INIT;
	httpd_limits_t lim = {.max_conns = 16, .timeout_s = 2, .max_header = 8192, .max_body = 4096};
	srv = httpd_new(loop, -1, &lim, &err);
	CHECK(srv != NULL);
	httpd_set_token(srv, TOKEN, strlen(TOKEN));
	httpd_route(srv, "GET", "/api/v1/queue", 0, h_protected, NULL);
	httpd_route(srv, "POST", "/api/v1/queue", 0, h_protected, NULL);
	httpd_route(srv, "GET", "/later", 0, h_later, NULL);
	httpd_route(srv, "GET", "/metrics", HTTPD_PUBLIC, h_public, NULL);
	buf_free(&err);
}

static int
contains(const uint8_t *p, size_t n, const char *s)
{
	size_t l = strlen(s);
	for (size_t i = 0; i + l <= n; i++)
		if (memcmp(p + i, s, l) == 0)
			return 1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!srv)
		init();
	if (size > 65536)
		return 0;
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(40000)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	/* refused only at the connection cap: connections of earlier inputs
	 * left open would be a leak */
	CHECK(httpd_add_conn(srv, sv[0], (struct sockaddr *)&sa, sizeof sa) == 0);
	size_t off = 0;
	buf_t out = BUF_INIT;
	int closed = 0;
	for (int turn = 0; turn < 2000 && !closed; turn++) {
		if (off < size) {
			ssize_t w = write(sv[1], data + off, size - off);
			if (w > 0)
				off += (size_t)w;
			if (off == size)
				shutdown(sv[1], SHUT_WR);
		} else if (size == 0 && turn == 0) {
			shutdown(sv[1], SHUT_WR);
		}
		uv_run(loop, UV_RUN_NOWAIT);
		for (;;) {
			char b[16384];
			ssize_t r = read(sv[1], b, sizeof b);
			if (r > 0) {
				buf_append(&out, b, (size_t)r);
				continue;
			}
			if (r == 0 || (errno != EAGAIN && errno != EINTR))
				closed = 1;
			break;
		}
	}
	/* not closed after all those turns: a request still incomplete (a
	 * body announced but cut); dropping our side ends it */
	close(sv[1]);
	for (int turn = 0; turn < 20; turn++)
		uv_run(loop, UV_RUN_NOWAIT);
	if (out.len) {
		CHECK(out.len >= 12);
		CHECK(memcmp(out.data, "HTTP/1.", 7) == 0);
		CHECK(out.data[8] == ' ');
		CHECK(out.data[9] >= '1' && out.data[9] <= '5');
	}
	if (out.len && contains((const uint8_t *)out.data, out.len, SECRET))
		CHECK(contains(data, size, TOKEN));
	buf_free(&out);
	return 0;
}
