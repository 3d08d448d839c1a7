/*
 * table.c - lookup tables read from text files (see table.h).
 *
 * A table is an array of entries in file order plus an open-addressing hash
 * index over their keys (FNV-1a of the ASCII-lowercased key, linear
 * probing), so lookups cost O(1) whatever the size of the file.
 *
 * Guarantees: the file is read whole and bounded (TABLE_MAX_FILE, 64 KiB per
 * line); NUL and other control octets, unterminated quotes, empty keys and
 * duplicate keys are errors reported as "path:line: message" (a duplicate
 * names both lines), and any error fails the whole load: a table is never
 * half loaded. The result is never modified after load, so it may be read
 * from any thread. It must not interpret keys or values (addresses, paths):
 * that is the caller's business.
 */
#include "common/table.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "lib/fileerr.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"

#define TABLE_MAX_FILE (64u * 1024 * 1024)
#define TABLE_MAX_LINE 65536
#define TABLE_MAX_ERRORS 100

struct table {
	table_entry_t *e;
	size_t n, cap;
	uint32_t *idx; /* entry index + 1; 0 = free slot */
	size_t nidx;   /* power of two, or 0 */
	char *file;
};

static unsigned char
lower(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch - 'A' + 'a') : ch;
}

static bool
key_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (lower((unsigned char)*a) != lower((unsigned char)*b))
			return false;
	return *a == *b;
}

static uint64_t
key_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= lower((unsigned char)*s);
		h *= 1099511628211ull;
	}
	return h;
}

/* slot holding key, or the free slot where it would go */
static size_t
slot_of(const table_t *t, const char *key)
{
	size_t mask = t->nidx - 1;
	size_t i = (size_t)key_hash(key) & mask;
	while (t->idx[i] && !key_eq(t->e[t->idx[i] - 1].key, key))
		i = (i + 1) & mask;
	return i;
}

static void
rehash(table_t *t, size_t nidx)
{
	xfree(t->idx);
	t->idx = xcalloc(nidx, sizeof *t->idx);
	t->nidx = nidx;
	for (size_t j = 0; j < t->n; j++)
		t->idx[slot_of(t, t->e[j].key)] = (uint32_t)(j + 1);
}

const table_entry_t *
table_get(const table_t *t, const char *key)
{
	if (t == NULL || key == NULL || t->nidx == 0)
		return NULL;
	uint32_t v = t->idx[slot_of(t, key)];
	return v ? &t->e[v - 1] : NULL;
}

size_t
table_count(const table_t *t)
{
	return t ? t->n : 0;
}

const table_entry_t *
table_entry_at(const table_t *t, size_t i)
{
	return t && i < t->n ? &t->e[i] : NULL;
}

table_t *
table_new_empty(void)
{
	table_t *t = xcalloc(1, sizeof *t);
	t->file = xstrdup("");
	return t;
}

static void
entry_free(table_entry_t *e)
{
	for (size_t i = 0; i < e->nvalues; i++)
		xfree((char *)e->values[i]);
	xfree(e->values);
	xfree((char *)e->key);
}

void
table_free(table_t *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		entry_free(&t->e[i]);
	xfree(t->e);
	xfree(t->idx);
	xfree(t->file);
	xfree(t);
}

/* ------------------------------------------------------------------ */
/* parsing                                                             */

typedef struct tparser {
	table_t *t;
	enum table_kind kind;
	buf_t *errors;
	unsigned nerrors;
	/* the entry being collected */
	bool have;
	table_entry_t cur;
	size_t vcap;
} tparser_t;

static void tp_error(tparser_t *p, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
tp_error(tparser_t *p, unsigned line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fileerr_vadd(p->errors, &p->nerrors, TABLE_MAX_ERRORS, p->t->file, line, fmt, ap);
	va_end(ap);
}

#define SHOW 80
#define SHOWV(s) (strlen(s) > SHOW ? SHOW : (int)strlen(s)), (s), (strlen(s) > SHOW ? "..." : "")

static bool
is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/*
 * Length of the word at s[0..n): up to white space, a comma, or (stop_colon)
 * a ':' outside double quotes. Quotes are kept in the word; inside them a
 * backslash escapes the next octet. -1 on an unterminated quote.
 */
static ssize_t
word_len(const char *s, size_t n, bool stop_comma, bool stop_colon)
{
	bool q = false;
	size_t i;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		if (q) {
			if (ch == '\\' && i + 1 < n)
				i++;
			else if (ch == '"')
				q = false;
			continue;
		}
		if (ch == '"')
			q = true;
		else if (is_space(ch) || (stop_comma && ch == ',') || (stop_colon && ch == ':'))
			break;
	}
	return q ? -1 : (ssize_t)i;
}

/* values in s[0..n), separated by commas and/or white space */
static int
add_values(tparser_t *p, const char *s, size_t n, unsigned line)
{
	size_t i = 0;
	while (i < n) {
		if (is_space(s[i]) || s[i] == ',') {
			i++;
			continue;
		}
		ssize_t w = word_len(s + i, n - i, true, false);
		if (w < 0) {
			tp_error(p, line, "unterminated quote");
			return -1;
		}
		if (p->cur.nvalues == p->vcap) {
			p->vcap = p->vcap ? p->vcap * 2 : 4;
			p->cur.values = xrealloc(p->cur.values, p->vcap * sizeof *p->cur.values);
		}
		p->cur.values[p->cur.nvalues++] = xstrndup(s + i, (size_t)w);
		i += (size_t)w;
	}
	return 0;
}

static void
drop_current(tparser_t *p)
{
	if (p->have)
		entry_free(&p->cur);
	memset(&p->cur, 0, sizeof p->cur);
	p->vcap = 0;
	p->have = false;
}

static void
finish_current(tparser_t *p)
{
	if (!p->have)
		return;
	table_t *t = p->t;
	if (p->kind == TABLE_ALIASES && p->cur.nvalues == 0) {
		tp_error(p, p->cur.line, "alias \"%.*s%s\" has no value", SHOWV(p->cur.key));
		drop_current(p);
		return;
	}
	const table_entry_t *o = table_get(t, p->cur.key);
	if (o) {
		tp_error(p, p->cur.line, "duplicate key \"%.*s%s\" (first on line %u)",
		    SHOWV(p->cur.key), o->line);
		drop_current(p);
		return;
	}
	if (t->n >= UINT32_MAX - 1) {
		tp_error(p, p->cur.line, "too many entries");
		drop_current(p);
		return;
	}
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->e = xrealloc(t->e, t->cap * sizeof *t->e);
	}
	/* The analyzer takes table_get()'s &t->e[v - 1] as possibly NULL, hence
	 * t->e NULL with t->n != t->cap; but t->e is NULL only while t->cap is
	 * 0, and then t->n == t->cap == 0 took the xrealloc() above. */
	// NOLINTNEXTLINE(clang-analyzer-core.NullDereference): t->e is non-NULL here, see above
	t->e[t->n++] = p->cur;
	if (t->n * 2 > t->nidx)
		rehash(t, t->nidx ? t->nidx * 2 : 32);
	else
		t->idx[slot_of(t, p->cur.key)] = (uint32_t)t->n;
	memset(&p->cur, 0, sizeof p->cur);
	p->vcap = 0;
	p->have = false;
}

/* a line that starts an entry: "key: values" or "key values" */
static int
start_entry(tparser_t *p, const char *s, size_t n, unsigned line)
{
	bool aliases = p->kind == TABLE_ALIASES;
	ssize_t w = word_len(s, n, false, aliases);
	if (w < 0) {
		tp_error(p, line, "unterminated quote");
		return -1;
	}
	if (w == 0 || (w == 2 && s[0] == '"')) {
		tp_error(p, line, "empty key");
		return -1;
	}
	size_t i = (size_t)w;
	if (aliases) {
		while (i < n && is_space(s[i]))
			i++;
		if (i == n || s[i] != ':') {
			tp_error(p, line, "expected \"key: value, ...\" (missing ':' after the key; "
			    "quote a key that contains white space)");
			return -1;
		}
		i++;
	}
	p->cur.key = xstrndup(s, (size_t)w);
	p->cur.file = p->t->file;
	p->cur.line = line;
	p->have = true;
	if (add_values(p, s + i, n - i, line) < 0) {
		drop_current(p);
		return -1;
	}
	return 0;
}

static void
parse_text(tparser_t *p, const char *data, size_t len)
{
	size_t pos = 0;
	unsigned lineno = 0;
	bool broken = false; /* the current entry had an error: skip its continuation lines */

	while (pos < len) {
		const char *line = data + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		if (++lineno == 0) /* cannot happen within TABLE_MAX_FILE */
			break;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		bool cont = n > 0 && is_space(line[0]);
		bool bad = false;
		if (n > TABLE_MAX_LINE) {
			tp_error(p, lineno, "line longer than %d octets", TABLE_MAX_LINE);
			bad = true;
		}
		for (size_t i = 0; i < n && !bad; i++) {
			unsigned char ch = (unsigned char)line[i];
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				tp_error(p, lineno, "control character 0x%02x in line", ch);
				bad = true;
			}
		}
		if (bad) {
			if (cont)
				drop_current(p);
			else
				finish_current(p);
			broken = true;
			continue;
		}
		size_t s = 0;
		while (s < n && is_space(line[s]))
			s++;
		if (s == n || line[s] == '#')
			continue;
		if (cont) {
			if (!p->have && !broken) {
				tp_error(p, lineno, "continuation line (it starts with white space) "
				    "without an entry before it");
				broken = true;
			}
			if (p->have && add_values(p, line + s, n - s, lineno) < 0) {
				drop_current(p);
				broken = true;
			}
			continue;
		}
		finish_current(p);
		broken = start_entry(p, line, n, lineno) < 0;
	}
	finish_current(p);
}

table_t *
table_parse_buf(const char *name, const char *data, size_t len, enum table_kind kind,
    buf_t *errors)
{
	tparser_t p;
	memset(&p, 0, sizeof p);
	p.t = xcalloc(1, sizeof *p.t);
	p.t->file = xstrdup(name);
	p.kind = kind;
	p.errors = errors;
	parse_text(&p, data, len);
	drop_current(&p);
	if (p.nerrors) {
		table_free(p.t);
		return NULL;
	}
	return p.t;
}

table_t *
table_load(const char *path, enum table_kind kind, buf_t *errors)
{
	char *data;
	size_t len;
	if (read_file(path, &data, &len, TABLE_MAX_FILE) < 0) {
		if (errors)
			buf_printf(errors, "%s:0: cannot read the table: %s\n", path,
			    errno == EFBIG ? "file larger than 64 MiB" : strerror(errno));
		return NULL;
	}
	table_t *t = table_parse_buf(path, data, len, kind, errors);
	xfree(data);
	return t;
}
