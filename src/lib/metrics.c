/*
 * metrics.c - the metrics registry and its exposition text (metrics.h).
 *
 * A series is one allocation: its links, its hash, its values (for a
 * histogram the per-bucket counts follow) and its key, the label values
 * joined by NUL octets. Each family has METRIC_BUCKETS_ hash chains,
 * allocated at its first update; with the caps in use (at most a few
 * hundred series) a chain stays short.
 * metrics_route serves the rendering as GET /metrics on lib/httpd.c.
 * Guarantees: see metrics.h; the format is Prometheus's text exposition
 * format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats).
 * Must not: allocate anywhere but xalloc (out of memory aborts there).
 */
#include "lib/metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/httpd.h"
#include "lib/utf8.h"
#include "lib/xalloc.h"

#define METRIC_BUCKETS_ 64

struct metric_series {
	metric_series_t *hnext;  /* hash chain */
	metric_series_t *next;   /* insertion order */
	uint32_t hash;
	size_t keylen;
	double value;            /* counter, gauge; histogram: the sum */
	uint64_t count;          /* histogram */
	uint64_t *bucket;        /* histogram: nbounds counts (not cumulative), inside this allocation */
	char *key;               /* label values, each NUL-terminated, inside this allocation */
};

const double metric_bounds_latency[12] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1, 5, 60};
const double metric_bounds_delay[12] = {0.1, 0.5, 1, 5, 30, 60, 300, 900, 3600, 14400, 86400,
    432000};

static metric_family_t *registry;

typedef struct hook {
	metrics_hook_t fn;
	void *arg;
} hook_t;
static hook_t hooks[16];
static size_t nhooks;

void
metrics_register(metric_family_t *f)
{
	for (metric_family_t *g = registry; g; g = g->next)
		if (g == f)
			return;
	f->nlabels = 0;
	while (f->nlabels < METRIC_MAX_LABELS && f->labels[f->nlabels])
		f->nlabels++;
	if (f->cap == 0)
		f->cap = METRIC_CAP_DEFAULT;
	f->next = registry;
	registry = f;
}

/* the most octets of a key: each value cut at METRIC_VALUE_MAX, plus its NUL */
#define KEY_MAX_ (METRIC_MAX_LABELS * (METRIC_VALUE_MAX + 1))

/* one label value, cleaned, appended to key[*len] with its NUL */
static void
key_add(char *key, size_t *len, const char *v)
{
	const unsigned char *s = (const unsigned char *)(v ? v : "");
	size_t n = strlen((const char *)s), start = *len;
	for (size_t i = 0; i < n && *len - start < METRIC_VALUE_MAX;) {
		if (s[i] >= 0x80) {
			size_t l = utf8_seq_len(s + i, n - i);
			if (l > 0 && *len - start + l > METRIC_VALUE_MAX)
				break; /* a whole character does not fit any more */
			if (l > 0) {
				memcpy(key + *len, s + i, l);
				*len += l;
				i += l;
				continue;
			}
			key[(*len)++] = '?';
		} else if ((s[i] < 0x20 && s[i] != '\n') || s[i] == 0x7f) {
			key[(*len)++] = '?';
		} else {
			key[(*len)++] = (char)s[i];
		}
		i++;
	}
	key[(*len)++] = '\0';
}

static uint32_t
hash_key(const char *k, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 16777619u;
	}
	return h;
}

static metric_series_t *
find(const metric_family_t *f, const char *k, size_t n, uint32_t h)
{
	if (!f->tab)
		return NULL;
	for (metric_series_t *s = f->tab[h % METRIC_BUCKETS_]; s; s = s->hnext)
		if (s->hash == h && s->keylen == n && memcmp(s->key, k, n) == 0)
			return s;
	return NULL;
}

static metric_series_t *
add(metric_family_t *f, const char *k, size_t n, uint32_t h)
{
	if (!f->tab)
		f->tab = xcalloc(METRIC_BUCKETS_, sizeof(metric_series_t *)); // NOLINT(bugprone-sizeof-expression): an array of pointers
	size_t nb = f->type == METRIC_T_HISTOGRAM ? f->nbounds : 0;
	size_t hdr = (sizeof(metric_series_t) + sizeof(uint64_t) - 1) / sizeof(uint64_t) * sizeof(uint64_t);
	char *mem = xcalloc(1, hdr + nb * sizeof(uint64_t) + n + 1);
	metric_series_t *s = (metric_series_t *)(void *)mem;
	s->bucket = (uint64_t *)(void *)(mem + hdr);
	s->key = mem + hdr + nb * sizeof(uint64_t);
	memcpy(s->key, k, n);
	s->keylen = n;
	s->hash = h;
	s->hnext = f->tab[h % METRIC_BUCKETS_];
	f->tab[h % METRIC_BUCKETS_] = s;
	if (f->last)
		f->last->next = s;
	else
		f->first = s;
	f->last = s;
	f->nseries++;
	return s;
}

/* the key of label values lv[0..n) into key[0..*len) */
static void
make_key(const metric_family_t *f, const char *const *lv, size_t n, char *key, size_t *len)
{
	if (n != f->nlabels) {
		fprintf(stderr, "metrics: %s takes %zu label values, given %zu\n", f->name, f->nlabels, n);
		abort();
	}
	*len = 0;
	for (size_t i = 0; i < n; i++)
		key_add(key, len, lv[i]);
}

/* the series of label values lv[0..n), created when the cap allows, else
 * the "other" series */
static metric_series_t *
series(metric_family_t *f, const char *const *lv, size_t n)
{
	if (f->nlabels == 0 && f->first)
		return f->first;
	char key[KEY_MAX_];
	size_t len;
	make_key(f, lv, n, key, &len);
	uint32_t h = hash_key(key, len);
	metric_series_t *s = find(f, key, len, h);
	if (s)
		return s;
	if (f->nseries + 1 < f->cap)
		return add(f, key, len, h);
	/* the cap: the "other" series, always allowed (the last slot) */
	f->folded++;
	len = 0;
	for (size_t i = 0; i < n; i++)
		key_add(key, &len, "other");
	h = hash_key(key, len);
	s = find(f, key, len, h);
	return s ? s : add(f, key, len, h);
}

void
metric_add_lv(metric_family_t *f, double v, const char *const *lv, size_t n)
{
	if (f->type == METRIC_T_COUNTER && !(v >= 0))
		return;
	series(f, lv, n)->value += v;
}

void
metric_set_lv(metric_family_t *f, double v, const char *const *lv, size_t n)
{
	series(f, lv, n)->value = v;
}

void
metric_observe_lv(metric_family_t *f, double v, const char *const *lv, size_t n)
{
	metric_series_t *s = series(f, lv, n);
	s->value += v;
	s->count++;
	for (size_t i = 0; i < f->nbounds; i++) {
		if (v <= f->bounds[i]) {
			s->bucket[i]++;
			break;
		}
	}
}

void
metric_clear(metric_family_t *f)
{
	metric_series_t *s = f->first;
	while (s) {
		metric_series_t *next = s->next;
		xfree(s);
		s = next;
	}
	f->first = f->last = NULL;
	f->nseries = 0;
	if (f->tab)
		memset(f->tab, 0, METRIC_BUCKETS_ * sizeof(metric_series_t *)); // NOLINT(bugprone-sizeof-expression): an array of pointers
}

double
metric_value_lv(const metric_family_t *f, const char *const *lv, size_t n)
{
	char key[KEY_MAX_];
	size_t len;
	make_key(f, lv, n, key, &len);
	const metric_series_t *s = find(f, key, len, hash_key(key, len));
	if (!s)
		return 0;
	return f->type == METRIC_T_HISTOGRAM ? (double)s->count : s->value;
}

void
metrics_hook_add(metrics_hook_t fn, void *arg)
{
	if (nhooks < sizeof hooks / sizeof hooks[0])
		hooks[nhooks++] = (hook_t){fn, arg};
}

void
metrics_hook_remove(metrics_hook_t fn, void *arg)
{
	for (size_t i = 0; i < nhooks; i++) {
		if (hooks[i].fn == fn && hooks[i].arg == arg) {
			memmove(&hooks[i], &hooks[i + 1], (nhooks - i - 1) * sizeof hooks[0]);
			nhooks--;
			return;
		}
	}
}

/* ---- the text format ---- */

/* a sample value or an le bound: integers without a fraction, others in
 * the shortest of %.15g / %.17g that reads back exactly */
static void
put_double(buf_t *out, double v)
{
	if (isnan(v)) {
		buf_puts(out, "NaN");
	} else if (isinf(v)) {
		buf_puts(out, v > 0 ? "+Inf" : "-Inf");
	} else if (v > -1e15 && v < 1e15 && (double)(long long)v == v) {
		buf_printf(out, "%.0f", v);
	} else {
		char tmp[40];
		snprintf(tmp, sizeof tmp, "%.15g", v);
		if (strtod(tmp, NULL) != v)
			snprintf(tmp, sizeof tmp, "%.17g", v);
		buf_puts(out, tmp);
	}
}

/* HELP text: \ and LF escaped; label values: " too */
static void
put_escaped(buf_t *out, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(out, "\\\\");
		else if (*s == '\n')
			buf_puts(out, "\\n");
		else if (*s == '"' && quote)
			buf_puts(out, "\\\"");
		else
			buf_putc(out, *s);
	}
}

/* NAME{l1="v1",...[,le="B"]} */
static void
put_name(buf_t *out, const metric_family_t *f, const char *suffix, const metric_series_t *s,
    const char *le)
{
	buf_puts(out, f->name);
	buf_puts(out, suffix);
	if (f->nlabels == 0 && !le)
		return;
	buf_putc(out, '{');
	const char *v = s->key;
	for (size_t i = 0; i < f->nlabels; i++) {
		buf_printf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
		put_escaped(out, v, true);
		buf_putc(out, '"');
		v += strlen(v) + 1;
	}
	if (le)
		buf_printf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
	buf_putc(out, '}');
}

void
metrics_render_family(const metric_family_t *f, buf_t *out)
{
	static const char *const tname[] = {"counter", "gauge", "histogram"};
	buf_printf(out, "# HELP %s ", f->name);
	put_escaped(out, f->help, false);
	buf_printf(out, "\n# TYPE %s %s\n", f->name, tname[f->type]);
	for (const metric_series_t *s = f->first; s; s = s->next) {
		if (f->type != METRIC_T_HISTOGRAM) {
			put_name(out, f, "", s, NULL);
			buf_putc(out, ' ');
			put_double(out, s->value);
			buf_putc(out, '\n');
			continue;
		}
		uint64_t cum = 0;
		for (size_t i = 0; i < f->nbounds; i++) {
			buf_t le = BUF_INIT;
			put_double(&le, f->bounds[i]);
			cum += s->bucket[i];
			put_name(out, f, "_bucket", s, buf_cstr(&le));
			buf_printf(out, " %llu\n", (unsigned long long)cum);
			buf_free(&le);
		}
		put_name(out, f, "_bucket", s, "+Inf");
		buf_printf(out, " %llu\n", (unsigned long long)s->count);
		put_name(out, f, "_sum", s, NULL);
		buf_putc(out, ' ');
		put_double(out, s->value);
		buf_putc(out, '\n');
		put_name(out, f, "_count", s, NULL);
		buf_printf(out, " %llu\n", (unsigned long long)s->count);
	}
}

static int
cmp_family(const void *a, const void *b)
{
	const metric_family_t *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

void
metrics_render(buf_t *out)
{
	for (size_t i = 0; i < nhooks; i++)
		hooks[i].fn(hooks[i].arg);
	size_t n = 0;
	for (const metric_family_t *f = registry; f; f = f->next)
		n++;
	metric_family_t **v = xcalloc(n ? n : 1, sizeof(metric_family_t *)); // NOLINT(bugprone-sizeof-expression): an array of pointers
	n = 0;
	for (metric_family_t *f = registry; f; f = f->next)
		v[n++] = f;
	qsort(v, n, sizeof(metric_family_t *), cmp_family); // NOLINT(bugprone-sizeof-expression): an array of pointers
	for (size_t i = 0; i < n; i++)
		metrics_render_family(v[i], out);
	xfree(v);
}

static int
http_get(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	metrics_render(body);
	*ctype = METRICS_CONTENT_TYPE;
	return 200;
}

int
metrics_route(struct httpd *h)
{
	return httpd_route(h, "GET", "/metrics", 0, http_get, NULL);
}

double
metrics_process_rss(void)
{
	FILE *fp = fopen("/proc/self/statm", "re");
	if (!fp)
		return -1;
	char line[128];
	bool ok = fgets(line, sizeof line, fp) != NULL;
	fclose(fp);
	if (!ok)
		return -1;
	char *end;
	(void)strtoull(line, &end, 10); /* size, then resident, in pages */
	unsigned long long rss = strtoull(end, &end, 10);
	if (rss == 0)
		return -1;
	return (double)rss * (double)sysconf(_SC_PAGESIZE);
}
