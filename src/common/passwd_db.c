/*
 * passwd_db.c - the AUTH password file: parsing, lookup, new hashes (see
 * passwd_db.h).
 *
 * Guarantees: a file with any bad line is refused whole (never half
 * loaded); every hash is wiped (explicit_bzero) before it is freed, and so
 * is the file's text once parsed.
 * Must not: log anything (callers do, without secrets).
 */
#include "common/passwd_db.h"

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/fsutil.h"
#include "lib/xalloc.h"

struct passwd_db {
	char **user;
	char **hash;
	size_t n;
};

bool
passwd_db_user_ok(const char *u)
{
	size_t n = strlen(u);
	if (n == 0 || n > 64 || u[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)u[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '.' || ch == '_' || ch == '@' || ch == '+' || ch == '-'))
			return false;
	}
	return true;
}

static bool
hash_ok(const char *h)
{
	/* a crypt(5) setting string: "$id$...", printable, no ':' or spaces */
	size_t n = strlen(h);
	if (n < 4 || n > 512 || h[0] != '$')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)h[i] <= ' ' || (unsigned char)h[i] >= 0x7f || h[i] == ':')
			return false;
	return true;
}

passwd_db_t *
passwd_db_load(const char *path, buf_t *err)
{
	struct stat st;
	char *data;
	size_t len;
	if (stat(path, &st) < 0) {
		buf_printf(err, "%s:0: %s", path, strerror(errno));
		return NULL;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		buf_printf(err, "%s:0: readable or writable by others; it holds password hashes "
		    "(chmod 600, or 640 with the group tern runs as)", path);
		return NULL;
	}
	if (read_file(path, &data, &len, PASSWD_DB_MAX_FILE) < 0) {
		buf_printf(err, "%s:0: %s", path, errno == EFBIG ? "file too large" : strerror(errno));
		return NULL;
	}
	return passwd_db_parse(path, data, len, err);
}

passwd_db_t *
passwd_db_parse(const char *path, char *data, size_t len, buf_t *err)
{
	passwd_db_t *db = xcalloc(1, sizeof *db);
	unsigned lineno = 0;
	size_t pos = 0;
	bool bad = false;
	while (pos < len && !bad) {
		char *line = data + pos;
		char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		line[n] = '\0';
		size_t s = strspn(line, " \t");
		if (line[s] == '\0' || line[s] == '#')
			continue;
		char *colon = strchr(line, ':');
		if (!colon) {
			buf_printf(err, "%s:%u: expected user:hash", path, lineno);
			bad = true;
			break;
		}
		*colon = '\0';
		const char *user = line, *hash = colon + 1;
		if (!passwd_db_user_ok(user)) {
			buf_printf(err, "%s:%u: bad user name", path, lineno);
			bad = true;
		} else if (!hash_ok(hash)) {
			buf_printf(err, "%s:%u: the hash for %s is not a crypt(5) string", path, lineno,
			    user);
			bad = true;
		} else if (passwd_db_hash(db, user)) {
			buf_printf(err, "%s:%u: duplicate user %s", path, lineno, user);
			bad = true;
		} else {
			db->user = xrealloc(db->user, (db->n + 1) * sizeof *db->user);
			db->hash = xrealloc(db->hash, (db->n + 1) * sizeof *db->hash);
			db->user[db->n] = xstrdup(user);
			db->hash[db->n] = xstrdup(hash);
			db->n++;
		}
	}
	explicit_bzero(data, len);
	xfree(data);
	if (bad) {
		passwd_db_free(db);
		return NULL;
	}
	return db;
}

void
passwd_db_free(passwd_db_t *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->n; i++) {
		xfree(db->user[i]);
		explicit_bzero(db->hash[i], strlen(db->hash[i]));
		xfree(db->hash[i]);
	}
	xfree(db->user);
	xfree(db->hash);
	xfree(db);
}

const char *
passwd_db_hash(const passwd_db_t *db, const char *user)
{
	/* a linear scan: password files are small; user names are exact */
	for (size_t i = 0; db && i < db->n; i++)
		if (strcmp(db->user[i], user) == 0)
			return db->hash[i];
	return NULL;
}

size_t
passwd_db_count(const passwd_db_t *db)
{
	return db ? db->n : 0;
}

int
passwd_db_make_hash(const char *pw, char *out, size_t cap)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = xcalloc(1, sizeof *cd);
	int r = -1;
	/* count 0: libxcrypt's default cost for yescrypt; random salt from the kernel */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) != NULL) {
		const char *h = crypt_r(pw, setting, cd);
		if (h && h[0] == '$' && strlen(h) < cap) {
			snprintf(out, cap, "%s", h);
			r = 0;
		}
	}
	explicit_bzero(cd, sizeof *cd);
	xfree(cd);
	return r;
}
