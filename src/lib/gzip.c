/*
 * gzip.c - gzip members through zlib (contract in gzip.h).
 */
#include "lib/gzip.h"

#include <stdint.h>
#include <string.h>
#include <zlib.h>

int
gzip_compress(const void *p, size_t n, buf_t *out)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	/* windowBits 15 + 16: a gzip header and trailer, not zlib's */
	if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK)
		return -1;
	uLong bound = deflateBound(&zs, (uLong)n) + 32;
	buf_reserve(out, bound);
	zs.next_in = (Bytef *)(uintptr_t)p;
	zs.avail_in = (uInt)n;
	zs.next_out = (Bytef *)out->data + out->len;
	zs.avail_out = (uInt)bound;
	int rc = deflate(&zs, Z_FINISH);
	if (rc == Z_STREAM_END)
		out->len += zs.total_out;
	if (out->data)
		out->data[out->len] = '\0';
	deflateEnd(&zs);
	return rc == Z_STREAM_END ? 0 : -1;
}

int
gzip_decompress(const void *p, size_t n, size_t max, buf_t *out)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	if (inflateInit2(&zs, 15 + 16) != Z_OK)
		return -1;
	size_t start = out->len;
	zs.next_in = (Bytef *)(uintptr_t)p;
	zs.avail_in = (uInt)n;
	int rc = Z_OK;
	while (rc == Z_OK) {
		if (out->len - start >= max) {
			rc = Z_BUF_ERROR;
			break;
		}
		size_t room = max - (out->len - start);
		if (room > 16384)
			room = 16384;
		buf_reserve(out, room);
		zs.next_out = (Bytef *)out->data + out->len;
		zs.avail_out = (uInt)room;
		rc = inflate(&zs, Z_NO_FLUSH);
		out->len += room - zs.avail_out;
		if (rc == Z_BUF_ERROR && zs.avail_in == 0)
			break; /* truncated */
	}
	inflateEnd(&zs);
	if (rc != Z_STREAM_END) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		return -1;
	}
	out->data[out->len] = '\0';
	return 0;
}
