/*
 * fsutil.h - small blocking file-system helpers.
 *
 * These block: call them from worker threads (uv_queue_work) or at start-up,
 * never from the event loop for anything that may sync to disk.
 * All return 0 on success, -1 with errno set on failure.
 */
#ifndef TERN_FSUTIL_H
#define TERN_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

int write_all(int fd, const void *p, size_t n);
int pwrite_all(int fd, const void *p, size_t n, off_t off);
/* read up to n bytes at off; returns bytes read or -1 */
ssize_t pread_all(int fd, void *p, size_t n, off_t off);
/* open the directory and fsync it, so entries created or renamed in it are durable */
int fsync_dir(const char *path);
/* mkdir -p with mode for created components */
int mkdir_p(const char *path, mode_t mode);
/* read a whole (small) file into a fresh NUL-terminated allocation */
int read_file(const char *path, char **out, size_t *len, size_t max);
/* the same from an open file (read from offset 0; fd stays open) */
int read_fd(int fd, char **out, size_t *len, size_t max);
/* An absolute path with the symbolic links of its longest existing prefix
 * resolved (realpath(3) of what exists, the rest appended as written), in a
 * fresh allocation; a copy of path when nothing of it can be resolved. */
char *path_resolve(const char *path);

struct stat;
/* A file that holds secrets (a private key, password hashes, credentials)
 * must belong to root or to uid (the user tern runs as), be writable by
 * nobody else, and be readable by nobody but its owner and, when
 * group_read, its group. NULL when st describes such a file, else what is
 * wrong and how to fix it (static text, to follow the file's name). */
const char *fs_secret_problem(const struct stat *st, uid_t uid, bool group_read);

#endif
