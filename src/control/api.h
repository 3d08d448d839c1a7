/*
 * api.h - the JSON API on the HTTP listener (lib/httpd.h): what the queue
 * tools do, over HTTP, for scripts and the status page.
 *
 *   GET    /api/v1/queue[?domain=D]       the listing   (tern queue list --json)
 *   GET    /api/v1/queue/QID              one message   (tern queue show --json)
 *   POST   /api/v1/queue/flush[?domain=D] retry now     (tern queue flush [D])
 *   POST   /api/v1/queue/QID/flush        retry one message now
 *   POST   /api/v1/queue/QID/hold         hold          (tern queue hold)
 *   POST   /api/v1/queue/QID/release      release       (tern queue release)
 *   POST   /api/v1/queue/QID/bounce       bounce now    (tern queue bounce)
 *   DELETE /api/v1/queue/QID              delete, no DSN (tern queue delete)
 *   POST   /api/v1/reload                 what SIGHUP does
 *
 * Every route needs the bearer token (httpd.h). Every body is JSON, the
 * same objects the queue tools print with --json (control/qview.h), built
 * by the same code: each route runs control/qops.c's operation, as the
 * control socket does. Status: 200 done, 400 a bad queue ID or action, 404
 * no such message or route, 500 it could not be done (the disk, a
 * configuration with errors); docs/operations.md has every route.
 */
#ifndef TERN_API_H
#define TERN_API_H

#include "common/config.h"
#include "control/control.h"
#include "lib/buf.h"
#include "lib/httpd.h"

typedef struct api api_t;

/* Add the API's routes to h (ctx is copied). */
api_t *api_new(httpd_t *h, const control_ctx_t *ctx);
/* After httpd_stop: nothing of the API runs any more. */
void api_free(api_t *a);

/*
 * The bearer token: the first line of http_token_file, read through the
 * secret opener (the privileged parent when there is one; common/secret.h),
 * white space around it removed, at least API_TOKEN_MIN octets of visible
 * ASCII. Given to h when h is not NULL (check-config passes NULL). 0, or
 * -1 with the reason in err (h keeps the token it had). No
 * http_token_file: 0 and h gets none (every route answers 401).
 */
#define API_TOKEN_MIN 16
int api_token_load(const config_t *c, httpd_t *h, buf_t *err);

#endif
