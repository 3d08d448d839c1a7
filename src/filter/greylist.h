/*
 * greylist.h - FILTER: greylisting (issue 12; off by default). A triplet
 * (client network: the /24 of an IPv4 client, the /64 of an IPv6 one;
 * envelope sender; recipient) seen for the first time is refused with
 * "451 4.7.1 greylisted, try again in N seconds"; tried again after
 * greylist_delay and within greylist_expiry of the first try, it passes,
 * and is then remembered for greylist_lifetime after its last use (every
 * use renews it). Real mail servers retry; much spam software does not.
 *
 * State: in memory, at most greylist_max_entries triplets (the least
 * recently used dropped first), saved to SPOOL/greylist (written to a
 * temporary file, fsync'd and renamed, on the thread pool, at most once a
 * second after a change, and once more at exit: grey_shutdown) and loaded
 * at the first check after a start, so it survives restarts. Times are
 * wall-clock seconds.
 *
 * The caller exempts mynetworks and authenticated clients (filter.h).
 * Must not: block the loop (the load at the first check reads one small
 * file).
 */
#ifndef TERN_GREYLIST_H
#define TERN_GREYLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/config.h"

/* the triplet's key: "NET sender rcpt" (lowercased), NET from the client's
 * address text; returns 0, -1 for an address it cannot parse */
int grey_key(const char *ip, const char *sender, const char *rcpt, char *out, size_t len);

/* The pure rule, for tests: the triplet key at now (seconds). Returns 0
 * when it passes, else the seconds to wait (>= 1). */
unsigned grey_check_at(const config_t *c, const char *key, uint64_t now);

/* The check at RCPT (the router accepted the recipient): false when it
 * passes; true with the reply ("451 4.7.1 ...") when greylisted; logs one
 * line either way when it decides something new. */
bool grey_check(uv_loop_t *loop, const config_t *c, const char *sid, const char *ip,
    const char *sender, const char *rcpt, char *reply, size_t rlen);

/* entries held (tests) and forgetting them all (tests) */
size_t grey_count(void);
void grey_clear(void);
/* At exit (no session left): the table saved if it changed since the last
 * save (blocking), then everything freed; the loop must run once more
 * (uv_run NOWAIT) to close the save timer. */
void grey_shutdown(void);

#endif
