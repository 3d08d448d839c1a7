/*
 * test_dovecot_auth.c - table-driven tests of the Dovecot authentication
 * protocol lines (src/smtpd/auth_dovecot_proto.c): the server's handshake
 * and replies (ids, flags, user=, reason=, temp, tab-escaping, limits, what
 * breaks the protocol) and the client's AUTH and CONT lines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
