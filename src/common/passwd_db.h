/*
 * passwd_db.h - the AUTH password file (auth_users): its format, loading,
 * lookup, and new hashes. Shared by the SMTP side (smtpd/auth.c checks a
 * password against a hash) and the tools (`tern passwd` writes entries),
 * so neither depends on the other.
 *
 * The format: one "user:hash" a line, hash a crypt(5) string (yescrypt
 * "$y$..." by default, made by passwd_db_make_hash); '#' comments and
 * blank lines allowed; a user at most once. It holds secrets: a file
 * readable or writable by others is refused.
 * Must not: log or keep a password.
 */
#ifndef TERN_PASSWD_DB_H
#define TERN_PASSWD_DB_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

#define PASSWD_DB_MAX_FIELD 255 /* user names and passwords, octets */
#define PASSWD_DB_MAX_FILE (16u * 1024 * 1024) /* the largest password file read */

typedef struct passwd_db passwd_db_t;

/* NULL with a "path:line: message" in *err */
passwd_db_t *passwd_db_load(const char *path, buf_t *err);
/* The same from the file's content, already read (the daemon reads it
 * through secret_read(), common/secret.h); path names it in messages.
 * Takes data (an xmalloc'd allocation of len bytes + NUL): wiped, freed. */
passwd_db_t *passwd_db_parse(const char *path, char *data, size_t len, buf_t *err);
void passwd_db_free(passwd_db_t *db);
/* the hash for user, or NULL */
const char *passwd_db_hash(const passwd_db_t *db, const char *user);
size_t passwd_db_count(const passwd_db_t *db);

/* A user name for the password file: 1-64 of [A-Za-z0-9._@+-], not
 * starting with '-' (an address is a good user name). */
bool passwd_db_user_ok(const char *user);

/* A new yescrypt hash of pw (random salt, libxcrypt's default cost) into
 * out (at least 256 octets): 0 or -1. */
int passwd_db_make_hash(const char *pw, char *out, size_t cap);

#endif
