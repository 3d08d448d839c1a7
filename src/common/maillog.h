/*
 * maillog.h - the mail log: one function per event on a message's way, so
 * each line's format is defined in one place (tests, docs/logging.md and
 * log analysers such as pflogsumm grep these lines; keep them stable).
 *
 *   accepted   "QID: accepted session=S client=C [helo=H ]from=<F> size=N
 *               nrcpt=N proto=P[ user=U][ (client gone before reply)]"
 *   rcpt       "QID: to=<A>[ orig_to=<O>][ srs_from=<S>] relay=R delay=D
 *               attempts=N status=sent|deferred|bounced (reply)"
 *   dsn        "QID: WHAT: DSNQID"   (WHAT: "sender non-delivery
 *               notification", ...), followed by the DSN's own accepted line
 *   discarded  "QID: undeliverable bounce discarded (N recipients; ...)"
 *   removed    "QID: removed"
 *   mailauth   "QID: mailauth session=S client=C spf=R smtp.mailfrom=A
 *               [spf_helo=R smtp.helo=H ]dkim=R[ (d=D s=S),...]
 *               dmarc=R header.from=D[ policy=P disposition=P] action=A
 *               [reason="..."]"  (the inbound checks' results, once per
 *               message: mailauth/mailauth.c builds the results part)
 *
 * Thread-safe (lib/log.h); no state.
 */
#ifndef TERN_MAILLOG_H
#define TERN_MAILLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/envelope.h"

/* helo NULL: no helo= field; note: "" or " user=..." as the session makes it */
void maillog_accepted(const char *qid, const char *session, const char *client, const char *helo,
    const char *from, uint64_t size, size_t nrcpt, const char *proto, const char *note,
    bool client_gone);
/* recipient r's latest outcome; delay counted from the message's arrival */
void maillog_rcpt(const envelope_t *env, const env_rcpt_t *r);
/* "sent", "deferred" or "bounced": r's status as the log and the metrics say it */
const char *maillog_status(const env_rcpt_t *r);
/* a DSN about qid was queued as dsn (and is itself accepted) */
void maillog_dsn(const char *qid, const char *what, const envelope_t *dsn);
void maillog_bounce_discarded(const char *qid, size_t n, bool postmaster_notified);
void maillog_removed(const char *qid);
/* results: "spf=pass smtp.mailfrom=... dkim=... dmarc=..."; action:
 * "accept", "reject", "defer", "hold"; reason: NULL or the reply/hold text */
void maillog_mailauth(const char *qid, const char *session, const char *client,
    const char *results, const char *action, const char *reason);

#endif
