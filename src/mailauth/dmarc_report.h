/*
 * dmarc_report.h - MAILAUTH: DMARC aggregate reports, RFC 7489 section 7.2
 * (the format: Appendix C).
 *
 * A store of what DMARC evaluated: one entry per policy domain (the
 * domain whose record applied, with the policy as published and its rua
 * mailto: addresses), each with rows counted by identical outcome (source
 * IP, From and MAIL FROM domains, disposition, aligned DKIM/SPF results,
 * the raw DKIM and SPF results). dmarc_report_take() hands the period's
 * entries over and starts a new period; for each, dmarc_report_xml()
 * writes the XML document and dmarc_report_message() the whole report
 * message (section 7.2.1.1: the subject, the gzipped XML attached as
 * "receiver!policy-domain!begin!end.xml.gz"). dmarc_report_save() and
 * dmarc_report_load() turn a store into text and back (the daemon keeps
 * it under the spool so that a restart does not lose the period).
 * dmarc_report_verify() does section 7.1's check of a report address in
 * another organizational domain: <policy-domain>._report._dmarc.<its
 * domain> must hold a v=DMARC1 record.
 *
 * Guarantees: bounded memory (DMARC_REPORT_MAX_DOMAINS entries,
 * DMARC_REPORT_MAX_ROWS rows each; what does not fit is counted as
 * dropped and said in the report's <error>); XML text escaped; the
 * verification's callback runs once, on the loop, never from inside.
 * Must not: block; send anything itself (the daemon queues the messages).
 */
#ifndef TERN_DMARC_REPORT_H
#define TERN_DMARC_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"
#include "lib/dns.h"
#include "mailauth/dmarc.h"

#define DMARC_REPORT_MAX_DOMAINS 10000
#define DMARC_REPORT_MAX_ROWS 10000
#define DMARC_REPORT_MAX_DKIM 8

/* One evaluated message. */
typedef struct dmarc_report_in {
	const char *policy_domain;  /* where the record was found */
	const dmarc_record_t *rec;  /* that record */
	const char *source_ip;
	const char *header_from;    /* From domain */
	const char *envelope_from;  /* MAIL FROM domain ("" for <>) */
	enum dmarc_policy disposition; /* what was applied */
	bool dkim_aligned, spf_aligned;
	bool sampled_out;           /* pct exempted it */
	bool not_enforced;          /* the policy was not applied (local policy) */
	const char *override_type;  /* a PolicyOverrideType said instead (NULL: none) */
	const char *override_comment;
	size_t ndkim;
	const char *dkim_domain[DMARC_REPORT_MAX_DKIM];
	const char *dkim_selector[DMARC_REPORT_MAX_DKIM];
	const char *dkim_result[DMARC_REPORT_MAX_DKIM]; /* RFC 8601 keywords */
	const char *spf_domain;     /* NULL: none checked */
	const char *spf_scope;      /* "mfrom" or "helo" */
	const char *spf_result;
} dmarc_report_in_t;

typedef struct dmarc_report_row {
	char *source_ip;
	char *tail; /* <policy_evaluated>, <identifiers>, <auth_results>, as XML */
	uint64_t count;
	uint32_t hash;
	struct dmarc_report_row *next_hash;
} dmarc_report_row_t;

typedef struct dmarc_report_domain {
	char *domain;
	char *published; /* <policy_published> as XML (the latest seen) */
	char *rua[DMARC_MAX_URIS]; /* mailto: URIs of the latest record */
	size_t nrua;
	dmarc_report_row_t **rows;
	size_t nrows, caprows;
	dmarc_report_row_t *buckets[256];
	uint64_t dropped;
	struct dmarc_report_domain *next;
} dmarc_report_domain_t;

typedef struct dmarc_report_store {
	dmarc_report_domain_t *domains;
	size_t ndomains;
	uint64_t dropped; /* messages of domains that did not fit */
	time_t begin;     /* the period's start */
} dmarc_report_store_t;

void dmarc_report_init(dmarc_report_store_t *s, time_t now);
/* Count one message (nothing when its record has no rua mailto:). */
void dmarc_report_add(dmarc_report_store_t *s, const dmarc_report_in_t *in);
/* The period's entries (a list, freed with dmarc_report_domains_free);
 * s starts a new period at now. *begin: the old period's start. */
dmarc_report_domain_t *dmarc_report_take(dmarc_report_store_t *s, time_t now, time_t *begin);
void dmarc_report_domains_free(dmarc_report_domain_t *d);
void dmarc_report_clear(dmarc_report_store_t *s);

/* The store as text, appended to *out: "tern-dmarc-report 1", "begin T",
 * "dropped N", then per domain "domain NAME<TAB>DROPPED<TAB>PUBLISHED",
 * its "rua URI" lines and its "row COUNT<TAB>IP<TAB>TAIL" lines, and
 * "end" (a file without it was cut short). Fields escape '%' and
 * controls as %XX. */
void dmarc_report_save(const dmarc_report_store_t *s, buf_t *out);
/* Replace *s with what dmarc_report_save wrote (the period's start
 * included). 0, or -1 with the reason in *err and *s unchanged. */
int dmarc_report_load(dmarc_report_store_t *s, const char *data, size_t len, buf_t *err);

typedef struct dmarc_report_meta {
	const char *org_name;  /* report_org: who reports */
	const char *email;     /* report_email: the From of the reports */
	const char *receiver;  /* our host name, in the file name */
	time_t begin, end;
} dmarc_report_meta_t;

/* The XML document (Appendix C) for one domain's rows, appended to *out;
 * report_id into *id (appended) too. */
void dmarc_report_xml(const dmarc_report_meta_t *m, const dmarc_report_domain_t *d, buf_t *out,
    buf_t *id);

/* The address of a "mailto:" URI (percent-decoded, the !size removed)
 * into *addr, and its size limit in octets (0: none) into *limit. 0, or
 * -1 for another scheme or a malformed address. */
int dmarc_report_mailto(const char *uri, buf_t *addr, uint64_t *limit);

/* The whole report message (RFC 5322, CRLF) to rcpt, appended to *out.
 * 0, or -1 with the reason in *err (compression failed). */
int dmarc_report_message(const dmarc_report_meta_t *m, const dmarc_report_domain_t *d,
    const char *rcpt, buf_t *out, buf_t *err);

/* Section 7.1: may reports for policy_domain go to rcpt_domain? Same
 * organizational domain: yes at once (from a timer); else the TXT lookup.
 * cb(arg, true/false) once, on the loop. */
typedef void (*dmarc_report_verify_cb)(void *arg, bool ok);
typedef struct dmarc_report_verify dmarc_report_verify_t;
dmarc_report_verify_t *dmarc_report_verify(dns_t *dns, const psl_ctx_t *psl,
    const char *policy_domain, const char *rcpt_domain, dmarc_report_verify_cb cb, void *arg);
void dmarc_report_verify_cancel(dmarc_report_verify_t *v);

#endif
