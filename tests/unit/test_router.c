/*
 * test_router.c - unit tests for src/deliver/router.c.
 *
 * One configuration and three tables written under a mkdtemp() directory,
 * then table driven: router_expand() (mailboxes, +detail, aliases,
 * catch-all, virtual, self-references, loops and the depth limit,
 * duplicates, relay denied, aliases to remote domains), router_final()
 * (Maildir paths and mailbox keys) and tables_load() errors, each of which
 * must be "file:line: message".
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
#include <unistd.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/table.h"
#include "deliver/router.h"
#include "lib/buf.h"

static char dir[] = "/tmp/tern-test-router-XXXXXX";

static void
write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
remove_files(void)
{
	static const char *names[] = {"tern.conf", "mailboxes", "aliases", "virtual"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char path[256];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
}

static const char conf_text[] =
    "hostname = mx.example.net\n"
    "local_domains = localhost, example.net\n"
    "virtual_domains = example.org, example.com\n"
    "maildir_base = /srv/mail\n"
    "mailboxes = mailboxes\n"
    "aliases = aliases\n"
    "virtual = virtual\n";

static const char mailboxes_text[] =
    "alice@localhost\n"
    "bob@localhost\n"
    "keep@localhost\n"
    "me@example.net\n"
    "carol@example.net /srv/custom/carol\n"
    "rel@localhost rel/box\n"
    "\"john doe\"@localhost\n"
    "\"sp ace\"@localhost \"/srv/with space\"\n"
    "# a key without a domain: that user in every local domain\n"
    "dave\n";

static const char aliases_text[] =
    "postmaster: alice\n"
    "team: alice, bob,\n"
    "    carol@example.net\n"
    "dup: alice, Alice, alice@localhost, team, team\n"
    "keep: keep, ext@remote.test\n"
    "fwd: someone@remote.test\n"
    "loop1: loop2\n"
    "loop2: loop1\n"
    "selfloop: selfloop\n"
    "unknownt: alice, nobody\n"
    "quoted: \"john doe\"\n"
    "c0: c1\nc1: c2\nc2: c3\nc3: c4\nc4: c5\nc5: c6\nc6: c7\nc7: c8\n"
    "c8: c9\nc9: c10\nc10: c11\nc11: c12\nc12: c13\nc13: c14\nc14: c15\nc15: c16\n"
    "c16: alice\n"
    "b0: b1a, b1b\nb1a: b2a, b2b\nb1b: b2a, b2b\nb2a: b3a, b3b\nb2b: b3a, b3b\n"
    "b3a: b4a, b4b\nb3b: b4a, b4b\nb4a: alice\nb4b: bob\n";

static const char virtual_text[] =
    "info@example.org      alice@localhost\n"
    "@example.org          bob@localhost\n"
    "sales@example.com     alice@localhost, partner@remote.test\n"
    "user@example.net      dave@example.net\n"
    "me@example.net        me@example.net, copy@remote.test\n"
    "x@gmail.test          alice@localhost\n"
    "alias@example.com     team@localhost\n"
    "rewrite@example.com   @localhost\n"
    "vloop@example.com     vloop2@example.com\n"
    "vloop2@example.com    vloop@example.com\n";

static config_t *cfg;
static tables_t *tabs;

static int
setup(void **state)
{
	if (mkdtemp(dir) == NULL)
		return -1;
	write_file("tern.conf", conf_text);
	write_file("mailboxes", mailboxes_text);
	write_file("aliases", aliases_text);
	write_file("virtual", virtual_text);
	char path[256];
	snprintf(path, sizeof path, "%s/tern.conf", dir);
	buf_t e = BUF_INIT;
	cfg = config_load(path, &e);
	if (cfg == NULL) {
		fprintf(stderr, "%s", buf_cstr(&e));
		return -1;
	}
	tabs = tables_load(cfg, &e);
	if (tabs == NULL) {
		fprintf(stderr, "%s", buf_cstr(&e));
		return -1;
	}
	buf_free(&e);
	return 0;
}

static int
teardown(void **state)
{
	tables_free(tabs);
	config_free(cfg);
	remove_files();
	rmdir(dir);
	return 0;
}

static void
parse_rcpt(const char *s, addr_t *a)
{
	size_t used;
	const char *err;
	unsigned flags = ADDR_NO_BRACKETS | ADDR_UTF8;
	if (strcmp(s, "<Postmaster>") == 0)
		flags = ADDR_POSTMASTER_OK;
	if (addr_parse(s, strlen(s), flags, a, &used, &err) < 0)
		fail_msg("addr_parse %s: %s", s, err);
}

static void
test_expand(void **state)
{
	static const struct {
		const char *rcpt;
		bool relay_ok;
		enum router_status st;
		const char *want; /* finals joined by ' ', or the error reply */
	} cases[] = {
		/* mailboxes and +detail */
		{"alice@localhost", false, ROUTER_OK, "alice@localhost"},
		{"ALICE@LocalHost", false, ROUTER_OK, "ALICE@localhost"},
		{"alice+news@localhost", false, ROUTER_OK, "alice+news@localhost"},
		{"alice+@localhost", false, ROUTER_OK, "alice+@localhost"},
		{"\"alice\"@localhost", false, ROUTER_OK, "alice@localhost"},
		{"\"john doe\"@localhost", false, ROUTER_OK, "\"john doe\"@localhost"},
		{"\"john doe+x\"@localhost", false, ROUTER_OK, "\"john doe+x\"@localhost"},
		{"dave@localhost", false, ROUTER_OK, "dave@localhost"},
		{"dave+x@example.net", false, ROUTER_OK, "dave+x@example.net"},
		{"carol@example.net", false, ROUTER_OK, "carol@example.net"},
		/* unknown users in local and virtual domains */
		{"nobody@localhost", true, ROUTER_UNKNOWN_USER,
		    "550 5.1.1 Recipient address rejected: user unknown"},
		{"nobody+alice@localhost", false, ROUTER_UNKNOWN_USER, "550 5.1.1"},
		{"+alice@localhost", false, ROUTER_UNKNOWN_USER, "550 5.1.1"},
		{"carol@localhost", false, ROUTER_UNKNOWN_USER, "550 5.1.1"},
		{"nobody@example.com", true, ROUTER_UNKNOWN_USER, "550 5.1.1"},
		{"unknownt@localhost", false, ROUTER_UNKNOWN_USER,
		    "550 5.1.1 Recipient address rejected: alias target unknown"},
		/* aliases */
		{"postmaster@localhost", false, ROUTER_OK, "alice@localhost"},
		/* a bare alias target stays in the domain: alice@example.net has no mailbox */
		{"PostMaster@example.net", false, ROUTER_UNKNOWN_USER,
		    "550 5.1.1 Recipient address rejected: alias target unknown"},
		{"<Postmaster>", false, ROUTER_OK, "alice@localhost"},
		{"team@localhost", false, ROUTER_OK, "alice@localhost bob@localhost carol@example.net"},
		{"team+x@localhost", false, ROUTER_OK,
		    "alice@localhost bob@localhost carol@example.net"},
		{"dup@localhost", false, ROUTER_OK, "alice@localhost bob@localhost carol@example.net"},
		{"quoted@localhost", false, ROUTER_OK, "\"john doe\"@localhost"},
		/* an alias naming itself keeps a copy in its own mailbox */
		{"keep@localhost", false, ROUTER_OK, "keep@localhost ext@remote.test"},
		{"keep+tag@localhost", false, ROUTER_OK, "keep+tag@localhost ext@remote.test"},
		{"me@example.net", false, ROUTER_OK, "me@example.net copy@remote.test"},
		/* expansions may go remote without relay permission */
		{"fwd@localhost", false, ROUTER_OK, "someone@remote.test"},
		{"sales@example.com", false, ROUTER_OK, "alice@localhost partner@remote.test"},
		/* loops and depth */
		{"loop1@localhost", true, ROUTER_LOOP, "554 5.4.6"},
		{"vloop@example.com", true, ROUTER_LOOP, "554 5.4.6"},
		{"c1@localhost", false, ROUTER_OK, "alice@localhost"},  /* 16 steps */
		{"c0@localhost", false, ROUTER_LOOP, "554 5.4.6"},      /* 17 steps */
		{"b0@localhost", false, ROUTER_OK, "alice@localhost bob@localhost"},
		/* an alias naming only itself needs a mailbox */
		{"selfloop@localhost", false, ROUTER_UNKNOWN_USER, "550 5.1.1"},
		/* virtual: exact, +detail, catch-all, local domains, remote keys */
		{"info@example.org", false, ROUTER_OK, "alice@localhost"},
		{"Info+Tag@Example.ORG", false, ROUTER_OK, "alice@localhost"},
		{"anything@example.org", false, ROUTER_OK, "bob@localhost"},
		{"user@example.net", false, ROUTER_OK, "dave@example.net"},
		{"x@gmail.test", false, ROUTER_OK, "alice@localhost"},
		{"alias@example.com", false, ROUTER_OK,
		    "alice@localhost bob@localhost carol@example.net"},
		{"rewrite@example.com", false, ROUTER_UNKNOWN_USER, "550 5.1.1"},
		/* relaying */
		{"someone@remote.test", false, ROUTER_RELAY_DENIED, "554 5.7.1 Relay access denied"},
		{"someone@remote.test", true, ROUTER_OK, "someone@remote.test"},
		{"Someone+x@Remote.TEST", true, ROUTER_OK, "Someone+x@remote.test"},
		{"y@gmail.test", false, ROUTER_RELAY_DENIED, "554 5.7.1"},
		{"a@[192.0.2.1]", false, ROUTER_RELAY_DENIED, "554 5.7.1"},
		{"a@[192.0.2.1]", true, ROUTER_OK, "a@[192.0.2.1]"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		addr_t a;
		parse_rcpt(cases[i].rcpt, &a);
		dest_list_t d = {(char **)1, 99};
		const char *err = NULL;
		enum router_status st = router_expand(cfg, tabs, &a, cases[i].relay_ok, &d, &err);
		buf_t got = BUF_INIT;
		if (st == ROUTER_OK) {
			assert_null(err);
			for (size_t j = 0; j < d.n; j++)
				buf_printf(&got, "%s%s", j ? " " : "", d.addrs[j]);
		} else {
			assert_non_null(err);
			assert_int_equal(d.n, 0);
			buf_puts(&got, err);
		}
		bool ok = st == cases[i].st &&
		    (st == ROUTER_OK ? strcmp(buf_cstr(&got), cases[i].want) == 0
				     : strncmp(buf_cstr(&got), cases[i].want, strlen(cases[i].want)) == 0);
		if (!ok)
			fail_msg("%s (relay %d): got %d \"%s\", want %d \"%s\"", cases[i].rcpt,
			    cases[i].relay_ok, st, buf_cstr(&got), cases[i].st, cases[i].want);
		dest_list_free(&d);
		buf_free(&got);
		addr_free(&a);
	}
}

static void
test_final(void **state)
{
	static const struct {
		const char *addr;
		enum route_kind kind;
		const char *maildir, *mailbox_or_domain;
	} cases[] = {
		{"alice@localhost", ROUTE_LOCAL, "/srv/mail/localhost/alice", "alice@localhost"},
		{"ALICE+Tag@LOCALHOST", ROUTE_LOCAL, "/srv/mail/localhost/alice", "alice@localhost"},
		{"carol@example.net", ROUTE_LOCAL, "/srv/custom/carol", "carol@example.net"},
		{"dave@example.net", ROUTE_LOCAL, "/srv/mail/example.net/dave", "dave@example.net"},
		{"Dave+x@localhost", ROUTE_LOCAL, "/srv/mail/localhost/dave", "dave@localhost"},
		{"rel@localhost", ROUTE_LOCAL, "/srv/mail/rel/box", "rel@localhost"},
		{"\"john doe\"@localhost", ROUTE_LOCAL, "/srv/mail/localhost/john doe",
		    "\"john doe\"@localhost"},
		{"\"sp ace\"@localhost", ROUTE_LOCAL, "/srv/with space", "\"sp ace\"@localhost"},
		{"nobody@localhost", ROUTE_NONE, NULL, NULL},
		{"team@localhost", ROUTE_NONE, NULL, NULL},
		{"info@example.org", ROUTE_NONE, NULL, NULL},
		{"someone@Remote.TEST", ROUTE_REMOTE, NULL, "remote.test"},
		{"a@[192.0.2.1]", ROUTE_REMOTE, NULL, "[192.0.2.1]"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		route_t r;
		assert_int_equal(router_final(cfg, tabs, cases[i].addr, &r), 0);
		if (r.kind != cases[i].kind)
			fail_msg("%s: kind %d, want %d", cases[i].addr, r.kind, cases[i].kind);
		if (r.kind == ROUTE_LOCAL) {
			assert_string_equal(r.maildir, cases[i].maildir);
			assert_string_equal(r.mailbox, cases[i].mailbox_or_domain);
		} else if (r.kind == ROUTE_REMOTE) {
			assert_string_equal(r.domain, cases[i].mailbox_or_domain);
		}
		route_free(&r);
	}
	route_t r;
	assert_int_equal(router_final(cfg, tabs, "no-domain", &r), -1);
	assert_int_equal(r.kind, ROUTE_NONE);
	assert_int_equal(router_final(cfg, tabs, "a b@c", &r), -1);
}

/* detail handling follows recipient_delimiter; '\0' disables it */
static void
test_delimiter(void **state)
{
	char saved = cfg->recipient_delimiter;
	addr_t a;
	dest_list_t d;
	const char *err;
	parse_rcpt("alice+x@localhost", &a);
	cfg->recipient_delimiter = '\0';
	assert_int_equal(router_expand(cfg, tabs, &a, false, &d, &err), ROUTER_UNKNOWN_USER);
	addr_free(&a);
	cfg->recipient_delimiter = '-';
	parse_rcpt("alice-x@localhost", &a);
	assert_int_equal(router_expand(cfg, tabs, &a, false, &d, &err), ROUTER_OK);
	dest_list_free(&d);
	route_t r;
	assert_int_equal(router_final(cfg, tabs, "alice-x@localhost", &r), 0);
	assert_int_equal(r.kind, ROUTE_LOCAL);
	assert_string_equal(r.mailbox, "alice@localhost");
	route_free(&r);
	addr_free(&a);
	cfg->recipient_delimiter = saved;
}

/* bad tables: every problem reported with file:line, nothing loaded */
static void
test_table_errors(void **state)
{
	static const struct {
		const char *file, *text;
		unsigned line;
		const char *want;
	} cases[] = {
		{"mailboxes", "ok@localhost\n\"a/b c\"@localhost\n", 2, "must not contain '/'"},
		{"mailboxes", "a/b@localhost\n", 1, "must not contain '/'"},
		{"mailboxes", "\"../etc\"@localhost\n", 1, "start with '.'"},
		{"mailboxes", "\"..\"\n", 1, "start with '.'"},
		{"mailboxes", "\".x\"\n", 1, "start with '.'"},
		{"mailboxes", "bob@other.test\n", 1, "domain other.test is not in local_domains"},
		{"mailboxes", "bob@example.org\n", 1, "not in local_domains"},
		{"mailboxes", "\"alice\"@localhost\n", 1,
		    "key \"\"alice\"@localhost\" must be written as \"alice@localhost\""},
		{"mailboxes", "alice@LOCALHOST\nbob@@localhost\n", 2, "not a valid address"},
		{"mailboxes", "alice@localhost /a /b\n", 1, "expected at most one value"},
		{"mailboxes", "alice@localhost\nALICE@localhost\n", 2, "duplicate key"},
		{"aliases", "x@localhost: alice\n", 1, "an alias is a local part without @domain"},
		{"aliases", "pipe: |/usr/bin/procmail\n", 1, "not supported"},
		{"aliases", "file: /var/mail/x\n", 1, "not supported"},
		{"aliases", "inc: :include:/etc/list\n", 1, "not supported"},
		{"aliases", "ok: a\nbad: a@@b\n", 2, "\"a@@b\" is not a valid address"},
		{"aliases", "bad: a..b\n", 1, "not a valid address"},
		{"aliases", "\"x\": a\n", 1, "must be written as \"x\""},
		{"aliases", "a b\n", 1, "missing ':'"},
		{"virtual", "bare alice@localhost\n", 1, "not a valid key"},
		{"virtual", "a@example.org alice\n", 1, "must be a full address"},
		{"virtual", "a@example.org\n", 1, "has no value"},
		{"virtual", "@bad_domain x@y.test\n", 1, "not a valid \"@domain\" key"},
		{"virtual", "a@example.org @bad..domain\n", 1, "not a valid address"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		write_file("mailboxes", strcmp(cases[i].file, "mailboxes") ? "" : cases[i].text);
		write_file("aliases", strcmp(cases[i].file, "aliases") ? "" : cases[i].text);
		write_file("virtual", strcmp(cases[i].file, "virtual") ? "" : cases[i].text);
		buf_t e = BUF_INIT;
		tables_t *t = tables_load(cfg, &e);
		if (t != NULL)
			fail_msg("case %zu loaded", i);
		char want[512];
		snprintf(want, sizeof want, "%s/%s:%u: ", dir, cases[i].file, cases[i].line);
		if (strstr(buf_cstr(&e), want) == NULL || strstr(buf_cstr(&e), cases[i].want) == NULL)
			fail_msg("case %zu: want %s%s, got:\n%s", i, want, cases[i].want, buf_cstr(&e));
		buf_free(&e);
	}
	/* a missing table is an error too */
	remove_files();
	buf_t e = BUF_INIT;
	assert_null(tables_load(cfg, &e));
	assert_non_null(strstr(buf_cstr(&e), "/mailboxes:0: cannot read"));
	assert_non_null(strstr(buf_cstr(&e), "/aliases:0: cannot read"));
	assert_non_null(strstr(buf_cstr(&e), "/virtual:0: cannot read"));
	buf_free(&e);

	/* no tables configured: everything unknown, relaying still works */
	buf_t ce = BUF_INIT;
	config_t *c = config_parse_buf("/nonexistent/tern.conf", "", 0, &ce);
	assert_non_null(c);
	tables_t *t = tables_load(c, &ce);
	assert_non_null(t);
	addr_t a;
	dest_list_t d;
	const char *err;
	parse_rcpt("postmaster@localhost", &a);
	assert_int_equal(router_expand(c, t, &a, true, &d, &err), ROUTER_UNKNOWN_USER);
	addr_free(&a);
	parse_rcpt("x@remote.test", &a);
	assert_int_equal(router_expand(c, t, &a, true, &d, &err), ROUTER_OK);
	dest_list_free(&d);
	addr_free(&a);
	tables_free(t);
	config_free(c);
	buf_free(&ce);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_final),
		cmocka_unit_test(test_delimiter),
		cmocka_unit_test(test_table_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
