/*
 * tlsrpt_send.c - the TLS-RPT reports' delivery (contract in
 * tlsrpt_send.h).
 *
 * One flush: the entries tlsrpt_take() gave, one TXT lookup per domain,
 * and per https: URI an address lookup then a POST. A reference count
 * (pending) holds the flush while anything is in flight; at zero a timer
 * frees the resolver and the HTTP client on a later turn (never from
 * inside their own callbacks).
 *
 * Retries (RFC 8460 section 5.5: redelivery for up to 24 hours, ideally
 * with exponential back-off): a POST that failed (no address, no
 * connection, a non-2xx answer), or was in flight at shutdown, is kept in
 * a list of pending reports (URL, report-id, the gzipped body, the time
 * of the first attempt, the tries so far): at most TLSRPT_RETRY_MAX, the
 * oldest dropped (logged) to make room. tlsrpt_send_retry() posts the
 * ones due through a flush of their own (no TXT lookup: the body is the
 * one first posted); the waits double from the configured first one up to
 * TLSRPT_RETRY_CAP; a report first tried more than TLSRPT_RETRY_FOR ago
 * is dropped (logged). The list is saved as JSON (the body in base64) by
 * tlsrpt_send_save() and read back by tlsrpt_send_load().
 */
#include "deliver/tlsrpt_send.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/report_mail.h"
#include "deliver/tlsrpt.h"
#include "lib/gzip.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mailauth/dmarc_report.h"

#define POST_TIMEOUT_MS 60000u
#define TLSRPT_RETRY_FOR (24 * 3600) /* section 5.5 */
#define TLSRPT_RETRY_CAP (6 * 3600)

typedef struct report report_t;
typedef struct post post_t;

typedef struct flush {
	struct flush *next, *prev; /* flushes under way */
	report_t *reports;         /* in flight */
	uv_loop_t *loop;
	json_t *entries;
	dns_t *dns;
	http_t *http;
	char *org, *email, *contact, *submitter, *ca_file;
	tlsrpt_submit_fn submit;
	void *arg;
	size_t pending;
	uv_timer_t *reaper;
} flush_t;

/* one domain's report */
struct report {
	report_t *next, *prev;
	post_t *posts; /* in flight */
	flush_t *f;
	char *domain;
	const json_t *entry;
	dns_query_t *q;
	buf_t gz;      /* the gzipped JSON */
	char *id;      /* report-id */
	char *fname;
	time_t begin, end;
	size_t refs;   /* the TXT lookup's, then one per POST in flight */
	time_t first;  /* a retried report: its first attempt; else 0 (now) */
	unsigned tries; /* a retried report: its failed attempts so far */
};

/* one POST */
struct post {
	post_t *next, *prev;
	report_t *r;
	char *url, *host;
	unsigned port;
	int family; /* the address lookup under way: A, then AAAA */
	dns_query_t *q;
	http_req_t *req;
};

static flush_t *flushes;

/* an HTTPS report waiting to be posted again */
typedef struct pending {
	struct pending *next;
	char *url, *id, *domain;
	buf_t gz;
	time_t first, next_at;
	unsigned tries;
} pending_t;

static pending_t *pend; /* oldest first */
static size_t npend;
static bool pend_changed;
static unsigned retry_first = 300; /* seconds: the first wait */

static void
pending_free(pending_t *q)
{
	xfree(q->url);
	xfree(q->id);
	xfree(q->domain);
	buf_free(&q->gz);
	xfree(q);
}

/* append q (the list keeps the order of first attempts, near enough) */
static void
pending_add(pending_t *q)
{
	while (npend >= TLSRPT_RETRY_MAX && pend) {
		pending_t *old = pend;
		pend = old->next;
		npend--;
		log_warn("tls-rpt: report %s for %s to %s dropped: %d reports already wait for a "
			 "retry", old->id, old->domain, old->url, TLSRPT_RETRY_MAX);
		pending_free(old);
	}
	q->next = NULL;
	pending_t **pp = &pend;
	while (*pp)
		pp = &(*pp)->next;
	*pp = q;
	npend++;
	pend_changed = true;
}

/* r's POST to url failed (failed) or was cut short by a shutdown: keep it
 * for a later try, unless its day is over */
static void
pending_keep(const report_t *r, const char *url, bool failed)
{
	time_t now = time(NULL);
	time_t first = r->first ? r->first : now;
	unsigned tries = r->tries + (failed ? 1u : 0u);
	if (now - first >= TLSRPT_RETRY_FOR) {
		log_warn("tls-rpt: report %s for %s to %s dropped: not delivered in %d hours (%u "
			 "attempts)", r->id, r->domain, url, TLSRPT_RETRY_FOR / 3600, tries);
		return;
	}
	uint64_t wait = retry_first;
	for (unsigned i = 1; i < tries && wait < TLSRPT_RETRY_CAP; i++)
		wait *= 2;
	if (wait > TLSRPT_RETRY_CAP)
		wait = TLSRPT_RETRY_CAP;
	if (!failed)
		wait = 0;
	pending_t *q = xcalloc(1, sizeof *q);
	q->url = xstrdup(url);
	q->id = xstrdup(r->id);
	q->domain = xstrdup(r->domain);
	buf_append(&q->gz, r->gz.data, r->gz.len);
	q->first = first;
	q->tries = tries;
	q->next_at = now + (time_t)wait;
	if (failed)
		log_info("tls-rpt: report %s for %s to %s: next attempt in %llu s", r->id, r->domain,
		    url, (unsigned long long)wait);
	pending_add(q);
}

#define LIST_ADD(head, x)                 \
	do {                              \
		(x)->prev = NULL;         \
		(x)->next = (head);       \
		if (head)                 \
			(head)->prev = (x); \
		(head) = (x);             \
	} while (0)
#define LIST_DEL(head, x)                          \
	do {                                       \
		if ((x)->prev)                     \
			(x)->prev->next = (x)->next; \
		else                               \
			(head) = (x)->next;        \
		if ((x)->next)                     \
			(x)->next->prev = (x)->prev; \
	} while (0)

static void
reaped(uv_handle_t *h)
{
	xfree(h);
}

static void
flush_free(flush_t *f)
{
	LIST_DEL(flushes, f);
	dns_free(f->dns);
	http_free(f->http);
	json_decref(f->entries);
	xfree(f->org);
	xfree(f->email);
	xfree(f->contact);
	xfree(f->submitter);
	xfree(f->ca_file);
	xfree(f);
}

static void
reap(uv_timer_t *t)
{
	flush_t *f = t->data;
	uv_close((uv_handle_t *)t, reaped);
	f->reaper = NULL;
	flush_free(f);
}

static void
flush_put(flush_t *f)
{
	if (--f->pending > 0)
		return;
	f->reaper = xmalloc(sizeof *f->reaper);
	uv_timer_init(f->loop, f->reaper);
	f->reaper->data = f;
	uv_timer_start(f->reaper, reap, 0, 0);
}

static void
report_destroy(report_t *r)
{
	xfree(r->domain);
	buf_free(&r->gz);
	xfree(r->id);
	xfree(r->fname);
	xfree(r);
}

static void
report_free(report_t *r)
{
	LIST_DEL(r->f->reports, r);
	report_destroy(r);
}

/* ---- mailto: ---- */

static void
send_mail(report_t *r, const char *uri)
{
	flush_t *f = r->f;
	buf_t addr = BUF_INIT;
	uint64_t limit;
	if (dmarc_report_mailto(uri, &addr, &limit) < 0) {
		log_info("tls-rpt: %s: rua %s is not a usable mailto: address", r->domain, uri);
		buf_free(&addr);
		return;
	}
	char b[32], e[32];
	tlsrpt_datetime(r->begin, b, sizeof b);
	tlsrpt_datetime(r->end, e, sizeof e);
	/* section 5.3 */
	char *subject = xasprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", r->domain,
	    f->submitter, r->id);
	/* section 5.3 wants the report delivered despite TLS failures at the
	 * reporting address: RFC 8689 section 4.2.2 names this use of
	 * "TLS-Required: No" (the queue entry carries ENV_TLS_OPTIONAL, set by
	 * daemon/reports.c for this kind) */
	char *headers = xasprintf("TLS-Report-Domain: %s\r\nTLS-Report-Submitter: %s\r\n"
				  "TLS-Required: No\r\n", r->domain, f->submitter);
	char *text = xasprintf("This is an aggregate TLS report (RFC 8460) from %s for %s,\r\n"
			       "covering %s to %s.\r\n", f->org, r->domain, b, e);
	report_mail_t m = {
		.tag = "tlsrpt",
		.from = f->email,
		.to = buf_cstr(&addr),
		.subject = subject,
		.id = r->id,
		.date = time(NULL),
		.headers = headers,
		.multipart = "report; report-type=\"tlsrpt\"",
		.text = text,
		.att_type = "application/tlsrpt+gzip",
		.filename = r->fname,
		.att = r->gz.data,
		.att_len = r->gz.len,
	};
	buf_t msg = BUF_INIT;
	report_mail_build(&m, &msg);
	if (limit && msg.len > limit) {
		log_info("tls-rpt: %s: report to %s not sent: %zu octets, over its limit of %llu",
		    r->domain, buf_cstr(&addr), msg.len, (unsigned long long)limit);
	} else {
		f->submit(f->arg, f->email, buf_cstr(&addr), msg.data, msg.len);
		log_info("tls-rpt: report %s for %s to %s queued", r->id, r->domain, buf_cstr(&addr));
	}
	buf_free(&msg);
	buf_free(&addr);
	xfree(subject);
	xfree(headers);
	xfree(text);
}

/* ---- https: ---- */

int
tlsrpt_https_host(const char *uri, char *host, size_t hcap, unsigned *port)
{
	if (strncasecmp(uri, "https://", 8) != 0)
		return -1;
	const char *h = uri + 8, *end;
	*port = 443;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end)
			return -1;
		h++;
	} else {
		end = h + strcspn(h, ":/?#");
	}
	size_t n = (size_t)(end - h);
	if (n == 0 || n >= hcap || memchr(h, '@', n))
		return -1; /* no user info: a report goes to a host, not an account */
	memcpy(host, h, n);
	host[n] = '\0';
	const char *p = *end == ']' ? end + 1 : end;
	if (*p == ':') {
		char *e;
		unsigned long v = strtoul(p + 1, &e, 10);
		if (e == p + 1 || v == 0 || v > 65535 || (*e && *e != '/' && *e != '?' && *e != '#'))
			return -1;
		*port = (unsigned)v;
	} else if (*p && *p != '/' && *p != '?' && *p != '#') {
		return -1;
	}
	return 0;
}

static void
post_destroy(post_t *p)
{
	xfree(p->url);
	xfree(p->host);
	xfree(p);
}

static void
post_free(post_t *p)
{
	LIST_DEL(p->r->posts, p);
	post_destroy(p);
}

static void report_put(report_t *r);

static void
on_posted(void *arg, const http_result_t *res)
{
	post_t *p = arg;
	report_t *r = p->r;
	p->req = NULL;
	bool ok = res->ok && res->status >= 200 && res->status < 300;
	if (ok)
		log_info("tls-rpt: report %s for %s posted to %s (HTTP %ld)", r->id, r->domain, p->url,
		    res->status);
	else if (res->ok)
		log_warn("tls-rpt: report %s for %s: %s answered HTTP %ld", r->id, r->domain, p->url,
		    res->status);
	else
		log_warn("tls-rpt: report %s for %s: POST to %s failed: %s", r->id, r->domain, p->url,
		    res->error);
	if (!ok)
		pending_keep(r, p->url, true);
	post_free(p);
	report_put(r);
}

static void
post_start(post_t *p, const char *ip)
{
	report_t *r = p->r;
	char *resolve = ip ? xasprintf("%s:%u:%s%s%s", p->host, p->port,
	    strchr(ip, ':') ? "[" : "", ip, strchr(ip, ':') ? "]" : "") : NULL;
	http_get_options_t o;
	memset(&o, 0, sizeof o);
	o.url = p->url;
	o.resolve = resolve;
	o.ca_file = r->f->ca_file;
	o.timeout_ms = POST_TIMEOUT_MS;
	p->req = http_post(r->f->http, &o, "application/tlsrpt+gzip", r->gz.data, r->gz.len,
	    on_posted, p);
	xfree(resolve);
}

static void
on_addr(void *arg, const dns_result_t *res)
{
	post_t *p = arg;
	p->q = NULL;
	if (res->status == DNS_OK && res->n > 0) {
		post_start(p, res->rr[0].u.addr.text);
		return;
	}
	if (p->family == DNS_T_A) {
		p->family = DNS_T_AAAA;
		p->q = dns_query(p->r->f->dns, p->host, DNS_T_AAAA, on_addr, p);
		return;
	}
	log_warn("tls-rpt: report %s for %s: %s: no address for %s (%s)", p->r->id, p->r->domain,
	    p->url, p->host, res->why);
	report_t *r = p->r;
	pending_keep(r, p->url, true);
	post_free(p);
	report_put(r);
}

static void
send_post(report_t *r, const char *uri)
{
	char host[256];
	unsigned port;
	if (!r->f->http) {
		log_warn("tls-rpt: %s: rua %s skipped: no HTTP client", r->domain, uri);
		return;
	}
	if (tlsrpt_https_host(uri, host, sizeof host, &port) < 0) {
		log_info("tls-rpt: %s: rua %s is not a usable https: URI", r->domain, uri);
		return;
	}
	post_t *p = xcalloc(1, sizeof *p);
	p->r = r;
	LIST_ADD(r->posts, p);
	p->url = xstrdup(uri);
	p->host = xstrdup(host);
	p->port = port;
	r->refs++; /* report_put when the post is done */
	unsigned char a6[16];
	if (inet_pton(AF_INET, host, a6) == 1 || inet_pton(AF_INET6, host, a6) == 1) {
		post_start(p, NULL); /* an address literal: nothing to resolve */
		return;
	}
	p->family = DNS_T_A;
	p->q = dns_query(r->f->dns, host, DNS_T_A, on_addr, p);
}

/* ---- per domain ---- */

/* a step of r is done; the last one frees it and lets go of its flush */
static void
report_put(report_t *r)
{
	if (--r->refs > 0)
		return;
	flush_t *f = r->f;
	report_free(r);
	flush_put(f);
}

static void
build(report_t *r)
{
	flush_t *f = r->f;
	unsigned char rnd[4];
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		memset(rnd, 0x5a, sizeof rnd);
	r->id = xasprintf("%lld.%s.%02x%02x%02x%02x@%s", (long long)r->begin, r->domain, rnd[0],
	    rnd[1], rnd[2], rnd[3], f->submitter);
	/* section 5.1: sender "!" policy-domain "!" begin "!" end ".json.gz" */
	r->fname = xasprintf("%s!%s!%lld!%lld.json.gz", f->submitter, r->domain,
	    (long long)r->begin, (long long)r->end);
	tlsrpt_meta_t m = {f->org, f->contact, r->id};
	buf_t json = BUF_INIT;
	tlsrpt_report_json(&m, r->entry, &json);
	if (gzip_compress(json.data, json.len, &r->gz) < 0)
		buf_reset(&r->gz);
	buf_free(&json);
}

static void
on_txt(void *arg, const dns_result_t *res)
{
	report_t *r = arg;
	r->q = NULL;
	/* section 3: records that do not begin with "v=TLSRPTv1" are
	 * discarded; other than one left, the domain does not take reports */
	tlsrpt_record_t rec, one;
	memset(&one, 0, sizeof one);
	size_t nrec = 0;
	buf_t t = BUF_INIT, err = BUF_INIT;
	for (size_t i = 0; res->status == DNS_OK && i < res->n; i++) {
		buf_reset(&t);
		if (dns_txt_join(res->rr[i].rdata, res->rr[i].rdlen, &t) < 0)
			continue;
		buf_reset(&err);
		int k = tlsrpt_record_parse(t.data ? t.data : "", t.len, &rec, &err);
		if (k == 0)
			continue;
		nrec++;
		if (k < 0)
			log_info("tls-rpt: _smtp._tls.%s: malformed record: %s", r->domain,
			    buf_cstr(&err));
		if (k > 0 && nrec == 1)
			one = rec;
		else if (k > 0)
			tlsrpt_record_free(&rec);
	}
	buf_free(&t);
	buf_free(&err);
	if (nrec != 1 || one.nrua == 0) {
		log_info("tls-rpt: %s: no report sent: %s", r->domain,
		    res->status != DNS_OK && res->status != DNS_NXDOMAIN && res->status != DNS_NODATA
		    ? res->why : nrec > 1 ? "more than one TLSRPTv1 record" : "no usable _smtp._tls record");
		tlsrpt_record_free(&one);
		report_put(r);
		return;
	}
	build(r);
	if (r->gz.len == 0) {
		log_err("tls-rpt: %s: cannot compress the report", r->domain);
	} else {
		for (size_t i = 0; i < one.nrua; i++) {
			if (strncasecmp(one.rua[i], "mailto:", 7) == 0)
				send_mail(r, one.rua[i]);
			else
				send_post(r, one.rua[i]);
		}
	}
	tlsrpt_record_free(&one);
	report_put(r);
}

/* a flush with its resolver and HTTP client (NULL when the resolver cannot
 * start: logged); pending 1, its caller's */
static flush_t *
flush_new(uv_loop_t *loop, const tlsrpt_send_options_t *o, tlsrpt_submit_fn submit, void *arg)
{
	if (o->retry_s)
		retry_first = o->retry_s;
	buf_t err = BUF_INIT;
	dns_t *dns = dns_new(loop, &o->dns, &err);
	if (!dns) {
		log_err("tls-rpt: cannot start a resolver: %s", buf_cstr(&err));
		buf_free(&err);
		return NULL;
	}
	buf_free(&err);
	flush_t *f = xcalloc(1, sizeof *f);
	LIST_ADD(flushes, f);
	f->loop = loop;
	f->dns = dns;
	f->org = xstrdup(o->org);
	f->email = xstrdup(o->email);
	f->contact = xstrdup(o->contact);
	f->submitter = xstrdup(o->submitter);
	f->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
	f->submit = submit;
	f->arg = arg;
	f->pending = 1;
	f->http = http_new(loop); /* NULL (logged): https: addresses are skipped */
	return f;
}

void
tlsrpt_send_flush(uv_loop_t *loop, const tlsrpt_send_options_t *o, tlsrpt_submit_fn submit,
    void *arg)
{
	json_t *entries = tlsrpt_take(time(NULL), o->through_now);
	if (!entries)
		return;
	flush_t *f = flush_new(loop, o, submit, arg);
	if (!f) {
		log_err("tls-rpt: %zu reports dropped", json_array_size(entries));
		json_decref(entries);
		return;
	}
	f->entries = entries;
	for (size_t i = 0; i < json_array_size(entries); i++) {
		json_t *e = json_array_get(entries, i);
		report_t *r = xcalloc(1, sizeof *r);
		r->f = f;
		LIST_ADD(f->reports, r);
		r->entry = e;
		r->domain = xstrdup(json_string_value(json_object_get(e, "domain")));
		r->begin = (time_t)json_integer_value(json_object_get(e, "begin"));
		r->end = (time_t)json_integer_value(json_object_get(e, "end"));
		r->refs = 1;
		f->pending++;
		char *name = xasprintf("_smtp._tls.%s", r->domain);
		r->q = dns_query(f->dns, name, DNS_T_TXT, on_txt, r);
		xfree(name);
	}
	flush_put(f);
}

void
tlsrpt_send_stop(void)
{
	while (flushes) {
		flush_t *f = flushes;
		report_t *r;
		while ((r = f->reports) != NULL) {
			f->reports = r->next;
			post_t *p;
			while ((p = r->posts) != NULL) {
				r->posts = p->next;
				pending_keep(r, p->url, false); /* posted again at the next start */
				dns_cancel(p->q);
				http_cancel(p->req);
				post_destroy(p);
			}
			dns_cancel(r->q);
			report_destroy(r);
		}
		if (f->reaper) {
			uv_timer_stop(f->reaper);
			uv_close((uv_handle_t *)f->reaper, reaped);
		}
		flush_free(f);
	}
}

/* ---- retries ---- */

void
tlsrpt_send_retry(uv_loop_t *loop, const tlsrpt_send_options_t *o)
{
	if (o->retry_s)
		retry_first = o->retry_s;
	time_t now = time(NULL);
	bool due = false;
	for (const pending_t *q = pend; q && !due; q = q->next)
		due = q->next_at <= now;
	if (!due)
		return;
	flush_t *f = flush_new(loop, o, NULL, NULL);
	if (!f)
		return; /* they wait for the next tick */
	pending_t **pp = &pend;
	while (*pp) {
		pending_t *q = *pp;
		if (q->next_at > now) {
			pp = &q->next;
			continue;
		}
		*pp = q->next;
		npend--;
		pend_changed = true;
		report_t *r = xcalloc(1, sizeof *r);
		r->f = f;
		LIST_ADD(f->reports, r);
		r->domain = q->domain;
		r->id = q->id;
		r->gz = q->gz;
		r->first = q->first;
		r->tries = q->tries;
		r->refs = 1;
		f->pending++;
		log_info("tls-rpt: report %s for %s: posting to %s again (attempt %u)", r->id,
		    r->domain, q->url, q->tries + 1);
		send_post(r, q->url);
		xfree(q->url);
		xfree(q);
		report_put(r);
	}
	flush_put(f);
}

size_t
tlsrpt_send_pending(void)
{
	return npend;
}

char *
tlsrpt_send_save(size_t *len)
{
	if (!pend_changed)
		return NULL;
	pend_changed = false;
	json_t *a = json_array();
	for (const pending_t *q = pend; q; q = q->next) {
		size_t cap = 4 * ((q->gz.len + 2) / 3) + 1;
		char *b64 = xmalloc(cap);
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)q->gz.data,
		    (int)q->gz.len);
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:s}", "url",
		    q->url, "id", q->id, "domain", q->domain, "first", (json_int_t)q->first, "next",
		    (json_int_t)q->next_at, "tries", (int)q->tries, "body", b64));
		xfree(b64);
	}
	json_t *root = json_pack("{s:i, s:o}", "version", 1, "pending", a);
	char *text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	*len = text ? strlen(text) : 0;
	return text;
}

int
tlsrpt_send_load(const char *path, buf_t *err)
{
	json_error_t je;
	FILE *fp = fopen(path, "r");
	if (!fp)
		return 0; /* nothing waits */
	json_t *root = json_loadf(fp, 0, &je);
	fclose(fp);
	if (!root) {
		buf_printf(err, "%s: %s (line %d)", path, je.text, je.line);
		return -1;
	}
	json_t *a = json_object_get(root, "pending");
	size_t i, n = 0;
	json_t *e;
	json_array_foreach(a, i, e) {
		const char *url = json_string_value(json_object_get(e, "url"));
		const char *id = json_string_value(json_object_get(e, "id"));
		const char *dom = json_string_value(json_object_get(e, "domain"));
		const char *b64 = json_string_value(json_object_get(e, "body"));
		if (!url || !id || !dom || !b64 || strlen(b64) % 4 != 0 || strlen(b64) > (1u << 30))
			continue;
		size_t blen = strlen(b64);
		unsigned char *raw = xmalloc(blen / 4 * 3 + 1);
		int k = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)blen);
		if (k < 0) {
			xfree(raw);
			continue;
		}
		size_t len = (size_t)k;
		if (blen >= 1 && b64[blen - 1] == '=')
			len--; /* EVP_DecodeBlock counts the padding as zeros */
		if (blen >= 2 && b64[blen - 2] == '=')
			len--;
		pending_t *q = xcalloc(1, sizeof *q);
		q->url = xstrdup(url);
		q->id = xstrdup(id);
		q->domain = xstrdup(dom);
		buf_append(&q->gz, raw, len);
		xfree(raw);
		q->first = (time_t)json_integer_value(json_object_get(e, "first"));
		q->next_at = (time_t)json_integer_value(json_object_get(e, "next"));
		q->tries = (unsigned)json_integer_value(json_object_get(e, "tries"));
		pending_add(q);
		n++;
	}
	json_decref(root);
	pend_changed = false; /* the file says so already */
	if (n)
		log_info("tls-rpt: %zu HTTPS reports wait for a retry", n);
	return 0;
}
