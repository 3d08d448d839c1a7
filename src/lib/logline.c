/*
 * logline.c - split a log line into its fields (see logline.h).
 */
#include "lib/logline.h"

#include <string.h>

static int
is_qid(const char *s, size_t n)
{
	if (n != 16)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z')))
			return 0;
	return 1;
}

static int
is_session(const char *s, size_t n)
{
	if (n < 2 || n > 14 || s[0] != 'S')
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
			return 0;
	return 1;
}

/* length of a KEY= at s, the '=' included; 0 when none */
static size_t
key_len(const char *s, size_t n)
{
	size_t i = 0;
	if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return 0;
	while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
	    s[i] == '_' || s[i] == '.' || s[i] == '-'))
		i++;
	return i < n && s[i] == '=' ? i + 1 : 0;
}

static const char *
prefix(const char *s, size_t n, const char *w)
{
	size_t l = strlen(w);
	return n >= l && memcmp(s, w, l) == 0 ? s + l : NULL;
}

void
logline_parse(const char *s, size_t n, logline_t *out)
{
	memset(out, 0, sizeof *out);
	const char *end = s + n, *p;
	static const char *levels[] = {"error", "warning", "debug"};
	out->level.p = "info";
	out->level.n = 4;
	for (size_t i = 0; i < 3; i++) {
		char w[16];
		size_t l = strlen(levels[i]);
		memcpy(w, levels[i], l);
		memcpy(w + l, ": ", 3);
		if ((p = prefix(s, (size_t)(end - s), w)) != NULL) {
			out->level.p = levels[i];
			out->level.n = l;
			s = p;
			break;
		}
	}
	/* the ID: "QID: " or "S12: " */
	const char *colon = memchr(s, ':', (size_t)(end - s));
	if (colon && colon + 1 < end && colon[1] == ' ' &&
	    (is_qid(s, (size_t)(colon - s)) || is_session(s, (size_t)(colon - s)))) {
		out->id.p = s;
		out->id.n = (size_t)(colon - s);
		s = colon + 2;
	}
	/* the trailing "(...)": from the first " (" whose parenthesis closes at
	 * the end of the line (nested parentheses in it are kept) */
	const char *tail = end;
	if (end > s && end[-1] == ')') {
		int depth = 0;
		for (const char *q = end - 1; q >= s; q--) {
			if (*q == ')')
				depth++;
			else if (*q == '(' && --depth == 0) {
				if (q == s || q[-1] == ' ') {
					out->text.p = q + 1;
					out->text.n = (size_t)(end - 1 - (q + 1));
					out->has_text = 1;
					tail = q == s ? q : q - 1;
				}
				break;
			}
		}
	}
	/* the event words, then KEY=VALUE pairs */
	const char *ev = s, *ev_end = s;
	int in_kv = 0;
	while (s < tail) {
		while (s < tail && *s == ' ')
			s++;
		if (s >= tail)
			break;
		size_t kl = key_len(s, (size_t)(tail - s));
		if (kl == 0) { /* a bare word: part of the event before any KEY=VALUE */
			while (s < tail && *s != ' ')
				s++;
			if (!in_kv)
				ev_end = s;
			continue;
		}
		in_kv = 1;
		const char *v = s + kl, *ve;
		if (v < tail && *v == '<') {
			/* an address: to the '>' that ends a word (a quoted local
			 * part may hold spaces and '>') */
			const char *q = v + 1;
			ve = NULL;
			for (; q < tail; q++)
				if (*q == '>' && (q + 1 == tail || q[1] == ' ' || q[1] == ':')) {
					ve = q;
					break;
				}
			if (ve) {
				if (out->nkv < LOGLINE_MAX_KV) {
					out->key[out->nkv] = (logline_span_t){s, kl - 1};
					out->val[out->nkv++] = (logline_span_t){v + 1, (size_t)(ve - v - 1)};
				}
				s = ve + 1;
				continue;
			}
		} else if (v < tail && *v == '"') {
			const char *q = v + 1;
			ve = NULL;
			for (; q < tail; q++) {
				if (*q == '\\' && q + 1 < tail) {
					q++;
					continue;
				}
				if (*q == '"') {
					ve = q;
					break;
				}
			}
			if (ve) {
				if (out->nkv < LOGLINE_MAX_KV) {
					out->key[out->nkv] = (logline_span_t){s, kl - 1};
					out->val[out->nkv++] = (logline_span_t){v + 1, (size_t)(ve - v - 1)};
				}
				s = ve + 1;
				continue;
			}
		}
		ve = v;
		while (ve < tail && *ve != ' ')
			ve++;
		/* "client=IP: REASON": the colon ends the value */
		size_t vl = (size_t)(ve - v);
		if (vl && v[vl - 1] == ':')
			vl--;
		if (out->nkv < LOGLINE_MAX_KV) {
			out->key[out->nkv] = (logline_span_t){s, kl - 1};
			out->val[out->nkv++] = (logline_span_t){v, vl};
		}
		s = ve;
	}
	while (ev_end > ev && ev_end[-1] == ' ')
		ev_end--;
	if (ev_end > ev && ev_end[-1] == ':') /* "tls failed session=..." has none; "x: y" */
		ev_end--;
	out->event.p = ev;
	out->event.n = (size_t)(ev_end - ev);
}

const char *
logline_get(const logline_t *l, const char *k, size_t *vn)
{
	size_t kl = strlen(k);
	for (size_t i = 0; i < l->nkv; i++)
		if (l->key[i].n == kl && memcmp(l->key[i].p, k, kl) == 0) {
			*vn = l->val[i].n;
			return l->val[i].p;
		}
	return NULL;
}
