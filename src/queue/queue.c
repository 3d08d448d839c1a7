/*
 * queue.c - PERSIST: the durable mail queue, its spool and its commit (see
 * queue.h, docs/queue.md). The bytes of a queue file are made and checked
 * by the record codec (record.c); this file does the I/O around them.
 *
 * What it guarantees: a commit callback reports success only once the
 * message file is complete (END record written), fdatasync'd, renamed from
 * incoming/ into queue/ and queue/ itself fsync'd. A file that is
 * truncated, corrupt, or of another version is never loaded (it goes to
 * corrupt/ at the startup scan); a torn status append is ignored (it only
 * makes a recipient's state older, which can cause a duplicate delivery,
 * never a loss), and cut off at the scan.
 *
 * What it must not do: block the event loop on a sync (the syncs run on
 * libuv's thread pool); read a file's content to load its envelope (only
 * the header and the tail are read).
 */
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/qid.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "queue/record.h"

#define QUEUE_MEM_MAX (64u * 1024u) /* content kept in memory before spilling */

/* Load from a file without reading the content: the header is read in
 * growing chunks, then the tail from body_off+body_len to the end. */
static int
load_fd(int fd, envelope_t **out, qrec_tail_t *ti, uint64_t *file_len, buf_t *err)
{
	struct stat st;
	*out = NULL;
	if (fstat(fd, &st) < 0) {
		buf_printf(err, "fstat: %s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		buf_puts(err, "not a regular file");
		return -1;
	}
	uint64_t size = (uint64_t)st.st_size;
	*file_len = size;
	size_t want = 16384;
	char *hb = NULL;
	envelope_t *e = NULL;
	uint64_t boff = 0, blen = 0;
	for (;;) {
		size_t n = want < size ? want : (size_t)size;
		hb = xrealloc(hb, n + 1);
		ssize_t got = pread_all(fd, hb, n, 0);
		if (got < 0) {
			buf_printf(err, "read: %s", strerror(errno));
			xfree(hb);
			return -1;
		}
		int h = qrec_decode_header((unsigned char *)hb, (size_t)got, &e, &boff, &blen, err);
		if (h == QREC_HDR_BAD) {
			xfree(hb);
			return -1;
		}
		if (h == QREC_HDR_OK)
			break;
		if ((uint64_t)got >= size || (size_t)got < n || want >= QF_MAX_HEADER) {
			buf_puts(err, (uint64_t)got >= size ? "truncated header" : "header too large");
			xfree(hb);
			return -1;
		}
		want *= 4;
	}
	xfree(hb);
	if (blen > size - boff) {
		buf_puts(err, "truncated content");
		envelope_free(e);
		return -1;
	}
	uint64_t toff = boff + blen;
	if (size - toff > QF_MAX_TAIL) {
		buf_puts(err, "status records too large");
		envelope_free(e);
		return -1;
	}
	size_t tn = (size_t)(size - toff);
	char *tb = xmalloc(tn + 1);
	ssize_t got = pread_all(fd, tb, tn, (off_t)toff);
	if (got < 0) {
		buf_printf(err, "read: %s", strerror(errno));
		xfree(tb);
		envelope_free(e);
		return -1;
	}
	int r = qrec_decode_tail(e, (unsigned char *)tb, (size_t)got, toff, ti, err);
	xfree(tb);
	if (r < 0) {
		envelope_free(e);
		return -1;
	}
	*out = e;
	return 0;
}

/* The queue ID a path names, when its last component is one. */
static const char *
path_qid(const char *path)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	return qid_valid(b, strlen(b)) ? b : NULL;
}

static int
load_path(const char *path, envelope_t **out, qrec_tail_t *ti, uint64_t *file_len,
    buf_t *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		buf_printf(err, "open: %s", strerror(errno));
		return -1;
	}
	int r = load_fd(fd, out, ti, file_len, err);
	close(fd);
	if (r == 0) {
		const char *q = path_qid(path);
		if (q && strcmp(q, (*out)->qid) != 0) {
			buf_puts(err, "queue ID does not match the file name");
			envelope_free(*out);
			*out = NULL;
			return -1;
		}
	}
	return r;
}

int
queue_load(const char *path, envelope_t **out, buf_t *err)
{
	qrec_tail_t ti;
	uint64_t flen;
	return load_path(path, out, &ti, &flen, err);
}

/* ------------------------------------------------------------------ */
/* Blocking helpers                                                    */

void
queue_path(const char *spool_dir, const char *qid, buf_t *out)
{
	buf_printf(out, "%s/queue/%s", spool_dir, qid);
}

static char *
qpath(const char *spool_dir, const char *sub, const char *qid)
{
	return xasprintf("%s/%s/%s", spool_dir, sub, qid);
}

static pthread_mutex_t append_mu = PTHREAD_MUTEX_INITIALIZER;

int
queue_append_status(const char *spool_dir, const envelope_t *env, const size_t *idx, size_t n,
    bool sync)
{
	if (!qid_valid(env->qid, strnlen(env->qid, QID_SIZE))) {
		errno = EINVAL;
		return -1;
	}
	buf_t b = BUF_INIT;
	if (qrec_encode_status(&b, env, idx, n) < 0) {
		buf_free(&b);
		errno = EINVAL;
		return -1;
	}
	char *path = qpath(spool_dir, "queue", env->qid);
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	xfree(path);
	if (fd < 0) {
		buf_free(&b);
		return -1;
	}
	/* Appends are serialized in the process (a remote and a local job may
	 * finish for the same message at once), so undoing a partial write
	 * below can never cut another append off. The sync runs unlocked. */
	pthread_mutex_lock(&append_mu);
	struct stat st;
	int r = fstat(fd, &st);
	bool stat_ok = r == 0;
	if (r == 0)
		r = write_all(fd, b.data, b.len);
	int e = errno;
	if (r < 0 && stat_ok) {
		/* A partial append (ENOSPC, EIO...) would leave a torn record in
		 * the middle of the file once more batches follow: cut it off. */
		if (ftruncate(fd, st.st_size) < 0)
			log_warn("qid=%s status append failed and could not be undone: %s", env->qid,
			    strerror(errno));
	}
	pthread_mutex_unlock(&append_mu);
	if (r == 0 && sync && fdatasync(fd) < 0) {
		r = -1;
		e = errno;
	}
	close(fd);
	buf_free(&b);
	errno = e;
	return r;
}

int
queue_remove(const char *spool_dir, const char *qid)
{
	if (!qid_valid(qid, strnlen(qid, QID_SIZE))) {
		errno = EINVAL;
		return -1;
	}
	char *path = qpath(spool_dir, "queue", qid);
	int r = unlink(path);
	int e = errno;
	xfree(path);
	errno = e;
	return r;
}

int
queue_open_content(const char *spool_dir, const envelope_t *env)
{
	if (!qid_valid(env->qid, strnlen(env->qid, QID_SIZE))) {
		errno = EINVAL;
		return -1;
	}
	char *path = qpath(spool_dir, "queue", env->qid);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int e = errno;
	xfree(path);
	if (fd < 0) {
		errno = e;
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < env->body_off + env->body_len) {
		close(fd);
		errno = EIO; /* shorter than its envelope says: never deliver a part */
		return -1;
	}
	return fd;
}

static int
qid_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Cut a torn status append off, so later appends do not follow garbage. */
static void
scan_repair(const char *path, const char *qid, uint64_t good, uint64_t flen)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || ftruncate(fd, (off_t)good) < 0 || fdatasync(fd) < 0)
		log_warn("qid=%s could not cut a torn status record: %s", qid, strerror(errno));
	else
		log_info("qid=%s ignored a torn status record (%llu bytes)", qid,
		    (unsigned long long)(flen - good));
	if (fd >= 0)
		close(fd);
}

size_t
queue_scan(const char *spool_dir, void (*cb)(void *arg, envelope_t *env), void *arg)
{
	char *qdir = xasprintf("%s/queue", spool_dir);
	DIR *d = opendir(qdir);
	if (d == NULL) {
		log_err("queue: cannot read %s: %s", qdir, strerror(errno));
		xfree(qdir);
		return 0;
	}
	char **names = NULL;
	size_t nn = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (!qid_valid(de->d_name, strlen(de->d_name))) {
			log_warn("queue: ignoring %s/%s: not a queue ID", qdir, de->d_name);
			continue;
		}
		if (nn == cap) {
			cap = cap ? cap * 2 : 64;
			names = xrealloc(names, cap * sizeof *names);
		}
		names[nn++] = xstrdup(de->d_name);
	}
	closedir(d);
	/* IDs start with the arrival time in a base32 alphabet in ASCII order */
	if (nn > 1)
		qsort(names, nn, sizeof *names, qid_cmp);
	size_t loaded = 0;
	bool corrupt_made = false;
	for (size_t i = 0; i < nn; i++) {
		char *path = qpath(spool_dir, "queue", names[i]);
		envelope_t *e = NULL;
		buf_t err = BUF_INIT;
		qrec_tail_t ti = {0, 0};
		uint64_t flen = 0;
		if (load_path(path, &e, &ti, &flen, &err) == 0) {
			if (ti.skipped)
				log_warn("qid=%s skipped %llu bytes of damaged status records", names[i],
				    (unsigned long long)ti.skipped);
			if (ti.good_len < flen)
				scan_repair(path, names[i], ti.good_len, flen);
			cb(arg, e);
			loaded++;
		} else {
			if (!corrupt_made) {
				char *cdir = xasprintf("%s/corrupt", spool_dir);
				(void)mkdir_p(cdir, 0700);
				xfree(cdir);
				corrupt_made = true;
			}
			char *to = qpath(spool_dir, "corrupt", names[i]);
			if (rename(path, to) == 0)
				log_warn("qid=%s queue file refused (%s): moved to %s", names[i],
				    buf_cstr(&err), to);
			else
				log_err("qid=%s queue file refused (%s), and not moved to %s: %s",
				    names[i], buf_cstr(&err), to, strerror(errno));
			xfree(to);
		}
		buf_free(&err);
		xfree(path);
		xfree(names[i]);
	}
	xfree(names);
	xfree(qdir);
	return loaded;
}

/* ------------------------------------------------------------------ */
/* The queue object and group commit                                   */

struct queue {
	uv_loop_t *loop;
	char *spool;
	char *incoming;
	int qdir_fd; /* queue/, fsync'd by group commit */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t gen_started; /* directory fsyncs started */
	uint64_t gen_done;    /* the last one finished */
	uint64_t fail_gen;    /* the last one that failed (0: none) */
	int fail_err;
	bool syncing;
	unsigned inflight; /* commits running (loop thread only) */
};

struct qmsg {
	queue_t *q;
	envelope_t *env;
	buf_t data;          /* bytes not yet written: header + content, or content */
	size_t info_off;     /* offsets of the records patched at commit */
	size_t body_rec_off;
	uint64_t hdr_len;    /* = body_off */
	uint64_t size;       /* content bytes */
	int fd;              /* incoming file once spilled, else -1 */
	bool created;        /* we created in_path (so we may unlink it) */
	int err;             /* first errno, 0 if none */
	char *in_path, *q_path;
	uv_work_t work;
	queue_commit_cb cb;
	void *cb_arg;
};

/*
 * Make every rename done before this call durable: fsync queue/ once for
 * all the commits waiting. A caller needs an fsync that *started* after its
 * rename: generation gen_started+1 or later. One thread at a time fsyncs;
 * the others wait for gen_done to reach their target. See docs/queue.md.
 */
static int
group_sync_dir(queue_t *q)
{
	pthread_mutex_lock(&q->mu);
	uint64_t target = q->gen_started + 1;
	while (q->gen_done < target) {
		if (q->syncing) {
			pthread_cond_wait(&q->cv, &q->mu);
			continue;
		}
		uint64_t gen = ++q->gen_started;
		q->syncing = true;
		pthread_mutex_unlock(&q->mu);
		int r = fsync(q->qdir_fd);
		int e = errno;
		pthread_mutex_lock(&q->mu);
		q->syncing = false;
		q->gen_done = gen;
		if (r < 0) {
			q->fail_gen = gen;
			q->fail_err = e;
		}
		pthread_cond_broadcast(&q->cv);
	}
	/* conservative: fail if the covering fsync or any later one failed
	 * (after a failed fsync Linux may report later ones as clean) */
	int err = q->fail_gen >= target ? q->fail_err : 0;
	pthread_mutex_unlock(&q->mu);
	return err;
}

static void
remove_incoming_all(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *de;
	int dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dfd, de->d_name, 0) < 0)
			log_warn("queue: cannot remove %s/%s: %s", dir, de->d_name, strerror(errno));
		else
			log_info("queue: removed half-received %s/%s", dir, de->d_name);
	}
	closedir(d);
}

queue_t *
queue_open(uv_loop_t *loop, const char *spool_dir, buf_t *err)
{
	static const char *const subs[] = {"incoming", "queue", "corrupt"};
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		char *p = xasprintf("%s/%s", spool_dir, subs[i]);
		if (mkdir_p(p, 0700) < 0) {
			buf_printf(err, "queue: cannot create %s: %s", p, strerror(errno));
			xfree(p);
			return NULL;
		}
		xfree(p);
	}
	queue_t *q = xcalloc(1, sizeof *q);
	q->loop = loop;
	q->spool = xstrdup(spool_dir);
	q->incoming = xasprintf("%s/incoming", spool_dir);
	char *qd = xasprintf("%s/queue", spool_dir);
	q->qdir_fd = open(qd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->qdir_fd < 0) {
		buf_printf(err, "queue: cannot open %s: %s", qd, strerror(errno));
		xfree(qd);
		xfree(q->incoming);
		xfree(q->spool);
		xfree(q);
		return NULL;
	}
	xfree(qd);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	remove_incoming_all(q->incoming);
	return q;
}

void
queue_close(queue_t *q)
{
	if (q == NULL)
		return;
	if (q->inflight)
		log_err("queue: closed with %u commits in flight", q->inflight);
	close(q->qdir_fd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	xfree(q->incoming);
	xfree(q->spool);
	xfree(q);
}

const char *
queue_spool_dir(const queue_t *q)
{
	return q->spool;
}

qmsg_t *
queue_begin(queue_t *q, const envelope_t *env)
{
	qmsg_t *m = xcalloc(1, sizeof *m);
	m->q = q;
	m->fd = -1;
	m->env = envelope_dup(env);
	const char *why = qrec_env_check(m->env);
	if (why) {
		/* refuse now what could not be read back: never queue a file
		 * that queue_scan would move to corrupt/ */
		log_warn("qid=%.16s cannot queue: %s", env->qid, why);
		m->err = EINVAL;
		return m;
	}
	m->in_path = qpath(q->spool, "incoming", m->env->qid);
	m->q_path = qpath(q->spool, "queue", m->env->qid);
	qrec_encode_header(&m->data, m->env, 0, &m->info_off, &m->body_rec_off);
	m->hdr_len = m->data.len;
	return m;
}

void
queue_add_flags(qmsg_t *m, unsigned flags)
{
	if (m && m->env)
		m->env->flags |= flags;
}

/* Spill or flush the buffer to the incoming file (loop thread, no sync). */
static int
flush_data(qmsg_t *m)
{
	if (m->fd < 0) {
		m->fd = open(m->in_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd < 0) {
			m->err = errno;
			return -1;
		}
		m->created = true;
	}
	if (write_all(m->fd, m->data.data, m->data.len) < 0) {
		m->err = errno;
		return -1;
	}
	buf_reset(&m->data);
	return 0;
}

int
queue_write(qmsg_t *m, const void *p, size_t n)
{
	if (m->err) {
		errno = m->err;
		return -1;
	}
	if (n > QF_MAX_BODY - m->size) {
		m->err = EFBIG;
		errno = m->err;
		return -1;
	}
	buf_append(&m->data, p, n);
	m->size += n;
	if (m->data.len > QUEUE_MEM_MAX && flush_data(m) < 0) {
		errno = m->err;
		return -1;
	}
	return 0;
}

uint64_t
queue_size(const qmsg_t *m)
{
	return m->size;
}

static void
qmsg_free(qmsg_t *m)
{
	if (m->fd >= 0)
		close(m->fd);
	buf_free(&m->data);
	envelope_free(m->env);
	xfree(m->in_path);
	xfree(m->q_path);
	xfree(m);
}

void
queue_abort(qmsg_t *m)
{
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	if (m->created)
		(void)unlink(m->in_path);
	qmsg_free(m);
}

/* Worker thread: write, sync, rename, group directory sync. */
static void
commit_work(uv_work_t *w)
{
	qmsg_t *m = w->data;
	int err = m->err;
	bool renamed = false;
	if (err)
		goto fail;
	/* the two fixed-size records that could not be known at begin */
	buf_t fix = BUF_INIT;
	qrec_put_info(&fix, m->env);
	qrec_put_body(&fix, m->size);
	qrec_put_end(&m->data, m->hdr_len, m->size);
	if (m->fd < 0) {
		/* small message: header, content and end in one write */
		memcpy(m->data.data + m->info_off, fix.data, QREC_INFO_LEN);
		memcpy(m->data.data + m->body_rec_off, fix.data + QREC_INFO_LEN, QREC_BODY_LEN);
		buf_free(&fix);
		m->fd = open(m->in_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd >= 0)
			m->created = true;
		if (m->fd < 0 || write_all(m->fd, m->data.data, m->data.len) < 0) {
			err = errno;
			goto fail;
		}
	} else {
		int r = write_all(m->fd, m->data.data, m->data.len);
		if (r == 0)
			r = pwrite_all(m->fd, fix.data, QREC_INFO_LEN, (off_t)m->info_off);
		if (r == 0)
			r = pwrite_all(m->fd, fix.data + QREC_INFO_LEN, QREC_BODY_LEN,
			    (off_t)m->body_rec_off);
		buf_free(&fix);
		if (r < 0) {
			err = errno;
			goto fail;
		}
	}
	/* data and the size (what is needed to read it back): fdatasync */
	if (fdatasync(m->fd) < 0) {
		err = errno;
		goto fail;
	}
	int fd = m->fd;
	m->fd = -1;
	if (close(fd) < 0) {
		err = errno;
		goto fail;
	}
	/* never replace an existing queue file (a queue ID reused by mistake) */
	if (renameat2(AT_FDCWD, m->in_path, AT_FDCWD, m->q_path, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL && errno != ENOSYS) {
			err = errno;
			goto fail;
		}
		/* file system without RENAME_NOREPLACE: link fails on EEXIST */
		if (link(m->in_path, m->q_path) < 0) {
			err = errno;
			goto fail;
		}
		(void)unlink(m->in_path);
	}
	renamed = true;
	err = group_sync_dir(m->q);
	if (err)
		goto fail;
	m->err = 0;
	return;
fail:
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	if (m->created)
		(void)unlink(m->in_path);
	/* the rename may or may not survive a crash: at worst the message is
	 * delivered although the client was told 4xx and sends it again */
	if (renamed)
		(void)unlink(m->q_path);
	m->err = err ? err : EIO;
}

static void
commit_done(uv_work_t *w, int status)
{
	qmsg_t *m = w->data;
	queue_t *q = m->q;
	q->inflight--;
	int err = status < 0 ? EIO : m->err;
	queue_commit_cb cb = m->cb;
	void *arg = m->cb_arg;
	envelope_t *env = NULL;
	if (err == 0) {
		env = m->env;
		m->env = NULL;
		env->body_off = m->hdr_len;
		env->body_len = m->size;
	} else {
		log_warn("qid=%s queue commit failed: %s", m->env ? m->env->qid : "?", strerror(err));
	}
	qmsg_free(m);
	cb(arg, err, env);
}

void
queue_commit(qmsg_t *m, queue_commit_cb cb, void *arg)
{
	m->cb = cb;
	m->cb_arg = arg;
	if (m->err == 0 && m->env->arrival_us == 0) {
		/* arrival = end of DATA/BDAT when the server did not set it */
		struct timeval tv;
		gettimeofday(&tv, NULL);
		m->env->arrival_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
	}
	m->work.data = m;
	m->q->inflight++;
	int r = uv_queue_work(m->q->loop, &m->work, commit_work, commit_done);
	if (r < 0) {
		/* cannot happen with a valid loop; run synchronously rather than lose it */
		commit_work(&m->work);
		commit_done(&m->work, 0);
	}
}
