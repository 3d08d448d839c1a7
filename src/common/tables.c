/*
 * tables.c - loading and validating the lookup tables (see tables.h for
 * what is checked and why).
 *
 * Guarantees: every entry of every table is checked and every problem is
 * reported (not just the first), each as "file:line: message"; a table set
 * with any problem is not returned (nothing of a failed load is kept).
 * Must not: modify a table once loaded.
 */
#include "common/tables.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/addr.h"
#include "lib/xalloc.h"

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
char *
tables_key(const char *local, const char *domain)
{
	buf_t b = BUF_INIT;
	addr_format(&b, local, strlen(local), domain);
	return buf_steal(&b);
}

/* canonical local part alone (quoted when needed) */
char *
tables_key_local(const char *local)
{
	char *s = tables_key(local, "x");
	char *at = strrchr(s, '@');
	if (at)
		*at = '\0';
	return s;
}

int
tables_split_addr(const char *s, const char *default_domain, char **local, char **domain)
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


static bool
local_part_safe(const char *l)
{
	return l[0] != '\0' && l[0] != '.' && strchr(l, '/') == NULL;
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

/* the key must be written as tables_key_local()/tables_key() would write it */
static int
check_canonical(buf_t *errors, const table_entry_t *e, const char *local, const char *domain,
    bool with_domain)
{
	char *want = with_domain ? tables_key(local, domain) : tables_key_local(local);
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
		if (tables_split_addr(e->key, bare ? "" : NULL, &local, &domain) < 0) {
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
		    tables_split_addr("x", v + 1, &local, &domain) < 0) {
			terr(errors, e, "\"%s\" is not a valid address", v);
			return -1;
		}
	} else if (strchr(v, '@') == NULL && !bare_ok) {
		terr(errors, e, "\"%s\": a virtual alias target must be a full address "
		    "(user@domain)", v);
		return -1;
	} else if (tables_split_addr(v, "x", &local, &domain) < 0) {
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
		} else if (tables_split_addr(e->key, "x", &local, &domain) < 0) {
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
			if (tables_split_addr("x", e->key + 1, &local, &domain) < 0 ||
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
		    tables_split_addr(e->key, NULL, &local, &domain) < 0) {
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
	for (size_t i = 0; i < t->nsrs_secrets; i++) {
		explicit_bzero(t->srs_secrets[i], strlen(t->srs_secrets[i]));
		xfree(t->srs_secrets[i]);
	}
	xfree(t->srs_secrets);
	xfree(t);
}
