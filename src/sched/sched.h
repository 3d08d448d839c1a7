/*
 * sched.h - SCHEDULE: which queued message is tried when.
 *
 * The scheduler holds the in-memory index of the queue (rebuilt from disk
 * at start by queue_scan), a min-heap of next-attempt times and a timer on
 * the earliest. When a message is due it routes each pending recipient
 * (router_final) and hands local ones to Maildir jobs on the thread pool and
 * remote ones to the outbound manager, bounded by concurrency limits. When
 * results come back it records them (status records in the queue file),
 * reschedules deferred recipients with exponential backoff (never beyond
 * the message's expiry), sends one delay warning per message after
 * delay_warning, turns expired or permanently failed recipients into one
 * DSN per message, sends success DSNs that were asked for, and removes the
 * message when every recipient is done.
 *
 * The administrator's operations (hold, release, delete, flush) act on the
 * index; their effect on disk (a flags-only status record, or the removal)
 * is written by a job on the thread pool once no delivery job of the
 * message is in flight, so the records stay in order.
 *
 * Event-loop thread only.
 */
#ifndef TERN_SCHED_H
#define TERN_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "common/envelope.h"
#include "control/qview.h"
#include "daemon.h"
#include "lib/buf.h"

typedef struct sched sched_t;

sched_t *sched_new(tern_t *t);
struct outbound;
/* The outbound manager that takes remote recipients (deliver/outbound.h). */
void sched_set_outbound(sched_t *s, struct outbound *o);
/* Take ownership of a committed message. recovered: it was found in the
 * spool at start (a delivery may have happened before a crash). A message
 * whose flags say ENV_HELD stays held. */
void sched_submit(sched_t *s, envelope_t *env, bool recovered);
/* Make the deferred recipients of every message that is not held due now;
 * domain non-NULL: only recipients in that domain (case-insensitive).
 * Returns the number of recipients made due. */
size_t sched_flush(sched_t *s, const char *domain);
/* Start nothing new; call done when every job in flight is back. */
void sched_stop(sched_t *s, void (*done)(void *arg), void *arg);
void sched_free(sched_t *s);

/* The retry interval after `attempts` failed attempts (attempts >= 1):
 * retry_min doubled each time, capped at retry_max. A pure function. */
unsigned sched_backoff(unsigned attempts, unsigned retry_min, unsigned retry_max);

/* ---- the administrator's view (src/control/) ---- */

/*
 * A copy of every message in the queue (qid NULL) or of one, in queue ID
 * order, for listing: *n entries (free with qview_entries_free). Recipients
 * in a delivery job right now have active set and only their addresses
 * copied (a worker thread owns their state). A held message has ENV_HELD in
 * its flags; messages being deleted are left out.
 */
qview_entry_t *sched_snapshot(sched_t *s, const char *qid, size_t *n);

/* Completion of an operation that had to wait for a job: err 0 or an errno
 * value, text a one-line message for the administrator. */
typedef void (*sched_op_cb)(void *arg, int err, const char *text);

/*
 * Hold (hold = true) or release a message. Returns -1 with a reason in
 * *text when there is no such message (or it is being removed); 0 when the
 * answer is final now (text says what happened; the flag record follows
 * once the deliveries in progress are back); 1 when cb(arg, ...) will be
 * called once the new state is on disk (never from inside this call).
 * A held message is never dispatched; its hold survives restarts.
 * Releasing puts it back on its schedule (sched_flush makes it due now).
 */
int sched_hold(sched_t *s, const char *qid, bool hold, sched_op_cb cb, void *arg, buf_t *text);

/*
 * Delete a message without any DSN (logged). Same return values as
 * sched_hold; with deliveries in progress it is removed when they are back
 * (0, and text says so).
 */
int sched_delete(sched_t *s, const char *qid, sched_op_cb cb, void *arg, buf_t *text);

#endif
