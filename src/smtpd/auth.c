/*
 * auth.c - SASL decoding, password checks on the thread pool, the
 * sender-login rule (see auth.h; the password file is common/passwd_db.c).
 *
 * Guarantees: decoders are bounded (AUTH_MAX_B64 in, AUTH_MAX_FIELD per
 * field) and refuse NUL inside names and passwords; every buffer that held
 * a password is wiped (explicit_bzero) before it is freed; crypt_r runs
 * only on worker threads, with its own crypt_data; a missing user is
 * checked against a dummy hash so that timing does not tell users apart.
 * Must not: log anything (the session logs, without credentials).
 */
#include "smtpd/auth.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lib/fsutil.h"
#include "lib/xalloc.h"

/* a yescrypt hash of a random password nobody knows */
static const char dummy_hash[] =
    "$y$j9T$q0ZeeF20nGjuTEfqiuxlW0$hli44UHPcIKobn8GMBPKIu91TsmZwWtM3qVMvFl6Qk.";

/* ---- base64 (RFC 4648 §4) ---- */

static int
b64_val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

long
auth_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
	size_t o = 0;
	if (n % 4 != 0 || n > AUTH_MAX_B64)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char ch = (unsigned char)in[i + (size_t)k];
			if (ch == '=') {
				/* padding only at the very end, and only in the last two places */
				if (i + 4 != n || k < 2)
					return -1;
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad)
				return -1;
			v[k] = b64_val(ch);
			if (v[k] < 0)
				return -1;
		}
		unsigned long w = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
		    ((unsigned long)v[2] << 6) | (unsigned long)v[3];
		size_t take = 3 - (size_t)pad;
		/* RFC 4648 §3.5: the bits padding leaves over must be zero (one
		 * encoding per value) */
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			return -1;
		if (o + take > cap)
			return -1;
		out[o++] = (unsigned char)(w >> 16);
		if (take > 1)
			out[o++] = (unsigned char)(w >> 8);
		if (take > 2)
			out[o++] = (unsigned char)w;
	}
	return (long)o;
}

void
auth_b64_encode(const unsigned char *in, size_t n, buf_t *b)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		unsigned long w = (unsigned long)in[i] << 16;
		if (i + 1 < n)
			w |= (unsigned long)in[i + 1] << 8;
		if (i + 2 < n)
			w |= in[i + 2];
		buf_putc(b, tab[(w >> 18) & 63]);
		buf_putc(b, tab[(w >> 12) & 63]);
		buf_putc(b, i + 1 < n ? tab[(w >> 6) & 63] : '=');
		buf_putc(b, i + 2 < n ? tab[w & 63] : '=');
	}
}

/* ---- SASL ---- */

int
auth_plain_decode(const char *b64, size_t n, char **user, char **pass, const char **why)
{
	unsigned char raw[3 * AUTH_MAX_FIELD + 8];
	*user = *pass = NULL;
	*why = "501 5.5.2 Error: malformed SASL PLAIN response (RFC 4616)";
	long len = auth_b64_decode(b64, n, raw, sizeof raw);
	if (len < 0) {
		if (n > 0 && n % 4 == 0 && n <= AUTH_MAX_B64)
			*why = "501 5.5.2 Error: SASL PLAIN response too long";
		return -1;
	}
	/* authzid NUL authcid NUL passwd */
	unsigned char *z1 = memchr(raw, '\0', (size_t)len);
	unsigned char *z2 = z1 ? memchr(z1 + 1, '\0', (size_t)(raw + len - (z1 + 1))) : NULL;
	if (!z1 || !z2) {
		explicit_bzero(raw, sizeof raw);
		return -1;
	}
	size_t zl = (size_t)(z1 - raw), ul = (size_t)(z2 - z1 - 1), pl = (size_t)(raw + len - z2 - 1);
	if (ul == 0 || ul > AUTH_MAX_FIELD || pl > AUTH_MAX_FIELD || zl > AUTH_MAX_FIELD) {
		explicit_bzero(raw, sizeof raw);
		return -1;
	}
	if (zl > 0 && (zl != ul || memcmp(raw, z1 + 1, ul) != 0)) {
		explicit_bzero(raw, sizeof raw);
		/* RFC 4954 §4: authorization identity not allowed */
		*why = "535 5.7.8 Error: authentication failed: authorization identity not permitted";
		return -1;
	}
	*user = xstrndup((const char *)z1 + 1, ul);
	*pass = xstrndup((const char *)z2 + 1, pl);
	explicit_bzero(raw, sizeof raw);
	return 0;
}

int
auth_login_decode(const char *b64, size_t n, char **out, const char **why)
{
	unsigned char raw[AUTH_MAX_FIELD + 4];
	*out = NULL;
	*why = "501 5.5.2 Error: malformed base64 in AUTH LOGIN response";
	long len = auth_b64_decode(b64, n, raw, sizeof raw);
	if (len < 0 || (size_t)len > AUTH_MAX_FIELD || memchr(raw, '\0', (size_t)len)) {
		explicit_bzero(raw, sizeof raw);
		return -1;
	}
	*out = xstrndup((const char *)raw, (size_t)len);
	explicit_bzero(raw, sizeof raw);
	return 0;
}

/* ---- verification on the pool ---- */

struct verify_req {
	uv_work_t w;
	char *hash;
	char *pw;
	bool real; /* false: a user that does not exist, checked for the time only */
	bool ok;
	auth_verify_cb cb;
	void *arg;
};

static void
verify_work(uv_work_t *w)
{
	struct verify_req *r = w->data;
	struct crypt_data *cd = xcalloc(1, sizeof *cd);
	const char *h = crypt_r(r->pw, r->hash, cd);
	/* crypt_r returns a "*0"/"*1" failure token for a bad setting */
	r->ok = r->real && h && h[0] == '$' && strcmp(h, r->hash) == 0;
	explicit_bzero(cd, sizeof *cd);
	xfree(cd);
	explicit_bzero(r->pw, strlen(r->pw));
}

static void
verify_done(uv_work_t *w, int status)
{
	struct verify_req *r = w->data;
	bool ok = status == 0 && r->ok;
	auth_verify_cb cb = r->cb;
	void *arg = r->arg;
	xfree(r->pw);
	xfree(r->hash);
	xfree(r);
	cb(arg, ok);
}

void
auth_verify(uv_loop_t *loop, const char *hash, const char *pw, auth_verify_cb cb, void *arg)
{
	struct verify_req *r = xcalloc(1, sizeof *r);
	r->real = hash != NULL;
	r->hash = xstrdup(r->real ? hash : dummy_hash);
	r->pw = xstrdup(pw);
	r->cb = cb;
	r->arg = arg;
	r->w.data = r;
	if (uv_queue_work(loop, &r->w, verify_work, verify_done) != 0)
		abort(); /* only for a NULL work function: cannot happen */
}

/* ---- sender login ---- */

static bool
names_user(const table_entry_t *e, const char *user)
{
	for (size_t i = 0; e && i < e->nvalues; i++)
		if (strcmp(e->values[i], user) == 0)
			return true;
	return false;
}

bool
auth_sender_ok(const table_t *sl, const char *user, const char *sender)
{
	if (!sender || !sender[0])
		return true; /* <>: RFC 5321 §4.5.5 notifications */
	if (strcasecmp(sender, user) == 0 && strchr(user, '@'))
		return true;
	if (!sl)
		return false;
	if (names_user(table_get(sl, sender), user))
		return true;
	const char *at = strrchr(sender, '@');
	if (at) {
		char *dom = xasprintf("@%s", at + 1);
		bool ok = names_user(table_get(sl, dom), user);
		xfree(dom);
		if (ok)
			return true;
	}
	return false;
}
