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

#include <jansson.h>
#include <stdlib.h>

#include "lib/logline.h"
#include "lib/utf8.h"
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
static int log_json; /* log_format = json */

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

/* one finished line (with its '\n') to every destination; syslog gets it
 * without the timestamp part (the first skip bytes) and the line end */
static void
emit(int prio, char *line, size_t o, size_t skip)
{
	if (log_syslog) {
		line[o - 1] = '\0';
		syslog(prio, "%s", line + skip);
		line[o - 1] = '\n';
	} else {
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

static const char *
level_name(int prio)
{
	switch (prio) {
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_DEBUG: return "debug";
	default: return "info";
	}
}

static void
put_span(json_t *o, const char *k, const char *p, size_t n)
{
	json_t *v = json_stringn(p, n);
	if (v)
		json_object_set_new(o, k, v);
}

/* The JSON form of one line (body: the escaped text, valid UTF-8), split by
 * logline_parse() (lib/logline.h: the one place that knows the grammar). */
static void
emit_json(int prio, const struct timeval *tv, const char *body, size_t blen)
{
	logline_t l;
	logline_parse(body, blen, &l);
	json_t *o = json_object();
	if (!o)
		return;
	char ts[40];
	struct tm tm;
	gmtime_r(&tv->tv_sec, &tm);
	size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + tl, sizeof ts - tl, ".%03ldZ", (long)(tv->tv_usec / 1000));
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "level", json_string(level_name(prio)));
	json_object_set_new(o, "pid", json_integer(log_pid ? log_pid : (int)getpid()));
	if (l.id.n)
		put_span(o, l.id.p[0] == 'S' ? "session" : "qid", l.id.p, l.id.n);
	if (l.event.n)
		put_span(o, "event", l.event.p, l.event.n);
	for (size_t i = 0; i < l.nkv; i++) {
		char k[64];
		size_t kn = l.key[i].n < sizeof k - 1 ? l.key[i].n : sizeof k - 1;
		memcpy(k, l.key[i].p, kn);
		k[kn] = '\0';
		if (json_object_get(o, k) == NULL) /* the line's own fields win */
			put_span(o, k, l.val[i].p, l.val[i].n);
	}
	if (l.has_text)
		put_span(o, "text", l.text.p, l.text.n);
	put_span(o, "msg", body, blen);
	char *js = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!js)
		return;
	size_t n = strlen(js);
	char *line = malloc(n + 2);
	if (line) {
		memcpy(line, js, n);
		line[n] = '\n';
		line[n + 1] = '\0';
		emit(prio, line, n + 1, 0);
		free(line);
	}
	free(js);
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

	struct timeval tv;
	gettimeofday(&tv, NULL);
	bool json = log_json;
	/* the timestamped form: stderr in the foreground, and the log file */
	bool stamped = !json && (!log_syslog || log_file_fd >= 0);
	size_t skip = 0; /* where the text after the timestamp starts */
	if (stamped) {
		struct tm tm;
		gmtime_r(&tv.tv_sec, &tm);
		o += strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
		o += (size_t)snprintf(line + o, sizeof line - o, ".%03ldZ %s[%d]: ",
		    (long)(tv.tv_usec / 1000), log_ident, log_pid ? log_pid : (int)getpid());
		skip = o;
	}
	if (!json)
		o += (size_t)snprintf(line + o, sizeof line - o, "%s", prio_word(prio));
	/* copy, escaping control bytes (and for JSON, bytes that are not
	 * UTF-8: a JSON string must be valid Unicode); room for "...\n\0" */
	const unsigned char *p = (const unsigned char *)raw, *rend = p + strlen(raw);
	while (p < rend && o + 8 < sizeof line) {
		size_t sl;
		if (*p < 0x20 || *p == 0x7f) {
			o += (size_t)snprintf(line + o, sizeof line - o, "\\x%02x", *p++);
		} else if (*p < 0x80 || !json) {
			line[o++] = (char)*p++;
		} else if ((sl = utf8_seq_len(p, (size_t)(rend - p))) == 0) {
			o += (size_t)snprintf(line + o, sizeof line - o, "\\x%02x", *p++);
		} else if (o + sl + 8 < sizeof line) {
			memcpy(line + o, p, sl);
			o += sl;
			p += sl;
		} else {
			break;
		}
	}
	if ((size_t)n >= sizeof raw || p < rend) { /* cut: say so */
		for (int i = 0; i < 3; i++)
			line[o++] = '.';
	}
	if (json) {
		emit_json(prio, &tv, line, o);
		return;
	}
	line[o++] = '\n';
	emit(prio, line, o, skip);
}

void
log_set_json(int on)
{
	log_json = on;
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
