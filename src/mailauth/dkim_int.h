/*
 * dkim_int.h - MAILAUTH: the pieces of DKIM (RFC 6376) that dkim.c and
 * dkim_sign.c share, exported for the unit tests and the fuzz targets:
 * the tag-list parser (section 3.2), the header-field splitter, header and
 * body canonicalisation (section 3.4, streaming for the body), base64, the
 * DKIM-Signature and key-record parsers (sections 3.5, 3.6.1), and a
 * verification entry that takes key records from a function instead of
 * DNS (tests, `tern dkim verify` with a fixed key).
 *
 * Guarantees: every parser takes a pointer and a length, trusts no length
 * in its input and returns 0, or -1 with a static reason; output slices
 * point into the input. Must not: allocate in the tag parser (it is run on
 * every signature and key record).
 */
#ifndef TERN_DKIM_INT_H
#define TERN_DKIM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "lib/buf.h"
#include "mailauth/dkim.h"

/* ---- tag lists (RFC 6376 section 3.2) ---- */

#define DKIM_MAX_TAGS 64

typedef struct dkim_tag {
	const char *name;
	size_t nlen;
	const char *val; /* the value without the FWS around it (may hold FWS inside) */
	size_t vlen;
	size_t raw_start, raw_end; /* offsets of the value as written: after '=' up to ';' or end */
} dkim_tag_t;

/* p[0..n): tag-spec *(";" tag-spec) [";"] with FWS where the grammar allows
 * it. Duplicate tag names, a tag without '=', a bad name or a value
 * character outside VALCHAR are errors. *ntags tags are written to tags[]
 * (at most max; more is an error). */
int dkim_tags_parse(const char *p, size_t n, dkim_tag_t *tags, size_t max, size_t *ntags,
    const char **why);
/* the tag named name (case-sensitive, as section 3.2 says), or NULL */
const dkim_tag_t *dkim_tag_get(const dkim_tag_t *tags, size_t n, const char *name);

/* Base64 (RFC 2045 alphabet) with FWS ignored anywhere, '=' padding only
 * at the end. Appends the octets to *out. 0 or -1 (nothing appended). */
int dkim_base64_decode(const char *p, size_t n, buf_t *out);
void dkim_base64_encode(const unsigned char *p, size_t n, buf_t *out);

/* a domain or selector as DNS labels (letters, digits, '-', '_') */
bool dkim_name_ok(const char *s);

/* ---- header fields ---- */

typedef struct dkim_field {
	const char *p; /* the field as written: name, ':', value with its folding */
	size_t len;    /* without the CRLF that ends it */
	size_t nlen;   /* the name (before ':', trailing WSP excluded); 0: no ':' */
} dkim_field_t;

/* Split a header section (p[0..n), the fields without the empty line that
 * ends them) into fields; *out is allocated (xfree), *nout set. */
void dkim_fields_split(const char *p, size_t n, dkim_field_t **out, size_t *nout);
bool dkim_field_is(const dkim_field_t *f, const char *name, size_t nlen);

/* Appends the canonical form of the field (section 3.4.1 simple, 3.4.2
 * relaxed) to *out, without a CRLF. */
void dkim_canon_header(bool relaxed, const char *p, size_t n, buf_t *out);

/* ---- body canonicalisation (sections 3.4.3, 3.4.4), streaming ---- */

typedef void (*dkim_sink_fn)(void *arg, const char *p, size_t n);

typedef struct dkim_canon {
	bool relaxed;
	bool cr;        /* the last byte seen was a CR, not yet judged */
	bool wsp;       /* relaxed: white space seen in the line, not yet emitted */
	bool nonempty;  /* the current line has content */
	bool any;       /* something was emitted */
	uint64_t crlfs; /* empty lines held back (they count only if content follows) */
	char out[4096];
	size_t olen;
	dkim_sink_fn sink;
	void *arg;
} dkim_canon_t;

void dkim_canon_init(dkim_canon_t *c, bool relaxed, dkim_sink_fn sink, void *arg);
/* any split of the body into pieces gives the same output */
void dkim_canon_body(dkim_canon_t *c, const char *p, size_t n);
void dkim_canon_end(dkim_canon_t *c);

/* ---- DKIM-Signature (section 3.5) and key records (section 3.6.1) ---- */

enum dkim_alg { DKIM_ALG_RSA_SHA256, DKIM_ALG_ED25519_SHA256 };

typedef struct dkim_sig {
	enum dkim_alg alg;
	bool hrelaxed, brelaxed;
	char d[256], s[256]; /* lowercase d */
	char i[512];         /* "" when absent (the AUID is then "@d") */
	char a[32];
	char b8[9];          /* first 8 characters of b= */
	buf_t b, bh;         /* decoded */
	bool has_l, has_t, has_x;
	uint64_t l;
	int64_t t, x;
	char **h; /* lowercase field names of h=, in order */
	size_t nh;
	size_t b_start, b_end; /* the b= value in the field's value (offsets) */
	unsigned instance;     /* ARC (RFC 8617): i=, 1..50 */
	char cv[8];            /* ARC-Seal: "none", "pass" or "fail" */
} dkim_sig_t;

/* what a signature field is: DKIM-Signature, or ARC's AMS or AS (RFC 8617
 * sections 4.1.2, 4.1.3: i= is the instance, no v=; the AS has cv= and
 * neither h= nor bh=, and From need not be in an AMS's h=) */
enum dkim_sig_kind { DKIM_KIND_SIG, DKIM_KIND_AMS, DKIM_KIND_AS };

#define DKIM_MAX_H 128

/* The value of a DKIM-Signature field (after the ':'), p[0..n). On error
 * *res is the result to report (permerror, or neutral for an unsupported
 * algorithm), *why the reason; d, s, a and b8 are filled as far as they
 * could be read. dkim_sig_clear() frees what it holds in either case. */
int dkim_sig_parse(const char *p, size_t n, dkim_sig_t *s, enum dkim_result *res, const char **why);
int dkim_sig_parse_kind(const char *p, size_t n, enum dkim_sig_kind kind, dkim_sig_t *s,
    enum dkim_result *res, const char **why);
void dkim_sig_clear(dkim_sig_t *s);

typedef struct dkim_keyrec {
	bool rsa;      /* k=rsa (default), else ed25519 */
	bool testing;  /* t=y */
	bool strict;   /* t=s: i= must be in d= itself */
	bool revoked;  /* p= empty */
	buf_t p;       /* decoded public key */
} dkim_keyrec_t;

int dkim_keyrec_parse(const char *p, size_t n, dkim_keyrec_t *k, const char **why);
void dkim_keyrec_clear(dkim_keyrec_t *k);

/* Check sig over data (the canonical header data) with the key record's
 * key: its type must match alg, an RSA key needs 1024 bits (RFC 8301);
 * Ed25519 signs the SHA-256 hash of data (RFC 8463). DKIM_PASS, DKIM_FAIL
 * ("signature did not verify") or DKIM_PERMERROR, with *why. The record
 * must not be revoked. */
enum dkim_result dkim_keyrec_verify(const dkim_keyrec_t *k, enum dkim_alg alg, const char *data,
    size_t len, const buf_t *sig, const char **why);

/* ---- a signature's key (dkim.c), shared with ARC ---- */

/* A key lookup's answer (RFC 6376 section 3.6.2.2): the strings of the
 * first TXT record that joins, appended to *txt; the status: DNS_OK,
 * DNS_NODATA when no record joins, DNS_TEMPFAIL for a bogus (DNSSEC)
 * answer, else the lookup's own. */
enum dns_status dkim_key_txt(const dns_result_t *r, buf_t *txt);
/* The key record of a lookup (st, txt: as dkim_key_txt gave them): 0
 * with *k parsed and not revoked; 1 for a revoked key (parsed, so its
 * t=y is there; *res permerror, *why "key revoked"); -1 with *res and
 * *why: no record (permerror, "no key record"), a failed lookup
 * (temperror, "key lookup failed"), a record that does not parse
 * (permerror, its reason). The caller clears *k in every case. */
int dkim_key_get(enum dns_status st, const buf_t *txt, dkim_keyrec_t *k, enum dkim_result *res,
    const char **why);

/* ---- the public-key checks on the thread pool (dkim.c), shared with ARC ---- */

/* One check for dkim_keyrec_verify(): everything owned by the item, so
 * that it can run on a worker thread while the message goes on. */
typedef struct dkim_vitem {
	dkim_keyrec_t k;      /* parsed, not revoked */
	enum dkim_alg alg;
	buf_t data;           /* the canonical header data */
	buf_t sig;            /* b=, decoded */
	enum dkim_result r;   /* out; DKIM_NONE when not run (after a failure among the first nstop) */
	const char *why;      /* out; a static string */
} dkim_vitem_t;

typedef struct dkim_vbatch dkim_vbatch_t;
/* items[i].r/.why set; the items are freed after the callback returns */
typedef void (*dkim_vbatch_cb)(void *arg, const dkim_vitem_t *items, size_t n);

/* Run dkim_keyrec_verify() for items[0..n) (taken over, xmalloc'd array)
 * on libuv's thread pool, in order; a result other than pass among the
 * first nstop items ends the run (ARC's chain; 0: every item is run).
 * cb(arg, ...) follows on the loop, never from inside this call. Without
 * a worker, the checks run here and cb still comes from the loop (a zero
 * timer). */
dkim_vbatch_t *dkim_vbatch_run(uv_loop_t *loop, dkim_vitem_t *items, size_t n, size_t nstop,
    dkim_vbatch_cb cb, void *arg);
/* The callback will not be called; the batch frees itself when its
 * work returns. NULL: no-op. */
void dkim_vbatch_cancel(dkim_vbatch_t *b);
/* Run the checks now, on this thread (the synchronous verifiers). */
void dkim_vitems_verify(dkim_vitem_t *items, size_t n, size_t nstop);
void dkim_vitems_free(dkim_vitem_t *items, size_t n);

/* ---- signing pieces (dkim_sign.c), shared with ARC ---- */

/* where content's header section ends (*hlen: the fields, without the
 * empty line) and its body starts (*boff); no empty line: all header */
void dkim_header_end(const char *content, size_t len, size_t *hlen, size_t *boff);
/* data signed with k (rsa-sha256 or ed25519-sha256 by its type), the
 * signature in base64 appended to *b64. 0 or -1 with *err. */
int dkim_key_sign_b64(const dkim_key_t *k, const char *data, size_t len, buf_t *b64, buf_t *err);
/* dkim_sign() for a field of another name (ARC-Message-Signature) whose
 * tags start with first ("v=1", "i=2"); dkim_sigs: DKIM-Signature fields
 * are signed too (once each, not over-signed). */
int dkim_sign_field(const dkim_key_t *k, const char *field, const char *first, const char *domain,
    const char *selector, const char *content, size_t len, time_t now, bool dkim_sigs, buf_t *out,
    buf_t *err);

/* ---- verification without DNS ---- */

/* For the key record at name ("s._domainkey.d"): the status and, when
 * DNS_OK, the TXT record's strings joined into *txt. */
typedef enum dns_status (*dkim_key_lookup_fn)(void *arg, const char *name, buf_t *txt);

/* As dkim_verify_finish(), but the keys come from lookup and cb is called
 * before the function returns. */
void dkim_verify_finish_sync(dkim_verify_t *v, dkim_key_lookup_fn lookup, void *larg,
    dkim_verify_cb cb, void *arg);

/* The body hash of signature i (after finish), for the split-invariance
 * fuzz target; NULL when that signature has none. */
const unsigned char *dkim_verify_body_hash(const dkim_verify_t *v, size_t i);

#endif
