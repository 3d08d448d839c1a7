/*
 * tls.h - OpenSSL contexts for the server side (STARTTLS, implicit TLS;
 * certificates chosen by the client's SNI) and the client side (outbound STARTTLS), the outbound TLS policy
 * words, and DANE's TLSA records handed to OpenSSL's DANE API. The TLS records themselves are handled in conn.c.
 *
 * Defaults are modern: TLS 1.2 and 1.3 only, forward-secret AEAD ciphers
 * for TLS 1.2 (TLS 1.3's suites are all strong), no compression, no
 * renegotiation, no session cache or tickets (SMTP sessions are rarely
 * resumed and every cached session is memory). Contexts are reference
 * counted by OpenSSL: replacing one (SIGHUP) never disturbs the sessions
 * that still use the old one.
 * Must not: block on the network (the client side reads CA files: call it
 * at start-up or on reload only).
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* the built-in TLS 1.2 cipher list (tls_ciphers overrides it) */
#define TLS_DEFAULT_CIPHERS \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:" \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

/*
 * A protocol range: ">=TLSv1.2" (the default), ">=TLSv1.3", "TLSv1.2",
 * "TLSv1.3", or "TLSv1.2-TLSv1.3". Versions below TLS 1.2 are refused.
 * Sets *min and *max to OpenSSL's version constants (0 = no upper bound).
 * Returns NULL, or why the text is not one.
 */
const char *tls_parse_protocols(const char *spec, int *min, int *max);

/* A PEM file already read into memory (the daemon reads certificates and
 * keys through its privileged parent, daemon/privsep.h); path is for
 * messages only. */
typedef struct tls_pem {
	const char *path;
	const char *data;
	size_t len;
} tls_pem_t;

/* One certificate of the server: its chain (PEM, leaf first) and its key
 * (PEM; it may be the same text as the chain). The labels start every
 * message about it: "tls_cert" and "tls_key" for the default one, e.g.
 * "/etc/tern/tern.conf:12: tls_certificate" for the others. */
typedef struct tls_server_cert {
	tls_pem_t cert, key;
	const char *cert_label, *key_label;
} tls_server_cert_t;

/*
 * A server context for certs[0..n) (n >= 1), chosen by the client's SNI
 * (RFC 6066 section 3): each certificate serves the DNS names of its
 * subjectAltName (its subject CN when it has none), a wildcard
 * "*.example.com" serving exactly one label more (RFC 6125 section 6.4.3).
 * A name with certificates of several key types (RSA, ECDSA, Ed25519) gets
 * them all in one context, and OpenSSL picks by the signature algorithms
 * the client offers; among certificates of the same key type for the same
 * name the first listed serves it. A client that sends no name, or one no
 * certificate has, gets certs[0] (with the certificates of other key types
 * that serve its first name). An encrypted key is refused, never prompted
 * for. The returned context owns the others (freed with it, so a session
 * that still uses an old context after a reload keeps everything it needs).
 * NULL with *err set (one line). Lines appended to *warn (may be NULL), one
 * a problem, label first: a certificate expired or not yet valid, one
 * that serves no name, one whose name an earlier certificate of the same
 * key type already serves.
 */
SSL_CTX *tls_server_ctx_new(const tls_server_cert_t *certs, size_t n, const char *protocols,
    const char *ciphers, buf_t *warn, buf_t *err);

/* A client context; certificates are checked against ca_file (NULL: the
 * system store, /etc/ssl/certs), but a failed check does not stop the
 * handshake: the policy decides afterwards (conn_tls_verify()). */
SSL_CTX *tls_client_ctx_new(const char *ca_file, buf_t *err);

/* Outbound policy, per destination (RFC 3207 and RFC 7435 opportunistic
 * security): NONE never STARTTLS; MAY use it when offered (fall back to
 * clear text when the handshake fails); ENCRYPT require it, any
 * certificate; VERIFY require it with a certificate that chains to a
 * trusted CA and names the server host; DANE (RFC 7672) authenticate by
 * the host's DNSSEC-signed TLSA records where it publishes them (TLS then
 * mandatory), MAY elsewhere; DANE_ONLY the same, but a host without
 * usable signed TLSA records is not used at all. */
enum tls_policy {
	TLS_POLICY_MAY = 0,
	TLS_POLICY_NONE,
	TLS_POLICY_ENCRYPT,
	TLS_POLICY_VERIFY,
	TLS_POLICY_DANE,
	TLS_POLICY_DANE_ONLY,
	/* MTA-STS (RFC 8461) where the recipient domain publishes a policy,
	 * MAY elsewhere (deliver/mtasts_fetch.h); for MX delivery only */
	TLS_POLICY_STS,
};

/* "none" "may" "encrypt" "verify" "dane" "dane-only" "sts" (case-insensitive);
 * 0 or -1 */
int tls_policy_parse(const char *s, enum tls_policy *out);
const char *tls_policy_name(enum tls_policy p);
/* for the configuration checker: NULL when s is a policy word */
const char *tls_policy_check(const char *s);
/* DANE or DANE_ONLY */
bool tls_policy_is_dane(enum tls_policy p);

/*
 * DANE (RFC 6698, RFC 7671, RFC 7672): one TLSA record as DNS gives it
 * (RFC 6698 §2.1: certificate usage, selector, matching type, data).
 */
typedef struct tls_tlsa {
	uint8_t usage, selector, mtype;
	const uint8_t *data;
	size_t len;
} tls_tlsa_t;

#define TLSA_USAGE_PKIX_TA 0
#define TLSA_USAGE_PKIX_EE 1
#define TLSA_USAGE_DANE_TA 2
#define TLSA_USAGE_DANE_EE 3

/* NULL when the record may authenticate an SMTP server, else why not:
 * PKIX-TA/PKIX-EE usages (RFC 7672 §3.1.3), unknown usage, selector or
 * matching type, a digest of the wrong length, empty data. */
const char *tls_tlsa_unusable(const tls_tlsa_t *r);

/*
 * Turn DANE on for ssl (made from a context of tls_client_ctx_new(), before
 * its handshake): base is the TLSA base domain (the MX host name), the
 * first reference identifier and the SNI; names (NULL-terminated, may be
 * NULL) are further reference identifiers for DANE-TA (RFC 7672 §3.2.2:
 * the next-hop domain). DANE-EE ignores names and validity dates (RFC 7672
 * §3.1.1). Every usable record of r[0..n) is added; each unusable one
 * appends "usage selector mtype: why; " to *notes. Returns how many were
 * added (0: none usable, and ssl is left without DANE), -1 when OpenSSL
 * fails (reason in *notes).
 */
int tls_dane_setup(SSL *ssl, const char *base, const char *const *names, const tls_tlsa_t *r,
    size_t n, buf_t *notes);

/* After a handshake with DANE on: "dane-ee" or "dane-ta" when a TLSA
 * record authenticated the peer (and the chain verified), else NULL. */
const char *tls_dane_authority(SSL *ssl);

#endif
