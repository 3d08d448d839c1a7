/*
 * sched.h - SCHEDULE: which queued message is tried when.
 *
 * The scheduler holds the in-memory index of the queue (rebuilt from disk
 * at start by queue_scan), a min-heap of next-attempt times and a timer on
 * the earliest. When a message is due it routes each pending recipient
 * (router_final) and hands local ones to the local stage (deliver/local.h)
 * and remote ones to the remote stage (deliver/outbound.h), grouped by
 * domain. Outcomes come back through one function on the loop that
 * records them (status records in the queue file) and reschedules
 * deferred recipients with exponential backoff (never beyond the message's
 * expiry), from the current configuration, for local and remote recipients
 * alike. It decides when DSNs are due and leaves building and storing them
 * to the bounce stage (bounce/finish.h): after a round with permanent
 * failures, one delay warning per message after delay_warning, and when
 * no recipient is pending (then the message is removed).
 *
 * The stages are reached only through sched_stages_t (tests pass fakes);
 * the configuration and tables through sched_ctx_t, read afresh at every
 * event (a SIGHUP swaps them).
 *
 * The administrator's operations (hold, release, delete, flush, bounce) act on the
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

#include <uv.h>

#include "bounce/finish.h"
#include "common/config.h"
#include "common/envelope.h"
#include "deliver/local.h"
#include "deliver/router.h"
#include "lib/buf.h"

typedef struct sched sched_t;

/* What the scheduler needs from the daemon. */
typedef struct sched_ctx {
	uv_loop_t *loop;
	const char *spool_dir;        /* copied */
	config_t *const *cfg;         /* the current configuration: *cfg at each use */
	tables_t *const *tables;      /* the current tables */
} sched_ctx_t;

/* A stage's outcome callback: recipients idx[0..n) of env have their
 * outcome written (deliver/outbound.h, deliver/local.h). */
typedef void (*sched_stage_cb)(void *arg, envelope_t *env, const size_t *idx, size_t n);

/* The stages a due message goes to; each call's cb runs exactly once, on
 * the loop, never from inside the submit call (local_stop excepted). */
typedef struct sched_stages {
	void *local;
	void (*local_submit)(void *local, envelope_t *env, const size_t *idx, char *const *maildirs,
	    size_t n, const local_job_opts_t *o, sched_stage_cb cb, void *arg);
	void (*local_stop)(void *local);
	void *remote;
	void (*remote_submit)(void *remote, envelope_t *env, const size_t *idx, size_t n,
	    sched_stage_cb cb, void *arg);
	void *bounce;
	/* run j (bounce/finish.h); the scheduler frees it after cb */
	void (*bounce_run)(void *bounce, bounce_job_t *j, bounce_done_cb cb, void *arg);
} sched_stages_t;

sched_t *sched_new(const sched_ctx_t *ctx);
/* The stages (copied); before the first sched_submit. */
void sched_set_stages(sched_t *s, const sched_stages_t *st);
struct outbound;
/* The real stages: a local stage of its own (local.h), the outbound
 * manager o for remote recipients, bounce_run on the loop's pool. */
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
/* the queue's gauges in the metrics (qstats.c): a metrics hook, arg is the
 * sched_t (metrics_hook_add(sched_qstats, s); removed before sched_free) */
void sched_qstats(void *arg);

/* The retry interval after `attempts` failed attempts (attempts >= 1):
 * retry_min doubled each time, capped at retry_max. A pure function. */
unsigned sched_backoff(unsigned attempts, unsigned retry_min, unsigned retry_max);

/* ---- the administrator's view (src/control/) ---- */

/* One message of a snapshot. */
typedef struct sched_entry {
	envelope_t *env; /* owned by the entry */
	bool *active;    /* per recipient: in a delivery right now; NULL: none */
} sched_entry_t;

void sched_entries_free(sched_entry_t *e, size_t n);
/* in queue ID (arrival) order */
void sched_entries_sort(sched_entry_t *e, size_t n);

/*
 * A copy of every message in the queue (qid NULL) or of one, in queue ID
 * order, for listing: *n entries (free with sched_entries_free). Recipients
 * in a delivery job right now have active set and only their addresses
 * copied (a worker thread owns their state). A held message has ENV_HELD in
 * its flags; messages being deleted are left out.
 */
sched_entry_t *sched_snapshot(sched_t *s, const char *qid, size_t *n);

/* Completion of an operation that had to wait for a job: err 0 or an errno
 * value, text a one-line message for the administrator. */
typedef void (*sched_op_cb)(void *arg, int err, const char *text);

/* The oldest message in the queue that is neither held nor being deleted
 * (the queue-age alarm, daemon/queuealarm.h), with one of its pending
 * recipients (one not in a delivery right now when there is one) and that
 * recipient's last reply. */
typedef struct sched_oldest {
	char qid[QID_SIZE];
	int64_t arrival_us;
	char rcpt[256];    /* "" when every pending recipient is in a delivery */
	char reply[256];   /* "" when not tried yet */
	unsigned attempts;
	size_t npending;
} sched_oldest_t;

/* true with *o filled, false when there is no such message; O(messages) */
bool sched_oldest(sched_t *s, sched_oldest_t *o);

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

/* Make the waiting recipients of one message due now (a held one stays
 * held: text says so). -1 with the reason in *text when there is no such
 * message; else 0 with what was done in *text. */
int sched_flush_one(sched_t *s, const char *qid, buf_t *text);

/*
 * Bounce a message now: every recipient still waiting fails for good with
 * "5.0.0 returned to the sender by the administrator", and the failure DSN
 * (one, for all of them) follows through the usual round (none for a
 * sender <>); the message is then finished and removed. With deliveries
 * in progress, that happens when they are back (what they delivered stays
 * delivered). A held message is bounced too. -1
 * with the reason in *text when there is no such message; else 0 with
 * what was done in *text.
 */
int sched_bounce(sched_t *s, const char *qid, buf_t *text);

#endif
