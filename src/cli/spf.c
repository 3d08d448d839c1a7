/*
 * spf.c (cli) - `tern spf` (see spf.h): one check_host() through the
 * daemon's own evaluator (mailauth/spf.c) on a private loop.
 *
 * The identity: a bare domain is checked as MAIL FROM:<postmaster@domain>;
 * "local@domain" as that sender; "" or "<>" (MAIL FROM:<>) as
 * postmaster@HELO (RFC 7208 section 2.4), which needs --helo. The HELO
 * identity itself (section 2.3) is `tern spf IP NAME --helo NAME`.
 * Must not: send mail, write a file, or change the exit status with the
 * result (scripts read the first line).
 */
#include "cli/spf.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/config.h"
#include "lib/buf.h"
#include "lib/dns.h"
#include "lib/xalloc.h"
#include "mailauth/spf.h"

static void
usage(FILE *to)
{
	fprintf(to,
	    "usage: tern [-c config] spf IP DOMAIN-OR-SENDER [--helo NAME] [--dns-servers 'IP[@PORT] ...']\n"
	    "                            [--receiver NAME] [--timeout MS] [--dns-timeout MS]\n"
	    "The SPF result (RFC 7208) for a client address and an identity: a domain, a sender\n"
	    "local@domain, or \"\" (MAIL FROM:<>: postmaster@HELO). For the HELO identity give the\n"
	    "HELO name both as the identity and as --helo. Prints the result word, \"reason: \" and\n"
	    "\"explanation: \" (the exp= text of a fail); exit 0 whatever the result, 2 on usage.\n"
	    "DNS: --dns-servers, else the configuration's dns_servers, else /etc/resolv.conf.\n"
	    "--timeout: the whole evaluation (default 20000 ms); --dns-timeout: each query\n"
	    "(default: the configuration's dns_timeout, or 15000 ms).\n");
}

typedef struct wait {
	bool done;
	enum spf_result result;
	char *reason, *explanation;
} wait_t;

static void
on_spf(void *arg, const spf_answer_t *a)
{
	wait_t *w = arg;
	w->done = true;
	w->result = a->result;
	w->reason = xstrdup(a->reason);
	w->explanation = xstrdup(a->explanation);
}

static int
parse_ms(const char *s, unsigned *out)
{
	char *end = NULL;
	unsigned long v = strtoul(s, &end, 10);
	if (end == s || *end != '\0' || v == 0 || v > 600000)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* printable on one line: control octets as \xHH */
static void
put_line(const char *label, const char *s)
{
	fputs(label, stdout);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
	putchar('\n');
}

int
cli_spf(const char *config, bool config_given, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"helo", required_argument, NULL, 'H'},
	    {"dns-servers", required_argument, NULL, 'S'},
	    {"receiver", required_argument, NULL, 'R'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"dns-timeout", required_argument, NULL, 'D'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *helo = NULL, *servers = NULL, *receiver = NULL;
	unsigned timeout = 0, dns_timeout = 0;
	int ch;
	optind = 0; /* glibc: a full re-initialisation; options may follow the arguments */
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'H': helo = optarg; break;
		case 'S': servers = optarg; break;
		case 'R': receiver = optarg; break;
		case 'T':
			if (parse_ms(optarg, &timeout) < 0) {
				fprintf(stderr, "tern spf: --timeout wants milliseconds (1..600000)\n");
				return 2;
			}
			break;
		case 'D':
			if (parse_ms(optarg, &dns_timeout) < 0) {
				fprintf(stderr, "tern spf: --dns-timeout wants milliseconds (1..600000)\n");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind == 1 && strcmp(argv[optind], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	const char *iptext = argv[optind], *ident = argv[optind + 1];
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, iptext, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, iptext, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
	} else {
		fprintf(stderr, "tern spf: \"%s\" is not an IPv4 or IPv6 address\n", iptext);
		return 2;
	}
	/* the identity (RFC 7208 sections 2.3, 2.4) */
	char *sender;
	const char *domain;
	if (ident[0] == '\0' || strcmp(ident, "<>") == 0) {
		if (helo == NULL || helo[0] == '\0') {
			fprintf(stderr, "tern spf: the null sender is checked as postmaster@HELO: give --helo\n");
			return 2;
		}
		sender = xasprintf("postmaster@%s", helo);
	} else if (strchr(ident, '@') != NULL) {
		sender = xstrdup(ident);
	} else {
		sender = xasprintf("postmaster@%s", ident);
	}
	domain = strrchr(sender, '@') + 1;

	/* the resolver: --dns-servers, else the configuration's */
	config_t *c = NULL;
	buf_t err = BUF_INIT;
	if (servers == NULL && (config_given || access(config, F_OK) == 0)) {
		c = config_load(config, &err);
		if (c == NULL) {
			fprintf(stderr, "tern spf: %s", buf_cstr(&err));
			if (err.len && err.data[err.len - 1] != '\n')
				fputc('\n', stderr);
			buf_free(&err);
			xfree(sender);
			return 1;
		}
		servers = c->dns_servers;
		if (dns_timeout == 0)
			dns_timeout = c->dns_timeout * 1000u;
		if (receiver == NULL)
			receiver = c->hostname;
	}
	char *list = servers ? xstrdup(servers) : NULL;
	const char *sv[33];
	size_t ns = 0;
	char *save = NULL;
	for (char *tok = list ? strtok_r(list, " \t,", &save) : NULL; tok && ns < 32;
	     tok = strtok_r(NULL, " \t,", &save))
		sv[ns++] = tok;
	sv[ns] = NULL;
	dns_options_t dopt;
	memset(&dopt, 0, sizeof dopt);
	dopt.servers = ns ? sv : NULL;
	dopt.timeout_ms = dns_timeout;
	dopt.trust_anchor_file = c ? c->dnssec_trust_anchor : NULL;
	uv_loop_t loop;
	uv_loop_init(&loop);
	dns_t *dns = dns_new(&loop, &dopt, &err);
	xfree(list);
	if (dns == NULL) {
		fprintf(stderr, "tern spf: %s\n", buf_cstr(&err));
		buf_free(&err);
		uv_loop_close(&loop);
		config_free(c);
		xfree(sender);
		return 1;
	}
	buf_free(&err);
	spf_options_t o;
	memset(&o, 0, sizeof o);
	o.receiver = receiver;
	o.timeout_ms = timeout;
	wait_t w = {false, SPF_NONE, NULL, NULL};
	spf_check_host(dns, (const struct sockaddr *)&ss, domain, sender, helo ? helo : "", &o,
	    on_spf, &w);
	while (!w.done)
		uv_run(&loop, UV_RUN_ONCE);
	printf("%s\n", spf_result_str(w.result));
	put_line("reason: ", w.reason);
	put_line("explanation: ", w.explanation);
	fflush(stdout);
	xfree(w.reason);
	xfree(w.explanation);
	dns_free(dns);
	uv_run(&loop, UV_RUN_DEFAULT); /* the close callbacks */
	uv_loop_close(&loop);
	config_free(c);
	xfree(sender);
	return 0;
}
