/*
 * addr.c - RFC 5321 path parsing, xtext (RFC 3461) and MAIL/RCPT parameters.
 *
 * What it does: parses "<local@domain>" paths exactly per RFC 5321 §4.1.2
 * (with the RFC 6531 §3.3 UTF-8 extension when asked), normalizes them into
 * the form we write back in SMTP, and parses the ESMTP parameters of MAIL
 * and RCPT for the extensions the server offers.
 *
 * Guarantees: every parser works on pointer+length, never reads past the
 * length, never trusts a NUL, bounds every allocation by the RFC limits
 * (work is linear in the input) and reports errors as static, complete SMTP
 * reply lines with enhanced status codes (RFC 3463) and no CRLF. A parsed
 * address never contains NUL, CR, LF or other control characters, and its
 * str re-parses (inside "<>") to the same str with the same flags.
 *
 * Must not: allocate without bound, log input, or accept anything the RFC
 * grammar does not allow (apart from the spaces tolerated before a path and
 * between parameters).
 */
#include "common/addr.h"
#include "lib/utf8.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"

/* RFC 5321 §4.5.3.1 */
#define LOCAL_MAX 64
#define DOMAIN_MAX 255
#define LABEL_MAX 63
#define PATH_MAX_OCTETS 256
#define ENVID_MAX 100 /* RFC 3461 §4.4 */
#define ORCPT_MAX 500 /* RFC 3461 §4.2 */
#define AUTH_MAX 500  /* our bound; RFC 4954 §5 carries a mailbox */

/* ------------------------------------------------------------------ */
/* error replies */

enum aerr {
	AE_SYNTAX,
	AE_EMPTY,
	AE_BRACKETS,
	AE_UNTERMINATED,
	AE_NULL,
	AE_NODOMAIN,
	AE_LOCAL,
	AE_DOMAIN,
	AE_TRAILDOT,
	AE_LABEL_LONG,
	AE_LOCAL_LONG,
	AE_DOMAIN_LONG,
	AE_PATH_LONG,
	AE_LITERAL,
	AE_GENLITERAL,
	AE_CTRL,
	AE_SPACE,
	AE_NEEDUTF8,
	AE_BADUTF8,
	AE_TRAILING,
	AE__COUNT
};

/* X.1.3: bad destination mailbox address syntax (RFC 3463) */
static const char *const aerr_rcpt[AE__COUNT] = {
	[AE_SYNTAX] = "501 5.1.3 Bad recipient address syntax",
	[AE_EMPTY] = "501 5.1.3 Missing recipient address",
	[AE_BRACKETS] = "501 5.1.3 Recipient address must be enclosed in <>",
	[AE_UNTERMINATED] = "501 5.1.3 Unterminated recipient address",
	[AE_NULL] = "501 5.1.3 Null recipient address not allowed",
	[AE_NODOMAIN] = "501 5.1.3 Recipient address lacks a domain",
	[AE_LOCAL] = "501 5.1.3 Bad recipient local part syntax",
	[AE_DOMAIN] = "501 5.1.3 Bad recipient domain syntax",
	[AE_TRAILDOT] = "501 5.1.3 Recipient domain must not end with a dot",
	[AE_LABEL_LONG] = "501 5.1.3 Recipient domain label too long",
	[AE_LOCAL_LONG] = "501 5.1.3 Recipient local part too long",
	[AE_DOMAIN_LONG] = "501 5.1.3 Recipient domain too long",
	[AE_PATH_LONG] = "501 5.1.3 Recipient address too long",
	[AE_LITERAL] = "501 5.1.3 Bad recipient address literal",
	[AE_GENLITERAL] = "553 5.1.3 Unsupported recipient address literal",
	[AE_CTRL] = "501 5.1.3 Control character in recipient address",
	[AE_SPACE] = "501 5.1.3 Space in recipient address",
	[AE_NEEDUTF8] = "553 5.6.7 Non-ASCII address requires SMTPUTF8 (RFC 6531)",
	[AE_BADUTF8] = "501 5.1.3 Invalid UTF-8 in recipient address",
	[AE_TRAILING] = "501 5.5.4 Syntax error after recipient address",
};

/* X.1.7: bad sender's mailbox address syntax (RFC 3463) */
static const char *const aerr_mail[AE__COUNT] = {
	[AE_SYNTAX] = "501 5.1.7 Bad sender address syntax",
	[AE_EMPTY] = "501 5.1.7 Missing sender address",
	[AE_BRACKETS] = "501 5.1.7 Sender address must be enclosed in <>",
	[AE_UNTERMINATED] = "501 5.1.7 Unterminated sender address",
	[AE_NULL] = "501 5.1.7 Null sender address not allowed",
	[AE_NODOMAIN] = "501 5.1.7 Sender address lacks a domain",
	[AE_LOCAL] = "501 5.1.7 Bad sender local part syntax",
	[AE_DOMAIN] = "501 5.1.7 Bad sender domain syntax",
	[AE_TRAILDOT] = "501 5.1.7 Sender domain must not end with a dot",
	[AE_LABEL_LONG] = "501 5.1.7 Sender domain label too long",
	[AE_LOCAL_LONG] = "501 5.1.7 Sender local part too long",
	[AE_DOMAIN_LONG] = "501 5.1.7 Sender domain too long",
	[AE_PATH_LONG] = "501 5.1.7 Sender address too long",
	[AE_LITERAL] = "501 5.1.7 Bad sender address literal",
	[AE_GENLITERAL] = "553 5.1.7 Unsupported sender address literal",
	[AE_CTRL] = "501 5.1.7 Control character in sender address",
	[AE_SPACE] = "501 5.1.7 Space in sender address",
	[AE_NEEDUTF8] = "553 5.6.7 Non-ASCII address requires SMTPUTF8 (RFC 6531)",
	[AE_BADUTF8] = "501 5.1.7 Invalid UTF-8 in sender address",
	[AE_TRAILING] = "501 5.5.4 Syntax error after sender address",
};

/* ------------------------------------------------------------------ */
/* character classes (ASCII only, locale independent) */

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
is_letdig(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static unsigned char
to_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* RFC 5321 §4.1.2 atext (= RFC 5322 §3.2.3) */
static bool
is_atext(unsigned char c)
{
	if (is_letdig(c))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
	case '+': case '-': case '/': case '=': case '?': case '^': case '_':
	case '`': case '{': case '|': case '}': case '~':
		return true;
	default:
		return false;
	}
}

/* RFC 5321 §4.1.2 qtextSMTP: %d32-33 / %d35-91 / %d93-126 */
static bool
is_qtext(unsigned char c)
{
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

static bool
is_ctrl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static bool
ascii_ieq(const char *a, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	if (n != l)
		return false;
	for (size_t i = 0; i < n; i++)
		if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)lit[i]))
			return false;
	return true;
}

/*
 * Length of the well-formed UTF-8 sequence at s (RFC 3629 §4), 0 when it is
 * not one: overlongs, surrogates, code points above U+10FFFF and the C1
 * controls U+0080..U+009F are all refused. ASCII is not handled here.
 */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t l = utf8_seq_len(s, n);
	if (l == 2 && s[0] == 0xc2 && s[1] < 0xa0)
		return 0; /* C1 control */
	return l;
}

/* every octet printable ASCII, or (when utf8) part of well-formed UTF-8 */
static bool
printable_text(const unsigned char *s, size_t n, bool utf8)
{
	for (size_t i = 0; i < n;) {
		if (s[i] < 0x80) {
			if (is_ctrl(s[i]))
				return false;
			i++;
			continue;
		}
		size_t l = utf8 ? utf8_len(s + i, n - i) : 0;
		if (l == 0)
			return false;
		i += l;
	}
	return true;
}

/* Dot-string (RFC 5321 §4.1.2), octets >= 0x80 counted as atext (RFC 6531
 * §3.3 UTF8-non-ascii; callers validate UTF-8 separately) */
static bool
is_dotstring(const unsigned char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (s[i - 1] == '.')
				return false;
		} else if (s[i] < 0x80 && !is_atext(s[i])) {
			return false;
		}
	}
	return true;
}

/* append local part: bare when a Dot-string, else a minimal Quoted-string
 * (only '"' and '\\' escaped, RFC 5321 §4.1.2 quoted-pairSMTP) */
static void
put_local(buf_t *out, const unsigned char *s, size_t n)
{
	if (is_dotstring(s, n)) {
		buf_append(out, s, n);
		return;
	}
	buf_putc(out, '"');
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			buf_putc(out, '\\');
		buf_putc(out, (char)s[i]);
	}
	buf_putc(out, '"');
}

/* ------------------------------------------------------------------ */
/* path parser */

struct ap {
	const unsigned char *s;
	size_t n;
	size_t i;
	unsigned flags;
	bool utf8;
};

/* error for the unexpected octet at p->i (or end of input) */
static enum aerr
bad_char(const struct ap *p, enum aerr dflt)
{
	if (p->i >= p->n)
		return dflt;
	unsigned char c = p->s[p->i];
	if (is_ctrl(c))
		return AE_CTRL;
	if (c == ' ')
		return AE_SPACE;
	if (c >= 0x80) {
		if (!(p->flags & ADDR_UTF8))
			return AE_NEEDUTF8;
		if (utf8_len(p->s + p->i, p->n - p->i) == 0)
			return AE_BADUTF8;
	}
	return dflt;
}

/* consume one UTF-8 character when allowed; 0 when not possible */
static size_t
take_utf8(struct ap *p)
{
	if (!(p->flags & ADDR_UTF8))
		return 0;
	size_t l = utf8_len(p->s + p->i, p->n - p->i);
	if (l) {
		p->i += l;
		p->utf8 = true;
	}
	return l;
}

/* Dot-string = Atom *("." Atom), raw octets stay in s */
static int
p_dotstring(struct ap *p, enum aerr *e)
{
	size_t start = p->i;
	for (;;) {
		size_t atom = p->i;
		while (p->i < p->n) {
			unsigned char c = p->s[p->i];
			if (c < 0x80 && is_atext(c))
				p->i++;
			else if (c < 0x80 || take_utf8(p) == 0)
				break;
			if (p->i - start > LOCAL_MAX) {
				*e = AE_LOCAL_LONG;
				return -1;
			}
		}
		if (p->i == atom) {
			/* leading dot, "..", trailing dot, or a bad octet */
			*e = bad_char(p, AE_LOCAL);
			return -1;
		}
		if (p->i < p->n && p->s[p->i] == '.') {
			p->i++;
			continue;
		}
		return 0;
	}
}

/* Quoted-string; the unquoted content is appended to content */
static int
p_quoted(struct ap *p, buf_t *content, enum aerr *e)
{
	size_t start = p->i;
	p->i++; /* DQUOTE */
	for (;;) {
		if (p->i - start > LOCAL_MAX) {
			*e = AE_LOCAL_LONG;
			return -1;
		}
		if (p->i >= p->n) {
			*e = AE_UNTERMINATED;
			return -1;
		}
		unsigned char c = p->s[p->i];
		if (c == '"') {
			p->i++;
			if (p->i - start > LOCAL_MAX) {
				*e = AE_LOCAL_LONG;
				return -1;
			}
			return 0;
		}
		if (c == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 (ASCII only) */
			p->i++;
			if (p->i >= p->n) {
				*e = AE_UNTERMINATED;
				return -1;
			}
			c = p->s[p->i];
			if (c < 32 || c > 126) {
				*e = bad_char(p, AE_LOCAL);
				if (*e == AE_SPACE)
					*e = AE_LOCAL;
				return -1;
			}
			buf_putc(content, (char)c);
			p->i++;
			continue;
		}
		if (is_qtext(c)) {
			buf_putc(content, (char)c);
			p->i++;
			continue;
		}
		size_t at = p->i;
		if (c >= 0x80 && take_utf8(p)) {
			buf_append(content, p->s + at, p->i - at);
			continue;
		}
		*e = bad_char(p, AE_LOCAL);
		return -1;
	}
}

/* IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT (0..255) */
static bool
is_ipv4_literal(const unsigned char *s, size_t n)
{
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
		unsigned v = 0;
		size_t d = 0;
		while (i < n && is_digit(s[i]) && d < 3) {
			v = v * 10 + (unsigned)(s[i] - '0');
			i++;
			d++;
		}
		if (d == 0 || v > 255)
			return false;
	}
	return i == n;
}

/* Standardized-tag ":" 1*dcontent (RFC 5321 §4.1.3) */
static bool
is_general_literal(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (is_letdig(s[i]) || s[i] == '-'))
		i++;
	return i > 0 && i < n - 1 && s[i] == ':' && s[i - 1] != '-';
}

/* address-literal = "[" ... "]" (RFC 5321 §4.1.3), lowercased into out */
static int
p_literal(struct ap *p, buf_t *out, enum aerr *e)
{
	size_t start = p->i;
	p->i++; /* '[' */
	/* dcontent = %d33-90 / %d94-126 */
	while (p->i < p->n) {
		unsigned char c = p->s[p->i];
		if (c < 33 || c > 126 || c == '[' || c == '\\' || c == ']')
			break;
		p->i++;
		if (p->i - start > DOMAIN_MAX) {
			*e = AE_DOMAIN_LONG;
			return -1;
		}
	}
	if (p->i >= p->n) {
		*e = AE_UNTERMINATED;
		return -1;
	}
	if (p->s[p->i] != ']') {
		*e = bad_char(p, AE_LITERAL);
		return -1;
	}
	const unsigned char *in = p->s + start + 1;
	size_t len = p->i - start - 1;
	p->i++;
	if (is_ipv4_literal(in, len)) {
		/* ok */
	} else if (len > 5 && ascii_ieq((const char *)in, 5, "IPv6:")) {
		/* IPv6-address-literal; RFC 5321's IPv6-addr is RFC 4291 text */
		char tmp[INET6_ADDRSTRLEN];
		struct in6_addr a6;
		if (len - 5 >= sizeof tmp) {
			*e = AE_LITERAL;
			return -1;
		}
		memcpy(tmp, in + 5, len - 5);
		tmp[len - 5] = '\0';
		if (inet_pton(AF_INET6, tmp, &a6) != 1) {
			*e = AE_LITERAL;
			return -1;
		}
	} else {
		/* General-address-literal: allowed by the grammar, refused here
		 * since no tag other than IPv6 is registered */
		*e = is_general_literal(in, len) ? AE_GENLITERAL : AE_LITERAL;
		return -1;
	}
	buf_putc(out, '[');
	for (size_t k = 0; k < len; k++)
		buf_putc(out, (char)to_lower(in[k]));
	buf_putc(out, ']');
	return 0;
}

/*
 * Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str],
 * or a U-label with ADDR_UTF8 (RFC 6531 §3.3; we check well-formed UTF-8
 * only, not IDNA2008). Lowercased into out. Labels <= 63 octets.
 */
static int
p_domain(struct ap *p, buf_t *out, bool allow_literal, enum aerr *e)
{
	size_t start = p->i;
	if (p->i < p->n && p->s[p->i] == '[') {
		if (!allow_literal) {
			*e = AE_DOMAIN;
			return -1;
		}
		return p_literal(p, out, e);
	}
	for (;;) {
		size_t lab = p->i;
		bool hyphen = false;
		while (p->i < p->n) {
			unsigned char c = p->s[p->i];
			size_t at = p->i;
			if (is_letdig(c)) {
				buf_putc(out, (char)to_lower(c));
				p->i++;
				hyphen = false;
			} else if (c == '-' && p->i > lab) {
				buf_putc(out, '-');
				p->i++;
				hyphen = true;
			} else if (c >= 0x80 && take_utf8(p)) {
				buf_append(out, p->s + at, p->i - at);
				hyphen = false;
			} else {
				break;
			}
			if (p->i - lab > LABEL_MAX) {
				*e = AE_LABEL_LONG;
				return -1;
			}
			if (p->i - start > DOMAIN_MAX) {
				*e = AE_DOMAIN_LONG;
				return -1;
			}
		}
		if (p->i == lab) {
			bool end = p->i >= p->n || p->s[p->i] == '>' || p->s[p->i] == ' ' ||
			    p->s[p->i] == '\t' || p->s[p->i] == ',' || p->s[p->i] == ':';
			if (lab == start && end)
				*e = AE_NODOMAIN;
			else if (lab > start && end)
				*e = AE_TRAILDOT;
			else
				*e = bad_char(p, AE_DOMAIN);
			return -1;
		}
		if (hyphen) {
			*e = AE_DOMAIN; /* label ends with '-' */
			return -1;
		}
		if (p->i < p->n && p->s[p->i] == '.') {
			buf_putc(out, '.');
			p->i++;
			continue;
		}
		return 0;
	}
}

static void
addr_set(addr_t *a, char *str, size_t local_len, bool has_domain)
{
	a->str = str;
	a->local_len = local_len;
	a->domain = has_domain ? str + local_len + 1 : str + strlen(str);
	a->utf8 = false;
	for (const char *q = str; *q; q++)
		if ((unsigned char)*q >= 0x80)
			a->utf8 = true;
}

/* A-d-l ":" after "<" - a source route, accepted and ignored (RFC 5321
 * §4.1.2, §C). p->i is at the first '@'; tmp is scratch. */
static int
p_source_route(struct ap *p, buf_t *tmp, enum aerr *e)
{
	for (;;) {
		p->i++; /* '@' */
		buf_reset(tmp);
		if (p_domain(p, tmp, false, e) < 0)
			return -1;
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			if (p->i < p->n && p->s[p->i] == '@')
				continue;
		} else if (p->i < p->n && p->s[p->i] == ':') {
			p->i++;
			return 0;
		}
		*e = p->i >= p->n ? AE_UNTERMINATED : bad_char(p, AE_SYNTAX);
		return -1;
	}
}

/* A local-part (starting at ls) not followed by "@domain": only a bare
 * "Postmaster" may stand alone (RFC 5321 §4.1.1.3); 0 when it is that. */
static int
p_no_domain(struct ap *p, bool br, bool quoted, size_t ls, enum aerr *e)
{
	bool end = br ? (p->i < p->n && p->s[p->i] == '>') :
			(p->i >= p->n || p->s[p->i] == ' ' || p->s[p->i] == '\t');
	if (end && !quoted && ls == (br ? 1u : 0u) && (p->flags & ADDR_POSTMASTER_OK) &&
	    ascii_ieq((const char *)p->s + ls, p->i - ls, "postmaster"))
		return 0;
	if (end)
		*e = AE_NODOMAIN;
	else if (p->i >= p->n)
		*e = br ? AE_UNTERMINATED : AE_NODOMAIN;
	else
		*e = bad_char(p, AE_LOCAL);
	return -1;
}

/* The closing ">" when bracketed, then the path length limit (RFC 5321
 * §4.5.3.1.3: 256 octets including the brackets). */
static int
p_path_end(struct ap *p, bool br, enum aerr *e)
{
	if (!br) {
		if (p->i > PATH_MAX_OCTETS - 2) {
			*e = AE_PATH_LONG;
			return -1;
		}
		return 0;
	}
	if (p->i >= p->n) {
		*e = AE_UNTERMINATED;
		return -1;
	}
	if (p->s[p->i] != '>') {
		*e = bad_char(p, AE_SYNTAX);
		return -1;
	}
	p->i++;
	if (p->i > PATH_MAX_OCTETS) {
		*e = AE_PATH_LONG;
		return -1;
	}
	return 0;
}

static int
parse_path(const char *s, size_t n, unsigned flags, addr_t *out, size_t *used, enum aerr *e)
{
	struct ap p = {(const unsigned char *)s, n, 0, flags, false};
	bool br = !(flags & ADDR_NO_BRACKETS);
	buf_t local = BUF_INIT, dom = BUF_INIT, tmp = BUF_INIT;
	bool postmaster = false, null = false;

	if (br) {
		if (n == 0) {
			*e = AE_EMPTY;
			return -1;
		}
		if (p.s[0] != '<') {
			*e = bad_char(&p, AE_BRACKETS);
			return -1;
		}
		p.i = 1;
		if (p.i < n && p.s[p.i] == '>') {
			null = true;
			p.i++;
			goto done;
		}
		if (p.i < n && p.s[p.i] == '@' && p_source_route(&p, &tmp, e) < 0)
			goto fail;
	} else if (n == 0) {
		if (flags & ADDR_NULL_OK) {
			null = true;
			goto done;
		}
		*e = AE_EMPTY;
		return -1;
	}

	/* Local-part */
	size_t ls = p.i;
	bool quoted = false;
	if (p.i < n && p.s[p.i] == '"') {
		quoted = true;
		buf_reset(&tmp); /* it held the source route's domains */
		if (p_quoted(&p, &tmp, e) < 0)
			goto fail;
		put_local(&local, (const unsigned char *)tmp.data, tmp.len);
	} else {
		if (p_dotstring(&p, e) < 0)
			goto fail;
		buf_append(&local, p.s + ls, p.i - ls);
	}

	if (p.i < n && p.s[p.i] == '@') {
		p.i++;
		if (p_domain(&p, &dom, true, e) < 0)
			goto fail;
	} else if (p_no_domain(&p, br, quoted, ls, e) < 0) {
		goto fail;
	} else {
		postmaster = true;
	}
	if (p_path_end(&p, br, e) < 0)
		goto fail;

done:
	/* the path must be followed by the end or by the space before the
	 * ESMTP parameters (RFC 5321 §4.1.1.2) */
	if (p.i < n && p.s[p.i] != ' ' && p.s[p.i] != '\t') {
		*e = AE_TRAILING;
		goto fail;
	}
	if (null) {
		if (!(flags & ADDR_NULL_OK)) {
			*e = AE_NULL;
			goto fail;
		}
		addr_set(out, xstrdup(""), 0, false);
	} else if (postmaster) {
		addr_set(out, xstrdup("Postmaster"), 10, false);
	} else {
		size_t ll = local.len;
		buf_putc(&local, '@');
		buf_append(&local, dom.data, dom.len);
		addr_set(out, buf_steal(&local), ll, true);
	}
	buf_free(&local);
	buf_free(&dom);
	buf_free(&tmp);
	*used = p.i;
	return 0;

fail:
	buf_free(&local);
	buf_free(&dom);
	buf_free(&tmp);
	return -1;
}

int
addr_parse(const char *s, size_t n, unsigned flags, addr_t *out, size_t *used,
    const char **err)
{
	enum aerr e = AE_SYNTAX;
	size_t u = 0;
	memset(out, 0, sizeof *out);
	if (used)
		*used = 0;
	if (parse_path(s, n, flags, out, &u, &e) < 0) {
		if (err)
			*err = aerr_rcpt[e];
		return -1;
	}
	if (used)
		*used = u;
	return 0;
}

void
addr_free(addr_t *a)
{
	if (a == NULL)
		return;
	xfree(a->str);
	memset(a, 0, sizeof *a);
}

void
addr_copy(addr_t *dst, const addr_t *src)
{
	if (src->str == NULL) {
		memset(dst, 0, sizeof *dst);
		return;
	}
	size_t len = strlen(src->str);
	size_t off = len;
	if (src->domain >= src->str && src->domain <= src->str + len)
		off = (size_t)(src->domain - src->str);
	dst->str = xstrndup(src->str, len);
	dst->local_len = src->local_len;
	dst->domain = dst->str + off;
	dst->utf8 = src->utf8;
}

void
addr_local_unquoted(const addr_t *a, buf_t *out)
{
	const char *s = a->str ? a->str : "";
	size_t n = a->local_len;
	if (n < 2 || s[0] != '"') {
		buf_append(out, s, n);
		return;
	}
	for (size_t i = 1; i + 1 < n; i++) {
		if (s[i] == '\\' && i + 2 < n)
			i++;
		buf_putc(out, s[i]);
	}
}

void
addr_format(buf_t *out, const char *local, size_t local_len, const char *domain)
{
	if (domain == NULL)
		domain = "";
	if (local_len == 0 && domain[0] == '\0')
		return; /* null path */
	put_local(out, (const unsigned char *)local, local_len);
	if (domain[0]) {
		buf_putc(out, '@');
		buf_puts(out, domain);
	}
}

bool
addr_is_literal(const addr_t *a)
{
	return a->domain != NULL && a->domain[0] == '[';
}

/* ------------------------------------------------------------------ */
/* xtext (RFC 3461 §4) */

static int
hexval(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	/* the RFC asks for upper case; lower case is tolerated on input */
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* xchar = "!".."~" except "+" and "="; with raw_utf8, well-formed UTF-8
 * is passed through as well (RFC 6533 §3 utf-8-addr-unitext) */
static int
xtext_decode_x(const unsigned char *s, size_t n, buf_t *out, bool raw_utf8)
{
	size_t mark = out->len;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		if (c == '+') {
			/* hexchar = "+" 2HEX */
			if (n - i < 3 || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
				goto bad;
			buf_putc(out, (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2])));
			i += 3;
			continue;
		}
		if (c >= 33 && c <= 126 && c != '=') {
			buf_putc(out, (char)c);
			i++;
			continue;
		}
		size_t l = raw_utf8 && c >= 0x80 ? utf8_len(s + i, n - i) : 0;
		if (l == 0)
			goto bad;
		buf_append(out, s + i, l);
		i += l;
	}
	return 0;
bad:
	out->len = mark;
	if (out->data)
		out->data[mark] = '\0';
	return -1;
}

bool
xtext_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n; i++) {
		if (u[i] == '+') {
			if (n - i < 3 || hexval(u[i + 1]) < 0 || hexval(u[i + 2]) < 0)
				return false;
			i += 2;
		} else if (u[i] < 33 || u[i] > 126 || u[i] == '=') {
			return false;
		}
	}
	return true;
}

int
xtext_decode(const char *s, size_t n, buf_t *out)
{
	return xtext_decode_x((const unsigned char *)s, n, out, false);
}

void
xtext_encode(buf_t *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 33 || c > 126 || c == '+' || c == '=') {
			char t[3] = {'+', hex[c >> 4], hex[c & 15]};
			buf_append(out, t, 3);
		} else {
			buf_putc(out, (char)c);
		}
	}
}

/* ------------------------------------------------------------------ */
/* MAIL / RCPT parameters (RFC 5321 §4.1.2 esmtp-param) */

struct param {
	const char *kw;
	size_t kwlen;
	const char *val; /* NULL when there is no "=" */
	size_t vallen;
};

/*
 * Position just after the '>' that ends the path starting at s[0] == '<',
 * 0 when none. A lexical scan (quoted strings and quoted-pairs skipped),
 * only used to look at the parameters before the path is parsed for real;
 * it is exact for every path the parser accepts.
 */
static size_t
path_scan_end(const char *s, size_t n)
{
	bool q = false;
	if (n == 0 || s[0] != '<')
		return 0;
	for (size_t i = 1; i < n; i++) {
		if (q && s[i] == '\\')
			i++;
		else if (s[i] == '"')
			q = !q;
		else if (!q && s[i] == '>')
			return i + 1;
	}
	return 0;
}

/* next space-separated token of s[*i..n) as a param; false at the end */
static bool
next_token(const char *s, size_t n, size_t *i, const char **tok, size_t *toklen)
{
	while (*i < n && s[*i] == ' ')
		(*i)++;
	if (*i >= n)
		return false;
	*tok = s + *i;
	while (*i < n && s[*i] != ' ')
		(*i)++;
	*toklen = (size_t)(s + *i - *tok);
	return true;
}

/* esmtp-keyword ["=" esmtp-value]; esmtp-value = 1*(%d33-60 / %d62-126),
 * plus UTF8-non-ascii under SMTPUTF8 (RFC 6531 §3.3) */
static bool
param_split(const char *t, size_t n, bool utf8, struct param *pr)
{
	const unsigned char *u = (const unsigned char *)t;
	size_t i = 0;
	if (n == 0 || !is_letdig(u[0]))
		return false;
	while (i < n && (is_letdig(u[i]) || u[i] == '-'))
		i++;
	pr->kw = t;
	pr->kwlen = i;
	pr->val = NULL;
	pr->vallen = 0;
	if (i == n)
		return true;
	if (u[i] != '=' || i + 1 == n)
		return false;
	i++;
	pr->val = t + i;
	pr->vallen = n - i;
	for (; i < n;) {
		if (u[i] >= 33 && u[i] <= 126 && u[i] != '=') {
			i++;
			continue;
		}
		size_t l = utf8 && u[i] >= 0x80 ? utf8_len(u + i, n - i) : 0;
		if (l == 0)
			return false;
		i += l;
	}
	return true;
}

static bool
params_have(const char *s, size_t n, const char *kw)
{
	size_t i = 0, tl;
	const char *t;
	while (next_token(s, n, &i, &t, &tl)) {
		size_t k = 0;
		while (k < tl && t[k] != '=')
			k++;
		if (ascii_ieq(t, k, kw))
			return true;
	}
	return false;
}

enum {
	MP_SIZE = 0x01,
	MP_BODY = 0x02,
	MP_SMTPUTF8 = 0x04,
	MP_RET = 0x08,
	MP_ENVID = 0x10,
	MP_AUTH = 0x20,
	MP_REQUIRETLS = 0x40,
	RP_NOTIFY = 0x01,
	RP_ORCPT = 0x02,
};

static const char E_MAIL_UNSUPP[] = "555 5.5.4 Unsupported MAIL parameter";
static const char E_MAIL_DUP[] = "501 5.5.4 Duplicate MAIL parameter";
static const char E_MAIL_SYNTAX[] = "501 5.5.4 Malformed MAIL parameter";
static const char E_RCPT_UNSUPP[] = "555 5.5.4 Unsupported RCPT parameter";
static const char E_RCPT_DUP[] = "501 5.5.4 Duplicate RCPT parameter";
static const char E_RCPT_SYNTAX[] = "501 5.5.4 Malformed RCPT parameter";

/* SIZE = 1*20DIGIT (RFC 1870 §3) */
static const char *
parse_size(const struct param *pr, uint64_t *out)
{
	if (pr->val == NULL || pr->vallen > 20)
		return "501 5.5.4 Invalid SIZE value";
	uint64_t v = 0;
	for (size_t i = 0; i < pr->vallen; i++) {
		unsigned char c = (unsigned char)pr->val[i];
		if (!is_digit(c))
			return "501 5.5.4 Invalid SIZE value";
		unsigned d = (unsigned)(c - '0');
		if (v > (UINT64_MAX - d) / 10)
			return "552 5.3.4 Message size exceeds fixed maximum message size";
		v = v * 10 + d;
	}
	*out = v;
	return NULL;
}

/* decoded xtext value: at most max octets, printable (no NUL/CR/LF/controls);
 * octets >= 0x80 only as well-formed UTF-8 and only when utf8 */
static const char *
parse_xtext_value(const char *v, size_t n, size_t max, bool utf8, bool raw_utf8, char **out,
    const char *bad, const char *toolong)
{
	buf_t b = BUF_INIT;
	if (xtext_decode_x((const unsigned char *)v, n, &b, raw_utf8) < 0) {
		buf_free(&b);
		return bad;
	}
	if (b.len > max) {
		buf_free(&b);
		return toolong;
	}
	if (b.len == 0 || !printable_text((const unsigned char *)b.data, b.len, utf8)) {
		buf_free(&b);
		return bad;
	}
	*out = buf_steal(&b);
	return NULL;
}

static const char *
mail_param(const struct param *pr, unsigned offered, unsigned *seen, mail_args_t *m)
{
	unsigned bit;
	const char *e;
	if (ascii_ieq(pr->kw, pr->kwlen, "SIZE") && (offered & ARGS_SIZE))
		bit = MP_SIZE;
	else if (ascii_ieq(pr->kw, pr->kwlen, "BODY") &&
		 (offered & (ARGS_8BITMIME | ARGS_BINARYMIME)))
		bit = MP_BODY;
	else if (ascii_ieq(pr->kw, pr->kwlen, "SMTPUTF8") && (offered & ARGS_SMTPUTF8))
		bit = MP_SMTPUTF8;
	else if (ascii_ieq(pr->kw, pr->kwlen, "RET") && (offered & ARGS_DSN))
		bit = MP_RET;
	else if (ascii_ieq(pr->kw, pr->kwlen, "ENVID") && (offered & ARGS_DSN))
		bit = MP_ENVID;
	else if (ascii_ieq(pr->kw, pr->kwlen, "AUTH") && (offered & ARGS_AUTH))
		bit = MP_AUTH;
	else if (ascii_ieq(pr->kw, pr->kwlen, "REQUIRETLS") && (offered & ARGS_REQUIRETLS))
		bit = MP_REQUIRETLS;
	else if (ascii_ieq(pr->kw, pr->kwlen, "REQUIRETLS") && offered != 0)
		/* RFC 8689 §2: only on a session protected by TLS */
		return "530 5.7.10 REQUIRETLS needs a TLS session: say STARTTLS first (RFC 8689)";
	else
		return E_MAIL_UNSUPP; /* RFC 5321 §4.1.1.11 */
	if (*seen & bit)
		return E_MAIL_DUP;
	*seen |= bit;
	if (bit != MP_SMTPUTF8 && bit != MP_REQUIRETLS && pr->val == NULL)
		return E_MAIL_SYNTAX;

	switch (bit) {
	case MP_SIZE:
		return parse_size(pr, &m->size);
	case MP_BODY: /* RFC 6152 §2, RFC 3030 §3 */
		if (ascii_ieq(pr->val, pr->vallen, "7BIT")) {
			m->body = BODY_7BIT;
		} else if (ascii_ieq(pr->val, pr->vallen, "8BITMIME")) {
			if (!(offered & ARGS_8BITMIME))
				return E_MAIL_UNSUPP;
			m->body = BODY_8BITMIME;
		} else if (ascii_ieq(pr->val, pr->vallen, "BINARYMIME")) {
			if (!(offered & ARGS_BINARYMIME))
				return E_MAIL_UNSUPP;
			m->body = BODY_BINARYMIME;
		} else {
			return "501 5.5.4 Invalid BODY value";
		}
		return NULL;
	case MP_SMTPUTF8: /* RFC 6531 §3.4: no value */
		if (pr->val != NULL)
			return "501 5.5.4 SMTPUTF8 takes no value";
		m->smtputf8 = true;
		return NULL;
	case MP_REQUIRETLS: /* RFC 8689 §2: "REQUIRETLS", no value */
		if (pr->val != NULL)
			return "501 5.5.4 REQUIRETLS takes no value";
		m->requiretls = true;
		return NULL;
	case MP_RET: /* RFC 3461 §4.3 */
		if (ascii_ieq(pr->val, pr->vallen, "FULL"))
			m->ret = RET_FULL;
		else if (ascii_ieq(pr->val, pr->vallen, "HDRS"))
			m->ret = RET_HDRS;
		else
			return "501 5.5.4 Invalid RET value";
		return NULL;
	case MP_ENVID: /* RFC 3461 §4.4: printable US-ASCII, <= 100 */
		return parse_xtext_value(pr->val, pr->vallen, ENVID_MAX, false, false, &m->envid,
		    "501 5.5.4 Invalid ENVID value", "501 5.5.4 ENVID too long");
	case MP_AUTH: /* RFC 4954 §5: "<>" or xtext of a mailbox */
		if (pr->vallen == 2 && memcmp(pr->val, "<>", 2) == 0) {
			m->auth = xstrdup("<>");
			return NULL;
		}
		e = parse_xtext_value(pr->val, pr->vallen, AUTH_MAX, true, false, &m->auth,
		    "501 5.5.4 Invalid AUTH value", "501 5.5.4 AUTH value too long");
		return e;
	default:
		return E_MAIL_UNSUPP;
	}
}

int
mail_args_parse(const char *s, size_t n, unsigned offered, mail_args_t *out, const char **err)
{
	size_t i = 0, used = 0;
	enum aerr ae = AE_SYNTAX;
	memset(out, 0, sizeof *out);

	/* RFC 5321 says "MAIL FROM:<path>", but many clients put a space
	 * after the colon */
	while (i < n && s[i] == ' ')
		i++;
	/* SMTPUTF8 may follow the path and decides whether UTF-8 is allowed
	 * in it (RFC 6531 §3.4), so look at the parameters first */
	bool utf8 = false;
	size_t pe = path_scan_end(s + i, n - i);
	if (pe && (offered & ARGS_SMTPUTF8))
		utf8 = params_have(s + i + pe, n - i - pe, "SMTPUTF8");

	unsigned flags = ADDR_NULL_OK | (utf8 ? ADDR_UTF8 : 0);
	if (parse_path(s + i, n - i, flags, &out->from, &used, &ae) < 0) {
		*err = aerr_mail[ae];
		return -1;
	}
	i += used;
	if (i < n && s[i] != ' ') {
		*err = aerr_mail[AE_TRAILING];
		goto fail;
	}

	unsigned seen = 0;
	const char *t;
	size_t tl;
	while (next_token(s, n, &i, &t, &tl)) {
		struct param pr;
		if (!param_split(t, tl, utf8, &pr)) {
			*err = E_MAIL_SYNTAX;
			goto fail;
		}
		const char *e = mail_param(&pr, offered, &seen, out);
		if (e) {
			*err = e;
			goto fail;
		}
	}
	/* scan and parse agree (see path_scan_end); belt and braces */
	if (out->from.utf8 && !out->smtputf8) {
		*err = aerr_mail[AE_NEEDUTF8];
		goto fail;
	}
	return 0;

fail:
	mail_args_free(out);
	return -1;
}

void
mail_args_free(mail_args_t *m)
{
	if (m == NULL)
		return;
	addr_free(&m->from);
	xfree(m->envid);
	xfree(m->auth);
	memset(m, 0, sizeof *m);
}

/* NOTIFY = "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ) (RFC 3461 §4.1) */
static const char *
parse_notify(const char *v, size_t n, unsigned *out)
{
	static const char bad[] = "501 5.5.4 Invalid NOTIFY value";
	unsigned bits = 0;
	size_t i = 0;
	for (;;) {
		size_t st = i;
		while (i < n && v[i] != ',')
			i++;
		size_t l = i - st;
		if (ascii_ieq(v + st, l, "NEVER"))
			bits |= NOTIFY_NEVER;
		else if (ascii_ieq(v + st, l, "SUCCESS"))
			bits |= NOTIFY_SUCCESS;
		else if (ascii_ieq(v + st, l, "FAILURE"))
			bits |= NOTIFY_FAILURE;
		else if (ascii_ieq(v + st, l, "DELAY"))
			bits |= NOTIFY_DELAY;
		else
			return bad;
		if (i >= n)
			break;
		i++; /* ',' */
	}
	if ((bits & NOTIFY_NEVER) && bits != NOTIFY_NEVER)
		return bad;
	*out = bits;
	return NULL;
}

/* ORCPT = addr-type ";" xtext (RFC 3461 §4.2); addr-type is an atom, e.g.
 * "rfc822" or "utf-8" (RFC 6533 §3, whose unitext form may carry raw UTF-8
 * under SMTPUTF8) */
static const char *
parse_orcpt(const char *v, size_t n, bool utf8_ok, char **out)
{
	static const char bad[] = "501 5.5.4 Invalid ORCPT value";
	if (n > ORCPT_MAX)
		return "501 5.5.4 ORCPT too long";
	size_t k = 0;
	while (k < n && is_atext((unsigned char)v[k]))
		k++;
	if (k == 0 || k >= n || v[k] != ';')
		return bad;
	char *dec = NULL;
	const char *e = parse_xtext_value(v + k + 1, n - k - 1, ORCPT_MAX, utf8_ok, utf8_ok, &dec,
	    bad, "501 5.5.4 ORCPT too long");
	if (e)
		return e;
	buf_t b = BUF_INIT;
	buf_append(&b, v, k + 1);
	buf_puts(&b, dec);
	xfree(dec);
	*out = buf_steal(&b);
	return NULL;
}

int
rcpt_args_parse(const char *s, size_t n, unsigned offered, bool utf8_ok, rcpt_args_t *out,
    const char **err)
{
	size_t i = 0, used = 0;
	enum aerr ae = AE_SYNTAX;
	memset(out, 0, sizeof *out);

	while (i < n && s[i] == ' ')
		i++;
	unsigned flags = ADDR_POSTMASTER_OK | (utf8_ok ? ADDR_UTF8 : 0);
	if (parse_path(s + i, n - i, flags, &out->to, &used, &ae) < 0) {
		*err = aerr_rcpt[ae];
		return -1;
	}
	i += used;
	if (i < n && s[i] != ' ') {
		*err = aerr_rcpt[AE_TRAILING];
		goto fail;
	}

	unsigned seen = 0;
	const char *t;
	size_t tl;
	while (next_token(s, n, &i, &t, &tl)) {
		struct param pr;
		const char *e;
		if (!param_split(t, tl, utf8_ok, &pr)) {
			*err = E_RCPT_SYNTAX;
			goto fail;
		}
		unsigned bit;
		if (ascii_ieq(pr.kw, pr.kwlen, "NOTIFY") && (offered & ARGS_DSN))
			bit = RP_NOTIFY;
		else if (ascii_ieq(pr.kw, pr.kwlen, "ORCPT") && (offered & ARGS_DSN))
			bit = RP_ORCPT;
		else {
			*err = E_RCPT_UNSUPP;
			goto fail;
		}
		if (seen & bit) {
			*err = E_RCPT_DUP;
			goto fail;
		}
		seen |= bit;
		if (pr.val == NULL) {
			*err = E_RCPT_SYNTAX;
			goto fail;
		}
		if (bit == RP_NOTIFY)
			e = parse_notify(pr.val, pr.vallen, &out->notify);
		else
			e = parse_orcpt(pr.val, pr.vallen, utf8_ok, &out->orcpt);
		if (e) {
			*err = e;
			goto fail;
		}
	}
	return 0;

fail:
	rcpt_args_free(out);
	return -1;
}

void
rcpt_args_free(rcpt_args_t *r)
{
	if (r == NULL)
		return;
	addr_free(&r->to);
	xfree(r->orcpt);
	memset(r, 0, sizeof *r);
}
