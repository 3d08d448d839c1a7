/*
 * config.c - read, validate and query tern's configuration file (see config.h).
 *
 * Every key is described once, in cfg_keys[] below: its name, its type, where
 * it lives in config_t, its default (written as it would be in the file and
 * parsed by the same code) and its bounds or extra check. Adding a key means
 * adding a field to config_t and one line to that table (and documenting it
 * in docs/configuration.md). The value parsers and setters are in
 * config_value.c, the checks across keys and the "did you mean" hint in
 * config_check.c; what the three share is in config_int.h.
 *
 * Guarantees: the file is read once, whole and bounded (CONFIG_MAX_FILE,
 * CONFIG_MAX_LINE); every problem is reported as "NAME:LINE: message" and
 * any problem makes the load fail (no half-valid configuration is ever
 * returned); a returned config_t has every field set to a valid value.
 * It must not: touch the network, create or check directories (that is
 * start-up's job), or log; callers decide what to do with the errors.
 */
#include "common/config.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/fileerr.h"
#include "lib/fsutil.h"
#include "lib/tls.h"
#include "lib/xalloc.h"

#include "common/config_int.h"

#define FLD(f) offsetof(config_t, f), sizeof(((config_t *)0)->f)
#define LST(f, n) offsetof(config_t, f), sizeof(((config_t *)0)->f), offsetof(config_t, n)

const struct cfg_key cfg_keys[] = {
	{"hostname", CT_DOMAIN, FLD(hostname), 0, 0, NULL, 0, 0, NULL},
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"listen", CT_LISTEN, LST(listen, nlisten), CF_REPEAT, "127.0.0.1:2525 smtp", 0, 0, NULL},
	{"user", CT_STRING, FLD(user), 0, CF_OPTIONAL, NULL, 0, 0, check_user},
	{"spool_dir", CT_PATH, FLD(spool_dir), 0, 0, "/var/spool/tern", 0, 0, NULL},
	{"maildir_base", CT_PATH, FLD(maildir_base), 0, 0, "/var/mail/tern", 0, 0, NULL},
	{"local_domains", CT_DOMAINS, LST(local_domains, nlocal_domains), 0, "localhost", 0, 0,
	    NULL},
	{"virtual_domains", CT_DOMAINS, LST(virtual_domains, nvirtual_domains), 0, "", 0, 0, NULL},
	{"mailboxes", CT_PATH, FLD(mailboxes_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"aliases", CT_PATH, FLD(aliases_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"virtual", CT_PATH, FLD(virtual_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"recipient_delimiter", CT_CHAR, FLD(recipient_delimiter), 0, 0, "+", 0, 0,
	    check_delimiter},
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"mynetworks", CT_NETS, LST(mynetworks, nmynetworks), 0, "127.0.0.0/8 ::1/128", 0, 0,
	    NULL},
	{"message_size_limit", CT_SIZE, FLD(message_size_limit), 0, 0, "25M", 1, 1024 * GIB, NULL},
	{"queue_min_free", CT_SIZE, FLD(queue_min_free), 0, 0, "0", 0, 1024 * GIB, NULL},
	/* RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted */
	{"max_recipients", CT_NUMBER, FLD(max_recipients), 0, 0, "1000", 100, 1000000, NULL},
	/* §4.5.3.1.6 and §4.5.3.1.4: 1000 and 512 octets are the minimum maxima */
	{"max_line_length", CT_SIZE, FLD(max_line_length), 0, 0, "1000", 1000, MIB, NULL},
	{"max_command_length", CT_SIZE, FLD(max_command_length), 0, 0, "512", 512, 64 * KIB, NULL},
	{"max_hops", CT_NUMBER, FLD(max_hops), 0, 0, "50", 1, 1000, NULL},
	{"max_errors", CT_NUMBER, FLD(max_errors), 0, 0, "20", 1, 10000, NULL},
	{"max_sessions", CT_NUMBER, FLD(max_sessions), 0, 0, "1000", 1, 1000000, NULL},
	{"max_sessions_per_ip", CT_NUMBER, FLD(max_sessions_per_ip), 0, 0, "50", 1, 1000000, NULL},
	/* default (set in apply_defaults): the value of mynetworks */
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"client_limit_exceptions", CT_NETS, LST(client_limit_exceptions, nclient_limit_exceptions), 0,
	    NULL, 0, 0, NULL},
	{"timeout_command", CT_DURATION, FLD(timeout_command), 0, 0, "300s", 1, DAY, NULL},
	{"timeout_data", CT_DURATION, FLD(timeout_data), 0, 0, "300s", 1, DAY, NULL},
	{"retry_min", CT_DURATION, FLD(retry_min), 0, 0, "300s", 1, 30 * DAY, NULL},
	{"retry_max", CT_DURATION, FLD(retry_max), 0, 0, "3600s", 1, 30 * DAY, NULL},
	{"queue_lifetime", CT_DURATION, FLD(queue_lifetime), 0, 0, "5d", 1, 365 * DAY, NULL},
	{"delay_warning", CT_DURATION, FLD(delay_warning), 0, 0, "0", 0, 365 * DAY, NULL},
	/* the oldest message's age alarm (daemon/queuealarm.c); 0 = off */
	{"queue_age_warning", CT_DURATION, FLD(queue_age_warning), 0, 0, "1d", 0, 365 * DAY, NULL},
	{"queue_age_warning_repeat", CT_DURATION, FLD(queue_age_warning_repeat), 0, 0, "1h", 1,
	    30 * DAY, NULL},
	{"local_concurrency", CT_NUMBER, FLD(local_concurrency), 0, 0, "8", 1, 1024, NULL},
	{"bounce_to_postmaster", CT_BOOL, FLD(bounce_to_postmaster), 0, 0, "no", 0, 0, NULL},
	{"relayhost", CT_STRING, FLD(relayhost), 0, CF_OPTIONAL, NULL, 0, 0, check_relayhost},
	{"relayhost_auth_file", CT_PATH, FLD(relayhost_auth_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"transport", CT_PATH, FLD(transport_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"dns_servers", CT_STRING, FLD(dns_servers), 0, CF_OPTIONAL, NULL, 0, 0, check_dns_servers},
	{"dns_timeout", CT_DURATION, FLD(dns_timeout), 0, 0, "15s", 1, 300, NULL},
	{"dnssec_trust_anchor", CT_PATH, FLD(dnssec_trust_anchor), 0, CF_OPTIONAL | CF_NONE_WORD, NULL,
	    0, 0, NULL},
	{"destination_concurrency", CT_NUMBER, FLD(destination_concurrency), 0, 0, "20", 1, 10000,
	    NULL},
	{"outbound_connections", CT_NUMBER, FLD(outbound_connections), 0, 0, "100", 1, 100000, NULL},
	{"max_messages_per_connection", CT_NUMBER, FLD(max_messages_per_connection), 0, 0, "100", 1,
	    100000, NULL},
	{"smtp_connect_timeout", CT_DURATION, FLD(smtp_connect_timeout), 0, 0, "30s", 1, DAY, NULL},
	/* a host that refused or timed out is skipped this long; 0: off */
	{"smtp_dead_host_time", CT_DURATION, FLD(smtp_dead_host_time), 0, 0, "60s", 0, DAY, NULL},
	/* RFC 5321 §5.1: servers tried per transaction after a 4xx */
	{"smtp_mx_session_limit", CT_NUMBER, FLD(smtp_mx_session_limit), 0, 0, "2", 1, 100, NULL},
	/* RFC 5321 §4.5.3.2: 5 minutes for the greeting, MAIL, RCPT; 3 per
	 * data block; 10 for the reply to the final dot */
	{"smtp_command_timeout", CT_DURATION, FLD(smtp_command_timeout), 0, 0, "300s", 1, DAY, NULL},
	{"smtp_data_timeout", CT_DURATION, FLD(smtp_data_timeout), 0, 0, "180s", 1, DAY, NULL},
	{"smtp_data_done_timeout", CT_DURATION, FLD(smtp_data_done_timeout), 0, 0, "600s", 1, DAY,
	    NULL},
	{"smtp_port", CT_NUMBER, FLD(smtp_port), 0, 0, "25", 1, 65535, NULL},
	{"tls_cert", CT_PATH, FLD(tls_cert), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"tls_key", CT_PATH, FLD(tls_key), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"tls_certificate", CT_TLSCERT, LST(tls_certificates, ntls_certificates), CF_REPEAT, NULL, 0, 0,
	    NULL},
	{"tls_protocols", CT_STRING, FLD(tls_protocols), 0, 0, ">=TLSv1.2", 0, 0, check_tls_protocols},
	{"tls_ciphers", CT_STRING, FLD(tls_ciphers), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"smtp_tls_policy", CT_STRING, FLD(smtp_tls_policy), 0, 0, "may", 0, 0, tls_policy_check},
	{"tls_policy", CT_PATH, FLD(tls_policy_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"smtp_tls_ca_file", CT_PATH, FLD(smtp_tls_ca_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	/* MTA-STS (RFC 8461, docs/tls.md); the port is for tests only */
	{"smtp_mta_sts", CT_BOOL, FLD(smtp_mta_sts), 0, 0, "no", 0, 0, NULL},
	{"mta_sts_port", CT_NUMBER, FLD(mta_sts_port), 0, 0, "443", 1, 65535, NULL},
	{"auth_users", CT_PATH, FLD(auth_users), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	/* AUTH against Dovecot (docs/operations.md) */
	{"auth_backend", CT_STRING, FLD(auth_backend), 0, 0, "file", 0, 0, check_auth_backend},
	{"dovecot_auth_socket", CT_STRING, FLD(dovecot_auth_socket), 0, CF_OPTIONAL, NULL, 0, 0,
	    check_dovecot_socket},
	{"dovecot_auth_timeout", CT_DURATION, FLD(dovecot_auth_timeout), 0, 0, "30s", 1, 300, NULL},
	{"auth_max_failures", CT_NUMBER, FLD(auth_max_failures), 0, 0, "3", 1, 100, NULL},
	{"auth_failure_delay", CT_DURATION, FLD(auth_failure_delay), 0, 0, "1s", 0, 60, NULL},
	{"sender_login", CT_PATH, FLD(sender_login_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	/* /run/tern: made by the systemd unit (RuntimeDirectory=), or by tern
	 * itself when started as root (smtpd/server.c server_socket_dir) */
	{"local_socket", CT_PATH, FLD(local_socket), 0, CF_OPTIONAL, "/run/tern/tern.sock", 0, 0, NULL},
	{"trusted_users", CT_WORDS, LST(trusted_users, ntrusted_users), 0, "", 0, 0, check_user},
	{"auth_min_password_length", CT_NUMBER, FLD(auth_min_password_length), 0, 0, "8", 1, 1024,
	    NULL},
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"queue_list_users", CT_WORDS, LST(queue_list_users, nqueue_list_users), 0, "anyone", 0, 0,
	    check_list_user},
	/* the HTTP listener and JSON API (lib/httpd.h, control/api.h) */
	{"http_listen", CT_STRING, FLD(http_listen), 0, CF_OPTIONAL, NULL, 0, 0, check_http_listen},
	{"http_token_file", CT_PATH, FLD(http_token_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"http_timeout", CT_DURATION, FLD(http_timeout), 0, 0, "10s", 1, 3600, NULL},
	{"http_max_connections", CT_NUMBER, FLD(http_max_connections), 0, 0, "64", 1, 10000, NULL},
	/* milters (docs/filtering.md) */
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"milter", CT_MILTER, LST(milters, nmilters), CF_REPEAT, NULL, 0, 0, NULL},
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"smtp_milters", CT_WORDS, LST(smtp_milters, nsmtp_milters), 0, "", 0, 0, NULL},
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"submission_milters", CT_WORDS, LST(submission_milters, nsubmission_milters), 0, "", 0, 0,
	    NULL},
	/* DNSBL/DNSWL (filter/dnsbl.h: dnsbl_config_check() checks each site) */
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"dnsbl_sites", CT_WORDS, LST(dnsbl_sites, ndnsbl_sites), 0, "", 0, 0, NULL},
	{"dnsbl_threshold", CT_NUMBER, FLD(dnsbl_threshold), 0, 0, "1", 1, 100000, NULL},
	{"dnsbl_stage", CT_STRING, FLD(dnsbl_stage), 0, 0, "connect", 0, 0, check_dnsbl_stage},
	{"dnsbl_timeout", CT_DURATION, FLD(dnsbl_timeout), 0, 0, "10s", 1, 300, NULL},
	/* header/body checks (filter/content.h: the server loads them) */
	{"header_checks", CT_PATH, FLD(header_checks), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"body_checks", CT_PATH, FLD(body_checks), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	/* rate limits and greylisting (filter/ratelimit.h, filter/greylist.h, docs/filtering.md) */
	{"ratelimit_client_connections", CT_STRING, FLD(rl_client_connections), 0, CF_OPTIONAL, NULL,
	    0, 0, check_rate},
	{"ratelimit_client_messages", CT_STRING, FLD(rl_client_messages), 0, CF_OPTIONAL, NULL, 0, 0,
	    check_rate},
	{"ratelimit_client_recipients", CT_STRING, FLD(rl_client_recipients), 0, CF_OPTIONAL, NULL,
	    0, 0, check_rate},
	{"ratelimit_user_messages", CT_STRING, FLD(rl_user_messages), 0, CF_OPTIONAL, NULL, 0, 0,
	    check_rate},
	{"ratelimit_user_recipients", CT_STRING, FLD(rl_user_recipients), 0, CF_OPTIONAL, NULL, 0, 0,
	    check_rate},
	{"ratelimit_sender_domain_messages", CT_STRING, FLD(rl_sender_domain_messages), 0,
	    CF_OPTIONAL, NULL, 0, 0, check_rate},
	{"ratelimit_max_keys", CT_NUMBER, FLD(rl_max_keys), 0, 0, "100000", 100, 100000000, NULL},
	{"ratelimit_redis", CT_STRING, FLD(rl_redis), 0, CF_OPTIONAL, NULL, 0, 0, check_redis},
	{"ratelimit_redis_timeout", CT_DURATION, FLD(rl_redis_timeout), 0, 0, "1s", 1, 60, NULL},
	{"ratelimit_redis_failure", CT_STRING, FLD(rl_redis_failure), 0, 0, "open", 0, 0,
	    check_open_closed},
	{"greylist", CT_BOOL, FLD(greylist), 0, 0, "no", 0, 0, NULL},
	{"greylist_delay", CT_DURATION, FLD(greylist_delay), 0, 0, "5m", 1, DAY, NULL},
	{"greylist_expiry", CT_DURATION, FLD(greylist_expiry), 0, 0, "1d", 1, 30 * DAY, NULL},
	{"greylist_lifetime", CT_DURATION, FLD(greylist_lifetime), 0, 0, "35d", 1, 365 * DAY, NULL},
	{"greylist_max_entries", CT_NUMBER, FLD(greylist_max_entries), 0, 0, "100000", 100,
	    100000000, NULL},
	/* SRS, the Sender Rewriting Scheme (mailauth/srs.h, docs/srs.md); the
	 * secret file is read by the daemon (srs_secrets_load), not here */
	{"srs_domain", CT_DOMAIN, FLD(srs_domain), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"srs_secret_file", CT_PATH, FLD(srs_secret_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"srs_max_age", CT_DURATION, FLD(srs_max_age), 0, 0, "21d", DAY, 1000 * DAY, NULL},
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"srs_exclude_domains", CT_DOMAINS, LST(srs_exclude_domains, nsrs_exclude_domains), 0, "", 0,
	    0, NULL},
	/* inbound mail authentication (mailauth/mailauth.h, docs/authentication.md);
	 * psl_file is loaded by mailauth_config_check() at start and reload */
	{"spf_check", CT_BOOL, FLD(spf_check), 0, 0, "yes", 0, 0, NULL},
	{"spf_helo_check", CT_BOOL, FLD(spf_helo_check), 0, 0, "no", 0, 0, NULL},
	{"spf_fail_action", CT_STRING, FLD(spf_fail_action), 0, 0, "tag", 0, 0, check_tag_reject},
	{"spf_temperror_action", CT_STRING, FLD(spf_temperror_action), 0, 0, "tag", 0, 0,
	    check_tag_defer},
	{"dkim_verify", CT_BOOL, FLD(dkim_verify), 0, 0, "yes", 0, 0, NULL},
	{"dkim_max_signatures", CT_NUMBER, FLD(dkim_max_signatures), 0, 0, "5", 1, 50, NULL},
	{"arc_verify", CT_BOOL, FLD(arc_verify), 0, 0, "yes", 0, 0, NULL},
	/* ARC (docs/authentication.md): DMARC failures rescued for the sealers
	 * listed; mail tern forwards sealed with arc_seal_domain's
	 * dkim_sign_keys key */
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"arc_trusted_sealers", CT_DOMAINS, LST(arc_trusted_sealers, narc_trusted_sealers), 0, "", 0,
	    0, NULL},
	{"arc_seal_domain", CT_DOMAIN, FLD(arc_seal_domain), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"dmarc_check", CT_BOOL, FLD(dmarc_check), 0, 0, "yes", 0, 0, NULL},
	{"dmarc_enforce", CT_BOOL, FLD(dmarc_enforce), 0, 0, "no", 0, 0, NULL},
	{"dmarc_quarantine_action", CT_STRING, FLD(dmarc_quarantine_action), 0, 0, "tag", 0, 0,
	    check_tag_hold},
	{"psl_file", CT_PATH, FLD(psl_file), 0, 0, "/usr/share/publicsuffix/public_suffix_list.dat",
	    0, 0, NULL},
	/* default (set in apply_defaults): the value of hostname */
	{"authserv_id", CT_STRING, FLD(authserv_id), 0, CF_OPTIONAL, NULL, 0, 0, check_authserv_id},
	{"mailauth_timeout", CT_DURATION, FLD(mailauth_timeout), 0, 0, "30s", 1, 300, NULL},
	/* DMARC aggregate reports (daemon/reports.c); defaults of org and email
	 * (set in apply_defaults) come from hostname */
	{"dmarc_reports", CT_BOOL, FLD(dmarc_reports), 0, 0, "no", 0, 0, NULL},
	{"dmarc_report_org", CT_STRING, FLD(dmarc_report_org), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"dmarc_report_email", CT_STRING, FLD(dmarc_report_email), 0, CF_OPTIONAL, NULL, 0, 0,
	    check_report_email},
	{"dmarc_report_interval", CT_DURATION, FLD(dmarc_report_interval), 0, 0, "1d", 1, 7 * DAY,
	    NULL},
	/* TLS-RPT (RFC 8460; deliver/tlsrpt.h, daemon/reports.c); defaults of
	 * org, email and contact (set in apply_defaults) come from hostname */
	{"tls_reports", CT_BOOL, FLD(tls_reports), 0, 0, "no", 0, 0, NULL},
	{"tls_report_org", CT_STRING, FLD(tls_report_org), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"tls_report_email", CT_STRING, FLD(tls_report_email), 0, CF_OPTIONAL, NULL, 0, 0,
	    check_report_email},
	{"tls_report_contact", CT_STRING, FLD(tls_report_contact), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"tls_report_interval", CT_DURATION, FLD(tls_report_interval), 0, 0, "1d", 1, 7 * DAY, NULL},
	/* the log (lib/log.h, docs/logging.md): a file besides stderr or syslog */
	{"log_file", CT_PATH, FLD(log_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"log_format", CT_STRING, FLD(log_format), 0, 0, "text", 0, 0, check_log_format},
	{"tls_report_retry", CT_DURATION, FLD(tls_report_retry), 0, 0, "5m", 1, 6 * 3600, NULL},
	/* seccomp and Landlock after start-up (lib/sandbox.h) */
	{"sandbox", CT_BOOL, FLD(sandbox), 0, 0, "yes", 0, 0, NULL},
	/* DKIM signing (mailauth/sign.h: mailauth_sign_load() reads the table
	 * and its keys after the configuration) */
	{"dkim_sign_keys", CT_PATH, FLD(dkim_sign_keys), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
};

#define NKEYS (sizeof cfg_keys / sizeof cfg_keys[0])

_Static_assert(NKEYS <= CFG_MAX_KEYS, "raise CFG_MAX_KEYS in config_int.h");
const size_t cfg_nkeys = NKEYS;

void
cfg_error(cfg_parser_t *p, unsigned line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fileerr_vadd(p->errors, &p->nerrors, CONFIG_MAX_ERRORS, p->name, line, fmt, ap);
	va_end(ap);
}

size_t
config_milters_for(const config_t *c, enum listen_mode mode, const config_milter_t **out,
    size_t max)
{
	char **names = mode == LISTEN_SMTP ? c->smtp_milters
	    : mode == LISTEN_LOCAL ? NULL : c->submission_milters;
	size_t n = mode == LISTEN_SMTP ? c->nsmtp_milters
	    : mode == LISTEN_LOCAL ? 0 : c->nsubmission_milters, k = 0;
	for (size_t i = 0; i < n && k < max; i++)
		for (size_t j = 0; j < c->nmilters; j++)
			if (strcmp(c->milters[j].name, names[i]) == 0) {
				out[k++] = &c->milters[j];
				break;
			}
	return k;
}

/* ------------------------------------------------------------------ */
/* the file                                                            */

static void
finish_entry(cfg_parser_t *p, const char *key, const char *value, unsigned line)
{
	const struct cfg_key *k = NULL;
	size_t ki;
	for (ki = 0; ki < NKEYS; ki++) {
		if (strcmp(cfg_keys[ki].name, key) == 0) {
			k = &cfg_keys[ki];
			break;
		}
	}
	if (k == NULL) {
		const char *hint = cfg_key_hint(key);
		if (hint)
			cfg_error(p, line, "unknown key \"%.*s%s\" (did you mean \"%s\"?)", SHOWV(key),
			    hint);
		else
			cfg_error(p, line, "unknown key \"%.*s%s\"", SHOWV(key));
		return;
	}
	if (p->set_line[ki] && !(k->flags & CF_REPEAT)) {
		cfg_error(p, line, "duplicate key \"%s\" (first set on line %u)", key, p->set_line[ki]);
		return;
	}
	if (p->set_line[ki] == 0)
		p->set_line[ki] = line;
	tokens_t t;
	if (cfg_tokenize(value, &t) < 0) {
		p->failed[ki] = true;
		cfg_error(p, line, "%s: unterminated quote", key);
		return;
	}
	if (cfg_set(p, k, line, &t) < 0)
		p->failed[ki] = true;
	cfg_tokens_free(&t);
}

/* Copy line[0..n) without its comment into out; -1 on an unterminated quote. */
static int
strip_comment(const char *line, size_t n, buf_t *out)
{
	bool q = false;
	size_t i;
	for (i = 0; i < n; i++) {
		char ch = line[i];
		if (q && ch == '\\' && i + 1 < n) {
			i++;
			continue;
		}
		if (ch == '"')
			q = !q;
		else if (ch == '#' && !q)
			break;
	}
	if (q)
		return -1;
	while (i > 0 && (line[i - 1] == ' ' || line[i - 1] == '\t'))
		i--;
	buf_append(out, line, i);
	return 0;
}

static void
parse_text(cfg_parser_t *p, const char *data, size_t len)
{
	buf_t key = BUF_INIT, val = BUF_INIT, tmp = BUF_INIT;
	bool have = false;  /* an entry is being collected */
	bool broken = false; /* ... but it had an error: swallow its continuation lines */
	unsigned entry_line = 0, lineno = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		if (lineno == 0) /* 4 billion lines: cannot happen within CONFIG_MAX_FILE */
			break;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		bool cont = n > 0 && (line[0] == ' ' || line[0] == '\t');
		size_t bad = n;
		if (n > CONFIG_MAX_LINE) {
			cfg_error(p, lineno, "line longer than %d octets", CONFIG_MAX_LINE);
			bad = 0;
		}
		for (size_t i = 0; i < n && bad == n; i++) {
			unsigned char ch = (unsigned char)line[i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				cfg_error(p, lineno, "control character 0x%02x in line", ch);
				bad = i;
			}
		}
		if (bad < n) {
			/* the entry this line starts or continues is not applied */
			if (!cont && have && !broken)
				finish_entry(p, key.data, buf_cstr(&val), entry_line);
			have = false;
			broken = true;
			continue;
		}
		size_t s = 0;
		while (s < n && (line[s] == ' ' || line[s] == '\t'))
			s++;
		if (s == n || line[s] == '#')
			continue;
		if (!cont) {
			if (have && !broken)
				finish_entry(p, key.data, buf_cstr(&val), entry_line);
			have = false;
			broken = false;
		}
		buf_reset(&tmp);
		if (strip_comment(line + s, n - s, &tmp) < 0) {
			cfg_error(p, lineno, "unterminated quote");
			have = false;
			broken = true;
			continue;
		}
		if (cont) {
			if (!have && !broken)
				cfg_error(p, lineno, "continuation line (it starts with white space) "
				    "without a key before it");
			if (have && !broken) {
				buf_putc(&val, ' ');
				buf_append(&val, tmp.data, tmp.len);
			}
			broken = broken || !have;
			continue;
		}
		const char *t = tmp.data;
		size_t k = 0;
		while (k < tmp.len && cfg_key_char((unsigned char)t[k]))
			k++;
		size_t e = k;
		while (e < tmp.len && (t[e] == ' ' || t[e] == '\t'))
			e++;
		buf_reset(&key);
		buf_append(&key, t, k);
		if (k == 0 || e == tmp.len || t[e] != '=') {
			if (k > 0 && e > k)
				cfg_error(p, lineno, "expected \"key = value\" (missing '=' after "
				    "\"%.*s%s\"?)", SHOWV(key.data));
			else
				cfg_error(p, lineno, "expected \"key = value\"");
			broken = true;
			continue;
		}
		e++;
		while (e < tmp.len && (t[e] == ' ' || t[e] == '\t'))
			e++;
		buf_reset(&val);
		buf_append(&val, t + e, tmp.len - e);
		have = true;
		entry_line = lineno;
	}
	if (have && !broken)
		finish_entry(p, key.data, buf_cstr(&val), entry_line);
	buf_free(&key);
	buf_free(&val);
	buf_free(&tmp);
}

/* ------------------------------------------------------------------ */
/* defaults, checks across keys, load                                  */

size_t
cfg_key_index(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(cfg_keys[i].name, name) == 0)
			return i;
	abort(); /* a name below that is not in cfg_keys[] */
}

static void
apply_defaults(cfg_parser_t *p)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		if (p->set_line[i] || k->def == NULL)
			continue;
		tokens_t t;
		if (cfg_tokenize(k->def, &t) < 0 || cfg_set(p, k, 0, &t) < 0)
			abort(); /* a default that does not parse is a bug in cfg_keys[] */
		cfg_tokens_free(&t);
	}
	if (p->c->hostname == NULL) {
		char h[256];
		if (gethostname(h, sizeof h) < 0)
			h[0] = '\0';
		h[sizeof h - 1] = '\0';
		p->c->hostname = xstrdup(cfg_valid_domain(h) ? h : "localhost");
	}
	if (p->c->authserv_id == NULL)
		p->c->authserv_id = xstrdup(p->c->hostname);
	if (p->c->dmarc_report_org == NULL)
		p->c->dmarc_report_org = xstrdup(p->c->hostname);
	if (p->c->dmarc_report_email == NULL)
		p->c->dmarc_report_email = xasprintf("noreply-dmarc@%s", p->c->hostname);
	if (p->c->tls_report_org == NULL)
		p->c->tls_report_org = xstrdup(p->c->hostname);
	if (p->c->tls_report_email == NULL)
		p->c->tls_report_email = xasprintf("noreply-tlsrpt@%s", p->c->hostname);
	if (p->c->tls_report_contact == NULL)
		p->c->tls_report_contact = xstrdup(p->c->tls_report_email);
	/* The spool and the Maildirs are reached by the unprivileged user after
	 * the daemon drops root: resolve the symbolic links of their existing
	 * part now, so that a link to a place that user can reach is followed
	 * from there (e.g. ./var -> /var/tmp/... under a directory only root
	 * may enter). */
	for (size_t i = 0; i < 2; i++) {
		char **f = i == 0 ? &p->c->spool_dir : &p->c->maildir_base;
		if (*f) {
			char *r = path_resolve(*f);
			xfree(*f);
			*f = r;
		}
	}
	/* Postfix's smtpd_client_event_limit_exceptions = $mynetworks */
	if (!p->set_line[cfg_key_index("client_limit_exceptions")]) {
		size_t n = p->c->nmynetworks;
		p->c->client_limit_exceptions = xcalloc(n ? n : 1, sizeof(netmask_t));
		if (n)
			memcpy(p->c->client_limit_exceptions, p->c->mynetworks, n * sizeof(netmask_t));
		p->c->nclient_limit_exceptions = n;
	}
}


static config_t *
config_parse(const char *name, const char *abspath, const char *data, size_t len,
    buf_t *errors)
{
	cfg_parser_t p;
	memset(&p, 0, sizeof p);
	p.name = name;
	p.errors = errors;
	p.c = xcalloc(1, sizeof *p.c);
	p.c->path = xstrdup(abspath);
	char *dir = xstrdup(abspath);
	char *slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir) {
		xfree(dir);
		dir = xstrdup("/");
	} else {
		*slash = '\0';
	}
	p.basedir = dir;

	parse_text(&p, data, len);
	apply_defaults(&p);
	cfg_cross_checks(&p);

	xfree(dir);
	if (p.nerrors) {
		config_free(p.c);
		return NULL;
	}
	p.c->key_line = xmalloc(sizeof p.set_line);
	memcpy(p.c->key_line, p.set_line, sizeof p.set_line);
	return p.c;
}

unsigned
config_key_line(const config_t *c, const char *key)
{
	for (size_t i = 0; c->key_line && i < NKEYS; i++)
		if (strcmp(cfg_keys[i].name, key) == 0)
			return c->key_line[i];
	return 0;
}

config_t *
config_parse_buf(const char *name, const char *data, size_t len, buf_t *errors)
{
	char *abs;
	if (name[0] == '/') {
		abs = xstrdup(name);
	} else {
		char cwd[PATH_MAX];
		if (getcwd(cwd, sizeof cwd) == NULL)
			strcpy(cwd, "/");
		abs = cfg_make_absolute(cwd, name[0] ? name : "config");
	}
	config_t *c = config_parse(name, abs, data, len, errors);
	xfree(abs);
	return c;
}

config_t *
config_load(const char *path, buf_t *errors)
{
	char *data;
	size_t len;
	if (read_file(path, &data, &len, CONFIG_MAX_FILE) < 0) {
		if (errors)
			buf_printf(errors, "%s:0: cannot read the configuration: %s\n", path,
			    errno == EFBIG ? "file larger than 1 MiB" : strerror(errno));
		return NULL;
	}
	/* relative paths in the file are relative to its real directory */
	char *abs = realpath(path, NULL);
	config_t *c;
	if (abs) {
		c = config_parse(path, abs, data, len, errors);
		free(abs);
	} else {
		c = config_parse_buf(path, data, len, errors);
	}
	xfree(data);
	return c;
}

const config_t *
config_ref(const config_t *c)
{
	((config_t *)c)->refs++;
	return c;
}

void
config_free(config_t *c)
{
	if (c == NULL)
		return;
	if (c->refs > 0) {
		c->refs--;
		return;
	}
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		void *f = (char *)c + k->off;
		size_t *n = (size_t *)(void *)((char *)c + k->noff);
		switch (k->type) {
		case CT_STRING:
		case CT_DOMAIN:
		case CT_PATH: xfree(*(char **)f); break;
		case CT_DOMAINS:
		case CT_WORDS: cfg_free_strv(*(char ***)f, *n); break;
		case CT_LISTEN:
			for (size_t j = 0; j < *n; j++)
				xfree((*(listen_spec_t **)f)[j].addr);
			xfree(*(listen_spec_t **)f);
			break;
		case CT_NETS: xfree(*(netmask_t **)f); break;
		case CT_TLSCERT:
			for (size_t j = 0; j < *n; j++) {
				xfree((*(config_tls_cert_t **)f)[j].cert);
				xfree((*(config_tls_cert_t **)f)[j].key);
			}
			xfree(*(config_tls_cert_t **)f);
			break;
		case CT_MILTER:
			for (size_t j = 0; j < *n; j++) {
				config_milter_t *m = &(*(config_milter_t **)f)[j];
				xfree(m->name);
				xfree(m->path);
				xfree(m->host);
			}
			xfree(*(config_milter_t **)f);
			break;
		default: break;
		}
	}
	if (c->dkim_signers_free)
		c->dkim_signers_free(c->dkim_signers);
	xfree(c->key_line);
	xfree(c->path);
	xfree(c);
}

/* ------------------------------------------------------------------ */
/* queries                                                             */

static bool
net_match(const netmask_t *m, int family, const unsigned char *a)
{
	if (m->family != family)
		return false;
	int full = m->prefix / 8, rest = m->prefix % 8;
	if (memcmp(m->addr, a, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - rest));
	return (m->addr[full] & mask) == (a[full] & mask);
}

static bool
nets_contain(const netmask_t *v, size_t n, const struct sockaddr *sa)
{
	unsigned char a[16];
	int family;
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		memcpy(a, &s4->sin_addr, 4);
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			/* a dual-stack socket shows IPv4 clients as ::ffff:a.b.c.d */
			memcpy(a, (const unsigned char *)&s6->sin6_addr + 12, 4);
			family = AF_INET;
		} else {
			memcpy(a, &s6->sin6_addr, 16);
			family = AF_INET6;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (net_match(&v[i], family, a))
			return true;
	return false;
}

bool
config_in_mynetworks(const config_t *c, const struct sockaddr *sa)
{
	return c != NULL && nets_contain(c->mynetworks, c->nmynetworks, sa);
}

bool
config_limit_exempt(const config_t *c, const struct sockaddr *sa)
{
	return c != NULL &&
	    nets_contain(c->client_limit_exceptions, c->nclient_limit_exceptions, sa);
}

static bool
domain_in(char *const *v, size_t n, const char *domain)
{
	if (domain == NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(v[i], domain) == 0)
			return true;
	return false;
}

bool
config_is_local_domain(const config_t *c, const char *domain)
{
	return domain_in(c->local_domains, c->nlocal_domains, domain);
}

bool
config_is_virtual_domain(const config_t *c, const char *domain)
{
	return domain_in(c->virtual_domains, c->nvirtual_domains, domain);
}

uid_t
config_run_uid(const config_t *c)
{
	struct passwd *pw = c->user ? getpwnam(c->user) : NULL;
	return pw ? pw->pw_uid : geteuid();
}
