/*
 * milter.c - one milter connection for one SMTP session: connect, option
 * negotiation, stages run packet by packet, modifications collected at
 * end of message (see milter.h for the contract).
 *
 * The socket is lib/conn.h's buffered non-blocking stream, TCP or unix.
 * Time limits are conn's no-input timeout: connect_timeout for the
 * connect, command_timeout while a reply is due, eom_timeout after
 * SMFIC_BODYEOB; every packet received (SMFIR_PROGRESS included)
 * restarts it, as libmilter's smfi_progress() intends. While no reply is
 * due there is no timeout, and any byte the milter sends is a reply out
 * of sequence.
 * A host given by name is looked up when the session opens the milter,
 * with uv_getaddrinfo (the thread pool: the loop never waits), and its
 * addresses are tried in the order getaddrinfo gives them.
 * Lifetime: the milter_t lives until its conn is closed (or its lookup is
 * back); milter_free() only detaches the owner (no callback after it) and
 * closes.
 */
#include "filter/milter.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "lib/conn.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define MILTER_INPUT_MAX (MILTER_MAX_DATA + 16)

enum mstate {
	M_CONNECTING,
	M_OPTNEG,   /* OPTNEG sent, its reply due */
	M_IDLE,
	M_RUNNING,  /* a stage in flight, a reply due */
	M_DEAD,
};

struct milter {
	uv_loop_t *loop;
	conn_t *conn;
	enum mstate state;
	bool failed;
	bool owner_gone;
	char name[64];
	char sid[24];
	enum milter_default dflt;
	unsigned connect_timeout, command_timeout, eom_timeout;
	uint32_t actions, protocol;
	char *symlist[MP_NSTAGES];
	milter_cb cb;
	void *arg;
	/* the stage in flight */
	milter_step_t *steps;
	size_t nsteps, at;
	milter_mod_t *mods;
	size_t nmods;
	char *quarantine;
	buf_t reply;
	char why[160];
	/* a host given by name: the lookup in flight, then the addresses left */
	uv_getaddrinfo_t *gai;
	struct addrinfo *ai, *ai_next;
	int port;
	char host[256];
};

static void milter_event(conn_t *c, enum conn_event ev, int err, void *arg);

const char *
milter_name(const milter_t *m)
{
	return m->name;
}

enum milter_default
milter_default_action(const milter_t *m)
{
	return m->dflt;
}

bool
milter_failed(const milter_t *m)
{
	return m->failed;
}

const char *
milter_why(const milter_t *m)
{
	return m->why;
}

uint32_t
milter_protocol(const milter_t *m)
{
	return m->protocol;
}

uint32_t
milter_actions(const milter_t *m)
{
	return m->actions;
}

const char *
milter_symlist(const milter_t *m, enum mp_stage st)
{
	return m->symlist[st];
}

static void
steps_free(milter_t *m)
{
	for (size_t i = 0; i < m->nsteps; i++)
		buf_free(&m->steps[i].pkt);
	xfree(m->steps);
	m->steps = NULL;
	m->nsteps = m->at = 0;
}

static void
mods_free(milter_t *m)
{
	for (size_t i = 0; i < m->nmods; i++) {
		xfree(m->mods[i].name);
		xfree(m->mods[i].value);
		buf_free(&m->mods[i].body);
	}
	xfree(m->mods);
	m->mods = NULL;
	m->nmods = 0;
	xfree(m->quarantine);
	m->quarantine = NULL;
	buf_reset(&m->reply);
}

static void
milter_destroy(milter_t *m)
{
	if (m->ai)
		uv_freeaddrinfo(m->ai);
	steps_free(m);
	mods_free(m);
	buf_free(&m->reply);
	for (int i = 0; i < MP_NSTAGES; i++)
		xfree(m->symlist[i]);
	xfree(m);
}

/* Report the stage's outcome (once); the milter goes back to idle. */
static void
finish(milter_t *m, enum milter_status st)
{
	milter_outcome_t o = {st, m->reply.len ? m->reply.data : NULL, m->failed ? m->why : NULL,
	    m->mods, m->nmods, m->quarantine};
	steps_free(m);
	if (!m->failed)
		m->state = M_IDLE;
	if (m->conn)
		conn_set_timeout(m->conn, 0);
	milter_cb cb = m->cb;
	m->cb = NULL;
	if (cb && !m->owner_gone)
		cb(m->arg, m, &o);
	if (!m->owner_gone)
		mods_free(m);
}

static void fail(milter_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The milter is unusable from now on: drop it, report MS_FAILED. */
static void
fail(milter_t *m, const char *fmt, ...)
{
	if (m->failed)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->why, sizeof m->why, fmt, ap);
	va_end(ap);
	m->failed = true;
	m->state = M_DEAD;
	log_warn("%s: milter=%s failed: %s", m->sid, m->name, m->why);
	if (m->conn)
		conn_abort(m->conn, UV_EPROTO);
	/* what it sent before is void: a failed milter changes nothing */
	for (size_t i = 0; i < m->nmods; i++) {
		xfree(m->mods[i].name);
		xfree(m->mods[i].value);
		buf_free(&m->mods[i].body);
	}
	m->nmods = 0;
	xfree(m->quarantine);
	m->quarantine = NULL;
	buf_reset(&m->reply);
	finish(m, MS_FAILED);
}

/* connect to the next address of the lookup; false when none is left */
static bool
connect_next(milter_t *m)
{
	while (m->ai_next) {
		struct addrinfo *a = m->ai_next;
		m->ai_next = a->ai_next;
		struct sockaddr_storage ss;
		if (a->ai_addrlen > sizeof ss || (a->ai_family != AF_INET && a->ai_family != AF_INET6))
			continue;
		memset(&ss, 0, sizeof ss);
		memcpy(&ss, a->ai_addr, a->ai_addrlen);
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)m->port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)m->port);
		m->conn = conn_connect(m->loop, (struct sockaddr *)&ss, NULL, m->connect_timeout,
		    MILTER_INPUT_MAX, milter_event, m);
		if (m->conn)
			return true;
	}
	return false;
}

static void
resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	milter_t *m = req->data;
	xfree(req);
	m->gai = NULL;
	m->ai = res;
	m->ai_next = res;
	if (m->owner_gone) {
		milter_destroy(m);
		return;
	}
	if (status < 0 || res == NULL) {
		fail(m, "cannot resolve %s: %s", m->host, status < 0 ? uv_strerror(status) : "no address");
		return;
	}
	if (!connect_next(m))
		fail(m, "cannot connect to %s", m->host);
}

milter_t *
milter_open(uv_loop_t *loop, const config_milter_t *spec, const char *sid, milter_cb cb, void *arg)
{
	milter_t *m = xcalloc(1, sizeof *m);
	m->loop = loop;
	snprintf(m->name, sizeof m->name, "%s", spec->name);
	snprintf(m->sid, sizeof m->sid, "%s", sid);
	m->dflt = spec->default_action;
	m->connect_timeout = spec->connect_timeout;
	m->command_timeout = spec->command_timeout;
	m->eom_timeout = spec->eom_timeout;
	m->cb = cb;
	m->arg = arg;
	m->state = M_CONNECTING;
	if (spec->path) {
		m->conn = conn_connect_unix(loop, spec->path, m->connect_timeout, MILTER_INPUT_MAX,
		    milter_event, m);
	} else {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		if (inet_pton(AF_INET, spec->host, &a4->sin_addr) == 1) {
			a4->sin_family = AF_INET;
			a4->sin_port = htons((uint16_t)spec->port);
		} else if (inet_pton(AF_INET6, spec->host, &a6->sin6_addr) == 1) {
			a6->sin6_family = AF_INET6;
			a6->sin6_port = htons((uint16_t)spec->port);
		}
		if (ss.ss_family) {
			m->conn = conn_connect(loop, (struct sockaddr *)&ss, NULL, m->connect_timeout,
			    MILTER_INPUT_MAX, milter_event, m);
		} else {
			/* a name: looked up now, connected to when the answer is back */
			snprintf(m->host, sizeof m->host, "%s", spec->host);
			m->port = spec->port;
			m->gai = xcalloc(1, sizeof *m->gai);
			m->gai->data = m;
			struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
			    .ai_flags = AI_ADDRCONFIG};
			if (uv_getaddrinfo(loop, m->gai, resolved, spec->host, NULL, &hints) == 0)
				return m;
			xfree(m->gai);
			m->gai = NULL;
		}
	}
	if (m->conn == NULL) {
		m->failed = true;
		m->state = M_DEAD;
		snprintf(m->why, sizeof m->why, "cannot connect");
		log_warn("%s: milter=%s failed: %s", m->sid, m->name, m->why);
		/* reported by the caller's first use: milter_run answers MS_FAILED */
	}
	return m;
}

/* Write steps from m->at until one expects a reply; finish when none is left. */
static void
advance(milter_t *m)
{
	while (m->at < m->nsteps) {
		milter_step_t *st = &m->steps[m->at];
		conn_write(m->conn, st->pkt.data, st->pkt.len);
		if (st->reply) {
			conn_flush(m->conn);
			conn_set_timeout(m->conn, st->eom ? m->eom_timeout : m->command_timeout);
			return;
		}
		m->at++;
	}
	conn_flush(m->conn);
	finish(m, MS_CONTINUE);
}

void
milter_run(milter_t *m, milter_step_t *steps, size_t n, milter_cb cb, void *arg)
{
	m->cb = cb;
	m->arg = arg;
	m->steps = steps;
	m->nsteps = n;
	m->at = 0;
	if (m->failed || m->state != M_IDLE || m->conn == NULL) {
		if (!m->failed) {
			m->failed = true;
			snprintf(m->why, sizeof m->why, "not ready");
		}
		finish(m, MS_FAILED);
		return;
	}
	m->state = M_RUNNING;
	advance(m);
}

void
milter_send(milter_t *m, const buf_t *pkts)
{
	if (m->failed || m->conn == NULL || m->state != M_IDLE || pkts->len == 0)
		return;
	conn_write(m->conn, pkts->data, pkts->len);
	conn_flush(m->conn);
}

void
milter_free(milter_t *m)
{
	if (m == NULL)
		return;
	m->owner_gone = true;
	m->cb = NULL;
	if (m->gai) {
		(void)uv_cancel((uv_req_t *)m->gai);
		return; /* freed when the lookup is back (resolved) */
	}
	if (m->conn) {
		if (m->state == M_IDLE && !m->failed) {
			/* SMFIC_QUIT: the milter may end its session cleanly */
			buf_t q = BUF_INIT;
			mp_packet(&q, SMFIC_QUIT, NULL, 0);
			conn_write(m->conn, q.data, q.len);
			buf_free(&q);
			conn_close(m->conn);
		} else {
			conn_abort(m->conn, UV_ECANCELED);
		}
		return; /* freed on CONN_EV_CLOSED */
	}
	milter_destroy(m);
}

static void
add_mod(milter_t *m, const mp_reply_t *r)
{
	m->mods = xrealloc(m->mods, (m->nmods + 1) * sizeof *m->mods);
	milter_mod_t *d = &m->mods[m->nmods++];
	memset(d, 0, sizeof *d);
	d->cmd = r->cmd;
	d->index = r->index;
	d->name = r->name ? xstrdup(r->name) : NULL;
	d->value = r->value ? xstrdup(r->value) : NULL;
	if (r->cmd == SMFIR_REPLBODY)
		buf_append(&d->body, r->body, r->body_len);
}

/* One packet from the milter while a stage is in flight. */
static void
on_reply(milter_t *m, char cmd, const char *data, size_t n)
{
	mp_reply_t r;
	const char *why;
	if (mp_reply_parse(cmd, data, n, &r, &why) < 0) {
		fail(m, "bad reply 0x%02x (%s) at step %zu: %s", (unsigned char)cmd,
		    mp_reply_name(cmd), m->at, why);
		return;
	}
	milter_step_t *st = &m->steps[m->at];
	uint32_t need = mp_reply_action(cmd);
	if (need) {
		if (!st->eom) {
			fail(m, "%s before the end of the message", mp_reply_name(cmd));
			return;
		}
		/* ADDRCPT_PAR may also come from a milter that negotiated ADDRCPT only? no:
		 * libmilter checks SMFIF_ADDRCPT_PAR itself; so do we */
		if (!(m->actions & need)) {
			fail(m, "%s without negotiating it (actions 0x%x)", mp_reply_name(cmd),
			    m->actions);
			return;
		}
		if (cmd == SMFIR_QUARANTINE) {
			xfree(m->quarantine);
			m->quarantine = xstrdup(r.name);
		} else if (m->nmods >= 100000) {
			fail(m, "more than 100000 modifications");
		} else {
			add_mod(m, &r);
		}
		return;
	}
	switch (cmd) {
	case SMFIR_PROGRESS:
		return; /* the read restarted the timeout */
	case SMFIR_CONTINUE:
		m->at++;
		advance(m);
		return;
	case SMFIR_SKIP:
		if (!st->body || !(m->protocol & SMFIP_SKIP)) {
			fail(m, "skip outside the body or not negotiated");
			return;
		}
		m->at++;
		while (m->at < m->nsteps && m->steps[m->at].body)
			m->at++;
		advance(m);
		return;
	case SMFIR_ACCEPT: finish(m, MS_ACCEPT); return;
	case SMFIR_REJECT: finish(m, MS_REJECT); return;
	case SMFIR_TEMPFAIL: finish(m, MS_TEMPFAIL); return;
	case SMFIR_DISCARD: finish(m, MS_DISCARD); return;
	case SMFIR_REPLYCODE:
		buf_reset(&m->reply);
		buf_puts(&m->reply, r.text);
		finish(m, r.text[0] == '4' ? MS_TEMPFAIL : MS_REJECT);
		return;
	default:
		fail(m, "reply %s out of sequence", mp_reply_name(cmd));
		return;
	}
}

static void
on_optneg(milter_t *m, char cmd, const char *data, size_t n)
{
	mp_optneg_t o;
	const char *why;
	if (cmd != SMFIR_OPTNEG) {
		fail(m, "reply %s (0x%02x) to the option negotiation", mp_reply_name(cmd),
		    (unsigned char)cmd);
		return;
	}
	if (mp_optneg_parse(data, n, &o, &why) < 0) {
		fail(m, "%s", why);
		return;
	}
	m->actions = o.actions & SMFIF_ALL;
	m->protocol = o.protocol & SMFIP_TERN;
	if (o.actions & ~(uint32_t)SMFIF_ALL || o.protocol & ~(uint32_t)SMFIP_TERN)
		log_info("%s: milter=%s asked for actions 0x%x protocol 0x%x; using 0x%x 0x%x", m->sid,
		    m->name, o.actions, o.protocol, m->actions, m->protocol);
	for (int i = 0; i < MP_NSTAGES; i++)
		if (o.symlist[i] && (m->actions & SMFIF_SETSYMLIST))
			m->symlist[i] = xstrndup(o.symlist[i], o.symlist_len[i]);
	m->state = M_IDLE;
	finish(m, MS_CONTINUE);
}

static void
on_data(milter_t *m)
{
	buf_t *in = conn_input(m->conn);
	while (!m->failed && in->len > 0) {
		size_t used;
		char cmd;
		const char *data, *why;
		size_t dlen;
		int r = mp_frame(in->data, in->len, &used, &cmd, &data, &dlen, &why);
		if (r < 0) {
			fail(m, "%s", why);
			return;
		}
		if (r == 0)
			return;
		if (m->state == M_OPTNEG)
			on_optneg(m, cmd, data, dlen);
		else if (m->state == M_RUNNING)
			on_reply(m, cmd, data, dlen);
		else
			fail(m, "%s (0x%02x) when no reply was due", mp_reply_name(cmd), (unsigned char)cmd);
		if (m->conn == NULL || m->failed || m->owner_gone)
			return;
		conn_consume(m->conn, used);
		in = conn_input(m->conn);
	}
}

static void
milter_event(conn_t *c, enum conn_event ev, int err, void *arg)
{
	milter_t *m = arg;
	switch (ev) {
	case CONN_EV_CONNECTED: {
		buf_t b = BUF_INIT;
		mp_optneg(&b, MILTER_VERSION, SMFIF_ALL, SMFIP_TERN);
		conn_write(c, b.data, b.len);
		buf_free(&b);
		m->state = M_OPTNEG;
		conn_set_timeout(c, m->command_timeout);
		break;
	}
	case CONN_EV_DATA:
		if (!m->owner_gone)
			on_data(m);
		break;
	case CONN_EV_TIMEOUT:
		if (m->state == M_OPTNEG || m->state == M_RUNNING)
			fail(m, "timeout waiting for %s", m->state == M_OPTNEG ? "the option negotiation"
			    : m->steps && m->steps[m->at].eom ? "the end-of-message reply" : "a reply");
		break;
	case CONN_EV_CLOSED:
		m->conn = NULL;
		if (m->owner_gone) {
			milter_destroy(m);
			return;
		}
		if (!m->failed) {
			/* a name with several addresses: the next one */
			if (m->state == M_CONNECTING && connect_next(m))
				break;
			if (m->state == M_CONNECTING)
				fail(m, "cannot connect: %s", err ? uv_strerror(err) : "closed");
			else
				fail(m, "connection closed%s%s", err ? ": " : "", err ? uv_strerror(err) : "");
		}
		break;
	default:
		break;
	}
}
