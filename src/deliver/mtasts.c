/*
 * mtasts.c - the MTA-STS TXT record, policy parser and MX matching (RFC
 * 8461 §3.1, §3.2, §4.1; see mtasts.h). No I/O, no allocation beyond the
 * policy's own.
 */
#include "deliver/mtasts.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "lib/xalloc.h"

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

int
mtasts_txt_parse(const char *txt, size_t len, char *id, buf_t *err)
{
	/* §3.1: sts-version = "v=STSv1", first; fields split by ";" *WSP */
	if (len < 7 || memcmp(txt, "v=STSv1", 7) != 0)
		return 0;
	if (len > 7 && txt[7] != ';' && !is_wsp(txt[7]))
		return 0; /* "v=STSv10": another version, not ours */
	bool have_id = false;
	size_t i = 7;
	while (i < len) {
		while (i < len && (is_wsp(txt[i]) || txt[i] == ';'))
			i++;
		size_t start = i;
		while (i < len && txt[i] != ';')
			i++;
		size_t end = i;
		while (end > start && is_wsp(txt[end - 1]))
			end--;
		if (end == start)
			continue;
		const char *f = txt + start;
		size_t flen = end - start;
		const char *eq = memchr(f, '=', flen);
		if (!eq || eq == f) {
			buf_printf(err, "a field without \"name=value\" in the _mta-sts TXT record");
			return -1;
		}
		if ((size_t)(eq - f) == 2 && memcmp(f, "id", 2) == 0) {
			size_t vlen = flen - 3;
			if (have_id)
				continue; /* the first one counts */
			if (vlen == 0 || vlen > MTASTS_ID_MAX) {
				buf_printf(err, "the id in the _mta-sts TXT record is not 1-32 letters or digits");
				return -1;
			}
			for (size_t k = 0; k < vlen; k++)
				if (!isalnum((unsigned char)eq[1 + k])) {
					buf_printf(err, "the id in the _mta-sts TXT record is not 1-32 letters "
					    "or digits");
					return -1;
				}
			memcpy(id, eq + 1, vlen);
			id[vlen] = '\0';
			have_id = true;
		}
	}
	if (!have_id) {
		buf_printf(err, "the _mta-sts TXT record has no id");
		return -1;
	}
	return 1;
}

/* RFC 1035 host name with an optional leading "*." : lowercased copy or NULL */
static char *
pattern_norm(const char *v, size_t n)
{
	if (n > 0 && v[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return NULL;
	size_t i = 0;
	if (n > 2 && v[0] == '*' && v[1] == '.')
		i = 2;
	size_t label = 0;
	for (size_t k = i; k < n; k++) {
		char c = v[k];
		if (c == '.') {
			if (label == 0)
				return NULL;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)c) && c != '-' && c != '_')
			return NULL;
		if (++label > 63)
			return NULL;
	}
	if (label == 0)
		return NULL;
	char *p = xstrndup(v, n);
	for (char *q = p; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	return p;
}

void
mtasts_policy_clear(mtasts_policy_t *p)
{
	for (size_t i = 0; i < p->nmx; i++)
		xfree(p->mx[i]);
	xfree(p->mx);
	memset(p, 0, sizeof *p);
}

void
mtasts_policy_copy(mtasts_policy_t *dst, const mtasts_policy_t *src)
{
	*dst = *src;
	dst->mx = xcalloc(src->nmx ? src->nmx : 1, sizeof *dst->mx);
	for (size_t i = 0; i < src->nmx; i++)
		dst->mx[i] = xstrdup(src->mx[i]);
}

static int
fail(mtasts_policy_t *p, buf_t *err, const char *why, size_t line)
{
	buf_printf(err, "%s (line %zu)", why, line);
	mtasts_policy_clear(p);
	return -1;
}

int
mtasts_policy_parse(const char *body, size_t len, mtasts_policy_t *p, buf_t *err)
{
	memset(p, 0, sizeof *p);
	if (len > MTASTS_BODY_MAX) {
		buf_printf(err, "the policy is larger than 64 KiB");
		return -1;
	}
	bool have_version = false, have_mode = false, have_age = false;
	size_t i = 0, lineno = 0;
	while (i < len) {
		size_t start = i;
		while (i < len && body[i] != '\n')
			i++;
		size_t end = i;
		if (i < len)
			i++; /* the LF */
		lineno++;
		if (end > start && body[end - 1] == '\r')
			end--;
		while (end > start && is_wsp(body[end - 1]))
			end--;
		if (end == start)
			continue; /* an empty line (a trailing CRLF pair) */
		const char *l = body + start;
		size_t n = end - start;
		if (memchr(l, '\0', n) || memchr(l, '\r', n))
			return fail(p, err, "a control character in the policy", lineno);
		const char *colon = memchr(l, ':', n);
		if (!colon || colon == l)
			return fail(p, err, "a line that is not \"key: value\"", lineno);
		size_t klen = (size_t)(colon - l);
		if (klen > 32)
			return fail(p, err, "a field name over 32 characters", lineno);
		for (size_t k = 0; k < klen; k++)
			if (!isalnum((unsigned char)l[k]) && l[k] != '_' && l[k] != '-' && l[k] != '.')
				return fail(p, err, "a bad field name", lineno);
		const char *v = colon + 1;
		while (v < l + n && is_wsp(*v))
			v++;
		size_t vlen = (size_t)(l + n - v);
		if (vlen == 0)
			return fail(p, err, "a field without a value", lineno);
		for (size_t k = 0; k < vlen; k++)
			if ((unsigned char)v[k] < 0x20 && !is_wsp(v[k]))
				return fail(p, err, "a control character in the policy", lineno);
		/* §3.2: the field names are case-sensitive; of a repeated field
		 * (other than mx) the first is used */
		if (klen == 7 && memcmp(l, "version", 7) == 0) {
			if (have_version)
				continue;
			if (vlen != 5 || memcmp(v, "STSv1", 5) != 0)
				return fail(p, err, "version is not STSv1", lineno);
			have_version = true;
		} else if (klen == 4 && memcmp(l, "mode", 4) == 0) {
			if (have_mode)
				continue;
			if (vlen == 7 && memcmp(v, "enforce", 7) == 0)
				p->mode = MTASTS_ENFORCE;
			else if (vlen == 7 && memcmp(v, "testing", 7) == 0)
				p->mode = MTASTS_TESTING;
			else if (vlen == 4 && memcmp(v, "none", 4) == 0)
				p->mode = MTASTS_NONE;
			else
				return fail(p, err, "mode is not enforce, testing or none", lineno);
			have_mode = true;
		} else if (klen == 7 && memcmp(l, "max_age", 7) == 0) {
			if (have_age)
				continue;
			if (vlen > 10)
				return fail(p, err, "max_age is not 1-10 digits", lineno);
			uint64_t a = 0;
			for (size_t k = 0; k < vlen; k++) {
				if (!isdigit((unsigned char)v[k]))
					return fail(p, err, "max_age is not 1-10 digits", lineno);
				a = a * 10 + (uint64_t)(v[k] - '0');
			}
			/* §3.2: at most 31557600; a larger value is held to it */
			p->max_age = a > MTASTS_MAX_AGE_LIMIT ? MTASTS_MAX_AGE_LIMIT : (uint32_t)a;
			have_age = true;
		} else if (klen == 2 && memcmp(l, "mx", 2) == 0) {
			char *pat = pattern_norm(v, vlen);
			if (!pat)
				return fail(p, err, "an mx pattern that is not a host name or *.domain", lineno);
			if (p->nmx >= MTASTS_MAX_MX) {
				xfree(pat);
				return fail(p, err, "more than 64 mx patterns", lineno);
			}
			p->mx = xrealloc(p->mx, (p->nmx + 1) * sizeof *p->mx);
			p->mx[p->nmx++] = pat;
		}
		/* other fields: extensions, ignored (§3.2) */
	}
	if (!have_version)
		return fail(p, err, "no version field", lineno);
	if (!have_mode)
		return fail(p, err, "no mode field", lineno);
	if (!have_age)
		return fail(p, err, "no max_age field", lineno);
	if (p->mode != MTASTS_NONE && p->nmx == 0)
		return fail(p, err, "no mx field (required unless the mode is none)", lineno);
	return 0;
}

bool
mtasts_mx_match(const mtasts_policy_t *p, const char *host)
{
	size_t hn = strlen(host);
	if (hn > 0 && host[hn - 1] == '.')
		hn--;
	for (size_t i = 0; i < p->nmx; i++) {
		const char *pat = p->mx[i];
		size_t pn = strlen(pat);
		if (pat[0] == '*' && pat[1] == '.') {
			/* exactly one label in place of the "*" (§4.1) */
			const char *rest = pat + 1; /* ".example.com" */
			size_t rn = pn - 1;
			if (hn <= rn || strncasecmp(host + hn - rn, rest, rn) != 0)
				continue;
			size_t first = hn - rn; /* the leftmost label's length */
			if (first > 0 && !memchr(host, '.', first))
				return true;
			continue;
		}
		if (pn == hn && strncasecmp(host, pat, hn) == 0)
			return true;
	}
	return false;
}

const char *
mtasts_mode_name(enum mtasts_mode m)
{
	switch (m) {
	case MTASTS_ENFORCE:
		return "enforce";
	case MTASTS_TESTING:
		return "testing";
	case MTASTS_NONE:
		break;
	}
	return "none";
}
