/*
 * filter.h - FILTER: the checks a message goes through between ACCEPT
 * (smtpd) and PERSIST (queue), and the order they run in.
 *
 * THE ORDER OF CHECKS (the one place it is written down):
 *   connect  rate limit ratelimit_client_connections (ratelimit.h; 421
 *            and close); then DNSBL/DNSWL (dnsbl.h; dnsbl_stage = connect,
 *            smtp listeners, not mynetworks): the greeting waits for the
 *            lists; a listed client is refused at each MAIL, unless it has
 *            authenticated; then each milter of the listener, in
 *            configuration order
 *   helo     each milter
 *   mail     smtpd's own checks (size, spool room, sender login), then the
 *            rate limits ratelimit_client_messages, _user_messages,
 *            _sender_domain_messages (together: all charged or none), then
 *            each milter
 *   rcpt     DNSBL/DNSWL when dnsbl_stage = rcpt (looked up at the first
 *            RCPT of a client neither in mynetworks nor authenticated,
 *            refused at each RCPT), before the router; the router; the
 *            rate limits ratelimit_client_recipients and _user_recipients;
 *            greylisting (greylist.h; not for mynetworks, authenticated or
 *            local clients); then each milter, once per recipient the
 *            router accepted
 *   eom      at the end of DATA/BDAT, once the content is complete and
 *            smtpd's own checks (size, line ends, hops) passed: first
 *            header_checks and body_checks (content.h; every listener
 *            but the local socket): REJECT or DISCARD ends the message
 *            there, HOLD marks it held, IGNORE/PREPEND change the
 *            headers the milters then see; then each
 *            milter in turn gets DATA, the header fields, EOH, the body
 *            in chunks of at most 65535 octets and end-of-message, and
 *            sees the header and body changes of the milters before it.
 *            (Postfix hands milters the content from its queue file after
 *            DATA too, so a milter's DATA-stage verdict lands here.)
 * Rate limits and greylisting are smtpd's calls to ratelimit.h and
 * greylist.h, made whether or not the listener has milters;
 * client_limit_exceptions (default mynetworks) and the local socket are
 * exempt from rate limits. A rate-limit check through Redis parks the
 * command like a milter stage does. At each stage the first REJECT, TEMPFAIL
 * or DISCARD ends the stage; ACCEPT from a milter takes that milter out
 * for the rest of the message (of the session, at connect). A verdict at
 * connect (the milter's, or a failed milter's default action) is given
 * at every MAIL of the session, as Postfix does.
 * A milter that is down, times out or misbehaves gets its default action
 * (milter = ... default_action=tempfail|accept|reject): accept takes it
 * out for the session; tempfail/reject answer this stage and later ones.
 *
 * Asynchronous: each stage call returns at once; cb runs later, on the
 * loop (never from inside the call), exactly once, unless filter_free()
 * came first. One stage at a time per filter.
 * Must not: block; keep config pointers (the specs are copied); touch the
 * queue (smtpd writes the queue file once, with the modifications).
 */
#ifndef TERN_FILTER_H
#define TERN_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/config.h"
#include "lib/buf.h"

typedef struct filter filter_t;

enum filter_action {
	FILTER_CONTINUE, /* go on (at eom: accept, maybe quarantined) */
	FILTER_REJECT,   /* reply: 5xx with an enhanced code */
	FILTER_TEMPFAIL, /* reply: 4xx with an enhanced code */
	FILTER_DISCARD,  /* say 250, queue nothing */
};

/* an envelope change from end of message */
typedef struct filter_env_op {
	enum { FILTER_RCPT_ADD, FILTER_RCPT_DEL, FILTER_FROM } op;
	char *addr;  /* without angle brackets */
	char *args;  /* ESMTP arguments, or NULL */
	char *who;   /* the milter */
} filter_env_op_t;

typedef struct filter_verdict {
	enum filter_action action;
	const char *reply;      /* REJECT/TEMPFAIL: the SMTP reply, lines joined by CRLF, no final CRLF */
	const char *who;        /* the milter that decided, or NULL */
	/* eom, FILTER_CONTINUE: */
	const char *quarantine; /* put on hold with this reason, or NULL */
	const char *content;    /* the message as it must be queued (changed or not) */
	size_t content_len;
	bool changed;           /* headers or body were changed */
	const filter_env_op_t *ops;
	size_t nops;
} filter_verdict_t;

/* valid during the call only */
typedef void (*filter_cb)(void *arg, const filter_verdict_t *v);

/* The filter for one SMTP session: milters[0..n) in order (copied). NULL when n == 0. */
filter_t *filter_new(uv_loop_t *loop, const config_milter_t *const *milters, size_t n,
    const char *sid);
/* Add the header and body checks (content.h, held by reference) to f, or
 * to a new filter without milters when f is NULL; returns the filter (f
 * unchanged when cc is NULL). */
struct content_checks;
filter_t *filter_checks(filter_t *f, uv_loop_t *loop, const char *sid, struct content_checks *cc);
/* Drop the session: QUIT to each milter; no callback after this. NULL is a no-op. */
void filter_free(filter_t *f);
/* At exit, once no session is left: the state the built-in checks keep
 * for the process (DNSBL resolver and cache, rate-limit pairs and the
 * Redis connection, the greylisting table, saved first) is freed. The
 * loop must run once more (uv_run NOWAIT) to close their handles. */
void filter_shutdown(void);

/* Set (or, value NULL, unset) a macro: "j", "{client_addr}", ... as Postfix
 * names them; each stage sends the ones a milter asked for (SETSYMLIST) or
 * Postfix's default list for the stage. */
void filter_macro(filter_t *f, const char *name, const char *value);

/* family: AF_INET, AF_INET6, AF_UNIX (addr/port ignored) */
void filter_connect(filter_t *f, const char *client_name, int family, const char *addr, int port,
    filter_cb cb, void *arg);
void filter_helo(filter_t *f, const char *helo, filter_cb cb, void *arg);
/* argv[0] is "<address>", the rest the ESMTP parameters as given */
void filter_mail(filter_t *f, const char *const *argv, size_t argc, filter_cb cb, void *arg);
void filter_rcpt(filter_t *f, const char *const *argv, size_t argc, filter_cb cb, void *arg);
/* The complete content (CRLF, dot-unstuffed, tern's Received first); it
 * must stay valid until cb. */
void filter_eom(filter_t *f, const char *content, size_t n, filter_cb cb, void *arg);
/* The transaction ended without a message (RSET, HELO, refusal): SMFIC_ABORT. */
void filter_abort(filter_t *f);

/* ---- the header and body model, exported for unit tests ---- */

typedef struct filter_msg filter_msg_t;
filter_msg_t *filter_msg_parse(const char *content, size_t n);
void filter_msg_free(filter_msg_t *m);
/* the milter's changes (SMFIR_ADDHEADER/CHGHEADER/INSHEADER, REPLBODY
 * already concatenated in body): returns 0, or -1 with *why */
int filter_msg_header(filter_msg_t *m, char cmd, unsigned index, const char *name,
    const char *value, bool leadspc, const char **why);
void filter_msg_body(filter_msg_t *m, const char *p, size_t n);
void filter_msg_render(const filter_msg_t *m, buf_t *out);

#endif
