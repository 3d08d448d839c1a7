/*
 * fuzz_dmarc.c - libFuzzer target for src/mailauth/dmarc.c's parsers: the
 * DMARC record (first byte even) and the From field's author domain (odd).
 *
 * Invariants (abort on failure): a record that parses starts a DMARC
 * record (dmarc_is_record), has pct <= 100, at most DMARC_MAX_URIS URIs
 * each with a scheme, and a usable record has a policy; parsing twice
 * gives the same. The From parser gives a domain exactly when it says OK,
 * a host name (lowercase LDH labels of 1..63, at most 253 octets), and the
 * same answer when a blank line and another From field follow the input
 * (the body is never read). A mailto: URI that parses gives an address
 * with an '@' that is neither first nor last and no space, control, '<',
 * '>' or ','.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "mailauth/dmarc.h"
#include "mailauth/dmarc_report.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
record(const char *d, size_t n)
{
	dmarc_record_t r, r2;
	buf_t err = BUF_INIT;
	int rc = dmarc_record_parse(d, n, &r, &err);
	int rc2 = dmarc_record_parse(d, n, &r2, &err);
	CHECK(rc == rc2);
	if (rc == 0) {
		CHECK(dmarc_is_record(d, n));
		CHECK(r.pct <= 100);
		CHECK(r.nrua <= DMARC_MAX_URIS && r.nruf <= DMARC_MAX_URIS);
		CHECK(r.p == r2.p && r.sp == r2.sp && r.nrua == r2.nrua && r.pct == r2.pct);
		for (size_t i = 0; i < r.nrua; i++)
			CHECK(strchr(r.rua[i], ':') != NULL);
		if (dmarc_record_usable(&r))
			CHECK(r.p != DMARC_P_UNSET);
	} else {
		CHECK(r.p == DMARC_P_UNSET && r.nrua == 0);
	}
	dmarc_record_clear(&r);
	dmarc_record_clear(&r2);
	buf_free(&err);
}

static void
from(const char *d, size_t n)
{
	buf_t dom = BUF_INIT, dom2 = BUF_INIT;
	enum dmarc_from_status st = dmarc_from_domain(d, n, &dom);
	CHECK((st == DMARC_FROM_OK) == (dom.len > 0));
	if (st == DMARC_FROM_OK) {
		CHECK(dom.len <= 253 && dom.data[0] != '.' && dom.data[dom.len - 1] != '.');
		size_t lab = 0;
		for (size_t i = 0; i < dom.len; i++) {
			unsigned char c = (unsigned char)dom.data[i];
			CHECK(c == '.' || c == '-' || c == '_' || isdigit(c) || islower(c));
			lab = c == '.' ? 0 : lab + 1;
			CHECK(lab <= 63);
			CHECK(!(c == '.' && i > 0 && dom.data[i - 1] == '.'));
		}
	}
	static const char tail[] = "\n\nFrom: z@z.example\n";
	char *d2 = xmalloc(n + sizeof tail);
	memcpy(d2, d, n);
	memcpy(d2 + n, tail, sizeof tail - 1);
	enum dmarc_from_status st2 = dmarc_from_domain(d2, n + sizeof tail - 1, &dom2);
	CHECK(st == st2);
	CHECK(strcmp(buf_cstr(&dom), buf_cstr(&dom2)) == 0);
	xfree(d2);
	buf_free(&dom);
	buf_free(&dom2);
}

static void
mailto(const char *d, size_t n)
{
	char *u = xstrndup(d, n); /* a C string: NULs end it */
	buf_t a = BUF_INIT;
	uint64_t lim;
	if (dmarc_report_mailto(u, &a, &lim) == 0) {
		const char *s = buf_cstr(&a), *at = strrchr(s, '@');
		CHECK(at && at != s && at[1]);
		for (const char *q = s; *q; q++)
			CHECK((unsigned char)*q > 0x20 && *q != 0x7f && !strchr("<>,", *q));
	} else {
		CHECK(a.len == 0);
	}
	buf_free(&a);
	xfree(u);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *d = (const char *)data + 1;
	if (data[0] % 3 == 0)
		record(d, size - 1);
	else if (data[0] % 3 == 1)
		from(d, size - 1);
	else
		mailto(d, size - 1);
	return 0;
}
