/*
 * fstats.h - FILTER: the verdicts of the filters in the metrics, one
 * family for all of them (tern_filter_verdicts_total{filter, verdict},
 * docs/operations.md), counted where each verdict's log line is written.
 *
 *   filter          verdicts
 *   milter          reject, tempfail, discard, accept, continue, failed
 *   dnsbl           listed, pass (some lists matched, below the threshold),
 *                   lookup_failed
 *   header_checks,  reject, discard, hold, warn, ignore, prepend
 *   body_checks
 *   ratelimit       limited, failed_closed
 *   greylist        greylisted, passed
 * Must not: run off the loop thread (lib/metrics.h).
 */
#ifndef TERN_FSTATS_H
#define TERN_FSTATS_H

void fstats_verdict(const char *filter, const char *verdict);

#endif
