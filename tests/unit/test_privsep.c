/*
 * test_privsep.c - unit tests for src/daemon/privsep.c.
 *
 * The parent's side (privsep_serve_one) runs in a thread on one end of a
 * SOCK_SEQPACKET socketpair, answering by a configuration parsed here; the
 * tests ask on the other end, with privsep_request() or with hand-made
 * garbage. Checked: a secret the configuration names comes back as an
 * open descriptor with the file's content; a path the configuration does
 * not name, or names for another kind, is refused; a key others can read
 * (fs_secret_problem) is refused, a public certificate is not; malformed
 * requests (short, bad magic, unknown kind, NUL in the path, too long, with
 * a descriptor attached) each get a refusal and the channel still serves;
 * closing the channel ends the server. secret_read() without a parent
 * opens the file itself with the same checks.
 * Must not: fork the real parent (privsep_start: the integration tests do).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.h"
#include "common/secret.h"
#include "daemon/privsep.h"
#include "lib/buf.h"
#include "lib/xalloc.h"

static char dir[64];
static char key_path[128], cert_path[128], auth_path[128], open_key_path[128], relay_path[128];
static char key_path2[128], cert_path2[128];

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static config_t *
make_config(const char *key)
{
	char text[1024];
	snprintf(text, sizeof text,
	    "spool_dir = %s/spool\nmaildir_base = %s/mail\ntls_cert = %s\ntls_key = %s\n"
	    "auth_users = %s\nrelayhost_auth_file = %s\n",
	    dir, dir, cert_path, key, auth_path, relay_path);
	buf_t err = BUF_INIT;
	config_t *c = config_parse_buf("test.conf", text, strlen(text), &err);
	if (!c)
		fprintf(stderr, "%s\n", buf_cstr(&err));
	assert_non_null(c);
	buf_free(&err);
	return c;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_privsep.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
	snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
	snprintf(auth_path, sizeof auth_path, "%s/passwd", dir);
	snprintf(open_key_path, sizeof open_key_path, "%s/open.key", dir);
	snprintf(relay_path, sizeof relay_path, "%s/relay", dir);
	write_file(key_path, "THE KEY\n", 0600);
	write_file(cert_path, "THE CERT\n", 0644);
	write_file(auth_path, "alice:$y$j9T$x$y\n", 0600);
	write_file(open_key_path, "OPEN KEY\n", 0644);
	write_file(relay_path, "user pass\n", 0600);
	snprintf(key_path2, sizeof key_path2, "%s/key2.pem", dir);
	snprintf(cert_path2, sizeof cert_path2, "%s/cert2.pem", dir);
	write_file(key_path2, "KEY 2\n", 0600);
	write_file(cert_path2, "CERT 2\n", 0644);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	const char *f[] = {key_path, cert_path, auth_path, open_key_path, relay_path, key_path2,
	    cert_path2};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		unlink(f[i]);
	rmdir(dir);
	return 0;
}

/* the parent's side in a thread, until the channel closes */
struct server {
	int sock;
	config_t *c;
	pthread_t th;
	int served;
};

static void *
serve(void *arg)
{
	struct server *s = arg;
	while (privsep_serve_one(s->sock, s->c) == 0)
		s->served++;
	return NULL;
}

static int
start(struct server *s, config_t *c)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	s->sock = sv[0];
	s->c = c;
	s->served = 0;
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
	return sv[1];
}

static void
stop(struct server *s, int client)
{
	close(client);
	pthread_join(s->th, NULL); /* EOF ends the server */
	close(s->sock);
	config_free(s->c);
}

static char *
content(int fd)
{
	static char b[256];
	ssize_t n = pread(fd, b, sizeof b - 1, 0);
	assert_true(n >= 0);
	b[n] = '\0';
	return b;
}

static void
test_grants_named_secret(void **state)
{
	(void)state;
	struct server s;
	int cl = start(&s, make_config(key_path));
	buf_t err = BUF_INIT;
	int fd = privsep_request(cl, SECRET_TLS_KEY, key_path, &err);
	assert_true(fd >= 0);
	assert_string_equal(content(fd), "THE KEY\n");
	/* read-only */
	assert_true(write(fd, "x", 1) < 0);
	close(fd);
	fd = privsep_request(cl, SECRET_AUTH_USERS, auth_path, &err);
	assert_true(fd >= 0);
	close(fd);
	fd = privsep_request(cl, SECRET_RELAY_AUTH, relay_path, &err);
	assert_true(fd >= 0);
	close(fd);
	/* a certificate is public: 0644 is fine */
	fd = privsep_request(cl, SECRET_TLS_CERT, cert_path, &err);
	assert_true(fd >= 0);
	assert_string_equal(content(fd), "THE CERT\n");
	close(fd);
	assert_int_equal(err.len, 0);
	buf_free(&err);
	stop(&s, cl);
	assert_int_equal(s.served, 4);
}

static void
test_refuses_other_paths(void **state)
{
	(void)state;
	struct server s;
	int cl = start(&s, make_config(key_path));
	buf_t err = BUF_INIT;
	/* a path the configuration does not name */
	assert_int_equal(privsep_request(cl, SECRET_TLS_KEY, "/etc/shadow", &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "not the file the configuration"));
	assert_non_null(strstr(buf_cstr(&err), "tls_key /etc/shadow"));
	buf_reset(&err);
	/* named, but for another kind */
	assert_int_equal(privsep_request(cl, SECRET_AUTH_USERS, key_path, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "not the file the configuration"));
	buf_reset(&err);
	/* the same file by another spelling */
	char other[256];
	snprintf(other, sizeof other, "%s/./key.pem", dir);
	assert_int_equal(privsep_request(cl, SECRET_TLS_KEY, other, &err), -1);
	buf_reset(&err);
	/* still serving */
	int fd = privsep_request(cl, SECRET_TLS_KEY, key_path, &err);
	assert_true(fd >= 0);
	close(fd);
	buf_free(&err);
	stop(&s, cl);
}

/* tls_certificate lines (SNI): each line's certificate and key, no other */
static void
test_grants_sni_certificates(void **state)
{
	(void)state;
	struct server s;
	char text[1024];
	/* the second line names no key: it is in the certificate's file */
	snprintf(text, sizeof text,
	    "spool_dir = %s/spool\nmaildir_base = %s/mail\ntls_cert = %s\ntls_key = %s\n"
	    "tls_certificate = %s %s\ntls_certificate = %s\n", dir, dir, cert_path, key_path,
	    cert_path2, key_path2, relay_path);
	buf_t err = BUF_INIT;
	config_t *c = config_parse_buf("test.conf", text, strlen(text), &err);
	assert_non_null(c);
	int cl = start(&s, c);
	int fd = privsep_request(cl, SECRET_SNI_CERT, cert_path2, &err);
	assert_true(fd >= 0);
	assert_string_equal(content(fd), "CERT 2\n");
	close(fd);
	fd = privsep_request(cl, SECRET_SNI_KEY, key_path2, &err);
	assert_true(fd >= 0);
	assert_string_equal(content(fd), "KEY 2\n");
	close(fd);
	fd = privsep_request(cl, SECRET_SNI_KEY, relay_path, &err);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(err.len, 0);
	/* the default's key is tls_key's, not a tls_certificate's */
	assert_int_equal(privsep_request(cl, SECRET_SNI_KEY, key_path, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "tls_certificate"));
	assert_non_null(strstr(buf_cstr(&err), "not the file the configuration"));
	buf_reset(&err);
	/* a key file is no certificate file, and the other way round */
	assert_int_equal(privsep_request(cl, SECRET_SNI_CERT, key_path2, &err), -1);
	buf_reset(&err);
	assert_int_equal(privsep_request(cl, SECRET_TLS_KEY, key_path2, &err), -1);
	buf_free(&err);
	stop(&s, cl);
	assert_int_equal(s.served, 6);
}

static void
test_refuses_unsafe_secret(void **state)
{
	(void)state;
	struct server s;
	/* named by the configuration, but readable by others */
	int cl = start(&s, make_config(open_key_path));
	buf_t err = BUF_INIT;
	assert_int_equal(privsep_request(cl, SECRET_TLS_KEY, open_key_path, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "readable by others"));
	buf_reset(&err);
	/* a named file that does not exist: the reason, with key and path */
	unlink(auth_path);
	assert_int_equal(privsep_request(cl, SECRET_AUTH_USERS, auth_path, &err), -1);
	char want[256];
	snprintf(want, sizeof want, "auth_users %s: No such file or directory", auth_path);
	assert_string_equal(buf_cstr(&err), want);
	write_file(auth_path, "alice:$y$j9T$x$y\n", 0600);
	buf_free(&err);
	stop(&s, cl);
}

/* send raw bytes (and optionally a descriptor), expect a refusal */
static void
garbage(int cl, const void *p, size_t n, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = {(void *)(uintptr_t)p, n};
	struct msghdr mh;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		memset(&u, 0, sizeof u);
		mh.msg_control = u.b;
		mh.msg_controllen = sizeof u.b;
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	}
	assert_true(sendmsg(cl, &mh, 0) >= 0);
	char rep[1024];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * 4)];
	} r;
	struct iovec riov = {rep, sizeof rep};
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &riov;
	mh.msg_iovlen = 1;
	mh.msg_control = r.b;
	mh.msg_controllen = sizeof r.b;
	ssize_t got = recvmsg(cl, &mh, 0);
	assert_true(got >= 8);
	assert_null(CMSG_FIRSTHDR(&mh)); /* no descriptor with a refusal */
	int32_t status;
	memcpy(&status, rep + 4, sizeof status);
	assert_int_not_equal(status, 0);
}

static void
test_protocol_survives_garbage(void **state)
{
	(void)state;
	struct server s;
	int cl = start(&s, make_config(key_path));
	uint32_t hdr[2] = {0x7465726eu, SECRET_TLS_KEY};
	char msg[PATH_MAX + 64];

	garbage(cl, "abc", 3, -1);                       /* too short */
	garbage(cl, hdr, sizeof hdr, -1);                /* no path */
	uint32_t bad[2] = {0xdeadbeefu, SECRET_TLS_KEY}; /* bad magic */
	memcpy(msg, bad, sizeof bad);
	memcpy(msg + sizeof bad, key_path, strlen(key_path));
	garbage(cl, msg, sizeof bad + strlen(key_path), -1);
	uint32_t kind[2] = {0x7465726eu, 99}; /* unknown kind */
	memcpy(msg, kind, sizeof kind);
	garbage(cl, msg, sizeof kind + strlen(key_path), -1);
	memcpy(msg, hdr, sizeof hdr); /* a NUL inside the path: key_path\0junk */
	memcpy(msg + sizeof hdr, key_path, strlen(key_path) + 1);
	memcpy(msg + sizeof hdr + strlen(key_path) + 1, "junk", 4);
	garbage(cl, msg, sizeof hdr + strlen(key_path) + 5, -1);
	memset(msg + sizeof hdr, 'a', sizeof msg - sizeof hdr); /* longer than any path */
	garbage(cl, msg, sizeof msg, -1);
	memcpy(msg + sizeof hdr, key_path, strlen(key_path)); /* a good request with an fd */
	garbage(cl, msg, sizeof hdr + strlen(key_path), 0);
	for (int i = 0; i < 200; i++) { /* random bytes */
		size_t n = 1 + (size_t)(rand() % 300);
		for (size_t j = 0; j < n; j++)
			msg[j] = (char)rand();
		garbage(cl, msg, n, -1);
	}

	/* the channel still works */
	buf_t err = BUF_INIT;
	int fd = privsep_request(cl, SECRET_TLS_KEY, key_path, &err);
	assert_true(fd >= 0);
	assert_string_equal(content(fd), "THE KEY\n");
	close(fd);
	buf_free(&err);
	stop(&s, cl);
	assert_int_equal(s.served, 208);
}

static void
test_gone_parent(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[0]);
	buf_t err = BUF_INIT;
	assert_int_equal(privsep_request(sv[1], SECRET_TLS_KEY, key_path, &err), -1);
	assert_true(err.len > 0);
	close(sv[1]);
	buf_free(&err);
}

static void
test_read_without_parent(void **state)
{
	(void)state;
	assert_false(privsep_active());
	char *data = NULL;
	size_t len = 0;
	buf_t err = BUF_INIT;
	assert_int_equal(secret_read(SECRET_TLS_KEY, key_path, geteuid(), 1024, &data, &len, &err), 0);
	assert_string_equal(data, "THE KEY\n");
	assert_int_equal(len, 8);
	xfree(data);
	assert_int_equal(secret_read(SECRET_TLS_KEY, open_key_path, geteuid(), 1024, &data, &len, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "readable by others"));
	buf_reset(&err);
	assert_int_equal(secret_read(SECRET_TLS_KEY, key_path, geteuid(), 4, &data, &len, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "too large"));
	buf_reset(&err);
	assert_int_equal(secret_read(SECRET_TLS_CERT, dir, geteuid(), 1024, &data, &len, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "not a regular file"));
	buf_free(&err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grants_named_secret),
		cmocka_unit_test(test_refuses_other_paths),
		cmocka_unit_test(test_grants_sni_certificates),
		cmocka_unit_test(test_refuses_unsafe_secret),
		cmocka_unit_test(test_protocol_survives_garbage),
		cmocka_unit_test(test_gone_parent),
		cmocka_unit_test(test_read_without_parent),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
