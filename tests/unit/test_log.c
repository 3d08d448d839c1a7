/*
 * test_log.c - the log line grammar (src/lib/logline.c) on the lines
 * docs/logging.md lists, and the JSON form (src/lib/log.c) written to a
 * log file: valid JSON whatever the bytes (control bytes and bytes that are
 * not UTF-8 become \xHH text, valid UTF-8 stays), the same fields as the
 * text, and a reopen after a rename (the next line in the new file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "lib/log.h"
#include "lib/logline.h"

static void
check(const logline_t *l, const char *k, const char *want)
{
	size_t n = 0;
	const char *v = logline_get(l, k, &n);
	if (!want) {
		assert_null(v);
		return;
	}
	assert_non_null(v);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(v, want, n);
}

static void
span_is(logline_span_t s, const char *want)
{
	assert_int_equal(s.n, strlen(want));
	assert_memory_equal(s.p, want, s.n);
}

static void
test_grammar(void **state)
{
	(void)state;
	logline_t l;
	const char *a = "1K21SRC8NKMVW7PM: accepted session=S1 client=192.0.2.7 helo=mail.example.net "
	                "from=<a@example.net> size=366 nrcpt=2 proto=ESMTPS";
	logline_parse(a, strlen(a), &l);
	span_is(l.id, "1K21SRC8NKMVW7PM");
	span_is(l.event, "accepted");
	span_is(l.level, "info");
	check(&l, "from", "a@example.net");
	check(&l, "size", "366");
	check(&l, "proto", "ESMTPS");
	assert_false(l.has_text);

	const char *r = "1K21SRC8NKMVW7PM: to=<x@remote.example> relay=mx1[198.51.100.3]:25 delay=0.42 "
	                "attempts=1 status=deferred (451 4.3.0 <x@remote.example>: try (again) later)";
	logline_parse(r, strlen(r), &l);
	assert_int_equal(l.event.n, 0);
	check(&l, "to", "x@remote.example");
	check(&l, "status", "deferred");
	span_is(l.text, "451 4.3.0 <x@remote.example>: try (again) later");

	const char *j = "warning: S12: reject cmd=RCPT reply=\"554 5.7.1 Relay \\\"access\\\" denied\" "
	                "client=192.0.2.7 to=<b c>d@x>";
	logline_parse(j, strlen(j), &l);
	span_is(l.level, "warning");
	span_is(l.id, "S12");
	span_is(l.event, "reject");
	check(&l, "reply", "554 5.7.1 Relay \\\"access\\\" denied");
	check(&l, "to", "b c>d@x");

	const char *f = "tls failed session=S3 client=192.0.2.9: handshake failure";
	logline_parse(f, strlen(f), &l);
	span_is(l.event, "tls failed");
	check(&l, "client", "192.0.2.9");

	const char *u = "1K21SRC8NKMVW7PM: undeliverable bounce discarded (1 recipient; the sender is <>)";
	logline_parse(u, strlen(u), &l);
	span_is(l.event, "undeliverable bounce discarded");
	span_is(l.text, "1 recipient; the sender is <>");
	assert_int_equal(l.nkv, 0);

	logline_parse("", 0, &l);
	assert_int_equal(l.event.n, 0);
	logline_parse("(", 1, &l);
	logline_parse(")", 1, &l);
	logline_parse("a= b=<", 6, &l);
	check(&l, "a", "");
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_json_file_and_reopen(void **state)
{
	(void)state;
	char dir[] = "/tmp/test_log.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], old[256];
	snprintf(path, sizeof path, "%s/tern.log", dir);
	snprintf(old, sizeof old, "%s/tern.log.1", dir);
	buf_t err = BUF_INIT;
	log_init("tern", 0, 0);
	assert_int_equal(log_file_open(path, (uid_t)-1, &err), 0);
	log_set_json(1);
	/* a hostile HELO: an escape sequence, bytes that are not UTF-8, a
	 * truncated sequence; and valid UTF-8, kept */
	log_msg(LOG_WARNING, "S1: reject cmd=HELO reply=\"501 5.5.4 x\" client=192.0.2.1 helo=%s (%s)",
	    "evil\x1b[31m\xff\xfe\xc3(.example\n", "caf\xc3\xa9 \xe2\x82");
	char *text = slurp(path);
	json_error_t je;
	json_t *o = json_loads(text, 0, &je);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "level")), "warning");
	assert_string_equal(json_string_value(json_object_get(o, "session")), "S1");
	assert_string_equal(json_string_value(json_object_get(o, "event")), "reject");
	assert_string_equal(json_string_value(json_object_get(o, "cmd")), "HELO");
	assert_string_equal(json_string_value(json_object_get(o, "reply")), "501 5.5.4 x");
	assert_string_equal(json_string_value(json_object_get(o, "helo")),
	    "evil\\x1b[31m\\xff\\xfe\\xc3(.example\\x0a");
	assert_string_equal(json_string_value(json_object_get(o, "text")), "caf\xc3\xa9 \\xe2\\x82");
	assert_non_null(json_object_get(o, "ts"));
	assert_non_null(json_object_get(o, "msg"));
	json_decref(o);

	/* rename, reopen: the next line in the new file only */
	assert_int_equal(rename(path, old), 0);
	assert_int_equal(log_file_reopen(&err), 0);
	log_set_json(0);
	log_msg(LOG_INFO, "%s: removed", "1K21SRC8NKMVW7PM");
	text = slurp(path);
	assert_non_null(strstr(text, "tern["));
	assert_non_null(strstr(text, "]: 1K21SRC8NKMVW7PM: removed\n"));
	assert_null(strstr(slurp(old), "removed"));
	unlink(path);
	unlink(old);
	rmdir(dir);
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grammar),
		cmocka_unit_test(test_json_file_and_reopen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
