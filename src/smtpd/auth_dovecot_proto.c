/*
 * auth_dovecot_proto.c - parse and format the lines of Dovecot's
 * authentication protocol (see auth_dovecot_proto.h).
 *
 * Guarantees: bounded (DVPROTO_MAX_LINE in, DVPROTO_MAX_FIELDS fields),
 * no field is trusted: a value that is not what it must be makes the line
 * a protocol error (-1), never a half-filled reply.
 * Must not: log (the client does), or touch anything but its arguments.
 */
#include "smtpd/auth_dovecot_proto.h"

#include <stdio.h>
#include <string.h>

#include "lib/xalloc.h"

#define DVPROTO_MAX_FIELDS 64
#define DVPROTO_MAX_DATA 12288 /* base64 in a CONT or resp=: RFC 4954 §4's longest AUTH line */

struct field {
	const char *p;
	size_t n;
};

static bool
is_digits(const struct field *f)
{
	if (f->n == 0 || f->n > 10)
		return false;
	for (size_t i = 0; i < f->n; i++)
		if (f->p[i] < '0' || f->p[i] > '9')
			return false;
	return true;
}

/* a decimal of at most 10 digits into *out; false when not one */
static bool
get_number(const struct field *f, unsigned long *out)
{
	if (!is_digits(f))
		return false;
	unsigned long long v = 0;
	for (size_t i = 0; i < f->n; i++)
		v = v * 10 + (unsigned long long)(f->p[i] - '0');
	if (v > 0xffffffffull)
		return false;
	*out = (unsigned long)v;
	return true;
}

static bool
field_is(const struct field *f, const char *s)
{
	size_t n = strlen(s);
	return f->n == n && memcmp(f->p, s, n) == 0;
}

/* "name=value": the value, or NULL when f is not that name */
static bool
field_value(const struct field *f, const char *name, struct field *v)
{
	size_t n = strlen(name);
	if (f->n <= n || memcmp(f->p, name, n) != 0 || f->p[n] != '=')
		return false;
	v->p = f->p + n + 1;
	v->n = f->n - n - 1;
	return true;
}

/* the value unescaped (Dovecot's str_tabunescape), allocated */
static char *
unescape(const struct field *f)
{
	char *out = xmalloc(f->n + 1);
	size_t o = 0;
	for (size_t i = 0; i < f->n; i++) {
		char ch = f->p[i];
		if (ch == '\001' && i + 1 < f->n) {
			ch = f->p[++i];
			switch (ch) {
			case '0': ch = '\0'; break;
			case '1': ch = '\001'; break;
			case 't': ch = '\t'; break;
			case 'r': ch = '\r'; break;
			case 'n': ch = '\n'; break;
			default: break;
			}
		}
		out[o++] = ch;
	}
	out[o] = '\0';
	/* a NUL inside would cut the string short: callers check the length */
	if (strlen(out) != o) {
		xfree(out);
		return NULL;
	}
	return out;
}

bool
dvproto_is_b64(const char *s, size_t n, size_t max)
{
	if (n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '+' || ch == '/' || ch == '='))
			return false;
	}
	return true;
}

static bool
mech_ok(const char *s, size_t n)
{
	if (n == 0 || n > DVPROTO_MAX_MECH)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return false;
	}
	return true;
}

/* a user name tern may log and put into a Received field */
static bool
user_ok(const char *u)
{
	size_t n = strlen(u);
	if (n == 0 || n > DVPROTO_MAX_USER)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)u[i];
		if (ch <= ' ' || ch >= 0x7f || strchr("\"\\()<>", ch))
			return false;
	}
	return true;
}

static int
fail(buf_t *err, const char *what)
{
	buf_puts(err, what);
	return -1;
}

/* the optional fields of OK and FAIL, from index 2 */
static int
parse_params(const struct field *f, size_t nf, dvproto_reply_t *r, buf_t *err)
{
	for (size_t i = 2; i < nf; i++) {
		struct field v;
		if (field_value(&f[i], "user", &v)) {
			xfree(r->user);
			r->user = unescape(&v);
			if (!r->user || !user_ok(r->user))
				return fail(err, "user= is not a usable user name");
		} else if (r->kind == DVP_OK && field_value(&f[i], "resp", &v)) {
			if (!dvproto_is_b64(v.p, v.n, DVPROTO_MAX_DATA))
				return fail(err, "resp= is not base64");
			xfree(r->data);
			r->data = xstrndup(v.p, v.n);
		} else if (r->kind == DVP_FAIL && field_value(&f[i], "reason", &v)) {
			xfree(r->reason);
			if (v.n > DVPROTO_MAX_REASON)
				v.n = DVPROTO_MAX_REASON;
			char *s = xmalloc(v.n + 1);
			/* for the log only: nothing that could split or fake a line */
			for (size_t k = 0; k < v.n; k++) {
				unsigned char ch = (unsigned char)v.p[k];
				s[k] = ch < ' ' || ch == 0x7f || ch == '"' ? '?' : (char)ch;
			}
			s[v.n] = '\0';
			r->reason = s;
		} else if (r->kind == DVP_FAIL && field_is(&f[i], "temp")) {
			r->temp = true;
		}
	}
	return 0;
}

int
dvproto_parse(const char *line, size_t n, dvproto_reply_t *r, buf_t *err)
{
	memset(r, 0, sizeof *r);
	r->kind = DVP_OTHER;
	if (n > DVPROTO_MAX_LINE)
		return fail(err, "line too long");
	if (memchr(line, '\n', n) || memchr(line, '\0', n))
		return fail(err, "LF or NUL inside a line");
	struct field f[DVPROTO_MAX_FIELDS];
	size_t nf = 0;
	const char *p = line, *end = line + n;
	for (;;) {
		const char *tab = memchr(p, '\t', (size_t)(end - p));
		const char *e = tab ? tab : end;
		if (nf == DVPROTO_MAX_FIELDS)
			return fail(err, "too many fields");
		f[nf].p = p;
		f[nf].n = (size_t)(e - p);
		nf++;
		if (!tab)
			break;
		p = tab + 1;
	}
	if (field_is(&f[0], "VERSION")) {
		unsigned long ma, mi;
		if (nf < 3 || !get_number(&f[1], &ma) || !get_number(&f[2], &mi))
			return fail(err, "malformed VERSION");
		r->kind = DVP_VERSION;
		r->major = (unsigned)ma;
		r->minor = (unsigned)mi;
		return 0;
	}
	if (field_is(&f[0], "MECH")) {
		if (nf < 2 || !mech_ok(f[1].p, f[1].n))
			return fail(err, "malformed MECH");
		r->kind = DVP_MECH;
		memcpy(r->mech, f[1].p, f[1].n);
		r->mech[f[1].n] = '\0';
		for (size_t i = 2; i < nf; i++) {
			if (field_is(&f[i], "plaintext"))
				r->mech_flags |= DVP_MECH_PLAINTEXT;
			else if (field_is(&f[i], "private"))
				r->mech_flags |= DVP_MECH_PRIVATE;
			else if (field_is(&f[i], "anonymous"))
				r->mech_flags |= DVP_MECH_ANONYMOUS;
		}
		return 0;
	}
	if (field_is(&f[0], "SPID") || field_is(&f[0], "CUID") || field_is(&f[0], "COOKIE") ||
	    field_is(&f[0], "DONE")) {
		r->kind = field_is(&f[0], "SPID") ? DVP_SPID : field_is(&f[0], "CUID") ? DVP_CUID
		    : field_is(&f[0], "COOKIE") ? DVP_COOKIE : DVP_DONE;
		return 0;
	}
	bool ok = field_is(&f[0], "OK"), cont = field_is(&f[0], "CONT"), fl = field_is(&f[0], "FAIL");
	if (!ok && !cont && !fl)
		return 0; /* DVP_OTHER: ignored, as the protocol asks */
	r->kind = ok ? DVP_OK : cont ? DVP_CONT : DVP_FAIL;
	if (nf < 2 || !get_number(&f[1], &r->id) || r->id == 0)
		return fail(err, "malformed request id");
	if (cont) {
		/* CONT id data: the challenge, maybe empty */
		const struct field empty = {"", 0};
		const struct field *d = nf >= 3 ? &f[2] : &empty;
		if (!dvproto_is_b64(d->p, d->n, DVPROTO_MAX_DATA))
			return fail(err, "CONT data is not base64");
		r->data = xstrndup(d->p, d->n);
		return 0;
	}
	return parse_params(f, nf, r, err);
}

void
dvproto_reply_free(dvproto_reply_t *r)
{
	xfree(r->data);
	xfree(r->user);
	xfree(r->reason);
	r->data = r->user = r->reason = NULL;
}

void
dvproto_escape(buf_t *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '\0': buf_puts(b, "\0010"); break;
		case '\001': buf_puts(b, "\0011"); break;
		case '\t': buf_puts(b, "\001t"); break;
		case '\r': buf_puts(b, "\001r"); break;
		case '\n': buf_puts(b, "\001n"); break;
		default: buf_putc(b, s[i]); break;
		}
	}
}

void
dvproto_format_hello(buf_t *b, unsigned long pid)
{
	buf_printf(b, "VERSION\t%d\t%d\nCPID\t%lu\n", DVPROTO_MAJOR, DVPROTO_MINOR, pid);
}

static void
param(buf_t *b, const char *name, const char *v)
{
	buf_printf(b, "\t%s=", name);
	dvproto_escape(b, v, strlen(v));
}

int
dvproto_format_auth(buf_t *b, unsigned long id, const dvproto_auth_t *a)
{
	if (!mech_ok(a->mech, strlen(a->mech)))
		return -1;
	if (a->resp && !dvproto_is_b64(a->resp, a->resp_len, DVPROTO_MAX_DATA))
		return -1;
	buf_printf(b, "AUTH\t%lu\t%s", id, a->mech);
	param(b, "service", a->service);
	if (a->session)
		param(b, "session", a->session);
	if (a->secured)
		buf_puts(b, "\tsecured");
	if (a->lip)
		param(b, "lip", a->lip);
	if (a->rip)
		param(b, "rip", a->rip);
	if (a->lport > 0)
		buf_printf(b, "\tlport=%d", a->lport);
	if (a->rport > 0)
		buf_printf(b, "\trport=%d", a->rport);
	if (a->resp) {
		buf_puts(b, "\tresp=");
		buf_append(b, a->resp, a->resp_len);
	}
	buf_putc(b, '\n');
	return 0;
}

int
dvproto_format_cont(buf_t *b, unsigned long id, const char *resp, size_t n)
{
	if (!dvproto_is_b64(resp, n, DVPROTO_MAX_DATA))
		return -1;
	buf_printf(b, "CONT\t%lu\t", id);
	buf_append(b, resp, n);
	buf_putc(b, '\n');
	return 0;
}
