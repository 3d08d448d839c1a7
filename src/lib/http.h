/*
 * http.h - HTTPS GET requests on the event loop: libcurl's multi interface
 * driven by libuv (curl_multi_socket_action, with CURLMOPT_SOCKETFUNCTION
 * watching each socket curl names with a uv_poll_t, and
 * CURLMOPT_TIMERFUNCTION arming one uv_timer_t).
 *
 * And HTTPS POST requests with a body (TLS-RPT reports, RFC 8460 section
 * 5.4), under the same rules.
 *
 * Used for MTA-STS policies (RFC 8461 §3.3), so every request is strict:
 * https only, the certificate verified (ca_file, or the system store) for
 * the URL's host, no redirects followed, the body bounded (max_size: a
 * larger one fails the request), a total time limit, and the server's
 * address given by the caller (its own DNS, never curl's resolver or the
 * system's: "host:port:address" as CURLOPT_RESOLVE takes it).
 *
 * Guarantees: the callback runs exactly once per request, on the loop,
 * never from inside http_get(), unless http_cancel() came first (then
 * never). Nothing blocks the loop: connects, TLS and reads are all curl's
 * non-blocking state machine, woken by the polls and the timer.
 * Must not: be used from another thread than the loop's.
 */
#ifndef TERN_HTTP_H
#define TERN_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct http http_t;
typedef struct http_req http_req_t;

typedef struct http_get_options {
	const char *url;      /* https://... */
	const char *resolve;  /* "host:port:address" (CURLOPT_RESOLVE); NULL: none */
	const char *ca_file;  /* PEM CAs; NULL: the system store */
	size_t max_size;      /* body limit in octets; 0: 64 KiB */
	unsigned timeout_ms;  /* whole request; 0: 60 s */
} http_get_options_t;

typedef struct http_result {
	int ok;                   /* 1: the transfer finished (any HTTP status) */
	long status;              /* the HTTP status code, 0 when none */
	const char *content_type; /* as sent, or NULL */
	const char *body;         /* NUL-terminated (the length is body_len) */
	size_t body_len;
	const char *error;        /* !ok: why ("timeout", curl's message ...); else "" */
	int cert_failed;          /* !ok because the server's certificate did not verify */
} http_result_t;

/* The result is valid during the call only. */
typedef void (*http_cb)(void *arg, const http_result_t *r);

/* NULL when libcurl cannot start (logged). */
http_t *http_new(uv_loop_t *loop);
/* Requests in flight are dropped without callbacks; handles close on the
 * loop's next turns. NULL is a no-op. */
void http_free(http_t *h);

/* Never NULL; the options are copied. */
http_req_t *http_get(http_t *h, const http_get_options_t *o, http_cb cb, void *arg);
/* A POST of body[0..len) with that Content-Type (copied); o as for
 * http_get (max_size bounds the response's body). Never NULL. */
http_req_t *http_post(http_t *h, const http_get_options_t *o, const char *content_type,
    const void *body, size_t len, http_cb cb, void *arg);
/* The callback will never be called. NULL is a no-op. */
void http_cancel(http_req_t *r);

#endif
