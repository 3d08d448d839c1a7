/*
 * tlsrpt_send.c - the TLS-RPT reports' delivery (contract in
 * tlsrpt_send.h).
 *
 * One flush: the entries tlsrpt_take() gave, one TXT lookup per domain,
 * and per https: URI an address lookup then a POST. A reference count
 * (pending) holds the flush while anything is in flight; at zero a timer
 * frees the resolver and the HTTP client on a later turn (never from
 * inside their own callbacks).
 */
#include "deliver/tlsrpt_send.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "common/report_mail.h"
#include "deliver/tlsrpt.h"
#include "lib/gzip.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "mailauth/dmarc_report.h"

#define POST_TIMEOUT_MS 60000u

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
	char *headers = xasprintf("TLS-Report-Domain: %s\r\nTLS-Report-Submitter: %s\r\n",
	    r->domain, f->submitter);
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
	if (res->ok && res->status >= 200 && res->status < 300)
		log_info("tls-rpt: report %s for %s posted to %s (HTTP %ld)", r->id, r->domain, p->url,
		    res->status);
	else if (res->ok)
		log_warn("tls-rpt: report %s for %s: %s answered HTTP %ld", r->id, r->domain, p->url,
		    res->status);
	else
		log_warn("tls-rpt: report %s for %s: POST to %s failed: %s", r->id, r->domain, p->url,
		    res->error);
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

void
tlsrpt_send_flush(uv_loop_t *loop, const tlsrpt_send_options_t *o, tlsrpt_submit_fn submit,
    void *arg)
{
	json_t *entries = tlsrpt_take(time(NULL), o->through_now);
	if (!entries)
		return;
	buf_t err = BUF_INIT;
	dns_t *dns = dns_new(loop, &o->dns, &err);
	if (!dns) {
		log_err("tls-rpt: cannot start a resolver: %s; %zu reports dropped", buf_cstr(&err),
		    json_array_size(entries));
		buf_free(&err);
		json_decref(entries);
		return;
	}
	buf_free(&err);
	flush_t *f = xcalloc(1, sizeof *f);
	LIST_ADD(flushes, f);
	f->loop = loop;
	f->entries = entries;
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
		r->q = dns_query(dns, name, DNS_T_TXT, on_txt, r);
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
