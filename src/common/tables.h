/*
 * tables.h - the lookup tables of a configuration, loaded and validated.
 *
 * Four tables, each named by a configuration key (an absent one is empty):
 * mailboxes ("user@domain [maildir-path]", or a bare "user" for every local
 * domain), aliases (local part -> targets), virtual (address or "@domain"
 * -> targets) and transport (domain or ".parent" -> next hop). Routing
 * (deliver/router.h) reads them; what they mean is documented there and in
 * docs/configuration.md.
 *
 * Keys are canonical SMTP form: the unquoted local part formatted by
 * addr_format() (quoted only when it is not a Dot-string), the domain
 * lowercased; tables compare keys ignoring ASCII case. tables_load() refuses
 * keys not written that way, so a key can never silently fail to match, and
 * validates every entry: addresses parse; mailbox keys belong to local
 * domains and are safe as directory names (no '/', no leading '.', so a
 * Maildir path built from them stays under maildir_base); no pipes, files
 * or :include: in aliases; one "smtp:" or "lmtp:" next hop per transport.
 * Every problem is reported as "file:line: message".
 * The tables object is immutable; a SIGHUP builds a new one.
 * Must not: do I/O after tables_load().
 */
#ifndef TERN_TABLES_H
#define TERN_TABLES_H

#include "common/config.h"
#include "common/table.h"
#include "lib/buf.h"

typedef struct tables {
	table_t *mailboxes; /* TABLE_MAP: "user@domain [maildir-path]" */
	table_t *aliases;   /* TABLE_ALIASES */
	table_t *virtual_;  /* TABLE_MAP */
	table_t *transport; /* TABLE_MAP: "domain smtp:[host]:port | lmtp:host:port | lmtp:unix:/path" */
	/* the SRS secrets (mailauth/srs.h), the first signs: not read by
	 * tables_load() but by the daemon after it (they are secrets, read
	 * through the privileged parent); NULL/0 elsewhere (no SRS address
	 * then verifies). Wiped by tables_free(). */
	char **srs_secrets;
	size_t nsrs_secrets;
} tables_t;

/* Loads the four tables named in c. NULL on error, with
 * "file:line: message" lines in *errors. */
tables_t *tables_load(const config_t *c, buf_t *errors);
void tables_free(tables_t *t);

/* The canonical key "local@domain" for an unquoted local part (allocated). */
char *tables_key(const char *local, const char *domain);
/* The canonical key of a local part alone, quoted when needed (allocated). */
char *tables_key_local(const char *local);
/* Parse "local@domain" (or "local" with default_domain; NULL: a domain is
 * required) into its unquoted local part and lowercased domain, both
 * allocated. -1 when it is not a valid address. */
int tables_split_addr(const char *s, const char *default_domain, char **local, char **domain);

#endif
