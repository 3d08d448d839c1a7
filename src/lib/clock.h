/*
 * clock.h - the two clocks tern reads, in microseconds.
 *
 * clock_wall_us: CLOCK_REALTIME, for what is written down (arrival times
 * in envelopes, log timestamps); it may jump. clock_mono_us: CLOCK_MONOTONIC,
 * for what is measured (intervals, rate limits); it never goes back.
 * Guarantees: never fail (clock_gettime on these clocks cannot).
 * Must not: be used for both purposes at once.
 */
#ifndef TERN_CLOCK_H
#define TERN_CLOCK_H

#include <stdint.h>

int64_t clock_wall_us(void);
uint64_t clock_mono_us(void);

#endif
