/*
 * logline.h - the grammar of a log line's text, in one place: the JSON form
 * (lib/log.c) and `tern log-summary` (cli/logsummary.c) both split a line
 * with logline_parse(), so the two forms carry the same fields.
 *
 * The text after the timestamp and "tern[PID]: " (docs/logging.md):
 *   [LEVEL": "][ID": "][EVENT WORDS ]KEY=VALUE ...[ (TEXT)]
 *   LEVEL  "error", "warning", "debug" (none: info)
 *   ID     a queue ID (16 of 0-9A-Z) or a session ID (S + base-36 digits)
 *   EVENT  the bare words before the first KEY=VALUE ("accepted",
 *          "connect", "reject", "undeliverable bounce discarded"; none for
 *          a recipient's "to=<...> ... status=..." line)
 *   VALUE  <...> (an address, brackets dropped), "..." (quotes dropped,
 *          \" kept as is), or up to the next space
 *   TEXT   a last "(...)" running to the end of the line
 * Words that are neither (after the first KEY=VALUE) are left out; the whole
 * line stays available to the caller. A KEY is [a-z_][a-z0-9_.-]*.
 * Pure; the fields point into the caller's text (no copies, no allocation).
 */
#ifndef TERN_LOGLINE_H
#define TERN_LOGLINE_H

#include <stddef.h>

#define LOGLINE_MAX_KV 40

typedef struct {
	const char *p;
	size_t n;
} logline_span_t;

typedef struct {
	logline_span_t level;  /* "error", "warning", "debug" or "info" (a constant) */
	logline_span_t id;     /* n == 0: none */
	logline_span_t event;  /* n == 0: none */
	logline_span_t text;   /* the trailing parenthesis' content; n == 0: none */
	int has_text;          /* there was a trailing "(...)" (maybe empty) */
	size_t nkv;
	logline_span_t key[LOGLINE_MAX_KV];
	logline_span_t val[LOGLINE_MAX_KV];
} logline_t;

/* Split s[0..n) (one line, no line end). Never fails: a line of free text
 * yields its words as the event. */
void logline_parse(const char *s, size_t n, logline_t *out);

/* the value of key k, or NULL (and *vn untouched) */
const char *logline_get(const logline_t *l, const char *k, size_t *vn);

#endif
