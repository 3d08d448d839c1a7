/*
 * content.c - FILTER: header/body check tables (PCRE2) and the MIME walk
 * with quoted-printable and base64 decoding (contract in content.h).
 *
 * Table syntax (Postfix's pcre tables, the parts tern takes):
 *   # comment; blank lines ignored; a line starting with white space
 *   # continues the one before
 *   /pattern/flags ACTION [text]
 *   !/pattern/flags ACTION [text]      (matches when the pattern does not)
 * flags: i (caseless), m (multiline), s (dot matches all), x (extended),
 * U (ungreedy). ACTION: REJECT [text], DISCARD [text], HOLD [text],
 * WARN [text], IGNORE, PREPEND Name: value. Patterns are matched on bytes
 * (no UTF mode: a message's bytes need not be valid UTF-8).
 * Must not: block; trust the message (every length is bounded).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "filter/content.h"

#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

#define CONTENT_MAX_FILE (16 * 1024 * 1024)

typedef struct rule {
	pcre2_code *re;
	pcre2_code *block_re; /* for content_table_sieve; NULL: the rule is never sieved */
	bool negate;
	enum content_action action;
	char *text;
	unsigned line;
} rule_t;

struct content_table {
	char *file;
	rule_t *r;
	size_t n;
	pcre2_match_data *md;
	pcre2_match_context *mc;
};

static const struct {
	const char *name;
	enum content_action a;
} actions[] = {
	{"REJECT", CONTENT_REJECT}, {"DISCARD", CONTENT_DISCARD}, {"HOLD", CONTENT_HOLD},
	{"WARN", CONTENT_WARN}, {"IGNORE", CONTENT_IGNORE}, {"PREPEND", CONTENT_PREPEND},
};

static bool
is_header_line(const char *t)
{
	size_t k = 0;
	while (t[k] > 0x20 && t[k] < 0x7f && t[k] != ':')
		k++;
	return k > 0 && t[k] == ':';
}

/*
 * The sieve (content_table_sieve). A body rule is tried against each line
 * on its own, at about 80 ns per rule and 70-octet line: 50 rules over a
 * 4 KB message cost 200 us or more, mostly in the per-call work. One match
 * of the rule over all the lines joined by LF, in multiline mode, costs
 * about half. When that finds nothing, no line can match the rule alone:
 * a match of a line is a match of the joined text at the same place,
 * since LF, like the ends of a subject, is no word character and ^ and $
 * match beside it in multiline mode; more characters around only add
 * ways to match. That holds only for rules that cannot look past the
 * line's ends or give up backtracking, so a rule is sieved only when its
 * pattern has none of: lookaround and every other (? group but (?: and
 * the option settings imnsU (no '-': (?-m) would undo multiline), (*VERB),
 * \A \Z \z \G \C, a possessive quantifier, the x flag (white space
 * inside a quantifier); a negated rule (!/.../) never is. Anything odd in
 * a pattern only makes it unsieved (tried on every line, as before).
 */
static bool
block_safe(const char *pat, size_t n, uint32_t opts)
{
	if (opts & PCRE2_EXTENDED)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = pat[i];
		if (c == '\\') {
			if (i + 1 >= n)
				return false;
			char e = pat[++i];
			if (e == 'A' || e == 'Z' || e == 'z' || e == 'G' || e == 'C' || e == 'Q')
				return false;
			continue;
		}
		if (c == '(' && i + 1 < n && pat[i + 1] == '*')
			return false;
		if (c == '(' && i + 1 < n && pat[i + 1] == '?') {
			size_t k = i + 2;
			while (k < n && strchr("imnsU", pat[k]) && pat[k] != '\0')
				k++;
			if (k >= n || (pat[k] != ':' && pat[k] != ')'))
				return false;
			i = k;
			continue;
		}
		if ((c == '*' || c == '+' || c == '?' || c == '}') && i + 1 < n && pat[i + 1] == '+')
			return false;
	}
	return true;
}

/* one logical line; 0, or -1 with an error appended */
static int
parse_rule(content_table_t *t, const char *name, unsigned lineno, char *s, buf_t *err)
{
	rule_t r = {0};
	r.line = lineno;
	if (*s == '!') {
		r.negate = true;
		s++;
	}
	if (*s != '/') {
		buf_printf(err, "%s:%u: expected /pattern/flags ACTION [text]\n", name, lineno);
		return -1;
	}
	char *pat = ++s, *end = NULL;
	for (; *s; s++) {
		if (*s == '\\' && s[1]) {
			s++;
			continue;
		}
		if (*s == '/') {
			end = s;
			break;
		}
	}
	if (!end) {
		buf_printf(err, "%s:%u: the pattern has no closing /\n", name, lineno);
		return -1;
	}
	uint32_t opts = 0;
	for (s = end + 1; *s && !isspace((unsigned char)*s); s++) {
		switch (*s) {
		case 'i': opts |= PCRE2_CASELESS; break;
		case 'm': opts |= PCRE2_MULTILINE; break;
		case 's': opts |= PCRE2_DOTALL; break;
		case 'x': opts |= PCRE2_EXTENDED; break;
		case 'U': opts |= PCRE2_UNGREEDY; break;
		default:
			buf_printf(err, "%s:%u: unknown pattern flag '%c' (i, m, s, x, U)\n", name, lineno,
			    *s);
			return -1;
		}
	}
	while (isspace((unsigned char)*s))
		s++;
	char *act = s;
	while (*s && !isspace((unsigned char)*s))
		s++;
	size_t alen = (size_t)(s - act);
	while (isspace((unsigned char)*s))
		s++;
	char *text = s;
	size_t tl = strlen(text);
	while (tl > 0 && isspace((unsigned char)text[tl - 1]))
		text[--tl] = '\0';
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
		if (strlen(actions[i].name) == alen && strncasecmp(act, actions[i].name, alen) == 0)
			r.action = actions[i].a;
	if (r.action == CONTENT_NONE) {
		buf_printf(err, "%s:%u: unknown action \"%.*s\" (REJECT, DISCARD, HOLD, WARN, IGNORE, "
		    "PREPEND)\n", name, lineno, (int)(alen > 40 ? 40 : alen), act);
		return -1;
	}
	if (tl > CONTENT_TEXT_MAX) {
		buf_printf(err, "%s:%u: the text is longer than %d octets\n", name, lineno,
		    CONTENT_TEXT_MAX);
		return -1;
	}
	for (size_t i = 0; i < tl; i++)
		if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] == 0x7f) {
			buf_printf(err, "%s:%u: a control character in the text\n", name, lineno);
			return -1;
		}
	if (r.action == CONTENT_IGNORE && tl) {
		buf_printf(err, "%s:%u: IGNORE takes no text\n", name, lineno);
		return -1;
	}
	if (r.action == CONTENT_PREPEND && !is_header_line(text)) {
		buf_printf(err, "%s:%u: PREPEND needs a header field, \"Name: value\"\n", name, lineno);
		return -1;
	}
	int ec;
	PCRE2_SIZE eo;
	r.re = pcre2_compile((PCRE2_SPTR)pat, (PCRE2_SIZE)(end - pat), opts, &ec, &eo, NULL);
	if (!r.re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(ec, msg, sizeof msg);
		buf_printf(err, "%s:%u: bad pattern: %s at offset %zu\n", name, lineno, (char *)msg,
		    (size_t)eo);
		return -1;
	}
	if (!r.negate && block_safe(pat, (size_t)(end - pat), opts))
		r.block_re = pcre2_compile((PCRE2_SPTR)pat, (PCRE2_SIZE)(end - pat),
		    opts | PCRE2_MULTILINE, &ec, &eo, NULL);
	r.text = xstrdup(text);
	t->r = xrealloc(t->r, (t->n + 1) * sizeof *t->r);
	t->r[t->n++] = r;
	return 0;
}

content_table_t *
content_table_parse(const char *name, const char *data, size_t n, buf_t *err)
{
	content_table_t *t = xcalloc(1, sizeof *t);
	t->file = xstrdup(name);
	buf_t logical = BUF_INIT;
	unsigned lineno = 0, start = 0;
	bool bad = false;
	size_t pos = 0;
	for (;;) {
		bool eof = pos >= n;
		const char *line = data + pos;
		size_t len = 0;
		if (!eof) {
			const char *nl = memchr(line, '\n', n - pos);
			len = nl ? (size_t)(nl - line) : n - pos;
			pos += len + (nl ? 1 : 0);
			lineno++;
			if (len && line[len - 1] == '\r')
				len--;
			if (memchr(line, '\0', len)) {
				buf_printf(err, "%s:%u: a NUL byte\n", name, lineno);
				bad = true;
				continue;
			}
		}
		bool cont = !eof && len > 0 && (line[0] == ' ' || line[0] == '\t');
		size_t k = 0;
		while (k < len && isspace((unsigned char)line[k]))
			k++;
		bool blank = !eof && (k == len || line[k] == '#');
		if (cont && !blank && logical.len) {
			buf_putc(&logical, ' ');
			buf_append(&logical, line + k, len - k);
			continue;
		}
		if (blank)
			continue;
		if (logical.len) {
			char *s = xstrndup(logical.data, logical.len);
			if (parse_rule(t, name, start, s, err) < 0)
				bad = true;
			xfree(s);
			buf_reset(&logical);
		}
		if (eof)
			break;
		if (cont) {
			buf_printf(err, "%s:%u: a continuation line with nothing to continue\n", name, lineno);
			bad = true;
			continue;
		}
		buf_append(&logical, line, len);
		start = lineno;
	}
	buf_free(&logical);
	if (bad) {
		content_table_free(t);
		return NULL;
	}
	t->md = pcre2_match_data_create(1, NULL);
	t->mc = pcre2_match_context_create(NULL);
	pcre2_set_match_limit(t->mc, CONTENT_MATCH_LIMIT);
	pcre2_set_depth_limit(t->mc, CONTENT_DEPTH_LIMIT);
	return t;
}

content_table_t *
content_table_load(const char *path, buf_t *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		buf_printf(err, "%s: cannot open: %s\n", path, strerror(errno));
		return NULL;
	}
	buf_t b = BUF_INIT;
	char chunk[8192];
	size_t got;
	while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
		buf_append(&b, chunk, got);
		if (b.len > CONTENT_MAX_FILE)
			break;
	}
	bool rerr = ferror(f);
	fclose(f);
	if (rerr || b.len > CONTENT_MAX_FILE) {
		buf_printf(err, "%s: %s\n", path, rerr ? "read error" : "larger than 16 MiB");
		buf_free(&b);
		return NULL;
	}
	content_table_t *t = content_table_parse(path, b.data ? b.data : "", b.len, err);
	buf_free(&b);
	return t;
}

void
content_table_free(content_table_t *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		pcre2_code_free(t->r[i].re);
		pcre2_code_free(t->r[i].block_re);
		xfree(t->r[i].text);
	}
	xfree(t->r);
	pcre2_match_data_free(t->md);
	pcre2_match_context_free(t->mc);
	xfree(t->file);
	xfree(t);
}

size_t
content_table_size(const content_table_t *t)
{
	return t ? t->n : 0;
}

bool *
content_table_sieve(content_table_t *t, const char *block, size_t n)
{
	bool *skip = NULL;
	for (size_t i = 0; i < t->n; i++) {
		if (t->r[i].block_re == NULL)
			continue;
		int rc = pcre2_match(t->r[i].block_re, (PCRE2_SPTR)(n ? block : ""), n, 0, 0, t->md,
		    t->mc);
		if (rc != PCRE2_ERROR_NOMATCH)
			continue; /* a match, or a limit: tried on each line */
		if (skip == NULL)
			skip = xcalloc(t->n, sizeof *skip);
		skip[i] = true;
	}
	return skip;
}

int
content_table_match(content_table_t *t, const char *p, size_t n, content_rule_ref_t *out,
    bool *limited)
{
	return content_table_match_skip(t, NULL, p, n, out, limited);
}

int
content_table_match_skip(content_table_t *t, const bool *skip, const char *p, size_t n,
    content_rule_ref_t *out, bool *limited)
{
	for (size_t i = 0; i < t->n; i++) {
		rule_t *r = &t->r[i];
		if (skip && skip[i])
			continue;
		int rc = pcre2_match(r->re, (PCRE2_SPTR)(n ? p : ""), n, 0, 0, t->md, t->mc);
		bool hit;
		if (rc >= 0) {
			hit = !r->negate;
		} else if (rc == PCRE2_ERROR_NOMATCH) {
			hit = r->negate;
		} else {
			/* match/depth/heap limit, or another error: no match either way */
			if (limited)
				*limited = true;
			continue;
		}
		if (hit) {
			out->action = r->action;
			out->text = r->text;
			out->file = t->file;
			out->line = r->line;
			return 1;
		}
	}
	return 0;
}

int
content_checks_load(const char *hdr_path, const char *body_path, content_checks_t **out,
    buf_t *err)
{
	*out = NULL;
	if (!hdr_path && !body_path)
		return 0;
	content_table_t *h = NULL, *b = NULL;
	if (hdr_path && !(h = content_table_load(hdr_path, err)))
		return -1;
	if (body_path && !(b = content_table_load(body_path, err))) {
		content_table_free(h);
		return -1;
	}
	content_checks_t *c = xcalloc(1, sizeof *c);
	c->hdr = h;
	c->body = b;
	c->refs = 1;
	*out = c;
	return 0;
}

content_checks_t *
content_checks_ref(content_checks_t *c)
{
	if (c)
		c->refs++;
	return c;
}

void
content_checks_unref(content_checks_t *c)
{
	if (!c || --c->refs > 0)
		return;
	content_table_free(c->hdr);
	content_table_free(c->body);
	xfree(c);
}

/* ---- decoding ---- */

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

size_t
content_qp_line(const char *in, size_t n, char *out, bool *soft)
{
	/* RFC 2045 §6.7: trailing white space is not part of the data */
	while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\t'))
		n--;
	*soft = n > 0 && in[n - 1] == '=';
	if (*soft)
		n--;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (in[i] == '=' && i + 2 < n && (hi = hexval((unsigned char)in[i + 1])) >= 0 &&
		    (lo = hexval((unsigned char)in[i + 2])) >= 0) {
			out[k++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[k++] = in[i];
		}
	}
	return k;
}

static int
b64val(unsigned char c)
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

void
content_b64_feed(content_b64_t *st, const char *in, size_t n, buf_t *out)
{
	for (size_t i = 0; i < n && !st->done; i++) {
		if (in[i] == '=') {
			st->done = true;
			break;
		}
		int v = b64val((unsigned char)in[i]);
		if (v < 0)
			continue;
		st->acc = (st->acc << 6 | (uint32_t)v) & 0xffffff;
		st->bits += 6;
		if (st->bits >= 8) {
			st->bits -= 8;
			buf_putc(out, (char)(st->acc >> st->bits & 0xff));
		}
	}
}

void
content_unfold(const char *name, const char *value, buf_t *out)
{
	buf_puts(out, name);
	buf_putc(out, ':');
	for (const char *v = value; *v; v++) {
		if (v[0] == '\r' && v[1] == '\n') {
			v++;
			continue;
		}
		buf_putc(out, *v);
	}
}

/* ---- the MIME walk ---- */

enum cte { CTE_PLAIN, CTE_QP, CTE_B64 };
enum ptype { PT_TEXT, PT_MULTI, PT_MESSAGE, PT_OTHER };

struct walk {
	const content_walk_cb_t *cb;
	void *arg;
	char *bound[CONTENT_MIME_DEPTH];
	size_t nbound;
	/* the current part */
	bool in_headers;
	enum ptype type;
	enum cte cte;
	bool digest; /* the enclosing multipart is multipart/digest */
	buf_t hdr;   /* a MIME header being unfolded */
	char *ctype, *ccte;
	/* decoding */
	buf_t line;  /* a decoded line being built */
	content_b64_t b64;
	bool stopped;
};

static bool
stopped(struct walk *w)
{
	if (!w->stopped && w->cb->stop && w->cb->stop(w->arg))
		w->stopped = true;
	return w->stopped;
}

static void
emit_line(struct walk *w, const char *p, size_t n)
{
	while (!stopped(w)) {
		size_t k = n > CONTENT_LINE_MAX ? CONTENT_LINE_MAX : n;
		w->cb->body_line(w->arg, p, k);
		if (n <= CONTENT_LINE_MAX)
			break;
		p += k;
		n -= k;
	}
}

/* the line buffer, emitted when full or at a hard line end */
static void
line_add(struct walk *w, const char *p, size_t n)
{
	while (n > 0) {
		size_t room = CONTENT_LINE_MAX - w->line.len, k = n < room ? n : room;
		buf_append(&w->line, p, k);
		p += k;
		n -= k;
		if (w->line.len >= CONTENT_LINE_MAX) {
			emit_line(w, w->line.data, w->line.len);
			buf_reset(&w->line);
		}
	}
}

static void
line_flush(struct walk *w)
{
	if (w->line.len)
		emit_line(w, w->line.data, w->line.len);
	buf_reset(&w->line);
}

/* base64 output: split at LF, CR before it dropped */
static void
b64_lines(struct walk *w, const char *p, size_t n)
{
	buf_t dec = BUF_INIT;
	content_b64_feed(&w->b64, p, n, &dec);
	size_t s = 0;
	for (size_t i = 0; i < dec.len; i++) {
		if (dec.data[i] != '\n')
			continue;
		size_t e = i;
		if (e > s && dec.data[e - 1] == '\r')
			e--;
		line_add(w, dec.data + s, e - s);
		line_flush(w);
		s = i + 1;
	}
	if (dec.len > s) /* dec.data is NULL when nothing was decoded */
		line_add(w, dec.data + s, dec.len - s);
	buf_free(&dec);
}

static void
part_end(struct walk *w)
{
	line_flush(w);
	memset(&w->b64, 0, sizeof w->b64);
}

/* a parameter of a Content-Type value: boundary="..." or boundary=token */
static char *
ct_param(const char *v, const char *param)
{
	size_t pl = strlen(param);
	for (const char *p = v; (p = strcasestr(p, param)) != NULL; p += pl) {
		if (p != v && p[-1] != ';' && p[-1] != ' ' && p[-1] != '\t')
			continue;
		const char *q = p + pl;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '=')
			continue;
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '"') {
			const char *e = strchr(q + 1, '"');
			if (!e)
				return NULL;
			return xstrndup(q + 1, (size_t)(e - q - 1));
		}
		size_t k = strcspn(q, " \t;\"");
		return k ? xstrndup(q, k) : NULL;
	}
	return NULL;
}

/* the part's headers are complete: what is its body? */
static void
part_type(struct walk *w, const char *ctype, const char *cte)
{
	const char *ct = ctype;
	while (ct && (*ct == ' ' || *ct == '\t'))
		ct++;
	if (!ct || !*ct)
		w->type = w->digest ? PT_MESSAGE : PT_TEXT;
	else if (strncasecmp(ct, "text/", 5) == 0)
		w->type = PT_TEXT;
	else if (strncasecmp(ct, "multipart/", 10) == 0)
		w->type = PT_MULTI;
	else if (strncasecmp(ct, "message/rfc822", 14) == 0)
		w->type = PT_MESSAGE;
	else
		w->type = PT_OTHER;
	w->cte = CTE_PLAIN;
	const char *e = cte;
	while (e && (*e == ' ' || *e == '\t'))
		e++;
	if (e && strncasecmp(e, "quoted-printable", 16) == 0)
		w->cte = CTE_QP;
	else if (e && strncasecmp(e, "base64", 6) == 0)
		w->cte = CTE_B64;
	w->in_headers = false;
	if (w->type == PT_MULTI) {
		char *b = ct_param(ct, "boundary");
		if (b && *b && strlen(b) <= 200 && w->nbound < CONTENT_MIME_DEPTH) {
			w->bound[w->nbound++] = b;
			w->digest = strncasecmp(ct, "multipart/digest", 16) == 0;
		} else {
			xfree(b);
			w->type = PT_OTHER; /* not followed */
		}
	} else if (w->type == PT_MESSAGE && w->cte == CTE_PLAIN) {
		w->in_headers = true; /* an attached message: its header section next */
		w->digest = false;
	}
	xfree(w->ctype);
	xfree(w->ccte);
	w->ctype = w->ccte = NULL;
}

static void
hdr_flush(struct walk *w)
{
	if (!w->hdr.len)
		return;
	const char *p = w->hdr.data;
	size_t n = w->hdr.len;
	if (!stopped(w))
		w->cb->mime_header(w->arg, p, n);
	const char *colon = memchr(p, ':', n);
	if (colon) {
		size_t nl = (size_t)(colon - p);
		char *v = xstrndup(colon + 1, n - nl - 1);
		if (nl == 12 && strncasecmp(p, "Content-Type", 12) == 0) {
			xfree(w->ctype);
			w->ctype = v;
		} else if (nl == 25 && strncasecmp(p, "Content-Transfer-Encoding", 25) == 0) {
			xfree(w->ccte);
			w->ccte = v;
		} else {
			xfree(v);
		}
	}
	buf_reset(&w->hdr);
}

/* a boundary line of an enclosing multipart: 1 (next part), 2 (close), 0 */
static int
is_boundary(struct walk *w, const char *p, size_t n)
{
	if (n < 3 || p[0] != '-' || p[1] != '-')
		return 0;
	for (size_t i = w->nbound; i-- > 0;) {
		size_t bl = strlen(w->bound[i]);
		if (n < 2 + bl || memcmp(p + 2, w->bound[i], bl) != 0)
			continue;
		const char *rest = p + 2 + bl;
		size_t rl = n - 2 - bl;
		bool close = rl >= 2 && rest[0] == '-' && rest[1] == '-';
		/* RFC 2046 §5.1.1: only white space may follow (a longer boundary
		 * that starts with this one is not this one) */
		size_t k = close ? 2 : 0;
		while (k < rl && (rest[k] == ' ' || rest[k] == '\t'))
			k++;
		if (k < rl)
			continue;
		/* parts nested in this one end here */
		while (w->nbound > i + 1)
			xfree(w->bound[--w->nbound]);
		if (close) {
			xfree(w->bound[--w->nbound]);
			return 2;
		}
		return 1;
	}
	return 0;
}

static void
walk_line(struct walk *w, const char *p, size_t n)
{
	int b = is_boundary(w, p, n);
	if (b) {
		hdr_flush(w);
		part_end(w);
		if (b == 1) {
			w->in_headers = true;
			xfree(w->ctype);
			xfree(w->ccte);
			w->ctype = w->ccte = NULL;
		} else {
			w->type = PT_OTHER; /* the epilogue */
			w->in_headers = false;
		}
		return;
	}
	if (w->in_headers) {
		if (n == 0) {
			hdr_flush(w);
			char *ct = w->ctype, *cte = w->ccte;
			w->ctype = w->ccte = NULL;
			part_type(w, ct, cte);
			xfree(ct);
			xfree(cte);
		} else if ((p[0] == ' ' || p[0] == '\t') && w->hdr.len) {
			if (w->hdr.len < CONTENT_LINE_MAX)
				buf_append(&w->hdr, p, n); /* unfolded: the CRLF dropped */
		} else {
			hdr_flush(w);
			buf_append(&w->hdr, p, n < CONTENT_LINE_MAX ? n : CONTENT_LINE_MAX);
		}
		return;
	}
	if (w->type != PT_TEXT)
		return;
	if (w->cte == CTE_QP) {
		char *out = xmalloc(n + 1);
		bool soft;
		size_t k = content_qp_line(p, n, out, &soft);
		line_add(w, out, k);
		if (!soft)
			line_flush(w);
		xfree(out);
	} else if (w->cte == CTE_B64) {
		b64_lines(w, p, n);
	} else {
		emit_line(w, p, n);
	}
}

void
content_walk(const char *p, size_t n, const char *ctype, const char *cte,
    const content_walk_cb_t *cb, void *arg)
{
	struct walk w;
	memset(&w, 0, sizeof w);
	w.cb = cb;
	w.arg = arg;
	part_type(&w, ctype, cte);
	size_t pos = 0;
	while (pos < n && !stopped(&w)) {
		const char *line = p + pos;
		const char *eol = memmem(line, n - pos, "\r\n", 2);
		size_t len = eol ? (size_t)(eol - line) : n - pos;
		walk_line(&w, line, len);
		pos += len + (eol ? 2 : 0);
	}
	hdr_flush(&w);
	part_end(&w);
	for (size_t i = 0; i < w.nbound; i++)
		xfree(w.bound[i]);
	buf_free(&w.hdr);
	buf_free(&w.line);
	xfree(w.ctype);
	xfree(w.ccte);
}
