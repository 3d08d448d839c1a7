/*
 * auth_dovecot_proto.h - the lines of Dovecot's authentication protocol
 * (the "auth-client" socket, protocol version 1; what Postfix's
 * smtpd_sasl_type = dovecot speaks): parsing what the server says,
 * formatting what tern says. No I/O: the client (auth_dovecot.h) splits
 * the stream into lines and owns the connection.
 *
 * The protocol (Dovecot's doc "Authentication protocol"): LF-terminated
 * lines, TAB-separated fields, optional fields "name=value" or a bare
 * flag, unknown ones ignored; values use Dovecot's tab-escaping (\001
 * then 0 NUL, 1 \001, t TAB, r CR, n LF; anything else: itself).
 *   server handshake: VERSION 1 minor, MECH name [flags], SPID, CUID,
 *     COOKIE, DONE;
 *   client handshake: VERSION 1 minor, CPID pid;
 *   client: AUTH id mech service=smtp [secured] lip= rip= lport= rport=
 *     [resp=base64] and CONT id base64;
 *   server: OK id [user=] [resp=], CONT id base64, FAIL id [reason=]
 *     [temp] [user=].
 * Guarantees: every input is taken as pointer and length and bounded
 * (DVPROTO_MAX_LINE); nothing a field holds is returned unchecked: ids are
 * 1..2^32-1, mechanism names [A-Z0-9_-], challenge data base64 only (so it
 * can go into a 334 line), user names printable ASCII without space or
 * quote (they go into logs and headers); values are unescaped.
 * Must not: log, or keep anything across calls.
 */
#ifndef TERN_AUTH_DOVECOT_PROTO_H
#define TERN_AUTH_DOVECOT_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

#define DVPROTO_MAX_LINE 16384 /* "expected to fit into 16384 bytes" */
#define DVPROTO_MAX_MECH 32    /* octets of a mechanism name */
#define DVPROTO_MAX_USER 255   /* octets of a user name Dovecot returns */
#define DVPROTO_MAX_REASON 200 /* octets of a FAIL reason kept */
#define DVPROTO_MAJOR 1
#define DVPROTO_MINOR 2

enum dvproto_kind {
	DVP_VERSION,
	DVP_MECH,
	DVP_SPID,
	DVP_CUID,
	DVP_COOKIE,
	DVP_DONE,
	DVP_OK,
	DVP_CONT,
	DVP_FAIL,
	DVP_OTHER, /* a command this client has no use for: ignored */
};

/* MECH flags */
#define DVP_MECH_PLAINTEXT 0x01 /* sends the password in clear: only under TLS */
#define DVP_MECH_PRIVATE 0x02   /* not to be advertised to clients */
#define DVP_MECH_ANONYMOUS 0x04

typedef struct dvproto_reply {
	enum dvproto_kind kind;
	unsigned long id;          /* OK, CONT, FAIL */
	unsigned major, minor;     /* VERSION */
	char mech[DVPROTO_MAX_MECH + 1]; /* MECH */
	unsigned mech_flags;
	char *data;   /* CONT: the challenge (base64, may be ""); OK: resp=, else NULL */
	char *user;   /* OK, FAIL: user=, else NULL */
	char *reason; /* FAIL: reason= with control characters replaced, else NULL */
	bool temp;    /* FAIL: temp (Dovecot could not check: try again later) */
} dvproto_reply_t;

/*
 * Parse one line (without its LF). 0 with *r filled (free it with
 * dvproto_reply_free, also after -1), or -1 with the reason in *err for a
 * line that breaks the protocol (the connection should be dropped).
 */
int dvproto_parse(const char *line, size_t n, dvproto_reply_t *r, buf_t *err);
void dvproto_reply_free(dvproto_reply_t *r);

/* Is s (n octets) base64 text (A-Z a-z 0-9 + / =), at most max octets? */
bool dvproto_is_b64(const char *s, size_t n, size_t max);

/* Append s tab-escaped (its TAB, CR, LF, NUL, \001 escaped). */
void dvproto_escape(buf_t *b, const char *s, size_t n);

/* The client's handshake: VERSION and CPID lines. */
void dvproto_format_hello(buf_t *b, unsigned long pid);

typedef struct dvproto_auth {
	const char *mech;    /* as Dovecot announced it */
	const char *service; /* "smtp" */
	const char *session; /* tern's session id, for Dovecot's log; may be NULL */
	bool secured;        /* TLS is on */
	const char *lip, *rip; /* addresses as text; NULL: not sent */
	int lport, rport;    /* 0: not sent */
	const char *resp;    /* the initial response (base64, "" for "="), or NULL */
	size_t resp_len;
} dvproto_auth_t;

/* An AUTH line; -1 (b unchanged) when mech or resp is not what the
 * protocol can carry (mech not [A-Z0-9_-], resp not base64). */
int dvproto_format_auth(buf_t *b, unsigned long id, const dvproto_auth_t *a);
/* A CONT line with the client's response; -1 when resp is not base64. */
int dvproto_format_cont(buf_t *b, unsigned long id, const char *resp, size_t n);

#endif
