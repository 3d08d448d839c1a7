/*
 * utf8.h - one UTF-8 validator for the whole tree.
 *
 * Used by the address parser (SMTPUTF8, RFC 6531), the DSN builder and the
 * queue tools' JSON output. Pure, bounded by n, never reads past s[n-1].
 */
#ifndef TERN_UTF8_H
#define TERN_UTF8_H

#include <stddef.h>

/*
 * Length (2, 3 or 4) of the well-formed multi-octet UTF-8 sequence at
 * s[0..n) (RFC 3629 §4), or 0 when there is none: ASCII, a stray
 * continuation octet, a truncated sequence, an overlong form, a surrogate
 * (U+D800..U+DFFF) or a code point above U+10FFFF.
 */
size_t utf8_seq_len(const unsigned char *s, size_t n);

#endif
