/*
 * fuzz_dovecot_auth.c - libFuzzer target for the parser of what Dovecot's
 * authentication server says (src/smtpd/auth_dovecot_proto.c), fed as the
 * client reads it: the input split at LF into lines, each parsed alone.
 * Checks: no crash, no read or write out of bounds, no leak; whatever a
 * parsed reply hands on is what its contract says: ids 1..2^32-1, a user
 * name printable ASCII without space or quote, challenge data base64 only
 * (it goes into a 334 line), a reason without control characters (it goes
 * into the log), a mechanism name [A-Z0-9_-]; and a challenge formats back
 * into a CONT line that parses to the same data.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "lib/buf.h"
#include "smtpd/auth_dovecot_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reply(const dvproto_reply_t *r)
{
	if (r->kind == DVP_OK || r->kind == DVP_CONT || r->kind == DVP_FAIL)
		CHECK(r->id >= 1 && r->id <= 0xffffffffUL);
	if (r->user) {
		size_t n = strlen(r->user);
		CHECK(n >= 1 && n <= DVPROTO_MAX_USER);
		for (size_t i = 0; i < n; i++)
			CHECK((unsigned char)r->user[i] > ' ' && (unsigned char)r->user[i] < 0x7f &&
			    !strchr("\"\\()<>", r->user[i]));
	}
	if (r->data)
		CHECK(dvproto_is_b64(r->data, strlen(r->data), 12288));
	if (r->kind == DVP_CONT)
		CHECK(r->data != NULL);
	if (r->reason) {
		CHECK(strlen(r->reason) <= DVPROTO_MAX_REASON);
		for (const char *p = r->reason; *p; p++)
			CHECK((unsigned char)*p >= ' ' && *p != 0x7f && *p != '"');
	}
	if (r->kind == DVP_MECH) {
		size_t n = strlen(r->mech);
		CHECK(n >= 1 && n <= DVPROTO_MAX_MECH);
		CHECK(strspn(r->mech, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n);
	}
	if (r->temp)
		CHECK(r->kind == DVP_FAIL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	while (p <= end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((lf ? lf : end) - p);
		dvproto_reply_t r;
		buf_t err = BUF_INIT;
		if (dvproto_parse(p, n, &r, &err) == 0) {
			check_reply(&r);
			if (r.kind == DVP_CONT) {
				/* our CONT line for the same id and data parses back */
				buf_t b = BUF_INIT;
				CHECK(dvproto_format_cont(&b, r.id, r.data, strlen(r.data)) == 0);
				CHECK(b.len > 0 && b.data[b.len - 1] == '\n');
				dvproto_reply_t again;
				buf_t e2 = BUF_INIT;
				CHECK(dvproto_parse(b.data, b.len - 1, &again, &e2) == 0);
				CHECK(again.kind == DVP_CONT && again.id == r.id);
				CHECK(strcmp(again.data, r.data) == 0);
				dvproto_reply_free(&again);
				buf_free(&e2);
				buf_free(&b);
			}
		} else {
			CHECK(err.len > 0);
		}
		dvproto_reply_free(&r);
		buf_free(&err);
		if (!lf)
			break;
		p = lf + 1;
	}
	return 0;
}
