/*
 * daemon.h - the daemon's two commands, as main.c dispatches them.
 *
 * src/daemon/ is the top layer: it is the only folder that knows every
 * stage, because it starts them, hands each the few things it needs, and
 * stops them in order. Its files:
 *   run.c       tern run: start-up order, signals, reload, shutdown
 *   privdrop.c  the user tern runs as, dropping root, the spool's owner/mode
 *   confine.c   the sandbox's policy: which directories, from config and tables
 *   check.c     tern check-config
 * The mechanisms they use live in the layers below (lib/sandbox.c applies
 * a seccomp filter and a Landlock ruleset from the list it is given;
 * deliver/outbound_conf.c builds outbound delivery from the config).
 */
#ifndef TERN_DAEMON_DAEMON_H
#define TERN_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stdio.h>

#include "common/config.h"
#include "common/tables.h"

/* Run the daemon in the foreground until SIGTERM or SIGINT; the exit code. */
int daemon_run(const char *config_path, bool use_syslog, bool debug);

/* tern check-config: load config and tables, print every problem and the
 * warnings (postmaster, user); 0 when the configuration loads. */
int daemon_check_config(const char *config_path);

/* Load config and tables (and, with srs_domain, the SRS secrets into the
 * tables: mailauth/srs.h); on error print every problem on stderr and
 * return -1 (nothing allocated). */
int daemon_load(const char *path, config_t **cfg, tables_t **tables);

/* Start-up problems (one per line, each beginning with the configuration
 * key it is about: "auth_users /etc/tern/passwd: ...") as
 * "config:LINE: line" ("config: line" when no key was set there): printed
 * on f, or logged as errors when f is NULL. Shared by run and check-config
 * so both say the same. */
void daemon_report(FILE *f, const config_t *c, const char *text);

#endif
