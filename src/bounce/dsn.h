/*
 * dsn.h - delivery status notifications (bounces, delay warnings, success
 * reports).
 *
 * dsn_build() writes a complete RFC 5322 message, CRLF line ends, ready to
 * be queued as a new message from the null sender <> to the original
 * sender (RFC 5321 §4.5.5, RFC 3461 §6): a multipart/report (RFC 6522) with
 *   1. text/plain: a human-readable explanation naming each recipient and
 *      the reply that decided its fate;
 *   2. message/delivery-status (RFC 3464), or message/global-delivery-status
 *      (RFC 6533) when an address in it is not ASCII;
 *   3. the original message (message/rfc822, or message/global for an
 *      SMTPUTF8 message with UTF-8 headers) or only its header section
 *      (text/rfc822-headers, or message/global-headers) with RET=HDRS, when
 *      the message is larger than the limit, or when it cannot be carried in
 *      an 8bit MIME part (a line over 998 octets, NUL, bare CR or LF). With
 *      no content (content_fd < 0) the optional third part is left out.
 *
 * Guarantees: every line of the result ends in CRLF and has at most 998
 * octets (RFC 5322 §2.1.1); every field value built from envelope data or
 * from remote replies is sanitized (control characters become spaces,
 * octets >= 0x80 are kept only where UTF-8 is allowed and valid, else '?')
 * and folded, so nothing a remote server says can break the structure; the
 * MIME boundary does not occur in any part.
 *
 * Blocking (pread on content_fd): call it from a worker thread. Thread-safe.
 * It must not decide whether a DSN is due (that is dsn_wanted() and the
 * scheduler's policy) and never queues or sends anything itself.
 */
#ifndef TERN_DSN_H
#define TERN_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/envelope.h"
#include "lib/buf.h"

/* Return the full message only up to this size (RFC 3461 §4.3 leaves the
 * choice to the MTA when RET is not given); beyond it, headers only. */
#define DSN_MAX_FULL ((uint64_t)10 * 1024 * 1024)
/* At most this much of a header section is returned (cut at a line end). */
#define DSN_MAX_HEADERS ((size_t)256 * 1024)

/* "x.y.z" (RFC 3463) with its NUL: at most "5.999.999" */
#define DSN_STATUS_SIZE 16

enum dsn_kind {
	DSN_FAILURE, /* Action: failed  - the recipient will not get the message */
	DSN_DELAY,   /* Action: delayed - still being retried */
	DSN_SUCCESS  /* Action: delivered (local) or relayed (handed to another MTA) */
};

typedef struct dsn_params {
	const char *hostname;   /* the reporting MTA, FQDN (Reporting-MTA, Message-ID) */
	const char *postmaster; /* From: address; NULL: "MAILER-DAEMON@<hostname>" */
	int64_t now;            /* unix seconds: Date */
	enum dsn_kind kind;
	/* A token unique to this DSN, used in Message-ID and the MIME boundary,
	 * e.g. the queue ID the DSN will get; NULL: a fresh qid_new(). */
	const char *unique;
	int64_t retry_until;    /* DSN_DELAY: unix seconds of the last try (Will-Retry-Until); 0: unknown */
	uint64_t max_full;      /* 0: DSN_MAX_FULL */
} dsn_params_t;

/* What the caller must know to queue the result. */
typedef struct dsn_info {
	int body;      /* BODY_7BIT or BODY_8BITMIME (addr.h): what to declare on MAIL */
	bool smtputf8; /* the DSN needs SMTPUTF8: its To: address (the sender) is not ASCII */
	bool returned_full; /* part 3 holds the whole message (else headers only, or none) */
} dsn_info_t;

/*
 * Build the DSN of kind p->kind for the recipients env->rcpt[rcpt_idx[0..n)]
 * (their addr, orig, orcpt, reply, relay, last_try are reported; their
 * status is not looked at). The original content is read from content_fd at
 * env->body_off, env->body_len octets; content_fd < 0: no third part.
 * Appends the message to out; on success fills *info (may be NULL) and
 * returns 0. On failure (null sender, no or bad recipient index, no
 * hostname, read error or short content) returns -1, out unchanged, and
 * puts a reason in err.
 */
int dsn_build(buf_t *out, const envelope_t *env, const size_t *rcpt_idx, size_t n,
    const dsn_params_t *p, int content_fd, dsn_info_t *info, buf_t *err);

/*
 * RFC 3461 §4.1 NOTIFY rules for recipient idx: NOTIFY=NEVER: none; NOTIFY
 * not given (0): FAILURE and DELAY; else the bits given. Never any DSN for
 * a message from the null sender, or one that is itself a DSN
 * (ENV_IS_BOUNCE): RFC 5321 §4.5.5, no bounce loops.
 */
bool dsn_wanted(const envelope_t *env, size_t idx, enum dsn_kind kind);

/*
 * The RFC 3463 status "x.y.z" of an SMTP reply "<code> <x.y.z> text" (or a
 * local "x.y.z text"), written to out. An enhanced code is taken only when
 * its class agrees with the reply code's first digit; without one it is
 * derived from the code: 2xx -> 2.0.0, 4xx -> 4.0.0, 5xx -> 5.0.0.
 * Returns out, or NULL when reply is NULL or has neither.
 */
const char *dsn_status_of_reply(const char *reply, char out[DSN_STATUS_SIZE]);

#endif
