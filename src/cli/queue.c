/*
 * queue.c (cli) - `tern queue list|show|flush|hold|release|delete|bounce`
 * and `tern mailq` (see cli/queue.h, docs/queue-tools.md).
 *
 * A short-lived command, not the daemon: blocking I/O is fine here. The
 * request goes to <spool_dir>/control.sock (protocol in control/control.h)
 * and the reply body is printed as it comes. A user who cannot reach it
 * (only root and tern's user can) is sent to the public queue socket
 * (control_public_path), where the daemon decides what that user may do. Without a daemon, the
 * read-only commands load the queue files with queue_load (which never
 * changes a file; queue_scan would move damaged ones) and format them with
 * the daemon's own formatter (control/qview.h), so the output is the same.
 *
 * Must not: write anything in the spool, or guess at the daemon with
 * signals.
 */
#include "cli/queue.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/config.h"
#include "common/qid.h"
#include "control/control.h"
#include "control/qview.h"
#include "lib/buf.h"
#include "lib/version.h"
#include "lib/xalloc.h"
#include "queue/queue.h"

#define REPLY_TIMEOUT_S 120
#define REPLY_MAX ((size_t)1 << 30)

static void
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: tern [-c config] queue list [DOMAIN] [--json]\n"
	    "       tern [-c config] queue show QUEUE_ID [--json]\n"
	    "       tern [-c config] queue flush [DOMAIN|QUEUE_ID] [--json]\n"
	    "       tern [-c config] queue hold|release|delete|bounce QUEUE_ID [--json]\n"
	    "       tern [-c config] mailq [--json]\n"
	    "       mailq [-c|-C config] [--json]     (tern called as mailq)\n"
	    "Listing is open to the users queue_list_users names (default anyone); the other\n"
	    "commands need root or tern's user (docs/queue-tools.md).\n");
	exit(code);
}

static bool
is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "help") == 0;
}

static char *public_path; /* the public queue socket, from the same config */

static char *
spool_of(const char *config)
{
	buf_t err = BUF_INIT;
	config_t *c = config_load(config, &err);
	if (!c) {
		fprintf(stderr, "%s", buf_cstr(&err));
		if (err.len && err.data[err.len - 1] != '\n')
			fputc('\n', stderr);
		buf_free(&err);
		return NULL;
	}
	char *spool = xstrdup(c->spool_dir);
	xfree(public_path);
	public_path = control_public_path(c);
	config_free(c);
	buf_free(&err);
	return spool;
}

enum { ASK_OK = 0, ASK_NO_DAEMON = -1, ASK_FAILED = -2 };

/*
 * Send one request, read the whole reply. ASK_OK with *ok and *body (the
 * status line's text in *errtext), ASK_NO_DAEMON when nobody listens,
 * ASK_FAILED (message printed) otherwise.
 */
/* a connected socket, or -1 with errno */
static int
connect_to(const char *path)
{
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa.sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int
ask(const char *spool, const char *req, bool *ok, buf_t *body, buf_t *errtext)
{
	char *path = xasprintf("%s/%s", spool, CONTROL_SOCKET_NAME);
	int fd = connect_to(path);
	if (fd < 0 && (errno == EACCES || errno == EPERM) && public_path) {
		/* not root nor tern's user: the public socket, where the daemon
		 * says what this user may do */
		int e = errno;
		fd = connect_to(public_path);
		if (fd < 0 && (errno == ENOENT || errno == ECONNREFUSED))
			fprintf(stderr, "tern: the daemon is not running (nothing answers on %s), and "
			    "without it only root and the daemon's user may read the queue\n", public_path);
		else if (fd < 0)
			fprintf(stderr, "tern: %s: %s (only root and the daemon's user may use it), and "
			    "%s: %s\n", path, strerror(e), public_path, strerror(errno));
		if (fd < 0) {
			xfree(path);
			return ASK_FAILED;
		}
		xfree(path);
		path = xstrdup(public_path);
	}
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ECONNREFUSED) {
			xfree(path);
			return ASK_NO_DAEMON;
		}
		fprintf(stderr, "tern: %s: %s\n", path, strerror(e));
		xfree(path);
		return ASK_FAILED;
	}
	struct timeval tv = {REPLY_TIMEOUT_S, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	buf_t line = BUF_INIT;
	buf_printf(&line, "%s\n", req);
	size_t off = 0;
	while (off < line.len) {
		ssize_t w = send(fd, line.data + off, line.len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			fprintf(stderr, "tern: %s: cannot send the request: %s\n", path, strerror(errno));
			buf_free(&line);
			close(fd);
			xfree(path);
			return ASK_FAILED;
		}
		off += (size_t)w;
	}
	buf_free(&line);
	buf_t in = BUF_INIT;
	for (;;) {
		char tmp[65536];
		ssize_t r = read(fd, tmp, sizeof tmp);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "tern: %s: no complete answer: %s\n", path,
			    errno == EAGAIN ? "timeout" : strerror(errno));
			buf_free(&in);
			close(fd);
			xfree(path);
			return ASK_FAILED;
		}
		if (r == 0)
			break;
		if (in.len + (size_t)r > REPLY_MAX)
			break;
		buf_append(&in, tmp, (size_t)r);
	}
	close(fd);
	char *nl = in.len ? memchr(in.data, '\n', in.len) : NULL;
	if (!nl) {
		fprintf(stderr, "tern: %s: the daemon closed the connection without an answer\n", path);
		buf_free(&in);
		xfree(path);
		return ASK_FAILED;
	}
	size_t n1 = (size_t)(nl - in.data);
	*ok = n1 == 2 && memcmp(in.data, "ok", 2) == 0;
	if (!*ok) {
		const char *p = in.data;
		size_t n = n1;
		if (n >= 7 && memcmp(p, "error: ", 7) == 0) {
			p += 7;
			n -= 7;
		}
		buf_append(errtext, p, n);
	}
	buf_append(body, nl + 1, in.len - n1 - 1);
	buf_free(&in);
	xfree(path);
	return ASK_OK;
}

/* ---- without a daemon: read the spool ---- */

static int
load_spool(const char *spool, const char *only, qview_entry_t **out, size_t *nout)
{
	char *dir = xasprintf("%s/queue", spool);
	DIR *d = opendir(dir);
	*out = NULL;
	*nout = 0;
	if (!d) {
		int e = errno;
		if (e == ENOENT) {
			xfree(dir);
			return 0;
		}
		fprintf(stderr, "tern: cannot read the queue %s: %s%s\n", dir, strerror(e),
		    e == EACCES ? " (run as root or as the daemon's user)" : "");
		xfree(dir);
		return -1;
	}
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!qid_valid(de->d_name, strlen(de->d_name)))
			continue;
		if (only && strcmp(de->d_name, only) != 0)
			continue;
		char *path = xasprintf("%s/%s", dir, de->d_name);
		envelope_t *env = NULL;
		buf_t err = BUF_INIT;
		if (queue_load(path, &env, &err) < 0) {
			/* a file gone meanwhile (delivered) is no news */
			if (errno != ENOENT)
				fprintf(stderr, "tern: %s: %s\n", path, buf_cstr(&err));
		} else {
			if (*nout == cap) {
				cap = cap ? cap * 2 : 64;
				*out = xrealloc(*out, cap * sizeof **out);
			}
			(*out)[*nout].env = env;
			(*out)[*nout].active = NULL;
			(*nout)++;
		}
		buf_free(&err);
		xfree(path);
	}
	closedir(d);
	xfree(dir);
	qview_sort(*out, *nout);
	return 0;
}

static int
offline(const char *spool, const char *verb, const char *arg, bool json)
{
	qview_entry_t *e;
	size_t n;
	bool show = strcmp(verb, "show") == 0;
	const char *qid = show ? arg : NULL;
	if (load_spool(spool, qid, &e, &n) < 0)
		return 1;
	if (!show && arg) /* list DOMAIN */
		n = qview_filter_domain(e, n, arg);
	buf_t out = BUF_INIT;
	int rc = 0;
	if (strcmp(verb, "show") == 0) {
		if (n == 0) {
			fprintf(stderr, "tern: %s: no such message in the queue\n", qid);
			rc = 1;
		} else {
			buf_t hdr = BUF_INIT, err = BUF_INIT;
			bool have = qview_read_headers(spool, e[0].env, &hdr, &err) == 0;
			if (!have)
				fprintf(stderr, "tern: %s: %s\n", qid, buf_cstr(&err));
			if (json)
				qview_show_json(&out, &e[0], have ? (hdr.data ? hdr.data : "") : NULL, hdr.len);
			else
				qview_show_text(&out, &e[0], have ? (hdr.data ? hdr.data : "") : NULL, hdr.len);
			buf_free(&hdr);
			buf_free(&err);
		}
	} else if (json) {
		qview_list_json(&out, e, n);
	} else if (strcmp(verb, "mailq") == 0) {
		qview_mailq(&out, e, n);
	} else {
		qview_list_text(&out, e, n);
	}
	if (out.len)
		fwrite(out.data, 1, out.len, stdout);
	buf_free(&out);
	qview_entries_free(e, n);
	return rc;
}

/* ---- commands ---- */

static int
run(const char *config, const char *verb, const char *arg, bool json)
{
	char *spool = spool_of(config);
	if (!spool)
		return 1;
	buf_t req = BUF_INIT, body = BUF_INIT, errtext = BUF_INIT;
	char qid[QID_SIZE] = "";
	if (arg && strcmp(verb, "flush") != 0 && strcmp(verb, "list") != 0) {
		/* queue IDs are upper case; accept them in any case */
		size_t n = strlen(arg);
		for (size_t i = 0; i < n && i < QID_LEN; i++)
			qid[i] = arg[i] >= 'a' && arg[i] <= 'z' ? (char)(arg[i] - 'a' + 'A') : arg[i];
		qid[n < QID_LEN ? n : QID_LEN] = '\0';
		if (n != QID_LEN || !qid_valid(qid, QID_LEN)) {
			fprintf(stderr, "tern: %s: not a queue ID (16 characters 0-9 A-Z)\n", arg);
			xfree(spool);
			return 1;
		}
		arg = qid;
	}
	if (arg && strchr(arg, ' ')) {
		fprintf(stderr, "tern: bad argument \"%s\"\n", arg);
		xfree(spool);
		return 1;
	}
	buf_printf(&req, "%s%s%s%s", json ? "json " : "", verb, arg ? " " : "", arg ? arg : "");
	bool ok = false;
	int rc;
	int a = ask(spool, buf_cstr(&req), &ok, &body, &errtext);
	if (a == ASK_OK) {
		if (body.len)
			fwrite(body.data, 1, body.len, stdout);
		if (!ok)
			fprintf(stderr, "tern: %s\n", buf_cstr(&errtext));
		rc = ok ? 0 : 1;
	} else if (a == ASK_NO_DAEMON) {
		if (strcmp(verb, "list") == 0 || strcmp(verb, "mailq") == 0 || strcmp(verb, "show") == 0) {
			rc = offline(spool, verb, arg, json);
		} else {
			fprintf(stderr, "tern: the daemon is not running (nothing answers on %s/%s); "
			    "%s needs it\n", spool, CONTROL_SOCKET_NAME, verb);
			rc = 1;
		}
	} else {
		rc = 1;
	}
	fflush(stdout);
	buf_free(&req);
	buf_free(&body);
	buf_free(&errtext);
	xfree(spool);
	return rc;
}

/* split argv into --json and at most `max` plain arguments */
static void
parse_args(int argc, char **argv, int first, bool *json, char **args, int max, int *nargs)
{
	*json = false;
	*nargs = 0;
	for (int i = first; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0) {
			*json = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(0);
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "tern: unknown option %s\n", argv[i]);
			usage(2);
		} else if (*nargs < max) {
			args[(*nargs)++] = argv[i];
		} else {
			fprintf(stderr, "tern: too many arguments\n");
			usage(2);
		}
	}
}

int
cli_queue(const char *config, int argc, char **argv)
{
	if (argc < 2)
		usage(2);
	const char *verb = argv[1];
	if (is_help(verb))
		usage(0);
	bool json;
	char *args[1] = {NULL};
	int n;
	parse_args(argc, argv, 2, &json, args, 1, &n);
	if (strcmp(verb, "mailq") == 0) {
		if (n != 0)
			usage(2);
		return run(config, verb, NULL, json);
	}
	if (strcmp(verb, "list") == 0 || strcmp(verb, "flush") == 0)
		return run(config, verb, n ? args[0] : NULL, json);
	if (strcmp(verb, "show") == 0 || strcmp(verb, "hold") == 0 || strcmp(verb, "release") == 0 ||
	    strcmp(verb, "delete") == 0 || strcmp(verb, "bounce") == 0) {
		if (n != 1)
			usage(2);
		return run(config, verb, args[0], json);
	}
	usage(2);
	return 2;
}

int
cli_mailq(const char *config, int argc, char **argv)
{
	bool json;
	char *args[1];
	int n;
	if (argc > 1 && is_help(argv[1]))
		usage(0);
	parse_args(argc, argv, 1, &json, args, 0, &n);
	return run(config, "mailq", NULL, json);
}

int
cli_mailq_argv0(const char *default_config, int argc, char **argv)
{
	const char *config = default_config;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		/* -C like sendmail's (mailq is sendmail -bp), -c like tern's */
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "-C") == 0) && i + 1 < argc)
			config = argv[++i];
		else if (strncmp(argv[i], "-C", 2) == 0 && argv[i][2] != '\0')
			config = argv[i] + 2;
		else if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0)
			json = true;
		else if (is_help(argv[i]))
			usage(0);
		else if (strcmp(argv[i], "--version") == 0) {
			printf("mailq (tern %s)\n", TERN_VERSION);
			return 0;
		} else
			usage(2);
	}
	return run(config, "mailq", NULL, json);
}
