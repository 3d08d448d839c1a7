/*
 * queuealarm.h - the queue-age alarm: a warning line when the oldest
 * message in the queue (held ones aside) is older than queue_age_warning,
 * the same line again at most every queue_age_warning_repeat while that
 * lasts, and one line when it clears (docs/operations.md "Queue-age
 * alarms"). Checked on a timer every quarter of the threshold (1 s to 60 s),
 * reading the configuration afresh each time (a SIGHUP may change it;
 * 0 turns it off).
 *
 *   warning: QID: queue age alarm age=Ns threshold=Ns to=<A> attempts=N
 *            pending=N (LAST REPLY)
 *   QID: queue age alarm cleared oldest_age=Ns threshold=Ns
 *            (or "queue age alarm cleared queue=empty threshold=Ns")
 *
 * queuealarm_oldest_age() gives the oldest message's age for a metrics
 * gauge (tern_queue_oldest_message_age_seconds). Event-loop thread only.
 */
#ifndef TERN_QUEUEALARM_H
#define TERN_QUEUEALARM_H

#include <uv.h>

#include "common/config.h"
#include "sched/sched.h"

/* after the scheduler exists; the timer does not keep the loop alive */
void queuealarm_start(uv_loop_t *loop, config_t *const *cfg, sched_t *sched);
/* at shutdown, before the scheduler is freed */
void queuealarm_stop(void);
/* seconds since the arrival of the oldest message that is not held; 0 when
 * there is none or before queuealarm_start() */
double queuealarm_oldest_age(void);

#endif
