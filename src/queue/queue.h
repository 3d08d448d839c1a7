/*
 * queue.h - PERSIST: the durable mail queue.
 *
 * The spool directory holds:
 *   incoming/<qid>  a message being received; never delivered; removed at start
 *   queue/<qid>     a committed message: envelope + content + status records
 * One file per message (docs/queue.md gives the versioned format and why
 * each crash point is safe).
 *
 * The guarantee: queue_commit()'s callback reports success only after the
 * file's data is fsync'd, the file renamed into queue/, and queue/ itself
 * fsync'd. Only then may the SMTP server say 250. The syncs run on libuv's
 * thread pool, never on the event loop; commits that finish together share
 * the directory fsync (group commit).
 *
 * Loop-side functions (queue_begin, queue_write, queue_abort, queue_commit)
 * must be called from the event-loop thread. The "blocking" functions
 * (queue_load, queue_append_status, queue_remove, queue_open_content) may
 * be called from worker threads, and from the loop only at start-up.
 */
#ifndef TERN_QUEUE_H
#define TERN_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/envelope.h"
#include "lib/buf.h"

typedef struct queue queue_t;
typedef struct qmsg qmsg_t;

/* Create spool_dir/{incoming,queue} (mode 0700) as needed and empty
 * incoming/. NULL on error with a message in *err. */
queue_t *queue_open(uv_loop_t *loop, const char *spool_dir, buf_t *err);
void queue_close(queue_t *q);
const char *queue_spool_dir(const queue_t *q);

/*
 * Start receiving a message. env must already carry qid, sender, DSN
 * parameters and all recipients; the queue keeps its own copy of what it
 * needs, the caller keeps env. Content is then given with queue_write(),
 * in CRLF form, already dot-unstuffed.
 * Content is buffered in memory up to 64 KiB and spilled to
 * incoming/<qid> beyond that, so a small message costs no system call
 * on the loop. Never NULL.
 */
qmsg_t *queue_begin(queue_t *q, const envelope_t *env);
/* -1 (errno kept in the message, e.g. ENOSPC) once any write failed;
 * later writes are ignored and the commit will fail. */
int queue_write(qmsg_t *m, const void *p, size_t n);
uint64_t queue_size(const qmsg_t *m);
/* Add ENV_* flags learnt from the content as it streamed in ("TLS-Required:
 * No", RFC 8689): the INFO record that holds them is written at commit. */
void queue_add_flags(qmsg_t *m, unsigned flags);
/* Forget the message: close and unlink any file. Frees m. */
void queue_abort(qmsg_t *m);

/*
 * Make the message durable. cb runs on the loop with err = 0 on success
 * (then *env_out, if not NULL, receives a fresh envelope_t with body_off and
 * body_len set, owned by the callee of cb), or an errno value on failure
 * (nothing was queued; the file is gone). Frees m before calling cb.
 */
typedef void (*queue_commit_cb)(void *arg, int err, envelope_t *env);
void queue_commit(qmsg_t *m, queue_commit_cb cb, void *arg);

/* ---- blocking functions (workers; the loop only at start-up) ---- */

/* Path of the committed file for qid, into out. */
void queue_path(const char *spool_dir, const char *qid, buf_t *out);

/*
 * Read and check one committed queue file: envelope, then every status
 * record appended since, applied in order (a torn last record is ignored).
 * A file that is truncated, corrupt or of an unknown version is refused:
 * -1 with the reason in *err. Never trusts the file: bounded sizes, every
 * field validated.
 */
int queue_load(const char *path, envelope_t **out, buf_t *err);

/* Same checks on bytes in memory (for fuzzing and tests). */
int queue_decode(const char *p, size_t n, envelope_t **out, buf_t *err);
/* The bytes queue_begin+queue_write would produce for env and content
 * (for tests). */
void queue_encode(const envelope_t *env, const char *content, size_t n, buf_t *out);

/*
 * Append one status record per listed recipient (their current status,
 * attempts, next_try, last_try, reply, relay fields in env), and the
 * message flags, with one write(2) (O_APPEND, so concurrent appenders do
 * not interleave). sync: fsync the file before returning.
 */
int queue_append_status(const char *spool_dir, const envelope_t *env, const size_t *idx,
    size_t n, bool sync);

/* Unlink the committed file. No directory fsync: a file that comes back
 * after a crash carries status records saying its recipients are done. */
int queue_remove(const char *spool_dir, const char *qid);

/* Open the committed file read-only for its content at env->body_off,
 * env->body_len bytes. Returns an fd (O_CLOEXEC) or -1. */
int queue_open_content(const char *spool_dir, const envelope_t *env);

/* Call cb for every committed message, in queue ID (arrival) order; cb owns
 * env. Files that fail to load are renamed to spool_dir/corrupt/<qid> and
 * logged, never delivered and never deleted. Returns the number loaded. */
size_t queue_scan(const char *spool_dir, void (*cb)(void *arg, envelope_t *env), void *arg);

/*
 * Queue a complete message in one go (blocking, for worker threads: DSNs
 * and other mail tern makes itself): the same file format and the same
 * durability as queue_commit (write, fsync, rename into queue/, fsync
 * queue/). Returns the envelope as loaded back from disk (body_off and
 * body_len set), or NULL with errno set.
 */
envelope_t *queue_store(const char *spool_dir, const envelope_t *env, const char *content,
    size_t n);

#endif
