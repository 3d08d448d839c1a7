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
/* The callback will never be called. NULL: no-op. Only before the
 * callback: the request is gone once its callback has returned. */
void spf_cancel(spf_req_t *r);

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" */
const char *spf_result_str(enum spf_result r);

/*
 * The parts, exported for the unit tests and the fuzz target. Parsers take
 * a pointer and a length (TXT data may hold any octet, NUL included).
 */

/* An address as SPF sees it: IPv4-mapped IPv6 is IPv4 (section 5, 9/2) */
typedef struct spf_ip {
	int family;       /* AF_INET (addr[0..4)) or AF_INET6 */
	unsigned char addr[16];
} spf_ip_t;

/* 0, or -1 when sa is neither AF_INET nor AF_INET6 */
int spf_ip_from_sockaddr(const struct sockaddr *sa, spf_ip_t *ip);
/* Is ip inside net/bits? Different families never match. */
int spf_cidr_match(const spf_ip_t *ip, const spf_ip_t *net, unsigned bits);

enum spf_mech {
	SPF_M_ALL,
	SPF_M_INCLUDE,
	SPF_M_A,
	SPF_M_MX,
	SPF_M_PTR,
	SPF_M_IP4,
	SPF_M_IP6,
	SPF_M_EXISTS,
};

typedef struct spf_term {
	enum spf_mech mech;
	char qualifier;  /* '+', '-', '~' or '?' */
	char *spec;      /* the domain-spec as written (unexpanded); NULL: none */
	int cidr4;       /* a, mx: -1 when absent; ip4: the prefix length */
	int cidr6;       /* a, mx: -1 when absent; ip6: the prefix length */
	spf_ip_t net;    /* ip4, ip6 */
	char *text;      /* the term as written, for the reason */
} spf_term_t;

typedef struct spf_record {
	spf_term_t *terms; /* the mechanisms, in order */
	size_t n;
	char *redirect;    /* domain-specs, NULL when absent */
	char *exp;
} spf_record_t;

/* Section 4.5: txt[0..n) begins with "v=spf1" (any case) followed by a
 * space or the end. */
int spf_is_record(const char *txt, size_t n);
/* The whole record's syntax (sections 4.6, 5, 6, 7.1, 12 ABNF): 0, or -1
 * with the reason in *err (a permerror). Unknown modifiers are checked and
 * dropped. *rec is empty after -1; free it with spf_record_free either way. */
int spf_record_parse(const char *txt, size_t n, spf_record_t *rec, buf_t *err);
void spf_record_free(spf_record_t *rec);

/* What the macro letters expand to (section 7.3); strings never NULL
 * except validated (NULL: "unknown") */
typedef struct spf_macro_ctx {
	const char *sender;        /* s */
	const char *local;         /* l; "" becomes "postmaster" */
	const char *sender_domain; /* o */
	const char *domain;        /* d */
	const char *helo;          /* h */
	const char *receiver;      /* r */
	const char *validated;     /* p */
	spf_ip_t ip;               /* i, c, v */
	long long now;             /* t */
} spf_macro_ctx_t;

/* The longest expansion kept (a longer one is an error) */
#define SPF_MACRO_MAX 8192

/* Expand the macro-string s[0..n) (section 7) into *out (appended). With
 * explain, s is an explain-string: spaces and the letters c, r, t are
 * allowed. m == NULL checks the syntax only. 0, or -1 with the reason in
 * *err (syntax error, or longer than SPF_MACRO_MAX). */
int spf_macro_expand(const spf_macro_ctx_t *m, const char *s, size_t n, int explain, buf_t *out,
    buf_t *err);
/* Section 7.1: domain-spec = macro-string domain-end (not empty) */
int spf_domain_spec_valid(const char *s, size_t n);
/* Section 4.3: is d a well-formed <domain> (labels of 1..63 octets of
 * any value, at least two, a valid top label, optional final dot)? */
int spf_domain_valid(const char *d);
/* An expanded domain-spec made ready to query (section 4.8): the final dot
 * dropped, labels removed from the left while over 253 octets, every octet
 * but letters, digits, '-' and '_' written as \DDD for dns_query(). */
void spf_query_name(const char *name, buf_t *out);

#endif
