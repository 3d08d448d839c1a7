/*
 * smtp_client.h - one outbound SMTP (RFC 5321) or LMTP (RFC 2033) session
 * to one server address, over a conn_t.
 *
 * The session connects, waits for the 220 greeting, says EHLO (HELO when
 * EHLO is refused with 5xx; LHLO for LMTP), learns the extensions, and then
 * runs transactions that its owner hands it one at a time: MAIL, RCPT per
 * recipient, DATA (or BDAT for BINARYMIME content) with the content
 * streamed from the spool file, pipelined when the server offers PIPELINING
 * (RFC 2920). Between transactions it stays connected for reuse; RSET is
 * sent after a transaction that did not reach the final reply.
 *
 * Every reply is turned into ok / tempfail / permfail by one function,
 * smtp_decide() (docs/outbound.md has the table); a connection-level
 * failure (connect error, timeout, drop, 421, protocol error) makes every
 * recipient of the transaction that is not final yet a tempfail with a
 * text saying what happened and where.
 *
 * Events to the owner (one callback):
 *   SMTP_CLIENT_READY  greeting and EHLO/HELO done: the session is idle and
 *                      takes a transaction (smtp_client_send)
 *   SMTP_CLIENT_DONE   the transaction's results are final; the session is
 *                      idle again (if smtp_client_usable()) or about to close
 *   SMTP_CLIENT_CLOSED the last event; the session is freed when the
 *                      callback returns. If it never became READY,
 *                      smtp_client_error() says why (to try another address).
 * TLS (RFC 3207): after EHLO, when the policy is not NONE and the server
 * offers STARTTLS, the session says STARTTLS, runs the handshake on the
 * conn (never blocking) and says EHLO again, learning the extensions
 * afresh. ENCRYPT and VERIFY fail the session (4.7.4 / 4.7.5, temporary)
 * when STARTTLS is not offered or refused, when the handshake fails, or
 * (VERIFY) when the certificate does not chain to a trusted CA or does not
 * name the host; MAY goes on in clear when STARTTLS is not offered or is
 * refused, and smtp_client_tls_failed() tells the owner that a handshake
 * failed so it can try again without TLS.
 * DANE (RFC 7672): with tls_policy DANE the owner gives the host's TLSA
 * records; STARTTLS is then mandatory and the peer must be authenticated
 * by one of the usable records (OpenSSL's DANE verification): no STARTTLS,
 * a refusal, a failed handshake or no match fail the session with 4.7.5,
 * never a fallback to clear text. When no record is usable after all, TLS
 * stays mandatory but unauthenticated (RFC 7672 §2.2), as under ENCRYPT.
 * The owner may call smtp_client_send/quit/abort from inside a callback.
 * Never blocks on the network; reads the content file with pread (a local,
 * normally cached file: one 64 KiB chunk per drained write).
 */
#ifndef TERN_SMTP_CLIENT_H
#define TERN_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/envelope.h"
#include "deliver/outcome.h"
#include "deliver/smtp_reply.h"
#include "lib/tls.h"

/* RFC 5321 §4.5.3.2 timeouts, in seconds; 0 = the RFC's value. */
typedef struct smtp_timeouts {
	unsigned connect;    /* TCP connect (not in the RFC), default 30 */
	unsigned greeting;   /* §4.5.3.2.1 initial 220: 5 min */
	unsigned helo;       /* EHLO/HELO/LHLO reply: 5 min */
	unsigned mail;       /* §4.5.3.2.2 MAIL: 5 min */
	unsigned rcpt;       /* §4.5.3.2.3 RCPT: 5 min */
	unsigned data_init;  /* §4.5.3.2.4 DATA initiation: 2 min */
	unsigned data_block; /* §4.5.3.2.5 each data block sent: 3 min */
	unsigned data_done;  /* §4.5.3.2.6 final dot (and BDAT LAST): 10 min */
	unsigned rset;       /* RSET: 5 min */
	unsigned quit;       /* QUIT reply, default 10 s: we do not need it */
} smtp_timeouts_t;

/* server extensions (EHLO keywords) */
#define SMTP_EXT_PIPELINING 0x001
#define SMTP_EXT_SIZE 0x002
#define SMTP_EXT_8BITMIME 0x004
#define SMTP_EXT_SMTPUTF8 0x008
#define SMTP_EXT_DSN 0x010
#define SMTP_EXT_CHUNKING 0x020
#define SMTP_EXT_STARTTLS 0x040
#define SMTP_EXT_ENHANCEDSTATUSCODES 0x080
#define SMTP_EXT_BINARYMIME 0x100
#define SMTP_EXT_AUTH_PLAIN 0x200 /* AUTH with the PLAIN mechanism (RFC 4954, RFC 4616) */
#define SMTP_EXT_AUTH_LOGIN 0x400 /* AUTH with the LOGIN mechanism */
#define SMTP_EXT_REQUIRETLS 0x800 /* RFC 8689 */

/* the outcome type and the stages are deliver/outcome.h's, by these names */
enum smtp_outcome {
	SMTP_UNDECIDED = OUTCOME_UNDECIDED,
	SMTP_OK = OUTCOME_OK,
	SMTP_TEMPFAIL = OUTCOME_TEMPFAIL,
	SMTP_PERMFAIL = OUTCOME_PERMFAIL,
};

/* where in the dialogue a reply (or a failure) came */
enum smtp_stage {
	SMTP_STAGE_CONNECT = OUTCOME_STAGE_CONNECT,
	SMTP_STAGE_GREETING = OUTCOME_STAGE_GREETING,
	SMTP_STAGE_HELO = OUTCOME_STAGE_HELO,
	SMTP_STAGE_MAIL = OUTCOME_STAGE_MAIL,
	SMTP_STAGE_RCPT = OUTCOME_STAGE_RCPT,
	SMTP_STAGE_DATA = OUTCOME_STAGE_DATA,
	SMTP_STAGE_CONTENT = OUTCOME_STAGE_CONTENT,
	SMTP_STAGE_DOT = OUTCOME_STAGE_DOT,
	SMTP_STAGE_RSET = OUTCOME_STAGE_RSET,
	SMTP_STAGE_QUIT = OUTCOME_STAGE_QUIT,
	SMTP_STAGE_STARTTLS = OUTCOME_STAGE_STARTTLS,
};

/*
 * The outcome of a server reply code at a stage: outcome_smtp_kind
 * (deliver/outcome.c, where every rule lives). Everything in smtp_client.c
 * and outbound.c that turns a reply into a recipient's fate goes through
 * here.
 */
enum smtp_outcome smtp_decide(enum smtp_stage stage, int code);

typedef struct smtp_result {
	int outcome;  /* enum smtp_outcome */
	char *reply;  /* allocated: "550 5.1.1 ..." (always with an enhanced code) */
} smtp_result_t;

/* One transaction. The owner fills the inputs, allocates res[n] zeroed,
 * keeps everything alive until SMTP_CLIENT_DONE, then frees the reply
 * strings (smtp_txn_clear) and closes fd. */
typedef struct smtp_txn {
	const envelope_t *env;
	const size_t *idx;   /* recipients of env in this transaction */
	size_t n;
	int fd;              /* content at env->body_off, env->body_len octets */
	smtp_result_t *res;  /* n results */
} smtp_txn_t;

void smtp_txn_clear(smtp_txn_t *t);

typedef struct smtp_client smtp_client_t;

enum smtp_client_ev {
	SMTP_CLIENT_READY,
	SMTP_CLIENT_DONE,
	SMTP_CLIENT_CLOSED,
};

typedef void (*smtp_client_cb)(smtp_client_t *c, enum smtp_client_ev ev, void *arg);

typedef struct smtp_client_options {
	const char *helo_name; /* our name for EHLO/HELO/LHLO */
	bool lmtp;             /* RFC 2033 */
	smtp_timeouts_t t;
	enum tls_policy tls_policy; /* 0 = MAY */
	SSL_CTX *tls_ctx;      /* client context (tls.h; the client holds a reference); NULL: no
	                        * STARTTLS (MAY goes on in clear) */
	/* AUTH to the server (a relay host, RFC 4954): after EHLO, and only
	 * under TLS (credentials are never sent in clear: without TLS the
	 * session fails with 4.7.0). PLAIN when offered, else LOGIN. A refusal
	 * is a temporary failure (a configuration problem: mail waits, it is
	 * not bounced). NULL: no AUTH. The strings must outlive the client. */
	const char *auth_user;
	const char *auth_pass;
	/* tls_policy DANE: the TLSA records, the TLSA base domain (the MX
	 * host's name, or its CNAME-expanded name when the records were found
	 * there), and further reference names for DANE-TA (RFC 7672 §3.2.2):
	 * the next-hop domain, and the MX host's own name when the base is
	 * its expanded name (§2.2.2); NULL: none. Must outlive the client. */
	const tls_tlsa_t *tlsa;
	size_t ntlsa;
	const char *dane_base;
	const char *dane_domain;
	const char *dane_alias;
	/* MTA-STS (RFC 8461 §4.2, §5): under the policy of sts_domain, ENFORCE
	 * (tls_policy is then VERIFY: STARTTLS and a certificate that chains to
	 * a trusted CA and names the MX host, else 451 4.7.5) or TESTING (a
	 * failure is logged, delivery goes on under tls_policy) */
	enum { SMTP_STS_NONE = 0, SMTP_STS_TESTING, SMTP_STS_ENFORCE } sts;
	const char *sts_domain; /* must outlive the client */
	/* REQUIRETLS (RFC 8689 §4.2.1): the session carries messages that
	 * asked for it. The owner sets an authenticating tls_policy (VERIFY
	 * or DANE); the session must end up under TLS with the peer
	 * authenticated, and the server's EHLO under TLS must offer
	 * REQUIRETLS, else the session fails permanently (550 5.7.30 when
	 * REQUIRETLS is not offered, 550 5.7.10 otherwise) before any MAIL.
	 * MAIL FROM of a message with ENV_REQUIRETLS carries REQUIRETLS. */
	bool requiretls;
} smtp_client_options_t;

/*
 * Connect to addr (port set; or an AF_UNIX address for LMTP over a
 * unix-domain socket). host is the server's name for texts and logs, and
 * the name its certificate must carry ("mx.example", or the IP). The
 * options are copied. Never NULL; events follow on later loop turns.
 */
smtp_client_t *smtp_client_new(uv_loop_t *loop, const struct sockaddr *addr, const char *host,
    const smtp_client_options_t *o, smtp_client_cb cb, void *arg);

/*
 * Start a transaction on an idle session. Returns 0 when it started
 * (SMTP_CLIENT_DONE follows), 1 when it was decided at once without
 * talking to the server (message too large for the server's SIZE, needs
 * SMTPUTF8 or BINARYMIME the server lacks: every result is filled, no
 * event follows, the session stays idle), -1 when the session is not idle.
 */
int smtp_client_send(smtp_client_t *c, smtp_txn_t *t);

/* Send QUIT and close (CLOSED follows). */
void smtp_client_quit(smtp_client_t *c);
/* Close at once; a transaction in progress ends with tempfails
 * (reason: text, e.g. "4.3.2 shutting down"; NULL for a default). */
void smtp_client_abort(smtp_client_t *c, const char *reason);

bool smtp_client_usable(const smtp_client_t *c); /* idle and connected */
bool smtp_client_was_ready(const smtp_client_t *c);
unsigned smtp_client_ext(const smtp_client_t *c);  /* SMTP_EXT_* */
uint64_t smtp_client_max_size(const smtp_client_t *c); /* SIZE value, 0 = none */
/* "mx.example[192.0.2.1]:25" */
const char *smtp_client_relay(const smtp_client_t *c);
/* Why the session failed or closed: a complete reply line with an enhanced
 * code ("451 4.4.1 connect to HOST: Connection refused", or the server's
 * "554 5.7.1 ..." greeting); "" when nothing went wrong. */
const char *smtp_client_error(const smtp_client_t *c);
/* SMTP_TEMPFAIL or SMTP_PERMFAIL for that error (a 5xx greeting or HELO
 * reply is permanent), SMTP_UNDECIDED when none */
int smtp_client_error_outcome(const smtp_client_t *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" when the session is under TLS, else NULL */
const char *smtp_client_tls(const smtp_client_t *c);
/* how the peer was authenticated once under TLS: "dane-ee", "dane-ta",
 * "sts" (an MTA-STS policy in enforce mode, and the certificate is valid
 * for the host), "ca" (its certificate chains to a trusted CA and names the host), or
 * "none"; NULL without TLS */
const char *smtp_client_tls_auth(const smtp_client_t *c);
/* the STARTTLS handshake failed (the session then failed too) */
bool smtp_client_tls_failed(const smtp_client_t *c);
/* the host did not answer: the connection was refused or timed out, or
 * the greeting did not come in time (the owner may remember it as dead) */
bool smtp_client_unreachable(const smtp_client_t *c);
/* RFC 8460 section 4.3: the session's TLS outcome for the TLS report.
 * 0: nothing to count (TLS not tried, or the session ended for another
 * reason first: a refused connection, a timeout); 1: TLS came up as the
 * policy wants it (verified where it must be); -1: a failure, *type its
 * result type ("starttls-not-supported", "certificate-host-mismatch",
 * "certificate-expired", "certificate-not-trusted", "tlsa-invalid",
 * "validation-failure") and *reason OpenSSL's or our text (valid while c
 * is), *local_ip our address on it ("" when unknown). An MTA-STS testing
 * failure is -1 though the session goes on. */
int smtp_client_tlsrpt(const smtp_client_t *c, const char **type, const char **reason,
    const char **local_ip);

#endif
