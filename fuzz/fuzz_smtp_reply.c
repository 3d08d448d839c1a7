/*
 * fuzz_smtp_reply.c - libFuzzer target for the SMTP reply parser: feeds
 * the input in pieces whose sizes come from the first byte, as a server's
 * stream would arrive, and checks the parser's invariants (bounded
 * consumption, bounded lines and size, clean text).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/smtp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)data[0] + 1;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	buf_t in = BUF_INIT;
	smtp_reply_t r;
	smtp_reply_init(&r);
	size_t off = 0;
	int replies = 0;
	while (off < n || in.len > 0) {
		size_t take = n - off < step ? n - off : step;
		buf_append(&in, p + off, take);
		off += take;
		size_t used = 0;
		int got = smtp_reply_feed(&r, in.data, in.len, &used);
		if (used > in.len)
			abort();
		buf_consume(&in, used);
		if (got == SMTP_REPLY_ERROR) {
			if (!r.err)
				abort();
			break;
		}
		if (got == SMTP_REPLY_DONE) {
			if (r.code < 200 || r.code > 559 || r.nlines < 1 || r.nlines > SMTP_REPLY_MAX_LINES ||
			    r.total > SMTP_REPLY_MAX_BYTES)
				abort();
			for (size_t i = 0; i < r.text.len; i++) {
				unsigned char c = (unsigned char)r.text.data[i];
				if (c >= 0x80 || c == 0x7f || (c < 0x20 && c != '\t' && c != '\n'))
					abort();
			}
			buf_t f = BUF_INIT;
			smtp_reply_format(&r, "5.0.0", 300, &f);
			if (f.len > 300 || memchr(f.data, '\n', f.len) || memchr(f.data, '\r', f.len))
				abort();
			buf_free(&f);
			smtp_reply_reset(&r);
			replies++;
			continue;
		}
		if (take == 0)
			break; /* no more input and an incomplete line */
	}
	(void)replies;
	smtp_reply_free(&r);
	buf_free(&in);
	return 0;
}
