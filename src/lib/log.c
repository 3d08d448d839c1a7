/*
 * log.c - line logging to stderr or syslog (see log.h).
 */
#include "lib/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_syslog;
static int log_debug_on;
static const char *log_ident = "tern";
static int log_pid; /* cached: one getpid(2) per line shows in profiles */

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

	if (!log_syslog) {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		o += strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
		o += (size_t)snprintf(line + o, sizeof line - o, ".%03ldZ %s[%d]: %s",
		    (long)(tv.tv_usec / 1000), log_ident, log_pid ? log_pid : (int)getpid(), prio_word(prio));
	} else {
		o += (size_t)snprintf(line, sizeof line, "%s", prio_word(prio));
	}
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
	if (log_syslog) {
		line[o] = '\0';
		syslog(prio, "%s", line);
		return;
	}
	line[o++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, o);
	(void)w;
}
