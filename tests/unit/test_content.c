/*
 * test_content.c - table-driven tests of src/filter/content.c: the table
 * syntax (actions, flags, continuation lines, errors with FILE:LINE), the
 * first-match rule and negation, the match limit on a pathological
 * pattern, quoted-printable and base64 decoding, header unfolding, and the
 * MIME walk (which headers and lines come out, decoded, and which do not).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "filter/content.h"

static content_table_t *
parse(const char *text, buf_t *err)
{
	return content_table_parse("t", text, strlen(text), err);
}

static void
test_table_ok(void **state)
{
	buf_t err = BUF_INIT;
	content_table_t *t = parse("# c\n\n/^Subject:.*free/i REJECT No thanks\n"
	    "!/^X-Ok:/ WARN not ok\n  and continued\n/^X-Drop:/ IGNORE\n"
	    "/^X-Tag:/ PREPEND X-Seen: yes\n/^X-H:/ hold\n/^X-D:/ DISCARD\n", &err);
	assert_non_null(t);
	assert_int_equal(content_table_size(t), 6);
	content_rule_ref_t r;
	bool lim = false;
	const char *s = "Subject: FREE money";
	assert_int_equal(content_table_match(t, s, strlen(s), &r, &lim), 1);
	assert_int_equal(r.action, CONTENT_REJECT);
	assert_string_equal(r.text, "No thanks");
	assert_int_equal(r.line, 3);
	s = "X-Ok: fine";
	/* the negated rule passes X-Ok, and no other rule matches it */
	assert_int_equal(content_table_match(t, s, strlen(s), &r, &lim), 0);
	s = "From: a";
	assert_int_equal(content_table_match(t, s, strlen(s), &r, &lim), 1);
	assert_int_equal(r.action, CONTENT_WARN);
	assert_string_equal(r.text, "not ok and continued");
	assert_int_equal(r.line, 4);
	content_table_free(t);
	buf_free(&err);
}

static void
test_table_errors(void **state)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"/(/ REJECT\n", "t:1: bad pattern: missing closing parenthesis"},
		{"\n\n/a/ FROB\n", "t:3: unknown action \"FROB\""},
		{"a REJECT\n", "t:1: expected /pattern/flags"},
		{"/abc REJECT\n", "t:1: the pattern has no closing /"},
		{"/a/q REJECT\n", "t:1: unknown pattern flag 'q'"},
		{"/a/ IGNORE text\n", "t:1: IGNORE takes no text"},
		{"/a/ PREPEND not a header\n", "t:1: PREPEND needs a header field"},
		{"  /a/ WARN\n", "t:1: a continuation line with nothing to continue"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t err = BUF_INIT;
		content_table_t *t = parse(cases[i].text, &err);
		assert_null(t);
		if (!strstr(buf_cstr(&err), cases[i].want))
			fail_msg("%s: got \"%s\"", cases[i].text, buf_cstr(&err));
		buf_free(&err);
	}
}

static void
test_match_limit(void **state)
{
	buf_t err = BUF_INIT;
	content_table_t *t = parse("/^(a+)+$/ REJECT catastrophic\n/zzz/ WARN\n", &err);
	assert_non_null(t);
	char s[64];
	memset(s, 'a', sizeof s - 2);
	s[sizeof s - 2] = 'b';
	s[sizeof s - 1] = '\0';
	content_rule_ref_t r;
	bool lim = false;
	assert_int_equal(content_table_match(t, s, strlen(s), &r, &lim), 0);
	assert_true(lim);
	content_table_free(t);
	buf_free(&err);
}

static void
test_qp(void **state)
{
	static const struct {
		const char *in, *out;
		bool soft;
	} cases[] = {
		{"caf=E9", "caf\xe9", false},
		{"a=3Db=", "a=b", true},
		{"trailing   ", "trailing", false},
		{"bad=ZZ=4", "bad=ZZ=4", false},
		{"=", "", true},
		{"=4", "=4", false},
		{"lower=e9", "lower\xe9", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[64];
		bool soft;
		size_t k = content_qp_line(cases[i].in, strlen(cases[i].in), out, &soft);
		out[k] = '\0';
		assert_string_equal(out, cases[i].out);
		assert_int_equal(soft, cases[i].soft);
	}
}

static void
test_b64(void **state)
{
	content_b64_t st = {0};
	buf_t b = BUF_INIT;
	content_b64_feed(&st, "aGVsbG8g", 8, &b);
	content_b64_feed(&st, "d29y\r\n", 6, &b); /* split anywhere, junk skipped */
	content_b64_feed(&st, "bGQ=", 4, &b);
	content_b64_feed(&st, "QUFB", 4, &b);     /* after '=': ignored */
	assert_int_equal(b.len, 11);
	assert_memory_equal(b.data, "hello world", 11);
	buf_free(&b);
}

static void
test_unfold(void **state)
{
	buf_t b = BUF_INIT;
	content_unfold("Subject", " one\r\n two\r\n\tthree", &b);
	assert_string_equal(buf_cstr(&b), "Subject: one two\tthree");
	buf_free(&b);
}

struct seen {
	buf_t out;
};

static void
on_h(void *arg, const char *p, size_t n)
{
	struct seen *s = arg;
	buf_puts(&s->out, "H[");
	buf_append(&s->out, p, n);
	buf_puts(&s->out, "]");
}

static void
on_l(void *arg, const char *p, size_t n)
{
	struct seen *s = arg;
	buf_puts(&s->out, "L[");
	buf_append(&s->out, p, n);
	buf_puts(&s->out, "]");
}

static void
test_walk(void **state)
{
	static const struct {
		const char *ct, *cte, *body, *want;
	} cases[] = {
		/* no Content-Type: text/plain */
		{NULL, NULL, "a\r\nb\r\n", "L[a]L[b]"},
		{" text/plain", " quoted-printable", "x=3Dy=\r\nz\r\n", "L[x=yz]"},
		{"text/html", "base64", "PGI+aGk8L2I+DQpsaW5lMg==\r\n", "L[<b>hi</b>]L[line2]"},
		/* an image: only its headers */
		{"image/png", NULL, "binary\r\n", ""},
		/* multipart: preamble and epilogue skipped, each part's headers
		 * unfolded, text parts decoded, others not */
		{"multipart/mixed; boundary=\"b1\"", NULL,
		    "pre\r\n--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
		    "--b1\r\nContent-Type: application/octet-stream;\r\n name=\"x.exe\"\r\n"
		    "Content-Transfer-Encoding: base64\r\n\r\nTVo=\r\n--b1--\r\nepilogue\r\n",
		    "H[Content-Type: text/plain]L[hello]H[Content-Type: application/octet-stream; "
		    "name=\"x.exe\"]H[Content-Transfer-Encoding: base64]"},
		/* a longer boundary that starts with this one is body text */
		{"multipart/mixed; boundary=b", NULL,
		    "--b\r\n\r\none\r\n--bb\r\ntwo\r\n--b-- \r\nepi\r\n", "L[one]L[--bb]L[two]"},
		/* nested multipart and an attached message */
		{"multipart/mixed; boundary=o", NULL,
		    "--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\nin\r\n"
		    "--i--\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\n"
		    "body\r\n--o--\r\n",
		    "H[Content-Type: multipart/alternative; boundary=i]L[in]"
		    "H[Content-Type: message/rfc822]H[Subject: inner]L[body]"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct seen s = {BUF_INIT};
		content_walk_cb_t cb = {on_h, on_l, NULL};
		content_walk(cases[i].body, strlen(cases[i].body), cases[i].ct, cases[i].cte, &cb, &s);
		if (strcmp(buf_cstr(&s.out), cases[i].want) != 0)
			fail_msg("case %zu: got %s", i, buf_cstr(&s.out));
		buf_free(&s.out);
	}
}

static void
test_long_line_cut(void **state)
{
	size_t n = CONTENT_LINE_MAX * 2 + 10;
	char *body = malloc(n + 2);
	memset(body, 'x', n);
	memcpy(body + n, "\r\n", 2);
	struct seen s = {BUF_INIT};
	content_walk_cb_t cb = {on_h, on_l, NULL};
	content_walk(body, n + 2, NULL, NULL, &cb, &s);
	/* three pieces: 8192, 8192, 10 */
	size_t pieces = 0;
	for (const char *p = buf_cstr(&s.out); (p = strstr(p, "L[")) != NULL; p += 2)
		pieces++;
	assert_int_equal(pieces, 3);
	buf_free(&s.out);
	free(body);
}

/* The sieve never skips a rule that some line matches on its own: every
 * rule (safe kinds and the kinds it must leave alone: lookaround at a
 * line's end, \z, possessive, atomic, (*VERB), (?-m), x, negation) against
 * sets of lines, each line alone against each rule alone; and it does
 * skip the safe rules that match nothing, so it is exercised. */
static void
test_sieve(void **state)
{
	(void)state;
	static const char rules[] =
	    "/^Click here/i REJECT r1\n"           /* 0: anchored */
	    "/\\bwire transfer\\b/i WARN r2\n"     /* 1: word boundaries */
	    "/done$/ WARN r3\n"                    /* 2: end of line */
	    "/(?:\\d{4}[- ]?){3}\\d{4}/ WARN r4\n" /* 3 */
	    "/x(?!\\s)/ WARN r5\n"                 /* 4: lookahead: never sieved */
	    "/(?<=^)abc/ WARN r6\n"                /* 5: lookbehind: never sieved */
	    "/end\\z/ WARN r7\n"                   /* 6: \\z: never sieved */
	    "/[^q]++q/ WARN r8\n"                  /* 7: possessive: never sieved */
	    "/(?>a+)b/ WARN r9\n"                  /* 8: atomic: never sieved */
	    "/(*COMMIT)zz/ WARN r10\n"             /* 9: verb: never sieved */
	    "/(?-m)^tail/ WARN r11\n"              /* 10: never sieved */
	    "/a b c/x WARN r12\n"                  /* 11: x flag: never sieved */
	    "!/never/ WARN r13\n"                  /* 12: negated: never sieved */
	    "/(?i)MiXeD/ WARN r14\n"               /* 13: option setting: sieved */
	    "/^$/ WARN r15\n"                      /* 14: an empty line */
	    "/(a)\\1/ WARN r16\n";                 /* 15: back reference */
	static const char *const sets[][6] = {
	    {"Click here now", "a wire transfer today", "all done", NULL},
	    {"card 1234-5678-9012-3456 ok", "ex", "x", "xy", NULL},
	    {"abc at start", "the end", "qqq", "aab", "zz top", NULL},
	    {"tail first", "MIXED case", "", "aa", NULL},
	    {"nothing to see", "here either", NULL},
	    {"", NULL},
	    {NULL},
	};
	static const bool never_sieved[] = {false, false, false, false, true, true, true, true,
	    true, true, true, true, true, false, false, false};
	buf_t err = BUF_INIT;
	content_table_t *t = content_table_parse("sieve", rules, sizeof rules - 1, &err);
	assert_non_null(t);
	size_t nr = content_table_size(t);
	assert_int_equal(nr, 16);
	bool *only = calloc(nr, sizeof *only);
	size_t skipped_total = 0;
	for (size_t k = 0; k < sizeof sets / sizeof sets[0]; k++) {
		buf_t block = BUF_INIT;
		for (size_t l = 0; sets[k][l]; l++) {
			buf_append(&block, sets[k][l], strlen(sets[k][l]));
			buf_putc(&block, '\n');
		}
		bool *skip = content_table_sieve(t, block.data ? block.data : "", block.len);
		for (size_t i = 0; i < nr; i++) {
			bool any = false;
			for (size_t j = 0; j < nr; j++)
				only[j] = j != i;
			for (size_t l = 0; sets[k][l]; l++) {
				content_rule_ref_t r;
				bool lim = false;
				any = any || content_table_match_skip(t, only, sets[k][l],
				    strlen(sets[k][l]), &r, &lim) == 1;
			}
			bool sk = skip && skip[i];
			if (sk) {
				assert_false(any); /* never a rule that a line matches */
				assert_false(never_sieved[i]);
				skipped_total++;
			}
			if (!any && !never_sieved[i] && sets[k][0] != NULL)
				assert_true(sk); /* a safe rule that matches nothing is skipped */
		}
		free(skip);
		buf_free(&block);
	}
	assert_true(skipped_total > 20);
	free(only);
	content_table_free(t);
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_ok),
		cmocka_unit_test(test_table_errors),
		cmocka_unit_test(test_match_limit),
		cmocka_unit_test(test_qp),
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_unfold),
		cmocka_unit_test(test_walk),
		cmocka_unit_test(test_long_line_cut),
		cmocka_unit_test(test_sieve),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
