/*
 * dns.c - asynchronous DNS with libunbound inside the libuv loop (see dns.h).
 *
 * Wiring: libunbound resolves in its own background thread
 * (ub_ctx_async(ctx, 1)) and writes finished answers to a pipe whose read
 * end is ub_fd(). A uv_poll_t watches that fd; when it is readable we call
 * ub_process(), which reads every queued answer without blocking and calls
 * on_ub_answer() for each on the loop thread.
 *
 * Timeouts are ours: every query sits in a list sorted by deadline, and one
 * uv_timer_t fires for the earliest. A query that reaches its deadline is
 * cancelled in libunbound (ub_cancel: in thread mode libunbound then drops
 * the answer when it arrives and never calls us) and completes with
 * DNS_TEMPFAIL. Immediate failures (bad name, libunbound refusing the
 * query) are queued with a deadline of "now", so a callback never runs
 * inside dns_query(). The poll handle is unref'ed; the timer is active
 * exactly while queries are pending, so it alone keeps the loop alive.
 *
 * Must not: block, trust rdata lengths, or call a callback after
 * dns_cancel() or dns_free().
 */
#include "lib/dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unbound.h>

#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/xalloc.h"

struct dns_query {
	dns_t *dns;
	dns_query_t *prev, *next; /* deadline list */
	uint64_t deadline;        /* uv_now() milliseconds */
	int ub_id;
	bool in_ub;               /* libunbound owes us an answer */
	enum dns_status early_status; /* !in_ub: complete at the deadline with this */
	const char *early_why;
	dns_cb cb;
	void *arg;
	int rrtype;
	char *name;
	uint64_t started;         /* uv_hrtime() at dns_query, for the metrics */
};

struct dns {
	uv_loop_t *loop;
	struct ub_ctx *ctx;
	uv_poll_t poll;
	uv_timer_t timer;
	unsigned timeout_ms;
	dns_query_t *head, *tail;
	int depth;         /* > 0 while inside ub_process() or the timer callback */
	bool free_pending; /* dns_free() was called from inside a callback */
	bool poll_inited;
	bool poll_active;
	int closing;       /* handles still to be closed */
};

const char *
dns_status_str(enum dns_status s)
{
	switch (s) {
	case DNS_OK: return "OK";
	case DNS_NXDOMAIN: return "NXDOMAIN";
	case DNS_NODATA: return "NODATA";
	case DNS_TEMPFAIL: return "TEMPFAIL";
	case DNS_BOGUS: return "BOGUS";
	}
	return "?";
}

/* ---- rdata parsers ---- */

static void
put_label_byte(buf_t *out, uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '_' || c == '*') {
		buf_putc(out, (char)c);
	} else if (c == '.' || c == '\\') {
		buf_putc(out, '\\');
		buf_putc(out, (char)c);
	} else {
		buf_printf(out, "\\%03u", (unsigned)c);
	}
}

int
dns_name_to_text(const uint8_t *p, size_t n, size_t *used, buf_t *out)
{
	size_t pos = 0;
	size_t start = out->len;
	bool first = true;

	for (;;) {
		if (pos >= n)
			goto bad; /* truncated: no root label */
		uint8_t len = p[pos];
		if (len == 0) {
			pos++;
			break;
		}
		/* RFC 1035 §4.1.4 pointers (0xC0) and RFC 6891 extended label
		 * types (0x40, 0x80): never valid in the uncompressed rdata
		 * libunbound hands us. */
		if (len & 0xC0)
			goto bad;
		if ((size_t)len > n - pos - 1)
			goto bad;
		/* RFC 1035 §2.3.4: 255 octets including the root label */
		if (pos + 1 + len + 1 > 255)
			goto bad;
		if (!first)
			buf_putc(out, '.');
		first = false;
		for (size_t i = 0; i < len; i++)
			put_label_byte(out, p[pos + 1 + i]);
		pos += 1 + (size_t)len;
	}
	if (first)
		buf_putc(out, '.'); /* the root */
	*used = pos;
	return 0;
bad:
	/* leave *out as it was */
	out->len = start;
	if (out->data)
		out->data[start] = '\0';
	return -1;
}

int
dns_txt_join(const uint8_t *p, size_t n, buf_t *out)
{
	size_t i = 0;
	if (n == 0)
		return -1;
	while (i < n) { /* check every length before appending anything */
		size_t l = p[i];
		if (l > n - i - 1)
			return -1;
		i += 1 + l;
	}
	for (i = 0; i < n; i += 1 + (size_t)p[i])
		buf_append(out, p + i + 1, p[i]);
	return 0;
}

int
dns_parse_rr(int rrtype, const uint8_t *p, size_t n, dns_rr_t *rr)
{
	memset(rr, 0, sizeof(*rr));
	rr->rdata = p;
	rr->rdlen = n;
	switch (rrtype) {
	case DNS_T_MX: {
		/* RFC 1035 §3.3.9: PREFERENCE (16 bits) EXCHANGE (domain name) */
		if (n < 3)
			return -1;
		buf_t b = BUF_INIT;
		size_t used = 0;
		if (dns_name_to_text(p + 2, n - 2, &used, &b) < 0 || used != n - 2) {
			buf_free(&b);
			return -1;
		}
		rr->u.mx.pref = (uint16_t)((p[0] << 8) | p[1]);
		rr->u.mx.exchange = buf_steal(&b);
		return 0;
	}
	case DNS_T_PTR: {
		/* RFC 1035 §3.3.12: PTRDNAME (domain name) */
		buf_t b = BUF_INIT;
		size_t used = 0;
		if (dns_name_to_text(p, n, &used, &b) < 0 || used != n) {
			buf_free(&b);
			return -1;
		}
		rr->u.ptr.name = buf_steal(&b);
		return 0;
	}
	case DNS_T_A: {
		if (n != 4)
			return -1;
		struct sockaddr_in *sin = (struct sockaddr_in *)&rr->u.addr.sa;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, p, 4);
		rr->u.addr.salen = sizeof(*sin);
		if (inet_ntop(AF_INET, p, rr->u.addr.text, sizeof(rr->u.addr.text)) == NULL)
			return -1;
		return 0;
	}
	case DNS_T_AAAA: {
		if (n != 16)
			return -1;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&rr->u.addr.sa;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, p, 16);
		rr->u.addr.salen = sizeof(*sin6);
		if (inet_ntop(AF_INET6, p, rr->u.addr.text, sizeof(rr->u.addr.text)) == NULL)
			return -1;
		return 0;
	}
	case DNS_T_TLSA:
		/* RFC 6698 §2.1: usage, selector, matching type, data */
		if (n < 3)
			return -1;
		rr->u.tlsa.usage = p[0];
		rr->u.tlsa.selector = p[1];
		rr->u.tlsa.mtype = p[2];
		rr->u.tlsa.data = p + 3;
		rr->u.tlsa.len = n - 3;
		return 0;
	default:
		return 0; /* raw only */
	}
}

static void
rr_clear(int rrtype, dns_rr_t *rr)
{
	if (rrtype == DNS_T_MX)
		xfree(rr->u.mx.exchange);
	else if (rrtype == DNS_T_PTR)
		xfree(rr->u.ptr.name);
	memset(rr, 0, sizeof(*rr));
}

int
dns_result_parse(dns_result_t *r, const uint8_t *const *data, const size_t *len, size_t count)
{
	r->rr = NULL;
	r->n = 0;
	if (count == 0)
		return 0;
	dns_rr_t *rr = xcalloc(count, sizeof(*rr));
	for (size_t i = 0; i < count; i++) {
		if (data[i] == NULL || dns_parse_rr(r->rrtype, data[i], len[i], &rr[i]) < 0) {
			for (size_t j = 0; j < i; j++)
				rr_clear(r->rrtype, &rr[j]);
			xfree(rr);
			return -1;
		}
	}
	r->rr = rr;
	r->n = count;
	return 0;
}

void
dns_result_clear(dns_result_t *r)
{
	for (size_t i = 0; i < r->n; i++)
		rr_clear(r->rrtype, &r->rr[i]);
	xfree(r->rr);
	r->rr = NULL;
	r->n = 0;
}

/* ---- the deadline list and the timer ---- */

static void
list_insert(dns_t *dns, dns_query_t *q)
{
	dns_query_t *after = dns->tail;
	while (after != NULL && after->deadline > q->deadline)
		after = after->prev;
	q->prev = after;
	q->next = after ? after->next : dns->head;
	if (q->next)
		q->next->prev = q;
	else
		dns->tail = q;
	if (after)
		after->next = q;
	else
		dns->head = q;
}

/* The ends are tested by identity, not by q->prev/q->next being NULL (the
 * same thing in a well-formed list), so that the static analyzer sees that
 * q is no longer dns->head once removed (docs/security.md, static analysis). */
static void
list_remove(dns_t *dns, dns_query_t *q)
{
	if (dns->head == q)
		dns->head = q->next;
	else
		q->prev->next = q->next;
	if (dns->tail == q)
		dns->tail = q->prev;
	else
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void on_timer(uv_timer_t *t);

static void
arm_timer(dns_t *dns)
{
	if (dns->head == NULL) {
		uv_timer_stop(&dns->timer);
		return;
	}
	uint64_t now = uv_now(dns->loop);
	uint64_t wait = dns->head->deadline > now ? dns->head->deadline - now : 0;
	uv_timer_start(&dns->timer, on_timer, wait, 0);
}

static void
query_free(dns_query_t *q)
{
	xfree(q->name);
	xfree(q);
}

METRIC_COUNTER(m_lookups, "tern_dns_lookups_total", "DNS lookups answered, by type and status",
    "type", "status");
METRIC_HISTOGRAM(m_latency, metric_bounds_latency, "tern_dns_lookup_duration_seconds",
    "Time from a DNS query to its answer (or its timeout)", "type");

/* the query type as a label: the types tern asks, else "other" */
static const char *
rr_name(int t)
{
	return t == DNS_T_A ? "A" : t == DNS_T_AAAA ? "AAAA" : t == DNS_T_MX ? "MX"
	    : t == DNS_T_TXT ? "TXT" : t == DNS_T_TLSA ? "TLSA" : t == DNS_T_PTR ? "PTR"
	    : t == DNS_T_CNAME ? "CNAME" : "other";
}

static void
deliver(dns_query_t *q, dns_result_t *r)
{
	dns_t *dns = q->dns;
	if (dns->free_pending)
		return; /* dns_free() drops pending queries silently */
	r->qname = q->name;
	r->rrtype = q->rrtype;
	if (r->why == NULL)
		r->why = r->status == DNS_OK ? "" : dns_status_str(r->status);
	metric_inc(&m_lookups, rr_name(q->rrtype), dns_status_str(r->status));
	metric_observe(&m_latency, (double)(uv_hrtime() - q->started) / 1e9, rr_name(q->rrtype));
	q->cb(q->arg, r);
}

static void dns_destroy(dns_t *dns);

static void
on_timer(uv_timer_t *t)
{
	dns_t *dns = t->data;
	dns->depth++;
	while (dns->head != NULL && !dns->free_pending) {
		uint64_t now = uv_now(dns->loop);
		dns_query_t *q = dns->head;
		if (q->deadline > now)
			break;
		list_remove(dns, q);
		dns_result_t r;
		memset(&r, 0, sizeof(r));
		if (q->in_ub) {
			/* In thread mode ub_cancel only marks the query: the
			 * answer, if it ever comes, is freed by libunbound
			 * without calling on_ub_answer(). */
			(void)ub_cancel(dns->ctx, q->ub_id);
			q->in_ub = false;
			r.status = DNS_TEMPFAIL;
			r.why = "timeout";
		} else {
			r.status = q->early_status;
			r.why = q->early_why;
		}
		deliver(q, &r);
		query_free(q);
	}
	dns->depth--;
	if (dns->free_pending && dns->depth == 0) {
		dns_destroy(dns);
		return;
	}
	arm_timer(dns);
}

/* ---- libunbound answers ---- */

static const char *
rcode_str(int rcode)
{
	switch (rcode) {
	case 1: return "FORMERR";
	case 2: return "SERVFAIL";
	case 4: return "NOTIMP";
	case 5: return "REFUSED";
	default: return "DNS error";
	}
}

static void
on_ub_answer(void *arg, int err, struct ub_result *res)
{
	dns_query_t *q = arg;
	dns_t *dns = q->dns;
	dns_result_t r;
	memset(&r, 0, sizeof(r));
	r.rrtype = q->rrtype;

	q->in_ub = false;
	list_remove(dns, q);

	if (err != 0 || res == NULL) {
		r.status = DNS_TEMPFAIL;
		r.why = err ? ub_strerror(err) : "no result";
	} else {
		r.ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
		/* libunbound may set canonname to the qname itself */
		if (res->canonname && res->qname && strcasecmp(res->canonname, res->qname) != 0)
			r.canonname = res->canonname;
		if (res->bogus) {
			/* RFC 4035 §5.5: bogus data must not be used */
			r.status = DNS_BOGUS;
			r.why = res->why_bogus ? res->why_bogus : "DNSSEC validation failed";
		} else if (res->rcode == 3 || res->nxdomain) {
			r.status = DNS_NXDOMAIN;
			r.secure = res->secure != 0;
		} else if (res->rcode != 0) {
			r.status = DNS_TEMPFAIL;
			r.why = rcode_str(res->rcode);
		} else if (!res->havedata || res->data == NULL || res->data[0] == NULL) {
			r.status = DNS_NODATA;
			r.secure = res->secure != 0;
		} else {
			size_t count = 0;
			while (res->data[count] != NULL)
				count++;
			size_t *lens = xcalloc(count, sizeof(*lens));
			bool ok = res->len != NULL;
			for (size_t i = 0; ok && i < count; i++) {
				if (res->len[i] < 0)
					ok = false;
				else
					lens[i] = (size_t)res->len[i];
			}
			if (ok && dns_result_parse(&r, (const uint8_t *const *)res->data, lens,
			    count) == 0) {
				r.status = DNS_OK;
				r.secure = res->secure != 0;
			} else {
				r.status = DNS_TEMPFAIL;
				r.why = "malformed record in answer";
				r.ttl = 0;
			}
			xfree(lens);
		}
	}
	deliver(q, &r);
	dns_result_clear(&r);
	query_free(q);
	if (res != NULL)
		ub_resolve_free(res);
	arm_timer(dns);
}

static void
on_poll(uv_poll_t *p, int status, int events)
{
	dns_t *dns = p->data;
	if (status < 0)
		log_warn("dns: poll error: %s", uv_strerror(status));
	dns->depth++;
	int rc = ub_process(dns->ctx);
	dns->depth--;
	if (rc != 0) {
		/* the pipe to the resolver thread is broken: stop watching it;
		 * pending queries will time out */
		log_err("dns: ub_process: %s", ub_strerror(rc));
		if (dns->poll_active) {
			uv_poll_stop(&dns->poll);
			dns->poll_active = false;
		}
	}
	if (dns->free_pending && dns->depth == 0)
		dns_destroy(dns);
}

/* ---- the public API ---- */

dns_t *
dns_new(uv_loop_t *loop, const dns_options_t *o, buf_t *err)
{
	struct ub_ctx *ctx = ub_ctx_create();
	if (ctx == NULL) {
		buf_puts(err, "dns: cannot create the libunbound context");
		return NULL;
	}
	int rc;
	/* resolve in a thread, so ub_fd() signals finished answers */
	if ((rc = ub_ctx_async(ctx, 1)) != 0) {
		buf_printf(err, "dns: ub_ctx_async: %s", ub_strerror(rc));
		goto fail;
	}
	/* allow forwarders on loopback (a local caching resolver, the tests) */
	if ((rc = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no")) != 0) {
		buf_printf(err, "dns: do-not-query-localhost: %s", ub_strerror(rc));
		goto fail;
	}
	/* A query that is never answered (a name server that drops one name's
	 * queries, e.g. an SPF target built by a macro) makes libunbound back
	 * off from the server, and once its own retries end (about 17 s) the
	 * server counts as down: every other query is then answered SERVFAIL
	 * at once, for infra-host-ttl (15 minutes by default). With one
	 * forwarder that is an outage. infra-keep-probing keeps querying a
	 * server that looks down (measured: the next query is answered at
	 * once; tests/integration/test_spf_dns.py), and its state is kept a
	 * minute, not 15. (A lower infra-cache-max-rtt makes it worse: the
	 * server is written off sooner.) */
	static const char *const tuning[][2] = {
	    {"infra-keep-probing:", "yes"},
	    {"infra-host-ttl:", "60"},
	    /* libunbound answers reverse names of private and documentation
	     * ranges (10/8, 192.168/16, 2001:db8::/32 ...) itself with
	     * NXDOMAIN (RFC 6303 default local zones); tern always forwards
	     * to a resolver that knows the site's own reverse zones (SPF's ptr
	     * and %{p} for a relay on the LAN), so ask it */
	    {"unblock-lan-zones:", "yes"},
	    {"insecure-lan-zones:", "yes"},
	};
	for (size_t i = 0; i < sizeof(tuning) / sizeof(tuning[0]); i++) {
		if ((rc = ub_ctx_set_option(ctx, tuning[i][0], tuning[i][1])) != 0) {
			buf_printf(err, "dns: %s %s: %s", tuning[i][0], tuning[i][1], ub_strerror(rc));
			goto fail;
		}
	}
	size_t nserv = 0;
	for (const char *const *s = o ? o->servers : NULL; s != NULL && *s != NULL; s++) {
		if ((rc = ub_ctx_set_fwd(ctx, *s)) != 0) {
			buf_printf(err, "dns: bad DNS server address \"%s\": %s", *s, ub_strerror(rc));
			goto fail;
		}
		nserv++;
	}
	if (nserv == 0) {
		const char *rcf = o && o->resolv_conf ? o->resolv_conf : "/etc/resolv.conf";
		if ((rc = ub_ctx_resolvconf(ctx, rcf)) != 0) {
			buf_printf(err, "dns: %s: %s", rcf, ub_strerror(rc));
			goto fail;
		}
	}
	if (o && o->trust_anchor_file) {
		if ((rc = ub_ctx_add_ta_file(ctx, o->trust_anchor_file)) != 0) {
			buf_printf(err, "dns: trust anchor %s: %s", o->trust_anchor_file,
			    ub_strerror(rc));
			goto fail;
		}
	}
	/* Finalize the configuration now rather than at the first query, so a
	 * bad trust anchor file is reported here: ub_ctx_zone_remove()
	 * finalizes and removing a zone that does not exist changes nothing. */
	if ((rc = ub_ctx_zone_remove(ctx, "tern-finalize.invalid.")) != 0) {
		buf_printf(err, "dns: libunbound initialisation failed (%s)%s%s", ub_strerror(rc),
		    o && o->trust_anchor_file ? "; check the trust anchor file " : "",
		    o && o->trust_anchor_file ? o->trust_anchor_file : "");
		goto fail;
	}

	dns_t *dns = xcalloc(1, sizeof(*dns));
	dns->loop = loop;
	dns->ctx = ctx;
	dns->timeout_ms = o && o->timeout_ms ? o->timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
	uv_timer_init(loop, &dns->timer);
	dns->timer.data = dns;
	rc = uv_poll_init(loop, &dns->poll, ub_fd(ctx));
	if (rc == 0) {
		dns->poll_inited = true;
		dns->poll.data = dns;
		rc = uv_poll_start(&dns->poll, UV_READABLE, on_poll);
	}
	if (rc < 0) {
		buf_printf(err, "dns: watching the libunbound pipe: %s", uv_strerror(rc));
		dns_destroy(dns);
		return NULL;
	}
	dns->poll_active = true;
	/* the poll handle alone must not keep the loop alive: see the top */
	uv_unref((uv_handle_t *)&dns->poll);
	return dns;
fail:
	ub_ctx_delete(ctx);
	return NULL;
}

static void
on_close(uv_handle_t *h)
{
	dns_t *dns = h->data;
	if (--dns->closing == 0)
		xfree(dns);
}

/* Drop everything now; free the struct once the handles are closed. */
static void
dns_destroy(dns_t *dns)
{
	if (dns->ctx) {
		/* stops and joins the resolver thread; calls no callbacks */
		ub_ctx_delete(dns->ctx);
		dns->ctx = NULL;
	}
	while (dns->head) {
		dns_query_t *q = dns->head;
		list_remove(dns, q);
		query_free(q);
	}
	dns->closing = dns->poll_inited ? 2 : 1;
	uv_close((uv_handle_t *)&dns->timer, on_close);
	if (dns->poll_inited)
		uv_close((uv_handle_t *)&dns->poll, on_close);
}

void
dns_free(dns_t *dns)
{
	if (dns == NULL || dns->free_pending)
		return;
	dns->free_pending = true;
	if (dns->depth == 0)
		dns_destroy(dns);
}

uv_loop_t *
dns_loop(const dns_t *dns)
{
	return dns->loop;
}

/* Presentation-format name check (RFC 1035 §2.3.4, §5.1 escapes): labels of
 * 1..63 octets, 255 octets in wire form, optional trailing dot. libunbound
 * reports a bad name as "out of memory", so we check first. */
static bool
name_valid(const char *s)
{
	size_t wire = 1; /* the root label */
	size_t label = 0;
	if (strcmp(s, ".") == 0)
		return true;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.') {
			if (label == 0)
				return false; /* empty label */
			wire += 1 + label;
			label = 0;
			continue;
		}
		if (c <= 0x20 || c >= 0x7f)
			return false; /* write such octets as \DDD */
		if (c == '\\') {
			if (p[1] >= '0' && p[1] <= '9') {
				if (!(p[2] >= '0' && p[2] <= '9' && p[3] >= '0' && p[3] <= '9'))
					return false;
				if ((p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0') > 255)
					return false;
				p += 3;
			} else if (p[1] > 0x20 && p[1] < 0x7f) {
				p++;
			} else {
				return false;
			}
		}
		if (++label > 63)
			return false;
	}
	if (label > 0)
		wire += 1 + label;
	return wire <= 255;
}

static void
query_fail_early(dns_query_t *q, enum dns_status st, const char *why)
{
	q->early_status = st;
	q->early_why = why;
	q->deadline = uv_now(q->dns->loop);
}

dns_query_t *
dns_query(dns_t *dns, const char *name, int rrtype, dns_cb cb, void *arg)
{
	dns_query_t *q = xcalloc(1, sizeof(*q));
	q->dns = dns;
	q->cb = cb;
	q->arg = arg;
	q->rrtype = rrtype;
	q->name = xstrdup(name ? name : "");
	q->deadline = uv_now(dns->loop) + dns->timeout_ms;
	q->started = uv_hrtime();

	size_t len = strlen(q->name);
	if (dns->free_pending) {
		query_fail_early(q, DNS_TEMPFAIL, "resolver shutting down");
	} else if (len == 0 || len > 1024 || !name_valid(q->name)) {
		/* 1024: 255 octets, each possibly written as \DDD */
		query_fail_early(q, DNS_NXDOMAIN, "invalid domain name");
	} else if (rrtype <= 0 || rrtype > 65535) {
		query_fail_early(q, DNS_TEMPFAIL, "invalid query type");
	} else {
		int rc = ub_resolve_async(dns->ctx, q->name, rrtype, 1 /* IN */, q, on_ub_answer,
		    &q->ub_id);
		if (rc == UB_SYNTAX)
			query_fail_early(q, DNS_NXDOMAIN, "invalid domain name");
		else if (rc != 0)
			query_fail_early(q, DNS_TEMPFAIL, ub_strerror(rc));
		else
			q->in_ub = true;
	}
	list_insert(dns, q);
	if (!dns->free_pending && dns->head == q)
		arm_timer(dns);
	return q;
}

void
dns_cancel(dns_query_t *q)
{
	if (q == NULL)
		return;
	dns_t *dns = q->dns;
	if (q->in_ub) {
		/* Thread mode: marks the query cancelled; libunbound frees the
		 * answer without calling us, whether it is still being
		 * resolved or already queued in the pipe. */
		(void)ub_cancel(dns->ctx, q->ub_id);
	}
	bool was_head = dns->head == q;
	list_remove(dns, q);
	query_free(q);
	if (was_head && dns->depth == 0)
		arm_timer(dns);
}
