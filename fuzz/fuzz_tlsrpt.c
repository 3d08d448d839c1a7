/*
 * fuzz_tlsrpt.c - libFuzzer target for the TLS-RPT record (RFC 8460
 * section 3) read from the network: the "_smtp._tls" TXT record parser
 * (deliver/tlsrpt.c), and the https: rua host/port splitter
 * (deliver/tlsrpt_send.c) on every URI it accepts.
 *
 * Input: a TXT record's text, copied into an exact-size allocation so
 * AddressSanitizer sees any read past it.
 * Invariants: an accepted record starts with "v=TLSRPTv1" and holds 1 to
 * TLSRPT_MAX_RUA URIs, each "mailto:" or "https://" (any case) with no
 * space, control character, comma or semicolon; a refused one that starts
 * with the version says why and holds nothing; anything else is "not a
 * record" (0) and holds nothing. An https URI's host, when it splits, is
 * non-empty and its port 1-65535.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deliver/tlsrpt.h"
#include "deliver/tlsrpt_send.h"
#include "fuzz_check.h"
#include "lib/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *txt = malloc(size ? size : 1);
	memcpy(txt, data, size);
	tlsrpt_record_t r;
	buf_t err = BUF_INIT;
	int k = tlsrpt_record_parse(txt, size, &r, &err);
	CHECK(k >= -1 && k <= 1);
	if (k != 0)
		CHECK(size >= 10 && memcmp(txt, "v=TLSRPTv1", 10) == 0);
	if (k == 1) {
		CHECK(r.nrua >= 1 && r.nrua <= TLSRPT_MAX_RUA);
		for (size_t i = 0; i < r.nrua; i++) {
			const char *u = r.rua[i];
			CHECK(strncasecmp(u, "mailto:", 7) == 0 || strncasecmp(u, "https://", 8) == 0);
			for (const char *c = u; *c; c++)
				CHECK((unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f && *c != ',' &&
				    *c != ';');
			char host[256];
			unsigned port = 0;
			if (tlsrpt_https_host(u, host, sizeof host, &port) == 0)
				CHECK(host[0] != '\0' && port >= 1 && port <= 65535);
		}
		tlsrpt_record_free(&r);
	} else {
		CHECK(r.nrua == 0);
		if (k == -1)
			CHECK(err.len > 0);
	}
	buf_free(&err);
	free(txt);
	return 0;
}
