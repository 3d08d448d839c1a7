/*
 * outcome.c - DELIVER: every error -> outcome rule (see outcome.h).
 *
 * The SMTP reply rules: 2xx success, 4xx temporary, 5xx permanent (RFC
 * 5321 §4.2.1), with these refinements:
 *  - a connect failure or an error while sending the content: temporary.
 *  - 421 anywhere: the server is closing the channel: temporary.
 *  - RCPT 552: RFC 5321 §4.5.3.1.10 says old servers use it for "too many
 *    recipients", which must be treated as 452: temporary.
 *  - a reply of a class the command cannot have (354 to MAIL, 250 to DATA,
 *    anything but 220 as a greeting) is a protocol error: temporary, the
 *    next attempt may meet a saner server.
 *  - STARTTLS refused (RFC 3207 §4): it costs only TLS; a destination
 *    whose policy requires TLS is tried again later.
 */
#include "deliver/outcome.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/xalloc.h"

enum outcome_kind
outcome_smtp_kind(enum outcome_stage stage, int code)
{
	int cls = code / 100;
	if (stage == OUTCOME_STAGE_CONNECT || stage == OUTCOME_STAGE_CONTENT)
		return OUTCOME_TEMPFAIL;
	if (code == 421)
		return OUTCOME_TEMPFAIL;
	switch (stage) {
	case OUTCOME_STAGE_GREETING:
		if (code == 220)
			return OUTCOME_OK;
		return cls == 5 ? OUTCOME_PERMFAIL : OUTCOME_TEMPFAIL;
	case OUTCOME_STAGE_DATA:
		if (code == 354)
			return OUTCOME_OK;
		return cls == 5 ? OUTCOME_PERMFAIL : OUTCOME_TEMPFAIL;
	case OUTCOME_STAGE_RCPT:
		if (code == 552)
			return OUTCOME_TEMPFAIL;
		break;
	case OUTCOME_STAGE_STARTTLS:
		return code == 220 ? OUTCOME_OK : OUTCOME_TEMPFAIL;
	default:
		break;
	}
	switch (cls) {
	case 2:
		return OUTCOME_OK;
	case 5:
		return OUTCOME_PERMFAIL;
	default:
		return OUTCOME_TEMPFAIL;
	}
}

static void
set(outcome_t *oc, enum outcome_kind kind, const char *text)
{
	oc->kind = kind;
	snprintf(oc->text, sizeof oc->text, "%s", text);
}

void
outcome_dns(outcome_t *oc, const char *reply, const char *detail, const char *host,
    bool is_relay)
{
	char t[OUTCOME_TEXT_MAX];
	if (!reply || !reply[0])
		reply = "451 4.4.3 DNS failure";
	/* a broken configured next hop is our problem, not the recipient's:
	 * only the recipient domain's own DNS answer may bounce (RFC 7505,
	 * RFC 5321 §5.1) */
	oc->kind = reply[0] == '5' && !is_relay ? OUTCOME_PERMFAIL : OUTCOME_TEMPFAIL;
	if (oc->kind == OUTCOME_TEMPFAIL && reply[0] != '4')
		snprintf(t, sizeof t, "451 4.4.3 next hop %s: %s", host, reply);
	else
		snprintf(t, sizeof t, "%s", reply);
	/* the recipients' reply, and so the DSN, says what DNS said */
	if (detail && detail[0])
		snprintf(oc->text, sizeof oc->text, "%.1600s (%.300s)", t, detail);
	else
		snprintf(oc->text, sizeof oc->text, "%s", t);
}

void
outcome_capability(outcome_t *oc, const char *text)
{
	/* RFC 1870 §6, RFC 6531 §3.4, RFC 3030 §3: the message cannot go
	 * there as it is; another attempt would meet the same server */
	set(oc, OUTCOME_PERMFAIL, text);
}

void
outcome_next_hop(outcome_t *oc, const char *text)
{
	set(oc, OUTCOME_TEMPFAIL, text);
}

void
outcome_session(outcome_t *oc, const char *text)
{
	set(oc, OUTCOME_TEMPFAIL, text);
}

void
outcome_requiretls(outcome_t *oc, const char *text)
{
	if (text[0] == '5') {
		set(oc, OUTCOME_PERMFAIL, text);
		return;
	}
	/* "4xx 4.7.y rest": TLS that was required and not had */
	if (text[0] == '4' && strlen(text) > 8 && strncmp(text + 3, " 4.7.", 5) == 0) {
		const char *rest = strchr(text + 9, ' ');
		snprintf(oc->text, sizeof oc->text, "550 5.7.10 REQUIRETLS:%s", rest ? rest : "");
		oc->kind = OUTCOME_PERMFAIL;
		return;
	}
	set(oc, OUTCOME_TEMPFAIL, text);
}

const char *
outcome_maildir_code(int e)
{
	/* RFC 3463: 4.2.2 mailbox full; 4.3.0 other mail system problem */
	return (e == ENOSPC || e == EDQUOT) ? "4.2.2" : "4.3.0";
}

void
outcome_maildir_error(outcome_t *oc, const char *text)
{
	/* every local failure is temporary: the recipient is deferred */
	set(oc, OUTCOME_TEMPFAIL, text);
}

void
outcome_maildir_ok(outcome_t *oc, const char *maildir)
{
	/* the path is for the administrator (log, queue listing); a DSN says
	 * only "delivered to mailbox" (bounce/dsn.c) */
	oc->kind = OUTCOME_OK;
	snprintf(oc->text, sizeof oc->text, "delivered to maildir %s", maildir);
}

void
outcome_queue_read(outcome_t *oc, int e, bool remote)
{
	oc->kind = OUTCOME_TEMPFAIL;
	if (remote)
		snprintf(oc->text, sizeof oc->text, "451 4.3.0 cannot open the queued message: %s",
		    strerror(e));
	else
		snprintf(oc->text, sizeof oc->text, "4.3.0 cannot open queue file: %s", strerror(e));
}

void
outcome_bad_domain(outcome_t *oc, const char *err)
{
	if (err)
		set(oc, OUTCOME_TEMPFAIL, err);
	else
		set(oc, OUTCOME_PERMFAIL, "550 5.1.3 recipient address has no domain");
}

void
outcome_shutdown(outcome_t *oc)
{
	set(oc, OUTCOME_TEMPFAIL, "451 4.3.2 shutting down");
}

void
outcome_no_mailbox(outcome_t *oc)
{
	set(oc, OUTCOME_PERMFAIL, "550 5.1.1 mailbox no longer exists");
}

void
outcome_expired(outcome_t *oc, unsigned lifetime, const char *last_reply)
{
	oc->kind = OUTCOME_PERMFAIL;
	snprintf(oc->text, sizeof oc->text, "4.4.7 message expired after %u seconds in the queue: %s",
	    lifetime, last_reply ? last_reply : "no attempt succeeded");
}

void
outcome_apply(const outcome_t *oc, env_rcpt_t *r, const char *relay)
{
	r->status = oc->kind == OUTCOME_OK ? RCPT_SENT
	    : oc->kind == OUTCOME_PERMFAIL ? RCPT_FAILED
					   : RCPT_PENDING;
	xfree(r->reply);
	r->reply = xstrdup(oc->text);
	if (relay) {
		xfree(r->relay);
		r->relay = xstrdup(relay);
	}
}
