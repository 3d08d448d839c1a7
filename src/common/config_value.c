/*
 * config_value.c - the values of tern's configuration file: parsers of
 * numbers, sizes, durations, networks, domains, listen addresses, booleans
 * and milter specs, the extra checks cfg_keys[] names, the tokenizer of a
 * value into words, and one setter per key type (cfg_set() picks it).
 *
 * Guarantees: a setter either stores a fully checked value into the
 * config_t being built or reports why not through cfg_error() (with the
 * value quoted, cut to SHOW octets) and returns -1, leaving the field as it
 * was; list keys stay under CONFIG_MAX_LIST entries. The exported parsers
 * (config_parse_size(), ...) are in config.h, the rest in config_int.h.
 * It must not: touch the network or the file system (a user name is checked
 * for its form, not looked up), or log.
 */
#include "common/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/rate.h"
#include "lib/httpd.h"
#include "lib/tls.h"
#include "lib/xalloc.h"

#include "common/config_int.h"

/* ------------------------------------------------------------------ */
/* value parsers (exported ones are in config.h)                      */

static bool
is_digit(int ch)
{
	return ch >= '0' && ch <= '9';
}

/* leading decimal digits of s into *out, at most 19 of them; returns count */
static size_t
parse_digits(const char *s, uint64_t *out)
{
	size_t i = 0;
	uint64_t v = 0;
	while (is_digit((unsigned char)s[i])) {
		if (i == 19)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
		i++;
	}
	*out = v;
	return i;
}

static int
parse_number(const char *s, uint64_t *out)
{
	uint64_t v;
	size_t n = parse_digits(s, &v);
	if (n == 0 || s[n] != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
parse_duration64(const char *s, uint64_t *out)
{
	uint64_t v;
	size_t n = parse_digits(s, &v);
	if (n == 0)
		return -1;
	uint64_t mult = 1;
	switch (s[n]) {
	case '\0': break;
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	case 'w': mult = 7 * 86400; break;
	default: return -1;
	}
	if (s[n] != '\0' && s[n + 1] != '\0')
		return -1;
	if (v > UINT_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

int
config_parse_duration(const char *s, unsigned *out)
{
	uint64_t v;
	if (s == NULL || parse_duration64(s, &v) < 0)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int
config_parse_size(const char *s, uint64_t *out)
{
	if (s == NULL)
		return -1;
	uint64_t v;
	size_t n = parse_digits(s, &v);
	if (n == 0)
		return -1;
	uint64_t mult = 1;
	switch (s[n]) {
	case '\0': break;
	case 'k':
	case 'K': mult = KIB; break;
	case 'M': mult = MIB; break;
	case 'G': mult = GIB; break;
	default: return -1;
	}
	if (s[n] != '\0' && s[n + 1] != '\0')
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out = v * mult;
	return 0;
}

/* Parse "ADDR[/PREFIX]", ADDR an IPv4 or IPv6 address, IPv6 optionally in
 * brackets (Postfix writes "[::1]/128"). An IPv4-mapped IPv6 network with a
 * prefix of at least 96 becomes the IPv4 network it maps. Host bits beyond
 * the prefix must be zero. */
static int
netmask_parse(const char *s, netmask_t *out, const char **why)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	*why = "not an IP address or network";
	if (hlen == 0 || hlen >= sizeof host)
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	char *h = host;
	bool bracketed = false;
	if (h[0] == '[') {
		if (hlen < 3 || h[hlen - 1] != ']')
			return -1;
		h[hlen - 1] = '\0';
		h++;
		bracketed = true;
	}
	netmask_t m;
	memset(&m, 0, sizeof m);
	int maxbits;
	if (!bracketed && inet_pton(AF_INET, h, m.addr) == 1) {
		m.family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, h, m.addr) == 1) {
		m.family = AF_INET6;
		maxbits = 128;
	} else {
		return -1;
	}
	m.prefix = maxbits;
	if (slash) {
		uint64_t v;
		const char *ps = slash + 1;
		size_t n = parse_digits(ps, &v);
		if (n == 0 || n > 3 || ps[n] != '\0' || v > (uint64_t)maxbits) {
			*why = "bad prefix length";
			return -1;
		}
		m.prefix = (int)v;
	}
	bool hostbits = false;
	for (int bit = m.prefix; bit < maxbits; bit++) {
		if (m.addr[bit / 8] & (0x80 >> (bit % 8))) {
			m.addr[bit / 8] &= (unsigned char)~(0x80 >> (bit % 8));
			hostbits = true;
		}
	}
	if (hostbits) {
		/* *out gets the network the author probably meant, for the message */
		*why = "address has bits set beyond the prefix length";
		*out = m;
		return -1;
	}
	if (m.family == AF_INET6 && m.prefix >= 96 &&
	    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)m.addr)) {
		m.family = AF_INET;
		memmove(m.addr, m.addr + 12, 4);
		memset(m.addr + 4, 0, 12);
		m.prefix -= 96;
	}
	*out = m;
	return 0;
}

int
config_parse_netmask(const char *s, netmask_t *out)
{
	const char *why;
	if (s == NULL)
		return -1;
	return netmask_parse(s, out, &why);
}

/* RFC 1035 §2.3.1 preferred name syntax (LDH labels, RFC 1123 §2.1 allows a
 * leading digit), no trailing dot, at most 253 octets. */
bool
cfg_valid_domain(const char *s)
{
	size_t n = strlen(s), lab = 0;
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '.') {
			if (lab == 0 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch);
		if (!alnum && ch != '-')
			return false;
		if (ch == '-' && lab == 0)
			return false;
		if (++lab > 63)
			return false;
	}
	return lab > 0 && s[n - 1] != '-';
}

const char *
check_user(const char *v)
{
	size_t n = strlen(v);
	if (n > 32)
		return "user name longer than 32 characters";
	if (v[0] == '-')
		return "user name starts with '-'";
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) ||
		    ch == '_' || ch == '-' || ch == '.'))
			return "not a valid user name";
	}
	return NULL;
}

/* queue_list_users: anyone, none, a user name, or %group */
const char *
check_list_user(const char *v)
{
	if (strcmp(v, "anyone") == 0 || strcmp(v, "none") == 0)
		return NULL;
	if (v[0] == '%')
		return v[1] == '\0' || check_user(v + 1) ? "not a valid %group" : NULL;
	return check_user(v);
}

/* "[host]:port", "[host]", "host:port" or "host" (outbound.h) */
const char *
check_relayhost(const char *v)
{
	const char *host = v, *end;
	if (*v == '[') {
		end = strchr(v, ']');
		if (!end || end == v + 1)
			return "expected [host] or [host]:port";
		host = v + 1;
	} else {
		end = strchr(v, ':');
		if (!end)
			end = v + strlen(v);
		if (end == v)
			return "empty host name";
	}
	for (const char *p = host; p < end; p++) {
		unsigned char ch = (unsigned char)*p;
		if (!(isalnum(ch) || ch == '.' || ch == '-' || ch == ':'))
			return "host must be a host name or an IP address";
	}
	const char *port = *v == '[' ? end + 1 : end;
	if (*port == '\0')
		return NULL;
	if (*port != ':' || port[1] == '\0')
		return "expected :port after the host";
	long n = 0;
	for (const char *p = port + 1; *p; p++) {
		if (!is_digit((unsigned char)*p))
			return "port must be a number";
		n = n * 10 + (*p - '0');
		if (n > 65535)
			return "port out of range";
	}
	return n == 0 ? "port out of range" : NULL;
}

const char *
check_rate(const char *v)
{
	rate_t r;
	const char *why = NULL;
	return rate_parse(v, &r, &why) < 0 ? why : NULL;
}

/* ratelimit_redis: IP:PORT, [IPv6]:PORT or unix:/PATH (no names: no DNS) */
const char *
check_redis(const char *v)
{
	const char *bad = "expected IP:PORT, [IPv6]:PORT or unix:/path";
	if (strncmp(v, "unix:", 5) == 0)
		return v[5] == '/' ? NULL : bad;
	const char *colon = strrchr(v, ':');
	if (colon == NULL || colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) > 5)
		return bad;
	long port = strtol(colon + 1, NULL, 10);
	if (port < 1 || port > 65535)
		return bad;
	char host[64];
	size_t hl = (size_t)(colon - v);
	if (v[0] == '[') {
		if (hl < 3 || v[hl - 1] != ']' || hl - 2 >= sizeof host)
			return bad;
		memcpy(host, v + 1, hl - 2);
		host[hl - 2] = '\0';
		unsigned char a6[16];
		return inet_pton(AF_INET6, host, a6) == 1 ? NULL : bad;
	}
	if (hl >= sizeof host)
		return bad;
	memcpy(host, v, hl);
	host[hl] = '\0';
	unsigned char a4[4];
	return inet_pton(AF_INET, host, a4) == 1 ? NULL : bad;
}

const char *
check_open_closed(const char *v)
{
	return strcmp(v, "open") == 0 || strcmp(v, "closed") == 0 ? NULL : "expected open or closed";
}

/* the actions of the mail-authentication keys (mailauth/mailauth.h) */
const char *
check_tag_reject(const char *v)
{
	return strcmp(v, "tag") == 0 || strcmp(v, "reject") == 0 ? NULL : "must be tag or reject";
}

const char *
check_tag_defer(const char *v)
{
	return strcmp(v, "tag") == 0 || strcmp(v, "defer") == 0 ? NULL : "must be tag or defer";
}

const char *
check_tag_hold(const char *v)
{
	return strcmp(v, "tag") == 0 || strcmp(v, "hold") == 0 ? NULL : "must be tag or hold";
}

const char *
check_log_format(const char *v)
{
	return strcmp(v, "text") == 0 || strcmp(v, "json") == 0 ? NULL : "must be text or json";
}

/* RFC 8601 section 2.2: authserv-id is a value; tern writes it bare, so a
 * token (RFC 2045: no spaces, controls or tspecials), e.g. a host name */
const char *
check_authserv_id(const char *v)
{
	if (!*v || strlen(v) > 255)
		return "must be a token of 1 to 255 characters (a host name, say)";
	for (const char *q = v; *q; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?=", *q))
			return "must be a token: no spaces, controls or ()<>@,;:\\\"/[]?=";
	return NULL;
}

/* the From of the DMARC reports: local@domain, no spaces or brackets */
const char *
check_report_email(const char *v)
{
	const char *at = strrchr(v, '@');
	if (!at || at == v || !at[1] || strlen(v) > 254)
		return "must be an address, local@domain";
	for (const char *q = v; *q; q++)
		if ((unsigned char)*q <= 0x20 || strchr("<>,;\"", *q))
			return "must be an address, local@domain";
	return NULL;
}

const char *
check_dnsbl_stage(const char *v)
{
	return strcmp(v, "connect") == 0 || strcmp(v, "rcpt") == 0 ? NULL
	    : "must be connect or rcpt";
}

const char *
check_auth_backend(const char *v)
{
	return strcmp(v, "file") == 0 || strcmp(v, "dovecot") == 0 ? NULL
	    : "must be file (auth_users) or dovecot (dovecot_auth_socket)";
}

/* "/path", "unix:/path" or "inet:HOST:PORT", HOST a numeric address
 * (bracketed for IPv6): the AUTH path does no DNS lookup */
const char *
check_dovecot_socket(const char *v)
{
	const char *a = strncmp(v, "unix:", 5) == 0 ? v + 5 : v;
	if (a[0] == '/')
		return strlen(a) < 108 ? NULL : "socket path too long";
	if (strncmp(v, "inet:", 5) != 0)
		return "expected an absolute socket path, unix:PATH or inet:HOST:PORT";
	a = v + 5;
	char host[64];
	const char *e = a[0] == '[' ? strchr(a, ']') : strrchr(a, ':');
	const char *h = a[0] == '[' ? a + 1 : a;
	if (!e || e < h || (size_t)(e - h) >= sizeof host || (a[0] == '[' && e[1] != ':'))
		return "expected inet:HOST:PORT (inet:[IPV6]:PORT for IPv6)";
	memcpy(host, h, (size_t)(e - h));
	host[e - h] = '\0';
	const char *port = a[0] == '[' ? e + 2 : e + 1;
	unsigned char tmp[sizeof(struct in6_addr)];
	if (inet_pton(a[0] == '[' ? AF_INET6 : AF_INET, host, tmp) != 1)
		return "HOST must be a numeric IP address (no DNS lookup on the AUTH path)";
	char *end;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 1 || p > 65535)
		return "PORT must be a number from 1 to 65535";
	return NULL;
}

/* "IP[@PORT] IP[@PORT] ..." */
const char *
check_dns_servers(const char *v)
{
	char buf[128];
	const char *p = v;
	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		size_t n = strcspn(p, " \t,");
		if (n >= sizeof buf)
			return "server address too long";
		memcpy(buf, p, n);
		buf[n] = '\0';
		char *at = strchr(buf, '@');
		if (at) {
			*at = '\0';
			char *e;
			long port = strtol(at + 1, &e, 10);
			if (*e || port < 1 || port > 65535)
				return "port after @ must be 1-65535";
		}
		unsigned char a[16];
		if (inet_pton(AF_INET, buf, a) != 1 && inet_pton(AF_INET6, buf, a) != 1)
			return "each server must be an IP address, optionally with @port";
		p += n;
	}
	return NULL;
}

const char *
check_tls_protocols(const char *v)
{
	int lo, hi;
	return tls_parse_protocols(v, &lo, &hi);
}

/* The delimiter must be an RFC 5322 §3.2.3 atext special, so that it can
 * appear unquoted in a Dot-string local part, and not a letter or digit. */
/* http_listen: what httpd_bind takes */
const char *
check_http_listen(const char *v)
{
	static char why[300];
	struct sockaddr_storage ss;
	socklen_t len;
	buf_t err = BUF_INIT;
	int rc = httpd_parse_listen(v, &ss, &len, &err);
	snprintf(why, sizeof why, "%s", buf_cstr(&err));
	buf_free(&err);
	return rc < 0 ? why : NULL;
}

const char *
check_delimiter(const char *v)
{
	if (v[0] == '\0')
		return NULL;
	if (v[1] != '\0')
		return "must be a single character (or empty to disable)";
	if (strchr("!#$%&'*+-/=?^_`{|}~", v[0]) == NULL)
		return "must be one of ! # $ % & ' * + - / = ? ^ _ ` { | } ~";
	return NULL;
}

void
cfg_tokens_free(tokens_t *t)
{
	for (size_t i = 0; i < t->n; i++)
		xfree(t->v[i]);
	xfree(t->v);
	t->v = NULL;
	t->n = 0;
}

/* Split s into words separated by white space and/or commas. A double
 * quote starts a quoted part (in which \" and \\ are escapes) that may hold
 * separators and '#'; "" is an empty word. -1 on an unterminated quote. */
int
cfg_tokenize(const char *s, tokens_t *out)
{
	buf_t w = BUF_INIT;
	bool in_word = false;
	out->v = NULL;
	out->n = 0;
	for (size_t i = 0;; i++) {
		char ch = s[i];
		if (ch == '\0' || ch == ' ' || ch == '\t' || ch == ',') {
			if (in_word) {
				out->v = xrealloc(out->v, (out->n + 1) * sizeof *out->v);
				out->v[out->n++] = xstrdup(buf_cstr(&w));
				buf_reset(&w);
				in_word = false;
			}
			if (ch == '\0')
				break;
			continue;
		}
		in_word = true;
		if (ch != '"') {
			buf_putc(&w, ch);
			continue;
		}
		for (i++;; i++) {
			if (s[i] == '\0') {
				buf_free(&w);
				cfg_tokens_free(out);
				return -1;
			}
			if (s[i] == '"')
				break;
			if (s[i] == '\\' && (s[i + 1] == '"' || s[i + 1] == '\\'))
				i++;
			buf_putc(&w, s[i]);
		}
	}
	buf_free(&w);
	return 0;
}

/* ------------------------------------------------------------------ */
/* setters, one per type                                              */

static void *
field(cfg_parser_t *p, const struct cfg_key *k)
{
	return (char *)p->c + k->off;
}

void
cfg_fmt_duration(char *out, size_t n, uint64_t v)
{
	if (v && v % (7 * DAY) == 0)
		snprintf(out, n, "%lluw", (unsigned long long)(v / (7 * DAY)));
	else if (v && v % DAY == 0)
		snprintf(out, n, "%llud", (unsigned long long)(v / DAY));
	else if (v && v % 3600 == 0)
		snprintf(out, n, "%lluh", (unsigned long long)(v / 3600));
	else if (v && v % 60 == 0)
		snprintf(out, n, "%llum", (unsigned long long)(v / 60));
	else
		snprintf(out, n, "%llus", (unsigned long long)v);
}

static void
fmt_size(char *out, size_t n, uint64_t v)
{
	if (v && v % GIB == 0)
		snprintf(out, n, "%lluG", (unsigned long long)(v / GIB));
	else if (v && v % MIB == 0)
		snprintf(out, n, "%lluM", (unsigned long long)(v / MIB));
	else if (v && v % KIB == 0)
		snprintf(out, n, "%lluk", (unsigned long long)(v / KIB));
	else
		snprintf(out, n, "%llu", (unsigned long long)v);
}

static int
set_number(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	if (t->n != 1) {
		cfg_error(p, line, "%s: expected one value, got %zu", k->name, t->n);
		return -1;
	}
	const char *s = t->v[0];
	uint64_t v;
	int r;
	const char *what;
	void (*fmt)(char *, size_t, uint64_t) = NULL;
	switch (k->type) {
	case CT_SIZE:
		r = config_parse_size(s, &v);
		what = "a size (a number with an optional unit k, M or G)";
		fmt = fmt_size;
		break;
	case CT_DURATION:
		r = parse_duration64(s, &v);
		what = "a duration (a number with an optional unit s, m, h, d or w)";
		fmt = cfg_fmt_duration;
		break;
	default:
		r = parse_number(s, &v);
		what = "a whole number";
		break;
	}
	if (r < 0) {
		cfg_error(p, line, "%s: \"%.*s%s\" is not %s", k->name, SHOWV(s), what);
		return -1;
	}
	if (v < k->min || v > k->max) {
		char lo[32], hi[32];
		if (fmt) {
			fmt(lo, sizeof lo, k->min);
			fmt(hi, sizeof hi, k->max);
		} else {
			snprintf(lo, sizeof lo, "%llu", (unsigned long long)k->min);
			snprintf(hi, sizeof hi, "%llu", (unsigned long long)k->max);
		}
		cfg_error(p, line, "%s: %s is out of range (%s to %s)", k->name, s, lo, hi);
		return -1;
	}
	void *f = field(p, k);
	if (k->size == sizeof(unsigned)) {
		unsigned u = (unsigned)v;
		memcpy(f, &u, sizeof u);
	} else if (k->size == sizeof(uint64_t)) {
		memcpy(f, &v, sizeof v);
	} else {
		abort(); /* a cfg_keys[] entry with an unsupported width */
	}
	return 0;
}

/* Join a relative path to the configuration file's directory. Leading "./"
 * and "../" components are resolved against that (absolute, canonical)
 * directory; the rest is kept as written. */
char *
cfg_make_absolute(const char *base, const char *v)
{
	if (v[0] == '/')
		return xstrdup(v);
	buf_t b = BUF_INIT;
	buf_puts(&b, base);
	for (;;) {
		if (v[0] == '.' && (v[1] == '/' || v[1] == '\0')) {
			v += v[1] ? 2 : 1;
		} else if (v[0] == '.' && v[1] == '.' && (v[2] == '/' || v[2] == '\0')) {
			v += v[2] ? 3 : 2;
			char *slash = strrchr(b.data, '/');
			if (slash && slash != b.data) {
				b.len = (size_t)(slash - b.data);
				b.data[b.len] = '\0';
			} else {
				buf_reset(&b);
				buf_putc(&b, '/');
			}
		} else {
			break;
		}
		while (v[0] == '/')
			v++;
	}
	if (v[0] != '\0') {
		if (b.data[b.len - 1] != '/')
			buf_putc(&b, '/');
		buf_puts(&b, v);
	}
	return buf_steal(&b);
}

static int
set_scalar(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	char **f = field(p, k);
	if (t->n > 1) {
		cfg_error(p, line, "%s: expected one value, got %zu (quote a value that contains "
		    "spaces or commas)", k->name, t->n);
		return -1;
	}
	const char *v = t->n ? t->v[0] : "";
	if (v[0] == '\0') {
		if (k->flags & CF_OPTIONAL) {
			xfree(*f);
			*f = NULL;
			return 0;
		}
		cfg_error(p, line, "%s: empty value", k->name);
		return -1;
	}
	if (k->type == CT_DOMAIN && !cfg_valid_domain(v)) {
		cfg_error(p, line, "%s: \"%.*s%s\" is not a valid domain name", k->name, SHOWV(v));
		return -1;
	}
	if (k->type == CT_PATH && strlen(v) >= PATH_MAX - 256) {
		cfg_error(p, line, "%s: path too long", k->name);
		return -1;
	}
	if (k->check) {
		const char *why = k->check(v);
		if (why) {
			cfg_error(p, line, "%s: \"%.*s%s\": %s", k->name, SHOWV(v), why);
			return -1;
		}
	}
	xfree(*f);
	bool word = (k->flags & CF_NONE_WORD) && strcmp(v, "none") == 0;
	*f = k->type == CT_PATH && !word ? cfg_make_absolute(p->basedir, v) : xstrdup(v);
	return 0;
}

static int
set_char(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	if (t->n > 1) {
		cfg_error(p, line, "%s: expected one value, got %zu", k->name, t->n);
		return -1;
	}
	const char *v = t->n ? t->v[0] : "";
	const char *why = k->check ? k->check(v) : NULL;
	if (why == NULL && v[0] != '\0' && v[1] != '\0')
		why = "must be a single character";
	if (why) {
		cfg_error(p, line, "%s: \"%.*s%s\": %s", k->name, SHOWV(v), why);
		return -1;
	}
	*(char *)field(p, k) = v[0];
	return 0;
}

int
config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int
set_bool(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	if (t->n != 1) {
		cfg_error(p, line, "%s: expected one value (yes or no), got %zu", k->name, t->n);
		return -1;
	}
	bool v;
	if (config_parse_bool(t->v[0], &v) < 0) {
		cfg_error(p, line, "%s: \"%.*s%s\" is not yes or no (nor true/false, on/off, 1/0)",
		    k->name, SHOWV(t->v[0]));
		return -1;
	}
	*(bool *)field(p, k) = v;
	return 0;
}

void
cfg_free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		xfree(v[i]);
	xfree(v);
}

static int
set_domains(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	char ***fv = field(p, k);
	size_t *fn = (size_t *)(void *)((char *)p->c + k->noff);
	char **v = NULL;
	size_t n = 0;
	int r = 0;
	if (t->n > CONFIG_MAX_LIST) {
		cfg_error(p, line, "%s: too many values (at most %d)", k->name, CONFIG_MAX_LIST);
		return -1;
	}
	for (size_t i = 0; i < t->n; i++) {
		const char *d = t->v[i];
		if (k->type == CT_WORDS) {
			const char *why = k->check ? k->check(d) : NULL;
			if (why) {
				cfg_error(p, line, "%s: \"%.*s%s\": %s", k->name, SHOWV(d), why);
				r = -1;
			} else {
				v = xrealloc(v, (n + 1) * sizeof *v);
				v[n++] = xstrdup(d);
			}
			continue;
		}
		if (!cfg_valid_domain(d)) {
			cfg_error(p, line, "%s: \"%.*s%s\" is not a valid domain name", k->name,
			    SHOWV(d));
			r = -1;
			continue;
		}
		bool dup = false;
		for (size_t j = 0; j < n && !dup; j++)
			dup = strcasecmp(v[j], d) == 0;
		if (dup)
			continue;
		char *lc = xstrdup(d);
		for (char *q = lc; *q; q++)
			if (*q >= 'A' && *q <= 'Z')
				*q = (char)(*q - 'A' + 'a');
		v = xrealloc(v, (n + 1) * sizeof *v);
		v[n++] = lc;
	}
	if (r < 0) {
		cfg_free_strv(v, n);
		return -1;
	}
	cfg_free_strv(*fv, *fn);
	*fv = v;
	*fn = n;
	return 0;
}

static int
set_nets(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	netmask_t **fv = field(p, k);
	size_t *fn = (size_t *)(void *)((char *)p->c + k->noff);
	if (t->n > CONFIG_MAX_LIST) {
		cfg_error(p, line, "%s: too many values (at most %d)", k->name, CONFIG_MAX_LIST);
		return -1;
	}
	netmask_t *v = xcalloc(t->n ? t->n : 1, sizeof *v);
	size_t n = 0;
	int r = 0;
	for (size_t i = 0; i < t->n; i++) {
		const char *why;
		netmask_t m;
		memset(&m, 0, sizeof m);
		if (netmask_parse(t->v[i], &m, &why) < 0) {
			char net[INET6_ADDRSTRLEN] = "";
			if (m.family)
				inet_ntop(m.family, m.addr, net, sizeof net);
			if (net[0])
				cfg_error(p, line, "%s: \"%.*s%s\": %s (did you mean %s/%d?)", k->name,
				    SHOWV(t->v[i]), why, net, m.prefix);
			else
				cfg_error(p, line, "%s: \"%.*s%s\": %s", k->name, SHOWV(t->v[i]), why);
			r = -1;
			continue;
		}
		v[n++] = m;
	}
	if (r < 0) {
		xfree(v);
		return -1;
	}
	xfree(*fv);
	*fv = v;
	*fn = n;
	return 0;
}

static int
listen_mode_word(const char *s, enum listen_mode *m)
{
	if (strcasecmp(s, "smtp") == 0)
		*m = LISTEN_SMTP;
	else if (strcasecmp(s, "submission") == 0)
		*m = LISTEN_SUBMISSION;
	else if (strcasecmp(s, "smtps") == 0)
		*m = LISTEN_SMTPS;
	else
		return -1;
	return 0;
}

/* "1.2.3.4:25", "[::1]:25" or "[1.2.3.4]:25" -> canonical address and port */
static const char *
listen_addr_parse(const char *s, char **addr, int *port)
{
	char host[64];
	const char *colon, *h = s;
	size_t hlen;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL)
			return "missing ']'";
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
		if (*colon != ':')
			return "missing \":PORT\" after the address";
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return "missing \":PORT\" after the address";
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen))
			return "an IPv6 address must be written in brackets, e.g. [::1]:25";
	}
	if (hlen == 0 || hlen >= sizeof host)
		return "not an IP address";
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	unsigned char bin[16];
	char canon[INET6_ADDRSTRLEN];
	if (inet_pton(AF_INET, host, bin) == 1)
		inet_ntop(AF_INET, bin, canon, sizeof canon);
	else if (inet_pton(AF_INET6, host, bin) == 1)
		inet_ntop(AF_INET6, bin, canon, sizeof canon);
	else
		return "not an IP address (host names are not accepted here)";
	uint64_t v;
	const char *ps = colon + 1;
	size_t n = parse_digits(ps, &v);
	if (n == 0 || ps[n] != '\0' || v > 65535)
		return "port must be a number from 0 to 65535";
	*addr = xstrdup(canon);
	*port = (int)v;
	return NULL;
}

static bool
listen_is_wildcard(const char *a)
{
	return strcmp(a, "0.0.0.0") == 0 || strcmp(a, "::") == 0;
}

static int
set_listen(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	config_t *c = p->c;
	int r = 0;
	int mode_ok = 0; /* a mode word may follow: 1 a good address, 2 a refused one */
	if (t->n == 0) {
		cfg_error(p, line, "%s: empty value", k->name);
		return -1;
	}
	for (size_t i = 0; i < t->n; i++) {
		const char *s = t->v[i];
		enum listen_mode m;
		if (listen_mode_word(s, &m) == 0) {
			if (mode_ok == 0) {
				cfg_error(p, line, "%s: \"%s\" must follow an address", k->name, s);
				r = -1;
			} else if (mode_ok == 1) {
				c->listen[c->nlisten - 1].mode = m;
			}
			mode_ok = 0;
			continue;
		}
		mode_ok = 2;
		char *addr;
		int port;
		const char *why = listen_addr_parse(s, &addr, &port);
		if (why) {
			if (strchr(s, ':') == NULL && strchr(s, '.') == NULL)
				why = "expected ADDRESS:PORT or a mode (smtp, submission, smtps)";
			cfg_error(p, line, "%s: \"%.*s%s\": %s", k->name, SHOWV(s), why);
			r = -1;
			continue;
		}
		if (c->nlisten >= CONFIG_MAX_LIST) {
			xfree(addr);
			cfg_error(p, line, "%s: too many addresses", k->name);
			return -1;
		}
		for (size_t j = 0; j < c->nlisten && port != 0; j++) {
			listen_spec_t *o = &c->listen[j];
			if (o->port != port)
				continue;
			bool same_family = (strchr(o->addr, ':') != NULL) == (strchr(addr, ':') != NULL);
			if (strcmp(o->addr, addr) == 0 || (same_family && (listen_is_wildcard(addr) ||
			    listen_is_wildcard(o->addr)))) {
				cfg_error(p, line, "%s: %s port %d overlaps %s port %d (line %u)",
				    k->name, addr, port, o->addr, o->port, p->listen_line[j]);
				r = -1;
			}
		}
		c->listen = xrealloc(c->listen, (c->nlisten + 1) * sizeof *c->listen);
		c->listen[c->nlisten] = (listen_spec_t){addr, port, LISTEN_SMTP};
		p->listen_line[c->nlisten] = line;
		c->nlisten++;
		mode_ok = 1;
	}
	return r;
}

/*
 * "milter = NAME inet:PORT@HOST|inet:HOST:PORT|unix:PATH [default_action=tempfail|accept|reject]
 * [connect_timeout=D] [command_timeout=D] [eom_timeout=D]" (Postfix's
 * milter_default_action and milter_*_timeout, per milter).
 */
static int
set_milter(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	config_t *c = p->c;
	if (t->n < 2) {
		cfg_error(p, line, "%s: expected NAME inet:PORT@HOST|unix:PATH [option=value ...]",
		    k->name);
		return -1;
	}
	config_milter_t m = {NULL, NULL, NULL, 0, MILTER_TEMPFAIL, 30000, 30000, 100000};
	const char *name = t->v[0], *sock = t->v[1];
	int r = 0;
	for (const char *q = name; *q && r == 0; q++)
		if (!cfg_key_char((unsigned char)*q))
			r = -1;
	if (r < 0 || name[0] == '\0') {
		cfg_error(p, line, "%s: \"%.*s%s\": a name is letters, digits, '_', '-', '.'",
		    k->name, SHOWV(name));
		return -1;
	}
	for (size_t i = 0; i < c->nmilters; i++)
		if (strcmp(c->milters[i].name, name) == 0) {
			cfg_error(p, line, "%s: \"%s\" is defined twice", k->name, name);
			return -1;
		}
	if (strncmp(sock, "unix:", 5) == 0 && sock[5] != '\0' && strlen(sock) < 100) {
		m.path = cfg_make_absolute(p->basedir, sock + 5);
	} else if (strncmp(sock, "inet:", 5) == 0) {
		/* Sendmail's inet:PORT@HOST, or Postfix's inet:HOST:PORT ([IPv6]:PORT);
		 * HOST an IP address or a name, looked up at each connection */
		const char *at = strchr(sock, '@');
		uint64_t port = 0;
		char h[256] = "";
		bool ok;
		if (at) {
			size_t nd = parse_digits(sock + 5, &port);
			ok = nd > 0 && sock + 5 + nd == at && strlen(at + 1) < sizeof h;
			if (ok)
				(void)snprintf(h, sizeof h, "%s", at + 1);
		} else {
			const char *colon = strrchr(sock + 5, ':');
			const char *hs = sock + 5;
			size_t hl = colon ? (size_t)(colon - hs) : 0;
			if (hl >= 2 && hs[0] == '[' && hs[hl - 1] == ']') {
				hs++;
				hl -= 2;
			}
			ok = colon && hl > 0 && hl < sizeof h && parse_digits(colon + 1, &port) > 0 &&
			    colon[1 + parse_digits(colon + 1, &port)] == '\0';
			if (ok)
				(void)snprintf(h, sizeof h, "%.*s", (int)hl, hs);
		}
		unsigned char bin[16];
		if (!ok || port == 0 || port > 65535 ||
		    (inet_pton(AF_INET, h, bin) != 1 && inet_pton(AF_INET6, h, bin) != 1 &&
		    !cfg_valid_domain(h))) {
			cfg_error(p, line, "%s: \"%.*s%s\": expected inet:PORT@HOST or inet:HOST:PORT "
			    "(HOST an IP address or a host name) or unix:PATH", k->name, SHOWV(sock));
			return -1;
		}
		m.port = (int)port;
		m.host = xstrdup(h);
	} else {
		cfg_error(p, line, "%s: \"%.*s%s\": expected inet:PORT@HOST, inet:HOST:PORT or "
		    "unix:PATH", k->name, SHOWV(sock));
		return -1;
	}
	for (size_t i = 2; i < t->n; i++) {
		const char *o = t->v[i], *eq = strchr(o, '=');
		unsigned secs;
		unsigned *to = NULL;
		if (eq && strncmp(o, "default_action=", 15) == 0) {
			if (strcmp(eq + 1, "tempfail") == 0)
				m.default_action = MILTER_TEMPFAIL;
			else if (strcmp(eq + 1, "accept") == 0)
				m.default_action = MILTER_ACCEPT;
			else if (strcmp(eq + 1, "reject") == 0)
				m.default_action = MILTER_REJECT;
			else
				r = -1;
			if (r < 0)
				cfg_error(p, line, "%s: \"%.*s%s\": default_action is tempfail, accept "
				    "or reject", k->name, SHOWV(o));
			continue;
		}
		if (eq && strncmp(o, "connect_timeout=", 16) == 0)
			to = &m.connect_timeout;
		else if (eq && strncmp(o, "command_timeout=", 16) == 0)
			to = &m.command_timeout;
		else if (eq && strncmp(o, "eom_timeout=", 12) == 0)
			to = &m.eom_timeout;
		if (to == NULL) {
			cfg_error(p, line, "%s: unknown option \"%.*s%s\" (default_action, "
			    "connect_timeout, command_timeout, eom_timeout)", k->name, SHOWV(o));
			r = -1;
		} else if (config_parse_duration(eq + 1, &secs) < 0 || secs == 0 || secs > 3600) {
			cfg_error(p, line, "%s: \"%.*s%s\": a duration from 1s to 1h", k->name, SHOWV(o));
			r = -1;
		} else {
			*to = secs * 1000u;
		}
	}
	if (r < 0 || c->nmilters >= CONFIG_MAX_LIST) {
		xfree(m.path);
		xfree(m.host);
		return -1;
	}
	m.name = xstrdup(name);
	c->milters = xrealloc(c->milters, (c->nmilters + 1) * sizeof *c->milters);
	c->milters[c->nmilters++] = m;
	return 0;
}

/* "tls_certificate = CERTFILE [KEYFILE]" (the key may be in CERTFILE, as
 * with tls_cert and tls_key) */
static int
set_tls_cert(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	config_t *c = p->c;
	if (t->n < 1 || t->n > 2 || t->v[0][0] == '\0' || (t->n == 2 && t->v[1][0] == '\0')) {
		cfg_error(p, line, "%s: expected CERTFILE [KEYFILE] (the key may be in CERTFILE)",
		    k->name);
		return -1;
	}
	for (size_t i = 0; i < t->n; i++)
		if (strlen(t->v[i]) >= PATH_MAX - 256) {
			cfg_error(p, line, "%s: path too long", k->name);
			return -1;
		}
	if (c->ntls_certificates >= CONFIG_MAX_LIST) {
		cfg_error(p, line, "%s: more than %d certificates", k->name, CONFIG_MAX_LIST);
		return -1;
	}
	config_tls_cert_t e = {cfg_make_absolute(p->basedir, t->v[0]),
	    t->n == 2 ? cfg_make_absolute(p->basedir, t->v[1]) : NULL, line};
	for (size_t i = 0; i < c->ntls_certificates; i++)
		if (strcmp(c->tls_certificates[i].cert, e.cert) == 0) {
			cfg_error(p, line, "%s: %s is listed twice (first on line %u)", k->name, e.cert,
			    c->tls_certificates[i].line);
			xfree(e.cert);
			xfree(e.key);
			return -1;
		}
	c->tls_certificates = xrealloc(c->tls_certificates,
	    (c->ntls_certificates + 1) * sizeof *c->tls_certificates);
	c->tls_certificates[c->ntls_certificates++] = e;
	return 0;
}

int
cfg_set(cfg_parser_t *p, const struct cfg_key *k, unsigned line, const tokens_t *t)
{
	switch (k->type) {
	case CT_STRING:
	case CT_DOMAIN:
	case CT_PATH: return set_scalar(p, k, line, t);
	case CT_DOMAINS:
	case CT_WORDS: return set_domains(p, k, line, t);
	case CT_LISTEN: return set_listen(p, k, line, t);
	case CT_MILTER: return set_milter(p, k, line, t);
	case CT_TLSCERT: return set_tls_cert(p, k, line, t);
	case CT_CHAR: return set_char(p, k, line, t);
	case CT_BOOL: return set_bool(p, k, line, t);
	case CT_NETS: return set_nets(p, k, line, t);
	case CT_NUMBER:
	case CT_SIZE:
	case CT_DURATION: return set_number(p, k, line, t);
	}
	return -1;
}

bool
cfg_key_char(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || is_digit(ch) || ch == '_' ||
	    ch == '-' || ch == '.';
}
