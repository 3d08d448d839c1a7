/*
 * spf.h - MAILAUTH: Sender Policy Framework, RFC 7208, evaluated on the
 * event loop through lib/dns.h.
 *
 * spf_check_host() is the RFC's check_host(<ip>, <domain>, <sender>)
 * (section 4): every mechanism (all, include, a, mx, ptr, ip4, ip6,
 * exists), the modifiers redirect and exp, macro expansion (section 7,
 * with the helo name for %{h} and the receiver's host name for %{r}),
 * record selection (section 4.5), the processing limits of section 4.6.4
 * (10 DNS-querying terms, 2 void lookups, 10 MX / 10 PTR names) and the
 * seven results. The caller picks the identity: MAIL FROM's domain, or
 * for MAIL FROM:<> "postmaster@<helo>" (section 2.4), or the HELO check
 * (section 2.3). IPv4-mapped IPv6 clients (::ffff:a.b.c.d) are IPv4.
 *
 * Guarantees: the callback runs exactly once, on the loop, never from
 * inside spf_check_host(), unless spf_cancel() came first; within the
 * options' overall time budget; the answer's strings live during the
 * callback only. Names built by macros are queried as they are (any octet
 * section 7 allows).
 * Must not: block; keep pointers to the arguments after returning.
 */
#ifndef TERN_SPF_H
#define TERN_SPF_H

#include <stddef.h>
#include <sys/socket.h>

#include "lib/buf.h"
#include "lib/dns.h"

/* RFC 7208 section 2.6; the A-R keyword of each is spf_result_str() */
enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};

typedef struct spf_options {
	const char *receiver; /* our host name, for %{r}; NULL: "unknown" */
	unsigned timeout_ms;  /* the whole evaluation; 0: 20000 (section 4.6.4 suggests >= 20 s) */
} spf_options_t;

typedef struct spf_answer {
	enum spf_result result;
	const char *domain;      /* the <domain> evaluated (the identity's) */
	const char *explanation; /* fail: the expanded exp= text, or ""; never NULL */
	/* for the log: the mechanism that matched ("ip4:192.0.2.0/24",
	 * "default"), or why the error ("too many DNS lookups"); never NULL */
	const char *reason;
} spf_answer_t;

typedef void (*spf_cb)(void *arg, const spf_answer_t *a);
typedef struct spf_req spf_req_t;

/* check_host(ip, domain, sender); helo for %{h}. sender is the full
 * "local@domain" (for MAIL FROM:<> the caller passes "postmaster@helo").
 * Never NULL. */
spf_req_t *spf_check_host(dns_t *dns, const struct sockaddr *ip, const char *domain,
    const char *sender, const char *helo, const spf_options_t *o, spf_cb cb, void *arg);
/* The callback will never be called. NULL: no-op. */
void spf_cancel(spf_req_t *r);

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" */
const char *spf_result_str(enum spf_result r);

#endif
