/*
 * queue.h (cli) - the queue tools: `tern queue ...` and `tern mailq`.
 *
 * They talk to the running daemon through its control socket
 * (src/control/control.h); when no daemon answers, `list`, `show` and
 * `mailq` read the spool directly (read-only) and the others fail.
 * docs/queue-tools.md is the administrator's guide.
 * Exit status: 0 ok, 1 failure (message on stderr), 2 usage.
 */
#ifndef TERN_CLI_QUEUE_H
#define TERN_CLI_QUEUE_H

/* argv[0] is "queue"; config: the configuration file (for spool_dir) */
int cli_queue(const char *config, int argc, char **argv);
/* argv[0] is "mailq" (or the program name when tern runs as mailq) */
int cli_mailq(const char *config, int argc, char **argv);
/* tern called as "mailq": its own options, -c or -C CONFIG, --json, --help, --version */
int cli_mailq_argv0(const char *default_config, int argc, char **argv);

#endif
