/*
 * config_check.c - what tern's configuration reader checks beyond one
 * value: conflicts between keys that are each valid alone (retry_min above
 * retry_max, a milter list naming no defined milter, a domain both local and
 * virtual, ...), and the "did you mean" hint for an unknown key (a Postfix
 * main.cf name, or a key within a small edit distance).
 *
 * Guarantees: a conflict is reported once, on the line of the later of the
 * keys involved, and only when neither key's value was refused (its own
 * error is enough); the hint costs at most a bounded edit distance per key.
 * It must not: change the config_t it checks, touch the network, or log.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "common/config_int.h"

/* Postfix main.cf names an administrator may type out of habit */
static const struct {
	const char *postfix, *tern;
} cfg_postfix_names[] = {
	{"myhostname", "hostname"},
	{"inet_interfaces", "listen"},
	{"mail_owner", "user"},
	{"queue_directory", "spool_dir"},
	{"mydestination", "local_domains"},
	{"virtual_alias_domains", "virtual_domains"},
	{"virtual_alias_maps", "virtual"},
	{"alias_maps", "aliases"},
	{"alias_database", "aliases"},
	{"local_recipient_maps", "mailboxes"},
	{"virtual_mailbox_maps", "mailboxes"},
	{"virtual_mailbox_base", "maildir_base"},
	{"home_mailbox", "maildir_base"},
	{"smtpd_recipient_limit", "max_recipients"},
	{"line_length_limit", "max_line_length"},
	{"smtpd_hard_error_limit", "max_errors"},
	{"default_process_limit", "max_sessions"},
	{"smtpd_client_connection_count_limit", "max_sessions_per_ip"},
	{"smtpd_client_event_limit_exceptions", "client_limit_exceptions"},
	{"smtpd_timeout", "timeout_command"},
	{"hopcount_limit", "max_hops"},
	{"queue_minfree", "queue_min_free"},
	{"minimal_backoff_time", "retry_min"},
	{"maximal_backoff_time", "retry_max"},
	{"maximal_queue_lifetime", "queue_lifetime"},
	{"delay_warning_time", "delay_warning"},
	{"local_destination_concurrency_limit", "local_concurrency"},
	{"transport_maps", "transport"},
	{"smtp_sasl_password_maps", "relayhost_auth_file"},
	{"default_destination_concurrency_limit", "destination_concurrency"},
	{"smtp_connect_timeout", "smtp_connect_timeout"},
	{"smtp_mx_session_limit", "smtp_mx_session_limit"},
	{"smtp_data_done_timeout", "smtp_data_done_timeout"},
	{"smtpd_tls_cert_file", "tls_cert"},
	{"smtpd_tls_chain_files", "tls_cert"},
	{"smtpd_tls_key_file", "tls_key"},
	{"smtpd_tls_protocols", "tls_protocols"},
	{"smtpd_tls_mandatory_protocols", "tls_protocols"},
	{"smtp_tls_security_level", "smtp_tls_policy"},
	{"smtp_tls_policy_maps", "tls_policy"},
	{"smtp_tls_CAfile", "smtp_tls_ca_file"},
	{"smtpd_sender_login_maps", "sender_login"},
	{"smtpd_sasl_type", "auth_backend"},
	{"smtpd_sasl_path", "dovecot_auth_socket"},
	{"smtpd_client_auth_rate_limit", "auth_max_failures"},
	{"smtpd_milters", "smtp_milters"},
	{"milter_default_action", "milter"},
};

/* ------------------------------------------------------------------ */
/* unknown keys                                                        */

static size_t
edit_distance(const char *a, const char *b, size_t max)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return (size_t)-1;
	/* the distance is at least the difference in length: most keys are
	 * ruled out before any work (a file of junk keys stays cheap) */
	if ((la > lb ? la - lb : lb - la) > max)
		return max + 1;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		size_t rowmin = row[0];
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = (a[i - 1] | 0x20) == (b[j - 1] | 0x20) ? 0 : 1;
			size_t best = diag + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
			if (best < rowmin)
				rowmin = best;
		}
		if (rowmin > max)
			return max + 1; /* the rows never decrease */
	}
	return row[lb];
}

const char *
cfg_key_hint(const char *name)
{
	for (size_t i = 0; i < sizeof cfg_postfix_names / sizeof cfg_postfix_names[0]; i++)
		if (strcasecmp(name, cfg_postfix_names[i].postfix) == 0)
			return cfg_postfix_names[i].tern;
	const char *best = NULL;
	size_t bestd = (size_t)-1;
	for (size_t i = 0; i < cfg_nkeys; i++) {
		size_t len = strlen(cfg_keys[i].name);
		size_t limit = len <= 5 ? 1 : len <= 10 ? 2 : 3;
		size_t d = edit_distance(name, cfg_keys[i].name, limit);
		if (d <= limit && d < bestd) {
			best = cfg_keys[i].name;
			bestd = d;
		}
	}
	return best;
}

/* ------------------------------------------------------------------ */
/* checks across keys                                                  */

/* both keys good: the line to report a conflict on (the later one), else 0 */
static unsigned
pair_line(cfg_parser_t *p, const char *a, const char *b)
{
	size_t ia = cfg_key_index(a), ib = cfg_key_index(b);
	if (p->failed[ia] || p->failed[ib])
		return 0;
	return p->set_line[ia] > p->set_line[ib] ? p->set_line[ia] : p->set_line[ib];
}

void
cfg_cross_checks(cfg_parser_t *p)
{
	config_t *c = p->c;
	unsigned line;
	char a[32], b[32];
	if ((line = pair_line(p, "retry_min", "retry_max")) && c->retry_min > c->retry_max) {
		cfg_fmt_duration(a, sizeof a, c->retry_min);
		cfg_fmt_duration(b, sizeof b, c->retry_max);
		cfg_error(p, line, "retry_min (%s) is longer than retry_max (%s)", a, b);
	}
	if ((line = pair_line(p, "delay_warning", "queue_lifetime")) && c->delay_warning &&
	    c->delay_warning >= c->queue_lifetime) {
		cfg_fmt_duration(a, sizeof a, c->delay_warning);
		cfg_fmt_duration(b, sizeof b, c->queue_lifetime);
		cfg_error(p, line, "delay_warning (%s) is not shorter than queue_lifetime (%s)", a, b);
	}
	for (int w = 0; w < 2; w++) {
		const char *key = w ? "submission_milters" : "smtp_milters";
		char **v = w ? c->submission_milters : c->smtp_milters;
		size_t n = w ? c->nsubmission_milters : c->nsmtp_milters;
		for (size_t i = 0; i < n; i++) {
			bool found = false;
			for (size_t j = 0; j < c->nmilters && !found; j++)
				found = strcmp(c->milters[j].name, v[i]) == 0;
			for (size_t j = 0; j < i && found; j++)
				if (strcmp(v[j], v[i]) == 0) {
					cfg_error(p, p->set_line[cfg_key_index(key)], "%s: %s is listed twice", key,
					    v[i]);
					break;
				}
			if (!found)
				cfg_error(p, p->set_line[cfg_key_index(key)], "%s: no \"milter = %s ...\" line "
				    "defines %s", key, v[i], v[i]);
		}
	}
	/* AUTH: one backend, and what it needs (docs/operations.md) */
	size_t ib = cfg_key_index("auth_backend");
	if (!p->failed[ib] && c->auth_backend && strcmp(c->auth_backend, "dovecot") == 0) {
		if (!c->dovecot_auth_socket && !p->failed[cfg_key_index("dovecot_auth_socket")])
			cfg_error(p, p->set_line[ib], "auth_backend = dovecot needs dovecot_auth_socket "
			    "(Dovecot's auth-client socket: a path or inet:HOST:PORT)");
		if (c->auth_users)
			cfg_error(p, p->set_line[cfg_key_index("auth_users")], "auth_users is the password "
			    "file of auth_backend = file; with auth_backend = dovecot, Dovecot checks passwords");
	} else if (!p->failed[ib] && c->dovecot_auth_socket) {
		cfg_error(p, p->set_line[cfg_key_index("dovecot_auth_socket")], "dovecot_auth_socket is "
		    "set but auth_backend is not dovecot");
	}
	/* SRS (docs/srs.md): rewriting needs a secret */
	if (c->srs_domain && !c->srs_secret_file && !p->failed[cfg_key_index("srs_domain")])
		cfg_error(p, p->set_line[cfg_key_index("srs_domain")], "srs_domain is set but "
		    "srs_secret_file is not: SRS needs a secret (one a line, the first signs)");
	/* the others are chosen by SNI; a client without one gets tls_cert */
	if (c->ntls_certificates && !c->tls_cert)
		cfg_error(p, c->tls_certificates[0].line, "tls_certificate needs tls_cert, the default "
		    "certificate (for clients that send no name or one no certificate has)");
	for (size_t i = 0; c->tls_cert && i < c->ntls_certificates; i++)
		if (strcmp(c->tls_certificates[i].cert, c->tls_cert) == 0)
			cfg_error(p, c->tls_certificates[i].line, "tls_certificate: %s is already tls_cert",
			    c->tls_cert);
	if ((line = pair_line(p, "local_domains", "virtual_domains"))) {
		for (size_t i = 0; i < c->nvirtual_domains; i++)
			if (config_is_local_domain(c, c->virtual_domains[i]))
				cfg_error(p, line, "%s is in both local_domains and virtual_domains",
				    c->virtual_domains[i]);
	}
}
