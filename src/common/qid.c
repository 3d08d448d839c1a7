/*
 * qid.c - queue ID generation (see qid.h).
 */
#include "common/qid.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static const char qid_alpha[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
static atomic_uint qid_counter;

void
qid_new(char out[QID_SIZE])
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint64_t us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	/* 11 chars = 55 bits of microseconds: good until the year 3111 */
	for (int i = 10; i >= 0; i--) {
		out[i] = qid_alpha[us & 31];
		us >>= 5;
	}
	uint32_t c = atomic_fetch_add(&qid_counter, 1);
	uint32_t mix = (c + (uint32_t)getpid() * 7919u) & 0x1ffffff; /* 25 bits */
	for (int i = 15; i >= 11; i--) {
		out[i] = qid_alpha[mix & 31];
		mix >>= 5;
	}
	out[QID_LEN] = '\0';
}

bool
qid_valid(const char *s, size_t n)
{
	if (n != QID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0' || strchr(qid_alpha, s[i]) == NULL)
			return false;
	return true;
}
