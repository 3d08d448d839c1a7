/*
 * outbound.c - per-destination queues, connection limits and reuse, MX
 * walking, and the write-back of outcomes into envelopes (see outbound.h,
 * docs/outbound.md).
 *
 * Objects: a dest (one next hop: its resolved addresses, its queue of jobs,
 * its sessions), a job (one submission), a sess (one smtp_client_t plus the
 * index of the address it is on). A job sits in its dest's queue until a
 * session is READY and idle, then runs as one transaction; a session that
 * fails before READY moves on to the next address itself; when it runs out
 * of addresses and no other session of the dest is alive, every queued
 * job fails with its last error. An address whose connection was refused
 * or timed out (or that never greeted) is remembered for dead_host_time in
 * one bounded table (lib/lru.c) shared by every dest: walks skip it, and a
 * dest whose every address is remembered defers its queue without
 * connecting; reaching READY on an address forgets it. A transaction whose
 * recipients all got a 4xx from the server moves on to the next MX host
 * in the same attempt (RFC 5321 §5.1), up to mx_session_limit servers.
 *
 * Guarantees: every job's callback runs exactly once, always from a fresh
 * loop turn (jobs are finished through a "done" list drained by a zero
 * timer), so callers may submit or shut down from inside a callback; a
 * dest with nothing queued and no session is freed at once; limits are
 * counted per dest and in total. Must not: block (DNS through mx.h or
 * uv_getaddrinfo, content through the client's pread of a local file).
 */
#include "deliver/outbound.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <netdb.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/table.h"
#include "deliver/dstats.h"
#include "deliver/mtasts_fetch.h"
#include "deliver/tlsrpt.h"
#include "queue/queue.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/lru.h"
#include "lib/xalloc.h"
#include <sys/un.h>

enum hop_kind { HOP_MX, HOP_HOST, HOP_UNIX };
enum rstate { R_NEW, R_RESOLVING, R_READY };

struct target {
	struct sockaddr_storage sa;
	char *name;
	uint16_t pref; /* MX preference; 0 for relay hosts and transports */
	size_t host;   /* its entry in dest.hosts (DANE), or NO_HOST */
	int sts;       /* SMTP_STS_*: the MTA-STS policy that applies to this host */
};

#define NO_HOST ((size_t)-1)

/* a host's DANE state (RFC 7672), shared by its addresses */
struct dhost {
	tls_tlsa_t *tlsa; /* secure TLSA records (owned), ntlsa > 0: DANE */
	size_t ntlsa;
	char *base;       /* the TLSA base domain when not the host's name (a CNAME's target) */
	bool usable;      /* at least one record tls_tlsa_unusable() accepts */
};

struct job;
struct sess;

struct dest {
	struct dest *next, *prev;
	outbound_t *o;
	char *key;
	bool lmtp;
	enum hop_kind kind;
	char *host;
	uint16_t port;
	bool is_relay; /* a configured next hop (relayhost/transport), not the recipient's domain */
	bool use_auth; /* the relayhost, with credentials configured */
	enum tls_policy tls_policy;
	/* RFC 8689: this destination carries only REQUIRETLS messages (its
	 * hosts are validated, its TLS authenticated, REQUIRETLS required),
	 * or only "TLS-Required: No" ones (recipient-side DANE and MTA-STS
	 * not applied); requiretls_bad: why it cannot carry REQUIRETLS */
	bool requiretls, tls_optional;
	const char *requiretls_bad;
	/* MTA-STS (RFC 8461): looked up for this MX destination; the lookup
	 * in flight; done (sts_pol valid when have_sts) */
	bool sts_wanted, sts_done, have_sts;
	mtasts_req_t *stsreq;
	mtasts_policy_t sts_pol;
	char sts_id[MTASTS_ID_MAX + 1];

	enum rstate rstate;
	struct target *t;
	size_t nt;
	struct dhost *hosts; /* DANE: per MX host */
	size_t nhosts;
	uint64_t expires; /* uv_now ms after which t and hosts are stale; 0: never */
	mx_req_t *mxreq;
	struct gai *gai;

	struct job *qhead, *qtail;
	size_t nqueued;
	struct sess *sessions;
	unsigned nsess, nconnecting;
	unsigned rr;      /* round robin over the hosts of the best preference */
	bool ever_ready;
	bool stale;       /* built before a reload: takes no new work */
};

struct gai {
	uv_getaddrinfo_t req;
	outbound_t *o;
	struct dest *d; /* NULL once abandoned */
};

struct job {
	struct job *next;
	outbound_t *o;
	envelope_t *env;
	size_t *idx;
	size_t n;
	outbound_done_cb cb;
	void *arg;
	smtp_txn_t txn;
	bool cancelled; /* shutdown: attempts not counted */
	bool dsn_offered; /* the server took NOTIFY/ORCPT (RFC 3461): it reports success itself */
	char *relay;
	char *tls; /* "TLSv1.3 verified=dane-ee" for the delivery log, or NULL */
	const char *transport; /* for the metrics: "smtp", "lmtp", "relay" (dstats.h) */
	uint64_t started;      /* clock_mono_us() at outbound_submit */
	unsigned nmx; /* servers its transaction was started on in this attempt */
};

struct sess {
	struct sess *next, *prev;
	struct dest *d;
	smtp_client_t *c;
	size_t ti;        /* how many addresses this session has tried before the current one */
	size_t start;     /* where its walk through the first preference group starts */
	struct job *job;
	unsigned ntxn;
	uint64_t idle_since; /* ms, uv_now; 0 = not idle */
	bool quitting;
	bool no_tls; /* "may": the handshake failed on this address, try in clear */
	struct job *pinned; /* moved on from another server after a 4xx: runs here first */
	enum tls_policy policy; /* this address's policy (DANE decided per host) */
};

/* a host address that did not answer lately (o->dead, keyed "[ip]:port") */
struct dead {
	uint64_t since; /* uv_now, ms */
	char why[240];  /* "connect to mx[192.0.2.1]:25: connection refused" */
};

#define DEAD_HOSTS_MAX 4096

struct outbound {
	uv_loop_t *loop;
	char *hostname;
	char *spool_dir;
	char *relayhost;
	char *relay_auth_user, *relay_auth_pass;
	unsigned dest_limit, total_limit, max_per_conn, idle_ms;
	uint64_t dead_ms; /* smtp_dead_host_time; 0: off */
	unsigned mx_sessions; /* smtp_mx_session_limit */
	lru_t dead;       /* struct dead, shared by every destination */
	smtp_timeouts_t timeouts;
	dns_t *dns;
	mx_options_t mx;
	bool have_mx;
	outbound_route_fn route;
	void *route_arg;
	int (*open_content)(const char *, const envelope_t *);
	enum tls_policy tls_policy;
	table_t *tls_policies;
	SSL_CTX *tls_ctx;
	bool dnssec;
	bool mta_sts;     /* MTA-STS for may, encrypt and dane destinations too */
	mtasts_t *sts;    /* NULL: no destination uses MTA-STS */

	struct dest *dests;
	unsigned ndests;
	unsigned nsess;
	unsigned ngai;
	struct job *done_head, *done_tail;
	uv_timer_t defer; /* drains the done list */
	uv_timer_t sweep; /* closes idle sessions */
	int handles_open;
	bool shutting;
	bool closing; /* the handles are closing: o is about to be freed */
	void (*shut_cb)(void *);
	void *shut_arg;
	outbound_stats_t st;
};

static void dest_pump(struct dest *d);
static void dest_maybe_free(struct dest *d);
static void check_shutdown(outbound_t *o);
static void sess_connect(struct sess *s);
static struct sess *sess_add(struct dest *d, size_t start);
static size_t sess_target(const struct sess *s, size_t k);
static void sess_tlsrpt(const struct sess *s, const smtp_client_t *c);

/* ---- hosts that did not answer lately ---- */

/* "[ip]:port" of sa into key; the ip alone into ip */
static void
dead_key(const struct sockaddr *sa, char *key, size_t kcap, char *ip, size_t icap)
{
	unsigned port;
	snprintf(ip, icap, "?");
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		uv_ip6_name(s6, ip, icap);
		port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		uv_ip4_name(s4, ip, icap);
		port = ntohs(s4->sin_port);
	}
	snprintf(key, kcap, "[%s]:%u", ip, port);
}

/* what is remembered of sa's failure; NULL when nothing or expired (an
 * expired entry stays until replaced, cleared or pushed out by the cap) */
static struct dead *
dead_get(outbound_t *o, const struct sockaddr *sa)
{
	if (!o->dead_ms || sa->sa_family == AF_UNIX)
		return NULL;
	char key[INET6_ADDRSTRLEN + 16], ip[INET6_ADDRSTRLEN];
	dead_key(sa, key, sizeof key, ip, sizeof ip);
	struct dead *x = lru_get(&o->dead, key);
	return x && uv_now(o->loop) - x->since < o->dead_ms ? x : NULL;
}

/* sa did not answer (why: the client's error, "451 4.4.1 connect to ...") */
static void
dead_note(outbound_t *o, const struct sockaddr *sa, const char *why)
{
	if (!o->dead_ms || sa->sa_family == AF_UNIX)
		return;
	char key[INET6_ADDRSTRLEN + 16], ip[INET6_ADDRSTRLEN];
	dead_key(sa, key, sizeof key, ip, sizeof ip);
	struct dead *x = lru_get(&o->dead, key);
	if (x) {
		lru_touch(&o->dead, x);
	} else {
		while (lru_count(&o->dead) >= DEAD_HOSTS_MAX)
			lru_del(&o->dead, lru_oldest(&o->dead));
		x = lru_put(&o->dead, key);
	}
	x->since = uv_now(o->loop);
	/* the text without its codes */
	const char *p = why;
	if (isdigit((unsigned char)p[0]) && strlen(p) > 4 && p[3] == ' ')
		p += 4;
	if (isdigit((unsigned char)p[0]) && p[1] == '.') {
		p += strcspn(p, " ");
		p += *p == ' ';
	}
	snprintf(x->why, sizeof x->why, "%s", p);
}

static void
dead_clear(outbound_t *o, const struct sockaddr *sa)
{
	struct dead *x = dead_get(o, sa);
	if (x)
		lru_del(&o->dead, x);
}

/* "451 4.4.1 host IP port N was unreachable S s ago: WHY" for t */
static void
dead_reply(outbound_t *o, const struct target *t, const struct dead *x, outcome_t *oc)
{
	char key[INET6_ADDRSTRLEN + 16], ip[INET6_ADDRSTRLEN];
	const struct sockaddr *sa = (const struct sockaddr *)&t->sa;
	dead_key(sa, key, sizeof key, ip, sizeof ip);
	unsigned port = ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
	    : ((const struct sockaddr_in *)sa)->sin_port);
	char *text = xasprintf("451 4.4.1 host %s port %u was unreachable %llu s ago: %s", ip, port,
	    (unsigned long long)((uv_now(o->loop) - x->since) / 1000), x->why);
	outcome_session(oc, text);
	xfree(text);
}

/*
 * The first step k >= from of s's walk whose address is not remembered as
 * dead, logging the ones skipped; d->nt when every one is. RFC 5321 §5.1
 * leaves the order of tries to us: a host that just failed goes last.
 */
static size_t
sess_next_live(const struct sess *s, size_t from, bool log)
{
	const struct dest *d = s->d;
	outbound_t *o = d->o;
	for (size_t k = from; k < d->nt; k++) {
		const struct target *t = &d->t[sess_target(s, k)];
		const struct dead *x = dead_get(o, (const struct sockaddr *)&t->sa);
		if (!x)
			return k;
		if (log) {
			outcome_t oc;
			dead_reply(o, t, x, &oc);
			log_info("outbound: %s: %s not tried (smtp_dead_host_time): %s", d->host, t->name,
			    oc.text);
		}
	}
	return d->nt;
}

/* the dest's first address when every one of them is remembered as dead,
 * else NULL */
static const struct target *
dest_all_dead(const struct dest *d, const struct dead **xp)
{
	outbound_t *o = d->o;
	if (!o->dead_ms || d->nt == 0)
		return NULL;
	for (size_t i = 0; i < d->nt; i++) {
		const struct dead *x = dead_get(o, (const struct sockaddr *)&d->t[i].sa);
		if (!x)
			return NULL;
		if (i == 0)
			*xp = x;
	}
	return &d->t[0];
}

/* ---- jobs ---- */

static void
on_defer(uv_timer_t *t)
{
	outbound_t *o = t->data;
	/* take the whole list: callbacks may add to it */
	struct job *j = o->done_head;
	o->done_head = o->done_tail = NULL;
	while (j) {
		struct job *next = j->next;
		j->cb(j->arg, j->env, j->idx, j->n);
		xfree(j->idx);
		xfree(j->relay);
		xfree(j->tls);
		xfree(j);
		j = next;
	}
	check_shutdown(o);
}

/* Write the results into the envelope and queue the callback. */
static void
job_finish(struct job *j)
{
	outbound_t *o = j->o;
	envelope_t *e = j->env;
	int64_t now = (int64_t)time(NULL);
	for (size_t k = 0; k < j->n; k++) {
		env_rcpt_t *r = &e->rcpt[j->idx[k]];
		smtp_result_t *res = &j->txn.res[k];
		int oc = res->outcome;
		if (oc == SMTP_UNDECIDED) {
			oc = SMTP_TEMPFAIL;
			res->reply = xstrdup("451 4.3.0 internal error: no outcome");
		}
		r->status = oc == SMTP_OK ? RCPT_SENT : oc == SMTP_PERMFAIL ? RCPT_FAILED : RCPT_PENDING;
		/* RFC 3461 §6.2.2: a server that offers DSN got our NOTIFY and
		 * sends any success DSN itself; otherwise we say "relayed" */
		if (oc == SMTP_OK && j->dsn_offered)
			r->dsn_passed = true;
		xfree(r->reply);
		r->reply = res->reply;
		res->reply = NULL;
		if (!j->cancelled) {
			if (j->relay) {
				xfree(r->relay);
				r->relay = xstrdup(j->relay);
			}
			snprintf(r->tls, sizeof r->tls, "%s", j->tls ? j->tls : "");
			r->last_try = now;
			r->attempts++;
		}
		/* the scheduler logs the outcome, with delay and attempts */
	}
	if (!j->cancelled && j->n > 0)
		dstats_attempt(j->transport ? j->transport : "smtp", e, j->idx, j->n, j->started);
	xfree(j->txn.res);
	j->txn.res = NULL;
	if (j->txn.fd >= 0)
		close(j->txn.fd);
	j->txn.fd = -1;
	j->next = NULL;
	if (o->done_tail)
		o->done_tail->next = j;
	else
		o->done_head = j;
	o->done_tail = j;
	uv_timer_start(&o->defer, on_defer, 0, 0);
}

/* every recipient of the job gets the same outcome */
static void
job_fail(struct job *j, const outcome_t *oc)
{
	int outcome = oc->kind;
	const char *reply = oc->text;
	for (size_t k = 0; k < j->n; k++) {
		if (j->txn.res[k].outcome != SMTP_UNDECIDED)
			continue;
		j->txn.res[k].outcome = outcome;
		xfree(j->txn.res[k].reply);
		j->txn.res[k].reply = xstrdup(reply);
	}
	job_finish(j);
}

static void
job_cancel(struct job *j)
{
	outcome_t oc;
	j->cancelled = true;
	outcome_shutdown(&oc);
	job_fail(j, &oc);
}

static struct job *
dest_pop(struct dest *d)
{
	struct job *j = d->qhead;
	if (!j)
		return NULL;
	d->qhead = j->next;
	if (!d->qhead)
		d->qtail = NULL;
	d->nqueued--;
	j->next = NULL;
	return j;
}

static void
dest_push(struct dest *d, struct job *j, bool front)
{
	if (front) {
		j->next = d->qhead;
		d->qhead = j;
		if (!d->qtail)
			d->qtail = j;
	} else {
		j->next = NULL;
		if (d->qtail)
			d->qtail->next = j;
		else
			d->qhead = j;
		d->qtail = j;
	}
	d->nqueued++;
}

/* fail (or cancel) everything queued at d */
static void
dest_fail_queue(struct dest *d, const outcome_t *oc, const char *relay)
{
	struct job *j;
	while ((j = dest_pop(d)) != NULL) {
		if (d->o->shutting) {
			job_cancel(j);
			continue;
		}
		if (relay && !j->relay)
			j->relay = xstrdup(relay);
		job_fail(j, oc);
	}
}

/* ---- sessions ---- */

static void
sess_idle(struct sess *s)
{
	s->idle_since = uv_now(s->d->o->loop);
	if (s->idle_since == 0)
		s->idle_since = 1;
}

/* Give an idle session its next job; true if one started. */
static bool
sess_take_job(struct sess *s)
{
	struct dest *d = s->d;
	outbound_t *o = d->o;
	struct job *j;
	while (!o->shutting && smtp_client_usable(s->c)) {
		if (s->pinned) {
			j = s->pinned;
			s->pinned = NULL;
		} else if ((j = dest_pop(d)) == NULL) {
			break;
		}
		j->txn.fd = o->open_content(o->spool_dir, j->env);
		xfree(j->relay);
		j->relay = xstrdup(smtp_client_relay(s->c));
		xfree(j->tls);
		j->tls = NULL;
		if (smtp_client_tls(s->c)) {
			const char *v = smtp_client_tls(s->c);
			const char *auth = smtp_client_tls_auth(s->c);
			j->tls = xasprintf("%.*s verified=%s", (int)strcspn(v, " "), v, auth ? auth : "none");
		}
		j->dsn_offered = (smtp_client_ext(s->c) & SMTP_EXT_DSN) != 0;
		if (j->txn.fd < 0) {
			outcome_t oc;
			outcome_queue_read(&oc, errno, true);
			job_fail(j, &oc);
			continue;
		}
		s->job = j; /* before sending: events may follow at once */
		s->idle_since = 0;
		int r = smtp_client_send(s->c, &j->txn);
		if (r == 0) {
			o->st.transactions++;
			j->nmx++;
			return true;
		}
		s->job = NULL;
		if (r == 1) {
			job_finish(j); /* decided at once (SIZE, SMTPUTF8 ...) */
			continue;
		}
		close(j->txn.fd);
		j->txn.fd = -1;
		dest_push(d, j, true);
		return false;
	}
	return false;
}

/* the session finished a transaction or came up: next job, idle, or QUIT */
static void
sess_next(struct sess *s)
{
	outbound_t *o = s->d->o;
	if (o->shutting || s->ntxn >= o->max_per_conn) {
		s->quitting = true;
		smtp_client_quit(s->c);
		return;
	}
	if (!sess_take_job(s) && smtp_client_usable(s->c))
		sess_idle(s);
}

static void
sess_free(struct sess *s)
{
	struct dest *d = s->d;
	outbound_t *o = d->o;
	if (s->prev)
		s->prev->next = s->next;
	else
		d->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	d->nsess--;
	o->nsess--;
	xfree(s);
}

/*
 * RFC 5321 §5.1: "when ... the transaction is rejected temporarily, try
 * the next" server. After a transaction on s in which every recipient got a
 * 4xx from the server itself (to MAIL, to every RCPT, to DATA or the final
 * dot; or a 421 anywhere), j goes on, in the same attempt, to the next MX
 * host of the walk (the next preference, or an equal one not tried yet)
 * on a new session, up to smtp_mx_session_limit servers; s quits. Not for
 * LMTP, nor when a recipient was accepted or refused for good (a mixed
 * result stays as it is: the 4xx recipients are deferred), nor after a
 * timeout or a lost connection. True when j moved on.
 */
static bool
job_move_on(struct sess *s, smtp_client_t *c, struct job *j)
{
	struct dest *d = s->d;
	outbound_t *o = d->o;
	if (d->lmtp || o->shutting || j->nmx >= o->mx_sessions || j->n == 0)
		return false;
	bool usable = smtp_client_usable(c);
	for (size_t k = 0; k < j->n; k++) {
		const smtp_result_t *r = &j->txn.res[k];
		if (r->outcome != SMTP_TEMPFAIL || !r->reply)
			return false;
		if (!usable && strncmp(r->reply, "421", 3) != 0)
			return false;
	}
	const char *name = d->t[sess_target(s, s->ti)].name;
	size_t k = s->ti + 1;
	while (k < d->nt && strcmp(d->t[sess_target(s, k)].name, name) == 0)
		k++;
	k = k < d->nt ? sess_next_live(s, k, true) : d->nt;
	if (k >= d->nt)
		return false;
	const struct target *t = &d->t[sess_target(s, k)];
	log_info("%s: %s from %s: trying the next MX host %s in the same attempt (server %u of at "
	    "most %u, smtp_mx_session_limit)", j->env->qid, j->txn.res[0].reply,
	    smtp_client_relay(c), t->name, j->nmx + 1, o->mx_sessions);
	for (size_t i = 0; i < j->n; i++) {
		xfree(j->txn.res[i].reply);
		j->txn.res[i].reply = NULL;
		j->txn.res[i].outcome = SMTP_UNDECIDED;
	}
	if (j->txn.fd >= 0)
		close(j->txn.fd);
	j->txn.fd = -1;
	s->quitting = true;
	if (usable)
		smtp_client_quit(c);
	struct sess *n = sess_add(d, s->start);
	n->ti = k;
	n->pinned = j;
	sess_connect(n);
	return true;
}

static void
on_client(smtp_client_t *c, enum smtp_client_ev ev, void *arg)
{
	struct sess *s = arg;
	struct dest *d = s->d;
	outbound_t *o = d->o;

	switch (ev) {
	case SMTP_CLIENT_READY:
		dead_clear(o, (const struct sockaddr *)&d->t[sess_target(s, s->ti)].sa);
		sess_tlsrpt(s, c);
		d->nconnecting--;
		d->ever_ready = true;
		sess_next(s);
		dest_pump(d); /* the destination answers: more sessions may start */
		break;
	case SMTP_CLIENT_DONE: {
		struct job *j = s->job;
		s->job = NULL;
		s->ntxn++;
		if (j && job_move_on(s, c, j))
			break;
		if (smtp_client_usable(c))
			sess_next(s);
		if (j)
			job_finish(j);
		break;
	}
	case SMTP_CLIENT_CLOSED: {
		s->c = NULL;
		if (s->job) {
			/* cannot happen: DONE precedes CLOSED for a transaction */
			struct job *j = s->job;
			s->job = NULL;
			outcome_t oc;
			outcome_session(&oc, "451 4.4.2 session ended");
			job_fail(j, &oc);
		}
		if (!smtp_client_was_ready(c)) {
			sess_tlsrpt(s, c);
			const char *err = smtp_client_error(c);
			int oc = smtp_client_error_outcome(c);
			log_info("outbound: %s: %s", smtp_client_relay(c), err);
			if (!o->shutting && !s->quitting && smtp_client_unreachable(c))
				dead_note(o, (const struct sockaddr *)&d->t[sess_target(s, s->ti)].sa, err);
			if (!o->shutting && !s->quitting && smtp_client_tls_failed(c) && !s->no_tls &&
			    s->policy == TLS_POLICY_MAY) {
				/* opportunistic TLS failed: the same address in clear */
				log_info("outbound: %s: retrying without TLS (policy may)", smtp_client_relay(c));
				s->no_tls = true;
				sess_connect(s);
				return;
			}
			size_t k = s->ti + 1 < d->nt ? sess_next_live(s, s->ti + 1, true) : d->nt;
			if (!o->shutting && !s->quitting && k < d->nt) {
				/* RFC 5321 §5.1: try the next address */
				s->ti = k;
				s->no_tls = false;
				sess_connect(s);
				return;
			}
			d->nconnecting--;
			if (d->nsess == 1 || o->shutting) {
				/* nobody else will take the queue: it fails with the
				 * last error (permanent only for a 5xx greeting/HELO) */
				outcome_t fo;
				fo.kind = oc == SMTP_PERMFAIL ? OUTCOME_PERMFAIL : OUTCOME_TEMPFAIL;
				snprintf(fo.text, sizeof fo.text, "%s",
				    err[0] ? err : "451 4.4.1 no server answered");
				if (d->requiretls) {
					char t[sizeof fo.text];
					snprintf(t, sizeof t, "%s", fo.text);
					outcome_requiretls(&fo, t); /* never a downgrade */
				}
				dest_fail_queue(d, &fo, smtp_client_relay(c));
			}
		}
		if (s->pinned) {
			/* the job moved on to this session, which ended first */
			struct job *j = s->pinned;
			s->pinned = NULL;
			if (o->shutting) {
				job_cancel(j);
			} else {
				const char *err = smtp_client_error(c);
				outcome_t oc;
				outcome_session(&oc, err[0] ? err : "451 4.4.2 session ended");
				xfree(j->relay);
				j->relay = xstrdup(smtp_client_relay(c));
				job_fail(j, &oc);
			}
		}
		sess_free(s);
		/* a connection slot is free: any destination may go on */
		for (struct dest *x = o->dests, *nx; x; x = nx) {
			nx = x->next;
			dest_pump(x);
			dest_maybe_free(x);
		}
		check_shutdown(o);
		break;
	}
	}
}

/* RFC 8460: count a session attempt (or a policy failure at host h) for
 * the recipient domain's TLS report; only MX delivery has a policy domain */
static void
dest_tlsrpt(const struct dest *d, size_t h, const char *mx, const struct sockaddr *sa,
    bool sts, const char *local, const char *result, const char *reason)
{
	if (d->kind != HOP_MX || d->is_relay)
		return;
	const struct dhost *dh = h < d->nhosts ? &d->hosts[h] : NULL;
	tlsrpt_attempt_t a = {.domain = d->host, .dane = dh && (dh->ntlsa || result),
	    .tlsa = dh ? dh->tlsa : NULL, .ntlsa = dh ? dh->ntlsa : 0,
	    .sts = sts && d->have_sts ? &d->sts_pol : NULL, .mx_host = mx, .receiving = sa,
	    .sending_ip = local, .result = result, .reason = reason};
	tlsrpt_count_attempt(&a, time(NULL));
}

static void
sess_tlsrpt(const struct sess *s, const smtp_client_t *c)
{
	const char *type, *reason, *local;
	if (smtp_client_tlsrpt(c, &type, &reason, &local) == 0)
		return;
	const struct target *t = &s->d->t[sess_target(s, s->ti)];
	dest_tlsrpt(s->d, s->policy == TLS_POLICY_DANE ? t->host : NO_HOST, t->name,
	    (const struct sockaddr *)&t->sa, t->sts != SMTP_STS_NONE, local, type, reason);
}

/*
 * MTA-STS for a host without DANE records (RFC 8461 §2: DANE wins where a
 * host has both): enforce makes it VERIFY with the policy's name on the
 * failures; testing keeps p and logs what enforce would refuse.
 */
static enum tls_policy
target_sts(const struct dest *d, const struct target *t, smtp_client_options_t *co,
    enum tls_policy p)
{
	if (t->sts == SMTP_STS_NONE)
		return p;
	co->sts = t->sts;
	co->sts_domain = d->host;
	return t->sts == SMTP_STS_ENFORCE ? TLS_POLICY_VERIFY : p;
}

/*
 * The TLS policy for one address of d. Under "dane"/"dane-only" it
 * depends on its host's TLSA records (RFC 7672 §2.2): usable ones mean
 * DANE (co gets the records and the reference names); only unusable ones
 * mean TLS without authentication (ENCRYPT); none means MAY (hosts without
 * them were dropped under "dane-only" by dest_apply_dane).
 */
static enum tls_policy
target_policy(const struct dest *d, const struct target *t, smtp_client_options_t *co)
{
	if (!tls_policy_is_dane(d->tls_policy))
		return target_sts(d, t, co, d->tls_policy);
	const struct dhost *h = t->host != NO_HOST && t->host < d->nhosts ? &d->hosts[t->host] : NULL;
	if (!h || h->ntlsa == 0)
		return target_sts(d, t, co, TLS_POLICY_MAY);
	if (!h->usable)
		return TLS_POLICY_ENCRYPT;
	co->tlsa = h->tlsa;
	co->ntlsa = h->ntlsa;
	co->dane_base = h->base ? h->base : t->name;
	co->dane_domain = d->host;
	co->dane_alias = h->base ? t->name : NULL;
	return TLS_POLICY_DANE;
}

static void
sess_connect(struct sess *s)
{
	struct dest *d = s->d;
	outbound_t *o = d->o;
	smtp_client_options_t co;
	memset(&co, 0, sizeof co);
	co.helo_name = o->hostname;
	co.lmtp = d->lmtp;
	co.t = o->timeouts;
	struct target *t = &d->t[sess_target(s, s->ti)];
	s->policy = target_policy(d, t, &co);
	if (d->requiretls) {
		/* RFC 8689 §4.2.1: authenticated TLS, by DANE or a certificate
		 * valid for the host's name; an MTA-STS testing policy adds nothing */
		if (s->policy != TLS_POLICY_DANE)
			s->policy = TLS_POLICY_VERIFY;
		if (co.sts == SMTP_STS_TESTING)
			co.sts = SMTP_STS_NONE;
		co.requiretls = true;
	}
	co.tls_policy = s->no_tls ? TLS_POLICY_NONE : s->policy;
	co.tls_ctx = o->tls_ctx;
	if (d->use_auth) {
		co.auth_user = o->relay_auth_user;
		co.auth_pass = o->relay_auth_pass;
	}
	o->st.connections++;
	s->c = smtp_client_new(o->loop, (const struct sockaddr *)&t->sa, t->name, &co, on_client, s);
}

/*
 * The address a session tries at its k-th attempt. RFC 5321 §5.1 wants
 * the hosts of equal preference used in random order so that load is
 * spread; the MX answer is shuffled once per resolution, so to spread the
 * sessions of a busy destination too, each new session starts its walk at
 * the next host (round robin) of the best preference group, wraps around
 * inside that group, then goes on with the rest in order. All addresses of
 * a host stay together.
 */
static size_t
sess_target(const struct sess *s, size_t k)
{
	const struct dest *d = s->d;
	size_t g = 1;
	while (g < d->nt && d->t[g].pref == d->t[0].pref)
		g++;
	if (k >= g)
		return k;
	return (s->start + k) % g;
}

static size_t
sess_first(struct dest *d)
{
	size_t g = 1, nhosts = 1;
	if (!d->t)
		return 0;
	while (g < d->nt && d->t[g].pref == d->t[0].pref) {
		if (strcmp(d->t[g].name, d->t[g - 1].name) != 0)
			nhosts++;
		g++;
	}
	if (nhosts < 2)
		return 0;
	size_t want = d->rr++ % nhosts, host = 0;
	for (size_t i = 1; i < g; i++) {
		if (strcmp(d->t[i].name, d->t[i - 1].name) != 0 && ++host == want)
			return i;
	}
	return 0;
}

/* a new session of d, counted as connecting, not connected yet */
static struct sess *
sess_add(struct dest *d, size_t start)
{
	outbound_t *o = d->o;
	struct sess *s = xcalloc(1, sizeof *s);
	s->d = d;
	s->start = start;
	s->next = d->sessions;
	if (d->sessions)
		d->sessions->prev = s;
	d->sessions = s;
	d->nsess++;
	d->nconnecting++;
	o->nsess++;
	return s;
}

static void
sess_open(struct dest *d)
{
	struct sess *s = sess_add(d, sess_first(d));
	size_t k = sess_next_live(s, 0, true);
	if (k < d->nt) /* dest_pump made sure one is live */
		s->ti = k;
	sess_connect(s);
}

/* ---- destinations ---- */

static bool
dest_can_open(const struct dest *d)
{
	const outbound_t *o = d->o;
	if (o->shutting || d->nsess >= o->dest_limit || o->nsess >= o->total_limit)
		return false;
	/* a destination that has not answered yet: one attempt at a time */
	return d->ever_ready || d->nconnecting == 0;
}

static void dest_resolve(struct dest *d);
static void dest_forget(struct dest *d);

static void
dest_pump(struct dest *d)
{
	if (d->nqueued == 0)
		return;
	if (d->rstate == R_READY && d->expires && d->nsess == 0 && uv_now(d->o->loop) >= d->expires) {
		/* the DNS data (TLSA records above all) is older than its TTL:
		 * ask again (libunbound's cache answers what is still fresh) */
		dest_forget(d);
		d->rstate = R_NEW;
	}
	if (d->rstate == R_NEW) {
		dest_resolve(d);
		return;
	}
	if (d->rstate != R_READY)
		return;
	for (struct sess *s = d->sessions; s && d->nqueued > 0; s = s->next)
		if (s->idle_since && !s->quitting && !s->job && s->c && smtp_client_usable(s->c) &&
		    !sess_take_job(s) && smtp_client_usable(s->c))
			sess_idle(s);
	const struct dead *x = NULL;
	const struct target *t = d->nqueued > 0 ? dest_all_dead(d, &x) : NULL;
	if (t) {
		/* every address failed lately: no new session; with none left
		 * the queue is deferred with what the best one did */
		if (d->nsess == 0) {
			outcome_t oc;
			dead_reply(d->o, t, x, &oc);
			log_info("outbound: %s: every address was unreachable lately, not tried "
			    "(smtp_dead_host_time): %s", d->host, oc.text);
			char ip[INET6_ADDRSTRLEN], key[INET6_ADDRSTRLEN + 16];
			dead_key((const struct sockaddr *)&t->sa, key, sizeof key, ip, sizeof ip);
			char *relay = xasprintf("%s%s", t->name, key);
			dest_fail_queue(d, &oc, relay);
			xfree(relay);
		}
		return;
	}
	while (d->nqueued > d->nconnecting && dest_can_open(d))
		sess_open(d);
}

/* drop the resolved addresses and TLSA records */
static void
dest_forget(struct dest *d)
{
	for (size_t i = 0; i < d->nt; i++)
		xfree(d->t[i].name);
	xfree(d->t);
	d->t = NULL;
	d->nt = 0;
	for (size_t i = 0; i < d->nhosts; i++) {
		for (size_t k = 0; k < d->hosts[i].ntlsa; k++)
			xfree((void *)d->hosts[i].tlsa[k].data);
		xfree(d->hosts[i].tlsa);
		xfree(d->hosts[i].base);
	}
	xfree(d->hosts);
	d->hosts = NULL;
	d->nhosts = 0;
	d->expires = 0;
	/* the MTA-STS policy is asked for again with the DNS data (the TXT
	 * id says whether it changed) */
	mtasts_policy_clear(&d->sts_pol);
	d->have_sts = d->sts_done = false;
}

static void
dest_free(struct dest *d)
{
	outbound_t *o = d->o;
	if (d->prev)
		d->prev->next = d->next;
	else
		o->dests = d->next;
	if (d->next)
		d->next->prev = d->prev;
	o->ndests--;
	if (d->mxreq)
		mx_cancel(d->mxreq);
	if (d->stsreq)
		mtasts_cancel(d->stsreq);
	if (d->gai)
		d->gai->d = NULL;
	dest_forget(d);
	xfree(d->key);
	xfree(d->host);
	xfree(d);
}

static void
dest_maybe_free(struct dest *d)
{
	if (d->nqueued == 0 && d->nsess == 0)
		dest_free(d);
}

/* resolution failed: the queue fails; the caller frees the dest (it is
 * resolved again next time) */
static void
dest_resolve_failed(struct dest *d, const outcome_t *oc)
{
	d->rstate = R_NEW;
	dest_fail_queue(d, oc, NULL);
}

/* the next hop cannot be resolved for a local reason: outcome_next_hop */
static void
dest_unreachable(struct dest *d, const char *text)
{
	outcome_t oc;
	outcome_next_hop(&oc, text);
	dest_resolve_failed(d, &oc);
}

static void
dest_add_target(struct dest *d, const struct sockaddr *sa, const char *name, uint16_t pref)
{
	d->t = xrealloc(d->t, (d->nt + 1) * sizeof *d->t);
	memset(&d->t[d->nt].sa, 0, sizeof d->t[d->nt].sa);
	if (sa->sa_family == AF_INET6) {
		memcpy(&d->t[d->nt].sa, sa, sizeof(struct sockaddr_in6));
		((struct sockaddr_in6 *)&d->t[d->nt].sa)->sin6_port = htons(d->port);
	} else {
		memcpy(&d->t[d->nt].sa, sa, sizeof(struct sockaddr_in));
		((struct sockaddr_in *)&d->t[d->nt].sa)->sin_port = htons(d->port);
	}
	d->t[d->nt].name = xstrdup(name);
	d->t[d->nt].pref = pref;
	d->t[d->nt].host = NO_HOST;
	d->nt++;
}

/* does DANE apply to d's lookups: a dane policy and a validating resolver */
static bool
dest_wants_dane(const struct dest *d)
{
	return tls_policy_is_dane(d->tls_policy) && d->o->dnssec && d->o->dns;
}

/*
 * RFC 7672 §2.2 on an MX result: take each host's TLSA records into
 * d->hosts and say which hosts may be used. A host whose TLSA lookup
 * failed or was bogus is not used; under "dane-only" neither is a host
 * without usable secure records (nor any when the MX answer is insecure).
 * keep[h] is set for the hosts to use; *why says why the others were
 * dropped (for the deferral when none is left).
 */
static void
dest_apply_dane(struct dest *d, mx_result_t *r, bool *keep, buf_t *why)
{
	d->hosts = xcalloc(r->nhosts ? r->nhosts : 1, sizeof *d->hosts);
	d->nhosts = r->nhosts;
	for (size_t h = 0; h < r->nhosts; h++) {
		mx_host_t *mh = &r->hosts[h];
		struct dhost *dh = &d->hosts[h];
		keep[h] = true;
		if (mh->tlsa == MX_TLSA_FAILED) {
			log_info("outbound: %s: MX host %s not used: %s (RFC 7672 section 2.2)", d->host,
			    mh->name, mh->tlsa_why ? mh->tlsa_why : "TLSA lookup failed");
			buf_printf(why, "%s%s", why->len ? "; " : "",
			    mh->tlsa_why ? mh->tlsa_why : "TLSA lookup failed");
			dest_tlsrpt(d, h, mh->name, NULL, false, NULL, "dnssec-invalid", mh->tlsa_why);
			keep[h] = false;
			continue;
		}
		if (mh->tlsa == MX_TLSA_FOUND) {
			dh->tlsa = mh->tlsa_rr;
			dh->ntlsa = mh->ntlsa;
			dh->base = mh->tlsa_base;
			mh->tlsa_rr = NULL;
			mh->ntlsa = 0;
			mh->tlsa_base = NULL;
			buf_t notes = BUF_INIT;
			for (size_t k = 0; k < dh->ntlsa; k++) {
				const char *bad = tls_tlsa_unusable(&dh->tlsa[k]);
				if (!bad)
					dh->usable = true;
				else if (notes.len < 1000)
					buf_printf(&notes, "%u %u %u: %s; ", dh->tlsa[k].usage,
					    dh->tlsa[k].selector, dh->tlsa[k].mtype, bad);
			}
			/* RFC 7672 §2.2: records, none usable: TLS, not authenticated */
			if (notes.len)
				log_info("outbound: %s: MX host %s: TLSA records unusable: %s%s", d->host,
				    mh->name, buf_cstr(&notes), dh->usable ? "the others are used"
				    : "TLS is required, without authentication");
			buf_free(&notes);
		}
		if (d->tls_policy == TLS_POLICY_DANE_ONLY && !dh->usable) {
			const char *what = !r->mx_secure ? "the MX records are not DNSSEC-signed"
			    : !mh->secure ? "its addresses are not DNSSEC-signed"
			    : dh->ntlsa ? "no usable TLSA record" : "no TLSA records";
			log_info("outbound: %s: MX host %s not used under dane-only: %s", d->host,
			    mh->name, what);
			buf_printf(why, "%s%s: %s", why->len ? "; " : "", mh->name, what);
			dest_tlsrpt(d, h, mh->name, NULL, false, NULL, "dane-required", what);
			keep[h] = false;
		}
	}
}

/*
 * RFC 8461 §4.1, §4.2 on an MX result: each host still kept that has no
 * DANE records (DANE wins, §2) is matched against the domain's policy.
 * Under enforce a host that does not match is not used (why says so);
 * under testing it is used and the mismatch logged. sts[h] gets the mode
 * each host is delivered under.
 */
static void
dest_apply_sts(struct dest *d, mx_result_t *r, bool *keep, int *sts, buf_t *why)
{
	const mtasts_policy_t *p = &d->sts_pol;
	for (size_t h = 0; h < r->nhosts; h++) {
		if (!keep[h])
			continue;
		if (h < d->nhosts && d->hosts[h].ntlsa > 0)
			continue; /* DANE applies to this host */
		if (r->literal)
			continue;
		if (!mtasts_mx_match(p, r->hosts[h].name)) {
			dest_tlsrpt(d, NO_HOST, r->hosts[h].name, NULL, true, NULL, "validation-failure",
			    "the MX host does not match the MTA-STS policy");
			if (p->mode == MTASTS_ENFORCE) {
				log_info("outbound: %s: MX host %s not used: it does not match the MTA-STS "
				    "policy (id=%s, mode enforce)", d->host, r->hosts[h].name, d->sts_id);
				buf_printf(why, "%s%s does not match", why->len ? "; " : "", r->hosts[h].name);
				keep[h] = false;
				continue;
			}
			log_info("outbound: mta-sts testing: %s: MX host %s does not match the policy "
			    "(id=%s); used anyway (an enforce policy would not use it)", d->host,
			    r->hosts[h].name, d->sts_id);
		}
		sts[h] = p->mode == MTASTS_ENFORCE ? SMTP_STS_ENFORCE : SMTP_STS_TESTING;
	}
}

/*
 * RFC 8689 §4.2.1 (1) on an MX result, for REQUIRETLS mail to a recipient
 * domain: a host counts only when the MX answer was DNSSEC-secure or an
 * MTA-STS policy in enforce mode lists it (testing does not count).
 */
static void
dest_apply_requiretls(struct dest *d, const mx_result_t *r, bool *keep, const int *sts, buf_t *why)
{
	for (size_t h = 0; h < r->nhosts; h++) {
		if (!keep[h] || r->mx_secure || sts[h] == SMTP_STS_ENFORCE)
			continue;
		const char *what = !d->have_sts ? "no MTA-STS policy"
		    : d->sts_pol.mode == MTASTS_ENFORCE ? "its MTA-STS policy does not list it"
		    : "its MTA-STS policy is not in enforce mode";
		log_info("outbound: %s: MX host %s not used for REQUIRETLS mail: the MX records are not "
		    "DNSSEC-signed and %s (RFC 8689 section 4.2.1)", d->host, r->hosts[h].name, what);
		buf_printf(why, "%s%s: MX not DNSSEC-signed, %s", why->len ? "; " : "", r->hosts[h].name,
		    what);
		keep[h] = false;
	}
}

static void
on_mx(void *arg, mx_result_t *r)
{
	struct dest *d = arg;
	d->mxreq = NULL;
	if (r->status != MX_OK) {
		outcome_t oc;
		log_info("outbound: %s: %s (%s)", d->host,
		    r->reply && r->reply[0] ? r->reply : "451 4.4.3 DNS failure", r->detail ? r->detail : "");
		outcome_dns(&oc, r->reply, r->detail, d->host, d->is_relay);
		mx_result_free(r);
		dest_resolve_failed(d, &oc);
		dest_maybe_free(d);
		return;
	}
	bool *keep = xcalloc(r->nhosts ? r->nhosts : 1, sizeof *keep);
	int *sts = xcalloc(r->nhosts ? r->nhosts : 1, sizeof *sts);
	for (size_t h = 0; h < r->nhosts; h++)
		keep[h] = true;
	buf_t why = BUF_INIT, stswhy = BUF_INIT;
	bool dane = tls_policy_is_dane(d->tls_policy);
	if (dane)
		dest_apply_dane(d, r, keep, &why);
	if (d->have_sts)
		dest_apply_sts(d, r, keep, sts, &stswhy);
	buf_t rtwhy = BUF_INIT;
	if (d->requiretls && !d->is_relay)
		dest_apply_requiretls(d, r, keep, sts, &rtwhy);
	for (size_t h = 0; h < r->nhosts; h++) {
		if (!keep[h])
			continue;
		for (size_t a = 0; a < r->hosts[h].naddrs; a++) {
			dest_add_target(d, (const struct sockaddr *)&r->hosts[h].addrs[a],
			    r->hosts[h].name, r->hosts[h].pref);
			if (dane)
				d->t[d->nt - 1].host = h;
			d->t[d->nt - 1].sts = sts[h];
		}
	}
	xfree(sts);
	if (r->ttl > 0)
		d->expires = uv_now(d->o->loop) + (uint64_t)r->ttl * 1000u;
	mx_result_free(r);
	xfree(keep);
	if (d->nt == 0) {
		outcome_t oc;
		if (rtwhy.len && !why.len) {
			/* RFC 8689 §4.2.1: no host to which the message may go */
			char *t = xasprintf("550 5.7.10 REQUIRETLS: no mail exchanger of %s can be "
			    "validated: %s", d->host, buf_cstr(&rtwhy));
			outcome_requiretls(&oc, t);
			xfree(t);
		} else if (why.len || stswhy.len) {
			char *t = why.len ? xasprintf("451 4.7.5 no usable mail exchanger for %s under "
			    "DANE: %s%s%s", d->host, buf_cstr(&why), stswhy.len ? "; " : "", buf_cstr(&stswhy))
			    : xasprintf("451 4.7.5 no mail exchanger of %s matches its MTA-STS policy: %s",
			    d->host, buf_cstr(&stswhy));
			outcome_next_hop(&oc, t);
			xfree(t);
		} else {
			outcome_next_hop(&oc, "451 4.4.3 no address for the next hop");
		}
		buf_free(&why);
		buf_free(&stswhy);
		buf_free(&rtwhy);
		dest_forget(d);
		dest_resolve_failed(d, &oc);
		dest_maybe_free(d);
		return;
	}
	buf_free(&why);
	buf_free(&stswhy);
	buf_free(&rtwhy);
	d->rstate = R_READY;
	dest_pump(d);
	dest_maybe_free(d);
}

static void
on_gai(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct gai *g = req->data;
	outbound_t *o = g->o;
	struct dest *d = g->d;
	o->ngai--;
	if (d) {
		d->gai = NULL;
		for (struct addrinfo *ai = res; ai && status == 0; ai = ai->ai_next)
			if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) && d->nt < MX_MAX_ADDRS)
				dest_add_target(d, ai->ai_addr, d->host, 0);
		if (d->nt == 0) {
			char *t = xasprintf("451 4.4.3 cannot resolve next hop %s: %s", d->host,
			    status ? uv_strerror(status) : "no address");
			dest_unreachable(d, t);
			xfree(t);
			dest_maybe_free(d);
		} else {
			d->rstate = R_READY;
			dest_pump(d);
			dest_maybe_free(d);
		}
	}
	if (res)
		uv_freeaddrinfo(res);
	xfree(g);
	check_shutdown(o);
}

/* "IPv6:..." or a plain IP into sa; 0 or -1 */
static int
parse_ip(const char *s, struct sockaddr_storage *sa)
{
	memset(sa, 0, sizeof *sa);
	if (strncasecmp(s, "IPv6:", 5) == 0)
		return uv_ip6_addr(s + 5, 0, (struct sockaddr_in6 *)sa) == 0 ? 0 : -1;
	if (uv_ip4_addr(s, 0, (struct sockaddr_in *)sa) == 0)
		return 0;
	return uv_ip6_addr(s, 0, (struct sockaddr_in6 *)sa) == 0 ? 0 : -1;
}

static void dest_resolve(struct dest *d);

static void
on_sts(void *arg, const mtasts_policy_t *p, const char *id)
{
	struct dest *d = arg;
	d->stsreq = NULL;
	d->sts_done = true;
	mtasts_policy_clear(&d->sts_pol);
	d->have_sts = p != NULL;
	if (p)
		mtasts_policy_copy(&d->sts_pol, p);
	snprintf(d->sts_id, sizeof d->sts_id, "%s", id ? id : "");
	dest_resolve(d); /* on to the MX lookup */
}

static void
dest_resolve(struct dest *d)
{
	outbound_t *o = d->o;
	struct sockaddr_storage sa;
	d->rstate = R_RESOLVING;
	if (d->kind == HOP_UNIX) {
		struct sockaddr_un su;
		memset(&su, 0, sizeof su);
		su.sun_family = AF_UNIX;
		if (strlen(d->host) >= sizeof su.sun_path) {
			dest_unreachable(d, "451 4.3.5 LMTP socket path too long");
			return;
		}
		memcpy(su.sun_path, d->host, strlen(d->host));
		d->t = xcalloc(1, sizeof *d->t);
		memcpy(&d->t[0].sa, &su, sizeof su);
		d->t[0].name = xstrdup("localhost");
		d->nt = 1;
		d->rstate = R_READY;
		dest_pump(d);
		return;
	}
	if (parse_ip(d->host, &sa) == 0) {
		if (d->tls_policy == TLS_POLICY_DANE_ONLY) {
			/* TLSA records belong to names (RFC 7672 §2.2) */
			dest_unreachable(d, "451 4.7.5 the TLS policy is dane-only but the next hop is an "
			    "IP address, which has no TLSA records");
			return;
		}
		dest_add_target(d, (const struct sockaddr *)&sa, d->host, 0);
		d->rstate = R_READY;
		dest_pump(d);
		return;
	}
	if (tls_policy_is_dane(d->tls_policy) && !dest_wants_dane(d) &&
	    d->tls_policy == TLS_POLICY_DANE_ONLY) {
		dest_unreachable(d, "451 4.7.5 the TLS policy is dane-only but DNSSEC validation is "
		    "off (dnssec_trust_anchor)");
		return;
	}
	/* a host given by name under DANE: through the validating resolver */
	if (d->kind == HOP_MX || dest_wants_dane(d)) {
		if (!o->dns) {
			dest_unreachable(d, "451 4.3.5 no DNS resolver configured");
			return;
		}
		if (d->kind == HOP_MX && d->sts_wanted && o->sts && !d->sts_done) {
			/* RFC 8461 §5.1: the policy first (usually the cache and
			 * one TXT answer), then the MX hosts it is applied to */
			d->stsreq = mtasts_lookup(o->sts, d->host, on_sts, d);
			return;
		}
		mx_options_t mo;
		if (o->have_mx)
			mo = o->mx;
		else
			memset(&mo, 0, sizeof mo);
		mo.port = d->port;
		mo.tlsa = dest_wants_dane(d);
		mo.no_mx = d->kind != HOP_MX;
		d->mxreq = mx_resolve(o->dns, d->host, &mo, on_mx, d);
		return;
	}
	/* a bracketed host name: its addresses, no MX lookup */
	struct gai *g = xcalloc(1, sizeof *g);
	g->o = o;
	g->d = d;
	g->req.data = g;
	struct addrinfo hints;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	if (uv_getaddrinfo(o->loop, &g->req, on_gai, d->host, NULL, &hints) != 0) {
		xfree(g);
		dest_unreachable(d, "451 4.3.0 cannot start a host lookup");
		return;
	}
	d->gai = g;
	o->ngai++;
}

/*
 * Parse a next-hop spec: "[host]:port", "[host]", "host:port", "host",
 * and for LMTP "unix:/path". Bracketed or literal IP: HOP_HOST; a bare
 * name: HOP_MX for SMTP (the Postfix convention), HOP_HOST for LMTP.
 */
static int
hop_parse(const char *spec, bool lmtp, enum hop_kind *kind, char **host, uint16_t *port)
{
	*port = lmtp ? 24 : 25;
	if (lmtp && strncmp(spec, "unix:", 5) == 0) {
		if (spec[5] != '/')
			return -1;
		*kind = HOP_UNIX;
		*host = xstrdup(spec + 5);
		return 0;
	}
	const char *p = spec, *end, *rest;
	bool bracket = false;
	if (*p == '[') {
		end = strchr(p, ']');
		if (!end || end == p + 1)
			return -1;
		*host = xstrndup(p + 1, (size_t)(end - p - 1));
		rest = end + 1;
		bracket = true;
	} else {
		end = strrchr(p, ':');
		if (!end)
			end = p + strlen(p);
		if (end == p)
			return -1;
		*host = xstrndup(p, (size_t)(end - p));
		rest = end;
	}
	if (*rest == ':') {
		char *e;
		long v = strtol(rest + 1, &e, 10);
		if (e == rest + 1 || *e || v < 1 || v > 65535) {
			xfree(*host);
			return -1;
		}
		*port = (uint16_t)v;
	} else if (*rest) {
		xfree(*host);
		return -1;
	}
	struct sockaddr_storage sa;
	*kind = (bracket || lmtp || parse_ip(*host, &sa) == 0) ? HOP_HOST : HOP_MX;
	return 0;
}

/* The TLS policy for a next hop's name: its tls_policy entry, else the
 * nearest ".parent" entry, else the default. */
static enum tls_policy
policy_for(outbound_t *o, const char *host)
{
	enum tls_policy p = o->tls_policy;
	if (!o->tls_policies || !host)
		return p;
	const table_entry_t *e = table_get(o->tls_policies, host);
	for (const char *dot = strchr(host, '.'); !e && dot; dot = strchr(dot + 1, '.'))
		e = table_get(o->tls_policies, dot);
	if (e && e->nvalues > 0)
		tls_policy_parse(e->values[0], &p); /* checked at load */
	return p;
}

static void dest_set_mode(struct dest *d, unsigned mode);

/* the next hop for a domain and the message's RFC 8689 mode (its
 * ENV_REQUIRETLS / ENV_TLS_OPTIONAL flags): key, or -1 with *err */
static struct dest *
dest_get(outbound_t *o, const char *domain, unsigned mode, const char **err)
{
	char *transport = NULL;
	const char *spec = NULL;
	bool lmtp = false, relay = true, use_auth = false;
	if (o->route) {
		const char *r = o->route(o->route_arg, domain);
		if (r)
			transport = xstrdup(r);
	}
	if (transport) {
		if (strncmp(transport, "smtp:", 5) == 0) {
			spec = transport + 5;
		} else if (strncmp(transport, "lmtp:", 5) == 0) {
			spec = transport + 5;
			lmtp = true;
		} else {
			xfree(transport);
			*err = "451 4.3.5 unknown transport for this domain";
			return NULL;
		}
	} else if (o->relayhost) {
		spec = o->relayhost;
		use_auth = o->relay_auth_user != NULL;
	} else {
		relay = false;
	}
	/* REQUIRETLS and "TLS-Required: No" mail has destinations of its own */
	const char *mk = (mode & ENV_REQUIRETLS) ? "requiretls/"
	    : (mode & ENV_TLS_OPTIONAL) ? "tls-optional/" : "";
	char *key = spec ? xasprintf("%s%s:%s", mk, lmtp ? "lmtp" : "smtp", spec)
	                 : xasprintf("%smx:%s", mk, domain);
	struct dest *d;
	for (d = o->dests; d; d = d->next)
		if (!d->stale && strcmp(d->key, key) == 0)
			break;
	if (d) {
		xfree(key);
		xfree(transport);
		return d;
	}
	d = xcalloc(1, sizeof *d);
	d->o = o;
	d->key = key;
	d->lmtp = lmtp;
	d->use_auth = use_auth;
	d->is_relay = relay;
	if (spec) {
		if (hop_parse(spec, lmtp, &d->kind, &d->host, &d->port) < 0) {
			xfree(d->key);
			xfree(d);
			xfree(transport);
			*err = "451 4.3.5 bad next-hop syntax in the configuration";
			return NULL;
		}
	} else {
		d->kind = HOP_MX;
		d->host = xstrdup(domain);
		/* the MX port: 25 (RFC 5321 §5.1), another only in tests */
		d->port = o->have_mx && o->mx.port ? o->mx.port : 25;
	}
	xfree(transport);
	d->tls_policy = d->kind == HOP_UNIX ? TLS_POLICY_NONE : policy_for(o, d->host);
	if (d->tls_policy == TLS_POLICY_STS) {
		/* MTA-STS where published, else opportunistic; a policy is a
		 * recipient domain's, so only for MX delivery (RFC 8461 §4) */
		d->tls_policy = TLS_POLICY_MAY;
		d->sts_wanted = d->kind == HOP_MX;
	} else if (o->mta_sts && d->kind == HOP_MX) {
		d->sts_wanted = d->tls_policy == TLS_POLICY_MAY || d->tls_policy == TLS_POLICY_ENCRYPT ||
		    d->tls_policy == TLS_POLICY_DANE;
	}
	dest_set_mode(d, mode);
	d->next = o->dests;
	if (o->dests)
		o->dests->prev = d;
	o->dests = d;
	o->ndests++;
	return d;
}

/*
 * RFC 8689 on a new destination. REQUIRETLS (§4.2.1): to a recipient
 * domain, every validation tern can do is asked for (TLSA records when
 * the resolver validates, the MTA-STS policy when MTA-STS is on), and
 * on_mx keeps only the validated hosts; a relayhost or transport counts
 * as validated when its own tls_policy authenticates it (verify, dane,
 * dane-only). LMTP is final delivery, not relaying: unchanged.
 * "TLS-Required: No" (§4.2.2): the recipient side's DANE and MTA-STS are
 * not applied (opportunistic TLS instead); verify/encrypt/none that the
 * administrator set for the next hop still hold.
 */
static void
dest_set_mode(struct dest *d, unsigned mode)
{
	outbound_t *o = d->o;
	if (d->lmtp || d->kind == HOP_UNIX)
		return;
	if (mode & ENV_REQUIRETLS) {
		d->requiretls = true;
		if (d->is_relay) {
			if (d->tls_policy != TLS_POLICY_VERIFY && !tls_policy_is_dane(d->tls_policy))
				d->requiretls_bad = "its tls_policy does not authenticate it "
				    "(verify, dane or dane-only needed)";
			return;
		}
		if (d->tls_policy == TLS_POLICY_NONE)
			d->requiretls_bad = "its tls_policy is none";
		else if (!o->dns || (!o->dnssec && !o->sts))
			d->requiretls_bad = "neither DNSSEC validation (dnssec_trust_anchor) nor MTA-STS "
			    "(smtp_mta_sts) is on, so no mail exchanger can be validated";
		if (o->dnssec && o->dns && d->tls_policy != TLS_POLICY_DANE_ONLY)
			d->tls_policy = TLS_POLICY_DANE;
		d->sts_wanted = o->sts != NULL;
		return;
	}
	if (mode & ENV_TLS_OPTIONAL) {
		d->tls_optional = true;
		if (tls_policy_is_dane(d->tls_policy))
			d->tls_policy = TLS_POLICY_MAY;
		d->sts_wanted = false;
	}
}

/* ---- public ---- */

static void
on_sweep(uv_timer_t *t)
{
	outbound_t *o = t->data;
	uint64_t now = uv_now(o->loop);
	for (struct dest *d = o->dests; d; d = d->next)
		for (struct sess *s = d->sessions; s; s = s->next)
			if (s->idle_since && !s->quitting && now - s->idle_since >= o->idle_ms) {
				s->quitting = true;
				s->idle_since = 0;
				smtp_client_quit(s->c);
			}
}

/*
 * The tls_policy table of opt, checked: NULL in *out when there is none;
 * -1 (logged) when it cannot be read or has a bad policy word. *sts is
 * set when a policy (the default or an entry) is "sts".
 */
static int
load_policies(const outbound_options_t *opt, table_t **out, bool *sts)
{
	*out = NULL;
	*sts = opt->mta_sts || opt->tls_policy == TLS_POLICY_STS;
	if (!opt->tls_policy_file)
		return 0;
	buf_t err = BUF_INIT;
	table_t *t = table_load(opt->tls_policy_file, TABLE_MAP, &err);
	for (size_t i = 0; t && i < table_count(t); i++) {
		const table_entry_t *e = table_entry_at(t, i);
		enum tls_policy p;
		if (e->nvalues != 1 || tls_policy_parse(e->values[0], &p) < 0) {
			buf_printf(&err, "%s:%u: expected \"destination policy\" with policy none, "
			    "may, encrypt, verify, dane, dane-only or sts", e->file, e->line);
			table_free(t);
			t = NULL;
		} else if (p == TLS_POLICY_STS) {
			*sts = true;
		}
	}
	if (!t) {
		log_err("tls_policy: %s", buf_cstr(&err));
		buf_free(&err);
		return -1;
	}
	buf_free(&err);
	*out = t;
	return 0;
}

/* Everything of opt but the loop, spool, route and content opener, into
 * o (the previous values freed): at start and at every reload. The table
 * is the checked one of load_policies(). */
static void
apply_options(outbound_t *o, const outbound_options_t *opt, table_t *policies, bool sts)
{
	xfree(o->hostname);
	o->hostname = xstrdup(opt->hostname && opt->hostname[0] ? opt->hostname : "localhost");
	xfree(o->relayhost);
	o->relayhost = opt->relayhost && opt->relayhost[0] ? xstrdup(opt->relayhost) : NULL;
	if (o->relay_auth_pass)
		explicit_bzero(o->relay_auth_pass, strlen(o->relay_auth_pass));
	xfree(o->relay_auth_user);
	xfree(o->relay_auth_pass);
	o->relay_auth_user = o->relay_auth_pass = NULL;
	if (opt->relay_auth_user && opt->relay_auth_pass) {
		o->relay_auth_user = xstrdup(opt->relay_auth_user);
		o->relay_auth_pass = xstrdup(opt->relay_auth_pass);
	}
	o->dest_limit = opt->dest_concurrency ? opt->dest_concurrency : 20;
	o->total_limit = opt->total_concurrency ? opt->total_concurrency : 100;
	o->max_per_conn = opt->max_per_conn ? opt->max_per_conn : 100;
	o->dead_ms = (uint64_t)opt->dead_host_time * 1000u;
	o->mx_sessions = opt->mx_session_limit ? opt->mx_session_limit : 2;
	if (!o->dead_ms)
		lru_clear(&o->dead);
	o->timeouts = opt->timeouts;
	o->dns = opt->dns;
	o->have_mx = opt->mx != NULL;
	if (opt->mx)
		o->mx = *opt->mx; /* pointers inside stay the caller's */
	o->tls_policy = opt->tls_policy;
	o->dnssec = opt->dnssec;
	o->mta_sts = opt->mta_sts;
	table_free(o->tls_policies);
	o->tls_policies = policies;
	/* one client context for every new session (each holds a reference,
	 * so replacing it never disturbs one under way); without it "may" is
	 * clear text and "encrypt"/"verify" destinations are deferred */
	buf_t err = BUF_INIT;
	SSL_CTX_free(o->tls_ctx);
	o->tls_ctx = tls_client_ctx_new(opt->tls_ca_file, &err);
	if (!o->tls_ctx)
		log_warn("outbound TLS unavailable: %s", buf_cstr(&err));
	buf_reset(&err);
	mtasts_options_t mo;
	memset(&mo, 0, sizeof mo);
	mo.spool_dir = o->spool_dir;
	mo.ca_file = opt->tls_ca_file;
	mo.port = opt->mta_sts_port;
	if (o->sts && o->dns) {
		mtasts_set_options(o->sts, o->dns, &mo);
	} else if (sts && o->dns) {
		o->sts = mtasts_new(o->loop, o->dns, &mo, &err);
		if (!o->sts)
			log_warn("mta-sts: unavailable: %s; MTA-STS destinations get opportunistic TLS",
			    buf_cstr(&err));
	}
	buf_free(&err);
}

outbound_t *
outbound_new(uv_loop_t *loop, const outbound_options_t *opt)
{
	table_t *policies;
	bool sts;
	if (load_policies(opt, &policies, &sts) < 0)
		return NULL;
	outbound_t *o = xcalloc(1, sizeof *o);
	o->loop = loop;
	o->dead.vsize = sizeof(struct dead);
	o->spool_dir = xstrdup(opt->spool_dir ? opt->spool_dir : ".");
	o->idle_ms = opt->idle_ms ? opt->idle_ms : 2000;
	o->route = opt->route;
	o->route_arg = opt->route_arg;
	o->open_content = opt->open_content ? opt->open_content : queue_open_content;
	apply_options(o, opt, policies, sts);
	uv_timer_init(loop, &o->defer);
	uv_timer_init(loop, &o->sweep);
	o->defer.data = o->sweep.data = o;
	o->handles_open = 2;
	unsigned every = o->idle_ms / 4 ? o->idle_ms / 4 : 1;
	uv_timer_start(&o->sweep, on_sweep, every, every);
	uv_unref((uv_handle_t *)&o->sweep);
	return o;
}

static void job_route(outbound_t *o, struct job *j);

/* Stop a destination's lookups under way (MX, MTA-STS, address), at a
 * reload or at shutdown; their callbacks then never see it. */
static void
dest_stop_lookups(struct dest *d)
{
	if (d->mxreq) {
		mx_cancel(d->mxreq);
		d->mxreq = NULL;
	}
	if (d->stsreq) {
		mtasts_cancel(d->stsreq);
		d->stsreq = NULL;
	}
	if (d->gai) {
		d->gai->d = NULL;
		uv_cancel((uv_req_t *)&d->gai->req);
		d->gai = NULL;
	}
}

int
outbound_reconfigure(outbound_t *o, const outbound_options_t *opt)
{
	table_t *policies;
	bool sts;
	if (o->shutting || load_policies(opt, &policies, &sts) < 0)
		return -1;
	/* every destination built under the old settings stops taking work:
	 * its queued jobs are routed afresh below, its lookups are dropped
	 * (they may use the old resolver), its idle sessions quit, and the
	 * transactions under way finish on their sessions */
	struct job *head = NULL, **tail = &head;
	for (struct dest *d = o->dests, *nd; d; d = nd) {
		nd = d->next;
		struct job *j;
		while ((j = dest_pop(d)) != NULL) {
			*tail = j;
			tail = &j->next;
		}
		d->stale = true;
		dest_stop_lookups(d);
		for (struct sess *s = d->sessions; s; s = s->next)
			if (s->idle_since && !s->quitting && !s->job) {
				s->quitting = true;
				s->idle_since = 0;
				smtp_client_quit(s->c);
			}
		dest_maybe_free(d);
	}
	apply_options(o, opt, policies, sts);
	for (struct job *j = head, *nj; j; j = nj) {
		nj = j->next;
		j->next = NULL;
		job_route(o, j);
	}
	return 0;
}

void
outbound_submit(outbound_t *o, envelope_t *env, const size_t *idx, size_t n,
    outbound_done_cb cb, void *arg)
{
	struct job *j = xcalloc(1, sizeof *j);
	j->o = o;
	j->env = env;
	j->n = n;
	j->idx = xcalloc(n ? n : 1, sizeof *j->idx);
	if (n)
		memcpy(j->idx, idx, n * sizeof *idx);
	j->cb = cb;
	j->arg = arg;
	j->txn.env = env;
	j->txn.idx = j->idx;
	j->txn.n = n;
	j->txn.fd = -1;
	j->txn.res = xcalloc(n ? n : 1, sizeof *j->txn.res);
	j->started = clock_mono_us();
	if (o->shutting) {
		job_cancel(j);
		return;
	}
	if (n == 0) {
		job_finish(j);
		return;
	}
	job_route(o, j);
}

/* queue j at the destination of its recipients' domain */
static void
job_route(outbound_t *o, struct job *j)
{
	const envelope_t *env = j->env;
	const size_t *idx = j->idx;
	const char *addr = env->rcpt[idx[0]].addr ? env->rcpt[idx[0]].addr : "";
	const char *at = strrchr(addr, '@');
	char *domain = xstrdup(at ? at + 1 : "");
	for (char *p = domain; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	const char *err = NULL;
	unsigned mode = env->flags & (ENV_REQUIRETLS | ENV_TLS_OPTIONAL);
	struct dest *d = domain[0] ? dest_get(o, domain, mode, &err) : NULL;
	xfree(domain);
	if (!d) {
		outcome_t oc;
		outcome_bad_domain(&oc, err);
		job_fail(j, &oc);
		return;
	}
	j->transport = d->lmtp ? "lmtp" : d->is_relay ? "relay" : "smtp";
	if (d->requiretls_bad) {
		/* RFC 8689 §4.2.1: this next hop can never be validated */
		outcome_t oc;
		char *t = xasprintf("550 5.7.10 REQUIRETLS: the next hop %s cannot be validated: %s",
		    d->host, d->requiretls_bad);
		log_info("outbound: %s: requiretls=yes: %s", env->qid, t);
		outcome_requiretls(&oc, t);
		xfree(t);
		job_fail(j, &oc);
		dest_maybe_free(d);
		return;
	}
	if (d->tls_optional)
		log_info("outbound: %s: TLS-Required: No: %s gets opportunistic TLS, its DANE and "
		    "MTA-STS policies are not applied (RFC 8689 section 4.2.2)", env->qid, d->host);
	dest_push(d, j, false);
	dest_pump(d);
	dest_maybe_free(d); /* a resolution that failed at once emptied it */
}

static void
on_handle_closed(uv_handle_t *h)
{
	outbound_t *o = h->data;
	if (--o->handles_open > 0)
		return;
	void (*cb)(void *) = o->shut_cb;
	void *arg = o->shut_arg;
	xfree(o->hostname);
	xfree(o->spool_dir);
	xfree(o->relayhost);
	if (o->relay_auth_pass)
		explicit_bzero(o->relay_auth_pass, strlen(o->relay_auth_pass));
	xfree(o->relay_auth_user);
	xfree(o->relay_auth_pass);
	table_free(o->tls_policies);
	SSL_CTX_free(o->tls_ctx);
	mtasts_free(o->sts);
	lru_clear(&o->dead);
	xfree(o);
	if (cb)
		cb(arg);
}

static void
check_shutdown(outbound_t *o)
{
	if (!o->shutting || o->closing || o->nsess > 0 || o->ngai > 0 || o->dests || o->done_head)
		return;
	o->closing = true;
	uv_close((uv_handle_t *)&o->defer, on_handle_closed);
	uv_close((uv_handle_t *)&o->sweep, on_handle_closed);
}

void
outbound_shutdown(outbound_t *o, void (*cb)(void *), void *arg)
{
	if (o->shutting)
		return;
	o->shutting = true;
	o->shut_cb = cb;
	o->shut_arg = arg;
	for (struct dest *d = o->dests, *nd; d; d = nd) {
		nd = d->next;
		struct job *j;
		while ((j = dest_pop(d)) != NULL)
			job_cancel(j);
		dest_stop_lookups(d);
		for (struct sess *s = d->sessions; s; s = s->next) {
			if (s->job)
				continue; /* a transaction under way finishes */
			if (!s->quitting) {
				s->quitting = true;
				s->idle_since = 0;
				if (smtp_client_usable(s->c))
					smtp_client_quit(s->c);
				else
					smtp_client_abort(s->c, "451 4.3.2 shutting down");
			}
		}
		dest_maybe_free(d);
	}
	/* the cancelled jobs' callbacks run from the defer timer, then
	 * check_shutdown() closes up */
	uv_timer_start(&o->defer, on_defer, 0, 0);
}

void
outbound_get_stats(const outbound_t *o, outbound_stats_t *st)
{
	*st = o->st;
	st->sessions = o->nsess;
	st->destinations = o->ndests;
}
