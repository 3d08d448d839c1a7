/*
 * sched.h - SCHEDULE: which queued message is tried when.
 *
 * The scheduler holds the in-memory index of the queue (rebuilt from disk
 * at start by queue_scan), a min-heap of next-attempt times and a timer on
 * the earliest. When a message is due it routes each pending recipient
 * (router_final) and hands local ones to Maildir jobs on the thread pool and
 * remote ones to the outbound manager, bounded by concurrency limits. When
 * results come back it records them (status records in the queue file),
 * reschedules deferred recipients with exponential backoff, turns expired
 * or permanently failed recipients into one DSN per message, and removes the
 * message when every recipient is done.
 *
 * Event-loop thread only.
 */
#ifndef TERN_SCHED_H
#define TERN_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "common/envelope.h"
#include "daemon.h"

typedef struct sched sched_t;

sched_t *sched_new(tern_t *t);
struct outbound;
/* The outbound manager that takes remote recipients (deliver/outbound.h). */
void sched_set_outbound(sched_t *s, struct outbound *o);
/* Take ownership of a committed message. recovered: it was found in the
 * spool at start (a delivery may have happened before a crash). */
void sched_submit(sched_t *s, envelope_t *env, bool recovered);
/* Make every deferred message due now. */
void sched_flush(sched_t *s);
/* Start nothing new; call done when every job in flight is back. */
void sched_stop(sched_t *s, void (*done)(void *arg), void *arg);
void sched_free(sched_t *s);

/* The retry interval after `attempts` failed attempts (attempts >= 1):
 * retry_min doubled each time, capped at retry_max. A pure function. */
unsigned sched_backoff(unsigned attempts, unsigned retry_min, unsigned retry_max);

#endif
