/*
 * fuzz_check.h - the invariant check every fuzz target uses: a broken
 * invariant prints what and where, then abort()s so libFuzzer keeps the
 * input as a crash.
 */
#ifndef TERN_FUZZ_CHECK_H
#define TERN_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                      \
	do {                                                                          \
		if (!(c)) {                                                           \
			fprintf(stderr, "invariant failed: %s (%s:%d)\n", #c, __FILE__, \
			    __LINE__);                                                \
			abort();                                                      \
		}                                                                     \
	} while (0)

#endif
