/*
 * arc.h - MAILAUTH: Authenticated Received Chain, RFC 8617: verifying the
 * chain of ARC sets a message arrives with, and sealing it with ours.
 *
 * Verifying streams like dkim.h: the content (header section, empty line,
 * body; CRLF) is fed in pieces of any size; at the empty line the ARC
 * sets are collected (instances 1..N, each exactly one
 * ARC-Authentication-Results, ARC-Message-Signature and ARC-Seal, N <= 50)
 * and the body hash of the newest ARC-Message-Signature is computed as
 * the body passes. arc_verify_finish() looks the keys up and gives the
 * chain's result (section 5.2): none (no ARC set), pass, or fail (a
 * structural error, cv=fail in the newest seal, a cv= out of place, the
 * newest AMS or any seal not verifying, a key that cannot be had).
 *
 * Sealing (section 5.1) adds instance N+1 on top: the AAR carrying our
 * Authentication-Results payload, an AMS over the message (relaxed/relaxed,
 * the header fields dkim_sign signs plus DKIM-Signature), and the AS with
 * cv= from the chain's result, signed over every ARC set (only its own
 * when cv=fail, section 5.1.2). Pure: safe on a worker thread.
 *
 * Guarantees: the finish callback runs exactly once, on the loop, never
 * from inside the call, unless arc_verify_free() came first; the verdict's
 * strings live during the callback. Must not: block; trust any length.
 */
#ifndef TERN_ARC_H
#define TERN_ARC_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/dns.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_int.h"

#define ARC_MAX_INSTANCES 50

/* RFC 8617 section 4.4 (cv=) and the arc= results of RFC 8601 */
enum arc_result { ARC_NONE, ARC_PASS, ARC_FAIL };

typedef struct arc_verdict {
	enum arc_result result;
	unsigned instances;  /* N, the ARC sets found */
	const char *reason;  /* for the log: "", "ARC-Seal i=2 did not verify", ... */
	const char *ams_d;   /* d= of the newest AMS, "" if none */
	const char *as_d;    /* d= of the newest ARC-Seal, "" if none */
	const char *aar1;    /* the oldest ARC-Authentication-Results' value ("i=1; ..."), */
	size_t aar1_len;     /* unfolded, not NUL-terminated; NULL/0 if none */
	unsigned oldest_pass; /* pass: RFC 8617 section 5.2 step 5's oldest-pass (0: every AMS
			       * verified; else the oldest instance of the run of AMSs from N
			       * down that verified); 0 otherwise */
} arc_verdict_t;

typedef struct arc_verify arc_verify_t;
typedef void (*arc_verify_cb)(void *arg, const arc_verdict_t *v);

/* o: the timeout for the key lookups (the rest is ignored); NULL: defaults */
arc_verify_t *arc_verify_new(const dkim_verify_opts_t *o);
void arc_verify_feed(arc_verify_t *v, const char *p, size_t n);
void arc_verify_finish(arc_verify_t *v, dns_t *dns, arc_verify_cb cb, void *arg);
/* the same with keys from lookup (tests); cb runs before it returns */
void arc_verify_finish_sync(arc_verify_t *v, dkim_key_lookup_fn lookup, void *larg,
    arc_verify_cb cb, void *arg);
/* Cancels a pending finish. NULL: no-op. */
void arc_verify_free(arc_verify_t *v);

/* Does an ARC-Authentication-Results value (p, n: "i=1; authserv-id;
 * method=result ...") say the message authenticated where it was first
 * sealed? dmarc=pass when a dmarc result is there (any other dmarc result
 * is no), else spf=pass or dkim=pass. Comments are skipped. */
bool arc_aar_passed(const char *p, size_t n);

/* Is d one of list[0..n) or a subdomain of one (ignoring case)? */
bool arc_domain_listed(const char *d, char *const *list, size_t n);

/* "none", "pass", "fail" */
const char *arc_result_str(enum arc_result r);

/* The ARC set for content[0..len), instance N+1, appended to *out as
 * "ARC-Seal: ...\r\nARC-Message-Signature: ...\r\nARC-Authentication-Results:
 * i=N+1; <authres>\r\n" (to put on top). authres: our Authentication-Results
 * value, "authserv-id; method=result ..." (folded or not). chain: the
 * result arc_verify gave for this content (ignored when it has no ARC
 * set). 0, or -1 with the reason in *err (a chain at its 50th instance,
 * ARC sets present but chain NONE, no From field). */
int arc_seal(const dkim_key_t *k, const char *domain, const char *selector, const char *authres,
    enum arc_result chain, const char *content, size_t len, time_t now, buf_t *out, buf_t *err);

#endif
