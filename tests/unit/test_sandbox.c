/*
 * test_sandbox.c - unit tests for src/lib/sandbox.c (the mechanisms) and
 * src/daemon/confine.c (the policy).
 *
 * The sandbox cannot be undone, so every test applies it in a forked child
 * and the parent checks the child's exit status: 0 when every check held,
 * otherwise the number of the failed check (its line is printed on stderr).
 * Checked in the child: the seccomp filter is on (Seccomp: 2, NoNewPrivs: 1)
 * and refuses execve, setuid, unshare, ptrace (not in sanitizer builds),
 * clone with a namespace flag (EPERM) and clone3 (ENOSYS), while fork and
 * threads still work; with Landlock (skipped when the kernel lacks it),
 * creating, linking across directories, renaming and removing beneath the
 * allowed directory work, writing anywhere else fails with EACCES, also
 * from a thread started afterwards, reading elsewhere still works, and so
 * do /dev/null and connecting to a unix socket outside (LMTP, /dev/log).
 * confine_daemon(): the directories come from the configuration and the
 * mailboxes table (a Maildir path outside maildir_base is allowed, its
 * neighbour is not), confine_check_tables() reports a Maildir added later
 * outside them, and "sandbox = no" leaves the process alone.
 * Must not: apply the sandbox in the test runner's own process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "common/tables.h"
#include "daemon/confine.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/sandbox.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define TEST_SANITIZER 1
#endif
#endif
#ifndef TEST_SANITIZER
#define TEST_SANITIZER 0
#endif

static char top[] = "/tmp/tern-test-sandbox-XXXXXX";
static char allowed[300], outside[300], sockpath[100];

/* in the child: a failed check exits with its line number (mod 250, never 0) */
#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: check failed: %s (errno %d %s)\n", __FILE__,     \
			    __LINE__, #cond, errno, strerror(errno));                            \
			_exit(1 + __LINE__ % 250);                                               \
		}                                                                                \
	} while (0)

static void
run_child(void (*fn)(void))
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fn();
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st))
		fprintf(stderr, "child killed by signal %d\n", WIFSIGNALED(st) ? WTERMSIG(st) : -1);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* "Seccomp:\t2" and the like, from /proc/self/status */
static bool
status_has(const char *line)
{
	char text[8192];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, text, sizeof text - 1);
	close(fd);
	if (n <= 0)
		return false;
	text[n] = '\0';
	return strstr(text, line) != NULL;
}

static bool
landlock_on(void)
{
	return sandbox_landlock_state() == SANDBOX_LL_ENFORCED;
}

static int
create_file(const char *dir, const char *name)
{
	char p[400];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	int r = write(fd, "x\n", 2) == 2 ? 0 : -1;
	close(fd);
	return r;
}

static void *
thread_main(void *arg)
{
	/* a thread started after the sandbox is confined like its parent */
	int *res = arg;
	res[0] = create_file(allowed, "from-thread");
	errno = 0;
	res[1] = create_file(outside, "from-thread");
	res[2] = errno;
	return NULL;
}

static void
child_basic(void)
{
	char **dirs = (char *[]){allowed};
	sandbox_opts_t o = {.write_dirs = dirs, .nwrite_dirs = 1};
	buf_t err = BUF_INIT;
	/* the unix socket in a directory writes are refused in: bound before */
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un su = {.sun_family = AF_UNIX};
	snprintf(su.sun_path, sizeof su.sun_path, "%s", sockpath);
	CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&su, sizeof su) == 0 && listen(lfd, 4) == 0);

	int r = sandbox_apply(&o, &err);
	if (r < 0)
		fprintf(stderr, "sandbox_apply: %s\n", buf_cstr(&err));
	CHECK(r == 0);
	CHECK(status_has("Seccomp:\t2\n"));
	CHECK(status_has("NoNewPrivs:\t1\n"));

	/* seccomp */
	char *argv[] = {"/bin/true", NULL};
	errno = 0;
	CHECK(execve("/bin/true", argv, environ) < 0 && errno == EPERM);
	errno = 0;
	CHECK(setuid(0) < 0 && errno == EPERM);
	errno = 0;
	CHECK(setgid(0) < 0 && errno == EPERM);
	errno = 0;
	CHECK(unshare(CLONE_NEWUSER) < 0 && errno == EPERM);
	errno = 0;
	CHECK(unshare(CLONE_NEWNS) < 0 && errno == EPERM);
	errno = 0;
	CHECK(chroot("/") < 0 && errno == EPERM);
	errno = 0;
	CHECK(syscall(SYS_personality, 0xffffffffUL) < 0 && errno == EPERM);
	/* clone3: ENOSYS whatever the arguments (an empty one is EINVAL otherwise) */
	errno = 0;
	CHECK(syscall(SYS_clone3, NULL, (size_t)0) < 0 && errno == ENOSYS);
#if !TEST_SANITIZER
	errno = 0;
	CHECK(ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 && errno == EPERM);
	/* clone with a namespace flag; should it work, the new child leaves */
	errno = 0;
	long c = syscall(SYS_clone, (unsigned long)(CLONE_NEWUTS | SIGCHLD), NULL, NULL, NULL, 0UL);
	if (c == 0)
		_exit(0);
	CHECK(c < 0 && errno == EPERM);
#endif
	/* what tern does need */
	pid_t pid = fork();
	if (pid == 0)
		_exit(7);
	int st;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7);
	int cfd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(cfd >= 0 && connect(cfd, (struct sockaddr *)&su, sizeof su) == 0);
	close(cfd);
	close(lfd);
	int nfd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	CHECK(nfd >= 0 && write(nfd, "x", 1) == 1);
	close(nfd);
	char *text = NULL;
	char p[400], q[400];
	snprintf(p, sizeof p, "%s/readable", outside);
	CHECK(read_file(p, &text, NULL, 100) == 0 && strcmp(text, "outside\n") == 0);
	free(text);

	/* writes beneath the allowed directory: files, directories, a link and
	 * a rename between two directories (the queue's and Maildir's moves) */
	CHECK(create_file(allowed, "file") == 0);
	snprintf(p, sizeof p, "%s/a/b", allowed);
	CHECK(mkdir_p(p, 0700) == 0);
	snprintf(p, sizeof p, "%s/file", allowed);
	snprintf(q, sizeof q, "%s/a/b/linked", allowed);
	CHECK(link(p, q) == 0);
	snprintf(q, sizeof q, "%s/a/renamed", allowed);
	CHECK(rename(p, q) == 0);
	CHECK(unlink(q) == 0);
	snprintf(p, sizeof p, "%s/a/b/linked", allowed);
	CHECK(truncate(p, 0) == 0);
	CHECK(unlink(p) == 0);

	/* everything else: refused when Landlock is there */
	if (landlock_on()) {
		CHECK(sandbox_landlock_abi() >= 2);
		errno = 0;
		CHECK(create_file(outside, "new") < 0 && errno == EACCES);
		snprintf(p, sizeof p, "%s/dir", outside);
		errno = 0;
		CHECK(mkdir(p, 0700) < 0 && errno == EACCES);
		snprintf(p, sizeof p, "%s/readable", outside);
		errno = 0;
		CHECK(open(p, O_WRONLY | O_APPEND) < 0 && errno == EACCES);
		errno = 0;
		CHECK(unlink(p) < 0 && errno == EACCES);
		snprintf(q, sizeof q, "%s/stolen", allowed);
		errno = 0;
		CHECK(rename(p, q) < 0 && (errno == EACCES || errno == EXDEV));
		errno = 0;
		CHECK(create_file("/tmp", "tern-test-sandbox-escape") < 0 && errno == EACCES);
		snprintf(p, sizeof p, "%s/x/y", allowed);
		CHECK(sandbox_may_write(p));
		snprintf(p, sizeof p, "%s/x", outside);
		CHECK(!sandbox_may_write(p));
	} else {
		fprintf(stderr, "[ SKIP     ] Landlock is not available: write checks skipped\n");
	}

	/* threads (glibc falls back from clone3 to clone) */
	int res[3] = {-2, -2, 0};
	pthread_t th;
	CHECK(pthread_create(&th, NULL, thread_main, res) == 0);
	CHECK(pthread_join(th, NULL) == 0);
	CHECK(res[0] == 0);
	if (landlock_on())
		CHECK(res[1] < 0 && res[2] == EACCES);
	buf_free(&err);
}

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int
setup(void **state)
{
	(void)state;
	if (mkdtemp(top) == NULL)
		return -1;
	snprintf(allowed, sizeof allowed, "%s/allowed", top);
	snprintf(outside, sizeof outside, "%s/outside", top);
	snprintf(sockpath, sizeof sockpath, "%s/outside/lmtp.sock", top);
	if (mkdir(allowed, 0700) < 0 || mkdir(outside, 0700) < 0)
		return -1;
	char p[400];
	snprintf(p, sizeof p, "%s/readable", outside);
	write_text(p, "outside\n");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_apply(void **state)
{
	(void)state;
	run_child(child_basic);
}

/* confine_daemon(): spool_dir, maildir_base, a mailbox elsewhere */
static config_t *dcfg;
static tables_t *dtab;
static char other[400];

static void
child_daemon(void)
{
	buf_t err = BUF_INIT;
	int r = confine_daemon(dcfg, dtab, &err);
	if (r < 0)
		fprintf(stderr, "sandbox_daemon: %s\n", buf_cstr(&err));
	CHECK(r == 0);
	CHECK(status_has("Seccomp:\t2\n"));
	char p[600];
	snprintf(p, sizeof p, "%s/queue", dcfg->spool_dir);
	CHECK(create_file(p, "msg") == 0);
	snprintf(p, sizeof p, "%s/localhost/alice/new", dcfg->maildir_base);
	CHECK(mkdir_p(p, 0700) == 0 && create_file(p, "m1") == 0);
	/* bob's Maildir is outside maildir_base, in a directory that exists
	 * (its Maildir itself does not yet: delivery creates it) */
	snprintf(p, sizeof p, "%s/bob/Maildir/new", outside);
	CHECK(mkdir_p(p, 0700) == 0 && create_file(p, "m2") == 0);
	if (landlock_on()) {
		/* not bob's neighbours, nor the tables' directory */
		errno = 0;
		CHECK(create_file(outside, "next-to-bob") < 0 && errno == EACCES);
		errno = 0;
		CHECK(create_file(top, "tern.conf.new") < 0 && errno == EACCES);
		/* the local socket's directory: removing only */
		snprintf(p, sizeof p, "%s/tern.sock", top);
		CHECK(unlink(p) == 0);
		/* a reload that names a Maildir elsewhere is reported */
		CHECK(confine_check_tables(dcfg, dtab) == 0);
		tables_t *t2 = tables_load(dcfg, &err);
		CHECK(t2 != NULL);
		CHECK(confine_check_tables(dcfg, t2) == 1);
		tables_free(t2);
	}
	buf_free(&err);
}

static void
child_daemon_off(void)
{
	buf_t err = BUF_INIT;
	CHECK(confine_daemon(dcfg, dtab, &err) == 0);
	CHECK(status_has("Seccomp:\t0\n"));
	CHECK(sandbox_landlock_state() == SANDBOX_LL_OFF);
	CHECK(create_file(top, "unconfined") == 0);
	buf_free(&err);
}

static void
load_daemon_config(const char *extra)
{
	char p[400], conf[2048];
	snprintf(p, sizeof p, "%s/bob", outside);
	(void)mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/mailboxes", top);
	snprintf(other, sizeof other, "%s/carol", outside);
	buf_t mb = BUF_INIT;
	buf_printf(&mb, "alice@localhost\nbob@localhost %s/bob/Maildir\n", outside);
	write_text(p, mb.data);
	buf_free(&mb);
	snprintf(conf, sizeof conf,
	    "spool_dir = %s/spool\nmaildir_base = %s/mail\nmailboxes = %s/mailboxes\n"
	    "local_domains = localhost\nlocal_socket = %s/tern.sock\n%s",
	    top, top, top, top, extra);
	snprintf(p, sizeof p, "%s/tern.conf", top);
	write_text(p, conf);
	snprintf(p, sizeof p, "%s/tern.sock", top);
	write_text(p, "");
	buf_t err = BUF_INIT;
	snprintf(p, sizeof p, "%s/tern.conf", top);
	dcfg = config_load(p, &err);
	if (!dcfg)
		fprintf(stderr, "%s\n", buf_cstr(&err));
	assert_non_null(dcfg);
	dtab = tables_load(dcfg, &err);
	assert_non_null(dtab);
	snprintf(p, sizeof p, "%s/queue", dcfg->spool_dir);
	assert_int_equal(mkdir_p(p, 0700), 0);
	assert_int_equal(mkdir_p(dcfg->maildir_base, 0700), 0);
	/* what the table says after an edit (read by the child's reload) */
	snprintf(p, sizeof p, "%s/mailboxes", top);
	buf_printf(&mb, "alice@localhost\nbob@localhost %s/bob/Maildir\ncarol@localhost %s\n",
	    outside, other);
	write_text(p, mb.data);
	buf_free(&mb);
	buf_free(&err);
}

static void
test_daemon(void **state)
{
	(void)state;
	load_daemon_config("");
	assert_true(dcfg->sandbox);
	run_child(child_daemon);
	tables_free(dtab);
	config_free(dcfg);
}

static void
test_daemon_off(void **state)
{
	(void)state;
	load_daemon_config("sandbox = no\n");
	assert_false(dcfg->sandbox);
	buf_t err = BUF_INIT;
	static const char bad[] = "sandbox = maybe\n";
	config_t *c = config_parse_buf("bad.conf", bad, sizeof bad - 1, &err);
	assert_null(c);
	assert_non_null(strstr(buf_cstr(&err), "bad.conf:1:"));
	buf_free(&err);
	run_child(child_daemon_off);
	tables_free(dtab);
	config_free(dcfg);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_daemon),
		cmocka_unit_test(test_daemon_off),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
