/*
 * check.c - tern check-config: load the configuration and its tables as
 * the daemon would, print every problem, then the warnings of what would
 * go wrong later (postmaster not deliverable, "run" as root refused).
 * Must not: change anything on disk.
 */
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "common/addr.h"
#include "daemon/daemon.h"
#include "deliver/router.h"
#include "lib/log.h"

/* RFC 5321 §4.5.1: postmaster must be deliverable in every local domain */
static void
warn_postmaster(const config_t *c, const tables_t *t)
{
	for (size_t i = 0; i < c->nlocal_domains; i++) {
		char pm[300];
		addr_t a;
		size_t used;
		const char *err;
		dest_list_t d = {0};
		snprintf(pm, sizeof pm, "postmaster@%s", c->local_domains[i]);
		if (addr_parse(pm, strlen(pm), ADDR_NO_BRACKETS, &a, &used, &err) < 0)
			continue;
		if (router_expand(c, t, &a, false, &d, &err) != ROUTER_OK)
			fprintf(stderr, "%s: warning: %s is not deliverable (%s); RFC 5321 section 4.5.1 "
			    "requires it: add \"postmaster: someone\" to the aliases table\n", c->path, pm, err);
		dest_list_free(&d);
		addr_free(&a);
	}
}

/* what "run" as root would refuse (privdrop_user), said ahead of time */
static void
warn_user(const config_t *c)
{
	if (!c->user) {
		fprintf(stderr, "%s: warning: \"user\" is not set: started as root, tern refuses to run "
		    "(set user = tern, an unprivileged account)\n", c->path);
		return;
	}
	struct passwd *pw = getpwnam(c->user);
	if (!pw)
		fprintf(stderr, "%s: warning: user \"%s\" does not exist (useradd --system %s)\n",
		    c->path, c->user, c->user);
	else if (pw->pw_uid == 0 || pw->pw_gid == 0)
		fprintf(stderr, "%s: warning: user \"%s\" has uid %d gid %d: tern refuses to run as "
		    "root\n", c->path, c->user, (int)pw->pw_uid, (int)pw->pw_gid);
}

int
daemon_check_config(const char *path)
{
	config_t *c;
	tables_t *t;
	log_init("tern", 0, 0);
	if (daemon_load(path, &c, &t) < 0)
		return 1;
	warn_postmaster(c, t);
	warn_user(c);
	printf("config ok: %s (%zu listeners, %zu local domains, %zu mailboxes)\n", c->path, c->nlisten,
	    c->nlocal_domains, table_count(t->mailboxes));
	tables_free(t);
	config_free(c);
	return 0;
}
