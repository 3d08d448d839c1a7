/*
 * tlsrpt.h - DELIVER: SMTP TLS Reporting, RFC 8460: the day's counts of
 * outbound TLS sessions, the report document, and the _smtp._tls record.
 *
 * Counting (section 4): every outbound session attempt to a recipient
 * domain's MX host is counted under its policy domain and the UTC day, as
 * a success or a failure of one result type (section 4.3), under the
 * policy that applied (section 4.4.2: "sts" with the MTA-STS policy's
 * lines and MX patterns, "tlsa" with the host's TLSA records and its
 * name, "no-policy-found"). A failure also counts in a failure-details
 * row: its result type, our address, the MX host, its address, a reason
 * (section 4.4.4), identical rows merged by their count.
 * The counts live in one JSON tree (jansson), which is also what is saved
 * in the spool (tlsrpt_save / tlsrpt_load) so that they survive a
 * restart.
 *
 * Reporting: tlsrpt_take() hands over the domains whose day is over (and,
 * with through_now, today's so far); tlsrpt_report_json() writes section
 * 4.4's document for one of them.
 *
 * Guarantees: bounded memory: TLSRPT_MAX_DOMAINS domains per day,
 * TLSRPT_MAX_POLICIES policies per domain, TLSRPT_MAX_DETAILS detail rows
 * per policy, and TLSRPT_MAX_ROWS policies and detail rows in all; what
 * does not fit is dropped and logged (once per day and kind); a dropped
 * detail row still counts in the policy's summary.
 * Strings from the network (reasons, names) are JSON-escaped by jansson
 * and cut to TLSRPT_MAX_TEXT octets.
 * Must not: block (tlsrpt_load reads a file: start-up only); be used off
 * the loop's thread.
 */
#ifndef TERN_TLSRPT_H
#define TERN_TLSRPT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "deliver/mtasts.h"
#include "lib/buf.h"
#include "lib/tls.h"

struct sockaddr;

#define TLSRPT_MAX_DOMAINS 10000
#define TLSRPT_MAX_POLICIES 16
#define TLSRPT_MAX_DETAILS 100
#define TLSRPT_MAX_ROWS 100000
#define TLSRPT_MAX_TEXT 256
#define TLSRPT_MAX_RUA 8
#define TLSRPT_FILE "tlsrpt.json" /* in the spool */

enum tlsrpt_policy { TLSRPT_NO_POLICY = 0, TLSRPT_STS, TLSRPT_TLSA };

/* One session attempt (or one policy failure before any session). */
typedef struct tlsrpt_session {
	const char *domain;              /* the policy domain */
	enum tlsrpt_policy type;
	const char *const *strings;      /* policy-string: the policy's lines or the TLSA records */
	size_t nstrings;
	const char *const *mx;           /* mx-host: the policy's patterns, or the MX host (tlsa) */
	size_t nmx;
	const char *result;              /* NULL: success; else the result type */
	const char *sending_ip;          /* failure details; NULL or "" to leave out */
	const char *mx_host;
	const char *receiving_ip;
	const char *reason;              /* failure-reason-code */
} tlsrpt_session_t;

/* outbound.c's hook: one session attempt to an MX host of domain (or a
 * policy failure found while resolving it), described by what applied. */
typedef struct tlsrpt_attempt {
	const char *domain;
	bool dane;                   /* DANE applied: policy "tlsa" with these records */
	const tls_tlsa_t *tlsa;
	size_t ntlsa;
	const mtasts_policy_t *sts;  /* else the MTA-STS policy that applied, or NULL */
	bool sts_fetch;              /* policy "sts" though sts is NULL: the fetch failed */
	const char *mx_host;
	const struct sockaddr *receiving; /* the MX host's address, or NULL */
	const char *sending_ip;
	const char *result;          /* NULL: success */
	const char *reason;
} tlsrpt_attempt_t;
void tlsrpt_count_attempt(const tlsrpt_attempt_t *a, time_t now);

/* Is this one of section 4.3's result types? */
bool tlsrpt_result_valid(const char *result);

/* Count s at time now (when counting is on: tlsrpt_set_enabled). */
void tlsrpt_count(const tlsrpt_session_t *s, time_t now);
void tlsrpt_set_enabled(bool on);
/* Forget everything (tests, and at exit). */
void tlsrpt_reset(void);

/* The counts as a JSON text to save (a fresh allocation, *len set), NULL
 * when nothing changed since the last call. */
char *tlsrpt_save(size_t *len);
/* Merge the saved counts of path into the store: 0, or -1 with why in
 * *err (a missing file is 0). */
int tlsrpt_load(const char *path, buf_t *err);

/*
 * The domains to report at now: every domain-day before today's UTC day,
 * and today's too when through_now. Removed from the store. A JSON array
 * of {"domain", "begin", "end", "policies": {...}} (json_decref it); NULL
 * when there is none.
 */
json_t *tlsrpt_take(time_t now, bool through_now);

typedef struct tlsrpt_meta {
	const char *org;        /* organization-name */
	const char *contact;    /* contact-info */
	const char *report_id;
} tlsrpt_meta_t;

/* Section 4.4's report for one element of tlsrpt_take()'s array, as
 * compact JSON text appended to *out. */
void tlsrpt_report_json(const tlsrpt_meta_t *m, const json_t *entry, buf_t *out);

/* RFC 3339 UTC: "2026-12-07T00:00:00Z" (at least 21 octets) */
void tlsrpt_datetime(time_t t, char *out, size_t cap);

/* Section 3: a "_smtp._tls" TXT record (its strings joined). */
typedef struct tlsrpt_record {
	char *rua[TLSRPT_MAX_RUA]; /* "mailto:..." and "https:..." URIs, as written */
	size_t nrua;
} tlsrpt_record_t;

/*
 * 1: a TLSRPTv1 record with at least one mailto: or https: rua, into *r
 * (free with tlsrpt_record_free); 0: not a TLSRPTv1 record (another TXT
 * record: ignored); -1: it starts with v=TLSRPTv1 but is malformed or has
 * no usable rua (why in *err). Unknown fields are ignored (section 3).
 */
int tlsrpt_record_parse(const char *txt, size_t len, tlsrpt_record_t *r, buf_t *err);
void tlsrpt_record_free(tlsrpt_record_t *r);

#endif
