/*
 * spf_record.c - MAILAUTH: the syntax half of SPF (RFC 7208): record
 * selection, the record parser, macro expansion, CIDR matching and the
 * names handed to DNS (see spf.h; spf.c evaluates).
 *
 * Everything here is pure: no DNS, no clock, no allocation kept beyond the
 * record. Inputs are pointer + length and may hold any octet (TXT data is
 * untrusted); every octet the ABNF of section 12 does not allow is a
 * syntax error, hence a permerror (section 4.6). Expansions are bounded by
 * SPF_MACRO_MAX.
 * Must not: read past n, trust a length, or accept a record the ABNF
 * rejects (section 4.6: "any syntax errors anywhere in the record").
 */
#include "mailauth/spf.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

/* ---- addresses ---- */

int
spf_ip_from_sockaddr(const struct sockaddr *sa, spf_ip_t *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		ip->family = AF_INET;
		memcpy(ip->addr, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		/* section 5 and RFC 4291 2.5.5.2: ::ffff:a.b.c.d is IPv4 */
		if (memcmp(sin6->sin6_addr.s6_addr, mapped, 12) == 0) {
			ip->family = AF_INET;
			memcpy(ip->addr, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			ip->family = AF_INET6;
			memcpy(ip->addr, sin6->sin6_addr.s6_addr, 16);
		}
		return 0;
	}
	return -1;
}

int
spf_cidr_match(const spf_ip_t *ip, const spf_ip_t *net, unsigned bits)
{
	if (ip->family != net->family)
		return 0;
	unsigned max = ip->family == AF_INET ? 32 : 128;
	if (bits > max)
		bits = max;
	size_t whole = bits / 8;
	if (memcmp(ip->addr, net->addr, whole) != 0)
		return 0;
	unsigned rest = bits % 8;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (ip->addr[whole] & mask) == (net->addr[whole] & mask);
}

/* ---- character classes of the ABNF (section 12) ---- */

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

/* toplabel = ( *alphanum ALPHA *alphanum ) /
 *            ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) */
static bool
toplabel_valid(const char *s, size_t n)
{
	if (n == 0)
		return false;
	bool alpha = false, dash = false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '-')
			dash = true;
		else if (is_alpha(c))
			alpha = true;
		else if (!is_digit(c))
			return false;
	}
	if (!dash)
		return alpha;
	return is_alnum((unsigned char)s[0]) && is_alnum((unsigned char)s[n - 1]);
}

int
spf_is_record(const char *txt, size_t n)
{
	return n >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 && (n == 6 || txt[6] == ' ');
}

/* ---- macros (section 7) ---- */

static bool
is_delim(unsigned char c)
{
	return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

/* RFC 3986 unreserved: kept as they are by the upper-case letters */
static bool
is_unreserved(unsigned char c)
{
	return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void
put_ip(const spf_ip_t *ip, char letter, buf_t *out)
{
	char text[INET6_ADDRSTRLEN];
	if (ip->family == AF_INET) {
		buf_printf(out, "%u.%u.%u.%u", ip->addr[0], ip->addr[1], ip->addr[2], ip->addr[3]);
	} else if (letter == 'c') {
		/* section 7.3: "c" is the RFC 5952 text form */
		if (inet_ntop(AF_INET6, ip->addr, text, sizeof(text)) != NULL)
			buf_puts(out, text);
	} else {
		/* "i": the dot-format, 32 nibbles most significant first. Upper
		 * case, as the RFC 7208 test suite's v-macro-ip6 explanation
		 * expects (DNS names compare without case, so queries are the
		 * same; section 7.4's examples print lower case). */
		static const char hex[] = "0123456789ABCDEF";
		for (size_t i = 0; i < 16; i++) {
			if (i)
				buf_putc(out, '.');
			buf_putc(out, hex[ip->addr[i] >> 4]);
			buf_putc(out, '.');
			buf_putc(out, hex[ip->addr[i] & 15]);
		}
	}
}

/* the raw value of a macro letter (lower case) */
static void
macro_value(const spf_macro_ctx_t *m, char letter, buf_t *v)
{
	switch (letter) {
	case 's': buf_puts(v, m->sender); break;
	case 'l': buf_puts(v, m->local[0] ? m->local : "postmaster"); break;
	case 'o': buf_puts(v, m->sender_domain); break;
	case 'd': buf_puts(v, m->domain); break;
	case 'i': put_ip(&m->ip, 'i', v); break;
	case 'c': put_ip(&m->ip, 'c', v); break;
	case 'p': buf_puts(v, m->validated ? m->validated : "unknown"); break;
	case 'v': buf_puts(v, m->ip.family == AF_INET ? "in-addr" : "ip6"); break;
	case 'h': buf_puts(v, m->helo); break;
	case 'r': buf_puts(v, m->receiver && m->receiver[0] ? m->receiver : "unknown"); break;
	case 't': buf_printf(v, "%lld", m->now); break;
	default: break;
	}
}

/* Transformers (section 7.3): split on the delimiters, reverse, keep the
 * rightmost `keep` parts (0: all), join with '.'; upper-case letters are
 * then URL-escaped. */
static void
transform(const char *v, size_t vlen, const char *delims, size_t nd, bool reverse, size_t keep,
    bool escape, buf_t *out)
{
	/* the parts as (offset, length) pairs; at most vlen + 1 of them */
	size_t cap = vlen + 1;
	size_t *off = xcalloc(cap, sizeof(*off));
	size_t *len = xcalloc(cap, sizeof(*len));
	size_t np = 0, start = 0;
	for (size_t i = 0; i <= vlen; i++) {
		bool cut = i == vlen;
		if (!cut) {
			if (nd == 0)
				cut = v[i] == '.';
			else
				cut = memchr(delims, v[i], nd) != NULL;
		}
		if (cut) {
			off[np] = start;
			len[np] = i - start;
			np++;
			start = i + 1;
		}
	}
	if (reverse) {
		for (size_t i = 0; i < np / 2; i++) {
			size_t t = off[i];
			off[i] = off[np - 1 - i];
			off[np - 1 - i] = t;
			t = len[i];
			len[i] = len[np - 1 - i];
			len[np - 1 - i] = t;
		}
	}
	size_t first = keep && keep < np ? np - keep : 0;
	for (size_t i = first; i < np; i++) {
		if (i > first)
			buf_putc(out, '.');
		for (size_t k = 0; k < len[i]; k++) {
			unsigned char c = (unsigned char)v[off[i] + k];
			if (escape && !is_unreserved(c))
				buf_printf(out, "%%%02X", c);
			else
				buf_putc(out, (char)c);
		}
	}
	xfree(off);
	xfree(len);
}

int
spf_macro_expand(const spf_macro_ctx_t *m, const char *s, size_t n, int explain, buf_t *out,
    buf_t *err)
{
	size_t base = out->len;
	buf_t v = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c != '%') {
			/* macro-literal = %x21-24 / %x26-7E; explain-string adds SP */
			if (!((c >= 0x21 && c <= 0x7e) || (explain && c == ' '))) {
				buf_printf(err, "character 0x%02x not allowed", c);
				goto bad;
			}
			if (m)
				buf_putc(out, (char)c);
			goto next;
		}
		if (i + 1 >= n) {
			buf_puts(err, "'%' at the end of a macro-string");
			goto bad;
		}
		c = (unsigned char)s[++i];
		if (c == '%' || c == '_' || c == '-') {
			if (m)
				buf_puts(out, c == '%' ? "%" : c == '_' ? " " : "%20");
			goto next;
		}
		if (c != '{') {
			buf_printf(err, "'%%' followed by '%c' (section 7.1)", c >= 0x21 && c <= 0x7e ? c : '?');
			goto bad;
		}
		/* "%{" macro-letter transformers *delimiter "}" */
		if (++i >= n) {
			buf_puts(err, "unterminated macro");
			goto bad;
		}
		char letter = s[i];
		char lower = (char)(letter | 0x20);
		if (!is_alpha((unsigned char)letter) || strchr("slodiphcrtv", lower) == NULL) {
			buf_printf(err, "unknown macro letter '%c'",
			    letter >= 0x21 && letter <= 0x7e ? letter : '?');
			goto bad;
		}
		if (!explain && strchr("crt", lower) != NULL) {
			buf_printf(err, "macro letter '%c' allowed in exp= text only (section 7.3)", letter);
			goto bad;
		}
		i++;
		size_t keep = 0;
		bool digits = false;
		while (i < n && is_digit((unsigned char)s[i])) {
			digits = true;
			if (keep < 1000)
				keep = keep * 10 + (size_t)(s[i] - '0');
			i++;
		}
		if (digits && keep == 0) {
			buf_puts(err, "macro transformer 0 (section 7.3: must be nonzero)");
			goto bad;
		}
		bool reverse = false;
		if (i < n && (s[i] == 'r' || s[i] == 'R')) {
			reverse = true;
			i++;
		}
		size_t dstart = i;
		while (i < n && is_delim((unsigned char)s[i]))
			i++;
		size_t nd = i - dstart;
		if (i >= n || s[i] != '}') {
			buf_puts(err, "malformed macro (section 7.1)");
			goto bad;
		}
		if (m) {
			buf_reset(&v);
			macro_value(m, lower, &v);
			transform(buf_cstr(&v), v.len, s + dstart, nd, reverse, keep, letter != lower, out);
		}
next:
		if (out->len - base > SPF_MACRO_MAX) {
			buf_printf(err, "macro expansion longer than %d octets", SPF_MACRO_MAX);
			goto bad;
		}
	}
	buf_free(&v);
	return 0;
bad:
	buf_free(&v);
	out->len = base;
	if (out->data)
		out->data[base] = '\0';
	return -1;
}

/* domain-spec = macro-string domain-end
 * domain-end  = ( "." toplabel [ "." ] ) / macro-expand */
int
spf_domain_spec_valid(const char *s, size_t n)
{
	buf_t out = BUF_INIT, err = BUF_INIT;
	int ok = n > 0 && spf_macro_expand(NULL, s, n, 0, &out, &err) == 0;
	buf_free(&out);
	buf_free(&err);
	if (!ok)
		return 0;
	/* find where the trailing run of literal characters starts */
	size_t lit = 0;
	bool ends_macro = false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (s[i + 1] == '{') {
				const char *close = memchr(s + i, '}', n - i);
				i = (size_t)(close - s); /* the syntax check found it */
			} else {
				i++;
			}
			lit = i + 1;
			ends_macro = true;
		} else {
			ends_macro = false;
		}
	}
	if (ends_macro)
		return 1;
	size_t end = n;
	if (end > lit && s[end - 1] == '.')
		end--;
	size_t dot = end;
	while (dot > lit && s[dot - 1] != '.')
		dot--;
	if (dot == lit)
		return 0; /* no "." before the top label */
	return toplabel_valid(s + dot, end - dot);
}

int
spf_domain_valid(const char *d)
{
	size_t n = strlen(d);
	if (n > 0 && d[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return 0;
	size_t labels = 0, start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || d[i] == '.') {
			size_t l = i - start;
			if (l == 0 || l > 63)
				return 0;
			labels++;
			if (i == n)
				return labels >= 2 && toplabel_valid(d + start, l);
			start = i + 1;
		}
		/* other labels may hold any octet: a target built by macros
		 * from a local-part with spaces or '%' is queried as it is */
	}
	return 0;
}

void
spf_query_name(const char *name, buf_t *out)
{
	size_t n = strlen(name);
	if (n > 0 && name[n - 1] == '.')
		n--;
	const char *p = name;
	/* section 4.8: drop labels from the left until it fits in 253 */
	while (n > 253) {
		const char *dot = memchr(p, '.', n);
		if (dot == NULL)
			break;
		n -= (size_t)(dot + 1 - p);
		p = dot + 1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (is_alnum(c) || c == '-' || c == '_' || c == '.')
			buf_putc(out, (char)c);
		else
			buf_printf(out, "\\%03u", c);
	}
}

/* ---- the record (sections 4.6.1, 5, 6, 12) ---- */

static void
term_free(spf_term_t *t)
{
	xfree(t->spec);
	xfree(t->text);
}

void
spf_record_free(spf_record_t *rec)
{
	for (size_t i = 0; i < rec->n; i++)
		term_free(&rec->terms[i]);
	xfree(rec->terms);
	xfree(rec->redirect);
	xfree(rec->exp);
	memset(rec, 0, sizeof(*rec));
}

/* 1*DIGIT without a leading zero (as ip4-network's qnum), at most max */
static int
parse_num(const char *s, size_t n, int max)
{
	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v <= max ? v : -1;
}

/* ip4-network: four qnums, nothing else */
static int
parse_ip4(const char *s, size_t n, unsigned char out[4])
{
	size_t i = 0;
	for (int k = 0; k < 4; k++) {
		size_t start = i;
		while (i < n && s[i] != '.')
			i++;
		int v = parse_num(s + start, i - start, 255);
		if (v < 0)
			return -1;
		out[k] = (unsigned char)v;
		if (k < 3) {
			if (i >= n)
				return -1;
			i++;
		}
	}
	return i == n ? 0 : -1;
}

static int
parse_ip6(const char *s, size_t n, unsigned char out[16])
{
	char tmp[INET6_ADDRSTRLEN + 1];
	if (n == 0 || n >= sizeof(tmp))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
			return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(AF_INET6, tmp, out) == 1 ? 0 : -1;
}

/* the position of a trailing "/" 1*DIGIT in s[0..n), or n */
static size_t
cidr_suffix(const char *s, size_t n)
{
	size_t i = n;
	while (i > 0 && is_digit((unsigned char)s[i - 1]))
		i--;
	if (i == n || i == 0 || s[i - 1] != '/')
		return n;
	return i - 1;
}

/* [ ":" domain-spec ] or ":" domain-spec (required) */
static int
parse_spec(const char *s, size_t n, bool required, spf_term_t *t, buf_t *err)
{
	if (n == 0) {
		if (required) {
			buf_puts(err, "a domain is required");
			return -1;
		}
		return 0;
	}
	if (s[0] != ':' || !spf_domain_spec_valid(s + 1, n - 1)) {
		buf_puts(err, "invalid domain-spec (section 7.1)");
		return -1;
	}
	t->spec = xstrndup(s + 1, n - 1);
	return 0;
}

static int
parse_mechanism(const char *s, size_t n, spf_term_t *t, buf_t *err)
{
	static const struct {
		const char *name;
		enum spf_mech mech;
	} names[] = {
	    {"all", SPF_M_ALL}, {"include", SPF_M_INCLUDE}, {"a", SPF_M_A}, {"mx", SPF_M_MX},
	    {"ptr", SPF_M_PTR}, {"ip4", SPF_M_IP4}, {"ip6", SPF_M_IP6}, {"exists", SPF_M_EXISTS},
	};
	size_t i = 0;
	t->qualifier = '+';
	/* (not strchr: it would find a NUL octet, the string's end) */
	if (n > 0 && (s[0] == '+' || s[0] == '-' || s[0] == '~' || s[0] == '?')) {
		t->qualifier = s[0];
		i = 1;
	}
	size_t nstart = i;
	while (i < n && s[i] != ':' && s[i] != '/')
		i++;
	size_t nlen = i - nstart;
	bool found = false;
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		if (strlen(names[k].name) == nlen && strncasecmp(s + nstart, names[k].name, nlen) == 0) {
			t->mech = names[k].mech;
			found = true;
			break;
		}
	}
	if (!found) {
		buf_puts(err, "unknown mechanism");
		return -1;
	}
	const char *rest = s + i;
	size_t rn = n - i;
	t->cidr4 = t->cidr6 = -1;
	switch (t->mech) {
	case SPF_M_ALL:
		if (rn != 0) {
			buf_puts(err, "\"all\" takes no argument");
			return -1;
		}
		return 0;
	case SPF_M_INCLUDE:
	case SPF_M_EXISTS:
		return parse_spec(rest, rn, true, t, err);
	case SPF_M_PTR:
		return parse_spec(rest, rn, false, t, err);
	case SPF_M_A:
	case SPF_M_MX: {
		/* dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ] */
		size_t c = cidr_suffix(rest, rn);
		if (c < rn && c > 0 && rest[c - 1] == '/') {
			t->cidr6 = parse_num(rest + c + 1, rn - c - 1, 128);
			if (t->cidr6 < 0) {
				buf_puts(err, "invalid ip6-cidr-length");
				return -1;
			}
			rn = c - 1;
			c = cidr_suffix(rest, rn);
		}
		if (c < rn) {
			t->cidr4 = parse_num(rest + c + 1, rn - c - 1, 32);
			if (t->cidr4 < 0) {
				buf_puts(err, "invalid ip4-cidr-length");
				return -1;
			}
			rn = c;
		}
		return parse_spec(rest, rn, false, t, err);
	}
	case SPF_M_IP4:
	case SPF_M_IP6: {
		bool v4 = t->mech == SPF_M_IP4;
		if (rn < 2 || rest[0] != ':') {
			buf_puts(err, v4 ? "ip4 needs an address" : "ip6 needs an address");
			return -1;
		}
		rest++;
		rn--;
		size_t c = cidr_suffix(rest, rn);
		int bits = v4 ? 32 : 128;
		if (c < rn) {
			bits = parse_num(rest + c + 1, rn - c - 1, v4 ? 32 : 128);
			if (bits < 0) {
				buf_puts(err, "invalid CIDR length");
				return -1;
			}
		}
		t->net.family = v4 ? AF_INET : AF_INET6;
		if ((v4 ? parse_ip4(rest, c, t->net.addr) : parse_ip6(rest, c, t->net.addr)) < 0) {
			buf_puts(err, v4 ? "invalid ip4-network" : "invalid ip6-network");
			return -1;
		}
		if (v4)
			t->cidr4 = bits;
		else
			t->cidr6 = bits;
		return 0;
	}
	}
	return -1;
}

int
spf_record_parse(const char *txt, size_t n, spf_record_t *rec, buf_t *err)
{
	memset(rec, 0, sizeof(*rec));
	if (!spf_is_record(txt, n)) {
		buf_puts(err, "not an SPF record");
		return -1;
	}
	size_t cap = 0;
	size_t i = 6;
	while (i < n) {
		if (txt[i] == ' ') {
			i++;
			continue;
		}
		size_t start = i;
		while (i < n && txt[i] != ' ')
			i++;
		const char *s = txt + start;
		size_t len = i - start;
		/* modifier = name "=" macro-string; name = ALPHA *( ALPHA / DIGIT
		 * / "-" / "_" / "." ) */
		size_t k = 0;
		if (is_alpha((unsigned char)s[0])) {
			k = 1;
			while (k < len && (is_alnum((unsigned char)s[k]) || s[k] == '-' || s[k] == '_' ||
			    s[k] == '.'))
				k++;
		}
		if (k > 0 && k < len && s[k] == '=') {
			const char *val = s + k + 1;
			size_t vlen = len - k - 1;
			char **slot = NULL;
			if (k == 8 && strncasecmp(s, "redirect", 8) == 0)
				slot = &rec->redirect;
			else if (k == 3 && strncasecmp(s, "exp", 3) == 0)
				slot = &rec->exp;
			if (slot) {
				/* section 6: each at most once */
				if (*slot != NULL) {
					buf_printf(err, "\"%.*s\" appears twice (section 6)", (int)k, s);
					goto bad;
				}
				if (!spf_domain_spec_valid(val, vlen)) {
					buf_printf(err, "invalid domain-spec in \"%.*s\"", (int)k, s);
					goto bad;
				}
				*slot = xstrndup(val, vlen);
			} else {
				/* unknown-modifier: ignored, but its macro-string must
				 * be well-formed (section 6, A); every macro letter of
				 * the ABNF is accepted (c, r, t are for exp= text, but
				 * this text is never expanded) */
				buf_t out = BUF_INIT, e = BUF_INIT;
				int rc = spf_macro_expand(NULL, val, vlen, 1, &out, &e);
				buf_free(&out);
				buf_free(&e);
				if (rc < 0) {
					buf_printf(err, "invalid macro-string in modifier \"%.*s\"", (int)k, s);
					goto bad;
				}
			}
			continue;
		}
		if (rec->n == cap) {
			cap = cap ? cap * 2 : 8;
			rec->terms = xrealloc(rec->terms, cap * sizeof(*rec->terms));
		}
		spf_term_t *t = &rec->terms[rec->n];
		memset(t, 0, sizeof(*t));
		buf_t why = BUF_INIT;
		if (parse_mechanism(s, len, t, &why) < 0) {
			term_free(t);
			/* printable for the log: the term up to 64 octets */
			buf_puts(err, buf_cstr(&why));
			buf_puts(err, ": \"");
			for (size_t j = 0; j < len && j < 64; j++) {
				unsigned char c = (unsigned char)s[j];
				if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
					buf_putc(err, (char)c);
				else
					buf_printf(err, "\\x%02x", c);
			}
			buf_putc(err, '"');
			buf_free(&why);
			goto bad;
		}
		buf_free(&why);
		t->text = xstrndup(s, len);
		rec->n++;
	}
	return 0;
bad:
	spf_record_free(rec);
	return -1;
}

const char *
spf_result_str(enum spf_result r)
{
	switch (r) {
	case SPF_NONE: return "none";
	case SPF_NEUTRAL: return "neutral";
	case SPF_PASS: return "pass";
	case SPF_FAIL: return "fail";
	case SPF_SOFTFAIL: return "softfail";
	case SPF_TEMPERROR: return "temperror";
	case SPF_PERMERROR: return "permerror";
	}
	return "permerror";
}
