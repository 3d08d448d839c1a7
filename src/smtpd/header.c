/*
 * header.c - the hop count, the fields submission adds and the
 * TLS-Required field (see header.h).
 */
#include "smtpd/header.h"

#include <string.h>
#include <strings.h>

void
hdr_hops_init(hdr_hops_t *h)
{
	memset(h, 0, sizeof *h);
	h->bol = true;
}

/*
 * A field counts when its line starts with "Received" (any case) and a
 * colon follows, after optional white space (RFC 5322 §4.5.3, the obsolete
 * syntax, still seen). The section ends at the first empty line; a line
 * that is no header field also ends it, but counting on to the empty line
 * only over-counts in a body that starts with "Received:", which is rare
 * and errs on the side of stopping a loop.
 */
void
hdr_hops_feed(hdr_hops_t *h, const char *p, size_t n)
{
	static const char key[] = "received";
	const int klen = (int)sizeof key - 1;
	for (size_t i = 0; i < n && !h->done; i++) {
		char ch = p[i];
		if (h->bol) {
			h->bol = false;
			h->pos = 0;
			if (ch == '\r') {
				h->cr = true;
				h->pos = -1;
				continue;
			}
		}
		if (ch == '\n') {
			if (h->cr) {
				h->done = true;
				break;
			}
			h->bol = true;
			continue;
		}
		h->cr = false;
		if (h->pos < 0)
			continue;
		if (h->pos < klen) {
			char lc = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
			h->pos = lc == key[h->pos] ? h->pos + 1 : -1;
		} else if (ch == ':') {
			h->hops++;
			h->pos = -1;
		} else if (ch != ' ' && ch != '\t') {
			h->pos = -1;
		}
	}
}

enum { TR_NAME, TR_COLON, TR_VALUE, TR_SKIP, TR_CR };

void
hdr_tlsreq_init(hdr_tlsreq_t *h)
{
	memset(h, 0, sizeof *h);
	h->bol = true;
	h->st = TR_SKIP;
}

/* a TLS-Required field's value is complete: is it "No" (any case)? */
static void
tlsreq_finish(hdr_tlsreq_t *h)
{
	if (h->st == TR_VALUE && !h->vbad && h->vlen == 2 && strncasecmp(h->val, "no", 2) == 0)
		h->no = true;
	h->st = TR_SKIP;
}

static void
tlsreq_value(hdr_tlsreq_t *h)
{
	h->st = TR_VALUE;
	h->vlen = 0;
	h->vbad = h->gap = false;
}

void
hdr_tlsreq_feed(hdr_tlsreq_t *h, const char *p, size_t n)
{
	static const char key[] = "tls-required";
	const int klen = (int)sizeof key - 1;
	for (size_t i = 0; i < n && !h->done; i++) {
		char ch = p[i];
		if (h->bol) {
			h->bol = false;
			if (h->st == TR_VALUE && (ch == ' ' || ch == '\t')) {
				/* a folded value goes on (RFC 5322 §2.2.3): the fold is white space */
				h->gap = h->vlen > 0;
				continue;
			}
			tlsreq_finish(h);
			h->pos = 0;
			h->st = ch == '\r' ? TR_CR : TR_NAME;
			if (ch == '\r')
				continue;
		}
		if (ch == '\n') {
			if (h->st == TR_CR) {
				h->done = true; /* the empty line */
				break;
			}
			h->bol = true;
			continue;
		}
		switch (h->st) {
		case TR_CR:
			h->st = TR_SKIP;
			break;
		case TR_NAME: {
			char lc = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
			if (h->pos < klen && lc == key[h->pos])
				h->pos++;
			else if (h->pos == klen && ch == ':')
				tlsreq_value(h);
			else if (h->pos == klen && (ch == ' ' || ch == '\t'))
				h->st = TR_COLON; /* obsolete white space before ':' (RFC 5322 §4.5) */
			else
				h->st = TR_SKIP;
			break;
		}
		case TR_COLON:
			if (ch == ':')
				tlsreq_value(h);
			else if (ch != ' ' && ch != '\t')
				h->st = TR_SKIP;
			break;
		case TR_VALUE:
			if (ch == '\r')
				break;
			if (ch == ' ' || ch == '\t') {
				h->gap = h->vlen > 0; /* blanks after the word: fine, unless another follows */
				break;
			}
			if (h->gap || h->vlen >= sizeof h->val - 1)
				h->vbad = true;
			else
				h->val[h->vlen++] = ch;
			break;
		default:
			break;
		}
	}
}

void
hdr_tlsreq_end(hdr_tlsreq_t *h)
{
	if (!h->done)
		tlsreq_finish(h);
	h->done = true;
}

size_t
hdr_fields_scan(const char *d, size_t len, bool at_end, unsigned *have, bool *complete)
{
	size_t pos = 0;
	bool in_field = false, done = false;
	*have = 0;
	while (pos < len) {
		const char *eol = memmem(d + pos, len - pos, "\r\n", 2);
		if (!eol) {
			done = at_end; /* an unterminated last line is no header field */
			break;
		}
		size_t ll = (size_t)(eol - (d + pos));
		if (ll == 0) {
			done = true; /* the empty line */
			break;
		}
		if (d[pos] == ' ' || d[pos] == '\t') {
			if (!in_field) {
				done = true; /* a continuation with nothing to continue */
				break;
			}
			pos += ll + 2;
			continue;
		}
		/* RFC 5322 §2.2: field name = printable US-ASCII but ':' */
		size_t k = 0;
		while (k < ll && d[pos + k] > ' ' && d[pos + k] < 0x7f && d[pos + k] != ':')
			k++;
		if (k == 0 || k >= ll || d[pos + k] != ':') {
			done = true; /* the body starts without an empty line */
			break;
		}
		if (k == 4 && strncasecmp(d + pos, "Date", 4) == 0)
			*have |= HDR_HAVE_DATE;
		else if (k == 4 && strncasecmp(d + pos, "From", 4) == 0)
			*have |= HDR_HAVE_FROM;
		else if (k == 10 && strncasecmp(d + pos, "Message-ID", 10) == 0)
			*have |= HDR_HAVE_MSGID;
		in_field = true;
		pos += ll + 2;
	}
	if (pos >= len && !done)
		done = at_end;
	*complete = done;
	return pos;
}
