/*
 * content.h - FILTER: header and body checks (Postfix's header_checks and
 * body_checks, with PCRE2): tables of "/pattern/flags ACTION text" lines,
 * and the MIME walker that hands them the lines to match.
 *
 * A table is compiled once, at load (a bad line or pattern is an error
 * "FILE:LINE: ..."); the first rule that matches a subject wins. Every match
 * runs under a match limit and a depth limit (CONTENT_MATCH_LIMIT,
 * CONTENT_DEPTH_LIMIT): a pattern that would backtrack without end on a
 * hostile message is cut short and counts as no match (logged).
 *
 * What is matched (docs/filtering.md "Header and body checks"):
 *  - header_checks: each header field of the message, unfolded (the CRLF
 *    of each fold removed, the white space kept), as "Name: value"; and the
 *    MIME headers of every body part and of attached messages, unfolded
 *    too (so a rule on Content-Disposition's filename sees attachments).
 *  - body_checks: the body lines of each text/... part (a message without
 *    Content-Type is text/plain), without their CRLF, after decoding
 *    quoted-printable or base64 when the part says so; other parts
 *    (images, applications, ...) are not matched, only their MIME headers.
 *    Lines are matched in pieces of at most CONTENT_LINE_MAX octets.
 *    MIME nesting deeper than CONTENT_MIME_DEPTH is not followed.
 * Must not: block; be used from two threads at once (a table keeps its
 * match data).
 */
#ifndef TERN_CONTENT_H
#define TERN_CONTENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define CONTENT_MATCH_LIMIT 100000u
#define CONTENT_DEPTH_LIMIT 2000u
#define CONTENT_LINE_MAX 8192
#define CONTENT_MIME_DEPTH 8
#define CONTENT_TEXT_MAX 400 /* an action's text */

enum content_action {
	CONTENT_NONE = 0,
	CONTENT_REJECT,  /* 550 5.7.1 text */
	CONTENT_DISCARD, /* 250, nothing queued */
	CONTENT_HOLD,    /* queued held (quarantine), text the reason */
	CONTENT_WARN,    /* logged only */
	CONTENT_IGNORE,  /* the header field is removed (header_checks on message headers) */
	CONTENT_PREPEND, /* text, a header field, is added before the matched one (or on top) */
};

typedef struct content_table content_table_t;

typedef struct content_rule_ref {
	enum content_action action;
	const char *text; /* "" when none */
	const char *file;
	unsigned line;
} content_rule_ref_t;

/* Parse a table; name stands for the file in errors. NULL with every
 * error, "name:LINE: ...\n", in *err. An empty table is valid. */
content_table_t *content_table_parse(const char *name, const char *data, size_t n, buf_t *err);
content_table_t *content_table_load(const char *path, buf_t *err);
void content_table_free(content_table_t *t);
size_t content_table_size(const content_table_t *t);

/* The first rule matching p[0..n): 1 (and *out), or 0. *limited is set
 * when some pattern hit its match or depth limit on this subject. */
int content_table_match(content_table_t *t, const char *p, size_t n, content_rule_ref_t *out,
    bool *limited);

/* The rules that no line of a text can match, found cheaply: block is the
 * lines joined by LF. Returns NULL when there are none, else t's size of
 * flags, true for a rule to skip (the caller frees it). A rule not
 * skipped may or may not match; a skipped one matches no line of block
 * (content.c "The sieve" says for which rules this is decided). */
bool *content_table_sieve(content_table_t *t, const char *block, size_t n);
/* content_table_match without the rules skip flags (NULL: none) */
int content_table_match_skip(content_table_t *t, const bool *skip, const char *p, size_t n,
    content_rule_ref_t *out, bool *limited);

/* the header and body tables of a configuration, shared by reference */
typedef struct content_checks {
	content_table_t *hdr;  /* NULL: no header_checks */
	content_table_t *body; /* NULL: no body_checks */
	unsigned refs;
} content_checks_t;

/* Load both files (either may be NULL). *out is NULL when both are. 0, or
 * -1 with "FILE:LINE: ..." errors in *err. */
int content_checks_load(const char *hdr_path, const char *body_path, content_checks_t **out,
    buf_t *err);
content_checks_t *content_checks_ref(content_checks_t *c);
void content_checks_unref(content_checks_t *c);

/* ---- decoding and the MIME walk (exported for tests and fuzzing) ---- */

/* Quoted-printable, one encoded line (without CRLF): decoded into out
 * (room for n octets); *soft when it ends in a soft line break ('=').
 * Returns the decoded length (<= n). Bad escapes are kept as they are. */
size_t content_qp_line(const char *in, size_t n, char *out, bool *soft);

/* Base64 across lines: feed each encoded line; decoded octets are
 * appended to *out. Characters outside the alphabet are skipped; '='
 * ends the data. */
typedef struct content_b64 {
	uint32_t acc;
	int bits;
	bool done;
} content_b64_t;
void content_b64_feed(content_b64_t *st, const char *in, size_t n, buf_t *out);

typedef struct content_walk_cb {
	/* a MIME header of a part or attached message, unfolded: "Name: value" */
	void (*mime_header)(void *arg, const char *p, size_t n);
	/* a decoded body line of a text part (no line end; at most CONTENT_LINE_MAX) */
	void (*body_line)(void *arg, const char *p, size_t n);
	/* return true to stop the walk (a verdict was reached) */
	bool (*stop)(void *arg);
} content_walk_cb_t;

/* Walk the body p[0..n) (CRLF lines) of a message whose top-level
 * Content-Type and Content-Transfer-Encoding values are ctype and cte
 * (NULL when absent). */
void content_walk(const char *p, size_t n, const char *ctype, const char *cte,
    const content_walk_cb_t *cb, void *arg);

/* "Name: value" with the CRLF of each fold removed, into *out */
void content_unfold(const char *name, const char *value, buf_t *out);

#endif
