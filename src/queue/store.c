/*
 * store.c - PERSIST: queue a whole message from a worker thread
 * (queue_store in queue.h). Used for mail tern writes itself (DSNs), which
 * never passes through an SMTP session. Same steps and guarantees as the
 * loop-side commit: incoming/<qid>, write, fsync, rename into queue/,
 * fsync queue/; on any failure nothing is left behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

envelope_t *
queue_store(const char *spool_dir, const envelope_t *env, const char *content, size_t n)
{
	buf_t bytes = BUF_INIT, tmp = BUF_INIT, dst = BUF_INIT, dir = BUF_INIT, err = BUF_INIT;
	envelope_t *out = NULL;
	int fd = -1, e = 0;

	queue_encode(env, content, n, &bytes);
	buf_printf(&tmp, "%s/incoming/%s", spool_dir, env->qid);
	queue_path(spool_dir, env->qid, &dst);
	buf_printf(&dir, "%s/queue", spool_dir);

	fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, bytes.data, bytes.len) < 0 || fsync(fd) < 0) {
		e = errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		e = errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp.data, dst.data) < 0) {
		e = errno;
		goto fail;
	}
	if (fsync_dir(dir.data) < 0) {
		e = errno;
		unlink(dst.data);
		goto out;
	}
	if (queue_load(dst.data, &out, &err) < 0) {
		/* cannot happen for bytes we just encoded; keep the file */
		e = EIO;
		out = NULL;
	}
	goto out;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp.data);
out:
	buf_free(&bytes);
	buf_free(&tmp);
	buf_free(&dst);
	buf_free(&dir);
	buf_free(&err);
	if (!out)
		errno = e ? e : EIO;
	return out;
}
