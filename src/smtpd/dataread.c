/*
 * dataread.c - DATA/BDAT content state machine (see dataread.h).
 */
#include "smtpd/dataread.h"

#include <string.h>

enum {
	S_BOL = 0, /* at the beginning of a line (after CRLF, or at the start) */
	S_TEXT,    /* inside a line */
	S_CR,      /* saw CR inside a line, LF may follow */
	S_DOT,     /* DATA: saw '.' at the beginning of a line */
	S_DOT_CR,  /* DATA: saw ".\r" at the beginning of a line */
};

void
dataread_init(dataread_t *d, bool raw, size_t max_line, uint64_t max_size)
{
	memset(d, 0, sizeof *d);
	d->raw = raw;
	d->max_line = max_line;
	d->max_size = max_size;
	d->state = S_BOL;
}

/* Account for n content octets, then emit them unless an error was flagged. */
static void
emit(dataread_t *d, const char *p, size_t n, dataread_out out, void *arg)
{
	if (n == 0)
		return;
	d->size += n;
	if (d->max_size && d->size > d->max_size)
		d->flags |= DR_TOO_BIG;
	if (!(d->flags & DR_ERRORS))
		out(arg, p, n);
}

static void
line_grow(dataread_t *d, size_t n)
{
	d->line_len += n;
	if (d->max_line && d->line_len > d->max_line)
		d->flags |= DR_LINE_TOO_LONG;
}

size_t
dataread_feed(dataread_t *d, const char *p, size_t n, dataread_out out, void *arg, bool *done)
{
	size_t i = 0;
	*done = false;

	while (i < n) {
		unsigned char ch = (unsigned char)p[i];
		switch (d->state) {
		case S_BOL:
			d->line_len = 0;
			if (ch == '.' && !d->raw) {
				d->state = S_DOT;
				line_grow(d, 1);
				i++;
				continue;
			}
			d->state = S_TEXT;
			continue;
		case S_DOT:
			if (ch == '\r') {
				d->state = S_DOT_CR;
				i++;
				continue;
			}
			/* the dot was stuffing: drop it, the rest is text */
			d->state = S_TEXT;
			continue;
		case S_DOT_CR:
			if (ch == '\n') {
				/* <CRLF>.<CRLF>: the end */
				i++;
				d->state = S_BOL;
				*done = true;
				return i;
			}
			/* ".\r" followed by something else: the dot was stuffing
			 * and the CR is bare */
			d->flags |= DR_BARE_CR;
			line_grow(d, 1);
			emit(d, "\r", 1, out, arg);
			d->state = S_TEXT;
			continue;
		case S_CR:
			if (ch == '\n') {
				line_grow(d, 1);
				emit(d, "\r\n", 2, out, arg);
				d->state = S_BOL;
				i++;
				continue;
			}
			d->flags |= DR_BARE_CR;
			emit(d, "\r", 1, out, arg);
			d->state = S_TEXT;
			continue;
		case S_TEXT: {
			/* a run of ordinary octets up to the next CR or LF */
			size_t j = i;
			while (j < n && p[j] != '\r' && p[j] != '\n') {
				unsigned char c = (unsigned char)p[j];
				if (c >= 0x80)
					d->flags |= DR_8BIT;
				else if (c == 0)
					d->flags |= DR_NUL;
				j++;
			}
			if (j > i) {
				line_grow(d, j - i);
				emit(d, p + i, j - i, out, arg);
				i = j;
				continue;
			}
			if (ch == '\r') {
				line_grow(d, 1);
				d->state = S_CR;
				i++;
				continue;
			}
			/* bare LF (RFC 5321 §2.3.8): never a line end */
			d->flags |= DR_BARE_LF;
			line_grow(d, 1);
			emit(d, "\n", 1, out, arg);
			i++;
			continue;
		}
		}
	}
	return i;
}

void
dataread_finish(dataread_t *d, dataread_out out, void *arg)
{
	if (d->state == S_CR) {
		d->flags |= DR_BARE_CR;
		emit(d, "\r", 1, out, arg);
		d->state = S_TEXT;
	}
}
