/*
 * confine.h - which directories the running daemon may write to: the
 * sandbox's policy, computed from the configuration and the tables, and
 * applied with lib/sandbox.h's mechanisms (docs/security.md "Confinement").
 */
#ifndef TERN_CONFINE_H
#define TERN_CONFINE_H

#include <stddef.h>

#include "common/config.h"
#include "common/tables.h"
#include "lib/buf.h"

/*
 * The daemon's sandbox, from its configuration: does nothing (one info
 * line) with "sandbox = no"; otherwise allows writes beneath spool_dir,
 * maildir_base and every Maildir path of the mailboxes table that lies
 * outside them (each collected now: see confine.c), file removal in the
 * local_socket's directory, and applies. Returns sandbox_apply()'s result.
 */
int confine_daemon(const config_t *c, const tables_t *t, buf_t *err);

/*
 * After a reload (SIGHUP): log a warning for every Maildir of the new
 * tables (and a new maildir_base) outside the directories the running
 * sandbox allows; deliveries there fail (deferred) until a restart.
 * Returns how many; 0 when Landlock is not enforced.
 */
size_t confine_check_tables(const config_t *c, const tables_t *t);

#endif
