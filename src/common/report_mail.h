/*
 * report_mail.h - the message that carries a machine-readable report to
 * its reporting address: DMARC aggregate reports (RFC 7489 section
 * 7.2.1.1) and TLS-RPT reports (RFC 8460 section 5.3).
 *
 * One MIME message (RFC 5322, CRLF line ends): From, To, Subject, Date,
 * Message-ID, MIME-Version, the caller's extra header lines, then a
 * multipart body of the given subtype with a short text/plain part and the
 * report as a base64 attachment (lines of 76).
 *
 * Guarantees: the output only grows; the boundary is random (RAND_bytes)
 * and cannot occur in base64 or in a text that has no "=_".
 * Must not: block.
 */
#ifndef TERN_REPORT_MAIL_H
#define TERN_REPORT_MAIL_H

#include <stddef.h>
#include <time.h>

#include "lib/buf.h"

typedef struct report_mail {
	const char *tag;         /* "dmarc", "tlsrpt": in the boundary and Message-ID */
	const char *from, *to;   /* addresses, without <> */
	const char *subject;
	const char *id;          /* the report's id: Message-ID <tag.RANDOM.id> */
	time_t date;             /* the Date header */
	const char *headers;     /* further header lines, each ending CRLF; NULL: none */
	const char *multipart;   /* the subtype and its parameters before the
	                          * boundary: "mixed", "report; report-type=\"tlsrpt\"" */
	const char *text;        /* the first part, CRLF line ends */
	const char *att_type;    /* "application/gzip" */
	const char *filename;    /* the attachment's name */
	const void *att;
	size_t att_len;
} report_mail_t;

/* The whole message, appended to *out. */
void report_mail_build(const report_mail_t *m, buf_t *out);

#endif
