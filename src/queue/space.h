/*
 * space.h - PERSIST: is there room in the spool for one more message?
 *
 * What it does: one statvfs(2) of the spool's file system, compared with the
 * bytes a message needs plus a reserve kept free for the queue's own work
 * (status appends, DSNs, messages already being received).
 * What it guarantees: it never writes anything and never allocates; it
 * answers "no room" only when statvfs says so (blocks or inodes).
 * What it must not do: replace the commit's own error handling. A "yes"
 * here is no promise: the commit can still meet ENOSPC and then answers 4xx
 * itself (docs/queue.md). This check only lets the server say
 * "452 4.3.1 Insufficient system storage" (RFC 3463, RFC 5321 §4.2.2,
 * RFC 1870 §6.1) *before* the client sends the content, instead of after.
 *
 * statvfs is one system call without I/O on local file systems, cheap
 * enough for the event loop at MAIL FROM and DATA/BDAT; on a network file
 * system it may block, like every other spool operation there.
 */
#ifndef TERN_QUEUE_SPACE_H
#define TERN_QUEUE_SPACE_H

#include <stdint.h>

/* queue file overhead counted on top of a message's size: envelope, records */
#define QUEUE_SPACE_OVERHEAD (64u * 1024u)
/* inodes kept free: each message needs one (incoming/ then queue/) */
#define QUEUE_SPACE_MIN_INODES 64u

/*
 * 0 when spool_dir's file system has at least need + QUEUE_SPACE_OVERHEAD +
 * reserve bytes available to unprivileged users (f_bavail) and, when it
 * counts inodes at all, more than QUEUE_SPACE_MIN_INODES free ones.
 * -1 with errno = ENOSPC when it has not; -1 with statvfs's errno when the
 * question could not be asked (then the caller should go on: the commit
 * still reports real write errors). need = 0 means "size unknown"
 * (MAIL FROM without SIZE): only the overhead and the reserve count.
 * Sums saturate: a huge need or reserve is "no room", never a wrap-around.
 */
int queue_space_ok(const char *spool_dir, uint64_t need, uint64_t reserve);

/* the bytes and inodes of spool_dir's file system available to
 * unprivileged users (the figures queue_space_ok compares; for the
 * metrics); *inodes is UINT64_MAX when the file system does not count
 * them. 0, or -1 with statvfs's errno. */
int queue_space_avail(const char *spool_dir, uint64_t *bytes, uint64_t *inodes);

#endif
