/*
 * secret.h - reading the files that hold secrets.
 *
 * These configuration keys name files tern reads at start and again at
 * every reload that an administrator keeps root-only (root:root 0600, as
 * openssl and certbot make them): tls_cert, tls_key, the files of each
 * tls_certificate line, auth_users, relayhost_auth_file,
 * srs_secret_file and http_token_file. The daemon runs unprivileged by then, so who opens
 * them is pluggable: by default this process (open(2)); started as root, the
 * daemon installs an opener that asks its privileged parent
 * (daemon/privsep.h), which checks the request against its own reading of
 * the configuration. Either way the same file checks apply
 * (secret_file_problem) and the caller gets the content, read from the
 * descriptor, never the descriptor itself.
 * Must not: be used from worker threads (the opener may talk to another
 * process, one request at a time).
 */
#ifndef TERN_SECRET_H
#define TERN_SECRET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "lib/buf.h"

struct config;
struct config_tls_cert;
struct stat;

enum secret_kind {
	SECRET_TLS_CERT = 0,
	SECRET_TLS_KEY,
	SECRET_AUTH_USERS,
	SECRET_RELAY_AUTH,
	SECRET_SRS, /* srs_secret_file (mailauth/srs.h) */
	SECRET_SNI_CERT, /* the certificate of a tls_certificate line */
	SECRET_SNI_KEY,  /* its key (the certificate's file when the line names none) */
	SECRET_HTTP_TOKEN, /* http_token_file (control/api.h) */
	SECRET_NKINDS
};

/* the configuration key of a kind ("tls_key"), for messages */
const char *secret_key(enum secret_kind k);

/* The path the configuration names for a kind (tls_key falls back to
 * tls_cert, which then holds the key); NULL when it names none, or
 * several (the tls_certificate kinds). */
const char *secret_config_path(const struct config *c, enum secret_kind k);

/* Does the configuration name path for kind k? (tls_certificate: on any
 * of its lines) What the privileged parent grants. */
bool secret_config_names(const struct config *c, enum secret_kind k, const char *path);

/* The key file of a tls_certificate entry (its certificate's file when it
 * names none). */
const char *secret_sni_key_path(const struct config_tls_cert *e);

/*
 * The checks on an opened file: a regular file; for all kinds but the
 * (public) certificate, fs_secret_problem() with uid, the user tern runs as
 * (the key and the password file may be readable by its group, the relay
 * credentials not). 0, or -1 with "KEY PATH why (owner uid U, mode M)".
 */
int secret_file_problem(enum secret_kind k, const char *path, const struct stat *st, uid_t uid,
    buf_t *err);

/* Open a secret file read-only in this process (never blocking on a FIFO,
 * never a controlling tty); the descriptor, or -1 with "KEY PATH: reason". */
int secret_open_here(enum secret_kind k, const char *path, buf_t *err);

/* Who opens from now on: a function with secret_open_here()'s contract;
 * NULL restores secret_open_here(). */
typedef int (*secret_opener_fn)(enum secret_kind k, const char *path, buf_t *err);
void secret_set_opener(secret_opener_fn fn);

/*
 * Read the secret file of kind k at path (at most max bytes) into a fresh
 * NUL-terminated allocation, through the current opener, after the checks
 * of secret_file_problem() (uid: the user tern runs as). 0, or -1 with
 * "KEY PATH: reason" in *err. The caller wipes and frees *data.
 */
int secret_read(enum secret_kind k, const char *path, uid_t uid, size_t max, char **data,
    size_t *len, buf_t *err);

#endif
