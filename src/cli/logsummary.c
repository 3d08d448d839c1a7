/*
 * logsummary.c (cli) - `tern log-summary` (see logsummary.h).
 *
 * Each line: find the day and the text after "tern[PID]: " (or, for a JSON
 * line, its "ts" and "msg"), split the text with logline_parse(), count.
 * Tables are open-addressing hashes of strings with up to three counters,
 * capped: a key that would exceed the cap adds to the table's "others".
 */
#include "cli/logsummary.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/logline.h"
#include "lib/xalloc.h"

typedef struct {
	char *key;
	uint64_t c[3];
} ent_t;

typedef struct {
	ent_t *e;
	size_t cap, n, max;
	uint64_t others[3];
} tab_t;

enum { T_RCPT, T_SDOM, T_SENDER, T_REJECT, NTABS };

typedef struct {
	char date[11];
	uint64_t received, bytes, dsn, sent, deferred, bounced, rejected, connections;
	tab_t t[NTABS];
} day_t;

struct logsum {
	char only[11]; /* "" for every day */
	size_t max_keys;
	day_t *days;
	size_t ndays;
	uint64_t lines, skipped;
	int this_year, this_mon; /* for syslog's yearless dates */
};

static uint64_t
hash(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

static void
tab_grow(tab_t *t)
{
	size_t ncap = t->cap ? t->cap * 2 : 64;
	ent_t *ne = xcalloc(ncap, sizeof *ne);
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->e[i].key)
			continue;
		size_t j = hash(t->e[i].key, strlen(t->e[i].key)) & (ncap - 1);
		while (ne[j].key)
			j = (j + 1) & (ncap - 1);
		ne[j] = t->e[i];
	}
	xfree(t->e);
	t->e = ne;
	t->cap = ncap;
}

/* add to counter which of key p[0..n) (lowercased by the caller if wanted) */
static void
tab_add(tab_t *t, const char *p, size_t n, int which, uint64_t v)
{
	if (t->cap == 0 || (t->n + 1) * 4 > t->cap * 3)
		tab_grow(t);
	size_t j = hash(p, n) & (t->cap - 1);
	while (t->e[j].key) {
		if (strlen(t->e[j].key) == n && memcmp(t->e[j].key, p, n) == 0) {
			t->e[j].c[which] += v;
			return;
		}
		j = (j + 1) & (t->cap - 1);
	}
	if (t->n >= t->max) {
		t->others[which] += v;
		return;
	}
	t->e[j].key = xstrndup(p, n);
	t->e[j].c[which] = v;
	t->n++;
}

static void
tab_free(tab_t *t)
{
	for (size_t i = 0; i < t->cap; i++)
		xfree(t->e[i].key);
	xfree(t->e);
}

logsum_t *
logsum_new(const char *day, size_t max_keys)
{
	logsum_t *s = xcalloc(1, sizeof *s);
	if (day)
		snprintf(s->only, sizeof s->only, "%s", day);
	s->max_keys = max_keys ? max_keys : LOGSUM_MAX_KEYS;
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	s->this_year = tm.tm_year + 1900;
	s->this_mon = tm.tm_mon;
	return s;
}

void
logsum_free(logsum_t *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ndays; i++)
		for (int k = 0; k < NTABS; k++)
			tab_free(&s->days[i].t[k]);
	xfree(s->days);
	xfree(s);
}

static day_t *
get_day(logsum_t *s, const char *date)
{
	if (s->only[0] && memcmp(s->only, date, 10) != 0)
		return NULL;
	for (size_t i = s->ndays; i-- > 0;) /* the last one, mostly */
		if (memcmp(s->days[i].date, date, 10) == 0)
			return &s->days[i];
	if (s->ndays >= LOGSUM_MAX_DAYS)
		return NULL;
	s->days = xrealloc(s->days, (s->ndays + 1) * sizeof *s->days);
	day_t *d = &s->days[s->ndays++];
	memset(d, 0, sizeof *d);
	memcpy(d->date, date, 10);
	for (int k = 0; k < NTABS; k++)
		d->t[k].max = s->max_keys;
	return d;
}

/* the domain of an address (lowercased into buf), "<>" for the null one */
static size_t
domain_of(const char *a, size_t n, char *buf, size_t bufsz)
{
	if (n == 0) {
		buf[0] = '<';
		buf[1] = '>';
		return 2;
	}
	const char *at = NULL;
	for (size_t i = n; i-- > 0;)
		if (a[i] == '@') {
			at = a + i + 1;
			break;
		}
	if (!at)
		return (size_t)snprintf(buf, bufsz, "%s", "(local)");
	size_t l = (size_t)(a + n - at);
	if (l > bufsz)
		l = bufsz;
	for (size_t i = 0; i < l; i++)
		buf[i] = (at[i] >= 'A' && at[i] <= 'Z') ? (char)(at[i] + 32) : at[i];
	return l;
}

static int
is_month(const char *p, int *mon)
{
	static const char *m = "JanFebMarAprMayJunJulAugSepOctNovDec";
	for (int i = 0; i < 12; i++)
		if (memcmp(p, m + 3 * i, 3) == 0) {
			*mon = i;
			return 1;
		}
	return 0;
}

/* count the text of one line of day d */
static void
count(logsum_t *s, day_t *d, const char *body, size_t n)
{
	logline_t l;
	logline_parse(body, n, &l);
	const char *v;
	size_t vn;
	char dom[256];
	if (l.event.n == 8 && memcmp(l.event.p, "accepted", 8) == 0 && l.id.n == 16) {
		const char *proto = logline_get(&l, "proto", &vn);
		if (proto && vn == 3 && memcmp(proto, "DSN", 3) == 0) {
			d->dsn++;
			return;
		}
		d->received++;
		if ((v = logline_get(&l, "size", &vn)) != NULL)
			d->bytes += strtoull(v, NULL, 10);
		if ((v = logline_get(&l, "from", &vn)) != NULL) {
			size_t dl = domain_of(v, vn, dom, sizeof dom);
			tab_add(&d->t[T_SDOM], dom, dl, 0, 1);
			tab_add(&d->t[T_SENDER], vn ? v : "<>", vn ? vn : 2, 0, 1);
		}
		return;
	}
	const char *st = logline_get(&l, "status", &vn);
	const char *to;
	size_t tn;
	if (st && l.event.n == 0 && (to = logline_get(&l, "to", &tn)) != NULL) {
		int which;
		if (vn == 4 && memcmp(st, "sent", 4) == 0) {
			which = 0;
			d->sent++;
		} else if (vn == 8 && memcmp(st, "deferred", 8) == 0) {
			which = 1;
			d->deferred++;
		} else if (vn == 7 && memcmp(st, "bounced", 7) == 0) {
			which = 2;
			d->bounced++;
		} else {
			return;
		}
		size_t dl = domain_of(to, tn, dom, sizeof dom);
		tab_add(&d->t[T_RCPT], dom, dl, which, 1);
		return;
	}
	if (l.event.n == 6 && memcmp(l.event.p, "reject", 6) == 0) {
		d->rejected++;
		if ((v = logline_get(&l, "reply", &vn)) != NULL) {
			/* the reason without the addresses in it: "<...>" -> "<>" */
			char r[512];
			size_t o = 0;
			for (size_t i = 0; i < vn && o < sizeof r; i++) {
				r[o++] = v[i];
				if (v[i] == '<') {
					while (i + 1 < vn && v[i + 1] != '>')
						i++;
				}
			}
			tab_add(&d->t[T_REJECT], r, o, 0, 1);
		}
		return;
	}
	if (l.event.n == 7 && memcmp(l.event.p, "connect", 7) == 0)
		d->connections++;
	(void)s;
}

void
logsum_line(logsum_t *s, const char *line, size_t n)
{
	s->lines++;
	char date[11];
	const char *body = NULL;
	size_t bn = 0;
	json_t *j = NULL;
	if (n && line[0] == '{') {
		j = json_loadb(line, n, 0, NULL);
		json_t *ts = j ? json_object_get(j, "ts") : NULL;
		json_t *msg = j ? json_object_get(j, "msg") : NULL;
		if (!json_is_string(ts) || !json_is_string(msg) || json_string_length(ts) < 10) {
			s->skipped++;
			json_decref(j);
			return;
		}
		memcpy(date, json_string_value(ts), 10);
		body = json_string_value(msg);
		bn = json_string_length(msg);
	} else {
		/* "2026-12-08T00:11:04.098Z tern[3477]: ..." or
		 * "Dec  8 00:11:04 host tern[3477]: ..." */
		int mon;
		if (n > 24 && line[4] == '-' && line[7] == '-' && line[10] == 'T') {
			memcpy(date, line, 10);
		} else if (n > 16 && is_month(line, &mon) && line[3] == ' ') {
			unsigned dd = (unsigned)strtoul(line + 4, NULL, 10) % 100;
			unsigned y = (unsigned)(s->this_year - (mon > s->this_mon ? 1 : 0)) % 10000;
			char tmp[32];
			snprintf(tmp, sizeof tmp, "%04u-%02u-%02u", y, (unsigned)mon + 1, dd);
			memcpy(date, tmp, 10);
		} else {
			s->skipped++;
			return;
		}
		const char *t = memmem(line, n, "tern[", 5);
		const char *e = t ? memmem(t, (size_t)(line + n - t), "]: ", 3) : NULL;
		if (!e) {
			s->skipped++;
			return;
		}
		body = e + 3;
		bn = (size_t)(line + n - body);
	}
	day_t *d = get_day(s, date);
	if (d)
		count(s, d, body, bn);
	json_decref(j);
}

static int sort_which; /* by_count()'s column: qsort has no argument */

static int
by_count(const void *a, const void *b)
{
	const ent_t *x = *(const ent_t *const *)a, *y = *(const ent_t *const *)b;
	uint64_t cx = x->c[0] + x->c[1] + x->c[2], cy = y->c[0] + y->c[1] + y->c[2];
	if (sort_which >= 0) {
		cx = x->c[sort_which];
		cy = y->c[sort_which];
	}
	if (cx != cy)
		return cx > cy ? -1 : 1;
	return strcmp(x->key, y->key);
}

/* the top n entries of t (which: one counter, -1: their sum) */
static void
print_tab(FILE *out, const tab_t *t, size_t top, int ncols, int which, const char *title,
    const char *cols)
{
	fprintf(out, "\n%-44s %s\n", title, cols);
	ent_t **v = xcalloc(t->n + 1, sizeof(ent_t *));
	size_t k = 0;
	for (size_t i = 0; i < t->cap; i++)
		if (t->e[i].key)
			v[k++] = &t->e[i];
	sort_which = which;
	qsort(v, k, sizeof(ent_t *), by_count);
	uint64_t rest[3] = {t->others[0], t->others[1], t->others[2]};
	for (size_t i = 0; i < k; i++) {
		if (i < top) {
			fprintf(out, "  %-42.200s", v[i]->key);
			for (int c = 0; c < ncols; c++)
				fprintf(out, " %9llu", (unsigned long long)v[i]->c[c]);
			fputc('\n', out);
		} else {
			for (int c = 0; c < 3; c++)
				rest[c] += v[i]->c[c];
		}
	}
	if (k == 0 && !rest[0] && !rest[1] && !rest[2])
		fprintf(out, "  (none)\n");
	if (rest[0] || rest[1] || rest[2]) {
		fprintf(out, "  %-42s", "(others)");
		for (int c = 0; c < ncols; c++)
			fprintf(out, " %9llu", (unsigned long long)rest[c]);
		fputc('\n', out);
	}
	xfree(v);
}

static int
by_date(const void *a, const void *b)
{
	return memcmp(((const day_t *)a)->date, ((const day_t *)b)->date, 10);
}

void
logsum_print(const logsum_t *s, FILE *out, size_t top)
{
	day_t *days = xcalloc(s->ndays + 1, sizeof *days);
	if (s->ndays)
		memcpy(days, s->days, s->ndays * sizeof *days);
	qsort(days, s->ndays, sizeof *days, by_date);
	if (s->ndays == 0)
		fprintf(out, "no tern log lines%s%s\n", s->only[0] ? " for " : "", s->only);
	for (size_t i = 0; i < s->ndays; i++) {
		const day_t *d = &days[i];
		if (i)
			fputc('\n', out);
		fprintf(out, "tern log summary for %s\n", d->date);
		fprintf(out, "  received    %9llu  (%llu bytes)\n", (unsigned long long)d->received,
		    (unsigned long long)d->bytes);
		fprintf(out, "  delivered   %9llu  (recipients)\n", (unsigned long long)d->sent);
		fprintf(out, "  deferred    %9llu  (deferrals)\n", (unsigned long long)d->deferred);
		fprintf(out, "  bounced     %9llu  (recipients)\n", (unsigned long long)d->bounced);
		fprintf(out, "  rejected    %9llu  (commands refused)\n", (unsigned long long)d->rejected);
		fprintf(out, "  dsn         %9llu  (notifications tern sent)\n", (unsigned long long)d->dsn);
		fprintf(out, "  connections %9llu\n", (unsigned long long)d->connections);
		print_tab(out, &d->t[T_RCPT], top, 3, -1, "Recipient domains",
		    "delivered  deferred   bounced");
		print_tab(out, &d->t[T_SDOM], top, 1, 0, "Sender domains", " received");
		print_tab(out, &d->t[T_SENDER], top, 1, 0, "Top senders", " messages");
		print_tab(out, &d->t[T_REJECT], top, 1, 0, "Top rejection reasons", "    times");
	}
	if (s->skipped)
		fprintf(out, "\n(%llu of %llu lines were not tern log lines)\n",
		    (unsigned long long)s->skipped, (unsigned long long)s->lines);
	xfree(days);
}

static int
feed(logsum_t *s, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		logsum_line(s, line, (size_t)n);
	}
	free(line);
	return ferror(f) ? -1 : 0;
}

static void
usage(FILE *to)
{
	fprintf(to, "usage: tern log-summary [--day YYYY-MM-DD] [--top N] [FILE...]\n"
	    "A daily summary of tern's log (text or JSON lines; stdin without FILE): messages\n"
	    "received, delivered, deferred, bounced, rejected; recipient and sender domains; top\n"
	    "senders and rejection reasons (docs/operations.md).\n");
}

int
cli_log_summary(int argc, char **argv)
{
	static const struct option opts[] = {
		{"day", required_argument, NULL, 'd'},
		{"top", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *day = NULL;
	long top = 10;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			day = optarg;
			if (strlen(day) != 10 || day[4] != '-' || day[7] != '-') {
				fprintf(stderr, "tern log-summary: --day %s: not YYYY-MM-DD\n", day);
				return 2;
			}
			break;
		case 't': {
			char *end;
			top = strtol(optarg, &end, 10);
			if (*end || top < 1 || top > 100000) {
				fprintf(stderr, "tern log-summary: --top %s: not a number from 1\n", optarg);
				return 2;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	logsum_t *s = logsum_new(day, 0);
	int rc = 0;
	if (optind >= argc) {
		if (feed(s, stdin) < 0) {
			fprintf(stderr, "tern log-summary: stdin: %s\n", strerror(errno));
			rc = 1;
		}
	}
	for (int i = optind; i < argc; i++) {
		FILE *f = fopen(argv[i], "r");
		if (!f || feed(s, f) < 0) {
			fprintf(stderr, "tern log-summary: %s: %s\n", argv[i], strerror(errno));
			rc = 1;
		}
		if (f)
			fclose(f);
	}
	logsum_print(s, stdout, (size_t)top);
	logsum_free(s);
	return rc;
}
