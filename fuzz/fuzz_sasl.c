/*
 * fuzz_sasl.c - libFuzzer target for the AUTH decoders (src/smtpd/auth.c):
 * base64, SASL PLAIN and LOGIN responses exactly as a client sends them.
 * Checks: no crash, no read or write out of bounds, decoded fields bounded
 * and NUL-free, and encode(decode(x)) == x for every accepted base64 input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/xalloc.h"
#include "smtpd/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	unsigned char out[3 * AUTH_MAX_FIELD + 8];
	long n = auth_b64_decode(in, size, out, sizeof out);
	if (n >= 0) {
		buf_t b = BUF_INIT;
		auth_b64_encode(out, (size_t)n, &b);
		if (b.len != size || memcmp(b.data ? b.data : "", in, size) != 0)
			abort(); /* base64 is canonical here: one encoding per value */
		buf_free(&b);
	}
	char *u, *p;
	const char *why;
	if (auth_plain_decode(in, size, &u, &p, &why) == 0) {
		if (strlen(u) == 0 || strlen(u) > AUTH_MAX_FIELD || strlen(p) > AUTH_MAX_FIELD)
			abort();
		xfree(u);
		xfree(p);
	} else if (!why || strncmp(why, "5", 1) != 0) {
		abort();
	}
	char *v;
	if (auth_login_decode(in, size, &v, &why) == 0) {
		if (strlen(v) > AUTH_MAX_FIELD)
			abort();
		xfree(v);
	}
	return 0;
}
