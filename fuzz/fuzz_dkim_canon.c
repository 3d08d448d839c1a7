/*
 * fuzz_dkim_canon.c - libFuzzer target for DKIM's body canonicalisation
 * (src/mailauth/dkim_canon.c) and the streaming body hash of the verifier
 * (dkim.c): split invariance.
 *
 * Input: two bytes that seed the piece sizes, then a message body. The
 * body is canonicalised (simple and relaxed) whole and in pseudo-random
 * pieces; then a fixed header with three signatures (simple, relaxed, and
 * relaxed with l=7) is put before it and the whole message is verified fed
 * whole and fed in pieces.
 * Invariants: the outputs and the three body hashes are the same however
 * the input is split; relaxed output has no WSP before a CRLF and no two
 * WSP in a row; both outputs end in CRLF (or are empty: relaxed only) and
 * never in an empty line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "lib/buf.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
to_buf(void *arg, const char *p, size_t n)
{
	buf_append(arg, p, n);
}

static uint32_t
next(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

static void
canon(bool relaxed, const char *p, size_t n, uint32_t seed, buf_t *out)
{
	dkim_canon_t c;
	dkim_canon_init(&c, relaxed, to_buf, out);
	for (size_t i = 0; i < n;) {
		size_t k = seed ? 1 + next(&seed) % 9 : n;
		if (k > n - i)
			k = n - i;
		dkim_canon_body(&c, p + i, k);
		i += k;
	}
	dkim_canon_end(&c);
}

static const char header[] =
    "DKIM-Signature: v=1; a=rsa-sha256; c=simple/simple; d=a.example; s=s; h=from; "
    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==\r\n"
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=a.example; s=s; h=from; "
    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==\r\n"
    "DKIM-Signature: v=1; a=ed25519-sha256; c=simple/relaxed; l=7; d=a.example; s=s; h=from; "
    "bh=MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI=; b=YQ==\r\n"
    "From: a@a.example\r\n\r\n";

static enum dns_status
nokey(void *arg, const char *name, buf_t *txt)
{
	return DNS_NXDOMAIN;
}

static void
ignore(void *arg, const dkim_sig_result_t *r, size_t n)
{
	*(size_t *)arg = n;
}

static void
hashes(const char *msg, size_t n, uint32_t seed, unsigned char out[3][32])
{
	dkim_verify_t *v = dkim_verify_new(NULL);
	for (size_t i = 0; i < n;) {
		size_t k = seed ? 1 + next(&seed) % 200 : n;
		if (k > n - i)
			k = n - i;
		dkim_verify_feed(v, msg + i, k);
		i += k;
	}
	size_t got = 0;
	dkim_verify_finish_sync(v, nokey, NULL, ignore, &got);
	CHECK(got == 3);
	for (size_t i = 0; i < 3; i++) {
		const unsigned char *h = dkim_verify_body_hash(v, i);
		CHECK(h != NULL);
		memcpy(out[i], h, 32);
	}
	dkim_verify_free(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint32_t seed = (uint32_t)data[0] << 8 | data[1] | 1u;
	const char *p = (const char *)data + 2;
	size_t n = size - 2;
	for (int relaxed = 0; relaxed < 2; relaxed++) {
		buf_t whole = BUF_INIT, parts = BUF_INIT;
		canon(relaxed, p, n, 0, &whole);
		canon(relaxed, p, n, seed, &parts);
		CHECK(whole.len == parts.len);
		CHECK(whole.len == 0 || memcmp(whole.data, parts.data, whole.len) == 0);
		const char *o = whole.data;
		size_t ol = whole.len;
		CHECK(ol > 0 || relaxed);
		if (ol) {
			CHECK(ol >= 2 && o[ol - 2] == '\r' && o[ol - 1] == '\n');
			CHECK(!(ol >= 4 && memcmp(o + ol - 4, "\r\n\r\n", 4) == 0) || (!relaxed && ol == 2));
		}
		if (relaxed) {
			for (size_t i = 0; i + 1 < ol; i++) {
				bool w0 = o[i] == ' ' || o[i] == '\t', w1 = o[i + 1] == ' ' || o[i + 1] == '\t';
				CHECK(!(w0 && w1));
				CHECK(!(w0 && o[i + 1] == '\r' && i + 2 < ol && o[i + 2] == '\n'));
				CHECK(o[i] != '\t');
			}
		}
		buf_free(&whole);
		buf_free(&parts);
	}
	buf_t msg = BUF_INIT;
	buf_puts(&msg, header);
	buf_append(&msg, p, n);
	unsigned char a[3][32], b[3][32];
	hashes(msg.data, msg.len, 0, a);
	hashes(msg.data, msg.len, seed, b);
	CHECK(memcmp(a, b, sizeof a) == 0);
	buf_free(&msg);
	return 0;
}
