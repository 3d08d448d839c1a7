/*
 * fileerr.h - "file:line: message" error lists, as the configuration and
 * table parsers report them (every problem, not just the first).
 */
#ifndef TERN_FILEERR_H
#define TERN_FILEERR_H

#include <stdarg.h>

#include "lib/buf.h"

/*
 * Count one error in *n and append "file:line: message\n" to errors (which
 * may be NULL: then only count). After max messages one line "too many
 * errors, giving up" ends the list and later errors are only counted.
 */
void fileerr_vadd(buf_t *errors, unsigned *n, unsigned max, const char *file, unsigned line,
    const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

#endif
