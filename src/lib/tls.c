/*
 * tls.c - server and client SSL_CTX construction, the policy words, and
 * TLSA records handed to OpenSSL's DANE API (see tls.h and docs/tls.md).
 *
 * Guarantees: a returned context is complete (certificate and key match,
 * protocol range and ciphers set) or none is returned and *err says what
 * is wrong, with OpenSSL's reason. OpenSSL's error queue is left empty.
 * Must not: log (the caller decides), or be called on the loop for
 * anything but start-up and reload.
 */
#include "lib/tls.h"

#include <limits.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/xalloc.h"

/* append OpenSSL's reason for the last failure, and clear its queue */
static void
ssl_reason(buf_t *err)
{
	unsigned long e = ERR_get_error();
	if (e) {
		char es[200];
		ERR_error_string_n(e, es, sizeof es);
		buf_printf(err, ": %s", es);
	}
	ERR_clear_error();
}

static int
version_of(const char *s, size_t n)
{
	if (n == 7 && strncasecmp(s, "TLSv1.2", 7) == 0)
		return TLS1_2_VERSION;
	if (n == 7 && strncasecmp(s, "TLSv1.3", 7) == 0)
		return TLS1_3_VERSION;
	return 0;
}

const char *
tls_parse_protocols(const char *spec, int *min, int *max)
{
	const char *why = "expected >=TLSv1.2, >=TLSv1.3, TLSv1.2, TLSv1.3 or TLSv1.2-TLSv1.3";
	size_t n = strlen(spec);
	int lo, hi;
	if (n >= 2 && spec[0] == '>' && spec[1] == '=') {
		lo = version_of(spec + 2, n - 2);
		hi = 0;
		if (!lo && (strncasecmp(spec + 2, "TLSv1", 5) == 0 || strncasecmp(spec + 2, "SSL", 3) == 0))
			return "versions before TLSv1.2 are not supported (RFC 8996)";
		if (!lo)
			return why;
	} else {
		const char *dash = strchr(spec, '-');
		if (dash) {
			lo = version_of(spec, (size_t)(dash - spec));
			hi = version_of(dash + 1, strlen(dash + 1));
			if (!lo || !hi || hi < lo)
				return why;
		} else {
			lo = hi = version_of(spec, n);
			if (!lo) {
				if (strncasecmp(spec, "TLSv1", 5) == 0 || strncasecmp(spec, "SSL", 3) == 0)
					return "versions before TLSv1.2 are not supported (RFC 8996)";
				return why;
			}
		}
	}
	*min = lo;
	*max = hi;
	return NULL;
}

/* never ask a terminal for a passphrase: an encrypted key is an error */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* ---- the server side: certificates chosen by SNI ---- */

#define SRV_MAX_TYPES 8 /* key types in one context (OpenSSL has fewer slots) */

/* one certificate, parsed */
struct srv_cert {
	X509 *leaf;
	STACK_OF(X509) *chain;
	EVP_PKEY *key;
	int type;     /* EVP_PKEY_get_base_id(): OpenSSL keeps one certificate per type */
	char **names; /* lowercased DNS names, "*.example.com" for a wildcard */
	size_t nnames;
	bool serves;  /* some name chose it */
};

/* the contexts by name, owned by the default context (its ex_data) */
struct sni_entry {
	char *name;
	SSL_CTX *ctx; /* NULL: the default context itself */
};
typedef struct sni_map {
	struct sni_entry *v; /* sorted by name */
	size_t n;
} sni_map_t;

static int sni_index = -1;

static void
srv_cert_free(struct srv_cert *sc)
{
	X509_free(sc->leaf);
	sk_X509_pop_free(sc->chain, X509_free);
	EVP_PKEY_free(sc->key);
	for (size_t i = 0; i < sc->nnames; i++)
		xfree(sc->names[i]);
	xfree(sc->names);
}

static void
sni_map_free(sni_map_t *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		xfree(m->v[i].name);
		SSL_CTX_free(m->v[i].ctx);
	}
	xfree(m->v);
	xfree(m);
}

/* ex_data's destructor: runs when the last reference to the default
 * context goes (for every other SSL_CTX too, with ptr NULL) */
static void
sni_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	sni_map_free(ptr);
}

/*
 * A host name as SNI or a certificate gives it, into out (lowercased, a
 * trailing dot dropped): letters, digits, '-' and '.', no empty label, at
 * most 253 octets; with wild, "*." may begin it (a whole leftmost label:
 * RFC 6125 section 6.4.3, no partial wildcards). false when it is not one.
 */
static bool
host_name_norm(const char *s, size_t n, bool wild, char out[256])
{
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return false;
	size_t i = 0;
	if (wild && n > 2 && s[0] == '*' && s[1] == '.') {
		out[0] = '*';
		out[1] = '.';
		i = 2;
	}
	size_t label = 0;
	for (; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_') {
			label++;
		} else if (ch >= 'A' && ch <= 'Z') {
			ch = (unsigned char)(ch - 'A' + 'a');
			label++;
		} else {
			return false;
		}
		if (label > 63)
			return false;
		out[i] = (char)ch;
	}
	if (label == 0)
		return false;
	out[n] = '\0';
	return true;
}

static void
add_name(struct srv_cert *sc, const char *s, size_t n)
{
	char nm[256];
	if (!host_name_norm(s, n, true, nm))
		return;
	for (size_t i = 0; i < sc->nnames; i++)
		if (strcmp(sc->names[i], nm) == 0)
			return;
	sc->names = xrealloc(sc->names, (sc->nnames + 1) * sizeof *sc->names);
	sc->names[sc->nnames++] = xstrdup(nm);
}

/* the DNS names of the subjectAltName, else those of the subject's CN
 * (RFC 6125 section 6.4.4: the CN only when there is no DNS-ID) */
static void
collect_names(struct srv_cert *sc)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(sc->leaf, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS)
			continue;
		const ASN1_IA5STRING *d = g->d.dNSName;
		add_name(sc, (const char *)ASN1_STRING_get0_data(d), (size_t)ASN1_STRING_length(d));
	}
	GENERAL_NAMES_free(gens);
	if (sc->nnames)
		return;
	const X509_NAME *subj = X509_get_subject_name(sc->leaf);
	for (int i = -1; (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
		const ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		add_name(sc, (const char *)ASN1_STRING_get0_data(d), (size_t)ASN1_STRING_length(d));
	}
	ERR_clear_error();
}

/* the leaf, then every further certificate of the PEM text as the chain */
static int
parse_chain(struct srv_cert *sc, const tls_pem_t *cert)
{
	BIO *b = BIO_new_mem_buf(cert->data, (int)cert->len);
	if (!b)
		return -1;
	int r = -1;
	sc->leaf = PEM_read_bio_X509_AUX(b, NULL, no_passphrase, NULL);
	sc->chain = sk_X509_new_null();
	if (sc->leaf && sc->chain) {
		X509 *ca;
		r = 0;
		while ((ca = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL) {
			if (!sk_X509_push(sc->chain, ca)) {
				X509_free(ca);
				r = -1;
				break;
			}
		}
		/* the end of the text shows as "no start line": not an error */
		unsigned long e = ERR_peek_last_error();
		if (r == 0 && e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
			r = -1;
		else if (r == 0)
			ERR_clear_error();
	}
	BIO_free(b);
	return r;
}

static int
parse_key(struct srv_cert *sc, const tls_pem_t *key)
{
	BIO *b = BIO_new_mem_buf(key->data, (int)key->len);
	if (!b)
		return -1;
	sc->key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	return sc->key ? 0 : -1;
}

static void
time_text(const ASN1_TIME *t, char *out, size_t n)
{
	struct tm tm;
	if (!t || ASN1_TIME_to_tm(t, &tm) != 1 || strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		(void)snprintf(out, n, "%s", "?");
}

/* one certificate: parsed, its key matching; its dates into *warn */
static int
srv_cert_load(struct srv_cert *sc, const tls_server_cert_t *in, buf_t *warn, buf_t *err)
{
	if (in->cert.len > INT_MAX || in->key.len > INT_MAX) {
		buf_printf(err, "%s %s: file too large", in->cert_label, in->cert.path);
		return -1;
	}
	if (parse_chain(sc, &in->cert) < 0) {
		buf_printf(err, "%s %s: cannot load the certificate chain", in->cert_label, in->cert.path);
		ssl_reason(err);
		return -1;
	}
	if (parse_key(sc, &in->key) < 0) {
		buf_printf(err, "%s %s: cannot load the private key", in->key_label, in->key.path);
		ssl_reason(err);
		return -1;
	}
	if (X509_check_private_key(sc->leaf, sc->key) != 1) {
		buf_printf(err, "%s %s: the key does not match the certificate %s", in->key_label,
		    in->key.path, in->cert.path);
		ERR_clear_error();
		return -1;
	}
	sc->type = EVP_PKEY_get_base_id(sc->key);
	collect_names(sc);
	char when[64];
	if (warn && X509_cmp_current_time(X509_get0_notAfter(sc->leaf)) <= 0) {
		time_text(X509_get0_notAfter(sc->leaf), when, sizeof when);
		buf_printf(warn, "%s %s: the certificate expired on %s\n", in->cert_label, in->cert.path,
		    when);
	} else if (warn && X509_cmp_current_time(X509_get0_notBefore(sc->leaf)) >= 0) {
		time_text(X509_get0_notBefore(sc->leaf), when, sizeof when);
		buf_printf(warn, "%s %s: the certificate is not valid before %s\n", in->cert_label,
		    in->cert.path, when);
	}
	ERR_clear_error();
	return 0;
}

/* a context with everything but certificates */
static SSL_CTX *
server_ctx_bare(int min, int max, const char *ciphers, buf_t *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		buf_printf(err, "%s", "cannot create a TLS context");
		ssl_reason(err);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, min);
	SSL_CTX_set_max_proto_version(ctx, max);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_set_cipher_list(ctx, ciphers && ciphers[0] ? ciphers : TLS_DEFAULT_CIPHERS) != 1) {
		buf_printf(err, "tls_ciphers: no usable cipher in \"%s\"", ciphers ? ciphers : "");
		ssl_reason(err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* a group: the certificates one context holds (indexes, ascending) */
struct group {
	size_t m[SRV_MAX_TYPES];
	size_t nm;
	SSL_CTX *ctx;
};

/* (name, certificate) pairs, sorted by name, then by the certificate's rank */
struct name_ref {
	const char *name;
	size_t cert;
};

static int
name_ref_cmp(const void *a, const void *b)
{
	const struct name_ref *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->cert < y->cert ? -1 : x->cert > y->cert;
}

static int
sni_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sni_entry *)a)->name, ((const struct sni_entry *)b)->name);
}

static SSL_CTX *
sni_find(const sni_map_t *m, const char *name, bool *found)
{
	struct sni_entry key = {(char *)(uintptr_t)name, NULL};
	const struct sni_entry *e = bsearch(&key, m->v, m->n, sizeof *m->v, sni_entry_cmp);
	/* RFC 6125 section 6.4.3: "*" stands for the whole leftmost label */
	const char *dot = strchr(name, '.');
	char wild[258];
	if (!e && dot && dot != name && dot[1]) {
		(void)snprintf(wild, sizeof wild, "*%s", dot);
		key.name = wild;
		e = bsearch(&key, m->v, m->n, sizeof *m->v, sni_entry_cmp);
	}
	*found = e != NULL;
	return e ? e->ctx : NULL;
}

/* the client's SNI chooses the context (RFC 6066 section 3); an unknown
 * name or none keeps the default */
static int
sni_callback(SSL *ssl, int *alert, void *arg)
{
	(void)alert;
	const sni_map_t *m = arg;
	const char *sn = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	char nm[256];
	if (!m || !sn || !host_name_norm(sn, strlen(sn), false, nm))
		return SSL_TLSEXT_ERR_NOACK;
	bool found;
	SSL_CTX *ctx = sni_find(m, nm, &found);
	if (ctx && SSL_set_SSL_CTX(ssl, ctx) != ctx)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return found ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
}

/* the group of the certificates for one name (in rank order, one per key
 * type), its members into g; conflicts into *warn */
static void
group_of(struct srv_cert *sc, const tls_server_cert_t *in, const struct name_ref *r, size_t n,
    struct group *g, buf_t *warn)
{
	g->nm = 0;
	g->ctx = NULL;
	for (size_t i = 0; i < n; i++) {
		size_t k = r[i].cert, j;
		for (j = 0; j < g->nm && sc[g->m[j]].type != sc[k].type; j++)
			;
		if (j < g->nm) {
			if (warn)
				buf_printf(warn, "%s %s: %s is served by an earlier %s certificate (%s %s)\n",
				    in[k].cert_label, in[k].cert.path, r[i].name, EVP_PKEY_get0_type_name(sc[k].key),
				    in[g->m[j]].cert_label, in[g->m[j]].cert.path);
			continue;
		}
		if (g->nm < SRV_MAX_TYPES) {
			g->m[g->nm++] = k;
			sc[k].serves = true;
		}
	}
}

static bool
group_same(const struct group *a, const struct group *b)
{
	return a->nm == b->nm && memcmp(a->m, b->m, a->nm * sizeof a->m[0]) == 0;
}

static int
group_build(struct group *g, struct srv_cert *sc, const tls_server_cert_t *in, int min, int max,
    const char *ciphers, buf_t *err)
{
	g->ctx = server_ctx_bare(min, max, ciphers, err);
	if (!g->ctx)
		return -1;
	for (size_t i = 0; i < g->nm; i++) {
		struct srv_cert *c = &sc[g->m[i]];
		if (SSL_CTX_use_cert_and_key(g->ctx, c->leaf, c->key, c->chain, 1) != 1) {
			buf_printf(err, "%s %s: cannot use the certificate and key", in[g->m[i]].cert_label,
			    in[g->m[i]].cert.path);
			ssl_reason(err);
			return -1;
		}
	}
	return 0;
}

SSL_CTX *
tls_server_ctx_new(const tls_server_cert_t *certs, size_t n, const char *protocols,
    const char *ciphers, buf_t *warn, buf_t *err)
{
	int min, max;
	const char *why = tls_parse_protocols(protocols ? protocols : ">=TLSv1.2", &min, &max);
	if (why) {
		buf_printf(err, "tls_protocols: %s", why);
		return NULL;
	}
	if (n == 0) {
		buf_puts(err, "no certificate");
		return NULL;
	}
	ERR_clear_error();
	if (sni_index < 0)
		sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_ex_free);
	if (sni_index < 0) {
		buf_puts(err, "cannot register the SNI table with OpenSSL");
		ssl_reason(err);
		return NULL;
	}
	struct srv_cert *sc = xcalloc(n, sizeof *sc);
	struct name_ref *refs = NULL;
	struct group *groups = NULL;
	size_t nrefs = 0, ngroups = 0;
	sni_map_t *map = NULL;
	SSL_CTX *base = NULL;
	int r = -1;

	for (size_t i = 0; i < n; i++)
		if (srv_cert_load(&sc[i], &certs[i], warn, err) < 0)
			goto out;
	for (size_t i = 0; i < n; i++) {
		refs = xrealloc(refs, (nrefs + sc[i].nnames + 1) * sizeof *refs);
		for (size_t j = 0; j < sc[i].nnames; j++)
			refs[nrefs++] = (struct name_ref){sc[i].names[j], i};
	}
	if (nrefs)
		qsort(refs, nrefs, sizeof *refs, name_ref_cmp);
	map = xcalloc(1, sizeof *map);
	map->v = xcalloc(nrefs + 1, sizeof *map->v); /* never NULL, even for no name */
	/* one context per distinct set of certificates a name gets */
	for (size_t i = 0; i < nrefs;) {
		size_t j = i;
		while (j < nrefs && strcmp(refs[j].name, refs[i].name) == 0)
			j++;
		struct group g;
		group_of(sc, certs, refs + i, j - i, &g, warn);
		size_t k;
		for (k = 0; k < ngroups && !group_same(&groups[k], &g); k++)
			;
		if (k == ngroups) {
			groups = xrealloc(groups, (ngroups + 1) * sizeof *groups);
			groups[ngroups++] = g;
			if (group_build(&groups[k], sc, certs, min, max, ciphers, err) < 0)
				goto out;
		}
		map->v[map->n].name = xstrdup(refs[i].name);
		map->v[map->n++].ctx = groups[k].ctx; /* a reference taken below */
		i = j;
	}
	/* the default: the context of certs[0]'s first name (it and the other
	 * key types for that name), or certs[0] alone when it names nothing */
	if (sc[0].nnames) {
		bool found;
		base = sni_find(map, sc[0].names[0], &found);
	} else {
		struct group g = {{0}, 1, NULL};
		groups = xrealloc(groups, (ngroups + 1) * sizeof *groups);
		groups[ngroups++] = g;
		if (group_build(&groups[ngroups - 1], sc, certs, min, max, ciphers, err) < 0)
			goto out;
		base = groups[ngroups - 1].ctx;
	}
	for (size_t i = 1; i < n && warn; i++)
		if (!sc[i].serves)
			buf_printf(warn, "%s %s: serves no name (%s), so no client gets it\n",
			    certs[i].cert_label, certs[i].cert.path,
			    sc[i].nnames ? "earlier certificates of its key type serve all of its names"
			                 : "no DNS name in its subjectAltName or subject CN");
	/* the map refers to the default context by NULL: it owns the others */
	bool others = false;
	for (size_t i = 0; i < map->n; i++) {
		if (map->v[i].ctx == base)
			map->v[i].ctx = NULL;
		else if (SSL_CTX_up_ref(map->v[i].ctx) == 1)
			others = true;
		else
			map->v[i].ctx = NULL;
	}
	SSL_CTX_up_ref(base);
	if (others) {
		SSL_CTX_set_tlsext_servername_callback(base, sni_callback);
		SSL_CTX_set_tlsext_servername_arg(base, map);
		if (SSL_CTX_set_ex_data(base, sni_index, map) != 1) {
			buf_puts(err, "cannot attach the SNI table to the TLS context");
			ssl_reason(err);
			SSL_CTX_free(base);
			base = NULL;
			sni_map_free(map); /* its references are taken */
			map = NULL;
			goto out;
		}
		map = NULL; /* owned by base now */
	}
	r = 0;
out:
	for (size_t i = 0; i < ngroups; i++)
		SSL_CTX_free(groups[i].ctx);
	xfree(groups);
	xfree(refs);
	for (size_t i = 0; i < n; i++)
		srv_cert_free(&sc[i]);
	xfree(sc);
	if (r < 0) {
		if (map) { /* its entries hold no reference yet */
			for (size_t i = 0; i < map->n; i++)
				xfree(map->v[i].name);
			xfree(map->v);
			xfree(map);
		}
		ERR_clear_error();
		return NULL;
	}
	sni_map_free(map); /* nothing to choose from: not kept */
	ERR_clear_error();
	return base;
}

SSL_CTX *
tls_client_ctx_new(const char *ca_file, buf_t *err)
{
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		buf_printf(err, "%s", "cannot create a TLS context");
		ssl_reason(err);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* the handshake goes on whatever the certificate; the verify result
	 * is read afterwards and the destination's policy decides */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	/* DANE is turned on per session (tls_dane_setup) for hosts with TLSA
	 * records; DANE-EE(3) matches the key itself, so the certificate's
	 * names do not matter (RFC 7672 §3.1.1; its dates are not checked
	 * by OpenSSL for DANE-EE either) */
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		buf_printf(err, "%s", "cannot enable DANE in the TLS context");
		ssl_reason(err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_dane_set_flags(ctx, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	int ok = ca_file && ca_file[0] ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
	                               : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		buf_printf(err, "CA certificates %s: cannot load", ca_file ? ca_file : "(system store)");
		ssl_reason(err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	ERR_clear_error();
	return ctx;
}

static const char *const policy_names[] = {
	[TLS_POLICY_MAY] = "may",
	[TLS_POLICY_NONE] = "none",
	[TLS_POLICY_ENCRYPT] = "encrypt",
	[TLS_POLICY_VERIFY] = "verify",
	[TLS_POLICY_DANE] = "dane",
	[TLS_POLICY_DANE_ONLY] = "dane-only",
	[TLS_POLICY_STS] = "sts",
};

int
tls_policy_parse(const char *s, enum tls_policy *out)
{
	for (size_t i = 0; i < sizeof policy_names / sizeof policy_names[0]; i++) {
		if (strcasecmp(s, policy_names[i]) == 0) {
			*out = (enum tls_policy)i;
			return 0;
		}
	}
	return -1;
}

const char *
tls_policy_name(enum tls_policy p)
{
	if ((size_t)p < sizeof policy_names / sizeof policy_names[0])
		return policy_names[p];
	return "?";
}

const char *
tls_policy_check(const char *s)
{
	enum tls_policy p;
	return tls_policy_parse(s, &p) == 0 ? NULL
	                                    : "expected none, may, encrypt, verify, dane, dane-only or sts";
}

bool
tls_policy_is_dane(enum tls_policy p)
{
	return p == TLS_POLICY_DANE || p == TLS_POLICY_DANE_ONLY;
}

/* ---- DANE ---- */

const char *
tls_tlsa_unusable(const tls_tlsa_t *r)
{
	/* RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP */
	if (r->usage == TLSA_USAGE_PKIX_TA || r->usage == TLSA_USAGE_PKIX_EE)
		return "PKIX usage, unusable for SMTP (RFC 7672 section 3.1.3)";
	if (r->usage != TLSA_USAGE_DANE_TA && r->usage != TLSA_USAGE_DANE_EE)
		return "unknown certificate usage";
	if (r->selector > 1)
		return "unknown selector";
	/* RFC 6698 §2.1.3: 0 full data, 1 SHA-256, 2 SHA-512 */
	if (r->mtype > 2)
		return "unknown matching type";
	if (r->data == NULL || r->len == 0)
		return "no association data";
	if (r->mtype == 1 && r->len != 32)
		return "SHA-256 digest of the wrong length";
	if (r->mtype == 2 && r->len != 64)
		return "SHA-512 digest of the wrong length";
	return NULL;
}

static void
note_unusable(buf_t *notes, const tls_tlsa_t *r, const char *why)
{
	if (notes && notes->len < 1000)
		buf_printf(notes, "%u %u %u: %s; ", r->usage, r->selector, r->mtype, why);
}

int
tls_dane_setup(SSL *ssl, const char *base, const char *const *names, const tls_tlsa_t *r,
    size_t n, buf_t *notes)
{
	size_t usable = 0;
	for (size_t i = 0; i < n; i++) {
		const char *why = tls_tlsa_unusable(&r[i]);
		if (why)
			note_unusable(notes, &r[i], why);
		else
			usable++;
	}
	if (usable == 0 || base == NULL || base[0] == '\0')
		return 0;
	ERR_clear_error();
	if (SSL_dane_enable(ssl, base) <= 0) {
		buf_puts(notes, "cannot enable DANE");
		ssl_reason(notes);
		return -1;
	}
	/* RFC 7672 §3.2.3: a wildcard only as the whole leftmost label */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	for (const char *const *nm = names; nm && *nm; nm++) {
		if ((*nm)[0] && SSL_add1_host(ssl, *nm) != 1) {
			buf_puts(notes, "cannot add a reference name");
			ssl_reason(notes);
			return -1;
		}
	}
	int added = 0;
	for (size_t i = 0; i < n; i++) {
		if (tls_tlsa_unusable(&r[i]))
			continue;
		int k = SSL_dane_tlsa_add(ssl, r[i].usage, r[i].selector, r[i].mtype, r[i].data, r[i].len);
		if (k > 0) {
			added++;
		} else if (k == 0) {
			/* e.g. full data (matching type 0) that is no certificate or key */
			note_unusable(notes, &r[i], "OpenSSL cannot use the data");
			ERR_clear_error();
		} else {
			buf_puts(notes, "cannot add a TLSA record");
			ssl_reason(notes);
			return -1;
		}
	}
	ERR_clear_error();
	/* none usable after all: the session has DANE on with no record,
	 * which would fail every handshake; the caller decides instead */
	if (added == 0)
		return 0;
	return added;
}

const char *
tls_dane_authority(SSL *ssl)
{
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	if (SSL_get0_dane_authority(ssl, NULL, NULL) < 0)
		return NULL;
	uint8_t usage = 0;
	if (SSL_get0_dane_tlsa(ssl, &usage, NULL, NULL, NULL, NULL) < 0)
		return NULL;
	return usage == TLSA_USAGE_DANE_EE ? "dane-ee" : usage == TLSA_USAGE_DANE_TA ? "dane-ta" : NULL;
}
