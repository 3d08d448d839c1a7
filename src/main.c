/*
 * main.c - the tern command: which subcommand runs, nothing more.
 *
 *   tern [-c CONFIG] [-d] run [--syslog]   the daemon, in the foreground (src/daemon/run.c)
 *   tern [-c CONFIG] check-config          validate config and tables (src/daemon/check.c)
 *   tern address|queue|mailq|passwd|dkim|spf|log-summary ... the tools (src/cli/)
 *   tern sendmail ..., or argv[0] sendmail the sendmail command (src/sendmail/)
 *   tern --help | --version, COMMAND --help (usage on stdout, exit 0)
 *
 * Must not: grow any command's work here; each lives in its own folder.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/address.h"
#include "cli/dkim.h"
#include "cli/logsummary.h"
#include "cli/passwd.h"
#include "cli/queue.h"
#include "cli/spf.h"
#include "daemon/daemon.h"
#include "lib/version.h"
#include "sendmail/sendmail.h"

#define DEFAULT_CONFIG "/etc/tern/tern.conf"

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
	    "  dkim keygen|sign|verify ...   DKIM keys and signatures (docs/dkim.md)\n"
	    "  spf IP DOMAIN-OR-SENDER [--helo NAME] [--dns-servers LIST]   the SPF result (RFC 7208)\n"
	    "  log-summary [--day YYYY-MM-DD] [--top N] [FILE...]   a daily summary of the log\n"
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

int
main(int argc, char **argv)
{
	const char *config = DEFAULT_CONFIG;
	bool config_given = false;
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
		case 'c': config = optarg; config_given = true; break;
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
		return daemon_run(config, use_syslog, debug);
	}
	if (strcmp(argv[0], "check-config") == 0) {
		if (help) {
			printf("usage: tern [-c config] check-config\n"
			    "Check the configuration and its tables; errors as FILE:LINE: message, exit 1.\n");
			return 0;
		}
		return daemon_check_config(config);
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
	if (strcmp(argv[0], "spf") == 0)
		return cli_spf(config, config_given, argc, argv);
	if (strcmp(argv[0], "sendmail") == 0)
		return sendmail_main(config, argc, argv);
	if (strcmp(argv[0], "dkim") == 0)
		return cli_dkim(config, argc, argv);
	if (strcmp(argv[0], "log-summary") == 0)
		return cli_log_summary(argc, argv);
	usage(2);
	return 2;
}
