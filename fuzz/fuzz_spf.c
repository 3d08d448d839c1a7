/*
 * fuzz_spf.c - libFuzzer target for the SPF record parser and the macro
 * expander (src/mailauth/spf_record.c).
 *
 * Input: byte 0 picks the client (bit 0: IPv6) and the local-part (bit 1:
 * empty); the rest is TXT data, copied into an exact-size allocation (no
 * NUL after it) so AddressSanitizer sees any read past the end. It is
 * parsed as a record, and expanded as a domain-spec macro-string and as
 * exp= text.
 * Invariants: a refused record leaves nothing behind and says why; every
 * accepted term is well-formed (qualifier, CIDR bounds, a domain-spec that
 * the checker accepts and that expands); checking a macro-string alone and
 * expanding it agree; what a domain-spec accepts, exp= text accepts too;
 * an expansion never exceeds SPF_MACRO_MAX and a failed one appends
 * nothing; a name made ready for DNS is at most 253 octets before escapes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "fuzz_check.h"
#include "lib/buf.h"
#include "mailauth/spf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
ctx(spf_macro_ctx_t *m, uint8_t mode)
{
	memset(m, 0, sizeof(*m));
	m->sender = mode & 2 ? "@example.com" : "strong-bad+x@email.example.com";
	m->local = mode & 2 ? "" : "strong-bad+x";
	m->sender_domain = "email.example.com";
	m->domain = "sub.email.example.com";
	m->helo = "JUMPIN' JUPITER";
	m->receiver = "mx.example.net";
	m->validated = mode & 4 ? "mx.example.org" : NULL;
	m->now = 1700000000;
	if (mode & 1) {
		m->ip.family = AF_INET6;
		inet_pton(AF_INET6, "2001:db8::cb01", m->ip.addr);
	} else {
		m->ip.family = AF_INET;
		inet_pton(AF_INET, "192.0.2.3", m->ip.addr);
	}
}

static void
check_expand(const spf_macro_ctx_t *m, const char *s, size_t n)
{
	for (int explain = 0; explain <= 1; explain++) {
		buf_t out = BUF_INIT, err = BUF_INIT, chk = BUF_INIT;
		buf_puts(&out, "x");
		int rc = spf_macro_expand(m, s, n, explain, &out, &err);
		int rc0 = spf_macro_expand(NULL, s, n, explain, &chk, &err);
		CHECK(chk.len == 0); /* checking appends nothing */
		if (rc == 0) {
			CHECK(rc0 == 0);
			CHECK(out.len >= 1 && out.len - 1 <= SPF_MACRO_MAX);
			/* ready for DNS: at most 253 octets unless one label is longer */
			buf_t q = BUF_INIT;
			spf_query_name(buf_cstr(&out) + 1, &q);
			CHECK(q.len <= 4 * (out.len - 1));
			buf_free(&q);
		} else {
			CHECK(out.len == 1 && strcmp(buf_cstr(&out), "x") == 0);
			CHECK(err.len > 0);
			/* when the syntax is fine, only the length can fail */
			if (rc0 == 0)
				CHECK(strstr(buf_cstr(&err), "longer") != NULL);
		}
		if (explain == 0 && rc0 == 0) {
			buf_t o2 = BUF_INIT;
			CHECK(spf_macro_expand(NULL, s, n, 1, &o2, &err) == 0);
			buf_free(&o2);
		}
		buf_free(&out);
		buf_free(&err);
		buf_free(&chk);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	uint8_t mode = data[0];
	size--;
	char *txt = malloc(size ? size : 1);
	if (txt == NULL)
		return 0;
	memcpy(txt, data + 1, size);

	spf_macro_ctx_t m;
	ctx(&m, mode);

	spf_record_t rec;
	buf_t err = BUF_INIT;
	int rc = spf_record_parse(txt, size, &rec, &err);
	if (rc < 0) {
		CHECK(rec.n == 0 && rec.terms == NULL && rec.redirect == NULL && rec.exp == NULL);
		CHECK(err.len > 0);
	} else {
		CHECK(spf_is_record(txt, size));
		for (size_t i = 0; i < rec.n; i++) {
			const spf_term_t *t = &rec.terms[i];
			CHECK(t->text != NULL && t->text[0] != '\0');
			CHECK(t->qualifier == '+' || t->qualifier == '-' || t->qualifier == '~' ||
			    t->qualifier == '?');
			CHECK(t->cidr4 >= -1 && t->cidr4 <= 32);
			CHECK(t->cidr6 >= -1 && t->cidr6 <= 128);
			if (t->mech == SPF_M_IP4)
				CHECK(t->net.family == AF_INET && t->cidr4 >= 0);
			if (t->mech == SPF_M_IP6)
				CHECK(t->net.family == AF_INET6 && t->cidr6 >= 0);
			if (t->mech == SPF_M_INCLUDE || t->mech == SPF_M_EXISTS)
				CHECK(t->spec != NULL);
			if (t->spec) {
				CHECK(spf_domain_spec_valid(t->spec, strlen(t->spec)));
				check_expand(&m, t->spec, strlen(t->spec));
			}
		}
		if (rec.redirect)
			CHECK(spf_domain_spec_valid(rec.redirect, strlen(rec.redirect)));
		if (rec.exp)
			CHECK(spf_domain_spec_valid(rec.exp, strlen(rec.exp)));
	}
	spf_record_free(&rec);
	buf_free(&err);

	check_expand(&m, txt, size);
	(void)spf_domain_spec_valid(txt, size);
	free(txt);
	return 0;
}
