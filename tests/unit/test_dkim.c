/*
 * test_dkim.c - unit tests for src/mailauth/dkim*.c without DNS (the key
 * records come from a table through dkim_verify_finish_sync; DNS itself:
 * tests/integration/test_dkim.py).
 *
 * Canonicalisation: the example of RFC 6376 section 3.4.6, empty bodies,
 * every split of a body into two pieces and byte by byte. The tag-list
 * parser (FWS, duplicates, bad names and values), base64. The RFC 8463
 * appendix A message: both signatures verify, fed whole and byte by byte.
 * dkim_sign round trips (RSA 2048, Ed25519) and what must not pass:
 * tampered body and header, an added From (over-signing), expired, t= in
 * the future, x= before t=, rsa-sha1, a revoked key, a 512-bit key, a key
 * record of the wrong type, t=s with a subdomain i=, i= outside d=, h=
 * without From, no key, a DNS failure, a header section over 256 KiB; t=y;
 * l= with content appended; the finish callback never runs inside the call.
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
#include "lib/dns.h"
#include "lib/xalloc.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_int.h"

/* ---- helpers ---- */

static void
to_buf(void *arg, const char *p, size_t n)
{
	buf_append(arg, p, n);
}

static void
canon_body(bool relaxed, const char *p, size_t n, size_t piece, buf_t *out)
{
	dkim_canon_t c;
	dkim_canon_init(&c, relaxed, to_buf, out);
	if (piece == 0)
		piece = n ? n : 1;
	for (size_t i = 0; i < n; i += piece)
		dkim_canon_body(&c, p + i, n - i < piece ? n - i : piece);
	dkim_canon_end(&c);
}

typedef struct keyrow {
	const char *name;
	enum dns_status st;
	const char *txt;
} keyrow_t;

static keyrow_t keytab[16];
static size_t nkeytab;

static void
keys_reset(void)
{
	for (size_t i = 0; i < nkeytab; i++)
		xfree((char *)keytab[i].txt);
	nkeytab = 0;
}

static void
key_add(const char *name, enum dns_status st, const char *txt)
{
	assert_true(nkeytab < 16);
	keytab[nkeytab].name = name;
	keytab[nkeytab].st = st;
	keytab[nkeytab].txt = xstrdup(txt ? txt : "");
	nkeytab++;
}

static enum dns_status
lookup(void *arg, const char *name, buf_t *txt)
{
	for (size_t i = 0; i < nkeytab; i++) {
		if (strcmp(keytab[i].name, name) == 0) {
			buf_puts(txt, keytab[i].txt);
			return keytab[i].st;
		}
	}
	return DNS_NXDOMAIN;
}

typedef struct got {
	size_t n;
	enum dkim_result r[8];
	char reason[8][128];
	bool testing[8];
	int calls;
} got_t;

static void
on_result(void *arg, const dkim_sig_result_t *r, size_t n)
{
	got_t *g = arg;
	g->calls++;
	g->n = n;
	for (size_t i = 0; i < n && i < 8; i++) {
		g->r[i] = r[i].result;
		snprintf(g->reason[i], sizeof g->reason[i], "%s", r[i].reason);
		g->testing[i] = r[i].testing;
	}
}

/* verify msg fed in pieces of piece octets (0: whole) at time now */
static got_t
verify(const char *msg, size_t len, size_t piece, time_t now)
{
	dkim_verify_opts_t o;
	memset(&o, 0, sizeof o);
	o.now = now;
	dkim_verify_t *v = dkim_verify_new(&o);
	if (piece == 0)
		piece = len ? len : 1;
	for (size_t i = 0; i < len; i += piece)
		dkim_verify_feed(v, msg + i, len - i < piece ? len - i : piece);
	got_t g;
	memset(&g, 0, sizeof g);
	dkim_verify_finish_sync(v, lookup, NULL, on_result, &g);
	dkim_verify_free(v);
	assert_int_equal(g.calls, 1);
	return g;
}

static dkim_key_t *
key_from(EVP_PKEY *pk)
{
	char path[] = "/tmp/test_dkim_keyXXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	buf_t err = BUF_INIT;
	dkim_key_t *k = dkim_key_load(path, &err);
	unlink(path);
	if (!k)
		fail_msg("key load: %s", buf_cstr(&err));
	buf_free(&err);
	return k;
}

/* "v=DKIM1; k=..; p=.." for the key */
static char *
record_of(const dkim_key_t *k, const char *extra)
{
	buf_t b = BUF_INIT;
	buf_printf(&b, "v=DKIM1; k=%s; %sp=", dkim_key_type(k), extra ? extra : "");
	assert_int_equal(dkim_key_public(k, &b), 0);
	return buf_steal(&b);
}

/* the raw public key record of any EVP_PKEY (RSA, also under 1024 bits) */
static char *
record_of_pkey(EVP_PKEY *pk)
{
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pk, &der);
	assert_true(n > 0);
	buf_t b = BUF_INIT;
	buf_puts(&b, "v=DKIM1; k=rsa; p=");
	dkim_base64_encode(der, (size_t)n, &b);
	OPENSSL_free(der);
	return buf_steal(&b);
}

/*
 * A message signed by hand, for signatures dkim_sign never makes: the
 * fields hdrs (each "Name: value\r\n", all of them hashed in order, h= must
 * name them), then body; the tags "v=1; a=ALG; c=relaxed/relaxed; EXTRA
 * bh=..; b=" with EXTRA as given (d=, s=, h=, t=, x=, l=, i= ...). l:
 * hash only that many canonical body octets (0: all).
 */
static char *
hand_signed(EVP_PKEY *pk, const char *alg, const char *extra, const char *hdrs, const char *body,
    size_t l)
{
	buf_t cb = BUF_INIT;
	canon_body(true, body, strlen(body), 0, &cb);
	unsigned char bh[32];
	unsigned hl;
	EVP_Digest(cb.data, l ? l : cb.len, bh, &hl, EVP_sha256(), NULL);
	buf_free(&cb);
	buf_t sig = BUF_INIT, data = BUF_INIT;
	buf_printf(&sig, "DKIM-Signature: v=1; a=%s; c=relaxed/relaxed; %s bh=", alg, extra);
	dkim_base64_encode(bh, 32, &sig);
	buf_puts(&sig, "; b=");
	dkim_field_t *f;
	size_t nf;
	dkim_fields_split(hdrs, strlen(hdrs), &f, &nf);
	for (size_t i = 0; i < nf; i++) {
		dkim_canon_header(true, f[i].p, f[i].len, &data);
		buf_puts(&data, "\r\n");
	}
	xfree(f);
	dkim_canon_header(true, sig.data, sig.len, &data);
	unsigned char s[1024];
	size_t sl = sizeof s;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_ED25519) {
		unsigned char h[32];
		EVP_Digest(data.data, data.len, h, &hl, EVP_sha256(), NULL);
		assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, pk), 1);
		assert_int_equal(EVP_DigestSign(md, s, &sl, h, 32), 1);
	} else {
		assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk), 1);
		assert_int_equal(EVP_DigestSign(md, s, &sl, (unsigned char *)data.data, data.len), 1);
	}
	EVP_MD_CTX_free(md);
	dkim_base64_encode(s, sl, &sig);
	buf_printf(&sig, "\r\n%s\r\n%s", hdrs, body);
	buf_free(&data);
	return buf_steal(&sig);
}

/* ---- canonicalisation ---- */

static void
test_canon_rfc6376_example(void **state)
{
	/* RFC 6376 section 3.4.6 */
	static const char *hdr[] = {"A: X", "B : Y\t\r\n\tZ  "};
	static const char *relaxed[] = {"a:X", "b:Y Z"};
	for (size_t i = 0; i < 2; i++) {
		buf_t o = BUF_INIT;
		dkim_canon_header(true, hdr[i], strlen(hdr[i]), &o);
		assert_string_equal(buf_cstr(&o), relaxed[i]);
		buf_reset(&o);
		dkim_canon_header(false, hdr[i], strlen(hdr[i]), &o);
		assert_string_equal(buf_cstr(&o), hdr[i]);
		buf_free(&o);
	}
	static const char body[] = " C \r\nD \t E\r\n\r\n\r\n";
	size_t n = sizeof body - 1;
	for (size_t piece = 0; piece <= n; piece++) {
		buf_t r = BUF_INIT, s = BUF_INIT;
		canon_body(true, body, n, piece, &r);
		canon_body(false, body, n, piece, &s);
		assert_string_equal(buf_cstr(&r), " C\r\nD E\r\n");
		assert_string_equal(buf_cstr(&s), " C \r\nD \t E\r\n");
		buf_free(&r);
		buf_free(&s);
	}
}

static void
test_canon_edges(void **state)
{
	static const struct {
		const char *in, *simple, *relaxed;
	} cases[] = {
		{"", "\r\n", ""},
		{"\r\n", "\r\n", ""},
		{"\r\n\r\n  \r\n", "\r\n\r\n  \r\n", ""},
		{"abc", "abc\r\n", "abc\r\n"},
		{"abc  ", "abc  \r\n", "abc\r\n"},
		{"a\r\n\r\nb\r\n\r\n", "a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n"},
		{"a\rb\r\n", "a\rb\r\n", "a\rb\r\n"},
		{"a\r", "a\r\r\n", "a\r\r\n"},
		{"\t x\t\r\n", "\t x\t\r\n", " x\r\n"},
		{"x\n\r\n", "x\n\r\n", "x\n\r\n"},
		{"a \r\n \r\n", "a \r\n \r\n", "a\r\n"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = strlen(cases[i].in);
		for (size_t piece = 0; piece <= n; piece++) {
			buf_t r = BUF_INIT, s = BUF_INIT;
			canon_body(true, cases[i].in, n, piece, &r);
			canon_body(false, cases[i].in, n, piece, &s);
			if (strcmp(buf_cstr(&s), cases[i].simple) != 0 || strcmp(buf_cstr(&r), cases[i].relaxed) != 0)
				fail_msg("case %zu piece %zu: simple \"%s\" relaxed \"%s\"", i, piece, buf_cstr(&s),
				    buf_cstr(&r));
			buf_free(&r);
			buf_free(&s);
		}
	}
}

/* two pieces at every split point give the same output as one */
static void
test_canon_split_invariance(void **state)
{
	static const char body[] = "line one  \r\n\r\n\t\r\nx\ry \t z\r\n\r\n\r\n \r\nlast\r";
	size_t n = sizeof body - 1;
	for (int relaxed = 0; relaxed < 2; relaxed++) {
		buf_t whole = BUF_INIT;
		canon_body(relaxed, body, n, 0, &whole);
		for (size_t cut = 0; cut <= n; cut++) {
			buf_t two = BUF_INIT;
			dkim_canon_t c;
			dkim_canon_init(&c, relaxed, to_buf, &two);
			dkim_canon_body(&c, body, cut);
			dkim_canon_body(&c, body + cut, n - cut);
			dkim_canon_end(&c);
			assert_int_equal(two.len, whole.len);
			assert_memory_equal(two.data, whole.data, whole.len);
			buf_free(&two);
		}
		buf_free(&whole);
	}
}

/* ---- tag lists, base64 ---- */

static void
test_tags(void **state)
{
	static const struct {
		const char *in;
		int ok;
		size_t n;
		const char *name0, *val0, *name_last, *val_last;
	} cases[] = {
		{"a=b", 0, 1, "a", "b", "a", "b"},
		{"a=b;", 0, 1, "a", "b", "a", "b"},
		{"  a = b ; c=d e ;  ", 0, 2, "a", "b", "c", "d e"},
		{"v=1;\r\n\ta=rsa-sha256; b=ab\r\n cd", 0, 3, "v", "1", "b", "ab\r\n cd"},
		{"a=", 0, 1, "a", "", "a", ""},
		{"a_1x=y", 0, 1, "a_1x", "y", "a_1x", "y"},
		{"", 0, 0, NULL, NULL, NULL, NULL},
		{"a=b;;c=d", -1, 0, NULL, NULL, NULL, NULL},
		{"a=b;a=c", -1, 0, NULL, NULL, NULL, NULL},
		{"1a=b", -1, 0, NULL, NULL, NULL, NULL},
		{"a b=c", -1, 0, NULL, NULL, NULL, NULL},
		{"ab", -1, 0, NULL, NULL, NULL, NULL},
		{"a=b\x01", -1, 0, NULL, NULL, NULL, NULL},
		{"a=\xc3\xa9", -1, 0, NULL, NULL, NULL, NULL},
		{"=b", -1, 0, NULL, NULL, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		dkim_tag_t t[DKIM_MAX_TAGS];
		size_t n;
		const char *why = NULL;
		int r = dkim_tags_parse(cases[i].in, strlen(cases[i].in), t, DKIM_MAX_TAGS, &n, &why);
		if (r != cases[i].ok)
			fail_msg("case %zu \"%s\": %d (%s)", i, cases[i].in, r, why ? why : "");
		if (r < 0)
			continue;
		assert_int_equal(n, cases[i].n);
		if (!n)
			continue;
		assert_int_equal(t[0].nlen, strlen(cases[i].name0));
		assert_memory_equal(t[0].name, cases[i].name0, t[0].nlen);
		assert_int_equal(t[0].vlen, strlen(cases[i].val0));
		assert_memory_equal(t[0].val, cases[i].val0, t[0].vlen);
		assert_int_equal(t[n - 1].vlen, strlen(cases[i].val_last));
		assert_memory_equal(t[n - 1].val, cases[i].val_last, t[n - 1].vlen);
		assert_memory_equal(t[n - 1].name, cases[i].name_last, t[n - 1].nlen);
	}
	/* more than the array holds */
	char many[1024] = "";
	for (int i = 0; i < 70; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "t%d=1;", i);
	dkim_tag_t t[DKIM_MAX_TAGS];
	size_t n;
	const char *why;
	assert_int_equal(dkim_tags_parse(many, strlen(many), t, DKIM_MAX_TAGS, &n, &why), -1);
}

static void
test_base64(void **state)
{
	static const struct {
		const char *in;
		int ok;
		const char *out;
	} cases[] = {
		{"aGVsbG8=", 0, "hello"}, {"aGVs bG8\r\n =", 0, "hello"}, {"aGVsbA==", 0, "hell"},
		{"aGVsbG8h", 0, "hello!"}, {"", 0, ""}, {"aGVsbG8", -1, NULL}, {"aGV=sbG8", -1, NULL},
		{"aGVsbG8===", -1, NULL}, {"aGVs*G8=", -1, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t o = BUF_INIT;
		int r = dkim_base64_decode(cases[i].in, strlen(cases[i].in), &o);
		assert_int_equal(r, cases[i].ok);
		if (r == 0)
			assert_string_equal(buf_cstr(&o), cases[i].out);
		else
			assert_int_equal(o.len, 0);
		buf_reset(&o);
		if (r == 0) {
			dkim_base64_encode((const unsigned char *)cases[i].out, strlen(cases[i].out), &o);
			buf_t back = BUF_INIT;
			assert_int_equal(dkim_base64_decode(o.data ? o.data : "", o.len, &back), 0);
			assert_string_equal(buf_cstr(&back), cases[i].out);
			buf_free(&back);
		}
		buf_free(&o);
	}
}

static void
test_sig_parse(void **state)
{
	static const struct {
		const char *in;
		enum dkim_result r;
		const char *why;
	} cases[] = {
		{"v=1; a=rsa-sha1; d=x.example; s=s; h=from; bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==",
		    DKIM_PERMERROR, "rsa-sha1 is not accepted (RFC 8301)"},
		{"v=1; a=rsa-sha256; d=x.example; s=s; h=to; bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==",
		    DKIM_PERMERROR, "h= does not include From"},
		{"v=1; a=rsa-sha256; d=x.example; s=s; h=from; i=a@other.example; "
		    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==", DKIM_PERMERROR, "i= is not within d="},
		{"v=1; a=rsa-sha256; d=x.example; s=s; h=from; i=@notx.example; "
		    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==", DKIM_PERMERROR, "i= is not within d="},
		{"v=1; a=rsa-sha256; d=x.example; s=s; h=from; i=@sub.X.example; "
		    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==", DKIM_PASS, ""},
		{"v=1; a=rsa-sha256; d=x.example; s=s; h=from; t=200; x=100; "
		    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==", DKIM_PERMERROR, "x= is before t="},
		{"v=1; a=rsa-sha256; d=x.example; h=from; bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==",
		    DKIM_PERMERROR, "missing s= tag"},
		{"v=2; a=rsa-sha256; d=x.example; s=s; h=from; bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==",
		    DKIM_PERMERROR, "v= is not 1"},
		{"v=1; a=rsa-sha256; d=x.example; s=s; h=from; c=fancy; "
		    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==", DKIM_PERMERROR,
		    "unknown canonicalization (c=)"},
		{"v=1; a=rsa-sha256; d=x.example; s=s; h=from; q=dns/other; "
		    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==", DKIM_PERMERROR, "q= offers no dns/txt"},
		{"v=1; a=rsa-sha256; d=x.example; s=a.b; h=From : Subject; c=relaxed; l=10; q=dns/txt; "
		    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==", DKIM_PASS, ""},
		{"v=1; a=rsa-sha256; d=x/example; s=s; h=from; bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==",
		    DKIM_PERMERROR, "bad d= domain"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		dkim_sig_t s;
		enum dkim_result r;
		const char *why;
		dkim_sig_parse(cases[i].in, strlen(cases[i].in), &s, &r, &why);
		if (r != cases[i].r || strcmp(why, cases[i].why) != 0)
			fail_msg("case %zu: %s (%s)", i, dkim_result_str(r), why);
		if (i == 10) {
			assert_true(s.hrelaxed);
			assert_false(s.brelaxed);
			assert_int_equal(s.nh, 2);
			assert_string_equal(s.h[1], "subject");
			assert_true(s.has_l);
			assert_int_equal(s.l, 10);
		}
		dkim_sig_clear(&s);
	}
}

static void
test_keyrec_parse(void **state)
{
	static const struct {
		const char *in;
		int ok;
		bool rsa, revoked, testing, strict;
	} cases[] = {
		{"v=DKIM1; k=rsa; p=YWJj", 0, true, false, false, false},
		{"p=YWJj", 0, true, false, false, false},
		{"k=ed25519; p=YWJj; t=y:s", 0, false, false, true, true},
		{"v=DKIM1; p=", 0, true, true, false, false},
		{"k=rsa; v=DKIM1; p=YWJj", -1, 0, 0, 0, 0},
		{"v=DKIM2; p=YWJj", -1, 0, 0, 0, 0},
		{"k=dsa; p=YWJj", -1, 0, 0, 0, 0},
		{"h=sha1; p=YWJj", -1, 0, 0, 0, 0},
		{"h=sha1:sha256; p=YWJj", 0, true, false, false, false},
		{"s=tlsrpt; p=YWJj", -1, 0, 0, 0, 0},
		{"s=email; p=YWJj", 0, true, false, false, false},
		{"s=*; p=YWJj", 0, true, false, false, false},
		{"v=DKIM1; k=rsa", -1, 0, 0, 0, 0},
		{"p=YWJj!", -1, 0, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		dkim_keyrec_t k;
		const char *why;
		int r = dkim_keyrec_parse(cases[i].in, strlen(cases[i].in), &k, &why);
		if (r != cases[i].ok)
			fail_msg("case %zu \"%s\": %d %s", i, cases[i].in, r, why);
		if (r == 0) {
			assert_int_equal(k.rsa, cases[i].rsa);
			assert_int_equal(k.revoked, cases[i].revoked);
			assert_int_equal(k.testing, cases[i].testing);
			assert_int_equal(k.strict, cases[i].strict);
		}
		dkim_keyrec_clear(&k);
	}
}

/* ---- RFC 8463 appendix A ---- */

static const char rfc8463_msg[] =
    "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    " subject : date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
    " date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
    " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
    " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n"
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    "\r\n"
    "Hi.\r\n"
    "\r\n"
    "We lost the game.  Are you hungry yet?\r\n"
    "\r\n"
    "Joe.\r\n";

static void
rfc8463_keys(void)
{
	keys_reset();
	key_add("brisbane._domainkey.football.example.com", DNS_OK,
	    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	/* the RFC's four strings, joined */
	key_add("test._domainkey.football.example.com", DNS_OK,
	    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
	    "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
	    "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
	    "Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
}

static void
test_rfc8463(void **state)
{
	rfc8463_keys();
	time_t now = 1528637909 + 60;
	size_t len = sizeof rfc8463_msg - 1;
	static const size_t pieces[] = {0, 1, 2, 3, 7, 64, 1000};
	for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
		got_t g = verify(rfc8463_msg, len, pieces[i], now);
		assert_int_equal(g.n, 2);
		if (g.r[0] != DKIM_PASS || g.r[1] != DKIM_PASS)
			fail_msg("piece %zu: %s (%s), %s (%s)", pieces[i], dkim_result_str(g.r[0]), g.reason[0],
			    dkim_result_str(g.r[1]), g.reason[1]);
	}
	/* a changed body: both fail; a changed Subject: both fail */
	char *m = xstrdup(rfc8463_msg);
	char *p = strstr(m, "hungry");
	p[0] = 'H';
	got_t g = verify(m, len, 0, now);
	assert_int_equal(g.r[0], DKIM_FAIL);
	assert_string_equal(g.reason[0], "body hash mismatch");
	assert_int_equal(g.r[1], DKIM_FAIL);
	p[0] = 'h';
	p = strstr(m, "dinner");
	p[0] = 'D';
	g = verify(m, len, 0, now);
	assert_int_equal(g.r[0], DKIM_FAIL);
	assert_string_equal(g.reason[0], "signature did not verify");
	assert_int_equal(g.r[1], DKIM_FAIL);
	xfree(m);
	/* t=y: still pass, noted; t=s holds (i= is d=) */
	keys_reset();
	key_add("brisbane._domainkey.football.example.com", DNS_OK,
	    "v=DKIM1; k=ed25519; t=y:s; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	key_add("test._domainkey.football.example.com", DNS_TEMPFAIL, NULL);
	g = verify(rfc8463_msg, len, 0, now);
	assert_int_equal(g.r[0], DKIM_PASS);
	assert_true(g.testing[0]);
	assert_int_equal(g.r[1], DKIM_TEMPERROR);
	/* revoked; no key; wrong key type */
	keys_reset();
	key_add("brisbane._domainkey.football.example.com", DNS_OK, "v=DKIM1; k=ed25519; p=");
	key_add("test._domainkey.football.example.com", DNS_OK,
	    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	g = verify(rfc8463_msg, len, 0, now);
	assert_int_equal(g.r[0], DKIM_PERMERROR);
	assert_string_equal(g.reason[0], "key revoked");
	assert_int_equal(g.r[1], DKIM_PERMERROR);
	keys_reset();
	g = verify(rfc8463_msg, len, 0, now);
	assert_int_equal(g.r[0], DKIM_PERMERROR);
	assert_string_equal(g.reason[0], "no key record");
	/* signed in 2018: far in the future of a clock set to 2000 */
	rfc8463_keys();
	g = verify(rfc8463_msg, len, 0, 946684800);
	assert_int_equal(g.r[0], DKIM_NEUTRAL);
	keys_reset();
}

/* ---- dkim_sign round trips and what must not pass ---- */

static const char plain_msg[] =
    "Received: from x by y; Mon, 7 Dec 2026 10:00:00 +0000\r\n"
    "From: Joe <joe@example.com>\r\n"
    "To: Bob <bob@example.org>\r\n"
    "Subject: test   message\r\n"
    "Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "X-Other: not signed\r\n"
    "\r\n"
    "Hello  Bob,\r\n"
    "\r\n"
    "the body.\r\n"
    "\r\n\r\n";

static void
roundtrip(EVP_PKEY *pk)
{
	dkim_key_t *k = key_from(pk);
	char *rec = record_of(k, NULL);
	keys_reset();
	key_add("sel._domainkey.example.com", DNS_OK, rec);
	xfree(rec);
	buf_t out = BUF_INIT, err = BUF_INIT;
	time_t now = 1796000000;
	assert_int_equal(dkim_sign(k, "example.com", "sel", plain_msg, sizeof plain_msg - 1, now, &out, &err),
	    0);
	/* lines of at most 78 columns */
	for (const char *l = out.data; *l;) {
		const char *e = strstr(l, "\r\n");
		assert_non_null(e);
		assert_true(e - l <= 78);
		l = e + 2;
	}
	buf_t flat = BUF_INIT;
	for (size_t i = 0; i < out.len; i++)
		if (out.data[i] != '\r' && out.data[i] != '\n' && out.data[i] != '\t')
			buf_putc(&flat, out.data[i]);
	assert_non_null(strstr(flat.data, "h=From:From:To:To:Subject:Subject:Date:Date:Message-ID:Message-ID;"));
	buf_free(&flat);
	buf_puts(&out, plain_msg);
	got_t g = verify(out.data, out.len, 0, now + 10);
	assert_int_equal(g.n, 1);
	if (g.r[0] != DKIM_PASS)
		fail_msg("%s: %s", dkim_key_type(k), g.reason[0]);
	g = verify(out.data, out.len, 1, now + 10);
	assert_int_equal(g.r[0], DKIM_PASS);
	/* whitespace changes survive relaxed/relaxed */
	char *m = xstrdup(out.data);
	char *p = strstr(m, "Hello  Bob");
	memcpy(p, "Hello \tBob", 10);
	g = verify(m, out.len, 0, now);
	assert_int_equal(g.r[0], DKIM_PASS);
	/* a changed body or header does not */
	p[0] = 'J';
	g = verify(m, out.len, 0, now);
	assert_int_equal(g.r[0], DKIM_FAIL);
	xfree(m);
	m = xstrdup(out.data);
	p = strstr(m, "To: Bob");
	p[4] = 'R';
	g = verify(m, out.len, 0, now);
	assert_int_equal(g.r[0], DKIM_FAIL);
	xfree(m);
	/* an added From or Subject breaks it (over-signed); an added X- does not */
	buf_t more = BUF_INIT;
	buf_append(&more, out.data, out.len);
	char *body = strstr(more.data, "\r\n\r\n");
	size_t at = (size_t)(body - more.data) + 2;
	buf_t m2 = BUF_INIT;
	buf_append(&m2, more.data, at);
	buf_puts(&m2, "From: Eve <eve@evil.example>\r\n");
	buf_append(&m2, more.data + at, more.len - at);
	g = verify(m2.data, m2.len, 0, now);
	assert_int_equal(g.r[0], DKIM_FAIL);
	buf_reset(&m2);
	buf_append(&m2, more.data, at);
	buf_puts(&m2, "X-Added: fine\r\n");
	buf_append(&m2, more.data + at, more.len - at);
	g = verify(m2.data, m2.len, 0, now);
	assert_int_equal(g.r[0], DKIM_PASS);
	buf_free(&m2);
	buf_free(&more);
	buf_free(&out);
	buf_free(&err);
	dkim_key_free(k);
	keys_reset();
}

static void
test_sign_roundtrip(void **state)
{
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	assert_non_null(ed);
	assert_non_null(rsa);
	roundtrip(ed);
	roundtrip(rsa);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(rsa);
}

static void
test_sign_refuses(void **state)
{
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	dkim_key_t *k = key_from(ed);
	buf_t out = BUF_INIT, err = BUF_INIT;
	static const char nofrom[] = "To: a@b.example\r\n\r\nbody\r\n";
	assert_int_equal(dkim_sign(k, "example.com", "sel", nofrom, sizeof nofrom - 1, 1, &out, &err), -1);
	assert_int_equal(out.len, 0);
	assert_int_equal(dkim_sign(k, "exa mple.com", "sel", plain_msg, sizeof plain_msg - 1, 1, &out, &err),
	    -1);
	buf_free(&out);
	buf_free(&err);
	dkim_key_free(k);
	EVP_PKEY_free(ed);
	/* a 512-bit RSA key is refused at load */
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	char path[] = "/tmp/test_dkim_smallXXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	PEM_write_PrivateKey(f, small, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	buf_t e2 = BUF_INIT;
	assert_null(dkim_key_load(path, &e2));
	assert_non_null(strstr(e2.data, "512 bits"));
	buf_reset(&e2);
	assert_null(dkim_key_load("/nonexistent/key", &e2));
	unlink(path);
	buf_free(&e2);
	EVP_PKEY_free(small);
}

static const char hand_hdrs[] = "From: Joe <joe@example.com>\r\nSubject: hand made\r\n";
static const char hand_body[] = "body line\r\n";

static got_t
hand(EVP_PKEY *pk, const char *alg, const char *extra, time_t now, const char *append)
{
	char *m = hand_signed(pk, alg, extra, hand_hdrs, hand_body, 0);
	buf_t b = BUF_INIT;
	buf_puts(&b, m);
	if (append)
		buf_puts(&b, append);
	got_t g = verify(b.data, b.len, 0, now);
	buf_free(&b);
	xfree(m);
	return g;
}

static void
test_hand_made(void **state)
{
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	dkim_key_t *k = key_from(ed);
	char *rec = record_of(k, NULL);
	char *strict = record_of(k, "t=s; ");
	keys_reset();
	key_add("s._domainkey.example.com", DNS_OK, rec);
	key_add("strict._domainkey.example.com", DNS_OK, strict);
	xfree(rec);
	xfree(strict);
	const char *ed25519 = "ed25519-sha256";
	got_t g = hand(ed, ed25519, "d=example.com; s=s; h=from:subject; t=1000; x=2000;", 1500, NULL);
	assert_int_equal(g.r[0], DKIM_PASS);
	/* expired, with and without the skew */
	g = hand(ed, ed25519, "d=example.com; s=s; h=from:subject; t=1000; x=2000;", 2200, NULL);
	assert_int_equal(g.r[0], DKIM_PASS);
	g = hand(ed, ed25519, "d=example.com; s=s; h=from:subject; t=1000; x=2000;", 2400, NULL);
	assert_int_equal(g.r[0], DKIM_NEUTRAL);
	assert_string_equal(g.reason[0], "signature expired (x=)");
	/* t= in the future */
	g = hand(ed, ed25519, "d=example.com; s=s; h=from:subject; t=5000;", 4800, NULL);
	assert_int_equal(g.r[0], DKIM_PASS);
	g = hand(ed, ed25519, "d=example.com; s=s; h=from:subject; t=5000;", 4000, NULL);
	assert_int_equal(g.r[0], DKIM_NEUTRAL);
	/* x= before t= */
	g = hand(ed, ed25519, "d=example.com; s=s; h=from:subject; t=5000; x=4000;", 4500, NULL);
	assert_int_equal(g.r[0], DKIM_PERMERROR);
	/* i= in a subdomain: fine, but not with t=s */
	g = hand(ed, ed25519, "d=example.com; s=s; i=joe@mail.example.com; h=from:subject;", 1, NULL);
	assert_int_equal(g.r[0], DKIM_PASS);
	g = hand(ed, ed25519, "d=example.com; s=strict; i=joe@mail.example.com; h=from:subject;", 1, NULL);
	assert_int_equal(g.r[0], DKIM_PERMERROR);
	g = hand(ed, ed25519, "d=example.com; s=strict; i=joe@example.com; h=from:subject;", 1, NULL);
	assert_int_equal(g.r[0], DKIM_PASS);
	/* over-signing by hand: h= lists From twice, one From present */
	g = hand(ed, ed25519, "d=example.com; s=s; h=from:from:subject:subject:cc;", 1, NULL);
	assert_int_equal(g.r[0], DKIM_PASS);
	/* l=: content appended after signing still passes; without l= it fails */
	char *m = hand_signed(ed, ed25519, "d=example.com; s=s; h=from:subject; l=11;", hand_hdrs, hand_body, 11);
	buf_t b = BUF_INIT;
	buf_puts(&b, m);
	buf_puts(&b, "appended by a list\r\n");
	g = verify(b.data, b.len, 3, 1);
	assert_int_equal(g.r[0], DKIM_PASS);
	xfree(m);
	buf_free(&b);
	g = hand(ed, ed25519, "d=example.com; s=s; h=from:subject;", 1, "appended\r\n");
	assert_int_equal(g.r[0], DKIM_FAIL);
	/* l= longer than the body */
	m = hand_signed(ed, ed25519, "d=example.com; s=s; h=from:subject; l=500;", hand_hdrs, hand_body, 0);
	g = verify(m, strlen(m), 0, 1);
	assert_int_equal(g.r[0], DKIM_FAIL);
	xfree(m);
	dkim_key_free(k);
	EVP_PKEY_free(ed);

	/* a 512-bit RSA key record; rsa-sha1 */
	EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	keys_reset();
	char *r1 = record_of_pkey(small);
	key_add("small._domainkey.example.com", DNS_OK, r1);
	xfree(r1);
	g = hand(small, "rsa-sha256", "d=example.com; s=small; h=from:subject;", 1, NULL);
	assert_int_equal(g.r[0], DKIM_PERMERROR);
	assert_string_equal(g.reason[0], "RSA key under 1024 bits (RFC 8301)");
	g = hand(small, "rsa-sha1", "d=example.com; s=small; h=from:subject;", 1, NULL);
	assert_int_equal(g.r[0], DKIM_PERMERROR);
	EVP_PKEY_free(small);
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	keys_reset();
	char *r2 = record_of_pkey(rsa);
	key_add("r._domainkey.example.com", DNS_OK, r2);
	xfree(r2);
	g = hand(rsa, "rsa-sha256", "d=example.com; s=r; h=from:subject;", 1, NULL);
	assert_int_equal(g.r[0], DKIM_PASS);
	EVP_PKEY_free(rsa);
	keys_reset();
}

static void
test_limits(void **state)
{
	keys_reset();
	/* no signature */
	got_t g = verify(plain_msg, sizeof plain_msg - 1, 5, 1);
	assert_int_equal(g.n, 0);
	/* no body at all, no empty line */
	static const char hdronly[] = "DKIM-Signature: v=1; a=rsa-sha256; d=a.example; s=s; h=from; "
	    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==\r\nFrom: a@a.example\r\n";
	g = verify(hdronly, sizeof hdronly - 1, 0, 1);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.r[0], DKIM_FAIL);
	/* seven signatures: five checked */
	buf_t b = BUF_INIT;
	for (int i = 0; i < 7; i++)
		buf_puts(&b, "DKIM-Signature: v=1\r\n");
	buf_puts(&b, "From: a@a.example\r\n\r\nbody\r\n");
	g = verify(b.data, b.len, 0, 1);
	assert_int_equal(g.n, 5);
	assert_int_equal(g.r[4], DKIM_PERMERROR);
	/* a header section over 256 KiB */
	buf_reset(&b);
	buf_puts(&b, "DKIM-Signature: v=1\r\n");
	for (int i = 0; i < 30000; i++)
		buf_puts(&b, "X-Filler: 0123456789\r\n");
	buf_puts(&b, "\r\nbody\r\n");
	g = verify(b.data, b.len, 1000, 1);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.r[0], DKIM_PERMERROR);
	buf_free(&b);
}

/* dkim_verify_finish with a resolver: the callback comes from the loop */
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
	/* no signature: no query, still later */
	dkim_verify_t *v = dkim_verify_new(NULL);
	dkim_verify_feed(v, plain_msg, sizeof plain_msg - 1);
	got_t g;
	memset(&g, 0, sizeof g);
	dkim_verify_finish(v, dns, on_result, &g);
	assert_int_equal(g.calls, 0);
	while (g.calls == 0)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(g.n, 0);
	dkim_verify_free(v);
	/* a key nobody answers for: temperror after the timeout */
	dkim_verify_opts_t vo;
	memset(&vo, 0, sizeof vo);
	vo.timeout_ms = 200;
	vo.now = 1528637909;
	v = dkim_verify_new(&vo);
	dkim_verify_feed(v, rfc8463_msg, sizeof rfc8463_msg - 1);
	memset(&g, 0, sizeof g);
	dkim_verify_finish(v, dns, on_result, &g);
	assert_int_equal(g.calls, 0);
	while (g.calls == 0)
		uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.r[0], DKIM_TEMPERROR);
	dkim_verify_free(v);
	/* freed before the answer: no callback */
	v = dkim_verify_new(&vo);
	dkim_verify_feed(v, rfc8463_msg, sizeof rfc8463_msg - 1);
	memset(&g, 0, sizeof g);
	dkim_verify_finish(v, dns, on_result, &g);
	dkim_verify_free(v);
	dkim_verify_free(NULL);
	dns_free(dns);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g.calls, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	buf_free(&err);
}

/* ---- the public-key checks on the thread pool (dkim_vbatch_run) ---- */

typedef struct vb_got {
	int calls;
	enum dkim_result r[4];
	size_t n;
} vb_got_t;

static void
on_vbatch(void *arg, const dkim_vitem_t *items, size_t n)
{
	vb_got_t *g = arg;
	g->calls++;
	g->n = n;
	for (size_t i = 0; i < n && i < 4; i++)
		g->r[i] = items[i].r;
}

/* n items over "data 0", "data 1", ... signed by ed (Ed25519, RFC 8463:
 * over the SHA-256 hash); item bad's data changed after signing */
static dkim_vitem_t *
vb_items(EVP_PKEY *ed, size_t n, size_t bad)
{
	dkim_vitem_t *it = xcalloc(n, sizeof *it);
	unsigned char pub[32];
	size_t pl = sizeof pub;
	assert_int_equal(EVP_PKEY_get_raw_public_key(ed, pub, &pl), 1);
	for (size_t i = 0; i < n; i++) {
		it[i].k.rsa = false;
		buf_append(&it[i].k.p, pub, pl);
		it[i].alg = DKIM_ALG_ED25519_SHA256;
		buf_printf(&it[i].data, "data %zu", i);
		unsigned char h[32], sig[64];
		unsigned hl = 0;
		size_t sl = sizeof sig;
		EVP_Digest(it[i].data.data, it[i].data.len, h, &hl, EVP_sha256(), NULL);
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, ed), 1);
		assert_int_equal(EVP_DigestSign(md, sig, &sl, h, 32), 1);
		EVP_MD_CTX_free(md);
		buf_append(&it[i].sig, sig, sl);
		if (i == bad)
			buf_puts(&it[i].data, "!");
	}
	return it;
}

static void
test_vbatch(void **state)
{
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	assert_non_null(ed);
	uv_loop_t loop;
	uv_loop_init(&loop);
	/* every item checked, results in order; the callback from the loop */
	vb_got_t g;
	memset(&g, 0, sizeof g);
	dkim_vbatch_run(&loop, vb_items(ed, 3, 1), 3, 0, on_vbatch, &g);
	assert_int_equal(g.calls, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.r[0], DKIM_PASS);
	assert_int_equal(g.r[1], DKIM_FAIL);
	assert_int_equal(g.r[2], DKIM_PASS);
	/* nstop (ARC's chain): what follows a failure among the first nstop is
	 * not run */
	memset(&g, 0, sizeof g);
	dkim_vbatch_run(&loop, vb_items(ed, 3, 1), 3, 2, on_vbatch, &g);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.r[0], DKIM_PASS);
	assert_int_equal(g.r[1], DKIM_FAIL);
	assert_int_equal(g.r[2], DKIM_NONE);
	/* a failure past nstop does not stop the rest */
	memset(&g, 0, sizeof g);
	dkim_vbatch_run(&loop, vb_items(ed, 3, 1), 3, 1, on_vbatch, &g);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g.r[1], DKIM_FAIL);
	assert_int_equal(g.r[2], DKIM_PASS);
	/* the same as the synchronous checks */
	dkim_vitem_t *it = vb_items(ed, 3, 2);
	dkim_vitems_verify(it, 3, 0);
	assert_int_equal(it[0].r, DKIM_PASS);
	assert_int_equal(it[2].r, DKIM_FAIL);
	dkim_vitems_free(it, 3);
	/* cancelled: no callback, and the batch frees itself */
	memset(&g, 0, sizeof g);
	dkim_vbatch_cancel(dkim_vbatch_run(&loop, vb_items(ed, 2, 9), 2, 0, on_vbatch, &g));
	dkim_vbatch_cancel(NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(g.calls, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	EVP_PKEY_free(ed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vbatch),
		cmocka_unit_test(test_canon_rfc6376_example),
		cmocka_unit_test(test_canon_edges),
		cmocka_unit_test(test_canon_split_invariance),
		cmocka_unit_test(test_tags),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_sig_parse),
		cmocka_unit_test(test_keyrec_parse),
		cmocka_unit_test(test_rfc8463),
		cmocka_unit_test(test_sign_roundtrip),
		cmocka_unit_test(test_sign_refuses),
		cmocka_unit_test(test_hand_made),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_async),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
