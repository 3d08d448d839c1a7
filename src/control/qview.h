/*
 * qview.h - the administrator's view of queued messages: the mailq listing,
 * tern's own listing, one message in detail, each as text or JSON.
 *
 * The same functions serve the daemon (entries copied from the scheduler's
 * index, sched_snapshot) and `tern queue` when the daemon is not running
 * (entries loaded from the spool with queue_scan), so both give the same
 * output. docs/queue-tools.md describes every format.
 *
 * Guarantees: the JSON output (built with jansson) is valid JSON (UTF-8;
 * invalid bytes become U+FFFD, control characters are escaped) whatever the envelope holds; text
 * output has no control characters from the envelope or remote replies.
 * Pure formatting, no I/O, except qview_read_headers (blocking: worker
 * threads or the command line tool only).
 */
#ifndef TERN_QVIEW_H
#define TERN_QVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/envelope.h"
#include "lib/buf.h"
#include "sched/sched.h"

/* a message as listed: the scheduler's snapshot entry (sched.h) */
typedef sched_entry_t qview_entry_t;

/* sched_entries_free and sched_entries_sort, under this module's prefix */
void qview_entries_free(qview_entry_t *e, size_t n);
/* in queue ID (arrival) order */
void qview_sort(qview_entry_t *e, size_t n);

/* Keep the messages with a recipient in domain (case-insensitive), in
 * order, freeing the others; the new count. */
size_t qview_filter_domain(qview_entry_t *e, size_t n, const char *domain);

/* A recipient's status word: "active", "queued" (never tried), "deferred",
 * "sent", "failed", "reported". */
const char *qview_status(const qview_entry_t *e, size_t i);

/* Why a held message is held, NULL when it is not: the reason the filter
 * stage left with each of its recipients when a milter quarantined it or a
 * header/body check said HOLD ("quarantined: REASON (milter NAME)",
 * "quarantined: TEXT (header_checks FILE:LINE)"; the first recipient not
 * yet tried that has one), else "held by the administrator" (tern queue
 * hold). A quarantined message that was released and held again before
 * its first delivery attempt still shows the quarantine reason. */
const char *qview_held_reason(const qview_entry_t *e);

/*
 * Postfix/Sendmail mailq format:
 *   -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
 *   QID[*!]  SIZE  Www Mmm dd hh:mm:ss  sender
 *   (why it is held, for a held one: qview_held_reason)
 *   (reason)
 *                                      recipient
 *   (blank line)
 *   -- N Kbytes in M Requests.
 * '*' marks a message in delivery, '!' a held one; only recipients still
 * to be delivered are listed; "Mail queue is empty" for none.
 */
void qview_mailq(buf_t *out, const qview_entry_t *e, size_t n);

/* tern's listing: every recipient with its status, attempts, next try and
 * last reply. */
void qview_list_text(buf_t *out, const qview_entry_t *e, size_t n);
/* {"messages": [message...], "count": N, "bytes": B}; see docs/queue-tools.md
 * (the object, or dumped compact with a newline) */
json_t *qview_list_obj(const qview_entry_t *e, size_t n);
void qview_list_json(buf_t *out, const qview_entry_t *e, size_t n);

/* One message; hdr (the header section, hlen octets) may be NULL. */
void qview_show_text(buf_t *out, const qview_entry_t *e, const char *hdr, size_t hlen);
/* {"message": {...}, "headers": "..." or null} */
json_t *qview_show_obj(const qview_entry_t *e, const char *hdr, size_t hlen);
void qview_show_json(buf_t *out, const qview_entry_t *e, const char *hdr, size_t hlen);

/* An operation's outcome: {"ok": B, "queue_id": QID or null, "result": TEXT} */
json_t *qview_result_obj(bool ok, const char *qid, const char *text);

/* A JSON string of s (n octets; invalid UTF-8 becomes U+FFFD). */
json_t *qview_json_string(const char *s, size_t n);
/* j, compact, and a newline */
void qview_json_dump(buf_t *out, const json_t *j);
/* the JSON string literal of s (n octets), quotes included */
void qview_json_str(buf_t *out, const char *s, size_t n);

/* Read the header section of a queued message (up to the empty line, at
 * most 64 KiB, cut at a line end) into out. Blocking. 0 or -1 with err. */
int qview_read_headers(const char *spool_dir, const envelope_t *env, buf_t *out, buf_t *err);

#endif
