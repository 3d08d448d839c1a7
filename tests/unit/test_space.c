/*
 * test_space.c - unit tests for the spool free-space check
 * (src/queue/space.c, queue_space_ok).
 *
 * Covers: plenty of room says 0; a need or reserve larger than the file
 * system says ENOSPC (also at the saturating extremes, never a wrap-around);
 * the overhead is counted; a missing directory gives statvfs's errno; an
 * empty or NULL path is EINVAL. The boundary is checked with wide margins
 * (64 MiB) because other processes write to the same disk meanwhile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sys/statvfs.h>

#include "queue/space.h"

#define MARGIN (UINT64_C(64) << 20)

static uint64_t
avail_of(const char *dir)
{
	struct statvfs sv;

	assert_int_equal(statvfs(dir, &sv), 0);
	return (uint64_t)sv.f_bavail * (sv.f_frsize ? sv.f_frsize : sv.f_bsize);
}

static void
test_room(void **state)
{
	(void)state;
	assert_int_equal(queue_space_ok(".", 0, 0), 0);
	assert_int_equal(queue_space_ok(".", 1000, 0), 0);
}

static void
test_no_room(void **state)
{
	uint64_t avail = avail_of(".");
	static const struct {
		uint64_t need, reserve;
	} cases[] = {
		{UINT64_MAX, 0},
		{0, UINT64_MAX},
		{UINT64_MAX, UINT64_MAX},
		{UINT64_MAX - 1, 2},
		{UINT64_C(1) << 62, UINT64_C(1) << 62},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		errno = 0;
		assert_int_equal(queue_space_ok(".", cases[i].need, cases[i].reserve), -1);
		assert_int_equal(errno, ENOSPC);
	}
	/* more than there is, split between need and reserve */
	errno = 0;
	assert_int_equal(queue_space_ok(".", avail / 2 + MARGIN, avail / 2 + MARGIN), -1);
	assert_int_equal(errno, ENOSPC);
}

static void
test_boundary(void **state)
{
	uint64_t avail = avail_of(".");

	(void)state;
	if (avail < 4 * MARGIN)
		skip();
	/* well inside, counting the overhead */
	assert_int_equal(queue_space_ok(".", avail - QUEUE_SPACE_OVERHEAD - MARGIN, 0), 0);
	assert_int_equal(queue_space_ok(".", 0, avail - QUEUE_SPACE_OVERHEAD - MARGIN), 0);
	/* the overhead alone tips it over */
	errno = 0;
	assert_int_equal(queue_space_ok(".", avail + MARGIN - QUEUE_SPACE_OVERHEAD / 2, 0), -1);
	assert_int_equal(errno, ENOSPC);
}

static void
test_errors(void **state)
{
	(void)state;
	errno = 0;
	assert_int_equal(queue_space_ok("/nonexistent/tern/spool", 0, 0), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(queue_space_ok("", 0, 0), -1);
	assert_int_equal(errno, EINVAL);
	errno = 0;
	assert_int_equal(queue_space_ok(NULL, 0, 0), -1);
	assert_int_equal(errno, EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_room),
		cmocka_unit_test(test_no_room),
		cmocka_unit_test(test_boundary),
		cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
