/*
 * address.c (cli) - `tern address ADDRESS...` (see address.h).
 *
 * A short-lived command: it loads the configuration and the tables the way
 * the daemon does, asks the router (router_expand_trace, router_final,
 * router_transport: the daemon's own code, not a copy of its rules) and
 * prints the answer. The expansion runs first as for a client outside
 * mynetworks; when that is a relay refusal, the refusal is printed and the
 * expansion runs again as for a client allowed to relay.
 * Must not: send anything, query DNS, or write any file.
 */
#include "cli/address.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/addr.h"
#include "common/config.h"
#include "deliver/router.h"
#include "lib/buf.h"
#include "lib/xalloc.h"

typedef struct report {
	const config_t *c;
	const tables_t *t;
} report_t;

static void
usage(FILE *to)
{
	fprintf(to, "usage: tern [-c config] address ADDRESS...\n"
	    "How tern would route each address: alias and virtual expansion, then the local\n"
	    "mailbox (Maildir) or the next hop (transport, relayhost, MX), or the refusal.\n"
	    "Nothing is sent and DNS is not queried. A bare name is in the first local domain.\n");
}

/* Where one final address goes: the same decisions as the scheduler and
 * outbound (router_final, then transport table, relayhost, MX). */
static void
print_final(const report_t *r, int depth, const char *addr)
{
	route_t rt;
	printf("%*s<%s>: ", 2 + 2 * depth, "", addr);
	if (router_final(r->c, r->t, addr, &rt) < 0 || rt.kind == ROUTE_NONE) {
		printf("no route (550 5.1.1 at delivery)\n");
	} else if (rt.kind == ROUTE_LOCAL) {
		printf("local mailbox %s, Maildir %s\n", rt.mailbox, rt.maildir);
	} else {
		const char *tr = router_transport(r->t, rt.domain);
		if (tr)
			printf("remote, next hop %s (transport table)\n", tr);
		else if (r->c->relayhost)
			printf("remote, next hop smtp:%s (relayhost)\n", r->c->relayhost);
		else
			printf("remote, MX lookup for %s, then SMTP to port %u (DNS not queried here)\n",
			    rt.domain, r->c->smtp_port);
	}
	route_free(&rt);
}

static void
on_step(void *arg, int depth, const char *table, const char *key, const char *value)
{
	const report_t *r = arg;
	if (table)
		printf("%*s%s %s -> %s\n", 2 + 2 * depth, "", table, key, value);
	else
		print_final(r, depth, value);
}

/* One address; 0 deliverable, -1 refused. */
static int
report_one(const report_t *r, const char *prog, const char *arg)
{
	/* "<a@b>" as well as "a@b"; a bare name is in the first local domain */
	size_t n = strlen(arg);
	char *s = n >= 2 && arg[0] == '<' && arg[n - 1] == '>' ? xstrndup(arg + 1, n - 2)
	    : xstrdup(arg);
	if (!strchr(s, '@')) {
		const char *dom = r->c->nlocal_domains ? r->c->local_domains[0] : r->c->hostname;
		char *full = xasprintf("%s@%s", s, dom);
		xfree(s);
		s = full;
	}
	addr_t a;
	size_t used;
	const char *perr;
	int pr = addr_parse(s, strlen(s), ADDR_NO_BRACKETS | ADDR_UTF8, &a, &used, &perr);
	if (pr == 0 && used != strlen(s)) {
		addr_free(&a);
		perr = "501 5.1.3 Bad recipient address syntax";
		pr = -1;
	}
	if (pr < 0) {
		printf("<%s>\n  refused: %s\n", s, perr);
		xfree(s);
		return -1;
	}
	printf("<%s>\n", a.str);
	dest_list_t d;
	const char *err;
	enum router_status st = router_expand(r->c, r->t, &a, false, &d, &err);
	dest_list_free(&d);
	bool relay = false;
	if (st == ROUTER_RELAY_DENIED) {
		printf("  refused for clients outside mynetworks without AUTH: %s\n", err);
		printf("  allowed for clients in mynetworks, after AUTH, and from the local socket:\n");
		relay = true;
	}
	st = router_expand_trace(r->c, r->t, &a, relay, &d, &err, on_step, (void *)r);
	dest_list_free(&d);
	if (st != ROUTER_OK)
		printf("  refused: %s\n", err);
	addr_free(&a);
	xfree(s);
	return st == ROUTER_OK ? 0 : -1;
}

int
cli_address_report(const char *config, const char *prog, int n, char **addrs)
{
	buf_t err = BUF_INIT;
	config_t *c = config_load(config, &err);
	tables_t *t = c ? tables_load(c, &err) : NULL;
	if (!t) {
		fprintf(stderr, "%s: cannot read the configuration or its tables:\n%s", prog,
		    buf_cstr(&err));
		if (err.len && err.data[err.len - 1] != '\n')
			fputc('\n', stderr);
		buf_free(&err);
		config_free(c);
		return -1;
	}
	buf_free(&err);
	report_t r = {c, t};
	int rc = 0;
	for (int i = 0; i < n; i++)
		if (report_one(&r, prog, addrs[i]) < 0)
			rc = 1;
	fflush(stdout);
	tables_free(t);
	config_free(c);
	return rc;
}

int
cli_address(const char *config, int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "tern address: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	return cli_address_report(config, "tern address", argc - 1, argv + 1) == 0 ? 0 : 1;
}
