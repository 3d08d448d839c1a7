/*
 * dkim.h - MAILAUTH: DomainKeys Identified Mail, RFC 6376, verifying and
 * signing; rsa-sha256 and ed25519-sha256 (RFC 8463); rsa-sha1 and RSA
 * keys under 1024 bits are not valid (RFC 8301).
 *
 * Verifying streams: the message content (header section, empty line,
 * body; CRLF line ends; as stored, i.e. dot-unstuffed) is fed in pieces of
 * any size while DATA arrives; each signature's body hash (simple/relaxed,
 * l=) is computed as the bytes pass, so the message is never read twice.
 * dkim_verify_finish() then looks the keys up (<s>._domainkey.<d> TXT,
 * several strings joined) and checks each signature, up to max_sigs.
 * Signing is one pure call over the complete content, safe on a worker
 * thread (it touches no shared state but the read-only key).
 *
 * Guarantees: a signature is judged by section 6.1 (required tags, i=
 * within d=, h= includes From, x= not past with the clock skew allowed, t=
 * not in the future beyond it, key record tags t=y/t=s, k=, h=, empty p=
 * = revoked); results use RFC 8601 keywords only; the finish callback runs
 * exactly once, on the loop, never from inside the call, unless
 * dkim_verify_free() came first; result strings live during the callback.
 * Must not: block; trust any length in the input.
 */
#ifndef TERN_DKIM_H
#define TERN_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/dns.h"

/* RFC 8601 section 2.7.1 */
enum dkim_result {
	DKIM_NONE,
	DKIM_PASS,
	DKIM_FAIL,
	DKIM_NEUTRAL,
	DKIM_POLICY,
	DKIM_TEMPERROR,
	DKIM_PERMERROR,
};

typedef struct dkim_sig_result {
	enum dkim_result result;
	const char *d;      /* signing domain (lowercase), "" if unparsable */
	const char *i;      /* AUID, "" if none */
	const char *s;      /* selector */
	const char *a;      /* algorithm, e.g. "rsa-sha256" */
	const char *b;      /* the first 8 characters of b= (A-R header.b) */
	const char *reason; /* for the log: "body hash mismatch", "key revoked", ... */
	bool testing;       /* the key record says t=y (the result is still given) */
} dkim_sig_result_t;

typedef struct dkim_verify_opts {
	unsigned max_sigs;     /* signatures checked; 0: 5; the rest are ignored */
	unsigned skew_s;       /* clock skew allowed for t= and x=; 0: 300 */
	time_t now;            /* 0: time(NULL) */
	unsigned timeout_ms;   /* key lookups, together; 0: 10000 */
} dkim_verify_opts_t;

typedef struct dkim_verify dkim_verify_t;
/* n == 0: the message carries no DKIM-Signature (result none). */
typedef void (*dkim_verify_cb)(void *arg, const dkim_sig_result_t *sigs, size_t n);

dkim_verify_t *dkim_verify_new(const dkim_verify_opts_t *o);
void dkim_verify_feed(dkim_verify_t *v, const char *p, size_t n);
/* The content ended: look up keys and verify; cb as above. Once. */
void dkim_verify_finish(dkim_verify_t *v, dns_t *dns, dkim_verify_cb cb, void *arg);
/* Cancels a pending finish. NULL: no-op. */
void dkim_verify_free(dkim_verify_t *v);

/* "none", "pass", "fail", "neutral", "policy", "temperror", "permerror" */
const char *dkim_result_str(enum dkim_result r);

/* A private key (PEM: RSA of at least 1024 bits, or Ed25519). */
typedef struct dkim_key dkim_key_t;
dkim_key_t *dkim_key_load(const char *path, buf_t *err);
void dkim_key_free(dkim_key_t *k);
/* "rsa" or "ed25519" */
const char *dkim_key_type(const dkim_key_t *k);
/* The public key as the p= of a key record (base64 of the DER
 * SubjectPublicKeyInfo for RSA, of the 32 raw octets for Ed25519, RFC
 * 8463 section 4), appended to *b64. 0 or -1. */
int dkim_key_public(const dkim_key_t *k, buf_t *b64);

/* Sign content[0..len) for domain/selector with relaxed/relaxed, h= the
 * fields present among From, To, Cc, Subject, Date, Message-ID, Reply-To,
 * In-Reply-To, References, MIME-Version, Content-Type,
 * Content-Transfer-Encoding, with From/To/Cc/Subject/Date/Message-ID
 * over-signed (listed once more than present); t= now. Appends the folded
 * "DKIM-Signature: ...\r\n" field to *out. 0, or -1 with the reason in *err. */
int dkim_sign(const dkim_key_t *k, const char *domain, const char *selector, const char *content,
    size_t len, time_t now, buf_t *out, buf_t *err);

#endif
