/*
 * test_lru.c - the string-keyed LRU map (src/lib/lru.c): get/put/del,
 * values zeroed and aligned, the recency order (touch, oldest, newer),
 * growth past many bucket doublings checked against a shadow array,
 * eviction from the cold end as greylist.c and ratelimit.c do it, clear
 * (and reuse after it); and the clocks of src/lib/clock.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/clock.h"
#include "lib/lru.h"

typedef struct val {
	uint64_t a;
	char tag[13]; /* an odd size: the key after it must not overlap */
} val_t;

static void
test_basic(void **state)
{
	(void)state;
	lru_t m = LRU_INIT(sizeof(val_t));
	assert_null(lru_get(&m, "x"));
	assert_null(lru_oldest(&m));
	val_t *v = lru_put(&m, "alpha");
	assert_non_null(v);
	assert_int_equal((uintptr_t)v % _Alignof(max_align_t), 0);
	assert_int_equal(v->a, 0);
	assert_int_equal(v->tag[0], 0);
	v->a = 42;
	memset(v->tag, 'z', sizeof v->tag);
	assert_ptr_equal(lru_get(&m, "alpha"), v);
	assert_string_equal(lru_key(v), "alpha"); /* the value did not run over the key */
	assert_null(lru_get(&m, "alph"));
	assert_null(lru_get(&m, "alphab"));
	assert_null(lru_get(&m, ""));
	val_t *e = lru_put(&m, ""); /* the empty key is a key */
	assert_ptr_equal(lru_get(&m, ""), e);
	assert_int_equal(lru_count(&m), 2);
	lru_del(&m, v);
	assert_null(lru_get(&m, "alpha"));
	assert_int_equal(lru_count(&m), 1);
	lru_clear(&m);
	assert_int_equal(lru_count(&m), 0);
	assert_null(lru_get(&m, ""));
	/* usable after clear */
	v = lru_put(&m, "again");
	assert_ptr_equal(lru_get(&m, "again"), v);
	lru_clear(&m);
	lru_clear(&m); /* twice is harmless */
}

static void
test_order(void **state)
{
	(void)state;
	lru_t m = LRU_INIT(sizeof(int));
	const char *keys[] = {"a", "b", "c", "d"};
	for (int i = 0; i < 4; i++)
		*(int *)lru_put(&m, keys[i]) = i;
	/* oldest first: a b c d */
	int want1[] = {0, 1, 2, 3}, k = 0;
	for (int *v = lru_oldest(&m); v; v = lru_newer(v))
		assert_int_equal(*v, want1[k++]);
	assert_int_equal(k, 4);
	lru_touch(&m, lru_get(&m, "a")); /* b c d a */
	lru_touch(&m, lru_get(&m, "c")); /* b d a c */
	lru_touch(&m, lru_get(&m, "c")); /* the newest already: unchanged */
	int want2[] = {1, 3, 0, 2};
	k = 0;
	for (int *v = lru_oldest(&m); v; v = lru_newer(v))
		assert_int_equal(*v, want2[k++]);
	assert_int_equal(k, 4);
	/* evicting from the cold end, as the filters do at their cap */
	while (lru_count(&m) > 2)
		lru_del(&m, lru_oldest(&m));
	assert_null(lru_get(&m, "b"));
	assert_null(lru_get(&m, "d"));
	assert_int_equal(*(int *)lru_oldest(&m), 0);
	/* deleting the newest and the middle keeps the list whole */
	lru_del(&m, lru_get(&m, "c"));
	assert_ptr_equal(lru_oldest(&m), lru_get(&m, "a"));
	assert_null(lru_newer(lru_oldest(&m)));
	lru_del(&m, lru_get(&m, "a"));
	assert_null(lru_oldest(&m));
	assert_int_equal(lru_count(&m), 0);
	lru_clear(&m);
}

/* many keys through many doublings, against a shadow array, with
 * deletions spread through; every survivor found with its value */
static void
test_many(void **state)
{
	(void)state;
	enum { N = 20000 };
	lru_t m = LRU_INIT(sizeof(uint32_t));
	static char alive[N];
	char key[32];
	for (uint32_t i = 0; i < N; i++) {
		snprintf(key, sizeof key, "k%u", i);
		*(uint32_t *)lru_put(&m, key) = i;
		alive[i] = 1;
		if (i % 7 == 3) { /* delete an older one */
			uint32_t j = i / 2;
			snprintf(key, sizeof key, "k%u", j);
			uint32_t *v = lru_get(&m, key);
			if (alive[j]) {
				assert_non_null(v);
				lru_del(&m, v);
				alive[j] = 0;
			} else {
				assert_null(v);
			}
		}
	}
	size_t live = 0;
	for (uint32_t i = 0; i < N; i++) {
		snprintf(key, sizeof key, "k%u", i);
		uint32_t *v = lru_get(&m, key);
		if (alive[i]) {
			assert_non_null(v);
			assert_int_equal(*v, i);
			assert_string_equal(lru_key(v), key);
			live++;
		} else {
			assert_null(v);
		}
	}
	assert_int_equal(lru_count(&m), live);
	/* the order is insertion order: values rise from the oldest */
	uint32_t last = 0;
	size_t walked = 0;
	for (uint32_t *v = lru_oldest(&m); v; v = lru_newer(v)) {
		assert_true(walked == 0 || *v > last);
		last = *v;
		walked++;
	}
	assert_int_equal(walked, live);
	lru_clear(&m);
}

static void
test_clock(void **state)
{
	(void)state;
	uint64_t a = clock_mono_us();
	uint64_t b = clock_mono_us();
	assert_true(b >= a);
	int64_t w = clock_wall_us();
	assert_true(w > (int64_t)1700000000 * 1000000); /* after November 2023 */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_order),
		cmocka_unit_test(test_many),
		cmocka_unit_test(test_clock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
