/*
 * test_header.c - table-driven tests of src/smtpd/header.c: the Received:
 * hop count (RFC 5321 §6.3) fed whole and byte by byte, and the scan for
 * Date/From/Message-ID (RFC 5322 §3.6) that submission completes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "smtpd/header.h"

struct hops_case {
	const char *in;
	unsigned hops;
	bool done;
};

static const struct hops_case hops_cases[] = {
	{"", 0, false},
	{"Received: a\r\nReceived: b\r\n\r\n", 2, true},
	{"RECEIVED: a\r\nreceived:b\r\n", 2, false},
	{"Received : obsolete white space\r\n", 1, false},   /* RFC 5322 §4.5.3 */
	{"Received\t:x\r\n", 1, false},
	{"X-Received: no\r\nReceivedX: no\r\n", 0, false},
	{" Received: a continuation, not a field\r\n", 0, false},
	{"Subject: x\r\n\r\nReceived: in the body\r\n", 0, true},
	{"Received: a\r\n folded\r\nReceived: b", 2, false},    /* the last one unterminated */
	{"\r\rReceived: x\r\n", 0, false},                      /* a CR line is no empty line */
	{"\rReceived: x\r\n\r\n", 0, true},
	{"Received: a\n\nReceived: b\r\n", 2, false},           /* bare LF: no end */
};

static void
test_hops(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof hops_cases / sizeof hops_cases[0]; i++) {
		const struct hops_case *c = &hops_cases[i];
		hdr_hops_t w, b;
		hdr_hops_init(&w);
		hdr_hops_feed(&w, c->in, strlen(c->in));
		hdr_hops_init(&b);
		for (size_t k = 0; c->in[k]; k++)
			hdr_hops_feed(&b, c->in + k, 1);
		if (w.hops != c->hops || w.done != c->done)
			fail_msg("case %zu (%s): hops %u done %d", i, c->in, w.hops, w.done);
		assert_int_equal(b.hops, w.hops);
		assert_int_equal(b.done, w.done);
	}
}

struct tlsreq_case {
	const char *in;
	bool no;
};

static const struct tlsreq_case tlsreq_cases[] = {
	{"", false},
	{"TLS-Required: No\r\n\r\n", true},
	{"Subject: x\r\ntls-required:no\r\n", true},
	{"TLS-Required:   NO  \r\nSubject: x\r\n\r\n", true},
	{"TLS-Required :\tNo\r\n\r\n", true},                 /* RFC 5322 section 4.5 */
	{"TLS-Required:\r\n No\r\n\r\n", true},                /* folded */
	{"TLS-Required: No", true},                              /* unterminated, at the end */
	{"TLS-Required: Yes\r\n\r\n", false},
	{"TLS-Required: No thanks\r\n\r\n", false},
	{"TLS-Required: Nope\r\n\r\n", false},
	{"TLS-Required: N\r\n o\r\n\r\n", false},
	{"TLS-Required:\r\n\r\n", false},
	{"X-TLS-Required: No\r\n\r\n", false},
	{"TLS-RequiredX: No\r\n\r\n", false},
	{" TLS-Required: No\r\n\r\n", false},                 /* a continuation */
	{"Subject: x\r\n\r\nTLS-Required: No\r\n", false},   /* in the body */
	{"Subject: TLS-Required: No\r\n\r\n", false},
	{"TLS-Required: Yes\r\nTLS-Required: No\r\n\r\n", true},
};

static void
test_tlsreq(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof tlsreq_cases / sizeof tlsreq_cases[0]; i++) {
		const struct tlsreq_case *c = &tlsreq_cases[i];
		hdr_tlsreq_t w, b;
		hdr_tlsreq_init(&w);
		hdr_tlsreq_feed(&w, c->in, strlen(c->in));
		hdr_tlsreq_end(&w);
		hdr_tlsreq_init(&b);
		for (size_t k = 0; c->in[k]; k++)
			hdr_tlsreq_feed(&b, c->in + k, 1);
		hdr_tlsreq_end(&b);
		if (w.no != c->no)
			fail_msg("case %zu (%s): no=%d", i, c->in, w.no);
		assert_int_equal(b.no, w.no);
	}
}

struct scan_case {
	const char *in;
	bool at_end;
	unsigned have;
	bool complete;
	size_t pos; /* (size_t)-1: the whole input */
};

#define ALL ((size_t)-1)

static const struct scan_case scan_cases[] = {
	{"Date: x\r\nFrom: y\r\nMessage-ID: <z>\r\n\r\nbody\r\n", false,
	    HDR_HAVE_DATE | HDR_HAVE_FROM | HDR_HAVE_MSGID, true, 35},
	{"from: y\r\nmessage-id: <z>\r\n\r\n", false, HDR_HAVE_FROM | HDR_HAVE_MSGID, true, 26},
	{"Subject: x\r\n", false, 0, false, ALL},              /* more may come */
	{"Subject: x\r\n", true, 0, true, ALL},
	{"Subject: x\r\nSubj", false, 0, false, 12},
	{"Subject: x\r\nno colon here\r\n", false, 0, true, 12}, /* the body starts */
	{" leading continuation\r\n", false, 0, true, 0},
	{"Date: x\r\n continued\r\nFrom: y\r\n\r\n", false, HDR_HAVE_DATE | HDR_HAVE_FROM, true, 30},
	{"Date : x\r\n", false, 0, true, 0},                   /* no blank before ':' here */
	{"Dates: x\r\nFromage: y\r\n\r\n", false, 0, true, 22},
	{"", true, 0, true, 0},
};

static void
test_scan(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof scan_cases / sizeof scan_cases[0]; i++) {
		const struct scan_case *c = &scan_cases[i];
		unsigned have;
		bool complete;
		size_t len = strlen(c->in);
		size_t pos = hdr_fields_scan(c->in, len, c->at_end, &have, &complete);
		size_t want = c->pos == ALL ? len : c->pos;
		if (have != c->have || complete != c->complete || pos != want)
			fail_msg("case %zu (%s): have %u complete %d pos %zu (want %u %d %zu)", i,
			    c->in, have, complete, pos, c->have, c->complete, want);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tlsreq),
		cmocka_unit_test(test_hops),
		cmocka_unit_test(test_scan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
