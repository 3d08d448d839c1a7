/*
 * test_dane.c - the DANE pieces of lib/tls.c without a network: the policy
 * words, which TLSA records SMTP may use (RFC 7672 §3.1.3, RFC 6698 §2.1),
 * and how records reach OpenSSL's DANE API (tls_dane_setup): the usable
 * ones are added, the others are named in the notes, and a session with
 * none usable is left without DANE. The handshakes themselves are in
 * tests/integration/test_dane.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "lib/buf.h"
#include "lib/tls.h"

static const uint8_t d32[32] = {1, 2, 3};
static const uint8_t d64[64] = {4, 5, 6};

static void
test_policy_words(void **state)
{
	(void)state;
	enum tls_policy p;
	assert_int_equal(tls_policy_parse("DANE", &p), 0);
	assert_int_equal(p, TLS_POLICY_DANE);
	assert_int_equal(tls_policy_parse("dane-only", &p), 0);
	assert_int_equal(p, TLS_POLICY_DANE_ONLY);
	assert_string_equal(tls_policy_name(TLS_POLICY_DANE_ONLY), "dane-only");
	assert_true(tls_policy_is_dane(TLS_POLICY_DANE));
	assert_false(tls_policy_is_dane(TLS_POLICY_VERIFY));
	assert_null(tls_policy_check("dane"));
	assert_non_null(tls_policy_check("dane-maybe"));
}

static void
test_unusable(void **state)
{
	(void)state;
	static const struct {
		tls_tlsa_t r;
		bool usable;
	} cases[] = {
		{{3, 1, 1, d32, 32}, true},
		{{2, 0, 1, d32, 32}, true},
		{{3, 0, 2, d64, 64}, true},
		{{2, 1, 0, d32, 32}, true}, /* full data: OpenSSL judges it */
		{{0, 0, 1, d32, 32}, false}, /* PKIX-TA: RFC 7672 §3.1.3 */
		{{1, 1, 1, d32, 32}, false}, /* PKIX-EE */
		{{4, 1, 1, d32, 32}, false}, /* unknown usage */
		{{255, 1, 1, d32, 32}, false},
		{{3, 2, 1, d32, 32}, false}, /* unknown selector */
		{{3, 1, 3, d32, 32}, false}, /* unknown matching type */
		{{3, 1, 1, d32, 31}, false}, /* SHA-256 of 31 octets */
		{{3, 1, 2, d32, 32}, false}, /* SHA-512 of 32 octets */
		{{3, 1, 0, d32, 0}, false},  /* no data */
		{{3, 1, 1, NULL, 0}, false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *why = tls_tlsa_unusable(&cases[i].r);
		if (cases[i].usable)
			assert_null(why);
		else
			assert_non_null(why);
	}
}

static SSL *
new_ssl(SSL_CTX **ctx)
{
	buf_t err = BUF_INIT;
	*ctx = tls_client_ctx_new(NULL, &err);
	assert_non_null(*ctx);
	buf_free(&err);
	SSL *ssl = SSL_new(*ctx);
	assert_non_null(ssl);
	SSL_set_connect_state(ssl);
	return ssl;
}

static void
test_setup(void **state)
{
	(void)state;
	SSL_CTX *ctx;
	SSL *ssl = new_ssl(&ctx);
	const tls_tlsa_t recs[] = {
		{3, 1, 1, d32, 32},
		{1, 1, 1, d32, 32},            /* PKIX-EE: noted, not added */
		{2, 0, 2, d64, 64},
		{3, 0, 0, (const uint8_t *)"not DER", 7}, /* OpenSSL cannot parse it */
	};
	buf_t notes = BUF_INIT;
	const char *names[] = {"example.com", NULL};
	assert_int_equal(tls_dane_setup(ssl, "mx.example.com", names, recs, 4, &notes), 2);
	assert_non_null(strstr(buf_cstr(&notes), "1 1 1: PKIX usage"));
	assert_non_null(strstr(buf_cstr(&notes), "3 0 0: OpenSSL cannot use the data"));
	/* no handshake: no authority */
	assert_null(tls_dane_authority(ssl));
	/* the base domain is the SNI */
	assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "mx.example.com");
	buf_free(&notes);
	SSL_free(ssl);

	/* nothing usable: 0, and DANE stays off for the session */
	ssl = SSL_new(ctx);
	const tls_tlsa_t bad[] = {{0, 0, 1, d32, 32}, {7, 1, 1, d32, 32}};
	assert_int_equal(tls_dane_setup(ssl, "mx.example.com", NULL, bad, 2, &notes), 0);
	assert_non_null(strstr(buf_cstr(&notes), "7 1 1: unknown certificate usage"));
	buf_free(&notes);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_words),
		cmocka_unit_test(test_unusable),
		cmocka_unit_test(test_setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
