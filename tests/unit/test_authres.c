/*
 * test_authres.c - src/mailauth/authres.c: the Authentication-Results
 * field tern writes (RFC 8601 syntax: authserv-id, resinfo per line,
 * registered keywords only, bare or quoted values, escaped comments,
 * folding at 78) and the removal of fields claiming our authserv-id
 * (section 5: the id read through CFWS, comments, quoted strings and
 * folding; other fields, other ids and the body left alone).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mailauth/authres.h"

static void
test_keywords(void **state)
{
	assert_true(authres_result_ok("spf", "softfail"));
	assert_true(authres_result_ok("dkim", "policy"));
	assert_true(authres_result_ok("dmarc", "permerror"));
	assert_true(authres_result_ok("arc", "pass"));
	assert_false(authres_result_ok("dkim", "tmperror")); /* Exim's */
	assert_false(authres_result_ok("spf", "(invalid)"));
	assert_false(authres_result_ok("spf", "pas"));
	assert_false(authres_result_ok("spf", "ass"));
	assert_false(authres_result_ok("dmarc", "softfail"));
	assert_false(authres_result_ok("arc", "temperror"));
	assert_false(authres_result_ok("spf", "pass fail"));
	assert_false(authres_result_ok("spf", ""));
	assert_false(authres_result_ok("nosuch", "pass"));
	authres_t a;
	authres_begin(&a, "mx.example");
	assert_int_equal(authres_add(&a, "dkim", "tmperror", NULL, NULL, NULL, 0), -1);
	assert_string_equal(authres_end(&a), "Authentication-Results: mx.example; none\r\n");
	authres_free(&a);
}

static void
test_build(void **state)
{
	authres_t a;
	authres_begin(&a, "mx.example.org");
	authres_prop_t spf[] = {{"smtp.mailfrom", "alice@a.example"}};
	assert_int_equal(authres_add(&a, "spf", "pass", NULL, NULL, spf, 1), 0);
	authres_prop_t helo[] = {{"smtp.helo", "mail.a.example"}};
	assert_int_equal(authres_add(&a, "spf", "none", NULL, NULL, helo, 1), 0);
	authres_prop_t dk[] = {{"header.d", "a.example"}, {"header.i", "@a.example"},
	    {"header.s", "sel"}, {"header.a", "rsa-sha256"}, {"header.b", "Ab+/x9=="}};
	assert_int_equal(authres_add(&a, "dkim", "pass", NULL, NULL, dk, 5), 0);
	authres_prop_t dm[] = {{"header.from", "a.example"}};
	assert_int_equal(authres_add(&a, "dmarc", "fail", "p=reject dis=reject", NULL, dm, 1), 0);
	authres_prop_t odd[] = {{"smtp.mailfrom", "\"john doe\"@a.example"}, {"x.y", ""}};
	assert_int_equal(authres_add(&a, "spf", "fail", "a (nested) \\ comment", "no \"match\"",
			     odd, 2),
	    0);
	const char *want = "Authentication-Results: mx.example.org;\r\n"
			   "\tspf=pass smtp.mailfrom=alice@a.example;\r\n"
			   "\tspf=none smtp.helo=mail.a.example;\r\n"
			   "\tdkim=pass header.d=a.example header.i=@a.example header.s=sel\r\n"
			   "\theader.a=rsa-sha256 header.b=\"Ab+/x9==\";\r\n"
			   "\tdmarc=fail (p=reject dis=reject) header.from=a.example;\r\n"
			   "\tspf=fail (a \\(nested\\) \\\\ comment) reason=\"no \\\"match\\\"\"\r\n"
			   "\tsmtp.mailfrom=\"\\\"john doe\\\"@a.example\"\r\n";
	assert_string_equal(authres_end(&a), want);
	/* no line over 78 octets */
	const char *p = a.b.data;
	while (*p) {
		const char *e = strstr(p, "\r\n");
		assert_non_null(e);
		assert_true(e - p <= 78);
		p = e + 2;
	}
	authres_free(&a);

	/* an authserv-id that is not a token is quoted */
	authres_begin(&a, "odd id");
	assert_string_equal(authres_end(&a), "Authentication-Results: \"odd id\"; none\r\n");
	authres_free(&a);
}

static void
test_serv_id(void **state)
{
	static const struct {
		const char *v;
		const char *id; /* NULL: none */
	} cases[] = {
	    {" mx.example; spf=pass", "mx.example"},
	    {"mx.example;", "mx.example"},
	    {" mx.example 1; none", "mx.example"},
	    {" (comment) mx.example; none", "mx.example"},
	    {" (nested (comment \\) here)) mx.example; none", "mx.example"},
	    {"\r\n\tmx.example;\r\n\tspf=pass", "mx.example"},
	    {" \"mx.example\"; none", "mx.example"},
	    {" \"mx\\.exa\r\n mple\"; none", "mx.exa mple"}, /* unfolding keeps the WSP */
	    {" MX.Example; none", "MX.Example"},
	    {" ; none", NULL},
	    {"", NULL},
	    {" (unterminated mx.example; none", NULL},
	    {" \"unterminated; none", NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t b = BUF_INIT;
		int r = authres_serv_id(cases[i].v, strlen(cases[i].v), &b);
		if (cases[i].id == NULL) {
			if (r != -1)
				fail_msg("case %zu: got \"%s\"", i, buf_cstr(&b));
		} else if (r != 0 || strcmp(buf_cstr(&b), cases[i].id) != 0) {
			fail_msg("case %zu: rc %d \"%s\"", i, r, buf_cstr(&b));
		}
		buf_free(&b);
	}
}

static void
strip_case(const char *in, const char *id, const char *want, size_t nwant)
{
	buf_t b = BUF_INIT;
	buf_puts(&b, in);
	size_t n = authres_strip(&b, id);
	if (n != nwant || strcmp(buf_cstr(&b), want) != 0)
		fail_msg("stripped %zu from \"%s\": \"%s\"", n, in, buf_cstr(&b));
	assert_int_equal(b.len, strlen(want));
	buf_free(&b);
}

static void
test_strip(void **state)
{
	strip_case("Received: x\r\n"
		   "Authentication-Results: mx.example; spf=pass\r\n"
		   "Subject: hi\r\n\r\nbody\r\n",
	    "mx.example", "Received: x\r\nSubject: hi\r\n\r\nbody\r\n", 1);
	/* folded, comments, case, quoted, WSP before the colon; others kept */
	strip_case("authentication-results : (forged)\r\n"
		   "\t\"MX.EXAMPLE\";\r\n"
		   "\tdkim=pass header.d=evil.example\r\n"
		   "Authentication-Results: other.example; spf=pass\r\n"
		   "Authentication-Results: mx.example.evil; spf=pass\r\n"
		   "X-Authentication-Results: mx.example; spf=pass\r\n"
		   "ARC-Authentication-Results: i=1; mx.example; spf=pass\r\n"
		   "Authentication-Results: mx.example\r\n"
		   "\r\n"
		   "Authentication-Results: mx.example; in the body\r\n",
	    "mx.example",
	    "Authentication-Results: other.example; spf=pass\r\n"
	    "Authentication-Results: mx.example.evil; spf=pass\r\n"
	    "X-Authentication-Results: mx.example; spf=pass\r\n"
	    "ARC-Authentication-Results: i=1; mx.example; spf=pass\r\n"
	    "\r\n"
	    "Authentication-Results: mx.example; in the body\r\n",
	    2);
	/* nothing to do; no body; bare LF; a field at the very end */
	strip_case("Subject: x\r\n\r\n", "mx.example", "Subject: x\r\n\r\n", 0);
	strip_case("Authentication-Results: mx.example; none", "mx.example", "", 1);
	strip_case("A: b\nAuthentication-Results: mx.example;\n none\nC: d\n\nx", "mx.example",
	    "A: b\nC: d\n\nx", 1);
	strip_case("Authentication-Results:\r\n", "mx.example", "Authentication-Results:\r\n", 0);
	strip_case("Authentication-Results: mx.example; x\r\n", "",
	    "Authentication-Results: mx.example; x\r\n", 0);
	buf_t empty = BUF_INIT;
	assert_int_equal(authres_strip(&empty, "mx.example"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keywords),
	    cmocka_unit_test(test_build),
	    cmocka_unit_test(test_serv_id),
	    cmocka_unit_test(test_strip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
