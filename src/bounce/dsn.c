/*
 * dsn.c - delivery status notifications (see dsn.h).
 *
 * The message is assembled from three part bodies built first (text,
 * status, original content), so the MIME boundary can be chosen to occur in
 * none of them. Everything that comes from the envelope or from a remote
 * server goes through put_clean() (no control characters, UTF-8 only where
 * allowed) and then wrap() (folding, no line over 998 octets); the original
 * content is either carried as is, after checking it is valid 8bit MIME
 * text, or (header section only) re-broken into safe lines.
 *
 * Must not: decide whether a DSN is due beyond dsn_wanted(), send or queue
 * anything, or read more of the spool file than it returns.
 */
#include "bounce/dsn.h"
#include "lib/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/addr.h"
#include "common/qid.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"

#define LINE_MAX_OCTETS 998 /* RFC 5322 §2.1.1, without the CRLF */
#define WRAP_HEADER 78      /* RFC 5322 §2.1.1 recommendation */
#define WRAP_TEXT 72
#define READ_CHUNK 16384
#define BOUNDARY_UNIQUE_MAX 40

/* ---- characters ---- */

/* Length of the valid UTF-8 sequence at s[0..n) (RFC 3629: no overlongs,
 * no surrogates, nothing above U+10FFFF), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	return s[0] < 0x80 ? 1 : utf8_seq_len(s, n);
}

static bool
has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return true;
	return false;
}

static bool
str_8bit(const char *s)
{
	return s != NULL && has_8bit(s, strlen(s));
}

/*
 * Append s[0..n) as one line of safe text: controls (CR, LF, TAB, other
 * C0, DEL) count as white space, runs of white space become one space,
 * leading and trailing white space is dropped. Octets >= 0x80 are kept when
 * utf8 and part of a valid UTF-8 character, else each becomes '?'.
 */
static void
put_clean(buf_t *out, const char *s, size_t n, bool utf8)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t start = out->len;
	bool space = false;

	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		if (c <= 0x20 || c == 0x7f) {
			space = true;
			i++;
			continue;
		}
		if (space && out->len > start)
			buf_putc(out, ' ');
		space = false;
		if (c < 0x80) {
			buf_putc(out, (char)c);
			i++;
			continue;
		}
		size_t l = utf8 ? utf8_len(u + i, n - i) : 0;
		if (l == 0) {
			buf_putc(out, '?');
			i++;
		} else {
			buf_append(out, s + i, l);
			i += l;
		}
	}
}

static void
put_clean_str(buf_t *out, const char *s, bool utf8)
{
	if (s != NULL)
		put_clean(out, s, strlen(s), utf8);
}

/* Keep only [A-Za-z0-9.-] of s (tokens in Message-ID and the boundary). */
static void
put_token(buf_t *out, const char *s, size_t max)
{
	for (size_t i = 0; i < max && s[i] != '\0'; i++) {
		char c = s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '-')
			buf_putc(out, c);
	}
}

/*
 * Append the words of text (clean: single spaces, no controls) at column
 * col, starting a new line (CRLF then cont) before a word that would pass
 * width. sep: a space goes before the first word. A word too long for any
 * line is cut at a UTF-8 character boundary, so no line passes 998 octets
 * (for a header field the cut adds a space when unfolded: acceptable for
 * such text). No final CRLF.
 */
static void
wrap(buf_t *out, size_t col, const char *text, size_t width, const char *cont, bool sep)
{
	size_t contlen = strlen(cont);
	const char *v = text;

	while (*v != '\0') {
		size_t wl = strcspn(v, " ");
		if (col > contlen && col + (sep ? 1 : 0) + wl > width) {
			buf_puts(out, "\r\n");
			buf_puts(out, cont);
			col = contlen;
			sep = false;
		}
		if (sep) {
			buf_putc(out, ' ');
			col++;
		}
		while (col + wl > LINE_MAX_OCTETS) {
			size_t cut = LINE_MAX_OCTETS - col;
			while (cut > 0 && ((unsigned char)v[cut] & 0xc0) == 0x80)
				cut--;
			if (cut == 0) /* not UTF-8 after all: cut anywhere */
				cut = LINE_MAX_OCTETS - col;
			buf_append(out, v, cut);
			v += cut;
			wl -= cut;
			buf_puts(out, "\r\n");
			buf_puts(out, cont);
			col = contlen;
		}
		buf_append(out, v, wl);
		col += wl;
		v += wl;
		if (*v == ' ')
			v++;
		sep = true;
	}
}

/* "Name: value" CRLF, folded (RFC 5322 §2.2.3); value must be clean. */
static void
put_field(buf_t *out, const char *name, const char *value)
{
	buf_puts(out, name);
	buf_putc(out, ':');
	wrap(out, strlen(name) + 1, value, WRAP_HEADER, " ", true);
	buf_puts(out, "\r\n");
}

/* put_field() of a value given in pieces: prefix (trusted) + raw (cleaned) */
static void
put_field_clean(buf_t *out, const char *name, const char *prefix, const char *raw, bool utf8)
{
	buf_t v = BUF_INIT;
	buf_puts(&v, prefix);
	put_clean_str(&v, raw, utf8);
	put_field(out, name, buf_cstr(&v));
	buf_free(&v);
}

/* A paragraph of text/plain, wrapped, ending in CRLF. */
static void
put_para(buf_t *out, const char *clean_text)
{
	wrap(out, 0, clean_text, WRAP_TEXT, "", false);
	buf_puts(out, "\r\n");
}

/* RFC 5322 §3.3 date-time in local time, locale-independent. */
static void
put_date(buf_t *out, int64_t t)
{
	static const char *const wday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL || tm.tm_year < 0 || tm.tm_year > 8000 - 1900) {
		tt = 0;
		gmtime_r(&tt, &tm);
		tm.tm_gmtoff = 0;
	}
	long off = tm.tm_gmtoff / 60;
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	buf_printf(out, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    wday[(unsigned)tm.tm_wday % 7], tm.tm_mday, mon[(unsigned)tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign, (off / 60) % 100, off % 60);
}

static void
put_date_field(buf_t *out, const char *name, int64_t t)
{
	buf_t v = BUF_INIT;
	put_date(&v, t);
	put_field(out, name, buf_cstr(&v));
	buf_free(&v);
}

/* ---- status codes (RFC 3463) ---- */

/* count 1..3 digits at s; 0 when none or more than 3 */
static size_t
digits13(const char *s)
{
	size_t i = 0;
	while (i < 4 && s[i] >= '0' && s[i] <= '9')
		i++;
	return i <= 3 ? i : 0;
}

const char *
dsn_status_of_reply(const char *reply, char out[DSN_STATUS_SIZE])
{
	if (reply == NULL)
		return NULL;
	const char *s = reply;
	char code = 0;

	while (*s == ' ')
		s++;
	if (s[0] >= '1' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
	    s[2] <= '9' && (s[3] == ' ' || s[3] == '-' || s[3] == '\0')) {
		code = s[0];
		s += 3;
		if (*s != '\0')
			s++;
		while (*s == ' ')
			s++;
	}
	/* class "." subject "." detail, class 2, 4 or 5 (RFC 3463 §2) */
	if ((s[0] == '2' || s[0] == '4' || s[0] == '5') && s[1] == '.' &&
	    (code == 0 || code == s[0])) {
		size_t a = digits13(s + 2);
		if (a > 0 && s[2 + a] == '.') {
			const char *d = s + 3 + a;
			size_t b = digits13(d);
			if (b > 0 && (d[b] == '\0' || d[b] == ' ' || d[b] == '\t')) {
				size_t len = (size_t)(d + b - s);
				memcpy(out, s, len);
				out[len] = '\0';
				return out;
			}
		}
	}
	if (code == '2' || code == '4' || code == '5') {
		snprintf(out, DSN_STATUS_SIZE, "%c.0.0", code);
		return out;
	}
	return NULL;
}

/* The Status of a recipient in a DSN of kind: the reply's, when it agrees
 * with the kind. A failure keeps a 4.x.x status (e.g. 4.4.7 after the
 * queue lifetime expired: the last transient error stays informative). */
static void
rcpt_status(const env_rcpt_t *r, enum dsn_kind kind, char out[DSN_STATUS_SIZE])
{
	const char *st = dsn_status_of_reply(r->reply, out);
	char cls = st ? st[0] : 0;

	switch (kind) {
	case DSN_FAILURE:
		if (cls != '5' && cls != '4')
			snprintf(out, DSN_STATUS_SIZE, "5.0.0");
		break;
	case DSN_DELAY:
		if (cls != '4')
			snprintf(out, DSN_STATUS_SIZE, "4.0.0");
		break;
	case DSN_SUCCESS:
		if (cls != '2')
			snprintf(out, DSN_STATUS_SIZE, "2.0.0");
		break;
	}
}

bool
dsn_wanted(const envelope_t *env, size_t idx, enum dsn_kind kind)
{
	/* RFC 5321 §4.5.5: never a notification about a notification */
	if (env == NULL || env->sender == NULL || env->sender[0] == '\0' ||
	    (env->flags & ENV_IS_BOUNCE))
		return false;
	if (idx >= env->nrcpt || env->rcpt == NULL)
		return false;
	unsigned notify = env->rcpt[idx].notify;
	if (notify & NOTIFY_NEVER)
		return false;
	if (notify == 0) /* RFC 3461 §4.1: default is FAILURE (and, our choice, DELAY) */
		return kind != DSN_SUCCESS;
	switch (kind) {
	case DSN_FAILURE:
		return (notify & NOTIFY_FAILURE) != 0;
	case DSN_DELAY:
		return (notify & NOTIFY_DELAY) != 0;
	case DSN_SUCCESS:
		return (notify & NOTIFY_SUCCESS) != 0;
	}
	return false;
}

/* ---- relay ---- */

static bool
relay_is_remote(const char *relay)
{
	return relay != NULL && relay[0] != '\0' && strcmp(relay, "local") != 0;
}

/* Remote-MTA name from "host[ip]:port": the host, or "[ip]" when none. */
static void
put_relay_name(buf_t *out, const char *relay, bool utf8)
{
	size_t n = strcspn(relay, "[:");
	if (n == 0 && relay[0] == '[') {
		const char *e = strchr(relay, ']');
		n = e ? (size_t)(e - relay) + 1 : strlen(relay);
	}
	put_clean(out, relay, n, utf8);
}

/* For people: "host[ip]" without the port. */
static void
put_relay_text(buf_t *out, const char *relay, bool utf8)
{
	const char *e = strchr(relay, ']');
	size_t n = e ? (size_t)(e - relay) + 1 : strcspn(relay, ":");
	put_clean(out, relay, n, utf8);
}

/* ---- the original content ---- */

typedef struct content {
	buf_t data;     /* what was read */
	size_t hdr_len; /* the header section in data: its lines, without the empty line */
	bool whole;     /* data is the whole message */
	bool fits;      /* whole and valid 8bit MIME text: may go as message/rfc822 */
	bool too_big;   /* larger than the limit */
	bool hdr_cut;   /* the header section is longer than what is returned */
	bool hdr8;      /* the header section has octets >= 0x80 */
} content_t;

static int
read_at(int fd, uint64_t off, size_t n, buf_t *b, buf_t *err)
{
	buf_reserve(b, n);
	ssize_t r = pread_all(fd, b->data + b->len, n, (off_t)off);
	if (r < 0) {
		buf_printf(err, "cannot read the message content: %s", strerror(errno));
		return -1;
	}
	if ((size_t)r < n) {
		buf_printf(err, "message content truncated: %zu of %zu octets at offset %llu",
		    (size_t)r, n, (unsigned long long)off);
		return -1;
	}
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* Offset of the empty line ending the header section, or (size_t)-1.
 * Lines end in LF, CRLF tolerated: an empty line is "" or "\r". */
static size_t
find_empty_line(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *lf = memchr(s + i, '\n', n - i);
		if (lf == NULL)
			return (size_t)-1;
		size_t l = (size_t)(lf - (s + i));
		if (l == 0 || (l == 1 && s[i] == '\r'))
			return i;
		i += l + 1;
	}
	return (size_t)-1;
}

/* Every line at most 998 octets, CRLF only as a pair, no NUL (RFC 2045
 * §2.8 8bit data, RFC 5322 §2.1.1): can be carried in an 8bit part. */
static bool
fits_8bit(const char *s, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '\r') {
			if (i + 1 >= n || s[i + 1] != '\n')
				return false;
			i++;
			col = 0;
			continue;
		}
		if (c == '\n' || c == '\0')
			return false;
		if (++col > LINE_MAX_OCTETS)
			return false;
	}
	return true;
}

static int
read_content(int fd, const envelope_t *env, bool want_full, uint64_t max_full, content_t *c,
    buf_t *err)
{
	uint64_t total = env->body_len;

	c->too_big = total > max_full;
	if (want_full && !c->too_big) {
		if (read_at(fd, env->body_off, (size_t)total, &c->data, err) < 0)
			return -1;
		c->whole = true;
		c->fits = fits_8bit(c->data.data, c->data.len);
	} else {
		/* the header section only: read until its end, at most DSN_MAX_HEADERS */
		size_t cap = total < DSN_MAX_HEADERS ? (size_t)total : DSN_MAX_HEADERS;
		while (c->data.len < cap) {
			size_t chunk = cap - c->data.len;
			if (chunk > READ_CHUNK)
				chunk = READ_CHUNK;
			if (read_at(fd, env->body_off + c->data.len, chunk, &c->data, err) < 0)
				return -1;
			if (find_empty_line(c->data.data, c->data.len) != (size_t)-1)
				break;
		}
		c->whole = c->data.len == total;
	}
	size_t e = c->data.len ? find_empty_line(c->data.data, c->data.len) : (size_t)-1;
	if (e != (size_t)-1) {
		c->hdr_len = e;
	} else {
		c->hdr_len = c->data.len; /* no body, or cut short below */
		c->hdr_cut = !c->whole;
	}
	c->hdr8 = has_8bit(c->data.data, c->hdr_len);
	if (c->hdr_len > DSN_MAX_HEADERS) {
		c->hdr_len = DSN_MAX_HEADERS;
		c->hdr_cut = true;
	}
	if (c->hdr_cut) {
		/* at the last line end before the limit, when there is one */
		const char *lf = c->hdr_len ? memrchr(c->data.data, '\n', c->hdr_len) : NULL;
		if (lf != NULL)
			c->hdr_len = (size_t)(lf - c->data.data) + 1;
	}
	return 0;
}

/*
 * A header section as safe text: CRLF line ends (a bare CR or LF ends a
 * line too), no empty lines (they would end the section early), NUL as a
 * space, and lines over 998 octets broken with CRLF SP at a UTF-8
 * character boundary (a folding point for whoever reads it back).
 */
static void
put_headers_safe(buf_t *out, const char *s, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < n && s[i + 1] == '\n')
				i++;
			if (col > 0)
				buf_puts(out, "\r\n");
			col = 0;
			continue;
		}
		if (col >= LINE_MAX_OCTETS || (col >= LINE_MAX_OCTETS - 8 && (c & 0xc0) != 0x80)) {
			buf_puts(out, "\r\n ");
			col = 1;
		}
		buf_putc(out, c == '\0' ? ' ' : (char)c);
		col++;
	}
	if (col > 0)
		buf_puts(out, "\r\n");
}

/* What a DSN shows of a recipient's last reply. A local delivery's note
 * names the Maildir on our file system: outside senders learn only that it
 * was delivered to the mailbox (issue #11.7; the log keeps the path). */
static const char *
shown_reply(const env_rcpt_t *r, enum dsn_kind kind)
{
	if (kind == DSN_SUCCESS && r->status == RCPT_SENT && !relay_is_remote(r->relay))
		return "delivered to mailbox";
	return r->reply;
}

/* ---- the parts ---- */

typedef struct ctx {
	const envelope_t *env;
	const size_t *idx;
	size_t n;
	const dsn_params_t *p;
	bool text_utf8;   /* text part may carry UTF-8 (a shown address is not ASCII) */
	bool status_utf8; /* message/global-delivery-status (RFC 6533 §3) */
	bool headers_only;
	bool content_global; /* message/global or message/global-headers (RFC 6533 §3) */
	int ret_reason;      /* why headers only: 0 none, 1 RET=HDRS, 2 too big, 3 not 8bit text */
} ctx_t;

static const char *
kind_action(const ctx_t *x, const env_rcpt_t *r)
{
	switch (x->p->kind) {
	case DSN_FAILURE:
		return "failed";
	case DSN_DELAY:
		return "delayed";
	case DSN_SUCCESS:
		/* RFC 3464 §2.3.3: "relayed" when handed to an MTA that may not
		 * report further; "delivered" for final delivery here. */
		return relay_is_remote(r->relay) ? "relayed" : "delivered";
	}
	return "failed";
}

static void
build_text(const ctx_t *x, const content_t *c, bool have_content, buf_t *t)
{
	const dsn_params_t *p = x->p;
	buf_t s = BUF_INIT;

	buf_puts(&s, "This is the mail system at host ");
	put_clean_str(&s, p->hostname, false);
	buf_puts(&s, ".");
	put_para(t, buf_cstr(&s));
	buf_puts(t, "\r\n");
	buf_reset(&s);

	switch (p->kind) {
	case DSN_FAILURE:
		put_para(t, "Your message could not be delivered to one or more recipients. "
			    "The mail system has given up; the reasons are given below.");
		break;
	case DSN_DELAY:
		buf_puts(&s, "Your message has not yet been delivered to one or more recipients. "
			     "The mail system is still trying");
		if (p->retry_until > 0) {
			buf_puts(&s, " and will give up after ");
			put_date(&s, p->retry_until);
		}
		buf_puts(&s, ". You do not need to send the message again; you will be told "
			     "if delivery finally fails.");
		put_para(t, buf_cstr(&s));
		buf_reset(&s);
		break;
	case DSN_SUCCESS:
		put_para(t, "Your message was delivered to the recipients below, as you asked. "
			    "A message relayed to another mail system may not be reported on "
			    "any further.");
		break;
	}
	buf_puts(t, "\r\n");
	if (x->env->qid[0] != '\0') {
		buf_puts(&s, "Queue ID: ");
		put_clean(&s, x->env->qid, strnlen(x->env->qid, QID_SIZE), false);
		put_para(t, buf_cstr(&s));
		buf_puts(t, "\r\n");
		buf_reset(&s);
	}

	for (size_t i = 0; i < x->n; i++) {
		const env_rcpt_t *r = &x->env->rcpt[x->idx[i]];
		bool remote = relay_is_remote(r->relay);
		buf_t line = BUF_INIT;

		buf_putc(&line, '<');
		put_clean_str(&line, r->addr, x->text_utf8);
		buf_putc(&line, '>');
		if (r->orig != NULL && r->orig[0] != '\0') {
			buf_puts(&line, " (expanded from <");
			put_clean_str(&line, r->orig, x->text_utf8);
			buf_puts(&line, ">)");
		}
		buf_puts(&line, ":");
		if (remote) {
			buf_puts(&line, p->kind == DSN_SUCCESS ? " relayed to host " : " host ");
			put_relay_text(&line, r->relay, x->text_utf8);
			if (r->reply != NULL)
				buf_puts(&line, p->kind == DSN_SUCCESS ? ", which said:" : " said:");
		}
		const char *reply = shown_reply(r, p->kind);
		if (reply != NULL) {
			buf_putc(&line, ' ');
			put_clean_str(&line, reply, x->text_utf8);
		} else if (!remote) {
			buf_puts(&line, p->kind == DSN_FAILURE ? " delivery failed"
			    : p->kind == DSN_DELAY           ? " not yet delivered"
							     : " delivered");
		}
		wrap(t, 0, buf_cstr(&line), WRAP_TEXT, "    ", false);
		buf_puts(t, "\r\n\r\n");
		buf_free(&line);
	}

	if (have_content) {
		static const char *const why[] = {
			"A copy of your message is attached.",
			"Only the header section of your message is attached, as you asked.",
			"Your message was too large to be returned in full; only its header "
			"section is attached.",
			"Your message could not be returned in full; only its header section "
			"is attached.",
		};
		put_para(t, why[x->ret_reason]);
		if (x->headers_only && c->hdr_cut)
			put_para(t, "The header section was cut short.");
	}
	buf_free(&s);
}

/* Original-Recipient from ORCPT "addr-type;address" (RFC 3461 §4.2, RFC 3464
 * §2.3.1); nothing when it is not of that form. */
static void
put_orcpt(buf_t *st, const char *orcpt, bool utf8)
{
	if (orcpt == NULL)
		return;
	const char *semi = strchr(orcpt, ';');
	if (semi == NULL || semi == orcpt || semi - orcpt > 32 || semi[1] == '\0')
		return;
	for (const char *q = orcpt; q < semi; q++) {
		char ch = *q;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			ch == '-'))
			return;
	}
	buf_t v = BUF_INIT;
	buf_append(&v, orcpt, (size_t)(semi - orcpt) + 1);
	put_clean_str(&v, semi + 1, utf8);
	if (v.len > (size_t)(semi - orcpt) + 1)
		put_field(st, "Original-Recipient", buf_cstr(&v));
	buf_free(&v);
}

/* Envelope id: as is when plain printable ASCII, else xtext (RFC 3461 §4). */
static void
put_envid(buf_t *st, const char *envid)
{
	static const char hex[] = "0123456789ABCDEF";
	buf_t v = BUF_INIT;
	bool plain = true;

	for (const char *q = envid; *q; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
			plain = false;
	for (const unsigned char *q = (const unsigned char *)envid; *q; q++) {
		if (plain || (*q > 0x20 && *q < 0x7f && *q != '+' && *q != '=')) {
			buf_putc(&v, (char)*q);
		} else {
			buf_putc(&v, '+');
			buf_putc(&v, hex[*q >> 4]);
			buf_putc(&v, hex[*q & 15]);
		}
	}
	if (v.len > 0)
		put_field(st, "Original-Envelope-Id", buf_cstr(&v));
	buf_free(&v);
}

static void
build_status(const ctx_t *x, buf_t *st)
{
	const envelope_t *env = x->env;
	const dsn_params_t *p = x->p;

	/* per-message fields, RFC 3464 §2.2 */
	put_field_clean(st, "Reporting-MTA", "dns; ", p->hostname, false);
	if (env->qid[0] != '\0') {
		buf_t q = BUF_INIT;
		put_token(&q, env->qid, QID_SIZE);
		if (q.len)
			put_field(st, "X-Tern-Queue-ID", buf_cstr(&q));
		buf_free(&q);
	}
	if (env->envid != NULL && env->envid[0] != '\0')
		put_envid(st, env->envid);
	if (env->arrival_us > 0)
		put_date_field(st, "Arrival-Date", env->arrival_us / 1000000);

	/* per-recipient fields, RFC 3464 §2.3 */
	for (size_t i = 0; i < x->n; i++) {
		const env_rcpt_t *r = &env->rcpt[x->idx[i]];
		char status[DSN_STATUS_SIZE];

		buf_puts(st, "\r\n");
		put_orcpt(st, r->orcpt, x->status_utf8);
		/* RFC 6533 §3: "utf-8" address type for a non-ASCII address */
		put_field_clean(st, "Final-Recipient", str_8bit(r->addr) ? "utf-8; " : "rfc822; ",
		    r->addr, x->status_utf8);
		put_field(st, "Action", kind_action(x, r));
		rcpt_status(r, p->kind, status);
		put_field(st, "Status", status);
		if (relay_is_remote(r->relay)) {
			buf_t v = BUF_INIT;
			buf_puts(&v, "dns; ");
			put_relay_name(&v, r->relay, x->status_utf8);
			if (v.len > 5)
				put_field(st, "Remote-MTA", buf_cstr(&v));
			buf_free(&v);
		}
		const char *reply = shown_reply(r, p->kind);
		if (reply != NULL && reply[0] != '\0') {
			/* RFC 3464 §2.3.6: "smtp" for SMTP replies; local
			 * outcomes ("4.2.2 reason") get our own type */
			const char *s = reply;
			bool smtp = s[0] >= '1' && s[0] <= '5' && s[1] >= '0' && s[1] <= '9' &&
			    s[2] >= '0' && s[2] <= '9' && (s[3] == ' ' || s[3] == '-' || s[3] == '\0');
			buf_t v = BUF_INIT;
			buf_puts(&v, smtp ? "smtp; " : "x-tern; ");
			size_t before = v.len;
			put_clean_str(&v, reply, x->status_utf8);
			if (v.len > before)
				put_field(st, "Diagnostic-Code", buf_cstr(&v));
			buf_free(&v);
		}
		if (r->last_try > 0)
			put_date_field(st, "Last-Attempt-Date", r->last_try);
		if (p->kind == DSN_DELAY && p->retry_until > 0)
			put_date_field(st, "Will-Retry-Until", p->retry_until);
	}
}

static bool
occurs(const buf_t *b, const char *needle, size_t nlen)
{
	return b->len >= nlen && memmem(b->data, b->len, needle, nlen) != NULL;
}

/* ---- dsn_build ---- */

/* The arguments make sense: 0, or -1 with err. */
static int
check_args(const envelope_t *env, const size_t *rcpt_idx, size_t n, const dsn_params_t *p,
    buf_t *err)
{
	if (env == NULL || p == NULL || p->hostname == NULL || p->hostname[0] == '\0') {
		buf_puts(err, "dsn: no envelope or no hostname");
		return -1;
	}
	if (env->sender == NULL || env->sender[0] == '\0') {
		/* RFC 5321 §4.5.5: nothing is ever sent to the null sender */
		buf_puts(err, "dsn: the message has the null sender");
		return -1;
	}
	if (p->kind != DSN_FAILURE && p->kind != DSN_DELAY && p->kind != DSN_SUCCESS) {
		buf_puts(err, "dsn: bad kind");
		return -1;
	}
	if (n == 0 || rcpt_idx == NULL) {
		buf_puts(err, "dsn: no recipient to report");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (rcpt_idx[i] >= env->nrcpt || env->rcpt[rcpt_idx[i]].addr == NULL) {
			buf_printf(err, "dsn: bad recipient index %zu", rcpt_idx[i]);
			return -1;
		}
	}
	return 0;
}

/* Read the content (when there is some) and decide how it is returned and
 * which parts need UTF-8. 0, or -1 with err. */
static int
prepare(ctx_t *x, content_t *c, int content_fd, buf_t *err)
{
	const envelope_t *env = x->env;
	const dsn_params_t *p = x->p;
	uint64_t max_full = p->max_full ? p->max_full : DSN_MAX_FULL;
	/* RFC 3461 §4.3: HDRS asks for the headers only; FULL, or no RET
	 * (the MTA's choice), gets the whole message up to max_full. */
	bool want_full = env->ret != RET_HDRS;

	if (content_fd >= 0) {
		if (read_content(content_fd, env, want_full, max_full, c, err) < 0)
			return -1;
		x->headers_only = !(want_full && c->fits);
		x->ret_reason = !want_full ? 1 : c->too_big ? 2 : !c->fits ? 3 : 0;
		/* RFC 6533 §3: an SMTPUTF8 message with UTF-8 in its header section */
		x->content_global = env->smtputf8 && c->hdr8;
	}
	for (size_t i = 0; i < x->n; i++) {
		const env_rcpt_t *r = &env->rcpt[x->idx[i]];
		if (str_8bit(r->addr) || str_8bit(r->orcpt))
			x->status_utf8 = true;
		if (str_8bit(r->addr) || str_8bit(r->orig))
			x->text_utf8 = true;
	}
	return 0;
}

/* Message-ID token (tok) and a MIME boundary (bnd, "--" included) that
 * occurs in none of the parts. */
static void
pick_boundary(const dsn_params_t *p, const buf_t *text, const buf_t *status, const buf_t *orig,
    buf_t *tok, buf_t *bnd)
{
	char fresh[QID_SIZE];
	const char *unique = p->unique;
	if (unique == NULL || unique[0] == '\0') {
		qid_new(fresh);
		unique = fresh;
	}
	put_token(tok, unique, BOUNDARY_UNIQUE_MAX);
	if (tok->len == 0)
		buf_puts(tok, "dsn");
	for (unsigned k = 0;; k++) {
		buf_reset(bnd);
		buf_puts(bnd, "--=_tern_");
		buf_append(bnd, tok->data, tok->len);
		if (k > 0)
			buf_printf(bnd, "_%u", k);
		if (!occurs(text, bnd->data, bnd->len) && !occurs(status, bnd->data, bnd->len) &&
		    (orig == NULL || !occurs(orig, bnd->data, bnd->len)))
			break;
	}
}

/* The top-level header section. */
static void
put_top(buf_t *out, const ctx_t *x, const buf_t *tok, const char *boundary, bool any8)
{
	const envelope_t *env = x->env;
	const dsn_params_t *p = x->p;
	if (p->postmaster != NULL && p->postmaster[0] != '\0') {
		buf_puts(out, "From: Mail Delivery System <");
		put_clean_str(out, p->postmaster, false);
		buf_puts(out, ">\r\n");
	} else {
		buf_puts(out, "From: Mail Delivery System <MAILER-DAEMON@");
		put_clean_str(out, p->hostname, false);
		buf_puts(out, ">\r\n");
	}
	buf_puts(out, "To: <");
	put_clean_str(out, env->sender, true);
	buf_puts(out, ">\r\n");
	put_field(out, "Subject", p->kind == DSN_FAILURE ? "Undelivered Mail Returned to Sender"
		: p->kind == DSN_DELAY ? "Delayed Mail (still being retried)"
				       : "Successful Mail Delivery Report");
	put_date_field(out, "Date", p->now);
	buf_puts(out, "Message-ID: <");
	buf_append(out, tok->data, tok->len);
	if (env->qid[0] != '\0') {
		buf_putc(out, '.');
		put_token(out, env->qid, QID_SIZE);
	}
	buf_putc(out, '@');
	put_clean_str(out, p->hostname, false);
	buf_puts(out, ">\r\n");
	buf_puts(out, "Auto-Submitted: auto-replied\r\n"); /* RFC 3834 §5 */
	buf_puts(out, "MIME-Version: 1.0\r\n");
	buf_printf(out, "Content-Type: multipart/report; report-type=%s;\r\n\tboundary=\"%s\"\r\n",
	    x->status_utf8 ? "global-delivery-status" : "delivery-status", boundary);
	if (any8)
		buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
}

/* The three parts and the closing boundary. */
static void
put_parts(buf_t *out, const ctx_t *x, const char *boundary, const buf_t *text,
    const buf_t *status, const buf_t *orig)
{
	bool text8 = has_8bit(text->data, text->len);
	bool status8 = has_8bit(status->data, status->len);
	bool orig8 = orig != NULL && has_8bit(orig->data, orig->len);

	/* 1: human-readable (RFC 6522 §3) */
	buf_printf(out, "--%s\r\nContent-Description: Notification\r\n", boundary);
	buf_printf(out, "Content-Type: text/plain; charset=%s\r\n", text8 ? "utf-8" : "us-ascii");
	if (text8)
		buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(out, "\r\n");
	buf_append(out, text->data, text->len);

	/* 2: machine-readable (RFC 3464 §2, RFC 6533 §6.2) */
	buf_printf(out, "\r\n--%s\r\nContent-Description: Delivery report\r\n", boundary);
	buf_printf(out, "Content-Type: message/%s\r\n",
	    x->status_utf8 ? "global-delivery-status" : "delivery-status");
	if (status8)
		buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
	buf_puts(out, "\r\n");
	buf_append(out, status->data, status->len);

	/* 3: the original (RFC 3462 §3 text/rfc822-headers, RFC 6533 §6.3-6.4) */
	if (orig != NULL) {
		static const char *const what[] = {"Undelivered", "Delayed", "Delivered"};
		const char *type = x->headers_only
		    ? (x->content_global ? "message/global-headers" : "text/rfc822-headers")
		    : (x->content_global ? "message/global" : "message/rfc822");
		buf_printf(out, "\r\n--%s\r\nContent-Description: %s Message%s\r\n", boundary,
		    what[x->p->kind], x->headers_only ? " Headers" : "");
		buf_printf(out, "Content-Type: %s\r\n", type);
		if (orig8)
			buf_puts(out, "Content-Transfer-Encoding: 8bit\r\n");
		buf_puts(out, "\r\n");
		buf_append(out, orig->data, orig->len);
	}
	buf_printf(out, "\r\n--%s--\r\n", boundary);
}

int
dsn_build(buf_t *out, const envelope_t *env, const size_t *rcpt_idx, size_t n,
    const dsn_params_t *p, int content_fd, dsn_info_t *info, buf_t *err)
{
	buf_reset(err);
	if (check_args(env, rcpt_idx, n, p, err) < 0)
		return -1;
	ctx_t x = {.env = env, .idx = rcpt_idx, .n = n, .p = p};
	content_t c = {.data = BUF_INIT};
	bool have_content = content_fd >= 0;
	if (prepare(&x, &c, content_fd, err) < 0) {
		buf_free(&c.data);
		return -1;
	}

	/* part bodies */
	buf_t text = BUF_INIT, status = BUF_INIT, hdrs = BUF_INIT;
	build_text(&x, &c, have_content, &text);
	build_status(&x, &status);
	const buf_t *orig = NULL;
	if (have_content) {
		if (x.headers_only) {
			put_headers_safe(&hdrs, c.data.data, c.hdr_len);
			orig = &hdrs;
		} else {
			orig = &c.data;
		}
	}

	/* Message-ID and boundary: unique token, boundary absent from every part */
	buf_t tok = BUF_INIT, bnd = BUF_INIT;
	pick_boundary(p, &text, &status, orig, &tok, &bnd);
	const char *boundary = bnd.data + 2;
	bool any8 = has_8bit(text.data, text.len) || has_8bit(status.data, status.len) ||
	    (orig != NULL && has_8bit(orig->data, orig->len));
	size_t start = out->len;
	put_top(out, &x, &tok, boundary, any8);
	put_parts(out, &x, boundary, &text, &status, orig);

	if (info != NULL) {
		info->body = has_8bit(out->data + start, out->len - start) ? BODY_8BITMIME : BODY_7BIT;
		info->smtputf8 = str_8bit(env->sender);
		info->returned_full = orig != NULL && !x.headers_only;
	}
	buf_free(&text);
	buf_free(&status);
	buf_free(&hdrs);
	buf_free(&tok);
	buf_free(&bnd);
	buf_free(&c.data);
	return 0;
}
