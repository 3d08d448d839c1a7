/*
 * finish.h - BOUNCE: the DSNs of a queued message, built and stored
 * through the queue API (a job on libuv's thread pool).
 *
 * Three kinds of job, each on a copy of the envelope:
 *   BOUNCE_ROUND   after a delivery round in which recipients failed while
 *                  others are still pending (issue #11.3): one failure DSN
 *                  to the sender for the failed recipients that want one
 *                  (RFC 3461 §4.1; RFC 3464 allows several DSNs per
 *                  message); each failed recipient is then marked
 *                  RCPT_REPORTED in the queue file (fsync'd), so it is
 *                  reported once, even across restarts.
 *   BOUNCE_FINISH  no recipient pending: the failure DSN for the failed
 *                  recipients not reported yet; a success DSN for the
 *                  NOTIFY=SUCCESS recipients delivered here or relayed to
 *                  a server that did not take NOTIFY (RFC 3461 §6.2.2);
 *                  then the queue file is removed.
 *   BOUNCE_WARN    the delay warning for the pending recipients that want
 *                  one; ENV_DELAY_WARNED is recorded (fsync'd) so it is sent
 *                  once.
 * A message from <> is never bounced (RFC 5321 §4.5.5): its failures are
 * counted in `discarded`, and with postmaster addresses given (the caller's
 * bounce_to_postmaster lookup) a headers-only notice goes to them
 * (ENV_PM_NOTICE). Every DSN is queued durably (from <>, ENV_IS_BOUNCE)
 * before the recipients are marked or the original removed.
 *
 * On the loop, before the callback, bounce_run logs each DSN queued
 * (maillog). The caller owns the job and frees it with bounce_job_free
 * (DSN envelopes it took from out[] must be set to NULL first).
 */
#ifndef TERN_BOUNCE_FINISH_H
#define TERN_BOUNCE_FINISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/envelope.h"

#define BOUNCE_MAX_DSNS 3

enum bounce_what { BOUNCE_FINISH, BOUNCE_ROUND, BOUNCE_WARN };

typedef struct bounce_job bounce_job_t;
typedef void (*bounce_done_cb)(void *arg, bounce_job_t *j);

struct bounce_job {
	/* in */
	enum bounce_what what;
	envelope_t *env;       /* a copy, owned; reported recipients become RCPT_REPORTED */
	char *spool_dir;
	char *hostname;
	int64_t retry_until;   /* BOUNCE_WARN: Will-Retry-Until, 0: none */
	char **pm;             /* the postmaster's final addresses, or NULL */
	size_t npm;
	char *pm_addr;         /* ... and the address they came from */
	/* out */
	envelope_t *out[BOUNCE_MAX_DSNS]; /* DSNs queued (new messages to schedule) */
	size_t nout;
	size_t discarded;      /* failed recipients of a message from <> */
	int err;               /* 0, or an errno value with errtext */
	char errtext[256];
	/* private */
	const char *what_log[BOUNCE_MAX_DSNS];
	uv_work_t req;
	bounce_done_cb cb;
	void *arg;
};

/* A job of `what` about a copy of env. */
bounce_job_t *bounce_job_new(enum bounce_what what, const envelope_t *env, const char *spool_dir,
    const char *hostname);
/* The job needs the postmaster's addresses: a message from <> (not itself a
 * postmaster notice) with failed recipients, finishing or in a round. */
bool bounce_wants_postmaster(const bounce_job_t *j);
/* Run it on the pool of loop; cb on the loop (never from inside). */
void bounce_run(uv_loop_t *loop, bounce_job_t *j, bounce_done_cb cb, void *arg);
void bounce_job_free(bounce_job_t *j);

#endif
