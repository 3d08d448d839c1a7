/*
 * address.h (cli) - `tern address ADDRESS...` and `sendmail -bv|-bt`:
 * how tern would route each address, without sending anything (the
 * counterpart of Postfix's `postmap -q` / `sendmail -bv` and `exim -bt`).
 *
 * For each address: every alias and virtual step the router takes (the
 * router's own expansion, router_expand_trace, on the tables as the files
 * say now: a running daemon uses them after its next reload), then each
 * final address with its mailbox and Maildir, or its next hop (transport
 * table, relayhost, or "MX lookup for DOMAIN": DNS is queried only with
 * --mx, then with the daemon's own MX code), or the
 * refusal the RCPT command would get (550 5.1.1, 554 5.7.1 relay denied
 * for clients outside mynetworks). Exit status: 0 when every address is
 * deliverable (for a client allowed to relay), 1 when one is refused or
 * the configuration cannot be read, 2 usage.
 */
#ifndef TERN_CLI_ADDRESS_H
#define TERN_CLI_ADDRESS_H

/* argv[0] is "address" */
int cli_address(const char *config, int argc, char **argv);
/* the report for n addresses; prog names the command in error messages.
 * 0 all deliverable, 1 one refused, -1 the configuration or a table
 * cannot be read (said on stderr). */
int cli_address_report(const char *config, const char *prog, int n, char **addrs);

#endif
