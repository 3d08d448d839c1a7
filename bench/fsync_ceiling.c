/*
 * fsync_ceiling.c - the durable-queue ceiling of this disk: how many
 * messages per second can be made durable the way a queue must do it,
 * one at a time per thread, with nothing shared between messages.
 *
 * Per message: create a temporary file, write `size` bytes with one
 * write(2), fsync(2) it, close it, rename(2) it to its final name in the
 * same directory and fsync(2) that directory (so the name is durable
 * too). `threads` threads do this in parallel in one directory for
 * `seconds` seconds (or until `max` messages); every file is unlinked at
 * the end, outside the timing.
 *
 * Guarantees: every message counted has completed its directory fsync;
 * the directory is left as it was found (only our files are removed).
 * Must not: be used as a test (it only measures), follow symlinks out of
 * the directory (names are created with O_EXCL), run without a bound.
 *
 * Usage: fsync_ceiling DIR THREADS SIZE SECONDS [MAX]
 * Output (one line): "threads=T size=S messages=N seconds=X rate=R"
 * Built by bench/bench.py with: gcc -O2 -pthread -o ... fsync_ceiling.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *dir;
static int dirfd_;
static size_t size;
static double seconds;
static unsigned long max_msgs;
static char *payload;
static atomic_ulong done;
static atomic_int stop;
static atomic_int failed;
static struct timespec start;

static double
elapsed(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start.tv_sec) +
	    (double)(now.tv_nsec - start.tv_nsec) / 1e9;
}

static int
one_message(unsigned id, unsigned long seq)
{
	char tmp[64], fin[64];
	int fd;

	snprintf(tmp, sizeof(tmp), "tmp.%u.%lu", id, seq);
	snprintf(fin, sizeof(fin), "msg.%u.%lu", id, seq);
	fd = openat(dirfd_, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write(fd, payload, size) != (ssize_t)size || fsync(fd) != 0) {
		close(fd);
		return -1;
	}
	if (close(fd) != 0)
		return -1;
	if (renameat(dirfd_, tmp, dirfd_, fin) != 0)
		return -1;
	if (fsync(dirfd_) != 0)
		return -1;
	return 0;
}

static void *
worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	unsigned long seq = 0;

	while (!atomic_load(&stop)) {
		if (one_message(id, seq) != 0) {
			fprintf(stderr, "fsync_ceiling: message %u.%lu: %s\n", id, seq,
			    strerror(errno));
			atomic_store(&failed, 1);
			atomic_store(&stop, 1);
			break;
		}
		seq++;
		unsigned long n = atomic_fetch_add(&done, 1) + 1;
		if ((max_msgs && n >= max_msgs) || elapsed() >= seconds)
			atomic_store(&stop, 1);
	}
	return (void *)(uintptr_t)seq;
}

static void
cleanup(unsigned nthreads, const unsigned long *counts)
{
	char name[64];

	for (unsigned t = 0; t < nthreads; t++)
		for (unsigned long s = 0; s <= counts[t]; s++) {
			snprintf(name, sizeof(name), "msg.%u.%lu", t, s);
			unlinkat(dirfd_, name, 0);
			snprintf(name, sizeof(name), "tmp.%u.%lu", t, s);
			unlinkat(dirfd_, name, 0);
		}
}

int
main(int argc, char **argv)
{
	unsigned nthreads;
	pthread_t *tids;
	unsigned long *counts;
	double took;

	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: fsync_ceiling DIR THREADS SIZE SECONDS [MAX]\n");
		return 2;
	}
	dir = argv[1];
	nthreads = (unsigned)strtoul(argv[2], NULL, 10);
	size = strtoul(argv[3], NULL, 10);
	seconds = strtod(argv[4], NULL);
	max_msgs = argc == 6 ? strtoul(argv[5], NULL, 10) : 0;
	if (nthreads < 1 || nthreads > 1024 || size < 1 || size > (64u << 20) ||
	    !(seconds > 0 && seconds <= 3600)) {
		fprintf(stderr, "fsync_ceiling: bad arguments\n");
		return 2;
	}
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd_ < 0) {
		fprintf(stderr, "fsync_ceiling: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	payload = malloc(size);
	tids = calloc(nthreads, sizeof(*tids));
	counts = calloc(nthreads, sizeof(*counts));
	if (!payload || !tids || !counts)
		return 1;
	for (size_t i = 0; i < size; i++)
		payload[i] = (i % 78 == 77) ? '\n' : (char)('a' + i % 26);

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (unsigned t = 0; t < nthreads; t++)
		if (pthread_create(&tids[t], NULL, worker, (void *)(uintptr_t)t) != 0) {
			fprintf(stderr, "fsync_ceiling: pthread_create failed\n");
			atomic_store(&stop, 1);
			nthreads = t;
			atomic_store(&failed, 1);
			break;
		}
	for (unsigned t = 0; t < nthreads; t++) {
		void *ret;

		pthread_join(tids[t], &ret);
		counts[t] = (unsigned long)(uintptr_t)ret;
	}
	took = elapsed();
	cleanup(nthreads, counts);
	close(dirfd_);
	if (atomic_load(&failed))
		return 1;
	printf("threads=%u size=%zu messages=%lu seconds=%.3f rate=%.1f\n", nthreads,
	    size, atomic_load(&done), took, (double)atomic_load(&done) / took);
	free(payload);
	free(tids);
	free(counts);
	return 0;
}
