/*
 * test_dovecot_auth.c - the Dovecot authentication client: table-driven
 * tests of the protocol lines (src/smtpd/auth_dovecot_proto.c: the server's
 * handshake and replies, ids, flags, user=, reason=, temp, tab-escaping,
 * limits, what breaks the protocol; the client's AUTH and CONT lines), and
 * the client itself (src/smtpd/auth_dovecot.c) on a real event loop against
 * a scripted server on a unix socket: the handshake and mechanism list,
 * requests multiplexed on one connection and answered out of order, a
 * challenge and its continuation, abort, a timeout that leaves the
 * connection up, protocol errors and a lost server (TEMP, then a new
 * connection), a server that is not there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
#include "smtpd/auth_dovecot.h"
#include "smtpd/auth_dovecot_proto.h"

struct pcase {
	const char *in;
	int rc;             /* 0 or -1 */
	int kind;           /* enum dvproto_kind, when rc == 0 */
	unsigned long id;
	const char *user;   /* NULL: none expected */
	const char *data;
	const char *reason;
	int temp;
	const char *mech;
	unsigned flags;
	unsigned major, minor;
};

static const struct pcase pcases[] = {
	/* the handshake */
	{"VERSION\t1\t2", 0, DVP_VERSION, 0, NULL, NULL, NULL, 0, NULL, 0, 1, 2},
	{"VERSION\t2\t0", 0, DVP_VERSION, 0, NULL, NULL, NULL, 0, NULL, 0, 2, 0},
	{"VERSION\t1", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"VERSION\tx\t1", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"MECH\tPLAIN\tplaintext", 0, DVP_MECH, 0, NULL, NULL, NULL, 0, "PLAIN", DVP_MECH_PLAINTEXT, 0, 0},
	{"MECH\tLOGIN\tplaintext\tprivate", 0, DVP_MECH, 0, NULL, NULL, NULL, 0, "LOGIN",
	    DVP_MECH_PLAINTEXT | DVP_MECH_PRIVATE, 0, 0},
	{"MECH\tSCRAM-SHA-256\tmutual-auth\tdictionary", 0, DVP_MECH, 0, NULL, NULL, NULL, 0,
	    "SCRAM-SHA-256", 0, 0, 0},
	{"MECH\tANONYMOUS\tanonymous", 0, DVP_MECH, 0, NULL, NULL, NULL, 0, "ANONYMOUS",
	    DVP_MECH_ANONYMOUS, 0, 0},
	{"MECH", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"MECH\tplain", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0}, /* names are upper case */
	{"MECH\tPL AIN", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"MECH\tAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"SPID\t1234", 0, DVP_SPID, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"CUID\t7", 0, DVP_CUID, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"COOKIE\t0123456789abcdef", 0, DVP_COOKIE, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"DONE", 0, DVP_DONE, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	/* unknown commands are ignored, as the protocol asks */
	{"NOTFOUND\t1", 0, DVP_OTHER, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"", 0, DVP_OTHER, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	/* replies */
	{"OK\t1\tuser=alice@example.com", 0, DVP_OK, 1, "alice@example.com", NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t4294967295\tuser=bob\tunknown=x\tflag", 0, DVP_OK, 4294967295ul, "bob", NULL, NULL, 0,
	    NULL, 0, 0, 0},
	{"OK\t2\tuser=b\tresp=AAEC", 0, DVP_OK, 2, "b", "AAEC", NULL, 0, NULL, 0, 0, 0},
	{"OK\t3", 0, DVP_OK, 3, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"CONT\t5\tVXNlcm5hbWU6", 0, DVP_CONT, 5, NULL, "VXNlcm5hbWU6", NULL, 0, NULL, 0, 0, 0},
	{"CONT\t5\t", 0, DVP_CONT, 5, NULL, "", NULL, 0, NULL, 0, 0, 0},
	{"CONT\t5", 0, DVP_CONT, 5, NULL, "", NULL, 0, NULL, 0, 0, 0},
	{"FAIL\t9", 0, DVP_FAIL, 9, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"FAIL\t9\tuser=alice\treason=Password expired", 0, DVP_FAIL, 9, "alice", NULL,
	    "Password expired", 0, NULL, 0, 0, 0},
	{"FAIL\t10\ttemp\treason=passdb unavailable", 0, DVP_FAIL, 10, NULL, NULL,
	    "passdb unavailable", 1, NULL, 0, 0, 0},
	/* tab-escaping: \001t is a TAB, kept out of the log as '?' */
	{"FAIL\t11\treason=a\001tb\001nc\001r\0011", 0, DVP_FAIL, 11, NULL, NULL, "a\001tb\001nc\001r\0011",
	    0, NULL, 0, 0, 0},
	{"OK\t12\tuser=a\001lb", 0, DVP_OK, 12, "alb", NULL, NULL, 0, NULL, 0, 0, 0},
	/* what breaks the protocol */
	{"OK", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t0\tuser=a", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t4294967296\tuser=a", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t-1\tuser=a", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t1x\tuser=a", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t1\tuser=", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t1\tuser=a b", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t1\tuser=a\001tb", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0}, /* a TAB in a name */
	{"OK\t1\tuser=a\0010b", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0}, /* a NUL in a name */
	{"OK\t1\tuser=<a>", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t1\tuser=a\"b", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t1\tuser=caf\xc3\xa9", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"OK\t1\tuser=a\tresp=not base64!", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"CONT\t1\tabc\r\n250 fake", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"CONT\t1\tab cd", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
	{"FAIL\tx", -1, 0, 0, NULL, NULL, NULL, 0, NULL, 0, 0, 0},
};

static void
test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof pcases / sizeof pcases[0]; i++) {
		const struct pcase *c = &pcases[i];
		dvproto_reply_t r;
		buf_t err = BUF_INIT;
		int rc = dvproto_parse(c->in, strlen(c->in), &r, &err);
		if (rc != c->rc)
			fail_msg("case %zu (%s): rc %d want %d (%s)", i, c->in, rc, c->rc, buf_cstr(&err));
		if (rc < 0) {
			assert_true(err.len > 0);
		} else {
			assert_int_equal(r.kind, c->kind);
			assert_int_equal(r.id, c->id);
			if (c->user)
				assert_string_equal(r.user, c->user);
			else
				assert_null(r.user);
			if (c->data)
				assert_string_equal(r.data, c->data);
			else
				assert_null(r.data);
			if (c->reason) {
				/* for the log: control characters (the escape among
				 * them) come out as '?', never as a TAB, CR or LF */
				assert_non_null(r.reason);
				if (!strchr(c->reason, '\001'))
					assert_string_equal(r.reason, c->reason);
				else
					assert_string_equal(r.reason, "a?tb?nc?r?1");
			} else {
				assert_null(r.reason);
			}
			assert_int_equal(r.temp, c->temp);
			if (c->mech) {
				assert_string_equal(r.mech, c->mech);
				assert_int_equal(r.mech_flags, c->flags);
			}
			if (c->kind == DVP_VERSION) {
				assert_int_equal(r.major, c->major);
				assert_int_equal(r.minor, c->minor);
			}
		}
		dvproto_reply_free(&r);
		buf_free(&err);
	}
}

/* Limits: a line at the limit parses, one beyond it does not; a NUL or LF
 * inside a line is refused; too many fields are refused. */
static void
test_limits(void **state)
{
	(void)state;
	dvproto_reply_t r;
	buf_t err = BUF_INIT;
	buf_t b = BUF_INIT;
	buf_puts(&b, "CONT\t7\t");
	while (b.len < 12288 + 7)
		buf_putc(&b, 'A');
	assert_int_equal(dvproto_parse(b.data, b.len, &r, &err), 0);
	assert_int_equal(strlen(r.data), 12288);
	dvproto_reply_free(&r);
	buf_putc(&b, 'A'); /* one octet of challenge too many */
	assert_int_equal(dvproto_parse(b.data, b.len, &r, &err), -1);
	dvproto_reply_free(&r);
	buf_reset(&b);
	while (b.len <= DVPROTO_MAX_LINE)
		buf_putc(&b, 'X');
	assert_int_equal(dvproto_parse(b.data, b.len, &r, &err), -1);
	dvproto_reply_free(&r);
	assert_int_equal(dvproto_parse("OK\t1\0\tuser=a", 12, &r, &err), -1);
	dvproto_reply_free(&r);
	assert_int_equal(dvproto_parse("OK\t1\nOK\t2", 9, &r, &err), -1);
	dvproto_reply_free(&r);
	buf_reset(&b);
	buf_puts(&b, "OK\t1");
	for (int i = 0; i < 70; i++)
		buf_puts(&b, "\tx");
	assert_int_equal(dvproto_parse(b.data, b.len, &r, &err), -1);
	dvproto_reply_free(&r);
	/* a long reason is cut, not refused */
	buf_reset(&b);
	buf_puts(&b, "FAIL\t1\treason=");
	for (int i = 0; i < 1000; i++)
		buf_putc(&b, 'r');
	assert_int_equal(dvproto_parse(b.data, b.len, &r, &err), 0);
	assert_int_equal(strlen(r.reason), DVPROTO_MAX_REASON);
	dvproto_reply_free(&r);
	/* parsing takes the length, not the NUL: a prefix parses alone */
	assert_int_equal(dvproto_parse("DONEXYZ", 4, &r, &err), 0);
	assert_int_equal(r.kind, DVP_DONE);
	dvproto_reply_free(&r);
	buf_free(&b);
	buf_free(&err);
}

static void
test_format(void **state)
{
	(void)state;
	buf_t b = BUF_INIT;
	dvproto_format_hello(&b, 4242);
	assert_string_equal(buf_cstr(&b), "VERSION\t1\t2\nCPID\t4242\n");
	buf_reset(&b);
	dvproto_auth_t a = {.mech = "PLAIN", .service = "smtp", .session = "S12", .secured = true,
	    .lip = "192.0.2.1", .rip = "2001:db8::7", .lport = 587, .rport = 51000,
	    .resp = "AGFsaWNlAHNlY3JldA==", .resp_len = 20};
	assert_int_equal(dvproto_format_auth(&b, 17, &a), 0);
	assert_string_equal(buf_cstr(&b), "AUTH\t17\tPLAIN\tservice=smtp\tsession=S12\tsecured\t"
	    "lip=192.0.2.1\trip=2001:db8::7\tlport=587\trport=51000\tresp=AGFsaWNlAHNlY3JldA==\n");
	/* no TLS, no initial response, an empty one */
	buf_reset(&b);
	dvproto_auth_t l = {.mech = "LOGIN", .service = "smtp", .rip = "198.51.100.2"};
	assert_int_equal(dvproto_format_auth(&b, 1, &l), 0);
	assert_string_equal(buf_cstr(&b), "AUTH\t1\tLOGIN\tservice=smtp\trip=198.51.100.2\n");
	buf_reset(&b);
	l.resp = "";
	assert_int_equal(dvproto_format_auth(&b, 2, &l), 0);
	assert_string_equal(buf_cstr(&b), "AUTH\t2\tLOGIN\tservice=smtp\trip=198.51.100.2\tresp=\n");
	/* nothing that could inject a field or a line */
	buf_reset(&b);
	l.resp = "AAAA\tuser=root";
	l.resp_len = strlen(l.resp);
	assert_int_equal(dvproto_format_auth(&b, 3, &l), -1);
	assert_int_equal(b.len, 0);
	l.resp = NULL;
	l.mech = "PLAIN\tx";
	assert_int_equal(dvproto_format_auth(&b, 3, &l), -1);
	l.mech = "LOGIN";
	l.session = "S1\tsecured\nAUTH";
	assert_int_equal(dvproto_format_auth(&b, 4, &l), 0);
	assert_string_equal(buf_cstr(&b), "AUTH\t4\tLOGIN\tservice=smtp\tsession=S1\001tsecured\001nAUTH\t"
	    "rip=198.51.100.2\n");
	buf_reset(&b);
	assert_int_equal(dvproto_format_cont(&b, 4, "YWxpY2U=", 8), 0);
	assert_string_equal(buf_cstr(&b), "CONT\t4\tYWxpY2U=\n");
	buf_reset(&b);
	assert_int_equal(dvproto_format_cont(&b, 4, "", 0), 0);
	assert_string_equal(buf_cstr(&b), "CONT\t4\t\n");
	buf_reset(&b);
	assert_int_equal(dvproto_format_cont(&b, 4, "YW\nxp", 6), -1);
	assert_int_equal(b.len, 0);
	/* escaping round trip through the parser */
	dvproto_escape(&b, "a\tb\001c", 5);
	assert_string_equal(buf_cstr(&b), "a\001tb\0011c");
	buf_free(&b);
}

/* ---- the client against a scripted server ---- */

struct fake {
	char dir[64];
	char path[96];
	int lfd; /* listening */
	int fd;  /* the accepted connection, or -1 */
	buf_t in; /* what the client sent, not yet taken */
};

struct result {
	int n;                 /* callbacks so far */
	enum dvauth_result r;
	char text[256];
	int has_text;
};

static uv_loop_t loop;

static void
on_result(void *arg, enum dvauth_result r, const char *text)
{
	struct result *res = arg;
	res->n++;
	res->r = r;
	res->has_text = text != NULL;
	snprintf(res->text, sizeof res->text, "%s", text ? text : "");
}

static void
fake_listen(struct fake *f)
{
	snprintf(f->dir, sizeof f->dir, "/tmp/tern-dvauth-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/auth", f->dir);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", f->path);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	f->fd = -1;
	buf_init(&f->in);
}

static void
fake_close(struct fake *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->lfd >= 0)
		close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
	buf_free(&f->in);
}

static void
ms_sleep(int ms)
{
	struct timespec ts = {0, ms * 1000000L};
	nanosleep(&ts, NULL);
}

/* run the loop and the fake server's side for a while, until *done (when
 * given) becomes true; returns whether it did */
static int
pump(struct fake *f, const int *done, int ms)
{
	for (int t = 0; t < ms; t++) {
		uv_run(&loop, UV_RUN_NOWAIT);
		if (f && f->fd < 0 && f->lfd >= 0) {
			int fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK);
			if (fd >= 0)
				f->fd = fd;
		}
		if (f && f->fd >= 0) {
			char b[4096];
			ssize_t n = read(f->fd, b, sizeof b);
			if (n > 0)
				buf_append(&f->in, b, (size_t)n);
		}
		if (done && *done)
			return 1;
		ms_sleep(1);
	}
	return done ? *done : 0;
}

/* wait for the next line from the client (without its LF) */
static char *
fake_line(struct fake *f)
{
	for (int t = 0; t < 3000; t++) {
		char *lf = f->in.data ? memchr(f->in.data, '\n', f->in.len) : NULL;
		if (lf) {
			char *line = xstrndup(f->in.data, (size_t)(lf - f->in.data));
			buf_consume(&f->in, (size_t)(lf - f->in.data) + 1);
			return line;
		}
		pump(f, NULL, 1);
	}
	fail_msg("no line from the client");
	return NULL;
}

static void
fake_say(struct fake *f, const char *s)
{
	assert_true(f->fd >= 0);
	assert_int_equal(write(f->fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void
expect_line(struct fake *f, const char *prefix)
{
	char *l = fake_line(f);
	if (strncmp(l, prefix, strlen(prefix)) != 0)
		fail_msg("client said '%s', want '%s...'", l, prefix);
	xfree(l);
}

static void
handshake(struct fake *f)
{
	expect_line(f, "VERSION\t1\t");
	expect_line(f, "CPID\t");
	fake_say(f, "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\tprivate\n"
	    "MECH\tCRAM-MD5\tdictionary\nSPID\t1\nCUID\t1\nCOOKIE\tc0ffee\nDONE\n");
}

static dvauth_req_t *
begin(dvauth_t *c, const char *mech, const char *resp, struct result *res)
{
	dvauth_params_t p = {.mech = mech, .session = "S1", .tls = true, .lip = "127.0.0.1",
	    .rip = "192.0.2.9", .lport = 587, .rport = 40000, .resp = resp,
	    .resp_len = resp ? strlen(resp) : 0};
	memset(res, 0, sizeof *res);
	return dvauth_begin(c, &p, on_result, res);
}

static void
test_client(void **state)
{
	(void)state;
	struct fake f;
	fake_listen(&f);
	uv_loop_init(&loop);
	dvauth_t *c = dvauth_new(&loop, f.path, 1000);
	/* before the handshake: PLAIN LOGIN, only under TLS */
	buf_t m = BUF_INIT;
	assert_int_equal(dvauth_mechs(c, true, &m), 2);
	assert_string_equal(buf_cstr(&m), " PLAIN LOGIN");
	buf_reset(&m);
	assert_int_equal(dvauth_mechs(c, false, &m), 0);
	handshake(&f);
	int never = 0;
	pump(&f, &never, 50);
	/* LOGIN is private, CRAM-MD5 is not relayed: PLAIN only */
	buf_reset(&m);
	assert_int_equal(dvauth_mechs(c, true, &m), 1);
	assert_string_equal(buf_cstr(&m), " PLAIN");
	buf_free(&m);
	const char *canon = NULL;
	assert_true(dvauth_mech_ok(c, "plain", 5, true, &canon));
	assert_string_equal(canon, "PLAIN");
	assert_false(dvauth_mech_ok(c, "PLAIN", 5, false, &canon));
	assert_false(dvauth_mech_ok(c, "LOGIN", 5, true, &canon));
	assert_false(dvauth_mech_ok(c, "CRAM-MD5", 8, true, &canon));

	/* two requests on the one connection, answered out of order */
	struct result r1, r2;
	dvauth_req_t *q1 = begin(c, "PLAIN", "AGEAYg==", &r1);
	dvauth_req_t *q2 = begin(c, "PLAIN", "AGIAYw==", &r2);
	assert_non_null(q1);
	assert_non_null(q2);
	assert_int_equal(r1.n + r2.n, 0); /* never from inside begin */
	expect_line(&f, "AUTH\t1\tPLAIN\tservice=smtp\tsession=S1\tsecured\tlip=127.0.0.1\t"
	    "rip=192.0.2.9\tlport=587\trport=40000\tresp=AGEAYg==");
	expect_line(&f, "AUTH\t2\tPLAIN\t");
	fake_say(&f, "OK\t2\tuser=b@example.com\nFAIL\t1\tuser=a\treason=bad password\n");
	assert_true(pump(&f, &r1.n, 2000));
	assert_int_equal(r1.r, DVAUTH_FAIL);
	assert_string_equal(r1.text, "bad password");
	assert_int_equal(r2.n, 1);
	assert_int_equal(r2.r, DVAUTH_OK);
	assert_string_equal(r2.text, "b@example.com");

	/* a challenge and the client's answer; an abort; FAIL temp */
	struct result r3, r4, r5;
	dvauth_req_t *q3 = begin(c, "PLAIN", NULL, &r3);
	expect_line(&f, "AUTH\t3\tPLAIN\t");
	fake_say(&f, "CONT\t3\t\n");
	assert_true(pump(&f, &r3.n, 2000));
	assert_int_equal(r3.r, DVAUTH_CONT);
	assert_string_equal(r3.text, "");
	assert_int_equal(dvauth_continue(q3, "bad\tline", 8), -1);
	assert_int_equal(dvauth_continue(q3, "AGEAYg==", 8), 0);
	expect_line(&f, "CONT\t3\tAGEAYg==");
	dvauth_req_t *q4 = begin(c, "PLAIN", "AGEAYg==", &r4);
	expect_line(&f, "AUTH\t4\t");
	dvauth_abort(q4);
	dvauth_req_t *q5 = begin(c, "PLAIN", "AGEAYg==", &r5);
	assert_non_null(q5);
	expect_line(&f, "AUTH\t5\t");
	fake_say(&f, "OK\t4\tuser=aborted\nOK\t3\tuser=a\nFAIL\t5\ttemp\n");
	assert_true(pump(&f, &r5.n, 2000));
	assert_int_equal(r3.n, 2);
	assert_int_equal(r3.r, DVAUTH_OK);
	assert_string_equal(r3.text, "a");
	assert_int_equal(r4.n, 0); /* aborted: no callback */
	assert_int_equal(r5.r, DVAUTH_TEMP);

	/* no answer in time: TEMP, the connection stays, the late answer is ignored */
	struct result r6, r7;
	begin(c, "PLAIN", "AGEAYg==", &r6);
	expect_line(&f, "AUTH\t6\t");
	assert_true(pump(&f, &r6.n, 2000));
	assert_int_equal(r6.r, DVAUTH_TEMP);
	assert_string_equal(r6.text, "no answer in time");
	fake_say(&f, "OK\t6\tuser=late\n");
	begin(c, "PLAIN", "AGEAYg==", &r7);
	expect_line(&f, "AUTH\t7\t"); /* on the same connection */
	fake_say(&f, "OK\t7\tuser=c\n");
	assert_true(pump(&f, &r7.n, 2000));
	assert_int_equal(r7.r, DVAUTH_OK);
	assert_int_equal(r6.n, 1);

	/* a protocol error drops the connection: what is in flight is TEMP, and
	 * the next request connects again */
	struct result r8, r9;
	begin(c, "PLAIN", "AGEAYg==", &r8);
	expect_line(&f, "AUTH\t8\t");
	fake_say(&f, "OK\t8\tuser=has space\n");
	assert_true(pump(&f, &r8.n, 2000));
	assert_int_equal(r8.r, DVAUTH_TEMP);
	close(f.fd);
	f.fd = -1;
	buf_reset(&f.in);
	begin(c, "PLAIN", "AGEAYg==", &r9);
	handshake(&f);
	expect_line(&f, "AUTH\t9\t");
	fake_say(&f, "OK\t9\tuser=d\n");
	assert_true(pump(&f, &r9.n, 2000));
	assert_int_equal(r9.r, DVAUTH_OK);

	/* a line longer than the protocol allows */
	struct result r10;
	begin(c, "PLAIN", "AGEAYg==", &r10);
	expect_line(&f, "AUTH\t10\t");
	char *big = xmalloc(DVPROTO_MAX_LINE + 100);
	memset(big, 'A', DVPROTO_MAX_LINE + 99);
	big[DVPROTO_MAX_LINE + 99] = '\0';
	fake_say(&f, big);
	xfree(big);
	assert_true(pump(&f, &r10.n, 2000));
	assert_int_equal(r10.r, DVAUTH_TEMP);

	/* the server goes away: TEMP now, and while nobody listens */
	close(f.fd);
	f.fd = -1;
	close(f.lfd);
	f.lfd = -1;
	unlink(f.path);
	struct result r11;
	begin(c, "PLAIN", "AGEAYg==", &r11);
	assert_int_equal(r11.n, 0);
	assert_true(pump(NULL, &r11.n, 2000));
	assert_int_equal(r11.r, DVAUTH_TEMP);
	assert_non_null(strstr(r11.text, "connect failed"));

	/* stop: everything closes on the loop, nothing leaks */
	struct result r12;
	begin(c, "PLAIN", "AGEAYg==", &r12);
	dvauth_close(c);
	pump(NULL, &r12.n, 100);
	assert_int_equal(r12.n, 1);
	assert_int_equal(r12.r, DVAUTH_TEMP);
	dvauth_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	fake_close(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_client),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
