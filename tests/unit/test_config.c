/*
 * test_config.c - unit tests for src/common/config*.c.
 *
 * Table driven: value parsers (durations, sizes, booleans, networks), whole files
 * (defaults, every key, listen forms, relative paths, quoting, continuation
 * lines), errors (each must be "NAME:LINE: message" with the right line),
 * and mynetworks matching for IPv4, IPv6 and IPv4-mapped IPv6 clients.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "lib/buf.h"

#define NAME "/etc/tern/tern.conf"

static config_t *
parse(const char *text, buf_t *errs)
{
	buf_reset(errs);
	return config_parse_buf(NAME, text, strlen(text), errs);
}

/* every error line is "NAME:N: message" */
static void
assert_error_lines(const char *errs)
{
	const char *p = errs;
	assert_true(*p != '\0');
	while (*p) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		assert_int_equal(strncmp(p, NAME ":", strlen(NAME ":")), 0);
		const char *q = p + strlen(NAME ":");
		assert_true(*q >= '0' && *q <= '9');
		while (*q >= '0' && *q <= '9')
			q++;
		assert_int_equal(q[0], ':');
		assert_int_equal(q[1], ' ');
		p = nl + 1;
	}
}

static void
test_durations(void **state)
{
	static const struct {
		const char *s;
		int ok;
		unsigned v;
	} cases[] = {
		{"30s", 1, 30}, {"5m", 1, 300}, {"2h", 1, 7200}, {"5d", 1, 432000},
		{"1w", 1, 604800}, {"10", 1, 10}, {"0", 1, 0}, {"4294967295", 1, 4294967295u},
		{"", 0, 0}, {"s", 0, 0}, {"5x", 0, 0}, {"-1", 0, 0}, {"+1", 0, 0},
		{"1.5h", 0, 0}, {"5mm", 0, 0}, {" 5s", 0, 0}, {"5s ", 0, 0}, {"5 s", 0, 0},
		{"4294967296", 0, 0}, {"71582789m", 0, 0}, {"99999999999999999999", 0, 0},
		{"5M", 0, 0}, {"1h30m", 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned v = 12345;
		int r = config_parse_duration(cases[i].s, &v);
		if (r != (cases[i].ok ? 0 : -1))
			fail_msg("duration \"%s\": got %d", cases[i].s, r);
		if (cases[i].ok)
			assert_int_equal(v, cases[i].v);
	}
}

static void
test_sizes(void **state)
{
	static const struct {
		const char *s;
		int ok;
		uint64_t v;
	} cases[] = {
		{"100", 1, 100}, {"1k", 1, 1024}, {"1K", 1, 1024}, {"25M", 1, 26214400},
		{"2G", 1, 2147483648ull}, {"0", 1, 0}, {"17179869183G", 1, 17179869183ull << 30},
		{"17179869184G", 0, 0}, {"", 0, 0}, {"M", 0, 0}, {"1m", 0, 0}, {"1T", 0, 0},
		{"1.5M", 0, 0}, {"1MB", 0, 0}, {"-5", 0, 0}, {"1 k", 0, 0},
		{"99999999999999999999", 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t v = 12345;
		int r = config_parse_size(cases[i].s, &v);
		if (r != (cases[i].ok ? 0 : -1))
			fail_msg("size \"%s\": got %d", cases[i].s, r);
		if (cases[i].ok)
			assert_true(v == cases[i].v);
	}
}

static void
test_netmasks(void **state)
{
	static const struct {
		const char *s;
		int ok;
		int family, prefix;
	} cases[] = {
		{"127.0.0.0/8", 1, AF_INET, 8}, {"10.1.2.3", 1, AF_INET, 32},
		{"10.1.2.3/32", 1, AF_INET, 32}, {"0.0.0.0/0", 1, AF_INET, 0},
		{"::1/128", 1, AF_INET6, 128}, {"::1", 1, AF_INET6, 128},
		{"[::1]/128", 1, AF_INET6, 128}, {"[2001:db8::]/32", 1, AF_INET6, 32},
		{"::/0", 1, AF_INET6, 0}, {"::ffff:10.0.0.0/104", 1, AF_INET, 8},
		{"::ffff:10.1.2.3", 1, AF_INET, 32},
		{"10.1.2.3/8", 0, 0, 0}, {"10.0.0.0/33", 0, 0, 0}, {"::1/129", 0, 0, 0},
		{"10.0.0.0/", 0, 0, 0}, {"/8", 0, 0, 0}, {"10.0.0/8", 0, 0, 0},
		{"10.0.0.0/-1", 0, 0, 0}, {"10.0.0.0/08x", 0, 0, 0}, {"example.com", 0, 0, 0},
		{"[10.0.0.0]/8", 0, 0, 0}, {"[::1", 0, 0, 0}, {"", 0, 0, 0},
		{"1.2.3.4.5", 0, 0, 0}, {"2001:db8::1/64", 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		netmask_t m;
		int r = config_parse_netmask(cases[i].s, &m);
		if (r != (cases[i].ok ? 0 : -1))
			fail_msg("netmask \"%s\": got %d", cases[i].s, r);
		if (cases[i].ok) {
			assert_int_equal(m.family, cases[i].family);
			assert_int_equal(m.prefix, cases[i].prefix);
		}
	}
}

static void
test_defaults(void **state)
{
	buf_t e = BUF_INIT;
	config_t *c = parse("# nothing but a comment\n\n", &e);
	assert_non_null(c);
	assert_int_equal(e.len, 0);
	assert_string_equal(c->path, NAME);
	assert_non_null(c->hostname);
	assert_int_equal(c->nlisten, 1);
	assert_string_equal(c->listen[0].addr, "127.0.0.1");
	assert_int_equal(c->listen[0].port, 2525);
	assert_int_equal(c->listen[0].mode, LISTEN_SMTP);
	assert_null(c->user);
	assert_string_equal(c->spool_dir, "/var/spool/tern");
	assert_string_equal(c->maildir_base, "/var/mail/tern");
	assert_int_equal(c->nlocal_domains, 1);
	assert_string_equal(c->local_domains[0], "localhost");
	assert_int_equal(c->nvirtual_domains, 0);
	assert_null(c->mailboxes_file);
	assert_null(c->aliases_file);
	assert_null(c->virtual_file);
	assert_int_equal(c->recipient_delimiter, '+');
	assert_int_equal(c->nmynetworks, 2);
	assert_true(c->message_size_limit == 26214400);
	assert_int_equal(c->max_recipients, 1000);
	assert_int_equal(c->max_line_length, 1000);
	assert_int_equal(c->max_command_length, 512);
	assert_int_equal(c->max_errors, 20);
	assert_int_equal(c->max_sessions, 1000);
	assert_int_equal(c->max_sessions_per_ip, 50);
	assert_int_equal(c->timeout_command, 300);
	assert_int_equal(c->timeout_data, 300);
	assert_int_equal(c->retry_min, 300);
	assert_int_equal(c->retry_max, 3600);
	assert_int_equal(c->queue_lifetime, 5 * 86400);
	assert_int_equal(c->delay_warning, 0);
	assert_int_equal(c->local_concurrency, 8);
	config_free(c);
	buf_free(&e);
}

static void
test_every_key(void **state)
{
	const char *text =
	    "# a full file\r\n"
	    "hostname = Mail.Example.COM   # trailing comment\r\n"
	    "listen = 127.0.0.1:25\n"
	    "listen = [::1]:25 smtp, 0.0.0.0:587 submission\n"
	    "listen = [0:0::0]:465 smtps\n"
	    "listen = 127.0.0.1:0\n"
	    "listen = 127.0.0.1:0 SMTP\n"
	    "user = tern\n"
	    "spool_dir = /var/spool/tern2\n"
	    "maildir_base = ../mail\n"
	    "local_domains = Example.COM, localhost\n"
	    "   example.com,   # continuation with a comment\n"
	    "\n"
	    "   # a comment line between continuation lines\n"
	    "\tmail.example.com\n"
	    "virtual_domains = example.org example.net\n"
	    "mailboxes = \"my mailboxes\"\n"
	    "aliases = ./aliases\n"
	    "virtual = \"/etc/tern/vir#tual\"\n"
	    "recipient_delimiter = -\n"
	    "mynetworks = 10.0.0.0/8, 192.168.1.1 [2001:db8::]/32\n"
	    "message_size_limit = 10M\n"
	    "max_recipients = 100\n"
	    "max_line_length = 2k\n"
	    "max_command_length=1024\n"
	    "max_errors = 5\n"
	    "max_sessions = 10\n"
	    "max_sessions_per_ip = 2\n"
	    "timeout_command = 5m\n"
	    "timeout_data = 10m\n"
	    "retry_min = 1m\n"
	    "retry_max = 1h\n"
	    "queue_lifetime = 1w\n"
	    "delay_warning = 4h\n"
	    "local_concurrency = 3";
	buf_t e = BUF_INIT;
	config_t *c = parse(text, &e);
	if (c == NULL)
		fail_msg("%s", e.data);
	assert_string_equal(c->hostname, "Mail.Example.COM");
	assert_int_equal(c->nlisten, 6);
	assert_string_equal(c->listen[0].addr, "127.0.0.1");
	assert_int_equal(c->listen[0].port, 25);
	assert_string_equal(c->listen[1].addr, "::1");
	assert_int_equal(c->listen[1].mode, LISTEN_SMTP);
	assert_string_equal(c->listen[2].addr, "0.0.0.0");
	assert_int_equal(c->listen[2].port, 587);
	assert_int_equal(c->listen[2].mode, LISTEN_SUBMISSION);
	assert_string_equal(c->listen[3].addr, "::");
	assert_int_equal(c->listen[3].mode, LISTEN_SMTPS);
	assert_int_equal(c->listen[4].port, 0);
	assert_int_equal(c->listen[5].port, 0);
	assert_string_equal(c->user, "tern");
	assert_string_equal(c->spool_dir, "/var/spool/tern2");
	assert_string_equal(c->maildir_base, "/etc/mail");
	assert_int_equal(c->nlocal_domains, 3);
	assert_string_equal(c->local_domains[0], "example.com");
	assert_string_equal(c->local_domains[1], "localhost");
	assert_string_equal(c->local_domains[2], "mail.example.com");
	assert_int_equal(c->nvirtual_domains, 2);
	assert_string_equal(c->mailboxes_file, "/etc/tern/my mailboxes");
	assert_string_equal(c->aliases_file, "/etc/tern/aliases");
	assert_string_equal(c->virtual_file, "/etc/tern/vir#tual");
	assert_int_equal(c->recipient_delimiter, '-');
	assert_int_equal(c->nmynetworks, 3);
	assert_true(c->message_size_limit == 10 * 1024 * 1024);
	assert_int_equal(c->max_recipients, 100);
	assert_int_equal(c->max_line_length, 2048);
	assert_int_equal(c->max_command_length, 1024);
	assert_int_equal(c->max_errors, 5);
	assert_int_equal(c->max_sessions, 10);
	assert_int_equal(c->max_sessions_per_ip, 2);
	assert_int_equal(c->timeout_command, 300);
	assert_int_equal(c->timeout_data, 600);
	assert_int_equal(c->retry_min, 60);
	assert_int_equal(c->retry_max, 3600);
	assert_int_equal(c->queue_lifetime, 7 * 86400);
	assert_int_equal(c->delay_warning, 4 * 3600);
	assert_int_equal(c->local_concurrency, 3);
	assert_true(config_is_local_domain(c, "EXAMPLE.com"));
	assert_true(config_is_local_domain(c, "localhost"));
	assert_false(config_is_local_domain(c, "example.org"));
	assert_true(config_is_virtual_domain(c, "Example.ORG"));
	assert_false(config_is_virtual_domain(c, "example.com"));
	assert_false(config_is_local_domain(c, NULL));
	config_free(c);
	buf_free(&e);
}

static void
test_empty_values(void **state)
{
	buf_t e = BUF_INIT;
	config_t *c = parse("mailboxes =\naliases = \"\"\nrecipient_delimiter =\nuser =\n"
	    "local_domains =\nmynetworks =\n", &e);
	if (c == NULL)
		fail_msg("%s", e.data);
	assert_null(c->mailboxes_file);
	assert_null(c->aliases_file);
	assert_int_equal(c->recipient_delimiter, '\0');
	assert_null(c->user);
	assert_int_equal(c->nlocal_domains, 0);
	assert_int_equal(c->nmynetworks, 0);
	config_free(c);
	buf_free(&e);
}

static void
test_relative_paths(void **state)
{
	static const struct {
		const char *name, *value, *want;
	} cases[] = {
		{"/a/b/c/tern.conf", "spool", "/a/b/c/spool"},
		{"/a/b/c/tern.conf", "./spool", "/a/b/c/spool"},
		{"/a/b/c/tern.conf", "../../var/spool", "/a/var/spool"},
		{"/a/b/c/tern.conf", "../../../../x", "/x"},
		{"/a/b/c/tern.conf", "..", "/a/b"},
		{"/a/b/c/tern.conf", "x/../y", "/a/b/c/x/../y"},
		{"/a/b/c/tern.conf", "/abs/path", "/abs/path"},
		{"/tern.conf", "spool", "/spool"},
		{"/tern.conf", "../spool", "/spool"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t e = BUF_INIT;
		char *text;
		assert_true(asprintf(&text, "spool_dir = \"%s\"\n", cases[i].value) > 0);
		config_t *c = config_parse_buf(cases[i].name, text, strlen(text), &e);
		free(text);
		assert_non_null(c);
		if (strcmp(c->spool_dir, cases[i].want) != 0)
			fail_msg("%s + %s: got %s, want %s", cases[i].name, cases[i].value,
			    c->spool_dir, cases[i].want);
		config_free(c);
		buf_free(&e);
	}
}

/* One bad file each: the error must be on the given line and contain the
 * given text; the file must not load. */
static void
test_errors(void **state)
{
	static const struct {
		const char *text;
		unsigned line;
		const char *want;
	} cases[] = {
		{"hostnme = x.example", 1, "unknown key \"hostnme\" (did you mean \"hostname\"?)"},
		{"\n\nmyhostname = x.example", 3, "unknown key \"myhostname\" (did you mean \"hostname\"?)"},
		{"smtpd_recipient_limit = 100", 1, "(did you mean \"max_recipients\"?)"},
		{"virtual_alias_maps = x", 1, "(did you mean \"virtual\"?)"},
		{"Hostname = x", 1, "did you mean \"hostname\""},
		{"max_recipient = 100", 1, "did you mean \"max_recipients\""},
		{"frobnicate = 1", 1, "unknown key \"frobnicate\"\n"},
		{"hostname = a.example\nhostname = b.example", 2,
		    "duplicate key \"hostname\" (first set on line 1)"},
		{"tls_certificate = /a.pem", 1, "tls_certificate needs tls_cert, the default certificate"},
		{"tls_cert = /d.pem\ntls_certificate = /a.pem /a.key /x", 2,
		    "tls_certificate: expected CERTFILE [KEYFILE]"},
		{"tls_cert = /d.pem\ntls_certificate =", 2, "tls_certificate: expected CERTFILE"},
		{"tls_cert = /d.pem\ntls_certificate = /a.pem\ntls_certificate = /a.pem /k", 3,
		    "tls_certificate: /a.pem is listed twice (first on line 2)"},
		{"tls_cert = /d.pem\ntls_certificate = /d.pem /d.key", 2,
		    "tls_certificate: /d.pem is already tls_cert"},
		{"hostname = foo_bar.example", 1, "not a valid domain name"},
		{"hostname = -a.example", 1, "not a valid domain name"},
		{"hostname = a..example", 1, "not a valid domain name"},
		{"hostname = a.example.", 1, "not a valid domain name"},
		{"hostname = a b", 1, "expected one value, got 2"},
		{"hostname =", 1, "hostname: empty value"},
		{"local_domains = ok.example, bad_domain", 1, "\"bad_domain\" is not a valid domain"},
		{"max_recipients = 99", 1, "max_recipients: 99 is out of range (100 to 1000000)"},
		{"max_recipients = 1k", 1, "is not a whole number"},
		{"max_line_length = 999", 1, "out of range"},
		{"max_command_length = 511", 1, "out of range"},
		{"message_size_limit = 0", 1, "message_size_limit: 0 is out of range"},
		{"message_size_limit = 10X", 1, "is not a size"},
		{"max_errors = 0", 1, "out of range"},
		{"max_sessions = -1", 1, "not a whole number"},
		{"local_concurrency = 0", 1, "out of range"},
		{"timeout_command = 0", 1, "timeout_command: 0 is out of range (1s to 1d)"},
		{"timeout_data = 5 m", 1, "expected one value, got 2"},
		{"queue_lifetime = 5y", 1, "is not a duration"},
		{"retry_min = 2h\nretry_max = 1h", 2,
		    "retry_min (2h) is longer than retry_max (1h)"},
		{"retry_max = 1m\n\nretry_min = 2m", 3, "retry_min (2m) is longer than retry_max (1m)"},
		{"retry_min = 2h", 1, "retry_min (2h) is longer than retry_max (1h)"},
		{"delay_warning = 5d", 1, "delay_warning (5d) is not shorter than queue_lifetime (5d)"},
		{"local_domains = a.example\nvirtual_domains = A.example", 2,
		    "a.example is in both local_domains and virtual_domains"},
		{"listen = ::1:25", 1, "must be written in brackets"},
		{"listen = 127.0.0.1", 1, "missing \":PORT\""},
		{"listen = 127.0.0.1:65536", 1, "port must be a number from 0 to 65535"},
		{"listen = 127.0.0.1:-1", 1, "port must be"},
		{"listen = 127.0.0.1:", 1, "port must be"},
		{"listen = localhost:25", 1, "not an IP address"},
		{"listen = 256.0.0.1:25", 1, "not an IP address"},
		{"listen = [::1:25", 1, "missing ']'"},
		{"listen = [::1]25", 1, "missing \":PORT\""},
		{"listen = 1.2.3.4:25 bogus", 1, "\"bogus\": expected ADDRESS:PORT or a mode"},
		{"listen = smtp", 1, "\"smtp\" must follow an address"},
		{"listen = 1.2.3.4:25 smtp smtps", 1, "\"smtps\" must follow an address"},
		{"listen = ::1:25 submission", 1, "brackets"},
		{"listen = 1.2.3.4:25\nlisten = 1.2.3.4:25", 2, "overlaps 1.2.3.4 port 25 (line 1)"},
		{"listen = 1.2.3.4:25\nlisten = 0.0.0.0:25", 2, "overlaps"},
		{"listen =", 1, "listen: empty value"},
		{"mynetworks = 10.1.2.3/8", 1,
		    "bits set beyond the prefix length (did you mean 10.0.0.0/8?)"},
		{"mynetworks = 2001:db8::1/32", 1, "(did you mean 2001:db8::/32?)"},
		{"mynetworks = 10.0.0.0/33", 1, "bad prefix length"},
		{"mynetworks = 127.0.0.0/8 nonsense", 1, "\"nonsense\": not an IP address"},
		{"recipient_delimiter = ab", 1, "must be a single character"},
		{"recipient_delimiter = @", 1, "must be one of"},
		{"recipient_delimiter = a", 1, "must be one of"},
		{"user = -root", 1, "starts with '-'"},
		{"user = a:b", 1, "not a valid user name"},
		{"hostname = \"a.example", 1, "unterminated quote"},
		{"hostname a.example", 1, "missing '=' after \"hostname\""},
		{"= value", 1, "expected \"key = value\""},
		{"  indented = 1", 1, "continuation line"},
		{"hostname = a.example\x01", 1, "control character 0x01"},
		{"hostname = a.example\x7f", 1, "control character 0x7f"},
		{"hostname = a.example\r\rx", 1, "control character 0x0d"},
		{"retry_min = 1m\n  \"unterminated", 2, "unterminated quote"},
		{"spool_dir = a b", 1, "quote a value that contains spaces"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t e = BUF_INIT;
		config_t *c = parse(cases[i].text, &e);
		if (c != NULL)
			fail_msg("case %zu loaded: %s", i, cases[i].text);
		assert_error_lines(e.data);
		char prefix[256];
		snprintf(prefix, sizeof prefix, "%s:%u: ", NAME, cases[i].line);
		if (strstr(e.data, prefix) == NULL || strstr(e.data, cases[i].want) == NULL)
			fail_msg("case %zu: want line %u \"%s\", got:\n%s", i, cases[i].line,
			    cases[i].want, e.data);
		buf_free(&e);
	}
}

static void
test_all_errors_collected(void **state)
{
	const char *text =
	    "hostname = ok.example\n"
	    "max_recipients = 5\n"          /* 2 */
	    "  more\n"                      /* swallowed: part of line 2 */
	    "bogus_key = 1\n"               /* 4 */
	    "listen = 127.0.0.1:99999\n"    /* 5 */
	    "hostname = dup.example\n"      /* 6 */
	    "timeout_data = 10\n"
	    "a line with no equals sign\n"  /* 8 */
	    "mynetworks = 1.2.3.4/40\n";    /* 9 */
	buf_t e = BUF_INIT;
	assert_null(parse(text, &e));
	assert_error_lines(e.data);
	static const unsigned lines[] = {2, 4, 5, 6, 8, 9};
	size_t nl = 0;
	for (const char *p = e.data; *p; p++)
		nl += *p == '\n';
	assert_int_equal(nl, sizeof lines / sizeof lines[0]);
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		char prefix[256];
		snprintf(prefix, sizeof prefix, "%s:%u: ", NAME, lines[i]);
		if (strstr(e.data, prefix) == NULL)
			fail_msg("no error on line %u:\n%s", lines[i], e.data);
	}
	buf_free(&e);
}

static void
test_too_many_errors(void **state)
{
	buf_t text = BUF_INIT, e = BUF_INIT;
	for (int i = 0; i < 500; i++)
		buf_printf(&text, "nokey%d = 1\n", i);
	assert_null(config_parse_buf(NAME, text.data, text.len, &e));
	size_t nl = 0;
	for (const char *p = e.data; *p; p++)
		nl += *p == '\n';
	assert_int_equal(nl, 101);
	assert_non_null(strstr(e.data, "too many errors"));
	buf_free(&text);
	buf_free(&e);
}

static void
test_nul_and_long_lines(void **state)
{
	buf_t e = BUF_INIT;
	static const char nul[] = "hostname = a\0b.example\nmax_errors = 0\n";
	assert_null(config_parse_buf(NAME, nul, sizeof nul - 1, &e));
	assert_non_null(strstr(e.data, NAME ":1: control character 0x00"));
	assert_non_null(strstr(e.data, NAME ":2: max_errors"));
	buf_reset(&e);
	buf_t text = BUF_INIT;
	buf_puts(&text, "hostname = ");
	for (int i = 0; i < 70000; i++)
		buf_putc(&text, 'a');
	buf_puts(&text, "\nuser = x\n");
	assert_null(config_parse_buf(NAME, text.data, text.len, &e));
	assert_non_null(strstr(e.data, NAME ":1: line longer than"));
	buf_free(&text);
	buf_free(&e);
}

static struct sockaddr_storage
sa_of(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

static void
test_mynetworks(void **state)
{
	static const struct {
		const char *ip;
		bool in;
	} cases[] = {
		{"127.0.0.1", true}, {"127.255.255.254", true}, {"128.0.0.1", false},
		{"10.1.2.3", true}, {"10.1.2.4", false}, {"192.168.7.1", true},
		{"192.168.8.1", false}, {"172.16.0.1", true}, {"172.31.255.255", true},
		{"172.32.0.0", false}, {"::1", true}, {"::2", false},
		{"2001:db8::5", true}, {"2001:db8:ffff::1", true}, {"2001:db9::1", false},
		{"fe80::1", false},
		/* IPv4-mapped IPv6: matched as IPv4 */
		{"::ffff:127.0.0.1", true}, {"::ffff:10.1.2.3", true}, {"::ffff:10.1.2.4", false},
		{"::ffff:192.168.7.200", true}, {"::ffff:8.8.8.8", false},
		/* the mapped-form network entry applies to plain IPv4 clients */
		{"100.64.1.1", true}, {"::ffff:100.64.200.1", true}, {"100.128.0.1", false},
	};
	buf_t e = BUF_INIT;
	config_t *c = parse("mynetworks = 127.0.0.0/8, 10.1.2.3 192.168.7.0/24\n"
	    "  172.16.0.0/12, ::1/128, [2001:db8::]/32, ::ffff:100.64.0.0/106\n", &e);
	if (c == NULL)
		fail_msg("%s", e.data);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct sockaddr_storage ss = sa_of(cases[i].ip);
		bool in = config_in_mynetworks(c, (struct sockaddr *)&ss);
		if (in != cases[i].in)
			fail_msg("%s: got %d", cases[i].ip, in);
	}
	struct sockaddr_storage un;
	memset(&un, 0, sizeof un);
	un.ss_family = AF_UNIX;
	assert_false(config_in_mynetworks(c, (struct sockaddr *)&un));
	assert_false(config_in_mynetworks(c, NULL));
	config_free(c);

	/* 0.0.0.0/0 and ::/0 cover everything of their family */
	c = parse("mynetworks = 0.0.0.0/0\n", &e);
	assert_non_null(c);
	struct sockaddr_storage a = sa_of("203.0.113.9"), b = sa_of("::ffff:203.0.113.9"),
	    d = sa_of("2001:db8::1");
	assert_true(config_in_mynetworks(c, (struct sockaddr *)&a));
	assert_true(config_in_mynetworks(c, (struct sockaddr *)&b));
	assert_false(config_in_mynetworks(c, (struct sockaddr *)&d));
	config_free(c);
	buf_free(&e);
}

/* client_limit_exceptions: mynetworks unless set (Postfix's
 * smtpd_client_event_limit_exceptions = $mynetworks); empty = nobody */
static void
test_limit_exceptions(void **state)
{
	(void)state;
	buf_t e = BUF_INIT;
	struct sockaddr_storage one = sa_of("127.0.0.1"), two = sa_of("127.0.0.2"),
	    v6 = sa_of("::1"), far = sa_of("203.0.113.9");
	/* default, whatever the order of the keys */
	config_t *c = parse("mynetworks = 127.0.0.1/32 ::1/128\n", &e);
	assert_non_null(c);
	assert_true(config_limit_exempt(c, (struct sockaddr *)&one));
	assert_true(config_limit_exempt(c, (struct sockaddr *)&v6));
	assert_false(config_limit_exempt(c, (struct sockaddr *)&two));
	assert_false(config_limit_exempt(c, NULL));
	config_free(c);
	c = parse("", &e); /* mynetworks' own default: 127.0.0.0/8 ::1/128 */
	assert_non_null(c);
	assert_true(config_limit_exempt(c, (struct sockaddr *)&two));
	assert_false(config_limit_exempt(c, (struct sockaddr *)&far));
	config_free(c);
	/* set: replaces mynetworks for this purpose only */
	c = parse("client_limit_exceptions = 127.0.0.2 203.0.113.0/24\nmynetworks = 127.0.0.1/32\n",
	    &e);
	assert_non_null(c);
	assert_false(config_limit_exempt(c, (struct sockaddr *)&one));
	assert_true(config_limit_exempt(c, (struct sockaddr *)&two));
	assert_true(config_limit_exempt(c, (struct sockaddr *)&far));
	assert_true(config_in_mynetworks(c, (struct sockaddr *)&one));
	config_free(c);
	/* empty: nobody is exempt */
	c = parse("client_limit_exceptions =\n", &e);
	assert_non_null(c);
	assert_false(config_limit_exempt(c, (struct sockaddr *)&one));
	assert_int_equal(c->nclient_limit_exceptions, 0);
	config_free(c);
	/* a bad entry is an error on its line */
	c = parse("\nclient_limit_exceptions = 127.0.0.1/33\n", &e);
	assert_null(c);
	assert_non_null(strstr(buf_cstr(&e), NAME ":2: client_limit_exceptions"));
	buf_free(&e);
}

static void
test_load_file(void **state)
{
	char dir[] = "/tmp/tern-test-config-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[600], sub[512];
	snprintf(sub, sizeof sub, "%s/etc", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(path, sizeof path, "%s/tern.conf", sub);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("hostname = mail.localhost\nspool_dir = ../spool\nmailboxes = mailboxes\n", f);
	fclose(f);

	buf_t e = BUF_INIT;
	config_t *c = config_load(path, &e);
	if (c == NULL)
		fail_msg("%s", e.data);
	char want[800];
	assert_string_equal(c->path, path);
	snprintf(want, sizeof want, "%s/spool", dir);
	assert_string_equal(c->spool_dir, want);
	snprintf(want, sizeof want, "%s/mailboxes", sub);
	assert_string_equal(c->mailboxes_file, want);
	config_free(c);

	/* relative name: still absolute paths inside */
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(dir), 0);
	c = config_load("etc/tern.conf", &e);
	assert_non_null(c);
	assert_string_equal(c->path, path);
	config_free(c);
	assert_int_equal(chdir(cwd), 0);

	/* errors name the file as given */
	f = fopen(path, "w");
	fputs("hostname = mail.localhost\nmax_recipients = 1\n", f);
	fclose(f);
	buf_reset(&e);
	assert_null(config_load(path, &e));
	snprintf(want, sizeof want, "%s:2: max_recipients", path);
	assert_non_null(strstr(e.data, want));

	unlink(path);
	buf_reset(&e);
	assert_null(config_load(path, &e));
	snprintf(want, sizeof want, "%s:0: cannot read", path);
	assert_non_null(strstr(e.data, want));
	rmdir(sub);
	rmdir(dir);
	buf_free(&e);
}

/* boolean keys: parsed once at load, in every usual spelling; anything else
 * is an error naming the file and line */
static void
test_booleans(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		int want; /* 1 true, 0 false, -1 refused */
	} cases[] = {
	    {"yes", 1}, {"YES", 1}, {"Yes", 1}, {"true", 1}, {"True", 1}, {"on", 1}, {"ON", 1},
	    {"1", 1}, {"no", 0}, {"No", 0}, {"false", 0}, {"FALSE", 0}, {"off", 0}, {"Off", 0},
	    {"0", 0}, {"", -1}, {"y", -1}, {"n", -1}, {"2", -1}, {"yess", -1}, {"nope", -1},
	    {"01", -1}, {"enabled", -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool v = false;
		int r = config_parse_bool(cases[i].s, &v);
		if (cases[i].want < 0) {
			assert_int_equal(r, -1);
		} else {
			assert_int_equal(r, 0);
			assert_int_equal(v, cases[i].want == 1);
		}
	}
	buf_t e = BUF_INIT;
	/* defaults: sandbox on, bounce_to_postmaster off */
	config_t *c = parse("", &e);
	assert_non_null(c);
	assert_true(c->sandbox);
	assert_false(c->bounce_to_postmaster);
	config_free(c);
	c = parse("sandbox = Off\nbounce_to_postmaster = TRUE\n", &e);
	assert_non_null(c);
	assert_false(c->sandbox);
	assert_true(c->bounce_to_postmaster);
	config_free(c);
	c = parse("# x\nsandbox = 1\nbounce_to_postmaster = maybe\n", &e);
	assert_null(c);
	assert_error_lines(buf_cstr(&e));
	assert_non_null(strstr(buf_cstr(&e), NAME ":3: bounce_to_postmaster: \"maybe\""));
	assert_non_null(strstr(buf_cstr(&e), "yes or no"));
	c = parse("sandbox = yes no\n", &e);
	assert_null(c);
	assert_non_null(strstr(buf_cstr(&e), NAME ":1: sandbox: expected one value"));
	c = parse("sandbox =\n", &e);
	assert_null(c);
	assert_non_null(strstr(buf_cstr(&e), NAME ":1: sandbox"));
	buf_free(&e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_netmasks),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_empty_values),
		cmocka_unit_test(test_relative_paths),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_all_errors_collected),
		cmocka_unit_test(test_too_many_errors),
		cmocka_unit_test(test_nul_and_long_lines),
		cmocka_unit_test(test_mynetworks),
		cmocka_unit_test(test_limit_exceptions),
		cmocka_unit_test(test_load_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
