/*
 * tlsrpt_send.h - DELIVER: sending the TLS-RPT reports (RFC 8460 section
 * 5) for the domains whose counts tlsrpt_take() hands over.
 *
 * For each policy domain: the TXT record "_smtp._tls.<domain>" (section
 * 3; exactly one TLSRPTv1 record, else the domain does not take reports
 * and its counts are dropped), the section 4.4 JSON gzipped
 * (application/tlsrpt+gzip), and for each rua URI: "mailto:" a
 * multipart/report; report-type="tlsrpt" message (section 5.3: the
 * TLS-Report-Domain and TLS-Report-Submitter headers, the subject "Report
 * Domain: D Submitter: S Report-ID: <ID>"; "TLS-Required: No", RFC 8689
 * section 4.2.2, so that the reporting domain's own DANE or MTA-STS
 * failures do not stop it: the submitter must queue it with
 * ENV_TLS_OPTIONAL) handed to submit() for the queue; "https:" a POST (section 5.4) through lib/http.c with the
 * certificate verified, a 60 s limit, the host's address from our own
 * resolver; a 2xx answer is success, anything else is logged.
 *
 * A POST that fails is tried again (section 5.5) for up to a day, with
 * waits doubling from retry_s up to 6 hours, by tlsrpt_send_retry(); at
 * most TLSRPT_RETRY_MAX reports wait (the oldest is dropped, logged); the
 * waiting ones are saved in the spool (TLSRPT_RETRY_FILE: tlsrpt_send_save,
 * tlsrpt_send_load) so that a restart keeps them, and a POST in flight at
 * shutdown waits there too.
 *
 * Guarantees: everything runs on the loop, asynchronously; the flush owns
 * its resolver and HTTP client and frees them when its last step is done.
 * Must not: block (but tlsrpt_send_load, at start-up).
 */
#ifndef TERN_TLSRPT_SEND_H
#define TERN_TLSRPT_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "lib/buf.h"
#include "lib/dns.h"

#define TLSRPT_RETRY_MAX 200                 /* HTTPS reports waiting for a retry */
#define TLSRPT_RETRY_FILE "tlsrpt-retry.json" /* in the spool */

typedef void (*tlsrpt_submit_fn)(void *arg, const char *sender, const char *rcpt,
    const char *content, size_t len);

typedef struct tlsrpt_send_options {
	const char *org;        /* organization-name */
	const char *email;      /* the reports' From */
	const char *contact;    /* contact-info */
	const char *submitter;  /* our domain: TLS-Report-Submitter, the report-id's right side */
	const char *ca_file;    /* CAs for https: rua hosts; NULL: the system store */
	dns_options_t dns;      /* the resolver for the TXT and address lookups */
	bool through_now;       /* today's counts too (intervals shorter than a day) */
	unsigned retry_s;       /* the first wait before a failed POST is tried again; 0: 300 */
} tlsrpt_send_options_t;

/* Take the counts due now and send their reports (o is copied). */
void tlsrpt_send_flush(uv_loop_t *loop, const tlsrpt_send_options_t *o, tlsrpt_submit_fn submit,
    void *arg);

/* Post again the HTTPS reports whose wait is over (o as for a flush). */
void tlsrpt_send_retry(uv_loop_t *loop, const tlsrpt_send_options_t *o);

/* How many reports wait for a retry. */
size_t tlsrpt_send_pending(void);

/* The waiting reports as JSON to save (fresh, *len set); NULL when
 * unchanged since the last call. */
char *tlsrpt_send_save(size_t *len);

/* Add the reports saved in path to the waiting ones (a missing file: none):
 * 0, or -1 with why in err. Blocks: start-up only. */
int tlsrpt_send_load(const char *path, buf_t *err);

/* Drop every flush under way (shutdown): no callback follows; reports
 * not yet handed to submit() are lost, but the POSTs in flight wait for
 * a retry (saved with the others). */
void tlsrpt_send_stop(void);

/* "https://host[:port]/path": host and port (443 when absent) into
 * host[hcap] and *port; 0, or -1 when uri is not one. */
int tlsrpt_https_host(const char *uri, char *host, size_t hcap, unsigned *port);

#endif
