/*
 * fstats.c - FILTER: filter verdicts in the metrics (fstats.h).
 */
#include "filter/fstats.h"

#include "lib/metrics.h"

METRIC_COUNTER(m_verdicts, "tern_filter_verdicts_total",
    "Verdicts of the filters (milter, dnsbl, header_checks, body_checks, ratelimit, greylist)",
    "filter", "verdict");

void
fstats_verdict(const char *filter, const char *verdict)
{
	metric_inc(&m_verdicts, filter, verdict);
}
