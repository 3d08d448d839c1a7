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
 * Domain: D Submitter: S Report-ID: <ID>") handed to submit() for the
 * queue; "https:" a POST (section 5.4) through lib/http.c with the
 * certificate verified, a 60 s limit, the host's address from our own
 * resolver; a 2xx answer is success, anything else is logged.
 *
 * Guarantees: everything runs on the loop, asynchronously; the flush owns
 * its resolver and HTTP client and frees them when its last step is done.
 * Must not: block; retry an HTTPS POST (one attempt; mail has the queue's
 * retries).
 */
#ifndef TERN_TLSRPT_SEND_H
#define TERN_TLSRPT_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "lib/dns.h"

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
} tlsrpt_send_options_t;

/* Take the counts due now and send their reports (o is copied). */
void tlsrpt_send_flush(uv_loop_t *loop, const tlsrpt_send_options_t *o, tlsrpt_submit_fn submit,
    void *arg);

/* Drop every flush under way (shutdown): no callback follows; reports
 * not yet handed to submit() are lost. */
void tlsrpt_send_stop(void);

/* "https://host[:port]/path": host and port (443 when absent) into
 * host[hcap] and *port; 0, or -1 when uri is not one. */
int tlsrpt_https_host(const char *uri, char *host, size_t hcap, unsigned *port);

#endif
