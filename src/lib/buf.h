/*
 * buf.h - growable byte buffer that carries its length.
 *
 * data[len] is always a NUL guard (when data != NULL), so a buffer can be
 * passed to C string functions without running past the end; the content
 * itself may contain NUL bytes and callers that care use len.
 * A zeroed buf_t (BUF_INIT) is a valid empty buffer. Growth aborts on OOM.
 */
#ifndef TERN_BUF_H
#define TERN_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
	char *data;
	size_t len;
	size_t cap;
} buf_t;

#define BUF_INIT {NULL, 0, 0}

void buf_init(buf_t *b);
void buf_free(buf_t *b);
/* ensure room for extra more bytes (plus the NUL guard) */
void buf_reserve(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *p, size_t n);
void buf_puts(buf_t *b, const char *s);
void buf_putc(buf_t *b, char c);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf_t *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* drop the first n bytes */
void buf_consume(buf_t *b, size_t n);
/* set length to 0, keep the allocation */
void buf_reset(buf_t *b);
/* never NULL: "" for an empty, unallocated buffer */
const char *buf_cstr(const buf_t *b);
/* hand the allocation to the caller (NUL-terminated), leaving b empty */
char *buf_steal(buf_t *b);

#endif
