/*
 * addr.h - RFC 5321 mailbox addresses (paths) and ESMTP parameters.
 *
 * Parsers take a pointer and a length, never trust a NUL, and never read
 * past the length. They accept exactly RFC 5321 §4.1.2 syntax:
 *   Path = "<" [ A-d-l ":" ] Mailbox ">"   (source route accepted, dropped)
 *   Mailbox = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 * plus the null reverse-path "<>" and "<Postmaster>" (no domain) when the
 * flags allow them. Octets >= 0x80 are allowed only with ADDR_UTF8 (RFC 6531
 * §3.3: then they must form valid UTF-8). NUL, CR, LF and other controls are
 * always refused. Limits: local part 64 octets, domain 255, path 256
 * (RFC 5321 §4.5.3.1).
 *
 * Case (RFC 5321 §2.4): the domain is lowercased (ASCII letters only) in the
 * parsed form; the local part is kept exactly as sent.
 */
#ifndef TERN_ADDR_H
#define TERN_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define ADDR_NULL_OK 0x01       /* "<>" is acceptable (reverse-path) */
#define ADDR_POSTMASTER_OK 0x02 /* "<Postmaster>" without domain is acceptable */
#define ADDR_UTF8 0x04          /* SMTPUTF8 was given on MAIL: UTF-8 allowed */
#define ADDR_NO_BRACKETS 0x08   /* parse a bare mailbox (tables, ORCPT, headers), no <> */

typedef struct addr {
	/* "local@domain" as it must be written back in SMTP: a quoted local part
	 * keeps its quotes, the domain is lowercased. "" for the null path,
	 * "Postmaster" for <Postmaster>. Always allocated. */
	char *str;
	size_t local_len;   /* octets of the local part at the start of str */
	const char *domain; /* points into str after the '@'; "" when none */
	bool utf8;          /* contains octets >= 0x80 */
} addr_t;

/*
 * Parse a path at s[0..n). On success returns 0, fills *out (caller frees
 * with addr_free) and sets *used to the octets consumed (the closing '>'
 * included; ESMTP parameters may follow). On failure returns -1 and sets
 * *err to a static, complete SMTP reply line without CRLF, e.g.
 * "501 5.1.3 Bad recipient address syntax".
 * The path must be followed by the end of the input, SP or HTAB (so that
 * "<a@b>x" and, with ADDR_NO_BRACKETS, "a@b>" are refused rather than
 * silently truncated). With ADDR_NO_BRACKETS|ADDR_NULL_OK an empty input is
 * the null path. The whole path is limited to 256 octets as sent (254 for a
 * bare mailbox). Address literals: [IPv4] and [IPv6:...] only (lowercased
 * like any domain, e.g. "[ipv6:::1]"); General-address-literal is refused.
 * err texts use X.1.3 (destination); mail_args_parse uses X.1.7 (sender).
 */
int addr_parse(const char *s, size_t n, unsigned flags, addr_t *out, size_t *used,
    const char **err);
void addr_free(addr_t *a);
/* deep copy */
void addr_copy(addr_t *dst, const addr_t *src);

/* The local part with quoting and quoted-pairs removed, e.g. "a b"@x -> a b.
 * Appends to out. */
void addr_local_unquoted(const addr_t *a, buf_t *out);
/* Build the SMTP form of a mailbox from an unquoted local part and a domain,
 * quoting the local part when it is not a valid Dot-string. Appends to out.
 * An empty domain gives just the local part ("Postmaster"), an empty local
 * part and domain the null path "". */
void addr_format(buf_t *out, const char *local, size_t local_len, const char *domain);

/* true when the domain is an address literal "[...]" */
bool addr_is_literal(const addr_t *a);

/* xtext (RFC 3461 §4): "+" HEX HEX for octets outside "!".."~", "+" and "=". */
bool xtext_valid(const char *s, size_t n);
/* decode, appending to out; -1 (out unchanged) when not valid xtext.
 * Lower-case hex digits are tolerated; xtext_encode writes upper case. */
int xtext_decode(const char *s, size_t n, buf_t *out);
void xtext_encode(buf_t *out, const char *s, size_t n);

/*
 * MAIL and RCPT arguments: the text after "MAIL FROM:" / "RCPT TO:"
 * (RFC 5321 §4.1.1.2 and §4.1.1.3, spaces before the path tolerated).
 * Parameters: esmtp-keyword ["=" esmtp-value], keywords case-insensitive,
 * each at most once.
 */
enum { BODY_NONE = 0, BODY_7BIT, BODY_8BITMIME, BODY_BINARYMIME };
enum { RET_NONE = 0, RET_FULL, RET_HDRS };
#define NOTIFY_NEVER 0x01
#define NOTIFY_SUCCESS 0x02
#define NOTIFY_FAILURE 0x04
#define NOTIFY_DELAY 0x08

typedef struct mail_args {
	addr_t from;
	uint64_t size;   /* SIZE= (RFC 1870), 0 when absent */
	int body;        /* BODY= (RFC 6152) */
	bool smtputf8;   /* SMTPUTF8 (RFC 6531) */
	int ret;         /* RET= (RFC 3461 §4.3) */
	char *envid;     /* ENVID= decoded from xtext (RFC 3461 §4.4), or NULL; at most 100 octets */
	char *auth;      /* AUTH= (RFC 4954 §5) decoded, or NULL; "<>" kept as is */
	bool requiretls; /* REQUIRETLS (RFC 8689 §2), no value */
} mail_args_t;

typedef struct rcpt_args {
	addr_t to;
	unsigned notify; /* NOTIFY_* bits, 0 when absent; NEVER excludes the others (RFC 3461 §4.1) */
	char *orcpt;     /* ORCPT= as "addr-type;decoded-address", e.g. "rfc822;a@b", or NULL (RFC 3461 §4.2) */
} rcpt_args_t;

/* Which extensions the server offered this session; parameters of
 * extensions not offered are refused (555 5.5.4). */
#define ARGS_SMTPUTF8 0x01
#define ARGS_8BITMIME 0x02
#define ARGS_DSN 0x04
#define ARGS_SIZE 0x08
#define ARGS_AUTH 0x10
#define ARGS_BINARYMIME 0x20
/* REQUIRETLS (RFC 8689): offered on a TLS session only; on an ESMTP session
 * without TLS (offered not 0, this bit clear) the parameter gets
 * "530 5.7.10" rather than 555 */
#define ARGS_REQUIRETLS 0x40

/* On failure: -1 and *err is a complete static reply line (501/555 with an
 * enhanced code, e.g. "555 5.5.4 Unsupported MAIL parameter"). */
int mail_args_parse(const char *s, size_t n, unsigned offered, mail_args_t *out, const char **err);
void mail_args_free(mail_args_t *m);
/* utf8_ok: SMTPUTF8 was given on this transaction's MAIL */
int rcpt_args_parse(const char *s, size_t n, unsigned offered, bool utf8_ok, rcpt_args_t *out,
    const char **err);
void rcpt_args_free(rcpt_args_t *r);

#endif
