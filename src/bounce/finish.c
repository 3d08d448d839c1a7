/*
 * finish.c - BOUNCE: building and storing a message's DSNs, delay warnings
 * and postmaster notices on the thread pool (see finish.h).
 *
 * Threads: the worker owns the job (and its envelope copy) until the
 * callback; it reads the original's content through the queue API and
 * stores each DSN with queue_store (durable before it returns).
 *
 * Must not: decide when a DSN is due (the scheduler does), or touch the
 * scheduler's envelope.
 */
#include "bounce/finish.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce/dsn.h"
#include "common/addr.h"
#include "common/maillog.h"
#include "lib/clock.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

bounce_job_t *
bounce_job_new(enum bounce_what what, const envelope_t *env, const char *spool_dir,
    const char *hostname)
{
	bounce_job_t *j = xcalloc(1, sizeof *j);
	j->what = what;
	j->env = envelope_dup(env);
	j->spool_dir = xstrdup(spool_dir);
	j->hostname = xstrdup(hostname);
	return j;
}

bool
bounce_wants_postmaster(const bounce_job_t *j)
{
	const envelope_t *env = j->env;
	if (j->what == BOUNCE_WARN || (env->flags & ENV_PM_NOTICE) ||
	    (env->sender && env->sender[0]))
		return false;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].status == RCPT_FAILED)
			return true;
	return false;
}

void
bounce_job_free(bounce_job_t *j)
{
	if (!j)
		return;
	for (size_t k = 0; k < j->nout; k++)
		envelope_free(j->out[k]);
	envelope_free(j->env);
	for (size_t k = 0; k < j->npm; k++)
		xfree(j->pm[k]);
	xfree(j->pm);
	xfree(j->pm_addr);
	xfree(j->spool_dir);
	xfree(j->hostname);
	xfree(j);
}

static void
job_error(bounce_job_t *j, int e, const char *what, const char *why)
{
	j->err = e;
	snprintf(j->errtext, sizeof j->errtext, "%s: %s", what, why);
}

/* The DSN's own envelope: from <>, to to[0..nto), ENV_IS_BOUNCE | flags. */
static envelope_t *
dsn_envelope(const char *bqid, const dsn_info_t *info, char *const *to, size_t nto, unsigned flags)
{
	envelope_t *b = envelope_new();
	memcpy(b->qid, bqid, QID_SIZE);
	b->arrival_us = clock_wall_us();
	b->sender = xstrdup("");
	b->flags = ENV_IS_BOUNCE | flags;
	b->client_addr = xstrdup("local");
	b->smtputf8 = info->smtputf8;
	b->body = info->body;
	for (size_t i = 0; i < nto; i++)
		envelope_add_rcpt(b, to[i], NULL, NULL, NOTIFY_NEVER);
	return b;
}

/*
 * Build a DSN of `kind` about env's recipients idx[0..n), queue it from <>
 * to to[0..nto) and add it to j's results under the log words `what`.
 * Blocking (worker). On failure j->err and j->errtext are set.
 */
static void
dsn_queue(bounce_job_t *j, const envelope_t *env, const size_t *idx, size_t n, enum dsn_kind kind,
    char *const *to, size_t nto, unsigned flags, const char *what)
{
	buf_t msg = BUF_INIT, err = BUF_INIT;
	int fd = queue_open_content(j->spool_dir, env);
	int open_errno = errno;
	char from[300];
	snprintf(from, sizeof from, "MAILER-DAEMON@%s", j->hostname);
	char bqid[QID_SIZE];
	qid_new(bqid);
	dsn_params_t p = {0};
	p.hostname = j->hostname;
	p.postmaster = from;
	p.now = (int64_t)time(NULL);
	p.kind = kind;
	p.retry_until = kind == DSN_DELAY ? j->retry_until : 0;
	p.unique = bqid;
	dsn_info_t info = {0};
	/* RFC 8689 §5: a DSN about a REQUIRETLS message is itself sent with
	 * REQUIRETLS, and carries the original's header section only, never
	 * its body (as with RET=HDRS) */
	envelope_t *hdrs = NULL;
	if (env->flags & ENV_REQUIRETLS) {
		flags |= ENV_REQUIRETLS;
		if (env->ret != RET_HDRS) {
			hdrs = envelope_dup(env);
			hdrs->ret = RET_HDRS;
			env = hdrs;
		}
	}
	if (fd < 0) {
		job_error(j, open_errno, "cannot build DSN", strerror(open_errno));
	} else if (dsn_build(&msg, env, idx, n, &p, fd, &info, &err) < 0) {
		job_error(j, EIO, "cannot build DSN", buf_cstr(&err));
	} else {
		envelope_t *b = dsn_envelope(bqid, &info, to, nto, flags);
		envelope_t *stored = queue_store(j->spool_dir, b, msg.data, msg.len);
		if (!stored)
			job_error(j, errno, "cannot queue DSN", strerror(errno));
		else if (j->nout < BOUNCE_MAX_DSNS) {
			j->out[j->nout] = stored;
			j->what_log[j->nout++] = what;
		} else {
			envelope_free(stored);
		}
		envelope_free(b);
	}
	if (fd >= 0)
		close(fd);
	envelope_free(hdrs);
	buf_free(&msg);
	buf_free(&err);
}

/* the delay warning: pending recipients that want one (RFC 3461 §4.1) */
static void
warn_work(bounce_job_t *j)
{
	envelope_t *env = j->env;
	size_t *idx = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof *idx);
	size_t n = 0;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].status == RCPT_PENDING && dsn_wanted(env, i, DSN_DELAY))
			idx[n++] = i;
	if (n > 0)
		dsn_queue(j, env, idx, n, DSN_DELAY, &env->sender, 1, 0, "sender delay notification");
	xfree(idx);
	if (j->err == 0) {
		/* recorded with fsync, so that it is sent once, even across restarts */
		env->flags |= ENV_DELAY_WARNED;
		if (queue_append_status(j->spool_dir, env, NULL, 0, true) < 0)
			job_error(j, errno, "cannot record the delay warning", strerror(errno));
	}
}

/* Failures: one DSN to the sender listing every failed recipient that
 * wants one; from <>, none (RFC 5321 §4.5.5), maybe a notice to the
 * postmaster with the headers only. Then the failed recipients are
 * reported: fsync'd when the message stays queued (a round), so a restart
 * does not report them again. */
static void
failures_work(bounce_job_t *j, size_t *failed, size_t *want)
{
	envelope_t *env = j->env;
	size_t nfailed = 0, nwant = 0;
	bool null_sender = !env->sender || env->sender[0] == '\0';

	for (size_t i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i].status != RCPT_FAILED)
			continue;
		failed[nfailed++] = i;
		if (dsn_wanted(env, i, DSN_FAILURE))
			want[nwant++] = i;
	}
	if (nwant > 0)
		dsn_queue(j, env, want, nwant, DSN_FAILURE, &env->sender, 1, 0,
		    "sender non-delivery notification");
	if (j->err == 0 && nfailed > 0 && null_sender) {
		j->discarded = nfailed;
		if (j->npm > 0) {
			envelope_t *pe = envelope_dup(env);
			xfree(pe->sender);
			pe->sender = xstrdup(j->pm_addr);
			pe->ret = RET_HDRS;
			dsn_queue(j, pe, failed, nfailed, DSN_FAILURE, j->pm, j->npm, ENV_PM_NOTICE,
			    "postmaster notification of an undeliverable bounce");
			envelope_free(pe);
		}
	}
	if (j->err == 0 && nfailed > 0) {
		/* the DSNs are durable; the failures are reported */
		for (size_t k = 0; k < nfailed; k++)
			env->rcpt[failed[k]].status = RCPT_REPORTED;
		if (queue_append_status(j->spool_dir, env, failed, nfailed, j->what == BOUNCE_ROUND) < 0 &&
		    j->what == BOUNCE_ROUND)
			job_error(j, errno, "cannot record the reported recipients", strerror(errno));
	}
}

/* success (RFC 3461 §6.2.2): delivered here, or relayed to a server that
 * did not take NOTIFY; one DSN for all */
static void
success_work(bounce_job_t *j, size_t *want)
{
	envelope_t *env = j->env;
	size_t nok = 0;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].status == RCPT_SENT && !env->rcpt[i].dsn_passed &&
		    dsn_wanted(env, i, DSN_SUCCESS))
			want[nok++] = i;
	if (nok > 0)
		dsn_queue(j, env, want, nok, DSN_SUCCESS, &env->sender, 1, 0,
		    "sender delivery status notification");
}

static void
job_work(uv_work_t *req)
{
	bounce_job_t *j = req->data;
	envelope_t *env = j->env;
	if (j->what == BOUNCE_WARN) {
		warn_work(j);
		return;
	}
	size_t nr = env->nrcpt ? env->nrcpt : 1;
	size_t *failed = xcalloc(nr, sizeof *failed), *want = xcalloc(nr, sizeof *want);
	failures_work(j, failed, want);
	if (j->err == 0 && j->what == BOUNCE_FINISH)
		success_work(j, want);
	if (j->err == 0 && j->what == BOUNCE_FINISH && queue_remove(j->spool_dir, env->qid) < 0 &&
	    errno != ENOENT)
		job_error(j, errno, "cannot remove queue file", strerror(errno));
	xfree(failed);
	xfree(want);
}

static void
job_done(uv_work_t *req, int status)
{
	bounce_job_t *j = req->data;
	for (size_t k = 0; k < j->nout; k++)
		maillog_dsn(j->env->qid, j->what_log[k], j->out[k]);
	if (j->discarded)
		maillog_bounce_discarded(j->env->qid, j->discarded, j->npm > 0);
	j->cb(j->arg, j);
}

void
bounce_run(uv_loop_t *loop, bounce_job_t *j, bounce_done_cb cb, void *arg)
{
	j->cb = cb;
	j->arg = arg;
	j->req.data = j;
	uv_queue_work(loop, &j->req, job_work, job_done);
}
