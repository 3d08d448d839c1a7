/*
 * router.h - where each recipient goes.
 *
 * Two questions, asked at two times:
 *  - at RCPT (router_expand): is this recipient acceptable from this client,
 *    and what final addresses does it expand to (virtual aliases, aliases,
 *    +detail sub-addressing)? Unknown users in our domains are refused here
 *    (550 5.1.1), never accepted and bounced later; relaying to other domains
 *    is allowed only when relay_ok (client in mynetworks or authenticated),
 *    otherwise 554 5.7.1.
 *  - at delivery (router_final): for one final address, local Maildir (and
 *    which directory) or remote (which domain); for a remote domain,
 *    router_transport() names the transport table's next hop (smtp: or
 *    lmtp:), if any. Outbound delivery (deliver/outbound_conf.c) asks it;
 *    the transports themselves are run by outbound.c and smtp_client.c.
 *
 * Lookup order for an address local@domain (keys are case-insensitive):
 *  0. srs_domain, first (SRS on, docs/srs.md): an SRS0/SRS1 local part
 *     is verified (hash, age) and expands to the address it stands for
 *     (which may go remote); an invalid one is 550 5.1.1, and so is any
 *     other local part but postmaster (the first local domain's) when
 *     srs_domain is not also a local or virtual domain (step 4 never
 *     sees it).
 *  1. virtual table: "local@domain", then "base@domain" when local is
 *     base+detail, then the catch-all "@domain". A hit expands to its values.
 *  2. domain in local_domains: aliases table "local" then "base"; a hit
 *     expands. Otherwise the mailboxes table "local@domain" then
 *     "base@domain": a hit is a final local recipient.
 *     Otherwise 550 5.1.1. "postmaster" must be deliverable in every local
 *     domain (RFC 5321 §4.5.1): "tern check-config" warns when it is not.
 *  3. domain in virtual_domains without a virtual hit: 550 5.1.1.
 *  4. any other domain: remote; allowed only if relay_ok, else 554 5.7.1.
 *     Addresses produced by our own alias expansion may always go remote.
 * Expansion is recursive (depth at most 16: beyond that 554 5.4.6 loop),
 * the result has no duplicates, and an alias that names itself delivers to
 * its own mailbox (the classic "keep a copy and forward").
 * The four tables (mailboxes, aliases, virtual, transport) are loaded and
 * validated by common/tables.c; they are immutable, a SIGHUP builds new ones.
 */
#ifndef TERN_ROUTER_H
#define TERN_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/envelope.h"
#include "common/table.h"
#include "common/tables.h"

typedef struct dest_list {
	char **addrs; /* final addresses in SMTP form ("local@domain"), allocated */
	size_t n;
} dest_list_t;

enum router_status {
	ROUTER_OK = 0,
	ROUTER_UNKNOWN_USER, /* 550 5.1.1 */
	ROUTER_RELAY_DENIED, /* 554 5.7.1 */
	ROUTER_LOOP,         /* 554 5.4.6 */
};

/* On ROUTER_OK fills *out (free with dest_list_free). Otherwise *err is a
 * complete static reply line without CRLF, e.g.
 * "550 5.1.1 Recipient address rejected: user unknown". */
enum router_status router_expand(const config_t *c, const tables_t *t, const addr_t *rcpt,
    bool relay_ok, dest_list_t *out, const char **err);
void dest_list_free(dest_list_t *d);

/* The same expansion, reporting each step as it is taken (`tern address`):
 * a table hit (table "virtual" or "aliases", the key as written in the
 * table, one call per value, depth 0 for the address asked about) and each
 * final address (table NULL, key NULL, value the final address). A step
 * the expansion already took elsewhere (a duplicate) is not reported. */
typedef void router_trace_fn(void *arg, int depth, const char *table, const char *key,
    const char *value);
enum router_status router_expand_trace(const config_t *c, const tables_t *t, const addr_t *rcpt,
    bool relay_ok, dest_list_t *out, const char **err, router_trace_fn *trace, void *arg);

enum route_kind { ROUTE_LOCAL, ROUTE_REMOTE, ROUTE_NONE };

typedef struct route {
	enum route_kind kind;
	char *maildir;  /* ROUTE_LOCAL: the Maildir directory (contains cur/ new/ tmp/) */
	char *mailbox;  /* ROUTE_LOCAL: canonical mailbox key, e.g. "alice@localhost" */
	char *domain;   /* ROUTE_REMOTE: lowercased domain */
} route_t;

/* Where a final address goes. ROUTE_NONE when a local address no longer has
 * a mailbox (the tables changed since it was accepted): the caller bounces. */
int router_final(const config_t *c, const tables_t *t, const char *addr, route_t *out);
void route_free(route_t *r);

/*
 * SRS (docs/srs.md): set each recipient's own envelope sender (its
 * `sender`, kept in the queue file) before the message is queued. With
 * srs_domain set and secrets loaded, a recipient that an alias, a virtual
 * entry or an SRS bounce address forwarded to a remote domain leaves with
 * the sender rewritten into srs_domain (SRS0, or SRS1 when it is already
 * an SRS address); never when the sender is <>, has no domain, or is in
 * local_domains, virtual_domains, srs_domain or srs_exclude_domains, and
 * never when the rewritten local part would pass 64 octets (then the
 * message keeps its own sender). Every other recipient's sender is
 * cleared, so a changed sender (a milter's) can be applied again. Returns
 * the number of recipients rewritten. now: unix seconds.
 */
size_t router_srs_envelope(const config_t *c, const tables_t *t, envelope_t *env, int64_t now);

/* Does the message forward mail: a recipient that an alias, a virtual
 * entry or an SRS bounce address expanded into another address that
 * routes remote (the rule SRS uses above)? For ARC sealing (docs/authentication.md). */
bool router_forwards(const config_t *c, const tables_t *t, const envelope_t *env);

/* The transport for a (lowercased) remote domain: the entry for the domain
 * itself, else for ".parent" entries of its parent domains (like Postfix's
 * transport(5)), else NULL (relayhost or MX). */
const char *router_transport(const tables_t *t, const char *domain);

#endif
