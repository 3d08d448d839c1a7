/*
 * confine.c - the sandbox's policy: the directories the running daemon may
 * write beneath, from its configuration and tables (see confine.h); the
 * mechanisms are lib/sandbox.c's.
 *
 * Where the daemon writes after start (read from the sources; keep this
 * list current when adding a write):
 *   spool_dir: incoming/, queue/, corrupt/ (queue.c, store.c: commits,
 *     status records, DSNs, removal, repair), control.sock (control.c,
 *     unlinked at stop), mta-sts/ (deliver/mtasts_fetch.c: the MTA-STS
 *     policy cache, temporary file then rename), dmarc-reports and
 *     dmarc-reports.tmp (daemon/reports.c: the DMARC aggregate report
 *     counts, temporary file then rename);
 *   Maildirs: <maildir_base>/<domain>/<user>/ or the path a mailboxes
 *     entry names, which may be absolute or climb out with ".."
 *     (maildir.c creates the Maildir, tmp/ new/ cur/, links tmp -> new);
 *   local_socket: bound before the sandbox, unlinked at stop (server.c):
 *     removal only in its directory;
 *   logging goes to stderr (already open) or syslog (/dev/log, a connect),
 *     and log_file, created again in its directory at each SIGUSR1 (log.c).
 * A Maildir that does not exist yet is covered through its deepest existing
 * ancestor (never "/"): mkdir_p creates the rest at the first delivery.
 *
 * Must not: allow writes beneath "/" (that would confine nothing).
 */
#include "daemon/confine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/router.h"
#include "lib/log.h"
#include "lib/sandbox.h"
#include "lib/xalloc.h"

typedef void (*maildir_fn)(void *arg, const char *maildir, const char *mailbox);

/* Every Maildir path a mailboxes entry names (entries without a value live
 * at <maildir_base>/<domain>/<key>, beneath maildir_base by validation, see
 * common/tables.c). The path is built by router_final(), as for a delivery; a
 * bare key ("alice") applies to every local domain. */
static void
for_each_named_maildir(const config_t *c, const tables_t *t, maildir_fn fn, void *arg)
{
	if (t == NULL || t->mailboxes == NULL)
		return;
	for (size_t i = 0; i < table_count(t->mailboxes); i++) {
		const table_entry_t *e = table_entry_at(t->mailboxes, i);
		if (e == NULL || e->nvalues == 0)
			continue;
		bool bare = strchr(e->key, '@') == NULL;
		size_t nd = bare ? c->nlocal_domains : 1;
		for (size_t d = 0; d < nd; d++) {
			char *a = bare ? xasprintf("%s@%s", e->key, c->local_domains[d]) : xstrdup(e->key);
			route_t rt;
			if (router_final(c, t, a, &rt) == 0 && rt.kind == ROUTE_LOCAL && rt.maildir)
				fn(arg, rt.maildir, rt.mailbox ? rt.mailbox : e->key);
			route_free(&rt);
			xfree(a);
		}
	}
}

struct collect {
	char **dirs; /* canonical */
	size_t n;
};

/* Add the directory that covers path (path, or its deepest existing
 * ancestor) unless a collected one already covers it. */
static void
collect_dir(struct collect *col, const char *path, const char *why, bool note)
{
	bool exact;
	char *canon = sandbox_existing_dir(path, &exact);
	if (canon == NULL) {
		log_warn("sandbox: %s %s: no part of it exists; tern may not write there", why, path);
		return;
	}
	if (sandbox_beneath_any(canon, col->dirs, col->n)) {
		free(canon);
		return;
	}
	if (strcmp(canon, "/") == 0 && strcmp(path, "/") != 0) {
		log_warn("sandbox: %s %s: none of its directories exists, and allowing writes "
		    "beneath / would confine nothing: deliveries there fail until it exists and "
		    "tern is restarted", why, path);
		free(canon);
		return;
	}
	if (note)
		log_info("sandbox: %s %s is outside spool_dir and maildir_base: writes allowed "
		    "beneath %s%s", why, path, canon, exact ? "" : " (its deepest existing directory)");
	col->dirs = xrealloc(col->dirs, (col->n + 1) * sizeof *col->dirs);
	col->dirs[col->n++] = xstrdup(canon);
	free(canon);
}

static void
collect_maildir(void *arg, const char *maildir, const char *mailbox)
{
	char *why = xasprintf("the Maildir of %s", mailbox);
	collect_dir(arg, maildir, why, true);
	xfree(why);
}

int
confine_daemon(const config_t *c, const tables_t *t, buf_t *err)
{
	if (!c->sandbox) {
		log_info("sandbox = no: tern runs without its seccomp filter and Landlock rules");
		return 0;
	}
	struct collect w = {NULL, 0}, rm = {NULL, 0};
	collect_dir(&w, c->spool_dir, "spool_dir", false);
	collect_dir(&w, c->maildir_base, "maildir_base", false);
	for_each_named_maildir(c, t, collect_maildir, &w);
	if (c->log_file) { /* reopened (a new file) on SIGUSR1 */
		char *dir = xstrdup(c->log_file);
		char *slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		collect_dir(&w, slash ? dir : ".", "log_file's directory", false);
		xfree(dir);
	}
	/* the local socket is unlinked at stop (sendmail then fails at once):
	 * only removing files in its directory */
	if (c->local_socket) {
		char *dir = xstrdup(c->local_socket);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir)
			*slash = '\0';
		bool exact;
		char *canon = sandbox_existing_dir(dir, &exact);
		if (canon && exact && !sandbox_beneath_any(canon, w.dirs, w.n)) {
			rm.dirs = xmalloc(sizeof *rm.dirs);
			rm.dirs[rm.n++] = xstrdup(canon);
		}
		free(canon);
		xfree(dir);
	}
	sandbox_opts_t o;
	memset(&o, 0, sizeof o);
	o.write_dirs = w.dirs;
	o.nwrite_dirs = w.n;
	o.remove_dirs = rm.dirs;
	o.nremove_dirs = rm.n;
	int r = sandbox_apply(&o, err);
	for (size_t i = 0; i < w.n; i++)
		xfree(w.dirs[i]);
	for (size_t i = 0; i < rm.n; i++)
		xfree(rm.dirs[i]);
	xfree(w.dirs);
	xfree(rm.dirs);
	return r;
}

static void
check_maildir(void *arg, const char *maildir, const char *mailbox)
{
	size_t *n = arg;
	if (sandbox_may_write(maildir))
		return;
	log_warn("sandbox: the Maildir of %s, %s, is outside the directories tern may write to "
	    "since it started: deliveries to it are deferred until tern is restarted", mailbox,
	    maildir);
	(*n)++;
}

size_t
confine_check_tables(const config_t *c, const tables_t *t)
{
	size_t n = 0;
	if (sandbox_landlock_state() != SANDBOX_LL_ENFORCED)
		return 0;
	if (!sandbox_may_write(c->maildir_base)) {
		log_warn("sandbox: maildir_base %s is outside the directories tern may write to since "
		    "it started: deliveries to it are deferred until tern is restarted", c->maildir_base);
		n++;
	}
	for_each_named_maildir(c, t, check_maildir, &n);
	return n;
}
