/*
 * fuzz_table.c - libFuzzer target for src/common/table.c and the expansion
 * in src/deliver/router.c.
 *
 * The first input byte picks a mode:
 *   'A' / 'M'  the rest is one TABLE_ALIASES / TABLE_MAP file;
 *   'R'        the rest is "mailboxes\n%%\naliases\n%%\nvirtual\n%%\nrecipients":
 *              three tables, then one recipient per line run through
 *              router_expand() and router_final() with a fixed configuration.
 * Invariants: a table either loads with no error text or fails with only
 * "fuzz.tab:LINE: message" lines; every entry is found again by its key,
 * in any ASCII case; no entry has a control octet; expansion terminates,
 * succeeds with at least one address and no duplicate, or fails with a
 * complete 5xx reply line. Any broken invariant abort()s. Must not leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/config.h"
#include "common/table.h"
#include "deliver/router.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_errors(const char *e)
{
	CHECK(*e != '\0');
	while (*e) {
		const char *nl = strchr(e, '\n');
		CHECK(nl != NULL);
		CHECK(strncmp(e, "fuzz.tab:", 9) == 0);
		const char *p = e + 9;
		CHECK(*p >= '0' && *p <= '9');
		while (*p >= '0' && *p <= '9')
			p++;
		CHECK(p[0] == ':' && p[1] == ' ');
		e = nl + 1;
	}
}

static void
check_clean(const char *s)
{
	for (; *s; s++)
		CHECK(((unsigned char)*s >= 0x20 || *s == '\t') && *s != 0x7f);
}

static void
check_table(const table_t *t)
{
	for (size_t i = 0; i < table_count(t); i++) {
		const table_entry_t *e = table_entry_at(t, i);
		CHECK(e->key[0] != '\0');
		check_clean(e->key);
		CHECK(table_get(t, e->key) == e);
		char *swapped = strdup(e->key);
		for (char *p = swapped; *p; p++)
			if ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z')
				*p ^= 0x20;
		CHECK(table_get(t, swapped) == e);
		free(swapped);
		for (size_t j = 0; j < e->nvalues; j++) {
			CHECK(e->values[j][0] != '\0');
			check_clean(e->values[j]);
		}
	}
}

static table_t *
parse_table(const char *p, size_t n, enum table_kind kind)
{
	buf_t e = BUF_INIT;
	table_t *t = table_parse_buf("fuzz.tab", p, n, kind, &e);
	if (t) {
		CHECK(e.len == 0);
		check_table(t);
	} else {
		check_errors(buf_cstr(&e));
	}
	buf_free(&e);
	return t;
}

static config_t *cfg;

static void
route(const tables_t *t, const char *rcpt, size_t n)
{
	addr_t a;
	size_t used;
	const char *err;
	if (addr_parse(rcpt, n, ADDR_NO_BRACKETS | ADDR_UTF8, &a, &used, &err) < 0)
		return;
	for (int relay = 0; relay < 2; relay++) {
		dest_list_t d;
		enum router_status st = router_expand(cfg, t, &a, relay, &d, &err);
		if (st != ROUTER_OK) {
			CHECK(err && err[0] == '5' && strlen(err) > 10);
			CHECK(d.n == 0);
			continue;
		}
		CHECK(d.n >= 1);
		for (size_t i = 0; i < d.n; i++) {
			for (size_t j = 0; j < i; j++)
				CHECK(strcmp(d.addrs[i], d.addrs[j]) != 0);
			route_t r;
			if (router_final(cfg, t, d.addrs[i], &r) == 0) {
				if (r.kind == ROUTE_LOCAL)
					CHECK(r.maildir && r.mailbox);
				if (r.kind == ROUTE_REMOTE)
					CHECK(r.domain && r.domain[0]);
				route_free(&r);
			}
		}
		dest_list_free(&d);
	}
	addr_free(&a);
}

/* next part of s[0..n) up to "\n%%\n" */
static size_t
part(const char *s, size_t n, size_t *skip)
{
	for (size_t i = 0; i + 4 <= n; i++) {
		if (memcmp(s + i, "\n%%\n", 4) == 0) {
			*skip = i + 4;
			return i;
		}
	}
	*skip = n;
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	if (data[0] == 'A' || data[0] == 'M') {
		table_free(parse_table(s, n, data[0] == 'A' ? TABLE_ALIASES : TABLE_MAP));
		return 0;
	}
	if (data[0] != 'R')
		return 0;
	if (cfg == NULL) {
		static const char text[] = "local_domains = localhost, example.net\n"
		    "virtual_domains = example.org\nmaildir_base = /srv/mail\n";
		buf_t e = BUF_INIT;
		cfg = config_parse_buf("/fuzz/tern.conf", text, sizeof text - 1, &e);
		CHECK(cfg != NULL);
		buf_free(&e);
	}
	tables_t t = {NULL, NULL, NULL};
	size_t skip, len;
	len = part(s, n, &skip);
	t.mailboxes = parse_table(s, len, TABLE_MAP);
	s += skip, n -= skip;
	len = part(s, n, &skip);
	t.aliases = parse_table(s, len, TABLE_ALIASES);
	s += skip, n -= skip;
	len = part(s, n, &skip);
	t.virtual_ = parse_table(s, len, TABLE_MAP);
	s += skip, n -= skip;
	if (t.mailboxes && t.aliases && t.virtual_) {
		/* no validation (tables_load's checks need files): the expansion
		 * must be safe on any table content */
		for (int lines = 0; n > 0 && lines < 8; lines++) {
			const char *nl = memchr(s, '\n', n);
			size_t l = nl ? (size_t)(nl - s) : n;
			route(&t, s, l);
			s += l + (nl ? 1 : 0);
			n -= l + (nl ? 1 : 0);
		}
	}
	table_free(t.mailboxes);
	table_free(t.aliases);
	table_free(t.virtual_);
	return 0;
}
