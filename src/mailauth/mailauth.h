/*
 * mailauth.h - MAILAUTH: the mail-authentication stage of one message, as
 * smtpd calls it (docs/flow.md: between ACCEPT and PERSIST; the checks
 * themselves are spf.h, dkim.h, dmarc.h, arc.h; the header is authres.h).
 *
 * Inbound (smtp listeners, clients neither in mynetworks nor
 * authenticated, each check switched on in the configuration):
 *   mailauth_mail()  at MAIL: starts SPF for the MAIL FROM identity (and
 *                    the HELO identity) in the background;
 *   mailauth_data()  every octet of the content as it arrives (after
 *                    tern's Received field): DKIM body hashes are computed
 *                    as DATA streams in;
 *   mailauth_eom()   at the end of the content: waits for SPF, looks up
 *                    DKIM keys and the DMARC policy, and gives a verdict:
 *                    the Authentication-Results field to put on top (RFC
 *                    8601), and what to do (go on, refuse 550 5.7.1 for a
 *                    p=reject DMARC failure when enforcement is on, 451
 *                    4.7.24 for an SPF temperror when configured, hold for
 *                    quarantine ...).
 * Outbound: mailauth_sign() adds DKIM-Signature fields for the sender's
 * domain to mail from mynetworks, authenticated users and the local socket.
 *
 * Guarantees: the eom callback runs exactly once, on the loop, never from
 * inside the call, unless mailauth_free() came first; the callback may
 * call mailauth_free() (smtpd ends the transaction there); every DNS wait
 * has a timeout and a per-message query budget; the verdict lives during
 * the callback only. mailauth_new() copies what it keeps of the config
 * and the client (a SIGHUP reload frees the old config_t, and the
 * client's connection may close, while a message is being checked).
 * Must not: block; touch the queue (smtpd writes the queue file once).
 */
#ifndef TERN_MAILAUTH_H
#define TERN_MAILAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>

#include "common/config.h"
#include "lib/buf.h"

typedef struct mailauth mailauth_t;

typedef struct mailauth_client {
	const struct sockaddr *sa; /* the client's address */
	const char *ip;            /* as text */
	const char *helo;          /* NULL: none given */
	const char *sid;           /* session id, for the log */
	const char *qid;           /* queue id, for the log */
	uv_loop_t *loop;           /* the loop the checks run on; NULL: uv_default_loop() */
} mailauth_client_t;

enum mailauth_action {
	MAILAUTH_CONTINUE, /* accept (with the A-R field) */
	MAILAUTH_REJECT,   /* reply 5xx */
	MAILAUTH_TEMPFAIL, /* reply 4xx */
	MAILAUTH_HOLD,     /* accept and hold (DMARC quarantine, configured so) */
};

typedef struct mailauth_verdict {
	enum mailauth_action action;
	const char *reply;  /* REJECT/TEMPFAIL: the whole SMTP reply line */
	const char *header; /* "Authentication-Results: ...\r\n" (folded) to put on top */
	const char *hold_reason; /* HOLD: for the queue and the log */
} mailauth_verdict_t;

typedef void (*mailauth_cb)(void *arg, const mailauth_verdict_t *v);

/* Does any inbound check apply to this kind of client on this listener?
 * (false: smtpd need not call the rest) */
bool mailauth_inbound_wanted(const config_t *c, bool smtp_listener, bool trusted);

/* One message; NULL when nothing is to be checked. */
mailauth_t *mailauth_new(const config_t *c, const mailauth_client_t *cl);
void mailauth_mail(mailauth_t *m, const char *sender);
void mailauth_data(mailauth_t *m, const char *p, size_t n);
void mailauth_eom(mailauth_t *m, mailauth_cb cb, void *arg);
void mailauth_free(mailauth_t *m);

/* check-config, start and reload: the inbound keys are usable (the
 * psl_file loads; it is kept for the messages to come). 0, or -1 with the
 * reason in *err. */
int mailauth_config_check(const config_t *c, buf_t *err);
/* At exit, no message being checked: the resolver and the list go. */
void mailauth_shutdown(void);

/* DMARC aggregate reports (RFC 7489 section 7.2; mailauth/dmarc_report.h):
 * with dmarc_reports on, every message DMARC evaluated against a record
 * that asks for reports (rua=mailto:) is counted. mailauth_reports_flush()
 * ends the period: for each such domain and each of its mailto:
 * addresses that passed section 7.1's check (and whose size limit the
 * report fits), submit(arg, sender, rcpt, content, len) is called on the
 * loop, later, with the whole report message (the daemon queues it). */
typedef void (*mailauth_report_cb)(void *arg, const char *sender, const char *rcpt,
    const char *content, size_t len);
void mailauth_reports_flush(uv_loop_t *loop, const config_t *c, mailauth_report_cb submit,
    void *arg);
/* The period's counts as text (dmarc_report_save's format) appended to
 * *out, for the daemon to keep under the spool; false (nothing appended)
 * when nothing changed since the last call. On the loop. */
bool mailauth_reports_save(buf_t *out);
/* At start: the counts saved before (the period goes on from its
 * start). 0, or -1 with the reason in *err (the counts stay empty). */
int mailauth_reports_load(const char *data, size_t len, buf_t *err);
/* When the current period began. */
time_t mailauth_reports_begin(void);

/* RFC 8601 section 5: remove from the header section of content (in
 * place) every Authentication-Results field whose authserv-id is ours
 * (c's); returns how many. smtpd calls it before putting the verdict's
 * field on top. */
size_t mailauth_strip_ours(const config_t *c, buf_t *content);

/* Does signing apply (a key configured for the sender's domain)? */
bool mailauth_sign_wanted(const config_t *c, const char *sender);
/* The DKIM-Signature field(s) for content, appended to *out (to be put on
 * top; nothing appended when no key applies after all). Pure: safe on a
 * worker thread; smtpd holds c (config_ref) until the work returns, so
 * keys reachable from c stay alive. 0, or -1 with the reason in *err. */
int mailauth_sign(const config_t *c, const char *sender, const char *content, size_t len,
    buf_t *out, buf_t *err);

/* ARC sealing (RFC 8617 section 5.1) of mail tern forwards, with the
 * dkim_sign_keys key of arc_seal_domain: the ARC set for content, to put
 * on top, appended to *out. The ARC-Authentication-Results payload is our
 * own Authentication-Results field found on top of content (the inbound
 * verdict's, whose arc= result gives the seal's cv=); without it, nothing
 * is appended. Pure, like mailauth_sign. 0, or -1 with the reason in *err
 * (no key for arc_seal_domain, a chain of 50 sets already). */
bool mailauth_seal_wanted(const config_t *c);
int mailauth_seal(const config_t *c, const char *content, size_t len, buf_t *out, buf_t *err);

#endif
