/*
 * mtasts.h - MTA-STS (RFC 8461) as data: the "_mta-sts" TXT record, the
 * policy file, and the matching of MX host names against a policy. Pure
 * functions (no I/O), so they are unit-tested and fuzzed (fuzz/fuzz_mtasts.c);
 * discovery, fetching and the cache are mtasts_fetch.h.
 *
 * Guarantees: every input is treated as hostile: lengths are bounded, a
 * policy that breaks any rule of §3.2 is refused whole (never partly
 * used), with the reason.
 */
#ifndef TERN_MTASTS_H
#define TERN_MTASTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define MTASTS_MAX_AGE_LIMIT 31557600u /* §3.2: max_age at most about one year */
#define MTASTS_MAX_MX 64               /* mx patterns kept; more: refused */
#define MTASTS_ID_MAX 32               /* §3.1: id is 1*32(ALPHA / DIGIT) */
#define MTASTS_BODY_MAX (64u * 1024u)  /* §3.3: at most 64 KiB */

enum mtasts_mode {
	MTASTS_NONE = 0, /* the domain withdrew its policy */
	MTASTS_TESTING,  /* deliver anyway, report failures */
	MTASTS_ENFORCE,  /* only MX hosts that match, with a valid certificate */
};

typedef struct mtasts_policy {
	enum mtasts_mode mode;
	uint32_t max_age;  /* seconds */
	char **mx;         /* lowercased patterns: "mx.example.com" or "*.example.com" */
	size_t nmx;
} mtasts_policy_t;

/*
 * The TXT record text (the record's strings concatenated) of
 * "_mta-sts.DOMAIN": "v=STSv1; id=ID;" with optional further fields (§3.1).
 * 1: an STSv1 record with a valid id, copied into id (MTASTS_ID_MAX + 1
 * octets); 0: not an STSv1 record (other TXT records are ignored); -1: it
 * starts with v=STSv1 but is malformed (why in *err).
 */
int mtasts_txt_parse(const char *txt, size_t len, char *id, buf_t *err);

/* Parse a policy body (§3.2: "key: value" lines ended by CRLF or LF). 0
 * with *p filled (free with mtasts_policy_clear), or -1 with the reason. */
int mtasts_policy_parse(const char *body, size_t len, mtasts_policy_t *p, buf_t *err);
void mtasts_policy_clear(mtasts_policy_t *p);
/* a deep copy into *dst */
void mtasts_policy_copy(mtasts_policy_t *dst, const mtasts_policy_t *src);

/* Does the MX host name match one of the policy's patterns (§4.1): equal
 * (case-insensitive, a trailing dot ignored), or "*.rest" where the host
 * is exactly one label more than rest. */
bool mtasts_mx_match(const mtasts_policy_t *p, const char *host);

const char *mtasts_mode_name(enum mtasts_mode m);

#endif
