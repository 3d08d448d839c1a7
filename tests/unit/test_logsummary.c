/*
 * test_logsummary.c - `tern log-summary`'s counting (src/cli/logsummary.c)
 * on a fixed sample: text lines, syslog lines and JSON lines of two days,
 * --day, a table cap that sends the rest to "(others)", lines that are not
 * tern's skipped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "cli/logsummary.h"

static const char *sample[] = {
	"2026-12-07T10:00:00.000Z tern[1]: connect session=S1 client=192.0.2.7 port=4000",
	"2026-12-07T10:00:00.100Z tern[1]: AAAAAAAAAAAAAAA1: accepted session=S1 client=192.0.2.7 "
	"helo=h.example from=<a@One.example> size=100 nrcpt=2 proto=ESMTP",
	"2026-12-07T10:00:00.200Z tern[1]: AAAAAAAAAAAAAAA1: to=<x@dest.example> relay=local "
	"delay=0.01 attempts=1 status=sent (delivered to maildir /m)",
	"2026-12-07T10:00:00.300Z tern[1]: AAAAAAAAAAAAAAA1: to=<y@far.example> relay=mx[1.2.3.4]:25 "
	"delay=0.3 attempts=1 status=deferred (451 4.3.0 <y@far.example>: later)",
	"2026-12-07T10:00:01.000Z tern[1]: warning: S2: reject cmd=RCPT reply=\"554 5.7.1 "
	"<z@else.example>: Relay access denied\" client=192.0.2.9 to=<z@else.example>",
	"2026-12-07T10:00:02.000Z tern[1]: S3: reject cmd=RCPT reply=\"554 5.7.1 <w@x.example>: "
	"Relay access denied\" client=192.0.2.9 to=<w@x.example>",
	"Jan  3 11:00:00 mx tern[1]: AAAAAAAAAAAAAAA2: accepted session=S4 client=192.0.2.8 "
	"from=<> size=50 nrcpt=1 proto=SMTP",
	"Jan  3 11:00:01 mx tern[1]: AAAAAAAAAAAAAAA2: to=<q@far.example> relay=mx[1.2.3.4]:25 "
	"delay=1 attempts=1 status=bounced (550 5.1.1 no)",
	"{\"ts\":\"2026-12-08T00:00:01.000Z\",\"level\":\"info\",\"pid\":1,\"msg\":"
	"\"AAAAAAAAAAAAAAA3: accepted session=S5 client=192.0.2.7 from=<b@two.example> size=7 "
	"nrcpt=1 proto=ESMTPS\"}",
	"{\"ts\":\"2026-12-08T00:00:02.000Z\",\"level\":\"info\",\"pid\":1,\"msg\":"
	"\"AAAAAAAAAAAAAAA4: accepted session=local client=local from=<> size=900 nrcpt=1 "
	"proto=DSN\"}",
	"Dec  7 11:00:02 mx postfix/smtpd[2]: connect from x",
	"garbage",
	"{\"not\": \"tern\"}",
};

static char *
run(const char *day, size_t cap)
{
	logsum_t *s = logsum_new(day, cap);
	for (size_t i = 0; i < sizeof sample / sizeof sample[0]; i++)
		logsum_line(s, sample[i], strlen(sample[i]));
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	logsum_print(s, f, 10);
	fclose(f);
	logsum_free(s);
	return out;
}

static void
test_sample(void **state)
{
	(void)state;
	/* syslog lines have no year: January 3 is this year's (never ahead) */
	char *out = run("2026-12-07", 0);
	assert_non_null(strstr(out, "tern log summary for 2026-12-07\n"));
	assert_null(strstr(out, "2026-12-08"));
	assert_non_null(strstr(out, "  received            1  (100 bytes)\n"));
	assert_non_null(strstr(out, "  delivered           1 "));
	assert_non_null(strstr(out, "  deferred            1 "));
	assert_non_null(strstr(out, "  rejected            2 "));
	assert_non_null(strstr(out, "  connections         1\n"));
	assert_non_null(strstr(out, "  dest.example                                       1         0         0\n"));
	assert_non_null(strstr(out, "  far.example                                        0         1         0\n"));
	assert_non_null(strstr(out, "  one.example                                        1\n"));
	assert_non_null(strstr(out, "  a@One.example                                      1\n"));
	assert_non_null(strstr(out, "  554 5.7.1 <>: Relay access denied                  2\n"));
	free(out);

	out = run("2026-12-08", 0);
	assert_non_null(strstr(out, "  received            1  (7 bytes)\n"));
	assert_non_null(strstr(out, "  dsn                 1 "));
	assert_non_null(strstr(out, "  two.example                                        1\n"));
	free(out);

	/* every day; the cap: one key a table, the rest under (others) */
	out = run(NULL, 1);
	assert_non_null(strstr(out, "tern log summary for 2026-12-07\n"));
	assert_non_null(strstr(out, "tern log summary for 2026-12-08\n"));
	assert_non_null(strstr(out, "  (others) "));
	assert_non_null(strstr(out, "(3 of 13 lines were not tern log lines)"));
	free(out);

	char jan3[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	snprintf(jan3, sizeof jan3, "%04d-01-03", tm.tm_year + 1900);
	out = run(jan3, 0);
	assert_non_null(strstr(out, "  received            1  (50 bytes)\n"));
	assert_non_null(strstr(out, "  far.example                                        0         0         1\n"));
	assert_non_null(strstr(out, "  <>                                                 1\n"));
	free(out);

	out = run("1999-01-01", 0);
	assert_non_null(strstr(out, "no tern log lines for 1999-01-01\n"));
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sample),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
