/*
 * smtp_client.c - one outbound SMTP/LMTP session over a conn_t (see
 * smtp_client.h for the events and docs/outbound.md for the state machine
 * and the error policy).
 *
 * States: CONNECTING -> GREETING -> EHLO [-> STARTTLS -> TLS -> EHLO]
 * [-> HELO] -> IDLE <-> TXN [-> RSET] and QUIT / CLOSING from anywhere. Within a transaction the replies still
 * awaited are a FIFO of "expectations" (MAIL, RCPT i, DATA, DOT ...): without
 * PIPELINING it never holds more than one, with PIPELINING (RFC 2920) the
 * MAIL, every RCPT and DATA are sent in one write and their replies are
 * matched in order.
 *
 * Guarantees: every recipient of a transaction ends with exactly one
 * outcome; the only place a reply code becomes an outcome is smtp_decide();
 * a connection-level failure is reported to the owner only from the
 * conn's CLOSED event (DONE, then CLOSED), so the owner never sees the
 * session vanish inside one of its own calls. The content is never held in
 * memory beyond one 64 KiB chunk: the next chunk is read only when the
 * previous one has left our buffers (CONN_EV_DRAINED).
 * Must not: send the final dot for content that could not be read whole
 * (the session is then dropped, so the server discards the message).
 */
#include "deliver/smtp_client.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "common/addr.h"
#include "common/recent.h"
#include "deliver/mime8to7.h"
#include "lib/conn.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/xalloc.h"

#define CHUNK 65536
#define CONVERT_MAX (256u << 20) /* largest content made 7-bit in memory */
#define CLIENT_MAX_INPUT (SMTP_REPLY_MAX_LINE * 32)
#define REPLY_TEXT_MAX 900

enum cstate {
	CS_CONNECTING,
	CS_GREETING,
	CS_EHLO,
	CS_STARTTLS, /* waiting for the reply to STARTTLS */
	CS_TLS,      /* handshake */
	CS_HELO,
	CS_AUTH,       /* waiting for 235 */
	CS_AUTH_USER,  /* AUTH LOGIN: waiting for the 334 that asks for the user name */
	CS_AUTH_PASS,  /* AUTH LOGIN: waiting for the 334 that asks for the password */
	CS_IDLE,
	CS_TXN,
	CS_RSET,
	CS_QUIT,
	CS_CLOSING,
};

enum ex_kind {
	EX_MAIL,
	EX_RCPT,
	EX_DATA,
	EX_DOT,         /* SMTP: one final reply for every accepted recipient */
	EX_DOT_RCPT,    /* LMTP: the final reply for recipient i (RFC 2033 §4.2) */
	EX_DOT_DISCARD, /* the "." we send after 354 when nobody was accepted */
};

struct expect {
	enum ex_kind kind;
	size_t i;
};

struct smtp_client {
	uv_loop_t *loop;
	conn_t *conn;
	smtp_client_options_t o;
	char *helo_name;
	char *host;
	char *relay;
	smtp_client_cb cb;
	void *arg;
	enum cstate st;
	smtp_reply_t reply;
	unsigned ext;
	uint64_t max_size;
	bool ready;
	buf_t err;
	int err_outcome;
	bool tls_on;     /* STARTTLS done */
	bool tls_failed; /* the handshake failed */
	bool unreachable; /* connect failed or timed out, or no greeting came in time */
	bool dane_on;    /* the handshake runs with TLSA records (tls_dane_setup) */
	const char *tls_auth; /* smtp_client_tls_auth() */
	int rpt;              /* smtp_client_tlsrpt(): 0 nothing, 1 success, -1 failure */
	const char *rpt_type; /* its RFC 8460 result type */
	char rpt_reason[160];
	char rpt_local[64];   /* our address on the session (sending-mta-ip) */
	char tls_info[96];

	/* the transaction */
	smtp_txn_t *txn;
	struct expect *ex;
	size_t ex_head, ex_tail, ex_cap;
	bool *accepted;
	size_t naccepted;
	bool mail_failed;
	bool need_rset;
	bool bdat;
	enum smtp_stage stage; /* for failure texts */
	/* content */
	bool sending;
	uint64_t sent;
	char prev;
	char *chunk;
	buf_t out;
	buf_t conv;     /* the content made 7-bit (mime8to7.h) when converted */
	bool converted; /* ... then sent from conv instead of the file */
	bool detached; /* the owner has had CLOSED: only the conn holds us */
};

static void
default_timeout(unsigned *v, unsigned def)
{
	if (*v == 0)
		*v = def;
}

static unsigned
tmo_ms(unsigned v)
{
	return v * 1000u;
}

void
smtp_txn_clear(smtp_txn_t *t)
{
	if (!t->res)
		return;
	for (size_t i = 0; i < t->n; i++) {
		xfree(t->res[i].reply);
		t->res[i].reply = NULL;
		t->res[i].outcome = SMTP_UNDECIDED;
	}
}

/* The reply rules are outcome.c's (outcome_smtp_kind). */
enum smtp_outcome
smtp_decide(enum smtp_stage stage, int code)
{
	return (enum smtp_outcome)outcome_smtp_kind((enum outcome_stage)stage, code);
}

static const char *
stage_name(enum smtp_stage s)
{
	switch (s) {
	case SMTP_STAGE_CONNECT: return "connect";
	case SMTP_STAGE_GREETING: return "greeting";
	case SMTP_STAGE_HELO: return "EHLO";
	case SMTP_STAGE_MAIL: return "MAIL FROM";
	case SMTP_STAGE_RCPT: return "RCPT TO";
	case SMTP_STAGE_DATA: return "DATA";
	case SMTP_STAGE_CONTENT: return "message content";
	case SMTP_STAGE_DOT: return "end of data";
	case SMTP_STAGE_RSET: return "RSET";
	case SMTP_STAGE_QUIT: return "QUIT";
	case SMTP_STAGE_STARTTLS: return "STARTTLS";
	}
	return "?";
}

/* default enhanced code for a reply that came without one (RFC 3463 §3) */
static const char *
default_esc(enum smtp_stage stage, int code)
{
	int cls = code / 100;
	if (cls != 4 && cls != 5)
		return cls == 2 ? "2.0.0" : "4.5.0";
	switch (stage) {
	case SMTP_STAGE_MAIL: return cls == 4 ? "4.1.0" : "5.1.0";   /* sender status */
	case SMTP_STAGE_RCPT: return cls == 4 ? "4.1.0" : "5.1.0";   /* recipient status */
	case SMTP_STAGE_DATA:
	case SMTP_STAGE_DOT: return cls == 4 ? "4.6.0" : "5.6.0";    /* content */
	default: return cls == 4 ? "4.0.0" : "5.0.0";
	}
}

/* The reply as stored text: "550 5.1.1 ...". A reply of a class that does
 * not match the outcome (a protocol error) is stored as a 451 with the
 * server's words after it, so the code always says what happened. */
static char *
reply_text(smtp_client_t *c, enum smtp_stage stage, enum smtp_outcome oc)
{
	buf_t b = BUF_INIT;
	int cls = c->reply.code / 100;
	if ((oc == SMTP_TEMPFAIL && cls != 4) || (oc == SMTP_PERMFAIL && cls != 5)) {
		buf_printf(&b, "451 4.5.0 unexpected reply to %s from %s: ", stage_name(stage),
		    c->relay);
		smtp_reply_format(&c->reply, NULL, REPLY_TEXT_MAX, &b);
	} else {
		smtp_reply_format(&c->reply, default_esc(stage, c->reply.code), REPLY_TEXT_MAX, &b);
	}
	return buf_steal(&b);
}

static void
set_result(smtp_client_t *c, size_t i, enum smtp_outcome oc, const char *text)
{
	smtp_result_t *r = &c->txn->res[i];
	if (r->outcome != SMTP_UNDECIDED)
		return;
	r->outcome = oc;
	xfree(r->reply);
	r->reply = xstrdup(text);
}

/* Record why the session failed (the first reason wins) and close. */
static void
session_fail(smtp_client_t *c, int outcome, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
session_fail(smtp_client_t *c, int outcome, const char *fmt, ...)
{
	if (c->err.len == 0) {
		va_list ap;
		va_start(ap, fmt);
		buf_vprintf(&c->err, fmt, ap);
		va_end(ap);
		c->err_outcome = outcome;
	}
	c->st = CS_CLOSING;
	c->sending = false;
	/* a failed session owes the peer nothing: close now rather than wait
	 * (up to 2 s) for a peer that may be the reason we failed */
	conn_abort(c->conn, UV_ECONNABORTED);
}

/* A session-level failure (connect, timeout, TLS that the policy requires,
 * AUTH, the connection lost, ...): its fate is outcome_session's. */
static void
session_trouble(smtp_client_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
session_trouble(smtp_client_t *c, const char *fmt, ...)
{
	buf_t b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	outcome_t oc;
	outcome_session(&oc, buf_cstr(&b));
	session_fail(c, oc.kind, "%s", oc.text);
	buf_free(&b);
}

/* c->err has just been given a session-level reason (TLS handshake failed,
 * connection lost, aborted): its outcome is outcome_session's. */
static void
err_is_trouble(smtp_client_t *c)
{
	outcome_t oc;
	outcome_session(&oc, buf_cstr(&c->err));
	c->err_outcome = (int)oc.kind;
}

static void
set_timeout(smtp_client_t *c, unsigned sec)
{
	conn_set_timeout(c->conn, tmo_ms(sec));
}

static void
emit(smtp_client_t *c, enum smtp_client_ev ev)
{
	if (c->detached)
		return;
	c->cb(c, ev, c->arg);
}

/* ---- EHLO ---- */

static bool
kw_is(const char *p, size_t n, const char *kw, const char **rest, size_t *rn)
{
	size_t k = strlen(kw);
	if (n < k || strncasecmp(p, kw, k) != 0)
		return false;
	if (n > k && p[k] != ' ')
		return false;
	*rest = n > k ? p + k + 1 : p + n;
	*rn = n > k ? n - k - 1 : 0;
	return true;
}

/* "prefix" + base64(p[0..n)) + CRLF (RFC 4954 §4) */
static void
send_b64(smtp_client_t *c, const char *prefix, const unsigned char *p, size_t n)
{
	buf_t b = BUF_INIT;
	buf_puts(&b, prefix);
	buf_reserve(&b, 4 * ((n + 2) / 3) + 3);
	int k = EVP_EncodeBlock((unsigned char *)b.data + b.len, p, (int)n);
	b.len += (size_t)k;
	buf_append(&b, "\r\n", 2);
	conn_write(c->conn, b.data, b.len);
	explicit_bzero(b.data, b.len);
	buf_free(&b);
}

/* After EHLO (under TLS): authenticate to the server. */
static void
auth_start(smtp_client_t *c)
{
	set_timeout(c, c->o.t.helo);
	if (c->ext & SMTP_EXT_AUTH_PLAIN) {
		/* RFC 4616: authzid NUL authcid NUL passwd */
		size_t ul = strlen(c->o.auth_user), pl = strlen(c->o.auth_pass);
		unsigned char *m = xmalloc(ul + pl + 2);
		m[0] = '\0';
		memcpy(m + 1, c->o.auth_user, ul);
		m[1 + ul] = '\0';
		memcpy(m + 2 + ul, c->o.auth_pass, pl);
		send_b64(c, "AUTH PLAIN ", m, ul + pl + 2);
		explicit_bzero(m, ul + pl + 2);
		xfree(m);
		c->st = CS_AUTH;
	} else {
		conn_write(c->conn, "AUTH LOGIN\r\n", 12);
		c->st = CS_AUTH_USER;
	}
}

static void
parse_ehlo(smtp_client_t *c)
{
	c->ext = 0;
	c->max_size = 0;
	/* line 0 is the server's name and greeting; then one keyword a line */
	for (size_t i = 1; i < c->reply.nlines; i++) {
		const char *p, *rest;
		size_t n, rn;
		if (!smtp_reply_line(&c->reply, i, &p, &n))
			break;
		if (kw_is(p, n, "PIPELINING", &rest, &rn))
			c->ext |= SMTP_EXT_PIPELINING;
		else if (kw_is(p, n, "8BITMIME", &rest, &rn))
			c->ext |= SMTP_EXT_8BITMIME;
		else if (kw_is(p, n, "SMTPUTF8", &rest, &rn))
			c->ext |= SMTP_EXT_SMTPUTF8;
		else if (kw_is(p, n, "DSN", &rest, &rn))
			c->ext |= SMTP_EXT_DSN;
		else if (kw_is(p, n, "CHUNKING", &rest, &rn))
			c->ext |= SMTP_EXT_CHUNKING;
		else if (kw_is(p, n, "BINARYMIME", &rest, &rn))
			c->ext |= SMTP_EXT_BINARYMIME;
		else if (kw_is(p, n, "STARTTLS", &rest, &rn))
			c->ext |= SMTP_EXT_STARTTLS;
		else if (kw_is(p, n, "AUTH", &rest, &rn)) {
			/* RFC 4954 §3: AUTH mechanism-list */
			for (size_t k = 0; k < rn;) {
				while (k < rn && rest[k] == ' ')
					k++;
				size_t w = k;
				while (k < rn && rest[k] != ' ')
					k++;
				if (k - w == 5 && strncasecmp(rest + w, "PLAIN", 5) == 0)
					c->ext |= SMTP_EXT_AUTH_PLAIN;
				else if (k - w == 5 && strncasecmp(rest + w, "LOGIN", 5) == 0)
					c->ext |= SMTP_EXT_AUTH_LOGIN;
			}
		}
		else if (kw_is(p, n, "ENHANCEDSTATUSCODES", &rest, &rn))
			c->ext |= SMTP_EXT_ENHANCEDSTATUSCODES;
		else if (kw_is(p, n, "REQUIRETLS", &rest, &rn))
			c->ext |= SMTP_EXT_REQUIRETLS;
		else if (kw_is(p, n, "SIZE", &rest, &rn)) {
			/* RFC 1870 §4: "SIZE" [SP number]; 0 or none: no fixed limit */
			uint64_t v = 0;
			size_t k = 0;
			while (k < rn && rest[k] >= '0' && rest[k] <= '9' && k < 19)
				v = v * 10 + (uint64_t)(rest[k++] - '0');
			c->ext |= SMTP_EXT_SIZE;
			c->max_size = (k > 0 && k == rn) ? v : 0;
		}
	}
}

static void
send_helo(smtp_client_t *c, const char *verb)
{
	conn_printf(c->conn, "%s %s\r\n", verb, c->helo_name);
	set_timeout(c, c->o.t.helo);
}

static void
become_idle(smtp_client_t *c)
{
	c->st = CS_IDLE;
	conn_set_timeout(c->conn, 0);
}

/* ---- transactions ---- */

static void
push(smtp_client_t *c, enum ex_kind k, size_t i)
{
	if (c->ex_tail >= c->ex_cap)
		abort(); /* sized in smtp_client_send: cannot happen */
	c->ex[c->ex_tail].kind = k;
	c->ex[c->ex_tail].i = i;
	c->ex_tail++;
}

static void
xtext_put(buf_t *b, const char *s, size_t n)
{
	/* RFC 3461 §4: xchar is "!".."~" except "+" and "="; others "+HH" */
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < '!' || ch > '~' || ch == '+' || ch == '=')
			buf_printf(b, "+%02X", ch);
		else
			buf_putc(b, (char)ch);
	}
}

static void
write_mail(smtp_client_t *c)
{
	const envelope_t *e = c->txn->env;
	buf_t b = BUF_INIT;
	/* the recipients' own sender (SRS, docs/srs.md): the scheduler puts
	 * only recipients with the same one in a transaction */
	const char *from = c->txn->n ? e->rcpt[c->txn->idx[0]].sender : NULL;
	if (from == NULL)
		from = e->sender ? e->sender : "";
	buf_printf(&b, "MAIL FROM:<%s>", from);
	if (c->ext & SMTP_EXT_SIZE)
		buf_printf(&b, " SIZE=%llu", /* RFC 1870 §6 */
		    (unsigned long long)(c->converted ? c->conv.len : e->body_len));
	if (c->bdat)
		buf_puts(&b, " BODY=BINARYMIME"); /* RFC 3030 §3 */
	else if (e->body == BODY_8BITMIME && (c->ext & SMTP_EXT_8BITMIME))
		buf_puts(&b, " BODY=8BITMIME"); /* RFC 6152 §2 */
	if (e->smtputf8 && (c->ext & SMTP_EXT_SMTPUTF8))
		buf_puts(&b, " SMTPUTF8"); /* RFC 6531 §3.4 */
	if ((e->flags & ENV_REQUIRETLS) && (c->ext & SMTP_EXT_REQUIRETLS) && c->tls_on)
		buf_puts(&b, " REQUIRETLS"); /* RFC 8689 §4.2.1 */
	if (c->ext & SMTP_EXT_DSN) {
		/* RFC 3461 §4.3, §4.4 */
		if (e->ret == RET_FULL)
			buf_puts(&b, " RET=FULL");
		else if (e->ret == RET_HDRS)
			buf_puts(&b, " RET=HDRS");
		if (e->envid && e->envid[0]) {
			buf_puts(&b, " ENVID=");
			xtext_put(&b, e->envid, strlen(e->envid));
		}
	}
	buf_puts(&b, "\r\n");
	conn_write(c->conn, b.data, b.len);
	buf_free(&b);
}

static void
write_rcpt(smtp_client_t *c, size_t i)
{
	const env_rcpt_t *r = &c->txn->env->rcpt[c->txn->idx[i]];
	buf_t b = BUF_INIT;
	buf_printf(&b, "RCPT TO:<%s>", r->addr);
	if (c->ext & SMTP_EXT_DSN) {
		/* RFC 3461 §4.1: NEVER alone, or a list */
		if (r->notify & NOTIFY_NEVER) {
			buf_puts(&b, " NOTIFY=NEVER");
		} else if (r->notify) {
			const char *sep = " NOTIFY=";
			if (r->notify & NOTIFY_SUCCESS) {
				buf_printf(&b, "%sSUCCESS", sep);
				sep = ",";
			}
			if (r->notify & NOTIFY_FAILURE) {
				buf_printf(&b, "%sFAILURE", sep);
				sep = ",";
			}
			if (r->notify & NOTIFY_DELAY)
				buf_printf(&b, "%sDELAY", sep);
		}
		/* RFC 3461 §4.2: ORCPT=addr-type ";" xtext */
		const char *semi = r->orcpt ? strchr(r->orcpt, ';') : NULL;
		if (semi && semi > r->orcpt) {
			buf_puts(&b, " ORCPT=");
			buf_append(&b, r->orcpt, (size_t)(semi - r->orcpt));
			buf_putc(&b, ';');
			xtext_put(&b, semi + 1, strlen(semi + 1));
		}
	}
	buf_puts(&b, "\r\n");
	conn_write(c->conn, b.data, b.len);
	buf_free(&b);
}

static void start_content(smtp_client_t *c);

static void
finish_txn(smtp_client_t *c)
{
	smtp_txn_t *t = c->txn;
	for (size_t i = 0; i < t->n; i++)
		if (t->res[i].outcome == SMTP_UNDECIDED) {
			char *s = xasprintf("451 4.5.0 no final reply from %s", c->relay);
			outcome_t oc;
			outcome_session(&oc, s);
			set_result(c, i, (enum smtp_outcome)oc.kind, oc.text);
			xfree(s);
		}
	c->sending = false;
	if (c->need_rset) {
		/* the transaction did not reach its end: clear it (RFC 5321 §4.1.1.5) */
		conn_write(c->conn, "RSET\r\n", 6);
		c->st = CS_RSET;
		c->stage = SMTP_STAGE_RSET;
		set_timeout(c, c->o.t.rset);
		return;
	}
	c->txn = NULL;
	become_idle(c);
	emit(c, SMTP_CLIENT_DONE);
}

/* all RCPT replies are in: go on to DATA (or BDAT), or give up */
static void
after_rcpts(smtp_client_t *c)
{
	if (c->mail_failed || c->naccepted == 0) {
		c->need_rset = true;
		finish_txn(c);
		return;
	}
	if (c->bdat) {
		/* RFC 3030 §2: one chunk with LAST; its length is exact */
		conn_printf(c->conn, "BDAT %llu LAST\r\n", (unsigned long long)c->txn->env->body_len);
		start_content(c);
		return;
	}
	conn_write(c->conn, "DATA\r\n", 6);
	push(c, EX_DATA, 0);
	c->stage = SMTP_STAGE_DATA;
	set_timeout(c, c->o.t.data_init);
}

/* the content has been written: wait for the final reply (or replies) */
static void
end_content(smtp_client_t *c)
{
	c->sending = false;
	buf_free(&c->conv); /* all of it is in the connection's output now */
	if (!c->bdat) {
		/* RFC 5321 §4.1.1.4: the end is CRLF "." CRLF; the content's own
		 * last CRLF counts when it has one (an empty message: just ".") */
		if (c->sent == 0 || c->prev == '\n')
			conn_write(c->conn, ".\r\n", 3);
		else
			conn_write(c->conn, "\r\n.\r\n", 5);
	}
	if (c->o.lmtp) {
		for (size_t i = 0; i < c->txn->n; i++)
			if (c->accepted[i])
				push(c, EX_DOT_RCPT, i);
	} else {
		push(c, EX_DOT, 0);
	}
	c->stage = SMTP_STAGE_DOT;
	set_timeout(c, c->o.t.data_done);
	conn_flush(c->conn);
}

/* Write content while the kernel takes it at once; stop when a write is
 * in flight (CONN_EV_DRAINED brings us back) or the content is done. */
static void
pump_content(smtp_client_t *c)
{
	const envelope_t *e = c->txn->env;
	uint64_t blen = c->converted ? c->conv.len : e->body_len;
	while (c->sending && !conn_closing(c->conn) && conn_pending_output(c->conn) == 0) {
		if (c->sent >= blen) {
			end_content(c);
			return;
		}
		uint64_t left = blen - c->sent;
		size_t want = left < CHUNK ? (size_t)left : CHUNK;
		ssize_t r = (ssize_t)want;
		if (c->converted)
			memcpy(c->chunk, c->conv.data + c->sent, want);
		else
			r = pread_all(c->txn->fd, c->chunk, want, (off_t)(e->body_off + c->sent));
		if (r <= 0) {
			int saved = r < 0 ? errno : EIO;
			/* never send the dot after partial content: drop the session */
			session_trouble(c, "451 4.3.0 cannot read the queued message: %s",
			    r < 0 ? strerror(saved) : "file too short");
			return;
		}
		buf_reset(&c->out);
		if (c->bdat) {
			buf_append(&c->out, c->chunk, (size_t)r);
			if (r > 0)
				c->prev = c->chunk[r - 1];
		} else {
			/* RFC 5321 §4.5.2: a line starting with "." gets one more;
			 * the queue stores CRLF line ends; a bare LF is made CRLF so
			 * the terminator can never be forged or lost */
			buf_reserve(&c->out, (size_t)r + (size_t)r / 8 + 16);
			for (ssize_t k = 0; k < r; k++) {
				char ch = c->chunk[k];
				if (ch == '.' && (c->sent + (uint64_t)k == 0 || c->prev == '\n'))
					buf_putc(&c->out, '.');
				if (ch == '\n' && c->prev != '\r')
					buf_putc(&c->out, '\r');
				buf_putc(&c->out, ch);
				c->prev = ch;
			}
		}
		c->sent += (uint64_t)r;
		conn_write(c->conn, c->out.data, c->out.len);
		set_timeout(c, c->o.t.data_block); /* RFC 5321 §4.5.3.2.5 */
		conn_flush(c->conn);
	}
}

static void
start_content(smtp_client_t *c)
{
	c->sending = true;
	c->sent = 0;
	c->prev = '\0';
	c->stage = SMTP_STAGE_CONTENT;
	if (!c->chunk)
		c->chunk = xmalloc(CHUNK);
	set_timeout(c, c->o.t.data_block);
	conn_flush(c->conn);
	pump_content(c);
}

/* one reply to the oldest outstanding command of the transaction */
static void
txn_reply(smtp_client_t *c)
{
	struct expect x = c->ex[c->ex_head++];
	smtp_txn_t *t = c->txn;
	bool pipelining = (c->ext & SMTP_EXT_PIPELINING) != 0;
	int code = c->reply.code;
	enum smtp_outcome oc;
	char *text;

	switch (x.kind) {
	case EX_MAIL:
		oc = smtp_decide(SMTP_STAGE_MAIL, code);
		if (oc != SMTP_OK) {
			c->mail_failed = true;
			c->need_rset = true;
			text = reply_text(c, SMTP_STAGE_MAIL, oc);
			for (size_t i = 0; i < t->n; i++)
				set_result(c, i, oc, text);
			xfree(text);
		}
		if (!pipelining) {
			if (c->mail_failed) {
				finish_txn(c);
				return;
			}
			write_rcpt(c, 0);
			push(c, EX_RCPT, 0);
			c->stage = SMTP_STAGE_RCPT;
			set_timeout(c, c->o.t.rcpt);
		} else {
			c->stage = SMTP_STAGE_RCPT;
			set_timeout(c, c->o.t.rcpt);
		}
		break;
	case EX_RCPT:
		if (!c->mail_failed) {
			oc = smtp_decide(SMTP_STAGE_RCPT, code);
			if (oc == SMTP_OK) {
				c->accepted[x.i] = true;
				c->naccepted++;
			} else {
				text = reply_text(c, SMTP_STAGE_RCPT, oc);
				set_result(c, x.i, oc, text);
				xfree(text);
			}
		}
		if (x.i + 1 < t->n) {
			if (!pipelining) {
				write_rcpt(c, x.i + 1);
				push(c, EX_RCPT, x.i + 1);
			}
			set_timeout(c, c->o.t.rcpt);
		} else if (!pipelining || c->bdat) {
			after_rcpts(c);
		} else {
			c->stage = SMTP_STAGE_DATA;
			set_timeout(c, c->o.t.data_init);
		}
		break;
	case EX_DATA:
		oc = smtp_decide(SMTP_STAGE_DATA, code);
		if (oc == SMTP_OK) {
			if (c->mail_failed || c->naccepted == 0) {
				/* RFC 2920 §3.1: DATA accepted with nobody to deliver
				 * to: end the (empty) content at once */
				conn_write(c->conn, ".\r\n", 3);
				push(c, EX_DOT_DISCARD, 0);
				c->need_rset = true;
				c->stage = SMTP_STAGE_DOT;
				set_timeout(c, c->o.t.data_done);
				break;
			}
			start_content(c);
			break;
		}
		text = reply_text(c, SMTP_STAGE_DATA, oc);
		for (size_t i = 0; i < t->n; i++)
			set_result(c, i, oc, text);
		xfree(text);
		c->need_rset = true;
		finish_txn(c);
		return;
	case EX_DOT:
		oc = smtp_decide(SMTP_STAGE_DOT, code);
		text = reply_text(c, SMTP_STAGE_DOT, oc);
		for (size_t i = 0; i < t->n; i++)
			if (c->accepted[i])
				set_result(c, i, oc, text);
		xfree(text);
		break;
	case EX_DOT_RCPT:
		oc = smtp_decide(SMTP_STAGE_DOT, code);
		text = reply_text(c, SMTP_STAGE_DOT, oc);
		set_result(c, x.i, oc, text);
		xfree(text);
		break;
	case EX_DOT_DISCARD:
		break;
	}
	if (c->st == CS_TXN && !c->sending && c->ex_head == c->ex_tail)
		finish_txn(c);
}

/* ---- input ---- */

/* Fail the session with the server's reply as the reason (esc: the default
 * enhanced code); oc SMTP_UNDECIDED: session trouble, outcome_session decides. */
static void
fail_with_reply(smtp_client_t *c, enum smtp_outcome oc, const char *esc)
{
	buf_t b = BUF_INIT;
	smtp_reply_format(&c->reply, esc, REPLY_TEXT_MAX, &b);
	if (oc == SMTP_UNDECIDED)
		session_trouble(c, "%s", buf_cstr(&b));
	else
		session_fail(c, oc, "%s", buf_cstr(&b));
	buf_free(&b);
}

static void
session_ready(smtp_client_t *c)
{
	c->ready = true;
	become_idle(c);
	emit(c, SMTP_CLIENT_READY);
}

static void
reply_greeting(smtp_client_t *c, int code)
{
	enum smtp_outcome oc = smtp_decide(SMTP_STAGE_GREETING, code);
	if (oc != SMTP_OK) {
		/* RFC 5321 §3.1: a 554 greeting: say QUIT, go away */
		if (code / 100 == 5)
			conn_write(c->conn, "QUIT\r\n", 6);
		fail_with_reply(c, oc, default_esc(SMTP_STAGE_GREETING, code));
		return;
	}
	c->st = CS_EHLO;
	c->stage = SMTP_STAGE_HELO;
	send_helo(c, c->o.lmtp ? "LHLO" : "EHLO");
}

/* conn_starttls_prep's hook: the TLSA records into the new session */
static int
dane_prep(SSL *ssl, void *arg)
{
	smtp_client_t *c = arg;
	buf_t notes = BUF_INIT;
	const char *names[3] = {c->o.dane_domain, c->o.dane_alias, NULL};
	if (!names[0]) {
		names[0] = names[1];
		names[1] = NULL;
	}
	int k = tls_dane_setup(ssl, c->o.dane_base ? c->o.dane_base : c->host, names, c->o.tlsa,
	    c->o.ntlsa, &notes);
	if (notes.len)
		log_info("outbound: %s: TLSA records unusable: %s", c->relay, buf_cstr(&notes));
	buf_free(&notes);
	if (k < 0)
		return -1;
	c->dane_on = k > 0;
	if (k == 0)
		log_info("outbound: %s: no usable TLSA record: TLS is required, without "
		    "authentication (RFC 7672 section 2.2)", c->relay);
	return 0;
}

static bool
dane_policy(const smtp_client_t *c)
{
	return c->o.tls_policy == TLS_POLICY_DANE;
}

/* our address on the session, kept for the TLS report */
static void
rpt_local(smtp_client_t *c)
{
	const struct sockaddr *sa = c->conn ? conn_local_addr(c->conn) : NULL;
	c->rpt_local[0] = '\0';
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->rpt_local,
		    sizeof c->rpt_local);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->rpt_local,
		    sizeof c->rpt_local);
}

/* RFC 8460 section 4.3: the session's TLS failure, for the TLS report
 * (the first one counts) */
static void
rpt_fail(smtp_client_t *c, const char *type, const char *reason)
{
	if (c->rpt < 0)
		return;
	c->rpt = -1;
	c->rpt_type = type;
	snprintf(c->rpt_reason, sizeof c->rpt_reason, "%s", reason ? reason : "");
	rpt_local(c);
}

/* section 4.3.2.1: a certificate that did not verify, by OpenSSL's reason */
static const char *
rpt_cert_type(smtp_client_t *c)
{
	SSL *ssl = conn_tls_ssl(c->conn);
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	switch (v) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
		return "certificate-host-mismatch";
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return "certificate-expired";
	case X509_V_OK:
		return "validation-failure"; /* no certificate at all */
	default:
		return "certificate-not-trusted";
	}
}

static void
reply_starttls(smtp_client_t *c, int code)
{
	if (smtp_decide(SMTP_STAGE_STARTTLS, code) == SMTP_OK) {
		/* RFC 3207 §4: the handshake starts now */
		c->st = CS_TLS;
		int r = dane_policy(c) ? conn_starttls_prep(c->conn, c->o.tls_ctx, c->host, dane_prep, c)
		                       : conn_starttls(c->conn, c->o.tls_ctx, false, c->host);
		if (r < 0) {
			c->tls_failed = true;
			rpt_fail(c, "validation-failure", conn_tls_error(c->conn));
			session_trouble(c, "451 4.7.5 cannot start TLS with %s: %s", c->relay,
			    conn_tls_error(c->conn));
		}
		return;
	}
	if (code != 421)
		rpt_fail(c, "starttls-not-supported", "STARTTLS refused");
	if (c->o.tls_policy == TLS_POLICY_MAY && code != 421) {
		/* opportunistic: carry on in clear (RFC 3207 §4.1) */
		log_info("outbound: %s refused STARTTLS (%d); going on without TLS", c->relay, code);
		session_ready(c);
		return;
	}
	buf_t b = BUF_INIT;
	smtp_reply_format(&c->reply, "4.7.4", REPLY_TEXT_MAX, &b);
	if (dane_policy(c))
		session_trouble(c, "451 4.7.5 %s publishes TLSA records (DANE) but refused STARTTLS: %s",
		    c->relay, buf_cstr(&b));
	else
		session_trouble(c, "451 4.7.4 TLS is required for %s but STARTTLS was refused: %s",
		    c->relay, buf_cstr(&b));
	buf_free(&b);
}

/*
 * RFC 8689 §4.2.1 for a session that carries REQUIRETLS messages, once
 * TLS is settled: TLS on, the peer authenticated (DANE, or a certificate
 * valid for its name), REQUIRETLS offered in the EHLO under TLS. A
 * failure is permanent for these messages (the owner may still try the
 * next MX host); the session ends before MAIL.
 */
static bool
requiretls_ok(smtp_client_t *c)
{
	const char *auth = smtp_client_tls_auth(c);
	const char *why = !c->tls_on ? "the session is not under TLS"
	    : !auth || strcmp(auth, "none") == 0 ? "the server is not authenticated"
	    : NULL;
	if (!why && (c->ext & SMTP_EXT_REQUIRETLS))
		return true;
	conn_write(c->conn, "QUIT\r\n", 6);
	if (why)
		session_fail(c, SMTP_PERMFAIL, "550 5.7.10 REQUIRETLS: %s: %s (RFC 8689 section 4.2.1)",
		    c->relay, why);
	else if (!(c->ext & SMTP_EXT_REQUIRETLS))
		session_fail(c, SMTP_PERMFAIL, "550 5.7.30 REQUIRETLS support required: %s does not "
		    "offer REQUIRETLS (RFC 8689 section 4.2.1)", c->relay);
	return false;
}

/* EHLO/HELO accepted: STARTTLS, AUTH, or ready */
static void
after_helo(smtp_client_t *c)
{
	if (c->st == CS_EHLO)
		parse_ehlo(c);
	if (!c->tls_on && c->o.tls_policy != TLS_POLICY_NONE) {
		bool offered = (c->ext & SMTP_EXT_STARTTLS) && c->st == CS_EHLO;
		if (offered && c->o.tls_ctx) {
			conn_write(c->conn, "STARTTLS\r\n", 10);
			c->st = CS_STARTTLS;
			c->stage = SMTP_STAGE_STARTTLS;
			set_timeout(c, c->o.t.helo);
			return;
		}
		if (!offered)
			rpt_fail(c, "starttls-not-supported", "STARTTLS not offered");
		if (c->o.sts == SMTP_STS_TESTING)
			log_info("outbound: mta-sts testing: %s: %s does not offer STARTTLS; delivering "
			    "anyway (an enforce policy would defer)", c->o.sts_domain, c->relay);
		if (c->o.sts == SMTP_STS_ENFORCE) {
			conn_write(c->conn, "QUIT\r\n", 6);
			session_trouble(c, "451 4.7.5 the MTA-STS policy of %s requires TLS but %s %s",
			    c->o.sts_domain, c->relay, offered ? "has no TLS client context"
			    : "does not offer STARTTLS");
			return;
		}
		if (c->o.tls_policy != TLS_POLICY_MAY) {
			conn_write(c->conn, "QUIT\r\n", 6);
			/* RFC 7672 §2.2: TLSA records make TLS mandatory; a server
			 * that stops offering STARTTLS may be behind an attacker */
			session_trouble(c, "451 %s %s for %s but %s", dane_policy(c) ? "4.7.5" : "4.7.4",
			    dane_policy(c) ? "TLSA records (DANE) require TLS" : "TLS is required", c->relay,
			    offered ? "no TLS client context could be made" : "it does not offer STARTTLS");
			return;
		}
	}
	if (c->o.requiretls && !requiretls_ok(c))
		return;
	if (c->o.auth_user && c->o.auth_pass) {
		if (!c->tls_on) {
			conn_write(c->conn, "QUIT\r\n", 6);
			session_trouble(c, "451 4.7.0 AUTH to %s not attempted: the session is not encrypted (credentials are never sent in clear)",
			    c->relay);
			return;
		}
		if (!(c->ext & (SMTP_EXT_AUTH_PLAIN | SMTP_EXT_AUTH_LOGIN))) {
			conn_write(c->conn, "QUIT\r\n", 6);
			session_trouble(c, "451 4.7.0 %s offers no AUTH PLAIN or LOGIN, and credentials are configured for it",
			    c->relay);
			return;
		}
		auth_start(c);
		return;
	}
	session_ready(c);
}

static void
reply_helo(smtp_client_t *c, int code)
{
	enum smtp_outcome oc = smtp_decide(SMTP_STAGE_HELO, code);
	if (oc == SMTP_OK) {
		after_helo(c);
		return;
	}
	if (c->st == CS_EHLO && !c->o.lmtp && code / 100 == 5) {
		/* RFC 5321 §3.2: a server that does not know EHLO */
		c->st = CS_HELO;
		send_helo(c, "HELO");
		return;
	}
	if (code != 421)
		conn_write(c->conn, "QUIT\r\n", 6);
	fail_with_reply(c, oc, default_esc(SMTP_STAGE_HELO, code));
}

static void
reply_auth(smtp_client_t *c, int code)
{
	if (code == 334 && (c->st == CS_AUTH_USER || c->st == CS_AUTH_PASS)) {
		const char *v = c->st == CS_AUTH_USER ? c->o.auth_user : c->o.auth_pass;
		send_b64(c, "", (const unsigned char *)v, strlen(v));
		c->st = c->st == CS_AUTH_USER ? CS_AUTH_PASS : CS_AUTH;
		set_timeout(c, c->o.t.helo);
		return;
	}
	if (code == 235) {
		session_ready(c);
		return;
	}
	/* a refused login is our configuration's problem: the mail waits */
	buf_t b = BUF_INIT;
	smtp_reply_format(&c->reply, "4.7.8", REPLY_TEXT_MAX, &b);
	if (code != 421)
		conn_write(c->conn, "QUIT\r\n", 6);
	session_trouble(c, "451 4.7.8 AUTH to %s failed: %s", c->relay, buf_cstr(&b));
	buf_free(&b);
}

/* A complete reply: the next step of the state machine, one function per
 * state of the session. */
static void
handle_reply(smtp_client_t *c)
{
	int code = c->reply.code;

	switch (c->st) {
	case CS_GREETING:
		reply_greeting(c, code);
		break;
	case CS_STARTTLS:
		reply_starttls(c, code);
		break;
	case CS_EHLO:
	case CS_HELO:
		reply_helo(c, code);
		break;
	case CS_AUTH_USER:
	case CS_AUTH_PASS:
	case CS_AUTH:
		reply_auth(c, code);
		break;
	case CS_TXN:
		if (code == 421) {
			/* RFC 5321 §3.8: the server is going away */
			fail_with_reply(c, SMTP_UNDECIDED, "4.4.2");
			break;
		}
		txn_reply(c);
		break;
	case CS_RSET:
		c->txn = NULL;
		if (smtp_decide(SMTP_STAGE_RSET, code) == SMTP_OK)
			become_idle(c);
		else
			fail_with_reply(c, SMTP_UNDECIDED, default_esc(SMTP_STAGE_RSET, code));
		emit(c, SMTP_CLIENT_DONE);
		break;
	case CS_QUIT:
		c->st = CS_CLOSING;
		conn_close(c->conn);
		break;
	case CS_IDLE:
		/* unsolicited: typically "421 idle timeout"; the session is over */
		fail_with_reply(c, SMTP_UNDECIDED, default_esc(SMTP_STAGE_QUIT, code));
		break;
	default:
		break;
	}
}

static void
process_input(smtp_client_t *c)
{
	while (c->st != CS_CLOSING && c->st != CS_CONNECTING && !c->sending) {
		if (c->st == CS_TXN && c->ex_head == c->ex_tail)
			break;
		buf_t *in = conn_input(c->conn);
		if (in->len == 0)
			break;
		size_t used = 0;
		int r = smtp_reply_feed(&c->reply, in->data, in->len, &used);
		conn_consume(c->conn, used);
		if (r == SMTP_REPLY_ERROR) {
			session_trouble(c, "451 4.5.0 protocol error from %s after %s: %s",
			    c->relay, stage_name(c->stage), c->reply.err);
			return;
		}
		if (r == SMTP_REPLY_MORE)
			break;
		handle_reply(c);
		smtp_reply_reset(&c->reply);
	}
}

/* Tell the owner the session is over: DONE for a transaction in progress
 * (everything not final becomes a tempfail), then CLOSED. */
static void
report_end(smtp_client_t *c, int err)
{
	if (c->detached)
		return;
	if (c->err.len == 0 && c->st == CS_TLS) {
		const char *why = conn_tls_error(c->conn);
		c->tls_failed = true;
		rpt_fail(c, "validation-failure", why[0] ? why : "TLS handshake failed");
		buf_printf(&c->err, "451 4.7.5 TLS handshake with %s failed: %s", c->relay,
		    why[0] ? why : err ? uv_strerror(err) : "connection closed");
		err_is_trouble(c);
	}
	if (c->err.len == 0) {
		if (c->st == CS_CONNECTING || !c->ready) {
			if (c->st == CS_CONNECTING) {
				c->unreachable = true;
				buf_printf(&c->err, "451 4.4.1 connect to %s: %s", c->relay,
				    err ? uv_strerror(err) : "connection closed");
			} else
				buf_printf(&c->err, "451 4.4.2 connection lost with %s during %s",
				    c->relay, stage_name(c->stage));
		} else if (c->st == CS_TXN && c->stage == SMTP_STAGE_CONTENT) {
			buf_printf(&c->err, "451 4.4.2 connection lost during DATA with %s", c->relay);
		} else {
			buf_printf(&c->err, "451 4.4.2 connection lost with %s after %s", c->relay,
			    stage_name(c->stage));
		}
		err_is_trouble(c);
	}
	c->st = CS_CLOSING;
	if (c->txn) {
		/* everything not final yet is a tempfail with the reason */
		const char *why = buf_cstr(&c->err);
		char *t = NULL;
		if (c->err_outcome != SMTP_TEMPFAIL || why[0] != '4')
			why = t = xasprintf("451 4.4.2 session with %s ended: %s", c->relay, why);
		outcome_t oc;
		outcome_session(&oc, why);
		for (size_t i = 0; i < c->txn->n; i++)
			set_result(c, i, (enum smtp_outcome)oc.kind, oc.text);
		xfree(t);
		c->txn = NULL;
		emit(c, SMTP_CLIENT_DONE);
	}
	emit(c, SMTP_CLIENT_CLOSED);
	c->detached = true;
}

static void
on_closed(smtp_client_t *c, int err)
{
	if (c->stage != SMTP_STAGE_CONNECT) /* a session, not a failed connect */
		recent_session(false, c->tls_on);
	report_end(c, err);
	smtp_reply_free(&c->reply);
	buf_free(&c->err);
	buf_free(&c->out);
	buf_free(&c->conv);
	xfree(c->ex);
	xfree(c->accepted);
	xfree(c->chunk);
	xfree(c->helo_name);
	xfree(c->host);
	xfree(c->relay);
	SSL_CTX_free(c->o.tls_ctx); /* our reference (smtp_client_new) */
	xfree(c);
}

static void
on_conn(conn_t *conn, enum conn_event ev, int err, void *arg)
{
	smtp_client_t *c = arg;
	(void)conn;
	switch (ev) {
	case CONN_EV_CONNECTED:
		c->st = CS_GREETING;
		c->stage = SMTP_STAGE_GREETING;
		set_timeout(c, c->o.t.greeting); /* RFC 5321 §4.5.3.2.1 */
		break;
	case CONN_EV_DATA:
		process_input(c);
		break;
	case CONN_EV_DRAINED:
		if (c->sending)
			pump_content(c);
		if (!c->sending && c->st != CS_CLOSING)
			process_input(c); /* replies that came while we were sending */
		break;
	case CONN_EV_TIMEOUT:
		if (c->st == CS_QUIT) {
			c->st = CS_CLOSING;
			conn_close(c->conn);
			break;
		}
		if (c->stage == SMTP_STAGE_CONNECT || c->stage == SMTP_STAGE_GREETING)
			c->unreachable = true;
		session_trouble(c, "451 4.4.2 timeout with %s during %s", c->relay,
		    stage_name(c->stage));
		/* A server that stopped reading keeps our last write in flight
		 * and conn_close() waits for it: report the end now, and let
		 * the conn go whenever it goes (conn.h has no abort yet). */
		if (conn_pending_output(c->conn) > 0)
			report_end(c, 0);
		break;
	case CONN_EV_CLOSED:
		on_closed(c, err);
		break;
	case CONN_EV_TLS_READY: {
		const char *info = conn_tls_info(c->conn);
		const char *why = "";
		bool verified = conn_tls_verify(c->conn, &why);
		/* the name we sent in SNI (none for an address literal: RFC 6066 §3) */
		const char *sni = conn_tls_ssl(c->conn) ?
		    SSL_get_servername(conn_tls_ssl(c->conn), TLSEXT_NAMETYPE_host_name) : NULL;
		if (!sni)
			sni = "none";
		snprintf(c->tls_info, sizeof c->tls_info, "%s", info ? info : "TLS");
		c->tls_on = true;
		if (c->dane_on) {
			/* RFC 7672 §3: authenticated by a TLSA record, or not at all */
			c->tls_auth = tls_dane_authority(conn_tls_ssl(c->conn));
			log_info("outbound tls relay=%s %s verify=%s%s%s sni=%s", c->relay, c->tls_info,
			    c->tls_auth ? c->tls_auth : "failed", c->tls_auth ? "" : " reason=dane: ",
			    c->tls_auth ? "" : why, sni);
			if (!c->tls_auth) {
				/* section 4.3.2.2.1: none of the TLSA records matched */
				rpt_fail(c, "tlsa-invalid", why[0] ? why : "no TLSA record matches");
				conn_write(c->conn, "QUIT\r\n", 6);
				session_trouble(c, "451 4.7.5 DANE authentication failed for %s: %s",
				    c->relay, why[0] ? why : "no TLSA record matches");
				break;
			}
		} else {
			c->tls_auth = verified ? "ca" : "none";
			if (verified && c->o.sts == SMTP_STS_ENFORCE)
				c->tls_auth = "sts";
			log_info("outbound tls relay=%s %s verify=%s%s%s sni=%s", c->relay, c->tls_info,
			    verified ? "ok" : "failed", verified ? "" : " reason=", verified ? "" : why, sni);
		}
		/* a policy that wants the certificate verified (MTA-STS, verify)
		 * and it did not: a failure for the TLS report, even in testing mode */
		if (!c->dane_on && !verified &&
		    (c->o.sts != SMTP_STS_NONE || c->o.tls_policy == TLS_POLICY_VERIFY))
			rpt_fail(c, rpt_cert_type(c), why);
		/* RFC 8461 §5: testing mode reports the failure, delivers anyway */
		if (c->o.sts == SMTP_STS_TESTING && !verified)
			log_info("outbound: mta-sts testing: %s: the certificate of %s is not valid for it "
			    "(%s); delivering anyway (an enforce policy would defer)", c->o.sts_domain,
			    c->relay, why);
		if (c->o.sts == SMTP_STS_ENFORCE && !verified) {
			conn_write(c->conn, "QUIT\r\n", 6);
			session_trouble(c, "451 4.7.5 MTA-STS policy of %s: certificate verification failed "
			    "for %s: %s", c->o.sts_domain, c->relay, why);
			break;
		}
		if (c->o.tls_policy == TLS_POLICY_VERIFY && !verified) {
			conn_write(c->conn, "QUIT\r\n", 6);
			session_trouble(c,
			    "451 4.7.5 TLS certificate verification failed for %s: %s", c->relay, why);
			break;
		}
		if (c->rpt == 0) {
			c->rpt = 1; /* TLS as the policy wants it */
			rpt_local(c);
		}
		/* RFC 3207 §4.2: start over; the extensions may differ now */
		c->st = CS_EHLO;
		c->stage = SMTP_STAGE_HELO;
		send_helo(c, c->o.lmtp ? "LHLO" : "EHLO");
		break;
	}
	}
}

smtp_client_t *
smtp_client_new(uv_loop_t *loop, const struct sockaddr *addr, const char *host,
    const smtp_client_options_t *o, smtp_client_cb cb, void *arg)
{
	smtp_client_t *c = xcalloc(1, sizeof *c);
	c->loop = loop;
	c->o = *o;
	/* a reload may replace the owner's context while we still need it */
	if (c->o.tls_ctx)
		SSL_CTX_up_ref(c->o.tls_ctx);
	c->helo_name = xstrdup(o->helo_name && o->helo_name[0] ? o->helo_name : "localhost");
	c->o.helo_name = c->helo_name;
	default_timeout(&c->o.t.connect, 30);
	default_timeout(&c->o.t.greeting, 300);
	default_timeout(&c->o.t.helo, 300);
	default_timeout(&c->o.t.mail, 300);
	default_timeout(&c->o.t.rcpt, 300);
	default_timeout(&c->o.t.data_init, 120);
	default_timeout(&c->o.t.data_block, 180);
	default_timeout(&c->o.t.data_done, 600);
	default_timeout(&c->o.t.rset, 300);
	default_timeout(&c->o.t.quit, 10);
	c->cb = cb;
	c->arg = arg;
	smtp_reply_init(&c->reply);
	char ip[sizeof(((struct sockaddr_un *)0)->sun_path) + 1] = "?";
	int port = 0;
	if (addr->sa_family == AF_UNIX) {
		/* LMTP over a unix-domain socket: no TLS there */
		const struct sockaddr_un *su = (const struct sockaddr_un *)addr;
		snprintf(ip, sizeof ip, "%.*s", (int)sizeof su->sun_path, su->sun_path);
		c->o.tls_policy = TLS_POLICY_NONE;
		c->host = xstrdup(host && host[0] ? host : "localhost");
		c->relay = xasprintf("%s[unix:%s]", c->host, ip);
		c->st = CS_CONNECTING;
		c->stage = SMTP_STAGE_CONNECT;
		c->conn = conn_connect_unix(loop, ip, tmo_ms(c->o.t.connect), CLIENT_MAX_INPUT, on_conn, c);
		return c;
	}
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)addr;
		uv_ip4_name(s4, ip, sizeof ip);
		port = ntohs(s4->sin_port);
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)addr;
		uv_ip6_name(s6, ip, sizeof ip);
		port = ntohs(s6->sin6_port);
	}
	c->host = xstrdup(host && host[0] ? host : ip);
	c->relay = xasprintf("%s[%s]:%d", c->host, ip, port);
	c->st = CS_CONNECTING;
	c->stage = SMTP_STAGE_CONNECT;
	c->conn = conn_connect(loop, addr, NULL, tmo_ms(c->o.t.connect), CLIENT_MAX_INPUT, on_conn, c);
	return c;
}

/*
 * RFC 6152 §3: 8-bit content for a next hop without 8BITMIME is converted
 * to quoted-printable (deliver/mime8to7.h), or returned when it cannot be
 * (5.6.3). The file is scanned first; only 8-bit content is read whole and
 * then sent from c->conv. NULL, or the text of the permanent failure; NULL
 * with *rerr set (an errno) when the spool file cannot be read.
 */
static char *
convert_8bit(smtp_client_t *c, const smtp_txn_t *t, int *rerr)
{
	const envelope_t *e = t->env;
	if ((c->ext & SMTP_EXT_8BITMIME) || e->body == BODY_BINARYMIME)
		return NULL;
	if (!c->chunk)
		c->chunk = xmalloc(CHUNK);
	bool eight = false;
	for (uint64_t off = 0; off < e->body_len && !eight;) {
		uint64_t left = e->body_len - off;
		size_t want = left < CHUNK ? (size_t)left : CHUNK;
		ssize_t r = pread_all(t->fd, c->chunk, want, (off_t)(e->body_off + off));
		if (r <= 0)
			return NULL; /* pump_content meets the same error and says so */
		eight = mime8to7_has_8bit(c->chunk, (size_t)r);
		off += (uint64_t)r;
	}
	if (!eight)
		return NULL;
	if (e->body_len > CONVERT_MAX)
		return xasprintf("554 5.6.3 %s does not support 8BITMIME and this message is too large "
		    "to be converted to 7 bit (over %u MiB)", c->relay, CONVERT_MAX >> 20);
	char *all = xmalloc(e->body_len ? (size_t)e->body_len : 1);
	ssize_t r = pread_all(t->fd, all, (size_t)e->body_len, (off_t)e->body_off);
	if (r < 0 || (uint64_t)r != e->body_len) {
		*rerr = r < 0 ? errno : EIO;
		xfree(all);
		return NULL;
	}
	const char *why = NULL;
	int cr = mime8to7_convert(all, (size_t)r, &c->conv, &why);
	xfree(all);
	if (cr < 0) {
		buf_reset(&c->conv);
		return xasprintf("554 5.6.3 %s does not support 8BITMIME and this message cannot be "
		    "converted to 7 bit: %s", c->relay, why);
	}
	c->converted = cr == 0;
	if (c->converted)
		log_info("outbound: %s does not offer 8BITMIME: 8-bit content sent as quoted-printable "
		    "(%llu -> %zu octets)", c->relay, (unsigned long long)e->body_len, c->conv.len);
	return NULL;
}

int
smtp_client_send(smtp_client_t *c, smtp_txn_t *t)
{
	if (c->st != CS_IDLE || c->txn)
		return -1;
	const envelope_t *e = t->env;
	c->txn = t;
	buf_free(&c->conv); /* a converted content left by a transaction cut short */
	c->converted = false;
	char *text = NULL;
	int rerr = 0;
	if ((c->ext & SMTP_EXT_SIZE) && c->max_size > 0 && e->body_len > c->max_size) {
		/* RFC 1870 §6.1: the server told us it will not take it */
		text = xasprintf("552 5.3.4 message size %llu exceeds the fixed limit %llu of %s",
		    (unsigned long long)e->body_len, (unsigned long long)c->max_size, c->relay);
	} else if (e->smtputf8 && !(c->ext & SMTP_EXT_SMTPUTF8)) {
		/* RFC 6531 §3.4: no SMTPUTF8 at the next hop: bounce */
		text = xasprintf("553 5.6.7 %s does not support SMTPUTF8, required by this message",
		    c->relay);
	} else if (e->body == BODY_BINARYMIME &&
	    (c->ext & (SMTP_EXT_BINARYMIME | SMTP_EXT_CHUNKING)) !=
	        (SMTP_EXT_BINARYMIME | SMTP_EXT_CHUNKING)) {
		/* RFC 3030 §3: binary content needs BINARYMIME and CHUNKING */
		text = xasprintf("554 5.6.3 %s does not support BINARYMIME, required by this message",
		    c->relay);
	} else {
		text = convert_8bit(c, t, &rerr);
	}
	if (text || rerr) {
		outcome_t oc;
		if (rerr)
			outcome_queue_read(&oc, rerr, true);
		else
			outcome_capability(&oc, text);
		for (size_t i = 0; i < t->n; i++)
			set_result(c, i, (enum smtp_outcome)oc.kind, oc.text);
		xfree(text);
		c->txn = NULL;
		return 1;
	}
	c->st = CS_TXN;
	c->ex_cap = 2 * t->n + 4;
	c->ex = xrealloc(c->ex, c->ex_cap * sizeof *c->ex);
	c->ex_head = c->ex_tail = 0;
	xfree(c->accepted);
	c->accepted = xcalloc(t->n ? t->n : 1, sizeof *c->accepted);
	c->naccepted = 0;
	c->mail_failed = false;
	c->need_rset = false;
	c->sending = false;
	c->bdat = e->body == BODY_BINARYMIME;
	if (t->n == 0) {
		c->txn = NULL;
		c->st = CS_IDLE;
		return 1;
	}
	write_mail(c);
	push(c, EX_MAIL, 0);
	c->stage = SMTP_STAGE_MAIL;
	if (c->ext & SMTP_EXT_PIPELINING) {
		/* RFC 2920 §3.1: MAIL, RCPT... and DATA may go in one group; DATA
		 * is the last command of the group. BDAT follows the RCPT
		 * replies instead (its content follows the command at once). */
		for (size_t i = 0; i < t->n; i++) {
			write_rcpt(c, i);
			push(c, EX_RCPT, i);
		}
		if (!c->bdat) {
			conn_write(c->conn, "DATA\r\n", 6);
			push(c, EX_DATA, 0);
		}
	}
	set_timeout(c, c->o.t.mail); /* RFC 5321 §4.5.3.2.2 */
	conn_flush(c->conn);
	return 0;
}

void
smtp_client_quit(smtp_client_t *c)
{
	if (c->st == CS_CLOSING || c->st == CS_QUIT)
		return;
	if (c->st == CS_CONNECTING || c->st == CS_TXN || c->st == CS_RSET) {
		smtp_client_abort(c, NULL);
		return;
	}
	conn_write(c->conn, "QUIT\r\n", 6);
	c->st = CS_QUIT;
	c->stage = SMTP_STAGE_QUIT;
	set_timeout(c, c->o.t.quit);
	conn_flush(c->conn);
}

void
smtp_client_abort(smtp_client_t *c, const char *reason)
{
	if (c->st == CS_CLOSING)
		return;
	if (reason && c->err.len == 0) {
		buf_puts(&c->err, reason);
		err_is_trouble(c);
	}
	c->st = CS_CLOSING;
	c->sending = false;
	/* a failed session owes the peer nothing: close now rather than wait
	 * (up to 2 s) for a peer that may be the reason we failed */
	conn_abort(c->conn, UV_ECONNABORTED);
}

bool
smtp_client_usable(const smtp_client_t *c)
{
	return c->st == CS_IDLE && !c->txn;
}

bool
smtp_client_was_ready(const smtp_client_t *c)
{
	return c->ready;
}

unsigned
smtp_client_ext(const smtp_client_t *c)
{
	return c->ext;
}

uint64_t
smtp_client_max_size(const smtp_client_t *c)
{
	return c->max_size;
}

const char *
smtp_client_relay(const smtp_client_t *c)
{
	return c->relay;
}

const char *
smtp_client_error(const smtp_client_t *c)
{
	return buf_cstr(&c->err);
}

int
smtp_client_error_outcome(const smtp_client_t *c)
{
	return c->err.len ? c->err_outcome : SMTP_UNDECIDED;
}

const char *
smtp_client_tls_auth(const smtp_client_t *c)
{
	return c->tls_on ? c->tls_auth : NULL;
}

const char *
smtp_client_tls(const smtp_client_t *c)
{
	return c->tls_on ? c->tls_info : NULL;
}

bool
smtp_client_tls_failed(const smtp_client_t *c)
{
	return c->tls_failed;
}

bool
smtp_client_unreachable(const smtp_client_t *c)
{
	return c->unreachable;
}

int
smtp_client_tlsrpt(const smtp_client_t *c, const char **type, const char **reason,
    const char **local_ip)
{
	*type = c->rpt < 0 ? c->rpt_type : NULL;
	*reason = c->rpt < 0 ? c->rpt_reason : NULL;
	*local_ip = c->rpt_local;
	return c->rpt;
}
