/*
 * usercheck.c - what the user tern runs as must reach (see usercheck.h).
 *
 * access(2) answers for the real uid: in the daemon, after setuid, that is
 * the user; in check-config's child too (it calls setuid before checking).
 */
#include "daemon/usercheck.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "lib/xalloc.h"
#include "mailauth/sign.h"

static const char *
who(void)
{
	static char name[64];
	struct passwd *pw = getpwuid(getuid());
	if (pw)
		snprintf(name, sizeof name, "%s", pw->pw_name);
	else
		snprintf(name, sizeof name, "uid %d", (int)getuid());
	return name;
}

/* spool_dir or maildir_base: rwx on it; or, when it is not the user's yet
 * (root gives it to the user at start, privdrop.c) or is missing (root
 * makes it), search on the nearest ancestor that exists */
/* set in usercheck_as()'s child: check-config for a daemon started by
 * root, which hands the two directories to the user before dropping */
static bool root_gives_dirs;

static void
check_dir(const char *key, const char *path, buf_t *out)
{
	struct stat st;
	if (!path)
		return;
	if (stat(path, &st) == 0 && (st.st_uid == getuid() || !root_gives_dirs)) {
		if (access(path, R_OK | W_OK | X_OK) < 0)
			buf_printf(out, "%s %s: user %s cannot use it (%s): it must be the user's own and "
			    "every parent directory searchable by it (chmod o+x)\n", key, path, who(),
			    strerror(errno));
		return;
	}
	char *anc = xstrdup(path);
	for (;;) {
		char *slash = strrchr(anc, '/');
		if (!slash)
			break;
		*(slash == anc ? slash + 1 : slash) = '\0';
		if (stat(anc, &st) == 0) {
			if (access(anc, X_OK) < 0)
				buf_printf(out, "%s %s: user %s cannot reach it: %s is not searchable by it "
				    "(chmod o+x)\n", key, path, who(), anc);
			break;
		}
		if (slash == anc)
			break;
	}
	xfree(anc);
}

/* a file read again at every reload */
static void
check_file(const char *key, const char *path, buf_t *out)
{
	if (path && access(path, R_OK) < 0)
		buf_printf(out, "%s %s: user %s cannot read it (%s): it is read again at every reload\n",
		    key, path, who(), strerror(errno));
}

int
usercheck_run(const config_t *c, buf_t *err)
{
	buf_t out = BUF_INIT;
	check_dir("spool_dir", c->spool_dir, &out);
	check_dir("maildir_base", c->maildir_base, &out);
	check_file("mailboxes", c->mailboxes_file, &out);
	check_file("aliases", c->aliases_file, &out);
	check_file("virtual", c->virtual_file, &out);
	check_file("transport", c->transport_file, &out);
	check_file("sender_login", c->sender_login_file, &out);
	check_file("tls_policy", c->tls_policy_file, &out);
	check_file("smtp_tls_ca_file", c->smtp_tls_ca_file, &out);
	if (c->dnssec_trust_anchor && strcmp(c->dnssec_trust_anchor, "none") != 0)
		check_file("dnssec_trust_anchor", c->dnssec_trust_anchor, &out);
	check_file("dkim_sign_keys", c->dkim_sign_keys, &out);
	for (size_t i = 0; i < mailauth_sign_nkeys(c); i++)
		check_file("dkim_sign_keys key", mailauth_sign_key_path(c, i), &out);
	int r = out.len ? -1 : 0;
	if (out.len) {
		out.len--; /* the last newline */
		buf_append(err, out.data, out.len);
	}
	buf_free(&out);
	return r;
}

int
usercheck_as(const config_t *c, buf_t *err)
{
	struct passwd *pw = c->user ? getpwnam(c->user) : NULL;
	if (geteuid() != 0 || !pw || pw->pw_uid == 0)
		return usercheck_run(c, err);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		buf_printf(err, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		buf_printf(err, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		buf_t out = BUF_INIT;
		root_gives_dirs = true;
		if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
			buf_printf(&out, "cannot become user %s: %s", c->user, strerror(errno));
		else
			(void)usercheck_run(c, &out);
		ssize_t w = out.len ? write(p[1], out.data, out.len) : 0;
		_exit(w < 0 ? 2 : 0);
	}
	close(p[1]);
	buf_t got = BUF_INIT;
	char b[4096];
	ssize_t n;
	while ((n = read(p[0], b, sizeof b)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		buf_append(&got, b, (size_t)n);
	}
	close(p[0]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	int r = got.len ? -1 : 0;
	if (got.len)
		buf_append(err, got.data, got.len);
	buf_free(&got);
	return r;
}
