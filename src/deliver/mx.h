/*
 * mx.h - where to connect for a destination domain (RFC 5321 §5.1).
 *
 * mx_resolve() looks up the domain's MX records and the A/AAAA addresses of
 * every mail exchanger (all address lookups in parallel), and hands the
 * SMTP client a list of hosts to try in order:
 *  - hosts sorted by preference, lowest first; hosts of equal preference
 *    shuffled randomly (§5.1: "the sender-SMTP MUST randomize them to
 *    spread the load");
 *  - no MX records (NODATA): the implicit MX, the domain itself with
 *    preference 0 (§5.1); a CNAME is followed by libunbound;
 *  - RFC 7505 null MX (the only MX is "0 ."): MX_NULLMX, never delivered to;
 *  - if we are one of the exchangers (by name or by address, see options),
 *    every host with a preference >= our own is dropped (§5.1); when
 *    nothing better than us remains: MX_LOOP;
 *  - a domain literal "[192.0.2.1]" / "[IPv6:2001:db8::1]" bypasses DNS
 *    (RFC 5321 §4.1.3);
 *  - with options.tlsa (DANE, RFC 7672 §2.2): when the MX answer (or the
 *    next-hop name itself, options.no_mx) is DNSSEC-secure, the TLSA
 *    records "_PORT._tcp.HOST" of every host whose address answers were
 *    all secure, all lookups in parallel: see mx_host_t.tlsa; for a host
 *    that is a secure CNAME alias, at the expanded name first, then at the
 *    host's own name (RFC 7672 §2.2.2);
 *  - options.no_mx: the name is a host given by the configuration (a
 *    relayhost or transport "[host]"): its addresses, no MX lookup;
 *  - at most max_hosts hosts and max_addrs addresses in all; a host whose
 *    lookups found no address is left out; when no host has an address
 *    and some lookup failed temporarily the result is MX_TEMPFAIL.
 * The callback is never called from inside mx_resolve() and never after
 * mx_cancel().
 *
 * The ordering steps are pure functions (mx_order, mx_finish) so they can
 * be unit-tested without DNS.
 */
#ifndef TERN_MX_H
#define TERN_MX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/dns.h"
#include "lib/tls.h"

#define MX_MAX_HOSTS 10
#define MX_MAX_ADDRS 20

enum mx_status {
	MX_OK = 0,
	MX_TEMPFAIL, /* SERVFAIL, timeout, DNSSEC failure: defer; 451 4.4.3 */
	MX_NXDOMAIN, /* the domain does not exist (or a bad literal): 550 5.1.2 */
	MX_NULLMX,   /* RFC 7505 null MX: 556 5.1.10 */
	MX_LOOP,     /* the best MX is ourselves: 554 5.4.6 */
	MX_NOADDR,   /* exchangers exist but none has an address: 550 5.4.4 */
};

enum mx_family {
	MX_INET6_FIRST = 0, /* default: each host's IPv6 addresses, then IPv4 */
	MX_INET_FIRST,
	MX_INET_ONLY,
	MX_INET6_ONLY,
};

typedef struct mx_options {
	/* our own host names, NULL-terminated (compared case-insensitively,
	 * a trailing dot ignored); NULL: none */
	const char *const *self_names;
	/* our own addresses (the port is ignored) */
	const struct sockaddr_storage *self_addrs;
	size_t nself_addrs;
	enum mx_family family;
	uint16_t port;    /* written into every address; 0: 25 */
	size_t max_hosts; /* 0: MX_MAX_HOSTS */
	size_t max_addrs; /* 0: MX_MAX_ADDRS */
	bool tlsa;        /* look up TLSA records (DANE) where DNSSEC allows */
	bool no_mx;       /* the name is a host: no MX lookup */
} mx_options_t;

/* a host's TLSA records (RFC 7672 §2.2) */
enum mx_tlsa {
	MX_TLSA_NONE = 0, /* not asked (insecure MX or addresses), none, or insecure: no DANE */
	MX_TLSA_FOUND,    /* a secure TLSA RRset: tlsa[0..ntlsa) */
	MX_TLSA_FAILED,   /* the lookup was bogus or failed: the host must not be used */
};

typedef struct mx_host {
	char *name;  /* the exchange name (the domain for an implicit MX, the
	              * literal itself for a domain literal) */
	uint16_t pref;
	bool secure;   /* every address lookup for it was DNSSEC-secure */
	bool tempfail; /* an address lookup for it failed temporarily */
	struct sockaddr_storage *addrs; /* in the order to try, port set */
	size_t naddrs;
	enum mx_tlsa tlsa;
	tls_tlsa_t *tlsa_rr; /* MX_TLSA_FOUND: the records (data owned) */
	size_t ntlsa;
	char *tlsa_why;      /* MX_TLSA_FAILED: why; else NULL */
	/* the name is a secure CNAME alias: the chain's final name (its
	 * address answers said so); else NULL */
	char *canon;
	/* MX_TLSA_FOUND: the TLSA base domain when it is canon (RFC 7672
	 * §2.2.2: the records were found at the expanded name); else NULL,
	 * the base domain is name */
	char *tlsa_base;
} mx_host_t;

typedef struct mx_result {
	enum mx_status status;
	/* non-OK: a complete static reply line without CRLF to use in the
	 * DSN / log, e.g. "550 5.1.2 Host or domain name not found"; OK: "" */
	const char *reply;
	char *detail;     /* what happened, for logs and DSN diagnostics; never NULL */
	bool implicit;    /* no MX records: the domain's own addresses */
	bool literal;     /* a domain literal */
	bool mx_secure;   /* the MX answer (or its absence) was DNSSEC-secure;
	                   * true for options.no_mx (the name is configured) */
	uint32_t ttl;     /* the smallest TTL of the answers used (0: unknown):
	                   * how long the result may be kept */
	mx_host_t *hosts; /* in the order to try */
	size_t nhosts;
} mx_result_t;

typedef struct mx_req mx_req_t;

/* The callee owns r: free it with mx_result_free(). */
typedef void (*mx_cb)(void *arg, mx_result_t *r);

/* Never NULL. The options are copied. The handle is valid until the
 * callback has been called or mx_cancel() has been called. */
mx_req_t *mx_resolve(dns_t *dns, const char *domain, const mx_options_t *o, mx_cb cb, void *arg);
void mx_cancel(mx_req_t *req);
void mx_result_free(mx_result_t *r);

const char *mx_status_reply(enum mx_status s);

/* ---- pure steps, exported for tests ---- */

/* uniform random number in [0, upper) */
typedef uint32_t (*mx_rand_fn)(void *arg, uint32_t upper);

/*
 * From the MX records of an answer (rr[i].u.mx): detect the null MX
 * (every record's exchange is "." : MX_NULLMX; "." records mixed with real
 * ones are dropped), drop hosts at or above our own preference when one of
 * self_names is an exchanger (MX_LOOP when nothing remains), sort by
 * preference, shuffle equal preferences with rnd (NULL: arc4random), drop
 * repeated names (keeping the best preference), and keep max_hosts.
 * MX_OK: *hosts (names and preferences, no addresses yet) and *nhosts.
 * Otherwise *hosts is NULL and *nhosts 0.
 */
enum mx_status mx_order(const dns_rr_t *rr, size_t n, const mx_options_t *o, mx_rand_fn rnd,
    void *rarg, mx_host_t **hosts, size_t *nhosts);

/*
 * After the address lookups (hosts[i].addrs filled, tempfail set): a host
 * with one of self_addrs is ourselves, and it and every host with a
 * preference >= its own are dropped (RFC 5321 §5.1); then hosts beyond
 * max_addrs addresses in all are cut, and hosts without addresses are
 * dropped. Returns MX_OK (*nhosts >= 1), MX_LOOP, MX_TEMPFAIL (nothing
 * usable, and a host that would have been usable failed temporarily) or
 * MX_NOADDR. Dropped hosts are freed; the array is compacted in place.
 */
enum mx_status mx_finish(mx_host_t *hosts, size_t *nhosts, const mx_options_t *o);

/* Parse a domain literal "[...]" into *sa (port 0). 0 or -1. */
int mx_parse_literal(const char *s, struct sockaddr_storage *sa);

/* true when the two addresses are the same IP (ports ignored) */
bool mx_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

void mx_hosts_free(mx_host_t *hosts, size_t n);

#endif
