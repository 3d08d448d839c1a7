/*
 * router.c - recipient expansion at RCPT time, routing and transport
 * lookup at delivery time (see router.h for the lookup order).
 *
 * Keys. Every lookup key is built in canonical SMTP form by tables_key()
 * (common/tables.h), the form tables_load() requires of every table key,
 * so a key can never silently fail to match.
 *
 * Guarantees: router_expand() terminates: it stops at depth 16, on any
 * cycle, and after ROUTER_MAX_NODES addresses. Maildir paths are built only
 * from validated table keys, never from what a client sent.
 * It must not: do I/O, or modify the tables.
 */
#include "deliver/router.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/xalloc.h"
#include "mailauth/srs.h"

#define ROUTER_MAX_DEPTH 16
#define ROUTER_MAX_NODES 20000 /* addresses looked at in one expansion */

static const char ERR_UNKNOWN[] = "550 5.1.1 Recipient address rejected: user unknown";
static const char ERR_UNKNOWN_TARGET[] =
    "550 5.1.1 Recipient address rejected: alias target unknown";
static const char ERR_RELAY[] = "554 5.7.1 Relay access denied";
static const char ERR_LOOP[] = "554 5.4.6 Alias expansion loop";
static const char ERR_TOO_BIG[] = "554 5.4.6 Alias expansion too large";
/* SRS (docs/srs.md): a bounce address we did not make, or made too long
 * ago, names no mailbox: X.1.1, "bad destination mailbox address" (RFC
 * 3463 section 3.2), as an unknown user is */
static const char ERR_SRS_HASH[] = "550 5.1.1 Recipient address rejected: invalid SRS address";
static const char ERR_SRS_SYNTAX[] =
    "550 5.1.1 Recipient address rejected: malformed SRS address";
static const char ERR_SRS_EXPIRED[] =
    "550 5.1.1 Recipient address rejected: expired SRS address";
static const char ERR_SRS_NONE[] =
    "550 5.1.1 Recipient address rejected: no SRS secret to verify the address with";

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static void
lowercase(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
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
/* transports                                                          */

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
		char *k = tables_key(cand[i], domain);
		e = table_get(t->mailboxes, k);
		xfree(k);
		if (e == NULL) {
			k = tables_key_local(cand[i]);
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
	char *a = tables_key(local, domain);
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
			r = tables_split_addr(local, v + 1, &vl, &vd);
		else
			r = tables_split_addr(v, domain, &vl, &vd);
		if (r < 0) { /* tables_load() refuses these; be safe anyway */
			x->err = ERR_UNKNOWN_TARGET;
			return ROUTER_UNKNOWN_USER;
		}
		char *id = tables_key(vl, vd);
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
		*matched = tables_key(cand, domain);
		lowercase(*matched);
	}
	return e;
}

/* SRS, mailauth/srs.h */
static bool
is_srs_domain(const config_t *c, const char *domain)
{
	return c->srs_domain && strcasecmp(c->srs_domain, domain) == 0;
}

/* local@srs_domain is an SRS0/SRS1 address: verify it, then expand the
 * address it stands for like one our own tables produced (it may go
 * remote: that is where the bounce belongs) */
static enum router_status
expand_srs(xctx_t *x, const char *local, const char *domain, int depth)
{
	buf_t ol = BUF_INIT, od = BUF_INIT;
	enum srs_status ss = srs_reverse((const char *const *)x->t->srs_secrets,
	    x->t->nsrs_secrets, local, strlen(local), (int64_t)time(NULL),
	    x->c->srs_max_age / 86400, &ol, &od);
	enum router_status st = ROUTER_UNKNOWN_USER;
	char *vl = NULL, *vd = NULL;
	if (ss == SRS_OK) {
		/* the decoded address must be a valid one */
		char *a = tables_key(buf_cstr(&ol), buf_cstr(&od));
		if (tables_split_addr(a, NULL, &vl, &vd) < 0)
			ss = SRS_BAD_SYNTAX;
		else if (x->trace) {
			char *k = tables_key(local, domain);
			x->trace(x->trace_arg, depth, "srs", k, a);
			xfree(k);
		}
		xfree(a);
	}
	switch (ss) {
	case SRS_OK: st = expand(x, vl, vd, depth + 1, true, 0); break;
	case SRS_BAD_HASH: x->err = ERR_SRS_HASH; break;
	case SRS_EXPIRED: x->err = ERR_SRS_EXPIRED; break;
	case SRS_NO_SECRET: x->err = ERR_SRS_NONE; break;
	default: x->err = ERR_SRS_SYNTAX; break;
	}
	xfree(vl);
	xfree(vd);
	buf_free(&ol);
	buf_free(&od);
	return st;
}

static enum router_status
expand_node(xctx_t *x, const char *local, const char *domain, int depth, bool from_alias,
    unsigned skip)
{
	/* 0. SRS bounce addresses in srs_domain, before any table */
	if (is_srs_domain(x->c, domain) && srs_is_srs(local, strlen(local)))
		return expand_srs(x, local, domain, depth);

	const config_t *c = x->c;
	const tables_t *t = x->t;
	char *base = base_of(c, local);
	char *matched = NULL;
	const table_entry_t *e = NULL;
	enum router_status st;

	/* 1. virtual: local@domain, base@domain, @domain (Postfix virtual(5) order) */
	if (!(skip & SKIP_VIRTUAL)) {
		e = lookup(t->virtual_, tables_key(local, domain), local, domain, &matched);
		if (e == NULL && base)
			e = lookup(t->virtual_, tables_key(base, domain), base, domain, &matched);
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
			e = lookup(t->aliases, tables_key_local(local), local, domain, &matched);
			if (e == NULL && base)
				e = lookup(t->aliases, tables_key_local(base), base, domain, &matched);
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

	/* the SRS domain is ours: it holds only SRS addresses (step 0) and
	 * the postmaster (RFC 5321 section 4.5.1), who is the first local
	 * domain's */
	if (is_srs_domain(c, domain)) {
		if (strcasecmp(local, "postmaster") == 0 && c->nlocal_domains > 0 &&
		    !is_srs_domain(c, c->local_domains[0])) {
			st = expand(x, "postmaster", c->local_domains[0], depth + 1, true, 0);
		} else {
			x->err = depth ? ERR_UNKNOWN_TARGET : ERR_UNKNOWN;
			st = ROUTER_UNKNOWN_USER;
		}
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
	char *a = tables_key(local, domain);
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
	if (addr == NULL || strchr(addr, '@') == NULL || tables_split_addr(addr, NULL, &local, &domain) < 0)
		return -1;
	if (config_is_local_domain(c, domain)) {
		char *mlocal = NULL;
		const table_entry_t *e = mailbox_find(c, t, local, domain, &mlocal);
		if (e) {
			/* the directory comes from the validated key, never from addr */
			char *lc = xstrdup(mlocal);
			lowercase(lc);
			out->kind = ROUTE_LOCAL;
			out->mailbox = tables_key(lc, domain);
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

/* ------------------------------------------------------------------ */
/* SRS: the senders of forwarded recipients                            */

/* Was this recipient forwarded to another domain by our own tables? It
 * came from a different address the client gave (an alias or virtual
 * entry, or an SRS bounce address, expanded it) and routes remote. */
static bool
rcpt_forwarded(const config_t *c, const tables_t *t, const env_rcpt_t *r)
{
	if (r->orig == NULL || r->addr == NULL)
		return false;
	char *ol, *od;
	if (tables_split_addr(r->orig, NULL, &ol, &od) == 0) {
		/* the same address written another way ("bob"@x): not expanded */
		char *k = tables_key(ol, od);
		bool same = strcasecmp(k, r->addr) == 0;
		xfree(k);
		xfree(ol);
		xfree(od);
		if (same)
			return false;
	}
	route_t rt;
	router_final(c, t, r->addr, &rt);
	bool remote = rt.kind == ROUTE_REMOTE;
	route_free(&rt);
	return remote;
}

/* a sender domain that is ours, or excluded: never rewritten */
static bool
sender_domain_ours(const config_t *c, const char *domain)
{
	if (config_is_local_domain(c, domain) || config_is_virtual_domain(c, domain) ||
	    is_srs_domain(c, domain))
		return true;
	for (size_t i = 0; i < c->nsrs_exclude_domains; i++)
		if (strcasecmp(c->srs_exclude_domains[i], domain) == 0)
			return true;
	return false;
}

bool
router_forwards(const config_t *c, const tables_t *t, const envelope_t *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (rcpt_forwarded(c, t, &env->rcpt[i]))
			return true;
	return false;
}

size_t
router_srs_envelope(const config_t *c, const tables_t *t, envelope_t *env, int64_t now)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		xfree(env->rcpt[i].sender);
		env->rcpt[i].sender = NULL;
	}
	if (c->srs_domain == NULL || t->nsrs_secrets == 0 || env->sender == NULL ||
	    env->sender[0] == '\0')
		return 0;
	char *sl, *sd;
	if (tables_split_addr(env->sender, NULL, &sl, &sd) < 0)
		return 0; /* <Postmaster> without a domain, or not an address */
	size_t n = 0;
	char *srs = NULL;
	bool tried = false;
	if (!sender_domain_ours(c, sd)) {
		for (size_t i = 0; i < env->nrcpt; i++) {
			if (!rcpt_forwarded(c, t, &env->rcpt[i]))
				continue;
			if (!tried) {
				tried = true;
				buf_t b = BUF_INIT;
				if (srs_forward((const char *const *)t->srs_secrets, t->nsrs_secrets, sl,
				    strlen(sl), sd, now, &b) == SRS_OK) {
					char *dom = xstrdup(c->srs_domain);
					lowercase(dom);
					srs = tables_key(buf_cstr(&b), dom);
					xfree(dom);
				}
				buf_free(&b);
			}
			if (srs == NULL)
				break; /* too long: the message keeps its own sender */
			env->rcpt[i].sender = xstrdup(srs);
			n++;
		}
	}
	xfree(srs);
	xfree(sl);
	xfree(sd);
	return n;
}
