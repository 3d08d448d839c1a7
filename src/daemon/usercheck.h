/*
 * usercheck.h - can the user tern runs as reach what it needs?
 *
 * Started as root, tern runs as its "user" once its ports are bound. From
 * then on that user must reach (read, write and search) spool_dir and
 * maildir_base, and read every file the daemon reads again at a reload:
 * the tables (mailboxes, aliases, virtual, transport, sender_login,
 * tls_policy_file, dkim_sign_keys and its keys) and smtp_tls_ca_file,
 * dnssec_trust_anchor. The secrets
 * (tls_cert, tls_key, auth_users, relayhost_auth_file) are not its
 * business: the privileged parent opens them (daemon/privsep.h).
 * The daemon runs usercheck_run() right after dropping root; check-config,
 * run as root, runs the same function in a child that has become the user
 * (usercheck_as()), so both see what the daemon will see.
 * Must not: create or change anything.
 */
#ifndef TERN_USERCHECK_H
#define TERN_USERCHECK_H

#include "lib/buf.h"

struct config;

/* As the current user: 0, or -1 with every problem (one per line) in *err.
 * A directory that does not exist yet (root makes it at start) only needs
 * its nearest existing ancestor to be searchable. */
int usercheck_run(const struct config *c, buf_t *err);

/* As root: usercheck_run() in a child process that has become c->user
 * (without "user", or not root: in this process). 0 or -1 with *err. */
int usercheck_as(const struct config *c, buf_t *err);

#endif
