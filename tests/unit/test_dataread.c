/*
 * test_dataread.c - the DATA/BDAT content reader: termination only on
 * CRLF.CRLF, dot-unstuffing, bare CR/LF and NUL flagged (SMTP smuggling),
 * limits, and the same results whatever way the input is split into reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "smtpd/dataread.h"

static void
collect(void *arg, const char *p, size_t n)
{
	buf_append(arg, p, n);
}

struct dcase {
	const char *in;
	bool raw;
	const char *out;   /* expected content (when no error flag) */
	size_t consumed;   /* expected consumed octets; 0 = whole input */
	bool done;
	unsigned flags;    /* expected DR_ERRORS subset */
};

static const struct dcase cases[] = {
	{"Subject: x\r\n\r\nhello\r\n.\r\n", false, "Subject: x\r\n\r\nhello\r\n", 0, true, 0},
	{".\r\n", false, "", 0, true, 0},
	{"..x\r\n.\r\n", false, ".x\r\n", 0, true, 0},
	{".hidden\r\n.\r\n", false, "hidden\r\n", 0, true, 0},
	{"a\r\n.\r\nMAIL FROM:<x>\r\n", false, "a\r\n", 6, true, 0},
	/* smuggling variants: never an end, always flagged */
	{"a\n.\nMAIL FROM:<e@x>\r\n.\r\n", false, NULL, 0, true, DR_BARE_LF},
	{"a\n.\r\nRCPT TO:<b@x>\r\n.\r\n", false, NULL, 0, true, DR_BARE_LF},
	{"a\r.\r\nDATA\r\n.\r\n", false, NULL, 0, true, DR_BARE_CR},
	{"a\r\n.\rMAIL\r\n.\r\n", false, NULL, 0, true, DR_BARE_CR},
	{"a\r\n.\nx\r\n.\r\n", false, NULL, 0, true, DR_BARE_LF},
	{"no end\r\n", false, "no end\r\n", 0, false, 0},
	/* raw (BDAT): no terminator, no unstuffing */
	{"x\r\n.\r\ny\r\n", true, "x\r\n.\r\ny\r\n", 0, false, 0},
	{"x\ny\r\n", true, NULL, 0, false, DR_BARE_LF},
	{"..\r\n", true, "..\r\n", 0, false, 0},
};

static void
run_case(const struct dcase *c, size_t split)
{
	dataread_t d;
	buf_t out = BUF_INIT;
	size_t n = strlen(c->in), used = 0;
	bool done = false;
	dataread_init(&d, c->raw, 1000, 0);
	while (used < n && !done) {
		size_t k = split ? (n - used < split ? n - used : split) : n - used;
		used += dataread_feed(&d, c->in + used, k, collect, &out, &done);
	}
	assert_int_equal(done, c->done);
	assert_int_equal(used, c->consumed ? c->consumed : n);
	assert_int_equal(d.flags & DR_ERRORS, c->flags);
	if (c->out && !c->flags)
		assert_string_equal(buf_cstr(&out), c->out);
	buf_free(&out);
}

static void
test_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		run_case(&cases[i], 0);
		for (size_t split = 1; split <= 4; split++)
			run_case(&cases[i], split);
	}
}

static void
test_line_limit(void **state)
{
	(void)state;
	char big[1200];
	memset(big, 'a', sizeof big);
	dataread_t d;
	buf_t out = BUF_INIT;
	bool done;
	/* 998 octets + CRLF = 1000: allowed */
	dataread_init(&d, false, 1000, 0);
	dataread_feed(&d, big, 998, collect, &out, &done);
	dataread_feed(&d, "\r\n.\r\n", 5, collect, &out, &done);
	assert_true(done);
	assert_int_equal(d.flags & DR_ERRORS, 0);
	/* 999 + CRLF: too long */
	dataread_init(&d, false, 1000, 0);
	dataread_feed(&d, big, 999, collect, &out, &done);
	dataread_feed(&d, "\r\n.\r\n", 5, collect, &out, &done);
	assert_true(done);
	assert_int_equal(d.flags & DR_ERRORS, DR_LINE_TOO_LONG);
	buf_free(&out);
}

static void
test_size_limit(void **state)
{
	(void)state;
	dataread_t d;
	buf_t out = BUF_INIT;
	bool done;
	dataread_init(&d, false, 1000, 10);
	dataread_feed(&d, "0123456789\r\nmore\r\n.\r\n", 21, collect, &out, &done);
	assert_true(done);
	assert_true(d.flags & DR_TOO_BIG);
	assert_true(out.len <= 10);
	buf_free(&out);
}

static void
test_raw_trailing_cr(void **state)
{
	(void)state;
	dataread_t d;
	buf_t out = BUF_INIT;
	bool done;
	dataread_init(&d, true, 1000, 0);
	dataread_feed(&d, "abc\r", 4, collect, &out, &done);
	assert_int_equal(d.flags & DR_ERRORS, 0);
	dataread_feed(&d, "\n", 1, collect, &out, &done);
	dataread_finish(&d, collect, &out);
	assert_int_equal(d.flags & DR_ERRORS, 0);
	assert_string_equal(buf_cstr(&out), "abc\r\n");
	dataread_feed(&d, "x\r", 2, collect, &out, &done);
	dataread_finish(&d, collect, &out);
	assert_int_equal(d.flags & DR_ERRORS, DR_BARE_CR);
	buf_free(&out);
}

/* NUL anywhere in the content is an error in both modes (the message is
 * refused), and the DATA stream is still read to its real end so the
 * session stays in step; nothing from the NUL on is emitted. */
static void
test_nul(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		size_t n;
		bool raw;
		size_t consumed;
		bool done;
	} nc[] = {
	    /* the smuggling shape: a NUL-stripping next hop would end here */
	    {"a\r\n\0.\r\nMAIL FROM:<e@x>\r\n.\r\nQUIT\r\n", 33, false, 27, true},
	    {"\0\r\n.\r\n", 6, false, 6, true},
	    {"text\0more\r\n.\r\n", 14, false, 14, true},
	    {"a\r\n.\0\r\n.\r\n", 10, false, 10, true}, /* after a stuffing dot */
	    {"x\r\n\0\r\n", 6, true, 6, false},
	    {"\0", 1, true, 1, false},
	};
	for (size_t i = 0; i < sizeof nc / sizeof nc[0]; i++) {
		for (size_t split = 0; split <= 3; split++) {
			dataread_t d;
			buf_t out = BUF_INIT;
			size_t used = 0;
			bool done = false;
			dataread_init(&d, nc[i].raw, 1000, 0);
			while (used < nc[i].n && !done) {
				size_t left = nc[i].n - used;
				size_t k = split && left > split ? split : left;
				used += dataread_feed(&d, nc[i].in + used, k, collect, &out, &done);
			}
			if (nc[i].raw)
				dataread_finish(&d, collect, &out);
			assert_int_equal(used, nc[i].consumed);
			assert_int_equal(done, nc[i].done);
			assert_int_equal(d.flags & DR_ERRORS, DR_NUL);
			assert_null(memchr(out.data ? out.data : "", 0, out.len));
			buf_free(&out);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_line_limit),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_raw_trailing_cr),
		cmocka_unit_test(test_nul),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
