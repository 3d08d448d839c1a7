/*
 * privdrop.h - the user tern runs as, and the ownership of what it writes.
 *
 * Delivery writes into Maildirs and talks to the network on behalf of
 * strangers: never as root. Root is only for binding ports below 1024, so
 * started as root, tern needs "user" naming an unprivileged account; that
 * is checked before anything is bound (privdrop_user), and privileges are
 * dropped right after binding (privdrop_drop), for good: setuid(0)
 * afterwards must fail, or tern refuses to run.
 */
#ifndef TERN_PRIVDROP_H
#define TERN_PRIVDROP_H

#include <pwd.h>

#include "common/config.h"

/* The account "user" names, when it exists and is not root; NULL (logged
 * with what to do) otherwise. */
struct passwd *privdrop_user(const config_t *c);

/* As root: make spool_dir and maildir_base the user's, drop to it for good,
 * check it can use both. Not root: nothing (one info line when "user" names
 * someone else). 0, or -1 (logged). */
int privdrop_drop(const config_t *c);

/*
 * The spool holds every acknowledged message: it must belong to the user
 * tern runs as, and nobody else may write to it (or to any of the queue's
 * directories), or another local user could remove or forge queued mail.
 * 0, or -1 (logged with the command that fixes it).
 */
int privdrop_check_spool(const char *spool);

#endif
