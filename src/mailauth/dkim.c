/*
 * dkim.c - MAILAUTH: DKIM verification, RFC 6376 section 6, with RFC 8463
 * (ed25519-sha256) and RFC 8301 (no rsa-sha1, no RSA key under 1024 bits);
 * see dkim.h. The parsers and canonicalisation are dkim_canon.c, signing
 * is dkim_sign.c.
 *
 * The way of one message: dkim_verify_feed() collects the header section
 * (at most DKIM_MAX_HEADER octets; a larger one leaves every signature in
 * it unchecked: permerror) up to the empty line; there the DKIM-Signature
 * fields (the first max_sigs, top down) are parsed and each valid one gets
 * a SHA-256 context; every body octet after that goes through the simple
 * and/or relaxed canonicaliser once, and each canonical octet into the
 * hashes of the signatures using it, up to their l=. dkim_verify_finish()
 * compares each body hash with bh= (a mismatch is "fail" with no DNS
 * query), looks up the keys of the others (<s>._domainkey.<d> TXT, the
 * strings joined), all under one timer, then hashes the header fields of
 * h= (section 5.4.2: each name takes the last instance not yet used, a name
 * listed more often than present adds nothing) and the signature field
 * with b= emptied, and checks the signature with the key. That last step
 * (the public-key operation, tens of microseconds for RSA) runs on libuv's
 * thread pool once every key is in: one batch per message, its results
 * taken in the signatures' order (dkim_vbatch_run); the synchronous
 * finish (the CLI's table lookups) checks in place.
 *
 * Results (RFC 8601 section 2.7.1): pass; fail for a body hash or
 * signature that does not verify; neutral for a signature past its x= or
 * with t= in the future (beyond the skew): well formed but not usable now;
 * permerror for a signature or key record that cannot be used (syntax, a
 * missing tag, rsa-sha1, a key under 1024 bits, a revoked key, no key
 * record, an i= outside d=, t=s and a subdomain i=); temperror when the key
 * lookup fails temporarily or times out. A key record with t=y still gives
 * its result (RFC 6376 section 3.6.1 leaves the treatment to the verifier);
 * the result carries testing = true.
 *
 * Must not: block, call the callback from inside dkim_verify_finish(), or
 * touch the object after the callback (which may free it).
 */
#include "mailauth/dkim.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"
#include "mailauth/dkim_int.h"

#define DKIM_MAX_HEADER (256u * 1024)

typedef struct vsig {
	dkim_verify_t *v;
	size_t field;            /* index in v->fields */
	dkim_sig_t sig;
	enum dkim_result result;
	const char *reason;
	bool decided;
	bool testing;
	EVP_MD_CTX *body;        /* NULL once decided */
	uint64_t hashed;         /* body octets hashed so far (l=) */
	unsigned char bodyhash[32];
	bool have_bodyhash;
	dns_query_t *q;
	char *keyname;
	bool has_item;           /* check prepared, for the pool */
	dkim_vitem_t item;
	size_t item_ix;          /* its place in the batch */
} vsig_t;

struct dkim_verify {
	dkim_verify_opts_t o;
	buf_t hdr;
	size_t scan;          /* where to look on for the empty line */
	bool hdr_done;
	bool hdr_overflow;
	bool overflow_sig;    /* a DKIM-Signature was seen in the part kept */
	dkim_field_t *fields;
	size_t nfields;
	vsig_t *sigs;
	size_t nsigs;
	dkim_canon_t canon[2]; /* [0] simple, [1] relaxed */
	bool canon_used[2];
	/* finish */
	dkim_verify_cb cb;
	void *arg;
	uv_timer_t timer;
	bool timer_init;
	bool delivered;
	size_t pending;
	dkim_sig_result_t *res;
	uv_loop_t *loop;       /* set: the checks go to the thread pool */
	dkim_vbatch_t *batch;  /* in flight */
};

const char *
dkim_result_str(enum dkim_result r)
{
	switch (r) {
	case DKIM_NONE: return "none";
	case DKIM_PASS: return "pass";
	case DKIM_FAIL: return "fail";
	case DKIM_NEUTRAL: return "neutral";
	case DKIM_POLICY: return "policy";
	case DKIM_TEMPERROR: return "temperror";
	case DKIM_PERMERROR: return "permerror";
	}
	return "permerror";
}

dkim_verify_t *
dkim_verify_new(const dkim_verify_opts_t *o)
{
	dkim_verify_t *v = xcalloc(1, sizeof *v);
	if (o)
		v->o = *o;
	if (!v->o.max_sigs)
		v->o.max_sigs = 5;
	if (!v->o.skew_s)
		v->o.skew_s = 300;
	if (!v->o.timeout_ms)
		v->o.timeout_ms = 10000;
	return v;
}

static void
decide(vsig_t *s, enum dkim_result r, const char *why)
{
	if (s->decided)
		return;
	s->decided = true;
	s->result = r;
	s->reason = why;
	EVP_MD_CTX_free(s->body);
	s->body = NULL;
}

/* canonical body octets for every signature using this canonicalisation */
static void
sink(void *arg, const char *p, size_t n, bool relaxed)
{
	dkim_verify_t *v = arg;
	for (size_t i = 0; i < v->nsigs; i++) {
		vsig_t *s = &v->sigs[i];
		if (!s->body || s->sig.brelaxed != relaxed)
			continue;
		size_t take = n;
		if (s->sig.has_l && s->sig.l - s->hashed < take)
			take = (size_t)(s->sig.l - s->hashed);
		if (take) {
			EVP_DigestUpdate(s->body, p, take);
			s->hashed += take;
		}
	}
}

static void
sink_simple(void *arg, const char *p, size_t n)
{
	sink(arg, p, n, false);
}

static void
sink_relaxed(void *arg, const char *p, size_t n)
{
	sink(arg, p, n, true);
}

static bool
is_dkim_sig(const dkim_field_t *f)
{
	return dkim_field_is(f, "DKIM-Signature", 14);
}

/* The header section is complete: parse the signatures, start their hashes */
static void
header_done(dkim_verify_t *v)
{
	v->hdr_done = true;
	if (v->hdr_overflow)
		return;
	dkim_fields_split(v->hdr.data ? v->hdr.data : "", v->hdr.len, &v->fields, &v->nfields);
	size_t count = 0;
	for (size_t i = 0; i < v->nfields; i++)
		if (is_dkim_sig(&v->fields[i]))
			count++;
	if (count > v->o.max_sigs)
		count = v->o.max_sigs;
	v->sigs = count ? xcalloc(count, sizeof *v->sigs) : NULL;
	for (size_t i = 0; i < v->nfields && v->nsigs < count; i++) {
		const dkim_field_t *f = &v->fields[i];
		if (!is_dkim_sig(f))
			continue;
		vsig_t *s = &v->sigs[v->nsigs++];
		s->v = v;
		s->field = i;
		const char *val = (const char *)memchr(f->p, ':', f->len) + 1;
		size_t vl = f->len - (size_t)(val - f->p);
		enum dkim_result r;
		const char *why;
		if (dkim_sig_parse(val, vl, &s->sig, &r, &why) < 0) {
			decide(s, r, why);
			continue;
		}
		s->body = EVP_MD_CTX_new();
		if (!s->body || EVP_DigestInit_ex(s->body, EVP_sha256(), NULL) != 1) {
			decide(s, DKIM_TEMPERROR, "out of memory");
			continue;
		}
		v->canon_used[s->sig.brelaxed] = true;
	}
	dkim_canon_init(&v->canon[0], false, sink_simple, v);
	dkim_canon_init(&v->canon[1], true, sink_relaxed, v);
}

static void
body(dkim_verify_t *v, const char *p, size_t n)
{
	for (int k = 0; k < 2; k++)
		if (v->canon_used[k])
			dkim_canon_body(&v->canon[k], p, n);
}

/* the end of the header section: "\r\n\r\n", or "\r\n" at the very start */
static const char *
find_end(const dkim_verify_t *v)
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
dkim_verify_feed(dkim_verify_t *v, const char *p, size_t n)
{
	if (v->cb || n == 0)
		return;
	if (v->hdr_done) {
		body(v, p, n);
		return;
	}
	size_t room = DKIM_MAX_HEADER + 4 - v->hdr.len;
	size_t take = n < room ? n : room;
	size_t old = v->hdr.len;
	buf_append(&v->hdr, p, take);
	const char *end = find_end(v);
	if (!end) {
		v->scan = v->hdr.len >= 3 ? v->hdr.len - 3 : 0;
		if (v->hdr.len >= DKIM_MAX_HEADER + 4) {
			v->hdr_overflow = true;
			/* a DKIM-Signature in what was kept cannot be checked */
			for (size_t i = 0; i + 15 <= v->hdr.len; i++)
				if ((i == 0 || v->hdr.data[i - 1] == '\n') &&
				    strncasecmp(v->hdr.data + i, "DKIM-Signature:", 15) == 0)
					v->overflow_sig = true;
			buf_free(&v->hdr);
			v->hdr_done = true;
		}
		return;
	}
	/* the fields end at end (which points at the CRLF of the empty line) */
	size_t hlen = (size_t)(end - v->hdr.data);
	size_t body_off = hlen + 2; /* in hdr */
	v->hdr.len = hlen;
	v->hdr.data[hlen] = '\0';
	header_done(v);
	/* what this piece held beyond the empty line is body */
	size_t used = body_off - old;
	if (used < n)
		body(v, p + used, n - used);
}

/* ---- finish ---- */

static void deliver(dkim_verify_t *v);

static void
on_close(uv_handle_t *h)
{
	xfree(h->data);
}

/* k's key over data: now, or (with a loop) prepared for the pool, which
 * takes k's key and data over */
static void
check_sig(vsig_t *s, dkim_keyrec_t *k)
{
	dkim_verify_t *v = s->v;
	if (k->rsa != (s->sig.alg == DKIM_ALG_RSA_SHA256)) {
		decide(s, DKIM_PERMERROR, "key type (k=) does not match a=");
		return;
	}
	if (k->strict) {
		const char *at = strrchr(s->sig.i, '@');
		if (at && strcasecmp(at + 1, s->sig.d) != 0) {
			decide(s, DKIM_PERMERROR, "key is for d= only (t=s) but i= is a subdomain");
			return;
		}
	}
	/* section 5.4.2: the fields of h= bottom up, then this signature with
	 * an empty b= and no CRLF */
	buf_t data = BUF_INIT;
	bool *used = xcalloc(v->nfields ? v->nfields : 1, sizeof *used);
	for (size_t i = 0; i < s->sig.nh; i++) {
		const char *name = s->sig.h[i];
		size_t nl = strlen(name);
		for (size_t j = v->nfields; j-- > 0;) {
			if (used[j] || !dkim_field_is(&v->fields[j], name, nl))
				continue;
			used[j] = true;
			dkim_canon_header(s->sig.hrelaxed, v->fields[j].p, v->fields[j].len, &data);
			buf_append(&data, "\r\n", 2);
			break;
		}
	}
	xfree(used);
	const dkim_field_t *f = &v->fields[s->field];
	const char *val = (const char *)memchr(f->p, ':', f->len) + 1;
	size_t voff = (size_t)(val - f->p);
	buf_t self = BUF_INIT;
	buf_append(&self, f->p, voff + s->sig.b_start);
	buf_append(&self, f->p + voff + s->sig.b_end, f->len - voff - s->sig.b_end);
	dkim_canon_header(s->sig.hrelaxed, self.data, self.len, &data);
	buf_free(&self);

	if (v->loop) {
		s->has_item = true;
		s->item.k = *k;
		memset(&k->p, 0, sizeof k->p);
		s->item.alg = s->sig.alg;
		s->item.data = data;
		buf_append(&s->item.sig, s->sig.b.data, s->sig.b.len);
		return;
	}
	const char *why;
	enum dkim_result r = dkim_keyrec_verify(k, s->sig.alg, data.data, data.len, &s->sig.b, &why);
	buf_free(&data);
	decide(s, r, why);
}

/* Decoded RSA public keys, by their DER octets. OpenSSL 3 takes about
 * 150 us of CPU to decode one (its decoder machinery), six times the
 * verification itself, and a busy MX sees the same few keys over and over
 * (docs/PERFORMANCE.md, "Mail authentication"). The same octets are the
 * same key whatever the record's TTL, so nothing goes stale: the record is
 * still looked up for every signature (revocation, t=, k=). A few entries,
 * replaced in turn; shared by the loops' threads, hence the lock. */
#define PKCACHE_N 16
static struct {
	unsigned char *der;
	size_t len;
	EVP_PKEY *pk;
} pkcache[PKCACHE_N];
static unsigned pkcache_next;
static pthread_mutex_t pkcache_mu = PTHREAD_MUTEX_INITIALIZER;

/* a reference to the cached key of these octets, or NULL */
static EVP_PKEY *
pkcache_get(const char *der, size_t len)
{
	EVP_PKEY *pk = NULL;
	pthread_mutex_lock(&pkcache_mu);
	for (unsigned i = 0; i < PKCACHE_N; i++) {
		if (pkcache[i].pk && pkcache[i].len == len && memcmp(pkcache[i].der, der, len) == 0) {
			if (EVP_PKEY_up_ref(pkcache[i].pk) == 1)
				pk = pkcache[i].pk;
			break;
		}
	}
	pthread_mutex_unlock(&pkcache_mu);
	return pk;
}

/* keep pk (a usable RSA key decoded from these octets) for next time */
static void
pkcache_put(const char *der, size_t len, EVP_PKEY *pk)
{
	if (len == 0 || EVP_PKEY_up_ref(pk) != 1)
		return;
	unsigned char *copy = xmalloc(len);
	memcpy(copy, der, len);
	pthread_mutex_lock(&pkcache_mu);
	unsigned i = pkcache_next++ % PKCACHE_N;
	EVP_PKEY *old = pkcache[i].pk;
	unsigned char *old_der = pkcache[i].der;
	pkcache[i].der = copy;
	pkcache[i].len = len;
	pkcache[i].pk = pk;
	pthread_mutex_unlock(&pkcache_mu);
	EVP_PKEY_free(old);
	xfree(old_der);
}

enum dkim_result
dkim_keyrec_verify(const dkim_keyrec_t *k, enum dkim_alg alg, const char *data, size_t len,
    const buf_t *sig, const char **why)
{
	if (k->rsa != (alg == DKIM_ALG_RSA_SHA256)) {
		*why = "key type (k=) does not match a=";
		return DKIM_PERMERROR;
	}
	EVP_PKEY *pk = NULL;
	if (k->rsa && (pk = pkcache_get(k->p.data, k->p.len)) != NULL) {
		/* decoded and checked before */
	} else if (k->rsa) {
		const unsigned char *q = (const unsigned char *)k->p.data;
		pk = d2i_PUBKEY(NULL, &q, (long)k->p.len);
		if (!pk) {
			q = (const unsigned char *)k->p.data;
			pk = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)k->p.len);
		}
		if (pk && EVP_PKEY_get_base_id(pk) != EVP_PKEY_RSA) {
			EVP_PKEY_free(pk);
			pk = NULL;
		}
		if (pk && EVP_PKEY_get_bits(pk) < 1024) {
			EVP_PKEY_free(pk);
			*why = "RSA key under 1024 bits (RFC 8301)";
			return DKIM_PERMERROR;
		}
		if (pk)
			pkcache_put(k->p.data, k->p.len, pk);
	} else if (k->p.len == 32) {
		pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, (const unsigned char *)k->p.data,
		    32);
	}
	if (!pk) {
		ERR_clear_error();
		*why = "key record: unusable public key";
		return DKIM_PERMERROR;
	}
	int ok = 0;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (md) {
		if (k->rsa) {
			ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pk) == 1 &&
			    EVP_DigestVerify(md, (const unsigned char *)sig->data, sig->len,
				(const unsigned char *)data, len) == 1;
		} else {
			/* RFC 8463 section 3: Ed25519 over the SHA-256 hash */
			unsigned char hash[32];
			unsigned hl = 0;
			ok = EVP_Digest(data, len, hash, &hl, EVP_sha256(), NULL) == 1 &&
			    EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1 &&
			    EVP_DigestVerify(md, (const unsigned char *)sig->data, sig->len, hash,
				sizeof hash) == 1;
		}
	}
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pk);
	ERR_clear_error();
	*why = ok ? "" : "signature did not verify";
	return ok ? DKIM_PASS : DKIM_FAIL;
}

enum dns_status
dkim_key_txt(const dns_result_t *r, buf_t *txt)
{
	if (r->status == DNS_BOGUS)
		return DNS_TEMPFAIL;
	if (r->status != DNS_OK)
		return r->status;
	for (size_t i = 0; i < r->n; i++)
		if (dns_txt_join(r->rr[i].rdata, r->rr[i].rdlen, txt) == 0)
			return DNS_OK;
	return DNS_NODATA;
}

int
dkim_key_get(enum dns_status st, const buf_t *txt, dkim_keyrec_t *k, enum dkim_result *res,
    const char **why)
{
	memset(k, 0, sizeof *k);
	*res = DKIM_PERMERROR;
	if (st == DNS_NXDOMAIN || st == DNS_NODATA) {
		*why = "no key record";
		return -1;
	}
	if (st != DNS_OK || !txt) {
		*res = DKIM_TEMPERROR;
		*why = "key lookup failed";
		return -1;
	}
	if (dkim_keyrec_parse(txt->data ? txt->data : "", txt->len, k, why) < 0)
		return -1;
	if (k->revoked) {
		*why = "key revoked";
		return 1;
	}
	return 0;
}

/* a key lookup's answer for s */
static void
key_answer(vsig_t *s, enum dns_status st, const buf_t *txt)
{
	dkim_keyrec_t k;
	enum dkim_result res;
	const char *why;
	int rc = dkim_key_get(st, txt, &k, &res, &why);
	if (rc >= 0)
		s->testing = k.testing; /* parsed (revoked or not) */
	if (rc == 0)
		check_sig(s, &k);
	else
		decide(s, res, why);
	dkim_keyrec_clear(&k);
}

/* The body is complete: each signature's body hash against bh=, and the
 * time checks; what remains needs its key */
static void
body_done(dkim_verify_t *v)
{
	if (!v->hdr_done)
		header_done(v);
	for (int k = 0; k < 2; k++)
		if (v->canon_used[k])
			dkim_canon_end(&v->canon[k]);
	int64_t now = v->o.now ? (int64_t)v->o.now : (int64_t)time(NULL);
	int64_t skew = v->o.skew_s;
	for (size_t i = 0; i < v->nsigs; i++) {
		vsig_t *s = &v->sigs[i];
		if (s->decided)
			continue;
		unsigned hl = 0;
		EVP_DigestFinal_ex(s->body, s->bodyhash, &hl);
		s->have_bodyhash = true;
		EVP_MD_CTX_free(s->body);
		s->body = NULL;
		if (s->sig.has_x && s->sig.x < now - skew) {
			decide(s, DKIM_NEUTRAL, "signature expired (x=)");
			continue;
		}
		if (s->sig.has_t && s->sig.t > now + skew) {
			decide(s, DKIM_NEUTRAL, "signature timestamp in the future (t=)");
			continue;
		}
		if (s->sig.has_l && s->hashed < s->sig.l) {
			decide(s, DKIM_FAIL, "body shorter than l=");
			continue;
		}
		if (memcmp(s->bodyhash, s->sig.bh.data, 32) != 0) {
			decide(s, DKIM_FAIL, "body hash mismatch");
			continue;
		}
		s->keyname = xasprintf("%s._domainkey.%s", s->sig.s, s->sig.d);
	}
}

static void
on_key(void *arg, const dns_result_t *r)
{
	vsig_t *s = arg;
	dkim_verify_t *v = s->v;
	s->q = NULL;
	buf_t txt = BUF_INIT;
	enum dns_status st = dkim_key_txt(r, &txt);
	key_answer(s, st, &txt);
	buf_free(&txt);
	if (--v->pending == 0)
		deliver(v);
}

static void
on_timer(uv_timer_t *t)
{
	dkim_verify_t *v = t->data;
	for (size_t i = 0; i < v->nsigs; i++) {
		vsig_t *s = &v->sigs[i];
		if (s->q) {
			dns_cancel(s->q);
			s->q = NULL;
			decide(s, DKIM_TEMPERROR, "key lookup timed out");
		}
	}
	v->pending = 0;
	deliver(v);
}

static void
build_results(dkim_verify_t *v)
{
	if (v->res || !v->nsigs)
		return;
	v->res = xcalloc(v->nsigs, sizeof *v->res);
	for (size_t i = 0; i < v->nsigs; i++) {
		vsig_t *s = &v->sigs[i];
		dkim_sig_result_t *r = &v->res[i];
		r->result = s->decided ? s->result : DKIM_PERMERROR;
		r->d = s->sig.d;
		r->i = s->sig.i;
		r->s = s->sig.s;
		r->a = s->sig.a;
		r->b = s->sig.b8;
		r->reason = s->decided ? s->reason : "not checked";
		r->testing = s->testing;
	}
}

static void
deliver_now(dkim_verify_t *v)
{
	v->delivered = true;
	size_t n = v->nsigs;
	static const dkim_sig_result_t overflow = {DKIM_PERMERROR, "", "", "", "", "",
	    "header section too large to check", false};
	if (v->hdr_overflow) {
		v->cb(v->arg, v->overflow_sig ? &overflow : NULL, v->overflow_sig ? 1 : 0);
		return;
	}
	build_results(v);
	v->cb(v->arg, v->res, n); /* may free v */
}

/* the pool's results, in the signatures' order */
static void
batch_done(void *arg, const dkim_vitem_t *items, size_t n)
{
	dkim_verify_t *v = arg;
	v->batch = NULL;
	for (size_t i = 0; i < v->nsigs; i++) {
		vsig_t *s = &v->sigs[i];
		if (s->item_ix < n && !s->decided)
			decide(s, items[s->item_ix].r, items[s->item_ix].why);
	}
	deliver_now(v);
}

static void
deliver(dkim_verify_t *v)
{
	if (v->delivered || v->batch)
		return;
	if (v->timer_init)
		uv_timer_stop(&v->timer);
	size_t n = 0;
	for (size_t i = 0; i < v->nsigs; i++)
		n += v->sigs[i].has_item;
	if (n == 0) {
		deliver_now(v);
		return;
	}
	dkim_vitem_t *items = xcalloc(n, sizeof *items);
	n = 0;
	for (size_t i = 0; i < v->nsigs; i++) {
		vsig_t *s = &v->sigs[i];
		s->item_ix = SIZE_MAX;
		if (!s->has_item)
			continue;
		s->item_ix = n;
		items[n++] = s->item;
		s->has_item = false;
		memset(&s->item, 0, sizeof s->item);
	}
	v->batch = dkim_vbatch_run(v->loop, items, n, 0, batch_done, v);
}

void
dkim_verify_finish(dkim_verify_t *v, dns_t *dns, dkim_verify_cb cb, void *arg)
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
	for (size_t i = 0; i < v->nsigs; i++) {
		vsig_t *s = &v->sigs[i];
		if (s->decided)
			continue;
		v->pending++;
		s->q = dns_query(dns, s->keyname, DNS_T_TXT, on_key, s);
	}
	/* with no lookup, the timer delivers on the next loop iteration */
	uv_timer_start(&v->timer, on_timer, v->pending ? v->o.timeout_ms : 0, 0);
}

void
dkim_verify_finish_sync(dkim_verify_t *v, dkim_key_lookup_fn lookup, void *larg,
    dkim_verify_cb cb, void *arg)
{
	if (v->cb)
		return;
	v->cb = cb;
	v->arg = arg;
	body_done(v);
	for (size_t i = 0; i < v->nsigs; i++) {
		vsig_t *s = &v->sigs[i];
		if (s->decided)
			continue;
		buf_t txt = BUF_INIT;
		enum dns_status st = lookup(larg, s->keyname, &txt);
		key_answer(s, st, &txt);
		buf_free(&txt);
	}
	deliver(v);
}

const unsigned char *
dkim_verify_body_hash(const dkim_verify_t *v, size_t i)
{
	return i < v->nsigs && v->sigs[i].have_bodyhash ? v->sigs[i].bodyhash : NULL;
}

void
dkim_verify_free(dkim_verify_t *v)
{
	if (!v)
		return;
	dkim_vbatch_cancel(v->batch);
	for (size_t i = 0; i < v->nsigs; i++) {
		vsig_t *s = &v->sigs[i];
		dns_cancel(s->q);
		EVP_MD_CTX_free(s->body);
		dkim_sig_clear(&s->sig);
		xfree(s->keyname);
		if (s->has_item) {
			dkim_keyrec_clear(&s->item.k);
			buf_free(&s->item.data);
			buf_free(&s->item.sig);
		}
	}
	xfree(v->sigs);
	xfree(v->fields);
	xfree(v->res);
	buf_free(&v->hdr);
	if (v->timer_init) {
		uv_timer_stop(&v->timer);
		v->timer.data = v;
		uv_close((uv_handle_t *)&v->timer, on_close);
		return;
	}
	xfree(v);
}

/* ---- the public-key checks on the thread pool ----
 *
 * RSA-2048 verification costs tens of microseconds and ARC chains carry
 * several signatures: done on the loop thread, they made it the
 * bottleneck with every check on (docs/PERFORMANCE.md, "Mail
 * authentication"). The loop prepares each check (the key record parsed,
 * the header data canonicalised: cheap) and hands the batch to a worker;
 * the results come back on the loop in the items' order. */

struct dkim_vbatch {
	uv_work_t w;
	uv_timer_t *t; /* no worker: the callback from a zero timer */
	dkim_vitem_t *items;
	size_t n;
	size_t nstop;
	bool cancelled;
	dkim_vbatch_cb cb;
	void *arg;
};

void
dkim_vitems_verify(dkim_vitem_t *items, size_t n, size_t nstop)
{
	bool stop = false;
	for (size_t i = 0; i < n; i++) {
		dkim_vitem_t *it = &items[i];
		if (stop) {
			it->r = DKIM_NONE;
			it->why = "not checked";
			continue;
		}
		it->r = dkim_keyrec_verify(&it->k, it->alg, it->data.data ? it->data.data : "",
		    it->data.len, &it->sig, &it->why);
		if (i < nstop && it->r != DKIM_PASS)
			stop = true;
	}
}

void
dkim_vitems_free(dkim_vitem_t *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		dkim_keyrec_clear(&items[i].k);
		buf_free(&items[i].data);
		buf_free(&items[i].sig);
	}
	xfree(items);
}

static void
vbatch_finish(dkim_vbatch_t *b)
{
	if (!b->cancelled)
		b->cb(b->arg, b->items, b->n);
	dkim_vitems_free(b->items, b->n);
	xfree(b);
}

static void
vbatch_work(uv_work_t *w)
{
	dkim_vbatch_t *b = w->data;
	dkim_vitems_verify(b->items, b->n, b->nstop);
}

static void
vbatch_after(uv_work_t *w, int status)
{
	(void)status;
	vbatch_finish(w->data);
}

static void
vbatch_timer_closed(uv_handle_t *h)
{
	dkim_vbatch_t *b = h->data;
	xfree(h);
	vbatch_finish(b);
}

static void
vbatch_timer(uv_timer_t *t)
{
	uv_close((uv_handle_t *)t, vbatch_timer_closed);
}

dkim_vbatch_t *
dkim_vbatch_run(uv_loop_t *loop, dkim_vitem_t *items, size_t n, size_t nstop,
    dkim_vbatch_cb cb, void *arg)
{
	dkim_vbatch_t *b = xcalloc(1, sizeof *b);
	b->items = items;
	b->n = n;
	b->nstop = nstop;
	b->cb = cb;
	b->arg = arg;
	b->w.data = b;
	if (uv_queue_work(loop, &b->w, vbatch_work, vbatch_after) == 0)
		return b;
	dkim_vitems_verify(items, n, nstop);
	b->t = xmalloc(sizeof *b->t);
	uv_timer_init(loop, b->t);
	b->t->data = b;
	uv_timer_start(b->t, vbatch_timer, 0, 0);
	return b;
}

void
dkim_vbatch_cancel(dkim_vbatch_t *b)
{
	if (b)
		b->cancelled = true;
}
