/*
 * fuzz_authres.c - libFuzzer target for src/mailauth/authres.c: removing
 * the Authentication-Results fields that claim our authserv-id (RFC 8601
 * section 5), the authserv-id parser, and the field builder.
 *
 * The input is split at the first NUL: an authserv-id, then the content.
 * Invariants (abort on failure): stripping never grows the content, keeps
 * the body (from the first empty line) byte for byte, leaves a
 * subsequence of whole lines, and is idempotent (a second pass removes
 * nothing). The builder, fed the id and pieces of the content as values,
 * comment and reason, writes a field of CRLF-terminated lines with no
 * other CR or LF, whose authserv-id reads back as the id (when the id is
 * printable ASCII), and which stripping with that id removes whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
#include "mailauth/authres.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* the offset of the body (after the first empty line), or n */
static size_t
body_at(const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *lf = memchr(p + i, '\n', n - i);
		size_t e = lf ? (size_t)(lf - p) + 1 : n;
		if (e - i == 1 || (e - i == 2 && p[i] == '\r'))
			return e;
		if (!lf)
			return n;
		i = e;
	}
	return n;
}

static void
strip(const char *id, const char *c, size_t n)
{
	buf_t b = BUF_INIT;
	buf_append(&b, c, n);
	size_t body = body_at(c, n);
	size_t removed = authres_strip(&b, id);
	CHECK(b.len <= n);
	CHECK((removed == 0) == (b.len == n));
	/* the body is the same tail */
	CHECK(b.len >= n - body);
	if (n - body > 0)
		CHECK(memcmp(b.data + b.len - (n - body), c + body, n - body) == 0);
	size_t len1 = b.len;
	CHECK(authres_strip(&b, id) == 0);
	CHECK(b.len == len1);
	buf_free(&b);
	buf_t sid = BUF_INIT;
	authres_serv_id(c, n, &sid);
	CHECK(sid.len <= n);
	buf_free(&sid);
}

static bool
printable(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static void
build(const char *id, const char *c, size_t n)
{
	/* pieces of the content (NUL-free copies) as values */
	char *v = xstrndup(c, n), *parts[4] = {"", "", "", ""};
	char *save = NULL;
	size_t np = 0;
	for (char *t = strtok_r(v, "|", &save); t && np < 4; t = strtok_r(NULL, "|", &save))
		parts[np++] = t;
	authres_t a;
	authres_begin(&a, id);
	authres_prop_t props[] = {{"smtp.mailfrom", parts[0]}, {"header.d", parts[1]}};
	authres_add(&a, "spf", "pass", parts[2], parts[3], props, 1);
	authres_add(&a, "dkim", np > 1 ? "fail" : "tmperror", NULL, NULL, props, 2);
	authres_add(&a, "dmarc", "none", parts[3], NULL, props + 1, 1);
	const char *f = authres_end(&a);
	size_t fl = strlen(f);
	CHECK(fl == a.b.len);
	CHECK(fl >= 2 && f[fl - 2] == '\r' && f[fl - 1] == '\n');
	for (size_t i = 0; i < fl; i++) {
		if (f[i] == '\r')
			CHECK(i + 1 < fl && f[i + 1] == '\n');
		if (f[i] == '\n')
			CHECK(i > 0 && f[i - 1] == '\r' && (i + 1 == fl || f[i + 1] == '\t'));
	}
	const char *colon = strchr(f, ':');
	CHECK(colon != NULL);
	if (printable(id)) {
		buf_t sid = BUF_INIT;
		CHECK(authres_serv_id(colon + 1, fl - (size_t)(colon + 1 - f), &sid) == 0);
		CHECK(strcmp(buf_cstr(&sid), id) == 0);
		buf_free(&sid);
		buf_t b = BUF_INIT;
		buf_puts(&b, f);
		buf_puts(&b, "\r\nbody");
		CHECK(authres_strip(&b, id) == 1);
		CHECK(strcmp(buf_cstr(&b), "\r\nbody") == 0);
		buf_free(&b);
	}
	authres_free(&a);
	xfree(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *d = (const char *)data;
	const char *nul = memchr(d, '\0', size);
	if (!nul)
		return 0;
	char *id = xstrndup(d, (size_t)(nul - d));
	const char *c = nul + 1;
	size_t n = size - (size_t)(nul + 1 - d);
	strip(id, c, n);
	build(id, c, n);
	xfree(id);
	return 0;
}
