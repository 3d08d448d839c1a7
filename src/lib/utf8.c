/*
 * utf8.c - UTF-8 validation (see utf8.h). The second octet's allowed range
 * depends on the first (RFC 3629 §4, the table of well-formed sequences):
 * that one check rules out overlongs, surrogates and values past U+10FFFF.
 */
#include "lib/utf8.h"

size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
	if (n == 0 || s[0] < 0xc2)
		return 0; /* ASCII, stray continuation, or overlong C0/C1 lead */
	unsigned char c = s[0];
	if (c < 0xe0) {
		if (n < 2 || (s[1] & 0xc0) != 0x80)
			return 0;
		return 2;
	}
	if (c < 0xf0) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong */
		unsigned char hi = c == 0xed ? 0x9f : 0xbf; /* no surrogate */
		if (n < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80)
			return 0;
		return 3;
	}
	if (c < 0xf5) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80; /* no overlong */
		unsigned char hi = c == 0xf4 ? 0x8f : 0xbf; /* <= U+10FFFF */
		if (n < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		return 4;
	}
	return 0;
}
