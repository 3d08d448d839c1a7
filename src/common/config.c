/*
 * config.c - read, validate and query tern's configuration file (see config.h).
 *
 * Every key is described once, in cfg_keys[] below: its name, its type, where
 * it lives in config_t, its default (written as it would be in the file and
 * parsed by the same code) and its bounds or extra check. Adding a key means
 * adding a field to config_t and one line to that table (and documenting it
 * in docs/configuration.md).
 *
 * Guarantees: the file is read once, whole and bounded (CONFIG_MAX_FILE,
 * CONFIG_MAX_LINE); every problem is reported as "NAME:LINE: message" and
 * any problem makes the load fail (no half-valid configuration is ever
 * returned); a returned config_t has every field set to a valid value.
 * It must not: touch the network, create or check directories (that is
 * start-up's job), or log; callers decide what to do with the errors.
 */
#include "common/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/fileerr.h"
#include "lib/fsutil.h"
#include "lib/tls.h"
#include "lib/xalloc.h"

#define CONFIG_MAX_FILE (1024 * 1024)
#define CONFIG_MAX_LINE 65536
#define CONFIG_MAX_ERRORS 100
#define CONFIG_MAX_LIST 4096 /* entries in one list key (domains, networks, listen) */

enum cfg_type {
	CT_STRING,   /* one word; empty = NULL */
	CT_DOMAIN,   /* one domain name, kept as written */
	CT_PATH,     /* one path, made absolute; empty = NULL when CF_OPTIONAL */
	CT_DOMAINS,  /* list of domain names, lowercased, duplicates dropped */
	CT_LISTEN,   /* list of ADDR:PORT [mode] */
	CT_CHAR,     /* one character or empty (= '\0') */
	CT_NETS,     /* list of networks */
	CT_NUMBER,   /* plain decimal number */
	CT_SIZE,     /* number with k, M, G */
	CT_DURATION, /* number with s, m, h, d, w */
	CT_WORDS,    /* list of words, each passed to check, kept as written */
	CT_MILTER,   /* NAME inet:PORT@HOST|unix:PATH [option=value ...] */
	CT_BOOL,     /* yes/no, true/false, on/off, 1/0 (any case), stored as bool */
};

#define CF_REPEAT 0x01   /* may appear on several lines, values accumulate */
#define CF_OPTIONAL 0x02 /* an empty value means "none" (NULL) */

struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t off;  /* offsetof(config_t, field) */
	size_t size; /* sizeof field (numbers are stored by width) */
	size_t noff; /* lists: offsetof the count field */
	unsigned flags;
	const char *def; /* default, in file syntax; NULL = none (hostname: gethostname()) */
	uint64_t min, max;
	/* extra check of one value: NULL when good, else why not */
	const char *(*check)(const char *v);
};

static const char *check_user(const char *v);
static const char *check_relayhost(const char *v);
static const char *check_dns_servers(const char *v);
static const char *check_delimiter(const char *v);
static const char *check_tls_protocols(const char *v);
static const char *check_list_user(const char *v);
static bool key_char(int ch);

#define FLD(f) offsetof(config_t, f), sizeof(((config_t *)0)->f)
#define LST(f, n) offsetof(config_t, f), sizeof(((config_t *)0)->f), offsetof(config_t, n)

#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)
#define DAY 86400ull

static const struct cfg_key cfg_keys[] = {
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
	{"local_concurrency", CT_NUMBER, FLD(local_concurrency), 0, 0, "8", 1, 1024, NULL},
	{"bounce_to_postmaster", CT_BOOL, FLD(bounce_to_postmaster), 0, 0, "no", 0, 0, NULL},
	{"relayhost", CT_STRING, FLD(relayhost), 0, CF_OPTIONAL, NULL, 0, 0, check_relayhost},
	{"relayhost_auth_file", CT_PATH, FLD(relayhost_auth_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"transport", CT_PATH, FLD(transport_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"dns_servers", CT_STRING, FLD(dns_servers), 0, CF_OPTIONAL, NULL, 0, 0, check_dns_servers},
	{"dns_timeout", CT_DURATION, FLD(dns_timeout), 0, 0, "15s", 1, 300, NULL},
	{"dnssec_trust_anchor", CT_PATH, FLD(dnssec_trust_anchor), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"destination_concurrency", CT_NUMBER, FLD(destination_concurrency), 0, 0, "20", 1, 10000,
	    NULL},
	{"outbound_connections", CT_NUMBER, FLD(outbound_connections), 0, 0, "100", 1, 100000, NULL},
	{"max_messages_per_connection", CT_NUMBER, FLD(max_messages_per_connection), 0, 0, "100", 1,
	    100000, NULL},
	{"smtp_connect_timeout", CT_DURATION, FLD(smtp_connect_timeout), 0, 0, "30s", 1, DAY, NULL},
	/* RFC 5321 §4.5.3.2: 5 minutes for the greeting, MAIL, RCPT; 3 per
	 * data block; 10 for the reply to the final dot */
	{"smtp_command_timeout", CT_DURATION, FLD(smtp_command_timeout), 0, 0, "300s", 1, DAY, NULL},
	{"smtp_data_timeout", CT_DURATION, FLD(smtp_data_timeout), 0, 0, "180s", 1, DAY, NULL},
	{"smtp_data_done_timeout", CT_DURATION, FLD(smtp_data_done_timeout), 0, 0, "600s", 1, DAY,
	    NULL},
	{"smtp_port", CT_NUMBER, FLD(smtp_port), 0, 0, "25", 1, 65535, NULL},
	{"tls_cert", CT_PATH, FLD(tls_cert), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"tls_key", CT_PATH, FLD(tls_key), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"tls_protocols", CT_STRING, FLD(tls_protocols), 0, 0, ">=TLSv1.2", 0, 0, check_tls_protocols},
	{"tls_ciphers", CT_STRING, FLD(tls_ciphers), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"smtp_tls_policy", CT_STRING, FLD(smtp_tls_policy), 0, 0, "may", 0, 0, tls_policy_check},
	{"tls_policy", CT_PATH, FLD(tls_policy_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"smtp_tls_ca_file", CT_PATH, FLD(smtp_tls_ca_file), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
	{"auth_users", CT_PATH, FLD(auth_users), 0, CF_OPTIONAL, NULL, 0, 0, NULL},
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
	/* milters (docs/filtering.md) */
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"milter", CT_MILTER, LST(milters, nmilters), CF_REPEAT, NULL, 0, 0, NULL},
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"smtp_milters", CT_WORDS, LST(smtp_milters, nsmtp_milters), 0, "", 0, 0, NULL},
	// NOLINTNEXTLINE(bugprone-sizeof-expression): LST records the field's size, a pointer
	{"submission_milters", CT_WORDS, LST(submission_milters, nsubmission_milters), 0, "", 0, 0,
	    NULL},
	/* seccomp and Landlock after start-up (lib/sandbox.h) */
	{"sandbox", CT_BOOL, FLD(sandbox), 0, 0, "yes", 0, 0, NULL},
};

#define NKEYS (sizeof cfg_keys / sizeof cfg_keys[0])

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
	{"smtpd_client_auth_rate_limit", "auth_max_failures"},
	{"smtpd_milters", "smtp_milters"},
	{"milter_default_action", "milter"},
};

typedef struct cfg_parser {
	const char *name;    /* file name for messages */
	const char *basedir; /* absolute directory for relative paths */
	buf_t *errors;
	unsigned nerrors;
	config_t *c;
	unsigned set_line[NKEYS]; /* line each key was (first) set on; 0 = not set */
	bool failed[NKEYS];       /* its value was refused */
	/* parallel to c->listen; a fixed array (set_listen() keeps nlisten below
	 * CONFIG_MAX_LIST), not a growing one, because the static analyzer
	 * cannot see that c->nlisten starts at 0 (xcalloc) and reported the
	 * growing array's initial NULL as dereferenced */
	unsigned listen_line[CONFIG_MAX_LIST];
} cfg_parser_t;

static void cfg_error(cfg_parser_t *p, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
cfg_error(cfg_parser_t *p, unsigned line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fileerr_vadd(p->errors, &p->nerrors, CONFIG_MAX_ERRORS, p->name, line, fmt, ap);
	va_end(ap);
}

/* values quoted in messages are cut to this many octets */
#define SHOW 80
#define SHOWV(s) (strlen(s) > SHOW ? SHOW : (int)strlen(s)), (s), (strlen(s) > SHOW ? "..." : "")

/* ------------------------------------------------------------------ */
/* value parsers (exported ones are in config.h)                      */

static bool
is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

/* leading decimal digits of s into *out, at most 19 of them; returns count */
static size_t
parse_digits(const char *s, uint64_t *out)
{
	size_t i = 0;
	uint64_t v = 0;
	while (is_digit((unsigned char)s[i])) {
		if (i == 19)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
		i++;
	}
	*out = v;
	return i;
}

static int
parse_number(const char *s, uint64_t *out)
{
	uint64_t v;
	size_t n = parse_digits(s, &v);
	if (n == 0 || s[n] != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
parse_duration64(const char *s, uint64_t *out)
{
	uint64_t v;
	size_t n = parse_digits(s, &v);
	if (n == 0)
		return -1;
	uint64_t mult = 1;
	switch (s[n]) {
	case '\0': break;
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	case 'w': mult = 7 * 86400; break;
	default: return -1;
	}
	if (s[n] != '\0' && s[n + 1] != '\0')
		return -1;
	if (v > UINT_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

int
config_parse_duration(const char *s, unsigned *out)
{
	uint64_t v;
	if (s == NULL || parse_duration64(s, &v) < 0)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int
config_parse_size(const char *s, uint64_t *out)
{
	if (s == NULL)
		return -1;
	uint64_t v;
	size_t n = parse_digits(s, &v);
	if (n == 0)
		return -1;
	uint64_t mult = 1;
	switch (s[n]) {
	case '\0': break;
	case 'k':
	case 'K': mult = KIB; break;
	case 'M': mult = MIB; break;
	case 'G': mult = GIB; break;
	default: return -1;
	}
	if (s[n] != '\0' && s[n + 1] != '\0')
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

/* Parse "ADDR[/PREFIX]", ADDR an IPv4 or IPv6 address, IPv6 optionally in
 * brackets (Postfix writes "[::1]/128"). An IPv4-mapped IPv6 network with a
 * prefix of at least 96 becomes the IPv4 network it maps. Host bits beyond
 * the prefix must be zero. */
static int
netmask_parse(const char *s, netmask_t *out, const char **why)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	*why = "not an IP address or network";
	if (hlen == 0 || hlen >= sizeof host)
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	char *h = host;
	bool bracketed = false;
	if (h[0] == '[') {
		if (hlen < 3 || h[hlen - 1] != ']')
			return -1;
		h[hlen - 1] = '\0';
		h++;
		bracketed = true;
	}
	netmask_t m;
	memset(&m, 0, sizeof m);
	int maxbits;
	if (!bracketed && inet_pton(AF_INET, h, m.addr) == 1) {
		m.family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, h, m.addr) == 1) {
		m.family = AF_INET6;
		maxbits = 128;
	} else {
		return -1;
	}
	m.prefix = maxbits;
	if (slash) {
		uint64_t v;
		const char *ps = slash + 1;
		size_t n = parse_digits(ps, &v);
		if (n == 0 || n > 3 || ps[n] != '\0' || v > (uint64_t)maxbits) {
			*why = "bad prefix length";
			return -1;
		}
		m.prefix = (int)v;
	}
	bool hostbits = false;
	for (int bit = m.prefix; bit < maxbits; bit++) {
		if (m.addr[bit / 8] & (0x80 >> (bit % 8))) {
			m.addr[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
			hostbits = true;
		}
	}
	if (hostbits) {
		/* *out gets the network the author probably meant, for the message */
		*why = "address has bits set beyond the prefix length";
		*out = m;
		return -1;
	}
	if (m.family == AF_INET6 && m.prefix >= 96 &&
	    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)m.addr)) {
		m.family = AF_INET;
		memmove(m.addr, m.addr + 12, 4);
		memset(m.addr + 4, 0, 12);
		m.prefix -= 96;
	}
	*out = m;
	return 0;
}

int
config_parse_netmask(const char *s, netmask_t *out)
{
	const char *why;
	if (s == NULL)
		return -1;
	return netmask_parse(s, out, &why);
}

/* RFC 1035 §2.3.1 preferred name syntax (LDH labels, RFC 1123 §2.1 allows a
 * leading digit), no trailing dot, at most 253 octets. */
static bool
valid_domain(const char *s)
{
	size_t n = strlen(s), lab = 0;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch);
		if (!alnum && ch != '-')
			return false;
		if (ch == '-' && lab == 0)
			return false;
		if (++lab > 63)
			return false;
	}
	return lab > 0 && s[n - 1] != '-';
}

static const char *
check_user(const char *v)
{
	size_t n = strlen(v);
	if (n > 32)
		return "user name longer than 32 characters";
	if (v[0] == '-')
		return "user name starts with '-'";
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) ||
		    ch == '_' || ch == '-' || ch == '.'))
			return "not a valid user name";
	}
	return NULL;
}

/* queue_list_users: anyone, none, a user name, or %group */
static const char *
check_list_user(const char *v)
{
	if (strcmp(v, "anyone") == 0 || strcmp(v, "none") == 0)
		return NULL;
	if (v[0] == '%')
		return v[1] == '\0' || check_user(v + 1) ? "not a valid %group" : NULL;
	return check_user(v);
}

/* "[host]:port", "[host]", "host:port" or "host" (outbound.h) */
static const char *
check_relayhost(const char *v)
{
	const char *host = v, *end;
	if (*v == '[') {
		end = strchr(v, ']');
		if (!end || end == v + 1)
			return "expected [host] or [host]:port";
		host = v + 1;
	} else {
		end = strchr(v, ':');
		if (!end)
			end = v + strlen(v);
		if (end == v)
			return "empty host name";
	}
	for (const char *p = host; p < end; p++) {
		unsigned char ch = (unsigned char)*p;
		if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == ':'))
			return "host must be a host name or an IP address";
	}
	const char *port = *v == '[' ? end + 1 : end;
	if (*port == '\0')
		return NULL;
	if (*port != ':' || port[1] == '\0')
		return "expected :port after the host";
	long n = 0;
	for (const char *p = port + 1; *p; p++) {
		if (!is_digit((unsigned char)*p))
			return "port must be a number";
		n = n * 10 + (*p - '0');
		if (n > 65535)
			return "port out of range";
	}
	return n == 0 ? "port out of range" : NULL;
}

/* "IP[@PORT] IP[@PORT] ..." */
static const char *
check_dns_servers(const char *v)
{
	char buf[128];
	const char *p = v;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, " \t,");
		if (n >= sizeof buf)
			return "server address too long";
		memcpy(buf, p, n);
		buf[n] = '\0';
		char *at = strchr(buf, '@');
		if (at) {
			*at = '\0';
			char *e;
			long port = strtol(at + 1, &e, 10);
			if (*e || port < 1 || port > 65535)
				return "port after @ must be 1-65535";
		}
		unsigned char a[16];
		if (inet_pton(AF_INET, buf, a) != 1 && inet_pton(AF_INET6, buf, a) != 1)
			return "each server must be an IP address, optionally with @port";
		p += n;
	}
	return NULL;
}

static const char *
check_tls_protocols(const char *v)
{
	int lo, hi;
	return tls_parse_protocols(v, &lo, &hi);
}

/* The delimiter must be an RFC 5322 §3.2.3 atext special, so that it can
 * appear unquoted in a Dot-string local part, and not a letter or digit. */
static const char *
check_delimiter(const char *v)
{
	if (v[0] == '\0')
		return NULL;
	if (v[1] != '\0')
		return "must be a single character (or empty to disable)";
	if (strchr("!#$%&'*+-/=?^_`{|}~", v[0]) == NULL)
		return "must be one of ! # $ % & ' * + - / = ? ^ _ ` { | } ~";
	return NULL;
}

/* ------------------------------------------------------------------ */
/* tokens                                                             */

typedef struct tokens {
	char **v;
	size_t n;
} tokens_t;

static void
tokens_free(tokens_t *t)
{
	for (size_t i = 0; i < t->n; i++)
		xfree(t->v[i]);
	xfree(t->v);
	t->v = NULL;
	t->n = 0;
}

/* Split s into words separated by white space and/or commas. A double
 * quote starts a quoted part (in which \" and \\ are escapes) that may hold
 * separators and '#'; "" is an empty word. -1 on an unterminated quote. */
static int
tokenize(const char *s, tokens_t *out)
{
	buf_t w = BUF_INIT;
	bool in_word = false;
	out->v = NULL;
	out->n = 0;
	for (size_t i = 0;; i++) {
		char ch = s[i];
		if (ch == '\0' || ch == ' ' || ch == '\t' || ch == ',') {
			if (in_word) {
				out->v = xrealloc(out->v, (out->n + 1) * sizeof *out->v);
				out->v[out->n++] = xstrdup(buf_cstr(&w));
				buf_reset(&w);
				in_word = false;
			}
			if (ch == '\0')
				break;
			continue;
		}
		in_word = true;
		if (ch != '"') {
			buf_putc(&w, ch);
			continue;
		}
		for (i++;; i++) {
			if (s[i] == '\0') {
				buf_free(&w);
				tokens_free(out);
				return -1;
			}
			if (s[i] == '"')
				break;
			if (s[i] == '\\' && (s[i + 1] == '"' || s[i + 1] == '\\'))
				i++;
			buf_putc(&w, s[i]);
		}
	}
	buf_free(&w);
	return 0;
}

/* ------------------------------------------------------------------ */
/* setters, one per type                                              */

static void *
field(cfg_parser_t *p, const struct cfg_key *k)
{
	return (char *)p->c + k->off;
}

static void
fmt_duration(char *out, size_t n, uint64_t v)
{
	if (v && v % (7 * DAY) == 0)
		snprintf(out, n, "%lluw", (unsigned long long)(v / (7 * DAY)));
	else if (v && v % DAY == 0)
		snprintf(out, n, "%llud", (unsigned long long)(v / DAY));
	else if (v && v % 3600 == 0)
		snprintf(out, n, "%lluh", (unsigned long long)(v / 3600));
	else if (v && v % 60 == 0)
		snprintf(out, n, "%llum", (unsigned long long)(v / 60));
	else
		snprintf(out, n, "%llus", (unsigned long long)v);
}

static void
fmt_size(char *out, size_t n, uint64_t v)
{
	if (v && v % GIB == 0)
		snprintf(out, n, "%lluG", (unsigned long long)(v / GIB));
	else if (v && v % MIB == 0)
		snprintf(out, n, "%lluM", (unsigned long long)(v / MIB));
	else if (v && v % KIB == 0)
		snprintf(out, n, "%lluk", (unsigned long long)(v / KIB));
	else
		snprintf(out, n, "%llu", (unsigned long long)v);
}

static int
set_number(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	if (t->n != 1) {
		cfg_error(p, line, "%s: expected one value, got %zu", k->name, t->n);
		return -1;
	}
	const char *s = t->v[0];
	uint64_t v;
	int r;
	const char *what;
	void (*fmt)(char *, size_t, uint64_t) = NULL;
	switch (k->type) {
	case CT_SIZE:
		r = config_parse_size(s, &v);
		what = "a size (a number with an optional unit k, M or G)";
		fmt = fmt_size;
		break;
	case CT_DURATION:
		r = parse_duration64(s, &v);
		what = "a duration (a number with an optional unit s, m, h, d or w)";
		fmt = fmt_duration;
		break;
	default:
		r = parse_number(s, &v);
		what = "a whole number";
		break;
	}
	if (r < 0) {
		cfg_error(p, line, "%s: \"%.*s%s\" is not %s", k->name, SHOWV(s), what);
		return -1;
	}
	if (v < k->min || v > k->max) {
		char lo[32], hi[32];
		if (fmt) {
			fmt(lo, sizeof lo, k->min);
			fmt(hi, sizeof hi, k->max);
		} else {
			snprintf(lo, sizeof lo, "%llu", (unsigned long long)k->min);
			snprintf(hi, sizeof hi, "%llu", (unsigned long long)k->max);
		}
		cfg_error(p, line, "%s: %s is out of range (%s to %s)", k->name, s, lo, hi);
		return -1;
	}
	void *f = field(p, k);
	if (k->size == sizeof(unsigned)) {
		unsigned u = (unsigned)v;
		memcpy(f, &u, sizeof u);
	} else if (k->size == sizeof(uint64_t)) {
		memcpy(f, &v, sizeof v);
	} else {
		abort(); /* a cfg_keys[] entry with an unsupported width */
	}
	return 0;
}

/* Join a relative path to the configuration file's directory. Leading "./"
 * and "../" components are resolved against that (absolute, canonical)
 * directory; the rest is kept as written. */
static char *
make_absolute(const char *base, const char *v)
{
	if (v[0] == '/')
		return xstrdup(v);
	buf_t b = BUF_INIT;
	buf_puts(&b, base);
	for (;;) {
		if (v[0] == '.' && (v[1] == '/' || v[1] == '\0')) {
			v += v[1] ? 2 : 1;
		} else if (v[0] == '.' && v[1] == '.' && (v[2] == '/' || v[2] == '\0')) {
			v += v[2] ? 3 : 2;
			char *slash = strrchr(b.data, '/');
			if (slash && slash != b.data) {
				b.len = (size_t)(slash - b.data);
				b.data[b.len] = '\0';
			} else {
				buf_reset(&b);
				buf_putc(&b, '/');
			}
		} else {
			break;
		}
		while (v[0] == '/')
			v++;
	}
	if (v[0] != '\0') {
		if (b.data[b.len - 1] != '/')
			buf_putc(&b, '/');
		buf_puts(&b, v);
	}
	return buf_steal(&b);
}

static int
set_scalar(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	char **f = field(p, k);
	if (t->n > 1) {
		cfg_error(p, line, "%s: expected one value, got %zu (quote a value that contains "
		    "spaces or commas)", k->name, t->n);
		return -1;
	}
	const char *v = t->n ? t->v[0] : "";
	if (v[0] == '\0') {
		if (k->flags & CF_OPTIONAL) {
			xfree(*f);
			*f = NULL;
			return 0;
		}
		cfg_error(p, line, "%s: empty value", k->name);
		return -1;
	}
	if (k->type == CT_DOMAIN && !valid_domain(v)) {
		cfg_error(p, line, "%s: \"%.*s%s\" is not a valid domain name", k->name, SHOWV(v));
		return -1;
	}
	if (k->type == CT_PATH && strlen(v) >= PATH_MAX - 256) {
		cfg_error(p, line, "%s: path too long", k->name);
		return -1;
	}
	if (k->check) {
		const char *why = k->check(v);
		if (why) {
			cfg_error(p, line, "%s: \"%.*s%s\": %s", k->name, SHOWV(v), why);
			return -1;
		}
	}
	xfree(*f);
	*f = k->type == CT_PATH ? make_absolute(p->basedir, v) : xstrdup(v);
	return 0;
}

static int
set_char(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	if (t->n > 1) {
		cfg_error(p, line, "%s: expected one value, got %zu", k->name, t->n);
		return -1;
	}
	const char *v = t->n ? t->v[0] : "";
	const char *why = k->check ? k->check(v) : NULL;
	if (why == NULL && v[0] != '\0' && v[1] != '\0')
		why = "must be a single character";
	if (why) {
		cfg_error(p, line, "%s: \"%.*s%s\": %s", k->name, SHOWV(v), why);
		return -1;
	}
	*(char *)field(p, k) = v[0];
	return 0;
}

int
config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int
set_bool(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	if (t->n != 1) {
		cfg_error(p, line, "%s: expected one value (yes or no), got %zu", k->name, t->n);
		return -1;
	}
	bool v;
	if (config_parse_bool(t->v[0], &v) < 0) {
		cfg_error(p, line, "%s: \"%.*s%s\" is not yes or no (nor true/false, on/off, 1/0)",
		    k->name, SHOWV(t->v[0]));
		return -1;
	}
	*(bool *)field(p, k) = v;
	return 0;
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		xfree(v[i]);
	xfree(v);
}

static int
set_domains(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	char ***fv = field(p, k);
	size_t *fn = (size_t *)(void *)((char *)p->c + k->noff);
	char **v = NULL;
	size_t n = 0;
	int r = 0;
	if (t->n > CONFIG_MAX_LIST) {
		cfg_error(p, line, "%s: too many values (at most %d)", k->name, CONFIG_MAX_LIST);
		return -1;
	}
	for (size_t i = 0; i < t->n; i++) {
		const char *d = t->v[i];
		if (k->type == CT_WORDS) {
			const char *why = k->check ? k->check(d) : NULL;
			if (why) {
				cfg_error(p, line, "%s: \"%.*s%s\": %s", k->name, SHOWV(d), why);
				r = -1;
			} else {
				v = xrealloc(v, (n + 1) * sizeof *v);
				v[n++] = xstrdup(d);
			}
			continue;
		}
		if (!valid_domain(d)) {
			cfg_error(p, line, "%s: \"%.*s%s\" is not a valid domain name", k->name,
			    SHOWV(d));
			r = -1;
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < n && !dup; j++)
			dup = strcasecmp(v[j], d) == 0;
		if (dup)
			continue;
		char *lc = xstrdup(d);
		for (char *q = lc; *q; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		v = xrealloc(v, (n + 1) * sizeof *v);
		v[n++] = lc;
	}
	if (r < 0) {
		free_strv(v, n);
		return -1;
	}
	free_strv(*fv, *fn);
	*fv = v;
	*fn = n;
	return 0;
}

static int
set_nets(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	netmask_t **fv = field(p, k);
	size_t *fn = (size_t *)(void *)((char *)p->c + k->noff);
	if (t->n > CONFIG_MAX_LIST) {
		cfg_error(p, line, "%s: too many values (at most %d)", k->name, CONFIG_MAX_LIST);
		return -1;
	}
	netmask_t *v = xcalloc(t->n ? t->n : 1, sizeof *v);
	size_t n = 0;
	int r = 0;
	for (size_t i = 0; i < t->n; i++) {
		const char *why;
		netmask_t m;
		memset(&m, 0, sizeof m);
		if (netmask_parse(t->v[i], &m, &why) < 0) {
			char net[INET6_ADDRSTRLEN] = "";
			if (m.family)
				inet_ntop(m.family, m.addr, net, sizeof net);
			if (net[0])
				cfg_error(p, line, "%s: \"%.*s%s\": %s (did you mean %s/%d?)", k->name,
				    SHOWV(t->v[i]), why, net, m.prefix);
			else
				cfg_error(p, line, "%s: \"%.*s%s\": %s", k->name, SHOWV(t->v[i]), why);
			r = -1;
			continue;
		}
		v[n++] = m;
	}
	if (r < 0) {
		xfree(v);
		return -1;
	}
	xfree(*fv);
	*fv = v;
	*fn = n;
	return 0;
}

static int
listen_mode_word(const char *s, enum listen_mode *m)
{
	if (strcasecmp(s, "smtp") == 0)
		*m = LISTEN_SMTP;
	else if (strcasecmp(s, "submission") == 0)
		*m = LISTEN_SUBMISSION;
	else if (strcasecmp(s, "smtps") == 0)
		*m = LISTEN_SMTPS;
	else
		return -1;
	return 0;
}

/* "1.2.3.4:25", "[::1]:25" or "[1.2.3.4]:25" -> canonical address and port */
static const char *
listen_addr_parse(const char *s, char **addr, int *port)
{
	char host[64];
	const char *colon, *h = s;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL)
			return "missing ']'";
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
		if (*colon != ':')
			return "missing \":PORT\" after the address";
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return "missing \":PORT\" after the address";
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return "an IPv6 address must be written in brackets, e.g. [::1]:25";
	}
	if (hlen == 0 || hlen >= sizeof host)
		return "not an IP address";
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	unsigned char bin[16];
	char canon[INET6_ADDRSTRLEN];
	if (inet_pton(AF_INET, host, bin) == 1)
		inet_ntop(AF_INET, bin, canon, sizeof canon);
	else if (inet_pton(AF_INET6, host, bin) == 1)
		inet_ntop(AF_INET6, bin, canon, sizeof canon);
	else
		return "not an IP address (host names are not accepted here)";
	uint64_t v;
	const char *ps = colon + 1;
	size_t n = parse_digits(ps, &v);
	if (n == 0 || ps[n] != '\0' || v > 65535)
		return "port must be a number from 0 to 65535";
	*addr = xstrdup(canon);
	*port = (int)v;
	return NULL;
}

static bool
listen_is_wildcard(const char *a)
{
	return strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0;
}

static int
set_listen(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	config_t *c = p->c;
	int r = 0;
	int mode_ok = 0; /* a mode word may follow: 1 a good address, 2 a refused one */
	if (t->n == 0) {
		cfg_error(p, line, "%s: empty value", k->name);
		return -1;
	}
	for (size_t i = 0; i < t->n; i++) {
		const char *s = t->v[i];
		enum listen_mode m;
		if (listen_mode_word(s, &m) == 0) {
			if (mode_ok == 0) {
				cfg_error(p, line, "%s: \"%s\" must follow an address", k->name, s);
				r = -1;
			} else if (mode_ok == 1) {
				c->listen[c->nlisten - 1].mode = m;
			}
			mode_ok = 0;
			continue;
		}
		mode_ok = 2;
		char *addr;
		int port;
		const char *why = listen_addr_parse(s, &addr, &port);
		if (why) {
			if (strchr(s, ':') == NULL && strchr(s, '.') == NULL)
				why = "expected ADDRESS:PORT or a mode (smtp, submission, smtps)";
			cfg_error(p, line, "%s: \"%.*s%s\": %s", k->name, SHOWV(s), why);
			r = -1;
			continue;
		}
		if (c->nlisten >= CONFIG_MAX_LIST) {
			xfree(addr);
			cfg_error(p, line, "%s: too many addresses", k->name);
			return -1;
		}
		for (size_t j = 0; j < c->nlisten && port != 0; j++) {
			listen_spec_t *o = &c->listen[j];
			if (o->port != port)
				continue;
			bool same_family = (strchr(o->addr, ':') != NULL) == (strchr(addr, ':') != NULL);
			if (strcmp(o->addr, addr) == 0 || (same_family && (listen_is_wildcard(addr) ||
			    listen_is_wildcard(o->addr)))) {
				cfg_error(p, line, "%s: %s port %d overlaps %s port %d (line %u)",
				    k->name, addr, port, o->addr, o->port, p->listen_line[j]);
				r = -1;
			}
		}
		c->listen = xrealloc(c->listen, (c->nlisten + 1) * sizeof *c->listen);
		c->listen[c->nlisten] = (listen_spec_t){addr, port, LISTEN_SMTP};
		p->listen_line[c->nlisten] = line;
		c->nlisten++;
		mode_ok = 1;
	}
	return r;
}

/*
 * "milter = NAME inet:PORT@HOST|unix:PATH [default_action=tempfail|accept|reject]
 * [connect_timeout=D] [command_timeout=D] [eom_timeout=D]" (Postfix's
 * milter_default_action and milter_*_timeout, per milter).
 */
static int
set_milter(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	config_t *c = p->c;
	if (t->n < 2) {
		cfg_error(p, line, "%s: expected NAME inet:PORT@HOST|unix:PATH [option=value ...]",
		    k->name);
		return -1;
	}
	config_milter_t m = {NULL, NULL, NULL, 0, MILTER_TEMPFAIL, 30000, 30000, 100000};
	const char *name = t->v[0], *sock = t->v[1];
	int r = 0;
	for (const char *q = name; *q && r == 0; q++)
		if (!key_char((unsigned char)*q))
			r = -1;
	if (r < 0 || name[0] == '\0') {
		cfg_error(p, line, "%s: \"%.*s%s\": a name is letters, digits, '_', '-', '.'",
		    k->name, SHOWV(name));
		return -1;
	}
	for (size_t i = 0; i < c->nmilters; i++)
		if (strcmp(c->milters[i].name, name) == 0) {
			cfg_error(p, line, "%s: \"%s\" is defined twice", k->name, name);
			return -1;
		}
	if (strncmp(sock, "unix:", 5) == 0 && sock[5] != '\0' && strlen(sock) < 100) {
		m.path = make_absolute(p->basedir, sock + 5);
	} else if (strncmp(sock, "inet:", 5) == 0) {
		const char *at = strchr(sock, '@');
		uint64_t port;
		size_t nd = parse_digits(sock + 5, &port);
		unsigned char bin[16];
		const char *h = at ? at + 1 : "";
		if (at == NULL || nd == 0 || sock + 5 + nd != at || port == 0 || port > 65535 ||
		    (strcmp(h, "localhost") != 0 && inet_pton(AF_INET, h, bin) != 1 &&
		    inet_pton(AF_INET6, h, bin) != 1)) {
			cfg_error(p, line, "%s: \"%.*s%s\": expected inet:PORT@IP (an IP address or "
			    "localhost) or unix:PATH", k->name, SHOWV(sock));
			return -1;
		}
		m.port = (int)port;
		m.host = xstrdup(strcmp(h, "localhost") == 0 ? "127.0.0.1" : h);
	} else {
		cfg_error(p, line, "%s: \"%.*s%s\": expected inet:PORT@IP or unix:PATH", k->name,
		    SHOWV(sock));
		return -1;
	}
	for (size_t i = 2; i < t->n; i++) {
		const char *o = t->v[i], *eq = strchr(o, '=');
		unsigned secs;
		unsigned *to = NULL;
		if (eq && strncmp(o, "default_action=", 15) == 0) {
			if (strcmp(eq + 1, "tempfail") == 0)
				m.default_action = MILTER_TEMPFAIL;
			else if (strcmp(eq + 1, "accept") == 0)
				m.default_action = MILTER_ACCEPT;
			else if (strcmp(eq + 1, "reject") == 0)
				m.default_action = MILTER_REJECT;
			else
				r = -1;
			if (r < 0)
				cfg_error(p, line, "%s: \"%.*s%s\": default_action is tempfail, accept "
				    "or reject", k->name, SHOWV(o));
			continue;
		}
		if (eq && strncmp(o, "connect_timeout=", 16) == 0)
			to = &m.connect_timeout;
		else if (eq && strncmp(o, "command_timeout=", 16) == 0)
			to = &m.command_timeout;
		else if (eq && strncmp(o, "eom_timeout=", 12) == 0)
			to = &m.eom_timeout;
		if (to == NULL) {
			cfg_error(p, line, "%s: unknown option \"%.*s%s\" (default_action, "
			    "connect_timeout, command_timeout, eom_timeout)", k->name, SHOWV(o));
			r = -1;
		} else if (config_parse_duration(eq + 1, &secs) < 0 || secs == 0 || secs > 3600) {
			cfg_error(p, line, "%s: \"%.*s%s\": a duration from 1s to 1h", k->name, SHOWV(o));
			r = -1;
		} else {
			*to = secs * 1000u;
		}
	}
	if (r < 0 || c->nmilters >= CONFIG_MAX_LIST) {
		xfree(m.path);
		xfree(m.host);
		return -1;
	}
	m.name = xstrdup(name);
	c->milters = xrealloc(c->milters, (c->nmilters + 1) * sizeof *c->milters);
	c->milters[c->nmilters++] = m;
	return 0;
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

static int
cfg_set(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	switch (k->type) {
	case CT_STRING:
	case CT_DOMAIN:
	case CT_PATH: return set_scalar(p, k, line, t);
	case CT_DOMAINS:
	case CT_WORDS: return set_domains(p, k, line, t);
	case CT_LISTEN: return set_listen(p, k, line, t);
	case CT_MILTER: return set_milter(p, k, line, t);
	case CT_CHAR: return set_char(p, k, line, t);
	case CT_BOOL: return set_bool(p, k, line, t);
	case CT_NETS: return set_nets(p, k, line, t);
	case CT_NUMBER:
	case CT_SIZE:
	case CT_DURATION: return set_number(p, k, line, t);
	}
	return -1;
}

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

static const char *
key_hint(const char *name)
{
	for (size_t i = 0; i < sizeof cfg_postfix_names / sizeof cfg_postfix_names[0]; i++)
		if (strcasecmp(name, cfg_postfix_names[i].postfix) == 0)
			return cfg_postfix_names[i].tern;
	const char *best = NULL;
	size_t bestd = (size_t)-1;
	for (size_t i = 0; i < NKEYS; i++) {
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
		const char *hint = key_hint(key);
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
	if (tokenize(value, &t) < 0) {
		p->failed[ki] = true;
		cfg_error(p, line, "%s: unterminated quote", key);
		return;
	}
	if (cfg_set(p, k, line, &t) < 0)
		p->failed[ki] = true;
	tokens_free(&t);
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

static bool
key_char(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) || ch == '_' ||
	    ch == '-' || ch == '.';
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
		while (k < tmp.len && key_char((unsigned char)t[k]))
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

static size_t
key_index(const char *name)
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
		if (tokenize(k->def, &t) < 0 || cfg_set(p, k, 0, &t) < 0)
			abort(); /* a default that does not parse is a bug in cfg_keys[] */
		tokens_free(&t);
	}
	if (p->c->hostname == NULL) {
		char h[256];
		if (gethostname(h, sizeof h) < 0)
			h[0] = '\0';
		h[sizeof h - 1] = '\0';
		p->c->hostname = xstrdup(valid_domain(h) ? h : "localhost");
	}
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
	if (!p->set_line[key_index("client_limit_exceptions")]) {
		size_t n = p->c->nmynetworks;
		p->c->client_limit_exceptions = xcalloc(n ? n : 1, sizeof(netmask_t));
		if (n)
			memcpy(p->c->client_limit_exceptions, p->c->mynetworks, n * sizeof(netmask_t));
		p->c->nclient_limit_exceptions = n;
	}
}

/* both keys good: the line to report a conflict on (the later one), else 0 */
static unsigned
pair_line(cfg_parser_t *p, const char *a, const char *b)
{
	size_t ia = key_index(a), ib = key_index(b);
	if (p->failed[ia] || p->failed[ib])
		return 0;
	return p->set_line[ia] > p->set_line[ib] ? p->set_line[ia] : p->set_line[ib];
}

static void
cross_checks(cfg_parser_t *p)
{
	config_t *c = p->c;
	unsigned line;
	char a[32], b[32];
	if ((line = pair_line(p, "retry_min", "retry_max")) && c->retry_min > c->retry_max) {
		fmt_duration(a, sizeof a, c->retry_min);
		fmt_duration(b, sizeof b, c->retry_max);
		cfg_error(p, line, "retry_min (%s) is longer than retry_max (%s)", a, b);
	}
	if ((line = pair_line(p, "delay_warning", "queue_lifetime")) && c->delay_warning &&
	    c->delay_warning >= c->queue_lifetime) {
		fmt_duration(a, sizeof a, c->delay_warning);
		fmt_duration(b, sizeof b, c->queue_lifetime);
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
					cfg_error(p, p->set_line[key_index(key)], "%s: %s is listed twice", key,
					    v[i]);
					break;
				}
			if (!found)
				cfg_error(p, p->set_line[key_index(key)], "%s: no \"milter = %s ...\" line "
				    "defines %s", key, v[i], v[i]);
		}
	}
	if ((line = pair_line(p, "local_domains", "virtual_domains"))) {
		for (size_t i = 0; i < c->nvirtual_domains; i++)
			if (config_is_local_domain(c, c->virtual_domains[i]))
				cfg_error(p, line, "%s is in both local_domains and virtual_domains",
				    c->virtual_domains[i]);
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
	cross_checks(&p);

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
		abs = make_absolute(cwd, name[0] ? name : "config");
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

void
config_free(config_t *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct cfg_key *k = &cfg_keys[i];
		void *f = (char *)c + k->off;
		size_t *n = (size_t *)(void *)((char *)c + k->noff);
		switch (k->type) {
		case CT_STRING:
		case CT_DOMAIN:
		case CT_PATH: xfree(*(char **)f); break;
		case CT_DOMAINS:
		case CT_WORDS: free_strv(*(char ***)f, *n); break;
		case CT_LISTEN:
			for (size_t j = 0; j < *n; j++)
				xfree((*(listen_spec_t **)f)[j].addr);
			xfree(*(listen_spec_t **)f);
			break;
		case CT_NETS: xfree(*(netmask_t **)f); break;
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
