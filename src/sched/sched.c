/*
 * sched.c - SCHEDULE: the in-memory queue index and the delivery jobs
 * (see sched.h).
 *
 * Each queued message is one smsg_t, in a min-heap ordered by the time its
 * next recipient is due. A due message is split by route: its local
 * recipients become one Maildir job on libuv's thread pool (at most
 * local_concurrency at once, the rest wait in a FIFO); remote recipients go
 * to the outbound manager grouped by domain. A recipient that is in a job
 * is marked busy and is not dispatched again until the job is back, so no
 * two jobs ever touch the same recipient, and worker threads write only
 * the fields of their own recipients.
 *
 * When a message has no pending recipient and no job in flight it is
 * finished on the thread pool: failed recipients are reported in one DSN
 * (queued durably first), then the queue file is removed.
 *
 * Must not: block the loop (all disk work is in jobs), or free an smsg_t
 * while a job for it is in flight.
 */
#include "sched/sched.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce/dsn.h"
#include "common/addr.h"
#include "deliver/maildir.h"
#include "deliver/outbound.h"
#include "deliver/router.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

typedef struct smsg {
	struct sched *s;
	envelope_t *env;
	int64_t due;      /* unix seconds */
	size_t heap_idx;  /* SIZE_MAX when not in the heap */
	unsigned inflight;
	bool *busy;       /* per recipient: in a job */
	bool recovered;
	bool finishing;
	struct smsg *next; /* all messages list */
	struct smsg *prev;
} smsg_t;

typedef struct ljob {
	uv_work_t req;
	sched_t *s;
	smsg_t *m;
	size_t *idx;
	char **maildirs;
	size_t n;
	char *spool_dir;
	char *hostname;
	unsigned retry_min, retry_max;
	bool check_dup;
	struct ljob *next; /* waiting FIFO */
} ljob_t;

typedef struct fjob {
	uv_work_t req;
	sched_t *s;
	smsg_t *m;
	char *spool_dir;
	char *hostname;
	envelope_t *bounce; /* the DSN queued, if any */
	int err;
	char errtext[256];
} fjob_t;

struct sched {
	tern_t *t;
	uv_timer_t timer;
	smsg_t **heap;
	size_t nheap, capheap;
	smsg_t all;        /* list head of every message */
	size_t nmsgs;
	unsigned local_running;
	ljob_t *wait_head, *wait_tail;
	unsigned jobs;     /* every job in flight, of any kind */
	unsigned remote_running;
	bool stopping;
	void (*stop_done)(void *);
	void *stop_arg;
	outbound_t *outbound;
};

static void sched_arm(sched_t *s);
static void msg_settle(sched_t *s, smsg_t *m);

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

static void
heap_up(sched_t *s, size_t i)
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
		s->heap = xrealloc(s->heap, s->capheap * sizeof *s->heap);
	}
	m->heap_idx = s->nheap;
	s->heap[s->nheap++] = m;
	heap_up(s, m->heap_idx);
}

static void
heap_remove(sched_t *s, smsg_t *m)
{
	size_t i = m->heap_idx;
	if (i == SIZE_MAX)
		return;
	s->nheap--;
	if (i != s->nheap) {
		s->heap[i] = s->heap[s->nheap];
		s->heap[i]->heap_idx = i;
		heap_down(s, i);
		heap_up(s, i);
	}
	m->heap_idx = SIZE_MAX;
}

/* ---- messages ---- */

static void
msg_free(sched_t *s, smsg_t *m)
{
	heap_remove(s, m);
	m->prev->next = m->next;
	m->next->prev = m->prev;
	s->nmsgs--;
	envelope_free(m->env);
	xfree(m->busy);
	xfree(m);
}

static void
rcpt_set_reply(env_rcpt_t *r, const char *reply, const char *relay)
{
	xfree(r->reply);
	r->reply = reply ? xstrdup(reply) : NULL;
	if (relay) {
		xfree(r->relay);
		r->relay = xstrdup(relay);
	}
}

static void
log_rcpt(const envelope_t *env, const env_rcpt_t *r, const char *how)
{
	double delay = now_f() - (double)env->arrival_us / 1e6;
	const char *st = r->status == RCPT_SENT ? "sent" : r->status == RCPT_PENDING ? "deferred" : "bounced";
	log_info("%s: to=<%s>%s%s%s relay=%s delay=%.2f attempts=%u status=%s (%s)", env->qid, r->addr,
	    r->orig ? " orig_to=<" : "", r->orig ? r->orig : "", r->orig ? ">" : "",
	    r->relay ? r->relay : "none", delay < 0 ? 0.0 : delay, r->attempts, st,
	    how ? how : (r->reply ? r->reply : ""));
}

/* ---- local delivery jobs ---- */

static void
ljob_work(uv_work_t *req)
{
	ljob_t *j = req->data;
	envelope_t *env = j->m->env;
	int64_t now = now_s();
	int fd = queue_open_content(j->spool_dir, env);
	int open_errno = errno;
	buf_t err = BUF_INIT;

	for (size_t k = 0; k < j->n; k++) {
		env_rcpt_t *r = &env->rcpt[j->idx[k]];
		r->attempts++;
		r->last_try = now;
		buf_reset(&err);
		int rc;
		if (fd < 0) {
			buf_printf(&err, "4.3.0 cannot open queue file: %s", strerror(open_errno));
			rc = -1;
		} else {
			rc = maildir_deliver(j->maildirs[k], env, j->idx[k], fd, j->hostname, j->check_dup, &err);
		}
		if (rc == 0) {
			r->status = RCPT_SENT;
			buf_reset(&err);
			buf_printf(&err, "delivered to maildir %s", j->maildirs[k]);
			rcpt_set_reply(r, err.data, "local");
		} else {
			r->status = RCPT_PENDING;
			r->next_try = now + sched_backoff(r->attempts, j->retry_min, j->retry_max);
			rcpt_set_reply(r, buf_cstr(&err), "local");
		}
	}
	if (fd >= 0)
		close(fd);
	/* no fsync: a lost "sent" record only means a retry, and the retry
	 * finds the Maildir file already there (maildir.h) */
	if (queue_append_status(j->spool_dir, env, j->idx, j->n, false) < 0)
		log_warn("%s: cannot append status records: %s", env->qid, strerror(errno));
	buf_free(&err);
}

static void ljob_start(sched_t *s, ljob_t *j);

static void
ljob_done(uv_work_t *req, int status)
{
	ljob_t *j = req->data;
	sched_t *s = j->s;
	smsg_t *m = j->m;
	for (size_t k = 0; k < j->n; k++) {
		env_rcpt_t *r = &m->env->rcpt[j->idx[k]];
		m->busy[j->idx[k]] = false;
		log_rcpt(m->env, r, NULL);
		xfree(j->maildirs[k]);
	}
	xfree(j->maildirs);
	xfree(j->idx);
	xfree(j->spool_dir);
	xfree(j->hostname);
	xfree(j);
	s->local_running--;
	s->jobs--;
	m->inflight--;
	if (s->wait_head && !s->stopping) {
		ljob_t *w = s->wait_head;
		s->wait_head = w->next;
		if (!s->wait_head)
			s->wait_tail = NULL;
		ljob_start(s, w);
	}
	msg_settle(s, m);
}

static void
ljob_start(sched_t *s, ljob_t *j)
{
	s->local_running++;
	j->req.data = j;
	uv_queue_work(s->t->loop, &j->req, ljob_work, ljob_done);
}

/* ---- remote delivery ---- */

/* Recording a remote outcome: an fsync'd status append, on the pool. */
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
	/* fsync: a relayed recipient must not be sent twice after a crash */
	if (queue_append_status(j->spool_dir, j->m->env, j->idx, j->n, true) < 0)
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
	msg_settle(s, m);
}

static void
remote_done(void *arg, envelope_t *env, const size_t *idx, size_t n)
{
	smsg_t *m = arg;
	sched_t *s = m->s;
	int64_t now = now_s();
	const config_t *c = s->t->cfg;
	for (size_t k = 0; k < n; k++) {
		env_rcpt_t *r = &env->rcpt[idx[k]];
		if (r->status == RCPT_PENDING)
			r->next_try = now + sched_backoff(r->attempts, c->retry_min, c->retry_max);
		log_rcpt(env, r, NULL);
	}
	s->remote_running--;
	/* the recipients stay busy until their outcome is on disk */
	rjob_t *j = xcalloc(1, sizeof *j);
	j->m = m;
	j->idx = xmalloc(n * sizeof *idx);
	memcpy(j->idx, idx, n * sizeof *idx);
	j->n = n;
	j->spool_dir = xstrdup(queue_spool_dir(s->t->queue));
	j->req.data = j;
	uv_queue_work(s->t->loop, &j->req, rjob_work, rjob_done);
}

/* ---- finishing: bounce what failed, then remove ---- */

static void
fjob_work(uv_work_t *req)
{
	fjob_t *j = req->data;
	envelope_t *env = j->m->env;
	size_t *failed = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof *failed);
	size_t nfailed = 0, nwanted = 0;

	for (size_t i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i].status != RCPT_FAILED)
			continue;
		failed[nfailed++] = i;
		if (dsn_wanted(env, i, DSN_FAILURE))
			nwanted++;
	}
	if (nwanted > 0) {
		/* the DSN lists the recipients that want one */
		size_t *want = xcalloc(nwanted, sizeof *want);
		size_t w = 0;
		for (size_t k = 0; k < nfailed; k++)
			if (dsn_wanted(env, failed[k], DSN_FAILURE))
				want[w++] = failed[k];
		buf_t msg = BUF_INIT, err = BUF_INIT;
		int fd = queue_open_content(j->spool_dir, env);
		dsn_params_t p = {0};
		char from[300];
		snprintf(from, sizeof from, "MAILER-DAEMON@%s", j->hostname);
		p.hostname = j->hostname;
		p.postmaster = from;
		p.now = now_s();
		p.kind = DSN_FAILURE;
		dsn_info_t info = {0};
		char bqid[QID_SIZE];
		qid_new(bqid);
		p.unique = bqid;
		if (fd < 0 || dsn_build(&msg, env, want, w, &p, fd, &info, &err) < 0) {
			j->err = fd < 0 ? errno : EIO;
			snprintf(j->errtext, sizeof j->errtext, "cannot build DSN: %s",
			    fd < 0 ? strerror(errno) : buf_cstr(&err));
		} else {
			envelope_t *b = envelope_new();
			memcpy(b->qid, bqid, QID_SIZE);
			b->arrival_us = (int64_t)(now_f() * 1e6);
			b->sender = xstrdup("");
			b->flags = ENV_IS_BOUNCE;
			b->client_addr = xstrdup("local");
			b->smtputf8 = info.smtputf8;
			b->body = info.body;
			envelope_add_rcpt(b, env->sender, NULL, NULL, NOTIFY_NEVER);
			j->bounce = queue_store(j->spool_dir, b, msg.data, msg.len);
			if (!j->bounce) {
				j->err = errno;
				snprintf(j->errtext, sizeof j->errtext, "cannot queue DSN: %s", strerror(errno));
			}
			envelope_free(b);
		}
		if (fd >= 0)
			close(fd);
		buf_free(&msg);
		buf_free(&err);
		xfree(want);
	}
	if (j->err == 0) {
		for (size_t k = 0; k < nfailed; k++)
			env->rcpt[failed[k]].status = RCPT_REPORTED;
		/* the DSN is durable; now the original can go */
		if (nfailed)
			queue_append_status(j->spool_dir, env, failed, nfailed, false);
		if (queue_remove(j->spool_dir, env->qid) < 0 && errno != ENOENT) {
			j->err = errno;
			snprintf(j->errtext, sizeof j->errtext, "cannot remove queue file: %s", strerror(errno));
		}
	}
	xfree(failed);
}

static void
fjob_done(uv_work_t *req, int status)
{
	fjob_t *j = req->data;
	sched_t *s = j->s;
	smsg_t *m = j->m;
	s->jobs--;
	m->finishing = false;
	if (j->bounce) {
		log_info("%s: sender non-delivery notification: %s", m->env->qid, j->bounce->qid);
		log_info("%s: accepted session=local client=local from=<> size=%llu nrcpt=1 proto=DSN",
		    j->bounce->qid, (unsigned long long)j->bounce->body_len);
	}
	if (j->err) {
		log_err("%s: cannot finish message: %s; retrying later", m->env->qid, j->errtext);
		m->due = now_s() + 60;
		heap_push(s, m);
		sched_arm(s);
	} else {
		log_info("%s: removed", m->env->qid);
		msg_free(s, m);
	}
	if (j->bounce)
		sched_submit(s, j->bounce, false);
	xfree(j->spool_dir);
	xfree(j->hostname);
	xfree(j);
	if (s->stopping && s->jobs == 0 && s->stop_done) {
		void (*cb)(void *) = s->stop_done;
		s->stop_done = NULL;
		cb(s->stop_arg);
	}
}

static void
msg_finish(sched_t *s, smsg_t *m)
{
	fjob_t *j = xcalloc(1, sizeof *j);
	j->s = s;
	j->m = m;
	j->spool_dir = xstrdup(queue_spool_dir(s->t->queue));
	j->hostname = xstrdup(s->t->cfg->hostname);
	j->req.data = j;
	m->finishing = true;
	s->jobs++;
	uv_queue_work(s->t->loop, &j->req, fjob_work, fjob_done);
}

/* After a job: reschedule, finish, or wait for other jobs. */
static void
msg_settle(sched_t *s, smsg_t *m)
{
	if (m->inflight == 0 && !m->finishing) {
		int64_t due = INT64_MAX;
		for (size_t i = 0; i < m->env->nrcpt; i++) {
			env_rcpt_t *r = &m->env->rcpt[i];
			if (r->status == RCPT_PENDING && r->next_try < due)
				due = r->next_try;
		}
		if (due == INT64_MAX) {
			if (!s->stopping)
				msg_finish(s, m);
		} else {
			m->due = due;
			heap_push(s, m);
		}
	}
	sched_arm(s);
	if (s->stopping && s->jobs == 0 && s->stop_done) {
		void (*cb)(void *) = s->stop_done;
		s->stop_done = NULL;
		cb(s->stop_arg);
	}
}

/* ---- dispatch ---- */

static void
msg_dispatch(sched_t *s, smsg_t *m)
{
	const config_t *c = s->t->cfg;
	int64_t now = now_s();
	envelope_t *env = m->env;
	size_t n = env->nrcpt;
	size_t *lidx = xcalloc(n, sizeof *lidx);
	char **lpaths = xcalloc(n, sizeof *lpaths);
	size_t nl = 0;
	size_t *ridx = xcalloc(n, sizeof *ridx);
	char **rdom = xcalloc(n, sizeof *rdom);
	size_t nr = 0;

	bool expired = c->queue_lifetime &&
	    now - env->arrival_us / 1000000 >= (int64_t)c->queue_lifetime;

	for (size_t i = 0; i < n; i++) {
		env_rcpt_t *r = &env->rcpt[i];
		if (r->status != RCPT_PENDING || m->busy[i] || r->next_try > now)
			continue;
		if (expired && r->attempts > 0) {
			char line[600];
			snprintf(line, sizeof line, "4.4.7 message expired after %u seconds in the queue: %s",
			    c->queue_lifetime, r->reply ? r->reply : "no attempt succeeded");
			r->status = RCPT_FAILED;
			rcpt_set_reply(r, line, NULL);
			log_rcpt(env, r, NULL);
			continue;
		}
		route_t rt = {0};
		router_final(c, s->t->tables, r->addr, &rt);
		if (rt.kind == ROUTE_LOCAL) {
			lidx[nl] = i;
			lpaths[nl++] = xstrdup(rt.maildir);
		} else if (rt.kind == ROUTE_REMOTE) {
			ridx[nr] = i;
			rdom[nr++] = xstrdup(rt.domain);
		} else {
			r->status = RCPT_FAILED;
			r->attempts++;
			rcpt_set_reply(r, "550 5.1.1 mailbox no longer exists", "local");
			log_rcpt(env, r, NULL);
		}
		route_free(&rt);
	}
	if (nl > 0) {
		ljob_t *j = xcalloc(1, sizeof *j);
		j->s = s;
		j->m = m;
		j->idx = lidx;
		j->maildirs = lpaths;
		j->n = nl;
		j->spool_dir = xstrdup(queue_spool_dir(s->t->queue));
		j->hostname = xstrdup(c->hostname);
		j->retry_min = c->retry_min;
		j->retry_max = c->retry_max;
		j->check_dup = m->recovered;
		for (size_t k = 0; k < nl; k++)
			m->busy[lidx[k]] = true;
		m->inflight++;
		s->jobs++;
		if (s->local_running < c->local_concurrency) {
			ljob_start(s, j);
		} else {
			if (s->wait_tail)
				s->wait_tail->next = j;
			else
				s->wait_head = j;
			s->wait_tail = j;
		}
	} else {
		xfree(lidx);
		xfree(lpaths);
	}
	/* remote: one submission per domain */
	for (size_t k = 0; k < nr; k++) {
		if (!rdom[k])
			continue;
		size_t *grp = xcalloc(nr, sizeof *grp);
		size_t ng = 0;
		for (size_t q = k; q < nr; q++) {
			if (rdom[q] && strcmp(rdom[q], rdom[k]) == 0) {
				grp[ng++] = ridx[q];
				m->busy[ridx[q]] = true;
				if (q != k) {
					xfree(rdom[q]);
					rdom[q] = NULL;
				}
			}
		}
		m->inflight++;
		s->jobs++;
		s->remote_running++;
		outbound_submit(s->outbound, env, grp, ng, remote_done, m);
		xfree(grp);
		xfree(rdom[k]);
		rdom[k] = NULL;
	}
	xfree(ridx);
	xfree(rdom);
	msg_settle(s, m);
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
		heap_remove(s, m);
		msg_dispatch(s, m);
	}
	sched_arm(s);
}

static void
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
sched_new(tern_t *t)
{
	sched_t *s = xcalloc(1, sizeof *s);
	s->t = t;
	s->all.next = s->all.prev = &s->all;
	uv_timer_init(t->loop, &s->timer);
	s->timer.data = s;
	return s;
}

void
sched_set_outbound(sched_t *s, outbound_t *o)
{
	s->outbound = o;
}

void
sched_submit(sched_t *s, envelope_t *env, bool recovered)
{
	smsg_t *m = xcalloc(1, sizeof *m);
	m->s = s;
	m->env = env;
	m->heap_idx = SIZE_MAX;
	m->recovered = recovered;
	m->busy = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof *m->busy);
	m->next = s->all.next;
	m->prev = &s->all;
	s->all.next->prev = m;
	s->all.next = m;
	s->nmsgs++;
	msg_settle(s, m);
}

void
sched_flush(sched_t *s)
{
	for (smsg_t *m = s->all.next; m != &s->all; m = m->next) {
		bool any = false;
		for (size_t i = 0; i < m->env->nrcpt; i++) {
			env_rcpt_t *r = &m->env->rcpt[i];
			if (r->status == RCPT_PENDING && !m->busy[i]) {
				r->next_try = 0;
				any = true;
			}
		}
		if (any && m->heap_idx != SIZE_MAX) {
			m->due = 0;
			heap_up(s, m->heap_idx);
		}
	}
	uv_timer_stop(&s->timer);
	sched_arm(s);
}

void
sched_stop(sched_t *s, void (*done)(void *arg), void *arg)
{
	s->stopping = true;
	uv_timer_stop(&s->timer);
	/* jobs waiting for a slot are not started: their recipients stay pending */
	while (s->wait_head) {
		ljob_t *j = s->wait_head;
		s->wait_head = j->next;
		for (size_t k = 0; k < j->n; k++) {
			j->m->busy[j->idx[k]] = false;
			xfree(j->maildirs[k]);
		}
		j->m->inflight--;
		s->jobs--;
		xfree(j->maildirs);
		xfree(j->idx);
		xfree(j->spool_dir);
		xfree(j->hostname);
		xfree(j);
	}
	s->wait_tail = NULL;
	s->stop_done = done;
	s->stop_arg = arg;
	if (s->jobs == 0) {
		s->stop_done = NULL;
		done(arg);
	}
}

void
sched_free(sched_t *s)
{
	while (s->all.next != &s->all)
		msg_free(s, s->all.next);
	xfree(s->heap);
	uv_close((uv_handle_t *)&s->timer, NULL);
	xfree(s);
}
