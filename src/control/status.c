/*
 * status.c - the status page and its JSON (see status.h).
 *
 * The queue by destination comes from a snapshot of the scheduler's index
 * (sched_snapshot, the same copy the queue listings use): every recipient
 * still to be delivered, grouped by the domain of its address; for each
 * domain the recipients, the messages, the oldest arrival, how many are in
 * a delivery now or held, and the last error: the reply of its most
 * recently tried waiting recipient, with the relay it came from. Only the
 * STATUS_MAX_DESTS domains with the most recipients are listed (the others
 * are summed), so the answer stays small whatever the queue holds.
 *
 * Strings from the network (replies, addresses) may be any bytes; jansson
 * takes only UTF-8, so a string that is not is sent with '?' for each
 * octet outside ASCII.
 */
#include "control/status.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/envelope.h"
#include "common/recent.h"
#include "lib/version.h"
#include "lib/xalloc.h"
#include "sched/sched.h"

/* the page, built into the binary from src/control/status/page.html (the
 * assembler includes the file; the Makefile makes this object depend on it) */
__asm__(".section .rodata\n"
	".global status_page_html\n"
	"status_page_html:\n"
	".incbin \"src/control/status/page.html\"\n"
	"status_page_html_end:\n"
	".byte 0\n"
	".balign 8\n"
	".global status_page_html_len\n"
	"status_page_html_len:\n"
	".quad status_page_html_end - status_page_html\n"
	".previous\n");
extern const char status_page_html[];
extern const uint64_t status_page_html_len;

/* a JSON string of s, '?' for non-ASCII octets when s is not UTF-8 */
static json_t *
jstr(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (j)
		return j;
	char *c = xstrdup(s);
	for (char *p = c; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(c);
	xfree(c);
	return j ? j : json_string("");
}

/* ---- the queue by destination ---- */

typedef struct item {
	const char *domain;
	size_t e, r; /* entry and recipient index */
} item_t;

typedef struct dest {
	const char *domain;
	size_t rcpts, msgs, active, held;
	int64_t oldest_us;
	int64_t last_try;
	const char *last_error, *last_relay;
	int64_t next_try; /* the soonest retry of a waiting recipient; 0: none */
} dest_t;

static const char *
domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

static int
item_cmp(const void *a, const void *b)
{
	const item_t *x = a, *y = b;
	int c = strcasecmp(x->domain, y->domain);
	if (c)
		return c;
	return x->e < y->e ? -1 : x->e > y->e;
}

static int
dest_cmp(const void *a, const void *b)
{
	const dest_t *x = a, *y = b;
	if (x->rcpts != y->rcpts)
		return x->rcpts > y->rcpts ? -1 : 1;
	return strcasecmp(x->domain, y->domain);
}

static json_t *
queue_json(struct sched *sched, int64_t now)
{
	size_t n = 0;
	sched_entry_t *e = sched ? sched_snapshot(sched, NULL, &n) : NULL;
	size_t nitems = 0, cap = 0;
	item_t *it = NULL;
	uint64_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		const envelope_t *env = e[i].env;
		bytes += env->body_len;
		for (size_t k = 0; k < env->nrcpt; k++) {
			bool act = e[i].active && e[i].active[k];
			if (!act && env->rcpt[k].status != RCPT_PENDING)
				continue;
			if (nitems == cap) {
				cap = cap ? cap * 2 : 64;
				it = xrealloc(it, cap * sizeof *it);
			}
			it[nitems++] = (item_t){domain_of(env->rcpt[k].addr), i, k};
		}
	}
	if (nitems)
		qsort(it, nitems, sizeof *it, item_cmp);
	dest_t *d = xcalloc(nitems ? nitems : 1, sizeof *d);
	size_t nd = 0;
	for (size_t i = 0; i < nitems; i++) {
		const envelope_t *env = e[it[i].e].env;
		const env_rcpt_t *r = &env->rcpt[it[i].r];
		bool act = e[it[i].e].active && e[it[i].e].active[it[i].r];
		if (nd == 0 || strcasecmp(d[nd - 1].domain, it[i].domain) != 0) {
			d[nd++] = (dest_t){.domain = it[i].domain, .oldest_us = env->arrival_us};
			d[nd - 1].msgs = 1;
		} else if (it[i - 1].e != it[i].e) {
			d[nd - 1].msgs++;
		}
		dest_t *x = &d[nd - 1];
		x->rcpts++;
		if (env->arrival_us < x->oldest_us)
			x->oldest_us = env->arrival_us;
		if (env->flags & ENV_HELD)
			x->held++;
		if (act) {
			x->active++;
			continue; /* its state belongs to the delivery job */
		}
		if (r->last_try && r->reply && r->last_try >= x->last_try) {
			x->last_try = r->last_try;
			x->last_error = r->reply;
			x->last_relay = r->relay;
		}
		if (r->attempts && (x->next_try == 0 || r->next_try < x->next_try))
			x->next_try = r->next_try;
	}
	if (nd)
		qsort(d, nd, sizeof *d, dest_cmp);
	json_t *list = json_array();
	size_t shown = nd < STATUS_MAX_DESTS ? nd : STATUS_MAX_DESTS;
	size_t other_rcpts = 0;
	for (size_t i = 0; i < nd; i++) {
		if (i >= shown) {
			other_rcpts += d[i].rcpts;
			continue;
		}
		int64_t age = now - d[i].oldest_us / 1000000;
		json_t *o = json_object();
		json_object_set_new(o, "domain", jstr(d[i].domain));
		json_object_set_new(o, "recipients", json_integer((json_int_t)d[i].rcpts));
		json_object_set_new(o, "messages", json_integer((json_int_t)d[i].msgs));
		json_object_set_new(o, "active", json_integer((json_int_t)d[i].active));
		json_object_set_new(o, "held", json_integer((json_int_t)d[i].held));
		json_object_set_new(o, "oldest_arrival", json_integer(d[i].oldest_us / 1000000));
		json_object_set_new(o, "oldest_age", json_integer(age < 0 ? 0 : age));
		json_object_set_new(o, "last_error", jstr(d[i].last_error));
		json_object_set_new(o, "last_relay", jstr(d[i].last_relay));
		json_object_set_new(o, "last_try", d[i].last_try ? json_integer(d[i].last_try) : json_null());
		json_object_set_new(o, "next_try", d[i].next_try ? json_integer(d[i].next_try) : json_null());
		json_array_append_new(list, o);
	}
	json_t *q = json_object();
	json_object_set_new(q, "messages", json_integer((json_int_t)n));
	json_object_set_new(q, "recipients", json_integer((json_int_t)nitems));
	json_object_set_new(q, "bytes", json_integer((json_int_t)bytes));
	json_object_set_new(q, "destinations", list);
	json_object_set_new(q, "destinations_total", json_integer((json_int_t)nd));
	json_object_set_new(q, "other_recipients", json_integer((json_int_t)other_rcpts));
	xfree(d);
	xfree(it);
	sched_entries_free(e, n);
	return q;
}

/* ---- the last hour ---- */

static json_t *
side_json(unsigned tls, unsigned plain)
{
	json_t *o = json_object();
	json_object_set_new(o, "tls", json_integer(tls));
	json_object_set_new(o, "plain", json_integer(plain));
	return o;
}

void
status_json(struct sched *sched, buf_t *out)
{
	recent_snap_t *snap = xmalloc(sizeof *snap);
	recent_snapshot(snap);
	json_t *root = json_object();
	json_object_set_new(root, "version", json_string(TERN_VERSION));
	json_object_set_new(root, "now", json_integer(snap->now));
	json_object_set_new(root, "queue", queue_json(sched, snap->now));

	json_t *mins = json_array();
	unsigned tin = 0, pin = 0, tout = 0, pout = 0;
	unsigned sent = 0, deferred = 0, bounced = 0;
	for (int i = 0; i < RECENT_MINUTES; i++) {
		const recent_minute_t *m = &snap->minutes[i];
		json_t *o = json_object();
		json_object_set_new(o, "t", json_integer(m->minute * 60));
		json_object_set_new(o, "sent", json_integer(m->sent));
		json_object_set_new(o, "deferred", json_integer(m->deferred));
		json_object_set_new(o, "bounced", json_integer(m->bounced));
		json_array_append_new(mins, o);
		sent += m->sent;
		deferred += m->deferred;
		bounced += m->bounced;
		tin += m->in_tls;
		pin += m->in_plain;
		tout += m->out_tls;
		pout += m->out_plain;
	}
	json_t *dl = json_object();
	json_object_set_new(dl, "minutes", mins);
	json_object_set_new(dl, "sent", json_integer(sent));
	json_object_set_new(dl, "deferred", json_integer(deferred));
	json_object_set_new(dl, "bounced", json_integer(bounced));
	json_object_set_new(root, "deliveries", dl);

	json_t *tls = json_object();
	json_object_set_new(tls, "inbound", side_json(tin, pin));
	json_object_set_new(tls, "outbound", side_json(tout, pout));
	json_object_set_new(root, "tls", tls);

	json_t *rl = json_array();
	for (unsigned i = 0; i < snap->nrejects; i++) {
		const recent_reject_t *r = &snap->rejects[i];
		json_t *o = json_object();
		json_object_set_new(o, "time", json_integer(r->time));
		json_object_set_new(o, "client", jstr(r->client));
		json_object_set_new(o, "cmd", jstr(r->cmd));
		json_object_set_new(o, "code", jstr(r->code));
		json_object_set_new(o, "status", jstr(r->status));
		json_object_set_new(o, "reason", jstr(r->text));
		json_array_append_new(rl, o);
	}
	json_t *rj = json_object();
	json_object_set_new(rj, "recent", rl);
	json_object_set_new(rj, "total", json_integer((json_int_t)snap->rejects_total));
	json_object_set_new(root, "rejections", rj);

	char *s = json_dumps(root, JSON_COMPACT);
	if (s) {
		buf_puts(out, s);
		free(s);
	}
	json_decref(root);
	xfree(snap);
}

/* ---- the routes ---- */

static int
get_page(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	(void)arg;
	if (httpd_req_rest(req)[0]) {
		buf_puts(body, "{\"error\":\"not found\"}");
		return 404;
	}
	buf_append(body, status_page_html, (size_t)status_page_html_len);
	*ctype = "text/html; charset=utf-8";
	return 200;
}

static int
get_data(httpd_req_t *req, void *arg, buf_t *body, const char **ctype)
{
	if (httpd_req_rest(req)[0]) {
		buf_puts(body, "{\"error\":\"not found\"}");
		return 404;
	}
	status_json(arg, body);
	buf_putc(body, '\n');
	return 200;
}

int
status_routes(httpd_t *h, struct sched *sched)
{
	if (httpd_route(h, "GET", "/status", HTTPD_PUBLIC, get_page, NULL) < 0 ||
	    httpd_route(h, "GET", "/api/v1/status", 0, get_data, sched) < 0)
		return -1;
	return 0;
}
