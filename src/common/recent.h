/*
 * recent.h - what happened lately, for the status page: a fixed-size
 * memory of the last hour's events, fed where each event's log line is
 * written, read by control/status.c.
 *
 *   - a ring of RECENT_MINUTES per-minute slots, each counting recipient
 *     outcomes (sent, deferred, bounced: one per "to=<...> status=" log
 *     line, common/maillog.c) and SMTP sessions by direction, with TLS or
 *     without (inbound: a session of an smtp, submission or smtps listener
 *     when it ends; outbound: a session that got as far as a greeting, when
 *     it ends);
 *   - a ring of the last RECENT_REJECTS refused commands (one per
 *     "reject cmd=" log line): time, client, command, reply code, enhanced
 *     status code and the reply's text, each cut to a fixed size.
 *
 * Guarantees: the memory is fixed (two static arrays, no allocation)
 * whatever the traffic; a slot older than the hour is reused, never
 * grown. Every function is thread-safe (one mutex) and cheap enough to
 * call at every event. Strings are copied with control characters
 * replaced by '?'.
 * Must not: block, log, or know any stage (common/: the mail vocabulary).
 */
#ifndef TERN_RECENT_H
#define TERN_RECENT_H

#include <stdbool.h>
#include <stdint.h>

#define RECENT_MINUTES 60
#define RECENT_REJECTS 50

typedef struct recent_minute {
	int64_t minute;     /* unix time / 60 of this slot */
	unsigned sent, deferred, bounced;
	unsigned in_tls, in_plain;   /* inbound sessions ended, with TLS or without */
	unsigned out_tls, out_plain; /* outbound sessions ended */
} recent_minute_t;

typedef struct recent_reject {
	int64_t time;       /* unix seconds */
	char client[48];    /* IP address as logged */
	char cmd[12];       /* MAIL, RCPT, DATA... */
	char code[4];       /* "550"; "" when the reply has none */
	char status[12];    /* "5.1.1"; "" when the reply has none */
	char text[160];     /* the reply after code and status, cut */
} recent_reject_t;

typedef struct recent_snap {
	int64_t now;        /* unix seconds when taken */
	/* the last RECENT_MINUTES minutes, oldest first, the current one last;
	 * minutes without events have zero counts */
	recent_minute_t minutes[RECENT_MINUTES];
	/* the last rejections, newest first */
	recent_reject_t rejects[RECENT_REJECTS];
	unsigned nrejects;
	uint64_t rejects_total; /* since start, including those no longer kept */
} recent_snap_t;

/* A recipient's outcome, as logged: status is enum rcpt_status
 * (common/envelope.h): pending = deferred, sent, failed/reported = bounced. */
void recent_delivery(int status);
/* A refused command: reply as sent ("550 5.1.1 text"). NULLs are "". */
void recent_reject(const char *client, const char *cmd, const char *reply);
/* An SMTP session ended, inbound or outbound, under TLS or not. */
void recent_session(bool inbound, bool tls);

/* A consistent copy of everything (about 16 KiB: the caller's memory). */
void recent_snapshot(recent_snap_t *out);

/* For tests: forget everything, and read time from now (NULL: time()). */
void recent_reset(int64_t (*now)(void));

#endif
