/*
 * fuzz_queue.c - libFuzzer target for queue_decode (src/queue/record.c).
 *
 * Feeds arbitrary bytes to the queue file decoder, which must never crash,
 * read out of bounds or leak, whatever the input. When a file is accepted,
 * its content range must lie inside the input and re-encoding the decoded
 * envelope must decode again to the same recipients (the decoder only
 * accepts what the encoder can write).
 * Seeds: fuzz/corpus/queue/ (queue_encode output, with status batches).
 * Build with -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION so record checksums
 * do not stop mutated input before the field parsers:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -Isrc fuzz/fuzz_queue.c \
 *     src/queue/record.c src/common/envelope.c src/common/qid.c src/lib/buf.c \
 *     src/lib/fsutil.c src/lib/log.c src/lib/xalloc.c -luv -lpthread -o /tmp/fq
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/envelope.h"
#include "queue/queue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	envelope_t *e = NULL;
	buf_t err = BUF_INIT;
	if (queue_decode((const char *)data, size, &e, &err) == 0) {
		if (e == NULL || e->body_off > size || e->body_len > size - e->body_off)
			abort();
		buf_t again = BUF_INIT;
		queue_encode(e, (const char *)data + e->body_off, (size_t)e->body_len, &again);
		envelope_t *e2 = NULL;
		buf_t err2 = BUF_INIT;
		if (queue_decode(again.data, again.len, &e2, &err2) != 0)
			abort();
		if (e2->nrcpt != e->nrcpt || e2->flags != e->flags || strcmp(e2->qid, e->qid) != 0)
			abort();
		for (size_t i = 0; i < e->nrcpt; i++)
			if (strcmp(e->rcpt[i].addr, e2->rcpt[i].addr) != 0 ||
			    e->rcpt[i].status != e2->rcpt[i].status)
				abort();
		envelope_free(e2);
		buf_free(&again);
		buf_free(&err2);
	} else if (e != NULL) {
		abort();
	}
	envelope_free(e);
	buf_free(&err);
	return 0;
}
