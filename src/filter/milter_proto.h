/*
 * milter_proto.h - the milter wire protocol, version 6 (Sendmail's
 * libmilter, spoken by Postfix): the MTA side's codec, no I/O.
 *
 * A packet is a 4-byte big-endian length, then that many bytes: one
 * command byte and its data. Strings in the data are NUL-terminated.
 * Builders append whole packets to a buf_t; mp_frame() cuts one packet
 * from received bytes; mp_reply_parse() and mp_optneg_parse() decode a
 * milter's packet, with every length checked against the packet: the
 * parsed fields point into the packet's data and are NUL-terminated
 * inside it.
 * Limits: we never negotiate SMFIP_MDS_*, so a milter may send at most
 * MILTER_MAX_DATA (65535) octets of data in one packet (libmilter's
 * MILTER_MAX_DATA_SIZE); a longer length word is refused before any of
 * it is read.
 * References: Sendmail libmilter/docs and include/libmilter/mfdef.h,
 * Postfix src/milter/milter8.c.
 */
#ifndef TERN_MILTER_PROTO_H
#define TERN_MILTER_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define MILTER_VERSION 6
#define MILTER_MAX_DATA 65535      /* data octets of one packet, command byte excluded */
#define MILTER_CHUNK 65535         /* body octets per SMFIC_BODY */

/* commands the MTA sends (SMFIC_*) */
#define SMFIC_ABORT 'A'
#define SMFIC_BODY 'B'
#define SMFIC_CONNECT 'C'
#define SMFIC_MACRO 'D'
#define SMFIC_BODYEOB 'E'
#define SMFIC_HELO 'H'
#define SMFIC_QUIT_NC 'K'
#define SMFIC_HEADER 'L'
#define SMFIC_MAIL 'M'
#define SMFIC_EOH 'N'
#define SMFIC_OPTNEG 'O'
#define SMFIC_QUIT 'Q'
#define SMFIC_RCPT 'R'
#define SMFIC_DATA 'T'

/* replies and actions the milter sends (SMFIR_*) */
#define SMFIR_ADDRCPT '+'
#define SMFIR_DELRCPT '-'
#define SMFIR_ADDRCPT_PAR '2'
#define SMFIR_ACCEPT 'a'
#define SMFIR_REPLBODY 'b'
#define SMFIR_CONTINUE 'c'
#define SMFIR_DISCARD 'd'
#define SMFIR_CHGFROM 'e'
#define SMFIR_ADDHEADER 'h'
#define SMFIR_INSHEADER 'i'
#define SMFIR_CHGHEADER 'm'
#define SMFIR_PROGRESS 'p'
#define SMFIR_QUARANTINE 'q'
#define SMFIR_REJECT 'r'
#define SMFIR_SKIP 's'
#define SMFIR_TEMPFAIL 't'
#define SMFIR_REPLYCODE 'y'
#define SMFIR_OPTNEG 'O'

/* actions a milter may ask for in OPTNEG (SMFIF_*) */
#define SMFIF_ADDHDRS 0x001
#define SMFIF_CHGBODY 0x002
#define SMFIF_ADDRCPT 0x004
#define SMFIF_DELRCPT 0x008
#define SMFIF_CHGHDRS 0x010
#define SMFIF_QUARANTINE 0x020
#define SMFIF_CHGFROM 0x040
#define SMFIF_ADDRCPT_PAR 0x080
#define SMFIF_SETSYMLIST 0x100
#define SMFIF_ALL 0x1ff

/* protocol steps (SMFIP_*): stages to leave out, stages without a reply */
#define SMFIP_NOCONNECT 0x000001
#define SMFIP_NOHELO 0x000002
#define SMFIP_NOMAIL 0x000004
#define SMFIP_NORCPT 0x000008
#define SMFIP_NOBODY 0x000010
#define SMFIP_NOHDRS 0x000020
#define SMFIP_NOEOH 0x000040
#define SMFIP_NR_HDR 0x000080
#define SMFIP_NOUNKNOWN 0x000100
#define SMFIP_NODATA 0x000200
#define SMFIP_SKIP 0x000400
#define SMFIP_RCPT_REJ 0x000800
#define SMFIP_NR_CONN 0x001000
#define SMFIP_NR_HELO 0x002000
#define SMFIP_NR_MAIL 0x004000
#define SMFIP_NR_RCPT 0x008000
#define SMFIP_NR_DATA 0x010000
#define SMFIP_NR_UNKN 0x020000
#define SMFIP_NR_EOH 0x040000
#define SMFIP_NR_BODY 0x080000
#define SMFIP_HDR_LEADSPC 0x100000
/* what tern offers: every step above (the milter picks) */
#define SMFIP_TERN 0x1fffff

/* macro stages of SETSYMLIST (SMFIM_*) */
enum mp_stage {
	SMFIM_CONNECT = 0,
	SMFIM_HELO = 1,
	SMFIM_ENVFROM = 2,
	SMFIM_ENVRCPT = 3,
	SMFIM_DATA = 4,
	SMFIM_EOM = 5,
	SMFIM_EOH = 6,
	MP_NSTAGES = 7
};

/* ---- building packets (appended to out) ---- */

void mp_packet(buf_t *out, char cmd, const void *data, size_t n);
void mp_optneg(buf_t *out, uint32_t version, uint32_t actions, uint32_t protocol);
/* SMFIC_MACRO for the command cmd: n name/value pairs (kv[2i], kv[2i+1]) */
void mp_macro(buf_t *out, char cmd, const char *const *kv, size_t n);
/* family: '4', '6', 'L' (unix), 'U' (unknown: no port nor address) */
void mp_connect(buf_t *out, const char *hostname, char family, uint16_t port, const char *addr);
/* one NUL-terminated string */
void mp_string(buf_t *out, char cmd, const char *s);
/* SMFIC_MAIL / SMFIC_RCPT: "<addr>" then each ESMTP argument */
void mp_args(buf_t *out, char cmd, const char *const *argv, size_t argc);
void mp_header(buf_t *out, const char *name, const char *value);
/* one SMFIC_BODY packet per MILTER_CHUNK octets (none for n == 0) */
void mp_body(buf_t *out, const char *p, size_t n);

/* ---- reading packets ---- */

/*
 * Cut one packet from p[0..n): 1 with *cmd, *data, *dlen set and *used the
 * octets it took; 0 when more input is needed (nothing used); -1 when the
 * length word is 0 or says more than MILTER_MAX_DATA + 1 (*why set).
 */
int mp_frame(const char *p, size_t n, size_t *used, char *cmd, const char **data, size_t *dlen,
    const char **why);

typedef struct mp_optneg {
	uint32_t version, actions, protocol;
	/* SETSYMLIST: the macro names wanted per stage, or NULL (the default);
	 * space-separated names, pointing into the packet */
	const char *symlist[MP_NSTAGES];
	size_t symlist_len[MP_NSTAGES];
} mp_optneg_t;

int mp_optneg_parse(const char *data, size_t n, mp_optneg_t *o, const char **why);

typedef struct mp_reply {
	char cmd;            /* SMFIR_* */
	uint32_t index;      /* CHGHEADER, INSHEADER */
	const char *name;    /* header name; ADDRCPT/DELRCPT/CHGFROM address; QUARANTINE reason */
	const char *value;   /* header value (CHGHEADER: "" deletes); ADDRCPT_PAR/CHGFROM args or NULL */
	const char *text;    /* REPLYCODE: "550 5.7.1 text" (lines joined by CRLF) */
	const char *body;    /* REPLBODY */
	size_t body_len;
} mp_reply_t;

/*
 * Decode one reply packet. Refuses (-1, *why) an unknown command, a
 * missing or unterminated string, trailing bytes, a REPLYCODE that is not
 * a 4xx or 5xx reply whose every line carries the same code. Pointers
 * point into data.
 */
int mp_reply_parse(char cmd, const char *data, size_t n, mp_reply_t *r, const char **why);
/* the SMFIF_* action a modification needs (0 for the replies that end a stage) */
uint32_t mp_reply_action(char cmd);
/* "accept", "addheader", ...: for log lines; "?" for unknown */
const char *mp_reply_name(char cmd);

#endif
