/*
 * address.c (cli) - `tern address ADDRESS...` (see address.h).
 *
 * A short-lived command: it loads the configuration and the tables the way
 * the daemon does, asks the router (router_expand_trace, router_final,
 * router_transport: the daemon's own code, not a copy of its rules) and
 * prints the answer. The expansion runs first as for a client outside
 * mynetworks (an SRS address is verified with the secrets when this
 * user can read them); when that is a relay refusal, the refusal is printed and the
 * expansion runs again as for a client allowed to relay. With --mx, the
 * MX lookup of a remote domain is done by the daemon's own resolver code
 * (mx_resolve on dns_servers, with its ordering and loop checks).
 * Must not: send anything, query DNS unless --mx, or write any file.
 */
#include "cli/address.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "common/addr.h"
#include "common/config.h"
#include "deliver/mx.h"
#include "deliver/outbound_conf.h"
#include "deliver/router.h"
#include "lib/buf.h"
#include "lib/dns.h"
#include "lib/xalloc.h"
#include "mailauth/srs.h"

typedef struct report {
	const config_t *c;
	const tables_t *t;
	dns_t *dns;        /* --mx: the resolver; NULL: no DNS */
	uv_loop_t *loop;
} report_t;

/* ---- --mx: one lookup, run to its end on a private loop ---- */

typedef struct mxwait {
	bool done;
	mx_result_t *r;
} mxwait_t;

static void
on_mx(void *arg, mx_result_t *r)
{
	mxwait_t *w = arg;
	w->r = r;
	w->done = true;
}

static void
print_mx(const report_t *r, int depth, const char *domain)
{
	const config_t *c = r->c;
	const char *self[2] = {c->hostname, NULL};
	mx_options_t o;
	memset(&o, 0, sizeof o);
	o.self_names = self;
	o.port = (uint16_t)c->smtp_port;
	mxwait_t w = {false, NULL};
	mx_req_t *req = mx_resolve(r->dns, domain, &o, on_mx, &w);
	(void)req;
	while (!w.done)
		uv_run(r->loop, UV_RUN_ONCE);
	mx_result_t *res = w.r;
	if (res->status != MX_OK) {
		printf("%*s%s (%s)\n", 4 + 2 * depth, "", res->reply, res->detail);
	} else {
		for (size_t i = 0; i < res->nhosts; i++) {
			const mx_host_t *h = &res->hosts[i];
			printf("%*s%s %u %s:", 4 + 2 * depth, "", res->implicit ? "implicit MX" : "MX",
			    (unsigned)h->pref, h->name);
			for (size_t k = 0; k < h->naddrs; k++) {
				char ip[INET6_ADDRSTRLEN] = "?";
				const struct sockaddr_storage *sa = &h->addrs[k];
				if (sa->ss_family == AF_INET)
					inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
				else if (sa->ss_family == AF_INET6)
					inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
					    sizeof ip);
				printf(" %s", ip);
			}
			printf("\n");
		}
	}
	mx_result_free(res);
}

/* The daemon's resolver settings (dns_servers, dns_timeout, trust anchor) */
static dns_t *
open_dns(const config_t *c, uv_loop_t *loop, buf_t *err)
{
	char *servers[33];
	char *list = c->dns_servers ? xstrdup(c->dns_servers) : NULL;
	size_t ns = 0;
	char *save = NULL;
	for (char *tok = list ? strtok_r(list, " \t,", &save) : NULL; tok && ns < 32;
	     tok = strtok_r(NULL, " \t,", &save))
		servers[ns++] = tok;
	servers[ns] = NULL;
	dns_options_t o;
	memset(&o, 0, sizeof o);
	o.servers = ns ? (const char *const *)servers : NULL;
	o.timeout_ms = c->dns_timeout * 1000u;
	o.trust_anchor_file = outbound_conf_trust_anchor(c, outbound_conf_uses_dane(c));
	dns_t *d = dns_new(loop, &o, err);
	xfree(list);
	return d;
}

static void
usage(FILE *to)
{
	fprintf(to, "usage: tern [-c config] address [--mx] ADDRESS...\n"
	    "How tern would route each address: alias and virtual expansion, then the local\n"
	    "mailbox (Maildir) or the next hop (transport, relayhost, MX), or the refusal.\n"
	    "Nothing is sent; DNS is queried only with --mx (the MX hosts and their addresses,\n"
	    "in the order tern would try them). A bare name is in the first local domain.\n");
}

/* Where one final address goes: the same decisions as the scheduler and
 * outbound (router_final, then transport table, relayhost, MX). */
static void
print_final(const report_t *r, int depth, const char *addr)
{
	route_t rt;
	printf("%*s<%s>: ", 2 + 2 * depth, "", addr);
	fflush(stdout);
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
		else if (!r->dns)
			printf("remote, MX lookup for %s, then SMTP to port %u (DNS not queried here; "
			    "--mx does)\n", rt.domain, r->c->smtp_port);
		else {
			printf("remote, MX lookup for %s, then SMTP to port %u:\n", rt.domain,
			    r->c->smtp_port);
			print_mx(r, depth, rt.domain);
		}
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

static int
report(const char *config, const char *prog, int n, char **addrs, bool mx)
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
	/* SRS addresses verify only with the secrets (readable by root or
	 * tern's user): without them they are refused, and the note says why */
	if (c->srs_domain && srs_secrets_load(c, &t->srs_secrets, &t->nsrs_secrets, &err) < 0) {
		fprintf(stderr, "%s: note: %s: SRS addresses cannot be verified\n", prog,
		    buf_cstr(&err));
		buf_reset(&err);
	}
	report_t r = {c, t, NULL, NULL};
	uv_loop_t loop;
	if (mx) {
		uv_loop_init(&loop);
		r.loop = &loop;
		r.dns = open_dns(c, &loop, &err);
		if (!r.dns) {
			fprintf(stderr, "%s: DNS: %s\n", prog, buf_cstr(&err));
			buf_free(&err);
			uv_loop_close(&loop);
			tables_free(t);
			config_free(c);
			return -1;
		}
	}
	buf_free(&err);
	int rc = 0;
	for (int i = 0; i < n; i++)
		if (report_one(&r, prog, addrs[i]) < 0)
			rc = 1;
	fflush(stdout);
	if (mx) {
		dns_free(r.dns);
		uv_run(&loop, UV_RUN_DEFAULT); /* the resolver's close callbacks */
		uv_loop_close(&loop);
	}
	tables_free(t);
	config_free(c);
	return rc;
}

int
cli_address_report(const char *config, const char *prog, int n, char **addrs)
{
	return report(config, prog, n, addrs, false);
}

int
cli_address(const char *config, int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0)) {
		usage(stdout);
		return 0;
	}
	bool mx = argc > 1 && strcmp(argv[1], "--mx") == 0;
	int first = mx ? 2 : 1;
	if (argc <= first) {
		usage(stderr);
		return 2;
	}
	for (int i = first; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "tern address: unknown option %s\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	return report(config, "tern address", argc - first, argv + first, mx) == 0 ? 0 : 1;
}
