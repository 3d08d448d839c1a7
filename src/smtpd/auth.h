/*
 * auth.h - SMTP AUTH (RFC 4954) pieces that do not depend on a session:
 * SASL PLAIN (RFC 4616) and LOGIN decoding, password checks on the thread
 * pool, and the sender-login rule. The password file itself (format,
 * loading, new hashes) is common/passwd_db.h, shared with `tern passwd`.
 *
 * Password checks are slow by design (yescrypt): auth_verify() runs them
 * on libuv's thread pool, never on the loop, and an unknown user costs
 * the same as a wrong password.
 * Must not: log or keep a password; every copy is wiped after use.
 */
#ifndef TERN_AUTH_H
#define TERN_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "common/passwd_db.h"
#include "common/table.h"
#include "lib/buf.h"

#define AUTH_MAX_FIELD PASSWD_DB_MAX_FIELD /* user names and passwords, octets */
#define AUTH_MAX_B64 12288   /* RFC 4954 §4: the longest AUTH line */

/* Decode base64 (RFC 4648 §4, padding required, no white space) into out
 * (at most cap octets). Returns the length, or -1 when malformed or too big. */
long auth_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap);
/* Encode n octets, appended to b. */
void auth_b64_encode(const unsigned char *in, size_t n, buf_t *b);

/*
 * SASL PLAIN (RFC 4616 §2): base64 of [authzid] NUL authcid NUL passwd.
 * An authzid other than empty or the authcid is refused (we do not act
 * for others). On success *user and *pass are allocated (the caller wipes
 * and frees pass). Returns 0, or -1 with *why a reply line.
 */
int auth_plain_decode(const char *b64, size_t n, char **user, char **pass, const char **why);
/* One base64 field of LOGIN (user name or password): 0 or -1 with *why. */
int auth_login_decode(const char *b64, size_t n, char **out, const char **why);

/*
 * Check pw against hash (NULL: the user does not exist; a dummy hash is
 * checked so the time is the same) on the thread pool; cb(arg, ok) runs
 * on the loop afterwards, always exactly once. The password is copied
 * and wiped.
 */
typedef void (*auth_verify_cb)(void *arg, bool ok);
void auth_verify(uv_loop_t *loop, const char *hash, const char *pw, auth_verify_cb cb, void *arg);

/*
 * May the authenticated user use sender as the envelope sender? Yes for
 * the null sender, for the user's own login name when that is an address,
 * and for an address whose sender_login entry ("address user, user",
 * exactly, or "@domain" for the whole domain) names the user.
 */
bool auth_sender_ok(const table_t *sender_login, const char *user, const char *sender);

#endif
