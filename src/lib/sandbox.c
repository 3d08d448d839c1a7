/*
 * sandbox.c - seccomp deny-list and Landlock write confinement for the
 * running daemon (see sandbox.h; docs/security.md "Confinement").
 *
 * seccomp: a deny-list, default ALLOW, so that glibc, libuv, OpenSSL and
 * libunbound keep whatever system calls they use; the calls listed below
 * are what an attacker who took over the process would want and tern never
 * makes once started (it executes nothing, changes no credentials, mounts
 * nothing, ...). They fail with EPERM, which every caller handles, rather
 * than killing the process. Names are resolved with libseccomp for this
 * architecture; a name unknown here is skipped. The filter is synchronised
 * to every thread (TSYNC). libseccomp's bad-architecture action (kill) is
 * kept, so the x32 and i386 entry points cannot be used to get round it.
 *
 * Landlock: only write-type rights are handled, so reading stays free
 * (tables, config, certificates are re-read on SIGHUP from wherever the
 * administrator put them). Landlock is used from ABI 2 on: under ABI 1 the
 * kernel refuses every link or rename between two directories once a
 * thread is confined, and the queue (incoming/ -> queue/) and Maildir
 * delivery (tmp/ -> new/) depend on those; ABI 2 lets a rule grant it
 * (LANDLOCK_ACCESS_FS_REFER). TRUNCATE is handled from ABI 3. Connecting
 * to a unix socket (LMTP, /dev/log) is not a file-system right in any
 * Landlock ABI, so it is not affected (tests/unit/test_sandbox.c checks).
 *
 * Which directories (the policy, from the configuration and the tables)
 * is decided by the daemon, src/daemon/confine.c; this file knows nothing
 * of mail, and includes nothing outside src/lib/.
 *
 * Must not: apply anything partially and report success; kill the
 * process for a refused call (EPERM/ENOSYS only).
 */
#include "lib/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/xalloc.h"

/* Debian 12's headers (Linux 6.1) know Landlock ABI 2; newer rights by value */
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#endif
#ifndef __NR_landlock_add_rule
#define __NR_landlock_add_rule 445
#endif
#ifndef __NR_landlock_restrict_self
#define __NR_landlock_restrict_self 446
#endif

#define LL_WRITE_RIGHTS                                                                          \
	(LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |                         \
	    LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |                      \
	    LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |                          \
	    LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |                        \
	    LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM)

/*
 * AddressSanitizer builds (make asan): LeakSanitizer's check at exit stops
 * the other threads by ptrace(2) from a helper it starts with clone(2), so
 * ptrace and clone are left alone there. (A clang build's symbolizer would
 * also need execve; gcc's libasan symbolizes in-process.)
 */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define SANDBOX_SANITIZER 1
#endif
#endif
#ifndef SANDBOX_SANITIZER
#define SANDBOX_SANITIZER 0
#endif

/* clone(2)'s flags argument: the second on s390, the first elsewhere */
#if defined(__s390__) || defined(__s390x__)
#define CLONE_FLAGS_ARG 1
#else
#define CLONE_FLAGS_ARG 0
#endif

/* Refused with EPERM once the daemon runs (docs/security.md lists why). */
static const char *const deny_eperm[] = {
	/* running programs: tern executes nothing */
	"execve", "execveat",
	/* reading or writing other processes' memory */
#if !SANDBOX_SANITIZER
	"ptrace",
#endif
	"process_vm_readv", "process_vm_writev",
	/* mounts and the root directory (old and new mount API) */
	"mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
	"fsconfig", "fsmount", "fspick", "mount_setattr",
	/* the machine: swap, reboot, kernels and modules */
	"swapon", "swapoff", "reboot", "kexec_load", "kexec_file_load", "init_module",
	"finit_module", "delete_module",
	/* large kernel attack surface tern has no use for */
	"bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
	/* credentials: privileges were dropped before; never change them again */
	"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
	"setfsuid", "setfsgid",
	/* namespaces */
	"unshare", "setns",
	/* file handles that bypass path checks; whole-system watching */
	"fanotify_init", "open_by_handle_at", "name_to_handle_at",
	/* administration */
	"acct", "quotactl", "quotactl_fd", "iopl", "ioperm", "syslog", "settimeofday",
	"clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "vhangup",
	"personality",
};

#if !SANDBOX_SANITIZER
/* clone(2) flags that make a new namespace (CLONE_NEWTIME is 0x80, inside
 * clone's exit-signal byte: only clone3 and unshare take it, both refused) */
static const unsigned long clone_ns_flags[] = {
	CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
	CLONE_NEWNET,
};
#endif

/* what sandbox_apply() left in place */
static enum sandbox_landlock ll_state;
static int ll_abi;
static char **ll_allowed; /* canonical directories writes are allowed beneath */
static size_t ll_nallowed;

enum sandbox_landlock
sandbox_landlock_state(void)
{
	return ll_state;
}

int
sandbox_landlock_abi(void)
{
	return ll_abi;
}

/* ------------------------------------------------------------------ */
/* paths                                                               */

char *
sandbox_existing_dir(const char *path, bool *exact)
{
	char *p = xstrdup(path);
	*exact = true;
	for (;;) {
		char *r = realpath(p, NULL);
		struct stat st;
		if (r && stat(r, &st) == 0 && S_ISDIR(st.st_mode)) {
			xfree(p);
			return r;
		}
		free(r);
		*exact = false;
		char *slash = strrchr(p, '/');
		if (slash == NULL || strcmp(p, "/") == 0) {
			xfree(p);
			return NULL;
		}
		if (slash == p)
			p[1] = '\0';
		else
			*slash = '\0';
	}
}

/* path is dir or lies beneath it (both canonical) */
static bool
is_beneath(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 1 && dir[0] == '/')
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

bool
sandbox_beneath_any(const char *canon, char *const *dirs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (is_beneath(canon, dirs[i]))
			return true;
	return false;
}

bool
sandbox_may_write(const char *path)
{
	if (ll_state != SANDBOX_LL_ENFORCED)
		return true;
	bool exact;
	char *canon = sandbox_existing_dir(path, &exact);
	bool ok = canon && sandbox_beneath_any(canon, ll_allowed, ll_nallowed);
	free(canon);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Landlock                                                            */

static int
count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Allow rights beneath dir (a directory unless file); -1 on a Landlock
 * error, 0 otherwise (an unopenable path is skipped with a warning). */
static int
ll_add(int rfd, const char *dir, uint64_t rights, bool file, bool record, buf_t *err)
{
	int fd = open(dir, O_PATH | O_CLOEXEC | (file ? 0 : O_DIRECTORY));
	if (fd < 0) {
		if (!file)
			log_warn("sandbox: cannot open %s (%s): tern may not write beneath it",
			    dir, strerror(errno));
		return 0;
	}
	struct landlock_path_beneath_attr pb;
	memset(&pb, 0, sizeof pb);
	pb.allowed_access = rights;
	pb.parent_fd = fd;
	long r = syscall(__NR_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	int e = errno;
	close(fd);
	if (r < 0) {
		buf_printf(err, "landlock_add_rule(%s): %s", dir, strerror(e));
		return -1;
	}
	if (record) {
		bool exact;
		char *canon = sandbox_existing_dir(dir, &exact);
		if (canon) {
			ll_allowed = xrealloc(ll_allowed, (ll_nallowed + 1) * sizeof *ll_allowed);
			ll_allowed[ll_nallowed++] = xstrdup(canon);
			free(canon);
		}
	}
	return 0;
}

static int
apply_landlock(const sandbox_opts_t *o, buf_t *err)
{
	long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 0) {
		if (errno == ENOSYS || errno == EOPNOTSUPP) {
			log_info("sandbox: Landlock is not available in this kernel (%s): writes are "
			    "not confined to tern's directories", strerror(errno));
			ll_state = SANDBOX_LL_UNAVAILABLE;
			return 0;
		}
		buf_printf(err, "landlock_create_ruleset(version): %s", strerror(errno));
		return -1;
	}
	if (abi < 2) {
		log_info("sandbox: Landlock ABI %ld refuses renames between directories, which the "
		    "queue and Maildir delivery need (ABI 2, Linux 5.19, allows them): writes are not "
		    "confined to tern's directories", abi);
		ll_state = SANDBOX_LL_UNAVAILABLE;
		return 0;
	}
	uint64_t handled = LL_WRITE_RIGHTS | LANDLOCK_ACCESS_FS_REFER;
	uint64_t file_rights = LANDLOCK_ACCESS_FS_WRITE_FILE;
	if (abi >= 3) {
		handled |= LANDLOCK_ACCESS_FS_TRUNCATE;
		file_rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
	}
	struct landlock_ruleset_attr ra;
	memset(&ra, 0, sizeof ra);
	ra.handled_access_fs = handled;
	int rfd = (int)syscall(__NR_landlock_create_ruleset, &ra, sizeof ra, 0);
	if (rfd < 0) {
		buf_printf(err, "landlock_create_ruleset: %s", strerror(errno));
		return -1;
	}
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < o->nwrite_dirs; i++)
		rc = ll_add(rfd, o->write_dirs[i], handled, false, true, err);
	for (size_t i = 0; rc == 0 && i < o->nremove_dirs; i++)
		rc = ll_add(rfd, o->remove_dirs[i], LANDLOCK_ACCESS_FS_REMOVE_FILE, false, false, err);
	if (rc == 0)
		rc = ll_add(rfd, "/dev/null", file_rights, true, false, err);
	if (rc == 0) {
		int nt = count_threads();
		if (nt > 1)
			log_warn("sandbox: %d threads already run; Landlock confines only this thread "
			    "and the threads it starts from now on", nt - 1);
	}
	/* landlock_restrict_self(2) needs no_new_privs (or CAP_SYS_ADMIN) */
	if (rc == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		buf_printf(err, "prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
		rc = -1;
	}
	if (rc == 0 && syscall(__NR_landlock_restrict_self, rfd, 0) < 0) {
		buf_printf(err, "landlock_restrict_self: %s", strerror(errno));
		rc = -1;
	}
	close(rfd);
	if (rc == 0) {
		ll_state = SANDBOX_LL_ENFORCED;
		ll_abi = (int)abi;
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* seccomp                                                             */

static int
apply_seccomp(size_t *ndenied, buf_t *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (ctx == NULL) {
		buf_puts(err, "seccomp_init failed");
		return -1;
	}
	const char *what = "seccomp_attr_set(TSYNC)";
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	*ndenied = 0;
	for (size_t i = 0; rc == 0 && i < sizeof deny_eperm / sizeof deny_eperm[0]; i++) {
		int nr = seccomp_syscall_resolve_name(deny_eperm[i]);
		if (nr < 0) /* __NR_SCMP_ERROR, or not a system call of this architecture */
			continue;
		what = deny_eperm[i];
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (rc == 0)
			(*ndenied)++;
	}
	/* clone3 takes its flags in a structure a filter cannot read: ENOSYS
	 * makes glibc (pthread_create, fork) fall back to clone(2) */
	int nr = seccomp_syscall_resolve_name("clone3");
	if (rc == 0 && nr >= 0) {
		what = "clone3";
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
	}
#if !SANDBOX_SANITIZER
	/* clone: threads and fork are fine, a new namespace is not (one rule
	 * per flag: the rules for one call are or-ed) */
	nr = seccomp_syscall_resolve_name("clone");
	for (size_t i = 0; rc == 0 && nr >= 0 && i < sizeof clone_ns_flags / sizeof clone_ns_flags[0];
	     i++) {
		what = "clone";
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 1,
		    SCMP_CMP(CLONE_FLAGS_ARG, SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
	}
#endif
	if (rc == 0) {
		what = "seccomp_load";
		rc = seccomp_load(ctx);
	}
	seccomp_release(ctx);
	if (rc < 0) {
		buf_printf(err, "seccomp filter (%s): %s", what, strerror(-rc));
		return -1;
	}
	return 0;
}

int
sandbox_apply(const sandbox_opts_t *o, buf_t *err)
{
	if (!o->no_landlock && apply_landlock(o, err) < 0)
		return -1;
	size_t ndenied = 0;
	if (!o->no_seccomp && apply_seccomp(&ndenied, err) < 0)
		return -1;
	buf_t dirs = BUF_INIT;
	for (size_t i = 0; i < ll_nallowed; i++)
		buf_printf(&dirs, "%s%s", i ? ", " : "", ll_allowed[i]);
	if (ll_state == SANDBOX_LL_ENFORCED)
		log_info("sandbox: seccomp refuses %zu system calls%s; Landlock (ABI %d) allows writes "
		    "only beneath %s", ndenied, o->no_seccomp ? " (off)" : "", ll_abi,
		    dirs.len ? buf_cstr(&dirs) : "(nothing)");
	else
		log_info("sandbox: seccomp refuses %zu system calls%s; writes are not confined", ndenied,
		    o->no_seccomp ? " (off)" : "");
	buf_free(&dirs);
	return 0;
}
