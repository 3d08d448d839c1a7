/*
 * fuzz_logline.c - libFuzzer target for src/lib/logline.c (the log line
 * grammar) and src/cli/logsummary.c (which reads logs that may hold anything
 * a peer sent, or a damaged file).
 *
 * Invariants: every span logline_parse() returns lies inside the input (or
 * is a constant level word), keys are non-empty [a-z_][a-z0-9_.-]*, at most
 * LOGLINE_MAX_KV pairs; logsum_line() on each input line (text and as the
 * "msg" of a JSON line) and logsum_print() never crash. Must not leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/logsummary.h"
#include "fuzz_check.h"
#include "lib/logline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(logline_span_t sp, const char *s, size_t n)
{
	if (sp.n == 0)
		return;
	CHECK(sp.p >= s && sp.p + sp.n <= s + n);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	logline_t l;
	logline_parse(s, size, &l);
	CHECK(l.nkv <= LOGLINE_MAX_KV);
	CHECK(l.level.n >= 4);
	inside(l.id, s, size);
	inside(l.event, s, size);
	inside(l.text, s, size);
	for (size_t i = 0; i < l.nkv; i++) {
		CHECK(l.key[i].n > 0);
		inside(l.key[i], s, size);
		inside(l.val[i], s, size);
		for (size_t j = 0; j < l.key[i].n; j++) {
			char c = l.key[i].p[j];
			CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
			    c == '-');
		}
	}
	logsum_t *sum = logsum_new(NULL, 4);
	const char *p = s, *end = s + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		logsum_line(sum, p, n);
		p += n + 1;
	}
	FILE *devnull = fopen("/dev/null", "w");
	if (devnull) {
		logsum_print(sum, devnull, 3);
		fclose(devnull);
	}
	logsum_free(sum);
	return 0;
}
