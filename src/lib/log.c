/*
 * log.c - line logging to stderr or syslog, and a log file (see log.h).
 */
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/xalloc.h"

static int log_syslog;
static int log_debug_on;
static const char *log_ident = "tern";
static int log_pid; /* cached: one getpid(2) per line shows in profiles */
/* the log file: written and swapped under the lock (a reopen waits for the
 * line being written, then the next line goes to the new file) */
static pthread_mutex_t log_file_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_file_fd = -1;
static char *log_file_name;

void
log_init(const char *ident, int use_syslog, int debug)
{
	log_ident = ident;
	log_syslog = use_syslog;
	log_debug_on = debug;
	log_pid = (int)getpid();
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_forked(void)
{
	log_pid = (int)getpid();
}

static const char *
prio_word(int prio)
{
	switch (prio) {
	case LOG_ERR: return "error: ";
	case LOG_WARNING: return "warning: ";
	case LOG_DEBUG: return "debug: ";
	default: return "";
	}
}

void
log_msg(int prio, const char *fmt, ...)
{
	char raw[2048], line[4096];
	va_list ap;
	size_t o = 0;

	if (prio == LOG_DEBUG && !log_debug_on)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(raw, sizeof raw, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;

	/* the timestamped form: stderr in the foreground, and the log file */
	bool stamped = !log_syslog || log_file_fd >= 0;
	size_t body = 0; /* where the text after the timestamp starts */
	if (stamped) {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		o += strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
		o += (size_t)snprintf(line + o, sizeof line - o, ".%03ldZ %s[%d]: ",
		    (long)(tv.tv_usec / 1000), log_ident, log_pid ? log_pid : (int)getpid());
		body = o;
	}
	o += (size_t)snprintf(line + o, sizeof line - o, "%s", prio_word(prio));
	/* copy, escaping control bytes; leave room for "...\n\0" */
	for (const unsigned char *p = (const unsigned char *)raw; *p && o + 8 < sizeof line; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			o += (size_t)snprintf(line + o, sizeof line - o, "\\x%02x", *p);
		} else {
			line[o++] = (char)*p;
		}
	}
	if ((size_t)n >= sizeof raw) {
		memcpy(line + o, "...", 3);
		o += 3;
	}
	line[o] = '\0';
	if (log_syslog)
		syslog(prio, "%s", line + body);
	line[o++] = '\n';
	if (!log_syslog) {
		ssize_t w = write(STDERR_FILENO, line, o);
		(void)w;
	}
	if (log_file_fd >= 0) {
		pthread_mutex_lock(&log_file_lock);
		if (log_file_fd >= 0) {
			ssize_t w = write(log_file_fd, line, o);
			(void)w;
		}
		pthread_mutex_unlock(&log_file_lock);
	}
}

static int
open_file(const char *path, uid_t owner, buf_t *err)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0);
	if (fd < 0 && errno == ENOENT) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW,
		    0640);
		/* 0640 whatever the umask (the daemon's is 077): the group may read */
		if (fd >= 0 && fchmod(fd, 0640) < 0) {
			buf_printf(err, "log_file %s: chmod: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (fd >= 0 && owner != (uid_t)-1 && fchown(fd, owner, (gid_t)-1) < 0) {
			buf_printf(err, "log_file %s: chown: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
	}
	if (fd < 0) {
		buf_printf(err, "log_file %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		buf_printf(err, "log_file %s: not a regular file", path);
		close(fd);
		return -1;
	}
	return fd;
}

int
log_file_open(const char *path, uid_t owner, buf_t *err)
{
	int fd = open_file(path, owner, err);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&log_file_lock);
	int old = log_file_fd;
	log_file_fd = fd;
	xfree(log_file_name);
	log_file_name = xstrdup(path);
	pthread_mutex_unlock(&log_file_lock);
	if (old >= 0)
		close(old);
	return 0;
}

int
log_file_reopen(buf_t *err)
{
	if (!log_file_name)
		return 0;
	/* the new file first: until it is open, lines go on to the old one */
	int fd = open_file(log_file_name, (uid_t)-1, err);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&log_file_lock);
	int old = log_file_fd;
	log_file_fd = fd;
	pthread_mutex_unlock(&log_file_lock);
	if (old >= 0)
		close(old);
	return 0;
}

const char *
log_file_path(void)
{
	return log_file_name;
}
