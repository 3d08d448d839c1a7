/*
 * smtp_reply.h - parse the replies an SMTP/LMTP server sends us.
 *
 * RFC 5321 §4.2:
 *   Reply-line = *( Reply-code "-" [ textstring ] CRLF )
 *                Reply-code [ SP textstring ] CRLF
 *   Reply-code = %x32-35 %x30-35 %x30-39
 *   textstring = 1*(%d09 / %d32-126)
 * Every line of one reply must carry the same code (§4.2.1). An enhanced
 * status code (RFC 3463, announced by ENHANCEDSTATUSCODES, RFC 2034 §3)
 * follows the code and a space: class "." subject "." detail, where class
 * is 2, 4 or 5 and matches the reply code's first digit.
 *
 * The parser is incremental and strict: it consumes whole lines only from
 * the byte stream it is fed, stops right after the last line of a reply
 * (so pipelined replies that follow stay in the stream), and fails rather
 * than waits for ever: at most SMTP_REPLY_MAX_LINES lines, each at most
 * SMTP_REPLY_MAX_LINE octets, SMTP_REPLY_MAX_BYTES in all. The only leniency
 * is a line ended by a bare LF (servers that forget the CR); a bare CR, NUL
 * or any other control character except HT is an error. Octets >= 0x80 in the
 * text (some servers localise their replies) are kept as '?' so the text
 * can safely go into logs, queue files and DSNs.
 *
 * It never allocates beyond the bounds above and never reads past the
 * length it is given.
 */
#ifndef TERN_SMTP_REPLY_H
#define TERN_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

#define SMTP_REPLY_MAX_LINES 100
#define SMTP_REPLY_MAX_LINE 4096    /* one line, CRLF included (RFC 5321 says 512: we are lenient) */
#define SMTP_REPLY_MAX_BYTES 65536  /* one whole reply */
#define SMTP_ESC_SIZE 16            /* "5.123.123" + NUL fits */

typedef struct smtp_reply {
	int code;               /* 200..559, valid once complete */
	char esc[SMTP_ESC_SIZE]; /* enhanced status code of the first line, "" when none */
	/* the text of every line (after "ddd-" / "ddd "), each followed by '\n';
	 * an enhanced code at the start of a line is removed from the text */
	buf_t text;
	size_t nlines;
	/* parser state */
	size_t total;           /* octets consumed for this reply so far */
	bool complete;
	const char *err;        /* set on error: a static description */
} smtp_reply_t;

enum {
	SMTP_REPLY_ERROR = -1,
	SMTP_REPLY_MORE = 0, /* consumed what it could, needs more input */
	SMTP_REPLY_DONE = 1, /* r holds a complete reply */
};

void smtp_reply_init(smtp_reply_t *r);
/* forget the reply, keep the buffer's allocation, ready for the next one */
void smtp_reply_reset(smtp_reply_t *r);
void smtp_reply_free(smtp_reply_t *r);

/*
 * Feed input p[0..n). Consumes complete lines only and sets *used to the
 * octets consumed (the caller drops them from its input). Returns
 * SMTP_REPLY_DONE after the final line of a reply (nothing after it is
 * consumed), SMTP_REPLY_MORE when the reply is not complete yet, or
 * SMTP_REPLY_ERROR (r->err says why; the connection is beyond repair).
 * An unterminated line is left in the input until its end arrives (or
 * it exceeds SMTP_REPLY_MAX_LINE: an error).
 */
int smtp_reply_feed(smtp_reply_t *r, const char *p, size_t n, size_t *used);

/* The text of line i (0-based) without its '\n'. */
bool smtp_reply_line(const smtp_reply_t *r, size_t i, const char **p, size_t *n);

/*
 * The whole reply as one line: "550 5.1.1 text of line 1 text of line 2",
 * at most max octets (longer text is cut and ends in "..."). When the
 * server gave no enhanced code, def_esc is used if not NULL (RFC 3463
 * codes are required on every reply text we store).
 */
void smtp_reply_format(const smtp_reply_t *r, const char *def_esc, size_t max, buf_t *out);

/* Parse an enhanced status code at p[0..n): "x.y.z" followed by the end or
 * a space; returns its length or 0. Exported for the tests. */
size_t smtp_esc_parse(const char *p, size_t n);

#endif
