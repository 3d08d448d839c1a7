/*
 * dnsbl.c - FILTER: DNSBL/DNSWL lookups and scoring (contract in dnsbl.h).
 *
 * One resolver (lib/dns.h) for the process, made at the first check with
 * dns_servers and dnsbl_timeout; when a reload changes them, new checks get
 * a new resolver and the old one goes once its last check is done. The
 * cache is one list of at most CACHE_MAX answers, each kept until its TTL
 * runs out (checked at every use: never served past it); when full, the
 * expired ones go, then the oldest.
 * Must not: block; call back from inside dnsbl_check() (a cached answer is
 * delivered from a zero timer).
 */
#include "filter/dnsbl.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter/fstats.h"
#include "lib/dns.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define CACHE_MAX 4096
#define MAX_SITES 32
#define MAX_A 16

/* ---- parsing ---- */

/* one octet filter: "N" or "[LO..HI]"; advances *p */
static int
parse_octet(const char **p, uint8_t *lo, uint8_t *hi)
{
	const char *s = *p;
	char *end;
	bool range = *s == '[';
	if (range)
		s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	unsigned long a = strtoul(s, &end, 10), b = a;
	if (errno || a > 255)
		return -1;
	s = end;
	if (range) {
		if (strncmp(s, "..", 2) != 0)
			return -1;
		s += 2;
		if (!isdigit((unsigned char)*s))
			return -1;
		b = strtoul(s, &end, 10);
		if (errno || b > 255 || b < a || *end != ']')
			return -1;
		s = end + 1;
	}
	*lo = (uint8_t)a;
	*hi = (uint8_t)b;
	*p = s;
	return 0;
}

int
dnsbl_site_parse(const char *spec, dnsbl_site_t *out, buf_t *err)
{
	memset(out, 0, sizeof *out);
	out->weight = 1;
	const char *star = strrchr(spec, '*');
	const char *eq = strchr(spec, '=');
	size_t zlen = strcspn(spec, "=*");
	if (zlen == 0 || zlen > DNSBL_ZONE_MAX) {
		buf_printf(err, "dnsbl site \"%s\": the zone is empty or too long", spec);
		return -1;
	}
	for (size_t i = 0; i < zlen; i++) {
		unsigned char ch = (unsigned char)spec[i];
		if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_') {
			buf_printf(err, "dnsbl site \"%s\": bad character in the zone", spec);
			return -1;
		}
		out->zone[i] = (char)tolower(ch);
	}
	if (out->zone[zlen - 1] == '.')
		out->zone[zlen - 1] = '\0';
	if (out->zone[0] == '.' || out->zone[0] == '\0' || strstr(out->zone, "..")) {
		buf_printf(err, "dnsbl site \"%s\": bad zone name", spec);
		return -1;
	}
	if (eq && (!star || eq < star)) {
		const char *p = eq + 1;
		for (int i = 0; i < 4; i++) {
			if ((i > 0 && *p++ != '.') || parse_octet(&p, &out->lo[i], &out->hi[i]) < 0) {
				buf_printf(err, "dnsbl site \"%s\": the reply filter must be four octets, "
				    "each N or [LO..HI] (like 127.0.0.[2..11])", spec);
				return -1;
			}
		}
		if (p != (star ? star : spec + strlen(spec))) {
			buf_printf(err, "dnsbl site \"%s\": junk after the reply filter", spec);
			return -1;
		}
		out->filter = true;
	} else if (spec[zlen] != '\0' && spec[zlen] != '*') {
		buf_printf(err, "dnsbl site \"%s\": bad syntax", spec);
		return -1;
	}
	if (star) {
		char *end;
		errno = 0;
		long w = strtol(star + 1, &end, 10);
		if (star[1] == '\0' || *end != '\0' || errno || w == 0 || w < -1000 || w > 1000) {
			buf_printf(err, "dnsbl site \"%s\": the weight must be a non-zero number "
			    "between -1000 and 1000", spec);
			return -1;
		}
		out->weight = (int)w;
	}
	return 0;
}

int
dnsbl_config_check(const config_t *c, buf_t *err)
{
	if (c->ndnsbl_sites > MAX_SITES) {
		buf_printf(err, "%s:%u: dnsbl_sites: at most %d sites", c->path,
		    config_key_line(c, "dnsbl_sites"), MAX_SITES);
		return -1;
	}
	for (size_t i = 0; i < c->ndnsbl_sites; i++) {
		dnsbl_site_t s;
		buf_t why = BUF_INIT;
		if (dnsbl_site_parse(c->dnsbl_sites[i], &s, &why) < 0) {
			buf_printf(err, "%s:%u: dnsbl_sites: %s", c->path, config_key_line(c, "dnsbl_sites"),
			    buf_cstr(&why));
			buf_free(&why);
			return -1;
		}
	}
	return 0;
}

int
dnsbl_qname(const struct sockaddr *sa, const char *zone, char *out, size_t outlen)
{
	const uint8_t *a;
	int n;
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (sa->sa_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		n = snprintf(out, outlen, "%u.%u.%u.%u.%s", a[3], a[2], a[1], a[0], zone);
	} else if (sa->sa_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		if (memcmp(a, mapped, 12) == 0) {
			/* an IPv4 client on a dual-stack socket: looked up as IPv4 */
			n = snprintf(out, outlen, "%u.%u.%u.%u.%s", a[15], a[14], a[13], a[12], zone);
		} else {
			/* RFC 5782 §2.4: 32 nibbles, least significant first */
			static const char hex[] = "0123456789abcdef";
			char nib[64];
			for (int i = 0; i < 16; i++) {
				nib[4 * i] = hex[a[15 - i] & 0xf];
				nib[4 * i + 1] = '.';
				nib[4 * i + 2] = hex[a[15 - i] >> 4];
				nib[4 * i + 3] = '.';
			}
			n = snprintf(out, outlen, "%.64s%s", nib, zone);
		}
	} else {
		return -1;
	}
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

bool
dnsbl_match(const dnsbl_site_t *s, const uint8_t a[4])
{
	if (!s->filter)
		return true;
	for (int i = 0; i < 4; i++)
		if (a[i] < s->lo[i] || a[i] > s->hi[i])
			return false;
	return true;
}

/* ---- the resolver and the cache ---- */

typedef struct resolver {
	dns_t *dns;
	char *key; /* dns_servers and the timeout it was made with */
	unsigned refs;
	struct resolver *next; /* retired ones */
} resolver_t;

typedef struct centry {
	char *name; /* qname */
	int type;
	enum dns_status status;
	uint64_t expires; /* uv_now() ms */
	uint8_t a[MAX_A][4];
	size_t na;
	char txt[DNSBL_TXT_MAX + 1];
	struct centry *next;
} centry_t;

static resolver_t *cur;     /* the one new checks use */
static resolver_t *retired; /* still in use by older checks */
static centry_t *cache, *cache_tail;
static size_t ncache;

static void
resolver_put(resolver_t *r)
{
	if (--r->refs > 0 || r == cur)
		return;
	for (resolver_t **pp = &retired; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	dns_free(r->dns);
	xfree(r->key);
	xfree(r);
}

static resolver_t *
resolver_get(uv_loop_t *loop, const config_t *c)
{
	char *key = xasprintf("%s/%u", c->dns_servers ? c->dns_servers : "", c->dnsbl_timeout);
	if (cur && strcmp(cur->key, key) == 0 && dns_loop(cur->dns) == loop) {
		xfree(key);
		cur->refs++;
		return cur;
	}
	if (cur) {
		resolver_t *old = cur;
		cur = NULL;
		if (old->refs == 0) {
			dns_free(old->dns);
			xfree(old->key);
			xfree(old);
		} else {
			old->next = retired;
			retired = old;
		}
	}
	char *list = c->dns_servers ? xstrdup(c->dns_servers) : NULL, *save = NULL;
	const char *servers[33];
	size_t ns = 0;
	for (char *t = list ? strtok_r(list, " \t,", &save) : NULL; t && ns < 32;
	    t = strtok_r(NULL, " \t,", &save))
		servers[ns++] = t;
	servers[ns] = NULL;
	dns_options_t o;
	memset(&o, 0, sizeof o);
	o.servers = ns ? servers : NULL;
	o.timeout_ms = c->dnsbl_timeout * 1000u;
	buf_t err = BUF_INIT;
	dns_t *d = dns_new(loop, &o, &err);
	xfree(list);
	if (!d) {
		log_err("dnsbl: cannot start the resolver: %s; no lists are checked", buf_cstr(&err));
		buf_free(&err);
		xfree(key);
		return NULL;
	}
	buf_free(&err);
	cur = xcalloc(1, sizeof *cur);
	cur->dns = d;
	cur->key = key;
	cur->refs = 1;
	return cur;
}

static void
centry_free(centry_t *e)
{
	xfree(e->name);
	xfree(e);
}

static centry_t *
cache_find(const char *name, int type, uint64_t now)
{
	centry_t *prev = NULL;
	for (centry_t *e = cache; e; prev = e, e = e->next) {
		if (e->type != type || strcmp(e->name, name) != 0)
			continue;
		if (e->expires > now)
			return e;
		/* past its TTL: gone */
		if (prev)
			prev->next = e->next;
		else
			cache = e->next;
		if (cache_tail == e)
			cache_tail = prev;
		ncache--;
		centry_free(e);
		return NULL;
	}
	return NULL;
}

static void
cache_purge(uint64_t now)
{
	centry_t **pp = &cache;
	cache_tail = NULL;
	while (*pp) {
		centry_t *e = *pp;
		if (e->expires <= now) {
			*pp = e->next;
			ncache--;
			centry_free(e);
		} else {
			cache_tail = e;
			pp = &e->next;
		}
	}
	while (ncache >= CACHE_MAX && cache) {
		centry_t *e = cache; /* the oldest */
		cache = e->next;
		if (cache_tail == e)
			cache_tail = NULL;
		ncache--;
		centry_free(e);
	}
}

static centry_t *
cache_add(const char *name, int type, enum dns_status st, uint32_t ttl, uint64_t now)
{
	centry_t *e = xcalloc(1, sizeof *e);
	e->name = xstrdup(name);
	e->type = type;
	e->status = st;
	e->expires = now + (uint64_t)ttl * 1000u;
	if (ttl > 0) {
		if (ncache >= CACHE_MAX)
			cache_purge(now);
		if (cache_tail)
			cache_tail->next = e;
		else
			cache = e;
		cache_tail = e;
		ncache++;
	}
	return e; /* ttl 0: the caller frees it (not kept) */
}

void
dnsbl_shutdown(void)
{
	while (cache) {
		centry_t *e = cache;
		cache = e->next;
		centry_free(e);
	}
	cache_tail = NULL;
	ncache = 0;
	if (cur) {
		resolver_t *r = cur;
		cur = NULL;
		r->refs = 1;
		resolver_put(r);
	}
	while (retired) {
		resolver_t *r = retired;
		retired = r->next;
		dns_free(r->dns);
		xfree(r->key);
		xfree(r);
	}
}

/* ---- one check ---- */

struct zone {
	dnsbl_req_t *req;
	dnsbl_site_t site;
	char qname[300];
	dns_query_t *qa, *qtxt;
	bool matched;
	char a[16]; /* the matching record, for the log */
	char txt[DNSBL_TXT_MAX + 1];
};

struct dnsbl_req {
	uv_loop_t *loop;
	resolver_t *res;
	char sid[24];
	char ip[INET6_ADDRSTRLEN];
	int threshold;
	struct zone z[MAX_SITES];
	size_t nz;
	size_t pending;
	uv_timer_t *timer; /* delivers a result without queries */
	dnsbl_cb cb;
	void *arg;
};

static void
timer_closed(uv_handle_t *h)
{
	xfree(h);
}

static void
req_free(dnsbl_req_t *r)
{
	for (size_t i = 0; i < r->nz; i++) {
		dns_cancel(r->z[i].qa);
		dns_cancel(r->z[i].qtxt);
	}
	if (r->timer) {
		uv_timer_stop(r->timer);
		uv_close((uv_handle_t *)r->timer, timer_closed);
	}
	if (r->res)
		resolver_put(r->res);
	xfree(r);
}

void
dnsbl_cancel(dnsbl_req_t *r)
{
	if (r)
		req_free(r);
}

static void
finish(dnsbl_req_t *r)
{
	int score = 0;
	buf_t lists = BUF_INIT, names = BUF_INIT, reply = BUF_INIT;
	const char *txt = NULL;
	for (size_t i = 0; i < r->nz; i++) {
		struct zone *z = &r->z[i];
		if (!z->matched)
			continue;
		score += z->site.weight;
		buf_printf(&lists, "%s%s*%d", lists.len ? "," : "", z->site.zone, z->site.weight);
		if (z->site.weight > 0) {
			buf_printf(&names, "%s%s", names.len ? ", " : "", z->site.zone);
			if (!txt && z->txt[0])
				txt = z->txt;
		}
	}
	dnsbl_result_t res = {score >= r->threshold, score, buf_cstr(&lists), NULL};
	if (res.listed) {
		buf_printf(&reply, "554 5.7.1 Service unavailable; client [%s] blocked using %s", r->ip,
		    buf_cstr(&names));
		if (txt)
			buf_printf(&reply, "; %s", txt);
		res.reply = buf_cstr(&reply);
		log_info("dnsbl session=%s client=%s listed score=%d threshold=%d lists=%s", r->sid, r->ip,
		    score, r->threshold, res.lists);
		fstats_verdict("dnsbl", "listed");
	} else if (lists.len) {
		log_info("dnsbl session=%s client=%s pass score=%d threshold=%d lists=%s", r->sid, r->ip,
		    score, r->threshold, res.lists);
		fstats_verdict("dnsbl", "pass");
	}
	dnsbl_cb cb = r->cb;
	void *arg = r->arg;
	req_free(r);
	cb(arg, &res);
	buf_free(&lists);
	buf_free(&names);
	buf_free(&reply);
}

static void
done_one(dnsbl_req_t *r)
{
	if (--r->pending == 0)
		finish(r);
}

/* TXT rdata: <len><text>...; kept printable, bounded */
static void
txt_from(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	size_t k = strlen(out);
	size_t i = 0;
	while (i < n) {
		size_t l = p[i++];
		if (l > n - i)
			break;
		for (size_t j = 0; j < l && k + 1 < outlen; j++) {
			unsigned char ch = p[i + j];
			out[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
		}
		i += l;
	}
	out[k] = '\0';
}

static void
apply_txt(struct zone *z, const centry_t *e)
{
	if (e->status == DNS_OK)
		snprintf(z->txt, sizeof z->txt, "%s", e->txt);
}

static void
got_txt(void *arg, const dns_result_t *dr)
{
	struct zone *z = arg;
	dnsbl_req_t *r = z->req;
	z->qtxt = NULL;
	uint64_t now = uv_now(r->loop);
	if (dr->status == DNS_OK || dr->status == DNS_NXDOMAIN || dr->status == DNS_NODATA) {
		centry_t *e = cache_add(z->qname, DNS_T_TXT, dr->status, dr->ttl, now);
		for (size_t i = 0; i < dr->n && !e->txt[0]; i++)
			txt_from(dr->rr[i].rdata, dr->rr[i].rdlen, e->txt, sizeof e->txt);
		apply_txt(z, e);
		if (dr->ttl == 0)
			centry_free(e);
	}
	done_one(r);
}

/* the A answer (cached or not): does the site match? then its TXT */
static void
apply_a(struct zone *z, const centry_t *e)
{
	dnsbl_req_t *r = z->req;
	if (e->status != DNS_OK)
		return;
	for (size_t i = 0; i < e->na; i++)
		if (dnsbl_match(&z->site, e->a[i])) {
			z->matched = true;
			snprintf(z->a, sizeof z->a, "%u.%u.%u.%u", e->a[i][0], e->a[i][1], e->a[i][2],
			    e->a[i][3]);
			break;
		}
	if (!z->matched || z->site.weight < 0)
		return;
	const centry_t *t = cache_find(z->qname, DNS_T_TXT, uv_now(r->loop));
	if (t) {
		apply_txt(z, t);
	} else if (r->res) {
		r->pending++;
		z->qtxt = dns_query(r->res->dns, z->qname, DNS_T_TXT, got_txt, z);
	}
}

static void
got_a(void *arg, const dns_result_t *dr)
{
	struct zone *z = arg;
	dnsbl_req_t *r = z->req;
	z->qa = NULL;
	if (dr->status == DNS_OK || dr->status == DNS_NXDOMAIN || dr->status == DNS_NODATA) {
		centry_t *e = cache_add(z->qname, DNS_T_A, dr->status, dr->ttl, uv_now(r->loop));
		for (size_t i = 0; i < dr->n && e->na < MAX_A; i++) {
			const struct sockaddr_in *sin = (const void *)&dr->rr[i].u.addr.sa;
			if (sin->sin_family == AF_INET)
				memcpy(e->a[e->na++], &sin->sin_addr, 4);
		}
		apply_a(z, e);
		if (dr->ttl == 0)
			centry_free(e);
	} else {
		/* fail open: the list counts 0 */
		log_warn("dnsbl session=%s client=%s zone=%s lookup failed (%s): counts 0", r->sid, r->ip,
		    z->site.zone, dr->why);
		fstats_verdict("dnsbl", "lookup_failed");
	}
	done_one(r);
}

static void
timer_fired(uv_timer_t *t)
{
	done_one(t->data);
}

dnsbl_req_t *
dnsbl_check(uv_loop_t *loop, const config_t *c, const struct sockaddr *sa, const char *sid,
    dnsbl_cb cb, void *arg)
{
	dnsbl_req_t *r = xcalloc(1, sizeof *r);
	r->loop = loop;
	r->cb = cb;
	r->arg = arg;
	r->threshold = (int)c->dnsbl_threshold;
	snprintf(r->sid, sizeof r->sid, "%s", sid);
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, r->ip,
		    sizeof r->ip);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, r->ip,
		    sizeof r->ip);
	/* the pending count starts at 1 for the zero timer: the result is never
	 * delivered inside this call, whatever the cache holds */
	r->pending = 1;
	r->timer = xmalloc(sizeof *r->timer);
	uv_timer_init(loop, r->timer);
	r->timer->data = r;
	uint64_t now = uv_now(loop);
	r->res = resolver_get(loop, c);
	for (size_t i = 0; i < c->ndnsbl_sites && r->nz < MAX_SITES; i++) {
		struct zone *z = &r->z[r->nz];
		buf_t err = BUF_INIT;
		int bad = dnsbl_site_parse(c->dnsbl_sites[i], &z->site, &err);
		buf_free(&err);
		if (bad < 0 || dnsbl_qname(sa, z->site.zone, z->qname, sizeof z->qname) < 0)
			continue; /* check-config refuses it; an AF_UNIX peer has no address */
		z->req = r;
		r->nz++;
		const centry_t *e = cache_find(z->qname, DNS_T_A, now);
		if (e) {
			apply_a(z, e);
			continue;
		}
		if (!r->res)
			continue; /* no resolver (logged): fail open */
		r->pending++;
		z->qa = dns_query(r->res->dns, z->qname, DNS_T_A, got_a, z);
	}
	uv_timer_start(r->timer, timer_fired, 0, 0);
	return r;
}
