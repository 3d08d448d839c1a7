/*
 * reports.c - the periodic reports' clock, their way into the queue and
 * their counts' saves (contract in reports.h).
 *
 * The interval is read again at each tick, so a reload that changes it
 * applies from the next period on; the counting itself (mailauth.c for
 * DMARC) follows the configuration each message began under.
 */
#include "daemon/reports.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/envelope.h"
#include "common/maillog.h"
#include "common/qid.h"
#include "deliver/tlsrpt.h"
#include "deliver/tlsrpt_send.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mailauth/mailauth.h"
#include "queue/queue.h"

typedef struct kind {
	const reports_kind_t *k;
	void *arg;
	uv_timer_t *timer;
	bool saving; /* a save is on the pool */
} kind_t;

static struct {
	uv_loop_t *loop;
	config_t *const *cfg;
	sched_t *sched;
	char *spool_dir;
	kind_t kinds[REPORTS_MAX_KINDS];
	size_t nkinds;
	uv_timer_t *save_timer;
	bool stopped;
	unsigned saves_pending;
	void (*done)(void *);
	void *done_arg;
} R;

/* ---- into the queue ---- */

typedef struct store_job {
	uv_work_t w;
	const reports_kind_t *k;
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
		log_err("%s to <%s>: cannot queue it: %s", j->k->tag, j->env->rcpt[0].addr,
		    strerror(j->err));
	} else {
		maillog_accepted(j->stored->qid, "local", "local", NULL, j->stored->sender, j->len, 1,
		    j->k->tag, "", false);
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

/* submit_arg: the kind */
static void
submit(void *submit_arg, const char *sender, const char *rcpt, const char *content, size_t len)
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
	j->k = ((const kind_t *)submit_arg)->k;
	e->flags |= j->k->env_flags;
	j->env = e;
	j->spool_dir = xstrdup(R.spool_dir);
	j->content = xmalloc(len + 1);
	memcpy(j->content, content, len);
	j->len = len;
	j->w.data = j;
	uv_queue_work(R.loop, &j->w, store_work, store_done);
}

/* ---- the clock ---- */

/* ms to the next tick of kind x */
static uint64_t
next_tick(const kind_t *x)
{
	uint64_t iv = x->k->interval(*R.cfg);
	if (iv == 0)
		iv = 1;
	if (!x->k->aligned)
		return iv * 1000u;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
	uint64_t ms = iv * 1000u - now_ms % (iv * 1000u);
	return ms < 50 ? ms + iv * 1000u : ms;
}

static bool save_kind(kind_t *x);

static void
tick(uv_timer_t *t)
{
	kind_t *x = t->data;
	const config_t *c = *R.cfg;
	if (x->k->enabled(c)) {
		x->k->flush(x->arg, c, submit, x);
		save_kind(x); /* the new, empty period: a restart must not report the old again */
	}
	uv_timer_start(t, tick, next_tick(x), 0);
}

static void
kind_start(kind_t *x)
{
	x->timer = xmalloc(sizeof *x->timer);
	uv_timer_init(R.loop, x->timer);
	uv_unref((uv_handle_t *)x->timer);
	x->timer->data = x;
	uint64_t first = next_tick(x);
	if (!x->k->aligned && x->k->begun) {
		/* a period restored from the spool ends where it would have */
		time_t end = x->k->begun(x->arg) + (time_t)x->k->interval(*R.cfg), now = time(NULL);
		first = end <= now ? 0 : (uint64_t)(end - now) * 1000u;
	}
	uv_timer_start(x->timer, tick, first, 0);
}

/* ---- the saves ---- */

typedef struct save_job {
	uv_work_t w;
	kind_t *x;
	char *path;
	char *data;
	size_t len;
	int err;
} save_job_t;

static void
save_work(uv_work_t *w)
{
	save_job_t *j = w->data;
	char *tmp = xasprintf("%s.tmp", j->path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	j->err = 0;
	if (fd < 0 || write_all(fd, j->data, j->len) < 0 || fsync(fd) < 0)
		j->err = errno;
	if (fd >= 0 && close(fd) < 0 && !j->err)
		j->err = errno;
	if (!j->err && rename(tmp, j->path) < 0)
		j->err = errno;
	if (j->err) {
		unlink(tmp);
	} else {
		char *dir = xstrdup(j->path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		if (fsync_dir(slash ? dir : ".") < 0)
			j->err = errno;
		xfree(dir);
	}
	xfree(tmp);
}

static void
finish_stop(void)
{
	void (*done)(void *) = R.done;
	R.done = NULL;
	xfree(R.spool_dir);
	R.spool_dir = NULL;
	done(R.done_arg);
}

static void
save_done(uv_work_t *w, int status)
{
	save_job_t *j = w->data;
	kind_t *x = j->x;
	if (j->err)
		log_err("%s: cannot save the counts in %s: %s", x->k->tag, j->path, strerror(j->err));
	x->saving = false;
	xfree(j->path);
	xfree(j->data);
	xfree(j);
	if (!R.stopped || !R.done)
		return;
	/* stopping: a save that began before the stop may lack the last
	 * counts; write again when there is anything newer */
	if (save_kind(x))
		return;
	if (--R.saves_pending == 0)
		finish_stop();
}

/* queue a save of x when it has something new; true if one was queued */
static bool
save_kind(kind_t *x)
{
	if (!x->k->save || !x->k->file || x->saving)
		return false;
	size_t len = 0;
	char *data = x->k->save(x->arg, &len);
	if (!data)
		return false;
	save_job_t *j = xcalloc(1, sizeof *j);
	j->x = x;
	j->path = xasprintf("%s/%s", R.spool_dir, x->k->file);
	j->data = data;
	j->len = len;
	j->w.data = j;
	x->saving = true;
	uv_queue_work(R.loop, &j->w, save_work, save_done);
	return true;
}

static void
save_all(void)
{
	for (size_t i = 0; i < R.nkinds; i++)
		save_kind(&R.kinds[i]);
}

static void
on_save_timer(uv_timer_t *t)
{
	save_all();
}

/* ---- DMARC ---- */

static bool
dmarc_enabled(const config_t *c)
{
	return c->dmarc_reports;
}

static unsigned
dmarc_interval(const config_t *c)
{
	return c->dmarc_report_interval;
}

static void
dmarc_flush(void *kind_arg, const config_t *c, reports_submit_fn fn, void *submit_arg)
{
	mailauth_reports_flush(kind_arg, c, fn, submit_arg);
}

/* the period's counts (mailauth_reports_save's text), NULL when unchanged */
static char *
dmarc_save(void *kind_arg, size_t *len)
{
	buf_t b = BUF_INIT;
	if (!mailauth_reports_save(&b)) {
		buf_free(&b);
		return NULL;
	}
	*len = b.len;
	return buf_steal(&b);
}

static time_t
dmarc_begun(void *kind_arg)
{
	return mailauth_reports_begin();
}

#define DMARC_FILE "dmarc-reports"

static const reports_kind_t dmarc_kind = {
	.tag = "DMARC-REPORT",
	.enabled = dmarc_enabled,
	.interval = dmarc_interval,
	.aligned = false,
	.flush = dmarc_flush,
	.file = DMARC_FILE,
	.save = dmarc_save,
	.begun = dmarc_begun,
};

/* ---- TLS-RPT (RFC 8460) ---- */

static bool
tlsrpt_enabled(const config_t *c)
{
	return c->tls_reports;
}

static unsigned
tlsrpt_interval(const config_t *c)
{
	return c->tls_report_interval;
}

/* o from c; *list (to free) holds the strings servers[] points into */
static void
tlsrpt_options(const config_t *c, tlsrpt_send_options_t *o, const char **servers, char **list)
{
	memset(o, 0, sizeof *o);
	o->org = c->tls_report_org;
	o->email = c->tls_report_email;
	o->contact = c->tls_report_contact;
	/* section 5.3: the submitter is our domain: the reports' From domain */
	o->submitter = strrchr(c->tls_report_email, '@') + 1;
	o->ca_file = c->smtp_tls_ca_file;
	*list = c->dns_servers ? xstrdup(c->dns_servers) : NULL;
	char *save = NULL;
	size_t ns = 0;
	for (char *t = *list ? strtok_r(*list, " \t,", &save) : NULL; t && ns < 32;
	    t = strtok_r(NULL, " \t,", &save))
		servers[ns++] = t;
	servers[ns] = NULL;
	o->dns.servers = ns ? servers : NULL;
	o->dns.timeout_ms = c->dns_timeout * 1000u;
	/* a day's interval reports whole UTC days; a shorter one (tests)
	 * reports what was counted so far */
	o->through_now = c->tls_report_interval < 86400;
	o->retry_s = c->tls_report_retry;
}

static void
tlsrpt_flush(void *kind_arg, const config_t *c, reports_submit_fn fn, void *submit_arg)
{
	tlsrpt_send_options_t o;
	const char *servers[33];
	char *list;
	tlsrpt_options(c, &o, servers, &list);
	tlsrpt_send_flush(kind_arg, &o, fn, submit_arg);
	xfree(list);
}

/* the HTTPS reports waiting for a retry (RFC 8460 section 5.5): looked at
 * every minute, or every tls_report_retry when shorter */
static unsigned
tlsrpt_retry_interval(const config_t *c)
{
	return c->tls_report_retry < 60 ? c->tls_report_retry : 60;
}

static void
tlsrpt_retry(void *kind_arg, const config_t *c, reports_submit_fn fn, void *submit_arg)
{
	tlsrpt_send_options_t o;
	const char *servers[33];
	char *list;
	tlsrpt_options(c, &o, servers, &list);
	tlsrpt_send_retry(kind_arg, &o);
	xfree(list);
}

static char *
tlsrpt_save_pending(void *kind_arg, size_t *len)
{
	return tlsrpt_send_save(len);
}

static void
tlsrpt_stop(void *kind_arg)
{
	tlsrpt_send_stop();
}

static char *
tlsrpt_save_counts(void *kind_arg, size_t *len)
{
	return tlsrpt_save(len);
}

static const reports_kind_t tlsrpt_kind = {
	.tag = "TLS-REPORT",
	.enabled = tlsrpt_enabled,
	.interval = tlsrpt_interval,
	.aligned = true,
	.flush = tlsrpt_flush,
	.stop = tlsrpt_stop,
	.file = TLSRPT_FILE,
	.save = tlsrpt_save_counts,
	/* RFC 8460 section 5.3: delivered despite TLS failures (the message
	 * says "TLS-Required: No", RFC 8689 section 4.2.2) */
	.env_flags = ENV_TLS_OPTIONAL,
};

/* at start (blocking is fine then): the counts of the period a stop or a
 * crash interrupted; the period goes on from its saved start */
static void
dmarc_load(const char *spool_dir)
{
	char *path = xasprintf("%s/" DMARC_FILE, spool_dir);
	char *data = NULL;
	size_t len = 0;
	if (read_file(path, &data, &len, 1u << 30) < 0) {
		if (errno != ENOENT)
			log_warn("DMARC-REPORT: cannot read %s: %s; counting starts afresh", path,
			    strerror(errno));
	} else {
		buf_t err = BUF_INIT;
		if (mailauth_reports_load(data, len, &err) < 0)
			log_warn("DMARC-REPORT: %s: %s; counting starts afresh", path, buf_cstr(&err));
		else
			log_info("DMARC-REPORT: the counts since %lld restored from %s",
			    (long long)mailauth_reports_begin(), path);
		buf_free(&err);
	}
	xfree(data);
	xfree(path);
}

static const reports_kind_t tlsrpt_retry_kind = {
	.tag = "TLS-REPORT-RETRY",
	.enabled = tlsrpt_enabled,
	.interval = tlsrpt_retry_interval,
	.aligned = false,
	.flush = tlsrpt_retry,
	.file = TLSRPT_RETRY_FILE,
	.save = tlsrpt_save_pending,
};

/* ---- public ---- */

void
reports_start(uv_loop_t *loop, config_t *const *cfg, sched_t *sched, const char *spool_dir)
{
	R.loop = loop;
	R.cfg = cfg;
	R.sched = sched;
	R.spool_dir = xstrdup(spool_dir);
	R.stopped = false;
	R.nkinds = 0;
	R.save_timer = xmalloc(sizeof *R.save_timer);
	uv_timer_init(loop, R.save_timer);
	uv_unref((uv_handle_t *)R.save_timer);
	uv_timer_start(R.save_timer, on_save_timer, REPORTS_SAVE_EVERY * 1000u,
	    REPORTS_SAVE_EVERY * 1000u);
	if ((*cfg)->dmarc_reports)
		dmarc_load(spool_dir);
	reports_add(&dmarc_kind, loop);
	/* the counts saved by the last run (a crash loses the last minute) */
	char *path = xasprintf("%s/%s", spool_dir, TLSRPT_FILE);
	buf_t err = BUF_INIT;
	if (tlsrpt_load(path, &err) < 0)
		log_warn("tls-rpt: %s; starting with no counts", buf_cstr(&err));
	buf_free(&err);
	xfree(path);
	path = xasprintf("%s/%s", spool_dir, TLSRPT_RETRY_FILE);
	if (tlsrpt_send_load(path, &err) < 0)
		log_warn("tls-rpt: %s; no report waits for a retry", buf_cstr(&err));
	buf_free(&err);
	xfree(path);
	tlsrpt_set_enabled((*cfg)->tls_reports);
	reports_add(&tlsrpt_kind, loop);
	reports_add(&tlsrpt_retry_kind, loop);
}

void
reports_add(const reports_kind_t *k, void *kind_arg)
{
	if (R.stopped || !R.loop || R.nkinds >= REPORTS_MAX_KINDS)
		return;
	kind_t *x = &R.kinds[R.nkinds++];
	memset(x, 0, sizeof *x);
	x->k = k;
	x->arg = kind_arg;
	kind_start(x);
}

int
reports_flush_now(const char *tag)
{
	for (size_t i = 0; i < R.nkinds && !R.stopped; i++)
		if (strcmp(R.kinds[i].k->tag, tag) == 0) {
			R.kinds[i].k->flush(R.kinds[i].arg, *R.cfg, submit, &R.kinds[i]);
			return 0;
		}
	return -1;
}

static void
timer_closed(uv_handle_t *h)
{
	xfree(h);
}

void
reports_stop(void (*done)(void *), void *arg)
{
	if (R.stopped || !R.save_timer) {
		done(arg);
		return;
	}
	R.stopped = true;
	for (size_t i = 0; i < R.nkinds; i++) {
		if (R.kinds[i].k->stop)
			R.kinds[i].k->stop(R.kinds[i].arg);
		uv_timer_stop(R.kinds[i].timer);
		uv_close((uv_handle_t *)R.kinds[i].timer, timer_closed);
		R.kinds[i].timer = NULL;
	}
	uv_timer_stop(R.save_timer);
	uv_close((uv_handle_t *)R.save_timer, timer_closed);
	R.save_timer = NULL;
	/* the final saves: a save still on the pool may predate the last
	 * counts, so wait for it, then write again (at most twice per kind) */
	R.done = done;
	R.done_arg = arg;
	R.saves_pending = 1; /* this function's own */
	for (size_t i = 0; i < R.nkinds; i++) {
		kind_t *x = &R.kinds[i];
		if (!x->k->save)
			continue;
		if (x->saving)
			R.saves_pending++; /* its save_done counts down (and saves again) */
		else if (save_kind(x))
			R.saves_pending++;
	}
	if (--R.saves_pending == 0)
		finish_stop();
}
