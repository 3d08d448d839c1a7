/*
 * test_mx.c - the pure parts of MX resolution (mx_order, mx_finish,
 * literals, replies) and the DNS rdata parsers they rely on, without any
 * DNS traffic: records are injected as dns_rr_t arrays.
 * The live side (libunbound, a local DNS server) is in test_dns_live.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "deliver/mx.h"
#include "lib/dns.h"

/* ---- helpers ---- */

typedef struct mxin {
	uint16_t pref;
	const char *name;
} mxin_t;

static size_t
mk_rrs(dns_rr_t *rr, const mxin_t *in)
{
	size_t n = 0;
	for (; in[n].name; n++) {
		memset(&rr[n], 0, sizeof(rr[n]));
		rr[n].u.mx.pref = in[n].pref;
		rr[n].u.mx.exchange = (char *)in[n].name;
	}
	return n;
}

/* deterministic "random": always the last position, i.e. no reordering */
static uint32_t
rnd_identity(void *arg, uint32_t upper)
{
	return upper - 1;
}

/* always 0: swaps each group's last element with its first, repeatedly */
static uint32_t
rnd_zero(void *arg, uint32_t upper)
{
	return 0;
}

/* broken generator: out of range values must not break bounds */
static uint32_t
rnd_broken(void *arg, uint32_t upper)
{
	return upper + 7;
}

/* the hosts as "pref name,pref name" */
static void
hosts_str(const mx_host_t *h, size_t n, char *out, size_t outlen)
{
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char one[300];
		snprintf(one, sizeof(one), "%s%u %s", i ? "," : "", h[i].pref, h[i].name);
		strncat(out, one, outlen - strlen(out) - 1);
	}
}

static struct sockaddr_storage
mkaddr(const char *ip)
{
	struct sockaddr_storage sa;
	memset(&sa, 0, sizeof(sa));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&sa;
		s->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s->sin6_addr), 1);
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)&sa;
		s->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s->sin_addr), 1);
	}
	return sa;
}

/* ---- mx_order: table ---- */

static const char *const self_names[] = {"mx.tern.example", "Other.Tern.Example.", NULL};

static const struct order_case {
	const char *what;
	mxin_t in[8];
	bool use_self;
	size_t max_hosts;
	enum mx_status want_status;
	const char *want; /* with rnd_identity: stable order */
} order_cases[] = {
	{"sorted by preference", {{20, "b"}, {10, "a"}, {30, "c"}, {0}}, false, 0, MX_OK,
	    "10 a,20 b,30 c"},
	{"equal prefs keep answer order with identity rnd", {{10, "x"}, {10, "y"}, {5, "w"}, {0}},
	    false, 0, MX_OK, "5 w,10 x,10 y"},
	{"null MX", {{0, "."}, {0}}, false, 0, MX_NULLMX, ""},
	{"null MX with another preference", {{10, "."}, {0}}, false, 0, MX_NULLMX, ""},
	{"two null MX", {{0, "."}, {5, "."}, {0}}, false, 0, MX_NULLMX, ""},
	{"null MX mixed with real: dots ignored", {{0, "."}, {10, "mx"}, {0}}, false, 0, MX_OK,
	    "10 mx"},
	{"self drops >= own pref", {{10, "a"}, {20, "mx.tern.example"}, {30, "b"}, {0}}, true, 0,
	    MX_OK, "10 a"},
	{"self is best: loop", {{10, "MX.TERN.EXAMPLE."}, {20, "a"}, {0}}, true, 0, MX_LOOP, ""},
	{"self equal to others: loop (>=)", {{10, "a"}, {10, "mx.tern.example"}, {0}}, true, 0,
	    MX_LOOP, ""},
	{"lowest self pref counts", {{5, "a"}, {30, "mx.tern.example"}, {10, "other.tern.example"},
	    {20, "b"}, {0}}, true, 0, MX_OK, "5 a"},
	{"self names unused without option", {{10, "mx.tern.example"}, {20, "a"}, {0}}, false, 0,
	    MX_OK, "10 mx.tern.example,20 a"},
	{"duplicates keep best pref", {{20, "A.example"}, {10, "a.example."}, {30, "b"}, {0}}, false,
	    0, MX_OK, "10 a.example.,30 b"},
	{"max hosts", {{10, "a"}, {20, "b"}, {30, "c"}, {40, "d"}, {0}}, false, 2, MX_OK,
	    "10 a,20 b"},
	{"implicit MX (one record, pref 0)", {{0, "example.org"}, {0}}, false, 0, MX_OK,
	    "0 example.org"},
	{"pref 65535", {{65535, "z"}, {0, "a"}, {0}}, false, 0, MX_OK, "0 a,65535 z"},
};

static void
test_order_table(void **state)
{
	for (size_t i = 0; i < sizeof(order_cases) / sizeof(order_cases[0]); i++) {
		const struct order_case *c = &order_cases[i];
		dns_rr_t rr[8];
		size_t n = mk_rrs(rr, c->in);
		mx_options_t o = {.self_names = c->use_self ? self_names : NULL,
		    .max_hosts = c->max_hosts};
		mx_host_t *h = (mx_host_t *)1;
		size_t nh = 99;
		enum mx_status st = mx_order(rr, n, &o, rnd_identity, NULL, &h, &nh);
		char got[1024];
		hosts_str(h, nh, got, sizeof(got));
		if (st != c->want_status || strcmp(got, c->want) != 0)
			fail_msg("%s: status %d hosts \"%s\", want %d \"%s\"", c->what, st, got,
			    c->want_status, c->want);
		if (st != MX_OK) {
			assert_null(h);
			assert_int_equal(nh, 0);
		}
		mx_hosts_free(h, nh);
	}
}

static void
test_order_default_limit(void **state)
{
	dns_rr_t rr[30];
	char names[30][16];
	for (size_t i = 0; i < 30; i++) {
		snprintf(names[i], sizeof(names[i]), "h%zu", i);
		memset(&rr[i], 0, sizeof(rr[i]));
		rr[i].u.mx.pref = (uint16_t)(100 - i);
		rr[i].u.mx.exchange = names[i];
	}
	mx_host_t *h;
	size_t nh;
	assert_int_equal(mx_order(rr, 30, NULL, NULL, NULL, &h, &nh), MX_OK);
	assert_int_equal(nh, MX_MAX_HOSTS);
	assert_int_equal(h[0].pref, 71);
	assert_string_equal(h[0].name, "h29");
	mx_hosts_free(h, nh);
}

/* shuffling: groups of equal preference stay together and in preference
 * order, and every permutation of a group shows up */
static void
test_shuffle_keeps_groups(void **state)
{
	static const mxin_t in[] = {{20, "d"}, {10, "a"}, {30, "f"}, {10, "b"}, {20, "e"},
	    {10, "c"}, {0}};
	dns_rr_t rr[8];
	size_t n = mk_rrs(rr, in);
	int seen[6] = {0}; /* permutations of a, b, c */
	for (int round = 0; round < 600; round++) {
		mx_host_t *h;
		size_t nh;
		assert_int_equal(mx_order(rr, n, NULL, NULL, NULL, &h, &nh), MX_OK);
		assert_int_equal(nh, 6);
		for (size_t i = 0; i < 3; i++) {
			assert_int_equal(h[i].pref, 10);
			assert_true(strchr("abc", h[i].name[0]) != NULL);
		}
		for (size_t i = 3; i < 5; i++) {
			assert_int_equal(h[i].pref, 20);
			assert_true(strchr("de", h[i].name[0]) != NULL);
		}
		assert_string_equal(h[5].name, "f");
		/* each name exactly once */
		assert_int_not_equal(h[0].name[0], h[1].name[0]);
		assert_int_not_equal(h[0].name[0], h[2].name[0]);
		assert_int_not_equal(h[1].name[0], h[2].name[0]);
		int p = (h[0].name[0] - 'a') * 2 + (h[1].name[0] > h[2].name[0]);
		seen[p]++;
		mx_hosts_free(h, nh);
	}
	for (int p = 0; p < 6; p++)
		assert_true(seen[p] > 0); /* P(miss) < 6 * (5/6)^600 */
}

static void
test_shuffle_rnd_bounds(void **state)
{
	static const mxin_t in[] = {{10, "a"}, {10, "b"}, {10, "c"}, {0}};
	dns_rr_t rr[4];
	size_t n = mk_rrs(rr, in);
	mx_host_t *h;
	size_t nh;
	char got[256];
	assert_int_equal(mx_order(rr, n, NULL, rnd_zero, NULL, &h, &nh), MX_OK);
	hosts_str(h, nh, got, sizeof(got));
	/* k=3: swap c<->a -> c b a; k=2: swap b<->c -> b c a */
	assert_string_equal(got, "10 b,10 c,10 a");
	mx_hosts_free(h, nh);
	assert_int_equal(mx_order(rr, n, NULL, rnd_broken, NULL, &h, &nh), MX_OK);
	assert_int_equal(nh, 3);
	mx_hosts_free(h, nh);
}

static void
test_order_empty(void **state)
{
	mx_host_t *h;
	size_t nh;
	assert_int_equal(mx_order(NULL, 0, NULL, NULL, NULL, &h, &nh), MX_NOADDR);
	assert_null(h);
}

/* ---- mx_finish ---- */

typedef struct hin {
	uint16_t pref;
	const char *name;
	const char *addrs[4];
	bool tempfail;
} hin_t;

static size_t
mk_hosts(mx_host_t **out, const hin_t *in)
{
	size_t n = 0;
	while (in[n].name)
		n++;
	mx_host_t *h = calloc(n ? n : 1, sizeof(*h));
	for (size_t i = 0; i < n; i++) {
		h[i].name = strdup(in[i].name);
		h[i].pref = in[i].pref;
		h[i].tempfail = in[i].tempfail;
		h[i].addrs = calloc(4, sizeof(*h[i].addrs));
		for (size_t j = 0; j < 4 && in[i].addrs[j]; j++)
			h[i].addrs[h[i].naddrs++] = mkaddr(in[i].addrs[j]);
	}
	*out = h;
	return n;
}

static const struct finish_case {
	const char *what;
	hin_t in[6];
	const char *self[3];
	size_t max_addrs;
	enum mx_status want_status;
	const char *want;
	size_t want_naddrs[6];
} finish_cases[] = {
	{"all kept", {{10, "a", {"192.0.2.1", "2001:db8::1"}, false}, {20, "b", {"192.0.2.2"}, false}, {0}}, {NULL},
	    0, MX_OK, "10 a,20 b", {2, 1}},
	{"host without address dropped", {{10, "a", {NULL}, false}, {20, "b", {"192.0.2.2"}, false}, {0}}, {NULL},
	    0, MX_OK, "20 b", {1}},
	{"nothing resolves, hard", {{10, "a", {NULL}, false}, {20, "b", {NULL}, false}, {0}}, {NULL}, 0, MX_NOADDR,
	    "", {0}},
	{"nothing resolves, one temp", {{10, "a", {NULL}, true}, {20, "b", {NULL}, false}, {0}}, {NULL}, 0,
	    MX_TEMPFAIL, "", {0}},
	{"temp failure but another host fine", {{10, "a", {NULL}, true}, {20, "b", {"192.0.2.2"}, false},
	    {0}}, {NULL}, 0, MX_OK, "20 b", {1}},
	{"self by address trims >= pref", {{10, "a", {"192.0.2.1"}, false}, {20, "me", {"192.0.2.9"}, false},
	    {30, "c", {"192.0.2.3"}, false}, {0}}, {"192.0.2.9"}, 0, MX_OK, "10 a", {1}},
	{"self by IPv6 address is best: loop", {{10, "me", {"2001:db8::9", "192.0.2.77"}, false},
	    {20, "b", {"192.0.2.2"}, false}, {0}}, {"2001:db8::9"}, 0, MX_LOOP, "", {0}},
	{"better host tempfailed while we are next: tempfail", {{5, "a", {NULL}, true},
	    {10, "me", {"192.0.2.9"}, false}, {0}}, {"192.0.2.9"}, 0, MX_TEMPFAIL, "", {0}},
	{"address cap", {{10, "a", {"192.0.2.1", "192.0.2.11", "192.0.2.21"}, false},
	    {20, "b", {"192.0.2.2", "192.0.2.12"}, false}, {30, "c", {"192.0.2.3"}, false}, {0}}, {NULL}, 4,
	    MX_OK, "10 a,20 b", {3, 1}},
	{"IPv4-mapped self address does not match IPv4", {{10, "a", {"192.0.2.1"}, false}, {0}},
	    {"::ffff:192.0.2.1"}, 0, MX_OK, "10 a", {1}},
};

static void
test_finish_table(void **state)
{
	for (size_t i = 0; i < sizeof(finish_cases) / sizeof(finish_cases[0]); i++) {
		const struct finish_case *c = &finish_cases[i];
		mx_host_t *h;
		size_t n = mk_hosts(&h, c->in);
		struct sockaddr_storage self[3];
		size_t nself = 0;
		for (; nself < 3 && c->self[nself]; nself++)
			self[nself] = mkaddr(c->self[nself]);
		mx_options_t o = {.self_addrs = self, .nself_addrs = nself, .max_addrs = c->max_addrs};
		enum mx_status st = mx_finish(h, &n, &o);
		char got[1024];
		hosts_str(h, n, got, sizeof(got));
		if (st != c->want_status || strcmp(got, c->want) != 0)
			fail_msg("%s: status %d hosts \"%s\", want %d \"%s\"", c->what, st, got,
			    c->want_status, c->want);
		for (size_t j = 0; j < n; j++)
			if (h[j].naddrs != c->want_naddrs[j])
				fail_msg("%s: host %zu has %zu addresses, want %zu", c->what, j,
				    h[j].naddrs, c->want_naddrs[j]);
		mx_hosts_free(h, n);
	}
}

/* ---- literals, replies, same_ip ---- */

static void
test_literals(void **state)
{
	static const struct {
		const char *in;
		int family; /* 0: invalid */
	} cases[] = {
		{"[192.0.2.1]", AF_INET},
		{"[IPv6:2001:db8::1]", AF_INET6},
		{"[ipv6:::1]", AF_INET6},
		{"[IPv6:::ffff:192.0.2.1]", AF_INET6},
		{"[192.0.2]", 0},
		{"[192.0.2.256]", 0},
		{"[01.2.3.4x]", 0},
		{"[2001:db8::1]", 0}, /* needs the IPv6: tag (RFC 5321 §4.1.3) */
		{"[IPv6:192.0.2.1]", 0},
		{"[x-tag:whatever]", 0},
		{"192.0.2.1", 0},
		{"[192.0.2.1", 0},
		{"[]", 0},
		{"[", 0},
		{"[IPv6:1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee]", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage sa;
		int rc = mx_parse_literal(cases[i].in, &sa);
		if (cases[i].family == 0) {
			if (rc != -1)
				fail_msg("%s: accepted", cases[i].in);
		} else if (rc != 0 || sa.ss_family != cases[i].family) {
			fail_msg("%s: rc %d family %d", cases[i].in, rc, sa.ss_family);
		}
	}
}

static void
test_replies(void **state)
{
	/* every non-OK status has an SMTP code and an RFC 3463 enhanced code */
	static const struct {
		enum mx_status s;
		const char *prefix;
	} cases[] = {
		{MX_TEMPFAIL, "451 4.4.3 "}, {MX_NXDOMAIN, "550 5.1.2 "}, {MX_NULLMX, "556 5.1.10 "},
		{MX_LOOP, "554 5.4.6 "}, {MX_NOADDR, "550 5.4.4 "},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(strncmp(mx_status_reply(cases[i].s), cases[i].prefix,
		    strlen(cases[i].prefix)), 0);
	assert_string_equal(mx_status_reply(MX_OK), "");
}

static void
test_same_ip(void **state)
{
	struct sockaddr_storage a = mkaddr("192.0.2.1"), b = mkaddr("192.0.2.1");
	((struct sockaddr_in *)&b)->sin_port = htons(25);
	assert_true(mx_same_ip(&a, &b));
	b = mkaddr("192.0.2.2");
	assert_false(mx_same_ip(&a, &b));
	b = mkaddr("::ffff:192.0.2.1");
	assert_false(mx_same_ip(&a, &b));
	a = mkaddr("2001:db8::1");
	b = mkaddr("2001:db8:0::1");
	assert_true(mx_same_ip(&a, &b));
}

/* ---- the DNS rdata parsers (dns.c) ---- */

static const struct name_case {
	const char *what;
	const char *wire;
	size_t len;
	int rc;
	const char *text;
	size_t used;
} name_cases[] = {
	{"root", "\0", 1, 0, ".", 1},
	{"two labels", "\4mail\7example\0", 14, 0, "mail.example", 14},
	{"trailing bytes are not consumed", "\1a\0xyz", 6, 0, "a", 3},
	{"escapes", "\3a.\\\3\001 z\0", 9, 0, "a\\.\\\\.\\001\\032z", 9},
	{"truncated label", "\5abc", 4, -1, NULL, 0},
	{"missing root", "\3abc", 4, -1, NULL, 0},
	{"empty input", "", 0, -1, NULL, 0},
	{"compression pointer", "\3abc\xc0\x0c", 6, -1, NULL, 0},
	{"extended label type 0x40", "\x41\0", 2, -1, NULL, 0},
	{"extended label type 0x80", "\x81\0", 2, -1, NULL, 0},
};

static void
test_dns_names(void **state)
{
	for (size_t i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
		const struct name_case *c = &name_cases[i];
		buf_t b = BUF_INIT;
		buf_puts(&b, "keep:");
		size_t used = 0;
		int rc = dns_name_to_text((const uint8_t *)c->wire, c->len, &used, &b);
		if (rc != c->rc)
			fail_msg("%s: rc %d", c->what, rc);
		if (rc == 0) {
			if (strcmp(b.data + 5, c->text) != 0 || used != c->used)
				fail_msg("%s: \"%s\" used %zu", c->what, b.data + 5, used);
		} else {
			assert_string_equal(buf_cstr(&b), "keep:"); /* untouched on error */
		}
		buf_free(&b);
	}
}

static void
test_dns_name_limits(void **state)
{
	uint8_t w[300];
	size_t used;
	buf_t b = BUF_INIT;
	/* a 63-octet label is fine, 64 is not (0x40 is an extended type) */
	memset(w, 'a', sizeof(w));
	w[0] = 63;
	w[64] = 0;
	assert_int_equal(dns_name_to_text(w, 65, &used, &b), 0);
	assert_int_equal(b.len, 63);
	buf_reset(&b);
	/* 255 octets in all is the maximum: 4 x (1 + 61) + 1 + 1 + 1 ... */
	size_t pos = 0;
	for (int i = 0; i < 4; i++) {
		w[pos] = 62;
		memset(w + pos + 1, 'b', 62);
		pos += 63;
	}
	w[pos++] = 1; /* 252 + 2 = 254 */
	w[pos++] = 'c';
	w[pos++] = 0; /* 255 */
	assert_int_equal(dns_name_to_text(w, pos, &used, &b), 0);
	assert_int_equal(used, 255);
	buf_reset(&b);
	w[pos - 3] = 2;
	w[pos - 1] = 'c';
	w[pos] = 0; /* 256 */
	assert_int_equal(dns_name_to_text(w, pos + 1, &used, &b), -1);
	buf_free(&b);
}

static const struct rr_case {
	const char *what;
	int type;
	const char *rdata;
	size_t len;
	int rc;
	const char *want; /* MX "pref name", A/AAAA text, TLSA "u s m len" */
} rr_cases[] = {
	{"MX", DNS_T_MX, "\0\12\2mx\7example\0", 14, 0, "10 mx.example"},
	{"null MX", DNS_T_MX, "\0\0\0", 3, 0, "0 ."},
	{"MX max pref", DNS_T_MX, "\xff\xff\1a\0", 5, 0, "65535 a"},
	{"MX short", DNS_T_MX, "\0\12", 2, -1, NULL},
	{"MX trailing garbage", DNS_T_MX, "\0\12\1a\0z", 6, -1, NULL},
	{"MX truncated name", DNS_T_MX, "\0\12\5ab", 5, -1, NULL},
	{"MX compressed", DNS_T_MX, "\0\12\xc0\x0c", 4, -1, NULL},
	{"A", DNS_T_A, "\xc0\0\2\1", 4, 0, "192.0.2.1"},
	{"A short", DNS_T_A, "\xc0\0\2", 3, -1, NULL},
	{"A long", DNS_T_A, "\xc0\0\2\1\0", 5, -1, NULL},
	{"AAAA", DNS_T_AAAA, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\1", 16, 0, "2001:db8::1"},
	{"AAAA short", DNS_T_AAAA, "\x20\x01", 2, -1, NULL},
	{"TLSA", DNS_T_TLSA, "\3\1\1\xaa\xbb", 5, 0, "3 1 1 2"},
	{"TLSA empty data", DNS_T_TLSA, "\3\1\1", 3, 0, "3 1 1 0"},
	{"TLSA short", DNS_T_TLSA, "\3\1", 2, -1, NULL},
	{"other type is raw", DNS_T_TXT, "\3abc", 4, 0, ""},
};

static void
test_dns_rr_table(void **state)
{
	for (size_t i = 0; i < sizeof(rr_cases) / sizeof(rr_cases[0]); i++) {
		const struct rr_case *c = &rr_cases[i];
		dns_result_t r = {.rrtype = c->type};
		const uint8_t *data[1] = {(const uint8_t *)c->rdata};
		size_t len[1] = {c->len};
		int rc = dns_result_parse(&r, data, len, 1);
		if (rc != c->rc)
			fail_msg("%s: rc %d", c->what, rc);
		if (rc != 0) {
			assert_null(r.rr);
			assert_int_equal(r.n, 0);
			continue;
		}
		char got[300] = "";
		const dns_rr_t *rr = &r.rr[0];
		if (c->type == DNS_T_MX)
			snprintf(got, sizeof(got), "%u %s", rr->u.mx.pref, rr->u.mx.exchange);
		else if (c->type == DNS_T_A || c->type == DNS_T_AAAA)
			snprintf(got, sizeof(got), "%s", rr->u.addr.text);
		else if (c->type == DNS_T_TLSA)
			snprintf(got, sizeof(got), "%u %u %u %zu", rr->u.tlsa.usage,
			    rr->u.tlsa.selector, rr->u.tlsa.mtype, rr->u.tlsa.len);
		if (strcmp(got, c->want) != 0)
			fail_msg("%s: got \"%s\" want \"%s\"", c->what, got, c->want);
		assert_ptr_equal(rr->rdata, data[0]);
		assert_int_equal(rr->rdlen, c->len);
		dns_result_clear(&r);
	}
}

/* all or nothing: one bad record fails the whole answer */
static void
test_dns_all_or_nothing(void **state)
{
	const uint8_t *data[3] = {(const uint8_t *)"\0\1\1a\0", (const uint8_t *)"\0\2\1b\0",
	    (const uint8_t *)"\0\3\5b"};
	size_t len[3] = {5, 5, 4};
	dns_result_t r = {.rrtype = DNS_T_MX};
	assert_int_equal(dns_result_parse(&r, data, len, 3), -1);
	assert_null(r.rr);
	assert_int_equal(dns_result_parse(&r, data, len, 2), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.rr[1].u.mx.exchange, "b");
	dns_result_clear(&r);
	data[1] = NULL;
	assert_int_equal(dns_result_parse(&r, data, len, 2), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_table),
		cmocka_unit_test(test_order_default_limit),
		cmocka_unit_test(test_shuffle_keeps_groups),
		cmocka_unit_test(test_shuffle_rnd_bounds),
		cmocka_unit_test(test_order_empty),
		cmocka_unit_test(test_finish_table),
		cmocka_unit_test(test_literals),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_same_ip),
		cmocka_unit_test(test_dns_names),
		cmocka_unit_test(test_dns_name_limits),
		cmocka_unit_test(test_dns_rr_table),
		cmocka_unit_test(test_dns_all_or_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
