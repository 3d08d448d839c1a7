/*
 * test_metrics.c - the metrics registry (src/lib/metrics.c): counters,
 * gauges and histograms rendered exactly as the exposition format 0.0.4
 * wants them, label values escaped and cleaned, the cardinality cap (a
 * flood of distinct values folds into "other" and the series count stays
 * at the cap), hooks; and the whole registry of the daemon (every family
 * tern defines, with a few series) checked by Prometheus's own parser and
 * linter, `promtool check metrics` (Debian's prometheus package).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/metrics.h"

METRIC_COUNTER(t_plain, "tern_test_plain_total", "A counter without labels");
METRIC_COUNTER(t_cmds, "tern_test_commands_total", "Commands\\by verb\nsecond line", "verb",
    "state");
METRIC_GAUGE(t_open, "tern_test_open", "Open things");
METRIC_COUNTER_CAP(t_cap, 5, "tern_test_capped_total", "A capped counter", "domain");
static const double t_bounds[] = {0.125, 1, 2.5};
METRIC_HISTOGRAM(t_lat, t_bounds, "tern_test_latency_seconds", "Latency", "kind");

static void
render(const metric_family_t *f, buf_t *out)
{
	buf_reset(out);
	metrics_render_family(f, out);
}

static void
test_counter(void **state)
{
	(void)state;
	buf_t b = BUF_INIT;
	render(&t_plain, &b);
	assert_string_equal(buf_cstr(&b),
	    "# HELP tern_test_plain_total A counter without labels\n"
	    "# TYPE tern_test_plain_total counter\n");
	metric_inc(&t_plain);
	metric_add(&t_plain, 2.5);
	metric_add(&t_plain, -7); /* a counter never goes down */
	render(&t_plain, &b);
	assert_string_equal(buf_cstr(&b),
	    "# HELP tern_test_plain_total A counter without labels\n"
	    "# TYPE tern_test_plain_total counter\n"
	    "tern_test_plain_total 3.5\n");
	assert_true(metric_value(&t_plain) == 3.5);

	metric_inc(&t_cmds, "EHLO", "a");
	metric_inc(&t_cmds, "MAIL", "b");
	metric_inc(&t_cmds, "EHLO", "a");
	assert_true(metric_value(&t_cmds, "EHLO", "a") == 2);
	assert_true(metric_value(&t_cmds, "EHLO", "b") == 0);
	render(&t_cmds, &b);
	assert_string_equal(buf_cstr(&b),
	    "# HELP tern_test_commands_total Commands\\\\by verb\\nsecond line\n"
	    "# TYPE tern_test_commands_total counter\n"
	    "tern_test_commands_total{verb=\"EHLO\",state=\"a\"} 2\n"
	    "tern_test_commands_total{verb=\"MAIL\",state=\"b\"} 1\n");
	buf_free(&b);
}

static void
test_escaping(void **state)
{
	(void)state;
	buf_t b = BUF_INIT;
	metric_clear(&t_cmds);
	metric_inc(&t_cmds, "a\"b\\c\nd", "e\rf\x01g\x7f");
	metric_inc(&t_cmds, "caf\xc3\xa9", "bad\xc3(\xff");
	metric_inc(&t_cmds, NULL, "");
	render(&t_cmds, &b);
	assert_non_null(strstr(buf_cstr(&b),
	    "tern_test_commands_total{verb=\"a\\\"b\\\\c\\nd\",state=\"e?f?g?\"} 1\n"));
	assert_non_null(strstr(buf_cstr(&b),
	    "tern_test_commands_total{verb=\"caf\xc3\xa9\",state=\"bad?(?\"} 1\n"));
	assert_non_null(strstr(buf_cstr(&b), "tern_test_commands_total{verb=\"\",state=\"\"} 1\n"));
	/* long values are cut at METRIC_VALUE_MAX, never inside a character */
	char longv[200];
	memset(longv, 'x', sizeof longv);
	longv[sizeof longv - 1] = '\0';
	metric_inc(&t_cmds, longv, "s");
	char cut[METRIC_VALUE_MAX + 1];
	memset(cut, 'x', METRIC_VALUE_MAX);
	cut[METRIC_VALUE_MAX] = '\0';
	assert_true(metric_value(&t_cmds, cut, "s") == 1);
	char utf[200] = "x";
	for (int i = 0; i < 60; i++)
		strcat(utf, "\xc3\xa9"); /* 1 + 120 octets: cut after 31 characters */
	metric_inc(&t_cmds, utf, "u");
	render(&t_cmds, &b);
	const char *p = strstr(buf_cstr(&b), "verb=\"x\xc3\xa9");
	assert_non_null(p);
	const char *q = strchr(p + 6, '"');
	assert_int_equal(q - (p + 6), 63);
	metric_clear(&t_cmds);
	buf_free(&b);
}

static void
test_gauge_hist(void **state)
{
	(void)state;
	buf_t b = BUF_INIT;
	metric_add(&t_open, 1);
	metric_add(&t_open, 1);
	metric_add(&t_open, -1);
	assert_true(metric_value(&t_open) == 1);
	metric_set(&t_open, 42);
	render(&t_open, &b);
	assert_string_equal(buf_cstr(&b),
	    "# HELP tern_test_open Open things\n# TYPE tern_test_open gauge\ntern_test_open 42\n");
	metric_observe(&t_lat, 0.0625, "dns");
	metric_observe(&t_lat, 0.125, "dns"); /* on the bound: in that bucket (le) */
	metric_observe(&t_lat, 2, "dns");
	metric_observe(&t_lat, 100, "dns");
	metric_observe(&t_lat, 0.5, "tls");
	render(&t_lat, &b);
	assert_string_equal(buf_cstr(&b),
	    "# HELP tern_test_latency_seconds Latency\n"
	    "# TYPE tern_test_latency_seconds histogram\n"
	    "tern_test_latency_seconds_bucket{kind=\"dns\",le=\"0.125\"} 2\n"
	    "tern_test_latency_seconds_bucket{kind=\"dns\",le=\"1\"} 2\n"
	    "tern_test_latency_seconds_bucket{kind=\"dns\",le=\"2.5\"} 3\n"
	    "tern_test_latency_seconds_bucket{kind=\"dns\",le=\"+Inf\"} 4\n"
	    "tern_test_latency_seconds_sum{kind=\"dns\"} 102.1875\n"
	    "tern_test_latency_seconds_count{kind=\"dns\"} 4\n"
	    "tern_test_latency_seconds_bucket{kind=\"tls\",le=\"0.125\"} 0\n"
	    "tern_test_latency_seconds_bucket{kind=\"tls\",le=\"1\"} 1\n"
	    "tern_test_latency_seconds_bucket{kind=\"tls\",le=\"2.5\"} 1\n"
	    "tern_test_latency_seconds_bucket{kind=\"tls\",le=\"+Inf\"} 1\n"
	    "tern_test_latency_seconds_sum{kind=\"tls\"} 0.5\n"
	    "tern_test_latency_seconds_count{kind=\"tls\"} 1\n");
	assert_true(metric_value(&t_lat, "dns") == 4);
	buf_free(&b);
}

static void
test_cap(void **state)
{
	(void)state;
	char d[32];
	for (int i = 0; i < 10000; i++) {
		snprintf(d, sizeof d, "d%d.example", i);
		metric_inc(&t_cap, d);
	}
	metric_inc(&t_cap, "d0.example"); /* an existing series still counts */
	assert_int_equal(t_cap.nseries, 5);
	assert_true(metric_value(&t_cap, "d0.example") == 2);
	assert_true(metric_value(&t_cap, "d3.example") == 1);
	assert_true(metric_value(&t_cap, "d4.example") == 0);
	assert_true(metric_value(&t_cap, "other") == 10000 - 4);
	assert_int_equal(t_cap.folded, 10000 - 4);
	buf_t b = BUF_INIT;
	render(&t_cap, &b);
	size_t lines = 0;
	for (const char *p = buf_cstr(&b); *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 2 + 5);
	assert_non_null(strstr(buf_cstr(&b), "tern_test_capped_total{domain=\"other\"} 9996\n"));
	/* a cleared family (a gauge recomputed per scrape) starts again */
	metric_clear(&t_cap);
	assert_int_equal(t_cap.nseries, 0);
	metric_inc(&t_cap, "new.example");
	assert_true(metric_value(&t_cap, "new.example") == 1);
	assert_true(metric_value(&t_cap, "other") == 0);
	buf_free(&b);
}

static int hook_calls;
static void
hook(void *arg)
{
	hook_calls++;
	metric_set(&t_open, *(double *)arg);
}

/* every family of the daemon, with the test's, through promtool */
static void
test_promtool(void **state)
{
	(void)state;
	double v = 7;
	metrics_hook_add(hook, &v);
	metric_inc(&t_cmds, "we\"ird\\", "x\ny");
	buf_t b = BUF_INIT;
	metrics_render(&b);
	assert_int_equal(hook_calls, 1);
	assert_non_null(strstr(buf_cstr(&b), "tern_test_open 7\n"));
	metrics_hook_remove(hook, &v);
	buf_reset(&b);
	metrics_render(&b);
	assert_int_equal(hook_calls, 1);
	/* families sorted by name, each once */
	assert_true(strstr(buf_cstr(&b), "# TYPE tern_test_capped_total") <
	    strstr(buf_cstr(&b), "# TYPE tern_test_commands_total"));
	const char *path = getenv("METRICS_OUT") ? getenv("METRICS_OUT") : "build/tests/metrics.txt";
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(b.data, 1, b.len, fp), b.len);
	assert_int_equal(fclose(fp), 0);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' 2>&1", path);
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "promtool check metrics %s: status %d\n", path, rc);
	assert_int_equal(rc, 0);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counter),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_gauge_hist),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_promtool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
