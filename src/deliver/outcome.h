/*
 * outcome.h - DELIVER: every rule that turns an error into a recipient's
 * fate, in one place (like Postfix's smtp_trouble.c).
 *
 * An outcome is ok, tempfail (the recipient stays queued and is tried
 * again) or permfail (it fails and is reported in a DSN), with the text
 * stored as the recipient's last reply: "<code> <x.y.z> text" for SMTP
 * outcomes, "<x.y.z> text" for local ones (RFC 3463 enhanced status codes
 * on both), or a plain note for a local success.
 *
 * The rules (each function below is one):
 *   SMTP reply codes at each stage of a dialogue     outcome_smtp_kind
 *   DNS answers for the next hop                     outcome_dns
 *   a next hop with no usable address, a lookup that
 *   cannot start, a bad LMTP path, no resolver        outcome_next_hop
 *   connect failures, timeouts, TLS that a policy
 *   requires but the server does not give, AUTH to
 *   the relayhost refused, no final reply            outcome_session (temporary)
 *   a REQUIRETLS message (RFC 8689) whose next hop
 *     cannot be validated, or whose TLS failed     outcome_requiretls (permanent)
 *   the next hop lacks SIZE/SMTPUTF8/BINARYMIME/    outcome_capability (permanent)
 *     8BITMIME for unconvertible 8-bit content
 *   Maildir I/O errors                               outcome_maildir_code, _error
 *   the queued content cannot be read                outcome_queue_read
 *   a recipient domain that cannot be delivered to   outcome_bad_domain
 *   shutdown before the attempt                      outcome_shutdown
 *   a local address that no longer exists            outcome_no_mailbox
 *   the message expired in the queue                 outcome_expired
 * docs/outbound.md has the table in prose.
 *
 * Pure functions (no I/O, no globals): safe on any thread. The scheduler
 * turns tempfail outcomes into next_try (sched.c); nothing here knows time.
 */
#ifndef TERN_OUTCOME_H
#define TERN_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>

#include "common/envelope.h"

enum outcome_kind {
	OUTCOME_UNDECIDED = 0,
	OUTCOME_OK,
	OUTCOME_TEMPFAIL,
	OUTCOME_PERMFAIL,
};

#define OUTCOME_TEXT_MAX 2048

typedef struct outcome {
	enum outcome_kind kind;
	char text[OUTCOME_TEXT_MAX]; /* the stored reply */
} outcome_t;

/* where in an SMTP/LMTP dialogue a reply came (smtp_client.h uses these) */
enum outcome_stage {
	OUTCOME_STAGE_CONNECT,
	OUTCOME_STAGE_GREETING,
	OUTCOME_STAGE_HELO,
	OUTCOME_STAGE_MAIL,
	OUTCOME_STAGE_RCPT,
	OUTCOME_STAGE_DATA,    /* DATA initiation */
	OUTCOME_STAGE_CONTENT, /* sending the content */
	OUTCOME_STAGE_DOT,     /* the final reply (after "." or BDAT LAST) */
	OUTCOME_STAGE_RSET,
	OUTCOME_STAGE_QUIT,
	OUTCOME_STAGE_STARTTLS,
};

/* The outcome of a server reply code at a stage. */
enum outcome_kind outcome_smtp_kind(enum outcome_stage stage, int code);

/* A failed DNS lookup of the next hop: reply is what the MX lookup said
 * ("5xx ..." only when the domain itself says it takes no mail, RFC 7505),
 * detail its explanation or NULL, host the next hop's name; is_relay: a
 * configured relayhost or transport (its failure is ours: never
 * permanent). */
void outcome_dns(outcome_t *oc, const char *reply, const char *detail, const char *host,
    bool is_relay);

/* The next hop lacks what the message needs (SIZE too small, no
 * SMTPUTF8, no BINARYMIME, no 8BITMIME for 8-bit content that cannot be
 * made 7-bit): permanent, text "5xx 5.x.y ...". */
void outcome_capability(outcome_t *oc, const char *text);

/* The next hop cannot be reached for a local reason: text "451 4.x.y ..." */
void outcome_next_hop(outcome_t *oc, const char *text);

/* A session-level failure (connect, timeout, TLS required but refused or
 * failed, AUTH refused, the connection lost): always temporary; text is
 * the reply to store, "4xx x.y.z ...". */
void outcome_session(outcome_t *oc, const char *text);

/*
 * REQUIRETLS (RFC 8689 §4.2.1): a message that asked for it meets a next
 * hop that cannot carry it (MX not validated, no authenticated TLS, no
 * REQUIRETLS offered): permanent, never a downgrade. text is either a
 * complete "5xx 5.7.x ..." line (kept) or the "4xx 4.7.x ..." of a TLS
 * failure that a policy would have retried, which becomes "550 5.7.10
 * REQUIRETLS: ..." ; other texts (connect failures, timeouts: a path
 * that may work later) stay temporary as outcome_session says.
 */
void outcome_requiretls(outcome_t *oc, const char *text);

/* RFC 3463 code for a Maildir write failing with errno e: "4.2.2" mailbox
 * full (ENOSPC, EDQUOT), else "4.3.0". Every Maildir error is temporary. */
const char *outcome_maildir_code(int e);
void outcome_maildir_error(outcome_t *oc, const char *text);
void outcome_maildir_ok(outcome_t *oc, const char *maildir);
/* The queued content cannot be opened (errno e); remote: the SMTP form. */
void outcome_queue_read(outcome_t *oc, int e, bool remote);
/* A recipient whose domain cannot be delivered to: err (a "4xx x.y.z"
 * text: a broken transport entry) or NULL (the address has no domain). */
void outcome_bad_domain(outcome_t *oc, const char *err);
void outcome_shutdown(outcome_t *oc);
void outcome_no_mailbox(outcome_t *oc);
/* RFC 3463 4.4.7: the last reason (or NULL) follows */
void outcome_expired(outcome_t *oc, unsigned lifetime, const char *last_reply);

/* Write oc into r: status (RCPT_SENT, RCPT_PENDING, RCPT_FAILED), reply,
 * and relay when not NULL. attempts, last_try and next_try are the
 * caller's. */
void outcome_apply(const outcome_t *oc, env_rcpt_t *r, const char *relay);

#endif
