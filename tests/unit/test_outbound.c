/*
 * test_outbound.c - the outbound manager and SMTP/LMTP client against real
 * peers on loopback: tests/unit/smtp_peer.py (aiosmtpd) is started with
 * fork/exec of /usr/bin/python3 in a scripted mode, prints its port, and
 * writes what it receives to a temporary directory.
 *
 * Checks: byte-identical content after the dot-stuffing round trip (large
 * content, lines starting with '.', with and without a final CRLF), two
 * recipients in one transaction, pipelined and not, connection reuse (3
 * messages, 1 connection), 451 -> tempfail, 550 -> permfail with the text,
 * connection dropped mid-DATA -> tempfail, timeout within the configured
 * time, LMTP per-recipient replies, connection refused, SIZE and SMTPUTF8
 * refusals, shutdown. The loop must close cleanly after every test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/envelope.h"
#include "deliver/outbound.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"

#define JUNK 100 /* octets before the content in our spool files */

struct peer {
	pid_t pid;
	int port;
	char dir[64];
};

static char spool[64];
/* peers still running: a failed test skips its peer_stop, teardown ends them */
static struct peer live[4]; /* copies: a failed test's stack is gone */

static void
rm_rf(const char *dir)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static const char *
peer_script(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("TERN_SMTP_PEER");
	if (env)
		return env;
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s", __FILE__);
	snprintf(path, sizeof path, "%s/smtp_peer.py", dirname(tmp));
	return path;
}

static void
peer_start(struct peer *p, const char *modes)
{
	int fds[2];
	snprintf(p->dir, sizeof p->dir, "/tmp/tern-peer-XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	assert_int_equal(pipe(fds), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl("/usr/bin/python3", "python3", peer_script(), modes, p->dir, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	char line[32];
	size_t got = 0;
	while (got < sizeof line - 1) {
		struct pollfd pf = {fds[0], POLLIN, 0};
		if (poll(&pf, 1, 15000) <= 0)
			break;
		ssize_t r = read(fds[0], line + got, 1);
		if (r <= 0 || line[got] == '\n')
			break;
		got++;
	}
	line[got] = '\0';
	close(fds[0]);
	p->port = atoi(line);
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
		if (live[i].pid == 0) {
			live[i] = *p;
			break;
		}
	if (p->port <= 0)
		fail_msg("smtp_peer.py %s did not start (got '%s')", modes, line);
}

static void
peer_stop(struct peer *p)
{
	kill(p->pid, SIGTERM);
	int st;
	waitpid(p->pid, &st, 0);
	rm_rf(p->dir);
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
		if (live[i].pid == p->pid)
			live[i].pid = 0;
}

/* a failed test jumps out before its peer_stop */
static int
peer_teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof live / sizeof live[0]; i++)
		if (live[i].pid) {
			struct peer p = live[i];
			peer_stop(&p);
		}
	return 0;
}

static char *
peer_file(const struct peer *p, const char *name, size_t *len)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", p->dir, name);
	char *data = NULL;
	if (read_file(path, &data, len, 64u << 20) < 0)
		return NULL;
	return data;
}

static int
peer_connections(const struct peer *p)
{
	size_t n;
	char *s = peer_file(p, "connections", &n);
	int v = s ? atoi(s) : 0;
	free(s);
	return v;
}

/* ---- envelopes and spool files, by hand (no queue needed) ---- */

static envelope_t *
mkenv(const char *qid, const char *const *rcpts, size_t n, const char *content, size_t len)
{
	envelope_t *e = xcalloc(1, sizeof *e);
	snprintf(e->qid, sizeof e->qid, "%s", qid);
	e->sender = xstrdup("sender@example.net");
	e->nrcpt = n;
	e->rcpt = xcalloc(n, sizeof *e->rcpt);
	for (size_t i = 0; i < n; i++)
		e->rcpt[i].addr = xstrdup(rcpts[i]);
	e->body_off = JUNK;
	e->body_len = len;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", spool, qid);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	char junk[JUNK];
	memset(junk, 'J', sizeof junk);
	assert_int_equal(write_all(fd, junk, sizeof junk), 0);
	assert_int_equal(write_all(fd, content, len), 0);
	close(fd);
	return e;
}

static void
freeenv(envelope_t *e)
{
	for (size_t i = 0; i < e->nrcpt; i++) {
		free(e->rcpt[i].addr);
		free(e->rcpt[i].reply);
		free(e->rcpt[i].relay);
	}
	free(e->rcpt);
	free(e->sender);
	free(e);
}

/* the indirection for the content: our own files, not the queue's */
static int
test_open_content(const char *spool_dir, const envelope_t *env)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", spool_dir, env->qid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* ---- running ---- */

struct ctx {
	uv_loop_t loop;
	outbound_t *ob;
	int done;
	int shut;
	/* for the reuse test: more messages to send one after the other */
	envelope_t **chain;
	size_t nchain, next;
	const char *route;
};

static const char *
route_fn(void *arg, const char *domain)
{
	struct ctx *c = arg;
	(void)domain;
	return c->route;
}

static void
on_done(void *arg, envelope_t *env, const size_t *idx, size_t n)
{
	struct ctx *c = arg;
	(void)env;
	(void)idx;
	(void)n;
	c->done++;
	if (c->chain && c->next < c->nchain) {
		envelope_t *e = c->chain[c->next++];
		size_t all[8];
		for (size_t i = 0; i < e->nrcpt; i++)
			all[i] = i;
		outbound_submit(c->ob, e, all, e->nrcpt, on_done, c);
	}
}

static void
on_shut(void *arg)
{
	struct ctx *c = arg;
	c->shut = 1;
}

static void
on_guard(uv_timer_t *t)
{
	(void)t;
}

/* run the loop until c->done reaches want (or 30 s pass) */
static void
run_until(struct ctx *c, int want)
{
	uv_timer_t guard;
	uv_timer_init(&c->loop, &guard);
	uv_timer_start(&guard, on_guard, 30000, 0);
	uint64_t start = uv_now(&c->loop);
	while (c->done < want && uv_now(&c->loop) - start < 30000)
		uv_run(&c->loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&c->loop, UV_RUN_NOWAIT);
	assert_int_equal(c->done, want);
}

static void
ctx_init(struct ctx *c, const char *relayhost, const outbound_options_t *extra)
{
	memset(c, 0, sizeof *c);
	assert_int_equal(uv_loop_init(&c->loop), 0);
	outbound_options_t o;
	if (extra)
		o = *extra;
	else
		memset(&o, 0, sizeof o);
	o.hostname = "client.test";
	o.spool_dir = spool;
	o.relayhost = relayhost;
	o.open_content = test_open_content;
	o.route = route_fn;
	o.route_arg = c;
	if (!o.idle_ms)
		o.idle_ms = 300;
	c->ob = outbound_new(&c->loop, &o);
}

static void
ctx_finish(struct ctx *c)
{
	outbound_shutdown(c->ob, on_shut, c);
	for (int i = 0; i < 2000 && !c->shut; i++)
		uv_run(&c->loop, UV_RUN_ONCE);
	assert_true(c->shut);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&c->loop), 0);
}

static char *
relay_of(int port)
{
	return xasprintf("[127.0.0.1]:%d", port);
}

static void
submit_all(struct ctx *c, envelope_t *e)
{
	size_t idx[8];
	for (size_t i = 0; i < e->nrcpt; i++)
		idx[i] = i;
	outbound_submit(c->ob, e, idx, e->nrcpt, on_done, c);
}

/* content with dot lines, lines across 64 KiB chunk boundaries, ~300 KB */
static void
make_content(buf_t *b, bool final_crlf)
{
	buf_puts(b, "From: a@example.net\r\nSubject: dots\r\n\r\n");
	buf_puts(b, ".starts with a dot\r\n..two dots\r\n.\r\n\r\n.\r\n");
	for (int i = 0; b->len < 300000; i++) {
		if (i % 7 == 0)
			buf_puts(b, ".");
		buf_printf(b, "line %d xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", i);
		for (int k = 0; k < i % 50; k++)
			buf_putc(b, 'y');
		buf_puts(b, "\r\n");
	}
	buf_puts(b, ".\r\n.last");
	if (final_crlf)
		buf_puts(b, "\r\n");
}

static void
check_roundtrip(const char *modes)
{
	struct peer p;
	peer_start(&p, modes);
	char *relay = relay_of(p.port);
	struct ctx c;
	ctx_init(&c, relay, NULL);
	buf_t b1 = BUF_INIT, b2 = BUF_INIT;
	make_content(&b1, true);
	make_content(&b2, false);
	const char *rc[] = {"one@example.org", "two@example.org"};
	envelope_t *e1 = mkenv("RT1", rc, 2, b1.data, b1.len);
	envelope_t *e2 = mkenv("RT2", rc, 2, b2.data, b2.len);
	c.chain = &e2;
	c.nchain = 1;
	submit_all(&c, e1);
	run_until(&c, 2);

	char *want_relay = xasprintf("127.0.0.1[127.0.0.1]:%d", p.port);
	for (int m = 0; m < 2; m++) {
		envelope_t *e = m ? e2 : e1;
		for (size_t i = 0; i < 2; i++) {
			if (e->rcpt[i].status != RCPT_SENT)
				fail_msg("%s: rcpt %zu: %s", modes, i, e->rcpt[i].reply);
			assert_non_null(strstr(e->rcpt[i].reply, "250 2.0.0"));
			assert_string_equal(e->rcpt[i].relay, want_relay);
			assert_int_equal(e->rcpt[i].attempts, 1);
			assert_true(e->rcpt[i].last_try > 0);
		}
	}
	size_t n;
	char *got = peer_file(&p, "msg-1.eml", &n);
	assert_non_null(got);
	assert_int_equal(n, b1.len);
	assert_memory_equal(got, b1.data, n);
	free(got);
	/* without a final CRLF, the terminator adds one (RFC 5321 §4.1.1.4) */
	got = peer_file(&p, "msg-2.eml", &n);
	assert_non_null(got);
	assert_int_equal(n, b2.len + 2);
	assert_memory_equal(got, b2.data, b2.len);
	assert_memory_equal(got + b2.len, "\r\n", 2);
	free(got);
	got = peer_file(&p, "msg-1.env", &n);
	assert_non_null(strstr(got, "RCPT one@example.org\n"));
	assert_non_null(strstr(got, "RCPT two@example.org\n"));
	assert_non_null(strstr(got, "MAIL sender@example.net"));
	free(got);
	assert_int_equal(peer_connections(&p), 1);

	ctx_finish(&c);
	freeenv(e1);
	freeenv(e2);
	buf_free(&b1);
	buf_free(&b2);
	free(relay);
	free(want_relay);
	peer_stop(&p);
}

static void
test_roundtrip_pipelined(void **state)
{
	(void)state;
	check_roundtrip("accept");
}

static void
test_roundtrip_no_pipelining(void **state)
{
	(void)state;
	check_roundtrip("accept,nopipe");
}

static void
test_empty_content(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p, "accept");
	char *relay = relay_of(p.port);
	struct ctx c;
	ctx_init(&c, relay, NULL);
	const char *rc[] = {"one@example.org"};
	envelope_t *e = mkenv("EMPTY", rc, 1, "", 0);
	submit_all(&c, e);
	run_until(&c, 1);
	assert_int_equal(e->rcpt[0].status, RCPT_SENT);
	size_t n = 99;
	char *got = peer_file(&p, "msg-1.eml", &n);
	assert_non_null(got);
	assert_int_equal(n, 0);
	free(got);
	ctx_finish(&c);
	freeenv(e);
	free(relay);
	peer_stop(&p);
}

static void
test_reuse(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p, "accept");
	char *relay = relay_of(p.port);
	struct ctx c;
	ctx_init(&c, relay, NULL);
	const char *rc[] = {"r@example.org"};
	envelope_t *e[3];
	for (int i = 0; i < 3; i++) {
		char qid[32];
		snprintf(qid, sizeof qid, "REUSE%d", i);
		e[i] = mkenv(qid, rc, 1, "Subject: x\r\n\r\nhi\r\n", 18);
	}
	c.chain = e + 1;
	c.nchain = 2;
	submit_all(&c, e[0]);
	run_until(&c, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(e[i]->rcpt[0].status, RCPT_SENT);
	assert_int_equal(peer_connections(&p), 1);
	outbound_stats_t st;
	outbound_get_stats(c.ob, &st);
	assert_int_equal(st.connections, 1);
	assert_int_equal(st.transactions, 3);
	ctx_finish(&c);
	for (int i = 0; i < 3; i++)
		freeenv(e[i]);
	free(relay);
	peer_stop(&p);
}

static void
test_rcpt_451(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p, "rcpt451");
	char *relay = relay_of(p.port);
	struct ctx c;
	ctx_init(&c, relay, NULL);
	const char *rc[] = {"a@example.org", "b@example.org"};
	envelope_t *e = mkenv("T451", rc, 2, "x\r\n", 3);
	submit_all(&c, e);
	run_until(&c, 1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(e->rcpt[i].status, RCPT_PENDING);
		assert_int_equal(strncmp(e->rcpt[i].reply, "451 4.3.0 <", 11), 0);
		assert_int_equal(e->rcpt[i].attempts, 1);
	}
	assert_null(peer_file(&p, "msg-1.eml", &(size_t){0}));
	ctx_finish(&c);
	freeenv(e);
	free(relay);
	peer_stop(&p);
}

static void
test_rcpt_550(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p, "rcpt550");
	char *relay = relay_of(p.port);
	struct ctx c;
	ctx_init(&c, relay, NULL);
	const char *rc[] = {"bad@example.org", "good@example.org"};
	envelope_t *e = mkenv("T550", rc, 2, "x\r\n", 3);
	submit_all(&c, e);
	run_until(&c, 1);
	assert_int_equal(e->rcpt[0].status, RCPT_FAILED);
	assert_string_equal(e->rcpt[0].reply, "550 5.1.1 <bad@example.org>: user unknown");
	assert_int_equal(e->rcpt[1].status, RCPT_SENT);
	size_t n;
	char *env = peer_file(&p, "msg-1.env", &n);
	assert_non_null(env);
	assert_null(strstr(env, "bad@"));
	free(env);
	ctx_finish(&c);
	freeenv(e);
	free(relay);
	peer_stop(&p);
}

static void
test_drop_mid_data(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p, "dropdata");
	char *relay = relay_of(p.port);
	struct ctx c;
	ctx_init(&c, relay, NULL);
	buf_t b = BUF_INIT;
	make_content(&b, true);
	const char *rc[] = {"a@example.org"};
	envelope_t *e = mkenv("DROP", rc, 1, b.data, b.len);
	submit_all(&c, e);
	run_until(&c, 1);
	assert_int_equal(e->rcpt[0].status, RCPT_PENDING);
	if (!strstr(e->rcpt[0].reply, "4.4.2"))
		fail_msg("reply: %s", e->rcpt[0].reply);
	assert_int_equal(e->rcpt[0].reply[0], '4');
	ctx_finish(&c);
	freeenv(e);
	buf_free(&b);
	free(relay);
	peer_stop(&p);
}

static void
test_timeout(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p, "slow");
	char *relay = relay_of(p.port);
	struct ctx c;
	outbound_options_t o;
	memset(&o, 0, sizeof o);
	o.timeouts.mail = 1;
	ctx_init(&c, relay, &o);
	const char *rc[] = {"a@example.org"};
	envelope_t *e = mkenv("SLOW", rc, 1, "x\r\n", 3);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	submit_all(&c, e);
	run_until(&c, 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(el >= 0.9 && el < 3.5);
	assert_int_equal(e->rcpt[0].status, RCPT_PENDING);
	if (!strstr(e->rcpt[0].reply, "4.4.2 timeout") || !strstr(e->rcpt[0].reply, "MAIL FROM"))
		fail_msg("reply: %s", e->rcpt[0].reply);
	ctx_finish(&c);
	freeenv(e);
	free(relay);
	peer_stop(&p);
}

/* A server that stops reading mid-content: the data block timeout
 * (RFC 5321 §4.5.3.2.5) ends the attempt, not a hang. */
static void
test_stalled_content(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p, "stall");
	char *relay = relay_of(p.port);
	struct ctx c;
	outbound_options_t o;
	memset(&o, 0, sizeof o);
	o.timeouts.data_block = 1;
	ctx_init(&c, relay, &o);
	buf_t b = BUF_INIT;
	while (b.len < (24u << 20))
		buf_puts(&b, "0123456789012345678901234567890123456789012345678901234567890123456789\r\n");
	const char *rc[] = {"a@example.org"};
	envelope_t *e = mkenv("STALL", rc, 1, b.data, b.len);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	submit_all(&c, e);
	run_until(&c, 1);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double el = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(el < 10);
	assert_int_equal(e->rcpt[0].status, RCPT_PENDING);
	if (!strstr(e->rcpt[0].reply, "4.4.2 timeout") || !strstr(e->rcpt[0].reply, "message content"))
		fail_msg("reply: %s", e->rcpt[0].reply);
	peer_stop(&p); /* the stuck connection goes with the peer */
	ctx_finish(&c);
	freeenv(e);
	buf_free(&b);
	free(relay);
}

static void
test_lmtp(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p, "lmtp");
	struct ctx c;
	ctx_init(&c, NULL, NULL);
	char *route = xasprintf("lmtp:[127.0.0.1]:%d", p.port);
	c.route = route;
	const char *rc[] = {"ok@example.org", "full@example.org", "ok2@example.org"};
	const char *content = "Subject: l\r\n\r\n.x\r\n";
	envelope_t *e = mkenv("LMTP", rc, 3, content, strlen(content));
	submit_all(&c, e);
	run_until(&c, 1);
	assert_int_equal(e->rcpt[0].status, RCPT_SENT);
	assert_string_equal(e->rcpt[0].reply, "250 2.0.0 <ok@example.org>: delivered");
	assert_int_equal(e->rcpt[1].status, RCPT_FAILED);
	assert_string_equal(e->rcpt[1].reply, "550 5.2.2 <full@example.org>: mailbox full");
	assert_int_equal(e->rcpt[2].status, RCPT_SENT);
	assert_string_equal(e->rcpt[2].reply, "250 2.0.0 <ok2@example.org>: delivered");
	size_t n;
	char *got = peer_file(&p, "msg-1.eml", &n);
	assert_non_null(got);
	assert_int_equal(n, strlen(content));
	assert_memory_equal(got, content, n);
	free(got);
	ctx_finish(&c);
	freeenv(e);
	free(route);
	peer_stop(&p);
}

static int
closed_port(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	uv_tcp_t t;
	uv_tcp_init(&loop, &t);
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_bind(&t, (struct sockaddr *)&sa, 0);
	int len = sizeof sa;
	uv_tcp_getsockname(&t, (struct sockaddr *)&sa, &len);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return ntohs(sa.sin_port);
}

static void
test_refused(void **state)
{
	(void)state;
	int port = closed_port();
	char *relay = relay_of(port);
	struct ctx c;
	ctx_init(&c, relay, NULL);
	const char *rc[] = {"a@example.org"};
	envelope_t *e = mkenv("REFUSED", rc, 1, "x\r\n", 3);
	submit_all(&c, e);
	run_until(&c, 1);
	assert_int_equal(e->rcpt[0].status, RCPT_PENDING);
	char *want = xasprintf("451 4.4.1 connect to 127.0.0.1[127.0.0.1]:%d: connection refused", port);
	assert_string_equal(e->rcpt[0].reply, want);
	assert_int_equal(e->rcpt[0].attempts, 1);
	free(want);
	ctx_finish(&c);
	freeenv(e);
	free(relay);
}

static void
test_size_and_utf8(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p, "size100");
	char *relay = relay_of(p.port);
	struct ctx c;
	ctx_init(&c, relay, NULL);
	char big[200];
	memset(big, 'z', sizeof big);
	memcpy(big + sizeof big - 2, "\r\n", 2);
	const char *rc[] = {"a@example.org"};
	envelope_t *e1 = mkenv("BIG", rc, 1, big, sizeof big);
	envelope_t *e2 = mkenv("UTF8", rc, 1, "x\r\n", 3);
	e2->smtputf8 = true;
	c.chain = &e2;
	c.nchain = 1;
	submit_all(&c, e1);
	run_until(&c, 2);
	assert_int_equal(e1->rcpt[0].status, RCPT_FAILED);
	assert_int_equal(strncmp(e1->rcpt[0].reply, "552 5.3.4 ", 10), 0);
	assert_int_equal(e2->rcpt[0].status, RCPT_FAILED);
	assert_int_equal(strncmp(e2->rcpt[0].reply, "553 5.6.7 ", 10), 0);
	assert_null(peer_file(&p, "msg-1.eml", &(size_t){0}));
	ctx_finish(&c);
	freeenv(e1);
	freeenv(e2);
	free(relay);
	peer_stop(&p);
}

static void
test_shutdown_cancels(void **state)
{
	(void)state;
	struct peer p;
	peer_start(&p, "accept");
	char *relay = relay_of(p.port);
	struct ctx c;
	ctx_init(&c, relay, NULL);
	const char *rc[] = {"a@example.org"};
	envelope_t *e = mkenv("CANCEL", rc, 1, "x\r\n", 3);
	submit_all(&c, e);
	outbound_shutdown(c.ob, on_shut, &c);
	for (int i = 0; i < 2000 && !c.shut; i++)
		uv_run(&c.loop, UV_RUN_ONCE);
	assert_true(c.shut);
	assert_int_equal(c.done, 1);
	assert_int_equal(e->rcpt[0].status, RCPT_PENDING);
	assert_string_equal(e->rcpt[0].reply, "451 4.3.2 shutting down");
	assert_int_equal(e->rcpt[0].attempts, 0);
	uv_run(&c.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&c.loop), 0);
	freeenv(e);
	free(relay);
	peer_stop(&p);
}

static void
test_decide(void **state)
{
	(void)state;
	static const struct {
		enum smtp_stage stage;
		int code;
		enum smtp_outcome want;
	} t[] = {
		{SMTP_STAGE_GREETING, 220, SMTP_OK}, {SMTP_STAGE_GREETING, 554, SMTP_PERMFAIL},
		{SMTP_STAGE_GREETING, 421, SMTP_TEMPFAIL}, {SMTP_STAGE_GREETING, 250, SMTP_TEMPFAIL},
		{SMTP_STAGE_MAIL, 250, SMTP_OK}, {SMTP_STAGE_MAIL, 451, SMTP_TEMPFAIL},
		{SMTP_STAGE_MAIL, 553, SMTP_PERMFAIL}, {SMTP_STAGE_MAIL, 354, SMTP_TEMPFAIL},
		{SMTP_STAGE_RCPT, 251, SMTP_OK}, {SMTP_STAGE_RCPT, 452, SMTP_TEMPFAIL},
		{SMTP_STAGE_RCPT, 552, SMTP_TEMPFAIL}, {SMTP_STAGE_RCPT, 550, SMTP_PERMFAIL},
		{SMTP_STAGE_RCPT, 421, SMTP_TEMPFAIL}, {SMTP_STAGE_DATA, 354, SMTP_OK},
		{SMTP_STAGE_DATA, 250, SMTP_TEMPFAIL}, {SMTP_STAGE_DATA, 554, SMTP_PERMFAIL},
		{SMTP_STAGE_DOT, 250, SMTP_OK}, {SMTP_STAGE_DOT, 552, SMTP_PERMFAIL},
		{SMTP_STAGE_DOT, 451, SMTP_TEMPFAIL}, {SMTP_STAGE_CONNECT, 0, SMTP_TEMPFAIL},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		if (smtp_decide(t[i].stage, t[i].code) != t[i].want)
			fail_msg("case %zu: stage %d code %d", i, t[i].stage, t[i].code);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(spool, sizeof spool, "/tmp/tern-spool-XXXXXX");
	if (!mkdtemp(spool))
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	rm_rf(spool);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_decide, peer_teardown),
		cmocka_unit_test_teardown(test_roundtrip_pipelined, peer_teardown),
		cmocka_unit_test_teardown(test_roundtrip_no_pipelining, peer_teardown),
		cmocka_unit_test_teardown(test_empty_content, peer_teardown),
		cmocka_unit_test_teardown(test_reuse, peer_teardown),
		cmocka_unit_test_teardown(test_rcpt_451, peer_teardown),
		cmocka_unit_test_teardown(test_rcpt_550, peer_teardown),
		cmocka_unit_test_teardown(test_drop_mid_data, peer_teardown),
		cmocka_unit_test_teardown(test_timeout, peer_teardown),
		cmocka_unit_test_teardown(test_stalled_content, peer_teardown),
		cmocka_unit_test_teardown(test_lmtp, peer_teardown),
		cmocka_unit_test_teardown(test_refused, peer_teardown),
		cmocka_unit_test_teardown(test_size_and_utf8, peer_teardown),
		cmocka_unit_test_teardown(test_shutdown_cancels, peer_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
