/*
 * srs.c - the Sender Rewriting Scheme in libsrs2's format (see srs.h):
 * forward (rewrite), reverse (verify and decode), and the secrets file.
 *
 * The layout follows libsrs2's srs_compile_guarded() and
 * srs_parse_guarded() field by field (the tag, then fields split at '=',
 * the last field being the rest of the string), so that a tern and a
 * postsrsd (or any libsrs2 user) with the same secret make and accept the
 * same addresses.
 */
#include "mailauth/srs.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "common/config.h"
#include "common/secret.h"
#include "lib/xalloc.h"

#define SRS_SEP '='
#define SRS_TAG_SEPS "=+-"   /* libsrs2's srs_separators */
#define SRS_DAY 86400
#define SRS_TIME_SLOTS 1024 /* two base32 characters */

static const char HASH_CHARS[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char TIME_CHARS[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

const char *
srs_status_str(enum srs_status st)
{
	switch (st) {
	case SRS_OK: return "ok";
	case SRS_NOT_SRS: return "not an SRS address";
	case SRS_BAD_SYNTAX: return "malformed SRS address";
	case SRS_BAD_HASH: return "bad SRS hash";
	case SRS_EXPIRED: return "expired SRS address";
	case SRS_TOO_LONG: return "SRS address would be too long";
	case SRS_NO_SECRET: return "no SRS secret";
	}
	return "?";
}

static int
lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static bool
has_tag(const char *local, size_t n, const char *tag)
{
	return n >= 5 && strncasecmp(local, tag, 4) == 0 && local[4] != '\0' &&
	    strchr(SRS_TAG_SEPS, local[4]) != NULL;
}

bool
srs_is_srs(const char *local, size_t n)
{
	return has_tag(local, n, "SRS0") || has_tag(local, n, "SRS1");
}

void
srs_timestamp(int64_t now, char out[3])
{
	uint64_t days = (uint64_t)(now < 0 ? 0 : now) / SRS_DAY;
	out[1] = TIME_CHARS[days & 31];
	out[0] = TIME_CHARS[(days >> 5) & 31];
	out[2] = '\0';
}

/* a field of the HMAC input: its bytes and length */
typedef struct field {
	const char *p;
	size_t n;
} field_t;

/* The SRS_HASH_LEN characters of the hash of the fields with one secret,
 * into out (NUL-terminated): libsrs2's srs_hash_create_v(). 0, or -1
 * when OpenSSL fails. */
static int
hash_make(const char *secret, const field_t *f, size_t nf, char out[SRS_HASH_LEN + 1])
{
	buf_t data = BUF_INIT;
	for (size_t i = 0; i < nf; i++)
		for (size_t j = 0; j < f[i].n; j++)
			buf_putc(&data, (char)lower((unsigned char)f[i].p[j]));
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	unsigned char *r = EVP_Q_mac(NULL, "HMAC", NULL, "SHA1", NULL, secret, strlen(secret),
	    (const unsigned char *)(data.data ? data.data : ""), data.len, mac, sizeof mac, &maclen);
	buf_free(&data);
	if (r == NULL || maclen < 3)
		return -1;
	/* base64 of the first three octets: four characters */
	out[0] = HASH_CHARS[mac[0] >> 2];
	out[1] = HASH_CHARS[((mac[0] & 0x03) << 4) | (mac[1] >> 4)];
	out[2] = HASH_CHARS[((mac[1] & 0x0f) << 2) | (mac[2] >> 6)];
	out[3] = HASH_CHARS[mac[2] & 0x3f];
	out[4] = '\0';
	return 0;
}

/* Does any secret give this hash (compared ignoring case)? */
static bool
hash_check(const char *const *secrets, size_t nsecrets, const char *hash, size_t hn,
    const field_t *f, size_t nf)
{
	if (hn != SRS_HASH_LEN)
		return false;
	bool ok = false;
	for (size_t i = 0; i < nsecrets; i++) {
		char h[SRS_HASH_LEN + 1];
		if (hash_make(secrets[i], f, nf, h) == 0 && strncasecmp(h, hash, SRS_HASH_LEN) == 0)
			ok = true; /* no early exit: the time does not say which secret matched */
	}
	return ok;
}

/* The position of the next '=' in p[from..n), or n. */
static size_t
next_sep(const char *p, size_t n, size_t from)
{
	while (from < n && p[from] != SRS_SEP)
		from++;
	return from;
}

/* SRS1=HASH=HOST=USER: the three parts, USER the rest of the string (for
 * an SRS1 made from an SRS0 it begins with '='). -1 when a part is
 * missing or empty. */
static int
split_srs1(const char *p, size_t n, field_t *hash, field_t *host, field_t *user)
{
	size_t a = 5, b = next_sep(p, n, a);
	if (b >= n || b == a)
		return -1;
	size_t c = next_sep(p, n, b + 1);
	if (c >= n || c == b + 1 || c + 1 >= n)
		return -1;
	*hash = (field_t){p + a, b - a};
	*host = (field_t){p + b + 1, c - b - 1};
	*user = (field_t){p + c + 1, n - c - 1};
	return 0;
}

enum srs_status
srs_forward(const char *const *secrets, size_t nsecrets, const char *local, size_t local_len,
    const char *domain, int64_t now, buf_t *out)
{
	if (nsecrets == 0)
		return SRS_NO_SECRET;
	char h[SRS_HASH_LEN + 1];
	buf_t r = BUF_INIT;
	field_t hash, host, user;
	if (has_tag(local, local_len, "SRS1") &&
	    split_srs1(local, local_len, &hash, &host, &user) == 0) {
		/* re-forwarding an SRS1: keep the first forwarder and its SRS0
		 * part, sign them afresh (libsrs2 does not check the old hash) */
		field_t f[2] = {host, user};
		if (hash_make(secrets[0], f, 2, h) < 0)
			return SRS_NO_SECRET;
		buf_printf(&r, "SRS1%c%s%c", SRS_SEP, h, SRS_SEP);
		buf_append(&r, host.p, host.n);
		buf_putc(&r, SRS_SEP);
		buf_append(&r, user.p, user.n);
	} else if (has_tag(local, local_len, "SRS0")) {
		/* an SRS0 address of another forwarder: SRS1, with its domain
		 * and its local part after the tag (the separator included) */
		field_t f[2] = {{domain, strlen(domain)}, {local + 4, local_len - 4}};
		if (hash_make(secrets[0], f, 2, h) < 0)
			return SRS_NO_SECRET;
		buf_printf(&r, "SRS1%c%s%c%s%c", SRS_SEP, h, SRS_SEP, domain, SRS_SEP);
		buf_append(&r, local + 4, local_len - 4);
	} else {
		char ts[3];
		srs_timestamp(now, ts);
		field_t f[3] = {{ts, 2}, {domain, strlen(domain)}, {local, local_len}};
		if (hash_make(secrets[0], f, 3, h) < 0)
			return SRS_NO_SECRET;
		buf_printf(&r, "SRS0%c%s%c%s%c%s%c", SRS_SEP, h, SRS_SEP, ts, SRS_SEP, domain, SRS_SEP);
		buf_append(&r, local, local_len);
	}
	if (r.len > SRS_MAX_LOCAL) {
		buf_free(&r);
		return SRS_TOO_LONG;
	}
	buf_append(out, r.data, r.len);
	buf_free(&r);
	return SRS_OK;
}

/* The day number of a timestamp field, or -1 when it is not two base32
 * characters (any case). */
static int
stamp_days(const field_t *t)
{
	if (t->n != 2)
		return -1;
	int v = 0;
	for (size_t i = 0; i < 2; i++) {
		int ch = (unsigned char)t->p[i];
		if (ch >= 'a' && ch <= 'z')
			ch = ch - 'a' + 'A';
		const char *q = ch ? strchr(TIME_CHARS, ch) : NULL;
		if (q == NULL)
			return -1;
		v = (v << 5) | (int)(q - TIME_CHARS);
	}
	return v;
}

enum srs_status
srs_reverse(const char *const *secrets, size_t nsecrets, const char *local, size_t local_len,
    int64_t now, unsigned max_age, buf_t *out_local, buf_t *out_domain)
{
	field_t hash, host, user;
	if (has_tag(local, local_len, "SRS1")) {
		if (split_srs1(local, local_len, &hash, &host, &user) < 0)
			return SRS_BAD_SYNTAX;
		if (nsecrets == 0)
			return SRS_NO_SECRET;
		field_t f[2] = {host, user};
		if (!hash_check(secrets, nsecrets, hash.p, hash.n, f, 2))
			return SRS_BAD_HASH;
		buf_puts(out_local, "SRS0");
		buf_append(out_local, user.p, user.n);
		buf_append(out_domain, host.p, host.n);
		return SRS_OK;
	}
	if (!has_tag(local, local_len, "SRS0"))
		return SRS_NOT_SRS;
	/* SRS0=HASH=TT=HOST=USER */
	size_t a = 5, b = next_sep(local, local_len, a);
	if (b >= local_len || b == a)
		return SRS_BAD_SYNTAX;
	size_t c = next_sep(local, local_len, b + 1);
	if (c >= local_len || c == b + 1)
		return SRS_BAD_SYNTAX;
	size_t d = next_sep(local, local_len, c + 1);
	if (d >= local_len || d == c + 1 || d + 1 >= local_len)
		return SRS_BAD_SYNTAX;
	hash = (field_t){local + a, b - a};
	field_t ts = {local + b + 1, c - b - 1};
	host = (field_t){local + c + 1, d - c - 1};
	user = (field_t){local + d + 1, local_len - d - 1};
	int then = stamp_days(&ts);
	if (then < 0)
		return SRS_BAD_SYNTAX;
	if (nsecrets == 0)
		return SRS_NO_SECRET;
	field_t f[3] = {ts, host, user};
	if (!hash_check(secrets, nsecrets, hash.p, hash.n, f, 3))
		return SRS_BAD_HASH;
	/* libsrs2's srs_timestamp_check(): today modulo 1024, moved past
	 * then; a stamp from the future is 1023 days old */
	int64_t today = (now < 0 ? 0 : now) / SRS_DAY % SRS_TIME_SLOTS;
	while (today < then)
		today += SRS_TIME_SLOTS;
	if (today - then > (int64_t)max_age)
		return SRS_EXPIRED;
	buf_append(out_local, user.p, user.n);
	buf_append(out_domain, host.p, host.n);
	return SRS_OK;
}

/* ------------------------------------------------------------------ */
/* the secrets file                                                    */

void
srs_secrets_free(char **secrets, size_t n)
{
	if (secrets == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		explicit_bzero(secrets[i], strlen(secrets[i]));
		xfree(secrets[i]);
	}
	xfree(secrets);
}

int
srs_secrets_load(const config_t *c, char ***secrets, size_t *n, buf_t *err)
{
	*secrets = NULL;
	*n = 0;
	const char *path = c->srs_secret_file;
	if (path == NULL) {
		buf_puts(err, "srs_secret_file: not set (srs_domain needs it)");
		return -1;
	}
	char *data = NULL;
	size_t len = 0;
	if (secret_read(SECRET_SRS, path, config_run_uid(c), SRS_MAX_SECRET_FILE, &data, &len,
	    err) < 0)
		return -1;
	char **v = NULL;
	size_t nv = 0;
	const char *why = NULL;
	unsigned lineno = 0;
	for (size_t off = 0; off < len && why == NULL;) {
		const char *nl = memchr(data + off, '\n', len - off);
		size_t end = nl ? (size_t)(nl - data) : len, l = end - off;
		lineno++;
		if (l > 0 && data[off + l - 1] == '\r')
			l--;
		if (memchr(data + off, '\0', l))
			why = "contains a NUL octet";
		else if (l > 0 && l < SRS_MIN_SECRET)
			why = "is shorter than 16 octets (make one with: head -c 18 /dev/urandom | base64)";
		else if (l > 0) {
			v = xrealloc(v, (nv + 2) * sizeof *v);
			v[nv++] = xstrndup(data + off, l);
			v[nv] = NULL;
		}
		off = end + 1;
	}
	explicit_bzero(data, len);
	xfree(data);
	if (why == NULL && nv == 0)
		why = "holds no secret";
	if (why) {
		if (nv == 0 && strcmp(why, "holds no secret") == 0)
			buf_printf(err, "srs_secret_file %s: %s", path, why);
		else
			buf_printf(err, "srs_secret_file %s: line %u %s", path, lineno, why);
		srs_secrets_free(v, nv);
		return -1;
	}
	*secrets = v;
	*n = nv;
	return 0;
}
