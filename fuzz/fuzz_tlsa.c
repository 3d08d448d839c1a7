/*
 * fuzz_tlsa.c - libFuzzer target for TLSA records on their way to OpenSSL's
 * DANE API: the TLSA rdata parser (dns_parse_rr, dns.c), the usability
 * check (tls_tlsa_unusable) and the DANE set-up of a client session
 * (tls_dane_setup, tls.c), which hands full certificates and keys
 * (matching type 0) to OpenSSL's DER parsers.
 *
 * Input: records as a 1-byte length followed by that many bytes of TLSA
 * rdata (a length past the end takes what is left), each copied into an
 * exact-size allocation so AddressSanitizer sees any read past it.
 * Invariants: a record that parses has usage, selector, matching type and
 * data inside its rdata; the set-up never adds more records than were
 * usable, never fails (-1) on bad data alone, and a session without a
 * handshake has no DANE authority.
 */
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "lib/buf.h"
#include "lib/dns.h"
#include "lib/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECORDS 16

static SSL_CTX *ctx;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ctx) {
		buf_t err = BUF_INIT;
		ctx = tls_client_ctx_new(NULL, &err);
		buf_free(&err);
		CHECK(ctx != NULL);
	}
	uint8_t *copies[MAX_RECORDS];
	tls_tlsa_t recs[MAX_RECORDS];
	size_t n = 0, ncopies = 0, usable = 0;
	while (size >= 1 && ncopies < MAX_RECORDS) {
		size_t len = data[0];
		data++;
		size--;
		if (len > size)
			len = size;
		uint8_t *p = malloc(len ? len : 1);
		memcpy(p, data, len);
		copies[ncopies++] = p;
		data += len;
		size -= len;
		dns_rr_t rr;
		memset(&rr, 0, sizeof rr);
		if (dns_parse_rr(DNS_T_TLSA, p, len, &rr) < 0)
			continue;
		CHECK(len >= 3);
		CHECK(rr.u.tlsa.data == p + 3 && rr.u.tlsa.len == len - 3);
		recs[n].usage = rr.u.tlsa.usage;
		recs[n].selector = rr.u.tlsa.selector;
		recs[n].mtype = rr.u.tlsa.mtype;
		recs[n].data = rr.u.tlsa.data;
		recs[n].len = rr.u.tlsa.len;
		const char *why = tls_tlsa_unusable(&recs[n]);
		if (!why) {
			usable++;
			CHECK(recs[n].usage == 2 || recs[n].usage == 3);
			CHECK(recs[n].selector <= 1 && recs[n].mtype <= 2 && recs[n].len > 0);
		}
		n++;
	}

	SSL *ssl = SSL_new(ctx);
	CHECK(ssl != NULL);
	SSL_set_connect_state(ssl);
	buf_t notes = BUF_INIT;
	const char *names[] = {"example.com", NULL};
	int k = tls_dane_setup(ssl, "mx.example.com", names, recs, n, &notes);
	CHECK(k >= 0);
	CHECK((size_t)k <= usable);
	CHECK(tls_dane_authority(ssl) == NULL);
	buf_free(&notes);
	SSL_free(ssl);
	for (size_t i = 0; i < ncopies; i++)
		free(copies[i]);
	return 0;
}
