/*
 * local.h - DELIVER, local: Maildir delivery jobs for the scheduler.
 *
 * Shaped like outbound_submit: the scheduler submits (envelope, some local
 * recipients, the Maildir of each) and gets one callback, on the loop, once
 * every one of them has an outcome. The Maildir writes run on libuv's
 * thread pool, at most `concurrency` jobs at once (the limit given with
 * each submission, so a reload applies to the next one); the rest wait in a
 * FIFO, in submission order.
 *
 * Outcomes written into env->rcpt[i] by the time the callback runs (the
 * worker thread writes them: the caller must not touch those recipients
 * until then):
 *   status  RCPT_SENT or RCPT_PENDING (every local failure is temporary,
 *           deliver/outcome.h decides the words), reply, relay "local",
 *   last_try = now, attempts + 1.
 * next_try is not touched: the scheduler computes it on the loop
 * (sched.c, rcpt_outcome), and it also writes the status records.
 *
 * local_stop(): jobs still waiting for a slot are not started; their
 * callbacks run from inside local_stop, each recipient RCPT_PENDING with
 * reply "451 4.3.2 shutting down" (attempts not counted, as outbound does
 * at shutdown). Jobs already on the pool finish.
 *
 * Must not: block the loop; call a callback twice or from inside
 * local_submit().
 */
#ifndef TERN_LOCAL_H
#define TERN_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/envelope.h"

typedef struct local local_t;

/* idx and env as outbound_done_cb (deliver/outbound.h) */
typedef void (*local_done_cb)(void *arg, envelope_t *env, const size_t *idx, size_t n);

typedef struct local_job_opts {
	const char *spool_dir;
	const char *hostname;  /* for Maildir file names */
	unsigned concurrency;  /* jobs at once (local_concurrency); 0: 1 */
	bool check_dup;        /* recovered message: a file already there counts as delivered */
} local_job_opts_t;

local_t *local_new(uv_loop_t *loop);

/* Deliver recipients idx[0..n) of env into maildirs[0..n) (copied). */
void local_submit(local_t *l, envelope_t *env, const size_t *idx, char *const *maildirs, size_t n,
    const local_job_opts_t *o, local_done_cb cb, void *arg);

/* Start nothing new (see above). */
void local_stop(local_t *l);
/* Only once every callback has run. */
void local_free(local_t *l);

#endif
