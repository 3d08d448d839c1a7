/*
 * pstats.h - the daemon's own gauges in the metrics (docs/operations.md):
 * what is read rather than counted, set by metrics hooks at each scrape,
 * and the event loop's lag, measured by a timer of its own.
 *
 *   tern_process_resident_memory_bytes     /proc/self/statm
 *   tern_process_start_time_seconds        when pstats_start ran (unix time)
 *   tern_build_info{version}               1
 *   tern_spool_free_bytes, tern_spool_free_inodes
 *                                          queue_space_avail on the spool
 *   tern_event_loop_lag_seconds            histogram: how late a 1 s timer
 *                                          fired (the loop was busy that long)
 *   and the queue's gauges (sched_qstats)
 * Must not: keep the loop alive (the timer is unreferenced).
 */
#ifndef TERN_PSTATS_H
#define TERN_PSTATS_H

#include <uv.h>

#include "sched/sched.h"

/* spool_dir is copied; sched must outlive pstats_stop */
void pstats_start(uv_loop_t *loop, const char *spool_dir, sched_t *sched);
/* removes the hooks and closes the timer */
void pstats_stop(void);

#endif
