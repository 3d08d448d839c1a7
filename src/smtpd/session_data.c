/*
 * session_data.c - ACCEPT: DATA and BDAT (RFC 5321 §4.1.1.4, RFC 3030):
 * the content of one SMTP session's transaction, from the command to the
 * queue commit.
 *
 * The content streams through dataread.c into the queue file (or, with
 * milters, into memory until the end of message), behind a Received
 * header field (RFC 5321 §4.4); local submissions get the header fields
 * RFC 5322 §3.6 requires and their program left out.
 * Guarantees:
 *  - Only <CRLF>.<CRLF> ends DATA; a BDAT chunk is always read whole, even
 *    when refused, so the byte stream stays in step (RFC 3030 §2).
 *  - A message that is too big, has a bare CR/LF, a NUL, an over-long line
 *    or too many Received: fields (RFC 5321 §6.3) is refused at its end,
 *    never queued.
 *  - 250 is sent only from queue_commit()'s callback (sess_commit_done),
 *    once the message is on stable storage; if the client left meanwhile
 *    the message is queued all the same and the session freed then.
 * Must not: block, reply before the commit returns, or keep config/tables
 * pointers across events.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/maillog.h"
#include "common/recent.h"
#include "lib/log.h"
#include "lib/clock.h"
#include "lib/xalloc.h"
#include "sched/sched.h"
#include "smtpd/session_int.h"

#define HDR_SCAN_MAX 65536     /* header section looked at for missing fields (local mail) */

static void
rfc5322_date(char *out, size_t n, time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* Content goes to the queue file, or, while milters, the mail-
 * authentication checks or DKIM signing need it whole first
 * (sess_buffered), into memory (bounded by message_size_limit: dataread
 * drops the excess); the queue file is then written once, with their
 * changes (sess_content_final). The DKIM body hashes of the inbound checks
 * are computed here, as the content streams in. */
static void
content_put(session_t *s, const void *p, size_t n)
{
	if (!sess_buffered(s)) {
		queue_write(s->qm, p, n);
		return;
	}
	buf_append(&s->fcontent, p, n);
	if (s->mfeed)
		mailauth_data(s->mauth, p, n);
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

void
sess_content_out(void *arg, const char *p, size_t n)
{
	session_t *s = arg;
	/* RFC 5321 §6.3: a message that has passed too many relays is in a loop */
	if (!s->hops.done)
		hdr_hops_feed(&s->hops, p, n);
	if (!s->tlsreq.done)
		hdr_tlsreq_feed(&s->tlsreq, p, n);
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
	hdr_tlsreq_init(&s->tlsreq);
	s->started_us = clock_wall_us();
	s->env->arrival_us = s->started_us;
	/* SRS senders of forwarded recipients (docs/srs.md), kept in the queue file */
	router_srs_envelope(c, T(s)->tables, s->env, s->started_us / 1000000);
	s->qm = sess_buffered(s) ? NULL : queue_begin(T(s)->queue, s->env);
	buf_reset(&s->fcontent);
	s->mfeed = false; /* tern's own Received field is not the sender's content */

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
	buf_printf(&h, "\r\n\tby %s (tern) with %s id %s", c->hostname, sess_proto_word(s), s->qid);
	if (s->nrcpt_cmds == 1 && s->first_rcpt)
		buf_printf(&h, "\r\n\tfor <%s>", s->first_rcpt);
	buf_printf(&h, "; %s\r\n", date);
	content_put(s, h.data, h.len);
	buf_free(&h);
	s->mfeed = s->mauth != NULL;
	dataread_init(&s->dr, raw, c->max_line_length, c->message_size_limit);
	/* the Received header counts against the size limit too */
	s->dr.size = 0;
	s->hdr_scan = s->local;
}

void
sess_commit_done(void *arg, int err, envelope_t *env)
{
	session_t *s = arg;
	char un[128], note[200];
	s->qm = NULL; /* freed by the queue */
	if (err == 0) {
		/* RFC 8689: what the message asks of outbound TLS */
		snprintf(note, sizeof note, "%s%s%s", sess_user_note(s, un, sizeof un),
		    (env->flags & ENV_REQUIRETLS) ? " requiretls=yes" : "",
		    (env->flags & ENV_TLS_OPTIONAL) ? " tls_required=no" : "");
		maillog_accepted(env->qid, s->id, s->ip, s->helo ? s->helo : "", env->sender,
		    env->body_len, env->nrcpt, sess_proto_word(s), note, s->gone);
	}
	if (s->gone) {
		/* client left while we synced: the message is queued all the same */
		if (err == 0)
			sched_submit(T(s)->sched, env, false);
		sess_work_returned(s);
		return;
	}
	s->busy--;
	if (err != 0) {
		char line[256];
		snprintf(line, sizeof line, "451 4.3.0 Error: queue file write error (%s)", strerror(err));
		log_err("%s: queue commit failed session=%s: %s", s->qid, s->id, strerror(err));
		sess_reply_error(s, "DATA", line, false);
	} else {
		char line[128];
		snprintf(line, sizeof line, "250 2.0.0 Ok: queued as %s", env->qid);
		sess_reply(s, line);
		s->nmessages++;
		sched_submit(T(s)->sched, env, false);
	}
	s->state = ST_READY;
	sess_txn_reset(s);
	sess_resume(s);
}

/* ---- the end of the message: mail authentication, milters, signing, commit ----
 *
 * In this order (docs/flow.md): the inbound mail-authentication verdict
 * (its Authentication-Results field on top, forged ones of ours removed:
 * RFC 8601 section 5), so that the milters see it; then the header/body
 * checks and the milters (filter.h); then the DKIM signature over the
 * final content, after every header change tern makes (issue #13: once,
 * before the commit, not per delivery attempt); then the queue file,
 * written once (sess_content_final). */

/* the milters, or straight on when there are none */
static void
after_mailauth(session_t *s)
{
	if (s->filter) {
		filter_eom(s->filter, s->fcontent.data ? s->fcontent.data : "", s->fcontent.len,
		    sess_filter_eom_done, s);
		return;
	}
	if (sess_buffered(s)) {
		sess_content_final(s, s->fcontent.data ? s->fcontent.data : "", s->fcontent.len);
		return;
	}
	qmsg_t *qm = s->qm;
	s->busy++;
	queue_commit(qm, sess_commit_done, s);
}

/* Hold the message (quarantine): the reason stays with each recipient,
 * where `tern queue show` and `tern queue list` print it. */
void
sess_hold(session_t *s, const char *prefix, const char *why)
{
	s->env->flags |= ENV_HELD;
	for (size_t i = 0; i < s->env->nrcpt; i++) {
		/* rcpt[0..nrcpt) are all live (env_del_rcpt moves the kept ones
		 * down); the analyzer loses track of the struct copy */
		// NOLINTNEXTLINE(clang-analyzer-unix.Malloc): not freed before, see above
		xfree(s->env->rcpt[i].reply);
		s->env->rcpt[i].reply = xasprintf("%s: %s", prefix, why);
	}
	log_info("%s: %s (held) reason=\"%s\" session=%s", s->qid, prefix, why, s->id);
}

static void
mailauth_eom_done(void *arg, const mailauth_verdict_t *v)
{
	session_t *s = arg;
	if (v->action == MAILAUTH_REJECT || v->action == MAILAUTH_TEMPFAIL) {
		log_info("%s: reject cmd=%s reply=\"%s\" client=%s from=<%s> (mail authentication)",
		    s->qid, s->fcmd, v->reply, s->ip, s->env->sender);
		recent_reject(s->ip, s->fcmd, v->reply);
		sess_count_reject(s->fcmd, v->reply);
		sess_reply(s, v->reply);
		s->state = ST_READY;
		sess_txn_reset(s); /* frees s->mauth: allowed from its callback */
		sess_resume(s);
		return;
	}
	if (v->action == MAILAUTH_HOLD)
		sess_hold(s, "quarantined", v->hold_reason ? v->hold_reason : "mail authentication");
	mailauth_strip_ours(CFG(s), &s->fcontent);
	if (v->header && v->header[0]) {
		/* on top, above tern's Received (RFC 8601 section 5) */
		buf_t nb = BUF_INIT;
		buf_reserve(&nb, strlen(v->header) + s->fcontent.len);
		buf_puts(&nb, v->header);
		buf_append(&nb, s->fcontent.data ? s->fcontent.data : "", s->fcontent.len);
		buf_free(&s->fcontent);
		s->fcontent = nb;
	}
	after_mailauth(s);
}

/* DKIM signing on the thread pool (an RSA-2048 signature costs about a
 * millisecond of CPU: not on the loop). The job owns a copy of the
 * content and holds the config (config_ref) until it is back. */
typedef struct sign_job {
	uv_work_t w;
	session_t *s;
	const config_t *c;
	char *sender;
	buf_t content;
	buf_t sig;
	buf_t err;
	int rc;
	bool sign, seal;  /* DKIM-sign; ARC-seal (forwarded inbound mail) */
	buf_t arc, arcerr;
	int arc_rc;
} sign_job_t;

static void
sign_work(uv_work_t *w)
{
	sign_job_t *j = w->data;
	if (j->sign)
		j->rc = mailauth_sign(j->c, j->sender, j->content.data ? j->content.data : "",
		    j->content.len, &j->sig, &j->err);
	if (j->seal)
		j->arc_rc = mailauth_seal(j->c, j->content.data ? j->content.data : "",
		    j->content.len, &j->arc, &j->arcerr);
}

static void write_commit(session_t *s, const char *content, size_t len);

static void
sign_done(uv_work_t *w, int status)
{
	sign_job_t *j = w->data;
	session_t *s = j->s;
	if (!sess_work_returned(s)) {
		if (status != 0 || j->rc < 0) {
			/* unsigned mail would fail DMARC at the receiver: defer */
			log_err("%s: dkim signing failed session=%s: %s", s->qid, s->id,
			    status != 0 ? "cancelled" : buf_cstr(&j->err));
			sess_reply(s, "451 4.3.0 Error: DKIM signing failed; try again later");
			s->state = ST_READY;
			sess_txn_reset(s);
			sess_resume(s);
		} else {
			if (j->sig.len)
				log_info("%s: dkim signed session=%s from=<%s>", s->qid, s->id, j->sender);
			/* an ARC seal that cannot be made: forwarded unsealed, as without ARC */
			if (j->seal && j->arc_rc < 0)
				log_err("%s: arc sealing failed session=%s: %s; forwarded unsealed", s->qid,
				    s->id, buf_cstr(&j->arcerr));
			else if (j->arc.len)
				log_info("%s: arc sealed session=%s d=%s", s->qid, s->id,
				    j->c->arc_seal_domain);
			buf_append(&j->sig, j->arc.data ? j->arc.data : "", j->arc.len);
			buf_append(&j->sig, j->content.data ? j->content.data : "", j->content.len);
			write_commit(s, j->sig.data, j->sig.len);
		}
	}
	/* else: the client left before its 250; nothing is queued */
	config_free((config_t *)j->c);
	xfree(j->sender);
	buf_free(&j->arc);
	buf_free(&j->arcerr);
	buf_free(&j->content);
	buf_free(&j->sig);
	buf_free(&j->err);
	xfree(j);
}

/* the queue file, written once, then committed (250 when it is durable) */
static void
write_commit(session_t *s, const char *content, size_t len)
{
	s->qm = queue_begin(T(s)->queue, s->env);
	queue_write(s->qm, content, len);
	buf_free(&s->fcontent);
	qmsg_t *qm = s->qm;
	s->busy++;
	queue_commit(qm, sess_commit_done, s);
}

/* The final content (after the milters' changes; valid during the call
 * only): signed when it is to be, then queued. */
void
sess_content_final(session_t *s, const char *content, size_t len)
{
	/* ARC: inbound mail from an untrusted smtp client that an alias or
	 * virtual entry forwards to a remote address gets our ARC set (RFC
	 * 8617 section 5.1; mailauth_seal); signed mail is not also sealed */
	bool seal = !s->sign && s->mode == LISTEN_SMTP && !(s->relay_ok || s->auth_user || s->local) &&
	    mailauth_seal_wanted(CFG(s)) && router_forwards(CFG(s), T(s)->tables, s->env);
	if (!s->sign && !seal) {
		write_commit(s, content, len);
		return;
	}
	sign_job_t *j = xcalloc(1, sizeof *j);
	j->sign = s->sign;
	j->seal = seal;
	j->w.data = j;
	j->s = s;
	j->c = config_ref(CFG(s));
	j->sender = xstrdup(s->env->sender ? s->env->sender : "");
	buf_append(&j->content, content, len);
	buf_free(&s->fcontent);
	s->busy++;
	if (uv_queue_work(T(s)->loop, &j->w, sign_work, sign_done) != 0) {
		/* cannot happen with a valid loop; answer as if it failed */
		sign_work(&j->w);
		sign_done(&j->w, 0);
	}
}

/* The content has ended (final dot, or BDAT LAST): check, then commit. */
void
sess_content_end(session_t *s, const char *cmd)
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
		sess_reply_error(s, cmd, bad, false);
		sess_txn_reset(s);
		return;
	}
	s->env->body = s->mail.body;
	/* RFC 8689 §3, §4.1: "TLS-Required: No" is honoured unless MAIL FROM
	 * said REQUIRETLS, which wins (the field is then ignored) */
	hdr_tlsreq_end(&s->tlsreq);
	if (s->tlsreq.no && !(s->env->flags & ENV_REQUIRETLS)) {
		s->env->flags |= ENV_TLS_OPTIONAL;
		queue_add_flags(s->qm, ENV_TLS_OPTIONAL); /* begun before the header was seen */
	}
	s->state = ST_COMMIT;
	conn_read_pause(s->conn, true);
	conn_set_timeout(s->conn, 0);
	if (s->filter && s->fdiscard) {
		sess_eom_discard(s, "milter discard before the end of the message", true);
		return;
	}
	s->fcmd = cmd;
	if (s->mauth) {
		s->mfeed = false;
		mailauth_eom(s->mauth, mailauth_eom_done, s);
		return;
	}
	after_mailauth(s);
}

/* At MAIL: which mail-authentication work this message gets. Inbound
 * checks for clients neither in mynetworks nor authenticated on smtp
 * listeners (mailauth_inbound_wanted decides with the configuration);
 * DKIM signing for mail from mynetworks, authenticated users and the
 * local socket (issue #13). */
void
sess_mailauth_begin(session_t *s)
{
	const config_t *c = CFG(s);
	bool trusted = s->relay_ok || s->auth_user || s->local;
	if (mailauth_inbound_wanted(c, s->mode == LISTEN_SMTP, trusted)) {
		if (!s->qid[0])
			qid_new(s->qid); /* the checks log with it */
		mailauth_client_t cl = {
		    .sa = conn_peer_addr(s->conn),
		    .ip = s->ip,
		    .helo = s->helo,
		    .sid = s->id,
		    .qid = s->qid,
		    .loop = T(s)->loop,
		};
		s->mauth = mailauth_new(c, &cl);
		if (s->mauth)
			mailauth_mail(s->mauth, s->env->sender ? s->env->sender : "");
	}
	s->sign = trusted && mailauth_sign_wanted(c, s->env->sender ? s->env->sender : "");
}

void
sess_cmd_data(session_t *s, const char *a, size_t n)
{
	if (n > 0) {
		sess_reply_error(s, "DATA", "501 5.5.4 Syntax: DATA (no arguments)", true);
		return;
	}
	if (s->bdat_mode) {
		sess_reply_error(s, "DATA", "503 5.5.1 Error: DATA after BDAT in the same transaction", true);
		return;
	}
	if (s->env->nrcpt == 0) {
		sess_reply_error(s, "DATA", "554 5.5.1 Error: no valid recipients", true);
		return;
	}
	if (!sess_spool_has_room(s, s->mail.size)) {
		sess_reply_error(s, "DATA", NO_ROOM_REPLY, false);
		return;
	}
	content_begin(s, false);
	s->state = ST_DATA;
	conn_set_timeout(s->conn, CFG(s)->timeout_data * 1000u);
	sess_reply(s, "354 2.0.0 End data with <CR><LF>.<CR><LF>");
}

/* RFC 3030 §2: BDAT <chunk-size> [LAST]. The chunk is always read, even
 * when the command is refused (bdat_discard), so the byte stream stays in
 * step; the refusal is the reply to the chunk. */
void
sess_cmd_bdat(session_t *s, const char *a, size_t n)
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
		sess_reply_error(s, "BDAT", "501 5.5.4 Syntax: BDAT chunk-size [LAST]; closing connection", true);
		sess_close(s);
		return;
	}
	s->bdat_left = size;
	s->bdat_last = last;
	s->bdat_before = s->state;
	s->bdat_discard = s->state != ST_RCPT;
	s->state = ST_BDAT;
	conn_set_timeout(s->conn, CFG(s)->timeout_data * 1000u);
	if (!s->bdat_discard && !s->bdat_mode && !sess_spool_has_room(s, s->mail.size)) {
		/* the chunk is read and dropped; its reply says why */
		s->bdat_discard = true;
		s->bdat_no_room = true;
	}
	if (!s->bdat_discard && !s->bdat_mode) {
		s->bdat_mode = true;
		content_begin(s, true);
	}
}

void
sess_bdat_chunk_done(session_t *s)
{
	conn_set_deadline(s->conn, CFG(s)->timeout_command * 1000u);
	if (s->bdat_discard && s->bdat_no_room) {
		s->bdat_discard = false;
		s->bdat_no_room = false;
		s->state = s->bdat_before;
		sess_reply_error(s, "BDAT", NO_ROOM_REPLY, false);
		return;
	}
	if (s->bdat_discard) {
		s->bdat_discard = false;
		s->state = s->bdat_before;
		sess_reply_error(s, "BDAT",
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
		sess_reply_error(s, "BDAT", line, false);
		sess_txn_reset(s);
		return;
	}
	if (!s->bdat_last) {
		char line[96];
		s->state = ST_RCPT;
		snprintf(line, sizeof line, "250 2.0.0 %llu octets received",
		    (unsigned long long)s->dr.size);
		sess_reply(s, line);
		return;
	}
	dataread_finish(&s->dr, sess_content_out, s);
	s->state = ST_RCPT;
	sess_content_end(s, "BDAT");
}
