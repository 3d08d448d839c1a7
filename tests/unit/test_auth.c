/*
 * test_auth.c - unit tests for src/smtpd/auth.c and the protocol parser of
 * src/lib/tls.c: base64, SASL PLAIN and LOGIN decoding (bounds, authzid,
 * NULs), the password file (format, permissions, duplicates), yescrypt
 * hashing and checking on the thread pool, the sender-login rule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/passwd_db.h"
#include "common/table.h"
#include "lib/tls.h"
#include "lib/xalloc.h"
#include "smtpd/auth.h"

static void
test_b64(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		long len;
		const char *out;
	} cases[] = {
		{"", 0, ""},
		{"Zg==", 1, "f"},
		{"Zm8=", 2, "fo"},
		{"Zm9v", 3, "foo"},
		{"AGFsaWNlAHNlY3JldA==", 13, "\0alice\0secret"},
		{"Zg=", -1, NULL},   /* length not a multiple of 4 */
		{"Z===", -1, NULL},  /* too much padding */
		{"Zg==Zg==", -1, NULL}, /* padding in the middle */
		{"Zm9v!A==", -1, NULL},
		{"Zm 9", -1, NULL},
		{"Zh==", -1, NULL},  /* leftover bits set: not canonical */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned char out[64];
		long n = auth_b64_decode(cases[i].in, strlen(cases[i].in), out, sizeof out);
		assert_int_equal(n, cases[i].len);
		if (n > 0)
			assert_memory_equal(out, cases[i].out, (size_t)n);
	}
	unsigned char small[2];
	assert_int_equal(auth_b64_decode("Zm9v", 4, small, sizeof small), -1); /* no room */
	buf_t b = BUF_INIT;
	auth_b64_encode((const unsigned char *)"\0alice\0secret", 13, &b);
	assert_string_equal(buf_cstr(&b), "AGFsaWNlAHNlY3JldA==");
	buf_free(&b);
}

static void
plain(const char *raw, size_t n, buf_t *b)
{
	buf_reset(b);
	auth_b64_encode((const unsigned char *)raw, n, b);
}

static void
test_plain(void **state)
{
	(void)state;
	buf_t b = BUF_INIT;
	char *u, *p;
	const char *why;
	plain("\0alice\0secret", 13, &b);
	assert_int_equal(auth_plain_decode(b.data, b.len, &u, &p, &why), 0);
	assert_string_equal(u, "alice");
	assert_string_equal(p, "secret");
	xfree(u);
	xfree(p);
	/* authzid equal to the user: fine; another: refused with 535 */
	plain("alice\0alice\0secret", 18, &b);
	assert_int_equal(auth_plain_decode(b.data, b.len, &u, &p, &why), 0);
	xfree(u);
	xfree(p);
	plain("bob\0alice\0secret", 16, &b);
	assert_int_equal(auth_plain_decode(b.data, b.len, &u, &p, &why), -1);
	assert_true(strncmp(why, "535 5.7.8", 9) == 0);
	/* missing parts, empty user */
	plain("alice", 5, &b);
	assert_int_equal(auth_plain_decode(b.data, b.len, &u, &p, &why), -1);
	assert_true(strncmp(why, "501 5.5.2", 9) == 0);
	plain("\0\0secret", 8, &b);
	assert_int_equal(auth_plain_decode(b.data, b.len, &u, &p, &why), -1);
	/* a NUL inside the password would make a third field */
	plain("\0alice\0sec\0ret", 14, &b);
	assert_int_equal(auth_plain_decode(b.data, b.len, &u, &p, &why), 0);
	assert_string_equal(p, "sec"); /* C string: the rest never reaches crypt */
	xfree(u);
	xfree(p);
	/* too long */
	char big[600];
	memset(big, 'a', sizeof big);
	big[0] = '\0';
	big[5] = '\0';
	plain(big, sizeof big, &b);
	assert_int_equal(auth_plain_decode(b.data, b.len, &u, &p, &why), -1);
	assert_null(u);
	assert_int_equal(auth_plain_decode("", 0, &u, &p, &why), -1);
	buf_free(&b);
}

static void
test_login(void **state)
{
	(void)state;
	char *v;
	const char *why;
	assert_int_equal(auth_login_decode("YWxpY2U=", 8, &v, &why), 0);
	assert_string_equal(v, "alice");
	xfree(v);
	assert_int_equal(auth_login_decode("AGE=", 4, &v, &why), -1); /* NUL */
	assert_int_equal(auth_login_decode("***", 3, &v, &why), -1);
}

static char *
write_tmp(const char *text, mode_t mode)
{
	char *path = xstrdup("/tmp/test_auth_XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	chmod(path, mode);
	return path;
}

static void
test_db(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		mode_t mode;
		bool ok;
		const char *err;
	} cases[] = {
		{"# users\n\nalice:$y$j9T$abc$def\nbob@example.com:$6$salt$hash\n", 0600, true, NULL},
		{"alice:$y$x$y\n", 0640, true, NULL},
		{"alice:$y$x$y\n", 0644, false, "readable or writable by others"},
		{"alice $y$x$y\n", 0600, false, "expected user:hash"},
		{"alice:plain\n", 0600, false, "not a crypt(5) string"},
		{"alice:$y$a\nalice:$y$b\n", 0600, false, "duplicate user alice"},
		{"-x:$y$a\n", 0600, false, "bad user name"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *path = write_tmp(cases[i].text, cases[i].mode);
		buf_t err = BUF_INIT;
		passwd_db_t *db = passwd_db_load(path, &err);
		if (cases[i].ok) {
			assert_non_null(db);
		} else {
			assert_null(db);
			assert_non_null(strstr(buf_cstr(&err), cases[i].err));
		}
		if (i == 0) {
			assert_int_equal(passwd_db_count(db), 2);
			assert_string_equal(passwd_db_hash(db, "alice"), "$y$j9T$abc$def");
			assert_null(passwd_db_hash(db, "Alice")); /* user names are exact */
			assert_null(passwd_db_hash(db, "carol"));
		}
		passwd_db_free(db);
		buf_free(&err);
		unlink(path);
		xfree(path);
	}
}

struct vres {
	int calls;
	bool ok;
};

static void
verified(void *arg, bool ok)
{
	struct vres *r = arg;
	r->calls++;
	r->ok = ok;
}

static void
test_hash_and_verify(void **state)
{
	(void)state;
	char hash[256];
	assert_int_equal(passwd_db_make_hash("correct horse", hash, sizeof hash), 0);
	assert_true(strncmp(hash, "$y$", 3) == 0);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct vres good = {0}, bad = {0}, nouser = {0};
	auth_verify(&loop, hash, "correct horse", verified, &good);
	auth_verify(&loop, hash, "correct horsE", verified, &bad);
	/* an unknown user: never accepted, whatever the password */
	auth_verify(&loop, NULL, "tern-dummy-password-never-valid", verified, &nouser);
	assert_int_equal(good.calls + bad.calls + nouser.calls, 0); /* never from inside the call */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(good.calls, 1);
	assert_true(good.ok);
	assert_int_equal(bad.calls, 1);
	assert_false(bad.ok);
	assert_int_equal(nouser.calls, 1);
	assert_false(nouser.ok);
	uv_loop_close(&loop);
}

static void
test_sender_login(void **state)
{
	(void)state;
	const char *text = "info@example.com alice, bob@example.com\n@example.org carol\n";
	buf_t err = BUF_INIT;
	table_t *t = table_parse_buf("sender_login", text, strlen(text), TABLE_MAP, &err);
	assert_non_null(t);
	static const struct {
		const char *user, *sender;
		bool ok;
	} cases[] = {
		{"bob@example.com", "bob@example.com", true},   /* the login name */
		{"bob@example.com", "BOB@example.com", true},
		{"bob@example.com", "", true},                  /* <> */
		{"bob@example.com", "info@example.com", true},
		{"alice", "info@example.com", true},
		{"alice", "alice", false},                      /* not an address */
		{"alice", "alice@example.com", false},
		{"carol", "anyone@example.org", true},
		{"bob@example.com", "anyone@example.org", false},
		{"bob@example.com", "alice@example.com", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(auth_sender_ok(t, cases[i].user, cases[i].sender), cases[i].ok);
	assert_true(auth_sender_ok(NULL, "bob@example.com", "bob@example.com"));
	assert_false(auth_sender_ok(NULL, "bob@example.com", "info@example.com"));
	table_free(t);
	buf_free(&err);
}

static void
test_tls_protocols(void **state)
{
	(void)state;
	static const struct {
		const char *spec;
		int min, max;
	} good[] = {
		{">=TLSv1.2", TLS1_2_VERSION, 0},
		{">=TLSv1.3", TLS1_3_VERSION, 0},
		{"TLSv1.2", TLS1_2_VERSION, TLS1_2_VERSION},
		{"tlsv1.3", TLS1_3_VERSION, TLS1_3_VERSION},
		{"TLSv1.2-TLSv1.3", TLS1_2_VERSION, TLS1_3_VERSION},
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		int lo = -1, hi = -1;
		assert_null(tls_parse_protocols(good[i].spec, &lo, &hi));
		assert_int_equal(lo, good[i].min);
		assert_int_equal(hi, good[i].max);
	}
	static const char *const bad[] = {">=TLSv1.1", "TLSv1", "SSLv3", "TLSv1.3-TLSv1.2", "", "all"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int lo, hi;
		assert_non_null(tls_parse_protocols(bad[i], &lo, &hi));
	}
	enum tls_policy p;
	assert_int_equal(tls_policy_parse("Verify", &p), 0);
	assert_int_equal(p, TLS_POLICY_VERIFY);
	assert_int_equal(tls_policy_parse("dane", &p), 0);
	assert_int_equal(p, TLS_POLICY_DANE);
	assert_int_equal(tls_policy_parse("mta-sts", &p), -1);
	assert_string_equal(tls_policy_name(TLS_POLICY_MAY), "may");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_plain),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_db),
		cmocka_unit_test(test_hash_and_verify),
		cmocka_unit_test(test_sender_login),
		cmocka_unit_test(test_tls_protocols),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
