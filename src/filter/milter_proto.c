/*
 * milter_proto.c - the milter wire protocol (version 6): packet builders
 * and a bounded parser for what a milter sends (see milter_proto.h).
 *
 * Guarantees: the parser never reads outside [data, data + n); every
 * string it returns is NUL-terminated inside the packet; a packet whose
 * length word exceeds the protocol's size is refused before it is read.
 * Must not: allocate for parsing, or trust any length a milter sends.
 */
#include "filter/milter_proto.h"

#include <string.h>

static void
put32(buf_t *out, uint32_t v)
{
	unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
	    (unsigned char)(v >> 8), (unsigned char)v};
	buf_append(out, b, 4);
}

static uint32_t
get32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

/* Start a packet; returns the offset of its length word (patched by end). */
static size_t
pkt_begin(buf_t *out, char cmd)
{
	size_t at = out->len;
	put32(out, 0);
	buf_putc(out, cmd);
	return at;
}

static void
pkt_end(buf_t *out, size_t at)
{
	uint32_t len = (uint32_t)(out->len - at - 4);
	unsigned char *b = (unsigned char *)out->data + at;
	b[0] = (unsigned char)(len >> 24);
	b[1] = (unsigned char)(len >> 16);
	b[2] = (unsigned char)(len >> 8);
	b[3] = (unsigned char)len;
}

static void
put_str(buf_t *out, const char *s)
{
	buf_append(out, s, strlen(s) + 1);
}

void
mp_packet(buf_t *out, char cmd, const void *data, size_t n)
{
	size_t at = pkt_begin(out, cmd);
	buf_append(out, data, n);
	pkt_end(out, at);
}

void
mp_optneg(buf_t *out, uint32_t version, uint32_t actions, uint32_t protocol)
{
	size_t at = pkt_begin(out, SMFIC_OPTNEG);
	put32(out, version);
	put32(out, actions);
	put32(out, protocol);
	pkt_end(out, at);
}

void
mp_macro(buf_t *out, char cmd, const char *const *kv, size_t n)
{
	size_t at = pkt_begin(out, SMFIC_MACRO);
	buf_putc(out, cmd);
	for (size_t i = 0; i < n; i++) {
		put_str(out, kv[2 * i]);
		put_str(out, kv[2 * i + 1]);
	}
	pkt_end(out, at);
}

void
mp_connect(buf_t *out, const char *hostname, char family, uint16_t port, const char *addr)
{
	size_t at = pkt_begin(out, SMFIC_CONNECT);
	put_str(out, hostname);
	buf_putc(out, family);
	if (family != 'U') {
		buf_putc(out, (char)(port >> 8));
		buf_putc(out, (char)(port & 0xff));
		put_str(out, addr);
	}
	pkt_end(out, at);
}

void
mp_string(buf_t *out, char cmd, const char *s)
{
	size_t at = pkt_begin(out, cmd);
	put_str(out, s);
	pkt_end(out, at);
}

void
mp_args(buf_t *out, char cmd, const char *const *argv, size_t argc)
{
	size_t at = pkt_begin(out, cmd);
	for (size_t i = 0; i < argc; i++)
		put_str(out, argv[i]);
	pkt_end(out, at);
}

void
mp_header(buf_t *out, const char *name, const char *value)
{
	size_t at = pkt_begin(out, SMFIC_HEADER);
	put_str(out, name);
	put_str(out, value);
	pkt_end(out, at);
}

void
mp_body(buf_t *out, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = n < MILTER_CHUNK ? n : MILTER_CHUNK;
		mp_packet(out, SMFIC_BODY, p, k);
		p += k;
		n -= k;
	}
}

int
mp_frame(const char *p, size_t n, size_t *used, char *cmd, const char **data, size_t *dlen,
    const char **why)
{
	if (n < 4)
		return 0;
	uint32_t len = get32(p);
	if (len == 0) {
		*why = "empty packet (length 0)";
		return -1;
	}
	if (len > MILTER_MAX_DATA + 1) {
		*why = "packet longer than the protocol allows (65536 octets)";
		return -1;
	}
	if (n - 4 < len)
		return 0;
	*cmd = p[4];
	*data = p + 5;
	*dlen = len - 1;
	*used = 4 + (size_t)len;
	return 1;
}

/* A NUL-terminated string at data[*off..n): its start, *off moved past
 * its NUL; NULL when there is no NUL before n. */
static const char *
take_str(const char *data, size_t n, size_t *off)
{
	if (*off >= n)
		return NULL;
	const char *s = data + *off;
	const char *z = memchr(s, '\0', n - *off);
	if (z == NULL)
		return NULL;
	*off = (size_t)(z - data) + 1;
	return s;
}

int
mp_optneg_parse(const char *data, size_t n, mp_optneg_t *o, const char **why)
{
	memset(o, 0, sizeof *o);
	if (n < 12) {
		*why = "OPTNEG reply shorter than 12 octets";
		return -1;
	}
	o->version = get32(data);
	o->actions = get32(data + 4);
	o->protocol = get32(data + 8);
	if (o->version < 2 || o->version > MILTER_VERSION) {
		*why = "OPTNEG: unsupported protocol version";
		return -1;
	}
	size_t off = 12;
	while (off < n) {
		/* SETSYMLIST: stage number, then the space-separated names */
		if (n - off < 4) {
			*why = "OPTNEG: truncated macro list";
			return -1;
		}
		uint32_t st = get32(data + off);
		off += 4;
		const char *names = take_str(data, n, &off);
		if (names == NULL) {
			*why = "OPTNEG: unterminated macro list";
			return -1;
		}
		if (st >= MP_NSTAGES) {
			*why = "OPTNEG: macro list for an unknown stage";
			return -1;
		}
		o->symlist[st] = names;
		o->symlist_len[st] = strlen(names);
	}
	return 0;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * "550 5.7.1 text" or "550-5.7.1 a\r\n550 5.7.1 b": a 4xx or 5xx code on
 * every line, the same on each, '-' on all lines but the last (RFC 5321
 * §4.2.1); no bare CR or LF; no other control characters.
 */
static const char *
replycode_check(const char *t, size_t n)
{
	if (n < 4 || (t[0] != '4' && t[0] != '5') || !is_digit(t[1]) || !is_digit(t[2]))
		return "REPLYCODE: not a 4xx or 5xx reply";
	size_t pos = 0;
	while (pos < n) {
		const char *line = t + pos;
		const char *eol = memchr(line, '\r', n - pos);
		size_t len = eol ? (size_t)(eol - line) : n - pos;
		bool last = eol == NULL;
		if (eol && (pos + len + 1 >= n || line[len + 1] != '\n'))
			return "REPLYCODE: bare CR in the text";
		if (len < 3 || memcmp(line, t, 3) != 0)
			return "REPLYCODE: lines with different codes";
		if (len > 3 && line[3] != (last ? ' ' : '-'))
			return "REPLYCODE: bad continuation mark";
		if (!last && len == 3)
			return "REPLYCODE: bad continuation mark";
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)line[i];
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return "REPLYCODE: control character in the text";
		}
		pos += len + (last ? 0 : 2);
	}
	return NULL;
}

int
mp_reply_parse(char cmd, const char *data, size_t n, mp_reply_t *r, const char **why)
{
	size_t off = 0;
	memset(r, 0, sizeof *r);
	r->cmd = cmd;
	switch (cmd) {
	case SMFIR_ACCEPT:
	case SMFIR_CONTINUE:
	case SMFIR_DISCARD:
	case SMFIR_REJECT:
	case SMFIR_TEMPFAIL:
	case SMFIR_PROGRESS:
	case SMFIR_SKIP:
		if (n != 0) {
			*why = "unexpected data after a reply without arguments";
			return -1;
		}
		return 0;
	case SMFIR_REPLYCODE:
		r->text = take_str(data, n, &off);
		if (r->text == NULL) {
			*why = "REPLYCODE: unterminated text";
			return -1;
		}
		if ((*why = replycode_check(r->text, strlen(r->text))) != NULL)
			return -1;
		break;
	case SMFIR_ADDHEADER:
	case SMFIR_CHGHEADER:
	case SMFIR_INSHEADER:
		if (cmd != SMFIR_ADDHEADER) {
			if (n < 4) {
				*why = "header change without an index";
				return -1;
			}
			r->index = get32(data);
			off = 4;
		}
		r->name = take_str(data, n, &off);
		r->value = r->name ? take_str(data, n, &off) : NULL;
		if (r->value == NULL) {
			*why = "header name or value missing or unterminated";
			return -1;
		}
		if (r->name[0] == '\0') {
			*why = "empty header name";
			return -1;
		}
		for (const char *q = r->name; *q; q++) {
			unsigned char c = (unsigned char)*q;
			/* RFC 5322 §2.2: printable US-ASCII except colon */
			if (c <= 0x20 || c >= 0x7f || c == ':') {
				*why = "header name with a character RFC 5322 forbids";
				return -1;
			}
		}
		break;
	case SMFIR_REPLBODY:
		r->body = data;
		r->body_len = n;
		return 0;
	case SMFIR_ADDRCPT:
	case SMFIR_DELRCPT:
	case SMFIR_QUARANTINE:
		r->name = take_str(data, n, &off);
		if (r->name == NULL) {
			*why = "argument missing or unterminated";
			return -1;
		}
		break;
	case SMFIR_ADDRCPT_PAR:
	case SMFIR_CHGFROM:
		r->name = take_str(data, n, &off);
		if (r->name == NULL) {
			*why = "address missing or unterminated";
			return -1;
		}
		if (off < n && (r->value = take_str(data, n, &off)) == NULL) {
			*why = "ESMTP arguments unterminated";
			return -1;
		}
		break;
	default:
		*why = "unknown reply command";
		return -1;
	}
	if (off != n) {
		*why = "trailing data after the reply";
		return -1;
	}
	return 0;
}

uint32_t
mp_reply_action(char cmd)
{
	switch (cmd) {
	case SMFIR_ADDHEADER: return SMFIF_ADDHDRS;
	case SMFIR_INSHEADER: return SMFIF_ADDHDRS;
	case SMFIR_CHGHEADER: return SMFIF_CHGHDRS;
	case SMFIR_REPLBODY: return SMFIF_CHGBODY;
	case SMFIR_ADDRCPT: return SMFIF_ADDRCPT;
	case SMFIR_ADDRCPT_PAR: return SMFIF_ADDRCPT_PAR;
	case SMFIR_DELRCPT: return SMFIF_DELRCPT;
	case SMFIR_CHGFROM: return SMFIF_CHGFROM;
	case SMFIR_QUARANTINE: return SMFIF_QUARANTINE;
	default: return 0;
	}
}

const char *
mp_reply_name(char cmd)
{
	switch (cmd) {
	case SMFIR_ACCEPT: return "accept";
	case SMFIR_CONTINUE: return "continue";
	case SMFIR_DISCARD: return "discard";
	case SMFIR_REJECT: return "reject";
	case SMFIR_TEMPFAIL: return "tempfail";
	case SMFIR_REPLYCODE: return "replycode";
	case SMFIR_PROGRESS: return "progress";
	case SMFIR_SKIP: return "skip";
	case SMFIR_ADDHEADER: return "addheader";
	case SMFIR_CHGHEADER: return "chgheader";
	case SMFIR_INSHEADER: return "insheader";
	case SMFIR_REPLBODY: return "replbody";
	case SMFIR_ADDRCPT: return "addrcpt";
	case SMFIR_ADDRCPT_PAR: return "addrcpt_par";
	case SMFIR_DELRCPT: return "delrcpt";
	case SMFIR_CHGFROM: return "chgfrom";
	case SMFIR_QUARANTINE: return "quarantine";
	case SMFIR_OPTNEG: return "optneg";
	default: return "?";
	}
}
