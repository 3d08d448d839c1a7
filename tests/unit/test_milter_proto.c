/*
 * test_milter_proto.c - table-driven tests of src/filter/milter_proto.c
 * (packet framing, builders, the reply and OPTNEG parsers, bounds) and of
 * the header/body model in src/filter/filter.c that applies milters'
 * changes (CHGHEADER by index and delete, INSHEADER, REPLBODY).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "filter/filter.h"
#include "filter/milter_proto.h"

/* a packet as bytes: length word, command, data */
static size_t
mk(char *out, char cmd, const char *data, size_t n)
{
	uint32_t len = (uint32_t)n + 1;
	out[0] = (char)(len >> 24);
	out[1] = (char)(len >> 16);
	out[2] = (char)(len >> 8);
	out[3] = (char)len;
	out[4] = cmd;
	memcpy(out + 5, data, n);
	return n + 5;
}

static void
test_builders(void **state)
{
	(void)state;
	buf_t b = BUF_INIT;
	mp_optneg(&b, 6, SMFIF_ALL, SMFIP_TERN);
	assert_int_equal(b.len, 4 + 1 + 12);
	assert_memory_equal(b.data, "\0\0\0\x0dO\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff", 17);
	buf_reset(&b);
	mp_connect(&b, "host", '4', 2525, "1.2.3.4");
	assert_memory_equal(b.data, "\0\0\0\x11" "Chost\0" "4\x09\xdd" "1.2.3.4\0", 21);
	buf_reset(&b);
	mp_connect(&b, "h", 'U', 0, NULL);
	assert_memory_equal(b.data, "\0\0\0\x04" "Ch\0U", 8);
	buf_reset(&b);
	const char *kv[] = {"i", "QID", "{client_addr}", "::1"};
	mp_macro(&b, 'M', kv, 2);
	assert_memory_equal(b.data, "\0\0\0\x1a" "DMi\0QID\0{client_addr}\0::1\0", 30);
	buf_reset(&b);
	const char *argv[] = {"<a@b>", "SIZE=10"};
	mp_args(&b, SMFIC_MAIL, argv, 2);
	assert_memory_equal(b.data, "\0\0\0\x0f" "M<a@b>\0SIZE=10\0", 19);
	buf_reset(&b);
	mp_header(&b, "Subject", "hi");
	assert_memory_equal(b.data, "\0\0\0\x0c" "LSubject\0hi\0", 16);
	buf_free(&b);
}

/* a body is cut into packets of at most 65535 octets, the bytes unchanged */
static void
test_body_chunks(void **state)
{
	(void)state;
	size_t n = 3 * 65535 + 7;
	char *body = test_malloc(n);
	for (size_t i = 0; i < n; i++)
		body[i] = (char)(i * 31);
	buf_t b = BUF_INIT;
	mp_body(&b, body, n);
	size_t off = 0, got = 0, packets = 0;
	while (off < b.len) {
		size_t used, dlen;
		char cmd;
		const char *data, *why;
		assert_int_equal(mp_frame(b.data + off, b.len - off, &used, &cmd, &data, &dlen, &why), 1);
		assert_int_equal(cmd, SMFIC_BODY);
		assert_true(dlen <= MILTER_CHUNK);
		assert_memory_equal(data, body + got, dlen);
		got += dlen;
		off += used;
		packets++;
	}
	assert_int_equal(got, n);
	assert_int_equal(packets, 4);
	buf_reset(&b);
	mp_body(&b, body, 0);
	assert_int_equal(b.len, 0);
	buf_free(&b);
	test_free(body);
}

static void
test_frame(void **state)
{
	(void)state;
	char p[32];
	size_t used, dlen;
	char cmd;
	const char *data, *why;
	size_t n = mk(p, 'c', "", 0);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(mp_frame(p, k, &used, &cmd, &data, &dlen, &why), 0);
	assert_int_equal(mp_frame(p, n, &used, &cmd, &data, &dlen, &why), 1);
	assert_int_equal(used, 5);
	assert_int_equal(cmd, 'c');
	assert_int_equal(dlen, 0);
	/* a zero length, or one over the protocol's size, is refused at once */
	assert_int_equal(mp_frame("\0\0\0\0", 4, &used, &cmd, &data, &dlen, &why), -1);
	assert_int_equal(mp_frame("\0\x01\0\0", 4, &used, &cmd, &data, &dlen, &why), 0);
	assert_int_equal(mp_frame("\0\x01\0\x01", 4, &used, &cmd, &data, &dlen, &why), -1);
	assert_int_equal(mp_frame("\xff\xff\xff\xff", 4, &used, &cmd, &data, &dlen, &why), -1);
}

struct reply_case {
	char cmd;
	const char *data;
	size_t n;
	int ok;
	const char *name, *value, *text;
	uint32_t index;
};

#define S(x) x, sizeof(x) - 1

static const struct reply_case reply_cases[] = {
	{'a', S(""), 0, NULL, NULL, NULL, 0},
	{'c', S(""), 0, NULL, NULL, NULL, 0},
	{'r', S(""), 0, NULL, NULL, NULL, 0},
	{'t', S(""), 0, NULL, NULL, NULL, 0},
	{'d', S(""), 0, NULL, NULL, NULL, 0},
	{'p', S(""), 0, NULL, NULL, NULL, 0},
	{'s', S(""), 0, NULL, NULL, NULL, 0},
	{'a', S("x"), -1, NULL, NULL, NULL, 0},
	{'y', S("554 5.7.1 Gtube pattern\0"), 0, NULL, NULL, "554 5.7.1 Gtube pattern", 0},
	{'y', S("450-4.7.1 one\r\n450 4.7.1 two\0"), 0, NULL, NULL, "450-4.7.1 one\r\n450 4.7.1 two", 0},
	{'y', S("450-4.7.1 one\r\n550 4.7.1 two\0"), -1, NULL, NULL, NULL, 0},
	{'y', S("450 one\r\n450 two\0"), -1, NULL, NULL, NULL, 0},
	{'y', S("250 2.0.0 ok\0"), -1, NULL, NULL, NULL, 0},
	{'y', S("550 5.7.1 bare\rcr\0"), -1, NULL, NULL, NULL, 0},
	{'y', S("550 5.7.1 no nul"), -1, NULL, NULL, NULL, 0},
	{'y', S("550\0"), -1, NULL, NULL, NULL, 0},
	{'h', S("X-Spam\0yes\0"), 0, "X-Spam", "yes", NULL, 0},
	{'h', S("X-Spam\0yes"), -1, NULL, NULL, NULL, 0},
	{'h', S("X-Spam\0"), -1, NULL, NULL, NULL, 0},
	{'h', S("\0v\0"), -1, NULL, NULL, NULL, 0},
	{'h', S("Bad:Name\0v\0"), -1, NULL, NULL, NULL, 0},
	{'h', S("X\0v\0extra"), -1, NULL, NULL, NULL, 0},
	{'m', S("\0\0\0\x02Subject\0\0"), 0, "Subject", "", NULL, 2},
	{'m', S("\0\0\0"), -1, NULL, NULL, NULL, 0},
	{'i', S("\0\0\0\0X-First\0v\0"), 0, "X-First", "v", NULL, 0},
	{'+', S("<new@x>\0"), 0, "<new@x>", NULL, NULL, 0},
	{'2', S("<new@x>\0NOTIFY=NEVER\0"), 0, "<new@x>", "NOTIFY=NEVER", NULL, 0},
	{'2', S("<new@x>\0"), 0, "<new@x>", NULL, NULL, 0},
	{'2', S("<new@x>\0ARGS"), -1, NULL, NULL, NULL, 0},
	{'-', S("<old@x>\0"), 0, "<old@x>", NULL, NULL, 0},
	{'e', S("<from@x>\0SIZE=5\0"), 0, "<from@x>", "SIZE=5", NULL, 0},
	{'q', S("virus\0"), 0, "virus", NULL, NULL, 0},
	{'q', S(""), -1, NULL, NULL, NULL, 0},
	{'b', S("new body\r\n"), 0, NULL, NULL, NULL, 0},
	{'Z', S(""), -1, NULL, NULL, NULL, 0},
	{'O', S(""), -1, NULL, NULL, NULL, 0},
};

static void
test_replies(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof reply_cases / sizeof reply_cases[0]; i++) {
		const struct reply_case *c = &reply_cases[i];
		mp_reply_t r;
		const char *why = NULL;
		int got = mp_reply_parse(c->cmd, c->data, c->n, &r, &why);
		if (got != c->ok)
			fail_msg("case %zu (%c): got %d (%s)", i, c->cmd, got, why ? why : "");
		if (got < 0) {
			assert_non_null(why);
			continue;
		}
		if (c->name)
			assert_string_equal(r.name, c->name);
		if (c->value)
			assert_string_equal(r.value, c->value);
		else if (c->cmd != 'b')
			assert_true(r.value == NULL);
		if (c->text)
			assert_string_equal(r.text, c->text);
		assert_int_equal(r.index, c->index);
	}
	mp_reply_t r;
	const char *why;
	assert_int_equal(mp_reply_parse('b', "xyz", 3, &r, &why), 0);
	assert_int_equal(r.body_len, 3);
	assert_int_equal(mp_reply_action('h'), SMFIF_ADDHDRS);
	assert_int_equal(mp_reply_action('m'), SMFIF_CHGHDRS);
	assert_int_equal(mp_reply_action('e'), SMFIF_CHGFROM);
	assert_int_equal(mp_reply_action('a'), 0);
}

static void
test_optneg(void **state)
{
	(void)state;
	mp_optneg_t o;
	const char *why;
	assert_int_equal(mp_optneg_parse(S("\0\0\0\x06\0\0\0\x01\0\0\x04\0"), &o, &why), 0);
	assert_int_equal(o.version, 6);
	assert_int_equal(o.actions, SMFIF_ADDHDRS);
	assert_int_equal(o.protocol, SMFIP_SKIP);
	assert_null(o.symlist[SMFIM_CONNECT]);
	/* SETSYMLIST: stage 2 (MAIL) and stage 5 (EOM) */
	assert_int_equal(mp_optneg_parse(S("\0\0\0\x06\0\0\x01\0\0\0\0\0"
	    "\0\0\0\x02{mail_addr} i\0" "\0\0\0\x05i\0"), &o, &why), 0);
	assert_string_equal(o.symlist[SMFIM_ENVFROM], "{mail_addr} i");
	assert_string_equal(o.symlist[SMFIM_EOM], "i");
	assert_int_equal(mp_optneg_parse(S("\0\0\0\x06\0\0\0\0\0\0\0"), &o, &why), -1);
	assert_int_equal(mp_optneg_parse(S("\0\0\0\x07\0\0\0\0\0\0\0\0"), &o, &why), -1);
	assert_int_equal(mp_optneg_parse(S("\0\0\0\x06\0\0\0\0\0\0\0\0\0\0"), &o, &why), -1);
	assert_int_equal(mp_optneg_parse(S("\0\0\0\x06\0\0\0\0\0\0\0\0\0\0\0\x09x\0"), &o, &why), -1);
	assert_int_equal(mp_optneg_parse(S("\0\0\0\x06\0\0\0\0\0\0\0\0\0\0\0\x01x"), &o, &why), -1);
}

static char *
render(filter_msg_t *m)
{
	buf_t b = BUF_INIT;
	filter_msg_render(m, &b);
	return buf_steal(&b);
}

static void
test_msg_model(void **state)
{
	(void)state;
	const char *in = "Received: x\r\n\tfolded\r\nSubject: a\r\nX-Tag: 1\r\nx-tag: 2\r\n\r\nbody\r\n";
	filter_msg_t *m = filter_msg_parse(in, strlen(in));
	char *out = render(m);
	assert_string_equal(out, in); /* unchanged: byte for byte */
	free(out);
	const char *why;
	/* the second X-Tag (names compare without case), then delete the first */
	assert_int_equal(filter_msg_header(m, SMFIR_CHGHEADER, 2, "X-Tag", "two", false, &why), 0);
	assert_int_equal(filter_msg_header(m, SMFIR_CHGHEADER, 1, "X-Tag", "", false, &why), 0);
	assert_int_equal(filter_msg_header(m, SMFIR_CHGHEADER, 1, "X-None", "", false, &why), 0);
	assert_int_equal(filter_msg_header(m, SMFIR_INSHEADER, 0, "X-Top", "first", false, &why), 0);
	assert_int_equal(filter_msg_header(m, SMFIR_ADDHEADER, 0, "X-End", "a\n\tb", false, &why), 0);
	assert_int_equal(filter_msg_header(m, SMFIR_INSHEADER, 99, "X-Last", " lead", true, &why), 0);
	filter_msg_body(m, "new\nbody\r\n", 10);
	out = render(m);
	assert_string_equal(out, "X-Top: first\r\nReceived: x\r\n\tfolded\r\nSubject: a\r\nx-tag: two\r\n"
	    "X-End: a\r\n\tb\r\nX-Last: lead\r\n\r\nnew\r\nbody\r\n");
	free(out);
	filter_msg_free(m);
	/* no blank line: all header; a line without a colon starts the body */
	m = filter_msg_parse("A: 1\r\nnot a field\r\n", 19);
	out = render(m);
	assert_string_equal(out, "A: 1\r\n\r\nnot a field\r\n");
	free(out);
	filter_msg_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builders),
		cmocka_unit_test(test_body_chunks),
		cmocka_unit_test(test_frame),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_optneg),
		cmocka_unit_test(test_msg_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
