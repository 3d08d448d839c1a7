/*
 * mtasts_fetch.h - MTA-STS policy discovery, fetch and cache (RFC 8461 §3,
 * §5), on the event loop.
 *
 * mtasts_lookup(domain): the TXT record "_mta-sts.DOMAIN" (§3.1); when it
 * names an id other than the cached policy's (or nothing is cached), the
 * policy is fetched from https://mta-sts.DOMAIN/.well-known/mta-sts.txt
 * (§3.3) through lib/http.h: the host's address from tern's own resolver,
 * certificate verified (ca_file, else the system store), no redirects, at
 * most 64 KiB, a time limit, status 200 and Content-Type text/plain only.
 * A valid policy is cached for its max_age, in memory and in the spool
 * (SPOOL/mta-sts/DOMAIN, written atomically on the thread pool: temporary
 * file, fsync, rename, directory fsync), read back at start, so a restart
 * keeps every policy (§5.1: senders keep them until they expire).
 * When discovery or the fetch fails, a cached policy that has not expired
 * is used (§5.1: a missing TXT record or an unreachable policy host does
 * not end a policy); otherwise there is no policy. Each failure is logged
 * with the domain; a domain's policy concerns that domain only.
 *
 * The callback is never called from inside mtasts_lookup() and never
 * after mtasts_cancel(). Must not: block the loop (the cache files are
 * read at start only).
 */
#ifndef TERN_MTASTS_FETCH_H
#define TERN_MTASTS_FETCH_H

#include <stdint.h>
#include <uv.h>

#include "deliver/mtasts.h"
#include "lib/dns.h"

typedef struct mtasts mtasts_t;
typedef struct mtasts_req mtasts_req_t;

typedef struct mtasts_options {
	const char *spool_dir; /* the cache lives in SPOOL/mta-sts */
	const char *ca_file;   /* CAs for the policy host; NULL: the system store */
	uint16_t port;         /* HTTPS port; 0: 443 (another only in tests) */
	unsigned timeout_ms;   /* per fetch; 0: 60 s */
} mtasts_options_t;

/* NULL with *err when the cache directory cannot be made or libcurl cannot
 * start. dns must outlive the result. */
mtasts_t *mtasts_new(uv_loop_t *loop, dns_t *dns, const mtasts_options_t *o, buf_t *err);
/* Lookups in flight are dropped without callbacks. NULL is a no-op. */
void mtasts_free(mtasts_t *m);
/* A reload: new lookups use dns and o's CA file, port and timeout (the
 * cache and the spool directory stay). Call with no lookup in flight that
 * uses a resolver about to be freed. */
void mtasts_set_options(mtasts_t *m, dns_t *dns, const mtasts_options_t *o);

/* p: the domain's policy (valid during the call), or NULL for none.
 * A policy of mode none is passed as NULL too. */
typedef void (*mtasts_cb)(void *arg, const mtasts_policy_t *p, const char *id);

/* domain: lowercased. Never NULL. */
mtasts_req_t *mtasts_lookup(mtasts_t *m, const char *domain, mtasts_cb cb, void *arg);
void mtasts_cancel(mtasts_req_t *r);

/* how many policies are cached (tests) */
size_t mtasts_cached(const mtasts_t *m);

#endif
