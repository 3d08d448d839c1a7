/*
 * mime8to7.h - DELIVER: 8-bit mail made 7-bit for a next hop without
 * 8BITMIME (RFC 6152 §3: convert or return; tern converts, as Postfix does).
 *
 * A whole-buffer, pure function (no I/O, no allocation beyond the output
 * buffer), so it can be fuzzed and tested alone. The MIME tree is walked
 * (RFC 2045, RFC 2046 §5.1.1 boundaries, nested, multipart/digest's default
 * message/rfc822): every leaf part whose body holds an octet >= 0x80 and
 * whose Content-Transfer-Encoding is an identity one (absent, 7bit, 8bit,
 * binary) is re-encoded as quoted-printable (RFC 2045 §6.7) and its
 * Content-Transfer-Encoding field replaced; multipart and message/... parts
 * are not encoded themselves, their leaves are (an 8bit/binary label on
 * them becomes 7bit). Everything else is copied byte for byte: 7-bit parts,
 * boundaries, headers. A top-level message without MIME-Version gets one,
 * so readers decode the new encoding.
 *
 * What cannot be converted makes the call fail (the caller bounces with
 * 5.6.3, as RFC 6152 §3 says): 8-bit octets in any header section, raw
 * 8-bit octets inside a part already labelled quoted-printable or base64
 * (or an unknown encoding), nesting deeper than MIME8TO7_MAX_DEPTH. 8-bit
 * octets in a multipart preamble or epilogue (text no MIME reader shows)
 * become '?'.
 *
 * Guarantees, checked by fuzz/fuzz_mime8to7.c: on success the output holds
 * only octets < 0x80; lines the converter writes are at most 76 octets
 * (plus CRLF), lines it copies are as long as they were; decoding each
 * converted part's quoted-printable gives back its original bytes exactly
 * (CRLF line ends stay line ends; bare CR and LF are encoded).
 * Must not: read outside p[0..n), or change a message that has no 8-bit
 * octet at all.
 */
#ifndef TERN_MIME8TO7_H
#define TERN_MIME8TO7_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

#define MIME8TO7_MAX_DEPTH 32

/*
 * Convert the message p[0..n) (header section, empty line, body; CRLF line
 * ends as the queue stores them). Returns 1 when it has no 8-bit octet
 * (out untouched: send p as it is), 0 with the 7-bit message appended to
 * out, -1 with the reason in *why (a static string) when it cannot be
 * converted (out may hold part of an output: discard it).
 */
int mime8to7_convert(const char *p, size_t n, buf_t *out, const char **why);

/* Quoted-printable encoding of p[0..n) appended to out (RFC 2045 §6.7):
 * CRLF stays a hard line break, lines of at most 76 octets with soft
 * breaks, '=', controls, 8-bit octets, trailing space/tab and a '-' at the
 * start of a line (so no line can look like a boundary) as =XX. */
void mime8to7_qp_encode(const char *p, size_t n, buf_t *out);

/* true when p[0..n) holds an octet >= 0x80 */
bool mime8to7_has_8bit(const char *p, size_t n);

#endif
