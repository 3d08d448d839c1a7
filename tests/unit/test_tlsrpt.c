/*
 * test_tlsrpt.c - TLS-RPT (RFC 8460) as data, without a network: the
 * "_smtp._tls" record parser (section 3), the counting store and the
 * report document (section 4.4) built from it, the counts' save and load,
 * the https: rua splitter, and the gzip the reports travel in. Delivery
 * counting and sending are in tests/integration/test_tls_rpt.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "deliver/tlsrpt.h"
#include "deliver/tlsrpt_send.h"
#include "lib/buf.h"
#include "lib/gzip.h"
#include "lib/xalloc.h"

static int
rec(const char *s, tlsrpt_record_t *r)
{
	buf_t err = BUF_INIT;
	int k = tlsrpt_record_parse(s, strlen(s), r, &err);
	if (k < 0)
		assert_true(err.len > 0);
	if (k <= 0)
		assert_int_equal(r->nrua, 0);
	buf_free(&err);
	return k;
}

static void
test_record(void **state)
{
	(void)state;
	tlsrpt_record_t r;
	/* RFC 8460 section 3's examples */
	assert_int_equal(rec("v=TLSRPTv1; rua=mailto:reports@example.com", &r), 1);
	assert_int_equal(r.nrua, 1);
	assert_string_equal(r.rua[0], "mailto:reports@example.com");
	tlsrpt_record_free(&r);
	assert_int_equal(rec("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", &r), 1);
	assert_string_equal(r.rua[0], "https://reporting.example.com/v1/tlsrpt");
	tlsrpt_record_free(&r);
	/* two URIs, spaces around the comma, an extension, trailing delimiters */
	assert_int_equal(rec("v=TLSRPTv1 ;rua=mailto:a@x.example , https://r.example:8443/p ;"
			     "ext-1.x=v;  ", &r), 1);
	assert_int_equal(r.nrua, 2);
	assert_string_equal(r.rua[0], "mailto:a@x.example");
	assert_string_equal(r.rua[1], "https://r.example:8443/p");
	tlsrpt_record_free(&r);
	/* another scheme is ignored next to a usable one */
	assert_int_equal(rec("v=TLSRPTv1; rua=ftp://x.example/,MAILTO:b@x.example", &r), 1);
	assert_int_equal(r.nrua, 1);
	assert_string_equal(r.rua[0], "MAILTO:b@x.example");
	tlsrpt_record_free(&r);
	/* not a TLSRPTv1 record: another TXT record, another version */
	assert_int_equal(rec("v=spf1 -all", &r), 0);
	assert_int_equal(rec("v=TLSRPTv10; rua=mailto:a@x.example", &r), 0);
	assert_int_equal(rec("V=TLSRPTv1; rua=mailto:a@x.example", &r), 0);
	assert_int_equal(rec("", &r), 0);
	/* malformed */
	assert_int_equal(rec("v=TLSRPTv1", &r), -1);                       /* no rua */
	assert_int_equal(rec("v=TLSRPTv1;", &r), -1);
	assert_int_equal(rec("v=TLSRPTv1; rua=ftp://x.example/", &r), -1); /* none usable */
	assert_int_equal(rec("v=TLSRPTv1; rua=mailto:a@x.example,", &r), -1); /* empty URI */
	assert_int_equal(rec("v=TLSRPTv1; rua=mailto:a@x.example rua", &r), -1);
	assert_int_equal(rec("v=TLSRPTv1 rua=mailto:a@x.example", &r), -1); /* no ";" */
	assert_int_equal(rec("v=TLSRPTv1; _x=1; rua=mailto:a@x.example", &r), -1);
	assert_int_equal(rec("v=TLSRPTv1; x=; rua=mailto:a@x.example", &r), -1);
	assert_int_equal(rec("v=TLSRPTv1; rua=mailto:a\x01@x.example", &r), -1);
	/* a second rua is ignored (the first counts) */
	assert_int_equal(rec("v=TLSRPTv1; rua=mailto:a@x.example; rua=mailto:b@x.example", &r), 1);
	assert_int_equal(r.nrua, 1);
	assert_string_equal(r.rua[0], "mailto:a@x.example");
	tlsrpt_record_free(&r);
	/* at most TLSRPT_MAX_RUA URIs are kept */
	buf_t b = BUF_INIT;
	buf_puts(&b, "v=TLSRPTv1; rua=");
	for (int i = 0; i < 20; i++)
		buf_printf(&b, "%smailto:r%d@x.example", i ? "," : "", i);
	assert_int_equal(rec(buf_cstr(&b), &r), 1);
	assert_int_equal(r.nrua, TLSRPT_MAX_RUA);
	tlsrpt_record_free(&r);
	buf_free(&b);
}

static void
test_https_host(void **state)
{
	(void)state;
	char host[256];
	unsigned port;
	assert_int_equal(tlsrpt_https_host("https://r.example/v1", host, sizeof host, &port), 0);
	assert_string_equal(host, "r.example");
	assert_int_equal(port, 443);
	assert_int_equal(tlsrpt_https_host("HTTPS://r.example:8443", host, sizeof host, &port), 0);
	assert_int_equal(port, 8443);
	assert_int_equal(tlsrpt_https_host("https://[2001:db8::1]:444/x", host, sizeof host, &port),
	    0);
	assert_string_equal(host, "2001:db8::1");
	assert_int_equal(port, 444);
	assert_int_equal(tlsrpt_https_host("https://u@r.example/", host, sizeof host, &port), -1);
	assert_int_equal(tlsrpt_https_host("https://r.example:0/", host, sizeof host, &port), -1);
	assert_int_equal(tlsrpt_https_host("https://r.example:99999/", host, sizeof host, &port), -1);
	assert_int_equal(tlsrpt_https_host("https:///x", host, sizeof host, &port), -1);
	assert_int_equal(tlsrpt_https_host("http://r.example/", host, sizeof host, &port), -1);
}

/* 2026-12-07 12:00:00 UTC */
#define NOON 1796644800

static const char *const sts_lines[] = {"version: STSv1", "mode: enforce", "mx: *.x.example",
	"max_age: 86400"};
static const char *const sts_mx[] = {"*.x.example"};

static void
count(const char *domain, const char *result, const char *mx, const char *reason, time_t t)
{
	tlsrpt_session_t s = {
		.domain = domain,
		.type = TLSRPT_STS,
		.strings = sts_lines,
		.nstrings = 4,
		.mx = sts_mx,
		.nmx = 1,
		.result = result,
		.sending_ip = "192.0.2.1",
		.mx_host = mx,
		.receiving_ip = "198.51.100.7",
		.reason = reason,
	};
	tlsrpt_count(&s, t);
}

static json_t *
entry_for(json_t *entries, const char *domain)
{
	size_t i;
	json_t *e;
	json_array_foreach(entries, i, e)
		if (strcmp(json_string_value(json_object_get(e, "domain")), domain) == 0)
			return e;
	return NULL;
}

static void
test_report(void **state)
{
	(void)state;
	tlsrpt_reset();
	tlsrpt_set_enabled(false);
	count("X.example", NULL, "mx1.x.example", NULL, NOON);
	assert_null(tlsrpt_take(NOON + 10, true)); /* off: nothing counted */
	tlsrpt_set_enabled(true);
	count("X.example", NULL, "mx1.x.example", NULL, NOON);
	count("x.example", NULL, "mx1.x.example", NULL, NOON + 1);
	count("x.example", "certificate-expired", "mx2.x.example", "certificate has expired", NOON);
	count("x.example", "certificate-expired", "mx2.x.example", "certificate has expired", NOON);
	count("x.example", "no-such-type", "mx2.x.example", "odd \"quoted\"\x01", NOON);
	count("y.example", "starttls-not-supported", "mx.y.example", NULL, NOON);
	/* a whole day not over yet: nothing due without through_now */
	assert_null(tlsrpt_take(NOON + 60, false));
	json_t *entries = tlsrpt_take(NOON + 60, true);
	assert_non_null(entries);
	assert_int_equal(json_array_size(entries), 2);
	json_t *e = entry_for(entries, "x.example");
	assert_non_null(e);
	tlsrpt_meta_t m = {"Org \"Q\"", "admin@sender.example", "1.x.example@sender.example"};
	buf_t out = BUF_INIT;
	tlsrpt_report_json(&m, e, &out);
	json_error_t je;
	json_t *doc = json_loads(buf_cstr(&out), 0, &je);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "organization-name")), "Org \"Q\"");
	assert_string_equal(json_string_value(json_object_get(doc, "contact-info")),
	    "admin@sender.example");
	assert_string_equal(json_string_value(json_object_get(doc, "report-id")),
	    "1.x.example@sender.example");
	json_t *dr = json_object_get(doc, "date-range");
	assert_string_equal(json_string_value(json_object_get(dr, "start-datetime")),
	    "2026-12-07T00:00:00Z");
	assert_string_equal(json_string_value(json_object_get(dr, "end-datetime")),
	    "2026-12-07T12:01:00Z");
	json_t *pols = json_object_get(doc, "policies");
	assert_int_equal(json_array_size(pols), 1);
	json_t *p = json_array_get(pols, 0);
	json_t *pol = json_object_get(p, "policy");
	assert_string_equal(json_string_value(json_object_get(pol, "policy-type")), "sts");
	assert_string_equal(json_string_value(json_object_get(pol, "policy-domain")), "x.example");
	assert_int_equal(json_array_size(json_object_get(pol, "policy-string")), 4);
	assert_string_equal(json_string_value(json_array_get(json_object_get(pol, "mx-host"), 0)),
	    "*.x.example");
	json_t *sum = json_object_get(p, "summary");
	assert_int_equal(json_integer_value(json_object_get(sum, "total-successful-session-count")),
	    2);
	assert_int_equal(json_integer_value(json_object_get(sum, "total-failure-session-count")), 3);
	json_t *fd = json_object_get(p, "failure-details");
	assert_int_equal(json_array_size(fd), 2); /* identical failures share a row */
	json_t *r0 = json_array_get(fd, 0);
	assert_string_equal(json_string_value(json_object_get(r0, "result-type")),
	    "certificate-expired");
	assert_int_equal(json_integer_value(json_object_get(r0, "failed-session-count")), 2);
	assert_string_equal(json_string_value(json_object_get(r0, "sending-mta-ip")), "192.0.2.1");
	assert_string_equal(json_string_value(json_object_get(r0, "receiving-ip")), "198.51.100.7");
	assert_string_equal(json_string_value(json_object_get(r0, "receiving-mx-hostname")),
	    "mx2.x.example");
	assert_string_equal(json_string_value(json_object_get(r0, "failure-reason-code")),
	    "certificate has expired");
	/* an unknown result type is reported as the general validation-failure */
	json_t *r1 = json_array_get(fd, 1);
	assert_string_equal(json_string_value(json_object_get(r1, "result-type")),
	    "validation-failure");
	assert_string_equal(json_string_value(json_object_get(r1, "failure-reason-code")),
	    "odd \"quoted\"?");
	json_decref(doc);
	buf_free(&out);
	json_decref(entries);
	/* after a take through now, today's next period begins at it */
	count("x.example", NULL, "mx1.x.example", NULL, NOON + 120);
	entries = tlsrpt_take(NOON + 86400 + 5, false); /* the next day: yesterday is due */
	assert_non_null(entries);
	e = entry_for(entries, "x.example");
	assert_int_equal(json_integer_value(json_object_get(e, "begin")), NOON + 60);
	assert_int_equal(json_integer_value(json_object_get(e, "end")), NOON + 43199);
	json_decref(entries);
	assert_null(tlsrpt_take(NOON + 86400 + 5, true));
	tlsrpt_reset();
}

/* outbound.c's hook: the policy strings of section 4.4.2 from what applied */
static void
test_attempt(void **state)
{
	(void)state;
	tlsrpt_reset();
	tlsrpt_set_enabled(true);
	static const uint8_t digest[4] = {0xde, 0xad, 0xbe, 0xef};
	tls_tlsa_t rr = {3, 1, 1, digest, sizeof digest};
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0xc6336407); /* 198.51.100.7 */
	tlsrpt_attempt_t a = {.domain = "d.example", .dane = true, .tlsa = &rr, .ntlsa = 1,
		.mx_host = "mx.d.example", .receiving = (struct sockaddr *)&sin,
		.sending_ip = "192.0.2.1", .result = "tlsa-invalid", .reason = "no match"};
	tlsrpt_count_attempt(&a, NOON);
	char *mx[] = {"mx.s.example", "*.s.example"};
	mtasts_policy_t pol = {MTASTS_TESTING, 86400, mx, 2};
	tlsrpt_attempt_t b = {.domain = "s.example", .sts = &pol, .mx_host = "mx.s.example"};
	tlsrpt_count_attempt(&b, NOON);
	tlsrpt_attempt_t c = {.domain = "s.example", .sts_fetch = true,
		.result = "sts-webpki-invalid", .reason = "certificate problem"};
	tlsrpt_count_attempt(&c, NOON);
	json_t *entries = tlsrpt_take(NOON, true);
	assert_int_equal(json_array_size(entries), 2);
	tlsrpt_meta_t m = {"o", "c@x.example", "id@x.example"};
	buf_t out = BUF_INIT;
	tlsrpt_report_json(&m, entry_for(entries, "d.example"), &out);
	assert_non_null(strstr(buf_cstr(&out), "{\"policy-type\":\"tlsa\",\"policy-string\":"
						 "[\"3 1 1 DEADBEEF\"],\"mx-host\":[\"mx.d.example\"],"
						 "\"policy-domain\":\"d.example\"}"));
	assert_non_null(strstr(buf_cstr(&out), "\"receiving-ip\":\"198.51.100.7\""));
	assert_non_null(strstr(buf_cstr(&out), "\"result-type\":\"tlsa-invalid\""));
	buf_reset(&out);
	tlsrpt_report_json(&m, entry_for(entries, "s.example"), &out);
	assert_non_null(strstr(buf_cstr(&out), "\"policy-string\":[\"version: STSv1\",\"mode: "
						 "testing\",\"mx: mx.s.example\",\"mx: *.s.example\","
						 "\"max_age: 86400\"],\"mx-host\":[\"mx.s.example\","
						 "\"*.s.example\"]"));
	/* a failed fetch: policy "sts" with nothing to quote */
	assert_non_null(strstr(buf_cstr(&out), "\"policy-type\":\"sts\",\"policy-string\":[],"
						 "\"mx-host\":[]"));
	assert_non_null(strstr(buf_cstr(&out), "\"result-type\":\"sts-webpki-invalid\""));
	buf_free(&out);
	json_decref(entries);
	tlsrpt_reset();
}

static void
test_bounds(void **state)
{
	(void)state;
	tlsrpt_reset();
	tlsrpt_set_enabled(true);
	char mx[64];
	for (int i = 0; i < TLSRPT_MAX_DETAILS + 50; i++) {
		snprintf(mx, sizeof mx, "mx%d.x.example", i);
		count("x.example", "certificate-not-trusted", mx, NULL, NOON);
	}
	json_t *entries = tlsrpt_take(NOON, true);
	json_t *p = json_object_iter_value(json_object_iter(
	    json_object_get(json_array_get(entries, 0), "policies")));
	/* the rows are capped; the summary still counts every session */
	assert_int_equal(json_object_size(json_object_get(p, "details")), TLSRPT_MAX_DETAILS);
	assert_int_equal(json_integer_value(json_object_get(p, "fail")), TLSRPT_MAX_DETAILS + 50);
	json_decref(entries);
	/* policies per domain */
	for (int i = 0; i < TLSRPT_MAX_POLICIES + 5; i++) {
		snprintf(mx, sizeof mx, "mx%d.x.example", i);
		const char *one[] = {mx};
		tlsrpt_session_t s = {.domain = "x.example", .type = TLSRPT_TLSA, .strings = one,
			.nstrings = 1, .mx = one, .nmx = 1};
		tlsrpt_count(&s, NOON);
	}
	entries = tlsrpt_take(NOON, true);
	assert_int_equal(json_object_size(json_object_get(json_array_get(entries, 0), "policies")),
	    TLSRPT_MAX_POLICIES);
	json_decref(entries);
	/* rows in all: 1100 domains of 100 failure rows each do not all fit */
	char dom[64];
	for (int d = 0; d < 1100; d++) {
		snprintf(dom, sizeof dom, "d%d.example", d);
		for (int i = 0; i < TLSRPT_MAX_DETAILS; i++) {
			snprintf(mx, sizeof mx, "mx%d.x.example", i);
			count(dom, "certificate-not-trusted", mx, NULL, NOON);
		}
	}
	entries = tlsrpt_take(NOON, true);
	size_t rows = 0;
	for (size_t k = 0; k < json_array_size(entries); k++) {
		json_t *pols = json_object_get(json_array_get(entries, k), "policies");
		for (void *it = json_object_iter(pols); it; it = json_object_iter_next(pols, it))
			rows += 1 + json_object_size(json_object_get(json_object_iter_value(it),
			    "details"));
	}
	assert_int_equal(rows, TLSRPT_MAX_ROWS);
	json_decref(entries);
	/* a take empties the store: room again */
	count("x.example", "certificate-not-trusted", "mx.x.example", NULL, NOON);
	entries = tlsrpt_take(NOON, true);
	assert_int_equal(json_array_size(entries), 1);
	json_decref(entries);
	tlsrpt_reset();
}

static void
test_save_load(void **state)
{
	(void)state;
	tlsrpt_reset();
	tlsrpt_set_enabled(true);
	size_t len;
	assert_null(tlsrpt_save(&len)); /* nothing yet */
	count("x.example", NULL, "mx1.x.example", NULL, NOON);
	count("x.example", "tlsa-invalid", "mx1.x.example", "no match", NOON);
	char *saved = tlsrpt_save(&len);
	assert_non_null(saved);
	assert_null(tlsrpt_save(&len)); /* unchanged since */
	char path[] = "/tmp/test_tlsrpt_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, saved, len), (ssize_t)len);
	close(fd);
	xfree(saved);
	tlsrpt_reset();
	buf_t err = BUF_INIT;
	assert_int_equal(tlsrpt_load(path, &err), 0);
	json_t *entries = tlsrpt_take(NOON + 10, true);
	assert_non_null(entries);
	json_t *p = json_object_iter_value(json_object_iter(
	    json_object_get(json_array_get(entries, 0), "policies")));
	assert_int_equal(json_integer_value(json_object_get(p, "ok")), 1);
	assert_int_equal(json_integer_value(json_object_get(p, "fail")), 1);
	json_decref(entries);
	/* a damaged file: refused as a whole, or its bad entries dropped */
	FILE *f = fopen(path, "w");
	fputs("{\"days\": [1]}", f);
	fclose(f);
	assert_int_equal(tlsrpt_load(path, &err), -1);
	assert_true(err.len > 0);
	f = fopen(path, "w");
	fputs("{\"days\": {\"2026-12-07\": {\"a.example\": {\"begin\": 1, \"policies\": {\"k\": "
	      "{\"policy\": {}, \"ok\": \"x\"}}}, \"b.example\": {\"begin\": 5, \"policies\": {}}},"
	      " \"junk\": {}}}", f);
	fclose(f);
	assert_int_equal(tlsrpt_load(path, &err), 0);
	entries = tlsrpt_take(NOON + 10, true);
	assert_int_equal(json_array_size(entries), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(entries, 0), "domain")),
	    "b.example");
	json_decref(entries);
	unlink(path);
	assert_int_equal(tlsrpt_load(path, &err), 0); /* no file: no counts, no error */
	buf_free(&err);
	tlsrpt_reset();
}

static void
test_gzip(void **state)
{
	(void)state;
	buf_t in = BUF_INIT, gz = BUF_INIT, back = BUF_INIT;
	for (int i = 0; i < 5000; i++)
		buf_printf(&in, "line %d of the report\n", i);
	assert_int_equal(gzip_compress(in.data, in.len, &gz), 0);
	assert_true(gz.len > 10 && gz.len < in.len);
	assert_int_equal((unsigned char)gz.data[0], 0x1f); /* RFC 1952 magic */
	assert_int_equal((unsigned char)gz.data[1], 0x8b);
	assert_int_equal(gzip_decompress(gz.data, gz.len, in.len, &back), 0);
	assert_int_equal(back.len, in.len);
	assert_memory_equal(back.data, in.data, in.len);
	buf_reset(&back);
	assert_int_equal(gzip_decompress(gz.data, gz.len, in.len - 1, &back), -1); /* too large */
	assert_int_equal(gzip_decompress(gz.data, gz.len / 2, in.len, &back), -1); /* truncated */
	assert_int_equal(gzip_decompress("not gzip", 8, 100, &back), -1);
	assert_int_equal(back.len, 0);
	buf_free(&in);
	buf_free(&gz);
	buf_free(&back);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_https_host),
		cmocka_unit_test(test_report),
		cmocka_unit_test(test_attempt),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_gzip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
