/*
 * dstats.h - DELIVER: the metrics of delivery attempts, shared by the
 * local stage (local.c) and the outbound one (outbound.c), each calling
 * dstats_attempt once per finished job (docs/operations.md).
 *
 * A job is one attempt for its recipients: each recipient's result
 * (sent, deferred, bounced, as the log says it) is counted under the
 * transport, and the job's duration observed once.
 * Must not: run off the loop thread (lib/metrics.h).
 */
#ifndef TERN_DSTATS_H
#define TERN_DSTATS_H

#include <stddef.h>
#include <stdint.h>

#include "common/envelope.h"

/* transport: "local", "lmtp", "smtp" (MX) or "relay" (relayhost or a
 * transport entry); recipients idx[0..n) of env have their outcome;
 * started: clock_mono_us() when the attempt began */
void dstats_attempt(const char *transport, const envelope_t *env, const size_t *idx, size_t n,
    uint64_t started);

#endif
