/*
 * sendmail.h - the sendmail-compatible command (docs/sendmail.md).
 *
 * `tern sendmail ...`, or tern run as "sendmail" (a symlink), reads a
 * message on stdin and hands it to the running daemon over its local
 * socket (local_socket), speaking SMTP; the daemon knows the caller's uid
 * from the kernel (SO_PEERCRED). Nothing is setuid and nothing in the
 * spool is writable by users. Exit status (sysexits.h): 0 once the
 * daemon said 250 (the message is queued and fsync'd), EX_TEMPFAIL (75)
 * when the daemon is down or answered 4xx, EX_UNAVAILABLE (69) for a 5xx,
 * EX_DATAERR (65) for bad input, EX_USAGE (64) for bad options; always
 * with a message on stderr.
 */
#ifndef TERN_SENDMAIL_H
#define TERN_SENDMAIL_H

/* config: the configuration file to read local_socket and the domain
 * from (-C FILE overrides it); argv[0] is the program or "sendmail" */
int sendmail_main(const char *config, int argc, char **argv);

#endif
