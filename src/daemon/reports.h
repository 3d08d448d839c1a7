/*
 * reports.h - the DMARC aggregate reports' clock: every
 * dmarc_report_interval (with dmarc_reports = yes) the period's reports
 * are made (mailauth_reports_flush, mailauth/mailauth.h) and each is
 * queued like a DSN (queue_store on the thread pool, durable, then handed
 * to the scheduler), from dmarc_report_email to the rua address.
 *
 * Guarantees: the timer does not keep the loop alive; after
 * reports_stop() nothing new is handed to the scheduler (a report stored
 * meanwhile is in the queue and recovered at the next start).
 * Must not: block the loop (the store runs on the pool).
 */
#ifndef TERN_DAEMON_REPORTS_H
#define TERN_DAEMON_REPORTS_H

#include <uv.h>

#include "common/config.h"
#include "sched/sched.h"

/* cfg: where the configuration in force is (it changes at reload) */
void reports_start(uv_loop_t *loop, config_t *const *cfg, sched_t *sched, const char *spool_dir);
void reports_stop(void);

#endif
