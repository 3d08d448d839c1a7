/*
 * bench_content.c - what body_checks cost per message: one table of rules
 * (src/filter/content.c, as tern loads it) run over the decoded lines of a
 * 4 KB text message like smtp-source's (70-octet lines), many times, in
 * one process, so that the figure does not depend on the rest of tern or
 * on the load of the machine as much as `make bench` does.
 *
 * Guarantees: nothing but CPU time is used; prints microseconds per
 * message and the lines per message, with every rule tried on every line
 * and as filter.c does it (content_table_sieve first).
 * Must not: be a test (it only measures).
 * Build and run (the rules of `make bench`'s checks workload):
 *   make build/tern
 *   cc -O2 -D_GNU_SOURCE -Isrc bench/bench_content.c build/obj/src/filter/content.o \
 *     build/obj/src/lib/[a-z]*.o -lpcre2-8 -luv -lunbound -lssl -lcrypto -lseccomp -lpthread \
 *     -o build/bench/bench_content
 *   python3 -c 'import sys; sys.path.insert(0, "bench"); import bench; \
 *     print("\n".join(bench.BODY_RULES))' > /tmp/body_checks
 *   build/bench/bench_content /tmp/body_checks [MESSAGES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "filter/content.h"

static content_table_t *table;
static unsigned long lines, hits;
static const bool *skip; /* the sieve's verdict for this message, or NULL */

static void
body_line(void *arg, const char *p, size_t n)
{
	(void)arg;
	content_rule_ref_t r;
	bool limited = false;
	lines++;
	hits += (unsigned long)content_table_match_skip(table, skip, p, n, &r, &limited);
}

static void
no_header(void *arg, const char *p, size_t n)
{
	(void)arg;
	(void)p;
	(void)n;
}

static void
collect(void *arg, const char *p, size_t n)
{
	buf_append(arg, p, n);
	buf_putc(arg, '\n');
}

static bool
never_stop(void *arg)
{
	(void)arg;
	return false;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_content RULES_FILE [MESSAGES]\n");
		return 2;
	}
	int n = argc > 2 ? atoi(argv[2]) : 5000;
	buf_t err = BUF_INIT;
	table = content_table_load(argv[1], &err);
	if (table == NULL) {
		fprintf(stderr, "%s", buf_cstr(&err));
		return 1;
	}
	buf_t body = BUF_INIT;
	for (int i = 0; body.len < 4096; i++)
		buf_printf(&body, "La de da de da %d. La de da de da de da de da de da de da de da de da.\r\n", i);
	content_walk_cb_t cb = {no_header, body_line, never_stop};
	content_walk_cb_t ccb = {no_header, collect, never_stop};
	/* each line against each rule, then as filter.c does it: the sieve
	 * first (one walk to join the lines, one match per rule), then the
	 * lines against the rules the sieve kept */
	for (int mode = 0; mode < 2; mode++) {
		struct timespec a, b;
		lines = hits = 0;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (int i = 0; i < n; i++) {
			bool *sk = NULL;
			if (mode == 1) {
				buf_t all = BUF_INIT;
				content_walk(body.data, body.len, NULL, NULL, &ccb, &all);
				sk = content_table_sieve(table, all.data ? all.data : "", all.len);
				buf_free(&all);
			}
			skip = sk;
			content_walk(body.data, body.len, NULL, NULL, &cb, NULL);
			skip = NULL;
			free(sk);
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		double us = ((double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3) / n;
		printf("%s rules=%zu us_per_message=%.1f lines_per_message=%lu matches=%lu\n",
		    mode ? "sieve" : "each-line", content_table_size(table), us,
		    lines / (unsigned long)n, hits);
	}
	content_table_free(table);
	buf_free(&body);
	return 0;
}
