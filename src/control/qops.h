/*
 * qops.h - the queue operations, written once: list, mailq, show, flush
 * (all, one domain, one message), hold, release, delete, bounce now, and
 * reload. The control socket (control.c, behind `tern queue ...` and
 * `mailq`) and the HTTP API (api.c) only translate their requests into a
 * qops_req_t and the qops_res_t back into their protocol; what an
 * operation does, says and prints is decided here.
 *
 * The outcome comes through a callback, called once: from inside
 * qops_run() when the answer is known at once (list, flush, bounce, a bad
 * request...), or later from the loop (show reads the message's header
 * section on the thread pool; hold, release and delete wait until the
 * change is on disk). Who called must stay alive until then.
 *
 * Who may do what is the caller's business (control.c checks the peer,
 * api.c the bearer token); redact asks for what an ordinary user may see.
 * Loop thread only; never blocks.
 */
#ifndef TERN_QOPS_H
#define TERN_QOPS_H

#include <stdbool.h>

#include "common/qid.h"
#include "control/control.h"
#include "lib/buf.h"

enum qops_verb {
	QOPS_LIST, QOPS_MAILQ, QOPS_SHOW, QOPS_FLUSH, QOPS_HOLD, QOPS_RELEASE, QOPS_DELETE,
	QOPS_BOUNCE, QOPS_RELOAD,
};

enum qops_code {
	QOPS_OK = 0,
	QOPS_BAD,       /* the request is wrong (not a queue ID, an argument too many) */
	QOPS_NOT_FOUND, /* no such message (or it is being removed) */
	QOPS_FAILED,    /* it could not be done (the disk, a configuration with errors) */
};

typedef struct qops_req {
	enum qops_verb verb;
	const char *qid;    /* show, hold, release, delete, bounce; flush: one message. Any case */
	const char *domain; /* list, mailq, flush: only messages/recipients in this domain */
	bool json;          /* the body in JSON (else text) */
	bool redact;        /* list, mailq: only what mailq shows ordinary users */
} qops_req_t;

typedef struct qops_res {
	enum qops_code code;
	char qid[QID_SIZE]; /* the message's queue ID, "" when none */
	const char *text;   /* one line: what was done, or why not */
	const buf_t *body;  /* what to print: the listing, the message, or the outcome
	                     * (text + "\n", or {"ok","queue_id","result"} in JSON);
	                     * empty for a failure in text form */
} qops_res_t;

typedef void (*qops_done_cb)(void *arg, const qops_res_t *res);

/* The verb of a word ("list", "mailq", "show", "flush", "hold", "release",
 * "delete", "bounce", "reload"); -1 for anything else. */
int qops_verb_of(const char *word);

/* Run one operation; cb(arg, res) once (res is valid during the call). */
void qops_run(const control_ctx_t *ctx, const qops_req_t *rq, qops_done_cb cb, void *arg);

#endif
