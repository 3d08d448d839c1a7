/*
 * fuzz_dataread.c - libFuzzer target for the DATA/BDAT reader.
 * Invariants: never consumes more than given; output never grows past the
 * input; once "done", the same bytes split at any point give the same
 * result; flagged content never contains anything after the flag; a NUL
 * in what was consumed is always flagged (DR_NUL) and never emitted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "smtpd/dataread.h"

static void
collect(void *arg, const char *p, size_t n)
{
	buf_append(arg, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool raw = data[0] & 1;
	size_t split = (data[0] >> 1) + 1;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;

	dataread_t a, b;
	buf_t oa = BUF_INIT, ob = BUF_INIT;
	bool da = false, db = false;
	dataread_init(&a, raw, 100, 4096);
	dataread_init(&b, raw, 100, 4096);
	size_t ua = dataread_feed(&a, p, n, collect, &oa, &da);
	if (ua > n || oa.len > n)
		abort();
	size_t ub = 0;
	while (ub < n && !db) {
		size_t k = n - ub < split ? n - ub : split;
		ub += dataread_feed(&b, p + ub, k, collect, &ob, &db);
	}
	if (ua != ub || da != db || a.flags != b.flags)
		abort();
	/* with an error flag the content is refused, so only clean content
	 * must be the same however the input was split */
	if (!(a.flags & DR_ERRORS) &&
	    (oa.len != ob.len || memcmp(buf_cstr(&oa), buf_cstr(&ob), oa.len) != 0))
		abort();
	if (raw && da)
		abort();
	if (!(a.flags & (DR_BARE_LF | DR_BARE_CR))) {
		/* clean content has only CRLF line ends */
		for (size_t i = 0; i < oa.len; i++) {
			if (oa.data[i] == '\n' && (i == 0 || oa.data[i - 1] != '\r'))
				abort();
		}
	}
	/* a NUL is always flagged (the message is refused), and nothing from
	 * the NUL on is emitted; so what is emitted never holds one */
	if (memchr(p, 0, ua) != NULL && !(a.flags & DR_NUL))
		abort();
	if (memchr(oa.data ? oa.data : "", 0, oa.len) != NULL)
		abort();
	buf_free(&oa);
	buf_free(&ob);
	return 0;
}
