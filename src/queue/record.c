/*
 * record.c - PERSIST: the queue file's record codec (see record.h for the
 * format and the contract, docs/queue.md for the full description).
 *
 * What it guarantees: every record is framed (type, length) and
 * checksummed (CRC-32); the header's records come in a fixed order; every
 * length is bounded and every field validated, so the decoder accepts only
 * what the encoder can write. A damaged status batch is a torn append:
 * skipped or ignored, never a reason to lose the message.
 *
 * What it must not do: I/O of any kind (queue.c reads and writes the
 * files), or trust any byte it decodes. fuzz/fuzz_queue.c feeds it
 * arbitrary bytes.
 */
#include "queue/record.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/qid.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

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
/* ENV_REQUIRETLS and ENV_TLS_OPTIONAL came later (RFC 8689): a file written
 * before them has neither bit set and reads as before */
#define QF_FLAGS_KNOWN (ENV_IS_BOUNCE | ENV_DELAY_WARNED | ENV_HELD | ENV_PM_NOTICE | \
    ENV_REQUIRETLS | ENV_TLS_OPTIONAL)
#define QF_NOTIFY_KNOWN 0x0fu
#define QF_NULL_STR 0xffffffffu

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

void
qrec_put_info(buf_t *b, const envelope_t *e)
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

void
qrec_put_body(buf_t *b, uint64_t len)
{
	size_t off = rec_begin(b, REC_BODY);
	put_u64(b, len);
	rec_end(b, off);
}

void
qrec_put_end(buf_t *b, uint64_t body_off, uint64_t body_len)
{
	size_t off = rec_begin(b, REC_END);
	put_u64(b, body_off);
	put_u64(b, body_len);
	rec_end(b, off);
}

/* Header: magic .. 'B' record. *info_off and *body_rec_off locate the two
 * fixed-size records patched at commit (arrival time, content length). */
void
qrec_encode_header(buf_t *b, const envelope_t *e, uint64_t body_len, size_t *info_off,
    size_t *body_rec_off)
{
	buf_append(b, QF_MAGIC, QF_MAGIC_LEN);
	size_t off = rec_begin(b, REC_QID);
	buf_append(b, e->qid, QID_LEN);
	rec_end(b, off);
	if (info_off)
		*info_off = b->len;
	qrec_put_info(b, e);
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
		if (r->sender) /* optional, last: files without it read as before */
			put_str(b, r->sender);
		rec_end(b, off);
	}
	if (body_rec_off)
		*body_rec_off = b->len;
	qrec_put_body(b, body_len);
}

void
queue_encode(const envelope_t *env, const char *content, size_t n, buf_t *out)
{
	size_t start = out->len;
	qrec_encode_header(out, env, n, NULL, NULL);
	uint64_t body_off = out->len - start;
	buf_append(out, content, n);
	qrec_put_end(out, body_off, n);
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
const char *
qrec_env_check(const envelope_t *e)
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
		if (!cstr_ok(r->sender, QF_MAX_ADDR, false, true))
			return "bad recipient sender";
		if (r->notify & ~QF_NOTIFY_KNOWN)
			return "bad NOTIFY";
		if (!state_ok(r))
			return "bad recipient state";
	}
	return NULL;
}

/* One status batch: validated like the header, then framed. */
int
qrec_encode_status(buf_t *b, const envelope_t *env, const size_t *idx, size_t n)
{
	if ((env->flags & ~(unsigned)QF_FLAGS_KNOWN) || n > env->nrcpt)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (idx[i] >= env->nrcpt || !state_ok_bounds(&env->rcpt[idx[i]]))
			return -1;
	size_t start = b->len;
	size_t off = rec_begin(b, REC_STATUS);
	put_u32(b, env->flags);
	put_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		put_u32(b, (uint32_t)idx[i]);
		put_state(b, &env->rcpt[idx[i]]);
	}
	rec_end(b, off);
	if (b->len - start - REC_OVH > QF_MAX_REC)
		return -1;
	return 0;
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

/*
 * The header's records, one function each (qrec_decode_header() below walks
 * them in order). Each returns NULL when the record is good and fills in e,
 * else why not.
 */

/* 'Q': the queue ID */
static const char *
hdr_qid(envelope_t *e, const rec_t *rec)
{
	if (rec->type != REC_QID || rec->len != QID_LEN ||
	    !qid_valid((const char *)rec->data, rec->len))
		return "bad queue ID record";
	memcpy(e->qid, rec->data, QID_LEN);
	e->qid[QID_LEN] = '\0';
	return NULL;
}

/* 'I': arrival, RET, BODY, SMTPUTF8, flags and the number of recipients */
static const char *
hdr_info(envelope_t *e, const rec_t *rec, uint32_t *nrcpt)
{
	if (rec->type != REC_INFO || rec->len != QREC_INFO_LEN - REC_OVH)
		return "bad info record";
	rd_t r = {rec->data, rec->len, 0, false};
	uint64_t arr = get_u64(&r);
	unsigned ret = get_u8(&r), body = get_u8(&r), utf8 = get_u8(&r);
	uint32_t flags = get_u32(&r);
	*nrcpt = get_u32(&r);
	if (r.bad || arr > (uint64_t)QF_MAX_TIME * 1000000u || ret > RET_HDRS ||
	    body > BODY_BINARYMIME || utf8 > 1 || (flags & ~(uint32_t)QF_FLAGS_KNOWN) ||
	    *nrcpt == 0 || *nrcpt > QF_MAX_RCPT)
		return "bad info record";
	e->arrival_us = (int64_t)arr;
	e->ret = (int)ret;
	e->body = (int)body;
	e->smtputf8 = utf8 != 0;
	e->flags = flags;
	return NULL;
}

/* optional E, C, H, A: their rank in that order, 0 for any other record */
static int
hdr_opt_pos(int type)
{
	return type == REC_ENVID ? 1 : type == REC_CLIENT ? 2 : type == REC_HELO ? 3 :
	    type == REC_AUTH ? 4 : 0;
}

/* one optional record, each at most once and in order (*last_opt: the rank
 * of the previous one) */
static const char *
hdr_opt(envelope_t *e, const rec_t *rec, int *last_opt)
{
	int pos = hdr_opt_pos(rec->type);
	if (pos <= *last_opt)
		return "optional record out of order";
	*last_opt = pos;
	char *s = data_text(rec->data, rec->len, QF_MAX_TEXT, true);
	if (s == NULL)
		return "bad text record";
	char **slot = rec->type == REC_ENVID ? &e->envid :
	    rec->type == REC_CLIENT ? &e->client_addr :
	    rec->type == REC_HELO ? &e->client_helo : &e->auth_user;
	*slot = s;
	return NULL;
}

/* 'R': one recipient, its NOTIFY, ORCPT and delivery state */
static const char *
hdr_rcpt(envelope_t *e, const rec_t *rec)
{
	rd_t r = {rec->data, rec->len, 0, false};
	uint32_t notify = get_u32(&r);
	char *addr = get_text(&r, QF_MAX_ADDR, false, false);
	char *orig = get_text(&r, QF_MAX_ADDR, true, true);
	char *orcpt = get_text(&r, QF_MAX_ADDR, true, true);
	if (!r.bad) {
		env_rcpt_t *t = envelope_add_rcpt(e, addr, orig, orcpt, notify);
		get_state(&r, t);
		/* the recipient's own sender (SRS), when the record goes on */
		if (!r.bad && r.off < r.n)
			t->sender = get_text(&r, QF_MAX_ADDR, false, false);
	}
	xfree(addr);
	xfree(orig);
	xfree(orcpt);
	if (r.bad || r.off != r.n || (notify & ~QF_NOTIFY_KNOWN))
		return "bad recipient record";
	return NULL;
}

/* 'B' at off, which ends the header: the content's length; the whole
 * envelope is checked before *body_off, *body_len are set */
static const char *
hdr_body(envelope_t *e, const rec_t *rec, size_t off, uint64_t *body_off, uint64_t *body_len)
{
	rd_t r = {rec->data, rec->len, 0, false};
	uint64_t bl = get_u64(&r);
	if (bl > QF_MAX_BODY)
		return "bad body record";
	const char *bad = qrec_env_check(e);
	if (bad)
		return bad;
	*body_off = off + rec->size;
	*body_len = bl;
	e->body_off = *body_off;
	e->body_len = bl;
	return NULL;
}

/*
 * Parse magic .. 'B' record from p[0..n). QREC_HDR_MORE when n ends inside the
 * header (the caller may have more bytes). On QREC_HDR_OK, *envp is the envelope
 * and *body_off, *body_len say where the content lies.
 */
int
qrec_decode_header(const unsigned char *p, size_t n, envelope_t **envp, uint64_t *body_off,
    uint64_t *body_len, buf_t *err)
{
	*envp = NULL;
	size_t m = n < QF_MAGIC_LEN ? n : QF_MAGIC_LEN;
	if (memcmp(p, QF_MAGIC, m) != 0) {
		if (n >= 11 && memcmp(p, "tern-queue ", 11) == 0)
			buf_puts(err, "unsupported queue file version");
		else
			buf_puts(err, "not a queue file (bad magic)");
		return QREC_HDR_BAD;
	}
	if (n < QF_MAGIC_LEN)
		return QREC_HDR_MORE;
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
			return QREC_HDR_MORE;
		}
		if (rr == REC_BAD) {
			why = "bad record checksum in header";
			break;
		}
		switch (st) {
		case S_QID:
			why = hdr_qid(e, &rec);
			st = S_INFO;
			break;
		case S_INFO:
			why = hdr_info(e, &rec, &nrcpt);
			st = S_FROM;
			break;
		case S_FROM:
			if (rec.type != REC_FROM ||
			    (e->sender = data_text(rec.data, rec.len, QF_MAX_ADDR, true)) == NULL)
				why = "bad sender record";
			st = S_OPT;
			break;
		case S_OPT:
			if (hdr_opt_pos(rec.type)) {
				why = hdr_opt(e, &rec, &last_opt);
				break;
			}
			st = S_RCPT;
			/* FALLTHROUGH */
		case S_RCPT:
			if (rec.type == REC_RCPT && e->nrcpt < nrcpt) {
				why = hdr_rcpt(e, &rec);
			} else if (rec.type == REC_BODY && e->nrcpt == nrcpt && rec.len == 8) {
				why = hdr_body(e, &rec, off, body_off, body_len);
				if (why == NULL) {
					*envp = e;
					return QREC_HDR_OK;
				}
			} else {
				why = e->nrcpt < nrcpt ? "missing recipient records" :
				    "unexpected record in header";
			}
			break;
		}
		if (why)
			break;
		off += rec.size;
	}
	buf_puts(err, why);
	envelope_free(e);
	return QREC_HDR_BAD;
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
int
qrec_decode_tail(envelope_t *e, const unsigned char *p, size_t n, uint64_t tail_off,
    qrec_tail_t *ti, buf_t *err)
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
decode_mem(const char *cp, size_t n, envelope_t **out, qrec_tail_t *ti, buf_t *err)
{
	const unsigned char *p = (const unsigned char *)cp;
	envelope_t *e;
	uint64_t boff = 0, blen = 0;
	*out = NULL;
	int h = qrec_decode_header(p, n, &e, &boff, &blen, err);
	if (h == QREC_HDR_MORE) {
		buf_puts(err, "truncated header");
		return -1;
	}
	if (h == QREC_HDR_BAD)
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
	if (qrec_decode_tail(e, p + toff, n - toff, toff, ti, err) < 0) {
		envelope_free(e);
		return -1;
	}
	*out = e;
	return 0;
}

int
queue_decode(const char *p, size_t n, envelope_t **out, buf_t *err)
{
	qrec_tail_t ti;
	return decode_mem(p, n, out, &ti, err);
}
