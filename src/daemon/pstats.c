/*
 * pstats.c - the daemon's gauges and the event-loop lag (pstats.h).
 */
#include "daemon/pstats.h"

#include <stdint.h>

#include "lib/clock.h"
#include "lib/metrics.h"
#include "lib/version.h"
#include "lib/xalloc.h"
#include "queue/space.h"

#define LAG_PERIOD_MS 1000

static const double lag_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};

METRIC_GAUGE(m_rss, "tern_process_resident_memory_bytes", "Resident memory of the daemon");
METRIC_GAUGE(m_start, "tern_process_start_time_seconds", "When the daemon started, unix time");
METRIC_GAUGE(m_build, "tern_build_info", "Always 1; the version in a label", "version");
METRIC_GAUGE(m_free, "tern_spool_free_bytes",
    "Bytes available to unprivileged users on the spool's file system");
METRIC_GAUGE(m_inodes, "tern_spool_free_inodes",
    "Inodes available on the spool's file system (absent when it does not count them)");
METRIC_HISTOGRAM(m_lag, lag_bounds, "tern_event_loop_lag_seconds",
    "How late a 1 s timer of the event loop fired: time the loop spent busy");

static struct {
	bool on;
	uv_timer_t timer;
	uint64_t last;   /* uv_hrtime() of the last tick */
	char *spool_dir;
	sched_t *sched;
} P;

static void
read_gauges(void *arg)
{
	double rss = metrics_process_rss();
	if (rss >= 0)
		metric_set(&m_rss, rss);
	uint64_t bytes, inodes;
	if (P.spool_dir && queue_space_avail(P.spool_dir, &bytes, &inodes) == 0) {
		metric_set(&m_free, (double)bytes);
		if (inodes != UINT64_MAX)
			metric_set(&m_inodes, (double)inodes);
	}
}

static void
on_tick(uv_timer_t *t)
{
	uint64_t now = uv_hrtime();
	uint64_t want = P.last + (uint64_t)LAG_PERIOD_MS * 1000000u;
	metric_observe(&m_lag, now > want ? (double)(now - want) / 1e9 : 0.0);
	P.last = now;
}

void
pstats_start(uv_loop_t *loop, const char *spool_dir, sched_t *sched)
{
	P.spool_dir = xstrdup(spool_dir);
	P.sched = sched;
	metric_set(&m_start, (double)clock_wall_us() / 1e6);
	metric_set(&m_build, 1, TERN_VERSION);
	metrics_hook_add(read_gauges, NULL);
	if (sched)
		metrics_hook_add(sched_qstats, sched);
	uv_timer_init(loop, &P.timer);
	uv_unref((uv_handle_t *)&P.timer);
	P.last = uv_hrtime();
	uv_timer_start(&P.timer, on_tick, LAG_PERIOD_MS, LAG_PERIOD_MS);
	P.on = true;
}

void
pstats_stop(void)
{
	if (!P.on)
		return;
	P.on = false;
	metrics_hook_remove(read_gauges, NULL);
	if (P.sched)
		metrics_hook_remove(sched_qstats, P.sched);
	uv_timer_stop(&P.timer);
	uv_close((uv_handle_t *)&P.timer, NULL);
	xfree(P.spool_dir);
	P.spool_dir = NULL;
}
