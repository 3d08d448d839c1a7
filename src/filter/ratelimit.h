/*
 * ratelimit.h - FILTER: rate limits on clients, authenticated users and
 * envelope sender domains (issue 12), by GCRA (docs/filtering.md "Rate
 * limits" has the formula and why GCRA rather than a sliding window).
 *
 * A limit is "N/DURATION" (60/1m): at most N events in any DURATION, N of
 * them allowed at once. Each (limit, key) pair keeps one timestamp, its
 * theoretical arrival time (TAT).
 *
 * The store is in memory (one per process) unless ratelimit_redis names a
 * Redis server shared by several tern nodes (ratelimit_redis.c). In memory
 * it is bounded: at most max_keys
 * pairs, the least recently used dropped first when a new one comes at the
 * cap (that key starts afresh: it gets its full burst again), and a pair
 * whose TAT has passed holds nothing and is dropped when met.
 *
 * Guarantees: rl_check() counts one event against every item or against
 * none (a refusal charges nothing); it answers at once and never blocks.
 * Must not: keep the caller's pointers after the call.
 */
#ifndef TERN_RATELIMIT_H
#define TERN_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>
#include <uv.h>

#include "common/config.h"
#include "common/rate.h"

/*
 * GCRA, a pure function: one event at now_us against the pair whose TAT is
 * *tat (0: never seen). Allowed: *tat moves on, returns true. Refused:
 * *tat is unchanged, *retry_us says when the next event would pass,
 * returns false. With T = secs/n (the emission interval) and tau = secs - T
 * (the burst tolerance): refused when max(TAT, now) + T - now > secs.
 */
bool rl_gcra(uint64_t *tat, uint64_t now_us, const rate_t *r, uint64_t *retry_us);

/* one limit to check: its name (the configuration key, for the reply and
 * the log), its rate and the key it counts for (an IP, a user, a domain) */
typedef struct rl_item {
	const char *limit;
	const rate_t *rate;
	const char *key;
} rl_item_t;

typedef struct rl_result {
	int denied;          /* index of the first item over its limit, -1 when all passed */
	unsigned retry_secs; /* denied: seconds until that item would pass (at least 1) */
} rl_result_t;

/* Count one event at now_us (0: the monotonic clock) against items[0..n)
 * in the in-memory store, keeping at most max_keys pairs. */
void rl_check_mem(const rl_item_t *items, size_t n, size_t max_keys, uint64_t now_us,
    rl_result_t *res);
/* pairs held now (tests, logs) */
size_t rl_mem_count(void);
/* forget every pair (tests; configuration reload keeps them) */
void rl_mem_clear(void);
/* At exit (no session left): the pairs freed, the Redis connection closed;
 * the loop must run once more (uv_run NOWAIT) to close its handles. */
void rl_shutdown(void);

/* ---- the limits of an SMTP session's stages (smtpd calls these) ---- */

enum rl_stage { RL_CONNECT, RL_MAIL, RL_RCPT };

/* a client never limited: those in client_limit_exceptions (default
 * mynetworks; Postfix's smtpd_client_event_limit_exceptions) */
bool rl_exempt(const config_t *c, const struct sockaddr *client);

typedef struct rl_req rl_req_t;
/* the verdict of a check that waited: reply is the SMTP reply when denied
 * (valid during the call only), else NULL */
typedef void (*rl_stage_cb)(void *arg, bool denied, const char *reply);

/*
 * Count the event of a stage against every limit configured for it:
 * connect: ratelimit_client_connections (ip); MAIL: ratelimit_client_messages
 * (ip), ratelimit_user_messages (user, when authenticated),
 * ratelimit_sender_domain_messages (the sender's domain, not for <>); RCPT:
 * ratelimit_client_recipients (ip), ratelimit_user_recipients (user).
 * Returns 1 when answered now: *denied, and when denied the SMTP reply
 * naming the limit in reply ("421 4.7.0 ..." at connect, "451 4.7.1 ..."
 * after); cb is not called. Returns 0 when the answer comes from Redis:
 * cb runs later on the loop (within ratelimit_redis_timeout), exactly once,
 * unless rl_stage_cancel(*req) came first. A refusal is logged, one line.
 * When Redis is down or late, ratelimit_redis_failure decides (open: pass;
 * closed: refused, "... cannot be checked now").
 */
int rl_stage_start(uv_loop_t *loop, const config_t *c, enum rl_stage st, const char *sid,
    const char *ip, const char *user, const char *sender, bool *denied, char *reply,
    size_t rlen, rl_stage_cb cb, void *arg, rl_req_t **req);
/* no callback after this; NULL is a no-op */
void rl_stage_cancel(rl_req_t *req);

/* ---- the Redis store (ratelimit_redis.c), for ratelimit.c ---- */

/* status 0: Redis answered (denied: the index refused, or -1); -1: it failed */
typedef void (*rl_redis_cb)(void *arg, int status, int denied, unsigned retry_secs);
struct rl_rreq;
/* NULL when the connection is down (the caller applies the failure mode) */
struct rl_rreq *rl_redis_check(uv_loop_t *loop, const config_t *c, const rl_item_t *items,
    size_t n, rl_redis_cb cb, void *arg);
void rl_redis_cancel(struct rl_rreq *q);
/* close the connection and free its state (rl_shutdown) */
void rl_redis_shutdown(void);

#endif
