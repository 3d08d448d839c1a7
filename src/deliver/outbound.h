/*
 * outbound.h - the outbound manager: remote SMTP and LMTP delivery for the
 * scheduler, on the event loop.
 *
 * The scheduler submits (envelope, some recipients of one domain) and gets
 * one callback when every one of them has an outcome. Work is grouped per
 * next hop ("destination"): the relayhost, a transport the route function
 * names for the domain, or the domain's MX hosts. Each destination has its
 * own queue of submissions and its own connections, limited per
 * destination and in total; an idle connection is reused for the next
 * message to the same destination and closed after a short idle time, so
 * one slow or dead destination never holds back the others.
 *
 * Per destination: the addresses are resolved once (MX hosts in mx.h's
 * order, every address of a host before the next host); a new connection
 * walks them in order, moving on after a connect failure, a timeout, a
 * non-220 greeting, 421, or a refused EHLO/HELO. While a destination has
 * never answered, it gets one connection attempt at a time; once one
 * session is up, up to the per-destination limit.
 *
 * Outcomes written into env->rcpt[i] by the time the callback runs:
 *   status  RCPT_SENT (delivered), RCPT_FAILED (permanent failure, to be
 *           bounced), RCPT_PENDING (temporary failure: retry later)
 *   reply   "<code> <x.y.z> text", relay "host[ip]:port",
 *   last_try = now, attempts + 1
 * (docs/outbound.md has the whole error policy.)
 *
 * TLS: each destination has a policy (tls.h: none, may, encrypt, verify):
 * the tls_policy table's entry for the next hop's name (the recipient
 * domain for MX delivery, the host of a relayhost or transport; a
 * ".parent" entry covers subdomains), else the default policy. Under
 * "may", a destination whose TLS handshake fails is tried again at once in
 * clear on the same address (RFC 7435 opportunistic security).
 * DANE (RFC 7672): under "dane" and "dane-only", the MX lookup also asks
 * for each host's TLSA records (mx.h) when the resolver validates
 * (options.dnssec). A host with usable secure TLSA records gets DANE
 * (smtp_client.h: authenticated TLS or nothing); one whose TLSA lookup was
 * bogus or failed is skipped (the next host is tried; when none is left
 * the mail is deferred, 4.7.5); one without TLSA records gets "may" under
 * "dane" and is skipped under "dane-only". A bracketed relayhost or
 * transport host is then resolved through the validating resolver too.
 * Resolved addresses and TLSA records are kept no longer than their TTL.
 * MTA-STS (RFC 8461): for an MX destination under "sts" (or "may",
 * "encrypt", "dane" with options.mta_sts) the domain's policy is looked
 * up first (mtasts_fetch.h); under enforce, MX hosts outside its mx list
 * are not used and the others get VERIFY for their own name (4.7.5 on
 * failure, verified=sts on success); under testing the failures are only
 * logged. A host with DANE records is DANE's alone (RFC 8461 §2). The
 * policy is asked again with the DNS data (the TXT id says if it changed).
 * REQUIRETLS (RFC 8689 §4.2.1): a message with ENV_REQUIRETLS goes to a
 * destination of its own that keeps only validated MX hosts (a secure MX
 * answer, or an MTA-STS enforce policy that lists the host), requires
 * authenticated TLS (DANE, else a certificate valid for the host) and a
 * server offering REQUIRETLS; a relayhost or transport counts as
 * validated only under verify/dane/dane-only. Failures are permanent
 * (5.7.10, 5.7.30), never a downgrade; connect trouble stays temporary.
 * ENV_TLS_OPTIONAL ("TLS-Required: No", §4.2.2): a destination of its own
 * without DANE and MTA-STS (opportunistic TLS instead).
 *
 * Must not: block the loop on the network or DNS; touch an envelope after
 * its callback; call a callback twice or from inside outbound_submit().
 */
#ifndef TERN_OUTBOUND_H
#define TERN_OUTBOUND_H

#include <stddef.h>
#include <uv.h>

#include "common/envelope.h"
#include "deliver/mx.h"
#include "deliver/smtp_client.h"
#include "lib/dns.h"

typedef struct outbound outbound_t;

/*
 * The scheduler's route function: for a (lowercased) domain, the transport
 * "smtp:[host]:port", "smtp:host:port" (MX lookup of host, like Postfix),
 * "lmtp:host:port", "lmtp:[host]:port", "lmtp:unix:/path", or NULL for the
 * default (relayhost, else the domain's MX). The string is copied at once.
 */
typedef const char *(*outbound_route_fn)(void *arg, const char *domain);

typedef struct outbound_options {
	const char *hostname;      /* our EHLO/LHLO name */
	const char *spool_dir;
	/* NULL, or "[host]:port", "[host]", "host:port", "host": all remote
	 * mail goes there (bracketed or literal IP: no MX lookup) */
	const char *relayhost;
	/* AUTH to the relayhost (not to transports or MX hosts), under TLS
	 * only; NULL: none */
	const char *relay_auth_user;
	const char *relay_auth_pass;
	unsigned dest_concurrency; /* connections per destination, 0: 20 */
	unsigned total_concurrency; /* outbound connections in all, 0: 100 */
	unsigned max_per_conn;     /* transactions per connection, 0: 100 */
	unsigned idle_ms;          /* idle connection kept this long, 0: 2000 */
	/* seconds a host address (IP and port) whose connection was refused or
	 * timed out, or that sent no greeting in time, is skipped by every
	 * destination; 0: not remembered */
	unsigned dead_host_time;
	/* RFC 5321 §5.1: servers one transaction may try in one attempt when
	 * MAIL, every RCPT, DATA or the final dot get a 4xx; 0: 2 */
	unsigned mx_session_limit;
	smtp_timeouts_t timeouts;  /* seconds; 0: RFC 5321 §4.5.3.2 values */
	dns_t *dns;                /* NULL: only literal IPs and bracketed names (getaddrinfo) */
	const mx_options_t *mx;    /* self names/addresses, family; NULL: defaults */
	outbound_route_fn route;   /* NULL: no transports */
	void *route_arg;
	/* how to open a message's content; NULL: queue_open_content (tests
	 * may substitute their own) */
	int (*open_content)(const char *spool_dir, const envelope_t *env);
	enum tls_policy tls_policy;   /* the default; 0 = may */
	const char *tls_policy_file;  /* "domain policy" lines; NULL = none */
	const char *tls_ca_file;      /* CAs for verify; NULL = the system store */
	bool dnssec;                  /* dns validates (a trust anchor): DANE can apply */
	/* MTA-STS (RFC 8461, deliver/mtasts_fetch.h) for MX destinations
	 * whose policy is may, encrypt or dane (and always under "sts"); the
	 * policy host's certificate is checked against tls_ca_file */
	bool mta_sts;
	uint16_t mta_sts_port;        /* 0: 443; another only in tests */
} outbound_options_t;

/*
 * Take new settings (a reload): every field of o but spool_dir, idle_ms,
 * route and open_content, which stay. Destinations made before stop
 * taking work: jobs waiting in them are routed again under the new
 * settings (a new relayhost, TLS policy, resolver...), their lookups are
 * dropped, their idle connections closed; transactions already under way
 * finish. The previous resolver (o->dns) is not used after the call.
 * -1 (logged) when the tls_policy table cannot be loaded: nothing changed.
 */
int outbound_reconfigure(outbound_t *o, const outbound_options_t *opt);

/* idx points to the manager's own copy of the indices (valid during the
 * call); env is the caller's, updated as described above. */
typedef void (*outbound_done_cb)(void *arg, envelope_t *env, const size_t *idx, size_t n);

/* The strings in o are copied. NULL (logged) when the tls_policy table
 * cannot be loaded or has a bad policy word. */
outbound_t *outbound_new(uv_loop_t *loop, const outbound_options_t *o);

/*
 * Deliver recipients idx[0..n) of env (all in one domain). env must stay
 * alive and untouched until cb. cb is called exactly once, never from
 * inside this call. After outbound_shutdown(): cb follows at once (next
 * loop turn) with every recipient RCPT_PENDING, "451 4.3.2 shutting down".
 */
void outbound_submit(outbound_t *o, envelope_t *env, const size_t *idx, size_t n,
    outbound_done_cb cb, void *arg);

/*
 * Start nothing new: queued submissions are cancelled (their recipients
 * stay RCPT_PENDING with reply "451 4.3.2 shutting down", attempts not
 * counted), DNS lookups and connection attempts are abandoned, idle
 * connections get QUIT; transactions already under way finish (so no
 * message is sent twice). cb(arg) runs when all is done; o is freed right
 * after cb returns and must not be used again.
 */
void outbound_shutdown(outbound_t *o, void (*cb)(void *), void *arg);

/* counters, for tests and the control socket */
typedef struct outbound_stats {
	unsigned long connections;  /* sessions started (each address tried counts) */
	unsigned long transactions; /* transactions started */
	unsigned sessions;          /* open now */
	unsigned destinations;      /* known now */
} outbound_stats_t;
void outbound_get_stats(const outbound_t *o, outbound_stats_t *st);

#endif
