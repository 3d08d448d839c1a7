/*
 * maildir.h - local delivery into a Maildir.
 *
 * Blocking: runs in a worker thread, never on the event loop.
 *
 * Writes the message into <maildir>/tmp/, fsyncs it, links it into new/,
 * fsyncs new/, then removes the tmp/ name: once maildir_deliver() returns 0
 * the copy survives a crash. The Maildir (and tmp/ new/ cur/) is created,
 * mode 0700, when missing.
 *
 * Exactly one copy across crashes: the file name is derived only from the
 * envelope (arrival time, queue ID, recipient index, our host name and the
 * size), "<arrival-sec>.M<usec>Q<qid>R<idx>.<host>,S=<size>", so a retry of
 * the same recipient produces the same name. With check_dup (the scheduler
 * sets it for messages recovered after a restart) an existing file of that
 * name in new/, or in cur/ with any ":2,flags" suffix, counts as delivered.
 *
 * Content: Return-Path: <sender> and Delivered-To: <recipient> are
 * prepended (as local delivery agents do), CRLF line ends become LF (the
 * Maildir convention).
 */
#ifndef TERN_MAILDIR_H
#define TERN_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "common/envelope.h"
#include "lib/buf.h"

/* The deterministic base name (without ",S=" and flags) for a recipient. */
void maildir_name(buf_t *out, const envelope_t *env, size_t rcpt_idx, const char *hostname);

/*
 * Deliver recipient rcpt_idx of env, reading env->body_len bytes at
 * env->body_off from content_fd (pread; the offset of content_fd is not used).
 * Returns 0 when delivered (or, with check_dup, already there).
 * On failure returns -1 and sets *err to "<x.y.z> reason" text, e.g.
 * "4.2.2 maildir /x: No space left on device"; every local failure is
 * temporary (the recipient is deferred, not bounced).
 */
int maildir_deliver(const char *maildir, const envelope_t *env, size_t rcpt_idx, int content_fd,
    const char *hostname, bool check_dup, buf_t *err);

#endif
