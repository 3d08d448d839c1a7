/*
 * test_queue.c - unit tests for the durable queue (src/queue/queue.c) and
 * envelopes (src/common/envelope.c).
 *
 * Covers: encode/decode round trips; every truncation point of a valid
 * file (refused, or the same envelope without the torn status batch);
 * every single-byte corruption (refused, or an earlier state, never an
 * invented one); status batches applied in order; real commits through a
 * uv loop (small and spilled), queue_scan order, corrupt files moved away,
 * torn tails cut, incoming/ cleaned at open; 200 commits in flight.
 * Each test works in its own temporary spool directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/envelope.h"
#include "common/qid.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

/* ---- helpers ---- */

static envelope_t *
make_env(void)
{
	envelope_t *e = envelope_new();
	qid_new(e->qid);
	e->arrival_us = 1700000000123456LL;
	e->sender = xstrdup("sender@example.org");
	e->envid = xstrdup("ENV-1 id");
	e->ret = RET_HDRS;
	e->body = BODY_8BITMIME;
	e->smtputf8 = true;
	e->client_addr = xstrdup("192.0.2.1");
	e->client_helo = xstrdup("client.example.org");
	e->auth_user = xstrdup("alice");
	e->flags = ENV_DELAY_WARNED;
	envelope_add_rcpt(e, "a@example.com", NULL, NULL, 0);
	envelope_add_rcpt(e, "b@example.com", "list@example.com", "rfc822;list@example.com",
	    NOTIFY_FAILURE | NOTIFY_DELAY);
	env_rcpt_t *r = envelope_add_rcpt(e, "j\xc3\xbcrgen@example.de", NULL,
	    "utf-8;j\xc3\xbcrgen@example.de", NOTIFY_NEVER);
	r->status = RCPT_FAILED;
	r->attempts = 3;
	r->next_try = 1700000600;
	r->last_try = 1700000500;
	r->reply = xstrdup("550 5.1.1 no such user");
	r->relay = xstrdup("mx.example.de[198.51.100.7]:25");
	return e;
}

static envelope_t *
make_min_env(void)
{
	envelope_t *e = envelope_new();
	qid_new(e->qid);
	e->sender = xstrdup("");
	envelope_add_rcpt(e, "postmaster@localhost", NULL, NULL, 0);
	return e;
}

static void
assert_str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
assert_env_eq(const envelope_t *a, const envelope_t *b)
{
	assert_string_equal(a->qid, b->qid);
	assert_int_equal(a->arrival_us, b->arrival_us);
	assert_str_eq(a->sender ? a->sender : "", b->sender ? b->sender : "");
	assert_str_eq(a->envid, b->envid);
	assert_int_equal(a->ret, b->ret);
	assert_int_equal(a->body, b->body);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_str_eq(a->client_addr, b->client_addr);
	assert_str_eq(a->client_helo, b->client_helo);
	assert_str_eq(a->auth_user, b->auth_user);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->nrcpt, b->nrcpt);
	for (size_t i = 0; i < a->nrcpt; i++) {
		const env_rcpt_t *x = &a->rcpt[i], *y = &b->rcpt[i];
		assert_str_eq(x->addr, y->addr);
		assert_str_eq(x->orig, y->orig);
		assert_str_eq(x->orcpt, y->orcpt);
		assert_int_equal(x->notify, y->notify);
		assert_int_equal(x->status, y->status);
		assert_int_equal(x->attempts, y->attempts);
		assert_int_equal(x->next_try, y->next_try);
		assert_int_equal(x->last_try, y->last_try);
		assert_str_eq(x->reply, y->reply);
		assert_str_eq(x->relay, y->relay);
	}
}

/* same as assert_env_eq, as a predicate */
static bool
str_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static bool
env_same(const envelope_t *a, const envelope_t *b)
{
	if (strcmp(a->qid, b->qid) || a->arrival_us != b->arrival_us ||
	    !str_same(a->sender, b->sender) || !str_same(a->envid, b->envid) || a->ret != b->ret ||
	    a->body != b->body || a->smtputf8 != b->smtputf8 ||
	    !str_same(a->client_addr, b->client_addr) || !str_same(a->client_helo, b->client_helo) ||
	    !str_same(a->auth_user, b->auth_user) || a->flags != b->flags || a->nrcpt != b->nrcpt ||
	    a->body_off != b->body_off || a->body_len != b->body_len)
		return false;
	for (size_t i = 0; i < a->nrcpt; i++) {
		const env_rcpt_t *x = &a->rcpt[i], *y = &b->rcpt[i];
		if (!str_same(x->addr, y->addr) || !str_same(x->orig, y->orig) ||
		    !str_same(x->orcpt, y->orcpt) || x->notify != y->notify || x->status != y->status ||
		    x->attempts != y->attempts || x->next_try != y->next_try ||
		    x->last_try != y->last_try || !str_same(x->reply, y->reply) ||
		    !str_same(x->relay, y->relay))
			return false;
	}
	return true;
}

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static char *
tmp_spool(void)
{
	char *d = xstrdup("/tmp/tern-test-queue-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void
rm_rf(char *d)
{
	nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	xfree(d);
}

static size_t
count_dir(const char *spool, const char *sub)
{
	char *p = xasprintf("%s/%s", spool, sub);
	DIR *d = opendir(p);
	xfree(p);
	if (d == NULL)
		return 0;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, p, n), 0);
	close(fd);
}

/* Put encoded bytes into spool/queue/<qid> directly (no commit). */
static void
put_queue_file(const char *spool, const envelope_t *e, const char *content, size_t n)
{
	buf_t b = BUF_INIT, path = BUF_INIT;
	queue_encode(e, content, n, &b);
	char *qd = xasprintf("%s/queue", spool);
	assert_int_equal(mkdir_p(qd, 0700), 0);
	xfree(qd);
	queue_path(spool, e->qid, &path);
	write_file(buf_cstr(&path), b.data, b.len);
	buf_free(&b);
	buf_free(&path);
}

static void
read_queue_file(const char *spool, const char *qid, char **p, size_t *n)
{
	buf_t path = BUF_INIT;
	queue_path(spool, qid, &path);
	assert_int_equal(read_file(buf_cstr(&path), p, n, 1 << 26), 0);
	buf_free(&path);
}

/* ---- envelope ---- */

static void
test_envelope_dup(void **state)
{
	(void)state;
	envelope_t *e = make_env();
	envelope_t *d = envelope_dup(e);
	assert_env_eq(e, d);
	assert_ptr_not_equal(e->rcpt, d->rcpt);
	assert_ptr_not_equal(e->rcpt[1].orig, d->rcpt[1].orig);
	assert_int_equal(envelope_pending(e), 2);
	envelope_add_rcpt(d, "c@example.com", NULL, NULL, 0);
	assert_int_equal(d->nrcpt, 4);
	assert_int_equal(envelope_pending(d), 3);
	envelope_free(e);
	envelope_free(d);
	envelope_free(NULL);
}

/* ---- encode / decode ---- */

static void
test_roundtrip(void **state)
{
	(void)state;
	envelope_t *envs[2] = {make_env(), make_min_env()};
	const char *content = "Subject: hi\r\n\r\nbody \0 with NUL\r\n";
	size_t clen = 33;
	for (int k = 0; k < 2; k++) {
		buf_t b = BUF_INIT, err = BUF_INIT;
		queue_encode(envs[k], content, clen, &b);
		envelope_t *d = NULL;
		assert_int_equal(queue_decode(b.data, b.len, &d, &err), 0);
		assert_non_null(d);
		assert_env_eq(envs[k], d);
		assert_int_equal(d->body_len, clen);
		assert_true(d->body_off + clen < b.len);
		assert_memory_equal(b.data + d->body_off, content, clen);
		assert_memory_equal(b.data, "tern-queue 1\n", 13);
		envelope_free(d);
		buf_free(&b);
		buf_free(&err);
		envelope_free(envs[k]);
	}
}

/* Build a file with two status batches; return the bytes and the three
 * envelopes it represents after 0, 1 and 2 batches, and where each ends. */
typedef struct staged {
	char *spool;
	char *bytes;
	size_t len[3];
	envelope_t *st[3];
	envelope_t *st02; /* batch 2 applied without batch 1 */
} staged_t;

static void
staged_build(staged_t *s)
{
	s->spool = tmp_spool();
	envelope_t *e = make_env();
	const char *content = "From: a\r\n\r\nline\r\n";
	put_queue_file(s->spool, e, content, strlen(content));
	char *p;
	size_t n;
	buf_t err = BUF_INIT;
	read_queue_file(s->spool, e->qid, &p, &n);
	assert_int_equal(queue_decode(p, n, &s->st[0], &err), 0);
	s->len[0] = n;
	xfree(p);

	/* batch 1: recipient 0 deferred, recipient 1 sent */
	e->rcpt[0].attempts = 1;
	e->rcpt[0].last_try = 1700000100;
	e->rcpt[0].next_try = 1700000400;
	e->rcpt[0].reply = xstrdup("451 4.3.0 try later");
	e->rcpt[0].relay = xstrdup("mx[192.0.2.9]:25");
	e->rcpt[1].status = RCPT_SENT;
	e->rcpt[1].attempts = 1;
	e->rcpt[1].reply = xstrdup("250 2.0.0 ok");
	e->rcpt[1].relay = xstrdup("local");
	size_t idx1[] = {0, 1};
	assert_int_equal(queue_append_status(s->spool, e, idx1, 2, true), 0);
	read_queue_file(s->spool, e->qid, &p, &n);
	assert_int_equal(queue_decode(p, n, &s->st[1], &err), 0);
	s->len[1] = n;
	xfree(p);

	/* batch 2: recipient 0 sent, recipient 2 reported, flags change */
	e->rcpt[0].status = RCPT_SENT;
	e->rcpt[0].attempts = 2;
	xfree(e->rcpt[0].reply);
	e->rcpt[0].reply = xstrdup("250 2.0.0 queued as X");
	e->rcpt[2].status = RCPT_REPORTED;
	e->flags = ENV_DELAY_WARNED | ENV_IS_BOUNCE;
	size_t idx2[] = {0, 2};
	assert_int_equal(queue_append_status(s->spool, e, idx2, 2, false), 0);
	read_queue_file(s->spool, e->qid, &s->bytes, &n);
	assert_int_equal(queue_decode(s->bytes, n, &s->st[2], &err), 0);
	s->len[2] = n;

	/* the last state is exactly e (with the queue's body position) */
	e->body_off = s->st[2]->body_off;
	e->body_len = s->st[2]->body_len;
	assert_true(env_same(e, s->st[2]));
	assert_int_equal(s->st[1]->rcpt[1].status, RCPT_SENT);
	assert_int_equal(s->st[1]->rcpt[0].status, RCPT_PENDING);
	assert_int_equal(s->st[1]->flags, ENV_DELAY_WARNED);
	assert_int_equal(s->st[2]->rcpt[0].status, RCPT_SENT);
	assert_string_equal(s->st[2]->rcpt[0].reply, "250 2.0.0 queued as X");
	assert_int_equal(s->st[2]->rcpt[2].status, RCPT_REPORTED);
	assert_false(env_same(s->st[0], s->st[1]));
	assert_false(env_same(s->st[1], s->st[2]));
	/* the file with batch 1 cut out */
	buf_t cut = BUF_INIT;
	buf_append(&cut, s->bytes, s->len[0]);
	buf_append(&cut, s->bytes + s->len[1], s->len[2] - s->len[1]);
	assert_int_equal(queue_decode(cut.data, cut.len, &s->st02, &err), 0);
	buf_free(&cut);
	envelope_free(e);
	buf_free(&err);
}

static void
staged_free(staged_t *s)
{
	for (int i = 0; i < 3; i++)
		envelope_free(s->st[i]);
	envelope_free(s->st02);
	xfree(s->bytes);
	rm_rf(s->spool);
}

/* A queue file as tern wrote it before REQUIRETLS (RFC 8689) existed
 * (made by main at a44ddee with queue_store: flags DELAY_WARNED | HELD, one
 * recipient, content "Subject: old\r\n\r\nbody\r\n"). It must still load,
 * with neither of the new flags; and a file with them reads back. */
static const unsigned char pre_requiretls_file[] = {
  0x74, 0x65, 0x72, 0x6e, 0x2d, 0x71, 0x75, 0x65, 0x75, 0x65, 0x20, 0x31,
  0x0a, 0x51, 0x00, 0x00, 0x00, 0x10, 0x31, 0x4b, 0x31, 0x41, 0x56, 0x45,
  0x48, 0x54, 0x45, 0x34, 0x47, 0x33, 0x58, 0x56, 0x39, 0x41, 0x1d, 0xe7,
  0x45, 0xbe, 0x49, 0x00, 0x00, 0x00, 0x13, 0x00, 0x06, 0x0a, 0x24, 0x18,
  0x20, 0x22, 0x40, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00,
  0x00, 0x01, 0xfe, 0xf6, 0x73, 0x50, 0x46, 0x00, 0x00, 0x00, 0x12, 0x73,
  0x65, 0x6e, 0x64, 0x65, 0x72, 0x40, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c,
  0x65, 0x2e, 0x6f, 0x72, 0x67, 0xa1, 0x19, 0xc7, 0xb9, 0x43, 0x00, 0x00,
  0x00, 0x09, 0x31, 0x39, 0x32, 0x2e, 0x30, 0x2e, 0x32, 0x2e, 0x31, 0x2d,
  0x1e, 0x94, 0xbe, 0x48, 0x00, 0x00, 0x00, 0x12, 0x63, 0x6c, 0x69, 0x65,
  0x6e, 0x74, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f,
  0x72, 0x67, 0x69, 0xc3, 0x56, 0x9b, 0x52, 0x00, 0x00, 0x00, 0x3a, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0d, 0x61, 0x40, 0x65, 0x78, 0x61,
  0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0xff, 0xff, 0xff, 0xff,
  0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0b, 0xb3, 0x5c,
  0xae, 0x42, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x17, 0xea, 0xae, 0x45, 0xbd, 0x53, 0x75, 0x62, 0x6a, 0x65, 0x63,
  0x74, 0x3a, 0x20, 0x6f, 0x6c, 0x64, 0x0d, 0x0a, 0x0d, 0x0a, 0x62, 0x6f,
  0x64, 0x79, 0x0d, 0x0a, 0x00, 0x58, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0xde, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x17, 0x93, 0xb4, 0x15, 0xf1
};

static void
test_old_file_and_requiretls_flags(void **state)
{
	(void)state;
	envelope_t *e = NULL;
	buf_t err = BUF_INIT;
	assert_int_equal(queue_decode((const char *)pre_requiretls_file, sizeof pre_requiretls_file,
	    &e, &err), 0);
	assert_string_equal(e->qid, "1K1AVEHTE4G3XV9A");
	assert_int_equal(e->flags, ENV_DELAY_WARNED | ENV_HELD);
	assert_int_equal(e->nrcpt, 1);
	assert_string_equal(e->rcpt[0].addr, "a@example.com");
	assert_true(e->body_len == 23);
	/* the new flags are written and read back */
	char *spool = xstrdup("/tmp/tern-test-queue-rt-XXXXXX");
	assert_non_null(mkdtemp(spool));
	for (int k = 0; k < 2; k++) {
		char *sub = xasprintf("%s/%s", spool, k ? "incoming" : "queue");
		assert_int_equal(mkdir(sub, 0700), 0);
		xfree(sub);
	}
	e->flags = ENV_REQUIRETLS;
	envelope_t *s1 = queue_store(spool, e, "Subject: rt\r\n\r\nx\r\n", 19);
	assert_non_null(s1);
	e->flags = ENV_TLS_OPTIONAL;
	qid_new(e->qid);
	envelope_t *s2 = queue_store(spool, e, "Subject: no\r\n\r\nx\r\n", 19);
	assert_non_null(s2);
	envelope_t *l = NULL;
	buf_t path = BUF_INIT;
	queue_path(spool, s1->qid, &path);
	assert_int_equal(queue_load(buf_cstr(&path), &l, &err), 0);
	assert_int_equal(l->flags, ENV_REQUIRETLS);
	envelope_free(l);
	buf_reset(&path);
	queue_path(spool, s2->qid, &path);
	assert_int_equal(queue_load(buf_cstr(&path), &l, &err), 0);
	assert_int_equal(l->flags, ENV_TLS_OPTIONAL);
	envelope_free(l);
	envelope_free(s1);
	envelope_free(s2);
	envelope_free(e);
	buf_free(&path);
	buf_free(&err);
	rm_rf(spool);
}

static void
test_status_in_order(void **state)
{
	(void)state;
	staged_t s;
	staged_build(&s); /* asserts the states after each batch */
	/* queue_load gives the same as queue_decode */
	envelope_t *l = NULL;
	buf_t path = BUF_INIT, err = BUF_INIT;
	queue_path(s.spool, s.st[2]->qid, &path);
	assert_int_equal(queue_load(buf_cstr(&path), &l, &err), 0);
	assert_true(env_same(l, s.st[2]));
	envelope_free(l);
	/* bad index or state: refused, nothing written */
	size_t bad[] = {7};
	assert_int_equal(queue_append_status(s.spool, s.st[2], bad, 1, false), -1);
	s.st[2]->rcpt[0].status = 9;
	size_t ok[] = {0};
	assert_int_equal(queue_append_status(s.spool, s.st[2], ok, 1, false), -1);
	s.st[2]->rcpt[0].status = RCPT_SENT;
	/* flags-only batch (no recipient) */
	s.st[2]->flags = 0;
	assert_int_equal(queue_append_status(s.spool, s.st[2], NULL, 0, false), 0);
	assert_int_equal(queue_load(buf_cstr(&path), &l, &err), 0);
	assert_int_equal(l->flags, 0);
	assert_true(env_same(l, s.st[2]));
	envelope_free(l);
	/* a reply with control characters is stored sanitized, not refused */
	xfree(s.st[2]->rcpt[1].reply);
	s.st[2]->rcpt[1].reply = xstrdup("250 ok\r\nX-Evil: 1");
	size_t one[] = {1};
	assert_int_equal(queue_append_status(s.spool, s.st[2], one, 1, false), 0);
	assert_int_equal(queue_load(buf_cstr(&path), &l, &err), 0);
	assert_string_equal(l->rcpt[1].reply, "250 ok??X-Evil: 1");
	envelope_free(l);
	buf_free(&path);
	buf_free(&err);
	staged_free(&s);
}

static void
test_truncation(void **state)
{
	(void)state;
	staged_t s;
	staged_build(&s);
	size_t refused = 0, ok = 0;
	for (size_t k = 0; k <= s.len[2]; k++) {
		envelope_t *d = NULL;
		buf_t err = BUF_INIT;
		int r = queue_decode(s.bytes, k, &d, &err);
		if (k < s.len[0]) {
			if (r == 0)
				fail_msg("truncated at %zu of %zu: accepted", k, s.len[0]);
			assert_null(d);
			assert_true(err.len > 0);
			refused++;
		} else {
			/* a torn status batch is ignored: the state before it */
			int want = k < s.len[1] ? 0 : k < s.len[2] ? 1 : 2;
			assert_int_equal(r, 0);
			assert_true(env_same(d, s.st[want]));
			ok++;
		}
		envelope_free(d);
		buf_free(&err);
	}
	assert_true(refused > 100 && ok > 50);
	staged_free(&s);
}

static void
test_corruption(void **state)
{
	(void)state;
	staged_t s;
	staged_build(&s);
	const envelope_t *e0 = s.st[0];
	size_t body_lo = e0->body_off, body_hi = e0->body_off + e0->body_len;
	static const unsigned char flips[] = {0x01, 0x80, 0xff};
	size_t refused = 0, earlier = 0;
	for (size_t i = 0; i < s.len[2]; i++) {
		if (i >= body_lo && i < body_hi)
			continue; /* content is not checksummed (docs/queue.md) */
		for (size_t f = 0; f < sizeof flips; f++) {
			s.bytes[i] ^= (char)flips[f];
			envelope_t *d = NULL;
			buf_t err = BUF_INIT;
			int r = queue_decode(s.bytes, s.len[2], &d, &err);
			s.bytes[i] ^= (char)flips[f];
			if (r != 0) {
				assert_null(d);
				refused++;
			} else if (i < s.len[0]) {
				fail_msg("corrupt byte %zu (of header/end %zu) accepted", i, s.len[0]);
			} else {
				/* in the status batches: the damaged batch is skipped
				 * as torn, which gives an older state (a duplicate
				 * delivery at most), never one that was not written */
				bool prev = env_same(d, s.st[0]) || env_same(d, s.st[1]) ||
				    env_same(d, s.st02);
				if (!prev)
					fail_msg("corrupt status byte %zu gave an unknown state", i);
				earlier++;
			}
			envelope_free(d);
			buf_free(&err);
		}
	}
	assert_true(refused > 3 * (s.len[0] - e0->body_len) - 1);
	(void)earlier;
	/* a crash wrote the page of batch 2 but not the one of batch 1:
	 * batch 1 reads as zeros, is skipped, batch 2 applies */
	memset(s.bytes + s.len[0], 0, s.len[1] - s.len[0]);
	envelope_t *d = NULL;
	buf_t err = BUF_INIT;
	assert_int_equal(queue_decode(s.bytes, s.len[2], &d, &err), 0);
	assert_true(env_same(d, s.st02));
	envelope_free(d);
	buf_free(&err);
	staged_free(&s);
}

static void
test_bad_files(void **state)
{
	(void)state;
	envelope_t *e = make_min_env();
	buf_t good = BUF_INIT;
	queue_encode(e, "x\r\n", 3, &good);
	struct {
		const char *what;
		const char *bytes;
		size_t n;
		const char *reason;
	} cases[] = {
		{"empty", "", 0, "truncated"},
		{"bad magic", "hello world\n", 12, "bad magic"},
		{"other version", "tern-queue 2\n", 13, "version"},
		{"magic only", "tern-queue 1\n", 13, "truncated"},
		{"garbage record", "tern-queue 1\nQ\0\0\0\x10" "0123456789ABCDEF\0\0\0\0", 38,
		    "checksum"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		envelope_t *d = NULL;
		buf_t err = BUF_INIT;
		assert_int_equal(queue_decode(cases[i].bytes, cases[i].n, &d, &err), -1);
		assert_null(d);
		if (strstr(buf_cstr(&err), cases[i].reason) == NULL)
			fail_msg("%s: reason '%s'", cases[i].what, buf_cstr(&err));
		buf_free(&err);
	}
	/* bytes after the end record that hold no intact status batch (junk,
	 * a cut batch, zeros from a crash-extended file): ignored as torn */
	static const struct {
		const char *b;
		size_t n;
	} tails[] = {
		{"junkjunkjunkjunk", 16},
		{"S\0\0\0\x40junk", 9},
		{"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 30},
	};
	buf_t b = BUF_INIT, err = BUF_INIT;
	envelope_t *d = NULL;
	for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
		buf_reset(&b);
		buf_append(&b, good.data, good.len);
		buf_append(&b, tails[i].b, tails[i].n);
		assert_int_equal(queue_decode(b.data, b.len, &d, &err), 0);
		envelope_free(d);
	}
	/* a record with a good checksum that is not a status batch: refused */
	buf_reset(&b);
	buf_append(&b, good.data, good.len);
	buf_append(&b, good.data + good.len - 25, 25); /* a second X record */
	assert_int_equal(queue_decode(b.data, b.len, &d, &err), -1);
	assert_non_null(strstr(buf_cstr(&err), "bad status record"));
	/* invalid envelopes are refused at encode time by queue_begin; the
	 * decoder refuses them too */
	env_rcpt_t *r = &e->rcpt[0];
	xfree(r->addr);
	r->addr = xstrdup("a\r\nb@example.com");
	buf_reset(&b);
	queue_encode(e, "", 0, &b);
	assert_int_equal(queue_decode(b.data, b.len, &d, &err), -1);
	buf_free(&b);
	buf_free(&err);
	buf_free(&good);
	envelope_free(e);
}

/* ---- the loop side ---- */

typedef struct cstate {
	int done;
	int failed;
	int last_err;
	envelope_t *env;
} cstate_t;

static void
commit_cb(void *arg, int err, envelope_t *env)
{
	cstate_t *c = arg;
	c->done++;
	if (err) {
		c->failed++;
		c->last_err = err;
		assert_null(env);
		return;
	}
	assert_non_null(env);
	if (c->env == NULL)
		c->env = env;
	else
		envelope_free(env);
}

static void
scan_collect(void *arg, envelope_t *env)
{
	buf_t *ids = arg;
	buf_puts(ids, env->qid);
	buf_putc(ids, ' ');
	envelope_free(env);
}

static void
commit_one(queue_t *q, uv_loop_t *loop, const envelope_t *e, const char *content, size_t n,
    size_t step, cstate_t *c)
{
	qmsg_t *m = queue_begin(q, e);
	for (size_t off = 0; off < n; off += step)
		assert_int_equal(queue_write(m, content + off, n - off < step ? n - off : step), 0);
	assert_int_equal(queue_size(m), n);
	queue_commit(m, commit_cb, c);
	uv_run(loop, UV_RUN_DEFAULT);
}

static void
check_content(const char *spool, const envelope_t *e, const char *content, size_t n)
{
	int fd = queue_open_content(spool, e);
	assert_true(fd >= 0);
	char *p = xmalloc(n + 1);
	assert_int_equal(pread_all(fd, p, n, (off_t)e->body_off), (ssize_t)n);
	assert_memory_equal(p, content, n);
	close(fd);
	xfree(p);
}

static void
test_commit_and_scan(void **state)
{
	(void)state;
	char *spool = tmp_spool();
	uv_loop_t loop;
	uv_loop_init(&loop);
	buf_t err = BUF_INIT;
	queue_t *q = queue_open(&loop, spool, &err);
	assert_non_null(q);
	assert_string_equal(queue_spool_dir(q), spool);

	/* small: stays in memory until the commit */
	envelope_t *e1 = make_env();
	e1->arrival_us = 0; /* stamped by the queue */
	const char *small = "Subject: small\r\n\r\nhello\r\n";
	cstate_t c1 = {0};
	commit_one(q, &loop, e1, small, strlen(small), 5, &c1);
	assert_int_equal(c1.done, 1);
	assert_int_equal(c1.failed, 0);
	assert_true(c1.env->arrival_us > 0);
	assert_int_equal(c1.env->body_len, strlen(small));
	check_content(spool, c1.env, small, strlen(small));

	/* large: spilled to incoming/ beyond 64 KiB */
	size_t big_n = 300 * 1024 + 7;
	char *big = xmalloc(big_n);
	for (size_t i = 0; i < big_n; i++)
		big[i] = (char)('a' + i % 26);
	envelope_t *e2 = make_min_env();
	qmsg_t *m = queue_begin(q, e2);
	assert_int_equal(queue_write(m, big, 70000), 0);
	assert_int_equal(count_dir(spool, "incoming"), 1);
	assert_int_equal(queue_write(m, big + 70000, big_n - 70000), 0);
	cstate_t c2 = {0};
	queue_commit(m, commit_cb, &c2);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(c2.failed, 0);
	assert_int_equal(c2.env->body_len, big_n);
	check_content(spool, c2.env, big, big_n);
	assert_int_equal(count_dir(spool, "incoming"), 0);
	assert_int_equal(count_dir(spool, "queue"), 2);

	/* queue_load of each equals the callback's envelope */
	envelope_t *cbenv[2] = {c1.env, c2.env};
	for (int i = 0; i < 2; i++) {
		buf_t path = BUF_INIT;
		envelope_t *l = NULL;
		queue_path(spool, cbenv[i]->qid, &path);
		assert_int_equal(queue_load(buf_cstr(&path), &l, &err), 0);
		assert_true(env_same(l, cbenv[i]));
		envelope_free(l);
		buf_free(&path);
	}

	/* scan: both, in arrival (queue ID) order */
	buf_t ids = BUF_INIT;
	assert_int_equal(queue_scan(spool, scan_collect, &ids), 2);
	buf_t want = BUF_INIT;
	const char *a = e1->qid, *b = e2->qid;
	if (strcmp(a, b) > 0) {
		const char *t = a;
		a = b;
		b = t;
	}
	buf_printf(&want, "%s %s ", a, b);
	assert_string_equal(buf_cstr(&ids), buf_cstr(&want));

	/* remove */
	assert_int_equal(queue_remove(spool, e1->qid), 0);
	assert_int_equal(queue_remove(spool, e1->qid), -1);
	assert_int_equal(queue_remove(spool, "../etc/passwd"), -1);
	assert_int_equal(count_dir(spool, "queue"), 1);

	/* an aborted spilled message leaves nothing */
	envelope_t *e3 = make_min_env();
	m = queue_begin(q, e3);
	assert_int_equal(queue_write(m, big, big_n), 0);
	assert_int_equal(count_dir(spool, "incoming"), 1);
	queue_abort(m);
	assert_int_equal(count_dir(spool, "incoming"), 0);

	/* an envelope that could not be read back: EINVAL, nothing left */
	envelope_t *e4 = make_min_env();
	xfree(e4->sender);
	e4->sender = xstrdup("bad\nsender@x");
	cstate_t c4 = {0};
	m = queue_begin(q, e4);
	assert_int_equal(queue_write(m, big, 10), -1);
	assert_int_equal(errno, EINVAL);
	queue_commit(m, commit_cb, &c4);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(c4.failed, 1);
	assert_int_equal(c4.last_err, EINVAL);
	assert_int_equal(count_dir(spool, "incoming"), 0);
	assert_int_equal(count_dir(spool, "queue"), 1);

	queue_close(q);
	assert_int_equal(uv_loop_close(&loop), 0);
	envelope_free(e1);
	envelope_free(e2);
	envelope_free(e3);
	envelope_free(e4);
	envelope_free(c1.env);
	envelope_free(c2.env);
	xfree(big);
	buf_free(&ids);
	buf_free(&want);
	buf_free(&err);
	rm_rf(spool);
}

static void
test_incoming_cleaned(void **state)
{
	(void)state;
	char *spool = tmp_spool();
	char *inc = xasprintf("%s/incoming", spool);
	assert_int_equal(mkdir_p(inc, 0700), 0);
	for (int i = 0; i < 3; i++) {
		char *p = xasprintf("%s/half%d", inc, i);
		write_file(p, "partial", 7);
		xfree(p);
	}
	assert_int_equal(count_dir(spool, "incoming"), 3);
	uv_loop_t loop;
	uv_loop_init(&loop);
	buf_t err = BUF_INIT;
	queue_t *q = queue_open(&loop, spool, &err);
	assert_non_null(q);
	assert_int_equal(count_dir(spool, "incoming"), 0);
	struct stat st;
	char *cor = xasprintf("%s/corrupt", spool);
	assert_int_equal(stat(cor, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	queue_close(q);
	uv_loop_close(&loop);
	buf_free(&err);
	xfree(cor);
	xfree(inc);
	rm_rf(spool);
}

static void
test_scan_corrupt_and_torn(void **state)
{
	(void)state;
	char *spool = tmp_spool();
	/* one good, one truncated, one garbage, one with a torn status tail */
	envelope_t *good = make_env(), *trunc = make_env(), *torn = make_env();
	put_queue_file(spool, good, "hello\r\n", 7);
	buf_t b = BUF_INIT, path = BUF_INIT;
	queue_encode(trunc, "hello\r\n", 7, &b);
	queue_path(spool, trunc->qid, &path);
	write_file(buf_cstr(&path), b.data, b.len - 3);
	char garbage_qid[QID_SIZE];
	qid_new(garbage_qid);
	buf_reset(&path);
	queue_path(spool, garbage_qid, &path);
	write_file(buf_cstr(&path), "not a queue file at all\n", 24);
	put_queue_file(spool, torn, "hello\r\n", 7);
	size_t idx[] = {0};
	torn->rcpt[0].status = RCPT_SENT;
	assert_int_equal(queue_append_status(spool, torn, idx, 1, false), 0);
	buf_reset(&path);
	queue_path(spool, torn->qid, &path);
	struct stat st;
	assert_int_equal(stat(buf_cstr(&path), &st), 0);
	assert_int_equal(truncate(buf_cstr(&path), st.st_size - 5), 0);
	/* a stray file with a name that is no queue ID: ignored, kept */
	char *stray = xasprintf("%s/queue/README", spool);
	write_file(stray, "x", 1);

	buf_t ids = BUF_INIT;
	assert_int_equal(queue_scan(spool, scan_collect, &ids), 2);
	assert_non_null(strstr(buf_cstr(&ids), good->qid));
	assert_non_null(strstr(buf_cstr(&ids), torn->qid));
	assert_int_equal(count_dir(spool, "corrupt"), 2);
	assert_int_equal(count_dir(spool, "queue"), 3);
	/* the torn tail was cut: appending again gives a clean file */
	assert_int_equal(queue_append_status(spool, torn, idx, 1, true), 0);
	envelope_t *l = NULL;
	buf_t err = BUF_INIT;
	assert_int_equal(queue_load(buf_cstr(&path), &l, &err), 0);
	assert_int_equal(l->rcpt[0].status, RCPT_SENT);
	envelope_free(l);

	envelope_free(good);
	envelope_free(trunc);
	envelope_free(torn);
	xfree(stray);
	buf_free(&b);
	buf_free(&path);
	buf_free(&ids);
	buf_free(&err);
	rm_rf(spool);
}

#define NCONC 200

static void
test_concurrent_commits(void **state)
{
	(void)state;
	char *spool = tmp_spool();
	uv_loop_t loop;
	uv_loop_init(&loop);
	buf_t err = BUF_INIT;
	queue_t *q = queue_open(&loop, spool, &err);
	assert_non_null(q);
	char content[4096];
	memset(content, 'x', sizeof content);
	cstate_t c = {0};
	envelope_t *e = make_env();
	for (int i = 0; i < NCONC; i++) {
		qid_new(e->qid);
		qmsg_t *m = queue_begin(q, e);
		assert_int_equal(queue_write(m, content, sizeof content), 0);
		queue_commit(m, commit_cb, &c);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(c.done, NCONC);
	assert_int_equal(c.failed, 0);
	assert_int_equal(count_dir(spool, "queue"), NCONC);
	assert_int_equal(count_dir(spool, "incoming"), 0);
	buf_t ids = BUF_INIT;
	assert_int_equal(queue_scan(spool, scan_collect, &ids), NCONC);
	queue_close(q);
	uv_loop_close(&loop);
	envelope_free(e);
	envelope_free(c.env);
	buf_free(&ids);
	buf_free(&err);
	rm_rf(spool);
}

int
main(void)
{
	/* as main() does: many commits in flight share the pool */
	setenv("UV_THREADPOOL_SIZE", "32", 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_envelope_dup),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_status_in_order),
		cmocka_unit_test(test_old_file_and_requiretls_flags),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_corruption),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_commit_and_scan),
		cmocka_unit_test(test_incoming_cleaned),
		cmocka_unit_test(test_scan_corrupt_and_torn),
		cmocka_unit_test(test_concurrent_commits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
