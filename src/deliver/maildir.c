/*
 * maildir.c - local delivery into a Maildir (see maildir.h).
 *
 * Blocking; runs in a worker thread. What it guarantees: when it returns 0
 * the message is in <maildir>/new/ under a name derived only from the
 * envelope, the file's data and the new/ entry fsync'd; a retry of the same
 * recipient can never make a second copy (link(2) refuses an existing name,
 * and check_dup also looks for the copy the user already moved to cur/).
 * Every failure is temporary ("4.x.x" text): the recipient is deferred.
 *
 * What it must not do: overwrite or truncate an existing message (a stale
 * tmp/ name may be a hard link to new/: it is unlinked, never reopened),
 * or run on the event loop.
 */
#include "deliver/maildir.h"
#include "deliver/outcome.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/xalloc.h"

#define MD_CHUNK (64u * 1024u)

void
maildir_name(buf_t *out, const envelope_t *env, size_t rcpt_idx, const char *hostname)
{
	int64_t sec = env->arrival_us / 1000000;
	int64_t usec = env->arrival_us % 1000000;
	buf_printf(out, "%" PRId64 ".M%" PRId64 "Q%sR%zu.", sec, usec, env->qid, rcpt_idx);
	if (hostname == NULL || hostname[0] == '\0')
		hostname = "localhost";
	/* Maildir convention: '/' and ':' in the host part are written as
	 * \057 and \072; we also escape controls, space and DEL the same way
	 * so a name never holds a byte a shell or a MUA could trip on. */
	for (const unsigned char *h = (const unsigned char *)hostname; *h; h++) {
		if (*h == '/' || *h == ':' || *h <= 0x20 || *h == 0x7f)
			buf_printf(out, "\\%03o", *h);
		else
			buf_putc(out, (char)*h);
	}
}

static void
set_err(buf_t *err, const char *maildir, const char *what, int e)
{
	char eb[128];
	const char *es = strerror_r(e, eb, sizeof eb);
	const char *code = outcome_maildir_code(e); /* the rule lives in outcome.c */
	buf_reset(err);
	buf_printf(err, "%s maildir %s: %s: %s", code, maildir, what, es);
}

/* A header value must not hold a line break or other control. */
static bool
header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Is the message already there: new/<full>, or cur/<base>[:,]... ? */
static bool
dup_exists(const char *maildir, const char *base, const char *full)
{
	char *p = xasprintf("%s/new/%s", maildir, full);
	struct stat st;
	bool found = stat(p, &st) == 0;
	xfree(p);
	if (found)
		return true;
	p = xasprintf("%s/cur", maildir);
	DIR *d = opendir(p);
	xfree(p);
	if (d == NULL)
		return false;
	size_t bl = strlen(base);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		if (strncmp(n, base, bl) == 0 && (n[bl] == '\0' || n[bl] == ':' || n[bl] == ',')) {
			found = true;
			break;
		}
	}
	closedir(d);
	return found;
}

/* parent directory of path (into out), "." when there is none */
static void
parent_dir(buf_t *out, const char *path)
{
	size_t n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	while (n > 0 && path[n - 1] != '/')
		n--;
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n == 0)
		buf_puts(out, ".");
	else
		buf_append(out, path, n);
}

/* Create the Maildir and its tmp/ new/ cur/ (mode 0700), durably. */
static int
md_create(const char *maildir, buf_t *err)
{
	if (mkdir_p(maildir, 0700) < 0) {
		set_err(err, maildir, "cannot create", errno);
		return -1;
	}
	static const char *const subs[] = {"tmp", "new", "cur"};
	for (size_t i = 0; i < 3; i++) {
		char *p = xasprintf("%s/%s", maildir, subs[i]);
		int r = mkdir(p, 0700);
		int e = errno;
		xfree(p);
		if (r < 0 && e != EEXIST) {
			set_err(err, maildir, "cannot create subdirectory", e);
			return -1;
		}
	}
	buf_t par = BUF_INIT;
	parent_dir(&par, maildir);
	int r = fsync_dir(maildir);
	if (r == 0)
		r = fsync_dir(buf_cstr(&par));
	int e = errno;
	buf_free(&par);
	if (r < 0) {
		set_err(err, maildir, "cannot sync new directories", e);
		return -1;
	}
	return 0;
}

/*
 * Write the prepended header lines and the content with CRLF turned into
 * LF, reading 64 KiB at a time. A CR at the end of a chunk waits for the
 * next one; a lone CR (not before LF) is kept. Sets *size to the bytes
 * written. -1 with errno (EIO for a content file shorter than promised).
 */
static int
md_copy(int out, const char *hdr, size_t hlen, int in, uint64_t off, uint64_t len,
    uint64_t *size)
{
	char *ib = xmalloc(MD_CHUNK);
	char *ob = xmalloc(MD_CHUNK + hlen + 1);
	size_t o = hlen;
	memcpy(ob, hdr, hlen);
	bool cr = false;
	int rc = 0;
	*size = 0;
	while (len > 0 || o > 0 || cr) {
		size_t n = len < MD_CHUNK ? (size_t)len : MD_CHUNK;
		if (n > 0) {
			ssize_t got = pread_all(in, ib, n, (off_t)off);
			if (got < 0 || (size_t)got != n) {
				if (got >= 0)
					errno = EIO;
				rc = -1;
				break;
			}
			off += n;
			len -= n;
		}
		const char *s = ib, *end = ib + n;
		if (cr && n > 0) {
			/* CR held from the previous chunk */
			cr = false;
			if (*s == '\n') {
				ob[o++] = '\n';
				s++;
			} else {
				ob[o++] = '\r';
			}
		}
		while (s < end) {
			const char *c = memchr(s, '\r', (size_t)(end - s));
			size_t k = c ? (size_t)(c - s) : (size_t)(end - s);
			memcpy(ob + o, s, k);
			o += k;
			s += k;
			if (c == NULL)
				break;
			if (s + 1 == end) {
				cr = true; /* decide with the next chunk */
				s++;
			} else if (s[1] == '\n') {
				ob[o++] = '\n';
				s += 2;
			} else {
				ob[o++] = '\r';
				s++;
			}
		}
		if (len == 0 && cr) {
			ob[o++] = '\r'; /* content ends with a lone CR */
			cr = false;
		}
		if (o > 0 && write_all(out, ob, o) < 0) {
			rc = -1;
			break;
		}
		*size += o;
		o = 0;
	}
	int e = errno;
	xfree(ib);
	xfree(ob);
	errno = e;
	return rc;
}

int
maildir_deliver(const char *maildir, const envelope_t *env, size_t rcpt_idx, int content_fd,
    const char *hostname, bool check_dup, buf_t *err)
{
	if (rcpt_idx >= env->nrcpt || env->rcpt[rcpt_idx].addr == NULL) {
		buf_reset(err);
		buf_puts(err, "4.3.0 maildir: no such recipient in the envelope");
		return -1;
	}
	const char *sender = env->sender ? env->sender : "";
	const char *rcpt = env->rcpt[rcpt_idx].addr;
	if (!header_safe(sender) || !header_safe(rcpt)) {
		buf_reset(err);
		buf_puts(err, "4.3.0 maildir: control character in an envelope address");
		return -1;
	}
	buf_t base = BUF_INIT, tmp = BUF_INIT, dst = BUF_INIT, hdr = BUF_INIT, newdir = BUF_INIT;
	int fd = -1, rc = -1;
	maildir_name(&base, env, rcpt_idx, hostname);
	buf_printf(&tmp, "%s/tmp/%s", maildir, buf_cstr(&base));
	buf_printf(&newdir, "%s/new", maildir);
	/* the trace fields a local delivery agent adds (RFC 5321 §4.4 for
	 * Return-Path; Delivered-To is the common loop-detection header) */
	buf_printf(&hdr, "Return-Path: <%s>\nDelivered-To: %s\n", sender, rcpt);

	/* a tmp/ file of this name is left over from a crash: it may be a
	 * second link to the copy in new/, so unlink it, never truncate it */
	if (unlink(buf_cstr(&tmp)) < 0 && errno != ENOENT && errno != ENOTDIR) {
		set_err(err, maildir, "cannot remove stale tmp file", errno);
		goto out;
	}
	fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) {
		if (md_create(maildir, err) < 0)
			goto out;
		fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	if (fd < 0) {
		set_err(err, maildir, "cannot create tmp file", errno);
		goto out;
	}
	uint64_t size;
	if (md_copy(fd, hdr.data, hdr.len, content_fd, env->body_off, env->body_len, &size) < 0) {
		if (errno == EIO)
			set_err(err, maildir, "reading queued content", errno);
		else
			set_err(err, maildir, "writing", errno);
		goto fail_unlink;
	}
	buf_printf(&dst, "%s/%s,S=%" PRIu64, buf_cstr(&newdir), buf_cstr(&base), size);
	if (check_dup) {
		const char *full = strrchr(buf_cstr(&dst), '/') + 1;
		if (dup_exists(maildir, buf_cstr(&base), full)) {
			rc = 0; /* delivered before a crash: keep that one copy */
			goto fail_unlink;
		}
	}
	if (fsync(fd) < 0) {
		set_err(err, maildir, "fsync", errno);
		goto fail_unlink;
	}
	int cfd = fd;
	fd = -1;
	if (close(cfd) < 0) {
		set_err(err, maildir, "close", errno);
		goto fail_unlink;
	}
	if (link(buf_cstr(&tmp), buf_cstr(&dst)) < 0) {
		if (errno == ENOENT) {
			/* new/ vanished: recreate and try once more */
			if (md_create(maildir, err) < 0)
				goto fail_unlink;
			if (link(buf_cstr(&tmp), buf_cstr(&dst)) == 0)
				goto linked;
		}
		/* EEXIST: the same name means the same message, delivered by
		 * an earlier attempt; its new/ entry is synced below */
		if (errno != EEXIST) {
			set_err(err, maildir, "cannot link into new", errno);
			goto fail_unlink;
		}
	}
linked:
	if (fsync_dir(buf_cstr(&newdir)) < 0) {
		/* the link may not survive a crash: report failure; the retry
		 * finds the name (EEXIST) and syncs again */
		set_err(err, maildir, "fsync new", errno);
		goto fail_unlink;
	}
	rc = 0;
fail_unlink:
	if (fd >= 0)
		close(fd);
	(void)unlink(buf_cstr(&tmp));
out:
	buf_free(&base);
	buf_free(&tmp);
	buf_free(&dst);
	buf_free(&hdr);
	buf_free(&newdir);
	return rc;
}
