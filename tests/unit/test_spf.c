/*
 * test_spf.c - the syntax half of SPF (src/mailauth/spf_record.c) without
 * DNS: record selection (RFC 7208 section 4.5), the record parser (every
 * mechanism and modifier, CIDR lengths, the errors of section 4.6), macro
 * expansion with the examples of section 7.4, domain-spec and <domain>
 * checks, the names handed to DNS (section 4.8) and CIDR matching with
 * IPv4-mapped clients; plus the evaluator's edge that needs no answer
 * (a malformed <domain> is "none", delivered from the loop) and
 * cancellation. The evaluation against DNS: tests/integration/test_spf*.py.
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
#include <uv.h>

#include "lib/dns.h"
#include "mailauth/spf.h"

static void
test_is_record(void **state)
{
	assert_true(spf_is_record("v=spf1", 6));
	assert_true(spf_is_record("v=spf1 -all", 11));
	assert_true(spf_is_record("V=SpF1 ~all", 11));
	assert_false(spf_is_record("v=spf10", 7));
	assert_false(spf_is_record("v=spf1mx", 8));
	assert_false(spf_is_record("v=spf", 5));
	assert_false(spf_is_record(" v=spf1", 7));
	assert_false(spf_is_record("v=spf1\t-all", 11));
}

static void
test_parse_ok(void **state)
{
	static const char rec[] = "v=spf1 ip4:192.0.2.0/24 -ip6:2001:db8::/32 ~a a:mail.%{d2}/28//64 "
	    "?mx:example.org//0 ptr ptr:example.com include:_spf.example.net "
	    "exists:%{ir}.%{l1r+-}._spf.%{d} moo.cow-far_out=man:dog/cat redirect=_spf.example.com "
	    "exp=explain._spf.%{d} +all ";
	spf_record_t r;
	buf_t err = BUF_INIT;
	assert_int_equal(spf_record_parse(rec, strlen(rec), &r, &err), 0);
	assert_int_equal(r.n, 10);
	assert_int_equal(r.terms[0].mech, SPF_M_IP4);
	assert_int_equal(r.terms[0].cidr4, 24);
	assert_int_equal(r.terms[0].qualifier, '+');
	assert_int_equal(r.terms[1].mech, SPF_M_IP6);
	assert_int_equal(r.terms[1].qualifier, '-');
	assert_int_equal(r.terms[1].cidr6, 32);
	assert_int_equal(r.terms[2].mech, SPF_M_A);
	assert_int_equal(r.terms[2].qualifier, '~');
	assert_null(r.terms[2].spec);
	assert_int_equal(r.terms[2].cidr4, -1);
	assert_int_equal(r.terms[3].cidr4, 28);
	assert_int_equal(r.terms[3].cidr6, 64);
	assert_string_equal(r.terms[3].spec, "mail.%{d2}");
	assert_int_equal(r.terms[4].mech, SPF_M_MX);
	assert_int_equal(r.terms[4].cidr4, -1);
	assert_int_equal(r.terms[4].cidr6, 0);
	assert_int_equal(r.terms[5].mech, SPF_M_PTR);
	assert_string_equal(r.terms[6].spec, "example.com");
	assert_int_equal(r.terms[7].mech, SPF_M_INCLUDE);
	assert_int_equal(r.terms[8].mech, SPF_M_EXISTS);
	assert_int_equal(r.terms[9].mech, SPF_M_ALL);
	assert_string_equal(r.terms[9].text, "+all");
	assert_string_equal(r.redirect, "_spf.example.com");
	assert_string_equal(r.exp, "explain._spf.%{d}");
	spf_record_free(&r);
	buf_free(&err);

	/* the bare version is a record with no terms */
	assert_int_equal(spf_record_parse("v=spf1", 6, &r, &err), 0);
	assert_int_equal(r.n, 0);
	spf_record_free(&r);
}

static void
test_parse_errors(void **state)
{
	/* every one a permerror (section 4.6: syntax errors anywhere) */
	static const char *const bad[] = {
	    "v=spf1 ip4:1.2.3.4 -all moo",          /* unknown mechanism */
	    "v=spf1 moo.cow/far_out=man:dog/cat",   /* not a modifier name */
	    "v=spf1 redirect:t2.example.com",       /* redirect is a modifier */
	    "v=spf1 a:foo-bar -all",                /* no "." toplabel */
	    "v=spf1 -all.", "v=spf1 -all:foobar", "v=spf1 -all/8",
	    "v=spf1 ptr/0 -all", "v=spf1 ptr:",
	    "v=spf1 a//33 a/33", "v=spf1 a/33", "v=spf1 a//129", "v=spf1 a/24/64",
	    "v=spf1 a:example.com:8080", "v=spf1 a:111.222.33.44", "v=spf1 a:abc.123",
	    "v=spf1 a:museum", "v=spf1 a:museum.", "v=spf1 a:example.-com", "v=spf1 a:",
	    "v=spf1 include", "v=spf1 include:", "v=spf1 include:ip5.example.com/24",
	    "v=spf1 mx/33", "v=spf1 mx:", "v=spf1 exists", "v=spf1 exists:",
	    "v=spf1 exists:mail.example.com/24",
	    "v=spf1 ip4", "v=spf1 ip4:1.2.3.4/33", "v=spf1 ip4:1.2.3.4/032",
	    "v=spf1 ip4:1.2.3.4//32", "v=spf1 ip4:1.2.3.4:8080", "v=spf1 ip4:1.2.3",
	    "v=spf1 ip4:01.2.3.4", "v=spf1 ip4:1.2.3.256",
	    "v=spf1 -all ip6", "v=spf1 ip6:::1.1.1.1/129", "v=spf1 ip6:::1.1.1.1//33",
	    "v=spf1 ip6::CAFE::BABE",
	    "v=spf1 1up=foo", "v=spf1 =all", "v=spf1 -all foo=%abc",
	    "v=spf1 exp= -all", "v=spf1 exp=-all", "v=spf1 redirect=-all ?all", "v=spf1 ?all redirect=",
	    "v=spf1 exp=a.example.com exp=b.example.com",
	    "v=spf1 redirect=a.example.com redirect=a.example.com",
	    "v=spf1 -exists:%(ir).sbl.example.com ?all", "v=spf1 exists:foo%.sbl.example.com",
	    "v=spf1 a:%{a}.example.com", "v=spf1 exp=%{r}.example.com -all",
	    "v=spf1 a:%{d0}.example.com", "v=spf1 a:%{d2", "v=spf1 a:%",
	    "v=spf1 a:ctrl.example.com\rptr -all", "v=spf1 ip4:192.0.2.5\n include:x.example.com",
	    "v=spf1 \x80" "a:example.net -all", "v=spf1 a:example.net \x96" "all",
	    "v=spf1 a:\xEF\xBB\xBF" "garbage.example.net -all",
	    "v=spf10", "spf1",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		spf_record_t r;
		buf_t err = BUF_INIT;
		if (spf_record_parse(bad[i], strlen(bad[i]), &r, &err) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err.len > 0);
		assert_int_equal(r.n, 0);
		spf_record_free(&r);
		buf_free(&err);
	}
	/* a NUL where a qualifier could be (found by fuzz_spf) */
	static const char nulq[] = "v=spf1 \0ip4:192.0.2.1";
	spf_record_t rq;
	buf_t eq = BUF_INIT;
	assert_int_equal(spf_record_parse(nulq, sizeof(nulq) - 1, &rq, &eq), -1);
	spf_record_free(&rq);
	buf_free(&eq);
	/* a NUL inside the TXT data (a:foo.example.com\0) */
	static const char nul[] = "v=spf1 a:foo.example.com\0";
	spf_record_t r;
	buf_t err = BUF_INIT;
	assert_int_equal(spf_record_parse(nul, sizeof(nul) - 1, &r, &err), -1);
	spf_record_free(&r);
	buf_free(&err);
}

static void
test_parse_accepts(void **state)
{
	static const char *const good[] = {
	    "v=spf1 a  -all", "v=spf1 a -all ", "v=spf1 default=pass", "v=spf1 default=+",
	    "v=spf1 a:foo.example.xn--zckzah -all", "v=spf1 a:foo:bar/baz.example.com",
	    "v=spf1 a:macro%%percent%_%_space%-url-space.example.com -all",
	    "v=spf1 a:mail.example...com -all", "v=spf1 redirect=%{d}.d.spf.example.com.",
	    "v=spf1 exists:%{i}.%{l2r-}.user.%{d2}", "v=spf1 a:%{H}.bar -all",
	    "v=spf1 ip6:Cafe:Babe:8000::/33", "v=spf1 -ip4:1.2.3.4 ip6:::FFFF:1.2.3.4",
	    "v=spf1 ip4:1.1.1.1/0 -all", "v=spf1 a/24//64 -all", "v=spf1 exp=msg8.%{D2} -all",
	    "V=SPF1 IP4:192.0.2.1 -ALL", "v=spf1 A:example.COM/0 MX//0",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		spf_record_t r;
		buf_t err = BUF_INIT;
		if (spf_record_parse(good[i], strlen(good[i]), &r, &err) != 0)
			fail_msg("refused: %s (%s)", good[i], buf_cstr(&err));
		spf_record_free(&r);
		buf_free(&err);
	}
}

/* RFC 7208 section 7.4 */
static void
macro_ctx(spf_macro_ctx_t *m, int v6)
{
	memset(m, 0, sizeof(*m));
	m->sender = "strong-bad@email.example.com";
	m->local = "strong-bad";
	m->sender_domain = "email.example.com";
	m->domain = "email.example.com";
	m->helo = "mx.example.org";
	m->receiver = "mx.example.net";
	m->validated = NULL;
	m->now = 1234567890;
	if (v6) {
		m->ip.family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, "2001:db8::cb01", m->ip.addr), 1);
	} else {
		m->ip.family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, "192.0.2.3", m->ip.addr), 1);
	}
}

static void
expect(const spf_macro_ctx_t *m, const char *in, int explain, const char *want)
{
	buf_t out = BUF_INIT, err = BUF_INIT;
	if (spf_macro_expand(m, in, strlen(in), explain, &out, &err) != 0)
		fail_msg("%s: %s", in, buf_cstr(&err));
	if (strcmp(buf_cstr(&out), want) != 0)
		fail_msg("%s -> \"%s\", want \"%s\"", in, buf_cstr(&out), want);
	buf_free(&out);
	buf_free(&err);
}

static void
test_macro_rfc_examples(void **state)
{
	spf_macro_ctx_t m;
	macro_ctx(&m, 0);
	expect(&m, "%{s}", 0, "strong-bad@email.example.com");
	expect(&m, "%{o}", 0, "email.example.com");
	expect(&m, "%{d}", 0, "email.example.com");
	expect(&m, "%{d4}", 0, "email.example.com");
	expect(&m, "%{d3}", 0, "email.example.com");
	expect(&m, "%{d2}", 0, "example.com");
	expect(&m, "%{d1}", 0, "com");
	expect(&m, "%{dr}", 0, "com.example.email");
	expect(&m, "%{d2r}", 0, "example.email");
	expect(&m, "%{l}", 0, "strong-bad");
	expect(&m, "%{l-}", 0, "strong.bad");
	expect(&m, "%{lr}", 0, "strong-bad");
	expect(&m, "%{lr-}", 0, "bad.strong");
	expect(&m, "%{l1r-}", 0, "strong");
	expect(&m, "%{ir}.%{v}._spf.%{d2}", 0, "3.2.0.192.in-addr._spf.example.com");
	expect(&m, "%{lr-}.lp._spf.%{d2}", 0, "bad.strong.lp._spf.example.com");
	expect(&m, "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", 0,
	    "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
	expect(&m, "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", 0,
	    "3.2.0.192.in-addr.strong.lp._spf.example.com");
	expect(&m, "%{d2}.trusted-domains.example.net", 0, "example.com.trusted-domains.example.net");

	/* IPv6: the nibbles, upper case (see put_ip() in spf_record.c: the
	 * test suite's text; DNS compares names without case) */
	macro_ctx(&m, 1);
	buf_t out = BUF_INIT, err = BUF_INIT;
	const char *in = "%{ir}.%{v}._spf.%{d2}";
	assert_int_equal(spf_macro_expand(&m, in, strlen(in), 0, &out, &err), 0);
	assert_int_equal(strcasecmp(buf_cstr(&out), "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "8.b.d.0.1.0.0.2.ip6._spf.example.com"), 0);
	buf_free(&out);
	buf_free(&err);
	expect(&m, "%{c}", 1, "2001:db8::cb01");
	expect(&m, "%{v}", 0, "ip6");
}

static void
test_macro_more(void **state)
{
	spf_macro_ctx_t m;
	macro_ctx(&m, 0);
	expect(&m, "%%%_%-", 0, "% %20");
	expect(&m, "%{c} %{r} %{t} %{p}", 1, "192.0.2.3 mx.example.net 1234567890 unknown");
	expect(&m, "%{h}", 0, "mx.example.org");
	m.local = "philip-gladstone-test";
	expect(&m, "%{l2r-}", 0, "gladstone.philip");
	m.local = "foo-bar+zip+quux";
	expect(&m, "%{l2r+-}", 0, "bar.foo");
	/* upper case: URL-escaped, unreserved kept (section 7.3) */
	m.local = "~jack&jill=up-a_b3.c";
	expect(&m, "%{L}", 0, "~jack%26jill%3Dup-a_b3.c");
	/* no local-part: postmaster (section 4.3) */
	m.local = "";
	expect(&m, "%{l}", 0, "postmaster");
	m.validated = "mx.example.com";
	expect(&m, "%{p}", 0, "mx.example.com");
	/* a macro letter of exp= text only, in a domain-spec: an error */
	buf_t out = BUF_INIT, err = BUF_INIT;
	assert_int_equal(spf_macro_expand(&m, "%{r}", 4, 0, &out, &err), -1);
	assert_int_equal(out.len, 0);
	assert_int_equal(spf_macro_expand(&m, "%{x}", 4, 1, &out, &err), -1);
	assert_int_equal(spf_macro_expand(&m, "a b", 3, 0, &out, &err), -1);
	assert_int_equal(spf_macro_expand(&m, "a b", 3, 1, &out, &err), 0);
	/* an expansion is bounded */
	buf_reset(&out);
	char big[4000];
	for (size_t i = 0; i + 4 <= sizeof(big); i += 4)
		memcpy(big + i, "%{s}", 4);
	assert_int_equal(spf_macro_expand(&m, big, sizeof(big), 0, &out, &err), -1);
	assert_int_equal(out.len, 0);
	buf_free(&out);
	buf_free(&err);
}

static void
test_domain_spec(void **state)
{
	static const struct {
		const char *s;
		int ok;
	} cases[] = {
	    {"example.com", 1}, {"example.com.", 1}, {"%{d}", 1}, {"%{d}.com", 1},
	    {"foo.%{d}x", 0}, {"foo-bar", 0}, {"museum", 0}, {"museum.", 0}, {"abc.123", 0},
	    {"example.-com", 0}, {"example.com:8080", 0}, {"foo.xn--zckzah", 1},
	    {"a.b-", 0}, {"a.1-2", 1}, {"", 0}, {"%{d}%%", 1}, {"%{r}.example.com", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (spf_domain_spec_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
			fail_msg("domain-spec \"%s\": want %d", cases[i].s, cases[i].ok);

	assert_true(spf_domain_valid("example.com"));
	assert_true(spf_domain_valid("example.com."));
	assert_false(spf_domain_valid("A2345678"));
	assert_false(spf_domain_valid("[1.2.3.5]"));
	assert_false(spf_domain_valid("A...example.com"));
	assert_false(spf_domain_valid(
	    "A123456789012345678901234567890123456789012345678901234567890123.example.com"));
	assert_true(spf_domain_valid(
	    "A12345678901234567890123456789012345678901234567890123456789012.example.com"));
	assert_false(spf_domain_valid(""));
	assert_true(spf_domain_valid("a b%c:d._spf.example.com"));
}

static void
test_query_name(void **state)
{
	buf_t b = BUF_INIT;
	spf_query_name("example.com.", &b);
	assert_string_equal(buf_cstr(&b), "example.com");
	buf_reset(&b);
	spf_query_name("macro%percent  space%20url-space.example.com", &b);
	assert_string_equal(buf_cstr(&b),
	    "macro\\037percent\\032\\032space\\03720url-space.example.com");
	buf_reset(&b);
	spf_query_name("foo:bar/baz.example.com", &b);
	assert_string_equal(buf_cstr(&b), "foo\\058bar\\047baz.example.com");
	/* section 4.8: over 253 octets, labels go from the left */
	buf_reset(&b);
	char longname[400] = "foobar";
	for (int i = 0; i < 8; i++)
		strcat(longname, ".somewhat.long.exp.example.com");
	strcat(longname, ".example.com");
	spf_query_name(longname, &b);
	assert_true(b.len <= 253);
	assert_string_equal(buf_cstr(&b), longname + 7);
	buf_free(&b);
}

static void
test_cidr(void **state)
{
	spf_ip_t ip, net;
	struct sockaddr_in6 s6;
	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "::ffff:192.0.2.77", &s6.sin6_addr), 1);
	assert_int_equal(spf_ip_from_sockaddr((struct sockaddr *)&s6, &ip), 0);
	assert_int_equal(ip.family, AF_INET); /* mapped: IPv4 */
	net.family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, "192.0.2.64", net.addr), 1);
	assert_true(spf_cidr_match(&ip, &net, 28)); /* 77 = 0100 1101 */
	assert_false(spf_cidr_match(&ip, &net, 29));
	assert_true(spf_cidr_match(&ip, &net, 0));
	assert_false(spf_cidr_match(&ip, &net, 32));

	assert_int_equal(inet_pton(AF_INET6, "2001:db8:1234::cafe:babe", &s6.sin6_addr), 1);
	assert_int_equal(spf_ip_from_sockaddr((struct sockaddr *)&s6, &ip), 0);
	assert_int_equal(ip.family, AF_INET6);
	net.family = AF_INET6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8:1234::dead:beef", net.addr), 1);
	assert_true(spf_cidr_match(&ip, &net, 64));
	assert_true(spf_cidr_match(&ip, &net, 95));
	assert_false(spf_cidr_match(&ip, &net, 128));
	/* families never match each other, even at /0 */
	net.family = AF_INET;
	assert_false(spf_cidr_match(&ip, &net, 0));
	assert_string_equal(spf_result_str(SPF_TEMPERROR), "temperror");
	assert_string_equal(spf_result_str(SPF_SOFTFAIL), "softfail");
}

/* ---- the evaluator where no DNS answer is needed ---- */

typedef struct got {
	int calls;
	enum spf_result result;
	char reason[256];
} got_t;

static void
on_answer(void *arg, const spf_answer_t *a)
{
	got_t *g = arg;
	g->calls++;
	g->result = a->result;
	snprintf(g->reason, sizeof(g->reason), "%s", a->reason);
	assert_non_null(a->explanation);
}

static void
test_eval_no_dns(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	buf_t err = BUF_INIT;
	/* a forwarder nobody answers on: nothing here may query it */
	const char *servers[] = {"127.0.0.1@9", NULL};
	dns_options_t o;
	memset(&o, 0, sizeof(o));
	o.servers = servers;
	o.timeout_ms = 300;
	dns_t *dns = dns_new(&loop, &o, &err);
	assert_non_null(dns);
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);

	/* a malformed domain: none, delivered from the loop, not inline */
	got_t g = {0, SPF_PASS, ""};
	spf_check_host(dns, (struct sockaddr *)&sin, "[192.0.2.1]", "postmaster@[192.0.2.1]",
	    "x", NULL, on_answer, &g);
	assert_int_equal(g.calls, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.result, SPF_NONE);

	/* cancelled before the answer: never called */
	got_t g2 = {0, SPF_PASS, ""};
	spf_req_t *r = spf_check_host(dns, (struct sockaddr *)&sin, "example.com",
	    "a@example.com", "x", NULL, on_answer, &g2);
	spf_cancel(r);
	spf_cancel(NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g2.calls, 0);

	/* the only server is silent: temperror within the DNS timeout */
	got_t g3 = {0, SPF_PASS, ""};
	spf_check_host(dns, (struct sockaddr *)&sin, "example.com", "a@example.com", "x", NULL,
	    on_answer, &g3);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g3.calls, 1);
	assert_int_equal(g3.result, SPF_TEMPERROR);

	/* the whole evaluation's budget is shorter than the DNS timeout */
	got_t g4 = {0, SPF_PASS, ""};
	spf_options_t so = {NULL, 50};
	uint64_t t0 = uv_now(&loop);
	spf_check_host(dns, (struct sockaddr *)&sin, "example.org", "a@example.org", "x", &so,
	    on_answer, &g4);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g4.calls, 1);
	assert_int_equal(g4.result, SPF_TEMPERROR);
	assert_true(uv_now(&loop) - t0 < 250);
	assert_non_null(strstr(g4.reason, "budget"));

	dns_free(dns);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is_record),
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_accepts),
		cmocka_unit_test(test_macro_rfc_examples),
		cmocka_unit_test(test_macro_more),
		cmocka_unit_test(test_domain_spec),
		cmocka_unit_test(test_query_name),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_eval_no_dns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
