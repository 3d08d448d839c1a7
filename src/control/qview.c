/*
 * qview.c - formatting queued messages for the administrator (see qview.h).
 *
 * Text output is sanitized byte by byte (controls become '?'); JSON is
 * built with jansson, every string through qview_json_string, which makes
 * it valid UTF-8 first (jansson refuses anything else). Nothing here trusts the
 * envelope's strings beyond their being NUL-terminated.
 * Must not: do I/O other than in qview_read_headers.
 */
#include "control/qview.h"
#include "lib/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/addr.h"
#include "lib/fsutil.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

#define HDR_MAX (64 * 1024)

void
qview_entries_free(qview_entry_t *e, size_t n)
{
	sched_entries_free(e, n);
}

void
qview_sort(qview_entry_t *e, size_t n)
{
	sched_entries_sort(e, n);
}

const char *
qview_status(const qview_entry_t *e, size_t i)
{
	const env_rcpt_t *r = &e->env->rcpt[i];
	if (e->active && e->active[i])
		return "active";
	switch (r->status) {
	case RCPT_PENDING: return r->attempts ? "deferred" : "queued";
	case RCPT_SENT: return "sent";
	case RCPT_FAILED: return "failed";
	case RCPT_REPORTED: return "reported";
	}
	return "unknown";
}

static bool
any_active(const qview_entry_t *e)
{
	if (!e->active)
		return false;
	for (size_t i = 0; i < e->env->nrcpt; i++)
		if (e->active[i])
			return true;
	return false;
}

#define QUARANTINED "quarantined: "

const char *
qview_held_reason(const qview_entry_t *e)
{
	const envelope_t *env = e->env;
	if (!(env->flags & ENV_HELD))
		return NULL;
	for (size_t i = 0; i < env->nrcpt; i++) {
		const env_rcpt_t *r = &env->rcpt[i];
		if (r->status == RCPT_PENDING && r->attempts == 0 && r->reply &&
		    strncmp(r->reply, QUARANTINED, sizeof QUARANTINED - 1) == 0)
			return r->reply;
	}
	return "held by the administrator";
}

/* ---- text helpers ---- */

/* s with control characters replaced, at most max octets (0: no limit) */
static void
put_clean(buf_t *out, const char *s, size_t max)
{
	if (!s)
		return;
	size_t n = strlen(s);
	if (max && n > max)
		n = max;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		buf_putc(out, ch < 0x20 || ch == 0x7f ? '?' : (char)ch);
	}
}

enum tstyle { T_MAILQ, T_ISO, T_ISO_ZONE };

static void
put_localtime(buf_t *out, enum tstyle style, int64_t t)
{
	char tb[64];
	time_t tt = (time_t)t;
	struct tm tm;
	size_t n = 0;
	if (localtime_r(&tt, &tm)) {
		switch (style) {
		case T_MAILQ: n = strftime(tb, sizeof tb, "%a %b %e %H:%M:%S", &tm); break;
		case T_ISO: n = strftime(tb, sizeof tb, "%Y-%m-%d %H:%M:%S", &tm); break;
		case T_ISO_ZONE: n = strftime(tb, sizeof tb, "%Y-%m-%d %H:%M:%S %z", &tm); break;
		}
	}
	if (n == 0)
		snprintf(tb, sizeof tb, "%lld", (long long)t);
	buf_puts(out, tb);
}

static int64_t
arrival_s(const envelope_t *env)
{
	return env->arrival_us / 1000000;
}

static bool
rcpt_in_domain(const char *addr, const char *domain)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;
	return at && strcasecmp(at + 1, domain) == 0;
}

size_t
qview_filter_domain(qview_entry_t *e, size_t n, const char *domain)
{
	size_t kept = 0;
	for (size_t k = 0; k < n; k++) {
		bool in = false;
		for (size_t i = 0; i < e[k].env->nrcpt && !in; i++)
			in = rcpt_in_domain(e[k].env->rcpt[i].addr, domain);
		if (in) {
			e[kept++] = e[k];
		} else {
			envelope_free(e[k].env);
			xfree(e[k].active);
		}
	}
	return kept;
}

/* ---- mailq ---- */

/* width of the columns before the sender: "QID!" + " " + size + " " + time + "  " */
#define MAILQ_INDENT (QID_LEN + 1 + 1 + 8 + 1 + 19 + 2)

void
qview_mailq(buf_t *out, const qview_entry_t *e, size_t n)
{
	if (n == 0) {
		buf_puts(out, "Mail queue is empty\n");
		return;
	}
	uint64_t bytes = 0;
	buf_printf(out, "%-11s %8s %-20s %s\n", "-Queue ID-", "--Size--", "----Arrival Time----",
	    "-Sender/Recipient-------");
	for (size_t k = 0; k < n; k++) {
		const envelope_t *env = e[k].env;
		char mark = (env->flags & ENV_HELD) ? '!' : any_active(&e[k]) ? '*' : ' ';
		bytes += env->body_len;
		buf_printf(out, "%s%c %8llu ", env->qid, mark, (unsigned long long)env->body_len);
		put_localtime(out, T_MAILQ, arrival_s(env));
		buf_puts(out, "  ");
		if (env->sender && env->sender[0])
			put_clean(out, env->sender, 0);
		else
			buf_puts(out, "MAILER-DAEMON");
		buf_putc(out, '\n');
		const char *held = qview_held_reason(&e[k]);
		if (held) {
			buf_putc(out, '(');
			put_clean(out, held, 1000);
			buf_puts(out, ")\n");
		}
		const char *last_reason = NULL;
		for (size_t i = 0; i < env->nrcpt; i++) {
			const env_rcpt_t *r = &env->rcpt[i];
			bool act = e[k].active && e[k].active[i];
			if (!act && r->status != RCPT_PENDING)
				continue;
			/* the reason of a deferred recipient, once per run of equal reasons */
			if (!act && r->attempts && r->reply &&
			    (!last_reason || strcmp(last_reason, r->reply) != 0)) {
				buf_putc(out, '(');
				put_clean(out, r->reply, 1000);
				buf_puts(out, ")\n");
				last_reason = r->reply;
			}
			buf_printf(out, "%*s", MAILQ_INDENT, "");
			put_clean(out, r->addr, 0);
			buf_putc(out, '\n');
		}
		buf_putc(out, '\n');
	}
	/* Postfix: kilobytes rounded up, "Request" for one */
	buf_printf(out, "-- %llu Kbytes in %zu Request%s.\n", (unsigned long long)((bytes + 1023) / 1024),
	    n, n == 1 ? "" : "s");
}

/* ---- tern's text listing ---- */

static void
put_rcpt_text(buf_t *out, const qview_entry_t *e, size_t i)
{
	const env_rcpt_t *r = &e->env->rcpt[i];
	bool act = e->active && e->active[i];
	buf_puts(out, "    <");
	put_clean(out, r->addr, 0);
	buf_putc(out, '>');
	if (r->orig) {
		buf_puts(out, " (to <");
		put_clean(out, r->orig, 0);
		buf_puts(out, ">)");
	}
	buf_printf(out, "  %s", qview_status(e, i));
	if (act) {
		buf_putc(out, '\n');
		return;
	}
	if (r->attempts)
		buf_printf(out, ", %u attempt%s", r->attempts, r->attempts == 1 ? "" : "s");
	if (r->status == RCPT_PENDING && r->attempts && r->next_try) {
		buf_puts(out, ", next try ");
		put_localtime(out, T_ISO, r->next_try);
	}
	if (r->relay && r->status != RCPT_PENDING) {
		buf_puts(out, ", relay ");
		put_clean(out, r->relay, 200);
	}
	if (r->reply) {
		buf_puts(out, ": ");
		put_clean(out, r->reply, 1000);
	}
	buf_putc(out, '\n');
}

static void
put_msg_line(buf_t *out, const qview_entry_t *e)
{
	const envelope_t *env = e->env;
	buf_printf(out, "%s  %llu bytes  ", env->qid, (unsigned long long)env->body_len);
	put_localtime(out, T_ISO, arrival_s(env));
	buf_puts(out, "  from <");
	put_clean(out, env->sender, 0);
	buf_putc(out, '>');
	if (env->flags & ENV_IS_BOUNCE)
		buf_puts(out, "  (DSN)");
	if (env->flags & ENV_HELD) {
		buf_puts(out, "  HELD (");
		put_clean(out, qview_held_reason(e), 1000);
		buf_putc(out, ')');
	}
	buf_putc(out, '\n');
}

void
qview_list_text(buf_t *out, const qview_entry_t *e, size_t n)
{
	uint64_t bytes = 0;
	for (size_t k = 0; k < n; k++) {
		put_msg_line(out, &e[k]);
		for (size_t i = 0; i < e[k].env->nrcpt; i++)
			put_rcpt_text(out, &e[k], i);
		bytes += e[k].env->body_len;
	}
	buf_printf(out, "-- %zu message%s, %llu bytes\n", n, n == 1 ? "" : "s",
	    (unsigned long long)bytes);
}

void
qview_show_text(buf_t *out, const qview_entry_t *e, const char *hdr, size_t hlen)
{
	const envelope_t *env = e->env;
	buf_printf(out, "queue id: %s\n", env->qid);
	buf_printf(out, "size: %llu\n", (unsigned long long)env->body_len);
	buf_puts(out, "arrival: ");
	put_localtime(out, T_ISO_ZONE, arrival_s(env));
	buf_puts(out, "\nsender: <");
	put_clean(out, env->sender, 0);
	buf_puts(out, ">\n");
	if (env->envid) {
		buf_puts(out, "envid: ");
		put_clean(out, env->envid, 0);
		buf_putc(out, '\n');
	}
	buf_printf(out, "ret: %s\n", env->ret == RET_FULL ? "full" : env->ret == RET_HDRS ? "hdrs" : "-");
	buf_puts(out, "client: ");
	put_clean(out, env->client_addr ? env->client_addr : "-", 0);
	if (env->client_helo) {
		buf_puts(out, " helo=");
		put_clean(out, env->client_helo, 0);
	}
	if (env->auth_user) {
		buf_puts(out, " auth=");
		put_clean(out, env->auth_user, 0);
	}
	buf_putc(out, '\n');
	if (env->flags & ENV_HELD) {
		buf_puts(out, "held: yes (");
		put_clean(out, qview_held_reason(e), 1000);
		buf_puts(out, ")\n");
	} else {
		buf_puts(out, "held: no\n");
	}
	buf_printf(out, "dsn: %s\n", (env->flags & ENV_IS_BOUNCE) ? "yes (a notification tern made)" : "no");
	buf_printf(out, "delay warning sent: %s\n", (env->flags & ENV_DELAY_WARNED) ? "yes" : "no");
	buf_printf(out, "recipients: %zu\n", env->nrcpt);
	for (size_t i = 0; i < env->nrcpt; i++)
		put_rcpt_text(out, e, i);
	if (hdr) {
		buf_puts(out, "\n");
		/* the header section as it is queued, CRLF turned into LF */
		for (size_t i = 0; i < hlen; i++) {
			unsigned char ch = (unsigned char)hdr[i];
			if (ch == '\r' && i + 1 < hlen && hdr[i + 1] == '\n')
				continue;
			buf_putc(out, (ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f ? '?' : (char)ch);
		}
	}
}

/* ---- JSON (jansson builds all of it) ---- */

/* length of a valid UTF-8 sequence at p (n octets left), 0 if invalid */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	return p[0] < 0x80 ? 1 : utf8_seq_len(p, n);
}

json_t *
qview_json_string(const char *s, size_t n)
{
	/* jansson takes valid UTF-8 only: every invalid byte becomes U+FFFD */
	const unsigned char *p = (const unsigned char *)s;
	buf_t b = BUF_INIT;
	size_t i = 0;
	while (i < n) {
		size_t l = utf8_len(p + i, n - i);
		if (l == 0) {
			buf_puts(&b, "\xef\xbf\xbd");
			i++;
		} else {
			buf_append(&b, p + i, l);
			i += l;
		}
	}
	json_t *j = json_stringn(b.data ? b.data : "", b.len);
	buf_free(&b);
	if (!j)
		abort(); /* valid UTF-8 by now: only out of memory */
	return j;
}

/* a string or null */
static json_t *
jstr(const char *s)
{
	return s ? qview_json_string(s, strlen(s)) : json_null();
}

void
qview_json_dump(buf_t *out, const json_t *j)
{
	char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		abort(); /* only out of memory */
	buf_puts(out, text);
	buf_putc(out, '\n');
	free(text);
}

void
qview_json_str(buf_t *out, const char *s, size_t n)
{
	json_t *j = qview_json_string(s, n);
	char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		abort();
	buf_puts(out, text);
	free(text);
	json_decref(j);
}

/* RFC 3339 UTC time, null when unknown */
static json_t *
jtime(int64_t t)
{
	char tb[40];
	time_t tt = (time_t)t;
	struct tm tm;
	if (t <= 0 || !gmtime_r(&tt, &tm) || strftime(tb, sizeof tb, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return json_null();
	return json_string(tb);
}

static json_t *
msg_json(const qview_entry_t *e)
{
	const envelope_t *env = e->env;
	json_t *m = json_object();
	json_object_set_new(m, "queue_id", jstr(env->qid));
	json_object_set_new(m, "size", json_integer((json_int_t)env->body_len));
	json_object_set_new(m, "arrival", jtime(arrival_s(env)));
	json_object_set_new(m, "arrival_unix", json_integer(arrival_s(env)));
	json_object_set_new(m, "sender", jstr(env->sender));
	json_object_set_new(m, "envid", jstr(env->envid));
	json_object_set_new(m, "ret", env->ret == RET_FULL ? json_string("full")
	    : env->ret == RET_HDRS ? json_string("hdrs") : json_null());
	json_object_set_new(m, "client", jstr(env->client_addr));
	json_object_set_new(m, "held", json_boolean(env->flags & ENV_HELD));
	json_object_set_new(m, "held_reason", jstr(qview_held_reason(e)));
	json_object_set_new(m, "active", json_boolean(any_active(e)));
	json_object_set_new(m, "dsn", json_boolean(env->flags & ENV_IS_BOUNCE));
	json_object_set_new(m, "delay_warned", json_boolean(env->flags & ENV_DELAY_WARNED));
	json_t *rcpts = json_array();
	for (size_t i = 0; i < env->nrcpt; i++) {
		const env_rcpt_t *r = &env->rcpt[i];
		bool act = e->active && e->active[i];
		json_t *o = json_object();
		json_object_set_new(o, "address", jstr(r->addr));
		json_object_set_new(o, "original", jstr(r->orig));
		json_object_set_new(o, "status", json_string(qview_status(e, i)));
		if (!act) {
			json_object_set_new(o, "attempts", json_integer(r->attempts));
			json_object_set_new(o, "next_try", jtime(r->status == RCPT_PENDING ? r->next_try : 0));
			json_object_set_new(o, "last_try", jtime(r->last_try));
			json_object_set_new(o, "reply", jstr(r->reply));
			json_object_set_new(o, "relay", jstr(r->relay));
		}
		json_array_append_new(rcpts, o);
	}
	json_object_set_new(m, "recipients", rcpts);
	return m;
}

json_t *
qview_list_obj(const qview_entry_t *e, size_t n)
{
	uint64_t bytes = 0;
	json_t *msgs = json_array();
	for (size_t k = 0; k < n; k++) {
		json_array_append_new(msgs, msg_json(&e[k]));
		bytes += e[k].env->body_len;
	}
	json_t *o = json_object();
	json_object_set_new(o, "messages", msgs);
	json_object_set_new(o, "count", json_integer((json_int_t)n));
	json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
	return o;
}

json_t *
qview_show_obj(const qview_entry_t *e, const char *hdr, size_t hlen)
{
	json_t *o = json_object();
	json_object_set_new(o, "message", msg_json(e));
	json_object_set_new(o, "headers", hdr ? qview_json_string(hdr, hlen) : json_null());
	return o;
}

json_t *
qview_result_obj(bool ok, const char *qid, const char *text)
{
	json_t *o = json_object();
	json_object_set_new(o, "ok", json_boolean(ok));
	json_object_set_new(o, "queue_id", jstr(qid));
	json_object_set_new(o, "result", jstr(text));
	return o;
}

void
qview_list_json(buf_t *out, const qview_entry_t *e, size_t n)
{
	json_t *o = qview_list_obj(e, n);
	qview_json_dump(out, o);
	json_decref(o);
}

void
qview_show_json(buf_t *out, const qview_entry_t *e, const char *hdr, size_t hlen)
{
	json_t *o = qview_show_obj(e, hdr, hlen);
	qview_json_dump(out, o);
	json_decref(o);
}

/* ---- headers ---- */

int
qview_read_headers(const char *spool_dir, const envelope_t *env, buf_t *out, buf_t *err)
{
	int fd = queue_open_content(spool_dir, env);
	if (fd < 0) {
		buf_printf(err, "cannot open the queued message: %s", strerror(errno));
		return -1;
	}
	size_t want = env->body_len < HDR_MAX ? (size_t)env->body_len : HDR_MAX;
	char *p = xmalloc(want + 1);
	ssize_t got = pread_all(fd, p, want, (off_t)env->body_off);
	int e = errno;
	close(fd);
	if (got < 0) {
		xfree(p);
		buf_printf(err, "cannot read the queued message: %s", strerror(e));
		return -1;
	}
	size_t n = (size_t)got, end = n;
	/* up to and including the line that ends the header section */
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (i + 1 < n && p[i + 1] == '\n') {
			end = i + 1;
			break;
		}
		if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
			end = i + 1;
			break;
		}
		end = i + 1; /* so far: cut at a line end */
	}
	if (n == 0)
		end = 0;
	buf_append(out, p, end);
	xfree(p);
	return 0;
}
