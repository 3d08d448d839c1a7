/*
 * smtp_reply.c - strict, bounded, incremental parser for SMTP server
 * replies (see smtp_reply.h for the grammar and the limits).
 *
 * Guarantees: reads only p[0..n); consumes whole lines only; the stored
 * text never holds a control character other than HT or an octet >= 0x80;
 * every reply is bounded by lines, line length and total size, so a server
 * that sends an endless multi-line reply gets an error, not our memory.
 */
#include "deliver/smtp_reply.h"

#include <string.h>

void
smtp_reply_init(smtp_reply_t *r)
{
	memset(r, 0, sizeof *r);
	buf_init(&r->text);
}

void
smtp_reply_reset(smtp_reply_t *r)
{
	buf_t t = r->text;
	buf_reset(&t);
	memset(r, 0, sizeof *r);
	r->text = t;
}

void
smtp_reply_free(smtp_reply_t *r)
{
	buf_free(&r->text);
	smtp_reply_init(r);
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* 1 to 3 digits at p[0..n); returns how many, 0 when none */
static size_t
digits13(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n && i < 4 && is_digit(p[i]))
		i++;
	return i >= 1 && i <= 3 ? i : 0;
}

size_t
smtp_esc_parse(const char *p, size_t n)
{
	/* RFC 3463 §2: class "." subject "." detail; class is 2, 4 or 5 */
	if (n < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
		return 0;
	size_t i = 2;
	size_t d = digits13(p + i, n - i);
	if (d == 0)
		return 0;
	i += d;
	if (i >= n || p[i] != '.')
		return 0;
	i++;
	d = digits13(p + i, n - i);
	if (d == 0)
		return 0;
	i += d;
	if (i < n && p[i] != ' ')
		return 0;
	return i;
}

static int
fail(smtp_reply_t *r, const char *why)
{
	r->err = why;
	return SMTP_REPLY_ERROR;
}

/* One line without its line end. Returns 1 when it was the last line of
 * the reply, 0 when more lines follow, -1 on error. */
static int
parse_line(smtp_reply_t *r, const char *s, size_t n)
{
	if (n < 3)
		return fail(r, "reply line too short");
	if (s[0] < '2' || s[0] > '5' || s[1] < '0' || s[1] > '5' || !is_digit(s[2]))
		return fail(r, "bad reply code");
	int code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return fail(r, "reply code changes within a multi-line reply");
	r->code = code;
	int last;
	if (n == 3)
		last = 1; /* "ddd" CRLF: a bare code is a valid last line */
	else if (s[3] == ' ')
		last = 1;
	else if (s[3] == '-')
		last = 0;
	else
		return fail(r, "bad character after reply code");
	const char *t = n > 4 ? s + 4 : s + n;
	size_t tn = n > 4 ? n - 4 : 0;
	for (size_t i = 0; i < tn; i++) {
		unsigned char c = (unsigned char)t[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return fail(r, "control character in reply text");
	}
	/* RFC 2034 §4: the enhanced code starts each line's text; keep the
	 * first line's, strip it from every line whose class agrees */
	size_t el = smtp_esc_parse(t, tn);
	if (el > 0 && t[0] == s[0]) {
		if (r->nlines == 0 && el < SMTP_ESC_SIZE) {
			memcpy(r->esc, t, el);
			r->esc[el] = '\0';
		}
		t += el;
		tn -= el;
		while (tn > 0 && t[0] == ' ') {
			t++;
			tn--;
		}
	}
	buf_reserve(&r->text, tn + 1);
	for (size_t i = 0; i < tn; i++) {
		unsigned char c = (unsigned char)t[i];
		buf_putc(&r->text, c >= 0x80 ? '?' : (char)c);
	}
	buf_putc(&r->text, '\n');
	r->nlines++;
	return last;
}

int
smtp_reply_feed(smtp_reply_t *r, const char *p, size_t n, size_t *used)
{
	size_t off = 0;
	*used = 0;
	if (r->err)
		return SMTP_REPLY_ERROR;
	if (r->complete)
		return SMTP_REPLY_DONE;
	while (off < n) {
		size_t avail = n - off;
		size_t lim = avail < SMTP_REPLY_MAX_LINE ? avail : SMTP_REPLY_MAX_LINE;
		const char *lf = memchr(p + off, '\n', lim);
		if (!lf) {
			if (avail >= SMTP_REPLY_MAX_LINE)
				return fail(r, "reply line too long");
			break;
		}
		size_t linelen = (size_t)(lf - (p + off)) + 1;
		if (r->total + linelen > SMTP_REPLY_MAX_BYTES)
			return fail(r, "reply too long");
		if (r->nlines >= SMTP_REPLY_MAX_LINES)
			return fail(r, "too many reply lines");
		size_t cn = linelen - 1;
		/* CRLF, or a bare LF (lenient: some servers forget the CR) */
		if (cn > 0 && p[off + cn - 1] == '\r')
			cn--;
		int last = parse_line(r, p + off, cn);
		if (last < 0)
			return SMTP_REPLY_ERROR;
		off += linelen;
		r->total += linelen;
		*used = off;
		if (last) {
			r->complete = true;
			return SMTP_REPLY_DONE;
		}
	}
	return SMTP_REPLY_MORE;
}

bool
smtp_reply_line(const smtp_reply_t *r, size_t i, const char **p, size_t *n)
{
	const char *s = r->text.data;
	size_t left = r->text.len;
	if (!s)
		return false;
	for (size_t k = 0; k < r->nlines; k++) {
		const char *nl = memchr(s, '\n', left);
		if (!nl)
			return false;
		if (k == i) {
			*p = s;
			*n = (size_t)(nl - s);
			return true;
		}
		left -= (size_t)(nl - s) + 1;
		s = nl + 1;
	}
	return false;
}

void
smtp_reply_format(const smtp_reply_t *r, const char *def_esc, size_t max, buf_t *out)
{
	size_t start = out->len;
	buf_printf(out, "%03d", r->code);
	if (r->esc[0])
		buf_printf(out, " %s", r->esc);
	else if (def_esc && def_esc[0])
		buf_printf(out, " %s", def_esc);
	for (size_t i = 0; i < r->nlines; i++) {
		const char *p;
		size_t n;
		if (!smtp_reply_line(r, i, &p, &n))
			break;
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
			p++;
			n--;
		}
		if (n == 0)
			continue;
		buf_putc(out, ' ');
		for (size_t k = 0; k < n; k++)
			buf_putc(out, p[k] == '\t' ? ' ' : p[k]);
		if (out->len - start > max)
			break;
	}
	if (max >= 16 && out->len - start > max) {
		out->len = start + max - 3;
		buf_puts(out, "...");
	}
}
