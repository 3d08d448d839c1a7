/*
 * spf.c - MAILAUTH: check_host() of RFC 7208 on the event loop (see spf.h;
 * the syntax lives in spf_record.c).
 *
 * One request is a small machine that waits for one DNS answer at a time.
 * Its state: a stack of frames, one per record being evaluated (the
 * top <domain>, then one per include; a redirect replaces the frame's
 * record, so the exp= of the record left behind is forgotten, section
 * 6.2), the term each frame is at, and for mx/ptr the list of names still
 * to look up. Every answer re-enters step(), which runs terms until one
 * needs DNS or the result is known.
 *
 * Results (section 4, 5): a DNS error or timeout in a mechanism's lookup is
 * temperror, except in ptr and %{p} (section 5.5: the name is skipped); a
 * temperror or permerror anywhere ends the whole evaluation; include maps
 * pass to a match, fail/softfail/neutral to no match, none to permerror.
 * Limits (section 4.6.4): include, a, mx, ptr, exists, redirect and the
 * PTR lookup of a %{p} in them count towards 10 when they are evaluated; more than 2 void answers (NXDOMAIN
 * or no records) to a mechanism's own lookup is a permerror; more than 10
 * MX records is a permerror; only the first 10 PTR names are looked at.
 * The exp= lookup (fail only, top record only) counts towards neither.
 * The whole evaluation has a deadline (options.timeout_ms) -> temperror.
 *
 * The answer is delivered from a zero-delay timer, so the callback never
 * runs inside spf_check_host() and never inside a dns callback.
 * Must not: block; keep a pointer into a DNS answer after its callback.
 */
#include "mailauth/spf.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#include "lib/xalloc.h"

#define SPF_DEFAULT_TIMEOUT_MS 20000
#define SPF_MAX_TERMS 10   /* section 4.6.4: DNS-querying terms */
#define SPF_MAX_VOID 2
#define SPF_MAX_NAMES 10   /* MX and PTR names examined */

enum step {
	ST_NONE,
	ST_RECORD,  /* TXT of the frame's domain */
	ST_ADDR,    /* a: A or AAAA of the target */
	ST_MX,      /* mx: MX of the target */
	ST_MXADDR,  /* mx: A or AAAA of names[ni] */
	ST_PTR,     /* ptr: PTR of the client */
	ST_PTRADDR, /* ptr: A or AAAA of names[ni] (validation) */
	ST_EXISTS,  /* exists: A of the target */
	ST_P_PTR,   /* %{p}: PTR of the client */
	ST_P_ADDR,  /* %{p}: A or AAAA of names[ni] */
	ST_EXP,     /* exp=: TXT of the explanation's domain */
};

/* what to do once %{p} is known */
enum resume { RESUME_TERM, RESUME_EXP_DOMAIN, RESUME_EXP_TEXT };

typedef struct frame {
	struct frame *up;     /* the record that included this one; NULL: top */
	char *domain;         /* <domain> of this check_host() */
	spf_record_t rec;
	bool redirected;      /* reached by redirect=: no record is a permerror */
	size_t pc;            /* the term being evaluated */
	bool redirect_done;   /* the mechanisms ran out and redirect= was taken */
} frame_t;

struct spf_req {
	dns_t *dns;
	uv_loop_t *loop;
	spf_cb cb;
	void *arg;
	spf_macro_ctx_t m; /* strings below */
	char *sender, *local, *sender_domain, *helo, *receiver, *domain0;
	char *p;           /* %{p} once known (for p_domain) */
	char *p_domain;
	enum resume p_resume;
	frame_t *fr;       /* the innermost frame */
	unsigned terms, voids;
	enum step step;
	dns_query_t *q;
	char **names;      /* mx, ptr, %{p}: names still to look up */
	size_t nnames, ni;
	char *target;      /* the expanded target of the term in progress */
	char *exp_text;    /* the explanation record, before expansion */
	uv_timer_t budget, done;
	int open_handles;
	bool finished;
	enum spf_result result;
	buf_t reason, expl;
};

static void step(spf_req_t *r);

/* ---- the end ---- */

static void
names_clear(spf_req_t *r)
{
	for (size_t i = 0; i < r->nnames; i++)
		xfree(r->names[i]);
	xfree(r->names);
	r->names = NULL;
	r->nnames = r->ni = 0;
}

static void
frames_free(spf_req_t *r)
{
	while (r->fr) {
		frame_t *f = r->fr;
		r->fr = f->up;
		spf_record_free(&f->rec);
		xfree(f->domain);
		xfree(f);
	}
}

static void
on_closed(uv_handle_t *h)
{
	spf_req_t *r = h->data;
	if (--r->open_handles > 0)
		return;
	xfree(r->sender);
	xfree(r->local);
	xfree(r->sender_domain);
	xfree(r->helo);
	xfree(r->receiver);
	xfree(r->domain0);
	xfree(r->p);
	xfree(r->p_domain);
	xfree(r->target);
	xfree(r->exp_text);
	buf_free(&r->reason);
	buf_free(&r->expl);
	xfree(r);
}

static void
req_close(spf_req_t *r)
{
	if (r->q) {
		dns_cancel(r->q);
		r->q = NULL;
	}
	names_clear(r);
	frames_free(r);
	r->open_handles = 2;
	uv_close((uv_handle_t *)&r->budget, on_closed);
	uv_close((uv_handle_t *)&r->done, on_closed);
}

static void
on_done(uv_timer_t *t)
{
	spf_req_t *r = t->data;
	spf_answer_t a;
	a.result = r->result;
	a.domain = r->domain0;
	a.explanation = r->result == SPF_FAIL ? buf_cstr(&r->expl) : "";
	a.reason = buf_cstr(&r->reason);
	r->cb(r->arg, &a);
	req_close(r);
}

/* The result is known: stop everything, deliver from the loop. */
static void
finish(spf_req_t *r, enum spf_result res, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
finish(spf_req_t *r, enum spf_result res, const char *fmt, ...)
{
	if (r->finished)
		return;
	r->finished = true;
	r->result = res;
	buf_reset(&r->reason);
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&r->reason, fmt, ap);
	va_end(ap);
	if (r->q) {
		dns_cancel(r->q);
		r->q = NULL;
	}
	r->step = ST_NONE;
	uv_timer_stop(&r->budget);
	uv_timer_start(&r->done, on_done, 0, 0);
}

static void
on_budget(uv_timer_t *t)
{
	spf_req_t *r = t->data;
	finish(r, SPF_TEMPERROR, "SPF evaluation took longer than its time budget");
}

/* ---- DNS helpers ---- */

static void on_dns(void *arg, const dns_result_t *res);

static void
query(spf_req_t *r, enum step st, const char *name, int rrtype)
{
	r->step = st;
	r->q = dns_query(r->dns, name, rrtype, on_dns, r);
}

/* query an expanded name (section 4.8 trimming and escapes) */
static void
query_expanded(spf_req_t *r, enum step st, const char *name, int rrtype)
{
	buf_t qn = BUF_INIT;
	spf_query_name(name, &qn);
	query(r, st, buf_cstr(&qn), rrtype);
	buf_free(&qn);
}

static int
addr_type(const spf_req_t *r)
{
	return r->m.ip.family == AF_INET ? DNS_T_A : DNS_T_AAAA;
}

/* the reverse name of the client (section 5.5) */
static void
reverse_name(const spf_ip_t *ip, buf_t *out)
{
	if (ip->family == AF_INET) {
		buf_printf(out, "%u.%u.%u.%u.in-addr.arpa", ip->addr[3], ip->addr[2], ip->addr[1],
		    ip->addr[0]);
		return;
	}
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--)
		buf_printf(out, "%c.%c.", hex[ip->addr[i] & 15], hex[ip->addr[i] >> 4]);
	buf_puts(out, "ip6.arpa");
}

/* A void answer (section 4.6.4): counted; true when over the limit (the
 * request is then finished). */
static bool
void_lookup(spf_req_t *r, const char *name)
{
	if (++r->voids > SPF_MAX_VOID) {
		finish(r, SPF_PERMERROR, "more than %d void DNS lookups (section 4.6.4), last %s",
		    SPF_MAX_VOID, name);
		return true;
	}
	return false;
}

static bool
dns_failed(const dns_result_t *res)
{
	return res->status == DNS_TEMPFAIL || res->status == DNS_BOGUS;
}

static bool
any_addr_matches(const spf_req_t *r, const dns_result_t *res, int cidr4, int cidr6)
{
	for (size_t i = 0; i < res->n; i++) {
		spf_ip_t a;
		if (spf_ip_from_sockaddr((const struct sockaddr *)&res->rr[i].u.addr.sa, &a) < 0)
			continue;
		unsigned bits = a.family == AF_INET ? (cidr4 < 0 ? 32u : (unsigned)cidr4)
		    : (cidr6 < 0 ? 128u : (unsigned)cidr6);
		if (spf_cidr_match(&r->m.ip, &a, bits))
			return true;
	}
	return false;
}

/* name equals target or ends in "." target, without case (section 5.5) */
static bool
name_within(const char *name, const char *target)
{
	size_t n = strlen(name), t = strlen(target);
	if (n > 0 && name[n - 1] == '.')
		n--;
	if (t > 0 && target[t - 1] == '.')
		t--;
	if (t == 0 || n < t)
		return false;
	if (strncasecmp(name + n - t, target, t) != 0)
		return false;
	return n == t || name[n - t - 1] == '.';
}

/* ---- frames ---- */

static frame_t *
frame_push(spf_req_t *r, const char *domain, bool redirected)
{
	frame_t *f = xcalloc(1, sizeof(*f));
	f->up = r->fr;
	f->domain = xstrdup(domain);
	f->redirected = redirected;
	r->fr = f;
	r->m.domain = f->domain;
	return f;
}

/* Look up the record of the innermost frame (section 4.4). A malformed
 * <domain> is "none" (section 4.3), hence permerror below the top. */
static void
fetch_record(spf_req_t *r)
{
	frame_t *f = r->fr;
	if (!spf_domain_valid(f->domain)) {
		if (f->up == NULL && !f->redirected)
			finish(r, SPF_NONE, "malformed domain \"%s\" (section 4.3)", f->domain);
		else
			finish(r, SPF_PERMERROR, "malformed domain \"%s\" in %s", f->domain,
			    f->redirected ? "redirect=" : "include:");
		return;
	}
	query_expanded(r, ST_RECORD, f->domain, DNS_T_TXT);
}

static void
got_record(spf_req_t *r, const dns_result_t *res)
{
	frame_t *f = r->fr;
	if (dns_failed(res)) {
		finish(r, SPF_TEMPERROR, "DNS error looking up the SPF record of %s: %s", f->domain,
		    res->why);
		return;
	}
	const char *which = f->up ? "include:" : f->redirected ? "redirect=" : NULL;
	buf_t rec = BUF_INIT, one = BUF_INIT;
	size_t found = 0;
	for (size_t i = 0; res->status == DNS_OK && i < res->n; i++) {
		buf_reset(&one);
		if (dns_txt_join(res->rr[i].rdata, res->rr[i].rdlen, &one) < 0)
			continue; /* no strings at all: not a record */
		if (spf_is_record(one.data, one.len)) {
			if (found++ == 0)
				buf_append(&rec, one.data, one.len);
		}
	}
	buf_free(&one);
	if (found > 1) {
		buf_free(&rec);
		finish(r, SPF_PERMERROR, "%zu SPF records for %s (section 4.5)", found, f->domain);
		return;
	}
	if (found == 0) {
		buf_free(&rec);
		if (which)
			finish(r, SPF_PERMERROR, "no SPF record for %s, target of %s", f->domain, which);
		else
			finish(r, SPF_NONE, "no SPF record for %s", f->domain);
		return;
	}
	buf_t err = BUF_INIT;
	spf_record_free(&f->rec);
	if (spf_record_parse(rec.data, rec.len, &f->rec, &err) < 0) {
		finish(r, SPF_PERMERROR, "syntax error in the SPF record of %s: %s", f->domain,
		    buf_cstr(&err));
		buf_free(&err);
		buf_free(&rec);
		return;
	}
	buf_free(&err);
	buf_free(&rec);
	f->pc = 0;
	step(r);
}

static enum spf_result
qualifier_result(char q)
{
	switch (q) {
	case '-': return SPF_FAIL;
	case '~': return SPF_SOFTFAIL;
	case '?': return SPF_NEUTRAL;
	default: return SPF_PASS;
	}
}

static void start_exp(spf_req_t *r);

/* The frame's result is res (pass, fail, softfail or neutral) because of
 * `why`: return it to the including record, or end (with exp= on fail). */
static void
frame_result(spf_req_t *r, enum spf_result res, const char *why)
{
	frame_t *f = r->fr;
	if (f->up == NULL) {
		buf_reset(&r->reason);
		buf_puts(&r->reason, why);
		if (res == SPF_FAIL && f->rec.exp != NULL) {
			r->result = res;
			start_exp(r);
			return;
		}
		finish(r, res, "%s", why);
		return;
	}
	/* section 5.2: include matches only on pass */
	r->fr = f->up;
	spf_record_free(&f->rec);
	xfree(f->domain);
	xfree(f);
	f = r->fr;
	r->m.domain = f->domain;
	const spf_term_t *t = &f->rec.terms[f->pc];
	if (res == SPF_PASS) {
		frame_result(r, qualifier_result(t->qualifier), t->text);
		return;
	}
	f->pc++;
	step(r);
}

/* ---- macros ---- */

static bool
needs_p(const char *s)
{
	for (const char *p = s; (p = strchr(p, '%')) != NULL; p++) {
		if (p[1] == '{' && (p[2] == 'p' || p[2] == 'P'))
			return true;
		if (p[1] != '\0')
			p++;
	}
	return false;
}

static void start_p(spf_req_t *r, enum resume then);

/* Expand a domain-spec of the current frame into r->target. -1: %{p}
 * lookups were started (step() resumes) or the request finished. */
static int
expand_target(spf_req_t *r, const char *spec, enum resume then)
{
	if (needs_p(spec) && (r->p == NULL || r->p_domain == NULL ||
	    strcmp(r->p_domain, r->fr->domain) != 0)) {
		start_p(r, then);
		return -1;
	}
	r->m.validated = r->p;
	buf_t out = BUF_INIT, err = BUF_INIT;
	if (spf_macro_expand(&r->m, spec, strlen(spec), 0, &out, &err) < 0) {
		/* checked by the parser; only the length can fail here */
		finish(r, SPF_PERMERROR, "macro expansion of \"%s\": %s", spec, buf_cstr(&err));
		buf_free(&out);
		buf_free(&err);
		return -1;
	}
	buf_free(&err);
	xfree(r->target);
	r->target = buf_steal(&out);
	return 0;
}

/* ---- the evaluation ---- */

static bool
count_term(spf_req_t *r, const char *what)
{
	if (++r->terms > SPF_MAX_TERMS) {
		finish(r, SPF_PERMERROR, "more than %d DNS-querying terms (section 4.6.4) at \"%s\"",
		    SPF_MAX_TERMS, what);
		return false;
	}
	return true;
}

/* Run the innermost frame's terms until one waits for DNS or a result. */
static void
step(spf_req_t *r)
{
	while (!r->finished) {
		frame_t *f = r->fr;
		r->m.domain = f->domain;
		if (f->pc >= f->rec.n) {
			/* section 6.1: redirect= only when no mechanism matched */
			if (f->rec.redirect == NULL) {
				frame_result(r, SPF_NEUTRAL, "default");
				return;
			}
			if (!f->redirect_done) {
				if (expand_target(r, f->rec.redirect, RESUME_TERM) < 0)
					return;
				if (!count_term(r, "redirect="))
					return;
				f->redirect_done = true;
			}
			/* the new record replaces this one, exp= and all */
			xfree(f->domain);
			f->domain = r->target;
			r->target = NULL;
			size_t n = strlen(f->domain);
			if (n > 1 && f->domain[n - 1] == '.')
				f->domain[n - 1] = '\0';
			spf_record_free(&f->rec);
			f->redirected = true;
			f->redirect_done = false;
			f->pc = 0;
			r->m.domain = f->domain;
			fetch_record(r);
			return;
		}
		const spf_term_t *t = &f->rec.terms[f->pc];
		switch (t->mech) {
		case SPF_M_ALL:
			frame_result(r, qualifier_result(t->qualifier), t->text);
			return;
		case SPF_M_IP4:
			if (spf_cidr_match(&r->m.ip, &t->net, (unsigned)t->cidr4)) {
				frame_result(r, qualifier_result(t->qualifier), t->text);
				return;
			}
			f->pc++;
			continue;
		case SPF_M_IP6:
			if (spf_cidr_match(&r->m.ip, &t->net, (unsigned)t->cidr6)) {
				frame_result(r, qualifier_result(t->qualifier), t->text);
				return;
			}
			f->pc++;
			continue;
		default:
			break;
		}
		/* a term that queries DNS: its target (default: <domain>) */
		if (t->spec != NULL) {
			if (expand_target(r, t->spec, RESUME_TERM) < 0)
				return;
		} else {
			xfree(r->target);
			r->target = xstrdup(f->domain);
		}
		if (!count_term(r, t->text))
			return;
		switch (t->mech) {
		case SPF_M_INCLUDE: {
			char *d = r->target;
			size_t n = strlen(d);
			if (n > 1 && d[n - 1] == '.')
				d[n - 1] = '\0';
			frame_push(r, d, false);
			fetch_record(r);
			return;
		}
		case SPF_M_A:
			query_expanded(r, ST_ADDR, r->target, addr_type(r));
			return;
		case SPF_M_MX:
			query_expanded(r, ST_MX, r->target, DNS_T_MX);
			return;
		case SPF_M_EXISTS:
			/* section 5.7: always A, whatever the client's family */
			query_expanded(r, ST_EXISTS, r->target, DNS_T_A);
			return;
		case SPF_M_PTR: {
			buf_t rn = BUF_INIT;
			reverse_name(&r->m.ip, &rn);
			query(r, ST_PTR, buf_cstr(&rn), DNS_T_PTR);
			buf_free(&rn);
			return;
		}
		default:
			return;
		}
	}
}

/* the current term matched */
static void
matched(spf_req_t *r)
{
	const spf_term_t *t = &r->fr->rec.terms[r->fr->pc];
	frame_result(r, qualifier_result(t->qualifier), t->text);
}

static void
no_match(spf_req_t *r)
{
	names_clear(r);
	r->fr->pc++;
	step(r);
}

/* take up to SPF_MAX_NAMES names of an MX or PTR answer */
static void
take_names(spf_req_t *r, const dns_result_t *res, bool mx)
{
	names_clear(r);
	r->names = xcalloc(res->n ? res->n : 1, sizeof(*r->names));
	for (size_t i = 0; i < res->n && r->nnames < SPF_MAX_NAMES; i++) {
		const char *n = mx ? res->rr[i].u.mx.exchange : res->rr[i].u.ptr.name;
		if (n == NULL || strcmp(n, ".") == 0)
			continue; /* RFC 7505 null MX: no host */
		r->names[r->nnames++] = xstrdup(n);
	}
}

/* next MX host's addresses, or the end of the mx mechanism */
static void
mx_next(spf_req_t *r)
{
	if (r->ni >= r->nnames) {
		no_match(r);
		return;
	}
	/* the names are presentation form already (escaped by dns.c) */
	query(r, ST_MXADDR, r->names[r->ni], addr_type(r));
}

/* next PTR name to validate for the ptr mechanism (section 5.5): only
 * names within the target need validating */
static void
ptr_next(spf_req_t *r)
{
	while (r->ni < r->nnames && !name_within(r->names[r->ni], r->target))
		r->ni++;
	if (r->ni >= r->nnames) {
		no_match(r);
		return;
	}
	query(r, ST_PTRADDR, r->names[r->ni], addr_type(r));
}

/* ---- %{p} (section 7.3): the validated name, preferring <domain> ---- */

static void p_next(spf_req_t *r);

static void
p_resume(spf_req_t *r)
{
	names_clear(r);
	xfree(r->p_domain);
	r->p_domain = xstrdup(r->fr->domain);
	if (r->p == NULL)
		r->p = xstrdup("unknown");
	switch (r->p_resume) {
	case RESUME_TERM: step(r); break;
	case RESUME_EXP_DOMAIN: start_exp(r); break;
	case RESUME_EXP_TEXT: start_exp(r); break;
	}
}

/* Section 4.6.4: the PTR lookup of %{p} in a mechanism or redirect= counts
 * towards the 10 DNS-querying terms (in exp= text it cannot change the
 * result, and the exp= lookup itself is not counted either). */
static void
start_p(spf_req_t *r, enum resume then)
{
	if (then == RESUME_TERM && !count_term(r, "%{p}"))
		return;
	xfree(r->p);
	r->p = NULL;
	r->p_resume = then;
	buf_t rn = BUF_INIT;
	reverse_name(&r->m.ip, &rn);
	query(r, ST_P_PTR, buf_cstr(&rn), DNS_T_PTR);
	buf_free(&rn);
}

static int
p_rank(const char *name, const char *domain)
{
	if (name_within(name, domain)) {
		size_t n = strlen(name), d = strlen(domain);
		if (n > 0 && name[n - 1] == '.')
			n--;
		if (d > 0 && domain[d - 1] == '.')
			d--;
		return n == d ? 0 : 1;
	}
	return 2;
}

static void
got_p_ptr(spf_req_t *r, const dns_result_t *res)
{
	if (res->status != DNS_OK) {
		p_resume(r);
		return;
	}
	take_names(r, res, false);
	/* order: <domain> itself, then its subdomains, then the others
	 * (stable: a few names, insertion sort) */
	const char *d = r->fr->domain;
	for (size_t i = 1; i < r->nnames; i++) {
		char *x = r->names[i];
		size_t j = i;
		while (j > 0 && p_rank(r->names[j - 1], d) > p_rank(x, d)) {
			r->names[j] = r->names[j - 1];
			j--;
		}
		r->names[j] = x;
	}
	r->ni = 0;
	p_next(r);
}

static void
p_next(spf_req_t *r)
{
	if (r->ni >= r->nnames) {
		p_resume(r);
		return;
	}
	query(r, ST_P_ADDR, r->names[r->ni], addr_type(r));
}

/* ---- exp= (section 6.2): only for fail, from the top record ---- */

static void
start_exp(spf_req_t *r)
{
	frame_t *f = r->fr;
	char *why = xstrdup(buf_cstr(&r->reason));
	if (r->exp_text == NULL) {
		if (needs_p(f->rec.exp) && (r->p == NULL || r->p_domain == NULL ||
		    strcmp(r->p_domain, f->domain) != 0)) {
			start_p(r, RESUME_EXP_DOMAIN);
			xfree(why);
			return;
		}
		r->m.validated = r->p;
		buf_t out = BUF_INIT, err = BUF_INIT;
		int rc = spf_macro_expand(&r->m, f->rec.exp, strlen(f->rec.exp), 0, &out, &err);
		buf_free(&err);
		if (rc < 0) {
			buf_free(&out);
			finish(r, SPF_FAIL, "%s", why);
			xfree(why);
			return;
		}
		query_expanded(r, ST_EXP, buf_cstr(&out), DNS_T_TXT);
		buf_free(&out);
		xfree(why);
		return;
	}
	/* the explanation record is here: expand it */
	if (needs_p(r->exp_text) && (r->p == NULL || r->p_domain == NULL ||
	    strcmp(r->p_domain, f->domain) != 0)) {
		start_p(r, RESUME_EXP_TEXT);
		xfree(why);
		return;
	}
	r->m.validated = r->p;
	buf_t err = BUF_INIT;
	buf_reset(&r->expl);
	if (spf_macro_expand(&r->m, r->exp_text, strlen(r->exp_text), 1, &r->expl, &err) < 0)
		buf_reset(&r->expl); /* section 6.2: as if there were no exp= */
	buf_free(&err);
	finish(r, SPF_FAIL, "%s", why);
	xfree(why);
}

static void
got_exp(spf_req_t *r, const dns_result_t *res)
{
	const char *why = buf_cstr(&r->reason);
	/* section 6.2: an error, no record or several: no explanation */
	buf_t t = BUF_INIT;
	if (res->status != DNS_OK || res->n != 1 ||
	    dns_txt_join(res->rr[0].rdata, res->rr[0].rdlen, &t) < 0 ||
	    memchr(t.data, '\0', t.len) != NULL) {
		buf_free(&t);
		char *w = xstrdup(why);
		finish(r, SPF_FAIL, "%s", w);
		xfree(w);
		return;
	}
	r->exp_text = buf_steal(&t);
	start_exp(r);
}

/* ---- the answers ---- */

static void
on_dns(void *arg, const dns_result_t *res)
{
	spf_req_t *r = arg;
	r->q = NULL;
	enum step st = r->step;
	r->step = ST_NONE;
	switch (st) {
	case ST_RECORD:
		got_record(r, res);
		return;
	case ST_ADDR:
	case ST_EXISTS:
		if (dns_failed(res)) {
			finish(r, SPF_TEMPERROR, "DNS error looking up %s: %s", res->qname, res->why);
			return;
		}
		if (res->status != DNS_OK || res->n == 0) {
			if (!void_lookup(r, res->qname))
				no_match(r);
			return;
		}
		if (st == ST_EXISTS) {
			matched(r);
			return;
		}
		{
			const spf_term_t *t = &r->fr->rec.terms[r->fr->pc];
			if (any_addr_matches(r, res, t->cidr4, t->cidr6))
				matched(r);
			else
				no_match(r);
		}
		return;
	case ST_MX:
		if (dns_failed(res)) {
			finish(r, SPF_TEMPERROR, "DNS error looking up MX %s: %s", res->qname, res->why);
			return;
		}
		if (res->status != DNS_OK || res->n == 0) {
			if (!void_lookup(r, res->qname))
				no_match(r);
			return;
		}
		if (res->n > SPF_MAX_NAMES) {
			finish(r, SPF_PERMERROR, "%s has %zu MX records, more than %d (section 4.6.4)",
			    res->qname, res->n, SPF_MAX_NAMES);
			return;
		}
		take_names(r, res, true);
		mx_next(r);
		return;
	case ST_MXADDR: {
		if (dns_failed(res)) {
			finish(r, SPF_TEMPERROR, "DNS error looking up %s: %s", res->qname, res->why);
			return;
		}
		const spf_term_t *t = &r->fr->rec.terms[r->fr->pc];
		if (res->status == DNS_OK && any_addr_matches(r, res, t->cidr4, t->cidr6)) {
			names_clear(r);
			matched(r);
			return;
		}
		r->ni++;
		mx_next(r);
		return;
	}
	case ST_PTR:
		/* section 5.5: a DNS error makes the mechanism not match */
		if (res->status == DNS_NXDOMAIN || res->status == DNS_NODATA ||
		    (res->status == DNS_OK && res->n == 0)) {
			if (!void_lookup(r, res->qname))
				no_match(r);
			return;
		}
		if (res->status != DNS_OK) {
			no_match(r);
			return;
		}
		take_names(r, res, false);
		ptr_next(r);
		return;
	case ST_PTRADDR:
		/* errors: this name is skipped (section 5.5) */
		if (res->status == DNS_OK && any_addr_matches(r, res, -1, -1)) {
			names_clear(r);
			matched(r);
			return;
		}
		r->ni++;
		ptr_next(r);
		return;
	case ST_P_PTR:
		got_p_ptr(r, res);
		return;
	case ST_P_ADDR:
		if (res->status == DNS_OK && any_addr_matches(r, res, -1, -1)) {
			r->p = xstrdup(r->names[r->ni]);
			p_resume(r);
			return;
		}
		r->ni++;
		p_next(r);
		return;
	case ST_EXP:
		got_exp(r, res);
		return;
	case ST_NONE:
		return;
	}
}

/* ---- the API ---- */

spf_req_t *
spf_check_host(dns_t *dns, const struct sockaddr *ip, const char *domain, const char *sender,
    const char *helo, const spf_options_t *o, spf_cb cb, void *arg)
{
	spf_req_t *r = xcalloc(1, sizeof(*r));
	r->dns = dns;
	r->loop = dns_loop(dns);
	r->cb = cb;
	r->arg = arg;
	r->sender = xstrdup(sender ? sender : "");
	const char *at = strrchr(r->sender, '@');
	r->local = at ? xstrndup(r->sender, (size_t)(at - r->sender)) : xstrdup("");
	r->sender_domain = xstrdup(at ? at + 1 : r->sender);
	r->helo = xstrdup(helo ? helo : "");
	r->receiver = xstrdup(o && o->receiver ? o->receiver : "unknown");
	/* section 4.3: a final dot is not part of the name */
	r->domain0 = xstrdup(domain ? domain : "");
	size_t dl = strlen(r->domain0);
	if (dl > 1 && r->domain0[dl - 1] == '.')
		r->domain0[dl - 1] = '\0';
	r->m.sender = r->sender;
	r->m.local = r->local;
	r->m.sender_domain = r->sender_domain;
	r->m.helo = r->helo;
	r->m.receiver = r->receiver;
	r->m.now = (long long)time(NULL);
	uv_timer_init(r->loop, &r->budget);
	uv_timer_init(r->loop, &r->done);
	r->budget.data = r->done.data = r;
	unsigned ms = o && o->timeout_ms ? o->timeout_ms : SPF_DEFAULT_TIMEOUT_MS;
	uv_timer_start(&r->budget, on_budget, ms, 0);
	frame_push(r, r->domain0, false);
	if (spf_ip_from_sockaddr(ip, &r->m.ip) < 0) {
		finish(r, SPF_PERMERROR, "the client address is neither IPv4 nor IPv6");
		return r;
	}
	fetch_record(r);
	return r;
}

void
spf_cancel(spf_req_t *r)
{
	if (r == NULL)
		return;
	uv_timer_stop(&r->budget);
	uv_timer_stop(&r->done);
	req_close(r);
}
