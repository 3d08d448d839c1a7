/*
 * space.c - PERSIST: free-space check for the spool (queue_space_ok in
 * space.h).
 *
 * What it does: statvfs(2) on the spool directory; compares the blocks and
 * inodes available to unprivileged users with what one more message needs
 * plus a configured reserve.
 * What it guarantees: no writes, no allocation, no state; safe from any
 * thread. Overflow-free arithmetic (sums and products saturate).
 * What it must not do: decide anything about a message already received:
 * a commit that fails for lack of space still answers 4xx on its own
 * (queue.c), never 250. This is only the early "452 4.3.1" (RFC 3463
 * X.3.1 "mail system full"; RFC 1870 §6.1 for a declared SIZE).
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>

#include "queue/space.h"

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t
sat_mul(uint64_t a, uint64_t b)
{
	if (a != 0 && b > UINT64_MAX / a)
		return UINT64_MAX;
	return a * b;
}

int
queue_space_avail(const char *spool_dir, uint64_t *bytes, uint64_t *inodes)
{
	struct statvfs sv;
	if (spool_dir == NULL || *spool_dir == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (statvfs(spool_dir, &sv) < 0)
		return -1;
	*bytes = sat_mul((uint64_t)sv.f_bavail, sv.f_frsize ? (uint64_t)sv.f_frsize : (uint64_t)sv.f_bsize);
	*inodes = sv.f_files != 0 ? (uint64_t)sv.f_favail : UINT64_MAX;
	return 0;
}

int
queue_space_ok(const char *spool_dir, uint64_t need, uint64_t reserve)
{
	struct statvfs sv;
	uint64_t avail, want, unit;

	if (spool_dir == NULL || *spool_dir == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (statvfs(spool_dir, &sv) < 0)
		return -1;
	/* f_frsize is the unit of f_bavail; some old file systems leave it 0 */
	unit = sv.f_frsize ? (uint64_t)sv.f_frsize : (uint64_t)sv.f_bsize;
	avail = sat_mul((uint64_t)sv.f_bavail, unit);
	want = sat_add(sat_add(need, QUEUE_SPACE_OVERHEAD), reserve);
	if (avail < want) {
		errno = ENOSPC;
		return -1;
	}
	/* f_files == 0: the file system does not count inodes (btrfs, some
	 * network file systems); then only the blocks matter */
	if (sv.f_files != 0 && (uint64_t)sv.f_favail <= QUEUE_SPACE_MIN_INODES) {
		errno = ENOSPC;
		return -1;
	}
	return 0;
}
