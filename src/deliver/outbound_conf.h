/*
 * outbound_conf.h - outbound delivery built from the configuration.
 *
 * From a config_t: the DNS resolver (libunbound: dns_servers, dns_timeout,
 * dnssec_trust_anchor, by default the root's when a policy is dane), the MX options that know our own names and
 * addresses (RFC 5321 §5.1 loop detection: hostname, every listen address,
 * and every interface's address for a wildcard listener), the relay host
 * and its credentials (relayhost_auth_file), limits, timeouts and the TLS
 * policy; and the transport lookup, asked through the tables the daemon
 * holds now (so a SIGHUP's new transport table applies to the next
 * message). outbound_conf_reload() applies a new configuration's
 * outbound settings (SIGHUP).
 * Owns: the resolver, the MX options and the relay credentials (wiped when
 * freed); outbound_new() copies the rest.
 * Must not: keep anything of the config_t after outbound_conf_new().
 */
#ifndef TERN_OUTBOUND_CONF_H
#define TERN_OUTBOUND_CONF_H

#include <uv.h>

#include "common/config.h"
#include "common/tables.h"
#include "deliver/outbound.h"
#include "lib/buf.h"

typedef struct outbound_conf outbound_conf_t;

/*
 * Build the outbound manager. *tables is read at each transport lookup
 * (the caller keeps it pointing at its current tables). NULL with the
 * reason in *err: the relay credentials cannot be read or are unsafe, or
 * the resolver cannot start.
 */
outbound_conf_t *outbound_conf_new(uv_loop_t *loop, const config_t *c, tables_t *const *tables,
    const char *spool_dir, buf_t *err);

/* The root zone's trust anchor Debian's dns-root-data installs */
#define OUTBOUND_ROOT_ANCHOR "/usr/share/dns/root.key"

/* Does a TLS policy ask for DANE: smtp_tls_policy or a tls_policy entry is
 * dane or dane-only (the table is read to know). */
bool outbound_conf_uses_dane(const config_t *c);

/* The DNSSEC trust anchor file the resolver gets, NULL for none:
 * dnssec_trust_anchor; "none" turns validation off; unset, the root's
 * (OUTBOUND_ROOT_ANCHOR) when dane is true and the file exists. */
const char *outbound_conf_trust_anchor(const config_t *c, bool dane);

/*
 * A reload (SIGHUP): relayhost and its credentials, limits, timeouts, the
 * TLS policy, the tls_policy table, smtp_tls_ca_file, MTA-STS, and the
 * resolver (dns_servers, dns_timeout, dnssec_trust_anchor: a new one only
 * when they changed) take effect for every message routed from now on,
 * including those waiting in the manager (outbound_reconfigure). Our
 * hostname too; our addresses (the listeners) need a restart. -1 with the
 * reason when the credentials, the resolver or the table cannot be had:
 * then everything stays as it was.
 */
int outbound_conf_reload(outbound_conf_t *oc, const config_t *c, buf_t *err);

/* The manager; outbound_shutdown() frees it (then call outbound_conf_free). */
outbound_t *outbound_conf_outbound(outbound_conf_t *oc);

/* Free the resolver and wipe the credentials: after the manager is shut
 * down (its callback has run). NULL is a no-op. */
void outbound_conf_free(outbound_conf_t *oc);

/*
 * The relayhost credentials: one line "user password" (the password is the
 * rest of the line) in c's relayhost_auth_file, which must belong to root
 * or tern's user and be readable by nobody else (fs_secret_problem); read
 * through secret_read() (tern's privileged parent opens it when there is
 * one). 0, or -1 with the reason.
 */
int outbound_conf_relay_auth(const config_t *c, char *user, size_t ucap, char *pass, size_t pcap,
    buf_t *err);

#endif
