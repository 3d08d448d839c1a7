/*
 * dmarc.h - MAILAUTH: Domain-based Message Authentication, Reporting and
 * Conformance, RFC 7489: the RFC5322.From domain, the organizational
 * domain (Public Suffix List, through libpsl), the policy record, its
 * discovery, identifier alignment and the policy to apply.
 *
 * Three pure parts, exported for tests and the fuzz target:
 *   dmarc_from_domain()  the author domain from the header section (RFC
 *                        5322 address lists, groups, comments, quoted
 *                        local parts, obsolete forms); section 6.6.1;
 *   dmarc_record_parse() a "v=DMARC1; p=...; ..." record (section 6.3);
 *   dmarc_org_domain()   the organizational domain (section 3.2);
 * and one asynchronous part, dmarc_check(): policy discovery exactly as
 * section 6.6.3 says (_dmarc.<From domain> TXT; when that holds no
 * v=DMARC1 record, _dmarc.<organizational domain>; never a walk beyond;
 * two or more v=DMARC1 records at the name asked = no policy; TXT records
 * not starting with v=DMARC1 are ignored; a DNS failure = temperror),
 * then alignment (section 3.1: the SPF domain that passed, every DKIM d=
 * that passed; relaxed = same organizational domain, strict = equal),
 * pct sampling (section 6.6.4) and the disposition (p, or sp for a From
 * domain below the organizational domain whose record came from there).
 *
 * Guarantees: no input makes a parser read past its length; the check's
 * callback runs exactly once, on the loop, never from inside
 * dmarc_check(), unless dmarc_cancel() came first; at most two DNS
 * queries per check; the answer's strings live during the callback only.
 * Must not: block; keep pointers to the caller's input after returning.
 */
#ifndef TERN_DMARC_H
#define TERN_DMARC_H

#include <libpsl.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/dns.h"

/* RFC 8601 section 2.7.7 keywords (dmarc_result_str) */
enum dmarc_result {
	DMARC_NONE,
	DMARC_PASS,
	DMARC_FAIL,
	DMARC_TEMPERROR,
	DMARC_PERMERROR,
};

enum dmarc_policy {
	DMARC_P_UNSET = 0, /* no policy (no record, or p/sp absent) */
	DMARC_P_NONE,
	DMARC_P_QUARANTINE,
	DMARC_P_REJECT,
};

#define DMARC_MAX_URIS 8 /* rua/ruf URIs kept; more are ignored */

/* A parsed record (section 6.3). Strings are owned (dmarc_record_clear). */
typedef struct dmarc_record {
	enum dmarc_policy p;  /* DMARC_P_UNSET when absent or invalid */
	enum dmarc_policy sp; /* DMARC_P_UNSET: absent (p applies) */
	bool sp_invalid;      /* sp= present with a bad value */
	bool adkim_strict;    /* default relaxed */
	bool aspf_strict;
	unsigned pct;         /* 0..100, default 100 */
	char *rua[DMARC_MAX_URIS]; /* syntactically valid URIs, in order */
	size_t nrua;
	char *ruf[DMARC_MAX_URIS];
	size_t nruf;
	char fo[16];          /* "0" default; as given when valid ("0:d:s") */
	bool rf_afrf;         /* rf= names afrf (the default) */
	unsigned long ri;     /* seconds, default 86400 */
} dmarc_record_t;

/* The outcome of dmarc_from_domain() */
enum dmarc_from_status {
	DMARC_FROM_OK,       /* one domain (one address, or several in the same domain) */
	DMARC_FROM_ABSENT,   /* no From field in the header section */
	DMARC_FROM_MULTIPLE, /* several From fields */
	DMARC_FROM_DOMAINS,  /* addresses in more than one domain */
	DMARC_FROM_INVALID,  /* a From field but no usable address/domain */
};

/* The author domain of the header section hdr[0..len) (the content up to
 * its first empty line; the rest is ignored). DMARC_FROM_OK: the domain,
 * lowercase, without a trailing dot, is appended to *domain. */
enum dmarc_from_status dmarc_from_domain(const char *hdr, size_t len, buf_t *domain);
/* "ok", "no From field", "several From fields", ... (for reasons and logs) */
const char *dmarc_from_status_str(enum dmarc_from_status s);

/* Parse txt[0..len). 0: a valid DMARC record (v=DMARC1 first, tag-list
 * syntax right; p may still be DMARC_P_UNSET: see dmarc_record_usable);
 * -1 with the reason in *err: not a record (no valid record). *r is
 * cleared either way first; clear it after use. */
int dmarc_record_parse(const char *txt, size_t len, dmarc_record_t *r, buf_t *err);
void dmarc_record_clear(dmarc_record_t *r);
/* Section 6.6.3 step 6: a record without a valid p (or with an invalid sp)
 * counts only when rua holds a valid URI, and then as p=none; here it is
 * made so. false: the record is to be treated as absent. */
bool dmarc_record_usable(dmarc_record_t *r);

/* Does this TXT string start a DMARC record ("v" WSP* "=" WSP* "DMARC1"
 * then ';', WSP or the end)? (section 6.6.3 step 2) */
bool dmarc_is_record(const char *txt, size_t len);

/* The Public Suffix List: psl_load_file(path); NULL with the reason in
 * *err. Free with psl_free(). */
psl_ctx_t *dmarc_psl_load(const char *path, buf_t *err);
/* The organizational domain of domain (lowercase ASCII, no trailing dot):
 * the public suffix plus one label, or the domain itself when it is a
 * public suffix or has no known suffix's parent; appended to *out. */
void dmarc_org_domain(const psl_ctx_t *psl, const char *domain, buf_t *out);
/* Section 3.1: are a and b aligned (strict: equal, any case; relaxed: the
 * same organizational domain)? */
bool dmarc_aligned(const psl_ctx_t *psl, const char *a, const char *b, bool strict);

const char *dmarc_result_str(enum dmarc_result r);
/* "none", "quarantine", "reject"; DMARC_P_UNSET: "none" */
const char *dmarc_policy_str(enum dmarc_policy p);

/* What the check looks at (copied by dmarc_check()). */
typedef struct dmarc_input {
	const char *from_domain;  /* from dmarc_from_domain() */
	const char *spf_domain;   /* the SPF identity's domain; NULL: none */
	bool spf_pass;            /* that identity's SPF result is pass */
	const char *const *dkim_pass_domains; /* d= of every signature that passed */
	size_t ndkim;
	unsigned roll;            /* 0..99 for pct sampling (random: the caller's) */
} dmarc_input_t;

typedef struct dmarc_answer {
	enum dmarc_result result;
	const char *from_domain;     /* header.from */
	const char *record_domain;   /* where the record was found; "" when none */
	const char *org_domain;
	const dmarc_record_t *rec;   /* NULL when none applies */
	enum dmarc_policy policy;    /* the one that applies (p or sp); UNSET: none */
	enum dmarc_policy disposition; /* fail: after pct sampling; else DMARC_P_NONE */
	bool sampled_out;            /* fail and pct excluded the message */
	bool spf_aligned, dkim_aligned;
	const char *reason;          /* for the log / A-R comment; never NULL */
} dmarc_answer_t;

typedef void (*dmarc_cb)(void *arg, const dmarc_answer_t *a);
typedef struct dmarc_req dmarc_req_t;

/* Discover the policy for in->from_domain and evaluate it. psl must stay
 * alive until the callback (or dmarc_cancel). Never NULL. */
dmarc_req_t *dmarc_check(dns_t *dns, const psl_ctx_t *psl, const dmarc_input_t *in, dmarc_cb cb,
    void *arg);
/* The callback will never be called. NULL: no-op. */
void dmarc_cancel(dmarc_req_t *r);

#endif
