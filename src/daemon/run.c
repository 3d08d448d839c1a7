/*
 * run.c - tern run: the daemon's start-up, signals, reload and shutdown.
 *
 * Start-up order matters: load and check everything first (a bad config
 * never half-starts), split off the privileged parent when root (it stays
 * root only to open the secret files, privsep.c; what follows runs in the
 * child), bind the listeners (SMTP, HTTP) and the public queue socket while still
 * root, then drop
 * privileges (privdrop.c), then open the queue (removing half-received
 * files), check the spool's owner and mode, start the scheduler and
 * outbound delivery (deliver/outbound_conf.c), recover what is queued,
 * open the control socket, confine the process (confine.c), and only then
 * accept connections.
 * SIGUSR1: reopen log_file (logrotate; lib/log.h).
 * SIGHUP (or a reload through the control socket or the HTTP API): load
 * config and tables (with the SRS secrets) afresh; on success swap them
 * (every stage reads them through its context at the next event), warn of
 * Maildirs the sandbox keeps closed, and reload the SMTP side's
 * certificate, password file and sender_login table, and the HTTP
 * listener's token; on error keep the running ones.
 * Shutdown (SIGTERM/SIGINT): stop the control socket and listening, let
 * sessions with a commit in flight get their 250, then stop the scheduler
 * (jobs in flight finish) and outbound delivery (what has not started is
 * cancelled) together; the loop ends when both are done, exit 0.
 * Each stage gets its own small context (smtpd_ctx_t, control_ctx_t): no
 * stage can reach every other.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "control/api.h"
#include "control/control.h"
#include "control/status.h"
#include "daemon/confine.h"
#include "daemon/daemon.h"
#include "daemon/privdrop.h"
#include "daemon/privsep.h"
#include "daemon/pstats.h"
#include "daemon/queuealarm.h"
#include "daemon/reports.h"
#include "deliver/tlsrpt.h"
#include "deliver/outbound_conf.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/httpd.h"
#include "lib/log.h"
#include "lib/metrics.h"
#include "lib/version.h"
#include "mailauth/sign.h"
#include "mailauth/srs.h"
#include "queue/queue.h"
#include "sched/sched.h"
#include "smtpd/server.h"

/* the daemon's own state, one per process; no stage sees it whole: each
 * gets its own context (sched_ctx_t, smtpd_ctx_t, control_ctx_t) */
static struct daemon {
	uv_loop_t *loop;
	config_t *cfg;       /* in force; swapped by a SIGHUP */
	tables_t *tables;    /* in force; swapped by a SIGHUP */
	queue_t *queue;
	sched_t *sched;
	server_t *server;
	bool stopping;
} T;
static smtpd_ctx_t smtpd;   /* the SMTP side's context (cfg and tables kept current) */
static uv_signal_t sig_term, sig_int, sig_hup, sig_usr1;
static outbound_conf_t *outbound;
static control_t *control;
static int http_fd = -1;    /* the HTTP listener, bound before the drop */
static httpd_t *http;       /* serving it (lib/httpd.h) */
static api_t *api;          /* the JSON API's routes on it (control/api.h) */
static int stop_pending;

int
daemon_load(const char *path, config_t **cfg, tables_t **tables)
{
	buf_t err = BUF_INIT;
	config_t *c = config_load(path, &err);
	tables_t *t = c ? tables_load(c, &err) : NULL;
	if (t && mailauth_sign_load(c, &err) < 0) { /* the DKIM signing keys */
		tables_free(t);
		t = NULL;
	}
	if (!t) {
		fprintf(stderr, "%s", buf_cstr(&err));
		if (err.len && err.data[err.len - 1] != '\n')
			fputc('\n', stderr);
		buf_free(&err);
		config_free(c);
		return -1;
	}
	/* the SRS secrets are secrets: read here, through the privileged
	 * parent when there is one, not by tables_load() (docs/srs.md) */
	if (c->srs_domain &&
	    srs_secrets_load(c, &t->srs_secrets, &t->nsrs_secrets, &err) < 0) {
		daemon_report(stderr, c, buf_cstr(&err));
		buf_free(&err);
		tables_free(t);
		config_free(c);
		return -1;
	}
	buf_free(&err);
	*cfg = c;
	*tables = t;
	return 0;
}

/* the configuration and tables in force, for every stage's context */
static void
set_current(config_t *c, tables_t *t)
{
	T.cfg = c;
	T.tables = t;
	smtpd.cfg = c;
	smtpd.tables = t;
}

/* Shutdown: the server first (no new mail, commits in flight answered),
 * then the scheduler (no new jobs; waits for jobs in flight) and outbound
 * (cancels what has not started) together; the loop ends when both are. */
static void
reports_stopped(void *arg)
{
	(void)arg;
	outbound_conf_free(outbound); /* the resolver; the manager is gone */
	outbound = NULL;
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	uv_close((uv_handle_t *)&sig_usr1, NULL);
	uv_stop(T.loop);
}

/* the scheduler and outbound are done: the reports' last saves, then the end */
static void
stop_one_done(void *arg)
{
	(void)arg;
	if (--stop_pending > 0)
		return;
	reports_stop(reports_stopped, NULL);
}

static void
on_stopped_server(void *arg)
{
	(void)arg;
	stop_pending = 2;
	sched_stop(T.sched, stop_one_done, NULL);
	outbound_shutdown(outbound_conf_outbound(outbound), stop_one_done, NULL);
}

/* The HTTP listener's bearer token, from the configuration in force: at
 * start a token that cannot be read stops the start (as check-config
 * says), at a reload the listener keeps the token it had. 0 or -1. */
static int
http_token(const char *when)
{
	if (!http)
		return 0;
	buf_t err = BUF_INIT;
	int rc = api_token_load(T.cfg, http, &err);
	if (rc < 0)
		log_err("%s: %s%s", when, buf_cstr(&err),
		    strcmp(when, "start") == 0 ? "" : "; the HTTP listener keeps the token it had");
	else if (!T.cfg->http_token_file)
		log_warn("%s: no http_token_file: the HTTP listener answers 401 to every request "
		    "that needs the token", when);
	buf_free(&err);
	return rc;
}

/* SIGHUP, or a reload through the control socket or the API (what
 * happened, in one line, into text when not NULL). 0 or -1. */
static int
reload(const char *why, buf_t *text)
{
	config_t *c;
	tables_t *t;
	log_info("reload requested (%s)", why);
	if (daemon_load(T.cfg->path, &c, &t) < 0) {
		log_err("reload failed: configuration has errors (see above); keeping the running configuration");
		if (text)
			buf_printf(text, "reload failed: %s has errors (see the log); the running "
			    "configuration stays", T.cfg->path);
		return -1;
	}
	/* listeners, spool and user need a restart; everything else is read
	 * afresh through the contexts at the next event */
	config_free(T.cfg);
	tables_free(T.tables);
	set_current(c, t);
	log_set_json(strcmp(c->log_format, "json") == 0);
	log_info("reloaded configuration and tables from %s", c->path);
	confine_check_tables(c, t); /* warns of Maildirs Landlock keeps closed */
	server_reload(T.server); /* certificate, password file, sender_login */
	tlsrpt_set_enabled(c->tls_reports);
	buf_t err = BUF_INIT;
	if (outbound_conf_reload(outbound, c, &err) < 0)
		log_err("reload: outbound delivery: %s; keeping the previous outbound settings",
		    buf_cstr(&err));
	else
		log_info("reload: outbound settings applied (relayhost, TLS policy, DNS, MTA-STS)");
	buf_free(&err);
	bool token_ok = http_token("reload") == 0;
	if (text)
		buf_printf(text, "reloaded configuration and tables from %s%s", c->path,
		    token_ok ? "" : "; the HTTP listener keeps its token (http_token_file: see the log)");
	return 0;
}

/* control_ctx_t's reload: the API's and the control socket's */
static int
reload_request(void *arg, buf_t *text)
{
	(void)arg;
	return reload("administrator request", text);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	if (signum == SIGHUP) {
		reload("SIGHUP", NULL);
		return;
	}
	if (signum == SIGUSR1) { /* logrotate renamed log_file */
		buf_t err = BUF_INIT;
		if (log_file_reopen(&err) < 0)
			log_err("%s; still writing to the file opened before", buf_cstr(&err));
		else if (log_file_path())
			log_info("log file %s reopened (SIGUSR1)", log_file_path());
		buf_free(&err);
		return;
	}
	if (T.stopping)
		return;
	T.stopping = true;
	log_info("stopping (signal %d)", signum);
	queuealarm_stop();
	control_stop(control);
	control = NULL;
	httpd_stop(http); /* requests still waiting get 503 */
	http = NULL;
	api_free(api);
	api = NULL;
	server_stop(T.server, on_stopped_server, NULL);
}

static void
recover_cb(void *arg, envelope_t *env)
{
	(void)arg;
	sched_submit(T.sched, env, true);
}

/* handlers first: a signal that arrives while we start is handled when the
 * loop runs, never by the default action */
static void
start_signals(void)
{
	uv_signal_init(T.loop, &sig_term);
	uv_signal_init(T.loop, &sig_int);
	uv_signal_init(T.loop, &sig_hup);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_hup, on_signal, SIGHUP);
	uv_signal_init(T.loop, &sig_usr1);
	uv_signal_start(&sig_usr1, on_signal, SIGUSR1);
}

/* Bind as root, then drop root for good. 0 or -1 (logged). */
static int
bind_and_drop(buf_t *err)
{
	if (geteuid() == 0 && !privdrop_user(T.cfg))
		return -1;
	smtpd.loop = T.loop;
	T.server = server_new(&smtpd, err);
	if (!T.server) {
		daemon_report(NULL, T.cfg, buf_cstr(err));
		return -1;
	}
	/* the HTTP listener (http_listen): a port below 1024 needs root */
	if (T.cfg->http_listen && (http_fd = httpd_bind(T.cfg->http_listen, err)) < 0) {
		daemon_report(NULL, T.cfg, buf_cstr(err));
		return -1;
	}
	/* the public queue socket (mailq for everyone) may live in root's directory */
	if (control_bind_public(T.cfg, err) < 0) {
		log_warn("%s; only root and tern's user can list the queue", buf_cstr(err));
		buf_reset(err);
	}
	if (privdrop_drop(T.cfg) < 0)
		return -1;
	privsep_child_ready(); /* signals unblocked, SIGTERM if the parent dies */
	/* tern never needs to gain privileges again (it executes nothing):
	 * no setuid program can give them back (prctl(2) PR_SET_NO_NEW_PRIVS) */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		log_warn("prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
	return 0;
}

/* The queue, the scheduler, outbound delivery, recovery, the control
 * socket: everything after the privilege drop and before confinement. */
static int
start_stages(buf_t *err)
{
	T.queue = queue_open(T.loop, T.cfg->spool_dir, err);
	if (!T.queue) {
		log_err("queue %s: %s", T.cfg->spool_dir, buf_cstr(err));
		return -1;
	}
	if (privdrop_check_spool(T.cfg->spool_dir) < 0)
		return -1;
	if (mkdir_p(T.cfg->maildir_base, 0700) < 0)
		log_warn("cannot create maildir_base %s: %s", T.cfg->maildir_base, strerror(errno));
	T.sched = sched_new(&(sched_ctx_t){T.loop, queue_spool_dir(T.queue), &T.cfg, &T.tables});
	smtpd.queue = T.queue;
	smtpd.sched = T.sched;
	outbound = outbound_conf_new(T.loop, T.cfg, &T.tables, queue_spool_dir(T.queue), err);
	if (!outbound) {
		log_err("outbound delivery: %s", buf_cstr(err));
		return -1;
	}
	sched_set_outbound(T.sched, outbound_conf_outbound(outbound));
	size_t n = queue_scan(T.cfg->spool_dir, recover_cb, NULL);
	log_info("recovered %zu messages from the queue", n);
	reports_start(T.loop, &T.cfg, T.sched, queue_spool_dir(T.queue));
	queuealarm_start(T.loop, &T.cfg, T.sched);
	pstats_start(T.loop, queue_spool_dir(T.queue), T.sched);
	control_ctx_t cctx = {T.loop, &T.cfg, T.queue, T.sched, reload_request, NULL};
	control = control_start(&cctx, err);
	if (!control) {
		log_err("%s", buf_cstr(err));
		return -1;
	}
	if (http_fd >= 0) {
		httpd_limits_t lim = {.max_conns = T.cfg->http_max_connections,
		    .timeout_s = T.cfg->http_timeout};
		buf_t name = BUF_INIT;
		httpd_sockname(http_fd, &name);
		http = httpd_new(T.loop, http_fd, &lim, err);
		http_fd = -1; /* taken over */
		if (!http) {
			log_err("http listener %s: %s", buf_cstr(&name), buf_cstr(err));
			buf_free(&name);
			return -1;
		}
		api = api_new(http, &cctx);
		status_routes(http, T.sched); /* the status page, /status (control/status.h) */
		metrics_route(http); /* GET /metrics, docs/operations.md */
		if (http_token("start") < 0) {
			buf_free(&name);
			return -1;
		}
		log_info("http listener on %s (JSON API under /api/v1/)", buf_cstr(&name));
		buf_free(&name);
	}
	return 0;
}

int
daemon_run(const char *path, bool use_syslog, bool debug)
{
	log_init("tern", use_syslog, debug);
	config_t *c;
	tables_t *t;
	if (daemon_load(path, &c, &t) < 0)
		return 1;
	set_current(c, t);
	log_set_json(strcmp(c->log_format, "json") == 0);
	buf_t err = BUF_INIT;
	/* started as root: split off the privileged parent that opens the
	 * secrets at start and at every reload (daemon/privsep.h); from here
	 * on this is the child. The parent is what systemd sees as MainPID.
	 * The local socket's directory (/run/tern) is made first: the parent
	 * may remove files only there, so it must exist when it confines
	 * itself. */
	if (geteuid() == 0) {
		if (!privdrop_user(T.cfg))
			return 1;
		if (server_socket_dir(T.cfg, true, &err) < 0 || privsep_start(T.cfg, &err) < 0) {
			daemon_report(NULL, T.cfg, buf_cstr(&err));
			buf_free(&err);
			return 1;
		}
	}
	/* the log file: opened here, in the daemon (the privileged parent
	 * logs to stderr or syslog only), as root when started so, and given
	 * to tern's user when created, so that the files it makes itself at
	 * each SIGUSR1 belong to the same user */
	if (T.cfg->log_file &&
	    log_file_open(T.cfg->log_file, geteuid() == 0 ? config_run_uid(T.cfg) : (uid_t)-1,
	        &err) < 0) {
		daemon_report(NULL, T.cfg, buf_cstr(&err));
		buf_free(&err);
		return 1;
	}
	/* fsyncs and Maildir jobs run on libuv's pool; give it room so that
	 * many commits can be in flight and share journal flushes */
	setenv("UV_THREADPOOL_SIZE", "64", 0);
	signal(SIGPIPE, SIG_IGN);
	umask(077);

	T.loop = uv_default_loop();
	start_signals();
	if (bind_and_drop(&err) < 0 || start_stages(&err) < 0) {
		buf_free(&err);
		return 1;
	}
	/* everything is bound, open and recovered: confine the rest of the
	 * run (daemon/confine.h, docs/security.md "Confinement") */
	if (confine_daemon(T.cfg, T.tables, &err) < 0) {
		log_err("sandbox: %s; tern cannot confine itself on this system: fix that, or set "
		    "\"sandbox = no\" in %s to run unconfined", buf_cstr(&err), T.cfg->path);
		buf_free(&err);
		return 1;
	}

	server_start(T.server);
	log_info("tern %s started, hostname=%s spool=%s", TERN_VERSION, T.cfg->hostname, T.cfg->spool_dir);

	uv_run(T.loop, UV_RUN_DEFAULT);

	/* everything in flight is done: free and let libuv close the rest */
	server_free(T.server);
	pstats_stop();
	sched_free(T.sched);
	queue_close(T.queue);
	uv_run(T.loop, UV_RUN_NOWAIT);
	uv_loop_close(T.loop);
	tables_free(T.tables);
	config_free(T.cfg);
	buf_free(&err);
	log_info("stopped");
	return 0;
}
