/*
 * envelope.h - a queued message's envelope, in memory.
 *
 * The envelope is everything about a message except its content: sender,
 * recipients with their per-recipient delivery state, DSN parameters, and
 * where the content lies in the spool file. Its on-disk form belongs to the
 * queue (src/queue/queue.h, docs/queue.md).
 *
 * Ownership: whoever holds an envelope_t frees it with envelope_free(). The
 * scheduler owns queued envelopes; it lends one to a delivery job (a worker
 * thread) and does not touch it until the job is back.
 */
#ifndef TERN_ENVELOPE_H
#define TERN_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/qid.h"

enum rcpt_status {
	RCPT_PENDING = 0, /* to be tried (again) at next_try */
	RCPT_SENT = 1,    /* delivered (or relayed): done */
	RCPT_FAILED = 2,  /* permanent failure or expired: to be reported in a DSN */
	RCPT_REPORTED = 3 /* failure reported (DSN queued, or none wanted): done */
};

typedef struct env_rcpt {
	char *addr;        /* final address, SMTP form: local@domain */
	char *orig;        /* the address the client gave in RCPT TO, when different (alias); else NULL */
	char *orcpt;       /* DSN ORCPT "addr-type;address" (RFC 3461 §4.2), or NULL */
	unsigned notify;   /* NOTIFY_* bits of addr.h; 0 = not given (default: failure, delay) */
	/* the envelope sender this recipient's delivery uses, when not the
	 * message's own: the SRS address of a message an alias or virtual
	 * entry forwards to another domain (deliver/router.h
	 * router_srs_envelope, docs/srs.md); NULL: env->sender. Kept in the
	 * queue file, so every retry uses the same address. */
	char *sender;
	/* delivery state */
	int status;        /* enum rcpt_status */
	unsigned attempts; /* delivery attempts so far */
	int64_t next_try;  /* unix seconds of the next attempt; 0 = as soon as possible */
	int64_t last_try;  /* unix seconds of the last attempt; 0 = never */
	char *reply;       /* last outcome: "<code> <x.y.z> text", e.g. "451 4.3.0 ..." or NULL */
	char *relay;       /* where it was last tried: "local", "host[ip]:port", or NULL */
	/* in memory only (not in the queue file): the last successful remote
	 * hand-off passed NOTIFY on to a server that offers DSN, so that server
	 * reports success, not us (RFC 3461 §4.1, §6.2.2); set by the outbound
	 * client. When false, a NOTIFY=SUCCESS recipient relayed to another
	 * MTA gets a DSN "relayed" from us. */
	bool dsn_passed;
	/* in memory only: how the last remote attempt's TLS went, for the
	 * delivery log ("TLSv1.3 verified=dane-ee"; docs/tls.md), "" when
	 * it was not under TLS; set by the outbound client */
	char tls[40];
} env_rcpt_t;

#define ENV_IS_BOUNCE 0x01    /* this message is a DSN we generated (sender is <>) */
#define ENV_DELAY_WARNED 0x02 /* a delay DSN was sent */
#define ENV_HELD 0x04         /* held by the administrator: never dispatched until released */
#define ENV_PM_NOTICE 0x08    /* a notice to the postmaster about an undeliverable bounce:
                               * its own failure is discarded, never reported again */
#define ENV_REQUIRETLS 0x10   /* MAIL FROM carried REQUIRETLS (RFC 8689 §4.1): relayed only over
                               * validated, authenticated TLS to a server offering REQUIRETLS,
                               * else bounced (5.7.10 / 5.7.30); docs/tls.md */
#define ENV_TLS_OPTIONAL 0x20 /* "TLS-Required: No" in the header and no REQUIRETLS (RFC 8689
                               * §4.2.2): recipient-side DANE and MTA-STS are not applied */

typedef struct envelope {
	char qid[QID_SIZE];
	int64_t arrival_us;  /* microseconds since the epoch, when DATA/BDAT ended */
	char *sender;        /* reverse-path in SMTP form; "" for the null sender <> */
	char *envid;         /* DSN ENVID, decoded, or NULL (RFC 3461 §4.4) */
	int ret;             /* RET_NONE/RET_FULL/RET_HDRS of addr.h */
	int body;            /* BODY_* of addr.h */
	bool smtputf8;       /* the message needs SMTPUTF8 (RFC 6531) */
	char *client_addr;   /* "127.0.0.1" or "local" for injected mail */
	char *client_helo;   /* or NULL */
	char *auth_user;     /* authenticated user, or NULL */
	unsigned flags;      /* ENV_* */
	size_t nrcpt;
	env_rcpt_t *rcpt;
	/* filled by the queue */
	uint64_t body_off;   /* offset of the message content in the spool file */
	uint64_t body_len;   /* its length: CRLF line ends, no dot-stuffing */
} envelope_t;

envelope_t *envelope_new(void);
void envelope_free(envelope_t *e);
/* append a recipient (copies the strings; orig and orcpt may be NULL) */
env_rcpt_t *envelope_add_rcpt(envelope_t *e, const char *addr, const char *orig,
    const char *orcpt, unsigned notify);
/* deep copy */
envelope_t *envelope_dup(const envelope_t *e);
/* number of recipients with status RCPT_PENDING */
size_t envelope_pending(const envelope_t *e);

#endif
