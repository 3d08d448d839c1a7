/*
 * tls.c - server and client SSL_CTX construction, the policy words, and
 * TLSA records handed to OpenSSL's DANE API (see tls.h and docs/tls.md).
 *
 * Guarantees: a returned context is complete (certificate and key match,
 * protocol range and ciphers set) or none is returned and *err says what
 * is wrong, with OpenSSL's reason. OpenSSL's error queue is left empty.
 * Must not: log (the caller decides), or be called on the loop for
 * anything but start-up and reload.
 */
#include "lib/tls.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* append OpenSSL's reason for the last failure, and clear its queue */
static void
ssl_reason(buf_t *err)
{
	unsigned long e = ERR_get_error();
	if (e) {
		char es[200];
		ERR_error_string_n(e, es, sizeof es);
		buf_printf(err, ": %s", es);
	}
	ERR_clear_error();
}

static int
version_of(const char *s, size_t n)
{
	if (n == 7 && strncasecmp(s, "TLSv1.2", 7) == 0)
		return TLS1_2_VERSION;
	if (n == 7 && strncasecmp(s, "TLSv1.3", 7) == 0)
		return TLS1_3_VERSION;
	return 0;
}

const char *
tls_parse_protocols(const char *spec, int *min, int *max)
{
	const char *why = "expected >=TLSv1.2, >=TLSv1.3, TLSv1.2, TLSv1.3 or TLSv1.2-TLSv1.3";
	size_t n = strlen(spec);
	int lo, hi;
	if (n >= 2 && spec[0] == '>' && spec[1] == '=') {
		lo = version_of(spec + 2, n - 2);
		hi = 0;
		if (!lo && (strncasecmp(spec + 2, "TLSv1", 5) == 0 || strncasecmp(spec + 2, "SSL", 3) == 0))
			return "versions before TLSv1.2 are not supported (RFC 8996)";
		if (!lo)
			return why;
	} else {
		const char *dash = strchr(spec, '-');
		if (dash) {
			lo = version_of(spec, (size_t)(dash - spec));
			hi = version_of(dash + 1, strlen(dash + 1));
			if (!lo || !hi || hi < lo)
				return why;
		} else {
			lo = hi = version_of(spec, n);
			if (!lo) {
				if (strncasecmp(spec, "TLSv1", 5) == 0 || strncasecmp(spec, "SSL", 3) == 0)
					return "versions before TLSv1.2 are not supported (RFC 8996)";
				return why;
			}
		}
	}
	*min = lo;
	*max = hi;
	return NULL;
}

/* never ask a terminal for a passphrase: an encrypted key is an error */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* the leaf, then every further certificate of the PEM text as the chain */
static int
use_chain(SSL_CTX *ctx, const tls_pem_t *cert)
{
	BIO *b = BIO_new_mem_buf(cert->data, (int)cert->len);
	if (!b)
		return -1;
	int r = -1;
	X509 *x = PEM_read_bio_X509_AUX(b, NULL, no_passphrase, NULL);
	if (x && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_clear_chain_certs(ctx) == 1) {
		X509 *ca;
		r = 0;
		while ((ca = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL) {
			if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
				X509_free(ca);
				r = -1;
				break;
			}
		}
		/* the end of the text shows as "no start line": not an error */
		unsigned long e = ERR_peek_last_error();
		if (r == 0 && e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
			r = -1;
		else if (r == 0)
			ERR_clear_error();
	}
	X509_free(x);
	BIO_free(b);
	return r;
}

static int
use_key(SSL_CTX *ctx, const tls_pem_t *key)
{
	BIO *b = BIO_new_mem_buf(key->data, (int)key->len);
	if (!b)
		return -1;
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
	int r = k && SSL_CTX_use_PrivateKey(ctx, k) == 1 ? 0 : -1;
	EVP_PKEY_free(k);
	BIO_free(b);
	return r;
}

SSL_CTX *
tls_server_ctx_new(const tls_pem_t *cert, const tls_pem_t *key, const char *protocols,
    const char *ciphers, buf_t *err)
{
	int min, max;
	const char *why = tls_parse_protocols(protocols ? protocols : ">=TLSv1.2", &min, &max);
	if (why) {
		buf_printf(err, "tls_protocols: %s", why);
		return NULL;
	}
	if (cert->len > INT_MAX || key->len > INT_MAX) {
		buf_printf(err, "tls_cert %s: file too large", cert->path);
		return NULL;
	}
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		buf_printf(err, "%s", "cannot create a TLS context");
		ssl_reason(err);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, min);
	SSL_CTX_set_max_proto_version(ctx, max);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_set_cipher_list(ctx, ciphers && ciphers[0] ? ciphers : TLS_DEFAULT_CIPHERS) != 1) {
		buf_printf(err, "tls_ciphers: no usable cipher in \"%s\"", ciphers ? ciphers : "");
		ssl_reason(err);
		goto fail;
	}
	if (use_chain(ctx, cert) < 0) {
		buf_printf(err, "tls_cert %s: cannot load the certificate chain", cert->path);
		ssl_reason(err);
		goto fail;
	}
	const char *kf = key->path;
	if (use_key(ctx, key) < 0) {
		buf_printf(err, "tls_key %s: cannot load the private key", kf);
		ssl_reason(err);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		buf_printf(err, "tls_key %s: the key does not match the certificate", kf);
		ssl_reason(err);
		goto fail;
	}
	ERR_clear_error();
	return ctx;
fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

SSL_CTX *
tls_client_ctx_new(const char *ca_file, buf_t *err)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		buf_printf(err, "%s", "cannot create a TLS context");
		ssl_reason(err);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* the handshake goes on whatever the certificate; the verify result
	 * is read afterwards and the destination's policy decides */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* DANE is turned on per session (tls_dane_setup) for hosts with TLSA
	 * records; DANE-EE(3) matches the key itself, so the certificate's
	 * names do not matter (RFC 7672 §3.1.1; its dates are not checked
	 * by OpenSSL for DANE-EE either) */
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		buf_printf(err, "%s", "cannot enable DANE in the TLS context");
		ssl_reason(err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_dane_set_flags(ctx, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	int ok = ca_file && ca_file[0] ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
	                               : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		buf_printf(err, "CA certificates %s: cannot load", ca_file ? ca_file : "(system store)");
		ssl_reason(err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	ERR_clear_error();
	return ctx;
}

static const char *const policy_names[] = {
	[TLS_POLICY_MAY] = "may",
	[TLS_POLICY_NONE] = "none",
	[TLS_POLICY_ENCRYPT] = "encrypt",
	[TLS_POLICY_VERIFY] = "verify",
	[TLS_POLICY_DANE] = "dane",
	[TLS_POLICY_DANE_ONLY] = "dane-only",
	[TLS_POLICY_STS] = "sts",
};

int
tls_policy_parse(const char *s, enum tls_policy *out)
{
	for (size_t i = 0; i < sizeof policy_names / sizeof policy_names[0]; i++) {
		if (strcasecmp(s, policy_names[i]) == 0) {
			*out = (enum tls_policy)i;
			return 0;
		}
	}
	return -1;
}

const char *
tls_policy_name(enum tls_policy p)
{
	if ((size_t)p < sizeof policy_names / sizeof policy_names[0])
		return policy_names[p];
	return "?";
}

const char *
tls_policy_check(const char *s)
{
	enum tls_policy p;
	return tls_policy_parse(s, &p) == 0 ? NULL
	                                    : "expected none, may, encrypt, verify, dane, dane-only or sts";
}

bool
tls_policy_is_dane(enum tls_policy p)
{
	return p == TLS_POLICY_DANE || p == TLS_POLICY_DANE_ONLY;
}

/* ---- DANE ---- */

const char *
tls_tlsa_unusable(const tls_tlsa_t *r)
{
	/* RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP */
	if (r->usage == TLSA_USAGE_PKIX_TA || r->usage == TLSA_USAGE_PKIX_EE)
		return "PKIX usage, unusable for SMTP (RFC 7672 section 3.1.3)";
	if (r->usage != TLSA_USAGE_DANE_TA && r->usage != TLSA_USAGE_DANE_EE)
		return "unknown certificate usage";
	if (r->selector > 1)
		return "unknown selector";
	/* RFC 6698 §2.1.3: 0 full data, 1 SHA-256, 2 SHA-512 */
	if (r->mtype > 2)
		return "unknown matching type";
	if (r->data == NULL || r->len == 0)
		return "no association data";
	if (r->mtype == 1 && r->len != 32)
		return "SHA-256 digest of the wrong length";
	if (r->mtype == 2 && r->len != 64)
		return "SHA-512 digest of the wrong length";
	return NULL;
}

static void
note_unusable(buf_t *notes, const tls_tlsa_t *r, const char *why)
{
	if (notes && notes->len < 1000)
		buf_printf(notes, "%u %u %u: %s; ", r->usage, r->selector, r->mtype, why);
}

int
tls_dane_setup(SSL *ssl, const char *base, const char *const *names, const tls_tlsa_t *r,
    size_t n, buf_t *notes)
{
	size_t usable = 0;
	for (size_t i = 0; i < n; i++) {
		const char *why = tls_tlsa_unusable(&r[i]);
		if (why)
			note_unusable(notes, &r[i], why);
		else
			usable++;
	}
	if (usable == 0 || base == NULL || base[0] == '\0')
		return 0;
	ERR_clear_error();
	if (SSL_dane_enable(ssl, base) <= 0) {
		buf_puts(notes, "cannot enable DANE");
		ssl_reason(notes);
		return -1;
	}
	/* RFC 7672 §3.2.3: a wildcard only as the whole leftmost label */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	for (const char *const *nm = names; nm && *nm; nm++) {
		if ((*nm)[0] && SSL_add1_host(ssl, *nm) != 1) {
			buf_puts(notes, "cannot add a reference name");
			ssl_reason(notes);
			return -1;
		}
	}
	int added = 0;
	for (size_t i = 0; i < n; i++) {
		if (tls_tlsa_unusable(&r[i]))
			continue;
		int k = SSL_dane_tlsa_add(ssl, r[i].usage, r[i].selector, r[i].mtype, r[i].data, r[i].len);
		if (k > 0) {
			added++;
		} else if (k == 0) {
			/* e.g. full data (matching type 0) that is no certificate or key */
			note_unusable(notes, &r[i], "OpenSSL cannot use the data");
			ERR_clear_error();
		} else {
			buf_puts(notes, "cannot add a TLSA record");
			ssl_reason(notes);
			return -1;
		}
	}
	ERR_clear_error();
	/* none usable after all: the session has DANE on with no record,
	 * which would fail every handshake; the caller decides instead */
	if (added == 0)
		return 0;
	return added;
}

const char *
tls_dane_authority(SSL *ssl)
{
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	if (SSL_get0_dane_authority(ssl, NULL, NULL) < 0)
		return NULL;
	uint8_t usage = 0;
	if (SSL_get0_dane_tlsa(ssl, &usage, NULL, NULL, NULL, NULL) < 0)
		return NULL;
	return usage == TLSA_USAGE_DANE_EE ? "dane-ee" : usage == TLSA_USAGE_DANE_TA ? "dane-ta" : NULL;
}
