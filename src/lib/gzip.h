/*
 * gzip.h - one buffer compressed as a gzip member (RFC 1952), for the
 * report attachments (DMARC aggregate reports, TLS-RPT).
 *
 * Guarantees: the whole input in one call; *out only grows (appended).
 * Must not: block on anything but the CPU.
 */
#ifndef TERN_GZIP_H
#define TERN_GZIP_H

#include <stddef.h>

#include "lib/buf.h"

/* p[0..n) gzipped, appended to *out. 0, or -1 (zlib failed; *out as it was) */
int gzip_compress(const void *p, size_t n, buf_t *out);

/* The gzip member at p[0..n) inflated and appended to *out, at most max
 * octets. 0, or -1 (not gzip, corrupt, or larger than max). */
int gzip_decompress(const void *p, size_t n, size_t max, buf_t *out);

#endif
