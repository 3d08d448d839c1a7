/*
 * sched.c - SCHEDULE: the in-memory queue index, the delivery jobs, retries,
 * DSNs and the administrator's operations (see sched.h).
 *
 * Each queued message is one smsg_t, in a min-heap ordered by the time its
 * next recipient is due (or its delay warning). A due message is split by
 * route: its local recipients become one Maildir job on libuv's thread pool
 * (at most local_concurrency at once, the rest wait in a FIFO); remote
 * recipients go to the outbound manager grouped by domain. A recipient that
 * is in a job is marked busy and is not dispatched again until the job is
 * back, so no two jobs ever touch the same recipient.
 *
 * Threads: a Maildir job's worker writes the delivery state of its own
 * (busy) recipients and nothing else; every other job works on a copy of
 * the envelope. So the loop may read any field of an envelope at any time
 * except the delivery state of busy recipients, and changes the message
 * flags only when no job of the message is in flight (m->inflight == 0):
 * every status record a job appends then carries the same flags, and the
 * administrator's hold is written after them, in order.
 *
 * When a message has no job in flight, msg_settle decides the next step,
 * in this order: a pending delete (remove the file), a hold/release to
 * write, finishing (no pending recipient: DSNs, then remove), nothing
 * (held), a delay warning that is due, or back into the heap.
 *
 * Retries: a deferred recipient waits sched_backoff(attempts) but never
 * beyond the message's expiry (arrival + queue_lifetime); a pending
 * recipient that was tried and is due after expiry fails with 4.4.7.
 *
 * DSNs (RFC 3461, 3464), made when the message is finished: one failure DSN
 * listing every failed recipient that wants one; one success DSN for the
 * NOTIFY=SUCCESS recipients delivered here or relayed to a server that did
 * not take the NOTIFY parameter; for a message from <> (never bounced, RFC
 * 5321 §4.5.5) a log line, and with bounce_to_postmaster = yes a
 * headers-only notice to the postmaster. Every DSN is queued durably (from
 * <>, ENV_IS_BOUNCE) before the original is removed.
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
#include "deliver/maildir.h"
#include "deliver/outbound.h"
#include "deliver/router.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

typedef struct waiter {
	sched_op_cb cb;
	void *arg;
	struct waiter *next;
} waiter_t;

typedef struct smsg {
	struct sched *s;
	envelope_t *env;
	int64_t due;      /* unix seconds */
	size_t heap_idx;  /* SIZE_MAX when not in the heap */
	unsigned inflight; /* jobs of this message in flight, of any kind */
	bool *busy;       /* per recipient: in a delivery job */
	unsigned *att;    /* per recipient: attempts before its remote submission */
	bool recovered;
	bool finishing;
	bool held;        /* wanted hold state; env->flags follows when inflight == 0 */
	bool deleting;    /* the administrator deleted it: remove when inflight == 0 */
	int64_t warn_after; /* a delay warning failed: not again before this */
	waiter_t *waiters; /* control requests waiting for a flag or delete job */
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
	unsigned retry_min, retry_max, lifetime;
	bool check_dup;
	struct ljob *next; /* waiting FIFO */
} ljob_t;

#define MAX_DSNS 3

/* finishing a message, or sending its delay warning */
typedef struct fjob {
	uv_work_t req;
	sched_t *s;
	smsg_t *m;
	envelope_t *env;    /* a copy: the worker may change it */
	bool warn;          /* a delay warning, not the finish */
	char *spool_dir;
	char *hostname;
	int64_t retry_until; /* warn: Will-Retry-Until */
	char **pm;          /* bounce_to_postmaster: the postmaster's final addresses */
	size_t npm;
	char *pm_addr;      /* ... and the address they came from */
	/* results */
	envelope_t *out[MAX_DSNS]; /* DSNs queued */
	const char *what[MAX_DSNS]; /* their log words */
	size_t nout;
	size_t discarded;   /* failed recipients of a message from <> */
	int err;
	char errtext[256];
} fjob_t;

/* the administrator's flag change or delete */
typedef struct ajob {
	uv_work_t req;
	smsg_t *m;
	char *spool_dir;
	char qid[QID_SIZE];
	unsigned flags;
	size_t nrcpt;
	bool remove;
	int err;
} ajob_t;

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
retry_at(const envelope_t *env, unsigned attempts, unsigned rmin, unsigned rmax, unsigned lifetime)
{
	/* whole seconds, rounded up: never sooner than the backoff */
	int64_t now = (int64_t)now_f() + 1;
	int64_t t = now + sched_backoff(attempts, rmin, rmax);
	if (lifetime) {
		int64_t exp = expiry_of(env, lifetime);
		if (t > exp)
			t = exp > now ? exp : now;
	}
	return t;
}

static void
stop_check(sched_t *s)
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
		// NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, sized by its element
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

static smsg_t *
msg_find(sched_t *s, const char *qid)
{
	for (smsg_t *m = s->all.next; m != &s->all; m = m->next)
		if (strcmp(m->env->qid, qid) == 0)
			return m;
	return NULL;
}

static void
waiters_notify(smsg_t *m, int err, const char *text)
{
	waiter_t *w = m->waiters;
	m->waiters = NULL;
	while (w) {
		waiter_t *next = w->next;
		w->cb(w->arg, err, text);
		xfree(w);
		w = next;
	}
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
			r->next_try = retry_at(env, r->attempts, j->retry_min, j->retry_max, j->lifetime);
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
	}
	ljob_free(j);
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
		if (r->status == RCPT_PENDING) {
			/* a submission cancelled at shutdown was not an attempt:
			 * it stays due */
			if (r->attempts != m->att[idx[k]])
				r->next_try = retry_at(env, r->attempts, c->retry_min, c->retry_max,
				    c->queue_lifetime);
			else if (r->next_try > now)
				r->next_try = now;
		}
		log_rcpt(env, r, NULL);
	}
	s->remote_running--;
	if (m->inflight == 1 && envelope_pending(env) == 0) {
		/* the last outcome of the message: finishing it (DSNs, then
		 * removal) comes next, so a status record would be written only
		 * to be unlinked a moment later */
		for (size_t k = 0; k < n; k++)
			m->busy[idx[k]] = false;
		s->jobs--;
		m->inflight--;
		msg_settle(s, m);
		return;
	}
	/* the recipients stay busy until their outcome is recorded */
	rjob_t *j = xcalloc(1, sizeof *j);
	j->m = m;
	j->idx = xmalloc(n * sizeof *idx);
	memcpy(j->idx, idx, n * sizeof *idx);
	j->n = n;
	j->spool_dir = xstrdup(queue_spool_dir(s->t->queue));
	j->req.data = j;
	uv_queue_work(s->t->loop, &j->req, rjob_work, rjob_done);
}

/* ---- DSNs: finishing a message, and delay warnings ---- */

/*
 * Build a DSN of `kind` about env's recipients idx[0..n) and queue it from
 * <> to the addresses to[0..nto). Blocking (worker). The stored envelope,
 * or NULL with j->err and j->errtext set.
 */
static envelope_t *
dsn_queue(fjob_t *j, const envelope_t *env, const size_t *idx, size_t n, enum dsn_kind kind,
    char *const *to, size_t nto, unsigned flags)
{
	buf_t msg = BUF_INIT, err = BUF_INIT;
	envelope_t *stored = NULL;
	int fd = queue_open_content(j->spool_dir, env);
	int open_errno = errno;
	char from[300];
	snprintf(from, sizeof from, "MAILER-DAEMON@%s", j->hostname);
	dsn_params_t p = {0};
	p.hostname = j->hostname;
	p.postmaster = from;
	p.now = now_s();
	p.kind = kind;
	p.retry_until = kind == DSN_DELAY ? j->retry_until : 0;
	char bqid[QID_SIZE];
	qid_new(bqid);
	p.unique = bqid;
	dsn_info_t info = {0};
	if (fd < 0) {
		j->err = open_errno;
		snprintf(j->errtext, sizeof j->errtext, "cannot build DSN: %s", strerror(open_errno));
	} else if (dsn_build(&msg, env, idx, n, &p, fd, &info, &err) < 0) {
		j->err = EIO;
		snprintf(j->errtext, sizeof j->errtext, "cannot build DSN: %s", buf_cstr(&err));
	} else {
		envelope_t *b = envelope_new();
		memcpy(b->qid, bqid, QID_SIZE);
		b->arrival_us = (int64_t)(now_f() * 1e6);
		b->sender = xstrdup("");
		b->flags = ENV_IS_BOUNCE | flags;
		b->client_addr = xstrdup("local");
		b->smtputf8 = info.smtputf8;
		b->body = info.body;
		for (size_t i = 0; i < nto; i++)
			envelope_add_rcpt(b, to[i], NULL, NULL, NOTIFY_NEVER);
		stored = queue_store(j->spool_dir, b, msg.data, msg.len);
		if (!stored) {
			j->err = errno;
			snprintf(j->errtext, sizeof j->errtext, "cannot queue DSN: %s", strerror(errno));
		}
		envelope_free(b);
	}
	if (fd >= 0)
		close(fd);
	buf_free(&msg);
	buf_free(&err);
	return stored;
}

static void
fjob_add(fjob_t *j, envelope_t *b, const char *what)
{
	if (b && j->nout < MAX_DSNS) {
		j->out[j->nout] = b;
		j->what[j->nout++] = what;
	} else if (b) {
		envelope_free(b);
	}
}

/* the delay warning: pending recipients that want one (RFC 3461 §4.1) */
static void
warn_work(fjob_t *j)
{
	envelope_t *env = j->env;
	size_t *idx = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof *idx);
	size_t n = 0;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].status == RCPT_PENDING && dsn_wanted(env, i, DSN_DELAY))
			idx[n++] = i;
	if (n > 0) {
		char *to = env->sender;
		envelope_t *b = dsn_queue(j, env, idx, n, DSN_DELAY, &to, 1, 0);
		fjob_add(j, b, "sender delay notification");
	}
	xfree(idx);
	if (j->err == 0) {
		/* recorded with fsync, so that it is sent once, even across restarts */
		env->flags |= ENV_DELAY_WARNED;
		if (queue_append_status(j->spool_dir, env, NULL, 0, true) < 0) {
			j->err = errno;
			snprintf(j->errtext, sizeof j->errtext, "cannot record the delay warning: %s",
			    strerror(errno));
		}
	}
}

static void
fjob_work(uv_work_t *req)
{
	fjob_t *j = req->data;
	envelope_t *env = j->env;
	if (j->warn) {
		warn_work(j);
		return;
	}
	size_t nr = env->nrcpt ? env->nrcpt : 1;
	size_t *failed = xcalloc(nr, sizeof *failed), *want = xcalloc(nr, sizeof *want);
	size_t nfailed = 0, nwant = 0;
	bool null_sender = !env->sender || env->sender[0] == '\0';

	for (size_t i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i].status != RCPT_FAILED)
			continue;
		failed[nfailed++] = i;
		if (dsn_wanted(env, i, DSN_FAILURE))
			want[nwant++] = i;
	}
	/* 1. failures: one DSN to the sender listing every recipient that wants one */
	if (nwant > 0) {
		char *to = env->sender;
		envelope_t *b = dsn_queue(j, env, want, nwant, DSN_FAILURE, &to, 1, 0);
		fjob_add(j, b, "sender non-delivery notification");
	}
	/* 2. a message from <> is never bounced (RFC 5321 §4.5.5); the
	 * postmaster may get a notice with the headers only */
	if (j->err == 0 && nfailed > 0 && null_sender) {
		j->discarded = nfailed;
		if (j->npm > 0) {
			envelope_t *pe = envelope_dup(env);
			xfree(pe->sender);
			pe->sender = xstrdup(j->pm_addr);
			pe->ret = RET_HDRS;
			envelope_t *b = dsn_queue(j, pe, failed, nfailed, DSN_FAILURE, j->pm, j->npm,
			    ENV_PM_NOTICE);
			fjob_add(j, b, "postmaster notification of an undeliverable bounce");
			envelope_free(pe);
		}
	}
	if (j->err == 0 && nfailed > 0) {
		/* the DSNs are durable; the failures are reported */
		for (size_t k = 0; k < nfailed; k++)
			env->rcpt[failed[k]].status = RCPT_REPORTED;
		queue_append_status(j->spool_dir, env, failed, nfailed, false);
	}
	/* 3. success (RFC 3461 §6.2.2): delivered here, or relayed to a server
	 * that did not take NOTIFY; one DSN for all */
	if (j->err == 0) {
		size_t nok = 0;
		for (size_t i = 0; i < env->nrcpt; i++)
			if (env->rcpt[i].status == RCPT_SENT && !env->rcpt[i].dsn_passed &&
			    dsn_wanted(env, i, DSN_SUCCESS))
				want[nok++] = i;
		if (nok > 0) {
			char *to = env->sender;
			envelope_t *b = dsn_queue(j, env, want, nok, DSN_SUCCESS, &to, 1, 0);
			fjob_add(j, b, "sender delivery status notification");
		}
	}
	if (j->err == 0 && queue_remove(j->spool_dir, env->qid) < 0 && errno != ENOENT) {
		j->err = errno;
		snprintf(j->errtext, sizeof j->errtext, "cannot remove queue file: %s", strerror(errno));
	}
	xfree(failed);
	xfree(want);
}

static void
fjob_done(uv_work_t *req, int status)
{
	fjob_t *j = req->data;
	sched_t *s = j->s;
	smsg_t *m = j->m;
	s->jobs--;
	m->inflight--;
	for (size_t k = 0; k < j->nout; k++) {
		log_info("%s: %s: %s", m->env->qid, j->what[k], j->out[k]->qid);
		log_info("%s: accepted session=local client=local from=<> size=%llu nrcpt=%zu proto=DSN",
		    j->out[k]->qid, (unsigned long long)j->out[k]->body_len, j->out[k]->nrcpt);
	}
	if (j->discarded)
		log_info("%s: undeliverable bounce discarded (%zu recipient%s; the sender is <>)%s",
		    m->env->qid, j->discarded, j->discarded == 1 ? "" : "s",
		    j->npm ? "" : "; set bounce_to_postmaster = yes to notify the postmaster");
	bool settle = true; /* the message is still there and may go on now */
	if (j->warn) {
		if (j->err) {
			log_err("%s: cannot send the delay warning: %s; retrying later", m->env->qid, j->errtext);
			m->warn_after = now_s() + 60;
		} else {
			m->env->flags |= ENV_DELAY_WARNED;
		}
	} else {
		m->finishing = false;
		/* what the job reported stays reported, even if a later step failed */
		for (size_t i = 0; i < m->env->nrcpt; i++)
			if (j->env->rcpt[i].status == RCPT_REPORTED)
				m->env->rcpt[i].status = RCPT_REPORTED;
		if (j->err) {
			/* back in the heap: the timer's dispatch settles it again */
			log_err("%s: cannot finish message: %s; retrying later", m->env->qid, j->errtext);
			m->due = now_s() + 60;
			heap_push(s, m);
			settle = false;
		} else {
			log_info("%s: removed", m->env->qid);
			msg_free(s, m);
			settle = false;
		}
	}
	/* the DSNs are new messages (never "recovered": nothing was tried) */
	for (size_t k = 0; k < j->nout; k++)
		sched_submit(s, j->out[k], false);
	envelope_free(j->env);
	for (size_t k = 0; k < j->npm; k++)
		xfree(j->pm[k]);
	xfree(j->pm);
	xfree(j->pm_addr);
	xfree(j->spool_dir);
	xfree(j->hostname);
	xfree(j);
	if (settle)
		msg_settle(s, m);
	sched_arm(s);
	stop_check(s);
}

/* bounce_to_postmaster: the postmaster of our first local domain, expanded
 * through the tables as at RCPT time */
static void
pm_lookup(sched_t *s, fjob_t *j)
{
	const config_t *c = s->t->cfg;
	if (!c->bounce_to_postmaster || strcmp(c->bounce_to_postmaster, "yes") != 0 ||
	    c->nlocal_domains == 0)
		return;
	char *a = xasprintf("postmaster@%s", c->local_domains[0]);
	addr_t addr;
	memset(&addr, 0, sizeof addr);
	size_t used = 0;
	dest_list_t dl = {0};
	const char *why = NULL;
	int prc = addr_parse(a, strlen(a), ADDR_NO_BRACKETS, &addr, &used, &why);
	if (prc < 0 || router_expand(c, s->t->tables, &addr, true, &dl, &why) != ROUTER_OK ||
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

static void
fjob_start(sched_t *s, smsg_t *m, bool warn)
{
	fjob_t *j = xcalloc(1, sizeof *j);
	const config_t *c = s->t->cfg;
	j->s = s;
	j->m = m;
	j->warn = warn;
	j->env = envelope_dup(m->env);
	j->spool_dir = xstrdup(queue_spool_dir(s->t->queue));
	j->hostname = xstrdup(c->hostname);
	j->retry_until = c->queue_lifetime ? expiry_of(m->env, c->queue_lifetime) : 0;
	if (!warn && !(m->env->flags & ENV_PM_NOTICE) && (!m->env->sender || !m->env->sender[0])) {
		bool any_failed = false;
		for (size_t i = 0; i < m->env->nrcpt; i++)
			if (m->env->rcpt[i].status == RCPT_FAILED)
				any_failed = true;
		if (any_failed)
			pm_lookup(s, j);
	}
	j->req.data = j;
	if (!warn)
		m->finishing = true;
	m->inflight++;
	s->jobs++;
	uv_queue_work(s->t->loop, &j->req, fjob_work, fjob_done);
}

/* ---- the administrator's jobs ---- */

static void
ajob_work(uv_work_t *req)
{
	ajob_t *j = req->data;
	if (j->remove) {
		if (queue_remove(j->spool_dir, j->qid) < 0 && errno != ENOENT)
			j->err = errno;
		return;
	}
	/* a flags-only status batch (no recipient), fsync'd */
	envelope_t e;
	memset(&e, 0, sizeof e);
	memcpy(e.qid, j->qid, QID_SIZE);
	e.flags = j->flags;
	e.nrcpt = j->nrcpt;
	if (queue_append_status(j->spool_dir, &e, NULL, 0, true) < 0)
		j->err = errno;
}

static void
ajob_done(uv_work_t *req, int status)
{
	ajob_t *j = req->data;
	smsg_t *m = j->m;
	sched_t *s = m->s;
	s->jobs--;
	m->inflight--;
	if (j->remove) {
		if (j->err) {
			char t[300];
			snprintf(t, sizeof t, "%s: cannot delete: %s", m->env->qid, strerror(j->err));
			log_err("%s", t);
			m->deleting = false;
			waiters_notify(m, j->err, t);
			msg_settle(s, m);
		} else {
			char t[300];
			snprintf(t, sizeof t, "%s: deleted", m->env->qid);
			log_info("%s: deleted by the administrator (%zu recipient%s not delivered, no DSN)",
			    m->env->qid, envelope_pending(m->env), envelope_pending(m->env) == 1 ? "" : "s");
			log_info("%s: removed", m->env->qid);
			waiters_notify(m, 0, t);
			msg_free(s, m);
			sched_arm(s);
			stop_check(s);
		}
	} else {
		char t[300];
		bool held = (j->flags & ENV_HELD) != 0;
		if (j->err) {
			snprintf(t, sizeof t, "%s: cannot record the %s: %s", m->env->qid,
			    held ? "hold" : "release", strerror(j->err));
			log_err("%s", t);
		} else {
			snprintf(t, sizeof t, "%s: %s", m->env->qid, held ? "held" : "released");
			log_info("%s: %s by the administrator", m->env->qid, held ? "held" : "released");
		}
		waiters_notify(m, j->err, t);
		msg_settle(s, m);
	}
	xfree(j->spool_dir);
	xfree(j);
}

static void
ajob_start(sched_t *s, smsg_t *m, bool remove)
{
	ajob_t *j = xcalloc(1, sizeof *j);
	j->m = m;
	j->spool_dir = xstrdup(queue_spool_dir(s->t->queue));
	memcpy(j->qid, m->env->qid, QID_SIZE);
	j->flags = m->env->flags;
	j->nrcpt = m->env->nrcpt;
	j->remove = remove;
	j->req.data = j;
	m->inflight++;
	s->jobs++;
	uv_queue_work(s->t->loop, &j->req, ajob_work, ajob_done);
}

/* ---- settling: the next step of a message with no job in flight ---- */

/* a delay warning is still to be sent to someone: its time, else 0 */
static int64_t
warn_time(sched_t *s, smsg_t *m)
{
	const config_t *c = s->t->cfg;
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
	heap_remove(s, m);
	if (m->deleting) {
		ajob_start(s, m, true);
		return;
	}
	if (m->held != ((env->flags & ENV_HELD) != 0)) {
		/* no job in flight: the flag can change and be written now */
		if (m->held)
			env->flags |= ENV_HELD;
		else
			env->flags &= ~(unsigned)ENV_HELD;
		ajob_start(s, m, false);
		return;
	}
	int64_t due = INT64_MAX;
	for (size_t i = 0; i < env->nrcpt; i++) {
		env_rcpt_t *r = &env->rcpt[i];
		if (r->status == RCPT_PENDING && r->next_try < due)
			due = r->next_try;
	}
	if (due == INT64_MAX) {
		if (!s->stopping)
			fjob_start(s, m, false);
		return;
	}
	if (m->held)
		return; /* out of the heap until released */
	int64_t wt = warn_time(s, m);
	if (wt && !s->stopping) {
		if (wt <= now_s()) {
			fjob_start(s, m, true);
			return;
		}
		if (wt < due)
			due = wt;
	}
	m->due = due;
	heap_push(s, m);
}

/* After a job, or a change: the next step when no job is in flight. */
static void
msg_settle(sched_t *s, smsg_t *m)
{
	if (m->inflight == 0 && !m->finishing)
		msg_step(s, m);
	sched_arm(s);
	stop_check(s);
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
	    now_f() * 1e6 - (double)env->arrival_us >= (double)c->queue_lifetime * 1e6;

	for (size_t i = 0; i < n && !m->held && !m->deleting; i++) {
		env_rcpt_t *r = &env->rcpt[i];
		if (r->status != RCPT_PENDING || m->busy[i] || r->next_try > now)
			continue;
		if (expired && r->attempts > 0) {
			char line[600];
			/* RFC 3463 4.4.7: delivery time expired; the last reason follows */
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
			r->last_try = now;
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
		j->lifetime = c->queue_lifetime;
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
	msg_settle(s, m);
}

/* the domain of a recipient address, after the last '@' */
static bool
rcpt_in_domain(const char *addr, const char *domain)
{
	const char *at = strrchr(addr, '@');
	return at && strcasecmp(at + 1, domain) == 0;
}

size_t
sched_flush(sched_t *s, const char *domain)
{
	size_t count = 0;
	for (smsg_t *m = s->all.next; m != &s->all; m = m->next) {
		if (m->held || m->deleting || m->finishing)
			continue;
		bool any = false;
		for (size_t i = 0; i < m->env->nrcpt; i++) {
			env_rcpt_t *r = &m->env->rcpt[i];
			/* not busy: no worker touches this recipient */
			if (r->status == RCPT_PENDING && !m->busy[i] &&
			    (!domain || rcpt_in_domain(r->addr, domain))) {
				r->next_try = 0;
				any = true;
				count++;
			}
		}
		if (any && m->heap_idx != SIZE_MAX) {
			m->due = 0;
			heap_up(s, m->heap_idx);
		}
	}
	uv_timer_stop(&s->timer);
	sched_arm(s);
	return count;
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
		for (size_t k = 0; k < j->n; k++)
			j->m->busy[j->idx[k]] = false;
		j->m->inflight--;
		s->jobs--;
		ljob_free(j);
	}
	s->wait_tail = NULL;
	s->stop_done = done;
	s->stop_arg = arg;
	stop_check(s);
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
	 * m->prev is &s->all, i.e. that msg_free() advances s->all.next */
	for (smsg_t *m = s->all.next, *next; m != &s->all; m = next) {
		next = m->next;
		msg_free(s, m);
	}
	xfree(s->heap);
	s->heap = NULL;
	uv_close((uv_handle_t *)&s->timer, sched_timer_closed);
}

/* ---- the administrator's view ---- */

static char *
dup_or_null(const char *p)
{
	return p ? xstrdup(p) : NULL;
}

/* a copy safe to make while workers run: busy recipients' state is theirs */
static void
snap_one(const smsg_t *m, qview_entry_t *e)
{
	const envelope_t *src = m->env;
	envelope_t *d = envelope_new();
	memcpy(d->qid, src->qid, QID_SIZE);
	d->arrival_us = src->arrival_us;
	d->sender = dup_or_null(src->sender);
	d->envid = dup_or_null(src->envid);
	d->ret = src->ret;
	d->body = src->body;
	d->smtputf8 = src->smtputf8;
	d->client_addr = dup_or_null(src->client_addr);
	d->client_helo = dup_or_null(src->client_helo);
	d->auth_user = dup_or_null(src->auth_user);
	d->flags = (src->flags & ~(unsigned)ENV_HELD) | (m->held ? ENV_HELD : 0);
	d->body_off = src->body_off;
	d->body_len = src->body_len;
	e->active = xcalloc(src->nrcpt ? src->nrcpt : 1, sizeof *e->active);
	for (size_t i = 0; i < src->nrcpt; i++) {
		const env_rcpt_t *r = &src->rcpt[i];
		env_rcpt_t *x = envelope_add_rcpt(d, r->addr, r->orig, r->orcpt, r->notify);
		if (m->busy[i]) {
			e->active[i] = true;
			continue;
		}
		x->status = r->status;
		x->attempts = r->attempts;
		x->next_try = r->next_try;
		x->last_try = r->last_try;
		x->reply = dup_or_null(r->reply);
		x->relay = dup_or_null(r->relay);
	}
	e->env = d;
}

qview_entry_t *
sched_snapshot(sched_t *s, const char *qid, size_t *n)
{
	qview_entry_t *out = xcalloc(s->nmsgs ? s->nmsgs : 1, sizeof *out);
	size_t k = 0;
	for (smsg_t *m = s->all.next; m != &s->all; m = m->next) {
		if (m->deleting || (qid && strcmp(m->env->qid, qid) != 0))
			continue;
		snap_one(m, &out[k++]);
	}
	qview_sort(out, k);
	*n = k;
	return out;
}

static smsg_t *
op_find(sched_t *s, const char *qid, buf_t *text)
{
	smsg_t *m = msg_find(s, qid);
	if (!m || m->deleting) {
		buf_printf(text, "%s: no such message in the queue", qid);
		return NULL;
	}
	if (m->finishing) {
		buf_printf(text, "%s: every recipient is done; the message is being removed", qid);
		return NULL;
	}
	return m;
}

static void
add_waiter(smsg_t *m, sched_op_cb cb, void *arg)
{
	waiter_t *w = xcalloc(1, sizeof *w);
	w->cb = cb;
	w->arg = arg;
	w->next = m->waiters;
	m->waiters = w;
}

int
sched_hold(sched_t *s, const char *qid, bool hold, sched_op_cb cb, void *arg, buf_t *text)
{
	smsg_t *m = op_find(s, qid, text);
	if (!m)
		return -1;
	bool on_disk = (m->env->flags & ENV_HELD) != 0;
	if (m->held == hold && on_disk == hold && m->inflight == 0) {
		buf_printf(text, "%s: already %s", qid, hold ? "held" : "released");
		return 0;
	}
	/* released: back to its schedule (like Postfix's postsuper -H);
	 * sched_flush makes it due now */
	m->held = hold;
	if (m->inflight > 0) {
		buf_printf(text, "%s: %s (deliveries in progress finish first)", qid,
		    hold ? "held" : "released");
		log_info("%s: %s by the administrator (deliveries in progress finish first)", qid,
		    hold ? "hold" : "release");
		return 0;
	}
	add_waiter(m, cb, arg);
	msg_settle(s, m); /* starts the flag job */
	return 1;
}

int
sched_delete(sched_t *s, const char *qid, sched_op_cb cb, void *arg, buf_t *text)
{
	smsg_t *m = op_find(s, qid, text);
	if (!m)
		return -1;
	m->deleting = true;
	heap_remove(s, m);
	if (m->inflight > 0) {
		buf_printf(text, "%s: deleted (removed when the deliveries in progress are back)", qid);
		log_info("%s: delete requested by the administrator; deliveries in progress finish first",
		    qid);
		return 0;
	}
	add_waiter(m, cb, arg);
	msg_settle(s, m); /* starts the delete job */
	return 1;
}
