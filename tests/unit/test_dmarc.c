/*
 * test_dmarc.c - src/mailauth/dmarc.c: the From parser (RFC 5322 address
 * lists, groups, comments, quoted local parts, several From fields or
 * addresses), the record parser (section 6.3), the organizational domain
 * and the alignment matrix with Debian's Public Suffix List (multi-label
 * suffixes such as co.uk), and policy discovery and evaluation (section
 * 6.6.3: From domain, then organizational domain, no walk beyond, several
 * records, temperror, sp for subdomains, pct) against tests/unit/dns_server.py
 * serving tests/unit/dmarc.zone, with tests/unit/dmarc_psl.dat as the list;
 * the aggregate reports (dmarc_report.c): counting, the XML, the mailto:
 * URIs, the message with its gzipped attachment, section 7.1's check.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <zlib.h>
#include <openssl/evp.h>

#include "mailauth/dmarc.h"
#include "mailauth/dmarc_report.h"

#define PSL_SYSTEM "/usr/share/publicsuffix/public_suffix_list.dat"
#define PSL_TEST "tests/unit/dmarc_psl.dat"

/* ---- From ---- */

static void
test_from(void **state)
{
	static const struct {
		const char *hdr;
		enum dmarc_from_status st;
		const char *domain;
	} cases[] = {
	    {"From: a@Example.COM\r\n\r\nbody", DMARC_FROM_OK, "example.com"},
	    {"from:a@example.com\r\n", DMARC_FROM_OK, "example.com"},
	    {"FROM : a@example.com\r\n", DMARC_FROM_OK, "example.com"},
	    {"From: Alice <alice@a.example>\r\n", DMARC_FROM_OK, "a.example"},
	    {"From: \"Doe, John\" <j@b.example>\r\n", DMARC_FROM_OK, "b.example"},
	    {"From: \"quoted@evil.example\" <j@good.example>\r\n", DMARC_FROM_OK, "good.example"},
	    {"From: \"a@b\"@q.example\r\n", DMARC_FROM_OK, "q.example"},
	    {"From: \"weird \\\" quote\"@q.example\r\n", DMARC_FROM_OK, "q.example"},
	    {"From: a@example.com (Alice (the (nested)) one)\r\n", DMARC_FROM_OK, "example.com"},
	    {"From: (c@evil.example) a@example.com\r\n", DMARC_FROM_OK, "example.com"},
	    {"From: a @ example . com\r\n", DMARC_FROM_OK, "example.com"},
	    {"From: a@example.com.\r\n", DMARC_FROM_OK, "example.com"},
	    {"From: Alice\r\n <alice@folded.example>\r\n", DMARC_FROM_OK, "folded.example"},
	    {"From: Alice\r\n\t<alice@folded.example>\r\nTo: b@x.example\r\n", DMARC_FROM_OK,
		"folded.example"},
	    {"From: <@route.example,@r2.example:a@real.example>\r\n", DMARC_FROM_OK, "real.example"},
	    {"From: a@x.example, b@x.example\r\n", DMARC_FROM_OK, "x.example"},
	    {"From: a@x.example, b@X.Example\r\n", DMARC_FROM_OK, "x.example"},
	    {"From: a@x.example, b@y.example\r\n", DMARC_FROM_DOMAINS, NULL},
	    {"From: team: a@x.example, b@x.example;\r\n", DMARC_FROM_OK, "x.example"},
	    {"From: team: a@x.example, b@y.example;\r\n", DMARC_FROM_DOMAINS, NULL},
	    {"From: undisclosed-recipients:;\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: a@x.example,\r\n", DMARC_FROM_OK, "x.example"}, /* obs: empty element */
	    {"From: , , a@x.example\r\n", DMARC_FROM_OK, "x.example"},
	    {"From: \r\n", DMARC_FROM_INVALID, NULL},
	    {"From: alice\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: alice@\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: @x.example\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: a@[192.0.2.1]\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: a@x..example\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: a@-x.example-\r\n", DMARC_FROM_OK, "-x.example-"},
	    {"From: a@x.example (unterminated\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: \"unterminated@x.example\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: <a@x.example\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: a@x.example>\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: <a@x.example> <b@y.example>\r\n", DMARC_FROM_INVALID, NULL},
	    {"From: a@b@x.example\r\n", DMARC_FROM_OK, "x.example"},
	    /* RFC 8616: U-labels become A-labels (IDNA2008, NFC, lowercase) */
	    {"From: a@bücher.example\r\n", DMARC_FROM_OK, "xn--bcher-kva.example"},
	    {"From: a@B\xc3\x9c" "CHER.example\r\n", DMARC_FROM_OK, "xn--bcher-kva.example"},
	    {"From: a@xn--bcher-kva.example, b@bücher.example\r\n", DMARC_FROM_OK,
		"xn--bcher-kva.example"},
	    {"From: a@\xff\xfe.example\r\n", DMARC_FROM_INVALID, NULL}, /* not UTF-8 */
	    {"From: a@\xe2\x98\x83.example\r\n", DMARC_FROM_INVALID, NULL}, /* U+2603: IDNA2008 refuses */
	    {"To: a@x.example\r\n\r\nFrom: b@y.example\r\n", DMARC_FROM_ABSENT, NULL},
	    {"", DMARC_FROM_ABSENT, NULL},
	    {"Subject: hi\r\n", DMARC_FROM_ABSENT, NULL},
	    {"X-From: a@x.example\r\nFrom-X: b@x.example\r\n", DMARC_FROM_ABSENT, NULL},
	    {"From: a@x.example\r\nFrom: a@x.example\r\n", DMARC_FROM_MULTIPLE, NULL},
	    {"From: a@x.example\nSubject: bare LF\n\n", DMARC_FROM_OK, "x.example"},
	    {"Received: x\r\n\tfrom: y@z.example\r\nFrom: a@x.example\r\n", DMARC_FROM_OK,
		"x.example"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t d = BUF_INIT;
		enum dmarc_from_status st = dmarc_from_domain(cases[i].hdr, strlen(cases[i].hdr), &d);
		if (st != cases[i].st)
			fail_msg("case %zu \"%s\": status %s, want %s", i, cases[i].hdr,
			    dmarc_from_status_str(st), dmarc_from_status_str(cases[i].st));
		if (cases[i].domain && strcmp(buf_cstr(&d), cases[i].domain) != 0)
			fail_msg("case %zu: domain \"%s\", want \"%s\"", i, buf_cstr(&d), cases[i].domain);
		if (!cases[i].domain)
			assert_int_equal(d.len, 0);
		buf_free(&d);
	}
}

/* ---- records ---- */

static void
test_record(void **state)
{
	static const struct {
		const char *txt;
		int rc;
		bool usable;
		enum dmarc_policy p, sp;
		bool adkim_s, aspf_s;
		unsigned pct;
		size_t nrua;
		const char *fo;
	} cases[] = {
	    {"v=DMARC1; p=reject", 0, true, DMARC_P_REJECT, DMARC_P_UNSET, false, false, 100, 0, "0"},
	    {"v=DMARC1;p=none;", 0, true, DMARC_P_NONE, DMARC_P_UNSET, false, false, 100, 0, "0"},
	    {"v = DMARC1 ; p = Quarantine ; sp = REJECT", 0, true, DMARC_P_QUARANTINE,
		DMARC_P_REJECT, false, false, 100, 0, "0"},
	    {"v=DMARC1; p=reject; adkim=s; aspf=s; pct=25; fo=1:d:s; ri=3600", 0, true,
		DMARC_P_REJECT, DMARC_P_UNSET, true, true, 25, 0, "1:d:s"},
	    {"v=DMARC1; p=reject; adkim=x; aspf=; pct=101; fo=2", 0, true, DMARC_P_REJECT,
		DMARC_P_UNSET, false, false, 100, 0, "0"},
	    {"v=DMARC1; p=reject; pct=0", 0, true, DMARC_P_REJECT, DMARC_P_UNSET, false, false, 0, 0,
		"0"},
	    {"v=DMARC1; p=reject; rua=mailto:a@x.example,mailto:b@y.example!10m, bad uri",
		0, true, DMARC_P_REJECT, DMARC_P_UNSET, false, false, 100, 2, "0"},
	    {"v=DMARC1; p=reject; future=tag; x_y=1", 0, true, DMARC_P_REJECT, DMARC_P_UNSET, false,
		false, 100, 0, "0"},
	    /* no valid p: usable only with a rua, then as p=none */
	    {"v=DMARC1; sp=reject", 0, false, DMARC_P_UNSET, DMARC_P_REJECT, false, false, 100, 0,
		"0"},
	    {"v=DMARC1; p=bogus; rua=mailto:a@x.example", 0, true, DMARC_P_UNSET, DMARC_P_UNSET, false,
		false, 100, 1, "0"},
	    {"v=DMARC1; p=reject; sp=bogus", 0, false, DMARC_P_REJECT, DMARC_P_UNSET, false, false, 100,
		0, "0"},
	    {"v=DMARC1", 0, false, DMARC_P_UNSET, DMARC_P_UNSET, false, false, 100, 0, "0"},
	    /* not records */
	    {"v=DMARC2; p=reject", -1, false, 0, 0, false, false, 0, 0, NULL},
	    {"v=dmarc1; p=reject", -1, false, 0, 0, false, false, 0, 0, NULL},
	    {"p=reject; v=DMARC1", -1, false, 0, 0, false, false, 0, 0, NULL},
	    {" v=DMARC1; p=reject", -1, false, 0, 0, false, false, 0, 0, NULL},
	    {"v=DMARC1p=reject", -1, false, 0, 0, false, false, 0, 0, NULL},
	    {"v=spf1 -all", -1, false, 0, 0, false, false, 0, 0, NULL},
	    {"", -1, false, 0, 0, false, false, 0, 0, NULL},
	    /* syntax errors after v=: no valid record */
	    {"v=DMARC1; p=reject; bad tag", -1, false, 0, 0, false, false, 0, 0, NULL},
	    {"v=DMARC1; p=reject; p=none", -1, false, 0, 0, false, false, 0, 0, NULL},
	    {"v=DMARC1; p=reject; =x", -1, false, 0, 0, false, false, 0, 0, NULL},
	    {"v=DMARC1; p=reject; v=DMARC1", -1, false, 0, 0, false, false, 0, 0, NULL},
	    {"v=DMARC1; ; p=reject", 0, true, DMARC_P_REJECT, DMARC_P_UNSET, false, false, 100, 0,
		"0"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		dmarc_record_t r;
		buf_t err = BUF_INIT;
		int rc = dmarc_record_parse(cases[i].txt, strlen(cases[i].txt), &r, &err);
		if (rc != cases[i].rc)
			fail_msg("case %zu \"%s\": rc %d (%s)", i, cases[i].txt, rc, buf_cstr(&err));
		if (rc == 0) {
			if (r.p != cases[i].p || (r.sp != cases[i].sp && !r.sp_invalid))
				fail_msg("case %zu: p %d sp %d", i, r.p, r.sp);
			assert_int_equal(r.adkim_strict, cases[i].adkim_s);
			assert_int_equal(r.aspf_strict, cases[i].aspf_s);
			assert_int_equal(r.pct, cases[i].pct);
			assert_int_equal(r.nrua, cases[i].nrua);
			assert_string_equal(r.fo, cases[i].fo);
			bool u = dmarc_record_usable(&r);
			if (u != cases[i].usable)
				fail_msg("case %zu: usable %d", i, u);
			if (u)
				assert_int_not_equal(r.p, DMARC_P_UNSET);
		}
		dmarc_record_clear(&r);
		buf_free(&err);
	}
	dmarc_record_t r;
	buf_t err = BUF_INIT;
	assert_int_equal(dmarc_record_parse("v=DMARC1; p=none; rua=mailto:a@x.example!5k", 43, &r,
			     &err),
	    0);
	assert_int_equal(r.nrua, 1);
	assert_string_equal(r.rua[0], "mailto:a@x.example!5k");
	dmarc_record_clear(&r);
	buf_free(&err);
}

/* ---- organizational domain and alignment (the real list) ---- */

static void
test_org_and_alignment(void **state)
{
	buf_t err = BUF_INIT;
	psl_ctx_t *psl = dmarc_psl_load(PSL_SYSTEM, &err);
	if (!psl)
		fail_msg("%s", buf_cstr(&err));
	static const struct {
		const char *d, *org;
	} orgs[] = {
	    {"example.com", "example.com"},
	    {"a.b.example.com", "example.com"},
	    {"bbc.co.uk", "bbc.co.uk"},
	    {"news.bbc.co.uk", "bbc.co.uk"},
	    {"co.uk", "co.uk"},
	    {"uk", "uk"},
	    {"a.b.c.kawasaki.jp", "b.c.kawasaki.jp"}, /* wildcard rule *.kawasaki.jp */
	    {"city.kawasaki.jp", "city.kawasaki.jp"}, /* exception !city.kawasaki.jp */
	    {"x.unknowntld", "x.unknowntld"},
	};
	for (size_t i = 0; i < sizeof orgs / sizeof orgs[0]; i++) {
		buf_t o = BUF_INIT;
		dmarc_org_domain(psl, orgs[i].d, &o);
		if (strcmp(buf_cstr(&o), orgs[i].org) != 0)
			fail_msg("%s: org %s, want %s", orgs[i].d, buf_cstr(&o), orgs[i].org);
		buf_free(&o);
	}
	/* the alignment matrix: identifier, From domain, relaxed, strict */
	static const struct {
		const char *id, *from;
		bool relaxed, strict;
	} m[] = {
	    {"example.com", "example.com", true, true},
	    {"EXAMPLE.com", "example.COM", true, true},
	    {"mail.example.com", "example.com", true, false},
	    {"example.com", "news.example.com", true, false},
	    {"a.example.com", "b.example.com", true, false},
	    {"example.net", "example.com", false, false},
	    {"bbc.co.uk", "news.bbc.co.uk", true, false},
	    {"itv.co.uk", "bbc.co.uk", false, false}, /* same suffix, different orgs */
	    {"co.uk", "bbc.co.uk", false, false},
	    {"evil.co.uk", "co.uk", false, false},
	    {"x.example.co.uk", "y.example.co.uk", true, false},
	    {"", "example.com", false, false},
	};
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
		if (dmarc_aligned(psl, m[i].id, m[i].from, false) != m[i].relaxed)
			fail_msg("%s ~ %s relaxed", m[i].id, m[i].from);
		if (dmarc_aligned(psl, m[i].id, m[i].from, true) != m[i].strict)
			fail_msg("%s ~ %s strict", m[i].id, m[i].from);
	}
	psl_free(psl);
	assert_null(dmarc_psl_load("/nonexistent/psl.dat", &err));
	buf_free(&err);
}


/* ---- aggregate reports ---- */

static void
test_report_store(void **state)
{
	dmarc_report_store_t st;
	dmarc_report_init(&st, 1000);
	dmarc_record_t rec;
	buf_t err = BUF_INIT;
	const char *txt = "v=DMARC1; p=reject; adkim=s; rua=mailto:agg@reports.example,https://x.example/r";
	assert_int_equal(dmarc_record_parse(txt, strlen(txt), &rec, &err), 0);
	dmarc_report_in_t in = {.policy_domain = "reject.example", .rec = &rec,
	    .source_ip = "192.0.2.7", .header_from = "reject.example", .envelope_from = "other.example",
	    .disposition = DMARC_P_NONE, .spf_domain = "other.example", .spf_scope = "mfrom",
	    .spf_result = "pass", .not_enforced = true, .ndkim = 1,
	    .dkim_domain = {"evil<&>.example"}, .dkim_selector = {"s1"}, .dkim_result = {"fail"}};
	dmarc_report_add(&st, &in);
	dmarc_report_add(&st, &in);
	in.source_ip = "192.0.2.8";
	in.dkim_aligned = true;
	in.not_enforced = false;
	dmarc_report_add(&st, &in);
	/* Appendix C's IPAddress pattern: IPv6 in all eight groups, an
	 * IPv4-mapped address as IPv4 (the same row as 192.0.2.8) */
	in.source_ip = "2001:db8::a:1";
	dmarc_report_add(&st, &in);
	in.source_ip = "::ffff:192.0.2.8";
	dmarc_report_add(&st, &in);
	/* a record without rua mailto: is not counted */
	dmarc_record_t norua;
	assert_int_equal(dmarc_record_parse("v=DMARC1; p=none", 16, &norua, &err), 0);
	in.rec = &norua;
	in.policy_domain = "none.example";
	dmarc_report_add(&st, &in);
	assert_int_equal(st.ndomains, 1);
	time_t begin;
	/* saved and loaded back (daemon/reports.c keeps it under the spool):
	 * the same text again, the same store */
	buf_t saved = BUF_INIT, again = BUF_INIT;
	dmarc_report_save(&st, &saved);
	dmarc_report_store_t st2;
	dmarc_report_init(&st2, 5);
	assert_int_equal(dmarc_report_load(&st2, saved.data, saved.len, &err), 0);
	assert_int_equal(st2.begin, 1000);
	assert_int_equal(st2.ndomains, 1);
	dmarc_report_save(&st2, &again);
	assert_string_equal(buf_cstr(&again), buf_cstr(&saved));
	/* a row counted after the load meets its saved twin */
	in.rec = &rec;
	in.policy_domain = "reject.example";
	in.source_ip = "192.0.2.8";
	dmarc_report_add(&st2, &in);
	assert_int_equal(st2.domains->nrows, 3);
	/* cut short, or garbage: refused, the store unchanged */
	assert_int_equal(dmarc_report_load(&st2, saved.data, saved.len - 4, &err), -1);
	assert_int_equal(dmarc_report_load(&st2, "tern-dmarc-report 1\nbogus\nend\n", 30, &err), -1);
	assert_int_equal(st2.domains->nrows, 3);
	dmarc_report_clear(&st2);
	buf_free(&saved);
	buf_free(&again);
	dmarc_report_domain_t *d = dmarc_report_take(&st, 2000, &begin);
	assert_int_equal(begin, 1000);
	assert_non_null(d);
	assert_null(d->next);
	assert_int_equal(d->nrows, 3);
	assert_int_equal(d->nrua, 1);
	assert_null(st.domains);
	dmarc_report_meta_t meta = {"Tern Test", "noreply-dmarc@mx.example", "mx.example", 1000,
	    2000};
	buf_t xml = BUF_INIT, id = BUF_INIT;
	dmarc_report_xml(&meta, d, &xml, &id);
	const char *x = buf_cstr(&xml);
	static const char *const want[] = {
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n<version>1.0</version>",
	    "<org_name>Tern Test</org_name><email>noreply-dmarc@mx.example</email>",
	    "<date_range><begin>1000</begin><end>2000</end></date_range>",
	    "<policy_published><domain>reject.example</domain><adkim>s</adkim><aspf>r</aspf>"
	    "<p>reject</p><sp>reject</sp><pct>100</pct><fo>0</fo></policy_published>",
	    "<record><row><source_ip>192.0.2.7</source_ip><count>2</count><policy_evaluated>"
	    "<disposition>none</disposition><dkim>fail</dkim><spf>fail</spf><reason><type>"
	    "local_policy</type>",
	    "<source_ip>192.0.2.8</source_ip><count>2</count>",
	    "<source_ip>2001:db8:0:0:0:0:a:1</source_ip><count>1</count>",
	    "<identifiers><envelope_from>other.example</envelope_from><header_from>reject.example"
	    "</header_from></identifiers>",
	    "<auth_results><dkim><domain>evil&lt;&amp;&gt;.example</domain><selector>s1</selector>"
	    "<result>fail</result></dkim><spf><domain>other.example</domain><scope>mfrom</scope>"
	    "<result>pass</result></spf></auth_results></record>",
	    "</feedback>\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (!strstr(x, want[i]))
			fail_msg("not in the XML: %s\n%s", want[i], x);
	/* the message: subject, file name, and the attachment is the XML gzipped */
	buf_t msg = BUF_INIT;
	assert_int_equal(dmarc_report_message(&meta, d, "agg@reports.example", &msg, &err), 0);
	const char *mt = buf_cstr(&msg);
	assert_non_null(strstr(mt, "To: <agg@reports.example>\r\n"));
	assert_non_null(strstr(mt, "Subject: Report Domain: reject.example Submitter: Tern Test "
				   "Report-ID: <"));
	assert_non_null(strstr(mt, "filename=\"mx.example!reject.example!1000!2000.xml.gz\""));
	const char *b64 = strstr(mt, "Content-Disposition: attachment");
	b64 = strstr(b64, "\r\n\r\n") + 4;
	const char *end = strstr(b64, "\r\n\r\n--");
	buf_t raw = BUF_INIT;
	for (const char *p = b64; p < end;) {
		const char *e = strstr(p, "\r\n");
		unsigned char out[128];
		int n = EVP_DecodeBlock(out, (const unsigned char *)p, (int)(e - p));
		assert_true(n >= 0);
		size_t pad = (e - p >= 2 && e[-1] == '=') + (e - p >= 2 && e[-2] == '=');
		buf_append(&raw, out, (size_t)n - pad);
		p = e + 2;
	}
	unsigned char plain[65536];
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
	zs.next_in = (Bytef *)raw.data;
	zs.avail_in = (uInt)raw.len;
	zs.next_out = plain;
	zs.avail_out = sizeof plain;
	assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
	assert_int_equal(zs.total_out, xml.len);
	assert_memory_equal(plain, xml.data, xml.len);
	inflateEnd(&zs);
	buf_free(&raw);
	buf_free(&msg);
	buf_free(&xml);
	buf_free(&id);
	dmarc_report_domains_free(d);
	dmarc_record_clear(&rec);
	dmarc_record_clear(&norua);
	dmarc_report_clear(&st);
	buf_free(&err);
}

static void
test_report_mailto(void **state)
{
	static const struct {
		const char *uri, *addr;
		uint64_t limit;
	} cases[] = {
	    {"mailto:agg@reports.example", "agg@reports.example", 0},
	    {"MAILTO:agg@reports.example!10m", "agg@reports.example", 10485760},
	    {"mailto:agg@reports.example!500", "agg@reports.example", 500},
	    {"mailto:a%2Bb@reports.example", "a+b@reports.example", 0},
	    {"mailto:agg@reports.example?subject=x", "agg@reports.example", 0},
	    {"https://reports.example/x", NULL, 0},
	    {"mailto:", NULL, 0},
	    {"mailto:noat", NULL, 0},
	    {"mailto:a@", NULL, 0},
	    {"mailto:a%20b@x.example", NULL, 0},
	    {"mailto:<a@x.example>", NULL, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t a = BUF_INIT;
		uint64_t lim = 99;
		int r = dmarc_report_mailto(cases[i].uri, &a, &lim);
		if (!cases[i].addr) {
			if (r != -1)
				fail_msg("%s: accepted as %s", cases[i].uri, buf_cstr(&a));
		} else if (r != 0 || strcmp(buf_cstr(&a), cases[i].addr) != 0 ||
		    lim != cases[i].limit) {
			fail_msg("%s: %d %s %llu", cases[i].uri, r, buf_cstr(&a),
			    (unsigned long long)lim);
		}
		buf_free(&a);
	}
}

/* ---- discovery against a DNS server ---- */

static char server_addr[64];
static pid_t server_pid = -1;
static int server_stdin = -1;
static psl_ctx_t *test_psl;

static int
group_setup(void **state)
{
	buf_t err = BUF_INIT;
	test_psl = dmarc_psl_load(PSL_TEST, &err);
	buf_free(&err);
	if (!test_psl)
		return -1;
	int out[2], in[2];
	if (pipe(out) < 0 || pipe(in) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl("/usr/bin/python3", "python3", "tests/unit/dns_server.py", "--zone",
		    "tests/unit/dmarc.zone", "--servfail", "_dmarc.tempfail.example", "--drop",
		    "_dmarc.drop.example", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	server_pid = pid;
	server_stdin = in[1];
	char line[32];
	size_t n = 0;
	struct pollfd pfd = {.fd = out[0], .events = POLLIN};
	while (n < sizeof line - 1) {
		if (poll(&pfd, 1, 15000) <= 0)
			break;
		if (read(out[0], line + n, 1) <= 0 || line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	close(out[0]);
	int port = atoi(line);
	if (port <= 0 || port > 65535)
		return -1;
	snprintf(server_addr, sizeof server_addr, "127.0.0.1@%d", port);
	return 0;
}

static int
group_teardown(void **state)
{
	if (server_pid > 0) {
		close(server_stdin);
		kill(server_pid, SIGTERM);
		int st;
		waitpid(server_pid, &st, 0);
	}
	psl_free(test_psl);
	return 0;
}

typedef struct got {
	int calls;
	enum dmarc_result result;
	enum dmarc_policy policy, disposition;
	bool sampled_out, spf_aligned, dkim_aligned;
	char record_domain[128];
	char reason[128];
} got_t;

static void
on_dmarc(void *arg, const dmarc_answer_t *a)
{
	got_t *g = arg;
	g->calls++;
	g->result = a->result;
	g->policy = a->policy;
	g->disposition = a->disposition;
	g->sampled_out = a->sampled_out;
	g->spf_aligned = a->spf_aligned;
	g->dkim_aligned = a->dkim_aligned;
	snprintf(g->record_domain, sizeof g->record_domain, "%s", a->record_domain);
	snprintf(g->reason, sizeof g->reason, "%s", a->reason);
}

static void
check(const char *from, const char *spf, bool spf_pass, const char *dkim, unsigned roll, got_t *g)
{
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	const char *servers[] = {server_addr, NULL};
	dns_options_t o = {.servers = servers, .timeout_ms = 1500};
	buf_t err = BUF_INIT;
	dns_t *dns = dns_new(&loop, &o, &err);
	assert_non_null(dns);
	buf_free(&err);
	const char *dk[1] = {dkim};
	dmarc_input_t in = {.from_domain = from, .spf_domain = spf, .spf_pass = spf_pass,
	    .dkim_pass_domains = dk, .ndkim = dkim ? 1 : 0, .roll = roll};
	memset(g, 0, sizeof *g);
	dmarc_check(dns, test_psl, &in, on_dmarc, g);
	assert_int_equal(g->calls, 0); /* never from inside */
	uint64_t end = uv_hrtime() + 10000000000ull;
	while (!g->calls && uv_hrtime() < end)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(g->calls, 1);
	dns_free(dns);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void
test_discovery(void **state)
{
	static const struct {
		const char *from, *spf;
		bool spf_pass;
		const char *dkim;
		unsigned roll;
		enum dmarc_result result;
		enum dmarc_policy policy, disposition;
		const char *record_domain;
	} cases[] = {
	    /* no record anywhere */
	    {"norecord.example", NULL, false, NULL, 0, DMARC_NONE, DMARC_P_UNSET, DMARC_P_NONE, ""},
	    /* p=reject, nothing aligned: fail */
	    {"reject.example", "other.example", true, "other.example", 0, DMARC_FAIL, DMARC_P_REJECT,
		DMARC_P_REJECT, "reject.example"},
	    /* SPF aligned (relaxed), DKIM aligned, both */
	    {"reject.example", "bounce.reject.example", true, NULL, 0, DMARC_PASS, DMARC_P_REJECT,
		DMARC_P_NONE, "reject.example"},
	    {"reject.example", NULL, false, "reject.example", 0, DMARC_PASS, DMARC_P_REJECT,
		DMARC_P_NONE, "reject.example"},
	    /* an aligned SPF domain that did not pass does not count */
	    {"reject.example", "reject.example", false, NULL, 0, DMARC_FAIL, DMARC_P_REJECT,
		DMARC_P_REJECT, "reject.example"},
	    /* subdomain: the org domain's record, its sp */
	    {"a.b.reject.example", NULL, false, NULL, 0, DMARC_FAIL, DMARC_P_QUARANTINE,
		DMARC_P_QUARANTINE, "reject.example"},
	    {"a.b.reject.example", NULL, false, "reject.example", 0, DMARC_PASS, DMARC_P_QUARANTINE,
		DMARC_P_NONE, "reject.example"},
	    /* a subdomain with a record of its own: that record's p */
	    {"own.reject.example", NULL, false, NULL, 0, DMARC_FAIL, DMARC_P_NONE, DMARC_P_NONE,
		"own.reject.example"},
	    /* strict alignment */
	    {"strict.example", "mail.strict.example", true, "mail.strict.example", 0, DMARC_FAIL,
		DMARC_P_REJECT, DMARC_P_REJECT, "strict.example"},
	    {"strict.example", "strict.example", true, NULL, 0, DMARC_PASS, DMARC_P_REJECT,
		DMARC_P_NONE, "strict.example"},
	    /* pct=0: sampled out, one step down */
	    {"pct0.example", NULL, false, NULL, 0, DMARC_FAIL, DMARC_P_REJECT, DMARC_P_QUARANTINE,
		"pct0.example"},
	    {"split.example", NULL, false, NULL, 0, DMARC_FAIL, DMARC_P_QUARANTINE,
		DMARC_P_QUARANTINE, "split.example"},
	    /* several records: no policy, and not the org domain's either */
	    {"two.example", NULL, false, NULL, 0, DMARC_NONE, DMARC_P_UNSET, DMARC_P_NONE, ""},
	    {"sub.two.example", NULL, false, NULL, 0, DMARC_FAIL, DMARC_P_REJECT, DMARC_P_REJECT,
		"sub.two.example"},
	    {"mixed.example", NULL, false, NULL, 0, DMARC_FAIL, DMARC_P_QUARANTINE,
		DMARC_P_QUARANTINE, "mixed.example"},
	    {"norua.example", NULL, false, NULL, 0, DMARC_NONE, DMARC_P_UNSET, DMARC_P_NONE, ""},
	    {"rua.example", NULL, false, NULL, 0, DMARC_FAIL, DMARC_P_NONE, DMARC_P_NONE,
		"rua.example"},
	    {"broken.example", NULL, false, NULL, 0, DMARC_NONE, DMARC_P_UNSET, DMARC_P_NONE, ""},
	    /* two-label public suffix */
	    {"x.org.co.example", "org.co.example", true, NULL, 0, DMARC_PASS, DMARC_P_REJECT,
		DMARC_P_NONE, "org.co.example"},
	    {"x.org.co.example", "evil.co.example", true, "evil.co.example", 0, DMARC_FAIL,
		DMARC_P_REJECT, DMARC_P_REJECT, "org.co.example"},
	    {"other.co.example", NULL, false, NULL, 0, DMARC_NONE, DMARC_P_UNSET, DMARC_P_NONE, ""},
	    /* no tree walk: _dmarc.mid.walk.example is never asked */
	    {"x.mid.walk.example", NULL, false, NULL, 0, DMARC_NONE, DMARC_P_UNSET, DMARC_P_NONE, ""},
	    /* DNS trouble */
	    {"tempfail.example", NULL, false, NULL, 0, DMARC_TEMPERROR, DMARC_P_UNSET, DMARC_P_NONE,
		""},
	    {"drop.example", NULL, false, NULL, 0, DMARC_TEMPERROR, DMARC_P_UNSET, DMARC_P_NONE, ""},
	    {"", NULL, false, NULL, 0, DMARC_PERMERROR, DMARC_P_UNSET, DMARC_P_NONE, ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		got_t g;
		check(cases[i].from, cases[i].spf, cases[i].spf_pass, cases[i].dkim, cases[i].roll, &g);
		if (g.result != cases[i].result || g.policy != cases[i].policy ||
		    g.disposition != cases[i].disposition ||
		    strcmp(g.record_domain, cases[i].record_domain) != 0)
			fail_msg("case %zu (%s): %s p=%s dis=%s at \"%s\" (%s)", i, cases[i].from,
			    dmarc_result_str(g.result), dmarc_policy_str(g.policy),
			    dmarc_policy_str(g.disposition), g.record_domain, g.reason);
	}
	/* pct=0 samples everything out, whatever the roll; pct=100 nothing */
	got_t g;
	check("reject.example", NULL, false, NULL, 99, &g);
	assert_int_equal(g.disposition, DMARC_P_REJECT);
	assert_false(g.sampled_out);
	check("pct0.example", NULL, false, NULL, 0, &g);
	assert_true(g.sampled_out);
}

/* cancelled before the answer: no callback, nothing leaks */
static void
test_cancel(void **state)
{
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	const char *servers[] = {server_addr, NULL};
	dns_options_t o = {.servers = servers, .timeout_ms = 1500};
	buf_t err = BUF_INIT;
	dns_t *dns = dns_new(&loop, &o, &err);
	buf_free(&err);
	got_t g;
	memset(&g, 0, sizeof g);
	dmarc_input_t in = {.from_domain = "reject.example"};
	dmarc_req_t *r = dmarc_check(dns, test_psl, &in, on_dmarc, &g);
	dmarc_cancel(r);
	in.from_domain = "";
	r = dmarc_check(dns, test_psl, &in, on_dmarc, &g);
	dmarc_cancel(r);
	dmarc_cancel(NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	dns_free(dns);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g.calls, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}


static void
on_verify(void *arg, bool ok)
{
	int *r = arg;
	*r = ok ? 1 : 0;
}

/* RFC 7489 section 7.1 */
static void
test_report_verify(void **state)
{
	static const struct {
		const char *policy, *rcpt;
		int ok;
	} cases[] = {
	    {"reject.example", "reject.example", 1},      /* the same domain */
	    {"a.reject.example", "mail.reject.example", 1}, /* the same org domain: no lookup */
	    {"reject.example", "reports.example", 1},     /* authorised by a record */
	    {"none.example", "reports.example", 0},       /* not authorised */
	    {"reject.example", "tempfail.example", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uv_loop_t loop;
		assert_int_equal(uv_loop_init(&loop), 0);
		const char *servers[] = {server_addr, NULL};
		dns_options_t o = {.servers = servers, .timeout_ms = 1500};
		buf_t err = BUF_INIT;
		dns_t *dns = dns_new(&loop, &o, &err);
		buf_free(&err);
		int r = -1;
		dmarc_report_verify(dns, test_psl, cases[i].policy, cases[i].rcpt, on_verify, &r);
		assert_int_equal(r, -1);
		uint64_t end = uv_hrtime() + 10000000000ull;
		while (r < 0 && uv_hrtime() < end)
			uv_run(&loop, UV_RUN_ONCE);
		if (r != cases[i].ok)
			fail_msg("%s -> %s: %d", cases[i].policy, cases[i].rcpt, r);
		dmarc_report_verify_cancel(
		    dmarc_report_verify(dns, test_psl, "x.example", "y.example", on_verify, &r));
		dns_free(dns);
		uv_run(&loop, UV_RUN_DEFAULT);
		assert_int_equal(uv_loop_close(&loop), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest pure[] = {
	    cmocka_unit_test(test_from),
	    cmocka_unit_test(test_record),
	    cmocka_unit_test(test_org_and_alignment),
	    cmocka_unit_test(test_report_store),
	    cmocka_unit_test(test_report_mailto),
	};
	const struct CMUnitTest live[] = {
	    cmocka_unit_test(test_discovery),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_report_verify),
	};
	int rc = cmocka_run_group_tests(pure, NULL, NULL);
	return rc | cmocka_run_group_tests(live, group_setup, group_teardown);
}
