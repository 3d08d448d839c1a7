/*
 * router.c - recipient expansion at RCPT time and routing at delivery time
 * (see router.h for the lookup order).
 *
 * Keys. Every lookup key is built in canonical SMTP form: the unquoted
 * local part formatted by addr_format() (quoted only when it is not a
 * Dot-string) and the lowercased domain; tables compare keys ignoring ASCII
 * case. tables_load() refuses table keys that are not written that way, so
 * a key can never silently fail to match.
 *
 * Guarantees: tables_load() validates every entry (addresses parse, mailbox
 * keys belong to local domains and are safe as directory names: no '/', no
 * leading '.', so a Maildir path built from them stays under maildir_base;
 * no pipes, files or :include: in aliases) and reports all problems as
 * "file:line: message". router_expand() terminates: it stops at depth 16,
 * on any cycle, and after ROUTER_MAX_NODES addresses. Maildir paths are
 * built only from validated table keys, never from what a client sent.
 * It must not: do I/O after tables_load(), or modify the tables.
 */
#include "deliver/router.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

#define ROUTER_MAX_DEPTH 16
#define ROUTER_MAX_NODES 20000 /* addresses looked at in one expansion */

static const char ERR_UNKNOWN[] = "550 5.1.1 Recipient address rejected: user unknown";
static const char ERR_UNKNOWN_TARGET[] =
    "550 5.1.1 Recipient address rejected: alias target unknown";
static const char ERR_RELAY[] = "554 5.7.1 Relay access denied";
static const char ERR_LOOP[] = "554 5.4.6 Alias expansion loop";
static const char ERR_TOO_BIG[] = "554 5.4.6 Alias expansion too large";

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static void
lowercase(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* canonical "local@domain" for an unquoted local part */
static char *
fmt_addr(const char *local, const char *domain)
{
	buf_t b = BUF_INIT;
	addr_format(&b, local, strlen(local), domain);
	return buf_steal(&b);
}

/* canonical local part alone (quoted when needed) */
static char *
fmt_local(const char *local)
{
	char *s = fmt_addr(local, "x");
	char *at = strrchr(s, '@');
	if (at)
		*at = '\0';
	return s;
}

/* Parse "local@domain" (or "local" + default_domain) into its unquoted local
 * part and lowercased domain. -1 when it is not a valid address. */
static int
split_addr(const char *s, const char *default_domain, char **local, char **domain)
{
	char *tmp = NULL;
	const char *in = s;
	/* a bare local part: borrow a domain to have addr_parse check it */
	bool bare = strchr(s, '@') == NULL;
	if (bare) {
		if (default_domain == NULL)
			return -1;
		tmp = xasprintf("%s@%s", s, default_domain[0] ? default_domain : "x");
		in = tmp;
	}
	addr_t a;
	size_t used = 0;
	const char *err;
	size_t n = strlen(in);
	int r = addr_parse(in, n, ADDR_NO_BRACKETS | ADDR_UTF8, &a, &used, &err);
	xfree(tmp);
	if (r < 0)
		return -1;
	if (used != n || a.domain == NULL) {
		addr_free(&a);
		return -1;
	}
	buf_t b = BUF_INIT;
	addr_local_unquoted(&a, &b);
	*local = buf_steal(&b);
	*domain = xstrdup(bare ? default_domain : a.domain);
	lowercase(*domain);
	addr_free(&a);
	return 0;
}

/* local part without its +detail, or NULL when it has none */
static char *
base_of(const config_t *c, const char *local)
{
	if (c->recipient_delimiter == '\0')
		return NULL;
	const char *d = strchr(local, c->recipient_delimiter);
	if (d == NULL || d == local)
		return NULL;
	return xstrndup(local, (size_t)(d - local));
}

static bool
local_part_safe(const char *l)
{
	return l[0] != '\0' && l[0] != '.' && strchr(l, '/') == NULL;
}

/* unquote a table value used as a path: "a b" -> a b */
static char *
unquote_value(const char *v)
{
	size_t n = strlen(v);
	if (n < 2 || v[0] != '"' || v[n - 1] != '"')
		return xstrdup(v);
	buf_t b = BUF_INIT;
	for (size_t i = 1; i + 1 < n; i++) {
		if (v[i] == '\\' && i + 2 < n)
			i++;
		buf_putc(&b, v[i]);
	}
	return buf_steal(&b);
}

/* ------------------------------------------------------------------ */
/* loading and validation                                              */

static void terr(buf_t *errors, const table_entry_t *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
terr(buf_t *errors, const table_entry_t *e, const char *fmt, ...)
{
	if (errors == NULL)
		return;
	buf_printf(errors, "%s:%u: ", e->file, e->line);
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(errors, fmt, ap);
	va_end(ap);
	buf_putc(errors, '\n');
}

/* the key must be written as fmt_local()/fmt_addr() would write it */
static int
check_canonical(buf_t *errors, const table_entry_t *e, const char *local, const char *domain,
    bool with_domain)
{
	char *want = with_domain ? fmt_addr(local, domain) : fmt_local(local);
	int r = 0;
	if (strcasecmp(want, e->key) != 0) {
		terr(errors, e, "key \"%s\" must be written as \"%s\"", e->key, want);
		r = -1;
	}
	xfree(want);
	return r;
}

static int
check_mailboxes(const config_t *c, const table_t *t, buf_t *errors)
{
	int r = 0;
	for (size_t i = 0; i < table_count(t); i++) {
		const table_entry_t *e = table_entry_at(t, i);
		bool bare = strchr(e->key, '@') == NULL;
		char *local, *domain;
		if (split_addr(e->key, bare ? "" : NULL, &local, &domain) < 0) {
			terr(errors, e, "mailbox \"%s\" is not a valid address or local part", e->key);
			r = -1;
			continue;
		}
		if (check_canonical(errors, e, local, domain, !bare) < 0) {
			r = -1;
		} else if (!local_part_safe(local) || strcmp(local, "..") == 0) {
			terr(errors, e, "mailbox \"%s\": a local part used as a directory name must "
			    "not contain '/' or start with '.' (give the Maildir path explicitly)",
			    e->key);
			r = -1;
		} else if (!bare && !config_is_local_domain(c, domain)) {
			terr(errors, e, "mailbox \"%s\": domain %s is not in local_domains", e->key,
			    domain);
			r = -1;
		}
		if (e->nvalues > 1) {
			terr(errors, e, "mailbox \"%s\": expected at most one value (the Maildir "
			    "path), got %zu", e->key, e->nvalues);
			r = -1;
		}
		xfree(local);
		xfree(domain);
	}
	return r;
}

/* an alias or virtual value: "local", "local@domain" or "@domain" */
static int
check_value(buf_t *errors, const table_entry_t *e, const char *v, bool bare_ok, bool at_ok)
{
	if (v[0] == '|' || v[0] == '/' || strncasecmp(v, ":include:", 9) == 0) {
		terr(errors, e, "\"%s\": delivery to commands, files and :include: lists is not "
		    "supported", v);
		return -1;
	}
	char *local, *domain;
	if (v[0] == '@') {
		if (!at_ok || strchr(v + 1, '@') != NULL ||
		    split_addr("x", v + 1, &local, &domain) < 0) {
			terr(errors, e, "\"%s\" is not a valid address", v);
			return -1;
		}
	} else if (strchr(v, '@') == NULL && !bare_ok) {
		terr(errors, e, "\"%s\": a virtual alias target must be a full address "
		    "(user@domain)", v);
		return -1;
	} else if (split_addr(v, "x", &local, &domain) < 0) {
		terr(errors, e, "\"%s\" is not a valid address", v);
		return -1;
	}
	xfree(local);
	xfree(domain);
	return 0;
}

static int
check_aliases(const table_t *t, buf_t *errors)
{
	int r = 0;
	for (size_t i = 0; i < table_count(t); i++) {
		const table_entry_t *e = table_entry_at(t, i);
		char *local, *domain;
		if (strchr(e->key, '@')) {
			terr(errors, e, "alias \"%s\": an alias is a local part without @domain (use "
			    "the virtual table for full addresses)", e->key);
			r = -1;
		} else if (split_addr(e->key, "x", &local, &domain) < 0) {
			terr(errors, e, "alias \"%s\" is not a valid local part", e->key);
			r = -1;
		} else {
			if (check_canonical(errors, e, local, domain, false) < 0)
				r = -1;
			xfree(local);
			xfree(domain);
		}
		for (size_t j = 0; j < e->nvalues; j++)
			if (check_value(errors, e, e->values[j], true, false) < 0)
				r = -1;
	}
	return r;
}

static int
check_virtual(const table_t *t, buf_t *errors)
{
	int r = 0;
	for (size_t i = 0; i < table_count(t); i++) {
		const table_entry_t *e = table_entry_at(t, i);
		char *local, *domain;
		if (e->key[0] == '@') {
			/* catch-all "@domain" */
			if (split_addr("x", e->key + 1, &local, &domain) < 0 ||
			    strchr(e->key + 1, '@') != NULL) {
				terr(errors, e, "\"%s\" is not a valid \"@domain\" key", e->key);
				r = -1;
			} else {
				if (strcasecmp(domain, e->key + 1) != 0) {
					terr(errors, e, "key \"%s\" must be written as \"@%s\"", e->key,
					    domain);
					r = -1;
				}
				xfree(local);
				xfree(domain);
			}
		} else if (strchr(e->key, '@') == NULL ||
		    split_addr(e->key, NULL, &local, &domain) < 0) {
			terr(errors, e, "\"%s\" is not a valid key (user@domain or @domain)", e->key);
			r = -1;
		} else {
			if (check_canonical(errors, e, local, domain, true) < 0)
				r = -1;
			xfree(local);
			xfree(domain);
		}
		if (e->nvalues == 0) {
			terr(errors, e, "\"%s\" has no value", e->key);
			r = -1;
		}
		for (size_t j = 0; j < e->nvalues; j++)
			if (check_value(errors, e, e->values[j], false, true) < 0)
				r = -1;
	}
	return r;
}

/* Every transport entry: one value, "smtp:" or "lmtp:" and a next hop. */
static int
check_transport(const table_t *t, buf_t *errors)
{
	int r = 0;
	for (size_t i = 0; i < table_count(t); i++) {
		const table_entry_t *e = table_entry_at(t, i);
		if (e->nvalues != 1) {
			terr(errors, e, "transport for \"%s\" needs exactly one next hop, e.g. smtp:[10.0.0.1]:25",
			    e->key);
			r = -1;
			continue;
		}
		const char *v = e->values[0];
		if ((strncmp(v, "smtp:", 5) != 0 && strncmp(v, "lmtp:", 5) != 0) || v[5] == '\0') {
			terr(errors, e, "transport \"%s\": expected smtp:HOST[:PORT], lmtp:HOST:PORT or lmtp:unix:/path", v);
			r = -1;
		}
	}
	return r;
}

tables_t *
tables_load(const config_t *c, buf_t *errors)
{
	tables_t *t = xcalloc(1, sizeof *t);
	t->mailboxes = c->mailboxes_file ? table_load(c->mailboxes_file, TABLE_MAP, errors)
	    : table_new_empty();
	t->aliases = c->aliases_file ? table_load(c->aliases_file, TABLE_ALIASES, errors)
	    : table_new_empty();
	t->virtual_ = c->virtual_file ? table_load(c->virtual_file, TABLE_MAP, errors)
	    : table_new_empty();
	t->transport = c->transport_file ? table_load(c->transport_file, TABLE_MAP, errors)
	    : table_new_empty();
	int r = 0;
	if (t->mailboxes == NULL || t->aliases == NULL || t->virtual_ == NULL || t->transport == NULL)
		r = -1;
	if (t->transport && check_transport(t->transport, errors) < 0)
		r = -1;
	if (t->mailboxes && check_mailboxes(c, t->mailboxes, errors) < 0)
		r = -1;
	if (t->aliases && check_aliases(t->aliases, errors) < 0)
		r = -1;
	if (t->virtual_ && check_virtual(t->virtual_, errors) < 0)
		r = -1;
	if (r < 0) {
		tables_free(t);
		return NULL;
	}
	return t;
}

void
tables_free(tables_t *t)
{
	if (t == NULL)
		return;
	table_free(t->mailboxes);
	table_free(t->aliases);
	table_free(t->virtual_);
	table_free(t->transport);
	xfree(t);
}

const char *
router_transport(const tables_t *t, const char *domain)
{
	if (!t->transport || table_count(t->transport) == 0)
		return NULL;
	const table_entry_t *e = table_get(t->transport, domain);
	if (e && e->nvalues == 1)
		return e->values[0];
	/* ".example.com" matches every subdomain of example.com */
	for (const char *p = strchr(domain, '.'); p; p = strchr(p + 1, '.')) {
		e = table_get(t->transport, p);
		if (e && e->nvalues == 1)
			return e->values[0];
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* mailboxes                                                           */

/* The mailbox entry for local@domain (a local domain): "local@domain",
 * "local", then the same for the base without +detail. *mlocal is set to
 * the candidate that matched: it equals the entry's (validated, safe) key
 * but for ASCII case, since keys are canonical and matched ignoring case. */
static const table_entry_t *
mailbox_find(const config_t *c, const tables_t *t, const char *local, const char *domain,
    char **mlocal)
{
	char *base = base_of(c, local);
	const char *cand[2] = {local, base};
	const table_entry_t *e = NULL;
	for (int i = 0; i < 2 && e == NULL && cand[i]; i++) {
		char *k = fmt_addr(cand[i], domain);
		e = table_get(t->mailboxes, k);
		xfree(k);
		if (e == NULL) {
			k = fmt_local(cand[i]);
			e = table_get(t->mailboxes, k);
			xfree(k);
		}
		if (e)
			*mlocal = xstrdup(cand[i]);
	}
	xfree(base);
	return e;
}

/* ------------------------------------------------------------------ */
/* expansion                                                           */

/* set of strings (open addressing; only grows) */
typedef struct strset {
	char **slot;
	size_t cap, n;
} strset_t;

static uint64_t
str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static bool
strset_has(const strset_t *s, const char *k)
{
	if (s->cap == 0)
		return false;
	for (size_t i = (size_t)str_hash(k) & (s->cap - 1); s->slot[i]; i = (i + 1) & (s->cap - 1))
		if (strcmp(s->slot[i], k) == 0)
			return true;
	return false;
}

static void
strset_add(strset_t *s, const char *k)
{
	if ((s->n + 1) * 2 > s->cap) {
		strset_t bigger = {xcalloc(s->cap ? s->cap * 2 : 64, sizeof(char *)),
		    s->cap ? s->cap * 2 : 64, 0};
		for (size_t i = 0; i < s->cap; i++) {
			if (s->slot[i] == NULL)
				continue;
			size_t j = (size_t)str_hash(s->slot[i]) & (bigger.cap - 1);
			while (bigger.slot[j])
				j = (j + 1) & (bigger.cap - 1);
			bigger.slot[j] = s->slot[i];
			bigger.n++;
		}
		xfree(s->slot);
		*s = bigger;
	}
	size_t i = (size_t)str_hash(k) & (s->cap - 1);
	while (s->slot[i]) {
		if (strcmp(s->slot[i], k) == 0)
			return;
		i = (i + 1) & (s->cap - 1);
	}
	s->slot[i] = xstrdup(k);
	s->n++;
}

static void
strset_free(strset_t *s)
{
	for (size_t i = 0; i < s->cap; i++)
		xfree(s->slot[i]);
	xfree(s->slot);
	memset(s, 0, sizeof *s);
}

#define SKIP_VIRTUAL 0x01 /* a self-reference in the virtual table */
#define SKIP_ALIAS 0x02   /* a self-reference in the aliases: straight to the mailbox */

typedef struct xctx {
	const config_t *c;
	const tables_t *t;
	bool relay_ok;
	dest_list_t *out;
	strset_t finals; /* lowercased final addresses already in out */
	strset_t done;   /* nodes fully expanded */
	char *path[ROUTER_MAX_DEPTH + 2]; /* nodes on the current chain */
	int npath;
	size_t nodes;
	const char *err;
	router_trace_fn *trace; /* router_expand_trace, or NULL */
	void *trace_arg;
} xctx_t;

static void
add_final(xctx_t *x, const char *local, const char *domain, int depth)
{
	char *a = fmt_addr(local, domain);
	char *id = xstrdup(a);
	lowercase(id);
	if (strset_has(&x->finals, id)) {
		xfree(a);
	} else {
		if (x->trace)
			x->trace(x->trace_arg, depth, NULL, NULL, a);
		strset_add(&x->finals, id);
		x->out->addrs = xrealloc(x->out->addrs, (x->out->n + 1) * sizeof *x->out->addrs);
		x->out->addrs[x->out->n++] = a;
	}
	xfree(id);
}

static enum router_status expand(xctx_t *x, const char *local, const char *domain, int depth,
    bool from_alias, unsigned skip);

/* expand every value of a table entry matched for local@domain; matched is
 * the canonical lowercased address the entry's key stands for */
static enum router_status
expand_values(xctx_t *x, const table_entry_t *e, const char *local, const char *domain,
    const char *matched, int depth, unsigned self_skip)
{
	for (size_t i = 0; i < e->nvalues; i++) {
		const char *v = e->values[i];
		if (x->trace)
			x->trace(x->trace_arg, depth, self_skip & SKIP_ALIAS ? "aliases" : "virtual", e->key, v);
		char *vl, *vd;
		int r;
		if (v[0] == '@') /* "@other.domain": the same local part there */
			r = split_addr(local, v + 1, &vl, &vd);
		else
			r = split_addr(v, domain, &vl, &vd);
		if (r < 0) { /* tables_load() refuses these; be safe anyway */
			x->err = ERR_UNKNOWN_TARGET;
			return ROUTER_UNKNOWN_USER;
		}
		char *id = fmt_addr(vl, vd);
		lowercase(id);
		enum router_status st;
		if (strcmp(id, matched) == 0)
			st = expand(x, local, domain, depth + 1, true, self_skip);
		else
			st = expand(x, vl, vd, depth + 1, true, 0);
		xfree(id);
		xfree(vl);
		xfree(vd);
		if (st != ROUTER_OK)
			return st;
	}
	return ROUTER_OK;
}

/* look up key (built from cand) in tab; sets *matched to the canonical
 * lowercased address the key stands for */
static const table_entry_t *
lookup(const table_t *tab, char *key, const char *cand, const char *domain, char **matched)
{
	const table_entry_t *e = table_get(tab, key);
	xfree(key);
	if (e) {
		*matched = fmt_addr(cand, domain);
		lowercase(*matched);
	}
	return e;
}

static enum router_status
expand_node(xctx_t *x, const char *local, const char *domain, int depth, bool from_alias,
    unsigned skip)
{
	const config_t *c = x->c;
	const tables_t *t = x->t;
	char *base = base_of(c, local);
	char *matched = NULL;
	const table_entry_t *e = NULL;
	enum router_status st;

	/* 1. virtual: local@domain, base@domain, @domain (Postfix virtual(5) order) */
	if (!(skip & SKIP_VIRTUAL)) {
		e = lookup(t->virtual_, fmt_addr(local, domain), local, domain, &matched);
		if (e == NULL && base)
			e = lookup(t->virtual_, fmt_addr(base, domain), base, domain, &matched);
		if (e == NULL) {
			char *k = xasprintf("@%s", domain);
			e = table_get(t->virtual_, k);
			if (e)
				matched = k;
			else
				xfree(k);
		}
		if (e) {
			st = expand_values(x, e, local, domain, matched, depth, SKIP_VIRTUAL);
			goto out;
		}
	}

	/* 2. local domains: aliases, then mailboxes */
	if (config_is_local_domain(c, domain)) {
		if (!(skip & SKIP_ALIAS)) {
			e = lookup(t->aliases, fmt_local(local), local, domain, &matched);
			if (e == NULL && base)
				e = lookup(t->aliases, fmt_local(base), base, domain, &matched);
			if (e) {
				st = expand_values(x, e, local, domain, matched, depth,
				    SKIP_VIRTUAL | SKIP_ALIAS);
				goto out;
			}
		}
		char *mlocal = NULL;
		if (mailbox_find(c, t, local, domain, &mlocal)) {
			xfree(mlocal);
			add_final(x, local, domain, depth);
			st = ROUTER_OK;
		} else {
			x->err = depth ? ERR_UNKNOWN_TARGET : ERR_UNKNOWN;
			st = ROUTER_UNKNOWN_USER;
		}
		goto out;
	}

	/* 3. virtual domains live only in the virtual table */
	if (config_is_virtual_domain(c, domain)) {
		x->err = depth ? ERR_UNKNOWN_TARGET : ERR_UNKNOWN;
		st = ROUTER_UNKNOWN_USER;
		goto out;
	}

	/* 4. elsewhere: relaying, allowed for trusted clients and for what our
	 * own tables produced */
	if (x->relay_ok || from_alias) {
		add_final(x, local, domain, depth);
		st = ROUTER_OK;
	} else {
		x->err = ERR_RELAY;
		st = ROUTER_RELAY_DENIED;
	}
out:
	xfree(base);
	xfree(matched);
	return st;
}

static enum router_status
expand(xctx_t *x, const char *local, const char *domain, int depth, bool from_alias,
    unsigned skip)
{
	if (depth > ROUTER_MAX_DEPTH) {
		x->err = ERR_LOOP;
		return ROUTER_LOOP;
	}
	if (++x->nodes > ROUTER_MAX_NODES) {
		x->err = ERR_TOO_BIG;
		return ROUTER_LOOP;
	}
	/* the node: address, what it skips, and whether it may go remote */
	char *a = fmt_addr(local, domain);
	char *id = xasprintf("%u%c%s", skip, from_alias ? 'a' : '-', a);
	xfree(a);
	lowercase(id);
	enum router_status st = ROUTER_OK;
	bool on_path = false;
	for (int i = 0; i < x->npath && !on_path; i++)
		on_path = strcmp(x->path[i], id) == 0;
	if (on_path) {
		x->err = ERR_LOOP;
		st = ROUTER_LOOP;
	} else if (!strset_has(&x->done, id)) {
		x->path[x->npath++] = id; /* depth <= ROUTER_MAX_DEPTH: fits */
		st = expand_node(x, local, domain, depth, from_alias, skip);
		x->npath--;
		if (st == ROUTER_OK)
			strset_add(&x->done, id);
	}
	xfree(id);
	return st;
}

enum router_status
router_expand(const config_t *c, const tables_t *t, const addr_t *rcpt, bool relay_ok,
    dest_list_t *out, const char **err)
{
	return router_expand_trace(c, t, rcpt, relay_ok, out, err, NULL, NULL);
}

enum router_status
router_expand_trace(const config_t *c, const tables_t *t, const addr_t *rcpt, bool relay_ok,
    dest_list_t *out, const char **err, router_trace_fn *trace, void *arg)
{
	out->addrs = NULL;
	out->n = 0;
	*err = NULL;

	buf_t b = BUF_INIT;
	addr_local_unquoted(rcpt, &b);
	char *local = buf_steal(&b);
	const char *domain = rcpt->domain;
	if (domain == NULL || domain[0] == '\0') {
		/* <Postmaster> without a domain (RFC 5321 §4.1.1.3): ours */
		if (config_is_local_domain(c, c->hostname))
			domain = c->hostname;
		else if (c->nlocal_domains > 0)
			domain = c->local_domains[0];
		else {
			xfree(local);
			*err = ERR_UNKNOWN;
			return ROUTER_UNKNOWN_USER;
		}
	}
	char *dom = xstrdup(domain);
	lowercase(dom);

	xctx_t x;
	memset(&x, 0, sizeof x);
	x.c = c;
	x.t = t;
	x.relay_ok = relay_ok;
	x.out = out;
	x.trace = trace;
	x.trace_arg = arg;
	enum router_status st = expand(&x, local, dom, 0, false, 0);
	strset_free(&x.finals);
	strset_free(&x.done);
	xfree(local);
	xfree(dom);
	if (st != ROUTER_OK) {
		dest_list_free(out);
		*err = x.err ? x.err : ERR_UNKNOWN;
		return st;
	}
	if (out->n == 0) { /* cannot happen: every success adds a final */
		*err = ERR_UNKNOWN;
		return ROUTER_UNKNOWN_USER;
	}
	return ROUTER_OK;
}

void
dest_list_free(dest_list_t *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++)
		xfree(d->addrs[i]);
	xfree(d->addrs);
	d->addrs = NULL;
	d->n = 0;
}

/* ------------------------------------------------------------------ */
/* delivery-time routing                                               */

int
router_final(const config_t *c, const tables_t *t, const char *addr, route_t *out)
{
	memset(out, 0, sizeof *out);
	out->kind = ROUTE_NONE;
	char *local, *domain;
	if (addr == NULL || strchr(addr, '@') == NULL || split_addr(addr, NULL, &local, &domain) < 0)
		return -1;
	if (config_is_local_domain(c, domain)) {
		char *mlocal = NULL;
		const table_entry_t *e = mailbox_find(c, t, local, domain, &mlocal);
		if (e) {
			/* the directory comes from the validated key, never from addr */
			char *lc = xstrdup(mlocal);
			lowercase(lc);
			out->kind = ROUTE_LOCAL;
			out->mailbox = fmt_addr(lc, domain);
			lowercase(out->mailbox);
			if (e->nvalues > 0) {
				char *p = unquote_value(e->values[0]);
				out->maildir = p[0] == '/' ? xstrdup(p)
				    : xasprintf("%s/%s", c->maildir_base, p);
				xfree(p);
			} else {
				out->maildir = xasprintf("%s/%s/%s", c->maildir_base, domain, lc);
			}
			xfree(lc);
			xfree(mlocal);
		}
	} else if (!config_is_virtual_domain(c, domain)) {
		out->kind = ROUTE_REMOTE;
		out->domain = xstrdup(domain);
	}
	xfree(local);
	xfree(domain);
	return 0;
}

void
route_free(route_t *r)
{
	if (r == NULL)
		return;
	xfree(r->maildir);
	xfree(r->mailbox);
	xfree(r->domain);
	memset(r, 0, sizeof *r);
	r->kind = ROUTE_NONE;
}
