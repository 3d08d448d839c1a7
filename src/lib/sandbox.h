/*
 * sandbox.h - confine the running daemon: a seccomp deny-list and Landlock
 * (the mechanisms; which directories is the daemon's policy, daemon/confine.h).
 *
 * Applied once, at the end of start-up (everything bound, opened, recovered),
 * to the whole process; it cannot be undone. After it:
 *  - seccomp (libseccomp, default action ALLOW): the system calls tern never
 *    needs once running fail with EPERM: executing programs, ptrace, mount,
 *    modules, BPF, keyrings, changing uid/gid, namespaces, the clock, the host
 *    name, ... (the full list is in sandbox.c and docs/security.md); clone3
 *    fails with ENOSYS (its flags cannot be inspected) so glibc falls back to
 *    clone, which is refused when it asks for a new namespace. Threads work.
 *    Another architecture's system calls (x32, i386) kill the process.
 *  - Landlock (when the kernel has ABI 2 or later): writing, creating,
 *    removing, linking and renaming files is allowed only beneath the
 *    directories given (plus writing to /dev/null); reading is not limited.
 *    Without Landlock (old kernel, disabled LSM) one info line is logged and
 *    the seccomp part still applies.
 *
 * Must not: be applied before everything the daemon creates at start-up
 * exists, or in a process that later needs to run a program.
 * Landlock restricts the calling thread and the threads it starts later,
 * not threads already running (seccomp is synchronised to all threads):
 * apply it before libuv's thread pool has started; a warning is logged when
 * other threads exist.
 */
#ifndef TERN_SANDBOX_H
#define TERN_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/buf.h"

typedef struct sandbox_opts {
	char **write_dirs;  /* every write right beneath each of these directories */
	size_t nwrite_dirs;
	char **remove_dirs; /* only removing files beneath these (the local socket's directory) */
	size_t nremove_dirs;
	bool no_seccomp;    /* tests: skip the seccomp filter */
	bool no_landlock;   /* tests: skip Landlock */
} sandbox_opts_t;

/* what sandbox_apply() did */
enum sandbox_landlock {
	SANDBOX_LL_OFF = 0,     /* not asked for */
	SANDBOX_LL_UNAVAILABLE, /* kernel without Landlock, or ABI 1 (see sandbox.c) */
	SANDBOX_LL_ENFORCED,
};

/*
 * Apply the sandbox to the calling process. A directory that cannot be
 * opened is skipped with a warning (writes beneath it will be refused).
 * Returns 0; -1 with a message in *err when the seccomp filter or an
 * available Landlock could not be installed (the caller should not run on).
 */
int sandbox_apply(const sandbox_opts_t *o, buf_t *err);

/* After sandbox_apply(): Landlock's state and ABI version (0 when none). */
enum sandbox_landlock sandbox_landlock_state(void);
int sandbox_landlock_abi(void);

/* true when the directory holding path (or path itself when it is a
 * directory) lies beneath a directory writes are allowed in; always true
 * when Landlock is not enforced */
bool sandbox_may_write(const char *path);

/* realpath(3) of the directory path, or of its deepest existing ancestor
 * directory (*exact false; a file in the way counts as missing: the
 * administrator may replace it); NULL when nothing of it resolves. The
 * result is malloc'd: free(3) it. */
char *sandbox_existing_dir(const char *path, bool *exact);

/* canon (a canonical path) is one of dirs[0..n) or lies beneath one */
bool sandbox_beneath_any(const char *canon, char *const *dirs, size_t n);

#endif
