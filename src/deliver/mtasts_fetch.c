/*
 * mtasts_fetch.c - MTA-STS discovery (TXT), fetch (HTTPS through
 * lib/http.h) and the policy cache kept in memory and in the spool (see
 * mtasts_fetch.h).
 *
 * A lookup walks: TXT "_mta-sts.DOMAIN" -> (id unchanged and cached: done)
 * -> A, else AAAA, of "mta-sts.DOMAIN" -> HTTPS GET -> parse -> cache and
 * persist. Each step's failure falls back to the cached policy while it
 * has not expired (RFC 8461 §5.1), else to no policy.
 * Cache file (SPOOL/mta-sts/DOMAIN): "tern-mta-sts 1", "id ID",
 * "expires UNIXTIME", an empty line, then the policy exactly as fetched.
 */
#include "deliver/mtasts_fetch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deliver/tlsrpt.h"
#include "lib/fsutil.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/xalloc.h"

struct entry {
	struct entry *next;
	char *domain;
	char id[MTASTS_ID_MAX + 1];
	int64_t expires; /* unix time */
	mtasts_policy_t pol;
};

struct mtasts {
	uv_loop_t *loop;
	dns_t *dns;
	http_t *http;
	char *dir;
	char *ca_file;
	uint16_t port;
	unsigned timeout_ms;
	struct entry *cache;
	size_t ncache;
	mtasts_req_t *reqs;
};

struct mtasts_req {
	mtasts_req_t *next, *prev;
	mtasts_t *m;
	char *domain;
	char id[MTASTS_ID_MAX + 1];
	dns_query_t *q;
	http_req_t *h;
	bool tried_aaaa;
	mtasts_cb cb;
	void *arg;
};

/* a domain usable as a file name: letters, digits, '-', '_', '.', no
 * leading dot, at most 253 octets */
static bool
domain_ok(const char *d)
{
	size_t n = strlen(d);
	if (n == 0 || n > 253 || d[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = d[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.'))
			return false;
	}
	return strstr(d, "..") == NULL;
}

static struct entry *
cache_find(mtasts_t *m, const char *domain)
{
	for (struct entry *e = m->cache; e; e = e->next)
		if (strcmp(e->domain, domain) == 0)
			return e;
	return NULL;
}

/* the cached policy when it has not expired, else NULL */
static struct entry *
cache_valid(mtasts_t *m, const char *domain)
{
	struct entry *e = cache_find(m, domain);
	return e && e->expires > (int64_t)time(NULL) ? e : NULL;
}

static struct entry *
cache_put(mtasts_t *m, const char *domain, const char *id, int64_t expires, mtasts_policy_t *pol)
{
	struct entry *e = cache_find(m, domain);
	if (!e) {
		e = xcalloc(1, sizeof *e);
		e->domain = xstrdup(domain);
		e->next = m->cache;
		m->cache = e;
		m->ncache++;
	} else {
		mtasts_policy_clear(&e->pol);
	}
	snprintf(e->id, sizeof e->id, "%s", id);
	e->expires = expires;
	e->pol = *pol; /* taken */
	memset(pol, 0, sizeof *pol);
	return e;
}

/* ---- the spool copy ---- */

struct wjob {
	uv_work_t w;
	char *dir, *name;
	char *data;
	size_t len;
	int err;
};

static void
write_work(uv_work_t *w)
{
	struct wjob *j = w->data;
	char *tmp = xasprintf("%s/.%s.tmp", j->dir, j->name);
	char *path = xasprintf("%s/%s", j->dir, j->name);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	j->err = 0;
	if (fd < 0 || write_all(fd, j->data, j->len) < 0 || fsync(fd) < 0)
		j->err = errno ? errno : EIO;
	if (fd >= 0 && close(fd) < 0 && !j->err)
		j->err = errno;
	if (!j->err && rename(tmp, path) < 0)
		j->err = errno;
	if (!j->err && fsync_dir(j->dir) < 0)
		j->err = errno;
	if (j->err)
		unlink(tmp);
	xfree(tmp);
	xfree(path);
}

static void
write_done(uv_work_t *w, int status)
{
	struct wjob *j = w->data;
	if (status == 0 && j->err)
		log_warn("mta-sts: %s: cannot keep the policy in %s: %s", j->name, j->dir,
		    strerror(j->err));
	xfree(j->dir);
	xfree(j->name);
	xfree(j->data);
	xfree(j);
}

static void
persist(mtasts_t *m, const char *domain, const char *id, int64_t expires, const char *body,
    size_t len)
{
	struct wjob *j = xcalloc(1, sizeof *j);
	buf_t b = BUF_INIT;
	buf_printf(&b, "tern-mta-sts 1\nid %s\nexpires %" PRId64 "\n\n", id, expires);
	buf_append(&b, body, len);
	j->len = b.len;
	j->data = buf_steal(&b);
	j->dir = xstrdup(m->dir);
	j->name = xstrdup(domain);
	j->w.data = j;
	if (uv_queue_work(m->loop, &j->w, write_work, write_done) != 0) {
		log_warn("mta-sts: %s: cannot keep the policy: no worker", domain);
		xfree(j->dir);
		xfree(j->name);
		xfree(j->data);
		xfree(j);
	}
}

/* "tern-mta-sts 1\nid ID\nexpires N\n\n": the id, the time and where
 * the policy starts; -1 when the header is not that */
static int
parse_header(const char *data, char *id, long long *expires, int *used)
{
	static const char magic[] = "tern-mta-sts 1\nid ";
	if (strncmp(data, magic, sizeof magic - 1) != 0)
		return -1;
	const char *p = data + sizeof magic - 1;
	size_t n = 0;
	while (n <= MTASTS_ID_MAX && ((p[n] >= 'A' && p[n] <= 'Z') || (p[n] >= 'a' && p[n] <= 'z') ||
	    (p[n] >= '0' && p[n] <= '9')))
		n++;
	if (n == 0 || n > MTASTS_ID_MAX || strncmp(p + n, "\nexpires ", 9) != 0)
		return -1;
	memcpy(id, p, n);
	id[n] = '\0';
	p += n + 9;
	char *end;
	errno = 0;
	long long v = strtoll(p, &end, 10);
	if (errno || end == p || v <= 0 || strncmp(end, "\n\n", 2) != 0)
		return -1;
	*expires = v;
	*used = (int)(end + 2 - data);
	return 0;
}

/* read one cache file at start; expired or broken ones are removed */
static void
load_one(mtasts_t *m, const char *name)
{
	char *path = xasprintf("%s/%s", m->dir, name);
	char *data = NULL;
	size_t len = 0;
	if (read_file(path, &data, &len, MTASTS_BODY_MAX + 512) < 0) {
		xfree(path);
		return;
	}
	char id[MTASTS_ID_MAX + 1];
	long long expires = 0;
	int used = 0;
	const char *why = NULL;
	mtasts_policy_t pol;
	buf_t err = BUF_INIT;
	memset(&pol, 0, sizeof pol);
	if (parse_header(data, id, &expires, &used) < 0)
		why = "not a cache file";
	else if (expires <= (long long)time(NULL))
		why = "expired";
	else if (mtasts_policy_parse(data + used, len - (size_t)used, &pol, &err) < 0)
		why = buf_cstr(&err);
	if (why) {
		log_info("mta-sts: cached policy %s dropped: %s", path, why);
		unlink(path);
	} else {
		cache_put(m, name, id, (int64_t)expires, &pol);
	}
	mtasts_policy_clear(&pol);
	buf_free(&err);
	xfree(data);
	xfree(path);
}

static void
load_cache(mtasts_t *m)
{
	DIR *d = opendir(m->dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.') {
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
				char *p = xasprintf("%s/%s", m->dir, de->d_name);
				unlink(p); /* a temporary file a crash left */
				xfree(p);
			}
			continue;
		}
		if (domain_ok(de->d_name))
			load_one(m, de->d_name);
	}
	closedir(d);
	if (m->ncache)
		log_info("mta-sts: %zu cached polic%s read from %s", m->ncache,
		    m->ncache == 1 ? "y" : "ies", m->dir);
}

/* ---- lookups ---- */

static void
req_free(mtasts_req_t *r)
{
	mtasts_t *m = r->m;
	if (r->prev)
		r->prev->next = r->next;
	else
		m->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	xfree(r->domain);
	xfree(r);
}

/* the end of a lookup: the policy to use (or none) */
static void
req_done(mtasts_req_t *r, const struct entry *e)
{
	const mtasts_policy_t *p = e && e->pol.mode != MTASTS_NONE ? &e->pol : NULL;
	mtasts_cb cb = r->cb;
	void *arg = r->arg;
	char id[MTASTS_ID_MAX + 1];
	snprintf(id, sizeof id, "%s", e ? e->id : "");
	req_free(r);
	cb(arg, p, id);
}

/* a step failed: the cached policy while it lasts, else none */
static void
req_fallback(mtasts_req_t *r, const char *why)
{
	struct entry *e = cache_valid(r->m, r->domain);
	if (e)
		log_info("mta-sts: %s: %s; the cached policy (id=%s) stays in force", r->domain, why,
		    e->id);
	else
		log_info("mta-sts: %s: %s; no policy", r->domain, why);
	req_done(r, e);
}

/* RFC 8460 section 4.3.2.2.2: the policy the TXT record announced could
 * not be had: a failure in the domain's TLS report (the cached policy, if
 * any, quoted as the one that applied) */
static void
rpt_fail(const mtasts_req_t *r, const char *result, const char *why)
{
	struct entry *e = cache_valid(r->m, r->domain);
	tlsrpt_attempt_t a;
	memset(&a, 0, sizeof a);
	a.domain = r->domain;
	a.sts = e && e->pol.mode != MTASTS_NONE ? &e->pol : NULL;
	a.sts_fetch = true;
	a.result = result;
	a.reason = why;
	tlsrpt_count_attempt(&a, time(NULL));
}

static bool
ctype_plain(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, "text/plain", 10) != 0)
		return false;
	ct += 10;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

static void
on_http(void *arg, const http_result_t *res)
{
	mtasts_req_t *r = arg;
	r->h = NULL;
	char why[300];
	if (!res->ok) {
		snprintf(why, sizeof why, "policy fetch failed: %s", res->error);
		rpt_fail(r, res->cert_failed ? "sts-webpki-invalid" : "sts-policy-fetch-error", why);
		req_fallback(r, why);
		return;
	}
	if (res->status != 200) {
		snprintf(why, sizeof why, "policy fetch failed: HTTP status %ld", res->status);
		rpt_fail(r, "sts-policy-fetch-error", why);
		req_fallback(r, why);
		return;
	}
	/* §3.2: the policy is served as text/plain */
	if (!ctype_plain(res->content_type)) {
		snprintf(why, sizeof why, "policy fetch failed: Content-Type %.100s, not text/plain",
		    res->content_type ? res->content_type : "missing");
		rpt_fail(r, "sts-policy-invalid", why);
		req_fallback(r, why);
		return;
	}
	mtasts_policy_t pol;
	buf_t err = BUF_INIT;
	if (mtasts_policy_parse(res->body, res->body_len, &pol, &err) < 0) {
		snprintf(why, sizeof why, "malformed policy (id=%s): %.200s", r->id, buf_cstr(&err));
		buf_free(&err);
		rpt_fail(r, "sts-policy-invalid", why);
		req_fallback(r, why);
		return;
	}
	buf_free(&err);
	int64_t expires = (int64_t)time(NULL) + pol.max_age;
	buf_t mx = BUF_INIT;
	for (size_t i = 0; i < pol.nmx && mx.len < 400; i++)
		buf_printf(&mx, "%s%s", i ? "," : "", pol.mx[i]);
	log_info("mta-sts: %s: policy fetched id=%s mode=%s max_age=%u mx=%s", r->domain, r->id,
	    mtasts_mode_name(pol.mode), pol.max_age, mx.len ? buf_cstr(&mx) : "-");
	buf_free(&mx);
	persist(r->m, r->domain, r->id, expires, res->body, res->body_len);
	struct entry *e = cache_put(r->m, r->domain, r->id, expires, &pol);
	req_done(r, e);
}

static void
fetch(mtasts_req_t *r, const char *ip, bool v6)
{
	mtasts_t *m = r->m;
	char port[8] = "";
	if (m->port != 443)
		snprintf(port, sizeof port, ":%u", m->port);
	char *url = xasprintf("https://mta-sts.%s%s/.well-known/mta-sts.txt", r->domain, port);
	char *resolve = xasprintf("mta-sts.%s:%u:%s%s%s", r->domain, m->port, v6 ? "[" : "", ip,
	    v6 ? "]" : "");
	http_get_options_t ho;
	memset(&ho, 0, sizeof ho);
	ho.url = url;
	ho.resolve = resolve;
	ho.ca_file = m->ca_file;
	ho.max_size = MTASTS_BODY_MAX;
	ho.timeout_ms = m->timeout_ms;
	r->h = http_get(m->http, &ho, on_http, r);
	xfree(url);
	xfree(resolve);
}

static void
on_addr(void *arg, const dns_result_t *res)
{
	mtasts_req_t *r = arg;
	r->q = NULL;
	if (res->status == DNS_OK && res->n > 0) {
		fetch(r, res->rr[0].u.addr.text, res->rrtype == DNS_T_AAAA);
		return;
	}
	if (!r->tried_aaaa && res->status != DNS_BOGUS) {
		r->tried_aaaa = true;
		char *name = xasprintf("mta-sts.%s", r->domain);
		r->q = dns_query(r->m->dns, name, DNS_T_AAAA, on_addr, r);
		xfree(name);
		return;
	}
	char why[200];
	snprintf(why, sizeof why, "policy host mta-sts.%.100s has no address (%s)", r->domain,
	    res->why && res->why[0] ? res->why : dns_status_str(res->status));
	rpt_fail(r, "sts-policy-fetch-error", why);
	req_fallback(r, why);
}

/* one TXT record's strings (RFC 1035 §3.3.14) concatenated into *out; -1 if malformed */
static int
txt_join(const uint8_t *p, size_t n, buf_t *out)
{
	size_t i = 0;
	while (i < n) {
		size_t l = p[i++];
		if (l > n - i)
			return -1;
		buf_append(out, p + i, l);
		i += l;
	}
	return 0;
}

static void
on_txt(void *arg, const dns_result_t *res)
{
	mtasts_req_t *r = arg;
	r->q = NULL;
	if (res->status == DNS_NXDOMAIN || res->status == DNS_NODATA) {
		struct entry *e = cache_valid(r->m, r->domain);
		if (e)
			log_info("mta-sts: %s: no _mta-sts TXT record; the cached policy (id=%s) stays "
			    "in force until it expires", r->domain, e->id);
		req_done(r, e);
		return;
	}
	if (res->status != DNS_OK) {
		char why[200];
		snprintf(why, sizeof why, "_mta-sts TXT lookup failed (%s)",
		    res->why && res->why[0] ? res->why : dns_status_str(res->status));
		req_fallback(r, why);
		return;
	}
	/* §3.1: of the records starting with v=STSv1 there must be exactly
	 * one, and valid; anything else means no (new) policy */
	int nsts = 0, good = 0;
	char id[MTASTS_ID_MAX + 1] = "";
	buf_t err = BUF_INIT;
	for (size_t i = 0; i < res->n; i++) {
		buf_t t = BUF_INIT;
		char one[MTASTS_ID_MAX + 1];
		if (txt_join(res->rr[i].rdata, res->rr[i].rdlen, &t) == 0) {
			int k = mtasts_txt_parse(t.data ? t.data : "", t.len, one, &err);
			if (k != 0)
				nsts++;
			if (k == 1) {
				good++;
				memcpy(id, one, sizeof id);
			}
		}
		buf_free(&t);
	}
	if (nsts != 1 || good != 1) {
		char why[300];
		snprintf(why, sizeof why, "%s", nsts == 0 ? "no STSv1 TXT record"
		    : nsts > 1 ? "several STSv1 TXT records" : buf_cstr(&err));
		buf_free(&err);
		if (nsts == 0) {
			req_done(r, cache_valid(r->m, r->domain));
			return;
		}
		req_fallback(r, why);
		return;
	}
	buf_free(&err);
	struct entry *e = cache_valid(r->m, r->domain);
	if (e && strcmp(e->id, id) == 0) {
		req_done(r, e); /* §5.1: the same id, the cached policy */
		return;
	}
	if (e)
		log_info("mta-sts: %s: the policy id changed (%s -> %s): fetching it", r->domain, e->id,
		    id);
	memcpy(r->id, id, sizeof r->id);
	char *name = xasprintf("mta-sts.%s", r->domain);
	r->q = dns_query(r->m->dns, name, DNS_T_A, on_addr, r);
	xfree(name);
}

mtasts_req_t *
mtasts_lookup(mtasts_t *m, const char *domain, mtasts_cb cb, void *arg)
{
	mtasts_req_t *r = xcalloc(1, sizeof *r);
	r->m = m;
	r->domain = xstrdup(domain);
	r->cb = cb;
	r->arg = arg;
	r->next = m->reqs;
	if (m->reqs)
		m->reqs->prev = r;
	m->reqs = r;
	if (!domain_ok(domain)) {
		/* no policy for a name that is not a plain host name; the answer
		 * still comes from the loop (a query that fails at once) */
		r->q = dns_query(m->dns, "invalid.", DNS_T_TXT, on_txt, r);
		return r;
	}
	char *name = xasprintf("_mta-sts.%s", domain);
	r->q = dns_query(m->dns, name, DNS_T_TXT, on_txt, r);
	xfree(name);
	return r;
}

void
mtasts_cancel(mtasts_req_t *r)
{
	if (!r)
		return;
	if (r->q)
		dns_cancel(r->q);
	if (r->h)
		http_cancel(r->h);
	req_free(r);
}

size_t
mtasts_cached(const mtasts_t *m)
{
	return m->ncache;
}

mtasts_t *
mtasts_new(uv_loop_t *loop, dns_t *dns, const mtasts_options_t *o, buf_t *err)
{
	mtasts_t *m = xcalloc(1, sizeof *m);
	m->loop = loop;
	m->dns = dns;
	m->dir = xasprintf("%s/mta-sts", o->spool_dir ? o->spool_dir : ".");
	m->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
	m->port = o->port ? o->port : 443;
	m->timeout_ms = o->timeout_ms;
	if (mkdir_p(m->dir, 0700) < 0) {
		buf_printf(err, "cannot make %s: %s", m->dir, strerror(errno));
		mtasts_free(m);
		return NULL;
	}
	m->http = http_new(loop);
	if (!m->http) {
		buf_printf(err, "libcurl cannot start");
		mtasts_free(m);
		return NULL;
	}
	load_cache(m);
	return m;
}

void
mtasts_set_options(mtasts_t *m, dns_t *dns, const mtasts_options_t *o)
{
	m->dns = dns;
	xfree(m->ca_file);
	m->ca_file = o->ca_file ? xstrdup(o->ca_file) : NULL;
	m->port = o->port ? o->port : 443;
	m->timeout_ms = o->timeout_ms;
}

void
mtasts_free(mtasts_t *m)
{
	if (!m)
		return;
	for (mtasts_req_t *r = m->reqs, *next; r; r = next) {
		next = r->next;
		if (r->q)
			dns_cancel(r->q);
		if (r->h)
			http_cancel(r->h);
		xfree(r->domain);
		xfree(r);
	}
	m->reqs = NULL;
	http_free(m->http);
	for (struct entry *e = m->cache, *n; e; e = n) {
		n = e->next;
		mtasts_policy_clear(&e->pol);
		xfree(e->domain);
		xfree(e);
	}
	xfree(m->dir);
	xfree(m->ca_file);
	xfree(m);
}
