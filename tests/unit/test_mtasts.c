/*
 * test_mtasts.c - MTA-STS (RFC 8461) as data, without a network: the
 * "_mta-sts" TXT record (§3.1), the policy parser (§3.2) and MX host
 * matching (§4.1). Fetching, caching and delivery under a policy are in
 * tests/integration/test_mta_sts.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/mtasts.h"
#include "lib/buf.h"
#include "lib/tls.h"

static int
txt(const char *s, char *id)
{
	buf_t err = BUF_INIT;
	int r = mtasts_txt_parse(s, strlen(s), id, &err);
	if (r < 0)
		assert_true(err.len > 0);
	buf_free(&err);
	return r;
}

static void
test_txt(void **state)
{
	(void)state;
	char id[MTASTS_ID_MAX + 1];
	assert_int_equal(txt("v=STSv1; id=20160831085700Z;", id), 1);
	assert_string_equal(id, "20160831085700Z");
	assert_int_equal(txt("v=STSv1;id=abc", id), 1);
	assert_string_equal(id, "abc");
	assert_int_equal(txt("v=STSv1; ext=1; id=x2 ;", id), 1);
	assert_string_equal(id, "x2");
	/* other TXT records are not ours */
	assert_int_equal(txt("v=spf1 -all", id), 0);
	assert_int_equal(txt("v=STSv10; id=1", id), 0);
	assert_int_equal(txt("", id), 0);
	/* ours but malformed: no id, a bad id, a field without '=' */
	assert_int_equal(txt("v=STSv1;", id), -1);
	assert_int_equal(txt("v=STSv1; id=a-b", id), -1);
	assert_int_equal(txt("v=STSv1; id=123456789012345678901234567890123", id), -1);
	assert_int_equal(txt("v=STSv1; id", id), -1);
}

static int
parse(const char *s, mtasts_policy_t *p)
{
	buf_t err = BUF_INIT;
	int r = mtasts_policy_parse(s, strlen(s), p, &err);
	if (r < 0)
		assert_true(err.len > 0);
	buf_free(&err);
	return r;
}

static void
test_policy(void **state)
{
	(void)state;
	mtasts_policy_t p;
	assert_int_equal(parse("version: STSv1\r\nmode: enforce\r\nmx: mail.Example.com\r\n"
	    "mx: *.example.net\r\nmax_age: 604800\r\n", &p), 0);
	assert_int_equal(p.mode, MTASTS_ENFORCE);
	assert_int_equal(p.max_age, 604800);
	assert_int_equal(p.nmx, 2);
	assert_string_equal(p.mx[0], "mail.example.com");
	mtasts_policy_clear(&p);
	/* LF line ends, unknown fields, no final line end, trailing space */
	assert_int_equal(parse("version: STSv1\nmode: testing \nfoo: bar baz\nmx: a.example\n"
	    "max_age: 1", &p), 0);
	assert_int_equal(p.mode, MTASTS_TESTING);
	mtasts_policy_clear(&p);
	/* mode none needs no mx; max_age is held to a year */
	assert_int_equal(parse("version: STSv1\r\nmode: none\r\nmax_age: 99999999999\r\n", &p), -1);
	assert_int_equal(parse("version: STSv1\r\nmode: none\r\nmax_age: 9999999999\r\n", &p), 0);
	assert_int_equal(p.max_age, MTASTS_MAX_AGE_LIMIT);
	mtasts_policy_clear(&p);
	/* refused: no version, another version, a bad mode, no max_age, no mx,
	 * a bad pattern, a line without a colon, a NUL */
	assert_int_equal(parse("mode: enforce\nmx: a.example\nmax_age: 1\n", &p), -1);
	assert_int_equal(parse("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", &p), -1);
	assert_int_equal(parse("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", &p), -1);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: a.example\n", &p), -1);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmax_age: 1\n", &p), -1);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", &p), -1);
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: *a.example\nmax_age: 1\n", &p), -1);
	assert_int_equal(parse("version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n", &p), -1);
	buf_t err = BUF_INIT;
	assert_int_equal(mtasts_policy_parse("version: STSv1\0", 15, &p, &err), -1);
	assert_null(p.mx);
	buf_free(&err);
}

static void
test_match(void **state)
{
	(void)state;
	mtasts_policy_t p;
	assert_int_equal(parse("version: STSv1\nmode: enforce\nmx: mail.example.com\n"
	    "mx: *.example.net\nmax_age: 86400\n", &p), 0);
	assert_true(mtasts_mx_match(&p, "mail.example.com"));
	assert_true(mtasts_mx_match(&p, "MAIL.example.com."));
	assert_false(mtasts_mx_match(&p, "x.mail.example.com"));
	assert_false(mtasts_mx_match(&p, "example.com"));
	/* "*." stands for exactly one label (§4.1) */
	assert_true(mtasts_mx_match(&p, "mx1.example.net"));
	assert_false(mtasts_mx_match(&p, "a.mx1.example.net"));
	assert_false(mtasts_mx_match(&p, "example.net"));
	assert_false(mtasts_mx_match(&p, "xexample.net"));
	mtasts_policy_clear(&p);
}

static void
test_policy_word(void **state)
{
	(void)state;
	enum tls_policy t;
	assert_int_equal(tls_policy_parse("sts", &t), 0);
	assert_int_equal(t, TLS_POLICY_STS);
	assert_string_equal(tls_policy_name(TLS_POLICY_STS), "sts");
	assert_null(tls_policy_check("STS"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_policy_word),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
