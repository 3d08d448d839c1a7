/*
 * fsutil.c - blocking file helpers (see fsutil.h).
 */
#include "lib/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"

int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int
pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = pwrite(fd, c, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		c += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

ssize_t
pread_all(int fd, void *p, size_t n, off_t off)
{
	char *c = p;
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, c + got, n - got, off + (off_t)got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int
fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

int
mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(tmp, path, n + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

int
read_file(const char *path, char **out, size_t *len, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = read_fd(fd, out, len, max);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

int
read_fd(int fd, char **out, size_t *len, size_t max)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	if ((size_t)st.st_size > max) {
		errno = EFBIG;
		return -1;
	}
	size_t cap = (size_t)st.st_size;
	char *p = xmalloc(cap + 1);
	ssize_t r = pread_all(fd, p, cap, 0);
	if (r < 0) {
		int e = errno;
		xfree(p);
		errno = e;
		return -1;
	}
	p[r] = '\0';
	*out = p;
	if (len)
		*len = (size_t)r;
	return 0;
}

char *
path_resolve(const char *path)
{
	size_t n = strlen(path);
	if (n == 0 || n >= PATH_MAX)
		return xstrdup(path);
	char *pre = xstrdup(path);
	/* cut components off the end until what is left exists */
	size_t cut = n;
	for (;;) {
		char *r = realpath(pre, NULL);
		if (r) {
			size_t rl = strlen(r);
			const char *rest = path + cut;
			while (*rest == '/')
				rest++;
			char *out = xmalloc(rl + 1 + strlen(rest) + 1);
			memcpy(out, r, rl + 1);
			if (*rest) {
				if (rl == 0 || out[rl - 1] != '/')
					out[rl++] = '/';
				memcpy(out + rl, rest, strlen(rest) + 1);
			}
			free(r);
			xfree(pre);
			return out;
		}
		char *slash = strrchr(pre, '/');
		if (slash == NULL || slash == pre)
			break;
		*slash = '\0';
		cut = (size_t)(slash - pre);
	}
	xfree(pre);
	return xstrdup(path);
}

const char *
fs_secret_problem(const struct stat *st, uid_t uid, bool group_read)
{
	if (st->st_uid != 0 && st->st_uid != uid)
		return "belongs to another user: chown it to root or to the user tern runs as";
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return "is writable by group or others: chmod 600";
	if (group_read && (st->st_mode & S_IROTH))
		return "is readable by others: chmod 600 (or 640 with the group tern runs as)";
	if (!group_read && (st->st_mode & (S_IRGRP | S_IROTH)))
		return "is readable by group or others: chmod 600";
	return NULL;
}
