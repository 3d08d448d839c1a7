/*
 * test_maildir.c - unit tests for Maildir delivery (src/deliver/maildir.c).
 *
 * Covers: a delivery creates the Maildir (0700) and one file in new/ with
 * Return-Path and Delivered-To prepended and CRLF turned into LF (across
 * 64 KiB chunk boundaries, lone CRs kept); the name is deterministic and
 * host names are escaped; a second delivery of the same recipient never
 * makes a second copy (new/, or cur/ with ":2,S" under check_dup); an
 * unusable directory gives a temporary "4.x.x" error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/envelope.h"
#include "deliver/maildir.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

typedef struct fx {
	char *dir;     /* temp dir */
	char *maildir; /* dir/Maildir (not created) */
	int cfd;       /* content file */
	envelope_t *env;
} fx_t;

/* A content file holding `prefix` junk bytes, then the message. */
static void
fx_init(fx_t *f, const char *msg, size_t n)
{
	f->dir = xstrdup("/tmp/tern-test-maildir-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	f->maildir = xasprintf("%s/sub/Maildir", f->dir);
	char *cp = xasprintf("%s/content", f->dir);
	f->cfd = open(cp, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(f->cfd >= 0);
	xfree(cp);
	assert_int_equal(write_all(f->cfd, "HEADERJUNK", 10), 0);
	assert_int_equal(write_all(f->cfd, msg, n), 0);
	assert_int_equal(write_all(f->cfd, "TRAILER", 7), 0);
	f->env = envelope_new();
	strcpy(f->env->qid, "1K1ABCDEFGH12345");
	f->env->arrival_us = 1700000000012345LL;
	f->env->sender = xstrdup("from@example.org");
	envelope_add_rcpt(f->env, "alice@example.com", NULL, NULL, 0);
	envelope_add_rcpt(f->env, "bob@example.com", NULL, NULL, 0);
	f->env->body_off = 10;
	f->env->body_len = n;
}

static void
fx_free(fx_t *f)
{
	close(f->cfd);
	envelope_free(f->env);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	xfree(f->dir);
	xfree(f->maildir);
}

/* the names in maildir/sub, sorted is not needed: count and first one */
static size_t
list_dir(const char *maildir, const char *sub, buf_t *first)
{
	char *p = xasprintf("%s/%s", maildir, sub);
	DIR *d = opendir(p);
	xfree(p);
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n++ == 0 && first) {
			buf_reset(first);
			buf_puts(first, de->d_name);
		}
	}
	closedir(d);
	return n;
}

static char *
read_new(const char *maildir, size_t *len)
{
	buf_t name = BUF_INIT;
	assert_int_equal(list_dir(maildir, "new", &name), 1);
	char *p = xasprintf("%s/new/%s", maildir, buf_cstr(&name));
	char *data;
	assert_int_equal(read_file(p, &data, len, 1 << 26), 0);
	xfree(p);
	buf_free(&name);
	return data;
}

static void
test_deliver_basic(void **state)
{
	(void)state;
	const char *msg = "Subject: hi\r\n\r\nline one\r\nbare\rCR\r\n";
	fx_t f;
	fx_init(&f, msg, strlen(msg));
	buf_t err = BUF_INIT;
	assert_int_equal(maildir_deliver(f.maildir, f.env, 0, f.cfd, "mx.example.net", false, &err),
	    0);
	struct stat st;
	assert_int_equal(stat(f.maildir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	const char *want = "Return-Path: <from@example.org>\nDelivered-To: alice@example.com\n"
	    "Subject: hi\n\nline one\nbare\rCR\n";
	size_t len;
	char *got = read_new(f.maildir, &len);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	xfree(got);
	/* the name: base + ",S=<size>" */
	buf_t name = BUF_INIT, base = BUF_INIT;
	list_dir(f.maildir, "new", &name);
	maildir_name(&base, f.env, 0, "mx.example.net");
	assert_string_equal(buf_cstr(&base), "1700000000.M12345Q1K1ABCDEFGH12345R0.mx.example.net");
	buf_printf(&base, ",S=%zu", strlen(want));
	assert_string_equal(buf_cstr(&name), buf_cstr(&base));
	assert_int_equal(list_dir(f.maildir, "tmp", NULL), 0);
	assert_int_equal(list_dir(f.maildir, "cur", NULL), 0);

	/* null sender, second recipient: a second file */
	xfree(f.env->sender);
	f.env->sender = xstrdup("");
	assert_int_equal(maildir_deliver(f.maildir, f.env, 1, f.cfd, "mx.example.net", false, &err),
	    0);
	assert_int_equal(list_dir(f.maildir, "new", NULL), 2);
	/* bad index */
	assert_int_equal(maildir_deliver(f.maildir, f.env, 2, f.cfd, "mx", false, &err), -1);
	assert_memory_equal(buf_cstr(&err), "4.3.0", 5);
	buf_free(&name);
	buf_free(&base);
	buf_free(&err);
	fx_free(&f);
}

static void
test_names(void **state)
{
	(void)state;
	envelope_t *e = envelope_new();
	strcpy(e->qid, "1K1ABCDEFGH12345");
	e->arrival_us = 1700000001000007LL;
	envelope_add_rcpt(e, "a@b", NULL, NULL, 0);
	struct {
		const char *host;
		const char *want;
	} cases[] = {
		{"mx.example.net", "1700000001.M7Q1K1ABCDEFGH12345R3.mx.example.net"},
		{"a/b:c", "1700000001.M7Q1K1ABCDEFGH12345R3.a\\057b\\072c"},
		{"sp ace", "1700000001.M7Q1K1ABCDEFGH12345R3.sp\\040ace"},
		{"", "1700000001.M7Q1K1ABCDEFGH12345R3.localhost"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		buf_t a = BUF_INIT, b = BUF_INIT;
		maildir_name(&a, e, 3, cases[i].host);
		maildir_name(&b, e, 3, cases[i].host);
		assert_string_equal(buf_cstr(&a), cases[i].want);
		assert_string_equal(buf_cstr(&a), buf_cstr(&b)); /* deterministic */
		buf_free(&a);
		buf_free(&b);
	}
	envelope_free(e);
}

/* CRLF pairs split across the 64 KiB read chunks, a CR at the very end */
static void
test_conversion_chunks(void **state)
{
	(void)state;
	size_t n = 3 * 65536 + 10;
	char *msg = xmalloc(n);
	buf_t want = BUF_INIT;
	buf_puts(&want, "Return-Path: <from@example.org>\nDelivered-To: alice@example.com\n");
	for (size_t i = 0; i < n; i++)
		msg[i] = (char)('a' + i % 23);
	/* CRLF straddling each chunk boundary, plus some inside */
	size_t crlf_at[] = {65535, 2 * 65536 - 1, 3 * 65536 - 1, 100, 70000};
	for (size_t k = 0; k < 5; k++) {
		msg[crlf_at[k]] = '\r';
		msg[crlf_at[k] + 1] = '\n';
	}
	msg[5000] = '\r'; /* lone CR kept */
	msg[n - 1] = '\r'; /* lone CR at the very end kept */
	for (size_t i = 0; i < n; i++) {
		if (msg[i] == '\r' && i + 1 < n && msg[i + 1] == '\n')
			continue;
		buf_putc(&want, msg[i]);
	}
	fx_t f;
	fx_init(&f, msg, n);
	buf_t err = BUF_INIT;
	assert_int_equal(maildir_deliver(f.maildir, f.env, 0, f.cfd, "h", false, &err), 0);
	size_t len;
	char *got = read_new(f.maildir, &len);
	assert_int_equal(len, want.len);
	assert_memory_equal(got, want.data, len);
	xfree(got);
	xfree(msg);
	buf_free(&want);
	buf_free(&err);
	fx_free(&f);
}

static void
test_no_duplicates(void **state)
{
	(void)state;
	const char *msg = "Subject: dup\r\n\r\nx\r\n";
	fx_t f;
	fx_init(&f, msg, strlen(msg));
	buf_t err = BUF_INIT, name = BUF_INIT;
	/* same recipient twice: link finds the name, still one copy */
	for (int i = 0; i < 2; i++)
		assert_int_equal(maildir_deliver(f.maildir, f.env, 0, f.cfd, "h", i == 1, &err), 0);
	assert_int_equal(list_dir(f.maildir, "new", &name), 1);
	/* a crash left a tmp/ hard link to the new/ copy: not truncated */
	buf_t base = BUF_INIT;
	maildir_name(&base, f.env, 0, "h");
	char *newp = xasprintf("%s/new/%s", f.maildir, buf_cstr(&name));
	char *tmpp = xasprintf("%s/tmp/%s", f.maildir, buf_cstr(&base));
	assert_int_equal(link(newp, tmpp), 0);
	assert_int_equal(maildir_deliver(f.maildir, f.env, 0, f.cfd, "h", false, &err), 0);
	size_t len;
	char *got = read_new(f.maildir, &len);
	assert_true(len > 40);
	xfree(got);
	assert_int_equal(list_dir(f.maildir, "tmp", NULL), 0);

	/* the user read it: new/ -> cur/ with ":2,S"; check_dup finds it */
	char *curp = xasprintf("%s/cur/%s:2,S", f.maildir, buf_cstr(&name));
	assert_int_equal(rename(newp, curp), 0);
	assert_int_equal(maildir_deliver(f.maildir, f.env, 0, f.cfd, "h", true, &err), 0);
	assert_int_equal(list_dir(f.maildir, "new", NULL), 0);
	assert_int_equal(list_dir(f.maildir, "cur", NULL), 1);
	assert_int_equal(list_dir(f.maildir, "tmp", NULL), 0);
	/* a name that merely starts with the base name is another message */
	char *other = xasprintf("%s/cur/%sX:2,S", f.maildir, buf_cstr(&base));
	assert_int_equal(rename(curp, other), 0);
	assert_int_equal(maildir_deliver(f.maildir, f.env, 0, f.cfd, "h", true, &err), 0);
	assert_int_equal(list_dir(f.maildir, "new", NULL), 1);
	xfree(other);
	xfree(curp);
	xfree(newp);
	xfree(tmpp);
	buf_free(&base);
	buf_free(&name);
	buf_free(&err);
	fx_free(&f);
}

static void
test_errors(void **state)
{
	(void)state;
	const char *msg = "x\r\n";
	fx_t f;
	fx_init(&f, msg, strlen(msg));
	buf_t err = BUF_INIT;
	/* a path through a regular file cannot be a Maildir (works as root too) */
	char *bad = xasprintf("%s/content/Maildir", f.dir);
	assert_int_equal(maildir_deliver(bad, f.env, 0, f.cfd, "h", false, &err), -1);
	assert_memory_equal(buf_cstr(&err), "4.3.0 maildir ", 14);
	assert_non_null(strstr(buf_cstr(&err), bad));
	/* content shorter than the envelope says */
	f.env->body_len = 1000;
	assert_int_equal(maildir_deliver(f.maildir, f.env, 0, f.cfd, "h", false, &err), -1);
	assert_memory_equal(buf_cstr(&err), "4.3.0", 5);
	assert_int_equal(list_dir(f.maildir, "new", NULL), 0);
	assert_int_equal(list_dir(f.maildir, "tmp", NULL), 0);
	f.env->body_len = 3;
	/* a header-breaking address is refused */
	xfree(f.env->sender);
	f.env->sender = xstrdup("a\nX-Evil: 1");
	assert_int_equal(maildir_deliver(f.maildir, f.env, 0, f.cfd, "h", false, &err), -1);
	assert_memory_equal(buf_cstr(&err), "4.3.0", 5);
	/* unwritable new/ (only meaningful when not root) */
	if (geteuid() != 0) {
		xfree(f.env->sender);
		f.env->sender = xstrdup("");
		char *nd = xasprintf("%s/tmp", f.maildir);
		chmod(nd, 0500);
		assert_int_equal(maildir_deliver(f.maildir, f.env, 0, f.cfd, "h", false, &err), -1);
		assert_memory_equal(buf_cstr(&err), "4.3.0", 5);
		chmod(nd, 0700);
		xfree(nd);
	}
	xfree(bad);
	buf_free(&err);
	fx_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deliver_basic),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_conversion_chunks),
		cmocka_unit_test(test_no_duplicates),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
