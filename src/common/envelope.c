/*
 * envelope.c - in-memory message envelopes (see envelope.h).
 *
 * Plain data handling: allocation, recipients, deep copies. No I/O and no
 * validation here (the queue validates what it writes and reads back).
 * All allocation goes through xalloc, so nothing here returns NULL.
 */
#include "common/envelope.h"

#include <string.h>

#include "lib/xalloc.h"

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

envelope_t *
envelope_new(void)
{
	envelope_t *e = xcalloc(1, sizeof *e);
	return e;
}

static void
rcpt_clear(env_rcpt_t *r)
{
	xfree(r->addr);
	xfree(r->orig);
	xfree(r->orcpt);
	xfree(r->sender);
	xfree(r->reply);
	xfree(r->relay);
}

void
envelope_free(envelope_t *e)
{
	if (e == NULL)
		return;
	xfree(e->sender);
	xfree(e->envid);
	xfree(e->client_addr);
	xfree(e->client_helo);
	xfree(e->auth_user);
	for (size_t i = 0; i < e->nrcpt; i++)
		rcpt_clear(&e->rcpt[i]);
	xfree(e->rcpt);
	xfree(e);
}

/*
 * The array grows by one element per call (realloc): envelopes built
 * elsewhere may have an array of exactly nrcpt elements, so no hidden
 * capacity is assumed.
 */
env_rcpt_t *
envelope_add_rcpt(envelope_t *e, const char *addr, const char *orig, const char *orcpt,
    unsigned notify)
{
	e->rcpt = xrealloc(e->rcpt, (e->nrcpt + 1) * sizeof *e->rcpt);
	env_rcpt_t *r = &e->rcpt[e->nrcpt++];
	memset(r, 0, sizeof *r);
	r->addr = xstrdup(addr ? addr : "");
	r->orig = dup_or_null(orig);
	r->orcpt = dup_or_null(orcpt);
	r->notify = notify;
	r->status = RCPT_PENDING;
	return r;
}

envelope_t *
envelope_dup(const envelope_t *e)
{
	envelope_t *d = xmalloc(sizeof *d);
	*d = *e;
	d->sender = dup_or_null(e->sender);
	d->envid = dup_or_null(e->envid);
	d->client_addr = dup_or_null(e->client_addr);
	d->client_helo = dup_or_null(e->client_helo);
	d->auth_user = dup_or_null(e->auth_user);
	d->rcpt = NULL;
	if (e->nrcpt > 0) {
		d->rcpt = xcalloc(e->nrcpt, sizeof *d->rcpt);
		for (size_t i = 0; i < e->nrcpt; i++) {
			const env_rcpt_t *s = &e->rcpt[i];
			env_rcpt_t *r = &d->rcpt[i];
			*r = *s;
			r->addr = dup_or_null(s->addr);
			r->orig = dup_or_null(s->orig);
			r->orcpt = dup_or_null(s->orcpt);
			r->sender = dup_or_null(s->sender);
			r->reply = dup_or_null(s->reply);
			r->relay = dup_or_null(s->relay);
		}
	}
	return d;
}

size_t
envelope_pending(const envelope_t *e)
{
	size_t n = 0;
	for (size_t i = 0; i < e->nrcpt; i++)
		if (e->rcpt[i].status == RCPT_PENDING)
			n++;
	return n;
}
