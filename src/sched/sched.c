/*
 * sched.c - SCHEDULE: the in-memory queue index, dispatch, retries and
 * expiry, and when DSNs are due (see sched.h); the administrator's
 * operations and the snapshot are in admin.c (state shared through
 * sched_int.h). The work itself is the stages': local and remote delivery
 * (deliver/local.c, deliver/outbound.c), DSNs (bounce/finish.c).
 *
 * Each queued message is one smsg_t, in a min-heap ordered by the time its
 * next recipient is due (or its delay warning). A due message is split by
 * route: its local recipients become one local submission, its remote
 * recipients one submission per domain. A recipient that is in a
 * submission is marked busy and is not dispatched again until its outcome
 * is back and recorded, so no two jobs ever touch the same recipient.
 *
 * Threads: a stage may write the delivery state of its own (busy)
 * recipients until its callback; every other job works on a copy of the
 * envelope. So the loop may read any field of an envelope at any time
 * except the delivery state of busy recipients, and changes the message
 * flags only when no job of the message is in flight (m->inflight == 0):
 * every status record a job appends then carries the same flags, and the
 * administrator's hold is written after them, in order.
 *
 * Outcomes: stage_done is the one place a stage's outcome becomes a
 * schedule (next_try from the current retry_min/retry_max/queue_lifetime,
 * for local and remote recipients alike), is logged and recorded.
 *
 * When a message has no job in flight, msg_step decides the next step,
 * in this order: a pending delete (remove the file), a hold/release to
 * write, finishing (no pending recipient: DSNs, then remove), a failure
 * DSN for recipients that failed in the last round, nothing (held), a
 * delay warning that is due, or back into the heap.
 *
 * Retries: a deferred recipient waits sched_backoff(attempts) but never
 * beyond the message's expiry (arrival + queue_lifetime); a pending
 * recipient that was tried and is due after expiry fails with 4.4.7.
 *
 * Must not: block the loop (all disk work is in jobs), or free an smsg_t
 * while a job for it is in flight.
 */
#include "sched/sched.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bounce/dsn.h"
#include "common/addr.h"
#include "common/maillog.h"
#include "deliver/outbound.h"
#include "deliver/outcome.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "queue/queue.h"
#include "sched/sched_int.h"

static const config_t *
cfg(const sched_t *s)
{
	return *s->ctx.cfg;
}


static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

static double
now_f(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

unsigned
sched_backoff(unsigned attempts, unsigned retry_min, unsigned retry_max)
{
	if (retry_min == 0)
		retry_min = 1;
	uint64_t v = retry_min;
	for (unsigned i = 1; i < attempts && v < retry_max; i++)
		v *= 2;
	if (v > retry_max)
		v = retry_max;
	return (unsigned)v;
}

/* When a recipient deferred now after `attempts` tries is due again: the
 * backoff, but not after the message expires (then the retry is where it
 * fails with 4.4.7). */
static int64_t
expiry_of(const envelope_t *env, unsigned lifetime)
{
	/* rounded up: the timer must not fire before the lifetime is over */
	return (env->arrival_us + (int64_t)lifetime * 1000000 + 999999) / 1000000;
}

static int64_t
retry_at(const sched_t *s, const envelope_t *env, unsigned attempts)
{
	const config_t *c = cfg(s);
	unsigned lifetime = c->queue_lifetime;
	/* whole seconds, rounded up: never sooner than the backoff */
	int64_t now = (int64_t)now_f() + 1;
	int64_t t = now + sched_backoff(attempts, c->retry_min, c->retry_max);
	if (lifetime) {
		int64_t exp = expiry_of(env, lifetime);
		if (t > exp)
			t = exp > now ? exp : now;
	}
	return t;
}

void
sched_stop_check(sched_t *s)
{
	if (s->stopping && s->jobs == 0 && s->stop_done) {
		void (*cb)(void *) = s->stop_done;
		s->stop_done = NULL;
		cb(s->stop_arg);
	}
}

/* ---- heap ---- */

static void
heap_swap(sched_t *s, size_t a, size_t b)
{
	smsg_t *t = s->heap[a];
	s->heap[a] = s->heap[b];
	s->heap[b] = t;
	s->heap[a]->heap_idx = a;
	s->heap[b]->heap_idx = b;
}

void
sched_heap_up(sched_t *s, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (s->heap[p]->due <= s->heap[i]->due)
			break;
		heap_swap(s, i, p);
		i = p;
	}
}

static void
heap_down(sched_t *s, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->nheap && s->heap[l]->due < s->heap[m]->due)
			m = l;
		if (r < s->nheap && s->heap[r]->due < s->heap[m]->due)
			m = r;
		if (m == i)
			break;
		heap_swap(s, i, m);
		i = m;
	}
}

static void
heap_push(sched_t *s, smsg_t *m)
{
	if (m->heap_idx != SIZE_MAX)
		return;
	if (s->nheap == s->capheap) {
		s->capheap = s->capheap ? s->capheap * 2 : 256;
		// NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, sized by its element
		s->heap = xrealloc(s->heap, s->capheap * sizeof *s->heap);
	}
	m->heap_idx = s->nheap;
	s->heap[s->nheap++] = m;
	sched_heap_up(s, m->heap_idx);
}

void
sched_heap_remove(sched_t *s, smsg_t *m)
{
	size_t i = m->heap_idx;
	if (i == SIZE_MAX)
		return;
	s->nheap--;
	if (i != s->nheap) {
		s->heap[i] = s->heap[s->nheap];
		s->heap[i]->heap_idx = i;
		heap_down(s, i);
		sched_heap_up(s, i);
	}
	m->heap_idx = SIZE_MAX;
}

/* ---- messages ---- */

void
sched_msg_free(sched_t *s, smsg_t *m)
{
	sched_heap_remove(s, m);
	m->prev->next = m->next;
	m->next->prev = m->prev;
	s->nmsgs--;
	while (m->waiters) {
		waiter_t *w = m->waiters;
		m->waiters = w->next;
		xfree(w);
	}
	envelope_free(m->env);
	xfree(m->busy);
	xfree(m->att);
	xfree(m);
}

/* ---- outcomes ---- */

/*
 * Recording a remote outcome: a status append on the pool, not fsync'd.
 * The message itself was made durable before its 250; what a crash can
 * take away here is only the record that a recipient was sent, and then the
 * recipient is sent again: a duplicate, never a loss (RFC 5321 §6.1 allows
 * duplicates, never losses). Postfix makes the same choice. Skipping this
 * fsync halves the syncs per relayed message.
 */
typedef struct rjob {
	uv_work_t req;
	smsg_t *m;
	size_t *idx;
	size_t n;
	char *spool_dir;
} rjob_t;

static void
rjob_work(uv_work_t *req)
{
	rjob_t *j = req->data;
	if (queue_append_status(j->spool_dir, j->m->env, j->idx, j->n, false) < 0)
		log_warn("%s: cannot append status records: %s", j->m->env->qid, strerror(errno));
}

static void
rjob_done(uv_work_t *req, int status)
{
	rjob_t *j = req->data;
	smsg_t *m = j->m;
	sched_t *s = m->s;
	for (size_t k = 0; k < j->n; k++)
		m->busy[j->idx[k]] = false;
	s->jobs--;
	m->inflight--;
	xfree(j->idx);
	xfree(j->spool_dir);
	xfree(j);
	sched_settle(s, m);
}

/*
 * A stage's outcomes for recipients idx[0..n) of m (local or remote): the
 * one place where they become a schedule. A deferred recipient is due
 * again after the backoff of the configuration in force now; a submission
 * cancelled at shutdown was not an attempt: it stays due.
 */
static void
stage_done(void *arg, envelope_t *env, const size_t *idx, size_t n)
{
	smsg_t *m = arg;
	sched_t *s = m->s;
	int64_t now = now_s();
	bool attempted = false;
	for (size_t k = 0; k < n; k++) {
		env_rcpt_t *r = &env->rcpt[idx[k]];
		bool tried = r->attempts != m->att[idx[k]];
		attempted |= tried;
		if (r->status == RCPT_PENDING) {
			if (tried)
				r->next_try = retry_at(s, env, r->attempts);
			else if (r->next_try > now)
				r->next_try = now;
		}
		maillog_rcpt(env, r);
	}
	if (!attempted || (m->inflight == 1 && envelope_pending(env) == 0)) {
		/* nothing changed (cancelled), or the last outcome of the
		 * message: finishing it (DSNs, then removal) comes next, so a
		 * status record would be written only to be unlinked a moment
		 * later */
		for (size_t k = 0; k < n; k++)
			m->busy[idx[k]] = false;
		s->jobs--;
		m->inflight--;
		sched_settle(s, m);
		return;
	}
	/* the recipients stay busy until their outcome is recorded */
	rjob_t *j = xcalloc(1, sizeof *j);
	j->m = m;
	j->idx = xmalloc(n * sizeof *idx);
	memcpy(j->idx, idx, n * sizeof *idx);
	j->n = n;
	j->spool_dir = xstrdup(s->ctx.spool_dir);
	j->req.data = j;
	uv_queue_work(s->ctx.loop, &j->req, rjob_work, rjob_done);
}

/* ---- DSNs: when they are due (bounce/finish.c builds and stores them) ---- */

/* bounce_to_postmaster: the postmaster of our first local domain, expanded
 * through the tables as at RCPT time */
static void
pm_lookup(sched_t *s, bounce_job_t *j)
{
	const config_t *c = cfg(s);
	if (!c->bounce_to_postmaster ||
	    c->nlocal_domains == 0)
		return;
	char *a = xasprintf("postmaster@%s", c->local_domains[0]);
	addr_t addr;
	memset(&addr, 0, sizeof addr);
	size_t used = 0;
	dest_list_t dl = {0};
	const char *why = NULL;
	int prc = addr_parse(a, strlen(a), ADDR_NO_BRACKETS, &addr, &used, &why);
	if (prc < 0 || router_expand(c, *s->ctx.tables, &addr, true, &dl, &why) != ROUTER_OK ||
	    dl.n == 0) {
		log_warn("bounce_to_postmaster: %s cannot be delivered (%s)", a, why ? why : "no address");
		xfree(a);
	} else {
		j->pm = dl.addrs;
		j->npm = dl.n;
		dl.addrs = NULL;
		dl.n = 0;
		j->pm_addr = a;
	}
	dest_list_free(&dl);
	if (prc == 0)
		addr_free(&addr);
}

static bool
any_failed(const envelope_t *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].status == RCPT_FAILED)
			return true;
	return false;
}

static void
bounce_done(void *arg, bounce_job_t *j)
{
	smsg_t *m = arg;
	sched_t *s = m->s;
	s->jobs--;
	m->inflight--;
	bool settle = true; /* the message is still there and may go on now */
	if (j->what == BOUNCE_WARN) {
		if (j->err) {
			log_err("%s: cannot send the delay warning: %s; retrying later", m->env->qid, j->errtext);
			m->warn_after = now_s() + 60;
		} else {
			m->env->flags |= ENV_DELAY_WARNED;
		}
	} else {
		/* what the job reported stays reported, even if a later step failed */
		for (size_t i = 0; i < m->env->nrcpt; i++)
			if (j->env->rcpt[i].status == RCPT_REPORTED)
				m->env->rcpt[i].status = RCPT_REPORTED;
	}
	if (j->what == BOUNCE_ROUND && j->err) {
		log_err("%s: cannot send the failure DSN: %s; retrying later", m->env->qid, j->errtext);
		m->round_after = now_s() + 60;
	} else if (j->what == BOUNCE_FINISH) {
		m->finishing = false;
		settle = false;
		if (j->err) {
			/* back in the heap: the timer's dispatch settles it again */
			log_err("%s: cannot finish message: %s; retrying later", m->env->qid, j->errtext);
			m->due = now_s() + 60;
			heap_push(s, m);
		} else {
			maillog_removed(m->env->qid);
			sched_msg_free(s, m);
		}
	}
	/* the DSNs are new messages (never "recovered": nothing was tried) */
	for (size_t k = 0; k < j->nout; k++) {
		sched_submit(s, j->out[k], false);
		j->out[k] = NULL;
	}
	j->nout = 0;
	bounce_job_free(j);
	if (settle)
		sched_settle(s, m);
	sched_arm(s);
	sched_stop_check(s);
}

static void
bounce_start(sched_t *s, smsg_t *m, enum bounce_what what)
{
	const config_t *c = cfg(s);
	bounce_job_t *j = bounce_job_new(what, m->env, s->ctx.spool_dir, c->hostname);
	j->retry_until = c->queue_lifetime ? expiry_of(m->env, c->queue_lifetime) : 0;
	if (bounce_wants_postmaster(j))
		pm_lookup(s, j);
	if (what == BOUNCE_FINISH)
		m->finishing = true;
	m->inflight++;
	s->jobs++;
	s->st.bounce_run(s->st.bounce, j, bounce_done, m);
}

/* ---- settling: the next step of a message with no job in flight ---- */

/* a delay warning is still to be sent to someone: its time, else 0 */
static int64_t
warn_time(sched_t *s, smsg_t *m)
{
	const config_t *c = cfg(s);
	const envelope_t *env = m->env;
	if (c->delay_warning == 0 || (env->flags & ENV_DELAY_WARNED))
		return 0;
	bool want = false;
	for (size_t i = 0; i < env->nrcpt && !want; i++)
		if (env->rcpt[i].status == RCPT_PENDING && dsn_wanted(env, i, DSN_DELAY))
			want = true;
	if (!want)
		return 0;
	int64_t t = env->arrival_us / 1000000 + (int64_t)c->delay_warning;
	return t > m->warn_after ? t : m->warn_after;
}

static void
msg_step(sched_t *s, smsg_t *m)
{
	envelope_t *env = m->env;
	sched_heap_remove(s, m);
	if (m->deleting) {
		sched_admin_job(s, m, true);
		return;
	}
	if (m->held != ((env->flags & ENV_HELD) != 0)) {
		/* no job in flight: the flag can change and be written now */
		if (m->held)
			env->flags |= ENV_HELD;
		else
			env->flags &= ~(unsigned)ENV_HELD;
		sched_admin_job(s, m, false);
		return;
	}
	if (m->bounce_req) /* asked for while deliveries were in progress */
		sched_bounce_now(s, m);
	int64_t due = INT64_MAX;
	for (size_t i = 0; i < env->nrcpt; i++) {
		env_rcpt_t *r = &env->rcpt[i];
		if (r->status == RCPT_PENDING && r->next_try < due)
			due = r->next_try;
	}
	if (due == INT64_MAX) {
		if (!s->stopping)
			bounce_start(s, m, BOUNCE_FINISH);
		return;
	}
	/* issue #11.3: recipients that failed in the last round are reported
	 * now, not when the others are done (one DSN per round) */
	if (any_failed(env) && !s->stopping) {
		if (m->round_after <= now_s()) {
			bounce_start(s, m, BOUNCE_ROUND);
			return;
		}
		if (m->round_after < due)
			due = m->round_after;
	}
	if (m->held)
		return; /* out of the heap until released */
	int64_t wt = warn_time(s, m);
	if (wt && !s->stopping) {
		if (wt <= now_s()) {
			bounce_start(s, m, BOUNCE_WARN);
			return;
		}
		if (wt < due)
			due = wt;
	}
	m->due = due;
	heap_push(s, m);
}

/* After a job, or a change: the next step when no job is in flight. */
void
sched_settle(sched_t *s, smsg_t *m)
{
	if (m->inflight == 0 && !m->finishing)
		msg_step(s, m);
	sched_arm(s);
	sched_stop_check(s);
}

/* ---- dispatch ---- */

/* the recipient cannot be tried any more: it fails now */
static void
rcpt_fail_now(const envelope_t *env, env_rcpt_t *r, const outcome_t *oc, const char *relay)
{
	outcome_apply(oc, r, relay);
	maillog_rcpt(env, r);
}

/* recipients lidx[0..nl) go to the local stage, one submission */
static void
dispatch_local(sched_t *s, smsg_t *m, const size_t *lidx, char *const *lpaths, size_t nl)
{
	const config_t *c = cfg(s);
	local_job_opts_t o = {0};
	o.spool_dir = s->ctx.spool_dir;
	o.hostname = c->hostname;
	o.concurrency = c->local_concurrency;
	o.check_dup = m->recovered;
	for (size_t k = 0; k < nl; k++) {
		m->busy[lidx[k]] = true;
		m->att[lidx[k]] = m->env->rcpt[lidx[k]].attempts;
	}
	m->inflight++;
	s->jobs++;
	s->st.local_submit(s->st.local, m->env, lidx, lpaths, nl, &o, stage_done, m);
}

/* the envelope senders of two recipients are the same (a recipient's own,
 * SRS, or the message's) */
static bool
same_sender(const env_rcpt_t *a, const env_rcpt_t *b)
{
	if (a->sender == NULL || b->sender == NULL)
		return a->sender == b->sender;
	return strcmp(a->sender, b->sender) == 0;
}

/* recipients ridx[0..nr) (domains rdom[]) go to the remote stage, one
 * submission per domain and envelope sender (one MAIL FROM each) */
static void
dispatch_remote(sched_t *s, smsg_t *m, const size_t *ridx, char **rdom, size_t nr)
{
	envelope_t *env = m->env;
	size_t *grp = xcalloc(nr ? nr : 1, sizeof *grp);
	for (size_t k = 0; k < nr; k++) {
		if (!rdom[k])
			continue;
		size_t ng = 0;
		for (size_t q = k; q < nr; q++) {
			if (rdom[q] && strcmp(rdom[q], rdom[k]) == 0 &&
			    same_sender(&env->rcpt[ridx[q]], &env->rcpt[ridx[k]])) {
				grp[ng++] = ridx[q];
				m->busy[ridx[q]] = true;
				m->att[ridx[q]] = env->rcpt[ridx[q]].attempts;
				env->rcpt[ridx[q]].dsn_passed = false;
				if (q != k) {
					xfree(rdom[q]);
					rdom[q] = NULL;
				}
			}
		}
		m->inflight++;
		s->jobs++;
		s->st.remote_submit(s->st.remote, env, grp, ng, stage_done, m);
		xfree(rdom[k]);
		rdom[k] = NULL;
	}
	xfree(grp);
}

static void
msg_dispatch(sched_t *s, smsg_t *m)
{
	const config_t *c = cfg(s);
	int64_t now = now_s();
	envelope_t *env = m->env;
	size_t n = env->nrcpt;
	size_t *lidx = xcalloc(n ? n : 1, sizeof *lidx);
	char **lpaths = xcalloc(n ? n : 1, sizeof *lpaths);
	size_t nl = 0;
	size_t *ridx = xcalloc(n ? n : 1, sizeof *ridx);
	char **rdom = xcalloc(n ? n : 1, sizeof *rdom);
	size_t nr = 0;

	bool expired = c->queue_lifetime &&
	    now_f() * 1e6 - (double)env->arrival_us >= (double)c->queue_lifetime * 1e6;

	for (size_t i = 0; i < n && !m->held && !m->deleting; i++) {
		env_rcpt_t *r = &env->rcpt[i];
		outcome_t oc;
		if (r->status != RCPT_PENDING || m->busy[i] || r->next_try > now)
			continue;
		if (expired && r->attempts > 0) {
			outcome_expired(&oc, c->queue_lifetime, r->reply);
			rcpt_fail_now(env, r, &oc, NULL);
			continue;
		}
		route_t rt = {0};
		router_final(c, *s->ctx.tables, r->addr, &rt);
		if (rt.kind == ROUTE_LOCAL) {
			lidx[nl] = i;
			lpaths[nl++] = xstrdup(rt.maildir);
		} else if (rt.kind == ROUTE_REMOTE) {
			ridx[nr] = i;
			rdom[nr++] = xstrdup(rt.domain);
		} else {
			r->attempts++;
			r->last_try = now;
			outcome_no_mailbox(&oc);
			rcpt_fail_now(env, r, &oc, "local");
		}
		route_free(&rt);
	}
	if (nl > 0)
		dispatch_local(s, m, lidx, lpaths, nl);
	dispatch_remote(s, m, ridx, rdom, nr);
	for (size_t k = 0; k < nl; k++)
		xfree(lpaths[k]);
	xfree(lidx);
	xfree(lpaths);
	xfree(ridx);
	xfree(rdom);
	sched_settle(s, m);
}

static void
on_timer(uv_timer_t *t)
{
	sched_t *s = t->data;
	int64_t now = now_s();
	while (s->nheap > 0 && !s->stopping) {
		smsg_t *m = s->heap[0];
		if (m->due > now)
			break;
		sched_heap_remove(s, m);
		msg_dispatch(s, m);
	}
	sched_arm(s);
}

void
sched_arm(sched_t *s)
{
	if (s->stopping || s->nheap == 0) {
		uv_timer_stop(&s->timer);
		return;
	}
	int64_t now_ms = (int64_t)(now_f() * 1000);
	int64_t due_ms = s->heap[0]->due * 1000;
	uint64_t delay = due_ms > now_ms ? (uint64_t)(due_ms - now_ms) : 0;
	if (uv_is_active((uv_handle_t *)&s->timer) &&
	    uv_timer_get_due_in(&s->timer) <= delay)
		return;
	uv_timer_start(&s->timer, on_timer, delay, 0);
}

sched_t *
sched_new(const sched_ctx_t *ctx)
{
	sched_t *s = xcalloc(1, sizeof *s);
	s->ctx = *ctx;
	s->ctx.spool_dir = xstrdup(ctx->spool_dir);
	s->all.next = s->all.prev = &s->all;
	uv_timer_init(ctx->loop, &s->timer);
	s->timer.data = s;
	return s;
}

void
sched_set_stages(sched_t *s, const sched_stages_t *st)
{
	s->st = *st;
}

/* ---- the real stages ---- */

static void
real_local_submit(void *l, envelope_t *env, const size_t *idx, char *const *maildirs, size_t n,
    const local_job_opts_t *o, sched_stage_cb cb, void *arg)
{
	local_submit(l, env, idx, maildirs, n, o, cb, arg);
}

static void
real_local_stop(void *l)
{
	local_stop(l);
}

static void
real_remote_submit(void *o, envelope_t *env, const size_t *idx, size_t n, sched_stage_cb cb,
    void *arg)
{
	outbound_submit(o, env, idx, n, cb, arg);
}

static void
real_bounce_run(void *loop, bounce_job_t *j, bounce_done_cb cb, void *arg)
{
	bounce_run(loop, j, cb, arg);
}

void
sched_set_outbound(sched_t *s, outbound_t *o)
{
	sched_stages_t st = {0};
	if (!s->own_local)
		s->own_local = local_new(s->ctx.loop);
	st.local = s->own_local;
	st.local_submit = real_local_submit;
	st.local_stop = real_local_stop;
	st.remote = o;
	st.remote_submit = real_remote_submit;
	st.bounce = s->ctx.loop;
	st.bounce_run = real_bounce_run;
	sched_set_stages(s, &st);
}

void
sched_submit(sched_t *s, envelope_t *env, bool recovered)
{
	smsg_t *m = xcalloc(1, sizeof *m);
	size_t nr = env->nrcpt ? env->nrcpt : 1;
	m->s = s;
	m->env = env;
	m->heap_idx = SIZE_MAX;
	m->recovered = recovered;
	m->held = (env->flags & ENV_HELD) != 0;
	m->busy = xcalloc(nr, sizeof *m->busy);
	m->att = xcalloc(nr, sizeof *m->att);
	m->next = s->all.next;
	m->prev = &s->all;
	s->all.next->prev = m;
	s->all.next = m;
	s->nmsgs++;
	if (m->held)
		log_info("%s: held (recovered from the queue)", env->qid);
	sched_settle(s, m);
}

void
sched_stop(sched_t *s, void (*done)(void *arg), void *arg)
{
	s->stopping = true;
	uv_timer_stop(&s->timer);
	/* local jobs waiting for a slot are not started: their recipients
	 * stay pending (their outcomes come back from inside this call) */
	if (s->st.local_stop)
		s->st.local_stop(s->st.local);
	s->stop_done = done;
	s->stop_arg = arg;
	sched_stop_check(s);
}

static void
sched_timer_closed(uv_handle_t *h)
{
	xfree(h->data);
}

/* The struct is freed from the timer's close callback: libuv still writes
 * to a closing handle until the loop has run once more (valgrind saw it;
 * ASan cannot, libuv itself is not instrumented). */
void
sched_free(sched_t *s)
{
	/* next is read before m is freed: the static analyzer cannot know that
	 * m->prev is &s->all, i.e. that sched_msg_free() advances s->all.next */
	for (smsg_t *m = s->all.next, *next; m != &s->all; m = next) {
		next = m->next;
		sched_msg_free(s, m);
	}
	xfree(s->heap);
	s->heap = NULL;
	if (s->own_local)
		local_free(s->own_local);
	s->own_local = NULL;
	xfree((char *)s->ctx.spool_dir);
	s->ctx.spool_dir = NULL;
	uv_close((uv_handle_t *)&s->timer, sched_timer_closed);
}

