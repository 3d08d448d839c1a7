/*
 * authres.h - MAILAUTH: the Authentication-Results header field, RFC 8601:
 * building ours, and finding (to remove) the ones that claim to be ours.
 *
 * Building: authres_begin(authserv-id), one authres_add() per result
 * (method, result keyword, optional comment, reason and properties), then
 * authres_end(): "Authentication-Results: ID;\r\n\tspf=pass
 * smtp.mailfrom=a@b.example;\r\n\tdkim=pass header.d=... \r\n", one
 * resinfo per line, folded before any property that would make a line
 * longer than 78 octets; with no result at all, "ID; none". Values are
 * written bare when RFC 8601's pvalue allows it (a token, a domain name,
 * local-part@domain with a dot-atom local part) and as quoted strings
 * otherwise; comment text has its parentheses and backslashes escaped and
 * its control characters replaced.
 *
 * Parsing: authres_serv_id() reads the authserv-id of one field's value
 * (RFC 8601 section 2.2: [CFWS] value, a token or a quoted string; nested
 * comments with quoted pairs skipped); authres_strip() removes every field
 * whose authserv-id is ours (compared ignoring case) from a header section.
 *
 * Guarantees: only the result keywords of RFC 8601 section 2.7 (and the
 * IANA registry) are written: authres_add() refuses any other. No input
 * makes the parser read past its length.
 * Must not: fold inside a token or quoted string.
 */
#ifndef TERN_AUTHRES_H
#define TERN_AUTHRES_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

typedef struct authres_prop {
	const char *name;  /* "smtp.mailfrom", "header.d", ... (ptype.property) */
	const char *value; /* written bare or quoted as needed; NULL or "": skipped */
} authres_prop_t;

typedef struct authres {
	buf_t b;
	size_t col;    /* the current line's length */
	size_t nres;
} authres_t;

void authres_begin(authres_t *a, const char *authserv_id);
/* method: "spf", "dkim", "dmarc", "arc", ...; result must be a registered
 * keyword for it (-1 and nothing written otherwise). comment: NULL or text
 * put in parentheses after the result; reason: NULL or text for reason=. */
int authres_add(authres_t *a, const char *method, const char *result, const char *comment,
    const char *reason, const authres_prop_t *props, size_t nprops);
/* The whole field, CRLF-terminated, is a->b (owned by a until
 * authres_free). */
const char *authres_end(authres_t *a);
void authres_free(authres_t *a);

/* Is the result keyword registered for the method (RFC 8601 section 2.7,
 * RFC 8617 for arc)? */
bool authres_result_ok(const char *method, const char *result);

/* The authserv-id of an A-R field value v[0..n) (what follows the colon,
 * folded or not), into *out. 0, or -1 when there is none. */
int authres_serv_id(const char *v, size_t n, buf_t *out);

/* Remove from the header section at the start of content (up to its
 * first empty line) every Authentication-Results field whose authserv-id
 * equals id (ignoring case), continuation lines included; the body and
 * other fields are untouched. Returns how many were removed. */
size_t authres_strip(buf_t *content, const char *id);

#endif
