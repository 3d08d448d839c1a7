/*
 * control.c - the daemon's side of the control socket (see control.h).
 *
 * Each connection reads one request line (10 s at most, CONTROL_MAX_REQUEST
 * octets), has control/qops.c run it (the same code as the HTTP API) and
 * sends the outcome, then closes. A connection waiting for the scheduler
 * or a job stays allocated until that answer comes, even when its handle
 * was closed meanwhile (peer gone, or control_stop).
 *
 * The public socket (control.h) takes anyone: each connection remembers
 * whether its peer is root or our user (privileged); for others only list
 * and mailq are answered, after queue_list_users allows the peer (a user
 * or group list is looked up on the pool: NSS may block), from a snapshot
 * cut down to what mailq shows (redact).
 *
 * Must not: block the loop after start-up, trust the request (bounded line;
 * qops checks queue IDs), or change the queue, show a message or reload
 * for a peer that is not our user or root.
 */
#include "control/control.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/qid.h"
#include "control/qops.h"
#include "lib/log.h"
#include "lib/xalloc.h"
#include "queue/queue.h"
#include "sched/sched.h"

#define REQUEST_TIMEOUT_MS 10000
/* connections from ordinary users at once (each may wait up to 10 s for
 * its request): beyond, new ones are answered "busy" and closed, so that
 * nobody can use up the daemon's file descriptors through the public socket */
#define PUBLIC_MAX_CONNS 32

struct control {
	control_ctx_t ctx;
	uv_pipe_t listener;
	uv_pipe_t public_;  /* the public queue socket, when bound */
	bool have_public;
	unsigned nunprivileged; /* open connections from ordinary users */
	char *path;
	char *public_path;
	struct cconn *conns;
	bool stopping;
	unsigned open_handles; /* listener + connections not yet closed */
};

typedef struct cconn {
	control_t *ctl;
	uv_pipe_t pipe;
	uv_timer_t timer;
	buf_t in;
	buf_t out;
	uv_write_t wreq;
	bool json;
	bool answered;     /* a reply has been queued */
	bool pending;      /* waiting for the scheduler or a job */
	bool closing;      /* uv_close called on pipe and timer */
	bool privileged;   /* the peer is root or our user */
	bool counted;      /* in nunprivileged */
	uid_t uid;         /* the peer (SO_PEERCRED) */
	gid_t gid;
	unsigned handles;  /* pipe and timer not yet closed */
	struct cconn *next, *prev;
} cconn_t;

static void ctl_maybe_free(control_t *c);
static void answer_list(cconn_t *cc, const char *verb, const char *domain);

/* the public socket, bound by control_bind_public before control_start */
static int public_fd = -1;
static char *public_bound;

/* ---- connection lifetime ---- */

static void
conn_maybe_free(cconn_t *cc)
{
	if (cc->handles > 0 || cc->pending)
		return;
	control_t *c = cc->ctl;
	if (cc->prev)
		cc->prev->next = cc->next;
	else
		c->conns = cc->next;
	if (cc->next)
		cc->next->prev = cc->prev;
	if (cc->counted)
		c->nunprivileged--;
	buf_free(&cc->in);
	buf_free(&cc->out);
	xfree(cc);
	ctl_maybe_free(c);
}

static void
on_conn_handle_closed(uv_handle_t *h)
{
	cconn_t *cc = h->data;
	cc->handles--;
	conn_maybe_free(cc);
}

static void
conn_close(cconn_t *cc)
{
	if (cc->closing)
		return;
	cc->closing = true;
	uv_timer_stop(&cc->timer);
	uv_close((uv_handle_t *)&cc->pipe, on_conn_handle_closed);
	uv_close((uv_handle_t *)&cc->timer, on_conn_handle_closed);
}

static void
on_written(uv_write_t *w, int status)
{
	cconn_t *cc = w->data;
	conn_close(cc);
}

/* Send "ok\n" or "error: TEXT\n" and the body, then close. */
static void
conn_reply(cconn_t *cc, bool ok, const char *errtext, const buf_t *body)
{
	if (cc->answered)
		return;
	cc->answered = true;
	if (cc->closing)
		return;
	buf_reset(&cc->out);
	if (ok) {
		buf_puts(&cc->out, "ok\n");
	} else {
		buf_puts(&cc->out, "error: ");
		/* one line */
		for (const char *p = errtext; *p; p++)
			buf_putc(&cc->out, *p == '\n' || *p == '\r' ? ' ' : *p);
		buf_putc(&cc->out, '\n');
	}
	if (body && body->len)
		buf_append(&cc->out, body->data, body->len);
	uv_buf_t b = uv_buf_init(cc->out.data, (unsigned)cc->out.len);
	cc->wreq.data = cc;
	uv_read_stop((uv_stream_t *)&cc->pipe);
	if (uv_write(&cc->wreq, (uv_stream_t *)&cc->pipe, &b, 1, on_written) < 0)
		conn_close(cc);
}

/* an operation's outcome (qops.h): "ok" and the body, or "error: TEXT"
 * (and, for JSON, the body with "ok": false) */
static void
on_qops_done(void *arg, const qops_res_t *res)
{
	cconn_t *cc = arg;
	cc->pending = false;
	conn_reply(cc, res->code == QOPS_OK, res->text, res->body);
	conn_maybe_free(cc);
}

static void
run_op(cconn_t *cc, const qops_req_t *rq)
{
	cc->pending = true; /* the answer may come now or later */
	qops_run(&cc->ctl->ctx, rq, on_qops_done, cc);
}

/* ---- what others may see ---- */

/* queue_list_users: "anyone", "none", user names, %groups */
enum list_rule { LIST_ANYONE, LIST_NONE, LIST_SOME };

static enum list_rule
list_rule(const config_t *c)
{
	for (size_t i = 0; i < c->nqueue_list_users; i++)
		if (strcmp(c->queue_list_users[i], "none") == 0)
			return LIST_NONE;
	for (size_t i = 0; i < c->nqueue_list_users; i++)
		if (strcmp(c->queue_list_users[i], "anyone") == 0)
			return LIST_ANYONE;
	return c->nqueue_list_users ? LIST_SOME : LIST_NONE;
}

/* a user or group list: looked up on the pool (NSS may block) */
typedef struct listcheck {
	uv_work_t req;
	cconn_t *cc;
	char *verb;
	char *domain;
	char **names; /* a copy of queue_list_users */
	size_t n;
	bool allowed;
	char user[64];
} listcheck_t;

static void
listcheck_work(uv_work_t *req)
{
	listcheck_t *j = req->data;
	struct passwd pw, *pres = NULL;
	char buf[16384];
	snprintf(j->user, sizeof j->user, "uid %u", (unsigned)j->cc->uid);
	if (getpwuid_r(j->cc->uid, &pw, buf, sizeof buf, &pres) != 0 || !pres)
		return;
	snprintf(j->user, sizeof j->user, "%s", pw.pw_name);
	gid_t groups[256];
	int ng = 256;
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &ng) < 0)
		ng = 256; /* more than that: the first 256 */
	for (size_t i = 0; i < j->n && !j->allowed; i++) {
		const char *w = j->names[i];
		if (w[0] != '%') {
			j->allowed = strcmp(w, pw.pw_name) == 0;
			continue;
		}
		struct group gr, *gres = NULL;
		char gbuf[16384];
		if (getgrnam_r(w + 1, &gr, gbuf, sizeof gbuf, &gres) != 0 || !gres)
			continue;
		j->allowed = gr.gr_gid == j->cc->gid;
		for (int g = 0; g < ng && !j->allowed; g++)
			j->allowed = groups[g] == gr.gr_gid;
	}
}

static void
listcheck_done(uv_work_t *req, int status)
{
	listcheck_t *j = req->data;
	cconn_t *cc = j->cc;
	cc->pending = false;
	if (j->allowed) {
		answer_list(cc, j->verb, j->domain);
	} else {
		char text[300];
		snprintf(text, sizeof text, "permission denied: %s may not list the queue "
		    "(queue_list_users in %s)", j->user, (*cc->ctl->ctx.cfg)->path);
		conn_reply(cc, false, text, NULL);
	}
	for (size_t i = 0; i < j->n; i++)
		xfree(j->names[i]);
	xfree(j->names);
	xfree(j->verb);
	xfree(j->domain);
	xfree(j);
	conn_maybe_free(cc);
}

/* list or mailq, for anyone allowed to see it (redacted unless privileged) */
static void
answer_list(cconn_t *cc, const char *verb, const char *domain)
{
	qops_req_t rq = {.verb = strcmp(verb, "mailq") == 0 ? QOPS_MAILQ : QOPS_LIST,
	    .domain = domain, .json = cc->json, .redact = !cc->privileged};
	run_op(cc, &rq);
}

/* A peer that is neither root nor our user: list and mailq, if allowed. */
static void
handle_unprivileged(cconn_t *cc, const char *verb, const char *domain)
{
	const config_t *c = (*cc->ctl->ctx.cfg);
	char text[300];
	if (strcmp(verb, "list") != 0 && strcmp(verb, "mailq") != 0) {
		const char *me = c->user ? c->user : "the user tern runs as";
		snprintf(text, sizeof text, "permission denied: only root and %s may %s; others may "
		    "only list the queue", me, verb[0] ? verb : "do that");
		conn_reply(cc, false, text, NULL);
		return;
	}
	enum list_rule rule = list_rule(c);
	if (rule == LIST_ANYONE) {
		answer_list(cc, verb, domain);
		return;
	}
	if (rule == LIST_NONE) {
		snprintf(text, sizeof text, "permission denied: listing the queue is for root and %s "
		    "only (queue_list_users = none in %s)", c->user ? c->user : "tern's user", c->path);
		conn_reply(cc, false, text, NULL);
		return;
	}
	listcheck_t *j = xcalloc(1, sizeof *j);
	j->cc = cc;
	j->verb = xstrdup(verb);
	j->domain = domain ? xstrdup(domain) : NULL;
	j->n = c->nqueue_list_users;
	j->names = xcalloc(j->n, sizeof *j->names);
	for (size_t i = 0; i < j->n; i++)
		j->names[i] = xstrdup(c->queue_list_users[i]);
	j->req.data = j;
	cc->pending = true;
	uv_queue_work(cc->ctl->ctx.loop, &j->req, listcheck_work, listcheck_done);
}

static void
handle_request(cconn_t *cc, char *line)
{
	char *words[4] = {0};
	size_t nw = 0;
	for (char *tok = strtok(line, " \t"); tok && nw < 4; tok = strtok(NULL, " \t"))
		words[nw++] = tok;
	size_t w = 0;
	if (nw > 0 && strcmp(words[0], "json") == 0) {
		cc->json = true;
		w = 1;
	}
	const char *verb = w < nw ? words[w] : "";
	const char *arg = w + 1 < nw ? words[w + 1] : NULL;
	if (w + 2 < nw) {
		conn_reply(cc, false, "too many arguments", NULL);
		return;
	}
	int v = qops_verb_of(verb);
	if (!cc->privileged) {
		handle_unprivileged(cc, verb, v == QOPS_LIST || v == QOPS_MAILQ ? arg : NULL);
		return;
	}
	if (v < 0) {
		conn_reply(cc, false, "unknown request (expected list, mailq, show, flush, hold, "
		    "release, delete, bounce or reload)", NULL);
		return;
	}
	qops_req_t rq = {.verb = (enum qops_verb)v, .json = cc->json};
	if (v == QOPS_LIST || v == QOPS_MAILQ) {
		rq.domain = arg;
	} else if (v == QOPS_FLUSH && arg) {
		/* a queue ID (any case), else a domain */
		bool is_qid = strlen(arg) == QID_LEN && !strchr(arg, '.');
		for (size_t i = 0; is_qid && arg[i]; i++)
			is_qid = (arg[i] >= '0' && arg[i] <= '9') || (arg[i] >= 'A' && arg[i] <= 'Z') ||
			    (arg[i] >= 'a' && arg[i] <= 'z');
		if (is_qid)
			rq.qid = arg;
		else
			rq.domain = arg;
	} else if (v == QOPS_RELOAD && arg) {
		conn_reply(cc, false, "reload takes no argument", NULL);
		return;
	} else {
		rq.qid = arg;
	}
	run_op(cc, &rq);
}

/* ---- reading ---- */

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	cconn_t *cc = h->data;
	buf_reserve(&cc->in, CONTROL_MAX_REQUEST + 1);
	size_t room = CONTROL_MAX_REQUEST + 1 - cc->in.len;
	*b = uv_buf_init(cc->in.data + cc->in.len, (unsigned)room);
}

static void
on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	cconn_t *cc = st->data;
	if (nread < 0) {
		conn_close(cc);
		return;
	}
	cc->in.len += (size_t)nread;
	char *nl = memchr(cc->in.data, '\n', cc->in.len);
	if (!nl) {
		if (cc->in.len > CONTROL_MAX_REQUEST)
			conn_reply(cc, false, "request line too long", NULL);
		return;
	}
	*nl = '\0';
	if (nl > cc->in.data && nl[-1] == '\r')
		nl[-1] = '\0';
	uv_read_stop(st);
	uv_timer_stop(&cc->timer);
	for (const char *p = cc->in.data; *p; p++) {
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			conn_reply(cc, false, "control characters in the request", NULL);
			return;
		}
	}
	handle_request(cc, cc->in.data);
}

static void
on_conn_timeout(uv_timer_t *t)
{
	cconn_t *cc = t->data;
	conn_reply(cc, false, "timeout waiting for the request", NULL);
}

/* SO_PEERCRED: who the peer is, and whether it is root or our own user;
 * -1 when the kernel does not say */
static int
peer_creds(cconn_t *cc)
{
	uv_os_fd_t fd;
	if (uv_fileno((uv_handle_t *)&cc->pipe, &fd) != 0)
		return -1;
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return -1;
	cc->uid = cr.uid;
	cc->gid = cr.gid;
	cc->privileged = cr.uid == 0 || cr.uid == geteuid();
	return 0;
}

static void
on_connection(uv_stream_t *server, int status)
{
	control_t *c = server->data;
	if (status < 0 || c->stopping)
		return;
	cconn_t *cc = xcalloc(1, sizeof *cc);
	cc->ctl = c;
	uv_pipe_init(c->ctx.loop, &cc->pipe, 0);
	uv_timer_init(c->ctx.loop, &cc->timer);
	cc->pipe.data = cc;
	cc->timer.data = cc;
	cc->handles = 2;
	cc->next = c->conns;
	if (c->conns)
		c->conns->prev = cc;
	c->conns = cc;
	if (uv_accept(server, (uv_stream_t *)&cc->pipe) < 0) {
		conn_close(cc);
		return;
	}
	bool public_ = server == (uv_stream_t *)&c->public_;
	if (peer_creds(cc) < 0 || (!cc->privileged && !public_)) {
		log_warn("control: connection from a user that is neither root nor ours refused");
		conn_reply(cc, false, "permission denied", NULL);
		return;
	}
	if (!cc->privileged) {
		if (c->nunprivileged >= PUBLIC_MAX_CONNS) {
			conn_reply(cc, false, "busy: too many queue listings at once; try again", NULL);
			return;
		}
		cc->counted = true;
		c->nunprivileged++;
	}
	uv_timer_start(&cc->timer, on_conn_timeout, REQUEST_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&cc->pipe, on_alloc, on_read);
}

/* ---- listener ---- */

/* Is a daemon answering on path? (blocking connect; start-up only) */
static bool
socket_alive(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	bool alive = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return alive;
}

control_t *
control_start(const control_ctx_t *ctx, buf_t *err)
{
	const char *spool = queue_spool_dir(ctx->queue);
	char *path = xasprintf("%s/%s", spool, CONTROL_SOCKET_NAME);
	struct sockaddr_un sa;
	if (strlen(path) >= sizeof sa.sun_path) {
		buf_printf(err, "control socket path %s is too long (at most %zu octets)", path,
		    sizeof sa.sun_path - 1);
		xfree(path);
		return NULL;
	}
	if (socket_alive(path)) {
		buf_printf(err, "another tern daemon answers on %s: two daemons must not share a spool",
		    path);
		xfree(path);
		return NULL;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		buf_printf(err, "cannot remove the old control socket %s: %s", path, strerror(errno));
		xfree(path);
		return NULL;
	}
	control_t *c = xcalloc(1, sizeof *c);
	c->ctx = *ctx;
	c->path = path;
	uv_pipe_init(ctx->loop, &c->listener, 0);
	c->listener.data = c;
	c->open_handles = 1;
	/* owner-only from the start: no moment where others could connect */
	mode_t old = umask(0177);
	int rc = uv_pipe_bind(&c->listener, path);
	umask(old);
	if (rc == 0 && chmod(path, 0600) < 0)
		rc = uv_translate_sys_error(errno);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&c->listener, 16, on_connection);
	if (rc < 0) {
		buf_printf(err, "control socket %s: %s", path, uv_strerror(rc));
		control_stop(c);
		return NULL;
	}
	log_info("control socket %s", path);
	if (public_fd >= 0) {
		uv_pipe_init(ctx->loop, &c->public_, 0);
		c->public_.data = c;
		c->open_handles++;
		c->have_public = true;
		c->public_path = public_bound;
		public_bound = NULL;
		rc = uv_pipe_open(&c->public_, public_fd);
		public_fd = -1;
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&c->public_, 16, on_connection);
		if (rc < 0)
			log_warn("queue socket %s: %s; only root and %s can list the queue", c->public_path,
			    uv_strerror(rc), (*ctx->cfg)->user ? (*ctx->cfg)->user : "tern's user");
		else
			log_info("queue socket %s (listing for queue_list_users)", c->public_path);
	}
	return c;
}

char *
control_public_path(const config_t *c)
{
	const char *base = c->local_socket && c->local_socket[0] ? c->local_socket : c->spool_dir;
	char *dir = xstrdup(base);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	char *p = xasprintf("%s%s%s", slash ? dir : ".", slash == dir ? "" : "/", "tern-queue.sock");
	xfree(dir);
	return p;
}

int
control_bind_public(const config_t *c, buf_t *err)
{
	char *path = control_public_path(c);
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		buf_printf(err, "queue socket %s: path too long", path);
		xfree(path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (socket_alive(path)) {
		buf_printf(err, "queue socket %s: another daemon answers on it", path);
		xfree(path);
		return -1;
	}
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&sa, sizeof sa);
	/* anyone may connect: each request is checked (SO_PEERCRED) */
	if (r == 0)
		r = chmod(path, 0666);
	if (r == 0)
		r = listen(fd, 16);
	if (r < 0) {
		buf_printf(err, "queue socket %s: %s%s", path, strerror(errno),
		    errno == ENOENT ? " (the directory does not exist)" : "");
		if (fd >= 0)
			close(fd);
		xfree(path);
		return -1;
	}
	public_fd = fd;
	xfree(public_bound);
	public_bound = path;
	return 0;
}

static void
on_listener_closed(uv_handle_t *h)
{
	control_t *c = h->data;
	c->open_handles--;
	ctl_maybe_free(c);
}

static void
ctl_maybe_free(control_t *c)
{
	if (!c->stopping || c->open_handles > 0 || c->conns)
		return;
	xfree(c->path);
	xfree(c->public_path);
	xfree(c);
}

void
control_stop(control_t *c)
{
	if (!c || c->stopping)
		return;
	c->stopping = true;
	unlink(c->path);
	uv_close((uv_handle_t *)&c->listener, on_listener_closed);
	if (c->have_public) {
		unlink(c->public_path); /* fails in a directory that is root's: replaced at start */
		uv_close((uv_handle_t *)&c->public_, on_listener_closed);
	}
	for (cconn_t *cc = c->conns; cc; cc = cc->next)
		conn_close(cc);
}
