/*
 * tlsrpt.c - TLS-RPT counts, report document and record (contract in
 * tlsrpt.h).
 *
 * The store is one jansson tree, saved as it is:
 *   {"version": 1, "last-take": T,
 *    "days": {"2026-12-07": {"example.com": {"begin": T,
 *      "policies": {KEY: {"policy": {section 4.4.2's object},
 *                         "ok": N, "fail": N,
 *                         "details": {KEY: {section 4.4.4's object}}}}}}}}
 * where a policy's KEY is its type, strings and MX names joined, and a
 * detail's KEY its fields joined: two sessions with the same outcome meet
 * in one hash lookup and only a count grows. A domain's period begins at
 * its day's start, or at the last take that went through "now" when that
 * was later the same day (so periods never overlap).
 */
#include "deliver/tlsrpt.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define TLSRPT_MAX_FILE (64u * 1024u * 1024u)

static json_t *store;   /* NULL until the first count or load */
static bool enabled;
static bool dirty;
/* the day the caps last dropped something, per cap: logged once a day */
static char dropped_day[4][11];
static size_t nrows;    /* policies and detail rows in the store (TLSRPT_MAX_ROWS) */

/* section 4.3's result types */
static const char *const results[] = {
	"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
	"certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
	"dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
};

bool
tlsrpt_result_valid(const char *result)
{
	for (size_t i = 0; result && i < sizeof results / sizeof results[0]; i++)
		if (strcmp(result, results[i]) == 0)
			return true;
	return false;
}

void
tlsrpt_set_enabled(bool on)
{
	enabled = on;
}

static json_t *
store_get(void)
{
	if (!store) {
		store = json_object();
		json_object_set_new(store, "version", json_integer(1));
		json_object_set_new(store, "last-take", json_integer(0));
		json_object_set_new(store, "days", json_object());
	}
	return store;
}

void
tlsrpt_reset(void)
{
	json_decref(store);
	store = NULL;
	dirty = false;
	nrows = 0;
	memset(dropped_day, 0, sizeof dropped_day);
}

/* policies and detail rows of the days in store */
static size_t
count_rows(void)
{
	size_t n = 0;
	json_t *days = json_object_get(store, "days");
	for (void *a = json_object_iter(days); a; a = json_object_iter_next(days, a)) {
		json_t *dd = json_object_iter_value(a);
		for (void *b = json_object_iter(dd); b; b = json_object_iter_next(dd, b)) {
			json_t *pols = json_object_get(json_object_iter_value(b), "policies");
			for (void *c = json_object_iter(pols); c; c = json_object_iter_next(pols, c))
				n += 1 + json_object_size(json_object_get(json_object_iter_value(c),
				    "details"));
		}
	}
	return n;
}

/* "YYYY-MM-DD" of t (UTC) into day[11] */
static void
day_of(time_t t, char *day)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	if (strftime(day, 11, "%Y-%m-%d", &tm) != 10)
		snprintf(day, 11, "1970-01-01");
}

/* the start of day "YYYY-MM-DD" (UTC), or -1 */
static time_t
day_start(const char *day)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	if (strlen(day) != 10 || day[4] != '-' || day[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)day[i]))
			return -1;
	tm.tm_year = (int)strtol(day, NULL, 10) - 1900;
	tm.tm_mon = (int)strtol(day + 5, NULL, 10) - 1;
	tm.tm_mday = (int)strtol(day + 8, NULL, 10);
	if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31)
		return -1;
	return timegm(&tm);
}

void
tlsrpt_datetime(time_t t, char *out, size_t cap)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* s as printable ASCII (others become '?'), at most TLSRPT_MAX_TEXT octets */
static void
clean(const char *s, char *out)
{
	size_t n = 0;
	for (; s && *s && n < TLSRPT_MAX_TEXT; s++) {
		unsigned char c = (unsigned char)*s;
		out[n++] = (c < 0x20 || c > 0x7e) ? '?' : (char)c;
	}
	out[n] = '\0';
}

static void
drop_log(int which, const char *day, const char *what, const char *domain)
{
	if (strcmp(dropped_day[which], day) == 0)
		return;
	snprintf(dropped_day[which], sizeof dropped_day[which], "%s", day);
	log_warn("tls-rpt: %s: more %s on %s than the cap; the extra ones are dropped (logged once "
	    "a day)", domain, what, day);
}

static json_t *
str_array(const char *const *v, size_t n, bool lower)
{
	json_t *a = json_array();
	char t[TLSRPT_MAX_TEXT + 1];
	for (size_t i = 0; i < n && i < 64; i++) {
		clean(v[i], t);
		if (lower)
			for (char *p = t; *p; p++)
				*p = (char)tolower((unsigned char)*p);
		json_array_append_new(a, json_string(t));
	}
	return a;
}

static const char *
type_str(enum tlsrpt_policy t)
{
	return t == TLSRPT_STS ? "sts" : t == TLSRPT_TLSA ? "tlsa" : "no-policy-found";
}

/* section 4.4.2's policy object */
static json_t *
policy_obj(const tlsrpt_session_t *s, const char *domain)
{
	json_t *p = json_object();
	json_object_set_new(p, "policy-type", json_string(type_str(s->type)));
	if (s->type != TLSRPT_NO_POLICY) {
		json_object_set_new(p, "policy-string", str_array(s->strings, s->nstrings, false));
		json_object_set_new(p, "mx-host", str_array(s->mx, s->nmx, true));
	}
	json_object_set_new(p, "policy-domain", json_string(domain));
	return p;
}

static void
key_add(buf_t *k, const char *s)
{
	char t[TLSRPT_MAX_TEXT + 1];
	clean(s, t);
	buf_puts(k, t);
	buf_putc(k, '\x1f');
}

static void
inc(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);
	json_integer_set(v, json_integer_value(v) + 1);
}

void
tlsrpt_count(const tlsrpt_session_t *s, time_t now)
{
	if (!enabled || !s->domain || !s->domain[0])
		return;
	const char *result = s->result;
	if (result && !tlsrpt_result_valid(result))
		result = "validation-failure";
	char domain[TLSRPT_MAX_TEXT + 1], day[11];
	clean(s->domain, domain);
	for (char *p = domain; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	day_of(now, day);
	json_t *days = json_object_get(store_get(), "days");
	json_t *dd = json_object_get(days, day);
	if (!dd) {
		dd = json_object();
		json_object_set_new(days, day, dd);
	}
	json_t *de = json_object_get(dd, domain);
	if (!de) {
		if (json_object_size(dd) >= TLSRPT_MAX_DOMAINS) {
			drop_log(0, day, "policy domains", domain);
			return;
		}
		time_t begin = day_start(day);
		json_int_t last = json_integer_value(json_object_get(store, "last-take"));
		if (last > (json_int_t)begin && last <= (json_int_t)now)
			begin = (time_t)last;
		de = json_object();
		json_object_set_new(de, "begin", json_integer(begin));
		json_object_set_new(de, "policies", json_object());
		json_object_set_new(dd, domain, de);
	}
	buf_t key = BUF_INIT;
	buf_puts(&key, type_str(s->type));
	buf_putc(&key, '\x1e');
	for (size_t i = 0; s->type != TLSRPT_NO_POLICY && i < s->nstrings && i < 64; i++)
		key_add(&key, s->strings[i]);
	buf_putc(&key, '\x1e');
	for (size_t i = 0; s->type != TLSRPT_NO_POLICY && i < s->nmx && i < 64; i++)
		key_add(&key, s->mx[i]);
	json_t *pols = json_object_get(de, "policies");
	json_t *pe = json_object_get(pols, buf_cstr(&key));
	if (!pe) {
		if (json_object_size(pols) >= TLSRPT_MAX_POLICIES || nrows >= TLSRPT_MAX_ROWS) {
			drop_log(json_object_size(pols) >= TLSRPT_MAX_POLICIES ? 1 : 3, day,
			    json_object_size(pols) >= TLSRPT_MAX_POLICIES ? "policies" : "rows in all",
			    domain);
			buf_free(&key);
			return;
		}
		pe = json_object();
		json_object_set_new(pe, "policy", policy_obj(s, domain));
		json_object_set_new(pe, "ok", json_integer(0));
		json_object_set_new(pe, "fail", json_integer(0));
		json_object_set_new(pe, "details", json_object());
		json_object_set_new(pols, buf_cstr(&key), pe);
		nrows++;
	}
	dirty = true;
	if (!result) {
		inc(pe, "ok");
		buf_free(&key);
		return;
	}
	inc(pe, "fail");
	buf_reset(&key);
	key_add(&key, result);
	key_add(&key, s->sending_ip);
	key_add(&key, s->mx_host);
	key_add(&key, s->receiving_ip);
	key_add(&key, s->reason);
	json_t *details = json_object_get(pe, "details");
	json_t *row = json_object_get(details, buf_cstr(&key));
	if (row) {
		inc(row, "failed-session-count");
	} else if (json_object_size(details) >= TLSRPT_MAX_DETAILS || nrows >= TLSRPT_MAX_ROWS) {
		drop_log(json_object_size(details) >= TLSRPT_MAX_DETAILS ? 2 : 3, day,
		    json_object_size(details) >= TLSRPT_MAX_DETAILS ? "failure details" : "rows in all",
		    domain);
	} else {
		nrows++;
		/* section 4.4.4 */
		char t[TLSRPT_MAX_TEXT + 1];
		row = json_object();
		json_object_set_new(row, "result-type", json_string(result));
		if (s->sending_ip && s->sending_ip[0]) {
			clean(s->sending_ip, t);
			json_object_set_new(row, "sending-mta-ip", json_string(t));
		}
		if (s->mx_host && s->mx_host[0]) {
			clean(s->mx_host, t);
			json_object_set_new(row, "receiving-mx-hostname", json_string(t));
		}
		if (s->receiving_ip && s->receiving_ip[0]) {
			clean(s->receiving_ip, t);
			json_object_set_new(row, "receiving-ip", json_string(t));
		}
		json_object_set_new(row, "failed-session-count", json_integer(1));
		if (s->reason && s->reason[0]) {
			clean(s->reason, t);
			json_object_set_new(row, "failure-reason-code", json_string(t));
		}
		json_object_set_new(details, buf_cstr(&key), row);
	}
	buf_free(&key);
}

void
tlsrpt_count_attempt(const tlsrpt_attempt_t *a, time_t now)
{
	if (!enabled)
		return;
	tlsrpt_session_t s;
	memset(&s, 0, sizeof s);
	s.domain = a->domain;
	s.result = a->result;
	s.reason = a->reason;
	s.mx_host = a->mx_host;
	s.sending_ip = a->sending_ip;
	char rip[INET6_ADDRSTRLEN] = "";
	if (a->receiving && a->receiving->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)a->receiving)->sin_addr, rip, sizeof rip);
	else if (a->receiving && a->receiving->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a->receiving)->sin6_addr, rip,
		    sizeof rip);
	s.receiving_ip = rip;
	/* section 4.4.2: the policy as strings */
	char *strings[64];
	size_t n = 0;
	const char *mxs[1] = {a->mx_host ? a->mx_host : ""};
	if (a->dane) {
		s.type = TLSRPT_TLSA;
		for (size_t i = 0; i < a->ntlsa && n < 64; i++) {
			buf_t b = BUF_INIT;
			buf_printf(&b, "%u %u %u ", a->tlsa[i].usage, a->tlsa[i].selector,
			    a->tlsa[i].mtype);
			for (size_t k = 0; k < a->tlsa[i].len && k < 64; k++)
				buf_printf(&b, "%02X", a->tlsa[i].data[k]);
			strings[n++] = buf_steal(&b);
		}
		s.mx = mxs;
		s.nmx = 1;
	} else if (a->sts_fetch && !a->sts) {
		s.type = TLSRPT_STS; /* section 4.3.2.2.2: no policy to quote */
	} else if (a->sts) {
		/* RFC 8461 section 3.2's lines, in its order */
		s.type = TLSRPT_STS;
		strings[n++] = xstrdup("version: STSv1");
		strings[n++] = xasprintf("mode: %s", a->sts->mode == MTASTS_ENFORCE ? "enforce"
		    : a->sts->mode == MTASTS_TESTING ? "testing" : "none");
		for (size_t i = 0; i < a->sts->nmx && n < 63; i++)
			strings[n++] = xasprintf("mx: %s", a->sts->mx[i]);
		strings[n++] = xasprintf("max_age: %u", (unsigned)a->sts->max_age);
		s.mx = (const char *const *)a->sts->mx;
		s.nmx = a->sts->nmx;
	}
	s.strings = (const char *const *)strings;
	s.nstrings = n;
	tlsrpt_count(&s, now);
	for (size_t i = 0; i < n; i++)
		xfree(strings[i]);
}

char *
tlsrpt_save(size_t *len)
{
	if (!dirty || !store)
		return NULL;
	char *s = json_dumps(store, JSON_COMPACT);
	if (!s)
		return NULL;
	dirty = false;
	*len = strlen(s);
	/* json_dumps allocates with malloc: hand over an xalloc copy */
	char *out = xmalloc(*len + 1);
	memcpy(out, s, *len + 1);
	free(s);
	return out;
}

/* ---- loading ---- */

static bool
is_count(const json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) >= 0;
}

static bool
detail_ok(const json_t *d)
{
	return json_is_object(d) && json_is_string(json_object_get(d, "result-type")) &&
	    tlsrpt_result_valid(json_string_value(json_object_get(d, "result-type"))) &&
	    is_count(json_object_get(d, "failed-session-count"));
}

static bool
policy_ok(const json_t *p)
{
	const json_t *pol = json_object_get(p, "policy");
	const json_t *details = json_object_get(p, "details");
	if (!json_is_object(p) || !json_is_object(pol) ||
	    !json_is_string(json_object_get(pol, "policy-type")) ||
	    !json_is_string(json_object_get(pol, "policy-domain")) ||
	    !is_count(json_object_get(p, "ok")) || !is_count(json_object_get(p, "fail")) ||
	    !json_is_object(details) || json_object_size(details) > TLSRPT_MAX_DETAILS)
		return false;
	for (void *it = json_object_iter((json_t *)details); it;
	    it = json_object_iter_next((json_t *)details, it))
		if (!detail_ok(json_object_iter_value(it)))
			return false;
	return true;
}

static bool
domain_ok(const json_t *de)
{
	const json_t *pols = json_object_get(de, "policies");
	if (!json_is_object(de) || !is_count(json_object_get(de, "begin")) ||
	    !json_is_object(pols) || json_object_size(pols) > TLSRPT_MAX_POLICIES)
		return false;
	for (void *it = json_object_iter((json_t *)pols); it;
	    it = json_object_iter_next((json_t *)pols, it))
		if (!policy_ok(json_object_iter_value(it)))
			return false;
	return true;
}

int
tlsrpt_load(const char *path, buf_t *err)
{
	char *data = NULL;
	size_t len = 0;
	if (read_file(path, &data, &len, TLSRPT_MAX_FILE) < 0) {
		if (errno == ENOENT)
			return 0;
		buf_printf(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	json_error_t je;
	json_t *root = json_loadb(data, len, 0, &je);
	xfree(data);
	json_t *days = json_object_get(root, "days");
	if (!json_is_object(root) || !json_is_object(days)) {
		buf_printf(err, "%s: not a TLS-RPT counts file%s%s", path, root ? "" : ": ",
		    root ? "" : je.text);
		json_decref(root);
		return -1;
	}
	/* keep what is well-formed, drop the rest (a hand-edited or damaged file) */
	size_t dropped = 0;
	for (void *it = json_object_iter(days), *next; it; it = next) {
		next = json_object_iter_next(days, it);
		const char *day = json_object_iter_key(it);
		json_t *dd = json_object_iter_value(it);
		if (day_start(day) < 0 || !json_is_object(dd) ||
		    json_object_size(dd) > TLSRPT_MAX_DOMAINS) {
			json_object_del(days, day);
			dropped++;
			continue;
		}
		for (void *it2 = json_object_iter(dd), *next2; it2; it2 = next2) {
			next2 = json_object_iter_next(dd, it2);
			if (!domain_ok(json_object_iter_value(it2))) {
				json_object_del(dd, json_object_iter_key(it2));
				dropped++;
			}
		}
	}
	if (!is_count(json_object_get(root, "last-take")))
		json_object_set_new(root, "last-take", json_integer(0));
	if (dropped)
		log_warn("tls-rpt: %s: %zu malformed entries dropped", path, dropped);
	json_decref(store);
	store = root;
	dirty = false;
	nrows = count_rows();
	return 0;
}

/* ---- reporting ---- */

json_t *
tlsrpt_take(time_t now, bool through_now)
{
	if (!store)
		return NULL;
	char today[11];
	day_of(now, today);
	json_t *days = json_object_get(store, "days");
	json_t *out = json_array();
	for (void *it = json_object_iter(days), *next; it; it = next) {
		next = json_object_iter_next(days, it);
		const char *day = json_object_iter_key(it);
		json_t *dd = json_object_iter_value(it);
		int c = strcmp(day, today);
		if (c > 0 || (c == 0 && !through_now))
			continue;
		time_t start = day_start(day);
		/* a whole day ends at 23:59:59 (RFC 8460 Appendix B's example) */
		time_t end = c < 0 ? start + 86399 : now;
		for (void *it2 = json_object_iter(dd); it2; it2 = json_object_iter_next(dd, it2)) {
			json_t *de = json_object_iter_value(it2);
			json_t *e = json_object();
			json_object_set_new(e, "domain", json_string(json_object_iter_key(it2)));
			json_object_set(e, "begin", json_object_get(de, "begin"));
			json_object_set_new(e, "end", json_integer(end));
			json_object_set(e, "policies", json_object_get(de, "policies"));
			json_array_append_new(out, e);
		}
		json_object_del(days, day);
		dirty = true;
	}
	if (through_now) {
		json_object_set_new(store, "last-take", json_integer(now));
		dirty = true;
	}
	nrows = count_rows();
	if (json_array_size(out) == 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

void
tlsrpt_report_json(const tlsrpt_meta_t *m, const json_t *entry, buf_t *out)
{
	char b[32], e[32];
	tlsrpt_datetime((time_t)json_integer_value(json_object_get(entry, "begin")), b, sizeof b);
	tlsrpt_datetime((time_t)json_integer_value(json_object_get(entry, "end")), e, sizeof e);
	json_t *r = json_object();
	json_object_set_new(r, "organization-name", json_string(m->org));
	json_object_set_new(r, "date-range",
	    json_pack("{s:s, s:s}", "start-datetime", b, "end-datetime", e));
	json_object_set_new(r, "contact-info", json_string(m->contact));
	json_object_set_new(r, "report-id", json_string(m->report_id));
	json_t *pols = json_array();
	json_t *po = json_object_get(entry, "policies");
	for (void *it = json_object_iter(po); it; it = json_object_iter_next(po, it)) {
		json_t *pe = json_object_iter_value(it);
		json_t *p = json_object();
		json_object_set(p, "policy", json_object_get(pe, "policy"));
		json_object_set_new(p, "summary",
		    json_pack("{s:I, s:I}", "total-successful-session-count",
		        json_integer_value(json_object_get(pe, "ok")), "total-failure-session-count",
		        json_integer_value(json_object_get(pe, "fail"))));
		json_t *fd = json_array();
		json_t *det = json_object_get(pe, "details");
		for (void *d = json_object_iter(det); d; d = json_object_iter_next(det, d))
			json_array_append(fd, json_object_iter_value(d));
		if (json_array_size(fd) > 0)
			json_object_set_new(p, "failure-details", fd);
		else
			json_decref(fd);
		json_array_append_new(pols, p);
	}
	json_object_set_new(r, "policies", pols);
	char *txt = json_dumps(r, JSON_COMPACT);
	if (txt)
		buf_puts(out, txt);
	free(txt);
	json_decref(r);
}

/* ---- the _smtp._tls record (section 3) ---- */

static bool
wsp(char c)
{
	return c == ' ' || c == '\t';
}

void
tlsrpt_record_free(tlsrpt_record_t *r)
{
	for (size_t i = 0; i < r->nrua; i++)
		xfree(r->rua[i]);
	r->nrua = 0;
}

/* the rua value p[0..n): URIs separated by *WSP "," *WSP */
static int
parse_rua(const char *p, size_t n, tlsrpt_record_t *r, buf_t *err)
{
	size_t i = 0;
	while (i <= n) {
		size_t s = i;
		while (i < n && p[i] != ',')
			i++;
		size_t a = s, b = i;
		while (a < b && wsp(p[a]))
			a++;
		while (b > a && wsp(p[b - 1]))
			b--;
		if (a == b) {
			buf_puts(err, "an empty URI in rua");
			return -1;
		}
		for (size_t k = a; k < b; k++)
			if ((unsigned char)p[k] < 0x21 || (unsigned char)p[k] > 0x7e) {
				buf_puts(err, "a space or control character inside a rua URI");
				return -1;
			}
		bool mailto = b - a > 7 && strncasecmp(p + a, "mailto:", 7) == 0;
		bool https = b - a > 8 && strncasecmp(p + a, "https://", 8) == 0;
		/* other schemes are not defined for TLS-RPT: ignored */
		if ((mailto || https) && r->nrua < TLSRPT_MAX_RUA)
			r->rua[r->nrua++] = xstrndup(p + a, b - a);
		i++; /* past the comma (or the end) */
	}
	return 0;
}

int
tlsrpt_record_parse(const char *txt, size_t len, tlsrpt_record_t *r, buf_t *err)
{
	memset(r, 0, sizeof *r);
	static const char v[] = "v=TLSRPTv1";
	size_t vl = sizeof v - 1;
	if (len < vl || memcmp(txt, v, vl) != 0)
		return 0;
	size_t i = vl;
	if (i < len && !wsp(txt[i]) && txt[i] != ';')
		return 0; /* another version ("v=TLSRPTv10") */
	bool have_rua = false;
	for (;;) {
		while (i < len && wsp(txt[i]))
			i++;
		if (i == len)
			break;
		if (txt[i] != ';') {
			buf_printf(err, "\";\" expected at offset %zu", i);
			goto bad;
		}
		i++;
		while (i < len && wsp(txt[i]))
			i++;
		if (i == len)
			break; /* a trailing field-delim */
		/* tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
		size_t ns = i;
		if (!isalnum((unsigned char)txt[i])) {
			buf_printf(err, "a field name expected at offset %zu", i);
			goto bad;
		}
		while (i < len && i - ns < 32 &&
		    (isalnum((unsigned char)txt[i]) || txt[i] == '_' || txt[i] == '-' || txt[i] == '.'))
			i++;
		if (i >= len || txt[i] != '=') {
			buf_printf(err, "\"=\" expected at offset %zu", i);
			goto bad;
		}
		bool is_rua = i - ns == 3 && memcmp(txt + ns, "rua", 3) == 0;
		i++;
		size_t vs = i;
		if (is_rua) {
			while (i < len && txt[i] != ';')
				i++;
			size_t ve = i;
			while (ve > vs && wsp(txt[ve - 1]))
				ve--;
			if (!have_rua && parse_rua(txt + vs, ve - vs, r, err) < 0)
				goto bad;
			have_rua = true; /* a second rua is ignored */
			continue;
		}
		/* tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
		while (i < len && (unsigned char)txt[i] >= 0x21 && (unsigned char)txt[i] <= 0x7e &&
		    txt[i] != ';' && txt[i] != '=')
			i++;
		if (i == vs) {
			buf_printf(err, "an empty value at offset %zu", i);
			goto bad;
		}
	}
	if (!have_rua) {
		buf_puts(err, "no rua field");
		goto bad;
	}
	if (r->nrua == 0) {
		buf_puts(err, "no mailto: or https: URI in rua");
		goto bad;
	}
	return 1;
bad:
	tlsrpt_record_free(r);
	return -1;
}
