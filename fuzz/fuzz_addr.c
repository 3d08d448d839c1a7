/*
 * fuzz_addr.c - libFuzzer target for src/common/addr.c.
 *
 * Feeds the input to addr_parse under every flag combination, to
 * mail_args_parse / rcpt_args_parse under several offered-extension sets, and
 * to the xtext functions, and checks invariants: a parsed address holds no
 * control octets, its fields are consistent, its str re-parses to the same
 * str, unquote+format gives str back, errors are complete reply lines, and
 * xtext round-trips. Any broken invariant abort()s. Must not leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_err(const char *err)
{
	CHECK(err != NULL);
	size_t l = strlen(err);
	CHECK(l > 10);
	CHECK((err[0] == '5' || err[0] == '4') && err[3] == ' ' && err[5] == '.');
	CHECK(strpbrk(err, "\r\n") == NULL);
}

static void
check_addr(const addr_t *a, unsigned flags)
{
	CHECK(a->str != NULL);
	size_t len = strlen(a->str);
	bool hi = false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)a->str[i];
		CHECK(c >= 0x20 && c != 0x7f);
		hi |= c >= 0x80;
	}
	CHECK(a->utf8 == hi);
	if (!(flags & ADDR_UTF8))
		CHECK(!a->utf8);
	CHECK(a->local_len <= len && a->local_len <= 64);
	CHECK(a->domain >= a->str && a->domain <= a->str + len);
	if (a->domain[0]) {
		CHECK(a->domain == a->str + a->local_len + 1);
		CHECK(a->str[a->local_len] == '@');
		CHECK(strlen(a->domain) <= 255);
		for (const char *d = a->domain; *d; d++)
			CHECK(!(*d >= 'A' && *d <= 'Z'));
	} else {
		CHECK(a->local_len == len);
		CHECK(len == 0 ? (flags & ADDR_NULL_OK) :
				 ((flags & ADDR_POSTMASTER_OK) && strcmp(a->str, "Postmaster") == 0));
	}

	/* re-parse */
	char rb[600];
	size_t rl;
	if (flags & ADDR_NO_BRACKETS)
		rl = (size_t)snprintf(rb, sizeof rb, "%s", a->str);
	else
		rl = (size_t)snprintf(rb, sizeof rb, "<%s>", a->str);
	CHECK(rl < sizeof rb);
	addr_t b;
	size_t used;
	const char *err = NULL;
	if (addr_parse(rb, rl, flags, &b, &used, &err) != 0) {
		fprintf(stderr, "re-parse of \"%s\" failed: %s\n", rb, err);
		abort();
	}
	CHECK(used == rl);
	CHECK(strcmp(b.str, a->str) == 0);
	CHECK(b.local_len == a->local_len);
	addr_free(&b);

	/* unquote + format */
	buf_t l = BUF_INIT, f = BUF_INIT;
	addr_local_unquoted(a, &l);
	addr_format(&f, l.data ? l.data : "", l.len, a->domain);
	CHECK(strcmp(buf_cstr(&f), a->str) == 0);
	buf_free(&l);
	buf_free(&f);

	/* copy */
	addr_copy(&b, a);
	CHECK(strcmp(b.str, a->str) == 0 && strcmp(b.domain, a->domain) == 0);
	CHECK(b.local_len == a->local_len && b.utf8 == a->utf8);
	addr_free(&b);
}

static void
fuzz_addr(const char *s, size_t n)
{
	char *first[16] = {0};
	for (unsigned flags = 0; flags < 16; flags++) {
		addr_t a;
		size_t used = 0;
		const char *err = NULL;
		if (addr_parse(s, n, flags, &a, &used, &err) != 0) {
			check_err(err);
			CHECK(a.str == NULL);
			continue;
		}
		CHECK(used <= n);
		CHECK(used <= 256);
		if (used < n)
			CHECK(s[used] == ' ' || s[used] == '\t');
		check_addr(&a, flags);
		first[flags] = a.str; /* keep to compare across flags */
	}
	/* more permissive flags never change a result */
	for (unsigned f = 0; f < 16; f++) {
		if (!first[f])
			continue;
		for (unsigned g = 0; g < 16; g++) {
			if ((g & f) != f || (g & ADDR_NO_BRACKETS) != (f & ADDR_NO_BRACKETS))
				continue;
			CHECK(first[g] != NULL && strcmp(first[g], first[f]) == 0);
		}
	}
	for (unsigned f = 0; f < 16; f++)
		free(first[f]);
}

static void
check_printable(const char *s, bool allow_hi)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		CHECK(c >= 0x20 && c != 0x7f);
		if (!allow_hi)
			CHECK(c < 0x80);
	}
}

static void
fuzz_args(const char *s, size_t n)
{
	static const unsigned offers[] = {
		0,
		ARGS_SMTPUTF8 | ARGS_8BITMIME | ARGS_DSN | ARGS_SIZE | ARGS_AUTH | ARGS_BINARYMIME,
		ARGS_8BITMIME | ARGS_DSN | ARGS_SIZE,
	};
	for (size_t k = 0; k < sizeof offers / sizeof offers[0]; k++) {
		mail_args_t m;
		const char *err = NULL;
		if (mail_args_parse(s, n, offers[k], &m, &err) == 0) {
			check_addr(&m.from, ADDR_NULL_OK | (m.smtputf8 ? ADDR_UTF8 : 0));
			CHECK(m.body >= BODY_NONE && m.body <= BODY_BINARYMIME);
			CHECK(m.ret >= RET_NONE && m.ret <= RET_HDRS);
			if (m.smtputf8)
				CHECK(offers[k] & ARGS_SMTPUTF8);
			if (m.envid) {
				CHECK(strlen(m.envid) <= 100 && m.envid[0]);
				check_printable(m.envid, false);
			}
			if (m.auth)
				check_printable(m.auth, true);
			mail_args_free(&m);
		} else {
			check_err(err);
			CHECK(m.from.str == NULL && m.envid == NULL && m.auth == NULL);
		}
		for (int u = 0; u < 2; u++) {
			rcpt_args_t r;
			err = NULL;
			if (rcpt_args_parse(s, n, offers[k], u, &r, &err) == 0) {
				check_addr(&r.to, ADDR_POSTMASTER_OK | (u ? ADDR_UTF8 : 0));
				CHECK(r.to.str[0] != '\0');
				CHECK(!(r.notify & NOTIFY_NEVER) || r.notify == NOTIFY_NEVER);
				CHECK(r.notify <= 0x0f);
				if (r.orcpt) {
					CHECK(strlen(r.orcpt) <= 500 && strchr(r.orcpt, ';'));
					check_printable(r.orcpt, u);
				}
				rcpt_args_free(&r);
			} else {
				check_err(err);
				CHECK(r.to.str == NULL && r.orcpt == NULL);
			}
		}
	}
}

static void
fuzz_xtext(const char *s, size_t n)
{
	buf_t d = BUF_INIT, e = BUF_INIT, d2 = BUF_INIT;
	int r = xtext_decode(s, n, &d);
	CHECK((r == 0) == xtext_valid(s, n));
	if (r == 0) {
		CHECK(d.len <= n);
		xtext_encode(&e, d.data ? d.data : "", d.len);
		CHECK(xtext_valid(e.data ? e.data : "", e.len));
		CHECK(xtext_decode(e.data ? e.data : "", e.len, &d2) == 0);
		CHECK(d2.len == d.len && (d.len == 0 || memcmp(d.data, d2.data, d.len) == 0));
	} else {
		CHECK(d.len == 0);
	}
	buf_reset(&e);
	buf_reset(&d2);
	/* any octets encode to valid xtext that decodes back */
	xtext_encode(&e, s, n);
	CHECK(xtext_valid(e.data ? e.data : "", e.len));
	CHECK(xtext_decode(e.data ? e.data : "", e.len, &d2) == 0);
	CHECK(d2.len == n && (n == 0 || memcmp(d2.data, s, n) == 0));
	buf_free(&d);
	buf_free(&e);
	buf_free(&d2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	/* copy so that ASan catches reads past the length */
	char *s = malloc(size ? size : 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	fuzz_addr(s, size);
	fuzz_args(s, size);
	fuzz_xtext(s, size);
	free(s);
	return 0;
}
