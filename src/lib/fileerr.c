/*
 * fileerr.c - bounded "file:line: message" error lists (see fileerr.h).
 */
#include "lib/fileerr.h"

void
fileerr_vadd(buf_t *errors, unsigned *n, unsigned max, const char *file, unsigned line,
    const char *fmt, va_list ap)
{
	(*n)++;
	if (errors == NULL || *n > max + 1)
		return;
	buf_printf(errors, "%s:%u: ", file, line);
	if (*n == max + 1) {
		buf_puts(errors, "too many errors, giving up\n");
		return;
	}
	buf_vprintf(errors, fmt, ap);
	buf_putc(errors, '\n');
}
