/*
 * session.c - ACCEPT: one SMTP server session (RFC 5321 §4).
 *
 * SMTP verbs are data: a table of commands, each with the states it is
 * allowed in and a function that does its work. Input is processed in the
 * order it arrives, so pipelined commands (RFC 2920) get their replies in
 * order, and the replies of one burst leave in one write.
 *
 * Guarantees:
 *  - Only <CRLF>.<CRLF> ends DATA (dataread.c); a bare CR or LF in a
 *    command or in the content is refused, never taken as a line end.
 *  - 250 after DATA/BDAT LAST is sent only from queue_commit()'s callback,
 *    i.e. once the message is on stable storage. While a commit is in
 *    flight the session reads nothing more; if the client goes away
 *    meanwhile, the session is kept until the commit returns (the callback
 *    never touches freed memory).
 *  - Every buffer is bounded: command lines by max_command_length, content
 *    by the size limit (excess is read and dropped), pending replies by
 *    OUT_HIGH (a client that never reads stops being read).
 *  - Every reply carries an enhanced status code (RFC 3463, RFC 2034),
 *    except the greeting and the EHLO/HELO lines, which RFC 2034 exempts.
 *  - STARTTLS (RFC 3207): after "220 2.0.0 Ready to start TLS" whatever
 *    the client sent before the handshake is discarded (conn_starttls()
 *    does it: the CVE-2011-0411 command injection) and the session starts
 *    over: no HELO, no transaction. Implicit TLS (smtps, RFC 8314) greets
 *    only once the handshake is done.
 *  - AUTH (RFC 4954) is offered and accepted only under TLS; the password
 *    check runs on the thread pool (auth.c); each failure is answered
 *    after a delay that doubles, and auth_max_failures ends the session.
 *    Credentials are never logged (nor are unknown "verbs" that are not
 *    words: they could be base64 credentials sent out of turn).
 *  - On submission and smtps, MAIL needs AUTH (RFC 6409 §4.3); an
 *    authenticated user may relay, and may only use their own addresses
 *    as the envelope sender (sender_login).
 *  - On the local socket the peer's uid (SO_PEERCRED) decides: relaying is
 *    allowed, the envelope sender is forced to user@domain unless the user
 *    is trusted, and missing Date, From and Message-ID header fields are
 *    added (RFC 5322 §3.6).
 *  - While a password check, a failure delay or a user lookup is in
 *    flight (like a commit) the session reads nothing; if the client goes
 *    away meanwhile, the session is freed only when the work returns.
 * This file keeps the life cycle, input and the commands; DATA/BDAT and
 * the content are in session_data.c, the milter stages in
 * session_filter.c, AUTH in session_auth.c (session_int.h: what they
 * share). The guarantees above hold for the four files together.
 * Must not: block, or keep config/tables pointers across events (a SIGHUP
 * may replace them).
 */
#include "smtpd/session_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/envelope.h"
#include "common/maillog.h"
#include "common/qid.h"
#include "common/recent.h"
#include "deliver/router.h"
#include "filter/dnsbl.h"
#include "filter/filter.h"
#include "filter/greylist.h"
#include "filter/ratelimit.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/version.h"
#include "lib/xalloc.h"
#include "queue/queue.h"
#include "queue/space.h"
#include "sched/sched.h"
#include "smtpd/dataread.h"
#include "smtpd/header.h"
#include "smtpd/server.h"

#define OUT_HIGH (64 * 1024)   /* stop reading while this much output is unsent */
#define INPUT_MAX (64 * 1024)  /* conn input bound */
#define HELO_MAX 255
#define AUTH_LINE_MAX 2048     /* AUTH lines may be longer than other commands (RFC 4954 §4) */

static void session_process(session_t *s);

static void session_event(conn_t *c, enum conn_event ev, int err, void *arg);
static void session_free(session_t *s);

/* the SMTP side's metrics (docs/operations.md), counted where the log line is written */
METRIC_COUNTER(m_conns, "tern_smtp_connections_total", "SMTP sessions started, by listener mode",
    "mode");
METRIC_GAUGE(m_open, "tern_smtp_connections_open", "SMTP sessions open now");
METRIC_COUNTER(m_cmds, "tern_smtp_commands_total", "SMTP commands received, by verb", "verb");
METRIC_COUNTER(m_replies, "tern_smtp_replies_total", "SMTP replies sent, by code class", "class");
METRIC_COUNTER(m_rejects, "tern_smtp_rejects_total",
    "Commands refused (as the reject log lines), by command, reply code and enhanced status code",
    "cmd", "code", "status");

/* ---- replies ---- */

void
sess_reply(session_t *s, const char *line)
{
	metric_inc(&m_replies, line[0] >= '2' && line[0] <= '5' && line[3] != '-' ?
	    (const char *[]){"2xx", "3xx", "4xx", "5xx"}[line[0] - '2'] : "other");
	conn_write(s->conn, line, strlen(line));
	conn_write(s->conn, "\r\n", 2);
}

/* An error reply: logged, and counted towards max_errors. */
void
sess_reply_error(session_t *s, const char *cmd, const char *line, bool count)
{
	sess_reply(s, line);
	log_info("%s: reject cmd=%s reply=\"%s\" client=%s", s->id, cmd, line, s->ip);
	recent_reject(s->ip, cmd, line);
	sess_count_reject(cmd, line);
	if (count)
		s->errors++;
}

/* a refused command in the metrics: "550 5.1.1 text" -> code 550, status 5.1.1 */
void
sess_count_reject(const char *cmd, const char *line)
{
	char code[4] = "", status[12] = "", known[16];
	(void)sscanf(line, "%3[0-9] %11[0-9.]", code, status);
	/* a verb the client made up is not a label of its own */
	snprintf(known, sizeof known, " %s ", cmd);
	if (!strstr(" EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP STARTTLS AUTH ", known))
		cmd = "unknown";
	metric_inc(&m_rejects, cmd, code, status);
}

void
sess_close(session_t *s)
{
	s->state = ST_CLOSING;
	conn_close(s->conn);
}

/* ---- transaction ---- */

void
sess_txn_reset(session_t *s)
{
	if (s->have_mail)
		mail_args_free(&s->mail);
	memset(&s->mail, 0, sizeof s->mail);
	s->have_mail = false;
	if (s->env)
		envelope_free(s->env);
	s->env = NULL;
	s->nrcpt_cmds = 0;
	s->rcpt_tries = 0;
	xfree(s->first_rcpt);
	s->first_rcpt = NULL;
	if (s->qm)
		queue_abort(s->qm);
	s->qm = NULL;
	s->qid[0] = '\0';
	s->bdat_mode = false;
	s->bdat_discard = false;
	s->bdat_last = false;
	s->bdat_left = 0;
	s->hdr_scan = false;
	buf_free(&s->hdr);
	buf_free(&s->fcontent);
	s->fdiscard = false;
	filter_abort(s->filter);
	mailauth_free(s->mauth); /* no mail-authentication callback after this */
	s->mauth = NULL;
	s->mfeed = false;
	s->sign = false;
	if (s->state != ST_CONNECTED && s->state != ST_CLOSING && s->state != ST_TLS)
		s->state = ST_READY;
}

/* Work on the pool has come back (busy was counted): true when the client
 * left meanwhile and the session is gone now (do not touch s). */
bool
sess_work_returned(session_t *s)
{
	s->busy--;
	if (!s->gone)
		return false;
	if (s->busy == 0) {
		server_session_gone(s->srv, s, s->ip);
		session_free(s);
	}
	return true;
}

/* Back to reading commands after a pause (commit, AUTH, lookup). */
void
sess_resume(session_t *s)
{
	conn_read_pause(s->conn, false);
	conn_set_deadline(s->conn, CFG(s)->timeout_command * 1000u);
	if (s->shutdown) {
		sess_reply(s, "421 4.3.2 Service shutting down");
		sess_close(s);
		return;
	}
	session_process(s);
	conn_flush(s->conn);
}

void
sess_pause(session_t *s)
{
	s->state = ST_WAIT;
	conn_read_pause(s->conn, true);
	conn_set_timeout(s->conn, 0);
}

static unsigned
offered_args(session_t *s)
{
	if (!s->esmtp)
		return 0;
	return ARGS_SMTPUTF8 | ARGS_8BITMIME | ARGS_DSN | ARGS_SIZE | (s->tls ? ARGS_REQUIRETLS : 0);
}

/* RFC 3848 / RFC 6531 §3.7.3 protocol word for Received: S for TLS, A
 * for AUTH */
const char *
sess_proto_word(session_t *s)
{
	static const char *const words[2][4] = {
		{"ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA"},
		{"UTF8SMTP", "UTF8SMTPS", "UTF8SMTPA", "UTF8SMTPSA"},
	};
	bool utf8 = s->have_mail && s->mail.smtputf8;
	if (!s->esmtp)
		return "SMTP";
	return words[utf8][(s->tls ? 1 : 0) + (s->auth_user ? 2 : 0)];
}

/* " user=NAME" for log lines, or "" */
const char *
sess_user_note(session_t *s, char *buf, size_t n)
{
	const char *u = s->auth_user ? s->auth_user : s->local_user;
	if (!u)
		return "";
	snprintf(buf, n, " user=%s", u);
	return buf;
}

/* ---- DNSBL (src/filter/dnsbl.h; the order: filter.h) ----
 * Checked for clients of an smtp listener outside mynetworks, once per
 * session: at connect (dnsbl_stage = connect; the greeting waits for the
 * lookup, the verdict is given at each MAIL) or at the first RCPT
 * (dnsbl_stage = rcpt; the verdict at each RCPT). A client that has
 * authenticated is never refused, and at the rcpt stage never looked up;
 * at connect no AUTH can have happened yet, so the lookup is made and its
 * verdict dropped if the client authenticates before MAIL. */

static bool
dnsbl_applies(session_t *s, const char *stage)
{
	const config_t *c = CFG(s);
	const struct sockaddr *pa = s->conn ? conn_peer_addr(s->conn) : NULL;
	return s->mode == LISTEN_SMTP && c->ndnsbl_sites > 0 && !s->relay_ok && !s->auth_user &&
	    strcmp(c->dnsbl_stage, stage) == 0 && pa &&
	    (pa->sa_family == AF_INET || pa->sa_family == AF_INET6);
}

static void
dnsbl_keep(session_t *s, const dnsbl_result_t *r)
{
	s->dnsbl = NULL;
	s->dnsbl_done = true;
	if (r->listed)
		s->dnsbl_reply = xstrdup(r->reply);
}

static void
dnsbl_connect_done(void *arg, const dnsbl_result_t *r)
{
	session_t *s = arg;
	dnsbl_keep(s, r);
	if (s->filter) {
		sess_hook_connect(s); /* greets when the milters are done */
		return;
	}
	s->state = ST_CONNECTED;
	sess_greet(s);
	sess_resume(s);
}

static void cmd_rcpt(session_t *s, const char *a, size_t n);

static void
dnsbl_rcpt_done(void *arg, const dnsbl_result_t *r)
{
	session_t *s = arg;
	dnsbl_keep(s, r);
	s->state = s->dnsbl_state;
	char *cmd = s->dnsbl_cmd;
	s->dnsbl_cmd = NULL;
	cmd_rcpt(s, cmd, s->dnsbl_cmdlen); /* again, with the verdict */
	xfree(cmd);
	if (s->state != ST_WAIT) /* unless a milter has it now */
		sess_resume(s);
}

/* The verdict for a client refused at this stage: true when refused. */
static bool
dnsbl_refuse(session_t *s, const char *cmd, const char *stage)
{
	if (!s->dnsbl_reply || s->auth_user || strcmp(CFG(s)->dnsbl_stage, stage) != 0)
		return false;
	sess_reply_error(s, cmd, s->dnsbl_reply, false);
	return true;
}

/* ---- commands ---- */

typedef void cmd_fn(session_t *s, const char *args, size_t n);

static bool
helo_name_ok(const char *p, size_t n)
{
	if (n == 0 || n > HELO_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return true;
}

static void
do_helo_common(session_t *s, const char *args, size_t n, bool esmtp)
{
	const char *verb = esmtp ? "EHLO" : "HELO";
	while (n > 0 && args[n - 1] == ' ')
		n--;
	if (!helo_name_ok(args, n)) {
		char line[64];
		snprintf(line, sizeof line, "501 5.5.4 Syntax: %s hostname", verb);
		sess_reply_error(s, verb, line, true);
		return;
	}
	/* RFC 5321 §4.1.4: EHLO/HELO resets any transaction */
	sess_txn_reset(s);
	xfree(s->helo);
	s->helo = xstrndup(args, n);
	s->esmtp = esmtp;
	if (s->filter) {
		sess_hook_helo(s);
		return;
	}
	sess_helo_reply(s);
}

void
sess_helo_reply(session_t *s)
{
	s->state = ST_READY;
	const config_t *c = CFG(s);
	metric_inc(&m_replies, "2xx");
	if (!s->esmtp) {
		conn_printf(s->conn, "250 %s\r\n", c->hostname);
		return;
	}
	conn_printf(s->conn,
	    "250-%s\r\n"
	    "250-PIPELINING\r\n"
	    "250-SIZE %llu\r\n"
	    "250-8BITMIME\r\n"
	    "250-SMTPUTF8\r\n"
	    "250-DSN\r\n"
	    "250-ENHANCEDSTATUSCODES\r\n",
	    c->hostname, (unsigned long long)c->message_size_limit);
	/* RFC 3207 §4.2: not again once TLS is on; RFC 4954 §4: AUTH only
	 * where a password may be sent, i.e. under TLS */
	if (!s->tls && !s->local && server_tls_ctx(s->srv))
		conn_printf(s->conn, "250-STARTTLS\r\n");
	sess_auth_ehlo(s);
	/* RFC 8689 §2: REQUIRETLS only where the session itself is under TLS */
	if (s->tls)
		conn_printf(s->conn, "250-REQUIRETLS\r\n");
	conn_printf(s->conn, "250 CHUNKING\r\n");
}

static void
cmd_ehlo(session_t *s, const char *a, size_t n)
{
	do_helo_common(s, a, n, true);
}

static void
cmd_helo(session_t *s, const char *a, size_t n)
{
	do_helo_common(s, a, n, false);
}

static bool
prefix_ci(const char *a, size_t n, const char *prefix)
{
	size_t k = strlen(prefix);
	return n >= k && strncasecmp(a, prefix, k) == 0;
}

/*
 * Room in the spool for a message of `need` octets (0: unknown) and the
 * configured reserve? RFC 1870 §6.1 / RFC 3463 X.3.1: say 452 4.3.1 before
 * the client sends content we could not store. Any other statvfs trouble
 * lets the transaction go on: the commit reports real write errors itself.
 */
bool
sess_spool_has_room(session_t *s, uint64_t need)
{
	const config_t *c = CFG(s);
	if (queue_space_ok(c->spool_dir, need, c->queue_min_free) == 0 || errno != ENOSPC)
		return true;
	log_warn("%s: spool %s is short of space (need %llu + reserve %llu octets): 452 4.3.1",
	    s->id, c->spool_dir, (unsigned long long)need, (unsigned long long)c->queue_min_free);
	return false;
}

static void mail_go(session_t *s, const char *a, size_t n, mail_args_t *m, const char *sender);
static void rcpt_go(session_t *s, const char *a, size_t n, rcpt_args_t *r, dest_list_t *d);

/* a rate-limit verdict from Redis, for a parked MAIL */
static void
rl_mail_done(void *arg, bool denied, const char *reply_text)
{
	session_t *s = arg;
	s->rlreq = NULL;
	s->state = s->fstate;
	mail_args_t m = s->fmail;
	char *sender = s->fsender, *args = s->rlargs;
	memset(&s->fmail, 0, sizeof s->fmail);
	s->fsender = NULL;
	s->rlargs = NULL;
	s->fpending = 0;
	if (denied) {
		mail_args_free(&m);
		sess_reply_error(s, "MAIL", reply_text, false);
	} else {
		mail_go(s, args, s->rlargs_n, &m, sender);
	}
	xfree(sender);
	xfree(args);
	if (s->state != ST_WAIT)
		sess_resume(s);
}

static void
cmd_mail(session_t *s, const char *a, size_t n)
{
	const char *err;
	if (!prefix_ci(a, n, "FROM:")) {
		sess_reply_error(s, "MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>", true);
		return;
	}
	if ((s->mode == LISTEN_SUBMISSION || s->mode == LISTEN_SMTPS) && !s->auth_user) {
		/* RFC 6409 §4.3, RFC 4954 §6 */
		sess_reply_error(s, "MAIL", "530 5.7.0 Error: authentication required", true);
		return;
	}
	if (dnsbl_refuse(s, "MAIL", "connect"))
		return;
	mail_args_t m;
	if (mail_args_parse(a + 5, n - 5, offered_args(s), &m, &err) < 0) {
		sess_reply_error(s, "MAIL", err, true);
		return;
	}
	const config_t *c = CFG(s);
	if (m.size > c->message_size_limit) {
		mail_args_free(&m);
		sess_reply_error(s, "MAIL", "552 5.3.4 Error: message size exceeds fixed limit", true);
		return;
	}
	if (!sess_spool_has_room(s, m.size)) {
		mail_args_free(&m);
		sess_reply_error(s, "MAIL", NO_ROOM_REPLY, false);
		return;
	}
	if (s->auth_user && !auth_sender_ok(server_sender_login(s->srv), s->auth_user, m.from.str)) {
		log_info("%s: reject cmd=MAIL reply=\"553 5.7.1 Error: sender address not owned by the authenticated user\" client=%s user=%s from=<%s>",
		    s->id, s->ip, s->auth_user, m.from.str);
		recent_reject(s->ip, "MAIL", "553 5.7.1 Error: sender address not owned by the authenticated user");
		sess_count_reject("MAIL", "553 5.7.1");
		sess_reply(s, "553 5.7.1 Error: sender address not owned by the authenticated user");
		s->errors++;
		mail_args_free(&m);
		return;
	}
	const char *sender = m.from.str;
	if (s->local && !s->trusted && strcmp(sender, s->local_sender) != 0) {
		/* an ordinary local user sends as themselves (docs/sendmail.md) */
		log_info("%s: sender forced user=%s from=<%s> to=<%s>", s->id, s->local_user, sender,
		    s->local_sender);
		sender = s->local_sender;
	}
	if (!s->rl_exempt) {
		/* the rate limits (filter.h: before the milters) */
		bool denied;
		char rl[400];
		if (rl_stage_start(T(s)->loop, c, RL_MAIL, s->id, s->ip, s->auth_user, sender, &denied,
		    rl, sizeof rl, rl_mail_done, s, &s->rlreq) == 0) {
			s->fmail = m;
			s->fsender = xstrdup(sender);
			s->fpending = 1;
			s->rlargs = xstrndup(a + 5, n - 5);
			s->rlargs_n = n - 5;
			s->fstate = s->state;
			sess_pause(s);
			return;
		}
		if (denied) {
			mail_args_free(&m);
			sess_reply_error(s, "MAIL", rl, false);
			return;
		}
	}
	mail_go(s, a + 5, n - 5, &m, sender);
}

/* MAIL passed smtpd's checks and the rate limits: the milters, or accept */
static void
mail_go(session_t *s, const char *a, size_t n, mail_args_t *m, const char *sender)
{
	if (s->filter) {
		sess_hook_mail(s, a, n, m, sender);
		return;
	}
	sess_mail_accept(s, m, sender);
}

/* MAIL passed every check: the transaction starts. Takes *m. */
void
sess_mail_accept(session_t *s, mail_args_t *mp, const char *sender)
{
	mail_args_t m = *mp;
	s->mail = m;
	s->have_mail = true;
	s->env = envelope_new();
	s->env->sender = xstrdup(sender);
	s->env->envid = m.envid ? xstrdup(m.envid) : NULL;
	s->env->ret = m.ret;
	s->env->body = m.body;
	s->env->smtputf8 = m.smtputf8;
	if (m.requiretls)
		s->env->flags |= ENV_REQUIRETLS; /* RFC 8689 §4.1: tagged, kept in the queue file */
	s->env->client_addr = xstrdup(s->ip);
	s->env->client_helo = s->helo ? xstrdup(s->helo) : NULL;
	s->state = ST_MAIL;
	sess_mailauth_begin(s); /* SPF starts now, in the background */
	sess_reply(s, "250 2.1.0 Ok");
}

bool
sess_env_has_rcpt(const envelope_t *e, const char *addr)
{
	for (size_t i = 0; i < e->nrcpt; i++)
		if (strcasecmp(e->rcpt[i].addr, addr) == 0)
			return true;
	return false;
}

static void
rcpt_refuse(session_t *s, rcpt_args_t *r, dest_list_t *d, const char *line)
{
	log_info("%s: reject cmd=RCPT reply=\"%s\" client=%s to=<%s>", s->id, line, s->ip, r->to.str);
	recent_reject(s->ip, "RCPT", line);
	sess_count_reject("RCPT", line);
	sess_reply(s, line);
	rcpt_args_free(r);
	dest_list_free(d);
}

/* a rate-limit verdict from Redis, for a parked RCPT */
static void
rl_rcpt_done(void *arg, bool denied, const char *reply_text)
{
	session_t *s = arg;
	s->rlreq = NULL;
	s->state = s->fstate;
	rcpt_args_t r = s->frcpt;
	dest_list_t d = s->fdest;
	char *args = s->rlargs;
	memset(&s->frcpt, 0, sizeof s->frcpt);
	memset(&s->fdest, 0, sizeof s->fdest);
	s->rlargs = NULL;
	s->fpending = 0;
	if (denied)
		rcpt_refuse(s, &r, &d, reply_text);
	else
		rcpt_go(s, args, s->rlargs_n, &r, &d);
	xfree(args);
	if (s->state != ST_WAIT)
		sess_resume(s);
}

static void
cmd_rcpt(session_t *s, const char *a, size_t n)
{
	const char *err;
	const config_t *c = CFG(s);
	if (!prefix_ci(a, n, "TO:")) {
		sess_reply_error(s, "RCPT", "501 5.5.4 Syntax: RCPT TO:<address>", true);
		return;
	}
	if (s->nrcpt_cmds >= c->max_recipients) {
		/* RFC 5321 §4.5.3.1.10: 452 for too many recipients; not counted
		 * as a client error (a big list is legitimate) */
		sess_reply_error(s, "RCPT", "452 4.5.3 Error: too many recipients", false);
		return;
	}
	if (!s->dnsbl_done && dnsbl_applies(s, "rcpt")) {
		/* looked up once, at the first RCPT; the command runs again after */
		s->dnsbl_cmd = xstrndup(a, n);
		s->dnsbl_cmdlen = n;
		s->dnsbl_state = s->state;
		sess_pause(s);
		s->dnsbl = dnsbl_check(T(s)->loop, c, conn_peer_addr(s->conn), s->id, dnsbl_rcpt_done, s);
		return;
	}
	if (dnsbl_refuse(s, "RCPT", "rcpt"))
		return;
	s->rcpt_tries++;
	rcpt_args_t r;
	if (rcpt_args_parse(a + 3, n - 3, offered_args(s), s->mail.smtputf8, &r, &err) < 0) {
		sess_reply_error(s, "RCPT", err, true);
		return;
	}
	dest_list_t d = {0};
	enum router_status st = router_expand(c, T(s)->tables, &r.to, s->relay_ok, &d, &err);
	if (st != ROUTER_OK) {
		char line[600];
		/* name the address in the log line, not in the static reply */
		log_info("%s: reject cmd=RCPT reply=\"%s\" client=%s to=<%s>", s->id, err, s->ip, r.to.str);
		recent_reject(s->ip, "RCPT", err);
		sess_count_reject("RCPT", err);
		snprintf(line, sizeof line, "%s", err);
		sess_reply(s, line);
		s->errors++;
		rcpt_args_free(&r);
		return;
	}
	if (!s->rl_exempt) {
		/* the rate limits (filter.h: after the router, before greylisting and the milters) */
		bool denied;
		char rl[400];
		if (rl_stage_start(T(s)->loop, c, RL_RCPT, s->id, s->ip, s->auth_user, NULL, &denied,
		    rl, sizeof rl, rl_rcpt_done, s, &s->rlreq) == 0) {
			s->frcpt = r;
			s->fdest = d;
			s->fpending = 2;
			s->rlargs = xstrndup(a + 3, n - 3);
			s->rlargs_n = n - 3;
			s->fstate = s->state;
			sess_pause(s);
			return;
		}
		if (denied) {
			rcpt_refuse(s, &r, &d, rl);
			return;
		}
	}
	rcpt_go(s, a + 3, n - 3, &r, &d);
}

/* RCPT passed the router and the rate limits: greylisting, then the
 * milters, or accept */
static void
rcpt_go(session_t *s, const char *a, size_t n, rcpt_args_t *r, dest_list_t *d)
{
	/* greylisting (filter.h); mynetworks, authenticated and local clients
	 * (relay_ok) are exempt */
	const config_t *c = CFG(s);
	char gl[200];
	if (c->greylist && !s->relay_ok &&
	    grey_check(T(s)->loop, c, s->id, s->ip, s->env->sender, r->to.str, gl, sizeof gl)) {
		rcpt_refuse(s, r, d, gl);
		return;
	}
	if (s->filter) {
		sess_hook_rcpt(s, a, n, r, d);
		return;
	}
	sess_rcpt_accept(s, r, d);
}

/* RCPT passed every check: its addresses join the envelope. Takes *rp, *dp. */
void
sess_rcpt_accept(session_t *s, rcpt_args_t *rp, dest_list_t *dp)
{
	rcpt_args_t r = *rp;
	dest_list_t d = *dp;
	for (size_t i = 0; i < d.n; i++) {
		if (sess_env_has_rcpt(s->env, d.addrs[i]))
			continue;
		const char *orig = strcasecmp(d.addrs[i], r.to.str) == 0 ? NULL : r.to.str;
		envelope_add_rcpt(s->env, d.addrs[i], orig, r.orcpt, r.notify);
	}
	dest_list_free(&d);
	if (s->nrcpt_cmds == 0)
		s->first_rcpt = xstrdup(r.to.str);
	s->nrcpt_cmds++;
	rcpt_args_free(&r);
	s->state = ST_RCPT;
	sess_reply(s, "250 2.1.5 Ok");
}
static void
cmd_rset(session_t *s, const char *a, size_t n)
{
	sess_txn_reset(s);
	sess_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(session_t *s, const char *a, size_t n)
{
	sess_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(session_t *s, const char *a, size_t n)
{
	sess_reply(s, "221 2.0.0 Bye");
	sess_close(s);
}

static void
cmd_vrfy(session_t *s, const char *a, size_t n)
{
	/* RFC 5321 §3.5.3: 252 discloses nothing about the mailbox */
	sess_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_expn(session_t *s, const char *a, size_t n)
{
	sess_reply_error(s, "EXPN", "502 5.5.1 Error: EXPN is not available", true);
}

static void
cmd_help(session_t *s, const char *a, size_t n)
{
	sess_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
}

/* RFC 3207 */
static void
cmd_starttls(session_t *s, const char *a, size_t n)
{
	SSL_CTX *ctx = server_tls_ctx(s->srv);
	if (s->tls) {
		sess_reply_error(s, "STARTTLS", "503 5.5.1 Error: TLS already active", true);
		return;
	}
	if (!ctx || s->local) {
		sess_reply_error(s, "STARTTLS", "502 5.5.1 Error: STARTTLS not available", true);
		return;
	}
	if (n > 0) {
		sess_reply_error(s, "STARTTLS", "501 5.5.4 Syntax: STARTTLS (no parameters)", true);
		return;
	}
	sess_reply(s, "220 2.0.0 Ready to start TLS");
	/* §4.2: forget everything learned before TLS */
	sess_txn_reset(s);
	xfree(s->helo);
	s->helo = NULL;
	s->esmtp = false;
	s->state = ST_TLS;
	if (conn_starttls(s->conn, ctx, true, NULL) < 0) {
		log_err("%s: cannot start TLS: %s", s->id, conn_tls_error(s->conn));
		s->state = ST_CLOSING;
		conn_abort(s->conn, UV_EPROTO);
	}
}

static const struct command {
	const char *name;
	unsigned states; /* where it is allowed; elsewhere 503 */
	const char *bad_sequence;
	cmd_fn *fn;
} commands[] = {
	{"EHLO", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_ehlo},
	{"HELO", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_helo},
	{"MAIL", IN(ST_READY), NULL, cmd_mail},
	{"RCPT", IN(ST_MAIL) | IN(ST_RCPT), "503 5.5.1 Error: need MAIL command", cmd_rcpt},
	{"DATA", IN(ST_RCPT), NULL, sess_cmd_data},
	{"BDAT", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, sess_cmd_bdat},
	{"RSET", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_rset},
	{"NOOP", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_noop},
	{"QUIT", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_quit},
	{"VRFY", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_vrfy},
	{"EXPN", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_expn},
	{"HELP", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_help},
	{"STARTTLS", IN(ST_READY), NULL, cmd_starttls},
	/* RFC 4954 §4: not during a transaction */
	{"AUTH", IN(ST_READY), NULL, sess_cmd_auth},
	{NULL, 0, NULL, NULL},
};

static const char *
bad_sequence_text(session_t *s, const struct command *c)
{
	if (c->bad_sequence)
		return c->bad_sequence;
	if (s->state == ST_CONNECTED)
		return "503 5.5.1 Error: send HELO/EHLO first";
	if (strcmp(c->name, "MAIL") == 0)
		return "503 5.5.1 Error: nested MAIL command";
	if (strcmp(c->name, "STARTTLS") == 0 || strcmp(c->name, "AUTH") == 0)
		return "503 5.5.1 Error: MAIL transaction in progress";
	if (strcmp(c->name, "DATA") == 0)
		return s->state == ST_MAIL && s->rcpt_tries > 0 ? "554 5.5.1 Error: no valid recipients"
		                                              : "503 5.5.1 Error: need RCPT command";
	return "503 5.5.1 Error: bad sequence of commands";
}

static void
dispatch(session_t *s, const char *line, size_t n)
{
	size_t vl = 0;
	while (vl < n && line[vl] != ' ')
		vl++;
	const char *args = line + vl;
	size_t an = n - vl;
	if (an > 0) {
		args++;
		an--;
	}
	s->ncommands++;
	for (const struct command *c = commands; c->name; c++) {
		if (vl != strlen(c->name) || strncasecmp(line, c->name, vl) != 0)
			continue;
		metric_inc(&m_cmds, c->name);
		if (strcmp(c->name, "BDAT") == 0) {
			/* parsed even out of sequence: its chunk must be read */
			sess_cmd_bdat(s, args, an);
			return;
		}
		if (!(c->states & IN(s->state))) {
			sess_reply_error(s, c->name, bad_sequence_text(s, c), true);
			return;
		}
		c->fn(s, args, an);
		return;
	}
	/* only a word is logged as the verb: anything else might be a
	 * base64 credential sent out of turn */
	char verb[16] = "-";
	bool word = vl > 0 && vl <= 12;
	for (size_t i = 0; i < vl && word; i++)
		word = (line[i] >= 'A' && line[i] <= 'Z') || (line[i] >= 'a' && line[i] <= 'z');
	if (word)
		snprintf(verb, sizeof verb, "%.*s", (int)vl, line);
	metric_inc(&m_cmds, "unknown");
	sess_reply_error(s, verb, "500 5.5.2 Error: command not recognized", true);
}

/* ---- input ---- */

static bool
too_many_errors(session_t *s)
{
	if (s->errors < CFG(s)->max_errors)
		return false;
	sess_reply(s, "421 4.7.0 Error: too many errors; closing connection");
	log_info("%s: too many errors client=%s errors=%u", s->id, s->ip, s->errors);
	sess_close(s);
	return true;
}

/* Handle one command line (without CRLF). Returns false to stop processing. */
static bool
command_line(session_t *s, const char *line, size_t n)
{
	/* a CR inside the line that is not part of the final CRLF */
	if (memchr(line, '\n', n) || memchr(line, '\r', n) || memchr(line, '\0', n)) {
		if (s->state == ST_AUTH)
			sess_auth_end(s);
		sess_reply_error(s, "-", "500 5.5.2 Error: bare LF, bare CR or NUL in command line; lines must end with CRLF", true);
		return !too_many_errors(s);
	}
	if (s->state == ST_AUTH)
		sess_auth_response(s, line, n);
	else
		dispatch(s, line, n);
	if (s->state == ST_CLOSING)
		return false;
	return !too_many_errors(s);
}

static void
session_process(session_t *s)
{
	const config_t *c = CFG(s);
	buf_t *in = conn_input(s->conn);

	while ((in->len > 0 || (s->state == ST_BDAT && s->bdat_left == 0)) && s->state != ST_CLOSING &&
	    s->state != ST_COMMIT && s->state != ST_WAIT && s->state != ST_TLS && !s->gone) {
		size_t maxline = c->max_command_length;
		if (maxline < AUTH_LINE_MAX &&
		    (s->state == ST_AUTH || (in->len >= 5 && strncasecmp(in->data, "AUTH ", 5) == 0)))
			maxline = AUTH_LINE_MAX;
		if (conn_pending_output(s->conn) > OUT_HIGH) {
			/* the client does not read its replies: stop reading it */
			conn_read_pause(s->conn, true);
			return;
		}
		if (s->state == ST_DATA) {
			bool done;
			size_t used = dataread_feed(&s->dr, in->data, in->len, sess_content_out, s, &done);
			conn_consume(s->conn, used);
			if (!done)
				return;
			conn_set_deadline(s->conn, c->timeout_command * 1000u);
			sess_content_end(s, "DATA");
			continue;
		}
		if (s->state == ST_BDAT) {
			size_t k = in->len < s->bdat_left ? in->len : (size_t)s->bdat_left;
			bool done;
			if (!s->bdat_discard && k > 0)
				dataread_feed(&s->dr, in->data, k, sess_content_out, s, &done);
			conn_consume(s->conn, k);
			s->bdat_left -= k;
			if (s->bdat_left > 0)
				return;
			sess_bdat_chunk_done(s);
			continue;
		}
		/* command mode: a line ends only with CRLF (RFC 5321 §2.3.8); a
		 * bare LF or CR inside it is part of the line, and refused with it */
		char *eol = memmem(in->data, in->len, "\r\n", 2);
		if (s->skip_line) {
			if (!eol) {
				/* keep a final CR: it may be the first half of CRLF */
				size_t drop = in->len - (in->data[in->len - 1] == '\r');
				conn_consume(s->conn, drop);
				return;
			}
			conn_consume(s->conn, (size_t)(eol - in->data) + 2);
			s->skip_line = false;
			continue;
		}
		if (!eol) {
			if (in->len >= maxline) {
				sess_reply_error(s, "-", "500 5.5.2 Error: line too long", true);
				s->skip_line = true;
				size_t drop = in->len - (in->data[in->len - 1] == '\r');
				conn_consume(s->conn, drop);
				if (too_many_errors(s))
					return;
			}
			return; /* wait for more */
		}
		size_t linelen = (size_t)(eol - in->data) + 2;
		if (linelen > maxline) {
			conn_consume(s->conn, linelen);
			sess_reply_error(s, "-", "500 5.5.2 Error: line too long", true);
			if (too_many_errors(s))
				return;
			continue;
		}
		char small[1024];
		size_t n = linelen - 2;
		char *line = n < sizeof small ? small : xmalloc(n + 1);
		memcpy(line, in->data, n);
		line[n] = '\0';
		conn_consume(s->conn, linelen);
		bool more = command_line(s, line, n);
		explicit_bzero(line, n); /* it may have been a SASL response */
		if (line != small)
			xfree(line);
		if (!more)
			return;
		/* RFC 5321 §4.5.3.2.7: the next command is due within the
		 * timeout, counted from now: a deadline, which a client that
		 * trickles a byte at a time cannot stretch */
		if (s->state <= ST_RCPT || s->state == ST_AUTH)
			conn_set_deadline(s->conn, c->timeout_command * 1000u);
	}
}

static void
session_free(session_t *s)
{
	rl_stage_cancel(s->rlreq); /* no rate-limit callback after this */
	s->rlreq = NULL;
	xfree(s->rlargs);
	filter_free(s->filter); /* no filter callback after this */
	s->filter = NULL;
	dnsbl_cancel(s->dnsbl); /* nor a DNSBL one */
	s->dnsbl = NULL;
	xfree(s->dnsbl_reply);
	xfree(s->dnsbl_cmd);
	if (s->fpending == 1) {
		mail_args_free(&s->fmail);
		xfree(s->fsender);
	} else if (s->fpending == 2) {
		rcpt_args_free(&s->frcpt);
		dest_list_free(&s->fdest);
	}
	sess_txn_reset(s);
	sess_auth_timer_stop(s);
	xfree(s->helo);
	xfree(s->auth_user);
	xfree(s->auth_pending);
	xfree(s->local_user);
	xfree(s->local_sender);
	xfree(s);
}

/* ---- the local socket: who is the peer? ---- */

struct pwlookup {
	uv_work_t w;
	session_t *s;
	uid_t uid;
	bool found;
	char name[64];
};

static void
pw_work(uv_work_t *w)
{
	struct pwlookup *p = w->data;
	struct passwd pw, *res = NULL;
	char buf[4096];
	if (getpwuid_r(p->uid, &pw, buf, sizeof buf, &res) == 0 && res &&
	    strlen(res->pw_name) < sizeof p->name) {
		snprintf(p->name, sizeof p->name, "%s", res->pw_name);
		p->found = true;
	}
}

void
sess_greet(session_t *s)
{
	conn_printf(s->conn, "220 %s ESMTP tern\r\n", CFG(s)->hostname);
	metric_inc(&m_replies, "2xx");
	conn_flush(s->conn);
}

static void
pw_done(uv_work_t *w, int status)
{
	struct pwlookup *p = w->data;
	session_t *s = p->s;
	bool found = status == 0 && p->found;
	char name[64];
	snprintf(name, sizeof name, "%s", p->name);
	xfree(p);
	if (sess_work_returned(s))
		return;
	const config_t *c = CFG(s);
	/* a name the address syntax takes unquoted (RFC 5321 §4.1.2 Dot-string) */
	bool ok = found && name[0] && name[0] != '.';
	for (size_t i = 0; ok && name[i]; i++)
		ok = strchr("()<>[]:;@\\,\" ", name[i]) == NULL && (unsigned char)name[i] > ' ' &&
		    (unsigned char)name[i] < 0x7f;
	if (!ok) {
		log_warn("%s: local uid %u has no usable user name; refused", s->id, (unsigned)s->uid);
		sess_reply(s, "554 5.7.1 Error: cannot identify the local user");
		sess_close(s);
		conn_flush(s->conn);
		return;
	}
	s->local_user = xstrdup(name);
	s->local_sender = xasprintf("%s@%s", name, config_local_user_domain(c));
	s->trusted = s->uid == 0 || s->uid == geteuid();
	for (size_t i = 0; i < c->ntrusted_users && !s->trusted; i++)
		s->trusted = strcmp(c->trusted_users[i], name) == 0;
	log_info("%s: local user=%s uid=%u%s", s->id, name, (unsigned)s->uid,
	    s->trusted ? " trusted" : "");
	s->state = ST_CONNECTED;
	sess_greet(s);
	sess_resume(s);
}

static void
session_event(conn_t *c, enum conn_event ev, int err, void *arg)
{
	session_t *s = arg;
	switch (ev) {
	case CONN_EV_DATA:
		session_process(s);
		break;
	case CONN_EV_TLS_READY: {
		const char *info = conn_tls_info(c);
		snprintf(s->tls_info, sizeof s->tls_info, "%s", info ? info : "TLS ?");
		s->tls = true;
		const char *sp = strchr(s->tls_info, ' ');
		log_info("tls session=%s client=%s version=%.*s cipher=%s", s->id, s->ip,
		    sp ? (int)(sp - s->tls_info) : 0, s->tls_info, sp ? sp + 1 : "");
		s->state = ST_CONNECTED;
		if (s->filter) {
			/* the macros of the helo stage (filter.h) */
			char bits[8] = "";
			if (sp)
				snprintf(bits, sizeof bits, "%s", strstr(sp, "128") ? "128" : "256");
			if (sp)
				s->tls_info[sp - s->tls_info] = '\0';
			filter_macro(s->filter, "{tls_version}", sp ? s->tls_info : NULL);
			if (sp)
				s->tls_info[sp - s->tls_info] = ' ';
			filter_macro(s->filter, "{cipher}", sp ? sp + 1 : NULL);
			filter_macro(s->filter, "{cipher_bits}", bits[0] ? bits : NULL);
		}
		conn_set_deadline(c, CFG(s)->timeout_command * 1000u);
		if (s->mode == LISTEN_SMTPS && s->filter && !s->shutdown) {
			sess_hook_connect(s); /* greets when the milters are done */
			break;
		}
		if (s->mode == LISTEN_SMTPS)
			sess_greet(s); /* RFC 8314 §3.3: the greeting comes under TLS */
		if (s->shutdown) {
			sess_reply(s, "421 4.3.2 Service shutting down");
			sess_close(s);
		}
		break;
	}
	case CONN_EV_DRAINED:
		if (s->state != ST_COMMIT && s->state != ST_CLOSING && s->state != ST_WAIT &&
		    s->state != ST_TLS && conn_pending_output(c) == 0) {
			conn_read_pause(c, false);
			if (conn_input(c)->len > 0)
				session_process(s);
		}
		break;
	case CONN_EV_TIMEOUT:
		if (s->state == ST_COMMIT || s->state == ST_WAIT)
			break;
		log_info("%s: timeout client=%s state=%d", s->id, s->ip, (int)s->state);
		sess_reply(s, "421 4.4.2 Error: timeout exceeded; closing connection");
		sess_close(s);
		break;
	case CONN_EV_CLOSED:
		if (conn_tls_error(c)[0])
			log_info("tls failed session=%s client=%s: %s", s->id, s->ip, conn_tls_error(c));
		metric_add(&m_open, -1);
		log_info("disconnect session=%s client=%s commands=%u messages=%u errors=%u%s%s", s->id, s->ip,
		    s->ncommands, s->nmessages, s->errors, err ? " error=" : "", err ? uv_strerror(err) : "");
		if (s->mode != LISTEN_LOCAL)
			recent_session(true, conn_tls_active(c));
		s->conn = NULL;
		sess_auth_timer_stop(s);
		if (s->busy > 0) {
			/* keep s until the work in flight returns */
			s->gone = true;
			return;
		}
		server_session_gone(s->srv, s, s->ip);
		session_free(s);
		break;
	default:
		break;
	}
}

static void session_begin(session_t *s);

static void
rl_refuse_connect(session_t *s, const char *line)
{
	if (s->mode != LISTEN_SMTPS) /* smtps: nothing can be said before TLS */
		sess_reply(s, line);
	sess_close(s);
}

/* the connection rate limit's verdict from Redis */
static void
rl_connect_done(void *arg, bool denied, const char *reply_text)
{
	session_t *s = arg;
	s->rlreq = NULL;
	s->state = ST_CONNECTED;
	conn_read_pause(s->conn, false);
	conn_set_deadline(s->conn, CFG(s)->timeout_command * 1000u);
	if (denied) {
		rl_refuse_connect(s, reply_text);
		return;
	}
	session_begin(s);
	conn_flush(s->conn);
}

session_t *
session_new(struct server *srv, conn_t *conn, enum listen_mode mode)
{
	static unsigned long counter;
	session_t *s = xcalloc(1, sizeof *s);
	s->srv = srv;
	s->conn = conn;
	s->mode = mode;
	s->state = ST_CONNECTED;
	snprintf(s->id, sizeof s->id, "S%lx", ++counter);
	snprintf(s->ip, sizeof s->ip, "%s", conn_peer_ip(conn));
	s->port = conn_peer_port(conn);
	const config_t *c = CFG(s);
	s->relay_ok = config_in_mynetworks(c, conn_peer_addr(conn));
	const config_milter_t *ms[16];
	size_t nms = config_milters_for(c, mode, ms, 16);
	s->filter = filter_new(T(s)->loop, ms, nms, s->id);
	/* header/body checks: every listener but the local socket, like milters */
	s->filter = filter_checks(s->filter, T(s)->loop, s->id,
	    mode == LISTEN_LOCAL ? NULL : server_content_checks(srv));
	conn_set_cb(conn, session_event, s);
	conn_set_deadline(conn, c->timeout_command * 1000u);
	log_info("connect session=%s client=%s port=%d%s", s->id, s->ip, s->port,
	    mode == LISTEN_SMTP ? "" : mode == LISTEN_SUBMISSION ? " mode=submission"
	    : mode == LISTEN_SMTPS ? " mode=smtps" : " mode=local");
	metric_inc(&m_conns, mode == LISTEN_SMTP ? "smtp" : mode == LISTEN_SUBMISSION ? "submission"
	    : mode == LISTEN_SMTPS ? "smtps" : "local");
	metric_add(&m_open, 1);
	s->rl_exempt = mode == LISTEN_LOCAL || rl_exempt(c, conn_peer_addr(conn));
	if (!s->rl_exempt) {
		bool denied;
		char rl[400];
		if (rl_stage_start(T(s)->loop, c, RL_CONNECT, s->id, s->ip, NULL, NULL, &denied, rl,
		    sizeof rl, rl_connect_done, s, &s->rlreq) == 0) {
			sess_pause(s); /* the greeting waits for Redis */
			return s;
		}
		if (denied) {
			rl_refuse_connect(s, rl);
			return s;
		}
	}
	session_begin(s);
	return s;
}

/* the session after the connection rate limit: TLS (smtps), DNSBL, the
 * milters' connect stage, or the greeting */
static void
session_begin(session_t *s)
{
	conn_t *conn = s->conn;
	enum listen_mode mode = s->mode;
	struct server *srv = s->srv;
	const config_t *c = CFG(s);
	if (mode == LISTEN_LOCAL) {
		/* the peer's uid from the kernel; its name from the pool (NSS may be slow) */
		s->local = true;
		s->relay_ok = true;
		struct pwlookup *p = xcalloc(1, sizeof *p);
		if (conn_peer_cred(conn, &p->uid, NULL, NULL) < 0) {
			xfree(p);
			log_warn("%s: no peer credentials on the local socket; refused", s->id);
			sess_reply(s, "554 5.7.1 Error: cannot identify the local user");
			s->state = ST_CLOSING;
			conn_close(conn);
			return;
		}
		s->uid = p->uid;
		p->s = s;
		p->w.data = p;
		sess_pause(s);
		s->busy++;
		uv_queue_work(T(s)->loop, &p->w, pw_work, pw_done);
		return;
	}
	if (mode == LISTEN_SMTPS) {
		/* RFC 8314 §3.3: TLS from the first byte */
		s->state = ST_TLS;
		if (conn_starttls(conn, server_tls_ctx(srv), true, NULL) < 0) {
			log_err("%s: cannot start TLS: %s", s->id, conn_tls_error(conn));
			s->state = ST_CLOSING;
			conn_abort(conn, UV_EPROTO);
		}
		return;
	}
	if (dnsbl_applies(s, "connect")) {
		sess_pause(s); /* greets when the lists have answered (dnsbl_timeout at most) */
		s->dnsbl = dnsbl_check(T(s)->loop, c, conn_peer_addr(conn), s->id, dnsbl_connect_done, s);
		return;
	}
	if (s->filter) {
		sess_hook_connect(s); /* greets when the milters are done */
		return;
	}
	sess_greet(s);
	return;
}

void
session_shutdown(session_t *s)
{
	s->shutdown = true;
	if (s->state == ST_COMMIT || s->state == ST_CLOSING || s->state == ST_WAIT || s->gone)
		return;
	if (s->state == ST_TLS) {
		/* mid-handshake: nothing can be said in clear any more */
		sess_close(s);
		return;
	}
	sess_reply(s, "421 4.3.2 Service shutting down");
	sess_close(s);
	conn_flush(s->conn);
}
