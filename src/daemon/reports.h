/*
 * reports.h - the clock of the periodic reports (DMARC aggregate reports,
 * RFC 7489 section 7.2; TLS-RPT, RFC 8460) and their way into the queue.
 *
 * Each kind of report registers itself (reports_add) with: whether it is
 * on, its interval, and a flush that makes the period's reports. A report
 * message a flush hands back (submit) is queued like a DSN (queue_store on
 * the thread pool, durable, then handed to the scheduler), from the
 * sender it names to one recipient. A kind that keeps counts across
 * restarts names a file in the spool and a save function: every
 * REPORTS_SAVE_EVERY seconds and at reports_stop() the content save()
 * returns (NULL: unchanged) is written there atomically (temporary file,
 * fsync, rename, fsync of the directory) on the thread pool; the kind
 * reads it back itself at start (blocking is fine then).
 *
 * Guarantees: the timers do not keep the loop alive; after reports_stop()
 * nothing new is handed to the scheduler (a report stored meanwhile is in
 * the queue and recovered at the next start), and its callback runs once
 * every final save is on disk (or failed, logged). A crash loses at most
 * the last REPORTS_SAVE_EVERY seconds of counts.
 * Must not: block the loop (stores and saves run on the pool).
 */
#ifndef TERN_DAEMON_REPORTS_H
#define TERN_DAEMON_REPORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <uv.h>

#include "common/config.h"
#include "sched/sched.h"

#define REPORTS_SAVE_EVERY 60
#define REPORTS_MAX_KINDS 4

/* a report message for the queue: from sender to rcpt (called on the loop) */
typedef void (*reports_submit_fn)(void *submit_arg, const char *sender, const char *rcpt,
    const char *content, size_t len);

typedef struct reports_kind {
	const char *tag; /* the mail log's client name: "DMARC-REPORT" */
	bool (*enabled)(const config_t *c);
	unsigned (*interval)(const config_t *c); /* seconds, read again at each tick */
	/* true: ticks at the multiples of the interval since the epoch (a
	 * 1d interval ticks at UTC midnight); false: every interval from start */
	bool aligned;
	/* the period's reports, each handed to submit(submit_arg, ...) now or later */
	void (*flush)(void *kind_arg, const config_t *c, reports_submit_fn submit, void *submit_arg);
	/* at reports_stop(): drop what a flush still has in flight (NULL: nothing) */
	void (*stop)(void *kind_arg);
	/* persistence (both NULL: none): the file's name in the spool, and the
	 * content to write (a fresh allocation, *len set), NULL when unchanged */
	const char *file;
	char *(*save)(void *kind_arg, size_t *len);
	/* a kind not aligned whose counts came back from its file (NULL:
	 * none): when its period began; the first tick comes at that +
	 * the interval (at once when that is past) */
	time_t (*begun)(void *kind_arg);
	unsigned env_flags; /* ENV_* flags of its report messages in the queue */
} reports_kind_t;

/* cfg: where the configuration in force is (it changes at reload). The
 * DMARC reports are registered here. */
void reports_start(uv_loop_t *loop, config_t *const *cfg, sched_t *sched, const char *spool_dir);
/* Another kind (k must outlive the daemon's run): after reports_start. */
void reports_add(const reports_kind_t *k, void *kind_arg);
/* Run kind tag's flush now (whatever its timer says); -1: no such kind. */
int reports_flush_now(const char *tag);
/* Stop the timers, write the final saves, then done(arg) (once, on the loop). */
void reports_stop(void (*done)(void *), void *arg);

#endif
