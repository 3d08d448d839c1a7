/*
 * ratelimit.c - FILTER: GCRA rate limits (ratelimit.h) and their bounded
 * in-memory store: (limit, key) -> TAT in a lib/lru.h map.
 *
 * Guarantees: at most max_keys pairs are held (the least recently used is
 * dropped first); a lookup, an insertion and an eviction are O(1).
 * Must not: block.
 */
#include "filter/ratelimit.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "filter/fstats.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/lru.h"
#include "lib/xalloc.h"

#define US 1000000ull

bool
rl_gcra(uint64_t *tat, uint64_t now_us, const rate_t *r, uint64_t *retry_us)
{
	uint64_t window = (uint64_t)r->secs * US;
	uint64_t t = window / r->n; /* emission interval T; n <= 10^9 < window */
	if (t == 0)
		t = 1;
	uint64_t start = *tat > now_us ? *tat : now_us;
	uint64_t next = start + t;
	if (next - now_us > window) {
		/* the event would pass once next - window <= now */
		*retry_us = next - window - now_us;
		return false;
	}
	*tat = next;
	*retry_us = 0;
	return true;
}

/* ------------------------------------------------------------------ */
/* the in-memory store: "limit key" -> TAT, a lib/lru.h map            */

static lru_t store = LRU_INIT(sizeof(uint64_t));

/* a new pair; at the cap, first the expired pairs at the cold end go,
 * then the least recently used */
static uint64_t *
insert(const char *key, size_t max_keys, uint64_t now_us)
{
	for (;;) {
		uint64_t *old = lru_oldest(&store);
		if (old == NULL || (lru_count(&store) < max_keys && *old > now_us))
			break;
		lru_del(&store, old);
	}
	return lru_put(&store, key);
}

#define RL_MAX_ITEMS 8

void
rl_check_mem(const rl_item_t *items, size_t n, size_t max_keys, uint64_t now_us,
    rl_result_t *res)
{
	if (now_us == 0)
		now_us = clock_mono_us() + 1;
	if (max_keys == 0)
		max_keys = 1;
	if (n > RL_MAX_ITEMS)
		n = RL_MAX_ITEMS;
	res->denied = -1;
	res->retry_secs = 0;
	uint64_t tat[RL_MAX_ITEMS];
	char kbuf[512];
	/* pass 1: would each pass? nothing is charged yet */
	for (size_t i = 0; i < n; i++) {
		(void)snprintf(kbuf, sizeof kbuf, "%s %s", items[i].limit, items[i].key);
		uint64_t *e = lru_get(&store, kbuf);
		tat[i] = e ? *e : 0;
		uint64_t retry;
		if (!rl_gcra(&tat[i], now_us, items[i].rate, &retry)) {
			res->denied = (int)i;
			res->retry_secs = (unsigned)((retry + US - 1) / US);
			if (res->retry_secs == 0)
				res->retry_secs = 1;
			if (e)
				lru_touch(&store, e);
			return;
		}
	}
	/* pass 2: every one passed: charge them all */
	for (size_t i = 0; i < n; i++) {
		(void)snprintf(kbuf, sizeof kbuf, "%s %s", items[i].limit, items[i].key);
		uint64_t *e = lru_get(&store, kbuf);
		if (e)
			lru_touch(&store, e);
		else
			e = insert(kbuf, max_keys, now_us);
		*e = tat[i];
	}
}

size_t
rl_mem_count(void)
{
	return lru_count(&store);
}

void
rl_mem_clear(void)
{
	lru_clear(&store);
}

void
rl_shutdown(void)
{
	rl_redis_shutdown();
	rl_mem_clear();
}

/* ------------------------------------------------------------------ */
/* the stages of a session                                             */

bool
rl_exempt(const config_t *c, const struct sockaddr *client)
{
	return config_limit_exempt(c, client);
}

/* one stage's check; also the handle of a check waiting for Redis */
struct rl_req {
	rl_item_t it[RL_MAX_ITEMS];
	rate_t rate[RL_MAX_ITEMS];
	char spec[RL_MAX_ITEMS][32];
	const char *what[RL_MAX_ITEMS]; /* "client", "user", "sender domain" */
	char key[RL_MAX_ITEMS][320];
	size_t n;
	enum rl_stage st;
	bool closed;     /* ratelimit_redis_failure = closed */
	char sid[24];
	char ip[64];
	struct rl_rreq *rq;
	rl_stage_cb cb;
	void *arg;
};

static void
add_item(rl_req_t *q, const char *limit, const char *spec, const char *what, const char *key)
{
	const char *why;
	if (spec == NULL || key == NULL || key[0] == '\0' || q->n >= RL_MAX_ITEMS)
		return;
	if (rate_parse(spec, &q->rate[q->n], &why) < 0 || q->rate[q->n].n == 0)
		return; /* check-config refused it already */
	(void)snprintf(q->key[q->n], sizeof q->key[q->n], "%s", key);
	(void)snprintf(q->spec[q->n], sizeof q->spec[q->n], "%s", spec);
	q->it[q->n].limit = limit;
	q->it[q->n].rate = &q->rate[q->n];
	q->it[q->n].key = q->key[q->n];
	q->what[q->n] = what;
	q->n++;
}

/* the verdict of q: status -1 = the store failed; else denied is an index or -1 */
static bool
verdict(const rl_req_t *q, int status, int denied, unsigned retry, char *reply, size_t rlen)
{
	if (status < 0) {
		if (!q->closed)
			return false;
		(void)snprintf(reply, rlen, "%s Error: rate limits cannot be checked now "
		    "(ratelimit_redis_failure = closed); try again later",
		    q->st == RL_CONNECT ? "421 4.7.0" : "451 4.7.1");
		log_info("%s: ratelimit failed closed client=%s", q->sid, q->ip);
		fstats_verdict("ratelimit", "failed_closed");
		return true;
	}
	if (denied < 0 || (size_t)denied >= q->n)
		return false;
	size_t d = (size_t)denied;
	if (q->st == RL_CONNECT)
		(void)snprintf(reply, rlen, "421 4.7.0 Error: too many connections from %s (%s = %s); "
		    "try again in %u seconds", q->ip, q->it[d].limit, q->spec[d], retry);
	else
		(void)snprintf(reply, rlen, "451 4.7.1 Error: rate limit exceeded for %s %s (%s = %s); "
		    "try again in %u seconds", q->what[d], q->key[d], q->it[d].limit, q->spec[d], retry);
	log_info("%s: ratelimit limit=%s key=%s rate=%s client=%s retry=%us", q->sid,
	    q->it[d].limit, q->key[d], q->spec[d], q->ip, retry);
	fstats_verdict("ratelimit", "limited");
	return true;
}

static void
redis_done(void *arg, int status, int denied, unsigned retry)
{
	rl_req_t *q = arg;
	char reply[400];
	q->rq = NULL;
	bool refused = verdict(q, status, denied, retry, reply, sizeof reply);
	rl_stage_cb cb = q->cb;
	void *cbarg = q->arg;
	xfree(q);
	cb(cbarg, refused, refused ? reply : NULL);
}

int
rl_stage_start(uv_loop_t *loop, const config_t *c, enum rl_stage st, const char *sid,
    const char *ip, const char *user, const char *sender, bool *denied, char *reply,
    size_t rlen, rl_stage_cb cb, void *arg, rl_req_t **req)
{
	*denied = false;
	*req = NULL;
	rl_req_t *q = xcalloc(1, sizeof *q);
	q->st = st;
	switch (st) {
	case RL_CONNECT:
		add_item(q, "ratelimit_client_connections", c->rl_client_connections, "client", ip);
		break;
	case RL_MAIL: {
		add_item(q, "ratelimit_client_messages", c->rl_client_messages, "client", ip);
		add_item(q, "ratelimit_user_messages", c->rl_user_messages, "user", user);
		char domain[256] = "";
		const char *at = sender ? strrchr(sender, '@') : NULL;
		if (at) {
			size_t k = 0;
			for (const char *p = at + 1; *p && k + 1 < sizeof domain; p++)
				domain[k++] = (char)tolower((unsigned char)*p);
			domain[k] = '\0';
		}
		add_item(q, "ratelimit_sender_domain_messages", c->rl_sender_domain_messages,
		    "sender domain", domain);
		break;
	}
	case RL_RCPT:
		add_item(q, "ratelimit_client_recipients", c->rl_client_recipients, "client", ip);
		add_item(q, "ratelimit_user_recipients", c->rl_user_recipients, "user", user);
		break;
	}
	if (q->n == 0) {
		xfree(q);
		return 1;
	}
	(void)snprintf(q->sid, sizeof q->sid, "%s", sid);
	(void)snprintf(q->ip, sizeof q->ip, "%s", ip);
	q->closed = c->rl_redis_failure && strcmp(c->rl_redis_failure, "closed") == 0;
	if (c->rl_redis) {
		q->cb = cb;
		q->arg = arg;
		q->rq = rl_redis_check(loop, c, q->it, q->n, redis_done, q);
		if (q->rq) {
			*req = q;
			return 0;
		}
		*denied = verdict(q, -1, -1, 0, reply, rlen); /* down: the failure mode, now */
		xfree(q);
		return 1;
	}
	rl_result_t res;
	rl_check_mem(q->it, q->n, c->rl_max_keys, 0, &res);
	*denied = verdict(q, 0, res.denied, res.retry_secs, reply, rlen);
	xfree(q);
	return 1;
}

void
rl_stage_cancel(rl_req_t *q)
{
	if (q == NULL)
		return;
	rl_redis_cancel(q->rq);
	xfree(q);
}
