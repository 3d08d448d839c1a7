/*
 * test_tls_server.c - the server side of lib/tls.c without a network:
 * tls_server_ctx_new() with several certificates, and in-memory handshakes
 * (memory BIOs) that show which certificate a client gets for its SNI and
 * its signature algorithms: exact names, one-label wildcards, case and a
 * trailing dot, the default for no or an unknown name, RSA beside ECDSA for
 * one name (also for the default), the first of two same-type certificates;
 * the errors (key mismatch, not PEM) and the warnings (expired, a name
 * served twice, a certificate no name chooses), each with its label; and a
 * session that keeps working after its context was released (a reload).
 * The certificates are made here, self-signed. test_sni.py runs the same
 * through the daemon.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/buf.h"
#include "lib/tls.h"

/* a self-signed certificate for names (comma-separated DNS names; NULL:
 * none, cn only), its PEM and its key's, valid from days_from to days_to */
typedef struct pem_pair {
	char *cert, *key;
} pem_pair_t;

static char *
bio_text(BIO *b)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);
	char *s = malloc((size_t)n + 1);
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	BIO_free(b);
	return s;
}

static pem_pair_t
make_pair(const char *alg, const char *cn, const char *names, long days_from, long days_to)
{
	EVP_PKEY *k = strcmp(alg, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
	                                      : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	assert_non_null(k);
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), days_from * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), days_to * 86400);
	X509_set_pubkey(x, k);
	X509_NAME *nm = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, nm);
	if (names) {
		X509V3_CTX v3;
		X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
		X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, names);
		assert_non_null(e);
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(cb, x);
	PEM_write_bio_PrivateKey(kb, k, NULL, NULL, 0, NULL, NULL);
	X509_free(x);
	EVP_PKEY_free(k);
	return (pem_pair_t){bio_text(cb), bio_text(kb)};
}

static void
pair_free(pem_pair_t *p)
{
	free(p->cert);
	free(p->key);
}

static tls_server_cert_t
cert_of(const pem_pair_t *p, const char *label)
{
	return (tls_server_cert_t){{"cert.pem", p->cert, strlen(p->cert)},
	    {"key.pem", p->key, strlen(p->key)}, label, label};
}

/* a handshake in memory; the CN and key type ("RSA"/"EC") of what the
 * server presented, into cn/type */
static void
handshake(SSL_CTX *sctx, const char *sni, const char *sigalgs, int maxv, char *cn, size_t cnlen,
    const char **type)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(cctx);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
	if (maxv)
		SSL_CTX_set_max_proto_version(cctx, maxv);
	if (sigalgs)
		assert_int_equal(SSL_CTX_set1_sigalgs_list(cctx, sigalgs), 1);
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	BIO *c2s = BIO_new(BIO_s_mem()), *s2c = BIO_new(BIO_s_mem());
	BIO_up_ref(c2s);
	BIO_up_ref(s2c);
	SSL_set_bio(c, s2c, c2s); /* the client reads s2c, writes c2s */
	SSL_set_bio(s, c2s, s2c);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	if (sni)
		SSL_set_tlsext_host_name(c, sni);
	int done_c = 0, done_s = 0;
	for (int i = 0; i < 20 && !(done_c && done_s); i++) {
		if (!done_c)
			done_c = SSL_do_handshake(c) == 1;
		if (!done_s)
			done_s = SSL_do_handshake(s) == 1;
	}
	assert_true(done_c && done_s);
	X509 *peer = SSL_get1_peer_certificate(c);
	assert_non_null(peer);
	X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, (int)cnlen);
	*type = EVP_PKEY_get_base_id(X509_get0_pubkey(peer)) == EVP_PKEY_EC ? "EC" : "RSA";
	X509_free(peer);
	SSL_free(c);
	SSL_free(s);
	SSL_CTX_free(cctx);
}

static void
expect(SSL_CTX *ctx, const char *sni, const char *sigalgs, const char *want_cn,
    const char *want_type)
{
	char cn[128] = "";
	const char *type = NULL;
	handshake(ctx, sni, sigalgs, 0, cn, sizeof cn, &type);
	assert_string_equal(cn, want_cn);
	if (want_type)
		assert_string_equal(type, want_type);
}

static pem_pair_t def, def_ec, a_rsa, a_ec, wild, dup, old, nameless;

static int
setup(void **state)
{
	(void)state;
	def = make_pair("RSA", "default.test", "DNS:default.test", 0, 2);
	def_ec = make_pair("EC", "default-ec.test", "DNS:default.test", 0, 2);
	a_rsa = make_pair("RSA", "a.test", "DNS:a.test,DNS:www.a.test", 0, 2);
	a_ec = make_pair("EC", "a-ec.test", "DNS:A.TEST", 0, 2);
	wild = make_pair("RSA", "wild.test", "DNS:*.b.test", 0, 2);
	dup = make_pair("RSA", "dup.test", "DNS:a.test,DNS:dup.test", 0, 2);
	old = make_pair("RSA", "old.test", "DNS:old.test", -10, -1);
	nameless = make_pair("RSA", "not a host name", NULL, 0, 2);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	pem_pair_t *all[] = {&def, &def_ec, &a_rsa, &a_ec, &wild, &dup, &old, &nameless};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
		pair_free(all[i]);
	return 0;
}

static void
test_chosen_by_name(void **state)
{
	(void)state;
	tls_server_cert_t certs[] = {cert_of(&def, "tls_cert"), cert_of(&a_rsa, "l2"),
	    cert_of(&a_ec, "l3"), cert_of(&wild, "l4")};
	buf_t warn = BUF_INIT, err = BUF_INIT;
	SSL_CTX *ctx = tls_server_ctx_new(certs, 4, NULL, NULL, &warn, &err);
	assert_non_null(ctx);
	assert_int_equal(err.len, 0);
	assert_int_equal(warn.len, 0);
	expect(ctx, NULL, NULL, "default.test", "RSA");
	expect(ctx, "unknown.test", NULL, "default.test", "RSA");
	expect(ctx, "www.a.test", NULL, "a.test", "RSA");
	expect(ctx, "WWW.A.Test.", NULL, "a.test", "RSA");
	/* both key types for a.test: the client's signature algorithms choose */
	expect(ctx, "a.test", "ECDSA+SHA256", "a-ec.test", "EC");
	expect(ctx, "a.test", "RSA-PSS+SHA256:RSA+SHA256", "a.test", "RSA");
	/* RFC 6125 section 6.4.3: the wildcard is one whole label */
	expect(ctx, "mx.b.test", NULL, "wild.test", "RSA");
	expect(ctx, "b.test", NULL, "default.test", "RSA");
	expect(ctx, "x.mx.b.test", NULL, "default.test", "RSA");
	expect(ctx, ".b.test", NULL, "default.test", "RSA");
	/* a session keeps its contexts after the server let go of them */
	SSL_CTX_free(ctx);
	buf_free(&warn);
	buf_free(&err);
}

static void
test_default_with_two_key_types(void **state)
{
	(void)state;
	tls_server_cert_t certs[] = {cert_of(&def, "tls_cert"), cert_of(&def_ec, "l2"),
	    cert_of(&a_rsa, "l3")};
	buf_t err = BUF_INIT;
	SSL_CTX *ctx = tls_server_ctx_new(certs, 3, NULL, NULL, NULL, &err);
	assert_non_null(ctx);
	expect(ctx, NULL, "ECDSA+SHA256", "default-ec.test", "EC");
	expect(ctx, NULL, "RSA-PSS+SHA256", "default.test", "RSA");
	expect(ctx, "nowhere.test", "ECDSA+SHA256", "default-ec.test", "EC");
	expect(ctx, "a.test", NULL, "a.test", "RSA");
	SSL_CTX_free(ctx);
	buf_free(&err);
}

static void
test_warnings(void **state)
{
	(void)state;
	/* dup names a.test, already served by the earlier RSA a_rsa: it keeps
	 * dup.test; a certificate without a host name is never chosen; an
	 * expired one is still served */
	tls_server_cert_t certs[] = {cert_of(&def, "tls_cert"), cert_of(&a_rsa, "f:2: tls_certificate"),
	    cert_of(&dup, "f:3: tls_certificate"), cert_of(&old, "f:4: tls_certificate"),
	    cert_of(&nameless, "f:5: tls_certificate")};
	buf_t warn = BUF_INIT, err = BUF_INIT;
	SSL_CTX *ctx = tls_server_ctx_new(certs, 5, NULL, NULL, &warn, &err);
	assert_non_null(ctx);
	const char *w = buf_cstr(&warn);
	assert_non_null(strstr(w, "f:3: tls_certificate cert.pem: a.test is served by an earlier RSA "
	    "certificate (f:2: tls_certificate cert.pem)\n"));
	assert_non_null(strstr(w, "f:4: tls_certificate cert.pem: the certificate expired on "));
	assert_non_null(strstr(w, "f:5: tls_certificate cert.pem: serves no name (no DNS name"));
	size_t lines = 0; /* nothing else, nothing about f:2 */
	for (const char *q = w; *q; q++)
		lines += *q == '\n';
	assert_int_equal(lines, 3);
	expect(ctx, "a.test", NULL, "a.test", "RSA");
	expect(ctx, "dup.test", NULL, "dup.test", "RSA");
	expect(ctx, "old.test", NULL, "old.test", "RSA");
	SSL_CTX_free(ctx);
	buf_free(&warn);
	buf_free(&err);
}

static void
test_errors(void **state)
{
	(void)state;
	buf_t err = BUF_INIT;
	/* a key for another certificate */
	tls_server_cert_t bad = cert_of(&a_rsa, "f:7: tls_certificate");
	bad.key = (tls_pem_t){"other.key", def.key, strlen(def.key)};
	tls_server_cert_t certs[] = {cert_of(&def, "tls_cert"), bad};
	certs[0].key_label = "tls_key";
	assert_null(tls_server_ctx_new(certs, 2, NULL, NULL, NULL, &err));
	assert_string_equal(buf_cstr(&err), "f:7: tls_certificate other.key: the key does not match "
	    "the certificate cert.pem");
	buf_reset(&err);
	/* not PEM */
	certs[1] = cert_of(&a_rsa, "f:8: tls_certificate");
	certs[1].cert = (tls_pem_t){"junk.pem", "junk\n", 5};
	assert_null(tls_server_ctx_new(certs, 2, NULL, NULL, NULL, &err));
	assert_non_null(strstr(buf_cstr(&err), "f:8: tls_certificate junk.pem: cannot load the "
	    "certificate chain"));
	buf_reset(&err);
	/* the default alone, with its own labels */
	certs[0].key = (tls_pem_t){"k.pem", a_rsa.key, strlen(a_rsa.key)};
	assert_null(tls_server_ctx_new(certs, 1, NULL, NULL, NULL, &err));
	assert_string_equal(buf_cstr(&err), "tls_key k.pem: the key does not match the certificate "
	    "cert.pem");
	buf_reset(&err);
	assert_null(tls_server_ctx_new(certs, 0, NULL, NULL, NULL, &err));
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chosen_by_name),
		cmocka_unit_test(test_default_with_two_key_types),
		cmocka_unit_test(test_warnings),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
