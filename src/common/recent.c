/*
 * recent.c - the last hour's events in fixed memory (see recent.h).
 *
 * The minute ring is indexed by minute % RECENT_MINUTES; a slot whose
 * minute is not the current one is cleared before it counts again, so a
 * quiet hour needs no timer. The reject ring overwrites its oldest entry.
 */
#include "common/recent.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/envelope.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static recent_minute_t ring[RECENT_MINUTES];
static recent_reject_t rej[RECENT_REJECTS];
static unsigned rej_next;  /* where the next rejection goes */
static uint64_t rej_total;
static int64_t (*clock_fn)(void);

static int64_t
now_s(void)
{
	return clock_fn ? clock_fn() : (int64_t)time(NULL);
}

/* the current minute's slot, cleared when it held an older minute; mu held */
static recent_minute_t *
slot(int64_t now)
{
	int64_t m = now / 60;
	recent_minute_t *s = &ring[m % RECENT_MINUTES];
	if (s->minute != m) {
		memset(s, 0, sizeof *s);
		s->minute = m;
	}
	return s;
}

/* copy at most n bytes of src into dst (size cap), control characters as '?' */
static void
copy_clean(char *dst, size_t cap, const char *src, size_t n)
{
	size_t i = 0;
	for (; i + 1 < cap && i < n && src[i]; i++) {
		unsigned char ch = (unsigned char)src[i];
		dst[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	dst[i] = '\0';
}

void
recent_delivery(int status)
{
	pthread_mutex_lock(&mu);
	recent_minute_t *s = slot(now_s());
	if (status == RCPT_SENT)
		s->sent++;
	else if (status == RCPT_PENDING)
		s->deferred++;
	else
		s->bounced++;
	pthread_mutex_unlock(&mu);
}

void
recent_session(bool inbound, bool tls)
{
	pthread_mutex_lock(&mu);
	recent_minute_t *s = slot(now_s());
	if (inbound)
		(*(tls ? &s->in_tls : &s->in_plain))++;
	else
		(*(tls ? &s->out_tls : &s->out_plain))++;
	pthread_mutex_unlock(&mu);
}

static bool
digit(char c)
{
	return c >= '0' && c <= '9';
}

void
recent_reject(const char *client, const char *cmd, const char *reply)
{
	recent_reject_t r;
	memset(&r, 0, sizeof r);
	r.time = now_s();
	copy_clean(r.client, sizeof r.client, client ? client : "", SIZE_MAX);
	copy_clean(r.cmd, sizeof r.cmd, cmd ? cmd : "", SIZE_MAX);
	const char *p = reply ? reply : "";
	/* "550 5.1.1 text" or "550-..." (RFC 5321 §4.2; RFC 3463 x.y.z) */
	if (digit(p[0]) && digit(p[1]) && digit(p[2]) && (p[3] == ' ' || p[3] == '-' || !p[3])) {
		copy_clean(r.code, sizeof r.code, p, 3);
		p += p[3] ? 4 : 3;
		size_t n = 0;
		while (digit(p[n]) || p[n] == '.')
			n++;
		if (n >= 5 && n < sizeof r.status && digit(p[0]) && p[1] == '.' &&
		    (p[n] == ' ' || !p[n])) {
			copy_clean(r.status, sizeof r.status, p, n);
			p += n;
			while (*p == ' ')
				p++;
		}
	}
	copy_clean(r.text, sizeof r.text, p, SIZE_MAX);
	pthread_mutex_lock(&mu);
	rej[rej_next] = r;
	rej_next = (rej_next + 1) % RECENT_REJECTS;
	rej_total++;
	pthread_mutex_unlock(&mu);
}

void
recent_snapshot(recent_snap_t *out)
{
	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&mu);
	int64_t now = now_s();
	out->now = now;
	int64_t cur = now / 60;
	for (int i = 0; i < RECENT_MINUTES; i++) {
		int64_t m = cur - (RECENT_MINUTES - 1) + i;
		const recent_minute_t *s = &ring[((m % RECENT_MINUTES) + RECENT_MINUTES) % RECENT_MINUTES];
		if (s->minute == m)
			out->minutes[i] = *s;
		else
			out->minutes[i].minute = m;
	}
	unsigned kept = rej_total < RECENT_REJECTS ? (unsigned)rej_total : RECENT_REJECTS;
	for (unsigned i = 0; i < kept; i++)
		out->rejects[i] = rej[(rej_next + RECENT_REJECTS - 1 - i) % RECENT_REJECTS];
	out->nrejects = kept;
	out->rejects_total = rej_total;
	pthread_mutex_unlock(&mu);
}

void
recent_reset(int64_t (*now)(void))
{
	pthread_mutex_lock(&mu);
	memset(ring, 0, sizeof ring);
	memset(rej, 0, sizeof rej);
	rej_next = 0;
	rej_total = 0;
	clock_fn = now;
	pthread_mutex_unlock(&mu);
}
