/*
 * rate.c - parses "N/DURATION" rates (rate.h).
 */
#include "common/rate.h"

#include <stdlib.h>

int
rate_parse(const char *s, rate_t *r, const char **why)
{
	r->n = 0;
	r->secs = 0;
	if (s == NULL || *s == '\0')
		return 0;
	char *end;
	unsigned long n = strtoul(s, &end, 10);
	if (end == s || *end != '/' || n == 0 || n > 1000000000ul || *s == '-') {
		*why = "a rate is N/DURATION with N from 1 to 10^9 (e.g. 60/1m)";
		return -1;
	}
	const char *d = end + 1;
	unsigned long v = 1;
	if (*d >= '0' && *d <= '9') {
		v = strtoul(d, &end, 10);
		d = end;
	}
	unsigned long mult;
	switch (*d) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	case 'w': mult = 7 * 86400; break;
	default: mult = 0; break;
	}
	if (mult == 0 || d[1] != '\0' || v == 0 || v > 366ul * 86400 / mult) {
		*why = "a rate's DURATION is a number with s, m, h, d or w, from 1s to 366d "
		       "(e.g. 200/1h)";
		return -1;
	}
	r->n = (unsigned)n;
	r->secs = (unsigned)(v * mult);
	return 0;
}
