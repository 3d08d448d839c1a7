/*
 * test_ratelimit.c - table-driven tests of the GCRA arithmetic
 * (src/filter/ratelimit.c rl_gcra, time injected), the rate syntax
 * (src/common/rate.c) and the bounded in-memory store (all or nothing,
 * the key cap, LRU eviction).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/rate.h"
#include "filter/ratelimit.h"

#define S 1000000ull /* one second in microseconds */

static void
test_rate_parse(void **state)
{
	(void)state;
	static const struct {
		const char *in;
		int rc;
		unsigned n, secs;
	} t[] = {
		{"60/1m", 0, 60, 60},     {"200/1h", 0, 200, 3600}, {"500/1d", 0, 500, 86400},
		{"3/10s", 0, 3, 10},      {"200/h", 0, 200, 3600},  {"1/1w", 0, 1, 604800},
		{"", 0, 0, 0},            {"0/1m", -1, 0, 0},       {"60", -1, 0, 0},
		{"60/", -1, 0, 0},        {"60/1x", -1, 0, 0},      {"/1m", -1, 0, 0},
		{"60/0m", -1, 0, 0},      {"60/1mm", -1, 0, 0},     {"-1/1m", -1, 0, 0},
		{"1/367d", -1, 0, 0},     {"1/366d", 0, 1, 366 * 86400},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		rate_t r;
		const char *why = NULL;
		int rc = rate_parse(t[i].in, &r, &why);
		if (rc != t[i].rc)
			fail_msg("%s: rc %d", t[i].in, rc);
		if (rc == 0) {
			assert_int_equal(r.n, t[i].n);
			assert_int_equal(r.secs, t[i].secs);
		} else {
			assert_non_null(why);
		}
	}
}

/* a sequence of events at given times (seconds from a base, fractional
 * as microseconds) against one rate: allowed or not, and the retry */
static void
test_gcra_table(void **state)
{
	(void)state;
	static const struct {
		unsigned n, secs;
		uint64_t at_us;
		bool ok;
		uint64_t retry_us; /* when refused */
	} t[] = {
		/* 3/3s: T = 1 s, tau = 2 s; 3 at once, then one per second */
		{3, 3, 0, true, 0},
		{3, 3, 0, true, 0},
		{3, 3, 0, true, 0},
		{3, 3, 0, false, 1 * S},            /* TAT = 3 s: next at 1 s */
		{3, 3, S / 2, false, S / 2},        /* still refused, half a second to go */
		{3, 3, 1 * S, true, 0},             /* TAT 3 -> 4 */
		{3, 3, 1 * S, false, 1 * S},
		{3, 3, 10 * S, true, 0},            /* idle: TAT reset to now + T */
		{3, 3, 10 * S, true, 0},
		{3, 3, 10 * S, true, 0},
		{3, 3, 10 * S, false, 1 * S},       /* burst of 3 again after idling */
	};
	uint64_t tat = 0, base = 1000 * S;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		rate_t r = {t[i].n, t[i].secs};
		uint64_t before = tat, retry = 7;
		bool ok = rl_gcra(&tat, base + t[i].at_us, &r, &retry);
		if (ok != t[i].ok)
			fail_msg("row %zu: ok %d", i, ok);
		if (!ok) {
			assert_int_equal(retry, t[i].retry_us);
			assert_int_equal(tat, before); /* a refusal charges nothing */
		} else {
			assert_int_equal(retry, 0);
		}
	}
}

/* over a long run at a steady rate above the limit, exactly N per window
 * pass (after the first burst) */
static void
test_gcra_steady(void **state)
{
	(void)state;
	rate_t r = {60, 60}; /* 60/1m */
	uint64_t tat = 0, retry, base = 5 * S;
	unsigned passed = 0;
	/* ten events a second for ten minutes */
	for (uint64_t t = 0; t < 600 * S; t += S / 10)
		passed += rl_gcra(&tat, base + t, &r, &retry);
	/* the burst of 60, then one a second for the rest (599 s, the last partial) */
	assert_in_range(passed, 60 + 599 - 1, 60 + 600);
	/* a slow sender is never refused */
	tat = 0;
	for (uint64_t t = 0; t < 600 * S; t += 2 * S)
		assert_true(rl_gcra(&tat, base + t, &r, &retry));
}

static void
test_mem_all_or_nothing(void **state)
{
	(void)state;
	rl_mem_clear();
	rate_t a = {2, 60}, b = {1, 60};
	rl_item_t it[2] = {{"la", &a, "k"}, {"lb", &b, "k"}};
	rl_result_t res;
	uint64_t now = 100 * S;
	rl_check_mem(it, 2, 1000, now, &res);
	assert_int_equal(res.denied, -1);
	/* lb is spent: refused, and la is not charged */
	rl_check_mem(it, 2, 1000, now, &res);
	assert_int_equal(res.denied, 1);
	assert_int_equal(res.retry_secs, 60);
	rl_check_mem(it, 1, 1000, now, &res); /* la alone: its second event still there */
	assert_int_equal(res.denied, -1);
	rl_check_mem(it, 1, 1000, now, &res);
	assert_int_equal(res.denied, 0);
	assert_int_equal(res.retry_secs, 30);
	/* different keys count apart */
	rl_item_t other = {"la", &a, "k2"};
	rl_check_mem(&other, 1, 1000, now, &res);
	assert_int_equal(res.denied, -1);
	rl_mem_clear();
}

static void
test_mem_cap(void **state)
{
	(void)state;
	rl_mem_clear();
	rate_t r = {1, 3600};
	rl_result_t res;
	char key[32];
	uint64_t now = 100 * S;
	for (unsigned i = 0; i < 500; i++) {
		(void)snprintf(key, sizeof key, "10.0.%u.%u", i / 256, i % 256);
		rl_item_t it = {"l", &r, key};
		rl_check_mem(&it, 1, 100, now, &res);
		assert_int_equal(res.denied, -1);
		assert_true(rl_mem_count() <= 100);
	}
	assert_int_equal(rl_mem_count(), 100);
	/* the most recent keys are held (refused again), the oldest were dropped (start afresh) */
	rl_item_t recent = {"l", &r, "10.0.1.243"}; /* i = 499 */
	rl_check_mem(&recent, 1, 100, now, &res);
	assert_int_equal(res.denied, 0);
	rl_item_t old = {"l", &r, "10.0.0.0"};
	rl_check_mem(&old, 1, 100, now, &res);
	assert_int_equal(res.denied, -1);
	/* pairs whose TAT has passed are dropped as new ones come */
	rl_check_mem(&old, 1, 100, now + 7200 * S, &res); /* old: refreshed, now the head */
	rl_item_t fresh = {"l", &r, "fresh"};
	rl_check_mem(&fresh, 1, 100, now + 7200 * S, &res);
	assert_int_equal(rl_mem_count(), 2);
	rl_mem_clear();
	assert_int_equal(rl_mem_count(), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_parse),
		cmocka_unit_test(test_gcra_table),
		cmocka_unit_test(test_gcra_steady),
		cmocka_unit_test(test_mem_all_or_nothing),
		cmocka_unit_test(test_mem_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
