/*
 * record.h - PERSIST: the queue file's record codec (internal to src/queue/).
 *
 * Turns an envelope and its content into the bytes of a queue file, and
 * those bytes back into an envelope, with every record checksummed and
 * every field bounded; no file system, no threads, no event loop. queue.c
 * (the spool and the commit) and store.c write and read through it;
 * queue_encode and queue_decode (queue.h) are its public face, and the
 * surface of fuzz/fuzz_queue.c.
 *
 * File format v1 (docs/queue.md has the full description):
 *   "tern-queue 1\n"
 *   record*   record = type:u8 len:u32be data[len] crc:u32be
 *             crc = CRC-32 (IEEE 802.3) of type, len and data
 *   'Q' qid, 'I' info, 'F' sender, ['E' envid], ['C' client], ['H' helo],
 *   ['A' auth], 'R' x nrcpt, 'B' body length, <body bytes>, 'X' end,
 *   then 'S' status batches appended later, one per queue_append_status().
 *
 * What it guarantees: the decoder accepts only what the encoder can write
 * (qrec_env_check is run by the writer before anything is queued and by
 * the reader after decoding); it never reads outside the bytes given.
 * What it must not do: trust any byte it decodes, or do I/O.
 */
#ifndef TERN_QUEUE_RECORD_H
#define TERN_QUEUE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "common/envelope.h"
#include "lib/buf.h"

/* Bounds the loader needs; anything larger is corruption. */
#define QF_MAX_HEADER (64u << 20)     /* magic .. 'B' record */
#define QF_MAX_TAIL (64u << 20)       /* 'X' record and status batches */
#define QF_MAX_BODY (UINT64_C(1) << 40)

/* Sizes of the two fixed-size header records patched at commit ('I', 'B'),
 * framing (type, length, checksum: 9 bytes) included. */
#define QREC_INFO_LEN (9u + 8 + 3 + 4 + 4)
#define QREC_BODY_LEN (9u + 8)

/* NULL when env may be written and read back, else the reason. */
const char *qrec_env_check(const envelope_t *e);

/* Append the header (magic .. 'B' record, saying body_len) to b.
 * *info_off and *body_rec_off (either may be NULL) receive the offsets of
 * the 'I' and 'B' records, which qrec_put_info and qrec_put_body rewrite
 * at commit (arrival time, content length). */
void qrec_encode_header(buf_t *b, const envelope_t *e, uint64_t body_len, size_t *info_off,
    size_t *body_rec_off);
void qrec_put_info(buf_t *b, const envelope_t *e);  /* QREC_INFO_LEN bytes */
void qrec_put_body(buf_t *b, uint64_t len);         /* QREC_BODY_LEN bytes */
/* The 'X' record that follows the content. */
void qrec_put_end(buf_t *b, uint64_t body_off, uint64_t body_len);

/* Append one 'S' status batch for the listed recipients of env (their
 * state and env's flags). -1 (b may hold a partial record) when an index
 * or a state is out of bounds or the record would be too large. */
int qrec_encode_status(buf_t *b, const envelope_t *env, const size_t *idx, size_t n);

enum { QREC_HDR_OK, QREC_HDR_MORE, QREC_HDR_BAD };

/*
 * Parse magic .. 'B' record from p[0..n). QREC_HDR_MORE when n ends inside
 * the header (the caller may have more bytes); QREC_HDR_BAD with the reason
 * in *err. On QREC_HDR_OK, *envp is the envelope and *body_off, *body_len
 * say where the content lies.
 */
int qrec_decode_header(const unsigned char *p, size_t n, envelope_t **envp, uint64_t *body_off,
    uint64_t *body_len, buf_t *err);

typedef struct qrec_tail {
	uint64_t good_len; /* file length up to the last valid batch */
	uint64_t skipped;  /* bytes of damaged batches skipped before it */
} qrec_tail_t;

/*
 * Parse the tail (the 'X' record, then status batches) from p[0..n), where
 * tail_off is the file offset of p[0], and apply the batches to e. Damaged
 * batches are skipped or, at the end, ignored (see record.c). -1 with the
 * reason in *err when the file must be refused.
 */
int qrec_decode_tail(envelope_t *e, const unsigned char *p, size_t n, uint64_t tail_off,
    qrec_tail_t *ti, buf_t *err);

#endif
