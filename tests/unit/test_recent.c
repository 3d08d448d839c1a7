/*
 * test_recent.c - the status page's memory of the last hour
 * (src/common/recent.c) on a fake clock: deliveries and sessions land in
 * the current minute, a minute's slot is reused an hour later (cleared
 * first), a quiet hour reads as zeros, the snapshot is oldest minute
 * first; rejections keep only the last RECENT_REJECTS, newest first, with
 * code, enhanced status and text split out, long and hostile strings cut
 * and cleaned; and the JSON of GET /api/v1/status (control/status.c)
 * parses with jansson and has its fixed shape, with an empty queue.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "common/envelope.h"
#include "common/recent.h"
#include "control/status.h"
#include "lib/buf.h"

static int64_t fake_now;

static int64_t
fake_clock(void)
{
	return fake_now;
}

static int
setup(void **state)
{
	(void)state;
	fake_now = 1800000000; /* a minute boundary: 30000000 * 60 */
	recent_reset(fake_clock);
	return 0;
}

static void
test_minutes(void **state)
{
	(void)state;
	recent_delivery(RCPT_SENT);
	recent_delivery(RCPT_SENT);
	recent_delivery(RCPT_PENDING);
	recent_delivery(RCPT_FAILED);
	recent_delivery(RCPT_REPORTED);
	recent_session(true, true);
	recent_session(true, false);
	recent_session(false, true);
	fake_now += 61; /* the next minute */
	recent_delivery(RCPT_SENT);
	recent_session(false, false);

	recent_snap_t s;
	recent_snapshot(&s);
	assert_int_equal(s.now, fake_now);
	const recent_minute_t *cur = &s.minutes[RECENT_MINUTES - 1], *prev = &s.minutes[RECENT_MINUTES - 2];
	assert_int_equal(cur->minute, fake_now / 60);
	assert_int_equal(cur->sent, 1);
	assert_int_equal(cur->out_plain, 1);
	assert_int_equal(prev->minute, fake_now / 60 - 1);
	assert_int_equal(prev->sent, 2);
	assert_int_equal(prev->deferred, 1);
	assert_int_equal(prev->bounced, 2);
	assert_int_equal(prev->in_tls, 1);
	assert_int_equal(prev->in_plain, 1);
	assert_int_equal(prev->out_tls, 1);
	for (int i = 0; i < RECENT_MINUTES; i++)
		assert_int_equal(s.minutes[i].minute, fake_now / 60 - (RECENT_MINUTES - 1) + i);
	for (int i = 0; i < RECENT_MINUTES - 2; i++)
		assert_int_equal(s.minutes[i].sent + s.minutes[i].deferred + s.minutes[i].bounced, 0);

	/* an hour later the same slots are reused: old counts are gone */
	fake_now += 3600;
	recent_delivery(RCPT_PENDING);
	recent_snapshot(&s);
	unsigned total = 0;
	for (int i = 0; i < RECENT_MINUTES; i++)
		total += s.minutes[i].sent + s.minutes[i].deferred + s.minutes[i].bounced +
		    s.minutes[i].in_tls + s.minutes[i].out_plain;
	assert_int_equal(total, 1);
	assert_int_equal(s.minutes[RECENT_MINUTES - 1].deferred, 1);

	/* a quiet two hours: all zero, no timer needed */
	fake_now += 7200;
	recent_snapshot(&s);
	for (int i = 0; i < RECENT_MINUTES; i++)
		assert_int_equal(s.minutes[i].deferred, 0);
}

/* many events over a day: every minute of the snapshot counts only its own */
static void
test_a_day(void **state)
{
	(void)state;
	for (int m = 0; m < 24 * 60; m++) {
		for (int k = 0; k < m % 7; k++)
			recent_delivery(RCPT_SENT);
		fake_now += 60;
	}
	fake_now -= 60;
	recent_snap_t s;
	recent_snapshot(&s);
	for (int i = 0; i < RECENT_MINUTES; i++) {
		int m = 24 * 60 - RECENT_MINUTES + i;
		assert_int_equal(s.minutes[i].sent, m % 7);
	}
}

static void
test_rejects(void **state)
{
	(void)state;
	recent_reject("192.0.2.1", "RCPT", "550 5.1.1 Error: no such user here");
	fake_now++;
	recent_reject("192.0.2.2", "MAIL", "421-4.7.0 try again");
	recent_reject(NULL, NULL, NULL);
	recent_reject("192.0.2.3", "DATA", "554 not an enhanced code");
	recent_reject("192.0.2.4", "X\r\nINJECT", "550 5.7.1 bad\x01\x1b[0mtext\r\n");

	recent_snap_t s;
	recent_snapshot(&s);
	assert_int_equal(s.nrejects, 5);
	assert_int_equal(s.rejects_total, 5);
	const recent_reject_t *r = &s.rejects[4]; /* the oldest, last */
	assert_string_equal(r->client, "192.0.2.1");
	assert_string_equal(r->cmd, "RCPT");
	assert_string_equal(r->code, "550");
	assert_string_equal(r->status, "5.1.1");
	assert_string_equal(r->text, "Error: no such user here");
	assert_int_equal(r->time, fake_now - 1);
	r = &s.rejects[3];
	assert_string_equal(r->code, "421");
	assert_string_equal(r->status, "4.7.0");
	assert_string_equal(r->text, "try again");
	assert_string_equal(s.rejects[2].client, "");
	assert_string_equal(s.rejects[2].text, "");
	r = &s.rejects[1];
	assert_string_equal(r->code, "554");
	assert_string_equal(r->status, "");
	assert_string_equal(r->text, "not an enhanced code");
	r = &s.rejects[0];
	assert_string_equal(r->cmd, "X??INJECT");
	assert_string_equal(r->text, "bad??[0mtext??");
}

/* bounded: thousands of rejections keep the last RECENT_REJECTS, newest
 * first, and long strings are cut to their field */
static void
test_rejects_bounded(void **state)
{
	(void)state;
	char big[4096];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	for (int i = 0; i < 5000; i++) {
		char line[64];
		snprintf(line, sizeof line, "550 5.7.1 number %d", i);
		recent_reject(i == 4999 ? big : "198.51.100.7", "RCPT", i == 4998 ? big : line);
	}
	recent_snap_t s;
	recent_snapshot(&s);
	assert_int_equal(s.nrejects, RECENT_REJECTS);
	assert_int_equal(s.rejects_total, 5000);
	assert_int_equal(strlen(s.rejects[0].client), sizeof s.rejects[0].client - 1);
	assert_int_equal(strlen(s.rejects[1].text), sizeof s.rejects[1].text - 1);
	assert_string_equal(s.rejects[1].code, "");
	assert_string_equal(s.rejects[2].text, "number 4997");
	assert_string_equal(s.rejects[RECENT_REJECTS - 1].text, "number 4950");
	/* the state itself is fixed in size: the snapshot is all of it */
	assert_true(sizeof s < 32 * 1024);
}

static void
test_status_json(void **state)
{
	(void)state;
	recent_delivery(RCPT_SENT);
	recent_session(true, true);
	recent_reject("192.0.2.9", "RCPT", "550 5.1.1 \xff\xfe not UTF-8");
	buf_t out = BUF_INIT;
	status_json(NULL, &out);
	json_error_t err;
	json_t *j = json_loads(buf_cstr(&out), 0, &err);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "now")), fake_now);
	json_t *mins = json_object_get(json_object_get(j, "deliveries"), "minutes");
	assert_int_equal(json_array_size(mins), RECENT_MINUTES);
	json_t *last = json_array_get(mins, RECENT_MINUTES - 1);
	assert_int_equal(json_integer_value(json_object_get(last, "sent")), 1);
	assert_int_equal(json_integer_value(json_object_get(last, "t")), fake_now / 60 * 60);
	json_t *q = json_object_get(j, "queue");
	assert_int_equal(json_integer_value(json_object_get(q, "messages")), 0);
	assert_int_equal(json_array_size(json_object_get(q, "destinations")), 0);
	json_t *in = json_object_get(json_object_get(j, "tls"), "inbound");
	assert_int_equal(json_integer_value(json_object_get(in, "tls")), 1);
	assert_int_equal(json_integer_value(json_object_get(in, "plain")), 0);
	json_t *rej = json_array_get(json_object_get(json_object_get(j, "rejections"), "recent"), 0);
	assert_string_equal(json_string_value(json_object_get(rej, "status")), "5.1.1");
	assert_string_equal(json_string_value(json_object_get(rej, "reason")), "?? not UTF-8");
	json_decref(j);
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_minutes, setup),
		cmocka_unit_test_setup(test_a_day, setup),
		cmocka_unit_test_setup(test_rejects, setup),
		cmocka_unit_test_setup(test_rejects_bounded, setup),
		cmocka_unit_test_setup(test_status_json, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
