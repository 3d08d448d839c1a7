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
 * Must not: block, or keep config/tables pointers across events (a SIGHUP
 * may replace them).
 */
#include "smtpd/session.h"

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
#include "deliver/router.h"
#include "filter/dnsbl.h"
#include "filter/filter.h"
#include "lib/buf.h"
#include "lib/log.h"
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
#define HDR_SCAN_MAX 65536     /* header section looked at for missing fields (local mail) */
#define AUTH_DELAY_MAX_MS 30000

enum state {
	ST_CONNECTED, /* greeting sent, no HELO/EHLO yet */
	ST_READY,     /* HELO/EHLO done, no transaction */
	ST_MAIL,      /* MAIL accepted */
	ST_RCPT,      /* at least one RCPT accepted */
	ST_DATA,      /* reading DATA content */
	ST_BDAT,      /* reading a BDAT chunk */
	ST_COMMIT,    /* waiting for the queue commit */
	ST_CLOSING,   /* QUIT or fatal: no more input */
	ST_TLS,       /* TLS handshake in progress */
	ST_AUTH,      /* AUTH: reading the client's SASL responses */
	ST_WAIT,      /* password check, failure delay or user lookup in flight */
};

enum auth_mech { MECH_PLAIN, MECH_LOGIN };

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
	bool bdat_no_room;      /* the discarded chunk is refused for lack of spool space */
	uint64_t bdat_left;
	int64_t started_us;

	unsigned busy;      /* work in flight on the pool (commit, password, lookup) */

	/* TLS */
	bool tls;
	char tls_info[96];

	/* AUTH */
	char *auth_user;        /* authenticated as */
	unsigned auth_failures;
	enum auth_mech mech;
	int auth_step;          /* LOGIN: 0 user name, 1 password */
	char *auth_pending;     /* user name being checked or read */
	uv_timer_t *auth_timer; /* failure delay; freed in its close callback */

	/* the local socket (sendmail) */
	bool local;
	bool trusted;           /* may choose the envelope sender */
	uid_t uid;
	char *local_user;
	char *local_sender;     /* user@domain */
	bool hdr_scan;          /* collecting the header section of the content */
	/* counting Received: fields in the header section (RFC 5321 §6.3) */
	hdr_hops_t hops;        /* Received: fields counted as the content streams in */
	buf_t hdr;

	/* milters (src/filter/): NULL when the listener has none */
	filter_t *filter;
	buf_t fcontent;         /* the content, held for the milters until end of message */
	enum state fstate;      /* where a command waiting for the filter goes back to */
	mail_args_t fmail;      /* MAIL or RCPT waiting for the filter's verdict */
	char *fsender;
	rcpt_args_t frcpt;
	dest_list_t fdest;
	const char *fcmd;       /* "DATA" or "BDAT" at end of message */
	int fpending;           /* 1: fmail/fsender, 2: frcpt/fdest wait for a verdict */
	bool fdiscard;          /* a milter said DISCARD before the end of the message */

	/* DNSBL (src/filter/dnsbl.h): the lookup in flight, its verdict */
	dnsbl_req_t *dnsbl;
	bool dnsbl_done;        /* looked up (once per session) */
	char *dnsbl_reply;      /* listed: the 554 given at MAIL (connect) or RCPT (rcpt) */
	char *dnsbl_cmd;        /* dnsbl_stage rcpt: the RCPT argument waiting for the lookup */
	size_t dnsbl_cmdlen;
	enum state dnsbl_state;
};

static void session_process(session_t *s);
static void session_event(conn_t *c, enum conn_event ev, int err, void *arg);
static void session_free(session_t *s);
static void mail_accept(session_t *s, mail_args_t *m, const char *sender);
static void rcpt_accept(session_t *s, rcpt_args_t *r, dest_list_t *d);
static void helo_reply(session_t *s);
static void greet(session_t *s);
static bool env_has_rcpt(const envelope_t *e, const char *addr);
static void commit_done(void *arg, int err, envelope_t *env);
static void filter_eom_done(void *arg, const filter_verdict_t *v);
static void eom_discard(session_t *s, const char *why, bool in_loop);
static void hook_connect(session_t *s);
static void hook_helo(session_t *s);
static void hook_mail(session_t *s, const char *a, size_t n, mail_args_t *m, const char *sender);
static void hook_rcpt(session_t *s, const char *a, size_t n, rcpt_args_t *r, dest_list_t *d);

static smtpd_ctx_t *
T(session_t *s)
{
	return server_ctx(s->srv);
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
	s->hdr_scan = false;
	buf_free(&s->hdr);
	buf_free(&s->fcontent);
	s->fdiscard = false;
	filter_abort(s->filter);
	if (s->state != ST_CONNECTED && s->state != ST_CLOSING && s->state != ST_TLS)
		s->state = ST_READY;
}

/* Work on the pool has come back (busy was counted): true when the client
 * left meanwhile and the session is gone now (do not touch s). */
static bool
work_returned(session_t *s)
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
static void
session_resume(session_t *s)
{
	conn_read_pause(s->conn, false);
	conn_set_deadline(s->conn, CFG(s)->timeout_command * 1000u);
	if (s->shutdown) {
		reply(s, "421 4.3.2 Service shutting down");
		session_close(s);
		return;
	}
	session_process(s);
	conn_flush(s->conn);
}

static void
session_pause(session_t *s)
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
	return ARGS_SMTPUTF8 | ARGS_8BITMIME | ARGS_DSN | ARGS_SIZE;
}

/* RFC 3848 / RFC 6531 §3.7.3 protocol word for Received: S for TLS, A
 * for AUTH */
static const char *
proto_word(session_t *s)
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
static const char *
user_note(session_t *s, char *buf, size_t n)
{
	const char *u = s->auth_user ? s->auth_user : s->local_user;
	if (!u)
		return "";
	snprintf(buf, n, " user=%s", u);
	return buf;
}

static void
rfc5322_date(char *out, size_t n, time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* Content goes to the queue file, or, while milters are to see it first,
 * into memory (bounded by message_size_limit: dataread drops the excess);
 * the queue file is then written once, with their changes (filter_done). */
static void
content_put(session_t *s, const void *p, size_t n)
{
	if (s->filter)
		buf_append(&s->fcontent, p, n);
	else
		queue_write(s->qm, p, n);
}

/*
 * Local submissions: the header section is collected (at most
 * HDR_SCAN_MAX octets) and written with the fields RFC 5322 §3.6 requires
 * and the sender's program left out (Date, From; Message-ID, which it
 * should have) added at its end. at_end: the content ended (a message of
 * only header fields). Without a complete header section in the window
 * nothing is added.
 */
static void
hdr_emit(session_t *s, bool at_end)
{
	const char *d = s->hdr.data ? s->hdr.data : "";
	size_t len = s->hdr.len;
	unsigned have;
	bool complete;
	size_t pos = hdr_fields_scan(d, len, at_end, &have, &complete);
	bool have_date = have & HDR_HAVE_DATE, have_from = have & HDR_HAVE_FROM,
	     have_mid = have & HDR_HAVE_MSGID;
	content_put(s, d, pos);
	if (complete && (!have_date || !have_from || !have_mid)) {
		buf_t h = BUF_INIT;
		if (!have_date) {
			char date[64];
			rfc5322_date(date, sizeof date, (time_t)(s->started_us / 1000000));
			buf_printf(&h, "Date: %s\r\n", date);
		}
		if (!have_from) {
			const char *f = s->env->sender && s->env->sender[0] ? s->env->sender : s->local_sender;
			buf_printf(&h, "From: <%s>\r\n", f ? f : "");
		}
		if (!have_mid)
			buf_printf(&h, "Message-ID: <%s@%s>\r\n", s->qid, CFG(s)->hostname);
		/* a body that started without a blank line gets one */
		if (pos < len && !(len - pos >= 2 && d[pos] == '\r' && d[pos + 1] == '\n'))
			buf_puts(&h, "\r\n");
		content_put(s, h.data, h.len);
		buf_free(&h);
		log_info("%s: added header fields%s%s%s session=%s", s->qid, have_date ? "" : " Date",
		    have_from ? "" : " From", have_mid ? "" : " Message-ID", s->id);
	}
	content_put(s, d + pos, len - pos);
	s->hdr_scan = false;
	buf_free(&s->hdr);
}

static void
content_out(void *arg, const char *p, size_t n)
{
	session_t *s = arg;
	/* RFC 5321 §6.3: a message that has passed too many relays is in a loop */
	if (!s->hops.done)
		hdr_hops_feed(&s->hops, p, n);
	if (!s->hdr_scan) {
		content_put(s, p, n);
		return;
	}
	size_t from = s->hdr.len > 3 ? s->hdr.len - 3 : 0;
	buf_append(&s->hdr, p, n);
	if ((s->hdr.len >= 2 && s->hdr.data[0] == '\r' && s->hdr.data[1] == '\n') ||
	    memmem(s->hdr.data + from, s->hdr.len - from, "\r\n\r\n", 4) || s->hdr.len >= HDR_SCAN_MAX)
		hdr_emit(s, false);
}

/* Start the content: queue file, Received header (RFC 5321 §4.4). */
static void
content_begin(session_t *s, bool raw)
{
	const config_t *c = CFG(s);
	if (!s->qid[0])
		qid_new(s->qid); /* with milters it was made at MAIL (macro i) */
	memcpy(s->env->qid, s->qid, QID_SIZE);
	hdr_hops_init(&s->hops);
	s->started_us = now_us();
	s->env->arrival_us = s->started_us;
	s->qm = s->filter ? NULL : queue_begin(T(s)->queue, s->env);
	buf_reset(&s->fcontent);

	char date[64];
	rfc5322_date(date, sizeof date, (time_t)(s->started_us / 1000000));

	buf_t h = BUF_INIT;
	if (s->local)
		buf_printf(&h, "Received: from %s (uid %u, user %s)", s->helo ? s->helo : "unknown",
		    (unsigned)s->uid, s->local_user);
	else
		buf_printf(&h, "Received: from %s ([%s])", s->helo ? s->helo : "unknown", s->ip);
	if (s->tls) {
		/* the version and cipher in a comment, like other MTAs */
		const char *sp = strchr(s->tls_info, ' ');
		if (sp)
			buf_printf(&h, "\r\n\t(using %.*s with cipher %s)", (int)(sp - s->tls_info),
			    s->tls_info, sp + 1);
	}
	buf_printf(&h, "\r\n\tby %s (tern) with %s id %s", c->hostname, proto_word(s), s->qid);
	if (s->nrcpt_cmds == 1 && s->first_rcpt)
		buf_printf(&h, "\r\n\tfor <%s>", s->first_rcpt);
	buf_printf(&h, "; %s\r\n", date);
	content_put(s, h.data, h.len);
	buf_free(&h);
	dataread_init(&s->dr, raw, c->max_line_length, c->message_size_limit);
	/* the Received header counts against the size limit too */
	s->dr.size = 0;
	s->hdr_scan = s->local;
}

static void
commit_done(void *arg, int err, envelope_t *env)
{
	session_t *s = arg;
	char un[128];
	s->qm = NULL; /* freed by the queue */
	if (err == 0)
		maillog_accepted(env->qid, s->id, s->ip, s->helo ? s->helo : "", env->sender,
		    env->body_len, env->nrcpt, proto_word(s), user_note(s, un, sizeof un), s->gone);
	if (s->gone) {
		/* client left while we synced: the message is queued all the same */
		if (err == 0)
			sched_submit(T(s)->sched, env, false);
		work_returned(s);
		return;
	}
	s->busy--;
	if (err != 0) {
		char line[256];
		snprintf(line, sizeof line, "451 4.3.0 Error: queue file write error (%s)", strerror(err));
		log_err("%s: queue commit failed session=%s: %s", s->qid, s->id, strerror(err));
		reply_error(s, "DATA", line, false);
	} else {
		char line[128];
		snprintf(line, sizeof line, "250 2.0.0 Ok: queued as %s", env->qid);
		reply(s, line);
		s->nmessages++;
		sched_submit(T(s)->sched, env, false);
	}
	s->state = ST_READY;
	txn_reset(s);
	session_resume(s);
}

/* The content has ended (final dot, or BDAT LAST): check, then commit. */
static void
content_end(session_t *s, const char *cmd)
{
	unsigned f = s->dr.flags;
	char line[256];
	const char *bad = NULL;

	if (s->hdr_scan)
		hdr_emit(s, true); /* a message that is all header */

	if (f & DR_TOO_BIG) {
		snprintf(line, sizeof line, "552 5.3.4 Error: message too big (limit %llu octets)",
		    (unsigned long long)CFG(s)->message_size_limit);
		bad = line;
	} else if (f & (DR_BARE_LF | DR_BARE_CR)) {
		bad = "550 5.6.0 Error: bare CR or LF in message content; lines must end with CRLF (RFC 5321 section 2.3.8)";
	} else if (f & DR_NUL) {
		bad = "550 5.6.0 Error: NUL octet in message content; not allowed in mail (RFC 5322 section 3.5)";
	} else if (f & DR_LINE_TOO_LONG) {
		snprintf(line, sizeof line,
		    "550 5.6.0 Error: message line longer than %zu octets (RFC 5321 section 4.5.3.1.6)",
		    CFG(s)->max_line_length);
		bad = line;
	} else if (s->hops.hops > CFG(s)->max_hops) {
		snprintf(line, sizeof line,
		    "554 5.4.6 Error: too many hops (%u Received: header fields); mail loop? (RFC 5321 section 6.3)",
		    s->hops.hops);
		bad = line;
	} else if (s->qm && queue_write(s->qm, "", 0) < 0) {
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
	if (s->filter && s->fdiscard) {
		eom_discard(s, "milter discard before the end of the message", true);
		return;
	}
	if (s->filter) {
		s->fcmd = cmd;
		filter_eom(s->filter, s->fcontent.data ? s->fcontent.data : "", s->fcontent.len,
		    filter_eom_done, s);
		return;
	}
	qmsg_t *qm = s->qm;
	s->busy++;
	queue_commit(qm, commit_done, s);
}

/* ---- the filter stage (src/filter/filter.h: the order of checks) ----
 * Each hook below hands one SMTP stage to the milters and parks the
 * session (reads paused, like a commit) until the verdict; the verdict's
 * reply is the SMTP reply. No hook runs when the listener has no milters.
 * If the client leaves meanwhile, filter_free() cancels the callback. */

static void
hook_done(session_t *s)
{
	session_resume(s);
}

static void
filter_connect_done(void *arg, const filter_verdict_t *v)
{
	session_t *s = arg;
	(void)v; /* a verdict at connect is given at MAIL (filter.h) */
	s->state = ST_CONNECTED;
	greet(s);
	hook_done(s);
}

/* the session's macros and the connect stage; the greeting waits for it */
static void
hook_connect(session_t *s)
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
	session_pause(s);
	filter_connect(s->filter, "unknown", pa ? pa->sa_family : AF_UNSPEC, s->ip, s->port,
	    filter_connect_done, s);
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
		hook_connect(s); /* greets when the milters are done */
		return;
	}
	s->state = ST_CONNECTED;
	greet(s);
	session_resume(s);
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
		session_resume(s);
}

/* The verdict for a client refused at this stage: true when refused. */
static bool
dnsbl_refuse(session_t *s, const char *cmd, const char *stage)
{
	if (!s->dnsbl_reply || s->auth_user || strcmp(CFG(s)->dnsbl_stage, stage) != 0)
		return false;
	reply_error(s, cmd, s->dnsbl_reply, false);
	return true;
}

static void
filter_helo_done(void *arg, const filter_verdict_t *v)
{
	session_t *s = arg;
	if (v->action == FILTER_CONTINUE || v->action == FILTER_DISCARD) {
		helo_reply(s);
	} else {
		s->state = s->fstate == ST_CONNECTED ? ST_CONNECTED : ST_READY;
		reply_error(s, s->esmtp ? "EHLO" : "HELO", v->reply, false);
	}
	hook_done(s);
}

static void
hook_helo(session_t *s)
{
	s->fstate = s->state;
	session_pause(s);
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
		mail_accept(s, &s->fmail, s->fsender);
		s->fdiscard = v->action == FILTER_DISCARD;
	} else {
		mail_args_free(&s->fmail);
		s->qid[0] = '\0';
		reply_error(s, "MAIL", v->reply, false);
		filter_abort(s->filter);
	}
	memset(&s->fmail, 0, sizeof s->fmail);
	xfree(s->fsender);
	s->fsender = NULL;
	s->fpending = 0;
	hook_done(s);
}

static void
hook_mail(session_t *s, const char *a, size_t n, mail_args_t *m, const char *sender)
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
	session_pause(s);
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
		rcpt_accept(s, &s->frcpt, &s->fdest);
	} else {
		log_info("%s: reject cmd=RCPT reply=\"%s\" client=%s to=<%s> milter=%s", s->id,
		    v->reply, s->ip, s->frcpt.to.str, v->who ? v->who : "");
		reply(s, v->reply);
		rcpt_args_free(&s->frcpt);
		dest_list_free(&s->fdest);
	}
	memset(&s->frcpt, 0, sizeof s->frcpt);
	memset(&s->fdest, 0, sizeof s->fdest);
	s->fpending = 0;
	hook_done(s);
}

static void
hook_rcpt(session_t *s, const char *a, size_t n, rcpt_args_t *r, dest_list_t *d)
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
	session_pause(s);
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
			if (!env_has_rcpt(s->env, d.addrs[k]))
				envelope_add_rcpt(s->env, d.addrs[k],
				    strcasecmp(d.addrs[k], o->addr) == 0 ? NULL : o->addr, NULL, 0);
		log_info("%s: milter=%s recipient added to=<%s>", s->qid, o->who, o->addr);
		dest_list_free(&d);
		addr_free(&a);
	}
}

/* The message is accepted but not queued (DISCARD, or no recipient left). */
static void
eom_discard(session_t *s, const char *why, bool in_loop)
{
	char line[128];
	log_info("%s: discarded session=%s client=%s from=<%s> (%s)", s->qid, s->id, s->ip,
	    s->env->sender, why);
	snprintf(line, sizeof line, "250 2.0.0 Ok: queued as %s", s->qid);
	reply(s, line);
	s->state = ST_READY;
	txn_reset(s);
	if (in_loop) {
		/* called from session_process(): it goes on by itself */
		conn_read_pause(s->conn, false);
		conn_set_deadline(s->conn, CFG(s)->timeout_command * 1000u);
		return;
	}
	session_resume(s);
}

static void
filter_eom_done(void *arg, const filter_verdict_t *v)
{
	session_t *s = arg;
	if (v->action == FILTER_REJECT || v->action == FILTER_TEMPFAIL) {
		log_info("%s: reject cmd=%s reply=\"%s\" client=%s milter=%s", s->qid, s->fcmd, v->reply,
		    s->ip, v->who ? v->who : "");
		reply(s, v->reply);
		s->state = ST_READY;
		txn_reset(s);
		session_resume(s);
		return;
	}
	if (v->action == FILTER_DISCARD || s->fdiscard) {
		eom_discard(s, v->who ? v->who : "milter discard", false);
		return;
	}
	apply_env_ops(s, v);
	if (s->env->nrcpt == 0) {
		eom_discard(s, "the milters deleted every recipient", false);
		return;
	}
	if (v->quarantine) {
		/* accepted and held (tern queue release); the reason stays with
		 * each recipient, where `tern queue show` prints it */
		s->env->flags |= ENV_HELD;
		for (size_t i = 0; i < s->env->nrcpt; i++) {
			xfree(s->env->rcpt[i].reply);
			s->env->rcpt[i].reply = xasprintf("quarantined: %s", v->quarantine);
		}
		log_info("%s: quarantined (held) reason=\"%s\" session=%s", s->qid, v->quarantine, s->id);
	}
	/* the queue file, written once, with the milters' changes */
	s->qm = queue_begin(T(s)->queue, s->env);
	queue_write(s->qm, v->content, v->content_len);
	buf_free(&s->fcontent);
	qmsg_t *qm = s->qm;
	s->busy++;
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
	if (s->filter) {
		hook_helo(s);
		return;
	}
	helo_reply(s);
}

static void
helo_reply(session_t *s)
{
	s->state = ST_READY;
	const config_t *c = CFG(s);
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
	if (s->tls && !s->auth_user && server_auth_db(s->srv))
		conn_printf(s->conn, "250-AUTH PLAIN LOGIN\r\n");
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
static bool
spool_has_room(session_t *s, uint64_t need)
{
	const config_t *c = CFG(s);
	if (queue_space_ok(c->spool_dir, need, c->queue_min_free) == 0 || errno != ENOSPC)
		return true;
	log_warn("%s: spool %s is short of space (need %llu + reserve %llu octets): 452 4.3.1",
	    s->id, c->spool_dir, (unsigned long long)need, (unsigned long long)c->queue_min_free);
	return false;
}

#define NO_ROOM_REPLY "452 4.3.1 Insufficient system storage; try again later"

static void
cmd_mail(session_t *s, const char *a, size_t n)
{
	const char *err;
	if (!prefix_ci(a, n, "FROM:")) {
		reply_error(s, "MAIL", "501 5.5.4 Syntax: MAIL FROM:<address>", true);
		return;
	}
	if ((s->mode == LISTEN_SUBMISSION || s->mode == LISTEN_SMTPS) && !s->auth_user) {
		/* RFC 6409 §4.3, RFC 4954 §6 */
		reply_error(s, "MAIL", "530 5.7.0 Error: authentication required", true);
		return;
	}
	if (dnsbl_refuse(s, "MAIL", "connect"))
		return;
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
	if (!spool_has_room(s, m.size)) {
		mail_args_free(&m);
		reply_error(s, "MAIL", NO_ROOM_REPLY, false);
		return;
	}
	if (s->auth_user && !auth_sender_ok(server_sender_login(s->srv), s->auth_user, m.from.str)) {
		log_info("%s: reject cmd=MAIL reply=\"553 5.7.1 Error: sender address not owned by the authenticated user\" client=%s user=%s from=<%s>",
		    s->id, s->ip, s->auth_user, m.from.str);
		reply(s, "553 5.7.1 Error: sender address not owned by the authenticated user");
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
	if (s->filter) {
		hook_mail(s, a + 5, n - 5, &m, sender);
		return;
	}
	mail_accept(s, &m, sender);
}

/* MAIL passed every check: the transaction starts. Takes *m. */
static void
mail_accept(session_t *s, mail_args_t *mp, const char *sender)
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
	if (!s->dnsbl_done && dnsbl_applies(s, "rcpt")) {
		/* looked up once, at the first RCPT; the command runs again after */
		s->dnsbl_cmd = xstrndup(a, n);
		s->dnsbl_cmdlen = n;
		s->dnsbl_state = s->state;
		session_pause(s);
		s->dnsbl = dnsbl_check(T(s)->loop, c, conn_peer_addr(s->conn), s->id, dnsbl_rcpt_done, s);
		return;
	}
	if (dnsbl_refuse(s, "RCPT", "rcpt"))
		return;
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
	if (s->filter) {
		hook_rcpt(s, a + 3, n - 3, &r, &d);
		return;
	}
	rcpt_accept(s, &r, &d);
}

/* RCPT passed every check: its addresses join the envelope. Takes *rp, *dp. */
static void
rcpt_accept(session_t *s, rcpt_args_t *rp, dest_list_t *dp)
{
	rcpt_args_t r = *rp;
	dest_list_t d = *dp;
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
	if (!spool_has_room(s, s->mail.size)) {
		reply_error(s, "DATA", NO_ROOM_REPLY, false);
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
	if (!s->bdat_discard && !s->bdat_mode && !spool_has_room(s, s->mail.size)) {
		/* the chunk is read and dropped; its reply says why */
		s->bdat_discard = true;
		s->bdat_no_room = true;
	}
	if (!s->bdat_discard && !s->bdat_mode) {
		s->bdat_mode = true;
		content_begin(s, true);
	}
}

static void
bdat_chunk_done(session_t *s)
{
	conn_set_deadline(s->conn, CFG(s)->timeout_command * 1000u);
	if (s->bdat_discard && s->bdat_no_room) {
		s->bdat_discard = false;
		s->bdat_no_room = false;
		s->state = s->bdat_before;
		reply_error(s, "BDAT", NO_ROOM_REPLY, false);
		return;
	}
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
	reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
}

/* RFC 3207 */
static void
cmd_starttls(session_t *s, const char *a, size_t n)
{
	SSL_CTX *ctx = server_tls_ctx(s->srv);
	if (s->tls) {
		reply_error(s, "STARTTLS", "503 5.5.1 Error: TLS already active", true);
		return;
	}
	if (!ctx || s->local) {
		reply_error(s, "STARTTLS", "502 5.5.1 Error: STARTTLS not available", true);
		return;
	}
	if (n > 0) {
		reply_error(s, "STARTTLS", "501 5.5.4 Syntax: STARTTLS (no parameters)", true);
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	/* §4.2: forget everything learned before TLS */
	txn_reset(s);
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

/* ---- AUTH (RFC 4954) ---- */

static void sess_auth_check(session_t *s, char *user, char *pass);

static const char *
mech_name(session_t *s)
{
	return s->mech == MECH_PLAIN ? "PLAIN" : "LOGIN";
}

static void
sess_auth_end(session_t *s)
{
	xfree(s->auth_pending);
	s->auth_pending = NULL;
	s->auth_step = 0;
	if (s->state == ST_AUTH || s->state == ST_WAIT)
		s->state = ST_READY;
}

static void
sess_auth_timer_closed(uv_handle_t *h)
{
	xfree(h);
}

static void
sess_auth_timer_stop(session_t *s)
{
	if (!s->auth_timer)
		return;
	uv_timer_stop(s->auth_timer);
	uv_close((uv_handle_t *)s->auth_timer, sess_auth_timer_closed);
	s->auth_timer = NULL;
}

/* the failure delay is over: say 535, or 421 after too many */
static void
sess_auth_fail_reply(session_t *s)
{
	s->state = ST_READY;
	reply_error(s, "AUTH", "535 5.7.8 Error: authentication credentials invalid", false);
	if (s->auth_failures >= CFG(s)->auth_max_failures) {
		reply(s, "421 4.7.0 Error: too many failed authentications; closing connection");
		log_info("%s: too many failed authentications client=%s failures=%u", s->id, s->ip,
		    s->auth_failures);
		session_close(s);
		conn_flush(s->conn);
		return;
	}
	session_resume(s);
}

static void
on_auth_timer(uv_timer_t *t)
{
	session_t *s = t->data;
	sess_auth_timer_stop(s);
	sess_auth_fail_reply(s);
}

static void
sess_auth_verified(void *arg, bool ok)
{
	session_t *s = arg;
	if (work_returned(s))
		return;
	const char *user = s->auth_pending;
	if (ok) {
		s->auth_user = xstrdup(user);
		s->relay_ok = true;
		filter_macro(s->filter, "{auth_type}", mech_name(s));
		filter_macro(s->filter, "{auth_authen}", user);
		log_info("%s: auth ok user=%s method=%s client=%s", s->id, user, mech_name(s), s->ip);
		sess_auth_end(s);
		reply(s, "235 2.7.0 Authentication successful");
		session_resume(s);
		return;
	}
	s->auth_failures++;
	/* no user name here: a password typed into the name field would be logged */
	log_info("%s: auth failed method=%s client=%s failures=%u", s->id, mech_name(s), s->ip,
	    s->auth_failures);
	sess_auth_end(s);
	s->state = ST_WAIT;
	/* slow down guessing: the delay doubles with each failure */
	uint64_t ms = (uint64_t)CFG(s)->auth_failure_delay * 1000u;
	for (unsigned i = 1; i < s->auth_failures && ms < AUTH_DELAY_MAX_MS; i++)
		ms *= 2;
	if (ms > AUTH_DELAY_MAX_MS)
		ms = AUTH_DELAY_MAX_MS;
	if (ms == 0) {
		sess_auth_fail_reply(s);
		return;
	}
	s->auth_timer = xmalloc(sizeof *s->auth_timer);
	uv_timer_init(T(s)->loop, s->auth_timer);
	s->auth_timer->data = s;
	uv_timer_start(s->auth_timer, on_auth_timer, ms, 0);
}

/* user and pass are the caller's allocations; pass is wiped here */
static void
sess_auth_check(session_t *s, char *user, char *pass)
{
	const passwd_db_t *db = server_auth_db(s->srv);
	const char *hash = db && passwd_db_user_ok(user) ? passwd_db_hash(db, user) : NULL;
	xfree(s->auth_pending);
	s->auth_pending = user;
	session_pause(s);
	s->busy++;
	auth_verify(T(s)->loop, hash, pass, sess_auth_verified, s);
	explicit_bzero(pass, strlen(pass));
	xfree(pass);
}

/* one SASL response line (or the initial response) */
static void
sess_auth_response(session_t *s, const char *r, size_t n)
{
	const char *why;
	if (n == 1 && r[0] == '*') {
		/* RFC 4954 §4: the client cancels */
		sess_auth_end(s);
		reply_error(s, "AUTH", "501 5.0.0 Error: authentication cancelled", true);
		return;
	}
	if (n == 1 && r[0] == '=')
		n = 0; /* an empty initial response */
	if (s->mech == MECH_PLAIN) {
		char *user, *pass;
		if (auth_plain_decode(r, n, &user, &pass, &why) < 0) {
			sess_auth_end(s);
			reply_error(s, "AUTH", why, true);
			return;
		}
		sess_auth_check(s, user, pass);
		return;
	}
	char *v;
	if (auth_login_decode(r, n, &v, &why) < 0) {
		sess_auth_end(s);
		reply_error(s, "AUTH", why, true);
		return;
	}
	if (s->auth_step == 0) {
		xfree(s->auth_pending);
		s->auth_pending = v;
		s->auth_step = 1;
		s->state = ST_AUTH;
		reply(s, "334 UGFzc3dvcmQ6"); /* "Password:" */
		return;
	}
	char *user = s->auth_pending;
	s->auth_pending = NULL;
	sess_auth_check(s, user, v);
}

static void
cmd_auth(session_t *s, const char *a, size_t n)
{
	if (!server_auth_db(s->srv) || s->local) {
		reply_error(s, "AUTH", "502 5.5.1 Error: authentication not enabled", true);
		return;
	}
	if (!s->tls) {
		/* RFC 4954 §6 */
		reply_error(s, "AUTH", "538 5.7.11 Error: encryption required for authentication", true);
		return;
	}
	if (s->auth_user) {
		reply_error(s, "AUTH", "503 5.5.1 Error: already authenticated", true);
		return;
	}
	size_t ml = 0;
	while (ml < n && a[ml] != ' ')
		ml++;
	const char *ir = ml < n ? a + ml + 1 : NULL;
	size_t irn = ir ? n - ml - 1 : 0;
	if (ml == 5 && strncasecmp(a, "PLAIN", 5) == 0) {
		s->mech = MECH_PLAIN;
	} else if (ml == 5 && strncasecmp(a, "LOGIN", 5) == 0) {
		s->mech = MECH_LOGIN;
	} else {
		reply_error(s, "AUTH", "504 5.5.4 Error: unrecognized authentication mechanism", true);
		return;
	}
	s->auth_step = 0;
	if (ir) {
		sess_auth_response(s, ir, irn);
		return;
	}
	s->state = ST_AUTH;
	/* RFC 4616: PLAIN's challenge is empty; LOGIN asks "Username:" */
	reply(s, s->mech == MECH_PLAIN ? "334 " : "334 VXNlcm5hbWU6");
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
	{"STARTTLS", IN(ST_READY), NULL, cmd_starttls},
	/* RFC 4954 §4: not during a transaction */
	{"AUTH", IN(ST_READY), NULL, cmd_auth},
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
	/* only a word is logged as the verb: anything else might be a
	 * base64 credential sent out of turn */
	char verb[16] = "-";
	bool word = vl > 0 && vl <= 12;
	for (size_t i = 0; i < vl && word; i++)
		word = (line[i] >= 'A' && line[i] <= 'Z') || (line[i] >= 'a' && line[i] <= 'z');
	if (word)
		snprintf(verb, sizeof verb, "%.*s", (int)vl, line);
	reply_error(s, verb, "500 5.5.2 Error: command not recognized", true);
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
		if (s->state == ST_AUTH)
			sess_auth_end(s);
		reply_error(s, "-", "500 5.5.2 Error: bare LF, bare CR or NUL in command line; lines must end with CRLF", true);
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
			size_t used = dataread_feed(&s->dr, in->data, in->len, content_out, s, &done);
			conn_consume(s->conn, used);
			if (!done)
				return;
			conn_set_deadline(s->conn, c->timeout_command * 1000u);
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
			if (in->len >= maxline) {
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
		if (linelen > maxline) {
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
	txn_reset(s);
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

static void
greet(session_t *s)
{
	conn_printf(s->conn, "220 %s ESMTP tern\r\n", CFG(s)->hostname);
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
	if (work_returned(s))
		return;
	const config_t *c = CFG(s);
	/* a name the address syntax takes unquoted (RFC 5321 §4.1.2 Dot-string) */
	bool ok = found && name[0] && name[0] != '.';
	for (size_t i = 0; ok && name[i]; i++)
		ok = strchr("()<>[]:;@\\,\" ", name[i]) == NULL && (unsigned char)name[i] > ' ' &&
		    (unsigned char)name[i] < 0x7f;
	if (!ok) {
		log_warn("%s: local uid %u has no usable user name; refused", s->id, (unsigned)s->uid);
		reply(s, "554 5.7.1 Error: cannot identify the local user");
		session_close(s);
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
	greet(s);
	session_resume(s);
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
			hook_connect(s); /* greets when the milters are done */
			break;
		}
		if (s->mode == LISTEN_SMTPS)
			greet(s); /* RFC 8314 §3.3: the greeting comes under TLS */
		if (s->shutdown) {
			reply(s, "421 4.3.2 Service shutting down");
			session_close(s);
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
		reply(s, "421 4.4.2 Error: timeout exceeded; closing connection");
		session_close(s);
		break;
	case CONN_EV_CLOSED:
		if (conn_tls_error(c)[0])
			log_info("tls failed session=%s client=%s: %s", s->id, s->ip, conn_tls_error(c));
		log_info("disconnect session=%s client=%s commands=%u messages=%u errors=%u%s%s", s->id, s->ip,
		    s->ncommands, s->nmessages, s->errors, err ? " error=" : "", err ? uv_strerror(err) : "");
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
	conn_set_cb(conn, session_event, s);
	conn_set_deadline(conn, c->timeout_command * 1000u);
	log_info("connect session=%s client=%s port=%d%s", s->id, s->ip, s->port,
	    mode == LISTEN_SMTP ? "" : mode == LISTEN_SUBMISSION ? " mode=submission"
	    : mode == LISTEN_SMTPS ? " mode=smtps" : " mode=local");
	if (mode == LISTEN_LOCAL) {
		/* the peer's uid from the kernel; its name from the pool (NSS may be slow) */
		s->local = true;
		s->relay_ok = true;
		struct pwlookup *p = xcalloc(1, sizeof *p);
		if (conn_peer_cred(conn, &p->uid, NULL, NULL) < 0) {
			xfree(p);
			log_warn("%s: no peer credentials on the local socket; refused", s->id);
			reply(s, "554 5.7.1 Error: cannot identify the local user");
			s->state = ST_CLOSING;
			conn_close(conn);
			return s;
		}
		s->uid = p->uid;
		p->s = s;
		p->w.data = p;
		session_pause(s);
		s->busy++;
		uv_queue_work(T(s)->loop, &p->w, pw_work, pw_done);
		return s;
	}
	if (mode == LISTEN_SMTPS) {
		/* RFC 8314 §3.3: TLS from the first byte */
		s->state = ST_TLS;
		if (conn_starttls(conn, server_tls_ctx(srv), true, NULL) < 0) {
			log_err("%s: cannot start TLS: %s", s->id, conn_tls_error(conn));
			s->state = ST_CLOSING;
			conn_abort(conn, UV_EPROTO);
		}
		return s;
	}
	if (dnsbl_applies(s, "connect")) {
		session_pause(s); /* greets when the lists have answered (dnsbl_timeout at most) */
		s->dnsbl = dnsbl_check(T(s)->loop, c, conn_peer_addr(conn), s->id, dnsbl_connect_done, s);
		return s;
	}
	if (s->filter) {
		hook_connect(s); /* greets when the milters are done */
		return s;
	}
	greet(s);
	return s;
}

void
session_shutdown(session_t *s)
{
	s->shutdown = true;
	if (s->state == ST_COMMIT || s->state == ST_CLOSING || s->state == ST_WAIT || s->gone)
		return;
	if (s->state == ST_TLS) {
		/* mid-handshake: nothing can be said in clear any more */
		session_close(s);
		return;
	}
	reply(s, "421 4.3.2 Service shutting down");
	session_close(s);
	conn_flush(s->conn);
}
