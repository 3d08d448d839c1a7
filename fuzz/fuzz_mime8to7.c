/*
 * fuzz_mime8to7.c - libFuzzer target for the 8-bit to 7-bit converter
 * (src/deliver/mime8to7.c).
 *
 * The first input byte picks a mode; the rest is the data.
 *  - mode 0: the data is a whole message. The converter must not crash,
 *    read out of bounds or leak; on success the output is 7-bit and no
 *    line (split at LF) is longer than 76 octets or the longest input
 *    line, whichever is more; "nothing to do" only for 7-bit input.
 *  - mode 1: the data is the body of a text/plain message; mode 2: the
 *    body of a part in a multipart/mixed. The converted body must be
 *    quoted-printable that decodes back to exactly the data, with every
 *    encoded line at most 76 octets (998 is SMTP's limit).
 * Seeds: fuzz/corpus/mime8to7/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/mime8to7.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
longest_line(const char *p, size_t n)
{
	size_t best = 0, cur = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			cur = 0;
			continue;
		}
		/* the CR of a CRLF is not part of the line */
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
			continue;
		if (++cur > best)
			best = cur;
	}
	return best;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* strict quoted-printable decoding; -1 on anything malformed */
static int
qp_decode(const char *p, size_t n, buf_t *out)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (c == '\r') {
			if (i + 1 >= n || p[i + 1] != '\n' || col > 76)
				return -1;
			buf_append(out, "\r\n", 2);
			i++;
			col = 0;
			continue;
		}
		col++;
		if (c != '=') {
			buf_putc(out, c);
			continue;
		}
		if (n - i >= 3 && p[i + 1] == '\r' && p[i + 2] == '\n') {
			if (col > 76)
				return -1;
			i += 2;
			col = 0;
			continue;
		}
		if (n - i < 3 || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
			return -1;
		buf_putc(out, (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2])));
		i += 2;
		col += 2;
	}
	return col > 76 ? -1 : 0;
}

static void
check_7bit(const buf_t *b)
{
	for (size_t i = 0; i < b->len; i++)
		if ((unsigned char)b->data[i] >= 0x80)
			abort();
}

static void
whole_message(const char *p, size_t n)
{
	buf_t out = BUF_INIT;
	const char *why = NULL;
	int r = mime8to7_convert(p, n, &out, &why);
	if (r == 1 && (out.len != 0 || mime8to7_has_8bit(p, n)))
		abort();
	if (r == -1 && why == NULL)
		abort();
	if (r == 0) {
		check_7bit(&out);
		size_t in_max = longest_line(p, n), out_max = longest_line(out.data, out.len);
		if (out_max > (in_max > 76 ? in_max : 76))
			abort();
	}
	buf_free(&out);
}

/* head + data + tail is converted; the body between the end of the
 * (new) header section and tail must decode back to data */
static void
one_part(const char *head, const char *p, size_t n, const char *tail)
{
	if (!mime8to7_has_8bit(p, n))
		return;
	/* the data must not end the part early */
	if (tail[0] && memmem(p, n, "\r\n--b", 5) != NULL)
		return;
	if (tail[0] && n >= 3 && memcmp(p, "--b", 3) == 0)
		return;
	buf_t in = BUF_INIT, out = BUF_INIT, dec = BUF_INIT;
	buf_puts(&in, head);
	buf_append(&in, p, n);
	buf_puts(&in, tail);
	const char *why = NULL;
	if (mime8to7_convert(in.data, in.len, &out, &why) != 0)
		abort();
	check_7bit(&out);
	/* the part's header is the last "\r\n\r\n" before the data: find
	 * the first one after the known header text */
	size_t hl = strlen(head);
	const char *sep = memmem(out.data + hl - 4, out.len - (hl - 4), "\r\n\r\n", 4);
	size_t tl = strlen(tail);
	if (sep == NULL || out.len < tl || memcmp(out.data + out.len - tl, tail, tl) != 0)
		abort();
	size_t off = (size_t)(sep - out.data) + 4;
	if (off > out.len - tl || qp_decode(out.data + off, out.len - tl - off, &dec) != 0)
		abort();
	if (dec.len != n || memcmp(dec.data, p, n) != 0)
		abort();
	buf_free(&in);
	buf_free(&out);
	buf_free(&dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	switch (data[0] % 3) {
	case 0: whole_message(p, n); break;
	case 1: one_part("MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n", p, n, ""); break;
	default:
		one_part("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
		         "--b\r\nContent-Type: text/plain\r\n\r\n",
		    p, n, "\r\n--b--\r\n");
		break;
	}
	return 0;
}
