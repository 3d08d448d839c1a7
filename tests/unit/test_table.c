/*
 * test_table.c - unit tests for src/common/table.c.
 *
 * Table driven: good files of both kinds (values, continuation lines,
 * comments, quoting, CRLF), case-insensitive lookup, a large table, and bad
 * files whose every error must be "NAME:LINE: message" on the right line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/table.h"
#include "lib/buf.h"

#define NAME "/etc/tern/aliases"

static table_t *
parse(const char *text, enum table_kind kind, buf_t *errs)
{
	buf_reset(errs);
	return table_parse_buf(NAME, text, strlen(text), kind, errs);
}

/* "v1|v2|v3" form of an entry's values */
static void
joined(const table_entry_t *e, char *out, size_t n)
{
	out[0] = '\0';
	for (size_t i = 0; i < e->nvalues; i++) {
		if (i)
			strncat(out, "|", n - strlen(out) - 1);
		strncat(out, e->values[i], n - strlen(out) - 1);
	}
}

static void
test_good(void **state)
{
	static const struct {
		enum table_kind kind;
		const char *text;
		const char *key;  /* looked up */
		const char *want; /* values joined by '|', NULL = absent */
		unsigned line;
	} cases[] = {
		{TABLE_ALIASES, "postmaster: alice\n", "postmaster", "alice", 1},
		{TABLE_ALIASES, "postmaster: alice\n", "POSTMASTER", "alice", 1},
		{TABLE_ALIASES, "PostMaster:alice", "postmaster", "alice", 1},
		{TABLE_ALIASES, "team : alice, bob ,carol\n", "team", "alice|bob|carol", 1},
		{TABLE_ALIASES, "team: alice bob\tcarol", "team", "alice|bob|carol", 1},
		{TABLE_ALIASES, "team: alice,,bob,\n", "team", "alice|bob", 1},
		{TABLE_ALIASES, "# comment\n\nteam: alice,\n  bob,\n\t carol\n", "team",
		    "alice|bob|carol", 3},
		{TABLE_ALIASES, "team: alice,\n  # a comment inside\n\n  bob\nx: y\n", "team",
		    "alice|bob", 1},
		{TABLE_ALIASES, "team: alice\r\n  bob\r\nx: y\r\n", "team", "alice|bob", 1},
		{TABLE_ALIASES, "team: alice\r\n  bob\r\nx: y\r\n", "x", "y", 3},
		{TABLE_ALIASES, "\"john doe\": jd\n", "\"john doe\"", "jd", 1},
		{TABLE_ALIASES, "\"a:b\": x\n", "\"A:B\"", "x", 1},
		{TABLE_ALIASES, "q: \"a, b\"@example.com, c\n", "q", "\"a, b\"@example.com|c", 1},
		{TABLE_ALIASES, "a: b # not a comment\n", "a", "b|#|not|a|comment", 1},
		{TABLE_ALIASES, "a: b\n", "b", NULL, 0},
		{TABLE_ALIASES, "", "a", NULL, 0},
		{TABLE_MAP, "alice@localhost\n", "Alice@LocalHost", "", 1},
		{TABLE_MAP, "alice@localhost /srv/mail/a\n", "alice@localhost", "/srv/mail/a", 1},
		{TABLE_MAP, "info@example.org a@x, b@y\n  c@z", "info@example.org", "a@x|b@y|c@z", 1},
		{TABLE_MAP, "@example.org   bob@localhost", "@EXAMPLE.ORG", "bob@localhost", 1},
		{TABLE_MAP, "a:b c", "a:b", "c", 1},
		{TABLE_MAP, "\"x y\"@d \"/path with space\"", "\"x y\"@d", "\"/path with space\"", 1},
		{TABLE_MAP, "k \xc3\xa9t\xc3\xa9@example.com", "K", "\xc3\xa9t\xc3\xa9@example.com", 1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t e = BUF_INIT;
		table_t *t = parse(cases[i].text, cases[i].kind, &e);
		if (t == NULL)
			fail_msg("case %zu: %s", i, e.data);
		const table_entry_t *en = table_get(t, cases[i].key);
		if (cases[i].want == NULL) {
			assert_null(en);
		} else {
			if (en == NULL)
				fail_msg("case %zu: %s not found", i, cases[i].key);
			char got[256];
			joined(en, got, sizeof got);
			if (strcmp(got, cases[i].want) != 0)
				fail_msg("case %zu: got \"%s\", want \"%s\"", i, got, cases[i].want);
			assert_int_equal(en->line, cases[i].line);
			assert_string_equal(en->file, NAME);
		}
		table_free(t);
		buf_free(&e);
	}
}

static void
test_order_and_count(void **state)
{
	buf_t e = BUF_INIT;
	table_t *t = parse("b: 1\na: 2\n  3\nc: 4\n", TABLE_ALIASES, &e);
	assert_non_null(t);
	assert_int_equal(table_count(t), 3);
	assert_string_equal(table_entry_at(t, 0)->key, "b");
	assert_string_equal(table_entry_at(t, 1)->key, "a");
	assert_int_equal(table_entry_at(t, 1)->nvalues, 2);
	assert_string_equal(table_entry_at(t, 2)->key, "c");
	assert_null(table_entry_at(t, 3));
	table_free(t);
	t = table_new_empty();
	assert_int_equal(table_count(t), 0);
	assert_null(table_get(t, "x"));
	table_free(t);
	assert_null(table_get(NULL, "x"));
	assert_int_equal(table_count(NULL), 0);
	buf_free(&e);
}

static void
test_big(void **state)
{
	buf_t text = BUF_INIT, e = BUF_INIT;
	for (int i = 0; i < 20000; i++)
		buf_printf(&text, "User%d@Example.com /m/%d\n", i, i);
	table_t *t = table_parse_buf(NAME, text.data, text.len, TABLE_MAP, &e);
	assert_non_null(t);
	assert_int_equal(table_count(t), 20000);
	for (int i = 0; i < 20000; i += 7) {
		char k[64], v[64];
		snprintf(k, sizeof k, "user%d@EXAMPLE.COM", i);
		snprintf(v, sizeof v, "/m/%d", i);
		const table_entry_t *en = table_get(t, k);
		assert_non_null(en);
		assert_string_equal(en->values[0], v);
		assert_int_equal(en->line, (unsigned)i + 1);
	}
	assert_null(table_get(t, "user20000@example.com"));
	assert_null(table_get(t, "user1@example.co"));
	table_free(t);
	buf_free(&text);
	buf_free(&e);
}

static void
test_errors(void **state)
{
	static const struct {
		enum table_kind kind;
		const char *text;
		size_t len; /* 0 = strlen */
		unsigned line;
		const char *want;
	} cases[] = {
		{TABLE_ALIASES, "a: x\nb: y\nA: z\n", 0, 3, "duplicate key \"A\" (first on line 1)"},
		{TABLE_MAP, "a@x\n\n\nA@X v\n", 0, 4, "duplicate key \"A@X\" (first on line 1)"},
		{TABLE_ALIASES, "a x\n", 0, 1, "expected \"key: value, ...\" (missing ':' after the key"},
		{TABLE_ALIASES, "john doe: x\n", 0, 1, "expected \"key: value"},
		{TABLE_ALIASES, "a:\n", 0, 1, "alias \"a\" has no value"},
		{TABLE_ALIASES, "ok: x\nempty:\nok2: y\n", 0, 2, "alias \"empty\" has no value"},
		{TABLE_ALIASES, ": x\n", 0, 1, "empty key"},
		{TABLE_ALIASES, "\"\": x\n", 0, 1, "empty key"},
		{TABLE_ALIASES, "  x\n", 0, 1, "continuation line"},
		{TABLE_ALIASES, "# c\n  x\n", 0, 2, "continuation line"},
		{TABLE_ALIASES, "\"a: x\n", 0, 1, "unterminated quote"},
		{TABLE_ALIASES, "a: \"x\n", 0, 1, "unterminated quote"},
		{TABLE_ALIASES, "a: x\n  \"y\nb: z\n", 0, 2, "unterminated quote"},
		{TABLE_MAP, "\"a b c\n", 0, 1, "unterminated quote"},
		{TABLE_ALIASES, "a: x\x01y\n", 0, 1, "control character 0x01"},
		{TABLE_ALIASES, "a: x\nb: y\rz\n", 0, 2, "control character 0x0d"},
		{TABLE_ALIASES, "a: x\nb: y\x7f\n", 0, 2, "control character 0x7f"},
		{TABLE_ALIASES, "a: x\nb: y\0z\n", 12, 2, "control character 0x00"},
		{TABLE_MAP, "a\n  b\x1b\n", 0, 2, "control character 0x1b"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t e = BUF_INIT;
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
		table_t *t = table_parse_buf(NAME, cases[i].text, len, cases[i].kind, &e);
		if (t != NULL)
			fail_msg("case %zu loaded", i);
		char want[256];
		snprintf(want, sizeof want, "%s:%u: %s", NAME, cases[i].line, cases[i].want);
		if (strstr(e.data, want) == NULL)
			fail_msg("case %zu: want \"%s\", got:\n%s", i, want, e.data);
		/* every line has the file:line: prefix */
		for (const char *p = e.data; *p; p = strchr(p, '\n') + 1)
			assert_int_equal(strncmp(p, NAME ":", strlen(NAME ":")), 0);
		buf_free(&e);
	}
}

static void
test_all_errors_and_limits(void **state)
{
	buf_t text = BUF_INIT, e = BUF_INIT;
	buf_puts(&text, "a: x\nb\nc: \"\n  d\na: y\nok: z\n");
	table_t *t = table_parse_buf(NAME, text.data, text.len, TABLE_ALIASES, &e);
	assert_null(t);
	assert_non_null(strstr(e.data, NAME ":2: "));
	assert_non_null(strstr(e.data, NAME ":3: "));
	assert_null(strstr(e.data, NAME ":4: ")); /* continuation of the bad entry: skipped */
	assert_non_null(strstr(e.data, NAME ":5: duplicate key"));

	/* 64 KiB line limit */
	buf_reset(&text);
	buf_reset(&e);
	buf_puts(&text, "a: ");
	while (text.len < 65536)
		buf_puts(&text, "x,");
	buf_puts(&text, "\nb: c\n");
	t = table_parse_buf(NAME, text.data, text.len, TABLE_ALIASES, &e);
	assert_null(t);
	assert_non_null(strstr(e.data, NAME ":1: line longer than 65536"));

	/* just at the limit is fine */
	buf_reset(&text);
	buf_reset(&e);
	buf_puts(&text, "a: ");
	while (text.len < 65536)
		buf_putc(&text, 'y');
	buf_puts(&text, "\n");
	t = table_parse_buf(NAME, text.data, text.len, TABLE_ALIASES, &e);
	assert_non_null(t);
	assert_int_equal(strlen(table_get(t, "a")->values[0]), 65533);
	table_free(t);

	/* errors are capped */
	buf_reset(&text);
	buf_reset(&e);
	for (int i = 0; i < 1000; i++)
		buf_puts(&text, "bad line\n");
	assert_null(table_parse_buf(NAME, text.data, text.len, TABLE_ALIASES, &e));
	size_t nl = 0;
	for (const char *p = e.data; *p; p++)
		nl += *p == '\n';
	assert_int_equal(nl, 101);
	buf_free(&text);
	buf_free(&e);
}

static void
test_load(void **state)
{
	char path[] = "/tmp/tern-test-table-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static const char text[] = "postmaster: alice\nteam: alice, bob\n";
	assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
	close(fd);
	buf_t e = BUF_INIT;
	table_t *t = table_load(path, TABLE_ALIASES, &e);
	assert_non_null(t);
	assert_int_equal(table_count(t), 2);
	assert_string_equal(table_get(t, "team")->file, path);
	table_free(t);

	/* an empty file is an empty table */
	assert_int_equal(truncate(path, 0), 0);
	t = table_load(path, TABLE_MAP, &e);
	assert_non_null(t);
	assert_int_equal(table_count(t), 0);
	table_free(t);

	/* a missing file is an error */
	unlink(path);
	assert_null(table_load(path, TABLE_MAP, &e));
	char want[128];
	snprintf(want, sizeof want, "%s:0: cannot read", path);
	assert_non_null(strstr(e.data, want));
	buf_free(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_order_and_count),
		cmocka_unit_test(test_big),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_all_errors_and_limits),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
