/*
 * qid.h - queue IDs.
 *
 * A queue ID names one message everywhere: the spool file, the Received
 * header, every log line, the Maildir file names. It is 16 characters of
 * [0-9A-Z] without I, L, O, U (Crockford base32): 11 characters of the
 * arrival time in microseconds (so IDs sort by arrival) and 5 of a
 * per-process counter mixed with the pid, so IDs made in the same
 * microsecond by one process, or by two processes, differ.
 * Thread-safe.
 */
#ifndef TERN_QID_H
#define TERN_QID_H

#include <stdbool.h>
#include <stddef.h>

#define QID_LEN 16
#define QID_SIZE (QID_LEN + 1)

void qid_new(char out[QID_SIZE]);
/* true when s[0..n) has the form of a queue ID (used before trusting a spool file name) */
bool qid_valid(const char *s, size_t n);

#endif
