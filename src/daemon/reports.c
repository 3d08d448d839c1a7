/*
 * reports.c - the DMARC aggregate reports' clock and their way into the
 * queue (contract in reports.h).
 *
 * The interval is read again at each tick, so a reload that changes it
 * applies from the next period on; the counting itself (mailauth.c)
 * follows dmarc_reports of the configuration each message began under.
 */
#include "daemon/reports.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/envelope.h"
#include "common/maillog.h"
#include "common/qid.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mailauth/mailauth.h"
#include "queue/queue.h"

static struct {
	uv_loop_t *loop;
	config_t *const *cfg;
	sched_t *sched;
	char *spool_dir;
	uv_timer_t *timer;
	bool stopped;
} R;

typedef struct store_job {
	uv_work_t w;
	envelope_t *env;
	char *spool_dir;
	char *content;
	size_t len;
	envelope_t *stored;
	int err;
} store_job_t;

static void
store_work(uv_work_t *w)
{
	store_job_t *j = w->data;
	j->stored = queue_store(j->spool_dir, j->env, j->content, j->len);
	j->err = j->stored ? 0 : errno;
}

static void
store_done(uv_work_t *w, int status)
{
	store_job_t *j = w->data;
	if (!j->stored) {
		log_err("dmarc report to <%s>: cannot queue it: %s", j->env->rcpt[0].addr,
		    strerror(j->err));
	} else {
		maillog_accepted(j->stored->qid, "local", "local", NULL, j->stored->sender, j->len, 1,
		    "DMARC-REPORT", "", false);
		if (R.stopped)
			envelope_free(j->stored); /* in the queue: recovered at the next start */
		else
			sched_submit(R.sched, j->stored, false);
	}
	envelope_free(j->env);
	xfree(j->spool_dir);
	xfree(j->content);
	xfree(j);
}

static void
submit(void *arg, const char *sender, const char *rcpt, const char *content, size_t len)
{
	if (R.stopped)
		return;
	store_job_t *j = xcalloc(1, sizeof *j);
	envelope_t *e = envelope_new();
	qid_new(e->qid);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	e->arrival_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	e->sender = xstrdup(sender);
	e->client_addr = xstrdup("local");
	envelope_add_rcpt(e, rcpt, NULL, NULL, NOTIFY_NEVER);
	j->env = e;
	j->spool_dir = xstrdup(R.spool_dir);
	j->content = xmalloc(len + 1);
	memcpy(j->content, content, len);
	j->len = len;
	j->w.data = j;
	uv_queue_work(R.loop, &j->w, store_work, store_done);
}

static void
tick(uv_timer_t *t)
{
	const config_t *c = *R.cfg;
	if (c->dmarc_reports)
		mailauth_reports_flush(R.loop, c, submit, NULL);
	uv_timer_start(t, tick, (uint64_t)c->dmarc_report_interval * 1000u, 0);
}

void
reports_start(uv_loop_t *loop, config_t *const *cfg, sched_t *sched, const char *spool_dir)
{
	R.loop = loop;
	R.cfg = cfg;
	R.sched = sched;
	R.spool_dir = xstrdup(spool_dir);
	R.stopped = false;
	R.timer = xmalloc(sizeof *R.timer);
	uv_timer_init(loop, R.timer);
	uv_unref((uv_handle_t *)R.timer);
	uv_timer_start(R.timer, tick, (uint64_t)(*cfg)->dmarc_report_interval * 1000u, 0);
}

static void
timer_closed(uv_handle_t *h)
{
	xfree(h);
}

void
reports_stop(void)
{
	if (R.stopped || !R.timer)
		return;
	R.stopped = true;
	uv_timer_stop(R.timer);
	uv_close((uv_handle_t *)R.timer, timer_closed);
	R.timer = NULL;
	xfree(R.spool_dir);
	R.spool_dir = NULL;
}
