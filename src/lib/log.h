/*
 * log.h - one line per event.
 *
 * Lines are "key=value" style and carry the session or queue ID; the caller
 * formats them. log_msg() guarantees a line never contains a control
 * character: CR, LF and other bytes below 0x20 (and 0x7f) coming from the
 * network are written as \xHH, so a hostile peer cannot forge log lines.
 * Safe to call from any thread (one write(2) per line, or syslog(3)).
 * Foreground: stderr with a timestamp. Daemon: syslog, facility mail.
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <syslog.h>

void log_init(const char *ident, int use_syslog, int debug);
/* in a process just forked: the lines carry its own pid from now on */
void log_forked(void);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
