/*
 * qstats.c - SCHEDULE: the queue in the metrics (sched_qstats in
 * sched.h), read from the scheduler's index at each scrape.
 *
 *   tern_queue_messages{state}      held (by the administrator or a
 *       filter), active (a delivery in flight, or never tried yet),
 *       deferred (waiting for a retry)
 *   tern_queue_recipients{domain}   pending recipients by their domain:
 *       the QSTATS_TOP_DOMAINS domains with most, the rest summed as
 *       "other", so the series stay bounded whatever the queue holds
 *   tern_queue_oldest_message_age_seconds
 * Costs one walk of the index per scrape (O(messages + recipients), a
 * map of the distinct domains, freed before returning).
 * Event-loop thread only.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/lru.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"
#include "sched/sched_int.h"

#define QSTATS_TOP_DOMAINS 20

METRIC_GAUGE(m_msgs, "tern_queue_messages", "Messages in the queue, by state (active, deferred, held)",
    "state");
METRIC_GAUGE_CAP(m_doms, QSTATS_TOP_DOMAINS + 1, "tern_queue_recipients",
    "Pending recipients in the queue by domain: the 20 domains with most, the rest as \"other\"",
    "domain");
METRIC_GAUGE(m_oldest, "tern_queue_oldest_message_age_seconds",
    "Age of the oldest message in the queue (0 when empty)");

typedef struct dcount {
	const char *domain;
	size_t n;
} dcount_t;

static int
by_count(const void *a, const void *b)
{
	const dcount_t *x = a, *y = b;
	if (x->n != y->n)
		return x->n < y->n ? 1 : -1;
	return strcmp(x->domain, y->domain);
}

void
sched_qstats(void *arg)
{
	const sched_t *s = arg;
	size_t held = 0, active = 0, deferred = 0;
	int64_t oldest = 0;
	lru_t doms = LRU_INIT(sizeof(size_t));
	char dom[256];
	for (const smsg_t *m = s->all.next; m != &s->all; m = m->next) {
		const envelope_t *env = m->env;
		bool tried = false;
		for (size_t i = 0; i < env->nrcpt; i++) {
			const env_rcpt_t *r = &env->rcpt[i];
			tried |= r->attempts > 0;
			if (r->status != RCPT_PENDING)
				continue;
			const char *at = r->addr ? strrchr(r->addr, '@') : NULL;
			size_t k = 0;
			for (const char *p = at ? at + 1 : ""; *p && k < sizeof dom - 1; p++)
				dom[k++] = (char)tolower((unsigned char)*p);
			dom[k] = '\0';
			size_t *c = lru_get(&doms, dom);
			if (!c)
				c = lru_put(&doms, dom);
			(*c)++;
		}
		if (m->held)
			held++;
		else if (m->inflight > 0 || !tried)
			active++;
		else
			deferred++;
		if (oldest == 0 || env->arrival_us < oldest)
			oldest = env->arrival_us;
	}
	metric_set(&m_msgs, (double)active, "active");
	metric_set(&m_msgs, (double)deferred, "deferred");
	metric_set(&m_msgs, (double)held, "held");
	metric_set(&m_oldest, oldest ? (double)(clock_wall_us() - oldest) / 1e6 : 0.0);

	size_t n = lru_count(&doms), k = 0;
	dcount_t *v = xcalloc(n ? n : 1, sizeof *v);
	for (size_t *c = lru_oldest(&doms); c; c = lru_newer(c))
		v[k++] = (dcount_t){lru_key(c), *c};
	qsort(v, n, sizeof *v, by_count);
	metric_clear(&m_doms);
	size_t other = 0;
	for (k = 0; k < n; k++) {
		if (k < QSTATS_TOP_DOMAINS)
			metric_set(&m_doms, (double)v[k].n, v[k].domain);
		else
			other += v[k].n;
	}
	if (other)
		metric_set(&m_doms, (double)other, "other");
	xfree(v);
	lru_clear(&doms);
}
