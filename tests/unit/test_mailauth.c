/*
 * test_mailauth.c - src/mailauth/mailauth.c, the inbound stage, with the
 * real SPF, DKIM and DMARC code against tests/unit/dns_server.py serving
 * tests/unit/mailauth.zone.in (with a DKIM key made here): the verdict's
 * Authentication-Results field, each action (accept; 550 5.7.1 for an
 * enforced p=reject; 550 5.7.23 for an SPF fail when configured, unless
 * DMARC passes; 451 4.7.24 for an SPF temperror when configured; hold for
 * an enforced quarantine), the null sender's HELO identity, the deadline
 * (a name that never answers), mailauth_free() from the callback and
 * before it, the content fed in pieces of every size, and the removal of
 * forged fields with our authserv-id.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "mailauth/dkim.h"
#include "mailauth/mailauth.h"
#include "lib/log.h"

static char server_addr[64];
static pid_t server_pid = -1;
static int server_stdin = -1;
static char tmpdir[] = "/tmp/test_mailauth.XXXXXX";
static char key_path[256], zone_path[256];
static dkim_key_t *key;

/* An RSA-2048 key: the PEM file for dkim_key_load, the p= for the zone. */
static int
make_key(buf_t *p64)
{
	EVP_PKEY *pk = EVP_RSA_gen(2048);
	if (!pk)
		return -1;
	FILE *f = fopen(key_path, "w");
	if (!f || !PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL))
		return -1;
	fclose(f);
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pk, &der);
	if (n <= 0)
		return -1;
	unsigned char *b = malloc(4 * ((size_t)n + 2) / 3 + 4);
	int bn = EVP_EncodeBlock(b, der, n);
	buf_append(p64, b, (size_t)bn);
	free(b);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);
	return 0;
}

static int
write_zone(const char *p64)
{
	FILE *in = fopen("tests/unit/mailauth.zone.in", "r"), *out = fopen(zone_path, "w");
	if (!in || !out)
		return -1;
	char line[1024];
	while (fgets(line, sizeof line, in)) {
		char *at = strstr(line, "@DKIMKEY@");
		if (!at) {
			fputs(line, out);
			continue;
		}
		fwrite(line, 1, (size_t)(at - line), out);
		/* "v=DKIM1; k=rsa; p=..." in strings of at most 200 */
		char rec[2048];
		snprintf(rec, sizeof rec, "v=DKIM1; k=rsa; p=%s", p64);
		for (size_t i = 0; i < strlen(rec); i += 200)
			fprintf(out, "\"%.200s\" ", rec + i);
		fputs("\n", out);
	}
	fclose(in);
	fclose(out);
	return 0;
}

static int
group_setup(void **state)
{
	log_init("test_mailauth", 0, 0);
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(key_path, sizeof key_path, "%s/key.pem", tmpdir);
	snprintf(zone_path, sizeof zone_path, "%s/zone", tmpdir);
	buf_t p64 = BUF_INIT, err = BUF_INIT;
	if (make_key(&p64) < 0 || write_zone(buf_cstr(&p64)) < 0)
		return -1;
	buf_free(&p64);
	key = dkim_key_load(key_path, &err);
	buf_free(&err);
	if (!key)
		return -1;
	int out[2], in[2];
	if (pipe(out) < 0 || pipe(in) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		execl("/usr/bin/python3", "python3", "tests/unit/dns_server.py", "--zone", zone_path,
		    "--servfail", "temp.example", "--drop", "slow.example", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	server_pid = pid;
	server_stdin = in[1];
	char line[32];
	size_t n = 0;
	struct pollfd pfd = {.fd = out[0], .events = POLLIN};
	while (n < sizeof line - 1) {
		if (poll(&pfd, 1, 15000) <= 0)
			break;
		if (read(out[0], line + n, 1) <= 0 || line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	close(out[0]);
	int port = atoi(line);
	if (port <= 0 || port > 65535)
		return -1;
	snprintf(server_addr, sizeof server_addr, "127.0.0.1@%d", port);
	return 0;
}

static int
group_teardown(void **state)
{
	if (server_pid > 0) {
		close(server_stdin);
		kill(server_pid, SIGTERM);
		int st;
		waitpid(server_pid, &st, 0);
	}
	dkim_key_free(key);
	unlink(key_path);
	unlink(zone_path);
	rmdir(tmpdir);
	mailauth_shutdown();
	return 0;
}

/* ---- one message ---- */

typedef struct got {
	int calls;
	enum mailauth_action action;
	char reply[256], header[2048], hold[256];
	bool free_in_cb;
	mailauth_t *m;
} got_t;

static void
on_verdict(void *arg, const mailauth_verdict_t *v)
{
	got_t *g = arg;
	g->calls++;
	g->action = v->action;
	snprintf(g->reply, sizeof g->reply, "%s", v->reply ? v->reply : "");
	snprintf(g->header, sizeof g->header, "%s", v->header ? v->header : "");
	snprintf(g->hold, sizeof g->hold, "%s", v->hold_reason ? v->hold_reason : "");
	if (g->free_in_cb) {
		mailauth_free(g->m);
		g->m = NULL;
	}
}

static config_t *
cfg(const char *extra)
{
	char text[2048];
	snprintf(text, sizeof text,
	    "hostname = mx.test.example\ndns_servers = %s\ndns_timeout = 2s\n"
	    "psl_file = tests/unit/dmarc_psl.dat\n%s\n",
	    server_addr, extra);
	buf_t err = BUF_INIT;
	config_t *c = config_parse_buf("test.conf", text, strlen(text), &err);
	if (!c)
		fail_msg("config: %s", buf_cstr(&err));
	buf_free(&err);
	assert_int_equal(mailauth_config_check(c, &err), 0);
	return c;
}

/* A message From from, signed for d= good.example when sign. */
static char *
message(const char *from, bool sign, const char *extra_headers)
{
	buf_t m = BUF_INIT, sig = BUF_INIT, err = BUF_INIT;
	buf_printf(&m, "Received: from client by mx.test.example; Mon, 7 Dec 2026 20:00:00 +0000\r\n"
		       "%sFrom: Someone <%s>\r\nTo: alice@localhost\r\nSubject: test\r\n"
		       "Date: Mon, 7 Dec 2026 20:00:00 +0000\r\nMessage-ID: <1@x.example>\r\n\r\n"
		       "Hello.\r\n",
	    extra_headers ? extra_headers : "", from);
	if (sign) {
		assert_int_equal(
		    dkim_sign(key, "good.example", "sel", m.data, m.len, time(NULL), &sig, &err), 0);
		buf_append(&sig, m.data, m.len);
		buf_free(&m);
		m = sig;
	}
	buf_free(&err);
	return buf_steal(&m);
}

/* Run one message through the stage; the content fed in pieces of
 * `piece` octets. */
static void
check(const char *extra, const char *helo, const char *sender, const char *msg, size_t piece,
    got_t *g)
{
	config_t *c = cfg(extra);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, "192.0.2.7", &sa.sin_addr);
	mailauth_client_t cl = {.sa = (struct sockaddr *)&sa, .ip = "192.0.2.7", .helo = helo,
	    .sid = "S1", .qid = "QID1"};
	bool fic = g->free_in_cb;
	memset(g, 0, sizeof *g);
	g->free_in_cb = fic;
	assert_true(mailauth_inbound_wanted(c, true, false));
	assert_false(mailauth_inbound_wanted(c, true, true));
	assert_false(mailauth_inbound_wanted(c, false, false));
	mailauth_t *m = mailauth_new(c, &cl);
	assert_non_null(m);
	g->m = m;
	config_free(c); /* mailauth_new() copied what it keeps */
	mailauth_mail(m, sender);
	size_t n = strlen(msg);
	for (size_t i = 0; i < n; i += piece)
		mailauth_data(m, msg + i, n - i < piece ? n - i : piece);
	mailauth_eom(m, on_verdict, g);
	assert_int_equal(g->calls, 0); /* never from inside */
	uint64_t end = uv_hrtime() + 20000000000ull;
	while (!g->calls && uv_hrtime() < end)
		uv_run(uv_default_loop(), UV_RUN_ONCE);
	assert_int_equal(g->calls, 1);
	if (g->m)
		mailauth_free(g->m);
	uv_run(uv_default_loop(), UV_RUN_NOWAIT);
}

static void
has(const got_t *g, const char *s)
{
	if (!strstr(g->header, s))
		fail_msg("\"%s\" not in %s", s, g->header);
}

static void
test_all_pass(void **state)
{
	char *msg = message("alice@good.example", true, NULL);
	static const size_t pieces[] = {1, 7, 64, 100000};
	for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
		got_t g = {0};
		check("", "helo.example", "alice@good.example", msg, pieces[i], &g);
		assert_int_equal(g.action, MAILAUTH_CONTINUE);
		assert_true(strncmp(g.header, "Authentication-Results: mx.test.example;\r\n", 42) == 0);
		has(&g, "spf=pass smtp.mailfrom=alice@good.example");
		has(&g, "dkim=pass header.d=good.example");
		has(&g, "header.s=sel");
		has(&g, "dmarc=pass (p=reject dis=none) header.from=good.example");
		has(&g, ";\r\n\tarc=none;"); /* no ARC set (RFC 8617) */
		assert_true(strlen(g.header) > 2 &&
		    strcmp(g.header + strlen(g.header) - 2, "\r\n") == 0);
	}
	free(msg);
}

static void
test_dmarc_reject(void **state)
{
	/* From good.example, sent from other.example's SPF-passing host,
	 * not signed: DMARC fails; enforcement refuses */
	char *msg = message("ceo@good.example", false, NULL);
	got_t g = {0};
	check("dmarc_enforce = yes", "helo.example", "bounce@other.example", msg, 100, &g);
	assert_int_equal(g.action, MAILAUTH_REJECT);
	assert_true(strncmp(g.reply, "550 5.7.1 ", 10) == 0);
	has(&g, "dmarc=fail (p=reject dis=reject) header.from=good.example");
	/* without: tagged only */
	check("", "helo.example", "bounce@other.example", msg, 100, &g);
	assert_int_equal(g.action, MAILAUTH_CONTINUE);
	has(&g, "dmarc=fail");
	/* a subdomain: sp=quarantine, held when so configured */
	free(msg);
	msg = message("ceo@news.good.example", false, NULL);
	check("dmarc_enforce = yes\ndmarc_quarantine_action = hold", "helo.example",
	    "bounce@other.example", msg, 100, &g);
	assert_int_equal(g.action, MAILAUTH_HOLD);
	assert_true(strstr(g.hold, "news.good.example") != NULL);
	has(&g, "dmarc=fail (p=quarantine dis=quarantine)");
	check("dmarc_enforce = yes", "helo.example", "bounce@other.example", msg, 100, &g);
	assert_int_equal(g.action, MAILAUTH_CONTINUE);
	free(msg);
}

static void
test_spf_actions(void **state)
{
	char *msg = message("x@fail.example", false, NULL);
	got_t g = {0};
	check("spf_fail_action = reject", "helo.example", "x@fail.example", msg, 100, &g);
	assert_int_equal(g.action, MAILAUTH_REJECT);
	assert_true(strncmp(g.reply, "550 5.7.23 ", 11) == 0);
	has(&g, "spf=fail smtp.mailfrom=x@fail.example");
	check("", "helo.example", "x@fail.example", msg, 100, &g);
	assert_int_equal(g.action, MAILAUTH_CONTINUE);
	free(msg);
	/* DMARC passes through the aligned DKIM signature: not refused */
	msg = message("alice@good.example", true, NULL);
	check("spf_fail_action = reject", "helo.example", "x@fail.example", msg, 100, &g);
	assert_int_equal(g.action, MAILAUTH_CONTINUE);
	has(&g, "dmarc=pass");
	free(msg);
	/* temperror: deferred when configured */
	msg = message("x@temp.example", false, NULL);
	check("spf_temperror_action = defer", "helo.example", "x@temp.example", msg, 100, &g);
	assert_int_equal(g.action, MAILAUTH_TEMPFAIL);
	assert_true(strncmp(g.reply, "451 4.7.24 ", 11) == 0);
	has(&g, "spf=temperror");
	free(msg);
}

static void
test_null_sender_and_helo(void **state)
{
	char *msg = message("mailer-daemon@helo.example", false, NULL);
	got_t g = {0};
	check("spf_helo_check = yes", "helo.example", "", msg, 100, &g);
	has(&g, "spf=pass smtp.mailfrom=postmaster@helo.example");
	has(&g, "spf=pass smtp.helo=helo.example");
	/* an address literal: nothing to check */
	check("", "[192.0.2.7]", "", msg, 100, &g);
	has(&g, "spf=none");
	free(msg);
}

static void
test_deadline_and_free(void **state)
{
	char *msg = message("x@slow.example", false, NULL);
	got_t g = {0};
	uint64_t t0 = uv_hrtime();
	check("mailauth_timeout = 1s", "helo.example", "x@slow.example", msg, 100, &g);
	assert_true(uv_hrtime() - t0 < 5000000000ull);
	has(&g, "spf=temperror");
	/* freed from the callback */
	g.free_in_cb = true;
	check("", "helo.example", "alice@good.example", msg, 100, &g);
	assert_null(g.m);
	free(msg);
	/* freed before any answer: no callback */
	config_t *c = cfg("");
	mailauth_client_t cl = {.ip = "192.0.2.7", .helo = "helo.example", .sid = "S", .qid = "Q"};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	cl.sa = (struct sockaddr *)&sa;
	mailauth_t *m = mailauth_new(c, &cl);
	mailauth_mail(m, "a@good.example");
	mailauth_data(m, "From: a@good.example\r\n\r\n", 24);
	memset(&g, 0, sizeof g);
	mailauth_eom(m, on_verdict, &g);
	mailauth_free(m);
	mailauth_free(NULL);
	uv_run(uv_default_loop(), UV_RUN_NOWAIT);
	assert_int_equal(g.calls, 0);
	/* everything off: nothing to do */
	config_t *off = cfg("spf_check = no\ndkim_verify = no\ndmarc_check = no\narc_verify = no");
	assert_null(mailauth_new(off, &cl));
	assert_false(mailauth_inbound_wanted(off, true, false));
	config_free(off);
	config_free(c);
}

static void
test_strip_ours(void **state)
{
	config_t *c = cfg("authserv_id = mx.ours.example");
	buf_t b = BUF_INIT;
	buf_puts(&b, "Authentication-Results: MX.OURS.EXAMPLE; dkim=pass\r\n"
		     "Authentication-Results: mx.other.example; dkim=pass\r\nSubject: x\r\n\r\nbody");
	assert_int_equal(mailauth_strip_ours(c, &b), 1);
	assert_string_equal(buf_cstr(&b),
	    "Authentication-Results: mx.other.example; dkim=pass\r\nSubject: x\r\n\r\nbody");
	buf_free(&b);
	config_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_all_pass),
	    cmocka_unit_test(test_dmarc_reject),
	    cmocka_unit_test(test_spf_actions),
	    cmocka_unit_test(test_null_sender_and_helo),
	    cmocka_unit_test(test_deadline_and_free),
	    cmocka_unit_test(test_strip_ours),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
