/*
 * srs.h - MAILAUTH: the Sender Rewriting Scheme, in the format of libsrs2
 * and postsrsd (so addresses interoperate with them: a postsrsd and a tern
 * sharing a secret accept each other's addresses).
 *
 * A message forwarded to another domain leaves with its envelope sender
 * rewritten into our domain, so that SPF passes at the next hop; a bounce
 * to that address comes back to us, is verified and goes to the original
 * sender (docs/srs.md). The local parts (always handled unquoted; the
 * caller quotes them for SMTP when they are not Dot-strings):
 *
 *   SRS0=HHHH=TT=orig-domain=orig-local          (@ our SRS domain)
 *   SRS1=HHHH=first-forwarder-domain==HHHH=TT=orig-domain=orig-local
 *
 * HHHH: the first 4 characters of the base64 (RFC 4648 section 4
 *   alphabet) of HMAC-SHA1(secret, data), data being the concatenation of
 *   the fields, ASCII-lowercased: SRS0 over TT, orig-domain, orig-local;
 *   SRS1 over first-forwarder-domain and the rest of the SRS0 local part
 *   after "SRS0" ("=HHHH=TT=..."). Compared ignoring case (a hop may
 *   change the case of a local part), as libsrs2 does.
 * TT: the day number (unix time / 86400) modulo 1024, two base32
 *   characters (A-Z2-7), the high 5 bits first; valid for max_age days.
 * The separator after the tag may be '=', '+' or '-' when reading (all
 *   three are libsrs2's); tern writes '='. Fields are separated by '='.
 *   The original local part may itself contain '=' or '+': it is the
 *   rest of the string after the fourth separator.
 *
 * Secrets: the first signs, every one verifies (key rotation: put the new
 * secret first, keep the old ones until max_age has passed).
 * Guarantees: pure functions of their arguments (the time is passed in);
 * HMAC through OpenSSL 3 (EVP_Q_mac); inputs are bounded by length and
 * never read past it.
 * Must not: log, or keep pointers to the arguments.
 */
#ifndef TERN_SRS_H
#define TERN_SRS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

struct config;

#define SRS_HASH_LEN 4
#define SRS_DEFAULT_MAX_AGE 21 /* days */
#define SRS_MAX_SECRET_FILE (64 * 1024)
#define SRS_MIN_SECRET 16 /* octets of one secret */
/* RFC 5321 section 4.5.3.1.1: a rewritten local part longer than this is
 * not made (tern and strict servers would refuse it at RCPT, so a bounce
 * could not come back): the message keeps its own sender */
#define SRS_MAX_LOCAL 64

enum srs_status {
	SRS_OK = 0,
	SRS_NOT_SRS,     /* reverse: not an SRS0/SRS1 local part */
	SRS_BAD_SYNTAX,  /* reverse: SRS0/SRS1 tag, but a field is missing or malformed */
	SRS_BAD_HASH,    /* reverse: no secret gives this hash */
	SRS_EXPIRED,     /* reverse: older than max_age days (or from the future) */
	SRS_TOO_LONG,    /* forward: the result would exceed SRS_MAX_LOCAL octets */
	SRS_NO_SECRET,   /* no secret given */
};

/* A short text for logs and replies ("bad hash", "expired" ...). */
const char *srs_status_str(enum srs_status st);

/* Does this local part start with an SRS0 or SRS1 tag (any case)? */
bool srs_is_srs(const char *local, size_t n);

/*
 * Forward: the local part (unquoted) to use @ our SRS domain for the
 * sender local@domain at unix time now. A sender that is already SRS0 or
 * SRS1 becomes SRS1 (keeping the first forwarder's domain), otherwise
 * SRS0. Appends to *out; SRS_OK, SRS_TOO_LONG or SRS_NO_SECRET.
 */
enum srs_status srs_forward(const char *const *secrets, size_t nsecrets, const char *local,
    size_t local_len, const char *domain, int64_t now, buf_t *out);

/*
 * Reverse: verify (hash with any secret, and for SRS0 the age against
 * max_age days at unix time now) and decode an SRS local part. SRS0 gives
 * the original local@domain; SRS1 gives the SRS0 local part at the first
 * forwarder's domain. On SRS_OK appends to *local and *domain.
 */
enum srs_status srs_reverse(const char *const *secrets, size_t nsecrets, const char *local,
    size_t local_len, int64_t now, unsigned max_age, buf_t *out_local, buf_t *out_domain);

/* The timestamp field for unix time now (2 characters and a NUL). */
void srs_timestamp(int64_t now, char out[3]);

/*
 * The secrets of the file c->srs_secret_file, read through common/secret.h
 * (owned by root or tern's user, readable by no one else: the privileged
 * parent opens it when tern started as root). One secret a line, the first
 * signs; empty lines are skipped, a trailing CR is dropped. At least one,
 * each at least SRS_MIN_SECRET octets. 0 with *secrets (NULL-terminated
 * too) and *n set, or -1 with "srs_secret_file PATH: reason" in *err.
 */
int srs_secrets_load(const struct config *c, char ***secrets, size_t *n, buf_t *err);
/* wipe and free what srs_secrets_load() returned */
void srs_secrets_free(char **secrets, size_t n);

#endif
