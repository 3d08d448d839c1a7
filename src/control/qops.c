/*
 * qops.c - the queue operations (see qops.h): the scheduler's calls
 * (sched_snapshot, sched_flush, sched_flush_one, sched_hold, sched_delete,
 * sched_bounce), the daemon's reload, and the formats of control/qview.h.
 *
 * An operation that waits (show: the header section read on the pool;
 * hold, release, delete: the scheduler's callback once the change is on
 * disk) keeps its state in a qjob until then.
 *
 * Must not: block the loop, or trust the request (queue IDs checked).
 */
#include "control/qops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/qview.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "queue/queue.h"
#include "sched/sched.h"

static const char *const verbs[] = {
	[QOPS_LIST] = "list", [QOPS_MAILQ] = "mailq", [QOPS_SHOW] = "show", [QOPS_FLUSH] = "flush",
	[QOPS_HOLD] = "hold", [QOPS_RELEASE] = "release", [QOPS_DELETE] = "delete",
	[QOPS_BOUNCE] = "bounce", [QOPS_RELOAD] = "reload",
};

int
qops_verb_of(const char *word)
{
	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (word && strcmp(word, verbs[i]) == 0)
			return (int)i;
	return -1;
}

/* an operation in progress */
typedef struct qjob {
	uv_work_t req;
	qops_done_cb cb;
	void *arg;
	bool json;
	char qid[QID_SIZE];
	/* show */
	qview_entry_t *e;
	size_t n;
	char *spool_dir;
	buf_t hdr;
	buf_t err;
	int rc;
} qjob_t;

/* the outcome of an operation: one line, and the body in the form asked for */
static void
finish(qops_done_cb cb, void *arg, bool json, enum qops_code code, const char *qid,
    const char *text)
{
	buf_t body = BUF_INIT;
	if (json) {
		json_t *o = qview_result_obj(code == QOPS_OK, qid && *qid ? qid : NULL, text);
		qview_json_dump(&body, o);
		json_decref(o);
	} else if (code == QOPS_OK) {
		buf_printf(&body, "%s\n", text);
	}
	qops_res_t res = {code, "", text, &body};
	if (qid)
		snprintf(res.qid, sizeof res.qid, "%s", qid);
	cb(arg, &res);
	buf_free(&body);
}

/* A queue ID in any case, into out (upper case); false when it is none. */
static bool
parse_qid(const char *arg, char out[QID_SIZE])
{
	size_t n = arg ? strlen(arg) : 0;
	if (n != QID_LEN)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = arg[i];
		out[i] = ch >= 'a' && ch <= 'z' ? (char)(ch - 'a' + 'A') : ch;
	}
	out[QID_LEN] = '\0';
	return qid_valid(out, QID_LEN);
}

/* ---- list, mailq ---- */

/*
 * Cut a snapshot down to what Postfix's mailq shows: queue ID, size,
 * arrival, sender, held/active marks, and the recipients still to be
 * delivered with their last reply. Gone: delivered and failed recipients,
 * original addresses, ORCPT, relays, ENVID, RET, the client and its login.
 */
static void
redact(qview_entry_t *e, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		envelope_t *env = e[k].env;
		xfree(env->envid);
		xfree(env->client_addr);
		xfree(env->client_helo);
		xfree(env->auth_user);
		env->envid = env->client_addr = env->client_helo = env->auth_user = NULL;
		env->ret = 0;
		size_t kept = 0;
		for (size_t i = 0; i < env->nrcpt; i++) {
			env_rcpt_t *r = &env->rcpt[i];
			bool act = e[k].active && e[k].active[i];
			xfree(r->orig);
			xfree(r->orcpt);
			xfree(r->relay);
			xfree(r->sender);
			r->orig = r->orcpt = r->relay = r->sender = NULL;
			if (!act && r->status != RCPT_PENDING) {
				xfree(r->addr);
				xfree(r->reply);
				continue;
			}
			env->rcpt[kept] = *r;
			if (e[k].active)
				e[k].active[kept] = act;
			kept++;
		}
		env->nrcpt = kept;
	}
}

static void
op_list(const control_ctx_t *ctx, const qops_req_t *rq, qops_done_cb cb, void *arg)
{
	size_t n;
	buf_t body = BUF_INIT;
	qview_entry_t *e = sched_snapshot(ctx->sched, NULL, &n);
	if (rq->domain && *rq->domain)
		n = qview_filter_domain(e, n, rq->domain);
	if (rq->redact)
		redact(e, n);
	if (rq->json)
		qview_list_json(&body, e, n);
	else if (rq->verb == QOPS_MAILQ)
		qview_mailq(&body, e, n);
	else
		qview_list_text(&body, e, n);
	qview_entries_free(e, n);
	qops_res_t res = {QOPS_OK, "", "", &body};
	cb(arg, &res);
	buf_free(&body);
}

/* ---- show ---- */

static void
show_work(uv_work_t *req)
{
	qjob_t *j = req->data;
	j->rc = qview_read_headers(j->spool_dir, j->e[0].env, &j->hdr, &j->err);
}

static void
show_done(uv_work_t *req, int status)
{
	qjob_t *j = req->data;
	buf_t body = BUF_INIT;
	if (j->rc < 0)
		log_info("control: show %s: %s", j->qid, buf_cstr(&j->err));
	const char *h = j->rc == 0 ? (j->hdr.data ? j->hdr.data : "") : NULL;
	if (j->json)
		qview_show_json(&body, &j->e[0], h, h ? j->hdr.len : 0);
	else
		qview_show_text(&body, &j->e[0], h, h ? j->hdr.len : 0);
	qops_res_t res = {QOPS_OK, "", "", &body};
	memcpy(res.qid, j->qid, QID_SIZE);
	j->cb(j->arg, &res);
	buf_free(&body);
	qview_entries_free(j->e, j->n);
	buf_free(&j->hdr);
	buf_free(&j->err);
	xfree(j->spool_dir);
	xfree(j);
}

static void
op_show(const control_ctx_t *ctx, const char *qid, bool json, qops_done_cb cb, void *arg)
{
	size_t n = 0;
	qview_entry_t *e = sched_snapshot(ctx->sched, qid, &n);
	if (n == 0) {
		char text[100];
		snprintf(text, sizeof text, "%s: no such message in the queue", qid);
		qview_entries_free(e, n);
		finish(cb, arg, json, QOPS_NOT_FOUND, qid, text);
		return;
	}
	qjob_t *j = xcalloc(1, sizeof *j);
	j->cb = cb;
	j->arg = arg;
	j->json = json;
	memcpy(j->qid, qid, QID_SIZE);
	j->e = e;
	j->n = n;
	j->spool_dir = xstrdup(queue_spool_dir(ctx->queue));
	j->req.data = j;
	uv_queue_work(ctx->loop, &j->req, show_work, show_done);
}

/* ---- hold, release, delete: the scheduler answers once it is on disk ---- */

static void
on_sched_done(void *arg, int err, const char *text)
{
	qjob_t *j = arg;
	finish(j->cb, j->arg, j->json, err ? QOPS_FAILED : QOPS_OK, j->qid, text);
	xfree(j);
}

static void
op_change(const control_ctx_t *ctx, enum qops_verb verb, const char *qid, bool json,
    qops_done_cb cb, void *arg)
{
	buf_t text = BUF_INIT;
	qjob_t *j = xcalloc(1, sizeof *j);
	j->cb = cb;
	j->arg = arg;
	j->json = json;
	memcpy(j->qid, qid, QID_SIZE);
	int rc;
	if (verb == QOPS_DELETE)
		rc = sched_delete(ctx->sched, qid, on_sched_done, j, &text);
	else
		rc = sched_hold(ctx->sched, qid, verb == QOPS_HOLD, on_sched_done, j, &text);
	if (rc != 1) { /* answered now (never from inside the call) */
		xfree(j);
		finish(cb, arg, json, rc < 0 ? QOPS_NOT_FOUND : QOPS_OK, qid, buf_cstr(&text));
	}
	buf_free(&text);
}

/* ---- the entry point ---- */

void
qops_run(const control_ctx_t *ctx, const qops_req_t *rq, qops_done_cb cb, void *arg)
{
	char qid[QID_SIZE] = "";
	buf_t text = BUF_INIT;
	const char *verb = verbs[rq->verb];
	bool needs_qid = rq->verb == QOPS_SHOW || rq->verb == QOPS_HOLD ||
	    rq->verb == QOPS_RELEASE || rq->verb == QOPS_DELETE || rq->verb == QOPS_BOUNCE;
	if ((needs_qid || rq->qid) && !parse_qid(rq->qid, qid)) {
		buf_printf(&text, "%s: expected a queue ID (16 characters 0-9 A-Z)", verb);
		finish(cb, arg, rq->json, QOPS_BAD, NULL, buf_cstr(&text));
		buf_free(&text);
		return;
	}
	switch (rq->verb) {
	case QOPS_LIST:
	case QOPS_MAILQ:
		op_list(ctx, rq, cb, arg);
		break;
	case QOPS_SHOW:
		op_show(ctx, qid, rq->json, cb, arg);
		break;
	case QOPS_FLUSH:
		if (rq->qid) {
			int rc = sched_flush_one(ctx->sched, qid, &text);
			if (rc == 0)
				log_info("control: flush %s", buf_cstr(&text));
			finish(cb, arg, rq->json, rc < 0 ? QOPS_NOT_FOUND : QOPS_OK, qid, buf_cstr(&text));
			break;
		}
		size_t n = sched_flush(ctx->sched, rq->domain);
		buf_printf(&text, "flush%s%s: %zu recipient%s due now", rq->domain ? " " : "",
		    rq->domain ? rq->domain : "", n, n == 1 ? "" : "s");
		log_info("control: %s", buf_cstr(&text));
		finish(cb, arg, rq->json, QOPS_OK, NULL, buf_cstr(&text));
		break;
	case QOPS_HOLD:
	case QOPS_RELEASE:
	case QOPS_DELETE:
		op_change(ctx, rq->verb, qid, rq->json, cb, arg);
		break;
	case QOPS_BOUNCE: {
		int rc = sched_bounce(ctx->sched, qid, &text);
		finish(cb, arg, rq->json, rc < 0 ? QOPS_NOT_FOUND : QOPS_OK, qid, buf_cstr(&text));
		break;
	}
	case QOPS_RELOAD: {
		int rc = ctx->reload ? ctx->reload(ctx->reload_arg, &text) : -1;
		if (!ctx->reload)
			buf_puts(&text, "reload: not available here");
		finish(cb, arg, rq->json, rc < 0 ? QOPS_FAILED : QOPS_OK, NULL, buf_cstr(&text));
		break;
	}
	}
	buf_free(&text);
}
