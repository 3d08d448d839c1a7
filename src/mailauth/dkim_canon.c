/*
 * dkim_canon.c - MAILAUTH: DKIM's parsers and canonicalisation (see
 * dkim_int.h): tag lists (RFC 6376 section 3.2), base64, header fields,
 * the simple and relaxed algorithms (section 3.4), DKIM-Signature fields
 * (section 3.5) and key records (section 3.6.1).
 *
 * Guarantees: no input length is trusted; the body canonicaliser gives the
 * same output for any split of its input (empty lines are held back as a
 * count, a CR at the end of a piece is judged with the next piece), so the
 * body hash can be computed while DATA streams in. Must not: touch the
 * network, the clock or any shared state.
 */
#include "mailauth/dkim_int.h"

#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* FWS as the tag grammar allows it: WSP, and the CRLF of a folded line */
static bool
is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ---- tag lists ---- */

int
dkim_tags_parse(const char *p, size_t n, dkim_tag_t *tags, size_t max, size_t *ntags,
    const char **why)
{
	size_t i = 0, k = 0;
	*ntags = 0;
	for (;;) {
		while (i < n && is_fws(p[i]))
			i++;
		if (i == n)
			break; /* the end, possibly after a trailing ';' */
		if (!is_alpha(p[i])) {
			*why = "tag list: a tag name must start with a letter";
			return -1;
		}
		size_t ns = i;
		while (i < n && (is_alpha(p[i]) || is_digit(p[i]) || p[i] == '_'))
			i++;
		size_t ne = i;
		while (i < n && is_fws(p[i]))
			i++;
		if (i == n || p[i] != '=') {
			*why = "tag list: a tag without '='";
			return -1;
		}
		i++;
		size_t raw = i;
		while (i < n && is_fws(p[i]))
			i++;
		size_t vs = i, ve = i;
		while (i < n && p[i] != ';') {
			unsigned char c = (unsigned char)p[i];
			if (!is_fws(p[i])) {
				if (c < 0x21 || c > 0x7e) {
					*why = "tag list: a character not allowed in a tag value";
					return -1;
				}
				ve = i + 1;
			}
			i++;
		}
		if (k == max) {
			*why = "tag list: too many tags";
			return -1;
		}
		for (size_t j = 0; j < k; j++) {
			if (tags[j].nlen == ne - ns && memcmp(tags[j].name, p + ns, ne - ns) == 0) {
				*why = "tag list: a tag appears twice";
				return -1;
			}
		}
		tags[k].name = p + ns;
		tags[k].nlen = ne - ns;
		tags[k].val = p + vs;
		tags[k].vlen = ve - vs;
		tags[k].raw_start = raw;
		tags[k].raw_end = i;
		k++;
		if (i == n)
			break;
		i++; /* ';' */
	}
	*ntags = k;
	return 0;
}

const dkim_tag_t *
dkim_tag_get(const dkim_tag_t *tags, size_t n, const char *name)
{
	size_t l = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (tags[i].nlen == l && memcmp(tags[i].name, name, l) == 0)
			return &tags[i];
	return NULL;
}

static bool
tag_is(const dkim_tag_t *t, const char *s)
{
	size_t l = strlen(s);
	return t->vlen == l && strncasecmp(t->val, s, l) == 0;
}

/* ---- base64 ---- */

static int
b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
dkim_base64_decode(const char *p, size_t n, buf_t *out)
{
	size_t start = out->len, count = 0, pad = 0;
	uint32_t acc = 0;
	for (size_t i = 0; i < n; i++) {
		if (is_fws(p[i]))
			continue;
		if (p[i] == '=') {
			if (++pad > 2)
				goto bad;
			count++;
			continue;
		}
		int v = b64val(p[i]);
		if (v < 0 || pad)
			goto bad;
		acc = (acc << 6) | (uint32_t)v;
		count++;
		if (count % 4 == 0) {
			unsigned char o[3] = {(unsigned char)(acc >> 16), (unsigned char)(acc >> 8),
			    (unsigned char)acc};
			buf_append(out, o, 3);
			acc = 0;
		}
	}
	if (count % 4 != 0)
		goto bad;
	if (pad) {
		/* the last quad held 4 - pad characters: acc has them */
		size_t bits = (4 - pad) * 6;
		acc <<= 24 - bits;
		if (pad == 1) {
			unsigned char o[2] = {(unsigned char)(acc >> 16), (unsigned char)(acc >> 8)};
			buf_append(out, o, 2);
		} else {
			unsigned char o[1] = {(unsigned char)(acc >> 16)};
			buf_append(out, o, 1);
		}
	}
	return 0;
bad:
	out->len = start;
	if (out->data)
		out->data[start] = '\0';
	return -1;
}

void
dkim_base64_encode(const unsigned char *p, size_t n, buf_t *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i = 0;
	buf_reserve(out, (n + 2) / 3 * 4);
	for (; i + 3 <= n; i += 3) {
		uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
		char o[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
		buf_append(out, o, 4);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		char o[4] = {tab[v >> 18], tab[(v >> 12) & 63], '=', '='};
		buf_append(out, o, 4);
	} else if (n - i == 2) {
		uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8);
		char o[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], '='};
		buf_append(out, o, 4);
	}
}

/* ---- header fields ---- */

void
dkim_fields_split(const char *p, size_t n, dkim_field_t **out, size_t *nout)
{
	size_t cap = 16, k = 0;
	dkim_field_t *f = xmalloc(cap * sizeof *f);
	size_t i = 0;
	while (i < n) {
		/* one field: its first line and every line that starts with WSP */
		size_t start = i, end;
		for (;;) {
			const char *nl = memchr(p + i, '\n', n - i);
			if (!nl) {
				end = n;
				i = n;
				break;
			}
			size_t lf = (size_t)(nl - p);
			end = lf > start && p[lf - 1] == '\r' ? lf - 1 : lf;
			i = lf + 1;
			if (i >= n || !is_wsp(p[i]))
				break;
		}
		if (k == cap) {
			cap *= 2;
			f = xrealloc(f, cap * sizeof *f);
		}
		f[k].p = p + start;
		f[k].len = end - start;
		const char *colon = memchr(p + start, ':', end - start);
		size_t nl = 0;
		if (colon) {
			nl = (size_t)(colon - (p + start));
			while (nl > 0 && is_wsp(p[start + nl - 1]))
				nl--;
		}
		f[k].nlen = nl;
		k++;
	}
	*out = f;
	*nout = k;
}

bool
dkim_field_is(const dkim_field_t *f, const char *name, size_t nlen)
{
	return f->nlen == nlen && nlen > 0 && strncasecmp(f->p, name, nlen) == 0;
}

void
dkim_canon_header(bool relaxed, const char *p, size_t n, buf_t *out)
{
	if (!relaxed) {
		buf_append(out, p, n);
		return;
	}
	const char *colon = memchr(p, ':', n);
	size_t nl = colon ? (size_t)(colon - p) : n;
	size_t ne = nl;
	while (ne > 0 && is_wsp(p[ne - 1]))
		ne--;
	buf_reserve(out, n + 1);
	for (size_t i = 0; i < ne; i++)
		buf_putc(out, lower(p[i]));
	if (!colon)
		return;
	buf_putc(out, ':');
	/* the value unfolded, WSP runs as one SP, none at either end */
	bool sp = false, started = false;
	for (size_t i = nl + 1; i < n; i++) {
		char c = p[i];
		if (c == '\r' || c == '\n')
			continue;
		if (is_wsp(c)) {
			sp = true;
			continue;
		}
		if (sp && started)
			buf_putc(out, ' ');
		sp = false;
		started = true;
		buf_putc(out, c);
	}
}

/* ---- body ---- */

void
dkim_canon_init(dkim_canon_t *c, bool relaxed, dkim_sink_fn sink, void *arg)
{
	memset(c, 0, sizeof *c);
	c->relaxed = relaxed;
	c->sink = sink;
	c->arg = arg;
}

static void
out_flush(dkim_canon_t *c)
{
	if (c->olen) {
		c->sink(c->arg, c->out, c->olen);
		c->olen = 0;
	}
}

static void
out_byte(dkim_canon_t *c, char b)
{
	if (c->olen == sizeof c->out)
		out_flush(c);
	c->out[c->olen++] = b;
	c->any = true;
}

/* a content byte: the empty lines held back were not at the end after all */
static void
content(dkim_canon_t *c, char b)
{
	for (; c->crlfs > 0; c->crlfs--) {
		out_byte(c, '\r');
		out_byte(c, '\n');
	}
	if (c->wsp) {
		out_byte(c, ' ');
		c->wsp = false;
	}
	out_byte(c, b);
	c->nonempty = true;
}

void
dkim_canon_body(dkim_canon_t *c, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char b = p[i];
		if (c->cr) {
			c->cr = false;
			if (b == '\n') {
				/* the end of a line: its white space at the end goes
				 * (relaxed), an empty line is held back */
				c->wsp = false;
				if (c->nonempty) {
					out_byte(c, '\r');
					out_byte(c, '\n');
				} else {
					c->crlfs++;
				}
				c->nonempty = false;
				continue;
			}
			content(c, '\r');
		}
		if (b == '\r') {
			c->cr = true;
		} else if (c->relaxed && is_wsp(b)) {
			c->wsp = true;
		} else {
			content(c, b);
		}
	}
	out_flush(c);
}

void
dkim_canon_end(dkim_canon_t *c)
{
	if (c->cr) {
		c->cr = false;
		content(c, '\r');
	}
	/* a last line without CRLF gets one; empty lines at the end go;
	 * simple: an empty body is one CRLF, relaxed: nothing (RFC 6376 3.4.3,
	 * 3.4.4 and erratum 3921) */
	if (c->nonempty || (!c->relaxed && !c->any)) {
		out_byte(c, '\r');
		out_byte(c, '\n');
	}
	c->nonempty = false;
	c->crlfs = 0;
	c->wsp = false;
	out_flush(c);
}

/* ---- DKIM-Signature ---- */

static bool
copy_tag(char *dst, size_t cap, const dkim_tag_t *t)
{
	if (t->vlen >= cap)
		return false;
	memcpy(dst, t->val, t->vlen);
	dst[t->vlen] = '\0';
	return true;
}

/* a domain name or selector as DNS labels: letters, digits, '-', '_',
 * dots between non-empty labels */
bool
dkim_name_ok(const char *s)
{
	size_t label = 0, total = 0;
	for (; *s; s++, total++) {
		char c = *s;
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && total < 254;
}

/* a decimal number of up to 76 digits (section 3.5 l=, t=, x=); a value
 * beyond what fits saturates */
static bool
parse_uint(const dkim_tag_t *t, uint64_t *out)
{
	if (t->vlen == 0 || t->vlen > 76)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < t->vlen; i++) {
		if (!is_digit(t->val[i]))
			return false;
		unsigned d = (unsigned)(t->val[i] - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*out = v;
	return true;
}

/* does the colon-separated list (FWS around items) hold item? */
static bool
list_has(const char *p, size_t n, const char *item)
{
	size_t il = strlen(item), i = 0;
	while (i <= n) {
		size_t s = i;
		while (i < n && p[i] != ':')
			i++;
		size_t e = i;
		while (s < e && is_fws(p[s]))
			s++;
		while (e > s && is_fws(p[e - 1]))
			e--;
		if (e - s == il && strncasecmp(p + s, item, il) == 0)
			return true;
		i++;
	}
	return false;
}

static int
parse_h(dkim_sig_t *s, const dkim_tag_t *t, bool need_from, const char **why)
{
	const char *p = t->val;
	size_t n = t->vlen, i = 0;
	bool from = false;
	while (i <= n) {
		size_t st = i;
		while (i < n && p[i] != ':')
			i++;
		size_t e = i;
		while (st < e && is_fws(p[st]))
			st++;
		while (e > st && is_fws(p[e - 1]))
			e--;
		if (e == st) {
			*why = "h= has an empty field name";
			return -1;
		}
		for (size_t k = st; k < e; k++) {
			unsigned char c = (unsigned char)p[k];
			if (c <= 0x20 || c >= 0x7f) {
				*why = "h= has a bad field name";
				return -1;
			}
		}
		if (s->nh == DKIM_MAX_H) {
			*why = "h= lists too many fields";
			return -1;
		}
		char *name = xstrndup(p + st, e - st);
		for (char *q = name; *q; q++)
			*q = lower(*q);
		if (strcmp(name, "from") == 0)
			from = true;
		s->h = xrealloc(s->h, (s->nh + 1) * sizeof *s->h);
		s->h[s->nh++] = name;
		i++;
	}
	if (!from && need_from) {
		*why = "h= does not include From";
		return -1;
	}
	return 0;
}

void
dkim_sig_clear(dkim_sig_t *s)
{
	buf_free(&s->b);
	buf_free(&s->bh);
	for (size_t i = 0; i < s->nh; i++)
		xfree(s->h[i]);
	xfree(s->h);
	s->h = NULL;
	s->nh = 0;
}

int
dkim_sig_parse(const char *p, size_t n, dkim_sig_t *s, enum dkim_result *res, const char **why)
{
	return dkim_sig_parse_kind(p, n, DKIM_KIND_SIG, s, res, why);
}

/* ARC's i=: 1..50 */
static bool
parse_instance(const dkim_tag_t *t, unsigned *out)
{
	uint64_t v;
	if (!parse_uint(t, &v) || v < 1 || v > 50)
		return false;
	*out = (unsigned)v;
	return true;
}

int
dkim_sig_parse_kind(const char *p, size_t n, enum dkim_sig_kind kind, dkim_sig_t *s,
    enum dkim_result *res, const char **why)
{
	dkim_tag_t tags[DKIM_MAX_TAGS];
	size_t nt;
	memset(s, 0, sizeof *s);
	*res = DKIM_PERMERROR;
	if (dkim_tags_parse(p, n, tags, DKIM_MAX_TAGS, &nt, why) < 0)
		return -1;
	const dkim_tag_t *v = dkim_tag_get(tags, nt, "v"), *a = dkim_tag_get(tags, nt, "a"),
			 *b = dkim_tag_get(tags, nt, "b"), *bh = dkim_tag_get(tags, nt, "bh"),
			 *d = dkim_tag_get(tags, nt, "d"), *h = dkim_tag_get(tags, nt, "h"),
			 *sel = dkim_tag_get(tags, nt, "s");
	/* what the result line names, as far as it can be read */
	if (d && copy_tag(s->d, sizeof s->d, d))
		for (char *q = s->d; *q; q++)
			*q = lower(*q);
	if (sel)
		copy_tag(s->s, sizeof s->s, sel);
	if (a)
		copy_tag(s->a, sizeof s->a, a);
	if (b) {
		size_t k = 0;
		for (size_t i = 0; i < b->vlen && k < 8; i++)
			if (!is_fws(b->val[i]))
				s->b8[k++] = b->val[i];
		s->b8[k] = '\0';
	}
	const dkim_tag_t *i = dkim_tag_get(tags, nt, "i");
	if (kind == DKIM_KIND_SIG && !v) {
		*why = "missing v= tag";
		return -1;
	}
	if (kind != DKIM_KIND_SIG && !i) {
		*why = "missing i= tag";
		return -1;
	}
	if (kind == DKIM_KIND_AS) {
		const dkim_tag_t *cv = dkim_tag_get(tags, nt, "cv");
		if (!cv || !(tag_is(cv, "none") || tag_is(cv, "pass") || tag_is(cv, "fail"))) {
			*why = cv ? "bad cv= value" : "missing cv= tag";
			return -1;
		}
		copy_tag(s->cv, sizeof s->cv, cv);
		for (char *q = s->cv; *q; q++)
			*q = lower(*q);
		if (h || bh) {
			*why = "h= or bh= in an ARC-Seal";
			return -1;
		}
	}
	if (!a || !b || (!bh && kind != DKIM_KIND_AS) || !d || (!h && kind != DKIM_KIND_AS) || !sel) {
		*why = !a ? "missing a= tag" : !b ? "missing b= tag" : !d ? "missing d= tag"
		    : !sel ? "missing s= tag" : !bh ? "missing bh= tag" : "missing h= tag";
		return -1;
	}
	if (kind == DKIM_KIND_SIG && !tag_is(v, "1")) {
		*why = "v= is not 1";
		return -1;
	}
	if (kind != DKIM_KIND_SIG && !parse_instance(i, &s->instance)) {
		*why = "bad i= (instance) value";
		return -1;
	}
	if (tag_is(a, "rsa-sha256")) {
		s->alg = DKIM_ALG_RSA_SHA256;
	} else if (tag_is(a, "ed25519-sha256")) {
		s->alg = DKIM_ALG_ED25519_SHA256;
	} else if (tag_is(a, "rsa-sha1")) {
		*why = "rsa-sha1 is not accepted (RFC 8301)";
		return -1;
	} else {
		*why = "unknown signing algorithm";
		return -1;
	}
	if (!copy_tag(s->d, sizeof s->d, d) || !dkim_name_ok(s->d)) {
		*why = "bad d= domain";
		return -1;
	}
	for (char *q = s->d; *q; q++)
		*q = lower(*q);
	if (!copy_tag(s->s, sizeof s->s, sel) || !dkim_name_ok(s->s)) {
		*why = "bad s= selector";
		return -1;
	}
	if (dkim_base64_decode(b->val, b->vlen, &s->b) < 0 || s->b.len == 0) {
		*why = "bad b= value";
		return -1;
	}
	if (bh && (dkim_base64_decode(bh->val, bh->vlen, &s->bh) < 0 || s->bh.len != 32)) {
		*why = "bad bh= value";
		return -1;
	}
	s->b_start = b->raw_start;
	s->b_end = b->raw_end;
	const dkim_tag_t *c = dkim_tag_get(tags, nt, "c");
	if (c) {
		const char *slash = memchr(c->val, '/', c->vlen);
		size_t hl = slash ? (size_t)(slash - c->val) : c->vlen;
		dkim_tag_t hc = {NULL, 0, c->val, hl, 0, 0};
		dkim_tag_t bc = {NULL, 0, slash ? slash + 1 : "simple", slash ? c->vlen - hl - 1 : 6, 0, 0};
		bool ok = true;
		if (tag_is(&hc, "relaxed"))
			s->hrelaxed = true;
		else if (!tag_is(&hc, "simple"))
			ok = false;
		if (tag_is(&bc, "relaxed"))
			s->brelaxed = true;
		else if (!tag_is(&bc, "simple"))
			ok = false;
		if (!ok) {
			*why = "unknown canonicalization (c=)";
			return -1;
		}
	}
	if (h && parse_h(s, h, kind == DKIM_KIND_SIG, why) < 0)
		return -1;
	if (i && kind == DKIM_KIND_SIG) {
		if (!copy_tag(s->i, sizeof s->i, i)) {
			*why = "i= too long";
			return -1;
		}
		const char *at = strrchr(s->i, '@');
		if (!at) {
			*why = "i= has no '@'";
			return -1;
		}
		const char *dom = at + 1;
		size_t dl = strlen(dom), ddl = strlen(s->d);
		bool within = (dl == ddl && strcasecmp(dom, s->d) == 0) ||
		    (dl > ddl && dom[dl - ddl - 1] == '.' && strcasecmp(dom + dl - ddl, s->d) == 0);
		if (!within) {
			*why = "i= is not within d=";
			return -1;
		}
	}
	const dkim_tag_t *l = dkim_tag_get(tags, nt, "l");
	if (l) {
		if (!parse_uint(l, &s->l)) {
			*why = "bad l= value";
			return -1;
		}
		s->has_l = true;
	}
	const dkim_tag_t *q = dkim_tag_get(tags, nt, "q");
	if (q && !list_has(q->val, q->vlen, "dns/txt")) {
		*why = "q= offers no dns/txt";
		return -1;
	}
	uint64_t u;
	const dkim_tag_t *t = dkim_tag_get(tags, nt, "t"), *x = dkim_tag_get(tags, nt, "x");
	if (t) {
		if (!parse_uint(t, &u)) {
			*why = "bad t= value";
			return -1;
		}
		s->t = u > INT64_MAX ? INT64_MAX : (int64_t)u;
		s->has_t = true;
	}
	if (x) {
		if (!parse_uint(x, &u)) {
			*why = "bad x= value";
			return -1;
		}
		s->x = u > INT64_MAX ? INT64_MAX : (int64_t)u;
		s->has_x = true;
	}
	if (s->has_t && s->has_x && s->x < s->t) {
		*why = "x= is before t=";
		return -1;
	}
	*res = DKIM_PASS;
	*why = "";
	return 0;
}

/* ---- key records ---- */

void
dkim_keyrec_clear(dkim_keyrec_t *k)
{
	buf_free(&k->p);
}

int
dkim_keyrec_parse(const char *p, size_t n, dkim_keyrec_t *k, const char **why)
{
	dkim_tag_t tags[DKIM_MAX_TAGS];
	size_t nt;
	memset(k, 0, sizeof *k);
	k->rsa = true;
	if (dkim_tags_parse(p, n, tags, DKIM_MAX_TAGS, &nt, why) < 0) {
		*why = "key record: bad syntax";
		return -1;
	}
	const dkim_tag_t *v = dkim_tag_get(tags, nt, "v");
	if (v && (v != &tags[0] || !(v->vlen == 5 && memcmp(v->val, "DKIM1", 5) == 0))) {
		*why = "key record: v= is not DKIM1 as its first tag";
		return -1;
	}
	const dkim_tag_t *h = dkim_tag_get(tags, nt, "h");
	if (h && !list_has(h->val, h->vlen, "sha256")) {
		*why = "key record: h= does not allow sha256";
		return -1;
	}
	const dkim_tag_t *kt = dkim_tag_get(tags, nt, "k");
	if (kt) {
		if (tag_is(kt, "ed25519"))
			k->rsa = false;
		else if (!tag_is(kt, "rsa")) {
			*why = "key record: unknown key type (k=)";
			return -1;
		}
	}
	const dkim_tag_t *s = dkim_tag_get(tags, nt, "s");
	if (s && !list_has(s->val, s->vlen, "*") && !list_has(s->val, s->vlen, "email")) {
		*why = "key record: not for email (s=)";
		return -1;
	}
	const dkim_tag_t *t = dkim_tag_get(tags, nt, "t");
	if (t) {
		k->testing = list_has(t->val, t->vlen, "y");
		k->strict = list_has(t->val, t->vlen, "s");
	}
	const dkim_tag_t *pk = dkim_tag_get(tags, nt, "p");
	if (!pk) {
		*why = "key record: no p= tag";
		return -1;
	}
	if (pk->vlen == 0) {
		k->revoked = true;
		*why = "";
		return 0;
	}
	if (dkim_base64_decode(pk->val, pk->vlen, &k->p) < 0 || k->p.len == 0) {
		*why = "key record: bad p= value";
		return -1;
	}
	*why = "";
	return 0;
}
