/*
 * dns.h - asynchronous DNS lookups (libunbound) driven by the libuv loop.
 *
 * One dns_t per process (or per test) wraps one libunbound context running
 * its resolver in a background thread (ub_ctx_async(ctx, 1)); answers come
 * back through a pipe that a uv_poll_t watches, so callbacks always run on
 * the loop thread and the loop never blocks on the network.
 *
 * Guarantees:
 *  - A callback is called exactly once per query, on the loop thread, never
 *    from inside dns_query() itself (even an immediate error is delivered
 *    on a later loop iteration) - unless the query is cancelled first, in
 *    which case it is never called.
 *  - Every query completes within the configured timeout: when libunbound
 *    has not answered by then, the callback gets DNS_TEMPFAIL and the late
 *    answer, if any, is discarded inside libunbound.
 *  - Records handed to the callback have been bounds-checked by the parsers
 *    below; a malformed record fails the whole answer (DNS_TEMPFAIL): a
 *    broken answer is never partially trusted.
 *  - The answer cache is libunbound's own and honours the records' TTLs.
 *  - Pending queries keep the loop alive (a timer runs while any is
 *    pending); an idle dns_t does not.
 *
 * Must not: be used from another thread than the loop's. A callback may
 * start and cancel other queries and may call dns_free() (destruction is
 * then deferred until the callback returns), but must not cancel its own
 * query. Names are passed as text in A-label form (IDNA is the caller's).
 */
#ifndef TERN_DNS_H
#define TERN_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "lib/buf.h"

/* RR types this module parses (others are delivered raw). */
#define DNS_T_A 1
#define DNS_T_CNAME 5
#define DNS_T_PTR 12
#define DNS_T_MX 15
#define DNS_T_TXT 16
#define DNS_T_AAAA 28
#define DNS_T_TLSA 52

#define DNS_DEFAULT_TIMEOUT_MS 15000

typedef struct dns_options {
	/* NULL-terminated list of "IP" or "IP@PORT" forwarders (ub_ctx_set_fwd);
	 * NULL or empty: the nameservers of resolv_conf. */
	const char *const *servers;
	/* NULL: /etc/resolv.conf */
	const char *resolv_conf;
	/* per query, in milliseconds; 0: DNS_DEFAULT_TIMEOUT_MS */
	unsigned timeout_ms;
	/* DNSSEC trust anchors (DS or DNSKEY records in zone-file format, e.g.
	 * /usr/share/dns/root.key); NULL: no validation, nothing is "secure" */
	const char *trust_anchor_file;
} dns_options_t;

enum dns_status {
	DNS_OK = 0,   /* the name has records of the type asked (n >= 1) */
	DNS_NXDOMAIN, /* the name does not exist (also: a syntactically invalid name) */
	DNS_NODATA,   /* the name exists, but has no records of this type */
	DNS_TEMPFAIL, /* SERVFAIL, REFUSED, timeout, network error, malformed answer */
	DNS_BOGUS,    /* DNSSEC validation failed: the answer must not be used */
};

typedef struct dns_rr {
	const uint8_t *rdata; /* raw wire rdata, valid during the callback only */
	size_t rdlen;
	union {
		struct {
			uint16_t pref;
			/* presentation form without the trailing dot ("." for the
			 * root, RFC 7505 null MX); bytes other than letters, digits,
			 * '-', '_' and '*' are escaped as \. \\ or \DDD */
			char *exchange;
		} mx;
		struct {
			/* the target name, in the same presentation form as
			 * u.mx.exchange (RFC 1035 §3.3.12) */
			char *name;
		} ptr;
		struct {
			struct sockaddr_storage sa; /* AF_INET or AF_INET6, port 0 */
			socklen_t salen;
			char text[INET6_ADDRSTRLEN];
		} addr; /* DNS_T_A and DNS_T_AAAA */
		struct {
			uint8_t usage, selector, mtype; /* RFC 6698 §2.1 */
			const uint8_t *data; /* points into rdata */
			size_t len;
		} tlsa;
	} u;
} dns_rr_t;

typedef struct dns_result {
	enum dns_status status;
	const char *qname; /* as asked */
	int rrtype;
	bool secure;  /* DNSSEC-validated (data or proven non-existence) */
	uint32_t ttl; /* seconds; 0 when unknown (errors) */
	const char *canonname; /* the final CNAME target, or NULL */
	/* non-OK: a short human-readable reason ("timeout", "SERVFAIL", the
	 * validator's why_bogus ...), never NULL; OK: "" */
	const char *why;
	dns_rr_t *rr; /* n parsed records, in answer order */
	size_t n;
} dns_result_t;

typedef struct dns dns_t;
typedef struct dns_query dns_query_t;

/* The result (and everything it points to) is valid during the call only. */
typedef void (*dns_cb)(void *arg, const dns_result_t *r);

/* NULL on error with a message in *err (bad server address, unreadable
 * trust anchor file ...). */
dns_t *dns_new(uv_loop_t *loop, const dns_options_t *o, buf_t *err);
/* Pending queries are dropped without callbacks. The memory is released
 * once the loop has run the handles' close callbacks. NULL is a no-op. */
void dns_free(dns_t *dns);
uv_loop_t *dns_loop(const dns_t *dns);

/* Start a lookup (class IN). Never NULL. The handle is valid until the
 * callback has been called or dns_cancel() has been called. */
dns_query_t *dns_query(dns_t *dns, const char *name, int rrtype, dns_cb cb, void *arg);
/* The callback will never be called. Safe whatever state the answer is in
 * (in flight, queued in the pipe, timed out inside libunbound). NULL: no-op. */
void dns_cancel(dns_query_t *q);

const char *dns_status_str(enum dns_status s);

/*
 * Parsers for libunbound's rdata (uncompressed wire format), exported for
 * tests and the fuzz target. Every length is checked; nothing is trusted.
 */

/* A domain name in uncompressed wire form at p[0..n): appends its
 * presentation form to *out (see dns_rr_t.u.mx.exchange) and sets *used to
 * its wire length. -1 on truncation, a compression pointer or extended label
 * type, a label over 63 octets or a name over 255 octets. */
int dns_name_to_text(const uint8_t *p, size_t n, size_t *used, buf_t *out);

/* Parse one record of rrtype from rdata p[0..n) into *rr (MX allocates
 * rr->u.mx.exchange, PTR rr->u.ptr.name). The rdata must be consumed exactly. 0 or -1. */
int dns_parse_rr(int rrtype, const uint8_t *p, size_t n, dns_rr_t *rr);

/* TXT rdata p[0..n) (RFC 1035 §3.3.14: one or more <length><octets>
 * character-strings): appends the strings joined with nothing between
 * them (RFC 7208 §3.3, RFC 6376 §3.6.2.2) to *out, octets as they are
 * (may hold NUL: callers check). -1 when a length runs past the end or
 * n == 0 (nothing is appended then). */
int dns_txt_join(const uint8_t *p, size_t n, buf_t *out);

/* Parse count records into r->rr / r->n (r->rrtype must be set); all or
 * nothing: -1 (and r->rr == NULL, r->n == 0) when any record is malformed. */
int dns_result_parse(dns_result_t *r, const uint8_t *const *data, const size_t *len,
    size_t count);
/* free what dns_result_parse allocated */
void dns_result_clear(dns_result_t *r);

#endif
