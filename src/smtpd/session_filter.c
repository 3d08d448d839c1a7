/*
 * session_filter.c - ACCEPT: the milter stages of one SMTP session
 * (src/filter/filter.h: the order of checks).
 *
 * Connect, HELO, MAIL and RCPT each go to the milters before the SMTP
 * reply; at the end of message the milters see the content, and their
 * verdict decides: queue (with their envelope changes: sender, recipients
 * added through the router or deleted), quarantine (held), discard
 * (250 and nothing queued), or the reject they chose.
 * Guarantees: while a milter stage is in flight the session reads
 * nothing; the verdict's reply is the SMTP reply; if the client leaves
 * meanwhile, filter_free() cancels the callback. None of this runs when
 * the listener has no milters.
 * Must not: block, or keep config/tables pointers across events.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/recent.h"
#include "lib/log.h"
#include "lib/version.h"
#include "lib/xalloc.h"
#include "smtpd/session_int.h"

/* ---- the filter stage (src/filter/filter.h: the order of checks) ----
 * Each hook below hands one SMTP stage to the milters and parks the
 * session (reads paused, like a commit) until the verdict; the verdict's
 * reply is the SMTP reply. No hook runs when the listener has no milters.
 * If the client leaves meanwhile, filter_free() cancels the callback. */

static void
hook_done(session_t *s)
{
	sess_resume(s);
}

static void
filter_connect_done(void *arg, const filter_verdict_t *v)
{
	session_t *s = arg;
	(void)v; /* a verdict at connect is given at MAIL (filter.h) */
	s->state = ST_CONNECTED;
	sess_greet(s);
	hook_done(s);
}

/* the session's macros and the connect stage; the greeting waits for it */
void
sess_hook_connect(session_t *s)
{
	const config_t *c = CFG(s);
	char port[16], local[INET6_ADDRSTRLEN + 8] = "", name[96];
	const struct sockaddr *la = conn_local_addr(s->conn);
	if (la && la->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)la)->sin_addr, local,
		    sizeof local);
	else if (la && la->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)la)->sin6_addr, local,
		    sizeof local);
	snprintf(port, sizeof port, "%d", s->port);
	snprintf(name, sizeof name, "unknown [%s]", s->ip);
	filter_macro(s->filter, "j", c->hostname);
	filter_macro(s->filter, "v", "tern " TERN_VERSION);
	filter_macro(s->filter, "{daemon_name}", s->mode == LISTEN_SMTP ? "tern-smtp" : "tern-submission");
	filter_macro(s->filter, "{daemon_addr}", local[0] ? local : NULL);
	filter_macro(s->filter, "{if_name}", local[0] ? local : NULL);
	filter_macro(s->filter, "_", name);
	filter_macro(s->filter, "{client_addr}", s->ip);
	filter_macro(s->filter, "{client_name}", "unknown"); /* tern looks up no client names */
	filter_macro(s->filter, "{client_port}", port);
	const struct sockaddr *pa = conn_peer_addr(s->conn);
	sess_pause(s);
	filter_connect(s->filter, "unknown", pa ? pa->sa_family : AF_UNSPEC, s->ip, s->port,
	    filter_connect_done, s);
}

static void
filter_helo_done(void *arg, const filter_verdict_t *v)
{
	session_t *s = arg;
	if (v->action == FILTER_CONTINUE || v->action == FILTER_DISCARD) {
		sess_helo_reply(s);
	} else {
		s->state = s->fstate == ST_CONNECTED ? ST_CONNECTED : ST_READY;
		sess_reply_error(s, s->esmtp ? "EHLO" : "HELO", v->reply, false);
	}
	hook_done(s);
}

void
sess_hook_helo(session_t *s)
{
	s->fstate = s->state;
	sess_pause(s);
	filter_helo(s->filter, s->helo, filter_helo_done, s);
}

/* the words of "FROM:<a> PARAM..." / "TO:<a> PARAM...", as the milter gets them */
static size_t
split_args(const char *a, size_t n, const char **argv, char *store, size_t max)
{
	size_t argc = 0;
	memcpy(store, a, n);
	store[n] = '\0';
	for (char *p = store; *p && argc < max;) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		argv[argc++] = p;
		while (*p && *p != ' ')
			p++;
	}
	return argc;
}

static void
filter_mail_done(void *arg, const filter_verdict_t *v)
{
	session_t *s = arg;
	s->state = s->fstate;
	if (v->action == FILTER_CONTINUE || v->action == FILTER_DISCARD) {
		sess_mail_accept(s, &s->fmail, s->fsender);
		s->fdiscard = v->action == FILTER_DISCARD;
	} else {
		mail_args_free(&s->fmail);
		s->qid[0] = '\0';
		sess_reply_error(s, "MAIL", v->reply, false);
		filter_abort(s->filter);
	}
	memset(&s->fmail, 0, sizeof s->fmail);
	xfree(s->fsender);
	s->fsender = NULL;
	s->fpending = 0;
	hook_done(s);
}

void
sess_hook_mail(session_t *s, const char *a, size_t n, mail_args_t *m, const char *sender)
{
	const char *argv[32];
	char *store = xmalloc(n + 1);
	size_t argc = split_args(a, n, argv, store, 32);
	const char *at = strrchr(sender, '@');
	qid_new(s->qid); /* the queue ID is macro i from MAIL on */
	filter_macro(s->filter, "i", s->qid);
	filter_macro(s->filter, "{mail_addr}", sender);
	filter_macro(s->filter, "{mail_host}", at ? at + 1 : NULL);
	filter_macro(s->filter, "{mail_mailer}", at && !config_is_local_domain(CFG(s), at + 1) ? "smtp"
	    : "local");
	s->fmail = *m;
	s->fsender = xstrdup(sender);
	s->fpending = 1;
	s->fstate = s->state;
	sess_pause(s);
	filter_mail(s->filter, argv, argc, filter_mail_done, s);
	xfree(store);
}

static void
filter_rcpt_done(void *arg, const filter_verdict_t *v)
{
	session_t *s = arg;
	s->state = s->fstate;
	if (v->action == FILTER_CONTINUE || v->action == FILTER_DISCARD) {
		if (v->action == FILTER_DISCARD)
			s->fdiscard = true;
		sess_rcpt_accept(s, &s->frcpt, &s->fdest);
	} else {
		log_info("%s: reject cmd=RCPT reply=\"%s\" client=%s to=<%s> milter=%s", s->id,
		    v->reply, s->ip, s->frcpt.to.str, v->who ? v->who : "");
		recent_reject(s->ip, "RCPT", v->reply);
		sess_count_reject("RCPT", v->reply);
		sess_reply(s, v->reply);
		rcpt_args_free(&s->frcpt);
		dest_list_free(&s->fdest);
	}
	memset(&s->frcpt, 0, sizeof s->frcpt);
	memset(&s->fdest, 0, sizeof s->fdest);
	s->fpending = 0;
	hook_done(s);
}

void
sess_hook_rcpt(session_t *s, const char *a, size_t n, rcpt_args_t *r, dest_list_t *d)
{
	const char *argv[32];
	char *store = xmalloc(n + 1);
	size_t argc = split_args(a, n, argv, store, 32);
	const char *at = strrchr(r->to.str, '@');
	filter_macro(s->filter, "{rcpt_addr}", r->to.str);
	filter_macro(s->filter, "{rcpt_host}", at ? at + 1 : NULL);
	filter_macro(s->filter, "{rcpt_mailer}", at && !config_is_local_domain(CFG(s), at + 1)
	    ? "smtp" : "local");
	s->frcpt = *r;
	s->fdest = *d;
	s->fpending = 2;
	s->fstate = s->state;
	sess_pause(s);
	filter_rcpt(s->filter, argv, argc, filter_rcpt_done, s);
	xfree(store);
}

static void
env_del_rcpt(envelope_t *e, const char *addr)
{
	size_t k = 0;
	for (size_t i = 0; i < e->nrcpt; i++) {
		env_rcpt_t *r = &e->rcpt[i];
		if (strcasecmp(r->addr, addr) == 0 || (r->orig && strcasecmp(r->orig, addr) == 0)) {
			xfree(r->addr);
			xfree(r->orig);
			xfree(r->orcpt);
			xfree(r->reply);
			xfree(r->relay);
			continue;
		}
		e->rcpt[k++] = *r;
	}
	e->nrcpt = k;
}

/* The milters' envelope changes, in order. Added recipients go through the
 * router like RCPT TO (aliases), relaying allowed: the milter decided. */
static void
apply_env_ops(session_t *s, const filter_verdict_t *v)
{
	for (size_t i = 0; i < v->nops; i++) {
		const filter_env_op_t *o = &v->ops[i];
		if (o->op == FILTER_FROM) {
			log_info("%s: milter=%s sender changed from=<%s> to=<%s>", s->qid, o->who,
			    s->env->sender, o->addr);
			xfree(s->env->sender);
			s->env->sender = xstrdup(o->addr);
			continue;
		}
		if (o->op == FILTER_RCPT_DEL) {
			log_info("%s: milter=%s recipient deleted to=<%s>", s->qid, o->who, o->addr);
			env_del_rcpt(s->env, o->addr);
			continue;
		}
		addr_t a;
		size_t used;
		const char *err;
		dest_list_t d = {0};
		if (addr_parse(o->addr, strlen(o->addr), ADDR_NO_BRACKETS, &a, &used, &err) < 0 ||
		    used != strlen(o->addr)) {
			log_warn("%s: milter=%s added recipient refused to=<%s>: %s", s->qid, o->who,
			    o->addr, "bad address");
			continue;
		}
		if (router_expand(CFG(s), T(s)->tables, &a, true, &d, &err) != ROUTER_OK) {
			log_warn("%s: milter=%s added recipient refused to=<%s>: %s", s->qid, o->who,
			    o->addr, err);
			addr_free(&a);
			continue;
		}
		for (size_t k = 0; k < d.n; k++)
			if (!sess_env_has_rcpt(s->env, d.addrs[k]))
				envelope_add_rcpt(s->env, d.addrs[k],
				    strcasecmp(d.addrs[k], o->addr) == 0 ? NULL : o->addr, NULL, 0);
		log_info("%s: milter=%s recipient added to=<%s>", s->qid, o->who, o->addr);
		dest_list_free(&d);
		addr_free(&a);
	}
}

/* The message is accepted but not queued (DISCARD, or no recipient left). */
void
sess_eom_discard(session_t *s, const char *why, bool in_loop)
{
	char line[128];
	log_info("%s: discarded session=%s client=%s from=<%s> (%s)", s->qid, s->id, s->ip,
	    s->env->sender, why);
	snprintf(line, sizeof line, "250 2.0.0 Ok: queued as %s", s->qid);
	sess_reply(s, line);
	s->state = ST_READY;
	sess_txn_reset(s);
	if (in_loop) {
		/* called from session_process(): it goes on by itself */
		conn_read_pause(s->conn, false);
		conn_set_deadline(s->conn, CFG(s)->timeout_command * 1000u);
		return;
	}
	sess_resume(s);
}

void
sess_filter_eom_done(void *arg, const filter_verdict_t *v)
{
	session_t *s = arg;
	if (v->action == FILTER_REJECT || v->action == FILTER_TEMPFAIL) {
		log_info("%s: reject cmd=%s reply=\"%s\" client=%s milter=%s", s->qid, s->fcmd, v->reply,
		    s->ip, v->who ? v->who : "");
		recent_reject(s->ip, s->fcmd, v->reply);
		sess_count_reject(s->fcmd, v->reply);
		sess_reply(s, v->reply);
		s->state = ST_READY;
		sess_txn_reset(s);
		sess_resume(s);
		return;
	}
	if (v->action == FILTER_DISCARD || s->fdiscard) {
		sess_eom_discard(s, v->who ? v->who : "milter discard", false);
		return;
	}
	apply_env_ops(s, v);
	if (s->env->nrcpt == 0) {
		sess_eom_discard(s, "the milters deleted every recipient", false);
		return;
	}
	if (v->quarantine)
		sess_hold(s, "quarantined", v->quarantine); /* accepted and held (tern queue release) */
	/* SRS senders for the milters' changes (a changed sender or added
	 * recipient, docs/srs.md); then signed if it is to be, then the queue
	 * file, written once, with the milters' changes */
	router_srs_envelope(CFG(s), T(s)->tables, s->env, s->started_us / 1000000);
	sess_content_final(s, v->content, v->content_len);
}
