/*
 * fuzz_srs.c - libFuzzer target for src/mailauth/srs.c, the SRS parser
 * that reads what bounces bring back (local parts of RCPT TO addresses).
 *
 * The first input byte picks a mode; the rest is copied into a buffer of
 * exactly its size (no NUL after it: a read past the length is an ASan
 * report):
 *   even  the rest is a local part for srs_reverse(), with two secrets and
 *         a fixed time;
 *   odd   the rest is "local@domain" (split at the last '@') for
 *         srs_forward() then srs_reverse().
 * Invariants: reverse gives SRS_OK only for an input srs_is_srs() accepts,
 * and then a non-empty local part and domain; an address made by forward
 * is an SRS address no longer than SRS_MAX_LOCAL that reverses to exactly
 * what went in (SRS0), or to the SRS0 part at the first forwarder's domain
 * (SRS1); every reverse result forwarded again (SRS0 re-signed) and
 * reversed gives the same result. Any broken invariant abort()s. Must not
 * leak.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "lib/buf.h"
#include "mailauth/srs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1796675674
static const char *const SECRETS[] = {"fuzz-secret-one-0123456789", "fuzz-secret-two-0123456789"};

static enum srs_status
reverse(const char *p, size_t n, buf_t *l, buf_t *d)
{
	buf_reset(l);
	buf_reset(d);
	return srs_reverse(SECRETS, 2, p, n, NOW, 21, l, d);
}

static void
fuzz_reverse(const char *p, size_t n)
{
	buf_t l = BUF_INIT, d = BUF_INIT, f = BUF_INIT, l2 = BUF_INIT, d2 = BUF_INIT;
	enum srs_status st = reverse(p, n, &l, &d);
	CHECK(st != SRS_TOO_LONG && st != SRS_NO_SECRET);
	if (st == SRS_OK) {
		CHECK(srs_is_srs(p, n));
		CHECK(l.len > 0 && d.len > 0);
		CHECK(l.len < n && d.len < n);
		/* sign the result again and read it back: the same address
		 * (an SRS0 result of an SRS1 becomes SRS1 again) */
		size_t dl = d.len;
		char *dom = buf_steal(&d);
		/* (an original local part that is itself SRS, but for an upper
		 * case SRS0 tag, is signed as SRS1 and comes back otherwise) */
		bool plain = !srs_is_srs(l.data, l.len) || memcmp(l.data, "SRS0", 4) == 0;
		if (plain && strlen(dom) == dl && strchr(dom, '=') == NULL &&
		    srs_forward(SECRETS, 2, l.data, l.len, dom, NOW, &f) == SRS_OK) {
			CHECK(reverse(f.data, f.len, &l2, &d2) == SRS_OK);
			CHECK(l2.len == l.len && memcmp(l2.data, l.data, l.len) == 0);
			CHECK(strcmp(buf_cstr(&d2), dom) == 0);
		}
		free(dom);
	} else if (!srs_is_srs(p, n)) {
		CHECK(st == SRS_NOT_SRS);
	}
	buf_free(&l);
	buf_free(&d);
	buf_free(&f);
	buf_free(&l2);
	buf_free(&d2);
}

static void
fuzz_forward(const char *p, size_t n)
{
	size_t at = n;
	while (at > 0 && p[at - 1] != '@')
		at--;
	if (at == 0 || at == 1 || at == n)
		return;
	const char *local = p;
	size_t ln = at - 1;
	char *dom = malloc(n - at + 1);
	memcpy(dom, p + at, n - at);
	dom[n - at] = '\0';
	buf_t f = BUF_INIT, l = BUF_INIT, d = BUF_INIT;
	/* a domain as the router passes it: no NUL, no '=' */
	if (strlen(dom) == n - at && strchr(dom, '=') == NULL) {
		enum srs_status st = srs_forward(SECRETS, 2, local, ln, dom, NOW, &f);
		CHECK(st == SRS_OK || st == SRS_TOO_LONG);
		if (st == SRS_OK) {
			CHECK(f.len <= SRS_MAX_LOCAL);
			CHECK(srs_is_srs(f.data, f.len));
			CHECK(reverse(f.data, f.len, &l, &d) == SRS_OK);
			if (memcmp(f.data, "SRS0", 4) == 0) {
				CHECK(l.len == ln && memcmp(l.data, local, ln) == 0);
				CHECK(strcmp(buf_cstr(&d), dom) == 0);
			} else {
				/* SRS1: back to an SRS0 part */
				CHECK(l.len >= 5 && memcmp(l.data, "SRS0", 4) == 0);
			}
		} else {
			CHECK(f.len == 0);
		}
	}
	free(dom);
	buf_free(&f);
	buf_free(&l);
	buf_free(&d);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	size_t n = size - 1;
	char *p = malloc(n ? n : 1);
	memcpy(p, data + 1, n);
	if (data[0] & 1)
		fuzz_forward(p, n);
	else
		fuzz_reverse(p, n);
	free(p);
	return 0;
}
