/*
 * dataread.h - the message content reader for DATA and BDAT.
 *
 * A pure state machine over bytes (no I/O), so it can be fuzzed and tested
 * alone. It is the SMTP-smuggling defence (the CVE-2023-51764 class):
 *  - In DATA mode only <CRLF>.<CRLF> ends the message (RFC 5321 §4.1.1.4);
 *    the CRLF before the dot belongs to the content. A bare LF or a bare CR
 *    is never a line end: it is flagged (DR_BARE_LF / DR_BARE_CR), so the
 *    caller refuses the whole message, and "\n.\n", "\n.\r\n", "\r.\r\n" or
 *    "\r\n.\r" can never end it either.
 *  - A '.' at the start of a line is removed (dot-unstuffing, §4.5.2).
 *  - In raw mode (BDAT, RFC 3030) there is no terminator and no
 *    unstuffing; bare CR/LF are flagged the same way, so the spool only ever
 *    holds CRLF text and relaying it with DATA later is safe.
 *  - A NUL octet is flagged (DR_NUL) in both modes, so the caller refuses
 *    the message: RFC 5322 §3.5 (text is %d1-127) and RFC 2045 §2.7-2.8
 *    (7bit and 8bit data) do not allow NUL (tern does not offer
 *    BINARYMIME), and a next hop that strips NULs would read "\r\n\0.\r\n" as
 *    an end of data: the smuggling defence again (docs/security.md).
 *  - Lines longer than max_line octets (CRLF included, §4.5.3.1.6) and
 *    content beyond max_size are flagged; once any flag is set nothing more
 *    is emitted, but input is still consumed up to the end.
 * Content is emitted through a callback in runs, as few calls as possible.
 */
#ifndef TERN_DATAREAD_H
#define TERN_DATAREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DR_BARE_LF 0x01
#define DR_BARE_CR 0x02
#define DR_LINE_TOO_LONG 0x04
#define DR_TOO_BIG 0x08
#define DR_NUL 0x20  /* a NUL octet (refused: see below) */
#define DR_ERRORS (DR_BARE_LF | DR_BARE_CR | DR_LINE_TOO_LONG | DR_TOO_BIG | DR_NUL)
#define DR_8BIT 0x10 /* an octet >= 0x80 was seen (informational) */

typedef void (*dataread_out)(void *arg, const char *p, size_t n);

typedef struct dataread {
	int state;
	bool raw;          /* BDAT: no terminator, no unstuffing */
	size_t line_len;   /* octets in the current line so far */
	size_t max_line;   /* 0 = unlimited */
	uint64_t max_size; /* 0 = unlimited */
	uint64_t size;     /* content octets seen (emitted or not) */
	unsigned flags;    /* DR_* */
} dataread_t;

void dataread_init(dataread_t *d, bool raw, size_t max_line, uint64_t max_size);
/*
 * Consume up to n bytes. Returns how many were consumed; in DATA mode,
 * *done is set when the terminating CRLF.CRLF has been consumed (bytes after
 * it are left for the caller). In raw mode *done is never set.
 */
size_t dataread_feed(dataread_t *d, const char *p, size_t n, dataread_out out, void *arg,
    bool *done);
/* Raw mode, after the LAST chunk: a CR left pending at the end is a bare CR. */
void dataread_finish(dataread_t *d, dataread_out out, void *arg);

#endif
