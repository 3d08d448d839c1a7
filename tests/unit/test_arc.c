/*
 * test_arc.c - unit tests for src/mailauth/arc.c without DNS (keys from a
 * table through arc_verify_finish_sync; dkimpy's chains and DNS:
 * tests/integration/test_arc.py).
 *
 * Chains tern seals itself, RSA and Ed25519 mixed, 1 to 3 sets, verified
 * whole and byte by byte; none without ARC fields; fail for a changed body
 * or signed header, a set missing a field, two fields of one kind with one
 * i=, a gap, a bad i=, cv=fail in the newest seal, a wrong cv=, a changed
 * older AAR (the seals cover it), no key; sealing a failed chain (cv=fail,
 * the seal covers only its own set), refusals (50 sets, an unverified
 * chain); the async finish never calls back inside the call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
#include "mailauth/arc.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_int.h"

static dkim_key_t *rsa, *ed;
static char *rsa_rec, *ed_rec;

static dkim_key_t *
key_from(EVP_PKEY *pk, char **rec)
{
	char path[] = "/tmp/test_arc_keyXXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	buf_t err = BUF_INIT, b = BUF_INIT;
	dkim_key_t *k = dkim_key_load(path, &err);
	unlink(path);
	assert_non_null(k);
	buf_printf(&b, "v=DKIM1; k=%s; p=", dkim_key_type(k));
	assert_int_equal(dkim_key_public(k, &b), 0);
	*rec = buf_steal(&b);
	buf_free(&err);
	return k;
}

static int
setup(void **state)
{
	EVP_PKEY *a = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *b = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	rsa = key_from(a, &rsa_rec);
	ed = key_from(b, &ed_rec);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	return 0;
}

static int
teardown(void **state)
{
	dkim_key_free(rsa);
	dkim_key_free(ed);
	xfree(rsa_rec);
	xfree(ed_rec);
	return 0;
}

static enum dns_status
lookup(void *arg, const char *name, buf_t *txt)
{
	if (strcmp(name, "r._domainkey.one.example") == 0 || strcmp(name, "r._domainkey.three.example") == 0) {
		buf_puts(txt, rsa_rec);
		return DNS_OK;
	}
	if (strcmp(name, "e._domainkey.two.example") == 0) {
		buf_puts(txt, ed_rec);
		return DNS_OK;
	}
	return DNS_NXDOMAIN;
}

typedef struct got {
	int calls;
	enum arc_result r;
	unsigned n;
	char reason[128];
	char as_d[64];
} got_t;

static void
on_verdict(void *arg, const arc_verdict_t *v)
{
	got_t *g = arg;
	g->calls++;
	g->r = v->result;
	g->n = v->instances;
	snprintf(g->reason, sizeof g->reason, "%s", v->reason);
	snprintf(g->as_d, sizeof g->as_d, "%s", v->as_d);
}

static got_t
verify(const char *m, size_t len, size_t piece)
{
	arc_verify_t *v = arc_verify_new(NULL);
	if (!piece)
		piece = len ? len : 1;
	for (size_t i = 0; i < len; i += piece)
		arc_verify_feed(v, m + i, len - i < piece ? len - i : piece);
	got_t g;
	memset(&g, 0, sizeof g);
	arc_verify_finish_sync(v, lookup, NULL, on_verdict, &g);
	arc_verify_free(v);
	assert_int_equal(g.calls, 1);
	return g;
}

static const char msg[] =
    "Authentication-Results: mx.one.example; spf=pass smtp.mailfrom=joe@example.com\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s=x; h=from; bh=YQ==; b=YQ==\r\n"
    "From: Joe <joe@example.com>\r\n"
    "To: list@lists.example\r\n"
    "Subject: ARC test\r\n"
    "Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <arc@example.com>\r\n"
    "\r\n"
    "Hello,\r\n\r\nthe body.\r\n";

/* msg sealed by hop 1 (one.example, RSA), 2 (two.example, Ed25519), 3 ... */
static char *
seal(const char *m, const dkim_key_t *k, const char *d, const char *s, enum arc_result chain)
{
	buf_t out = BUF_INIT, err = BUF_INIT;
	char *ar = xasprintf("mx.%s; arc=%s", d, arc_result_str(chain));
	if (arc_seal(k, d, s, ar, chain, m, strlen(m), 1796000000, &out, &err) < 0)
		fail_msg("seal: %s", buf_cstr(&err));
	xfree(ar);
	buf_puts(&out, m);
	buf_free(&err);
	return buf_steal(&out);
}

static char *
chain3(void)
{
	char *m1 = seal(msg, rsa, "one.example", "r", ARC_NONE);
	char *m2 = seal(m1, ed, "two.example", "e", ARC_PASS);
	char *m3 = seal(m2, rsa, "three.example", "r", ARC_PASS);
	xfree(m1);
	xfree(m2);
	return m3;
}

static void
test_chains(void **state)
{
	got_t g = verify(msg, sizeof msg - 1, 0);
	assert_int_equal(g.r, ARC_NONE);
	assert_int_equal(g.n, 0);
	char *m1 = seal(msg, rsa, "one.example", "r", ARC_NONE);
	assert_non_null(strstr(m1, "cv=none"));
	assert_non_null(strstr(m1, "ARC-Authentication-Results: i=1; mx.one.example; arc=none\r\n"));
	g = verify(m1, strlen(m1), 0);
	if (g.r != ARC_PASS)
		fail_msg("1: %s", g.reason);
	assert_int_equal(g.n, 1);
	char *m3 = chain3();
	static const size_t pieces[] = {0, 1, 5, 100};
	for (size_t i = 0; i < 4; i++) {
		g = verify(m3, strlen(m3), pieces[i]);
		if (g.r != ARC_PASS)
			fail_msg("3 in pieces of %zu: %s", pieces[i], g.reason);
		assert_int_equal(g.n, 3);
		assert_string_equal(g.as_d, "three.example");
	}
	/* the body, a signed header field, an older AAR changed */
	char *t = xstrdup(m3);
	strstr(t, "the body")[4] = 'B';
	g = verify(t, strlen(t), 0);
	assert_int_equal(g.r, ARC_FAIL);
	assert_string_equal(g.reason, "ARC-Message-Signature i=3: body hash mismatch");
	xfree(t);
	t = xstrdup(m3);
	strstr(t, "Subject: ARC")[9] = 'a';
	g = verify(t, strlen(t), 0);
	assert_int_equal(g.r, ARC_FAIL);
	assert_non_null(strstr(g.reason, "ARC-Message-Signature i=3"));
	xfree(t);
	t = xstrdup(m3);
	strstr(t, "i=1; mx.one.example; arc=none")[22] = 'X';
	g = verify(t, strlen(t), 0);
	assert_int_equal(g.r, ARC_FAIL);
	assert_non_null(strstr(g.reason, "ARC-Seal i=3"));
	xfree(t);
	xfree(m1);
	xfree(m3);
}

/* a copy of m without its first field named name */
static char *
drop_field(const char *m, const char *name)
{
	const char *p = strstr(m, name);
	assert_non_null(p);
	const char *e = p;
	for (;;) {
		e = strstr(e, "\r\n") + 2;
		if (*e != ' ' && *e != '\t')
			break;
	}
	buf_t b = BUF_INIT;
	buf_append(&b, m, (size_t)(p - m));
	buf_puts(&b, e);
	return buf_steal(&b);
}

static void
test_structure(void **state)
{
	char *m3 = chain3();
	/* a set without its AAR */
	char *t = drop_field(m3, "ARC-Authentication-Results: i=2;");
	got_t g = verify(t, strlen(t), 0);
	assert_int_equal(g.r, ARC_FAIL);
	assert_string_equal(g.reason, "ARC set i=2 incomplete");
	xfree(t);
	/* two AARs with i=2 */
	buf_t b = BUF_INIT;
	buf_puts(&b, "ARC-Authentication-Results: i=2; forged.example; arc=pass\r\n");
	buf_puts(&b, m3);
	g = verify(b.data, b.len, 0);
	assert_int_equal(g.r, ARC_FAIL);
	assert_string_equal(g.reason, "two ARC fields of one kind with i=2");
	/* i=0, i=51 */
	buf_reset(&b);
	buf_puts(&b, "ARC-Seal: i=51; a=rsa-sha256; cv=pass; d=x.example; s=s; b=YQ==\r\n");
	buf_puts(&b, m3);
	g = verify(b.data, b.len, 0);
	assert_int_equal(g.r, ARC_FAIL);
	assert_string_equal(g.reason, "an ARC field without a valid i=");
	/* a gap: sets 1 and 3 only */
	char *m1 = seal(msg, rsa, "one.example", "r", ARC_NONE);
	buf_reset(&b);
	buf_puts(&b, "ARC-Seal: i=3; a=rsa-sha256; cv=pass; d=x.example; s=s; b=YQ==\r\n"
	    "ARC-Message-Signature: i=3; a=rsa-sha256; d=x.example; s=s; h=from; bh=YQ==; b=YQ==\r\n"
	    "ARC-Authentication-Results: i=3; x.example; arc=pass\r\n");
	buf_puts(&b, m1);
	g = verify(b.data, b.len, 0);
	assert_int_equal(g.r, ARC_FAIL);
	assert_string_equal(g.reason, "ARC set i=2 incomplete");
	/* a wrong cv= at i=1 (the seal breaks too, but the cv is caught first) */
	t = xstrdup(m3);
	char *cv = strstr(t, "cv=none");
	memcpy(cv, "cv=pass", 7);
	g = verify(t, strlen(t), 0);
	assert_int_equal(g.r, ARC_FAIL);
	assert_string_equal(g.reason, "ARC-Seal i=1 has the wrong cv=");
	xfree(t);
	/* a key that is not there */
	char *m2x = seal(m1, ed, "nokey.example", "e", ARC_PASS);
	g = verify(m2x, strlen(m2x), 0);
	assert_int_equal(g.r, ARC_FAIL);
	assert_non_null(strstr(g.reason, "no key record"));
	xfree(m2x);
	/* a failed chain sealed: cv=fail, and the result is fail from then on */
	char *mf = seal(m1, ed, "two.example", "e", ARC_FAIL);
	assert_non_null(strstr(mf, "cv=fail"));
	g = verify(mf, strlen(mf), 0);
	assert_int_equal(g.r, ARC_FAIL);
	assert_string_equal(g.reason, "the newest ARC-Seal says cv=fail");
	xfree(mf);
	/* refusals: an unverified chain; 50 sets */
	buf_t out = BUF_INIT, err = BUF_INIT;
	assert_int_equal(arc_seal(ed, "two.example", "e", "x; arc=none", ARC_NONE, m1, strlen(m1), 1, &out,
	    &err), -1);
	buf_reset(&b);
	buf_puts(&b, "ARC-Seal: i=50; a=rsa-sha256; cv=pass; d=x.example; s=s; b=YQ==\r\n");
	buf_puts(&b, msg);
	buf_reset(&err);
	assert_int_equal(arc_seal(ed, "two.example", "e", "x; arc=pass", ARC_PASS, b.data, b.len, 1, &out,
	    &err), -1);
	assert_int_equal(out.len, 0);
	buf_free(&out);
	buf_free(&err);
	buf_free(&b);
	xfree(m1);
	xfree(m3);
}

static void
test_async(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	const char *servers[] = {"127.0.0.1@9", NULL};
	dns_options_t o;
	memset(&o, 0, sizeof o);
	o.servers = servers;
	o.timeout_ms = 300;
	buf_t err = BUF_INIT;
	dns_t *dns = dns_new(&loop, &o, &err);
	assert_non_null(dns);
	/* no ARC: later, none */
	arc_verify_t *v = arc_verify_new(NULL);
	arc_verify_feed(v, msg, sizeof msg - 1);
	got_t g;
	memset(&g, 0, sizeof g);
	arc_verify_finish(v, dns, on_verdict, &g);
	assert_int_equal(g.calls, 0);
	while (!g.calls)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(g.r, ARC_NONE);
	arc_verify_free(v);
	/* keys nobody serves: fail after the timeout */
	char *m1 = seal(msg, rsa, "one.example", "r", ARC_NONE);
	dkim_verify_opts_t vo;
	memset(&vo, 0, sizeof vo);
	vo.timeout_ms = 200;
	v = arc_verify_new(&vo);
	arc_verify_feed(v, m1, strlen(m1));
	memset(&g, 0, sizeof g);
	arc_verify_finish(v, dns, on_verdict, &g);
	assert_int_equal(g.calls, 0);
	while (!g.calls)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(g.r, ARC_FAIL);
	arc_verify_free(v);
	/* freed while waiting: never called */
	v = arc_verify_new(&vo);
	arc_verify_feed(v, m1, strlen(m1));
	memset(&g, 0, sizeof g);
	arc_verify_finish(v, dns, on_verdict, &g);
	arc_verify_free(v);
	arc_verify_free(NULL);
	dns_free(dns);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g.calls, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	xfree(m1);
	buf_free(&err);
}

/* the oldest AAR's verdict for the trusted-forwarder override (arc_flow.h) */
static void
test_aar_passed(void **state)
{
	(void)state;
	static const struct {
		const char *aar;
		bool pass;
	} cases[] = {
	    {"i=1; mx.a.example; dmarc=pass header.from=x.example", true},
	    {"i=1; mx.a.example; spf=fail smtp.mailfrom=x@x.example; dmarc=pass", true},
	    {"i=1; mx.a.example; spf=pass smtp.mailfrom=x@x.example; dmarc=fail", false},
	    {"i=1; mx.a.example; spf=pass smtp.mailfrom=x@x.example", true},
	    {"i=1; mx.a.example;\r\n\tdkim=pass (good) header.d=x.example", true},
	    {"i=1; mx.a.example; dkim=fail; spf=softfail", false},
	    {"i=1; mx.a.example; none", false},
	    {"i=1; mx.a.example; DMARC = (comment) Pass", true},
	    {"i=1; mx.a.example (spf=pass); spf=fail", false},
	    {"i=1; mx.a.example; arc=pass; x-spf=pass", false},
	    {"", false},
	    {"i=1", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (arc_aar_passed(cases[i].aar, strlen(cases[i].aar)) != cases[i].pass)
			fail_msg("case %zu: %s", i, cases[i].aar);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chains),
		cmocka_unit_test(test_structure),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_aar_passed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
