/*
 * http.c - libcurl's multi interface on the libuv loop (see http.h).
 *
 * The standard pattern (libcurl's multi-uv.c example): curl tells us which
 * sockets to watch (socket_cb: a uv_poll_t per socket, kept as curl's
 * socketp) and when to wake it (timer_cb: one uv_timer_t); the loop tells
 * curl what happened (curl_multi_socket_action); finished transfers come
 * out of curl_multi_info_read. curl is never called from inside its own
 * callbacks: a timeout of 0 goes through the timer too.
 * Owns: the multi handle, each request's easy handle and body.
 */
#include "lib/http.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define HTTP_DEFAULT_MAX (64u * 1024u)
#define HTTP_DEFAULT_TIMEOUT_MS 60000u

struct http {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	uv_timer_t defer;       /* reports requests that failed before curl ran them */
	http_req_t *reqs;       /* in flight */
	http_req_t *failed;     /* to report from the defer timer */
	struct sock *socks;     /* watched now */
	int handles_open;
	bool freeing;
};

struct http_req {
	http_req_t *next, *prev;
	http_t *h;
	CURL *easy;
	struct curl_slist *resolve;
	struct curl_slist *headers; /* POST: the Content-Type */
	char *post;                 /* POST: the body (curl does not copy it) */
	buf_t body;
	size_t max;
	bool too_big;
	bool in_multi;
	bool failed;   /* on h->failed: set up failed, reported from the defer timer */
	http_cb cb;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
};

struct sock {
	struct sock *next, *prev;
	uv_poll_t poll;
	curl_socket_t fd;
	http_t *h;
};

static void check_done(http_t *h);

static void on_sock_closed(uv_handle_t *hd);

static void
sock_close(http_t *h, struct sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		h->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* take r out of its list (h->reqs, or h->failed when r->failed) */
static void
req_unlink(http_req_t *r)
{
	http_t *h = r->h;
	http_req_t **head = r->failed ? &h->failed : &h->reqs;
	if (r->prev)
		r->prev->next = r->next;
	else
		*head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
}

/* the first request of *head, taken out of the list; NULL when empty */
static http_req_t *
req_pop(http_req_t **head)
{
	http_req_t *r = *head;
	if (!r)
		return NULL;
	*head = r->next;
	if (*head)
		(*head)->prev = NULL;
	r->next = r->prev = NULL;
	return r;
}

static void
req_free(http_req_t *r)
{
	if (r->easy) {
		if (r->in_multi)
			curl_multi_remove_handle(r->h->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	curl_slist_free_all(r->resolve);
	curl_slist_free_all(r->headers);
	xfree(r->post);
	buf_free(&r->body);
	xfree(r);
}

static void
on_sock_closed(uv_handle_t *hd)
{
	struct sock *s = hd->data;
	http_t *h = s->h;
	xfree(s);
	if (--h->handles_open == 0 && h->freeing)
		xfree(h);
}

static void
on_poll(uv_poll_t *p, int status, int events)
{
	struct sock *s = p->data;
	http_t *h = s->h;
	int flags = 0, running;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h->multi, s->fd, flags, &running);
	check_done(h);
}

static int
socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	http_t *h = userp;
	struct sock *s = socketp;
	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			sock_close(h, s);
			curl_multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	if (!s) {
		s = xcalloc(1, sizeof *s);
		s->fd = fd;
		s->h = h;
		if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
			xfree(s);
			return -1;
		}
		s->poll.data = s;
		s->next = h->socks;
		if (h->socks)
			h->socks->prev = s;
		h->socks = s;
		h->handles_open++;
		curl_multi_assign(h->multi, fd, s);
	}
	int ev = 0;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, on_poll);
	return 0;
}

static void
on_timer(uv_timer_t *t)
{
	http_t *h = t->data;
	int running;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	http_t *h = userp;
	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

static void
req_report(http_req_t *r, CURLcode rc)
{
	http_result_t res;
	memset(&res, 0, sizeof res);
	char *ctype = NULL;
	if (rc == CURLE_OK) {
		res.ok = 1;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &res.status);
		curl_easy_getinfo(r->easy, CURLINFO_CONTENT_TYPE, &ctype);
		res.content_type = ctype;
		res.error = "";
	} else if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		res.error = "the body is larger than the limit";
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		res.error = "timeout";
	} else if (rc == CURLE_PEER_FAILED_VERIFICATION) {
		res.cert_failed = 1;
		res.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
	} else {
		res.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
	}
	res.body = buf_cstr(&r->body);
	res.body_len = r->body.len;
	r->cb(r->arg, &res);
}

static void
check_done(http_t *h)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		http_req_t *r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		CURLcode rc = m->data.result;
		if (!r)
			continue;
		req_unlink(r);
		curl_multi_remove_handle(h->multi, r->easy);
		r->in_multi = false;
		req_report(r, rc);
		req_free(r);
	}
}

static void
on_defer(uv_timer_t *t)
{
	http_t *h = t->data;
	http_req_t *r;
	while ((r = req_pop(&h->failed)) != NULL) {
		req_report(r, CURLE_FAILED_INIT);
		req_free(r);
	}
}

static size_t
write_cb(char *p, size_t size, size_t n, void *arg)
{
	http_req_t *r = arg;
	size_t len = size * n;
	if (r->body.len + len > r->max) {
		r->too_big = true;
		return 0; /* CURLE_WRITE_ERROR: the transfer stops */
	}
	buf_append(&r->body, p, len);
	return len;
}

http_t *
http_new(uv_loop_t *loop)
{
	static bool inited;
	if (!inited) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			log_err("http: libcurl cannot start");
			return NULL;
		}
		inited = true;
	}
	http_t *h = xcalloc(1, sizeof *h);
	h->loop = loop;
	h->multi = curl_multi_init();
	if (!h->multi) {
		log_err("http: curl_multi_init failed");
		xfree(h);
		return NULL;
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	uv_timer_init(loop, &h->timer);
	uv_timer_init(loop, &h->defer);
	h->timer.data = h->defer.data = h;
	h->handles_open = 2;
	return h;
}

static void
on_timer_closed(uv_handle_t *hd)
{
	http_t *h = hd->data;
	if (--h->handles_open == 0)
		xfree(h);
}

void
http_free(http_t *h)
{
	if (!h)
		return;
	http_req_t *r;
	while ((r = req_pop(&h->reqs)) != NULL)
		req_free(r);
	while ((r = req_pop(&h->failed)) != NULL)
		req_free(r);
	h->freeing = true;
	curl_multi_cleanup(h->multi); /* may close polls through socket_cb */
	h->multi = NULL;
	while (h->socks)
		sock_close(h, h->socks);
	uv_close((uv_handle_t *)&h->timer, on_timer_closed);
	uv_close((uv_handle_t *)&h->defer, on_timer_closed);
}

/* one request: GET, or POST when post_type is set */
static http_req_t *
req_start(http_t *h, const http_get_options_t *o, const char *post_type, const void *post,
    size_t post_len, http_cb cb, void *arg)
{
	http_req_t *r = xcalloc(1, sizeof *r);
	r->h = h;
	r->cb = cb;
	r->arg = arg;
	r->max = o->max_size ? o->max_size : HTTP_DEFAULT_MAX;
	r->easy = curl_easy_init();
	bool ok = r->easy != NULL;
	if (ok && o->resolve) {
		r->resolve = curl_slist_append(NULL, o->resolve);
		ok = r->resolve != NULL;
	}
	if (ok && post_type) {
		char *ct = xasprintf("Content-Type: %s", post_type);
		r->headers = curl_slist_append(NULL, ct);
		xfree(ct);
		r->post = xmalloc(post_len ? post_len : 1);
		if (post_len)
			memcpy(r->post, post, post_len);
		ok = r->headers != NULL;
	}
	if (ok) {
		CURL *e = r->easy;
		/* RFC 8461 §3.3: HTTPS only, a valid certificate, no redirects */
		ok = curl_easy_setopt(e, CURLOPT_URL, o->url) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
		        (long)(o->timeout_ms ? o->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS)) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK &&
		    curl_easy_setopt(e, CURLOPT_USERAGENT, "tern") == CURLE_OK &&
		    (!r->resolve || curl_easy_setopt(e, CURLOPT_RESOLVE, r->resolve) == CURLE_OK) &&
		    (!o->ca_file || curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file) == CURLE_OK);
		if (ok && post_type)
			ok = curl_easy_setopt(e, CURLOPT_POST, 1L) == CURLE_OK &&
			    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK &&
			    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)post_len) ==
			        CURLE_OK &&
			    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->post) == CURLE_OK;
	}
	if (ok && curl_multi_add_handle(h->multi, r->easy) == CURLM_OK) {
		r->in_multi = true;
		r->next = h->reqs;
		if (h->reqs)
			h->reqs->prev = r;
		h->reqs = r;
		return r; /* curl asks for its timer: the transfer starts on the loop */
	}
	snprintf(r->errbuf, sizeof r->errbuf, "cannot set the request up");
	r->failed = true;
	r->next = h->failed;
	if (h->failed)
		h->failed->prev = r;
	h->failed = r;
	uv_timer_start(&h->defer, on_defer, 0, 0);
	return r;
}

http_req_t *
http_get(http_t *h, const http_get_options_t *o, http_cb cb, void *arg)
{
	return req_start(h, o, NULL, NULL, 0, cb, arg);
}

http_req_t *
http_post(http_t *h, const http_get_options_t *o, const char *content_type, const void *body,
    size_t len, http_cb cb, void *arg)
{
	return req_start(h, o, content_type ? content_type : "application/octet-stream", body, len,
	    cb, arg);
}

void
http_cancel(http_req_t *r)
{
	if (!r)
		return;
	req_unlink(r);
	req_free(r);
}
