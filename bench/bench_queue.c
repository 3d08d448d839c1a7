/*
 * bench_queue.c - commits per second of the durable queue on this disk.
 *
 * Keeps `conc` commits of `size`-byte messages in flight (a new one starts
 * when one completes) for `total` messages, every commit fully durable
 * (fdatasync, rename, group-committed directory fsync), and prints the
 * rate. Not a test; build and run by hand:
 *   cc -O2 -D_GNU_SOURCE -Isrc bench/bench_queue.c src/queue/queue.c \
 *     src/common/envelope.c src/common/qid.c src/lib/buf.c src/lib/fsutil.c \
 *     src/lib/log.c src/lib/xalloc.c -luv -lpthread -o /tmp/bq
 *   UV_THREADPOOL_SIZE=32 /tmp/bq /var/tmp/bq-spool 64 4096 5000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/envelope.h"
#include "common/qid.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

static queue_t *q;
static envelope_t *tmpl;
static char *content;
static size_t size, total, started, done, failed;

static void start_one(void);

static void
done_cb(void *arg, int err, envelope_t *env)
{
	(void)arg;
	done++;
	if (err)
		failed++;
	envelope_free(env);
	if (started < total)
		start_one();
}

static void
start_one(void)
{
	qid_new(tmpl->qid);
	qmsg_t *m = queue_begin(q, tmpl);
	queue_write(m, content, size);
	started++;
	queue_commit(m, done_cb, NULL);
}

int
main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: bench_queue spool concurrency size total\n");
		return 2;
	}
	const char *spool = argv[1];
	size_t conc = strtoul(argv[2], NULL, 10);
	size = strtoul(argv[3], NULL, 10);
	total = strtoul(argv[4], NULL, 10);
	uv_loop_t *loop = uv_default_loop();
	buf_t err = BUF_INIT;
	q = queue_open(loop, spool, &err);
	if (q == NULL) {
		fprintf(stderr, "%s\n", buf_cstr(&err));
		return 1;
	}
	tmpl = envelope_new();
	tmpl->sender = xstrdup("sender@example.org");
	tmpl->client_addr = xstrdup("192.0.2.1");
	envelope_add_rcpt(tmpl, "rcpt@example.com", NULL, NULL, 0);
	content = xmalloc(size);
	memset(content, 'x', size);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (size_t i = 0; i < conc && started < total; i++)
		start_one();
	uv_run(loop, UV_RUN_DEFAULT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%zu commits (%zu failed) of %zu bytes, %zu in flight: %.2f s, %.0f commits/s\n",
	    done, failed, size, conc, s, (double)done / s);
	queue_close(q);
	envelope_free(tmpl);
	xfree(content);
	return failed ? 1 : 0;
}
