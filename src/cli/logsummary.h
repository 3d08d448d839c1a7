/*
 * logsummary.h (cli) - `tern log-summary [--day YYYY-MM-DD] [--top N]
 * [FILE...]`: a daily summary of tern's own log in the spirit of pflogsumm,
 * read from the files or stdin, text lines (stderr/log_file form or syslog
 * form) or JSON lines (log_format = json), mixed as they come.
 *
 * Per day (UTC for tern's timestamps; syslog's own day for syslog lines):
 * messages received (accepted lines, DSNs tern made counted apart) and
 * their bytes, recipients delivered (status=sent), deferred (deferral
 * lines) and bounced, refused commands (reject lines), connections; per
 * recipient domain delivered/deferred/bounced; per sender domain received;
 * top senders; top rejection reasons (the reply, addresses blanked).
 * Streaming: one line at a time; every table is capped (LOGSUM_MAX_KEYS
 * keys a day, then counted under "(others)"), so memory is bounded
 * whatever the log. Lines are split by lib/logline.h, the log's grammar.
 * Exit status: 0, 1 when a file cannot be read, 2 usage.
 */
#ifndef TERN_CLI_LOGSUMMARY_H
#define TERN_CLI_LOGSUMMARY_H

#include <stddef.h>
#include <stdio.h>

#define LOGSUM_MAX_KEYS 5000 /* per table and day */
#define LOGSUM_MAX_DAYS 400

typedef struct logsum logsum_t;

/* day: "YYYY-MM-DD" to keep only that day, or NULL for every day;
 * max_keys: the tables' cap (0: LOGSUM_MAX_KEYS) */
logsum_t *logsum_new(const char *day, size_t max_keys);
/* one log line (without its line end) */
void logsum_line(logsum_t *s, const char *line, size_t n);
/* the report, days in order, top lists of n entries */
void logsum_print(const logsum_t *s, FILE *out, size_t top);
void logsum_free(logsum_t *s);

int cli_log_summary(int argc, char **argv);

#endif
