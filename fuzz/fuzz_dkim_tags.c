/*
 * fuzz_dkim_tags.c - libFuzzer target for DKIM's parsers
 * (src/mailauth/dkim_canon.c) and the verifier around them (dkim.c).
 *
 * The first input byte picks a mode, the rest is the text:
 *   'T'  a tag list (RFC 6376 section 3.2);
 *   'S'  the value of a DKIM-Signature field;
 *   'K'  a key record;
 *   'M', 'E'  the value of an ARC-Message-Signature, an ARC-Seal;
 *   'A'  a whole message through the ARC verifier (src/mailauth/arc.c),
 *        keys as below;
 *   else a whole message, verified with every key lookup answered by the
 *        text after the first "\n%%\n" (the key record), or NXDOMAIN.
 * Invariants: every tag slice lies inside the input, names are non-empty
 * and distinct, values hold no ';' and do not start or end with white
 * space, raw spans cover the value; a parsed signature has a valid d=, a
 * 32-octet bh=, a non-empty b= and From in h=; a parsed key record is
 * revoked or has a key; an AMS or AS has its instance in 1..50, an AS a
 * cv of none/pass/fail; the verifiers answer exactly once, DKIM with at
 * most 5 results, each a known result with non-NULL strings, ARC with
 * none (and no set), pass or fail and at most 50 sets. Must not leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "lib/xalloc.h"
#include "mailauth/arc.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_tags(const char *p, size_t n)
{
	dkim_tag_t t[DKIM_MAX_TAGS];
	size_t nt;
	const char *why;
	if (dkim_tags_parse(p, n, t, DKIM_MAX_TAGS, &nt, &why) < 0) {
		CHECK(why && *why);
		return;
	}
	CHECK(nt <= DKIM_MAX_TAGS);
	for (size_t i = 0; i < nt; i++) {
		CHECK(t[i].nlen > 0);
		CHECK(t[i].name >= p && t[i].name + t[i].nlen <= p + n);
		CHECK(t[i].val >= p && t[i].val + t[i].vlen <= p + n);
		CHECK(t[i].raw_start <= t[i].raw_end && t[i].raw_end <= n);
		CHECK((size_t)(t[i].val - p) >= t[i].raw_start);
		CHECK((size_t)(t[i].val - p) + t[i].vlen <= t[i].raw_end);
		CHECK(memchr(t[i].val, ';', t[i].vlen) == NULL);
		if (t[i].vlen) {
			char a = t[i].val[0], z = t[i].val[t[i].vlen - 1];
			CHECK(a != ' ' && a != '\t' && a != '\r' && a != '\n');
			CHECK(z != ' ' && z != '\t' && z != '\r' && z != '\n');
		}
		for (size_t j = 0; j < i; j++)
			CHECK(!(t[j].nlen == t[i].nlen && memcmp(t[j].name, t[i].name, t[i].nlen) == 0));
		CHECK(dkim_tag_get(t, nt, "") == NULL);
	}
}

static void
check_sig(const char *p, size_t n)
{
	dkim_sig_t s;
	enum dkim_result r;
	const char *why;
	int rc = dkim_sig_parse(p, n, &s, &r, &why);
	CHECK(why != NULL);
	CHECK(strlen(s.d) < sizeof s.d && strlen(s.b8) <= 8);
	if (rc == 0) {
		CHECK(r == DKIM_PASS);
		CHECK(dkim_name_ok(s.d) && dkim_name_ok(s.s));
		CHECK(s.bh.len == 32 && s.b.len > 0);
		bool from = false;
		for (size_t i = 0; i < s.nh; i++)
			from = from || strcmp(s.h[i], "from") == 0;
		CHECK(from);
		CHECK(s.b_start <= s.b_end && s.b_end <= n);
		CHECK(!(s.has_t && s.has_x) || s.x >= s.t);
	} else {
		CHECK(r != DKIM_PASS && *why);
	}
	dkim_sig_clear(&s);
}

static void
check_arc_sig(const char *p, size_t n, enum dkim_sig_kind kind)
{
	dkim_sig_t s;
	enum dkim_result r;
	const char *why;
	if (dkim_sig_parse_kind(p, n, kind, &s, &r, &why) == 0) {
		CHECK(s.instance >= 1 && s.instance <= 50);
		CHECK(kind != DKIM_KIND_AS || strcmp(s.cv, "none") == 0 || strcmp(s.cv, "pass") == 0 ||
		    strcmp(s.cv, "fail") == 0);
		CHECK(kind == DKIM_KIND_AS ? s.nh == 0 : s.bh.len == 32);
	} else {
		CHECK(*why);
	}
	dkim_sig_clear(&s);
}

static void
check_key(const char *p, size_t n)
{
	dkim_keyrec_t k;
	const char *why;
	if (dkim_keyrec_parse(p, n, &k, &why) == 0)
		CHECK(k.revoked ? k.p.len == 0 : k.p.len > 0);
	else
		CHECK(*why);
	dkim_keyrec_clear(&k);
}

static const char *key_text;
static size_t key_len;

static enum dns_status
lookup(void *arg, const char *name, buf_t *txt)
{
	CHECK(strstr(name, "._domainkey.") != NULL);
	if (!key_text)
		return DNS_NXDOMAIN;
	buf_append(txt, key_text, key_len);
	return DNS_OK;
}

static void
on_result(void *arg, const dkim_sig_result_t *r, size_t n)
{
	int *calls = arg;
	(*calls)++;
	CHECK(n <= 5);
	for (size_t i = 0; i < n; i++) {
		CHECK(r[i].result >= DKIM_NONE && r[i].result <= DKIM_PERMERROR && r[i].result != DKIM_NONE);
		CHECK(r[i].d && r[i].i && r[i].s && r[i].a && r[i].b && r[i].reason);
		CHECK(strlen(r[i].b) <= 8);
	}
}

static void
on_arc(void *arg, const arc_verdict_t *v)
{
	int *calls = arg;
	(*calls)++;
	CHECK(v->result == ARC_NONE || v->result == ARC_PASS || v->result == ARC_FAIL);
	CHECK(v->instances <= ARC_MAX_INSTANCES);
	CHECK(v->result != ARC_NONE || v->instances == 0);
	CHECK(v->reason && v->ams_d && v->as_d);
}

static void
check_verify(const char *p, size_t n, bool arc)
{
	const char *sep = memmem(p, n, "\n%%\n", 4);
	size_t mlen = n;
	key_text = NULL;
	if (sep) {
		mlen = (size_t)(sep - p);
		key_text = sep + 4;
		key_len = n - mlen - 4;
	}
	dkim_verify_opts_t o;
	memset(&o, 0, sizeof o);
	o.now = 1600000000;
	/* in two pieces */
	size_t cut = mlen / 3;
	if (arc) {
		arc_verify_t *a = arc_verify_new(&o);
		arc_verify_feed(a, p, cut);
		arc_verify_feed(a, p + cut, mlen - cut);
		int calls = 0;
		arc_verify_finish_sync(a, lookup, NULL, on_arc, &calls);
		CHECK(calls == 1);
		arc_verify_free(a);
		return;
	}
	dkim_verify_t *v = dkim_verify_new(&o);
	dkim_verify_feed(v, p, cut);
	dkim_verify_feed(v, p + cut, mlen - cut);
	int calls = 0;
	dkim_verify_finish_sync(v, lookup, NULL, on_result, &calls);
	CHECK(calls == 1);
	dkim_verify_free(v);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	switch (data[0]) {
	case 'T': check_tags(p, n); break;
	case 'S': check_sig(p, n); break;
	case 'K': check_key(p, n); break;
	case 'M': check_arc_sig(p, n, DKIM_KIND_AMS); break;
	case 'E': check_arc_sig(p, n, DKIM_KIND_AS); break;
	case 'A': check_verify(p, n, true); break;
	default: check_verify(p, n, false); break;
	}
	return 0;
}
