/*
 * test_mime8to7.c - the 8-bit to 7-bit converter (src/deliver/mime8to7.c):
 * quoted-printable rules (RFC 2045 §6.7: 76-octet lines, soft breaks, '=',
 * trailing white space, CRLF), single part, multipart, nested multipart and
 * message/rfc822, already-encoded parts, what must be refused (8-bit
 * headers), and that every output is 7-bit and decodes back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/mime8to7.h"
#include "lib/buf.h"

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A strict decoder: fails on anything the encoder must not write. */
static int
qp_decode(const char *p, size_t n, buf_t *out)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '=') {
			if (n - i >= 3 && p[i + 1] == '\r' && p[i + 2] == '\n') {
				i += 2;
				continue;
			}
			if (n - i < 3 || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
				return -1;
			buf_putc(out, (char)(hexval(p[i + 1]) * 16 + hexval(p[i + 2])));
			i += 2;
		} else if (c == '\r') {
			if (i + 1 >= n || p[i + 1] != '\n')
				return -1;
			buf_append(out, "\r\n", 2);
			i++;
		} else if (c >= 0x80 || (c < 32 && c != '\t') || c == 127) {
			return -1;
		} else {
			buf_putc(out, (char)c);
		}
	}
	return 0;
}

/* every line at most 76 octets, no trailing white space before a CRLF */
static void
assert_qp_shape(const char *p, size_t n)
{
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n') {
			assert_true(col <= 76);
			assert_true(i == 0 || col == 0 || (p[i - 1] != ' ' && p[i - 1] != '\t'));
			col = 0;
			i++;
			continue;
		}
		assert_true((unsigned char)p[i] < 0x80);
		col++;
	}
	assert_true(col <= 76);
}

static void
roundtrip(const char *in, size_t n)
{
	buf_t enc = BUF_INIT, dec = BUF_INIT;
	mime8to7_qp_encode(in, n, &enc);
	assert_qp_shape(enc.data ? enc.data : "", enc.len);
	assert_int_equal(qp_decode(enc.data ? enc.data : "", enc.len, &dec), 0);
	assert_int_equal(dec.len, n);
	if (n)
		assert_memory_equal(dec.data, in, n);
	buf_free(&enc);
	buf_free(&dec);
}

static void
test_qp_rules(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"plain text", "plain text"},
	    {"caf\xc3\xa9", "caf=C3=A9"},
	    {"a=b", "a=3Db"},
	    {"trailing space \r\nnext\t\r\n", "trailing space=20\r\nnext=09\r\n"},
	    {"in the middle ok", "in the middle ok"},
	    {"-- boundary-like", "=2D- boundary-like"},
	    {"bare\rcr and bare\nlf", "bare=0Dcr and bare=0Alf"},
	    {"\r\n\r\n", "\r\n\r\n"},
	    {"", ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t b = BUF_INIT;
		mime8to7_qp_encode(cases[i].in, strlen(cases[i].in), &b);
		assert_string_equal(buf_cstr(&b), cases[i].out);
		buf_free(&b);
		roundtrip(cases[i].in, strlen(cases[i].in));
	}
}

static void
test_qp_long_lines(void **state)
{
	(void)state;
	char line[3000];
	/* 76 octets exactly: one line; 77: a soft break */
	memset(line, 'a', sizeof line);
	buf_t b = BUF_INIT;
	mime8to7_qp_encode(line, 76, &b);
	assert_int_equal(b.len, 76);
	buf_reset(&b);
	mime8to7_qp_encode(line, 77, &b);
	assert_non_null(memmem(b.data, b.len, "=\r\n", 3));
	buf_free(&b);
	/* long lines of 8-bit text, '=' and spaces, in every alignment */
	for (size_t i = 0; i < sizeof line; i++)
		line[i] = "\xc3\xa9 =x-\t"[i % 6];
	for (size_t n = 70; n < 240; n++)
		roundtrip(line, n);
	roundtrip(line, sizeof line);
	/* every octet value */
	char all[512];
	for (size_t i = 0; i < sizeof all; i++)
		all[i] = (char)(i & 0xff);
	roundtrip(all, sizeof all);
}

/* Convert; return the output as a string (caller frees). */
static char *
convert(const char *in, int want)
{
	buf_t out = BUF_INIT;
	const char *why = NULL;
	int r = mime8to7_convert(in, strlen(in), &out, &why);
	assert_int_equal(r, want);
	if (r < 0)
		assert_non_null(why);
	if (r == 0)
		assert_false(mime8to7_has_8bit(out.data, out.len));
	char *s = strdup(buf_cstr(&out));
	buf_free(&out);
	return s;
}

static void
test_no_8bit_unchanged(void **state)
{
	(void)state;
	free(convert("Subject: x\r\n\r\nhello\r\n", 1));
	free(convert("Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n", 1));
}

static void
test_single_part(void **state)
{
	(void)state;
	char *s = convert("Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                  "Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9 =\r\n", 0);
	assert_string_equal(s, "Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\n"
	                       "Content-Transfer-Encoding: quoted-printable\r\n"
	                       "MIME-Version: 1.0\r\n\r\ncaf=C3=A9 =3D\r\n");
	free(s);
	/* MIME-Version kept when present; a folded CTE field removed whole */
	s = convert("MIME-Version: 1.0\r\nContent-Transfer-Encoding:\r\n 8bit\r\nX: y\r\n\r\n\xff", 0);
	assert_string_equal(s, "MIME-Version: 1.0\r\nX: y\r\n"
	                       "Content-Transfer-Encoding: quoted-printable\r\n\r\n=FF");
	free(s);
	/* no header at all */
	s = convert("\r\n\xe9t\xe9\r\n", 0);
	assert_string_equal(s, "Content-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n"
	                       "\r\n=E9t=E9\r\n");
	free(s);
}

static void
test_multipart(void **state)
{
	(void)state;
	char *s = convert("MIME-Version: 1.0\r\n"
	                  "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	                  "Content-Transfer-Encoding: 8bit\r\n\r\n"
	                  "preamble \xe9\r\n"
	                  "--b1\r\n"
	                  "Content-Type: text/plain\r\n\r\n"
	                  "ascii only\r\n"
	                  "--b1  \r\n"
	                  "Content-Type: text/plain; charset=utf-8\r\n\r\n"
	                  "\xc3\xa9t\xc3\xa9\r\n"
	                  "--b1\r\n"
	                  "Content-Type: application/octet-stream\r\n"
	                  "Content-Transfer-Encoding: base64\r\n\r\n"
	                  "AAEC\r\n"
	                  "--b1--\r\n"
	                  "epilogue \xe9\r\n", 0);
	assert_string_equal(s, "MIME-Version: 1.0\r\n"
	                       "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
	                       "Content-Transfer-Encoding: 7bit\r\n\r\n"
	                       "preamble ?\r\n"
	                       "--b1\r\n"
	                       "Content-Type: text/plain\r\n\r\n"
	                       "ascii only\r\n"
	                       "--b1  \r\n"
	                       "Content-Type: text/plain; charset=utf-8\r\n"
	                       "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	                       "=C3=A9t=C3=A9\r\n"
	                       "--b1\r\n"
	                       "Content-Type: application/octet-stream\r\n"
	                       "Content-Transfer-Encoding: base64\r\n\r\n"
	                       "AAEC\r\n"
	                       "--b1--\r\n"
	                       "epilogue ?\r\n");
	free(s);
	/* "--b1x" is not a delimiter of b1: the line is content */
	s = convert("Content-Type: multipart/mixed; boundary=b1\r\n\r\n"
	            "--b1\r\n\r\n--b1x \xe9\r\n--b1--\r\n", 0);
	assert_string_equal(s, "Content-Type: multipart/mixed; boundary=b1\r\nMIME-Version: 1.0\r\n\r\n"
	                       "--b1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	                       "=2D-b1x =E9\r\n--b1--\r\n");
	free(s);
}

static void
test_nested(void **state)
{
	(void)state;
	char *s = convert("MIME-Version: 1.0\r\n"
	                  "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
	                  "--outer\r\n"
	                  "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
	                  "--inner\r\n"
	                  "Content-Type: text/plain\r\n\r\n"
	                  "\xe9\r\n"
	                  "--inner\r\n"
	                  "Content-Type: text/html\r\n\r\n"
	                  "<p>\xe9</p>\r\n"
	                  "--inner--\r\n"
	                  "--outer\r\n"
	                  "Content-Type: message/rfc822\r\n\r\n"
	                  "Subject: inner mail\r\n\r\n"
	                  "caf\xc3\xa9\r\n"
	                  "--outer--\r\n", 0);
	assert_string_equal(s, "MIME-Version: 1.0\r\n"
	                       "Content-Type: multipart/mixed; boundary=outer\r\n\r\n"
	                       "--outer\r\n"
	                       "Content-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
	                       "--inner\r\n"
	                       "Content-Type: text/plain\r\n"
	                       "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	                       "=E9\r\n"
	                       "--inner\r\n"
	                       "Content-Type: text/html\r\n"
	                       "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	                       "<p>=E9</p>\r\n"
	                       "--inner--\r\n"
	                       "--outer\r\n"
	                       "Content-Type: message/rfc822\r\n\r\n"
	                       "Subject: inner mail\r\n"
	                       "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	                       "caf=C3=A9\r\n"
	                       "--outer--\r\n");
	free(s);
	/* multipart/digest: parts are message/rfc822 unless they say otherwise */
	s = convert("Content-Type: multipart/digest; boundary=d\r\nMIME-Version: 1.0\r\n\r\n"
	            "--d\r\n\r\nSubject: m\r\n\r\n\xe9\r\n--d--\r\n", 0);
	assert_string_equal(s, "Content-Type: multipart/digest; boundary=d\r\nMIME-Version: 1.0\r\n\r\n"
	                       "--d\r\n\r\nSubject: m\r\nContent-Transfer-Encoding: quoted-printable\r\n"
	                       "\r\n=E9\r\n--d--\r\n");
	free(s);
}

static void
test_refused(void **state)
{
	(void)state;
	/* 8-bit in a header section: RFC 6152 says return it (5.6.3) */
	free(convert("Subject: caf\xc3\xa9\r\n\r\nbody\r\n", -1));
	free(convert("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
	             "Content-Type: text/plain; name=\"\xe9.txt\"\r\n\r\nx\r\n--b--\r\n", -1));
	/* raw 8-bit inside an already encoded part */
	free(convert("Content-Transfer-Encoding: quoted-printable\r\n\r\n\xe9\r\n", -1));
	free(convert("Content-Transfer-Encoding: base64\r\n\r\n\xe9\r\n", -1));
	/* a multipart without a usable boundary */
	free(convert("Content-Type: multipart/mixed\r\n\r\n\xe9\r\n", -1));
	free(convert("Content-Type: multipart/mixed; boundary=zz\r\n\r\n\xe9\r\n", -1));
	/* nesting past the limit */
	buf_t b = BUF_INIT;
	for (int i = 0; i < MIME8TO7_MAX_DEPTH + 5; i++)
		buf_puts(&b, "Content-Type: message/rfc822\r\n\r\n");
	buf_puts(&b, "\r\n\xe9");
	free(convert(buf_cstr(&b), -1));
	buf_free(&b);
}

/* a big part: CRLF handling and line lengths across many lines */
static void
test_crlf_and_size(void **state)
{
	(void)state;
	buf_t in = BUF_INIT, out = BUF_INIT, dec = BUF_INIT;
	buf_puts(&in, "Content-Type: text/plain\r\n\r\n");
	size_t body = in.len;
	for (int i = 0; i < 2000; i++) {
		for (int k = 0; k < i % 300; k++)
			buf_putc(&in, (char)(k % 7 == 0 ? 0xe9 : k % 5 == 0 ? ' ' : 'a' + k % 26));
		buf_puts(&in, i % 3 ? "\r\n" : " \r\n");
	}
	const char *why;
	assert_int_equal(mime8to7_convert(in.data, in.len, &out, &why), 0);
	const char *sep = memmem(out.data, out.len, "\r\n\r\n", 4);
	assert_non_null(sep);
	size_t off = (size_t)(sep - out.data) + 4;
	assert_qp_shape(out.data + off, out.len - off);
	assert_int_equal(qp_decode(out.data + off, out.len - off, &dec), 0);
	assert_int_equal(dec.len, in.len - body);
	assert_memory_equal(dec.data, in.data + body, dec.len);
	buf_free(&in);
	buf_free(&out);
	buf_free(&dec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qp_rules),
		cmocka_unit_test(test_qp_long_lines),
		cmocka_unit_test(test_no_8bit_unchanged),
		cmocka_unit_test(test_single_part),
		cmocka_unit_test(test_multipart),
		cmocka_unit_test(test_nested),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_crlf_and_size),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
