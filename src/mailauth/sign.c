/*
 * sign.c - MAILAUTH: outbound DKIM signing (mailauth_sign_wanted and
 * mailauth_sign of mailauth.h; the key table of sign.h).
 *
 * Which domain signs: the author's, the domain of the From: field (RFC
 * 5322), since DMARC passes on DKIM only with a d= aligned with it (RFC
 * 7489 section 3.1.1), as opendkim's signing table does; when the From:
 * field is missing, holds no usable address or addresses in several
 * domains, the envelope sender's domain. For that domain the table is
 * searched for the domain itself, then for each parent domain (a key for
 * example.com signs mail From: a.example.com with d=example.com, which
 * relaxed alignment accepts); every line of the domain found adds one
 * signature (dual signing: RSA and Ed25519). No line: nothing is added.
 *
 * mailauth_sign_wanted() answers true whenever a key is configured: the
 * From: domain is known only from the content, so mailauth_sign() decides.
 *
 * Guarantees: mailauth_sign() reads only its arguments and the keys that
 * hang on c, which live as long as c (smtpd holds it across the worker):
 * safe on any thread. Must not: log (the caller does, with the queue ID).
 */
#include "mailauth/sign.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/fsutil.h"
#include "lib/xalloc.h"
#include "mailauth/arc.h"
#include "mailauth/authres.h"
#include "mailauth/dkim.h"
#include "mailauth/dkim_int.h"
#include "mailauth/dmarc.h"
#include "mailauth/mailauth.h"

#define SIGN_TABLE_MAX (1024u * 1024)
#define SIGN_MAX_KEYS 1000

typedef struct signer {
	char *domain;   /* lowercase */
	char *selector;
	char *path;
	dkim_key_t *key;
} signer_t;

typedef struct signers {
	signer_t *v;
	size_t n;
} signers_t;

static void
signers_free(void *p)
{
	signers_t *s = p;
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		xfree(s->v[i].domain);
		xfree(s->v[i].selector);
		xfree(s->v[i].path);
		dkim_key_free(s->v[i].key);
	}
	xfree(s->v);
	xfree(s);
}

static bool
is_sp(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* one line's fields (white space separated) into f[]; how many */
static size_t
fields(char *line, char **f, size_t max)
{
	size_t n = 0;
	char *p = line;
	while (*p) {
		while (is_sp(*p))
			p++;
		if (!*p || *p == '#')
			break;
		char *start = p;
		while (*p && !is_sp(*p))
			p++;
		if (n < max)
			f[n] = start;
		n++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

int
mailauth_sign_load(config_t *c, buf_t *err)
{
	if (c->dkim_signers_free)
		c->dkim_signers_free(c->dkim_signers);
	c->dkim_signers = NULL;
	c->dkim_signers_free = NULL;
	if (!c->dkim_sign_keys) {
		if (c->arc_seal_domain) {
			buf_printf(err, "%s:%u: arc_seal_domain %s: no key to seal with (it needs a "
					"line for that domain in dkim_sign_keys)\n", c->path,
			    config_key_line(c, "arc_seal_domain"), c->arc_seal_domain);
			return -1;
		}
		return 0;
	}
	const char *file = c->dkim_sign_keys;
	char *data;
	size_t len;
	if (read_file(file, &data, &len, SIGN_TABLE_MAX) < 0) {
		buf_printf(err, "%s:%u: dkim_sign_keys %s: %s\n", c->path,
		    config_key_line(c, "dkim_sign_keys"), file, strerror(errno));
		return -1;
	}
	char *dir = xstrdup(file);
	char *slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir ? 1 : 0] = '\0';
	signers_t *s = xcalloc(1, sizeof *s);
	size_t bad = 0;
	unsigned lineno = 0;
	char *save = NULL;
	for (char *line = data; line; line = save) {
		char *nl = strchr(line, '\n');
		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		if (strlen(line) != (size_t)((nl ? nl : data + len) - line)) {
			buf_printf(err, "%s:%u: a NUL octet in the line\n", file, lineno);
			bad++;
			continue;
		}
		char *f[3];
		size_t n = fields(line, f, 3);
		if (n == 0)
			continue;
		if (n != 3) {
			buf_printf(err, "%s:%u: expected \"domain selector keyfile\"\n", file, lineno);
			bad++;
			continue;
		}
		for (char *p = f[0]; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		size_t dl = strlen(f[0]);
		if (dl && f[0][dl - 1] == '.')
			f[0][dl - 1] = '\0';
		if (!dkim_name_ok(f[0]) || !dkim_name_ok(f[1])) {
			buf_printf(err, "%s:%u: bad %s \"%s\" (letters, digits, '-', '_', dots)\n", file, lineno,
			    dkim_name_ok(f[0]) ? "selector" : "domain", dkim_name_ok(f[0]) ? f[1] : f[0]);
			bad++;
			continue;
		}
		if (s->n == SIGN_MAX_KEYS) {
			buf_printf(err, "%s:%u: more than %u keys\n", file, lineno, SIGN_MAX_KEYS);
			bad++;
			break;
		}
		char *path = f[2][0] == '/' || !slash ? xstrdup(f[2]) : xasprintf("%s/%s", dir, f[2]);
		buf_t kerr = BUF_INIT;
		dkim_key_t *k = dkim_key_load(path, &kerr);
		if (!k) {
			buf_printf(err, "%s:%u: %s\n", file, lineno, buf_cstr(&kerr));
			buf_free(&kerr);
			xfree(path);
			bad++;
			continue;
		}
		buf_free(&kerr);
		s->v = xrealloc(s->v, (s->n + 1) * sizeof *s->v);
		signer_t *g = &s->v[s->n++];
		g->domain = xstrdup(f[0]);
		g->selector = xstrdup(f[1]);
		g->path = path;
		g->key = k;
	}
	xfree(dir);
	xfree(data);
	/* RFC 8617 section 5.1: sealing needs arc_seal_domain's own key */
	bool seal_key = !c->arc_seal_domain;
	for (size_t i = 0; !seal_key && i < s->n; i++)
		seal_key = strcasecmp(s->v[i].domain, c->arc_seal_domain) == 0;
	if (!bad && !seal_key) {
		buf_printf(err, "%s:%u: arc_seal_domain %s has no line in dkim_sign_keys %s\n", c->path,
		    config_key_line(c, "arc_seal_domain"), c->arc_seal_domain, file);
		bad++;
	}
	if (bad) {
		signers_free(s);
		return -1;
	}
	c->dkim_signers = s;
	c->dkim_signers_free = signers_free;
	return 0;
}

size_t
mailauth_sign_nkeys(const config_t *c)
{
	const signers_t *s = c->dkim_signers;
	return s ? s->n : 0;
}

const char *
mailauth_sign_key_path(const config_t *c, size_t i)
{
	const signers_t *s = c->dkim_signers;
	return s && i < s->n ? s->v[i].path : NULL;
}

bool
mailauth_sign_wanted(const config_t *c, const char *sender)
{
	(void)sender;
	return mailauth_sign_nkeys(c) > 0;
}

/* the table's domain for dom: dom itself or its nearest parent listed */
static const char *
find_domain(const signers_t *s, const char *dom)
{
	for (const char *d = dom; d && *d;) {
		for (size_t i = 0; i < s->n; i++)
			if (strcasecmp(s->v[i].domain, d) == 0)
				return s->v[i].domain;
		d = strchr(d, '.');
		if (d)
			d++;
	}
	return NULL;
}

int
mailauth_sign(const config_t *c, const char *sender, const char *content, size_t len, buf_t *out,
    buf_t *err)
{
	const signers_t *s = c->dkim_signers;
	if (!s || s->n == 0)
		return 0;
	buf_t from = BUF_INIT;
	const char *d = NULL;
	if (dmarc_from_domain(content, len, &from) == DMARC_FROM_OK)
		d = find_domain(s, buf_cstr(&from));
	if (!d && sender) {
		const char *at = strrchr(sender, '@');
		if (at) {
			char *dom = xstrdup(at + 1);
			size_t n = strlen(dom);
			while (n && (dom[n - 1] == '>' || dom[n - 1] == '.'))
				dom[--n] = '\0';
			d = find_domain(s, dom);
			xfree(dom);
		}
	}
	buf_free(&from);
	if (!d)
		return 0;
	time_t now = time(NULL);
	buf_t sigs = BUF_INIT;
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].domain != d && strcmp(s->v[i].domain, d) != 0)
			continue;
		if (dkim_sign(s->v[i].key, d, s->v[i].selector, content, len, now, &sigs, err) < 0) {
			buf_free(&sigs);
			return -1;
		}
	}
	buf_append(out, sigs.data, sigs.len);
	buf_free(&sigs);
	return 0;
}

/* ---- ARC sealing of forwarded mail (RFC 8617 section 5.1) ---- */

bool
mailauth_seal_wanted(const config_t *c)
{
	return c->arc_seal_domain != NULL && mailauth_sign_nkeys(c) > 0;
}

/* the arc= result in an A-R value, ARC_NONE when there is none */
static enum arc_result
chain_of(const char *v, size_t n)
{
	for (size_t i = 0; i + 4 <= n; i++) {
		if (strncasecmp(v + i, "arc=", 4) != 0)
			continue;
		size_t j = i;
		while (j > 0 && (v[j - 1] == ' ' || v[j - 1] == '\t' || v[j - 1] == '\r' ||
		    v[j - 1] == '\n'))
			j--;
		if (j == 0 || v[j - 1] != ';')
			continue;
		if (n - i - 4 >= 4 && strncasecmp(v + i + 4, "pass", 4) == 0)
			return ARC_PASS;
		if (n - i - 4 >= 4 && strncasecmp(v + i + 4, "fail", 4) == 0)
			return ARC_FAIL;
		return ARC_NONE;
	}
	return ARC_NONE;
}

int
mailauth_seal(const config_t *c, const char *content, size_t len, buf_t *out, buf_t *err)
{
	const signers_t *s = c->dkim_signers;
	const signer_t *g = NULL;
	for (size_t i = 0; s && c->arc_seal_domain && i < s->n && !g; i++)
		if (strcasecmp(s->v[i].domain, c->arc_seal_domain) == 0)
			g = &s->v[i];
	if (!g) {
		buf_printf(err, "no dkim_sign_keys line for arc_seal_domain %s",
		    c->arc_seal_domain ? c->arc_seal_domain : "(none)");
		return -1;
	}
	const char *id = c->authserv_id ? c->authserv_id : c->hostname;
	size_t hlen, boff;
	dkim_header_end(content, len, &hlen, &boff);
	dkim_field_t *f;
	size_t nf;
	dkim_fields_split(content, hlen, &f, &nf);
	buf_t sid = BUF_INIT, ar = BUF_INIT;
	enum arc_result chain = ARC_NONE;
	for (size_t i = 0; i < nf; i++) {
		if (!dkim_field_is(&f[i], "Authentication-Results", 22))
			continue;
		const char *v = (const char *)memchr(f[i].p, ':', f[i].len) + 1;
		size_t vn = f[i].len - (size_t)(v - f[i].p);
		buf_reset(&sid);
		if (authres_serv_id(v, vn, &sid) < 0 || strcasecmp(buf_cstr(&sid), id) != 0)
			continue;
		while (vn && (*v == ' ' || *v == '\t')) {
			v++;
			vn--;
		}
		buf_append(&ar, v, vn);
		chain = chain_of(v, vn);
		break;
	}
	xfree(f);
	buf_free(&sid);
	int rc = 0;
	if (ar.len)
		rc = arc_seal(g->key, g->domain, g->selector, buf_cstr(&ar), chain, content, len,
		    time(NULL), out, err);
	buf_free(&ar);
	return rc;
}
