/*
 * tls.h - OpenSSL contexts for the server side (STARTTLS, implicit TLS)
 * and the client side (outbound STARTTLS), and the outbound TLS policy
 * words. The TLS records themselves are handled in conn.c.
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

/* A server context with the certificate chain (PEM, leaf first) and the
 * key (PEM; it may be the same file as the chain). An encrypted key is
 * refused, never prompted for. NULL with *err set. */
SSL_CTX *tls_server_ctx_new(const tls_pem_t *cert, const tls_pem_t *key, const char *protocols,
    const char *ciphers, buf_t *err);

/* A client context; certificates are checked against ca_file (NULL: the
 * system store, /etc/ssl/certs), but a failed check does not stop the
 * handshake: the policy decides afterwards (conn_tls_verify()). */
SSL_CTX *tls_client_ctx_new(const char *ca_file, buf_t *err);

/* Outbound policy, per destination (RFC 3207 and RFC 7435 opportunistic
 * security): NONE never STARTTLS; MAY use it when offered (fall back to
 * clear text when the handshake fails); ENCRYPT require it, any
 * certificate; VERIFY require it with a certificate that chains to a
 * trusted CA and names the server host. */
enum tls_policy {
	TLS_POLICY_MAY = 0,
	TLS_POLICY_NONE,
	TLS_POLICY_ENCRYPT,
	TLS_POLICY_VERIFY,
};

/* "none" "may" "encrypt" "verify" (case-insensitive); 0 or -1 */
int tls_policy_parse(const char *s, enum tls_policy *out);
const char *tls_policy_name(enum tls_policy p);
/* for the configuration checker: NULL when s is a policy word */
const char *tls_policy_check(const char *s);

#endif
