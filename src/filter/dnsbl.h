/*
 * dnsbl.h - FILTER: DNS block and allow lists (DNSBL/DNSWL, RFC 5782) for
 * the SMTP client's address, scored like Postfix's postscreen.
 *
 * dnsbl_sites = zen.example*3, b.example*2, wl.example=127.0.[0..255].[1..3]*-5
 * dnsbl_threshold = 3
 * Each site is ZONE[=FILTER][*WEIGHT]: the client is looked up as
 * <reversed address>.ZONE (IPv4: the octets reversed; IPv6: the 32 nibbles
 * reversed, RFC 5782 §2.4; an IPv4-mapped IPv6 address as its IPv4); the
 * site counts WEIGHT (default 1, negative for an allow list) when some A
 * record of the answer matches FILTER (each octet a number or [LO..HI];
 * no filter: any A record). The client is listed when the sum reaches the
 * threshold; the reply names the sites with a positive weight that
 * matched, with the first one's TXT record when it has one (printable
 * ASCII only, at most DNSBL_TXT_MAX octets).
 *
 * Guarantees: every zone is asked at once (one A query each, a TXT query
 * only for a listing zone), through the asynchronous resolver (lib/dns.h,
 * dns_servers, dnsbl_timeout per query): the callback runs once, later on
 * the loop, never inside dnsbl_check(). A zone that fails or times out
 * counts 0 (fail open) and is logged. Answers are kept for their TTL and
 * never longer (NXDOMAIN for as long as libunbound's own cache keeps it).
 * Must not: block; keep pointers into the configuration (the sites are
 * parsed and copied at each check).
 */
#ifndef TERN_DNSBL_H
#define TERN_DNSBL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/config.h"
#include "lib/buf.h"

#define DNSBL_TXT_MAX 200
#define DNSBL_ZONE_MAX 200

typedef struct dnsbl_site {
	char zone[DNSBL_ZONE_MAX + 1]; /* lowercase, no trailing dot */
	bool filter;                   /* lo/hi apply */
	uint8_t lo[4], hi[4];          /* each octet of an A record within [lo, hi] */
	int weight;
} dnsbl_site_t;

typedef struct dnsbl_result {
	bool listed;       /* score >= threshold */
	int score;
	const char *lists; /* the zones that matched, "zone*w zone*w", for the log */
	const char *reply; /* listed: "554 5.7.1 ..." */
} dnsbl_result_t;

typedef void (*dnsbl_cb)(void *arg, const dnsbl_result_t *r);
typedef struct dnsbl_req dnsbl_req_t;

/* Parse one site; 0, or -1 with the reason in *err. */
int dnsbl_site_parse(const char *spec, dnsbl_site_t *out, buf_t *err);
/* Every dnsbl_sites entry of c parses: 0, or -1 with "FILE:LINE: ..." in *err. */
int dnsbl_config_check(const config_t *c, buf_t *err);
/* The name to look up for sa (AF_INET or AF_INET6) in zone: 0, or -1
 * (another family, or out too small). */
int dnsbl_qname(const struct sockaddr *sa, const char *zone, char *out, size_t outlen);
/* Does the IPv4 address a (network order) pass the site's filter? */
bool dnsbl_match(const dnsbl_site_t *s, const uint8_t a[4]);

/* Look sa up in c's dnsbl_sites; sid names the session in the log. Never
 * NULL. c's sites must not be empty. */
dnsbl_req_t *dnsbl_check(uv_loop_t *loop, const config_t *c, const struct sockaddr *sa,
    const char *sid, dnsbl_cb cb, void *arg);
/* The callback will never be called. NULL: no-op. */
void dnsbl_cancel(dnsbl_req_t *r);
/* Release the resolver and the cache (at exit, no request pending). */
void dnsbl_shutdown(void);

#endif
