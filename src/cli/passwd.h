/*
 * passwd.h (cli) - `tern passwd add|del|list`: edit the AUTH password file
 * named by auth_users (src/smtpd/auth.h has its format).
 *
 * add USER: the password is read twice from the terminal (no echo), or
 * once from stdin when stdin is not a terminal, and stored as a yescrypt
 * hash; an existing USER gets the new password. del USER removes the
 * user. list prints the user names. The file is rewritten atomically
 * (temporary file, fsync, rename, directory fsync) under a lock, keeping
 * its owner and mode; a new file is mode 0640 with the group of the
 * configured "user" (0600 without one). Run `systemctl reload tern`
 * afterwards. Exit status: 0, 1 failure, 2 usage.
 */
#ifndef TERN_CLI_PASSWD_H
#define TERN_CLI_PASSWD_H

int cli_passwd(const char *config, int argc, char **argv);

#endif
