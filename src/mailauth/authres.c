/*
 * authres.c - MAILAUTH: the Authentication-Results field, RFC 8601
 * (contract in authres.h).
 *
 * The result keywords are those of RFC 8601 section 2.7 and RFC 8617
 * section 4.4 (arc); Exim's "tmperror" or "(invalid)" are exactly what
 * receivers' parsers reject, so authres_add() refuses anything else.
 * Must not: read past any length.
 */
#include "mailauth/authres.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

#define FOLD_AT 78 /* RFC 5322 section 2.1.1: lines SHOULD be at most 78 */

static const struct {
	const char *method;
	const char *results; /* space-separated, with spaces around */
} registry[] = {
    {"spf", " none neutral pass fail softfail temperror permerror "},
    {"dkim", " none pass fail policy neutral temperror permerror "},
    {"dmarc", " none pass fail temperror permerror "},
    {"arc", " none pass fail "},
    {"iprev", " pass fail temperror permerror "},
    {"auth", " none pass fail temperror permerror "},
};

bool
authres_result_ok(const char *method, const char *result)
{
	if (!method || !result || !result[0] || strchr(result, ' '))
		return false;
	for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
		if (strcmp(registry[i].method, method) != 0)
			continue;
		const char *p = strstr(registry[i].results, result);
		size_t n = strlen(result);
		return p && p[-1] == ' ' && p[n] == ' ';
	}
	return false;
}

/* RFC 2045 token: CHAR except SPACE, CTLs and tspecials */
static bool
tokc(unsigned char c)
{
	return c > 0x20 && c < 0x7f && !strchr("()<>@,;:\\\"/[]?=", c);
}

static bool
is_token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!tokc((unsigned char)*s))
			return false;
	return true;
}

static bool
is_domain(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isalnum(c) || c == '-' || c == '_' || (c == '.' && s[i + 1] != '.')))
			return false;
	}
	return true;
}

static bool
is_dot_atom(const char *s, size_t n)
{
	if (n == 0 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (!(isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~", c))) {
			return false;
		}
	}
	return true;
}

/* pvalue = [CFWS] ( value / [ [ local-part ] "@" ] domain-name ) [CFWS] */
static bool
pvalue_bare(const char *v)
{
	if (is_token(v))
		return true;
	const char *at = strrchr(v, '@');
	if (!at)
		return is_domain(v, strlen(v));
	return is_domain(at + 1, strlen(at + 1)) &&
	    (at == v || is_dot_atom(v, (size_t)(at - v)));
}

/* value as a quoted string: '"' and '\' escaped, controls replaced */
static void
put_quoted(buf_t *b, const char *v)
{
	buf_putc(b, '"');
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;
		if (c == '"' || c == '\\')
			buf_putc(b, '\\');
		buf_putc(b, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
	}
	buf_putc(b, '"');
}

static void
put_value(buf_t *b, const char *v, bool bare_ok)
{
	if (bare_ok)
		buf_puts(b, v);
	else
		put_quoted(b, v);
}

/* Appends s (no line breaks in it) to the field, folding first when the
 * line would grow past FOLD_AT and something is on it already. */
static void
put_item(authres_t *a, const char *s, size_t n)
{
	if (a->col > 8 && a->col + 1 + n > FOLD_AT) {
		buf_puts(&a->b, "\r\n\t");
		a->col = 8;
	} else {
		buf_putc(&a->b, ' ');
		a->col++;
	}
	buf_append(&a->b, s, n);
	a->col += n;
}

void
authres_begin(authres_t *a, const char *authserv_id)
{
	memset(a, 0, sizeof *a);
	buf_puts(&a->b, "Authentication-Results:");
	a->col = a->b.len;
	buf_t t = BUF_INIT;
	put_value(&t, authserv_id && authserv_id[0] ? authserv_id : "localhost",
	    is_token(authserv_id && authserv_id[0] ? authserv_id : "localhost"));
	put_item(a, t.data, t.len);
	buf_free(&t);
}

int
authres_add(authres_t *a, const char *method, const char *result, const char *comment,
    const char *reason, const authres_prop_t *props, size_t nprops)
{
	if (!authres_result_ok(method, result))
		return -1;
	buf_t t = BUF_INIT;
	buf_puts(&a->b, ";\r\n\t");
	a->col = 8;
	buf_printf(&t, "%s=%s", method, result);
	buf_append(&a->b, t.data, t.len);
	a->col += t.len;
	if (comment && comment[0]) {
		buf_reset(&t);
		buf_putc(&t, '(');
		for (const char *p = comment; *p; p++) {
			unsigned char c = (unsigned char)*p;
			if (c == '(' || c == ')' || c == '\\')
				buf_putc(&t, '\\');
			buf_putc(&t, (c < 0x20 || c == 0x7f) ? '?' : (char)c);
		}
		buf_putc(&t, ')');
		put_item(a, t.data, t.len);
	}
	if (reason && reason[0]) {
		buf_reset(&t);
		buf_puts(&t, "reason=");
		put_value(&t, reason, is_token(reason));
		put_item(a, t.data, t.len);
	}
	for (size_t i = 0; i < nprops; i++) {
		if (!props[i].value || !props[i].value[0])
			continue;
		buf_reset(&t);
		buf_printf(&t, "%s=", props[i].name);
		put_value(&t, props[i].value, pvalue_bare(props[i].value));
		put_item(a, t.data, t.len);
	}
	buf_free(&t);
	a->nres++;
	return 0;
}

const char *
authres_end(authres_t *a)
{
	if (a->nres == 0)
		buf_puts(&a->b, "; none");
	buf_puts(&a->b, "\r\n");
	return buf_cstr(&a->b);
}

void
authres_free(authres_t *a)
{
	buf_free(&a->b);
	memset(a, 0, sizeof *a);
}

/* ---- parsing ---- */

/* Skips CFWS from v[i]: white space, line breaks, comments (nested, with
 * quoted pairs). Returns the new index, or n + 1 for an unterminated
 * comment. */
static size_t
skip_cfws(const char *v, size_t n, size_t i)
{
	while (i < n) {
		char c = v[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			i++;
		} else if (c == '(') {
			int depth = 0;
			for (; i < n; i++) {
				if (v[i] == '\\') {
					i++;
					continue;
				}
				if (v[i] == '(')
					depth++;
				else if (v[i] == ')' && --depth == 0)
					break;
			}
			if (i >= n)
				return n + 1;
			i++;
		} else {
			break;
		}
	}
	return i;
}

int
authres_serv_id(const char *v, size_t n, buf_t *out)
{
	size_t i = skip_cfws(v, n, 0);
	if (i >= n)
		return -1;
	size_t start = out->len;
	if (v[i] == '"') {
		for (i++; i < n && v[i] != '"'; i++) {
			if (v[i] == '\\' && i + 1 < n)
				i++;
			if (v[i] == '\r' || v[i] == '\n')
				continue; /* folding inside the quotes */
			buf_putc(out, v[i]);
		}
		if (i >= n) {
			out->len = start;
			if (out->data)
				out->data[start] = '\0';
			return -1;
		}
	} else {
		while (i < n && tokc((unsigned char)v[i]))
			buf_putc(out, v[i++]);
	}
	return out->len > start ? 0 : -1;
}

/* The end of the line starting at p[i] (the index after its LF, or n). */
static size_t
line_end(const char *p, size_t n, size_t i)
{
	const char *lf = memchr(p + i, '\n', n - i);
	return lf ? (size_t)(lf - p) + 1 : n;
}

static bool
blank_line(const char *p, size_t s, size_t e)
{
	return e - s == 0 || (e - s == 1 && p[s] == '\n') ||
	    (e - s == 2 && p[s] == '\r' && p[s + 1] == '\n');
}

size_t
authres_strip(buf_t *content, const char *id)
{
	if (!content->data || !id || !id[0])
		return 0;
	const char *p = content->data;
	size_t n = content->len, i = 0, w = 0, removed = 0;
	static const char name[] = "Authentication-Results";
	const size_t nl = sizeof name - 1;
	buf_t sid = BUF_INIT;
	while (i < n) {
		size_t e = line_end(p, n, i);
		if (blank_line(p, i, e))
			break; /* the body starts: untouched */
		/* one field: its first line and the continuation lines */
		size_t fe = e;
		while (fe < n && (p[fe] == ' ' || p[fe] == '\t'))
			fe = line_end(p, n, fe);
		bool drop = false;
		if (fe - i > nl && strncasecmp(p + i, name, nl) == 0) {
			size_t k = i + nl;
			while (k < fe && (p[k] == ' ' || p[k] == '\t'))
				k++;
			if (k < fe && p[k] == ':') {
				buf_reset(&sid);
				drop = authres_serv_id(p + k + 1, fe - k - 1, &sid) == 0 &&
				    strcasecmp(buf_cstr(&sid), id) == 0;
			}
		}
		if (drop) {
			removed++;
		} else {
			if (w != i)
				memmove(content->data + w, p + i, fe - i);
			w += fe - i;
		}
		i = fe;
	}
	buf_free(&sid);
	if (removed) {
		memmove(content->data + w, p + i, n - i);
		content->len = w + (n - i);
		content->data[content->len] = '\0';
	}
	return removed;
}
