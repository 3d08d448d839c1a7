/*
 * check.c - tern check-config: load the configuration and its tables as
 * the daemon would, print every problem, then the warnings of what would
 * go wrong later (postmaster not deliverable, "run" as root refused), then
 * run the checks "run" makes before it starts, by the same functions, so
 * that the systemd unit's ExecStartPre fails exactly when ExecStart would.
 * Must not: change anything on disk.
 */
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "common/addr.h"
#include "control/api.h"
#include "daemon/daemon.h"
#include "daemon/usercheck.h"
#include "deliver/outbound_conf.h"
#include "deliver/router.h"
#include "lib/log.h"
#include "smtpd/server.h"

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

/* the configuration line of the key a problem begins with, 0 when none */
static unsigned
problem_line(const config_t *c, const char *text)
{
	char key[64];
	size_t kl = strcspn(text, " :\n");
	if (kl == 0 || kl >= sizeof key)
		return 0;
	memcpy(key, text, kl);
	key[kl] = '\0';
	return config_key_line(c, key);
}

/* a problem that already says where it is ("FILE:LINE: ..."): a line of
 * a repeated key (tls_certificate) */
static bool
placed(const config_t *c, const char *text)
{
	size_t pl = strlen(c->path);
	return strncmp(text, c->path, pl) == 0 && text[pl] == ':' && text[pl + 1] >= '0' &&
	    text[pl + 1] <= '9';
}

void
daemon_report(FILE *f, const config_t *c, const char *text)
{
	for (const char *line = text; *line;) {
		int n = (int)strcspn(line, "\n");
		unsigned at = placed(c, line) ? 0 : problem_line(c, line);
		if (f && placed(c, line))
			fprintf(f, "%.*s\n", n, line);
		else if (!f && placed(c, line))
			log_err("%.*s", n, line);
		else if (f && at)
			fprintf(f, "%s:%u: %.*s\n", c->path, at, n, line);
		else if (f)
			fprintf(f, "%s: %.*s\n", c->path, n, line);
		else if (at)
			log_err("%s:%u: %.*s", c->path, at, n, line);
		else
			log_err("%.*s", n, line);
		line += n;
		if (*line)
			line++;
	}
}

/* warnings, each as "FILE:LINE: warning: ..." (or "FILE: warning: ...") */
static void
report_warnings(const config_t *c, const char *text)
{
	size_t pl = strlen(c->path);
	for (const char *line = text; *line;) {
		int n = (int)strcspn(line, "\n");
		unsigned at = problem_line(c, line);
		if (placed(c, line)) {
			/* "FILE:LINE: " then the text */
			const char *rest = line + pl + 1 + strspn(line + pl + 1, "0123456789");
			if (*rest == ':')
				rest++;
			if (*rest == ' ')
				rest++;
			fprintf(stderr, "%.*s warning: %.*s\n", (int)(rest - line - 1), line,
			    n - (int)(rest - line), rest);
		} else if (at) {
			fprintf(stderr, "%s:%u: warning: %.*s\n", c->path, at, n, line);
		} else if (n) {
			fprintf(stderr, "%s: warning: %.*s\n", c->path, n, line);
		}
		line += n;
		if (*line)
			line++;
	}
}

/*
 * What "run" checks before it starts, by the same code: the secrets read
 * as the privileged parent reads them (as root), the listeners that need
 * them, the local socket's directory (smtpd/server.c server_check); the
 * relayhost credentials (deliver/outbound_conf.c) and the HTTP listener's
 * token (control/api.c); then, as "user",
 * everything the daemon reaches after dropping root (usercheck.c). Every
 * problem is printed; 0 when there is none.
 */
static int
check_start(const config_t *c)
{
	buf_t err = BUF_INIT;
	buf_t warn = BUF_INIT;
	int bad = 0;
	if (server_check(c, &warn, &err) < 0) {
		daemon_report(stderr, c, buf_cstr(&err));
		bad = 1;
	}
	report_warnings(c, buf_cstr(&warn));
	buf_free(&warn);
	buf_reset(&err);
	char user[256], pass[512];
	if (c->relayhost_auth_file &&
	    outbound_conf_relay_auth(c, user, sizeof user, pass, sizeof pass, &err) < 0) {
		daemon_report(stderr, c, buf_cstr(&err));
		bad = 1;
	}
	explicit_bzero(pass, sizeof pass);
	buf_reset(&err);
	if (c->http_token_file && api_token_load(c, NULL, &err) < 0) {
		daemon_report(stderr, c, buf_cstr(&err));
		bad = 1;
	}
	buf_reset(&err);
	if (c->http_listen && !c->http_token_file)
		report_warnings(c, "http_listen is set but http_token_file is not: the HTTP listener "
		    "will answer 401 to every request that needs the token");
	if (usercheck_as(c, &err) < 0) {
		daemon_report(stderr, c, buf_cstr(&err));
		bad = 1;
	}
	buf_free(&err);
	if (bad)
		fprintf(stderr, "%s: tern run would refuse to start (see above)\n", c->path);
	return bad ? -1 : 0;
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
	if (check_start(c) < 0) {
		tables_free(t);
		config_free(c);
		return 1;
	}
	printf("config ok: %s (%zu listeners, %zu local domains, %zu mailboxes)\n", c->path, c->nlisten,
	    c->nlocal_domains, table_count(t->mailboxes));
	tables_free(t);
	config_free(c);
	return 0;
}
