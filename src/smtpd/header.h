/*
 * header.h - what tern reads from a message's header section while it
 * streams in: the number of Received: fields (the hop count, RFC 5321
 * §6.3) and whether Date, From and Message-ID are present (RFC 5322 §3.6,
 * for submission, RFC 6409 §8.1-8.3), and whether a "TLS-Required: No"
 * field is there (RFC 8689 §3).
 *
 * Guarantees: pure functions over the bytes given; no allocation; every
 * loop bounded by the input length; the hop count is the same however the
 * input is split into pieces. Must not: keep pointers into the input.
 */
#ifndef TERN_HEADER_H
#define TERN_HEADER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	unsigned hops; /* Received: fields seen so far */
	int pos;       /* octets of "received" matched at line start; -1: no match */
	bool bol;      /* at the start of a line */
	bool cr;       /* the line so far is a lone CR (the empty line, if LF follows) */
	bool done;     /* the header section ended (an empty line) */
} hdr_hops_t;

void hdr_hops_init(hdr_hops_t *h);
/* Feed the next n octets of content (CRLF line ends, as DATA delivers it). */
void hdr_hops_feed(hdr_hops_t *h, const char *p, size_t n);

/*
 * The TLS-Required header field (RFC 8689 §3): "TLS-Required:" [FWS] "No".
 * Streamed like the hop count (any split of the input gives the same
 * answer). A field with another value (or a longer one) is not "No".
 */
typedef struct {
	int st;        /* where in the current line (header.c) */
	int pos;       /* octets of "tls-required" matched */
	char val[8];   /* the value so far, white space left out */
	unsigned vlen;
	bool vbad;     /* the value is not one word of at most 7 octets */
	bool gap;      /* white space followed the word */
	bool bol;
	bool done;     /* the header section ended (an empty line) */
	bool no;       /* a "TLS-Required: No" field was seen */
} hdr_tlsreq_t;

void hdr_tlsreq_init(hdr_tlsreq_t *h);
void hdr_tlsreq_feed(hdr_tlsreq_t *h, const char *p, size_t n);
/* the content ended (a last field without an empty line after it counts) */
void hdr_tlsreq_end(hdr_tlsreq_t *h);

enum { HDR_HAVE_DATE = 1, HDR_HAVE_FROM = 2, HDR_HAVE_MSGID = 4 };

/*
 * Scan the header section at the start of d[0..len): sets *have to the
 * HDR_HAVE_* flags of the fields found and *complete when the section's
 * end is in d (an empty line, a line that is no header field, or, with
 * at_end, the end of the content). Returns the length of the header field
 * lines scanned: 0 or just after a CRLF, never more than len.
 */
size_t hdr_fields_scan(const char *d, size_t len, bool at_end, unsigned *have, bool *complete);

#endif
