/*
 * fuzz_aar.c - libFuzzer target for src/mailauth/arc.c's
 * ARC-Authentication-Results reader, arc_aar_passed() (the oldest AAR's
 * verdict that the trusted-forwarder override of DMARC rests on).
 *
 * The input is the field's value, not NUL-terminated (an exact-size copy,
 * so that ASan sees any read past it). Invariants (abort on failure): the
 * same answer twice; the same answer with every letter in upper case
 * (methods and results are case-insensitive, RFC 8601 section 2.2); and
 * once the value has its "i=N; authserv-id;" part (two ';'), appending
 * "; dmarc=pass" makes the answer yes, whatever came before (an
 * unclosed comment or quote included: each resinfo is read on its own).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/xalloc.h"
#include "mailauth/arc.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *v = xmalloc(size ? size : 1);
	memcpy(v, data, size);
	bool r = arc_aar_passed(v, size);
	CHECK(arc_aar_passed(v, size) == r);

	char *up = xmalloc(size ? size : 1);
	for (size_t i = 0; i < size; i++)
		up[i] = (char)toupper((unsigned char)v[i]);
	CHECK(arc_aar_passed(up, size) == r);
	xfree(up);

	size_t semi = 0;
	for (size_t i = 0; i < size; i++)
		semi += v[i] == ';';
	if (semi >= 2) {
		static const char tail[] = "; dmarc=pass";
		char *w = xmalloc(size + sizeof tail - 1);
		memcpy(w, v, size);
		memcpy(w + size, tail, sizeof tail - 1);
		CHECK(arc_aar_passed(w, size + sizeof tail - 1));
		xfree(w);
	}
	xfree(v);
	return 0;
}
