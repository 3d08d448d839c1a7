/*
 * queuealarm.c - the queue-age alarm (see queuealarm.h).
 */
#include "daemon/queuealarm.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "lib/log.h"

static struct {
	uv_timer_t timer;
	config_t *const *cfg;
	sched_t *sched;
	bool started;
	bool on;          /* the alarm is raised */
	uint64_t last_ms; /* loop time of the last warning line */
} A;

static int64_t
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* the check period for threshold t: a quarter of it, 1 s to 60 s */
static uint64_t
period_ms(unsigned t)
{
	uint64_t p = t ? (uint64_t)t * 1000 / 4 : 60000;
	return p < 1000 ? 1000 : p > 60000 ? 60000 : p;
}

static void
check(uv_timer_t *h)
{
	const config_t *c = *A.cfg;
	unsigned thr = c->queue_age_warning;
	sched_oldest_t o;
	bool found = A.sched && sched_oldest(A.sched, &o);
	int64_t age = found ? (now_us() - o.arrival_us) / 1000000 : 0;
	if (age < 0)
		age = 0;
	uint64_t now = uv_now(h->loop);
	if (thr && found && age >= (int64_t)thr) {
		if (!A.on || now - A.last_ms >= (uint64_t)c->queue_age_warning_repeat * 1000) {
			if (o.rcpt[0])
				log_warn("%s: queue age alarm age=%llds threshold=%us to=<%s> attempts=%u "
				    "pending=%zu (%s)", o.qid, (long long)age, thr, o.rcpt, o.attempts,
				    o.npending, o.reply[0] ? o.reply : "not tried yet");
			else
				log_warn("%s: queue age alarm age=%llds threshold=%us pending=%zu (in delivery "
				    "now)", o.qid, (long long)age, thr, o.npending);
			A.on = true;
			A.last_ms = now;
		}
	} else if (A.on) {
		if (found)
			log_info("%s: queue age alarm cleared oldest_age=%llds threshold=%us", o.qid,
			    (long long)age, thr);
		else
			log_info("queue age alarm cleared queue=empty threshold=%us", thr);
		A.on = false;
	}
	uv_timer_start(&A.timer, check, period_ms(thr), 0);
}

void
queuealarm_start(uv_loop_t *loop, config_t *const *cfg, sched_t *sched)
{
	A.cfg = cfg;
	A.sched = sched;
	A.on = false;
	uv_timer_init(loop, &A.timer);
	uv_unref((uv_handle_t *)&A.timer);
	uv_timer_start(&A.timer, check, period_ms((*cfg)->queue_age_warning), 0);
	A.started = true;
}

void
queuealarm_stop(void)
{
	if (!A.started)
		return;
	uv_timer_stop(&A.timer);
	uv_close((uv_handle_t *)&A.timer, NULL);
	A.started = false;
	A.sched = NULL;
}

double
queuealarm_oldest_age(void)
{
	sched_oldest_t o;
	if (!A.sched || !sched_oldest(A.sched, &o))
		return 0;
	double age = (double)(now_us() - o.arrival_us) / 1e6;
	return age < 0 ? 0 : age;
}
