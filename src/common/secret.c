/*
 * secret.c - reading the files that hold secrets (see secret.h).
 */
#include "common/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "lib/fsutil.h"

static const char *const kind_key[SECRET_NKINDS] = {
	"tls_cert", "tls_key", "auth_users", "relayhost_auth_file", "srs_secret_file",
	"tls_certificate", "tls_certificate", "http_token_file",
};

static secret_opener_fn opener;

const char *
secret_key(enum secret_kind k)
{
	return (unsigned)k < SECRET_NKINDS ? kind_key[k] : "?";
}

const char *
secret_config_path(const config_t *c, enum secret_kind k)
{
	switch (k) {
	case SECRET_TLS_CERT: return c->tls_cert;
	case SECRET_TLS_KEY: return c->tls_key && c->tls_key[0] ? c->tls_key : c->tls_cert;
	case SECRET_AUTH_USERS: return c->auth_users;
	case SECRET_RELAY_AUTH: return c->relayhost_auth_file;
	case SECRET_SRS: return c->srs_secret_file;
	case SECRET_HTTP_TOKEN: return c->http_token_file;
	default: return NULL;
	}
}

const char *
secret_sni_key_path(const config_tls_cert_t *e)
{
	return e->key && e->key[0] ? e->key : e->cert;
}

bool
secret_config_names(const config_t *c, enum secret_kind k, const char *path)
{
	if (k == SECRET_SNI_CERT || k == SECRET_SNI_KEY) {
		for (size_t i = 0; i < c->ntls_certificates; i++) {
			const config_tls_cert_t *e = &c->tls_certificates[i];
			const char *p = k == SECRET_SNI_CERT ? e->cert : secret_sni_key_path(e);
			if (strcmp(p, path) == 0)
				return true;
		}
		return false;
	}
	const char *want = secret_config_path(c, k);
	return want && strcmp(want, path) == 0;
}

int
secret_file_problem(enum secret_kind k, const char *path, const struct stat *st, uid_t uid,
    buf_t *err)
{
	if (!S_ISREG(st->st_mode)) {
		buf_printf(err, "%s %s: not a regular file", secret_key(k), path);
		return -1;
	}
	if (k == SECRET_TLS_CERT || k == SECRET_SNI_CERT)
		return 0; /* a certificate is public */
	const char *why = fs_secret_problem(st, uid, k != SECRET_RELAY_AUTH && k != SECRET_SRS &&
	    k != SECRET_HTTP_TOKEN);
	if (why) {
		buf_printf(err, "%s %s %s (owner uid %d, mode %04o)", secret_key(k), path, why,
		    (int)st->st_uid, (unsigned)(st->st_mode & 07777));
		return -1;
	}
	return 0;
}

int
secret_open_here(enum secret_kind k, const char *path, buf_t *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		buf_printf(err, "%s %s: %s", secret_key(k), path, strerror(errno));
	return fd;
}

void
secret_set_opener(secret_opener_fn fn)
{
	opener = fn;
}

int
secret_read(enum secret_kind k, const char *path, uid_t uid, size_t max, char **data, size_t *len,
    buf_t *err)
{
	int fd = (opener ? opener : secret_open_here)(k, path, err);
	if (fd < 0)
		return -1;
	/* checked here too: without a privileged parent this is the only check */
	struct stat st;
	if (fstat(fd, &st) < 0) {
		buf_printf(err, "%s %s: %s", secret_key(k), path, strerror(errno));
		close(fd);
		return -1;
	}
	if (secret_file_problem(k, path, &st, uid, err) < 0) {
		close(fd);
		return -1;
	}
	int r = read_fd(fd, data, len, max);
	if (r < 0)
		buf_printf(err, "%s %s: %s", secret_key(k), path,
		    errno == EFBIG ? "file too large" : strerror(errno));
	close(fd);
	return r;
}
