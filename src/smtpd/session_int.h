/*
 * session_int.h - what the session files share, internal to smtpd/.
 *
 * One SMTP session (session_t) is handled by four files, one concern each:
 *  - session.c: life cycle, I/O events, input, the command table and
 *    dispatch, the greeting, HELO/EHLO, MAIL/RCPT, the simple verbs;
 *  - session_data.c: DATA and BDAT, the content (Received, header fields
 *    added for local mail), end of message and the queue commit;
 *  - session_filter.c: the milter stages (connect, HELO, MAIL, RCPT, end
 *    of message) and the milters' envelope changes;
 *  - session_auth.c: AUTH (RFC 4954).
 * Only these four include this header; server.c and the rest of tern see
 * session.h. Names shared between the files carry the sess_ prefix.
 * Guarantees: the state machine (enum state) and the session's fields
 * mean the same in every file; the contract of each function is at its
 * definition.
 * Must not: be included outside src/smtpd/session*.c.
 */
#ifndef TERN_SESSION_INT_H
#define TERN_SESSION_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/envelope.h"
#include "common/qid.h"
#include "deliver/router.h"
#include "filter/dnsbl.h"
#include "filter/filter.h"
#include "lib/buf.h"
#include "lib/conn.h"
#include "mailauth/mailauth.h"
#include "queue/queue.h"
#include "smtpd/dataread.h"
#include "smtpd/header.h"
#include "smtpd/server.h"
#include "smtpd/session.h"

#define NO_ROOM_REPLY "452 4.3.1 Insufficient system storage; try again later"

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
	struct dvauth_req *auth_req; /* auth_backend dovecot: the exchange in progress */

	/* the local socket (sendmail) */
	bool local;
	bool trusted;           /* may choose the envelope sender */
	uid_t uid;
	char *local_user;
	char *local_sender;     /* user@domain */
	bool hdr_scan;          /* collecting the header section of the content */
	/* counting Received: fields in the header section (RFC 5321 §6.3) */
	hdr_hops_t hops;        /* Received: fields counted as the content streams in */
	hdr_tlsreq_t tlsreq;    /* a "TLS-Required: No" field (RFC 8689 §3), seen as it streams in */
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

	/* rate limits (src/filter/ratelimit.h) */
	bool rl_exempt;         /* no rate limit applies (rl_exempt: client_limit_exceptions, local) */
	struct rl_req *rlreq;   /* a rate-limit check waiting for Redis, else NULL */
	char *rlargs;           /* the MAIL/RCPT parameters while it waits */
	size_t rlargs_n;

	/* mail authentication (src/mailauth/mailauth.h), per transaction */
	mailauth_t *mauth;      /* inbound checks of this message, or NULL */
	bool mfeed;             /* the content (after tern's Received) goes to mauth */
	bool sign;              /* DKIM-sign the message before the queue commit */
};

/* Is the content held in memory (s->fcontent) until the end of the
 * message, because milters, header/body checks, the mail-authentication
 * checks or DKIM signing need it complete (the queue file is then written
 * once, with their changes), rather than streamed into the queue file? */
static inline bool
sess_buffered(const session_t *s)
{
	return s->filter || s->mauth || s->sign;
}

static inline smtpd_ctx_t *
T(session_t *s)
{
	return server_ctx(s->srv);
}

static inline const config_t *
CFG(session_t *s)
{
	return T(s)->cfg;
}

/* session.c */
void sess_reply(session_t *s, const char *line);
/* An error reply: logged, and counted towards max_errors. */
void sess_reply_error(session_t *s, const char *cmd, const char *line, bool count);
/* a refused command in the metrics (each "reject cmd=" log line calls it) */
void sess_count_reject(const char *cmd, const char *line);
void sess_close(session_t *s);
void sess_txn_reset(session_t *s);
bool sess_work_returned(session_t *s);
void sess_resume(session_t *s);
void sess_pause(session_t *s);
const char *sess_proto_word(session_t *s);
const char *sess_user_note(session_t *s, char *buf, size_t n);
bool sess_spool_has_room(session_t *s, uint64_t need);
void sess_greet(session_t *s);
void sess_helo_reply(session_t *s);
void sess_mail_accept(session_t *s, mail_args_t *m, const char *sender);
void sess_rcpt_accept(session_t *s, rcpt_args_t *r, dest_list_t *d);
bool sess_env_has_rcpt(const envelope_t *e, const char *addr);

/* session_data.c */
void sess_cmd_data(session_t *s, const char *a, size_t n);
void sess_cmd_bdat(session_t *s, const char *a, size_t n);
void sess_bdat_chunk_done(session_t *s);
void sess_content_out(void *arg, const char *p, size_t n);
void sess_content_end(session_t *s, const char *cmd);
void sess_commit_done(void *arg, int err, envelope_t *env);
void sess_content_final(session_t *s, const char *content, size_t len);
void sess_hold(session_t *s, const char *prefix, const char *why);
void sess_mailauth_begin(session_t *s);

/* session_filter.c */
void sess_hook_connect(session_t *s);
void sess_hook_helo(session_t *s);
void sess_hook_mail(session_t *s, const char *a, size_t n, mail_args_t *m, const char *sender);
void sess_hook_rcpt(session_t *s, const char *a, size_t n, rcpt_args_t *r, dest_list_t *d);
void sess_eom_discard(session_t *s, const char *why, bool in_loop);
void sess_filter_eom_done(void *arg, const filter_verdict_t *v);

/* session_auth.c */
void sess_cmd_auth(session_t *s, const char *a, size_t n);
void sess_auth_response(session_t *s, const char *r, size_t n);
void sess_auth_end(session_t *s);
void sess_auth_timer_stop(session_t *s);
void sess_auth_ehlo(session_t *s);

#endif
