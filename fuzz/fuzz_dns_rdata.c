/*
 * fuzz_dns_rdata.c - libFuzzer target for the DNS rdata parsers (dns.c) and
 * the MX ordering that consumes their output (mx_order, mx.c).
 *
 * Input: byte 0 picks the RR type (A, AAAA, MX, TLSA, TXT, PTR), then records
 * as a 2-byte big-endian length followed by that many bytes (a length past
 * the end takes what is left). Each record is copied into its own exact-size
 * allocation so AddressSanitizer sees any read past an rdata. The whole input
 * after byte 0 is also parsed as one wire-format name.
 * Build: see docs/dns.md ("Fuzzing").
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/mx.h"
#include "lib/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECORDS 64

static uint32_t
rnd_fixed(void *arg, uint32_t upper)
{
	uint32_t *state = arg;
	*state = *state * 1103515245u + 12345u;
	return upper ? *state % upper : 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int types[] = {DNS_T_A, DNS_T_AAAA, DNS_T_MX, DNS_T_TLSA, DNS_T_TXT,
	    DNS_T_PTR};
	if (size < 1)
		return 0;
	int type = types[data[0] % (sizeof(types) / sizeof(types[0]))];
	data++;
	size--;

	/* the name parser on its own */
	{
		uint8_t *copy = malloc(size ? size : 1);
		memcpy(copy, data, size);
		buf_t b = BUF_INIT;
		size_t used = 0;
		if (dns_name_to_text(copy, size, &used, &b) == 0) {
			if (used == 0 || used > size || used > 255 || b.len == 0)
				abort();
			if (b.len != strlen(b.data))
				abort(); /* the text form never contains NUL */
		}
		buf_free(&b);
		free(copy);
	}

	uint8_t *recs[MAX_RECORDS];
	size_t lens[MAX_RECORDS];
	size_t n = 0;
	while (size >= 2 && n < MAX_RECORDS) {
		size_t len = ((size_t)data[0] << 8) | data[1];
		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		recs[n] = malloc(len ? len : 1);
		memcpy(recs[n], data, len);
		lens[n] = len;
		n++;
		data += len;
		size -= len;
	}

	dns_result_t r = {.rrtype = type};
	if (dns_result_parse(&r, (const uint8_t *const *)recs, lens, n) == 0) {
		if (r.n != n)
			abort();
		if (type == DNS_T_MX && n > 0) {
			const char *self[] = {"mx.example", NULL};
			mx_options_t o = {.self_names = self, .max_hosts = 5};
			uint32_t seed = 1;
			mx_host_t *hosts;
			size_t nh;
			enum mx_status st = mx_order(r.rr, r.n, &o, rnd_fixed, &seed, &hosts, &nh);
			if (st == MX_OK && (nh == 0 || nh > 5))
				abort();
			for (size_t i = 1; i < nh; i++)
				if (hosts[i].pref < hosts[i - 1].pref)
					abort();
			mx_hosts_free(hosts, nh);
		}
		dns_result_clear(&r);
	} else if (r.rr != NULL || r.n != 0) {
		abort();
	}
	for (size_t i = 0; i < n; i++)
		free(recs[i]);
	return 0;
}
