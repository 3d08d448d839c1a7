/*
 * test_srs.c - unit tests for src/mailauth/srs.c and the SRS parts of
 * src/deliver/router.c and src/queue/record.c.
 *
 * srs_forward/srs_reverse: known answers made by postsrsd 1.10 (Debian 12,
 * libsrs2's algorithm; secret "tern-test-secret-0123456789", domain
 * srs.example.net, at unix time 1796675674, timestamp "J2"), round trips,
 * tampered hashes, every secret verifying but only the first signing,
 * expiry and stamps from the future, case changes, SRS1 chains, '=' and '+'
 * in local parts, over-long results, malformed input. The router: RCPT to
 * an SRS address (valid, tampered, expired, other local parts in the SRS
 * domain) and router_srs_envelope (who is rewritten, who is not). The
 * queue file: a recipient's sender survives encode/decode, and a file
 * without one reads as before. srs_secrets_load: the file's checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/envelope.h"
#include "deliver/router.h"
#include "lib/buf.h"
#include "mailauth/srs.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

#define NOW 1796675674 /* day 20794: stamp "J2" */
#define DAY 86400

static const char *const S1[] = {"tern-test-secret-0123456789"};
static const char *const S2[] = {"a-newer-secret-for-signing", "tern-test-secret-0123456789"};

static char *
fwd(const char *const *s, size_t n, const char *local, const char *domain, int64_t now,
    enum srs_status *st)
{
	buf_t b = BUF_INIT;
	*st = srs_forward(s, n, local, strlen(local), domain, now, &b);
	return buf_steal(&b);
}

/* reverse into "local@domain", or NULL with *st */
static char *
rev(const char *const *s, size_t n, const char *local, int64_t now, unsigned max_age,
    enum srs_status *st)
{
	buf_t l = BUF_INIT, d = BUF_INIT;
	*st = srs_reverse(s, n, local, strlen(local), now, max_age, &l, &d);
	char *r = NULL;
	if (*st == SRS_OK) {
		buf_putc(&l, '@');
		buf_append(&l, d.data, d.len);
		r = buf_steal(&l);
	}
	buf_free(&l);
	buf_free(&d);
	return r;
}

static void
test_known_answers(void **state)
{
	(void)state;
	static const struct {
		const char *local, *domain, *want;
	} v[] = {
		{"alice", "example.com", "SRS0=jYYv=J2=example.com=alice"},
		{"Bob+x=y", "Example.COM", "SRS0=tbRC=J2=Example.COM=Bob+x=y"},
		{"Bob+x=y", "example.com", "SRS0=tbRC=J2=example.com=Bob+x=y"}, /* case: same hash */
		/* another forwarder's SRS0: SRS1 with its domain */
		{"SRS0=abcd=TT=other.org=joe", "fwd.example", "SRS1=0KSW=fwd.example==abcd=TT=other.org=joe"},
		/* an SRS1: the first forwarder kept, signed afresh */
		{"SRS1=XXXX=first.example==HHHH=TT=orig.example=joe", "fwd2.example",
		    "SRS1=Q6ii=first.example==HHHH=TT=orig.example=joe"},
	};
	char ts[3];
	srs_timestamp(NOW, ts);
	assert_string_equal(ts, "J2");
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		enum srs_status st;
		char *r = fwd(S1, 1, v[i].local, v[i].domain, NOW, &st);
		assert_int_equal(st, SRS_OK);
		assert_string_equal(r, v[i].want);
		free(r);
	}
	/* and postsrsd's addresses verify here */
	enum srs_status st;
	char *r = rev(S1, 1, "SRS0=jYYv=J2=example.com=alice", NOW, 21, &st);
	assert_string_equal(r, "alice@example.com");
	free(r);
	r = rev(S1, 1, "SRS1=0KSW=fwd.example==abcd=TT=other.org=joe", NOW, 21, &st);
	assert_string_equal(r, "SRS0=abcd=TT=other.org=joe@fwd.example");
	free(r);
}

static void
test_round_trip(void **state)
{
	(void)state;
	static const char *const locals[] = {
		"alice", "a=b=c", "x+tag", "+", "=", "john doe", "\"odd\"", "a.b-c_d", "SRSX=1",
		"srs0", "SRS0", "SRS0x", "ü-utf8",
	};
	for (size_t i = 0; i < sizeof locals / sizeof locals[0]; i++) {
		enum srs_status st;
		char *f = fwd(S1, 1, locals[i], "example.org", NOW, &st);
		assert_int_equal(st, SRS_OK);
		assert_true(srs_is_srs(f, strlen(f)));
		char *r = rev(S1, 1, f, NOW + 3 * DAY, 21, &st);
		assert_int_equal(st, SRS_OK);
		char want[128];
		snprintf(want, sizeof want, "%s@example.org", locals[i]);
		assert_string_equal(r, want);
		free(r);
		free(f);
	}
}

static void
test_tampered(void **state)
{
	(void)state;
	enum srs_status st;
	char *f = fwd(S1, 1, "alice", "example.com", NOW, &st);
	/* any other field changed */
	static const char *const bad[] = {
		"SRS0=jYYw=J2=example.com=alice", "SRS0=jYYv=J3=example.com=alice",
		"SRS0=jYYv=J2=example.org=alice", "SRS0=jYYv=J2=example.com=alicf",
		"SRS0=jYY=J2=example.com=alice", "SRS0=jYYvv=J2=example.com=alice",
		"SRS0=jYYv=J2=example.com=alice=", "SRS1=jYYv=J2=example.com=alice",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *r = rev(S1, 1, bad[i], NOW, 21, &st);
		assert_null(r);
		assert_int_equal(st, SRS_BAD_HASH);
	}
	/* another secret */
	static const char *const other[] = {"some-other-secret-entirely"};
	assert_null(rev(other, 1, f, NOW, 21, &st));
	assert_int_equal(st, SRS_BAD_HASH);
	/* no secret at all */
	assert_null(rev(NULL, 0, f, NOW, 21, &st));
	assert_int_equal(st, SRS_NO_SECRET);
	free(f);
}

static void
test_rotation(void **state)
{
	(void)state;
	enum srs_status st;
	/* the first signs: made with S2 it is not what S1 makes */
	char *a = fwd(S2, 2, "alice", "example.com", NOW, &st);
	assert_string_not_equal(a, "SRS0=jYYv=J2=example.com=alice");
	/* every secret verifies */
	char *r = rev(S2, 2, "SRS0=jYYv=J2=example.com=alice", NOW, 21, &st);
	assert_string_equal(r, "alice@example.com");
	free(r);
	r = rev(S2, 2, a, NOW, 21, &st);
	assert_string_equal(r, "alice@example.com");
	free(r);
	/* the old secret alone does not verify the new one's */
	assert_null(rev(S1, 1, a, NOW, 21, &st));
	assert_int_equal(st, SRS_BAD_HASH);
	free(a);
}

static void
test_expiry(void **state)
{
	(void)state;
	enum srs_status st;
	const char *a = "SRS0=jYYv=J2=example.com=alice";
	char *r = rev(S1, 1, a, NOW + 21 * DAY, 21, &st);
	assert_int_equal(st, SRS_OK);
	free(r);
	assert_null(rev(S1, 1, a, NOW + 22 * DAY, 21, &st));
	assert_int_equal(st, SRS_EXPIRED);
	r = rev(S1, 1, a, NOW + 22 * DAY, 30, &st); /* srs_max_age longer */
	assert_int_equal(st, SRS_OK);
	free(r);
	/* a stamp from tomorrow is 1023 days old */
	assert_null(rev(S1, 1, a, NOW - DAY, 21, &st));
	assert_int_equal(st, SRS_EXPIRED);
	/* across the wrap of the 1024-day cycle */
	int64_t wrap = (int64_t)1024 * DAY * 20; /* day 20480: stamp AA */
	char *f = fwd(S1, 1, "w", "example.com", wrap - DAY, &st);
	assert_non_null(strstr(f, "=77="));
	r = rev(S1, 1, f, wrap + 2 * DAY, 21, &st);
	assert_int_equal(st, SRS_OK);
	free(r);
	free(f);
}

static void
test_case(void **state)
{
	(void)state;
	enum srs_status st;
	/* a hop that changed the case of the whole local part */
	char *r = rev(S1, 1, "srs0=jyyv=j2=EXAMPLE.COM=ALICE", NOW, 21, &st);
	assert_int_equal(st, SRS_OK);
	assert_string_equal(r, "ALICE@EXAMPLE.COM");
	free(r);
	r = rev(S1, 1, "SRS0=JYYV=J2=example.com=alice", NOW, 21, &st);
	assert_int_equal(st, SRS_OK);
	free(r);
	/* the tag's separator may be any of libsrs2's */
	r = rev(S1, 1, "SRS0+jYYv=J2=example.com=alice", NOW, 21, &st);
	assert_int_equal(st, SRS_OK);
	free(r);
}

static void
test_srs1_chain(void **state)
{
	(void)state;
	/* A forwards alice@example.com (SRS0 at a.example); B forwards it on
	 * (SRS1 at b.example); C forwards again (SRS1, still naming A) */
	static const char *const SA[] = {"secret-of-forwarder-a-1234"};
	static const char *const SB[] = {"secret-of-forwarder-b-1234"};
	static const char *const SC[] = {"secret-of-forwarder-c-1234"};
	enum srs_status st;
	char *a = fwd(SA, 1, "alice", "example.com", NOW, &st);
	char *b = fwd(SB, 1, a, "a.example", NOW, &st);
	assert_int_equal(st, SRS_OK);
	assert_memory_equal(b, "SRS1=", 5);
	assert_non_null(strstr(b, "=a.example=="));
	char *c = fwd(SC, 1, b, "b.example", NOW, &st);
	assert_int_equal(st, SRS_OK);
	assert_non_null(strstr(c, "=a.example=="));
	/* the bounce: C sends it to A directly (SRS1 names A) */
	char *r = rev(SC, 1, c, NOW, 21, &st);
	assert_int_equal(st, SRS_OK);
	char want[200];
	snprintf(want, sizeof want, "%s@a.example", a);
	assert_string_equal(r, want);
	free(r);
	/* B's SRS1 verifies only with B's secret */
	assert_null(rev(SA, 1, b, NOW, 21, &st));
	r = rev(SB, 1, b, NOW, 21, &st);
	assert_string_equal(r, want);
	free(r);
	/* and A decodes its SRS0 */
	r = rev(SA, 1, a, NOW, 21, &st);
	assert_string_equal(r, "alice@example.com");
	free(r);
	free(a);
	free(b);
	free(c);
}

static void
test_limits_and_syntax(void **state)
{
	(void)state;
	enum srs_status st;
	/* 14 + domain + local octets: 64 fits, 65 does not (RFC 5321 4.5.3.1.1) */
	char local[64];
	memset(local, 'x', sizeof local);
	local[64 - 14 - 11] = '\0'; /* domain "example.com" is 11 */
	char *f = fwd(S1, 1, local, "example.com", NOW, &st);
	assert_int_equal(st, SRS_OK);
	assert_int_equal(strlen(f), 64);
	free(f);
	strcat(local, "y");
	f = fwd(S1, 1, local, "example.com", NOW, &st);
	assert_int_equal(st, SRS_TOO_LONG);
	free(f);
	f = fwd(NULL, 0, "a", "example.com", NOW, &st);
	assert_int_equal(st, SRS_NO_SECRET);
	free(f);

	static const struct {
		const char *in;
		enum srs_status want;
	} v[] = {
		{"alice", SRS_NOT_SRS}, {"SRS0", SRS_NOT_SRS}, {"SRS2=a=b=c=d", SRS_NOT_SRS},
		{"SRS0x", SRS_NOT_SRS}, {"SRS0=", SRS_BAD_SYNTAX}, {"SRS0==J2=example.com=a", SRS_BAD_SYNTAX},
		{"SRS0=jYYv=J2=example.com=", SRS_BAD_SYNTAX}, {"SRS0=jYYv=J2=example.com", SRS_BAD_SYNTAX},
		{"SRS0=jYYv==example.com=a", SRS_BAD_SYNTAX}, {"SRS0=jYYv=J=example.com=a", SRS_BAD_SYNTAX},
		{"SRS0=jYYv=J1=example.com=a", SRS_BAD_SYNTAX}, {"SRS0=jYYv=J2==a", SRS_BAD_SYNTAX},
		{"SRS1=", SRS_BAD_SYNTAX}, {"SRS1=abcd", SRS_BAD_SYNTAX}, {"SRS1=abcd=host", SRS_BAD_SYNTAX},
		{"SRS1=abcd=host=", SRS_BAD_SYNTAX}, {"SRS1==host==x", SRS_BAD_SYNTAX},
		{"SRS1=abcd==x", SRS_BAD_SYNTAX},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char *r = rev(S1, 1, v[i].in, NOW, 21, &st);
		assert_null(r);
		if (st != v[i].want)
			fail_msg("%s: %d, want %d", v[i].in, st, v[i].want);
	}
}

/* ------------------------------------------------------------------ */
/* the router and the queue file                                       */

static char dir[] = "/tmp/tern-test-srs-XXXXXX";
static config_t *cfg;
static tables_t *tabs;

static void
write_file(const char *name, const char *text, mode_t mode)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	write_file("mailboxes", "alice@example.net\nbob@example.net\n", 0644);
	write_file("aliases", "fwd: someone@remote.test\nboth: alice, other@remote.test\n"
	    "postmaster: alice\n", 0644);
	write_file("virtual", "v@example.org other@remote.test\n", 0644);
	write_file("secrets", "tern-test-secret-0123456789\n", 0600);
	char text[1024];
	snprintf(text, sizeof text,
	    "hostname = mx.example.net\nlocal_domains = example.net\nvirtual_domains = example.org\n"
	    "mailboxes = %s/mailboxes\naliases = %s/aliases\nvirtual = %s/virtual\n"
	    "srs_domain = SRS.example.NET\nsrs_secret_file = %s/secrets\n"
	    "srs_exclude_domains = partner.test\n", dir, dir, dir, dir);
	buf_t e = BUF_INIT;
	cfg = config_parse_buf("tern.conf", text, strlen(text), &e);
	if (cfg == NULL) {
		fprintf(stderr, "%s", buf_cstr(&e));
		return -1;
	}
	tabs = tables_load(cfg, &e);
	if (tabs == NULL || srs_secrets_load(cfg, &tabs->srs_secrets, &tabs->nsrs_secrets, &e) < 0) {
		fprintf(stderr, "%s", buf_cstr(&e));
		return -1;
	}
	buf_free(&e);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	tables_free(tabs);
	config_free(cfg);
	static const char *names[] = {"mailboxes", "aliases", "virtual", "secrets"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char path[256];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
	return 0;
}

/* router_expand of one address: the reply line, or "=" and the finals */
static void
expand_is(const char *addr, bool relay_ok, const char *want)
{
	addr_t a;
	size_t used;
	const char *err;
	assert_int_equal(addr_parse(addr, strlen(addr), ADDR_NO_BRACKETS, &a, &used, &err), 0);
	dest_list_t d;
	buf_t got = BUF_INIT;
	if (router_expand(cfg, tabs, &a, relay_ok, &d, &err) == ROUTER_OK) {
		buf_puts(&got, "=");
		for (size_t i = 0; i < d.n; i++)
			buf_printf(&got, "%s%s", i ? "," : "", d.addrs[i]);
		dest_list_free(&d);
	} else {
		buf_puts(&got, err);
	}
	if (strcmp(buf_cstr(&got), want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", addr, buf_cstr(&got), want);
	buf_free(&got);
	addr_free(&a);
}

static void
test_router_reverse(void **state)
{
	(void)state;
	enum srs_status st;
	int64_t now = (int64_t)time(NULL);
	char *l = fwd((const char *const *)tabs->srs_secrets, 1, "joe", "far.test", now, &st);
	char addr[200], want[200];
	snprintf(addr, sizeof addr, "%s@srs.example.net", l);
	/* a bounce to it goes to the original sender, from anyone */
	expand_is(addr, false, "=joe@far.test");
	/* in any case (the local part comes back as the bounce wrote it) */
	for (char *p = addr; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	expand_is(addr, false, "=JOE@far.test");
	/* tampered */
	snprintf(addr, sizeof addr, "%s@srs.example.net", l);
	addr[5] = addr[5] == 'A' ? 'B' : 'A';
	expand_is(addr, false, "550 5.1.1 Recipient address rejected: invalid SRS address");
	/* expired */
	char *old = fwd((const char *const *)tabs->srs_secrets, 1, "joe", "far.test", now - 30 * DAY,
	    &st);
	snprintf(addr, sizeof addr, "%s@srs.example.net", old);
	expand_is(addr, false, "550 5.1.1 Recipient address rejected: expired SRS address");
	expand_is("SRS0=xx@srs.example.net", false,
	    "550 5.1.1 Recipient address rejected: malformed SRS address");
	/* the SRS domain holds nothing else, even for a relay client, but the
	 * postmaster (RFC 5321 4.5.1): the first local domain's */
	expand_is("someone@srs.example.net", true,
	    "550 5.1.1 Recipient address rejected: user unknown");
	expand_is("PostMaster@srs.example.net", false, "=alice@example.net");
	/* an SRS1 address names the first forwarder */
	char *s1 = fwd((const char *const *)tabs->srs_secrets, 1, "SRS0=abcd=TT=o.test=x", "a.test",
	    now, &st);
	snprintf(addr, sizeof addr, "%s@srs.example.net", s1);
	expand_is(addr, false, "=SRS0=abcd=TT=o.test=x@a.test");
	/* a quoted local part comes back quoted */
	char *q = fwd((const char *const *)tabs->srs_secrets, 1, "john doe", "far.test", now, &st);
	snprintf(addr, sizeof addr, "\"%s\"@srs.example.net", q);
	snprintf(want, sizeof want, "=\"john doe\"@far.test");
	expand_is(addr, false, want);
	/* other domains are unchanged */
	expand_is("SRS0=abcd=TT=o.test=x@example.net", false,
	    "550 5.1.1 Recipient address rejected: user unknown");
	expand_is("fwd@example.net", false, "=someone@remote.test");
	free(l);
	free(old);
	free(s1);
	free(q);
}

static envelope_t *
env_with(const char *sender)
{
	envelope_t *e = envelope_new();
	e->sender = xstrdup(sender);
	return e;
}

static void
test_router_envelope(void **state)
{
	(void)state;
	int64_t now = NOW;
	/* alias to remote, alias to local, relayed, virtual to remote, the same address quoted */
	envelope_t *e = env_with("joe@far.test");
	envelope_add_rcpt(e, "someone@remote.test", "fwd@example.net", NULL, 0);
	envelope_add_rcpt(e, "alice@example.net", "both@example.net", NULL, 0);
	envelope_add_rcpt(e, "other@remote.test", "both@example.net", NULL, 0);
	envelope_add_rcpt(e, "x@relayed.test", NULL, NULL, 0);
	envelope_add_rcpt(e, "y@relayed.test", "\"y\"@relayed.test", NULL, 0);
	envelope_add_rcpt(e, "other@remote.test", "v@example.org", NULL, 0);
	assert_int_equal(router_srs_envelope(cfg, tabs, e, now), 3);
	enum srs_status st;
	char *l = fwd(S1, 1, "joe", "far.test", now, &st);
	char want[200];
	snprintf(want, sizeof want, "%s@srs.example.net", l);
	free(l);
	assert_string_equal(e->rcpt[0].sender, want);
	assert_null(e->rcpt[1].sender);
	assert_string_equal(e->rcpt[2].sender, want);
	assert_null(e->rcpt[3].sender);
	assert_null(e->rcpt[4].sender);
	assert_string_equal(e->rcpt[5].sender, want);

	/* the queue file keeps it; the recipients without one read as before */
	memcpy(e->qid, "0123456789ABCDEF", QID_SIZE);
	e->qid[QID_LEN] = '\0';
	buf_t b = BUF_INIT, err = BUF_INIT;
	queue_encode(e, "x\r\n", 3, &b);
	envelope_t *d = NULL;
	if (queue_decode(b.data, b.len, &d, &err) < 0)
		fail_msg("%s", buf_cstr(&err));
	assert_string_equal(d->rcpt[0].sender, want);
	assert_null(d->rcpt[1].sender);
	assert_string_equal(d->rcpt[5].sender, want);
	envelope_free(d);
	buf_reset(&b);

	/* not rewritten: <>, our own domains, excluded, a changed sender
	 * clears what was set */
	static const char *const keep[] = {"", "me@example.net", "me@example.org",
	    "x@srs.example.net", "x@partner.test", "Postmaster"};
	for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
		free(e->sender);
		e->sender = xstrdup(keep[i]);
		assert_int_equal(router_srs_envelope(cfg, tabs, e, now), 0);
		for (size_t k = 0; k < e->nrcpt; k++)
			assert_null(e->rcpt[k].sender);
	}
	/* an SRS sender of another forwarder becomes SRS1 */
	free(e->sender);
	e->sender = xstrdup("SRS0=abcd=TT=o.test=x@a.test");
	assert_int_equal(router_srs_envelope(cfg, tabs, e, now), 3);
	assert_memory_equal(e->rcpt[0].sender, "SRS1=", 5);
	/* too long: the message keeps its sender */
	free(e->sender);
	e->sender = xstrdup("a-rather-long-local-part-for-srs@a-long-domain.example");
	assert_int_equal(router_srs_envelope(cfg, tabs, e, now), 0);
	assert_null(e->rcpt[0].sender);
	/* without a secret nothing is rewritten */
	free(e->sender);
	e->sender = xstrdup("joe@far.test");
	size_t n = tabs->nsrs_secrets;
	tabs->nsrs_secrets = 0;
	assert_int_equal(router_srs_envelope(cfg, tabs, e, now), 0);
	tabs->nsrs_secrets = n;
	envelope_free(e);
	buf_free(&b);
	buf_free(&err);
}

static void
test_secrets_file(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		mode_t mode;
		size_t n;      /* secrets, or 0 for a refusal */
		const char *why; /* in the message */
	} v[] = {
		{"first-secret-0123456789\r\n\nsecond-secret-0123456789\n", 0600, 2, NULL},
		{"no-newline-at-the-end-0123", 0600, 1, NULL},
		{"", 0600, 0, "holds no secret"},
		{"\n\n", 0600, 0, "holds no secret"},
		{"first-secret-0123456789\nshort\n", 0600, 0, "line 2 is shorter than 16"},
		{"first-secret-0123456789\n", 0644, 0, "readable by group or others"},
		{"first-secret-0123456789\n", 0640, 0, "readable by group or others"},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		write_file("secrets", v[i].text, v[i].mode);
		char **s;
		size_t n;
		buf_t err = BUF_INIT;
		int r = srs_secrets_load(cfg, &s, &n, &err);
		if (v[i].n) {
			if (r < 0)
				fail_msg("case %zu: %s", i, buf_cstr(&err));
			assert_int_equal(n, v[i].n);
			assert_null(s[n]);
			assert_string_equal(s[0], i == 0 ? "first-secret-0123456789" :
			    "no-newline-at-the-end-0123");
			srs_secrets_free(s, n);
		} else {
			assert_int_equal(r, -1);
			if (strstr(buf_cstr(&err), v[i].why) == NULL ||
			    strncmp(buf_cstr(&err), "srs_secret_file ", 16) != 0)
				fail_msg("case %zu: %s", i, buf_cstr(&err));
		}
		buf_free(&err);
	}
	write_file("secrets", "tern-test-secret-0123456789\n", 0600);
}

static void
test_config(void **state)
{
	(void)state;
	const char *text = "hostname = h.example\nsrs_domain = srs.example\n";
	buf_t e = BUF_INIT;
	config_t *c = config_parse_buf("t.conf", text, strlen(text), &e);
	assert_null(c);
	assert_non_null(strstr(buf_cstr(&e), "t.conf:2: srs_domain is set but srs_secret_file is not"));
	buf_reset(&e);
	text = "hostname = h.example\nsrs_max_age = 2000d\n";
	c = config_parse_buf("t.conf", text, strlen(text), &e);
	assert_null(c);
	assert_non_null(strstr(buf_cstr(&e), "t.conf:2: srs_max_age"));
	buf_reset(&e);
	/* off by default */
	text = "hostname = h.example\n";
	c = config_parse_buf("t.conf", text, strlen(text), &e);
	assert_non_null(c);
	assert_null(c->srs_domain);
	assert_int_equal(c->srs_max_age, 21 * DAY);
	config_free(c);
	buf_free(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answers),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_expiry),
		cmocka_unit_test(test_case),
		cmocka_unit_test(test_srs1_chain),
		cmocka_unit_test(test_limits_and_syntax),
		cmocka_unit_test(test_router_reverse),
		cmocka_unit_test(test_router_envelope),
		cmocka_unit_test(test_secrets_file),
		cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
