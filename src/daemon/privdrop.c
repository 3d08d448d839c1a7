/*
 * privdrop.c - dropping root for the configured user, and the checks on
 * the spool's owner and mode (see privdrop.h).
 *
 * Must not: run on with privileges that could be regained, or with a spool
 * another user could write to.
 */
#include "daemon/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "daemon/usercheck.h"
#include "lib/fsutil.h"
#include "lib/log.h"

int
privdrop_check_spool(const char *spool)
{
	static const char *const sub[] = {"", "/incoming", "/queue", "/corrupt"};
	for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s%s", spool, sub[i]);
		if (stat(path, &st) < 0)
			continue;
		if (st.st_uid != geteuid()) {
			log_err("spool %s belongs to uid %d, not to the user tern runs as (uid %d): chown -R it",
			    path, (int)st.st_uid, (int)geteuid());
			return -1;
		}
		if (st.st_mode & (S_IWGRP | S_IWOTH)) {
			log_err("spool %s is writable by group or others (mode %04o): chmod 700 %s", path,
			    (unsigned)(st.st_mode & 07777), path);
			return -1;
		}
	}
	return 0;
}

struct passwd *
privdrop_user(const config_t *c)
{
	if (!c->user) {
		log_err("refusing to run as root: set \"user\" in %s to an unprivileged account "
		    "(e.g. user = tern, created with: useradd --system --home-dir /var/spool/tern tern); "
		    "tern binds its ports as root, then runs as that user", c->path);
		return NULL;
	}
	struct passwd *pw = getpwnam(c->user);
	if (!pw) {
		log_err("user \"%s\" (config %s) does not exist: create it (useradd --system %s) "
		    "or name another unprivileged account", c->user, c->path, c->user);
		return NULL;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		log_err("refusing to run as root: user \"%s\" in %s has uid %d gid %d; name an "
		    "unprivileged account", c->user, c->path, (int)pw->pw_uid, (int)pw->pw_gid);
		return NULL;
	}
	return pw;
}

int
privdrop_drop(const config_t *c)
{
	if (geteuid() != 0) {
		if (c->user) {
			struct passwd *me = getpwuid(geteuid());
			if (!me || strcmp(me->pw_name, c->user) != 0)
				log_info("not started as root: running as uid %d, not as user %s (config %s)",
				    (int)geteuid(), c->user, c->path);
		}
		return 0;
	}
	struct passwd *pw = privdrop_user(c);
	if (!pw)
		return -1;
	/* the spool and the Maildirs belong to the mail user */
	mkdir_p(c->spool_dir, 0700);
	mkdir_p(c->maildir_base, 0700);
	if (chown(c->spool_dir, pw->pw_uid, pw->pw_gid) < 0 ||
	    chown(c->maildir_base, pw->pw_uid, pw->pw_gid) < 0) {
		log_err("chown spool or maildir_base to %s: %s", c->user, strerror(errno));
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		log_err("cannot drop privileges to %s: %s", c->user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		log_err("privileges could be regained after dropping them; refusing to run");
		return -1;
	}
	/* the directories were made by root: say plainly when the user cannot
	 * reach them (a parent directory closed to it, e.g. mode 0700), or
	 * cannot read a table it reads again at every reload (usercheck.h) */
	buf_t err = BUF_INIT;
	if (usercheck_run(c, &err) < 0) {
		daemon_report(NULL, c, buf_cstr(&err));
		buf_free(&err);
		return -1;
	}
	buf_free(&err);
	log_info("running as user %s (uid %d)", c->user, (int)pw->pw_uid);
	return 0;
}
