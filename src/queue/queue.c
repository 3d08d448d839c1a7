/*
 * queue.c - PERSIST: the durable mail queue (see queue.h, docs/queue.md).
 *
 * What it guarantees: a commit callback reports success only once the
 * message file is complete (END record written), fdatasync'd, renamed from
 * incoming/ into queue/ and queue/ itself fsync'd. A file that is
 * truncated, corrupt, or of another version is never loaded; a torn
 * status append is ignored (it only makes a recipient's state older, which
 * can cause a duplicate delivery, never a loss).
 *
 * What it must not do: block the event loop on a sync (the syncs run on
 * libuv's thread pool); trust any byte of a spool file (every length is
 * bounded, every field validated, every record checksummed).
 *
 * File format v1 (docs/queue.md has the full description):
 *   "tern-queue 1\n"
 *   record*   record = type:u8 len:u32be data[len] crc:u32be
 *             crc = CRC-32 (IEEE 802.3) of type, len and data
 *   'Q' qid, 'I' info, 'F' sender, ['E' envid], ['C' client], ['H' helo],
 *   ['A' auth], 'R' x nrcpt, 'B' body length, <body bytes>, 'X' end,
 *   then 'S' status batches appended later, one per queue_append_status().
 */
#include "queue/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/qid.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define QF_MAGIC "tern-queue 1\n"
#define QF_MAGIC_LEN (sizeof QF_MAGIC - 1)

enum {
	REC_QID = 'Q',
	REC_INFO = 'I',
	REC_FROM = 'F',
	REC_ENVID = 'E',
	REC_CLIENT = 'C',
	REC_HELO = 'H',
	REC_AUTH = 'A',
	REC_RCPT = 'R',
	REC_BODY = 'B',
	REC_END = 'X',
	REC_STATUS = 'S',
};

#define REC_HDR 5u /* type + len */
#define REC_OVH 9u /* type + len + crc */

/* Bounds on what a file may contain; anything larger is corruption. */
#define QF_MAX_REC (16u << 20)        /* data of one record */
#define QF_MAX_ADDR 1024u             /* sender, recipient, orig, orcpt */
#define QF_MAX_TEXT 1024u             /* envid, client, helo, auth, relay */
#define QF_MAX_REPLY 4096u            /* last reply text */
#define QF_MAX_RCPT 100000u           /* recipients per message */
#define QF_MAX_ATTEMPTS 10000000u
#define QF_MAX_TIME 253402300799LL    /* 9999-12-31T23:59:59Z */
#define QF_MAX_HEADER (64u << 20)     /* magic .. 'B' record */
#define QF_MAX_TAIL (64u << 20)       /* 'X' record and status batches */
#define QF_MAX_BODY (UINT64_C(1) << 40)
#define QF_FLAGS_KNOWN (ENV_IS_BOUNCE | ENV_DELAY_WARNED | ENV_HELD | ENV_PM_NOTICE)
#define QF_NOTIFY_KNOWN 0x0fu
#define QF_NULL_STR 0xffffffffu

#define QUEUE_MEM_MAX (64u * 1024u) /* content kept in memory before spilling */

/* ------------------------------------------------------------------ */
/* CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320), slice-by-4.        */

static uint32_t crc_tab[4][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_tab[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 4; t++)
			crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

static uint32_t
crc32_buf(const void *p, size_t n)
{
	pthread_once(&crc_once, crc_init);
	const unsigned char *s = p;
	uint32_t c = 0xffffffffu;
	while (n >= 4) {
		c ^= (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 |
		    (uint32_t)s[3] << 24;
		c = crc_tab[3][c & 0xff] ^ crc_tab[2][(c >> 8) & 0xff] ^
		    crc_tab[1][(c >> 16) & 0xff] ^ crc_tab[0][c >> 24];
		s += 4;
		n -= 4;
	}
	while (n--)
		c = crc_tab[0][(c ^ *s++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */

static void
put_u8(buf_t *b, unsigned v)
{
	buf_putc(b, (char)(v & 0xff));
}

static void
put_u32(buf_t *b, uint32_t v)
{
	unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
	    (unsigned char)(v >> 8), (unsigned char)v};
	buf_append(b, x, 4);
}

static void
put_u64(buf_t *b, uint64_t v)
{
	put_u32(b, (uint32_t)(v >> 32));
	put_u32(b, (uint32_t)v);
}

static void
set_u32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

static size_t
rec_begin(buf_t *b, int type)
{
	size_t off = b->len;
	put_u8(b, (unsigned)type);
	put_u32(b, 0);
	return off;
}

static void
rec_end(buf_t *b, size_t off)
{
	set_u32(b->data + off + 1, (uint32_t)(b->len - off - REC_HDR));
	put_u32(b, crc32_buf(b->data + off, b->len - off));
}

static void
put_str(buf_t *b, const char *s)
{
	size_t n = strlen(s);
	put_u32(b, (uint32_t)n);
	buf_append(b, s, n);
}

static void
put_ostr(buf_t *b, const char *s)
{
	if (s == NULL)
		put_u32(b, QF_NULL_STR);
	else
		put_str(b, s);
}

/* A whole record whose data is one string. */
static void
put_str_rec(buf_t *b, int type, const char *s)
{
	size_t off = rec_begin(b, type);
	buf_puts(b, s);
	rec_end(b, off);
}

/*
 * Reply and relay text come from remote servers: make them safe to store
 * (controls become '?', length bounded) rather than fail the append.
 */
static char *
sanitize_text(const char *s, size_t max)
{
	if (s == NULL)
		return NULL;
	size_t n = strnlen(s, max);
	char *d = xstrndup(s, n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)d[i] < 0x20 || d[i] == 0x7f)
			d[i] = '?';
	return d;
}

static void
put_state(buf_t *b, const env_rcpt_t *r)
{
	put_u8(b, (unsigned)r->status);
	put_u32(b, r->attempts);
	put_u64(b, (uint64_t)r->next_try);
	put_u64(b, (uint64_t)r->last_try);
	char *reply = sanitize_text(r->reply, QF_MAX_REPLY);
	char *relay = sanitize_text(r->relay, QF_MAX_TEXT);
	put_ostr(b, reply);
	put_ostr(b, relay);
	xfree(reply);
	xfree(relay);
}

static void
put_info(buf_t *b, const envelope_t *e)
{
	size_t off = rec_begin(b, REC_INFO);
	put_u64(b, (uint64_t)e->arrival_us);
	put_u8(b, (unsigned)e->ret);
	put_u8(b, (unsigned)e->body);
	put_u8(b, e->smtputf8 ? 1 : 0);
	put_u32(b, e->flags);
	put_u32(b, (uint32_t)e->nrcpt);
	rec_end(b, off);
}
#define INFO_REC_LEN (REC_OVH + 8 + 3 + 4 + 4)

static void
put_body_rec(buf_t *b, uint64_t len)
{
	size_t off = rec_begin(b, REC_BODY);
	put_u64(b, len);
	rec_end(b, off);
}
#define BODY_REC_LEN (REC_OVH + 8)

static void
put_end_rec(buf_t *b, uint64_t body_off, uint64_t body_len)
{
	size_t off = rec_begin(b, REC_END);
	put_u64(b, body_off);
	put_u64(b, body_len);
	rec_end(b, off);
}

/* Header: magic .. 'B' record. *info_off and *body_rec_off locate the two
 * fixed-size records patched at commit (arrival time, content length). */
static void
encode_header(buf_t *b, const envelope_t *e, uint64_t body_len, size_t *info_off,
    size_t *body_rec_off)
{
	buf_append(b, QF_MAGIC, QF_MAGIC_LEN);
	size_t off = rec_begin(b, REC_QID);
	buf_append(b, e->qid, QID_LEN);
	rec_end(b, off);
	if (info_off)
		*info_off = b->len;
	put_info(b, e);
	put_str_rec(b, REC_FROM, e->sender ? e->sender : "");
	if (e->envid)
		put_str_rec(b, REC_ENVID, e->envid);
	if (e->client_addr)
		put_str_rec(b, REC_CLIENT, e->client_addr);
	if (e->client_helo)
		put_str_rec(b, REC_HELO, e->client_helo);
	if (e->auth_user)
		put_str_rec(b, REC_AUTH, e->auth_user);
	for (size_t i = 0; i < e->nrcpt; i++) {
		const env_rcpt_t *r = &e->rcpt[i];
		off = rec_begin(b, REC_RCPT);
		put_u32(b, r->notify);
		put_str(b, r->addr ? r->addr : "");
		put_ostr(b, r->orig);
		put_ostr(b, r->orcpt);
		put_state(b, r);
		rec_end(b, off);
	}
	if (body_rec_off)
		*body_rec_off = b->len;
	put_body_rec(b, body_len);
}

void
queue_encode(const envelope_t *env, const char *content, size_t n, buf_t *out)
{
	size_t start = out->len;
	encode_header(out, env, n, NULL, NULL);
	uint64_t body_off = out->len - start;
	buf_append(out, content, n);
	put_end_rec(out, body_off, n);
}

/* ------------------------------------------------------------------ */
/* Validation (shared by the writer, before anything is queued, and the  */
/* reader, after decoding).                                             */

static bool
text_ok(const char *s, size_t n, size_t max, bool empty_ok)
{
	if (n > max || (n == 0 && !empty_ok))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static bool
cstr_ok(const char *s, size_t max, bool empty_ok, bool null_ok)
{
	if (s == NULL)
		return null_ok;
	return text_ok(s, strnlen(s, max + 1), max, empty_ok);
}

static bool
time_ok(int64_t t)
{
	return t >= 0 && t <= QF_MAX_TIME;
}

/* The numeric part of a recipient's state (reply and relay are sanitized
 * when written, so they never make an append fail). */
static bool
state_ok_bounds(const env_rcpt_t *r)
{
	return r->status >= RCPT_PENDING && r->status <= RCPT_REPORTED &&
	    r->attempts <= QF_MAX_ATTEMPTS && time_ok(r->next_try) && time_ok(r->last_try);
}

static bool
state_ok(const env_rcpt_t *r)
{
	return r->status >= RCPT_PENDING && r->status <= RCPT_REPORTED &&
	    r->attempts <= QF_MAX_ATTEMPTS && time_ok(r->next_try) && time_ok(r->last_try) &&
	    cstr_ok(r->reply, QF_MAX_REPLY, true, true) && cstr_ok(r->relay, QF_MAX_TEXT, true, true);
}

/* Returns NULL when env may be written and read back, else the reason. */
static const char *
env_check(const envelope_t *e)
{
	if (!qid_valid(e->qid, strnlen(e->qid, QID_SIZE)))
		return "bad queue ID";
	if (e->arrival_us < 0 || e->arrival_us / 1000000 > QF_MAX_TIME)
		return "bad arrival time";
	if (e->ret < RET_NONE || e->ret > RET_HDRS)
		return "bad RET";
	if (e->body < BODY_NONE || e->body > BODY_BINARYMIME)
		return "bad BODY";
	if (e->flags & ~(unsigned)QF_FLAGS_KNOWN)
		return "unknown flags";
	if (!cstr_ok(e->sender, QF_MAX_ADDR, true, true))
		return "bad sender";
	if (!cstr_ok(e->envid, QF_MAX_TEXT, true, true))
		return "bad ENVID";
	if (!cstr_ok(e->client_addr, QF_MAX_TEXT, true, true))
		return "bad client address";
	if (!cstr_ok(e->client_helo, QF_MAX_TEXT, true, true))
		return "bad client HELO";
	if (!cstr_ok(e->auth_user, QF_MAX_TEXT, true, true))
		return "bad auth user";
	if (e->nrcpt == 0 || e->nrcpt > QF_MAX_RCPT)
		return "bad recipient count";
	for (size_t i = 0; i < e->nrcpt; i++) {
		const env_rcpt_t *r = &e->rcpt[i];
		if (!cstr_ok(r->addr, QF_MAX_ADDR, false, false))
			return "bad recipient address";
		if (!cstr_ok(r->orig, QF_MAX_ADDR, true, true))
			return "bad original recipient";
		if (!cstr_ok(r->orcpt, QF_MAX_ADDR, true, true))
			return "bad ORCPT";
		if (r->notify & ~QF_NOTIFY_KNOWN)
			return "bad NOTIFY";
		if (!state_ok(r))
			return "bad recipient state";
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                            */

typedef struct rd {
	const unsigned char *p;
	size_t n, off;
	bool bad;
} rd_t;

static unsigned
get_u8(rd_t *r)
{
	if (r->bad || r->n - r->off < 1) {
		r->bad = true;
		return 0;
	}
	return r->p[r->off++];
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
be64(const unsigned char *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint32_t
get_u32(rd_t *r)
{
	if (r->bad || r->n - r->off < 4) {
		r->bad = true;
		return 0;
	}
	uint32_t v = be32(r->p + r->off);
	r->off += 4;
	return v;
}

static uint64_t
get_u64(rd_t *r)
{
	if (r->bad || r->n - r->off < 8) {
		r->bad = true;
		return 0;
	}
	uint64_t v = be64(r->p + r->off);
	r->off += 8;
	return v;
}

static int64_t
get_time(rd_t *r)
{
	uint64_t v = get_u64(r);
	if (v > (uint64_t)QF_MAX_TIME)
		r->bad = true;
	return (int64_t)v;
}

/* A length-prefixed string: bounded, no controls (so no NUL either). */
static char *
get_text(rd_t *r, size_t max, bool empty_ok, bool null_ok)
{
	uint32_t len = get_u32(r);
	if (r->bad)
		return NULL;
	if (len == QF_NULL_STR) {
		if (!null_ok)
			r->bad = true;
		return NULL;
	}
	if (len > r->n - r->off || !text_ok((const char *)r->p + r->off, len, max, empty_ok)) {
		r->bad = true;
		return NULL;
	}
	char *s = xstrndup((const char *)r->p + r->off, len);
	r->off += len;
	return s;
}

/* The whole of a record's data as one string. */
static char *
data_text(const unsigned char *p, size_t n, size_t max, bool empty_ok)
{
	if (!text_ok((const char *)p, n, max, empty_ok))
		return NULL;
	return xstrndup((const char *)p, n);
}

static void
get_state(rd_t *r, env_rcpt_t *t)
{
	t->status = (int)get_u8(r);
	t->attempts = get_u32(r);
	t->next_try = get_time(r);
	t->last_try = get_time(r);
	xfree(t->reply);
	xfree(t->relay);
	t->reply = get_text(r, QF_MAX_REPLY, true, true);
	t->relay = get_text(r, QF_MAX_TEXT, true, true);
	if (t->status < RCPT_PENDING || t->status > RCPT_REPORTED || t->attempts > QF_MAX_ATTEMPTS)
		r->bad = true;
}

enum { REC_OK, REC_SHORT, REC_BAD };

typedef struct rec {
	int type;
	const unsigned char *data;
	size_t len;
	size_t size; /* whole record, framing included */
} rec_t;

/* Read the record at p[off..n). REC_SHORT: the bytes end inside it. */
static int
rec_read(const unsigned char *p, size_t n, size_t off, rec_t *rec)
{
	if (off > n || n - off < REC_HDR)
		return REC_SHORT;
	uint32_t len = be32(p + off + 1);
	if (len > QF_MAX_REC)
		return (n - off < (size_t)len + REC_OVH) ? REC_SHORT : REC_BAD;
	if (n - off < (size_t)len + REC_OVH)
		return REC_SHORT;
	uint32_t want = be32(p + off + REC_HDR + len);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
	if (crc32_buf(p + off, REC_HDR + len) != want)
		return REC_BAD;
#else
	/* fuzz builds: let mutated records reach the field parsers, unless
	 * the checksum is zero (so the torn-record paths stay reachable) */
	if (want == 0)
		return REC_BAD;
#endif
	rec->type = p[off];
	rec->data = p + off + REC_HDR;
	rec->len = len;
	rec->size = REC_OVH + len;
	return REC_OK;
}

enum { HDR_OK, HDR_MORE, HDR_BAD };

/*
 * Parse magic .. 'B' record from p[0..n). HDR_MORE when n ends inside the
 * header (the caller may have more bytes). On HDR_OK, *envp is the envelope
 * and *body_off, *body_len say where the content lies.
 */
static int
decode_header(const unsigned char *p, size_t n, envelope_t **envp, uint64_t *body_off,
    uint64_t *body_len, buf_t *err)
{
	*envp = NULL;
	size_t m = n < QF_MAGIC_LEN ? n : QF_MAGIC_LEN;
	if (memcmp(p, QF_MAGIC, m) != 0) {
		if (n >= 11 && memcmp(p, "tern-queue ", 11) == 0)
			buf_puts(err, "unsupported queue file version");
		else
			buf_puts(err, "not a queue file (bad magic)");
		return HDR_BAD;
	}
	if (n < QF_MAGIC_LEN)
		return HDR_MORE;
	envelope_t *e = envelope_new();
	size_t off = QF_MAGIC_LEN;
	uint32_t nrcpt = 0;
	/* records in a fixed order: each state names what may come next */
	enum { S_QID, S_INFO, S_FROM, S_OPT, S_RCPT } st = S_QID;
	int last_opt = 0;
	const char *why = NULL;
	for (;;) {
		rec_t rec;
		int rr = rec_read(p, n, off, &rec);
		if (rr == REC_SHORT) {
			envelope_free(e);
			return HDR_MORE;
		}
		if (rr == REC_BAD) {
			why = "bad record checksum in header";
			goto bad;
		}
		rd_t r = {rec.data, rec.len, 0, false};
		switch (st) {
		case S_QID:
			if (rec.type != REC_QID || rec.len != QID_LEN ||
			    !qid_valid((const char *)rec.data, rec.len)) {
				why = "bad queue ID record";
				goto bad;
			}
			memcpy(e->qid, rec.data, QID_LEN);
			e->qid[QID_LEN] = '\0';
			st = S_INFO;
			break;
		case S_INFO: {
			if (rec.type != REC_INFO || rec.len != INFO_REC_LEN - REC_OVH) {
				why = "bad info record";
				goto bad;
			}
			uint64_t arr = get_u64(&r);
			unsigned ret = get_u8(&r), body = get_u8(&r), utf8 = get_u8(&r);
			uint32_t flags = get_u32(&r);
			nrcpt = get_u32(&r);
			if (r.bad || arr > (uint64_t)QF_MAX_TIME * 1000000u || ret > RET_HDRS ||
			    body > BODY_BINARYMIME || utf8 > 1 || (flags & ~(uint32_t)QF_FLAGS_KNOWN) ||
			    nrcpt == 0 || nrcpt > QF_MAX_RCPT) {
				why = "bad info record";
				goto bad;
			}
			e->arrival_us = (int64_t)arr;
			e->ret = (int)ret;
			e->body = (int)body;
			e->smtputf8 = utf8 != 0;
			e->flags = flags;
			st = S_FROM;
			break;
		}
		case S_FROM:
			if (rec.type != REC_FROM ||
			    (e->sender = data_text(rec.data, rec.len, QF_MAX_ADDR, true)) == NULL) {
				why = "bad sender record";
				goto bad;
			}
			st = S_OPT;
			break;
		case S_OPT:
			/* optional E, C, H, A, each at most once, in this order */
			if (rec.type == REC_ENVID || rec.type == REC_CLIENT || rec.type == REC_HELO ||
			    rec.type == REC_AUTH) {
				int pos = rec.type == REC_ENVID ? 1 : rec.type == REC_CLIENT ? 2 :
				    rec.type == REC_HELO ? 3 : 4;
				if (pos <= last_opt) {
					why = "optional record out of order";
					goto bad;
				}
				last_opt = pos;
				char *s = data_text(rec.data, rec.len, QF_MAX_TEXT, true);
				if (s == NULL) {
					why = "bad text record";
					goto bad;
				}
				char **slot = rec.type == REC_ENVID ? &e->envid :
				    rec.type == REC_CLIENT ? &e->client_addr :
				    rec.type == REC_HELO ? &e->client_helo : &e->auth_user;
				*slot = s;
				break;
			}
			st = S_RCPT;
			/* FALLTHROUGH */
		case S_RCPT:
			if (rec.type == REC_RCPT && e->nrcpt < nrcpt) {
				uint32_t notify = get_u32(&r);
				char *addr = get_text(&r, QF_MAX_ADDR, false, false);
				char *orig = get_text(&r, QF_MAX_ADDR, true, true);
				char *orcpt = get_text(&r, QF_MAX_ADDR, true, true);
				if (!r.bad) {
					env_rcpt_t *t = envelope_add_rcpt(e, addr, orig, orcpt, notify);
					get_state(&r, t);
				}
				xfree(addr);
				xfree(orig);
				xfree(orcpt);
				if (r.bad || r.off != r.n || (notify & ~QF_NOTIFY_KNOWN)) {
					why = "bad recipient record";
					goto bad;
				}
				break;
			}
			if (rec.type == REC_BODY && e->nrcpt == nrcpt && rec.len == 8) {
				uint64_t bl = get_u64(&r);
				if (bl > QF_MAX_BODY) {
					why = "bad body record";
					goto bad;
				}
				const char *bad = env_check(e);
				if (bad) {
					why = bad;
					goto bad;
				}
				*body_off = off + rec.size;
				*body_len = bl;
				e->body_off = *body_off;
				e->body_len = bl;
				*envp = e;
				return HDR_OK;
			}
			why = e->nrcpt < nrcpt ? "missing recipient records" : "unexpected record in header";
			goto bad;
		}
		off += rec.size;
	}
bad:
	buf_puts(err, why);
	envelope_free(e);
	return HDR_BAD;
}

/* Smallest encoding of one status entry: idx, status, attempts, two times,
 * two NULL strings. */
#define STATUS_ENTRY_MIN (4 + 1 + 4 + 8 + 8 + 4 + 4)

/* Apply one status batch to e, all or nothing. -1 when its content is
 * invalid (then e is unchanged). */
static int
apply_status(envelope_t *e, const rec_t *rec)
{
	rd_t r = {rec->data, rec->len, 0, false};
	uint32_t flags = get_u32(&r);
	uint32_t count = get_u32(&r);
	if (r.bad || (flags & ~(uint32_t)QF_FLAGS_KNOWN) || count > e->nrcpt ||
	    count > (rec->len - 8) / STATUS_ENTRY_MIN)
		return -1;
	env_rcpt_t *tmp = count ? xcalloc(count, sizeof *tmp) : NULL;
	uint32_t *idx = count ? xcalloc(count, sizeof *idx) : NULL;
	uint32_t i;
	for (i = 0; i < count && !r.bad; i++) {
		idx[i] = get_u32(&r);
		if (idx[i] >= e->nrcpt)
			r.bad = true;
		get_state(&r, &tmp[i]);
	}
	bool ok = !r.bad && r.off == r.n;
	for (uint32_t k = 0; k < i; k++) {
		if (ok) {
			env_rcpt_t *t = &e->rcpt[idx[k]];
			xfree(t->reply);
			xfree(t->relay);
			t->status = tmp[k].status;
			t->attempts = tmp[k].attempts;
			t->next_try = tmp[k].next_try;
			t->last_try = tmp[k].last_try;
			t->reply = tmp[k].reply;
			t->relay = tmp[k].relay;
		} else {
			xfree(tmp[k].reply);
			xfree(tmp[k].relay);
		}
	}
	xfree(tmp);
	xfree(idx);
	if (!ok)
		return -1;
	e->flags = flags;
	return 0;
}

typedef struct tail_info {
	uint64_t good_len; /* file length up to the last valid batch */
	uint64_t skipped;  /* bytes of damaged batches skipped before it */
} tail_info_t;

/* Bound on checksum work spent looking past damaged batches. */
#define QF_RESYNC_BUDGET (64u << 20)

/*
 * The offset of the next intact 'S' record at or after from; n when there
 * is none; SIZE_MAX when the search budget is spent.
 */
static size_t
resync(const unsigned char *p, size_t n, size_t from, uint64_t *budget)
{
	size_t i = from;
	while (i < n) {
		const unsigned char *c = memchr(p + i, REC_STATUS, n - i);
		if (c == NULL)
			return n;
		i = (size_t)(c - p);
		if (n - i < REC_OVH)
			return n;
		uint32_t len = be32(p + i + 1);
		if (len <= QF_MAX_REC && (size_t)len + REC_OVH <= n - i) {
			if (*budget < (uint64_t)len + REC_HDR)
				return SIZE_MAX;
			*budget -= (uint64_t)len + REC_HDR;
			rec_t rec;
			if (rec_read(p, n, i, &rec) == REC_OK)
				return i;
		}
		i++;
	}
	return n;
}

/*
 * Parse the tail: the 'X' record, then status batches. tail_off is the file
 * offset of p[0].
 *
 * A batch that is damaged (cut short, checksum wrong, zeros) is a torn
 * append: when nothing intact follows it is the torn last one and is
 * ignored; when intact batches follow (a crash can write a later page of a
 * file but not an earlier one) it is skipped and they are applied. Either
 * way the state is made only of batches that were really written, at worst
 * missing one: an older state, so a retry, never a loss. Refusing the file
 * instead would strand its pending recipients in corrupt/.
 */
static int
decode_tail(envelope_t *e, const unsigned char *p, size_t n, uint64_t tail_off,
    tail_info_t *ti, buf_t *err)
{
	rec_t rec;
	int rr = rec_read(p, n, 0, &rec);
	if (rr == REC_SHORT) {
		buf_puts(err, "truncated: no end record");
		return -1;
	}
	rd_t r = {rec.data, rec.len, 0, false};
	if (rr == REC_BAD || rec.type != REC_END || rec.len != 16 || get_u64(&r) != e->body_off ||
	    get_u64(&r) != e->body_len) {
		buf_puts(err, "bad end record");
		return -1;
	}
	size_t off = rec.size, good = off;
	uint64_t budget = QF_RESYNC_BUDGET;
	ti->skipped = 0;
	while (off < n) {
		rr = rec_read(p, n, off, &rec);
		if (rr == REC_OK) {
			/* checksum right: it is what we wrote, so it must be valid */
			if (rec.type != REC_STATUS || apply_status(e, &rec) < 0) {
				buf_puts(err, "bad status record");
				return -1;
			}
			off += rec.size;
			good = off;
			continue;
		}
		size_t next = resync(p, n, off + 1, &budget);
		if (next == SIZE_MAX) {
			buf_puts(err, "damaged status records");
			return -1;
		}
		if (next == n)
			break; /* torn tail: ignored */
		ti->skipped += next - off;
		off = next;
	}
	ti->good_len = tail_off + good;
	return 0;
}

static int
decode_mem(const char *cp, size_t n, envelope_t **out, tail_info_t *ti, buf_t *err)
{
	const unsigned char *p = (const unsigned char *)cp;
	envelope_t *e;
	uint64_t boff = 0, blen = 0;
	*out = NULL;
	int h = decode_header(p, n, &e, &boff, &blen, err);
	if (h == HDR_MORE) {
		buf_puts(err, "truncated header");
		return -1;
	}
	if (h == HDR_BAD)
		return -1;
	if (blen > n - boff) {
		buf_puts(err, "truncated content");
		envelope_free(e);
		return -1;
	}
	uint64_t toff = boff + blen;
	if (n - toff > QF_MAX_TAIL) {
		buf_puts(err, "status records too large");
		envelope_free(e);
		return -1;
	}
	if (decode_tail(e, p + toff, n - toff, toff, ti, err) < 0) {
		envelope_free(e);
		return -1;
	}
	*out = e;
	return 0;
}

int
queue_decode(const char *p, size_t n, envelope_t **out, buf_t *err)
{
	tail_info_t ti;
	return decode_mem(p, n, out, &ti, err);
}

/* Load from a file without reading the content: the header is read in
 * growing chunks, then the tail from body_off+body_len to the end. */
static int
load_fd(int fd, envelope_t **out, tail_info_t *ti, uint64_t *file_len, buf_t *err)
{
	struct stat st;
	*out = NULL;
	if (fstat(fd, &st) < 0) {
		buf_printf(err, "fstat: %s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		buf_puts(err, "not a regular file");
		return -1;
	}
	uint64_t size = (uint64_t)st.st_size;
	*file_len = size;
	size_t want = 16384;
	char *hb = NULL;
	envelope_t *e = NULL;
	uint64_t boff = 0, blen = 0;
	for (;;) {
		size_t n = want < size ? want : (size_t)size;
		hb = xrealloc(hb, n + 1);
		ssize_t got = pread_all(fd, hb, n, 0);
		if (got < 0) {
			buf_printf(err, "read: %s", strerror(errno));
			xfree(hb);
			return -1;
		}
		int h = decode_header((unsigned char *)hb, (size_t)got, &e, &boff, &blen, err);
		if (h == HDR_BAD) {
			xfree(hb);
			return -1;
		}
		if (h == HDR_OK)
			break;
		if ((uint64_t)got >= size || (size_t)got < n || want >= QF_MAX_HEADER) {
			buf_puts(err, (uint64_t)got >= size ? "truncated header" : "header too large");
			xfree(hb);
			return -1;
		}
		want *= 4;
	}
	xfree(hb);
	if (blen > size - boff) {
		buf_puts(err, "truncated content");
		envelope_free(e);
		return -1;
	}
	uint64_t toff = boff + blen;
	if (size - toff > QF_MAX_TAIL) {
		buf_puts(err, "status records too large");
		envelope_free(e);
		return -1;
	}
	size_t tn = (size_t)(size - toff);
	char *tb = xmalloc(tn + 1);
	ssize_t got = pread_all(fd, tb, tn, (off_t)toff);
	if (got < 0) {
		buf_printf(err, "read: %s", strerror(errno));
		xfree(tb);
		envelope_free(e);
		return -1;
	}
	int r = decode_tail(e, (unsigned char *)tb, (size_t)got, toff, ti, err);
	xfree(tb);
	if (r < 0) {
		envelope_free(e);
		return -1;
	}
	*out = e;
	return 0;
}

/* The queue ID a path names, when its last component is one. */
static const char *
path_qid(const char *path)
{
	const char *b = strrchr(path, '/');
	b = b ? b + 1 : path;
	return qid_valid(b, strlen(b)) ? b : NULL;
}

static int
load_path(const char *path, envelope_t **out, tail_info_t *ti, uint64_t *file_len,
    buf_t *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		buf_printf(err, "open: %s", strerror(errno));
		return -1;
	}
	int r = load_fd(fd, out, ti, file_len, err);
	close(fd);
	if (r == 0) {
		const char *q = path_qid(path);
		if (q && strcmp(q, (*out)->qid) != 0) {
			buf_puts(err, "queue ID does not match the file name");
			envelope_free(*out);
			*out = NULL;
			return -1;
		}
	}
	return r;
}

int
queue_load(const char *path, envelope_t **out, buf_t *err)
{
	tail_info_t ti;
	uint64_t flen;
	return load_path(path, out, &ti, &flen, err);
}

/* ------------------------------------------------------------------ */
/* Blocking helpers                                                    */

void
queue_path(const char *spool_dir, const char *qid, buf_t *out)
{
	buf_printf(out, "%s/queue/%s", spool_dir, qid);
}

static char *
qpath(const char *spool_dir, const char *sub, const char *qid)
{
	return xasprintf("%s/%s/%s", spool_dir, sub, qid);
}

static pthread_mutex_t append_mu = PTHREAD_MUTEX_INITIALIZER;

int
queue_append_status(const char *spool_dir, const envelope_t *env, const size_t *idx, size_t n,
    bool sync)
{
	if (!qid_valid(env->qid, strnlen(env->qid, QID_SIZE)) ||
	    (env->flags & ~(unsigned)QF_FLAGS_KNOWN) || n > env->nrcpt) {
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (idx[i] >= env->nrcpt || !state_ok_bounds(&env->rcpt[idx[i]])) {
			errno = EINVAL;
			return -1;
		}
	}
	buf_t b = BUF_INIT;
	size_t off = rec_begin(&b, REC_STATUS);
	put_u32(&b, env->flags);
	put_u32(&b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		put_u32(&b, (uint32_t)idx[i]);
		put_state(&b, &env->rcpt[idx[i]]);
	}
	rec_end(&b, off);
	if (b.len - REC_OVH > QF_MAX_REC) {
		buf_free(&b);
		errno = EINVAL;
		return -1;
	}
	char *path = qpath(spool_dir, "queue", env->qid);
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	xfree(path);
	if (fd < 0) {
		buf_free(&b);
		return -1;
	}
	/* Appends are serialized in the process (a remote and a local job may
	 * finish for the same message at once), so undoing a partial write
	 * below can never cut another append off. The sync runs unlocked. */
	pthread_mutex_lock(&append_mu);
	struct stat st;
	int r = fstat(fd, &st);
	bool stat_ok = r == 0;
	if (r == 0)
		r = write_all(fd, b.data, b.len);
	int e = errno;
	if (r < 0 && stat_ok) {
		/* A partial append (ENOSPC, EIO...) would leave a torn record in
		 * the middle of the file once more batches follow: cut it off. */
		if (ftruncate(fd, st.st_size) < 0)
			log_warn("qid=%s status append failed and could not be undone: %s", env->qid,
			    strerror(errno));
	}
	pthread_mutex_unlock(&append_mu);
	if (r == 0 && sync && fdatasync(fd) < 0) {
		r = -1;
		e = errno;
	}
	close(fd);
	buf_free(&b);
	errno = e;
	return r;
}

int
queue_remove(const char *spool_dir, const char *qid)
{
	if (!qid_valid(qid, strnlen(qid, QID_SIZE))) {
		errno = EINVAL;
		return -1;
	}
	char *path = qpath(spool_dir, "queue", qid);
	int r = unlink(path);
	int e = errno;
	xfree(path);
	errno = e;
	return r;
}

int
queue_open_content(const char *spool_dir, const envelope_t *env)
{
	if (!qid_valid(env->qid, strnlen(env->qid, QID_SIZE))) {
		errno = EINVAL;
		return -1;
	}
	char *path = qpath(spool_dir, "queue", env->qid);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int e = errno;
	xfree(path);
	if (fd < 0) {
		errno = e;
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < env->body_off + env->body_len) {
		close(fd);
		errno = EIO; /* shorter than its envelope says: never deliver a part */
		return -1;
	}
	return fd;
}

static int
qid_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Cut a torn status append off, so later appends do not follow garbage. */
static void
scan_repair(const char *path, const char *qid, uint64_t good, uint64_t flen)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || ftruncate(fd, (off_t)good) < 0 || fdatasync(fd) < 0)
		log_warn("qid=%s could not cut a torn status record: %s", qid, strerror(errno));
	else
		log_info("qid=%s ignored a torn status record (%llu bytes)", qid,
		    (unsigned long long)(flen - good));
	if (fd >= 0)
		close(fd);
}

size_t
queue_scan(const char *spool_dir, void (*cb)(void *arg, envelope_t *env), void *arg)
{
	char *qdir = xasprintf("%s/queue", spool_dir);
	DIR *d = opendir(qdir);
	if (d == NULL) {
		log_err("queue: cannot read %s: %s", qdir, strerror(errno));
		xfree(qdir);
		return 0;
	}
	char **names = NULL;
	size_t nn = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (!qid_valid(de->d_name, strlen(de->d_name))) {
			log_warn("queue: ignoring %s/%s: not a queue ID", qdir, de->d_name);
			continue;
		}
		if (nn == cap) {
			cap = cap ? cap * 2 : 64;
			names = xrealloc(names, cap * sizeof *names);
		}
		names[nn++] = xstrdup(de->d_name);
	}
	closedir(d);
	/* IDs start with the arrival time in a base32 alphabet in ASCII order */
	if (nn > 1)
		qsort(names, nn, sizeof *names, qid_cmp);
	size_t loaded = 0;
	bool corrupt_made = false;
	for (size_t i = 0; i < nn; i++) {
		char *path = qpath(spool_dir, "queue", names[i]);
		envelope_t *e = NULL;
		buf_t err = BUF_INIT;
		tail_info_t ti = {0, 0};
		uint64_t flen = 0;
		if (load_path(path, &e, &ti, &flen, &err) == 0) {
			if (ti.skipped)
				log_warn("qid=%s skipped %llu bytes of damaged status records", names[i],
				    (unsigned long long)ti.skipped);
			if (ti.good_len < flen)
				scan_repair(path, names[i], ti.good_len, flen);
			cb(arg, e);
			loaded++;
		} else {
			if (!corrupt_made) {
				char *cdir = xasprintf("%s/corrupt", spool_dir);
				(void)mkdir_p(cdir, 0700);
				xfree(cdir);
				corrupt_made = true;
			}
			char *to = qpath(spool_dir, "corrupt", names[i]);
			if (rename(path, to) == 0)
				log_warn("qid=%s queue file refused (%s): moved to %s", names[i],
				    buf_cstr(&err), to);
			else
				log_err("qid=%s queue file refused (%s), and not moved to %s: %s",
				    names[i], buf_cstr(&err), to, strerror(errno));
			xfree(to);
		}
		buf_free(&err);
		xfree(path);
		xfree(names[i]);
	}
	xfree(names);
	xfree(qdir);
	return loaded;
}

/* ------------------------------------------------------------------ */
/* The queue object and group commit                                   */

struct queue {
	uv_loop_t *loop;
	char *spool;
	char *incoming;
	int qdir_fd; /* queue/, fsync'd by group commit */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t gen_started; /* directory fsyncs started */
	uint64_t gen_done;    /* the last one finished */
	uint64_t fail_gen;    /* the last one that failed (0: none) */
	int fail_err;
	bool syncing;
	unsigned inflight; /* commits running (loop thread only) */
};

struct qmsg {
	queue_t *q;
	envelope_t *env;
	buf_t data;          /* bytes not yet written: header + content, or content */
	size_t info_off;     /* offsets of the records patched at commit */
	size_t body_rec_off;
	uint64_t hdr_len;    /* = body_off */
	uint64_t size;       /* content bytes */
	int fd;              /* incoming file once spilled, else -1 */
	bool created;        /* we created in_path (so we may unlink it) */
	int err;             /* first errno, 0 if none */
	char *in_path, *q_path;
	uv_work_t work;
	queue_commit_cb cb;
	void *cb_arg;
};

/*
 * Make every rename done before this call durable: fsync queue/ once for
 * all the commits waiting. A caller needs an fsync that *started* after its
 * rename: generation gen_started+1 or later. One thread at a time fsyncs;
 * the others wait for gen_done to reach their target. See docs/queue.md.
 */
static int
group_sync_dir(queue_t *q)
{
	pthread_mutex_lock(&q->mu);
	uint64_t target = q->gen_started + 1;
	while (q->gen_done < target) {
		if (q->syncing) {
			pthread_cond_wait(&q->cv, &q->mu);
			continue;
		}
		uint64_t gen = ++q->gen_started;
		q->syncing = true;
		pthread_mutex_unlock(&q->mu);
		int r = fsync(q->qdir_fd);
		int e = errno;
		pthread_mutex_lock(&q->mu);
		q->syncing = false;
		q->gen_done = gen;
		if (r < 0) {
			q->fail_gen = gen;
			q->fail_err = e;
		}
		pthread_cond_broadcast(&q->cv);
	}
	/* conservative: fail if the covering fsync or any later one failed
	 * (after a failed fsync Linux may report later ones as clean) */
	int err = q->fail_gen >= target ? q->fail_err : 0;
	pthread_mutex_unlock(&q->mu);
	return err;
}

static void
remove_incoming_all(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return;
	struct dirent *de;
	int dfd = dirfd(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dfd, de->d_name, 0) < 0)
			log_warn("queue: cannot remove %s/%s: %s", dir, de->d_name, strerror(errno));
		else
			log_info("queue: removed half-received %s/%s", dir, de->d_name);
	}
	closedir(d);
}

queue_t *
queue_open(uv_loop_t *loop, const char *spool_dir, buf_t *err)
{
	static const char *const subs[] = {"incoming", "queue", "corrupt"};
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) {
		char *p = xasprintf("%s/%s", spool_dir, subs[i]);
		if (mkdir_p(p, 0700) < 0) {
			buf_printf(err, "queue: cannot create %s: %s", p, strerror(errno));
			xfree(p);
			return NULL;
		}
		xfree(p);
	}
	queue_t *q = xcalloc(1, sizeof *q);
	q->loop = loop;
	q->spool = xstrdup(spool_dir);
	q->incoming = xasprintf("%s/incoming", spool_dir);
	char *qd = xasprintf("%s/queue", spool_dir);
	q->qdir_fd = open(qd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->qdir_fd < 0) {
		buf_printf(err, "queue: cannot open %s: %s", qd, strerror(errno));
		xfree(qd);
		xfree(q->incoming);
		xfree(q->spool);
		xfree(q);
		return NULL;
	}
	xfree(qd);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	remove_incoming_all(q->incoming);
	return q;
}

void
queue_close(queue_t *q)
{
	if (q == NULL)
		return;
	if (q->inflight)
		log_err("queue: closed with %u commits in flight", q->inflight);
	close(q->qdir_fd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	xfree(q->incoming);
	xfree(q->spool);
	xfree(q);
}

const char *
queue_spool_dir(const queue_t *q)
{
	return q->spool;
}

qmsg_t *
queue_begin(queue_t *q, const envelope_t *env)
{
	qmsg_t *m = xcalloc(1, sizeof *m);
	m->q = q;
	m->fd = -1;
	m->env = envelope_dup(env);
	const char *why = env_check(m->env);
	if (why) {
		/* refuse now what could not be read back: never queue a file
		 * that queue_scan would move to corrupt/ */
		log_warn("qid=%.16s cannot queue: %s", env->qid, why);
		m->err = EINVAL;
		return m;
	}
	m->in_path = qpath(q->spool, "incoming", m->env->qid);
	m->q_path = qpath(q->spool, "queue", m->env->qid);
	encode_header(&m->data, m->env, 0, &m->info_off, &m->body_rec_off);
	m->hdr_len = m->data.len;
	return m;
}

/* Spill or flush the buffer to the incoming file (loop thread, no sync). */
static int
flush_data(qmsg_t *m)
{
	if (m->fd < 0) {
		m->fd = open(m->in_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd < 0) {
			m->err = errno;
			return -1;
		}
		m->created = true;
	}
	if (write_all(m->fd, m->data.data, m->data.len) < 0) {
		m->err = errno;
		return -1;
	}
	buf_reset(&m->data);
	return 0;
}

int
queue_write(qmsg_t *m, const void *p, size_t n)
{
	if (m->err) {
		errno = m->err;
		return -1;
	}
	if (n > QF_MAX_BODY - m->size) {
		m->err = EFBIG;
		errno = m->err;
		return -1;
	}
	buf_append(&m->data, p, n);
	m->size += n;
	if (m->data.len > QUEUE_MEM_MAX && flush_data(m) < 0) {
		errno = m->err;
		return -1;
	}
	return 0;
}

uint64_t
queue_size(const qmsg_t *m)
{
	return m->size;
}

static void
qmsg_free(qmsg_t *m)
{
	if (m->fd >= 0)
		close(m->fd);
	buf_free(&m->data);
	envelope_free(m->env);
	xfree(m->in_path);
	xfree(m->q_path);
	xfree(m);
}

void
queue_abort(qmsg_t *m)
{
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	if (m->created)
		(void)unlink(m->in_path);
	qmsg_free(m);
}

/* Worker thread: write, sync, rename, group directory sync. */
static void
commit_work(uv_work_t *w)
{
	qmsg_t *m = w->data;
	int err = m->err;
	bool renamed = false;
	if (err)
		goto fail;
	/* the two fixed-size records that could not be known at begin */
	buf_t fix = BUF_INIT;
	put_info(&fix, m->env);
	put_body_rec(&fix, m->size);
	put_end_rec(&m->data, m->hdr_len, m->size);
	if (m->fd < 0) {
		/* small message: header, content and end in one write */
		memcpy(m->data.data + m->info_off, fix.data, INFO_REC_LEN);
		memcpy(m->data.data + m->body_rec_off, fix.data + INFO_REC_LEN, BODY_REC_LEN);
		buf_free(&fix);
		m->fd = open(m->in_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (m->fd >= 0)
			m->created = true;
		if (m->fd < 0 || write_all(m->fd, m->data.data, m->data.len) < 0) {
			err = errno;
			goto fail;
		}
	} else {
		int r = write_all(m->fd, m->data.data, m->data.len);
		if (r == 0)
			r = pwrite_all(m->fd, fix.data, INFO_REC_LEN, (off_t)m->info_off);
		if (r == 0)
			r = pwrite_all(m->fd, fix.data + INFO_REC_LEN, BODY_REC_LEN,
			    (off_t)m->body_rec_off);
		buf_free(&fix);
		if (r < 0) {
			err = errno;
			goto fail;
		}
	}
	/* data and the size (what is needed to read it back): fdatasync */
	if (fdatasync(m->fd) < 0) {
		err = errno;
		goto fail;
	}
	int fd = m->fd;
	m->fd = -1;
	if (close(fd) < 0) {
		err = errno;
		goto fail;
	}
	/* never replace an existing queue file (a queue ID reused by mistake) */
	if (renameat2(AT_FDCWD, m->in_path, AT_FDCWD, m->q_path, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL && errno != ENOSYS) {
			err = errno;
			goto fail;
		}
		/* file system without RENAME_NOREPLACE: link fails on EEXIST */
		if (link(m->in_path, m->q_path) < 0) {
			err = errno;
			goto fail;
		}
		(void)unlink(m->in_path);
	}
	renamed = true;
	err = group_sync_dir(m->q);
	if (err)
		goto fail;
	m->err = 0;
	return;
fail:
	if (m->fd >= 0) {
		close(m->fd);
		m->fd = -1;
	}
	if (m->created)
		(void)unlink(m->in_path);
	/* the rename may or may not survive a crash: at worst the message is
	 * delivered although the client was told 4xx and sends it again */
	if (renamed)
		(void)unlink(m->q_path);
	m->err = err ? err : EIO;
}

static void
commit_done(uv_work_t *w, int status)
{
	qmsg_t *m = w->data;
	queue_t *q = m->q;
	q->inflight--;
	int err = status < 0 ? EIO : m->err;
	queue_commit_cb cb = m->cb;
	void *arg = m->cb_arg;
	envelope_t *env = NULL;
	if (err == 0) {
		env = m->env;
		m->env = NULL;
		env->body_off = m->hdr_len;
		env->body_len = m->size;
	} else {
		log_warn("qid=%s queue commit failed: %s", m->env ? m->env->qid : "?", strerror(err));
	}
	qmsg_free(m);
	cb(arg, err, env);
}

void
queue_commit(qmsg_t *m, queue_commit_cb cb, void *arg)
{
	m->cb = cb;
	m->cb_arg = arg;
	if (m->err == 0 && m->env->arrival_us == 0) {
		/* arrival = end of DATA/BDAT when the server did not set it */
		struct timeval tv;
		gettimeofday(&tv, NULL);
		m->env->arrival_us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
	}
	m->work.data = m;
	m->q->inflight++;
	int r = uv_queue_work(m->q->loop, &m->work, commit_work, commit_done);
	if (r < 0) {
		/* cannot happen with a valid loop; run synchronously rather than lose it */
		commit_work(&m->work);
		commit_done(&m->work, 0);
	}
}
