/*
 * status.h - the status page: one read-only HTML page (GET /status, public:
 * it holds no data) and the JSON it draws (GET /api/v1/status, behind the
 * listener's bearer token), on the HTTP listener (lib/httpd.h).
 *
 * The JSON is built with jansson from bounded state only: the scheduler's
 * queue grouped by destination domain (at most STATUS_MAX_DESTS, the
 * largest first), and common/recent.h's last hour (deliveries per minute,
 * TLS share, the last rejections). docs/operations.md "Status page"
 * describes both.
 *
 * The page (src/control/status/page.html, built into the binary) has no
 * framework and loads nothing from elsewhere; it reads the token from the
 * URL fragment (#token=..., never sent to the server) or asks for it, keeps
 * it in sessionStorage and sends it as "Authorization: Bearer".
 *
 * Event-loop thread only (the handlers run on it; the snapshot of the
 * queue is taken there).
 */
#ifndef TERN_STATUS_H
#define TERN_STATUS_H

#include "lib/buf.h"
#include "lib/httpd.h"

#define STATUS_MAX_DESTS 50

struct sched;

/* Register the page's and the data's routes on h; sched may be NULL (an
 * empty queue). 0, or -1 when the route table is full. */
int status_routes(httpd_t *h, struct sched *sched);

/* The JSON document of GET /api/v1/status, appended to out (for tests). */
void status_json(struct sched *sched, buf_t *out);

#endif
