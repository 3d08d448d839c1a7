/*
 * config.h - tern's one configuration file.
 *
 * Syntax: one "key = value" per line, '#' starts a comment (outside a value's
 * quotes), blank lines ignored, a line starting with white space continues the
 * previous value. Lists are separated by commas and/or white space.
 * Durations take a unit: 30s, 5m, 2h, 5d (a bare number is seconds).
 * Sizes take k, M or G (powers of 1024); a bare number is bytes.
 * Relative paths are relative to the directory of the configuration file.
 * Every key is documented, with its default, in docs/configuration.md.
 * Unknown keys, bad values and duplicate keys (except repeatable ones:
 * "listen") are errors reported as "FILE:LINE: message".
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "lib/buf.h"

enum listen_mode {
	LISTEN_SMTP = 0,   /* port 25 style: MX, STARTTLS offered when a certificate is set */
	LISTEN_SUBMISSION, /* port 587: AUTH required before MAIL (RFC 6409) */
	LISTEN_SMTPS,      /* port 465: implicit TLS, AUTH required (RFC 8314) */
	LISTEN_LOCAL,      /* the local_socket (sendmail command): peer known by SO_PEERCRED */
};

typedef struct listen_spec {
	char *addr; /* literal IP, "127.0.0.1" or "::1" */
	int port;   /* 0 = let the kernel choose (tests); the chosen port is logged */
	enum listen_mode mode;
} listen_spec_t;

/* an IPv4 or IPv6 network in mynetworks */
typedef struct netmask {
	int family; /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int prefix;
} netmask_t;

/* one mail filter (milter) the SMTP server may talk to (docs/filtering.md) */
enum milter_default { MILTER_TEMPFAIL = 0, MILTER_ACCEPT, MILTER_REJECT };
typedef struct config_milter {
	char *name;
	char *path;      /* unix:PATH, else NULL */
	char *host;      /* inet:PORT@HOST: a literal IP or "localhost" */
	int port;
	enum milter_default default_action; /* when it is down, times out or misbehaves */
	unsigned connect_timeout;           /* ms, default 30 s */
	unsigned command_timeout;           /* ms, default 30 s */
	unsigned eom_timeout;               /* ms, default 100 s */
} config_milter_t;

/* "tls_certificate = CERTFILE [KEYFILE]": one more server certificate,
 * chosen by the names it holds when a client's SNI asks for one of them
 * (lib/tls.h, docs/tls.md) */
typedef struct config_tls_cert {
	char *cert;    /* PEM chain, leaf first */
	char *key;     /* PEM key; NULL = in cert */
	unsigned line; /* of the configuration file, for messages */
} config_tls_cert_t;

typedef struct config {
	unsigned refs;    /* config_ref(): holders besides the owner (loop thread only) */
	char *path;      /* the file it came from (absolute) */
	char *hostname;  /* our name in the greeting, Received, Message-IDs; default: gethostname() */
	listen_spec_t *listen;
	size_t nlisten;  /* default: one, 127.0.0.1:2525 smtp */
	char *user;      /* drop privileges to this user after binding when started as root; NULL = do not */
	char *spool_dir; /* default /var/spool/tern */
	char *maildir_base; /* mailboxes live at <maildir_base>/<domain>/<localpart>/ ; default /var/mail/tern */

	char **local_domains;  /* domains whose mailboxes tern holds; default: "localhost" */
	size_t nlocal_domains;
	char **virtual_domains; /* domains served only through virtual_aliases; default none */
	size_t nvirtual_domains;
	char *mailboxes_file;  /* table of mailboxes; NULL = none */
	char *aliases_file;    /* local-part aliases for every local domain; NULL = none */
	char *virtual_file;    /* address -> addresses, "@domain" catch-all; NULL = none */
	char recipient_delimiter; /* '+' by default; '\0' disables sub-addressing */

	netmask_t *mynetworks; /* clients that may relay; default 127.0.0.0/8 ::1/128 */
	size_t nmynetworks;

	uint64_t message_size_limit; /* default 25M (26214400) */
	uint64_t queue_min_free;     /* spool space kept free: below it, 452 4.3.1 at MAIL/DATA/BDAT; default 0 */
	size_t max_recipients;       /* per message, default 1000, at least 100 (RFC 5321 §4.5.3.1.8) */
	unsigned max_hops;           /* Received: fields before a message is refused as a loop, default 50 (RFC 5321 §6.3) */
	size_t max_line_length;      /* DATA text line incl. CRLF, default 1000 (§4.5.3.1.6) */
	size_t max_command_length;   /* command line incl. CRLF, default 512 (§4.5.3.1.4) */
	unsigned max_errors;         /* bad commands before 421 and disconnect, default 20 */
	unsigned max_sessions;       /* concurrent SMTP sessions, default 1000 */
	unsigned max_sessions_per_ip; /* default 50 */
	/* clients exempt from max_sessions_per_ip; default = mynetworks, empty = nobody */
	netmask_t *client_limit_exceptions;
	size_t nclient_limit_exceptions;

	/* RFC 5321 §4.5.3.2.7: server waits at least 5 minutes for a command */
	unsigned timeout_command;    /* seconds, default 300 */
	unsigned timeout_data;       /* seconds without a byte during DATA/BDAT, default 300 */

	/* delivery and retries (the schedule) */
	unsigned retry_min;          /* first retry after, default 300 s */
	unsigned retry_max;          /* longest interval between tries, default 3600 s */
	unsigned queue_lifetime;     /* then bounce, default 5 d */
	unsigned delay_warning;      /* send a DSN action=delayed after this; 0 = never (default) */
	unsigned queue_age_warning;  /* warn when the oldest message is older (s); 0 = off; 1d */
	unsigned queue_age_warning_repeat; /* the warning again at most this often (s); 1h */
	unsigned local_concurrency;  /* parallel Maildir deliveries, default 8 */
	bool bounce_to_postmaster;   /* a bounce that cannot be delivered goes to the postmaster; default no */

	/* outbound (src/deliver/outbound.h) */
	char *relayhost;             /* "[host]:port" or "host": all remote mail goes there; NULL = MX */
	char *relayhost_auth_file;   /* "user password" for AUTH to the relayhost (under TLS); NULL = none */
	char *transport_file;        /* key "transport": domain -> smtp:[host]:port | lmtp:...; NULL = none */
	char *dns_servers;           /* "IP[@PORT] ..." forwarders; NULL = /etc/resolv.conf */
	unsigned dns_timeout;        /* seconds per DNS query, default 15 */
	char *dnssec_trust_anchor;   /* trust anchor file; "none": no DNSSEC validation; NULL =
	                              * the root's (/usr/share/dns/root.key) when a TLS policy
	                              * is dane, else none (deliver/outbound_conf.h) */
	unsigned destination_concurrency; /* connections per destination, default 20 */
	unsigned outbound_connections;    /* outbound connections in all, default 100 */
	unsigned max_messages_per_connection; /* default 100 */
	unsigned smtp_connect_timeout;    /* default 30 s */
	unsigned smtp_dead_host_time;     /* default 60 s; 0: off */
	unsigned smtp_mx_session_limit;   /* default 2 */
	unsigned smtp_command_timeout;    /* greeting, EHLO, MAIL, RCPT, DATA: default 300 s (RFC 5321 §4.5.3.2) */
	unsigned smtp_data_timeout;       /* each block of content sent: default 180 s */
	unsigned smtp_data_done_timeout;  /* reply to the final dot: default 600 s */
	unsigned smtp_port;               /* TCP port for MX deliveries, default 25 (tests) */

	/* TLS (src/lib/tls.h, docs/tls.md) */
	char *tls_cert;              /* PEM chain, leaf first; NULL = no STARTTLS, no smtps */
	char *tls_key;               /* PEM key; NULL = in tls_cert */
	config_tls_cert_t *tls_certificates; /* more, chosen by SNI; tls_cert stays the default */
	size_t ntls_certificates;
	char *tls_protocols;         /* default ">=TLSv1.2" */
	char *tls_ciphers;           /* TLS 1.2 cipher list; NULL = built-in modern list */
	char *smtp_tls_policy;       /* outbound default: none|may|encrypt|verify, default may */
	char *tls_policy_file;       /* key "tls_policy": "domain policy" lines; NULL = none */
	char *smtp_tls_ca_file;      /* CAs for outbound verify (and MTA-STS policy hosts); NULL = system store */
	bool smtp_mta_sts;           /* MTA-STS for may/encrypt/dane MX destinations; default no */
	unsigned mta_sts_port;       /* HTTPS port of policy hosts, default 443 (tests) */

	/* AUTH, submission, local injection (src/smtpd/auth.h, docs/sendmail.md) */
	char *auth_users;            /* password file "user:$y$..."; NULL = no AUTH */
	char *auth_backend;          /* "file" (auth_users) or "dovecot" (dovecot_auth_socket) */
	char *dovecot_auth_socket;   /* auth_backend dovecot: /path or inet:HOST:PORT */
	unsigned dovecot_auth_timeout; /* seconds for each wait on Dovecot; default 30 */
	unsigned auth_max_failures;  /* per connection, then 421; default 3 */
	unsigned auth_failure_delay; /* seconds before the first 535, doubling; default 1 */
	char *sender_login_file;     /* key "sender_login": "address user, user"; NULL = none */
	char *local_socket;          /* sendmail's socket; default /run/tern/tern.sock; NULL = none */
	char **trusted_users;        /* local users who may set any envelope sender (root always) */
	size_t ntrusted_users;
	unsigned auth_min_password_length; /* `tern passwd add|change` refuses shorter; default 8 */
	/* who may list the queue (mailq) besides root and tern's user: "anyone"
	 * (default), "none", or user names and %groups (control/control.h) */
	char **queue_list_users;
	size_t nqueue_list_users;
	/* the HTTP listener (lib/httpd.h) and its JSON API (control/api.h) */
	char *http_listen;           /* "ADDR:PORT" or "PORT" (127.0.0.1); NULL = no listener */
	char *http_token_file;       /* the bearer token (a secret, first line); NULL = none */
	unsigned http_timeout;       /* seconds a connection may be idle; default 10 */
	unsigned http_max_connections; /* open at once; default 64 */

	/* milters (src/filter/, docs/filtering.md): "milter = NAME SOCKET [opt=val...]"
	 * lines, and which of them run, in order, per kind of listener */
	config_milter_t *milters;
	size_t nmilters;
	char **smtp_milters;         /* listeners in smtp mode (port 25) */
	size_t nsmtp_milters;
	char **submission_milters;   /* submission and smtps listeners */
	size_t nsubmission_milters;

	/* DNSBL/DNSWL (src/filter/dnsbl.h, docs/filtering.md) */
	char **dnsbl_sites;          /* "zone[=filter][*weight]"; none by default */
	size_t ndnsbl_sites;
	unsigned dnsbl_threshold;    /* listed at this score; default 1 */
	char *dnsbl_stage;           /* "connect" (default) or "rcpt" */
	unsigned dnsbl_timeout;      /* seconds per query, default 10 */
	char *header_checks;         /* PCRE2 table (src/filter/content.h); NULL = none */
	char *body_checks;           /* NULL = none */
	/* rate limits (filter/ratelimit.h): "N/DURATION" each, NULL = none; clients in
	 * client_limit_exceptions (default mynetworks) are exempt */
	char *rl_client_connections;     /* per client IP, at connect */
	char *rl_client_messages;        /* per client IP, at MAIL */
	char *rl_client_recipients;      /* per client IP, at RCPT */
	char *rl_user_messages;          /* per authenticated user, at MAIL */
	char *rl_user_recipients;        /* per authenticated user, at RCPT */
	char *rl_sender_domain_messages; /* per envelope sender domain, at MAIL */
	unsigned rl_max_keys;            /* (limit, key) pairs held in memory, default 100000 */
	char *rl_redis;                  /* shared store "IP:PORT" or "unix:/path"; NULL = memory */
	unsigned rl_redis_timeout;       /* seconds for Redis to answer a check, default 1 */
	char *rl_redis_failure;          /* "open" (default): Redis down = no limit; "closed": 4xx */
	/* greylisting (filter/greylist.h) */
	bool greylist;                   /* default no */
	unsigned greylist_delay;         /* seconds before a retry passes, default 300 */
	unsigned greylist_expiry;        /* a first try not retried within this is forgotten, default 1d */
	unsigned greylist_lifetime;      /* a passed triplet is kept this long after its last use, 35d */
	unsigned greylist_max_entries;   /* triplets held, default 100000 */

	/* SRS, the Sender Rewriting Scheme (mailauth/srs.h, docs/srs.md) */
	char *srs_domain;            /* the domain of rewritten senders; NULL = SRS off */
	char *srs_secret_file;       /* one secret a line, the first signs; needed with srs_domain */
	unsigned srs_max_age;        /* seconds (whole days count) a bounce address stays valid, 21d */
	char **srs_exclude_domains;  /* senders in these domains are never rewritten */
	size_t nsrs_exclude_domains;
	/* inbound mail authentication on smtp listeners, for clients neither in
	 * mynetworks nor authenticated (src/mailauth/mailauth.h,
	 * docs/authentication.md) */
	bool spf_check;              /* SPF of the MAIL FROM identity (RFC 7208); default yes */
	bool spf_helo_check;         /* and of the HELO identity (section 2.3); default no */
	char *spf_fail_action;       /* "tag" (default) or "reject": 550 5.7.23 (RFC 7372) unless DMARC passes */
	char *spf_temperror_action;  /* "tag" (default) or "defer": 451 4.7.24 */
	bool dkim_verify;            /* DKIM signatures (RFC 6376); default yes */
	unsigned dkim_max_signatures; /* signatures checked per message, default 5 */
	bool arc_verify;             /* the ARC chain (RFC 8617), reported as arc=; default yes */
	char **arc_trusted_sealers;  /* ARC sealers whose passing chain overrides a DMARC fail */
	size_t narc_trusted_sealers;
	char *arc_seal_domain;       /* seal forwarded mail with this domain's dkim_sign_keys key */
	bool dmarc_check;            /* DMARC (RFC 7489); default yes */
	bool dmarc_enforce;          /* apply p=reject (550 5.7.1) and p=quarantine; default no */
	char *dmarc_quarantine_action; /* enforced p=quarantine: "tag" (default) or "hold" */
	char *psl_file;              /* the Public Suffix List; default Debian's publicsuffix file */
	char *authserv_id;           /* Authentication-Results authserv-id; default: hostname */
	unsigned mailauth_timeout;   /* seconds the end-of-data checks may take; default 30 */
	bool dmarc_reports;          /* send aggregate reports (RFC 7489 section 7.2); default no */
	char *dmarc_report_org;      /* org_name in them; default: hostname */
	char *dmarc_report_email;    /* their From; default: noreply-dmarc@hostname */
	unsigned dmarc_report_interval; /* seconds between reports, default 1d */
	bool tls_reports;            /* count outbound TLS, send TLS-RPT reports (RFC 8460); default no */
	char *tls_report_org;        /* organization-name in them; default: hostname */
	char *tls_report_email;      /* their From; default: noreply-tlsrpt@hostname */
	char *tls_report_contact;    /* contact-info; default: tls_report_email */
	unsigned tls_report_interval; /* seconds between reports, default 1d (at UTC midnight) */
	unsigned tls_report_retry;    /* first wait before an HTTPS report is posted again, default 5m */

	char *log_file;              /* lines also go to this file, reopened on SIGUSR1; NULL: none */
	char *log_format;            /* "text" (key=value lines, default) or "json" */

	bool sandbox;                /* seccomp + Landlock after start (lib/sandbox.h); default yes */

	/* DKIM signing (mailauth/sign.h, docs/dkim.md) */
	char *dkim_sign_keys;        /* table "domain selector keyfile"; NULL = no signing */
	/* its keys, loaded by mailauth_sign_load() (start, reload, check-config)
	 * and freed with the configuration through dkim_signers_free: a worker
	 * signing with them holds the config_t. NULL: none loaded */
	void *dkim_signers;
	void (*dkim_signers_free)(void *signers);

	unsigned *key_line;          /* where each key was set: see config_key_line() */
} config_t;

/*
 * Load and validate the file. On error returns NULL and writes every
 * problem found, each as "path:line: message\n", into *errors.
 */
config_t *config_load(const char *path, buf_t *errors);
/*
 * The same for text already in memory (tests, fuzzing): name stands for the
 * file in messages and, made absolute against the working directory, as
 * the base for relative paths.
 */
config_t *config_parse_buf(const char *name, const char *data, size_t len, buf_t *errors);
void config_free(config_t *c);
/* One more holder (e.g. work on the thread pool across a SIGHUP reload):
 * each config_ref() is matched by a config_free(), and the memory goes
 * with the last one. Loop thread only. Returns c. */
const config_t *config_ref(const config_t *c);
/* The line of the file that set key (a configuration key name), 0 when
 * the key was not set (a default) or is unknown. */
unsigned config_key_line(const config_t *c, const char *key);

/* true when the address (AF_INET/AF_INET6 sockaddr) is inside mynetworks */
bool config_in_mynetworks(const config_t *c, const struct sockaddr *sa);
/* true when the address is in client_limit_exceptions (per-client limits
 * do not apply to it) */
bool config_limit_exempt(const config_t *c, const struct sockaddr *sa);
/* The uid tern runs as: that of "user" when it names an account, else the
 * current effective uid. */
uid_t config_run_uid(const config_t *c);
bool config_is_local_domain(const config_t *c, const char *domain);
bool config_is_virtual_domain(const config_t *c, const char *domain);
/* The domain of a local (sendmail) user's address: the first local domain,
 * else the host name. */
static inline const char *
config_local_user_domain(const config_t *c)
{
	return c->nlocal_domains > 0 ? c->local_domains[0] : c->hostname;
}

/* the milters for a listener mode, in order, into out[] (at most max); returns
 * how many (0 for the local socket) */
size_t config_milters_for(const config_t *c, enum listen_mode mode, const config_milter_t **out,
    size_t max);

/* parse helpers, exported for tests: return 0 or -1 */
int config_parse_duration(const char *s, unsigned *out);
int config_parse_size(const char *s, uint64_t *out);
/* yes/no, true/false, on/off, 1/0, any case */
int config_parse_bool(const char *s, bool *out);
int config_parse_netmask(const char *s, netmask_t *out);

#endif
