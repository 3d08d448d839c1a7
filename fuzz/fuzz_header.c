/*
 * fuzz_header.c - libFuzzer target for src/smtpd/header.c, the header
 * fields tern reads from message content: the Received: hop count (fed in
 * pieces whose sizes come from the first byte, as DATA would deliver them)
 * and the Date/From/Message-ID scan used by submission.
 *
 * Invariants (abort on failure): the hop count and the end of the header
 * section do not depend on how the input is split, and equal a plain
 * line-by-line reference; the field scan stays in bounds, stops just after
 * a CRLF, and its flags match the field names of the lines it covered.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtpd/header.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The reference: lines split at LF; the section ends at a line that is a
 * lone CR; a line counts when it is "received" (any case), blanks, ':'. */
static void
ref_hops(const char *d, size_t n, unsigned *hops, bool *done)
{
	*hops = 0;
	*done = false;
	size_t pos = 0;
	while (pos < n) {
		const char *lf = memchr(d + pos, '\n', n - pos);
		size_t ll = lf ? (size_t)(lf - (d + pos)) : n - pos;
		const char *l = d + pos;
		if (lf && ll == 1 && l[0] == '\r') {
			*done = true;
			return;
		}
		if (ll >= 9 && strncasecmp(l, "received", 8) == 0) {
			size_t k = 8;
			while (k < ll && (l[k] == ' ' || l[k] == '\t'))
				k++;
			if (k < ll && l[k] == ':')
				(*hops)++;
		}
		pos += ll + (lf ? 1 : 0);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned step = data[0] % 17 + 1;
	const char *d = (const char *)data + 1;
	size_t n = size - 1;

	hdr_hops_t whole, parts;
	hdr_hops_init(&whole);
	hdr_hops_feed(&whole, d, n);
	hdr_hops_init(&parts);
	for (size_t i = 0; i < n; i += step)
		hdr_hops_feed(&parts, d + i, n - i < step ? n - i : step);
	CHECK(whole.hops == parts.hops && whole.done == parts.done);
	unsigned rh;
	bool rd;
	ref_hops(d, n, &rh, &rd);
	CHECK(whole.hops == rh && whole.done == rd);

	for (int at_end = 0; at_end < 2; at_end++) {
		unsigned have = 0xff;
		bool complete = false;
		size_t pos = hdr_fields_scan(d, n, at_end, &have, &complete);
		CHECK(pos <= n);
		CHECK(pos == 0 || (pos >= 2 && d[pos - 2] == '\r' && d[pos - 1] == '\n'));
		CHECK((have & ~7u) == 0);
		if (at_end)
			CHECK(complete);
		/* the flags: field names of the lines in d[0..pos) */
		unsigned want = 0;
		size_t p = 0;
		while (p < pos) {
			const char *eol = memmem(d + p, pos - p, "\r\n", 2);
			CHECK(eol != NULL);
			size_t ll = (size_t)(eol - (d + p));
			CHECK(ll > 0);
			if (ll >= 5 && strncasecmp(d + p, "Date:", 5) == 0)
				want |= HDR_HAVE_DATE;
			if (ll >= 5 && strncasecmp(d + p, "From:", 5) == 0)
				want |= HDR_HAVE_FROM;
			if (ll >= 11 && strncasecmp(d + p, "Message-ID:", 11) == 0)
				want |= HDR_HAVE_MSGID;
			p += ll + 2;
		}
		CHECK(have == want);
	}
	return 0;
}
