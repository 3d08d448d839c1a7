/*
 * sign.h - MAILAUTH: the signing keys of outbound DKIM (the dkim_sign_keys
 * table); mailauth_sign_wanted() and mailauth_sign() themselves are in
 * mailauth.h, implemented in sign.c.
 *
 * The table: one "domain selector keyfile" per line ('#' comments, blank
 * lines ignored; a relative keyfile is relative to the table's directory);
 * several lines for one domain sign with each key (an RSA and an Ed25519
 * selector, say). mailauth_sign_load() reads it and every key, and hangs
 * them on the configuration (c->dkim_signers), to be freed with it; the
 * daemon calls it with each configuration it loads (start, SIGHUP,
 * check-config), so a table or key that does not load fails the load as a
 * configuration error would (a reload then keeps the previous
 * configuration and its keys).
 *
 * Guarantees: errors come as "FILE:LINE: message" lines; keys are RSA of
 * at least 1024 bits or Ed25519. Once loaded, nothing changes the keys
 * until config_free(): any number of threads may sign with them.
 */
#ifndef TERN_MAILAUTH_SIGN_H
#define TERN_MAILAUTH_SIGN_H

#include <stddef.h>

#include "common/config.h"
#include "lib/buf.h"

/* 0 (also without dkim_sign_keys), or -1 with every problem in *err */
int mailauth_sign_load(config_t *c, buf_t *err);

/* the key files loaded (for check-config's "can tern's user read them") */
size_t mailauth_sign_nkeys(const config_t *c);
const char *mailauth_sign_key_path(const config_t *c, size_t i);

#endif
