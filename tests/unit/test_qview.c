/*
 * test_qview.c - the queue tools' formats (control/qview.h): JSON strings
 * stay valid whatever the bytes, the mailq listing has Postfix's shape.
 * (The backoff's test is in test_sched.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/qview.h"
#include "lib/xalloc.h"
#include "sched/sched.h"

/* U+FFFD, as jansson writes it (UTF-8, not escaped) */
#define FFFD "\xef\xbf\xbd"

static void
test_json_str(void **state)
{
	static const struct {
		const char *in;
		size_t n;
		const char *out;
	} cases[] = {
		{"plain", 5, "\"plain\""},
		{"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
		{"\r\n\t", 3, "\"\\r\\n\\t\""},
		{"\x01\x7f", 2, "\"\\u0001\x7f\""},                  /* DEL needs no escape */
		{"j\xc3\xb6s\xc3\xa9", 6, "\"j\xc3\xb6s\xc3\xa9\""},     /* valid UTF-8 kept */
		{"\xff" "a", 2, "\"" FFFD "a\""},                        /* invalid byte */
		{"\xc3", 1, "\"" FFFD "\""},                             /* cut sequence */
		{"\xc0\xaf", 2, "\"" FFFD FFFD "\""},                    /* overlong */
		{"\xed\xa0\x80", 3, "\"" FFFD FFFD FFFD "\""},           /* surrogate */
		{"\xf0\x9f\x93\xa7", 4, "\"\xf0\x9f\x93\xa7\""},         /* U+1F4E7 */
		{"a\0b", 3, "\"a\\u0000b\""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t b = BUF_INIT;
		qview_json_str(&b, cases[i].in, cases[i].n);
		assert_string_equal(buf_cstr(&b), cases[i].out);
		buf_free(&b);
	}
}

static qview_entry_t *
one_entry(bool held)
{
	envelope_t *e = envelope_new();
	memcpy(e->qid, "1K1AVEJBZS447PRJ", QID_SIZE);
	e->arrival_us = (int64_t)1795875565 * 1000000;
	e->sender = xstrdup("");
	e->body_len = 2000;
	e->flags = held ? ENV_HELD : 0;
	env_rcpt_t *r = envelope_add_rcpt(e, "far@remote.test", NULL, NULL, 0);
	r->attempts = 2;
	r->next_try = 1795879165;
	r->reply = xstrdup("451 4.3.0 try\x01later");
	r = envelope_add_rcpt(e, "near@remote.test", NULL, NULL, 0);
	r->status = RCPT_SENT;
	r->attempts = 1;
	qview_entry_t *q = xcalloc(1, sizeof *q);
	q->env = e;
	return q;
}

static void
test_mailq(void **state)
{
	buf_t b = BUF_INIT;
	qview_mailq(&b, NULL, 0);
	assert_string_equal(buf_cstr(&b), "Mail queue is empty\n");
	buf_reset(&b);

	qview_entry_t *q = one_entry(true);
	qview_mailq(&b, q, 1);
	const char *s = buf_cstr(&b);
	/* header, message line (held mark, sender <> as MAILER-DAEMON), reason,
	 * the pending recipient only, blank line, total */
	assert_true(strncmp(s, "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
	    "1K1AVEJBZS447PRJ!     2000 ", 93) == 0);
	assert_non_null(strstr(s, "  MAILER-DAEMON\n(held by the administrator)\n(451 4.3.0 try?later)\n"));
	assert_non_null(strstr(s, "\n                                                far@remote.test\n\n"));
	assert_null(strstr(s, "near@remote.test"));
	assert_non_null(strstr(s, "\n-- 2 Kbytes in 1 Request.\n"));
	buf_free(&b);
	qview_entries_free(q, 1);
}

/* the reason a message is held: a quarantine's (left with the recipients
 * not yet tried), else the administrator's hold; none when not held */
static void
test_held_reason(void **state)
{
	qview_entry_t *q = one_entry(false);
	assert_null(qview_held_reason(q));
	q->env->flags |= ENV_HELD;
	assert_string_equal(qview_held_reason(q), "held by the administrator");
	env_rcpt_t *r = envelope_add_rcpt(q->env, "third@remote.test", NULL, NULL, 0);
	r->reply = xstrdup("quarantined: looks like a\tvirus (milter m1)");
	assert_string_equal(qview_held_reason(q), "quarantined: looks like a\tvirus (milter m1)");

	buf_t b = BUF_INIT;
	qview_list_text(&b, q, 1);
	assert_non_null(strstr(buf_cstr(&b), "  HELD (quarantined: looks like a?virus (milter m1))\n"));
	buf_reset(&b);
	qview_mailq(&b, q, 1);
	assert_non_null(strstr(buf_cstr(&b), "  MAILER-DAEMON\n(quarantined: looks like a?virus (milter m1))\n"));
	buf_reset(&b);
	qview_list_json(&b, q, 1);
	assert_non_null(strstr(buf_cstr(&b),
	    "\"held\":true,\"held_reason\":\"quarantined: looks like a\\tvirus (milter m1)\""));
	buf_reset(&b);
	qview_show_text(&b, q, NULL, 0);
	assert_non_null(strstr(buf_cstr(&b), "held: yes (quarantined: looks like a?virus (milter m1))\n"));
	/* once tried (released and deferred), the recipient's reply is no hold reason */
	r->attempts = 1;
	assert_string_equal(qview_held_reason(q), "held by the administrator");
	buf_free(&b);
	qview_entries_free(q, 1);
}

static void
test_list_json(void **state)
{
	buf_t b = BUF_INIT;
	qview_entry_t *q = one_entry(false);
	q->active = xcalloc(2, sizeof *q->active);
	q->active[1] = true;
	qview_list_json(&b, q, 1);
	const char *s = buf_cstr(&b);
	assert_non_null(strstr(s, "\"queue_id\":\"1K1AVEJBZS447PRJ\""));
	assert_non_null(strstr(s, "\"sender\":\"\""));
	assert_non_null(strstr(s, "\"held\":false,\"held_reason\":null,\"active\":true"));
	assert_non_null(strstr(s, "\"status\":\"deferred\",\"attempts\":2"));
	assert_non_null(strstr(s, "\"reply\":\"451 4.3.0 try\\u0001later\""));
	/* an active recipient shows no state */
	assert_non_null(strstr(s, "{\"address\":\"near@remote.test\",\"original\":null,\"status\":\"active\"}"));
	assert_non_null(strstr(s, "\"count\":1,\"bytes\":2000}\n"));
	buf_free(&b);
	qview_entries_free(q, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_str),
		cmocka_unit_test(test_mailq),
		cmocka_unit_test(test_list_json),
		cmocka_unit_test(test_held_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
