/*
 * ratelimit_redis.c - FILTER: the shared rate-limit store in Redis
 * (ratelimit.h rl_redis_check; the failure mode is ratelimit.c's), so several tern nodes enforce one limit
 * together.
 *
 * One connection per process, hiredis's asynchronous API on tern's libuv
 * loop (hiredis/adapters/libuv.h). The GCRA update of every item of a
 * check is one Lua script run atomically in Redis (EVALSHA of the script
 * loaded once per connection; EVAL when Redis answers NOSCRIPT), keyed
 * "tern:rl:LIMIT:KEY", on Redis's clock (TIME), each key expiring when its
 * TAT has passed.
 *
 * Guarantees: every check is answered within ratelimit_redis_timeout, by
 * Redis or by the failure mode (ratelimit_redis_failure = open: allowed,
 * closed: refused); while the connection is down checks are answered at
 * once by the failure mode; the outage is logged once when it starts and
 * once when it ends; reconnection after 0.1 s, doubling to 10 s.
 * Must not: block; call the callback from inside rl_redis_check, or after
 * rl_redis_cancel.
 */
#include "filter/ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>
#include <openssl/sha.h>

#include "lib/log.h"
#include "lib/xalloc.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000

/* KEYS[i]: the pairs; ARGV[2i-1], ARGV[2i]: T and W of pair i in microseconds.
 * Returns {0, 0} when all pass (all charged), {i, seconds} when pair i
 * would be refused (nothing charged). */
static const char script[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
	"local new = {}\n"
	"for i, k in ipairs(KEYS) do\n"
	"  local T = tonumber(ARGV[2 * i - 1])\n"
	"  local W = tonumber(ARGV[2 * i])\n"
	"  local tat = tonumber(redis.call('GET', k) or 0)\n"
	"  if tat < now then tat = now end\n"
	"  local nx = tat + T\n"
	"  if nx - now > W then return {i, math.ceil((nx - W - now) / 1000000)} end\n"
	"  new[i] = nx\n"
	"end\n"
	"for i, k in ipairs(KEYS) do\n"
	"  redis.call('SET', k, string.format('%.0f', new[i]), 'PX',\n"
	"             string.format('%.0f', math.ceil((new[i] - now) / 1000) + 1))\n"
	"end\n"
	"return {0, 0}\n";

static struct {
	uv_loop_t *loop;
	char *addr;              /* the ratelimit_redis value it was made for */
	redisAsyncContext *ac;   /* NULL when down */
	bool up;                 /* connected (else connecting, when ac) */
	bool outage;             /* an outage is going on (logged) */
	uv_timer_t *retry;       /* reconnection */
	unsigned backoff_ms;
	char sha[41];
} rd;

struct rl_rreq {
	uv_timer_t timer;
	rl_redis_cb cb;
	void *arg;
	bool answered;   /* cb ran (or will not: cancelled) */
	int refs;        /* the timer handle, the hiredis callback */
	char **argv;     /* the command, kept for a NOSCRIPT retry */
	size_t *argl;
	int argc;
};

static void connect_now(void);

static void
req_unref(struct rl_rreq *q)
{
	if (--q->refs > 0)
		return;
	for (int i = 0; i < q->argc; i++)
		xfree(q->argv[i]);
	xfree(q->argv);
	xfree(q->argl);
	xfree(q);
}

static void
timer_closed(uv_handle_t *h)
{
	req_unref(h->data);
}

static void
answer(struct rl_rreq *q, int status, int denied, unsigned retry)
{
	if (q->answered)
		return;
	q->answered = true;
	uv_timer_stop(&q->timer);
	uv_close((uv_handle_t *)&q->timer, timer_closed);
	q->cb(q->arg, status, denied, retry);
}

static void
outage_begins(const char *why)
{
	if (!rd.outage)
		log_warn("ratelimit: redis %s unavailable (%s): rate limits fail as "
		    "ratelimit_redis_failure says until it is back", rd.addr, why);
	rd.outage = true;
}

static void
retry_cb(uv_timer_t *t)
{
	(void)t;
	connect_now();
}

static void
schedule_retry(void)
{
	if (rd.retry == NULL) {
		rd.retry = xmalloc(sizeof *rd.retry);
		uv_timer_init(rd.loop, rd.retry);
		uv_unref((uv_handle_t *)rd.retry); /* never keeps the loop alive */
	}
	rd.backoff_ms = rd.backoff_ms ? rd.backoff_ms * 2 : BACKOFF_MIN_MS;
	if (rd.backoff_ms > BACKOFF_MAX_MS)
		rd.backoff_ms = BACKOFF_MAX_MS;
	uv_timer_start(rd.retry, retry_cb, rd.backoff_ms, 0);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
	if (ac != rd.ac)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees ac after this callback */
		outage_begins(ac->errstr[0] ? ac->errstr : "cannot connect");
		rd.ac = NULL;
		rd.up = false;
		schedule_retry();
		return;
	}
	rd.up = true;
	rd.backoff_ms = 0;
	if (rd.outage)
		log_info("ratelimit: redis %s is back", rd.addr);
	else
		log_info("ratelimit: redis %s connected", rd.addr);
	rd.outage = false;
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
	if (ac != rd.ac)
		return;
	outage_begins(status == REDIS_OK ? "disconnected" : ac->errstr[0] ? ac->errstr
	    : "connection lost");
	rd.ac = NULL;
	rd.up = false;
	schedule_retry();
}

static void
connect_now(void)
{
	redisAsyncContext *ac;
	if (strncmp(rd.addr, "unix:", 5) == 0) {
		ac = redisAsyncConnectUnix(rd.addr + 5);
	} else {
		char host[64];
		const char *colon = strrchr(rd.addr, ':');
		size_t hl = colon ? (size_t)(colon - rd.addr) : 0;
		if (hl >= sizeof host)
			hl = sizeof host - 1;
		memcpy(host, rd.addr, hl);
		host[hl] = '\0';
		/* [v6]:port */
		char *h = host;
		if (h[0] == '[') {
			h++;
			h[strcspn(h, "]")] = '\0';
		}
		ac = redisAsyncConnect(h, colon ? (int)strtol(colon + 1, NULL, 10) : 6379);
	}
	if (ac == NULL || ac->err) {
		outage_begins(ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		rd.ac = NULL;
		schedule_retry();
		return;
	}
	rd.ac = ac;
	rd.up = false;
	redisLibuvAttach(ac, rd.loop);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	/* commands written now are sent once connected */
	(void)redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %b", script, sizeof script - 1);
}

static void
on_timeout(uv_timer_t *t)
{
	struct rl_rreq *q = t->data;
	if (!q->answered)
		log_warn("ratelimit: redis %s did not answer in time", rd.addr);
	/* a slow Redis is an outage too: drop the connection (every pending
	 * command is answered with no reply), reconnect later */
	outage_begins("timeout");
	answer(q, -1, -1, 0);
	if (rd.ac) {
		redisAsyncContext *ac = rd.ac;
		rd.ac = NULL;
		rd.up = false;
		redisAsyncDisconnect(ac);
		schedule_retry();
	}
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);

static int
send_cmd(struct rl_rreq *q, const char *verb)
{
	xfree(q->argv[0]);
	q->argv[0] = xstrdup(verb);
	q->argl[0] = strlen(verb);
	if (strcmp(verb, "EVAL") == 0) {
		xfree(q->argv[1]);
		q->argv[1] = xstrndup(script, sizeof script - 1);
		q->argl[1] = sizeof script - 1;
	}
	return redisAsyncCommandArgv(rd.ac, on_reply, q, q->argc, (const char **)q->argv, q->argl);
}

static void
on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
	struct rl_rreq *q = privdata;
	redisReply *rep = r;
	if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
	    !q->answered && ac == rd.ac && send_cmd(q, "EVAL") == REDIS_OK)
		return; /* the same reference goes on with EVAL */
	if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_INTEGER &&
	    rep->element[1]->type == REDIS_REPLY_INTEGER) {
		long long i = rep->element[0]->integer;
		long long secs = rep->element[1]->integer;
		answer(q, 0, i > 0 ? (int)(i - 1) : -1, (unsigned)(secs > 0 ? secs : 1));
	} else {
		if (rep && rep->type == REDIS_REPLY_ERROR)
			log_warn("ratelimit: redis %s: %s", rd.addr, rep->str);
		answer(q, -1, -1, 0);
	}
	req_unref(q);
}

static void
sha1_hex(const char *p, size_t n, char out[41])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	SHA1((const unsigned char *)p, n, md);
	for (size_t i = 0; i < SHA_DIGEST_LENGTH; i++)
		(void)snprintf(out + 2 * i, 3, "%02x", md[i]);
}

struct rl_rreq *
rl_redis_check(uv_loop_t *loop, const config_t *c, const rl_item_t *items, size_t n,
    rl_redis_cb cb, void *arg)
{
	if (rd.addr == NULL || strcmp(rd.addr, c->rl_redis) != 0) {
		/* first use, or a new address after a reload */
		if (rd.ac) {
			redisAsyncContext *ac = rd.ac;
			rd.ac = NULL;
			redisAsyncDisconnect(ac);
		}
		xfree(rd.addr);
		rd.addr = xstrdup(c->rl_redis);
		rd.loop = loop;
		rd.outage = false;
		rd.backoff_ms = 0;
		if (rd.retry)
			uv_timer_stop(rd.retry);
		sha1_hex(script, sizeof script - 1, rd.sha);
		connect_now();
	}
	if (rd.ac == NULL)
		return NULL; /* down: the caller applies the failure mode now */
	struct rl_rreq *q = xcalloc(1, sizeof *q);
	q->cb = cb;
	q->arg = arg;
	q->argc = 3 + 3 * (int)n;
	q->argv = xcalloc((size_t)q->argc, sizeof *q->argv);
	q->argl = xcalloc((size_t)q->argc, sizeof *q->argl);
	q->argv[0] = xstrdup("EVALSHA");
	q->argv[1] = xstrdup(rd.sha);
	q->argv[2] = xasprintf("%zu", n);
	for (size_t i = 0; i < n; i++) {
		uint64_t w = (uint64_t)items[i].rate->secs * 1000000u;
		uint64_t t = w / items[i].rate->n;
		q->argv[3 + i] = xasprintf("tern:rl:%s:%s", items[i].limit, items[i].key);
		q->argv[3 + n + 2 * i] = xasprintf("%llu", (unsigned long long)(t ? t : 1));
		q->argv[3 + n + 2 * i + 1] = xasprintf("%llu", (unsigned long long)w);
	}
	for (int i = 0; i < q->argc; i++)
		q->argl[i] = strlen(q->argv[i]);
	if (redisAsyncCommandArgv(rd.ac, on_reply, q, q->argc, (const char **)q->argv, q->argl) !=
	    REDIS_OK) {
		req_unref(q);
		return NULL;
	}
	q->refs = 2;
	uv_timer_init(loop, &q->timer);
	q->timer.data = q;
	uv_timer_start(&q->timer, on_timeout, (uint64_t)c->rl_redis_timeout * 1000u, 0);
	return q;
}

void
rl_redis_cancel(struct rl_rreq *q)
{
	if (q == NULL || q->answered)
		return;
	q->answered = true; /* no callback any more */
	uv_timer_stop(&q->timer);
	uv_close((uv_handle_t *)&q->timer, timer_closed);
}

static void
retry_free(uv_handle_t *h)
{
	xfree(h);
}

void
rl_redis_shutdown(void)
{
	if (rd.ac) {
		/* every command still waiting is answered "failed" (no session is
		 * left to hear it); hiredis closes its handle on the loop */
		redisAsyncContext *ac = rd.ac;
		rd.ac = NULL;
		rd.up = false;
		redisAsyncFree(ac);
	}
	if (rd.retry) {
		uv_close((uv_handle_t *)rd.retry, retry_free);
		rd.retry = NULL;
	}
	xfree(rd.addr);
	rd.addr = NULL;
}
