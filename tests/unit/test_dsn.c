/*
 * test_dsn.c - unit tests for src/bounce/dsn.c.
 *
 * Envelopes are built by hand (struct fields only, no envelope.c). Every
 * DSN built is checked here for its structure strings and line rules, then
 * written to a temporary file and checked independently by
 * tests/unit/check_dsn.py (Python's email package, policy.default), which
 * must exit 0. Run from the top of the source tree (as `make unit` does).
 * TEST_DSN_KEEP=1 in the environment keeps the DSN files in /tmp to look at.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bounce/dsn.h"
#include "common/addr.h"
#include "lib/xalloc.h"

#define PYTHON "/usr/bin/python3"

static char check_script[4096];

static const char orig_msg[] =
    "Received: from client.example.org ([192.0.2.1])\r\n"
    "\tby mx.example.org (tern) with ESMTP id 0123456789ABCDEF;\r\n"
    "\tMon, 01 Jan 2024 12:00:00 +0000\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net, carol@example.net\r\n"
    "Subject: Hello there\r\n"
    "Message-ID: <hello.1@example.org>\r\n"
    "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
    "\r\n"
    "Body line 1\r\n"
    "Body line 2 with the word Subject: in it\r\n";

/* what the spool file has before the content, so body_off matters */
static const char spool_prefix[] = "ENVELOPE AREA 0123456789\n";

/* ---- helpers ---- */

/* An unlinked temporary file holding spool_prefix then content. */
static int
content_fd(const char *content, size_t len, uint64_t *off)
{
	char path[] = "/tmp/test_dsn_spool_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(write(fd, spool_prefix, strlen(spool_prefix)), (ssize_t)strlen(spool_prefix));
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	*off = strlen(spool_prefix);
	return fd;
}

typedef struct fixture {
	envelope_t env;
	env_rcpt_t rcpt[3];
	int fd;
} fixture_t;

static void
fixture_init(fixture_t *f, const char *content, size_t len)
{
	memset(f, 0, sizeof(*f));
	strcpy(f->env.qid, "0123456789ABCDEF");
	f->env.arrival_us = (int64_t)1704110400 * 1000000 + 123456;
	f->env.sender = "alice@example.org";
	f->env.client_addr = "192.0.2.1";
	f->env.rcpt = f->rcpt;
	f->env.nrcpt = 3;
	f->rcpt[0].addr = "bob@example.net";
	f->rcpt[1].addr = "carol@example.net";
	f->rcpt[1].orig = "team@example.org";
	f->rcpt[2].addr = "dave@example.com";
	for (int i = 0; i < 3; i++)
		f->rcpt[i].last_try = 1704114000 + i;
	f->fd = content ? content_fd(content, len, &f->env.body_off) : -1;
	f->env.body_len = content ? len : 0;
}

static void
fixture_done(fixture_t *f)
{
	if (f->fd >= 0)
		close(f->fd);
}

static dsn_params_t
params(enum dsn_kind kind)
{
	dsn_params_t p = {
		.hostname = "mx.example.org",
		.now = 1704200000,
		.kind = kind,
		.unique = "UNIQUETOKEN42",
	};
	return p;
}

/* RFC 5322 §2.1.1 and §2.3: CRLF only, at most 998 octets a line, no NUL */
static void
assert_lines_ok(const buf_t *b)
{
	size_t col = 0;
	assert_true(b->len >= 2);
	assert_memory_equal(b->data + b->len - 2, "\r\n", 2);
	for (size_t i = 0; i < b->len; i++) {
		char c = b->data[i];
		if (c == '\r') {
			assert_true(i + 1 < b->len && b->data[i + 1] == '\n');
			i++;
			col = 0;
			continue;
		}
		assert_true(c != '\n' && c != '\0');
		col++;
		if (col > 998)
			fail_msg("line over 998 octets at offset %zu", i);
	}
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void
assert_has(const buf_t *b, const char *needle)
{
	if (strstr(buf_cstr(b), needle) == NULL) {
		fprintf(stderr, "missing:\n%s\n--- in ---\n%s\n--- end ---\n", needle, buf_cstr(b));
		fail();
	}
}

/* The text/plain part with its recipient lines unwrapped (caller frees). */
static char *
text_part_unwrapped(const buf_t *b)
{
	const char *start = strstr(buf_cstr(b), "Content-Type: text/plain");
	const char *end = strstr(buf_cstr(b), "Content-Description: Delivery report");
	assert_non_null(start);
	assert_non_null(end);
	buf_t t = BUF_INIT;
	for (const char *q = start; q < end; q++) {
		if (strncmp(q, "\r\n    ", 6) == 0) {
			buf_putc(&t, ' ');
			q += 5;
		} else {
			buf_putc(&t, *q);
		}
	}
	return buf_steal(&t);
}

/*
 * Write msg to a file and run check_dsn.py on it with the extra args
 * (NULL-terminated). Returns its exit status; the file is kept (and its
 * name printed) when the check fails.
 */
static int
run_check(const buf_t *msg, ...)
{
	char path[] = "/tmp/test_dsn_out_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, msg->data, msg->len), (ssize_t)msg->len);
	close(fd);

	const char *argv[32];
	size_t n = 0;
	argv[n++] = PYTHON;
	argv[n++] = check_script;
	argv[n++] = path;
	va_list ap;
	va_start(ap, msg);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < 31)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;

	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execv(PYTHON, (char *const *)argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		assert_int_equal(errno, EINTR);
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	if (rc == 0 && getenv("TEST_DSN_KEEP") == NULL)
		unlink(path);
	else
		fprintf(stderr, "check_dsn.py failed (%d) on %s\n", rc, path);
	return rc;
}

/* ---- dsn_status_of_reply ---- */

static void
test_status_of_reply(void **state)
{
	static const struct {
		const char *reply;
		const char *want; /* NULL: none */
	} cases[] = {
		{"550 5.1.1 <bob@example.net>: user unknown", "5.1.1"},
		{"451 4.3.0 try again later", "4.3.0"},
		{"421-4.7.0 too many connections", "4.7.0"},
		{"250 2.0.0 Ok: queued as X", "2.0.0"},
		{"552 5.2.2 mailbox full", "5.2.2"},
		{"554 5.999.999 odd but valid", "5.999.999"},
		{"550 user unknown", "5.0.0"},
		{"452 no room", "4.0.0"},
		{"250 ok", "2.0.0"},
		{"550", "5.0.0"},
		{"550 4.1.1 class disagrees with the code", "5.0.0"},
		{"550 5.1234.1 subject too long", "5.0.0"},
		{"550 5.1.1x not followed by space", "5.0.0"},
		{"550 5..1 empty subject", "5.0.0"},
		{"4.2.2 maildir /x: No space left on device", "4.2.2"},
		{"5.1.1", "5.1.1"},
		{"  550 5.7.1 leading spaces", "5.7.1"},
		{"354 go ahead", NULL},
		{"hello", NULL},
		{"", NULL},
		{"3.1.1 not a class", NULL},
		{"55 short", NULL},
		{"5500 5.1.1 four digits", NULL},
		{NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[DSN_STATUS_SIZE];
		const char *got = dsn_status_of_reply(cases[i].reply, out);
		if (cases[i].want == NULL) {
			if (got != NULL)
				fail_msg("case %zu (%s): got %s, want none", i, cases[i].reply, got);
		} else {
			if (got == NULL || strcmp(got, cases[i].want) != 0)
				fail_msg("case %zu (%s): got %s, want %s", i, cases[i].reply,
				    got ? got : "(none)", cases[i].want);
			assert_ptr_equal(got, out);
		}
	}
}

/* ---- dsn_wanted ---- */

static void
test_wanted(void **state)
{
	static const struct {
		unsigned notify;
		bool failure, delay, success;
	} cases[] = {
		{0, true, true, false},
		{NOTIFY_NEVER, false, false, false},
		{NOTIFY_SUCCESS, false, false, true},
		{NOTIFY_FAILURE, true, false, false},
		{NOTIFY_DELAY, false, true, false},
		{NOTIFY_FAILURE | NOTIFY_DELAY, true, true, false},
		{NOTIFY_SUCCESS | NOTIFY_FAILURE | NOTIFY_DELAY, true, true, true},
	};
	fixture_t f;
	fixture_init(&f, NULL, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		f.rcpt[1].notify = cases[i].notify;
		assert_int_equal(dsn_wanted(&f.env, 1, DSN_FAILURE), cases[i].failure);
		assert_int_equal(dsn_wanted(&f.env, 1, DSN_DELAY), cases[i].delay);
		assert_int_equal(dsn_wanted(&f.env, 1, DSN_SUCCESS), cases[i].success);
	}
	/* RFC 5321 §4.5.5: never to the null sender, never about a DSN */
	f.rcpt[1].notify = NOTIFY_FAILURE | NOTIFY_SUCCESS | NOTIFY_DELAY;
	f.env.sender = "";
	assert_false(dsn_wanted(&f.env, 1, DSN_FAILURE));
	assert_false(dsn_wanted(&f.env, 1, DSN_SUCCESS));
	f.env.sender = NULL;
	assert_false(dsn_wanted(&f.env, 1, DSN_FAILURE));
	f.env.sender = "alice@example.org";
	f.env.flags = ENV_IS_BOUNCE;
	assert_false(dsn_wanted(&f.env, 1, DSN_FAILURE));
	f.env.flags = 0;
	assert_true(dsn_wanted(&f.env, 1, DSN_FAILURE));
	assert_false(dsn_wanted(&f.env, 3, DSN_FAILURE));
	assert_false(dsn_wanted(NULL, 0, DSN_FAILURE));
	fixture_done(&f);
}

/* ---- dsn_build: the main table ---- */

/* per kind, the replies and relays of the three recipients */
static const struct {
	const char *reply[3];
	const char *relay[3];
	const char *action[3];
	const char *status[3];
} outcomes[] = {
	[DSN_FAILURE] = {
		{"550 5.1.1 <bob@example.net>: user unknown", "552 mailbox full", NULL},
		{"mx.example.net[192.0.2.10]:25", "mx.example.net[192.0.2.10]:25", "local"},
		{"failed", "failed", "failed"},
		{"5.1.1", "5.0.0", "5.0.0"},
	},
	[DSN_DELAY] = {
		{"451 4.3.0 try again later", "421 service not available", "4.2.2 maildir: quota"},
		{"mx.example.net[192.0.2.10]:25", "[2001:db8::1]:25", "local"},
		{"delayed", "delayed", "delayed"},
		{"4.3.0", "4.0.0", "4.2.2"},
	},
	[DSN_SUCCESS] = {
		{"250 2.0.0 Ok: queued as 4ABC", NULL, NULL},
		{"mx.example.net[192.0.2.10]:25", "local", NULL},
		{"relayed", "delivered", "delivered"},
		{"2.0.0", "2.0.0", "2.0.0"},
	},
};

static const char *const subjects[] = {
	"Subject: Undelivered Mail Returned to Sender\r\n",
	"Subject: Delayed Mail (still being retried)\r\n",
	"Subject: Successful Mail Delivery Report\r\n",
};

static void
build_case(enum dsn_kind kind, size_t nrcpt, int ret, bool orcpt, const char *envid)
{
	fixture_t f;
	fixture_init(&f, orig_msg, strlen(orig_msg));
	f.env.ret = ret;
	f.env.envid = (char *)envid;
	for (size_t i = 0; i < 3; i++) {
		f.rcpt[i].reply = (char *)outcomes[kind].reply[i];
		f.rcpt[i].relay = (char *)outcomes[kind].relay[i];
	}
	if (orcpt)
		f.rcpt[0].orcpt = "rfc822;bob@example.net";
	size_t idx3[3] = {0, 1, 2}, idx1[1] = {0};
	dsn_params_t p = params(kind);
	p.retry_until = kind == DSN_DELAY ? 1704500000 : 0;
	buf_t out = BUF_INIT, err = BUF_INIT;
	dsn_info_t info;

	int rc = dsn_build(&out, &f.env, nrcpt == 3 ? idx3 : idx1, nrcpt, &p, f.fd, &info, &err);
	if (rc != 0)
		fail_msg("dsn_build: %s", buf_cstr(&err));
	assert_lines_ok(&out);

	assert_has(&out, "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n");
	assert_has(&out, "To: <alice@example.org>\r\n");
	assert_has(&out, subjects[kind]);
	assert_has(&out, "Message-ID: <UNIQUETOKEN42.0123456789ABCDEF@mx.example.org>\r\n");
	assert_has(&out, "Auto-Submitted: auto-replied\r\n");
	assert_has(&out, "MIME-Version: 1.0\r\n");
	assert_has(&out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
			 "\tboundary=\"=_tern_UNIQUETOKEN42\"\r\n");
	assert_has(&out, "\r\n--=_tern_UNIQUETOKEN42\r\nContent-Description: Notification\r\n"
			 "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	assert_has(&out, "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n");
	assert_has(&out, "X-Tern-Queue-ID: 0123456789ABCDEF\r\n");
	assert_has(&out, "\r\n--=_tern_UNIQUETOKEN42--\r\n");
	assert_int_equal(count(buf_cstr(&out), "--=_tern_UNIQUETOKEN42\r\n"), 3);
	assert_int_equal(count(buf_cstr(&out), "Final-Recipient: rfc822; "), nrcpt);
	assert_int_equal(count(buf_cstr(&out), "Action: "), nrcpt);
	assert_int_equal(count(buf_cstr(&out), "Status: "), nrcpt);
	assert_has(&out, "Arrival-Date: ");
	assert_has(&out, "Last-Attempt-Date: ");
	assert_int_equal(count(buf_cstr(&out), "Will-Retry-Until: "), kind == DSN_DELAY ? nrcpt : 0);
	if (envid)
		assert_has(&out, "Original-Envelope-Id: ENV-42.x\r\n");
	else
		assert_null(strstr(buf_cstr(&out), "Original-Envelope-Id"));
	if (orcpt)
		assert_has(&out, "Original-Recipient: rfc822;bob@example.net\r\nFinal-Recipient: rfc822; bob@example.net\r\n");
	else
		assert_null(strstr(buf_cstr(&out), "Original-Recipient"));

	for (size_t i = 0; i < nrcpt; i++) {
		char line[256];
		snprintf(line, sizeof(line), "Final-Recipient: rfc822; %s\r\n", f.rcpt[i].addr);
		assert_has(&out, line);
		snprintf(line, sizeof(line), "Action: %s\r\nStatus: %s\r\n", outcomes[kind].action[i],
		    outcomes[kind].status[i]);
		assert_has(&out, line);
		if (f.rcpt[i].reply) {
			snprintf(line, sizeof(line), "Diagnostic-Code: %s; %s\r\n",
			    f.rcpt[i].reply[3] == ' ' ? "smtp" : "x-tern", f.rcpt[i].reply);
			assert_has(&out, line);
			/* the text part names the reply too */
			char *text = text_part_unwrapped(&out);
			if (strstr(text, f.rcpt[i].reply) == NULL)
				fail_msg("reply %s not in the text part:\n%s", f.rcpt[i].reply, text);
			free(text);
		}
		snprintf(line, sizeof(line), "<%s>", f.rcpt[i].addr);
		assert_has(&out, line);
	}
	if (nrcpt == 3) {
		assert_has(&out, "(expanded from <team@example.org>)");
		if (kind == DSN_DELAY)
			assert_has(&out, "Remote-MTA: dns; [2001:db8::1]\r\n");
	}
	assert_has(&out, "Remote-MTA: dns; mx.example.net\r\n");
	/* local deliveries have no Remote-MTA */
	assert_int_equal(count(buf_cstr(&out), "Remote-MTA: "),
	    nrcpt == 1 ? 1 : kind == DSN_SUCCESS ? 1 : 2);

	const char *ret_arg;
	if (ret == RET_HDRS) {
		ret_arg = "hdrs";
		assert_has(&out, "Content-Type: text/rfc822-headers\r\n\r\nReceived: from client.example.org");
		assert_has(&out, "Subject: Hello there\r\nMessage-ID: <hello.1@example.org>\r\n"
				 "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n\r\n--=_tern_UNIQUETOKEN42--\r\n");
		assert_null(strstr(buf_cstr(&out), "Body line 1"));
		assert_has(&out, "as you asked.");
		assert_false(info.returned_full);
	} else {
		ret_arg = "full";
		assert_has(&out, "Content-Type: message/rfc822\r\n\r\nReceived: from client.example.org");
		assert_has(&out, "Body line 2 with the word Subject: in it\r\n\r\n--=_tern_UNIQUETOKEN42--\r\n");
		assert_has(&out, "A copy of your message is attached.");
		assert_true(info.returned_full);
	}
	assert_null(strstr(buf_cstr(&out), spool_prefix));
	assert_int_equal(info.body, BODY_7BIT);
	assert_false(info.smtputf8);
	assert_null(strstr(buf_cstr(&out), "Content-Transfer-Encoding"));

	char nr[8];
	snprintf(nr, sizeof(nr), "%zu", nrcpt);
	if (envid && orcpt)
		assert_int_equal(run_check(&out, "--ret", ret_arg, "--rcpts", nr, "--subject",
				     "Hello there", "--envid", "ENV-42.x", "--orcpt",
				     "bob@example.net", NULL), 0);
	else if (envid)
		assert_int_equal(run_check(&out, "--ret", ret_arg, "--rcpts", nr, "--subject",
				     "Hello there", "--envid", "ENV-42.x", NULL), 0);
	else
		assert_int_equal(run_check(&out, "--ret", ret_arg, "--rcpts", nr, "--subject",
				     "Hello there", NULL), 0);
	/* all recipients of one DSN share the kind's action when they agree */
	if (kind == DSN_FAILURE)
		assert_int_equal(run_check(&out, "--action", "failed", NULL), 0);
	if (kind == DSN_DELAY)
		assert_int_equal(run_check(&out, "--action", "delayed", NULL), 0);

	buf_free(&out);
	buf_free(&err);
	fixture_done(&f);
}

static void
test_build_table(void **state)
{
	static const struct {
		enum dsn_kind kind;
		size_t nrcpt;
		int ret;
		bool orcpt;
		const char *envid;
	} cases[] = {
		{DSN_FAILURE, 1, RET_NONE, false, NULL},
		{DSN_FAILURE, 1, RET_FULL, true, "ENV-42.x"},
		{DSN_FAILURE, 3, RET_HDRS, true, "ENV-42.x"},
		{DSN_FAILURE, 3, RET_FULL, false, NULL},
		{DSN_DELAY, 1, RET_HDRS, false, "ENV-42.x"},
		{DSN_DELAY, 3, RET_FULL, true, NULL},
		{DSN_DELAY, 3, RET_NONE, false, "ENV-42.x"},
		{DSN_SUCCESS, 1, RET_FULL, true, "ENV-42.x"},
		{DSN_SUCCESS, 3, RET_HDRS, true, NULL},
		{DSN_SUCCESS, 3, RET_NONE, false, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("case %zu: kind %d, %zu rcpt, ret %d\n", i, cases[i].kind,
		    cases[i].nrcpt, cases[i].ret);
		build_case(cases[i].kind, cases[i].nrcpt, cases[i].ret, cases[i].orcpt, cases[i].envid);
	}
}

/* ---- dsn_build: edges ---- */

/* Date is RFC 5322 §3.3, in the time zone given, with a numeric offset */
static void
test_date_format(void **state)
{
	fixture_t f;
	fixture_init(&f, NULL, 0);
	size_t idx = 0;
	dsn_params_t p = params(DSN_FAILURE);
	buf_t out = BUF_INIT, err = BUF_INIT;
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, -1, NULL, &err), 0);
	regex_t re;
	assert_int_equal(regcomp(&re,
			     "\r\nDate: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-3][0-9] "
			     "(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) 20[0-9][0-9] "
			     "[0-2][0-9]:[0-5][0-9]:[0-6][0-9] [+-][0-9]{4}\r\n",
			     REG_EXTENDED),
	    0);
	assert_int_equal(regexec(&re, buf_cstr(&out), 0, NULL, 0), 0);
	regfree(&re);
	/* no content: the optional third part is left out (RFC 3464 §2) */
	assert_int_equal(count(buf_cstr(&out), "--=_tern_UNIQUETOKEN42\r\n"), 2);
	assert_int_equal(run_check(&out, "--parts", "2", "--rcpts", "1", NULL), 0);
	buf_free(&out);
	buf_free(&err);
	fixture_done(&f);
}

static void
test_errors(void **state)
{
	fixture_t f;
	fixture_init(&f, orig_msg, strlen(orig_msg));
	size_t idx = 0, bad = 3;
	dsn_params_t p = params(DSN_FAILURE);
	buf_t out = BUF_INIT, err = BUF_INIT;
	buf_puts(&out, "keep");

	/* RFC 5321 §4.5.5: no DSN to the null sender */
	f.env.sender = "";
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, NULL, &err), -1);
	assert_true(err.len > 0);
	f.env.sender = "alice@example.org";
	assert_int_equal(dsn_build(&out, &f.env, &bad, 1, &p, f.fd, NULL, &err), -1);
	assert_int_equal(dsn_build(&out, &f.env, &idx, 0, &p, f.fd, NULL, &err), -1);
	p.hostname = NULL;
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, NULL, &err), -1);
	p = params(DSN_FAILURE);
	p.kind = (enum dsn_kind)7;
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, NULL, &err), -1);
	p = params(DSN_FAILURE);
	/* the spool file is shorter than the envelope says */
	f.env.body_len += 10;
	buf_reset(&err);
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, NULL, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "truncated"));
	f.env.ret = RET_HDRS;
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, NULL, &err), -1);
	/* out is left as it was */
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.data, "keep", 4);
	/* a bad descriptor */
	f.env.ret = RET_FULL;
	f.env.body_len -= 10;
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, 9999, NULL, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "cannot read"));
	buf_free(&out);
	buf_free(&err);
	fixture_done(&f);
}

/* A hostile remote reply cannot inject fields or lines, nor break the
 * boundary or the 998-octet limit. */
static void
test_hostile_reply(void **state)
{
	fixture_t f;
	fixture_init(&f, orig_msg, strlen(orig_msg));
	buf_t reply = BUF_INIT;
	buf_puts(&reply, "550 5.7.1 no\r\nX-Injected: yes\r\n\r\n--=_tern_UNIQUETOKEN42--\r\n"
			 "\x01\x7f\tcontrol \xff\xfe bad utf-8 \xc3\xa9 ok ");
	for (int i = 0; i < 3000; i++)
		buf_putc(&reply, (char)('a' + i % 26));
	for (int i = 0; i < 200; i++)
		buf_puts(&reply, " word");
	f.rcpt[0].reply = reply.data;
	f.rcpt[0].relay = "evil.example[192.0.2.66]:25\r\nX-Evil: 1";
	f.rcpt[0].orcpt = "rfc822;bob@example.net\r\nX-Orcpt: 1";
	f.env.envid = "id with space\r\nX-Envid: 1";
	size_t idx = 0;
	dsn_params_t p = params(DSN_FAILURE);
	buf_t out = BUF_INIT, err = BUF_INIT;
	dsn_info_t info;
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, &info, &err), 0);
	assert_lines_ok(&out);
	assert_null(strstr(buf_cstr(&out), "\r\nX-Injected"));
	assert_null(strstr(buf_cstr(&out), "\r\nX-Evil"));
	assert_null(strstr(buf_cstr(&out), "\r\nX-Orcpt"));
	assert_null(strstr(buf_cstr(&out), "\r\nX-Envid"));
	assert_null(strstr(buf_cstr(&out), "\xff"));
	assert_null(strstr(buf_cstr(&out), "\xc3\xa9")); /* ASCII report: '?' instead */
	assert_has(&out, "Original-Envelope-Id: id+20with+20space+0D+0AX-Envid:+201\r\n");
	assert_has(&out, "Diagnostic-Code: smtp; 550 5.7.1 no X-Injected: yes --=_tern_UNIQUETOKEN42--\r\n"
			 " control ?? bad utf-8 ?? ok\r\n abcdefghijklmnopqrstuvwxyz");
	assert_has(&out, "Status: 5.7.1\r\n");
	assert_has(&out, "Remote-MTA: dns; evil.example\r\n");
	/* the boundary was changed, since the reply text carries the first choice */
	assert_has(&out, "boundary=\"=_tern_UNIQUETOKEN42_1\"");
	assert_int_equal(info.body, BODY_7BIT);
	assert_int_equal(run_check(&out, "--ret", "full", "--rcpts", "1", "--action", "failed", NULL), 0);
	buf_free(&out);
	buf_free(&err);
	buf_free(&reply);
	fixture_done(&f);
}

/* The original content carries the boundary: another one is chosen. */
static void
test_boundary_in_content(void **state)
{
	buf_t msg = BUF_INIT;
	buf_puts(&msg, "Subject: tricky\r\n\r\n--=_tern_UNIQUETOKEN42\r\n--=_tern_UNIQUETOKEN42_1--\r\n");
	fixture_t f;
	fixture_init(&f, msg.data, msg.len);
	size_t idx = 0;
	dsn_params_t p = params(DSN_FAILURE);
	buf_t out = BUF_INIT, err = BUF_INIT;
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, NULL, &err), 0);
	assert_has(&out, "boundary=\"=_tern_UNIQUETOKEN42_2\"");
	assert_int_equal(run_check(&out, "--ret", "full", "--subject", "tricky", NULL), 0);
	buf_free(&out);
	buf_free(&err);
	buf_free(&msg);
	fixture_done(&f);
}

/* Too big, or not carriable as 8bit text: headers only, said in the text. */
static void
test_headers_only_fallbacks(void **state)
{
	static const struct {
		const char *body;
		uint64_t max_full;
		const char *why;
	} cases[] = {
		{"short body\r\n", 20, "too large to be returned in full"},
		{"a bare\nLF\r\n", 0, "could not be returned in full"},
		{"a NUL \0 here\r\n", 0, "could not be returned in full"},
		{NULL /* a 2000-octet line */, 0, "could not be returned in full"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_t msg = BUF_INIT;
		buf_puts(&msg, "From: a@example.org\r\nSubject: big\r\n\r\n");
		if (cases[i].body) {
			const char *b = cases[i].body;
			size_t bl = strlen(b);
			if (strstr(b, "NUL"))
				bl = strlen(b) + 1 + strlen(b + strlen(b) + 1);
			buf_append(&msg, b, bl);
		} else {
			for (int k = 0; k < 2000; k++)
				buf_putc(&msg, 'x');
			buf_puts(&msg, "\r\n");
		}
		fixture_t f;
		fixture_init(&f, msg.data, msg.len);
		size_t idx = 0;
		dsn_params_t p = params(DSN_FAILURE);
		p.max_full = cases[i].max_full;
		buf_t out = BUF_INIT, err = BUF_INIT;
		dsn_info_t info;
		assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, &info, &err), 0);
		assert_lines_ok(&out);
		assert_has(&out, "Content-Type: text/rfc822-headers\r\n\r\nFrom: a@example.org\r\nSubject: big\r\n\r\n--=_tern_");
		assert_has(&out, cases[i].why);
		assert_false(info.returned_full);
		assert_int_equal(run_check(&out, "--ret", "hdrs", "--subject", "big", NULL), 0);
		buf_free(&out);
		buf_free(&err);
		buf_free(&msg);
		fixture_done(&f);
	}
}

/* A header section with over-long lines, bare CRs, NUL and no body: returned
 * as safe lines. */
static void
test_bad_header_section(void **state)
{
	buf_t msg = BUF_INIT;
	buf_puts(&msg, "Subject: weird\r\nX-Long: ");
	for (int k = 0; k < 2500; k++)
		buf_putc(&msg, (char)('A' + k % 26));
	buf_puts(&msg, "\r\nX-Cr: a\rb\r\r\nX-Nul: x");
	buf_putc(&msg, '\0');
	buf_puts(&msg, "y"); /* no final CRLF, no body */
	fixture_t f;
	fixture_init(&f, msg.data, msg.len);
	f.env.ret = RET_HDRS;
	size_t idx = 0;
	dsn_params_t p = params(DSN_FAILURE);
	buf_t out = BUF_INIT, err = BUF_INIT;
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, NULL, &err), 0);
	assert_lines_ok(&out);
	assert_has(&out, "X-Cr: a\r\nb\r\nX-Nul: x y\r\n\r\n--=_tern_UNIQUETOKEN42--\r\n");
	assert_int_equal(run_check(&out, "--ret", "hdrs", "--subject", "weird", NULL), 0);
	buf_free(&out);
	buf_free(&err);
	buf_free(&msg);
	fixture_done(&f);
}

/* A header section longer than DSN_MAX_HEADERS is cut at a line end. */
static void
test_huge_header_section(void **state)
{
	buf_t msg = BUF_INIT;
	buf_puts(&msg, "Subject: huge\r\n");
	while (msg.len < DSN_MAX_HEADERS + 50000)
		buf_puts(&msg, "X-Filler: 0123456789012345678901234567890123456789\r\n");
	buf_puts(&msg, "\r\nbody\r\n");
	fixture_t f;
	fixture_init(&f, msg.data, msg.len);
	f.env.ret = RET_HDRS;
	size_t idx = 0;
	dsn_params_t p = params(DSN_FAILURE);
	buf_t out = BUF_INIT, err = BUF_INIT;
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, NULL, &err), 0);
	assert_lines_ok(&out);
	assert_true(out.len < DSN_MAX_HEADERS + 10000);
	assert_has(&out, "The header section was cut short.");
	assert_has(&out, "0123456789\r\n\r\n--=_tern_UNIQUETOKEN42--\r\n");
	assert_int_equal(run_check(&out, "--ret", "hdrs", "--subject", "huge", NULL), 0);
	buf_free(&out);
	buf_free(&err);
	buf_free(&msg);
	fixture_done(&f);
}

/* SMTPUTF8 (RFC 6531, RFC 6533): global types, utf-8 address type, the
 * DSN itself needs SMTPUTF8 because its To: is not ASCII. */
static void
test_smtputf8(void **state)
{
	static const char umsg[] =
	    "From: =?utf-8?q?J=C3=B6rg?= <j\xc3\xb6rg@b\xc3\xbcro.example>\r\n"
	    "To: \xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example\r\n"
	    "Subject: Gr\xc3\xbc\xc3\x9f""e\r\n"
	    "\r\n"
	    "Hall\xc3\xb6\r\n";
	fixture_t f;
	fixture_init(&f, umsg, strlen(umsg));
	f.env.smtputf8 = true;
	f.env.sender = "j\xc3\xb6rg@b\xc3\xbcro.example";
	f.rcpt[0].addr = "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example";
	f.rcpt[0].orcpt = "utf-8;\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example";
	f.rcpt[0].reply = "550 5.1.1 unknown \xe7\x94\xa8\xe6\x88\xb7";
	f.rcpt[0].relay = "mx.example[192.0.2.5]:25";
	f.rcpt[1].reply = "550 5.1.1 unknown";
	size_t idx[2] = {0, 1};
	dsn_params_t p = params(DSN_FAILURE);
	buf_t out = BUF_INIT, err = BUF_INIT;
	dsn_info_t info;
	assert_int_equal(dsn_build(&out, &f.env, idx, 2, &p, f.fd, &info, &err), 0);
	assert_lines_ok(&out);
	assert_has(&out, "To: <j\xc3\xb6rg@b\xc3\xbcro.example>\r\n");
	assert_has(&out, "report-type=global-delivery-status;");
	assert_has(&out, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n");
	assert_has(&out, "Content-Type: message/global-delivery-status\r\nContent-Transfer-Encoding: 8bit\r\n");
	assert_has(&out, "Final-Recipient: utf-8; \xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.example\r\n");
	assert_has(&out, "Final-Recipient: rfc822; carol@example.net\r\n");
	assert_has(&out, "Original-Recipient: utf-8;\xe7\x94\xa8\xe6\x88\xb7@");
	assert_has(&out, "Diagnostic-Code: smtp; 550 5.1.1 unknown \xe7\x94\xa8\xe6\x88\xb7\r\n");
	assert_has(&out, "Content-Type: message/global\r\nContent-Transfer-Encoding: 8bit\r\n\r\nFrom: ");
	assert_int_equal(info.body, BODY_8BITMIME);
	assert_true(info.smtputf8);
	assert_true(info.returned_full);
	assert_int_equal(run_check(&out, "--ret", "full", "--rcpts", "2", "--action", "failed", NULL), 0);

	/* headers only: message/global-headers */
	buf_reset(&out);
	f.env.ret = RET_HDRS;
	assert_int_equal(dsn_build(&out, &f.env, idx, 2, &p, f.fd, &info, &err), 0);
	assert_has(&out, "Content-Type: message/global-headers\r\nContent-Transfer-Encoding: 8bit\r\n");
	assert_int_equal(run_check(&out, "--ret", "hdrs", "--rcpts", "2", NULL), 0);

	/* not SMTPUTF8, ASCII addresses, 8-bit body: message/rfc822, 8bit */
	buf_reset(&out);
	f.env.ret = RET_FULL;
	f.env.smtputf8 = false;
	f.env.sender = "alice@example.org";
	f.rcpt[0].addr = "bob@example.net";
	f.rcpt[0].orcpt = NULL;
	f.rcpt[0].reply = "550 5.1.1 unknown";
	assert_int_equal(dsn_build(&out, &f.env, idx, 2, &p, f.fd, &info, &err), 0);
	assert_has(&out, "report-type=delivery-status;");
	assert_has(&out, "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	assert_has(&out, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
	assert_int_equal(info.body, BODY_8BITMIME);
	assert_false(info.smtputf8);
	assert_int_equal(run_check(&out, "--ret", "full", "--rcpts", "2", NULL), 0);
	buf_free(&out);
	buf_free(&err);
	fixture_done(&f);
}

/* postmaster given, no unique token (a fresh one), DELAY without retry_until */
static void
test_defaults(void **state)
{
	fixture_t f;
	fixture_init(&f, orig_msg, strlen(orig_msg));
	size_t idx = 2;
	dsn_params_t p = params(DSN_DELAY);
	p.unique = NULL;
	p.postmaster = "postmaster@example.org";
	buf_t out = BUF_INIT, out2 = BUF_INIT, err = BUF_INIT;
	assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, NULL, &err), 0);
	assert_int_equal(dsn_build(&out2, &f.env, &idx, 1, &p, f.fd, NULL, &err), 0);
	assert_has(&out, "From: Mail Delivery System <postmaster@example.org>\r\n");
	assert_null(strstr(buf_cstr(&out), "Will-Retry-Until"));
	assert_has(&out, "Action: delayed\r\nStatus: 4.0.0\r\n");
	assert_null(strstr(buf_cstr(&out), "Diagnostic-Code"));
	/* two DSNs get two Message-IDs */
	const char *m1 = strstr(buf_cstr(&out), "Message-ID: ");
	const char *m2 = strstr(buf_cstr(&out2), "Message-ID: ");
	assert_non_null(m1);
	assert_non_null(m2);
	assert_true(strncmp(m1, m2, strcspn(m1, "\r")) != 0);
	assert_int_equal(run_check(&out, "--ret", "full", "--rcpts", "1", "--action", "delayed", NULL), 0);
	buf_free(&out);
	buf_free(&out2);
	buf_free(&err);
	fixture_done(&f);
}

/* a message that is only a header section, or empty */
static void
test_no_body(void **state)
{
	static const char *const contents[] = {"Subject: only headers\r\n", "", "\r\nbody without headers\r\n"};
	for (size_t i = 0; i < 3; i++) {
		fixture_t f;
		fixture_init(&f, contents[i], strlen(contents[i]));
		size_t idx = 0;
		dsn_params_t p = params(DSN_FAILURE);
		buf_t out = BUF_INIT, err = BUF_INIT;
		for (int ret = RET_NONE; ret <= RET_HDRS; ret++) {
			f.env.ret = ret;
			buf_reset(&out);
			assert_int_equal(dsn_build(&out, &f.env, &idx, 1, &p, f.fd, NULL, &err), 0);
			assert_lines_ok(&out);
			assert_int_equal(count(buf_cstr(&out), "--=_tern_UNIQUETOKEN42\r\n"), 3);
		}
		buf_free(&out);
		buf_free(&err);
		fixture_done(&f);
	}
}

/* issue #11.7: a success DSN for a local delivery does not show the
 * Maildir path (the recipient's reply keeps it, for the log) */
static void
test_success_hides_maildir(void **state)
{
	fixture_t f;
	fixture_init(&f, orig_msg, strlen(orig_msg));
	f.rcpt[0].status = RCPT_SENT;
	f.rcpt[0].relay = "local";
	f.rcpt[0].reply = "delivered to maildir /var/mail/tern/example.net/bob";
	f.rcpt[1].status = RCPT_SENT;
	f.rcpt[1].relay = "mx.example.net[192.0.2.25]:25";
	f.rcpt[1].reply = "250 2.0.0 Ok: queued as X1";
	size_t idx[] = {0, 1};
	dsn_params_t p = params(DSN_SUCCESS);
	buf_t out = BUF_INIT, err = BUF_INIT;
	assert_int_equal(dsn_build(&out, &f.env, idx, 2, &p, f.fd, NULL, &err), 0);
	const char *o = buf_cstr(&out);
	assert_null(strstr(o, "/var/mail"));
	assert_null(strstr(o, "maildir"));
	assert_non_null(strstr(o, "Diagnostic-Code: x-tern; delivered to mailbox\r\n"));
	assert_non_null(strstr(o, "<bob@example.net>: delivered to mailbox"));
	/* a relayed recipient still shows what the next server said */
	assert_non_null(strstr(o, "Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as X1"));
	buf_free(&out);
	buf_free(&err);
	fixture_done(&f);
}

int
main(void)
{
	if (access("tests/unit/check_dsn.py", R_OK) == 0) {
		snprintf(check_script, sizeof(check_script), "tests/unit/check_dsn.py");
	} else {
		/* __FILE__ is tests/unit/test_dsn.c relative to where it was built */
		const char *slash = strrchr(__FILE__, '/');
		snprintf(check_script, sizeof(check_script), "%.*s/check_dsn.py",
		    slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_of_reply),
		cmocka_unit_test(test_wanted),
		cmocka_unit_test(test_build_table),
		cmocka_unit_test(test_date_format),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_hostile_reply),
		cmocka_unit_test(test_boundary_in_content),
		cmocka_unit_test(test_headers_only_fallbacks),
		cmocka_unit_test(test_bad_header_section),
		cmocka_unit_test(test_huge_header_section),
		cmocka_unit_test(test_smtputf8),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_no_body),
		cmocka_unit_test(test_success_hides_maildir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
