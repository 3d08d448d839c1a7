/*
 * dmarc.c - MAILAUTH: DMARC, RFC 7489 (contract in dmarc.h).
 *
 * The From parser tokenizes the unfolded field value the way RFC 5322
 * section 3.2 does (atoms, quoted strings, domain literals, specials;
 * comments, nested, are white space) and walks the tokens as an
 * address-list (section 3.4, with the obsolete forms of section 4.4:
 * empty list elements, routes in angle brackets, dots in phrases). Each
 * mailbox's domain is what follows its last "@" (inside the angle brackets
 * when there are some). Section 6.6.1 of RFC 7489 leaves several authors
 * to the receiver: tern evaluates them when they share one domain and
 * calls it a permerror otherwise (as it does for no From field, several
 * From fields, or an author domain that is not a host name).
 * Must not: read past any length; trust anything in the field.
 */
#include "mailauth/dmarc.h"

#include <ctype.h>
#include <idn2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

/* ---- the From field ---- */

#define FROM_MAX_TOKENS 4096 /* a longer field is not an author we can judge */

enum tok_type { T_ATOM, T_QSTR, T_DLIT, T_SPECIAL };

typedef struct tok {
	enum tok_type type;
	const char *p; /* T_ATOM: the atom; T_SPECIAL: the character */
	size_t n;
} tok_t;

static bool
is_special(unsigned char c)
{
	return c && strchr("()<>[]:;@\\,.\"", c) != NULL;
}

static bool
is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Tokenize v[0..n): -1 on an unterminated quote/literal/comment, a CTL
 * outside quotes, or too many tokens. */
static int
tokenize(const char *v, size_t n, tok_t *t, size_t max, size_t *nt)
{
	size_t i = 0, k = 0;
	while (i < n) {
		unsigned char c = (unsigned char)v[i];
		if (is_wsp(c)) {
			i++;
			continue;
		}
		if (c == '(') { /* comment, nested, with quoted-pairs */
			int depth = 0;
			for (; i < n; i++) {
				if (v[i] == '\\') {
					i++;
					continue;
				}
				if (v[i] == '(')
					depth++;
				else if (v[i] == ')' && --depth == 0)
					break;
			}
			if (i >= n)
				return -1;
			i++;
			continue;
		}
		if (k >= max)
			return -1;
		if (c == '"' || c == '[') {
			char end = c == '"' ? '"' : ']';
			size_t s = ++i;
			for (; i < n && v[i] != end; i++)
				if (v[i] == '\\')
					i++;
			if (i >= n)
				return -1;
			t[k++] = (tok_t){c == '"' ? T_QSTR : T_DLIT, v + s, i - s};
			i++;
			continue;
		}
		if (c == ')' || c == ']' || c == '\\')
			return -1;
		if (is_special(c)) {
			t[k++] = (tok_t){T_SPECIAL, v + i, 1};
			i++;
			continue;
		}
		if (c < 0x20 || c == 0x7f)
			return -1;
		size_t s = i;
		while (i < n && !is_wsp((unsigned char)v[i]) && !is_special((unsigned char)v[i]) &&
		    (unsigned char)v[i] >= 0x20 && v[i] != 0x7f)
			i++;
		t[k++] = (tok_t){T_ATOM, v + s, i - s};
	}
	*nt = k;
	return 0;
}

static bool
tok_is(const tok_t *t, char c)
{
	return t->type == T_SPECIAL && t->p[0] == c;
}

static bool ascii_domain_ok(const char *d, size_t n, char *out, size_t outsz);

/* A host name: LDH labels (and '_'), dot-separated, each 1..63, at most
 * 253 in all. Lowercased into out. A name with U-labels (UTF-8, RFC 6532
 * mail) is converted to A-labels first (IDNA2008, libidn2): RFC 8616
 * sections 3 and 6 (updating RFC 7489 section 3.1 and 6.6): the DNS holds
 * A-labels, and the policy lookup and the alignment compare them; a name
 * that IDNA refuses is no domain. */
static bool
domain_ok(const char *d, size_t n, char *out, size_t outsz)
{
	bool ascii = true;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)d[i] >= 0x80)
			ascii = false;
	if (ascii)
		return ascii_domain_ok(d, n, out, outsz);
	if (n == 0 || n > 1024)
		return false;
	char *u = xmalloc(n + 1);
	memcpy(u, d, n);
	u[n] = '\0';
	char *a = NULL;
	bool ok = idn2_to_ascii_8z(u, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) == IDN2_OK && a &&
	    ascii_domain_ok(a, strlen(a), out, outsz);
	idn2_free(a);
	xfree(u);
	return ok;
}

static bool
ascii_domain_ok(const char *d, size_t n, char *out, size_t outsz)
{
	if (n == 0 || n > 253 || n >= outsz)
		return false;
	size_t lab = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)d[i];
		if (c == '.') {
			if (lab == 0)
				return false;
			lab = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++lab > 63)
				return false;
		} else {
			return false;
		}
		out[i] = (char)tolower(c);
	}
	out[n] = '\0';
	return lab > 0;
}

/* The domain of the addr-spec t[0..n) (what follows its last '@'): its
 * atoms and dots concatenated into out. false when there is none or it is
 * not a host name (a domain literal, say). */
static bool
addrspec_domain(const tok_t *t, size_t n, char *out, size_t outsz)
{
	size_t at = n;
	for (size_t i = 0; i < n; i++)
		if (tok_is(&t[i], '@'))
			at = i;
	if (at == n || at == 0 || at + 1 >= n)
		return false;
	char raw[256];
	size_t rn = 0;
	for (size_t i = at + 1; i < n; i++) {
		if (t[i].type == T_ATOM || tok_is(&t[i], '.')) {
			if (rn + t[i].n >= sizeof raw)
				return false;
			memcpy(raw + rn, t[i].p, t[i].n);
			rn += t[i].n;
		} else {
			return false; /* domain literal, a stray special */
		}
	}
	if (rn > 1 && raw[rn - 1] == '.')
		rn--; /* a trailing root dot */
	return domain_ok(raw, rn, out, outsz);
}

/* One address-list element t[0..n) (a mailbox; groups were opened by the
 * caller): its domain into out. */
static bool
mailbox_domain(const tok_t *t, size_t n, char *out, size_t outsz)
{
	size_t lt = n;
	for (size_t i = 0; i < n; i++)
		if (tok_is(&t[i], '<')) {
			lt = i;
			break;
		}
	if (lt == n) {
		for (size_t i = 0; i < n; i++)
			if (tok_is(&t[i], '>'))
				return false;
		return addrspec_domain(t, n, out, outsz);
	}
	/* name-addr: [display-name] "<" [obs-route] addr-spec ">" */
	size_t gt = n;
	for (size_t i = lt + 1; i < n; i++)
		if (tok_is(&t[i], '>')) {
			gt = i;
			break;
		}
	if (gt == n || gt + 1 != n)
		return false;
	size_t s = lt + 1;
	for (size_t i = s; i < gt; i++) /* obs-route: "@a,@b:" before the addr-spec */
		if (tok_is(&t[i], ':'))
			s = i + 1;
	for (size_t i = s; i < gt; i++)
		if (tok_is(&t[i], ',') || tok_is(&t[i], '<'))
			return false;
	return addrspec_domain(t + s, gt - s, out, outsz);
}

typedef struct from_acc {
	char domain[256];
	size_t naddr;
	bool several_domains;
} from_acc_t;

static bool
from_add(from_acc_t *a, const tok_t *t, size_t n)
{
	char d[256];
	if (!mailbox_domain(t, n, d, sizeof d))
		return false;
	if (a->naddr++ == 0)
		memcpy(a->domain, d, sizeof d);
	else if (strcmp(a->domain, d) != 0)
		a->several_domains = true;
	return true;
}

/* The address-list in v[0..n). */
static enum dmarc_from_status
parse_from_value(const char *v, size_t n, buf_t *domain)
{
	tok_t *t = xmalloc(FROM_MAX_TOKENS * sizeof *t);
	size_t nt = 0;
	enum dmarc_from_status st = DMARC_FROM_INVALID;
	if (tokenize(v, n, t, FROM_MAX_TOKENS, &nt) < 0)
		goto out;
	from_acc_t acc;
	memset(&acc, 0, sizeof acc);
	bool in_group = false, in_angle = false;
	size_t start = 0;
	for (size_t i = 0; i <= nt; i++) {
		bool end = i == nt;
		if (!end && tok_is(&t[i], '<'))
			in_angle = true;
		else if (!end && tok_is(&t[i], '>'))
			in_angle = false;
		if (!end && in_angle)
			continue;
		if (!end && tok_is(&t[i], ':') && !in_group) {
			in_group = true; /* display-name ":" opens a group */
			start = i + 1;
			continue;
		}
		bool sep = end || tok_is(&t[i], ',') || (in_group && tok_is(&t[i], ';'));
		if (!sep)
			continue;
		if (i > start && !from_add(&acc, t + start, i - start))
			goto out;
		if (!end && tok_is(&t[i], ';'))
			in_group = false;
		start = i + 1;
	}
	if (in_angle || in_group || acc.naddr == 0)
		goto out;
	if (acc.several_domains) {
		st = DMARC_FROM_DOMAINS;
		goto out;
	}
	buf_puts(domain, acc.domain);
	st = DMARC_FROM_OK;
out:
	xfree(t);
	return st;
}

enum dmarc_from_status
dmarc_from_domain(const char *hdr, size_t len, buf_t *domain)
{
	size_t nfrom = 0;
	buf_t val = BUF_INIT;
	size_t i = 0;
	bool cur_from = false;
	while (i < len) {
		size_t e = i;
		while (e < len && hdr[e] != '\n')
			e++;
		size_t ll = e - i; /* the line without LF (and without CR) */
		if (ll > 0 && hdr[i + ll - 1] == '\r')
			ll--;
		const char *line = hdr + i;
		i = e < len ? e + 1 : len;
		if (ll == 0)
			break; /* the end of the header section */
		if (line[0] == ' ' || line[0] == '\t') {
			if (cur_from && nfrom == 1)
				buf_append(&val, line, ll); /* unfolded: CRLF dropped */
			continue;
		}
		cur_from = false;
		const char *colon = memchr(line, ':', ll);
		if (!colon)
			continue;
		size_t nl = (size_t)(colon - line);
		while (nl > 0 && (line[nl - 1] == ' ' || line[nl - 1] == '\t'))
			nl--; /* obs-optional: WSP before the colon */
		if (nl == 4 && strncasecmp(line, "from", 4) == 0) {
			cur_from = true;
			if (++nfrom == 1)
				buf_append(&val, colon + 1, ll - (size_t)(colon + 1 - line));
		}
	}
	enum dmarc_from_status st;
	if (nfrom == 0)
		st = DMARC_FROM_ABSENT;
	else if (nfrom > 1)
		st = DMARC_FROM_MULTIPLE;
	else
		st = parse_from_value(val.data ? val.data : "", val.len, domain);
	buf_free(&val);
	return st;
}

const char *
dmarc_from_status_str(enum dmarc_from_status s)
{
	switch (s) {
	case DMARC_FROM_OK: return "ok";
	case DMARC_FROM_ABSENT: return "no From field";
	case DMARC_FROM_MULTIPLE: return "several From fields";
	case DMARC_FROM_DOMAINS: return "From addresses in several domains";
	case DMARC_FROM_INVALID: return "no valid author domain in From";
	}
	return "?";
}

/* ---- the record ---- */

static bool
wsp(char c)
{
	return c == ' ' || c == '\t';
}

bool
dmarc_is_record(const char *txt, size_t len)
{
	size_t i = 0;
	if (len < 1 || txt[0] != 'v')
		return false;
	i = 1;
	while (i < len && wsp(txt[i]))
		i++;
	if (i >= len || txt[i] != '=')
		return false;
	i++;
	while (i < len && wsp(txt[i]))
		i++;
	if (len - i < 6 || memcmp(txt + i, "DMARC1", 6) != 0)
		return false;
	i += 6;
	return i == len || txt[i] == ';' || wsp(txt[i]);
}

static bool
val_is(const char *v, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(v, lit, n) == 0;
}

static enum dmarc_policy
policy_val(const char *v, size_t n)
{
	if (val_is(v, n, "none"))
		return DMARC_P_NONE;
	if (val_is(v, n, "quarantine"))
		return DMARC_P_QUARANTINE;
	if (val_is(v, n, "reject"))
		return DMARC_P_REJECT;
	return DMARC_P_UNSET;
}

/* dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ] (section 6.4),
 * URI as RFC 3986 (a scheme, ":", then no white space, no ',' or '!'). */
static bool
uri_ok(const char *u, size_t n)
{
	size_t i = 0;
	if (n == 0 || !isalpha((unsigned char)u[0]))
		return false;
	while (i < n && (isalnum((unsigned char)u[i]) || u[i] == '+' || u[i] == '-' || u[i] == '.'))
		i++;
	if (i >= n || u[i] != ':' || i + 1 >= n)
		return false;
	size_t bang = n;
	for (size_t k = i + 1; k < n; k++) {
		unsigned char c = (unsigned char)u[k];
		if (c <= 0x20 || c >= 0x7f || c == ',' || c == ';')
			return false;
		if (c == '!' && bang == n)
			bang = k;
	}
	if (bang == i + 1)
		return false;
	if (bang < n) { /* the size limit */
		size_t k = bang + 1, d = 0;
		while (k < n && isdigit((unsigned char)u[k]))
			k++, d++;
		if (d == 0)
			return false;
		if (k < n && strchr("kmgt", u[k]) && u[k])
			k++;
		if (k != n)
			return false;
	}
	return true;
}

static void
uri_list(const char *v, size_t n, char **out, size_t *nout)
{
	size_t i = 0;
	while (i <= n) {
		size_t e = i;
		while (e < n && v[e] != ',')
			e++;
		size_t s = i, t = e;
		while (s < t && wsp(v[s]))
			s++;
		while (t > s && wsp(v[t - 1]))
			t--;
		if (uri_ok(v + s, t - s) && *nout < DMARC_MAX_URIS)
			out[(*nout)++] = xstrndup(v + s, t - s);
		i = e + 1;
	}
}

static bool
fo_ok(const char *v, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool opt = i % 2 == 0;
		if (opt ? !strchr("01ds", v[i]) || !v[i] : v[i] != ':')
			return false;
	}
	return n % 2 == 1;
}

void
dmarc_record_clear(dmarc_record_t *r)
{
	for (size_t i = 0; i < r->nrua; i++)
		xfree(r->rua[i]);
	for (size_t i = 0; i < r->nruf; i++)
		xfree(r->ruf[i]);
	memset(r, 0, sizeof *r);
	r->pct = 100;
	r->ri = 86400;
	r->rf_afrf = true;
	memcpy(r->fo, "0", 2);
}

int
dmarc_record_parse(const char *txt, size_t len, dmarc_record_t *r, buf_t *err)
{
	memset(r, 0, sizeof *r);
	dmarc_record_clear(r);
	if (!dmarc_is_record(txt, len)) {
		buf_puts(err, "not a DMARC record (v=DMARC1 first)");
		return -1;
	}
	unsigned seen = 0; /* a bit per known tag: duplicates are a syntax error */
	static const char *const known[] = {"v", "p", "sp", "adkim", "aspf", "pct", "rua", "ruf",
	    "fo", "rf", "ri"};
	size_t i = 0;
	bool first = true;
	while (i <= len) {
		size_t e = i;
		while (e < len && txt[e] != ';')
			e++;
		size_t s = i, t = e;
		i = e + 1;
		while (s < t && wsp(txt[s]))
			s++;
		while (t > s && wsp(txt[t - 1]))
			t--;
		if (s == t) {
			if (first)
				goto bad;
			continue; /* empty between separators, or the trailing ';' */
		}
		/* tag-spec = tag-name *WSP "=" *WSP tag-value */
		size_t k = s;
		if (!isalpha((unsigned char)txt[k]))
			goto bad;
		while (k < t && (isalnum((unsigned char)txt[k]) || txt[k] == '_'))
			k++;
		size_t nn = k - s;
		while (k < t && wsp(txt[k]))
			k++;
		if (k >= t || txt[k] != '=')
			goto bad;
		k++;
		while (k < t && wsp(txt[k]))
			k++;
		const char *name = txt + s, *v = txt + k;
		size_t vn = t - k;
		for (size_t q = 0; q < vn; q++) /* tag-value: printable except ';', WSP inside */
			if ((unsigned char)v[q] < 0x20 && v[q] != '\t')
				goto bad;
		int which = -1;
		for (size_t q = 0; q < sizeof known / sizeof known[0]; q++)
			if (strlen(known[q]) == nn && memcmp(known[q], name, nn) == 0)
				which = (int)q;
		if (first) {
			first = false;
			continue; /* v=DMARC1, checked above */
		}
		if (which < 0)
			continue; /* unknown tags are ignored (section 6.3) */
		if (which == 0 || seen & (1u << which))
			goto bad;
		seen |= 1u << which;
		switch (which) {
		case 1:
			r->p = policy_val(v, vn);
			break;
		case 2:
			r->sp = policy_val(v, vn);
			r->sp_invalid = r->sp == DMARC_P_UNSET;
			break;
		case 3:
		case 4: {
			/* invalid values: the default (section 6.3, "discarded in
			 * favor of default values") */
			bool strict = val_is(v, vn, "s");
			if (which == 3)
				r->adkim_strict = strict;
			else
				r->aspf_strict = strict;
			break;
		}
		case 5: {
			unsigned x = 0;
			size_t q = 0;
			for (; q < vn && q < 4 && isdigit((unsigned char)v[q]); q++)
				x = x * 10 + (unsigned)(v[q] - '0');
			if (q == vn && vn > 0 && vn <= 3 && x <= 100)
				r->pct = x;
			break;
		}
		case 6:
			uri_list(v, vn, r->rua, &r->nrua);
			break;
		case 7:
			uri_list(v, vn, r->ruf, &r->nruf);
			break;
		case 8:
			if (fo_ok(v, vn) && vn < sizeof r->fo) {
				memcpy(r->fo, v, vn);
				r->fo[vn] = '\0';
			}
			break;
		case 9: {
			/* Format-type *(":" Format-type); afrf the only one defined */
			bool afrf = false;
			size_t q = 0;
			while (q <= vn) {
				size_t qe = q;
				while (qe < vn && v[qe] != ':')
					qe++;
				if (val_is(v + q, qe - q, "afrf"))
					afrf = true;
				q = qe + 1;
			}
			r->rf_afrf = afrf;
			break;
		}
		case 10: {
			unsigned long x = 0;
			size_t q = 0;
			for (; q < vn && isdigit((unsigned char)v[q]) && x < 100000000ul; q++)
				x = x * 10 + (unsigned long)(v[q] - '0');
			if (q == vn && vn > 0)
				r->ri = x;
			break;
		}
		default:
			break;
		}
	}
	return 0;
bad:
	dmarc_record_clear(r);
	buf_puts(err, "DMARC record syntax error");
	return -1;
}

bool
dmarc_record_usable(dmarc_record_t *r)
{
	if (r->p != DMARC_P_UNSET && !r->sp_invalid)
		return true;
	if (r->nrua == 0)
		return false;
	/* section 6.6.3 step 6: as if p=none (an invalid sp: the same, p's
	 * rules then apply to subdomains too) */
	r->p = DMARC_P_NONE;
	r->sp = DMARC_P_UNSET;
	r->sp_invalid = false;
	return true;
}

/* ---- the organizational domain and alignment ---- */

psl_ctx_t *
dmarc_psl_load(const char *path, buf_t *err)
{
	psl_ctx_t *p = psl_load_file(path);
	if (!p)
		buf_printf(err, "cannot load the public suffix list %s", path);
	return p;
}

void
dmarc_org_domain(const psl_ctx_t *psl, const char *domain, buf_t *out)
{
	const char *r = psl ? psl_registrable_domain(psl, domain) : NULL;
	buf_puts(out, r ? r : domain);
}

bool
dmarc_aligned(const psl_ctx_t *psl, const char *a, const char *b, bool strict)
{
	if (!a || !b || !a[0] || !b[0])
		return false;
	if (strcasecmp(a, b) == 0)
		return true;
	if (strict)
		return false;
	buf_t oa = BUF_INIT, ob = BUF_INIT;
	char *la = xstrdup(a), *lb = xstrdup(b);
	for (char *p = la; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (char *p = lb; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	dmarc_org_domain(psl, la, &oa);
	dmarc_org_domain(psl, lb, &ob);
	bool r = strcmp(buf_cstr(&oa), buf_cstr(&ob)) == 0;
	buf_free(&oa);
	buf_free(&ob);
	xfree(la);
	xfree(lb);
	return r;
}

const char *
dmarc_result_str(enum dmarc_result r)
{
	switch (r) {
	case DMARC_NONE: return "none";
	case DMARC_PASS: return "pass";
	case DMARC_FAIL: return "fail";
	case DMARC_TEMPERROR: return "temperror";
	case DMARC_PERMERROR: return "permerror";
	}
	return "permerror";
}

const char *
dmarc_policy_str(enum dmarc_policy p)
{
	switch (p) {
	case DMARC_P_QUARANTINE: return "quarantine";
	case DMARC_P_REJECT: return "reject";
	default: return "none";
	}
}

/* ---- discovery and evaluation (section 6.6.3) ---- */

struct dmarc_req {
	dns_t *dns;
	const psl_ctx_t *psl;
	dns_query_t *q;
	uv_timer_t *timer; /* delivers an answer found without DNS: never from inside */
	dmarc_cb cb;
	void *arg;
	char *from, *org, *spf_domain;
	char **dkim;
	size_t ndkim;
	bool spf_pass;
	unsigned roll;
	bool at_org;       /* the second query, at the organizational domain */
	char *record_domain;
	dmarc_record_t rec;
	bool have_rec;
	enum dmarc_result result;
	const char *reason;
};

static void
req_free(dmarc_req_t *r)
{
	xfree(r->from);
	xfree(r->org);
	xfree(r->spf_domain);
	for (size_t i = 0; i < r->ndkim; i++)
		xfree(r->dkim[i]);
	xfree(r->dkim);
	xfree(r->record_domain);
	dmarc_record_clear(&r->rec);
	xfree(r);
}

static void
timer_closed(uv_handle_t *h)
{
	xfree(h);
}

static void
finish(dmarc_req_t *r)
{
	dmarc_answer_t a;
	memset(&a, 0, sizeof a);
	a.from_domain = r->from;
	a.org_domain = r->org;
	a.record_domain = r->record_domain ? r->record_domain : "";
	a.result = r->result;
	a.reason = r->reason ? r->reason : "";
	a.disposition = DMARC_P_NONE;
	if (r->have_rec) {
		a.rec = &r->rec;
		bool sub = r->at_org && strcmp(r->from, r->org) != 0;
		a.policy = sub && r->rec.sp != DMARC_P_UNSET ? r->rec.sp : r->rec.p;
		for (size_t i = 0; i < r->ndkim && !a.dkim_aligned; i++)
			a.dkim_aligned = dmarc_aligned(r->psl, r->dkim[i], r->from, r->rec.adkim_strict);
		a.spf_aligned = r->spf_pass &&
		    dmarc_aligned(r->psl, r->spf_domain, r->from, r->rec.aspf_strict);
		if (a.dkim_aligned || a.spf_aligned) {
			a.result = DMARC_PASS;
			a.reason = a.dkim_aligned && a.spf_aligned ? "DKIM and SPF aligned"
			    : a.dkim_aligned ? "DKIM aligned" : "SPF aligned";
		} else {
			a.result = DMARC_FAIL;
			a.reason = "neither DKIM nor SPF aligned";
			a.disposition = a.policy;
			/* section 6.6.4: outside pct, one step down */
			if (r->roll >= r->rec.pct && a.policy != DMARC_P_NONE) {
				a.sampled_out = true;
				a.disposition = a.policy == DMARC_P_REJECT ? DMARC_P_QUARANTINE : DMARC_P_NONE;
			}
		}
	}
	dmarc_cb cb = r->cb;
	void *arg = r->arg;
	cb(arg, &a);
	req_free(r);
}

static void
timer_fire(uv_timer_t *t)
{
	dmarc_req_t *r = t->data;
	r->timer = NULL;
	uv_close((uv_handle_t *)t, timer_closed);
	finish(r);
}

static void lookup(dmarc_req_t *r);

static void
dns_done(void *arg, const dns_result_t *res)
{
	dmarc_req_t *r = arg;
	r->q = NULL;
	const char *name = r->at_org ? r->org : r->from;
	if (res->status == DNS_TEMPFAIL || res->status == DNS_BOGUS) {
		r->result = DMARC_TEMPERROR;
		r->reason = "DNS error looking up the policy";
		finish(r);
		return;
	}
	size_t nrec = 0;
	buf_t txt = BUF_INIT, one = BUF_INIT;
	for (size_t i = 0; res->status == DNS_OK && i < res->n; i++) {
		buf_reset(&one);
		if (dns_txt_join(res->rr[i].rdata, res->rr[i].rdlen, &one) < 0)
			continue;
		if (memchr(one.data, '\0', one.len) || !dmarc_is_record(one.data, one.len))
			continue; /* not DMARC: ignored (step 2) */
		if (nrec++ == 0)
			buf_append(&txt, one.data, one.len);
	}
	buf_free(&one);
	if (nrec > 1) {
		/* step 5: several records = no policy; no walk further */
		r->result = DMARC_NONE;
		r->reason = "several DMARC records";
		buf_free(&txt);
		finish(r);
		return;
	}
	if (nrec == 1) {
		buf_t err = BUF_INIT;
		if (dmarc_record_parse(txt.data, txt.len, &r->rec, &err) == 0 &&
		    dmarc_record_usable(&r->rec)) {
			r->have_rec = true;
			r->record_domain = xstrdup(name);
		} else {
			dmarc_record_clear(&r->rec);
			r->result = DMARC_NONE;
			r->reason = "invalid DMARC record";
		}
		buf_free(&err);
		buf_free(&txt);
		finish(r);
		return;
	}
	buf_free(&txt);
	if (!r->at_org && strcmp(r->from, r->org) != 0) {
		r->at_org = true; /* step 3: the organizational domain, once */
		lookup(r);
		return;
	}
	r->result = DMARC_NONE;
	r->reason = "no DMARC record";
	finish(r);
}

static void
lookup(dmarc_req_t *r)
{
	char *qn = xasprintf("_dmarc.%s", r->at_org ? r->org : r->from);
	r->q = dns_query(r->dns, qn, DNS_T_TXT, dns_done, r);
	xfree(qn);
}

dmarc_req_t *
dmarc_check(dns_t *dns, const psl_ctx_t *psl, const dmarc_input_t *in, dmarc_cb cb, void *arg)
{
	dmarc_req_t *r = xcalloc(1, sizeof *r);
	dmarc_record_clear(&r->rec);
	r->dns = dns;
	r->psl = psl;
	r->cb = cb;
	r->arg = arg;
	r->from = xstrdup(in->from_domain ? in->from_domain : "");
	for (char *p = r->from; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	buf_t org = BUF_INIT;
	dmarc_org_domain(psl, r->from, &org);
	r->org = buf_steal(&org);
	if (!r->org)
		r->org = xstrdup("");
	r->spf_domain = in->spf_domain ? xstrdup(in->spf_domain) : NULL;
	r->spf_pass = in->spf_pass && in->spf_domain;
	if (in->ndkim) {
		r->dkim = xcalloc(in->ndkim, sizeof *r->dkim);
		for (size_t i = 0; i < in->ndkim; i++)
			if (in->dkim_pass_domains[i] && in->dkim_pass_domains[i][0])
				r->dkim[r->ndkim++] = xstrdup(in->dkim_pass_domains[i]);
	}
	r->roll = in->roll;
	if (!r->from[0]) {
		/* nothing to look up: answered from a timer, never from inside */
		r->result = DMARC_PERMERROR;
		r->reason = "no author domain";
		r->timer = xmalloc(sizeof *r->timer);
		uv_timer_init(dns_loop(dns), r->timer);
		r->timer->data = r;
		uv_timer_start(r->timer, timer_fire, 0, 0);
		return r;
	}
	lookup(r);
	return r;
}

void
dmarc_cancel(dmarc_req_t *r)
{
	if (!r)
		return;
	dns_cancel(r->q);
	if (r->timer) {
		uv_timer_stop(r->timer);
		uv_close((uv_handle_t *)r->timer, timer_closed);
	}
	req_free(r);
}
