/*
 * passwd.c (cli) - `tern passwd add|change|del|list` (see passwd.h).
 *
 * Guarantees: the password file is never half written: the new version is
 * written to "<file>.tmp", fsync'd, renamed over the old one, and the
 * directory fsync'd, all under an exclusive lock on "<file>.lock" so two
 * runs cannot lose each other's change. Lines the tool does not touch
 * (comments, other users) are kept as they are. The password is read
 * without echo, wiped from memory after hashing, and never printed.
 * Must not: run in the daemon (it blocks on the terminal and the disk).
 */
#include "cli/passwd.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "common/config.h"
#include "common/passwd_db.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"

#define PASSWD_MAX_FILE (16u * 1024 * 1024)

static int
usage(FILE *to)
{
	fprintf(to, "usage: tern [-c config] passwd add USER      add a user (refused if USER exists)\n"
	    "       tern [-c config] passwd change USER   set a new password for USER\n"
	    "       tern [-c config] passwd del USER      remove USER\n"
	    "       tern [-c config] passwd list          print the user names\n"
	    "The password is read twice from the terminal, or once from stdin; it needs at least\n"
	    "auth_min_password_length characters (default 8). The file is auth_users.\n");
	return to == stdout ? 0 : 2;
}

/* characters (UTF-8 code points; any other byte counts as one) */
static size_t
char_count(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* one line from fd 0 without its line end; -1 at EOF or when too long */
static int
read_line(char *out, size_t cap)
{
	size_t n = 0;
	for (;;) {
		char ch;
		ssize_t r = read(0, &ch, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return n > 0 ? 0 : -1;
		if (ch == '\n')
			break;
		if (n + 1 >= cap)
			return -1;
		out[n++] = ch;
		out[n] = '\0';
	}
	out[n] = '\0';
	if (n > 0 && out[n - 1] == '\r')
		out[--n] = '\0';
	return 0;
}

static int
prompt(const char *text, char *out, size_t cap)
{
	struct termios old, quiet;
	fputs(text, stderr);
	fflush(stderr);
	bool tty = tcgetattr(0, &old) == 0;
	if (tty) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(0, TCSAFLUSH, &quiet);
	}
	int r = read_line(out, cap);
	if (tty)
		tcsetattr(0, TCSAFLUSH, &old);
	return r;
}

static int
read_password(char *pw, size_t cap, const config_t *c)
{
	char again[PASSWD_DB_MAX_FIELD + 2];
	if (!isatty(0)) {
		if (read_line(pw, cap) < 0) {
			fprintf(stderr, "tern passwd: no password on stdin (at most %d octets)\n",
			    PASSWD_DB_MAX_FIELD);
			return -1;
		}
	} else {
		if (prompt("New password: ", pw, cap) < 0 || prompt("Again: ", again, sizeof again) < 0) {
			fprintf(stderr, "tern passwd: no password read (at most %d octets)\n", PASSWD_DB_MAX_FIELD);
			explicit_bzero(again, sizeof again);
			return -1;
		}
		int same = strcmp(pw, again) == 0;
		explicit_bzero(again, sizeof again);
		if (!same) {
			fprintf(stderr, "tern passwd: the passwords differ; nothing changed\n");
			return -1;
		}
	}
	if (pw[0] == '\0') {
		fprintf(stderr, "tern passwd: empty password refused\n");
		return -1;
	}
	if (strlen(pw) > PASSWD_DB_MAX_FIELD) {
		fprintf(stderr, "tern passwd: password longer than %d octets\n", PASSWD_DB_MAX_FIELD);
		return -1;
	}
	if (char_count(pw) < c->auth_min_password_length) {
		fprintf(stderr, "tern passwd: password too short: it needs at least %u characters "
		    "(auth_min_password_length in %s); nothing changed\n", c->auth_min_password_length,
		    c->path);
		return -1;
	}
	return 0;
}

/* the user name of a "user:hash" line, or NULL for comments and blanks */
static bool
line_user(const char *line, size_t n, const char *user)
{
	size_t ul = strlen(user);
	return n > ul && memcmp(line, user, ul) == 0 && line[ul] == ':';
}

/* Write the new content atomically, keeping owner and mode. */
static int
replace_file(const char *path, const buf_t *content, const config_t *c)
{
	struct stat st;
	bool exists = stat(path, &st) == 0;
	char *tmp = xasprintf("%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "tern passwd: %s: %s\n", tmp, strerror(errno));
		xfree(tmp);
		return -1;
	}
	mode_t mode = 0600;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	if (exists) {
		mode = st.st_mode & 0770; /* never readable by others */
		uid = st.st_uid;
		gid = st.st_gid;
	} else if (c->user) {
		struct passwd *pw = getpwnam(c->user);
		if (pw) {
			mode = 0640;
			gid = pw->pw_gid;
		}
	}
	int r = 0;
	if (fchown(fd, uid, gid) < 0 && geteuid() == 0)
		r = -1;
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -1;
	if (r == 0 && write_all(fd, content->data ? content->data : "", content->len) < 0)
		r = -1;
	if (r == 0 && fsync(fd) < 0)
		r = -1;
	if (close(fd) < 0)
		r = -1;
	if (r == 0 && rename(tmp, path) < 0)
		r = -1;
	if (r < 0) {
		fprintf(stderr, "tern passwd: writing %s: %s\n", path, strerror(errno));
		unlink(tmp);
		xfree(tmp);
		return -1;
	}
	xfree(tmp);
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	fsync_dir(slash ? dir : ".");
	xfree(dir);
	return 0;
}

/* tern passwd list: the user names of the file, one a line */
static void
list_users(const char *data, size_t len)
{
	size_t pos = 0;
	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		const char *colon = memchr(line, ':', n);
		size_t sp = strspn(line, " \t");
		if (colon && sp < n && line[sp] != '#')
			printf("%.*s\n", (int)(colon - line), line);
	}
}

/* every line of the file but the user's into out; *where is the offset in
 * out at which the user's (first) line stood, so change keeps its place.
 * True when the user was there. */
static bool
copy_without_user(const char *data, size_t len, const char *user, buf_t *out, size_t *where)
{
	bool found = false;
	size_t pos = 0;
	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		if (line_user(line, n, user)) {
			if (!found)
				*where = out->len;
			found = true;
			continue; /* del: dropped */
		}
		buf_append(out, line, n);
		buf_putc(out, '\n');
	}
	return found;
}

/* "user:hash" inserted into out at offset where (the old copy is wiped) */
static void
put_user_line(buf_t *out, size_t where, const char *user, const char *hash)
{
	buf_t all = BUF_INIT;
	buf_append(&all, out->data ? out->data : "", where);
	buf_printf(&all, "%s:%s\n", user, hash);
	buf_append(&all, out->data ? out->data + where : "", out->len - where);
	if (out->data)
		explicit_bzero(out->data, out->len);
	buf_free(out);
	*out = all;
}

int
cli_passwd(const char *config, int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	const char *op = argv[1];
	if (strcmp(op, "-h") == 0 || strcmp(op, "--help") == 0 || strcmp(op, "help") == 0)
		return usage(stdout);
	bool add = strcmp(op, "add") == 0, del = strcmp(op, "del") == 0, list = strcmp(op, "list") == 0;
	bool change = strcmp(op, "change") == 0;
	if (!(add || change || del || list) || (list && argc != 2) || (!list && argc != 3))
		return usage(stderr);
	const char *user = list ? NULL : argv[2]; /* argc == 3: not NULL */
	if (!list && !passwd_db_user_ok(user)) {
		fprintf(stderr, "tern passwd: \"%s\": a user name is 1-64 of letters, digits and . _ @ + -\n",
		    user);
		return 1;
	}
	buf_t err = BUF_INIT;
	config_t *c = config_load(config, &err);
	if (!c) {
		fprintf(stderr, "%s", buf_cstr(&err));
		buf_free(&err);
		return 1;
	}
	buf_free(&err);
	int rc = 1;
	char *data = NULL;
	size_t len = 0;
	int lockfd = -1;
	char *lockpath = NULL;
	buf_t out = BUF_INIT;
	bool found = false;
	size_t where = 0; /* offset in out of the user's line */
	char hash[512];
	hash[0] = '\0';
	if (!c->auth_users) {
		fprintf(stderr, "tern passwd: auth_users is not set in %s\n", c->path);
		goto out_buf;
	}
	const char *path = c->auth_users;
	if (!list) {
		lockpath = xasprintf("%s.lock", path);
		lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (lockfd < 0 || flock(lockfd, LOCK_EX) < 0) {
			fprintf(stderr, "tern passwd: %s: %s\n", lockpath, strerror(errno));
			goto out_buf;
		}
	}
	if (read_file(path, &data, &len, PASSWD_MAX_FILE) < 0) {
		if (errno != ENOENT || del || list) {
			fprintf(stderr, "tern passwd: %s: %s\n", path, strerror(errno));
			goto out_buf;
		}
		data = xstrdup("");
		len = 0;
	}
	if (list) {
		list_users(data, len);
		rc = 0;
		goto out_buf;
	}
	found = copy_without_user(data, len, user, &out, &where);
	if ((del || change) && !found) {
		fprintf(stderr, "tern passwd: no user %s in %s%s\n", user, path,
		    change ? " (to add one: tern passwd add USER)" : "");
		goto out_buf;
	}
	if (add && found) {
		fprintf(stderr, "tern passwd: user %s already exists in %s; nothing changed (to set a new "
		    "password: tern passwd change %s)\n", user, path, user);
		goto out_buf;
	}
	if (add || change) {
		/* asked only now: nobody types a password for a refused command */
		char pw[PASSWD_DB_MAX_FIELD + 2];
		if (read_password(pw, sizeof pw, c) < 0) {
			explicit_bzero(pw, sizeof pw);
			goto out_buf;
		}
		int hr = passwd_db_make_hash(pw, hash, sizeof hash);
		explicit_bzero(pw, sizeof pw);
		if (hr < 0) {
			fprintf(stderr, "tern passwd: cannot hash the password (libxcrypt yescrypt)\n");
			goto out_buf;
		}
		/* the user's line goes where the old one was (add: at the end) */
		put_user_line(&out, add ? out.len : where, user, hash);
	}
	if (replace_file(path, &out, c) < 0)
		goto out_buf;
	printf("%s %s in %s; reload tern (systemctl reload tern) to apply\n", user,
	    del ? "removed" : change ? "changed" : "added", path);
	rc = 0;
out_buf:
	if (out.data)
		explicit_bzero(out.data, out.len);
	buf_free(&out);
	explicit_bzero(hash, sizeof hash);
	if (data) {
		explicit_bzero(data, len);
		xfree(data);
	}
	if (lockfd >= 0)
		close(lockfd);
	xfree(lockpath);
	config_free(c);
	return rc;
}
