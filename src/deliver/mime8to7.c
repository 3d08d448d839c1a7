/*
 * mime8to7.c - DELIVER: 8-bit to 7-bit MIME conversion for a next hop
 * without 8BITMIME (see mime8to7.h for the contract).
 *
 * One recursive walk over entities: header section, then either a leaf
 * body (re-encoded as quoted-printable when it holds 8-bit octets), a
 * multipart body (parts between boundary lines, RFC 2046 §5.1.1) or an
 * encapsulated message (message/rfc822 and the like: an entity again).
 * An entity with no 8-bit octet is copied whole and not even parsed.
 */
#include "deliver/mime8to7.h"

#include <string.h>
#include <strings.h>

enum { CTE_NONE, CTE_IDENTITY, CTE_7BIT, CTE_ENCODED };
enum { DEF_TEXT, DEF_MESSAGE }; /* default Content-Type of an entity */

#define MIME_BOUNDARY_MAX 200 /* RFC 2046 says 70; be lenient */

typedef struct hinfo {
	char type[32];  /* lowercased, "" when absent */
	char boundary[MIME_BOUNDARY_MAX + 1];
	size_t blen;    /* 0: no boundary parameter */
	bool digest;    /* multipart/digest: parts default to message/rfc822 */
	int cte;        /* CTE_* */
	bool has_cte;
	bool has_mimever;
} hinfo_t;

typedef struct conv {
	buf_t *out;
	const char *why;
} conv_t;

bool
mime8to7_has_8bit(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* quoted-printable (RFC 2045 §6.7)                                    */

#define QP_MAX 76 /* octets in an encoded line, the soft-break '=' included */

static void
qp_line(const char *p, size_t n, buf_t *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		bool last = i + 1 == n;
		for (;;) {
			/* rule 2 (literal), rule 3 (space/tab, not at the end of the
			 * line); a '-' opening a line is encoded so that no encoded
			 * line can read as a boundary delimiter */
			bool lit = ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last)) &&
			    !(col == 0 && c == '-');
			size_t t = lit ? 1 : 3;
			/* rule 5: room for the soft break '=' unless this ends the line */
			size_t limit = last ? QP_MAX : QP_MAX - 1;
			if (col > 0 && col + t > limit) {
				buf_append(out, "=\r\n", 3);
				col = 0;
				continue; /* col changed: decide again */
			}
			if (lit) {
				buf_putc(out, (char)c);
			} else {
				char e[3] = {'=', hex[c >> 4], hex[c & 15]};
				buf_append(out, e, 3);
			}
			col += t;
			break;
		}
	}
}

void
mime8to7_qp_encode(const char *p, size_t n, buf_t *out)
{
	size_t i = 0;
	while (i < n) {
		const char *crlf = NULL;
		for (size_t k = i; k + 1 < n; k++) {
			if (p[k] == '\r' && p[k + 1] == '\n') {
				crlf = p + k;
				break;
			}
		}
		size_t e = crlf ? (size_t)(crlf - p) : n;
		qp_line(p + i, e - i, out);
		if (!crlf)
			break;
		buf_append(out, "\r\n", 2);
		i = e + 2;
	}
}

/* ------------------------------------------------------------------ */
/* header fields (RFC 5322 §2.2, RFC 2045 §5, §6)                      */

/* Skip white space, line folds and (nested) comments. */
static size_t
skip_cfws(const char *v, size_t n, size_t i)
{
	int depth = 0;
	while (i < n) {
		char c = v[i];
		if (depth > 0) {
			if (c == '\\' && i + 1 < n)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			i++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			i++;
		} else if (c == '(') {
			depth = 1;
			i++;
		} else {
			break;
		}
	}
	return i;
}

static bool
is_tchar(char c)
{
	return (unsigned char)c > 32 && (unsigned char)c < 127 && !strchr("()<>@,;:\\\"/[]?=", c);
}

/* A token at v[i]; its length (0: none). */
static size_t
token_len(const char *v, size_t n, size_t i)
{
	size_t k = i;
	while (k < n && is_tchar(v[k]))
		k++;
	return k - i;
}

static void
copy_lower(char *dst, size_t cap, const char *s, size_t n)
{
	size_t k = n < cap - 1 ? n : cap - 1;
	for (size_t i = 0; i < k; i++) {
		char c = s[i];
		dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	dst[k] = '\0';
}

/* Content-Type: type "/" subtype *(";" parameter); only type, the
 * subtype "digest" and the boundary parameter matter here. */
static void
parse_ctype(const char *v, size_t n, hinfo_t *h)
{
	size_t i = skip_cfws(v, n, 0);
	size_t t = token_len(v, n, i);
	copy_lower(h->type, sizeof h->type, v + i, t);
	i = skip_cfws(v, n, i + t);
	if (i < n && v[i] == '/') {
		i = skip_cfws(v, n, i + 1);
		size_t s = token_len(v, n, i);
		h->digest = s == 6 && strncasecmp(v + i, "digest", 6) == 0;
		i += s;
	}
	h->blen = 0;
	for (;;) {
		i = skip_cfws(v, n, i);
		if (i >= n || v[i] != ';')
			return;
		i = skip_cfws(v, n, i + 1);
		size_t nl = token_len(v, n, i);
		const char *name = v + i;
		i = skip_cfws(v, n, i + nl);
		if (i >= n || v[i] != '=')
			return;
		i = skip_cfws(v, n, i + 1);
		char val[MIME_BOUNDARY_MAX + 1];
		size_t vl = 0;
		bool too_long = false;
		if (i < n && v[i] == '"') {
			for (i++; i < n && v[i] != '"'; i++) {
				if (v[i] == '\\' && i + 1 < n)
					i++;
				if (v[i] == '\r' || v[i] == '\n')
					continue; /* a fold inside the quotes */
				if (vl < MIME_BOUNDARY_MAX)
					val[vl++] = v[i];
				else
					too_long = true;
			}
			if (i < n)
				i++;
		} else {
			size_t tl = token_len(v, n, i);
			too_long = tl > MIME_BOUNDARY_MAX;
			vl = too_long ? 0 : tl;
			memcpy(val, v + i, vl);
			i += tl;
		}
		if (nl == 8 && strncasecmp(name, "boundary", 8) == 0) {
			if (too_long || vl == 0) {
				h->blen = 0;
			} else {
				memcpy(h->boundary, val, vl);
				h->boundary[vl] = '\0';
				h->blen = vl;
			}
		}
	}
}

static int
parse_cte(const char *v, size_t n)
{
	size_t i = skip_cfws(v, n, 0);
	size_t t = token_len(v, n, i);
	const char *s = v + i;
	if (t == 4 && strncasecmp(s, "7bit", 4) == 0)
		return CTE_7BIT;
	if ((t == 4 && strncasecmp(s, "8bit", 4) == 0) ||
	    (t == 6 && strncasecmp(s, "binary", 6) == 0))
		return CTE_IDENTITY;
	return CTE_ENCODED; /* quoted-printable, base64, x-token */
}

/* The end of the field starting at h[i] (after its last CRLF, folds
 * included), within h[0..n). */
static size_t
field_end(const char *h, size_t n, size_t i)
{
	for (;;) {
		const char *lf = memchr(h + i, '\n', n - i);
		if (lf == NULL)
			return n;
		i = (size_t)(lf - h) + 1;
		if (i >= n || (h[i] != ' ' && h[i] != '\t'))
			return i;
	}
}

/* A field named name (lowercase) at h[s..e)? *val, *vn: after the colon. */
static bool
field_is(const char *h, size_t s, size_t e, const char *name, const char **val, size_t *vn)
{
	size_t nl = strlen(name);
	if (e - s <= nl || strncasecmp(h + s, name, nl) != 0)
		return false;
	size_t i = s + nl;
	while (i < e && (h[i] == ' ' || h[i] == '\t'))
		i++;
	if (i >= e || h[i] != ':')
		return false;
	*val = h + i + 1;
	*vn = e - i - 1;
	return true;
}

static void
parse_header(const char *h, size_t n, hinfo_t *hi)
{
	memset(hi, 0, sizeof *hi);
	for (size_t s = 0; s < n;) {
		size_t e = field_end(h, n, s);
		const char *v;
		size_t vn;
		if (field_is(h, s, e, "content-type", &v, &vn)) {
			parse_ctype(v, vn, hi);
		} else if (field_is(h, s, e, "content-transfer-encoding", &v, &vn)) {
			hi->cte = parse_cte(v, vn);
			hi->has_cte = true;
		} else if (field_is(h, s, e, "mime-version", &v, &vn)) {
			hi->has_mimever = true;
		}
		s = e;
	}
}

/* Copy the header section without its Content-Transfer-Encoding fields,
 * then add cte (a whole field line, or NULL) and, at the top, MIME-Version
 * when missing; then the empty line. */
static void
put_header(conv_t *cv, const char *h, size_t n, const hinfo_t *hi, const char *cte, bool top)
{
	for (size_t s = 0; s < n;) {
		size_t e = field_end(h, n, s);
		const char *v;
		size_t vn;
		if (!field_is(h, s, e, "content-transfer-encoding", &v, &vn))
			buf_append(cv->out, h + s, e - s);
		s = e;
	}
	if (cte)
		buf_puts(cv->out, cte);
	if (top && !hi->has_mimever)
		buf_puts(cv->out, "MIME-Version: 1.0\r\n");
	buf_append(cv->out, "\r\n", 2);
}

/* ------------------------------------------------------------------ */
/* the walk                                                            */

static int conv_entity(conv_t *cv, const char *p, size_t n, bool top, int def, int depth);

/* Text outside any part: 8-bit octets become '?' (no MIME reader shows it). */
static void
put_outside(conv_t *cv, const char *p, size_t n)
{
	size_t o = cv->out->len;
	buf_append(cv->out, p, n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)cv->out->data[o + i] >= 0x80)
			cv->out->data[o + i] = '?';
}

typedef struct delim {
	size_t q;   /* start of the delimiter line */
	size_t end; /* after its CRLF (or the end of the body) */
	bool close; /* "--boundary--" */
} delim_t;

/* The next delimiter line at or after the line start from: "--" boundary
 * ["--"] *(SP / HTAB) then CRLF or the end (RFC 2046 §5.1.1). */
static bool
find_delim(const char *b, size_t n, size_t from, const hinfo_t *hi, delim_t *d)
{
	size_t q = from;
	while (q < n) {
		if (n - q >= 2 + hi->blen && b[q] == '-' && b[q + 1] == '-' &&
		    memcmp(b + q + 2, hi->boundary, hi->blen) == 0) {
			size_t r = q + 2 + hi->blen;
			bool close = n - r >= 2 && b[r] == '-' && b[r + 1] == '-';
			if (close)
				r += 2;
			while (r < n && (b[r] == ' ' || b[r] == '\t'))
				r++;
			if (r == n || (n - r >= 2 && b[r] == '\r' && b[r + 1] == '\n')) {
				*d = (delim_t){q, r == n ? n : r + 2, close};
				return true;
			}
		}
		const char *crlf = NULL;
		for (size_t k = q; k + 1 < n; k++) {
			if (b[k] == '\r' && b[k + 1] == '\n') {
				crlf = b + k;
				break;
			}
		}
		if (crlf == NULL)
			return false;
		q = (size_t)(crlf - b) + 2;
	}
	return false;
}

static int
conv_multipart(conv_t *cv, const char *b, size_t n, const hinfo_t *hi, int depth)
{
	delim_t d;
	if (!find_delim(b, n, 0, hi, &d)) {
		cv->why = "8-bit octets in a multipart without its boundary";
		return -1;
	}
	put_outside(cv, b, d.q); /* the preamble and the CRLF before the delimiter */
	int def = hi->digest ? DEF_MESSAGE : DEF_TEXT;
	for (;;) {
		buf_append(cv->out, b + d.q, d.end - d.q);
		if (d.close) {
			put_outside(cv, b + d.end, n - d.end); /* the epilogue */
			return 0;
		}
		size_t ps = d.end;
		delim_t nd;
		if (!find_delim(b, n, ps, hi, &nd)) /* no close delimiter: the part runs to the end */
			return conv_entity(cv, b + ps, n - ps, false, def, depth + 1);
		/* the CRLF before a delimiter belongs to the delimiter */
		size_t pe = nd.q > ps ? nd.q - 2 : ps;
		if (conv_entity(cv, b + ps, pe - ps, false, def, depth + 1) < 0)
			return -1;
		buf_append(cv->out, b + pe, nd.q - pe);
		d = nd;
	}
}

static int
conv_entity(conv_t *cv, const char *p, size_t n, bool top, int def, int depth)
{
	if (!mime8to7_has_8bit(p, n)) {
		buf_append(cv->out, p, n);
		return 0;
	}
	if (depth > MIME8TO7_MAX_DEPTH) {
		cv->why = "MIME parts nested too deeply to convert";
		return -1;
	}
	/* the header section ends at the first empty line (it keeps its last CRLF) */
	size_t hlen, boff;
	if (n >= 2 && p[0] == '\r' && p[1] == '\n') {
		hlen = 0;
		boff = 2;
	} else {
		const char *e = memmem(p, n, "\r\n\r\n", 4);
		hlen = e ? (size_t)(e - p) + 2 : n;
		boff = e ? hlen + 2 : n;
	}
	if (mime8to7_has_8bit(p, hlen)) {
		/* RFC 6152 §3: what cannot be converted is returned */
		cv->why = "8-bit octets in a header section cannot be converted to 7 bit";
		return -1;
	}
	hinfo_t hi;
	parse_header(p, hlen, &hi);
	const char *body = p + boff;
	size_t bn = n - boff;
	bool multi = strcmp(hi.type, "multipart") == 0;
	bool message = strcmp(hi.type, "message") == 0 || (hi.type[0] == '\0' && def == DEF_MESSAGE);
	if (multi || message) {
		/* RFC 2045 §6.4: a composite type is never encoded itself; an
		 * 8bit or binary label becomes 7bit once its leaves are */
		if (hi.has_cte && hi.cte == CTE_ENCODED) {
			cv->why = "8-bit octets under a multipart or message part with an encoding";
			return -1;
		}
		if (multi && hi.blen == 0) {
			cv->why = "8-bit octets in a multipart without a boundary parameter";
			return -1;
		}
		put_header(cv, p, hlen, &hi, hi.has_cte ? "Content-Transfer-Encoding: 7bit\r\n" : NULL,
		    top);
		if (multi)
			return conv_multipart(cv, body, bn, &hi, depth);
		return conv_entity(cv, body, bn, false, DEF_TEXT, depth + 1);
	}
	if (hi.has_cte && hi.cte == CTE_ENCODED) {
		cv->why = "raw 8-bit octets in a part already encoded (quoted-printable, base64 or other)";
		return -1;
	}
	put_header(cv, p, hlen, &hi, "Content-Transfer-Encoding: quoted-printable\r\n", top);
	mime8to7_qp_encode(body, bn, cv->out);
	return 0;
}

int
mime8to7_convert(const char *p, size_t n, buf_t *out, const char **why)
{
	if (!mime8to7_has_8bit(p, n))
		return 1;
	conv_t cv = {out, NULL};
	if (conv_entity(&cv, p, n, true, DEF_TEXT, 0) < 0) {
		*why = cv.why;
		return -1;
	}
	return 0;
}
