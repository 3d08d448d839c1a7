/*
 * mx.c - MX resolution for outbound delivery (see mx.h; RFC 5321 §5.1,
 * RFC 7505).
 *
 * Flow: MX query -> mx_order() -> A and AAAA queries for every host, all at
 * once -> mx_finish() -> [TLSA queries for the secure hosts, all at once
 * (DANE, RFC 7672 §2.2)] -> callback. Every DNS handle the request holds is
 * cancelled by mx_cancel(), so no callback reaches a freed request.
 * Must not: block, call the callback synchronously, or trust counts from
 * DNS (everything is capped by the options' limits).
 */
#include "deliver/mx.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/log.h"
#include "lib/xalloc.h"

const char *
mx_status_reply(enum mx_status s)
{
	switch (s) {
	case MX_OK: return "";
	/* RFC 3463 X.4.3: directory server (DNS) failure */
	case MX_TEMPFAIL: return "451 4.4.3 Host or domain name lookup failed, will retry";
	/* X.1.2: bad destination system address */
	case MX_NXDOMAIN: return "550 5.1.2 Host or domain name not found";
	/* RFC 7505 §4.2 */
	case MX_NULLMX: return "556 5.1.10 Recipient address has null MX";
	/* X.4.6: routing loop detected */
	case MX_LOOP: return "554 5.4.6 Config error: mail loops back to myself";
	/* X.4.4: unable to route */
	case MX_NOADDR: return "550 5.4.4 Unable to route: no address for the mail exchanger";
	}
	return "451 4.4.3 Unknown MX resolution status";
}

/* ---- pure helpers ---- */

bool
mx_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)a;
		const struct sockaddr_in *y = (const struct sockaddr_in *)b;
		return x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
		return memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return false;
}

/* case-insensitive name comparison, a trailing dot on either side ignored */
static bool
same_name(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 1 && a[la - 1] == '.')
		la--;
	if (lb > 1 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static bool
is_self_name(const mx_options_t *o, const char *name)
{
	for (const char *const *s = o ? o->self_names : NULL; s && *s; s++)
		if (same_name(*s, name))
			return true;
	return false;
}

static bool
is_self_addr(const mx_options_t *o, const struct sockaddr_storage *sa)
{
	for (size_t i = 0; o && i < o->nself_addrs; i++)
		if (mx_same_ip(&o->self_addrs[i], sa))
			return true;
	return false;
}

static size_t
opt_max_hosts(const mx_options_t *o)
{
	return o && o->max_hosts ? o->max_hosts : MX_MAX_HOSTS;
}

static size_t
opt_max_addrs(const mx_options_t *o)
{
	return o && o->max_addrs ? o->max_addrs : MX_MAX_ADDRS;
}

static uint32_t
default_rand(void *arg, uint32_t upper)
{
	return arc4random_uniform(upper);
}

static void
host_clear(mx_host_t *h)
{
	xfree(h->name);
	xfree(h->addrs);
	for (size_t i = 0; i < h->ntlsa; i++)
		xfree((void *)h->tlsa_rr[i].data);
	xfree(h->tlsa_rr);
	xfree(h->tlsa_why);
	xfree(h->canon);
	xfree(h->tlsa_base);
	memset(h, 0, sizeof(*h));
}

void
mx_hosts_free(mx_host_t *hosts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		host_clear(&hosts[i]);
	xfree(hosts);
}

struct cand {
	uint16_t pref;
	size_t idx; /* position in the answer: makes the sort stable */
	const char *name;
};

static int
cand_cmp(const void *pa, const void *pb)
{
	const struct cand *a = pa, *b = pb;
	if (a->pref != b->pref)
		return a->pref < b->pref ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static bool
is_root(const char *name)
{
	return name[0] == '.' && name[1] == '\0';
}

enum mx_status
mx_order(const dns_rr_t *rr, size_t n, const mx_options_t *o, mx_rand_fn rnd, void *rarg,
    mx_host_t **hosts, size_t *nhosts)
{
	*hosts = NULL;
	*nhosts = 0;
	if (rnd == NULL)
		rnd = default_rand;

	/* RFC 7505 §3: a null MX is "0 ." and must be the only MX record.
	 * We treat a set made only of "." exchanges as null MX; "." mixed with
	 * real exchangers is a misconfiguration and the "." entries, which
	 * cannot be connected to anyway, are ignored. */
	size_t nreal = 0;
	for (size_t i = 0; i < n; i++)
		if (rr[i].u.mx.exchange != NULL && !is_root(rr[i].u.mx.exchange))
			nreal++;
	if (nreal == 0)
		return n > 0 ? MX_NULLMX : MX_NOADDR;

	struct cand *c = xcalloc(nreal, sizeof(*c));
	size_t nc = 0;
	bool self = false;
	uint16_t self_pref = 0;
	for (size_t i = 0; i < n; i++) {
		const char *name = rr[i].u.mx.exchange;
		if (name == NULL || is_root(name))
			continue;
		if (is_self_name(o, name) && (!self || rr[i].u.mx.pref < self_pref)) {
			self = true;
			self_pref = rr[i].u.mx.pref;
		}
		c[nc].pref = rr[i].u.mx.pref;
		c[nc].idx = i;
		c[nc].name = name;
		nc++;
	}

	/* RFC 5321 §5.1: "If it [the SMTP client] finds itself ... it MUST
	 * discard any MX RRs with preferences greater than or equal to its own" */
	if (self) {
		size_t k = 0;
		for (size_t i = 0; i < nc; i++)
			if (c[i].pref < self_pref)
				c[k++] = c[i];
		nc = k;
		if (nc == 0) {
			xfree(c);
			return MX_LOOP;
		}
	}

	qsort(c, nc, sizeof(*c), cand_cmp);

	/* RFC 5321 §5.1: equal preferences in random order (Fisher-Yates
	 * within each group of equal preference) */
	for (size_t g = 0; g < nc;) {
		size_t e = g + 1;
		while (e < nc && c[e].pref == c[g].pref)
			e++;
		for (size_t k = e - g; k > 1; k--) {
			uint32_t lim = k > UINT32_MAX ? UINT32_MAX : (uint32_t)k;
			size_t j = rnd(rarg, lim);
			if (j >= k)
				j = k - 1; /* a broken rnd must not break bounds */
			struct cand t = c[g + k - 1];
			c[g + k - 1] = c[g + j];
			c[g + j] = t;
		}
		g = e;
	}

	size_t max = opt_max_hosts(o);
	mx_host_t *h = xcalloc(nc < max ? nc : max, sizeof(*h));
	size_t nh = 0;
	for (size_t i = 0; i < nc && nh < max; i++) {
		bool dup = false;
		for (size_t j = 0; j < nh && !dup; j++)
			dup = same_name(h[j].name, c[i].name);
		if (dup)
			continue; /* keeps the first, i.e. best, preference */
		h[nh].name = xstrdup(c[i].name);
		h[nh].pref = c[i].pref;
		nh++;
	}
	xfree(c);
	*hosts = h;
	*nhosts = nh;
	return MX_OK;
}

enum mx_status
mx_finish(mx_host_t *hosts, size_t *nhosts, const mx_options_t *o)
{
	size_t n = *nhosts;

	/* RFC 5321 §5.1 by address: a host that resolves to one of our own
	 * addresses is us. */
	bool self = false;
	uint16_t self_pref = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < hosts[i].naddrs; j++)
			if (is_self_addr(o, &hosts[i].addrs[j]) && (!self || hosts[i].pref < self_pref)) {
				self = true;
				self_pref = hosts[i].pref;
			}

	bool better_tempfail = false; /* a usable-preference host failed temporarily */
	size_t left = opt_max_addrs(o);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		mx_host_t *h = &hosts[i];
		if (self && h->pref >= self_pref) {
			host_clear(h);
			continue;
		}
		if (h->tempfail)
			better_tempfail = true;
		if (h->naddrs > left)
			h->naddrs = left;
		left -= h->naddrs;
		if (h->naddrs == 0) {
			host_clear(h);
			continue;
		}
		if (k != i) {
			hosts[k] = *h;
			memset(h, 0, sizeof(*h));
		}
		k++;
	}
	*nhosts = k;
	if (k > 0)
		return MX_OK;
	if (better_tempfail)
		return MX_TEMPFAIL;
	if (self)
		return MX_LOOP;
	return MX_NOADDR;
}

int
mx_parse_literal(const char *s, struct sockaddr_storage *sa)
{
	memset(sa, 0, sizeof(*sa));
	size_t n = strlen(s);
	if (n < 3 || s[0] != '[' || s[n - 1] != ']' || n > 64)
		return -1;
	char tmp[64];
	memcpy(tmp, s + 1, n - 2);
	tmp[n - 2] = '\0';
	/* RFC 5321 §4.1.3: IPv4-address-literal / "IPv6:" IPv6-addr;
	 * General-address-literal tags are not supported. */
	if (strncasecmp(tmp, "IPv6:", 5) == 0) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)sa;
		if (inet_pton(AF_INET6, tmp + 5, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		return 0;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)sa;
	/* inet_pton accepts exactly the dotted quad, no shorthand forms */
	if (inet_pton(AF_INET, tmp, &sin->sin_addr) != 1)
		return -1;
	sin->sin_family = AF_INET;
	return 0;
}

void
mx_result_free(mx_result_t *r)
{
	if (r == NULL)
		return;
	mx_hosts_free(r->hosts, r->nhosts);
	xfree(r->detail);
	xfree(r);
}

/* ---- the asynchronous request ---- */

struct lookup {
	mx_req_t *req;
	size_t host;
	int rrtype;
	dns_query_t *q; /* NULL when done */
	struct sockaddr_storage *addrs;
	size_t naddrs;
	bool secure;
	bool tempfail;
	char *canon; /* a secure answer's CNAME target, without the trailing dot */
};

struct tlsa_lookup {
	mx_req_t *req;
	size_t host;
	dns_query_t *q; /* NULL when done */
	bool at_canon; /* asking at the host's expanded name (RFC 7672 §2.2.2) */
};

struct mx_req {
	dns_t *dns;
	char *domain;
	mx_options_t opt; /* deep copy */
	char **self_names;
	struct sockaddr_storage *self_addrs;
	mx_cb cb;
	void *arg;

	dns_query_t *mxq;
	mx_host_t *hosts;
	size_t nhosts;
	struct lookup *lk; /* nlk = nhosts * families */
	size_t nlk;
	size_t pending;
	struct tlsa_lookup *tl; /* one per host, DANE only */
	size_t ntl;
	buf_t detail;
	bool implicit, literal, mx_secure;
	uint32_t ttl; /* the smallest TTL seen, 0: none yet */

	/* domain literals complete on a zero timer */
	uv_timer_t timer;
	bool timer_inited;
	mx_result_t *ready;
};

static void
req_free_now(mx_req_t *req)
{
	for (size_t i = 0; i < req->nlk; i++) {
		xfree(req->lk[i].addrs);
		xfree(req->lk[i].canon);
	}
	xfree(req->lk);
	xfree(req->tl);
	mx_hosts_free(req->hosts, req->nhosts);
	for (char **s = req->self_names; s && *s; s++)
		xfree(*s);
	xfree(req->self_names);
	xfree(req->self_addrs);
	xfree(req->domain);
	buf_free(&req->detail);
	mx_result_free(req->ready);
	xfree(req);
}

static void
on_timer_close(uv_handle_t *h)
{
	req_free_now(h->data);
}

static void
req_free(mx_req_t *req)
{
	if (req->timer_inited)
		uv_close((uv_handle_t *)&req->timer, on_timer_close);
	else
		req_free_now(req);
}

static void
add_detail(mx_req_t *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
add_detail(mx_req_t *req, const char *fmt, ...)
{
	if (req->detail.len > 1000)
		return; /* enough for a diagnostic */
	if (req->detail.len)
		buf_puts(&req->detail, "; ");
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&req->detail, fmt, ap);
	va_end(ap);
}

/* the result is kept no longer than the shortest TTL of what it used */
static void
note_ttl(mx_req_t *req, const dns_result_t *r)
{
	if (r->status == DNS_OK && r->ttl > 0 && (req->ttl == 0 || r->ttl < req->ttl))
		req->ttl = r->ttl;
}

static mx_result_t *
make_result(mx_req_t *req, enum mx_status st)
{
	mx_result_t *r = xcalloc(1, sizeof(*r));
	r->status = st;
	r->reply = mx_status_reply(st);
	r->detail = buf_steal(&req->detail);
	r->implicit = req->implicit;
	r->literal = req->literal;
	r->mx_secure = req->mx_secure;
	r->ttl = req->ttl;
	if (st == MX_OK) {
		r->hosts = req->hosts;
		r->nhosts = req->nhosts;
		req->hosts = NULL;
		req->nhosts = 0;
	}
	return r;
}

/* Hand the result over and free the request. */
static void
complete(mx_req_t *req, enum mx_status st)
{
	mx_result_t *r = make_result(req, st);
	mx_cb cb = req->cb;
	void *arg = req->arg;
	req_free(req);
	cb(arg, r);
}

static void
on_literal_timer(uv_timer_t *t)
{
	mx_req_t *req = t->data;
	mx_result_t *r = req->ready;
	mx_cb cb = req->cb;
	void *arg = req->arg;
	req->ready = NULL;
	req_free(req);
	cb(arg, r);
}

static void
set_port(struct sockaddr_storage *sa, uint16_t port)
{
	if (sa->ss_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons(port);
	else if (sa->ss_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
}

static uint16_t
opt_port(const mx_options_t *o)
{
	return o->port ? o->port : 25;
}

/* RFC 6698 §3: "_PORT._tcp.HOST" */
static char *
tlsa_name(const mx_req_t *req, const char *host)
{
	return xasprintf("_%u._tcp.%s", (unsigned)opt_port(&req->opt), host);
}

/* Keep the records of a secure TLSA answer; their data is copied (the
 * answer lives during the callback only). Unusable records are kept too:
 * tls_dane_setup() says why each is unusable, and a host with only
 * unusable ones still gets mandatory TLS (RFC 7672 §2.2). */
static void
keep_tlsa(mx_host_t *h, const dns_result_t *r)
{
	h->tlsa = MX_TLSA_FOUND;
	h->tlsa_rr = xcalloc(r->n ? r->n : 1, sizeof *h->tlsa_rr);
	for (size_t i = 0; i < r->n; i++) {
		tls_tlsa_t *t = &h->tlsa_rr[h->ntlsa++];
		t->usage = r->rr[i].u.tlsa.usage;
		t->selector = r->rr[i].u.tlsa.selector;
		t->mtype = r->rr[i].u.tlsa.mtype;
		t->len = r->rr[i].u.tlsa.len;
		uint8_t *d = xmalloc(t->len ? t->len : 1);
		if (t->len)
			memcpy(d, r->rr[i].u.tlsa.data, t->len);
		t->data = d;
	}
}

static void
on_tlsa(void *arg, const dns_result_t *r)
{
	struct tlsa_lookup *tl = arg;
	mx_req_t *req = tl->req;
	mx_host_t *h = &req->hosts[tl->host];
	tl->q = NULL;
	switch (r->status) {
	case DNS_OK:
		/* RFC 7672 §2.2: only a secure TLSA RRset counts */
		if (r->secure) {
			note_ttl(req, r);
			keep_tlsa(h, r);
			if (tl->at_canon)
				h->tlsa_base = xstrdup(h->canon);
		}
		break;
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		if (tl->at_canon) {
			/* RFC 7672 §2.2.2: none at the expanded name: the host's
			 * own name next */
			tl->at_canon = false;
			char *name = tlsa_name(req, h->name);
			tl->q = dns_query(req->dns, name, DNS_T_TLSA, on_tlsa, tl);
			xfree(name);
			return;
		}
		break; /* no DANE for this host */
	case DNS_TEMPFAIL:
	case DNS_BOGUS:
		/* RFC 7672 §2.2: a TLSA lookup that fails or is bogus makes the
		 * host unusable: neither authenticated nor clear-text delivery */
		h->tlsa = MX_TLSA_FAILED;
		h->tlsa_why = xasprintf("%s/TLSA: %s", r->qname, r->why);
		add_detail(req, "%s/TLSA: %s", r->qname, r->why);
		break;
	}
	if (--req->pending == 0)
		complete(req, MX_OK);
}

/* TLSA queries for every host whose addresses are secure; false when
 * there is none to ask (the caller completes) */
static bool
start_tlsa(mx_req_t *req)
{
	req->tl = xcalloc(req->nhosts ? req->nhosts : 1, sizeof *req->tl);
	req->ntl = req->nhosts;
	size_t n = 0;
	for (size_t i = 0; i < req->nhosts; i++)
		if (req->hosts[i].secure)
			n++;
	if (n == 0)
		return false;
	req->pending = n;
	for (size_t i = 0; i < req->nhosts; i++) {
		if (!req->hosts[i].secure)
			continue; /* RFC 7672 §2.2: insecure addresses, no DANE */
		struct tlsa_lookup *tl = &req->tl[i];
		tl->req = req;
		tl->host = i;
		tl->at_canon = req->hosts[i].canon != NULL;
		char *name = tlsa_name(req, tl->at_canon ? req->hosts[i].canon : req->hosts[i].name);
		tl->q = dns_query(req->dns, name, DNS_T_TLSA, on_tlsa, tl);
		xfree(name);
	}
	return true;
}

/* All address lookups are in: merge them per host in family order. */
static void
addresses_done(mx_req_t *req)
{
	bool v6first = req->opt.family == MX_INET6_FIRST || req->opt.family == MX_INET6_ONLY;
	for (size_t i = 0; i < req->nhosts; i++) {
		mx_host_t *h = &req->hosts[i];
		size_t total = 0;
		h->secure = true;
		for (size_t j = 0; j < req->nlk; j++) {
			struct lookup *l = &req->lk[j];
			if (l->host != i)
				continue;
			total += l->naddrs;
			h->secure = h->secure && l->secure;
			h->tempfail = h->tempfail || l->tempfail;
			if (l->canon && !h->canon)
				h->canon = xstrdup(l->canon);
		}
		h->addrs = xcalloc(total ? total : 1, sizeof(*h->addrs));
		h->naddrs = 0;
		for (int pass = 0; pass < 2; pass++) {
			int want = (pass == 0) == v6first ? DNS_T_AAAA : DNS_T_A;
			for (size_t j = 0; j < req->nlk; j++) {
				struct lookup *l = &req->lk[j];
				if (l->host != i || l->rrtype != want)
					continue;
				for (size_t a = 0; a < l->naddrs; a++) {
					h->addrs[h->naddrs] = l->addrs[a];
					set_port(&h->addrs[h->naddrs], opt_port(&req->opt));
					h->naddrs++;
				}
			}
		}
	}
	enum mx_status st = mx_finish(req->hosts, &req->nhosts, &req->opt);
	if (st == MX_LOOP) {
		/* the address lookups' details (AAAA: NODATA ...) do not explain it */
		buf_reset(&req->detail);
		add_detail(req, "the best MX for %s has one of our own addresses", req->domain);
	}
	if (st == MX_OK && req->opt.tlsa && req->mx_secure && start_tlsa(req))
		return;
	complete(req, st);
}

static void
on_addr(void *arg, const dns_result_t *r)
{
	struct lookup *l = arg;
	mx_req_t *req = l->req;
	l->q = NULL;
	const char *tname = l->rrtype == DNS_T_A ? "A" : "AAAA";
	switch (r->status) {
	case DNS_OK: {
		note_ttl(req, r);
		size_t max = opt_max_addrs(&req->opt);
		size_t n = r->n < max ? r->n : max;
		l->addrs = xcalloc(n ? n : 1, sizeof(*l->addrs));
		for (size_t i = 0; i < n; i++) {
			const dns_rr_t *rr = &r->rr[i];
			memcpy(&l->addrs[l->naddrs++], &rr->u.addr.sa, sizeof(rr->u.addr.sa));
		}
		l->secure = r->secure;
		if (r->secure && r->canonname && !same_name(r->canonname, req->hosts[l->host].name)) {
			size_t cl = strlen(r->canonname);
			if (cl > 1 && r->canonname[cl - 1] == '.')
				cl--;
			l->canon = xstrndup(r->canonname, cl);
		}
		break;
	}
	case DNS_NXDOMAIN:
	case DNS_NODATA:
		l->secure = r->secure;
		add_detail(req, "%s/%s: %s", r->qname, tname, dns_status_str(r->status));
		break;
	case DNS_TEMPFAIL:
	case DNS_BOGUS:
		l->tempfail = true;
		add_detail(req, "%s/%s: %s", r->qname, tname, r->why);
		break;
	}
	if (--req->pending == 0)
		addresses_done(req);
}

static void
start_addresses(mx_req_t *req)
{
	size_t fams = req->opt.family == MX_INET_ONLY || req->opt.family == MX_INET6_ONLY ? 1 : 2;
	req->nlk = req->nhosts * fams;
	req->lk = xcalloc(req->nlk, sizeof(*req->lk));
	size_t k = 0;
	for (size_t i = 0; i < req->nhosts; i++) {
		if (req->opt.family != MX_INET_ONLY) {
			req->lk[k].host = i;
			req->lk[k].rrtype = DNS_T_AAAA;
			k++;
		}
		if (req->opt.family != MX_INET6_ONLY) {
			req->lk[k].host = i;
			req->lk[k].rrtype = DNS_T_A;
			k++;
		}
	}
	req->pending = req->nlk;
	/* dns_query never calls back synchronously, so starting them all
	 * before any answers is safe */
	for (size_t j = 0; j < req->nlk; j++) {
		struct lookup *l = &req->lk[j];
		l->req = req;
		l->q = dns_query(req->dns, req->hosts[l->host].name, l->rrtype, on_addr, l);
	}
}

static void
on_mx(void *arg, const dns_result_t *r)
{
	mx_req_t *req = arg;
	req->mxq = NULL;
	enum mx_status st;
	dns_rr_t implicit;

	switch (r->status) {
	case DNS_OK:
		note_ttl(req, r);
		req->mx_secure = r->secure;
		st = mx_order(r->rr, r->n, &req->opt, NULL, NULL, &req->hosts, &req->nhosts);
		break;
	case DNS_NODATA:
		/* RFC 5321 §5.1: no MX records - the domain itself is the
		 * implicit MX with preference 0 */
		req->mx_secure = r->secure;
		req->implicit = true;
		memset(&implicit, 0, sizeof(implicit));
		implicit.u.mx.pref = 0;
		implicit.u.mx.exchange = req->domain;
		st = mx_order(&implicit, 1, &req->opt, NULL, NULL, &req->hosts, &req->nhosts);
		break;
	case DNS_NXDOMAIN:
		add_detail(req, "%s/MX: NXDOMAIN", r->qname);
		complete(req, MX_NXDOMAIN);
		return;
	case DNS_TEMPFAIL:
	case DNS_BOGUS:
	default:
		add_detail(req, "%s/MX: %s", r->qname, r->why);
		complete(req, MX_TEMPFAIL);
		return;
	}
	if (st == MX_NULLMX)
		add_detail(req, "%s has a null MX (RFC 7505)", req->domain);
	else if (st == MX_LOOP)
		add_detail(req, "the best MX for %s is this host", req->domain);
	if (st != MX_OK) {
		complete(req, st);
		return;
	}
	start_addresses(req);
}

static void
copy_options(mx_req_t *req, const mx_options_t *o)
{
	if (o)
		req->opt = *o;
	size_t n = 0;
	for (const char *const *s = o ? o->self_names : NULL; s && *s; s++)
		n++;
	req->self_names = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		req->self_names[i] = xstrdup(o->self_names[i]);
	req->opt.self_names = (const char *const *)req->self_names;
	req->self_addrs = NULL;
	if (o && o->nself_addrs) {
		req->self_addrs = xcalloc(o->nself_addrs, sizeof(*req->self_addrs));
		memcpy(req->self_addrs, o->self_addrs, o->nself_addrs * sizeof(*req->self_addrs));
	}
	req->opt.self_addrs = req->self_addrs;
	req->opt.nself_addrs = o ? o->nself_addrs : 0;
}

/* Domain literal: no DNS; the result is delivered on a zero timer. */
static void
start_literal(mx_req_t *req)
{
	req->literal = true;
	struct sockaddr_storage sa;
	enum mx_status st;
	if (mx_parse_literal(req->domain, &sa) < 0) {
		add_detail(req, "invalid address literal %s", req->domain);
		st = MX_NXDOMAIN;
	} else if ((sa.ss_family == AF_INET && req->opt.family == MX_INET6_ONLY) ||
	    (sa.ss_family == AF_INET6 && req->opt.family == MX_INET_ONLY)) {
		add_detail(req, "%s: address family disabled", req->domain);
		st = MX_NOADDR;
	} else {
		req->hosts = xcalloc(1, sizeof(*req->hosts));
		req->nhosts = 1;
		req->hosts[0].name = xstrdup(req->domain);
		req->hosts[0].addrs = xcalloc(1, sizeof(sa));
		req->hosts[0].addrs[0] = sa;
		set_port(&req->hosts[0].addrs[0], opt_port(&req->opt));
		req->hosts[0].naddrs = 1;
		st = mx_finish(req->hosts, &req->nhosts, &req->opt);
		if (st == MX_LOOP)
			add_detail(req, "%s is one of our own addresses", req->domain);
	}
	req->ready = make_result(req, st);
	uv_timer_init(dns_loop(req->dns), &req->timer);
	req->timer.data = req;
	req->timer_inited = true;
	uv_timer_start(&req->timer, on_literal_timer, 0, 0);
}

mx_req_t *
mx_resolve(dns_t *dns, const char *domain, const mx_options_t *o, mx_cb cb, void *arg)
{
	mx_req_t *req = xcalloc(1, sizeof(*req));
	req->dns = dns;
	req->cb = cb;
	req->arg = arg;
	/* a trailing dot is allowed in DNS but not in the result's names */
	size_t n = strlen(domain);
	if (n > 1 && domain[n - 1] == '.')
		n--;
	req->domain = xstrndup(domain, n);
	copy_options(req, o);
	if (req->domain[0] == '[') {
		start_literal(req);
	} else if (req->opt.no_mx) {
		/* a configured host: trusted as named (RFC 7672 §2.2.1) */
		req->mx_secure = true;
		dns_rr_t self;
		memset(&self, 0, sizeof self);
		self.u.mx.exchange = req->domain;
		enum mx_status st = mx_order(&self, 1, &req->opt, NULL, NULL, &req->hosts, &req->nhosts);
		if (st != MX_OK) {
			add_detail(req, "%s is this host", req->domain);
			req->ready = make_result(req, st);
			uv_timer_init(dns_loop(req->dns), &req->timer);
			req->timer.data = req;
			req->timer_inited = true;
			uv_timer_start(&req->timer, on_literal_timer, 0, 0);
		} else {
			start_addresses(req);
		}
	} else
		req->mxq = dns_query(dns, req->domain, DNS_T_MX, on_mx, req);
	return req;
}

void
mx_cancel(mx_req_t *req)
{
	if (req == NULL)
		return;
	dns_cancel(req->mxq);
	req->mxq = NULL;
	for (size_t i = 0; i < req->nlk; i++) {
		dns_cancel(req->lk[i].q);
		req->lk[i].q = NULL;
	}
	for (size_t i = 0; i < req->ntl; i++) {
		dns_cancel(req->tl[i].q);
		req->tl[i].q = NULL;
	}
	if (req->timer_inited)
		uv_timer_stop(&req->timer);
	req_free(req);
}
