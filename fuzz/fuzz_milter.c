/*
 * fuzz_milter.c - libFuzzer target for the milter reply side
 * (src/filter/milter_proto.c): the input is a byte stream from a milter,
 * cut into packets with mp_frame() and each decoded with mp_reply_parse()
 * (the first packet as an OPTNEG reply). Invariants: nothing is read past
 * a packet (every returned pointer and string lies inside it, NUL
 * included), a length word over the protocol's size is refused before
 * any of the packet is consumed, a REPLYCODE accepted is a 4xx/5xx reply
 * with no bare CR or LF.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/milter_proto.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const char *s, const char *lo, size_t n)
{
	if (s == NULL)
		return;
	CHECK(s >= lo && s < lo + n);
	CHECK(memchr(s, '\0', (size_t)(lo + n - s)) != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy, exactly as long as the input: ASan sees any overread */
	char *p = malloc(size ? size : 1);
	memcpy(p, data, size);
	size_t off = 0;
	bool first = true;
	while (off < size) {
		size_t used = 0, dlen = 0;
		char cmd = 0;
		const char *d = NULL, *why = NULL;
		int r = mp_frame(p + off, size - off, &used, &cmd, &d, &dlen, &why);
		if (r < 0) {
			CHECK(why != NULL);
			uint32_t len = (uint32_t)(uint8_t)p[off] << 24 | (uint32_t)(uint8_t)p[off + 1] << 16 |
			    (uint32_t)(uint8_t)p[off + 2] << 8 | (uint8_t)p[off + 3];
			CHECK(len == 0 || len > MILTER_MAX_DATA + 1);
			break;
		}
		if (r == 0) {
			CHECK(size - off < 5 || size - off < 4 + ((size_t)(uint8_t)p[off] << 24 |
			    (size_t)(uint8_t)p[off + 1] << 16 | (size_t)(uint8_t)p[off + 2] << 8 |
			    (uint8_t)p[off + 3]));
			break;
		}
		CHECK(used >= 5 && used <= size - off && used <= MILTER_MAX_DATA + 5);
		CHECK(d == p + off + 5 && dlen == used - 5);
		if (first) {
			mp_optneg_t o;
			if (mp_optneg_parse(d, dlen, &o, &why) == 0) {
				CHECK(o.version >= 2 && o.version <= MILTER_VERSION);
				for (int i = 0; i < MP_NSTAGES; i++) {
					inside(o.symlist[i], d, dlen);
					if (o.symlist[i])
						CHECK(strlen(o.symlist[i]) == o.symlist_len[i]);
				}
			} else {
				CHECK(why != NULL);
			}
			first = false;
		}
		mp_reply_t rep;
		if (mp_reply_parse(cmd, d, dlen, &rep, &why) == 0) {
			inside(rep.name, d, dlen);
			inside(rep.value, d, dlen);
			inside(rep.text, d, dlen);
			if (rep.body) {
				CHECK(rep.body == d && rep.body_len == dlen);
			}
			if (rep.text) {
				CHECK(rep.text[0] == '4' || rep.text[0] == '5');
				for (const char *q = rep.text; *q; q++)
					if (*q == '\r')
						CHECK(q[1] == '\n');
					else if (*q == '\n')
						CHECK(q > rep.text && q[-1] == '\r');
			}
		} else {
			CHECK(why != NULL);
		}
		off += used;
	}
	free(p);
	return 0;
}
