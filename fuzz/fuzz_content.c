/*
 * fuzz_content.c - libFuzzer target for src/filter/content.c: the first
 * byte picks the mode.
 *  0: the input is a header/body check table (content_table_parse); a
 *     table that parses is matched against the input itself. Invariants:
 *     a refused table says why ("name:LINE: ..."); a match names a rule
 *     line inside the file and an action that exists.
 *  else: the input is a message body walked as MIME (content_walk) with a
 *     top-level Content-Type chosen by that byte, and each line decoded by
 *     content_qp_line and content_b64_feed. Invariants: every line handed
 *     out lies within CONTENT_LINE_MAX octets; QP output is never longer
 *     than its input; base64 output is at most 3/4 of the input (rounded
 *     up), whatever the bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/content.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
on_header(void *arg, const char *p, size_t n)
{
	CHECK(n <= CONTENT_LINE_MAX + 1);
	if (n)
		CHECK(p != NULL);
	(*(size_t *)arg)++;
}

static void
on_line(void *arg, const char *p, size_t n)
{
	CHECK(n <= CONTENT_LINE_MAX);
	if (n)
		CHECK(p != NULL);
	(*(size_t *)arg)++;
}

static bool
never(void *arg)
{
	return *(size_t *)arg > 100000;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned mode = data[0];
	char *p = malloc(size - 1 ? size - 1 : 1);
	memcpy(p, data + 1, size - 1);
	size_t n = size - 1;
	if (mode == 0) {
		buf_t err = BUF_INIT;
		content_table_t *t = content_table_parse("fuzz", p, n, &err);
		if (!t) {
			CHECK(err.len > 0 && strncmp(buf_cstr(&err), "fuzz:", 5) == 0);
		} else {
			content_rule_ref_t r;
			bool limited = false;
			if (content_table_match(t, p, n, &r, &limited)) {
				CHECK(r.line >= 1 && r.line <= n + 1);
				CHECK(r.action >= CONTENT_REJECT && r.action <= CONTENT_PREPEND);
				CHECK(r.text != NULL && strlen(r.text) <= CONTENT_TEXT_MAX);
			}
			content_table_free(t);
		}
		buf_free(&err);
	} else {
		static const char *const types[] = {NULL, "text/plain", "multipart/mixed; boundary=b",
		    "message/rfc822", "multipart/digest; boundary=\"b\"", "image/png"};
		static const char *const ctes[] = {NULL, "quoted-printable", "base64", "7bit"};
		size_t count = 0;
		content_walk_cb_t cb = {on_header, on_line, never};
		content_walk(p, n, types[mode % 6], ctes[(mode / 6) % 4], &cb, &count);
		char *out = malloc(n ? n : 1);
		bool soft;
		size_t k = content_qp_line(p, n, out, &soft);
		CHECK(k <= n);
		free(out);
		content_b64_t st = {0};
		buf_t b = BUF_INIT;
		content_b64_feed(&st, p, n, &b);
		CHECK(b.len <= (n * 3 + 3) / 4);
		buf_free(&b);
	}
	free(p);
	return 0;
}
