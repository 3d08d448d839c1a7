/*
 * passwd.h (cli) - `tern passwd add|change|del|list`: edit the AUTH
 * password file named by auth_users (src/smtpd/auth.h has its format).
 *
 * add USER: a new user (refused, exit 1, when USER exists: no password is
 * ever replaced by mistake); change USER: a new password for an existing
 * user, its line kept in place. The password is read twice from the
 * terminal (no echo), or once from stdin when stdin is not a terminal,
 * must have auth_min_password_length characters (default 8), and is
 * stored as a yescrypt hash. del USER removes the user. list prints the user names. The file is rewritten atomically
 * (temporary file, fsync, rename, directory fsync) under a lock, keeping
 * its owner and mode; a new file is mode 0640 with the group of the
 * configured "user" (0600 without one). Run `systemctl reload tern`
 * afterwards. Exit status: 0, 1 failure, 2 usage.
 */
#ifndef TERN_CLI_PASSWD_H
#define TERN_CLI_PASSWD_H

int cli_passwd(const char *config, int argc, char **argv);

#endif
