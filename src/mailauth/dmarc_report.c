/*
 * dmarc_report.c - MAILAUTH: DMARC aggregate reports (contract in
 * dmarc_report.h).
 *
 * Rows are kept as the XML they will be written as (all but the source IP
 * and the count), so that two messages with the same outcome meet in one
 * hash bucket and only the count grows. Every string from the message or
 * the DNS is XML-escaped before it is kept; the XML follows RFC 7489
 * Appendix C (version, report_metadata, policy_published with sp and fo,
 * identifiers with envelope_from, spf with scope, source_ip in the form
 * of its IPAddress pattern); tests/integration/test_mailauth.py validates
 * each report against the schema as published.
 * Must not: block; keep more than the bounds in dmarc_report.h.
 */
#include "mailauth/dmarc_report.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/report_mail.h"
#include "lib/gzip.h"
#include "lib/xalloc.h"

static void
xml_esc(buf_t *b, const char *s)
{
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '<': buf_puts(b, "&lt;"); break;
		case '>': buf_puts(b, "&gt;"); break;
		case '&': buf_puts(b, "&amp;"); break;
		case '"': buf_puts(b, "&quot;"); break;
		case '\'': buf_puts(b, "&apos;"); break;
		default:
			/* XML 1.0 allows no C0 controls but tab, LF, CR */
			buf_putc(b, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
		}
	}
}

static void
elem(buf_t *b, const char *name, const char *v)
{
	buf_printf(b, "<%s>", name);
	xml_esc(b, v);
	buf_printf(b, "</%s>", name);
}

static int
hexv(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static uint32_t
fnv(const char *a, const char *b)
{
	uint32_t h = 2166136261u;
	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 16777619u;
	h = (h ^ 0xff) * 16777619u;
	for (; *b; b++)
		h = (h ^ (unsigned char)*b) * 16777619u;
	return h;
}

void
dmarc_report_init(dmarc_report_store_t *s, time_t now)
{
	memset(s, 0, sizeof *s);
	s->begin = now;
}

static void
domain_free(dmarc_report_domain_t *d)
{
	xfree(d->domain);
	xfree(d->published);
	for (size_t i = 0; i < d->nrua; i++)
		xfree(d->rua[i]);
	for (size_t i = 0; i < d->nrows; i++) {
		xfree(d->rows[i]->source_ip);
		xfree(d->rows[i]->tail);
		xfree(d->rows[i]);
	}
	xfree(d->rows);
	xfree(d);
}

void
dmarc_report_domains_free(dmarc_report_domain_t *d)
{
	while (d) {
		dmarc_report_domain_t *n = d->next;
		domain_free(d);
		d = n;
	}
}

void
dmarc_report_clear(dmarc_report_store_t *s)
{
	dmarc_report_domains_free(s->domains);
	s->domains = NULL;
	s->ndomains = 0;
}

static const char *
align(bool strict)
{
	return strict ? "s" : "r";
}

/* <policy_published> of the record found at domain */
static char *
published(const char *domain, const dmarc_record_t *r)
{
	buf_t b = BUF_INIT;
	buf_puts(&b, "<policy_published>");
	elem(&b, "domain", domain);
	elem(&b, "adkim", align(r->adkim_strict));
	elem(&b, "aspf", align(r->aspf_strict));
	elem(&b, "p", dmarc_policy_str(r->p));
	elem(&b, "sp", dmarc_policy_str(r->sp != DMARC_P_UNSET ? r->sp : r->p));
	buf_printf(&b, "<pct>%u</pct>", r->pct);
	elem(&b, "fo", r->fo);
	buf_puts(&b, "</policy_published>");
	return buf_steal(&b);
}

static char *
row_tail(const dmarc_report_in_t *in)
{
	buf_t b = BUF_INIT;
	buf_puts(&b, "<policy_evaluated>");
	elem(&b, "disposition", dmarc_policy_str(in->disposition));
	elem(&b, "dkim", in->dkim_aligned ? "pass" : "fail");
	elem(&b, "spf", in->spf_aligned ? "pass" : "fail");
	if (in->override_type) {
		buf_puts(&b, "<reason>");
		elem(&b, "type", in->override_type);
		if (in->override_comment)
			elem(&b, "comment", in->override_comment);
		buf_puts(&b, "</reason>");
	} else if (in->sampled_out)
		buf_puts(&b, "<reason><type>sampled_out</type></reason>");
	else if (in->not_enforced && !(in->dkim_aligned || in->spf_aligned) &&
	    in->rec->p != DMARC_P_NONE)
		buf_puts(&b, "<reason><type>local_policy</type><comment>policy not enforced here"
			     "</comment></reason>");
	buf_puts(&b, "</policy_evaluated></row><identifiers>");
	elem(&b, "envelope_from", in->envelope_from ? in->envelope_from : "");
	elem(&b, "header_from", in->header_from);
	buf_puts(&b, "</identifiers><auth_results>");
	for (size_t i = 0; i < in->ndkim && i < DMARC_REPORT_MAX_DKIM; i++) {
		buf_puts(&b, "<dkim>");
		elem(&b, "domain", in->dkim_domain[i]);
		if (in->dkim_selector[i] && in->dkim_selector[i][0])
			elem(&b, "selector", in->dkim_selector[i]);
		elem(&b, "result", in->dkim_result[i]);
		buf_puts(&b, "</dkim>");
	}
	/* "There will always be at least one SPF result" */
	buf_puts(&b, "<spf>");
	elem(&b, "domain", in->spf_domain ? in->spf_domain : in->envelope_from);
	elem(&b, "scope", in->spf_scope ? in->spf_scope : "mfrom");
	elem(&b, "result", in->spf_result ? in->spf_result : "none");
	buf_puts(&b, "</spf></auth_results>");
	return buf_steal(&b);
}

/* The source address as Appendix C's IPAddress type accepts it: dotted
 * IPv4 (an IPv4-mapped IPv6 address as its IPv4 address), IPv6 as all
 * eight groups (the schema's pattern has no "::" form). Else as given. */
static void
source_ip(const char *ip, char *out, size_t outlen)
{
	unsigned char a[16];
	if (inet_pton(AF_INET6, ip, a) == 1) {
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(a, mapped, 12) == 0)
			snprintf(out, outlen, "%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
		else
			snprintf(out, outlen, "%x:%x:%x:%x:%x:%x:%x:%x", a[0] << 8 | a[1],
			    a[2] << 8 | a[3], a[4] << 8 | a[5], a[6] << 8 | a[7], a[8] << 8 | a[9],
			    a[10] << 8 | a[11], a[12] << 8 | a[13], a[14] << 8 | a[15]);
		return;
	}
	snprintf(out, outlen, "%s", ip);
}

/* Count n messages of one outcome (tail: owned) in d's rows. */
static void
row_put(dmarc_report_domain_t *d, const char *ip, char *tail, uint64_t n)
{
	uint32_t h = fnv(ip, tail);
	for (dmarc_report_row_t *r = d->buckets[h & 255]; r; r = r->next_hash)
		if (r->hash == h && strcmp(r->source_ip, ip) == 0 && strcmp(r->tail, tail) == 0) {
			r->count += n;
			xfree(tail);
			return;
		}
	if (d->nrows >= DMARC_REPORT_MAX_ROWS) {
		d->dropped += n;
		xfree(tail);
		return;
	}
	if (d->nrows == d->caprows) {
		d->caprows = d->caprows ? d->caprows * 2 : 16;
		d->rows = xrealloc(d->rows, d->caprows * sizeof(dmarc_report_row_t *));
	}
	dmarc_report_row_t *r = xcalloc(1, sizeof *r);
	r->source_ip = xstrdup(ip);
	r->tail = tail;
	r->count = n;
	r->hash = h;
	r->next_hash = d->buckets[h & 255];
	d->buckets[h & 255] = r;
	d->rows[d->nrows++] = r;
}

void
dmarc_report_add(dmarc_report_store_t *s, const dmarc_report_in_t *in)
{
	if (!in->rec || !in->policy_domain || !in->header_from)
		return;
	bool mailto = false;
	for (size_t i = 0; i < in->rec->nrua; i++)
		if (strncasecmp(in->rec->rua[i], "mailto:", 7) == 0)
			mailto = true;
	if (!mailto)
		return; /* nobody asked for reports */
	dmarc_report_domain_t *d = s->domains;
	while (d && strcasecmp(d->domain, in->policy_domain) != 0)
		d = d->next;
	if (!d) {
		if (s->ndomains >= DMARC_REPORT_MAX_DOMAINS) {
			s->dropped++;
			return;
		}
		d = xcalloc(1, sizeof *d);
		d->domain = xstrdup(in->policy_domain);
		d->next = s->domains;
		s->domains = d;
		s->ndomains++;
	}
	/* the latest record's policy and addresses */
	xfree(d->published);
	d->published = published(in->policy_domain, in->rec);
	for (size_t i = 0; i < d->nrua; i++)
		xfree(d->rua[i]);
	d->nrua = 0;
	for (size_t i = 0; i < in->rec->nrua; i++)
		if (strncasecmp(in->rec->rua[i], "mailto:", 7) == 0)
			d->rua[d->nrua++] = xstrdup(in->rec->rua[i]);
	char *tail = row_tail(in);
	char ip[64];
	source_ip(in->source_ip ? in->source_ip : "", ip, sizeof ip);
	row_put(d, ip, tail, 1);
}

dmarc_report_domain_t *
dmarc_report_take(dmarc_report_store_t *s, time_t now, time_t *begin)
{
	dmarc_report_domain_t *d = s->domains;
	*begin = s->begin;
	s->domains = NULL;
	s->ndomains = 0;
	s->dropped = 0;
	s->begin = now;
	return d;
}

/* ---- the store as text (kept under the spool by daemon/reports.c) ---- */

/* a field: '%', TAB, CR, LF and other controls as %XX */
static void
put_field(buf_t *b, const char *v)
{
	for (; v && *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (c == '%' || c < 0x20 || c == 0x7f)
			buf_printf(b, "%%%02X", c);
		else
			buf_putc(b, (char)c);
	}
}

void
dmarc_report_save(const dmarc_report_store_t *s, buf_t *out)
{
	buf_printf(out, "tern-dmarc-report 1\nbegin %lld\ndropped %llu\n", (long long)s->begin,
	    (unsigned long long)s->dropped);
	for (const dmarc_report_domain_t *d = s->domains; d; d = d->next) {
		buf_puts(out, "domain ");
		put_field(out, d->domain);
		buf_printf(out, "\t%llu\t", (unsigned long long)d->dropped);
		put_field(out, d->published);
		buf_putc(out, '\n');
		for (size_t i = 0; i < d->nrua; i++) {
			buf_puts(out, "rua ");
			put_field(out, d->rua[i]);
			buf_putc(out, '\n');
		}
		for (size_t i = 0; i < d->nrows; i++) {
			buf_printf(out, "row %llu\t", (unsigned long long)d->rows[i]->count);
			put_field(out, d->rows[i]->source_ip);
			buf_putc(out, '\t');
			put_field(out, d->rows[i]->tail);
			buf_putc(out, '\n');
		}
	}
	buf_puts(out, "end\n");
}

/* field [p, e) decoded into a new string */
static char *
get_field(const char *p, const char *e)
{
	buf_t b = BUF_INIT;
	for (; p < e; p++) {
		if (*p == '%' && e - p >= 3 && hexv(p[1]) >= 0 && hexv(p[2]) >= 0) {
			buf_putc(&b, (char)(hexv(p[1]) * 16 + hexv(p[2])));
			p += 2;
		} else {
			buf_putc(&b, *p);
		}
	}
	return b.data ? buf_steal(&b) : xstrdup("");
}

static bool
get_u64(const char *p, const char *e, uint64_t *v)
{
	*v = 0;
	if (p == e)
		return false;
	for (; p < e; p++) {
		if (!isdigit((unsigned char)*p) || *v > UINT64_MAX / 10 - 1)
			return false;
		*v = *v * 10 + (uint64_t)(*p - '0');
	}
	return true;
}

int
dmarc_report_load(dmarc_report_store_t *s, const char *data, size_t len, buf_t *err)
{
	dmarc_report_store_t n;
	dmarc_report_init(&n, s->begin);
	dmarc_report_domain_t *d = NULL, **tailp = &n.domains;
	const char *p = data, *end = data + len;
	size_t lineno = 0;
	bool ended = false;
	while (p < end && !ended) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break; /* a line cut short: not a whole file */
		lineno++;
		const char *sp = memchr(p, ' ', (size_t)(nl - p));
		const char *f = sp ? sp + 1 : nl;
		size_t kw = (size_t)((sp ? sp : nl) - p);
		const char *t1 = memchr(f, '\t', (size_t)(nl - f));
		const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(nl - t1 - 1)) : NULL;
		uint64_t v;
		bool ok = true;
		if (lineno == 1) {
			ok = (size_t)(nl - p) == 19 && memcmp(p, "tern-dmarc-report 1", 19) == 0;
		} else if (kw == 5 && memcmp(p, "begin", 5) == 0) {
			ok = get_u64(f, nl, &v);
			n.begin = (time_t)v;
		} else if (kw == 7 && memcmp(p, "dropped", 7) == 0) {
			ok = get_u64(f, nl, &n.dropped);
		} else if (kw == 6 && memcmp(p, "domain", 6) == 0) {
			ok = t1 && t2 && get_u64(t1 + 1, t2, &v) && n.ndomains < DMARC_REPORT_MAX_DOMAINS;
			if (ok) {
				d = xcalloc(1, sizeof *d);
				d->domain = get_field(f, t1);
				d->dropped = v;
				d->published = get_field(t2 + 1, nl);
				*tailp = d;
				tailp = &d->next;
				n.ndomains++;
			}
		} else if (kw == 3 && memcmp(p, "rua", 3) == 0) {
			ok = d && d->nrua < DMARC_MAX_URIS;
			if (ok)
				d->rua[d->nrua++] = get_field(f, nl);
		} else if (kw == 3 && memcmp(p, "row", 3) == 0) {
			ok = d && t1 && t2 && get_u64(f, t1, &v);
			if (ok) {
				char *ip = get_field(t1 + 1, t2);
				row_put(d, ip, get_field(t2 + 1, nl), v);
				xfree(ip);
			}
		} else if (kw == 3 && memcmp(p, "end", 3) == 0) {
			ended = true;
		} else {
			ok = false;
		}
		if (!ok) {
			buf_printf(err, "line %zu: not understood", lineno);
			dmarc_report_clear(&n);
			return -1;
		}
		p = nl + 1;
	}
	if (!ended) {
		buf_puts(err, lineno ? "cut short (no \"end\" line)" : "empty");
		dmarc_report_clear(&n);
		return -1;
	}
	dmarc_report_clear(s);
	*s = n;
	return 0;
}

void
dmarc_report_xml(const dmarc_report_meta_t *m, const dmarc_report_domain_t *d, buf_t *out,
    buf_t *id)
{
	size_t id0 = id->len;
	buf_printf(id, "%lld.%s@%s", (long long)m->begin, d->domain, m->receiver);
	buf_puts(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n"
		      "<version>1.0</version>\n<report_metadata>");
	elem(out, "org_name", m->org_name);
	elem(out, "email", m->email);
	elem(out, "report_id", id->data + id0);
	buf_printf(out, "<date_range><begin>%lld</begin><end>%lld</end></date_range>",
	    (long long)m->begin, (long long)m->end);
	if (d->dropped)
		buf_printf(out, "<error>%llu messages not counted (too many distinct rows)</error>",
		    (unsigned long long)d->dropped);
	buf_puts(out, "</report_metadata>\n");
	buf_puts(out, d->published ? d->published : "");
	buf_puts(out, "\n");
	for (size_t i = 0; i < d->nrows; i++) {
		const dmarc_report_row_t *r = d->rows[i];
		buf_puts(out, "<record><row>");
		elem(out, "source_ip", r->source_ip);
		buf_printf(out, "<count>%llu</count>", (unsigned long long)r->count);
		buf_puts(out, r->tail);
		buf_puts(out, "</record>\n");
	}
	buf_puts(out, "</feedback>\n");
}

int
dmarc_report_mailto(const char *uri, buf_t *addr, uint64_t *limit)
{
	*limit = 0;
	if (strncasecmp(uri, "mailto:", 7) != 0)
		return -1;
	const char *p = uri + 7, *bang = strchr(p, '!');
	size_t n = bang ? (size_t)(bang - p) : strlen(p);
	size_t start = addr->len;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '%' && i + 2 < n && hexv(p[i + 1]) >= 0 && hexv(p[i + 2]) >= 0) {
			buf_putc(addr, (char)(hexv(p[i + 1]) * 16 + hexv(p[i + 2])));
			i += 2;
		} else if (p[i] == '?') {
			break; /* hfields: not used */
		} else {
			buf_putc(addr, p[i]);
		}
	}
	const char *a = addr->data ? addr->data + start : "";
	const char *at = strrchr(a, '@');
	bool ok = at && at != a && at[1];
	for (const char *q = a; ok && *q; q++)
		if ((unsigned char)*q <= 0x20 || *q == '<' || *q == '>' || *q == ',' || *q == 0x7f)
			ok = false;
	if (!ok) {
		addr->len = start;
		if (addr->data)
			addr->data[start] = '\0';
		return -1;
	}
	if (bang) {
		uint64_t v = 0;
		const char *q = bang + 1;
		while (isdigit((unsigned char)*q) && v < (1ull << 40))
			v = v * 10 + (uint64_t)(*q++ - '0');
		uint64_t mul = *q == 'k' ? 1024ull : *q == 'm' ? 1024ull * 1024
		    : *q == 'g' ? 1024ull * 1024 * 1024 : *q == 't' ? 1024ull * 1024 * 1024 * 1024 : 1;
		*limit = v * mul;
	}
	return 0;
}

int
dmarc_report_message(const dmarc_report_meta_t *m, const dmarc_report_domain_t *d,
    const char *rcpt, buf_t *out, buf_t *err)
{
	buf_t xml = BUF_INIT, id = BUF_INIT, gz = BUF_INIT;
	dmarc_report_xml(m, d, &xml, &id);
	if (gzip_compress(xml.data, xml.len, &gz) < 0) {
		buf_puts(err, "cannot compress the report");
		buf_free(&xml);
		buf_free(&id);
		buf_free(&gz);
		return -1;
	}
	/* section 7.2.1.1: filename = receiver "!" policy-domain "!" begin "!" end ".xml.gz" */
	char *fname = xasprintf("%s!%s!%lld!%lld.xml.gz", m->receiver, d->domain,
	    (long long)m->begin, (long long)m->end);
	char *subject = xasprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", d->domain,
	    m->org_name, buf_cstr(&id));
	char *text = xasprintf("This is a DMARC aggregate report (RFC 7489) for %s from %s,\r\n"
			       "covering %lld to %lld (seconds since the epoch, UTC).\r\n",
	    d->domain, m->org_name, (long long)m->begin, (long long)m->end);
	report_mail_t rm = {
		.tag = "dmarc",
		.from = m->email,
		.to = rcpt,
		.subject = subject,
		.id = buf_cstr(&id),
		.date = m->end,
		.multipart = "mixed",
		.text = text,
		.att_type = "application/gzip",
		.filename = fname,
		.att = gz.data,
		.att_len = gz.len,
	};
	report_mail_build(&rm, out);
	xfree(fname);
	xfree(subject);
	xfree(text);
	buf_free(&xml);
	buf_free(&id);
	buf_free(&gz);
	return 0;
}

/* ---- section 7.1 ---- */

struct dmarc_report_verify {
	dns_query_t *q;
	uv_timer_t *timer;
	dmarc_report_verify_cb cb;
	void *arg;
	bool ok;
};

static void
v_timer_closed(uv_handle_t *h)
{
	xfree(h);
}

static void
v_fire(uv_timer_t *t)
{
	dmarc_report_verify_t *v = t->data;
	uv_close((uv_handle_t *)t, v_timer_closed);
	v->timer = NULL;
	dmarc_report_verify_cb cb = v->cb;
	void *arg = v->arg;
	bool ok = v->ok;
	xfree(v);
	cb(arg, ok);
}

static void
v_dns(void *arg, const dns_result_t *r)
{
	dmarc_report_verify_t *v = arg;
	v->q = NULL;
	bool ok = false;
	buf_t t = BUF_INIT;
	for (size_t i = 0; r->status == DNS_OK && i < r->n && !ok; i++) {
		buf_reset(&t);
		if (dns_txt_join(r->rr[i].rdata, r->rr[i].rdlen, &t) == 0 &&
		    dmarc_is_record(t.data, t.len))
			ok = true;
	}
	buf_free(&t);
	dmarc_report_verify_cb cb = v->cb;
	void *cbarg = v->arg;
	xfree(v);
	cb(cbarg, ok);
}

dmarc_report_verify_t *
dmarc_report_verify(dns_t *dns, const psl_ctx_t *psl, const char *policy_domain,
    const char *rcpt_domain, dmarc_report_verify_cb cb, void *arg)
{
	dmarc_report_verify_t *v = xcalloc(1, sizeof *v);
	v->cb = cb;
	v->arg = arg;
	if (dmarc_aligned(psl, policy_domain, rcpt_domain, false)) {
		v->ok = true;
		v->timer = xmalloc(sizeof *v->timer);
		uv_timer_init(dns_loop(dns), v->timer);
		v->timer->data = v;
		uv_timer_start(v->timer, v_fire, 0, 0);
		return v;
	}
	char *name = xasprintf("%s._report._dmarc.%s", policy_domain, rcpt_domain);
	v->q = dns_query(dns, name, DNS_T_TXT, v_dns, v);
	xfree(name);
	return v;
}

void
dmarc_report_verify_cancel(dmarc_report_verify_t *v)
{
	if (!v)
		return;
	dns_cancel(v->q);
	if (v->timer) {
		uv_timer_stop(v->timer);
		uv_close((uv_handle_t *)v->timer, v_timer_closed);
	}
	xfree(v);
}
