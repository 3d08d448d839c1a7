/*
 * privsep.c - the root parent that opens secrets for the daemon (privsep.h).
 *
 * The channel is a SOCK_SEQPACKET socketpair: every message arrives whole
 * or not at all, so the parent reads exactly one fixed-size header and a
 * path per request, and a truncated message (MSG_TRUNC) is a refusal, never
 * a partial parse.
 *   request (child -> parent): magic, kind, then the path (no NUL byte)
 *   reply (parent -> child):   magic, status (0 granted), then a text
 *                              reason; a granted reply carries one
 *                              descriptor (SCM_RIGHTS), opened O_RDONLY
 * The parent is single-threaded and waits in poll(2) on the channel and a
 * signalfd: signals are blocked before fork, so one that arrives while the
 * parent starts is queued, never lost and never fatal.
 */
#include "daemon/privsep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/config.h"
#include "common/secret.h"
#include "control/control.h"
#include "lib/log.h"
#include "lib/sandbox.h"
#include "lib/xalloc.h"

#define PRIVSEP_MAGIC 0x7465726eu /* "tern" */
#define PRIVSEP_TEXT_MAX 512      /* a refusal's reason */
#define PRIVSEP_MAX_FDS 4         /* room to receive (and close) unexpected descriptors */

struct ps_req {
	uint32_t magic;
	uint32_t kind;
};

struct ps_rep {
	uint32_t magic;
	int32_t status;
};

static int chan = -1;       /* the child's end; -1: no parent */
static int ask_parent(enum secret_kind k, const char *path, buf_t *err);
static pid_t parent_pid;    /* in the child */
static sigset_t child_mask; /* in the child: the mask to restore once ready */

/* close every descriptor a message brought along */
static int
take_fds(struct msghdr *mh, int *keep)
{
	int n = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
			if (keep && *keep < 0 && n == 0)
				*keep = fd;
			else
				close(fd);
			n++;
		}
	}
	return n;
}

static ssize_t
recv_msg(int sock, void *p, size_t n, void *ctl, size_t ctln, struct msghdr *mh)
{
	struct iovec iov = {p, n};
	memset(mh, 0, sizeof *mh);
	mh->msg_iov = &iov;
	mh->msg_iovlen = 1;
	mh->msg_control = ctl;
	mh->msg_controllen = ctln;
	ssize_t r;
	do
		r = recvmsg(sock, mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	mh->msg_iov = NULL; /* iov does not outlive this call */
	mh->msg_iovlen = 0;
	return r;
}

static int
send_msg(int sock, const void *p, size_t n, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = {(void *)(uintptr_t)p, n};
	struct msghdr mh;
	memset(&mh, 0, sizeof mh);
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (fd >= 0) {
		memset(&u, 0, sizeof u);
		mh.msg_control = u.b;
		mh.msg_controllen = sizeof u.b;
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	}
	ssize_t r;
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* the parent's side                                                   */

int
privsep_serve_one(int sock, const config_t *c)
{
	char msg[sizeof(struct ps_req) + PATH_MAX + 1];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * PRIVSEP_MAX_FDS)];
	} u;
	struct msghdr mh;
	ssize_t n = recv_msg(sock, msg, sizeof msg - 1, u.b, sizeof u.b, &mh);
	if (n < 0)
		return errno == EAGAIN ? 0 : -1;
	int passed = take_fds(&mh, NULL); /* the parent takes no descriptor */
	if (n == 0 && passed == 0)
		return -1; /* the child closed its end */

	buf_t why = BUF_INIT;
	int fd = -1;
	struct ps_req rq;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || passed) {
		buf_puts(&why, "malformed request (too long, or with descriptors)");
	} else if ((size_t)n <= sizeof rq) {
		buf_puts(&why, "malformed request (too short)");
	} else {
		memcpy(&rq, msg, sizeof rq);
		char *path = msg + sizeof rq;
		size_t pl = (size_t)n - sizeof rq;
		path[pl] = '\0';
		if (rq.magic != PRIVSEP_MAGIC) {
			buf_puts(&why, "malformed request (bad magic)");
		} else if (rq.kind >= SECRET_NKINDS) {
			buf_printf(&why, "unknown kind of secret %u", (unsigned)rq.kind);
		} else if (strlen(path) != pl) {
			buf_puts(&why, "malformed request (NUL in the path)");
		} else {
			enum secret_kind k = (enum secret_kind)rq.kind;
			struct stat st;
			if (!secret_config_names(c, k, path)) {
				buf_printf(&why, "%s %s: not the file the configuration %s names for %s",
				    secret_key(k), path, c->path, secret_key(k));
			} else if ((fd = secret_open_here(k, path, &why)) < 0) {
				/* the reason is in why */
			} else if (fstat(fd, &st) < 0) {
				buf_printf(&why, "%s %s: %s", secret_key(k), path, strerror(errno));
			} else {
				(void)secret_file_problem(k, path, &st, config_run_uid(c), &why);
			}
			if (why.len && fd >= 0) {
				close(fd);
				fd = -1;
			}
		}
	}
	if (fd < 0)
		log_warn("privsep: refused: %s", buf_cstr(&why));
	char rep[sizeof(struct ps_rep) + PRIVSEP_TEXT_MAX];
	struct ps_rep h = {PRIVSEP_MAGIC, fd >= 0 ? 0 : 1};
	size_t tl = why.len < PRIVSEP_TEXT_MAX ? why.len : PRIVSEP_TEXT_MAX;
	memcpy(rep, &h, sizeof h);
	if (tl)
		memcpy(rep + sizeof h, why.data, tl);
	int r = send_msg(sock, rep, sizeof h + tl, fd);
	if (fd >= 0)
		close(fd);
	buf_free(&why);
	return r;
}

/* Keep stdin/out/err, the channel, and syslog's datagram socket; close
 * everything else the process had before fork. */
static void
close_other_fds(int keep)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int fds[256];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL && n < sizeof fds / sizeof fds[0]) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end || end == e->d_name || fd <= 2 || fd == keep || fd == dirfd(d))
			continue;
		int dom = 0, type = 0;
		socklen_t l1 = sizeof dom, l2 = sizeof type;
		if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &dom, &l1) == 0 &&
		    getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &type, &l2) == 0 && dom == AF_UNIX &&
		    type == SOCK_DGRAM)
			continue; /* syslog */
		fds[n++] = (int)fd;
	}
	closedir(d);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

static char *
socket_dir(const char *sock)
{
	char *dir = xstrdup(sock);
	char *slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	char *canon = realpath(dir, NULL);
	xfree(dir);
	return canon; /* malloc'd by realpath, or NULL */
}

/* The parent's own confinement: the seccomp filter, and Landlock allowing
 * no writes at all but removing files in the local socket's directory. */
static int
parent_confine(const config_t *c, buf_t *err)
{
	if (!c->sandbox)
		return 0;
	sandbox_opts_t o;
	memset(&o, 0, sizeof o);
	char *dir = c->local_socket ? socket_dir(c->local_socket) : NULL;
	if (dir) {
		o.remove_dirs = &dir;
		o.nremove_dirs = 1;
	}
	int r = sandbox_apply(&o, err);
	free(dir);
	return r;
}

/* A socket of the daemon's (the local socket, the public queue socket),
 * once the child is gone: removed unless somebody else (another tern)
 * answers on it. */
static void
remove_socket(const char *path)
{
	struct stat st;
	if (!path || lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	struct sockaddr_un su;
	memset(&su, 0, sizeof su);
	su.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof su.sun_path)
		return;
	memcpy(su.sun_path, path, strlen(path));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live = fd >= 0 && connect(fd, (struct sockaddr *)&su, sizeof su) == 0;
	if (fd >= 0)
		close(fd);
	if (live)
		return;
	if (unlink(path) == 0)
		log_info("privsep: removed the local socket %s", path);
}

/* The parent's own reading of the configuration, afresh; on errors it
 * keeps the one it has (the daemon then keeps its running one too). */
static void
reparse(const config_t **cur, config_t **own, buf_t *err)
{
	buf_reset(err);
	config_t *nc = config_load((*cur)->path, err);
	if (!nc) {
		log_err("privsep: %s: configuration has errors; the privileged parent keeps the files "
		    "it allowed", (*cur)->path);
		return;
	}
	config_free(*own);
	*own = nc;
	*cur = nc;
}

static int
parent_run(int sock, pid_t child, const config_t *c0, const sigset_t *set)
{
	const config_t *cur = c0;
	config_t *own = NULL;
	bool serving = true;
	int status = 0;
	buf_t err = BUF_INIT;

	close_other_fds(sock);
	signal(SIGPIPE, SIG_IGN); /* a closed log pipe is no reason to die */
	int sfd = signalfd(-1, set, SFD_CLOEXEC);
	if (sfd < 0) {
		log_err("privsep: signalfd: %s; stopping", strerror(errno));
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		return 1;
	}
	log_info("privsep: privileged parent pid %d opens secrets for pid %d", (int)getpid(), (int)child);
	if (parent_confine(cur, &err) < 0) {
		log_err("privsep: the privileged parent cannot confine itself: %s; fix that, or set "
		    "\"sandbox = no\" in %s", buf_cstr(&err), cur->path);
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		return 1;
	}
	for (;;) {
		struct pollfd p[2] = {{sfd, POLLIN, 0}, {serving ? sock : -1, POLLIN, 0}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_err("privsep: poll: %s", strerror(errno));
			kill(child, SIGKILL);
			waitpid(child, &status, 0);
			break;
		}
		/* a request: answered by the configuration as it is on disk now,
		 * never older than the daemon's (which may have been sent SIGHUP
		 * directly, not through us) */
		if (serving && (p[1].revents & POLLIN))
			reparse(&cur, &own, &err);
		if (serving && p[1].revents && privsep_serve_one(sock, cur) < 0) {
			serving = false; /* the child closed its end: it is ending */
			close(sock);
		}
		if (!(p[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si)
			continue;
		int sig = (int)si.ssi_signo;
		if (sig == SIGHUP) {
			/* first our own view of the files, then the child's reload */
			reparse(&cur, &own, &err);
			kill(child, SIGHUP);
		} else if (sig == SIGTERM || sig == SIGINT || sig == SIGUSR1) {
			kill(child, sig);
		} else if (sig == SIGCHLD) {
			pid_t w;
			do
				w = waitpid(child, &status, WNOHANG);
			while (w < 0 && errno == EINTR);
			if (w == child)
				break;
		}
	}
	/* the sockets in root's directory (/run/tern): the daemon, no longer
	 * root, may not have been able to remove them */
	remove_socket(cur->local_socket);
	if (cur->local_socket) {
		char *pub = control_public_path(cur);
		remove_socket(pub);
		xfree(pub);
	}
	int code;
	if (WIFEXITED(status)) {
		code = WEXITSTATUS(status);
		if (code)
			log_err("privsep: the daemon (pid %d) exited with status %d", (int)child, code);
	} else {
		code = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		log_err("privsep: the daemon (pid %d) was killed by signal %d", (int)child,
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
	config_free(own);
	buf_free(&err);
	return code;
}

int
privsep_start(const config_t *c, buf_t *err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		buf_printf(err, "privsep: socketpair: %s", strerror(errno));
		return -1;
	}
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	fflush(NULL);
	pid_t me = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(sv[0]);
		close(sv[1]);
		buf_printf(err, "privsep: fork: %s", strerror(e));
		return -1;
	}
	if (pid == 0) {
		close(sv[0]);
		chan = sv[1];
		parent_pid = me;
		log_forked();
		/* the signals stay blocked until privsep_child_ready(), after the
		 * daemon has its handlers: a SIGHUP passed on while it starts is
		 * then handled, not fatal */
		child_mask = old;
		secret_set_opener(ask_parent);
		return 0;
	}
	close(sv[1]);
	exit(parent_run(sv[0], pid, c, &set));
}

void
privsep_child_ready(void)
{
	if (chan < 0)
		return;
	sigprocmask(SIG_SETMASK, &child_mask, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
		log_warn("privsep: prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
	if (getppid() != parent_pid) /* it died before the line above */
		raise(SIGTERM);
}

bool
privsep_active(void)
{
	return chan >= 0;
}

/* ------------------------------------------------------------------ */
/* the child's side                                                    */

int
privsep_request(int sock, enum secret_kind k, const char *path, buf_t *err)
{
	size_t pl = strlen(path);
	char msg[sizeof(struct ps_req) + PATH_MAX];
	if (pl == 0 || pl >= PATH_MAX) {
		buf_printf(err, "%s %s: path too long", secret_key(k), path);
		return -1;
	}
	struct ps_req rq = {PRIVSEP_MAGIC, (uint32_t)k};
	memcpy(msg, &rq, sizeof rq);
	memcpy(msg + sizeof rq, path, pl);
	if (send_msg(sock, msg, sizeof rq + pl, -1) < 0) {
		buf_printf(err, "%s %s: cannot ask the privileged parent: %s", secret_key(k), path,
		    strerror(errno));
		return -1;
	}
	char rep[sizeof(struct ps_rep) + PRIVSEP_TEXT_MAX + 1];
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int) * PRIVSEP_MAX_FDS)];
	} u;
	struct msghdr mh;
	ssize_t n = recv_msg(sock, rep, sizeof rep - 1, u.b, sizeof u.b, &mh);
	int fd = -1;
	if (n > 0)
		take_fds(&mh, &fd);
	struct ps_rep h;
	if (n < 0 || n == 0) {
		buf_printf(err, "%s %s: the privileged parent %s", secret_key(k), path,
		    n < 0 ? strerror(errno) : "is gone (restart tern)");
		return -1;
	}
	memcpy(&h, rep, (size_t)n < sizeof h ? (size_t)n : sizeof h);
	if ((size_t)n < sizeof h || h.magic != PRIVSEP_MAGIC || (h.status == 0) != (fd >= 0)) {
		if (fd >= 0)
			close(fd);
		buf_printf(err, "%s %s: malformed answer from the privileged parent", secret_key(k), path);
		return -1;
	}
	if (fd < 0) {
		rep[n] = '\0';
		buf_puts(err, rep + sizeof h);
	}
	return fd;
}

/* secret_read()'s opener in the child: ask the parent */
static int
ask_parent(enum secret_kind k, const char *path, buf_t *err)
{
	return privsep_request(chan, k, path, err);
}
