/*
 * rate.h - a rate as the configuration writes it: "N/DURATION" (60/1m),
 * at most N events in any DURATION (the rate-limit keys of
 * docs/configuration.md; enforced by filter/ratelimit.h).
 */
#ifndef TERN_RATE_H
#define TERN_RATE_H

/* N events per secs seconds; n == 0: no limit */
typedef struct rate {
	unsigned n;
	unsigned secs;
} rate_t;

/* "N/DURATION", DURATION a number with s, m, h, d or w (or a bare unit:
 * "200/h" is 200/1h), from 1s to 366d; N from 1 to 10^9. Returns 0, or -1
 * with *why. An empty or NULL string is no limit (n = 0). */
int rate_parse(const char *s, rate_t *r, const char **why);

#endif
