/*
 * arc.c - MAILAUTH: ARC, RFC 8617, verifying and sealing (see arc.h); the
 * tag lists, canonicalisation and crypto are DKIM's (dkim_int.h).
 *
 * Verifying, section 5.2: collect the ARC sets (a header section over
 * 256 KiB is a fail if it holds an ARC field); check their structure
 * (instances 1..N without gap or duplicate, N <= 50, cv=none at i=1 and
 * cv=pass above, the newest not cv=fail); hash the body for the newest
 * AMS while it streams; then, with the keys: the newest AMS as a DKIM
 * signature (its h= fields bottom up, then itself with b= empty), and
 * every AS from N down to 1 over the ARC sets 1..i (AAR, AMS, AS of each,
 * relaxed, the AS being checked with b= empty and no CRLF). Anything that
 * does not verify, or a key that cannot be had, is fail. Older AMSs are
 * not checked (section 5.2 asks only for the newest). With a loop
 * (arc_verify_finish), the loop prepares the checks in that order (keys
 * parsed, header data canonicalised) and the public-key operations run
 * on the thread pool (dkim_vbatch_run, stopping at the first failure):
 * the first check that fails decides, then a key that could not be used,
 * exactly as the synchronous order would; the verdict comes on the loop.
 *
 * Must not: block, call back from inside arc_verify_finish(), or touch
 * the object after the callback (which may free it).
 */
#include "mailauth/arc.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

#define ARC_MAX_HEADER (256u * 1024)

typedef struct arc_key {
	char *name;
	enum dns_status st;
	buf_t txt;
	dns_query_t *q;
	struct arc_verify *v;
} arc_key_t;

struct arc_verify {
	dkim_verify_opts_t o;
	buf_t hdr;
	size_t scan;
	bool hdr_done, overflow, overflow_arc;
	dkim_field_t *fields;
	size_t nfields;
	unsigned n;
	size_t aar[ARC_MAX_INSTANCES + 1], ams[ARC_MAX_INSTANCES + 1], as[ARC_MAX_INSTANCES + 1];
	dkim_sig_t amsig;                        /* the newest AMS */
	dkim_sig_t assig[ARC_MAX_INSTANCES + 1]; /* every AS */
	bool decided;
	enum arc_result result;
	const char *reason;
	char reasonbuf[96];
	dkim_canon_t canon;
	EVP_MD_CTX *body;
	uint64_t hashed;
	arc_key_t keys[2 * ARC_MAX_INSTANCES + 1]; /* AMSs and ASs: at most 2N - 1 names */
	size_t nkeys, pending;
	/* the older AMSs, i=1..N-1, for oldest-pass (RFC 8617 section 5.2
	 * step 5): parsed, their body hashes streamed beside the newest's */
	struct older {
		dkim_sig_t sig;
		bool parsed;
		EVP_MD_CTX *body; /* NULL once final, or unusable */
		uint64_t hashed;
		bool bh_ok;       /* body hash (and l=) right: its signature is checked */
		bool ok;          /* and the signature verified */
	} *old;               /* [1..N-1]; NULL when N < 2 */
	dkim_canon_t ocanon[2]; /* [0] simple, [1] relaxed, for the older AMSs */
	bool ocanon_used[2];
	unsigned oldest_pass;
	size_t nchain;        /* of the checks handed to the pool: the chain's (the rest: older AMSs) */
	unsigned ochk[ARC_MAX_INSTANCES + 1]; /* the instance of each older AMS check */
	arc_verify_cb cb;
	void *arg;
	uv_timer_t timer;
	bool timer_init, delivered;
	uv_loop_t *loop;       /* set: the signature checks go to the thread pool */
	dkim_vbatch_t *batch;  /* in flight */
	/* the checks handed over, in check_all's order: what each one is */
	struct { const char *what; unsigned i; } chk[2 * ARC_MAX_INSTANCES + 2];
	size_t nchk;
	dkim_vitem_t *items;   /* being prepared (no loop: checked at once) */
};

const char *
arc_result_str(enum arc_result r)
{
	return r == ARC_PASS ? "pass" : r == ARC_FAIL ? "fail" : "none";
}

arc_verify_t *
arc_verify_new(const dkim_verify_opts_t *o)
{
	arc_verify_t *v = xcalloc(1, sizeof *v);
	if (o)
		v->o = *o;
	if (!v->o.timeout_ms)
		v->o.timeout_ms = 10000;
	return v;
}

static void
decide(arc_verify_t *v, enum arc_result r, const char *why)
{
	if (v->decided)
		return;
	v->decided = true;
	v->result = r;
	v->reason = why;
	EVP_MD_CTX_free(v->body);
	v->body = NULL;
}

/* a fail whose reason is "WHAT i=N REST" */
static void
decide_i(arc_verify_t *v, const char *what, unsigned i, const char *rest)
{
	snprintf(v->reasonbuf, sizeof v->reasonbuf, "%s i=%u%s", what, i, rest);
	decide(v, ARC_FAIL, v->reasonbuf);
}

enum kind { K_NONE, K_AAR, K_AMS, K_AS };

static enum kind
kind_of(const dkim_field_t *f)
{
	if (dkim_field_is(f, "ARC-Seal", 8))
		return K_AS;
	if (dkim_field_is(f, "ARC-Message-Signature", 21))
		return K_AMS;
	if (dkim_field_is(f, "ARC-Authentication-Results", 26))
		return K_AAR;
	return K_NONE;
}

static const char *
value_of(const dkim_field_t *f, size_t *len)
{
	const char *val = (const char *)memchr(f->p, ':', f->len) + 1;
	*len = f->len - (size_t)(val - f->p);
	return val;
}

/* the i= of an ARC field: 1..50, else 0 */
static unsigned
arc_instance(const dkim_field_t *f)
{
	size_t n;
	const char *p = value_of(f, &n);
	size_t i = 0;
	if (kind_of(f) == K_AAR) {
		/* "i=N;" first (section 4.1.1); what follows is A-R syntax */
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
			i++;
		if (i + 1 >= n || p[i] != 'i')
			return 0;
		i++;
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
			i++;
		if (i >= n || p[i] != '=')
			return 0;
		i++;
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
			i++;
		unsigned v = 0;
		size_t d = 0;
		while (i < n && p[i] >= '0' && p[i] <= '9' && d < 3) {
			v = v * 10 + (unsigned)(p[i++] - '0');
			d++;
		}
		while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
			i++;
		if (!d || i >= n || p[i] != ';' || v < 1 || v > ARC_MAX_INSTANCES)
			return 0;
		return v;
	}
	dkim_tag_t tags[DKIM_MAX_TAGS];
	size_t nt;
	const char *why;
	if (dkim_tags_parse(p, n, tags, DKIM_MAX_TAGS, &nt, &why) < 0)
		return 0;
	const dkim_tag_t *t = dkim_tag_get(tags, nt, "i");
	if (!t || t->vlen == 0 || t->vlen > 2)
		return 0;
	unsigned v = 0;
	for (size_t k = 0; k < t->vlen; k++) {
		if (t->val[k] < '0' || t->val[k] > '9')
			return 0;
		v = v * 10 + (unsigned)(t->val[k] - '0');
	}
	return v >= 1 && v <= ARC_MAX_INSTANCES ? v : 0;
}

static void
sink(void *arg, const char *p, size_t n)
{
	arc_verify_t *v = arg;
	if (!v->body)
		return;
	size_t take = n;
	if (v->amsig.has_l && v->amsig.l - v->hashed < take)
		take = (size_t)(v->amsig.l - v->hashed);
	if (take) {
		EVP_DigestUpdate(v->body, p, take);
		v->hashed += take;
	}
}

/* canonical body octets for the older AMSs of one canonicalisation */
static void
osink(arc_verify_t *v, const char *p, size_t n, bool relaxed)
{
	for (unsigned i = 1; i < v->n; i++) {
		struct older *o = &v->old[i];
		if (!o->body || o->sig.brelaxed != relaxed)
			continue;
		size_t take = n;
		if (o->sig.has_l && o->sig.l - o->hashed < take)
			take = (size_t)(o->sig.l - o->hashed);
		if (take) {
			EVP_DigestUpdate(o->body, p, take);
			o->hashed += take;
		}
	}
}

static void
osink_simple(void *arg, const char *p, size_t n)
{
	osink(arg, p, n, false);
}

static void
osink_relaxed(void *arg, const char *p, size_t n)
{
	osink(arg, p, n, true);
}

/* body octets to every hash that wants them */
static void
feed_body(arc_verify_t *v, const char *p, size_t n)
{
	if (!v->body)
		return;
	dkim_canon_body(&v->canon, p, n);
	for (int k = 0; k < 2; k++)
		if (v->ocanon_used[k])
			dkim_canon_body(&v->ocanon[k], p, n);
}

/* the older AMSs (oldest-pass): parsed, hashes set up; one that cannot be
 * used only ends the run of passing ones, it does not fail the chain */
static void
older_init(arc_verify_t *v)
{
	if (v->n < 2)
		return;
	v->old = xcalloc(v->n, sizeof *v->old);
	for (unsigned i = 1; i < v->n; i++) {
		struct older *o = &v->old[i];
		size_t len;
		const char *p = value_of(&v->fields[v->ams[i] - 1], &len);
		enum dkim_result r;
		const char *why;
		if (dkim_sig_parse_kind(p, len, DKIM_KIND_AMS, &o->sig, &r, &why) < 0)
			continue;
		o->parsed = true;
		o->body = EVP_MD_CTX_new();
		if (!o->body || EVP_DigestInit_ex(o->body, EVP_sha256(), NULL) != 1) {
			EVP_MD_CTX_free(o->body);
			o->body = NULL;
			continue;
		}
		int k = o->sig.brelaxed ? 1 : 0;
		if (!v->ocanon_used[k]) {
			dkim_canon_init(&v->ocanon[k], k == 1, k ? osink_relaxed : osink_simple, v);
			v->ocanon_used[k] = true;
		}
	}
}

/* the header section is complete: the sets, their structure, the AMS */
static void
header_done(arc_verify_t *v)
{
	v->hdr_done = true;
	if (v->overflow) {
		if (v->overflow_arc)
			decide(v, ARC_FAIL, "header section too large to check");
		return;
	}
	dkim_fields_split(v->hdr.data ? v->hdr.data : "", v->hdr.len, &v->fields, &v->nfields);
	bool any = false;
	for (size_t i = 0; i < v->nfields; i++) {
		enum kind k = kind_of(&v->fields[i]);
		if (k == K_NONE)
			continue;
		any = true;
		unsigned inst = arc_instance(&v->fields[i]);
		if (!inst) {
			decide(v, ARC_FAIL, "an ARC field without a valid i=");
			return;
		}
		size_t *slot = k == K_AAR ? &v->aar[inst] : k == K_AMS ? &v->ams[inst] : &v->as[inst];
		if (*slot) {
			decide_i(v, "two ARC fields of one kind with", inst, "");
			return;
		}
		*slot = i + 1;
		if (inst > v->n)
			v->n = inst;
	}
	if (!any)
		return; /* none */
	for (unsigned i = 1; i <= v->n; i++) {
		if (!v->aar[i] || !v->ams[i] || !v->as[i]) {
			decide_i(v, "ARC set", i, " incomplete");
			return;
		}
	}
	for (unsigned i = 1; i <= v->n; i++) {
		size_t len;
		const char *p = value_of(&v->fields[v->as[i] - 1], &len);
		enum dkim_result r;
		const char *why;
		if (dkim_sig_parse_kind(p, len, DKIM_KIND_AS, &v->assig[i], &r, &why) < 0) {
			snprintf(v->reasonbuf, sizeof v->reasonbuf, "ARC-Seal i=%u: %s", i, why);
			decide(v, ARC_FAIL, v->reasonbuf);
			return;
		}
	}
	if (strcmp(v->assig[v->n].cv, "fail") == 0) {
		decide(v, ARC_FAIL, "the newest ARC-Seal says cv=fail");
		return;
	}
	for (unsigned i = 1; i <= v->n; i++) {
		if (strcmp(v->assig[i].cv, i == 1 ? "none" : "pass") != 0) {
			decide_i(v, "ARC-Seal", i, " has the wrong cv=");
			return;
		}
	}
	size_t len;
	const char *p = value_of(&v->fields[v->ams[v->n] - 1], &len);
	enum dkim_result r;
	const char *why;
	if (dkim_sig_parse_kind(p, len, DKIM_KIND_AMS, &v->amsig, &r, &why) < 0) {
		snprintf(v->reasonbuf, sizeof v->reasonbuf, "ARC-Message-Signature i=%u: %s", v->n, why);
		decide(v, ARC_FAIL, v->reasonbuf);
		return;
	}
	v->body = EVP_MD_CTX_new();
	if (!v->body || EVP_DigestInit_ex(v->body, EVP_sha256(), NULL) != 1) {
		decide(v, ARC_FAIL, "out of memory");
		return;
	}
	dkim_canon_init(&v->canon, v->amsig.brelaxed, sink, v);
	older_init(v);
}

static const char *
find_end(const arc_verify_t *v)
{
	const char *h = v->hdr.data;
	if (v->hdr.len >= 2 && h[0] == '\r' && h[1] == '\n')
		return h;
	for (size_t i = v->scan; i + 4 <= v->hdr.len; i++)
		if (h[i] == '\r' && h[i + 1] == '\n' && h[i + 2] == '\r' && h[i + 3] == '\n')
			return h + i + 2;
	return NULL;
}

void
arc_verify_feed(arc_verify_t *v, const char *p, size_t n)
{
	if (v->cb || n == 0)
		return;
	if (v->hdr_done) {
		feed_body(v, p, n);
		return;
	}
	size_t room = ARC_MAX_HEADER + 4 - v->hdr.len;
	size_t take = n < room ? n : room;
	size_t old = v->hdr.len;
	buf_append(&v->hdr, p, take);
	const char *end = find_end(v);
	if (!end) {
		v->scan = v->hdr.len >= 3 ? v->hdr.len - 3 : 0;
		if (v->hdr.len >= ARC_MAX_HEADER + 4) {
			v->overflow = true;
			for (size_t i = 0; i + 4 <= v->hdr.len; i++)
				if ((i == 0 || v->hdr.data[i - 1] == '\n') && strncasecmp(v->hdr.data + i, "ARC-", 4) == 0)
					v->overflow_arc = true;
			buf_free(&v->hdr);
			header_done(v);
		}
		return;
	}
	size_t hlen = (size_t)(end - v->hdr.data);
	v->hdr.len = hlen;
	v->hdr.data[hlen] = '\0';
	header_done(v);
	size_t used = hlen + 2 - old;
	if (used < n)
		feed_body(v, p + used, n - used);
}

/* ---- finish ---- */

static void
add_key(arc_verify_t *v, const dkim_sig_t *s)
{
	char *name = xasprintf("%s._domainkey.%s", s->s, s->d);
	for (size_t i = 0; i < v->nkeys; i++) {
		if (strcmp(v->keys[i].name, name) == 0) {
			xfree(name);
			return;
		}
	}
	arc_key_t *k = &v->keys[v->nkeys++];
	k->name = name;
	k->st = DNS_TEMPFAIL;
	k->v = v;
}

static const arc_key_t *
key_for(const arc_verify_t *v, const dkim_sig_t *s)
{
	char name[600];
	snprintf(name, sizeof name, "%s._domainkey.%s", s->s, s->d);
	for (size_t i = 0; i < v->nkeys; i++)
		if (strcmp(v->keys[i].name, name) == 0)
			return &v->keys[i];
	return NULL;
}

/* 0 and *kr parsed, or -1 with the chain decided */
static int
get_key(arc_verify_t *v, const dkim_sig_t *s, const char *what, unsigned i, dkim_keyrec_t *kr)
{
	const arc_key_t *k = key_for(v, s);
	const char *why;
	enum dkim_result res;
	if (dkim_key_get(k ? k->st : DNS_TEMPFAIL, k ? &k->txt : NULL, kr, &res, &why) != 0) {
		snprintf(v->reasonbuf, sizeof v->reasonbuf, "%s i=%u: %s", what, i, why);
		dkim_keyrec_clear(kr);
		decide(v, ARC_FAIL, v->reasonbuf);
		return -1;
	}
	return 0;
}

/* the field with the value span [bs, be) of its value removed */
static void
without_b(const dkim_field_t *f, const dkim_sig_t *s, buf_t *out)
{
	size_t vl;
	const char *val = value_of(f, &vl);
	size_t voff = (size_t)(val - f->p);
	buf_append(out, f->p, voff + s->b_start);
	buf_append(out, f->p + voff + s->b_end, f->len - voff - s->b_end);
}

static void
check_failed(arc_verify_t *v, const char *what, unsigned i, const char *why)
{
	snprintf(v->reasonbuf, sizeof v->reasonbuf, "%s i=%u: %s", what, i, why);
	decide(v, ARC_FAIL, v->reasonbuf);
}

/* the signature of what i= i over data (taken) with kr (cleared): now,
 * or, with a loop, added to the checks for the pool (check_all's order:
 * the first that fails decides, as it would here) */
static void
check(arc_verify_t *v, dkim_keyrec_t *kr, const dkim_sig_t *sig, buf_t *data, const char *what,
    unsigned i)
{
	if (v->loop) {
		dkim_vitem_t *it = &v->items[v->nchk];
		v->chk[v->nchk].what = what;
		v->chk[v->nchk].i = i;
		v->nchk++;
		it->k = *kr;
		memset(kr, 0, sizeof *kr);
		it->alg = sig->alg;
		it->data = *data;
		memset(data, 0, sizeof *data);
		buf_append(&it->sig, sig->b.data, sig->b.len);
		return;
	}
	const char *why;
	enum dkim_result r = dkim_keyrec_verify(kr, sig->alg, data->data, data->len, &sig->b, &why);
	buf_free(data);
	dkim_keyrec_clear(kr);
	if (r != DKIM_PASS)
		check_failed(v, what, i, why);
}

/* the data an AMS signs: its h= fields bottom up, then itself with b=
 * empty (field: its index + 1 in v->fields) */
static void
ams_data(const arc_verify_t *v, const dkim_sig_t *sig, size_t field, buf_t *data)
{
	buf_t self = BUF_INIT;
	bool *used = xcalloc(v->nfields, sizeof *used);
	for (size_t i = 0; i < sig->nh; i++) {
		const char *name = sig->h[i];
		size_t nl = strlen(name);
		for (size_t j = v->nfields; j-- > 0;) {
			if (used[j] || !dkim_field_is(&v->fields[j], name, nl))
				continue;
			used[j] = true;
			dkim_canon_header(sig->hrelaxed, v->fields[j].p, v->fields[j].len, data);
			buf_append(data, "\r\n", 2);
			break;
		}
	}
	xfree(used);
	without_b(&v->fields[field - 1], sig, &self);
	dkim_canon_header(sig->hrelaxed, self.data, self.len, data);
	buf_free(&self);
}

static void
check_ams(arc_verify_t *v)
{
	dkim_keyrec_t kr;
	if (get_key(v, &v->amsig, "ARC-Message-Signature", v->n, &kr) < 0)
		return;
	buf_t data = BUF_INIT;
	ams_data(v, &v->amsig, v->ams[v->n], &data);
	check(v, &kr, &v->amsig, &data, "ARC-Message-Signature", v->n);
}

/* oldest-pass (RFC 8617 section 5.2 step 5): the older AMSs from N-1
 * down, each as a DKIM signature; with a loop, added to the pool's checks
 * after the chain's (their failure does not fail the chain) */
static void
check_older(arc_verify_t *v)
{
	for (unsigned i = v->n; i-- > 1;) {
		struct older *o = &v->old[i];
		const arc_key_t *k = key_for(v, &o->sig);
		dkim_keyrec_t kr;
		const char *why;
		enum dkim_result res;
		memset(&kr, 0, sizeof kr);
		if (!o->bh_ok ||
		    dkim_key_get(k ? k->st : DNS_TEMPFAIL, k ? &k->txt : NULL, &kr, &res, &why) != 0) {
			dkim_keyrec_clear(&kr);
			break; /* the run of passing AMSs ends here */
		}
		buf_t data = BUF_INIT;
		ams_data(v, &o->sig, v->ams[i], &data);
		if (v->loop) {
			dkim_vitem_t *it = &v->items[v->nchk++];
			v->ochk[v->nchk - v->nchain - 1] = i;
			it->k = kr;
			it->alg = o->sig.alg;
			it->data = data;
			buf_append(&it->sig, o->sig.b.data, o->sig.b.len);
			continue;
		}
		o->ok = dkim_keyrec_verify(&kr, o->sig.alg, data.data, data.len, &o->sig.b, &why) ==
		    DKIM_PASS;
		buf_free(&data);
		dkim_keyrec_clear(&kr);
		if (!o->ok)
			break;
	}
}

/* the oldest instance in the run of passing AMSs from N down; 0 when
 * every one passed (RFC 8617 section 5.2 step 5) */
static void
set_oldest_pass(arc_verify_t *v)
{
	v->oldest_pass = 0;
	for (unsigned i = v->n; i-- > 1;) {
		if (!v->old[i].ok) {
			v->oldest_pass = i + 1;
			break;
		}
	}
}

static void
check_seal(arc_verify_t *v, unsigned i)
{
	dkim_keyrec_t kr;
	if (get_key(v, &v->assig[i], "ARC-Seal", i, &kr) < 0)
		return;
	buf_t data = BUF_INIT, self = BUF_INIT;
	for (unsigned j = 1; j <= i; j++) {
		const dkim_field_t *a = &v->fields[v->aar[j] - 1], *m = &v->fields[v->ams[j] - 1],
				   *s = &v->fields[v->as[j] - 1];
		dkim_canon_header(true, a->p, a->len, &data);
		buf_append(&data, "\r\n", 2);
		dkim_canon_header(true, m->p, m->len, &data);
		buf_append(&data, "\r\n", 2);
		if (j < i) {
			dkim_canon_header(true, s->p, s->len, &data);
			buf_append(&data, "\r\n", 2);
		} else {
			without_b(s, &v->assig[i], &self);
			dkim_canon_header(true, self.data, self.len, &data);
		}
	}
	buf_free(&self);
	check(v, &kr, &v->assig[i], &data, "ARC-Seal", i);
}

/* every key is in: the signatures (with a loop: prepared; a key that
 * cannot be used decides at its place, after the checks before it) */
static void
check_all(arc_verify_t *v)
{
	if (v->decided)
		return;
	check_ams(v);
	for (unsigned i = v->n; i >= 1 && !v->decided; i--)
		check_seal(v, i);
	if (v->decided)
		return;
	v->nchain = v->nchk;
	check_older(v);
	if (!v->loop) {
		set_oldest_pass(v);
		decide(v, ARC_PASS, "");
	}
}

static void
deliver_now(arc_verify_t *v)
{
	v->delivered = true;
	arc_verdict_t r;
	r.result = v->result;
	r.instances = v->n;
	r.reason = v->reason ? v->reason : "";
	r.ams_d = v->n && v->amsig.d[0] ? v->amsig.d : "";
	r.as_d = v->n ? v->assig[v->n].d : "";
	r.aar1 = NULL;
	r.aar1_len = 0;
	r.oldest_pass = v->result == ARC_PASS ? v->oldest_pass : 0;
	if (v->n && v->aar[1])
		r.aar1 = value_of(&v->fields[v->aar[1] - 1], &r.aar1_len);
	v->cb(v->arg, &r); /* may free v */
}

/* the pool's results: the first check that failed decides; else what
 * decided while preparing (a key that could not be used), else pass */
static void
batch_done(void *arg, const dkim_vitem_t *items, size_t n)
{
	arc_verify_t *v = arg;
	v->batch = NULL;
	enum arc_result pre = v->result;
	bool pre_decided = v->decided;
	char prebuf[sizeof v->reasonbuf];
	memcpy(prebuf, v->reasonbuf, sizeof prebuf);
	const char *prereason = v->reason;
	v->decided = false;
	size_t nchain = pre_decided ? n : v->nchain;
	for (size_t k = 0; k < nchain && !v->decided; k++)
		if (items[k].r != DKIM_PASS)
			check_failed(v, v->chk[k].what, v->chk[k].i, items[k].why);
	if (!v->decided && !pre_decided) {
		for (size_t k = nchain; k < n; k++)
			v->old[v->ochk[k - nchain]].ok = items[k].r == DKIM_PASS;
		set_oldest_pass(v);
	}
	if (!v->decided) {
		if (pre_decided) {
			v->decided = true;
			v->result = pre;
			memcpy(v->reasonbuf, prebuf, sizeof prebuf);
			v->reason = prereason;
		} else {
			decide(v, ARC_PASS, "");
		}
	}
	deliver_now(v);
}

static void
deliver(arc_verify_t *v)
{
	if (v->delivered || v->batch)
		return;
	if (v->timer_init)
		uv_timer_stop(&v->timer);
	if (!v->decided && v->loop) {
		v->items = xcalloc(2 * ARC_MAX_INSTANCES + 2, sizeof *v->items);
		v->nchk = 0;
		v->nchain = 0;
		check_all(v);
		dkim_vitem_t *items = v->items;
		v->items = NULL;
		if (v->nchk) {
			v->batch = dkim_vbatch_run(v->loop, items, v->nchk,
			    v->decided ? v->nchk : v->nchain, batch_done, v);
			return;
		}
		xfree(items);
		if (!v->decided)
			decide(v, ARC_PASS, "");
	} else if (!v->decided) {
		check_all(v);
	}
	deliver_now(v);
}

/* the body is in: its hash; the keys still needed */
static void
body_done(arc_verify_t *v)
{
	if (!v->hdr_done)
		header_done(v);
	if (!v->n && !v->decided)
		decide(v, ARC_NONE, "no ARC set");
	if (v->decided)
		return;
	dkim_canon_end(&v->canon);
	unsigned char h[32];
	unsigned hl = 0;
	EVP_DigestFinal_ex(v->body, h, &hl);
	EVP_MD_CTX_free(v->body);
	v->body = NULL;
	if ((v->amsig.has_l && v->hashed < v->amsig.l) || memcmp(h, v->amsig.bh.data, 32) != 0) {
		decide_i(v, "ARC-Message-Signature", v->n, ": body hash mismatch");
		return;
	}
	add_key(v, &v->amsig);
	for (unsigned i = 1; i <= v->n; i++)
		add_key(v, &v->assig[i]);
	for (int k = 0; k < 2; k++)
		if (v->ocanon_used[k])
			dkim_canon_end(&v->ocanon[k]);
	for (unsigned i = 1; i < v->n; i++) {
		struct older *o = &v->old[i];
		if (!o->body)
			continue;
		EVP_DigestFinal_ex(o->body, h, &hl);
		EVP_MD_CTX_free(o->body);
		o->body = NULL;
		o->bh_ok = !(o->sig.has_l && o->hashed < o->sig.l) && o->sig.bh.len == 32 &&
		    memcmp(h, o->sig.bh.data, 32) == 0;
		if (o->bh_ok)
			add_key(v, &o->sig);
	}
}

static void
on_key(void *arg, const dns_result_t *r)
{
	arc_key_t *k = arg;
	arc_verify_t *v = k->v;
	k->q = NULL;
	k->st = dkim_key_txt(r, &k->txt);
	if (--v->pending == 0)
		deliver(v);
}

static void
on_timer(uv_timer_t *t)
{
	arc_verify_t *v = t->data;
	for (size_t i = 0; i < v->nkeys; i++) {
		if (v->keys[i].q) {
			dns_cancel(v->keys[i].q);
			v->keys[i].q = NULL;
			v->keys[i].st = DNS_TEMPFAIL;
		}
	}
	v->pending = 0;
	deliver(v);
}

void
arc_verify_finish(arc_verify_t *v, dns_t *dns, arc_verify_cb cb, void *arg)
{
	if (v->cb)
		return;
	v->cb = cb;
	v->arg = arg;
	v->loop = dns_loop(dns);
	body_done(v);
	uv_timer_init(dns_loop(dns), &v->timer);
	v->timer.data = v;
	v->timer_init = true;
	if (!v->decided) {
		v->pending = v->nkeys;
		for (size_t i = 0; i < v->nkeys; i++)
			v->keys[i].q = dns_query(dns, v->keys[i].name, DNS_T_TXT, on_key, &v->keys[i]);
	}
	uv_timer_start(&v->timer, on_timer, v->pending ? v->o.timeout_ms : 0, 0);
}

void
arc_verify_finish_sync(arc_verify_t *v, dkim_key_lookup_fn lookup, void *larg, arc_verify_cb cb,
    void *arg)
{
	if (v->cb)
		return;
	v->cb = cb;
	v->arg = arg;
	body_done(v);
	if (!v->decided)
		for (size_t i = 0; i < v->nkeys; i++)
			v->keys[i].st = lookup(larg, v->keys[i].name, &v->keys[i].txt);
	deliver(v);
}

static void
on_close(uv_handle_t *h)
{
	xfree(h->data);
}

void
arc_verify_free(arc_verify_t *v)
{
	if (!v)
		return;
	dkim_vbatch_cancel(v->batch);
	for (size_t i = 0; i < v->nkeys; i++) {
		dns_cancel(v->keys[i].q);
		xfree(v->keys[i].name);
		buf_free(&v->keys[i].txt);
	}
	dkim_sig_clear(&v->amsig);
	for (unsigned i = 0; i <= ARC_MAX_INSTANCES; i++)
		dkim_sig_clear(&v->assig[i]);
	for (unsigned i = 1; v->old && i < v->n; i++) {
		dkim_sig_clear(&v->old[i].sig);
		EVP_MD_CTX_free(v->old[i].body);
	}
	xfree(v->old);
	EVP_MD_CTX_free(v->body);
	xfree(v->fields);
	buf_free(&v->hdr);
	if (v->timer_init) {
		uv_timer_stop(&v->timer);
		v->timer.data = v;
		uv_close((uv_handle_t *)&v->timer, on_close);
		return;
	}
	xfree(v);
}

/* ---- the oldest AAR's results (RFC 8617 section 7.2: local policy) ---- */

/* one resinfo "method=result ..." of [p, e), comments removed: its method
 * and result into m and r (lowercased, truncated to their sizes) */
static void
resinfo_of(const char *p, const char *e, char *m, size_t ml, char *r, size_t rl)
{
	char tok[2][32] = {"", ""};
	size_t t = 0, tl = 0;
	int depth = 0;
	for (; p < e && t < 2; p++) {
		char c = *p;
		if (c == '(') {
			depth++;
			continue;
		}
		if (c == ')' && depth > 0) {
			depth--;
			continue;
		}
		if (depth > 0)
			continue;
		if (c == '=' && t == 0 && tl > 0) {
			t = 1;
			tl = 0;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			if (t == 1 && tl > 0)
				break; /* the result ended */
			continue;
		}
		if (tl + 1 < sizeof tok[t])
			tok[t][tl++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
	}
	snprintf(m, ml, "%s", tok[0]);
	snprintf(r, rl, "%s", tok[1]);
}

bool
arc_aar_passed(const char *p, size_t n)
{
	const char *e = p + n;
	int dmarc = -1; /* -1 none seen, 0 not pass, 1 pass */
	bool other = false;
	/* skip "i=N" and the authserv-id: the resinfos follow the second ';' */
	unsigned semi = 0;
	const char *q = p;
	while (q < e && semi < 2)
		if (*q++ == ';')
			semi++;
	while (q < e) {
		const char *end = memchr(q, ';', (size_t)(e - q));
		if (!end)
			end = e;
		char m[32], r[32];
		resinfo_of(q, end, m, sizeof m, r, sizeof r);
		if (strcmp(m, "dmarc") == 0)
			dmarc = dmarc == 1 || strcmp(r, "pass") == 0 ? 1 : 0;
		else if ((strcmp(m, "spf") == 0 || strcmp(m, "dkim") == 0) && strcmp(r, "pass") == 0)
			other = true;
		q = end < e ? end + 1 : e;
	}
	return dmarc >= 0 ? dmarc == 1 : other;
}

bool
arc_domain_listed(const char *d, char *const *list, size_t n)
{
	size_t dl = strlen(d);
	for (size_t i = 0; i < n; i++) {
		size_t tl = strlen(list[i]);
		if (dl == tl && strcasecmp(d, list[i]) == 0)
			return true;
		if (dl > tl && d[dl - tl - 1] == '.' && strcasecmp(d + dl - tl, list[i]) == 0)
			return true;
	}
	return false;
}

/* ---- sealing ---- */

int
arc_seal(const dkim_key_t *k, const char *domain, const char *selector, const char *authres,
    enum arc_result chain, const char *content, size_t len, time_t now, buf_t *out, buf_t *err)
{
	size_t hlen, boff;
	dkim_header_end(content, len, &hlen, &boff);
	dkim_field_t *f;
	size_t nf;
	dkim_fields_split(content, hlen, &f, &nf);
	unsigned n = 0;
	size_t aar[ARC_MAX_INSTANCES + 1] = {0}, ams[ARC_MAX_INSTANCES + 1] = {0},
	       as[ARC_MAX_INSTANCES + 1] = {0};
	for (size_t i = 0; i < nf; i++) {
		enum kind kd = kind_of(&f[i]);
		unsigned inst = kd == K_NONE ? 0 : arc_instance(&f[i]);
		if (!inst)
			continue;
		size_t *slot = kd == K_AAR ? &aar[inst] : kd == K_AMS ? &ams[inst] : &as[inst];
		if (!*slot)
			*slot = i + 1;
		if (inst > n)
			n = inst;
	}
	int rc = -1;
	buf_t set = BUF_INIT, amsf = BUF_INIT, sealf = BUF_INIT, data = BUF_INIT;
	const char *cv = "none";
	if (n > 0) {
		if (chain == ARC_NONE) {
			buf_puts(err, "ARC sets present but the chain was not verified");
			goto done;
		}
		cv = chain == ARC_PASS ? "pass" : "fail";
	}
	if (n >= ARC_MAX_INSTANCES) {
		buf_puts(err, "the ARC chain has 50 sets already");
		goto done;
	}
	unsigned inst = n + 1;
	/* AAR */
	buf_printf(&set, "ARC-Authentication-Results: i=%u; %s", inst, authres);
	char first[16];
	snprintf(first, sizeof first, "i=%u", inst);
	/* AMS over the message, as DKIM would sign it (DKIM-Signature too) */
	if (dkim_sign_field(k, "ARC-Message-Signature", first, domain, selector, content, len, now, true,
	    &amsf, err) < 0)
		goto done;
	/* AS over the sets 1..n (none when cv=fail) and ours */
	if (strcmp(cv, "fail") != 0) {
		for (unsigned j = 1; j <= n; j++) {
			if (!aar[j] || !ams[j] || !as[j])
				continue;
			const dkim_field_t *x[3] = {&f[aar[j] - 1], &f[ams[j] - 1], &f[as[j] - 1]};
			for (int t = 0; t < 3; t++) {
				dkim_canon_header(true, x[t]->p, x[t]->len, &data);
				buf_append(&data, "\r\n", 2);
			}
		}
	}
	dkim_canon_header(true, set.data, set.len, &data);
	buf_append(&data, "\r\n", 2);
	dkim_canon_header(true, amsf.data, amsf.len - 2, &data); /* without its CRLF */
	buf_append(&data, "\r\n", 2);
	buf_printf(&sealf, "ARC-Seal: i=%u; a=%s; cv=%s; d=%s; s=%s;\r\n\tt=%lld; b=", inst,
	    strcmp(dkim_key_type(k), "rsa") == 0 ? "rsa-sha256" : "ed25519-sha256", cv, domain, selector,
	    (long long)now);
	dkim_canon_header(true, sealf.data, sealf.len, &data);
	buf_t b64 = BUF_INIT;
	if (dkim_key_sign_b64(k, data.data, data.len, &b64, err) < 0) {
		buf_free(&b64);
		goto done;
	}
	size_t col = 11;
	for (size_t i = 0; i < b64.len;) {
		size_t take = b64.len - i < 76 - col ? b64.len - i : 76 - col;
		buf_append(&sealf, b64.data + i, take);
		i += take;
		if (i < b64.len) {
			buf_append(&sealf, "\r\n\t", 3);
			col = 1;
		}
	}
	buf_free(&b64);
	buf_append(&sealf, "\r\n", 2);
	buf_append(out, sealf.data, sealf.len);
	buf_append(out, amsf.data, amsf.len);
	buf_append(out, set.data, set.len);
	buf_append(out, "\r\n", 2);
	rc = 0;
done:
	xfree(f);
	buf_free(&set);
	buf_free(&amsf);
	buf_free(&sealf);
	buf_free(&data);
	return rc;
}
