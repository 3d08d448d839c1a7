/*
 * test_outcome.c - every error -> outcome rule of src/deliver/outcome.c,
 * as tables: SMTP reply codes per stage, DNS answers (recipient domain and
 * configured next hop), the local rules (Maildir, queue file, shutdown,
 * expiry, a vanished mailbox), and how an outcome is written into a
 * recipient.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "deliver/outcome.h"
#include "lib/xalloc.h"

#define OK OUTCOME_OK
#define TEMP OUTCOME_TEMPFAIL
#define PERM OUTCOME_PERMFAIL

static void
test_smtp_codes(void **state)
{
	static const struct {
		enum outcome_stage stage;
		int code;
		enum outcome_kind want;
	} cases[] = {
		{OUTCOME_STAGE_CONNECT, 0, TEMP},
		{OUTCOME_STAGE_CONNECT, 550, TEMP},
		{OUTCOME_STAGE_GREETING, 220, OK},
		{OUTCOME_STAGE_GREETING, 554, PERM},
		{OUTCOME_STAGE_GREETING, 421, TEMP},
		{OUTCOME_STAGE_GREETING, 250, TEMP}, /* protocol error */
		{OUTCOME_STAGE_HELO, 250, OK},
		{OUTCOME_STAGE_HELO, 550, PERM},
		{OUTCOME_STAGE_MAIL, 250, OK},
		{OUTCOME_STAGE_MAIL, 354, TEMP}, /* a class MAIL cannot have */
		{OUTCOME_STAGE_MAIL, 451, TEMP},
		{OUTCOME_STAGE_MAIL, 553, PERM},
		{OUTCOME_STAGE_RCPT, 250, OK},
		{OUTCOME_STAGE_RCPT, 251, OK},
		{OUTCOME_STAGE_RCPT, 450, TEMP},
		{OUTCOME_STAGE_RCPT, 550, PERM},
		{OUTCOME_STAGE_RCPT, 552, TEMP}, /* RFC 5321 §4.5.3.1.10 */
		{OUTCOME_STAGE_RCPT, 421, TEMP},
		{OUTCOME_STAGE_DATA, 354, OK},
		{OUTCOME_STAGE_DATA, 250, TEMP},
		{OUTCOME_STAGE_DATA, 554, PERM},
		{OUTCOME_STAGE_CONTENT, 250, TEMP},
		{OUTCOME_STAGE_DOT, 250, OK},
		{OUTCOME_STAGE_DOT, 452, TEMP},
		{OUTCOME_STAGE_DOT, 552, PERM},
		{OUTCOME_STAGE_STARTTLS, 220, OK},
		{OUTCOME_STAGE_STARTTLS, 454, TEMP},
		{OUTCOME_STAGE_STARTTLS, 554, TEMP}, /* costs only TLS */
		{OUTCOME_STAGE_RSET, 250, OK},
		{OUTCOME_STAGE_QUIT, 221, OK},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum outcome_kind k = outcome_smtp_kind(cases[i].stage, cases[i].code);
		if (k != cases[i].want)
			fail_msg("case %zu: stage %d code %d: %d, want %d", i, cases[i].stage,
			    cases[i].code, k, cases[i].want);
	}
}

static void
test_dns(void **state)
{
	static const struct {
		const char *reply, *detail, *host;
		bool is_relay;
		enum outcome_kind want;
		const char *text;
	} cases[] = {
		/* the recipient domain says it takes no mail (RFC 7505): permanent */
		{"556 5.1.10 domain accepts no mail", NULL, "x.test", false, PERM,
			"556 5.1.10 domain accepts no mail"},
		{"550 5.1.2 no such domain", "NXDOMAIN", "x.test", false, PERM,
			"550 5.1.2 no such domain (NXDOMAIN)"},
		/* ... but a configured next hop's trouble is ours: temporary */
		{"550 5.1.2 no such domain", NULL, "relay.test", true, TEMP,
			"451 4.4.3 next hop relay.test: 550 5.1.2 no such domain"},
		{"451 4.4.3 lookup timed out", "SERVFAIL", "x.test", false, TEMP,
			"451 4.4.3 lookup timed out (SERVFAIL)"},
		{NULL, NULL, "x.test", false, TEMP, "451 4.4.3 DNS failure"},
		{"", "", "x.test", false, TEMP, "451 4.4.3 DNS failure"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		outcome_t oc;
		outcome_dns(&oc, cases[i].reply, cases[i].detail, cases[i].host, cases[i].is_relay);
		assert_int_equal(oc.kind, cases[i].want);
		assert_string_equal(oc.text, cases[i].text);
	}
}

static void
test_local_rules(void **state)
{
	outcome_t oc;
	static const struct {
		int err;
		const char *code;
	} md[] = {{ENOSPC, "4.2.2"}, {EDQUOT, "4.2.2"}, {EACCES, "4.3.0"}, {EIO, "4.3.0"}};
	for (size_t i = 0; i < sizeof md / sizeof md[0]; i++)
		assert_string_equal(outcome_maildir_code(md[i].err), md[i].code);

	const struct {
		void (*fn)(outcome_t *);
		enum outcome_kind want;
		const char *text;
	} fixed[] = {
		{outcome_shutdown, TEMP, "451 4.3.2 shutting down"},
		{outcome_no_mailbox, PERM, "550 5.1.1 mailbox no longer exists"},
	};
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
		fixed[i].fn(&oc);
		assert_int_equal(oc.kind, fixed[i].want);
		assert_string_equal(oc.text, fixed[i].text);
	}
	outcome_maildir_error(&oc, "4.2.2 maildir /m: writing: No space left on device");
	assert_int_equal(oc.kind, TEMP);
	outcome_maildir_ok(&oc, "/m/bob");
	assert_int_equal(oc.kind, OK);
	assert_string_equal(oc.text, "delivered to maildir /m/bob");
	outcome_queue_read(&oc, ENOENT, false);
	assert_int_equal(oc.kind, TEMP);
	assert_string_equal(oc.text, "4.3.0 cannot open queue file: No such file or directory");
	outcome_queue_read(&oc, ENOENT, true);
	assert_string_equal(oc.text, "451 4.3.0 cannot open the queued message: No such file or directory");
	outcome_expired(&oc, 60, "451 4.4.1 connect refused");
	assert_int_equal(oc.kind, PERM);
	assert_string_equal(oc.text,
	    "4.4.7 message expired after 60 seconds in the queue: 451 4.4.1 connect refused");
	outcome_expired(&oc, 60, NULL);
	assert_string_equal(oc.text, "4.4.7 message expired after 60 seconds in the queue: no attempt succeeded");
	outcome_session(&oc, "451 4.7.4 TLS is required for x but STARTTLS was refused: 454");
	assert_int_equal(oc.kind, TEMP);
	outcome_next_hop(&oc, "451 4.3.5 no DNS resolver configured");
	assert_int_equal(oc.kind, TEMP);
	/* REQUIRETLS (RFC 8689 section 4.2.1): TLS trouble is final, a path
	 * that may come back is not */
	outcome_requiretls(&oc, "451 4.7.5 DANE authentication failed for mx[1.2.3.4]:25: no match");
	assert_int_equal(oc.kind, PERM);
	assert_string_equal(oc.text,
	    "550 5.7.10 REQUIRETLS: DANE authentication failed for mx[1.2.3.4]:25: no match");
	outcome_requiretls(&oc, "550 5.7.30 REQUIRETLS support required: mx does not offer it");
	assert_int_equal(oc.kind, PERM);
	assert_string_equal(oc.text, "550 5.7.30 REQUIRETLS support required: mx does not offer it");
	outcome_requiretls(&oc, "451 4.4.1 connect to mx[1.2.3.4]:25: Connection refused");
	assert_int_equal(oc.kind, TEMP);
	assert_string_equal(oc.text, "451 4.4.1 connect to mx[1.2.3.4]:25: Connection refused");
	outcome_requiretls(&oc, "451 4.7.10");
	assert_int_equal(oc.kind, PERM);
	assert_string_equal(oc.text, "550 5.7.10 REQUIRETLS:");
	outcome_capability(&oc, "553 5.6.7 x does not support SMTPUTF8, required by this message");
	assert_int_equal(oc.kind, PERM);
	outcome_bad_domain(&oc, NULL);
	assert_int_equal(oc.kind, PERM);
	assert_string_equal(oc.text, "550 5.1.3 recipient address has no domain");
	outcome_bad_domain(&oc, "451 4.3.5 bad transport");
	assert_int_equal(oc.kind, TEMP);
}

static void
test_apply(void **state)
{
	static const struct {
		enum outcome_kind kind;
		int status;
	} cases[] = {{OK, RCPT_SENT}, {TEMP, RCPT_PENDING}, {PERM, RCPT_FAILED}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		env_rcpt_t r;
		memset(&r, 0, sizeof r);
		r.relay = xstrdup("old");
		r.attempts = 3;
		outcome_t oc = {.kind = cases[i].kind};
		snprintf(oc.text, sizeof oc.text, "text %zu", i);
		outcome_apply(&oc, &r, i == 0 ? NULL : "new");
		assert_int_equal(r.status, cases[i].status);
		assert_string_equal(r.reply, oc.text);
		assert_string_equal(r.relay, i == 0 ? "old" : "new");
		assert_int_equal(r.attempts, 3); /* the caller's */
		xfree(r.reply);
		xfree(r.relay);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp_codes),
		cmocka_unit_test(test_dns),
		cmocka_unit_test(test_local_rules),
		cmocka_unit_test(test_apply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
