/*
 * test_addr.c - unit tests for src/common/addr.c: RFC 5321 paths, xtext,
 * MAIL/RCPT parameters. Table driven; hostile inputs included (embedded
 * NUL/CR/LF, overlong parts, malformed UTF-8, source routes, literals).
 * Must not depend on anything but addr.c and src/lib.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/addr.h"

#define N ADDR_NULL_OK
#define P ADDR_POSTMASTER_OK
#define U ADDR_UTF8
#define B ADDR_NO_BRACKETS

/* expected str on success, or a substring of the error reply on failure */
struct pcase {
	const char *in;
	size_t len; /* 0: strlen(in) */
	unsigned flags;
	int ok;
	const char *want;
	size_t used; /* expected *used on success; 0: whole input */
};

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static const struct pcase pcases[] = {
	/* plain and normalization */
	{"<user@example.com>", 0, 0, 1, "user@example.com", 0},
	{"<User.Name+tag@Example.COM>", 0, 0, 1, "User.Name+tag@example.com", 0},
	{"<a@b>", 0, 0, 1, "a@b", 0},
	{"<user@localhost>", 0, 0, 1, "user@localhost", 0},
	{"<!#$%&'*+-/=?^_`{|}~@x.org>", 0, 0, 1, "!#$%&'*+-/=?^_`{|}~@x.org", 0},
	{"<a-b@x-y.z-9.org>", 0, 0, 1, "a-b@x-y.z-9.org", 0},
	{"<a@b> SIZE=10", 0, 0, 1, "a@b", 5},
	{"<a@b>\tX", 0, 0, 1, "a@b", 5},
	/* percent hack and bang paths are just local parts */
	{"<user%other@local>", 0, 0, 1, "user%other@local", 0},
	{"<host!user@relay.example>", 0, 0, 1, "host!user@relay.example", 0},
	{"<a!b!c@d>", 0, 0, 1, "a!b!c@d", 0},
	/* quoted local parts */
	{"<\"john doe\"@example.com>", 0, 0, 1, "\"john doe\"@example.com", 0},
	{"<\"a@b\"@example.com>", 0, 0, 1, "\"a@b\"@example.com", 0},
	{"<\"plain\"@x>", 0, 0, 1, "plain@x", 0},
	{"<\"a.b\"@x>", 0, 0, 1, "a.b@x", 0},
	{"<\"a..b\"@x>", 0, 0, 1, "\"a..b\"@x", 0},
	{"<\".a\"@x>", 0, 0, 1, "\".a\"@x", 0},
	{"<\"\\p\\l\\a\\i\\n\"@x>", 0, 0, 1, "plain@x", 0},
	{"<\"a\\\"b\"@x>", 0, 0, 1, "\"a\\\"b\"@x", 0},
	{"<\"a\\\\b\"@x>", 0, 0, 1, "\"a\\\\b\"@x", 0},
	{"<\"a\\ b\"@x>", 0, 0, 1, "\"a b\"@x", 0},
	{"<\"\"@x>", 0, 0, 1, "\"\"@x", 0},
	{"<\"<>\"@x>", 0, 0, 1, "\"<>\"@x", 0},
	{"<\"a\\\x01\"@x>", 0, 0, 0, "5.1.3", 0},
	{"<\"a\tb\"@x>", 0, 0, 0, "Control", 0},
	{"<\"abc@x>", 0, 0, 0, "Unterminated", 0},
	{"<\"abc\\", 0, 0, 0, "Unterminated", 0},
	{"<a\"b\"@x>", 0, 0, 0, "local part", 0},
	/* address literals */
	{"<a@[192.0.2.1]>", 0, 0, 1, "a@[192.0.2.1]", 0},
	{"<a@[001.0.2.255]>", 0, 0, 1, "a@[001.0.2.255]", 0},
	{"<a@[IPv6:2001:DB8::1]>", 0, 0, 1, "a@[ipv6:2001:db8::1]", 0},
	{"<a@[IPv6:::ffff:192.0.2.1]>", 0, 0, 1, "a@[ipv6:::ffff:192.0.2.1]", 0},
	{"<a@[256.0.0.1]>", 0, 0, 0, "literal", 0},
	{"<a@[1.2.3]>", 0, 0, 0, "literal", 0},
	{"<a@[1.2.3.4.5]>", 0, 0, 0, "literal", 0},
	{"<a@[1234.1.1.1]>", 0, 0, 0, "literal", 0},
	{"<a@[IPv6:2001:db8::g]>", 0, 0, 0, "literal", 0},
	{"<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, 0, 0, "literal", 0},
	{"<a@[IPv6:192.0.2.1]>", 0, 0, 0, "literal", 0},
	{"<a@[x-tag:whatever]>", 0, 0, 0, "553 5.1.3 Unsupported", 0},
	{"<a@[]>", 0, 0, 0, "literal", 0},
	{"<a@[1.2.3.4>", 0, 0, 0, "Unterminated", 0}, /* '>' is dcontent */
	{"<a@[1.2.3.4]x>", 0, 0, 0, "5.1.3", 0},
	/* source routes: accepted, dropped */
	{"<@relay.example:user@example.com>", 0, 0, 1, "user@example.com", 0},
	{"<@a.example,@b.example:u@c.example>", 0, 0, 1, "u@c.example", 0},
	{"<@relay.example:\"a b\"@c>", 0, 0, 1, "\"a b\"@c", 0},
	{"<@r1,@r2:\"ab\"@c>", 0, 0, 1, "ab@c", 0},
	{"<@a,b:u@c>", 0, 0, 0, "5.1.3", 0},
	{"<@a:>", 0, 0, 0, "5.1.3", 0},
	{"<@[1.2.3.4]:u@c>", 0, 0, 0, "domain", 0},
	{"<@a u@c>", 0, 0, 0, "Space", 0},
	/* null path and Postmaster */
	{"<>", 0, N, 1, "", 0},
	{"<> SIZE=1", 0, N, 1, "", 2},
	{"<>", 0, 0, 0, "Null", 0},
	{"<Postmaster>", 0, P, 1, "Postmaster", 0},
	{"<POSTMASTER>", 0, P, 1, "Postmaster", 0},
	{"<postmaster>", 0, P, 1, "Postmaster", 0},
	{"<postmaster@Example.org>", 0, 0, 1, "postmaster@example.org", 0},
	{"<Postmaster>", 0, 0, 0, "lacks a domain", 0},
	{"<\"Postmaster\">", 0, P, 0, "lacks a domain", 0},
	{"<@a:Postmaster>", 0, P, 0, "lacks a domain", 0},
	{"<postmasters>", 0, P, 0, "lacks a domain", 0},
	/* bare mailboxes */
	{"user@Example.com", 0, B, 1, "user@example.com", 0},
	{"user@example.com rest", 0, B, 1, "user@example.com", 16},
	{"Postmaster", 0, B | P, 1, "Postmaster", 0},
	{"", 0, B | N, 1, "", 0},
	{"", 0, B, 0, "Missing", 0},
	{" a@b", 0, B | N, 0, "Space", 0},
	{"<user@example.com>", 0, B, 0, "local part", 0},
	{"user@example.com>", 0, B, 0, "after", 0},
	{"user@example.com", 0, 0, 0, "enclosed", 0},
	/* invalid */
	{"", 0, 0, 0, "Missing", 0},
	{"<", 0, 0, 0, "5.1.3", 0},
	{"<user@example.com", 0, 0, 0, "Unterminated", 0},
	{"<user@example.com.>", 0, 0, 0, "end with a dot", 0},
	{"user@example.com.", 0, B, 0, "end with a dot", 0},
	{"<a..b@x>", 0, 0, 0, "local part", 0},
	{"<.a@x>", 0, 0, 0, "local part", 0},
	{"<a.@x>", 0, 0, 0, "local part", 0},
	{"<@x>", 0, 0, 0, "5.1.3", 0},
	{"<user@>", 0, 0, 0, "lacks a domain", 0},
	{"<user>", 0, 0, 0, "lacks a domain", 0},
	{"<user@@x>", 0, 0, 0, "5.1.3", 0},
	{"<a@b@c>", 0, 0, 0, "5.1.3", 0},
	{"<user@.example.com>", 0, 0, 0, "domain", 0},
	{"<user@example..com>", 0, 0, 0, "domain", 0},
	{"<user@-example.com>", 0, 0, 0, "domain", 0},
	{"<user@example-.com>", 0, 0, 0, "domain", 0},
	{"<user@exa_mple.com>", 0, 0, 0, "5.1.3", 0},
	{"<us er@x>", 0, 0, 0, "Space", 0},
	{"< user@x>", 0, 0, 0, "Space", 0},
	{"<user@x >", 0, 0, 0, "Space", 0},
	{"<user@x>junk", 0, 0, 0, "after", 0},
	{"<<user@x>>", 0, 0, 0, "5.1.3", 0},
	{"<user@x", 0, 0, 0, "Unterminated", 0},
	{"<us\0er@x>", 9, 0, 0, "Control", 0},
	{"<user@x\0>", 9, 0, 0, "Control", 0},
	{"<user@x>\0", 9, 0, 0, "after", 0},
	{"<user\r\n@x>", 0, 0, 0, "Control", 0},
	{"<user@x\r\n>", 0, 0, 0, "Control", 0},
	{"<\"a\r\nb\"@x>", 0, 0, 0, "Control", 0},
	{"<a\x7f@x>", 0, 0, 0, "Control", 0},
	{"<user@x>\r\n", 0, 0, 0, "after", 0},
	/* UTF-8 (RFC 6531 §3.3) */
	{"<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", 0, U, 1, "j\xc3\xb6rg@b\xc3\xbc" "cher.example", 0},
	{"<j\xc3\xb6rg@example.com>", 0, 0, 0, "553 5.6.7", 0},
	{"<a@b\xc3\xbc" "cher.example>", 0, 0, 0, "553 5.6.7", 0},
	{"<\"\xe2\x82\xac x\"@x>", 0, U, 1, "\"\xe2\x82\xac x\"@x", 0},
	{"<\"\xe2\x82\xac\"@x>", 0, U, 1, "\xe2\x82\xac@x", 0},
	{"<\xf0\x9f\x98\x80@x>", 0, U, 1, "\xf0\x9f\x98\x80@x", 0},
	{"<\xc0\xaf@x>", 0, U, 0, "UTF-8", 0},         /* overlong */
	{"<\xe0\x80\xaf@x>", 0, U, 0, "UTF-8", 0},     /* overlong */
	{"<\xed\xa0\x80@x>", 0, U, 0, "UTF-8", 0},     /* surrogate */
	{"<\xf4\x90\x80\x80@x>", 0, U, 0, "UTF-8", 0}, /* > U+10FFFF */
	{"<\xc2\x85@x>", 0, U, 0, "UTF-8", 0},         /* C1 NEL */
	{"<\xc3@x>", 0, U, 0, "UTF-8", 0},             /* truncated */
	{"<\x80@x>", 0, U, 0, "UTF-8", 0},             /* lone continuation */
	{"<a@[IPv6:\xc3\xb6]>", 0, U, 0, "5.1.3", 0},
	{"<a@\xc3\xb6-.x>", 0, U, 0, "domain", 0},
	{"<A@B\xc3\x96.X>", 0, U, 1, "A@b\xc3\x96.x", 0}, /* only ASCII lowercased */
};

/* length cases built at run time */
static void
test_lengths(void **state)
{
	(void)state;
	addr_t a;
	size_t used;
	const char *err;
	char buf[600];
	char *l64 = repeat('l', 64), *l65 = repeat('l', 65);
	char *lab63 = repeat('d', 63), *lab64 = repeat('d', 64);

	snprintf(buf, sizeof buf, "<%s@x>", l64);
	assert_int_equal(addr_parse(buf, strlen(buf), 0, &a, &used, &err), 0);
	addr_free(&a);
	snprintf(buf, sizeof buf, "<%s@x>", l65);
	assert_int_equal(addr_parse(buf, strlen(buf), 0, &a, &used, &err), -1);
	assert_non_null(strstr(err, "local part too long"));
	/* quotes count: "l*62" is 64 octets, "l*63" is 65 */
	snprintf(buf, sizeof buf, "<\"%.62s\"@x>", l64);
	assert_int_equal(addr_parse(buf, strlen(buf), 0, &a, &used, &err), 0);
	addr_free(&a);
	snprintf(buf, sizeof buf, "<\"%.63s\"@x>", l64);
	assert_int_equal(addr_parse(buf, strlen(buf), 0, &a, &used, &err), -1);
	assert_non_null(strstr(err, "too long"));

	snprintf(buf, sizeof buf, "<a@%s.com>", lab63);
	assert_int_equal(addr_parse(buf, strlen(buf), 0, &a, &used, &err), 0);
	addr_free(&a);
	snprintf(buf, sizeof buf, "<a@%s.com>", lab64);
	assert_int_equal(addr_parse(buf, strlen(buf), 0, &a, &used, &err), -1);
	assert_non_null(strstr(err, "label too long"));

	/* path of exactly 256 octets: "<" + 1 + "@" + 252 + ">" */
	char dom[300];
	snprintf(dom, sizeof dom, "%s.%s.%s.%.60s", lab63, lab63, lab63, lab63);
	assert_int_equal(strlen(dom), 252);
	snprintf(buf, sizeof buf, "<a@%s>", dom);
	assert_int_equal(strlen(buf), 256);
	assert_int_equal(addr_parse(buf, strlen(buf), 0, &a, &used, &err), 0);
	assert_int_equal(used, 256);
	addr_free(&a);
	snprintf(buf, sizeof buf, "<ab@%s>", dom);
	assert_int_equal(addr_parse(buf, strlen(buf), 0, &a, &used, &err), -1);
	assert_non_null(strstr(err, "address too long"));
	/* the source route counts (RFC 5321 §4.5.3.1.3) */
	snprintf(buf, sizeof buf, "<@r:a@%s>", dom);
	assert_int_equal(addr_parse(buf, strlen(buf), 0, &a, &used, &err), -1);
	/* domain > 255 */
	snprintf(buf, sizeof buf, "<a@%s.%s.%s.%s.x>", lab63, lab63, lab63, lab63);
	assert_int_equal(addr_parse(buf, strlen(buf), 0, &a, &used, &err), -1);
	assert_non_null(strstr(err, "too long"));
	/* bare mailbox: 254 */
	snprintf(buf, sizeof buf, "a@%s", dom);
	assert_int_equal(strlen(buf), 254);
	assert_int_equal(addr_parse(buf, strlen(buf), B, &a, &used, &err), 0);
	addr_free(&a);
	snprintf(buf, sizeof buf, "ab@%s", dom);
	assert_int_equal(addr_parse(buf, strlen(buf), B, &a, &used, &err), -1);

	/* a huge input fails without trouble */
	char *huge = repeat('a', 100000);
	huge[0] = '<';
	assert_int_equal(addr_parse(huge, 100000, 0, &a, &used, &err), -1);
	free(huge);
	free(l64);
	free(l65);
	free(lab63);
	free(lab64);
}

static void
test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof pcases / sizeof pcases[0]; i++) {
		const struct pcase *c = &pcases[i];
		size_t n = c->len ? c->len : strlen(c->in);
		addr_t a;
		size_t used = 12345;
		const char *err = NULL;
		int r = addr_parse(c->in, n, c->flags, &a, &used, &err);
		if ((r == 0) != (c->ok == 1)) {
			fail_msg("case %zu \"%s\": got %d (%s), want %s", i, c->in, r,
			    r ? err : a.str, c->ok ? "success" : "failure");
		}
		if (r == 0) {
			if (strcmp(a.str, c->want) != 0)
				fail_msg("case %zu \"%s\": str \"%s\", want \"%s\"", i, c->in, a.str,
				    c->want);
			assert_int_equal(used, c->used ? c->used : n);
			/* invariants */
			assert_true(a.domain >= a.str && a.domain <= a.str + strlen(a.str));
			if (a.domain[0])
				assert_ptr_equal(a.domain, a.str + a.local_len + 1);
			bool hi = false;
			for (const char *q = a.str; *q; q++)
				hi |= (unsigned char)*q >= 0x80;
			assert_int_equal(a.utf8, hi);
			/* re-parse gives the same str */
			char rb[600];
			addr_t b;
			size_t u2;
			if (c->flags & B)
				snprintf(rb, sizeof rb, "%s", a.str);
			else
				snprintf(rb, sizeof rb, "<%s>", a.str);
			assert_int_equal(addr_parse(rb, strlen(rb), c->flags, &b, &u2, &err), 0);
			assert_string_equal(b.str, a.str);
			addr_free(&b);
			/* unquote + format round trip */
			buf_t lb = BUF_INIT, fb = BUF_INIT;
			addr_local_unquoted(&a, &lb);
			addr_format(&fb, lb.data ? lb.data : "", lb.len, a.domain);
			assert_string_equal(buf_cstr(&fb), a.str);
			buf_free(&lb);
			buf_free(&fb);
			/* copy */
			addr_copy(&b, &a);
			assert_string_equal(b.str, a.str);
			assert_string_equal(b.domain, a.domain);
			assert_int_equal(b.local_len, a.local_len);
			addr_free(&b);
			addr_free(&a);
			assert_null(a.str);
		} else {
			assert_non_null(err);
			assert_null(a.str);
			if (strstr(err, c->want) == NULL)
				fail_msg("case %zu \"%s\": error \"%s\" lacks \"%s\"", i, c->in, err,
				    c->want);
			/* complete reply line: "ddd d.d.d text", no CR/LF */
			assert_true(err[0] >= '4' && err[0] <= '5' && err[3] == ' ' && err[5] == '.');
			assert_null(strpbrk(err, "\r\n"));
		}
	}
}

static void
test_accessors(void **state)
{
	(void)state;
	addr_t a;
	size_t used;
	const char *err;
	buf_t b = BUF_INIT;
	const char *in = "<\"a b\\\"c\"@[1.2.3.4]>";
	assert_int_equal(addr_parse(in, strlen(in), 0, &a, &used, &err), 0);
	assert_true(addr_is_literal(&a));
	assert_string_equal(a.domain, "[1.2.3.4]");
	addr_local_unquoted(&a, &b);
	assert_string_equal(b.data, "a b\"c");
	addr_free(&a);
	buf_reset(&b);
	in = "<x@y>";
	assert_int_equal(addr_parse(in, strlen(in), 0, &a, &used, &err), 0);
	assert_false(addr_is_literal(&a));
	assert_int_equal(a.local_len, 1);
	assert_string_equal(a.domain, "y");
	addr_free(&a);
	addr_free(&a); /* idempotent */

	addr_format(&b, "a b", 3, "x.org");
	assert_string_equal(b.data, "\"a b\"@x.org");
	buf_reset(&b);
	addr_format(&b, "a\\\"", 3, "x");
	assert_string_equal(b.data, "\"a\\\\\\\"\"@x");
	buf_reset(&b);
	addr_format(&b, "Postmaster", 10, "");
	assert_string_equal(b.data, "Postmaster");
	buf_reset(&b);
	addr_format(&b, "", 0, "");
	assert_string_equal(buf_cstr(&b), "");
	buf_free(&b);

	/* null path */
	assert_int_equal(addr_parse("<>", 2, N, &a, &used, &err), 0);
	assert_string_equal(a.str, "");
	assert_string_equal(a.domain, "");
	assert_int_equal(a.local_len, 0);
	assert_false(addr_is_literal(&a));
	addr_free(&a);
	/* NULL used/err tolerated */
	assert_int_equal(addr_parse("<a@b>", 5, 0, &a, NULL, NULL), 0);
	addr_free(&a);
	assert_int_equal(addr_parse("<a@b", 4, 0, &a, NULL, NULL), -1);
}

/* ------------------------------------------------------------------ */

struct xcase {
	const char *in;
	int ok;
	const char *dec;
};

static const struct xcase xcases[] = {
	{"", 1, ""},
	{"abc", 1, "abc"},
	{"a+2Bb", 1, "a+b"},
	{"a+3Db", 1, "a=b"},
	{"+20", 1, " "},
	{"+2b", 1, "+"},
	{"+41+42", 1, "AB"},
	{"a+", 0, NULL},
	{"a+2", 0, NULL},
	{"a+G0", 0, NULL},
	{"a=b", 0, NULL},
	{"a b", 0, NULL},
	{"a\x7f", 0, NULL},
	{"\xc3\xa9", 0, NULL},
	{"!~", 1, "!~"},
};

static void
test_xtext(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof xcases / sizeof xcases[0]; i++) {
		const struct xcase *c = &xcases[i];
		buf_t b = BUF_INIT;
		buf_puts(&b, "pre");
		int r = xtext_decode(c->in, strlen(c->in), &b);
		assert_int_equal(xtext_valid(c->in, strlen(c->in)), c->ok == 1);
		if (c->ok) {
			assert_int_equal(r, 0);
			assert_int_equal(b.len, 3 + strlen(c->dec));
			assert_memory_equal(b.data + 3, c->dec, strlen(c->dec));
		} else {
			assert_int_equal(r, -1);
			assert_string_equal(b.data, "pre"); /* unchanged */
		}
		buf_free(&b);
	}
	/* round trip over every octet value */
	char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	buf_t e = BUF_INIT, d = BUF_INIT;
	xtext_encode(&e, all, sizeof all);
	assert_true(xtext_valid(e.data, e.len));
	assert_null(strpbrk(e.data, " =\r\n"));
	assert_int_equal(xtext_decode(e.data, e.len, &d), 0);
	assert_int_equal(d.len, 256);
	assert_memory_equal(d.data, all, 256);
	buf_reset(&e);
	xtext_encode(&e, "a+b=c d", 7);
	assert_string_equal(e.data, "a+2Bb+3Dc+20d");
	buf_free(&e);
	buf_free(&d);
}

/* ------------------------------------------------------------------ */

#define ALL (ARGS_SMTPUTF8 | ARGS_8BITMIME | ARGS_DSN | ARGS_SIZE | ARGS_AUTH | ARGS_BINARYMIME)

struct mcase {
	const char *in;
	unsigned offered;
	int ok;
	const char *want; /* from.str on success, error substring on failure */
	uint64_t size;
	int body;
	int smtputf8;
	int ret;
	const char *envid;
	const char *auth;
};

static const struct mcase mcases[] = {
	{"<a@b>", 0, 1, "a@b", 0, 0, 0, 0, NULL, NULL},
	{"<>", 0, 1, "", 0, 0, 0, 0, NULL, NULL},
	{" <a@b>", 0, 1, "a@b", 0, 0, 0, 0, NULL, NULL},
	{"   <a@b>   ", 0, 1, "a@b", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=100 BODY=8BITMIME", ALL, 1, "a@b", 100, BODY_8BITMIME, 0, 0, NULL, NULL},
	{"<a@b>  size=0   body=7bit", ALL, 1, "a@b", 0, BODY_7BIT, 0, 0, NULL, NULL},
	{"<a@b> BODY=BINARYMIME", ALL, 1, "a@b", 0, BODY_BINARYMIME, 0, 0, NULL, NULL},
	{"<a@b> SIZE=18446744073709551615", ALL, 1, "a@b", UINT64_MAX, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=00000000000000000001", ALL, 1, "a@b", 1, 0, 0, 0, NULL, NULL},
	{"<a@b> RET=HDRS ENVID=QQ+2B314", ALL, 1, "a@b", 0, 0, 0, RET_HDRS, "QQ+314", NULL},
	{"<a@b> ret=full", ALL, 1, "a@b", 0, 0, 0, RET_FULL, NULL, NULL},
	{"<a@b> AUTH=<>", ALL, 1, "a@b", 0, 0, 0, 0, NULL, "<>"},
	{"<a@b> AUTH=e+3Dmc2@example.com", ALL, 1, "a@b", 0, 0, 0, 0, NULL, "e=mc2@example.com"},
	{"<a@b> SMTPUTF8", ALL, 1, "a@b", 0, 0, 1, 0, NULL, NULL},
	{"<j\xc3\xb6rg@b\xc3\xbc" "cher.example> SMTPUTF8 BODY=8BITMIME", ALL, 1,
	    "j\xc3\xb6rg@b\xc3\xbc" "cher.example", 0, BODY_8BITMIME, 1, 0, NULL, NULL},
	{"<j\xc3\xb6rg@x> smtputf8", ALL, 1, "j\xc3\xb6rg@x", 0, 0, 1, 0, NULL, NULL},
	{"<\"a b\"@x> SIZE=5", ALL, 1, "\"a b\"@x", 5, 0, 0, 0, NULL, NULL},
	{"<\"a>b\"@x> SMTPUTF8", ALL, 1, "\"a>b\"@x", 0, 0, 1, 0, NULL, NULL},
	/* failures */
	{"<j\xc3\xb6rg@x>", ALL, 0, "553 5.6.7", 0, 0, 0, 0, NULL, NULL},
	{"<j\xc3\xb6rg@x> SMTPUTF8", ALL & ~ARGS_SMTPUTF8, 0, "553 5.6.7", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SMTPUTF8", ALL & ~ARGS_SMTPUTF8, 0, "555 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SMTPUTF8=yes", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"a@b", ALL, 0, "501 5.1.7", 0, 0, 0, 0, NULL, NULL},
	{"<a@b", ALL, 0, "501 5.1.7", 0, 0, 0, 0, NULL, NULL},
	{"", ALL, 0, "501 5.1.7", 0, 0, 0, 0, NULL, NULL},
	{"<a@b>SIZE=1", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b>\tSIZE=1", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=1 SIZE=2", ALL, 0, "501 5.5.4 Duplicate", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=1 size=1", ALL, 0, "501 5.5.4 Duplicate", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=18446744073709551616", ALL, 0, "552 5.3.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=99999999999999999999", ALL, 0, "552 5.3.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=000000000000000000001", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=-1", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=1k", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=10", ALL & ~ARGS_SIZE, 0, "555 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> BODY=8BITMIME", 0, 0, "555 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> BODY=BINARYMIME", ARGS_8BITMIME, 0, "555 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> BODY=9BIT", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> RET=FULL", ALL & ~ARGS_DSN, 0, "555 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> RET=ALL", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> ENVID=a+0Db", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> ENVID=a+00b", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> ENVID=a+C3+A9", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> ENVID=a+", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> ENVID=x", ALL & ~ARGS_DSN, 0, "555 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> AUTH=x", ALL & ~ARGS_AUTH, 0, "555 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> AUTH=a+0D+0Ab", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> FOO=bar", ALL, 0, "555 5.5.4 Unsupported MAIL parameter", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> X-FOO", ALL, 0, "555 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> -FOO", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE==1", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> SIZE=1\r\n", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> BODY=8BITMIME\xc3\xa9", ALL, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	/* REQUIRETLS (RFC 8689): no value, once, and only under TLS */
	{"<a@b> REQUIRETLS=yes", ALL | ARGS_REQUIRETLS, 0, "501 5.5.4 REQUIRETLS takes no value", 0, 0,
	    0, 0, NULL, NULL},
	{"<a@b> REQUIRETLS=", ALL | ARGS_REQUIRETLS, 0, "501 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> REQUIRETLS requiretls", ALL | ARGS_REQUIRETLS, 0, "501 5.5.4 Duplicate", 0, 0, 0, 0,
	    NULL, NULL},
	{"<a@b> REQUIRETLS", ALL, 0, "530 5.7.10", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> REQUIRETLS", 0, 0, "555 5.5.4", 0, 0, 0, 0, NULL, NULL},
	{"<a@b> REQUIRETLSX", ALL | ARGS_REQUIRETLS, 0, "555 5.5.4", 0, 0, 0, 0, NULL, NULL},
};

static void
test_mail_args(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof mcases / sizeof mcases[0]; i++) {
		const struct mcase *c = &mcases[i];
		mail_args_t m;
		const char *err = NULL;
		int r = mail_args_parse(c->in, strlen(c->in), c->offered, &m, &err);
		if ((r == 0) != (c->ok == 1))
			fail_msg("case %zu \"%s\": got %d (%s)", i, c->in, r, r ? err : m.from.str);
		if (r == 0) {
			assert_string_equal(m.from.str, c->want);
			assert_true(m.size == c->size);
			assert_int_equal(m.body, c->body);
			assert_int_equal(m.smtputf8, c->smtputf8);
			assert_int_equal(m.ret, c->ret);
			assert_false(m.requiretls);
			if (c->envid)
				assert_string_equal(m.envid, c->envid);
			else
				assert_null(m.envid);
			if (c->auth)
				assert_string_equal(m.auth, c->auth);
			else
				assert_null(m.auth);
			mail_args_free(&m);
		} else {
			if (strstr(err, c->want) == NULL)
				fail_msg("case %zu \"%s\": error \"%s\" lacks \"%s\"", i, c->in, err,
				    c->want);
			assert_null(m.from.str);
			assert_null(m.envid);
			assert_null(m.auth);
		}
	}
	/* REQUIRETLS accepted on a TLS session, in any case, with others */
	mail_args_t rt;
	const char *rterr = NULL;
	assert_int_equal(mail_args_parse("<a@b> SIZE=5 requireTLS BODY=8BITMIME", 37,
	    ALL | ARGS_REQUIRETLS, &rt, &rterr), 0);
	assert_true(rt.requiretls);
	assert_true(rt.size == 5);
	mail_args_free(&rt);
	/* ENVID length: 100 decoded octets ok, 101 not */
	char buf[400];
	char *x100 = repeat('x', 100);
	mail_args_t m;
	const char *err;
	snprintf(buf, sizeof buf, "<a@b> ENVID=%s", x100);
	assert_int_equal(mail_args_parse(buf, strlen(buf), ALL, &m, &err), 0);
	assert_int_equal(strlen(m.envid), 100);
	mail_args_free(&m);
	snprintf(buf, sizeof buf, "<a@b> ENVID=%s+41", x100);
	assert_int_equal(mail_args_parse(buf, strlen(buf), ALL, &m, &err), -1);
	assert_non_null(strstr(err, "ENVID"));
	free(x100);
	/* embedded NUL in the parameters */
	assert_int_equal(mail_args_parse("<a@b> SIZE=1\0", 13, ALL, &m, &err), -1);
}

struct rcase {
	const char *in;
	unsigned offered;
	int utf8;
	int ok;
	const char *want;
	unsigned notify;
	const char *orcpt;
};

static const struct rcase rcases[] = {
	{"<a@b>", 0, 0, 1, "a@b", 0, NULL},
	{" <Postmaster>", 0, 0, 1, "Postmaster", 0, NULL},
	{"<a@b> NOTIFY=NEVER", ARGS_DSN, 0, 1, "a@b", NOTIFY_NEVER, NULL},
	{"<a@b> NOTIFY=success,FAILURE,Delay", ARGS_DSN, 0, 1, "a@b",
	    NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY, NULL},
	{"<a@b> NOTIFY=FAILURE ORCPT=rfc822;a+2Bb@c", ARGS_DSN, 0, 1, "a@b", NOTIFY_FAILURE,
	    "rfc822;a+b@c"},
	{"<a@b> orcpt=RFC822;x@y", ARGS_DSN, 0, 1, "a@b", 0, "RFC822;x@y"},
	{"<a@b> ORCPT=utf-8;j\xc3\xb6rg@x", ARGS_DSN, 1, 1, "a@b", 0, "utf-8;j\xc3\xb6rg@x"},
	{"<a@b> ORCPT=utf-8;j+C3+B6rg@x", ARGS_DSN, 1, 1, "a@b", 0, "utf-8;j\xc3\xb6rg@x"},
	{"<j\xc3\xb6rg@x>", 0, 1, 1, "j\xc3\xb6rg@x", 0, NULL},
	/* failures */
	{"<>", ARGS_DSN, 0, 0, "501 5.1.3", 0, NULL},
	{"<Postmaster@>", ARGS_DSN, 0, 0, "501 5.1.3", 0, NULL},
	{"<j\xc3\xb6rg@x>", ARGS_DSN, 0, 0, "553 5.6.7", 0, NULL},
	{"<a@b> NOTIFY=NEVER,SUCCESS", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> NOTIFY=", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> NOTIFY=SUCCESS,", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> NOTIFY=,SUCCESS", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> NOTIFY=SOMETIMES", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> NOTIFY=NEVER NOTIFY=NEVER", ARGS_DSN, 0, 0, "501 5.5.4 Duplicate", 0, NULL},
	{"<a@b> NOTIFY=NEVER", 0, 0, 0, "555 5.5.4 Unsupported RCPT", 0, NULL},
	{"<a@b> ORCPT=rfc822;a@b", 0, 0, 0, "555 5.5.4", 0, NULL},
	{"<a@b> ORCPT=rfc822", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> ORCPT=;a@b", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> ORCPT=rfc822;", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> ORCPT=rfc822;a+0D+0Ab", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> ORCPT=rfc822;a+00b", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> ORCPT=rfc822;a+C0+AFb", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> ORCPT=utf-8;j\xc3\xb6rg@x", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> ORCPT=rf(c;a", ARGS_DSN, 0, 0, "501 5.5.4", 0, NULL},
	{"<a@b> SIZE=1", ALL, 0, 0, "555 5.5.4", 0, NULL},
	{"<a@b>x", ALL, 0, 0, "501 5.5.4", 0, NULL},
};

static void
test_rcpt_args(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof rcases / sizeof rcases[0]; i++) {
		const struct rcase *c = &rcases[i];
		rcpt_args_t r;
		const char *err = NULL;
		int rc = rcpt_args_parse(c->in, strlen(c->in), c->offered, c->utf8, &r, &err);
		if ((rc == 0) != (c->ok == 1))
			fail_msg("case %zu \"%s\": got %d (%s)", i, c->in, rc, rc ? err : r.to.str);
		if (rc == 0) {
			assert_string_equal(r.to.str, c->want);
			assert_int_equal(r.notify, c->notify);
			if (c->orcpt)
				assert_string_equal(r.orcpt, c->orcpt);
			else
				assert_null(r.orcpt);
			rcpt_args_free(&r);
		} else {
			if (strstr(err, c->want) == NULL)
				fail_msg("case %zu \"%s\": error \"%s\" lacks \"%s\"", i, c->in, err,
				    c->want);
			assert_null(r.to.str);
			assert_null(r.orcpt);
		}
	}
	/* ORCPT length limit: 500 octets of value */
	char buf[700];
	char *x = repeat('x', 493);
	rcpt_args_t r;
	const char *err;
	snprintf(buf, sizeof buf, "<a@b> ORCPT=rfc822;%s", x); /* 7 + 493 = 500 */
	assert_int_equal(rcpt_args_parse(buf, strlen(buf), ARGS_DSN, false, &r, &err), 0);
	rcpt_args_free(&r);
	snprintf(buf, sizeof buf, "<a@b> ORCPT=rfc822;%sx", x);
	assert_int_equal(rcpt_args_parse(buf, strlen(buf), ARGS_DSN, false, &r, &err), -1);
	assert_non_null(strstr(err, "too long"));
	free(x);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_accessors),
		cmocka_unit_test(test_xtext),
		cmocka_unit_test(test_mail_args),
		cmocka_unit_test(test_rcpt_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
