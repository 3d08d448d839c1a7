/*
 * test_smtp_reply.c - table-driven tests of the SMTP reply parser
 * (src/deliver/smtp_reply.c): codes, multi-line replies, enhanced status
 * codes, line ends, limits, and pipelined replies left in the stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "deliver/smtp_reply.h"
#include "lib/xalloc.h"

struct reply_case {
	const char *in;
	int want;           /* SMTP_REPLY_* */
	int code;
	const char *esc;
	size_t nlines;
	const char *formatted; /* smtp_reply_format(r, "9.9.9", 200) */
	size_t used;        /* octets consumed; (size_t)-1 = all of in */
};

#define ALL ((size_t)-1)

static const struct reply_case cases[] = {
	{"220 mx.example ESMTP\r\n", SMTP_REPLY_DONE, 220, "", 1, "220 9.9.9 mx.example ESMTP", ALL},
	{"250 2.1.0 Ok\r\n", SMTP_REPLY_DONE, 250, "2.1.0", 1, "250 2.1.0 Ok", ALL},
	{"550 5.1.1 <a@b>: user unknown\r\n", SMTP_REPLY_DONE, 550, "5.1.1", 1,
	    "550 5.1.1 <a@b>: user unknown", ALL},
	{"250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n", SMTP_REPLY_DONE, 250,
	    "", 4, "250 9.9.9 mx.example PIPELINING SIZE 1000 8BITMIME", ALL},
	{"550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n", SMTP_REPLY_DONE, 550, "5.7.1", 3,
	    "550 5.7.1 first second third", ALL},
	/* bare LF tolerated */
	{"250 ok\n", SMTP_REPLY_DONE, 250, "", 1, "250 9.9.9 ok", ALL},
	{"250-a\n250 b\r\n", SMTP_REPLY_DONE, 250, "", 2, "250 9.9.9 a b", ALL},
	/* bare code, empty text */
	{"250\r\n", SMTP_REPLY_DONE, 250, "", 1, "250 9.9.9", ALL},
	{"354 \r\n", SMTP_REPLY_DONE, 354, "", 1, "354 9.9.9", ALL},
	/* enhanced code class must match the reply class */
	{"550 4.1.1 odd\r\n", SMTP_REPLY_DONE, 550, "", 1, "550 9.9.9 4.1.1 odd", ALL},
	{"451 4.3.0 x\r\n", SMTP_REPLY_DONE, 451, "4.3.0", 1, "451 4.3.0 x", ALL},
	/* not an enhanced code: no space after it */
	{"250 2.0.0x\r\n", SMTP_REPLY_DONE, 250, "", 1, "250 9.9.9 2.0.0x", ALL},
	{"250 2.0.1000 y\r\n", SMTP_REPLY_DONE, 250, "", 1, "250 9.9.9 2.0.1000 y", ALL},
	/* pipelined replies: stop after the first */
	{"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n", SMTP_REPLY_DONE, 250, "2.1.0", 1, "250 2.1.0 Ok", 14},
	/* 8-bit text kept as '?' */
	{"550 5.1.1 unbekannt \xc3\xa4\r\n", SMTP_REPLY_DONE, 550, "5.1.1", 1,
	    "550 5.1.1 unbekannt ??", ALL},
	/* tab in text */
	{"250 a\tb\r\n", SMTP_REPLY_DONE, 250, "", 1, "250 9.9.9 a b", ALL},
	/* incomplete */
	{"250-a\r\n250-b\r\n", SMTP_REPLY_MORE, 0, NULL, 2, NULL, ALL},
	{"250 no end", SMTP_REPLY_MORE, 0, NULL, 0, NULL, 0},
	{"", SMTP_REPLY_MORE, 0, NULL, 0, NULL, 0},
	/* errors */
	{"25\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"2500 x\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"150 x\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"650 x\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"260 x\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"abc x\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"250-a\r\n251 b\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"250 a\rb\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"250 a\r\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"250 a\x01\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"250 a\x7f\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{"\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
	{" 250 x\r\n", SMTP_REPLY_ERROR, 0, NULL, 0, NULL, 0},
};

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct reply_case *c = &cases[i];
		smtp_reply_t r;
		smtp_reply_init(&r);
		size_t used = 0, n = strlen(c->in);
		int got = smtp_reply_feed(&r, c->in, n, &used);
		if (got != c->want)
			fail_msg("case %zu (%s): got %d want %d (%s)", i, c->in, got, c->want,
			    r.err ? r.err : "");
		if (c->want == SMTP_REPLY_ERROR) {
			assert_non_null(r.err);
			smtp_reply_free(&r);
			continue;
		}
		assert_int_equal(used, c->used == ALL ? n : c->used);
		assert_int_equal(r.nlines, c->nlines);
		if (c->want == SMTP_REPLY_DONE) {
			assert_int_equal(r.code, c->code);
			assert_string_equal(r.esc, c->esc);
			buf_t b = BUF_INIT;
			smtp_reply_format(&r, "9.9.9", 200, &b);
			if (strcmp(buf_cstr(&b), c->formatted) != 0)
				fail_msg("case %zu: formatted '%s' want '%s'", i, buf_cstr(&b), c->formatted);
			buf_free(&b);
		}
		smtp_reply_free(&r);
	}
}

/* Byte-at-a-time feeding gives the same result as one block. */
static void
test_bytewise(void **state)
{
	(void)state;
	const char *in = "250-mx\r\n250-SIZE 10\r\n250 2.0.0 ok\r\n220 next\r\n";
	smtp_reply_t r;
	smtp_reply_init(&r);
	buf_t pending = BUF_INIT;
	int got = SMTP_REPLY_MORE;
	size_t fed = 0;
	while (got == SMTP_REPLY_MORE && fed < strlen(in)) {
		buf_putc(&pending, in[fed++]);
		size_t used;
		got = smtp_reply_feed(&r, pending.data, pending.len, &used);
		buf_consume(&pending, used);
	}
	assert_int_equal(got, SMTP_REPLY_DONE);
	assert_int_equal(r.code, 250);
	assert_int_equal(r.nlines, 3);
	assert_int_equal(fed, strlen("250-mx\r\n250-SIZE 10\r\n250 2.0.0 ok\r\n"));
	const char *p;
	size_t n;
	assert_true(smtp_reply_line(&r, 1, &p, &n));
	assert_int_equal(n, 7);
	assert_memory_equal(p, "SIZE 10", 7);
	assert_false(smtp_reply_line(&r, 3, &p, &n));
	/* the next reply after a reset */
	smtp_reply_reset(&r);
	size_t used;
	assert_int_equal(smtp_reply_feed(&r, "220 next\r\n", 10, &used), SMTP_REPLY_DONE);
	assert_int_equal(r.code, 220);
	assert_int_equal(r.nlines, 1);
	smtp_reply_free(&r);
	buf_free(&pending);
}

/* An endless multi-line reply is an error, not a hang or unbounded memory. */
static void
test_limits(void **state)
{
	(void)state;
	smtp_reply_t r;
	smtp_reply_init(&r);
	int got = SMTP_REPLY_MORE;
	size_t lines = 0;
	while (got == SMTP_REPLY_MORE && lines < 10000) {
		size_t used;
		got = smtp_reply_feed(&r, "250-more\r\n", 10, &used);
		lines++;
	}
	assert_int_equal(got, SMTP_REPLY_ERROR);
	assert_int_equal(lines, SMTP_REPLY_MAX_LINES + 1);
	smtp_reply_free(&r);

	/* 100 lines are fine */
	buf_t b = BUF_INIT;
	for (int i = 0; i < SMTP_REPLY_MAX_LINES - 1; i++)
		buf_puts(&b, "250-x\r\n");
	buf_puts(&b, "250 y\r\n");
	smtp_reply_init(&r);
	size_t used;
	assert_int_equal(smtp_reply_feed(&r, b.data, b.len, &used), SMTP_REPLY_DONE);
	assert_int_equal(used, b.len);
	smtp_reply_free(&r);

	/* total size: 20 lines of 4000 octets exceed 64 KiB */
	buf_reset(&b);
	for (int i = 0; i < 20; i++) {
		buf_puts(&b, "250-");
		for (int k = 0; k < 3990; k++)
			buf_putc(&b, 'a');
		buf_puts(&b, "\r\n");
	}
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, b.data, b.len, &used), SMTP_REPLY_ERROR);
	smtp_reply_free(&r);

	/* one overlong line without its end is refused before it completes */
	buf_reset(&b);
	buf_puts(&b, "250 ");
	for (int k = 0; k < SMTP_REPLY_MAX_LINE; k++)
		buf_putc(&b, 'a');
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, b.data, b.len, &used), SMTP_REPLY_ERROR);
	smtp_reply_free(&r);
	buf_free(&b);
}

static void
test_format_truncates(void **state)
{
	(void)state;
	buf_t in = BUF_INIT, out = BUF_INIT;
	buf_puts(&in, "550 5.7.1 ");
	for (int k = 0; k < 1000; k++)
		buf_putc(&in, 'z');
	buf_puts(&in, "\r\n");
	smtp_reply_t r;
	smtp_reply_init(&r);
	size_t used;
	assert_int_equal(smtp_reply_feed(&r, in.data, in.len, &used), SMTP_REPLY_DONE);
	smtp_reply_format(&r, NULL, 100, &out);
	assert_int_equal(out.len, 100);
	assert_memory_equal(out.data, "550 5.7.1 zzz", 13);
	assert_memory_equal(out.data + 97, "...", 3);
	smtp_reply_free(&r);
	buf_free(&in);
	buf_free(&out);
}

struct esc_case {
	const char *s;
	size_t want;
};

static void
test_esc(void **state)
{
	(void)state;
	static const struct esc_case ec[] = {
		{"2.0.0", 5}, {"5.1.10 x", 6}, {"4.123.123", 9}, {"3.0.0", 0}, {"5.1", 0},
		{"5..1", 0}, {"5.1.", 0}, {"5.1234.1", 0}, {"5.1.1x", 0}, {"", 0}, {"5.1.1\t", 0},
	};
	for (size_t i = 0; i < sizeof ec / sizeof ec[0]; i++)
		if (smtp_esc_parse(ec[i].s, strlen(ec[i].s)) != ec[i].want)
			fail_msg("esc case %s", ec[i].s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_bytewise),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_format_truncates),
		cmocka_unit_test(test_esc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
