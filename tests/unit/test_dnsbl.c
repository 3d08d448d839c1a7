/*
 * test_dnsbl.c - table-driven tests of src/filter/dnsbl.c without DNS: the
 * site syntax (zone, reply filter, weight), the names looked up (IPv4
 * reversed, IPv6 nibbles per RFC 5782 §2.4, IPv4-mapped IPv6 as IPv4) and
 * the reply filter. The lookups themselves: tests/integration/test_dnsbl.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "filter/dnsbl.h"

static void
test_site_parse(void **state)
{
	static const struct {
		const char *spec;
		int ok;
		const char *zone;
		int weight;
		int filter;
		uint8_t lo[4], hi[4];
	} cases[] = {
		{"zen.example", 0, "zen.example", 1, 0, {0}, {0}},
		{"ZEN.Example.", 0, "zen.example", 1, 0, {0}, {0}},
		{"zen.example*3", 0, "zen.example", 3, 0, {0}, {0}},
		{"zen.example=127.0.0.2", 0, "zen.example", 1, 1, {127, 0, 0, 2}, {127, 0, 0, 2}},
		{"zen.example=127.0.0.[2..11]*2", 0, "zen.example", 2, 1, {127, 0, 0, 2},
		    {127, 0, 0, 11}},
		{"wl.example=127.0.[0..255].[1..3]*-5", 0, "wl.example", -5, 1, {127, 0, 0, 1},
		    {127, 0, 255, 3}},
		{"", -1, NULL, 0, 0, {0}, {0}},
		{"*3", -1, NULL, 0, 0, {0}, {0}},
		{"zen.example*", -1, NULL, 0, 0, {0}, {0}},
		{"zen.example*0", -1, NULL, 0, 0, {0}, {0}},
		{"zen.example*x", -1, NULL, 0, 0, {0}, {0}},
		{"zen.example*5000", -1, NULL, 0, 0, {0}, {0}},
		{"zen.example=127.0.0", -1, NULL, 0, 0, {0}, {0}},
		{"zen.example=127.0.0.256", -1, NULL, 0, 0, {0}, {0}},
		{"zen.example=127.0.0.[9..2]", -1, NULL, 0, 0, {0}, {0}},
		{"zen.example=127.0.0.[2..", -1, NULL, 0, 0, {0}, {0}},
		{"zen.example=127.0.0.2x", -1, NULL, 0, 0, {0}, {0}},
		{"zen..example", -1, NULL, 0, 0, {0}, {0}},
		{".zen.example", -1, NULL, 0, 0, {0}, {0}},
		{"zen example", -1, NULL, 0, 0, {0}, {0}},
		{"zen/example", -1, NULL, 0, 0, {0}, {0}},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		dnsbl_site_t s;
		buf_t err = BUF_INIT;
		int r = dnsbl_site_parse(cases[i].spec, &s, &err);
		if (r != cases[i].ok)
			fail_msg("%s: got %d (%s)", cases[i].spec, r, buf_cstr(&err));
		if (r == 0) {
			assert_string_equal(s.zone, cases[i].zone);
			assert_int_equal(s.weight, cases[i].weight);
			assert_int_equal(s.filter, cases[i].filter);
			if (s.filter) {
				assert_memory_equal(s.lo, cases[i].lo, 4);
				assert_memory_equal(s.hi, cases[i].hi, 4);
			}
		} else {
			assert_true(err.len > 0);
		}
		buf_free(&err);
	}
}

static void
test_qname(void **state)
{
	char out[300];
	struct sockaddr_in sin = {.sin_family = AF_INET};
	inet_pton(AF_INET, "192.0.2.99", &sin.sin_addr);
	assert_int_equal(dnsbl_qname((struct sockaddr *)&sin, "bl.example", out, sizeof out), 0);
	assert_string_equal(out, "99.2.0.192.bl.example");
	assert_int_equal(dnsbl_qname((struct sockaddr *)&sin, "bl.example", out, 10), -1);

	/* RFC 5782 §2.4's example */
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	inet_pton(AF_INET6, "2001:db8:1:2:3:4:567:89ab", &sin6.sin6_addr);
	assert_int_equal(dnsbl_qname((struct sockaddr *)&sin6, "ugly.example.com", out, sizeof out), 0);
	assert_string_equal(out, "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2."
	    "ugly.example.com");
	inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
	assert_int_equal(dnsbl_qname((struct sockaddr *)&sin6, "bl.example", out, sizeof out), 0);
	assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "bl.example");
	/* an IPv4 client on a dual-stack socket is looked up as IPv4 */
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &sin6.sin6_addr);
	assert_int_equal(dnsbl_qname((struct sockaddr *)&sin6, "bl.example", out, sizeof out), 0);
	assert_string_equal(out, "7.2.0.192.bl.example");

	struct sockaddr sun = {.sa_family = AF_UNIX};
	assert_int_equal(dnsbl_qname(&sun, "bl.example", out, sizeof out), -1);
}

static void
test_match(void **state)
{
	dnsbl_site_t s;
	buf_t err = BUF_INIT;
	assert_int_equal(dnsbl_site_parse("z.example=127.0.0.[2..11]", &s, &err), 0);
	static const uint8_t a2[4] = {127, 0, 0, 2}, a11[4] = {127, 0, 0, 11},
	    a12[4] = {127, 0, 0, 12}, a1[4] = {127, 0, 0, 1}, b[4] = {127, 1, 0, 2};
	assert_true(dnsbl_match(&s, a2));
	assert_true(dnsbl_match(&s, a11));
	assert_false(dnsbl_match(&s, a12));
	assert_false(dnsbl_match(&s, a1));
	assert_false(dnsbl_match(&s, b));
	assert_int_equal(dnsbl_site_parse("z.example", &s, &err), 0);
	assert_true(dnsbl_match(&s, a12)); /* no filter: any record */
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_site_parse),
		cmocka_unit_test(test_qname),
		cmocka_unit_test(test_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
