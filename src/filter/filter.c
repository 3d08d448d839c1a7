/*
 * filter.c - FILTER: runs the checks of filter.h, stage by stage, through
 * the session's milters in order, and keeps the message model (header
 * fields and body) the milters change at end of message.
 *
 * Guarantees: a stage's callback runs once, later on the loop (a zero
 * timer), never inside the call; a milter's changes are applied to the
 * model before the next milter sees the message; only changes from a
 * milter that ended the message well (accept or continue) are applied;
 * every verdict a milter gives is logged, one line, with the queue ID
 * (macro "i") or the session ID.
 * Replies: REJECT without REPLYCODE is "550 5.7.1 Command rejected",
 * TEMPFAIL "451 4.7.1 Service unavailable - try again later" (Postfix's
 * texts); a REPLYCODE without an enhanced code gets 5.7.1 or 4.7.1 on
 * each line (RFC 2034: every reply carries one).
 * Must not: block, or touch the queue.
 */
#include "filter/filter.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "filter/content.h"
#include "filter/dnsbl.h"
#include "filter/fstats.h"
#include "filter/greylist.h"
#include "filter/milter.h"
#include "filter/ratelimit.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define FILTER_MAX_MILTERS 16

enum fstage { FS_CONNECT, FS_HELO, FS_MAIL, FS_RCPT, FS_EOM };
static const char *const stage_names[] = {"connect", "helo", "mail", "rcpt", "eom"};

/* Postfix's default macro lists (milter_*_macros), plus the client's
 * address, name and port at connect, which milters commonly ask for */
static const char *const default_macros[MP_NSTAGES] = {
	[SMFIM_CONNECT] = "j _ {daemon_name} {daemon_addr} {client_addr} {client_name} "
	                  "{client_port} {if_name} v",
	[SMFIM_HELO] = "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
	[SMFIM_ENVFROM] = "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} "
	                  "{mail_mailer}",
	[SMFIM_ENVRCPT] = "{rcpt_addr} {rcpt_host} {rcpt_mailer}",
	[SMFIM_DATA] = "i",
	[SMFIM_EOM] = "i",
	[SMFIM_EOH] = "",
};

typedef struct fhdr {
	char *name;
	char *value; /* after the colon, as in the message: leading space and CRLF folds kept */
} fhdr_t;

struct filter_msg {
	fhdr_t *h;
	size_t nh;
	buf_t body;
	bool changed;
};

struct fm {
	config_milter_t spec;
	milter_t *m;
	bool ready;        /* negotiated */
	bool done_session; /* accepted at connect: out for the session */
	bool done_msg;     /* accepted this message */
	bool got_mail;     /* has a transaction open */
};

struct filter {
	uv_loop_t *loop;
	char sid[24];
	struct fm ms[FILTER_MAX_MILTERS];
	size_t n;
	char **mk, **mv;
	size_t nmac;
	/* the stage in flight */
	enum fstage stage;
	size_t idx;
	bool busy;
	bool waiting_ready; /* ms[idx] is still connecting */
	filter_cb cb;
	void *arg;
	buf_t cmdpkt;       /* the stage's command packet (without macros) */
	/* connect-stage verdict given at every MAIL */
	enum filter_action sess_action;
	buf_t sess_reply;
	char sess_who[64];
	/* the verdict being delivered */
	filter_verdict_t v;
	buf_t reply;
	char who[64];
	uv_timer_t *timer;
	/* end of message */
	const char *content;
	size_t content_len;
	filter_msg_t *msg;
	buf_t out;
	filter_env_op_t *ops;
	size_t nops;
	char *quarantine;
	content_checks_t *cc; /* header_checks, body_checks; NULL: none */
};

static void next(filter_t *f);
static void send_abort(filter_t *f);
static filter_t *filter_alloc(uv_loop_t *loop, const config_milter_t *const *milters, size_t n,
    const char *sid);
static bool run_checks(filter_t *f, filter_cb cb, void *arg);

/* ------------------------------------------------------------------ */
/* the message model                                                   */

static bool
is_ftext(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != ':';
}

filter_msg_t *
filter_msg_parse(const char *p, size_t n)
{
	filter_msg_t *m = xcalloc(1, sizeof *m);
	size_t pos = 0;
	while (pos < n) {
		const char *line = p + pos;
		const char *eol = memmem(line, n - pos, "\r\n", 2);
		size_t len = eol ? (size_t)(eol - line) : n - pos;
		if (len == 0) {
			pos += 2; /* the blank line */
			break;
		}
		if ((line[0] == ' ' || line[0] == '\t') && m->nh > 0) {
			/* a folded continuation of the field before */
			fhdr_t *h = &m->h[m->nh - 1];
			char *v = xasprintf("%s\r\n%.*s", h->value, (int)len, line);
			xfree(h->value);
			h->value = v;
			pos += len + (eol ? 2 : 0);
			continue;
		}
		size_t k = 0;
		while (k < len && is_ftext((unsigned char)line[k]))
			k++;
		size_t c = k;
		while (c < len && (line[c] == ' ' || line[c] == '\t'))
			c++; /* RFC 5322 §4.5.3: obsolete white space before the colon */
		if (k == 0 || c >= len || line[c] != ':')
			break; /* not a header field: the body starts here */
		m->h = xrealloc(m->h, (m->nh + 1) * sizeof *m->h);
		m->h[m->nh].name = xstrndup(line, k);
		m->h[m->nh].value = xstrndup(line + c + 1, len - c - 1);
		m->nh++;
		pos += len + (eol ? 2 : 0);
	}
	if (pos < n)
		buf_append(&m->body, p + pos, n - pos);
	return m;
}

void
filter_msg_free(filter_msg_t *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nh; i++) {
		xfree(m->h[i].name);
		xfree(m->h[i].value);
	}
	xfree(m->h);
	buf_free(&m->body);
	xfree(m);
}

/* a milter's value: LF line ends become CRLF; a leading space is added
 * unless the milter negotiated SMFIP_HDR_LEADSPC (then it gave its own) */
static char *
value_from_milter(const char *v, bool leadspc)
{
	buf_t b = BUF_INIT;
	if (!leadspc)
		buf_putc(&b, ' ');
	for (const char *q = v; *q; q++) {
		if (*q == '\n' && (q == v || q[-1] != '\r'))
			buf_putc(&b, '\r');
		if (*q == '\r' && q[1] != '\n')
			continue; /* a bare CR is dropped */
		buf_putc(&b, *q);
	}
	return buf_steal(&b);
}

int
filter_msg_header(filter_msg_t *m, char cmd, unsigned index, const char *name, const char *value,
    bool leadspc, const char **why)
{
	if (cmd == SMFIR_CHGHEADER) {
		/* index counts the fields of that name from 1 (smfi_chgheader) */
		unsigned seen = 0;
		size_t at = m->nh;
		for (size_t i = 0; i < m->nh; i++)
			if (strcasecmp(m->h[i].name, name) == 0 && ++seen == (index ? index : 1)) {
				at = i;
				break;
			}
		if (at == m->nh) {
			if (value[0] == '\0')
				return 0; /* deleting a field that is not there */
			cmd = SMFIR_ADDHEADER; /* changing one that is not there adds it */
		} else if (value[0] == '\0') {
			xfree(m->h[at].name);
			xfree(m->h[at].value);
			memmove(&m->h[at], &m->h[at + 1], (m->nh - at - 1) * sizeof *m->h);
			m->nh--;
			m->changed = true;
			return 0;
		} else {
			xfree(m->h[at].value);
			m->h[at].value = value_from_milter(value, leadspc);
			m->changed = true;
			return 0;
		}
	}
	if (cmd != SMFIR_ADDHEADER && cmd != SMFIR_INSHEADER) {
		*why = "not a header change";
		return -1;
	}
	size_t at = cmd == SMFIR_ADDHEADER ? m->nh : (index < m->nh ? index : m->nh);
	m->h = xrealloc(m->h, (m->nh + 1) * sizeof *m->h);
	memmove(&m->h[at + 1], &m->h[at], (m->nh - at) * sizeof *m->h);
	m->h[at].name = xstrdup(name);
	m->h[at].value = value_from_milter(value, leadspc);
	m->nh++;
	m->changed = true;
	return 0;
}

void
filter_msg_body(filter_msg_t *m, const char *p, size_t n)
{
	buf_reset(&m->body);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			buf_putc(&m->body, '\r');
		buf_putc(&m->body, p[i]);
	}
	m->changed = true;
}

void
filter_msg_render(const filter_msg_t *m, buf_t *out)
{
	for (size_t i = 0; i < m->nh; i++)
		buf_printf(out, "%s:%s\r\n", m->h[i].name, m->h[i].value);
	buf_puts(out, "\r\n");
	buf_append(out, m->body.data, m->body.len);
}

/* ------------------------------------------------------------------ */
/* the filter                                                          */

static void
timer_closed(uv_handle_t *h)
{
	xfree(h);
}

filter_t *
filter_new(uv_loop_t *loop, const config_milter_t *const *milters, size_t n, const char *sid)
{
	if (n == 0)
		return NULL;
	return filter_alloc(loop, milters, n, sid);
}

static filter_t *
filter_alloc(uv_loop_t *loop, const config_milter_t *const *milters, size_t n, const char *sid)
{
	filter_t *f = xcalloc(1, sizeof *f);
	f->loop = loop;
	snprintf(f->sid, sizeof f->sid, "%s", sid);
	f->n = n < FILTER_MAX_MILTERS ? n : FILTER_MAX_MILTERS;
	for (size_t i = 0; i < f->n; i++) {
		config_milter_t *s = &f->ms[i].spec;
		*s = *milters[i];
		s->name = xstrdup(milters[i]->name);
		s->path = milters[i]->path ? xstrdup(milters[i]->path) : NULL;
		s->host = milters[i]->host ? xstrdup(milters[i]->host) : NULL;
	}
	f->timer = xmalloc(sizeof *f->timer);
	uv_timer_init(loop, f->timer);
	f->timer->data = f;
	return f;
}

static void
msg_state_free(filter_t *f)
{
	filter_msg_free(f->msg);
	f->msg = NULL;
	buf_free(&f->out);
	for (size_t i = 0; i < f->nops; i++) {
		xfree(f->ops[i].addr);
		xfree(f->ops[i].args);
		xfree(f->ops[i].who);
	}
	xfree(f->ops);
	f->ops = NULL;
	f->nops = 0;
	xfree(f->quarantine);
	f->quarantine = NULL;
	f->content = NULL;
}

void
filter_free(filter_t *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n; i++) {
		milter_free(f->ms[i].m);
		xfree(f->ms[i].spec.name);
		xfree(f->ms[i].spec.path);
		xfree(f->ms[i].spec.host);
	}
	for (size_t i = 0; i < f->nmac; i++) {
		xfree(f->mk[i]);
		xfree(f->mv[i]);
	}
	xfree(f->mk);
	xfree(f->mv);
	msg_state_free(f);
	buf_free(&f->cmdpkt);
	buf_free(&f->reply);
	buf_free(&f->sess_reply);
	content_checks_unref(f->cc);
	f->timer->data = NULL;
	uv_close((uv_handle_t *)f->timer, timer_closed);
	xfree(f);
}

void
filter_macro(filter_t *f, const char *name, const char *value)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->nmac; i++) {
		if (strcmp(f->mk[i], name) != 0)
			continue;
		xfree(f->mv[i]);
		if (value) {
			f->mv[i] = xstrdup(value);
			return;
		}
		xfree(f->mk[i]);
		f->nmac--;
		f->mk[i] = f->mk[f->nmac];
		f->mv[i] = f->mv[f->nmac];
		return;
	}
	if (value == NULL)
		return;
	f->mk = xrealloc(f->mk, (f->nmac + 1) * sizeof *f->mk);
	f->mv = xrealloc(f->mv, (f->nmac + 1) * sizeof *f->mv);
	f->mk[f->nmac] = xstrdup(name);
	f->mv[f->nmac] = xstrdup(value);
	f->nmac++;
}

static const char *
macro_value(filter_t *f, const char *name, size_t len)
{
	/* "{client_addr}" and "client_addr" name the same macro */
	if (len > 2 && name[0] == '{' && name[len - 1] == '}') {
		name++;
		len -= 2;
	}
	for (size_t i = 0; i < f->nmac; i++) {
		const char *k = f->mk[i];
		size_t kl = strlen(k);
		if (kl > 2 && k[0] == '{') {
			k++;
			kl -= 2;
		}
		if (kl == len && memcmp(k, name, len) == 0)
			return f->mv[i];
	}
	return NULL;
}

/* the SMFIC_MACRO packet for a stage, as this milter wants it */
static void
put_macros(filter_t *f, struct fm *fm, enum mp_stage st, char cmd, buf_t *out)
{
	const char *list = milter_symlist(fm->m, st);
	if (list == NULL)
		list = default_macros[st];
	const char *kv[2 * 32];
	size_t n = 0;
	for (const char *p = list; *p && n < 32;) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t len = strcspn(p, " ,");
		if (len == 0)
			break;
		const char *v = macro_value(f, p, len);
		if (v) {
			/* the name as the milter spelled it; they live in f's store or the list */
			char *nm = xstrndup(p, len);
			kv[2 * n] = nm;
			kv[2 * n + 1] = v;
			n++;
		}
		p += len;
	}
	if (n > 0)
		mp_macro(out, cmd, kv, n);
	for (size_t i = 0; i < n; i++)
		xfree((char *)kv[2 * i]);
}

static void
step_add(milter_step_t **steps, size_t *n, buf_t *pkt, bool reply, bool body, bool eom)
{
	*steps = xrealloc(*steps, (*n + 1) * sizeof **steps);
	(*steps)[*n] = (milter_step_t){*pkt, reply, body, eom};
	(*n)++;
	memset(pkt, 0, sizeof *pkt);
}

/* The packets of the current stage for one milter; 0 when it wants none. */
static size_t
build_steps(filter_t *f, struct fm *fm, milter_step_t **steps)
{
	uint32_t p = milter_protocol(fm->m);
	size_t n = 0;
	buf_t b = BUF_INIT;
	*steps = NULL;
	switch (f->stage) {
	case FS_CONNECT:
		if (p & SMFIP_NOCONNECT)
			return 0;
		put_macros(f, fm, SMFIM_CONNECT, SMFIC_CONNECT, &b);
		buf_append(&b, f->cmdpkt.data, f->cmdpkt.len);
		step_add(steps, &n, &b, !(p & SMFIP_NR_CONN), false, false);
		return n;
	case FS_HELO:
		if (p & SMFIP_NOHELO)
			return 0;
		put_macros(f, fm, SMFIM_HELO, SMFIC_HELO, &b);
		buf_append(&b, f->cmdpkt.data, f->cmdpkt.len);
		step_add(steps, &n, &b, !(p & SMFIP_NR_HELO), false, false);
		return n;
	case FS_MAIL:
		fm->got_mail = true;
		if (p & SMFIP_NOMAIL)
			return 0;
		put_macros(f, fm, SMFIM_ENVFROM, SMFIC_MAIL, &b);
		buf_append(&b, f->cmdpkt.data, f->cmdpkt.len);
		step_add(steps, &n, &b, !(p & SMFIP_NR_MAIL), false, false);
		return n;
	case FS_RCPT:
		if (p & SMFIP_NORCPT)
			return 0;
		put_macros(f, fm, SMFIM_ENVRCPT, SMFIC_RCPT, &b);
		buf_append(&b, f->cmdpkt.data, f->cmdpkt.len);
		step_add(steps, &n, &b, !(p & SMFIP_NR_RCPT), false, false);
		return n;
	case FS_EOM:
		break;
	}
	filter_msg_t *m = f->msg;
	if (!(p & SMFIP_NODATA)) {
		put_macros(f, fm, SMFIM_DATA, SMFIC_DATA, &b);
		mp_packet(&b, SMFIC_DATA, NULL, 0);
		step_add(steps, &n, &b, !(p & SMFIP_NR_DATA), false, false);
	}
	if (!(p & SMFIP_NOHDRS)) {
		for (size_t i = 0; i < m->nh; i++) {
			/* the value as received, folds as LF (libmilter's form); the one
			 * leading space left out unless the milter wants it */
			const char *v = m->h[i].value;
			if (!(p & SMFIP_HDR_LEADSPC) && v[0] == ' ')
				v++;
			buf_t val = BUF_INIT;
			for (const char *q = v; *q; q++)
				if (!(q[0] == '\r' && q[1] == '\n'))
					buf_putc(&val, *q);
			mp_header(&b, m->h[i].name, buf_cstr(&val));
			buf_free(&val);
			step_add(steps, &n, &b, !(p & SMFIP_NR_HDR), false, false);
		}
	}
	if (!(p & SMFIP_NOEOH)) {
		put_macros(f, fm, SMFIM_EOH, SMFIC_EOH, &b);
		mp_packet(&b, SMFIC_EOH, NULL, 0);
		step_add(steps, &n, &b, !(p & SMFIP_NR_EOH), false, false);
	}
	if (!(p & SMFIP_NOBODY)) {
		for (size_t off = 0; off < m->body.len; off += MILTER_CHUNK) {
			size_t k = m->body.len - off < MILTER_CHUNK ? m->body.len - off : MILTER_CHUNK;
			mp_packet(&b, SMFIC_BODY, m->body.data + off, k);
			step_add(steps, &n, &b, !(p & SMFIP_NR_BODY), true, false);
		}
	}
	put_macros(f, fm, SMFIM_EOM, SMFIC_BODYEOB, &b);
	mp_packet(&b, SMFIC_BODYEOB, NULL, 0);
	step_add(steps, &n, &b, true, false, true);
	return n;
}

static const char *
log_id(filter_t *f)
{
	const char *q = macro_value(f, "i", 1);
	return q && q[0] ? q : f->sid;
}

static void
deliver(uv_timer_t *t)
{
	filter_t *f = t->data;
	if (f == NULL || !f->busy)
		return;
	f->busy = false;
	filter_cb cb = f->cb;
	f->cb = NULL;
	filter_verdict_t v = f->v;
	cb(f->arg, &v);
	/* filter_free() may have run inside cb: f is not touched after it */
}

/* End the stage with a verdict (delivered on the next loop turn). */
static void
conclude(filter_t *f, enum filter_action a, const char *reply, const char *who)
{
	memset(&f->v, 0, sizeof f->v);
	f->v.action = a;
	buf_reset(&f->reply);
	if (a == FILTER_REJECT || a == FILTER_TEMPFAIL) {
		const char *dflt_code = a == FILTER_REJECT ? "5.7.1" : "4.7.1";
		if (reply == NULL || reply[0] == '\0') {
			buf_puts(&f->reply, a == FILTER_REJECT ? "550 5.7.1 Command rejected"
			    : "451 4.7.1 Service unavailable - try again later");
		} else {
			/* each line "ddd[ -]x.y.z text"; an enhanced code added where missing */
			const char *p = reply;
			while (*p) {
				const char *eol = strstr(p, "\r\n");
				size_t len = eol ? (size_t)(eol - p) : strlen(p);
				const char *t = len > 4 ? p + 4 : p + len;
				bool has = len > 9 && (t[0] == '4' || t[0] == '5' || t[0] == '2') &&
				    t[1] == '.' && strspn(t + 2, "0123456789.") >= 3;
				buf_append(&f->reply, p, len < 4 ? len : 4);
				if (len <= 3)
					buf_putc(&f->reply, eol ? '-' : ' ');
				if (!has)
					buf_printf(&f->reply, "%c%s ", reply[0], dflt_code + 1);
				buf_append(&f->reply, t, (size_t)(p + len - t));
				if (!eol)
					break;
				buf_puts(&f->reply, "\r\n");
				p = eol + 2;
			}
		}
		f->v.reply = f->reply.data;
	}
	snprintf(f->who, sizeof f->who, "%s", who ? who : "");
	f->v.who = who ? f->who : NULL;
	if (f->stage == FS_EOM && a == FILTER_CONTINUE) {
		f->v.quarantine = f->quarantine;
		if (f->msg->changed) {
			buf_reset(&f->out);
			filter_msg_render(f->msg, &f->out);
			f->v.content = f->out.data;
			f->v.content_len = f->out.len;
			f->v.changed = true;
		} else {
			f->v.content = f->content;
			f->v.content_len = f->content_len;
		}
		f->v.ops = f->ops;
		f->v.nops = f->nops;
	}
	if (f->stage == FS_EOM) {
		/* the transaction is over for every milter: libmilter resets at EOM;
		 * the ones that did not get that far are told with SMFIC_ABORT */
		send_abort(f);
	}
	uv_timer_start(f->timer, deliver, 0, 0);
}

static void
send_abort(filter_t *f)
{
	buf_t b = BUF_INIT;
	mp_packet(&b, SMFIC_ABORT, NULL, 0);
	for (size_t i = 0; i < f->n; i++) {
		struct fm *fm = &f->ms[i];
		if (fm->got_mail && fm->m && fm->ready && !milter_failed(fm->m))
			milter_send(fm->m, &b);
		fm->got_mail = false;
		fm->done_msg = false;
	}
	buf_free(&b);
}

static void
log_verdict(filter_t *f, struct fm *fm, const char *what, const char *extra)
{
	log_info("%s: milter=%s stage=%s verdict=%s%s%s session=%s", log_id(f), fm->spec.name,
	    stage_names[f->stage], what, extra ? " " : "", extra ? extra : "", f->sid);
	fstats_verdict("milter", what);
}

static char *
strip_brackets(const char *a)
{
	size_t n = strlen(a);
	if (n >= 2 && a[0] == '<' && a[n - 1] == '>')
		return xstrndup(a + 1, n - 2);
	return xstrdup(a);
}

static void
add_op(filter_t *f, int op, const char *addr, const char *args, const char *who)
{
	f->ops = xrealloc(f->ops, (f->nops + 1) * sizeof *f->ops);
	filter_env_op_t *o = &f->ops[f->nops++];
	o->op = op;
	o->addr = strip_brackets(addr);
	o->args = args ? xstrdup(args) : NULL;
	o->who = xstrdup(who);
}

/* A milter ended the message well: apply its changes to the model. */
static int
apply_mods(filter_t *f, struct fm *fm, const milter_outcome_t *o)
{
	bool leadspc = milter_protocol(fm->m) & SMFIP_HDR_LEADSPC;
	bool body_started = false;
	buf_t body = BUF_INIT;
	unsigned nh = 0, nb = 0, nr = 0;
	for (size_t i = 0; i < o->nmods; i++) {
		const milter_mod_t *d = &o->mods[i];
		const char *why = NULL;
		switch (d->cmd) {
		case SMFIR_ADDHEADER:
		case SMFIR_CHGHEADER:
		case SMFIR_INSHEADER:
			if (filter_msg_header(f->msg, d->cmd, d->index, d->name, d->value, leadspc, &why) < 0)
				log_warn("%s: milter=%s header change refused: %s", log_id(f), fm->spec.name, why);
			nh++;
			break;
		case SMFIR_REPLBODY:
			body_started = true;
			buf_append(&body, d->body.data, d->body.len);
			nb++;
			break;
		case SMFIR_ADDRCPT:
		case SMFIR_ADDRCPT_PAR:
			add_op(f, FILTER_RCPT_ADD, d->name, d->value, fm->spec.name);
			nr++;
			break;
		case SMFIR_DELRCPT:
			add_op(f, FILTER_RCPT_DEL, d->name, NULL, fm->spec.name);
			nr++;
			break;
		case SMFIR_CHGFROM:
			add_op(f, FILTER_FROM, d->name, d->value, fm->spec.name);
			nr++;
			break;
		default:
			break;
		}
	}
	if (body_started)
		filter_msg_body(f->msg, body.data ? body.data : "", body.len);
	buf_free(&body);
	if (nh || nb || nr)
		log_info("%s: milter=%s changes headers=%u body=%s envelope=%u session=%s", log_id(f),
		    fm->spec.name, nh, nb ? "replaced" : "kept", nr, f->sid);
	if (o->quarantine) {
		xfree(f->quarantine);
		f->quarantine = xasprintf("%s (milter %s)", o->quarantine, fm->spec.name);
	}
	return 0;
}

/* A failed milter's default action at this stage: true when the stage goes on. */
static bool
default_action(filter_t *f, struct fm *fm, const char *why)
{
	enum milter_default d = fm->spec.default_action;
	static const char *const names[] = {"tempfail", "accept", "reject"};
	char extra[256];
	snprintf(extra, sizeof extra, "default_action=%s (%s)", names[d], why ? why : "failed");
	log_verdict(f, fm, "failed", extra);
	if (d == MILTER_ACCEPT) {
		fm->done_session = true;
		return true;
	}
	if (f->stage == FS_CONNECT || f->stage == FS_HELO) {
		/* answered at MAIL, like a milter's own verdict at connect */
		if (f->sess_action == FILTER_CONTINUE) {
			f->sess_action = d == MILTER_REJECT ? FILTER_REJECT : FILTER_TEMPFAIL;
			buf_reset(&f->sess_reply);
			snprintf(f->sess_who, sizeof f->sess_who, "%s", fm->spec.name);
		}
		return true;
	}
	conclude(f, d == MILTER_REJECT ? FILTER_REJECT : FILTER_TEMPFAIL, NULL, fm->spec.name);
	return false;
}

static void
stage_done(void *arg, milter_t *m, const milter_outcome_t *o)
{
	filter_t *f = arg;
	struct fm *fm = &f->ms[f->idx];
	if (fm->m != m)
		return;
	enum filter_action a;
	if (f->stage == FS_EOM && o->st != MS_FAILED)
		fm->got_mail = false; /* it saw the end of the message */
	switch (o->st) {
	case MS_CONTINUE:
	case MS_ACCEPT:
		if (f->stage == FS_EOM) {
			log_verdict(f, fm, o->st == MS_ACCEPT ? "accept" : "continue",
			    o->quarantine ? "quarantine" : NULL);
			apply_mods(f, fm, o);
		} else if (o->st == MS_ACCEPT) {
			log_verdict(f, fm, "accept", NULL);
			if (f->stage == FS_CONNECT)
				fm->done_session = true;
			else
				fm->done_msg = true;
		}
		f->idx++;
		next(f);
		return;
	case MS_FAILED:
		if (default_action(f, fm, o->why)) {
			f->idx++;
			next(f);
		}
		return;
	case MS_REJECT: a = FILTER_REJECT; break;
	case MS_TEMPFAIL: a = FILTER_TEMPFAIL; break;
	case MS_DISCARD: a = FILTER_DISCARD; break;
	default: a = FILTER_TEMPFAIL; break;
	}
	log_verdict(f, fm, a == FILTER_REJECT ? "reject" : a == FILTER_TEMPFAIL ? "tempfail" : "discard",
	    o->reply);
	/* a recipient refused is that recipient only: the milter stays in */
	if (f->stage == FS_CONNECT && a != FILTER_DISCARD) {
		/* given at every MAIL of the session (Postfix: all later commands) */
		f->sess_action = a;
		buf_reset(&f->sess_reply);
		if (o->reply)
			buf_puts(&f->sess_reply, o->reply);
		snprintf(f->sess_who, sizeof f->sess_who, "%s", fm->spec.name);
		conclude(f, FILTER_CONTINUE, NULL, NULL);
		return;
	}
	if (f->stage == FS_CONNECT)
		fm->done_session = true; /* discard at connect: Postfix discards each message; keep simple */
	conclude(f, a, o->reply, fm->spec.name);
}

static void
opened(void *arg, milter_t *m, const milter_outcome_t *o)
{
	filter_t *f = arg;
	for (size_t i = 0; i < f->n; i++)
		if (f->ms[i].m == m && o->st == MS_CONTINUE)
			f->ms[i].ready = true;
	if (f->busy && f->waiting_ready && f->ms[f->idx].m == m) {
		f->waiting_ready = false;
		next(f);
	}
}

/* Run the current stage from milter f->idx on. */
static void
next(filter_t *f)
{
	for (; f->idx < f->n; f->idx++) {
		struct fm *fm = &f->ms[f->idx];
		if (fm->done_session || (fm->done_msg && f->stage != FS_CONNECT && f->stage != FS_HELO))
			continue;
		if (fm->m == NULL) {
			fm->m = milter_open(f->loop, &fm->spec, f->sid, opened, f);
			if (!milter_failed(fm->m)) {
				f->waiting_ready = true;
				return;
			}
		}
		if (!fm->ready && !milter_failed(fm->m)) {
			f->waiting_ready = true;
			return;
		}
		if (milter_failed(fm->m) || !fm->ready) {
			if (default_action(f, fm, milter_why(fm->m)[0] ? milter_why(fm->m) : "not ready"))
				continue;
			return;
		}
		milter_step_t *steps;
		size_t n = build_steps(f, fm, &steps);
		if (n == 0)
			continue;
		milter_run(fm->m, steps, n, stage_done, f);
		return;
	}
	conclude(f, FILTER_CONTINUE, NULL, NULL);
}

static void
stage_start(filter_t *f, enum fstage st, filter_cb cb, void *arg)
{
	f->stage = st;
	f->idx = 0;
	f->busy = true;
	f->waiting_ready = false;
	f->cb = cb;
	f->arg = arg;
	next(f);
}

void
filter_connect(filter_t *f, const char *client_name, int family, const char *addr, int port,
    filter_cb cb, void *arg)
{
	buf_reset(&f->cmdpkt);
	char fam = family == AF_INET ? '4' : family == AF_INET6 ? '6' : family == AF_UNIX ? 'L' : 'U';
	mp_connect(&f->cmdpkt, client_name, fam, (uint16_t)port, fam == 'L' ? "" : addr);
	stage_start(f, FS_CONNECT, cb, arg);
}

void
filter_helo(filter_t *f, const char *helo, filter_cb cb, void *arg)
{
	buf_reset(&f->cmdpkt);
	mp_string(&f->cmdpkt, SMFIC_HELO, helo);
	stage_start(f, FS_HELO, cb, arg);
}

void
filter_mail(filter_t *f, const char *const *argv, size_t argc, filter_cb cb, void *arg)
{
	if (f->sess_action != FILTER_CONTINUE) {
		f->stage = FS_MAIL;
		f->busy = true;
		f->cb = cb;
		f->arg = arg;
		conclude(f, f->sess_action, f->sess_reply.len ? f->sess_reply.data : NULL, f->sess_who);
		return;
	}
	buf_reset(&f->cmdpkt);
	mp_args(&f->cmdpkt, SMFIC_MAIL, argv, argc);
	stage_start(f, FS_MAIL, cb, arg);
}

void
filter_rcpt(filter_t *f, const char *const *argv, size_t argc, filter_cb cb, void *arg)
{
	buf_reset(&f->cmdpkt);
	mp_args(&f->cmdpkt, SMFIC_RCPT, argv, argc);
	stage_start(f, FS_RCPT, cb, arg);
}

void
filter_eom(filter_t *f, const char *content, size_t n, filter_cb cb, void *arg)
{
	msg_state_free(f);
	f->content = content;
	f->content_len = n;
	f->msg = filter_msg_parse(content, n);
	if (f->cc && run_checks(f, cb, arg))
		return; /* refused or discarded by a header/body check */
	stage_start(f, FS_EOM, cb, arg);
}

void
filter_abort(filter_t *f)
{
	if (f == NULL || f->busy)
		return;
	send_abort(f);
	msg_state_free(f);
}

/* ------------------------------------------------------------------ */
/* header and body checks (content.h), before the milters at eom       */

filter_t *
filter_checks(filter_t *f, uv_loop_t *loop, const char *sid, content_checks_t *cc)
{
	if (cc == NULL)
		return f;
	if (f == NULL)
		f = filter_alloc(loop, NULL, 0, sid);
	content_checks_unref(f->cc);
	f->cc = content_checks_ref(cc);
	return f;
}

struct scan {
	filter_t *f;
	enum filter_action action; /* FILTER_REJECT or FILTER_DISCARD ends the scan */
	char *reply;
	char *who;
	bool limited;
	bool *skip;        /* body rules no body line can match (content_table_sieve) */
};

/* the subject for the log: printable ASCII, at most 100 octets */
static void
log_subject(buf_t *b, const char *p, size_t n)
{
	for (size_t i = 0; i < n && i < 100; i++)
		buf_putc(b, (unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x7f && p[i] != '"'
		    ? p[i] : '?');
	if (n > 100)
		buf_puts(b, "...");
}

/* PREPEND's "Name: value" added at position at */
static void
prepend(filter_t *f, size_t at, const char *text)
{
	const char *colon = strchr(text, ':');
	char *name = xstrndup(text, (size_t)(colon - text));
	const char *why;
	(void)filter_msg_header(f->msg, SMFIR_INSHEADER, (unsigned)at, name, colon + 1, true, &why);
	xfree(name);
}

/* One match. Returns true when the header field must be removed (IGNORE
 * on a message header). at: the field's index, or SIZE_MAX (a MIME header
 * or a body line: PREPEND adds on top, IGNORE has no effect). */
static bool
act(struct scan *sc, const char *table, const content_rule_ref_t *r, const char *p, size_t n,
    size_t at)
{
	static const char *const names[] = {"none", "reject", "discard", "hold", "warn", "ignore",
	    "prepend"};
	filter_t *f = sc->f;
	buf_t s = BUF_INIT;
	log_subject(&s, p, n);
	log_info("%s: %s %s:%u action=%s%s%s line=\"%s\" session=%s", log_id(f), table, r->file,
	    r->line, names[r->action], r->text[0] ? " text=" : "", r->text, buf_cstr(&s), f->sid);
	fstats_verdict(table, names[r->action]);
	buf_free(&s);
	bool remove = false;
	switch (r->action) {
	case CONTENT_REJECT: {
		buf_t b = BUF_INIT;
		buf_puts(&b, "550 5.7.1 ");
		const char *t = r->text[0] ? r->text : "Message content rejected";
		for (; *t; t++)
			buf_putc(&b, (unsigned char)*t < 0x80 ? *t : '?');
		sc->action = FILTER_REJECT;
		sc->reply = buf_steal(&b);
		sc->who = xasprintf("%s %s:%u", table, r->file, r->line);
		break;
	}
	case CONTENT_DISCARD:
		sc->action = FILTER_DISCARD;
		sc->who = xasprintf("%s %s:%u", table, r->file, r->line);
		break;
	case CONTENT_HOLD:
		if (f->quarantine == NULL)
			f->quarantine = xasprintf("%s (%s %s:%u)", r->text[0] ? r->text : "held", table,
			    r->file, r->line);
		break;
	case CONTENT_IGNORE:
		remove = at != SIZE_MAX;
		break;
	case CONTENT_PREPEND:
		prepend(f, at == SIZE_MAX ? 0 : at, r->text);
		break;
	default:
		break;
	}
	return remove;
}

static bool
scan_stop(void *arg)
{
	const struct scan *sc = arg;
	return sc->action != FILTER_CONTINUE;
}

static void
scan_mime_header(void *arg, const char *p, size_t n)
{
	struct scan *sc = arg;
	content_rule_ref_t r;
	if (sc->f->cc->hdr && content_table_match(sc->f->cc->hdr, p, n, &r, &sc->limited))
		act(sc, "header_checks", &r, p, n, SIZE_MAX);
}

static void
scan_body_line(void *arg, const char *p, size_t n)
{
	struct scan *sc = arg;
	content_rule_ref_t r;
	if (sc->f->cc->body && content_table_match_skip(sc->f->cc->body, sc->skip, p, n, &r,
	    &sc->limited))
		act(sc, "body_checks", &r, p, n, SIZE_MAX);
}

/* the first walk: the body lines, joined by LF, for the sieve */
static void
collect_mime_header(void *arg, const char *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
}

static void
collect_body_line(void *arg, const char *p, size_t n)
{
	buf_t *b = arg;
	buf_append(b, p, n);
	buf_putc(b, '\n');
}

static bool
collect_stop(void *arg)
{
	(void)arg;
	return false;
}

/* the first value of a header field, unfolded */
static char *
header_value(const filter_msg_t *m, const char *name)
{
	for (size_t i = 0; i < m->nh; i++)
		if (strcasecmp(m->h[i].name, name) == 0) {
			buf_t b = BUF_INIT;
			content_unfold("", m->h[i].value, &b);
			char *v = xstrdup(buf_cstr(&b) + 1);
			buf_free(&b);
			return v;
		}
	return NULL;
}

/* Runs the checks on f->msg; true when they ended the message (the
 * verdict is then on its way to cb). */
static bool
run_checks(filter_t *f, filter_cb cb, void *arg)
{
	struct scan sc = {f, FILTER_CONTINUE, NULL, NULL, false, NULL};
	filter_msg_t *m = f->msg;
	content_table_t *ht = f->cc->hdr;
	buf_t line = BUF_INIT;
	for (size_t i = 0; ht && i < m->nh && sc.action == FILTER_CONTINUE; i++) {
		buf_reset(&line);
		content_unfold(m->h[i].name, m->h[i].value, &line);
		content_rule_ref_t r;
		if (!content_table_match(ht, line.data, line.len, &r, &sc.limited))
			continue;
		size_t before = m->nh;
		if (act(&sc, "header_checks", &r, line.data, line.len, i)) {
			xfree(m->h[i].name);
			xfree(m->h[i].value);
			memmove(&m->h[i], &m->h[i + 1], (m->nh - i - 1) * sizeof *m->h);
			m->nh--;
			m->changed = true;
			i--;
		} else if (m->nh > before) {
			i++; /* past the field PREPEND put before this one */
		}
	}
	buf_free(&line);
	if (sc.action == FILTER_CONTINUE) {
		char *ct = header_value(m, "Content-Type");
		char *cte = header_value(m, "Content-Transfer-Encoding");
		const char *body = m->body.data ? m->body.data : "";
		if (f->cc->body) {
			/* the sieve: body rules that match no line are not tried on each */
			buf_t all = BUF_INIT;
			content_walk_cb_t ccb = {collect_mime_header, collect_body_line, collect_stop};
			content_walk(body, m->body.len, ct, cte, &ccb, &all);
			sc.skip = content_table_sieve(f->cc->body, all.data ? all.data : "", all.len);
			buf_free(&all);
		}
		content_walk_cb_t wcb = {scan_mime_header, scan_body_line, scan_stop};
		content_walk(body, m->body.len, ct, cte, &wcb, &sc);
		xfree(sc.skip);
		xfree(ct);
		xfree(cte);
	}
	if (sc.limited)
		log_warn("%s: header/body checks: a pattern hit its match limit and counted as no match "
		    "session=%s", log_id(f), f->sid);
	bool ended = sc.action != FILTER_CONTINUE;
	if (ended) {
		f->stage = FS_EOM;
		f->busy = true;
		f->cb = cb;
		f->arg = arg;
		conclude(f, sc.action, sc.reply, sc.who);
	}
	xfree(sc.reply);
	xfree(sc.who);
	return ended;
}

void
filter_shutdown(void)
{
	dnsbl_shutdown();
	rl_shutdown();
	grey_shutdown();
}
