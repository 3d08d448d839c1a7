/*
 * dstats.c - DELIVER: delivery attempts in the metrics (dstats.h).
 */
#include "deliver/dstats.h"

#include "common/maillog.h"
#include "lib/clock.h"
#include "lib/metrics.h"

METRIC_COUNTER(m_attempts, "tern_delivery_attempts_total",
    "Recipients' delivery attempts, by transport and result", "transport", "result");
METRIC_HISTOGRAM(m_duration, metric_bounds_latency, "tern_delivery_attempt_duration_seconds",
    "Duration of one delivery attempt (a Maildir job, or an SMTP/LMTP job from its submission to "
    "its last reply)",
    "transport");

void
dstats_attempt(const char *transport, const envelope_t *env, const size_t *idx, size_t n,
    uint64_t started)
{
	for (size_t k = 0; k < n; k++)
		metric_inc(&m_attempts, transport, maillog_status(&env->rcpt[idx[k]]));
	uint64_t now = clock_mono_us();
	metric_observe(&m_duration, now > started ? (double)(now - started) / 1e6 : 0.0, transport);
}
