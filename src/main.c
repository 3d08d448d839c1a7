/*
 * main.c - the tern command: start-up, signals, shutdown.
 *
 *   tern [-c CONFIG] [-d] run [--syslog]   the daemon, in the foreground
 *   tern [-c CONFIG] check-config          validate config and tables
 *   tern --help | --version, COMMAND --help (usage on stdout, exit 0)
 *
 * Start-up order matters: load and check everything first (a bad config
 * never half-starts), bind the listeners while still root, then drop
 * privileges, then open the queue (removing half-received files) and
 * recover what is queued, and only then accept connections.
 * Shutdown (SIGTERM/SIGINT): stop listening, let sessions with a commit in
 * flight get their 250, let delivery jobs in flight finish, exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "common/addr.h"
#include "cli/address.h"
#include "cli/passwd.h"
#include "cli/queue.h"
#include "common/config.h"
#include "control/control.h"
#include "daemon.h"
#include "deliver/outbound.h"
#include "lib/dns.h"
#include "deliver/router.h"
#include "lib/buf.h"
#include "lib/fsutil.h"
#include "lib/log.h"
#include "lib/sandbox.h"
#include "lib/xalloc.h"
#include "queue/queue.h"
#include "sched/sched.h"
#include "sendmail/sendmail.h"
#include "smtpd/server.h"

#ifndef TERN_VERSION
#define TERN_VERSION "0.1"
#endif

#define DEFAULT_CONFIG "/etc/tern/tern.conf"

static tern_t T;
static uv_signal_t sig_term, sig_int, sig_hup;
static outbound_t *outbound;
static control_t *control;
static dns_t *dns;
static int stop_pending;
static int exit_code;

static void
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: tern [-c config] [-d] command\n"
	    "       tern --help | --version\n"
	    "commands:\n"
	    "  run [--syslog]   run the daemon in the foreground (log to stderr, or syslog)\n"
	    "  check-config     check the configuration and tables, then exit\n"
	    "  version          print the version\n"
	    "  address ADDRESS...   how tern would route each address (nothing is sent)\n"
	    "  queue list|show|flush|hold|release|delete ...   the queue tools (docs/queue-tools.md)\n"
	    "  mailq [--json]   the queue in mailq format\n"
	    "  passwd add|change|del|list [USER]   the AUTH password file (auth_users)\n"
	    "  sendmail [options] [rcpt...] submit a message (also as argv[0] \"sendmail\")\n"
	    "  COMMAND --help   the command's own usage\n"
	    "default config: " DEFAULT_CONFIG "\n");
	exit(code);
}

/* -h, --help or help: the usage on stdout, exit 0 (every command) */
static bool
is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "help") == 0;
}

/* Load config and tables; on error print every problem and return -1. */
static int
load_all(const char *path, config_t **cfg, tables_t **tables)
{
	buf_t err = BUF_INIT;
	config_t *c = config_load(path, &err);
	if (!c) {
		fprintf(stderr, "%s", buf_cstr(&err));
		if (err.len && err.data[err.len - 1] != '\n')
			fputc('\n', stderr);
		buf_free(&err);
		return -1;
	}
	tables_t *t = tables_load(c, &err);
	if (!t) {
		fprintf(stderr, "%s", buf_cstr(&err));
		if (err.len && err.data[err.len - 1] != '\n')
			fputc('\n', stderr);
		buf_free(&err);
		config_free(c);
		return -1;
	}
	buf_free(&err);
	*cfg = c;
	*tables = t;
	return 0;
}

/* Shutdown: the server first (no new mail, commits in flight answered),
 * then the scheduler (no new jobs; waits for jobs in flight) and outbound
 * (cancels what has not started) together; the loop ends when both are. */
static void
stop_one_done(void *arg)
{
	(void)arg;
	if (--stop_pending > 0)
		return;
	if (dns)
		dns_free(dns);
	dns = NULL;
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	uv_stop(T.loop);
}

static void
on_stopped_server(void *arg)
{
	(void)arg;
	stop_pending = 2;
	sched_stop(T.sched, stop_one_done, NULL);
	outbound_shutdown(outbound, stop_one_done, NULL);
	outbound = NULL; /* freed by outbound_shutdown */
}

static void
on_signal(uv_signal_t *h, int signum)
{
	if (signum == SIGHUP) {
		config_t *c;
		tables_t *t;
		log_info("reload requested (SIGHUP)");
		if (load_all(T.cfg->path, &c, &t) < 0) {
			log_err("reload failed: configuration has errors (see above); keeping the running configuration");
			return;
		}
		/* listeners, spool and user need a restart; everything else is read
		 * afresh through T at the next event */
		config_free(T.cfg);
		tables_free(T.tables);
		T.cfg = c;
		T.tables = t;
		log_info("reloaded configuration and tables from %s", c->path);
		sandbox_check_tables(c, t); /* warns of Maildirs Landlock keeps closed */
		server_reload(T.server); /* certificate, password file, sender_login */
		return;
	}
	if (T.stopping)
		return;
	T.stopping = true;
	log_info("stopping (signal %d)", signum);
	control_stop(control);
	control = NULL;
	server_stop(T.server, on_stopped_server, NULL);
}

static void
recover_cb(void *arg, envelope_t *env)
{
	(void)arg;
	sched_submit(T.sched, env, true);
}

/*
 * The spool holds every acknowledged message: it must belong to the user
 * tern runs as, and nobody else may write to it (or to any of the queue's
 * directories), or another local user could remove or forge queued mail.
 */
static int
check_spool_safe(const char *spool)
{
	static const char *const sub[] = {"", "/incoming", "/queue", "/corrupt"};
	for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof path, "%s%s", spool, sub[i]);
		if (stat(path, &st) < 0)
			continue;
		if (st.st_uid != geteuid()) {
			log_err("spool %s belongs to uid %d, not to the user tern runs as (uid %d): chown -R it",
			    path, (int)st.st_uid, (int)geteuid());
			return -1;
		}
		if (st.st_mode & (S_IWGRP | S_IWOTH)) {
			log_err("spool %s is writable by group or others (mode %04o): chmod 700 %s", path,
			    (unsigned)(st.st_mode & 07777), path);
			return -1;
		}
	}
	return 0;
}

/*
 * Delivery writes into Maildirs and talks to the network on behalf of
 * strangers: never as root. Root is only for binding ports below 1024, so
 * started as root, tern needs "user" naming an unprivileged account; this
 * is checked before anything is bound, so a bad setting fails at once.
 */
static struct passwd *
run_user(const config_t *c)
{
	if (!c->user) {
		log_err("refusing to run as root: set \"user\" in %s to an unprivileged account "
		    "(e.g. user = tern, created with: useradd --system --home-dir /var/spool/tern tern); "
		    "tern binds its ports as root, then runs as that user", c->path);
		return NULL;
	}
	struct passwd *pw = getpwnam(c->user);
	if (!pw) {
		log_err("user \"%s\" (config %s) does not exist: create it (useradd --system %s) "
		    "or name another unprivileged account", c->user, c->path, c->user);
		return NULL;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		log_err("refusing to run as root: user \"%s\" in %s has uid %d gid %d; name an "
		    "unprivileged account", c->user, c->path, (int)pw->pw_uid, (int)pw->pw_gid);
		return NULL;
	}
	return pw;
}

static int
drop_privileges(const config_t *c)
{
	if (geteuid() != 0) {
		if (c->user) {
			struct passwd *me = getpwuid(geteuid());
			if (!me || strcmp(me->pw_name, c->user) != 0)
				log_info("not started as root: running as uid %d, not as user %s (config %s)",
				    (int)geteuid(), c->user, c->path);
		}
		return 0;
	}
	struct passwd *pw = run_user(c);
	if (!pw)
		return -1;
	/* the spool and the Maildirs belong to the mail user */
	mkdir_p(c->spool_dir, 0700);
	mkdir_p(c->maildir_base, 0700);
	if (chown(c->spool_dir, pw->pw_uid, pw->pw_gid) < 0 ||
	    chown(c->maildir_base, pw->pw_uid, pw->pw_gid) < 0) {
		log_err("chown spool or maildir_base to %s: %s", c->user, strerror(errno));
		return -1;
	}
	if (setgroups(0, NULL) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0) {
		log_err("cannot drop privileges to %s: %s", c->user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		log_err("privileges could be regained after dropping them; refusing to run");
		return -1;
	}
	/* the directories were made by root: say plainly when the user cannot
	 * reach them (a parent directory closed to it, e.g. mode 0700) */
	const char *dirs[2] = {c->spool_dir, c->maildir_base};
	for (size_t i = 0; i < 2; i++) {
		if (access(dirs[i], R_OK | W_OK | X_OK) < 0) {
			log_err("user %s cannot use %s (%s): every parent directory must be searchable "
			    "by it (chmod o+x), and the directory its own (try: runuser -u %s -- ls %s)",
			    c->user, dirs[i], strerror(errno), c->user, dirs[i]);
			return -1;
		}
	}
	log_info("running as user %s (uid %d)", c->user, (int)pw->pw_uid);
	return 0;
}

/* The scheduler's transport lookup, through the current tables. */
static const char *
route_transport(void *arg, const char *domain)
{
	(void)arg;
	return router_transport(T.tables, domain);
}

/* A wildcard listener (0.0.0.0, ::) is every address of this host: for the
 * loop detection of RFC 5321 §5.1 ("the SMTP client finds itself among the
 * MX records"), our addresses are then the interfaces' (read at start). */
static bool
is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return ss->ss_family == AF_INET6 &&
	    IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static size_t
add_interface_addrs(struct sockaddr_storage *out, size_t n, size_t max)
{
	uv_interface_address_t *ifs;
	int count;
	if (uv_interface_addresses(&ifs, &count) != 0)
		return n;
	for (int i = 0; i < count && n < max; i++) {
		memset(&out[n], 0, sizeof out[n]);
		if (ifs[i].address.address4.sin_family == AF_INET)
			memcpy(&out[n++], &ifs[i].address.address4, sizeof(struct sockaddr_in));
		else if (ifs[i].address.address6.sin6_family == AF_INET6)
			memcpy(&out[n++], &ifs[i].address.address6, sizeof(struct sockaddr_in6));
	}
	uv_free_interface_addresses(ifs, count);
	return n;
}

/* Outbound delivery: DNS (libunbound), MX options that know our own names
 * and addresses (RFC 5321 §5.1 loop detection), the limits and timeouts.
 * These are read once at start; a SIGHUP does not change them. */
/*
 * The relayhost credentials: one line "user password" (the password is the
 * rest of the line) in a file nobody but tern's user may read. They go to
 * the relay host only under TLS (smtp_client.h).
 */
static char relay_user[256], relay_pass[512];

static int
load_relay_auth(const char *path, buf_t *err)
{
	struct stat st;
	char *data = NULL;
	if (stat(path, &st) < 0 || read_file(path, &data, NULL, 64 * 1024) < 0) {
		buf_printf(err, "relayhost_auth_file %s: %s", path, strerror(errno));
		return -1;
	}
	const char *why = fs_secret_problem(&st, geteuid(), false);
	if (why) {
		buf_printf(err, "relayhost_auth_file %s %s (owner uid %d, mode %04o)", path, why,
		    (int)st.st_uid, (unsigned)(st.st_mode & 07777));
		explicit_bzero(data, strlen(data));
		xfree(data);
		return -1;
	}
	int r = -1;
	for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '#' || *line == '\0' || *line == '\r')
			continue;
		size_t ul = strcspn(line, " \t");
		char *pw = line + ul;
		while (*pw == ' ' || *pw == '\t')
			pw++;
		size_t pl = strcspn(pw, "\r");
		if (ul == 0 || pl == 0 || ul >= sizeof relay_user || pl >= sizeof relay_pass)
			break;
		memcpy(relay_user, line, ul);
		relay_user[ul] = '\0';
		memcpy(relay_pass, pw, pl);
		relay_pass[pl] = '\0';
		r = 0;
		break;
	}
	if (r < 0)
		buf_printf(err, "relayhost_auth_file %s: expected one line \"user password\"", path);
	explicit_bzero(data, strlen(data));
	xfree(data);
	return r;
}

static outbound_t *
make_outbound(tern_t *t, buf_t *err)
{
	const config_t *c = t->cfg;
	/* checked first: nothing to undo when it fails */
	if (c->relayhost_auth_file && load_relay_auth(c->relayhost_auth_file, err) < 0)
		return NULL;
	static char *servers[33];
	static char dnsbuf[1024];
	size_t ns = 0;
	if (c->dns_servers) {
		snprintf(dnsbuf, sizeof dnsbuf, "%s", c->dns_servers);
		for (char *tok = strtok(dnsbuf, " \t,"); tok && ns < 32; tok = strtok(NULL, " \t,"))
			servers[ns++] = tok;
	}
	servers[ns] = NULL;
	dns_options_t dopt = {0};
	dopt.servers = ns ? (const char *const *)servers : NULL;
	dopt.timeout_ms = c->dns_timeout * 1000u;
	dopt.trust_anchor_file = c->dnssec_trust_anchor;
	dns = dns_new(t->loop, &dopt, err);
	if (!dns)
		return NULL;

	static const char *self_names[2];
	static struct sockaddr_storage self_addrs[64];
	static mx_options_t mxo;
	self_names[0] = c->hostname;
	self_names[1] = NULL;
	size_t na = 0;
	for (size_t i = 0; i < c->nlisten && na < 64; i++) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		if (uv_ip4_addr(c->listen[i].addr, 25, (struct sockaddr_in *)&ss) == 0 ||
		    uv_ip6_addr(c->listen[i].addr, 25, (struct sockaddr_in6 *)&ss) == 0) {
			if (is_wildcard(&ss))
				na = add_interface_addrs(self_addrs, na, 64);
			else
				self_addrs[na++] = ss;
		}
	}
	mxo.self_names = self_names;
	mxo.self_addrs = self_addrs;
	mxo.nself_addrs = na;
	mxo.port = (uint16_t)c->smtp_port; /* 25 but in tests */

	outbound_options_t o;
	memset(&o, 0, sizeof o);
	o.hostname = c->hostname;
	o.spool_dir = queue_spool_dir(t->queue);
	o.relayhost = c->relayhost;
	if (c->relayhost_auth_file) {
		o.relay_auth_user = relay_user;
		o.relay_auth_pass = relay_pass;
	}
	o.dest_concurrency = c->destination_concurrency;
	o.total_concurrency = c->outbound_connections;
	o.max_per_conn = c->max_messages_per_connection;
	o.timeouts.connect = c->smtp_connect_timeout;
	o.timeouts.greeting = o.timeouts.helo = o.timeouts.mail = o.timeouts.rcpt = o.timeouts.rset =
	    c->smtp_command_timeout;
	o.timeouts.data_init = c->smtp_command_timeout < 120 ? c->smtp_command_timeout : 120;
	o.timeouts.data_block = c->smtp_data_timeout;
	o.timeouts.data_done = c->smtp_data_done_timeout;
	o.dns = dns;
	o.mx = &mxo;
	o.route = route_transport;
	tls_policy_parse(c->smtp_tls_policy, &o.tls_policy); /* checked by config.c */
	o.tls_policy_file = c->tls_policy_file;
	o.tls_ca_file = c->smtp_tls_ca_file;
	return outbound_new(t->loop, &o);
}

static int
cmd_run(const char *path, bool use_syslog, bool debug)
{
	log_init("tern", use_syslog, debug);
	if (load_all(path, &T.cfg, &T.tables) < 0)
		return 1;
	/* fsyncs and Maildir jobs run on libuv's pool; give it room so that
	 * many commits can be in flight and share journal flushes */
	setenv("UV_THREADPOOL_SIZE", "64", 0);
	signal(SIGPIPE, SIG_IGN);
	umask(077);

	T.loop = uv_default_loop();
	/* handlers first: a signal that arrives while we start is handled
	 * when the loop runs, never by the default action */
	uv_signal_init(T.loop, &sig_term);
	uv_signal_init(T.loop, &sig_int);
	uv_signal_init(T.loop, &sig_hup);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_hup, on_signal, SIGHUP);
	if (geteuid() == 0 && !run_user(T.cfg))
		return 1;
	buf_t err = BUF_INIT;
	T.server = server_new(&T, &err);
	if (!T.server) {
		log_err("%s", buf_cstr(&err));
		buf_free(&err);
		return 1;
	}
	/* the public queue socket (mailq for everyone) may live in root's directory */
	if (control_bind_public(T.cfg, &err) < 0) {
		log_warn("%s; only root and tern's user can list the queue", buf_cstr(&err));
		buf_reset(&err);
	}
	if (drop_privileges(T.cfg) < 0)
		return 1;
	/* tern never needs to gain privileges again (it executes nothing):
	 * no setuid program can give them back (prctl(2) PR_SET_NO_NEW_PRIVS) */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		log_warn("prctl(PR_SET_NO_NEW_PRIVS): %s", strerror(errno));
	T.queue = queue_open(T.loop, T.cfg->spool_dir, &err);
	if (!T.queue) {
		log_err("queue %s: %s", T.cfg->spool_dir, buf_cstr(&err));
		buf_free(&err);
		return 1;
	}
	if (check_spool_safe(T.cfg->spool_dir) < 0)
		return 1;
	if (mkdir_p(T.cfg->maildir_base, 0700) < 0)
		log_warn("cannot create maildir_base %s: %s", T.cfg->maildir_base, strerror(errno));
	T.sched = sched_new(&(sched_ctx_t){T.loop, queue_spool_dir(T.queue), &T.cfg, &T.tables});
	outbound = make_outbound(&T, &err);
	if (!outbound) {
		log_err("outbound delivery: %s", buf_cstr(&err));
		buf_free(&err);
		return 1;
	}
	sched_set_outbound(T.sched, outbound);
	size_t n = queue_scan(T.cfg->spool_dir, recover_cb, NULL);
	log_info("recovered %zu messages from the queue", n);
	control = control_start(&T, &err);
	if (!control) {
		log_err("%s", buf_cstr(&err));
		return 1;
	}
	/* everything is bound, open and recovered: confine the rest of the
	 * run (lib/sandbox.h, docs/security.md "Confinement") */
	if (sandbox_daemon(T.cfg, T.tables, &err) < 0) {
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
	sched_free(T.sched);
	queue_close(T.queue);
	uv_run(T.loop, UV_RUN_NOWAIT);
	uv_loop_close(T.loop);
	tables_free(T.tables);
	config_free(T.cfg);
	buf_free(&err);
	log_info("stopped");
	return exit_code;
}

static int
cmd_check(const char *path)
{
	config_t *c;
	tables_t *t;
	log_init("tern", 0, 0);
	if (load_all(path, &c, &t) < 0)
		return 1;
	/* RFC 5321 §4.5.1: postmaster must be deliverable in every local domain */
	for (size_t i = 0; i < c->nlocal_domains; i++) {
		char pm[300];
		addr_t a;
		size_t used;
		const char *err;
		dest_list_t d = {0};
		snprintf(pm, sizeof pm, "postmaster@%s", c->local_domains[i]);
		if (addr_parse(pm, strlen(pm), ADDR_NO_BRACKETS, &a, &used, &err) < 0)
			continue;
		if (router_expand(c, t, &a, false, &d, &err) != ROUTER_OK)
			fprintf(stderr, "%s: warning: %s is not deliverable (%s); RFC 5321 section 4.5.1 "
			    "requires it: add \"postmaster: someone\" to the aliases table\n", c->path, pm, err);
		dest_list_free(&d);
		addr_free(&a);
	}
	/* what "run" as root would refuse (run_user), said ahead of time */
	if (!c->user) {
		fprintf(stderr, "%s: warning: \"user\" is not set: started as root, tern refuses to run "
		    "(set user = tern, an unprivileged account)\n", c->path);
	} else {
		struct passwd *pw = getpwnam(c->user);
		if (!pw)
			fprintf(stderr, "%s: warning: user \"%s\" does not exist (useradd --system %s)\n",
			    c->path, c->user, c->user);
		else if (pw->pw_uid == 0 || pw->pw_gid == 0)
			fprintf(stderr, "%s: warning: user \"%s\" has uid %d gid %d: tern refuses to run as "
			    "root\n", c->path, c->user, (int)pw->pw_uid, (int)pw->pw_gid);
	}
	printf("config ok: %s (%zu listeners, %zu local domains, %zu mailboxes)\n", c->path, c->nlisten,
	    c->nlocal_domains, table_count(t->mailboxes));
	tables_free(t);
	config_free(c);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *config = DEFAULT_CONFIG;
	bool debug = false;
	int ch;
	static const struct option longopts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

	if (strcmp(prog, "mailq") == 0)
		return cli_mailq_argv0(DEFAULT_CONFIG, argc, argv);
	if (strcmp(prog, "sendmail") == 0 || strcmp(prog, "newaliases") == 0)
		return sendmail_main(DEFAULT_CONFIG, argc, argv);
	while ((ch = getopt_long(argc, argv, "+c:dh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': config = optarg; break;
		case 'd': debug = true; break;
		case 'h': usage(0); break;
		case 'V': printf("tern %s\n", TERN_VERSION); return 0;
		default: usage(2);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage(2);
	if (strcmp(argv[0], "help") == 0)
		usage(0);
	bool help = argc > 1 && is_help(argv[1]);
	if (strcmp(argv[0], "run") == 0) {
		if (help) {
			printf("usage: tern [-c config] [-d] run [--syslog]\n"
			    "Run the daemon in the foreground; log to stderr, or to syslog (facility mail)\n"
			    "with --syslog; -d adds debug lines. Stop it with SIGTERM, reload with SIGHUP.\n");
			return 0;
		}
		bool use_syslog = argc > 1 && strcmp(argv[1], "--syslog") == 0;
		return cmd_run(config, use_syslog, debug);
	}
	if (strcmp(argv[0], "check-config") == 0) {
		if (help) {
			printf("usage: tern [-c config] check-config\n"
			    "Check the configuration and its tables; errors as FILE:LINE: message, exit 1.\n");
			return 0;
		}
		return cmd_check(config);
	}
	if (strcmp(argv[0], "version") == 0) {
		if (help) {
			printf("usage: tern version (or tern --version)\n");
			return 0;
		}
		printf("tern %s\n", TERN_VERSION);
		return 0;
	}
	if (strcmp(argv[0], "address") == 0)
		return cli_address(config, argc, argv);
	if (strcmp(argv[0], "queue") == 0)
		return cli_queue(config, argc, argv);
	if (strcmp(argv[0], "mailq") == 0)
		return cli_mailq(config, argc, argv);
	if (strcmp(argv[0], "passwd") == 0)
		return cli_passwd(config, argc, argv);
	if (strcmp(argv[0], "sendmail") == 0)
		return sendmail_main(config, argc, argv);
	usage(2);
	return 2;
}
