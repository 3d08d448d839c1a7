/*
 * metrics.h - counters, gauges and histograms with labels, rendered in
 * the Prometheus text exposition format 0.0.4 (the one `GET /metrics`
 * serves; docs/operations.md lists every family tern defines).
 *
 * A family is a static variable in the module that sees the event,
 * defined with METRIC_COUNTER / METRIC_GAUGE / METRIC_HISTOGRAM; it
 * registers itself before main() (a constructor), so every family is in
 * the output from the start, even before its first event. An update is
 * one line at the event site:
 *
 *     METRIC_COUNTER(m_cmds, "tern_smtp_commands_total", "SMTP commands received", "verb");
 *     ...
 *     metric_inc(&m_cmds, "EHLO");
 *
 * Guarantees:
 *   - bounded memory: a family holds at most `cap` series (default
 *     METRIC_CAP_DEFAULT). Once cap - 1 label sets exist, a new one is
 *     counted in the series whose every label value is "other" (that one
 *     is always allowed), so a flood of distinct values (domains,
 *     reasons) never grows the registry. Label values are cut at
 *     METRIC_VALUE_MAX octets; control octets (except LF, escaped on
 *     output) and malformed UTF-8 become '?'.
 *   - the output is valid exposition text: families sorted by name, one
 *     HELP and TYPE each, label values escaped (\\, \", \n), histogram
 *     buckets cumulative with le="+Inf" equal to _count.
 *   - an update costs a hash of the label values and a short chain walk
 *     (no allocation once the series exists); a family without labels
 *     costs a pointer check.
 * Must not: be updated or rendered from two threads at once. Every update
 * site in tern runs on the loop thread (work done on the thread pool is
 * counted in its after-work callback), so values are plain doubles, no
 * atomics. The number of label values given must match the family's
 * label names (checked: a mismatch aborts, it is a programming error).
 */
#ifndef TERN_METRICS_H
#define TERN_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

#define METRIC_MAX_LABELS 4
#define METRIC_VALUE_MAX 64      /* octets of one label value, beyond: cut */
#define METRIC_CAP_DEFAULT 100   /* series per family unless the definition says */

typedef enum metric_type { METRIC_T_COUNTER, METRIC_T_GAUGE, METRIC_T_HISTOGRAM } metric_type_t;

typedef struct metric_series metric_series_t;

typedef struct metric_family {
	/* the definition (the macros below fill it) */
	const char *name;
	const char *help;
	metric_type_t type;
	size_t cap;                   /* most series held; 0: METRIC_CAP_DEFAULT */
	const double *bounds;         /* histogram: upper bounds, increasing (no +Inf) */
	size_t nbounds;
	const char *labels[METRIC_MAX_LABELS + 1]; /* label names, NULL-terminated */
	/* the state (metrics.c) */
	struct metric_family *next;   /* the registry */
	size_t nlabels;
	size_t nseries;
	size_t folded;                /* updates folded into "other" (for tests and the docs) */
	metric_series_t **tab;        /* hash buckets, allocated at the first update */
	metric_series_t *first, *last; /* insertion order */
} metric_family_t;

#define METRIC_DEFINE_(var, type_, cap_, bounds_, nbounds_, name_, help_, ...)        \
	static metric_family_t var = {.name = (name_), .help = (help_), .type = (type_), \
	    .cap = (cap_), .bounds = (bounds_), .nbounds = (nbounds_),                   \
	    .labels = {__VA_ARGS__}};                                                    \
	__attribute__((constructor)) static void var##_register_(void)                   \
	{                                                                                \
		metrics_register(&var);                                                  \
	}

/* a family `static metric_family_t var`; the trailing arguments are the
 * label names (none, or up to METRIC_MAX_LABELS string literals) */
#define METRIC_COUNTER(var, name, help, ...) \
	METRIC_DEFINE_(var, METRIC_T_COUNTER, 0, NULL, 0, name, help, __VA_ARGS__)
#define METRIC_GAUGE(var, name, help, ...) \
	METRIC_DEFINE_(var, METRIC_T_GAUGE, 0, NULL, 0, name, help, __VA_ARGS__)
/* the same with a cap of its own */
#define METRIC_COUNTER_CAP(var, cap, name, help, ...) \
	METRIC_DEFINE_(var, METRIC_T_COUNTER, cap, NULL, 0, name, help, __VA_ARGS__)
#define METRIC_GAUGE_CAP(var, cap, name, help, ...) \
	METRIC_DEFINE_(var, METRIC_T_GAUGE, cap, NULL, 0, name, help, __VA_ARGS__)
/* bounds: a `static const double NAME[]` array of upper bounds */
#define METRIC_HISTOGRAM(var, bounds, name, help, ...)                                     \
	METRIC_DEFINE_(var, METRIC_T_HISTOGRAM, 0, bounds, sizeof(bounds) / sizeof((bounds)[0]), \
	    name, help, __VA_ARGS__)

/* common histogram bounds, in seconds */
extern const double metric_bounds_latency[12]; /* 1 ms .. 60 s: DNS, TLS, an SMTP dialogue */
extern const double metric_bounds_delay[12];   /* 0.1 s .. 5 days: arrival to delivery */

/* put f in the registry (the constructor of the macros does it; tests may
 * call it for a family of their own). Twice is harmless. */
void metrics_register(metric_family_t *f);

/* label values as an array and its length, from the macros' arguments */
#define METRIC_LV_(...)                                                   \
	((const char *const[]){"", ##__VA_ARGS__} + 1),                      \
	    (sizeof((const char *const[]){"", ##__VA_ARGS__}) / sizeof(const char *) - 1)

/* counter or gauge += v (a counter never goes down: v < 0 is ignored) */
#define metric_add(f, v, ...) metric_add_lv((f), (v), METRIC_LV_(__VA_ARGS__))
#define metric_inc(f, ...) metric_add_lv((f), 1.0, METRIC_LV_(__VA_ARGS__))
/* gauge = v */
#define metric_set(f, v, ...) metric_set_lv((f), (v), METRIC_LV_(__VA_ARGS__))
/* histogram: one observation of v */
#define metric_observe(f, v, ...) metric_observe_lv((f), (v), METRIC_LV_(__VA_ARGS__))

void metric_add_lv(metric_family_t *f, double v, const char *const *lv, size_t n);
void metric_set_lv(metric_family_t *f, double v, const char *const *lv, size_t n);
void metric_observe_lv(metric_family_t *f, double v, const char *const *lv, size_t n);

/* drop every series of f (a gauge recomputed at each scrape, such as the
 * queue by destination domain) */
void metric_clear(metric_family_t *f);
/* the value of a counter or gauge series (the count of a histogram's),
 * 0 when it does not exist; for tests */
double metric_value_lv(const metric_family_t *f, const char *const *lv, size_t n);
#define metric_value(f, ...) metric_value_lv((f), METRIC_LV_(__VA_ARGS__))

/*
 * Gauges whose value is read rather than counted (queue sizes, free
 * space, RSS) are set by a hook that runs at the start of each render.
 * At most 16 hooks; a hook is removed with its arg (at shutdown).
 */
typedef void (*metrics_hook_t)(void *arg);
void metrics_hook_add(metrics_hook_t fn, void *arg);
void metrics_hook_remove(metrics_hook_t fn, void *arg);

/* the whole registry, hooks run first, appended to out */
void metrics_render(buf_t *out);
/* one family (its HELP, TYPE and series), appended to out */
void metrics_render_family(const metric_family_t *f, buf_t *out);
/* the Content-Type of the output */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* the route GET /metrics on an HTTP listener (lib/httpd.h), behind its
 * token like every route that is not public: it renders the registry.
 * 0 or -1 (the route table is full). */
struct httpd;
int metrics_route(struct httpd *h);

/* process resident set size in bytes from /proc/self/statm, or -1 */
double metrics_process_rss(void);

#endif
