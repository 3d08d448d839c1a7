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
 * Must not: block, or keep config/tables pointers across events (a SIGHUP
 * may replace them).
 */
#include "smtpd/session.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/addr.h"
#include "common/envelope.h"
#include "common/qid.h"
#include "daemon.h"
#include "deliver/router.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "queue/queue.h"
#include "sched/sched.h"
#include "smtpd/dataread.h"

#define OUT_HIGH (64 * 1024)   /* stop reading while this much output is unsent */
#define INPUT_MAX (64 * 1024)  /* conn input bound */
#define HELO_MAX 255

enum state {
	ST_CONNECTED, /* greeting sent, no HELO/EHLO yet */
	ST_READY,     /* HELO/EHLO done, no transaction */
	ST_MAIL,      /* MAIL accepted */
	ST_RCPT,      /* at least one RCPT accepted */
	ST_DATA,      /* reading DATA content */
	ST_BDAT,      /* reading a BDAT chunk */
	ST_COMMIT,    /* waiting for the queue commit */
	ST_CLOSING,   /* QUIT or fatal: no more input */
};

#define IN(s) (1u << (s))

struct session {
	struct server *srv;
	conn_t *conn;
	enum listen_mode mode;
	enum state state;
	char id[24];
	char ip[64];
	int port;
	bool esmtp;
	bool relay_ok;
	bool gone;          /* the connection is closed; free when the commit returns */
	bool shutdown;      /* the server is stopping */
	bool skip_line;     /* discarding the rest of an over-long command line */
	char *helo;
	unsigned errors;
	unsigned ncommands;
	unsigned nmessages;

	/* the transaction */
	mail_args_t mail;
	bool have_mail;
	envelope_t *env;    /* recipients collected so far */
	size_t nrcpt_cmds;  /* RCPT commands accepted (the limit counts these) */
	size_t rcpt_tries;  /* RCPT commands given, accepted or not */
	char *first_rcpt;   /* as given, for "for <...>" in Received */
	qmsg_t *qm;         /* content being received */
	char qid[QID_SIZE];
	dataread_t dr;
	bool bdat_mode;     /* this transaction uses BDAT */
	bool bdat_discard;  /* reading a chunk only to throw it away */
	bool bdat_last;
	enum state bdat_before; /* state to return to after a discarded chunk */
	uint64_t bdat_left;
	int64_t started_us;
};

static void session_process(session_t *s);
static void session_event(conn_t *c, enum conn_event ev, int err, void *arg);

static tern_t *
T(session_t *s)
{
	return server_tern(s->srv);
}

static const config_t *
CFG(session_t *s)
{
	return T(s)->cfg;
}

static int64_t
now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- replies ---- */

static void
reply(session_t *s, const char *line)
{
	conn_write(s->conn, line, strlen(line));
	conn_write(s->conn, "\r\n", 2);
}

/* An error reply: logged, and counted towards max_errors. */
static void
reply_error(session_t *s, const char *cmd, const char *line, bool count)
{
	reply(s, line);
	log_info("%s: reject cmd=%s reply=\"%s\" client=%s", s->id, cmd, line, s->ip);
	if (count)
		s->errors++;
}

static void
session_close(session_t *s)
{
	s->state = ST_CLOSING;
	conn_close(s->conn);
}

/* ---- transaction ---- */

static void
txn_reset(session_t *s)
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
	if (s->state != ST_CONNECTED && s->state != ST_CLOSING)
		s->state = ST_READY;
}

static unsigned
offered_args(session_t *s)
{
	if (!s->esmtp)
		return 0;
	return ARGS_SMTPUTF8 | ARGS_8BITMIME | ARGS_DSN | ARGS_SIZE;
}

/* RFC 3848 / RFC 6531 §3.7.3 protocol word for Received */
static const char *
proto_word(session_t *s)
{
	bool utf8 = s->have_mail && s->mail.smtputf8;
	if (!s->esmtp)
		return "SMTP";
	return utf8 ? "UTF8SMTP" : "ESMTP";
}

static void
content_out(void *arg, const char *p, size_t n)
{
	session_t *s = arg;
	queue_write(s->qm, p, n);
}

/* Start the content: queue file, Received header (RFC 5321 §4.4). */
static void
content_begin(session_t *s, bool raw)
{
	const config_t *c = CFG(s);
	qid_new(s->qid);
	memcpy(s->env->qid, s->qid, QID_SIZE);
	s->started_us = now_us();
	s->env->arrival_us = s->started_us;
	s->qm = queue_begin(T(s)->queue, s->env);

	char date[64];
	time_t now = (time_t)(s->started_us / 1000000);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);

	buf_t h = BUF_INIT;
	buf_printf(&h, "Received: from %s ([%s])\r\n\tby %s (tern) with %s id %s", s->helo ? s->helo : "unknown",
	    s->ip, c->hostname, proto_word(s), s->qid);
	if (s->nrcpt_cmds == 1 && s->first_rcpt)
		buf_printf(&h, "\r\n\tfor <%s>", s->first_rcpt);
	buf_printf(&h, "; %s\r\n", date);
	queue_write(s->qm, h.data, h.len);
	buf_free(&h);
	dataread_init(&s->dr, raw, c->max_line_length, c->message_size_limit);
	/* the Received header counts against the size limit too */
	s->dr.size = 0;
}

static void
commit_done(void *arg, int err, envelope_t *env)
{
	session_t *s = arg;
	s->qm = NULL; /* freed by the queue */
	if (s->gone) {
		/* client left while we synced: the message is queued all the same */
		if (err == 0) {
			log_info("%s: accepted session=%s client=%s helo=%s from=<%s> size=%llu nrcpt=%zu proto=%s (client gone before reply)",
			    env->qid, s->id, s->ip, s->helo ? s->helo : "", env->sender,
			    (unsigned long long)env->body_len, env->nrcpt, proto_word(s));
			sched_submit(T(s)->sched, env, false);
		}
		txn_reset(s);
		xfree(s->helo);
		server_session_gone(s->srv, s, s->ip);
		xfree(s);
		return;
	}
	if (err != 0) {
		char line[256];
		snprintf(line, sizeof line, "451 4.3.0 Error: queue file write error (%s)", strerror(err));
		log_err("%s: queue commit failed session=%s: %s", s->qid, s->id, strerror(err));
		reply_error(s, "DATA", line, false);
	} else {
		char line[128];
		log_info("%s: accepted session=%s client=%s helo=%s from=<%s> size=%llu nrcpt=%zu proto=%s",
		    env->qid, s->id, s->ip, s->helo ? s->helo : "", env->sender,
		    (unsigned long long)env->body_len, env->nrcpt, proto_word(s));
		snprintf(line, sizeof line, "250 2.0.0 Ok: queued as %s", env->qid);
		reply(s, line);
		s->nmessages++;
		sched_submit(T(s)->sched, env, false);
	}
	s->state = ST_READY;
	txn_reset(s);
	conn_read_pause(s->conn, false);
	conn_set_timeout(s->conn, CFG(s)->timeout_command * 1000u);
	if (s->shutdown) {
		reply(s, "421 4.3.2 Service shutting down");
		session_close(s);
		return;
	}
	session_process(s);
	conn_flush(s->conn);
}

/* The content has ended (final dot, or BDAT LAST): check, then commit. */
static void
content_end(session_t *s, const char *cmd)
{
	unsigned f = s->dr.flags;
	char line[256];
	const char *bad = NULL;

	if (f & DR_TOO_BIG) {
		snprintf(line, sizeof line, "552 5.3.4 Error: message too big (limit %llu octets)",
		    (unsigned long long)CFG(s)->message_size_limit);
		bad = line;
	} else if (f & (DR_BARE_LF | DR_BARE_CR)) {
		bad = "550 5.6.0 Error: bare CR or LF in message content; lines must end with CRLF (RFC 5321 section 2.3.8)";
	} else if (f & DR_LINE_TOO_LONG) {
		snprintf(line, sizeof line,
		    "550 5.6.0 Error: message line longer than %zu octets (RFC 5321 section 4.5.3.1.6)",
		    CFG(s)->max_line_length);
		bad = line;
	} else if (queue_write(s->qm, "", 0) < 0) {
		bad = "451 4.3.0 Error: queue file write error";
	}
	if (bad) {
		reply_error(s, cmd, bad, false);
		txn_reset(s);
		return;
	}
	s->env->body = s->mail.body;
	s->state = ST_COMMIT;
	conn_read_pause(s->conn, true);
	conn_set_timeout(s->conn, 0);
	qmsg_t *qm = s->qm;
	queue_commit(qm, commit_done, s);
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
		reply_error(s, verb, line, true);
		return;
	}
	/* RFC 5321 §4.1.4: EHLO/HELO resets any transaction */
	txn_reset(s);
	xfree(s->helo);
	s->helo = xstrndup(args, n);
	s->esmtp = esmtp;
	s->state = ST_READY;
	const config_t *c = CFG(s);
	if (!esmtp) {
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
	    "250-ENHANCEDSTATUSCODES\r\n"
	    "250 CHUNKING\r\n",
	    c->hostname, (unsigned long long)c->message_size_limit);
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

static void
cmd_mail(session_t *s, const char *a, size_t n)
{
	const char *err;
	if (!prefix_ci(a, n, "FROM:")) {
		reply_error(s, "MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>", true);
		return;
	}
	mail_args_t m;
	if (mail_args_parse(a + 5, n - 5, offered_args(s), &m, &err) < 0) {
		reply_error(s, "MAIL", err, true);
		return;
	}
	const config_t *c = CFG(s);
	if (m.size > c->message_size_limit) {
		mail_args_free(&m);
		reply_error(s, "MAIL", "552 5.3.4 Error: message size exceeds fixed limit", true);
		return;
	}
	s->mail = m;
	s->have_mail = true;
	s->env = envelope_new();
	s->env->sender = xstrdup(m.from.str);
	s->env->envid = m.envid ? xstrdup(m.envid) : NULL;
	s->env->ret = m.ret;
	s->env->body = m.body;
	s->env->smtputf8 = m.smtputf8;
	s->env->client_addr = xstrdup(s->ip);
	s->env->client_helo = s->helo ? xstrdup(s->helo) : NULL;
	s->state = ST_MAIL;
	reply(s, "250 2.1.0 Ok");
}

static bool
env_has_rcpt(const envelope_t *e, const char *addr)
{
	for (size_t i = 0; i < e->nrcpt; i++)
		if (strcasecmp(e->rcpt[i].addr, addr) == 0)
			return true;
	return false;
}

static void
cmd_rcpt(session_t *s, const char *a, size_t n)
{
	const char *err;
	const config_t *c = CFG(s);
	if (!prefix_ci(a, n, "TO:")) {
		reply_error(s, "RCPT", "501 5.5.4 Syntax: RCPT TO:<address>", true);
		return;
	}
	if (s->nrcpt_cmds >= c->max_recipients) {
		/* RFC 5321 §4.5.3.1.10: 452 for too many recipients; not counted
		 * as a client error (a big list is legitimate) */
		reply_error(s, "RCPT", "452 4.5.3 Error: too many recipients", false);
		return;
	}
	s->rcpt_tries++;
	rcpt_args_t r;
	if (rcpt_args_parse(a + 3, n - 3, offered_args(s), s->mail.smtputf8, &r, &err) < 0) {
		reply_error(s, "RCPT", err, true);
		return;
	}
	dest_list_t d = {0};
	enum router_status st = router_expand(c, T(s)->tables, &r.to, s->relay_ok, &d, &err);
	if (st != ROUTER_OK) {
		char line[600];
		/* name the address in the log line, not in the static reply */
		log_info("%s: reject cmd=RCPT reply=\"%s\" client=%s to=<%s>", s->id, err, s->ip, r.to.str);
		snprintf(line, sizeof line, "%s", err);
		reply(s, line);
		s->errors++;
		rcpt_args_free(&r);
		return;
	}
	for (size_t i = 0; i < d.n; i++) {
		if (env_has_rcpt(s->env, d.addrs[i]))
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
	reply(s, "250 2.1.5 Ok");
}

static void
cmd_data(session_t *s, const char *a, size_t n)
{
	if (n > 0) {
		reply_error(s, "DATA", "501 5.5.4 Syntax: DATA (no arguments)", true);
		return;
	}
	if (s->bdat_mode) {
		reply_error(s, "DATA", "503 5.5.1 Error: DATA after BDAT in the same transaction", true);
		return;
	}
	if (s->env->nrcpt == 0) {
		reply_error(s, "DATA", "554 5.5.1 Error: no valid recipients", true);
		return;
	}
	content_begin(s, false);
	s->state = ST_DATA;
	conn_set_timeout(s->conn, CFG(s)->timeout_data * 1000u);
	reply(s, "354 2.0.0 End data with <CR><LF>.<CR><LF>");
}

/* RFC 3030 §2: BDAT <chunk-size> [LAST]. The chunk is always read, even
 * when the command is refused (bdat_discard), so the byte stream stays in
 * step; the refusal is the reply to the chunk. */
static void
cmd_bdat(session_t *s, const char *a, size_t n)
{
	uint64_t size = 0;
	size_t i = 0;
	bool last = false;
	while (i < n && a[i] >= '0' && a[i] <= '9' && i < 19) {
		size = size * 10 + (uint64_t)(a[i] - '0');
		i++;
	}
	bool ok = i > 0 && (i == n || a[i] == ' ');
	if (ok && i < n) {
		size_t j = i;
		while (j < n && a[j] == ' ')
			j++;
		if (n - j == 4 && strncasecmp(a + j, "LAST", 4) == 0)
			last = true;
		else if (j < n)
			ok = false;
	}
	if (!ok) {
		/* we cannot know how many octets follow: the stream is lost */
		reply_error(s, "BDAT", "501 5.5.4 Syntax: BDAT chunk-size [LAST]; closing connection", true);
		session_close(s);
		return;
	}
	s->bdat_left = size;
	s->bdat_last = last;
	s->bdat_before = s->state;
	s->bdat_discard = s->state != ST_RCPT;
	s->state = ST_BDAT;
	conn_set_timeout(s->conn, CFG(s)->timeout_data * 1000u);
	if (!s->bdat_discard && !s->bdat_mode) {
		s->bdat_mode = true;
		content_begin(s, true);
	}
}

static void
bdat_chunk_done(session_t *s)
{
	conn_set_timeout(s->conn, CFG(s)->timeout_command * 1000u);
	if (s->bdat_discard) {
		s->bdat_discard = false;
		s->state = s->bdat_before;
		reply_error(s, "BDAT",
		    s->state == ST_MAIL ? "554 5.5.1 Error: no valid recipients"
		    : s->state == ST_CONNECTED ? "503 5.5.1 Error: send HELO/EHLO first"
		    : "503 5.5.1 Error: need MAIL and RCPT before BDAT",
		    true);
		return;
	}
	if (s->dr.flags & DR_TOO_BIG) {
		/* RFC 3030 §2: the transaction has failed; further chunks are
		 * refused because there is no transaction any more */
		char line[128];
		snprintf(line, sizeof line, "552 5.3.4 Error: message too big (limit %llu octets)",
		    (unsigned long long)CFG(s)->message_size_limit);
		s->state = ST_READY;
		reply_error(s, "BDAT", line, false);
		txn_reset(s);
		return;
	}
	if (!s->bdat_last) {
		char line[96];
		s->state = ST_RCPT;
		snprintf(line, sizeof line, "250 2.0.0 %llu octets received",
		    (unsigned long long)s->dr.size);
		reply(s, line);
		return;
	}
	dataread_finish(&s->dr, content_out, s);
	s->state = ST_RCPT;
	content_end(s, "BDAT");
}

static void
cmd_rset(session_t *s, const char *a, size_t n)
{
	txn_reset(s);
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(session_t *s, const char *a, size_t n)
{
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(session_t *s, const char *a, size_t n)
{
	reply(s, "221 2.0.0 Bye");
	session_close(s);
}

static void
cmd_vrfy(session_t *s, const char *a, size_t n)
{
	/* RFC 5321 §3.5.3: 252 discloses nothing about the mailbox */
	reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_expn(session_t *s, const char *a, size_t n)
{
	reply_error(s, "EXPN", "502 5.5.1 Error: EXPN is not available", true);
}

static void
cmd_help(session_t *s, const char *a, size_t n)
{
	reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP");
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
	{"DATA", IN(ST_RCPT), NULL, cmd_data},
	{"BDAT", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_bdat},
	{"RSET", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_rset},
	{"NOOP", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_noop},
	{"QUIT", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_quit},
	{"VRFY", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_vrfy},
	{"EXPN", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_expn},
	{"HELP", IN(ST_CONNECTED) | IN(ST_READY) | IN(ST_MAIL) | IN(ST_RCPT), NULL, cmd_help},
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
		if (strcmp(c->name, "BDAT") == 0) {
			/* parsed even out of sequence: its chunk must be read */
			cmd_bdat(s, args, an);
			return;
		}
		if (!(c->states & IN(s->state))) {
			reply_error(s, c->name, bad_sequence_text(s, c), true);
			return;
		}
		c->fn(s, args, an);
		return;
	}
	char verb[16];
	snprintf(verb, sizeof verb, "%.*s", (int)(vl < 12 ? vl : 12), line);
	reply_error(s, verb[0] ? verb : "-", "500 5.5.2 Error: command not recognized", true);
}

/* ---- input ---- */

static bool
too_many_errors(session_t *s)
{
	if (s->errors < CFG(s)->max_errors)
		return false;
	reply(s, "421 4.7.0 Error: too many errors; closing connection");
	log_info("%s: too many errors client=%s errors=%u", s->id, s->ip, s->errors);
	session_close(s);
	return true;
}

/* Handle one command line (without CRLF). Returns false to stop processing. */
static bool
command_line(session_t *s, const char *line, size_t n)
{
	/* a CR inside the line that is not part of the final CRLF */
	if (memchr(line, '\n', n) || memchr(line, '\r', n) || memchr(line, '\0', n)) {
		reply_error(s, "-", "500 5.5.2 Error: bare LF, bare CR or NUL in command line; lines must end with CRLF", true);
		return !too_many_errors(s);
	}
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
	    s->state != ST_COMMIT && !s->gone) {
		if (conn_pending_output(s->conn) > OUT_HIGH) {
			/* the client does not read its replies: stop reading it */
			conn_read_pause(s->conn, true);
			return;
		}
		if (s->state == ST_DATA) {
			bool done;
			size_t used = dataread_feed(&s->dr, in->data, in->len, content_out, s, &done);
			conn_consume(s->conn, used);
			if (!done)
				return;
			conn_set_timeout(s->conn, c->timeout_command * 1000u);
			content_end(s, "DATA");
			continue;
		}
		if (s->state == ST_BDAT) {
			size_t k = in->len < s->bdat_left ? in->len : (size_t)s->bdat_left;
			bool done;
			if (!s->bdat_discard && k > 0)
				dataread_feed(&s->dr, in->data, k, content_out, s, &done);
			conn_consume(s->conn, k);
			s->bdat_left -= k;
			if (s->bdat_left > 0)
				return;
			bdat_chunk_done(s);
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
			if (in->len >= c->max_command_length) {
				reply_error(s, "-", "500 5.5.2 Error: line too long", true);
				s->skip_line = true;
				size_t drop = in->len - (in->data[in->len - 1] == '\r');
				conn_consume(s->conn, drop);
				if (too_many_errors(s))
					return;
			}
			return; /* wait for more */
		}
		size_t linelen = (size_t)(eol - in->data) + 2;
		if (linelen > c->max_command_length) {
			conn_consume(s->conn, linelen);
			reply_error(s, "-", "500 5.5.2 Error: line too long", true);
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
		if (line != small)
			xfree(line);
		if (!more)
			return;
	}
}

static void
session_free(session_t *s)
{
	txn_reset(s);
	xfree(s->helo);
	xfree(s);
}

static void
session_event(conn_t *c, enum conn_event ev, int err, void *arg)
{
	session_t *s = arg;
	switch (ev) {
	case CONN_EV_DATA:
		session_process(s);
		break;
	case CONN_EV_DRAINED:
		if (s->state != ST_COMMIT && s->state != ST_CLOSING &&
		    conn_pending_output(c) == 0) {
			conn_read_pause(c, false);
			if (conn_input(c)->len > 0)
				session_process(s);
		}
		break;
	case CONN_EV_TIMEOUT:
		if (s->state == ST_COMMIT)
			break;
		log_info("%s: timeout client=%s state=%d", s->id, s->ip, (int)s->state);
		reply(s, "421 4.4.2 Error: timeout exceeded; closing connection");
		session_close(s);
		break;
	case CONN_EV_CLOSED:
		log_info("disconnect session=%s client=%s commands=%u messages=%u errors=%u%s%s", s->id, s->ip,
		    s->ncommands, s->nmessages, s->errors, err ? " error=" : "", err ? uv_strerror(err) : "");
		s->conn = NULL;
		if (s->state == ST_COMMIT) {
			/* keep s until commit_done */
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
	conn_set_cb(conn, session_event, s);
	conn_set_timeout(conn, c->timeout_command * 1000u);
	log_info("connect session=%s client=%s port=%d", s->id, s->ip, s->port);
	conn_printf(conn, "220 %s ESMTP tern\r\n", c->hostname);
	conn_flush(conn);
	return s;
}

void
session_shutdown(session_t *s)
{
	s->shutdown = true;
	if (s->state == ST_COMMIT || s->state == ST_CLOSING || s->gone)
		return;
	reply(s, "421 4.3.2 Service shutting down");
	session_close(s);
	conn_flush(s->conn);
}
