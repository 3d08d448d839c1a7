/*
 * local.c - DELIVER, local: Maildir jobs on the thread pool, at most
 * `concurrency` at once, the rest in a FIFO (see local.h).
 *
 * Threads: a job's worker writes the delivery state of its own recipients
 * (the scheduler does not touch them until the callback) and nothing else;
 * the FIFO and the counters are the loop's.
 *
 * Durability: the worker writes no status record. The scheduler records
 * the outcome after computing next_try (or skips the record when the
 * message is finished next); a lost "sent" record only means a retry, and
 * the retry finds the Maildir file already there (maildir.h, check_dup).
 */
#include "deliver/local.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deliver/dstats.h"
#include "deliver/maildir.h"
#include "deliver/outcome.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

typedef struct ljob {
	uv_work_t req;
	local_t *l;
	envelope_t *env;
	size_t *idx;
	char **maildirs;
	size_t n;
	char *spool_dir;
	char *hostname;
	bool check_dup;
	local_done_cb cb;
	void *arg;
	struct ljob *next; /* waiting FIFO */
	uint64_t started;  /* clock_mono_us() at ljob_start, for the metrics */
} ljob_t;

struct local {
	uv_loop_t *loop;
	unsigned running;
	unsigned limit;     /* from the newest submission */
	ljob_t *wait_head, *wait_tail;
	bool stopping;
};

local_t *
local_new(uv_loop_t *loop)
{
	local_t *l = xcalloc(1, sizeof *l);
	l->loop = loop;
	return l;
}

static void
ljob_work(uv_work_t *req)
{
	ljob_t *j = req->data;
	envelope_t *env = j->env;
	int64_t now = (int64_t)time(NULL);
	int fd = queue_open_content(j->spool_dir, env);
	int open_errno = errno;
	buf_t err = BUF_INIT;

	for (size_t k = 0; k < j->n; k++) {
		env_rcpt_t *r = &env->rcpt[j->idx[k]];
		outcome_t oc;
		r->attempts++;
		r->last_try = now;
		if (fd < 0)
			outcome_queue_read(&oc, open_errno, false);
		else if (maildir_deliver(j->maildirs[k], env, j->idx[k], fd, j->hostname, j->check_dup,
			     &err) == 0)
			outcome_maildir_ok(&oc, j->maildirs[k]);
		else
			outcome_maildir_error(&oc, buf_cstr(&err));
		outcome_apply(&oc, r, "local");
	}
	if (fd >= 0)
		close(fd);
	buf_free(&err);
}

static void
ljob_free(ljob_t *j)
{
	for (size_t k = 0; k < j->n; k++)
		xfree(j->maildirs[k]);
	xfree(j->maildirs);
	xfree(j->idx);
	xfree(j->spool_dir);
	xfree(j->hostname);
	xfree(j);
}

static void ljob_start(local_t *l, ljob_t *j);

static void
ljob_done(uv_work_t *req, int status)
{
	ljob_t *j = req->data;
	local_t *l = j->l;
	l->running--;
	while (l->wait_head && !l->stopping && l->running < l->limit) {
		ljob_t *w = l->wait_head;
		l->wait_head = w->next;
		if (!l->wait_head)
			l->wait_tail = NULL;
		ljob_start(l, w);
	}
	dstats_attempt("local", j->env, j->idx, j->n, j->started);
	j->cb(j->arg, j->env, j->idx, j->n);
	ljob_free(j);
}

static void
ljob_start(local_t *l, ljob_t *j)
{
	l->running++;
	j->started = clock_mono_us();
	j->req.data = j;
	uv_queue_work(l->loop, &j->req, ljob_work, ljob_done);
}

void
local_submit(local_t *l, envelope_t *env, const size_t *idx, char *const *maildirs, size_t n,
    const local_job_opts_t *o, local_done_cb cb, void *arg)
{
	ljob_t *j = xcalloc(1, sizeof *j);
	j->l = l;
	j->env = env;
	j->idx = xmalloc((n ? n : 1) * sizeof *j->idx);
	memcpy(j->idx, idx, n * sizeof *idx);
	j->maildirs = xcalloc(n ? n : 1, sizeof *j->maildirs);
	for (size_t k = 0; k < n; k++)
		j->maildirs[k] = xstrdup(maildirs[k]);
	j->n = n;
	j->spool_dir = xstrdup(o->spool_dir);
	j->hostname = xstrdup(o->hostname);
	j->check_dup = o->check_dup;
	j->cb = cb;
	j->arg = arg;
	l->limit = o->concurrency ? o->concurrency : 1;
	if (l->running < l->limit && !l->wait_head) {
		ljob_start(l, j);
		return;
	}
	if (l->wait_tail)
		l->wait_tail->next = j;
	else
		l->wait_head = j;
	l->wait_tail = j;
}

void
local_stop(local_t *l)
{
	l->stopping = true;
	/* jobs waiting for a slot are not started: their recipients stay
	 * pending, the attempt not counted */
	while (l->wait_head) {
		ljob_t *j = l->wait_head;
		l->wait_head = j->next;
		for (size_t k = 0; k < j->n; k++) {
			outcome_t oc;
			outcome_shutdown(&oc);
			outcome_apply(&oc, &j->env->rcpt[j->idx[k]], NULL);
		}
		j->cb(j->arg, j->env, j->idx, j->n);
		ljob_free(j);
	}
	l->wait_tail = NULL;
}

void
local_free(local_t *l)
{
	xfree(l);
}
