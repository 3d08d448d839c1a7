/*
 * outbound_conf.c - the outbound manager, its resolver and its MX options,
 * from the configuration (see outbound_conf.h).
 *
 * Everything the manager keeps a pointer to (the resolver, the MX options
 * with our own names and addresses, the relay credentials) lives in the
 * outbound_conf_t, allocated to the size the configuration needs.
 * Must not: log a credential, or leave one in memory once freed.
 */
#include "deliver/outbound_conf.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/secret.h"
#include "deliver/router.h"
#include "common/table.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define RELAY_USER_MAX 256
#define RELAY_PASS_MAX 512

struct outbound_conf {
	outbound_t *outbound;
	dns_t *dns;
	tables_t *const *tables;          /* the caller's current tables */
	char **servers;                   /* dns_servers, NULL-terminated */
	const char *self_names[2];        /* our hostname, NULL */
	struct sockaddr_storage *self_addrs;
	size_t nself_addrs, cap_self_addrs;
	mx_options_t mxo;
	bool dnssec; /* the resolver validates */
	char *hostname;  /* copies: the config_t goes at a reload */
	char *spool_dir;
	char *dns_sig;   /* the resolver's settings, to know if a reload changes them */
	char relay_user[RELAY_USER_MAX];
	char relay_pass[RELAY_PASS_MAX];
};

/* the transport for a remote domain, through the tables in force now */
static const char *
conf_route(void *arg, const char *domain)
{
	const outbound_conf_t *oc = arg;
	return router_transport(*oc->tables, domain);
}

int
outbound_conf_relay_auth(const config_t *c, char *user, size_t ucap, char *pass, size_t pcap,
    buf_t *err)
{
	const char *path = c->relayhost_auth_file;
	char *data = NULL;
	/* through tern's privileged parent when there is one (common/secret.h) */
	if (secret_read(SECRET_RELAY_AUTH, path, config_run_uid(c), 64 * 1024, &data, NULL, err) < 0)
		return -1;
	int r = -1;
	char *save = NULL;
	for (char *line = strtok_r(data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '#' || *line == '\0' || *line == '\r')
			continue;
		size_t ul = strcspn(line, " \t");
		char *pw = line + ul;
		while (*pw == ' ' || *pw == '\t')
			pw++;
		size_t pl = strcspn(pw, "\r");
		if (ul == 0 || pl == 0 || ul >= ucap || pl >= pcap)
			break;
		memcpy(user, line, ul);
		user[ul] = '\0';
		memcpy(pass, pw, pl);
		pass[pl] = '\0';
		r = 0;
		break;
	}
	if (r < 0)
		buf_printf(err, "relayhost_auth_file %s: expected one line \"user password\"", path);
	explicit_bzero(data, strlen(data));
	xfree(data);
	return r;
}

/* A wildcard listener (0.0.0.0, ::) is every address of this host: for the
 * loop detection of RFC 5321 §5.1 ("the SMTP client finds itself among the
 * MX records"), our addresses are then the interfaces' (read at start). */
static bool
is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static void
add_self_addr(outbound_conf_t *oc, const struct sockaddr_storage *ss)
{
	if (oc->nself_addrs == oc->cap_self_addrs) {
		oc->cap_self_addrs = oc->cap_self_addrs ? 2 * oc->cap_self_addrs : 8;
		oc->self_addrs = xrealloc(oc->self_addrs, oc->cap_self_addrs * sizeof *oc->self_addrs);
	}
	oc->self_addrs[oc->nself_addrs++] = *ss;
}

static void
add_interface_addrs(outbound_conf_t *oc)
{
	uv_interface_address_t *ifs;
	int count;
	if (uv_interface_addresses(&ifs, &count) != 0)
		return;
	for (int i = 0; i < count; i++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		if (ifs[i].address.address4.sin_family == AF_INET)
			memcpy(&ss, &ifs[i].address.address4, sizeof(struct sockaddr_in));
		else if (ifs[i].address.address6.sin6_family == AF_INET6)
			memcpy(&ss, &ifs[i].address.address6, sizeof(struct sockaddr_in6));
		else
			continue;
		add_self_addr(oc, &ss);
	}
	uv_free_interface_addresses(ifs, count);
}

/* our own names and addresses, for MX loop detection */
static void
build_mx_options(outbound_conf_t *oc, const config_t *c)
{
	xfree(oc->hostname);
	oc->hostname = xstrdup(c->hostname);
	oc->self_names[0] = oc->hostname;
	oc->self_names[1] = NULL;
	bool interfaces = false;
	for (size_t i = 0; i < c->nlisten; i++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		if (uv_ip4_addr(c->listen[i].addr, 25, (struct sockaddr_in *)&ss) != 0 &&
		    uv_ip6_addr(c->listen[i].addr, 25, (struct sockaddr_in6 *)&ss) != 0)
			continue;
		if (!is_wildcard(&ss))
			add_self_addr(oc, &ss);
		else if (!interfaces) {
			add_interface_addrs(oc);
			interfaces = true;
		}
	}
	oc->mxo.self_names = oc->self_names;
	oc->mxo.self_addrs = oc->self_addrs;
	oc->mxo.nself_addrs = oc->nself_addrs;
	oc->mxo.port = (uint16_t)c->smtp_port; /* 25 but in tests */
}

bool
outbound_conf_uses_dane(const config_t *c)
{
	enum tls_policy p = TLS_POLICY_MAY;
	if (c->smtp_tls_policy && tls_policy_parse(c->smtp_tls_policy, &p) == 0 &&
	    tls_policy_is_dane(p))
		return true;
	if (!c->tls_policy_file)
		return false;
	buf_t err = BUF_INIT;
	table_t *t = table_load(c->tls_policy_file, TABLE_MAP, &err);
	buf_free(&err); /* a bad table is reported by outbound_new() */
	bool dane = false;
	for (size_t i = 0; t && i < table_count(t) && !dane; i++) {
		const table_entry_t *e = table_entry_at(t, i);
		dane = e->nvalues == 1 && tls_policy_parse(e->values[0], &p) == 0 &&
		    tls_policy_is_dane(p);
	}
	table_free(t);
	return dane;
}

const char *
outbound_conf_trust_anchor(const config_t *c, bool dane)
{
	const char *ta = c->dnssec_trust_anchor;
	if (ta && strcmp(ta, "none") == 0)
		return NULL;
	if (ta)
		return ta;
	return dane && access(OUTBOUND_ROOT_ANCHOR, R_OK) == 0 ? OUTBOUND_ROOT_ANCHOR : NULL;
}

/* what the resolver is made from: a reload with the same makes no new one */
static char *
dns_signature(const config_t *c)
{
	const char *ta = outbound_conf_trust_anchor(c, outbound_conf_uses_dane(c));
	return xasprintf("%s|%u|%s", c->dns_servers ? c->dns_servers : "", c->dns_timeout,
	    ta ? ta : "");
}

/* libunbound, with the configured servers ("a, b c" -> {a, b, c, NULL}) */
static int
start_dns(outbound_conf_t *oc, uv_loop_t *loop, const config_t *c, buf_t *err)
{
	size_t ns = 0;
	if (c->dns_servers) {
		char *list = xstrdup(c->dns_servers), *save = NULL;
		for (char *tok = strtok_r(list, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
			oc->servers = xrealloc(oc->servers, (ns + 2) * sizeof *oc->servers);
			oc->servers[ns++] = xstrdup(tok);
			oc->servers[ns] = NULL;
		}
		xfree(list);
	}
	dns_options_t dopt;
	memset(&dopt, 0, sizeof dopt);
	dopt.servers = ns ? (const char *const *)oc->servers : NULL;
	dopt.timeout_ms = c->dns_timeout * 1000u;
	bool dane = outbound_conf_uses_dane(c);
	dopt.trust_anchor_file = outbound_conf_trust_anchor(c, dane);
	oc->dnssec = dopt.trust_anchor_file != NULL;
	if (dane && oc->dnssec)
		log_info("dane: DNSSEC validation with the trust anchor %s", dopt.trust_anchor_file);
	else if (dane)
		log_warn("dane: DNSSEC validation is off (dnssec_trust_anchor %s), so DANE cannot "
		    "apply: dane destinations get opportunistic TLS, dane-only ones are deferred",
		    c->dnssec_trust_anchor ? "= none" : "unset and no " OUTBOUND_ROOT_ANCHOR);
	oc->dns = dns_new(loop, &dopt, err);
	oc->dns_sig = dns_signature(c);
	return oc->dns ? 0 : -1;
}

/* the manager's options from c and what oc holds (resolver, MX options,
 * credentials) */
static void
fill_options(outbound_conf_t *oc, const config_t *c, outbound_options_t *o)
{
	memset(o, 0, sizeof *o);
	o->hostname = oc->hostname;
	o->spool_dir = oc->spool_dir;
	o->relayhost = c->relayhost;
	if (c->relayhost_auth_file) {
		o->relay_auth_user = oc->relay_user;
		o->relay_auth_pass = oc->relay_pass;
	}
	o->dest_concurrency = c->destination_concurrency;
	o->total_concurrency = c->outbound_connections;
	o->max_per_conn = c->max_messages_per_connection;
	o->timeouts.connect = c->smtp_connect_timeout;
	o->dead_host_time = c->smtp_dead_host_time;
	o->mx_session_limit = c->smtp_mx_session_limit;
	o->timeouts.greeting = o->timeouts.helo = o->timeouts.mail = o->timeouts.rcpt = o->timeouts.rset =
	    c->smtp_command_timeout;
	o->timeouts.data_init = c->smtp_command_timeout < 120 ? c->smtp_command_timeout : 120;
	o->timeouts.data_block = c->smtp_data_timeout;
	o->timeouts.data_done = c->smtp_data_done_timeout;
	o->dns = oc->dns;
	o->mx = &oc->mxo;
	o->route = conf_route;
	o->route_arg = oc;
	tls_policy_parse(c->smtp_tls_policy, &o->tls_policy); /* checked by config.c */
	o->tls_policy_file = c->tls_policy_file;
	o->tls_ca_file = c->smtp_tls_ca_file;
	o->dnssec = oc->dnssec;
	o->mta_sts = c->smtp_mta_sts;
	o->mta_sts_port = (uint16_t)c->mta_sts_port;
}

outbound_conf_t *
outbound_conf_new(uv_loop_t *loop, const config_t *c, tables_t *const *tables,
    const char *spool_dir, buf_t *err)
{
	outbound_conf_t *oc = xcalloc(1, sizeof *oc);
	oc->tables = tables;
	/* checked first: nothing to undo when it fails */
	if (c->relayhost_auth_file && outbound_conf_relay_auth(c,
	    oc->relay_user, sizeof oc->relay_user, oc->relay_pass, sizeof oc->relay_pass, err) < 0)
		goto fail;
	if (start_dns(oc, loop, c, err) < 0)
		goto fail;
	build_mx_options(oc, c);

	oc->spool_dir = xstrdup(spool_dir);
	outbound_options_t o;
	fill_options(oc, c, &o);
	oc->outbound = outbound_new(loop, &o);
	if (oc->outbound == NULL) {
		buf_puts(err, "cannot start (see the log above)");
		goto fail;
	}
	return oc;
fail:
	outbound_conf_free(oc);
	return NULL;
}

/* free what start_dns() made in a scratch outbound_conf_t */
static void
drop_resolver(dns_t *dns, char **servers, char *sig)
{
	if (dns)
		dns_free(dns);
	for (size_t i = 0; servers && servers[i]; i++)
		xfree(servers[i]);
	xfree(servers);
	xfree(sig);
}

int
outbound_conf_reload(outbound_conf_t *oc, const config_t *c, buf_t *err)
{
	char user[RELAY_USER_MAX] = "", pass[RELAY_PASS_MAX] = "";
	int rc = -1;
	if (c->relayhost_auth_file &&
	    outbound_conf_relay_auth(c, user, sizeof user, pass, sizeof pass, err) < 0)
		goto out;
	/* a new resolver only when its settings changed (a fresh one starts
	 * with an empty cache) */
	outbound_conf_t fresh;
	memset(&fresh, 0, sizeof fresh);
	char *sig = dns_signature(c);
	bool new_dns = strcmp(sig, oc->dns_sig ? oc->dns_sig : "") != 0;
	xfree(sig);
	if (new_dns && start_dns(&fresh, dns_loop(oc->dns), c, err) < 0) {
		drop_resolver(fresh.dns, fresh.servers, fresh.dns_sig);
		goto out;
	}
	/* our own name for EHLO and MX loop detection (the listeners, and so
	 * our addresses, change only with a restart) */
	char *old_name = oc->hostname;
	oc->hostname = xstrdup(c->hostname);
	oc->self_names[0] = oc->hostname;
	outbound_options_t o;
	fill_options(oc, c, &o);
	o.hostname = oc->hostname;
	o.relay_auth_user = c->relayhost_auth_file ? user : NULL;
	o.relay_auth_pass = c->relayhost_auth_file ? pass : NULL;
	if (new_dns) {
		o.dns = fresh.dns;
		o.dnssec = fresh.dnssec;
	}
	if (outbound_reconfigure(oc->outbound, &o) < 0) {
		/* the manager keeps all its settings, the old resolver among them */
		buf_puts(err, "the tls_policy table (see the log above)");
		drop_resolver(fresh.dns, fresh.servers, fresh.dns_sig);
		xfree(old_name);
		goto out;
	}
	xfree(old_name);
	if (new_dns) {
		/* nothing uses the old resolver now: the manager dropped every
		 * lookup when it took the new settings */
		drop_resolver(oc->dns, oc->servers, oc->dns_sig);
		oc->dns = fresh.dns;
		oc->servers = fresh.servers;
		oc->dns_sig = fresh.dns_sig;
		oc->dnssec = fresh.dnssec;
	}
	memcpy(oc->relay_user, user, sizeof user);
	memcpy(oc->relay_pass, pass, sizeof pass);
	rc = 0;
out:
	explicit_bzero(user, sizeof user);
	explicit_bzero(pass, sizeof pass);
	return rc;
}

outbound_t *
outbound_conf_outbound(outbound_conf_t *oc)
{
	return oc->outbound;
}

void
outbound_conf_free(outbound_conf_t *oc)
{
	if (oc == NULL)
		return;
	if (oc->dns)
		dns_free(oc->dns);
	for (size_t i = 0; oc->servers && oc->servers[i]; i++)
		xfree(oc->servers[i]);
	xfree(oc->servers);
	xfree(oc->self_addrs);
	xfree(oc->hostname);
	xfree(oc->spool_dir);
	xfree(oc->dns_sig);
	explicit_bzero(oc->relay_user, sizeof oc->relay_user);
	explicit_bzero(oc->relay_pass, sizeof oc->relay_pass);
	xfree(oc);
}
