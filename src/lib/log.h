/*
 * log.h - one line per event.
 *
 * Lines are "key=value" style and carry the session or queue ID; the caller
 * formats them. log_msg() guarantees a line never contains a control
 * character: CR, LF and other bytes below 0x20 (and 0x7f) coming from the
 * network are written as \xHH, so a hostile peer cannot forge log lines.
 * Safe to call from any thread (one write(2) per line, or syslog(3)).
 * Foreground: stderr with a timestamp. Daemon: syslog, facility mail.
 * And, with log_file_open(), a file as well (the same timestamped lines as
 * stderr): each line is one write(2) with O_APPEND, made under a lock that
 * log_file_reopen() takes to swap the descriptor, so a line goes whole to
 * the old file or whole to the new one, never split or lost (logrotate:
 * rename the file, then SIGUSR1, docs/operations.md).
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <sys/types.h>
#include <syslog.h>

#include "lib/buf.h"

void log_init(const char *ident, int use_syslog, int debug);
/* in a process just forked: the lines carry its own pid from now on */
void log_forked(void);
void log_msg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Open (create, mode 0640, append) path as a further destination. owner:
 * when not (uid_t)-1 and the file was just created, it is given to that
 * user (tern's, when started as root) so that the files the unprivileged
 * daemon creates at each reopen have the same owner. 0, or -1 with *err. */
int log_file_open(const char *path, uid_t owner, buf_t *err);
/* Open the same path again (a new file if it was renamed) and swap it in;
 * the old descriptor is closed once no line is being written to it. On
 * failure the old file stays in use: -1 with *err. 0 without a log file. */
int log_file_reopen(buf_t *err);
/* on: every line as one JSON object (log_format = json): the fields
 * lib/logline.h splits out of the text, plus ts, level, pid and msg (the
 * whole text); bytes that are not UTF-8 become \xHH text, like control
 * bytes. off (the default): the key=value text. */
void log_set_json(int on);
/* the log file's path, or NULL */
const char *log_file_path(void);

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
