/*
 * api.c - the JSON API's routes (see api.h): each maps a method and path
 * to a qops_req_t, runs it through control/qops.c (the code behind the
 * control socket too) and turns its outcome into a status and a body.
 *
 * The answer always goes through httpd_answer (HTTPD_LATER): qops may call
 * back at once or later (show's read on the pool, hold/release/delete once
 * on disk), and httpd takes both. A request is logged with its outcome
 * when it changes something.
 *
 * Must not: block the loop, or act without the token (httpd checks it
 * before any handler runs).
 */
#include "control/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"
#include "control/qops.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define TOKEN_FILE_MAX 4096

struct api {
	control_ctx_t ctx;
};

/* qops' outcome -> the HTTP answer */
static void
on_done(void *arg, const qops_res_t *res)
{
	httpd_req_t *req = arg;
	int status = res->code == QOPS_OK ? 200 : res->code == QOPS_BAD ? 400
	    : res->code == QOPS_NOT_FOUND ? 404 : 500;
	if (strcmp(httpd_req_method(req), "GET") != 0)
		log_info("api: %s %s: %d %s", httpd_req_method(req), httpd_req_path(req), status,
		    res->text);
	buf_t body = BUF_INIT;
	buf_append(&body, res->body->data ? res->body->data : "", res->body->len);
	httpd_answer(req, status, "application/json", &body);
	buf_free(&body);
}

static int
not_found(buf_t *body)
{
	buf_puts(body, "{\"error\":\"no such resource\"}\n");
	return 404;
}

static int
run(api_t *a, httpd_req_t *req, const qops_req_t *rq)
{
	qops_run(&a->ctx, rq, on_done, req);
	return HTTPD_LATER;
}

/* GET /api/v1/queue[/QID] */
static int
h_get(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	const char *rest = httpd_req_rest(req);
	qops_req_t rq = {.json = true};
	if (!*rest) {
		rq.verb = QOPS_LIST;
		rq.domain = httpd_req_query(req, "domain");
	} else if (!strchr(rest, '/')) {
		rq.verb = QOPS_SHOW;
		rq.qid = rest;
	} else {
		return not_found(body);
	}
	return run(arg, req, &rq);
}

/* POST /api/v1/queue/flush, /api/v1/queue/QID/{flush,hold,release,bounce} */
static int
h_post(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	const char *rest = httpd_req_rest(req);
	qops_req_t rq = {.json = true};
	if (strcmp(rest, "flush") == 0) {
		rq.verb = QOPS_FLUSH;
		rq.domain = httpd_req_query(req, "domain");
		if (rq.domain && !*rq.domain)
			rq.domain = NULL;
		return run(arg, req, &rq);
	}
	const char *slash = strchr(rest, '/');
	if (!slash || slash - rest != QID_LEN)
		return not_found(body);
	char qid[QID_SIZE];
	memcpy(qid, rest, QID_LEN);
	qid[QID_LEN] = '\0';
	const char *action = slash + 1;
	if (strcmp(action, "flush") == 0)
		rq.verb = QOPS_FLUSH;
	else if (strcmp(action, "hold") == 0)
		rq.verb = QOPS_HOLD;
	else if (strcmp(action, "release") == 0)
		rq.verb = QOPS_RELEASE;
	else if (strcmp(action, "bounce") == 0)
		rq.verb = QOPS_BOUNCE;
	else
		return not_found(body);
	rq.qid = qid; /* qops copies what it keeps */
	return run(arg, req, &rq);
}

/* DELETE /api/v1/queue/QID */
static int
h_delete(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	const char *rest = httpd_req_rest(req);
	if (!*rest || strchr(rest, '/'))
		return not_found(body);
	qops_req_t rq = {.verb = QOPS_DELETE, .qid = rest, .json = true};
	return run(arg, req, &rq);
}

/* POST /api/v1/reload */
static int
h_reload(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	if (*httpd_req_rest(req))
		return not_found(body);
	qops_req_t rq = {.verb = QOPS_RELOAD, .json = true};
	return run(arg, req, &rq);
}

api_t *
api_new(httpd_t *h, const control_ctx_t *ctx)
{
	api_t *a = xcalloc(1, sizeof *a);
	a->ctx = *ctx;
	httpd_route(h, "GET", "/api/v1/queue", 0, h_get, a);
	httpd_route(h, "POST", "/api/v1/queue", 0, h_post, a);
	httpd_route(h, "DELETE", "/api/v1/queue", 0, h_delete, a);
	httpd_route(h, "POST", "/api/v1/reload", 0, h_reload, a);
	return a;
}

void
api_free(api_t *a)
{
	xfree(a);
}

int
api_token_load(const config_t *c, httpd_t *h, buf_t *err)
{
	if (!c->http_token_file) {
		if (h)
			httpd_set_token(h, NULL, 0);
		return 0;
	}
	char *data = NULL;
	size_t len = 0;
	if (secret_read(SECRET_HTTP_TOKEN, c->http_token_file, config_run_uid(c), TOKEN_FILE_MAX,
	    &data, &len, err) < 0)
		return -1;
	/* the first line, trimmed */
	size_t b = 0, e;
	while (b < len && (data[b] == ' ' || data[b] == '\t'))
		b++;
	e = b;
	while (e < len && data[e] != '\n' && data[e] != '\r')
		e++;
	while (e > b && (data[e - 1] == ' ' || data[e - 1] == '\t'))
		e--;
	int rc = 0;
	for (size_t i = b; i < e && rc == 0; i++)
		if ((unsigned char)data[i] <= 0x20 || (unsigned char)data[i] >= 0x7f)
			rc = -1;
	if (rc < 0)
		buf_printf(err, "http_token_file %s: the token may hold only visible ASCII characters",
		    c->http_token_file);
	else if (e - b < API_TOKEN_MIN) {
		buf_printf(err, "http_token_file %s: the token (its first line) is shorter than %d "
		    "characters; e.g. openssl rand -hex 32 > %s", c->http_token_file, API_TOKEN_MIN,
		    c->http_token_file);
		rc = -1;
	}
	if (rc == 0 && h)
		httpd_set_token(h, data + b, e - b);
	explicit_bzero(data, len);
	free(data);
	return rc;
}
