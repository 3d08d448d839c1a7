/*
 * xalloc.h - allocation that never returns NULL.
 *
 * Out of memory is a broken invariant for an MTA that bounds every buffer:
 * these functions log and abort() rather than let a NULL escape.
 * xfree(NULL) is a no-op, like free(NULL).
 */
#ifndef TERN_XALLOC_H
#define TERN_XALLOC_H

#include <stddef.h>
#include <stdlib.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a fresh allocation */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define xfree(p) free(p)

#endif
