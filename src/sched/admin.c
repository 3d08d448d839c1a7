/*
 * admin.c - SCHEDULE: the administrator's operations on the index (hold,
 * release, delete, flush, bounce now) and the snapshot behind the queue listings (see
 * sched.h). Their effect on disk (a flags-only status record, fsync'd, or
 * the removal) is written by a job on the thread pool, started by sched.c's
 * msg_step once no delivery job of the message is in flight, so the
 * records stay in order.
 *
 * Event-loop thread only (the jobs' workers touch only their own copy).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/maillog.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "queue/queue.h"
#include "sched/sched.h"
#include "sched/sched_int.h"

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
			sched_settle(s, m);
		} else {
			char t[300];
			snprintf(t, sizeof t, "%s: deleted", m->env->qid);
			log_info("%s: deleted by the administrator (%zu recipient%s not delivered, no DSN)",
			    m->env->qid, envelope_pending(m->env), envelope_pending(m->env) == 1 ? "" : "s");
			maillog_removed(m->env->qid);
			waiters_notify(m, 0, t);
			sched_msg_free(s, m);
			sched_arm(s);
			sched_stop_check(s);
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
		sched_settle(s, m);
	}
	xfree(j->spool_dir);
	xfree(j);
}

void
sched_admin_job(sched_t *s, smsg_t *m, bool remove)
{
	ajob_t *j = xcalloc(1, sizeof *j);
	j->m = m;
	j->spool_dir = xstrdup(s->ctx.spool_dir);
	memcpy(j->qid, m->env->qid, QID_SIZE);
	j->flags = m->env->flags;
	j->nrcpt = m->env->nrcpt;
	j->remove = remove;
	j->req.data = j;
	m->inflight++;
	s->jobs++;
	uv_queue_work(s->ctx.loop, &j->req, ajob_work, ajob_done);
}

/* the domain of a recipient address, after the last '@' */
static bool
rcpt_in_domain(const char *addr, const char *domain)
{
	const char *at = strrchr(addr, '@');
	return at && strcasecmp(at + 1, domain) == 0;
}

/* make m's waiting recipients (in domain, when not NULL) due now */
static size_t
flush_msg(sched_t *s, smsg_t *m, const char *domain)
{
	if (m->held || m->deleting || m->finishing)
		return 0;
	size_t count = 0;
	for (size_t i = 0; i < m->env->nrcpt; i++) {
		env_rcpt_t *r = &m->env->rcpt[i];
		/* not busy: no worker touches this recipient */
		if (r->status == RCPT_PENDING && !m->busy[i] &&
		    (!domain || rcpt_in_domain(r->addr, domain))) {
			r->next_try = 0;
			count++;
		}
	}
	if (count && m->heap_idx != SIZE_MAX) {
		m->due = 0;
		sched_heap_up(s, m->heap_idx);
	}
	return count;
}

size_t
sched_flush(sched_t *s, const char *domain)
{
	size_t count = 0;
	for (smsg_t *m = s->all.next; m != &s->all; m = m->next)
		count += flush_msg(s, m, domain);
	uv_timer_stop(&s->timer);
	sched_arm(s);
	return count;
}

/* ---- the administrator's view ---- */

void
sched_entries_free(sched_entry_t *e, size_t n)
{
	if (!e)
		return;
	for (size_t i = 0; i < n; i++) {
		envelope_free(e[i].env);
		xfree(e[i].active);
	}
	xfree(e);
}

static int
cmp_entry(const void *a, const void *b)
{
	const sched_entry_t *x = a, *y = b;
	return strcmp(x->env->qid, y->env->qid);
}

void
sched_entries_sort(sched_entry_t *e, size_t n)
{
	if (n > 1)
		qsort(e, n, sizeof *e, cmp_entry);
}

static char *
dup_or_null(const char *p)
{
	return p ? xstrdup(p) : NULL;
}

/* a copy safe to make while workers run: busy recipients' state is theirs */
static void
snap_one(const smsg_t *m, sched_entry_t *e)
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
		x->sender = dup_or_null(r->sender);
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

bool
sched_oldest(sched_t *s, sched_oldest_t *o)
{
	const smsg_t *old = NULL;
	for (const smsg_t *m = s->all.next; m != &s->all; m = m->next) {
		if (m->deleting || m->held)
			continue;
		if (!old || m->env->arrival_us < old->env->arrival_us)
			old = m;
	}
	if (!old)
		return false;
	memset(o, 0, sizeof *o);
	memcpy(o->qid, old->env->qid, QID_SIZE);
	o->arrival_us = old->env->arrival_us;
	const env_rcpt_t *pick = NULL;
	for (size_t i = 0; i < old->env->nrcpt; i++) {
		const env_rcpt_t *r = &old->env->rcpt[i];
		if (r->status != RCPT_PENDING)
			continue;
		o->npending++;
		if (!pick && !old->busy[i]) /* a busy one's state is its worker's */
			pick = r;
	}
	if (pick) {
		snprintf(o->rcpt, sizeof o->rcpt, "%s", pick->addr);
		snprintf(o->reply, sizeof o->reply, "%s", pick->reply ? pick->reply : "");
		o->attempts = pick->attempts;
	}
	return true;
}

sched_entry_t *
sched_snapshot(sched_t *s, const char *qid, size_t *n)
{
	sched_entry_t *out = xcalloc(s->nmsgs ? s->nmsgs : 1, sizeof *out);
	size_t k = 0;
	for (smsg_t *m = s->all.next; m != &s->all; m = m->next) {
		if (m->deleting || (qid && strcmp(m->env->qid, qid) != 0))
			continue;
		snap_one(m, &out[k++]);
	}
	sched_entries_sort(out, k);
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
	sched_settle(s, m); /* starts the flag job */
	return 1;
}

int
sched_delete(sched_t *s, const char *qid, sched_op_cb cb, void *arg, buf_t *text)
{
	smsg_t *m = op_find(s, qid, text);
	if (!m)
		return -1;
	m->deleting = true;
	sched_heap_remove(s, m);
	if (m->inflight > 0) {
		buf_printf(text, "%s: deleted (removed when the deliveries in progress are back)", qid);
		log_info("%s: delete requested by the administrator; deliveries in progress finish first",
		    qid);
		return 0;
	}
	add_waiter(m, cb, arg);
	sched_settle(s, m); /* starts the delete job */
	return 1;
}

int
sched_flush_one(sched_t *s, const char *qid, buf_t *text)
{
	smsg_t *m = op_find(s, qid, text);
	if (!m)
		return -1;
	if (m->held) {
		buf_printf(text, "%s: held; release it first (tern queue release)", qid);
		return 0;
	}
	size_t n = flush_msg(s, m, NULL);
	uv_timer_stop(&s->timer);
	sched_arm(s);
	buf_printf(text, "%s: %zu recipient%s due now", qid, n, n == 1 ? "" : "s");
	return 0;
}

/* the bounce, when no job of m is in flight (msg_step): every recipient
 * still waiting fails for good; the round's DSN follows. The count. */
size_t
sched_bounce_now(sched_t *s, smsg_t *m)
{
	envelope_t *env = m->env;
	size_t n = 0;
	int64_t now = (int64_t)time(NULL);
	m->bounce_req = false;
	for (size_t i = 0; i < env->nrcpt; i++) {
		env_rcpt_t *r = &env->rcpt[i];
		if (r->status != RCPT_PENDING)
			continue;
		/* RFC 3463 5.0.0: failed for good, for no reason the codes name */
		r->status = RCPT_FAILED;
		r->last_try = now;
		r->next_try = 0;
		xfree(r->reply);
		r->reply = xstrdup("5.0.0 returned to the sender by the administrator");
		maillog_rcpt(env, r);
		n++;
	}
	m->round_after = 0; /* the failure DSN now, not after a retry pause */
	log_info("%s: bounced by the administrator (%zu recipient%s)", env->qid, n, n == 1 ? "" : "s");
	return n;
}

int
sched_bounce(sched_t *s, const char *qid, buf_t *text)
{
	smsg_t *m = op_find(s, qid, text);
	if (!m)
		return -1;
	const envelope_t *env = m->env;
	if (envelope_pending(env) == 0) {
		buf_printf(text, "%s: no recipient left to bounce", qid);
		return 0;
	}
	const char *dsn = env->sender && env->sender[0] ? "a DSN goes to the sender"
	                                                : "no DSN: the sender is <>";
	if (m->inflight > 0) {
		/* a worker owns some recipients: bounce when they are back (those
		 * delivered meanwhile stay delivered) */
		m->bounce_req = true;
		log_info("%s: bounce requested by the administrator; deliveries in progress finish first",
		    qid);
		buf_printf(text, "%s: bounced once the deliveries in progress are back (%s)", qid, dsn);
		return 0;
	}
	size_t n = sched_bounce_now(s, m);
	buf_printf(text, "%s: bounced (%zu recipient%s; %s)", qid, n, n == 1 ? "" : "s", dsn);
	sched_settle(s, m);
	return 0;
}
