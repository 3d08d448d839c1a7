/*
 * fuzz_mtasts.c - libFuzzer target for MTA-STS (RFC 8461) input from the
 * network: the "_mta-sts" TXT record parser and the policy parser
 * (deliver/mtasts.c), then the MX matching of the parsed policy.
 *
 * Input: the first byte picks a split point; the bytes before it are a TXT
 * record's text, the rest a policy body, each copied into an exact-size
 * allocation so AddressSanitizer sees any read past it.
 * Invariants: an accepted TXT record has an id of 1-32 letters and digits;
 * an accepted policy has a mode, max_age at most 31557600, 1-64 lowercased
 * mx patterns (any for mode none) of which each matches itself when it is
 * not a wildcard and a one-label name below it when it is; a refused one
 * says why and holds nothing.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/mtasts.h"
#include "fuzz_check.h"
#include "lib/buf.h"
#include "lib/xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t split = data[0];
	data++;
	size--;
	if (split > size)
		split = size;
	char *txt = malloc(split ? split : 1);
	memcpy(txt, data, split);
	char id[MTASTS_ID_MAX + 1];
	buf_t err = BUF_INIT;
	int k = mtasts_txt_parse(txt, split, id, &err);
	CHECK(k >= -1 && k <= 1);
	if (k == 1) {
		size_t n = strlen(id);
		CHECK(n >= 1 && n <= MTASTS_ID_MAX);
		for (size_t i = 0; i < n; i++)
			CHECK(isalnum((unsigned char)id[i]));
	}
	if (k == -1)
		CHECK(err.len > 0);
	buf_free(&err);
	free(txt);

	size_t blen = size - split;
	char *body = malloc(blen ? blen : 1);
	memcpy(body, data + split, blen);
	mtasts_policy_t p;
	int r = mtasts_policy_parse(body, blen, &p, &err);
	if (r == 0) {
		CHECK(p.max_age <= MTASTS_MAX_AGE_LIMIT);
		CHECK(p.nmx <= MTASTS_MAX_MX);
		CHECK(p.mode == MTASTS_NONE || p.nmx >= 1);
		for (size_t i = 0; i < p.nmx; i++) {
			const char *pat = p.mx[i];
			for (const char *c = pat; *c; c++)
				CHECK(!isupper((unsigned char)*c));
			if (pat[0] == '*') {
				char *host = xasprintf("x%s", pat + 1);
				CHECK(mtasts_mx_match(&p, host));
				xfree(host);
			} else {
				CHECK(mtasts_mx_match(&p, pat));
			}
		}
		mtasts_policy_t copy;
		mtasts_policy_copy(&copy, &p);
		CHECK(copy.nmx == p.nmx);
		mtasts_policy_clear(&copy);
		mtasts_policy_clear(&p);
	} else {
		CHECK(r == -1 && err.len > 0 && p.nmx == 0 && p.mx == NULL);
	}
	buf_free(&err);
	free(body);
	return 0;
}
